"""A fake Telegram Bot API on loopback, for the tests and for `svarbot demo`.

svarbot's Telegram channel talks to Telegram through python-telegram-bot (PTB) over HTTP. The
tests and the demo must not reach the internet, and they must not trust the bot's own rate
limiting either: so this fake is a real HTTP server on 127.0.0.1 that answers PTB exactly as the
Bot API does (the same envelope, status codes and descriptions, so PTB raises the same
exceptions) and *enforces* Telegram's limits: 4096 characters a message, 64 bytes of callback
data, about 30 messages a second overall and about one a second per chat (with short bursts),
answered with 429 and ``retry_after``. Blocked users and unknown chats get 403 and 400 as in
production, and one getUpdates at a time per bot (409 otherwise, as for two bot instances).

The limits, as enforced here:

* a text (sendMessage, editMessageText) is empty after stripping → 400 "message text is empty";
  longer than 4096 UTF-16 code units, as Telegram counts (HTML tags not counted) → 400 "message
  is too long"; a button's callback_data outside 1-64 UTF-8 bytes → 400 "BUTTON_DATA_INVALID";
* sendMessage only (edits, answers and chat actions are not counted): more than `per_second`
  accepted within any rolling second overall, or a chat past its token bucket (`burst` at
  once, refilled at `per_chat_per_second`) → 429 with an integer ``retry_after`` ≥ 1, the
  time until a send would be accepted. A refused send takes no quota. Checks run in the order
  chat_id / text present, chat known, not blocked, text and keyboard valid, rate;
* a new getUpdates ends the one in flight with 409 "terminated by other getUpdates request"
  (the newer wins, as in Telegram; PTB's own last getUpdates on stop relies on it), and
  getUpdates while a webhook is set is 409 as well.

A test (or the demo's simulated respondents) plays the users through a control API, as Python
methods (`FakeTelegram.message`, `FakeTelegram.click`, `FakeTelegram.sent`, ...) or as HTTP
under ``/_test/...`` when the fake runs in its own process::

    python -m bot.demo.fake_telegram 8081      # until SIGTERM / Ctrl-C; 0 picks a free port

Everything here runs in the event loop's thread; the Python control methods are not
thread-safe. Update ids increase over the whole fake, message ids per chat (the user's and the
bot's messages share one sequence, as in a private chat), and dates come from the injected
clock; the rate limits use a separate monotonic clock, which tests may also inject.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import logging
import math
import re
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: Parameters that are strings in the Bot API. PTB sends every non-string value JSON-encoded in
#: its form fields and strings raw, so everything else is JSON-decoded; these must not be, or a
#: text of "4" would become the number 4 and a text of "null" would vanish.
STRING_PARAMS = frozenset({
    "text", "caption", "callback_query_id", "inline_message_id", "url", "secret_token",
    "parse_mode", "ip_address", "language_code", "description", "short_description", "name",
    "title", "emoji", "query_id", "next_offset", "switch_pm_text", "switch_pm_parameter",
    "business_connection_id", "message_effect_id", "question", "explanation", "address",
    "phone_number", "first_name", "last_name", "vcard", "custom_title", "payload",
    "provider_token", "currency", "start_parameter", "invite_link", "action",
    "game_short_name", "web_app_query_id", "data",
})

#: What a Bot API token looks like: the bot's id, a colon, and the secret part.
TOKEN_PATTERN = re.compile(r"\d+:[A-Za-z0-9_-]{20,}")

#: Telegram's limits (PTB's `telegram.constants`: MessageLimit, InlineKeyboardButtonLimit).
MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200

#: The update types getUpdates' ``allowed_updates`` can name (the ones this fake produces first).
UPDATE_TYPES = frozenset({
    "message", "edited_message", "callback_query", "channel_post", "edited_channel_post",
    "inline_query", "chosen_inline_result", "shipping_query", "pre_checkout_query", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "message_reaction",
    "message_reaction_count", "chat_boost", "removed_chat_boost", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "purchased_paid_media",
})

#: The Bot API's descriptions, word for word, so that PTB and the bot see what production says.
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message")
TERMINATED = ("Conflict: terminated by other getUpdates request; make sure that only one bot "
              "instance is running")
WEBHOOK_ACTIVE = ("Conflict: can't use getUpdates method while webhook is active; use "
                  "deleteWebhook to delete the webhook first")
QUERY_INVALID = ("Bad Request: query is too old and response timeout expired or query ID is "
                 "invalid")

_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_TAG = re.compile(r"<[^>]*>")
_BUTTON_ACTIONS = ("callback_data", "url", "web_app", "login_url", "switch_inline_query",
                   "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
                   "copy_text", "callback_game", "pay")


class ApiError(Exception):
    """A Bot API error answer, raised inside a method and sent as the error envelope."""

    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def envelope(self) -> JSON:
        """The JSON body Telegram sends with this error."""
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


class Call(NamedTuple):
    """One Bot API request the bot made (with a valid token), its parameters decoded."""

    method: str
    params: JSON


class Rejection(NamedTuple):
    """A Bot API request answered with an error: what was asked and what Telegram said."""

    method: str
    params: JSON
    error_code: int
    description: str


class Delivery(NamedTuple):
    """One attempt to POST an update to the webhook: the HTTP status, or the connection error."""

    update_id: int
    status: int | None
    error: str | None


@dataclass
class SentMessage:
    """A message the bot sent, as the user sees it now (after edits; `deleted` once deleted)."""

    chat_id: int
    message_id: int
    text: str
    reply_markup: JSON | None
    parse_mode: str | None
    date: int
    edit_date: int | None = None
    deleted: bool = False

    def buttons(self) -> list[tuple[str, str]]:
        """The inline keyboard's (text, callback_data) pairs, row by row, for assertions."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [(str(b.get("text")), str(b.get("callback_data", ""))) for row in rows for b in row]


