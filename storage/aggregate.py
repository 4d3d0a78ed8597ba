"""Counts and shares per item and stratum, published so that no single respondent can be seen.

KS promises every respondent that no single municipality's or mayor's answers can be read from
what is published. Each municipality has exactly one mayor, so a table by county can hold one
respondent per column; hiding that one cell is not enough, because it can be recomputed from the
totals. This module therefore publishes only what passes statistical disclosure control (SSB
practice, `../shared/domain.md` §3.1):

* **The table.** One table per answer id (an item, or one row of a grid): categories × strata,
  with margins: the row totals (the "Totalt" column), the respondents per stratum who answered
  the item (n) and the grand total. Every category count is additive, so each row and column of
  that grid, margins included, is one linear equation an attacker can use.
* **Primary suppression.** Every entry below k (`privacy.min_cell`) is hidden and shown as `:`
  (SSB's symbol), margins included: a stratum with fewer than k respondents loses its whole
  column. Zero counts are below k too: "nobody in this group chose X", published next to n, is a
  statement about every member of the group (with two options it gives away the other count).
* **Complementary suppression.** A hidden entry is safe only if some other table, equal in
  every published number, non-negative and additive, differs in that entry. In a two-way table
  such a change is a cycle of +1/−1 steps through hidden entries (rows and columns alternating);
  so every hidden entry that lies on no such cycle gets the cheapest cycle that protects it
  (Dijkstra; the cost of hiding another entry is its count + 1, so small cells go first) and the
  process repeats until every hidden entry is protected. This implies the classic rule (no row or
  column, margins included, holds exactly one hidden entry) and also closes the gaps that rule
  leaves: a hidden entry that bridges two groups of hidden cells, or a cycle blocked by zeros.
  Counts are protected even from someone who knows how many answered in each stratum (their
  cycles avoid the respondents row): one mayor in a county could have given any answer.
  A protecting cycle always exists: through the margins, every entry can move by one.
* **Linked tables.** The respondents per stratum of one item are often the same numbers as those
  of another item; a margin hidden in one table and shown in another would reveal it. Margins
  with the same stratum and the same value are hidden together in every table of a report.
* **Who counts.** Every stored answer, from completed and partial responses alike: n is, per
  answer id and stratum, the respondents who answered it.
* **Item types.** Single choice, yes/no, scale and grid rows count one category per answer
  (scale specials and "don't know" are categories). Multiple choice counts each option; each
  option is protected as its own chosen / not chosen table, since "not chosen" is n minus the
  count. Numbers are counted in fixed bands (never a mean: a mean is not additive, so it cannot
  be protected by hiding cells, and one large unit dominates it). Free text is never published,
  nor even read: only the number of non-empty answers is counted, in the database.

Not covered (documented limits): a conditional item's n can equal a cell of the item it depends
on, and tables from different reports or `--by` choices are not linked to each other.

The suppression is pure functions over plain counts (`CountTable`), testable without a database.
The query layer at the bottom reads the counts from `answer_counts` (a few thousand rows, kept in
step with the answers on every write, see `storage.counts`) with one GROUP BY, so neither a
million answers nor any free text is read to make a report. `build_report_from_answers` counts
the same report from `answers` ⨝ `responses` directly; it is what the counts must reproduce, and
what `build_report` falls back on (with a warning) if the counts do not cover every response.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
)

from flows.model import DONT_KNOW, NO, NOT_RELEVANT, YES, Item, ItemType, Questionnaire, Scale
from storage.counts import ANSWERED, RESPONSES, loads
from storage.schema import Answer, AnswerCount, Response

log = logging.getLogger(__name__)

#: SSB's symbol for "not published for confidentiality".
SUPPRESSED = ":"
#: The strata a report may be broken down by (columns of `responses`).
STRATA = ("respondent_type", "sector", "landsdel", "size_class")
#: The label of a stratum whose value is missing (e.g. sector for mayors).
UNKNOWN = "uoppgitt"
TOTAL = "Totalt"
DEFAULT_MIN_CELL = 5

#: An entry of a table's grid: (row, column); row `rows` is the respondents, column `cols` the
#: total.
Entry = tuple[int, int]
Grid = tuple[tuple[int, ...], ...]


# --- pure: a table of counts ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountTable:
    """Counts for one answer id: `cells[i][j]` respondents of stratum j in category i.

    `respondents[j]` is the number of respondents in stratum j who answered; every respondent
    who answered falls in exactly one category, so each column adds up to it (checked). The grid
    adds the margins: row `rows` holds the respondents and the grand total, column `cols` the row
    totals.
    """

    cells: tuple[tuple[int, ...], ...]
    respondents: tuple[int, ...]
    grid: Grid = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.cells or not self.respondents:
            raise ValueError("a table needs at least one category and one stratum")
        width = len(self.respondents)
        if any(len(row) != width for row in self.cells):
            raise ValueError("every category needs one count per stratum")
        if any(v < 0 for row in self.cells for v in row) or min(self.respondents) < 0:
            raise ValueError("counts cannot be negative")
        for j, n in enumerate(self.respondents):
            if sum(row[j] for row in self.cells) != n:
                raise ValueError(f"stratum {j}: the counts do not add up to the respondents")
        body = tuple((*row, sum(row)) for row in self.cells)
        object.__setattr__(self, "grid", (*body, (*self.respondents, sum(self.respondents))))

    @classmethod
    def of(cls, cells: Iterable[Iterable[int]], respondents: Iterable[int]) -> CountTable:
        """A table from any nested sequences of counts."""
        return cls(tuple(tuple(row) for row in cells), tuple(respondents))

    @property
    def rows(self) -> int:
        """The number of categories (also the index of the respondents row)."""
        return len(self.cells)

    @property
    def cols(self) -> int:
        """The number of strata (also the index of the total column)."""
        return len(self.respondents)

    def value(self, entry: Entry) -> int:
        """The count at a grid entry, margins included."""
        return self.grid[entry[0]][entry[1]]

    def entries(self) -> Iterator[Entry]:
        """Every grid entry, margins included."""
        for i in range(self.rows + 1):
            for j in range(self.cols + 1):
                yield (i, j)


def primary(table: CountTable, k: int) -> frozenset[Entry]:
    """Entries below k (zeros included), margins included: a whole stratum below k goes."""
    return frozenset(e for e in table.entries() if table.value(e) < k)


def _sign(table: CountTable, entry: Entry) -> int:
    """+1 for a count or the grand total, −1 for a margin.

    With these signs every row and column of the grid sums to zero, so a change that keeps all
    published numbers and all equations is a cycle of alternating +1/−1 (in signed terms).
    """
    i, j = entry
    return -1 if (i == table.rows) != (j == table.cols) else 1


@dataclass(frozen=True, slots=True)
class _Cycle:
    changes: tuple[tuple[Entry, int], ...]
    cost: int


def _strict(table: CountTable, entry: Entry) -> bool:
    """Whether `entry` must stay unknown even to someone who knows every stratum's respondents.

    Respondent counts leak easily (who was invited, who said they had answered), so a count in
    a table of two or more categories is protected by cycles that leave the respondents row
    alone. That is always possible once the stratum has a respondent; with none there is
    nothing to protect.
    """
    i, j = entry
    return i < table.rows and table.rows >= 2 and table.value((table.rows, j)) >= 1


def _hidden_lines(hidden: Iterable[Entry]) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    by_row: dict[int, list[int]] = defaultdict(list)
    by_col: dict[int, list[int]] = defaultdict(list)
    for i, j in sorted(hidden):
        by_row[i].append(j)
        by_col[j].append(i)
    return by_row, by_col


def _cycle(table: CountTable, hidden: set[Entry], entry: Entry, sigma: int, *,
           extend: bool) -> _Cycle | None:
    """The cheapest change of +1/−1 steps through `entry` that keeps every line balanced.

    Nodes are the lines of the grid (rows 0..R, then columns as R+1+j); an entry joins its row
    and its column. The path runs from the entry's column back to its row; steps leaving a
    column get the sign −sigma, steps leaving a row +sigma, so lines stay balanced. A step that
    lowers a count needs that count ≥ 1. Entries already hidden cost 0; with `extend`, others
    may join at the cost of their count + 1, otherwise they are not usable. Strict entries
    (see `_strict`) avoid the respondents row.
    """
    rows, cols = table.rows, table.cols
    own = sigma * _sign(table, entry)
    if own < 0 and table.value(entry) < 1:
        return None
    avoid = rows if _strict(table, entry) else -1
    by_row, by_col = ({}, {}) if extend else _hidden_lines(hidden)
    start, goal = rows + 1 + entry[1], entry[0]
    dist: dict[int, int] = {start: 0}
    back: dict[int, tuple[int, Entry, int]] = {}
    heap = [(0, start)]
    while heap:
        cost, node = heapq.heappop(heap)
        if node == goal:
            break
        if cost > dist[node]:
            continue
        if node > rows:
            j, step_sign = node - rows - 1, -sigma
            ends = range(rows + 1) if extend else by_col.get(j, [])
            steps = [((i, j), i) for i in ends if i != avoid]
        else:
            step_sign = sigma
            ends = range(cols + 1) if extend else by_row.get(node, [])
            steps = [((node, j), rows + 1 + j) for j in ends]
        for step, nxt in steps:
            if step == entry:
                continue
            delta = step_sign * _sign(table, step)
            if delta < 0 and table.value(step) < 1:
                continue
            new_cost = cost + (0 if step in hidden else table.value(step) + 1)
            if new_cost < dist.get(nxt, math.inf):
                dist[nxt] = new_cost
                back[nxt] = (node, step, delta)
                heapq.heappush(heap, (new_cost, nxt))
    if goal not in dist:
        return None
    changes: list[tuple[Entry, int]] = [(entry, own)]
    node = goal
    while node != start:
        node, step, delta = back[node]
        changes.append((step, delta))
    return _Cycle(tuple(changes), dist[goal])


def witness(table: CountTable, hidden: Iterable[Entry], entry: Entry) -> Grid | None:
    """Another grid, equal in every shown entry, non-negative and additive, in which `entry`
    differs (and, for a strict entry, the respondents row too is unchanged); None if the shown
    numbers pin `entry` down: it is exposed."""
    hidden_set = set(hidden)
    for sigma in (1, -1):
        found = _cycle(table, hidden_set, entry, sigma, extend=False)
        if found is not None:
            grid = [list(row) for row in table.grid]
            for (i, j), delta in found.changes:
                grid[i][j] += delta
            return tuple(tuple(row) for row in grid)
    return None


def exposed(table: CountTable, hidden: Iterable[Entry]) -> list[Entry]:
    """The hidden entries that can be worked out from the shown ones (see `witness`)."""
    hidden_set = set(hidden)
    return [e for e in sorted(hidden_set) if witness(table, hidden_set, e) is None]


def suppress(table: CountTable, k: int, forced: Iterable[Entry] = ()) -> frozenset[Entry]:
    """The entries to hide: primary (below k), `forced` ones, and complementary ones.

    Every hidden entry ends up on a balanced cycle of hidden entries that can move it, so none
    of them can be worked out from the published numbers, nor (for counts) from the published
    numbers plus every stratum's respondents.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    hidden = set(primary(table, k))
    for entry in forced:
        if not (0 <= entry[0] <= table.rows and 0 <= entry[1] <= table.cols):
            raise ValueError(f"entry {entry} is outside the table")
        hidden.add(entry)
    queue = deque(sorted(hidden, key=lambda e: (table.value(e), e)))
    while queue:
        entry = queue.popleft()
        if any(_cycle(table, hidden, entry, s, extend=False) is not None for s in (1, -1)):
            continue
        options = [c for s in (1, -1)
                   if (c := _cycle(table, hidden, entry, s, extend=True)) is not None]
        if not options:  # pragma: no cover - margins always close a cycle
            raise AssertionError(f"no protecting cycle for {entry}")
        best = min(options, key=lambda c: c.cost)
        added = [e for e, _ in best.changes if e not in hidden]
        hidden.update(added)
        queue.extend(added)
    return frozenset(hidden)


