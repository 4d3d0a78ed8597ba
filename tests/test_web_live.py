"""The desk inside `svarbot run` (web.enabled): real mail traffic through aiosmtpd and the
SMTP listener, Telegram through the fake Bot API. A respondent's question arrives, the contact
person answers it on the web pages the service serves, and the answer arrives: threaded in the
respondent's mail conversation at the sink, or in their chat at the fake Telegram. A contact
person's email reply to the desk's mail reaches the respondent the same way."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import re
from collections.abc import Callable
from email.policy import default as default_policy

import aiosmtplib
import httpx
import pytest
from smtp_servers import SmtpSink, plain_text
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people

from bot.channels.email.clients import compose_reply
from bot.channels.registry import configured_channels
from bot.config import (
    DeskSettings,
    EmailSettings,
    ListenSettings,
    Settings,
    SmtpSettings,
    SurveySettings,
    TelegramSettings,
    WebSettings,
)
from bot.conversation.outgoing import SurveyContext, others_than, queue_invitations
from bot.demo.fake_telegram import FakeTelegram
from bot.runner import Service
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import transaction
from storage.schema import DeskQuery, QueryStatus, UserRole
from storage.users import add_user

SURVEY = "ordforer-2020"
TOKEN = "123456789:AAE-test_token_for_the_fake_0123"  # noqa: S105 - a synthetic token
CHAT = 6161
DESK = "kontakt@ks.example"
PASSWORD = "kontakt-passord"  # noqa: S105 - a test user's password
LINK = re.compile(r"https://t\.me/svarbot_demo_bot\?start=([A-Za-z0-9_-]{32})")


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVARBOT_TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def _service(factory: sessionmaker[Session], sink: SmtpSink, fake: FakeTelegram) -> Service:
    settings = Settings(
        surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY, contact="Kari, KS"),),
        email=EmailSettings(smtp=SmtpSettings(port=sink.port, per_minute=10_000),
                            listen=ListenSettings(enabled=True, port=0)),
        telegram=TelegramSettings(enabled=True, api_url=fake.base_url, poll_timeout=1),
        desk=DeskSettings(notify=DESK),
        web=WebSettings(enabled=True, port=0))
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    contexts = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                      questionnaire=load_shipped(SURVEY))}
    channels = configured_channels(settings)
    with transaction(factory) as session:
        add_people(session, SURVEY, 2)
        add_user(session, "kari", UserRole.CONTACT, PASSWORD, actor="test")
        queue_invitations(session, channels["email"], contexts[SURVEY], store,
                          now=dt.datetime.now(dt.UTC),
                          others=others_than(channels, channels["email"]))
    return Service(settings=settings, session_factory=factory, store=store, surveys=contexts,
                   worker="test")



def _to(sink: SmtpSink, address: str) -> list[bytes]:
    with sink.lock:
        return [r.data for r in sink.received if r.rcpt_tos == (address,)]


async def _mail(service: Service, raw: bytes, sender: str) -> None:
    assert service.listener is not None
    to = str(email.message_from_bytes(raw, policy=default_policy)["To"])
    await aiosmtplib.send(raw, sender=sender, recipients=[to], hostname="127.0.0.1",
                          port=service.listener.port, local_hostname="localhost",
                          start_tls=False)


async def _until(check: Callable[[], object], what: str, within: float = 20.0) -> None:
    """Wait until `check()` holds, failing with `what` after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _answer_in_browser(base: str, query_id: int, text: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        form = await http.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        logged_in = await http.post("/login", data={"name": "kari", "password": PASSWORD,
                                                    "login_token": token.group(1)})
        assert logged_in.status_code == 303
        page = await http.get(f"/desk/{query_id}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        assert csrf is not None
        assert nonce is not None
        sent = await http.post(f"/desk/{query_id}/answer", data={
            "csrf": csrf.group(1), "nonce": nonce.group(1), "answer": text})
        assert sent.status_code == 303, sent.text


def _query(factory: sessionmaker[Session], invitation_id: int) -> DeskQuery | None:
    with factory() as session:
        return session.scalars(select(DeskQuery).where(
            DeskQuery.invitation_id == invitation_id)).first()


async def _scenario(sink: SmtpSink, fake: FakeTelegram, factory: sessionmaker[Session],
                    service: Service) -> None:
    assert service.web is not None
    base = f"http://127.0.0.1:{service.web.port}"
    await asyncio.to_thread(sink.wait_for, 2, timeout=15)
    # 1. By email: a question in a reply, answered in the browser, threaded at the sink.
    invitation = _to(sink, "leder0@kommune0.example")[0]
    question = compose_reply(invitation, "Hvem kan jeg kontakte om dette spørsmålet?",
                             style="outlook_nb", from_address="leder0@kommune0.example",
                             from_name="Ordfører Null", now=dt.datetime.now(dt.UTC))
    await _mail(service, question, "leder0@kommune0.example")
    await _until(lambda: _query(factory, 1) is not None, "the desk query")
    query = _query(factory, 1)
    assert query is not None
    assert query.channel == "email"
    await _until(lambda: _to(sink, DESK), "the mail to the desk")
    before = len(_to(sink, "leder0@kommune0.example"))
    await _answer_in_browser(base, query.id, "Ring KS på 400 00 000, så hjelper vi deg.")
    await _until(lambda: len(_to(sink, "leder0@kommune0.example")) > before,
                 "the answer at the sink")
    answer = email.message_from_bytes(_to(sink, "leder0@kommune0.example")[-1],
                                      policy=default_policy)
    asked = email.message_from_bytes(question, policy=default_policy)
    assert answer["In-Reply-To"] == asked["Message-ID"]
    assert str(asked["Message-ID"]) in str(answer["References"])
    assert str(answer["Subject"]).startswith("Re: ")
    assert "400 00 000" in plain_text(bytes(answer))
    assert "Svar fra kontaktpersonen" in plain_text(bytes(answer))
    # 2. By Telegram: the second mayor joins the chat, asks there, gets the answer there.
    link = LINK.search(plain_text(_to(sink, "leder1@kommune1.example")[0]))
    assert link is not None
    fake.message(CHAT, f"/start {link.group(1)}")
    await fake.wait_sent(1, chat_id=CHAT, timeout=15)
    fake.message(CHAT, "Hvem kan jeg snakke med om dette?")
    await _until(lambda: _query(factory, 2) is not None, "the chat's desk query")
    chat_query = _query(factory, 2)
    assert chat_query is not None
    assert chat_query.channel == "telegram"
    sent_before = len(fake.sent(CHAT))
    await _answer_in_browser(base, chat_query.id, "Skriv til kari@ks.example.")
    await fake.wait_until(lambda: len(fake.sent(CHAT)) > sent_before, timeout=15,
                          what="the answer in the chat")
    assert any("kari@ks.example" in m.text for m in fake.sent(CHAT)[sent_before:])
    # 3. The contact person answers the desk's mail by email instead.
    desk_mails = _to(sink, DESK)
    await _until(lambda: len(_to(sink, DESK)) >= 2, "the second mail to the desk")
    notice = next(m for m in _to(sink, DESK) if "snakke med" in plain_text(m))
    follow = compose_reply(_to(sink, "leder0@kommune0.example")[-1], "Takk! Og hvem betaler?",
                           style="gmail_nb", from_address="leder0@kommune0.example",
                           from_name="Ordfører Null", now=dt.datetime.now(dt.UTC))
    await _mail(service, follow, "leder0@kommune0.example")
    await _until(lambda: (q := _query(factory, 1)) is not None
                 and q.status == QueryStatus.OPEN, "the question reopened")
    await _until(lambda: len(_to(sink, DESK)) > len(desk_mails), "the reopened question's mail")
    reopened = _to(sink, DESK)[-1]
    assert "hvem betaler" in plain_text(reopened)
    before = len(_to(sink, "leder0@kommune0.example"))
    reply = compose_reply(reopened, "KS betaler. Hilsen Kari", style="outlook_nb",
                          from_address=DESK, from_name="Kari", now=dt.datetime.now(dt.UTC))
    await _mail(service, reply, DESK)
    await _until(lambda: len(_to(sink, "leder0@kommune0.example")) > before,
                 "the desk's email answer at the respondent")
    last = plain_text(_to(sink, "leder0@kommune0.example")[-1])
    assert "KS betaler" in last
    assert "hvem betaler" not in last  # the quoted notice is trimmed away
    assert notice  # the chat question's notice went to the desk as well
    query = _query(factory, 1)
    assert query is not None
    assert query.answered_by == f"email:{DESK}"


def test_questions_answered_on_the_web_reach_respondents_by_email_and_telegram(
        sink: SmtpSink, factory: sessionmaker[Session]) -> None:
    async def main() -> None:
        async with FakeTelegram() as fake:
            service = _service(factory, sink, fake)
            stop = asyncio.Event()
            ready = asyncio.Event()
            task = asyncio.create_task(service.run(stop, on_ready=lambda _: ready.set()))
            await asyncio.wait_for(ready.wait(), 15)
            try:
                await asyncio.wait_for(_scenario(sink, fake, factory, service), 90)
            finally:
                stop.set()
                await asyncio.wait_for(task, 20)

    asyncio.run(main())
