"""The published results as terminal tables that fit the window.

rich cuts or squeezes a table that is wider than the console without a word, and the reader
then misses a column: the total, usually, since it comes last. So the widths are worked out
here from the cells themselves, and strata that do not fit side by side continue in the next
table. Every part repeats the category labels and the total, so each can be read on its own.

When the output is a file or a pipe there is no window to fit: each question is then one
table with every column, as someone reading a saved report (or grepping it) expects.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

from bot.results.published import Figure, Question, Results
from storage.aggregate import SUPPRESSED

#: The width used when the output is not a terminal: wider than any report.
UNLIMITED = 10_000
#: Running text (title lines, notes) is wrapped at no more than this: long lines of prose are
#: hard to read, and a file has no width of its own.
PROSE_WIDTH = 100
#: The category column keeps at least this width (or its longest word, up to
#: `_LABEL_WORD_MAX`) before a stratum is moved to the next part: labels wrapped into a
#: narrow column take many lines and are hard to read.
_LABEL_MIN = 16
_LABEL_WORD_MAX = 24
#: How narrow the category column may get when nothing else fits.
_LABEL_FLOOR = 8
#: Each column's padding (one space either side) and border (one line to its left); the
#: table's right edge adds one more.
_COLUMN_EXTRA = 3

_RESPONDENTS = "Antall svar"
_RESPONDENTS_WEIGHTED = "Antall svar (uvektet)"
_CONTINUED = " (forts.)"


# --- cells ------------------------------------------------------------------------------------


def _count(n: int | None) -> str:
    """A count as Norwegian prints it, with a no-break space between thousands: 1 234."""
    return SUPPRESSED if n is None else f"{n:,}".replace(",", "\u00a0")


def _percent(share: float | None) -> str:
    return SUPPRESSED if share is None else f"{share * 100:.0f} %"


def _change(change_pp: float, significant: bool | None) -> str:
    """The change from the previous wave in percentage points; '*' marks a significant one
    (a marker, not only a colour, so it survives a file and a black-and-white print)."""
    return f"{change_pp:+.0f} pp" + ("*" if significant else "")


def _cell(figure: Figure, *, free_text: bool, weighted: bool) -> Text:
    """One figure as lines: the count and the share, then ±margin and change when known.

    In a weighted table the weighted share comes first, since it is the estimate, and the
    unweighted count below it, dim, for how many it rests on.
    """
    if figure.hidden:
        return Text(SUPPRESSED)
    count = _count(figure.count)
    if free_text:
        return Text(count)
    extra: list[tuple[str, str]] = []
    if figure.moe is not None:
        extra.append((f"±{figure.moe * 100:.0f}", "dim"))
    if figure.change_pp is not None:
        extra.append((_change(figure.change_pp, figure.significant),
                      "bold" if figure.significant else ""))
    share = _percent(figure.estimate)
    lines = ([(share, ""), *extra, (count, "dim")] if weighted
             else [(count, ""), (share, "dim"), *extra])
    text = Text()
    for n, (line, style) in enumerate(lines):
        text.append(("\n" if n else "") + line, style)
    return text


def _text_width(text: Text | str) -> int:
    """The widest line, in terminal cells."""
    plain = text.plain if isinstance(text, Text) else text
    return max((cell_len(line) for line in plain.split("\n")), default=0)


def _longest_word(text: str) -> int:
    return max((cell_len(word) for word in text.split()), default=0)


def _header_parts(label: str) -> list[str]:
    """A column label's parts, one per dimension ('helse / Nord-Norge'), each begun on a line
    of its own."""
    return label.split(" / ")


def _header(label: str, width: int) -> Text:
    """The label wrapped to the column at spaces only: 'Nord-Norge' stays one word."""
    lines: list[str] = []
    for part in _header_parts(label):
        lines += textwrap.wrap(part, width, break_long_words=False,
                               break_on_hyphens=False) or [""]
    return Text("\n".join(lines))


@dataclass(frozen=True, slots=True)
class _Column:
    """One column of a question's table, with the width it needs: its widest cell line, and
    its header's longest word (headers wrap at spaces, never inside a word)."""

    label: str
    cells: tuple[Text, ...]
    total: bool

    @property
    def width(self) -> int:
        header = max(_longest_word(part) for part in _header_parts(self.label))
        return max(header, 1, *(_text_width(cell) for cell in self.cells))


def _weighted(question: Question) -> bool:
    return any(f.weighted is not None for row in question.figures for f in row)


def _columns(results: Results, question: Question) -> list[_Column]:
    weighted = _weighted(question)
    columns = []
    for j, column in enumerate(results.columns):
        cells = [_cell(row[j], free_text=question.free_text, weighted=weighted)
                 for row in question.figures]
        if not question.free_text:
            cells.append(Text(_count(question.respondents[j])))
        columns.append(_Column(column.label, tuple(cells), column.key is None))
    return columns


