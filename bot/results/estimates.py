"""Weighted shares and margins of error, published only where their cells are.

KS weights the 2020 unit-leader results to the population by sector (the 2018 ones by unit
type and landsdel): post-stratification. Each response in weighting cell c (a sector, say)
weighs w_c = N_c / r_c, the cell's population in the frame over its responses, and a weighted
share is Σ w·chosen / Σ w·answered over the column's cells. Its 95 % margin of error is
1.96·√(deff·p(1−p)/n·fpc): n the column's answers, deff Kish's design effect of the weights
(n·Σw² / (Σw)², the variance the unequal weights cost), fpc the finite-population correction
(N−n)/(N−1), which matters for the mayors: a census of 439, where 139 answers leave little
doubt.

Disclosure: a weighted share is a different sum of the same counts, so shown beside the
unweighted ones it is one more equation an attacker can use. It is therefore computed from
the breakdown by the report's strata and the weighting strata together, protected like any
report (`storage.aggregate.publish`), and shown only where every count it adds up is published
in that breakdown; it then tells nothing that breakdown does not. Hidden figures get neither a
weighted share nor a margin of error (`published`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, func, select

from bot.results.published import Estimates, FigureKey, Weighting
from flows.model import Questionnaire
from storage.aggregate import (
    KeySpec,
    PublishedTable,
    Report,
    Stratum,
    grouped_counts,
    key_specs,
    publish,
    strata,
    tally_counts,
)
from storage.contacts import Contact, load_contacts
from storage.counts import RESPONSES
from storage.schema import AnswerCount

Z_95 = 1.96


class WeightingError(ValueError):
    """The report cannot be weighted as asked (one line, naming what is missing)."""


def _value(contact: Contact, dim: str) -> str | None:
    if dim == "respondent_type":
        return contact.role.value
    if dim == "size_class":
        return contact.size_class
    return getattr(contact, dim) or None


@dataclass(frozen=True, slots=True)
class Frame:
    """The population the sample was drawn from: each contact's strata."""

    name: str
    people: tuple[Mapping[str, str | None], ...]

    @classmethod
    def load(cls, path: str | Path) -> Frame:
        """The contacts file `path` (ContactsError naming its lines if it is broken)."""
        from storage.aggregate import STRATA

        return cls(Path(path).name, tuple({d: _value(c, d) for d in STRATA}
                                          for c in load_contacts(path).contacts))

    def population(self, dims: Sequence[str]) -> Counter[Stratum]:
        """How many of the frame fall in each combination of `dims`."""
        return Counter(tuple(person.get(d) for d in dims) for person in self.people)


def responses(connection: Connection, survey_id: str, dims: Sequence[str]) -> Counter[Stratum]:
    """Responses per combination of `dims` (from the kept counts; no answer is read)."""
    columns = [getattr(AnswerCount, d) for d in dims]
    found: Counter[Stratum] = Counter()
    for row in connection.execute(
            select(*columns, func.sum(AnswerCount.n))
            .where(AnswerCount.survey_id == survey_id, AnswerCount.answer_id == RESPONSES)
            .group_by(*columns)):
        *values, n = row
        found[tuple(v or None for v in values)] += int(n)
    return found


@dataclass(frozen=True, slots=True)
class _Breakdown:
    """The report's strata and the weighting strata together, published with suppression."""

    dims: tuple[str, ...]
    columns: list[Stratum]
    tables: dict[str, PublishedTable]


def _project(stratum: Stratum, dims: Sequence[str], onto: Sequence[str]) -> Stratum:
    return tuple(stratum[dims.index(d)] for d in onto)


def _moe(p: float, n: int, deff: float, population: int | None) -> float:
    if n <= 0:
        return 0.0
    fpc = 1.0
    if population is not None and population > 1:
        fpc = max(0.0, (population - n) / (population - 1))
    return Z_95 * math.sqrt(max(0.0, deff * p * (1 - p) / n * fpc))


