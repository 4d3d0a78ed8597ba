"""Published tables hide small cells, and hidden cells cannot be worked out from what is shown.

The proofs do not trust the module's own bookkeeping: `alternatives` is an independent,
brute-force attacker that lists every non-negative, additive table agreeing with the published
numbers, and `check_alternative` verifies the module's witnesses line by line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, func, insert, select

from bot.results.published import CELL_HEADER, cell_rows, publish_results, results_json
from flows.loader import parse
from flows.model import Questionnaire
from storage.aggregate import (
    SUPPRESSED,
    CountTable,
    Entry,
    PublishedTable,
    build_report,
    build_report_from_answers,
    check_by,
    exposed,
    number_bands,
    primary,
    suppress,
    suppress_linked,
    witness,
)
from storage.counts import recount
from storage.schema import Answer, AnswerCount, Base, Response, Survey

ROOT = Path(__file__).resolve().parents[1]
K = 5


# --- an independent attacker --------------------------------------------------------------------


def lines(table: CountTable) -> list[list[Entry]]:
    """Every row and column of the grid, margins included."""
    rows = [[(i, j) for j in range(table.cols + 1)] for i in range(table.rows + 1)]
    cols = [[(i, j) for i in range(table.rows + 1)] for j in range(table.cols + 1)]
    return rows + cols


def alternatives(table: CountTable, hidden: frozenset[Entry], *,
                 respondents_known: bool = False) -> Iterator[list[list[int]]]:
    """Every grid an attacker cannot rule out: non-negative, additive, equal where shown.

    Hidden counts are bounded by the grand total, or by the true one + 2 if it is hidden: a
    subset of what the attacker must consider, so a cell that still varies is truly unknown.
    """
    rows, cols = table.rows, table.cols
    known = set(table.entries()) - hidden
    if respondents_known:
        known |= {(rows, j) for j in range(cols + 1)}
    unknown = [(i, j) for i in range(rows) for j in range(cols) if (i, j) not in known]
    cap = table.value((rows, cols)) + (0 if (rows, cols) in known else 2)
    grid = [[table.value((i, j)) if (i, j) in known else 0 for j in range(cols + 1)]
            for i in range(rows + 1)]

    last_in_row = {i: max((u for u in unknown if u[0] == i), default=None)
                   for i in range(rows)}
    last_in_col = {j: max((u for u in unknown if u[1] == j), default=None)
                   for j in range(cols)}

    def room(i: int, j: int) -> range:
        """The values (i, j) may take given the cells already set (forced if it is the
        last unknown of a row or column with a known total)."""
        high = cap
        row_left = table.value((i, cols)) - sum(grid[i][:cols]) if (i, cols) in known else None
        col_left = (table.value((rows, j)) - sum(grid[r][j] for r in range(rows))
                    if (rows, j) in known else None)
        for left, last in ((row_left, last_in_row[i]), (col_left, last_in_col[j])):
            if left is None:
                continue
            if left < 0:
                return range(0)
            if last == (i, j):
                return range(left, left + 1) if left <= high else range(0)
            high = min(high, left)
        return range(high + 1)

    def complete() -> list[list[int]] | None:
        full = [[*row[:cols], sum(row[:cols])] for row in grid[:rows]]
        full.append([sum(full[i][j] for i in range(rows)) for j in range(cols + 1)])
        return full if all(full[i][j] == table.value((i, j)) for i, j in known) else None

    def search(n: int) -> Iterator[list[list[int]]]:
        if n == len(unknown):
            full = complete()
            if full is not None:
                yield full
            return
        i, j = unknown[n]
        for value in room(i, j):
            grid[i][j] = value
            yield from search(n + 1)
        grid[i][j] = 0

    return search(0)


def possible_values(table: CountTable, hidden: frozenset[Entry], entry: Entry, *,
                    respondents_known: bool = False) -> set[int]:
    """The values `entry` takes across every table the attacker cannot rule out."""
    return {grid[entry[0]][entry[1]]
            for grid in alternatives(table, hidden, respondents_known=respondents_known)}


def check_alternative(table: CountTable, hidden: frozenset[Entry], entry: Entry,
                      grid: Sequence[Sequence[int]]) -> None:
    """A witness is a real alternative: same shown numbers, additive, non-negative, different."""
    rows, cols = table.rows, table.cols
    assert all(v >= 0 for row in grid for v in row)
    for i in range(rows + 1):
        assert sum(grid[i][:cols]) == grid[i][cols]
    for j in range(cols + 1):
        assert sum(grid[i][j] for i in range(rows)) == grid[rows][j]
    for e in set(table.entries()) - hidden:
        assert grid[e[0]][e[1]] == table.value(e)
    assert grid[entry[0]][entry[1]] != table.value(entry)


def hidden_per_line(table: CountTable, hidden: frozenset[Entry]) -> list[int]:
    return [sum(e in hidden for e in line) for line in lines(table)]


# --- primary and complementary suppression ------------------------------------------------------


def test_primary_hides_every_cell_below_k() -> None:
    """Counts of 1–4 and zeros are hidden; everything published is at least k."""
    table = CountTable.of([[12, 3, 8], [9, 7, 0], [6, 10, 9]], [27, 20, 17])
    hidden = suppress(table, K)
    assert {(0, 1), (1, 2)} <= hidden
    assert primary(table, K) == {(0, 1), (1, 2)}
    assert all(table.value(e) >= K for e in set(table.entries()) - hidden)


def test_a_lone_small_cell_is_recoverable_until_complementary_suppression() -> None:
    """Hiding only the 3 leaves it as row total minus the rest; suppression closes that."""
    table = CountTable.of([[20, 3, 15], [7, 9, 11]], [27, 12, 26])
    only_primary = primary(table, K)
    assert only_primary == {(0, 1)}
    # The attack: the row total minus the other published cells of the row.
    assert table.value((0, 3)) - table.value((0, 0)) - table.value((0, 2)) == 3
    assert exposed(table, only_primary) == [(0, 1)]
    assert possible_values(table, only_primary, (0, 1)) == {3}

    hidden = suppress(table, K)
    for entry in hidden:
        row, col = entry
        assert sum((row, j) in hidden for j in range(table.cols + 1)) >= 2
        assert sum((i, col) in hidden for i in range(table.rows + 1)) >= 2
        assert len(possible_values(table, hidden, entry)) >= 2
    assert exposed(table, hidden) == []


def test_two_hidden_per_line_is_not_enough_and_the_audit_knows() -> None:
    """Two hidden blocks joined by one hidden cell: every line holds two, the bridge is exposed."""
    table = CountTable.of([[6, 7, 8, 9], [5, 6, 7, 8], [9, 8, 7, 6], [8, 9, 6, 5]],
                          [28, 30, 28, 28])
    blocks = frozenset({(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)})
    assert all(n == 0 or n >= 2 for n in hidden_per_line(table, blocks))
    assert exposed(table, blocks) == [(1, 2)]
    assert possible_values(table, blocks, (1, 2)) == {7}
    repaired = suppress(table, K, forced=blocks)
    assert exposed(table, repaired) == []
    assert len(possible_values(table, repaired, (1, 2))) >= 2


def test_one_respondent_in_a_county_could_have_given_any_answer() -> None:
    """Agder has one respondent: its column goes, and every answer stays possible for them,
    even to an attacker who knows how many answered in every county."""
    # Columns: Oslo, Vestlandet, Nord-Norge, Agder (one mayor, who chose option 0).
    table = CountTable.of([[6, 9, 7, 1], [8, 5, 10, 0], [7, 11, 6, 0]], [21, 25, 23, 1])
    hidden = suppress(table, K)
    assert {(i, 3) for i in range(table.rows + 1)} <= hidden
    answers = set()
    for grid in alternatives(table, hidden, respondents_known=True):
        answers |= {i for i in range(table.rows) if grid[i][3] == 1}
    assert answers == {0, 1, 2}
    # Nor is any other hidden number pinned down.
    for entry in hidden:
        assert len(possible_values(table, hidden, entry)) >= 2


def test_linked_tables_hide_the_same_margins() -> None:
    """Two questions answered by the same people: a respondent count hidden in one table must
    not be printed in the other, or the lone respondent's count follows from the total."""
    first = CountTable.of([[21, 8, 0], [0, 5, 1], [0, 12, 0]], [21, 25, 1])
    second = CountTable.of([[6, 11, 1], [7, 1, 0], [8, 13, 0]], [21, 25, 1])
    alone = [{e for e in suppress(t, K) if e[0] == 3} for t in (first, second)]
    assert alone[0] != alone[1]  # each table on its own hides a different second margin
    shown_anywhere = {e for e in [(3, 0), (3, 1)] if e not in alone[0] or e not in alone[1]}
    assert shown_anywhere  # ... so together they print both: 47 - 21 - 25 = 1 for the third
    linked = [{e for e in mask if e[0] == 3} for mask in suppress_linked([first, second], K)]
    assert linked[0] == linked[1]
    assert (3, 2) in linked[0]
    assert len(linked[0]) >= 2


