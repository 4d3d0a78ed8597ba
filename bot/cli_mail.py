"""The `svarbot` commands for the email channel: `run`, `invite` and `mail inspect`.

`mail inspect` answers the operator's "why was this not counted?": it reads a saved message
exactly as the dispatcher does and says what it is (answer, bounce, auto-reply …), which
invitation it belongs to, and the text that would reach the questionnaire. It needs no
database. `invite` queues the first message of every pending email invitation; `run` delivers
and answers until stopped.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from bot.cli_common import config_option, load_config
from bot.cli_common import fail as _fail

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
    from bot.mail.inbound import BadMail
    from bot.mail.reading import describe, read_mail

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


# --- invite ---------------------------------------------------------------------------------


@click.command("invite")
@click.argument("survey_id")
@click.option("--limit", type=click.IntRange(min=1), help="Queue at most this many.")
@config_option
def invite_command(survey_id: str, limit: int | None, config_path: str | None) -> None:
    """Queue the invitation of every pending email invitation of SURVEY_ID.

    Each invitation carries the first page of questions. Running it again queues nothing
    twice; `svarbot run` sends what is queued.
    """
    from bot.mail.outgoing import queue_invitations
    from bot.runner import survey_contexts
    from storage.answers import AnswerStore, LinkKey
    from storage.db import StorageError, session_factory, transaction
    from storage.migrate import open_database

    settings = load_config(config_path)
    contexts = survey_contexts(settings)
    if survey_id not in contexts:
        _fail(f"unknown survey '{survey_id}' (configured: {', '.join(contexts) or 'none'})")
    try:
        store = AnswerStore(LinkKey.from_env(settings.privacy.link_key_env))
        engine = open_database(settings.database.url)
        with transaction(session_factory(engine)) as session:
            queued = queue_invitations(session, settings, contexts[survey_id], store,
                                       now=dt.datetime.now(dt.UTC), limit=limit)
        engine.dispose()
    except StorageError as exc:
        _fail(str(exc))
    click.echo(f"{queued} invitations queued for {survey_id}")


# --- run ------------------------------------------------------------------------------------


@click.command("run")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes sharing the work (more than 1 needs PostgreSQL).")
@click.option("--worker-of", "worker_of", type=int, hidden=True,
              help="Internal: run as an extra worker of this process id.")
@config_option
def run_command(workers: int, worker_of: int | None, config_path: str | None) -> None:
    """Send the outbox, read replies (IMAP and/or the SMTP/LMTP listener) and answer them.

    Also queues invitations and reminders when they are due. With --workers N on PostgreSQL,
    N processes share sending and answering; the first one alone binds the listener's port,
    and one of them at a time (the leader) runs the campaign clock and the IMAP reader.

    Runs until SIGTERM or Ctrl-C, then stops cleanly, finishing the messages in hand (the
    first process stops its workers the same way).
    """
    import os

    from bot.leader import AlreadyRunning, Leadership, process_name
    from bot.logs import configure
    from storage.answers import AnswerStore, LinkKey
    from storage.db import StorageError, session_factory
    from storage.migrate import open_database

    settings = load_config(config_path)
    configure(settings.logging.level)
    try:
        store = AnswerStore(LinkKey.from_env(settings.privacy.link_key_env))
        engine = open_database(settings.database.url)
    except StorageError as exc:
        _fail(str(exc))
    # Refuse a second process on SQLite before the (slow) imports of everything else.
    leadership = Leadership(settings.database.url, name=process_name())
    try:
        if workers > 1 and not leadership.is_postgres:
            _fail(f"--workers {workers}: on SQLite only one process can run — use PostgreSQL "
                  f"for several (database.url is {engine.url.render_as_string()})")
        leadership.claim()
    except AlreadyRunning as exc:
        engine.dispose()
        _fail(str(exc))

    from bot.mail.sender import SenderError
    from bot.runner import (
        Service,
        WorkerPool,
        run_until_signalled,
        survey_contexts,
        worker_command,
    )
    from bot.scheduler import campaign_ticks

    factory = session_factory(engine)
    contexts = survey_contexts(settings)
    try:
        service = Service(settings=settings, session_factory=factory, store=store,
                          surveys=contexts, worker=leadership.name, leadership=leadership,
                          ticks=campaign_ticks(factory, settings, contexts, store),
                          listen=worker_of is None)
    except SenderError as exc:
        leadership.close()
        engine.dispose()
        _fail(str(exc))
    pool = None
    if workers > 1:
        config = os.path.abspath(config_path or "config.yaml")
        pool = WorkerPool(command=worker_command(config, os.getpid()), count=workers - 1)
    try:
        run_until_signalled(service, pool=pool, parent_pid=worker_of)
    finally:
        leadership.close()
        engine.dispose()


COMMANDS = [mail_group, invite_command, run_command]
