"""SMTP delivery: the email channel's transport, and the email outbox worker built on it.

Design, and why:

* A small pool of connections (`email.smtp.connections`), one per slot of the outbox worker
  (`bot.channels.outbox_worker`), each opened on first use, reused (a new TLS handshake and
  login per message would be slow and looks like abuse to providers) and re-opened after any
  failure that may have left it broken. Rendering is CPU work on the event loop; it overlaps
  with the other connections' waits on the server.
* The server's answer decides the outcome (see `classify`): a permanent refusal of the
  recipient bounces it; temporary failures and broken connections are retried with backoff
  until the retry window ends; refusals that are about us (policy, authentication, our sender
  address, a missing STARTTLS) are retried and logged for the operator, never blamed on the
  respondent's address.
* TLS is explicit: `start_tls` is passed as True or False, never None, so a server (or a man in
  the middle) that does not offer STARTTLS makes the send fail rather than go out in clear.
* Every wait on the server is bounded twice: each operation by `email.smtp.timeout`
  (aiosmtplib's, connecting, the greeting, the TLS handshake and each reply), and each attempt
  as a whole by the outbox worker's deadline, which cancels it; a cancelled or failed
  connection is closed at once (no QUIT to a server that may not be listening), and a reason
  says at which stage it failed (`connect:` for reaching, greeting, TLS and login, `connection:`
  once the message was under way).
* The exact bytes of the rendered message are sent (`sendmail`, not `send_message`), so a DKIM
  signature made over them stays valid.
* In dev mode (`dev_mode.redirect_to`) every envelope goes to that one address.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import ssl
from collections.abc import Callable
from datetime import timedelta
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.utils import parseaddr
from typing import Literal

import aiosmtplib
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import ChannelError, Delivery, DeliveryResult, Turn
from bot.channels.outbox_worker import OutboxWorker
from bot.channels.ratelimit import Clock, SystemClock
from bot.config import Settings
from storage import outbox
from storage.outbox import Claimed

log = logging.getLogger(__name__)

#: Builds the message for a claimed row and the envelope recipients it is meant for.
Render = Callable[[Claimed], tuple[EmailMessage, list[str]]]

#: Enhanced status codes 5.7.x are about the sender (policy, authentication, relaying).
_POLICY = re.compile(r"^\s*5\.7\.\d+")
#: Codes that mean the server is closing the connection.
_CLOSING = frozenset({421})


class SenderError(ChannelError):
    """The sender cannot start as configured; the message is one line for the operator."""


#: What one attempt came to, and whether the connection must be dropped before the next.
Outcome = tuple[Delivery, bool]


def _outcome(result: DeliveryResult, reason: str, code: int | None = None, *,
             reconnect: bool = False, ours: bool = False) -> Outcome:
    return Delivery(result, reason, code, ours=ours), reconnect


def _describe(code: int, message: str) -> str:
    return outbox.describe_reason(f"{code} {message}")


def _refusal(code: int, message: str, stage: str) -> Outcome:
    """A refusal at RCPT or DATA: about the recipient, unless 5.7.x (about us)."""
    reason = f"{stage}: {_describe(code, message)}"
    if code >= 500 and _POLICY.match(message):
        return _outcome("retry", reason, code, ours=True)
    if code >= 500:
        return _outcome("bounced", reason, code)
    return _outcome("retry", reason, code, reconnect=code in _CLOSING)


#: Where an attempt was: making the connection, or sending a message over it.
Stage = Literal["connect", "send"]


def _failure(exc: BaseException, timeout: float | None) -> str:
    """What went wrong with the connection, short (reasons are cut at 80 characters)."""
    kind = type(exc).__name__
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or kind})"
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        within = "" if timeout is None else f" within {timeout:g} s"
        return f"no answer{within} ({kind})"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionResetError
                  | BrokenPipeError):
        return f"lost ({kind})"
    if isinstance(exc, ConnectionRefusedError):
        return f"refused ({kind})"
    return kind


def classify(exc: BaseException, stage: Stage = "send", *,
             timeout: float | None = None) -> Outcome:
    """The outcome of an attempt that raised `exc` (anything `sendmail` or connecting raises).

    `stage` is "connect" while the connection is being made (TCP, greeting, STARTTLS, login)
    and "send" once a message is under way. A failure to connect is about the server we send
    through (or our settings), never the recipient: it is retried and reported as ours.
    """
    if stage == "connect":
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return _outcome("retry", f"login: {_describe(exc.code, exc.message)}", exc.code,
                           reconnect=True, ours=True)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return _outcome("retry", f"connect: {_describe(exc.code, exc.message)}",
                           exc.code, reconnect=True, ours=True)
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError
                      | aiosmtplib.SMTPTimeoutError | TimeoutError | OSError):
            return _outcome("retry", outbox.describe_reason(
                f"connect: {_failure(exc, timeout)}"), reconnect=True, ours=True)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        if refused is None:
            return _outcome("retry", "RCPT: refused", reconnect=True)
        return _refusal(refused.code, refused.message, "RCPT")
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _refusal(exc.code, exc.message, "DATA")
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return _outcome("retry", f"MAIL FROM: {_describe(exc.code, exc.message)}", exc.code,
                       reconnect=exc.code in _CLOSING, ours=exc.code >= 500)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return _outcome("retry", f"login: {_describe(exc.code, exc.message)}", exc.code,
                       reconnect=True, ours=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _outcome("retry", _describe(exc.code, exc.message), exc.code, reconnect=True,
                       ours=exc.code >= 500)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError
                  | aiosmtplib.SMTPTimeoutError | TimeoutError | OSError):
        return _outcome("retry", f"connection: {_failure(exc, timeout)}", reconnect=True)
    if isinstance(exc, aiosmtplib.SMTPException):
        # STARTTLS not offered, an extension missing: the server and our settings disagree.
        prefix = "connect" if stage == "connect" else "smtp"
        return _outcome("retry", f"{prefix}: {outbox.describe_reason(exc.message)}",
                       reconnect=True, ours=True)
    return _outcome("retry", f"error: {type(exc).__name__}", reconnect=True, ours=True)


class _WireGenerator(BytesGenerator):
    """`BytesGenerator` that writes a part's body in one piece instead of line by line.

    The standard generator writes every line and line end separately, which is half the cost
    of flattening a rendered invitation (hundreds of lines of quoted-printable text and HTML).
    Replacing the line ends with one substitution gives the same bytes
    (tests/test_mail_sender.py holds it to that) at a fraction of the cost.
    """

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(_LINE_END.sub(self._NL, lines))  # type: ignore[attr-defined]


#: Any line end, as `email.generator` recognises them.
_LINE_END = re.compile(r"\r\n|\r|\n")


def _folded_headers(message: Message) -> str | None:
    """The message's headers as the generator writes them, if every one is pre-folded."""
    lines = []
    for _name, value in message.raw_items():
        folded = getattr(value, "folded", None)
        if not isinstance(folded, str):
            return None
        lines.append(folded)
    return "".join(lines)


