"""Terminal tables fit the window: no line wider than it, and no column lost on the way.

The checks read the printed text back (the header cells column by column, the body cells
row by row), so a column that rich squeezed, cut or dropped would show up as a missing or
altered label, not just as a long line.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console
from sqlalchemy import Engine, create_engine
from test_aggregate import K, add_responses, answers_for, crafted, questionnaire

from bot.results.published import (
    Changes,
    Comparison,
    Estimates,
    FigureKey,
    Results,
    Weighting,
    publish_results,
    shown_numbers,
)
from bot.results.terminal import UNLIMITED, layout, print_results
from storage.aggregate import TOTAL, Category, Report, build_report
from storage.schema import Base

WIDTHS = (60, 80, 120)
SECTORS = ("helse", "oppvekst", "sosial", "kultur", "teknisk")
LANDSDELER = ("Oslo og Akershus", "Hedmark og Oppland", "Sør-Østlandet", "Agder og Rogaland",
              "Vestlandet", "Trøndelag", "Nord-Norge")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'answers.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def by_landsdel(engine: Engine) -> Report:
    """test_aggregate's crafted survey: three landsdeler of 24 and a lone mayor in Agder."""
    crafted(engine)
    with engine.connect() as connection:
        return build_report(connection, "s", questionnaire(), ("landsdel",), K)


def many_strata(engine: Engine) -> Report:
    """Sector × landsdel: 35 strata of unit leaders, a few too small to publish."""
    rows: list[tuple[dict[str, Any], dict[str, object]]] = []
    for s, sector in enumerate(SECTORS):
        for place_number, place in enumerate(LANDSDELER):
            size = 2 if (s + place_number) % 9 == 0 else 6
            rows += [({"respondent_type": "unit_leader", "sector": sector, "landsdel": place},
                      answers_for(n, ("helse", "kultur", "teknisk")[n % 3]))
                     for n in range(size)]
    add_responses(engine, "s", rows)
    with engine.connect() as connection:
        return build_report(connection, "s", questionnaire(), ("sector", "landsdel"), K)


def rendered(results: Results, width: int | None, *, console_width: int | None = None,
             terminal: bool = False) -> str:
    console = Console(width=console_width or width, record=True, file=io.StringIO(),
                      force_terminal=terminal or None)
    print_results(results, console, width)
    return console.export_text()


# --- reading the tables back ------------------------------------------------------------------


@dataclasses.dataclass
class Drawn:
    """One printed table: its header labels and its body cells, as text."""

    headers: list[str]
    rows: list[list[str]]
    #: The top border, and the inner width of each column as drawn in it.
    top: str

    @property
    def widths(self) -> list[int]:
        return [cell_len(part) - 2 for part in self.top[1:-1].split("┳")]


def _joined(parts: list[list[str]]) -> list[str]:
    return [" ".join(p for p in column if p) for column in zip(*parts, strict=True)]


def read_table(lines: list[str]) -> Drawn:
    """Header cells joined over their lines per column; body cells likewise per row."""
    header = [line.split("┃")[1:-1] for line in lines if line.startswith("┃")]
    headers = _joined([[cell.strip() for cell in line] for line in header])
    rows: list[list[str]] = []
    current: list[list[str]] = []
    for line in lines:
        if line.startswith("│"):
            current.append([cell.strip() for cell in line.split("│")[1:-1]])
        elif line.startswith(("├", "└")) and current:
            rows.append(_joined(current))
            current = []
    return Drawn(headers, rows, lines[0])


def sections(text: str, results: Results) -> list[tuple[list[str], list[Drawn]]]:
    """Per question: its title lines and the tables printed under them, in order."""
    lines = text.splitlines()
    starts = [f"{q.spec.number}. " for q in results.questions]
    found: list[tuple[list[str], list[Drawn]]] = []
    table: list[str] | None = None
    for line in lines:
        if len(found) < len(starts) and line.startswith(starts[len(found)]):
            found.append(([], []))
        if not found:
            continue
        if line.startswith("┏"):
            table = []
        if table is not None:
            table.append(line)
            if line.startswith("└"):
                found[-1][1].append(read_table(table))
                table = None
        elif line.strip():
            found[-1][0].append(line.strip())
    assert len(found) == len(results.questions)
    return found


