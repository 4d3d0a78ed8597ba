"""IMAP faults against a real Dovecot on loopback: no message lost, none stored twice.

The reader (`bot.channels.email.imap_reader.ImapReader`, its own thread, IDLE) keeps INBOX
empty by storing each message in a real SQLite inbox and then moving it to the processed
folder. Meanwhile the test does to the server what servers and people do:

* Dovecot is restarted while the reader is in IDLE, and again while it is half-way through a
  batch (messages committed to the inbox but not yet moved);
* the mailbox's UIDVALIDITY is changed (`doveadm mailbox update --uid-validity`) while mail
  the reader stored is still in INBOX (its move was lost), so every UID it knew is void;
* someone deletes the processed folder;
* someone else expunges messages between the reader's SEARCH and its FETCH, and between the
  size FETCH and the body FETCH.

In each case every message that was not deleted by someone else ends up stored exactly once
(one inbox row per Message-ID, one "received" event each) and moved (INBOX empty, the
processed folder holding it). Each test prints what it injected and what it counted (run with
-s). Dovecot is required: without it the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import bot.channels.email.imap_reader as imap_reader
from bot.channels.email.imap_reader import ImapReader
from bot.config import EmailSettings, ImapSettings, Settings
from storage.schema import InboxEvent, InboxMessage

if TYPE_CHECKING:
    from dovecot import Dovecot, MailUser

pytest_plugins = ["dovecot"]  # the Dovecot fixtures

PASSWORD_ENV = "SVARBOT_TEST_IMAP_PASSWORD"  # noqa: S105 - the name of a variable
PROCESSED = "svarbot/behandlet"
ON_SERVER = "svarbot.behandlet"  # Dovecot's maildir hierarchy delimiter is "."
DELETED = b"\\Deleted"


def _message(n: int, *, message_id: bool = True) -> bytes:
    message = EmailMessage()
    message["From"] = f"leder{n}@kommune.example"
    message["To"] = "svar+abc@svarbot.localhost"
    message["Subject"] = f"Re: survey {n}"
    if message_id:
        message["Message-ID"] = f"<fault-{n}-{time.monotonic_ns()}@kommune.example>"
    message.set_content(f"svar {n}\n")
    return message.as_bytes(policy=SMTP)


def _settings(server: Dovecot, user: MailUser) -> Settings:
    return Settings(email=EmailSettings(imap=ImapSettings(
        enabled=True, host=server.host, port=server.imap_port, ssl=False,
        username=user.address, password_env=PASSWORD_ENV, folder="INBOX",
        processed_folder=PROCESSED, idle_renew_seconds=10, poll_seconds=60)))


class _Reader(ImapReader):
    """The real reader, counting what it stored and what it found stored already."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.repeats = 0

    def _store(self, uidvalidity: int, uid: int, raw: bytes, oversize: int | None) -> bool:
        added = super()._store(uidvalidity, uid, raw, oversize)
        self.repeats += not added
        return added


@pytest.fixture
def readers() -> Iterator[list[ImapReader]]:
    """Readers a test starts; all are stopped at the end, even when the test fails."""
    started: list[ImapReader] = []
    yield started
    for reader in started:
        reader.stop()


def _wait(what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.02)  # poll until the condition holds
    return time.monotonic() - started


def _uids(server: Dovecot, user: MailUser, folder: str) -> list[int]:
    client = server.client(user)
    try:
        if not client.folder_exists(folder):
            return []
        client.select_folder(folder, readonly=True)
        return list(client.search(["ALL"]))
    finally:
        client.logout()


def _counts(server: Dovecot, user: MailUser) -> tuple[int, int]:
    return len(_uids(server, user, "INBOX")), len(_uids(server, user, ON_SERVER))


def _expunge(server: Dovecot, user: MailUser, uids: list[int]) -> None:
    """What another mail client does: delete these messages from INBOX for good."""
    client = server.client(user)
    try:
        client.select_folder("INBOX")
        client.add_flags(uids, [DELETED], silent=True)
        client.uid_expunge(uids)
    finally:
        client.logout()


def _stored(factory: sessionmaker[Session]) -> tuple[int, int, int]:
    """(inbox rows, distinct Message-IDs, rows with more than one 'received' event)."""
    with factory() as session:
        rows = int(session.scalar(select(func.count()).select_from(InboxMessage)) or 0)
        ids = int(session.scalar(select(func.count(func.distinct(InboxMessage.message_id))))
                  or 0)
        received = Counter(session.scalars(select(InboxEvent.inbox_id)
                                           .where(InboxEvent.status == "received")))
    return rows, ids, sum(1 for n in received.values() if n > 1)


def _check(summary: str, factory: sessionmaker[Session], server: Dovecot, user: MailUser,
           expected: int, processed: int | None = None) -> None:
    rows, distinct, twice = _stored(factory)
    assert (rows, distinct, twice) == (expected, expected, 0), summary
    assert _counts(server, user) == (0, expected if processed is None else processed), summary


