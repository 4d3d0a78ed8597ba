"""What the operator's dashboard counts: the funnel, the strata, the days, the delivery log.

Read-only, identity side: statuses, outbox rows and events, desk queries. No query here
touches the answer side or a message's body, so nothing shown can be an answer. Each figure
is one GROUP BY that an index of migration 0008 covers; on 100,000 invitations the funnel,
strata and days still take about a second on SQLite, which is why the dashboard page keeps
them for `web.refresh_seconds` (`bot.web.snapshots`; measured by `bench/web_pages.py`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Integer, cast, distinct, func, or_, select
from sqlalchemy.orm import Session

from storage.identity import safe_reason
from storage.reference import SIZE_CLASSES
from storage.schema import (
    DeskQuery,
    InboxMessage,
    InboxStatus,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    QueryStatus,
    Respondent,
)

#: The funnel's rows, in order.
FUNNEL = ("sample", "queued", "sent", "bounced_hard", "bounced_soft", "started", "finished",
          "opted_out", "away", "desk_open")

_BY_STATUS = {InvitationStatus.BOUNCED: "bounced_hard", InvitationStatus.STARTED: "started",
              InvitationStatus.FINISHED: "finished", InvitationStatus.OPTED_OUT: "opted_out"}
_WAITING = (OutboxStatus.QUEUED, OutboxStatus.RETRY, OutboxStatus.SENDING)
_GONE_OUT = (OutboxStatus.SENT, OutboxStatus.BOUNCED)


@dataclass(frozen=True, slots=True)
class Funnel:
    """Counts per funnel row and channel (`total` is every channel)."""

    counts: dict[str, Counter[str]]
    channels: tuple[str, ...]

    def get(self, row: str, channel: str = "total") -> int:
        return self.counts.get(row, Counter())[channel]


def _add(counts: dict[str, Counter[str]], row: str, channel: str | None, n: int) -> None:
    name = channel or "email"
    counts[row][name] += n
    counts[row]["total"] += n


def funnel(session: Session, survey_id: str, *, today: dt.date) -> Funnel:
    """Where the survey's invitations stand, by channel.

    Outbound figures (queued, sent) count the invitation messages by the channel they went
    on; where a conversation stands (started, finished …) counts by the channel the
    respondent last used (email until they wrote from elsewhere).
    """
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in FUNNEL:
        counts[row]["total"] += 0
    channel = func.coalesce(Invitation.last_channel, "email")
    for status, chan, n in session.execute(
            select(Invitation.status, channel, func.count())
            .where(Invitation.survey_id == survey_id).group_by(Invitation.status, channel)):
        _add(counts, "sample", chan, n)
        metric = _BY_STATUS.get(InvitationStatus(status))
        if metric is not None:
            _add(counts, metric, chan, n)
    for sent_status, chan, n in session.execute(
            select(OutboxMessage.status, OutboxMessage.channel, func.count())
            .join(Invitation, Invitation.id == OutboxMessage.invitation_id)
            .where(Invitation.survey_id == survey_id, OutboxMessage.kind == "invitation")
            .group_by(OutboxMessage.status, OutboxMessage.channel)):
        if sent_status in _WAITING:
            _add(counts, "queued", chan, n)
        elif sent_status in _GONE_OUT:
            _add(counts, "sent", chan, n)
    for out_channel, n in session.execute(
            select(OutboxMessage.channel, func.count(distinct(OutboxMessage.invitation_id)))
            .join(OutboxEvent, OutboxEvent.outbox_id == OutboxMessage.id)
            .join(Invitation, Invitation.id == OutboxMessage.invitation_id)
            .where(Invitation.survey_id == survey_id, OutboxEvent.status == "soft_bounce")
            .group_by(OutboxMessage.channel)):
        _add(counts, "bounced_soft", out_channel, n)
    for chan, n in session.execute(
            select(channel, func.count()).where(
                Invitation.survey_id == survey_id, Invitation.away_until >= today,
                Invitation.status.not_in((InvitationStatus.FINISHED,
                                          InvitationStatus.OPTED_OUT)))
            .group_by(channel)):
        _add(counts, "away", chan, n)
    for chan, n in session.execute(
            select(func.coalesce(DeskQuery.channel, "email"), func.count())
            .join(Invitation, Invitation.id == DeskQuery.invitation_id)
            .where(Invitation.survey_id == survey_id, DeskQuery.status == QueryStatus.OPEN)
            .group_by(func.coalesce(DeskQuery.channel, "email"))):
        _add(counts, "desk_open", chan, n)
    names = sorted({c for counter in counts.values() for c in counter if c != "total"},
                   key=lambda c: (c != "email", c))
    return Funnel(counts=dict(counts), channels=tuple(names or ("email",)))


@dataclass(frozen=True, slots=True)
class StratumRow:
    """One sampling stratum: how many were drawn, started and finished."""

    sector: str
    landsdel: str
    size_class: str
    sample: int
    started: int
    finished: int
    opted_out: int
    bounced: int

    @property
    def rate(self) -> float:
        return self.finished / self.sample if self.sample else 0.0


def strata(session: Session, survey_id: str) -> list[StratumRow]:
    """Every stratum of the survey (sector × landsdel × size class), in that order."""
    status = Invitation.status

    def count(*statuses: InvitationStatus) -> ColumnElement[int]:
        return func.sum(cast(status.in_(statuses), Integer))

    rows = session.execute(
        select(func.coalesce(Respondent.sector, ""), Respondent.landsdel, Respondent.size_class,
               func.count(), count(InvitationStatus.STARTED), count(InvitationStatus.FINISHED),
               count(InvitationStatus.OPTED_OUT), count(InvitationStatus.BOUNCED))
        .join(Respondent, Respondent.id == Invitation.respondent_id)
        .where(Invitation.survey_id == survey_id)
        .group_by(func.coalesce(Respondent.sector, ""), Respondent.landsdel,
                  Respondent.size_class))
    found = [StratumRow(sector, landsdel, size, int(n), int(s or 0), int(f or 0), int(o or 0),
                        int(b or 0)) for sector, landsdel, size, n, s, f, o, b in rows]
    return sorted(found, key=_stratum_order)


def _stratum_order(row: StratumRow) -> tuple[str, str, int, str]:
    """Sector, landsdel, then size from small to large (not alphabetically: "<3000" first)."""
    size = SIZE_CLASSES.index(row.size_class) if row.size_class in SIZE_CLASSES else 99
    return row.sector, row.landsdel, size, row.size_class


@dataclass(frozen=True, slots=True)
class Day:
    """One day (UTC) of the campaign: messages sent and questionnaires finished."""

    day: dt.date
    sent: int
    finished: int


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def days(session: Session, survey_id: str) -> list[Day]:
    """Sends and completions per day, oldest first (days with neither are left out)."""
    sent: Counter[dt.date] = Counter()
    finished: Counter[dt.date] = Counter()
    sent_day = func.date(OutboxMessage.sent_at)
    for day, n in session.execute(
            select(sent_day, func.count())
            .join(Invitation, Invitation.id == OutboxMessage.invitation_id)
            .where(Invitation.survey_id == survey_id, OutboxMessage.sent_at.is_not(None))
            .group_by(sent_day)):
        sent[_as_date(day)] += n
    done_day = func.date(InvitationEvent.at)
    for day, n in session.execute(
            select(done_day, func.count())
            .join(Invitation, Invitation.id == InvitationEvent.invitation_id)
            .where(Invitation.survey_id == survey_id,
                   InvitationEvent.status == InvitationStatus.FINISHED)
            .group_by(done_day)):
        finished[_as_date(day)] += n
    return [Day(day, sent[day], finished[day]) for day in sorted(set(sent) | set(finished))]


# --- the delivery log -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What the operator narrowed the log to (empty: everything)."""

    status: str = ""
    kind: str = ""
    channel: str = ""
    day: dt.date | None = None
    address: str = ""
    survey: str = ""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One outbound event with the message it belongs to."""

    at: dt.datetime
    outbox_id: int
    kind: str
    channel: str
    recipient: str
    status: str
    detail: str
    respondent_id: int | None
    survey: str | None


def delivery_log(session: Session, where: LogFilter, *, limit: int = 200) -> list[LogLine]:
    """The newest outbound events matching `where`, newest first."""
    query = (
        select(OutboxEvent.at, OutboxMessage.id, OutboxMessage.kind, OutboxMessage.channel,
               OutboxMessage.recipient, OutboxEvent.status, OutboxEvent.detail,
               Invitation.respondent_id, Invitation.survey_id)
        .join(OutboxMessage, OutboxMessage.id == OutboxEvent.outbox_id)
        .outerjoin(Invitation, Invitation.id == OutboxMessage.invitation_id))
    if where.status:
        query = query.where(OutboxEvent.status == where.status)
    if where.kind:
        query = query.where(OutboxMessage.kind == where.kind)
    if where.channel:
        query = query.where(OutboxMessage.channel == where.channel)
    if where.survey:
        query = query.where(Invitation.survey_id == where.survey)
    if where.day is not None:
        start = dt.datetime.combine(where.day, dt.time(), tzinfo=dt.UTC)
        query = query.where(OutboxEvent.at >= start,
                            OutboxEvent.at < start + dt.timedelta(days=1))
    if where.address:
        query = query.where(OutboxMessage.recipient.contains(where.address.strip().lower(),
                                                             autoescape=True))
    rows = session.execute(query.order_by(OutboxEvent.id.desc()).limit(limit))
    return [LogLine(at, oid, kind, chan, recipient, status, safe_reason(detail or ""), rid, sid)
            for at, oid, kind, chan, recipient, status, detail, rid, sid in rows]


def find_respondents(session: Session, text: str, *, limit: int = 50) -> list[Respondent]:
    """Respondents whose address or name contains `text` (case-insensitive).

    SQLite's lower() (and PostgreSQL's under the C locale) lowers only A–Z, so "ås" would
    not find "Per Ås": the text is also looked for as such a lower() leaves a capital Æ, Ø
    or Å.
    """
    needle = text.strip()
    if not needle:
        return []
    needles = {needle.lower(),
               "".join(c.lower() if c.isascii() else c.upper() for c in needle)}
    return list(session.scalars(
        select(Respondent).where(or_(*(func.lower(column).contains(wanted, autoescape=True)
                                       for column in (Respondent.email, Respondent.name)
                                       for wanted in sorted(needles))))
        .order_by(Respondent.name).limit(limit)))


# --- what needs a hand ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Waiting:
    """An invitation that needs an operator: stuck, or bounced."""

    invitation: Invitation
    respondent: Respondent
    since: dt.datetime | None = None


def stuck(session: Session, survey_id: str | None, *, before: dt.datetime,
          limit: int = 500) -> list[Waiting]:
    """Started conversations with nothing from the respondent since `before`, oldest first."""
    last = func.coalesce(Invitation.last_contact_at, Invitation.updated_at)
    query = (select(Invitation, Respondent, last)
             .join(Respondent, Respondent.id == Invitation.respondent_id)
             .where(Invitation.status == InvitationStatus.STARTED, last < before))
    if survey_id:
        query = query.where(Invitation.survey_id == survey_id)
    return [Waiting(i, r, s) for i, r, s in session.execute(query.order_by(last).limit(limit))]


def bounced(session: Session, survey_id: str | None, *, limit: int = 500) -> list[Waiting]:
    """Invitations whose address bounced for good: a new address or a substitute needed."""
    query = (select(Invitation, Respondent, Invitation.updated_at)
             .join(Respondent, Respondent.id == Invitation.respondent_id)
             .where(Invitation.status == InvitationStatus.BOUNCED))
    if survey_id:
        query = query.where(Invitation.survey_id == survey_id)
    return [Waiting(i, r, s) for i, r, s in session.execute(
        query.order_by(Respondent.sector, Respondent.landsdel, Respondent.name).limit(limit))]


@dataclass(frozen=True, slots=True)
class DeadRow:
    """A message given up, with the last reason."""

    message: OutboxMessage
    reason: str


def dead_messages(session: Session, *, limit: int = 500) -> list[DeadRow]:
    """Dead outbox rows, newest first, each with its last event's reason."""
    last_detail = (select(OutboxEvent.detail).where(OutboxEvent.outbox_id == OutboxMessage.id)
                   .order_by(OutboxEvent.id.desc()).limit(1).correlate(OutboxMessage)
                   .scalar_subquery())
    rows = session.execute(
        select(OutboxMessage, last_detail)
        .where(OutboxMessage.status == OutboxStatus.DEAD)
        .order_by(OutboxMessage.id.desc()).limit(limit))
    return [DeadRow(message, safe_reason(detail or "")) for message, detail in rows]


