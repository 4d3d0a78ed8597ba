"""Bar charts of a report's published shares, as inline SVG made on the server.

The same approach as the dashboard's chart (`bot.web.chart`): hand-built SVG with presentation
attributes only, no script and no style attribute, and a <title> and <desc> for screen readers.
A chart shows exactly what the table beside it shows, and less: a bar and a number for each
shown figure, and for a hidden one only SSB's ':' where its bar would be, so neither the length
of a bar nor any label can encode a hidden count. The axis is marked 0 % and 100 % and nothing
else, so every other number in a chart is a published share.

The number forms (`percent`, `count`, …) live here too, since the tables and the charts must
print the same figure the same way.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from bot.results.published import Figure, Question
from storage.aggregate import Column

NBSP = "\u00a0"
MINUS = "\u2212"

WIDTH = 560
FONT = 14
LINE = 17
BAR = 15
#: Category labels end here (right-aligned); bars start at PLOT_X and reach PLOT_W at 100 %.
LABEL_END = 200
PLOT_X = 210
PLOT_W = 288
#: About how wide a character is at FONT in the wider fonts the report may fall back on.
CHAR = 0.56 * FONT
AXIS_SPACE = 30
TOTAL_FILL = "#1f4f8a"
STRATUM_FILL = "#5c87c4"
INK = "#1b1b1b"
MUTED = "#4a4a4a"
RULE = "#767676"
GRID = "#d4d8de"
FONTS = "Source Sans 3, Segoe UI, Helvetica Neue, Arial, Liberation Sans, DejaVu Sans, sans-serif"
#: A chart per stratum and category stays readable up to about this many bars.
MAX_GROUPED_BARS = 30
MAX_GROUPED_CATEGORIES = 5


# --- the number forms -------------------------------------------------------------------------


def count(n: int) -> str:
    """A whole number as written in Norwegian: 1 234 (non-breaking space)."""
    return f"{n:,}".replace(",", NBSP)


def percent(share: float) -> str:
    """A share as a whole percentage: '74 %'."""
    return f"{100 * share:.0f}{NBSP}%"


def margin(moe: float) -> str:
    """A margin of error in percentage points: '±5'."""
    return f"±{100 * moe:.0f}"


def points(change: float) -> str:
    """A change in percentage points with its sign: '+4', '−3'."""
    return f"{change:+.0f}".replace("-", MINUS)


def decimal(value: float, places: int = 2) -> str:
    """A decimal number with a decimal comma: '1,12'."""
    return f"{value:.{places}f}".replace(".", ",")


# --- the rows of a chart ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Heading:
    """A category's name above its bars (the grouped chart)."""

    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Bar:
    """One figure: its label (a category, or a column in the grouped chart) and its bar."""

    lines: tuple[str, ...]
    figure: Figure
    #: The total column: the darker bar.
    total: bool
    #: Set off in bold (the total among the strata of the grouped chart).
    strong: bool = False


def _wrap(text: str, width: float) -> tuple[str, ...]:
    """`text` in lines that fit `width` units, broken at spaces only (so the words stay the
    questionnaire's)."""
    chars = max(8, int(width / CHAR))
    return tuple(textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False)
                 or [""])


def chart_columns(question: Question, columns: Sequence[Column]) -> list[int]:
    """The columns a question's chart shows: the strata with at least one shown share, and the
    total, when that many bars stay readable; otherwise the total alone."""
    total = len(columns) - 1
    categories = len(question.spec.categories)
    strata = [j for j in range(total) if any(not row[j].hidden for row in question.figures)]
    if (not strata or categories > MAX_GROUPED_CATEGORIES
            or categories * (len(strata) + 1) > MAX_GROUPED_BARS):
        return [total]
    return [*strata, total]


def _rows(question: Question, columns: Sequence[Column],
          shown: Sequence[int]) -> list[_Heading | _Bar]:
    total = len(columns) - 1
    labels = [c.label for c in question.spec.categories]
    if shown == [total]:
        return [_Bar(_wrap(label, LABEL_END), question.figures[i][total], True)
                for i, label in enumerate(labels)]
    rows: list[_Heading | _Bar] = []
    for i, label in enumerate(labels):
        rows.append(_Heading(_wrap(label, WIDTH - 8)))
        rows += [_Bar(_wrap(columns[j].label, LABEL_END), question.figures[i][j], j == total,
                      strong=j == total) for j in shown]
    return rows


# --- drawing ----------------------------------------------------------------------------------


def _text_lines(lines: Sequence[str], x: float, y: float, *, anchor: str, css: str,
                bold: bool = False) -> str:
    """One <text> with a <tspan> per line, so the label reads as one piece of text."""
    weight = ' font-weight="bold"' if bold else ""
    spans = "".join(f'<tspan x="{x:.0f}" y="{y + n * LINE:.1f}">{escape(line)}</tspan>'
                    for n, line in enumerate(lines))
    return (f'<text class="{css}" text-anchor="{anchor}" fill="{INK}"{weight}>'
            f"{spans}</text>")


