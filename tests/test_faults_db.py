"""Database faults under a real `svarbot run`: the run waits them out, loses nothing, repeats
nothing.

(a) PostgreSQL restarted in the middle of a wave. The machine's shared server is never
touched: the test makes a throwaway PostgreSQL cluster of its own in a temporary folder, on
a free port (`tests/fault_servers.PostgresCluster`, the Debian binaries, run by the 'postgres'
user when we are root), and `svarbot run` sends a wave of invitations from it to an aiosmtpd
sink that lives in the test process. Once part of the wave is out, the cluster is stopped
(`pg_ctl stop -m fast`: every connection is ended, the leader's advisory lock with it), kept
down for a moment, and started again. The same process must reconnect and finish the wave:
every invitation delivered, every row `sent`, each message at the sink once, but for re-sends
of rows that were in flight at the restart (and those with the same Message-ID). The results
of messages sent while the server was down are kept and recorded once it is back, so in
practice there are none.

(b) SQLite on a full disk. The database lives on a small tmpfs of its own (mounted for the
test; we are root). While `svarbot run` sends a wave, a file fills the rest of the file
system, so the next write fails with SQLITE_FULL; later the file is deleted. The run must say
so in one clear line (no traceback), write nothing by halves (every transaction whole: each
sent row has exactly one "sent" event and its invitation is invited, the database passes
`PRAGMA integrity_check`), and finish the wave once space returns, without a restart and
without sending anything twice.

Each test prints what it injected and what it counted (run with -s). A PostgreSQL that cannot
be made, or a tmpfs that cannot be mounted, skips the test, except under CI=true, where it
fails.
"""

from __future__ import annotations

import contextlib
import email
import errno
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from email.policy import compat32
from pathlib import Path
from typing import NoReturn

import pytest
from fault_servers import PostgresCluster, PostgresError, postgres_unavailable, queue_wave
from smtp_servers import SmtpSink
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from storage_support import TEST_KEY_TEXT

from storage.db import session_factory
from storage.migrate import init_database, open_database
from storage.schema import (
    Invitation,
    InvitationEvent,
    InvitationStatus,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
)

SURVEY = "virksomhetsleder-2020"
CONNECTIONS = 3
#: Leases short enough that a claim whose commit went unanswered comes back within the test.
LEASE_SECONDS = 10


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
        pytest.fail(f"{message} (CI is set: the database fault tests must run)")
    pytest.skip(message)


def _config(tmp_path: Path, url: str, sink: SmtpSink) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: '{url}'\n"
        f"surveys:\n  - id: {SURVEY}\n    questionnaire: {SURVEY}\n"
        f"email:\n  smtp:\n    port: {sink.port}\n    per_minute: 1000000\n"
        f"    per_day: 1000000\n    connections: {CONNECTIONS}\n"
        f"    lease_seconds: {LEASE_SECONDS}\n"
        f"logging:\n  level: WARNING\n", encoding="utf-8")
    return config


def _svarbot(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config)],
                                env={**os.environ, "SVARBOT_LINK_KEY": TEST_KEY_TEXT},
                                stdout=out, stderr=subprocess.STDOUT)


def _wait(what: str, done: Callable[[], bool], timeout: float,
          process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while not done():
        if process.poll() is not None:
            raise AssertionError(f"svarbot exited ({process.returncode}) before {what}")
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)  # poll until the condition holds
    return time.monotonic() - started


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _count(factory: sessionmaker[Session], status: OutboxStatus) -> int:
    """Rows in `status`; -1 while the database cannot be read (the test's own view)."""
    try:
        with factory() as session:
            return int(session.scalar(select(func.count()).select_from(OutboxMessage)
                                      .where(OutboxMessage.status == status)) or 0)
    except OperationalError:
        return -1


def _copies(sink: SmtpSink) -> dict[str, list[str]]:
    """Recipient → the Message-IDs of every copy the sink received."""
    copies: dict[str, list[str]] = defaultdict(list)
    for message in sink.messages:
        headers = email.message_from_bytes(message.data, policy=compat32)
        (recipient,) = message.rcpt_tos
        copies[recipient].append(str(headers["Message-ID"]).strip())
    return copies


