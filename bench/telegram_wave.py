"""A Telegram reminder wave and conversations against the fake Bot API, and the cost of a reply.

Telegram's limits decide how fast a wave can go: about 30 messages a second for the bot, one a
second per chat (with a short burst). The fake Bot API (`bot.demo.fake_telegram`, in its own
process, 30/s overall, 1/s per chat, burst 3) enforces them and counts what it saw, so this
measures what svarbot achieves within them rather than what it believes it does:

1. wave: `--chats` chats bound to invitations (inserted directly, as a `/start` would leave
   them), invited eight days ago, and the reminder wave queued by the campaign's own
   `due_reminders`. `svarbot run`'s parts (`bot.runner.Service`: the Telegram outbox worker on
   `TelegramTransport`, the poller, the dispatcher; `telegram.per_second` 30) then run in a
   fresh process (spawned) until every message is accepted. Meanwhile `--conversations` of
   the chats, spread over the wave, answer as soon as their reminder arrives, with a quick
   burst of messages (updates injected through the fake's control API, stored by the poller,
   handled by the dispatcher, answered through the outbox). Printed: the achieved send rate as
   a ratio of the 30/s limit (goal ≥ 0.95), the 429s the fake answered (goal 0), the highest
   per-chat rate the fake saw (≤ 1/s sustained; the burst of 3 is allowed), how long the
   conversations waited for their replies, and the process's peak RSS; and, to tell why a
   rate falls short, the sends tried in the first minute, the longest time with nothing
   accepted, and how many attempts the messages took.
2. reply cost: one inbound update through svarbot (poller → inbox → dispatcher → engine →
   outbox → worker → sendMessage) against a bare python-telegram-bot echo (an Application
   polling, with a MessageHandler that replies to each message), against the same fake, one
   update at a time from a chat not written to lately (so no pacing enters). Each side runs in
   its own fresh process per block, and blocks alternate (`--pairs` pairs, the order swapped
   every pair, bench/interleave.py) so that drift on the machine hits both alike. Per pair: the
   median round trip of each side and their ratio; overall: the median ratio and its spread
   (no goal is set for it: the issue sets none; the wave's goals are PASS or MISS), each
   side's median
   and interquartile range, CPU per update (beyond what the bot costs idle, measured in the
   same block) and peak RSS; and where svarbot's round trip goes, from the times it writes in
   the database (poller, dispatcher, outbox worker).

The round trip is timed by this process, which injects the update and polls the fake for the
reply (`GET /_test/sent?chat_id=…`, every half millisecond): the same clock and the same
overhead for both sides.

    .venv/bin/python bench/telegram_wave.py [--chats 1000] [--pairs 5] [--trials 20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import logging
import multiprocessing
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import Spread, verdict
from interleave import order as interleave_order

from bot.campaign.jobs import due_reminders
from bot.channels.registry import configured_channels
from bot.channels.telegram.channel import TelegramChannel
from bot.config import Settings
from bot.conversation.outgoing import others_than, queue_invitations
from bot.runner import Service, survey_contexts
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.identity import ensure_survey
from storage.migrate import init_database, open_database
from storage.outbox import Result, record
from storage.schema import (
    InboxEvent,
    InboxMessage,
    Invitation,
    InvitationStatus,
    OutboxMessage,
    OutboxStatus,
    Respondent,
)
from storage.tokens import new_token

TOKEN = "123456789:AAE-bench_token_for_the_fake_0123"  # noqa: S105 - a synthetic token
LINK_KEY = b"bench-link-key-0123456789abcdef"
SURVEY = "bench"
QUESTIONNAIRE = "virksomhetsleder-2020"
#: Telegram's limits, as the fake enforces them and svarbot is configured for.
PER_SECOND = 30
PER_CHAT_PER_SECOND = 1.0
BURST = 3
RATE_GOAL = 0.95
#: Chat (and user) ids: bound chats from here on; the echo bot's chats far above them.
FIRST_CHAT = 10_000_001
FIRST_ECHO_CHAT = 90_000_001
#: What a conversation types at once when its reminder arrives: three answers, two commands.
BURST_TEXTS = ("1", "1", "25", "status", "hjelp")
#: Round trips before each block's measured ones (the first pays for connections and caches).
WARMUP = 2
#: How often the reply-cost driver looks at the fake, and the wave driver at its stats.
POLL_SECONDS = 0.0005
WAVE_POLL_SECONDS = 0.05
#: Between round trips: long enough for the bot's bookkeeping after a reply (svarbot records
#: the result within 0.1 s) to be done, so that each update is measured on its own.
GAP_SECONDS = 0.25
#: How long each block's bot is watched idle, to tell its idle work from the cost of updates.
IDLE_SECONDS = 2.0
PROGRESS_SECONDS = 5.0


# --- the fake, in its own process -----------------------------------------------------------


class Fake:
    """`python -m bot.demo.fake_telegram 0` with Telegram's limits, and its control API."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "bot.demo.fake_telegram", "0",
             "--per-second", str(PER_SECOND), "--per-chat-per-second", str(PER_CHAT_PER_SECOND),
             "--burst", str(BURST)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"listening on (\S+)", line)
        if found is None:
            self.process.kill()
            raise RuntimeError(f"the fake Bot API did not start: {line!r}")
        self.base_url = found.group(1)
        self.url = self.base_url.removesuffix("/bot")
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _result(self, response: httpx.Response) -> Any:
        body = response.json()
        if not body.get("ok"):
            raise RuntimeError(f"the fake refused {response.request.url}: {body}")
        return body["result"]

    def post(self, path: str, body: dict[str, object]) -> Any:
        return self._result(self.client.post(path, json=body))

    def get(self, path: str, **params: int | str) -> Any:
        return self._result(self.client.get(path, params=params))

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/_test/stats")
        return result

    def sent_count(self, chat: int) -> int:
        return len(self.get("/_test/sent", chat_id=chat))

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.communicate(timeout=10)