# --- the server restarts --------------------------------------------------------------------


def test_dovecot_restarted_in_idle_and_between_storing_and_moving(
        own_dovecot: Dovecot, factory: sessionmaker[Session], readers: list[ImapReader],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = own_dovecot
    user = server.add_user("restarts")
    monkeypatch.setenv(PASSWORD_ENV, user.password)
    committed = threading.Event()
    restarted = threading.Event()
    in_batch = [0]
    hold_after = 2  # the restart comes after this many stores of the third round

    class Holding(_Reader):
        """Waits, after a commit in the third round, until the server has been restarted."""

        holding = False

        def _store(self, uidvalidity: int, uid: int, raw: bytes, oversize: int | None) -> bool:
            added = super()._store(uidvalidity, uid, raw, oversize)
            if self.holding and added:
                in_batch[0] += 1
                if in_batch[0] == hold_after:
                    self.holding = False
                    committed.set()
                    restarted.wait(30)
            return added

    reader = Holding(_settings(server, user), factory, backoff_seconds=0.2)
    readers.append(reader)
    reader.start()
    delivered = 0
    for _ in range(4):
        delivered += 1
        server.deliver(user.address, _message(delivered))
    _wait("the first mail stored and moved", lambda: _counts(server, user) == (0, delivered))
    _wait("IDLE", reader.idling.is_set)

    # 1. Restarted in the middle of IDLE.
    idle_started = time.monotonic()
    server.restart()
    down = time.monotonic() - idle_started
    for _ in range(4):
        delivered += 1
        server.deliver(user.address, _message(delivered))
    back = _wait("caught up after the restart in IDLE",
                 lambda: _counts(server, user) == (0, delivered))
    connections_after_idle = reader.connections

    # 2. Restarted after some of a batch was committed to the inbox, before the MOVE.
    _wait("IDLE again", reader.idling.is_set)
    reader.holding = True
    for _ in range(5):
        delivered += 1
        server.deliver(user.address, _message(delivered))
    _wait("a commit in the middle of the batch", committed.is_set)
    in_folder_at_restart = _counts(server, user)[0]
    server.restart()
    restarted.set()
    _wait("caught up after the restart in the batch",
          lambda: _counts(server, user) == (0, delivered))

    rows, distinct, twice = _stored(factory)
    summary = (f"IMAP restarts: injected a restart in IDLE (down {down:.1f} s, caught up "
               f"{back:.1f} s later) and a restart after {hold_after} messages of a batch were "
               f"committed, before its MOVE ({in_folder_at_restart} in INBOX); counted: delivered "
               f"{delivered}, stored {rows} ({distinct} distinct Message-IDs, {twice} stored "
               f"twice), found stored already {reader.repeats}, INBOX/processed "
               f"{_counts(server, user)}, connections {reader.connections}")
    print(f"\n{summary}")
    _check(summary, factory, server, user, delivered)
    assert connections_after_idle >= 2, summary
    assert reader.connections >= 3, summary
    # The committed-but-not-moved messages were found again and moved, not stored again.
    assert reader.repeats >= hold_after, summary
    assert reader.stored == delivered, summary


# --- the mailbox changes under the reader ---------------------------------------------------


def _uidvalidity(server: Dovecot, user: MailUser) -> int:
    client = server.client(user)
    try:
        return int(client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"])
    finally:
        client.logout()


def test_a_new_uidvalidity_stores_nothing_twice(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, mail_user.password)
    # The reader's moves are lost (as if it died between commit and MOVE each time): what it
    # stored stays in INBOX under UIDs that the new UIDVALIDITY makes void.
    lost_moves: list[int] = []
    real_move = imap_reader.move_messages

    def lost_move(client: object, uids: list[int], *args: object) -> None:
        lost_moves.extend(uids)

    monkeypatch.setattr(imap_reader, "move_messages", lost_move)
    first_batch = [_message(1), _message(2), _message(3, message_id=False)]
    for raw in first_batch:
        dovecot.deliver(mail_user.address, raw)
    reader = _Reader(_settings(dovecot, mail_user), factory, backoff_seconds=0.2)
    readers.append(reader)
    reader.start()
    _wait("the first mail stored", lambda: _stored(factory)[0] == len(first_batch))
    _wait("IDLE", reader.idling.is_set)
    assert _counts(dovecot, mail_user) == (len(first_batch), 0)

    old = _uidvalidity(dovecot, mail_user)
    new = old + 1000
    result = subprocess.run(
        ["doveadm", "-c", str(dovecot.config_path), "mailbox", "update", "-u",
         mail_user.address, "--uid-validity", str(new), "INBOX"],
        capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    monkeypatch.setattr(imap_reader, "move_messages", real_move)
    second_batch = [_message(4), _message(5, message_id=False)]
    for raw in second_batch:
        dovecot.deliver(mail_user.address, raw)
    delivered = len(first_batch) + len(second_batch)
    _wait("everything moved", lambda: _counts(dovecot, mail_user) == (0, delivered))

    rows, distinct, twice = _stored(factory)
    summary = (f"IMAP UIDVALIDITY: injected {old} -> {_uidvalidity(dovecot, mail_user)} with "
               f"{len(first_batch)} stored messages still in INBOX (1 without a Message-ID), "
               f"then {len(second_batch)} new ones; counted: delivered {delivered}, stored "
               f"{rows} ({distinct} distinct ids, {twice} stored twice), found stored already "
               f"{reader.repeats}, INBOX/processed {_counts(dovecot, mail_user)}, connections "
               f"{reader.connections}")
    print(f"\n{summary}")
    assert _uidvalidity(dovecot, mail_user) == new, summary
    _check(summary, factory, dovecot, mail_user, delivered)
    assert reader.repeats >= len(first_batch), summary
    assert reader.connections >= 2, summary  # Dovecot ends a session whose UIDs went void


def test_a_deleted_processed_folder_is_made_again(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(PASSWORD_ENV, mail_user.password)
    reader = _Reader(_settings(dovecot, mail_user), factory)
    readers.append(reader)
    reader.start()
    for n in range(2):
        dovecot.deliver(mail_user.address, _message(n))
    _wait("the first mail moved", lambda: _counts(dovecot, mail_user) == (0, 2))
    _wait("IDLE", reader.idling.is_set)
    client = dovecot.client(mail_user)
    try:
        client.delete_folder(ON_SERVER)  # its two messages go with it: someone's decision
    finally:
        client.logout()
    with caplog.at_level("WARNING", logger="bot.channels.email.imap_reader"):
        for n in range(2, 5):
            dovecot.deliver(mail_user.address, _message(n))
        _wait("the new mail moved", lambda: _counts(dovecot, mail_user) == (0, 3))
    rows, distinct, twice = _stored(factory)
    warnings = [r.getMessage() for r in caplog.records]
    summary = (f"IMAP processed folder: injected DELETE of {ON_SERVER} (with 2 messages) "
               f"while the reader was in IDLE, then 3 new messages; counted: stored {rows} "
               f"({distinct} distinct ids, {twice} twice), INBOX/processed "
               f"{_counts(dovecot, mail_user)}, connections {reader.connections}; "
               f"log: {warnings}")
    print(f"\n{summary}")
    _check(summary, factory, dovecot, mail_user, 5, processed=3)
    assert reader.connections == 1, summary  # made again in place, no reconnect needed
    assert any("processed mail is gone" in w and "TRYCREATE" in w for w in warnings), summary


def test_mail_expunged_by_someone_else_between_search_and_fetch(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(PASSWORD_ENV, mail_user.password)
    expunged: dict[str, int] = {}

    class Racing(_Reader):
        """Another client expunges one message after SEARCH, and one after the size FETCH."""

        def _store_batch(self, client: Any, uidvalidity: int,
                         uids: list[int]) -> tuple[int, list[int]]:
            if expunged or len(uids) < 4:
                return super()._store_batch(client, uidvalidity, uids)
            _expunge(dovecot, mail_user, [uids[1]])
            expunged["after SEARCH"] = uids[1]
            real_fetch = client.fetch

            def fetch(messages: list[int], data: list[str], *args: Any, **kwargs: Any) -> Any:
                answer = real_fetch(messages, data, *args, **kwargs)
                if data == ["RFC822.SIZE"]:
                    _expunge(dovecot, mail_user, [uids[3]])
                    expunged["after the size FETCH"] = uids[3]
                return answer

            client.fetch = fetch
            try:
                return super()._store_batch(client, uidvalidity, uids)
            finally:
                del client.fetch

    delivered = 6
    for n in range(delivered):
        dovecot.deliver(mail_user.address, _message(n))
    reader = Racing(_settings(dovecot, mail_user), factory)
    readers.append(reader)
    with caplog.at_level("WARNING", logger="bot.channels.email"):
        reader.start()
        left = delivered - 2
        _wait("the rest stored and moved", lambda: _counts(dovecot, mail_user) == (0, left))
        _wait("IDLE", reader.idling.is_set)
    rows, distinct, twice = _stored(factory)
    problems = [r.getMessage() for r in caplog.records]
    summary = (f"IMAP expunge race: injected expunges by another client {expunged}; counted: "
               f"delivered {delivered}, stored {rows} ({distinct} distinct ids, {twice} "
               f"twice), INBOX/processed {_counts(dovecot, mail_user)}, connections "
               f"{reader.connections}, warnings {problems}")
    print(f"\n{summary}")
    assert len(expunged) == 2, summary
    _check(summary, factory, dovecot, mail_user, left)
    assert reader.connections == 1, summary  # nothing went wrong enough to reconnect
    assert problems == [], summary
