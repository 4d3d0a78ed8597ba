"""An installed svarbot (a wheel, not this checkout) carries everything it reads besides code.

`pip install .` copies only what pyproject.toml declares, so a data file left out works here
and fails for everyone who installs svarbot: the wheel is built from a copy of the sources
and its contents are checked, then its commands run from an empty folder with nothing of the
checkout on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "flows", "storage")
#: What an installed svarbot opens at run time, by path inside the wheel.
REQUIRED = (
    "bot/data/config.yaml",
    "bot/py.typed", "flows/py.typed", "storage/py.typed",
    "flows/questionnaires/virksomhetsleder-2020.yaml",
    "flows/questionnaires/ordforer-2020.yaml",
    "flows/questionnaires/README.md",
    "bot/channels/email/templates/mail.txt.j2",
    "bot/channels/email/templates/mail.html.j2",
    "bot/web/templates/base.html",
    "bot/web/templates/dashboard.html",
    "bot/web/static/app.css",
    "bot/web/static/refresh.js",
    "bot/results/templates/report.html",
    "bot/results/templates/report.css",
    "bot/results/data/innovasjonsbarometeret-2018.csv",
    "bot/results/data/innovasjonsbarometeret-2018.yaml",
    "storage/data/kommuner-2019.csv",
    "storage/data/README.md",
    "storage/migrations/env.py",
    "storage/migrations/versions/0001_initial.py",
)
#: Endings of the files that are data rather than code.
DATA_ENDINGS = (".yaml", ".csv", ".md", ".j2", ".html", ".css", ".js", "py.typed")


def test_the_packaged_default_configuration_is_the_documented_one() -> None:
    """bot/data/config.yaml (what an installed svarbot reads by default) is config.yaml."""
    packaged = ROOT / "bot" / "data" / "config.yaml"
    assert packaged.read_bytes() == (ROOT / "config.yaml").read_bytes(), (
        "bot/data/config.yaml differs from config.yaml: copy config.yaml over it")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A wheel built from a clean copy of the sources, and the build's output."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-v", "-w", str(out)],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (found,) = out.glob("svarbot-*.whl")
    return found, built.stdout + built.stderr


def test_the_wheel_holds_every_module_and_data_file(wheel: tuple[Path, str]) -> None:
    """The questionnaires, templates, styles, reference data and default configuration are
    in the wheel, and so is every other module and data file of the packages (a package
    added later is found without being listed); tests and tools are not."""
    path, _ = wheel
    names = set(zipfile.ZipFile(path).namelist())
    missing = [name for name in REQUIRED if name not in names]
    assert missing == []
    in_tree = {p.relative_to(ROOT).as_posix() for package in PACKAGES
               for p in (ROOT / package).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts
               and p.name.endswith((".py", *DATA_ENDINGS))}
    assert sorted(in_tree - names) == []
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == set(PACKAGES)
    assert not [name for name in names if "__pycache__" in name]


def test_the_build_declares_every_package(wheel: tuple[Path, str]) -> None:
    """No folder of data files is left to setuptools' guess ("absent from the packages
    configuration"): each is declared, so the build says nothing about them."""
    _, output = wheel
    assert "absent from the" not in output
    assert "BuildBackendWarning" not in output


def test_the_installed_commands_work_from_an_empty_folder(wheel: tuple[Path, str],
                                                          tmp_path: Path) -> None:
    """From the wheel alone, in a folder with no config.yaml: the shipped questionnaires are
    listed, and `init` makes a database in that folder from the packaged configuration."""
    path, _ = wheel
    site = tmp_path / "site"
    zipfile.ZipFile(path).extractall(site)
    empty = tmp_path / "work"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("SVARBOT_CONFIG", None)

    def svarbot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=empty, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    listed = svarbot("flow", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"virksomhetsleder-2020\t{site}" in listed.stdout
    assert f"ordforer-2020\t{site}" in listed.stdout
    missing = svarbot("outbox", "status")
    assert missing.returncode == 2
    assert f"{empty / 'svarbot.db'}: no such database" in missing.stderr
    assert "--config" in missing.stderr
    created = svarbot("init")
    assert created.returncode == 0, created.stderr
    assert f"created the svarbot database at {empty / 'svarbot.db'}" in created.stdout
    assert sorted(p.name for p in empty.iterdir()) == ["svarbot.db"]
