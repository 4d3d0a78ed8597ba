"""The campaign clock: ticks at start-up, catches up once, never bursts, survives failures.

Most tests use an idempotent stand-in for `campaign.due_invitations`: it "sends" every wave
row whose time has come into a table with a unique key, on a real PostgreSQL database, and
returns how many it sent. The first test runs the real campaign jobs, on both backends.
Times given to the jobs come from a clock the test moves, so a downtime of hours takes no time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, select, text
from storage_support import TEST_KEY_TEXT, add_people

from bot.campaign.scheduler import DEFAULT_INTERVALS, JOB_IDS, CampaignClock, Tick, campaign_ticks
from bot.config import PlanSettings, ReminderSettings, Settings, SurveySettings
from bot.conversation.outgoing import SurveyContext
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.migrate import init_database, open_database
from storage.schema import OutboxMessage

pytest_plugins = ["storage_backends"]

T0 = dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def wave_db(postgres_database: str) -> Iterator[Engine]:
    engine = create_engine(postgres_database)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE wave (invitation_id int PRIMARY KEY, invite_at timestamptz NOT NULL)")
        connection.exec_driver_sql(
            "CREATE TABLE sent (invitation_id int PRIMARY KEY, sent_at timestamptz NOT NULL)")
    yield engine
    engine.dispose()


def add_wave(engine: Engine, times: list[dt.datetime]) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO wave VALUES (:i, :t)"),
                           [{"i": i, "t": t} for i, t in enumerate(times, 1)])


def sent_ids(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.scalars(text("SELECT invitation_id FROM sent ORDER BY 1")))


class SendDue:
    """Sends what is due and not yet sent, like `due_invitations`; records each run."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.results: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, *, now: dt.datetime) -> int:
        with self.engine.begin() as connection:
            sent = len(connection.execute(text(
                "INSERT INTO sent SELECT invitation_id, :now FROM wave WHERE invite_at <= :now "
                "ON CONFLICT DO NOTHING RETURNING invitation_id"), {"now": now}).all())
        with self.lock:
            self.results.append(sent)
        return sent


class Recorder:
    """A job that notes when each run started and how many ran at once."""

    def __init__(self, block_seconds: float = 0.0, fail_first: int = 0) -> None:
        self.starts: list[float] = []
        self.block_seconds = block_seconds
        self.fail_first = fail_first
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()

    def __call__(self, *, now: dt.datetime) -> None:
        with self.lock:
            self.starts.append(time.monotonic())
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            calls = len(self.starts)
        try:
            time.sleep(self.block_seconds)  # a long database job, in its thread
            if calls <= self.fail_first:
                raise RuntimeError("the database is away")
        finally:
            with self.lock:
                self.active -= 1

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.starts)


