"""`svarbot plan`: the campaign as a dry run, before anything is sent and while it runs.

It answers the two questions operators ask: "what goes out when?" (a count per day, channel
and kind of message, with the days the send window is closed and why) and "why did this
person not get a reminder?" (each message with its time and reason). Nothing is written; the
answers come from the same rules the scheduler follows (`bot.campaign.jobs`, `bot.campaign.plan`).

Like every svarbot command, a problem with how it was called or configured (an unknown survey,
a survey without a plan, a database that cannot be opened) is one line and exit status 2.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import click

from bot.cli.common import config_option, fail, load_config
from bot.config import Settings, SurveySettings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.campaign.jobs import Decision
    from bot.campaign.plan import Plan

#: How message kinds are called in the table.
KIND_LABELS = {"invitation": "invitasjon", "reminder": "påminnelse", "page": "side",
               "confirmation": "bekreftelse", "closed": "stengt-svar", "info": "info"}
_STATUS_LABELS = {"open": "åpen", "closed": "stengt", "sealed": "forseglet"}
_WEEKDAYS = ("man", "tir", "ons", "tor", "fre", "lør", "søn")


def _survey(settings: Settings, survey_id: str) -> SurveySettings:
    """The configured survey, or exit 2 naming the ones there are."""
    for survey in settings.surveys:
        if survey.id == survey_id:
            if survey.plan is None:
                fail(f"survey {survey_id!r} has no plan: add a `plan:` section to it in "
                     "config.yaml")
            return survey
    known = ", ".join(s.id for s in settings.surveys) or "none"
    fail(f"unknown survey {survey_id!r} (configured: {known})")


def _day(day: dt.date) -> str:
    return f"{_WEEKDAYS[day.weekday()]} {day:%d.%m.%Y}"


def _moment(moment: dt.datetime | None, plan: Plan) -> str:
    return "" if moment is None else f"{moment.astimezone(plan.window.zone):%d.%m.%Y %H:%M}"


def _label(what: str) -> str:
    """`reminder 2` → `påminnelse 2`."""
    kind, _, number = what.partition(" ")
    return f"{KIND_LABELS.get(kind, kind)} {number}".strip()


def closed_days(plan: Plan, first: dt.date, last: dt.date) -> list[tuple[dt.date, str]]:
    """The days from `first` to `last` on which the window does not open at all, and why.

    Asked at the opening time, so the answer is about the day, not the hour. County-limited
    closures (a county's school break) are not shown: they do not close the day for everyone.
    """
    from bot.campaign.plan import closed_reason

    window = plan.window
    days: list[tuple[dt.date, str]] = []
    day = first
    while day <= last:
        reason = closed_reason(window, dt.datetime.combine(day, window.start,
                                                           tzinfo=window.zone))
        if reason is not None:
            days.append((day, reason))
        day += dt.timedelta(days=1)
    return days


def _closed(plan: Plan, status: str | None, now: dt.datetime) -> bool:
    """Whether the survey takes no more answers: closed (or sealed) in the database, or its
    plan's close is past (the scheduler closes it at its next tick)."""
    return status in ("closed", "sealed") or now >= plan.close_at


def _headline(survey_id: str, plan: Plan, status: str | None, now: dt.datetime) -> str:
    """`undersøkelse X: åpen; invitasjon …, stenger …`, or how it closed."""
    zone = plan.window.zone.key
    invite, close = _moment(plan.invite_at, plan), _moment(plan.close_at, plan)
    missing = "ikke i databasen (svarbot init); " if status is None else ""
    if status == "sealed":
        return (f"undersøkelse {survey_id}: forseglet; stengt {close} ({zone}), "
                f"invitasjon {invite}")
    if _closed(plan, status, now):
        return f"undersøkelse {survey_id}: {missing}stengt {close} ({zone}); invitasjon {invite}"
    shown = _STATUS_LABELS.get(status, status) + "; " if status else missing
    return f"undersøkelse {survey_id}: {shown}invitasjon {invite}, stenger {close} ({zone})"


def _new_wave(survey_id: str, status: str | None, config: str) -> str:
    """What to change for the survey to send again, once it has closed (wrapped at 100)."""
    import textwrap

    if status in ("closed", "sealed"):
        advice = (f"En ny runde er en ny undersøkelse: legg den inn i {config} med en ny id "
                  f"(med spørreskjemaet til {survey_id}, eller et nytt) og plan.invite og "
                  f"plan.close fram i tid, og importer utvalget med `svarbot import FIL "
                  f"--survey NY-ID`.")
    else:
        advice = (f"For å sende: sett plan.invite og plan.close for {survey_id} i {config} "
                  f"til datoer fram i tid (og flytt datoene i plan.window.blocked). Er den "
                  f"alt gjennomført, er en ny runde en ny undersøkelse med ny id.")
    return textwrap.fill(advice, width=100, break_on_hyphens=False)


def _print_calendar(survey_id: str, plan: Plan, status: str | None,
                    rows: list[tuple[dt.date, str, str, int]], as_json: bool, *,
                    now: dt.datetime, config: str) -> None:
    from rich.console import Console
    from rich.table import Table

    closed = closed_days(plan, rows[0][0], rows[-1][0]) if rows else []
    ended = _closed(plan, status, now)
    if as_json:
        click.echo(json.dumps({
            "survey": survey_id, "status": status, "closed": ended,
            "invite_at": plan.invite_at.isoformat(), "close_at": plan.close_at.isoformat(),
            "days": [{"day": d.isoformat(), "channel": c, "kind": k, "count": n}
                     for d, c, k, n in rows],
            "closed_days": [{"day": d.isoformat(), "reason": r} for d, r in closed]},
            ensure_ascii=False, indent=2))
        return
    click.echo(_headline(survey_id, plan, status, now))
    if not rows:
        click.echo("ingenting mer å sende" + (": undersøkelsen er stengt" if ended else ""))
        if ended:
            click.echo(_new_wave(survey_id, status, config))
        return
    table = Table(title=f"plan for {survey_id}")
    for column in ("dag", "kanal", "type"):
        table.add_column(column)
    table.add_column("antall", justify="right")
    table.add_column("merknad")
    entries: list[tuple[dt.date, int, tuple[str, str, str, str, str]]] = [
        (day, 0, (_day(day), channel, KIND_LABELS.get(kind, kind), str(n), ""))
        for day, channel, kind, n in rows]
    entries += [(day, 1, (_day(day), "", "", "", f"stengt: {reason}"))
                for day, reason in closed]
    for _day_key, _order, cells in sorted(entries, key=lambda e: (e[0], e[1])):
        table.add_row(*cells, style="dim" if cells[4] else None)
    table.add_row("i alt", "", "", str(sum(n for *_rest, n in rows)), "", style="bold")
    Console(width=100).print(table)
    if ended:
        click.echo(_new_wave(survey_id, status, config))


def _print_decisions(invitation_id: int, plan: Plan, decisions: list[Decision],
                     as_json: bool, *, headline: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if as_json:
        click.echo(json.dumps({
            "invitation": invitation_id,
            "decisions": [{"what": d.what, "when": None if d.when is None
                           else d.when.isoformat(), "reason": d.reason} for d in decisions]},
            ensure_ascii=False, indent=2))
        return
    if headline is not None:
        click.echo(headline)
    table = Table(title=f"invitasjon {invitation_id}")
    table.add_column("melding")
    table.add_column("når")
    table.add_column("hvorfor")
    for d in decisions:
        table.add_row(_label(d.what), _moment(d.when, plan), d.reason)
    Console(width=100).print(table)


@click.command("plan")
@click.argument("survey_id", metavar="SURVEY")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--respondent", "who", metavar="ID|NAME|ADDRESS",
              help="Explain one person's messages instead: the invitation id (shown by "
                   "`svarbot find` for each survey, and in the log lines \"invitation 42: "
                   "pending -> invited\"), or a piece of the name or address of one person "
                   "invited to SURVEY.")
@config_option
def plan_command(survey_id: str, as_json: bool, who: str | None,
                 config_path: str | None) -> None:
    """Show what SURVEY's campaign will send, per day, or why one person gets what.

    A dry run: nothing is queued or changed. Reminders are projected from the current state,
    as if nobody answers further; days the send window is closed are listed with the reason.
    A survey whose close is past is shown as closed, with what to change in the
    configuration for a new wave. A name or address that fits several people lists them
    (exit status 1).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from bot.campaign.jobs import CampaignError, calendar, explain, survey_plan
    from bot.conversation.outgoing import SurveyContext
    from flows.loader import QuestionnaireError, load_reference
    from storage.db import StorageError, session_factory
    from storage.migrate import open_database
    from storage.schema import Survey

    settings = load_config(config_path)
    survey = _survey(settings, survey_id)
    plan = survey_plan(survey)
    if plan is None:  # _survey has checked; this tells the type checker
        fail(f"survey {survey_id!r} has no plan")
    try:
        surveys = {survey_id: SurveyContext(settings=survey,
                                            questionnaire=load_reference(survey.questionnaire))}
    except QuestionnaireError as exc:
        fail(f"survey {survey_id!r}: questionnaire {survey.questionnaire!r} cannot be loaded: "
             f"{exc.problems[0] if exc.problems else exc}")
    try:
        engine = open_database(settings.database.url)
    except StorageError as exc:
        fail(str(exc))
    now = dt.datetime.now(dt.UTC)
    invitation_id: int | None = None
    try:
        with session_factory(engine)() as session:
            db_survey = session.get(Survey, survey_id)
            status = None if db_survey is None else str(db_survey.status)
            if who is not None:
                invitation_id = _invitation_id(session, who, survey_id)
                decisions = explain(session, settings, surveys, invitation_id, now=now)
            else:
                rows = calendar(session, settings, surveys, survey_id, now=now)
    except CampaignError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(f"database error: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}")
    finally:
        engine.dispose()
    if invitation_id is not None:
        headline = _headline(survey_id, plan, status, now) if _closed(plan, status, now) \
            else None
        _print_decisions(invitation_id, plan, decisions, as_json, headline=headline)
    else:
        _print_calendar(survey_id, plan, status, rows, as_json, now=now,
                        config=config_path or "config.yaml")


def _invitation_id(session: Session, who: str, survey_id: str) -> int:
    """The invitation `--respondent` names: by its id, or the one person in SURVEY whose
    name or address it fits (`svarbot find`'s search; several are listed, exit 1)."""
    from sqlalchemy import select

    from bot.cli.find import resolve
    from storage.history import Words
    from storage.schema import Invitation

    text = who.strip()
    if text.isascii() and text.isdigit():
        invitation = session.get(Invitation, int(text))
        if invitation is None or invitation.survey_id != survey_id:
            fail(f"no invitation {text} in survey {survey_id!r} (`svarbot find` shows "
                 "each person's invitation ids)")
        return invitation.id
    respondent = resolve(session, text, Words("nb"), survey=survey_id)
    return session.scalars(select(Invitation.id).where(
        Invitation.respondent_id == respondent.id, Invitation.survey_id == survey_id)).one()


COMMANDS: list[click.Command] = [plan_command]
