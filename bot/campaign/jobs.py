"""The campaign: what the scheduler's fixed jobs do each time the clock ticks.

The scheduler is a clock, not a database (style.md): it holds no per-respondent jobs. Each
function here asks our own tables what is due at `now` and acts on it, so a restart, a missed
tick or a second run at the same moment changes nothing that the first did not. What makes
that true is the outbox's idempotency keys: an invitation is `invitation:<id>` (the key
`svarbot invite` uses too) and reminder n is `reminder:<id>:<n>`. A key can be queued once,
and whatever goes with it (the conversation state, the reminder count) is written in the same
transaction, only when the row was new.

The calendar itself (send window, holidays, reminder spacing) is `bot.campaign.plan`; this module
brings it together with the database. Mail is queued with `not_before` at the window's next
opening for the respondent's county, so a wave that comes due on a Saturday or at 07:00 waits
in the outbox instead of going out at once.

`explain` and `calendar` are the dry run behind `svarbot plan`: the same rules, read only.
Their reasons are Norwegian, like the ones `bot.campaign.plan` gives, because operators read them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    String,
    and_,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.campaign.plan import (
    Plan,
    closed_reason,
    is_open,
    next_opening,
    reminder_at,
)
from bot.channels.base import Channel, Channels
from bot.channels.registry import configured_channels
from bot.config import Settings, SurveySettings, plan_from_settings
from bot.conversation.outgoing import (
    SurveyContext,
    conversation_of,
    invitation_key,
    others_than,
    queue_invitation,
    queue_message,
    reaching_channel,
    reminder_key,
    sql_invitation_key,
)
from bot.conversation.steps import apply_step
from flows.engine import advance
from flows.events import Reminder
from storage.answers import AnswerStore, scrub, seal
from storage.claim import WAVE_KINDS
from storage.db import StorageError, transaction
from storage.desk import has_open_query, open_query_exists
from storage.identity import close_invitations, close_survey, count_reminder
from storage.outbox import Result, find_by_key, history, postpone, record
from storage.schema import (
    Invitation,
    InvitationStatus,
    OutboxMessage,
    OutboxStatus,
    Respondent,
    Survey,
    SurveyStatus,
)

log = logging.getLogger(__name__)

#: Invitations handled per transaction: a crash mid-wave keeps what was committed, and a
#: re-run carries on from there (the keys skip what is already queued).
CHUNK = 500
#: Who may get a reminder: invited and not yet done. Never pending (not invited yet),
#: finished, bounced, opted out or closed.
REMINDABLE = (InvitationStatus.INVITED, InvitationStatus.DELIVERED, InvitationStatus.STARTED)
#: Messages the close takes back, and the states in which that is still possible. A message
#: being sent (`sending`) is left to the sender: it may already be on the wire.
CAMPAIGN_KINDS = WAVE_KINDS
_TAKE_BACK = (OutboxStatus.QUEUED, OutboxStatus.RETRY)
_UNSENT = (OutboxStatus.QUEUED, OutboxStatus.RETRY, OutboxStatus.SENDING)
#: An invitation in one of these states is left alone by the close.
_KEEP_AT_CLOSE = (InvitationStatus.FINISHED, InvitationStatus.BOUNCED,
                  InvitationStatus.OPTED_OUT, InvitationStatus.CLOSED)
#: Local clock times shift by up to an hour at a change of clocks; the SQL pre-filter for
#: reminders allows for it (and more), `reminder_at` then decides exactly.
_PREFILTER_SLACK = dt.timedelta(hours=3)
#: Why a reminder is not sent, by the invitation's status (`svarbot plan --respondent`).
_ENDED = {
    InvitationStatus.FINISHED: "ikke sendt: ferdig",
    InvitationStatus.BOUNCED: "ikke sendt: adressen virker ikke (bounce)",
    InvitationStatus.OPTED_OUT: "ikke sendt: meldt av",
    InvitationStatus.CLOSED: "ikke sendt: undersøkelsen er stengt",
}
_WAITING_FOR_DESK = "ikke sendt: venter på svar fra kontaktpersonen"


class CampaignError(Exception):
    """A dry-run question cannot be answered (unknown invitation, no plan); one line."""


def survey_plan(survey: SurveySettings) -> Plan | None:
    """The survey's campaign plan, or None when it has none (it is then run by hand)."""
    return None if survey.plan is None else plan_from_settings(survey.plan)