def _bar(row: _Bar, y: float) -> tuple[list[str], float]:
    """The SVG of one bar row starting at `y`, and the row's height."""
    height = max(BAR + 6, len(row.lines) * LINE + 4)
    mid = y + height / 2
    first = mid - (len(row.lines) - 1) * LINE / 2 + FONT * 0.35
    parts = [_text_lines(row.lines, LABEL_END, first, anchor="end", css="label verbatim",
                         bold=row.strong)]
    estimate = row.figure.estimate
    if row.figure.hidden or estimate is None:
        parts.append(f'<text class="hidden-mark" x="{PLOT_X + 6}" y="{mid + FONT * 0.35:.1f}" '
                     f'fill="{MUTED}" font-weight="bold">:</text>')
        return parts, height
    width = PLOT_W * min(max(estimate, 0.0), 1.0)
    fill = TOTAL_FILL if row.total else STRATUM_FILL
    parts.append(f'<rect class="bar" x="{PLOT_X}" y="{mid - BAR / 2:.1f}" width="{width:.2f}" '
                 f'height="{BAR}" fill="{fill}"/>')
    end = PLOT_X + width
    if row.figure.moe is not None:
        low = PLOT_X + PLOT_W * max(estimate - row.figure.moe, 0.0)
        high = PLOT_X + PLOT_W * min(estimate + row.figure.moe, 1.0)
        parts.append(f'<path class="moe" d="M{low:.2f} {mid - 4:.1f}v8M{low:.2f} {mid:.1f}'
                     f'H{high:.2f}M{high:.2f} {mid - 4:.1f}v8" stroke="{INK}" '
                     f'stroke-width="1.5" fill="none"/>')
        end = max(end, high)
    weight = ' font-weight="bold"' if row.strong else ""
    parts.append(f'<text class="value" x="{end + 5:.1f}" y="{mid + FONT * 0.35:.1f}" '
                 f'fill="{INK}"{weight}>{escape(percent(estimate))}</text>')
    return parts, height


def _axis(top: float, bottom: float) -> list[str]:
    """The baseline, a faint line at 100 % and the only two axis labels, 0 % and 100 %."""
    right = PLOT_X + PLOT_W
    label_y = bottom + 18
    return [
        f'<line class="grid" x1="{right}" y1="{top:.1f}" x2="{right}" y2="{bottom:.1f}" '
        f'stroke="{GRID}"/>',
        f'<line class="axis" x1="{PLOT_X}" y1="{bottom:.1f}" x2="{right}" y2="{bottom:.1f}" '
        f'stroke="{RULE}"/>',
        f'<line x1="{PLOT_X}" y1="{top:.1f}" x2="{PLOT_X}" y2="{bottom + 4:.1f}" '
        f'stroke="{RULE}"/>',
        f'<line x1="{right}" y1="{bottom:.1f}" x2="{right}" y2="{bottom + 4:.1f}" '
        f'stroke="{RULE}"/>',
        f'<text class="axis-label" x="{PLOT_X}" y="{label_y:.1f}" text-anchor="middle" '
        f'fill="{MUTED}" font-size="{FONT - 1}">0{NBSP}%</text>',
        f'<text class="axis-label" x="{right}" y="{label_y:.1f}" text-anchor="middle" '
        f'fill="{MUTED}" font-size="{FONT - 1}">100{NBSP}%</text>',
    ]


def _describe(question: Question, columns: Sequence[Column], shown: Sequence[int]) -> str:
    """The chart as a sentence: every figure it shows, and which ones are hidden."""
    weighted = any(f.weighted is not None for row in question.figures for f in row)
    what = "Vektet andel" if weighted else "Andel"
    single = len(shown) == 1
    subject = f"{what} per svaralternativ" + (f", {columns[shown[0]].label}" if single else
                                              ", per gruppe og totalt")
    n = question.respondents[shown[0]] if single else None
    if n is not None:
        subject += f" (n = {n})"
    items = []
    for i, category in enumerate(question.spec.categories):
        for j in shown:
            figure = question.figures[i][j]
            name = category.label if single else f"{category.label}, {columns[j].label}"
            items.append(f"{name}: {_spoken(figure)}")
    return f"{subject}. {'; '.join(items)}."


def _spoken(figure: Figure) -> str:
    estimate = figure.estimate
    if figure.hidden or estimate is None:
        return "skjult (:)"
    text = percent(estimate)
    return f"{text} (feilmargin {margin(figure.moe)})" if figure.moe is not None else text


@dataclass(frozen=True, slots=True)
class Chart:
    """An SVG chart and what the page layout needs to know about it."""

    svg: str
    #: The height in the units of `WIDTH` (the chart scales with the width it is given).
    height: float
    #: The columns it shows (the total last); more than one: per stratum and in total.
    columns: tuple[int, ...]

    @property
    def grouped(self) -> bool:
        return len(self.columns) > 1


def question_chart(question: Question, columns: Sequence[Column], *, chart_id: str,
                   title: str) -> Chart | None:
    """An SVG bar chart of one question's shares (None for free text, which has none)."""
    if question.free_text:
        return None
    shown = chart_columns(question, columns)
    parts: list[str] = []
    y = 4.0
    for row in _rows(question, columns, shown):
        if isinstance(row, _Heading):
            y += 6
            parts.append(_text_lines(row.lines, 0, y + FONT, anchor="start",
                                     css="category verbatim", bold=True))
            y += len(row.lines) * LINE + 2
            continue
        drawn, height = _bar(row, y)
        parts += drawn
        y += height
    bottom = y + 4
    height = bottom + AXIS_SPACE
    kind = "total" if len(shown) == 1 else "grouped"
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'width="{WIDTH}" height="{height:.0f}" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc" class="chart {kind}" '
            f'data-columns="{" ".join(str(j) for j in shown)}" font-family="{FONTS}" '
            f'font-size="{FONT}">',
            f'<title id="{chart_id}-title">{escape(title)}</title>',
            f'<desc id="{chart_id}-desc">{escape(_describe(question, columns, shown))}</desc>']
    return Chart("\n".join([*head, *_axis(4.0, bottom), *parts, "</svg>"]), height,
                 tuple(shown))
