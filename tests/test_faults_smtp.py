"""SMTP faults against real servers on loopback: no outbox row is ever left in `sending`.

The server is `tests/fault_servers.FaultSmtpServer`, a raw asyncio SMTP server that misbehaves
on purpose: it answers one byte a second (a tarpit), hangs up in the middle of DATA, never
answers the final dot, greets with 421, sends garbage where the TLS handshake should be, or
accepts the connection and never says a word. The real outbox worker and SMTP transport
(`bot.channels.email.smtp.Sender.run`) deliver a small outbox through it; the first
connections get the fault, later ones a working server (except for TLS, where every
connection fails: our settings demand STARTTLS, and the working server has no certificate).

For each fault: every row ends `sent`, `retry` or `dead` (a row whose own deadline has
passed dies at its first failure); none is left `sending`; the reason in the row's history
and in the log says what happened; nothing reached the server twice; and the whole run takes
far less than a lease, so a stuck attempt cannot outlive its claim.

The last test does it with real processes: `svarbot run` is killed with SIGKILL while its
messages sit in a tarpit, and the next `svarbot run` takes them over when their lease (10 s,
the shortest `email.smtp.lease_seconds`) runs out, in real time (no lease is expired by hand
here), and sends each of them once.

Each test prints what it injected and what it counted (run with -s to see it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from fault_servers import FaultSmtpServer, Mode, queue_wave
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT

from bot.channels.email.smtp import Sender
from bot.config import Settings
from storage import outbox
from storage.db import session_factory, transaction
from storage.migrate import init_database, open_database
from storage.outbox import Claimed
from storage.schema import OutboxEvent, OutboxMessage, OutboxStatus

ROWS = 8
CONNECTIONS = 2
#: Short, so that a stuck attempt shows at once: the deadline is 80 % of it.
LEASE = timedelta(seconds=3)
FINAL = {"sent", "retry", "dead"}


@dataclass(frozen=True)
class Fault:
    """One fault: what the server does, on how many connections, and what we must log."""

    mode: Mode
    #: Connections that get the fault before the server works (None: every one).
    first: int | None
    reason: str
    smtp: tuple[tuple[str, object], ...] = ()


FAULTS = {
    # The per-operation timeout (60 s) never fires: each reply comes within it. The attempt's
    # deadline does.
    "tarpit": Fault("tarpit", CONNECTIONS, "deadline: no result within",
                    (("timeout", 60.0),)),
    "drop_in_data": Fault("drop_in_data", CONNECTIONS,
                          "connection: lost (SMTPServerDisconnected)"),
    "stall_in_data": Fault("stall_in_data", CONNECTIONS,
                           "connection: no answer within 1 s (SMTPReadTimeoutError)"),
    "greet_421": Fault("greet_421", CONNECTIONS, "connect: 421 4.3.2"),
    "tls_garbage": Fault("tls_garbage", None, "connect: TLS handshake failed",
                         (("start_tls", True),)),
    "silent": Fault("silent", CONNECTIONS, "connect: no answer within 1 s"),
}


def _render(item: Claimed) -> tuple[EmailMessage, list[str]]:
    message = EmailMessage()
    message["From"] = "Svarbot <svar@svarbot.localhost>"
    message["To"] = item.recipient
    message["Subject"] = f"Spørsmål {item.id}"
    message["Message-ID"] = item.message_id or f"<{item.id}@x>"
    message.set_content(f"Hei {item.id}\n" + "Ei linje til.\n" * 40)
    return message, [item.recipient]


def _queue(factory: sessionmaker[Session], now: datetime) -> list[int]:
    """`ROWS` pages; the first may not outlive its first failure (its deadline has passed)."""
    ids = []
    with transaction(factory) as session:
        for n in range(ROWS):
            row = outbox.enqueue(session, idempotency_key=f"fault{n}", channel="email",
                                 kind="page", recipient=f"p{n}@example.org", payload={"n": n},
                                 message_id=f"<fault{n}@svarbot.localhost>", now=now,
                                 deadline=now if n == 0 else None)
            assert row is not None
            ids.append(row.id)
    return ids


def _statuses(factory: sessionmaker[Session]) -> dict[int, str]:
    with factory() as session:
        return {i: str(s) for i, s in session.execute(
            select(OutboxMessage.id, OutboxMessage.status))}


def _last_reasons(factory: sessionmaker[Session]) -> dict[int, str]:
    with factory() as session:
        return {e.outbox_id: e.detail for e in session.scalars(
            select(OutboxEvent).order_by(OutboxEvent.id))}


def _ignored(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxEvent)
                                  .where(OutboxEvent.status == "ignored")) or 0)


async def _run_until_settled(sender: Sender, factory: sessionmaker[Session],
                             within: float) -> float:
    """`sender.run` until every row is final or waiting for a retry; seconds it took."""
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(sender.run(stop))
    try:
        while set((await asyncio.to_thread(_statuses, factory)).values()) - FINAL:
            if time.monotonic() - started > within:
                raise AssertionError(f"rows not settled within {within} s: "
                                     f"{_statuses(factory)}")
            if task.done():
                task.result()
            await asyncio.sleep(0.05)  # poll the database until every row has its outcome
        return time.monotonic() - started
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


@pytest.mark.parametrize("name", list(FAULTS))
def test_an_smtp_fault_leaves_every_row_sent_retried_or_dead(
        name: str, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    fault = FAULTS[name]
    now = datetime.now(UTC)
    ids = _queue(factory, now)
    with FaultSmtpServer() as server:
        server.set(fault.mode, first=fault.first or 0)
        settings = Settings.model_validate({"email": {"smtp": {
            "host": server.host, "port": server.port, "connections": CONNECTIONS,
            "timeout": 1, "per_minute": 1000, **dict(fault.smtp)}}})
        sender = Sender(session_factory=factory, settings=settings, worker="faults",
                        render=_render, lease=LEASE)
        with caplog.at_level(logging.INFO, logger="bot.channels"):
            elapsed = asyncio.run(_run_until_settled(sender, factory, within=20))
        injected = dict(server.injected)
        received = server.message_ids()
    statuses = _statuses(factory)
    counted = Counter(statuses.values())
    reasons = _last_reasons(factory)
    failed = sorted(i for i, s in statuses.items() if s != "sent")
    duplicates = sum(n - 1 for n in received.values())
    logged = [r.getMessage() for r in caplog.records]
    summary = (f"SMTP {name}: injected {fault.mode} on {injected.get(fault.mode, 0)} of "
               f"{server.connections} connections; {len(ids)} rows -> sent "
               f"{counted['sent']}, retry {counted['retry']}, dead {counted['dead']}, "
               f"sending {counted['sending']}, queued {counted['queued']}; accepted "
               f"{sum(received.values())}, duplicates {duplicates}; settled in {elapsed:.1f} s; "
               f"reason {reasons[failed[0]] if failed else '-'!r}")
    print(f"\n{summary}")

    assert set(counted) <= FINAL, summary
    assert counted["dead"] == 1, summary
    assert statuses[ids[0]] == "dead", summary
    expected_sent = 0 if fault.first is None else ROWS - CONNECTIONS
    assert counted["sent"] == expected_sent, summary
    assert counted["retry"] == ROWS - expected_sent - 1, summary
    assert duplicates == 0, summary
    assert received.keys() == {f"<fault{i - ids[0]}@svarbot.localhost>" for i, s
                               in statuses.items() if s == "sent"}, summary
    for outbox_id in failed:
        assert fault.reason in reasons[outbox_id], (outbox_id, reasons[outbox_id], summary)
        # The log says why, naming the message by its id only.
        assert any(f"outbox {outbox_id}: " in line and fault.reason in line
                   for line in logged), (outbox_id, logged)
    assert "gave up after 1 attempts" in reasons[ids[0]], summary
    assert _ignored(factory) == 0, summary  # no result came after its lease was taken over
    assert elapsed < 2 * LEASE.total_seconds() + 1, summary
    assert all("@" not in line for line in logged)


# --- with real processes --------------------------------------------------------------------

SURVEY = "virksomhetsleder-2020"
INVITATIONS = 6
PROCESS_LEASE = 10


def _config(tmp_path: Path, url: str, server: FaultSmtpServer) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: '{url}'\n"
        f"surveys:\n  - id: {SURVEY}\n    questionnaire: {SURVEY}\n"
        f"email:\n  smtp:\n    port: {server.port}\n    per_minute: 1000000\n"
        f"    per_day: 1000000\n    connections: {CONNECTIONS}\n    timeout: 60\n"
        f"    lease_seconds: {PROCESS_LEASE}\n"
        f"logging:\n  level: INFO\n", encoding="utf-8")
    return config


def _svarbot(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config)],
                                env={**os.environ, "SVARBOT_LINK_KEY": TEST_KEY_TEXT},
                                stdout=out, stderr=subprocess.STDOUT)


def _wait(what: str, done: Callable[[], bool], timeout: float,
          process: subprocess.Popen[bytes] | None = None) -> float:
    started = time.monotonic()
    while not done():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"svarbot exited ({process.returncode}) before {what}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)  # poll until the condition holds
    return time.monotonic() - started


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    engine = open_database(url)
    yield url, session_factory(engine)
    engine.dispose()


def _rows(factory: sessionmaker[Session]) -> list[OutboxMessage]:
    with factory() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_a_killed_run_in_a_tarpit_loses_its_rows_only_until_the_lease_ends(
        database: tuple[str, sessionmaker[Session]], tmp_path: Path) -> None:
    url, factory = database
    queue_wave(factory, SURVEY, INVITATIONS)
    log = tmp_path / "svarbot.log"
    processes: list[subprocess.Popen[bytes]] = []
    with FaultSmtpServer(mode="tarpit") as server:
        config = _config(tmp_path, url, server)
        try:
            first = _svarbot(config, log)
            processes.append(first)
            _wait("both connections in the tarpit",
                  lambda: server.injected["tarpit"] == CONNECTIONS, 30, first)
            held = [r.id for r in _rows(factory) if r.status == OutboxStatus.SENDING]
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed = time.monotonic()
            server.set("ok")
            second = _svarbot(config, log)
            processes.append(second)
            _wait("the dead run's rows sent", lambda: {
                r.status for r in _rows(factory)} == {OutboxStatus.SENT}, PROCESS_LEASE * 3,
                second)
            settled = time.monotonic() - killed
            second.send_signal(signal.SIGTERM)
            second.wait(20)
            assert second.returncode == 0
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(10)
        injected = dict(server.injected)
        received = server.message_ids()
    rows = _rows(factory)
    counted = Counter(str(r.status) for r in rows)
    output = log.read_text(errors="replace")
    duplicates = sum(n - 1 for n in received.values())
    summary = (f"svarbot run in a tarpit: injected tarpit on {injected.get('tarpit', 0)} of "
               f"{server.connections} connections and SIGKILL with {len(held)} rows sending; "
               f"the next run took them over and sent them {settled:.1f} s after the kill "
               f"(lease {PROCESS_LEASE} s): sent {counted['sent']}, retry {counted['retry']}, "
               f"sending {counted['sending']}; accepted {sum(received.values())}, duplicates "
               f"{duplicates}")
    print(f"\n{summary}")
    assert len(held) == INVITATIONS, summary  # one claim took the whole wave
    assert counted == {"sent": INVITATIONS}, summary
    assert duplicates == 0, summary
    assert set(received) == {r.message_id for r in rows}, summary
    # Taken over once the lease had run out (it began a moment before the kill), not before.
    assert PROCESS_LEASE - 2 < settled < PROCESS_LEASE + 5, summary
    assert all(r.claimed_by is None and r.attempts == 2 for r in rows), summary
    assert "Traceback" not in output, output[-3000:]
