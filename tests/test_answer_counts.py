"""`answer_counts` stays exactly what `answers` ⨝ `responses` says, on SQLite and PostgreSQL.

The counts are checked against a recount done here, in Python, from every stored answer and
response (not through `storage.counts`' own SQL), after fixed and random sequences of
`AnswerStore.record` calls; and the report read from them against the report counted from the
answers. Then: sealing keeps them, and `svarbot db upgrade` from 0001 back-fills them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, MetaData, insert, inspect, select, text
from storage_support import TEST_KEY_TEXT

from bot.cli import main
from flows.loader import load_shipped, parse
from flows.model import AnswerValue, Questionnaire
from storage.aggregate import (
    Tally,
    build_report,
    build_report_from_answers,
    grouped_counts,
    grouped_values,
    key_specs,
    tally,
    tally_counts,
)
from storage.answers import AnswerStore, LinkKey, Strata, scrub, seal
from storage.counts import (
    CountKey,
    counted_by_value,
    counts_from_answers,
    stored_counts,
    value_keys,
)
from storage.db import StorageError, make_engine, session_factory, transaction
from storage.identity import ensure_survey
from storage.migrate import (
    current_revision,
    head_revision,
    init_database,
    open_database,
    upgrade,
)
from storage.schema import Answer, Response, Survey

pytest_plugins = ["storage_backends"]  # the database fixtures, on both backends

KEY = LinkKey(TEST_KEY_TEXT.encode())
DAY = dt.date(2020, 3, 2)
TELLING_TEXT = "Rådmannen i Agder er inhabil"

QUESTIONNAIRE = """
spec_version: 1
id: test-counts
title: Test
pages:
  - id: p
    title: P
    items:
      - id: sektor
        type: single
        text: "Sektor?"
        options: [{id: helse, label: "Helse"}, {id: kultur, label: "Kultur"}]
      - id: tiltak
        type: multi
        text: "Tiltak?"
        options: [{id: x, label: "X"}, {id: y, label: "Y"}, {id: z, label: "Z"}]
      - {id: ny, type: yesno, dont_know: true, text: "Noe nytt?"}
      - id: grad
        type: scale
        text: "Grad?"
        scale: {min: 1, max: 4, dont_know: true}
      - id: rad
        type: grid
        row_type: yesno
        text: "Rader"
        rows: [{id: a, label: "A"}, {id: b, label: "B"}]
      - {id: ansatte, type: number, min: 0, max: 1000, text: "Ansatte?"}
      - {id: fritt, type: text, text: "Noe mer?"}