def header_label(label: str) -> str:
    """A column label as read back from its wrapped header."""
    return label.replace(" / ", " ")


def check_complete(text: str, results: Results, width: int | None) -> list[list[Drawn]]:
    """Every line fits; every question shows every column, the total in each of its tables,
    and every category in each table."""
    if width is not None:
        too_wide = [line for line in text.splitlines() if cell_len(line) > width]
        assert not too_wide, too_wide[:3]
    labels = [header_label(c.label) for c in results.columns]
    out = []
    for question, (_, tables) in zip(results.questions, sections(text, results), strict=True):
        assert tables
        shown = [h for t in tables for h in t.headers[1:]]
        assert sorted(set(shown)) == sorted(labels), question.title
        strata = [h for h in shown if h != TOTAL]
        assert len(strata) == len(set(strata)) == len(labels) - 1
        categories = [c.label for c in question.spec.categories]
        for table in tables:
            assert table.headers[0] == "Svar"
            assert table.headers[-1] == TOTAL
            assert [row[0] for row in table.rows][:len(categories)] == categories
        out.append(tables)
    return out


def cells_of(tables: list[Drawn], column: str) -> list[str]:
    """The body cells of the named column, from whichever table holds it."""
    for table in tables:
        if column in table.headers:
            j = table.headers.index(column)
            return [row[j] for row in table.rows]
    raise AssertionError(f"no column {column}")


# --- widths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_tables_by_landsdel_fit_and_hide_the_lone_mayor(engine: Engine, width: int) -> None:
    results = publish_results(by_landsdel(engine))
    text = rendered(results, width)
    for question, tables in zip(results.questions, check_complete(text, results, width),
                                strict=True):
        assert set(cells_of(tables, "Agder")) == {":"}, question.title
    assert text.startswith("Undersøkelse s (spørreskjema test-report), fordelt på")
    assert "færre enn 5 svar" in text
    assert "Svar i fritekst publiseres aldri" in text
    assert "inhabil" not in text


@pytest.mark.parametrize("width", WIDTHS)
def test_many_strata_are_split_with_labels_and_total_in_every_part(engine: Engine,
                                                                   width: int) -> None:
    report = many_strata(engine)
    assert len(report.columns) == 36
    results = publish_results(report)
    text = rendered(results, width)
    per_question = check_complete(text, results, width)
    for (title, tables), question in zip(sections(text, results), results.questions,
                                         strict=True):
        assert len(tables) > 1
        assert sum(" (forts.)" in line for line in title) == len(tables) - 1, question.title
        for first, second in itertools.pairwise(tables):
            # No more tables than needed: two neighbours together would not fit.
            assert cell_len(first.top) + sum(w + 3 for w in second.widths[1:-1]) > width
    small = next(c.label for c in report.columns if c.label == "helse / Oslo og Akershus")
    assert set(cells_of(per_question[0], header_label(small))) == {":"}


def test_without_strata_each_question_is_one_table_of_totals(engine: Engine) -> None:
    crafted(engine)
    with engine.connect() as connection:
        report = build_report(connection, "s", questionnaire(), (), K)
    results = publish_results(report)
    for width in WIDTHS:
        per_question = check_complete(rendered(results, width), results, width)
        assert all(len(tables) == 1 for tables in per_question)
        assert per_question[0][0].headers == ["Svar", TOTAL]


def test_long_labels_and_titles_wrap_inside_the_width(engine: Engine) -> None:
    report = by_landsdel(engine)
    long = " med en lang forklaring som ikke får plass på én linje i et smalt vindu"
    tables = tuple(dataclasses.replace(t, spec=dataclasses.replace(
        t.spec, row_label=(t.spec.row_label or "rad") + long,
        categories=tuple(Category(c.id, c.label + long) for c in t.spec.categories)))
        for t in report.tables)
    results = publish_results(dataclasses.replace(report, tables=tables))
    for width in WIDTHS:
        text = rendered(results, width)
        assert all(cell_len(line) <= width for line in text.splitlines())
        for question, (title, drawn) in zip(results.questions, sections(text, results),
                                            strict=True):
            assert " ".join(title).startswith(question.title)
            assert drawn[0].rows[0][0] == question.spec.categories[0].label


