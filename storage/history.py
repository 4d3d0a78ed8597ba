"""A respondent's delivery history, read from the three event tables, for `svarbot log`.

The operator's question is "why did this person get (or not get) that message?". The answer is
spread over `invitation_events` (status changes and why), `outbox_events` (every attempt on
every outbound message, joined to the person through `outbox.invitation_id`) and
`inbox_events` (every reply received and what it was taken for, through
`inbox.invitation_id`). This module merges them into one time line of short Norwegian lines.

Only event rows and a message's kind and classification are read: never a body, a raw message,
a desk query's text or a session, so an answer cannot reach the output. Details are passed
through `safe_reason` once more on the way out, so an address or token that slipped into an
event is not shown either. Times in `detail` are Norwegian local time, as the operator reads
them; `Entry.at` is UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session, aliased

from storage.identity import safe_reason
from storage.schema import (
    InboxEvent,
    InboxMessage,
    Invitation,
    InvitationEvent,
    InvitationStatus,
    OutboxEvent,
    OutboxMessage,
)

#: The operator's clock.
LOCAL_TIME = ZoneInfo("Europe/Oslo")

#: Which source comes first when two events carry the same time: a reply is received, then
#: the invitation's status follows, then the answer to it is queued.
_ORDER = {"inbox": 0, "invitation": 1, "outbox": 2}

#: Outbound message kinds as the operator says them (numbered per invitation, except the
#: invitation itself, which there is only one of).
KIND_NAMES = {"invitation": "invitasjon", "reminder": "påminnelse", "page": "svarside",
              "confirmation": "bekreftelse", "closed": "svar: lukket", "info": "melding",
              "ack": "svar på knappetrykk"}
#: Inbound classifications as the operator says them.
CLASSIFICATION_NAMES = {"answer": "svar", "query": "spørsmål", "opt_out": "avmelding",
                        "bounce": "bounce", "auto_reply": "autosvar",
                        "forward": "videresending", "unknown": "ukjent",
                        "start": "Telegram-lenke"}
#: Invitation statuses in Norwegian.
INVITATION_NAMES = {"pending": "venter", "invited": "invitert", "delivered": "levert",
                    "started": "påbegynt", "finished": "fullført", "bounced": "bounce",
                    "opted_out": "avmeldt", "closed": "lukket"}
#: Outbox and inbox event statuses in Norwegian.
EVENT_NAMES = {"queued": "i kø", "sending": "sendes", "sent": "sendt", "retry": "nytt forsøk",
               "bounced": "bounce", "dead": "gitt opp", "ignored": "ignorert",
               "soft_bounce": "midlertidig bounce", "received": "mottatt",
               "processed": "behandlet", "failed": "karantene", "released": "sluppet fri"}
#: Reasons the engine gives as event kinds, in the operator's words (first match wins).
_REASONS = (("stopped", "stopp"), ("questionnaire_completed", "siste side besvart"),
            ("paused", "pause"), ("answer_recorded", "svar mottatt"),
            ("survey closed", "undersøkelsen er stengt"))



@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the history.

    `status` is the event's machine status (an outbox status such as `retry`, an inbox event
    such as `processed`, or an invitation status); `what` and `detail` are for people.
    `source` is `invitation`, `outbox` or `inbox`.
    """

    at: dt.datetime
    survey: str
    what: str
    status: str
    detail: str
    respondent_id: int | None = None
    source: str = ""

    def as_dict(self) -> dict[str, object]:
        """The entry for JSON: `at` as ISO 8601 UTC."""
        return {"at": self.at.isoformat(), "survey": self.survey, "what": self.what,
                "status": self.status, "detail": self.detail,
                "respondent_id": self.respondent_id, "source": self.source}


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def local_time(moment: dt.datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """`moment` on the operator's clock."""
    return _utc(moment).astimezone(LOCAL_TIME).strftime(fmt)


# --- writing --------------------------------------------------------------------------------


def record_changes(session: Session, changes: Iterable[tuple[int, InvitationStatus | None,
                                                            InvitationStatus]],
                   *, reason: str, now: dt.datetime) -> int:
    """Write one `invitation_events` row per (invitation id, previous, new status); how many.

    For bulk status updates that bypass `storage.identity.set_status` (the sender marks a
    whole batch invited in one UPDATE): one multi-row INSERT, in the caller's transaction.
    """
    rows = [{"invitation_id": invitation_id, "at": now, "status": status.value,
             "previous": None if previous is None else previous.value,
             "reason": safe_reason(reason)}
            for invitation_id, previous, status in changes]
    if rows:
        session.execute(insert(cast(Table, InvitationEvent.__table__)), rows)
    return len(rows)


# --- reading --------------------------------------------------------------------------------


def _invitation_rows(session: Session, where: list[Any], limit: int | None) -> list[Entry]:
    query = (
        select(InvitationEvent.id, InvitationEvent.at, InvitationEvent.status,
               InvitationEvent.previous, InvitationEvent.reason, Invitation.survey_id,
               Invitation.respondent_id)
        .join(Invitation, Invitation.id == InvitationEvent.invitation_id).where(*where))
    if limit is not None:
        query = query.order_by(InvitationEvent.id.desc()).limit(limit)
    return [Entry(at=_utc(row.at), survey=row.survey_id, what="status",
                  status=str(row.status), detail=_status_detail(row.previous, row.status,
                                                                row.reason),
                  respondent_id=row.respondent_id, source="invitation")
            for row in session.execute(query)]


def _status_detail(previous: str | None, status: str, reason: str) -> str:
    new = INVITATION_NAMES.get(status, status)
    said = next((words for kind, words in _REASONS if kind in reason), reason)
    if previous is None:
        return f"{new} ({said})"
    return f"{INVITATION_NAMES.get(previous, previous)} → {new} ({said})"


def _outbox_rows(session: Session, where: list[Any], limit: int | None) -> list[Entry]:
    earlier = aliased(OutboxMessage)
    number = (select(func.count()).select_from(earlier)
              .where(earlier.invitation_id == OutboxMessage.invitation_id,
                     earlier.kind == OutboxMessage.kind, earlier.id <= OutboxMessage.id)
              .correlate(OutboxMessage).scalar_subquery())
    query = (
        select(OutboxEvent.id, OutboxEvent.at, OutboxEvent.status, OutboxEvent.detail,
               OutboxEvent.attempt, OutboxEvent.next_at, OutboxMessage.kind,
               number.label("number"), Invitation.survey_id, Invitation.respondent_id)
        .join(OutboxMessage, OutboxMessage.id == OutboxEvent.outbox_id)
        .outerjoin(Invitation, Invitation.id == OutboxMessage.invitation_id).where(*where))
    if limit is not None:
        query = query.order_by(OutboxEvent.id.desc()).limit(limit)
    entries = []
    for row in session.execute(query):
        name = KIND_NAMES.get(row.kind, row.kind)
        what = name if row.kind == "invitation" else f"{name} {row.number}"
        entries.append(Entry(at=_utc(row.at), survey=row.survey_id or "", what=what,
                             status=str(row.status),
                             detail=outbox_detail(row.detail, row.attempt, row.next_at),
                             respondent_id=row.respondent_id, source="outbox"))
    return entries


def outbox_detail(detail: str, attempt: int | None = None,
                  next_at: dt.datetime | None = None) -> str:
    """An outbox event's detail for people: a retry names the time of the next attempt."""
    if attempt is not None and next_at is not None:
        return f"{detail} → nytt forsøk {local_time(next_at, '%H:%M')} (forsøk {attempt})"
    return detail


def _inbox_rows(session: Session, where: list[Any], limit: int | None) -> list[Entry]:
    query = (
        select(InboxEvent.id, InboxEvent.at, InboxEvent.status, InboxEvent.detail,
               InboxMessage.classification, InboxMessage.channel, Invitation.survey_id,
               Invitation.respondent_id)
        .join(InboxMessage, InboxMessage.id == InboxEvent.inbox_id)
        .outerjoin(Invitation, Invitation.id == InboxMessage.invitation_id).where(*where))
    if limit is not None:
        query = query.order_by(InboxEvent.id.desc()).limit(limit)
    entries = []
    for row in session.execute(query):
        kind = CLASSIFICATION_NAMES.get(row.classification or "", row.classification or "")
        what = f"innkommende {row.channel}" + (f": {kind}" if kind else "")
        entries.append(Entry(at=_utc(row.at), survey=row.survey_id or "", what=what,
                             status=str(row.status), detail=row.detail or "",
                             respondent_id=row.respondent_id, source="inbox"))
    return entries


def _merge(parts: Iterable[list[Entry]]) -> list[Entry]:
    merged = [entry for part in parts for entry in part]
    merged.sort(key=lambda e: (e.at, _ORDER.get(e.source, 9)))
    return [Entry(at=e.at, survey=e.survey, what=e.what, status=e.status,
                  detail=safe_reason(e.detail) if e.detail else "",
                  respondent_id=e.respondent_id, source=e.source) for e in merged]


def respondent_history(session: Session, respondent_id: int,
                       survey: str | None = None) -> list[Entry]:
    """Everything that happened to the respondent's invitations (one survey's, if given),
    oldest first: status changes, every outbound attempt, every reply received."""
    where: list[Any] = [Invitation.respondent_id == respondent_id]
    if survey is not None:
        where.append(Invitation.survey_id == survey)
    return _merge([_invitation_rows(session, where, None), _outbox_rows(session, where, None),
                   _inbox_rows(session, where, None)])


def recent_history(session: Session, limit: int) -> list[Entry]:
    """The last `limit` events across everyone, oldest first (the operator's morning look).

    Each table is read newest-first by id, at most `limit` rows, so this costs three short
    index scans however long the history is.
    """
    if limit <= 0:
        return []
    merged = _merge([_invitation_rows(session, [], limit), _outbox_rows(session, [], limit),
                     _inbox_rows(session, [], limit)])
    return merged[-limit:]
