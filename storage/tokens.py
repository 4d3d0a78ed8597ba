"""Invitation tokens: 160 random bits, safe in an email address, a subject and a deep link.

Base32 in lower case ([a-z2-7], 32 characters): no characters that mail systems fold, quote or
strip in a local part (`svar+TOKEN@domain`), and within Telegram's 64-character `start` payload.
"""

from __future__ import annotations

import base64
import re
import secrets

TOKEN_BYTES = 20
TOKEN_PATTERN = re.compile(r"^[a-z2-7]{32}$")


def new_token() -> str:
    """A fresh token from the operating system's random source."""
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").lower()


def is_token(text: str) -> bool:
    """Whether `text` has the shape of a token (it may still be unknown)."""
    return bool(TOKEN_PATTERN.match(text))


def new_start_code() -> str:
    """A fresh deep-link payload for Telegram's `/start`: 192 random bits, URL-safe base64
    (32 characters of [A-Za-z0-9_-], as Telegram allows). Not the token: a link that is
    forwarded or seen on a shared screen says nothing about the email conversation."""
    return secrets.token_urlsafe(24)
