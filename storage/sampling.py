"""Stratified random samples of a frame of contacts, and substitutes for units that bounced.

Why stratified with a minimum: the barometer publishes by sector, landsdel and size class, and
cells under `privacy.min_cell` respondents are suppressed. Proportional allocation keeps the
sample representative; a minimum per stratum keeps small strata (culture in Nord-Norge's
smallest kommuner) from vanishing. The minimum is taken first, the rest is shared in
proportion to the strata's sizes, and largest-remainder rounding makes the total exactly N.
A stratum smaller than the minimum is taken whole. If the minimum cannot be met (more strata
than N allows), the allocation is plain proportional and the result says so.

Why reproducible: a sample must be re-creatable for the methods report. For a given frame
file, strata and seed the same units are drawn: strata are visited in a fixed order, the units
of a stratum keep their order in the file, and all draws come from one `random.Random(seed)`.
A draw without a seed gets a fresh one (`new_seed`), which is reported with the result so that
the draw can be repeated.

Substitutes: a bounced or departed unit is replaced by a unit of the same stratum that has
never been drawn. The sample file keeps every unit ever drawn (the bounced ones too), so a
unit is never drawn twice across rounds; re-importing it leaves the bounced invitations as
they are and invites only the substitutes.

The frame and the sample are contacts files (`storage.contacts`); the sample is written with
the frame's own columns, separator and encoding.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from math import floor
from pathlib import Path
from typing import Generic, TypeVar

from storage import reference
from storage.contacts import (
    SECTORS,
    Contact,
    ContactsError,
    ContactsFile,
    CsvTable,
    canonical_column,
    read_table,
    write_table,
)
from storage.identity import normalise_email

K = TypeVar("K", bound=Hashable)

#: Stratum names for `--strata` and how each is read from a checked contact.
STRATA: dict[str, Callable[[Contact], str]] = {
    "sector": lambda c: c.sector or "-",
    "landsdel": lambda c: c.landsdel,
    "size": lambda c: c.size_class,
    "county": lambda c: c.county,
    "role": lambda c: c.role.value,
    "unit_type": lambda c: c.unit_type or "-",
    "lang": lambda c: c.lang or "-",
}
DEFAULT_STRATA = "sector,landsdel,size"

StratumKey = tuple[str, ...]


class SamplingError(Exception):
    """The sample cannot be drawn as asked (a usage problem); the message is one line."""


@dataclass(frozen=True, slots=True)
class Allocation(Generic[K]):
    """Units per stratum, and whether every stratum got the minimum (or all its units)."""

    counts: dict[K, int]
    minimum_met: bool


@dataclass(frozen=True, slots=True)
class StratumRow:
    """One line of the per-stratum table."""

    key: StratumKey
    frame: int
    sample: int


@dataclass(frozen=True, slots=True)
class Sample:
    """A drawn sample: the chosen frame rows (in file order) and the table by stratum."""

    strata: tuple[str, ...]
    lines: tuple[int, ...]
    rows: tuple[StratumRow, ...]
    minimum_met: bool


@dataclass(frozen=True, slots=True)
class ReplacementRow:
    """Substitutes drawn in one stratum."""

    key: StratumKey
    replaced: int
    substitutes: int
    left: int


@dataclass(frozen=True, slots=True)
class Replacement:
    """Substitutes: frame lines drawn, the table, and bounced entries that were not used."""

    strata: tuple[str, ...]
    lines: tuple[int, ...]
    rows: tuple[ReplacementRow, ...]
    warnings: tuple[str, ...]

    @property
    def shortfall(self) -> int:
        """Units that could not be replaced because their stratum is used up."""
        return sum(r.replaced - r.substitutes for r in self.rows)


# --- allocation -----------------------------------------------------------------------------


def _quotas(sizes: Mapping[K, int], free: list[K], remaining: int) -> dict[K, Fraction]:
    pool = sum(sizes[k] for k in free)
    return {k: Fraction(remaining * sizes[k], pool) for k in free} if pool else {}


def allocate(sizes: Mapping[K, int], n: int, minimum: int = 0) -> Allocation[K]:
    """Share `n` units among strata of `sizes`: minimum first, then proportional.

    Exact arithmetic; rounding by largest remainder (ties: the larger stratum, then the
    earlier one), so the counts add up to `n`. No stratum gets more than its size.
    """
    total = sum(sizes.values())
    if not 0 <= n <= total:
        raise SamplingError(f"cannot draw {n} units from a frame of {total}")
    floors = {k: min(max(minimum, 0), size) for k, size in sizes.items()}
    minimum_met = sum(floors.values()) <= n
    if not minimum_met:
        floors = dict.fromkeys(sizes, 0)
    fixed: dict[K, int] = {}
    free = [k for k in sizes if sizes[k] > 0]
    while True:
        remaining = n - sum(fixed.values())
        quotas = _quotas(sizes, free, remaining)
        low = [k for k in free if quotas[k] < floors[k]]
        if not low:
            break
        fixed.update((k, floors[k]) for k in low)
        free = [k for k in free if k not in fixed]
    counts = {k: floor(q) for k, q in quotas.items()}
    position = {k: i for i, k in enumerate(sizes)}
    order = sorted(free, key=lambda k: (counts[k] - quotas[k], -sizes[k], position[k]))
    for k in order[:remaining - sum(counts.values())]:
        counts[k] += 1
    counts.update(fixed)
    return Allocation({k: counts.get(k, 0) for k in sizes}, minimum_met)


# --- strata ---------------------------------------------------------------------------------


def parse_strata(text: str) -> tuple[str, ...]:
    """`sector,landsdel,size` → the stratum names; unknown or repeated names are an error."""
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in STRATA]
    if unknown:
        raise SamplingError(f"--strata: unknown stratum '{unknown[0]}' "
                            f"(use {', '.join(STRATA)})")
    if len(set(names)) != len(names):
        raise SamplingError("--strata: a stratum is named twice")
    return names


def stratum_of(contact: Contact, strata: tuple[str, ...]) -> StratumKey:
    """The stratum a contact belongs to, as a tuple of values in `strata` order."""
    return tuple(STRATA[name](contact) for name in strata)


def _known_order(name: str) -> tuple[str, ...]:
    """The natural order of a stratum's values (sectors as asked, sizes ascending)."""
    if name == "sector":
        return SECTORS
    if name == "size":
        return reference.SIZE_CLASSES
    if name == "landsdel":
        return reference.landsdeler()
    return ()