# --- setup (not timed) ----------------------------------------------------------------------


def always_open_zone(now: dt.datetime) -> str:
    """A fixed-offset zone in which it is about noon now, so that a window of "00:00-23:59"
    every day cannot close (at 23:59) while the benchmark runs."""
    offset = 12 - now.astimezone(dt.UTC).hour
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-5 is UTC+5


def settings_for(url: str, api_url: str, *, now: dt.datetime | None = None) -> Settings:
    """svarbot's settings for the benchmark; with `now`, a plan whose first reminder is due."""
    survey: dict[str, object] = {"id": SURVEY, "questionnaire": QUESTIONNAIRE}
    if now is not None:
        zone = always_open_zone(now)
        local = now.astimezone(ZoneInfo(zone))
        survey["plan"] = {
            "invite": (local - dt.timedelta(days=10)).strftime("%Y-%m-%d %H:%M"),
            "close": (local + dt.timedelta(days=20)).strftime("%Y-%m-%d %H:%M"),
            "reminders": {"after_days": [7], "max": 1, "min_gap_days": 1},
            "channel": "telegram",
            "window": {"weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                       "hours": "00:00-23:59", "timezone": zone, "holidays": None}}
    return Settings.model_validate({
        "database": {"url": url}, "surveys": [survey],
        "telegram": {"enabled": True, "api_url": api_url, "per_second": PER_SECOND,
                     "per_chat_per_second": PER_CHAT_PER_SECOND, "burst": BURST,
                     "poll_timeout": 10}})


def build_database(path: Path, chats: int, api_url: str) -> dict[str, float]:
    """`chats` bound chats, invited eight days ago, with the reminder wave queued."""
    url = f"sqlite:///{path}"
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    took: dict[str, float] = {}
    now = dt.datetime.now(dt.UTC)
    settings = settings_for(url, api_url, now=now)
    contexts = survey_contexts(settings)
    store = AnswerStore(LinkKey(LINK_KEY))
    channels = configured_channels(settings)
    telegram = channels["telegram"]
    try:
        started = time.perf_counter()
        with transaction(factory) as session:
            ensure_survey(session, SURVEY, QUESTIONNAIRE)
            # Straight inserts, with the chat bound as `/start <link>` would have bound it.
            session.execute(insert(Respondent), [
                {"id": i + 1, "email": f"leder{i}@kommune{i % 356}.example",
                 "name": f"Leder Nummer{i}", "role": "unit_leader",
                 "municipality_no": f"{i % 356:04d}", "municipality_name": f"Kommune {i % 356}",
                 "county": "Vestland", "size_class": "medium", "landsdel": "Vestlandet",
                 "lang": "nb"} for i in range(chats)])
            session.execute(insert(Invitation), [
                {"respondent_id": i + 1, "survey_id": SURVEY, "token": new_token(),
                 "status": InvitationStatus.PENDING.value, "reminders_sent": 0,
                 "email_address": f"leder{i}@kommune{i % 356}.example",
                 "answered_from_other_address": False, "telegram_user_id": FIRST_CHAT + i,
                 "telegram_chat_id": FIRST_CHAT + i, "telegram_active": True,
                 "last_channel": "telegram"} for i in range(chats)])
        took["chats"] = time.perf_counter() - started
        started = time.perf_counter()
        invited_at = now - dt.timedelta(days=8)
        with transaction(factory) as session:
            queued = queue_invitations(session, telegram, contexts[SURVEY], store,
                                       now=invited_at, others=others_than(channels, telegram))
        assert queued == chats, queued
        with transaction(factory) as session:  # the invitations went out eight days ago
            ids = session.scalars(select(OutboxMessage.id)).all()
            record(session, [Result(i, "sent", "sent by the benchmark's setup") for i in ids],
                   now=invited_at)
        took["invitations"] = time.perf_counter() - started
        started = time.perf_counter()
        reminded = due_reminders(factory, settings, contexts, store, now=now)
        assert reminded == chats, reminded
        took["due_reminders"] = time.perf_counter() - started
    finally:
        engine.dispose()
    return took


def wave_size(path: Path) -> int:
    """How many Telegram messages the wave queued (a long text may need several)."""
    engine = open_database(f"sqlite:///{path}")
    try:
        with session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.kind == "reminder")) or 0)
    finally:
        engine.dispose()


