"""The Telegram channel: what `bot.channels.base.Channel` means for a chat with the bot.

A respondent reaches the chat from the link in any of our emails
(`https://t.me/<bot>?start=<payload>`); `/start <payload>` binds the chat to the invitation,
and from then on the chat is the respondent's address on this channel (Telegram vouches for
who writes in it). A second Telegram user with the same link (a forwarded invitation) is
refused politely and the invitation flagged. The engine asks one item at a time here; its
quick answers become inline buttons (`render`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence

from sqlalchemy import ColumnElement, and_
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import (
    ChannelError,
    Limits,
    Message,
    Outgoing,
    Reading,
    Receiver,
)
from bot.channels.telegram.receive import Poller, Webhook
from bot.channels.telegram.render import item_key, keyboard, split_text
from bot.channels.telegram.texts import notice, tap_answer
from bot.channels.telegram.transport import TelegramTransport, make_bot
from bot.channels.telegram.updates import Sender, Tapped, read_update
from bot.config import Settings
from flows.session import Channel as Style
from storage.identity import (
    bind_telegram,
    ensure_telegram_start,
    find_invitation_by_chat,
)
from storage.schema import Invitation, Respondent

#: Telegram has no daily limit; the outbox worker's day window is then only a safeguard.
_PER_DAY = 10_000_000


def deep_link(bot_username: str, payload: str) -> str:
    """The link that opens the chat and sends `/start <payload>`."""
    return f"https://t.me/{bot_username}?start={payload}"


class TelegramChannel:
    """Chats with respondents through a Telegram bot (see the module docstring)."""

    name = "telegram"
    style: Style = "chat"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tg = settings.telegram

    def token(self) -> str:
        """The bot token, from the environment variable `telegram.token_env` names."""
        token = os.environ.get(self._tg.token_env, "")
        if not token:
            raise ChannelError(f"telegram.token_env: environment variable {self._tg.token_env} "
                               f"is not set (the bot token from @BotFather)")
        return token

    def address(self, invitation: Invitation, respondent: Respondent) -> str | None:
        if invitation.telegram_chat_id is None or not invitation.telegram_active:
            return None
        return str(invitation.telegram_chat_id)

    def reachable(self) -> ColumnElement[bool]:
        return and_(Invitation.telegram_chat_id.is_not(None),
                    Invitation.telegram_active.is_(True))

    def outgoing(self, message: Message, recipient: str) -> Sequence[Outgoing]:
        parts = [p for p in message.prompts if p.strip()]
        if message.kind == "closed":
            parts = [notice("closed", message.lang)]
        pieces = split_text("\n\n".join(parts)) or [message.survey_title]
        keys = keyboard(message.asked[0], message.choices, multiple=message.multiple,
                        lang=message.lang) if len(message.asked) == 1 else []
        out = []
        for n, piece in enumerate(pieces, 1):
            payload: dict[str, object] = {"op": "send", "text": piece}
            if n == len(pieces) and keys:
                payload["keyboard"] = [[list(button) for button in row] for row in keys]
            out.append(Outgoing(recipient=recipient, payload=payload))
        return out

    def read(self, raw: bytes, *, today: dt.date) -> Reading:
        return read_update(raw)

    def same_sender(self, reading: Reading, invitation: Invitation,
                    respondent: Respondent) -> bool:
        return True  # the chat is the respondent's own: Telegram vouches for who writes

    def lookup(self, session: Session, reading: Reading) -> Invitation | None:
        if reading.sender is None or not reading.sender.lstrip("-").isdigit():
            return None
        return find_invitation_by_chat(session, int(reading.sender))

    def bind(self, session: Session, invitation: Invitation, reading: Reading) -> bool:
        sender = reading.private
        if not isinstance(sender, Sender):
            return False
        return bind_telegram(session, invitation, user_id=sender.user_id,
                             chat_id=sender.chat_id)

    def join_link(self, session: Session, invitation: Invitation) -> str | None:
        return deep_link(self._tg.bot_username, ensure_telegram_start(session, invitation))

    def notice(self, reading: Reading, key: str, lang: str) -> Outgoing | None:
        if reading.sender is None:
            return None
        return Outgoing(recipient=reading.sender,
                        payload={"op": "send", "text": notice(key, lang)})

    def still_asked(self, reading: Reading, asked: Sequence[str]) -> bool:
        return reading.item is not None and reading.item in {item_key(a) for a in asked}

    def acknowledge(self, reading: Reading, *, stale: bool) -> Sequence[Outgoing]:
        tapped = reading.private
        if not isinstance(tapped, Tapped):
            return ()
        chat = str(tapped.chat_id)
        lang = reading.lang or "nb"
        text = tap_answer("stale", lang) if stale else ""
        out = [Outgoing(recipient=chat, payload={"op": "answer_tap",
                                                 "query_id": tapped.query_id, "text": text})]
        if tapped.message_id and (reading.item is not None or stale):
            rows = tapped.keyboard if tapped.toggle and not stale else []
            out.append(Outgoing(recipient=chat, payload={
                "op": "edit_keyboard", "message_id": tapped.message_id,
                "keyboard": [[list(button) for button in row] for row in rows or []]}))
        return out

    def limits(self) -> Limits:
        return Limits(per_minute=max(1, int(self._tg.per_second * 60)), per_day=_PER_DAY,
                      per_second=max(1, int(self._tg.per_second)))

    def retry_for(self) -> dt.timedelta:
        return dt.timedelta(hours=self._tg.retry_for_hours)

    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self._tg.lease_seconds)

    def transport(self) -> TelegramTransport:
        return TelegramTransport(self._tg, self.token())

    def receivers(self, session_factory: sessionmaker[Session],
                  on_stored: Callable[[], None]) -> Sequence[Receiver]:
        bot = make_bot(self._tg, self.token())
        if self._tg.mode == "webhook":
            secret = os.environ.get(self._tg.webhook.secret_token_env, "")
            if not secret:
                raise ChannelError(f"telegram.webhook.secret_token_env: environment variable "
                                   f"{self._tg.webhook.secret_token_env} is not set")
            return [Webhook(self._tg, bot, secret, session_factory, on_stored)]
        return [Poller(self._tg, bot, session_factory, on_stored)]
