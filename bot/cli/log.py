"""`svarbot log`: why someone got (or did not get) each message, from the delivery history.

`--respondent ID` shows one person's time line: invitations sent, servers' "try later" and
when the next attempt is, reminders, replies received and what they were taken for, opt-outs
and bounces. The respondent may also be named by a piece of their name or address, as
`svarbot find` searches (several matches are listed, and nothing else is shown). `--tail N`
shows the last N events across everyone, for the morning look at what happened overnight.
Only event rows are read (see `storage.history`): no answer is ever shown. Every word is from
the history's table for `--lang` (bokmål by default, or English), so one output is in one
language and shows no internal code.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from bot.cli.common import config_option, open_configured
from bot.cli.common import fail as _fail
from bot.cli.find import lang_option

if TYPE_CHECKING:
    from storage.history import Entry, Words

_COLUMNS = ("time", "survey", "what", "status", "detail")


@click.command("log")
@click.option("--respondent", metavar="ID|NAME|ADDRESS",
              help="Show this respondent's history: the respondent id, or a piece of the name "
                   "or address that fits one person (`svarbot find TEXT` lists who matches).")
@click.option("--survey", help="Only this survey's invitation (with --respondent).")
@click.option("--tail", type=click.IntRange(min=1), metavar="N",
              help="Show the last N events across every respondent.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@lang_option
@config_option
def log_command(respondent: str | None, survey: str | None, tail: int | None,
                as_json: bool, lang: str, config_path: str | None) -> None:
    """Show the delivery history: what was sent or received, when, and why.

    Everything is told in one language (--lang: bokmål by default, or English). Times are
    Norwegian local time in the table and UTC in JSON. A name or address that fits several
    people lists them (exit status 1); choose one by its id.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from bot.cli.find import resolve
    from storage.db import session_factory
    from storage.history import Words, recent_history, respondent_history

    words = Words(lang)
    if (respondent is None) == (tail is None):
        _fail(words("log.whose"))
    if survey is not None and respondent is None:
        _fail(words("log.survey"))
    engine = open_configured(config_path)
    respondent_id: int | None = None
    try:
        with session_factory(engine)() as session:
            if respondent is not None:
                respondent_id = resolve(session, respondent, words, survey=survey).id
                entries = respondent_history(session, respondent_id, survey, lang=lang)
            else:
                entries = recent_history(session, tail or 0, lang=lang)
    except SQLAlchemyError as exc:
        _fail(words("log.database",
                    str(getattr(exc, "orig", exc)).strip().splitlines()[0]))
    finally:
        engine.dispose()
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.as_dict(), ensure_ascii=False))
        return
    _print_table(entries, respondent_id, survey, words)


def _print_table(entries: list[Entry], respondent_id: int | None, survey: str | None,
                 words: Words) -> None:
    from rich.console import Console
    from rich.table import Table

    from storage.history import local_time

    if respondent_id is None:
        title = words("title.tail", len(entries))
    else:
        title = words("title.respondent", respondent_id) + (f", {survey}" if survey else "")
    if not entries:
        click.echo(words("title.none", title))
        return
    table = Table(title=title)
    columns = _COLUMNS if respondent_id is not None else ("time", "respondent", *_COLUMNS[1:])
    for column in columns:
        table.add_column(words(f"column.{column}"), overflow="fold")
    for entry in entries:
        cells = [local_time(entry.at), entry.survey, entry.what,
                 words.status(entry.source, entry.status), entry.detail]
        if respondent_id is None:
            cells.insert(1, "" if entry.respondent_id is None else str(entry.respondent_id))
        table.add_row(*cells)
    Console(width=140, highlight=False).print(table)


COMMANDS: list[click.Command] = [log_command]