def _running(survey: SurveySettings, now: dt.datetime) -> Plan | None:
    """The survey's plan while its campaign runs (invited, not closed); else None."""
    plan = survey_plan(survey)
    if plan is None or plan.invite_at > now or now >= plan.close_at:
        return None
    return plan


def plan_channel(settings: Settings, plan: Plan) -> Channel | None:
    """The channel the plan sends on; None (logged) when that channel is not enabled."""
    channel = configured_channels(settings).get(plan.channel)
    if channel is None:
        log.warning("the plan sends on %s, which is not enabled in the configuration",
                    plan.channel)
    return channel


def _utc(moment: dt.datetime) -> dt.datetime:
    """`moment` as aware UTC (SQLite hands back naive values, stored as UTC)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _maybe_utc(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else _utc(moment)


def _deadline(channel: Channel, plan: Plan, not_before: dt.datetime) -> dt.datetime:
    """When a campaign message stops being worth sending: at the close, or after the
    channel's usual retry period counted from when it may first go (not from when it was
    queued, which can be a weekend earlier)."""
    return min(plan.close_at, not_before + channel.retry_for())


def _open_in_db(session: Session, survey_id: str) -> bool:
    survey = session.get(Survey, survey_id)
    return survey is not None and survey.status == SurveyStatus.OPEN


# --- keys in SQL ----------------------------------------------------------------------------


def _sql_last_reminder_key() -> ColumnElement[str]:
    """The key of the invitation's latest reminder (`reminder:<id>:<reminders_sent>`)."""
    return (literal("reminder:") + cast(Invitation.id, String) + literal(":")
            + cast(Invitation.reminders_sent, String))


def _sent_or_queued_at(key: ColumnElement[str]) -> Any:
    """When the message under `key` was sent, else queued; NULL when there is none."""
    row = aliased(OutboxMessage)
    return (select(func.coalesce(row.sent_at, row.created_at))
            .where(row.idempotency_key == key).scalar_subquery())


# --- the invitation wave --------------------------------------------------------------------


def due_invitations(session_factory: sessionmaker[Session], settings: Settings,
                    surveys: Mapping[str, SurveyContext], store: AnswerStore, *,
                    now: dt.datetime) -> int:
    """Queue the invitation of every pending invitation whose survey's wave has begun.

    A survey takes part when it has a plan, its `invite_at` has come, it is open in the
    database and `now` is before its close. Each message may go from the window's next
    opening for the respondent's county. Returns how many were queued now.
    """
    now = _utc(now)
    queued = 0
    for survey_id, survey in surveys.items():
        plan = _running(survey.settings, now)
        channel = None if plan is None else plan_channel(settings, plan)
        if plan is None or channel is None:
            continue
        held = hold_outside_window(session_factory, survey.settings.id, plan, now=now)
        if held:
            log.info("survey %s: %d messages wait for the send window to open", survey_id,
                     held)
        count = _wave(session_factory, configured_channels(settings), channel, survey, plan,
                      store, now)
        if count:
            log.info("survey %s: %d invitations queued", survey_id, count)
        queued += count
    return queued


#: Kinds of message that keep to the send window. Pages, confirmations and "closed" answer
#: a respondent's own mail and go at once, whatever the hour.
WINDOWED_KINDS = ("invitation", "reminder")