def leftovers(path: Path) -> dict[str, int]:
    """Telegram outbox rows not sent, by status, and inbox rows not processed."""
    engine = open_database(f"sqlite:///{path}")
    try:
        with session_factory(engine)() as session:
            out = {str(status): int(n) for status, n in session.execute(
                select(OutboxMessage.status, func.count()).where(
                    OutboxMessage.channel == "telegram",
                    OutboxMessage.status != OutboxStatus.SENT)
                .group_by(OutboxMessage.status))}
            waiting = session.scalar(select(func.count()).select_from(InboxMessage).where(
                InboxMessage.status == "received")) or 0
    finally:
        engine.dispose()
    if waiting:
        out["inbox received"] = int(waiting)
    return out


def attempts(path: Path) -> dict[int, int]:
    """How many sent Telegram messages took how many attempts (a 429 costs one)."""
    engine = open_database(f"sqlite:///{path}")
    try:
        with session_factory(engine)() as session:
            return {int(n): int(count) for n, count in session.execute(
                select(OutboxMessage.attempts, func.count()).where(
                    OutboxMessage.channel == "telegram",
                    OutboxMessage.status == OutboxStatus.SENT,
                    OutboxMessage.kind != "invitation")
                .group_by(OutboxMessage.attempts).order_by(OutboxMessage.attempts))}
    finally:
        engine.dispose()


