"""The analyst's raw file: the anonymised answers, one row per response, in random order.

What a row holds, and why nothing more:

* the coarse strata (respondent type, sector, landsdel, size class) and whether the response was
  completed: what an analyst needs to weight and break down the answers;
* one column per answer id, in questionnaire order (grid rows as `item.row`). Multiple choice is
  a list of option ids: a JSON list in JSON, option ids joined by `;` in CSV and xlsx, one 0/1
  variable per option in SPSS (`.sav`);
* no response id (it would let two exports, or an export and a database copy, be matched row by
  row) and no date (dates can be matched against invitation and reminder history).

Rows are shuffled with the operating system's random source (`secrets.SystemRandom`): neither
insertion nor key order may hint at who answered when. Every format writes the rows in that
order.

Codes or labels: by default cells hold what the questionnaire stores (option ids, scale points,
`yes`/`no`/`dont_know`), which is stable across languages and questionnaire wording; with
`labels=True` choice answers are written as their bokmål labels instead, for reading the file
as it is. The codebook (`codebook`) lists every answer id and value with its labels in bokmål,
nynorsk and English and its SPSS name and code; the xlsx export carries it as the sheet
"Kodebok", the JSON export as a file beside it (`codebook_path`), and a `.sav` file in its
variable and value labels.

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
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, TextIO

from sqlalchemy import Connection, select

from flows.model import (
    DONT_KNOW,
    LANGS,
    NO,
    NOT_RELEVANT,
    YES,
    Item,
    ItemType,
    Questionnaire,
    Text,
)
from flows.texts import phrase
from storage.schema import Answer, Response

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

log = logging.getLogger(__name__)

#: The response columns of the export: strata and completion, never the id or the date.
STRATA_COLUMNS = ("respondent_type", "sector", "landsdel", "size_class", "completed")
Format = Literal["csv", "xlsx", "json", "sav"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True, slots=True)
class Export:
    """The anonymised answers: a header and the rows, already in random order.

    Cells hold the stored values (a multiple choice as a list of option ids); the writers
    render them per format. `questionnaire` is what the codebook, the labels and the SPSS
    coding are made from; without it only the plain csv, json and xlsx can be written.
    """

    header: tuple[str, ...]
    rows: list[list[object]]
    questionnaire: Questionnaire | None = field(default=None, compare=False)


def answer_columns(questionnaire: Questionnaire, stored: set[str]) -> list[str]:
    """The questionnaire's answer ids in order, then any stored ids it no longer has."""
    known = [key for item in questionnaire.items for key in item.keys]
    return known + sorted(stored - set(known))


def cell(value: object) -> object:
    """One stored answer as a CSV or xlsx cell: option ids of a multiple choice joined by ';'."""
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
    rows = [[*values, *(answers.get(c) for c in columns)]
            for values, answers in by_response.values()]
    (rng or secrets.SystemRandom()).shuffle(rows)
    log.info("exported %d responses of survey %s", len(rows), survey_id)
    return Export((*STRATA_COLUMNS, *columns), rows, questionnaire)


# --- the codebook -----------------------------------------------------------------------------

CODEBOOK_COLUMNS = ("number", "answer_id", "item", "type", "question_nb", "question_nn",
                    "question_en", "row_nb", "row_nn", "row_en", "value", "label_nb",
                    "label_nn", "label_en", "spss_variable", "spss_code")
#: SPSS codes of the special answers, unless a scale reaches them (see `_special_codes`).
_SPECIAL_CODES = {DONT_KNOW: 97, NOT_RELEVANT: 98}


@dataclass(frozen=True, slots=True)
class _Value:
    """One answer a question can have: what is stored, how it reads, how SPSS codes it."""

    value: str | int
    label: Text | None
    code: int
    #: "Don't know" and "not relevant": user-missing in SPSS, so means and correlations
    #: leave them out unless asked to include them.
    missing: bool = False


def _phrase_text(key: str) -> Text:
    return Text(phrase(key, "nb"), phrase(key, "nn"), phrase(key, "en"))


def _special_codes(top: int) -> dict[str, int]:
    """97/98 for "don't know"/"not relevant" (a survey convention); above a scale that
    reaches them."""
    if top < min(_SPECIAL_CODES.values()):
        return dict(_SPECIAL_CODES)
    return {DONT_KNOW: top + 1, NOT_RELEVANT: top + 2}


