"""Proof that the answer side cannot be joined to the identity side, on both backends.

The schema half inspects the migrated database itself (not the models), so a migration that
drifts from the design is caught: no foreign key from an answer-side table to an identity
table (or back), no column named like anything that identifies a person or a moment, keys
that are random strings rather than counters, and on SQLite no rowid to betray write order.
The data half records answers for a dozen invitations and checks that no identifying value
reappears on the answer side and that responses are not in invitation order.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import DateTime, Engine, Integer, MetaData, create_engine, inspect, select
from sqlalchemy.engine import Inspector
from sqlalchemy.exc import OperationalError
from storage_support import TEST_KEY_TEXT, add_people

from storage.answers import AnswerStore, LinkKey, strata_for
from storage.db import session_factory, transaction
from storage.migrate import init_database, open_database
from storage.schema import ANSWER_SIDE, Invitation, InvitationStatus, Respondent, RespondentRole

pytest_plugins = ["storage_backends"]  # the database fixtures, on both backends

#: The bridge: deleted by `seal`; its own tests are in test_storage.py.
LINK_TABLE = "response_links"
NOT_DATA = {"alembic_version"}
IDENTIFYING_NAME = re.compile(
    r"respondent|invitation|token|email|address|name|municipality|kommune|phone|telegram|chat|"
    r"message|recipient|created|updated|_at$|time|sent|received")
#: The coarse role; its values are checked in the data test.
ALLOWED_NAMES = {"respondent_type"}
#: Column names the two sides may share: keys of their own, and the coarse strata.
SHARED_NAMES = {"id", "survey_id", "sector", "landsdel", "size_class"}
ROLES = {role.value for role in RespondentRole}


def _identity_tables(inspector: Inspector) -> list[str]:
    return [t for t in inspector.get_table_names()
            if t not in ANSWER_SIDE and t != LINK_TABLE and t not in NOT_DATA]


def _key_problems(table: str, column: dict[str, Any]) -> list[str]:
    problems = []
    if isinstance(column["type"], Integer):
        problems.append(f"{table}.{column['name']}: integer key")
    if column.get("autoincrement") is True or column.get("identity"):
        problems.append(f"{table}.{column['name']}: autoincrement key")
    if "nextval" in str(column.get("default") or ""):
        problems.append(f"{table}.{column['name']}: key from a sequence")
    return problems


def _column_problems(table: str, column: dict[str, Any]) -> list[str]:
    problems = []
    name = column["name"]
    if name not in ALLOWED_NAMES and IDENTIFYING_NAME.search(name):
        problems.append(f"{table}.{name}: named like identity data")
    if isinstance(column["type"], DateTime):
        problems.append(f"{table}.{name}: a timestamp")
    return problems


def answer_side_problems(inspector: Inspector, answer_side: Iterable[str]) -> list[str]:
    """Everything in the answer-side tables that could join them to a person or a moment."""
    answer_side = tuple(answer_side)
    problems: list[str] = []
    identity_columns = {c["name"] for t in _identity_tables(inspector)
                        for c in inspector.get_columns(t)}
    for table in answer_side:
        columns = inspector.get_columns(table)
        for fk in inspector.get_foreign_keys(table):
            if fk["referred_table"] not in answer_side:
                problems.append(f"{table}: foreign key to {fk['referred_table']}")
        for column in columns:
            problems += _column_problems(table, column)
            if column["name"] in identity_columns - SHARED_NAMES - ALLOWED_NAMES:
                problems.append(f"{table}.{column['name']}: also an identity-side column")
        key = set(inspector.get_pk_constraint(table)["constrained_columns"])
        for column in columns:
            if column["name"] in key:
                problems += _key_problems(table, column)
    return problems


def identity_side_problems(inspector: Inspector, answer_side: Iterable[str]) -> list[str]:
    """Any way from an identity-side table into the answer side (a key or a response column)."""
    answer_side = tuple(answer_side)
    problems = []
    for table in _identity_tables(inspector):
        for fk in inspector.get_foreign_keys(table):
            if fk["referred_table"] in answer_side or fk["referred_table"] == LINK_TABLE:
                problems.append(f"{table}: foreign key to {fk['referred_table']}")
        for column in inspector.get_columns(table):
            if re.search(r"response|link", column["name"]):
                problems.append(f"{table}.{column['name']}: points at a response")
    return problems


# --- the schema -----------------------------------------------------------------------------


def test_no_answer_side_column_can_be_joined_to_a_person(engine: Engine) -> None:
    """The migrated schema: no key, name, type or counter ties answers to identities."""
    with engine.connect() as connection:
        inspector = inspect(connection)
        assert set(ANSWER_SIDE) <= set(inspector.get_table_names())
        assert answer_side_problems(inspector, ANSWER_SIDE) == []
        assert identity_side_problems(inspector, ANSWER_SIDE) == []


def test_the_schema_check_finds_a_leaky_answer_table() -> None:
    """The check itself can fail: a table with every mistake is reported for each of them."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE respondents (id INTEGER PRIMARY KEY, email TEXT)")
            connection.exec_driver_sql(
                "CREATE TABLE leaky (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "respondent_id INTEGER REFERENCES respondents(id), email TEXT, "
                "created_at DATETIME, answered DATETIME)")
            connection.exec_driver_sql("CREATE TABLE back (id INTEGER PRIMARY KEY, "
                                       "response_id INTEGER REFERENCES leaky(id))")
            inspector = inspect(connection)
            problems = answer_side_problems(inspector, ["leaky"])
            backwards = identity_side_problems(inspector, ["leaky"])
    finally:
        engine.dispose()
    assert "leaky: foreign key to respondents" in problems
    assert "leaky.respondent_id: named like identity data" in problems
    assert "leaky.email: also an identity-side column" in problems
    assert "leaky.created_at: a timestamp" in problems
    assert "leaky.answered: a timestamp" in problems
    assert "leaky.id: integer key" in problems
    assert "back: foreign key to leaky" in backwards
    assert "back.response_id: points at a response" in backwards


