"""Contact lists: read a CSV as Excel writes it, check every row, then import all or nothing.

Why so strict: a contact list is typed by people, in Excel, and one wrong municipality number
or a sector spelt three ways ends up as a wrong stratum in a published table. So every row is
checked before anything is written, every problem is reported with its physical line
(`CONTACTS.csv:17: email 'x@' is not an address`; the header is line 1), and a file with any
problem imports nothing.

Why idempotent: lists are corrected and re-imported during a campaign. The email address is the
key: re-importing the same file changes nothing; an edited row updates the respondent and keeps
their invitation (token, status, conversation). An address that changed is a new person.

The format (also what `svarbot sample` and `svarbot demo-frame` read and write):

- UTF-8 with or without BOM, UTF-16 with BOM, or Windows-1252 (Excel's "CSV (semikolonseparert)");
  `,`, `;` or tab separators, sniffed from the header line. Header names are case-insensitive,
  and the Norwegian names in `HEADER_ALIASES` work too (`navn`, `e-post`, `kommunenr`, `sektor` …).
- Required columns: `name`, `email`, `role` (`unit_leader`/`virksomhetsleder` or
  `mayor`/`ordfører`), `municipality_no` (4-digit 2019 kommune number, or the 2-digit county
  number for a fylkeskommune); `sector` (`helse`, `oppvekst`, `sosial`, `kultur`, `teknisk`,
  the option ids of item `sektor` in virksomhetsleder-2020) is required for unit leaders.
- Optional: `unit_type` (an option id of item `enhetstype` that fits the sector), `phone`,
  `telegram`, `lang` (`nb`, `nn`, `en`), and `municipality_name`, `county`, `landsdel`,
  `size_class`, which are ignored: they always come from the reference list
  (`storage.reference`). A `municipality_name` that does not match the number is a warning.

Nothing here logs an address or a name; the log gets counts only.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage import reference
from storage.identity import ensure_survey, normalise_email
from storage.schema import (
    Invitation,
    InvitationStatus,
    Respondent,
    RespondentRole,
    SurveyStatus,
)
from storage.tokens import new_token

log = logging.getLogger(__name__)

#: The item `sektor` of virksomhetsleder-2020: option ids, in questionnaire order.
SECTORS: tuple[str, ...] = ("helse", "oppvekst", "sosial", "kultur", "teknisk")
#: The item `enhetstype` of virksomhetsleder-2020: option ids by the sector they belong to.
UNIT_TYPES: dict[str, tuple[str, ...]] = {
    "helse": ("sykehjem", "hjemmetjeneste", "helsestasjon", "funksjonsevne", "psykisk_helse",
              "legetjeneste"),
    "oppvekst": ("barnehage", "grunnskole", "sfo", "vgs"),
    "sosial": ("barnevern", "nav", "flyktning"),
    "kultur": ("bibliotek", "kulturskole", "kultur_fritid"),
    "teknisk": ("vann_avlop", "vei_park", "eiendom", "plan_byggesak"),
}
#: The `enhetstype` option that fits every sector.
UNIT_TYPE_OTHER = "annet"

REQUIRED_COLUMNS: tuple[str, ...] = ("name", "email", "role", "municipality_no")
OPTIONAL_COLUMNS: tuple[str, ...] = ("sector", "unit_type", "phone", "telegram", "lang",
                                     "municipality_name", "county", "landsdel", "size_class")
#: The columns svarbot writes, in this order (demo frames, samples of them).
COLUMNS: tuple[str, ...] = ("name", "email", "role", "municipality_no", "municipality_name",
                            "sector", "unit_type", "phone", "telegram", "lang")

HEADER_ALIASES: dict[str, str] = {
    "navn": "name", "namn": "name", "fullt_navn": "name",
    "e_post": "email", "epost": "email", "e_mail": "email", "mail": "email",
    "e_postadresse": "email",
    "rolle": "role",
    "kommunenr": "municipality_no", "kommunenummer": "municipality_no", "knr": "municipality_no",
    "kommune_nr": "municipality_no", "municipality": "municipality_no",
    "kommune": "municipality_name", "kommunenavn": "municipality_name",
    "sektor": "sector",
    "enhetstype": "unit_type", "virksomhetstype": "unit_type", "type": "unit_type",
    "telefon": "phone", "mobil": "phone", "mobile": "phone", "tlf": "phone",
    "språk": "lang", "sprak": "lang", "målform": "lang", "language": "lang",
    "fylke": "county", "størrelse": "size_class", "size": "size_class",
}

ROLE_ALIASES: dict[str, RespondentRole] = {
    **dict.fromkeys(("unit_leader", "unit leader", "virksomhetsleder", "verksemdsleiar",
                     "enhetsleder", "einingsleiar", "leder", "leiar"),
                    RespondentRole.UNIT_LEADER),
    **dict.fromkeys(("mayor", "ordfører", "ordforer", "ordførar", "ordforar",
                     "fylkesordfører", "fylkesordførar", "fylkesordforer"),
                    RespondentRole.MAYOR),
}
SECTOR_ALIASES: dict[str, str] = {
    **{sector: sector for sector in SECTORS},
    "helse og omsorg": "helse", "omsorg": "helse",
    "oppvekst og utdanning": "oppvekst", "utdanning": "oppvekst",
    "sosiale tjenester": "sosial", "sosiale tenester": "sosial",
    "teknisk sektor": "teknisk",
}
LANG_ALIASES: dict[str, str] = {
    "nb": "nb", "no": "nb", "bokmål": "nb", "bokmal": "nb",
    "nn": "nn", "nynorsk": "nn",
    "en": "en", "english": "en", "engelsk": "en",
}

_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}$")
_PHONE = re.compile(r"^\+?[0-9]{8,15}$")
_TELEGRAM = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]{4,31}|-?[0-9]{1,20})$")
_CHUNK = 500
_BULK = {"render_nulls": True}
_ANALYZE_FROM = 1000
_DRY_RUN = "svarbot.contacts.dry_run"


class ContactsError(Exception):
    """The file cannot be used; `problems` lists every reason as `FILE:LINE: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if problems else "contacts file has problems")
        self.problems = problems


class SurveyClosedError(Exception):
    """The survey is closed or sealed: no one can be invited to it any more."""


@dataclass(frozen=True, slots=True)
class CsvTable:
    """A CSV file as read: its encoding and separator (to write alike), header and rows."""

    label: str
    encoding: str
    delimiter: str
    header: tuple[str, ...]
    #: (physical line where the record starts, its cells), blank lines left out.
    rows: tuple[tuple[int, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class Contact:
    """One checked row: the respondent's details, strata from the reference list."""

    line: int
    name: str
    email: str
    role: RespondentRole
    municipality_no: str
    municipality_name: str
    county: str
    landsdel: str
    size_class: str
    sector: str | None
    unit_type: str | None
    phone: str | None
    telegram: str | None
    #: None when the row leaves it empty: keep the respondent's, or the survey default.
    lang: str | None


@dataclass(slots=True)
class Parsed:
    """The outcome of checking a table: contacts (only if no problems), problems, warnings."""

    contacts: list[Contact] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The checked rows' cells, by line (for writing a sample in the frame's own columns).
    cells: dict[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did (or, in a dry run, would do)."""

    new: int
    updated: int
    unchanged: int
    #: Invited to this survey earlier but not in this file (they are kept as they are).
    not_in_file: int

    def summary(self) -> str:
        """`3 new, 1 updated, 40 unchanged` (and the ones not in the file, if any)."""
        text = f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged"
        if self.not_in_file:
            text += f"; {self.not_in_file} invited earlier and not in this file (kept)"
        return text


# --- reading --------------------------------------------------------------------------------


def _decode(data: bytes, label: str) -> tuple[str, str]:
    """The text and the encoding it was in: BOM first, then UTF-8, then Windows-1252."""
    try:
        if data.startswith(codecs.BOM_UTF8):
            return data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8-sig"
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return data.decode("utf-16"), "utf-16"
    except UnicodeDecodeError as exc:
        raise ContactsError([f"{label}: not valid text after its byte-order mark ({exc.reason} "
                             f"at byte {exc.start})"]) from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise ContactsError([f"{label}: neither UTF-8 nor Windows-1252 text "
                             f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"]) from exc


def sniff_delimiter(header_line: str) -> str:
    """The separator of a CSV file from its header line: `;`, tab or `,` (the default)."""
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _records(text: str, delimiter: str, label: str) -> Iterator[tuple[int, tuple[str, ...]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                yield line, tuple(cells)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ContactsError([f"{label}:{line}: not valid CSV: {exc}"]) from exc


def parse_table(data: bytes, label: str) -> CsvTable:
    """Decode and split a CSV file; the first non-blank record is the header."""
    text, encoding = _decode(data, label)
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    records = list(_records(text, delimiter, label))
    if not records:
        raise ContactsError([f"{label}:1: the file is empty (expected a header row)"])
    (_, header), *rows = records
    return CsvTable(label, encoding, delimiter, tuple(h.strip().lstrip("\ufeff") for h in header),
                    tuple(rows))


def read_table(path: str | Path) -> CsvTable:
    """Read a CSV file; its label in messages is the path as given."""
    label = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ContactsError([f"{label}: cannot read the file: {exc.strerror or exc}"]) from exc
    return parse_table(data, label)


def write_table(path: str | Path, header: Iterable[str], rows: Iterable[Iterable[str]], *,
                encoding: str = "utf-8", delimiter: str = ",") -> None:
    """Write a CSV file (CRLF line ends, as Excel does) in the given encoding and separator."""
    with Path(path).open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(list(header))
        writer.writerows(list(row) for row in rows)


# --- checking -------------------------------------------------------------------------------


def canonical_column(name: str) -> str:
    """The svarbot column a header cell names (`E-post` → `email`), or its normalised self."""
    key = name.strip().casefold().replace(" ", "_").replace("-", "_").rstrip(".")
    return HEADER_ALIASES.get(key, key)


def _column_map(table: CsvTable, parsed: Parsed) -> dict[str, int]:
    """Column name → index; problems for duplicates and missing columns, warnings for unknown."""
    where = f"{table.label}:1"
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    columns: dict[str, int] = {}
    for index, raw in enumerate(table.header):
        name = canonical_column(raw)
        if not name:
            continue
        if name in columns:
            parsed.problems.append(f"{where}: column '{name}' appears twice "
                                   f"(columns {columns[name] + 1} and {index + 1})")
        elif name not in known:
            guess = difflib.get_close_matches(name, sorted(known | set(HEADER_ALIASES)), n=1,
                                              cutoff=0.75)
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            parsed.warnings.append(f"{where}: column '{raw}' is not used{hint}")
        columns.setdefault(name, index)
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            parsed.problems.append(f"{where}: missing required column '{name}'")
    return columns


def is_email(address: str) -> bool:
    """Whether a (normalised) address looks deliverable: local@domain.tld, no spaces."""
    return len(address) <= 320 and bool(_EMAIL.match(address))


class _Row:
    """One record being checked; collects its problems with the line number."""

    def __init__(self, table: CsvTable, line: int, cells: tuple[str, ...],
                 columns: dict[str, int]) -> None:
        self.line = line
        self.where = f"{table.label}:{line}"
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self._cells = cells
        self._columns = columns
        if len(cells) > len(table.header) and any(c.strip() for c in cells[len(table.header):]):
            self.problem(f"{len(cells)} fields, but the header has {len(table.header)} "
                         f"(a separator inside a value needs quotes)")

    def get(self, column: str) -> str:
        index = self._columns.get(column)
        if index is None or index >= len(self._cells):
            return ""
        return self._cells[index].strip()

    def has(self, column: str) -> bool:
        return column in self._columns

    def problem(self, message: str) -> None:
        self.problems.append(f"{self.where}: {message}")

    def warning(self, message: str) -> None:
        self.warnings.append(f"{self.where}: warning: {message}")

    def required(self, column: str) -> str:
        value = self.get(column)
        if not value and self.has(column):
            self.problem(f"{column} is empty")
        return value


def _check_name(row: _Row) -> str:
    name = " ".join(row.required("name").split())
    if len(name) > 200:
        row.problem(f"name is {len(name)} characters long (at most 200)")
    return name


def _check_email(row: _Row) -> str:
    raw = row.required("email")
    email = normalise_email(raw)
    if email and not is_email(email):
        row.problem(f"email '{raw}' is not an address")
    return email


def _check_role(row: _Row) -> RespondentRole | None:
    raw = row.required("role")
    role = ROLE_ALIASES.get(raw.casefold())
    if raw and role is None:
        row.problem(f"role '{raw}' is not known (use unit_leader/virksomhetsleder "
                    f"or mayor/ordfører)")
    return role


def _check_place(row: _Row) -> reference.Place | None:
    """The 2019 municipality the row names; a number from after the 2020 reform (or one the
    list does not know, with a name it does) is a problem that says which 2019 number to use."""
    raw = row.required("municipality_no")
    if not raw:
        return None
    found = reference.place(raw)
    if found is None:
        row.problem(_not_a_2019_number(raw, row.get("municipality_name")))
        return None
    given = row.get("municipality_name")
    if given and not _same_place_name(given, found):
        row.warning(f"municipality_name '{given}' does not match {found.number} {found.name} "
                    f"(the reference name is used)")
    return found


#: The end of a problem that lists several 2019 municipalities.
_CHOOSE = "use the number of the respondent's 2019 municipality"


def _not_a_2019_number(raw: str, given: str) -> str:
    """Why `raw` is refused, naming the 2019 number when the reference list knows it: the
    2019 municipality a 2020 number was (the one called `given`, if it was made of several),
    the 2019 counties of a 2020 county number, or the 2019 number of the name given."""
    head = f"municipality_no '{raw}'"
    kommuner = [(k.number, k.name) for k in reference.predecessors_2019(raw)]
    counties = [(c.number, c.name) for c in reference.county_predecessors_2019(raw)]
    if kommuner:
        return head + _was(kommuner, given, "a 2020 number", reference.successor_name_2020(raw))
    if counties:
        return head + _was(counties, given, "a 2020 county number",
                           reference.county_name_2020(raw))
    if given:
        named = reference.named_2019(given)
        if named:
            where = (named[0].number if len(named) == 1 else
                     " or ".join(f"{p.number} ({p.county})" for p in named))
            return (f"{head} is not a 2019 municipality number; in 2019 {named[0].name} was "
                    f"{where}")
        made_of = [(k.number, k.name) for k in reference.named_2020(given)]
        if made_of:
            return (f"{head} is not a 2019 municipality number; {given} was made in 2020 of "
                    f"{_listed(made_of, 'and')}: {_CHOOSE}")
    return (f"{head} is not a 2019 municipality (4 digits) or county municipality "
            f"(2 digits)")


def _was(olds: list[tuple[str, str]], given: str, what: str, new_name: str | None) -> str:
    """` is a 2020 number; in 2019 Kongsvinger was 0402`, or the choice when it was
    made of several (the one called `given` when it is among them)."""
    called = {place.number for place in reference.named_2019(given)} if given else set()
    chosen = [old for old in olds if old[0] in called]
    if len(olds) == 1 or len(chosen) == 1:
        number, name = (chosen or olds)[0]
        return f" is {what}; in 2019 {name} was {number}"
    named = f" ({new_name})" if new_name else ""
    return f" is {what}{named}; in 2019 it was {_listed(olds, 'or')}: {_CHOOSE}"


def _listed(places: list[tuple[str, str]], word: str) -> str:
    """`0104 Moss or 0136 Rygge`, `a, b and c`."""
    said = [f"{number} {name}" for number, name in places]
    return said[0] if len(said) == 1 else f"{', '.join(said[:-1])} {word} {said[-1]}"


def _same_place_name(given: str, found: reference.Place) -> bool:
    wanted = given.casefold()
    forms = [found.name, *found.name.split(" - "), found.county]
    return any(wanted == form.strip().casefold() for form in forms)


def _check_sector(row: _Row, role: RespondentRole | None) -> tuple[str | None, str | None]:
    raw_sector, raw_type = row.get("sector"), row.get("unit_type")
    if role is RespondentRole.MAYOR:
        if raw_sector or raw_type:
            row.warning("sector and unit_type are ignored for a mayor")
        return None, None
    if not raw_sector:
        if role is RespondentRole.UNIT_LEADER and row.has("sector"):
            row.problem("sector is empty (required for a unit leader)")
        return None, None
    sector = SECTOR_ALIASES.get(raw_sector.casefold())
    if sector is None:
        row.problem(f"sector '{raw_sector}' is not known (use {', '.join(SECTORS)})")
        return None, None
    unit_type = raw_type.casefold() or None
    if unit_type is not None and unit_type not in (*UNIT_TYPES[sector], UNIT_TYPE_OTHER):
        choices = ", ".join((*UNIT_TYPES[sector], UNIT_TYPE_OTHER))
        row.problem(f"unit_type '{raw_type}' is not a unit type of sector {sector} "
                    f"(use {choices})")
        unit_type = None
    return sector, unit_type


def _check_phone(row: _Row) -> str | None:
    raw = row.get("phone")
    if not raw:
        return None
    compact = re.sub(r"[\s().-]", "", raw)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _PHONE.match(compact):
        row.problem(f"phone '{raw}' is not a phone number")
        return None
    return compact


def _check_telegram(row: _Row) -> str | None:
    raw = row.get("telegram")
    if not raw:
        return None
    handle = raw.removeprefix("@")
    if not _TELEGRAM.match(handle):
        row.problem(f"telegram '{raw}' is neither a Telegram username nor a chat id")
        return None
    return handle


def _check_lang(row: _Row) -> str | None:
    raw = row.get("lang")
    if not raw:
        return None
    lang = LANG_ALIASES.get(raw.casefold())
    if lang is None:
        row.problem(f"lang '{raw}' is not known (use nb, nn or en)")
    return lang


def _check_row(row: _Row) -> Contact | None:
    name, email, role = _check_name(row), _check_email(row), _check_role(row)
    found = _check_place(row)
    sector, unit_type = _check_sector(row, role)
    phone, telegram, lang = _check_phone(row), _check_telegram(row), _check_lang(row)
    if row.problems or role is None or found is None:
        return None
    return Contact(line=row.line, name=name, email=email, role=role,
                   municipality_no=found.number, municipality_name=found.name,
                   county=found.county, landsdel=found.landsdel, size_class=found.size_class,
                   sector=sector, unit_type=unit_type, phone=phone, telegram=telegram, lang=lang)


def _check_duplicates(contacts: list[Contact], label: str, parsed: Parsed) -> None:
    """One row per address, and one mayor per municipality."""
    first_email: dict[str, int] = {}
    first_mayor: dict[str, int] = {}
    for contact in contacts:
        seen = first_email.setdefault(contact.email, contact.line)
        if seen != contact.line:
            parsed.problems.append(f"{label}:{contact.line}: email '{contact.email}' "
                                   f"is already on line {seen}")
        if contact.role is RespondentRole.MAYOR:
            seen = first_mayor.setdefault(contact.municipality_no, contact.line)
            if seen != contact.line:
                parsed.problems.append(
                    f"{label}:{contact.line}: a second mayor of {contact.municipality_no} "
                    f"{contact.municipality_name} (the first is on line {seen})")


def check_table(table: CsvTable) -> Parsed:
    """Check every row of a contacts table; `contacts` is filled only if there is no problem."""
    parsed = Parsed()
    columns = _column_map(table, parsed)
    if any(c not in columns for c in REQUIRED_COLUMNS):
        return parsed
    contacts: list[Contact] = []
    needs_sector = "sector" not in columns
    for line, cells in table.rows:
        row = _Row(table, line, cells, columns)
        contact = _check_row(row)
        parsed.problems.extend(row.problems)
        parsed.warnings.extend(row.warnings)
        if contact is not None:
            contacts.append(contact)
            parsed.cells[line] = cells
        if needs_sector and ROLE_ALIASES.get(row.get("role").casefold()) is \
                RespondentRole.UNIT_LEADER:
            parsed.problems.insert(0, f"{table.label}:1: missing required column 'sector' "
                                      f"(needed for unit leaders, first on line {line})")
            needs_sector = False
    _check_duplicates(contacts, table.label, parsed)
    parsed.problems.sort(key=_line_of)
    if not parsed.problems:
        parsed.contacts = contacts
    return parsed


def _line_of(problem: str) -> int:
    match = re.search(r":(\d+): ", problem)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True, slots=True)
class ContactsFile:
    """A checked contacts file: the table as read and its contacts."""

    table: CsvTable
    parsed: Parsed

    @property
    def contacts(self) -> list[Contact]:
        """The checked contacts, in file order."""
        return self.parsed.contacts


def load_contacts(path: str | Path) -> ContactsFile:
    """Read and check a contacts file; raises ContactsError listing every problem."""
    table = read_table(path)
    parsed = check_table(table)
    if parsed.problems:
        raise ContactsError(parsed.problems)
    return ContactsFile(table, parsed)


# --- importing ------------------------------------------------------------------------------


def database_ready(engine: Engine) -> bool:
    """Whether the database has the tables an import writes to."""
    names = set(inspect(engine).get_table_names())
    return {"surveys", "respondents", "invitations"} <= names


def _ensure_survey(session: Session, survey_id: str, questionnaire: str) -> None:
    """Create the survey if missing; refuse one that no longer takes invitations."""
    survey = ensure_survey(session, survey_id, questionnaire)
    if survey.status != SurveyStatus.OPEN:
        raise SurveyClosedError(f"survey {survey_id} is {survey.status}; nothing imported")


def _existing(session: Session, emails: list[str]) -> dict[str, Respondent]:
    found: dict[str, Respondent] = {}
    for start in range(0, len(emails), _CHUNK):
        # Ids by address first: on PostgreSQL, whole rows filtered by a long IN list of
        # bound addresses took ~0.4 s per chunk; this form takes milliseconds.
        ids = select(Respondent.id).where(Respondent.email.in_(emails[start:start + _CHUNK]))
        for respondent in session.scalars(select(Respondent).where(Respondent.id.in_(ids))):
            found[respondent.email] = respondent
    return found


def _invited(session: Session, survey_id: str) -> set[int]:
    query = select(Invitation.respondent_id).where(Invitation.survey_id == survey_id)
    return set(session.scalars(query))


def _fields(contact: Contact, lang: str) -> dict[str, object]:
    """The respondent columns a row sets (email is the key and is not among them)."""
    return {
        "name": contact.name, "role": contact.role.value,
        "municipality_no": contact.municipality_no,
        "municipality_name": contact.municipality_name, "county": contact.county,
        "landsdel": contact.landsdel, "size_class": contact.size_class,
        "sector": contact.sector, "unit_type": contact.unit_type, "phone": contact.phone,
        "telegram": contact.telegram, "lang": lang,
    }


def _update(respondent: Respondent, values: dict[str, object]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(respondent, name) != value:
            setattr(respondent, name, value)
            changed = True
    return changed


def _refresh_statistics(session: Session, table: str, inserted: int) -> None:
    """After a bulk load, let PostgreSQL's planner know the table's new size.

    Until autovacuum gets to it, the planner believes a freshly filled table is tiny, and the
    address look-ups of this import and the next one were 5-20 times slower. Not in a dry
    run: the rows it would count are rolled back.
    """
    if session.info.get(_DRY_RUN) or inserted < _ANALYZE_FROM:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"ANALYZE {table}"))


def _insert_new(session: Session, rows: list[dict[str, object]]) -> list[int]:
    """Insert new respondents in bulk; their ids."""
    if not rows:
        return []
    # One executemany (render_nulls: rows with and without a phone go in the same batch),
    # then the ids by address: RETURNING over many rows is far slower.
    session.execute(insert(Respondent), rows, execution_options=_BULK)
    _refresh_statistics(session, "respondents", len(rows))
    emails = [str(row["email"]) for row in rows]
    ids: dict[str, int] = {}
    for start in range(0, len(emails), _CHUNK):
        query = select(Respondent.email, Respondent.id).where(
            Respondent.email.in_(emails[start:start + _CHUNK]))
        ids.update((email, rid) for email, rid in session.execute(query))
    return [ids[email] for email in emails]


def _invite(session: Session, survey_id: str, respondents: list[tuple[int, str]]) -> None:
    """A pending invitation with a fresh token for each (respondent id, email)."""
    if respondents:
        session.execute(insert(Invitation), [
            {"respondent_id": rid, "survey_id": survey_id, "token": new_token(),
             "status": InvitationStatus.PENDING.value, "email_address": email}
            for rid, email in respondents], execution_options=_BULK)
        _refresh_statistics(session, "invitations", len(respondents))


def _apply(session: Session, survey_id: str, contacts: list[Contact], *, default_lang: str,
           progress: Callable[[int], None]) -> ImportResult:
    existing = _existing(session, [c.email for c in contacts])
    invited = _invited(session, survey_id)
    updated = unchanged = 0
    new_rows: list[dict[str, object]] = []
    to_invite: list[tuple[int, str]] = []
    for contact in contacts:
        respondent = existing.get(contact.email)
        if respondent is None:
            new_rows.append({"email": contact.email,
                             **_fields(contact, contact.lang or default_lang)})
        else:
            changed = _update(respondent, _fields(contact, contact.lang or respondent.lang))
            if respondent.id not in invited:
                to_invite.append((respondent.id, respondent.email))
            elif changed:
                updated += 1
            else:
                unchanged += 1
        progress(1)
    session.flush()
    ids = _insert_new(session, new_rows)
    to_invite += [(rid, str(row["email"])) for rid, row in zip(ids, new_rows, strict=True)]
    _invite(session, survey_id, to_invite)
    in_file = {r.id for r in existing.values()}
    return ImportResult(new=len(to_invite), updated=updated, unchanged=unchanged,
                        not_in_file=len(invited - in_file))


def import_contacts(factory: sessionmaker[Session], survey_id: str, contacts: list[Contact], *,
                    questionnaire: str | None = None, default_lang: str = "nb",
                    dry_run: bool = False,
                    progress: Callable[[int], None] | None = None) -> ImportResult:
    """Create or update respondents and invite them to `survey_id`, in one transaction.

    The survey is created if missing (its questionnaire defaults to the survey id). In a dry
    run everything is computed the same way and then rolled back.
    """
    with factory() as session:
        session.info[_DRY_RUN] = dry_run
        try:
            _ensure_survey(session, survey_id, questionnaire or survey_id)
            result = _apply(session, survey_id, contacts, default_lang=default_lang,
                            progress=progress or (lambda _n: None))
        except BaseException:
            session.rollback()
            raise
        if dry_run:
            session.rollback()
        else:
            session.commit()
    log.info("contacts import for survey %s%s: %s", survey_id, " (dry run)" if dry_run else "",
             result.summary())
    return result