def _composed_wire(message: EmailMessage) -> bytes | None:
    """The bytes of a message as `bot.channels.email.compose` builds it, without the generator.

    That shape only: a multipart whose headers and whose text parts' headers are all folded
    already, and parts with string payloads and no preamble or epilogue. Anything else gives
    None (and goes through the generator). What the generator writes for that shape: the
    headers, a blank line, each part after `--boundary`, the closing `--boundary--`.
    """
    boundary = message.get_boundary()
    parts = message.get_payload()
    head = _folded_headers(message)
    if (head is None or boundary is None or not isinstance(parts, list) or not parts
            or message.preamble is not None or message.epilogue is not None):
        return None
    chunks = [head, "\n--", boundary, "\n"]
    for index, part in enumerate(parts):
        part_head = _folded_headers(part)
        payload = part.get_payload()
        if (part_head is None or not isinstance(payload, str) or part.is_multipart()
                or part.preamble is not None or part.epilogue is not None):
            return None
        if index:
            chunks += ["\n--", boundary, "\n"]
        chunks += [part_head, "\n", payload]
    chunks += ["\n--", boundary, "--\n"]
    return _LINE_END.sub("\r\n", "".join(chunks)).encode("ascii")


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire (CRLF line ends): what is sent, and what DKIM signs.

    The same bytes as `message.as_bytes(policy=message.policy.clone(linesep="\\r\\n"))`.
    A message built by `bot.channels.email.compose` (pre-folded headers, quoted-printable parts) is
    written directly, at a fraction of the generator's cost; tests hold the two to the same
    bytes.
    """
    if message.policy.linesep in ("\n", "\r\n"):
        try:
            fast = _composed_wire(message)
        except UnicodeEncodeError:  # a non-ASCII payload: the generator knows what to do
            fast = None
        if fast is not None:
            return fast
    out = io.BytesIO()
    generator = _WireGenerator(out, mangle_from_=False,
                               policy=message.policy.clone(linesep="\r\n"))
    generator.flatten(message)
    return out.getvalue()


def compose_render(settings: Settings, clock: Clock) -> Render:
    """The default renderer: bot.channels.email.compose over the row's payload and Message-ID."""

    def render(item: Claimed) -> tuple[EmailMessage, list[str]]:
        from bot.channels.email import compose

        if item.payload is None:
            raise ValueError("the message body was cleared")
        if item.message_id is None:
            raise ValueError("the message has no Message-ID")
        mail = compose.OutgoingMail.from_payload(item.payload)
        message = compose.render(mail, message_id=item.message_id, settings=settings.email,
                                 redirect_to=settings.dev_mode.redirect_to, now=clock.now())
        return message, [item.recipient]

    return render


