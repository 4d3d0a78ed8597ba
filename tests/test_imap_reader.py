"""The IMAP reader against a real Dovecot on loopback, storing into a real SQLite inbox.

One Dovecot serves the module (each test has its own mailbox); the reconnect test gets a
Dovecot of its own, because it stops and restarts the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import bot.channels.email.imap_reader as imap_reader
from bot.channels.email.imap_reader import ImapReader, purge_processed
from bot.config import EmailSettings, ImapSettings, Settings
from storage.schema import InboxMessage, InboxStatus

if TYPE_CHECKING:
    from dovecot import Dovecot, MailUser

pytest_plugins = ["dovecot"]  # the Dovecot fixtures

PASSWORD_ENV = "SVARBOT_TEST_IMAP_PASSWORD"  # noqa: S105 - the name of a variable
PROCESSED = "svarbot/behandlet"
ON_SERVER = "svarbot.behandlet"  # Dovecot's maildir hierarchy delimiter is "."


def _message(n: int, message_id: str | None = None, body: str = "4\n") -> bytes:
    message = EmailMessage()
    message["From"] = "leder@kommune.example"
    message["To"] = "svar+abc@svarbot.localhost"
    message["Subject"] = f"Re: survey {n}"
    message["Message-ID"] = message_id or f"<reply-{n}-{time.monotonic_ns()}@kommune.example>"
    message.set_content(body)
    return message.as_bytes(policy=SMTP)


def _settings(server: Dovecot, user: MailUser, *, poll_seconds: int = 60,
              max_message_bytes: int = 10_000_000) -> Settings:
    return Settings(email=EmailSettings(max_message_bytes=max_message_bytes, imap=ImapSettings(
        enabled=True, host=server.host, port=server.imap_port, ssl=False,
        username=user.address, password_env=PASSWORD_ENV, folder="INBOX",
        processed_folder=PROCESSED, idle_renew_seconds=10, poll_seconds=poll_seconds)))


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch, mail_user: MailUser) -> None:
    monkeypatch.setenv(PASSWORD_ENV, mail_user.password)




@pytest.fixture
def readers() -> Iterator[list[ImapReader]]:
    """Readers a test starts; all are stopped at the end, even when the test fails."""
    started: list[ImapReader] = []
    yield started
    for reader in started:
        reader.stop()


def _start(readers: list[ImapReader], reader: ImapReader) -> ImapReader:
    readers.append(reader)
    reader.start()
    return reader


def _rows(factory: sessionmaker[Session]) -> list[InboxMessage]:
    with factory() as session:
        return list(session.scalars(select(InboxMessage).order_by(InboxMessage.id)))


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until `predicate()` held; fails the test after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)  # poll interval while waiting
    return time.monotonic() - started


def _folder(server: Dovecot, user: MailUser, folder: str) -> dict[int, dict[bytes, object]]:
    """UID → FLAGS and Message-ID of every message in `folder` (empty if it does not exist)."""
    client = server.client(user)
    try:
        if not client.folder_exists(folder):
            return {}
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        if not uids:
            return {}
        return dict(client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]))
    finally:
        client.logout()


def _counts(server: Dovecot, user: MailUser) -> tuple[int, int]:
    return len(_folder(server, user, "INBOX")), len(_folder(server, user, ON_SERVER))


# --- catching up ----------------------------------------------------------------------------


def test_waiting_mail_is_stored_once_and_moved_unread(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader]) -> None:
    for n in range(3):
        dovecot.deliver(mail_user.address, _message(n))
    assert _folder(dovecot, mail_user, ON_SERVER) == {}  # the reader has to create it
    woken: list[int] = []
    reader = _start(readers, ImapReader(_settings(dovecot, mail_user), factory,
                                        on_stored=lambda: woken.append(1)))
    _wait(lambda: _counts(dovecot, mail_user) == (0, 3))
    rows = _rows(factory)
    assert len(rows) == 3
    assert {r.status for r in rows} == {InboxStatus.RECEIVED}
    assert all(r.raw is not None and b"Delivered-To: " in r.raw for r in rows)
    assert len({r.external_id for r in rows}) == 3
    assert all(r.external_id.startswith("imap:INBOX:") for r in rows)
    moved = _folder(dovecot, mail_user, ON_SERVER)
    assert all(b"\\Seen" not in data[b"FLAGS"] for data in moved.values())  # BODY.PEEK
    assert woken
    assert reader.stored == 3


def test_a_restarted_reader_stores_nothing_twice(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(dovecot, mail_user)
    # The first reader dies between commit and MOVE: stored, but still in INBOX.
    real_move = imap_reader.move_messages
    calls: list[int] = []

    def failing_move(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("connection reset (simulated)")
        real_move(*args, **kwargs)

    monkeypatch.setattr(imap_reader, "move_messages", failing_move)
    dovecot.deliver(mail_user.address, _message(1))
    dovecot.deliver(mail_user.address, _message(2))
    first = _start(readers, ImapReader(settings, factory, backoff_seconds=30))
    _wait(lambda: len(_rows(factory)) == 2 and bool(calls))
    first.stop()
    assert _counts(dovecot, mail_user) == (2, 0)
    second = _start(readers, ImapReader(settings, factory))
    _wait(lambda: _counts(dovecot, mail_user) == (0, 2))
    dovecot.deliver(mail_user.address, _message(3))
    _wait(lambda: _counts(dovecot, mail_user) == (0, 3))
    assert len(_rows(factory)) == 3
    assert second.stored == 1


def test_the_same_message_id_twice_is_stored_once_and_both_are_moved(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader]) -> None:
    raw = _message(1, "<twice@kommune.example>")
    dovecot.deliver(mail_user.address, raw)
    dovecot.deliver(mail_user.address, raw)
    _start(readers, ImapReader(_settings(dovecot, mail_user), factory))
    _wait(lambda: _counts(dovecot, mail_user) == (0, 2))
    assert [r.message_id for r in _rows(factory)] == ["<twice@kommune.example>"]


def test_oversized_mail_is_quarantined_with_its_headers_only(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader]) -> None:
    dovecot.deliver(mail_user.address, _message(1, body=("x" * 70 + "\n") * 300))
    _start(readers, ImapReader(_settings(dovecot, mail_user, max_message_bytes=10_000),
                               factory))
    _wait(lambda: _counts(dovecot, mail_user) == (0, 1))
    [row] = _rows(factory)
    assert (row.status, row.error) == (InboxStatus.FAILED, "too_large")
    assert row.raw is not None
    assert b"Subject: Re: survey 1" in row.raw
    assert b"xxxx" not in row.raw


# --- IDLE, polling and the fallbacks --------------------------------------------------------


def test_mail_arriving_during_idle_is_stored_within_two_seconds(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader]) -> None:
    reader = _start(readers, ImapReader(_settings(dovecot, mail_user), factory))
    latencies = []
    for n in range(3):
        _wait(reader.idling.is_set)
        started = time.monotonic()
        dovecot.deliver(mail_user.address, _message(n))
        _wait(lambda n=n: len(_rows(factory)) == n + 1, timeout=2.0)
        latencies.append(time.monotonic() - started)
    _wait(reader.idling.is_set)
    stopping = time.monotonic()
    reader.stop()
    stop_seconds = time.monotonic() - stopping
    assert not reader.running
    assert stop_seconds < 2.0
    print(f"\nIMAP deliver→stored with IDLE: {', '.join(f'{s:.2f}' for s in latencies)} s; "
          f"stop() took {stop_seconds:.2f} s")


def test_a_stream_of_mail_is_stored_without_waiting_for_the_full_check(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader]) -> None:
    """Mail arriving during a catch-up or just as IDLE starts must not wait for poll_seconds."""
    reader = _start(readers, ImapReader(_settings(dovecot, mail_user, poll_seconds=60),
                                        factory))
    _wait(reader.idling.is_set)
    gaps = [0.0, 0.005, 0.02, 0.05, 0.1, 0.0, 0.03, 0.2, 0.01, 0.07, 0.0, 0.15, 0.04, 0.3, 0.0]
    for n, gap in enumerate(gaps):
        dovecot.deliver(mail_user.address, _message(n))
        time.sleep(gap)
    _wait(lambda: len(_rows(factory)) == len(gaps), timeout=3.0)
    _wait(lambda: _counts(dovecot, mail_user) == (0, len(gaps)))


class _Limited(ImapReader):
    """A reader that pretends the server lacks some capabilities."""

    without: frozenset[bytes] = frozenset()

    def _capabilities(self, client: object) -> frozenset[bytes]:
        return super()._capabilities(client) - self.without


@pytest.mark.parametrize("without", [
    pytest.param({b"MOVE"}, id="copy-uid-expunge"),
    pytest.param({b"MOVE", b"UIDPLUS"}, id="copy-expunge"),
    pytest.param({b"IDLE"}, id="polling"),
])
def test_servers_without_move_uidplus_or_idle(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader], without: set[bytes]) -> None:
    reader_class = type("Reader", (_Limited,), {"without": frozenset(without)})
    for n in range(2):
        dovecot.deliver(mail_user.address, _message(n))
    _start(readers, reader_class(_settings(dovecot, mail_user, poll_seconds=1), factory))
    _wait(lambda: _counts(dovecot, mail_user) == (0, 2))
    dovecot.deliver(mail_user.address, _message(3))
    _wait(lambda: _counts(dovecot, mail_user) == (0, 3), timeout=3.0)
    assert len(_rows(factory)) == 3


def test_a_wrong_password_keeps_retrying_without_storing(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    dovecot.deliver(mail_user.address, _message(1))
    reader = _start(readers, ImapReader(_settings(dovecot, mail_user), factory,
                                        backoff_seconds=0.1))
    time.sleep(0.5)
    assert reader.running
    assert reader.connections == 0
    assert _rows(factory) == []
    started = time.monotonic()
    reader.stop()
    assert time.monotonic() - started < 2.0


def test_the_reader_reconnects_after_the_server_restarts(
        own_dovecot: Dovecot, factory: sessionmaker[Session], readers: list[ImapReader],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = own_dovecot
    user = server.add_user("restart")
    monkeypatch.setenv(PASSWORD_ENV, user.password)
    reader = _start(readers, ImapReader(_settings(server, user), factory, backoff_seconds=0.2))
    server.deliver(user.address, _message(1))
    _wait(lambda: len(_rows(factory)) == 1)
    server.stop()
    server.start()
    server.deliver(user.address, _message(2))  # likely before the reader is back
    seconds = _wait(lambda: len(_rows(factory)) == 2, timeout=10.0)
    _wait(lambda: _counts(server, user) == (0, 2))
    assert reader.connections >= 2
    reader.stop()
    print(f"\nIMAP reader caught up {seconds:.2f} s after the server restarted")


# --- purging after sealing ------------------------------------------------------------------


def test_purge_processed_deletes_exactly_the_given_messages(
        dovecot: Dovecot, mail_user: MailUser, factory: sessionmaker[Session],
        readers: list[ImapReader]) -> None:
    settings = _settings(dovecot, mail_user)
    assert purge_processed(settings, ["<a@kommune.example>"]) == 0  # no folder yet
    for name in ("a", "b", "c"):
        dovecot.deliver(mail_user.address, _message(1, f"<{name}@kommune.example>"))
    reader = _start(readers, ImapReader(settings, factory))
    _wait(lambda: _counts(dovecot, mail_user) == (0, 3))
    reader.stop()
    assert purge_processed(settings, []) == 0
    assert purge_processed(settings, ["<a@kommune.example>", " <c@kommune.example> ",
                                      "<a@kommune.example>", "<zzz@kommune.example>",
                                      "kommune.example"]) == 2
    left = _folder(dovecot, mail_user, ON_SERVER)
    assert [bytes(v).strip() for data in left.values() for k, v in data.items()
            if k.startswith(b"BODY[")] == [b"Message-ID: <b@kommune.example>"]