def test_a_table_must_add_up() -> None:
    with pytest.raises(ValueError, match="do not add up"):
        CountTable.of([[1, 2], [3, 4]], [4, 7])


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 4, max_cols: int = 4,
           max_value: int = 15) -> CountTable:
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    cells = [[draw(st.integers(0, max_value)) for _ in range(cols)] for _ in range(rows)]
    return CountTable.of(cells, [sum(row[j] for row in cells) for j in range(cols)])


@given(tables(), st.integers(2, 6))
def test_suppression_properties(table: CountTable, k: int) -> None:
    """Random tables: published ≥ k; no line with exactly one hidden entry; every hidden entry
    has a verified alternative (with the respondents unchanged for counts)."""
    hidden = suppress(table, k)
    assert all(table.value(e) >= k for e in set(table.entries()) - hidden)
    assert all(n != 1 for n in hidden_per_line(table, hidden))
    for entry in hidden:
        grid = witness(table, hidden, entry)
        assert grid is not None
        check_alternative(table, hidden, entry, grid)
        if entry[0] < table.rows and table.rows >= 2 and table.value((table.rows, entry[1])):
            assert grid[table.rows] == table.grid[table.rows]


@given(tables(max_rows=2, max_cols=3, max_value=5), st.integers(2, 4))
def test_no_hidden_entry_is_determined_brute_force(table: CountTable, k: int) -> None:
    """Small random tables: the brute-force attacker finds two values for every hidden entry."""
    hidden = suppress(table, k)
    values: dict[Entry, set[int]] = {e: set() for e in hidden}
    for grid in alternatives(table, hidden):
        for i, j in hidden:
            values[(i, j)].add(grid[i][j])
    assert all(len(v) >= 2 for v in values.values())


