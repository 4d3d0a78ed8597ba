"""`svarbot run`'s Service with both channels: email to an aiosmtpd sink, Telegram to the fake
Bot API, by polling and by webhook. A respondent begins by email and finishes in the chat,
and the answers stay."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import re
from email.policy import default as default_policy

import aiosmtplib
import pytest
from smtp_servers import SmtpSink, plain_text
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people

from bot.channels.email.clients import compose_reply
from bot.channels.registry import configured_channels
from bot.config import (
    EmailSettings,
    ListenSettings,
    Settings,
    SmtpSettings,
    SurveySettings,
    TelegramSettings,
    TelegramWebhookSettings,
)
from bot.conversation.outgoing import SurveyContext, others_than, queue_invitations
from bot.demo.fake_telegram import FakeTelegram
from bot.runner import Service
from flows.loader import load_shipped
from flows.session import from_json
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.migrate import open_database
from storage.schema import InboxMessage, Invitation

pytest_plugins = ["storage_backends"]

SURVEY = "ordforer-2020"
TOKEN = "123456789:AAE-test_token_for_the_fake_0123"  # noqa: S105 - a synthetic token
SECRET = "webhook_secret_for_the_test"  # noqa: S105 - a synthetic secret
MAYOR = 5151
LINK = re.compile(r"https://t\.me/svarbot_demo_bot\?start=([A-Za-z0-9_-]{32})")


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVARBOT_TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("SVARBOT_TELEGRAM_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("PTB_TIMEDELTA", "1")




def _settings(sink: SmtpSink, fake: FakeTelegram, **telegram: object) -> Settings:
    return Settings(
        surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY),),
        email=EmailSettings(smtp=SmtpSettings(port=sink.port, per_minute=10_000),
                            listen=ListenSettings(enabled=True, port=0)),
        telegram=TelegramSettings(enabled=True, api_url=fake.base_url, poll_timeout=1,
                                  **telegram))  # type: ignore[arg-type]


def _service(factory: sessionmaker[Session], settings: Settings) -> Service:
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    contexts = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                      questionnaire=load_shipped(SURVEY))}
    channels = configured_channels(settings)
    with transaction(factory) as session:
        add_people(session, SURVEY, 1)
        queue_invitations(session, channels["email"], contexts[SURVEY], store,
                          now=dt.datetime.now(dt.UTC),
                          others=others_than(channels, channels["email"]))
    return Service(settings=settings, session_factory=factory, store=store, surveys=contexts,
                   worker="test")



def _answers(factory: sessionmaker[Session]) -> dict[str, object]:
    with factory() as session:
        state = session.get_one(Invitation, 1).session_state
    return dict(from_json(state).answers) if state else {}


async def _scenario(sink: SmtpSink, fake: FakeTelegram, factory: sessionmaker[Session],
                    service: Service) -> None:
    """Email first (page 1 answered by a reply), then the chat from the next page's link."""
    await asyncio.to_thread(sink.wait_for, 1, timeout=10)
    with sink.lock:
        invitation = sink.received[0].data
    reply = compose_reply(invitation, "1: 1", style="outlook_nb",
                          from_address="leder0@kommune0.example", from_name="Ordfører",
                          now=dt.datetime.now(dt.UTC))
    assert service.listener is not None
    to = str(email.message_from_bytes(reply, policy=default_policy)["To"])
    await aiosmtplib.send(reply, sender="leder0@kommune0.example", recipients=[to],
                          hostname="127.0.0.1", port=service.listener.port,
                          local_hostname="localhost", start_tls=False)
    await asyncio.to_thread(sink.wait_for, 2, timeout=15)
    with sink.lock:
        page = plain_text(sink.received[1].data)
    found = LINK.search(page)
    assert found is not None, "the next page carries the Telegram link"
    after_email = _answers(factory)
    assert after_email, "the email answer was recorded"
    fake.message(MAYOR, f"/start {found.group(1)}")
    await fake.wait_sent(1, chat_id=MAYOR, timeout=15)
    question = fake.sent(MAYOR)[-1]
    assert "1. " not in question.text.splitlines()[0], "the chat goes on, not from the start"
    buttons = question.buttons()
    if buttons:
        fake.click(MAYOR, question.message_id, buttons[0][1])
    else:
        fake.message(MAYOR, "vet ikke")
    await fake.wait_until(lambda: len(_answers(factory)) > len(after_email), timeout=15,
                          what="the chat answer recorded")
    answers = _answers(factory)
    assert all(answers[key] == value for key, value in after_email.items())
    with factory() as session:
        channels = set(session.scalars(select(InboxMessage.channel)).all())
        assert channels == {"email", "telegram"}
        assert session.get_one(Invitation, 1).last_channel == "telegram"


