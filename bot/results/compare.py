"""The change since the previous wave: its published shares against ours, tested.

The previous wave is what was published of it (`PREVIOUS.csv`: question, category, stratum,
n, share; the stratum "Totalt" or a value such as "helse"), with a mapping beside it
(`PREVIOUS.yaml`) that says which of our answer ids asks the same, and which of our categories
is which of theirs; questions that do not map are not compared. A change is given in
percentage points only where both waves publish the cell (a hidden figure of ours gets none,
see `published`), and called significant only where a two-proportion z-test at 5 % says so,
with our n deflated by the design effect; where the previous wave gives no n, the change is
shown untested.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.results.published import Changes, Comparison, Estimates, FigureKey
from storage.aggregate import TOTAL, Report

Z_95 = 1.96


class ComparisonError(ValueError):
    """The previous wave's files cannot be used (one line: file, line, what is wrong)."""


@dataclass(frozen=True, slots=True)
class PreviousCell:
    """One published figure of the previous wave."""

    share: float
    n: int | None


@dataclass(frozen=True, slots=True)
class PreviousWave:
    """The previous wave's cells and how its questions map to ours."""

    comparison: Comparison
    #: (their question, their category, stratum) -> the cell.
    cells: Mapping[tuple[str, str, str], PreviousCell]
    #: our answer id -> (their question, {our category: their category}).
    questions: Mapping[str, tuple[str, Mapping[str, str]]]


def _share(text: str, where: str) -> float:
    raw = text.strip().replace(",", ".").replace("%", "").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ComparisonError(f"{where}: share '{text}' is not a number") from None
    value = value / 100 if value > 1 else value
    if not 0 <= value <= 1:
        raise ComparisonError(f"{where}: share '{text}' is not between 0 and 100 %")
    return value


def load_previous(path: str | Path) -> PreviousWave:
    """Read `PREVIOUS.csv` and its mapping `PREVIOUS.yaml` (ComparisonError if broken)."""
    path = Path(path)
    mapping_path = path.with_suffix(".yaml")
    try:
        text = path.read_text(encoding="utf-8-sig")
        mapping = yaml.safe_load(mapping_path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ComparisonError(f"{exc.filename}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ComparisonError(f"{mapping_path}: not valid YAML ({exc})") from None
    cells: dict[tuple[str, str, str], PreviousCell] = {}
    reader = csv.DictReader(text.splitlines())
    needed = {"question", "category", "stratum", "n", "share"}
    if not needed <= set(reader.fieldnames or ()):
        raise ComparisonError(f"{path}: the header needs {', '.join(sorted(needed))}")
    for line, row in enumerate(reader, start=2):
        where = f"{path}:{line}"
        n_text = (row["n"] or "").strip()
        if n_text and not n_text.isdigit():
            raise ComparisonError(f"{where}: n '{n_text}' is not a whole number")
        stratum = (row["stratum"] or "").strip() or TOTAL
        cells[(row["question"].strip(), row["category"].strip(), stratum)] = PreviousCell(
            _share(row["share"] or "", where), int(n_text) if n_text else None)
    questions: dict[str, tuple[str, Mapping[str, str]]] = {}
    for ours, spec in (mapping.get("questions") or {}).items():
        if not isinstance(spec, dict) or "question" not in spec:
            raise ComparisonError(f"{mapping_path}: questions.{ours}: needs 'question'")
        categories = {str(k): str(v) for k, v in (spec.get("categories") or {}).items()}
        questions[str(ours)] = (str(spec["question"]), categories)
    comparison = Comparison(label=str(mapping.get("label", "forrige runde")),
                            source=str(mapping.get("source", path.name)),
                            note=str(mapping.get("note", "")),
                            mapped={k: v[0] for k, v in questions.items()})
    return PreviousWave(comparison, cells, questions)


def two_proportion_significant(p1: float, n1: float, p2: float, n2: int) -> bool:
    """Whether p1 (of n1) and p2 (of n2) differ at 5 % (pooled two-proportion z-test)."""
    if n1 <= 0 or n2 <= 0:
        return False
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return spread > 0 and abs(p1 - p2) / spread > Z_95


def compare(report: Report, estimates: Estimates, previous: PreviousWave) -> Changes:
    """The change for every shown figure of ours that the previous wave also published."""
    deffs = (estimates.weighting.design_effect if estimates.weighting is not None
             else (1.0,) * len(report.columns))
    found: dict[FigureKey, tuple[float, float, bool]] = {}
    for table in report.tables:
        mapped = previous.questions.get(table.spec.answer_id)
        if mapped is None or table.spec.kind == "text":
            continue
        theirs, categories = mapped
        for i, category in enumerate(table.spec.categories):
            their_category = categories.get(category.id)
            if their_category is None:
                continue
            for j, column in enumerate(report.columns):
                key = (table.spec.answer_id, category.id, j)
                share, n = table.share(i, j), table.respondents[j]
                if share is None or n is None:
                    continue
                before = previous.cells.get((theirs, their_category, column.label))
                if before is None:
                    continue
                ours = estimates.weighted.get(key, share)
                change = round(100 * ours) - round(100 * before.share)
                significant = (before.n is not None and two_proportion_significant(
                    ours, n / deffs[j], before.share, before.n))
                found[key] = (before.share, float(change), significant)
    return Changes(found, previous.comparison)
