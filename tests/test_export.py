"""The raw export: strata and answers only, no ids or dates, in an order that tells nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import random
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from openpyxl import load_workbook
from sqlalchemy import Engine, create_engine, insert, select

from flows.loader import parse
from flows.model import Questionnaire
from storage.counts import recount
from storage.export import STRATA_COLUMNS, Export, export_answers, write_csv, write_json
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
    assert row == ["unit_leader", "helse", "Vestlandet", "M", False, "helse", "x;y", "yes",
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
    assert first["tiltak"] == "x;y"
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
