"""Reading one stored Telegram update: what the respondent did, as a `Reading`.

The inbox keeps each update as the JSON Telegram sent. A text message is an answer (commands
such as `/hjelp` are words the engine reads); `/start <payload>` presents an invitation's deep
link; a tapped button is read back from its callback data (`render.read_tap`) and answers
only the item it was made for; `/epost` asks for the rest by email. An edited message is not
re-read (the answer it replaced may already have moved the conversation on): the respondent is
told so. Anything else (stickers, photos, group chats, membership changes) is ignored, with a
word to the respondent where one helps.

The stored JSON is read as untrusted: it is what the Bot API sent, or what someone posted to
the webhook or put in the inbox. Every field may be missing or of another type; ids must be
64-bit integers (the database stores them so); text is at most what Telegram allows, without
NUL characters or lone surrogates (which no text column takes). What cannot be an update at
all is `Unreadable` with a reason; everything else is a `Reading`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from bot.channels.base import Reading, Unreadable, Verdict
from bot.channels.telegram.render import MAX_TEXT, Keyboard, read_tap
from bot.channels.telegram.texts import lang_of

#: Words (and commands) that ask for the rest of the questionnaire by email.
_BY_EMAIL = frozenset({"/epost", "/email", "/e-post", "epost", "e-post", "email"})
#: An update is a few kilobytes; a larger one is not Telegram's.
MAX_UPDATE_BYTES = 256 * 1024
#: Telegram's ids (users, chats, messages) fit in 64 bits, as the database stores them.
_ID_LIMIT = 2**63
#: Callback query ids are short strings of digits.
_MAX_QUERY_ID = 256
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Tapped:
    """What answering a button press needs: the query to answer and the message tapped."""

    query_id: str
    chat_id: int
    message_id: int
    #: The keyboard after a toggle (None: remove the buttons once the answer is taken).
    keyboard: Keyboard | None
    toggle: bool


@dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote: the Telegram user and chat (the same in a private chat)."""

    user_id: int
    chat_id: int


def _clean(text: str) -> str:
    """`text` without NUL characters, and with lone surrogates (JSON allows "\\ud800") as
    U+FFFD."""
    text = text.replace("\x00", "")
    if _LONE_SURROGATE_RE.search(text):
        text = _LONE_SURROGATE_RE.sub("\ufffd", text)
    return text


def _id(value: object) -> int | None:
    """`value` when it is an id as Telegram's are: an integer (not a bool) of 64 bits."""
    if isinstance(value, int) and not isinstance(value, bool) and -_ID_LIMIT < value < _ID_LIMIT:
        return value
    return None


def _string(value: object) -> str:
    return _clean(value) if isinstance(value, str) else ""


def _keyboard(message: dict[str, object]) -> Keyboard:
    markup = message.get("reply_markup")
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    out: Keyboard = []
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, list):
            out.append([(_string(b.get("text")), _string(b.get("callback_data")))
                        for b in row if isinstance(b, dict)])
    return out


def _command(text: str) -> tuple[str, str]:
    """("/start", "payload") for "/start@bot payload"; ("", "") when not a command."""
    if not text.startswith("/"):
        return "", ""
    head, _, rest = text.partition(" ")
    return head.split("@", 1)[0].lower(), rest.strip()


def read_update(raw: bytes) -> Reading:
    """The update in `raw` (JSON). Raises `Unreadable` when it is not an update at all:
    "too_large", "too_deep" (JSON nested beyond what the parser follows), "not_json",
    "not_an_update" (JSON, but not an object), "too_long" (a text longer than Telegram sends).
    """
    if len(raw) > MAX_UPDATE_BYTES:
        raise Unreadable("too_large")
    try:
        update = json.loads(raw)
    except RecursionError as exc:
        raise Unreadable("too_deep") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable("not_json") from exc
    if not isinstance(update, dict):
        raise Unreadable("not_an_update")
    if isinstance(update.get("callback_query"), dict):
        return _tap(update["callback_query"])
    for key in ("edited_message", "message"):
        message = update.get(key)
        if isinstance(message, dict):
            return _message(message, edited=key == "edited_message")
    return Reading(verdict=Verdict.IGNORE, reason="other_update")


def _who(message: dict[str, object]) -> tuple[Sender | None, str, str | None]:
    chat = message.get("chat")
    person = message.get("from")
    if not isinstance(chat, dict) or not isinstance(person, dict):
        return None, "", None
    chat_id, user_id = _id(chat.get("id")), _id(person.get("id"))
    if chat_id is None or user_id is None:
        return None, "", None
    kind = _string(chat.get("type"))
    code = person.get("language_code")
    return Sender(user_id, chat_id), kind, _clean(code) if isinstance(code, str) else None


def _message(message: dict[str, object], *, edited: bool) -> Reading:
    sender, kind, code = _who(message)
    if sender is None or kind != "private":
        return Reading(verdict=Verdict.IGNORE, reason="not_private")
    base = Reading(verdict=Verdict.IGNORE, reason="", sender=str(sender.chat_id),
                   lang=lang_of(code), private=sender)
    if edited:
        return replace(base, verdict=Verdict.IGNORE, reason="edited", notice="edited")
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        return replace(base, verdict=Verdict.IGNORE, reason="no_text", notice="unreadable")
    if len(text) > MAX_TEXT:
        raise Unreadable("too_long")
    text = _clean(text)
    command, argument = _command(text.strip())
    if command == "/start":
        return replace(base, verdict=Verdict.ANSWER, reason="start", start=argument)
    if command in _BY_EMAIL or text.strip().lower() in _BY_EMAIL:
        return replace(base, verdict=Verdict.ANSWER, reason="by_email", switch_to="email")
    return replace(base, verdict=Verdict.ANSWER, reason="text", text=text)


def _tap(query: dict[str, object]) -> Reading:
    message = query.get("message")
    if not isinstance(message, dict):
        return Reading(verdict=Verdict.IGNORE, reason="tap_without_message")
    sender, kind, code = _who({**message, "from": query.get("from")})
    if sender is None or kind != "private":
        return Reading(verdict=Verdict.IGNORE, reason="not_private")
    message_id = _id(message.get("message_id"))
    current = _keyboard(message)
    tap = read_tap(_string(query.get("data")), current)
    tapped = Tapped(query_id=_string(query.get("id"))[:_MAX_QUERY_ID], chat_id=sender.chat_id,
                    message_id=message_id if message_id is not None and message_id > 0 else 0,
                    keyboard=tap.keyboard if tap is not None else None,
                    toggle=tap is not None and tap.reply is None)
    base = Reading(verdict=Verdict.IGNORE, reason="", sender=str(sender.chat_id),
                   lang=lang_of(code), private=tapped)
    if tap is None:
        return replace(base, verdict=Verdict.IGNORE, reason="unknown_tap", tap=True)
    if tap.reply is None:
        return replace(base, verdict=Verdict.IGNORE, reason="toggle", tap=True, item=tap.item)
    return replace(base, verdict=Verdict.ANSWER, reason="tap", text=tap.reply, item=tap.item,
                   tap=True)
