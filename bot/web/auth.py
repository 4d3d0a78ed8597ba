"""Logging in and out, the session cookie, roles and the CSRF token of every form.

* The session lives in the database (`storage.web_sessions`); the cookie is HttpOnly,
  SameSite=Lax, and Secure when `web.public_url` is https. Logging out deletes the session,
  so a copied cookie opens nothing afterwards.
* Every POST carries the session's CSRF token in a hidden field, compared in constant time;
  the login form, which has no session yet, carries one tied to a short-lived cookie.
* Failed logins are counted per name and per client address; past `web.login_attempts` in
  15 minutes every attempt is refused, right password or not.
* Roles: a contact person sees the desk; an operator sees delivery and may look at the desk;
  an admin sees both and answers too.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.web.context import WebContext, context_of
from storage.db import transaction
from storage.users import audit, check_password
from storage.web_sessions import (
    Login,
    clear_failures,
    end_session,
    find_session,
    note_failure,
    start_session,
    too_many_failures,
)

log = logging.getLogger(__name__)

COOKIE = "svarbot_session"
LOGIN_COOKIE = "svarbot_login"

#: Who may do what.
OPERATORS = frozenset({"operator", "admin"})
DESK_READERS = frozenset({"contact", "operator", "admin"})
DESK_WRITERS = frozenset({"contact", "admin"})

Endpoint = Callable[[Request], Awaitable[Response]]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _cookie_args(ctx: WebContext) -> dict[str, Any]:
    return {"httponly": True, "samesite": "lax", "secure": ctx.https, "path": "/"}


async def current_login(request: Request) -> Login | None:
    """The request's live session, or None (also stored on `request.state.login`)."""
    if hasattr(request.state, "login"):
        found: Login | None = request.state.login
        return found
    ctx = context_of(request)
    cookie = request.cookies.get(COOKIE, "")
    login = None
    if cookie:
        def look() -> Login | None:
            with transaction(ctx.factory) as session:
                return find_session(session, cookie, now=ctx.clock(),
                                    idle=dt.timedelta(hours=ctx.settings.web.idle_hours))
        login = await run_in_threadpool(look)
    request.state.login = login
    return login


def requires(roles: frozenset[str]) -> Callable[[Endpoint], Endpoint]:
    """Only for a login with one of `roles`: no login goes to the login page, another role
    gets 403. A POST must carry the session's CSRF token."""
    def wrap(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            login = await current_login(request)
            if login is None:
                if request.method != "GET":
                    raise HTTPException(403)
                return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            if login.role not in roles:
                raise HTTPException(403)
            if request.method == "POST":
                form = await request.form()
                if not _same(str(form.get("csrf", "")), login.csrf):
                    raise HTTPException(400)
            return await endpoint(request)
        guarded.__name__ = endpoint.__name__
        guarded.__doc__ = endpoint.__doc__
        return guarded
    return wrap


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def home_for(login: Login) -> str:
    return "/desk" if login.role == "contact" else "/dashboard"


def _safe_next(target: str) -> str | None:
    """Only a path on this site (never `//elsewhere`) is followed after logging in."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


async def login_page(request: Request) -> Response:
    from bot.web.render import render

    login = await current_login(request)
    if login is not None:
        return RedirectResponse(home_for(login), status_code=303)
    return _login_form(request, render, error=None)


def _login_form(request: Request, render: Any, *, error: str | None,
                status: int = 200) -> Response:
    ctx = context_of(request)
    token = secrets.token_urlsafe(24)
    response: Response = render(request, "login.html", {
        "error": error, "login_token": token,
        "next": _safe_next(request.query_params.get("next", "")) or ""}, status=status)
    response.set_cookie(LOGIN_COOKIE, token, max_age=1800, **_cookie_args(ctx))
    return response


async def login_submit(request: Request) -> Response:
    from bot.web.render import render

    ctx = context_of(request)
    form: FormData = await request.form()
    if not _same(str(form.get("login_token", "")), request.cookies.get(LOGIN_COOKIE, "")):
        return _login_form(request, render, error=ctx.t("login_expired"), status=400)
    name = str(form.get("name", "")).strip()[:100]
    password = str(form.get("password", ""))
    address = client_address(request)

    def attempt() -> tuple[str, str | None]:
        now = ctx.clock()
        with transaction(ctx.factory) as session:
            if too_many_failures(session, name=name, address=address, now=now,
                                 limit=ctx.settings.web.login_attempts):
                audit(session, actor=name or "?", action="login throttled", target=address,
                      now=now)
                return "throttled", None
        with transaction(ctx.factory) as session:
            user = check_password(session, name, password)
            if user is None:
                note_failure(session, name=name, address=address, now=now)
                audit(session, actor=name or "?", action="login failed", target=address,
                      now=now)
                return "failed", None
            clear_failures(session, name=name, address=address)
            cookie = start_session(session, user, now=now, max_age=dt.timedelta(
                hours=ctx.settings.web.session_max_hours))
            audit(session, actor=user.name, action="logged in", target=address, now=now)
            return "ok", cookie

    outcome, cookie = await run_in_threadpool(attempt)
    if outcome == "throttled":
        log.warning("web: login throttled for %s", address)
        return _login_form(request, render, error=ctx.t("login_throttled"), status=429)
    if cookie is None:
        return _login_form(request, render, error=ctx.t("login_failed"), status=401)
    target = _safe_next(str(form.get("next", ""))) or "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, cookie, **_cookie_args(ctx))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


async def logout(request: Request) -> Response:
    ctx = context_of(request)
    login = await current_login(request)
    cookie = request.cookies.get(COOKIE, "")
    if login is not None:
        form = await request.form()
        if not _same(str(form.get("csrf", "")), login.csrf):
            raise HTTPException(400)

        def end() -> None:
            with transaction(ctx.factory) as session:
                end_session(session, cookie)
                audit(session, actor=login.name, action="logged out", now=ctx.clock())
        await run_in_threadpool(end)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
