"""The email channel: what `bot.channels.base.Channel` means for mail.

Outbound, a message becomes an `OutgoingMail` payload with a Message-ID chosen now (kept over
retries) and the thread it answers; the SMTP transport renders and sends it. Inbound, the
stored bytes are parsed, trimmed and classified (`reading.read_mail`) and the result reduced
to a channel-neutral `Reading`. The SMTP-specific rules stay here: a 5.7.x refusal in a bounce
report is about our sending (policy, authentication), not the address, so it is never a hard
bounce.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import (
    Bounce,
    Limits,
    Message,
    Outgoing,
    Reading,
    Receiver,
    ReplyContext,
    Unreadable,
    Verdict,
)
from bot.channels.email.classify import Classification
from bot.channels.email.compose import OutgoingMail, new_message_id
from bot.channels.email.inbound import BadMail, MailKind
from bot.channels.email.reading import read_mail
from bot.channels.email.smtp import SmtpTransport
from bot.config import Settings
from flows.session import Channel as Style
from storage.identity import normalise_email
from storage.schema import Invitation, Respondent

log = logging.getLogger(__name__)

#: How many earlier Message-IDs a reply carries in References (the chain stays short).
MAX_REFERENCES = 8

_VERDICTS = {MailKind.ANSWER: Verdict.ANSWER, MailKind.QUERY: Verdict.QUERY,
             MailKind.OPT_OUT: Verdict.OPT_OUT, MailKind.BOUNCE: Verdict.BOUNCE,
             MailKind.AUTO_REPLY: Verdict.AUTO_REPLY, MailKind.FORWARD: Verdict.FORWARD}


def verdict_of(c: Classification) -> Verdict:
    """The conversation's verdict for a classified message."""
    if c.kind is MailKind.UNKNOWN:
        if c.reason == "complaint":
            return Verdict.COMPLAINT
        if c.reason == "loop" or c.reason.endswith("no-failure"):
            return Verdict.IGNORE  # our own message come back; a delivery report
        return Verdict.UNKNOWN
    return _VERDICTS[c.kind]


def _bounce(c: Classification) -> Bounce | None:
    if c.bounce is None:
        return None
    permanent = c.bounce.permanent
    status = c.bounce.status
    if permanent and (status or "").startswith("5.7"):
        # A policy refusal (authentication, reputation) is about us, not the address.
        log.warning("delivery refused by policy (%s): check SPF/DKIM/DMARC and the sending "
                    "account", status)
        permanent = False
    return Bounce(permanent=permanent, status=status,
                  original_message_id=c.bounce.original_message_id)


class EmailChannel:
    """Mail to and from respondents (see the module docstring)."""

    name = "email"
    style: Style = "email"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def address(self, invitation: Invitation, respondent: Respondent) -> str | None:
        return invitation.email_address or respondent.email or None

    def reachable(self) -> ColumnElement[bool]:
        return Invitation.email_address.is_not(None)

    def outgoing(self, message: Message, recipient: str) -> Sequence[Outgoing]:
        reply = message.reply or ReplyContext()
        mail = OutgoingMail(
            kind=message.kind, lang=message.lang, token=message.token, to_address=recipient,
            to_name=message.to_name, survey_title=message.survey_title,
            prompts=message.prompts, progress=message.progress, contact=message.contact,
            in_reply_to=reply.message_id, references=reply.references[-MAX_REFERENCES:],
            join_links=message.join_links)
        return [Outgoing(recipient=recipient, payload=mail.to_payload(),
                         message_id=new_message_id(self._settings.email))]

    def read(self, raw: bytes, *, today: dt.date) -> Reading:
        try:
            reading = read_mail(raw, self._settings.email, today=today)
        except BadMail as exc:
            raise Unreadable(exc.reason) from exc
        c = reading.classification
        mail = reading.mail
        thread = [*mail.references]
        if mail.message_id:
            thread.append(mail.message_id)
        bounce = _bounce(c)
        references = [bounce.original_message_id] if bounce and bounce.original_message_id \
            else []
        references += [r for r in (mail.in_reply_to, *reversed(mail.references)) if r]
        return Reading(
            verdict=verdict_of(c), reason=c.reason, text=reading.reply.text, token=c.token,
            references=tuple(references),
            reply=ReplyContext(message_id=mail.message_id, references=tuple(thread)),
            sender=mail.from_address, bounce=bounce, return_date=c.return_date,
            rule=reading.reply.rule, needs_review=reading.reply.needs_review)

    def same_sender(self, reading: Reading, invitation: Invitation,
                    respondent: Respondent) -> bool:
        sender = normalise_email(reading.sender or "")
        invited = normalise_email(self.address(invitation, respondent) or "")
        return not sender or sender == invited

    def lookup(self, session: Session, reading: Reading) -> Invitation | None:
        return None  # the From address alone identifies nobody

    def bind(self, session: Session, invitation: Invitation, reading: Reading) -> bool:
        return True

    def join_link(self, session: Session, invitation: Invitation) -> str | None:
        return None  # every message to the respondent already invites a reply by email

    def notice(self, reading: Reading, key: str, lang: str) -> Outgoing | None:
        return None

    def still_asked(self, reading: Reading, asked: Sequence[str]) -> bool:
        return True

    def acknowledge(self, reading: Reading, *, stale: bool) -> Sequence[Outgoing]:
        return ()

    def limits(self) -> Limits:
        smtp = self._settings.email.smtp
        return Limits(per_minute=smtp.per_minute, per_day=smtp.per_day)

    def retry_for(self) -> dt.timedelta:
        return dt.timedelta(hours=self._settings.email.smtp.retry_for_hours)

    def lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self._settings.email.smtp.lease_seconds)

    def transport(self) -> SmtpTransport:
        return SmtpTransport(self._settings)

    def receivers(self, session_factory: sessionmaker[Session],
                  on_stored: Callable[[], None]) -> Sequence[Receiver]:
        parts: list[Receiver] = []
        if self._settings.email.listen.enabled:
            parts.append(_Listening(self._settings, session_factory, on_stored))
        if self._settings.email.imap.enabled:
            parts.append(_Reading(self._settings, session_factory, on_stored))
        return parts



class _Listening:
    """The SMTP/LMTP listener as a receiver: every process may run it, one per port."""

    leader_only = False
    binds_port = True

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session],
                 on_stored: Callable[[], None]) -> None:
        from bot.channels.email.listener import MailListener

        self.listener = MailListener(settings=settings, session_factory=session_factory,
                                     on_stored=on_stored)

    async def start(self) -> None:
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()


class _Reading:
    """The IMAP reader as a receiver: one mailbox, so only the leader reads it."""

    leader_only = True
    binds_port = False

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session],
                 on_stored: Callable[[], None]) -> None:
        from bot.channels.email.imap_reader import ImapReader

        self.reader = ImapReader(settings=settings, session_factory=session_factory,
                                 on_stored=on_stored)

    async def start(self) -> None:
        self.reader.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self.reader.stop)