def suppress_linked(tables: Sequence[CountTable], k: int,
                    forced: Sequence[Iterable[Entry]] | None = None) -> list[frozenset[Entry]]:
    """Suppress tables that share strata so a margin shown in one cannot undo another.

    Tables must have the same strata columns. A respondents entry (or grand total) hidden in
    one table is hidden in every table where it has the same value. `forced[n]` are entries of
    table n to hide whatever their count.
    """
    masks = [suppress(t, k, forced[n] if forced is not None else ())
             for n, t in enumerate(tables)]
    while True:
        hidden_margins = {(j, t.value((t.rows, j)))
                          for t, mask in zip(tables, masks, strict=True)
                          for (i, j) in mask if i == t.rows}
        changed = False
        for n, t in enumerate(tables):
            extra = {(t.rows, j) for j in range(t.cols + 1)
                     if (j, t.value((t.rows, j))) in hidden_margins} - masks[n]
            if extra:
                masks[n] = suppress(t, k, masks[n] | extra)
                changed = True
        if not changed:
            return masks


# --- pure: what an item's answers count as ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Category:
    """One row of a published table: an option, a scale point, a band or a special answer."""

    id: str
    label: str


Kind = Literal["choice", "multi", "text"]


@dataclass(frozen=True, slots=True)
class KeySpec:
    """How the answers stored under one answer id are counted."""

    answer_id: str
    item: Item
    #: As respondents see it: "4", or "4b" for the second row of grid 4.
    number: str
    row_label: str | None
    kind: Kind
    categories: tuple[Category, ...]
    #: Number items: the bands (lowest value of each band, in order).
    bands: tuple[int, ...] = ()


