"""Crash safety: `svarbot run` killed with SIGKILL at random points, restarted until done.

(a) Sending. 2,000 invitations queued by `svarbot invite` are sent to an aiosmtpd sink that
lives in the test process (so it survives every kill). The process is killed three times
once the sink has seen a seeded random number of messages. Every invitation must arrive, and
the only duplicates allowed are re-sends of rows that were in flight at a kill: rows still
`sending` when the process died (claimed, maybe sent, result not yet committed). Each of them
comes back after its lease; `svarbot run` has no lease setting yet, so the test plays the
expired lease by moving those rows' `next_attempt_at` (the lease end) to now before the
restart. A duplicate must carry the Message-ID of its first copy (the row's own), i.e. it is
the same message sent again, never a new one.

(b) Answering. 300 replies wait in the inbox; `svarbot run` is killed three times while it
works them off. Each reply must be processed exactly once, queue exactly one page, and the
anonymised answers must equal those of a clean, uninterrupted run over a copy of the same
database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from email.policy import compat32
from pathlib import Path

import pytest
from smtp_servers import SmtpSink
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, bulk_people, expire_leases

from bot.channels.email.channel import EmailChannel
from bot.channels.email.clients import compose_reply
from bot.channels.email.smtp import Sender
from bot.config import Settings
from bot.conversation.dispatch import Dispatcher
from bot.conversation.outgoing import SurveyContext, queue_invitations
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.inbox import message_id_of, store_inbound
from storage.migrate import init_database, open_database
from storage.schema import (
    AnswerCount,
    InboxEvent,
    InboxMessage,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    Response,
)

SURVEY = "virksomhetsleder-2020"
SEED = 20200302
KILLS = 3
#: Sized so that both tests together take about a minute on two cores.
INVITATIONS = 2000
REPLIES = 300
CONNECTIONS = 3
#: The sender's claim size with `connections: 3` (25 per connection, at least 50).
BATCH = 75


def _config(tmp_path: Path, url: str, sink: SmtpSink) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: '{url}'\n"
        f"surveys:\n  - id: {SURVEY}\n    questionnaire: {SURVEY}\n"
        f"email:\n  smtp:\n    port: {sink.port}\n    per_minute: 1000000\n"
        f"    per_day: 1000000\n    connections: {CONNECTIONS}\n"
        f"logging:\n  level: WARNING\n", encoding="utf-8")
    return config


def _env() -> dict[str, str]:
    return {**os.environ, "SVARBOT_LINK_KEY": TEST_KEY_TEXT}


def _svarbot(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bot", *args, "--config", str(config)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait(what: str, done: Callable[[], bool], timeout: float,
          process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `done` until true; fail after `timeout` s, or when `process` exits first."""
    deadline = time.monotonic() + timeout
    while not done():
        if process is not None and process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise AssertionError(f"svarbot exited ({process.returncode}) before {what}: "
                                 f"{output[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output.decode(errors="replace")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    engine = open_database(url)
    yield url, session_factory(engine)
    engine.dispose()


def _count(factory: sessionmaker[Session], query: object) -> int:
    with factory() as session:
        return int(session.scalar(query) or 0)  # type: ignore[call-overload]


# --- (a) sending ----------------------------------------------------------------------------


def test_a_killed_sender_delivers_everything_and_resends_only_identical_messages(
        sink: SmtpSink, database: tuple[str, sessionmaker[Session]], tmp_path: Path) -> None:
    total = INVITATIONS
    url, factory = database
    bulk_people(factory, SURVEY, total)
    config = _config(tmp_path, url, sink)
    invite = subprocess.run([sys.executable, "-m", "bot", "invite", SURVEY, "--config",
                             str(config)], env=_env(), capture_output=True, check=False,
                            timeout=120)
    assert invite.returncode == 0, invite.stderr.decode(errors="replace")
    assert invite.stdout.decode().strip() == f"{total} invitations queued for {SURVEY}"

    rng = random.Random(SEED)
    thresholds = sorted(rng.sample(range(150, total - 150), KILLS))
    in_flight: list[int] = []
    sent_count = _count_sent(factory)
    for threshold in thresholds:
        process = _svarbot(config, "run")
        _wait(f"{threshold} messages at the sink", lambda t=threshold: sink.count >= t, 60,
              process)
        _kill(process)
        in_flight.append(expire_leases(factory, f"{socket.gethostname()}:{process.pid}"))
        assert _count_sent(factory) >= sent_count  # recorded results are never lost
        sent_count = _count_sent(factory)
    process = _svarbot(config, "run")
    _wait("every invitation sent", lambda: _count_sent(factory) == total, 60, process)
    _stop(process)

    with factory() as session:
        expected = dict(session.execute(select(OutboxMessage.recipient,
                                               OutboxMessage.message_id)).all())
    copies: dict[str, list[str]] = defaultdict(list)
    for message in sink.messages:
        headers = email.message_from_bytes(message.data, policy=compat32)
        (recipient,) = message.rcpt_tos
        copies[recipient].append(str(headers["Message-ID"]).strip())
    assert set(copies) == set(expected)  # every invitation delivered at least once
    duplicates = sum(len(ids) - 1 for ids in copies.values())
    # Only a row in flight at a kill (still `sending`, claimed by the killed process) can be
    # sent twice. The sender claims a batch when at most half a batch is left, so it holds
    # at most 1.5 batches queued, plus one per connection being sent, plus the results of
    # the messages sent while the last claim's transaction ran (at most the queue it had):
    # under 2 batches + connections per kill.
    bound = 2 * BATCH + CONNECTIONS
    assert all(n <= bound for n in in_flight), in_flight
    assert duplicates <= sum(in_flight) <= KILLS * bound, (duplicates, in_flight)
    for recipient, ids in copies.items():  # a duplicate is the same message again
        assert set(ids) == {expected[recipient]}, recipient
    print(f"\nsender: {len(sink.messages)} messages for {total} invitations, {duplicates} "
          f"duplicates; rows in flight at the {KILLS} kills: {in_flight}")


def _count_sent(factory: sessionmaker[Session]) -> int:
    return _count(factory, select(func.count()).select_from(OutboxMessage)
                  .where(OutboxMessage.status == OutboxStatus.SENT))


# --- (b) answering --------------------------------------------------------------------------


def _replies(factory: sessionmaker[Session], sink: SmtpSink, count: int) -> None:
    """`count` invitations sent to the sink, and a reply to each stored in the inbox."""
    settings = Settings.model_validate({
        "surveys": [{"id": SURVEY, "questionnaire": SURVEY}],
        "email": {"smtp": {"port": sink.port, "per_minute": 1_000_000,
                                    "connections": CONNECTIONS}}})
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    context = SurveyContext(settings=settings.surveys[0], questionnaire=load_shipped(SURVEY))
    bulk_people(factory, SURVEY, count)
    with transaction(factory) as session:
        queue_invitations(session, EmailChannel(settings), context, store,
                          now=dt.datetime.now(dt.UTC))
    sender = Sender(session_factory=factory, settings=settings, worker="setup",
                    batch_size=count)

    async def send() -> None:
        try:
            await sender.send_batch()
        finally:
            await sender.close()

    asyncio.run(send())
    sink.wait_for(count, timeout=30)
    rng = random.Random(SEED)
    sectors = ["helse", "kultur", "oppvekst", "teknisk"]
    now = dt.datetime.now(dt.UTC)
    with transaction(factory) as session:
        for i, message in enumerate(sink.messages):
            (recipient,) = message.rcpt_tos
            answer = f"1: {rng.choice(sectors)}\n3: {rng.randrange(1, 400)}"
            raw = compose_reply(message.data, answer, style=rng.choice(
                ["outlook_nb", "gmail_nb", "iphone_nb"]), from_address=recipient,
                from_name="Leder", now=now)
            assert store_inbound(session, channel="email", external_id=f"reply-{i}", raw=raw,
                                 message_id=message_id_of(raw), now=now) is not None


def _copy(url: str, target: Path) -> str:
    """A consistent copy of the SQLite database (the backup API copies the WAL's state too)."""
    source = sqlite3.connect(url.removeprefix("sqlite:///"))
    destination = sqlite3.connect(target)
    try:
        source.backup(destination)
    finally:
        source.close()
        destination.close()
    return f"sqlite:///{target}"


def _answer_state(url: str) -> tuple[int, list[tuple[object, ...]]]:
    """(responses, every answer_counts row): what the report would be made of."""
    engine = open_database(url)
    try:
        with session_factory(engine)() as session:
            responses = session.scalar(select(func.count()).select_from(Response)) or 0
            counts = sorted(tuple(row) for row in session.execute(select(
                AnswerCount.answer_id, AnswerCount.value_key, AnswerCount.respondent_type,
                AnswerCount.sector, AnswerCount.landsdel, AnswerCount.size_class,
                AnswerCount.completed, AnswerCount.n)))
    finally:
        engine.dispose()
    return int(responses), counts


def _clean_run(url: str) -> tuple[int, list[tuple[object, ...]]]:
    """The same inbox worked off without interruption, in this process."""
    engine = open_database(url)
    settings = Settings.model_validate({"surveys": [{"id": SURVEY, "questionnaire": SURVEY}]})
    dispatcher = Dispatcher(
        session_factory=session_factory(engine), settings=settings,
        store=AnswerStore(LinkKey(TEST_KEY_TEXT.encode())),
        surveys={SURVEY: SurveyContext(settings=settings.surveys[0],
                                       questionnaire=load_shipped(SURVEY))})
    try:
        dispatcher.drain()
    finally:
        engine.dispose()
    return _answer_state(url)


def test_a_killed_dispatcher_handles_every_reply_exactly_once(
        sink: SmtpSink, database: tuple[str, sessionmaker[Session]], tmp_path: Path) -> None:
    total = REPLIES
    url, factory = database
    _replies(factory, sink, total)
    clean = _clean_run(_copy(url, tmp_path / "clean.db"))
    assert clean[0] == total
    config = _config(tmp_path, url, sink)

    def processed() -> int:
        return _count(factory, select(func.count()).select_from(InboxMessage)
                      .where(InboxMessage.status != InboxStatus.RECEIVED))

    rng = random.Random(SEED + 1)
    thresholds = sorted(rng.sample(range(20, total - 20), KILLS))
    for threshold in thresholds:
        process = _svarbot(config, "run")
        _wait(f"{threshold} replies processed", lambda t=threshold: processed() >= t, 60,
              process)
        _kill(process)
    process = _svarbot(config, "run")
    _wait("the inbox worked off", lambda: processed() == total, 60, process)
    _stop(process)

    with factory() as session:
        statuses = Counter(session.scalars(select(InboxMessage.status)))
        assert statuses == {InboxStatus.PROCESSED: total}
        done = Counter(session.scalars(select(InboxEvent.inbox_id)
                                       .where(InboxEvent.status == "processed")))
        ids = set(session.scalars(select(InboxMessage.id)))
        assert set(done) == ids
        assert set(done.values()) == {1}  # processed exactly once
        pages = Counter(session.scalars(select(OutboxMessage.idempotency_key)
                                        .where(OutboxMessage.idempotency_key.like("reply:%"))))
        assert set(pages) == {f"reply:{i}" for i in ids}  # one page per reply
    assert _answer_state(url) == clean
