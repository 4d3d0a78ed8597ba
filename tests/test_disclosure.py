"""Two reports of one survey, by sector and by sector × size, read together by an attacker.

The attacker knows every published number of both reports and every stratum's respondents,
and solves the linear equations they make (exact arithmetic, an implementation of its own):
no hidden cell of either report may come out as a single value. Without the protection
against coarser reports (`storage.aggregate._Breakdowns._protect`) the same attacker does
find hidden cells, which shows the test can fail.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from test_aggregate import add_responses, questionnaire

from storage import aggregate
from storage.aggregate import Report, build_report
from storage.schema import Base

SECTORS = ("helse", "oppvekst", "sosial", "kultur", "teknisk")
SIZES = ("<3000", "3000-9999", "10000-49999", "50000+")
K = 5


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """400 responses, skewed over sectors and sizes so that small cells abound."""
    path: Path = tmp_path_factory.mktemp("disclosure") / "answers.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    rng = random.Random(7)
    rows: list[tuple[dict[str, Any], dict[str, object]]] = []
    for _ in range(400):
        sector = rng.choices(SECTORS, weights=(40, 35, 10, 8, 7))[0]
        size = rng.choices(SIZES, weights=(15, 30, 35, 20))[0]
        rows.append(({"respondent_type": "unit_leader", "sector": sector, "size_class": size},
                     {"sektor": sector, "ny": rng.choice(("yes", "no", "yes")),
                      "grad": rng.choices((1, 2, 3, 4), weights=(1, 3, 5, 2))[0],
                      "tiltak": rng.sample(["x", "y", "z"], rng.randint(1, 2)),
                      "ansatte": rng.choice((5, 30, 120, 700))}))
    add_responses(engine, "s", rows)
    yield engine
    engine.dispose()


def _reports(engine: Engine) -> tuple[Report, Report]:
    with engine.connect() as connection:
        return (build_report(connection, "s", questionnaire(), ("sector",), K),
                build_report(connection, "s", questionnaire(), ("sector", "size_class"), K))



def _reduced(basis: dict[int, dict[int, Fraction]],
             vector: dict[int, Fraction]) -> dict[int, Fraction]:
    """`vector` minus its part in the span of `basis` (a reduced echelon basis)."""
    v = dict(vector)
    for pivot in sorted(basis):
        if v.get(pivot):
            factor = v[pivot]
            for col, value in basis[pivot].items():
                v[col] = v.get(col, Fraction(0)) - factor * value
            v = {c: x for c, x in v.items() if x}
    return v


def _in_span(basis: dict[int, dict[int, Fraction]], vector: dict[int, Fraction]) -> bool:
    return not _reduced(basis, vector)


def _add(basis: dict[int, dict[int, Fraction]], vector: dict[int, Fraction]) -> None:
    v = _reduced(basis, vector)
    if not v:
        return
    pivot = min(v)
    row = {c: x / v[pivot] for c, x in v.items()}
    for other in basis.values():  # keep the basis reduced: no pivot in another row
        if other.get(pivot):
            factor = other[pivot]
            for col, value in row.items():
                other[col] = other.get(col, Fraction(0)) - factor * value
            for col in [c for c, x in other.items() if not x]:
                del other[col]
    basis[pivot] = row


def computable(coarse: Report, fine: Report) -> list[str]:
    """Every hidden count (of either report) the two reports pin down, named."""
    found = []
    sector_of = [c.key[0] if c.key else None for c in fine.columns]
    coarse_col = {c.key[0]: j for j, c in enumerate(coarse.columns) if c.key}
    for ct, ft in zip(coarse.tables, fine.tables, strict=True):
        rows = len(ft.counts)
        strata = len(fine.columns) - 1
        unknown = {(i, j): n for n, (i, j) in enumerate(
            (i, j) for i in range(rows) for j in range(strata) if ft.counts[i][j] is None)}
        basis: dict[int, dict[int, Fraction]] = {}
        # Multiple choice: each option is its own chosen / not chosen table, so its counts do
        # not add up to the respondents; a choice's categories do.
        # Free text has one category, "wrote something": its count is the respondents.
        adds_up = ft.spec.kind == "choice" and rows >= 2

        def terms(cells: list[tuple[int, int]],
                  unknown: dict[tuple[int, int], int] = unknown) -> dict[int, Fraction]:
            return {unknown[c]: Fraction(1) for c in cells if c in unknown}

        for j in range(strata if adds_up else 0):  # every stratum's respondents are known
            _add(basis, terms([(i, j) for i in range(rows)]))
        for i in range(rows):
            if ft.counts[i][strata] is not None or ct.counts[i][-1] is not None:
                _add(basis, terms([(i, j) for j in range(strata)]))
            for sector, cj in coarse_col.items():
                if ct.counts[i][cj] is not None:
                    _add(basis, terms([(i, j) for j in range(strata) if sector_of[j] == sector]))
        for (i, j), n in unknown.items():
            if _in_span(basis, {n: Fraction(1)}):
                found.append(f"{ft.spec.answer_id} {ft.spec.categories[i].id} "
                             f"{fine.columns[j].label}")
        for sector, cj in coarse_col.items():
            for i in range(rows):
                members = [(i, j) for j in range(strata) if sector_of[j] == sector]
                if ct.counts[i][cj] is None and members and _in_span(basis, terms(members)):
                    found.append(f"{ct.spec.answer_id} {ct.spec.categories[i].id} {sector} "
                                 "(by sector)")
    return found


def test_the_two_reports_hide_cells(engine: Engine) -> None:
    _coarse, fine = _reports(engine)
    hidden = sum(v is None for t in fine.tables for row in t.counts for v in row)
    assert hidden > 20  # the data make the problem real


def test_no_hidden_cell_follows_from_the_two_reports(engine: Engine) -> None:
    coarse, fine = _reports(engine)
    assert computable(coarse, fine) == []


def test_asking_for_size_then_sector_hides_the_same_cells(engine: Engine) -> None:
    with engine.connect() as connection:
        one = build_report(connection, "s", questionnaire(), ("sector", "size_class"), K)
        other = build_report(connection, "s", questionnaire(), ("size_class", "sector"), K)
    where = {tuple(reversed(c.key)) if c.key else None: j for j, c in enumerate(other.columns)}
    for a, b in zip(one.tables, other.tables, strict=True):
        for j, column in enumerate(one.columns):
            jb = where[column.key]
            assert [row[j] for row in a.counts] == [row[jb] for row in b.counts]


def test_without_the_protection_the_attacker_succeeds(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregate._Breakdowns, "_protect",
                        lambda self, positions, strata, tables, masks: masks)
    coarse, fine = _reports(engine)
    leaks = computable(coarse, fine)
    assert leaks, "the unprotected reports should be breakable, or this test proves nothing"