def _check_wave(factory: sessionmaker[Session], sink: SmtpSink, total: int) -> int:
    """Everyone got their own invitation, every row and event is whole; the duplicates."""
    with factory() as session:
        expected = dict(session.execute(select(OutboxMessage.recipient,
                                               OutboxMessage.message_id)).all())
        statuses = Counter(session.scalars(select(OutboxMessage.status)))
        sent_events = Counter(session.scalars(select(OutboxEvent.outbox_id)
                                              .where(OutboxEvent.status == "sent")))
        invited = Counter(session.scalars(select(Invitation.status)))
        invited_events = int(session.scalar(
            select(func.count()).select_from(InvitationEvent)
            .where(InvitationEvent.status == InvitationStatus.INVITED)) or 0)
    copies = _copies(sink)
    assert len(expected) == total  # each invitation queued once
    assert statuses == {OutboxStatus.SENT: total}, statuses
    assert len(sent_events) == total, len(sent_events)
    assert set(sent_events.values()) == {1}  # one "sent" per row: no result written twice
    assert invited == {InvitationStatus.INVITED: total}, invited
    assert invited_events == total
    assert set(copies) == set(expected)
    for recipient, ids in copies.items():  # a duplicate is the same message again
        assert set(ids) == {expected[recipient]}, recipient
    return sum(len(ids) - 1 for ids in copies.values())


def _outage_lines(output: str) -> tuple[list[str], list[str]]:
    lines = output.splitlines()
    return ([line for line in lines if "outbox email: the database cannot be used" in line],
            [line for line in lines if "outbox email: the database works again" in line])


# --- (a) PostgreSQL restarted in the middle of a wave ---------------------------------------

PG_INVITATIONS = 1500


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    problem = postgres_unavailable()
    if problem is not None:
        _unavailable(f"no throwaway PostgreSQL cluster: {problem}")
    made = PostgresCluster()
    try:
        try:
            made.init().start()
        except (PostgresError, OSError, subprocess.SubprocessError) as exc:
            _unavailable(f"the throwaway PostgreSQL cluster did not start: {exc}")
        yield made
    finally:
        made.remove()


