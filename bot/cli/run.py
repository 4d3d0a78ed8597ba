"""The `svarbot` commands that run a survey on every channel: `invite` and `run`.

`invite` queues the first message of every pending invitation; `run` delivers and answers
until stopped. Neither belongs to a channel: each message goes out on the invitation's own.
"""

from __future__ import annotations

import datetime as dt

import click

from bot.cli.common import config_option, load_config
from bot.cli.common import fail as _fail

# --- invite ---------------------------------------------------------------------------------


@click.command("invite")
@click.argument("survey_id")
@click.option("--limit", type=click.IntRange(min=1), help="Queue at most this many.")
@config_option
def invite_command(survey_id: str, limit: int | None, config_path: str | None) -> None:
    """Queue the invitation of every pending invitation of SURVEY_ID (on the plan's channel).

    Each invitation carries the first page of questions. Running it again queues nothing
    twice; `svarbot run` sends what is queued.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from bot.channels.registry import configured_channels
    from bot.conversation.outgoing import invitation_channel, others_than, queue_invitations
    from bot.runner import survey_contexts
    from storage.answers import AnswerStore, LinkKey
    from storage.db import StorageError, session_factory, transaction, unavailable
    from storage.migrate import open_database

    settings = load_config(config_path)
    contexts = survey_contexts(settings)
    if survey_id not in contexts:
        _fail(f"unknown survey '{survey_id}' (configured: {', '.join(contexts) or 'none'})")
    channels = configured_channels(settings)
    try:
        channel = invitation_channel(channels, contexts[survey_id])
    except KeyError as exc:
        _fail(f"survey '{survey_id}': its plan sends on {exc}, which is not enabled")
    try:
        store = AnswerStore(LinkKey.from_env(settings.privacy.link_key_env))
        engine = open_database(settings.database.url)
        with transaction(session_factory(engine)) as session:
            queued = queue_invitations(session, channel, contexts[survey_id], store,
                                       now=dt.datetime.now(dt.UTC), limit=limit,
                                       others=others_than(channels, channel))
        engine.dispose()
    except StorageError as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        reason = unavailable(exc)
        if reason is None:
            raise
        _fail(f"nothing was queued: the database cannot be used ({reason}); run this again "
              "when it can, nothing is queued twice")
    click.echo(f"{queued} invitations queued for {survey_id}")


# --- run ------------------------------------------------------------------------------------


@click.command("run")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes sharing the work (more than 1 needs PostgreSQL).")
@click.option("--worker-of", "worker_of", type=int, hidden=True,
              help="Internal: run as an extra worker of this process id.")
@config_option
def run_command(workers: int, worker_of: int | None, config_path: str | None) -> None:
    """Send the outbox, read replies (IMAP and/or the SMTP/LMTP listener, and the Telegram
    bot when telegram.enabled) and answer them.

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

    from bot.campaign.scheduler import campaign_ticks
    from bot.channels.base import ChannelError
    from bot.runner import (
        Service,
        WorkerPool,
        run_until_signalled,
        survey_contexts,
        worker_command,
    )

    factory = session_factory(engine)
    contexts = survey_contexts(settings)
    try:
        service = Service(settings=settings, session_factory=factory, store=store,
                          surveys=contexts, worker=leadership.name, leadership=leadership,
                          ticks=campaign_ticks(factory, settings, contexts, store),
                          listen=worker_of is None)
    except ChannelError as exc:
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


COMMANDS = [invite_command, run_command]