def hold_outside_window(session_factory: sessionmaker[Session], survey_id: str, plan: Plan, *,
                        now: dt.datetime) -> int:
    """Move queued invitations and reminders that are due while the window is closed to its
    next opening (per county); how many were moved.

    Rows get their window when they are queued, but a long wave (30 a minute from Exchange
    takes hours) or a retry can come due after closing time: this tick puts them off again.
    """
    waiting = (OutboxStatus.QUEUED, OutboxStatus.RETRY)
    moved = 0
    with transaction(session_factory) as session:
        due = (select(OutboxMessage.id, Respondent.county)
               .join(Invitation, Invitation.id == OutboxMessage.invitation_id)
               .join(Respondent, Respondent.id == Invitation.respondent_id)
               .where(Invitation.survey_id == survey_id,
                      OutboxMessage.kind.in_(WINDOWED_KINDS),
                      OutboxMessage.status.in_(waiting), OutboxMessage.next_attempt_at <= now))
        by_county: dict[str, list[int]] = {}
        for outbox_id, county in session.execute(due):
            by_county.setdefault(county, []).append(outbox_id)
        for county, ids in by_county.items():
            if is_open(plan.window, now, county=county):
                continue
            opening = next_opening(plan.window, now, county=county)
            for first in range(0, len(ids), CHUNK):
                postpone(session, ids[first:first + CHUNK], until=opening)
            moved += len(ids)
    return moved


def _unqueued(session: Session, channel: Channel, survey_id: str,
              after: int) -> list[tuple[Invitation, Respondent]]:
    """Pending invitations reachable on `channel` and no invitation message yet, by id after
    `after`.

    Skipping those already queued keeps a tick cheap while a wave of thousands drains
    through the sender (they stay pending until sent).
    """
    queued = exists().where(OutboxMessage.idempotency_key == sql_invitation_key())
    return [(invitation, respondent) for invitation, respondent in session.execute(
        select(Invitation, Respondent)
        .join(Respondent, Respondent.id == Invitation.respondent_id)
        .where(Invitation.survey_id == survey_id, Invitation.status == InvitationStatus.PENDING,
               channel.reachable(), Invitation.id > after, ~queued)
        .order_by(Invitation.id).limit(CHUNK))]


def _wave(factory: sessionmaker[Session], channels: Channels, channel: Channel,
          survey: SurveyContext, plan: Plan, store: AnswerStore, now: dt.datetime) -> int:
    start = max(now, plan.invite_at)
    after, queued = 0, 0
    while True:
        with transaction(factory) as session:
            if not _open_in_db(session, survey.settings.id):
                return queued
            rows = _unqueued(session, channel, survey.settings.id, after)
            for invitation, respondent in rows:
                not_before = next_opening(plan.window, start, county=respondent.county)
                if queue_invitation(session, channel, survey, store, invitation, respondent,
                                    now=now, not_before=not_before,
                                    deadline=_deadline(channel, plan, not_before),
                                    others=others_than(channels, channel)):
                    queued += 1
        if len(rows) < CHUNK:
            return queued
        after = rows[-1][0].id


# --- reminders ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _State:
    """What the reminder rules need to know about one invitation (one query for all)."""

    invitation_id: int
    status: InvitationStatus
    reminders_sent: int
    away_until: dt.date | None
    county: str | None
    invited_at: dt.datetime | None
    last_reminder_at: dt.datetime | None
    desk_query_open: bool
    last_channel: str | None = None