def test_postgresql_restarted_in_the_middle_of_a_wave(
        cluster: PostgresCluster, sink: SmtpSink, tmp_path: Path) -> None:
    admin = create_engine(f"{cluster.server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("CREATE DATABASE svarbot")
    admin.dispose()
    url = f"{cluster.server_url}/svarbot"
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    log = tmp_path / "svarbot.log"
    try:
        queue_wave(factory, SURVEY, PG_INVITATIONS)
        engine.dispose()
        process = _svarbot(_config(tmp_path, url, sink), log)
        try:
            _wait("a third of the wave at the sink",
                  lambda: sink.count >= PG_INVITATIONS // 3, 60, process)
            in_flight = _count(factory, OutboxStatus.SENDING)
            engine.dispose()  # the test's own connections go with the server too
            at_restart = sink.count
            downtime = cluster.restart("fast", down_seconds=1.5)
            back = _wait("every invitation sent",
                         lambda: _count(factory, OutboxStatus.SENT) == PG_INVITATIONS, 90,
                         process)
            _stop(process)
            assert process.returncode == 0
        finally:
            _stop(process)
        duplicates = _check_wave(factory, sink, PG_INVITATIONS)
    finally:
        engine.dispose()
    output = log.read_text(errors="replace")
    went, came = _outage_lines(output)
    summary = (f"PostgreSQL restart: injected pg_ctl stop -m fast + start ({downtime:.1f} s "
               f"down) after {at_restart} of {PG_INVITATIONS} messages, {in_flight} rows "
               f"sending; counted: all sent {back:.1f} s after the restart by the same process, "
               f"{sink.count} messages at the sink, {duplicates} duplicates; outbox log: "
               f"{len(went)} outage line(s), {len(came)} recovery line(s)")
    print(f"\n{summary}\n  {went[0] if went else '-'}\n  {came[0] if came else '-'}")
    assert duplicates <= in_flight, summary
    assert len(went) == 1, (summary, output[-3000:])
    assert len(came) == 1, (summary, output[-3000:])
    assert "Traceback" not in "\n".join(line for line in output.splitlines()
                                        if "outbox" in line), summary


# --- (b) SQLite on a full disk --------------------------------------------------------------

SQLITE_INVITATIONS = 600
TMPFS_MB = 24


@contextlib.contextmanager
def _small_disk() -> Iterator[Path]:
    """A tmpfs of `TMPFS_MB` MB of its own, unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        _unavailable("mounting a tmpfs needs root and mount(8)")
    mount = Path(tempfile.mkdtemp(prefix="svarbot-fulldisk-"))
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0700",
                             "svarbot-fulldisk", str(mount)], capture_output=True, text=True,
                            check=False, timeout=30)
    if result.returncode != 0:
        mount.rmdir()
        _unavailable(f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)
        mount.rmdir()


def _fill(path: Path) -> int:
    """Write `path` until the file system is full; the bytes written."""
    chunk = b"\0" * (1 << 16)
    written = 0
    with path.open("wb", buffering=0) as out:
        try:
            while True:
                written += out.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return written


def test_sqlite_on_a_full_disk_says_so_and_recovers_when_space_returns(
        sink: SmtpSink, tmp_path: Path) -> None:
    with _small_disk() as disk:
        path = disk / "svarbot.db"
        url = f"sqlite:///{path}"
        init_database(url)
        engine = open_database(url)
        factory = session_factory(engine)
        log = tmp_path / "svarbot.log"
        filler = disk / "filler"
        try:
            queue_wave(factory, SURVEY, SQLITE_INVITATIONS)
            with engine.connect() as connection:  # start from an empty WAL: writes need space
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            process = _svarbot(_config(tmp_path, url, sink), log)
            try:
                _wait("part of the wave at the sink", lambda: sink.count >= 100, 60, process)
                filled = _fill(filler)
                at_full = sink.count
                _wait("the error in the log", lambda: bool(
                    _outage_lines(log.read_text(errors="replace"))[0]), 30, process)
                time.sleep(1.0)  # the disk stays full a while: claims and results must wait
                during = sink.count - at_full
                sent_while_full = _count(factory, OutboxStatus.SENT)
                filler.unlink()
                back = _wait("every invitation sent",
                             lambda: _count(factory, OutboxStatus.SENT) == SQLITE_INVITATIONS,
                             60, process)
                _stop(process)
                assert process.returncode == 0
            finally:
                _stop(process)
            duplicates = _check_wave(factory, sink, SQLITE_INVITATIONS)
        finally:
            engine.dispose()
            filler.unlink(missing_ok=True)
        check = sqlite3.connect(path)
        try:
            integrity = check.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            check.close()
    output = log.read_text(errors="replace")
    went, came = _outage_lines(output)
    summary = (f"SQLite full disk: injected a {filled / 1e6:.1f} MB file filling the "
               f"{TMPFS_MB} MB tmpfs after {at_full} of {SQLITE_INVITATIONS} messages, removed "
               f"after {1.0:.0f} s; counted: {during} messages sent while full (claimed "
               f"before; their results kept), {sent_while_full} rows recorded sent by the end "
               f"of it, all sent "
               f"{back:.1f} s after space returned, {sink.count} messages at the sink, "
               f"{duplicates} duplicates, integrity {integrity}; outbox log: {len(went)} "
               f"error line(s), {len(came)} recovery line(s)")
    print(f"\n{summary}\n  {went[0] if went else '-'}\n  {came[0] if came else '-'}")
    assert duplicates == 0, summary
    assert integrity == "ok", summary
    assert len(went) == 1, (summary, output[-3000:])
    assert re.search(r"ERROR bot\.channels\.outbox_worker: outbox email: the database cannot "
                     r"be used \(database or disk is full\); results are kept", went[0]), went
    assert len(came) == 1, (summary, output[-3000:])
    assert "Traceback" not in output, (summary, output[-3000:])
