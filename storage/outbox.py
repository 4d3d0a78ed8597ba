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

import functools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Executable, Row, Table, func, insert, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, NoResultFound
from sqlalchemy.orm import Session, make_transient_to_detached

from storage.claim import OUTBOX, claim_due, release_rows
from storage.history import record_changes
from storage.identity import channel_unreachable, safe_reason, set_status
from storage.schema import (
    Invitation,
    InvitationStatus,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
)

log = logging.getLogger(__name__)

#: Column name → attribute name of the outbox model (the same today, but the model decides).
_COLUMN_KEYS = {column.key: OutboxMessage.__mapper__.get_property_by_column(column).key
                for column in cast(Table, OutboxMessage.__table__).c}

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


def _outbox_table() -> Table:
    return cast(Table, OutboxMessage.__table__)


@functools.cache
def _insert_statement(dialect: str) -> Executable:
    """INSERT … ON CONFLICT (idempotency_key) DO NOTHING RETURNING every column, where the
    dialect has it (else a plain INSERT … RETURNING, for `_insert_new`'s SAVEPOINT).

    Built once: a statement built anew per message, values and all, costs several times the
    insert itself in SQLAlchemy's compile-cache lookup.
    """
    table = _outbox_table()
    if dialect == "postgresql":
        return (postgresql.insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(*table.c))
    if dialect == "sqlite":
        return (sqlite.insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(*table.c))
    return insert(table).returning(*table.c)


@functools.cache
def _queued_event_statement() -> Executable:
    return insert(cast(Table, OutboxEvent.__table__))


def _insert_new(session: Session, values: dict[str, object]) -> OutboxMessage | None:
    """Insert the row unless its idempotency key exists; the new row, or None for a duplicate.

    A duplicate key must not abort the caller's transaction (PostgreSQL would refuse every
    later statement), hence ON CONFLICT DO NOTHING where the dialect has it, else a SAVEPOINT.
    Only the key is a tolerated conflict: a clashing Message-ID is a bug and raises. That the
    insert returned nothing is the whole existence check: no SELECT before it.
    """
    dialect = session.get_bind().dialect.name
    statement = _insert_statement(dialect)
    if dialect in ("postgresql", "sqlite"):
        row = session.connection().execute(statement, values).first()
    else:
        try:
            with session.begin_nested():
                row = session.connection().execute(statement, values).first()
        except IntegrityError:
            if find_by_key(session, str(values["idempotency_key"])) is None:
                raise
            return None
    return None if row is None else _adopt(session, row)


def _adopt(session: Session, row: Row[Any]) -> OutboxMessage:
    """The inserted row (as RETURNING gave it) as a persistent object of `session`.

    What `session.get` would give after a flush, without the SELECT: the values are the
    database's own, and the object is in the identity map, unchanged, so nothing is written
    again.
    """
    message = OutboxMessage(**{_COLUMN_KEYS[column]: value
                               for column, value in row._mapping.items()})
    make_transient_to_detached(message)
    session.add(message)
    return message


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
    The row and its "queued" event are written at once (no flush needed to see them).
    """
    now = _utc(now)
    values: dict[str, object] = {
        "idempotency_key": idempotency_key, "invitation_id": invitation_id, "channel": channel,
        "kind": kind, "recipient": recipient, "message_id": message_id, "payload": payload,
        "status": OutboxStatus.QUEUED.value, "attempts": 0,
        "next_attempt_at": _utc(not_before) if not_before is not None else now,
        "deadline_at": _utc(deadline) if deadline is not None else None,
        "claimed_by": None, "created_at": now, "sent_at": None}
    message = _insert_new(session, values)
    if message is None:
        return None
    session.connection().execute(_queued_event_statement(), {
        "outbox_id": message.id, "at": now, "status": OutboxStatus.QUEUED.value,
        "detail": ""})
    return message


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

#: What an attempt came to, as the sender reports it (see `record`).
ResultKind = Literal["sent", "bounced", "dead", "retry", "unreachable"]


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt on one message, for `record`."""

    outbox_id: int
    outcome: ResultKind
    reason: str = ""
    #: For a retry: the wait the other side asked for, instead of the usual backoff.
    retry_after: timedelta | None = None