def _labels(question: Question) -> list[Text]:
    labels = [Text(category.label) for category in question.spec.categories]
    if not question.free_text:
        labels.append(Text(_RESPONDENTS_WEIGHTED if _weighted(question) else _RESPONDENTS))
    return labels


# --- layout -----------------------------------------------------------------------------------


def _span(widths: Sequence[int]) -> int:
    """How wide a table with columns of these widths is drawn, borders and padding included."""
    return sum(w + _COLUMN_EXTRA for w in widths) + 1


@dataclass(frozen=True, slots=True)
class Layout:
    """How one question is drawn: the columns of each part (indices into the report's
    columns) and the width of the category column, the same in every part."""

    parts: tuple[tuple[int, ...], ...]
    label: int
    #: False when the window is too narrow even for one stratum beside the labels: the
    #: tables are then squeezed, and the output says so.
    fits: bool


def _pack(widths: Sequence[int], fixed: int, room: int) -> list[tuple[int, ...]] | None:
    """Strata in order, in as few parts as fit `room` beside `fixed`, then evened out so
    the last part is not a lone column (None if one stratum alone does not fit)."""
    if not widths:
        return [()]
    if any(fixed + w + _COLUMN_EXTRA > room for w in widths):
        return None

    def greedy(cap: int) -> list[tuple[int, ...]]:
        parts: list[tuple[int, ...]] = []
        current: list[int] = []
        used = fixed
        for j, w in enumerate(widths):
            if current and (len(current) == cap or used + w + _COLUMN_EXTRA > room):
                parts.append(tuple(current))
                current, used = [], fixed
            current.append(j)
            used += w + _COLUMN_EXTRA
        parts.append(tuple(current))
        return parts

    fewest = len(greedy(len(widths)))
    cap = math.ceil(len(widths) / fewest)
    while len(parts := greedy(cap)) > fewest:
        cap += 1
    return parts


def layout(widths: Sequence[int], label_min: int, label_max: int, room: int) -> Layout:
    """Split the columns (strata, then the total last) over parts no wider than `room`.

    Preferred: every part holds the labels, as many strata as fit and the total. Failing
    that, the labels narrow to `_LABEL_FLOOR`; then the total goes in a part of its own.
    """
    strata, total = list(widths[:-1]), len(widths) - 1
    for low in dict.fromkeys((label_min, min(label_min, _LABEL_FLOOR))):
        for with_total in (True, False):
            beside = [low, widths[total]] if with_total else [low]
            packed = _pack(strata, _span(beside), room)
            if packed is None or _span([low, widths[total]]) > room:
                continue
            parts = ([(*p, total) for p in packed] if with_total
                     else [*packed, (total,)])
            label = min(label_max, *(room - _span([0, *(widths[j] for j in p)])
                                     for p in parts))
            return Layout(tuple(parts), max(label, low), fits=True)
    parts = [(j, total) for j in range(len(strata))] or [(total,)]
    return Layout(tuple(parts), min(label_min, _LABEL_FLOOR), fits=False)


def _label_bounds(labels: Sequence[Text]) -> tuple[int, int]:
    """The category column's narrowest wanted width and its natural width."""
    widest = max(cell_len("Svar"), *(_text_width(label) for label in labels))
    word = max(_longest_word(label.plain) for label in labels)
    return min(widest, max(_LABEL_MIN, min(word, _LABEL_WORD_MAX))), widest


# --- output -----------------------------------------------------------------------------------


def _table(labels: Sequence[Text], label_width: int, columns: Sequence[_Column]) -> Table:
    """One part as a rich table whose every column has the width given: nothing left for
    rich to squeeze."""
    table = Table(box=box.HEAVY_HEAD, show_lines=True, padding=(0, 1))
    table.add_column(Text("Svar"), width=label_width, overflow="fold")
    for column in columns:
        table.add_column(_header(column.label, column.width), justify="right",
                         width=column.width, no_wrap=True,
                         style="bold" if column.total else None)
    for i, label in enumerate(labels):
        table.add_row(label, *(column.cells[i] for column in columns))
    return table


def _emit(console: Console, renderable: RenderableType, width: int) -> None:
    """Print at `width`, also when that is wider than the console (the file case): rich's own
    `print(width=…)` never goes beyond the console's width, and would squeeze."""
    lines = list(console.render(renderable, console.options.update_width(width)))
    console.print(Segments(lines), crop=False, end="")


@dataclass(frozen=True, slots=True)
class _Drawn:
    """A question ready to print: its labels, its columns and how they are split."""

    question: Question
    labels: tuple[Text, ...]
    columns: tuple[_Column, ...]
    plan: Layout