"""
ANSWER_IDS = ("sektor", "tiltak", "ny", "grad", "rad.a", "rad.b", "ansatte", "fritt", "ukjent")
LEADER = Strata("unit_leader", "helse", "Østlandet", "medium")
MAYOR = Strata("mayor", None, "Nord-Norge", "small")
TOKENS = [f"t{n}" for n in range(3)]


def questionnaire() -> Questionnaire:
    return parse(QUESTIONNAIRE, "test-counts.yaml")


def expected_counts(connection: Connection, survey_id: str,
                    q: Questionnaire) -> Counter[CountKey]:
    """The counts recomputed here from every response and answer of the survey, in Python."""
    by_value = counted_by_value(q)
    strata = {}
    found: Counter[CountKey] = Counter()
    responses = connection.execute(
        select(Response.id, Response.respondent_type, Response.sector, Response.landsdel,
               Response.size_class, Response.completed).where(Response.survey_id == survey_id))
    for response_id, respondent_type, sector, landsdel, size_class, completed in responses:
        strata[response_id] = (respondent_type, sector or "", landsdel or "", size_class or "",
                               completed)
        found[("", "", *strata[response_id])] += 1
    answers = connection.execute(select(Answer.response_id, Answer.answer_id, Answer.value)
                                 .where(Answer.response_id.in_(strata)))
    for response_id, answer_id, value in answers:
        for key in value_keys(value, by_value=answer_id in by_value):
            found[(answer_id, key, *strata[response_id])] += 1
    return found


def counts(engine: Engine, survey_id: str) -> Counter[CountKey]:
    with engine.connect() as connection:
        return stored_counts(connection, survey_id)


def _plain(tallies: Mapping[str, Tally]) -> dict[str, object]:
    """Tallies without empty entries, to compare."""
    return {answer_id: ({s: n for s, n in t.answered.items() if n},
                        {s: {c: n for c, n in found.items() if n}
                         for s, found in t.counts.items() if any(found.values())})
            for answer_id, t in tallies.items()}


def assert_in_step(engine: Engine, survey_id: str, q: Questionnaire) -> None:
    """The table, the recount here, the recount in SQL, the tallies and both reports agree."""
    specs = key_specs(q)
    by_id = {s.answer_id: s for s in specs}
    with engine.connect() as connection:
        stored = stored_counts(connection, survey_id)
        assert all(n > 0 for n in stored.values()), "rows that reach 0 are deleted"
        assert stored == expected_counts(connection, survey_id, q)
        assert stored == counts_from_answers(connection, survey_id, q)
        for by in [(), ("sector",), ("landsdel", "size_class"), ("respondent_type",)]:
            assert _plain(tally_counts(by_id, grouped_counts(connection, survey_id, by, specs))) \
                == _plain(tally(by_id, grouped_values(connection, survey_id, by, specs))), by
            assert build_report(connection, survey_id, q, by, 1) == \
                build_report_from_answers(connection, survey_id, q, by, 1), by


def record(engine: Engine, survey_id: str, token: str, strata: Strata,
           answers: Mapping[str, AnswerValue], removed: Sequence[str] = (), *,
           completed: bool = False, q: Questionnaire | None = None) -> str:
    with transaction(session_factory(engine)) as session:
        return AnswerStore(KEY).record(session, survey_id=survey_id, token=token, strata=strata,
                                       answers=answers, removed=list(removed),
                                       completed=completed, today=DAY,
                                       questionnaire=q or questionnaire())


def new_survey(engine: Engine, survey_id: str, reference: str = "test-counts.yaml") -> None:
    with transaction(session_factory(engine)) as session:
        ensure_survey(session, survey_id, reference)


def rows(strata: Strata, completed: bool, keys: Mapping[str, Sequence[str]],
         n: int = 1) -> Counter[CountKey]:
    """Count rows for one stratum: answer id → value keys, each counted n times."""
    stratum = (strata.respondent_type, strata.sector or "", strata.landsdel or "",
               strata.size_class or "", completed)
    return Counter({(answer_id, key, *stratum): n for answer_id, keys_ in
                    {"": [""], **keys}.items() for key in keys_})


# --- what an answer counts as -------------------------------------------------------------------


def test_value_keys_are_the_value_as_json_and_never_a_text() -> None:
    assert value_keys("helse", by_value=True) == ('"helse"',)
    assert value_keys("Østlandet", by_value=True) == ('"Østlandet"',)
    assert value_keys(4, by_value=True) == ("4",)
    assert value_keys("4", by_value=True) == ('"4"',)  # not the number 4: a number is banded
    assert value_keys(["x", "y", "x"], by_value=True) == ("[]", '["x"]', '["y"]')
    assert value_keys([], by_value=True) == ("[]",)
    assert value_keys(TELLING_TEXT, by_value=False) == ('"answered"',)
    assert value_keys("", by_value=False) == ()
    assert value_keys(None, by_value=False) == ()
    assert counted_by_value(questionnaire()) == {"sektor", "tiltak", "ny", "grad", "rad.a",
                                                 "rad.b", "ansatte"}


# --- record keeps them in step ------------------------------------------------------------------


def test_record_moves_counts_with_every_change(engine: Engine) -> None:
    """Set, change, remove, complete and move to another stratum: each row follows, rows that
    reach 0 disappear, and a free text is only ever "answered"."""
    new_survey(engine, "s")
    first = {"sektor": "helse", "tiltak": ["x", "y"], "fritt": TELLING_TEXT, "ansatte": 40}
    record(engine, "s", "t1", LEADER, first)
    one = {"sektor": ['"helse"'], "tiltak": ["[]", '["x"]', '["y"]'], "fritt": ['"answered"'],
           "ansatte": ["40"]}
    assert counts(engine, "s") == rows(LEADER, False, one)

    record(engine, "s", "t2", LEADER, {"sektor": "kultur", "tiltak": ["y"], "fritt": ""})
    two = {"sektor": ['"kultur"'], "tiltak": ["[]", '["y"]']}
    assert counts(engine, "s") == rows(LEADER, False, one) + rows(LEADER, False, two)

    record(engine, "s", "t1", LEADER, {"tiltak": ["z"], "grad": "dont_know"},
           removed=["fritt", "ansatte", "grad", "never-answered"], completed=True)
    one_done = {"sektor": ['"helse"'], "tiltak": ["[]", '["z"]'], "grad": ['"dont_know"']}
    assert counts(engine, "s") == rows(LEADER, True, one_done) + rows(LEADER, False, two)

    record(engine, "s", "t2", MAYOR, {}, removed=["tiltak"])
    assert counts(engine, "s") == rows(LEADER, True, one_done) + rows(
        MAYOR, False, {"sektor": ['"kultur"']})
    with engine.connect() as connection:
        stored = "".join(str(v) for row in connection.execute(text(
            "SELECT * FROM answer_counts")) for v in row)
    assert TELLING_TEXT not in stored
    assert_in_step(engine, "s", questionnaire())


def test_an_empty_stratum_is_a_missing_one(engine: Engine) -> None:
    """'' and None are one stratum in the counts, so the response stores None for both."""
    new_survey(engine, "s")
    record(engine, "s", "t1", Strata("mayor", "", "Agder", ""), {"sektor": "helse"})
    record(engine, "s", "t2", Strata("mayor", None, "Agder", None), {"sektor": "helse"})
    with engine.connect() as connection:
        stored = connection.execute(select(Response.sector, Response.size_class)).all()
    assert [tuple(row) for row in stored] == [(None, None), (None, None)]
    assert counts(engine, "s") == rows(Strata("mayor", None, "Agder", None), False,
                                       {"sektor": ['"helse"']}, n=2)
    assert_in_step(engine, "s", questionnaire())


def test_record_without_a_questionnaire_reads_the_surveys(engine: Engine,
                                                          tmp_path: Path) -> None:
    """The questionnaire comes from the survey's reference when the caller has none at hand;
    one that cannot be read stops the write (answers are never counted by a guess)."""
    path = tmp_path / "counts.yaml"
    path.write_text(QUESTIONNAIRE, encoding="utf-8")
    new_survey(engine, "s", str(path))
    new_survey(engine, "lost", str(tmp_path / "gone.yaml"))
    with transaction(session_factory(engine)) as session:
        AnswerStore(KEY).record(session, survey_id="s", token=TOKENS[0], strata=LEADER,
                                answers={"sektor": "helse", "fritt": TELLING_TEXT}, removed=[],
                                completed=False, today=DAY)
    assert counts(engine, "s") == rows(LEADER, False, {"sektor": ['"helse"'],
                                                        "fritt": ['"answered"']})
    with pytest.raises(StorageError, match=r"survey lost: its questionnaire .*gone\.yaml "
                                           r"cannot be read"), \
            transaction(session_factory(engine)) as session:
        AnswerStore(KEY).record(session, survey_id="lost", token=TOKENS[1], strata=LEADER,
                                answers={"sektor": "helse"}, removed=[], completed=False,
                                today=DAY)
    with engine.connect() as connection:
        assert connection.execute(select(Response.id).where(Response.survey_id == "lost")
                                  ).all() == []


_SURVEYS = itertools.count()
STRATA_CHOICES = [LEADER, MAYOR, Strata("unit_leader", "kultur", "Østlandet", "medium"),
                  Strata("unit_leader", "", "Østlandet", "medium"),
                  Strata("mayor", None, "Agder", None)]
#: Mostly what the engine stores, with odd values in between (a list for a single choice,
#: repeated options, a boolean, any text), which must be counted exactly as the report would.
VALUES = st.one_of(
    st.sampled_from(["helse", "kultur", "yes", "no", "dont_know", "not_relevant", "x", ""]),
    st.integers(-3, 1200),
    st.lists(st.sampled_from(["x", "y", "z", "x", "w", "helse"]), max_size=5),
    st.booleans(),
    st.text(max_size=6),
)
STEPS = st.lists(st.tuples(
    st.integers(0, 2),
    st.sampled_from(STRATA_CHOICES),
    st.dictionaries(st.sampled_from(ANSWER_IDS), VALUES, max_size=5),
    st.lists(st.sampled_from(ANSWER_IDS), max_size=3),
    st.booleans(),
), min_size=1, max_size=7)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(steps=STEPS)
@example(steps=[(0, LEADER, {"tiltak": ["x", "x", "w"], "sektor": ["helse"], "ny": True,
                             "fritt": "", "ukjent": "hva som helst"}, [], False),
                (1, MAYOR, {"tiltak": "x", "ansatte": "40", "grad": 4.0}, [], True),
                (0, MAYOR, {"ansatte": 5000}, ["tiltak", "sektor"], True)])
def test_any_sequence_of_records_keeps_the_counts_exact(
        engine: Engine, steps: list[tuple[int, Strata, dict[str, AnswerValue], list[str],
                                          bool]]) -> None:
    """Random records (new, changed and removed answers, odd values, strata and completion
    changes) by three respondents: the counts equal a recount from the answers, every time."""
    survey_id = f"s{next(_SURVEYS)}"  # each example has a survey of its own
    new_survey(engine, survey_id)
    for respondent, strata, answers, removed, completed in steps:
        record(engine, survey_id, f"{survey_id}-t{respondent}", strata, answers, removed,
               completed=completed)
    assert_in_step(engine, survey_id, questionnaire())


def test_two_messages_of_one_respondent_at_once_are_counted_in_turn(
        postgres_database: str) -> None:
    """PostgreSQL: while one transaction changes a response, a second change to it waits, and
    then counts from the first one's result (not from what both saw at the start)."""
    init_database(postgres_database)
    engine = open_database(postgres_database)
    try:
        new_survey(engine, "s")
        record(engine, "s", TOKENS[0], LEADER, {"sektor": "helse", "tiltak": ["x"]})
        factory = session_factory(engine)
        store = AnswerStore(KEY)
        common = {"survey_id": "s", "token": TOKENS[0], "removed": [], "today": DAY,
                  "questionnaire": questionnaire()}
        second_done = threading.Event()

        def second() -> None:
            with transaction(factory) as session:
                store.record(session, strata=MAYOR, answers={"sektor": "helse",
                                                             "tiltak": ["z"]},
                             completed=True, **common)
            second_done.set()

        with transaction(factory) as session:
            store.record(session, strata=LEADER, answers={"sektor": "kultur"},
                         completed=False, **common)
            waiting = threading.Thread(target=second)
            waiting.start()
            assert not second_done.wait(0.5), "the second change must wait for the first"
        waiting.join(timeout=30)
        assert second_done.is_set()
        assert counts(engine, "s") == rows(MAYOR, True, {"sektor": ['"helse"'],
                                                         "tiltak": ["[]", '["z"]']})
        assert_in_step(engine, "s", questionnaire())
    finally:
        engine.dispose()


