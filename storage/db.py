"""Connecting to the database: one engine factory and one transaction scope.

SQLite is the embedded default: WAL journal (readers never block the writer) with synchronous
NORMAL, foreign keys on, and a busy timeout so a second connection waits instead of failing at
once. PostgreSQL takes the same schema by changing `database.url`. Every failure to open or read
the database becomes a `StorageError` whose message is one line for the operator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


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
        engine = create_engine(url, future=True)
    except Exception as exc:  # any bad URL becomes one clear line
        raise StorageError(f"database.url {url!r} cannot be used: {exc}") from exc
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