async def _run(service: Service, fake: FakeTelegram, sink: SmtpSink,
               factory: sessionmaker[Session]) -> None:
    """The service in this loop (beside the fake) while the scenario drives it."""
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(service.run(stop, on_ready=lambda _: ready.set()))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        await asyncio.wait_for(_scenario(sink, fake, factory, service), 40)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def test_begun_by_email_finished_in_telegram_by_polling(
        sink: SmtpSink, factory: sessionmaker[Session]) -> None:
    async def main() -> None:
        async with FakeTelegram() as fake:
            service = _service(factory, _settings(sink, fake))
            await _run(service, fake, sink, factory)
            assert [c.method for c in fake.calls()].count("getUpdates") >= 1
            assert any(c.method == "setMyCommands" for c in fake.calls())

    asyncio.run(main())


def test_begun_by_email_finished_in_telegram_by_webhook(
        sink: SmtpSink, factory: sessionmaker[Session]) -> None:
    """In webhook mode the fake posts each update, with the secret header, to svarbot."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        async with FakeTelegram() as fake:
            settings = _settings(sink, fake, mode="webhook", webhook=TelegramWebhookSettings(
                port=port, public_url=f"http://127.0.0.1:{port}/tg-hook"))
            service = _service(factory, settings)
            await _run(service, fake, sink, factory)
            assert not fake.calls("getUpdates")
            assert fake.webhook_deliveries()
            assert all(d.status == 200 for d in fake.webhook_deliveries())

    asyncio.run(main())


def test_on_postgresql_only_the_leader_polls(postgres_database: str) -> None:
    """Two processes' services on one database and one bot: one polls (no 409 Conflict at
    the fake), and an update is stored and answered once."""
    from bot.leader import Leadership
    from storage.migrate import init_database as init

    init(postgres_database)
    engine = open_database(postgres_database)
    factory = session_factory(engine)

    async def main() -> None:
        async with FakeTelegram() as fake:
            settings = Settings(
                surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY),),
                telegram=TelegramSettings(enabled=True, api_url=fake.base_url,
                                          poll_timeout=1))
            store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
            contexts = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                              questionnaire=load_shipped(SURVEY))}
            services = [Service(settings=settings, session_factory=factory, store=store,
                                surveys=contexts, worker=name,
                                leadership=Leadership(postgres_database, name=name,
                                                      retry_seconds=0.1, check_seconds=0.1))
                        for name in ("a", "b")]
            stop = asyncio.Event()
            tasks = [asyncio.create_task(s.run(stop)) for s in services]
            try:
                await fake.wait_for("getUpdates", 3, timeout=15)
                fake.message(MAYOR, "/start")
                await fake.wait_sent(1, chat_id=MAYOR, timeout=15)
                # A few more polls: a second poller would have been turned away by now.
                await fake.wait_for("getUpdates", len(fake.calls("getUpdates")) + 3,
                                    timeout=15)
                assert fake.rejections("getUpdates") == []
                assert len(fake.sent(MAYOR)) == 1
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 20)
        with factory() as session:
            assert len(session.scalars(select(InboxMessage.id).where(
                InboxMessage.channel == "telegram")).all()) == 1

    try:
        asyncio.run(main())
    finally:
        engine.dispose()
