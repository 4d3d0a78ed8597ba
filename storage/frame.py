"""Synthetic sampling frames for the demo and the tests, built on the real municipality list.

Why synthetic: real contact lists hold personal data and cannot ship with svarbot, yet the demo
and the tests need frames with the shape of the real ones: many units in Oslo and Bergen, a few
in Utsira, mostly schools, kindergartens and care, and a mayor for every 2019 kommune and
fylkeskommune (422 + 17 = 439). Everything is drawn from `random.Random(seed)`, so a frame is
the same on every machine for the same seed.

Unit leaders: units are shared among kommuner in proportion to `UNIT_BASE + population /
PEOPLE_PER_UNIT` (a small kommune still has a school, a nursing home and a NAV office), each
unit gets a sector by `SECTOR_WEIGHTS` and a unit type of that sector (upper secondary schools
are the counties', so they are not among them). Names are common Norwegian first names and
surnames; addresses are `fornavn.etternavn@<kommune>.kommune.no`, folded to ASCII the way
Norwegian domains are (æ → ae, ø → o, å → a). Kommuner in nynorsk areas get `lang` nn more
often. The output is a contacts file (`storage.contacts.COLUMNS`) that `svarbot import` and
`svarbot sample` accept as it is.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from storage import reference
from storage.contacts import COLUMNS, UNIT_TYPES, write_table
from storage.sampling import allocate

UNIT_BASE = 6
PEOPLE_PER_UNIT = 700

SECTOR_WEIGHTS: dict[str, int] = {"helse": 33, "oppvekst": 42, "sosial": 8, "kultur": 7,
                                  "teknisk": 10}
#: Relative frequency of unit types within their sector (vgs belongs to the counties).
UNIT_TYPE_WEIGHTS: dict[str, int] = {
    "sykehjem": 30, "hjemmetjeneste": 25, "helsestasjon": 10, "funksjonsevne": 20,
    "psykisk_helse": 10, "legetjeneste": 5,
    "barnehage": 50, "grunnskole": 40, "sfo": 10, "vgs": 0,
    "barnevern": 40, "nav": 40, "flyktning": 20,
    "bibliotek": 45, "kulturskole": 35, "kultur_fritid": 20,
    "vann_avlop": 30, "vei_park": 25, "eiendom": 25, "plan_byggesak": 20,
}
#: Share of respondents writing nynorsk, by 2019 county number (others: bokmål).
NYNORSK_SHARE: dict[str, float] = {"14": 0.9, "12": 0.6, "15": 0.5, "05": 0.3, "11": 0.2,
                                   "08": 0.2, "10": 0.1, "06": 0.1}
#: Norwegian name where the 2019 name puts a Sami form first (domains use the Norwegian one).
DOMAIN_NAMES: dict[str, str] = {
    "1849": "hamaroy", "1852": "tjeldsund", "1920": "lavangen", "1940": "kafjord",
    "2011": "kautokeino", "2021": "karasjok", "2025": "tana", "2027": "nesseby",
    "5041": "snasa", "5043": "royrvik",
}
#: Short county codes for telling apart kommuner with the same name (valer-of, valer-he).
COUNTY_SHORT: dict[str, str] = {
    "01": "of", "02": "ak", "03": "os", "04": "he", "05": "op", "06": "bu", "07": "vf",
    "08": "te", "09": "aa", "10": "va", "11": "ro", "12": "ho", "14": "sf", "15": "mr",
    "18": "no", "19": "tr", "20": "fi", "50": "tl",
}

FIRST_NAMES = (
    "Anne", "Inger", "Kari", "Marit", "Ingrid", "Liv", "Eva", "Berit", "Astrid", "Bjørg",
    "Hilde", "Solveig", "Marianne", "Randi", "Ida", "Nina", "Maria", "Elisabeth", "Kristin",
    "Ragnhild", "Silje", "Heidi", "Tone", "Ingunn", "Gro", "Siri", "Camilla", "Linda", "Hanne",
    "Åse", "Kjersti", "Synnøve", "Guro", "Torunn", "Sigrid", "Mette", "Trine", "Aud", "Sølvi",
    "Jan", "Per", "Bjørn", "Ole", "Lars", "Kjell", "Knut", "Arne", "Svein", "Thomas", "Hans",
    "Geir", "Tor", "Morten", "Terje", "Odd", "Erik", "Martin", "Andreas", "Rune", "Trond",
    "Anders", "Tore", "Jon", "Harald", "Espen", "Øyvind", "Eirik", "Magnus", "Håkon",
    "Steinar", "Jørgen", "Audun", "Gunnar", "Olav", "Torbjørn", "Stian", "Vidar", "Egil",
    "Ali", "Mohammed", "Fatima", "Anna", "Tomasz", "Piotr",
)
SURNAMES = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen",
    "Lund", "Sørensen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg", "Svendsen", "Eide",
    "Knutsen", "Martinsen", "Paulsen", "Bakken", "Kristoffersen", "Mathisen", "Lie", "Amundsen",
    "Rasmussen", "Lunde", "Solheim", "Nygård", "Bakke", "Moe", "Holm", "Lien", "Hauge", "Aas",
    "Myhre", "Haugland", "Sæther", "Ødegård", "Berge", "Mikkelsen", "Fjeld", "Aune", "Kvam",
    "Hovland", "Bø", "Ås", "Sletten", "Vik", "Brekke", "Tveit", "Rønning", "Nguyen", "Ahmed",
    "Khan", "Nowak",
)


def ascii_fold(text: str) -> str:
    """Lower-case ASCII as Norwegian addresses spell it: `Bærum` → `baerum`, `Tromsø` → `tromso`."""
    text = text.lower().replace("æ", "ae").replace("ø", "o").replace("å", "a")
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if ch.isascii())


def _slug(text: str) -> str:
    folded = ascii_fold(text)
    kept = "".join(ch if ch.isalnum() else "-" for ch in folded)
    return "-".join(part for part in kept.split("-") if part)


def municipal_domains() -> dict[str, str]:
    """`<kommune>.kommune.no` for every 2019 kommune; same names get a county suffix."""
    kommuner = reference.municipalities()
    base = {no: DOMAIN_NAMES.get(no) or _slug(k.names[0]) for no, k in kommuner.items()}
    clashes = {name for name, count in Counter(base.values()).items() if count > 1}
    return {no: (f"{name}-{COUNTY_SHORT[kommuner[no].county_no]}" if name in clashes else name)
            + ".kommune.no" for no, name in base.items()}


def county_domains() -> dict[str, str]:
    """`<fylke>fylke.no` for every 2019 fylkeskommune."""
    return {no: f"{_slug(c.county).replace('-', '')}fylke.no"
            for no, c in reference.county_municipalities().items()}


class _People:
    """Draws names and keeps every address unique."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def address(self, domain: str) -> tuple[str, str]:
        first, last = self._rng.choice(FIRST_NAMES), self._rng.choice(SURNAMES)
        local = f"{_slug(first)}.{_slug(last)}"
        email, number = f"{local}@{domain}", 1
        while email in self._used:
            number += 1
            email = f"{local}{number}@{domain}"
        self._used.add(email)
        return f"{first} {last}", email


