"""The outbox: every outbound message as a row, from queued to sent, bounced or dead.

A message is written here (with its Message-ID) before anything is sent, in the same
transaction as the state change that caused it, so a crash never loses a message and never
sends one whose cause was rolled back. Enqueueing is idempotent by key: re-running an
invitation wave, or re-processing an inbound message, queues nothing twice.

The life of a row: `queued` → (claimed) `sending` → `sent` | `retry` (→ `sending` again) |
`bounced` | `dead`. While a row is `sending`, `next_attempt_at` is the worker's lease expiry
(see storage.claim). `sent`, `bounced` and `dead` are final, except that an operator may
replay dead rows. Every attempt's outcome and every status change is an `outbox_events` row
with a reason: that table is the delivery log operators read.

Bodies can quote answers, so the payload is cleared once the message is sent.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, func, insert, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.claim import claim_due
from storage.identity import safe_reason, set_status
from storage.schema import (
    Invitation,
    InvitationStatus,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
)

log = logging.getLogger(__name__)

#: A message that keeps failing temporarily is given up this long after it was queued,
#: unless it has its own deadline (config: email.smtp.retry_for_hours).
DEFAULT_RETRY_FOR = timedelta(hours=48)
#: The first retry waits at least this long; each later one about twice as long ...
FIRST_RETRY = timedelta(minutes=1)
#: ... but never longer than this.
MAX_RETRY_DELAY = timedelta(hours=1)
#: Retry delays are spread over [80 %, 100 %] of the nominal delay so that messages that
#: failed together (a server outage) do not all come back at the same second.
JITTER = 0.2

DEFAULT_LEASE = timedelta(minutes=5)

#: States from which a result may still be recorded; the rest are final.
_OPEN = (OutboxStatus.QUEUED, OutboxStatus.SENDING, OutboxStatus.RETRY)
#: A bounce report may come after the server accepted the message (or after we gave up).
_BOUNCE_FROM = (*_OPEN, OutboxStatus.SENT, OutboxStatus.DEAD)
#: A bounce does not overwrite what the respondent already did.
_BOUNCEABLE = (InvitationStatus.PENDING, InvitationStatus.INVITED, InvitationStatus.DELIVERED,
               InvitationStatus.STARTED)


def _utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (SQLite hands back naive values, stored as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Claimed:
    """A claimed message: everything the sender needs, detached from any session."""

    id: int
    channel: str
    kind: str
    recipient: str
    message_id: str | None
    payload: dict[str, object] | None
    attempts: int
    invitation_id: int | None
    created_at: datetime
    deadline_at: datetime | None


def _event(session: Session, outbox_id: int, status: str, detail: str, now: datetime) -> None:
    session.add(OutboxEvent(outbox_id=outbox_id, at=now, status=status, detail=detail))


# --- enqueue --------------------------------------------------------------------------------


def _insert_new(session: Session, values: dict[str, object]) -> int | None:
    """Insert the row unless its idempotency key exists; its id, or None for a duplicate.

    A duplicate key must not abort the caller's transaction (PostgreSQL would refuse every
    later statement), hence ON CONFLICT DO NOTHING where the dialect has it, else a SAVEPOINT.
    Only the key is a tolerated conflict: a clashing Message-ID is a bug and raises.
    """
    dialect = session.get_bind().dialect.name
    table = cast(Table, OutboxMessage.__table__)
    if dialect in ("postgresql", "sqlite"):
        module = postgresql if dialect == "postgresql" else sqlite
        statement = (module.insert(table).values(values)
                     .on_conflict_do_nothing(index_elements=["idempotency_key"])
                     .returning(table.c.id))
        row = session.execute(statement).first()
        return None if row is None else int(row[0])
    try:
        with session.begin_nested():
            row = session.execute(insert(table).values(values).returning(table.c.id)).first()
    except IntegrityError:
        if find_by_key(session, str(values["idempotency_key"])) is None:
            raise
        return None
    return None if row is None else int(row[0])


def find_by_key(session: Session, idempotency_key: str) -> OutboxMessage | None:
    """The message queued under `idempotency_key`, or None."""
    return session.scalars(select(OutboxMessage).where(
        OutboxMessage.idempotency_key == idempotency_key)).one_or_none()


def enqueue(session: Session, *, idempotency_key: str, channel: str, kind: str, recipient: str,
            payload: dict[str, object], message_id: str | None = None,
            invitation_id: int | None = None, not_before: datetime | None = None,
            deadline: datetime | None = None, now: datetime) -> OutboxMessage | None:
    """Queue a message in the caller's transaction; None (nothing written) if the key exists.

    `not_before` delays the first attempt (spreading a wave over hours); `deadline` is when
    the message is no longer worth sending (it then goes dead instead of being retried).
    """
    if find_by_key(session, idempotency_key) is not None:
        return None
    now = _utc(now)
    values: dict[str, object] = {
        "idempotency_key": idempotency_key, "invitation_id": invitation_id, "channel": channel,
        "kind": kind, "recipient": recipient, "message_id": message_id, "payload": payload,
        "status": OutboxStatus.QUEUED.value, "attempts": 0,
        "next_attempt_at": _utc(not_before) if not_before is not None else now,
        "deadline_at": _utc(deadline) if deadline is not None else None,
        "claimed_by": None, "created_at": now, "sent_at": None}
    new_id = _insert_new(session, values)
    if new_id is None:
        return None
    _event(session, new_id, OutboxStatus.QUEUED.value, f"queued ({kind})", now)
    session.flush()
    return session.get(OutboxMessage, new_id)


# --- claiming -------------------------------------------------------------------------------


def claim(session: Session, *, worker: str, limit: int, now: datetime,
          lease: timedelta = DEFAULT_LEASE, channel: str | None = "email") -> list[Claimed]:
    """Claim up to `limit` due messages for `worker` (see storage.claim.claim_due).

    Commit right after: the claim is what the commit makes visible to other workers.
    """
    ids = claim_due(session, worker=worker, limit=limit, now=_utc(now), lease=lease,
                    channel=channel)
    if not ids:
        return []
    rows = session.execute(select(
        OutboxMessage.id, OutboxMessage.channel, OutboxMessage.kind, OutboxMessage.recipient,
        OutboxMessage.message_id, OutboxMessage.payload, OutboxMessage.attempts,
        OutboxMessage.invitation_id, OutboxMessage.created_at, OutboxMessage.deadline_at)
        .where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id))
    return [Claimed(id=row.id, channel=row.channel, kind=row.kind, recipient=row.recipient,
                    message_id=row.message_id, payload=row.payload, attempts=row.attempts,
                    invitation_id=row.invitation_id, created_at=_utc(row.created_at),
                    deadline_at=None if row.deadline_at is None else _utc(row.deadline_at))
            for row in rows]


# --- results --------------------------------------------------------------------------------


def _finish(session: Session, outbox_id: int, status: OutboxStatus, now: datetime,
            reason: str, *, allowed: Sequence[OutboxStatus] = _OPEN, **values: object) -> bool:
    """Move a row in one of the `allowed` states to `status` with an event.

    False (and an "ignored" event) if the row was in another state. The guard is in the
    UPDATE itself, so a late result (a worker whose lease was taken over) can never turn a
    sent message into a dead one or the other way round.
    """
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, OutboxMessage.status.in_(allowed))
        .values(status=status.value, **values)
        .execution_options(synchronize_session=False))
    changed = getattr(result, "rowcount", 0) == 1
    if changed:
        _event(session, outbox_id, status.value, reason, now)
    elif session.get(OutboxMessage, outbox_id) is not None:
        _event(session, outbox_id, "ignored", f"late result {status.value}: {reason}", now)
        log.warning("outbox %s: result %s ignored (already final)", outbox_id, status.value)
    session.flush()
    return changed


def _invitation(session: Session, outbox_id: int) -> tuple[str, Invitation | None]:
    row = session.execute(select(OutboxMessage.kind, OutboxMessage.invitation_id)
                          .where(OutboxMessage.id == outbox_id)).one()
    invitation = None if row.invitation_id is None else session.get(Invitation,
                                                                      row.invitation_id)
    return row.kind, invitation


def mark_sent(session: Session, outbox_id: int, *, now: datetime, detail: str = "") -> None:
    """The server accepted the message: sent, payload cleared; an invitation becomes invited."""
    now = _utc(now)
    if not _finish(session, outbox_id, OutboxStatus.SENT, now, detail or "accepted",
                   sent_at=now, payload=null(), claimed_by=None):
        return
    kind, invitation = _invitation(session, outbox_id)
    if (kind == "invitation" and invitation is not None
            and invitation.status == InvitationStatus.PENDING):
        set_status(session, invitation, InvitationStatus.INVITED, "invitation sent")


def mark_bounced(session: Session, outbox_id: int, *, now: datetime, reason: str) -> None:
    """The address was refused for good: bounced, and so is the invitation it belongs to.

    Also for a message already sent: a delivery status notification can arrive hours after
    the server accepted it. An invitation that has already gone further than being contacted
    (finished, opted out, closed) keeps its status: a bounced confirmation does not undo an
    answer.
    """
    now = _utc(now)
    if not _finish(session, outbox_id, OutboxStatus.BOUNCED, now, reason,
                   allowed=_BOUNCE_FROM, claimed_by=None):
        return
    _kind, invitation = _invitation(session, outbox_id)
    if invitation is not None and invitation.status in _BOUNCEABLE:
        set_status(session, invitation, InvitationStatus.BOUNCED, "bounce")


def mark_dead(session: Session, outbox_id: int, *, now: datetime, reason: str) -> None:
    """Give the message up (an operator may replay it)."""
    _finish(session, outbox_id, OutboxStatus.DEAD, _utc(now), reason, claimed_by=None)


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """How long to wait after `attempts` failed attempts: 1 min, ~2, ~4 … at most 1 h.

    Never below a minute: a server that said "try later" means minutes, not seconds.
    """
    nominal = FIRST_RETRY.total_seconds() * 2 ** min(max(attempts, 1) - 1, 16)
    capped = min(nominal, MAX_RETRY_DELAY.total_seconds())
    factor = (rng or random.Random()).uniform(1 - JITTER, 1.0)  # noqa: S311 - jitter
    return timedelta(seconds=max(FIRST_RETRY.total_seconds(), capped * factor))


def mark_retry(session: Session, outbox_id: int, *, now: datetime, reason: str,
               retry_for: timedelta = DEFAULT_RETRY_FOR,
               rng: random.Random | None = None) -> OutboxStatus:
    """A temporary failure: retry later with backoff, or dead once the deadline has passed.

    The deadline is the message's own `deadline_at`, else `created_at + retry_for`. The last
    retry is never scheduled after the deadline. Returns the status the row ends in.
    """
    now = _utc(now)
    row = session.execute(
        select(OutboxMessage.status, OutboxMessage.attempts, OutboxMessage.created_at,
               OutboxMessage.deadline_at).where(OutboxMessage.id == outbox_id)).one()
    if row.status not in _OPEN:
        _finish(session, outbox_id, OutboxStatus.RETRY, now, reason)
        return OutboxStatus(row.status)
    deadline = (_utc(row.deadline_at) if row.deadline_at is not None
                else _utc(row.created_at) + retry_for)
    if now >= deadline:
        _finish(session, outbox_id, OutboxStatus.DEAD, now,
                f"gave up after {row.attempts} attempts: {reason}", claimed_by=None)
        return OutboxStatus.DEAD
    when = min(now + retry_delay(row.attempts, rng), deadline)
    _finish(session, outbox_id, OutboxStatus.RETRY, now,
            f"attempt {row.attempts}: {reason}; next at {when:%Y-%m-%d %H:%M:%S}Z",
            next_attempt_at=when, claimed_by=None)
    return OutboxStatus.RETRY


# --- operators ------------------------------------------------------------------------------


def replay(session: Session, *, ids: Sequence[int] | None, now: datetime,
           retry_for: timedelta = DEFAULT_RETRY_FOR) -> int:
    """Queue dead messages again (all of them when `ids` is None); how many were replayed.

    Attempts are kept (the history stays honest); the message gets a new deadline `retry_for`
    from now, or it would die again at its first temporary failure. Messages whose body was
    already cleared (a sealed survey) cannot be sent and are left alone.
    """
    now = _utc(now)
    query = select(OutboxMessage.id).where(OutboxMessage.status == OutboxStatus.DEAD,
                                           OutboxMessage.payload.is_not(None))
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(list(ids)))
    chosen = list(session.scalars(query.order_by(OutboxMessage.id)))
    if not chosen:
        return 0
    session.execute(
        update(OutboxMessage).where(OutboxMessage.id.in_(chosen))
        .values(status=OutboxStatus.QUEUED.value, next_attempt_at=now,
                deadline_at=now + retry_for, claimed_by=None)
        .execution_options(synchronize_session=False))
    for outbox_id in chosen:
        _event(session, outbox_id, OutboxStatus.QUEUED.value, "replayed by operator", now)
    session.flush()
    log.info("outbox: %d dead messages replayed", len(chosen))
    return len(chosen)


def history(session: Session, outbox_id: int) -> list[OutboxEvent]:
    """The message's events, oldest first."""
    return list(session.scalars(select(OutboxEvent).where(OutboxEvent.outbox_id == outbox_id)
                                .order_by(OutboxEvent.id)))


