"""`svarbot log`: why someone got (or did not get) each message, from the delivery history.

`--respondent ID` shows one person's time line: invitations sent, servers' "try later" and
when the next attempt is, reminders, replies received and what they were taken for, opt-outs
and bounces. `--tail N` shows the last N events across everyone, for the morning look at what
happened overnight. Only event rows are read (see `storage.history`): no answer is ever shown.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from bot.cli.common import config_option, open_configured
from bot.cli.common import fail as _fail

if TYPE_CHECKING:
    from storage.history import Entry

_COLUMNS = ("tid", "undersøkelse", "hva", "status", "detalj")


@click.command("log")
@click.option("--respondent", "respondent_id", type=int, metavar="ID",
              help="Show this respondent's history (the id in `svarbot contacts`).")
@click.option("--survey", help="Only this survey's invitation (with --respondent).")
@click.option("--tail", type=click.IntRange(min=1), metavar="N",
              help="Show the last N events across every respondent.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@config_option
def log_command(respondent_id: int | None, survey: str | None, tail: int | None,
                as_json: bool, config_path: str | None) -> None:
    """Show the delivery history: what was sent or received, when, and why.

    Times are Norwegian local time in the table and UTC in JSON.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import session_factory
    from storage.history import recent_history, respondent_history

    if (respondent_id is None) == (tail is None):
        _fail("say whose history to show: --respondent ID, or --tail N for everyone's")
    if survey is not None and respondent_id is None:
        _fail("--survey goes with --respondent")
    engine = open_configured(config_path)
    try:
        with session_factory(engine)() as session:
            if respondent_id is not None:
                entries = respondent_history(session, respondent_id, survey)
            else:
                entries = recent_history(session, tail or 0)
    except SQLAlchemyError as exc:
        _fail(f"database error: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}")
    finally:
        engine.dispose()
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.as_dict(), ensure_ascii=False))
        return
    _print_table(entries, respondent_id, survey)


def _print_table(entries: list[Entry], respondent_id: int | None,
                 survey: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from storage.history import EVENT_NAMES, INVITATION_NAMES, local_time

    if respondent_id is None:
        title = f"Siste {len(entries)} hendelser"
    else:
        title = f"Respondent {respondent_id}" + (f", {survey}" if survey else "")
    if not entries:
        click.echo(f"{title}: ingen hendelser")
        return
    table = Table(title=title)
    columns = _COLUMNS if respondent_id is not None else ("tid", "respondent", *_COLUMNS[1:])
    for column in columns:
        table.add_column(column, overflow="fold")
    for entry in entries:
        names = INVITATION_NAMES if entry.source == "invitation" else EVENT_NAMES
        cells = [local_time(entry.at), entry.survey, entry.what,
                 names.get(entry.status, entry.status), entry.detail]
        if respondent_id is None:
            cells.insert(1, "" if entry.respondent_id is None else str(entry.respondent_id))
        table.add_row(*cells)
    Console(width=140).print(table)


COMMANDS: list[click.Command] = [log_command]
