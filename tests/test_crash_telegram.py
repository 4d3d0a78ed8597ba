"""Crash safety on Telegram: `svarbot run` killed with SIGKILL during a wave and a stream of
answers, restarted until everything is through.

The fake Bot API runs in its own process (`python -m bot.demo.fake_telegram`, Telegram's limits:
30 messages a second, one a second per chat, bursts of 3), so it outlives every kill and
counts each message it accepted, per chat. `CHATS` invitations have their chat bound already
(as `/start <link>` leaves them) and a plan that sends on Telegram, and `svarbot invite` queues
the wave. While `svarbot run` sends it, a seeded sample of the chats answers the first
question as soon as its invitation arrives: most by typing "1", some by tapping the first
button. The process is killed `KILLS` times at seeded points of the wave, each time while some
of those answers are on their way (injected, not yet handled: waiting at the fake, stored in
the inbox, or being dispatched), and started again.

What must hold at the end:

* nothing lost: every chat got every message queued for it, and every answer was stored and
  answered;
* nothing applied twice: the inbox holds each update id once, each was handled once (one
  "processed" event, one reply queued), and each answering conversation holds exactly the one
  answer (had "1" been applied twice, the second would have answered the next question too),
  counted once in the anonymised store;
* duplicates are re-sends of messages in flight only: a Telegram message has no id a chat
  could drop a repeat by, so a row that was sent but whose result was not yet committed when
  the process died is sent again. Those rows are the ones still `sending` under the dead
  process; their lease (`telegram.lease_seconds`, at least 10 s) would hand them back, and the
  test plays its end by moving their `next_attempt_at` to now before the restart, as
  tests/test_crash.py does. The duplicates at the fake must number at most those rows, and
  each must be the same text as a message that chat got anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, bulk_people, expire_leases

from flows.session import from_json
from storage.db import session_factory, transaction
from storage.migrate import init_database, open_database
from storage.schema import (
    AnswerCount,
    InboxEvent,
    InboxMessage,
    InboxStatus,
    Invitation,
    OutboxMessage,
    OutboxStatus,
)

SURVEY = "virksomhetsleder-2020"
TOKEN = "123456789:AAE-crash_token_for_the_fake_0123"  # noqa: S105 - a synthetic token
SEED = 20200304
KILLS = 3
#: Sized so that the test takes about half a minute: the fake's 30/s sets the pace.
CHATS = 200
TALKERS = 50
#: Chat ids are this plus the invitation id.
CHAT_BASE = 7_000_000
#: The Telegram outbox worker's claim size with `telegram.concurrency` 8 (25 per slot, at
#: most 200), and that concurrency.
BATCH = 200
CONCURRENCY = 8
#: What the answers must leave in every answering conversation: question 1 (sector), option 1.
ANSWER = {"sektor": "helse"}
#: The longest delay from injecting an answer to a kill (handling one takes a few tens of ms).
INBOUND_MS = 40


def _always_open_zone(now: dt.datetime) -> str:
    """A fixed-offset zone in which it is about noon now: a window of "00:00-23:59" every day
    then cannot close (at 23:59) while the test runs, whenever it runs."""
    offset = 12 - now.astimezone(dt.UTC).hour
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-5 is UTC+5


def _config(tmp_path: Path, url: str, api_url: str) -> Path:
    now = dt.datetime.now(dt.UTC)
    zone = _always_open_zone(now)
    local = now.astimezone(ZoneInfo(zone))
    config = tmp_path / "config.yaml"
    config.write_text(f"""\
database:
  url: '{url}'
surveys:
  - id: {SURVEY}
    questionnaire: {SURVEY}
    plan:
      invite: "{(local - dt.timedelta(days=1)).strftime('%Y-%m-%d %H:%M')}"
      reminders: {{after_days: [7], max: 1, min_gap_days: 1}}
      close: "{(local + dt.timedelta(days=30)).strftime('%Y-%m-%d %H:%M')}"
      channel: telegram
      window:
        weekdays: [mon, tue, wed, thu, fri, sat, sun]
        hours: "00:00-23:59"
        timezone: {zone}
        holidays: null
telegram:
  enabled: true
  api_url: '{api_url}'
  poll_timeout: 2