def test_answer_tables_have_no_rowid_on_sqlite(tmp_path: Path) -> None:
    """On SQLite the answer side and the links are WITHOUT ROWID: no hidden write counter.

    (PostgreSQL has no rowid; its physical order is handled by `scrub`, see test_storage.py.)
    """
    engine = open_database_at(tmp_path / "svarbot.db")
    with engine.connect() as connection:
        sql = dict(connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'").all())
        for table in (*ANSWER_SIDE, LINK_TABLE):
            assert sql[table].rstrip().upper().endswith("WITHOUT ROWID"), table
            with pytest.raises(OperationalError, match="rowid"):
                connection.exec_driver_sql(f"SELECT rowid FROM {table}")  # noqa: S608
        assert not sql["invitations"].rstrip().upper().endswith("WITHOUT ROWID")
    engine.dispose()


def open_database_at(path: Path) -> Engine:
    """A new svarbot database in an SQLite file."""
    url = f"sqlite:///{path}"
    init_database(url)
    return open_database(url)


# --- the data -------------------------------------------------------------------------------

PEOPLE = 12


def _record_in_invitation_order(engine: Engine) -> list[str]:
    """Answers for PEOPLE invitations, recorded one transaction each in invitation order."""
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    factory = session_factory(engine)
    with transaction(factory) as session:
        pairs = [(i.id, i.token) for i in add_people(session, "virksomhetsleder-2020", PEOPLE)]
    response_ids = []
    for n, (invitation_id, token) in enumerate(pairs):
        with transaction(factory) as session:
            invitation = session.get_one(Invitation, invitation_id)
            invitation.status = InvitationStatus.FINISHED
            invitation.last_contact_at = dt.datetime(2020, 3, 2, 9, n, tzinfo=dt.UTC)
            respondent = session.get_one(Respondent, invitation.respondent_id)
            response_ids.append(store.record(
                session, survey_id="virksomhetsleder-2020", token=token,
                strata=strata_for(respondent),
                answers={"sektor": "helse", "ansatte": 40 + n, "tiltak": ["a", "c"],
                         "fritekst": f"Vi har prøvd velferdsteknologi ({n})"},
                removed=[], completed=True, today=dt.date(2020, 3, 2 + n % 3)))
    return response_ids


def _table_rows(engine: Engine, tables: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as connection:
        metadata = MetaData()
        metadata.reflect(connection, only=list(tables))
        return {name: [dict(row._mapping) for row in connection.execute(select(table))]
                for name, table in metadata.tables.items()}


def _flatten(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        return [text for item in value for text in _flatten(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _flatten(item)]
    return [] if value is None else [str(value)]


#: What was answered and how often (numbers that may equal an id by chance), not keys or strata.
ANSWERED_VALUES = {"value", "value_key", "n"}
IDENTIFYING_COLUMNS = {"token", "email", "name", "municipality_no", "municipality_name",
                       "phone", "telegram", "email_address", "telegram_chat_id", "recipient"}


def _identity_values(engine: Engine) -> tuple[set[str], set[str]]:
    """(identifying texts, ids and timestamps) from every identity-side table."""
    with engine.connect() as connection:
        tables = _identity_tables(inspect(connection))
    texts: set[str] = set()
    stamps: set[str] = set()
    for table, rows in _table_rows(engine, tables).items():
        if table == "surveys":  # a survey is not a person: its id is on both sides on purpose
            continue
        for row in rows:
            for column, value in row.items():
                if column in IDENTIFYING_COLUMNS:
                    texts.update(_flatten(value))
                elif column == "id" or (column.endswith(("_id", "_at"))
                                        and column != "survey_id"):
                    stamps.update(_flatten(value))
    return texts, stamps


def test_no_identifying_value_reaches_the_answer_side(engine: Engine) -> None:
    """Tokens, addresses, names, municipality numbers, ids and times are absent from it."""
    _record_in_invitation_order(engine)
    texts, stamps = _identity_values(engine)
    assert {"3001", "Kommune0", "leder0@kommune0.example"} <= texts  # the check has teeth
    assert any(stamp.startswith("2020-03-02 09:00:00") for stamp in stamps)
    answer_rows = _table_rows(engine, ANSWER_SIDE)
    every_value = {text for rows in answer_rows.values() for row in rows
                   for text in _flatten(list(row.values()))}
    key_and_strata = {text for rows in answer_rows.values() for row in rows
                      for column, value in row.items() if column not in ANSWERED_VALUES
                      for text in _flatten(value)}
    assert every_value & texts == set()
    assert key_and_strata & stamps == set()
    # The counts hold categories and numbers, never a free text (which `answers` does hold).
    assert any("velferdsteknologi" in str(row["value"]) for row in answer_rows["answers"])
    counted = [str(value) for row in answer_rows["answer_counts"] for value in row.values()]
    assert '"helse"' in counted
    assert not any("velferdsteknologi" in value for value in counted)
    assert {row["respondent_type"] for row in answer_rows["responses"]} <= ROLES
    for row in answer_rows["responses"]:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(row["answered_on"]))
        assert not isinstance(row["answered_on"], dt.datetime)


def test_response_ids_are_random_and_not_in_invitation_order(engine: Engine) -> None:
    """Ids are 128-bit random hex; sorted (as an index or a dump shows them) they are shuffled."""
    in_invitation_order = _record_in_invitation_order(engine)
    assert len(set(in_invitation_order)) == PEOPLE
    for response_id in in_invitation_order:
        assert re.fullmatch(r"[0-9a-f]{32}", response_id)
    # 12 random ids fall in invitation order with probability 1/12! (about 2e-9).
    assert sorted(in_invitation_order) != in_invitation_order
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            stored = list(connection.exec_driver_sql("SELECT id FROM responses").scalars())
        assert stored == sorted(in_invitation_order)
