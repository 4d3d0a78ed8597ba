"""Which process runs the campaign clock: exactly one per database.

Every `svarbot run` process sends and answers (they share the work through the database), but
only one may run the campaign clock and the IMAP reader.

* PostgreSQL: the leader holds the session advisory lock `LOCK_KEY` on a connection of its own,
  kept open (autocommit, so never idle in a transaction). The lock lives exactly as long as
  that connection: if the process dies, the server drops the lock at once, and another process
  takes it at its next try, a few seconds later. The leader checks its connection every few
  seconds (`SELECT 1`); a dead connection means the lock is gone, so it steps down and tries
  again like everyone else. Between the connection dying and the check, two processes can both
  believe they lead for a few seconds: harmless, because every clock job is idempotent. The
  lock needs a real session: connect directly or through PgBouncer in session mode (transaction
  pooling would hand the lock's session to other clients).
* SQLite: only one process may use the database at all (no SKIP LOCKED). `claim()` takes an
  exclusive, non-blocking `flock` on `<database file>.lock` and writes the pid into it, so a
  second `svarbot run` refuses to start and names the first. The kernel drops the lock when the
  process ends, however it ends; the file stays (deleting it would race with the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

#: The advisory lock key: the first 8 bytes of SHA-256("svarbot-scheduler") as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"svarbot-scheduler").digest()[:8], "big", signed=True)

#: Seconds between attempts to become leader, and between the leader's connection checks.
RETRY_SECONDS = 2.0
CHECK_SECONDS = 2.0

# libpq settings for the lock connection: give up connecting after 5 s, and notice a silently
# dead peer within about 10 s instead of the kernel's default of many minutes.
_PG_CONNECT_ARGS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5,
                    "keepalives_interval": 2, "keepalives_count": 2, "tcp_user_timeout": 10_000}

Callback = Callable[[], Awaitable[None]]


class AlreadyRunning(Exception):
    """Another process holds the SQLite database; the message is one line for the operator."""


def process_name() -> str:
    """Host and pid: how operators (and `claimed_by`) tell svarbot processes apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory or non-SQLite databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


class Leadership:
    """Decides whether this process leads: an advisory lock on PostgreSQL, a file lock on SQLite.

    `name` is shown to operators: on PostgreSQL it is the lock connection's application_name
    (`svarbot-leader <name>`), so `pg_locks` joined with `pg_stat_activity` says who leads.
    """

    def __init__(self, url: str, *, name: str = "", retry_seconds: float = RETRY_SECONDS,
                 check_seconds: float = CHECK_SECONDS) -> None:
        self.url = url
        self.name = name or process_name()
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self.is_postgres = make_url(url).get_backend_name() == "postgresql"
        self.leading = False
        self._engine: Engine | None = None
        self._connection: Connection | None = None
        self._lock_file: IO[str] | None = None

    # --- SQLite ---------------------------------------------------------------------------

    def claim(self) -> None:
        """On SQLite, take the one-process lock or raise `AlreadyRunning`; elsewhere nothing.

        Call it at start-up, before anything binds a port or touches the database.
        """
        path = None if self.is_postgres else sqlite_path(self.url)
        if path is None or self._lock_file is not None:
            return
        lock_path = path.with_name(path.name + ".lock")
        handle = lock_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise AlreadyRunning(
                f"another svarbot run is using {path} (pid {holder}); on SQLite only one "
                f"process can run — use PostgreSQL for several") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    # --- PostgreSQL -----------------------------------------------------------------------

    def _connect(self) -> Connection:
        if self._engine is None:
            self._engine = create_engine(
                self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                connect_args={**_PG_CONNECT_ARGS,
                              "application_name": f"svarbot-leader {self.name}"[:63]})
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.close()

    def try_acquire(self) -> bool:
        """One attempt at the advisory lock (blocking; run it in a thread)."""
        try:
            connection = self._connect()
            return bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                           {"key": LOCK_KEY}).scalar_one())
        except SQLAlchemyError as exc:
            log.warning("cannot try for leadership: %s", _first_line(exc))
            self._drop_connection()
            return False

    def still_held(self) -> bool:
        """Whether the lock connection is alive, and with it the lock (blocking)."""
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("lost the leadership connection: %s", _first_line(exc))
            self._drop_connection()
            return False
        return True

    # --- both -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_acquire: Callback, on_lose: Callback) -> None:
        """Lead whenever possible until `stop` is set; `on_lose` also runs on the way out."""
        try:
            if self.is_postgres:
                await self._elect(stop, on_acquire, on_lose)
            else:
                self.claim()
                self.leading = True
                await on_acquire()
                await stop.wait()
        finally:
            if self.leading:
                self.leading = False
                await on_lose()
            await asyncio.to_thread(self.close)

    async def _elect(self, stop: asyncio.Event, on_acquire: Callback, on_lose: Callback) -> None:
        while not stop.is_set():
            if not self.leading:
                if await asyncio.to_thread(self.try_acquire):
                    self.leading = True
                    log.info("leading: this process runs the campaign clock (%s)", self.name)
                    await on_acquire()
                wait = self.check_seconds if self.leading else self.retry_seconds
            else:
                if not await asyncio.to_thread(self.still_held):
                    self.leading = False
                    log.warning("stepped down: the advisory lock is gone with its connection")
                    await on_lose()
                wait = self.check_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    def close(self) -> None:
        """Release everything: closing the connection frees the advisory lock."""
        self._drop_connection()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._lock_file is not None:
            self._lock_file.close()  # closing the file drops the flock
            self._lock_file = None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