def _states(channel: Channel, survey_id: str, statuses: Sequence[InvitationStatus],
            extra: Sequence[ColumnElement[bool]] = ()) -> Select[Any]:
    """One query for the reminder state of a survey's invitations reachable on `channel`.

    The invitation's and the latest reminder's times come from the outbox by key (a unique
    index), and the open desk query from an indexed EXISTS: no query per invitation.
    """
    invited_at = _sent_or_queued_at(sql_invitation_key())
    last_reminder_at = _sent_or_queued_at(_sql_last_reminder_key())
    return (select(Invitation.id, Invitation.status, Invitation.reminders_sent,
                   Invitation.away_until, Respondent.county, invited_at.label("invited_at"),
                   last_reminder_at.label("last_reminder_at"),
                   open_query_exists().label("desk_query_open"), Invitation.last_channel)
            .join(Respondent, Respondent.id == Invitation.respondent_id)
            .where(Invitation.survey_id == survey_id, Invitation.status.in_(statuses),
                   channel.reachable(), *extra)
            .order_by(Invitation.id))


def _read_states(session: Session, query: Select[Any]) -> Iterator[_State]:
    for row in session.execute(query):
        yield _State(invitation_id=row.id, status=InvitationStatus(row.status),
                     reminders_sent=row.reminders_sent, away_until=row.away_until,
                     county=row.county, invited_at=_maybe_utc(row.invited_at),
                     last_reminder_at=_maybe_utc(row.last_reminder_at),
                     desk_query_open=bool(row.desk_query_open),
                     last_channel=row.last_channel)


def _allowed(plan: Plan) -> int:
    """How many reminders the plan can send at most."""
    return min(plan.max_reminders, len(plan.reminder_days))


def _reminder_prefilter(plan: Plan, now: dt.datetime) -> list[ColumnElement[bool]]:
    """Conditions every invitation with a reminder due at `now` meets, as plain comparisons.

    They let the database drop the many invitations that cannot be due yet, so that
    `reminder_at` runs only for the few that may be. Each is implied by `reminder_at`'s rule
    (due no sooner than the days after the invitation, the gap after the previous reminder,
    the day after an absence), with slack for changes of clocks.
    """
    invited_at = _sent_or_queued_at(sql_invitation_key())
    last_reminder_at = _sent_or_queued_at(_sql_last_reminder_key())
    by_count = [and_(Invitation.reminders_sent == sent,
                     invited_at <= now - dt.timedelta(days=days) + _PREFILTER_SLACK)
                for sent, days in enumerate(plan.reminder_days[:_allowed(plan)])]
    return [or_(*by_count) if by_count else literal(False),
            or_(last_reminder_at.is_(None), last_reminder_at <= now - plan.min_gap),
            or_(Invitation.away_until.is_(None), Invitation.away_until <= now.date()),
            ~open_query_exists()]


def due_reminders(session_factory: sessionmaker[Session], settings: Settings,
                  surveys: Mapping[str, SurveyContext], store: AnswerStore, *,
                  now: dt.datetime) -> int:
    """Queue every reminder that `bot.campaign.plan.reminder_at` says is due at `now`.

    Only invited, delivered or started invitations get one, never while a question of theirs
    waits for the contact person, and at most the plan's maximum. The reminder carries where
    the respondent stands ("Du har svart på 12 av 31 spørsmål som gjelder deg") and the next
    page, from the engine. Returns how many were queued now.
    """
    now = _utc(now)
    queued = 0
    for survey_id, survey in surveys.items():
        plan = _running(survey.settings, now)
        if plan is None or _allowed(plan) == 0:
            continue
        channel = plan_channel(settings, plan)
        if channel is None:
            continue
        with transaction(session_factory) as session:
            if not _open_in_db(session, survey_id):
                continue
            due = [(s.invitation_id, s.reminders_sent + 1)
                   for s in _read_states(session, _states(channel, survey_id, REMINDABLE,
                                                          _reminder_prefilter(plan, now)))
                   if _due_now(plan, s, now)]
        count = 0
        for start in range(0, len(due), CHUNK):
            count += _remind(session_factory, settings, channel, survey, plan, store,
                             dict(due[start:start + CHUNK]), now)
        if count:
            log.info("survey %s: %d reminders queued", survey_id, count)
        queued += count
    return queued