# --- seal ---------------------------------------------------------------------------------------


def _stamps(engine: Engine, survey_id: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(
            "SELECT count(DISTINCT xmin::text) FROM answer_counts WHERE survey_id = :s"),
            {"s": survey_id}).scalar_one())


def test_seal_keeps_the_counts_and_rewrites_their_rows(engine: Engine) -> None:
    """Sealed, the counts and the report are unchanged; on PostgreSQL the count rows no longer
    carry the transaction stamps they shared with the identity side."""
    new_survey(engine, "s")
    for n in range(6):
        record(engine, "s", f"t{n}", LEADER if n % 2 else MAYOR,
               {"sektor": "helse", "tiltak": ["x"], "fritt": f"{TELLING_TEXT} {n}",
                "ansatte": n * 10}, completed=True)
    before = counts(engine, "s")
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), ("respondent_type",), 1)
    postgres = engine.dialect.name == "postgresql"
    if postgres:
        assert _stamps(engine, "s") > 1
    with transaction(session_factory(engine)) as session:
        seal(session, "s")
    scrub(engine)
    assert counts(engine, "s") == before
    assert_in_step(engine, "s", questionnaire())
    with engine.connect() as connection:
        assert build_report(connection, "s", questionnaire(), ("respondent_type",), 1) == report
    if postgres:
        assert _stamps(engine, "s") == 1