logging:
  level: WARNING
""", encoding="utf-8")
    return config


def _env() -> dict[str, str]:
    return {**os.environ, "SVARBOT_LINK_KEY": TEST_KEY_TEXT, "SVARBOT_TELEGRAM_TOKEN": TOKEN,
            "PTB_TIMEDELTA": "1"}


# --- the fake Bot API, in its own process -----------------------------------------------------


@dataclass
class FakeApi:
    """The fake's control API (`/_test/...`), over HTTP."""

    base_url: str
    client: httpx.Client

    def _result(self, response: httpx.Response) -> Any:
        body = response.json()
        assert body.get("ok"), f"the fake refused {response.request.url}: {body}"
        return body["result"]

    def post(self, path: str, body: dict[str, object]) -> Any:
        return self._result(self.client.post(path, json=body))

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._result(self.client.get("/_test/stats"))
        return result

    def sent(self, chat: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._result(
            self.client.get("/_test/sent", params={"chat_id": chat}))
        return result


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    process = subprocess.Popen([sys.executable, "-m", "bot.demo.fake_telegram", "0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"listening on (\S+)", line)
        assert found is not None, f"the fake did not start: {line!r}"
        base_url = found.group(1)
        with httpx.Client(base_url=base_url.removesuffix("/bot"), timeout=10) as client:
            yield FakeApi(base_url, client)
    finally:
        process.terminate()
        process.communicate(timeout=10)


# --- svarbot, as a process --------------------------------------------------------------------


@dataclass
class Run:
    """One `svarbot run`, its output in a file (a pipe nobody reads would fill and block it)."""

    process: subprocess.Popen[bytes]
    log: Path
    _out: TextIO

    @classmethod
    def start(cls, config: Path, log: Path) -> Run:
        out = log.open("w", encoding="utf-8")
        process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config",
                                    str(config)], env=_env(), stdout=out,
                                   stderr=subprocess.STDOUT)
        return cls(process, log, out)

    @property
    def worker(self) -> str:
        """Its name in `claimed_by`."""
        return f"{socket.gethostname()}:{self.process.pid}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._out.close()
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        finally:
            self._out.close()
        assert self.process.returncode == 0, self.output()

    def close(self) -> None:
        """Kill it if it still runs (a failed test must not leave it behind)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._out.close()


# --- the respondents ----------------------------------------------------------------------


@dataclass
class Respondents:
    """The chats that answer, played through the fake as their invitations arrive."""

    fake: FakeApi
    factory: sessionmaker[Session]
    talkers: list[int]
    tappers: set[int]
    #: Update ids in the order they were injected (the fake numbers them 1, 2, 3 …).
    updates: list[int] = field(default_factory=list)
    answered: set[int] = field(default_factory=set)
    sends: int = 0
    per_chat: dict[int, int] = field(default_factory=dict)
    #: Answers injected by the last `step`.
    fresh: int = 0

    def step(self) -> None:
        """Look at the fake once, and answer for every talker whose invitation has come."""
        stats = self.fake.stats()
        self.sends = int(stats["sends"])
        self.per_chat = {int(k): int(v) for k, v in stats["sends_per_chat"].items()}
        before = len(self.updates)
        for chat in self.talkers:
            if chat not in self.answered and self.per_chat.get(chat, 0) >= 1:
                self._answer(chat)
        self.fresh = len(self.updates) - before

    def _answer(self, chat: int) -> None:
        expected = len(self.updates) + 1
        if chat in self.tappers:
            invitation = self.fake.sent(chat)[0]
            keyboard = invitation["reply_markup"]["inline_keyboard"]
            self.fake.post("/_test/click", {"user_id": chat,
                                            "message_id": invitation["message_id"],
                                            "data": keyboard[0][0]["callback_data"]})
            update_id = expected  # a click answers with its query id; updates count on
        else:
            update_id = int(self.fake.post("/_test/message", {
                "user_id": chat, "text": "1", "language_code": "nb"})["update_id"])
        assert update_id == expected, (update_id, expected)
        self.updates.append(update_id)
        self.answered.add(chat)

    def handled(self) -> int:
        """Inbox rows the dispatcher is done with."""
        with self.factory() as session:
            return int(session.scalar(select(func.count()).select_from(InboxMessage).where(
                InboxMessage.status != InboxStatus.RECEIVED)) or 0)

    def stored_unhandled(self) -> int:
        """Inbox rows stored by the poller and not yet handled by the dispatcher."""
        with self.factory() as session:
            return int(session.scalar(select(func.count()).select_from(InboxMessage).where(
                InboxMessage.status == InboxStatus.RECEIVED)) or 0)

    def on_their_way(self) -> int:
        """Answers injected but not yet handled (at the fake, in the inbox, being dispatched)."""
        return len(self.updates) - self.handled()

    def done(self) -> bool:
        if len(self.answered) < len(self.talkers) or self.on_their_way():
            return False
        with self.factory() as session:
            open_rows = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.channel == "telegram",
                OutboxMessage.status != OutboxStatus.SENT)) or 0
            wanted = _messages_per_chat(session)
        return not open_rows and all(self.per_chat.get(chat, 0) >= n
                                     for chat, n in wanted.items())


def _messages_per_chat(session: Session) -> dict[int, int]:
    """The chat messages (sendMessage) queued per chat: every Telegram row but the answers to
    button presses (`ack`: answerCallbackQuery, editMessageReplyMarkup)."""
    return {int(recipient): int(n) for recipient, n in session.execute(
        select(OutboxMessage.recipient, func.count()).where(
            OutboxMessage.channel == "telegram", OutboxMessage.kind != "ack")
        .group_by(OutboxMessage.recipient))}


def _wait(what: str, done: Callable[[], bool], respondents: Respondents, run: Run,
          timeout: float) -> None:
    """Play the respondents until `done`; fail after `timeout` s, or if svarbot exits first."""
    deadline = time.monotonic() + timeout
    while True:
        respondents.step()
        if done():
            return
        if run.process.poll() is not None:
            raise AssertionError(f"svarbot exited ({run.process.returncode}) before {what}: "
                                 f"{run.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (sent {respondents.sends}, "
                                 f"{len(respondents.updates)} answers, "
                                 f"{respondents.handled()} handled)")
        time.sleep(0.02)


def _kill_point(respondents: Respondents, threshold: int) -> Callable[[], bool]:
    """When to kill: `threshold` messages are at the fake and an answer was just injected (or,
    should none come, 20 messages later regardless). The kill then follows after a seeded
    delay of up to `INBOUND_MS`, so that it finds that answer at any stage: at the fake, being
    stored, stored, being dispatched, or answered."""
    def due() -> bool:
        sends = respondents.sends
        return (sends >= threshold and respondents.fresh > 0) or sends >= threshold + 20
    return due


# --- the test -------------------------------------------------------------------------------


def test_a_killed_bot_loses_no_message_and_applies_no_update_twice(
        fake: FakeApi, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    try:
        _scenario(fake, factory, _config(tmp_path, url, fake.base_url), tmp_path)
    finally:
        engine.dispose()


def _scenario(fake: FakeApi, factory: sessionmaker[Session], config: Path,
              tmp_path: Path) -> None:
    bulk_people(factory, SURVEY, CHATS)
    with transaction(factory) as session:  # every chat bound, as `/start <link>` binds it
        session.execute(update(Invitation).values(
            telegram_chat_id=Invitation.id + CHAT_BASE,
            telegram_user_id=Invitation.id + CHAT_BASE, telegram_active=True))
        chats = [CHAT_BASE + i for i in session.scalars(select(Invitation.id))]
    for chat in chats:
        fake.post("/_test/chat", {"user_id": chat, "first_name": "Leder",
                                  "language_code": "nb"})
    invite = subprocess.run([sys.executable, "-m", "bot", "invite", SURVEY, "--config",
                             str(config)], env=_env(), capture_output=True, check=False,
                            timeout=120)
    assert invite.returncode == 0, invite.stderr.decode(errors="replace")
    assert invite.stdout.decode().strip() == f"{CHATS} invitations queued for {SURVEY}"

    rng = random.Random(SEED)
    talkers = sorted(rng.sample(chats, TALKERS))
    respondents = Respondents(fake, factory, talkers, set(rng.sample(talkers, TALKERS // 4)))
    thresholds = sorted(rng.sample(range(CHATS // 10, CHATS - CHATS // 10), KILLS))
    delays = [rng.uniform(0, INBOUND_MS / 1000) for _ in thresholds]
    in_flight: list[int] = []
    on_their_way: list[tuple[int, int]] = []
    runs: list[Run] = []
    try:
        for n, (threshold, delay) in enumerate(zip(thresholds, delays, strict=True)):
            run = Run.start(config, tmp_path / f"run-{n}.log")
            runs.append(run)
            _wait(f"{threshold} messages at the fake", _kill_point(respondents, threshold),
                  respondents, run, 60)
            time.sleep(delay)  # a seeded point in the answer's way through svarbot
            run.kill()
            on_their_way.append((respondents.on_their_way(), respondents.stored_unhandled()))
            in_flight.append(expire_leases(factory, run.worker))
        run = Run.start(config, tmp_path / "run-last.log")
        runs.append(run)
        _wait("every message sent and every answer handled", respondents.done, respondents,
              run, 60)
        run.stop()
    finally:
        for started in runs:
            started.close()

    with factory() as session:
        wanted = _messages_per_chat(session)
        _check_inbox(session, respondents.updates)
        _check_answers(session, set(talkers))
    # Nothing lost: every chat got every message queued for it.
    assert set(wanted) == set(chats)
    got = {chat: fake.sent(chat) for chat in chats}
    assert all(len(got[chat]) >= n for chat, n in wanted.items())
    # Duplicates: only re-sends of rows in flight at a kill, each the same text again.
    duplicates = sum(len(got[chat]) - n for chat, n in wanted.items())
    bound = 2 * BATCH + CONCURRENCY  # what one worker can hold claimed at once
    assert all(n <= bound for n in in_flight), in_flight
    assert duplicates <= sum(in_flight), (duplicates, in_flight)
    for chat, n in wanted.items():
        assert len({message["text"] for message in got[chat]}) == n, chat
    stats = fake.stats()
    print(f"\ntelegram: {stats['sends']} messages for {sum(wanted.values())} queued, "
          f"{duplicates} duplicates, {stats['rejected_429']} answered 429; rows in flight at "
          f"the {KILLS} kills: {in_flight}; answers on their way (of them stored, not yet "
          f"handled): {on_their_way}")


def _check_inbox(session: Session, updates: list[int]) -> None:
    """Each update stored once and handled once, with one reply queued for it."""
    rows = session.execute(select(InboxMessage.id, InboxMessage.external_id,
                                  InboxMessage.status)
                           .where(InboxMessage.channel == "telegram")).all()
    assert Counter(external for _id, external, _status in rows) == Counter(
        str(update_id) for update_id in updates)
    assert {status for _id, _external, status in rows} == {InboxStatus.PROCESSED}
    ids = {inbox_id for inbox_id, _external, _status in rows}
    handled = Counter(session.scalars(select(InboxEvent.inbox_id)
                                      .where(InboxEvent.status == "processed")))
    assert handled == Counter(ids)  # each exactly once
    replies = Counter(key for key in session.scalars(
        select(OutboxMessage.idempotency_key).where(
            OutboxMessage.idempotency_key.like("reply:%")))
        if re.fullmatch(r"reply:\d+", key))
    assert replies == Counter(f"reply:{i}" for i in ids)


def _check_answers(session: Session, talkers: set[int]) -> None:
    """Each answering conversation holds the one answer, counted once; the others none."""
    for chat, state in session.execute(select(Invitation.telegram_chat_id,
                                              Invitation.session_state)):
        answers = dict(from_json(state).answers) if state else {}
        assert answers == (ANSWER if chat in talkers else {}), (chat, answers)
    counted = session.execute(
        select(AnswerCount.answer_id, AnswerCount.value_key, func.sum(AnswerCount.n))
        .where(AnswerCount.survey_id == SURVEY, AnswerCount.answer_id != "")
        .group_by(AnswerCount.answer_id, AnswerCount.value_key)).all()
    assert {(answer, json.loads(value)): int(n) for answer, value, n in counted} == {
        (item, value): len(talkers) for item, value in ANSWER.items()}
