"""The raw export: strata and answers only, no ids or dates, in an order that tells nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import random
import re
import secrets
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyreadstat
import pytest
from click.testing import CliRunner, Result
from openpyxl import load_workbook
from sqlalchemy import Engine, create_engine, insert, select

from flows.loader import load_shipped, parse
from flows.model import Item, ItemType, Questionnaire
from storage.counts import recount
from storage.export import (
    CODEBOOK_COLUMNS,
    STRATA_COLUMNS,
    Export,
    codebook,
    codebook_path,
    export_answers,
    spss_name,
    with_labels,
    write_csv,
    write_export,
    write_json,
    write_sav,
)
from storage.schema import Answer, Base, Response, Survey

QUESTIONNAIRE = """
spec_version: 1
id: test-export
title: Test
pages:
  - id: p
    title: P
    items:
      - id: sektor
        type: single
        text: "Sektor"
        options: [{id: helse, label: "Helse"}, {id: kultur, label: "Kultur"}]
      - id: tiltak
        type: multi
        text: "Tiltak"
        options: [{id: x, label: "X"}, {id: y, label: "Y"}]
      - id: rad
        type: grid
        row_type: yesno
        text: "Rader"
        rows: [{id: a, label: "A"}, {id: b, label: "B"}]
      - {id: nummer, type: number, min: 0, max: 100000, text: "Nummer"}
      - {id: fritt, type: text, text: "Noe mer?"}
"""
N = 200
FORMULA = "=HYPERLINK(\"http://example.invalid\",\"klikk\")"


def questionnaire() -> Questionnaire:
    return parse(QUESTIONNAIRE, "test-export.yaml")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'svarbot.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def fill(engine: Engine, n: int = N) -> list[str]:
    """n responses inserted one by one, numbered 0..n-1 in `nummer`; returns their ids."""
    ids = []
    with engine.begin() as connection:
        connection.execute(insert(Survey), [{"id": "s", "questionnaire": "test-export.yaml"}])
        for number in range(n):
            response_id = secrets.token_hex(16)
            ids.append(response_id)
            connection.execute(insert(Response), [{
                "id": response_id, "survey_id": "s", "respondent_type": "unit_leader",
                "sector": "helse", "landsdel": "Vestlandet", "size_class": "M",
                "completed": number % 2 == 0, "answered_on": dt.date(2019, 10, 14)}])
            values: dict[str, object] = {"sektor": "helse", "tiltak": ["x", "y"],
                                         "rad.a": "yes", "nummer": number}
            if number == 0:
                values["fritt"] = FORMULA
            connection.execute(insert(Answer), [
                {"response_id": response_id, "answer_id": k, "value": v}
                for k, v in values.items()])
        recount(connection, "s", questionnaire())  # the report's counts, as 0002 back-fills them
    return ids


def exported(engine: Engine, rng: random.Random | None = None) -> Export:
    with engine.connect() as connection:
        return export_answers(connection, "s", questionnaire(), rng=rng)


def test_rows_hold_strata_and_answers_only(engine: Engine) -> None:
    ids = fill(engine)
    data = exported(engine)
    assert data.header == (*STRATA_COLUMNS, "sektor", "tiltak", "rad.a", "rad.b", "nummer",
                           "fritt")
    assert "id" not in data.header
    assert "answered_on" not in data.header
    assert len(data.rows) == N
    row = next(r for r in data.rows if r[data.header.index("nummer")] == 1)
    assert row == ["unit_leader", "helse", "Vestlandet", "M", False, "helse", ["x", "y"], "yes",
                   None, 1, None]
    text = io.StringIO()
    write_csv(data, text)
    as_json = io.StringIO()
    write_json(data, as_json)
    for output in (text.getvalue(), as_json.getvalue()):
        assert not any(response_id in output for response_id in ids)
        assert "2019" not in output


def test_row_order_is_neither_insertion_nor_key_order(engine: Engine) -> None:
    """With 200 rows, a shuffle that keeps either order has probability 2/200!."""
    ids = fill(engine)
    with engine.connect() as connection:
        key_order = list(connection.execute(
            select(Answer.value).where(Answer.answer_id == "nummer")
            .order_by(Answer.response_id)).scalars())
    numbers = [row[-2] for row in exported(engine).rows]
    assert sorted(numbers) == list(range(N))
    assert numbers != list(range(N))
    assert numbers != key_order
    assert len(ids) == N


def test_the_log_holds_no_answers(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Exporting and reporting log counts, never what anyone answered."""
    from storage.aggregate import build_report

    fill(engine, 10)
    caplog.set_level(logging.DEBUG)
    exported(engine)
    with engine.connect() as connection:
        build_report(connection, "s", questionnaire(), ("sector",))
    assert "10 responses" in caplog.text
    assert "HYPERLINK" not in caplog.text
    assert "helse" not in caplog.text


