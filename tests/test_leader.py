"""One campaign clock per database: leader election on PostgreSQL, one process on SQLite.

PostgreSQL tests use a fresh database each (advisory locks are per database, so tests never
see each other's leader) and real processes where a process's death is the point.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from storage_support import TEST_KEY_TEXT

from bot.cli import main
from bot.leader import LOCK_KEY, AlreadyRunning, Leadership
from storage.migrate import init_database

pytest_plugins = ["storage_backends"]

ENV = {**os.environ, "SVARBOT_LINK_KEY": TEST_KEY_TEXT}
FAST = {"retry_seconds": 0.1, "check_seconds": 0.1}


def lock_holders(url: str) -> list[str]:
    """application_name of every connection holding svarbot's advisory lock in this database."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return list(connection.scalars(text(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.objsubid = 1 AND (l.classid::bigint << 32 | l.objid::bigint) = :key"),
                {"key": LOCK_KEY}))
    finally:
        engine.dispose()


def svarbot_connections(url: str) -> list[str]:
    """application_name of every svarbot lock connection (one per process) in this database."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return list(connection.scalars(text(
                "SELECT application_name FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'svarbot-leader %'")))
    finally:
        engine.dispose()


def drop_connection(url: str, application_name: str) -> int:
    """Cut a connection from the server side, as a network failure or a DBA would."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return len(connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"),
                {"name": application_name}).all())
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], bool], within: float = 10.0) -> float:
    """Seconds until `condition` held; fails at the deadline."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within} s")
        time.sleep(0.05)
    return time.monotonic() - start


class Recorded:
    """Leadership callbacks that write down what happened."""

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self.log = log

    async def acquire(self) -> None:
        self.log.append((self.name, "acquire"))

    async def lose(self) -> None:
        self.log.append((self.name, "lose"))


def test_exactly_one_of_two_leads_and_the_other_takes_over_when_its_connection_drops(
        postgres_database: str) -> None:
    url = postgres_database
    log: list[tuple[str, str]] = []
    a = Leadership(url, name="a", **FAST)
    b = Leadership(url, name="b", **FAST)
    measured: dict[str, float] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        runs = [asyncio.create_task(x.run(stop, Recorded(x.name, log).acquire,
                                          Recorded(x.name, log).lose)) for x in (a, b)]
        await asyncio.to_thread(wait_for, lambda: a.leading or b.leading)
        await asyncio.sleep(0.5)  # five more rounds of trying
        assert [a.leading, b.leading].count(True) == 1
        leader, other = (a, b) if a.leading else (b, a)
        assert log == [(leader.name, "acquire")]
        assert await asyncio.to_thread(lock_holders, url) == [f"svarbot-leader {leader.name}"]

        assert await asyncio.to_thread(drop_connection, url, f"svarbot-leader {leader.name}")
        measured["takeover"] = await asyncio.to_thread(wait_for, lambda: other.leading, 5)
        await asyncio.to_thread(wait_for, lambda: (leader.name, "lose") in log, 5)
        await asyncio.sleep(0.5)  # the old leader keeps trying, and must not get it back
        assert not leader.leading
        assert await asyncio.to_thread(lock_holders, url) == [f"svarbot-leader {other.name}"]
        stop.set()
        await asyncio.gather(*runs)

    asyncio.run(scenario())
    assert measured["takeover"] < 2
    assert log[-1][1] == "lose"  # stopping the leader runs on_lose too
    assert lock_holders(url) == []  # and releases the lock


CHILD = """
import asyncio, sys
from bot.leader import Leadership

async def nothing() -> None:
    pass

