"""`svarbot web`: the contact person's desk and the operators' dashboard in the browser."""

from __future__ import annotations

import asyncio
import os
import signal

import click

from bot.cli.common import config_option, fail, load_config


@click.command("web")
@click.option("--host", help="Address to listen on (default web.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535),
              help="Port to listen on (default web.port, 8080).")
@config_option
def web_command(host: str | None, port: int | None, config_path: str | None) -> None:
    """Serve the desk and the dashboard until Ctrl-C.

    Log in with a user made by `svarbot user add`. Keep it on 127.0.0.1 and put a TLS
    reverse proxy in front of it for others to reach it (README.md, "The desk and the
    dashboard"). `svarbot run` serves the same pages when web.enabled is true.
    """
    from bot.logs import configure
    from bot.runner import survey_contexts
    from bot.web.context import WebContext
    from bot.web.serve import WebServer
    from storage.answers import AnswerStore, LinkKey, NoAnswerStore
    from storage.db import StorageError, session_factory
    from storage.migrate import open_database

    settings = load_config(config_path)
    configure(settings.logging.level)
    try:
        # The pages record no answers (a page sent again, a desk answer): without the key
        # they work all the same.
        store: AnswerStore = (AnswerStore(LinkKey.from_env(settings.privacy.link_key_env))
                              if os.environ.get(settings.privacy.link_key_env)
                              else NoAnswerStore())
        engine = open_database(settings.database.url)
    except StorageError as exc:
        fail(str(exc))
    ctx = WebContext(settings=settings, factory=session_factory(engine),
                     surveys=survey_contexts(settings), store=store)
    server = WebServer(ctx, host=host or settings.web.host,
                       port=settings.web.port if port is None else port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(s: WebServer) -> None:
            public = settings.web.public_url or f"http://{s.host}:{s.port}/"
            click.echo(f"svarbot web: open {public} (Ctrl-C stops)")

        await server.run(stop, on_ready=ready)

    try:
        asyncio.run(main())
    except OSError as exc:
        fail(str(exc))
    finally:
        engine.dispose()


COMMANDS = [web_command]