@dataclass(frozen=True)
class _Target:
    """A final or waiting state a result moves a row to, and from which states it may."""

    status: OutboxStatus
    allowed: tuple[OutboxStatus, ...]


_TARGETS = {
    "sent": _Target(OutboxStatus.SENT, _OPEN),
    "bounced": _Target(OutboxStatus.BOUNCED, _BOUNCE_FROM),
    "dead": _Target(OutboxStatus.DEAD, _OPEN),
    # The recipient's chat is gone (a blocked bot): the message is bounced, the invitation
    # stays as it is and is written to on another channel from now on.
    "unreachable": _Target(OutboxStatus.BOUNCED, _OPEN),
}


def record(session: Session, results: Sequence[Result], *, now: datetime,
           retry_for: timedelta = DEFAULT_RETRY_FOR,
           rng: random.Random | None = None) -> dict[int, OutboxStatus]:
    """Record many attempts' outcomes in the caller's transaction; the status each row ends in.

    This is the sender's bookkeeping: a batch of results costs a handful of statements (one
    SELECT, one guarded UPDATE per kind of outcome, one multi-row INSERT of events, one UPDATE
    of invitations) instead of a transaction per message, which is what limited the sending
    rate. Retries are the exception (each has its own next attempt time) and are updated one
    by one; they are rare.

    What each outcome does (the single-message `mark_*` functions below are this with one
    result):

    * `sent`: the row is sent, its body cleared; an invitation still pending becomes invited.
    * `bounced`: also from sent or dead (a delivery report can come later); the invitation
      becomes bounced unless the respondent already went further (finished, opted out).
    * `dead`: given up (an operator may replay it).
    * `retry`: back off (see `retry_delay`), or dead once the message's deadline (its own
      `deadline_at`, else `created_at + retry_for`) has passed; the last retry is never
      scheduled after the deadline.

    The state guard is in each UPDATE, so a late result (a worker whose lease was taken over)
    never turns a final row into another: it is written as an "ignored" event instead. Rows
    that no longer exist are skipped. If one message has several results, they are applied
    in order.
    """
    now = _utc(now)
    statuses: dict[int, OutboxStatus] = {}
    pending = list(results)
    while pending:
        seen: set[int] = set()
        now_round: list[Result] = []
        later: list[Result] = []
        for result in pending:
            (later if result.outbox_id in seen else now_round).append(result)
            seen.add(result.outbox_id)
        statuses.update(_record_round(session, now_round, now, retry_for, rng))
        pending = later
    return statuses