SortKey = tuple[tuple[int, str], ...]


def stratum_sort_key(strata: tuple[str, ...]) -> Callable[[StratumKey], SortKey]:
    """Orders stratum keys: known values in their natural order, then others alphabetically."""
    orders = [_known_order(name) for name in strata]

    def key(values: StratumKey) -> SortKey:
        return tuple((order.index(v) if v in order else len(order), v)
                     for order, v in zip(orders, values, strict=True))
    return key


def group(contacts: Iterable[Contact], strata: tuple[str, ...]) -> dict[StratumKey, list[Contact]]:
    """Contacts by stratum, strata in a fixed order, contacts in input order within each."""
    groups: dict[StratumKey, list[Contact]] = {}
    for contact in contacts:
        groups.setdefault(stratum_of(contact, strata), []).append(contact)
    return {k: groups[k] for k in sorted(groups, key=stratum_sort_key(strata))}


# --- drawing --------------------------------------------------------------------------------

#: Fresh seeds are drawn from this range: five digits, short enough to read off a summary
#: and type again.
SEED_RANGE = range(10_000, 100_000)


def new_seed() -> int:
    """A seed for a draw nobody chose one for (from the system's randomness, not the clock)."""
    return SEED_RANGE.start + secrets.randbelow(len(SEED_RANGE))



def draw(contacts: list[Contact], strata: tuple[str, ...], n: int, *, seed: int,
         minimum: int = 2) -> Sample:
    """A stratified random sample of `n` contacts (see the module docstring)."""
    groups = group(contacts, strata)
    allocation = allocate({key: len(units) for key, units in groups.items()}, n, minimum)
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    chosen: list[int] = []
    for key, units in groups.items():
        chosen.extend(c.line for c in rng.sample(units, allocation.counts[key]))
    rows = tuple(StratumRow(key, len(units), allocation.counts[key])
                 for key, units in groups.items())
    return Sample(strata, tuple(sorted(chosen)), rows, allocation.minimum_met)


