"""Logging that cannot leak: addresses, tokens and answer text never reach a log line.

Policy: code logs ids, counts and reasons, never message text. As a second line of defence a
filter on the root handler masks anything shaped like an email address, an invitation token or
a Telegram chat id, so a mistake in a log call does not become a privacy incident.
"""

from __future__ import annotations

import logging
import re
import sys

_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}")
_TOKEN = re.compile(r"\b[a-z2-7]{32}\b")
_CHAT_ID = re.compile(r"\bchat[_ ]?id[=: ]+-?\d+", re.IGNORECASE)
#: A Telegram bot token (in a Bot API URL, "…/bot123456:AA…/getMe"): the bot's password.
_BOT_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")
#: Libraries that log every request with its URL, which for the Bot API holds the token.
_CHATTY = ("httpx", "httpcore", "telegram", "aiohttp.access")


def redact(text: str) -> str:
    """Mask email addresses, tokens, bot tokens and chat ids in `text`."""
    text = _BOT_TOKEN.sub("<bot-token>", text)
    text = _EMAIL.sub("<address>", text)
    text = _TOKEN.sub("<token>", text)
    return _CHAT_ID.sub("chat_id=<id>", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with `redact` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def configure(level: str = "INFO") -> None:
    """Log to stderr through the redacting filter (called once by the CLI)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