@dataclass(frozen=True)
class Stats:
    """What the rate limits saw: accepted sends, 429s, and the fastest rates observed.

    `max_chat_per_second` is the most messages one chat got within any rolling second and
    `min_chat_gap` the shortest time between two messages to the same chat: a bot that keeps
    to one message a second per chat shows 1 and ≥ 1.0.
    """

    sends: int
    rejected_429: int
    rejected_overall: int
    rejected_per_chat: int
    max_per_second: int
    max_chat_per_second: int
    min_chat_gap: float | None
    sends_per_chat: dict[int, int]

    def as_json(self) -> JSON:
        """The stats as JSON (chat ids as strings, as JSON object keys must be)."""
        data = asdict(self)
        data["sends_per_chat"] = {str(k): v for k, v in self.sends_per_chat.items()}
        return data


@dataclass
class _Chat:
    """A private chat with one user: who they are, and the state the limits keep."""

    user: JSON
    blocked: bool = False
    user_messages: dict[int, JSON] = field(default_factory=dict)
    tokens: float = 0.0
    refilled_at: float = 0.0
    recent_sends: deque[float] = field(default_factory=deque)
    last_send: float | None = None

    @property
    def id(self) -> int:
        return int(self.user["id"])

    def as_chat(self) -> JSON:
        chat: JSON = {"id": self.id, "type": "private", "first_name": self.user["first_name"]}
        for key in ("last_name", "username"):
            if key in self.user:
                chat[key] = self.user[key]
        return chat


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    allowed_updates: list[str] | None
    last_error_date: int | None = None
    last_error_message: str | None = None


Method = Callable[[JSON], Awaitable[Any]]


def utf16_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def decode_params(fields: Iterable[tuple[str, Any]]) -> JSON:
    """Form or query fields as PTB sends them: JSON-encoded values, raw strings for strings."""
    params: JSON = {}
    for key, value in fields:
        if isinstance(value, web.FileField):
            params[key] = {"filename": value.filename, "content_type": value.content_type}
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if key in STRING_PARAMS or not isinstance(value, str):
            params[key] = value
        else:
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value  # a plain string, e.g. chat_id="@channel" or action=typing
    return params