def test_the_shuffle_uses_the_given_random_source(engine: Engine) -> None:
    fill(engine, 30)
    first = [row[-2] for row in exported(engine, random.Random(1)).rows]
    again = [row[-2] for row in exported(engine, random.Random(1)).rows]
    assert first == again


def test_csv_and_json_shapes(engine: Engine) -> None:
    fill(engine, 3)
    data = exported(engine)
    text = io.StringIO()
    write_csv(data, text)
    rows = list(csv.reader(io.StringIO(text.getvalue())))
    assert rows[0] == list(data.header)
    by_number = {r[data.header.index("nummer")]: r for r in rows[1:]}
    assert by_number["0"][data.header.index("completed")] == "true"
    assert by_number["0"][data.header.index("fritt")] == "'" + FORMULA  # never a formula
    assert by_number["1"][data.header.index("rad.b")] == ""
    as_json = io.StringIO()
    write_json(data, as_json)
    records = json.loads(as_json.getvalue())
    assert [set(r) for r in records] == [set(data.header)] * 3
    first = next(r for r in records if r["nummer"] == 0)
    assert first["completed"] is True
    assert first["tiltak"] == ["x", "y"]  # a list in JSON, "x;y" in CSV
    assert by_number["0"][data.header.index("tiltak")] == "x;y"
    assert first["fritt"] == FORMULA
    assert first["rad.b"] is None


# --- the command --------------------------------------------------------------------------------


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from storage.migrate import init_database

    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    (tmp_path / "test-export.yaml").write_text(QUESTIONNAIRE, encoding="utf-8")
    engine = create_engine(url)
    fill(engine, 12)
    engine.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {url}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return config


def run(*args: str) -> Result:
    from bot.cli import main

    return CliRunner().invoke(main, list(args))


def test_export_command_xlsx_opens_with_openpyxl(configured: Path, tmp_path: Path) -> None:
    out = tmp_path / "svar.xlsx"
    result = run("export", "answers", "--survey", "s", "--format", "xlsx", "--out", str(out),
                 "--config", str(configured))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == f"{out}: 12 responses"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    sheet = load_workbook(out)["svar"]
    rows: list[tuple[Any, ...]] = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == STRATA_COLUMNS
    assert len(rows) == 13
    formula_row = next(r for r in sheet.iter_rows() if r[-2].value == 0)
    assert formula_row[-1].value == FORMULA
    assert formula_row[-1].data_type == "s"


def test_export_command_csv_and_json_to_stdout(configured: Path) -> None:
    as_csv = run("export", "answers", "--survey", "s", "--config", str(configured))
    assert as_csv.exit_code == 0, as_csv.stderr
    assert as_csv.stdout.splitlines()[0].startswith(",".join(STRATA_COLUMNS) + ",sektor")
    assert len(as_csv.stdout.splitlines()) == 13
    as_json = run("export", "answers", "--survey", "s", "--format", "json",
                  "--config", str(configured))
    assert as_json.exit_code == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)) == 12


def test_export_command_errors(configured: Path) -> None:
    no_out = run("export", "answers", "--survey", "s", "--format", "xlsx",
                 "--config", str(configured))
    assert no_out.exit_code == 2
    assert no_out.stderr.strip() == "svarbot: xlsx is a binary format: give --out FILE.xlsx"
    unknown = run("export", "answers", "--survey", "nope", "--config", str(configured))
    assert unknown.exit_code == 1
    assert "no survey 'nope'" in unknown.stderr


# --- the codebook -------------------------------------------------------------------------------

