"""Shared test setup: Hypothesis profiles, the golden-file update switch, an SMTP sink, a
migrated SQLite database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from smtp_servers import SmtpSink
    from sqlalchemy.orm import Session, sessionmaker

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="Rewrite tests/golden/*.json from the current engine output.")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when golden files should be rewritten instead of compared."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real SMTP server on a free loopback port that records what it receives."""
    from smtp_servers import SmtpSink

    with SmtpSink() as server:
        yield server


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh, migrated SQLite database in the test's folder."""
    from storage.db import session_factory
    from storage.migrate import init_database, open_database

    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    engine = open_database(url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()