def _draw(results: Results, question: Question, width: int) -> _Drawn:
    labels = _labels(question)
    columns = _columns(results, question)
    low, high = _label_bounds(labels)
    plan = layout([c.width for c in columns], low, high, width)
    return _Drawn(question, tuple(labels), tuple(columns), plan)


def _print_question(console: Console, drawn: _Drawn, width: int, prose: int) -> None:
    """One question as one table per part, each under the question's title."""
    for n, part in enumerate(drawn.plan.parts):
        _emit(console, Text(""), prose)
        _emit(console, Text(drawn.question.title + (_CONTINUED if n else ""), style="bold"),
              prose)
        _emit(console, _table(drawn.labels, drawn.plan.label,
                              [drawn.columns[j] for j in part]), width)


def _decimal(value: float) -> str:
    """Two decimals with a decimal comma, as Norwegian readers write them."""
    return f"{value:.2f}".replace(".", ",")


def _header_lines(results: Results) -> list[Text]:
    """The report's first lines: what survey, broken down how, weighted and compared how."""
    report = results.report
    by = f", fordelt på {', '.join(report.by)}" if report.by else ""
    lines = [Text.assemble((f"Undersøkelse {report.survey_id}", "bold"),
                           f" (spørreskjema {report.questionnaire_id}){by}")]
    weighting = results.weighting
    if weighting is not None:
        effect = (f"; designeffekt {_decimal(weighting.design_effect[-1])} totalt"
                  if weighting.design_effect else "")
        lines.append(Text(f"Andelene er vektet til {weighting.frame} etter "
                          f"{', '.join(weighting.by)} (etterstratifisering){effect}."))
    comparison = results.comparison
    if comparison is not None:
        note = f" {comparison.note}" if comparison.note else ""
        lines.append(Text(f"Sammenlignet med {comparison.label} ({comparison.source}).{note}"))
    return lines


def _footnote(results: Results, width: int) -> Text:
    """The symbols explained, each text indented beside its symbol, as `print_report` did."""
    figures = [f for q in results.questions for row in q.figures for f in row]
    weighted = any(f.weighted is not None for f in figures)
    notes = [(SUPPRESSED, f"Tallet vises ikke: færre enn {results.k} svar i cellen eller "
                          "gruppen, eller skjult i tillegg slik at skjulte tall ikke kan regnes "
                          "ut fra summene.")]
    if weighted:
        notes.append(("", "Prosent er vektet andel av dem i gruppen som svarte på spørsmålet; "
                          "tallet under er antall svar, uvektet."))
    else:
        notes.append(("", "Prosent er andel av dem i gruppen som svarte på spørsmålet."))
    if any(f.moe is not None for f in figures):
        notes.append(("±", "Feilmargin i prosentpoeng: halve bredden av et 95\u00a0% "
                           "konfidensintervall for andelen."))
    if any(f.change_pp is not None for f in figures):
        notes.append(("pp", "Endring i prosentpoeng fra forrige måling; * betyr at endringen "
                            "er statistisk signifikant (på 5\u00a0%-nivå)."))
    notes.append(("", "Svar i fritekst publiseres aldri; bare antallet som skrev noe vises."))
    lines: list[str] = []
    for symbol, text in notes:
        lines += textwrap.wrap(text, max(width, 20), initial_indent=f"{symbol:<3}",
                               subsequent_indent=" " * 3, break_on_hyphens=False)
    return Text("\n".join(lines))


def _narrow_notice(width: int) -> Text:
    return Text(f"Vinduet er for smalt for tabellene ({width} tegn): noen kolonner er "
                "klemt sammen. Bruk et bredere vindu, eller --format csv.", style="bold")


def print_results(results: Results, console: Console, width: int | None = None) -> None:
    """The report as terminal tables, one question after another, between the header line
    and the footnote.

    `width` is what the tables must fit; None means the console's width when it is a
    terminal and `UNLIMITED` otherwise, so a saved report has each question in one table.
    """
    if width is None:
        width = console.width if console.is_terminal else UNLIMITED
    if width < 1:
        raise ValueError(f"width must be positive, not {width}")
    prose = min(width, PROSE_WIDTH)
    for line in _header_lines(results):
        _emit(console, line, prose)
    drawn = [_draw(results, q, width) for q in results.questions]
    if not all(d.plan.fits for d in drawn):
        _emit(console, _narrow_notice(width), prose)
    for one in drawn:
        _print_question(console, one, width, prose)
    _emit(console, Text(""), prose)
    _emit(console, _footnote(results, prose), prose)


__all__ = ["PROSE_WIDTH", "UNLIMITED", "Layout", "layout", "print_results"]
