"""The leader killed in the middle of a wave, on PostgreSQL: the wave still goes out once.

Two `svarbot run` processes share one PostgreSQL database with a plan whose invitation time
has passed. The leader (the process holding the advisory lock, named in pg_stat_activity)
runs the clock, which queues the wave; both processes send. Once the sink has seen part of the
wave, the leader is killed with SIGKILL. The other process must take over the clock within
seconds, and every invitation must be delivered, each queued exactly once; the only duplicates
allowed are re-sends of rows the dead process had in flight, with the same Message-ID.
"""

from __future__ import annotations

import datetime as dt
import email
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from email.policy import compat32
from pathlib import Path
from zoneinfo import ZoneInfo

from smtp_servers import SmtpSink
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT, bulk_people

from storage.db import session_factory, transaction
from storage.migrate import init_database, open_database
from storage.schema import Invitation, InvitationStatus, OutboxMessage, OutboxStatus

pytest_plugins = ["storage_backends"]  # the PostgreSQL fixtures

SURVEY = "virksomhetsleder-2020"
INVITATIONS = 600
OSLO = ZoneInfo("Europe/Oslo")


def _config(tmp_path: Path, url: str, sink: SmtpSink) -> Path:
    now = dt.datetime.now(OSLO)
    invite = (now - dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    close = (now + dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    config = tmp_path / "config.yaml"
    config.write_text(f"""\
database:
  url: '{url}'
surveys:
  - id: {SURVEY}
    questionnaire: {SURVEY}
    plan:
      invite: "{invite}"
      reminders: {{after_days: [7], max: 1, min_gap_days: 1}}
      close: "{close}"
      window:
        weekdays: [mon, tue, wed, thu, fri, sat, sun]
        hours: "00:00-23:59"
        holidays: null
email:
  smtp:
    port: {sink.port}
    per_minute: 1000000
    per_day: 1000000
    connections: 3
logging:
  level: WARNING
""", encoding="utf-8")
    return config


def _wait(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def _leader_pid(url: str) -> int | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            names = connection.execute(text(
                "SELECT application_name FROM pg_stat_activity "
                "WHERE application_name LIKE 'svarbot-leader %'")).scalars().all()
    finally:
        engine.dispose()
    pids = [int(name.rsplit(":", 1)[1]) for name in names if ":" in name]
    return pids[0] if len(pids) == 1 else None


def _count_sent(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status == OutboxStatus.SENT)) or 0)


def test_the_wave_goes_out_once_when_the_leader_is_killed(
        sink: SmtpSink, postgres_database: str, tmp_path: Path) -> None:
    url = postgres_database
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    bulk_people(factory, SURVEY, INVITATIONS)
    config = _config(tmp_path, url, sink)
    env = {**os.environ, "SVARBOT_LINK_KEY": TEST_KEY_TEXT}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    first = start()
    processes = [first]
    try:
        _wait("a leader", lambda: _leader_pid(url) == first.pid, 30)
        second = start()
        processes.append(second)
        _wait("part of the wave at the sink", lambda: sink.count >= INVITATIONS // 4, 60)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
        # The survivor takes the lock, and with it the clock.
        _wait("the other process leads", lambda: _leader_pid(url) == second.pid, 20)
        # The dead process's claimed rows come back when their lease ends; play that now.
        with transaction(factory) as session:
            in_flight = len(session.scalars(
                update(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.SENDING,
                       OutboxMessage.claimed_by == f"{socket.gethostname()}:{first.pid}")
                .values(next_attempt_at=dt.datetime.now(dt.UTC))
                .returning(OutboxMessage.id)).all())
        _wait("every invitation sent", lambda: _count_sent(factory) == INVITATIONS, 90)
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=30)
        assert second.returncode == 0, output.decode(errors="replace")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)

    with factory() as session:
        rows = session.execute(select(OutboxMessage.recipient, OutboxMessage.message_id,
                                      OutboxMessage.idempotency_key)).all()
        statuses = set(session.scalars(select(Invitation.status)))
    engine.dispose()
    assert len(rows) == INVITATIONS  # each invitation queued exactly once
    assert statuses == {InvitationStatus.INVITED}
    expected = {recipient: message_id for recipient, message_id, _key in rows}
    copies: dict[str, list[str]] = defaultdict(list)
    for message in sink.messages:
        headers = email.message_from_bytes(message.data, policy=compat32)
        (recipient,) = message.rcpt_tos
        copies[recipient].append(str(headers["Message-ID"]).strip())
    assert set(copies) == set(expected)  # everyone got the invitation
    duplicates = sum(len(ids) - 1 for ids in copies.values())
    assert duplicates <= in_flight, (duplicates, in_flight)
    for recipient, ids in copies.items():
        assert set(ids) == {expected[recipient]}, recipient  # a re-send, never a new message