# --- the bots, each in a fresh process ------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What a bot's process used: (perf_counter, CPU seconds) at each `Bot.mark` and at the
    stop, and its peak RSS."""

    marks: list[tuple[float, float]]
    rss_peak_mb: float

    def cpu_between(self, first: int, last: int) -> tuple[float, float]:
        """(wall seconds, CPU seconds) from mark `first` to mark `last`."""
        (wall0, cpu0), (wall1, cpu1) = self.marks[first], self.marks[last]
        return wall1 - wall0, cpu1 - cpu0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _svarbot(url: str, api_url: str, ready: Callable[[], None],
                   stopping: asyncio.Event) -> None:
    settings = settings_for(url, api_url)
    engine = open_database(url)
    try:
        service = Service(settings=settings, session_factory=session_factory(engine),
                          store=AnswerStore(LinkKey(LINK_KEY)),
                          surveys=survey_contexts(settings))
        await service.run(stopping, on_ready=lambda _service: ready())
    finally:
        engine.dispose()


async def _echo(api_url: str, ready: Callable[[], None], stopping: asyncio.Event) -> None:
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and message.text:
            await message.reply_text(message.text)

    app = ApplicationBuilder().token(TOKEN).base_url(api_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(timeout=dt.timedelta(seconds=10))
        await app.start()
        ready()
        await stopping.wait()
        await app.updater.stop()
        await app.stop()


def _bot_child(kind: str, url: str, api_url: str, ready: multiprocessing.Queue[float],
               commands: multiprocessing.Queue[str],
               results: multiprocessing.Queue[Usage]) -> None:
    logging.basicConfig(level=logging.ERROR)  # 429 warnings are counted at the fake instead
    os.environ["SVARBOT_TELEGRAM_TOKEN"] = TOKEN
    os.environ["PTB_TIMEDELTA"] = "1"
    marks: list[tuple[float, float]] = []

    async def main() -> None:
        stopping = asyncio.Event()

        async def control() -> None:
            while await asyncio.to_thread(commands.get) == "mark":
                marks.append((time.perf_counter(), _cpu()))
            marks.append((time.perf_counter(), _cpu()))
            stopping.set()

        controller = asyncio.create_task(control())
        if kind == "svarbot":
            await _svarbot(url, api_url, lambda: ready.put(time.perf_counter()), stopping)
        else:
            await _echo(api_url, lambda: ready.put(time.perf_counter()), stopping)
        await controller

    asyncio.run(main())
    results.put(Usage(marks, _rss_mb()))


class Bot:
    """A bot (`svarbot` or `echo`) in a fresh spawned process, ready once `start` returns.

    `mark` notes the process's CPU time (the bot's own clock), and so does `stop`.
    """

    def __init__(self, kind: str, url: str, api_url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.kind = kind
        self._ready: multiprocessing.Queue[float] = context.Queue()
        self._commands: multiprocessing.Queue[str] = context.Queue()
        self._results: multiprocessing.Queue[Usage] = context.Queue()
        self._process = context.Process(target=_bot_child, args=(
            kind, url, api_url, self._ready, self._commands, self._results))

    def start(self, timeout: float = 60.0) -> None:
        self._process.start()
        try:
            self._ready.get(timeout=timeout)
        except Empty:
            self._process.kill()
            raise RuntimeError(f"the {self.kind} bot did not start within {timeout} s") from None

    def mark(self) -> None:
        self._commands.put("mark")

    def stop(self) -> Usage:
        self._commands.put("stop")
        try:
            usage = self._results.get(timeout=60)
        finally:
            self._process.join(timeout=30)
        if self._process.exitcode != 0:
            raise RuntimeError(f"the {self.kind} bot failed (exit code {self._process.exitcode})")
        return usage


# --- 1. the wave ----------------------------------------------------------------------------


def talkers(chats: int, conversations: int) -> list[int]:
    """The chats that answer during the wave: spread evenly, so that answers come throughout."""
    step = max(1, chats // max(1, conversations))
    return [FIRST_CHAT + i for i in range(step // 2, chats, step)][:conversations]


@dataclass
class Wave:
    """What the wave driver saw."""

    seconds: float
    sends: int
    stats: dict[str, Any]
    usage: Usage
    #: Every look at the fake: (seconds since the first accepted message, accepted, 429s).
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    #: Per conversation: seconds from its reminder's arrival (0.0) to each of its replies.
    arrivals: dict[int, list[float]] = field(default_factory=dict)

    def attempts_in_first_minute(self) -> int:
        """Sends tried (accepted or refused with 429) in the first 60 s of the wave."""
        within = [accepted + refused for t, accepted, refused in self.samples if t <= 60.0]
        return within[-1] if within else 0

    def longest_stall(self) -> float:
        """The longest time in which the fake accepted nothing, before the wave was through."""
        longest, since, last = 0.0, 0.0, 0
        for t, accepted, _refused in self.samples:
            if accepted != last:
                longest, since, last = max(longest, t - since), t, accepted
        return longest

    def sustained(self) -> float:
        """The fastest per-chat rate beyond the allowed burst, over spans of 2 s or more: for
        messages i..j to one chat, (j - i + 1 - burst) / (t_j - t_i). Telegram's bucket (burst
        3, then 1/s) keeps this at or under 1/s; a burst after a quiet spell does not count."""
        fastest = 0.0
        for times in self.arrivals.values():
            for i, start in enumerate(times):
                for j in range(i + 1, len(times)):
                    span = times[j] - start
                    if span >= 2.0:
                        fastest = max(fastest, (j - i + 1 - BURST) / span)
        return fastest


def run_wave(fake: Fake, path: Path, chats: int, conversations: int) -> Wave:
    """Run svarbot until the wave and the conversations are through; see the module docstring."""
    reminders = wave_size(path)
    talking = talkers(chats, conversations)
    expected = reminders + len(talking) * len(BURST_TEXTS)
    bot = Bot("svarbot", f"sqlite:///{path}", fake.base_url)
    bot.start()
    bot.mark()
    started = time.perf_counter()
    first: float | None = None
    last_change, sends = started, 0
    seen: list[tuple[float, int, int]] = []
    said: dict[int, float] = {}
    arrivals: dict[int, list[float]] = {chat: [] for chat in talking}
    deadline = started + 10 * expected / PER_SECOND + 120
    shown = started
    try:
        while True:
            stats = fake.stats()
            now = time.perf_counter()
            if stats["sends"] != sends:
                sends, last_change = stats["sends"], now
                first = first if first is not None else now - WAVE_POLL_SECONDS / 2
            if first is not None:
                seen.append((now - first, sends, stats["rejected_429"]))
            per_chat = stats["sends_per_chat"]
            for chat in talking:
                got = per_chat.get(str(chat), 0)
                if chat not in said and got >= 1:
                    said[chat] = now
                    for text in BURST_TEXTS:
                        fake.post("/_test/message", {"user_id": chat, "text": text,
                                                     "language_code": "nb"})
                while chat in said and len(arrivals[chat]) < got:
                    arrivals[chat].append(now - said[chat])
            if sends >= expected:
                break
            if now > deadline:
                raise RuntimeError(f"the wave did not finish: {sends} of {expected} sent; "
                                   f"left: {leftovers(path)}")
            if now - shown >= PROGRESS_SECONDS and first is not None:
                shown = now
                print(f"  {sends:>5} of {expected} sent in {now - first:5.1f} s "
                      f"({sends / (now - first):4.1f}/s), 429s so far: {stats['rejected_429']}",
                      flush=True)
            time.sleep(WAVE_POLL_SECONDS)
    finally:
        usage = bot.stop()
    assert first is not None
    return Wave(seconds=last_change - first, sends=sends, stats=fake.stats(), usage=usage,
                samples=seen, arrivals=arrivals)


# --- 2. the cost of one reply ---------------------------------------------------------------


class Chats(Protocol):
    def __call__(self) -> int: ...


@dataclass(frozen=True)
class Trip:
    """One round trip: the update, its duration, and when it began and ended (wall clock,
    to set against the times svarbot writes in the database)."""

    update_id: int
    seconds: float
    injected_at: dt.datetime
    replied_at: dt.datetime


def round_trip(fake: Fake, chat: int, text: str, timeout: float = 30.0) -> Trip:
    """Inject `text` from `chat` and wait until the bot's reply is at the fake."""
    before = fake.sent_count(chat)
    injected_at = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    update_id = int(fake.post("/_test/message", {"user_id": chat, "text": text,
                                                 "language_code": "nb"})["update_id"])
    while fake.sent_count(chat) <= before:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"no reply to chat {chat} within {timeout} s")
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    return Trip(update_id, seconds, injected_at, dt.datetime.now(dt.UTC))


