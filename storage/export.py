"""The analyst's raw file: the anonymised answers, one row per response, in random order.

What a row holds, and why nothing more:

* the coarse strata (respondent type, sector, landsdel, size class) and whether the response was
  completed: what an analyst needs to weight and break down the answers;
* one column per answer id, in questionnaire order (grid rows as `item.row`; multiple choice as
  option ids joined by `;`);
* no response id (it would let two exports, or an export and a database copy, be matched row by
  row) and no date (dates can be matched against invitation and reminder history).

Rows are shuffled with the operating system's random source (`secrets.SystemRandom`): neither
insertion nor key order may hint at who answered when.

Free text IS exported. This file is the analyst's raw material under the data processing
agreement, not a publication: whoever publishes from it must apply the rules `svarbot report`
applies (cells below k hidden, complementary suppression) and must never quote free text
verbatim, which can identify its writer. For the same reason files are created readable by their
owner only (mode 0600). Text cells that start like a spreadsheet formula (`=`, `+`, `-`, `@`)
are written so that no spreadsheet runs them: a leading `'` in CSV, a string cell in xlsx.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TextIO

from sqlalchemy import Connection, select

from flows.model import Questionnaire
from storage.schema import Answer, Response

log = logging.getLogger(__name__)

#: The response columns of the export: strata and completion, never the id or the date.
STRATA_COLUMNS = ("respondent_type", "sector", "landsdel", "size_class", "completed")
Format = Literal["csv", "xlsx", "json"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True, slots=True)
class Export:
    """The anonymised answers: a header and the rows, already in random order."""

    header: tuple[str, ...]
    rows: list[list[object]]


def answer_columns(questionnaire: Questionnaire, stored: set[str]) -> list[str]:
    """The questionnaire's answer ids in order, then any stored ids it no longer has."""
    known = [key for item in questionnaire.items for key in item.keys]
    return known + sorted(stored - set(known))


def cell(value: object) -> object:
    """One stored answer as an export cell: option ids of a multiple choice joined by ';'."""
    if value is None:
        return None
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, ensure_ascii=False)


def export_answers(connection: Connection, survey_id: str, questionnaire: Questionnaire, *,
                   rng: random.Random | None = None) -> Export:
    """Every response of the survey as one row, shuffled (by `rng`, default the OS source)."""
    strata = [getattr(Response, name) for name in STRATA_COLUMNS]
    query = (select(Response.id, *strata, Answer.answer_id, Answer.value)
             .outerjoin(Answer, Answer.response_id == Response.id)
             .where(Response.survey_id == survey_id))
    by_response: dict[str, tuple[tuple[object, ...], dict[str, object]]] = {}
    width = len(strata)
    for row in connection.execute(query):
        response_id = row[0]
        if response_id not in by_response:
            by_response[response_id] = (tuple(row[1:1 + width]), {})
        if row[1 + width] is not None:
            by_response[response_id][1][row[1 + width]] = row[2 + width]
    stored = {key for _, answers in by_response.values() for key in answers}
    columns = answer_columns(questionnaire, stored)
    rows = [[*values, *(cell(answers.get(c)) for c in columns)]
            for values, answers in by_response.values()]
    (rng or secrets.SystemRandom()).shuffle(rows)
    log.info("exported %d responses of survey %s", len(rows), survey_id)
    return Export((*STRATA_COLUMNS, *columns), rows)


# --- writing ----------------------------------------------------------------------------------


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(export: Export, stream: TextIO) -> None:
    """CSV (RFC 4180, comma, UTF-8): empty cell for no answer."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(export.header)
    for row in export.rows:
        writer.writerow([_csv_cell(v) for v in row])


def write_json(export: Export, stream: TextIO) -> None:
    """A JSON array of objects, one per response; null for no answer."""
    records = [dict(zip(export.header, row, strict=True)) for row in export.rows]
    json.dump(records, stream, ensure_ascii=False, indent=1)
    stream.write("\n")


def write_xlsx(export: Export, stream: IO[bytes]) -> None:
    """One worksheet 'svar', header in the first row; text is never read as a formula."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet("svar")
    sheet.append(list(export.header))
    for row in export.rows:
        cells: list[object] = []
        for value in row:
            if isinstance(value, str):
                text = WriteOnlyCell(sheet, value=_XLSX_ILLEGAL.sub("", value))
                text.data_type = "s"
                cells.append(text)
            else:
                cells.append(value)
        sheet.append(cells)
    book.save(stream)


def _private_fd(path: Path) -> int:
    """A descriptor for writing `path`, readable by its owner only (also if it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_export(export: Export, fmt: Format, out: Path | None, stdout: TextIO) -> None:
    """Write `export` as `fmt` to `out` (created with mode 0600), or to `stdout` (not xlsx)."""
    if fmt == "xlsx":
        if out is None:
            raise ValueError("xlsx is a binary format: give --out FILE.xlsx")
        with os.fdopen(_private_fd(out), "wb") as binary:
            write_xlsx(export, binary)
        return
    writer = write_csv if fmt == "csv" else write_json
    if out is None:
        writer(export, stdout)
        return
    with os.fdopen(_private_fd(out), "w", encoding="utf-8", newline="") as text:
        writer(export, text)
