"""Helpers for the storage tests: test data, and PostgreSQL databases made and dropped.

Kept apart from the fixtures in storage_backends.py (a pytest plugin, which must not be imported
before pytest loads it) so test modules can import these directly.
"""

from __future__ import annotations

import os
import secrets

from sqlalchemy import Engine, create_engine, insert
from sqlalchemy.orm import Session, sessionmaker

from storage import tokens
from storage.db import transaction
from storage.identity import ensure_survey, invite, upsert_respondent
from storage.schema import Invitation, InvitationStatus, Respondent

#: The server, without a database; SVARBOT_TEST_POSTGRES points the tests elsewhere.
PG_SERVER = os.environ.get("SVARBOT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
PG_ADMIN_URL = f"{PG_SERVER}/test"


def admin_engine() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                         connect_args={"connect_timeout": 2})


def drop_postgres_database(name: str) -> None:
    """Drop a test database, disconnecting anyone still in it."""
    engine = admin_engine()
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


def new_postgres_name() -> str:
    """A database name no other test uses."""
    return f"svarbot_test_{secrets.token_hex(6)}"


# --- test data ------------------------------------------------------------------------------

#: A link key for tests (the real one comes from the environment).
TEST_KEY_TEXT = "test-link-key-0123456789abcdef"


def add_people(session: Session, survey_id: str, count: int) -> list[Invitation]:
    """`count` unit leaders in distinct municipalities, each invited to `survey_id`."""
    survey = ensure_survey(session, survey_id, "virksomhetsleder-2020")
    invitations = []
    for i in range(count):
        respondent = upsert_respondent(
            session, email=f"Leder{i}@Kommune{i}.example", name=f"Leder Nummer{i}",
            role="unit_leader", municipality_no=f"{3001 + i:04d}",
            municipality_name=f"Kommune{i}", county="Viken", size_class="medium",
            landsdel="Østlandet", sector="helse", unit_type="sykehjem",
            phone=f"+47 9000{i:04d}", telegram=f"@leder{i}")
        invitations.append(invite(session, respondent, survey))
    return invitations


def bulk_people(factory: sessionmaker[Session], survey_id: str, count: int, *,
                county: str = "Oslo") -> None:
    """`count` pending email invitations, like `add_people` makes them but in two INSERTs
    (for the tests that need thousands)."""
    with transaction(factory) as session:
        ensure_survey(session, survey_id, "virksomhetsleder-2020")
        session.execute(insert(Respondent), [
            {"id": i + 1, "name": f"Leder Nummer{i}", "email": f"leder{i}@kommune{i}.example",
             "role": "unit_leader", "municipality_no": f"{1000 + i % 9000:04d}",
             "municipality_name": f"Kommune{i}", "county": county, "size_class": "medium",
             "landsdel": "Østlandet", "sector": "helse", "unit_type": "sykehjem", "lang": "nb"}
            for i in range(count)])
        session.execute(insert(Invitation), [
            {"respondent_id": i + 1, "survey_id": survey_id, "token": tokens.new_token(),
             "status": InvitationStatus.PENDING, "reminders_sent": 0,
             "email_address": f"leder{i}@kommune{i}.example",
             "answered_from_other_address": False} for i in range(count)])
