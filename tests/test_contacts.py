"""Contacts import: every row checked with its line, all or nothing, idempotent, Excel's files."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from flows.loader import load_shipped
from storage.contacts import (
    SECTORS,
    UNIT_TYPE_OTHER,
    UNIT_TYPES,
    Contact,
    ContactsError,
    SurveyClosedError,
    check_table,
    import_contacts,
    load_contacts,
    parse_table,
)
from storage.db import make_engine, session_factory
from storage.schema import (
    Base,
    Invitation,
    InvitationStatus,
    Respondent,
    Survey,
    SurveyStatus,
)
from storage.tokens import is_token

ROOT = Path(__file__).resolve().parents[1]
HEADER = "name,email,role,municipality_no,sector,unit_type\n"
ROWS = (
    "Kari Nordmann,kari.nordmann@baerum.kommune.no,unit_leader,0219,helse,sykehjem\n"
    "Ola Hansen,ola.hansen@oslo.kommune.no,virksomhetsleder,0301,oppvekst,barnehage\n"
    "Siri Berg,siri.berg@utsira.kommune.no,ordfører,1151,,\n"
)


def svarbot(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `svarbot ARGS` as a real process."""
    return subprocess.run([sys.executable, "-m", "bot", *args], text=True, capture_output=True,
                          cwd=ROOT, timeout=120, check=False)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` exactly (no newline translation) in `encoding`."""
    path.write_bytes(text.encode(encoding))
    return path


def problems_of(text: str, label: str = "CONTACTS.csv") -> list[str]:
    """The problems `check_table` reports for a UTF-8 file with this text."""
    return check_table(parse_table(text.encode("utf-8"), label)).problems


def contacts_of(text: str) -> list[Contact]:
    """The contacts of a file that must have no problems."""
    parsed = check_table(parse_table(text.encode("utf-8"), "CONTACTS.csv"))
    assert parsed.problems == []
    return parsed.contacts


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh SQLite database with the svarbot tables."""
    engine = make_engine(f"sqlite:///{tmp_path / 'svarbot.db'}")
    Base.metadata.create_all(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A configuration whose database (with tables) is in tmp_path."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  url: {url}\nsurveys:\n  - id: vl\n"
                    f"    questionnaire: virksomhetsleder-2020\n    default_lang: nn\n",
                    encoding="utf-8")
    return path


def count(factory: sessionmaker[Session], model: type[Base]) -> int:
    """Rows in the table of `model`."""
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def db_factory(config: Path) -> sessionmaker[Session]:
    """Sessions on the database a test configuration names."""
    return session_factory(make_engine(f"sqlite:///{config.parent / 'cli.db'}"))


# --- the format -----------------------------------------------------------------------------


def test_valid_rows_get_strata_from_the_reference_list() -> None:
    """Name, county, landsdel and size class come from the 2019 list, not from the file."""
    kari, ola, siri = contacts_of(HEADER + ROWS)
    assert (kari.municipality_name, kari.county, kari.landsdel, kari.size_class) == (
        "Bærum", "Akershus", "Oslo og Akershus", "50000+")
    assert (kari.role.value, kari.sector, kari.unit_type) == ("unit_leader", "helse", "sykehjem")
    assert ola.role.value == "unit_leader"
    assert (siri.role.value, siri.sector, siri.size_class) == ("mayor", None, "<3000")
    assert [c.line for c in (kari, ola, siri)] == [2, 3, 4]


def test_a_broken_row_names_its_line() -> None:
    """The issue's example, exactly: file, physical line, field and value."""
    text = HEADER + ROWS + "Per Olsen,x@,unit_leader,0301,helse,\n"
    assert problems_of(text) == ["CONTACTS.csv:5: email 'x@' is not an address"]


def test_line_numbers_are_physical_lines() -> None:
    """A quoted value spanning two lines pushes later rows down; blank lines count too."""
    text = (HEADER + '"Kari\nNordmann",kari@baerum.kommune.no,unit_leader,0219,helse,\n'
            "\n" + "Per,per@@x.no,unit_leader,0301,helse,\n")
    assert problems_of(text) == ["CONTACTS.csv:5: email 'per@@x.no' is not an address"]


@pytest.mark.parametrize(("row", "message"), [
    ("Per,per@x.no,unit_leader,0301,helse og sånn,",
     "sector 'helse og sånn' is not known (use helse, oppvekst, sosial, kultur, teknisk)"),
    ("Per,per@x.no,unit_leader,0399,helse,",
     "municipality_no '0399' is not a 2019 municipality (4 digits) or county municipality "
     "(2 digits)"),
    ("Per,per@x.no,unit_leader,03,helse,",
     "municipality_no '03' is not a 2019 municipality (4 digits) or county municipality "
     "(2 digits)"),
    (",per@x.no,unit_leader,0301,helse,", "name is empty"),
    ("Per,,unit_leader,0301,helse,", "email is empty"),
    ("Per,per@x.no,,0301,helse,", "role is empty"),
    ("Per,per@x.no,unit_leader,,helse,", "municipality_no is empty"),
    ("Per,per@x.no,unit_leader,0301,,", "sector is empty (required for a unit leader)"),
    ("Per,per@x.no,rådmann,0301,helse,",
     "role 'rådmann' is not known (use unit_leader/virksomhetsleder or mayor/ordfører)"),
    ("Per,per@x.no,unit_leader,0301,helse,barnehage",
     "unit_type 'barnehage' is not a unit type of sector helse (use sykehjem, "
     "hjemmetjeneste, helsestasjon, funksjonsevne, psykisk_helse, legetjeneste, annet)"),
    ("Per,per@x.no,unit_leader,0301,helse,,extra",
     "7 fields, but the header has 6 (a separator inside a value needs quotes)"),
    ("Per,per x@oslo.kommune.no,unit_leader,0301,helse,",
     "email 'per x@oslo.kommune.no' is not an address"),
    ("Per,per@oslo,unit_leader,0301,helse,", "email 'per@oslo' is not an address"),
])
def test_each_rule_reports_its_problem(row: str, message: str) -> None:
    """Unknown sector, unknown municipality, empty required fields, wrong unit type, …."""
    assert problems_of(HEADER + ROWS + row + "\n") == [f"CONTACTS.csv:5: {message}"]


@pytest.mark.parametrize(("number", "name", "message"), [
    # renumbered in 2020: the one 2019 number
    ("3401", "", "municipality_no '3401' is a 2020 number; in 2019 Kongsvinger was 0402"),
    ("5401", "Tromsø", "municipality_no '5401' is a 2020 number; in 2019 Tromsø was 1902"),
    # merged in 2020: the one the row names, else every one it was made of
    ("3002", "Rygge", "municipality_no '3002' is a 2020 number; in 2019 Rygge was 0136"),
    ("3002", "", "municipality_no '3002' is a 2020 number (Moss); in 2019 it was 0104 Moss or "
                 "0136 Rygge: use the number of the respondent's 2019 municipality"),
    ("1806", "Ballangen kommune",
     "municipality_no '1806' is a 2020 number; in 2019 Ballangen was 1854"),
    # a county municipality by its 2020 county number
    ("34", "Oppland", "municipality_no '34' is a 2020 county number; in 2019 Oppland "
                      "fylkeskommune was 05"),
    ("54", "", "municipality_no '54' is a 2020 county number (Troms og Finnmark); in 2019 it "
               "was 19 Troms fylkeskommune or 20 Finnmark fylkeskommune: use the number of "
               "the respondent's 2019 municipality"),
    # a number the list does not know, with a name it does (a later reform's number)
    ("3101", "Halden", "municipality_no '3101' is not a 2019 municipality number; in 2019 "
                       "Halden was 0101"),
    ("9998", "Våler", "municipality_no '9998' is not a 2019 municipality number; in 2019 Våler "
                      "was 0137 (Østfold) or 0426 (Hedmark)"),
    ("3118", "Indre Østfold",
     "municipality_no '3118' is not a 2019 municipality number; Indre Østfold was made in 2020 "
     "of 0122 Trøgstad, 0123 Spydeberg, 0124 Askim, 0125 Eidsberg and 0138 Hobøl: use the "
     "number of the respondent's 2019 municipality"),
    # nothing to go on: as before
    ("0399", "Ukjentby", "municipality_no '0399' is not a 2019 municipality (4 digits) or "
                         "county municipality (2 digits)"),
])
def test_a_number_from_after_the_reform_names_the_2019_number(number: str, name: str,
                                                              message: str) -> None:
    """The reference list's 2020 successors, read backwards, say which number to use."""
    header = "name,email,role,municipality_no,municipality_name,sector\n"
    role, sector = ("mayor", "") if len(number) == 2 else ("unit_leader", "helse")
    row = f"Per,per@x.no,{role},{number},{name},{sector}\n"
    assert problems_of(header + row) == [f"CONTACTS.csv:2: {message}"]


def test_every_2020_number_of_the_list_leads_back_to_2019() -> None:
    """356 municipalities in 2020; those with a new number lead back to what they were made of,
    and the 2020 counties to the 2019 counties most of their kommuner came from."""
    from storage import reference

    made_of: dict[str, set[str]] = {}
    for kommune in reference.municipalities().values():
        for successor in kommune.successors_2020:
            made_of.setdefault(successor.number, set()).add(kommune.number)
    assert len(made_of) == 356
    for number, olds in made_of.items():
        found = {k.number for k in reference.predecessors_2019(number)}
        assert found == (set() if number in reference.municipalities() else olds), number
    assert {number: [c.number for c in reference.county_predecessors_2019(number)]
            for number in ("30", "34", "38", "42", "46", "54", "50", "15", "03")} == {
        "30": ["01", "02", "06"], "34": ["04", "05"], "38": ["07", "08"], "42": ["09", "10"],
        "46": ["12", "14"], "54": ["19", "20"], "50": [], "15": [], "03": []}


def test_optional_fields_are_checked() -> None:
    """Phone, Telegram and language are optional, but must make sense when given."""
    header = "name,email,role,municipality_no,sector,phone,telegram,lang\n"
    text = (header
            + "A,a@x.no,mayor,0301,,+47 412 34 567,@kari_n,nynorsk\n"
            + "B,b@x.no,mayor,0219,,ring meg,,\n"
            + "C,c@x.no,mayor,1151,,,k!,\n"
            + "D,d@x.no,mayor,0101,,,,svensk\n")
    assert problems_of(text) == [
        "CONTACTS.csv:3: phone 'ring meg' is not a phone number",
        "CONTACTS.csv:4: telegram 'k!' is neither a Telegram username nor a chat id",
        "CONTACTS.csv:5: lang 'svensk' is not known (use nb, nn or en)",
    ]
    first = contacts_of(header + "A,a@x.no,mayor,0301,,+47 412 34 567,@kari_n,nynorsk\n")[0]
    assert (first.phone, first.telegram, first.lang) == ("+4741234567", "kari_n", "nn")


def test_duplicates_within_the_file() -> None:
    """The same address twice (in any case), or two mayors of one municipality."""
    text = (HEADER + ROWS
            + "K. Nordmann,Kari.Nordmann@Baerum.Kommune.no,unit_leader,0219,kultur,\n"
            + "Jon Berg,jon.berg@utsira.kommune.no,mayor,1151,,\n")
    assert problems_of(text) == [
        "CONTACTS.csv:5: email 'kari.nordmann@baerum.kommune.no' is already on line 2",
        "CONTACTS.csv:6: a second mayor of 1151 Utsira (the first is on line 4)",
    ]


def test_missing_required_columns_are_named() -> None:
    """Each missing column is named on line 1; no row is checked without them."""
    assert problems_of("navn,rolle,sektor\nKari,mayor,\n") == [
        "CONTACTS.csv:1: missing required column 'email'",
        "CONTACTS.csv:1: missing required column 'municipality_no'",
    ]
    assert problems_of("name,email,role,municipality_no\nKari,k@x.no,unit_leader,0301\n") == [
        "CONTACTS.csv:1: missing required column 'sector' (needed for unit leaders, "
        "first on line 2)"]
    assert problems_of("name,email,role,municipality_no\nKari,k@x.no,mayor,0301\n") == []


def test_every_problem_is_reported_in_line_order() -> None:
    """Not just the first: every bad row, sorted by line."""
    text = (HEADER + "A,a@,unit_leader,0301,helse,\n" + ROWS
            + "B,b@x.no,unit_leader,9998,helse,\n" + "C,c@x.no,mayor,0101,,\n")
    lines = [p.split(":")[1] for p in problems_of(text)]
    assert lines == ["2", "6"]


def test_norwegian_headers_roles_and_spreadsheet_numbers() -> None:
    """`Navn;E-post;Rolle;Kommunenr;Sektor`, `ordfører`, and `219` for 0219 all work."""
    text = ("Navn,E-post,Rolle,Kommunenr,Sektor,Enhetstype\n"
            "Kari,kari@baerum.kommune.no,Virksomhetsleder,219,Helse og omsorg,Sykehjem\n"
            "Ola,ola@ostfoldfylke.no,Fylkesordfører,1,,\n")
    kari, ola = contacts_of(text)
    assert (kari.municipality_no, kari.sector, kari.unit_type) == ("0219", "helse", "sykehjem")
    assert (ola.municipality_no, ola.municipality_name, ola.size_class) == (
        "01", "Østfold fylkeskommune", "fylkeskommune")


def test_warnings_do_not_stop_an_import() -> None:
    """An unknown column and a name that does not match the number are warnings only."""
    text = ("name,email,role,municipality_no,municipality_name,sektro,comment\n"
            "Kari,k@x.no,mayor,0219,Asker,,hi\n"
            "Ola,o@x.no,mayor,2025,Tana,,\n")
    parsed = check_table(parse_table(text.encode(), "C.csv"))
    assert parsed.problems == []
    assert len(parsed.contacts) == 2
    assert parsed.warnings == [
        "C.csv:1: column 'sektro' is not used (did you mean 'sektor'?)",
        "C.csv:1: column 'comment' is not used",
        "C.csv:2: warning: municipality_name 'Asker' does not match 0219 Bærum "
        "(the reference name is used)",
    ]


def test_windows_1252_with_semicolons() -> None:
    """Excel's "CSV (semikolonseparert)": cp1252 bytes, `;` separators, CRLF."""
    text = ("navn;e-post;rolle;kommunenr;kommune;sektor\r\n"
            "Bjørn Ødegård;bjorn.odegard@baerum.kommune.no;virksomhetsleder;0219;Bærum;"
            "oppvekst\r\n")
    table = parse_table(text.encode("cp1252"), "C.csv")
    (contact,) = check_table(table).contacts
    assert (table.encoding, table.delimiter) == ("cp1252", ";")
    assert (contact.name, contact.municipality_name) == ("Bjørn Ødegård", "Bærum")


def test_utf8_with_bom() -> None:
    """Excel's "CSV UTF-8" starts with a BOM; the first column is still `name`."""
    table = parse_table(("\ufeff" + HEADER + ROWS).encode("utf-8"), "C.csv")
    assert table.encoding == "utf-8-sig"
    assert table.header[0] == "name"
    assert len(check_table(table).contacts) == 3


def test_unreadable_and_empty_files() -> None:
    """Bytes that are neither UTF-8 nor Windows-1252, and an empty file: one clear problem."""
    with pytest.raises(ContactsError) as bad:
        parse_table(b"name,email\n\x81\x8d\n", "C.csv")
    assert bad.value.problems == ["C.csv: neither UTF-8 nor Windows-1252 text "
                                  "(byte 0x81 at offset 11)"]
    with pytest.raises(ContactsError) as empty:
        parse_table(b"\n\n", "C.csv")
    assert empty.value.problems == ["C.csv:1: the file is empty (expected a header row)"]


def test_sectors_and_unit_types_are_the_questionnaire_option_ids() -> None:
    """The ids checked here are the ones virksomhetsleder-2020 asks for."""
    q = load_shipped("virksomhetsleder-2020")
    items = {item.id: item for item in q.items}
    assert tuple(o.id for o in items["sektor"].options) == SECTORS
    unit_types = [t for sector in SECTORS for t in UNIT_TYPES[sector]] + [UNIT_TYPE_OTHER]
    assert sorted(o.id for o in items["enhetstype"].options) == sorted(unit_types)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_any_text_gives_problems_never_a_crash(text: str) -> None:
    """Whatever a file holds, checking it returns problems or contacts; it never raises."""
    try:
        table = parse_table(text.encode("utf-8"), "C.csv")
    except ContactsError as exc:
        problems = exc.problems
    else:
        parsed = check_table(table)
        problems = parsed.problems
        if not problems:
            assert len(parsed.contacts) == len(table.rows)
    assert all(p.startswith("C.csv") for p in problems)


# --- importing ------------------------------------------------------------------------------


def test_import_creates_respondents_and_invitations(factory: sessionmaker[Session]) -> None:
    """New rows: a respondent each, a pending invitation with a token; the survey is created."""
    result = import_contacts(factory, "vl", contacts_of(HEADER + ROWS))
    assert (result.new, result.updated, result.unchanged) == (3, 0, 0)
    with factory() as session:
        survey = session.get(Survey, "vl")
        invitations = session.scalars(select(Invitation)).all()
        kari = session.scalars(select(Respondent).where(Respondent.name == "Kari Nordmann")).one()
    assert survey is not None
    assert survey.questionnaire == "vl"
    assert len(invitations) == 3
    assert all(is_token(i.token) and i.status == InvitationStatus.PENDING for i in invitations)
    assert len({i.token for i in invitations}) == 3
    assert (kari.municipality_name, kari.landsdel, kari.size_class, kari.lang) == (
        "Bærum", "Oslo og Akershus", "50000+", "nb")


def test_reimporting_the_same_file_changes_nothing(factory: sessionmaker[Session]) -> None:
    """Second import: 0 new, 0 updated, 3 unchanged, and the same tokens."""
    contacts = contacts_of(HEADER + ROWS)
    import_contacts(factory, "vl", contacts)
    with factory() as session:
        before = sorted(session.scalars(select(Invitation.token)))
    result = import_contacts(factory, "vl", contacts)
    assert result.summary() == "0 new, 0 updated, 3 unchanged"
    with factory() as session:
        assert sorted(session.scalars(select(Invitation.token))) == before
    assert count(factory, Respondent) == 3


def test_an_edited_row_updates_and_keeps_the_invitation(factory: sessionmaker[Session]) -> None:
    """Changed name and sector: the respondent is updated; token, status and session stay."""
    import_contacts(factory, "vl", contacts_of(HEADER + ROWS))
    with factory() as session, session.begin():
        invitation = session.scalars(select(Invitation).join(
            Respondent, Respondent.id == Invitation.respondent_id).where(
            Respondent.email == "kari.nordmann@baerum.kommune.no")).one()
        invitation.status = InvitationStatus.STARTED
        invitation.session_state = '{"v": 1}'
        token, invitation_id = invitation.token, invitation.id
    edited = ROWS.replace("Kari Nordmann,", "Kari Nordmann-Berg,").replace(
        "0219,helse,sykehjem", "0219,kultur,bibliotek")
    result = import_contacts(factory, "vl", contacts_of(HEADER + edited))
    assert result.summary() == "0 new, 1 updated, 2 unchanged"
    with factory() as session:
        kari = session.scalars(select(Respondent).where(
            Respondent.email == "kari.nordmann@baerum.kommune.no")).one()
        kept = session.get(Invitation, invitation_id)
    assert (kari.name, kari.sector, kari.unit_type) == ("Kari Nordmann-Berg", "kultur",
                                                        "bibliotek")
    assert kept is not None
    assert (kept.token, kept.status, kept.session_state) == (
        token, "started", '{"v": 1}')
    assert count(factory, Invitation) == 3


def test_dry_run_counts_but_writes_nothing(factory: sessionmaker[Session]) -> None:
    """A dry run reports what would happen and leaves the database as it was."""
    result = import_contacts(factory, "vl", contacts_of(HEADER + ROWS), dry_run=True)
    assert result.new == 3
    assert (count(factory, Survey), count(factory, Respondent), count(factory, Invitation)) == (
        0, 0, 0)


def test_a_sealed_survey_takes_no_invitations(factory: sessionmaker[Session]) -> None:
    """Importing into a closed or sealed survey is refused, and nothing is written."""
    with factory() as session, session.begin():
        session.add(Survey(id="old", questionnaire="q", status=SurveyStatus.SEALED))
    with pytest.raises(SurveyClosedError, match="survey old is sealed; nothing imported"):
        import_contacts(factory, "old", contacts_of(HEADER + ROWS))
    assert count(factory, Respondent) == 0


def test_a_known_respondent_is_invited_to_another_survey(
        factory: sessionmaker[Session]) -> None:
    """One person, two surveys: one respondent, two invitations; rows left out are counted."""
    import_contacts(factory, "vl", contacts_of(HEADER + ROWS))
    result = import_contacts(factory, "other", contacts_of(HEADER + ROWS.splitlines(True)[0]))
    assert (result.new, result.unchanged) == (1, 0)
    again = import_contacts(factory, "vl", contacts_of(HEADER + ROWS.splitlines(True)[0]))
    assert again.not_in_file == 2
    assert (count(factory, Respondent), count(factory, Invitation)) == (3, 4)


def test_language_default_and_kept(factory: sessionmaker[Session]) -> None:
    """An empty lang: the survey default for a new respondent, the old value for a known one."""
    header = HEADER.strip() + ",lang\n"
    import_contacts(factory, "vl", contacts_of(header + "A,a@x.no,mayor,0301,,,\n"),
                    default_lang="nn")
    import_contacts(factory, "vl", contacts_of(header + "B,b@x.no,mayor,0219,,,en\n"))
    import_contacts(factory, "vl", contacts_of(header + "B,b@x.no,mayor,0219,,,\n"))
    with factory() as session:
        rows = session.execute(select(Respondent.name, Respondent.lang))
        langs = {name: lang for name, lang in rows}
    assert langs == {"A": "nn", "B": "en"}


def test_the_log_names_no_one(factory: sessionmaker[Session],
                              caplog: pytest.LogCaptureFixture) -> None:
    """The import logs counts, never an address or a name."""
    with caplog.at_level(logging.DEBUG):
        import_contacts(factory, "vl", contacts_of(HEADER + ROWS))
    assert "3 new" in caplog.text
    assert "@" not in caplog.text
    assert "Kari" not in caplog.text
    assert "Nordmann" not in caplog.text


# --- the command ----------------------------------------------------------------------------


def test_cli_import_and_reimport(tmp_path: Path, config: Path) -> None:
    """`svarbot import`: counts on stdout, exit 0; the second run changes nothing."""
    contacts = write(tmp_path / "CONTACTS.csv", HEADER + ROWS)
    first = svarbot("import", str(contacts), "--survey", "vl", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{contacts}: 3 new, 0 updated, 0 unchanged"
    second = svarbot("import", str(contacts), "--survey", "vl", "--config", str(config))
    assert second.stdout.strip() == f"{contacts}: 0 new, 0 updated, 3 unchanged"
    factory = db_factory(config)
    with factory() as session:
        survey = session.get(Survey, "vl")
        langs = set(session.scalars(select(Respondent.lang)))
    assert survey is not None
    assert survey.questionnaire == "virksomhetsleder-2020"
    assert langs == {"nn"}


def test_cli_broken_file_imports_nothing(tmp_path: Path, config: Path) -> None:
    """Exit 1, every problem with its line, a summary, no traceback, an empty database."""
    contacts = write(tmp_path / "CONTACTS.csv",
                     HEADER + ROWS + "Per,x@,unit_leader,0301,helse,\n"
                     + "Pål,pal@x.no,unit_leader,0301,økonomi,\n")
    result = svarbot("import", str(contacts), "--survey", "vl", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{contacts}:5: email 'x@' is not an address",
        f"{contacts}:6: sector 'økonomi' is not known (use helse, oppvekst, sosial, kultur, "
        f"teknisk)",
        f"{contacts}: 2 problems; nothing imported",
    ]
    assert count(db_factory(config), Respondent) == 0


def test_cli_windows_1252_file(tmp_path: Path, config: Path) -> None:
    """A cp1252 `;` file from Excel imports with its æøå intact."""
    contacts = write(tmp_path / "kontakter.csv",
                     "Navn;E-post;Rolle;Kommunenr;Kommune;Sektor\r\n"
                     "Bjørn Ødegård;bjorn.odegard@baerum.kommune.no;virksomhetsleder;0219;Bærum;"
                     "oppvekst\r\n", encoding="cp1252")
    result = svarbot("import", str(contacts), "--survey", "vl", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with db_factory(config)() as session:
        person = session.scalars(select(Respondent)).one()
    assert (person.name, person.municipality_name, person.county) == (
        "Bjørn Ødegård", "Bærum", "Akershus")


def test_cli_dry_run_writes_nothing(tmp_path: Path, config: Path) -> None:
    """`--dry-run` says what would happen; the database stays empty."""
    contacts = write(tmp_path / "CONTACTS.csv", "\ufeff" + HEADER + ROWS)
    result = svarbot("import", str(contacts), "--survey", "vl", "--dry-run",
                     "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "dry run, nothing written: 3 new" in result.stdout
    factory = db_factory(config)
    assert (count(factory, Survey), count(factory, Respondent)) == (0, 0)


def test_cli_without_a_database(tmp_path: Path) -> None:
    """No database yet: a dry run still checks the file; an import exits 2 naming `init`."""
    contacts = write(tmp_path / "CONTACTS.csv", HEADER + ROWS)
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'none.db'}\n", encoding="utf-8")
    dry = svarbot("import", str(contacts), "--survey", "vl", "--dry-run", "--config", str(config))
    real = svarbot("import", str(contacts), "--survey", "vl", "--config", str(config))
    assert dry.returncode == 0
    assert "3 rows are valid" in dry.stdout
    assert real.returncode == 2
    assert real.stderr.strip().endswith("create it with `svarbot init`")
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("missing.csv", "--survey", "vl"), "missing.csv: no such file"),
    (("CONTACTS.csv", "--survey", "no way"), "--survey 'no way': use letters"),
])
def test_cli_usage_errors_exit_2(tmp_path: Path, config: Path, args: tuple[str, ...],
                                 message: str) -> None:
    """A missing file or a bad survey id: one line, exit 2, no traceback."""
    write(tmp_path / "CONTACTS.csv", HEADER + ROWS)
    paths = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]
    result = svarbot("import", *paths, "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_config_exits_2(tmp_path: Path) -> None:
    """A typo in the configuration stops the import before anything is read."""
    contacts = write(tmp_path / "CONTACTS.csv", HEADER + ROWS)
    config = write(tmp_path / "bad.yaml", "database:\n  ulr: sqlite:///x.db\n")
    result = svarbot("import", str(contacts), "--survey", "vl", "--config", str(config))
    assert result.returncode == 2
    assert "database.ulr: unknown key" in result.stderr


def test_load_contacts_reads_a_path(tmp_path: Path) -> None:
    """Messages name the file as it was given."""
    path = write(tmp_path / "list.csv", HEADER + "A,a@,mayor,0301,,\n")
    with pytest.raises(ContactsError) as exc:
        load_contacts(path)
    assert exc.value.problems == [f"{path}:2: email 'a@' is not an address"]
