"""Reading one stored Telegram update: what the respondent did, as a `Reading`.

The inbox keeps each update as the JSON Telegram sent. A text message is an answer (commands
such as `/hjelp` are words the engine reads); `/start <payload>` presents an invitation's deep
link; a tapped button is read back from its callback data (`render.read_tap`) and answers
only the item it was made for; `/epost` asks for the rest by email. An edited message is not
re-read (the answer it replaced may already have moved the conversation on): the respondent is
told so. Anything else (stickers, photos, group chats, membership changes) is ignored, with a
word to the respondent where one helps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from bot.channels.base import Reading, Unreadable, Verdict
from bot.channels.telegram.render import Keyboard, read_tap
from bot.channels.telegram.texts import lang_of

#: Words (and commands) that ask for the rest of the questionnaire by email.
_BY_EMAIL = frozenset({"/epost", "/email", "/e-post", "epost", "e-post", "email"})


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


def _keyboard(message: dict[str, object]) -> Keyboard:
    markup = message.get("reply_markup")
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    out: Keyboard = []
    for row in rows if isinstance(rows, list) else []:
        out.append([(str(b.get("text", "")), str(b.get("callback_data", "")))
                    for b in row if isinstance(b, dict)])
    return out


def _command(text: str) -> tuple[str, str]:
    """("/start", "payload") for "/start@bot payload"; ("", "") when not a command."""
    if not text.startswith("/"):
        return "", ""
    head, _, rest = text.partition(" ")
    return head.split("@", 1)[0].lower(), rest.strip()


def read_update(raw: bytes) -> Reading:
    """The update in `raw` (JSON). Raises `Unreadable` when it is not an update at all."""
    try:
        update = json.loads(raw)
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
    chat_id, user_id = chat.get("id"), person.get("id")
    if not isinstance(chat_id, int) or not isinstance(user_id, int):
        return None, "", None
    kind = str(chat.get("type", ""))
    code = person.get("language_code")
    return Sender(user_id, chat_id), kind, code if isinstance(code, str) else None


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
    message_id = message.get("message_id")
    current = _keyboard(message)
    tap = read_tap(str(query.get("data", "")), current)
    tapped = Tapped(query_id=str(query.get("id", "")), chat_id=sender.chat_id,
                    message_id=message_id if isinstance(message_id, int) else 0,
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
