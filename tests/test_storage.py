"""The storage layer on SQLite and PostgreSQL: migrations, start-up checks, identity, answers.

Every test that touches a database runs once per backend (see storage_backends.py). The
anonymity proofs are in test_storage_anonymity.py, the commands in test_storage_cli.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, func, inspect, select, text
from sqlalchemy.orm import Session
from storage_support import TEST_KEY_TEXT, add_people, drop_postgres_database, new_postgres_name

from storage import tokens
from storage.answers import SEALED_TEXT, AnswerStore, LinkKey, link, scrub, seal, strata_for
from storage.db import StorageError, make_engine, session_factory, transaction
from storage.identity import (
    ensure_survey,
    find_invitation_by_token,
    invite,
    set_status,
    upsert_respondent,
)
from storage.migrate import (
    current_revision,
    head_revision,
    init_database,
    open_database,
    sqlite_file,
    upgrade,
)
from storage.schema import (
    Answer,
    Base,
    DeskQuery,
    InboxMessage,
    Invitation,
    InvitationStatus,
    OutboxMessage,
    OutboxStatus,
    Respondent,
    Response,
    ResponseLink,
    Survey,
    SurveyStatus,
)

pytest_plugins = ["storage_backends"]  # the database fixtures, on both backends

KEY = LinkKey(TEST_KEY_TEXT.encode())
DAY = dt.date(2020, 3, 2)
SURVEY = "virksomhetsleder-2020"


def _snapshot(url: str) -> dict[str, list[str]]:
    """Every row of every table, as sorted text (to prove nothing changed)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            metadata = MetaData()
            metadata.reflect(connection)
            return {name: sorted(repr(tuple(row)) for row in
                                 connection.execute(table.select()))
                    for name, table in metadata.tables.items()}
    finally:
        engine.dispose()


def _set_revision(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :r"),
                               {"r": revision})
    finally:
        engine.dispose()


def _respondent(session: Session, email: str = "Ola.Nordmann@Kommune.example",
                **changes: Any) -> Respondent:
    fields: dict[str, Any] = {
        "name": "Ola Nordmann", "role": "mayor", "municipality_no": "3001",
        "municipality_name": "Halden", "county": "Viken", "size_class": "medium",
        "landsdel": "Østlandet"}
    fields.update(changes)
    return upsert_respondent(session, email=email, **fields)


# --- migrations -----------------------------------------------------------------------------


def test_migrations_create_exactly_the_schema_of_the_models(migrated_url: str) -> None:
    """The migrated database has the models' tables and columns, and Alembic sees no diff."""
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            assert set(inspector.get_table_names()) == {*Base.metadata.tables, "alembic_version"}
            for name, table in Base.metadata.tables.items():
                columns = [c["name"] for c in inspector.get_columns(name)]
                assert columns == [c.name for c in table.columns], name
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            # The comparison can fail: a model with one more column is a difference.
            extended = MetaData()
            for table in Base.metadata.tables.values():
                table.to_metadata(extended)
            extended.tables["responses"].append_column(Column("extra", Integer))
            assert compare_metadata(context, extended) != []
    finally:
        engine.dispose()
    assert current_revision(migrated_url) == head_revision()


def test_init_refuses_a_database_that_has_tables(migrated_url: str) -> None:
    """A second `init` changes nothing, however the database came to have tables."""
    engine = open_database(migrated_url)
    with transaction(session_factory(engine)) as session:
        ensure_survey(session, SURVEY, "virksomhetsleder-2020")
    engine.dispose()
    before = _snapshot(migrated_url)
    with pytest.raises(StorageError, match="already has tables; nothing changed"):
        init_database(migrated_url)
    assert _snapshot(migrated_url) == before


def test_init_refuses_a_foreign_database(db_url: str) -> None:
    """A database with someone else's tables is neither initialised nor opened."""
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE payroll (id INTEGER PRIMARY KEY)")
    engine.dispose()
    with pytest.raises(StorageError, match="already has tables"):
        init_database(db_url)
    with pytest.raises(StorageError, match="has tables but no svarbot schema"):
        open_database(db_url)
    with pytest.raises(StorageError, match="has tables but no svarbot schema"):
        upgrade(db_url)
    assert list(_snapshot(db_url)) == ["payroll"]


