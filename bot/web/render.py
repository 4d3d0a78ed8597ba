"""Rendering a page: one Jinja2 environment, autoescaped, with the words and the login.

Autoescaping is on for every template, so whatever a respondent wrote (a name, a question)
is shown as text; nothing in the templates marks user data safe.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from bot.web.context import context_of
from bot.web.tables import Link, Mark, Table, cell_text, csv_response
from storage.history import local_time

TEMPLATES = Path(__file__).parent / "templates"

#: The menu: (path, text key, roles that see it).
MENU: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("/desk", "desk", frozenset({"contact", "operator", "admin"})),
    ("/dashboard", "dashboard", frozenset({"operator", "admin"})),
    ("/log", "log", frozenset({"operator", "admin"})),
    ("/attention", "attention", frozenset({"operator", "admin"})),
    ("/outbox", "outbox", frozenset({"operator", "admin"})),
    ("/quarantine", "quarantine", frozenset({"operator", "admin"})),
    ("/health", "health", frozenset({"operator", "admin"})),
    ("/audit", "audit", frozenset({"admin"})),
)


@functools.cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        enabled_extensions=("html",), default=True), trim_blocks=True, lstrip_blocks=True)
    env.globals.update(is_link=lambda c: isinstance(c, Link),
                       is_mark=lambda c: isinstance(c, Mark), cell_text=cell_text,
                       local_time=local_time)
    return env


def render(request: Request, template: str, values: Mapping[str, Any], *,
           status: int = 200) -> Response:
    """`template` with `values`, the words, the login and the menu."""
    ctx = context_of(request)
    login = getattr(request.state, "login", None)
    menu = [(path, ctx.t(key)) for path, key, roles in MENU
            if login is not None and login.role in roles]
    html = environment().get_template(template).render(
        t=ctx.t, lang=ctx.settings.web.lang, login=login, menu=menu,
        path=request.url.path, csrf=login.csrf if login is not None else "",
        refresh=ctx.settings.web.refresh_seconds,
        request_query="&".join(f"{k}={quote(v)}" for k, v in request.query_params.multi_items()
                               if k != "format"), **values)
    return HTMLResponse(html, status_code=status)


def page(request: Request, template: str, values: Mapping[str, Any],
         tables: Sequence[Table], filename: str) -> Response:
    """The page, or its tables as CSV when asked (`?format=csv`)."""
    if request.query_params.get("format") == "csv":
        return csv_response(tables, filename)
    return render(request, template, {**values, "tables": tables})