# --- the report over a database -----------------------------------------------------------------

QUESTIONNAIRE = """
spec_version: 1
id: test-report
title: Test
pages:
  - id: p
    title: P
    items:
      - id: sektor
        type: single
        text: "Hvilken sektor?"
        options:
          - {id: helse, label: "Helse og omsorg"}
          - {id: kultur, label: "Kultur"}
          - {id: teknisk, label: "Teknisk"}
      - id: tiltak
        type: multi
        text: "Hvilke tiltak?"
        options:
          - {id: x, label: "Digitalisering"}
          - {id: y, label: "Samarbeid"}
          - {id: z, label: "Annet"}
      - {id: ny, type: yesno, dont_know: true, text: "Noe nytt?"}
      - id: grad
        type: scale
        text: "I hvilken grad?"
        scale: {min: 1, max: 4, labels: {1: "Liten", 4: "Stor"}, dont_know: true}
      - id: rad
        type: grid
        row_type: yesno
        text: "Har dere tatt i bruk"
        rows:
          - {id: a, label: "Roboter"}
          - {id: b, label: "Apper"}
      - {id: ansatte, type: number, min: 0, max: 1000, text: "Hvor mange ansatte?"}
      - {id: fritt, type: text, text: "Noe mer?"}
"""

TELLING_TEXT = "Ordføreren i Agder sa at rådmannen er inhabil"


def questionnaire() -> Questionnaire:
    return parse(QUESTIONNAIRE, "test-report.yaml")