def _lang(rng: random.Random, county_no: str) -> str:
    return "nn" if rng.random() < NYNORSK_SHARE.get(county_no, 0.0) else "nb"


def _phone(rng: random.Random) -> str:
    return f"+47 {rng.choice('49')}{rng.randint(0, 99):02d} {rng.randint(0, 99):02d} " \
           f"{rng.randint(0, 999):03d}"


def _telegram(rng: random.Random, email: str) -> str:
    if rng.random() >= 0.1:
        return ""
    return email.split("@")[0].replace(".", "_").replace("-", "_")[:32]


def _unit(rng: random.Random) -> tuple[str, str]:
    sector = rng.choices(list(SECTOR_WEIGHTS), weights=list(SECTOR_WEIGHTS.values()))[0]
    types = UNIT_TYPES[sector]
    return sector, rng.choices(types, weights=[UNIT_TYPE_WEIGHTS[t] for t in types])[0]


def units_per_municipality(units: int) -> dict[str, int]:
    """How many unit leaders each kommune gets in a frame of `units`."""
    kommuner = reference.municipalities()
    weights = {no: UNIT_BASE * PEOPLE_PER_UNIT + k.population for no, k in kommuner.items()}
    return allocate(weights, units).counts


def unit_leader_rows(units: int, seed: int) -> Iterator[tuple[str, ...]]:
    """`units` rows of unit leaders (contacts columns), reproducible for `seed`."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not a secret
    people, domains = _People(rng), municipal_domains()
    kommuner = reference.municipalities()
    for number, count in units_per_municipality(units).items():
        kommune = kommuner[number]
        for _ in range(count):
            name, email = people.address(domains[number])
            sector, unit_type = _unit(rng)
            yield (name, email, "unit_leader", number, kommune.name, sector, unit_type,
                   _phone(rng), _telegram(rng, email), _lang(rng, kommune.county_no))


def mayor_rows(seed: int) -> Iterator[tuple[str, ...]]:
    """One mayor per 2019 kommune (422) and fylkeskommune (17): 439 rows."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not a secret
    people, domains, counties = _People(rng), municipal_domains(), county_domains()
    for number, kommune in reference.municipalities().items():
        name, email = people.address(domains[number])
        yield (name, email, "mayor", number, kommune.name, "", "", _phone(rng),
               _telegram(rng, email), _lang(rng, kommune.county_no))
    for number, county in reference.county_municipalities().items():
        name, email = people.address(counties[number])
        yield (name, email, "mayor", number, county.name, "", "", _phone(rng),
               _telegram(rng, email), _lang(rng, number))


def write_frame(out: str | Path, *, units: int = 0, mayors: bool = False,
                seed: int = 2019) -> int:
    """Write a unit-leader frame of `units` rows, or the mayors' frame; returns the row count."""
    rows = list(mayor_rows(seed) if mayors else unit_leader_rows(units, seed))
    write_table(out, COLUMNS, rows)
    return len(rows)
