"""Delivery, for the operator: the log with filters, one respondent's time line and what may
be done about them, dead messages to replay, the quarantine, and who needs a hand.

Only statuses, events and headers are shown; a respondent's page is the `svarbot log
--respondent` time line, which reads no message body, session or answer.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.conversation.operator import ActionError, readdress, resend_page, stop_contact
from bot.web.auth import OPERATORS, current_login, requires
from bot.web.context import WebContext, context_of
from bot.web.render import page
from bot.web.tables import Link, Table
from storage import dashboard as counts
from storage.db import transaction
from storage.history import (
    EVENT_NAMES,
    INVITATION_NAMES,
    KIND_NAMES,
    local_time,
    respondent_history,
)
from storage.inbox import discard_quarantined, quarantined, release_quarantined
from storage.outbox import replay
from storage.schema import InboxMessage, Invitation, Respondent
from storage.users import audit

_SHOWN_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To",
                  "Auto-Submitted", "Content-Type")


def _nb(ctx: WebContext) -> bool:
    return ctx.settings.web.lang == "nb"


def _name(ctx: WebContext, names: dict[str, str], key: str) -> str:
    return names.get(key, key) if _nb(ctx) else key


def _int_param(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except (KeyError, ValueError) as exc:
        raise HTTPException(404) from exc


# --- the log ------------------------------------------------------------------------------


@requires(OPERATORS)
async def delivery_log(request: Request) -> Response:
    """Outbound events, newest first, narrowed by status, kind, channel, day and address."""
    ctx = context_of(request)
    q = request.query_params
    day = None
    if q.get("day"):
        try:
            day = dt.date.fromisoformat(q["day"])
        except ValueError:
            day = None
    where = counts.LogFilter(status=q.get("status", ""), kind=q.get("kind", ""),
                             channel=q.get("channel", ""), day=day,
                             address=q.get("address", "")[:320], survey=q.get("survey", ""))

    def load() -> Table:
        with transaction(ctx.factory) as session:
            lines = counts.delivery_log(session, where)
        t = ctx.t
        table = Table(caption=t("log"), headers=[
            "Tid" if _nb(ctx) else "Time", t("kind"), t("channel"), t("address"),
            t("status"), "Detalj" if _nb(ctx) else "Detail"], name="log")
        for line in lines:
            who: Link | str = (Link(line.recipient, f"/respondent/{line.respondent_id}")
                               if line.respondent_id is not None else line.recipient)
            table.rows.append([local_time(line.at, "%Y-%m-%d %H:%M:%S"),
                               _name(ctx, KIND_NAMES, line.kind), line.channel, who,
                               _name(ctx, EVENT_NAMES, line.status), line.detail])
        return table

    table = await run_in_threadpool(load)
    return page(request, "log.html", {
        "f": where, "statuses": sorted(EVENT_NAMES), "kinds": sorted(KIND_NAMES),
        "channels": ("email", "telegram"), "day": q.get("day", "")}, [table], "leveringslogg")


@requires(OPERATORS)
async def find(request: Request) -> Response:
    """Respondents whose name or address contains the search text."""
    ctx = context_of(request)
    text = request.query_params.get("q", "")[:200]

    def load() -> Table:
        with transaction(ctx.factory) as session:
            found = counts.find_respondents(session, text)
        table = Table(caption=ctx.t("find"), headers=[
            ctx.t("who"), ctx.t("address"), ctx.t("municipality")], name="found")
        table.rows = [[Link(r.name, f"/respondent/{r.id}"), r.email, r.municipality_name]
                      for r in found]
        return table

    table = await run_in_threadpool(load)
    return page(request, "find.html", {"q": text}, [table], "respondenter")


# --- one respondent -----------------------------------------------------------------------


@requires(OPERATORS)
async def respondent_page(request: Request) -> Response:
    """The respondent's time line and the actions an operator may take."""
    ctx = context_of(request)
    respondent_id = _int_param(request, "respondent_id")

    def load() -> tuple[dict[str, object], Table] | None:
        with transaction(ctx.factory) as session:
            r = session.get(Respondent, respondent_id)
            if r is None:
                return None
            invitations = list(session.query(Invitation).filter(
                Invitation.respondent_id == respondent_id).order_by(Invitation.id))
            history = respondent_history(session, respondent_id)
            facts = {"id": r.id, "name": r.name, "email": r.email,
                     "municipality": f"{r.municipality_name} ({r.municipality_no})",
                     "role": r.role, "sector": r.sector or "", "unit": r.unit_type or "",
                     "stratum": f"{r.sector or '–'} / {r.landsdel} / {r.size_class}",
                     "invitations": [{"id": i.id, "survey": i.survey_id,
                                      "status": _name(ctx, INVITATION_NAMES, str(i.status)),
                                      "raw_status": str(i.status),
                                      "reminders": i.reminders_sent,
                                      "channel": i.last_channel or "email"}
                                     for i in invitations]}
        table = Table(caption=ctx.t("timeline"), headers=[
            "Tid" if _nb(ctx) else "Time", ctx.t("survey"), "Hva" if _nb(ctx) else "What",
            ctx.t("status"), "Detalj" if _nb(ctx) else "Detail"], name="timeline")
        table.rows = [[local_time(e.at, "%Y-%m-%d %H:%M:%S"), e.survey, e.what, e.status,
                       e.detail] for e in history]
        return facts, table

    found = await run_in_threadpool(load)
    if found is None:
        raise HTTPException(404)
    facts, table = found
    notice = ctx.t("done") if request.query_params.get("done") else None
    error = request.query_params.get("error")
    return page(request, "respondent.html", {"r": facts, "notice": notice,
                                             "error": error[:200] if error else None},
                [table], f"respondent-{respondent_id}")