def _values(item: Item) -> tuple[_Value, ...]:
    """The answers one answer id of `item` can hold, in the order respondents saw them.

    Single and multiple choice: options coded 1..n. Yes/no: 1 yes, 0 no (a mean is the share
    answering yes). Scales: the point itself. Specials: see `_special_codes`.
    """
    if item.type in (ItemType.SINGLE, ItemType.MULTI):
        return tuple(_Value(o.id, o.label, n) for n, o in enumerate(item.options, start=1))
    yesno = item.type is ItemType.YESNO or (item.type is ItemType.GRID
                                           and item.row_type == "yesno")
    if yesno:
        found = [_Value(YES, _phrase_text("yes"), 1), _Value(NO, _phrase_text("no"), 0)]
        if item.dont_know:
            found.append(_Value(DONT_KNOW, _phrase_text("dont_know"),
                                _SPECIAL_CODES[DONT_KNOW], missing=True))
        return tuple(found)
    scale = item.scale
    if scale is None or item.type not in (ItemType.SCALE, ItemType.GRID):
        return ()
    found = [_Value(p, scale.label(p), p) for p in range(scale.min, scale.max + 1)]
    codes = _special_codes(scale.max)
    if scale.dont_know:
        found.append(_Value(DONT_KNOW, _phrase_text("dont_know"), codes[DONT_KNOW], True))
    if scale.not_relevant:
        found.append(_Value(NOT_RELEVANT, _phrase_text("not_relevant"), codes[NOT_RELEVANT],
                            True))
    return tuple(found)


def _number(item: Item, key: str) -> str:
    """The answer id's number as respondents see it: "4", or "4b" for grid row b."""
    if item.type is ItemType.GRID:
        return f"{item.number}{chr(ord('a') + item.keys.index(key))}"
    return str(item.number)


def _texts(prefix: str, text: Text | None) -> dict[str, str | None]:
    """A text in every language, as respondents in that language read it (bokmål where the
    questionnaire has no translation)."""
    return {f"{prefix}_{lang}": None if text is None else text.get(lang) for lang in LANGS}


def codebook(questionnaire: Questionnaire) -> list[dict[str, object]]:
    """The codebook: one entry per answer id and value, in questionnaire order.

    A choice, yes/no or scale answer id has one entry per value it can hold (`value`, as the
    export writes it, with its labels); number and free-text answer ids have one entry with
    `value` None. Grid rows are answer ids of their own (`item.row`, numbered "4a", "4b").
    `spss_variable` and `spss_code` say where and how the value is in the `.sav` file (a
    multiple choice has one 0/1 variable per option, so its code is 1, "chosen").

    Flat rows, the same in the xlsx sheet "Kodebok" and the JSON file beside a JSON export
    (`codebook_path`): that JSON export stays an array of responses, so scripts that read it
    keep working, and the codebook is a table an analyst can filter as it is.
    """
    names = _sav_names(questionnaire, ())
    entries: list[dict[str, object]] = []
    for item in questionnaire.items:
        values = _values(item)
        for n, key in enumerate(item.keys):
            row = item.rows[n] if item.type is ItemType.GRID else None
            base: dict[str, object] = {
                "number": _number(item, key), "answer_id": key, "item": item.id,
                "type": item.type.value, **_texts("question", item.text),
                **_texts("row", row.label if row else None)}
            if not values:
                entries.append({**base, "value": None, **_texts("label", None),
                                "spss_variable": names[key], "spss_code": None})
            for value in values:
                multi = item.type is ItemType.MULTI
                entries.append({
                    **base, "value": value.value, **_texts("label", value.label),
                    "spss_variable": names[f"{key}={value.value}"] if multi else names[key],
                    "spss_code": 1 if multi else value.code})
    return entries


def codebook_path(out: Path) -> Path:
    """Where the codebook of a JSON export to `out` goes: `svar.json` -> `svar.codebook.json`."""
    return out.with_name(f"{out.stem}.codebook.json")


def write_codebook_json(questionnaire: Questionnaire, stream: TextIO) -> None:
    """The codebook as a JSON array of objects (`CODEBOOK_COLUMNS`)."""
    json.dump(codebook(questionnaire), stream, ensure_ascii=False, indent=1)
    stream.write("\n")


# --- labels instead of codes ------------------------------------------------------------------


def _label_maps(questionnaire: Questionnaire) -> dict[str, dict[str | int, str]]:
    """Per answer id, the bokmål label of each stored value that has one."""
    maps: dict[str, dict[str | int, str]] = {}
    for item in questionnaire.items:
        labels = {v.value: v.label.nb for v in _values(item) if v.label is not None}
        for key in item.keys:
            maps[key] = labels
    return maps


def _labelled(value: object, labels: Mapping[str | int, str]) -> object:
    if isinstance(value, list):
        return [_labelled(v, labels) for v in value]
    if isinstance(value, str | int) and not isinstance(value, bool):
        return labels.get(value, value)
    return value