@dataclass(frozen=True, slots=True)
class Depths:
    """How much waits where: outbox rows per status and channel, inbox per status."""

    outbox: dict[tuple[str, str], int] = field(default_factory=dict)
    inbox: dict[str, int] = field(default_factory=dict)


def depths(session: Session) -> Depths:
    """Queue depths now."""
    outbox = {(str(s), str(c)): int(n) for s, c, n in session.execute(
        select(OutboxMessage.status, OutboxMessage.channel, func.count())
        .where(OutboxMessage.status.in_((*_WAITING, OutboxStatus.DEAD)))
        .group_by(OutboxMessage.status, OutboxMessage.channel))}
    inbox = {str(s): int(n) for s, n in session.execute(
        select(InboxMessage.status, func.count())
        .where(InboxMessage.status.in_((InboxStatus.RECEIVED, InboxStatus.FAILED)))
        .group_by(InboxMessage.status))}
    return Depths(outbox, inbox)


def last_sent(session: Session, channel: str) -> dt.datetime | None:
    """When a message last left on `channel`."""
    return session.scalar(select(func.max(OutboxMessage.sent_at))
                          .where(OutboxMessage.channel == channel))


def last_received(session: Session, channel: str) -> dt.datetime | None:
    """When a message last arrived on `channel`."""
    return session.scalar(select(func.max(InboxMessage.received_at))
                          .where(InboxMessage.channel == channel))