async def _invitation_action(request: Request, action: str) -> Response:
    ctx = context_of(request)
    invitation_id = _int_param(request, "invitation_id")
    login = await current_login(request)
    assert login is not None  # noqa: S101 - `requires` let only a login through
    form = await request.form()

    def act() -> tuple[int, str | None]:
        now = ctx.clock()
        with transaction(ctx.factory) as session:
            invitation = session.get(Invitation, invitation_id)
            if invitation is None:
                raise HTTPException(404)
            respondent_id = invitation.respondent_id
            try:
                if action == "resend":
                    resend_page(session, ctx.settings, ctx.surveys, ctx.store, invitation,
                                by=login.name, now=now,
                                key=f"resend:{invitation_id}:{secrets.token_hex(6)}")
                elif action == "readdress":
                    readdress(session, ctx.settings, ctx.surveys, ctx.store, invitation,
                              str(form.get("email", "")), by=login.name, now=now)
                else:
                    stop_contact(session, invitation, by=login.name, now=now)
            except ActionError as exc:
                session.rollback()
                return respondent_id, str(exc)
            return respondent_id, None

    respondent_id, problem = await run_in_threadpool(act)
    if problem is not None:
        from urllib.parse import quote

        return RedirectResponse(f"/respondent/{respondent_id}?error={quote(problem)}",
                                status_code=303)
    if ctx.on_queued is not None:
        ctx.on_queued()
    return RedirectResponse(f"/respondent/{respondent_id}?done=1", status_code=303)


@requires(OPERATORS)
async def resend(request: Request) -> Response:
    """Send the page the respondent is at again."""
    return await _invitation_action(request, "resend")


@requires(OPERATORS)
async def correct_address(request: Request) -> Response:
    """Correct the address and invite again."""
    return await _invitation_action(request, "readdress")


@requires(OPERATORS)
async def stop(request: Request) -> Response:
    """Stop all contact with the respondent."""
    return await _invitation_action(request, "stop")


# --- dead messages ------------------------------------------------------------------------


