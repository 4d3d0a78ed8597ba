"""The `svarbot` commands for the email channel: `mail inspect` and `mail quarantine`.

`mail inspect` answers the operator's "why was this not counted?": it reads saved messages
exactly as the dispatcher does and says what each is (answer, bounce, auto-reply …), which
invitation it belongs to, and what would reach the questionnaire. It needs no database. It
reads folders as well as files (a quarantine saved with `mail quarantine --save`, a
maildir), and like the dispatcher it never stops at a message it cannot read: that message
gets its own line with the reason, and the run goes on. `mail quarantine` lists, saves and
releases the mail that was set aside.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from bot.cli.common import config_option, load_config
from bot.cli.common import fail as _fail
from bot.config import EmailSettings

log = logging.getLogger(__name__)

# --- mail inspect ---------------------------------------------------------------------------


@click.group("mail")
def mail_group() -> None:
    """Look at email the way svarbot reads it."""


@mail_group.command("inspect")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per message, one per line.")
@click.option("--text", "with_text", is_flag=True,
              help="With --json: include the trimmed text itself (it holds the answers).")
@click.option("--glob", "pattern", default="*.eml", show_default=True, metavar="PATTERN",
              help="In folders: the files to read (searched recursively); '*' for a maildir.")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Date to read relative dates against (default: today).")
@config_option
def mail_inspect(paths: tuple[Path, ...], as_json: bool, with_text: bool, pattern: str,
                 today: dt.datetime | None, config_path: str | None) -> None:
    """Show how svarbot reads PATHS: messages (.eml) and folders of them.

    For each message: its kind, the reason, the invitation token, the trimmed answer, a
    bounce's failure, an away date. Kinds: answer, query (a question for the contact person),
    opt_out, bounce, auto_reply (never an answer), forward and unknown (both kept in
    quarantine for an operator), and unreadable (what `svarbot run` quarantines unread: not
    a message, too large, nested too deep …).

    With --json each message is one line: "file", "outcome" ("read", "unreadable" or
    "error"), "kind", "reason", "token", "text_chars" (the length of the trimmed answer, and
    the text itself only with --text) and the rest; a message that could not be read has an
    "error". Exit status 0 when every message was read, 1 when some could not be (unreadable,
    or the file could not be opened); the others are reported all the same.
    """
    settings = load_config(config_path)
    day = (today or dt.datetime.now(dt.UTC)).date()
    seen = failed = 0
    for path, problem in _messages(paths, pattern):
        info: dict[str, object] = (
            inspect_file(path, settings.email, today=day) if problem is None else
            {"file": _path_text(path), "outcome": "error", "kind": None, "error": problem})
        seen += 1
        if "error" in info:
            failed += 1
        if as_json:
            if not with_text:
                info.pop("text", None)
            click.echo(_json_line(info))
        else:
            _print_reading(info)
        sys.stdout.flush()  # each line as it is made: a long run shows where it is
    if seen == 0:
        click.echo(f"svarbot: no messages ({pattern}) in {', '.join(map(str, paths))}",
                   err=True)
    elif failed:
        click.echo(f"svarbot: {seen - failed} of {seen} messages read, {failed} could not be "
                   f"read", err=True)
    if failed:
        sys.exit(1)


def _messages(paths: tuple[Path, ...], pattern: str) -> Iterator[tuple[Path, str | None]]:
    """The files named, and in the folders named every file matching `pattern`, sorted; each
    with None, or with why a folder could not be searched."""
    for path in paths:
        if not path.is_dir():
            yield path, None
            continue
        try:
            found = sorted(p for p in path.rglob(pattern) if p.is_file())
        except OSError as exc:
            yield path, exc.strerror or type(exc).__name__
            continue
        for file in found:
            yield file, None


def inspect_file(path: Path, settings: EmailSettings, *, today: dt.date) -> dict[str, object]:
    """What `mail inspect` says about the message in `path`; never raises.

    "outcome" is "read" (the rest is `reading.describe`, and "text_chars"), "unreadable"
    (the reading path's quarantine reason in "reason", and "error") or "error" (the file
    could not be opened, or reading failed in a way nobody foresaw).
    """
    from bot.channels.email.inbound import BadMail
    from bot.channels.email.reading import describe, read_mail

    name = _path_text(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return {"file": name, "outcome": "error", "kind": None,
                "error": exc.strerror or type(exc).__name__}
    try:
        info = describe(read_mail(raw, settings, today=today))
    except BadMail as exc:
        return {"file": name, "outcome": "unreadable", "kind": "unreadable",
                "reason": exc.reason, "error": str(exc), "token": None, "text_chars": 0,
                "bounce": None, "return_date": None}
    except Exception as exc:  # read_mail raises only BadMail; one file must not end the run
        log.exception("%s: reading failed", name)
        return {"file": name, "outcome": "error", "kind": None,
                "error": f"internal error: {type(exc).__name__}"}
    return {"file": name, "outcome": "read", **info}


def _path_text(path: Path) -> str:
    """The path as printable text (a file name need not be UTF-8)."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _json_line(info: dict[str, object]) -> str:
    line = json.dumps(info, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate somewhere: escape rather than fail
        line = json.dumps(info)
    return line


def _print_reading(info: dict[str, object]) -> None:
    if info.get("outcome") != "read":
        reason = f"reason: {info['reason']}, " if info.get("reason") else ""
        click.echo(f"{info['file']}: {info['outcome']}  ({reason}{info.get('error')})")
        return
    token = info.get("token")
    shown = f"{str(token)[:6]}…" if isinstance(token, str) else "none"
    click.echo(f"{info['file']}: {info['kind']}  (reason: {info.get('reason')}, token: {shown}"
               f"{', from ' + str(info['token_source']) if info.get('token_source') else ''})")
    bounce = info.get("bounce")
    if isinstance(bounce, dict):
        kind = "permanent" if bounce.get("permanent") else "temporary"
        click.echo(f"  bounce: {kind}, status {bounce.get('status')}, "
                   f"recipients: {', '.join(bounce.get('recipients') or []) or '-'}")
    if info.get("return_date"):
        click.echo(f"  away until: {info['return_date']}")
    text = str(info.get("text") or "")
    if text:
        click.echo(f"  text ({info.get('trim_rule')}"
                   f"{', needs review' if info.get('needs_review') else ''}):")
        for line in text.splitlines():
            click.echo(f"    {line}")


@mail_group.command("quarantine")
@click.option("--save", "save_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write each quarantined message to DIR/ID.eml (for `mail inspect`).")
@click.option("--release", "release_ids", multiple=True, type=int, metavar="ID",
              help="Hand message ID back to the dispatcher (after a fix); repeatable.")
@config_option
def mail_quarantine(save_dir: Path | None, release_ids: tuple[int, ...],
                    config_path: str | None) -> None:
    """List the mail svarbot set aside (unreadable, no token, forwards …), with the reason.

    Nothing in the quarantine is lost: the message's bytes are kept until it is released and
    handled, or the survey is sealed.
    """
    from rich.console import Console
    from rich.table import Table

    from storage.db import StorageError, session_factory, transaction
    from storage.inbox import quarantined, release_quarantined
    from storage.migrate import open_database

    settings = load_config(config_path)
    try:
        engine = open_database(settings.database.url)
    except StorageError as exc:
        _fail(str(exc))
    factory = session_factory(engine)
    try:
        if release_ids:
            with transaction(factory) as session:
                released = release_quarantined(session, release_ids,
                                               now=dt.datetime.now(dt.UTC))
            click.echo(f"{released} of {len(set(release_ids))} messages handed back to the "
                       f"dispatcher (`svarbot run` reads them again)")
            return
        with factory() as session:
            rows = quarantined(session)
        table = Table(title=f"Karantene: {len(rows)} meldinger")
        for column in ("id", "mottatt", "årsak", "kanal", "byte"):
            table.add_column(column, justify="right" if column in ("id", "byte") else "left")
        for row in rows:
            table.add_row(str(row.id), f"{row.received_at:%Y-%m-%d %H:%M}", row.error or "",
                          row.channel, str(len(row.raw or b"")))
            if save_dir is not None and row.raw is not None:
                save_dir.mkdir(parents=True, exist_ok=True)
                (save_dir / f"{row.id}.eml").write_bytes(row.raw)
        Console().print(table)
        if save_dir is not None and rows:
            click.echo(f"saved to {save_dir}/; see `svarbot mail inspect {save_dir}/ID.eml`")
    finally:
        engine.dispose()


COMMANDS = [mail_group]