class FakeTelegram:
    """A Telegram Bot API for one bot, on loopback, with a control API to play its users.

    Args:
        per_second: sends accepted overall within any rolling second (Telegram: about 30).
        per_chat_per_second: the sustained rate one chat may receive (Telegram: about 1).
        burst: how many messages a chat may get at once before the sustained rate applies.
        bot_username: the bot's @username, as getMe reports it (PTB needs it for deep links).
        clock: the wall clock for message and update dates (unix seconds).
        monotonic: the clock the rate limits measure with.
        tokens: the tokens that authenticate; by default any well-formed token does.
        bot_id: the bot's user id.
        bot_first_name: the bot's display name.
        webhook_backoff: the first and the longest wait before a failed webhook POST is retried.
    """

    def __init__(
        self,
        *,
        per_second: int = 30,
        per_chat_per_second: float = 1.0,
        burst: int = 3,
        bot_username: str = "svarbot_demo_bot",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        tokens: Iterable[str] | None = None,
        bot_id: int = 100000001,
        bot_first_name: str = "Svarbot",
        webhook_backoff: tuple[float, float] = (0.05, 1.0),
    ) -> None:
        if per_second < 1 or burst < 1 or per_chat_per_second <= 0:
            raise ValueError("per_second and burst must be ≥ 1 and per_chat_per_second > 0")
        self.per_second = per_second
        self.per_chat_per_second = per_chat_per_second
        self.burst = burst
        self.bot_user: JSON = {"id": bot_id, "is_bot": True, "first_name": bot_first_name,
                               "username": bot_username}
        self._clock = clock
        self._monotonic = monotonic
        self._tokens = frozenset(tokens) if tokens is not None else None
        self._webhook_backoff = webhook_backoff

        self._chats: dict[int, _Chat] = {}
        self._next_message_id: dict[int, int] = {}  # outlives `forget`, so ids never repeat
        self._bot_messages: dict[tuple[int, int], SentMessage] = {}
        self._sent_order: list[SentMessage] = []
        self._sent_by_chat: dict[int, list[SentMessage]] = {}
        self._pending: list[JSON] = []  # updates not yet confirmed, by update_id
        self._updates: dict[int, JSON] = {}  # every update injected, for `update()`
        self._next_update_id = 1
        self._next_query_id = 1
        self._open_queries: dict[str, JSON] = {}
        self._answered: list[JSON] = []
        self._calls: list[Call] = []
        self._call_counts: dict[str, int] = {}  # by lower-cased method, for `wait_for`
        self._rejections: list[Rejection] = []
        self._deliveries: list[Delivery] = []
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._allowed_updates: list[str] | None = None
        self._webhook: _Webhook | None = None

        self._poll_generation = 0  # a new getUpdates terminates the one in flight
        self._recent_sends: deque[float] = deque()
        self._sends = 0
        self._rejected_overall = 0
        self._rejected_per_chat = 0
        self._max_per_second = 0
        self._max_chat_per_second = 0
        self._min_chat_gap: float | None = None

        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._deliverer: asyncio.Task[None] | None = None
        self.port = 0

        self._methods: dict[str, Method] = {
            name.lower(): fn for name, fn in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "logOut": self._true,
                "close": self._true,
            }.items()
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """What to give PTB's ``ApplicationBuilder().base_url(...)``; PTB appends the token."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def url(self) -> str:
        """The server's root, for the ``/_test/...`` control API."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host`:`port` (0 picks a free port, then in `port`)."""
        app = web.Application()
        app.router.add_route("GET", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("POST", "/bot{token}/{method}", self._handle_api)
        self._add_control_routes(app)
        # handler_cancellation: a long poll whose client went away stops being "in flight".
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._closing = False

    async def stop(self) -> None:
        """Answer the long polls in flight, stop delivering to the webhook, close the port."""
        self._closing = True
        self._notify()
        await self._stop_deliverer()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ control: users

    def add_chat(self, user_id: int, *, first_name: str = "Test", last_name: str | None = None,
                 username: str | None = None, language_code: str | None = None) -> None:
        """Make a user known (as if they had pressed Start earlier) without sending an update."""
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        for key, value in (("last_name", last_name), ("username", username),
                           ("language_code", language_code)):
            if value is not None:
                user[key] = value
        chat = self._chats.get(user_id)
        if chat is None:
            self._chats[user_id] = _Chat(user=user, tokens=float(self.burst),
                                         refilled_at=self._monotonic())
        else:
            chat.user = user

    def message(self, user_id: int, text: str, *, first_name: str | None = None,
                last_name: str | None = None, username: str | None = None,
                language_code: str | None = None, edit_of: int | None = None) -> int:
        """The user writes `text` in their private chat with the bot; returns the update id.

        A leading ``/command`` (``/start PAYLOAD`` too) carries a ``bot_command`` entity, which
        PTB's CommandHandler needs. With `edit_of`, the user edits that earlier message of
        theirs instead, and the update is an ``edited_message``. A user who had blocked the bot
        and writes again has unblocked it (in Telegram they must, to write). The user's names
        are kept from their first message unless given again ("Test" if never given).
        """
        known = self._chats.get(user_id)
        if known is None or any(value is not None for value in (
                first_name, last_name, username, language_code)):
            previous = known.user if known is not None else {}
            self.add_chat(user_id, first_name=first_name or previous.get("first_name", "Test"),
                          last_name=last_name or previous.get("last_name"),
                          username=username or previous.get("username"),
                          language_code=language_code or previous.get("language_code"))
        chat = self._chats[user_id]
        chat.blocked = False
        if edit_of is not None:
            original = chat.user_messages.get(edit_of)
            if original is None:
                raise LookupError(f"user {user_id} has no message {edit_of} to edit")
            edited = {**original, "text": text, "edit_date": self._now()}
            edited.pop("entities", None)
            edited.update(self._entities(text))
            chat.user_messages[edit_of] = edited
            return self._push({"edited_message": edited})
        message: JSON = {"message_id": self._new_message_id(user_id), "from": chat.user,
                         "chat": chat.as_chat(), "date": self._now(), "text": text}
        message.update(self._entities(text))
        chat.user_messages[message["message_id"]] = message
        return self._push({"message": message})

    def edited(self, user_id: int, message_id: int, text: str) -> int:
        """The user edits their message `message_id` to `text`; returns the update id."""
        return self.message(user_id, text, edit_of=message_id)

    def click(self, user_id: int, message_id: int, data: str) -> str:
        """The user taps a button with `data` under the bot's message; returns the query id.

        The data is not checked against the keyboard, so a test can send a stale or forged tap
        as an old or a modified client could; the message must be the bot's, in that chat.
        """
        chat = self._chats.get(user_id)
        sent = self._bot_messages.get((user_id, message_id))
        if chat is None or sent is None or sent.deleted:
            raise LookupError(f"the bot has no message {message_id} in chat {user_id}")
        query_id = str(4_000_000_000_000_000_000 + self._next_query_id)
        self._next_query_id += 1
        query: JSON = {"id": query_id, "from": chat.user, "message": self._message_json(sent),
                       "chat_instance": str((user_id * 2654435761) % 2**63), "data": data}
        self._open_queries[query_id] = query
        self._push({"callback_query": query})
        return query_id

    def block(self, chat_id: int) -> None:
        """The user blocks the bot: sends to them get 403 until they write again."""
        self._chats[chat_id].blocked = True

    def unblock(self, chat_id: int) -> None:
        """The user unblocks the bot."""
        self._chats[chat_id].blocked = False

    def forget(self, chat_id: int) -> None:
        """The chat no longer exists (the user deleted their account): "chat not found"."""
        self._chats.pop(chat_id, None)

    # ------------------------------------------------------------------ control: reading

    def calls(self, method: str | None = None) -> list[Call]:
        """The Bot API calls the bot made, oldest first; only `method`'s if given."""
        if method is None:
            return list(self._calls)
        wanted = method.lower()
        return [c for c in self._calls if c.method.lower() == wanted]

    def rejections(self, method: str | None = None) -> list[Rejection]:
        """The calls answered with an error (429s included), oldest first."""
        wanted = None if method is None else method.lower()
        return [r for r in self._rejections if wanted is None or r.method.lower() == wanted]

    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        """The messages the bot sent (to `chat_id`), in order, as they stand now."""
        if chat_id is None:
            return list(self._sent_order)
        return list(self._sent_by_chat.get(chat_id, ()))

    def answered_callbacks(self) -> list[JSON]:
        """The answerCallbackQuery calls that were accepted, with the query they answered."""
        return list(self._answered)

    def update(self, update_id: int) -> JSON:
        """An update injected earlier, as it was queued for the bot."""
        return self._updates[update_id]

    def pending_updates(self) -> list[JSON]:
        """The updates the bot has not confirmed yet (by getUpdates offset or webhook 2xx)."""
        return list(self._pending)

    def webhook_deliveries(self) -> list[Delivery]:
        """Every attempt to POST an update to the webhook, oldest first."""
        return list(self._deliveries)

    def stats(self) -> Stats:
        """What the rate limits saw (see `Stats`)."""
        per_chat: dict[int, int] = {}
        for sent in self._sent_order:
            per_chat[sent.chat_id] = per_chat.get(sent.chat_id, 0) + 1
        return Stats(sends=self._sends,
                     rejected_429=self._rejected_overall + self._rejected_per_chat,
                     rejected_overall=self._rejected_overall,
                     rejected_per_chat=self._rejected_per_chat,
                     max_per_second=self._max_per_second,
                     max_chat_per_second=self._max_chat_per_second,
                     min_chat_gap=self._min_chat_gap, sends_per_chat=per_chat)

    # The deadline is part of these helpers' contract (a test never waits without one), so they
    # take `timeout` rather than leaving it to the caller's asyncio.timeout (ASYNC109).
    async def wait_until(self, predicate: Callable[[], bool],
                         timeout: float = 5.0, *,  # noqa: ASYNC109
                         what: str | Callable[[], str] = "the condition") -> None:
        """Wait until `predicate()` holds; TimeoutError (saying `what`) after `timeout` s.

        The predicate is checked on every change to the fake and at least every 20 ms, so it
        may also look at the test's own state (what a handler recorded, say).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                said = what() if callable(what) else what
                raise TimeoutError(f"{said} did not happen within {timeout} s")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.02))

    async def wait_for(self, method: str, count: int = 1,
                       timeout: float = 5.0) -> list[Call]:  # noqa: ASYNC109
        """Wait until the bot has made `count` calls of `method` (any outcome); returns them."""
        wanted = method.lower()
        await self.wait_until(
            lambda: self._call_counts.get(wanted, 0) >= count, timeout,
            what=lambda: f"{count} {method} call(s) (seen {self._call_counts.get(wanted, 0)})")
        return self.calls(method)

    async def wait_sent(self, count: int = 1, *, chat_id: int | None = None,
                        timeout: float = 5.0) -> list[SentMessage]:  # noqa: ASYNC109
        """Wait until the bot has sent `count` messages (to `chat_id`); returns them."""
        def sent() -> int:
            return len(self._sent_order if chat_id is None
                       else self._sent_by_chat.get(chat_id, ()))

        await self.wait_until(
            lambda: sent() >= count, timeout,
            what=lambda: f"{count} message(s) sent to {chat_id or 'any chat'} (seen {sent()})")
        return self.sent(chat_id)

    # ------------------------------------------------------------------ internals

    def _now(self) -> int:
        return int(self._clock())

    def _notify(self) -> None:
        """Wake everyone waiting for a change (long polls, the webhook, `wait_until`)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _new_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _push(self, content: JSON) -> int:
        update = {"update_id": self._next_update_id, **content}
        self._next_update_id += 1
        self._pending.append(update)
        self._updates[update["update_id"]] = update
        self._notify()
        return int(update["update_id"])

    def _entities(self, text: str) -> JSON:
        if not text.startswith("/") or len(text) < 2 or text[1].isspace():
            return {}
        command = text.split(maxsplit=1)[0]
        return {"entities": [{"type": "bot_command", "offset": 0,
                              "length": utf16_length(command)}]}

    def _message_json(self, sent: SentMessage) -> JSON:
        chat = self._chats.get(sent.chat_id)
        message: JSON = {
            "message_id": sent.message_id, "from": self.bot_user,
            "chat": chat.as_chat() if chat else {"id": sent.chat_id, "type": "private"},
            "date": sent.date, "text": sent.text}
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        if sent.reply_markup is not None:
            message["reply_markup"] = sent.reply_markup
        return message

    # ------------------------------------------------------------------ HTTP: the Bot API

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        name = request.match_info["method"]
        valid = (token in self._tokens if self._tokens is not None
                 else TOKEN_PATTERN.fullmatch(token) is not None)
        if not valid:
            return web.json_response(ApiError(401, "Unauthorized").envelope(), status=401)
        try:
            params = await self._read_params(request)
        except ApiError as error:
            return web.json_response(error.envelope(), status=error.code)
        self._calls.append(Call(name, params))
        self._call_counts[name.lower()] = self._call_counts.get(name.lower(), 0) + 1
        self._notify()
        method = self._methods.get(name.lower(), self._not_found)
        try:
            result = await method(params)
        except ApiError as error:
            self._rejections.append(Rejection(name, params, error.code, error.description))
            self._notify()
            return web.json_response(error.envelope(), status=error.code)
        self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _not_found(self, params: JSON) -> None:
        raise ApiError(404, "Not Found")

    async def _read_params(self, request: web.Request) -> JSON:
        params = decode_params(request.query.items())
        if request.method != "POST" or not request.can_read_body:
            return params
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise ApiError(400, "Bad Request: can't parse JSON object") from exc
            if not isinstance(body, dict):
                raise ApiError(400, "Bad Request: parameters must be a JSON object")
            params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            params.update(decode_params(form.items()))
        return params

    async def _true(self, params: JSON) -> bool:
        return True

    async def _get_me(self, params: JSON) -> JSON:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    async def _get_updates(self, params: JSON) -> list[JSON]:
        if self._webhook is not None:
            raise ApiError(409, WEBHOOK_ACTIVE)
        offset = _int(params.get("offset", 0), "offset")
        limit = max(1, min(100, _int(params.get("limit", 100), "limit")))
        timeout = max(0.0, float(params.get("timeout", 0) or 0))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(a) for a in allowed] or None
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # terminates the getUpdates in flight, if any
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [u for u in self._pending if self._allowed(u)][:limit]
            if found or self._closing:
                return found
            if generation != self._poll_generation:
                raise ApiError(409, TERMINATED)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _allowed(self, update: JSON) -> bool:
        allowed = self._webhook.allowed_updates if self._webhook else self._allowed_updates
        return allowed is None or any(kind in update for kind in allowed)

    async def _set_webhook(self, params: JSON) -> bool:
        url = str(params.get("url", ""))
        if not url:
            return await self._delete_webhook(params)
        if not re.match(r"https?://[^/\s]+", url):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for "
                                "webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        max_connections = _int(params.get("max_connections", 40), "max_connections")
        if not 1 <= max_connections <= 100:
            raise ApiError(400, "Bad Request: bad webhook: max_connections must be 1-100")
        allowed = params.get("allowed_updates")
        if params.get("drop_pending_updates") is True:
            self._pending.clear()
        self._webhook = _Webhook(
            url=url, secret_token=None if secret is None else str(secret),
            max_connections=max_connections,
            allowed_updates=([str(a) for a in allowed] or None) if isinstance(allowed, list)
            else None)
        self._poll_generation += 1  # long polls in flight end with 409
        if self._deliverer is None or self._deliverer.done():
            self._deliverer = asyncio.create_task(self._deliver())
        self._notify()
        return True

    async def _delete_webhook(self, params: JSON) -> bool:
        self._webhook = None
        await self._stop_deliverer()
        if params.get("drop_pending_updates") is True:
            self._pending.clear()
        return True

    async def _get_webhook_info(self, params: JSON) -> JSON:
        hook = self._webhook
        info: JSON = {"url": hook.url if hook else "", "has_custom_certificate": False,
                      "pending_update_count": len(self._pending)}
        if hook is not None:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = "127.0.0.1"
            if hook.allowed_updates is not None:
                info["allowed_updates"] = hook.allowed_updates
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    def _chat(self, params: JSON) -> _Chat:
        """The chat a send or edit addresses: 400 if unknown, 403 if the user blocked the bot."""
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        try:
            chat = self._chats.get(int(raw))
        except (TypeError, ValueError):
            chat = None  # "@username": no channels or groups here
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _check_text(self, params: JSON) -> tuple[str, str | None]:
        text = params.get("text")
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        parse_mode = params.get("parse_mode") or None
        if parse_mode is not None and str(parse_mode).lower() not in (
                "html", "markdown", "markdownv2"):
            raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode}")
        # The limit counts the text after entity parsing: without HTML's tags and escapes.
        visible = (html.unescape(_TAG.sub("", text))
                   if parse_mode and str(parse_mode).lower() == "html" else text)
        if not visible.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_length(visible) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        return text, None if parse_mode is None else str(parse_mode)

    def _check_markup(self, params: JSON) -> JSON | None:
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            try:
                markup = json.loads(markup)
            except ValueError as exc:
                raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON "
                                    "object") from exc
        if markup is None or markup == {}:
            return None  # PTB sends an empty InlineKeyboardMarkup as {}
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return markup  # a reply keyboard, its removal or a force reply: not checked
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise ApiError(400, "Bad Request: field \"inline_keyboard\" of the "
                                "InlineKeyboardMarkup must be an Array of Arrays")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise ApiError(400, "Bad Request: can't parse inline keyboard button: Text "
                                        "must be non-empty")
                if not any(key in button for key in _BUTTON_ACTIONS):
                    raise ApiError(400, "Bad Request: can't parse inline keyboard button: Text "
                                        "buttons are unallowed in the inline keyboard")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= MAX_CALLBACK_DATA_BYTES:
                        raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return markup if any(rows) else None  # an empty keyboard is no keyboard

    def _admit_send(self, chat: _Chat) -> None:
        """Apply the flood limits to one message, or raise the 429 Telegram would send."""
        now = self._monotonic()
        recent = self._recent_sends
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) >= self.per_second:
            self._rejected_overall += 1
            wait = max(1, math.ceil(recent[0] + 1.0 - now))
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        # Per chat: a token bucket holding `burst` messages, refilled at the sustained rate.
        chat.tokens = min(float(self.burst),
                          chat.tokens + (now - chat.refilled_at) * self.per_chat_per_second)
        chat.refilled_at = now
        if chat.tokens < 1.0:
            self._rejected_per_chat += 1
            wait = max(1, math.ceil((1.0 - chat.tokens) / self.per_chat_per_second))
            raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        chat.tokens -= 1.0
        recent.append(now)
        self._sends += 1
        self._max_per_second = max(self._max_per_second, len(recent))
        chat_recent = chat.recent_sends
        while chat_recent and chat_recent[0] <= now - 1.0:
            chat_recent.popleft()
        chat_recent.append(now)
        self._max_chat_per_second = max(self._max_chat_per_second, len(chat_recent))
        if chat.last_send is not None:
            gap = now - chat.last_send
            self._min_chat_gap = gap if self._min_chat_gap is None else min(self._min_chat_gap,
                                                                             gap)
        chat.last_send = now

    async def _send_message(self, params: JSON) -> JSON:
        if params.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        if not str(params.get("text") or "").strip():
            raise ApiError(400, "Bad Request: message text is empty")
        chat = self._chat(params)
        text, parse_mode = self._check_text(params)
        markup = self._check_markup(params)
        self._admit_send(chat)
        sent = SentMessage(chat_id=chat.id, message_id=self._new_message_id(chat.id), text=text,
                           reply_markup=markup, parse_mode=parse_mode, date=self._now())
        self._bot_messages[(chat.id, sent.message_id)] = sent
        self._sent_order.append(sent)
        self._sent_by_chat.setdefault(chat.id, []).append(sent)
        return self._message_json(sent)

    def _editable(self, params: JSON) -> tuple[_Chat, SentMessage]:
        if params.get("inline_message_id") is not None:
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")  # no inline mode here
        chat = self._chat(params)
        message_id = _int(params.get("message_id", 0), "message_id")
        sent = self._bot_messages.get((chat.id, message_id))
        if sent is None or sent.deleted:
            if message_id in chat.user_messages:
                raise ApiError(400, "Bad Request: message can't be edited")
            raise ApiError(400, "Bad Request: message to edit not found")
        return chat, sent

    async def _edit_message_text(self, params: JSON) -> JSON:
        _, sent = self._editable(params)
        text, parse_mode = self._check_text(params)
        markup = self._check_markup(params)  # absent: the inline keyboard goes, as in Telegram
        if text == sent.text and markup == sent.reply_markup and parse_mode == sent.parse_mode:
            raise ApiError(400, NOT_MODIFIED)
        sent.text, sent.reply_markup, sent.parse_mode = text, markup, parse_mode
        sent.edit_date = self._now()
        return self._message_json(sent)

    async def _edit_message_reply_markup(self, params: JSON) -> JSON:
        _, sent = self._editable(params)
        markup = self._check_markup(params)
        if markup == sent.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        sent.reply_markup = markup
        sent.edit_date = self._now()
        return self._message_json(sent)

    async def _delete_message(self, params: JSON) -> bool:
        chat = self._chat(params)
        message_id = _int(params.get("message_id", 0), "message_id")
        sent = self._bot_messages.get((chat.id, message_id))
        if sent is not None and not sent.deleted:
            sent.deleted = True
            return True
        if chat.user_messages.pop(message_id, None) is not None:
            return True
        raise ApiError(400, "Bad Request: message to delete not found")

    async def _answer_callback_query(self, params: JSON) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        query = self._open_queries.pop(query_id, None)
        if query is None:
            raise ApiError(400, QUERY_INVALID)
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER_LENGTH:
            self._open_queries[query_id] = query
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        answer = {k: v for k, v in params.items() if k != "callback_query_id"}
        self._answered.append({"callback_query_id": query_id, **answer, "query": query})
        return True

    async def _send_chat_action(self, params: JSON) -> bool:
        self._chat(params)
        return True

    def _commands_key(self, params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be an array of at most 100 "
                                "BotCommand")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND.fullmatch(
                    str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands]
        return True

    async def _get_my_commands(self, params: JSON) -> list[JSON]:
        return list(self._commands.get(self._commands_key(params), []))

    async def _delete_my_commands(self, params: JSON) -> bool:
        self._commands.pop(self._commands_key(params), None)
        return True

    # ------------------------------------------------------------------ the webhook

    async def _deliver(self) -> None:
        """POST pending updates to the webhook one at a time, in order, retrying with backoff.

        An update is confirmed (forgotten) only by a 2xx answer, as Telegram does; anything else
        is recorded in getWebhookInfo's last error and retried after a growing wait.
        """
        first, longest = self._webhook_backoff
        backoff = first
        while not self._closing:
            hook = self._webhook
            if hook is None:
                return
            update = next((u for u in self._pending if self._allowed(u)), None)
            if update is None:
                changed = self._changed
                await changed.wait()
                continue
            status, error = await self._post_update(hook, update)
            self._deliveries.append(Delivery(int(update["update_id"]), status, error))
            if status is not None and 200 <= status < 300:
                with contextlib.suppress(ValueError):
                    self._pending.remove(update)
                backoff = first
                self._notify()
                continue
            hook.last_error_date = self._now()
            hook.last_error_message = error or f"Wrong response from the webhook: {status}"
            self._notify()
            await asyncio.sleep(backoff)
            backoff = min(longest, backoff * 2)

    async def _post_update(self, hook: _Webhook, update: JSON) -> tuple[int | None, str | None]:
        if self._session is None:
            return None, "Connection failed: the fake is not running"
        headers = {}
        if hook.secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        try:
            async with self._session.post(hook.url, json=update, headers=headers) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return response.status, None
                return response.status, (f"Wrong response from the webhook: {response.status} "
                                         f"{response.reason}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.debug("webhook POST to %s failed: %r", hook.url, exc)
            return None, f"Connection failed: {exc.__class__.__name__}"

    async def _stop_deliverer(self) -> None:
        task, self._deliverer = self._deliverer, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ HTTP: the control API

    def _add_control_routes(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Callable[[web.Request], Awaitable[Any]]]] = [
            ("POST", "/_test/message", self._http_message),
            ("POST", "/_test/edited", self._http_edited),
            ("POST", "/_test/click", self._http_click),
            ("POST", "/_test/block", self._http_block),
            ("POST", "/_test/unblock", self._http_unblock),
            ("POST", "/_test/forget", self._http_forget),
            ("POST", "/_test/chat", self._http_chat),
            ("POST", "/_test/wait", self._http_wait),
            ("GET", "/_test/calls", self._http_calls),
            ("GET", "/_test/sent", self._http_sent),
            ("GET", "/_test/callbacks", self._http_callbacks),
            ("GET", "/_test/stats", self._http_stats),
        ]
        for verb, path, handler in routes:
            app.router.add_route(verb, path, _control(handler))

    async def _http_message(self, request: web.Request) -> JSON:
        body = await _json_body(request)
        update_id = self.message(
            int(body["user_id"]), str(body["text"]),
            first_name=str(body.get("first_name", "Test")), last_name=body.get("last_name"),
            username=body.get("username"), language_code=body.get("language_code"),
            edit_of=None if body.get("edit_of") is None else int(body["edit_of"]))
        return self._update_result(update_id)

    async def _http_edited(self, request: web.Request) -> JSON:
        body = await _json_body(request)
        update_id = self.edited(int(body["user_id"]), int(body["message_id"]), str(body["text"]))
        return self._update_result(update_id)

    def _update_result(self, update_id: int) -> JSON:
        update = self._updates[update_id]
        message = update.get("message") or update.get("edited_message") or {}
        return {"update_id": update_id, "message_id": message.get("message_id")}

    async def _http_click(self, request: web.Request) -> JSON:
        body = await _json_body(request)
        query_id = self.click(int(body["user_id"]), int(body["message_id"]), str(body["data"]))
        return {"callback_query_id": query_id}

    async def _http_block(self, request: web.Request) -> bool:
        self.block(int((await _json_body(request))["chat_id"]))
        return True

    async def _http_unblock(self, request: web.Request) -> bool:
        self.unblock(int((await _json_body(request))["chat_id"]))
        return True

    async def _http_forget(self, request: web.Request) -> bool:
        self.forget(int((await _json_body(request))["chat_id"]))
        return True

    async def _http_chat(self, request: web.Request) -> bool:
        body = await _json_body(request)
        self.add_chat(int(body["user_id"]), first_name=str(body.get("first_name", "Test")),
                      last_name=body.get("last_name"), username=body.get("username"),
                      language_code=body.get("language_code"))
        return True

    async def _http_wait(self, request: web.Request) -> list[JSON]:
        body = await _json_body(request)
        method = str(body["method"])
        calls = await self.wait_for(method, int(body.get("count", 1)),
                                    float(body.get("timeout", 5.0)))
        return [c._asdict() for c in calls]

    async def _http_calls(self, request: web.Request) -> list[JSON]:
        return [c._asdict() for c in self.calls(request.query.get("method"))]

    async def _http_sent(self, request: web.Request) -> list[JSON]:
        chat_id = request.query.get("chat_id")
        return [asdict(m) for m in self.sent(None if chat_id is None else int(chat_id))]

    async def _http_callbacks(self, request: web.Request) -> list[JSON]:
        return self.answered_callbacks()

    async def _http_stats(self, request: web.Request) -> JSON:
        return self.stats().as_json()