SPSS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def entries_of(book: list[dict[str, Any]], answer_id: str) -> list[dict[str, Any]]:
    return [e for e in book if e["answer_id"] == answer_id]


def test_codebook_of_the_shipped_questionnaire() -> None:
    q = load_shipped("virksomhetsleder-2020")
    book = codebook(q)
    assert all(tuple(e) == CODEBOOK_COLUMNS for e in book)
    assert list(dict.fromkeys(e["answer_id"] for e in book)) == [
        key for item in q.items for key in item.keys]
    for item in q.items:
        for key in item.keys:
            entries = entries_of(book, key)
            assert {e["type"] for e in entries} == {item.type.value}
            for lang in ("nb", "nn", "en"):
                assert {e[f"question_{lang}"] for e in entries} == {item.text.get(lang)}
            if item.type in (ItemType.SINGLE, ItemType.MULTI):
                assert [e["value"] for e in entries] == [o.id for o in item.options]
                for entry, option in zip(entries, item.options, strict=True):
                    assert [entry[f"label_{lang}"] for lang in ("nb", "nn", "en")] == [
                        option.label.nb, option.label.get("nn"), option.label.get("en")]
            if item.type is ItemType.SINGLE:
                assert [e["spss_code"] for e in entries] == list(range(1, len(item.options) + 1))
            if item.type is ItemType.MULTI:
                assert {e["spss_code"] for e in entries} == {1}
                assert len({e["spss_variable"] for e in entries}) == len(item.options)
            if item.type in (ItemType.NUMBER, ItemType.TEXT):
                assert [(e["value"], e["label_nb"], e["spss_code"]) for e in entries] == [
                    (None, None, None)]
    sector = entries_of(book, "sektor")[0]
    assert sector == {
        "number": "1", "answer_id": "sektor", "item": "sektor", "type": "single",
        "question_nb": "Hvilken sektor hører virksomheten din til?",
        "question_nn": "Kva sektor høyrer verksemda di til?",
        "question_en": "Which sector does your unit belong to?",
        "row_nb": None, "row_nn": None, "row_en": None, "value": "helse",
        "label_nb": "Helse og omsorg", "label_nn": "Helse og omsorg",
        "label_en": "Health and care", "spss_variable": "sektor", "spss_code": 1}
    yes_no = entries_of(book, "digital")
    assert [(e["value"], e["label_nb"], e["label_nn"], e["label_en"], e["spss_code"])
            for e in yes_no] == [("yes", "Ja", "Ja", "Yes", 1), ("no", "Nei", "Nei", "No", 0),
                                 ("dont_know", "Vet ikke", "Veit ikkje", "Don't know", 97)]
    grid = q.item("drivere")
    first_row = entries_of(book, grid.keys[0])
    assert {e["number"] for e in first_row} == {"17a"}
    assert {e["row_nb"] for e in first_row} == {grid.rows[0].label.nb}
    assert [e["value"] for e in first_row] == [1, 2, 3, 4, 5, 6, "dont_know", "not_relevant"]
    assert [e["spss_code"] for e in first_row] == [1, 2, 3, 4, 5, 6, 97, 98]
    assert first_row[0]["label_nb"] == "Hemmet i stor grad"
    assert first_row[0]["label_en"] == "Hindered to a great extent"
    assert first_row[-1]["label_nn"] == "Ikkje relevant"
    assert {e["spss_variable"] for e in first_row} == {grid.keys[0].replace(".", "_")}
    names = [e["spss_variable"] for e in book]
    assert all(SPSS_NAME.match(n) for n in names)
    per_variable = {(e["answer_id"], e["value"] if e["type"] == "multi" else None):
                    e["spss_variable"] for e in book}
    assert len({n.upper() for n in per_variable.values()}) == len(per_variable)


def test_spss_names_are_safe_and_unique() -> None:
    taken = {"SEKTOR"}
    assert spss_name("sektor", taken) == "sektor_2"
    assert spss_name("rad.a", taken) == "rad_a"
    assert spss_name("RAD-a", taken) == "RAD_a_2"  # SPSS compares names without case
    assert spss_name("with", taken) == "with_"
    assert spss_name("9b", taken) == "v_9b"
    long = spss_name("x" * 70 + ".y", taken)
    assert len(long) == 64
    assert len(spss_name("x" * 70 + ".z", taken)) == 64
    assert all(SPSS_NAME.match(n) for n in taken)


