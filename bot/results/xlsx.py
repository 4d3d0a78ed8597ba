"""The published report as an Excel workbook: for readers who want the tables in a spreadsheet.

The workbook renders a `Results` and the survey's `Fieldwork`, nothing else, so it can show no
number the other formats would not: every count, share, weighted share, margin of error and
change is a figure of `results`, hidden ones as the text ':' exactly where `results_json` has
':'. Numbers are written as numbers and shares as fractions with a percent format, so readers
can compute and chart with them without parsing text; the only other numbers are the
fieldwork counts, k, and the design effects of the weights, all of which the report publishes
too. Free text is never in it: its question sheet shows how many wrote something.

Sheets: "Innhold" (every question, linked to its sheet), "Metode" (how the numbers came
about, in words a reader of the published report needs) and one sheet per question or grid
row, named by its number as respondents saw it ("6", "9b"). Everything is in bokmål.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet

from bot.results.fieldwork import Fieldwork
from bot.results.published import Figure, Question, Results
from storage.aggregate import SUPPRESSED

CONTENTS = "Innhold"
METHODS = "Metode"
#: Fractions shown as whole percentages, written the Norwegian way ("33 %").
PERCENT = "0 %"
#: A margin of error, a fraction too: "±4 %" is plus or minus four percentage points.
MARGIN = '"±"0 %'
#: A change in percentage points, always with its sign.
POINTS = "+0;-0;0"
COUNT = "0"
DESIGN_EFFECT = "0.00"

BLOCK_COUNT = "Antall"
BLOCK_SHARE = "Andel"
BLOCK_WEIGHTED = "Vektet andel"
BLOCK_MOE = "Feilmargin (95 %)"
RESPONDENTS = "Antall svar (n)"

_HIDDEN_NOTE = (": Tallet vises ikke: færre enn {k} svar i cellen eller gruppen, eller skjult i "
                "tillegg slik at skjulte tall ikke kan regnes ut fra summene.")
_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=13)
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_WRAP = Alignment(wrap_text=True, vertical="top")
_RIGHT = Alignment(horizontal="right")
_LINK = Font(color="0563C1", underline="single")
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")


def _rounded(value: float) -> float:
    """A fraction as the published JSON has it (four decimals), so the formats agree."""
    return round(value, 4)


def sheet_names(questions: Sequence[Question]) -> list[str]:
    """A sheet name per question: its number, made valid and unique for Excel.

    Excel compares sheet names without case, allows at most 31 characters and none of
    ``[]:*?/\\``; the contents and methods sheets keep their names.
    """
    used = {CONTENTS.casefold(), METHODS.casefold()}
    names = []
    for question in questions:
        base = _SHEET_NAME_BAD.sub("_", question.spec.number).strip("'")[:31] or "spørsmål"
        name, n = base, 1
        while name.casefold() in used:
            n += 1
            suffix = f" ({n})"
            name = base[:31 - len(suffix)] + suffix
        used.add(name.casefold())
        names.append(name)
    return names


def _link(cell_sheet: Worksheet, row: int, column: int, text: str, target: str) -> None:
    """A cell that opens `target` (a sheet of this workbook) when clicked."""
    cell = cell_sheet.cell(row=row, column=column, value=text)
    quoted = target.replace("'", "''")
    cell.hyperlink = Hyperlink(ref=cell.coordinate, location=f"'{quoted}'!A1", display=text)
    cell.font = _LINK


def _header(sheet: Worksheet, row: int, values: Iterable[str]) -> None:
    for column, value in enumerate(values, start=1):
        cell = sheet.cell(row=row, column=column, value=value)
        cell.font = _BOLD
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="bottom",
                                   horizontal="left" if column == 1 else "right")


def _question_text(question: Question) -> str:
    """The question as worded in the questionnaire, with the grid row it is about."""
    text = question.spec.item.text.nb
    return f"{text} — {question.spec.row_label}" if question.spec.row_label else text


#: The strata a report may be broken down or weighted by, as a reader calls them.
_STRATA_NAMES = {"respondent_type": "respondenttype", "sector": "sektor",
                 "landsdel": "landsdel", "size_class": "kommunestørrelse"}


def _strata(by: Iterable[str]) -> str:
    return ", ".join(_STRATA_NAMES.get(name, name) for name in by)


def _period(fieldwork: Fieldwork) -> str:
    if fieldwork.period is None:
        return "Ikke oppgitt"
    start, end = fieldwork.period
    return f"{start:%d.%m.%Y}–{end:%d.%m.%Y}"


# --- contents -------------------------------------------------------------------------------


def _contents(sheet: Worksheet, results: Results, fieldwork: Fieldwork,
              names: Sequence[str]) -> None:
    sheet.cell(row=1, column=1, value=fieldwork.title).font = _TITLE
    sheet.cell(row=2, column=1,
               value=f"Spørreskjema {fieldwork.questionnaire}, feltperiode {_period(fieldwork)}")
    _link(sheet, 3, 1, "Metode og forklaringer", METHODS)
    sheet.merge_cells(start_row=3, start_column=1, end_row=3, end_column=2)
    _header(sheet, 5, ["Nr.", "Spørsmål"])
    for row, (question, name) in enumerate(zip(results.questions, names, strict=True), start=6):
        number = sheet.cell(row=row, column=1, value=question.spec.number)
        number.data_type = "s"
        number.alignment = Alignment(horizontal="left", vertical="top")
        _link(sheet, row, 2, _question_text(question), name)
        sheet.cell(row=row, column=2).alignment = _WRAP
    sheet.freeze_panes = "A6"
    sheet.column_dimensions["A"].width = 8
    sheet.column_dimensions["B"].width = 100


# --- methods --------------------------------------------------------------------------------

_TEXT_COLUMNS = 5  # long texts span B:E


def _paragraph(sheet: Worksheet, row: int, label: str, text: str) -> int:
    """A labelled paragraph over columns B:E, tall enough for its text; the next row."""
    sheet.cell(row=row, column=1, value=label).font = _BOLD
    sheet.cell(row=row, column=1).alignment = _WRAP
    cell = sheet.cell(row=row, column=2, value=text)
    cell.alignment = _WRAP
    sheet.merge_cells(start_row=row, start_column=2, end_row=row, end_column=_TEXT_COLUMNS)
    lines = sum(max(1, math.ceil(len(part) / 95)) for part in text.split("\n"))
    sheet.row_dimensions[row].height = 15 * lines
    return row + 1


def _weighting_text(results: Results) -> str:
    weighting = results.weighting
    if weighting is None:
        return ("Tallene er ikke vektet: andelene er andeler av dem som svarte, uten justering "
                "for at noen grupper svarte mer enn andre.")
    return (f"Andelene er vektet etter {_strata(weighting.by)} (poststratifisering) til "
            f"rammen {weighting.frame}, "
            "slik at hver gruppe teller i samme forhold som i populasjonen. Antallene er "
            "faktiske svar og er ikke vektet. Designeffekten (Kish) viser hvor mye vektene "
            "øker usikkerheten (1,00: ikke noe).")


def _moe_text(results: Results) -> str:
    if not any(f.moe is not None for q in results.questions for row in q.figures for f in row):
        return "Feilmarginer er ikke beregnet for denne rapporten."
    return ("Feilmarginen er halve bredden av et 95 %-konfidensintervall for andelen (den "
            "vektede andelen der tallene er vektet), med korreksjon for endelig populasjon: "
            "når en stor del av populasjonen har svart, er usikkerheten mindre. «±4 %» betyr "
            "pluss/minus 4 prosentpoeng.")


def _comparison_text(results: Results) -> str:
    comparison = results.comparison
    if comparison is None:
        return "Rapporten sammenlignes ikke med en tidligere undersøkelse."
    text = (f"Sammenlignet med {comparison.label} (kilde: {comparison.source}). Endringer er "
            "i prosentpoeng; en endring er merket signifikant når en test av to andeler på "
            "5 %-nivå sier at den er reell.")
    return f"{text}\n{comparison.note}" if comparison.note else text


def _methods(sheet: Worksheet, results: Results, fieldwork: Fieldwork,
             sample_note: str | None) -> None:
    report = results.report
    sheet.cell(row=1, column=1, value="Metode og forklaringer").font = _TITLE
    row = 3
    row = _paragraph(sheet, row, "Undersøkelse", f"{fieldwork.title} ({report.survey_id})")
    row = _paragraph(sheet, row, "Spørreskjema", fieldwork.questionnaire)
    row = _paragraph(sheet, row, "Feltperiode", _period(fieldwork))
    row = _paragraph(sheet, row, "Fordelt på",
                     _strata(report.by) if report.by else "Ingen fordeling, bare totalt")
    if sample_note:
        row = _paragraph(sheet, row, "Utvalg", sample_note)
    row += 1
    sheet.cell(row=row, column=1, value="Svarinngang").font = _BOLD
    row += 1
    _header(sheet, row, ["Gruppe", "Invitert", "Svarte", "Svarprosent"])
    for fieldwork_row in fieldwork.rows:
        row += 1
        sheet.cell(row=row, column=1, value=fieldwork_row.label)
        _number(sheet, row, 2, fieldwork_row.invited, COUNT)
        _number(sheet, row, 3, fieldwork_row.answered, COUNT)
        _number(sheet, row, 4, fieldwork_row.rate, PERCENT)
    row += 2
    k_row = row
    sheet.cell(row=k_row, column=1, value="Minste antall svar (k)").font = _BOLD
    sheet.cell(row=k_row, column=2, value=results.k).number_format = COUNT
    row += 1
    row = _paragraph(sheet, row, "Små tall",
                     f"Tall som bygger på færre enn {results.k} svar, vises ikke og er merket "
                     "«:» (SSBs tegn). Andre tall er skjult i tillegg der de ellers kunne vært "
                     "regnet ut fra summene eller fra andre tabeller i rapporten. Til et skjult "
                     "antall hører heller ingen andel, feilmargin eller endring.")
    row = _paragraph(sheet, row, "Andeler",
                     "Prosent er andel av dem i gruppen som svarte på spørsmålet. Der flere svar "
                     "er mulige, summerer andelene seg ikke til 100 %.")
    row = _paragraph(sheet, row, "Fritekst",
                     "Svar i fritekst publiseres aldri; bare antallet som har skrevet noe, vises.")
    row = _paragraph(sheet, row, "Vekting", _weighting_text(results))
    weighting = results.weighting
    if weighting is not None:
        _header(sheet, row, ["Gruppe", "Designeffekt"])
        for column, effect in zip(results.columns, weighting.design_effect, strict=False):
            row += 1
            sheet.cell(row=row, column=1, value=column.label)
            sheet.cell(row=row, column=2, value=round(effect, 3)).number_format = DESIGN_EFFECT
        row += 2
    row = _paragraph(sheet, row, "Feilmargin", _moe_text(results))
    _paragraph(sheet, row, "Sammenligning", _comparison_text(results))
    sheet.column_dimensions["A"].width = 30
    for letter in "BCDE":
        sheet.column_dimensions[letter].width = 16


def _number(sheet: Worksheet, row: int, column: int, value: float | None, fmt: str) -> None:
    """A number with its format, or ':' when it is not published."""
    cell = sheet.cell(row=row, column=column)
    if value is None:
        cell.value = SUPPRESSED
        cell.alignment = _RIGHT
        return
    cell.value = _rounded(value) if isinstance(value, float) else value
    cell.number_format = fmt


# --- a question -------------------------------------------------------------------------------

#: What a block shows of a figure, and how.
Pick = Callable[[Figure], float | bool | None]


def _blocks(results: Results, question: Question) -> list[tuple[str, Pick, str]]:
    """The blocks of a question sheet: counts always, the rest where the report has them."""
    blocks: list[tuple[str, Pick, str]] = [(BLOCK_COUNT, lambda f: f.count, COUNT)]
    if question.free_text:
        return blocks
    figures = [f for row in question.figures for f in row]
    blocks.append((BLOCK_SHARE, lambda f: f.share, PERCENT))
    if results.weighting is not None or any(f.weighted is not None for f in figures):
        blocks.append((BLOCK_WEIGHTED, lambda f: f.weighted, PERCENT))
    if any(f.moe is not None for f in figures):
        blocks.append((BLOCK_MOE, lambda f: f.moe, MARGIN))
    if any(f.previous is not None or f.change_pp is not None for f in figures):
        label = results.comparison.label if results.comparison else "forrige undersøkelse"
        blocks.append((f"Andel {label}", lambda f: f.previous, PERCENT))
        blocks.append((f"Endring fra {label} (prosentpoeng)", lambda f: f.change_pp, POINTS))
        blocks.append(("Signifikant endring (5 %-nivå)", lambda f: f.significant, ""))
    return blocks


def _description(results: Results, question: Question) -> str:
    if question.free_text:
        return "Antall som har skrevet et svar. Teksten publiseres ikke."
    text = "Antall svar og andel av dem i gruppen som svarte på spørsmålet."
    if question.spec.kind == "multi":
        text += " Flere svar mulig: andelene summerer seg ikke til 100 %."
    if results.weighting is not None:
        text += " Vektet andel er vektet til populasjonen (se Metode)."
    return text


def _figure_cell(sheet: Worksheet, row: int, column: int, figure: Figure, pick: Pick,
                 fmt: str) -> bool:
    """One figure's value in a block; True if it is hidden."""
    if figure.hidden:
        _number(sheet, row, column, None, fmt)
        return True
    value = pick(figure)
    if isinstance(value, bool):
        sheet.cell(row=row, column=column, value="ja" if value else "nei").alignment = _RIGHT
    elif value is not None:
        _number(sheet, row, column, value, fmt)
    return False