_SPECIAL_LABELS = {YES: "Ja", NO: "Nei", DONT_KNOW: "Vet ikke", NOT_RELEVANT: "Ikke relevant"}
_BAND_EDGES = (10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000)
FREE_TEXT = Category(ANSWERED, "Har skrevet svar (teksten publiseres ikke)")


def _number(n: int) -> str:
    """A whole number as written in Norwegian: 10 000."""
    return f"{n:,}".replace(",", "\u00a0")


def number_bands(minimum: int | None, maximum: int | None) -> tuple[tuple[int, ...],
                                                                     tuple[Category, ...]]:
    """Fixed bands for a number item (1-5-10 steps), independent of the answers given.

    Bands depend only on the item's bounds, never on the data: edges drawn from the answers
    would reveal the smallest and largest answer.
    """
    start = 0 if minimum is None or minimum < 0 else minimum
    lows: list[int] = []
    categories: list[Category] = []
    if minimum is None or minimum < 0:
        lows.append(-(10**18))
        categories.append(Category("under_0", "Under 0"))
    edges = [e for e in _BAND_EDGES if e > start and (maximum is None or e <= maximum)]
    for low, nxt in zip([start, *edges], [*edges, None], strict=True):
        lows.append(low)
        if nxt is not None:
            label = f"{_number(low)}–{_number(nxt - 1)}"
        elif maximum is None:
            label = f"{_number(low)} eller flere"
        else:
            label = f"{_number(low)}–{_number(maximum)}" if maximum > low else _number(low)
        categories.append(Category(f"from_{low}", label))
    return tuple(lows), tuple(categories)