class _Connection:
    """One SMTP connection, opened on first use and re-opened after it was dropped."""

    def __init__(self, settings: Settings, local_hostname: str, password: str | None) -> None:
        self._smtp = settings.email.smtp
        self._local_hostname = local_hostname
        self._password = password
        self._client: aiosmtplib.SMTP | None = None

    async def client(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        self.abandon()
        smtp = self._smtp
        client = aiosmtplib.SMTP(
            hostname=smtp.host, port=smtp.port, local_hostname=self._local_hostname,
            timeout=smtp.timeout, use_tls=False, start_tls=bool(smtp.start_tls),
            validate_certs=True, username=smtp.username, password=self._password)
        try:
            await client.connect()
        except BaseException:  # cancelled by the deadline too: never leave it half open
            _abort(client)
            raise
        self._client = client
        return client

    def abandon(self) -> None:
        """Close the connection at once, without QUIT: it failed, or a command is unfinished."""
        client, self._client = self._client, None
        if client is not None:
            _abort(client)

    async def drop(self) -> None:
        """Close the connection (politely if it still works); never raises."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await asyncio.wait_for(client.quit(), timeout=2)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            client.close()


def _abort(client: aiosmtplib.SMTP) -> None:
    """Drop `client`'s connection now, unsent bytes and all (a stuck server may never read)."""
    transport = client.transport
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    client.close()


class SmtpTransport:
    """Sends rendered mail over `email.smtp.connections` reused connections."""

    def __init__(self, settings: Settings, *, render: Render | None = None,
                 clock: Clock | None = None, local_hostname: str | None = None) -> None:
        smtp = settings.email.smtp
        self._smtp = smtp
        self._render: Render = render or compose_render(settings, clock or SystemClock())
        self._redirect = settings.dev_mode.redirect_to
        self._mail_from = parseaddr(settings.email.from_address)[1]
        if "@" not in self._mail_from:
            raise SenderError("email.from_address: no address to send from")
        hostname = local_hostname or self._mail_from.rpartition("@")[2]
        password = self._password()
        self.concurrency = smtp.connections
        self._connections = [_Connection(settings, hostname, password)
                             for _ in range(smtp.connections)]

    def _password(self) -> str | None:
        smtp = self._smtp
        if smtp.username is None:
            return None
        if not smtp.password_env:
            raise SenderError("email.smtp.password_env: must name the environment variable "
                              "holding the password when email.smtp.username is set")
        password = os.environ.get(smtp.password_env)
        if not password:
            raise SenderError(f"email.smtp.password_env: environment variable "
                              f"{smtp.password_env} is not set")
        return password

    async def send(self, item: Claimed, slot: int, turn: Turn) -> Delivery:
        connection = self._connections[slot]
        try:
            message, recipients = self._render(item)
            data = wire_bytes(message)
        except Exception as exc:  # a message that cannot be built will never be sendable
            log.exception("outbox %s: cannot render the message", item.id)
            return Delivery("dead", f"render failed: {type(exc).__name__}", ours=True)
        envelope = [self._redirect] if self._redirect else recipients
        stage: Stage = "connect"
        try:
            client = await connection.client()
            stage = "send"
            await turn()
            _refused, response = await client.sendmail(self._mail_from, envelope, data)
        except asyncio.CancelledError:
            # The worker's deadline (or shutdown): the server may still be in mid-reply.
            connection.abandon()
            log.info("outbox %s: SMTP attempt cut short while %s; connection closed", item.id,
                     "connecting" if stage == "connect" else "sending")
            raise
        except Exception as exc:
            delivery, reconnect = classify(exc, stage, timeout=self._smtp.timeout)
        else:
            delivery, reconnect = Delivery("sent", outbox.describe_reason(f"250 {response}"),
                                           250), False
        if reconnect:
            connection.abandon()
        return delivery

    async def close(self) -> None:
        """Close every connection."""
        await asyncio.gather(*(connection.drop() for connection in self._connections))


class Sender(OutboxWorker):
    """The email outbox worker: `OutboxWorker` over `SmtpTransport` with the SMTP settings.

    `render` turns a claimed row into a message and its envelope recipients (default:
    bot.channels.email.compose). `local_hostname` is the EHLO name (default: the domain of
    `email.from_address`; never the machine's guessed FQDN).
    """

    def __init__(self, *, session_factory: sessionmaker[Session], settings: Settings,
                 worker: str, render: Render | None = None, clock: Clock | None = None,
                 batch_size: int | None = None, lease: timedelta = outbox.DEFAULT_LEASE,
                 idle_seconds: float = 0.5, flush_seconds: float = 0.1,
                 local_hostname: str | None = None) -> None:
        from bot.channels.email.channel import EmailChannel

        channel = EmailChannel(settings)
        super().__init__(
            session_factory=session_factory, channel=channel.name,
            transport=SmtpTransport(settings, render=render, clock=clock,
                                    local_hostname=local_hostname),
            limits=channel.limits(), retry_for=channel.retry_for(), worker=worker,
            clock=clock, batch_size=batch_size, lease=lease, idle_seconds=idle_seconds,
            flush_seconds=flush_seconds)
