"""The figures a report publishes: one per question, category and column, hidden or shown.

Every format renders a `Results` and nothing else, so the disclosure rule lives here once:
a figure whose count is hidden (`:`) carries no share, no weighted share, no margin of error
and no change from the previous wave either, since any of them would give the count away
(a share times the published n, a margin of error through p(1-p)/n).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from storage.aggregate import SUPPRESSED, Column, KeySpec, Report

#: (answer id, category id, column index) -> a value for that figure.
FigureKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Figure:
    """One cell of a published table. None everywhere it is hidden (`hidden` True)."""

    count: int | None
    #: Respondents in the column who answered the question.
    n: int | None
    share: float | None = None
    #: The share weighted to the frame (None: unweighted report, free text, or hidden).
    weighted: float | None = None
    #: Half the width of the 95 % confidence interval of the share shown (weighted when
    #: weighted), as a share (0.05 = ±5 percentage points).
    moe: float | None = None
    #: The previous wave's published share, and the change in percentage points.
    previous: float | None = None
    change_pp: float | None = None
    #: Whether a two-proportion test at 5 % says the change is real.
    significant: bool | None = None

    @property
    def hidden(self) -> bool:
        return self.count is None

    @property
    def estimate(self) -> float | None:
        """The share a reader should see: weighted when the report is weighted."""
        return self.weighted if self.weighted is not None else self.share


@dataclass(frozen=True, slots=True)
class Question:
    """One published table: a question (or one row of a grid), categories × columns."""

    spec: KeySpec
    #: figures[category][column]; the last column is the total.
    figures: tuple[tuple[Figure, ...], ...]
    respondents: tuple[int | None, ...]

    @property
    def free_text(self) -> bool:
        return self.spec.kind == "text"

    @property
    def title(self) -> str:
        """"4. Har enheten …" or "4b. … — row label" as the questionnaire words it."""
        text = f"{self.spec.number}. {self.spec.item.text.nb}"
        return f"{text} — {self.spec.row_label}" if self.spec.row_label else text


@dataclass(frozen=True, slots=True)
class Weighting:
    """How the shares were weighted (post-stratification to the frame)."""

    by: tuple[str, ...]
    frame: str
    #: Population per weighting cell ("helse", …) as counted in the frame.
    population: Mapping[tuple[str | None, ...], int]
    #: Kish's design effect of the weights, per column (1.0: no loss).
    design_effect: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    """The previous wave the report is compared with."""

    label: str
    source: str
    note: str
    #: Our answer id -> the previous wave's question, as the mapping file says.
    mapped: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Results:
    """A whole published report: the same columns for every question."""

    report: Report
    questions: tuple[Question, ...]
    weighting: Weighting | None = None
    comparison: Comparison | None = None

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.report.columns

    @property
    def k(self) -> int:
        return self.report.k


@dataclass(frozen=True, slots=True)
class Estimates:
    """What `estimates` computed for the shown cells, by figure key."""

    weighted: Mapping[FigureKey, float] = field(default_factory=dict)
    moe: Mapping[FigureKey, float] = field(default_factory=dict)
    weighting: Weighting | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """What `compare` found for the shown cells, by figure key: (previous share, change in
    percentage points, significant)."""

    found: Mapping[FigureKey, tuple[float, float, bool]] = field(default_factory=dict)
    comparison: Comparison | None = None


def publish_results(report: Report, estimates: Estimates | None = None,
                    changes: Changes | None = None) -> Results:
    """The report's figures with the estimates and changes that may be shown beside them."""
    estimates = estimates or Estimates()
    changes = changes or Changes()
    questions = []
    for table in report.tables:
        rows = []
        for i, category in enumerate(table.spec.categories):
            row = []
            for j in range(len(report.columns)):
                count, n = table.counts[i][j], table.respondents[j]
                key = (table.spec.answer_id, category.id, j)
                if count is None or table.spec.kind == "text":
                    row.append(Figure(count, n))  # hidden, or free text: a count at most
                    continue
                share = table.share(i, j)
                before = changes.found.get(key)
                row.append(Figure(
                    count, n, share, estimates.weighted.get(key), estimates.moe.get(key),
                    before[0] if before else None, before[1] if before else None,
                    before[2] if before else None))
            rows.append(tuple(row))
        questions.append(Question(table.spec, tuple(rows), table.respondents))
    return Results(report, tuple(questions), estimates.weighting, changes.comparison)


# --- the long form: csv and json -------------------------------------------------------------


def _out(value: float | int | None, hidden: bool) -> float | int | str | None:
    if hidden:
        return SUPPRESSED
    if isinstance(value, float):
        return round(value, 4)
    return value


CELL_HEADER = ("number", "answer_id", "question", "row", "category", "label", "column",
               "n", "count", "share", "weighted_share", "margin_of_error", "previous_share",
               "change_pp", "significant", "hidden")


def cell_rows(results: Results) -> list[list[object]]:
    """One row per (question, category, column), as `CELL_HEADER` names them; a hidden
    figure has ':' in every number and True in `hidden`. Free text has a count only."""
    rows: list[list[object]] = []
    for q in results.questions:
        for i, category in enumerate(q.spec.categories):
            for j, column in enumerate(results.columns):
                f = q.figures[i][j]
                rows.append([
                    q.spec.number, q.spec.answer_id, q.spec.item.text.nb, q.spec.row_label or "",
                    category.id, category.label, column.label,
                    _out(f.n, f.n is None), _out(f.count, f.hidden),
                    _out(f.share, f.hidden), _out(f.weighted, f.hidden),
                    _out(f.moe, f.hidden), _out(f.previous, f.hidden),
                    _out(f.change_pp, f.hidden), "" if f.significant is None else f.significant,
                    f.hidden])
    return rows


def results_json(results: Results) -> dict[str, object]:
    """The published cells as JSON-ready data (the same cells as `cell_rows`)."""
    report = results.report
    weighting = results.weighting
    return {
        "survey": report.survey_id, "questionnaire": report.questionnaire_id,
        "min_cell": report.k, "suppressed": SUPPRESSED, "by": list(report.by),
        "columns": [{"stratum": None if c.key is None else dict(zip(report.by, c.key,
                                                                     strict=True)),
                     "label": c.label} for c in report.columns],
        "weighting": None if weighting is None else {
            "by": list(weighting.by), "frame": weighting.frame,
            "design_effect": [round(d, 3) for d in weighting.design_effect]},
        "comparison": None if results.comparison is None else {
            "label": results.comparison.label, "source": results.comparison.source,
            "note": results.comparison.note},
        "cells": [dict(zip(CELL_HEADER, row, strict=True)) for row in cell_rows(results)],
    }


def shown_numbers(results: Results) -> set[str]:
    """Every number a reader may see, as text in the forms the formats print it (for the
    tests that check no output shows anything else)."""
    numbers: set[str] = set()
    for q in results.questions:
        numbers.update(str(n) for n in q.respondents if n is not None)
        for row in q.figures:
            for f in row:
                if f.count is not None:
                    numbers.add(str(f.count))
                for value in (f.share, f.weighted, f.previous):
                    if value is not None:
                        numbers.add(f"{100 * value:.0f}")
                if f.moe is not None:
                    numbers.add(f"{100 * f.moe:.0f}")
                if f.change_pp is not None:
                    numbers.add(f"{f.change_pp:+.0f}")
    return numbers


__all__ = ["CELL_HEADER", "Changes", "Comparison", "Estimates", "Figure", "FigureKey",
           "Question", "Results", "Weighting", "cell_rows", "publish_results",
           "results_json", "shown_numbers"]
