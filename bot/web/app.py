"""The web application: routes, middleware, errors, static files."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.web import auth
from bot.web.context import WebContext
from bot.web.pages import dashboard, delivery, desk, health
from bot.web.render import render
from bot.web.security import SecurityHeaders

STATIC = Path(__file__).parent / "static"

_MESSAGES = {400: "bad_form", 403: "forbidden", 404: "not_found"}


async def home(request: Request) -> Response:
    """The front page is the user's own: the desk for a contact person, else the overview."""
    login = await auth.current_login(request)
    if login is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(auth.home_for(login), status_code=303)


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    ctx: WebContext = request.app.state.ctx
    await auth.current_login(request)
    message = ctx.t(_MESSAGES.get(status, "not_found"))
    return render(request, "error.html", {"message": message}, status=status)


def routes() -> list[Route | Mount]:
    return [
        Route("/", home),
        Route("/login", auth.login_page, methods=["GET"]),
        Route("/login", auth.login_submit, methods=["POST"]),
        Route("/logout", auth.logout, methods=["POST"]),
        Route("/desk", desk.desk_queue),
        Route("/desk/canned", desk.canned_page, methods=["GET"]),
        Route("/desk/canned", desk.canned_save, methods=["POST"]),
        Route("/desk/canned/{reply_id:int}/delete", desk.canned_delete, methods=["POST"]),
        Route("/desk/{query_id:int}", desk.desk_query),
        Route("/desk/{query_id:int}/answer", desk.desk_answer, methods=["POST"]),
        Route("/desk/{query_id:int}/close", desk.desk_close, methods=["POST"]),
        Route("/dashboard", dashboard.dashboard),
        Route("/log", delivery.delivery_log),
        Route("/find", delivery.find),
        Route("/respondent/{respondent_id:int}", delivery.respondent_page),
        Route("/invitation/{invitation_id:int}/resend", delivery.resend, methods=["POST"]),
        Route("/invitation/{invitation_id:int}/address", delivery.correct_address,
              methods=["POST"]),
        Route("/invitation/{invitation_id:int}/stop", delivery.stop, methods=["POST"]),
        Route("/outbox", delivery.outbox_page),
        Route("/outbox/replay", delivery.outbox_replay, methods=["POST"]),
        Route("/quarantine", delivery.quarantine_page),
        Route("/quarantine/{inbox_id:int}/raw", delivery.quarantine_raw),
        Route("/quarantine/{inbox_id:int}/release", delivery.quarantine_release,
              methods=["POST"]),
        Route("/quarantine/{inbox_id:int}/discard", delivery.quarantine_discard,
              methods=["POST"]),
        Route("/attention", delivery.attention),
        Route("/health", health.health),
        Route("/audit", health.audit_log),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(ctx: WebContext) -> Starlette:
    """The application for `ctx` (its database, settings and surveys)."""
    app = Starlette(routes=routes(),
                    middleware=[Middleware(SecurityHeaders, https=ctx.https)],
                    exception_handlers={HTTPException: http_error})
    app.state.ctx = ctx
    return app
