"""The contact person's desk: the queue, one question with the answer form, canned replies.

Who asks is shown in full (name, role, municipality, address: the contact person needs the
identity side), with where they stand in the questionnaire; never what they answered.
Answering and closing go through `bot.desk.answer`, the same rule the desk's email reply uses.
"""

from __future__ import annotations

import datetime as dt
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.desk.answer import DeskError, answer_query, close_without_answer
from bot.desk.where import role_text, standing
from bot.web.auth import DESK_READERS, DESK_WRITERS, current_login, requires
from bot.web.context import WebContext, context_of
from bot.web.render import page, render
from bot.web.tables import Link, Table
from storage.db import transaction
from storage.desk import (
    QueueEntry,
    canned_replies,
    delete_canned_reply,
    entry,
    queue,
    save_canned_reply,
)
from storage.history import local_time
from storage.schema import QueryStatus
from storage.users import audit

#: When a question came, as Norwegians write it; the space does not break in a narrow column.
_SHORT_TIME = "%d.%m.%Y\u00a0%H:%M"
_CHANNEL = {"email": ("e-post", "email"), "telegram": ("Telegram", "Telegram")}
_LANG = {"nb": ("bokmål", "Norwegian Bokmål"), "nn": ("nynorsk", "Norwegian Nynorsk"),
         "en": ("engelsk", "English")}
_STATUSES = {"open": QueryStatus.OPEN, "answered": QueryStatus.ANSWERED,
             "closed": QueryStatus.CLOSED}


def _word(ctx: WebContext, table: dict[str, tuple[str, str]], key: str | None) -> str:
    pair = table.get(key or "")
    if pair is None:
        return key or ""
    return pair[0] if ctx.settings.web.lang == "nb" else pair[1]


