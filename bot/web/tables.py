"""The tables pages show, and the same tables as CSV: everything on screen can be had as CSV.

A page builds `Table`s; the template renders them with one macro, and `?format=csv` returns
the page's tables as CSV instead (one block per table, separated by an empty line), with the
same rows and the text of every cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.responses import Response


@dataclass(frozen=True, slots=True)
class Link:
    """A cell that links somewhere (the CSV gets its text)."""

    text: str
    href: str


@dataclass(frozen=True, slots=True)
class Mark:
    """A cell shown with emphasis and a reason (e.g. a stratum under target)."""

    text: str
    note: str


Cell = str | int | float | Link | Mark | None


def cell_text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Link | Mark):
        return cell.text
    if isinstance(cell, float):
        return f"{cell:.1f}"
    return str(cell)


@dataclass(slots=True)
class Table:
    """A caption, column headers and rows; `numeric` columns are right-aligned."""

    caption: str
    headers: Sequence[str]
    rows: list[list[Cell]] = field(default_factory=list)
    numeric: frozenset[int] = frozenset()
    name: str = ""


def _defused(text: str) -> str:
    """A cell a spreadsheet would take for a formula (`=`, `+`, `-`, `@`) starts with `'`."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(tables: Sequence[Table], filename: str) -> Response:
    """The tables as one CSV download (UTF-8 with BOM, so Excel reads æøå)."""
    out = io.StringIO()
    writer = csv.writer(out)
    for n, table in enumerate(tables):
        if n:
            writer.writerow([])
        if len(tables) > 1:
            writer.writerow([table.caption])
        writer.writerow(table.headers)
        for row in table.rows:
            writer.writerow([_defused(cell_text(c)) for c in row])
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}.csv"'})