def _int(value: object, name: str) -> int:
    """An integer parameter, or the 400 Telegram answers for one it cannot read."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ApiError(400, f"Bad Request: invalid {name} specified")


async def _json_body(request: web.Request) -> Mapping[str, Any]:
    body = await request.json()
    if not isinstance(body, dict):
        raise TypeError("the body must be a JSON object")
    return body


def _control(
    handler: Callable[[web.Request], Awaitable[Any]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a control handler in the Bot API's envelope: 400 for a bad request, 408 on timeout."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            result = await handler(request)
        except TimeoutError as exc:
            return web.json_response({"ok": False, "error_code": 408, "description": str(exc)},
                                     status=408)
        except (LookupError, TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": f"{exc.__class__.__name__}: {exc}"},
                                     status=400)
        return web.json_response({"ok": True, "result": result})

    return wrapped


async def serve(fake: FakeTelegram, host: str, port: int,
                ready: Callable[[FakeTelegram], None] | None = None) -> None:
    """Run `fake` on `host`:`port` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)
    try:
        await fake.start(host, port)
        if ready is not None:
            ready(fake)
        await stopping.wait()
    finally:
        await fake.stop()
        for sig in signals:
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> None:
    """``python -m bot.demo.fake_telegram PORT``: the fake in its own process."""
    parser = argparse.ArgumentParser(prog="python -m bot.demo.fake_telegram",
                                     description="A fake Telegram Bot API on loopback.")
    parser.add_argument("port", type=int, help="the port to listen on (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--per-second", type=int, default=30)
    parser.add_argument("--per-chat-per-second", type=float, default=1.0)
    parser.add_argument("--burst", type=int, default=3)
    parser.add_argument("--bot-username", default="svarbot_demo_bot")
    parser.add_argument("--token", action="append", dest="tokens",
                        help="a token that authenticates (repeatable; default: any well-formed)")
    args = parser.parse_args(argv)
    fake = FakeTelegram(per_second=args.per_second,
                        per_chat_per_second=args.per_chat_per_second, burst=args.burst,
                        bot_username=args.bot_username, tokens=args.tokens)

    def ready(started: FakeTelegram) -> None:
        # One line on stdout tells a parent process the port (useful with port 0).
        print(f"fake telegram listening on {started.base_url}", flush=True)  # noqa: T201

    asyncio.run(serve(fake, args.host, args.port, ready))


if __name__ == "__main__":
    main()