async def wake_until(clocks: list[CampaignClock], condition: Callable[[], bool],
                     within: float = 5.0) -> None:
    """Wake the wave job until `condition` holds. A wake that lands while a clock still counts
    its previous run as running is skipped (max_instances=1), so wake again until it ran."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        for c in clocks:
            c.wake("due-invitations")
        await asyncio.sleep(0.1)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


class MovableNow:
    def __init__(self, value: dt.datetime) -> None:
        self.value = value

    def __call__(self) -> dt.datetime:
        return self.value


def test_the_real_wave_missed_during_downtime_goes_once_even_with_two_clocks(
        postgres_database: str) -> None:
    survey = "virksomhetsleder-2020"
    oslo = ZoneInfo("Europe/Oslo")
    # Invitation Monday 14 October 2019 09:00 Oslo time (07:00 UTC).
    plan = PlanSettings(invite="2019-10-14 09:00", close="2019-11-08 16:00",  # type: ignore[arg-type]
                        reminders=ReminderSettings(after_days=(7, 14), max=2, min_gap_days=5))
    settings = Settings(surveys=(SurveySettings(id=survey, questionnaire=survey, plan=plan),))
    init_database(postgres_database)
    engine = open_database(postgres_database)
    factory = session_factory(engine)
    with transaction(factory) as session:
        add_people(session, survey, 6)
    contexts = {survey: SurveyContext(settings=settings.surveys[0],
                                      questionnaire=load_shipped(survey))}
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    hourly = dict.fromkeys(JOB_IDS, 3600.0)  # only start-up ticks and wake() run the jobs
    runs: list[str] = []

    def counted(tick: Tick) -> Tick:
        def body(*, now: dt.datetime) -> object:
            try:
                return tick.body(now=now)
            finally:
                runs.append(tick.id)
        return Tick(tick.id, body, tick.seconds)

    ticks = [counted(t) for t in campaign_ticks(factory, settings, contexts, store,
                                                intervals=hourly)]
    now = MovableNow(dt.datetime(2019, 10, 14, 8, 0, tzinfo=oslo).astimezone(dt.UTC))
    queued: list[tuple[str, object]] = []

    def keys() -> list[str]:
        with factory() as session:
            return list(session.scalars(select(OutboxMessage.idempotency_key)))

    def clock() -> CampaignClock:
        return CampaignClock(ticks, now=now, after=lambda job, n: queued.append((job, n)))

    async def scenario() -> None:
        before = clock()
        before.start()
        await until(lambda: sorted(runs) == sorted(JOB_IDS))  # the start-up ticks
        await before.stop()
        assert keys() == []  # nothing is due at 08:00
        now.value = dt.datetime(2019, 10, 14, 11, 0, tzinfo=oslo).astimezone(dt.UTC)
        clocks = [clock(), clock()]  # restarted after the wave's start, twice by mistake
        for c in clocks:
            c.start()
        await until(lambda: len(keys()) == 6)
        await until(lambda: len(runs) == 12)
        await wake_until(clocks, lambda: runs.count("due-invitations") >= 5)
        for c in clocks:
            await c.stop()

    try:
        asyncio.run(scenario())
        assert sorted(keys()) == sorted(f"invitation:{i}" for i in range(1, 7))
    finally:
        engine.dispose()
    # Every run that queued something said so (and woke the sender); together: the wave, once.
    assert sum(n for job, n in queued if job == "due-invitations" and isinstance(n, int)) == 6


def test_a_wave_whose_start_passed_during_downtime_is_sent_once_at_start_up(
        wave_db: Engine) -> None:
    add_wave(wave_db, [T0 + dt.timedelta(hours=1)] * 5)  # the wave starts at 09:00
    now = MovableNow(T0)
    job = SendDue(wave_db)

    async def scenario() -> None:
        # Ticks an hour apart: only the start-up tick can send anything in this test.
        before = CampaignClock([Tick("due-invitations", job, 3600)], now=now)
        before.start()
        await until(lambda: len(job.results) == 1)
        await before.stop()
        now.value = T0 + dt.timedelta(hours=3)  # down from 08:00 to 11:00, over the wave
        after = CampaignClock([Tick("due-invitations", job, 3600)], now=now)
        after.start()
        await until(lambda: len(job.results) == 2)
        # Another tick: nothing left to send.
        await wake_until([after], lambda: len(job.results) >= 3)
        await after.stop()

    asyncio.run(scenario())
    assert job.results[:2] == [0, 5]
    assert set(job.results[2:]) == {0}
    assert sent_ids(wave_db) == [1, 2, 3, 4, 5]


def test_two_clocks_by_mistake_send_nothing_twice(wave_db: Engine) -> None:
    start = dt.datetime.now(dt.UTC)
    add_wave(wave_db, [start + dt.timedelta(milliseconds=10 * i) for i in range(60)])
    jobs = [SendDue(wave_db), SendDue(wave_db)]

    async def scenario() -> None:
        clocks = [CampaignClock([Tick("due-invitations", job, 0.05)]) for job in jobs]
        for clock in clocks:
            clock.start()
        await until(lambda: len(sent_ids(wave_db)) == 60 and min(
            len(j.results) for j in jobs) >= 5)
        for clock in clocks:
            await clock.stop()

    asyncio.run(scenario())
    assert all(len(job.results) >= 5 for job in jobs)  # both really ran, over the whole wave
    assert sum(sum(job.results) for job in jobs) == 60
    assert sent_ids(wave_db) == list(range(1, 61))


def test_a_job_busy_longer_than_its_interval_is_not_stacked_and_the_loop_stays_free() -> None:
    slow = Recorder(block_seconds=0.3)
    lags: list[float] = []

    async def heartbeat(stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    async def scenario() -> None:
        stop = asyncio.Event()
        beat = asyncio.create_task(heartbeat(stop))
        clock = CampaignClock([Tick("slow", slow, 0.1)])
        clock.start()
        await until(lambda: slow.calls >= 3)
        await clock.stop()
        stop.set()
        await beat

    started = time.monotonic()
    asyncio.run(scenario())
    elapsed = time.monotonic() - started
    assert slow.most_active == 1
    gaps = [b - a for a, b in zip(slow.starts, slow.starts[1:], strict=False)]
    assert min(gaps) >= 0.28, gaps  # the next run waits for the busy one; no catch-up burst
    assert elapsed < 1.5
    assert max(lags) < 0.1  # sender and listener would have been served meanwhile


def test_a_stalled_loop_catches_up_once_even_past_a_one_second_grace() -> None:
    fast = Recorder()  # every 0.1 s: the stall misses ~25 ticks
    slow = Recorder()  # every 1.5 s: its tick at 1.5 s is 1.25 s late when the stall ends

    async def scenario() -> float:
        clock = CampaignClock([Tick("fast", fast, 0.1), Tick("slow", slow, 1.5)])
        started = time.monotonic()
        clock.start()
        await until(lambda: fast.calls >= 2 and slow.calls == 1)
        # The loop is blocked, e.g. by a synchronous call where there should be none, until
        # 2.75 s: past the slow job's tick at 1.5 s by more than 1 s, before the one at 3.0 s.
        time.sleep(started + 2.75 - time.monotonic())  # noqa: ASYNC251
        resumed = time.monotonic()
        await asyncio.sleep(0.2)
        await clock.stop()
        return resumed

    resumed = asyncio.run(scenario())
    after_stall = [t for t in fast.starts if t >= resumed]
    burst = [t for t in after_stall if t < resumed + 0.05]
    assert len(burst) == 1, after_stall  # coalesced: one catch-up run, not thirty
    assert len(after_stall) <= 5
    # The slow job's missed tick still ran right after the stall (APScheduler's default
    # grace of 1 s would have dropped it and waited for the next tick at 3.0 s).
    assert resumed <= slow.starts[1] < resumed + 0.2


def test_a_failing_job_is_logged_and_ticks_again(caplog: pytest.LogCaptureFixture) -> None:
    failing = Recorder(fail_first=2)
    other = Recorder()

    async def scenario() -> None:
        clock = CampaignClock([Tick("failing", failing, 0.05), Tick("other", other, 0.05)])
        clock.start()
        await until(lambda: failing.calls >= 4 and other.calls >= 4)
        await clock.stop()

    with caplog.at_level(logging.ERROR, logger="bot.campaign.scheduler"):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if "campaign job failing failed" in r.getMessage()]
    assert len(failures) == 2
    assert failures[0].exc_info is not None


def test_start_up_runs_every_job_once_and_stop_lets_a_running_job_finish() -> None:
    quick = Recorder()
    long = Recorder(block_seconds=0.3)

    async def scenario() -> None:
        clock = CampaignClock([Tick("quick", quick, 3600), Tick("long", long, 3600)])
        clock.start()
        await until(lambda: quick.calls == 1 and long.calls == 1)
        await clock.stop()
        assert long.active == 0  # stop() waited for it
        assert not clock.running

    asyncio.run(scenario())


def test_after_is_told_when_a_job_did_something(wave_db: Engine) -> None:
    add_wave(wave_db, [T0])
    job = SendDue(wave_db)
    told: list[tuple[str, object]] = []

    async def scenario() -> None:
        clock = CampaignClock([Tick("due-invitations", job, 3600)], now=lambda: T0,
                              after=lambda job_id, result: told.append((job_id, result)))
        clock.start()
        await until(lambda: len(job.results) == 1)
        await wake_until([clock], lambda: len(job.results) >= 2)
        await clock.stop()

    asyncio.run(scenario())
    assert told == [("due-invitations", 1)]  # the empty second run wakes nobody


def test_the_clock_starts_only_inside_a_running_loop() -> None:
    clock = CampaignClock([Tick("x", Recorder(), 1)])
    with pytest.raises(RuntimeError):
        clock.start()


def test_job_ids_are_fixed_and_unique() -> None:
    assert set(DEFAULT_INTERVALS) == set(JOB_IDS)
    with pytest.raises(ValueError, match="duplicate"):
        CampaignClock([Tick("x", Recorder(), 1), Tick("x", Recorder(), 2)])