def answers_for(n: int, sector: str) -> dict[str, object]:
    """Crafted answers for respondent n: enough in each option to be published by landsdel."""
    return {
        "sektor": sector,
        "tiltak": [["x"], ["x", "y"], ["y", "z"]][n % 3],
        "ny": ["yes", "no"][n % 2],
        "grad": [1, 2, 3, 4][n % 4],
        "rad.a": ["yes", "no"][n % 2],
        "rad.b": ["no", "yes"][n % 2],
        "ansatte": [5, 30, 120][n % 3],
        "fritt": "" if n % 2 else f"tekst nummer {n}",
    }


def add_responses(engine: Engine, survey_id: str,
                  rows: Sequence[tuple[dict[str, Any], dict[str, object]]], *,
                  count: bool = True) -> None:
    with engine.begin() as connection:
        if connection.execute(Survey.__table__.select().where(Survey.id == survey_id)).first() \
                is None:
            connection.execute(insert(Survey), [{"id": survey_id,
                                                 "questionnaire": "test-report.yaml"}])
        for strata, answers in rows:
            response_id = secrets.token_hex(16)
            connection.execute(insert(Response), [{
                "id": response_id, "survey_id": survey_id, "respondent_type": "mayor",
                "completed": True, "answered_on": dt.date(2019, 10, 14),
                "sector": None, "landsdel": None, "size_class": None, **strata}])
            connection.execute(insert(Answer), [
                {"response_id": response_id, "answer_id": key, "value": value}
                for key, value in answers.items()])
        if count:  # as migration 0002 back-fills them (AnswerStore.record keeps them in step)
            recount(connection, survey_id, questionnaire())


def crafted(engine: Engine, survey_id: str = "s", *, count: bool = True) -> None:
    """24 mayors in each of three landsdeler, and one in Agder who wrote something telling."""
    rows: list[tuple[dict[str, Any], dict[str, object]]] = []
    for place in ("Oslo", "Vestlandet", "Nord-Norge"):
        rows += [({"landsdel": place, "size_class": "M"},
                  answers_for(n, ["helse", "kultur", "teknisk"][n % 3])) for n in range(24)]
    rows.append(({"landsdel": "Agder", "size_class": "S"},
                 {**answers_for(0, "kultur"), "fritt": TELLING_TEXT}))
    add_responses(engine, survey_id, rows, count=count)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'answers.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def column_of(report_columns: Sequence[Any], label: str) -> int:
    return next(j for j, c in enumerate(report_columns) if c.label == label)


def published_mask(table: PublishedTable, n_categories: int) -> frozenset[Entry]:
    hidden = {(i, j) for i in range(n_categories) for j, v in enumerate(table.counts[i])
              if v is None}
    hidden |= {(n_categories, j) for j, v in enumerate(table.respondents) if v is None}
    return frozenset(hidden)


def test_report_by_landsdel_hides_the_lone_mayor(engine: Engine) -> None:
    """Every number about Agder is ':', and the published sector table still leaves every
    answer possible for that mayor, even knowing one answered there."""
    crafted(engine)
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), ("landsdel",), K)
    agder = column_of(report.columns, "Agder")
    for table in report.tables:
        assert table.respondents[agder] is None
        assert all(row[agder] is None for row in table.counts)
    sector = next(t for t in report.tables if t.spec.answer_id == "sektor")
    # The true table, in the report's column order (known landsdeler in SSB's order first);
    # the mayor in Agder answered "kultur".
    labels = [c.label for c in report.columns]
    assert labels == ["Vestlandet", "Nord-Norge", "Agder", "Oslo", "Totalt"]
    places = labels[:-1]
    truth = CountTable.of(
        [[(1 if i == 1 else 0) if p == "Agder" else 8 for p in places] for i in range(3)],
        [1 if p == "Agder" else 24 for p in places])
    hidden = published_mask(sector, 3)
    for i, row in enumerate(sector.counts):
        for j, value in enumerate(row):
            assert value is None or value == truth.value((i, j))
    chosen = set()
    for grid in alternatives(truth, hidden, respondents_known=True):
        chosen |= {i for i in range(3) if grid[i][agder] == 1}
    assert chosen == {0, 1, 2}