def reminder_channel(channels: Channels, planned: Channel, invitation: Invitation,
                     respondent: Respondent, *, follow: bool) -> Channel | None:
    """Where a reminder goes: the channel the respondent last wrote from (with `follow`),
    else the plan's, else any channel that still reaches them (a blocked chat falls back to
    email); None when none does."""
    first = invitation.last_channel if follow else None
    return reaching_channel(channels, (first, planned.name), invitation, respondent)


def _due_now(plan: Plan, state: _State, now: dt.datetime) -> bool:
    if state.invited_at is None:
        return False
    due, _reason = reminder_at(plan, state.reminders_sent + 1, invited_at=state.invited_at,
                               last_reminder_at=state.last_reminder_at,
                               away_until=state.away_until, county=state.county)
    return due is not None and due <= now


def _remind(factory: sessionmaker[Session], settings: Settings, planned: Channel,
            survey: SurveyContext,
            plan: Plan, store: AnswerStore, due: Mapping[int, int], now: dt.datetime) -> int:
    """Queue reminder n to each invitation in `due` ({invitation id: n}) in one transaction.

    The invitations are locked (PostgreSQL; others running at once skip them) and checked
    again: one that answered, opted out or asked the desk since it was picked is left alone,
    and so is one whose count moved on (another run sent that reminder).
    """
    q = survey.questionnaire
    queued = 0
    channels = configured_channels(settings)
    with transaction(factory) as session:
        rows = session.execute(
            select(Invitation, Respondent)
            .join(Respondent, Respondent.id == Invitation.respondent_id)
            .where(Invitation.id.in_(list(due)), Invitation.status.in_(REMINDABLE),
                   ~open_query_exists())
            .order_by(Invitation.id)
            .with_for_update(of=Invitation, skip_locked=True)).all()
        for invitation, respondent in rows:
            n = due[invitation.id]
            if invitation.reminders_sent != n - 1:
                continue
            channel = reminder_channel(channels, planned, invitation, respondent,
                                       follow=settings.telegram.reminders == "last_used")
            if channel is None:
                continue
            conversation = conversation_of(invitation, respondent, survey, channel)
            step = advance(q, conversation, Reminder(channel=channel.style), now=now)
            if not step.prompts:  # the conversation has ended after all: nothing to say
                continue
            not_before = next_opening(plan.window, now, county=respondent.county)
            row = queue_message(session, channel, survey, invitation, respondent,
                                step.session, kind="reminder", prompts=step.prompts,
                                key=reminder_key(invitation.id, n), now=now,
                                not_before=not_before,
                                deadline=_deadline(channel, plan, not_before),
                                others=others_than(channels, channel))
            if row is None:
                continue
            apply_step(session, store, invitation, respondent, step, now=now, questionnaire=q)
            count_reminder(invitation, n)
            queued += 1
    return queued


# --- closing and sealing --------------------------------------------------------------------


def close_due(session_factory: sessionmaker[Session], settings: Settings, *,
              now: dt.datetime) -> int:
    """Close every survey whose plan's close has come; how many were closed by this call.

    The survey becomes closed (late replies then get the "closed" answer), every invitation
    not finished, bounced or opted out becomes closed, and invitations and reminders still
    waiting in the outbox are given up (dead, "survey closed": kept for the record, never
    deleted). Running it again takes back anything left, such as a message that was being
    sent the first time and failed since.
    """
    now = _utc(now)
    closed = 0
    for survey in settings.surveys:
        plan = survey_plan(survey)
        if plan is None or now < plan.close_at:
            continue
        with transaction(session_factory) as session:
            closed += _close(session, survey.id, now)
    return closed