def _record_round(session: Session, results: Sequence[Result], now: datetime,
                  retry_for: timedelta, rng: random.Random | None) -> dict[int, OutboxStatus]:
    """`record` for results that name each message once."""
    if not results:
        return {}
    rows = {row.id: row for row in session.execute(
        select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts,
               OutboxMessage.kind, OutboxMessage.invitation_id, OutboxMessage.channel)
        .where(OutboxMessage.id.in_([r.outbox_id for r in results])))}
    deadlines = _deadlines(session, [r.outbox_id for r in results if r.outcome == "retry"],
                           retry_for)
    statuses: dict[int, OutboxStatus] = {}
    events: list[dict[str, object]] = []
    # Per target state: (id, event detail) of every row to move there.
    moves: dict[str, list[tuple[int, str]]] = {name: [] for name in _TARGETS}
    for result in results:
        row = rows.get(result.outbox_id)
        if row is None:
            continue
        if result.outcome == "sent":
            moves["sent"].append((row.id, result.reason or "accepted"))
        elif result.outcome in ("bounced", "dead", "unreachable"):
            moves[result.outcome].append((row.id, result.reason))
        elif OutboxStatus(row.status) not in _OPEN:
            _late(events, row.id, OutboxStatus.RETRY, result.reason, now)
            statuses[row.id] = OutboxStatus(row.status)
        else:
            deadline = deadlines[row.id]
            if now >= deadline:
                moves["dead"].append(
                    (row.id, f"gave up after {row.attempts} attempts: {result.reason}"))
            else:
                wait = result.retry_after or retry_delay(row.attempts, rng)
                statuses[row.id] = _retry(session, events, row.id, row.attempts, result.reason,
                                          min(now + wait, deadline), now)
    changed: dict[str, set[int]] = {}
    for name, moved in moves.items():
        target = _TARGETS[name]
        changed[name] = _move(session, target, [i for i, _ in moved], now)
        for outbox_id, detail in moved:
            if outbox_id in changed[name]:
                events.append({"outbox_id": outbox_id, "at": now,
                               "status": target.status.value, "detail": detail})
                statuses[outbox_id] = target.status
            else:
                _late(events, outbox_id, target.status, detail, now)
                statuses[outbox_id] = OutboxStatus(rows[outbox_id].status)
    if events:
        session.execute(insert(cast(Table, OutboxEvent.__table__)),
                        [{"attempt": None, "next_at": None, **event} for event in events])
    _invitations_sent(session, [rows[i].invitation_id for i in sorted(changed["sent"])
                                if rows[i].kind == "invitation"
                                and rows[i].invitation_id is not None], now)
    _invitations_bounced(session, [rows[i].invitation_id for i in sorted(changed["bounced"])
                                   if rows[i].invitation_id is not None])
    gone: dict[str, list[int]] = {}
    for i in sorted(changed["unreachable"]):
        if rows[i].invitation_id is not None:
            gone.setdefault(rows[i].channel, []).append(rows[i].invitation_id)
    for channel, invitation_ids in gone.items():
        channel_unreachable(session, channel, invitation_ids)
    session.flush()
    return statuses


def _deadlines(session: Session, ids: list[int], retry_for: timedelta) -> dict[int, datetime]:
    """When each of `ids` stops being retried (read only for retries: most batches have none)."""
    if not ids:
        return {}
    rows = session.execute(select(OutboxMessage.id, OutboxMessage.created_at,
                                  OutboxMessage.deadline_at).where(OutboxMessage.id.in_(ids)))
    return {row.id: (_utc(row.deadline_at) if row.deadline_at is not None
                     else _utc(row.created_at) + retry_for) for row in rows}


def _late(events: list[dict[str, object]], outbox_id: int, status: OutboxStatus, reason: str,
          now: datetime) -> None:
    events.append({"outbox_id": outbox_id, "at": now, "status": "ignored",
                   "detail": f"late result {status.value}: {reason}"})
    log.warning("outbox %s: result %s ignored (already final)", outbox_id, status.value)


def _move(session: Session, target: _Target, ids: list[int], now: datetime) -> set[int]:
    """Move the rows among `ids` that are in an allowed state to `target`; the ids moved."""
    if not ids:
        return set()
    values: dict[str, object] = {"status": target.status.value, "claimed_by": None}
    if target.status == OutboxStatus.SENT:
        values.update(sent_at=now, payload=null())
    moved = session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids),
               OutboxMessage.status.in_([s.value for s in target.allowed]))
        .values(values).returning(OutboxMessage.id)
        .execution_options(synchronize_session=False))
    return set(moved)


def _retry(session: Session, events: list[dict[str, object]], outbox_id: int, attempts: int,
           reason: str, when: datetime, now: datetime) -> OutboxStatus:
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id,
               OutboxMessage.status.in_([s.value for s in _OPEN]))
        .values(status=OutboxStatus.RETRY.value, next_attempt_at=when, claimed_by=None)
        .execution_options(synchronize_session=False))
    if getattr(result, "rowcount", 0) != 1:
        # Finished by someone else between the SELECT and now.
        _late(events, outbox_id, OutboxStatus.RETRY, reason, now)
        return OutboxStatus(session.scalars(select(OutboxMessage.status)
                                            .where(OutboxMessage.id == outbox_id)).one())
    events.append({"outbox_id": outbox_id, "at": now, "status": OutboxStatus.RETRY.value,
                   "detail": reason, "attempt": attempts, "next_at": when})
    return OutboxStatus.RETRY