# --- labels and the files beside ----------------------------------------------------------------


def test_labels_instead_of_codes(engine: Engine, tmp_path: Path) -> None:
    fill(engine, 3)
    data = exported(engine)
    out = tmp_path / "svar.json"
    write_export(data, "json", out, io.StringIO(), labels=True)
    records = json.loads(out.read_text(encoding="utf-8"))
    first = next(r for r in records if r["nummer"] == 0)
    assert first["sektor"] == "Helse"
    assert first["tiltak"] == ["X", "Y"]
    assert first["rad.a"] == "Ja"
    assert first["rad.b"] is None
    assert first["fritt"] == FORMULA
    assert first["sector"] == "helse"  # strata stay codes
    as_csv = io.StringIO()
    write_export(data, "csv", None, as_csv, labels=True)
    rows = list(csv.DictReader(io.StringIO(as_csv.getvalue())))
    assert {r["tiltak"] for r in rows} == {"X;Y"}
    assert {r["rad.a"] for r in rows} == {"Ja"}
    codes = io.StringIO()
    write_export(data, "csv", None, codes)
    assert {r["tiltak"] for r in csv.DictReader(io.StringIO(codes.getvalue()))} == {"x;y"}
    with pytest.raises(ValueError, match="questionnaire"):
        with_labels(Export(data.header, data.rows))


def test_json_export_writes_its_codebook_beside_it(engine: Engine, tmp_path: Path) -> None:
    fill(engine, 3)
    out = tmp_path / "svar.json"
    write_export(exported(engine), "json", out, io.StringIO())
    beside = codebook_path(out)
    assert beside == tmp_path / "svar.codebook.json"
    assert stat.S_IMODE(beside.stat().st_mode) == 0o600
    assert json.loads(beside.read_text(encoding="utf-8")) == codebook(questionnaire())
    assert isinstance(json.loads(out.read_text(encoding="utf-8")), list)


def test_xlsx_export_has_the_codebook_sheet(engine: Engine, tmp_path: Path) -> None:
    fill(engine, 3)
    out = tmp_path / "svar.xlsx"
    write_export(exported(engine), "xlsx", out, io.StringIO())
    book = load_workbook(out)
    assert book.sheetnames == ["svar", "Kodebok"]
    rows = list(book["Kodebok"].iter_rows(values_only=True))
    assert rows[0] == CODEBOOK_COLUMNS
    assert [dict(zip(CODEBOOK_COLUMNS, r, strict=True)) for r in rows[1:]] == codebook(
        questionnaire())
    tiltak = next(r for r in book["svar"].iter_rows(values_only=True) if r[0] != "respondent_type")
    assert tiltak[6] == "x;y"


# --- SPSS -----------------------------------------------------------------------------------------

SAV_QUESTIONNAIRE = """
spec_version: 1
id: test-sav
title: {nb: "Test av SPSS-fila", nn: "Test av SPSS-fila", en: "SPSS test"}
pages:
  - id: p
    title: P
    items:
      - id: sektor
        type: single
        text: {nb: "Hvilken sektor?", nn: "Kva sektor?", en: "Which sector?"}
        options:
          - {id: helse, label: {nb: "Helse og omsorg", nn: "Helse og omsorg", en: "Health"}}
          - {id: kultur, label: {nb: "Kultur", nn: "Kultur", en: "Culture"}}
      - id: tiltak
        type: multi
        text: "Hvilke tiltak?"
        options: [{id: x, label: "Digitalisering"}, {id: y, label: "Samarbeid"},
                  {id: z, label: "Annet"}]
      - {id: ny, type: yesno, dont_know: true, text: "Noe nytt?"}
      - id: grad
        type: scale
        text: "I hvilken grad?"
        scale: {min: 1, max: 4, labels: {1: "Liten", 4: "Stor"}, dont_know: true,
                not_relevant: true}
      - id: rad
        type: grid
        row_type: scale
        text: "Hvor enig er du?"
        scale: {min: 1, max: 5, labels: {1: "Helt uenig", 5: "Helt enig"}}
        rows: [{id: a, label: "Roboter"}, {id: b, label: "Apper"}]
      - id: jn
        type: grid
        row_type: yesno
        dont_know: true
        text: "Har dere"
        rows: [{id: a, label: "Strategi"}, {id: b, label: "Budsjett"}]
      - {id: ansatte, type: number, min: 0, max: 100000, text: "Hvor mange ansatte?"}
      - {id: fritt, type: text, text: "Noe mer?"}
"""