def test_upgrade_is_idempotent(migrated_url: str) -> None:
    """Upgrading an up-to-date database reports no change, twice, and keeps the data."""
    engine = open_database(migrated_url)
    with transaction(session_factory(engine)) as session:
        ensure_survey(session, SURVEY, "virksomhetsleder-2020")
    engine.dispose()
    before = _snapshot(migrated_url)
    head = head_revision()
    assert upgrade(migrated_url) == (head, head)
    assert upgrade(migrated_url) == (head, head)
    assert _snapshot(migrated_url) == before


def test_upgrade_creates_the_schema_in_an_empty_database(db_url: str) -> None:
    """`db upgrade` on an empty database (an empty file on SQLite) migrates it from nothing."""
    path = sqlite_file(db_url)
    if path is not None:
        path.touch()
    assert current_revision(db_url) is None
    assert upgrade(db_url) == (None, head_revision())
    open_database(db_url).dispose()


# The newest file in storage/migrations/versions: the head every upgrade must reach.
NEWEST_MIGRATION = max(path.name[:4] for path in (
    Path(__file__).parents[1] / "storage" / "migrations" / "versions").glob("[0-9]*.py"))


def test_an_older_database_must_be_upgraded_first(db_url: str) -> None:
    """A database behind this svarbot is not opened until `svarbot db upgrade` has run."""
    assert head_revision() == NEWEST_MIGRATION
    assert init_database(db_url, revision="0001") == "0001"
    with pytest.raises(StorageError) as caught:
        open_database(db_url)
    assert str(caught.value) == ("database schema revision 0001 is older than this svarbot "
                                 f"({head_revision()}); run `svarbot db upgrade`")
    assert upgrade(db_url) == ("0001", head_revision())
    open_database(db_url).dispose()


