"""Telegram delivery: the Bot API calls behind the outbox worker, and what their errors mean.

The outbox worker keeps the overall pace (`telegram.per_second`); this transport keeps each
chat's: a chat may get `burst` messages at once, then `per_chat_per_second`, and messages to
one chat go out in the order they were claimed (one at a time per chat). What Telegram says
decides the outcome:

* 429 Too Many Requests: retry after the `retry_after` Telegram names, and the whole channel
  pauses that long (a flood limit is the bot's, not the chat's);
* 403 Forbidden (the respondent blocked the bot, the account is gone) and "chat not found":
  the chat is unreachable: the invitation is written to by email from now on;
* another 400 (a text too long, bad button data): this message can never be sent (dead, and
  a warning: it is our bug, not the respondent's);
* network errors and timeouts: retried with the usual backoff.

Payloads (`TelegramChannel.outgoing` and `.acknowledge` write them): `send` (text and an
inline keyboard), `answer_tap` (the spinner of a pressed button) and `edit_keyboard` (a
toggled or spent keyboard). Logs name outbox ids only: never a chat id or a text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.request import HTTPXRequest

from bot.channels.base import Delivery, Turn
from bot.channels.ratelimit import PACE_MARGIN
from bot.config import TelegramSettings
from storage.outbox import Claimed

log = logging.getLogger(__name__)


def make_bot(settings: TelegramSettings, token: str) -> telegram.Bot:
    """A Bot for `settings.api_url`, with the configured timeouts and enough connections."""
    request = HTTPXRequest(connection_pool_size=max(8, settings.concurrency + 2),
                           read_timeout=settings.timeout, write_timeout=settings.timeout,
                           connect_timeout=settings.timeout, pool_timeout=settings.timeout)
    return telegram.Bot(token, base_url=settings.api_url, request=request)


def retry_seconds(exc: RetryAfter) -> float:
    """`retry_after` as seconds, whether PTB gives an int or a timedelta."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def markup(rows: object) -> InlineKeyboardMarkup | None:
    """The payload's keyboard ([[[label, data], …], …]) as PTB's markup; None for none."""
    if not isinstance(rows, list) or not rows:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(str(b[0]), callback_data=str(b[1]))
                                  for b in row if isinstance(b, list) and len(b) == 2]
                                 for row in rows if isinstance(row, list)])


class _ChatPace:
    """A token bucket per chat: `burst` at once, then one per `1/rate` seconds."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens: dict[str, tuple[float, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, chat: str) -> asyncio.Lock:
        return self._locks.setdefault(chat, asyncio.Lock())

    def _tokens_now(self, chat: str, now: float) -> float:
        tokens, at = self._tokens.get(chat, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    async def wait(self, chat: str) -> None:
        """Wait until `chat` may get one more message (call under the chat's lock, so that
        one chat's messages take their turns in the order they were claimed)."""
        tokens = self._tokens_now(chat, time.monotonic())
        if tokens < 1.0:
            await asyncio.sleep((1.0 - tokens) / self.rate)

    def take(self, chat: str) -> None:
        """The message leaves now: counted when it goes, not when it began to wait."""
        now = time.monotonic()
        self._tokens[chat] = (max(0.0, self._tokens_now(chat, now) - 1.0), now)
        if len(self._tokens) > 10_000:  # forget idle chats (a full bucket is the default)
            cutoff = now - self.burst / self.rate
            for key in [k for k, (_, t) in self._tokens.items() if t < cutoff]:
                self._tokens.pop(key, None)
                self._locks.pop(key, None)


class TelegramTransport:
    """Sends claimed Telegram rows through the Bot API."""

    def __init__(self, settings: TelegramSettings, token: str,
                 bot: telegram.Bot | None = None) -> None:
        self.concurrency = settings.concurrency
        self._bot = bot or make_bot(settings, token)
        self._ready = False
        self._pace = _ChatPace(settings.per_chat_per_second * PACE_MARGIN, settings.burst)

    async def _started(self) -> telegram.Bot:
        if not self._ready:
            await self._bot.initialize()
            self._ready = True
        return self._bot

    async def send(self, item: Claimed, slot: int, turn: Turn) -> Delivery:
        payload = item.payload or {}
        op = payload.get("op")
        chat = item.recipient
        try:
            bot = await self._started()
            if op == "answer_tap":
                await bot.answer_callback_query(str(payload.get("query_id", "")),
                                                text=str(payload.get("text") or "") or None)
                return Delivery("sent", "tap answered")
            if op == "edit_keyboard":  # an edit is no new message: not paced as one
                await bot.edit_message_reply_markup(
                    chat_id=int(chat), message_id=int(str(payload.get("message_id", 0))),
                    reply_markup=markup(payload.get("keyboard")))
                return Delivery("sent", "keyboard changed")
            async with self._pace.lock(chat):
                await self._pace.wait(chat)
                await turn()
                self._pace.take(chat)
                if op == "send":
                    sent = await bot.send_message(
                        chat_id=int(chat), text=str(payload.get("text", "")),
                        reply_markup=markup(payload.get("keyboard")),
                        disable_web_page_preview=True)
                    return Delivery("sent", f"message {sent.message_id}")
        except RetryAfter as exc:
            wait = retry_seconds(exc)
            return Delivery("retry", f"429: retry after {wait:.0f} s", 429, retry_after=wait,
                            pause_all=True)
        except Forbidden as exc:
            return Delivery("unreachable", f"403: {exc.message}", 403)
        except BadRequest as exc:
            text = exc.message.lower()
            if "chat not found" in text:
                return Delivery("unreachable", "400: chat not found", 400)
            if "not modified" in text or "query is too old" in text:
                return Delivery("sent", f"400: {exc.message}", 400)
            log.warning("outbox %s: Telegram refused the message as malformed", item.id)
            return Delivery("dead", f"400: {exc.message}", 400, ours=True)
        except InvalidToken:
            return Delivery("retry", "invalid bot token", 401, ours=True)
        except NetworkError as exc:
            return Delivery("retry", f"network: {type(exc).__name__}")
        except (ValueError, TypeError) as exc:
            return Delivery("dead", f"bad payload: {type(exc).__name__}", ours=True)
        return Delivery("dead", f"unknown operation {op!r}", ours=True)

    async def close(self) -> None:
        if self._ready:
            self._ready = False
            await self._bot.shutdown()
