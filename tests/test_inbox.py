"""The inbox on SQLite and PostgreSQL: deduplication, status changes, and claiming rows."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from storage_support import admin_engine, drop_postgres_database, new_postgres_name

from storage.db import session_factory, transaction
from storage.inbox import (
    mark_ignored,
    mark_processed,
    message_id_of,
    next_received,
    normalise_message_id,
    quarantine,
    quarantined,
    release_quarantined,
    store_inbound,
)
from storage.migrate import init_database, open_database
from storage.schema import InboxEvent, InboxMessage, InboxStatus

pytest_plugins = ["storage_backends"]  # the PostgreSQL server fixture

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
RAW = b"Message-ID: <one@example.test>\r\nSubject: Re: survey\r\n\r\n4\r\n"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_engine(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One migrated database per backend for the whole module (creating one costs ~0.5 s)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('inbox') / 'svarbot.db'}"
        name = None
    else:
        server = request.getfixturevalue("postgres_server")
        name = new_postgres_name()
        admin = admin_engine()
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            admin.dispose()
        url = f"{server}/{name}"
    try:
        init_database(url)
        engine = open_database(url)
        try:
            yield engine
        finally:
            engine.dispose()
    finally:
        if name is not None:
            drop_postgres_database(name)


@pytest.fixture
def factory(module_engine: Engine) -> sessionmaker[Session]:
    """Sessions on the module's database, emptied of inbox rows for each test."""
    with module_engine.begin() as connection:
        connection.execute(delete(InboxEvent))
        connection.execute(delete(InboxMessage))
    return session_factory(module_engine)


def _store(session: Session, external_id: str, message_id: str | None = None,
           channel: str = "email", raw: bytes = RAW) -> InboxMessage | None:
    return store_inbound(session, channel=channel, external_id=external_id, raw=raw,
                         message_id=message_id, now=NOW)


def _count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(InboxMessage)) or 0)


def _events(factory: sessionmaker[Session], inbox_id: int) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(InboxEvent.status)
                                    .where(InboxEvent.inbox_id == inbox_id)
                                    .order_by(InboxEvent.id)))


# --- storing and deduplication --------------------------------------------------------------


