"""The inbox: every inbound message is stored here first, then worked off one row at a time.

Mail arrives twice as often as it is sent: MTAs retry after a lost 250, IMAP readers fetch again
after a crash between commit and MOVE, and a message can reach both the IMAP mailbox and the
SMTP listener. So `store_inbound` is idempotent: the same (channel, external id) or the same
Message-ID on the same channel is stored once, and a repeat returns None without writing.

Raw messages may carry answers, so a row keeps its raw bytes only while it is waiting or
quarantined (an operator has to be able to look at what failed); once processed or ignored the
bytes are deleted and only the classification and the event history remain.

Every function works inside the caller's transaction and never commits: the dispatcher claims a
row with `next_received`, processes it and sets its status in one transaction, so a crash rolls
the whole step back and the message is processed again, never half. Logs name rows by id only.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable, Sequence
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import cast

from sqlalchemy import Executable, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from storage.schema import InboxEvent, InboxMessage, InboxStatus

log = logging.getLogger(__name__)

#: Longest Message-ID kept for deduplication (the column is 400 characters wide).
MESSAGE_ID_MAX = 400


# --- Message-ID -----------------------------------------------------------------------------


def normalise_message_id(value: str | None) -> str | None:
    """The Message-ID as compared for deduplication: `<…>` only, no folding whitespace.

    Anything without one (empty, or too long to be a real id) gives None, which turns Message-ID
    deduplication off for that message rather than risking two different messages colliding.
    """
    if value is None:
        return None
    text = "".join(value.split())
    start = text.find("<")
    end = text.find(">", start + 1)
    if start != -1 and end != -1:
        text = text[start:end + 1]
    if not text or text == "<>" or len(text) > MESSAGE_ID_MAX:
        return None
    return text


def message_id_of(raw: bytes) -> str | None:
    """The normalised Message-ID header of a raw message, or None (never raises on bad mail)."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        value = headers.get("Message-ID")
    except Exception:  # malformed mail must not stop the inbox; it is stored without an id
        log.debug("message headers could not be parsed", exc_info=True)
        return None
    return normalise_message_id(str(value)) if value is not None else None


# --- storing --------------------------------------------------------------------------------