def _invitations_sent(session: Session, ids: list[int | None], now: datetime) -> None:
    """Pending invitations whose message went out are now invited (one UPDATE, one INSERT of
    their status events)."""
    chosen = [i for i in ids if i is not None]
    if not chosen:
        return
    changed = session.scalars(
        update(Invitation)
        .where(Invitation.id.in_(chosen), Invitation.status == InvitationStatus.PENDING)
        .values(status=InvitationStatus.INVITED).returning(Invitation.id)
        .execution_options(synchronize_session="fetch"))
    changed_ids = sorted(changed)
    for invitation_id in changed_ids:
        log.info("invitation %s: pending -> invited (invitation sent)", invitation_id)
    record_changes(session, [(i, InvitationStatus.PENDING, InvitationStatus.INVITED)
                             for i in changed_ids], reason="invitation sent", now=now)


def _invitations_bounced(session: Session, ids: list[int | None]) -> None:
    """Invitations whose address bounced are bounced, unless the respondent went further."""
    chosen = [i for i in ids if i is not None]
    if not chosen:
        return
    for invitation in session.scalars(select(Invitation).where(Invitation.id.in_(chosen))
                                      .order_by(Invitation.id)):
        if invitation.status in _BOUNCEABLE:
            set_status(session, invitation, InvitationStatus.BOUNCED, "bounce")


def note_soft_bounce(session: Session, outbox_id: int, *, now: datetime, detail: str) -> None:
    """A delivery report says the message is delayed or refused for now: history only."""
    _event(session, outbox_id, "soft_bounce", detail, now)


def mark_sent(session: Session, outbox_id: int, *, now: datetime, detail: str = "") -> None:
    """The server accepted the message: sent, payload cleared; an invitation becomes invited."""
    record(session, [Result(outbox_id, "sent", detail)], now=now)


def mark_bounced(session: Session, outbox_id: int, *, now: datetime, reason: str) -> None:
    """The address was refused for good: bounced, and so is the invitation it belongs to.

    Also for a message already sent: a delivery status notification can arrive hours after
    the server accepted it. An invitation that has already gone further than being contacted
    (finished, opted out, closed) keeps its status: a bounced confirmation does not undo an
    answer.
    """
    record(session, [Result(outbox_id, "bounced", reason)], now=now)


def mark_dead(session: Session, outbox_id: int, *, now: datetime, reason: str) -> None:
    """Give the message up (an operator may replay it)."""
    record(session, [Result(outbox_id, "dead", reason)], now=now)


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

    Raises:
        NoResultFound: there is no such message.
    """
    statuses = record(session, [Result(outbox_id, "retry", reason)], now=now,
                      retry_for=retry_for, rng=rng)
    if outbox_id not in statuses:
        raise NoResultFound(f"outbox {outbox_id} does not exist")
    return statuses[outbox_id]


def release(session: Session, ids: Sequence[int], *, worker: str, now: datetime) -> int:
    """Hand claimed messages that were never tried back to the queue; how many were.

    For a sender that stops (or finds a lease nearly spent) with messages claimed but not
    sent: they are due again at once, for any worker, instead of after the lease, and the
    attempt the claim counted is taken back. See storage.claim.release_rows.
    """
    return release_rows(session, OUTBOX, ids=ids, worker=worker, now=_utc(now))


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


def postpone(session: Session, ids: Sequence[int], *, until: datetime) -> None:
    """Hold waiting messages back until `until` (the send window's next opening)."""
    session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(list(ids)))
                    .values(next_attempt_at=_utc(until))
                    .execution_options(synchronize_session=False))