def test_a_message_is_stored_once_per_external_id(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        first = _store(session, "imap:INBOX:7:1", "<one@example.test>")
    assert first is not None
    with transaction(factory) as session:
        assert _store(session, "imap:INBOX:7:1", None) is None
    assert _count(factory) == 1
    with factory() as session:
        row = session.get(InboxMessage, first.id)
        assert row is not None
        assert (row.status, row.raw, row.message_id) == (InboxStatus.RECEIVED, RAW,
                                                         "<one@example.test>")
    assert _events(factory, first.id) == ["received"]


def test_the_same_message_id_is_stored_once_per_channel(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        assert _store(session, "imap:INBOX:7:1", "<one@example.test>") is not None
        # the same mail, fetched again after the mailbox was rebuilt (new UIDVALIDITY)
        assert _store(session, "imap:INBOX:8:1", " <one@example.test>\r\n ") is None
        assert _store(session, "smtp:abc", "<one@example.test>", channel="other") is not None
        assert _store(session, "imap:INBOX:7:2", None) is not None
        assert _store(session, "imap:INBOX:7:3", None) is not None  # no id: no id dedupe
    assert _count(factory) == 4


def test_a_repeat_inside_the_callers_transaction_leaves_it_usable(
        factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        _store(session, "a", "<a@x>")
        assert _store(session, "a", "<a@x>") is None
        assert _store(session, "b", "<b@x>") is not None
    assert _count(factory) == 2


def test_a_rolled_back_caller_leaves_nothing_behind(factory: sessionmaker[Session]) -> None:
    # On SQLite a SAVEPOINT outside a real transaction commits on RELEASE; this catches that.
    with factory() as session:
        session.begin()
        assert _store(session, "gone", "<gone@x>") is not None
        session.rollback()
    assert _count(factory) == 0


def test_losing_an_insert_race_returns_none_and_keeps_the_transaction(
        factory: sessionmaker[Session]) -> None:
    """Both writers pass the check; the second insert waits for the first and then loses."""
    winner = factory()
    winner.begin()
    assert _store(winner, "race", "<race@x>") is not None
    outcome: dict[str, object] = {}

    def loser() -> None:
        try:
            with transaction(factory) as session:
                outcome["repeat"] = _store(session, "race", None)
                outcome["other"] = _store(session, "after-race", None) is not None
        except Exception as exc:  # reported to the main thread below
            outcome["error"] = exc

    thread = threading.Thread(target=loser)
    thread.start()
    thread.join(0.5)  # the loser is now blocked on the winner's uncommitted row
    winner.commit()
    winner.close()
    thread.join(10)
    assert not thread.is_alive()
    assert outcome == {"repeat": None, "other": True}
    assert _count(factory) == 2


# --- status changes -------------------------------------------------------------------------


def _one(factory: sessionmaker[Session], external_id: str = "x") -> int:
    with transaction(factory) as session:
        row = _store(session, external_id)
        assert row is not None
        return row.id


def test_quarantine_keeps_the_raw_message_and_can_be_released(
        factory: sessionmaker[Session]) -> None:
    inbox_id = _one(factory)
    with transaction(factory) as session:
        quarantine(session, inbox_id, reason="parse_error", detail="no text part", now=NOW)
    with factory() as session:
        rows = quarantined(session)
        assert [(r.id, r.status, r.error, r.raw) for r in rows] == [
            (inbox_id, InboxStatus.FAILED, "parse_error", RAW)]
        assert next_received(session, now=NOW) is None
    with transaction(factory) as session:
        assert release_quarantined(session, [inbox_id, inbox_id, 999], now=NOW) == 1
    with transaction(factory) as session:
        row = next_received(session, now=NOW)
        assert row is not None
        assert (row.id, row.error, row.raw) == (inbox_id, None, RAW)
        assert release_quarantined(session, [inbox_id], now=NOW) == 0  # not quarantined now
    assert _events(factory, inbox_id) == ["received", "failed", "released"]


def test_processed_and_ignored_messages_lose_their_raw_bytes(
        factory: sessionmaker[Session]) -> None:
    done, skipped = _one(factory, "done"), _one(factory, "skipped")
    with transaction(factory) as session:
        mark_processed(session, done, classification="answer", invitation_id=None, now=NOW)
        mark_ignored(session, skipped, classification="auto_reply", reason="Auto-Submitted",
                     now=NOW)
    with factory() as session:
        first, second = session.get(InboxMessage, done), session.get(InboxMessage, skipped)
        assert first is not None
        assert second is not None
        assert (first.status, first.classification, first.raw) == (
            InboxStatus.PROCESSED, "answer", None)
        assert (second.status, second.classification, second.raw) == (
            InboxStatus.IGNORED, "auto_reply", None)
        assert next_received(session, now=NOW) is None
    assert _events(factory, done) == ["received", "processed"]
    assert _events(factory, skipped) == ["received", "ignored"]


def test_a_status_change_for_a_missing_row_is_an_error(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session, pytest.raises(LookupError):
        quarantine(session, 12345, reason="x", now=NOW)


def test_next_received_takes_the_oldest_first(factory: sessionmaker[Session]) -> None:
    ids = [_one(factory, f"m{i}") for i in range(3)]
    seen = []
    for _ in ids:
        with transaction(factory) as session:
            row = next_received(session, now=NOW)
            assert row is not None
            seen.append(row.id)
            mark_processed(session, row.id, classification="answer", invitation_id=None,
                           now=NOW)
    assert seen == ids


# --- several workers on PostgreSQL ----------------------------------------------------------


@pytest.mark.parametrize("module_engine", ["postgresql"], indirect=True)
def test_two_workers_on_postgresql_claim_different_rows(factory: sessionmaker[Session]) -> None:
    ids = [_one(factory, f"m{i}") for i in range(3)]
    first, second = factory(), factory()
    try:
        first.begin()
        second.begin()
        second.execute(text("SET LOCAL lock_timeout = '2s'"))  # fail, not hang, if it waits
        a = next_received(first, now=NOW)
        b = next_received(second, now=NOW)  # must not wait for, nor repeat, the first's row
        assert a is not None
        assert b is not None
        assert (a.id, b.id) == (ids[0], ids[1])
        first.rollback()  # a crash: the row is handed out again
        again = next_received(first, now=NOW)
        assert again is not None
        assert again.id == ids[0]
    finally:
        first.close()
        second.close()


# --- Message-ID -----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    (b"Message-ID: <a@b.example>\r\n\r\nx", "<a@b.example>"),
    (b"Message-Id:\r\n <folded@b.example>\r\n\r\nx", "<folded@b.example>"),
    (b"Message-ID: <a@b> (comment)\r\n\r\nx", "<a@b>"),
    (b"Subject: none\r\n\r\nx", None),
    (b"Message-ID: <>\r\n\r\nx", None),
    (b"Message-ID: <" + b"x" * 500 + b"@b>\r\n\r\n", None),
    (b"\xff\xfe\x00garbage", None),
])
def test_message_id_of(raw: bytes, expected: str | None) -> None:
    assert message_id_of(raw) == expected


def test_normalise_message_id_keeps_ids_without_brackets() -> None:
    assert normalise_message_id("  bare@id ") == "bare@id"
    assert normalise_message_id("") is None
    assert normalise_message_id(None) is None