def _begin_sqlite_transaction(session: Session) -> None:
    """Make sure SQLite really is inside a transaction before a SAVEPOINT.

    The sqlite3 module opens transactions lazily (only before INSERT/UPDATE/DELETE). A SAVEPOINT
    sent outside one starts its own, and its RELEASE then commits: the row would survive a
    rollback of the caller's transaction. BEGIN IMMEDIATE also takes the write lock now (waiting
    out the busy timeout), so the insert below cannot fail on a stale read snapshot.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.driver_connection
    if driver is not None and not getattr(driver, "in_transaction", True):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _already_stored(session: Session, channel: str, external_id: str,
                    message_id: str | None) -> int | None:
    found = session.scalar(select(InboxMessage.id).where(
        InboxMessage.channel == channel, InboxMessage.external_id == external_id))
    if found is None and message_id is not None:
        found = session.scalar(select(InboxMessage.id).where(
            InboxMessage.channel == channel, InboxMessage.message_id == message_id).limit(1))
    return found


def _event(session: Session, inbox_id: int, status: str, now: dt.datetime,
           detail: str = "") -> None:
    session.add(InboxEvent(inbox_id=inbox_id, at=now, status=status, detail=detail))


def store_inbound(session: Session, *, channel: str, external_id: str, raw: bytes,
                  message_id: str | None, now: dt.datetime) -> InboxMessage | None:
    """Store one inbound message as 'received'; None (nothing written) if it is a repeat.

    A repeat is the same `external_id` on `channel`, or the same Message-ID on `channel`.
    The check comes first (the usual case costs no failed insert); the insert itself runs in a
    SAVEPOINT, so losing a race to a concurrent writer of the same external id rolls back only
    the savepoint and the caller's transaction stays usable, on SQLite and PostgreSQL alike.
    """
    message_id = normalise_message_id(message_id)
    existing = _already_stored(session, channel, external_id, message_id)
    if existing is not None:
        log.debug("inbound %s message already stored as inbox row %s", channel, existing)
        return None
    _begin_sqlite_transaction(session)
    row = InboxMessage(channel=channel, external_id=external_id, message_id=message_id,
                       status=InboxStatus.RECEIVED, raw=raw, received_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
            _event(session, row.id, "received", now, f"{len(raw)} bytes")
            session.flush()
    except IntegrityError:
        log.debug("inbound %s message stored concurrently by another writer", channel)
        return None
    log.info("inbox row %s received (%s)", row.id, channel)
    return row


# --- status changes -------------------------------------------------------------------------


def _row(session: Session, inbox_id: int) -> InboxMessage:
    row = session.get(InboxMessage, inbox_id)
    if row is None:
        raise LookupError(f"inbox row {inbox_id} does not exist")
    return row


def quarantine(session: Session, inbox_id: int, *, reason: str, detail: str = "",
               now: dt.datetime) -> None:
    """Set a message aside as 'failed' with a reason code; the raw bytes stay for inspection."""
    row = _row(session, inbox_id)
    row.status = InboxStatus.FAILED
    row.error = reason
    _event(session, row.id, "failed", now, f"{reason}: {detail}" if detail else reason)
    log.warning("inbox row %s quarantined: %s", row.id, reason)


def _set_final(session: Session, inbox_id: int, values: dict[str, object], event: str,
               detail: str, now: dt.datetime) -> None:
    """Write a final status and the event for it now, in two plain statements.

    Once per message, so no ORM flush is spent on it. The row object, when the session holds it
    (the dispatcher's, from `next_received`), is given the same values as already saved, so it
    agrees with the database and nothing is written again.

    Raises:
        LookupError: there is no such row.
    """
    connection = session.connection()
    result = connection.execute(_update_by_id(tuple(values)), {
        "k_id": inbox_id, **{f"v_{column}": value for column, value in values.items()}})
    if result.rowcount != 1:
        raise LookupError(f"inbox row {inbox_id} does not exist")
    connection.execute(_INSERT_EVENT, {"inbox_id": inbox_id, "at": now, "status": event,
                                       "detail": detail})
    row = session.identity_map.get(identity_key(InboxMessage, inbox_id))
    if row is not None:
        for attribute, value in values.items():
            set_committed_value(row, attribute, value)


@functools.cache
def _update_by_id(columns: tuple[str, ...]) -> Executable:
    """UPDATE inbox SET `columns` WHERE id = :k_id (built once per set of columns: they run
    for every message)."""
    table = cast(Table, InboxMessage.__table__)
    return (update(table).where(table.c.id == bindparam("k_id"))
            .values({column: bindparam(f"v_{column}") for column in columns}))


_INSERT_EVENT = insert(cast(Table, InboxEvent.__table__))


def mark_processed(session: Session, inbox_id: int, *, classification: str,
                   invitation_id: int | None, now: dt.datetime, detail: str = "") -> None:
    """The message has been handled; its raw bytes (which may carry answers) are deleted."""
    _set_final(session, inbox_id, {"status": InboxStatus.PROCESSED,
                                   "classification": classification,
                                   "invitation_id": invitation_id, "raw": None, "error": None},
               "processed", detail or classification, now)


def mark_ignored(session: Session, inbox_id: int, *, classification: str, reason: str,
                 now: dt.datetime) -> None:
    """The message needs no handling (an auto-reply, a bounce …); its raw bytes are deleted."""
    _set_final(session, inbox_id, {"status": InboxStatus.IGNORED,
                                   "classification": classification, "raw": None,
                                   "error": None}, "ignored", reason, now)


# --- reading --------------------------------------------------------------------------------


def next_received(session: Session, *, now: dt.datetime,
                  channels: Sequence[str] | None = None) -> InboxMessage | None:
    """The oldest 'received' row of `channels` (default: any), locked for this transaction;
    None when there is none.

    A dispatcher asks only for the channels it can read, so a row of a channel this process
    does not run waits (received, never misread) for one that does. On PostgreSQL the row is
    taken FOR UPDATE SKIP LOCKED, so several worker processes each get a different row and
    nobody waits; the lock holds until the caller's transaction ends, which must also set the
    row's new status. SQLite has one writer at a time and ignores the clause. `now` is part of
    the signature for symmetry with the writers but does not filter: a row is due as soon as
    it is stored, whatever the clocks of the processes that wrote it said.
    """
    del now
    if channels is None:
        return session.scalars(_NEXT_RECEIVED).first()
    return session.scalars(_NEXT_RECEIVED_OF, {"channels": list(channels)}).first()


#: Built once: they run for every message.
_NEXT_RECEIVED = (select(InboxMessage)
                  .where(InboxMessage.status == InboxStatus.RECEIVED)
                  .order_by(InboxMessage.id)
                  .limit(1)
                  .with_for_update(skip_locked=True))
_NEXT_RECEIVED_OF = _NEXT_RECEIVED.where(
    InboxMessage.channel.in_(bindparam("channels", expanding=True)))


def quarantined(session: Session) -> list[InboxMessage]:
    """Every message set aside as 'failed', oldest first (for `svarbot inbox` and operators)."""
    return list(session.scalars(
        select(InboxMessage)
        .where(InboxMessage.status == InboxStatus.FAILED)
        .order_by(InboxMessage.id)))


def release_quarantined(session: Session, ids: Iterable[int], *, now: dt.datetime) -> int:
    """Put quarantined messages back to 'received' after a fix; returns how many were released.

    Ids that are not quarantined (or whose raw bytes are gone) are left alone and not counted.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    rows = session.scalars(
        select(InboxMessage)
        .where(InboxMessage.id.in_(wanted), InboxMessage.status == InboxStatus.FAILED,
               InboxMessage.raw.is_not(None))
        .order_by(InboxMessage.id)).all()
    for row in rows:
        previous = row.error or ""
        row.status = InboxStatus.RECEIVED
        row.error = None
        _event(session, row.id, "released", now, f"was {previous}" if previous else "")
    if rows:
        log.info("%s quarantined inbox rows released", len(rows))
    return len(rows)


def newest_external(session: Session, channel: str) -> tuple[str, dt.datetime] | None:
    """The external id and time of the newest stored message of `channel` (a Telegram
    poller resumes after it); None when there is none."""
    row = session.execute(select(InboxMessage.external_id, InboxMessage.received_at)
                          .where(InboxMessage.channel == channel)
                          .order_by(InboxMessage.id.desc()).limit(1)).first()
    if row is None:
        return None
    at = row.received_at
    return row.external_id, at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


def discard_quarantined(session: Session, inbox_id: int, *, now: dt.datetime) -> bool:
    """An operator looked and threw a quarantined message away (its raw bytes go); False when
    it was not quarantined."""
    row = session.get(InboxMessage, inbox_id)
    if row is None or row.status != InboxStatus.FAILED:
        return False
    mark_ignored(session, inbox_id, classification=row.classification or "unknown",
                 reason="discarded by an operator", now=now)
    return True
