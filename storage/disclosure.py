"""Exact disclosure across reports: a breakdown's hidden cells against its coarser reports.

A report by sector × size and a report by sector of the same survey share more than their
totals: each sector's count is the sum of that sector's cells in the finer table. A cell hidden
in the finer table can then be worked out from the coarser table's published count minus the
finer table's other cells, and a count hidden in the coarser table from the finer cells that
add up to it. `storage.aggregate` protects each table on its own (two-way cycles); this module
checks one table against every coarser table that can be published beside it, and says which
hidden numbers a reader of both could compute exactly.

The check is linear algebra over the hidden cells: every published sum (a row or column of the
finer table, a group of its columns that a coarser report shows) is one equation; a hidden
cell, or a hidden coarser count, is disclosed when the equations pin it down. The respondents
per column are taken as known (they leak easily, see `storage.aggregate`), except in a table
of one category, where they are the count itself. Arithmetic is modulo
a 61-bit prime, where the rank of these 0/1 systems is their rank over the rationals except with
negligible probability.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_P = (1 << 61) - 1

Cell = tuple[int, int]
#: A grouping of the finer table's strata columns: group id -> column indices.
Grouping = Mapping[int, Sequence[int]]


@dataclass(frozen=True, slots=True)
class Coarser:
    """One coarser table published beside the finer one: how its columns group the finer
    columns, and which of its category counts it shows (row, group)."""

    groups: Grouping
    shown: frozenset[Cell]


class _Span:
    """The span of the equations so far, in echelon form (sparse rows, mod P)."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, dict[int, int]]] = []

    def _reduce(self, vector: dict[int, int]) -> dict[int, int]:
        v = dict(vector)
        for pivot, row in self._rows:
            factor = v.get(pivot)
            if not factor:
                continue
            for col, value in row.items():
                new = (v.get(col, 0) - factor * value) % _P
                if new:
                    v[col] = new
                else:
                    v.pop(col, None)
        return v

    def add(self, vector: dict[int, int]) -> None:
        v = self._reduce(vector)
        if not v:
            return
        pivot = min(v)
        inverse = pow(v[pivot], _P - 2, _P)
        self._rows.append((pivot, {c: (x * inverse) % _P for c, x in v.items()}))

    def contains(self, vector: dict[int, int]) -> bool:
        return not self._reduce(vector)


def disclosed(rows: int, cols: int, hidden: Iterable[Cell], *, total_known: Sequence[bool],
              coarser: Sequence[Coarser]) -> tuple[list[Cell], list[tuple[int, Cell]]]:
    """Which hidden numbers a reader of this table and the coarser ones can compute.

    `hidden` are the finer table's hidden category cells (row < rows, column < cols);
    `total_known[i]` whether category i's total is published (here or in a coarser report).
    Returns the finer cells pinned down, and the coarser counts pinned down as (index of the
    coarser table, (row, group)).
    """
    unknowns = sorted(c for c in hidden if c[0] < rows and c[1] < cols)
    index = {c: n for n, c in enumerate(unknowns)}
    span = _Span()

    def terms(cells: Iterable[Cell]) -> dict[int, int]:
        return {index[c]: 1 for c in cells if c in index}

    for i in range(rows):
        if total_known[i]:
            span.add(terms((i, j) for j in range(cols)))
    # The column's respondents are known, except to a table of one category, whose count is
    # the respondents (free text: who wrote something), protected as such.
    for j in range(cols if rows >= 2 else 0):
        span.add(terms((i, j) for i in range(rows)))
    for table in coarser:
        for i, g in table.shown:
            span.add(terms((i, j) for j in table.groups[g]))
    cells = [c for c in unknowns if span.contains({index[c]: 1})]
    counts = [(n, (i, g)) for n, table in enumerate(coarser)
              for g, members in table.groups.items() for i in range(rows)
              if (i, g) not in table.shown and any((i, j) in index for j in members)
              and span.contains(terms((i, j) for j in members))]
    counts += [(n, (i, g)) for n, table in enumerate(coarser)
               for g, members in table.groups.items() for i in range(rows)
               if (i, g) not in table.shown and not any((i, j) in index for j in members)
               and members]
    return cells, counts
