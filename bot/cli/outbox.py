"""The `svarbot outbox` commands: see where outbound messages stand, and replay dead ones.

Messages die when they kept failing temporarily for the whole retry window (a server outage,
an account problem). Once the cause is fixed, the operator replays them with `outbox retry`;
the running sender picks them up within a second. Like every svarbot command, a problem with
the configuration or database is one line on stderr and exit status 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from bot.cli.common import config_option, open_configured
from bot.cli.common import fail as _fail

if TYPE_CHECKING:
    pass


@click.group("outbox")
def outbox() -> None:
    """Inspect and repair the queue of outbound messages."""


@outbox.command("status")
@config_option
def status_command(config_path: str | None) -> None:
    """How many messages are in each status, per kind of message."""
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import session_factory, transaction
    from storage.outbox import counts

    engine = open_configured(config_path)
    try:
        with transaction(session_factory(engine)) as session:
            rows = counts(session)
    except SQLAlchemyError as exc:
        _fail(f"database error: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}")
    finally:
        engine.dispose()
    if not rows:
        click.echo("the outbox is empty")
        return
    table = Table(title="outbox")
    table.add_column("status")
    table.add_column("kind")
    table.add_column("messages", justify="right")
    for status, kind, number in rows:
        table.add_row(status, kind, str(number))
    table.add_row("total", "", str(sum(n for _s, _k, n in rows)), style="bold")
    Console(width=100).print(table)


@outbox.command("retry")
@click.option("--id", "ids", type=int, multiple=True, metavar="N",
              help="Replay the dead message with this outbox id (repeatable).")
@click.option("--all-dead", is_flag=True, help="Replay every dead message.")
@config_option
def retry_command(ids: tuple[int, ...], all_dead: bool, config_path: str | None) -> None:
    """Queue dead messages again (after the cause of their failure was fixed)."""
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import session_factory, transaction
    from storage.outbox import replay

    if not ids and not all_dead:
        _fail("say which messages to replay: --id N (repeatable) or --all-dead")
    if ids and all_dead:
        _fail("--id and --all-dead exclude each other")
    engine = open_configured(config_path)
    try:
        with transaction(session_factory(engine)) as session:
            replayed = replay(session, ids=None if all_dead else list(ids),
                              now=datetime.now(UTC))
    except SQLAlchemyError as exc:
        _fail(f"database error: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}")
    finally:
        engine.dispose()
    click.echo(f"replayed {replayed} dead message{'' if replayed == 1 else 's'}")


COMMANDS: list[click.Command] = [outbox]
