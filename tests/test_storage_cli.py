"""`svarbot init`, `svarbot db upgrade` and `svarbot seal`, as the operator runs them.

What the operator sees matters here: one line `svarbot: ...` and exit status 2 for a
configuration or database problem, 1 for an unknown survey or a refused confirmation, and never
a traceback. Most runs are in-process (click's runner: fast); the bad-database cases also run as
a real process, where a traceback would show.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text
from storage_support import TEST_KEY_TEXT, add_people

from bot.cli import main
from storage.answers import AnswerStore, LinkKey, strata_for
from storage.db import make_engine, session_factory, transaction
from storage.migrate import head_revision, open_database
from storage.schema import Respondent, Survey, SurveyStatus

pytest_plugins = ["storage_backends"]  # the database fixtures, on both backends

ROOT = Path(__file__).resolve().parents[1]
SURVEY = "virksomhetsleder-2020"


@dataclass(frozen=True)
class Run:
    """What one command printed, and its exit status."""

    returncode: int
    stdout: str
    stderr: str


def svarbot(*args: str, stdin: str = "") -> Run:
    """Run `svarbot ARGS` in this process; an exception other than an exit is a failure."""
    result = CliRunner().invoke(main, list(args), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def svarbot_process(*args: str) -> Run:
    """Run `svarbot ARGS` as a real process (`python -m bot`)."""
    done = subprocess.run([sys.executable, "-m", "bot", *args], text=True, capture_output=True,
                          cwd=ROOT, timeout=120, check=False)
    return Run(done.returncode, done.stdout, done.stderr)


def _config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  url: {url}\nsurveys:\n"
                    f"  - {{id: {SURVEY}, questionnaire: virksomhetsleder-2020}}\n"
                    "  - {id: ordforer-2020, questionnaire: ordforer-2020}\n",
                    encoding="utf-8")
    return str(path)


def _one_error_line(result: Run, status: int) -> str:
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("svarbot: ")
    return lines[0]


def _survey_status(url: str) -> str:
    engine = open_database(url)
    try:
        with transaction(session_factory(engine)) as session:
            return session.get_one(Survey, SURVEY).status
    finally:
        engine.dispose()


def _answer_one(url: str) -> None:
    engine = open_database(url)
    store = AnswerStore(LinkKey(TEST_KEY_TEXT.encode()))
    try:
        with transaction(session_factory(engine)) as session:
            invitation = add_people(session, SURVEY, 1)[0]
            store.record(session, survey_id=SURVEY, token=invitation.token,
                         strata=strata_for(session.get_one(Respondent, invitation.respondent_id)),
                         answers={"q": 1}, removed=[], completed=True,
                         today=dt.date(2020, 3, 2))
    finally:
        engine.dispose()


def test_init_upgrade_and_seal(tmp_path: Path, db_url: str) -> None:
    """The operator's path on each backend: create, upgrade (nothing to do), refuse, seal."""
    config = _config(tmp_path, db_url)
    created = svarbot("init", "--config", config)
    assert created.returncode == 0, created.stderr
    assert f"(schema revision {head_revision()})" in created.stdout
    assert "surveys: virksomhetsleder-2020, ordforer-2020" in created.stdout
    again = svarbot("init", "--config", config)
    assert "already has tables; nothing changed" in _one_error_line(again, 2)
    upgraded = svarbot("db", "upgrade", "--config", config)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == (
        f"the database is up to date (schema revision {head_revision()})")
    _answer_one(db_url)
    refused = svarbot("seal", SURVEY, "--config", config, stdin="n\n")
    assert refused.returncode == 1
    assert "This cannot be undone." in refused.stdout
    assert "its 1 responses" in refused.stdout
    assert _survey_status(db_url) == SurveyStatus.OPEN
    sealed = svarbot("seal", SURVEY, "--config", config, stdin="y\n")
    assert sealed.returncode == 0, sealed.stderr
    assert f"survey {SURVEY} sealed: 1 links deleted" in sealed.stdout
    assert _survey_status(db_url) == SurveyStatus.SEALED
    repeated = svarbot("seal", SURVEY, "--yes", "--config", config)
    assert repeated.returncode == 0, repeated.stderr
    assert "was already sealed" in repeated.stdout


def test_seal_yes_skips_the_question_and_unknown_surveys_fail(tmp_path: Path) -> None:
    """`--yes` seals without asking; an unknown survey is exit status 1."""
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    config = _config(tmp_path, url)
    assert svarbot("init", "--config", config).returncode == 0
    unknown = svarbot("seal", "no-such-survey", "--yes", "--config", config)
    assert _one_error_line(unknown, 1) == "svarbot: no survey 'no-such-survey' in the database"
    sealed = svarbot("seal", SURVEY, "--yes", "--config", config)
    assert sealed.returncode == 0, sealed.stderr
    assert "Seal " not in sealed.stdout
    assert _survey_status(url) == SurveyStatus.SEALED


def test_a_newer_database_stops_every_command(tmp_path: Path) -> None:
    """A schema from a later svarbot: one line and status 2 from upgrade and seal alike."""
    url = f"sqlite:///{tmp_path / 'svarbot.db'}"
    config = _config(tmp_path, url)
    assert svarbot("init", "--config", config).returncode == 0
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    expected = (f"svarbot: database schema revision 9999 is newer than this svarbot "
                f"({head_revision()}); upgrade svarbot")
    assert _one_error_line(svarbot_process("db", "upgrade", "--config", config), 2) == expected
    assert _one_error_line(svarbot("seal", SURVEY, "--yes", "--config", config), 2) == expected


def test_a_corrupt_database_file_is_named(tmp_path: Path) -> None:
    """Random bytes where the database should be: one line naming the file, status 2."""
    path = tmp_path / "svarbot.db"
    path.write_bytes(bytes(range(256)) * 16)
    config = _config(tmp_path, f"sqlite:///{path}")
    for run, args in ((svarbot_process, ("init",)), (svarbot, ("db", "upgrade")),
                      (svarbot, ("seal", SURVEY, "--yes"))):
        line = _one_error_line(run(*args, "--config", config), 2)
        assert line.startswith(f"svarbot: {path}: not an SQLite database, or damaged")
    assert path.read_bytes() == bytes(range(256)) * 16


def test_missing_database_and_config_typos(tmp_path: Path) -> None:
    """No database yet: seal and upgrade say to run init; a config typo names the key."""
    path = tmp_path / "absent.db"
    config = _config(tmp_path, f"sqlite:///{path}")
    for args in (("db", "upgrade"), ("seal", SURVEY, "--yes")):
        line = _one_error_line(svarbot(*args, "--config", config), 2)
        assert line == f"svarbot: {path}: no such database; create it with `svarbot init`"
    assert not path.exists()
    typo = tmp_path / "typo.yaml"
    typo.write_text("database:\n  ulr: sqlite:///x.db\n", encoding="utf-8")
    line = _one_error_line(svarbot("init", "--config", str(typo)), 2)
    assert line == f"svarbot: {typo}: database.ulr: unknown key (did you mean 'url'?)"