def random_answer(item: Item, rng: random.Random) -> dict[str, object]:
    """A valid answer to every answer id of `item`, as the engine stores it."""
    if item.type is ItemType.SINGLE:
        return {item.id: rng.choice(item.options).id}
    if item.type is ItemType.MULTI:
        chosen = rng.sample(item.options, rng.randint(1, min(3, len(item.options))))
        return {item.id: [o.id for o in item.options if o in chosen]}
    if item.type is ItemType.NUMBER:
        return {item.id: rng.randint(item.min or 0, min(item.max or 5000, 5000))}
    if item.type is ItemType.TEXT:
        return {item.id: rng.choice([FORMULA, "Mer samarbeid; færre skjema", "Nei, takk!"])}
    yesno = item.type is ItemType.YESNO or item.row_type == "yesno"
    if yesno:
        values: list[object] = ["yes", "no", *(["dont_know"] if item.dont_know else [])]
    else:
        assert item.scale is not None
        scale = item.scale
        values = [*range(scale.min, scale.max + 1),
                  *(["dont_know"] if scale.dont_know else []),
                  *(["not_relevant"] if scale.not_relevant else [])]
    return {key: rng.choice(values) for key in item.keys}


def fill_random(engine: Engine, q: Questionnaire, n: int, *, extra: dict[str, object] | None = None,
                seed: int = 3) -> None:
    """n responses with random answers (some questions skipped) and random strata."""
    rng = random.Random(seed)
    with engine.begin() as connection:
        connection.execute(insert(Survey), [{"id": "s", "questionnaire": f"{q.id}.yaml"}])
        for number in range(n):
            response_id = secrets.token_hex(16)
            connection.execute(insert(Response), [{
                "id": response_id, "survey_id": "s",
                "respondent_type": rng.choice(["unit_leader", "mayor"]),
                "sector": rng.choice(["helse", "kultur", None]),
                "landsdel": rng.choice(["Vestlandet", "Agder"]),
                "size_class": rng.choice(["<3000", "50000+", None]),
                "completed": rng.random() < 0.7, "answered_on": dt.date(2019, 10, 14)}])
            values: dict[str, object] = {}
            for item in q.items:
                if rng.random() < 0.8:
                    values.update(random_answer(item, rng))
            if extra and number == 0:
                values.update(extra)
            if values:
                connection.execute(insert(Answer), [
                    {"response_id": response_id, "answer_id": k, "value": v}
                    for k, v in values.items()])


def decoded(path: Path, q: Questionnaire, header: tuple[str, ...]) -> list[dict[str, object]]:
    """The .sav read back into the JSON export's records, through the codebook's SPSS names
    and codes: what an analyst would do with SPSS and the codebook in hand."""
    data, _ = pyreadstat.read_sav(str(path), output_format="dict", user_missing=True)
    book = codebook(q)
    rows = len(next(iter(data.values()))) if data else 0
    records: list[dict[str, object]] = [{} for _ in range(rows)]
    for name in header:
        entries = entries_of(book, name)
        for n, record in enumerate(records):
            if name == "completed":
                record[name] = bool(data["completed"][n])
            elif not entries:  # strata, and ids the questionnaire does not know
                record[name] = data[spss_name(name, set())][n] or None
            elif entries[0]["type"] == "multi":
                chosen = [(e["value"], data[e["spss_variable"]][n]) for e in entries]
                record[name] = (None if all(v is None for _, v in chosen)
                                else [value for value, v in chosen if v == 1])
            else:
                raw = data[entries[0]["spss_variable"]][n]
                codes = {e["spss_code"]: e["value"] for e in entries}
                if raw is None or raw == "":
                    record[name] = None
                elif entries[0]["type"] == "number":
                    record[name] = int(raw)
                elif entries[0]["type"] == "text":
                    record[name] = raw
                else:
                    record[name] = codes[int(raw)]
    return records


