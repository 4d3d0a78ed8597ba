"""The 2019 municipality list: numbers, names, counties, landsdeler, size classes, successors.

Why this exists: the barometer's frames and strata are the municipalities that existed in 2019
(422 kommuner, 18 fylker, 17 fylkeskommuner; Oslo is both kommune and fylke and has no
fylkeskommune), but the 2020 reform renumbered and merged most of them. Contacts name their
municipality by its 2019 number; everything else a respondent is stratified by (county,
landsdel, size class) is looked up here, never typed by hand.

The data is `storage/data/kommuner-2019.csv` (SSB classification 131 and StatBank 07459,
NLOD; see `storage/data/README.md`), shipped as package data and read once.

Landsdel is the NUTS-2 2016 region of the 2019 county (7 regions: Oslo og Akershus, Hedmark og
Oppland, Sør-Østlandet, Agder og Rogaland, Vestlandet, Trøndelag, Nord-Norge), the grouping KS
weighted on before the reform.

Size classes, by population on 1 January 2019. The bands keep KS's published cut-offs intact
("de minste kommunene, inntil 3000 innbyggere" and "større kommuner, mer enn 10 000"), and split
the large group at 50 000 so the 16 cities are not pooled with towns of 10 000:

=================  ===================  ==========
size class         population           kommuner
=================  ===================  ==========
``<3000``          under 3 000          158
``3000-9999``      3 000 – 9 999        151
``10000-49999``    10 000 – 49 999      97
``50000+``         50 000 and more      16
``fylkeskommune``  a county municipality (mayors' frame only), 17
=================  ===================  ==========

A county municipality is addressed by its 2-digit county number (``01`` Østfold … ``50``
Trøndelag); a kommune by its 4-digit number. Numbers that lost their leading zero in a
spreadsheet (``301``, ``1``) are repaired by `normalise_number`.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources

DATA_FILE = "kommuner-2019.csv"

#: (lower bound of the band, its label), ascending. See the module docstring.
SIZE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "<3000"),
    (3_000, "3000-9999"),
    (10_000, "10000-49999"),
    (50_000, "50000+"),
)
#: The size class of a county municipality (they are not comparable with kommuner).
SIZE_COUNTY = "fylkeskommune"
SIZE_CLASSES: tuple[str, ...] = (*(label for _, label in SIZE_BANDS), SIZE_COUNTY)

#: The 2019 county that is also a municipality and has no county municipality.
OSLO_COUNTY = "03"


@dataclass(frozen=True, slots=True)
class Successor:
    """A 2020 municipality that (part of) a 2019 municipality became."""

    number: str
    name: str
    county_no: str
    county: str


@dataclass(frozen=True, slots=True)
class Municipality:
    """One kommune as it was on 1 January 2019."""

    number: str
    name: str
    county_no: str
    county: str
    population: int
    landsdel_code: str
    landsdel: str
    change_2019_2020: str
    successors_2020: tuple[Successor, ...]

    @property
    def size_class(self) -> str:
        """The size class of the municipality (see the module docstring)."""
        return size_class(self.population)

    @property
    def names(self) -> tuple[str, ...]:
        """Every language form of the name (`Deatnu - Tana` → `Deatnu`, `Tana`)."""
        return tuple(part.strip() for part in self.name.split(" - "))


@dataclass(frozen=True, slots=True)
class CountyMunicipality:
    """One fylkeskommune as it was in 2019 (its mayor is in the mayors' frame)."""

    number: str
    county: str
    population: int
    landsdel_code: str
    landsdel: str

    @property
    def name(self) -> str:
        """The usual name, e.g. `Østfold fylkeskommune`."""
        return f"{self.county} fylkeskommune"

    @property
    def size_class(self) -> str:
        """Always `fylkeskommune`: a county is not sized like a kommune."""
        return SIZE_COUNTY


@dataclass(frozen=True, slots=True)
class Place:
    """What a respondent's municipality number resolves to: the strata stored with them."""

    number: str
    name: str
    county: str
    landsdel: str
    size_class: str
    is_county: bool


def size_class(population: int) -> str:
    """The size class label of a kommune with `population` inhabitants."""
    label = SIZE_BANDS[0][1]
    for lower, band in SIZE_BANDS:
        if population >= lower:
            label = band
    return label


def normalise_number(text: str) -> str:
    """A municipality or county number as written, with leading zeros a spreadsheet dropped.

    `301` → `0301`, `1` → `01`; anything that is not 1–4 digits is returned stripped and
    unchanged (it will not be found).
    """
    value = text.strip()
    if value.isascii() and value.isdigit():
        if len(value) == 3:
            return value.zfill(4)
        if len(value) == 1:
            return value.zfill(2)
    return value


def _read_rows() -> list[dict[str, str]]:
    text = resources.files("storage").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _successors(row: dict[str, str]) -> tuple[Successor, ...]:
    numbers = row["municipality_no_2020"].split("|")
    names = row["municipality_name_2020"].split("|")
    return tuple(Successor(number, name, number[:2], row["county_name_2020"])
                 for number, name in zip(numbers, names, strict=True))


@cache
def municipalities() -> dict[str, Municipality]:
    """Every 2019 kommune by 4-digit number, in number order (422)."""
    result: dict[str, Municipality] = {}
    for row in _read_rows():
        result[row["municipality_no_2019"]] = Municipality(
            number=row["municipality_no_2019"],
            name=row["municipality_name_2019"],
            county_no=row["county_no_2019"],
            county=row["county_name_2019"],
            population=int(row["population_2019_01_01"]),
            landsdel_code=row["landsdel_nuts2016_code"],
            landsdel=row["landsdel_nuts2016_name"],
            change_2019_2020=row["change_2019_2020"],
            successors_2020=_successors(row),
        )
    return result


@cache
def county_municipalities() -> dict[str, CountyMunicipality]:
    """Every 2019 fylkeskommune by 2-digit county number (17: every county but Oslo)."""
    members: dict[str, list[Municipality]] = {}
    for kommune in municipalities().values():
        members.setdefault(kommune.county_no, []).append(kommune)
    return {
        number: CountyMunicipality(
            number=number,
            county=kommuner[0].county,
            population=sum(k.population for k in kommuner),
            landsdel_code=kommuner[0].landsdel_code,
            landsdel=kommuner[0].landsdel,
        )
        for number, kommuner in sorted(members.items())
        if number != OSLO_COUNTY
    }


def municipality(number: str) -> Municipality | None:
    """The 2019 kommune with this number (leading zeros repaired), or None."""
    return municipalities().get(normalise_number(number))


def county_municipality(number: str) -> CountyMunicipality | None:
    """The 2019 fylkeskommune with this 2-digit county number, or None (also for Oslo)."""
    return county_municipalities().get(normalise_number(number))


def successors_2020(number: str) -> tuple[Successor, ...]:
    """The 2020 municipality (two or three for a split one) a 2019 kommune became part of."""
    kommune = municipality(number)
    return kommune.successors_2020 if kommune else ()


def landsdeler() -> tuple[str, ...]:
    """The 7 landsdel names (NUTS-2 2016), in code order."""
    pairs = {(k.landsdel_code, k.landsdel) for k in municipalities().values()}
    return tuple(name for _, name in sorted(pairs))


def place(number: str) -> Place | None:
    """The kommune (4 digits) or fylkeskommune (2 digits) a number names, as strata; or None."""
    kommune = municipality(number)
    if kommune is not None:
        return Place(kommune.number, kommune.name, kommune.county, kommune.landsdel,
                     kommune.size_class, is_county=False)
    county = county_municipality(number)
    if county is not None:
        return Place(county.number, county.name, county.county, county.landsdel,
                     county.size_class, is_county=True)
    return None


# --- numbers from after the 2020 reform -------------------------------------------------------
#
# Contact lists are often typed from a newer register, with the 2020 number (3401 Kongsvinger)
# where the barometer needs the 2019 one (0402). The list's 2020 successors, read backwards,
# say which 2019 municipality a 2020 number was, so the problem can name the number to use.


@cache
def _predecessors() -> dict[str, tuple[Municipality, ...]]:
    """2020 number → the 2019 kommuner that became (part of) it, for the numbers that are
    not 2019 numbers themselves."""
    found: dict[str, list[Municipality]] = {}
    for kommune in municipalities().values():
        for successor in kommune.successors_2020:
            if successor.number not in municipalities():
                found.setdefault(successor.number, []).append(kommune)
    return {number: tuple(kommuner) for number, kommuner in found.items()}


def predecessors_2019(number: str) -> tuple[Municipality, ...]:
    """The 2019 kommuner a 2020 municipality number was made of (one when it was only
    renumbered; a part of a split one included); empty when it is not a 2020 number or is a
    2019 number as well."""
    return _predecessors().get(normalise_number(number), ())


def successor_name_2020(number: str) -> str | None:
    """The name of the 2020 municipality with this number, if the list knows it."""
    wanted = normalise_number(number)
    for kommune in predecessors_2019(wanted):
        for successor in kommune.successors_2020:
            if successor.number == wanted:
                return successor.name
    return None


@cache
def _county_predecessors() -> dict[str, tuple[str, tuple[str, ...]]]:
    """2020 county number → (its name, the 2019 county numbers merged into it), for the
    2020 counties that are not 2019 ones.

    A 2019 county belongs to the 2020 county most of its kommuner went to: Jevnaker and
    Lunner moving from Oppland to Viken do not make Oppland part of Viken.
    """
    votes: dict[str, Counter[str]] = {}
    names: dict[str, str] = {}
    for kommune in municipalities().values():
        successor = kommune.successors_2020[0]
        names[successor.county_no] = successor.county
        votes.setdefault(kommune.county_no, Counter())[successor.county_no] += 1
    merged: dict[str, list[str]] = {}
    for county_2019, counts in sorted(votes.items()):
        merged.setdefault(counts.most_common(1)[0][0], []).append(county_2019)
    return {number: (names[number], tuple(olds)) for number, olds in merged.items()
            if number not in county_municipalities() and number != OSLO_COUNTY}


def county_predecessors_2019(number: str) -> tuple[CountyMunicipality, ...]:
    """The 2019 fylkeskommuner a 2020 county number was made of (34 Innlandet: 04 Hedmark
    and 05 Oppland); empty when it is not a 2020 county number or is a 2019 one as well."""
    _name, olds = _county_predecessors().get(normalise_number(number), ("", ()))
    return tuple(county_municipalities()[old] for old in olds)


def county_name_2020(number: str) -> str | None:
    """The name of the 2020 county with this number, if it is one that replaced 2019 ones."""
    found = _county_predecessors().get(normalise_number(number))
    return found[0] if found else None


def _name_key(name: str) -> str:
    """A name as it is compared: case and spacing ignored, a trailing "kommune" dropped."""
    key = " ".join(name.casefold().split())
    for suffix in (" fylkeskommune", " kommune"):
        key = key.removesuffix(suffix)
    return key


def named_2019(name: str) -> tuple[Place, ...]:
    """The 2019 kommuner (or, failing that, fylkeskommuner) called `name` in any of its
    language forms, in number order; several when the name was shared (Våler, Nes, Os …)."""
    wanted = _name_key(name)
    if not wanted:
        return ()
    kommuner = tuple(found for kommune in municipalities().values()
                     if wanted in {_name_key(form) for form in (kommune.name, *kommune.names)}
                     and (found := place(kommune.number)) is not None)
    if kommuner:
        return kommuner
    return tuple(found for county in county_municipalities().values()
                 if wanted == _name_key(county.county)
                 and (found := place(county.number)) is not None)


def named_2020(name: str) -> tuple[Municipality, ...]:
    """The 2019 kommuner that became the 2020 municipality called `name` (Indre Østfold:
    Askim, Eidsberg, Hobøl, Spydeberg and Trøgstad), in number order; empty when no 2020
    municipality has that name."""
    wanted = _name_key(name)
    if not wanted:
        return ()
    return tuple(kommune for kommune in municipalities().values()
                 if any(wanted in {_name_key(successor.name),
                                   *(_name_key(part) for part in successor.name.split(" - "))}
                        for successor in kommune.successors_2020))
