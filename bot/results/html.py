"""The report as one self-contained HTML file, in bokmål: front page, contents, a chart and a
table per question, and a methods section.

The file is meant to be mailed, archived and printed (`bot.results.pdf` prints it), so it
carries everything itself: the stylesheet in its head, the charts as inline SVG, no script,
no font or image to fetch. It renders a `Results` and a `Fieldwork` and nothing else, so every
number in it is one the disclosure rules let through; a hidden figure is printed as SSB's ':'
and explained in a footnote. Jinja2 autoescapes everything, so questionnaire wording and labels
are text, never markup; the charts are built with escaping of their own (`charts`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from bot.results import charts
from bot.results.fieldwork import Fieldwork
from bot.results.published import Figure, Question, Results
from storage.aggregate import Column, stratum_label

TEMPLATES = Path(__file__).parent / "templates"

#: Strata side by side in one table; more continue in a second table below.
MAX_STRATA_COLUMNS = 6
#: On paper (see report.css): the chart's width, and about how tall a table row and the
#: rest of a table (caption, header, n, footnotes) come out; a question estimated taller
#: than KEEP_MM may break across pages, anything shorter is kept on one.
PRINT_CHART_MM = 112
ROW_MM = 9
TABLE_MM = 30
KEEP_MM = 225

#: How the strata a report is broken down by are named in a sentence.
BY_NAMES = {"respondent_type": "respondenttype", "sector": "sektor", "landsdel": "landsdel",
            "size_class": "kommunestørrelse"}
MONTHS = ("januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september",
          "oktober", "november", "desember")


@dataclass(frozen=True, slots=True)
class Block:
    """One published table: a question, or one row of a grid, with its chart."""

    #: The id of a grid row's section ("sporsmal-4a"); "" for a question that is the whole
    #: item (its item's section has the id).
    anchor: str
    #: "4a. Row label" for a grid row; None when the section heading names the question.
    heading: str | None
    question: Question
    chart: Markup | None
    #: Column indices per table (the total in the last); more than one when many strata.
    chunks: tuple[tuple[int, ...], ...]
    #: Whether the chart shows the strata beside the total (else the total alone).
    grouped: bool
    #: Strata left out of a grouped chart because every figure of theirs is hidden.
    left_out: tuple[str, ...]
    #: Whether chart and table fit on one printed page, so the page should not split them.
    keep: bool

    @property
    def hidden(self) -> bool:
        """Whether any number of the table is hidden (then the footnote explains ':')."""
        q = self.question
        return (any(n is None for n in q.respondents)
                or any(f.hidden for row in q.figures for f in row))

    @property
    def multi(self) -> bool:
        return self.question.spec.kind == "multi"


@dataclass(frozen=True, slots=True)
class Section:
    """One item of the questionnaire: its heading and its tables (several for a grid)."""

    anchor: str
    heading: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class Named:
    """A label and a number for the methods section's small tables."""

    label: str
    value: str


# --- number and date forms --------------------------------------------------------------------


def long_date(day: dt.date) -> str:
    """'15. oktober 2019'."""
    return f"{day.day}. {MONTHS[day.month - 1]} {day.year}"


def period_text(period: tuple[dt.date, dt.date] | None) -> str | None:
    """'15. oktober – 6. desember 2019' (the year once when both dates share it)."""
    if period is None:
        return None
    first, last = period
    if first.year == last.year:
        return f"{first.day}. {MONTHS[first.month - 1]} – {long_date(last)}"
    return f"{long_date(first)} – {long_date(last)}"


def by_text(by: Sequence[str]) -> str:
    """'sektor', 'sektor og landsdel', or 'ingen grupper' for a report of totals only."""
    names = [BY_NAMES.get(d, d) for d in by]
    return " og ".join(names) if names else "ingen grupper (bare totalt)"


# --- the sections ------------------------------------------------------------------------------


def column_chunks(columns: Sequence[Column]) -> tuple[tuple[int, ...], ...]:
    """Column indices per table: a few strata side by side, the total at the end of the last."""
    total = len(columns) - 1
    strata = list(range(total))
    if not strata:
        return ((total,),)
    parts = [strata[n:n + MAX_STRATA_COLUMNS] for n in range(0, total, MAX_STRATA_COLUMNS)]
    parts[-1].append(total)
    return tuple(tuple(p) for p in parts)