def with_labels(export: Export) -> Export:
    """The export with choice answers as their bokmål labels instead of codes.

    Options, yes/no, "don't know" / "not relevant" and labelled scale points become their
    labels (a multiple choice a list of labels); unlabelled scale points, numbers, free text
    and values the questionnaire does not know stay as stored. The strata stay codes: they
    are the same in every survey and what weighting files use.
    """
    if export.questionnaire is None:
        raise ValueError("labels need the questionnaire the answers were given to")
    maps = _label_maps(export.questionnaire)
    strata = len(STRATA_COLUMNS)
    columns = [None if n < strata else maps.get(name) for n, name in enumerate(export.header)]
    rows = [[value if labels is None else _labelled(value, labels)
             for value, labels in zip(row, columns, strict=True)] for row in export.rows]
    return replace(export, rows=rows)


# --- writing ----------------------------------------------------------------------------------


def _csv_cell(value: object) -> object:
    value = cell(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(export: Export, stream: TextIO) -> None:
    """CSV (RFC 4180, comma, UTF-8): empty cell for no answer; a multiple choice as its
    values joined by ';' (labels too, so a label holding ';' reads ambiguously: analyse the
    codes)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(export.header)
    for row in export.rows:
        writer.writerow([_csv_cell(v) for v in row])


def write_json(export: Export, stream: TextIO) -> None:
    """A JSON array of objects, one per response; null for no answer, a multiple choice as a
    list."""
    records = [dict(zip(export.header, row, strict=True)) for row in export.rows]
    json.dump(records, stream, ensure_ascii=False, indent=1)
    stream.write("\n")


def _xlsx_row(sheet: WriteOnlyWorksheet, values: Iterable[object]) -> list[object]:
    """Cells for a write-only sheet: text always as a string cell, so nothing is a formula."""
    from openpyxl.cell import WriteOnlyCell

    cells: list[object] = []
    for value in values:
        shown = cell(value)
        if isinstance(shown, str):
            text = WriteOnlyCell(sheet, value=_XLSX_ILLEGAL.sub("", shown))
            text.data_type = "s"
            cells.append(text)
        else:
            cells.append(shown)
    return cells


def write_xlsx(export: Export, stream: IO[bytes]) -> None:
    """Worksheet 'svar' (header in the first row; text is never read as a formula), and
    'Kodebok', the codebook, when the export knows its questionnaire."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("svar")
    sheet.append(list(export.header))
    for row in export.rows:
        sheet.append(_xlsx_row(sheet, row))
    if export.questionnaire is not None:
        book_sheet = book.create_sheet("Kodebok")
        book_sheet.append(list(CODEBOOK_COLUMNS))
        for entry in codebook(export.questionnaire):
            book_sheet.append(_xlsx_row(book_sheet, (entry[c] for c in CODEBOOK_COLUMNS)))
    book.save(stream)


def _private_fd(path: Path) -> int:
    """A descriptor for writing `path`, readable by its owner only (also if it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_export(export: Export, fmt: Format, out: Path | None, stdout: TextIO, *,
                 labels: bool = False) -> None:
    """Write `export` as `fmt` to `out` (created with mode 0600), or to `stdout` (csv, json).

    `labels`: choice answers as bokmål labels (`with_labels`) in csv, json and xlsx; a `.sav`
    always holds codes with value labels, which SPSS and R show as labels themselves. A JSON
    export to a file gets its codebook beside it (`codebook_path`, also mode 0600).
    """
    shown = with_labels(export) if labels and fmt != "sav" else export
    if out is None:
        if fmt in ("xlsx", "sav"):
            raise ValueError(f"{fmt} is a binary format: give --out FILE.{fmt}")
        (write_csv if fmt == "csv" else write_json)(shown, stdout)
        return
    if fmt == "sav":
        if export.questionnaire is None:
            raise ValueError("sav needs the questionnaire the answers were given to")
        write_sav(export, export.questionnaire, out)
    elif fmt == "xlsx":
        with os.fdopen(_private_fd(out), "wb") as binary:
            write_xlsx(shown, binary)
    else:
        with os.fdopen(_private_fd(out), "w", encoding="utf-8", newline="") as text:
            (write_csv if fmt == "csv" else write_json)(shown, text)
        if fmt == "json" and export.questionnaire is not None:
            with os.fdopen(_private_fd(codebook_path(out)), "w", encoding="utf-8") as text:
                write_codebook_json(export.questionnaire, text)


# --- SPSS ---------------------------------------------------------------------------------------

#: SPSS refuses these as variable names (any case).
_SPSS_RESERVED = {"ALL", "AND", "BY", "EQ", "GE", "GT", "LE", "LT", "NE", "NOT", "OR", "TO",
                  "WITH"}
_SPSS_NAME_MAX = 64
#: SPSS keeps at most this many bytes of a variable label and of a value label.
_VARIABLE_LABEL_MAX = 255
_VALUE_LABEL_MAX = 120
_FILE_LABEL_MAX = 64
_STRATA_LABELS = {"respondent_type": "Respondenttype", "sector": "Sektor",
                  "landsdel": "Landsdel", "size_class": "Kommunestørrelse (innbyggere)",
                  "completed": "Fullført"}
_CHOSEN = {1: "Valgt", 0: "Ikke valgt"}
#: The file's note (SPSS: DISPLAY DOCUMENTS), in lines of at most 80 bytes as SPSS keeps them.
_NOTE = ("Anonymiserte svar i tilfeldig rekkefølge, uten id-er og datoer. Fritekst er "
         "råmateriale for analyse og skal ikke siteres eller publiseres.")
_YES_NO = {1: phrase("yes", "nb"), 0: phrase("no", "nb")}


def spss_name(name: str, taken: set[str]) -> str:
    """A valid, unused SPSS variable name for `name`; adds it (upper case) to `taken`.

    At most 64 bytes of ASCII letters, digits and '_', starting with a letter, no reserved
    word, unique without regard to case (SPSS compares names that way): `rad.a` -> `rad_a`.
    """
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not safe or not safe[0].isalpha():
        safe = "v_" + safe
    if safe.upper() in _SPSS_RESERVED:
        safe += "_"
    base, candidate, n = safe[:_SPSS_NAME_MAX], safe[:_SPSS_NAME_MAX], 1
    while candidate.upper() in taken:
        n += 1
        suffix = f"_{n}"
        candidate = base[:_SPSS_NAME_MAX - len(suffix)] + suffix
    taken.add(candidate.upper())
    return candidate


def _sav_names(questionnaire: Questionnaire, extra: Sequence[str]) -> dict[str, str]:
    """SPSS names of the strata, every answer id (a multiple choice's options as
    `item=option`) and then `extra` stored ids, in that order, so a questionnaire's names do
    not depend on what else was stored."""
    taken: set[str] = set()
    names = {column: spss_name(column, taken) for column in STRATA_COLUMNS}
    for item in questionnaire.items:
        for key in item.keys:
            names[key] = spss_name(key, taken)
            if item.type is ItemType.MULTI:
                for option in item.options:
                    names[f"{key}={option.id}"] = spss_name(f"{key}_{option.id}", taken)
    for key in extra:
        if key not in names:
            names[key] = spss_name(key, taken)
    return names


def _clip(text: str, limit: int, keep: str = "") -> str:
    """`text` + `keep` within `limit` UTF-8 bytes, cutting `text` at a character boundary."""
    room = limit - len(keep.encode())
    raw = text.encode()
    if len(raw) > room:
        text = raw[:max(room - 3, 0)].decode(errors="ignore").rstrip() + "..."
    return text + keep


@dataclass
class _Variable:
    """One SPSS variable: its name, label, values, and how it is measured."""

    name: str
    label: str
    values: list[object]
    kind: Literal["numeric", "string"]
    value_labels: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    measure: Literal["nominal", "ordinal", "scale"] = "nominal"


def _question_label(item: Item, key: str) -> str:
    text = item.text.nb
    if item.type is ItemType.GRID:
        text = f"{text} — {item.rows[item.keys.index(key)].label.nb}"
    return _clip(text, _VARIABLE_LABEL_MAX, f" [{key}]")


def _as_text(name: str, label: str, column: Sequence[object]) -> _Variable:
    """A string variable holding each value as the CSV export writes it."""
    def text(value: object) -> str | None:
        shown = cell(value)
        if shown is None or isinstance(shown, str):
            return shown
        if isinstance(shown, bool):
            return "true" if shown else "false"
        return str(shown)

    return _Variable(name, label, [text(v) for v in column], "string")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _item_variables(item: Item, key: str, column: Sequence[object],
                    names: Mapping[str, str]) -> list[_Variable]:
    """The SPSS variables of one answer id; as text when some value fits no code, so nothing
    stored is lost (the log says which answer id)."""
    label = _question_label(item, key)
    if item.type is ItemType.TEXT:
        return [_as_text(names[key], label, column)]
    if item.type is ItemType.NUMBER:
        if all(v is None or _is_int(v) for v in column):
            return [_Variable(names[key], label, list(column), "numeric", measure="scale")]
    elif item.type is ItemType.MULTI:
        known = {o.id for o in item.options}
        if all(v is None or (isinstance(v, list) and set(map(str, v)) <= known)
               for v in column):
            return [_Variable(names[f"{key}={o.id}"],
                              _clip(o.label.nb, _VARIABLE_LABEL_MAX, f" [{key}={o.id}]"),
                              [None if not isinstance(v, list)
                               else int(o.id in {str(x) for x in v}) for v in column],
                              "numeric", dict(_CHOSEN))
                    for o in item.options]
    else:
        values = _values(item)
        codes: dict[object, int] = {v.value: v.code for v in values}
        if all(v is None or (isinstance(v, str | int) and not isinstance(v, bool)
                             and v in codes) for v in column):
            labels = {v.code: _clip(v.label.nb, _VALUE_LABEL_MAX)
                      for v in values if v.label is not None}
            scale = item.type is ItemType.SCALE or (item.type is ItemType.GRID
                                                     and item.row_type == "scale")
            return [_Variable(names[key], label,
                              [None if v is None else codes[v] for v in column],
                              "numeric", labels, [v.code for v in values if v.missing],
                              "ordinal" if scale else "nominal")]
    log.warning("sav: answer id %s holds values the questionnaire does not know; written as "
                "text", key)
    return [_as_text(names[key], label, column)]


def _variables(export: Export, questionnaire: Questionnaire) -> list[_Variable]:
    names = _sav_names(questionnaire, export.header[len(STRATA_COLUMNS):])
    columns = {name: [row[n] for row in export.rows] for n, name in enumerate(export.header)}
    variables = []
    for name in STRATA_COLUMNS:
        if name == "completed":
            variables.append(_Variable(names[name], _STRATA_LABELS[name],
                                       [None if v is None else int(bool(v))
                                        for v in columns[name]], "numeric", dict(_YES_NO)))
        else:
            variables.append(_as_text(names[name], _STRATA_LABELS[name], columns[name]))
    for key in export.header[len(STRATA_COLUMNS):]:
        item = questionnaire.find(key.partition(".")[0])
        if item is None or key not in item.keys:
            variables.append(_as_text(names[key], _clip("Ikke i spørreskjemaet",
                                                        _VARIABLE_LABEL_MAX, f" [{key}]"),
                                      columns[key]))
            continue
        variables.extend(_item_variables(item, key, columns[key], names))
    return variables


def write_sav(export: Export, questionnaire: Questionnaire, path: Path) -> None:
    """The export as an SPSS `.sav` file at `path` (mode 0600), read by SPSS, R (haven),
    Stata, pandas and PSPP.

    SPSS and R users expect numeric codes with value labels, so that is what choice answers
    are: options 1..n in questionnaire order, yes/no as 1 Ja / 0 Nei, scale points as
    themselves; "vet ikke" (97) and "ikke relevant" (98) are declared user-missing, so
    means and correlations leave them out, while frequency tables still count them (R:
    `haven::read_sav(user_na = TRUE)` keeps them). A multiple choice is one 0/1 variable per
    option (1 Valgt / 0 Ikke valgt; missing where the question was not answered), labelled
    with the option. Numbers are numeric, free text and the strata strings (SPSS has no
    missing string: empty means no answer). Variable names are made safe for SPSS
    (`spss_name`; the codebook maps them), and every variable label keeps the original answer
    id in brackets after the question text. Rows are in the export's random order; there are
    no ids or dates, as in every format.
    """
    import polars as pl
    import pyreadstat

    variables = _variables(export, questionnaire)
    frame = pl.DataFrame([
        pl.Series(v.name, v.values, dtype=pl.Int64 if v.kind == "numeric" else pl.String,
                  strict=False)
        for v in variables])
    formats = {}
    for v in variables:
        if v.kind == "numeric":
            digits = max((len(str(x)) for x in v.values if x is not None), default=1)
            formats[v.name] = f"F{max(digits + 1, 3)}.0"
    os.close(_private_fd(path))
    pyreadstat.write_sav(
        frame, path,
        file_label=_clip(questionnaire.title.nb, _FILE_LABEL_MAX),
        column_labels={v.name: v.label for v in variables},
        variable_value_labels={v.name: {code: text for code, text in v.value_labels.items()}
                               for v in variables if v.value_labels},
        missing_ranges={v.name: list(v.missing) for v in variables if v.missing},
        variable_measure={v.name: v.measure for v in variables},
        variable_format=formats,
        note=textwrap.wrap(_NOTE, 70))
    path.chmod(0o600)
    log.info("wrote %d responses as sav", len(export.rows))