def as_multiset(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records)


@pytest.mark.parametrize("source", ["sav", "shipped"])
def test_sav_holds_the_json_rows(engine: Engine, tmp_path: Path, source: str) -> None:
    q = (parse(SAV_QUESTIONNAIRE, "test-sav.yaml") if source == "sav"
         else load_shipped("virksomhetsleder-2020"))
    fill_random(engine, q, 60)
    with engine.connect() as connection:
        data = export_answers(connection, "s", q)
    as_json = io.StringIO()
    write_json(data, as_json)
    records = json.loads(as_json.getvalue())
    out = tmp_path / "svar.sav"
    write_export(data, "sav", out, io.StringIO())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert as_multiset(decoded(out, q, data.header)) == as_multiset(records)
    sav, meta = pyreadstat.read_sav(str(out), output_format="dict", user_missing=True)
    assert all(SPSS_NAME.match(name) for name in meta.column_names)
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert all(labels.values())
    for entry in codebook(q):
        name = entry["spss_variable"]
        assert name in meta.column_names
        if entry["type"] == "multi":
            assert labels[name].startswith(entry["label_nb"][:40])
            assert labels[name].endswith(f"[{entry['answer_id']}={entry['value']}]")
            assert meta.variable_value_labels[name] == {1: "Valgt", 0: "Ikke valgt"}
        else:
            assert labels[name].endswith(f"[{entry['answer_id']}]")
            assert labels[name].startswith(entry["question_nb"][:40])
        if entry["type"] != "multi" and entry["label_nb"] is not None:
            shown = meta.variable_value_labels[name][entry["spss_code"]]
            if len(entry["label_nb"].encode()) <= 120:
                assert shown == entry["label_nb"]
            else:  # SPSS keeps 120 bytes of a value label
                assert entry["label_nb"].startswith(shown.removesuffix("..."))
                assert len(shown.encode()) <= 120
        if entry["value"] in ("dont_know", "not_relevant"):
            assert {"lo": entry["spss_code"], "hi": entry["spss_code"]} in \
                meta.missing_ranges[name]
    assert meta.variable_value_labels["completed"] == {1: "Ja", 0: "Nei"}
    assert labels["landsdel"] == "Landsdel"
    assert "id" not in meta.column_names
    assert not any("2019" in str(v) for column in sav.values() for v in column)


def test_sav_keeps_what_the_questionnaire_does_not_know(
        engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A value no code fits, or an answer id the questionnaire no longer has, is kept as text
    (and the log names the answer id, never the value)."""
    q = parse(SAV_QUESTIONNAIRE, "test-sav.yaml")
    fill_random(engine, q, 10, extra={"sektor": "ukjent-sektor", "gammel": "old answer",
                                      "ansatte": "mange", "ny": ["yes", "no"], "grad": True})
    with engine.connect() as connection:
        data = export_answers(connection, "s", q)
    out = tmp_path / "svar.sav"
    with caplog.at_level(logging.WARNING):
        write_sav(data, q, out)
    sav, meta = pyreadstat.read_sav(str(out), output_format="dict")
    assert "ukjent-sektor" in sav["sektor"]
    assert "old answer" in sav["gammel"]
    assert "mange" in sav["ansatte"]
    assert "yes;no" in sav["ny"]
    assert "true" in sav["grad"]
    assert "[gammel]" in dict(zip(meta.column_names, meta.column_labels, strict=True))["gammel"]
    assert "sektor" in caplog.text
    assert "ukjent-sektor" not in caplog.text


def test_sav_needs_a_file_and_the_questionnaire(engine: Engine) -> None:
    fill(engine, 3)
    data = exported(engine)
    with pytest.raises(ValueError, match=r"give --out FILE\.sav"):
        write_export(data, "sav", None, io.StringIO())
    with pytest.raises(ValueError, match="questionnaire"):
        write_export(Export(data.header, data.rows), "sav", Path("x.sav"), io.StringIO())