@dataclass
class Block:
    kind: str
    trips: list[Trip]
    usage: Usage

    @property
    def seconds(self) -> list[float]:
        return [trip.seconds for trip in self.trips]

    def idle_cpu(self) -> float:
        """CPU seconds per second while idle (before the round trips)."""
        wall, cpu = self.usage.cpu_between(0, 1)
        return cpu / wall

    def cpu_per_update(self) -> float:
        """CPU seconds per round trip, beyond what the same time idle costs."""
        wall, cpu = self.usage.cpu_between(1, 2)
        return (cpu - self.idle_cpu() * wall) / len(self.trips)


def run_block(fake: Fake, kind: str, url: str, next_chat: Chats, trials: int) -> Block:
    bot = Bot(kind, url, fake.base_url)
    bot.start()
    try:
        for _ in range(WARMUP):
            round_trip(fake, next_chat(), "1", timeout=60.0)
            time.sleep(GAP_SECONDS)
        bot.mark()  # idle from here: what the bot costs when nothing comes
        time.sleep(IDLE_SECONDS)
        bot.mark()
        trips = []
        for _ in range(trials):
            trips.append(round_trip(fake, next_chat(), "1"))
            time.sleep(GAP_SECONDS)
    finally:
        usage = bot.stop()
    return Block(kind, trips, usage)


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def stages(path: Path, trips: Sequence[Trip], lease: dt.timedelta) -> dict[str, list[float]]:
    """Where svarbot's round trips went, from the times it wrote: until the poller had the
    update (the inbox row's `received_at`), until the dispatcher took it up (the `processed`
    event is dated when the handling began), until the outbox worker claimed the reply (a
    claim sets `next_attempt_at` to the claim's time plus the lease), and from the claim
    until the reply was at the fake."""
    engine = open_database(f"sqlite:///{path}")
    out: dict[str, list[float]] = {"fake → poller": [], "stored → dispatcher": [],
                                   "dispatch → claim": [], "claim → fake": []}
    try:
        with session_factory(engine)() as session:
            for trip in trips:
                inbox_id, received, handled = session.execute(
                    select(InboxMessage.id, InboxMessage.received_at, InboxEvent.at)
                    .join(InboxEvent, InboxEvent.inbox_id == InboxMessage.id)
                    .where(InboxMessage.channel == "telegram",
                           InboxMessage.external_id == str(trip.update_id),
                           InboxEvent.status == "processed")).one()
                lease_end = session.scalars(select(OutboxMessage.next_attempt_at).where(
                    OutboxMessage.idempotency_key == f"reply:{inbox_id}")).one()
                claimed = _utc(lease_end) - lease
                times = [trip.injected_at, _utc(received), _utc(handled), claimed,
                         trip.replied_at]
                for name, (begin, end) in zip(out, itertools.pairwise(times), strict=True):
                    out[name].append((end - begin).total_seconds())
    finally:
        engine.dispose()
    return out