def _close(session: Session, survey_id: str, now: dt.datetime) -> int:
    db_survey = session.get(Survey, survey_id)
    if db_survey is None or db_survey.status == SurveyStatus.SEALED:
        return 0
    moved = close_survey(session, survey_id)
    invitations = close_invitations(session, survey_id, keep=_KEEP_AT_CLOSE,
                                    reason="survey closed", now=now)
    waiting = list(session.scalars(
        select(OutboxMessage.id)
        .join(Invitation, Invitation.id == OutboxMessage.invitation_id)
        .where(Invitation.survey_id == survey_id, OutboxMessage.status.in_(_TAKE_BACK),
               OutboxMessage.kind.in_(CAMPAIGN_KINDS))
        .order_by(OutboxMessage.id)
        .with_for_update(of=OutboxMessage, skip_locked=True)))
    record(session, [Result(i, "dead", "survey closed") for i in waiting], now=now)
    if moved:
        log.info("survey %s closed: %d invitations closed, %d queued messages given up",
                 survey_id, len(invitations), len(waiting))
    elif waiting:
        log.info("survey %s: %d queued messages given up (survey closed)", survey_id,
                 len(waiting))
    return int(moved)


def housekeeping(session_factory: sessionmaker[Session], settings: Settings, *,
                 now: dt.datetime) -> None:
    """Seal each closed survey whose plan says so (`seal_after` days after the close).

    Sealing is what `svarbot seal` does, without asking: the plan in config.yaml is the
    operator's decision made in advance. If rewriting the database files fails (a busy
    SQLite file), the seal stands and the rewrite is tried again on the next run.
    """
    now = _utc(now)
    for survey in settings.surveys:
        plan = survey_plan(survey)
        if plan is None or plan.seal_after is None or now < plan.close_at + plan.seal_after:
            continue
        with transaction(session_factory) as session:
            db_survey = session.get(Survey, survey.id, with_for_update=True)
            if db_survey is None or db_survey.status != SurveyStatus.CLOSED:
                continue
            seal(session, survey.id, now=now)
            bind = session.get_bind()
        if isinstance(bind, Engine):
            try:
                scrub(bind)
            except StorageError as exc:
                log.warning("survey %s sealed, database files not yet rewritten: %s",
                            survey.id, exc)