def test_a_database_without_a_revision_is_not_svarbots(migrated_url: str) -> None:
    """Tables but no recorded revision: refused as someone else's database."""
    engine = make_engine(migrated_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM alembic_version")
    engine.dispose()
    with pytest.raises(StorageError, match="has tables but no svarbot schema"):
        open_database(migrated_url)


def test_a_newer_database_is_refused_and_left_unchanged(migrated_url: str) -> None:
    """A schema from a later svarbot: one clear message, whatever is tried, and no write."""
    engine = open_database(migrated_url)
    with transaction(session_factory(engine)) as session:
        ensure_survey(session, SURVEY, "virksomhetsleder-2020")
    engine.dispose()
    _set_revision(migrated_url, "9999")
    before = _snapshot(migrated_url)
    path = sqlite_file(migrated_url)
    raw_before = path.read_bytes() if path else b""
    expected = (f"database schema revision 9999 is newer than this svarbot "
                f"({head_revision()}); upgrade svarbot")
    for attempt in (upgrade, open_database):
        with pytest.raises(StorageError) as caught:
            attempt(migrated_url)
        assert str(caught.value) == expected
    with pytest.raises(StorageError, match="already has tables"):
        init_database(migrated_url)
    assert current_revision(migrated_url) == "9999"
    assert _snapshot(migrated_url) == before
    if path:
        assert path.read_bytes() == raw_before


@pytest.mark.parametrize("damage", ["random bytes", "damaged pages"])
def test_a_corrupt_sqlite_file_is_named_and_left_alone(tmp_path: Path, damage: str) -> None:
    """Random bytes, or a real database with its pages overwritten: one line naming the file."""
    path = tmp_path / "svarbot.db"
    url = f"sqlite:///{path}"
    if damage == "random bytes":
        path.write_bytes(bytes(range(256)) * 32)
    else:
        init_database(url)
        data = bytearray(path.read_bytes())
        data[100:] = b"\xa5" * (len(data) - 100)
        path.write_bytes(bytes(data))
    raw = path.read_bytes()
    for attempt in (open_database, upgrade, init_database, current_revision):
        with pytest.raises(StorageError) as caught:
            attempt(url)
        message = str(caught.value)
        assert message.startswith(f"{path}: not an SQLite database, or damaged"), message
        assert "\n" not in message
    assert path.read_bytes() == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svarbot.db"]


def test_a_missing_sqlite_file_is_not_created_by_opening_it(tmp_path: Path) -> None:
    """Only `init` creates a database file; opening or upgrading a missing one says so."""
    path = tmp_path / "absent.db"
    url = f"sqlite:///{path}"
    for attempt in (open_database, upgrade, current_revision):
        with pytest.raises(StorageError, match="no such database; create it with `svarbot init`"):
            attempt(url)
    assert not path.exists()
    with pytest.raises(StorageError, match="does not exist"):
        init_database(f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}")


def test_init_creates_a_missing_postgresql_database(postgres_server: str) -> None:
    """On PostgreSQL, `init` creates the database named in the URL when it is missing."""
    name = new_postgres_name()
    url = f"{postgres_server}/{name}"
    try:
        assert init_database(url) == head_revision()
        assert current_revision(url) == head_revision()
    finally:
        drop_postgres_database(name)


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    """A server that does not answer: one line, naming the URL but not its password."""
    url = "postgresql+psycopg://svarbot:hunter2@127.0.0.1:1/svarbot?connect_timeout=2"
    with pytest.raises(StorageError) as caught:
        open_database(url)
    message = str(caught.value)
    assert message.startswith("cannot use the database at postgresql+psycopg://svarbot:***@")
    assert "hunter2" not in message
    assert "\n" not in message


# --- identity -------------------------------------------------------------------------------


def _updated_at(engine: Engine, respondent_id: int) -> object:
    with engine.connect() as connection:
        return connection.execute(select(Respondent.updated_at)
                                  .where(Respondent.id == respondent_id)).scalar_one()


def test_upsert_respondent_matches_the_address_in_any_case(engine: Engine) -> None:
    """The same address in another case is the same person; an unchanged row writes nothing."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        first = _respondent(session).id
    stamp = _updated_at(engine, first)
    with transaction(factory) as session:
        again = _respondent(session, email="  ola.nordmann@KOMMUNE.example ")
        assert again.id == first
        assert again.email == "ola.nordmann@kommune.example"
    assert _updated_at(engine, first) == stamp
    with transaction(factory) as session:
        edited = _respondent(session, name="Ola N. Nordmann", sector="skole")
        assert (edited.id, edited.name, edited.sector) == (first, "Ola N. Nordmann", "skole")
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(Respondent)) == 1
        assert session.get_one(Respondent, first).name == "Ola N. Nordmann"


def test_invite_is_idempotent_and_keeps_the_invitations_state(engine: Engine) -> None:
    """Inviting again returns the same invitation with its token, status and session."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        survey = ensure_survey(session, SURVEY, "virksomhetsleder-2020")
        invitation = invite(session, _respondent(session), survey)
        assert invitation.status == InvitationStatus.PENDING
        first_id, token = invitation.id, invitation.token
        set_status(session, invitation, InvitationStatus.STARTED, "reply received")
        invitation.session_state = '{"v": 1}'
    with transaction(factory) as session:
        survey = ensure_survey(session, SURVEY, "something-else")
        assert survey.questionnaire == "virksomhetsleder-2020"
        again = invite(session, _respondent(session, name="Ola Edited"), survey)
        assert (again.id, again.token) == (first_id, token)
        assert again.status == InvitationStatus.STARTED
        assert again.session_state == '{"v": 1}'
        assert session.scalar(select(func.count()).select_from(Invitation)) == 1


def test_tokens_are_long_random_and_found_again(engine: Engine) -> None:
    """Tokens: ≥128 random bits, address-safe, all different; found in any case, else None."""
    with transaction(session_factory(engine)) as session:
        invitations = add_people(session, SURVEY, 20)
        found = [i.token for i in invitations]
        assert len(set(found)) == len(found)
        for token in found:
            assert tokens.TOKEN_PATTERN.match(token)
            assert len(base64.b32decode(token.upper())) * 8 >= 128
        target = invitations[7]
        assert find_invitation_by_token(session, target.token) is target
        assert find_invitation_by_token(session, target.token.upper()) is target
        assert find_invitation_by_token(session, tokens.new_token()) is None
        assert find_invitation_by_token(session, "not a token") is None


def test_set_status_logs_no_secret(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """The status change is logged with the invitation id; addresses and tokens are removed."""
    caplog.set_level(logging.INFO, logger="storage")
    with transaction(session_factory(engine)) as session:
        invitation = add_people(session, SURVEY, 1)[0]
        previous = set_status(session, invitation, InvitationStatus.BOUNCED,
                              f"bounce for leder0@kommune0.example ({invitation.token})")
        assert previous == InvitationStatus.PENDING
        assert invitation.status == InvitationStatus.BOUNCED
        token = invitation.token
    message = caplog.records[-1].getMessage()
    assert message.startswith(f"invitation {invitation.id}: pending -> bounced (bounce for ")
    assert "[address]" in message
    assert "[token]" in message
    assert "leder0@" not in caplog.text
    assert token not in caplog.text


# --- the answer store -----------------------------------------------------------------------


def _answers(session: Session, response_id: str) -> dict[str, object]:
    rows = session.scalars(select(Answer).where(Answer.response_id == response_id))
    return {row.answer_id: row.value for row in rows}


def test_record_creates_updates_removes_and_completes(engine: Engine) -> None:
    """The first call creates a response; later calls update it in place."""
    store = AnswerStore(KEY)
    factory = session_factory(engine)
    with transaction(factory) as session:
        invitation = add_people(session, SURVEY, 1)[0]
        respondent = session.get_one(Respondent, invitation.respondent_id)
        token, strata = invitation.token, strata_for(respondent)
    with transaction(factory) as session:
        first = store.record(session, survey_id=SURVEY, token=token, strata=strata,
                             answers={"sektor": "helse", "ansatte": 40,
                                      "tiltak": ["a", "c"], "innovasjon.tjenester": 4},
                             removed=[], completed=False, today=DAY)
    with transaction(factory) as session:
        second = store.record(session, survey_id=SURVEY, token=token, strata=strata,
                              answers={"ansatte": 41, "fritekst": "Vi prøvde nytt"},
                              removed=["tiltak", "ansatte", "never-answered"], completed=True,
                              today=DAY + dt.timedelta(days=3))
    assert second == first
    assert len(first) == 32
    assert int(first, 16) >= 0
    with transaction(factory) as session:
        assert _answers(session, first) == {"sektor": "helse", "ansatte": 41,
                                            "innovasjon.tjenester": 4,
                                            "fritekst": "Vi prøvde nytt"}
        response = session.get_one(Response, first)
        assert response.completed is True
        assert response.answered_on == DAY + dt.timedelta(days=3)
        assert (response.respondent_type, response.sector, response.landsdel,
                response.size_class) == ("unit_leader", "helse", "Østlandet", "medium")
        assert store.response_id(session, token) == first


def test_each_invitation_gets_its_own_response(engine: Engine) -> None:
    """The same token always reaches the same response; another token another one."""
    store = AnswerStore(KEY)
    factory = session_factory(engine)
    with transaction(factory) as session:
        invitations = add_people(session, SURVEY, 3)
        pairs = [(i.token, strata_for(session.get_one(Respondent, i.respondent_id)))
                 for i in invitations]
    ids = []
    for round_no in range(2):
        for token, strata in pairs:
            with transaction(factory) as session:
                ids.append(store.record(session, survey_id=SURVEY, token=token, strata=strata,
                                        answers={"q": round_no}, removed=[], completed=False,
                                        today=DAY))
    assert ids[:3] == ids[3:]
    assert len(set(ids)) == 3
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(Response)) == 3
        assert session.scalar(select(func.count()).select_from(ResponseLink)) == 3


def test_the_link_is_an_hmac_of_the_token_under_the_key(engine: Engine) -> None:
    """HMAC-SHA256 hex; another key gives another link and does not find the response."""
    token = tokens.new_token()
    other = LinkKey(b"another-key-of-sufficient-length")
    expected = hmac.new(TEST_KEY_TEXT.encode(), token.encode(), hashlib.sha256).hexdigest()
    assert link(KEY, token) == expected
    assert link(KEY, token) == link(KEY, token)
    assert link(other, token) != expected
    factory = session_factory(engine)
    with transaction(factory) as session:
        invitation = add_people(session, SURVEY, 1)[0]
        strata = strata_for(session.get_one(Respondent, invitation.respondent_id))
        store = AnswerStore(KEY)
        response_id = store.record(session, survey_id=SURVEY, token=invitation.token,
                                   strata=strata, answers={"q": 1}, removed=[],
                                   completed=False, today=DAY)
        stored = session.scalars(select(ResponseLink.link)).one()
        assert stored == link(KEY, invitation.token)
        assert AnswerStore(other).response_id(session, invitation.token) is None
        assert store.response_id(session, invitation.token) == response_id


def test_record_refuses_a_time_and_an_unknown_survey(engine: Engine) -> None:
    """A datetime never reaches the answer side; answers need a known survey."""
    store = AnswerStore(KEY)
    with transaction(session_factory(engine)) as session:
        invitation = add_people(session, SURVEY, 1)[0]
        strata = strata_for(session.get_one(Respondent, invitation.respondent_id))
        common: dict[str, Any] = {"token": invitation.token, "strata": strata,
                                  "answers": {"q": 1}, "removed": [], "completed": False}
        with pytest.raises(TypeError, match="date, not a datetime"):
            store.record(session, survey_id=SURVEY,
                         today=dt.datetime(2020, 3, 2, 14, 5, tzinfo=dt.UTC), **common)
        with pytest.raises(StorageError, match="unknown survey 'nope'"):
            store.record(session, survey_id="nope", today=DAY, **common)
        assert session.scalar(select(func.count()).select_from(Response)) == 0


def test_strata_are_the_four_coarse_values(engine: Engine) -> None:
    """strata_for keeps role, sector, landsdel and size class, and nothing else."""
    with transaction(session_factory(engine)) as session:
        mayor = _respondent(session)
        strata = strata_for(mayor)
    assert strata.__slots__ == ("respondent_type", "sector", "landsdel", "size_class")
    assert (strata.respondent_type, strata.sector, strata.landsdel, strata.size_class) == (
        "mayor", None, "Østlandet", "medium")


# --- the link key ---------------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"SVARBOT_LINK_KEY": ""},
                                     {"SVARBOT_LINK_KEY": "   "}])
