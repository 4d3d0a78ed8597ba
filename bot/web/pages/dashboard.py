"""The operator's overview of one survey: the funnel by channel, the strata against their
target, and sends and completions per day. Refreshes itself (see `static/refresh.js`)."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from bot.web.auth import OPERATORS, requires
from bot.web.chart import day_chart
from bot.web.context import WebContext, context_of
from bot.web.render import page
from bot.web.tables import Mark, Table
from storage import dashboard as counts
from storage.db import transaction

_FUNNEL_NAMES = {
    "sample": ("I utvalget", "In the sample"), "queued": ("I kø", "Queued"),
    "sent": ("Invitasjon sendt", "Invitation sent"),
    "bounced_hard": ("Bounce, permanent", "Bounced, hard"),
    "bounced_soft": ("Bounce, midlertidig", "Bounced, soft"),
    "started": ("Påbegynt", "Started"), "finished": ("Fullført", "Finished"),
    "opted_out": ("Avmeldt", "Opted out"), "away": ("Borte (autosvar)", "Away (auto-reply)"),
    "desk_open": ("Åpne spørsmål til kontaktpersonen", "Open desk questions"),
}
_CHANNELS = {"email": ("E-post", "Email"), "telegram": ("Telegram", "Telegram"),
             "total": ("I alt", "Total")}
_STRATUM_HEADERS = (("Sektor", "Sector"), ("Landsdel", "Region"), ("Størrelse", "Size"),
                    ("Utvalg", "Sample"), ("Påbegynt", "Started"), ("Fullført", "Finished"),
                    ("Svarprosent", "Response rate"))
_DAY_HEADERS = (("Dag", "Day"), ("Meldinger sendt", "Messages sent"), ("Fullført", "Finished"))


@dataclass(frozen=True, slots=True)
class Figures:
    """What the dashboard counts for one survey (kept for a refresh in `ctx.figures`)."""

    funnel: counts.Funnel
    strata: list[counts.StratumRow]
    days: list[counts.Day]


def _w(ctx: WebContext, pair: tuple[str, str]) -> str:
    return pair[0] if ctx.settings.web.lang == "nb" else pair[1]


def chosen_survey(ctx: WebContext, request: Request) -> str:
    """The survey asked for, else the first configured one."""
    asked = request.query_params.get("survey", "")
    ids = [s.id for s in ctx.settings.surveys]
    return asked if asked in ids else (ids[0] if ids else "")


@requires(OPERATORS)
async def dashboard(request: Request) -> Response:
    """The funnel, the strata and the days of one survey."""
    ctx = context_of(request)
    survey_id = chosen_survey(ctx, request)
    target = next((s.target_rate for s in ctx.settings.surveys if s.id == survey_id), 0.0)

    def count() -> Figures:
        now = ctx.clock()
        with transaction(ctx.factory) as session:
            return Figures(counts.funnel(session, survey_id, today=now.date()),
                           counts.strata(session, survey_id), counts.days(session, survey_id))

    def load() -> tuple[list[Table], str]:
        figures = ctx.figures.get(("dashboard", survey_id), count)
        assert isinstance(figures, Figures)  # noqa: S101 - the only value stored by this key
        funnel, strata, days = figures.funnel, figures.strata, figures.days
        columns = [*funnel.channels, "total"]
        table = Table(caption=ctx.t("funnel"),
                      headers=["", *(_w(ctx, _CHANNELS.get(c, (c, c))) for c in columns)],
                      numeric=frozenset(range(1, len(columns) + 1)), name="funnel")
        for row in counts.FUNNEL:
            table.rows.append([_w(ctx, _FUNNEL_NAMES[row]),
                               *(funnel.get(row, c) for c in columns)])
        by_stratum = Table(caption=ctx.t("by_stratum"),
                           headers=[_w(ctx, h) for h in _STRATUM_HEADERS],
                           numeric=frozenset({3, 4, 5, 6}), name="strata")
        for s in strata:
            rate = f"{100 * s.rate:.0f} %"
            by_stratum.rows.append([s.sector or "–", s.landsdel, s.size_class, s.sample,
                                    s.started, s.finished,
                                    Mark(rate, ctx.t("under_target"))
                                    if s.sample and s.rate < target else rate])
        per_day = Table(caption=ctx.t("per_day"), headers=[_w(ctx, h) for h in _DAY_HEADERS],
                        numeric=frozenset({1, 2}), name="days")
        per_day.rows = [[d.day.isoformat(), d.sent, d.finished] for d in days]
        chart = day_chart(days, title=ctx.t("per_day"), sent_label=_w(ctx, _DAY_HEADERS[1]),
                          done_label=_w(ctx, _DAY_HEADERS[2]))
        return [table, by_stratum, per_day], chart

    tables, chart = await run_in_threadpool(load)
    return page(request, "dashboard.html", {
        "survey": survey_id, "surveys": [s.id for s in ctx.settings.surveys],
        "chart": Markup(chart),  # noqa: S704 - built by bot.web.chart, every text escaped
        "target": f"{100 * target:.0f} %"}, tables, f"oversikt-{survey_id}")
