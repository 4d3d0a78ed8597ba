"""`svarbot find`: an operator finds a respondent by a piece of the name or address, with the
ids `svarbot log` and `svarbot plan` take; those two take the same text, and the search is
the dashboard's own (`storage.dashboard.find_respondents`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

import storage.dashboard
from bot.cli import main
from bot.cli.find import find_command
from bot.cli.log import log_command
from storage.db import session_factory, transaction
from storage.identity import ensure_survey, invite, upsert_respondent
from storage.migrate import init_database, open_database
from storage.schema import Respondent

LEADERS = "virksomhetsleder-2020"
MAYORS = "ordforer-2020"
#: (name, address, municipality number and name, surveys), in the order they are added.
PEOPLE = (
    ("Kari Nordmann", "kari.nordmann@baerum.kommune.no", "0219", "Bærum", (LEADERS, MAYORS)),
    ("Kari Nordmann-Bakke", "kari.bakke@asker.kommune.no", "0220", "Asker", (LEADERS,)),
    ("Ola Hansen", "ola.hansen@oslo.kommune.no", "0301", "Oslo", (MAYORS,)),
    ("Per Ås", "per.aas@utsira.kommune.no", "1151", "Utsira", ()),
)


def make_people(tmp_path: Path) -> Path:
    """A database with PEOPLE (respondents 1–4; Ola is invited first, so invitation ids are
    not respondent ids: Ola 1, Kari 2 and 3, Kari Nordmann-Bakke 4); its config file."""
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    init_database(url)
    engine = open_database(url)
    with transaction(session_factory(engine)) as session:
        surveys = {survey: ensure_survey(session, survey, survey) for survey in (LEADERS, MAYORS)}
        people = [upsert_respondent(session, email=email, name=name, role="unit_leader",
                                    municipality_no=number, municipality_name=kommune,
                                    county="Akershus", size_class="50000+", landsdel="x",
                                    sector="helse")
                  for name, email, number, kommune, _ in PEOPLE]
        invite(session, people[2], surveys[MAYORS])
        for person, (*_rest, invited_to) in zip(people, PEOPLE, strict=True):
            for survey in invited_to:
                invite(session, person, surveys[survey])
    engine.dispose()
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: '{url}'\n", encoding="utf-8")
    return config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_people(tmp_path)


def test_find_lists_who_matches_in_80_columns(config: Path) -> None:
    result = CliRunner().invoke(find_command, ["kari", "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = result.output
    for shown in ("Respondenter med «kari» i navn eller adresse", "id", "navn", "adresse",
                  "kommune", "undersøkelser", "Kari Nordmann", "0219 Bærum", "0220 Asker",
                  f"{LEADERS}:", f"{MAYORS}:", "venter, invitasjon 2", "venter, invitasjon 3",
                  "venter, invitasjon 4"):
        assert shown in text
    assert "Ola" not in text
    rows = [line.split()[0] for line in lines if line.split() and line.split()[0].isdigit()]
    assert rows == ["1", "2"]


def test_find_in_english_by_id_and_as_json(config: Path) -> None:
    runner = CliRunner()
    english = runner.invoke(find_command, ["utsira", "--lang", "en", "--config", str(config)])
    assert english.exit_code == 0
    assert "Respondents with “utsira” in their name or address" in english.output
    assert "not invited" in english.output
    assert "navn" not in english.output
    by_id = runner.invoke(find_command, ["3", "--json", "--config", str(config)])
    found = [json.loads(line) for line in by_id.output.splitlines()]
    assert [(r["id"], r["name"], r["municipality_no"]) for r in found] == [
        (3, "Ola Hansen", "0301")]
    assert found[0]["invitations"] == [{"id": 1, "survey": MAYORS, "status": "pending"}]


def test_nobody_found_is_exit_1(config: Path) -> None:
    result = CliRunner().invoke(find_command, ["nobody-here", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output == "ingen respondent har «nobody-here» i navn eller adresse\n"


def test_the_search_is_the_dashboards(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The terminal and the /find page find the same people: one function does both."""
    asked: list[str] = []
    search = storage.dashboard.find_respondents

    def spy(session: Session, text: str, *, limit: int = 50) -> list[Respondent]:
        asked.append(text)
        return search(session, text, limit=limit)

    monkeypatch.setattr(storage.dashboard, "find_respondents", spy)
    runner = CliRunner()
    assert runner.invoke(find_command, ["nordmann", "--config", str(config)]).exit_code == 0
    assert runner.invoke(log_command, ["--respondent", "Ola", "--config",
                                       str(config)]).exit_code == 0
    assert asked == ["nordmann", "Ola"]


@pytest.mark.parametrize(("text", "respondent"), [
    ("1", 1), ("kari.nordmann@baerum.kommune.no", 1), ("KARI.NORDMANN@baerum.kommune.no", 1),
    ("Kari Nordmann", 1),  # the exact name wins over "Kari Nordmann-Bakke"
    ("bakke", 2), ("ola", 3), ("Ås", 4), ("ås", 4),  # Å as SQLite's lower() leaves it
])
def test_log_takes_an_id_a_name_or_an_address(config: Path, text: str,
                                              respondent: int) -> None:
    result = CliRunner().invoke(log_command, ["--respondent", text, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output == f"Respondent {respondent}: ingen hendelser\n"


def test_log_lists_the_matches_when_several_fit(config: Path) -> None:
    result = CliRunner().invoke(log_command, ["--respondent", "kari", "--config", str(config)])
    assert result.exit_code == 1
    assert result.stderr.startswith("svarbot: «kari» passer på 2 respondenter; velg én med "
                                    "id-en:\n")
    assert "0219 Bærum" in result.stderr
    assert "0220 Asker" in result.stderr
    assert result.stdout == ""
    narrowed = CliRunner().invoke(log_command, ["--respondent", "kari", "--survey", MAYORS,
                                                "--config", str(config)])
    assert narrowed.exit_code == 0  # only one Kari is invited to the mayors' survey
    assert narrowed.output == f"Respondent 1, {MAYORS}: ingen hendelser\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--respondent", "nobody-here"], "ingen respondent har «nobody-here» i navn eller adresse"),
    (["--respondent", "99"], "ingen respondent har id 99"),
    (["--respondent", "per", "--survey", LEADERS],
     f"ingen respondent i {LEADERS} har «per» i navn eller adresse"),
    (["--respondent", "nobody-here", "--lang", "en"],
     "no respondent has “nobody-here” in their name or address"),
])
def test_log_says_when_nobody_fits(config: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(log_command, [*args, "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr == f"svarbot: {message}\n"


def test_the_help_texts_name_the_command_that_exists() -> None:
    runner = CliRunner()
    log_help = runner.invoke(main, ["log", "--help"]).output
    assert "svarbot contacts" not in log_help
    assert "svarbot find" in log_help
    assert "--lang" in log_help
    assert "svarbot find" in runner.invoke(main, ["plan", "--help"]).output
    assert "find" in runner.invoke(main, ["--help"]).output