def test_a_missing_link_key_says_which_variable_to_set(environ: dict[str, str]) -> None:
    """No key (or an empty one): one clear line naming the environment variable."""
    with pytest.raises(StorageError) as caught:
        LinkKey.from_env("SVARBOT_LINK_KEY", environ)
    message = str(caught.value)
    assert message.startswith("the link key is missing: set the environment variable "
                              "SVARBOT_LINK_KEY")
    assert "\n" not in message


def test_a_short_link_key_is_refused_and_a_good_one_never_shown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A guessable key is refused; a good key is read from the environment and kept hidden."""
    with pytest.raises(StorageError, match="SVARBOT_LINK_KEY is too short"):
        LinkKey.from_env("SVARBOT_LINK_KEY", {"SVARBOT_LINK_KEY": "secret"})
    monkeypatch.setenv("MY_KEY", TEST_KEY_TEXT)
    key = LinkKey.from_env("MY_KEY")
    assert key.secret == TEST_KEY_TEXT.encode()
    assert TEST_KEY_TEXT not in repr(key)
    assert TEST_KEY_TEXT not in repr(AnswerStore(key))


# --- sealing --------------------------------------------------------------------------------

MARKER = "Vi la ned skolen i Kommune0"
SEALED_MARKER = f"{MARKER} ({SURVEY})".encode()
ANSWER_TEXT = "Ingen kommentar utover dette"


def _fill_for_sealing(engine: Engine) -> tuple[list[str], list[str]]:
    """Three answering invitations with state and messages, and one in another survey."""
    store = AnswerStore(KEY)
    tokens_: list[str] = []
    with transaction(session_factory(engine)) as session:
        invitations = add_people(session, SURVEY, 3)
        other = ensure_survey(session, "ordforer-2020", "ordforer-2020")
        invitations.append(invite(session, _respondent(session), other))
        for n, invitation in enumerate(invitations):
            held = f"{MARKER} ({invitation.survey_id})"
            invitation.session_state = json.dumps({"answers": {"fritekst": held}})
            session.add(OutboxMessage(idempotency_key=f"confirm-{n}", invitation_id=invitation.id,
                                      channel="email", kind="confirm", recipient="x@y.example",
                                      payload={"body": held}, status=OutboxStatus.QUEUED,
                                      attempts=0))
            session.add(InboxMessage(channel="email", external_id=f"INBOX/1/{n}",
                                     invitation_id=invitation.id, raw=held.encode()))
            session.add(DeskQuery(invitation_id=invitation.id, text=f"Spørsmål: {held}",
                                  answer=f"Svar: {held}"))
            store.record(session, survey_id=invitation.survey_id, token=invitation.token,
                         strata=strata_for(session.get_one(Respondent, invitation.respondent_id)),
                         answers={"fritekst": ANSWER_TEXT, "n": n}, removed=[], completed=True,
                         today=DAY)
            tokens_.append(invitation.token)
    return tokens_[:3], tokens_[3:]


def _database_bytes(url: str) -> bytes:
    path = sqlite_file(url)
    assert path is not None
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_seal_makes_answers_untieable_and_keeps_them(engine: Engine, migrated_url: str) -> None:
    """Links and every identity-side copy of answers go; the answers stay; it is for good."""
    sealed_tokens, other_tokens = _fill_for_sealing(engine)
    links = [link(KEY, t) for t in sealed_tokens]
    if engine.dialect.name == "sqlite":  # the byte checks below can fail:
        assert links[0].encode() in _database_bytes(migrated_url)
        assert SEALED_MARKER in _database_bytes(migrated_url)
    factory = session_factory(engine)
    with transaction(factory) as session:
        result = seal(session, SURVEY)
    scrub(engine)
    assert (result.already_sealed, result.links_deleted, result.sessions_cleared) == (
        False, 3, 3)
    store = AnswerStore(KEY)
    with transaction(factory) as session:
        assert [store.response_id(session, t) for t in sealed_tokens] == [None] * 3
        assert store.response_id(session, other_tokens[0]) is not None
        mine = select(Invitation.id).where(Invitation.survey_id == SURVEY)
        assert set(session.scalars(select(Invitation.session_state)
                                   .where(Invitation.survey_id == SURVEY))) == {None}
        assert session.scalar(select(func.count()).select_from(Invitation)
                              .where(Invitation.session_state.is_not(None))) == 1
        assert set(session.scalars(select(InboxMessage.raw)
                                   .where(InboxMessage.invitation_id.in_(mine)))) == {None}
        outbox = session.execute(select(OutboxMessage.payload, OutboxMessage.status)
                                 .where(OutboxMessage.invitation_id.in_(mine))).all()
        assert {tuple(row) for row in outbox} == {(None, OutboxStatus.DEAD)}
        queries = session.execute(select(DeskQuery.text, DeskQuery.answer)
                                  .where(DeskQuery.invitation_id.in_(mine))).all()
        assert {tuple(row) for row in queries} == {(SEALED_TEXT, None)}
        assert session.scalar(select(func.count()).select_from(DeskQuery)
                              .where(DeskQuery.text != SEALED_TEXT)) == 1  # the other survey
        assert session.scalar(select(func.count()).select_from(Response)
                              .where(Response.survey_id == SURVEY)) == 3
        assert session.scalar(select(func.count()).select_from(Answer)) == 8
        survey = session.get_one(Survey, SURVEY)
        assert survey.status == SurveyStatus.SEALED
        assert survey.sealed_at is not None
        with pytest.raises(StorageError, match="is sealed"):
            store.record(session, survey_id=SURVEY, token=sealed_tokens[0],
                         strata=strata_for(session.get_one(Respondent, 1)),
                         answers={"q": 1}, removed=[], completed=False, today=DAY)
    with transaction(factory) as session:
        assert seal(session, SURVEY).already_sealed is True
    if engine.dialect.name == "sqlite":
        raw = _database_bytes(migrated_url)
        assert not any(value.encode() in raw for value in links)
        assert SEALED_MARKER not in raw


def _physical_order_and_stamps(engine: Engine) -> tuple[list[str], int]:
    with engine.connect() as connection:
        physical = list(connection.exec_driver_sql("SELECT id FROM responses").scalars())
        stamps = connection.execute(text(
            "SELECT count(DISTINCT xmin::text) FROM responses WHERE survey_id = :s"),
            {"s": SURVEY}).scalar_one()
    return physical, int(stamps)


def test_seal_rewrites_postgresql_tables_in_key_order(postgres_database: str) -> None:
    """PostgreSQL keeps rows in write order, each stamped with its transaction (xmin): after
    sealing they lie in random-key order and share one stamp."""
    init_database(postgres_database)
    engine = open_database(postgres_database)
    try:
        _fill_for_sealing(engine)
        with engine.begin() as connection:  # one more write, so the stamps differ before
            connection.execute(text("UPDATE responses SET completed = false WHERE id = "
                                    "(SELECT min(id) FROM responses WHERE survey_id = :s)"),
                               {"s": SURVEY})
        assert _physical_order_and_stamps(engine)[1] == 2
        with transaction(session_factory(engine)) as session:
            seal(session, SURVEY)
        scrub(engine)
        physical, stamps = _physical_order_and_stamps(engine)
    finally:
        engine.dispose()
    assert physical == sorted(physical)
    assert stamps == 1


def test_seal_of_an_unknown_survey_is_an_error(engine: Engine) -> None:
    """Nothing to seal: a StorageError naming the survey."""
    with transaction(session_factory(engine)) as session, \
            pytest.raises(StorageError, match="unknown survey 'nope'"):
        seal(session, "nope")


def test_storage_logs_carry_no_tokens_addresses_or_answers(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Invite, answer and seal with every log record captured: none holds a secret."""
    caplog.set_level(logging.DEBUG)
    sealed_tokens, _ = _fill_for_sealing(engine)
    with transaction(session_factory(engine)) as session:
        invitation = find_invitation_by_token(session, sealed_tokens[0])
        assert invitation is not None
        set_status(session, invitation, InvitationStatus.FINISHED, "last page answered")
        addresses = list(session.scalars(select(Respondent.email)))
        seal(session, SURVEY)
    assert caplog.records, "the cycle logs something"
    logged = caplog.text
    for secret in (*sealed_tokens, *addresses, MARKER, ANSWER_TEXT, TEST_KEY_TEXT,
                   *(link(KEY, t) for t in sealed_tokens)):
        assert secret not in logged


# --- the PostgreSQL fixture itself ----------------------------------------------------------


@pytest.mark.parametrize(("ci", "outcome"), [(True, "1 error"), (False, "1 skipped")])
def test_an_unreachable_postgresql_fails_under_ci_and_skips_elsewhere(
        ci: bool, outcome: str) -> None:
    """Without a server, PostgreSQL tests skip with the reason; under CI they fail instead."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update({"SVARBOT_TEST_POSTGRES": "postgresql+psycopg://postgres@127.0.0.1:1",
                "SVARBOT_TEST_POSTGRES_WAIT": "0.3"})
    if ci:
        env["CI"] = "1"
    target = f"{Path(__file__).name}::test_init_creates_a_missing_postgresql_database"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           target], cwd=Path(__file__).parent, env=env, text=True,
                          capture_output=True, timeout=120, check=False)
    assert outcome in done.stdout, done.stdout + done.stderr
    assert "PostgreSQL at postgresql+psycopg://postgres@127.0.0.1:1 is not reachable" in done.stdout
    assert done.returncode == (1 if ci else 0)
    if ci:
        assert "CI is set: PostgreSQL tests must run" in done.stdout
