"""`svarbot demo` in-process: the fieldwork shows as it happens, and the folder it leaves
works from anywhere, moved or not.

Piped output (a log file, CI) never shows progress bars, so there the demo prints a plain
line every few seconds; the numbers on them are the fieldwork's own, so they grow as the
simulated people answer.
"""

from __future__ import annotations

import io
import re
import secrets
import shutil
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from bot.config import load_settings
from bot.demo.run import run_demo
from storage.migrate import open_database

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^feltarbeid (?:ferdig etter )?(\d+) s: (\d+)/(\d+) invitasjoner sendt, "
                  r"(\d+) av (\d+) påbegynte samtaler fullført, (\d+) meldinger i omløp$")


def test_piped_demo_prints_growing_progress_and_leaves_a_movable_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain progress lines come while the people answer, with seconds, invitations sent
    and conversations finished growing, and a last line when the fieldwork has settled; the
    demo's configuration names its database and frames relative to its folder, which still
    works after it is moved."""
    monkeypatch.setenv("SVARBOT_LINK_KEY", secrets.token_hex(32))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    console = Console(file=out, width=140)
    assert not console.is_terminal
    result = run_demo(load_settings(ROOT / "config.yaml"), respondents=30, mayors=10, seed=5,
                      folder=Path("demo"), telegram_mayors=0.3, telegram_leaders=0.1,
                      console=console, progress_every=1.0)
    text = out.getvalue()
    lines = [m.groups() for m in map(LINE.match, text.splitlines()) if m]
    numbers = [tuple(int(n) for n in groups) for groups in lines]
    assert len(numbers) >= 3, text
    seconds, sent, invited, finished = ([row[i] for row in numbers] for i in (0, 1, 2, 3))
    assert seconds == sorted(seconds)
    assert sent == sorted(sent)
    assert finished == sorted(finished)
    assert finished[-1] > finished[0]
    assert set(invited) == {40}
    assert text.splitlines().count(next(t for t in text.splitlines()
                                        if t.startswith("feltarbeid ferdig etter"))) == 1
    last = numbers[-1]
    assert last[3] == sum(t.statuses["finished"] for t in result.surveys.values())
    assert last[5] == 0  # settled: nothing left in flight
    assert "--config demo/config.yaml" in text
    assert f"export SVARBOT_CONFIG={tmp_path / 'demo' / 'config.yaml'}" in text

    written = yaml.safe_load((tmp_path / "demo" / "config.yaml").read_text(encoding="utf-8"))
    assert written["database"]["url"] == "sqlite:///svarbot.db"
    assert [s["frame"] for s in written["surveys"]] == ["virksomhetsledere-ramme.csv",
                                                        "ordforere.csv"]
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(tmp_path / "demo", moved)
    monkeypatch.chdir(moved.parent)
    settings = load_settings(moved / "config.yaml")
    assert settings.database.url == f"sqlite:///{moved / 'svarbot.db'}"
    assert all(s.frame is not None and Path(s.frame).is_file() for s in settings.surveys)
    open_database(settings.database.url).dispose()
