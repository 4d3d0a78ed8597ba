"""`svarbot plan`: a survey whose close is past is shown as closed, with what to change for a
new wave; `--respondent` takes a name or an address as well as an invitation id."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import update
from test_find import LEADERS, MAYORS, make_people

from bot.cli.plan import plan_command
from storage.db import session_factory, transaction
from storage.migrate import open_database
from storage.schema import Survey, SurveyStatus


def _with_plans(config: Path, invite: str, close: str) -> Path:
    """`config` with both surveys planned from `invite` to `close`."""
    url = config.read_text(encoding="utf-8").split("url: ")[1].strip().strip("'")
    surveys = "".join(f"  - id: {survey}\n    questionnaire: {survey}\n"
                      f"    plan:\n      invite: '{invite}'\n      close: '{close}'\n"
                      for survey in (LEADERS, MAYORS))
    config.write_text(f"database:\n  url: '{url}'\nsurveys:\n{surveys}", encoding="utf-8")
    return config


def _close_in_database(config: Path, survey: str, status: SurveyStatus) -> None:
    url = config.read_text(encoding="utf-8").split("url: '")[1].split("'")[0]
    engine = open_database(url)
    with transaction(session_factory(engine)) as session:
        session.execute(update(Survey).where(Survey.id == survey).values(status=status))
    engine.dispose()


def test_a_plan_in_the_past_is_shown_closed_with_what_to_change(tmp_path: Path) -> None:
    """The shipped plan's 2019 dates: closed on 6 December 2019, not "åpen"."""
    config = _with_plans(make_people(tmp_path), "2019-W42-2 09:00", "2019-12-06 16:00")
    runner = CliRunner()
    result = runner.invoke(plan_command, [LEADERS, "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"undersøkelse {LEADERS}: stengt 06.12.2019 16:00 (Europe/Oslo); "
                        f"invitasjon 15.10.2019 09:00")
    assert "åpen" not in result.output
    assert lines[1] == "ingenting mer å sende: undersøkelsen er stengt"
    advice = " ".join(lines[2:])
    assert f"plan.invite og plan.close for {LEADERS} i {config}" in advice
    assert "fram i tid" in advice
    assert max(len(line) for line in lines[2:]) <= 100
    data = json.loads(runner.invoke(plan_command, [LEADERS, "--json", "--config",
                                                   str(config)]).output)
    assert (data["status"], data["closed"]) == ("open", True)


def test_a_survey_closed_in_the_database_needs_a_new_survey(tmp_path: Path) -> None:
    config = _with_plans(make_people(tmp_path), "2019-W42-2 09:00", "2019-12-06 16:00")
    _close_in_database(config, LEADERS, SurveyStatus.CLOSED)
    result = CliRunner().invoke(plan_command, [LEADERS, "--config", str(config)])
    assert result.exit_code == 0, result.output
    advice = " ".join(result.output.splitlines()[2:])
    assert "En ny runde er en ny undersøkelse" in advice
    assert "--survey NY-ID" in advice
    _close_in_database(config, LEADERS, SurveyStatus.SEALED)
    sealed = CliRunner().invoke(plan_command, [LEADERS, "--config", str(config)])
    assert sealed.output.startswith(f"undersøkelse {LEADERS}: forseglet; stengt 06.12.2019")


def test_a_plan_ahead_is_open(tmp_path: Path) -> None:
    year = dt.datetime.now(dt.UTC).year + 1
    config = _with_plans(make_people(tmp_path), f"{year}-W42-2 09:00", f"{year}-12-06 16:00")
    result = CliRunner().invoke(plan_command, [LEADERS, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"undersøkelse {LEADERS}: åpen; invitasjon")
    assert "stengt" not in result.output.splitlines()[0]
    assert "plan.invite" not in result.output


def test_respondent_by_id_name_or_address(tmp_path: Path) -> None:
    """A number is the invitation id; a text is the one person in SURVEY it fits."""
    year = dt.datetime.now(dt.UTC).year + 1
    config = _with_plans(make_people(tmp_path), f"{year}-W42-2 09:00", f"{year}-12-06 16:00")
    runner = CliRunner()

    def invitation(survey: str, who: str) -> int:
        result = runner.invoke(plan_command, [survey, "--json", "--respondent", who,
                                              "--config", str(config)])
        assert result.exit_code == 0, result.output
        return int(json.loads(result.output)["invitation"])

    assert invitation(LEADERS, "2") == 2
    assert invitation(LEADERS, "Kari Nordmann") == 2  # the exact name
    assert invitation(MAYORS, "kari") == 3  # the only Kari invited to the mayors' survey
    assert invitation(MAYORS, "ola.hansen@oslo.kommune.no") == 1
    assert invitation(LEADERS, "bakke") == 4
    several = runner.invoke(plan_command, [LEADERS, "--respondent", "kari",
                                           "--config", str(config)])
    assert several.exit_code == 1
    assert "«kari» passer på 2 respondenter" in several.stderr
    assert "invitasjon 4" in several.stderr
    for who, message in (("ola", f"ingen respondent i {LEADERS} har «ola»"),
                         ("1", f"no invitation 1 in survey '{LEADERS}'")):
        result = runner.invoke(plan_command, [LEADERS, "--respondent", who,
                                              "--config", str(config)])
        assert result.exit_code == 2
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_one_persons_plan_in_a_closed_survey_says_it_closed(tmp_path: Path) -> None:
    config = _with_plans(make_people(tmp_path), "2019-W42-2 09:00", "2019-12-06 16:00")
    result = CliRunner().invoke(plan_command, [LEADERS, "--respondent", "bakke",
                                               "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"undersøkelse {LEADERS}: stengt 06.12.2019 16:00")
    assert "invitasjon 4" in result.output