def _iqr(values: Sequence[float]) -> tuple[float, float]:
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[0], quartiles[2]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=1000, help="bound chats (default 1000)")
    parser.add_argument("--conversations", type=int, default=50,
                        help="chats that answer during the wave (default 50)")
    parser.add_argument("--pairs", type=int, default=5,
                        help="interleaved svarbot/echo block pairs (default 5)")
    parser.add_argument("--trials", type=int, default=20,
                        help="measured round trips per block (default 20)")
    args = parser.parse_args()
    conversations = min(args.conversations, args.chats // 2)
    needed = conversations + args.pairs * (WARMUP + args.trials)
    if needed > args.chats:
        parser.error(f"--chats {args.chats} is too few: the conversations and the svarbot "
                     f"round trips need {needed} chats that have not been written to")
    os.environ["SVARBOT_TELEGRAM_TOKEN"] = TOKEN
    fake = Fake()
    try:
        with tempfile.TemporaryDirectory(prefix="svarbot-telegram-") as folder:
            path = Path(folder) / "telegram.db"
            started = time.perf_counter()
            took = build_database(path, args.chats, fake.base_url)
            for i in range(args.chats):
                fake.post("/_test/chat", {"user_id": FIRST_CHAT + i, "first_name": f"Leder{i}",
                                          "language_code": "nb"})
            steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in took.items())
            print(f"setup: {args.chats} bound chats, reminder wave queued, in "
                  f"{time.perf_counter() - started:.1f} s\n  ({steps})", flush=True)
            print(f"wave: {args.chats} reminders + {conversations} conversations of "
                  f"{len(BURST_TEXTS)} messages, fake at\n  {PER_SECOND}/s overall, "
                  f"{PER_CHAT_PER_SECOND:g}/s per chat, burst {BURST} ...", flush=True)
            wave = run_wave(fake, path, args.chats, conversations)
            report_wave(wave, TelegramChannel(
                settings_for(f"sqlite:///{path}", fake.base_url)).limits().per_minute)
            tries = attempts(path)
            print("  attempts per message: " + ", ".join(
                f"{n}: {count}" for n, count in tries.items()))
            left = leftovers(path)
            if left:
                print(f"  left over after the wave: {left}")
            report_cost(fake, path, args, conversations)
    finally:
        fake.stop()