leadership = Leadership(sys.argv[1], name="child", retry_seconds=0.1, check_seconds=0.1)
asyncio.run(leadership.run(asyncio.Event(), nothing, nothing))
"""


def test_when_the_leading_process_is_killed_another_takes_over_within_seconds(
        postgres_database: str) -> None:
    url = postgres_database
    child = subprocess.Popen([sys.executable, "-c", CHILD, url])
    try:
        wait_for(lambda: lock_holders(url) == ["svarbot-leader child"])
        log: list[tuple[str, str]] = []
        here = Leadership(url, name="here", **FAST)

        async def scenario() -> float:
            stop = asyncio.Event()
            run = asyncio.create_task(here.run(stop, Recorded("here", log).acquire,
                                               Recorded("here", log).lose))
            await asyncio.sleep(0.4)
            assert not here.leading  # the child leads
            child.send_signal(signal.SIGKILL)
            took = await asyncio.to_thread(wait_for, lambda: here.leading, 5)
            stop.set()
            await run
            return took

        took = asyncio.run(scenario())
    finally:
        child.kill()
        child.wait(timeout=5)
    assert took < 2
    assert log == [("here", "acquire"), ("here", "lose")]


# --- svarbot run as real processes --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(path: Path, url: str, *, listen_port: int | None = None) -> Path:
    listen = (f"  listen:\n    enabled: true\n    port: {listen_port}\n" if listen_port
              else "  listen:\n    enabled: false\n")
    path.write_text(f"database:\n  url: '{url}'\n"
                    f"email:\n  smtp:\n    port: {_free_port()}\n{listen}", encoding="utf-8")
    return path


def svarbot_run(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bot", "run", "--config", str(config), *args]


@pytest.fixture
def sqlite_config(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "svarbot.db"
    url = f"sqlite:///{db}"
    init_database(url)
    return write_config(tmp_path / "config.yaml", url), db


def _stop(process: subprocess.Popen[bytes]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    return output.decode(errors="replace")


def test_a_second_svarbot_run_on_the_same_sqlite_database_refuses_to_start(
        sqlite_config: tuple[Path, Path]) -> None:
    config, db = sqlite_config
    lock_file = db.with_name("svarbot.db.lock")
    first = subprocess.Popen(svarbot_run(config), env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: lock_file.exists() and lock_file.read_text().strip() == str(first.pid))
        second = subprocess.run(svarbot_run(config), env=ENV, capture_output=True, timeout=20,
                                check=False)
        assert second.returncode == 2
        assert second.stderr.decode().strip().splitlines()[-1] == (
            f"svarbot: another svarbot run is using {db.resolve()} (pid {first.pid}); on SQLite "
            f"only one process can run — use PostgreSQL for several")
        with pytest.raises(AlreadyRunning):
            Leadership(f"sqlite:///{db}").claim()
        assert first.poll() is None  # the first one runs on, untouched
    finally:
        output = _stop(first)
    assert first.returncode == 0, output
    after = Leadership(f"sqlite:///{db}")  # the lock went with the process
    after.claim()
    after.close()


def test_workers_on_sqlite_are_refused(sqlite_config: tuple[Path, Path]) -> None:
    config, _db = sqlite_config
    result = CliRunner().invoke(main, ["run", "--workers", "2", "--config", str(config)],
                                env={"SVARBOT_LINK_KEY": TEST_KEY_TEXT})
    assert result.exit_code == 2
    assert "on SQLite only one process can run — use PostgreSQL for several" in result.output


@pytest.fixture
def pg_config(postgres_database: str, tmp_path: Path) -> tuple[Path, str, int]:
    init_database(postgres_database)
    port = _free_port()
    config = write_config(tmp_path / "config.yaml", postgres_database, listen_port=port)
    return config, postgres_database, port


def test_workers_share_one_leader_and_stop_with_the_first_process(
        pg_config: tuple[Path, str, int]) -> None:
    config, url, port = pg_config
    first = subprocess.Popen(svarbot_run(config, "--workers", "2"), env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(svarbot_connections(url)) == 2 and len(lock_holders(url)) == 1,
                 within=20)
        names = svarbot_connections(url)
        pids = {int(name.rsplit(":", 1)[1]) for name in names}
        assert first.pid in pids
        assert len(pids) == 2
        with socket.create_connection(("127.0.0.1", port), timeout=5) as smtp:
            assert smtp.recv(100).startswith(b"220")  # only the first process listens
        time.sleep(0.5)
        assert len(lock_holders(url)) == 1
        assert first.poll() is None
    finally:
        output = _stop(first)
    assert first.returncode == 0, output
    assert "Traceback" not in output, output  # no worker failed to bind the port, or at all
    for pid in pids - {first.pid}:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert svarbot_connections(url) == []