def _question(sheet: Worksheet, results: Results, question: Question) -> None:
    columns = results.columns
    sheet.cell(row=1, column=1, value=question.title).font = _TITLE
    sheet.cell(row=2, column=1, value=_description(results, question))
    header_row = 4
    _header(sheet, header_row, ["Svar", *(c.label for c in columns)])
    labels = [c.label for c in question.spec.categories]
    row = header_row + 1
    hidden = False
    for title, pick, fmt in _blocks(results, question):
        sheet.cell(row=row, column=1, value=title).font = _BOLD
        row += 1
        for label, figures in zip(labels, question.figures, strict=True):
            sheet.cell(row=row, column=1, value=label).alignment = _WRAP
            for j, figure in enumerate(figures, start=2):
                hidden |= _figure_cell(sheet, row, j, figure, pick, fmt)
            row += 1
        if title == BLOCK_COUNT and not question.free_text:
            sheet.cell(row=row, column=1, value=RESPONDENTS).font = _BOLD
            for j, n in enumerate(question.respondents, start=2):
                _number(sheet, row, j, n, COUNT)
                hidden |= n is None
            row += 1
        row += 1
    if hidden:
        sheet.cell(row=row, column=1, value=_HIDDEN_NOTE.format(k=results.k))
    sheet.freeze_panes = f"B{header_row + 1}"
    longest = max((len(label) for label in [*labels, RESPONDENTS]), default=10)
    sheet.column_dimensions["A"].width = min(max(longest + 2, 24), 60)
    for j, column in enumerate(columns, start=2):
        width = max(max((len(part) for part in column.label.split(" / ")), default=0), 8) + 3
        sheet.column_dimensions[get_column_letter(j)].width = min(width, 24)
    sheet.row_dimensions[header_row].height = 15 * max(
        (len(c.label.split(" / ")) for c in columns), default=1)


def write_xlsx(results: Results, fieldwork: Fieldwork, path: Path, *,
               sample_note: str | None = None) -> None:
    """Write the report to `path` as an .xlsx workbook (contents, methods, one sheet per
    question). It is a publication: it holds only what `results` may show."""
    book = Workbook()
    contents = book.worksheets[0]
    contents.title = CONTENTS
    names = sheet_names(results.questions)
    _contents(contents, results, fieldwork, names)
    _methods(book.create_sheet(METHODS), results, fieldwork, sample_note)
    for question, name in zip(results.questions, names, strict=True):
        _question(book.create_sheet(name), results, question)
    book.save(path)


__all__ = ["CONTENTS", "METHODS", "PERCENT", "sheet_names", "write_xlsx"]