def _scale_categories(scale: Scale) -> tuple[Category, ...]:
    points = []
    for point in range(scale.min, scale.max + 1):
        text = scale.label(point)
        points.append(Category(str(point), f"{point} {text.nb}" if text else str(point)))
    if scale.dont_know:
        points.append(Category(DONT_KNOW, _SPECIAL_LABELS[DONT_KNOW]))
    if scale.not_relevant:
        points.append(Category(NOT_RELEVANT, _SPECIAL_LABELS[NOT_RELEVANT]))
    return tuple(points)


def _yesno_categories(dont_know: bool) -> tuple[Category, ...]:
    ids = (YES, NO, DONT_KNOW) if dont_know else (YES, NO)
    return tuple(Category(i, _SPECIAL_LABELS[i]) for i in ids)


def _item_specs(item: Item) -> list[KeySpec]:
    number = str(item.number)
    if item.type is ItemType.GRID:
        categories = (_scale_categories(item.scale) if item.row_type == "scale" and item.scale
                      else _yesno_categories(item.dont_know))
        return [KeySpec(key, item, f"{number}{chr(ord('a') + n)}", row.label.nb, "choice",
                        categories)
                for n, (key, row) in enumerate(zip(item.keys, item.rows, strict=True))]
    if item.type is ItemType.TEXT:
        return [KeySpec(item.id, item, number, None, "text", (FREE_TEXT,))]
    if item.type is ItemType.NUMBER:
        lows, categories = number_bands(item.min, item.max)
        return [KeySpec(item.id, item, number, None, "choice", categories, lows)]
    if item.type is ItemType.YESNO:
        return [KeySpec(item.id, item, number, None, "choice", _yesno_categories(item.dont_know))]
    if item.type is ItemType.SCALE and item.scale is not None:
        return [KeySpec(item.id, item, number, None, "choice", _scale_categories(item.scale))]
    kind: Kind = "multi" if item.type is ItemType.MULTI else "choice"
    return [KeySpec(item.id, item, number, None, kind,
                    tuple(Category(o.id, o.label.nb) for o in item.options))]


def key_specs(questionnaire: Questionnaire) -> list[KeySpec]:
    """One spec per answer id, in questionnaire order."""
    return [spec for item in questionnaire.items for spec in _item_specs(item)]


def classify(spec: KeySpec, value: object) -> tuple[str, ...]:
    """The category ids one stored answer counts in (empty: not recognised)."""
    known = {c.id for c in spec.categories}
    if spec.kind == "multi":
        chosen = value if isinstance(value, list) else []
        return tuple(dict.fromkeys(str(v) for v in chosen if str(v) in known))
    if spec.bands and isinstance(value, int) and not isinstance(value, bool):
        band = max((n for n, low in enumerate(spec.bands) if value >= low), default=0)
        return (spec.categories[band].id,)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ()
    return (str(value),) if str(value) in known else ()


# --- counting: from grouped rows to tables ----------------------------------------------------

Stratum = tuple[str | None, ...]