def report_wave(wave: Wave, limiter_per_minute: int) -> None:
    stats = wave.stats
    rate = wave.sends / wave.seconds
    ratio = rate / PER_SECOND
    print(f"wave: {wave.sends} messages accepted in {wave.seconds:.1f} s = {rate:.1f}/s")
    print(f"  = {ratio:.3f} of the {PER_SECOND}/s limit; goal ≥ {RATE_GOAL}: "
          f"{verdict(ratio >= RATE_GOAL)}")
    print(f"  429s: {stats['rejected_429']} ({stats['rejected_overall']} overall limit, "
          f"{stats['rejected_per_chat']} per-chat limit);\n  goal 0: "
          f"{verdict(stats['rejected_429'] == 0)}")
    print(f"  sends tried in the first 60 s: ≈{wave.attempts_in_first_minute()} (svarbot's "
          f"limiter allows\n  {limiter_per_minute} a minute); longest time with nothing "
          f"accepted: {wave.longest_stall():.1f} s")
    gap = stats["min_chat_gap"]
    sustained = wave.sustained()
    print(f"  per chat: at most {stats['max_chat_per_second']} in a second (burst {BURST} "
          f"allowed), shortest gap\n  {'-' if gap is None else f'{gap:.3f} s'}; fastest "
          f"second overall: {stats['max_per_second']} messages")
    print(f"  per chat, sustained beyond the burst: at most {sustained:.2f}/s; goal ≤ "
          f"{PER_CHAT_PER_SECOND:g}/s:\n  "
          f"{verdict(sustained <= PER_CHAT_PER_SECOND * 1.05)}")
    firsts = [times[1] for times in wave.arrivals.values() if len(times) > 1]
    lasts = [times[-1] for times in wave.arrivals.values() if len(times) > 1]
    if firsts:
        print(f"  conversations: first reply after median {statistics.median(firsts):.1f} s "
              f"(max {max(firsts):.1f} s),\n  all {len(BURST_TEXTS)} replies after median "
              f"{statistics.median(lasts):.1f} s (max {max(lasts):.1f} s)")
    print(f"  svarbot process: {wave.usage.cpu_between(0, -1)[1]:.1f} s CPU, peak RSS "
          f"{wave.usage.rss_peak_mb:.0f} MB")


