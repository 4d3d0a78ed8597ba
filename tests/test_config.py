"""Configuration: the shipped file is valid and every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_config_is_valid_and_names_both_surveys() -> None:
    """config.yaml as shipped loads and runs the two barometer surveys."""
    settings = load_settings(ROOT / "config.yaml")
    assert [s.id for s in settings.surveys] == ["virksomhetsleder-2020", "ordforer-2020"]
    assert settings.privacy.min_cell == 5
    assert settings.database.url.startswith("sqlite")


def test_every_key_in_shipped_config_is_commented() -> None:
    """Each setting in config.yaml has a comment above it or in its section."""
    lines = (ROOT / "config.yaml").read_text(encoding="utf-8").splitlines()
    uncommented = []
    for n, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":"):
            continue
        block = lines[max(0, n - 4):n]
        if not any(b.strip().startswith("#") for b in block) and "#" not in line:
            uncommented.append(line)
    assert uncommented == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("database:\n  ulr: x\n", "database.ulr: unknown key (did you mean 'url'?)"),
        ("databse:\n  url: x\n", "databse: unknown key (did you mean 'database'?)"),
        ("privacy:\n  min_cell: five\n", "privacy.min_cell: input should be a valid integer"),
        ("email:\n  smtp:\n    port: 99999\n", "email.smtp.port: input should be less than"),
        ("surveys:\n  - id: x\n    questionaire: y\n", "surveys.0.questionaire: unknown key"),
        ("- a\n- b\n", "must be a mapping of sections"),
        ("database: [\n", "not valid YAML"),
    ],
)
def test_mistakes_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    """One line that names the file and the key (and a likely fix for a typo)."""
    path = tmp_path / "mine.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A missing configuration file is named."""
    with pytest.raises(ConfigError, match=r"nope\.yaml: configuration file not found"):
        load_settings(tmp_path / "nope.yaml")
