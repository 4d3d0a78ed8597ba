"""The `svarbot` commands for the email channel: `mail inspect` and `mail quarantine`.

`mail inspect` answers the operator's "why was this not counted?": it reads a saved message
exactly as the dispatcher does and says what it is (answer, bounce, auto-reply …), which
invitation it belongs to, and the text that would reach the questionnaire. It needs no
database. `mail quarantine` lists, saves and releases the mail that was set aside.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from bot.cli.common import config_option, load_config
from bot.cli.common import fail as _fail

# --- mail inspect ---------------------------------------------------------------------------


@click.group("mail")
def mail_group() -> None:
    """Look at email the way svarbot reads it."""


@mail_group.command("inspect")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per file).")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Date to read relative dates against (default: today).")
@config_option
def mail_inspect(files: tuple[Path, ...], as_json: bool, today: dt.datetime | None,
                 config_path: str | None) -> None:
    """Show how svarbot reads FILES (.eml): kind, token, the answer text, bounce, return date.

    Kinds: answer, query (a question for the contact person), opt_out, bounce, auto_reply
    (never an answer), forward and unknown (both kept in quarantine for an operator).
    """
    from bot.channels.email.inbound import BadMail
    from bot.channels.email.reading import describe, read_mail

    settings = load_config(config_path)
    day = (today or dt.datetime.now(dt.UTC)).date()
    for path in files:
        try:
            info = describe(read_mail(path.read_bytes(), settings.email, today=day))
        except BadMail as exc:
            info = {"kind": "unreadable", "reason": exc.reason, "token": None, "text": "",
                    "bounce": None, "return_date": None}
        except OSError as exc:
            _fail(f"{path}: {exc.strerror or exc}")
        info = {"file": str(path), **info}
        if as_json:
            click.echo(json.dumps(info, ensure_ascii=False))
        else:
            _print_reading(info)


def _print_reading(info: dict[str, object]) -> None:
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