def _anchor(number: str) -> str:
    return f"sporsmal-{number}"


def _print_height(question: Question, chart: charts.Chart | None, tables: int) -> float:
    """About how many millimetres chart and tables take on paper."""
    rows = len(question.spec.categories) + (0 if question.free_text else 1)
    height = float(tables * (rows * ROW_MM + TABLE_MM))
    if chart is not None:
        height += chart.height * PRINT_CHART_MM / charts.WIDTH
    return height


def _block(question: Question, columns: Sequence[Column], grid: bool) -> Block:
    spec = question.spec
    anchor = _anchor(spec.number) if grid else ""
    chart = charts.question_chart(question, columns, chart_id=f"figur-{spec.number}",
                                  title=question.title)
    heading = f"{spec.number}. {spec.row_label}" if grid and spec.row_label else None
    chunks = column_chunks(columns)
    keep = _print_height(question, chart, len(chunks)) <= KEEP_MM
    if chart is None:
        return Block(anchor, heading, question, None, chunks, False, (), keep)
    left_out = tuple(columns[j].label for j in range(len(columns) - 1)
                     if chart.grouped and j not in chart.columns)
    svg = Markup(chart.svg)  # noqa: S704 - escaped in charts
    return Block(anchor, heading, question, svg, chunks, chart.grouped, left_out, keep)


def sections(results: Results) -> list[Section]:
    """The questions grouped by questionnaire item, in questionnaire order."""
    groups: list[list[Question]] = []
    for question in results.questions:
        if groups and groups[-1][0].spec.item.id == question.spec.item.id:
            groups[-1].append(question)
        else:
            groups.append([question])
    out = []
    for group in groups:
        item = group[0].spec.item
        grid = group[0].spec.row_label is not None
        heading = f"{item.number}. {item.text.nb}" if grid else group[0].title
        anchor = _anchor(str(item.number))
        out.append(Section(anchor, heading,
                           tuple(_block(q, results.columns, grid) for q in group)))
    return out


# --- the methods section ----------------------------------------------------------------------


def _figures(results: Results) -> list[Figure]:
    return [f for q in results.questions for row in q.figures for f in row]


def population(results: Results) -> list[Named]:
    """The frame's population per weighting cell, as the weighting used it."""
    if results.weighting is None:
        return []
    return [Named(stratum_label(key), charts.count(n))
            for key, n in results.weighting.population.items()]


def design_effects(results: Results) -> list[Named]:
    """Kish's design effect of the weights per column of the report."""
    if results.weighting is None:
        return []
    return [Named(column.label, charts.decimal(effect)) for column, effect
            in zip(results.columns, results.weighting.design_effect, strict=False)]


# --- rendering ---------------------------------------------------------------------------------


@functools.cache
def environment() -> Environment:
    """The report's templates, autoescaped, with the Norwegian number forms as filters."""
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(enabled_extensions=("html",), default=True),
                      trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    env.filters.update(whole=charts.count, percent=charts.percent, margin=charts.margin,
                       points=charts.points, decimal=charts.decimal)
    return env


def render_html(results: Results, fieldwork: Fieldwork, *, sample_note: str | None = None,
                ) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    figures = _figures(results)
    weighted = any(f.weighted is not None for f in figures)
    template = environment().get_template("report.html")
    return template.render(
        results=results, fieldwork=fieldwork, sample_note=sample_note,
        sections=sections(results), columns=results.columns,
        total=len(results.columns) - 1, k=results.k,
        period=period_text(fieldwork.period), by=by_text(results.report.by),
        grouped=bool(results.report.by), weighted=weighted,
        weighting=results.weighting, population=population(results),
        design_effects=design_effects(results),
        by_weighting=by_text(results.weighting.by) if results.weighting else "",
        has_moe=any(f.moe is not None for f in figures),
        has_change=any(f.change_pp is not None or f.previous is not None for f in figures),
        comparison=results.comparison)
