"""What every `svarbot` command shares: the --config option, loading it, and failing cleanly.

A command never shows a traceback: `fail` prints one `svarbot: …` line on stderr and exits with
status 2 (how svarbot was called or configured) or 1 (a problem in what was checked).

The configuration is the file named by --config or $SVARBOT_CONFIG, else `./config.yaml`, else
the default shipped inside the package (so an installed svarbot works from any folder). Only in
the last two cases did the user not choose it, and then advice to create a database with
`svarbot init` may be the wrong advice: they may mean a configuration elsewhere (a demo's).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

import click

from bot.config import ConfigError, Settings, default_config_path, load_settings
from flows.loader import QuestionnaireError, load_reference
from flows.model import Questionnaire

if TYPE_CHECKING:
    from sqlalchemy import Engine

CONFIG_HELP = ("Configuration file; paths in it are relative to its folder (default: "
               "$SVARBOT_CONFIG, else ./config.yaml, else the shipped default).")
config_option = click.option("--config", "config_path", envvar="SVARBOT_CONFIG",
                             help=CONFIG_HELP)

#: Where this command's configuration came from: named (--config, $SVARBOT_CONFIG), the
#: current folder's config.yaml, or the default shipped in the package.
ConfigSource = Literal["named", "local", "shipped"]
CONFIG_SOURCE_KEY = "svarbot.config_source"
#: The advice every "there is no database yet" message ends with.
INIT_ADVICE = "create it with `svarbot init`"


def fail(message: str, status: int = 2) -> NoReturn:
    """Print one line for the user and exit with `status`."""
    if message.endswith(INIT_ADVICE):
        message += _other_config_hint()
    click.echo(f"svarbot: {message}", err=True)
    sys.exit(status)


def _other_config_hint() -> str:
    """When the user did not choose the configuration, how to choose the one they meant."""
    context = click.get_current_context(silent=True)
    source = context.meta.get(CONFIG_SOURCE_KEY) if context is not None else None
    if source not in ("local", "shipped"):
        return ""
    which = ("./config.yaml" if source == "local"
             else "the shipped default configuration (there is no ./config.yaml here)")
    found = sorted(Path().glob("*/config.yaml"))
    example = f", e.g. --config {shlex.quote(str(found[0]))}" if found else ""
    return (f"; that is the database of {which}: for another, give its configuration with "
            f"--config FILE or SVARBOT_CONFIG{example}")


def load_config(path: str | None) -> Settings:
    """Read the configuration or exit with status 2 and one line naming the key.

    Without `path`: `./config.yaml` if there is one, else the default shipped in the package,
    whose relative paths (the SQLite file) are taken in the current folder.
    """
    source: ConfigSource = "named"
    file = Path(path) if path else Path("config.yaml")
    relative_to: Path | None = None
    if not path:
        source = "local" if file.exists() else "shipped"
    if source == "shipped":
        file, relative_to = default_config_path(), Path.cwd()
    context = click.get_current_context(silent=True)
    if context is not None:
        context.meta[CONFIG_SOURCE_KEY] = source
    try:
        return load_settings(file, relative_to=relative_to)
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
