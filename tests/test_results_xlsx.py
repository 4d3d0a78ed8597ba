"""The report workbook shows exactly the published figures: the same numbers as the JSON cells,
':' where they are hidden, shares as real percentages, and never any free text."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import Engine, create_engine
from test_aggregate import TELLING_TEXT, add_responses, answers_for, questionnaire

from bot.results.fieldwork import Fieldwork, FieldworkRow
from bot.results.published import (
    Changes,
    Comparison,
    Estimates,
    FigureKey,
    Results,
    Weighting,
    publish_results,
    results_json,
)
from bot.results.xlsx import CONTENTS, METHODS, sheet_names, write_xlsx
from storage.aggregate import SUPPRESSED, build_report
from storage.schema import Base

K = 5
#: Unit leaders per sector: teknisk is below k, so its whole column is hidden.
SECTORS = {"helse": 30, "kultur": 24, "teknisk": 3}
INVITED = {"helse": 61, "kultur": 47, "teknisk": 9}
SAMPLE_NOTE = "Stratifisert utvalg av 117 virksomhetsledere, trukket med frø 7."
#: Block titles in the order a question sheet has them, and the JSON cell key each shows.
BLOCKS = {"Antall": "count", "Andel": "share", "Vektet andel": "weighted_share",
          "Feilmargin (95 %)": "margin_of_error", "Andel 2018": "previous_share",
          "Endring fra 2018 (prosentpoeng)": "change_pp",
          "Signifikant endring (5 %-nivå)": "significant"}
FORMATS = {"count": "0", "share": "0 %", "weighted_share": "0 %", "previous_share": "0 %",
           "margin_of_error": '"±"0 %', "change_pp": "+0;-0;0"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'answers.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def fill(engine: Engine) -> None:
    rows: list[tuple[dict[str, Any], dict[str, object]]] = []
    for sector, count in SECTORS.items():
        rows += [({"respondent_type": "unit_leader", "sector": sector, "landsdel": "Oslo",
                   "size_class": "M"}, answers_for(n, sector)) for n in range(count)]
    rows[-1][1]["fritt"] = TELLING_TEXT  # in teknisk, the small sector
    add_responses(engine, "s", rows)


def fieldwork_for(results: Results) -> Fieldwork:
    rows = []
    for column in results.columns:
        sector = column.key[0] if column.key else None
        invited = INVITED[sector] if sector else sum(INVITED.values())
        answered = SECTORS[sector] if sector else sum(SECTORS.values())
        rows.append(FieldworkRow(column.label, invited, answered if answered >= K else None))
    return Fieldwork("Innovasjonsbarometeret 2020 – test", "test-report",
                     (dt.date(2019, 10, 14), dt.date(2019, 12, 6)), tuple(rows))


def extras(results: Results) -> tuple[Estimates, Changes]:
    """Weighted shares and margins for some shown cells (and one hidden cell, which must
    never show), changes for others: the shapes `estimates` and `compare` hand over."""
    labels = [c.label for c in results.columns]
    hidden = labels.index("teknisk")
    weighted: dict[FigureKey, float] = {}
    moe: dict[FigureKey, float] = {}
    found: dict[FigureKey, tuple[float, float, bool]] = {}
    for j in range(len(labels)):
        weighted[("sektor", "helse", j)] = 0.41237 + j / 100
        moe[("sektor", "helse", j)] = 0.07123
        weighted[("ny", "yes", j)] = 0.51234
        found[("ny", "yes", j)] = (0.3719, 12.34 + j, j % 2 == 0)
        found[("tiltak", "x", j)] = (0.6021, -5.5, False)
    assert ("sektor", "helse", hidden) in weighted
    weighting = Weighting(("sector",), "ramme.csv", {("helse",): 900, ("kultur",): 400},
                          tuple(1.0 + j / 7 for j in range(len(labels))))
    comparison = Comparison("2018", "ks-innovasjonsbarometeret-2018.csv",
                            "Spørsmål 3 ble stilt litt annerledes i 2018.")
    return (Estimates(weighted, moe, weighting), Changes(found, comparison))


def published(engine: Engine, *, with_extras: bool = True,
              by: tuple[str, ...] = ("sector",)) -> Results:
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), by, K)
    if not with_extras:
        return publish_results(report)
    results = publish_results(report)
    return publish_results(report, *extras(results))


def written(results: Results, tmp_path: Path, name: str = "rapport.xlsx") -> Path:
    path = tmp_path / name
    write_xlsx(results, fieldwork_for(results), path, sample_note=SAMPLE_NOTE)
    return path


def blocks(sheet: Worksheet, width: int) -> dict[str, dict[str, list[Any]]]:
    """Block title -> row label -> the cells of that row (one per column), read from the
    sheet as a reader sees it: block titles in bold in column A, rows under them."""
    found: dict[str, dict[str, list[Any]]] = {}
    current: dict[str, list[Any]] | None = None
    for row in sheet.iter_rows(min_row=5):
        label = row[0].value
        if label is None:
            current = None
            continue
        if row[0].font.bold and label != "Antall svar (n)":
            current = found.setdefault(str(label), {})
            continue
        if current is None:
            break  # the note under the table
        current[str(label)] = list(row[1:1 + width])
    return found


def cells_by_question(results: Results) -> dict[str, list[dict[str, Any]]]:
    by_number: dict[str, list[dict[str, Any]]] = {}
    for cell in results_json(results)["cells"]:  # type: ignore[attr-defined]
        by_number.setdefault(cell["number"], []).append(cell)
    return by_number


def test_every_figure_is_the_published_one(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    results = published(engine)
    book = load_workbook(written(results, tmp_path))
    labels = [c.label for c in results.columns]
    assert labels == ["helse", "kultur", "teknisk", "Totalt"]
    assert book.sheetnames == [CONTENTS, METHODS, *(q.spec.number for q in results.questions)]
    by_number = cells_by_question(results)
    seen_blocks: set[str] = set()
    for question in results.questions:
        sheet = book[question.spec.number]
        assert sheet["A1"].value == question.title
        header = [c.value for c in next(sheet.iter_rows(min_row=4, max_row=4))]
        assert header[:len(labels) + 1] == ["Svar", *labels]
        assert sheet.freeze_panes == "B5"
        found = blocks(sheet, len(labels))
        seen_blocks |= set(found)
        cells = by_number[question.spec.number]
        expected_blocks = {title for title, key in BLOCKS.items()
                           if any(c[key] not in (None, "", SUPPRESSED) for c in cells)}
        if question.free_text:
            assert set(found) == {"Antall"}
        else:
            assert expected_blocks <= set(found) <= set(BLOCKS)
        for cell in cells:
            j = labels.index(cell["column"])
            for title, rows in found.items():
                key = BLOCKS[title]
                shown = rows[cell["label"]][j]
                if cell["hidden"]:
                    assert shown.value == SUPPRESSED
                elif key == "significant":
                    assert shown.value == (None if cell[key] == "" else
                                           "ja" if cell[key] else "nei")
                else:
                    assert shown.value == cell[key]
                    if shown.value is not None:
                        assert shown.number_format == FORMATS[key]
                        assert isinstance(shown.value, int | float)
                        if key in ("share", "weighted_share", "previous_share"):
                            assert 0 <= shown.value <= 1
            if not question.free_text:
                n_row = next(r for r in sheet.iter_rows(min_row=5)
                             if r[0].value == "Antall svar (n)")
                assert n_row[1 + j].value == cell["n"]
    assert seen_blocks == set(BLOCKS)


def test_hidden_cells_are_explained_and_carry_nothing(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    results = published(engine)
    book = load_workbook(written(results, tmp_path))
    sheet = book["1"]
    teknisk = [c.value for c in sheet["D"][4:] if c.value is not None]
    assert teknisk
    assert set(teknisk) == {SUPPRESSED}  # the weighted share given for it is not shown
    notes = [c.value for c in sheet["A"] if isinstance(c.value, str) and c.value.startswith(":")]
    assert notes == [f": Tallet vises ikke: færre enn {K} svar i cellen eller gruppen, eller "
                     "skjult i tillegg slik at skjulte tall ikke kan regnes ut fra summene."]


def test_labels_not_codes(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    results = published(engine, with_extras=False)
    book = load_workbook(written(results, tmp_path))
    for question in results.questions:
        column_a = {c.value for c in book[question.spec.number]["A"] if c.value is not None}
        for category in question.spec.categories:
            assert category.label in column_a
            if category.id != category.label:
                assert category.id not in column_a
    assert "Helse og omsorg" in {c.value for c in book["1"]["A"]}
    assert "Digitalisering" in {c.value for c in book["2"]["A"]}


def test_no_free_text_anywhere(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    results = published(engine)
    path = written(results, tmp_path)
    book = load_workbook(path)
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                for text in (cell.value, cell.comment.text if cell.comment else None):
                    if isinstance(text, str):
                        assert "inhabil" not in text
                        assert "tekst nummer" not in text
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            data = archive.read(name).decode("utf-8", "replace")
            assert "inhabil" not in data
            assert "tekst nummer" not in data
    text_sheet = book[next(q.spec.number for q in results.questions if q.free_text)]
    counts = [c.value for c in next(r for r in text_sheet.iter_rows(min_row=5)
                                    if r[0].value == "Har skrevet svar (teksten publiseres ikke)")]
    # Every other leader wrote something; kultur is hidden too, or teknisk's 2 would follow.
    assert counts[1:5] == [15, SUPPRESSED, SUPPRESSED, 29]


def numbers(sheet: Worksheet) -> list[tuple[str, float]]:
    return [(cell.coordinate, cell.value) for row in sheet.iter_rows() for cell in row
            if isinstance(cell.value, int | float) and not isinstance(cell.value, bool)]


def test_no_number_the_report_does_not_publish(engine: Engine, tmp_path: Path) -> None:
    """Strict: every number on a question sheet is a figure of the JSON cells; the methods
    sheet holds only the fieldwork counts, k and the design effects; the contents none."""
    fill(engine)
    results = published(engine)
    book = load_workbook(written(results, tmp_path))
    data = results_json(results)
    by_number = cells_by_question(results)
    for question in results.questions:
        allowed = {cell[key] for cell in by_number[question.spec.number]
                   for key in ("n", "count", "share", "weighted_share", "margin_of_error",
                               "previous_share", "change_pp")
                   if isinstance(cell[key], int | float) and not isinstance(cell[key], bool)}
        for coordinate, value in numbers(book[question.spec.number]):
            assert value in allowed, (question.spec.number, coordinate, value)
    fieldwork = fieldwork_for(results)
    structural: set[float] = {K}  # the suppression rule's k
    for row in fieldwork.rows:
        structural.add(row.invited)
        if row.answered is not None and row.rate is not None:
            structural |= {row.answered, round(row.rate, 4)}
    structural |= set(data["weighting"]["design_effect"])  # type: ignore[index]
    method_numbers = numbers(book[METHODS])
    assert {value for _, value in method_numbers} == structural
    assert numbers(book[CONTENTS]) == []


def test_contents_links_every_question(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    results = published(engine, with_extras=False)
    book = load_workbook(written(results, tmp_path))
    contents = book[CONTENTS]
    assert contents.freeze_panes == "A6"
    rows = list(contents.iter_rows(min_row=6))
    assert len(rows) == len(results.questions)
    for row, question in zip(rows, results.questions, strict=True):
        assert row[0].value == question.spec.number
        assert row[0].data_type == "s"  # "2", not the number 2
        assert question.spec.item.text.nb in row[1].value
        assert row[1].hyperlink.location == f"'{question.spec.number}'!A1"
    grid = next(r for r in rows if r[0].value == "5b")
    assert grid[1].value == "Har dere tatt i bruk — Apper"
    assert contents["A3"].hyperlink.location == f"'{METHODS}'!A1"


def test_methods_sheet(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    results = published(engine)
    sheet = load_workbook(written(results, tmp_path))[METHODS]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    by_label: dict[Any, list[Any]] = {}
    for row in rows:  # the first table by group is the fieldwork, then the design effects
        if row[0] is not None:
            by_label.setdefault(row[0], row[1:])
    assert by_label["Feltperiode"][0] == "14.10.2019–06.12.2019"
    assert by_label["Spørreskjema"][0] == "test-report"
    assert by_label["Utvalg"][0] == SAMPLE_NOTE
    assert by_label["Minste antall svar (k)"][0] == K
    assert "færre enn 5 svar" in by_label["Små tall"][0]
    assert "ramme.csv" in by_label["Vekting"][0]
    assert "endelig populasjon" in by_label["Feilmargin"][0]
    assert "ks-innovasjonsbarometeret-2018.csv" in by_label["Sammenligning"][0]
    assert "annerledes i 2018" in by_label["Sammenligning"][0]
    assert by_label["helse"][:3] == [61, 30, round(30 / 61, 4)]
    assert by_label["teknisk"][:3] == [9, SUPPRESSED, SUPPRESSED]
    assert by_label["Totalt"][:3] == [117, 57, round(57 / 117, 4)]
    rate = next(r for r in sheet.iter_rows() if r[0].value == "helse")[3]
    assert rate.number_format == "0 %"


def test_an_unweighted_total_only_report(engine: Engine, tmp_path: Path) -> None:
    fill(engine)
    results = published(engine, with_extras=False, by=())
    book = load_workbook(written(results, tmp_path))
    sheet = book["1"]
    assert [c.value for c in next(sheet.iter_rows(min_row=4, max_row=4))] == ["Svar", "Totalt"]
    assert set(blocks(sheet, 1)) == {"Antall", "Andel"}
    methods = {r[0].value: r[1].value for r in book[METHODS].iter_rows()}
    assert methods["Vekting"].startswith("Tallene er ikke vektet")
    assert methods["Feilmargin"] == "Feilmarginer er ikke beregnet for denne rapporten."


def test_sheet_names_are_valid_and_unique(engine: Engine) -> None:
    fill(engine)
    questions = list(published(engine, with_extras=False).questions)
    long = dataclasses.replace(questions[0], spec=dataclasses.replace(
        questions[0].spec, number="9b/" + "x" * 40))
    same = dataclasses.replace(questions[1], spec=dataclasses.replace(
        questions[1].spec, number="Metode"))
    names = sheet_names([*questions, long, long, same])
    assert len({n.casefold() for n in names}) == len(names)
    assert all(len(n) <= 31 and "/" not in n for n in names)
    assert names[-1] == "Metode (2)"
