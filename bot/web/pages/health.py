"""Is svarbot working: heartbeats, the last send and receipt per channel, queue depths, the
alerts; and, for admins, the audit log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from bot.health import current_alerts
from bot.web.auth import OPERATORS, requires
from bot.web.context import WebContext, context_of
from bot.web.render import page
from bot.web.tables import Mark, Table
from storage import dashboard as counts
from storage.db import transaction
from storage.health import heartbeats
from storage.history import local_time
from storage.schema import AuditEvent

#: A heartbeat older than this is shown as a problem.
STALE = dt.timedelta(minutes=5)

_PARTS = (("leader", "Leder (kampanjeklokken)", "Leader (campaign clock)"),
          ("imap", "IMAP-sjekk", "IMAP check"),
          ("telegram", "Telegram-polling", "Telegram polling"))


def _nb(ctx: WebContext) -> bool:
    return ctx.settings.web.lang == "nb"


def _when(ctx: WebContext, moment: dt.datetime | None, now: dt.datetime) -> str | Mark:
    if moment is None:
        return Mark("aldri" if _nb(ctx) else "never", "ikke sett" if _nb(ctx) else "not seen")
    at = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    shown = local_time(at, "%Y-%m-%d %H:%M:%S")
    if now - at > STALE:
        return Mark(shown, "for lenge siden" if _nb(ctx) else "too long ago")
    return shown


@requires(OPERATORS)
async def health(request: Request) -> Response:
    """Heartbeats, last traffic, queue depths and alerts."""
    ctx = context_of(request)

    def load() -> list[Table]:
        now = ctx.clock()
        nb = _nb(ctx)
        with transaction(ctx.factory) as session:
            beats = heartbeats(session)
            alerts = current_alerts(session, ctx.settings, now=now)
            depths = counts.depths(session)
            traffic = [(c, counts.last_sent(session, c), counts.last_received(session, c))
                       for c in ("email", "telegram")]
        alert_table = Table(caption=ctx.t("alerts"), headers=["", ""], name="alerts")
        alert_table.rows = [[Mark("!", alert.key), alert.text(ctx.settings.web.lang)]
                            for alert in alerts]
        parts = Table(caption="Deler" if nb else "Parts", headers=[
            "Del" if nb else "Part", "Sist i arbeid" if nb else "Last worked",
            "Detalj" if nb else "Detail"], name="parts")
        for key, name_nb, name_en in _PARTS:
            if key == "telegram" and not ctx.settings.telegram.enabled:
                continue
            if key == "imap" and not ctx.settings.email.imap.enabled:
                continue
            found = beats.get(key)
            parts.rows.append([name_nb if nb else name_en,
                               _when(ctx, found.at if found else None, now),
                               found.detail if found else ""])
        last = Table(caption="Siste trafikk" if nb else "Last traffic", headers=[
            ctx.t("channel"), "Sist sendt" if nb else "Last sent",
            "Sist mottatt" if nb else "Last received"], name="traffic")
        last.rows = [[c, local_time(s, "%Y-%m-%d %H:%M:%S") if s else "–",
                      local_time(r, "%Y-%m-%d %H:%M:%S") if r else "–"]
                     for c, s, r in traffic]
        queues = Table(caption="Køer" if nb else "Queues", headers=[
            "Kø" if nb else "Queue", ctx.t("status"), "Antall" if nb else "Count"],
            numeric=frozenset({2}), name="queues")
        queues.rows = [[f"outbox {channel}", status, n]
                       for (status, channel), n in sorted(depths.outbox.items())]
        queues.rows += [["inbox", status, n] for status, n in sorted(depths.inbox.items())]
        return [alert_table, parts, last, queues]

    tables = await run_in_threadpool(load)
    return page(request, "tables.html", {"heading": ctx.t("health"), "live": True}, tables,
                "drift")


@requires(frozenset({"admin"}))
async def audit_log(request: Request) -> Response:
    """Who changed what, newest first."""
    ctx = context_of(request)

    def load() -> Table:
        with transaction(ctx.factory) as session:
            rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())
                                        .limit(500)))
        table = Table(caption=ctx.t("audit"), headers=[
            "Tid" if _nb(ctx) else "Time", "Hvem" if _nb(ctx) else "Who",
            "Hva" if _nb(ctx) else "What", "Gjelder" if _nb(ctx) else "Target"], name="audit")
        table.rows = [[local_time(e.at, "%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.target]
                      for e in rows]
        return table

    table = await run_in_threadpool(load)
    return page(request, "tables.html", {"heading": ctx.t("audit")}, [table], "endringslogg")
