"""`svarbot run` end to end against real servers on loopback.

The service sends invitations to an aiosmtpd sink; a simulated mail client replies to the
bytes the sink received; the reply comes back through svarbot's own SMTP listener, or through
Dovecot and the IMAP reader; and the next page must arrive at the sink, threaded under the
reply. The last test runs `svarbot run` as a real process and stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from email.policy import default as default_policy
from pathlib import Path
from typing import TYPE_CHECKING

import aiosmtplib
import pytest
from click.testing import CliRunner
from smtp_servers import SmtpSink
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people

from bot.channels.email.channel import EmailChannel
from bot.channels.email.clients import compose_reply
from bot.cli import main
from bot.config import (
    EmailSettings,
    ImapSettings,
    ListenSettings,
    Settings,
    SmtpSettings,
    SurveySettings,
)
from bot.conversation.outgoing import SurveyContext, queue_invitations
from bot.runner import Service
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import transaction
from storage.schema import InboxMessage, InboxStatus, Invitation, InvitationStatus

if TYPE_CHECKING:
    from dovecot import Dovecot, MailUser

pytest_plugins = ["dovecot"]  # the Dovecot fixtures

SURVEY = "virksomhetsleder-2020"
PASSWORD_ENV = "SVARBOT_TEST_IMAP_PASSWORD"  # noqa: S105 - the name of a variable




def _settings(sink: SmtpSink, **email: object) -> Settings:
    base = EmailSettings(smtp=SmtpSettings(port=sink.port, per_minute=10_000, connections=2))
    return Settings(surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY),),
                    email=base.model_copy(update=email))


def _prepare(factory: sessionmaker[Session], settings: Settings) -> Service:
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    contexts = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                      questionnaire=load_shipped(SURVEY))}
    with transaction(factory) as session:
        add_people(session, SURVEY, 2)
        queue_invitations(session, EmailChannel(settings), contexts[SURVEY], store,
                          now=dt.datetime.now(dt.UTC))
    return Service(settings=settings, session_factory=factory, store=store, surveys=contexts,
                   worker="test")


def _run(service: Service, scenario: Callable[[Service], None]) -> None:
    """Run the service while `scenario` (blocking, in a thread) drives and checks it."""

    async def main() -> None:
        stop = asyncio.Event()
        ready = asyncio.Event()
        task = asyncio.create_task(service.run(stop, on_ready=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), 10)
        try:
            await asyncio.to_thread(scenario, service)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)

    asyncio.run(main())


def _reply_to_first(sink: SmtpSink, answer: str, style: str) -> tuple[bytes, str]:
    """The sink's first invitation (to leder0) replied to; (reply bytes, invitee address)."""
    sink.wait_for(2, timeout=10)
    with sink.lock:
        first = next(r for r in sink.received if r.rcpt_tos == ("leder0@kommune0.example",))
    raw = compose_reply(first.data, answer, style=style, from_address="leder0@kommune0.example",
                        from_name="Leder Nummer0", now=dt.datetime.now(dt.UTC))
    return raw, "leder0@kommune0.example"


def _check_next_page(sink: SmtpSink, reply: bytes) -> None:
    sink.wait_for(3, timeout=15)
    with sink.lock:
        page = email.message_from_bytes(sink.received[2].data, policy=default_policy)
        rcpts = sink.received[2].rcpt_tos
    incoming = email.message_from_bytes(reply, policy=default_policy)
    assert rcpts == ("leder0@kommune0.example",)
    assert page["In-Reply-To"] == incoming["Message-ID"]
    assert str(page["Subject"]).startswith("Re: ")
    body = page.get_body(preferencelist=("plain",))
    assert body is not None
    assert "2. " in body.get_content()  # the next question is on the page


def _status(factory: sessionmaker[Session], invitation_id: int) -> str:
    with factory() as session:
        return str(session.get_one(Invitation, invitation_id).status)


def test_a_reply_by_smtp_gets_the_next_page(sink: SmtpSink,
                                             factory: sessionmaker[Session]) -> None:
    settings = _settings(sink, listen=ListenSettings(enabled=True, port=0))
    service = _prepare(factory, settings)

    def scenario(service: Service) -> None:
        reply, sender = _reply_to_first(sink, "1: helse", "outlook_nb")
        assert service.listener is not None
        to = email.message_from_bytes(reply, policy=default_policy)["To"]

        async def send() -> None:
            await aiosmtplib.send(reply, sender=sender, recipients=[str(to)],
                                  hostname="127.0.0.1", port=service.listener.port,  # type: ignore[union-attr]
                                  local_hostname="localhost", start_tls=False)

        asyncio.run(send())
        _check_next_page(sink, reply)

    _run(service, scenario)
    assert _status(factory, 1) == InvitationStatus.STARTED
    assert _status(factory, 2) == InvitationStatus.INVITED