# --- the dry run ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """One message in a respondent's campaign: when it went or goes, and why.

    `what` is `invitation` or `reminder <n>`; `when` is None for a message that will not be
    sent; `reason` is for the operator (Norwegian, like `bot.campaign.plan`'s).
    """

    when: dt.datetime | None
    what: str
    reason: str


def _plan_for(surveys: Mapping[str, SurveyContext], survey_id: str) -> Plan:
    survey = surveys.get(survey_id)
    if survey is None:
        raise CampaignError(f"survey {survey_id!r} is not configured")
    plan = survey_plan(survey.settings)
    if plan is None:
        raise CampaignError(f"survey {survey_id!r} has no plan")
    return plan


def _row_decision(session: Session, row: OutboxMessage, what: str) -> Decision:
    """What became of a message already in the outbox."""
    status = OutboxStatus(row.status)
    if status == OutboxStatus.SENT:
        return Decision(_maybe_utc(row.sent_at), what, "sendt")
    if status == OutboxStatus.BOUNCED:
        return Decision(_maybe_utc(row.sent_at), what, "avvist av mottakerens server (bounce)")
    if status == OutboxStatus.DEAD:
        events = history(session, row.id)
        detail = events[-1].detail if events else ""
        return Decision(None, what, f"ikke sendt: gitt opp ({detail})" if detail
                        else "ikke sendt: gitt opp")
    when = _utc(row.next_attempt_at)
    label = {OutboxStatus.QUEUED: "i køen", OutboxStatus.RETRY: "i køen, nytt forsøk",
             OutboxStatus.SENDING: "sendes nå"}[status]
    return Decision(when, what, label)


def _planned_invitation(plan: Plan, now: dt.datetime, county: str | None,
                        ) -> tuple[dt.datetime | None, str]:
    """When a pending invitation not yet queued will go, and why."""
    start = max(now, plan.invite_at)
    when = next_opening(plan.window, start, county=county)
    if when >= plan.close_at:
        return None, "ikke sendt: etter stengning"
    reason = "med invitasjonsbølgen" if plan.invite_at > now else "sendes ved neste kjøring"
    closed = closed_reason(plan.window, start, county=county)
    return when, reason if closed is None else f"{reason} (stengt: {closed})"


def explain(session: Session, settings: Settings, surveys: Mapping[str, SurveyContext],
            invitation_id: int, *, now: dt.datetime) -> list[Decision]:
    """The invitation and every reminder of one invitation: sent, due (when, why) or not sent.

    Reminders not yet sent are projected from the current state, assuming the respondent does
    not answer further.

    Raises:
        CampaignError: no such invitation, or its survey has no plan.
    """
    now = _utc(now)
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        raise CampaignError(f"no invitation {invitation_id}")
    plan = _plan_for(surveys, invitation.survey_id)
    channel = configured_channels(settings).get(plan.channel)
    respondent = session.get(Respondent, invitation.respondent_id)
    county = respondent.county if respondent is not None else None
    status = InvitationStatus(invitation.status)
    survey_open = _open_in_db(session, invitation.survey_id) and now < plan.close_at
    decisions: list[Decision] = []
    row = find_by_key(session, invitation_key(invitation.id))
    invited_at: dt.datetime | None = None
    if row is not None:
        first = _row_decision(session, row, "invitation")
        if first.when is not None:
            invited_at = _utc(row.sent_at) if row.sent_at is not None else first.when
    elif respondent is None or channel is None or channel.address(invitation,
                                                                  respondent) is None:
        first = Decision(None, "invitation", "ikke sendt: ingen e-postadresse"
                         if plan.channel == "email" else f"ikke sendt: ingen {plan.channel}")
    elif status != InvitationStatus.PENDING:
        first = Decision(None, "invitation", _ENDED.get(status, f"ikke sendt: {status}"))
    elif not survey_open:
        first = Decision(None, "invitation", "ikke sendt: undersøkelsen er stengt")
    else:
        when, reason = _planned_invitation(plan, now, county)
        first = Decision(when, "invitation", reason)
        invited_at = when
    decisions.append(first)
    last: dt.datetime | None = None
    for n in range(1, plan.max_reminders + 1):
        what = f"reminder {n}"
        if n <= invitation.reminders_sent:
            sent = find_by_key(session, reminder_key(invitation.id, n))
            if sent is None:
                decisions.append(Decision(None, what, "sendt (meldingen er slettet)"))
                continue
            decisions.append(_row_decision(session, sent, what))
            last = _utc(sent.sent_at if sent.sent_at is not None else sent.created_at)
            continue
        decision = _projected_reminder(plan, n, status=status, invited_at=invited_at,
                                       last=last, away_until=invitation.away_until,
                                       county=county,
                                       desk_open=has_open_query(session, invitation.id))
        decisions.append(decision)
        last = decision.when
    return decisions


def _projected_reminder(plan: Plan, n: int, *, status: InvitationStatus,
                        invited_at: dt.datetime | None, last: dt.datetime | None,
                        away_until: dt.date | None, county: str | None,
                        desk_open: bool) -> Decision:
    what = f"reminder {n}"
    if status in _ENDED:
        return Decision(None, what, _ENDED[status])
    if invited_at is None:
        return Decision(None, what, "ikke sendt: ikke invitert")
    if desk_open:
        return Decision(None, what, _WAITING_FOR_DESK)
    if n > 1 and last is None:
        return Decision(None, what, f"ikke sendt: påminnelse {n - 1} blir ikke sendt")
    due, reason = reminder_at(plan, n, invited_at=invited_at, last_reminder_at=last,
                              away_until=away_until, county=county)
    if due is None:
        return Decision(None, what, f"ikke sendt: {reason}")
    return Decision(due, what, reason)


def calendar(session: Session, settings: Settings, surveys: Mapping[str, SurveyContext],
             survey_id: str, *, now: dt.datetime) -> list[tuple[dt.date, str, str, int]]:
    """(local day, channel, kind, how many) of everything the survey will still send.

    Projected from the current state, assuming nobody answers further: what waits in the
    outbox, the invitations of the wave not yet queued, and each remaining reminder to
    everyone who may get one. Reminders to someone whose question waits for the contact
    person are left out (no one knows when they will be answered). Days are in the window's
    time zone.

    Raises:
        CampaignError: the survey is not configured or has no plan.
    """
    now = _utc(now)
    plan = _plan_for(surveys, survey_id)
    zone = plan.window.zone
    counts: Counter[tuple[dt.date, str, str]] = Counter()

    def add(when: dt.datetime, channel: str, kind: str) -> None:
        counts[(when.astimezone(zone).date(), channel, kind)] += 1

    queued_invitations: dict[int, dt.datetime] = {}
    for invitation_id, channel, kind, status, next_at in session.execute(
            select(OutboxMessage.invitation_id, OutboxMessage.channel, OutboxMessage.kind,
                   OutboxMessage.status, OutboxMessage.next_attempt_at)
            .join(Invitation, Invitation.id == OutboxMessage.invitation_id)
            .where(Invitation.survey_id == survey_id, OutboxMessage.status.in_(_UNSENT))):
        when = now if status == OutboxStatus.SENDING else max(_utc(next_at), now)
        if kind in CAMPAIGN_KINDS and when >= plan.close_at:
            continue  # the close gives it up
        add(when, channel, kind)
        if kind == "invitation" and invitation_id is not None:
            queued_invitations[invitation_id] = when
    if not _open_in_db(session, survey_id) or now >= plan.close_at:
        return _sorted(counts)
    statuses = (InvitationStatus.PENDING, *REMINDABLE)
    sending = plan_channel(settings, plan)
    if sending is None:
        return _sorted(counts)
    channels = configured_channels(settings)
    follow = settings.telegram.reminders == "last_used"
    for state in _read_states(session, _states(sending, survey_id, statuses)):
        remind_on = plan.channel
        if follow and state.last_channel not in (None, plan.channel):
            # Answered on another channel: the reminder goes where `_remind` will send it.
            invitation = session.get_one(Invitation, state.invitation_id)
            chosen = reminder_channel(channels, sending, invitation,
                                      session.get_one(Respondent, invitation.respondent_id),
                                      follow=True)
            remind_on = chosen.name if chosen is not None else plan.channel
        invited_at = state.invited_at
        if state.status == InvitationStatus.PENDING:
            if invited_at is None:
                invited_at, _reason = _planned_invitation(plan, now, state.county)
                if invited_at is None:
                    continue
                add(invited_at, plan.channel, "invitation")
            else:  # queued (counted above), or given up: then it never goes
                invited_at = queued_invitations.get(state.invitation_id)
        if invited_at is None or state.desk_query_open:
            continue
        last = state.last_reminder_at
        for n in range(state.reminders_sent + 1, _allowed(plan) + 1):
            due, _reason = reminder_at(plan, n, invited_at=invited_at, last_reminder_at=last,
                                       away_until=state.away_until, county=state.county)
            if due is None:
                break
            due = max(due, next_opening(plan.window, now, county=state.county))
            add(due, remind_on, "reminder")
            last = due
    return _sorted(counts)


def _sorted(counts: Counter[tuple[dt.date, str, str]]) -> list[tuple[dt.date, str, str, int]]:
    order = {"invitation": 0, "reminder": 1}
    return [(day, channel, kind, n) for (day, channel, kind), n in
            sorted(counts.items(), key=lambda item: (item[0][0], item[0][1],
                                                     order.get(item[0][2], 2), item[0][2]))]
