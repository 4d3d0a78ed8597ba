"""The Telegram channel against the fake Bot API on loopback (real HTTP, python-telegram-bot).

Each test runs the real parts: the poller stores updates in the inbox, the dispatcher reads
them with the Telegram channel and runs the engine, and the Telegram outbox worker sends what
was queued to the fake, which enforces Telegram's limits. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, add_people

from bot.campaign.jobs import calendar, reminder_channel
from bot.channels.base import Channels
from bot.channels.email.channel import EmailChannel
from bot.channels.email.compose import OutgoingMail, render
from bot.channels.outbox_worker import OutboxWorker
from bot.channels.registry import configured_channels
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.telegram.receive import Poller
from bot.channels.telegram.render import MAX_CALLBACK_BYTES, keyboard, read_tap, split_text
from bot.config import PlanSettings, Settings, SurveySettings, TelegramSettings
from bot.conversation.dispatch import Dispatcher
from bot.conversation.outgoing import SurveyContext, others_than, queue_invitations
from bot.demo.fake_telegram import FakeTelegram
from flows.events import Choice
from flows.loader import load_shipped
from flows.session import from_json
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.migrate import init_database, open_database
from storage.schema import InboxMessage, Invitation, OutboxMessage, OutboxStatus, Respondent

pytest_plugins = ["storage_backends"]

TOKEN = "123456789:AAE-test_token_for_the_fake_0123"  # noqa: S105 - a synthetic token
SURVEY = "ordforer-2020"
NOW = dt.datetime(2019, 10, 15, 9, 0, tzinfo=dt.UTC)
MAYOR = 4242
OTHER = 777


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVARBOT_TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


def run(coro: Coroutine[Any, Any, None], timeout: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))


@dataclass
class World:
    """One mayor invited by email, the Telegram channel on the fake, and svarbot's parts."""

    fake: FakeTelegram
    factory: sessionmaker[Session]
    settings: Settings
    channels: Channels
    dispatcher: Dispatcher
    sender: OutboxWorker
    poller: Poller

    async def settle(self, *, until: Callable[[], bool] | None = None,
                     within: float = 10.0) -> None:
        """Dispatch what the poller stored and send what was queued, until nothing is left to
        do (and `until` holds)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            await asyncio.sleep(0.05)
            handled = await asyncio.to_thread(self.dispatcher.drain)
            sent = await self.sender.send_batch() if self._queued() else 0
            if not handled and not sent and not self.fake.pending_updates() and (
                    until is None or until()):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the Telegram world did not settle")

    def _queued(self) -> int:
        with self.factory() as session:
            return len(session.scalars(select(OutboxMessage.id).where(
                OutboxMessage.channel == "telegram",
                OutboxMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.RETRY]),
                OutboxMessage.next_attempt_at <= dt.datetime.now(dt.UTC))).all())

    def invitation(self, invitation_id: int = 1) -> Invitation:
        with self.factory() as session:
            return session.get_one(Invitation, invitation_id)

    def answers(self, invitation_id: int = 1) -> dict[str, object]:
        state = self.invitation(invitation_id).session_state
        return dict(from_json(state).answers) if state else {}

    def start_code(self) -> str:
        """The deep-link payload, as the respondent finds it in the invitation email."""
        with self.factory() as session:
            row = session.scalars(select(OutboxMessage).where(
                OutboxMessage.kind == "invitation", OutboxMessage.channel == "email")).first()
            assert row is not None
            assert row.payload is not None
            mail = OutgoingMail.from_payload(row.payload)
        text = render(mail, message_id="<x@svarbot.localhost>", settings=self.settings.email,
                      now=NOW).get_body(preferencelist=("plain",))
        assert text is not None
        found = re.search(r"Svar heller på mobilen i Telegram: "
                          r"https://t\.me/svarbot_demo_bot\?start=([A-Za-z0-9_-]{32})",
                          str(text.get_content()))
        assert found is not None, "the invitation carries no Telegram link"
        return found.group(1)

    def last_sent(self, chat: int = MAYOR) -> Any:
        sent = [m for m in self.fake.sent(chat) if not m.deleted]
        assert sent, "nothing was sent to the chat"
        return sent[-1]


#: A campaign that invites on Tuesday 15 October 2019 and reminds a week later.
PLAN = {"invite": "2019-10-15 09:00", "close": "2019-12-06 16:00",
        "reminders": {"after_days": [7], "max": 1},
        "window": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "hours": "00:00-23:59"}}


async def _world(engine: Engine, fake: FakeTelegram, survey: str = SURVEY,
                 **telegram: object) -> World:
    settings = Settings(
        surveys=(SurveySettings(id=survey, questionnaire=survey, contact="Kari, KS",
                                plan=PlanSettings.model_validate(PLAN)),),
        telegram=TelegramSettings(enabled=True, api_url=fake.base_url, poll_timeout=1,
                                  **telegram))  # type: ignore[arg-type]
    factory = session_factory(engine)
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    contexts = {survey: SurveyContext(settings=settings.surveys[0],
                                      questionnaire=load_shipped(survey))}
    channels = configured_channels(settings)
    with transaction(factory) as session:
        add_people(session, survey, 2)
    with transaction(factory) as session:
        email = channels["email"]
        assert queue_invitations(session, email, contexts[survey], store, now=NOW,
                                 others=others_than(channels, email)) == 2
    telegram_channel = channels["telegram"]
    assert isinstance(telegram_channel, TelegramChannel)
    dispatcher = Dispatcher(session_factory=factory, settings=settings, store=store,
                            surveys=contexts, channels=channels)
    sender = OutboxWorker(session_factory=factory, channel="telegram",
                          transport=telegram_channel.transport(),
                          limits=telegram_channel.limits(),
                          retry_for=telegram_channel.retry_for(), worker="test")
    [poller] = telegram_channel.receivers(factory, lambda: None)
    assert isinstance(poller, Poller)
    await poller.start()
    return World(fake, factory, settings, channels, dispatcher, sender, poller)


async def _close(world: World) -> None:
    await world.poller.stop()
    await world.sender.close()


def _with_world(engine: Engine, body: Callable[[World], Coroutine[Any, Any, None]],
                *, fast: bool = False, survey: str = SURVEY, **telegram: object) -> None:
    """`body` against a fresh world; `fast`: a Bot API without the per-chat limit (a whole
    questionnaire at Telegram's 1 a second per chat would take minutes)."""
    async def scenario() -> None:
        limits = {"per_chat_per_second": 50.0, "burst": 20} if fast else {}
        async with FakeTelegram(**limits) as fake:  # type: ignore[arg-type]
            world = await _world(engine, fake, survey, **(
                {"per_chat_per_second": 30.0, "burst": 20} if fast else {}), **telegram)
            try:
                await body(world)
            finally:
                await _close(world)
    run(scenario(), timeout=120 if fast else 30)


def test_a_mayor_binds_the_chat_and_answers_by_buttons_and_typing(engine: Engine) -> None:
    """The link in the invitation binds the chat; the current question comes with buttons; a
    tap answers it and takes the buttons away; a second tap on the same button answers
    nothing twice; a typed answer works too."""
    async def body(w: World) -> None:
        w.fake.message(MAYOR, f"/start {w.start_code()}", language_code="nb")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        invitation = w.invitation()
        assert invitation.telegram_chat_id == MAYOR
        assert invitation.telegram_user_id == MAYOR
        question = w.last_sent()
        assert "1. " in question.text
        buttons = question.buttons()
        assert buttons, "the first question (single choice) comes with buttons"
        _label, data = buttons[0]
        w.fake.click(MAYOR, question.message_id, data)
        await w.settle(until=lambda: len(w.fake.answered_callbacks()) == 1)
        first = next(iter(w.answers()))
        assert w.answers()[first] is not None
        assert w.fake.sent(MAYOR)[0].buttons() == [], "the answered question's buttons went"
        # A second tap (a double tap, or the old message) answers nothing.
        before = dict(w.answers())
        w.fake.click(MAYOR, question.message_id, data)
        await w.settle(until=lambda: len(w.fake.answered_callbacks()) == 2)
        assert w.answers() == before
        assert "allerede besvart" in w.fake.answered_callbacks()[-1].get("text", "")
        # Typing works as well as tapping: "status" is a command, and the answer count shows.
        count = len(w.fake.sent(MAYOR))
        w.fake.message(MAYOR, "/status")
        await w.settle(until=lambda: len(w.fake.sent(MAYOR)) > count)
        assert "Du har svart på 1 av" in w.last_sent().text
        assert w.invitation().last_channel == "telegram"
        # Plain text only: nothing a respondent types can become markup in a reply.
        assert all("parse_mode" not in call.params for call in w.fake.calls("sendMessage"))

    _with_world(engine, body)


def test_the_plan_sends_the_reminder_where_the_respondent_answered(tmp_path: Path) -> None:
    """`svarbot plan`'s calendar: the mayor who answered in the chat gets the reminder there,
    the other one by email."""
    engine = _sqlite(tmp_path)

    async def body(w: World) -> None:
        w.fake.message(MAYOR, f"/start {w.start_code()}")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        w.fake.message(MAYOR, "1")
        await w.settle(until=lambda: bool(w.answers()))
        contexts = {SURVEY: SurveyContext(settings=w.settings.surveys[0],
                                          questionnaire=load_shipped(SURVEY))}
        with w.factory() as session:
            rows = calendar(session, w.settings, contexts, SURVEY, now=NOW)
        reminders = sorted((channel, n) for _day, channel, kind, n in rows
                           if kind == "reminder")
        assert reminders == [("email", 1), ("telegram", 1)]

    _with_world(engine, body)
    engine.dispose()


def test_a_forwarded_link_is_refused_and_flagged(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)

    async def body(w: World) -> None:
        code = w.start_code()
        w.fake.message(MAYOR, f"/start {code}")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        w.fake.message(OTHER, f"/start {code}")
        await w.settle(until=lambda: bool(w.fake.sent(OTHER)))
        assert "allerede tatt i bruk" in w.last_sent(OTHER).text
        invitation = w.invitation()
        assert invitation.telegram_user_id == MAYOR
        assert invitation.start_shared

    _with_world(engine, body)
    engine.dispose()


def test_start_alone_and_a_stale_link_explain_what_to_do(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)

    async def body(w: World) -> None:
        w.fake.message(OTHER, "/start")
        await w.settle(until=lambda: bool(w.fake.sent(OTHER)))
        assert "Åpne lenken" in w.last_sent(OTHER).text
        w.fake.message(OTHER, "/start abcdefghijklmnopqrstuvwxyz012345")
        await w.settle(until=lambda: len(w.fake.sent(OTHER)) == 2)
        assert "kjenner ikke igjen" in w.last_sent(OTHER).text
        w.fake.message(OTHER, "hei")  # an unbound chat's text: told how, not quarantined
        await w.settle(until=lambda: len(w.fake.sent(OTHER)) == 3)
        assert "Åpne lenken" in w.last_sent(OTHER).text
        assert w.invitation().telegram_chat_id is None
        with w.factory() as session:
            statuses = session.scalars(select(InboxMessage.status).where(
                InboxMessage.channel == "telegram")).all()
        assert "failed" not in statuses

    _with_world(engine, body)
    engine.dispose()


def test_a_blocked_bot_makes_reminders_go_by_email(tmp_path: Path) -> None:
    """403 from Telegram: the message is bounced, the chat inactive, the invitation is not
    bounced, and the next reminder's channel is email."""
    engine = _sqlite(tmp_path)

    async def body(w: World) -> None:
        w.fake.message(MAYOR, f"/start {w.start_code()}")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        w.fake.block(MAYOR)
        w.fake.message(MAYOR, "hjelp")
        w.fake.block(MAYOR)
        await w.settle(until=lambda: not w.invitation().telegram_active)
        invitation = w.invitation()
        assert not invitation.telegram_active
        assert invitation.status != "bounced"
        with w.factory() as session:
            respondent = session.get_one(Respondent, invitation.respondent_id)
            bounced = session.scalars(select(OutboxMessage.status).where(
                OutboxMessage.channel == "telegram",
                OutboxMessage.status == OutboxStatus.BOUNCED)).all()
        assert bounced
        chosen = reminder_channel(w.channels, w.channels["email"], invitation, respondent,
                                  follow=True)
        assert chosen is not None
        assert chosen.name == "email"

    _with_world(engine, body)
    engine.dispose()


def test_asking_for_email_sends_the_rest_by_email(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)

    async def body(w: World) -> None:
        w.fake.message(MAYOR, f"/start {w.start_code()}")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        question = w.last_sent()
        w.fake.click(MAYOR, question.message_id, question.buttons()[0][1])
        await w.settle(until=lambda: bool(w.answers()))
        kept = dict(w.answers())
        w.fake.message(MAYOR, "/epost")
        await w.settle(until=lambda: "e-post" in w.last_sent().text)
        assert w.answers() == kept
        assert w.invitation().last_channel == "email"
        with w.factory() as session:
            pages = session.scalars(select(OutboxMessage).where(
                OutboxMessage.channel == "email", OutboxMessage.kind == "page")).all()
        assert len(pages) == 1
        assert from_json(w.invitation().session_state or "").channel == "email"

    _with_world(engine, body)
    engine.dispose()


def test_a_flood_limit_pauses_the_sender_and_loses_nothing(tmp_path: Path) -> None:
    """The fake allows 5 messages a second; 20 chats get a notice at once: some sends get
    429, the sender waits as told, and every message arrives once."""
    engine = _sqlite(tmp_path)

    async def scenario() -> None:
        async with FakeTelegram(per_second=5) as fake:
            world = await _world(engine, fake)
            try:
                chats = list(range(9000, 9020))
                for chat in chats:
                    fake.message(chat, "/start")
                await world.settle(
                    until=lambda: all(len(fake.sent(c)) == 1 for c in chats), within=20)
                assert fake.stats().rejected_429 > 0
                assert sorted(len(fake.sent(c)) for c in chats) == [1] * len(chats)
            finally:
                await _close(world)

    run(scenario(), timeout=40)
    engine.dispose()


def test_an_edited_message_is_not_read_again(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)

    async def body(w: World) -> None:
        w.fake.message(MAYOR, f"/start {w.start_code()}")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        update_id = w.fake.message(MAYOR, "1")
        await w.settle(until=lambda: bool(w.answers()))
        before = dict(w.answers())
        mine = w.fake.calls("sendMessage")
        w.fake.edited(MAYOR, w.fake.update(update_id)["message"]["message_id"], "2")
        await w.settle(until=lambda: len(w.fake.calls("sendMessage")) > len(mine))
        assert "Endringer i meldinger" in w.last_sent().text
        assert w.answers() == before

    _with_world(engine, body)
    engine.dispose()


def test_forged_and_foreign_taps_answer_nothing(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)

    async def body(w: World) -> None:
        w.fake.message(MAYOR, f"/start {w.start_code()}")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        question = w.last_sent()
        for data in ("a:00000000:1", "x" * 64, "t:zz:1:1", "d:deadbeef:ffffffffffffffffff"):
            w.fake.click(MAYOR, question.message_id, data)
        await w.settle(until=lambda: len(w.fake.answered_callbacks()) == 4)
        assert w.answers() == {}

    _with_world(engine, body)
    engine.dispose()


def _sqlite(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    return open_database(url)


# --- rendering ----------------------------------------------------------------------------------


def test_long_texts_are_split_at_paragraphs_under_the_limit() -> None:
    paragraphs = [f"Avsnitt {n}: " + "ord " * 300 for n in range(6)]
    text = "\n\n".join(paragraphs)
    pieces = split_text(text)
    assert len(pieces) > 1
    assert all(len(p.encode("utf-16-le")) // 2 <= 4000 for p in pieces)
    assert all(p.startswith("Avsnitt") for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")
    assert split_text("🙂" * 3000)[0] == "🙂" * 2000  # astral characters count twice


def test_buttons_fit_telegram_and_read_back_as_the_engine_s_replies() -> None:
    choices = tuple(Choice(f"Alternativ {n} " + "ø" * 60, str(n)) for n in range(1, 8))
    rows = keyboard("a_long_item_id.with_row", choices, multiple=False, lang="nb")
    assert all(len(data.encode()) <= MAX_CALLBACK_BYTES for row in rows for _, data in row)
    assert all(len(label) <= 40 for row in rows for label, _ in row)
    taps = [read_tap(data, rows) for row in rows for _, data in row]
    assert [t.reply for t in taps if t] == [str(n) for n in range(1, 8)]


def test_multiple_choice_toggles_keep_the_selection_in_the_keyboard() -> None:
    choices = tuple(Choice(label, str(n)) for n, label in enumerate(["A", "B", "C"], 1))
    rows = keyboard("tiltak", choices, multiple=True, lang="nb")
    first = read_tap(rows[0][0][1], rows)
    assert first is not None
    assert first.keyboard is not None
    assert first.reply is None
    third = read_tap(first.keyboard[0][2][1], first.keyboard)
    assert third is not None
    assert third.keyboard is not None
    assert [label for label, _ in third.keyboard[0]] == ["✓ A", "B", "✓ C"]
    done = read_tap(third.keyboard[-1][0][1], third.keyboard)
    assert done is not None
    assert done.reply == "1, 3"


def test_the_email_channel_knows_nothing_of_telegram_links_without_it() -> None:
    """With Telegram off, no link and no line in the mail."""
    settings = Settings()
    channels = configured_channels(settings)
    assert channels.names() == ("email",)
    assert others_than(channels, EmailChannel(settings)) == []


def test_a_transport_without_a_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.channels.base import ChannelError

    monkeypatch.delenv("SVARBOT_TELEGRAM_TOKEN")
    channel = TelegramChannel(Settings(telegram=TelegramSettings(enabled=True)))
    with pytest.raises(ChannelError, match="SVARBOT_TELEGRAM_TOKEN is not set"):
        channel.transport()


# --- svarbot telegram check ---------------------------------------------------------------------


@pytest.fixture
def fake_process() -> Any:
    """The fake Bot API in its own process (as `svarbot demo` and the benchmark run it)."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "bot.demo.fake_telegram", "0"], stdout=subprocess.PIPE,
        text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"listening on (\S+)", line)
        assert found is not None, f"the fake did not start: {line!r}"
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _check(tmp_path: Path, api_url: str, username: str = "svarbot_demo_bot") -> Any:
    from click.testing import CliRunner

    from bot.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(f"telegram:\n  enabled: true\n  api_url: '{api_url}'\n"
                      f"  bot_username: {username}\n", encoding="utf-8")
    return CliRunner().invoke(main, ["telegram", "check", "--config", str(config)])


def test_telegram_check_names_the_bot_and_a_deep_link(fake_process: str, tmp_path: Path) -> None:
    result = _check(tmp_path, fake_process)
    assert result.exit_code == 0, result.output
    assert "bot: Svarbot (@svarbot_demo_bot)" in result.output
    assert "deep link: https://t.me/svarbot_demo_bot?start=" in result.output


def test_telegram_check_says_so_in_one_line_for_a_bad_token(
        fake_process: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVARBOT_TELEGRAM_TOKEN", "not-a-token")
    result = _check(tmp_path, fake_process)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"svarbot: telegram: {fake_process} does not accept the token in "
        "SVARBOT_TELEGRAM_TOKEN"]


def test_telegram_check_notices_a_username_that_is_not_the_bot_s(
        fake_process: str, tmp_path: Path) -> None:
    result = _check(tmp_path, fake_process, username="some_other_bot")
    assert result.exit_code == 1
    assert "belongs to @svarbot_demo_bot" in result.stderr


def test_a_message_after_the_close_is_answered_politely(tmp_path: Path) -> None:
    from sqlalchemy import text

    engine = _sqlite(tmp_path)

    async def body(w: World) -> None:
        w.fake.message(MAYOR, f"/start {w.start_code()}")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        with transaction(w.factory) as session:
            session.execute(text("UPDATE surveys SET status = 'closed'"))
        w.fake.message(MAYOR, "1")
        await w.settle(until=lambda: len(w.fake.sent(MAYOR)) == 2)
        assert "Undersøkelsen er avsluttet" in w.last_sent().text
        assert w.answers() == {}

    _with_world(engine, body)
    engine.dispose()


@pytest.mark.parametrize(("survey", "by"), [("ordforer-2020", "buttons"),
                                           ("virksomhetsleder-2020", "typing")])
def test_a_whole_questionnaire_in_the_chat(tmp_path: Path, survey: str, by: str) -> None:
    """Both questionnaires to the end in Telegram: one by tapping wherever there are buttons
    (toggles and Ferdig for multiple choice, grids row by row), one by typing the answers."""
    import random

    engine = _sqlite(tmp_path)
    rng = random.Random(2019)

    async def body(w: World) -> None:
        w.fake.message(MAYOR, f"/start {w.start_code()}")
        await w.settle(until=lambda: bool(w.fake.sent(MAYOR)))
        for _turn in range(120):
            if str(w.invitation().status) == "finished":
                break
            question = w.last_sent()
            buttons = question.buttons()
            count = len(w.fake.sent(MAYOR))
            toggles = [data for _label, data in buttons if data.startswith("t:")]
            if by == "buttons" and toggles:
                w.fake.click(MAYOR, question.message_id, toggles[0])
                await w.settle(until=lambda: len(w.fake.answered_callbacks()) > 0)
                done = [d for _l, d in w.last_sent().buttons() if d.startswith("d:")]
                w.fake.click(MAYOR, question.message_id, done[0])
            elif by == "buttons" and buttons:
                w.fake.click(MAYOR, question.message_id, rng.choice(buttons)[1])
            elif buttons:
                w.fake.message(MAYOR, "1")
            else:
                w.fake.message(MAYOR, "12")
            await w.settle(until=lambda c=count: len(w.fake.sent(MAYOR)) > c)
        assert str(w.invitation().status) == "finished"
        assert len(w.answers()) >= 5
        if by == "buttons":
            assert any("." in key for key in w.answers()), "a grid answered row by row"

    _with_world(engine, body, fast=True, survey=survey)
    engine.dispose()
