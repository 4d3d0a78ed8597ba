"""Connecting to the database: one engine factory and one transaction scope.

SQLite is the embedded default: WAL journal (readers never block the writer) with synchronous
NORMAL, foreign keys on, and a busy timeout so a second connection waits instead of failing at
once. PostgreSQL takes the same schema by changing `database.url`. Every failure to open or read
the database becomes a `StorageError` whose message is one line for the operator.

PostgreSQL connections are checked before use (`pool_pre_ping`): after a server restart every
pooled connection is dead, and without the check each one would fail one transaction before
the pool noticed. Connecting gives up after `connect_timeout`, and TCP keepalives plus
`tcp_user_timeout` end a connection whose server vanished without a word, so a call can wait
on a dead server for seconds, never for the kernel's quarter of an hour. What the URL itself
sets is left as it is.

`unavailable` tells the failures worth waiting out (a full disk, a locked file, a server that
is restarting) from the rest, with one line saying which.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

#: libpq settings for every pooled PostgreSQL connection, unless the URL sets them.
PG_CONNECT_ARGS: dict[str, object] = {
    "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
    "keepalives_count": 3, "tcp_user_timeout": 30_000}
#: The longest line `unavailable` returns.
REASON_MAX = 200


class StorageError(Exception):
    """The database cannot be used as asked; the message says why in one line."""


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL keeps the database consistent and every committed transaction survives
    # a crash of the process; only a power cut can lose the last few. Commits get much cheaper.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`, with svarbot's SQLite settings where it is SQLite."""
    try:
        parsed = make_url(url)
        options: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            options = {"pool_pre_ping": True,
                       "connect_args": {key: value for key, value in PG_CONNECT_ARGS.items()
                                        if key not in parsed.query}}
        engine = create_engine(url, future=True, **options)
    except Exception as error:  # any bad URL becomes one clear line
        raise StorageError(f"database.url {url!r} cannot be used: {error}") from error
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that do not expire objects on commit (values stay readable after it)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def unavailable(error: BaseException) -> str | None:
    """Why the database cannot be used right now, in one line, if that is what `error` means.

    A full disk, a locked or unwritable SQLite file, a PostgreSQL server that is restarting,
    refuses connections or dropped ours: the same work can succeed later, so callers keep it,
    try again, and log this line rather than a traceback. None for anything else (a bug, a
    broken constraint), which no retry will mend. Every transaction is rolled back on error,
    so nothing of the failed one was written.
    """
    transient = isinstance(error, exc.OperationalError | exc.InterfaceError
                           | exc.DisconnectionError | exc.TimeoutError) or (
        isinstance(error, exc.DBAPIError) and error.connection_invalidated)
    if not transient:
        return None
    origin = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(origin).splitlines() if line.strip()]
    return (lines[0] if lines else type(origin).__name__)[:REASON_MAX]
