"""The SMTP/LMTP listener against real clients on loopback, storing into a real SQLite inbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import aiosmtplib
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.email.listener import MailListener, accepted_domains, domain_of, external_id_of
from bot.config import EmailSettings, ListenSettings, Settings
from storage.db import session_factory
from storage.migrate import init_database, open_database
from storage.schema import InboxMessage

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
MAX_BYTES = 20_000
GOOD = "svar+abcdefgh@svarbot.localhost"
SENDER = "leder@kommune.example"


def _settings(protocol: str = "smtp") -> Settings:
    return Settings(email=EmailSettings(
        max_message_bytes=MAX_BYTES,
        listen=ListenSettings(enabled=True, host="127.0.0.1", port=0, protocol=protocol)))


def _message(n: int = 1, body: str = "4\n", message_id: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = GOOD
    message["Subject"] = f"Re: survey {n}"
    message["Message-ID"] = message_id or f"<reply-{n}@kommune.example>"
    message.set_content(body)
    return message.as_bytes(policy=SMTP)  # CRLF, as it travels and arrives


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    return url


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = open_database(db_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def _rows(factory: sessionmaker[Session]) -> list[InboxMessage]:
    with factory() as session:
        return list(session.scalars(select(InboxMessage).order_by(InboxMessage.id)))


def _run(listener: MailListener, body: Callable[[int], Awaitable[None]]) -> None:
    """Start the listener, run `body(port)` in the same loop, always stop the listener."""

    async def main() -> None:
        await listener.start()
        try:
            await asyncio.wait_for(body(listener.port), timeout=30)
        finally:
            await listener.stop()

    asyncio.run(main())


def _client(port: int) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="localhost",
                           start_tls=False, timeout=10)


# --- SMTP -----------------------------------------------------------------------------------


def test_a_message_is_stored_once_with_trace_headers(factory: sessionmaker[Session]) -> None:
    woken: list[int] = []
    listener = MailListener(_settings(), factory, on_stored=lambda: woken.append(1),
                            now=lambda: NOW)
    raw = _message()

    async def body(port: int) -> None:
        async with _client(port) as client:
            errors, reply = await client.sendmail(SENDER, [GOOD], raw)
            assert errors == {}
            assert reply.endswith("OK: stored")
            # committed before the 250: another connection sees it at once
            assert len(_rows(factory)) == 1
            _, again = await client.sendmail(SENDER, [GOOD], raw)  # an MTA retry
            assert again.endswith("OK: already stored")

    _run(listener, body)
    [row] = _rows(factory)
    assert row.external_id == external_id_of(raw)
    assert row.message_id == "<reply-1@kommune.example>"
    assert row.channel == "email"
    assert row.received_at.replace(tzinfo=dt.UTC) == NOW
    assert row.raw is not None
    assert row.raw.startswith(f"Return-Path: <{SENDER}>\r\nDelivered-To: {GOOD}\r\n".encode())
    assert row.raw.endswith(raw)
    assert woken == [1]


def test_recipients_outside_the_reply_domains_are_refused(
        factory: sessionmaker[Session]) -> None:
    listener = MailListener(_settings(), factory)

    async def body(port: int) -> None:
        async with _client(port) as client:
            errors, _ = await client.sendmail(SENDER, [GOOD, "someone@elsewhere.example"],
                                              _message(1))
            assert list(errors) == ["someone@elsewhere.example"]
            assert errors["someone@elsewhere.example"].code == 550
            assert "5.1.1" in errors["someone@elsewhere.example"].message
            # unsubscribe mail is taken too; a bounce has the null sender
            await client.sendmail("", ["avmeld+abc@svarbot.localhost"], _message(2))
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
                await client.sendmail(SENDER, ["svar@svarbot.localhost.evil.example"],
                                      _message(3))

    _run(listener, body)
    rows = _rows(factory)
    assert [r.message_id for r in rows] == ["<reply-1@kommune.example>",
                                            "<reply-2@kommune.example>"]
    assert rows[1].raw is not None
    assert rows[1].raw.startswith(b"Return-Path: <>\r\n")


def test_an_oversized_message_is_refused_with_552(factory: sessionmaker[Session]) -> None:
    listener = MailListener(_settings(), factory)

    async def body(port: int) -> None:
        async with _client(port) as client:
            with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
                await client.sendmail(SENDER, [GOOD], _message(body=("x" * 70 + "\n") * 400))
            assert refused.value.code == 552

    _run(listener, body)
    assert _rows(factory) == []


def test_a_database_failure_answers_451_and_the_retry_is_stored(db_url: str) -> None:
    # An engine that gives up on a locked database after 0.1 s instead of 5 s.
    engine = create_engine(db_url, connect_args={"timeout": 0.1})
    factory = session_factory(engine)
    listener = MailListener(_settings(), factory)
    path = db_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None)

    async def body(port: int) -> None:
        async with _client(port) as client:
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                with pytest.raises(aiosmtplib.SMTPDataError) as failed:
                    await client.sendmail(SENDER, [GOOD], _message())
                assert failed.value.code == 451
            finally:
                blocker.execute("ROLLBACK")
            _, reply = await client.sendmail(SENDER, [GOOD], _message())  # the MTA retries
            assert reply.endswith("OK: stored")

    try:
        _run(listener, body)
        assert len(_rows(factory)) == 1
    finally:
        blocker.close()
        engine.dispose()


def test_stop_closes_the_port_and_open_sessions(factory: sessionmaker[Session]) -> None:
    listener = MailListener(_settings(), factory)
    with pytest.raises(RuntimeError):
        _ = listener.port

    async def main() -> None:
        await listener.start()
        port = listener.port
        client = _client(port)
        await client.connect()
        await listener.stop()
        with pytest.raises(aiosmtplib.SMTPException):
            await client.noop()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)

    asyncio.run(asyncio.wait_for(main(), timeout=20))


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_throughput_of_200_messages_over_one_connection(
        factory: sessionmaker[Session], protocol: str) -> None:
    listener = MailListener(_settings(protocol), factory)
    messages = [_message(n) for n in range(200)]  # rendered before timing
    elapsed: list[float] = []

    def send_lmtp(port: int) -> None:  # smtplib speaks LMTP (one recipient: one reply)
        with smtplib.LMTP("127.0.0.1", port, local_hostname="localhost", timeout=10) as lmtp:
            started = time.perf_counter()
            for raw in messages:
                lmtp.sendmail(SENDER, [GOOD], raw)
            elapsed.append(time.perf_counter() - started)

    async def body(port: int) -> None:
        if protocol == "lmtp":
            await asyncio.to_thread(send_lmtp, port)
            return
        async with _client(port) as client:
            started = time.perf_counter()
            for raw in messages:
                await client.sendmail(SENDER, [GOOD], raw)
            elapsed.append(time.perf_counter() - started)

    _run(listener, body)
    assert len(_rows(factory)) == 200
    print(f"\n{protocol.upper()} listener: 200 messages in {elapsed[0]:.2f} s "
          f"({200 / elapsed[0]:.0f} msg/s, one connection, SQLite commit per message)")


# --- LMTP -----------------------------------------------------------------------------------


async def _reply(reader: asyncio.StreamReader) -> list[str]:
    """One (possibly multi-line) SMTP/LMTP reply."""
    lines = []
    while True:
        line = (await reader.readline()).decode().rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def test_lmtp_answers_once_per_accepted_recipient(factory: sessionmaker[Session]) -> None:
    listener = MailListener(_settings("lmtp"), factory)

    async def body(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def say(line: str) -> list[str]:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            return await _reply(reader)

        try:
            assert (await _reply(reader))[0].startswith("220")
            assert (await say("EHLO localhost"))[0].startswith("500")  # LMTP wants LHLO
            assert (await say("LHLO localhost"))[-1].startswith("250")
            assert (await say(f"MAIL FROM:<{SENDER}>"))[0].startswith("250")
            assert (await say(f"RCPT TO:<{GOOD}>"))[0].startswith("250")
            assert (await say("RCPT TO:<x@elsewhere.example>"))[0].startswith("550 5.1.1")
            assert (await say("RCPT TO:<svar+other@svarbot.localhost>"))[0].startswith("250")
            assert (await say("DATA"))[0].startswith("354")
            writer.write(_message() + b".\r\n")
            await writer.drain()
            first, second = await _reply(reader), await _reply(reader)
            assert first[0].startswith("250 2.0.0")
            assert second[0].startswith("250 2.0.0")
            assert (await say("QUIT"))[0].startswith("221")
        finally:
            writer.close()
            await writer.wait_closed()

    _run(listener, body)
    [row] = _rows(factory)
    assert row.raw is not None
    assert row.raw.count(b"Delivered-To: ") == 2


# --- helpers --------------------------------------------------------------------------------


def test_domains() -> None:
    assert domain_of("<Svar+x@SvarBot.Localhost.>") == "svarbot.localhost"
    assert domain_of("no-at-sign") == ""
    assert accepted_domains(EmailSettings(
        reply_to="r+{token}@a.example", unsubscribe_address="u+{token}@b.example")) == {
        "a.example", "b.example"}