def substitutes(frame: list[Contact], sample: list[Contact], gone: set[str],
                strata: tuple[str, ...], *, seed: int) -> Replacement:
    """One substitute from the same stratum for each sampled unit whose email is in `gone`.

    Candidates are frame units never drawn (not in `sample`) and not themselves in `gone`.
    """
    drawn = {c.email for c in sample}
    needed: dict[StratumKey, int] = {}
    for contact in sample:
        if contact.email in gone:
            key = stratum_of(contact, strata)
            needed[key] = needed.get(key, 0) + 1
    pools = group((c for c in frame if c.email not in drawn and c.email not in gone), strata)
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    chosen: list[int] = []
    rows: list[ReplacementRow] = []
    for key in sorted(needed, key=stratum_sort_key(strata)):
        pool = pools.get(key, [])
        picked = rng.sample(pool, min(needed[key], len(pool)))
        chosen.extend(c.line for c in picked)
        rows.append(ReplacementRow(key, needed[key], len(picked), len(pool) - len(picked)))
    return Replacement(strata, tuple(sorted(chosen)), tuple(rows), ())


# --- files ---------------------------------------------------------------------------------


def _rows_in(source: ContactsFile, lines: Iterable[int],
             header: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The cells of `lines` of `source`, rearranged into the columns of `header`."""
    index = {canonical_column(h): i for i, h in enumerate(source.table.header)}
    order = [index.get(canonical_column(h)) for h in header]
    result = []
    for line in lines:
        cells = source.parsed.cells[line]
        result.append(tuple(cells[i] if i is not None and i < len(cells) else "" for i in order))
    return result


def _write_like(path: str | Path, frame: CsvTable, rows: list[tuple[str, ...]]) -> None:
    """Write rows with the frame's header, separator and encoding, replacing `path` at once."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.part")
    write_table(temporary, frame.header, rows, encoding=frame.encoding,
                delimiter=frame.delimiter)
    temporary.replace(target)


def write_sample(frame: ContactsFile, out: str | Path, *, n: int, strata: tuple[str, ...],
                 seed: int, minimum: int = 2) -> Sample:
    """Draw a sample from a checked frame and write it to `out` (frame's columns and format)."""
    result = draw(frame.contacts, strata, n, seed=seed, minimum=minimum)
    _write_like(out, frame.table, _rows_in(frame, result.lines, frame.table.header))
    return result


def read_gone(path: str | Path) -> dict[str, int]:
    """Emails (normalised) in a bounced/left file, with their lines; it needs an email column."""
    table = read_table(path)
    columns = [i for i, h in enumerate(table.header) if canonical_column(h) == "email"]
    if not columns:
        raise ContactsError([f"{table.label}:1: missing required column 'email'"])
    emails: dict[str, int] = {}
    for line, cells in table.rows:
        if columns[0] < len(cells) and cells[columns[0]].strip():
            emails.setdefault(normalise_email(cells[columns[0]]), line)
    return emails


def write_replacement(frame: ContactsFile, sample: ContactsFile, gone_path: str | Path,
                      out: str | Path, *, strata: tuple[str, ...], seed: int) -> Replacement:
    """Draw substitutes for the units listed in `gone_path`; write the sample plus them to `out`.

    The written sample is the previous one (bounced units included) followed by the
    substitutes, in the frame's columns and format.
    """
    gone = read_gone(gone_path)
    sampled = {c.email for c in sample.contacts}
    warnings = tuple(f"{gone_path}:{line}: warning: '{email}' is not in the sample "
                     f"{sample.table.label} (ignored)"
                     for email, line in gone.items() if email not in sampled)
    result = substitutes(frame.contacts, sample.contacts, set(gone), strata, seed=seed)
    rows = _rows_in(sample, [c.line for c in sample.contacts], frame.table.header)
    rows += _rows_in(frame, result.lines, frame.table.header)
    _write_like(out, frame.table, rows)
    return Replacement(result.strata, result.lines, result.rows, warnings)