def find_by_message_id(session: Session, message_id: str) -> OutboxMessage | None:
    """The outbound message with this Message-ID (to match replies and bounces), or None."""
    return session.scalars(select(OutboxMessage).where(
        OutboxMessage.message_id == message_id)).one_or_none()


def sent_since(session: Session, since: datetime, *, channel: str = "email") -> list[datetime]:
    """When each message of `channel` sent after `since` was sent (seeds the daily budget)."""
    return [_utc(at) for at in session.scalars(
        select(OutboxMessage.sent_at).where(OutboxMessage.channel == channel,
                                            OutboxMessage.sent_at.is_not(None),
                                            OutboxMessage.sent_at > _utc(since))
        .order_by(OutboxMessage.sent_at)) if at is not None]


def counts(session: Session) -> list[tuple[str, str, int]]:
    """(status, kind, number of messages) for every combination present."""
    rows = session.execute(select(OutboxMessage.status, OutboxMessage.kind, func.count())
                           .group_by(OutboxMessage.status, OutboxMessage.kind)
                           .order_by(OutboxMessage.status, OutboxMessage.kind))
    return [(str(status), str(kind), int(n)) for status, kind, n in rows]


def describe_reason(text: str) -> str:
    """A server's or library's message fit for an event: no addresses or tokens, short."""
    return safe_reason(text)
