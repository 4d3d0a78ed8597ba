"""How svarbot reads one inbound message: parse, trim the quote, classify.

The dispatcher and `svarbot mail inspect` use this same function, so what an operator sees
when asking "why was this not counted?" is exactly what happened to the message.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from email.headerregistry import Address
from email.policy import default
from functools import lru_cache

from bot.channels.email.classify import Classification, classify
from bot.channels.email.inbound import BadMail, ParsedMail, parse_mail
from bot.channels.email.trim import Trimmed, extract_reply, extract_reply_html
from bot.config import EmailSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reading:
    """One message as svarbot understood it."""

    mail: ParsedMail
    reply: Trimmed
    classification: Classification


def own_addresses(settings: EmailSettings) -> tuple[str, ...]:
    """The addresses svarbot sends from: mail from them is our own, come back (a loop)."""
    return _addresses_in(settings.from_address)


@lru_cache(maxsize=16)
def _addresses_in(value: str) -> tuple[str, ...]:
    """The addresses of a From value, lowercased; cached, as every inbound message asks."""
    header = default.header_factory("from", value)
    addresses: list[str] = []
    for address in getattr(header, "addresses", ()):
        if isinstance(address, Address) and address.addr_spec:
            addresses.append(address.addr_spec.lower())
    return tuple(addresses)


def read_mail(raw: bytes, settings: EmailSettings, *, today: dt.date) -> Reading:
    """Parse, trim and classify `raw`.

    Every step is bounded before it runs (the size before parsing, the depth before walking,
    the HTML before the HTML parser, the text before the trimmer's patterns), so that one
    message costs at most a fraction of a second however it was made. A failure nobody
    foresaw is a quarantine reason too ("read_error"), never an exception the caller did not
    ask for: one message must not stop the dispatcher or `svarbot mail inspect`.

    Raises:
        BadMail: the message cannot be read at all (too large, not a message, nested too
            deep, an unforeseen failure); its `reason` is the quarantine reason code.
    """
    try:
        return _read(raw, settings, today=today)
    except BadMail:
        raise
    except RecursionError as exc:
        raise BadMail("too_deep", "nested beyond what the reader can follow") from exc
    except Exception as exc:
        log.warning("reading a message failed: %s", type(exc).__name__, exc_info=True)
        raise BadMail("read_error", type(exc).__name__) from exc


def _read(raw: bytes, settings: EmailSettings, *, today: dt.date) -> Reading:
    mail = parse_mail(raw, max_bytes=settings.max_message_bytes)
    reply = extract_reply_html(mail.text) if mail.text_is_html else extract_reply(mail.text)
    classification = classify(mail, reply_pattern=settings.reply_to,
                              unsubscribe_pattern=settings.unsubscribe_address, today=today,
                              own_addresses=own_addresses(settings), new_text=reply.text)
    return Reading(mail=mail, reply=reply, classification=classification)


def describe(reading: Reading) -> dict[str, object]:
    """The reading as the JSON `svarbot mail inspect --json` prints."""
    c = reading.classification
    bounce = None if c.bounce is None else {
        "permanent": c.bounce.permanent, "recipients": list(c.bounce.recipients),
        "status": c.bounce.status, "original_message_id": c.bounce.original_message_id}
    return {
        "kind": str(c.kind),
        "token": c.token,
        "token_source": c.token_source,
        "reason": c.reason,
        "text": reading.reply.text,
        "text_chars": len(reading.reply.text),
        "trim_rule": reading.reply.rule,
        "needs_review": reading.reply.needs_review,
        "bounce": bounce,
        "return_date": c.return_date.isoformat() if c.return_date else None,
        "message_id": reading.mail.message_id,
        "subject": reading.mail.subject,
    }