@dataclass(frozen=True, slots=True)
class SendingState:
    """What the alert check needs: the oldest email waiting past its due time, the last
    successful send, and the last hour's sends and bounces."""

    oldest_overdue: dt.datetime | None
    last_sent: dt.datetime | None
    sent_last_hour: int
    bounced_last_hour: int


def sending_state(session: Session, *, now: dt.datetime) -> SendingState:
    """Email delivery at `now` (for the health page and the alerts)."""
    hour_ago = now - dt.timedelta(hours=1)
    oldest = session.scalar(select(func.min(OutboxMessage.next_attempt_at)).where(
        OutboxMessage.channel == "email", OutboxMessage.status.in_(_WAITING),
        OutboxMessage.next_attempt_at <= now))
    sent = session.scalar(select(func.count()).where(
        OutboxMessage.channel == "email", OutboxMessage.sent_at > hour_ago)) or 0
    bounced_n = session.scalar(select(func.count(distinct(OutboxEvent.outbox_id)))
                               .join(OutboxMessage, OutboxMessage.id == OutboxEvent.outbox_id)
                               .where(OutboxMessage.channel == "email",
                                      OutboxEvent.status == "bounced",
                                      OutboxEvent.at > hour_ago)) or 0
    return SendingState(oldest, last_sent(session, "email"), int(sent), int(bounced_n))


def retrying_since(session: Session, *, now: dt.datetime) -> dt.datetime | None:
    """The first failure of the current run of email failures: the earliest retry event
    after the last successful send (None when the last attempt succeeded)."""
    last_ok = last_sent(session, "email")
    query = (select(func.min(OutboxEvent.at))
             .join(OutboxMessage, OutboxMessage.id == OutboxEvent.outbox_id)
             .where(OutboxMessage.channel == "email",
                    OutboxEvent.status.in_(("retry", "dead"))))
    if last_ok is not None:
        query = query.where(OutboxEvent.at > last_ok)
    return session.scalar(query)


def survey_ids(session: Session) -> list[str]:
    """Surveys that have invitations."""
    return list(session.scalars(select(distinct(Invitation.survey_id))
                                .order_by(Invitation.survey_id)))