def _age(ctx: WebContext, since: dt.datetime) -> str:
    moment = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
    minutes = max(0, int((ctx.clock() - moment).total_seconds() // 60))
    nb = ctx.settings.web.lang == "nb"
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} {'t' if nb else 'h'}"
    return f"{minutes // 1440} {'døgn' if nb else 'days'}"


def _who(ctx: WebContext, found: QueueEntry) -> str:
    survey = ctx.surveys.get(found.invitation.survey_id)
    return role_text(survey.questionnaire if survey is not None else None, found.respondent,
                     ctx.settings.web.lang)


@requires(DESK_READERS)
async def desk_queue(request: Request) -> Response:
    """Open (or answered, or closed) questions, oldest first."""
    ctx = context_of(request)
    shown = request.query_params.get("status", "open")
    status = _STATUSES.get(shown, QueryStatus.OPEN)

    def load() -> Table:
        with transaction(ctx.factory) as session:
            rows = queue(session, (status,))
            t = ctx.t
            table = Table(caption=t(shown if shown in _STATUSES else "open"),
                          headers=[t("asked"), t("age"), t("who"), t("role"),
                                   t("municipality"), t("address"), t("channel"),
                                   t("question"), t("standing")], name="queue")
            for found in rows:
                q, r = found.query, found.respondent
                survey = ctx.surveys.get(found.invitation.survey_id)
                place = (standing(survey.questionnaire, found.invitation)
                         if survey is not None else "")
                table.rows.append([
                    Link(local_time(q.created_at, _SHORT_TIME), f"/desk/{q.id}"),
                    _age(ctx, q.created_at),
                    Link(r.name, f"/desk/{q.id}"), _who(ctx, found),
                    r.municipality_name, r.email, _word(ctx, _CHANNEL, q.channel or "email"),
                    _short(q.text), place])
            return table

    table = await run_in_threadpool(load)
    return page(request, "desk_queue.html", {"shown": shown}, [table], "sporsmal")


def _short(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _query_id(request: Request) -> int:
    try:
        return int(request.path_params["query_id"])
    except (KeyError, ValueError) as exc:
        raise HTTPException(404) from exc


@requires(DESK_READERS)
async def desk_query(request: Request) -> Response:
    """One question: who asks, where they stand, the question, the answer form."""
    ctx = context_of(request)
    notice = ctx.t("answer_sent") if request.query_params.get("sent") else None
    return await _query_page(request, notice=notice)


async def _query_page(request: Request, *, notice: str | None = None,
                      error: str | None = None, draft: str = "", status: int = 200) -> Response:
    ctx = context_of(request)
    query_id = _query_id(request)
    login = await current_login(request)

    def load() -> dict[str, object] | None:
        with transaction(ctx.factory) as session:
            found = entry(session, query_id)
            if found is None:
                return None
            q, inv, r = found.query, found.invitation, found.respondent
            survey = ctx.surveys.get(inv.survey_id)
            lang = _session_lang(inv.session_state) if inv.session_state else r.lang
            return {
                "q": {"id": q.id, "text": q.text, "status": str(q.status),
                      "created": local_time(q.created_at), "age": _age(ctx, q.created_at),
                      "answer": q.answer, "answered_by": q.answered_by,
                      "answered_at": local_time(q.answered_at) if q.answered_at else ""},
                "r": {"name": r.name, "role": _who(ctx, found), "email": r.email,
                      "municipality": f"{r.municipality_name} ({r.county})",
                      "id": r.id},
                "survey": inv.survey_id,
                "channel": _word(ctx, _CHANNEL, q.channel or inv.last_channel or "email"),
                "answer_lang": lang, "lang_name": _word(ctx, _LANG, lang),
                "standing": standing(survey.questionnaire, inv) if survey else "",
                "canned": [{"id": c.id, "title": c.title, "text": c.text}
                           for c in canned_replies(session) if c.lang == lang] or
                          [{"id": c.id, "title": f"{c.title} ({c.lang})", "text": c.text}
                           for c in canned_replies(session)],
            }

    values = await run_in_threadpool(load)
    if values is None:
        raise HTTPException(404)
    can_answer = login is not None and login.role in DESK_WRITERS
    return render(request, "desk_query.html", {
        **values, "notice": notice, "error": error, "draft": draft,
        "can_answer": can_answer, "nonce": secrets.token_urlsafe(12),
        "canned_id": request.query_params.get("canned", "")}, status=status)


def _session_lang(state: str) -> str:
    from flows.session import from_json

    return from_json(state).lang


@requires(DESK_WRITERS)
async def desk_answer(request: Request) -> Response:
    """Send the contact person's answer (through the outbox) and mark the question answered."""
    ctx = context_of(request)
    query_id = _query_id(request)
    login = await current_login(request)
    assert login is not None  # noqa: S101 - `requires` let only a login through
    form = await request.form()
    text = str(form.get("answer", ""))
    nonce = str(form.get("nonce", ""))[:40] or secrets.token_urlsafe(12)

    def send() -> str | None:
        with transaction(ctx.factory) as session:
            found = entry(session, query_id)
            if found is None:
                raise HTTPException(404)
            try:
                answer_query(session, ctx.settings, ctx.surveys, ctx.store, found.query, text,
                             by=login.name, key=nonce, now=ctx.clock())
            except DeskError as exc:
                return str(exc)
        return None

    problem = await run_in_threadpool(send)
    if problem is not None:
        return await _query_page(request, error=problem, draft=text, status=400)
    if ctx.on_queued is not None:
        ctx.on_queued()
    return RedirectResponse(f"/desk/{query_id}?sent=1", status_code=303)


@requires(DESK_WRITERS)
async def desk_close(request: Request) -> Response:
    """Close a question without an answer."""
    ctx = context_of(request)
    query_id = _query_id(request)
    login = await current_login(request)
    assert login is not None  # noqa: S101 - `requires` let only a login through

    def close() -> None:
        with transaction(ctx.factory) as session:
            found = entry(session, query_id)
            if found is None:
                raise HTTPException(404)
            close_without_answer(session, found.query, by=login.name, now=ctx.clock())

    await run_in_threadpool(close)
    return RedirectResponse("/desk?closed=1", status_code=303)


@requires(DESK_READERS)
async def canned_page(request: Request) -> Response:
    """The kept replies, and a form to add one or change one."""
    ctx = context_of(request)

    def load() -> list[dict[str, object]]:
        with transaction(ctx.factory) as session:
            return [{"id": c.id, "title": c.title, "lang": c.lang, "text": c.text,
                     "by": c.updated_by, "at": local_time(c.updated_at)}
                    for c in canned_replies(session)]

    replies = await run_in_threadpool(load)
    login = await current_login(request)
    return render(request, "canned.html", {
        "replies": replies, "can_edit": login is not None and login.role in DESK_WRITERS,
        "notice": ctx.t("done") if request.query_params.get("saved") else None})


@requires(DESK_WRITERS)
async def canned_save(request: Request) -> Response:
    """Add a kept reply, or change one (`id` given)."""
    ctx = context_of(request)
    login = await current_login(request)
    assert login is not None  # noqa: S101 - `requires` let only a login through
    form = await request.form()
    title = str(form.get("title", "")).strip()
    text = str(form.get("text", "")).strip()
    lang = str(form.get("lang", "nb"))
    raw_id = str(form.get("id", "")).strip()
    if not title or not text or lang not in _LANG:
        raise HTTPException(400)

    def save() -> None:
        with transaction(ctx.factory) as session:
            try:
                reply = save_canned_reply(session, title=title, lang=lang, text=text,
                                          by=login.name, now=ctx.clock(),
                                          reply_id=int(raw_id) if raw_id.isdigit() else None)
            except LookupError as exc:
                raise HTTPException(404) from exc
            audit(session, actor=login.name, action="canned reply saved",
                  target=f"canned {reply.id}", now=ctx.clock())

    await run_in_threadpool(save)
    return RedirectResponse("/desk/canned?saved=1", status_code=303)


@requires(DESK_WRITERS)
async def canned_delete(request: Request) -> Response:
    """Delete a kept reply."""
    ctx = context_of(request)
    login = await current_login(request)
    assert login is not None  # noqa: S101 - `requires` let only a login through
    try:
        reply_id = int(request.path_params["reply_id"])
    except (KeyError, ValueError) as exc:
        raise HTTPException(404) from exc

    def remove() -> None:
        with transaction(ctx.factory) as session:
            if delete_canned_reply(session, reply_id):
                audit(session, actor=login.name, action="canned reply deleted",
                      target=f"canned {reply_id}", now=ctx.clock())

    await run_in_threadpool(remove)
    return RedirectResponse("/desk/canned?saved=1", status_code=303)
