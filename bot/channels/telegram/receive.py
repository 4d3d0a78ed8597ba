"""Telegram updates into the inbox: by long polling (the leader) or a webhook.

Either way an update is acknowledged only after it is stored: a poller asks for the next
updates (`offset`, which tells Telegram the earlier ones are done) only once the previous
batch is committed, and the webhook answers 200 only after the commit. Storing is by update
id, so an update Telegram sends twice (after a crash before the acknowledgement) is stored
once. The offset is not kept anywhere: it is the newest update id in the inbox, plus one.

Only one process may poll a bot (a second gets 409 Conflict), so the poller runs on the
leader; the webhook listens on the first process of a `--workers` group.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import telegram
from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker
from telegram import BotCommand
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError

from bot.channels.telegram.texts import COMMANDS
from bot.channels.telegram.transport import retry_seconds
from bot.config import TelegramSettings
from storage.db import transaction
from storage.health import Pulse
from storage.inbox import newest_external, store_inbound

log = logging.getLogger(__name__)

#: The updates svarbot reads; everything else Telegram is told not to send.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
#: After this long without updates Telegram may number the next one anew (randomly).
_FRESH_NUMBERING = dt.timedelta(days=6)


def store_updates(factory: sessionmaker[Session], updates: Sequence[dict[str, object]], *,
                  now: dt.datetime) -> int:
    """Store the updates (JSON objects as Telegram sent them) in one transaction; how many
    were new."""
    stored = 0
    with transaction(factory) as session:
        for update in updates:
            update_id = update.get("update_id")
            if not isinstance(update_id, int):
                continue
            raw = json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode()
            if store_inbound(session, channel="telegram", external_id=str(update_id), raw=raw,
                             message_id=None, now=now) is not None:
                stored += 1
    return stored


def resume_offset(factory: sessionmaker[Session], *, now: dt.datetime) -> int | None:
    """Where polling resumes: after the newest stored update (None: from whatever is kept)."""
    with factory() as session:
        newest = newest_external(session, "telegram")
    if newest is None or not newest[0].isdigit() or now - newest[1] > _FRESH_NUMBERING:
        return None
    return int(newest[0]) + 1


async def announce_commands(bot: telegram.Bot) -> None:
    """The command menu in the chat (the words the engine reads as commands)."""
    await bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])


class Poller:
    """Long-polls getUpdates and stores what comes; only the leader runs it."""

    leader_only = True
    binds_port = False

    def __init__(self, settings: TelegramSettings, bot: telegram.Bot,
                 session_factory: sessionmaker[Session], on_stored: Callable[[], None],
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._settings = settings
        self._bot = bot
        self._factory = session_factory
        self._on_stored = on_stored
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._pulse = Pulse(session_factory, "telegram", detail="polling")

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="telegram-poller")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TelegramError, RuntimeError):
            await self._bot.shutdown()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _run(self) -> None:
        backoff = 1.0
        offset: int | None = None
        ready = False
        while not self._stop.is_set():
            try:
                if not ready:
                    await self._bot.initialize()
                    await self._bot.delete_webhook(drop_pending_updates=False)
                    await announce_commands(self._bot)
                    offset = await asyncio.to_thread(resume_offset, self._factory,
                                                     now=self._clock())
                    ready = True
                    log.info("telegram: polling for updates")
                updates = await self._bot.get_updates(
                    offset=offset, timeout=self._settings.poll_timeout,
                    allowed_updates=list(ALLOWED_UPDATES))
                backoff = 1.0
                await asyncio.to_thread(self._pulse, self._clock())
            except Conflict:
                log.warning("telegram: another process polls this bot (409 Conflict); "
                            "trying again in 5 s")
                await self._pause(5.0)
                continue
            except RetryAfter as exc:
                await self._pause(retry_seconds(exc))
                continue
            except InvalidToken:
                log.error("telegram: the bot token is not valid (telegram.token_env)")  # noqa: TRY400 - no traceback for a known cause
                await self._pause(60.0)
                continue
            except NetworkError as exc:
                log.warning("telegram: polling failed (%s); trying again in %.0f s",
                            type(exc).__name__, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if not updates:
                continue
            raw = [update.to_dict() for update in updates]
            try:
                stored = await asyncio.to_thread(store_updates, self._factory, raw,
                                                 now=self._clock())
            except Exception:  # the database is away: ask for the same updates again
                log.exception("telegram: could not store %d updates; asking again", len(raw))
                await self._pause(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            offset = updates[-1].update_id + 1
            if stored:
                self._on_stored()


class Webhook:
    """Takes Telegram's POSTs on `telegram.webhook` and stores each update before the 200."""

    leader_only = False
    binds_port = True

    def __init__(self, settings: TelegramSettings, bot: telegram.Bot, secret: str,
                 session_factory: sessionmaker[Session], on_stored: Callable[[], None],
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._settings = settings
        self._bot = bot
        self._secret = secret
        self._factory = session_factory
        self._on_stored = on_stored
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self.path = urlsplit(settings.webhook.public_url or "/").path or "/"
        self.port = settings.webhook.port

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            return web.Response(status=403)
        try:
            update = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400)
        if not isinstance(update, dict):
            return web.Response(status=400)
        stored = await asyncio.to_thread(store_updates, self._factory, [update],
                                         now=self._clock())
        if stored:
            self._on_stored()
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application(client_max_size=1_000_000)
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.webhook.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        await self._bot.initialize()
        await self._bot.set_webhook(url=self._settings.webhook.public_url or "",
                                    secret_token=self._secret,
                                    allowed_updates=list(ALLOWED_UPDATES))
        await announce_commands(self._bot)
        log.info("telegram: webhook listening on %s:%s", self._settings.webhook.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(TelegramError, RuntimeError):
            await self._bot.shutdown()