def test_a_reply_by_imap_gets_the_next_page_and_seal_deletes_it(
        sink: SmtpSink, factory: sessionmaker[Session], dovecot: Dovecot, mail_user: MailUser,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PASSWORD_ENV, mail_user.password)
    local, domain = mail_user.address.split("@", 1)
    settings = _settings(
        sink, reply_to=f"{local}+{{token}}@{domain}",
        imap=ImapSettings(enabled=True, host="127.0.0.1", port=dovecot.imap_port, ssl=False,
                          username=mail_user.address, password_env=PASSWORD_ENV,
                          processed_folder="svarbot/behandlet", poll_seconds=2,
                          idle_renew_seconds=10))
    service = _prepare(factory, settings)

    def scenario(service: Service) -> None:
        reply, _sender = _reply_to_first(sink, "1: barnehage", "gmail_nb")
        to = str(email.message_from_bytes(reply, policy=default_policy)["To"])
        assert to.startswith(f"{local}+")
        dovecot.deliver(to, reply)
        _check_next_page(sink, reply)

    _run(service, scenario)
    with factory() as session:
        rows = session.scalars(select(InboxMessage)).all()
        assert [r.status for r in rows] == [InboxStatus.PROCESSED]
        assert rows[0].raw is None
    assert _status(factory, 1) == InvitationStatus.STARTED
    assert _processed_count(dovecot, mail_user) == 1

    # Sealing the survey deletes its processed replies from the server too.
    url = str(factory.kw["bind"].url)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: '{url}'\n"
        f"surveys:\n  - id: {SURVEY}\n    questionnaire: {SURVEY}\n"
        f"email:\n  reply_to: '{local}+{{token}}@{domain}'\n"
        f"  imap:\n    enabled: true\n    host: 127.0.0.1\n    port: {dovecot.imap_port}\n"
        f"    ssl: false\n    username: {mail_user.address}\n    password_env: {PASSWORD_ENV}\n"
        f"    processed_folder: svarbot/behandlet\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["seal", SURVEY, "--yes", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "1 processed messages deleted" in result.output
    assert _processed_count(dovecot, mail_user) == 0


def _processed_count(dovecot: Dovecot, user: MailUser) -> int:
    client = dovecot.client(user)
    try:
        folder = next(name for _flags, _delimiter, name in client.list_folders()
                      if "behandlet" in name)
        client.select_folder(folder, readonly=True)
        return len(client.search(["NOT", "DELETED"]))
    finally:
        client.logout()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_svarbot_run_sends_answers_and_stops_cleanly_on_sigterm(
        sink: SmtpSink, tmp_path: Path, factory: sessionmaker[Session]) -> None:
    listen_port = _free_port()
    settings = _settings(sink, listen=ListenSettings(enabled=True, port=listen_port))
    _prepare(factory, settings)  # invitations queued in the database the process will use
    url = str(factory.kw["bind"].url)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: '{url}'\n"
        f"surveys:\n  - id: {SURVEY}\n    questionnaire: {SURVEY}\n"
        f"email:\n  smtp:\n    port: {sink.port}\n"
        f"  listen:\n    enabled: true\n    port: {listen_port}\n", encoding="utf-8")
    env = {**os.environ, "SVARBOT_LINK_KEY": TEST_KEY_TEXT}
    process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        reply, sender = _reply_to_first(sink, "1: helse", "iphone_nb")
        to = str(email.message_from_bytes(reply, policy=default_policy)["To"])
        deadline = time.monotonic() + 10
        while True:  # the listener comes up with the process
            try:
                asyncio.run(aiosmtplib.send(reply, sender=sender, recipients=[to],
                                            hostname="127.0.0.1", port=listen_port,
                                            local_hostname="localhost", start_tls=False))
                break
            except (aiosmtplib.SMTPException, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        _check_next_page(sink, reply)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output.decode(errors="replace")
    assert _status(factory, 1) == InvitationStatus.STARTED
