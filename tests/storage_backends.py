"""Fixtures that give every storage test a fresh database on SQLite and on PostgreSQL.

SQLite is a file in the test's tmp_path. PostgreSQL is the server at 127.0.0.1:5432 (user
postgres, trust authentication; SVARBOT_TEST_POSTGRES names another); each test creates its
own database and drops it afterwards, so tests never see each other's data. If the server
cannot be reached within a few seconds, PostgreSQL tests are skipped with the reason, except
under CI (`CI` set), where they fail: CI must not go green without having tested PostgreSQL.

Test modules load this file as a plugin: `pytest_plugins = ["storage_backends"]`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from storage_support import PG_SERVER, admin_engine, drop_postgres_database, new_postgres_name

from storage.migrate import init_database, open_database

PG_DEADLINE_SECONDS = float(os.environ.get("SVARBOT_TEST_POSTGRES_WAIT", "5"))
PG_POLL_SECONDS = 0.2


def _wait_for_postgres() -> str | None:
    """None once the server answers, or why it did not before the deadline."""
    deadline = time.monotonic() + PG_DEADLINE_SECONDS
    engine = admin_engine()
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("SELECT 1")
            except OperationalError as exc:
                if time.monotonic() >= deadline:
                    return str(exc.orig).strip().splitlines()[0]
            else:
                return None
            time.sleep(PG_POLL_SECONDS)  # poll interval while waiting for the deadline
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server URL (without a database) once PostgreSQL answers; skip or fail otherwise."""
    problem = _wait_for_postgres()
    if problem is not None:
        message = f"PostgreSQL at {PG_SERVER} is not reachable: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: PostgreSQL tests must run)")
        pytest.skip(message)
    return PG_SERVER


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = new_postgres_name()
    engine = admin_engine()
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    try:
        yield f"{postgres_server}/{name}"
    finally:
        drop_postgres_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a not-yet-created SQLite file, or a new PG database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'svarbot.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def migrated_url(db_url: str) -> str:
    """A database with svarbot's schema (via `init_database`)."""
    init_database(db_url)
    return db_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    """An engine on a migrated database, opened the way svarbot opens it at every start."""
    opened = open_database(migrated_url)
    try:
        yield opened
    finally:
        opened.dispose()