def test_free_text_never_appears_in_a_report(engine: Engine) -> None:
    """Only the number of non-empty texts is counted; the text is in no output format."""
    crafted(engine)
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), (), K)
    text = next(t for t in report.tables if t.spec.answer_id == "fritt")
    assert text.counts == ((37,),)  # 36 of 72 wrote something, and the mayor in Agder
    results = publish_results(report)
    outputs = [json.dumps(results_json(results), ensure_ascii=False),
               "\n".join(",".join(str(v) for v in row)
                         for row in [CELL_HEADER, *cell_rows(results)])]
    for output in outputs:
        assert "inhabil" not in output
        assert "tekst nummer" not in output


def test_shares_add_up_when_nothing_is_hidden(engine: Engine) -> None:
    crafted(engine)
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), (), K)
    for table in report.tables:
        if table.spec.kind != "choice":
            continue
        shown = [c for c in table.counts if c[0] is not None]
        if len(shown) < len(table.counts):
            continue
        assert sum(c[0] or 0 for c in table.counts) == table.respondents[0]
        assert sum(table.share(i, 0) or 0 for i in range(len(table.counts))) == \
            pytest.approx(1.0)
    sector = next(t for t in report.tables if t.spec.answer_id == "sektor")
    assert sector.counts == ((24,), (25,), (24,))
    assert [sector.share(i, 0) for i in range(3)] == pytest.approx([24 / 73, 25 / 73, 24 / 73])


def test_multiple_choice_counts_each_option_once_per_respondent(engine: Engine) -> None:
    crafted(engine)
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), (), K)
    multi = next(t for t in report.tables if t.spec.answer_id == "tiltak")
    # 72 + 1: [x], [x, y], [y, z] in turn; the Agder mayor answered [x].
    assert multi.counts == ((49,), (48,), (24,))
    assert multi.respondents == (73,)


def test_numbers_are_counted_in_fixed_bands() -> None:
    lows, categories = number_bands(0, 1000)
    assert lows == (0, 10, 50, 100, 500, 1000)
    assert [c.label for c in categories] == ["0–9", "10–49", "50–99", "100–499", "500–999",
                                             "1\u00a0000"]
    _, open_ended = number_bands(None, None)
    assert open_ended[0].label == "Under 0"
    assert open_ended[-1].label == "1\u00a0000\u00a0000 eller flere"


def test_report_json_and_csv_shapes(engine: Engine) -> None:
    crafted(engine)
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), ("landsdel",), K)
    data = results_json(publish_results(report))
    assert data["min_cell"] == K
    assert data["suppressed"] == SUPPRESSED
    assert data["by"] == ["landsdel"]
    columns = data["columns"]
    assert isinstance(columns, list)
    agder = next(j for j, c in enumerate(columns) if c["label"] == "Agder")
    assert columns[agder] == {"stratum": {"landsdel": "Agder"}, "label": "Agder"}
    assert columns[-1] == {"stratum": None, "label": "Totalt"}
    cells = data["cells"]
    assert isinstance(cells, list)
    assert list(dict.fromkeys(c["answer_id"] for c in cells)) == [
        "sektor", "tiltak", "ny", "grad", "rad.a", "rad.b", "ansatte", "fritt"]
    assert list(dict.fromkeys(c["number"] for c in cells))[4:6] == ["5a", "5b"]
    sector = [c for c in cells if c["answer_id"] == "sektor"]
    respondents = [c["n"] for c in sector if c["category"] == "helse"]
    # Agder's one respondent, and one more so it cannot be had from the total of 73.
    assert respondents[agder] == SUPPRESSED
    assert respondents.count(SUPPRESSED) == 2
    assert respondents[-1] == 73
    assert set(respondents) <= {SUPPRESSED, 24, 73}
    first = next(c for c in sector if c["column"] == "Agder")
    assert (first["category"], first["label"]) == ("helse", "Helse og omsorg")
    assert first["count"] == first["share"] == SUPPRESSED
    assert first["hidden"] is True
    assert len(cells) == sum(len(t.spec.categories) for t in report.tables) * len(columns)
    text = [c for c in cells if c["answer_id"] == "fritt"]
    assert all(c["share"] is None or c["hidden"] for c in text)
    json.dumps(data)  # serialisable as it is

    rows = cell_rows(publish_results(report))
    assert CELL_HEADER[:10] == ("number", "answer_id", "question", "row", "category", "label",
                                "column", "n", "count", "share")
    agder_rows = [r for r in rows if r[6] == "Agder"]
    assert agder_rows
    assert all(r[7] == r[8] == SUPPRESSED for r in agder_rows)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([CELL_HEADER, *rows])
    assert "inhabil" not in buffer.getvalue()