def estimate(connection: Connection, report: Report, questionnaire: Questionnaire,
             *, weight_by: Sequence[str], frame: Frame | None) -> Estimates:
    """Weighted shares (when `weight_by`) and margins of error for the report's shown figures.

    `frame` is the population the sample was drawn from; without it nothing is weighted and
    the margins of error have no finite-population correction.
    """
    specs = key_specs(questionnaire)
    by = report.by
    weights: dict[Stratum, float] = {}
    dims = tuple(by) + tuple(d for d in weight_by if d not in by)
    population_by: Counter[Stratum] | None = None
    population: Counter[Stratum] = Counter()
    weighting: Weighting | None = None
    if frame is not None:
        population_by = frame.population(by)
    if weight_by and frame is not None:
        population = frame.population(weight_by)
        answered = responses(connection, report.survey_id, weight_by)
        for cell, r in answered.items():
            if cell not in population:
                raise WeightingError(f"weighting cell {'/'.join(str(v) for v in cell)} has "
                                     f"{r} responses but no one in the frame {frame.name}")
            weights[cell] = population[cell] / r
    elif weight_by:
        raise WeightingError("weighting needs the frame the sample was drawn from "
                             "(surveys[].frame in the configuration, or --frame)")
    breakdown = _breakdown(connection, report, specs, dims) if weights else None
    per_cell = responses(connection, report.survey_id, dims) if weights else Counter()
    deffs = _design_effects(report, dims, weight_by, weights, per_cell)
    if weights and frame is not None:
        weighting = Weighting(tuple(weight_by), frame.name, dict(population), tuple(deffs))
    weighted: dict[FigureKey, float] = {}
    moe: dict[FigureKey, float] = {}
    for table in report.tables:
        if table.spec.kind == "text":
            continue
        for i, category in enumerate(table.spec.categories):
            for j, column in enumerate(report.columns):
                share = table.share(i, j)
                n = table.respondents[j]
                if share is None or n is None:
                    continue
                key = (table.spec.answer_id, category.id, j)
                value = (_weighted(breakdown, table, i, column.key, by, weight_by, weights)
                         if breakdown is not None else None)
                if value is not None:
                    weighted[key] = value
                people = (population_by.get(column.key, 0) if column.key is not None
                          else sum(population_by.values())) if population_by else None
                moe[key] = _moe(value if value is not None else share, n,
                                deffs[j] if value is not None else 1.0, people or None)
    return Estimates(weighted, moe, weighting)


def _breakdown(connection: Connection, report: Report, specs: Sequence[KeySpec],
               dims: tuple[str, ...]) -> _Breakdown:
    by_id = {s.answer_id: s for s in specs}
    found = tally_counts(by_id, grouped_counts(connection, report.survey_id, dims, specs))
    columns_found = strata(connection, report.survey_id, dims)
    columns, tables = publish(specs, found, columns_found, dims, report.k)
    keys = [c.key for c in columns[:-1]]
    return _Breakdown(dims, [k for k in keys if k is not None],
                      {t.spec.answer_id: t for t in tables})


def _weighted(breakdown: _Breakdown, table: PublishedTable, category: int,
              column: Stratum | None, by: Sequence[str], weight_by: Sequence[str],
              weights: Mapping[Stratum, float]) -> float | None:
    """The weighted share of one figure, or None if a count it needs is hidden."""
    fine = breakdown.tables[table.spec.answer_id]
    chosen = answered = 0.0
    for j, stratum in enumerate(breakdown.columns):
        if column is not None and _project(stratum, breakdown.dims, by) != column:
            continue
        count, n = fine.counts[category][j], fine.respondents[j]
        if count is None or n is None:
            return None
        w = weights.get(_project(stratum, breakdown.dims, weight_by), 0.0)
        chosen += w * count
        answered += w * n
    return chosen / answered if answered else None


def _design_effects(report: Report, dims: Sequence[str], weight_by: Sequence[str],
                    weights: Mapping[Stratum, float], per_cell: Mapping[Stratum, int],
                    ) -> list[float]:
    """Kish's design effect of the weights in each column (1.0 unweighted)."""
    if not weights:
        return [1.0] * len(report.columns)
    sums: dict[Stratum | None, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for stratum, r in per_cell.items():
        w = weights.get(_project(stratum, dims, weight_by), 0.0)
        for key in (_project(stratum, dims, report.by), None):
            total = sums[key if report.by else None]
            total[0] += r
            total[1] += r * w
            total[2] += r * w * w
            if not report.by:
                break
    out = []
    for column in report.columns:
        n, sw, sw2 = sums.get(column.key, [0.0, 0.0, 0.0])
        out.append(n * sw2 / (sw * sw) if sw else 1.0)
    return out