@requires(OPERATORS)
async def outbox_page(request: Request) -> Response:
    """Messages given up, with the reason, to send again."""
    ctx = context_of(request)

    def load() -> Table:
        with transaction(ctx.factory) as session:
            dead = counts.dead_messages(session)
        table = Table(caption=ctx.t("outbox"), headers=[
            "Nr." if _nb(ctx) else "No.", ctx.t("kind"), ctx.t("channel"), ctx.t("address"),
            "Forsøk" if _nb(ctx) else "Attempts", ctx.t("reason")], name="dead",
            numeric=frozenset({0, 4}))
        table.rows = [[d.message.id, _name(ctx, KIND_NAMES, d.message.kind), d.message.channel,
                       d.message.recipient, d.message.attempts, d.reason] for d in dead]
        return table

    table = await run_in_threadpool(load)
    notice = request.query_params.get("replayed")
    return page(request, "outbox.html", {
        "notice": f"{ctx.t('done')} ({notice})" if notice else None}, [table], "mislykkede")


@requires(OPERATORS)
async def outbox_replay(request: Request) -> Response:
    """Queue dead messages again: one (`id`) or all."""
    ctx = context_of(request)
    login = await current_login(request)
    assert login is not None  # noqa: S101 - `requires` let only a login through
    form = await request.form()
    raw = str(form.get("id", "")).strip()
    ids = [int(raw)] if raw.isdigit() else None

    def act() -> int:
        now = ctx.clock()
        with transaction(ctx.factory) as session:
            n = replay(session, ids=ids, now=now)
            audit(session, actor=login.name, action="outbox replayed",
                  target=f"outbox {raw}" if ids else f"all dead ({n})", now=now)
            return n

    n = await run_in_threadpool(act)
    if ctx.on_queued is not None:
        ctx.on_queued()
    return RedirectResponse(f"/outbox?replayed={n}", status_code=303)


# --- the quarantine -----------------------------------------------------------------------


