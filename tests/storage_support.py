"""Helpers for the storage tests: test data, and PostgreSQL databases made and dropped.

Kept apart from the fixtures in storage_backends.py (a pytest plugin, which must not be imported
before pytest loads it) so test modules can import these directly.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets

from sqlalchemy import Engine, create_engine, insert, text
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


def add_people_by_sql(session: Session, survey_id: str, count: int) -> None:
    """`count` invited unit leaders written with plain SQL and only the columns of schema
    revision 0001, for the tests that upgrade an older database (the models know newer
    columns than such a database has)."""
    now = dt.datetime(2019, 10, 1, tzinfo=dt.UTC)
    session.execute(text(
        "INSERT INTO surveys (id, questionnaire, status, created_at) "
        "VALUES (:id, 'virksomhetsleder-2020', 'open', :now)"), {"id": survey_id, "now": now})
    for i in range(count):
        session.execute(text(
            "INSERT INTO respondents (id, name, email, role, municipality_no, "
            "municipality_name, county, size_class, landsdel, sector, lang, updated_at) VALUES "
            "(:id, :name, :email, 'unit_leader', :no, :kommune, 'Viken', 'medium', "
            "'Østlandet', 'helse', 'nb', :now)"),
            {"id": i + 1, "name": f"Leder Nummer{i}", "email": f"leder{i}@kommune{i}.example",
             "no": f"{3001 + i:04d}", "kommune": f"Kommune{i}", "now": now})
        session.execute(text(
            "INSERT INTO invitations (id, respondent_id, survey_id, token, status, "
            "reminders_sent, email_address, answered_from_other_address, created_at, "
            "updated_at) VALUES (:id, :id, :survey, :token, 'pending', 0, :email, :no, :now, "
            ":now)"),
            {"id": i + 1, "survey": survey_id, "token": tokens.new_token(),
             "email": f"leder{i}@kommune{i}.example", "no": False, "now": now})


def expire_leases(factory: sessionmaker[Session], worker: str) -> int:
    """What the end of the lease does for a dead worker's rows, now; how many it held."""
    from sqlalchemy import update

    from storage.schema import OutboxMessage, OutboxStatus

    with transaction(factory) as session:
        rows = session.scalars(
            update(OutboxMessage).where(OutboxMessage.status == OutboxStatus.SENDING,
                                        OutboxMessage.claimed_by == worker)
            .values(next_attempt_at=dt.datetime.now(dt.UTC)).returning(OutboxMessage.id)
            .execution_options(synchronize_session=False)).all()
    return len(rows)
