"""An SMTP or LMTP listener that takes replies straight into the inbox.

Used when mail for the reply domain is routed to svarbot (an MTA relaying by LMTP, or the demo)
instead of being read from an IMAP mailbox. The rule that matters: a message is answered 250
only after it is committed to the inbox. A database failure answers 451, so the sending MTA
keeps the message and retries; a crash before the commit loses nothing, because the sender has
not been told the message was taken. Retries after a lost 250 are harmless: the inbox stores
each message once (external id = sha256 of the bytes as received, and the Message-ID).

Recipients are checked one by one at RCPT time: anything outside the reply domain (and the
unsubscribe address's domain) is refused with 550 5.1.1, so svarbot is never an open relay.
Oversized mail is refused with 552 by aiosmtpd itself (`data_size_limit`).

Like the MTA delivering into a mailbox, the listener prepends `Return-Path` (the envelope
sender, `<>` for bounces) and one `Delivered-To` per accepted recipient, so the dispatcher sees
the same trace headers whether a reply came by IMAP or directly.

The database write is blocking and runs in a worker thread, so the event loop keeps serving
other connections meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import weakref
from collections.abc import Callable

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.orm import Session, sessionmaker

from bot.config import EmailSettings, Settings
from storage.db import transaction
from storage.inbox import message_id_of, store_inbound

log = logging.getLogger(__name__)

CHANNEL = "email"


def domain_of(address: str) -> str:
    """The domain of an address (after the last @), lower case; "" if there is none."""
    _, at, domain = address.strip().strip("<>").rpartition("@")
    return domain.lower().rstrip(".") if at else ""


def accepted_domains(settings: EmailSettings) -> frozenset[str]:
    """The domains svarbot takes mail for: where replies and unsubscribe mail are sent."""
    return frozenset(d for d in (domain_of(settings.reply_to),
                                 domain_of(settings.unsubscribe_address)) if d)


def external_id_of(raw: bytes) -> str:
    """The inbox key of a message received by SMTP/LMTP: a hash of its bytes as received."""
    return "smtp:" + hashlib.sha256(raw).hexdigest()


def _trace_headers(envelope: Envelope) -> bytes:
    sender = (envelope.mail_from or "").strip("<>")  # "" for bounces (MAIL FROM:<>)
    lines = [f"Return-Path: <{sender}>"]
    lines += [f"Delivered-To: {rcpt}" for rcpt in envelope.rcpt_tos]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="surrogateescape")


class _Handler:
    """aiosmtpd hooks: recipient policy at RCPT, store-then-answer at DATA."""

    def __init__(self, listener: MailListener) -> None:
        self._listener = listener

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if domain_of(address) not in self._listener.domains:
            log.info("recipient refused: not a svarbot domain")
            return "550 5.1.1 Recipient address rejected: not handled here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        reply = await self._listener.receive(raw, _trace_headers(envelope))
        if isinstance(server, LMTP):
            # LMTP answers once per accepted recipient; the message is stored once for all.
            return "\r\n".join([reply] * len(envelope.rcpt_tos))
        return reply


class MailListener:
    """Serves SMTP or LMTP per `settings.listen` and stores every accepted message.

    `on_stored` is called in the event loop after each commit that added a row (to wake the
    dispatcher). `now` gives the time stamped on new rows (tests pass a fixed clock).
    """

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session], *,
                 on_stored: Callable[[], None] | None = None,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        self._settings = settings.email
        self._factory = session_factory
        self._on_stored = on_stored
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self.domains = accepted_domains(settings.email)
        self._server: asyncio.Server | None = None
        # Open sessions, so stop() can drop them; closed ones fall out on their own.
        self._connections: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def port(self) -> int:
        """The port actually listened on (useful with `port: 0`)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the mail listener is not running")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen on `settings.listen.host:port`; returns once the socket is bound."""
        if self._server is not None:
            return
        listen = self._settings.listen
        loop = asyncio.get_running_loop()
        protocol = LMTP if listen.protocol == "lmtp" else SMTP
        handler = _Handler(self)

        def connection() -> SMTP:
            # hostname is fixed: the default calls socket.getfqdn(), which can stall on DNS.
            server = protocol(handler, hostname="localhost", loop=loop,
                              data_size_limit=self._settings.max_message_bytes)
            self._connections.add(server)
            return server

        self._server = await loop.create_server(connection, listen.host, listen.port)
        log.info("%s listener on %s:%s", listen.protocol.upper(), listen.host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop open connections (a sender without its 250 retries)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        self._connections.clear()
        await server.wait_closed()
        log.info("mail listener stopped")

    async def receive(self, raw: bytes, trace: bytes = b"") -> str:
        """Store one message and give the SMTP reply: 250 only once it is committed."""
        try:
            stored = await asyncio.to_thread(self._store, raw, trace)
        except Exception:  # any storage failure: the sender keeps the message and retries
            log.exception("inbound message could not be stored; answered 451")
            return "451 4.3.0 Temporary storage failure, try again later"
        if stored and self._on_stored is not None:
            self._on_stored()
        return "250 2.0.0 OK: stored" if stored else "250 2.0.0 OK: already stored"

    def _store(self, raw: bytes, trace: bytes) -> bool:
        with transaction(self._factory) as session:
            row = store_inbound(session, channel=CHANNEL, external_id=external_id_of(raw),
                                raw=trace + raw, message_id=message_id_of(raw),
                                now=self._now())
        return row is not None
