"""What every `svarbot` command shares: the --config option, loading it, and failing cleanly.

A command never shows a traceback: `fail` prints one `svarbot: …` line on stderr and exits with
status 2 (how svarbot was called or configured) or 1 (a problem in what was checked).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import click

from bot.config import ConfigError, Settings, load_settings
from flows.loader import QuestionnaireError, load_reference
from flows.model import Questionnaire

if TYPE_CHECKING:
    from sqlalchemy import Engine

CONFIG_HELP = "Configuration file (default: ./config.yaml, or $SVARBOT_CONFIG)."
config_option = click.option("--config", "config_path", envvar="SVARBOT_CONFIG",
                             help=CONFIG_HELP)


def fail(message: str, status: int = 2) -> NoReturn:
    """Print one line for the user and exit with `status`."""
    click.echo(f"svarbot: {message}", err=True)
    sys.exit(status)


def load_config(path: str | None) -> Settings:
    """Read the configuration or exit with status 2 and one line naming the key."""
    try:
        return load_settings(path or "config.yaml")
    except ConfigError as exc:
        fail(str(exc))


def questionnaire(path_or_id: str) -> Questionnaire:
    """A questionnaire from a file path, or a shipped one by id; exits 1 on errors."""
    try:
        return load_reference(path_or_id)
    except QuestionnaireError as exc:
        for problem in exc.problems:
            click.echo(problem, err=True)
        sys.exit(1)


def open_configured(config_path: str | None) -> Engine:
    """The configured database, checked and ready, or exit 2 with one line (the caller
    disposes of the engine)."""
    from storage.db import StorageError
    from storage.migrate import open_database

    settings = load_config(config_path)
    try:
        return open_database(settings.database.url)
    except StorageError as exc:
        fail(str(exc))
