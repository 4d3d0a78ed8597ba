"""The desk and the dashboard in the browser, served by svarbot itself.

Server-rendered HTML: Starlette (a small ASGI toolkit that runs in the same asyncio loop as
`svarbot run`), Jinja2 templates (autoescaped, so a respondent's `<script>` is text) and
uvicorn. No build step and nothing from a CDN: the one script (`static/refresh.js`, which
refreshes live pages) and the stylesheet are files of this package. Every page is usable
without script.

Layout: `app` wires routes and middleware, `auth` is logins, sessions and CSRF, `security`
the headers, `tables` the tables every page shows (and their CSV), `pages/` one module per
area (desk, dashboard, delivery, health). Pages read through `storage` and change things
only through `storage` and `bot.desk`; nothing here sends a message itself.
"""