def _headers(raw: bytes | None) -> list[tuple[str, str]]:
    if not raw:
        return []
    try:
        parsed = BytesHeaderParser(policy=default_policy).parsebytes(raw[:65536])
        return [(name, str(parsed.get(name, ""))[:300]) for name in _SHOWN_HEADERS
                if parsed.get(name) is not None]
    except Exception:  # a message whose very headers cannot be parsed is still listed
        return [("", "(unreadable headers)")]


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One quarantined message as the page shows it."""

    id: int
    channel: str
    reason: str
    at: str
    headers: list[tuple[str, str]]
    has_raw: bool


@requires(OPERATORS)
async def quarantine_page(request: Request) -> Response:
    """Messages set aside, with the reason and their headers."""
    ctx = context_of(request)

    def load() -> tuple[list[Quarantined], Table]:
        with transaction(ctx.factory) as session:
            items = [Quarantined(m.id, m.channel, m.error or "", local_time(m.received_at),
                                 _headers(m.raw), m.raw is not None)
                     for m in quarantined(session)]
        table = Table(caption=ctx.t("quarantine"), headers=[
            "Nr." if _nb(ctx) else "No.", "Mottatt" if _nb(ctx) else "Received",
            ctx.t("channel"), ctx.t("reason"), "Fra" if _nb(ctx) else "From",
            "Emne" if _nb(ctx) else "Subject"], numeric=frozenset({0}), name="quarantine")
        for item in items:
            headers = dict(item.headers)
            table.rows.append([item.id, item.at, item.channel, item.reason,
                               headers.get("From", ""), headers.get("Subject", "")])
        return items, table

    items, table = await run_in_threadpool(load)
    notice = ctx.t("done") if request.query_params.get("done") else None
    return page(request, "quarantine.html", {"items": items, "notice": notice}, [table],
                "karantene")


@requires(OPERATORS)
async def quarantine_raw(request: Request) -> Response:
    """Download one quarantined message as it arrived (.eml)."""
    ctx = context_of(request)
    inbox_id = _int_param(request, "inbox_id")
    login = await current_login(request)
    assert login is not None  # noqa: S101 - `requires` let only a login through

    def load() -> bytes | None:
        with transaction(ctx.factory) as session:
            row = session.get(InboxMessage, inbox_id)
            if row is None or row.raw is None:
                return None
            audit(session, actor=login.name, action="quarantine downloaded",
                  target=f"inbox {inbox_id}", now=ctx.clock())
            return bytes(row.raw)

    raw = await run_in_threadpool(load)
    if raw is None:
        raise HTTPException(404)
    return Response(raw, media_type="message/rfc822", headers={
        "content-disposition": f'attachment; filename="karantene-{inbox_id}.eml"'})


async def _quarantine_action(request: Request, action: str) -> Response:
    ctx = context_of(request)
    inbox_id = _int_param(request, "inbox_id")
    login = await current_login(request)
    assert login is not None  # noqa: S101 - `requires` let only a login through

    def act() -> None:
        now = ctx.clock()
        with transaction(ctx.factory) as session:
            if action == "release":
                done = release_quarantined(session, [inbox_id], now=now) > 0
            else:
                done = discard_quarantined(session, inbox_id, now=now)
            if done:
                audit(session, actor=login.name, action=f"quarantine {action}d",
                      target=f"inbox {inbox_id}", now=now)

    await run_in_threadpool(act)
    return RedirectResponse("/quarantine?done=1", status_code=303)


@requires(OPERATORS)
async def quarantine_release(request: Request) -> Response:
    """Put a quarantined message back to be read again (after a fix)."""
    return await _quarantine_action(request, "release")


@requires(OPERATORS)
async def quarantine_discard(request: Request) -> Response:
    """Throw a quarantined message away."""
    return await _quarantine_action(request, "discard")


# --- who needs a hand ---------------------------------------------------------------------

#: Rows per list on the page (a phone's worth of scrolling), and in its CSV download.
_PAGE_ROWS = 100
_CSV_ROWS = 20_000


@requires(OPERATORS)
async def attention(request: Request) -> Response:
    """Stuck conversations, and bounced invitations that need a new address or a substitute."""
    ctx = context_of(request)
    days = ctx.settings.web.stuck_days
    survey = request.query_params.get("survey", "") or None
    shown = _CSV_ROWS if request.query_params.get("format") == "csv" else _PAGE_ROWS

    def load() -> list[Table]:
        now = ctx.clock()
        with transaction(ctx.factory) as session:
            stuck = counts.stuck(session, survey, before=now - dt.timedelta(days=days),
                                 limit=shown + 1)
            bounced = counts.bounced(session, survey, limit=shown + 1)
        headers = [ctx.t("who"), ctx.t("address"), ctx.t("survey"), "Stratum",
                   "Siden" if _nb(ctx) else "Since"]
        tables = []
        for caption, rows, name in ((ctx.t("stuck", n=days), stuck, "stuck"),
                                    (ctx.t("bounced_list"), bounced, "bounced")):
            if len(rows) > shown:
                caption = f"{caption} ({ctx.t('first_rows', n=shown)})"
                rows = rows[:shown]
            table = Table(caption=caption, headers=headers, name=name)
            table.rows = [[Link(w.respondent.name, f"/respondent/{w.respondent.id}"),
                           w.respondent.email, w.invitation.survey_id,
                           f"{w.respondent.sector or '–'} / {w.respondent.landsdel} / "
                           f"{w.respondent.size_class}",
                           local_time(w.since) if w.since else ""] for w in rows]
            tables.append(table)
        return tables

    tables = await run_in_threadpool(load)
    return page(request, "tables.html", {"heading": ctx.t("attention"),
                                         "intro": ctx.t("replace_hint")}, tables, "oppfolging")


__all__ = ["attention", "correct_address", "delivery_log", "find", "outbox_page",
           "outbox_replay", "quarantine_discard", "quarantine_page", "quarantine_raw",
           "quarantine_release", "resend", "respondent_page", "stop"]