@pytest.mark.parametrize("by", [(), ("landsdel",), ("size_class", "landsdel"),
                                ("respondent_type",), ("sector",)])
@pytest.mark.parametrize("k", [1, K])
def test_the_report_from_the_counts_is_the_report_from_the_answers(
        engine: Engine, by: tuple[str, ...], k: int, caplog: pytest.LogCaptureFixture) -> None:
    """`build_report` reads `answer_counts` only, and publishes exactly what counting the
    answers themselves publishes."""
    crafted(engine)
    with engine.connect() as connection:
        caplog.set_level(logging.WARNING)
        from_counts = build_report(connection, "s", questionnaire(), by, k)
        assert "do not cover" not in caplog.text
        counted = connection.execute(select(func.count()).select_from(AnswerCount)).scalar_one()
        from_answers = build_report_from_answers(connection, "s", questionnaire(), by, k)
    assert counted > 0
    assert from_counts == from_answers
    assert any(t.counts != ((None,),) for t in from_counts.tables)


def test_a_report_without_counts_is_counted_from_the_answers(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Responses written around the answer store (no counts): the report says so in the log
    and counts the answers instead, so it is never silently empty or wrong."""
    crafted(engine, count=False)
    caplog.set_level(logging.WARNING)
    with engine.connect() as connection:
        fallback = build_report(connection, "s", questionnaire(), ("landsdel",), K)
        assert "the answer counts do not cover every response" in caplog.text
        assert fallback == build_report_from_answers(connection, "s", questionnaire(),
                                                     ("landsdel",), K)
    sector = next(t for t in fallback.tables if t.spec.answer_id == "sektor")
    assert sector.respondents[-1] == 73
    with engine.begin() as connection:
        recount(connection, "s", questionnaire())
    caplog.clear()
    with engine.connect() as connection:
        assert build_report(connection, "s", questionnaire(), ("landsdel",), K) == fallback
    assert "do not cover" not in caplog.text


def test_by_accepts_one_or_two_known_strata() -> None:
    assert check_by(["sector", "landsdel"]) == ("sector", "landsdel")
    for bad in (["sector", "sector"], ["county"], ["sector", "landsdel", "size_class"]):
        with pytest.raises(ValueError, match="--by"):
            check_by(bad)


# --- the command --------------------------------------------------------------------------------


def svarbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], text=True, capture_output=True,
                          cwd=cwd, timeout=120, check=False)


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    """A config whose database was created by `init` and holds the crafted survey."""
    from storage.migrate import init_database

    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    (tmp_path / "test-report.yaml").write_text(QUESTIONNAIRE, encoding="utf-8")
    engine = create_engine(url)
    crafted(engine)
    engine.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {url}\nprivacy:\n  min_cell: {K}\n", encoding="utf-8")
    return config


def run(*args: str) -> Result:
    """`svarbot ARGS` in this process (fast); the real process is tested once below."""
    from bot.cli import main

    return CliRunner().invoke(main, list(args))


def test_report_command_as_a_process(configured: Path) -> None:
    """The terminal table: question numbers and texts, labels, shares, ':' and the footnote."""
    result = svarbot("report", "--survey", "s", "--by", "landsdel", "--config", str(configured),
                     cwd=configured.parent)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1. Hvilken sektor?" in out
    assert "Helse og omsorg" in out
    assert "5a. Har dere" in out
    assert "33 %" in out
    assert " : " in out
    assert "færre enn 5" in out
    assert "inhabil" not in out


def test_report_command_formats(configured: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """csv and json: one row per published cell, hidden ones ':' in every number."""
    monkeypatch.chdir(configured.parent)
    as_json = run("report", "--survey", "s", "--by", "landsdel", "--format", "json",
                  "--config", str(configured))
    assert as_json.exit_code == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    agder = next(c for c in data["cells"] if c["column"] == "Agder")
    assert (agder["answer_id"], agder["n"]) == ("sektor", SUPPRESSED)
    assert agder["hidden"] is True
    assert {agder[k] for k in ("count", "share", "weighted_share", "margin_of_error")} == {
        SUPPRESSED}
    as_csv = run("report", "--survey", "s", "--format", "csv", "--config", str(configured))
    assert as_csv.exit_code == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0][:10] == ["number", "answer_id", "question", "row", "category", "label",
                            "column", "n", "count", "share"]
    assert rows[1][:6] == ["1", "sektor", "Hvilken sektor?", "", "helse", "Helse og omsorg"]
    assert rows[1][6:10] == ["Totalt", "73", "24", str(round(24 / 73, 4))]
    assert rows[1][-1] == "False"
    binary = run("report", "--survey", "s", "--format", "xlsx", "--config", str(configured))
    assert binary.exit_code == 2
    assert binary.stderr.strip() == "svarbot: xlsx is a binary format: give --out FILE.xlsx"



def test_report_command_writes_html_pdf_and_xlsx(configured: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file format through the command, with the hidden cells and without free text."""
    from openpyxl import load_workbook

    monkeypatch.chdir(configured.parent)
    for fmt in ("html", "pdf", "xlsx"):
        out = tmp_path / f"rapport.{fmt}"
        done = run("report", "--survey", "s", "--by", "landsdel", "--format", fmt,
                   "--out", str(out), "--config", str(configured))
        assert done.exit_code == 0, done.stderr
        assert out.stat().st_size > 1000
    html = (tmp_path / "rapport.html").read_text(encoding="utf-8")
    assert "Agder" in html
    assert "inhabil" not in html
    assert (tmp_path / "rapport.pdf").read_bytes().startswith(b"%PDF")
    book = load_workbook(tmp_path / "rapport.xlsx")
    assert book.sheetnames[0] == "Innhold"
    values = [str(c.value) for sheet in book for row in sheet.iter_rows() for c in row
              if c.value is not None]
    assert ":" in values
    assert not any("inhabil" in v for v in values)
    weighted = run("report", "--survey", "s", "--weight-by", "sector", "--config",
                   str(configured))
    assert weighted.exit_code == 2
    assert "weighting needs the frame" in weighted.stderr

def test_report_command_errors_are_one_line(configured: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(configured.parent)
    unknown = run("report", "--survey", "nope", "--config", str(configured))
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "svarbot: no survey 'nope' in the database (known: s)"
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"database:\n  url: sqlite:///{tmp_path / 'none.db'}\n", encoding="utf-8")
    no_db = run("report", "--survey", "s", "--config", str(missing))
    assert no_db.exit_code == 2
    assert no_db.stderr.startswith("svarbot: ")
    assert len(no_db.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "none.db").exists()
    bad_by = run("report", "--survey", "s", "--by", "county", "--config", str(configured))
    assert bad_by.exit_code == 2
    assert bad_by.stderr.startswith("svarbot: --by: unknown stratum 'county'")
    typo = tmp_path / "typo.yaml"
    typo.write_text("privacy:\n  min_cel: 3\n", encoding="utf-8")
    bad_config = run("report", "--survey", "s", "--config", str(typo))
    assert bad_config.exit_code == 2
    assert "min_cel" in bad_config.stderr


def test_strata_are_listed_in_natural_order(engine: Engine) -> None:
    """Size classes ascend and sectors follow the questionnaire, not the alphabet."""
    rows: list[tuple[dict[str, Any], dict[str, object]]] = []
    for size in ("50000+", "<3000", "10000-49999", "3000-9999"):
        for sector in ("teknisk", "helse", "kultur"):
            rows += [({"landsdel": "Vestlandet", "size_class": size, "sector": sector},
                      answers_for(n, "helse")) for n in range(5)]
    add_responses(engine, "s", rows)
    with engine.connect() as connection:
        by_size = build_report(connection, "s", questionnaire(), ("size_class",), K)
        by_sector = build_report(connection, "s", questionnaire(), ("sector",), K)
    assert [c.label for c in by_size.columns] == [
        "<3000", "3000-9999", "10000-49999", "50000+", "Totalt"]
    assert [c.label for c in by_sector.columns] == ["helse", "kultur", "teknisk", "Totalt"]
