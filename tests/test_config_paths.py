"""Paths in a configuration are relative to the file's folder, not to where svarbot runs.

So one file means the same database, questionnaire and frames from any folder, the demo's
folder can be moved, and without a configuration file svarbot falls back to the default
shipped in the package, whose database is in the current folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.cli.common import load_config
from bot.config import (
    Settings,
    default_config_path,
    load_settings,
    resolve_paths,
    sqlite_url_against,
)
from bot.demo.run import _portable

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///svarbot.db", "sqlite:////base/svarbot.db"),
    ("sqlite:///data/x.db?timeout=5", "sqlite:////base/data/x.db?timeout=5"),
    ("sqlite+pysqlite:///x.db", "sqlite+pysqlite:////base/x.db"),
    ("sqlite:////var/lib/svarbot.db", "sqlite:////var/lib/svarbot.db"),
    ("sqlite://", "sqlite://"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite:///file:x.db?mode=ro&uri=true", "sqlite:///file:x.db?mode=ro&uri=true"),
    ("postgresql+psycopg://u:secret@127.0.0.1/svarbot",
     "postgresql+psycopg://u:secret@127.0.0.1/svarbot"),
    ("not a url", "not a url"),
])
def test_only_a_relative_sqlite_file_is_resolved(url: str, expected: str) -> None:
    """A relative SQLite file is joined to the folder; everything else is kept as written."""
    assert sqlite_url_against(url, Path("/base")) == expected


def test_a_home_relative_sqlite_file_is_expanded() -> None:
    """`~` means the home folder, as in a shell."""
    assert sqlite_url_against("sqlite:///~/x.db", Path("/base")) == (
        f"sqlite:///{Path.home() / 'x.db'}")


def test_paths_are_relative_to_the_config_file_from_any_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Database, questionnaire file, frame and previous wave are found beside the file,
    wherever svarbot is started; shipped questionnaires' ids and absolute paths stay."""
    folder = tmp_path / "survey"
    _write(folder / "mine.yaml", "spec_version: 1\n")
    _write(folder / "bare", "spec_version: 1\n")
    config = _write(folder / "config.yaml", f"""\
database:
  url: sqlite:///svarbot.db
surveys:
  - {{id: a, questionnaire: mine.yaml, frame: ramme.csv, previous: ../2018/forrige.csv}}
  - {{id: b, questionnaire: virksomhetsleder-2020, frame: {tmp_path / "abs.csv"}}}
  - {{id: c, questionnaire: sub/q.yml}}
  - {{id: d, questionnaire: bare}}
""")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(Path("..") / "survey" / "config.yaml")
    assert settings == load_settings(config)
    assert settings.database.url == f"sqlite:///{folder / 'svarbot.db'}"
    a, b, c, d = settings.surveys
    assert (a.questionnaire, a.frame) == (str(folder / "mine.yaml"), str(folder / "ramme.csv"))
    assert a.previous == str(tmp_path / "2018" / "forrige.csv")
    assert (b.questionnaire, b.frame, b.previous) == (
        "virksomhetsleder-2020", str(tmp_path / "abs.csv"), None)
    assert c.questionnaire == str(folder / "sub" / "q.yml")
    assert d.questionnaire == str(folder / "bare")


def test_relative_to_overrides_the_folder(tmp_path: Path) -> None:
    """A file that stands for "here" (the shipped default) is read against another folder."""
    config = _write(tmp_path / "etc" / "config.yaml", "database:\n  url: sqlite:///x.db\n")
    settings = load_settings(config, relative_to=tmp_path / "work")
    assert settings.database.url == f"sqlite:///{tmp_path / 'work' / 'x.db'}"


def test_resolving_twice_changes_nothing(tmp_path: Path) -> None:
    """Absolute paths are left alone, so a resolved configuration is its own resolution."""
    settings = load_settings(ROOT / "config.yaml")
    assert resolve_paths(settings, tmp_path) == settings


def test_without_a_config_file_the_shipped_default_works_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --config, no ./config.yaml: the packaged default, its database in this folder."""
    monkeypatch.chdir(tmp_path)
    settings = load_config(None)
    assert settings.database.url == f"sqlite:///{tmp_path / 'svarbot.db'}"
    assert [s.id for s in settings.surveys] == ["virksomhetsleder-2020", "ordforer-2020"]
    assert default_config_path().read_bytes() == (ROOT / "config.yaml").read_bytes()
    _write(tmp_path / "config.yaml", "database:\n  url: sqlite:///local.db\n")
    assert load_config(None).database.url == f"sqlite:///{tmp_path / 'local.db'}"


def test_init_and_open_from_another_folder(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`init --config sub/config.yaml` makes the database beside that file, and every
    command finds it there from any folder, by --config or by SVARBOT_CONFIG."""
    _write(tmp_path / "sub" / "config.yaml", "database:\n  url: sqlite:///svarbot.db\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SVARBOT_CONFIG", raising=False)
    runner = CliRunner()
    created = runner.invoke(main, ["init", "--config", "sub/config.yaml"])
    assert created.exit_code == 0, created.output
    assert (tmp_path / "sub" / "svarbot.db").exists()
    assert not (tmp_path / "svarbot.db").exists()
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    named = runner.invoke(main, ["outbox", "status", "--config", "../sub/config.yaml"])
    assert named.exit_code == 0, named.output
    by_env = runner.invoke(main, ["outbox", "status"],
                           env={"SVARBOT_CONFIG": str(tmp_path / "sub" / "config.yaml")})
    assert by_env.exit_code == 0, by_env.output


def test_a_missing_database_names_its_path_and_how_to_name_a_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a named configuration, "run init" alone is the wrong advice: the message names
    the file it looked for and says how to name the configuration meant (one found here)."""
    _write(tmp_path / "demo" / "config.yaml", "database:\n  url: sqlite:///svarbot.db\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SVARBOT_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["outbox", "status"])
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.startswith(f"svarbot: {tmp_path / 'svarbot.db'}: no such database; "
                              "create it with `svarbot init`; that is the database of the "
                              "shipped default configuration")
    assert message.endswith("--config FILE or SVARBOT_CONFIG, e.g. --config demo/config.yaml")
    assert "\n" not in message
    named = CliRunner().invoke(main, ["outbox", "status", "--config", "demo/config.yaml"])
    assert named.output.strip() == (f"svarbot: {tmp_path / 'demo' / 'svarbot.db'}: no such "
                                    "database; create it with `svarbot init`")


def test_the_demo_writes_paths_relative_to_its_folder(tmp_path: Path) -> None:
    """The demo's configuration names its database and frames inside its folder relatively,
    so the folder can be moved; a file outside it keeps its absolute path."""
    folder = tmp_path / "demo"
    settings = Settings.model_validate({
        "database": {"url": f"sqlite:///{folder / 'svarbot.db'}"},
        "surveys": [{"id": "a", "questionnaire": str(folder / "q.yaml"),
                     "frame": str(folder / "ramme.csv"), "previous": "/srv/2018.csv"},
                    {"id": "b", "questionnaire": "ordforer-2020"}]})
    data = _portable(settings, folder)
    assert data["database"]["url"] == "sqlite:///svarbot.db"
    first, second = data["surveys"]
    assert (first["questionnaire"], first["frame"], first["previous"]) == (
        "q.yaml", "ramme.csv", "/srv/2018.csv")
    assert (second["questionnaire"], second["frame"]) == ("ordforer-2020", None)