def report_cost(fake: Fake, path: Path, args: argparse.Namespace, conversations: int) -> None:
    url = f"sqlite:///{path}"
    # Chats not written to since their reminder, and chats the echo bot has never seen.
    talking = set(talkers(args.chats, conversations))
    unused = iter([chat for chat in range(FIRST_CHAT + args.chats - 1, FIRST_CHAT - 1, -1)
                   if chat not in talking])
    echo_chats = iter(range(FIRST_ECHO_CHAT, FIRST_ECHO_CHAT + 10**6))

    def svarbot_chat() -> int:
        return next(unused)

    print(f"reply cost: {args.pairs} pairs of blocks, {args.trials} round trips each "
          f"(+{WARMUP} warm-up),\none update at a time; A = the echo bot, B = svarbot ...",
          flush=True)
    print(f"{'pair':>4} {'first':<8} {'svarbot ms':>10} {'echo ms':>8} {'ratio':>6}")
    blocks: dict[str, list[Block]] = {"svarbot": [], "echo": []}
    ratios = []
    for pair in range(args.pairs):
        order = tuple("echo" if side == "A" else "svarbot" for side in interleave_order(pair))
        medians = {}
        for kind in order:
            chats: Chats = svarbot_chat if kind == "svarbot" else lambda: next(echo_chats)
            block = run_block(fake, kind, url, chats, args.trials)
            blocks[kind].append(block)
            medians[kind] = statistics.median(block.seconds)
        ratio = medians["svarbot"] / medians["echo"]
        ratios.append(ratio)
        print(f"{pair + 1:>4} {order[0]:<8} {_ms(medians['svarbot']):>10} "
              f"{_ms(medians['echo']):>8} {ratio:>6.1f}", flush=True)
    cpu_ratios = [mine.cpu_per_update() / bare.cpu_per_update()
                  for mine, bare in zip(blocks["svarbot"], blocks["echo"], strict=True)]
    print(f"reply cost: svarbot/echo round trip {Spread.of(ratios).text(1, 'x')}")
    print(f"  CPU per update {Spread.of(cpu_ratios).text(1, 'x')}")
    print("  (no goal is set for the cost of a reply: svarbot stores, dispatches and\n"
          "  records each update, the echo bot only answers it)")
    for kind in ("svarbot", "echo"):
        values = [s for block in blocks[kind] for s in block.seconds]
        low, high = _iqr(values)
        cpu = statistics.median(b.cpu_per_update() for b in blocks[kind])
        idle = statistics.median(b.idle_cpu() for b in blocks[kind])
        rss = max(b.usage.rss_peak_mb for b in blocks[kind])
        print(f"  {kind:<8} round trip median {_ms(statistics.median(values))} ms "
              f"(IQR {_ms(low)}–{_ms(high)} ms, n={len(values)});\n"
              f"           CPU {cpu * 1000:.1f} ms per update beyond idle (idle: "
              f"{idle * 1000:.0f} ms/s); peak RSS {rss:.0f} MB")
    lease = dt.timedelta(seconds=settings_for(url, fake.base_url).telegram.lease_seconds)
    parts = stages(path, [trip for block in blocks["svarbot"] for trip in block.trips], lease)
    print(textwrap.fill("svarbot's round trip by stage (median ms): " + ", ".join(
        f"{name} {_ms(statistics.median(values))}" for name, values in parts.items()),
        width=78, initial_indent="  ", subsequent_indent="    "))


if __name__ == "__main__":
    main()