@dataclass
class Tally:
    """Counts for one answer id: per stratum, the respondents and each category's count."""

    answered: Counter[Stratum] = field(default_factory=Counter)
    counts: dict[Stratum, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def tally(specs: Mapping[str, KeySpec], grouped: Iterable[tuple[str, Stratum, str, int]],
          ) -> dict[str, Tally]:
    """Fold grouped rows (answer id, stratum, JSON value, count) into tallies.

    A multiple-choice answer counts in each option it names and once as answered; any other
    answer counts only when its value is recognised, so every column stays additive.
    """
    tallies: dict[str, Tally] = {}
    unrecognised = 0
    for answer_id, stratum, raw, count in grouped:
        spec = specs.get(answer_id)
        if spec is not None:
            unrecognised += _count_answers(tallies, spec, stratum, loads(raw), count)
    _warn_unrecognised(unrecognised)
    return tallies


def tally_counts(specs: Mapping[str, KeySpec],
                 grouped: Iterable[tuple[str, Stratum, str, int]]) -> dict[str, Tally]:
    """Fold grouped count rows (answer id, stratum, value key, n) into tallies.

    The same tallies `tally` makes from the answers: a value key is counted as that many
    answers with that value, except an option row of a list (`["x"]`), which adds to its
    option's count only (the list's `[]` row counted the respondents).
    """
    tallies: dict[str, Tally] = {}
    unrecognised = 0
    for answer_id, stratum, key, count in grouped:
        spec = specs.get(answer_id)
        if spec is None:
            continue
        value = loads(key)
        if isinstance(value, list) and value:
            if spec.kind == "multi":
                for category in classify(spec, value):
                    tallies.setdefault(answer_id, Tally()).counts[stratum][category] += count
            continue
        unrecognised += _count_answers(tallies, spec, stratum, value, count)
    _warn_unrecognised(unrecognised)
    return tallies


def _count_answers(tallies: dict[str, Tally], spec: KeySpec, stratum: Stratum, value: object,
                   count: int) -> int:
    """Count `count` answers with `value`; return how many were not recognised."""
    categories = classify(spec, value)
    if spec.kind == "text" and not categories:
        return 0  # an empty text: not an answer
    if not categories and spec.kind != "multi":
        return count
    entry = tallies.setdefault(spec.answer_id, Tally())
    entry.answered[stratum] += count
    for category in categories:
        entry.counts[stratum][category] += count
    return 0


def _warn_unrecognised(unrecognised: int) -> None:
    if unrecognised:
        log.warning("%d stored answers match no option of the questionnaire; not counted",
                    unrecognised)


def count_tables(spec: KeySpec, found: Tally | None, strata: Sequence[Stratum],
                 ) -> list[CountTable]:
    """The tables to protect for one answer id (one per option for multiple choice)."""
    found = found or Tally()
    answered = [found.answered[s] for s in strata]
    if spec.kind == "multi":
        tables = []
        for category in spec.categories:
            chosen = [found.counts[s][category.id] for s in strata]
            tables.append(CountTable.of(
                [chosen, [n - c for n, c in zip(answered, chosen, strict=True)]], answered))
        return tables
    cells = [[found.counts[s][c.id] for s in strata] for c in spec.categories]
    return [CountTable.of(cells, answered)]


# --- the published report -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the report: one stratum (values per `by` dimension) or the total (None)."""

    key: Stratum | None
    label: str


@dataclass(frozen=True, slots=True)
class PublishedTable:
    """What may be shown for one answer id: None marks a suppressed number."""

    spec: KeySpec
    #: counts[category][column]; the last column is the total.
    counts: tuple[tuple[int | None, ...], ...]
    respondents: tuple[int | None, ...]

    def share(self, category: int, column: int) -> float | None:
        """The share of the column's respondents in a category, if both numbers are shown.

        Free text has no share: its only category is "wrote something", counted alone.
        """
        count, n = self.counts[category][column], self.respondents[column]
        if count is None or n is None or n == 0 or self.spec.kind == "text":
            return None
        return count / n


@dataclass(frozen=True, slots=True)
class Report:
    """A whole report: columns shared by every table, and one table per answer id."""

    survey_id: str
    questionnaire_id: str
    k: int
    by: tuple[str, ...]
    columns: tuple[Column, ...]
    tables: tuple[PublishedTable, ...]


_STRATUM_LABELS = {"unit_leader": "virksomhetsleder", "mayor": "ordfører"}


def stratum_label(stratum: Stratum) -> str:
    """How a stratum is named in a column header: 'helse / Nord-Norge'."""
    return " / ".join(UNKNOWN if v is None else _STRATUM_LABELS.get(v, v) for v in stratum)


def _shown(table: CountTable, mask: frozenset[Entry], i: int, cols: Sequence[int],
           ) -> tuple[int | None, ...]:
    return tuple(None if (i, j) in mask else table.value((i, j)) for j in cols)


def _project(stratum: Stratum, positions: Sequence[int] | range, sub: Sequence[int]) -> Stratum:
    """The values of `stratum` (over the `by` positions `positions`) at the positions `sub`."""
    return tuple(stratum[positions.index(p)] for p in sub)


def _coarser_tallies(tallies: Mapping[str, Tally], positions: Sequence[int] | range,
                     sub: Sequence[int]) -> dict[str, Tally]:
    """The tallies added up over the strata not in `sub` (what a coarser report counts)."""
    out: dict[str, Tally] = {}
    for answer_id, found in tallies.items():
        coarse = Tally()
        for stratum, n in found.answered.items():
            coarse.answered[_project(stratum, positions, sub)] += n
        for stratum, counts in found.counts.items():
            coarse.counts[_project(stratum, positions, sub)].update(counts)
        out[answer_id] = coarse
    return out


@dataclass(frozen=True, slots=True)
class _Layer:
    """One breakdown's tables (every answer id's, flattened) and what each hides."""

    strata: list[Stratum]
    tables: list[CountTable]
    masks: list[frozenset[Entry]]


class _Breakdowns:
    """The report asked for and every coarser one, each protected against those below it.

    Suppression is deterministic, so the coarser reports computed here are exactly what
    `svarbot report` publishes for those strata; protecting a breakdown against them protects
    it against reports that were, or will be, published from the same answers.
    """

    def __init__(self, specs: Sequence[KeySpec], tallies: Mapping[str, Tally],
                 strata: Sequence[Stratum], width: int, k: int) -> None:
        self.specs, self.tallies, self.strata, self.k = specs, tallies, strata, k
        self.full = tuple(range(width))
        self._layers: dict[tuple[int, ...], _Layer] = {}

    def layer(self, positions: tuple[int, ...]) -> _Layer:
        if positions in self._layers:
            return self._layers[positions]
        if positions == self.full:
            strata, tallies = list(self.strata), self.tallies
        else:
            strata = sorted({_project(s, self.full, positions) for s in self.strata},
                            key=_stratum_key) or [()]
            tallies = _coarser_tallies(self.tallies, self.full, positions)
        tables = [t for spec in self.specs
                  for t in count_tables(spec, tallies.get(spec.answer_id), strata)]
        masks = suppress_linked(tables, self.k)
        if positions:
            masks = self._protect(positions, strata, tables, masks)
        found = _Layer(strata, tables, masks)
        self._layers[positions] = found
        return found

    def _coarser(self, positions: tuple[int, ...], strata: Sequence[Stratum],
                 ) -> list[tuple[dict[int, list[int]], _Layer]]:
        out = []
        for size in range(len(positions)):
            for sub in itertools.combinations(positions, size):
                below = self.layer(sub)
                column = {s: n for n, s in enumerate(below.strata)}
                groups: dict[int, list[int]] = defaultdict(list)
                for j, stratum in enumerate(strata):
                    groups[column[_project(stratum, positions, sub)]].append(j)
                out.append((dict(groups), below))
        return out

    def _protect(self, positions: tuple[int, ...], strata: Sequence[Stratum],
                 tables: list[CountTable], masks: list[frozenset[Entry]],
                 ) -> list[frozenset[Entry]]:
        coarser = self._coarser(positions, strata)
        for _round in range(8):
            changed = False
            for n, table in enumerate(tables):
                protected = _protect_table(table, masks[n], [
                    (groups, below.tables[n], below.masks[n]) for groups, below in coarser],
                    self.k)
                if protected != masks[n]:
                    masks[n], changed = protected, True
            if not changed:
                return masks
            masks = suppress_linked(tables, self.k, masks)
        return masks  # pragma: no cover - each round only adds; eight have always sufficed


def _protect_table(table: CountTable, mask: frozenset[Entry],
                   coarser: Sequence[tuple[dict[int, list[int]], CountTable, frozenset[Entry]]],
                   k: int) -> frozenset[Entry]:
    """Hide more of `table` until nothing hidden in it, or in a coarser table, can be
    computed from both (see `storage.disclosure`)."""
    from storage.disclosure import Coarser, disclosed

    views = [Coarser(groups, frozenset(
        (i, g) for i in range(table.rows) for g in groups
        if (i, g) not in below_mask or (below.cols == 1 and (i, 1) not in below_mask)))
        for groups, below, below_mask in coarser]
    while True:
        cells, counts = disclosed(table.rows, table.cols, mask,
                                  total_known=[(i, table.cols) not in mask
                                               for i in range(table.rows)], coarser=views)
        if not cells and not counts:
            return mask
        if cells:
            i, j = cells[0]
            near = {m for groups, _b, _m in coarser for members in groups.values()
                    if j in members and len(members) < table.cols for m in members}
            candidates = [(m not in near, table.value((i, m)), (i, m)) for m in range(table.cols)
                          if m != j and (i, m) not in mask]
            candidates += [(True, table.value((r, j)) + 10**9, (r, j))
                           for r in range(table.rows) if r != i and (r, j) not in mask]
        else:
            which, (i, g) = counts[0]
            candidates = [(False, table.value((i, m)), (i, m))
                          for m in views[which].groups[g] if (i, m) not in mask]
        if not candidates:
            log.warning("a hidden cell stays computable from a coarser report; "
                        "hiding the whole row")
            return frozenset(mask | {(i, m) for m in range(table.cols + 1)})
        mask = suppress(table, k, mask | {min(candidates)[2]})


def publish(specs: Sequence[KeySpec], tallies: Mapping[str, Tally], strata: Sequence[Stratum],
            by: Sequence[str], k: int) -> tuple[tuple[Column, ...], tuple[PublishedTable, ...]]:
    """Protect every table of a report together, and against every coarser report of the
    same answers (by fewer of the `by` strata, and the totals), and keep what may be shown."""
    columns_used: Sequence[Stratum] = strata or [tuple(None for _ in by)]
    # Suppress in one order of the strata whatever order they were asked in: "size, sector"
    # and "sector, size" are one table and must hide the same cells.
    order = sorted(range(len(by)), key=lambda p: (STRATA.index(by[p]) if by[p] in STRATA
                                                  else len(STRATA), by[p]))
    canonical = sorted((_project(s, range(len(by)), order) for s in columns_used),
                       key=_stratum_key)
    at = {c: n for n, c in enumerate(canonical)}
    canonical_tallies = (tallies if order == list(range(len(by)))
                         else _coarser_tallies(tallies, range(len(by)), order))
    layer = _Breakdowns(specs, canonical_tallies, canonical, len(by), k).layer(
        tuple(range(len(by))))
    masks = iter(layer.masks)
    tables_iter = iter(layer.tables)
    ncols = len(columns_used)
    shown = ([at[_project(s, range(len(by)), order)] for s in columns_used] + [ncols]
             if by else [ncols])
    published = []
    for spec in specs:
        count = len(spec.categories) if spec.kind == "multi" else 1
        tables = [next(tables_iter) for _ in range(count)]
        table_masks = [next(masks) for _ in range(count)]
        if spec.kind == "multi":
            counts = tuple(_shown(t, m, 0, shown) for t, m in zip(tables, table_masks,
                                                                    strict=True))
        else:
            counts = tuple(_shown(tables[0], table_masks[0], i, shown)
                           for i in range(tables[0].rows))
        respondents = _shown(tables[0], table_masks[0], tables[0].rows, shown)
        published.append(PublishedTable(spec, counts, respondents))
    columns = [Column(s, stratum_label(s)) for s in columns_used] if by else []
    return (*columns, Column(None, TOTAL)), tuple(published)


# --- the query layer ----------------------------------------------------------------------------


def check_by(by: Sequence[str]) -> tuple[str, ...]:
    """Validate `--by`: one or two known strata, no repeats (ValueError otherwise)."""
    dims = tuple(by)
    unknown = [d for d in dims if d not in STRATA]
    if unknown:
        raise ValueError(f"--by: unknown stratum '{unknown[0]}' (known: {', '.join(STRATA)})")
    if len(dims) > 2 or len(set(dims)) != len(dims):
        raise ValueError("--by takes one or two different strata")
    return dims


def _natural_order() -> dict[str, int]:
    """Stratum values in the order people read them: sectors as asked, sizes ascending,
    landsdeler in SSB's order; values not listed follow, alphabetically."""
    from storage.contacts import SECTORS
    from storage.reference import SIZE_CLASSES, landsdeler

    known = (*SECTORS, *SIZE_CLASSES, *landsdeler(), "unit_leader", "mayor")
    return {value: rank for rank, value in enumerate(known)}


def _stratum_key(stratum: Stratum) -> tuple[tuple[bool, int, str], ...]:
    order = _natural_order()
    return tuple((v is None, order.get(v or "", len(order)), v or "") for v in stratum)


def _missing_as_none(values: Iterable[str | None]) -> Stratum:
    """A missing stratum is "" in the counts and NULL (or, written around the answer store,
    "") in `responses`: both are read as None, "uoppgitt"."""
    return tuple(v or None for v in values)


def _sorted_strata(rows: Iterable[Sequence[str | None]]) -> list[Stratum]:
    return sorted({_missing_as_none(row) for row in rows}, key=_stratum_key)


def strata(connection: Connection, survey_id: str, by: Sequence[str]) -> list[Stratum]:
    """The strata (value combinations of `by`) that hold at least one response (counts)."""
    if not by:
        return [()]
    dims = [getattr(AnswerCount, d) for d in by]
    rows = connection.execute(select(*dims).where(AnswerCount.survey_id == survey_id,
                                                  AnswerCount.answer_id == RESPONSES)
                              .distinct())
    return _sorted_strata(rows)


def strata_from_answers(connection: Connection, survey_id: str,
                        by: Sequence[str]) -> list[Stratum]:
    """The strata that hold at least one response, from `responses`."""
    if not by:
        return [()]
    dims = [getattr(Response, d) for d in by]
    rows = connection.execute(select(*dims).where(Response.survey_id == survey_id).distinct())
    return _sorted_strata(rows)


def grouped_counts(connection: Connection, survey_id: str, by: Sequence[str],
                   specs: Sequence[KeySpec]) -> Iterator[tuple[str, Stratum, str, int]]:
    """(answer id, stratum, value key, count) from `answer_counts`, grouped in the database.

    A few rows per answer id, category and stratum: the table is already counted, this only
    adds up the strata not asked for.
    """
    dims = [getattr(AnswerCount, d) for d in by]
    width = len(dims)
    query = (select(AnswerCount.answer_id, *dims, AnswerCount.value_key, func.sum(AnswerCount.n))
             .where(AnswerCount.survey_id == survey_id,
                    AnswerCount.answer_id.in_([s.answer_id for s in specs]))
             .group_by(AnswerCount.answer_id, *dims, AnswerCount.value_key))
    for row in connection.execute(query):
        yield (row[0], _missing_as_none(row[1:1 + width]), row[1 + width],
               int(row[2 + width]))


def _value_expression(text_ids: Sequence[str]) -> ColumnElement[str]:
    """The stored value as JSON text; a free-text answer becomes "answered" or "" in SQL."""
    raw = cast(Answer.value, String)
    if not text_ids:
        return raw
    empty = or_(raw.is_(None), raw.in_(['""', "null"]))
    written = case((empty, literal('""')), else_=literal(json.dumps(FREE_TEXT.id)))
    return case((Answer.answer_id.in_(text_ids), written), else_=raw)


def grouped_values(connection: Connection, survey_id: str, by: Sequence[str],
                   specs: Sequence[KeySpec]) -> Iterator[tuple[str, Stratum, str, int]]:
    """(answer id, stratum, JSON text of the value, count), grouped from the answers.

    One pass over every answer (what `answer_counts` saves the report from). Free text is
    replaced inside the query by whether anything was written, so no text ever leaves the
    database; answer ids the questionnaire does not know are not read at all.
    """
    dims = [getattr(Response, d) for d in by]
    value = _value_expression([s.answer_id for s in specs if s.kind == "text"])
    width = len(dims)
    query = (select(Answer.answer_id, *dims, value, func.count())
             .join(Response, Response.id == Answer.response_id)
             .where(Response.survey_id == survey_id,
                    Answer.answer_id.in_([s.answer_id for s in specs]))
             # By position: PostgreSQL cannot match a bound CASE in SELECT to one in GROUP BY.
             .group_by(*(literal_column(str(n)) for n in range(1, width + 3))))
    for row in connection.execute(query):
        yield row[0], _missing_as_none(row[1:1 + width]), row[1 + width], row[2 + width]


def counts_in_step(connection: Connection, survey_id: str) -> bool:
    """Whether `answer_counts` covers exactly the survey's responses (a cheap check that
    nothing wrote responses around `AnswerStore.record`)."""
    counted = connection.execute(
        select(func.coalesce(func.sum(AnswerCount.n), 0))
        .where(AnswerCount.survey_id == survey_id, AnswerCount.answer_id == RESPONSES),
    ).scalar_one()
    stored = connection.execute(select(func.count()).select_from(Response)
                                .where(Response.survey_id == survey_id)).scalar_one()
    return int(counted) == int(stored)


def _report(connection: Connection, survey_id: str, questionnaire: Questionnaire,
            by: Sequence[str], k: int, *, from_counts: bool) -> Report:
    dims = check_by(by)
    specs = key_specs(questionnaire)
    by_id = {s.answer_id: s for s in specs}
    if from_counts:
        found = tally_counts(by_id, grouped_counts(connection, survey_id, dims, specs))
        columns_used = strata(connection, survey_id, dims)
    else:
        found = tally(by_id, grouped_values(connection, survey_id, dims, specs))
        columns_used = strata_from_answers(connection, survey_id, dims)
    columns, tables = publish(specs, found, columns_used, dims, k)
    log.info("report for survey %s: %d tables, %d strata", survey_id, len(tables),
             len(columns) - 1)
    return Report(survey_id, questionnaire.id, k, dims, columns, tables)


def build_report(connection: Connection, survey_id: str, questionnaire: Questionnaire,
                 by: Sequence[str] = (), k: int = DEFAULT_MIN_CELL) -> Report:
    """Count every answer id of `questionnaire` from `answer_counts` and publish it safely.

    Should the counts not cover every response (rows written around `AnswerStore.record`),
    the report is counted from the answers instead, and the log says so.
    """
    check_by(by)
    if counts_in_step(connection, survey_id):
        return _report(connection, survey_id, questionnaire, by, k, from_counts=True)
    log.warning("survey %s: the answer counts do not cover every response; counting from the "
                "answers instead (slower; storage.counts.recount rebuilds them)", survey_id)
    return _report(connection, survey_id, questionnaire, by, k, from_counts=False)


def build_report_from_answers(connection: Connection, survey_id: str,
                              questionnaire: Questionnaire, by: Sequence[str] = (),
                              k: int = DEFAULT_MIN_CELL) -> Report:
    """The same report, counted from `answers` ⨝ `responses` (one pass over every answer)."""
    return _report(connection, survey_id, questionnaire, by, k, from_counts=False)