def test_a_file_gets_one_table_per_question_with_every_column(engine: Engine) -> None:
    """Not a terminal and no width asked for: nothing is split, however wide."""
    results = publish_results(many_strata(engine))
    console = Console(record=True, file=io.StringIO())
    assert not console.is_terminal
    print_results(results, console)
    text = console.export_text()
    per_question = check_complete(text, results, None)
    assert all(len(tables) == 1 for tables in per_question)
    assert "(forts.)" not in text
    assert max(cell_len(line) for line in text.splitlines()) > console.width
    assert all(len(line) < UNLIMITED for line in text.splitlines())


def test_a_terminal_is_fitted_to_its_own_width(engine: Engine) -> None:
    results = publish_results(many_strata(engine))
    text = rendered(results, None, console_width=70, terminal=True)
    check_complete(text, results, 70)


def test_a_window_too_narrow_says_so(engine: Engine) -> None:
    results = publish_results(by_landsdel(engine))
    assert "for smalt" in rendered(results, 22)
    assert "for smalt" not in rendered(results, 60)


# --- weighted shares, margins and changes -------------------------------------------------


def test_weighted_shares_margins_and_changes_are_printed(engine: Engine) -> None:
    report = by_landsdel(engine)
    total = len(report.columns) - 1
    north = next(j for j, c in enumerate(report.columns) if c.label == "Nord-Norge")
    helse: FigureKey = ("sektor", "helse", total)
    estimates = Estimates(
        weighted={helse: 0.412, ("sektor", "kultur", total): 0.297,
                  ("sektor", "helse", north): 0.351},
        moe={helse: 0.071, ("sektor", "helse", north): 0.12},
        weighting=Weighting(("landsdel",), "Kommuneregisteret 2019", {},
                            (1.0,) * total + (1.23,)))
    changes = Changes({helse: (0.38, 3.2, True), ("sektor", "kultur", total): (0.31, -1.3, False)},
                      Comparison("Kommuneundersøkelsen 2019", "ks-2019.csv", "Samme spørsmål."))
    results = publish_results(report, estimates, changes)
    for width in WIDTHS:
        text = rendered(results, width)
        per_question = check_complete(text, results, width)
        sector = per_question[0]
        assert cells_of(sector, TOTAL)[:2] == ["41 % ±7 +3 pp* 24", "30 % -1 pp 25"]
        assert cells_of(sector, "Nord-Norge")[0] == "35 % ±12 8"
        assert sector[0].rows[-1][0] == "Antall svar (uvektet)"
        assert per_question[1][0].rows[-1][0] == "Antall svar"  # not weighted: as before
        prose = " ".join(text.split())
        assert "vektet til Kommuneregisteret 2019 etter landsdel" in prose
        assert "designeffekt 1,23 totalt" in prose
        assert "Sammenlignet med Kommuneundersøkelsen 2019 (ks-2019.csv). Samme spørsmål." \
            in prose
        assert "statistisk signifikant" in prose
        allowed = shown_numbers(results)
        for tables in per_question:
            for table in tables:
                for row in table.rows:
                    for cell in row[1:]:
                        numbers = re.findall(r"[+-]?\d+", cell.replace("\u00a0", ""))
                        assert set(numbers) <= allowed, cell


# --- the layout alone -----------------------------------------------------------------------


@given(st.lists(st.integers(1, 16), min_size=1, max_size=40), st.integers(60, 200),
       st.integers(4, 30))
def test_layout_fits_and_keeps_every_column_in_order(widths: list[int], room: int,
                                                     label: int) -> None:
    plan = layout(widths, min(label, 16), label, room)
    assert plan.fits
    total = len(widths) - 1
    strata = [j for part in plan.parts for j in part if j != total]
    assert strata == list(range(total))
    assert all(part[-1] == total for part in plan.parts)
    assert min(label, 16) <= plan.label <= label
    def span(columns: list[int]) -> int:
        return sum(w + 3 for w in [plan.label, *(widths[j] for j in columns)]) + 1

    for part in plan.parts:
        assert span(list(part)) <= room
    for first, second in itertools.pairwise(plan.parts):
        assert span([*first[:-1], *second]) > room  # no more parts than needed