# --- migration 0002 -----------------------------------------------------------------------------


def _fill_0001(url: str, surveys: Mapping[str, str]) -> None:
    """Responses and answers written straight into a revision-0001 database."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for n, (survey_id, reference) in enumerate(surveys.items()):
                connection.execute(insert(Survey), [{"id": survey_id,
                                                     "questionnaire": reference}])
                for i in range(7):
                    response_id = f"{n:02d}{i:030x}"
                    strata = STRATA_CHOICES[i % len(STRATA_CHOICES)]
                    connection.execute(insert(Response), [{
                        "id": response_id, "survey_id": survey_id, "answered_on": DAY,
                        "completed": i % 3 == 0, "respondent_type": strata.respondent_type,
                        "sector": strata.sector, "landsdel": strata.landsdel,
                        "size_class": strata.size_class}])
                    answers: dict[str, object] = {
                        "sektor": ["helse", "kultur"][i % 2], "tiltak": [["x"], ["y", "z"]][i % 2],
                        "ansatte": i * 37, "fritt": "" if i % 2 else f"{TELLING_TEXT} {i}",
                        "kommentar": f"{TELLING_TEXT} ({i})"}
                    connection.execute(insert(Answer), [
                        {"response_id": response_id, "answer_id": k, "value": v}
                        for k, v in answers.items()])
    finally:
        engine.dispose()


def _snapshot(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            metadata = MetaData()
            metadata.reflect(connection)
            return {name: sorted(repr(tuple(row)) for row in connection.execute(table.select()))
                    for name, table in metadata.tables.items()}
    finally:
        engine.dispose()


def _config(tmp_path: Path, url: str) -> str:
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {url}\n", encoding="utf-8")
    return str(config)


def test_db_upgrade_from_0001_counts_the_answers_already_stored(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`svarbot db upgrade` on a 0001 database with answers: the counts are back-filled with
    each survey's questionnaire (a file, and a shipped one), and the report reads them."""
    path = tmp_path / "counts.yaml"
    path.write_text(QUESTIONNAIRE, encoding="utf-8")
    assert init_database(db_url, revision="0001") == "0001"
    _fill_0001(db_url, {"s": str(path), "virksomhetsleder-2020": "virksomhetsleder-2020"})
    before = _snapshot(db_url)
    assert "answer_counts" not in before
    result = CliRunner().invoke(main, ["db", "upgrade", "--config", _config(tmp_path, db_url)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ("upgraded the database from schema revision 0001 to "
                                     + head_revision())
    after = _snapshot(db_url)
    assert {name: after[name] for name in before if name != "alembic_version"} == \
        {name: before[name] for name in before if name != "alembic_version"}
    assert TELLING_TEXT not in "".join(after["answer_counts"])
    engine = open_database(db_url)
    try:
        assert_in_step(engine, "s", questionnaire())
        assert_in_step(engine, "virksomhetsleder-2020", load_shipped("virksomhetsleder-2020"))
        with engine.connect() as connection:
            kommentar = {key: n for key, n in stored_counts(
                connection, "virksomhetsleder-2020").items() if key[0] == "kommentar"}
        assert {key[1] for key in kommentar} == {'"answered"'}
        assert sum(kommentar.values()) == 7
        caplog.set_level(logging.WARNING)
        with engine.connect() as connection:
            build_report(connection, "s", questionnaire(), ("sector",))
        assert "do not cover" not in caplog.text
    finally:
        engine.dispose()


def test_upgrade_stops_when_a_questionnaire_cannot_be_read(db_url: str, tmp_path: Path) -> None:
    """A survey with answers whose questionnaire is gone: one line naming it, and the database
    is left at 0001 exactly as it was."""
    assert init_database(db_url, revision="0001") == "0001"
    missing = str(tmp_path / "gone.yaml")
    _fill_0001(db_url, {"a": "virksomhetsleder-2020", "b": missing})
    before = _snapshot(db_url)
    with pytest.raises(StorageError) as caught:
        upgrade(db_url)
    message = str(caught.value)
    assert message.startswith(f"survey b: its questionnaire {missing} cannot be read (")
    assert "\n" not in message
    assert current_revision(db_url) == "0001"
    assert _snapshot(db_url) == before
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            assert "answer_counts" not in inspect(connection).get_table_names()
    finally:
        engine.dispose()
    result = CliRunner().invoke(main, ["db", "upgrade", "--config", _config(tmp_path, db_url)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"svarbot: {message}"
    assert upgrade(db_url, questionnaires=lambda _reference: questionnaire()) == (
        "0001", head_revision())
    assert json.dumps(_snapshot(db_url)["answer_counts"], ensure_ascii=False).count(
        "answered") > 0
