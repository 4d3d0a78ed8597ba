"""The SMTP sender: takes due messages from the outbox and delivers them to the mail server.

Design, and why:

* A small pool of connections (`email.smtp.connections`), each owned by one worker task that
  claims its own small batches from the outbox and sends them in turn over its connection.
  Connections are reused (a new TLS handshake and login per message would be slow and looks
  like abuse to providers) and re-opened after any failure that may have left them broken.
* Claims are exactly-once across tasks and processes (storage.claim), and every result is
  committed in its own short transaction right after the server answered, so a crash loses at
  most the results in hand (those rows are taken over when their lease ends; keeping the
  Message-ID lets receivers drop the rare duplicate).
* Sends are paced by a per-account `RateLimiter`, and the slots for a batch are taken *before*
  the batch is claimed: a worker never holds claimed rows while it waits for the limit, so a
  long wait cannot outlive the lease and make another worker send the same message.
* The server's answer decides the outcome (see `classify`): a permanent refusal of the
  recipient bounces it; temporary failures and broken connections are retried with backoff
  until the retry window ends; refusals that are about us (policy, authentication, our sender
  address, a missing STARTTLS) are retried and logged for the operator, never blamed on the
  respondent's address.
* TLS is explicit: `start_tls` is passed as True or False, never None, so a server (or a man in
  the middle) that does not offer STARTTLS makes the send fail rather than go out in clear.
* The exact bytes of the rendered message are sent (`sendmail`, not `send_message`), so a DKIM
  signature made over them stays valid.
* Logs name messages by outbox id and status code only: no addresses, tokens or bodies.

Database work runs in worker threads (`asyncio.to_thread`) so that a slow commit never stalls
the other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import TypeVar

import aiosmtplib
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.mail.ratelimit import Clock, RateLimiter, SystemClock
from storage import outbox
from storage.db import transaction
from storage.outbox import Claimed

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Builds the message for a claimed row and the envelope recipients it is meant for.
Render = Callable[[Claimed], tuple[EmailMessage, list[str]]]

#: Enhanced status codes 5.7.x are about the sender (policy, authentication, relaying).
_POLICY = re.compile(r"^\s*5\.7\.\d+")
#: Codes that mean the server is closing the connection.
_CLOSING = frozenset({421})


class SenderError(Exception):
    """The sender cannot start as configured; the message is one line for the operator."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to.

    `result` is "sent", "bounced" or "retry"; `reason` goes into the message's history;
    `reconnect` drops the connection before the next message; `ours` marks a failure that is
    our configuration's or account's problem (logged as a warning for the operator).
    """

    result: str
    reason: str
    code: int | None = None
    reconnect: bool = False
    ours: bool = False


def _describe(code: int, message: str) -> str:
    return outbox.describe_reason(f"{code} {message}")


def _refusal(code: int, message: str, stage: str) -> Outcome:
    """A refusal at RCPT or DATA: about the recipient, unless 5.7.x (about us)."""
    reason = f"{stage}: {_describe(code, message)}"
    if code >= 500 and _POLICY.match(message):
        return Outcome("retry", reason, code, ours=True)
    if code >= 500:
        return Outcome("bounced", reason, code)
    return Outcome("retry", reason, code, reconnect=code in _CLOSING)


def classify(exc: BaseException) -> Outcome:
    """The outcome of an attempt that raised `exc` (anything `sendmail` or connecting raises)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        if refused is None:
            return Outcome("retry", "RCPT: refused", reconnect=True)
        return _refusal(refused.code, refused.message, "RCPT")
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _refusal(exc.code, exc.message, "DATA")
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return Outcome("retry", f"MAIL FROM: {_describe(exc.code, exc.message)}", exc.code,
                       reconnect=exc.code in _CLOSING, ours=exc.code >= 500)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Outcome("retry", f"login: {_describe(exc.code, exc.message)}", exc.code,
                       reconnect=True, ours=True)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Outcome("retry", _describe(exc.code, exc.message), exc.code, reconnect=True,
                       ours=exc.code >= 500)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError
                  | aiosmtplib.SMTPTimeoutError | TimeoutError | OSError):
        return Outcome("retry", f"connection: {type(exc).__name__}", reconnect=True)
    if isinstance(exc, aiosmtplib.SMTPException):
        # STARTTLS not offered, an extension missing: the server and our settings disagree.
        return Outcome("retry", f"smtp: {outbox.describe_reason(exc.message)}",
                       reconnect=True, ours=True)
    return Outcome("retry", f"error: {type(exc).__name__}", reconnect=True, ours=True)


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire (CRLF line ends): what is sent, and what DKIM signs."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def compose_render(settings: Settings, clock: Clock) -> Render:
    """The default renderer: bot.mail.compose over the row's payload and Message-ID."""

    def render(item: Claimed) -> tuple[EmailMessage, list[str]]:
        from bot.mail import compose

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
        await self.drop()
        smtp = self._smtp
        client = aiosmtplib.SMTP(
            hostname=smtp.host, port=smtp.port, local_hostname=self._local_hostname,
            timeout=smtp.timeout, use_tls=False, start_tls=bool(smtp.start_tls),
            validate_certs=True, username=smtp.username, password=self._password)
        try:
            await client.connect()
        except BaseException:
            client.close()
            raise
        self._client = client
        return client

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


class Sender:
    """Delivers due email from the outbox (one per process and account).

    `render` turns a claimed row into a message and its envelope recipients (default:
    bot.mail.compose). In dev mode (`dev_mode.redirect_to`) every envelope goes to that address
    whatever `render` says. `local_hostname` is the EHLO name (default: the domain of
    `email.from_address`; never the machine's guessed FQDN).
    """

    def __init__(self, *, session_factory: sessionmaker[Session], settings: Settings,
                 worker: str, render: Render | None = None, clock: Clock | None = None,
                 batch_size: int = 10, lease: timedelta = outbox.DEFAULT_LEASE,
                 idle_seconds: float = 0.5, local_hostname: str | None = None) -> None:
        self._factory = session_factory
        self._settings = settings
        self._smtp = settings.email.smtp
        self._worker = worker
        self._clock: Clock = clock or SystemClock()
        self._render: Render = render or compose_render(settings, self._clock)
        self._batch = max(1, batch_size)
        self._lease = lease
        self._idle_seconds = idle_seconds
        self._retry_for = timedelta(hours=self._smtp.retry_for_hours)
        self._redirect = settings.dev_mode.redirect_to
        self._mail_from = parseaddr(settings.email.from_address)[1]
        if "@" not in self._mail_from:
            raise SenderError("email.from_address: no address to send from")
        hostname = local_hostname or self._mail_from.rpartition("@")[2]
        password = self._password()
        self._connections = [_Connection(settings, hostname, password)
                             for _ in range(self._smtp.connections)]
        self._wake = [asyncio.Event() for _ in self._connections]
        self._busy = [False for _ in self._connections]
        self.limiter = RateLimiter(per_minute=self._smtp.per_minute,
                                   per_day=self._smtp.per_day, clock=self._clock,
                                   sent_ago=self._recent_sends())

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

    def _recent_sends(self) -> list[float]:
        """Seconds since each send of the last 24 h, so the day's budget survives a restart."""
        now = self._clock.now()
        with transaction(self._factory) as session:
            times = outbox.sent_since(session, now - timedelta(days=1))
        return [(now - at).total_seconds() for at in times]

    # --- database -------------------------------------------------------------------------

    def _in_transaction(self, action: Callable[..., T], *args: object, **kwargs: object) -> T:
        with transaction(self._factory) as session:
            return action(session, *args, **kwargs)

    async def _db(self, action: Callable[..., T], *args: object, **kwargs: object) -> T:
        return await asyncio.to_thread(
            functools.partial(self._in_transaction, action, *args, **kwargs))

    async def _record(self, item: Claimed, outcome: Outcome) -> None:
        """Commit the outcome of one attempt; a database failure is logged, not raised."""
        now = self._clock.now()
        try:
            if outcome.result == "sent":
                await self._db(outbox.mark_sent, item.id, now=now, detail=outcome.reason)
                status = "sent"
            elif outcome.result == "bounced":
                await self._db(outbox.mark_bounced, item.id, now=now, reason=outcome.reason)
                status = "bounced"
            elif outcome.result == "dead":
                await self._db(outbox.mark_dead, item.id, now=now, reason=outcome.reason)
                status = "dead"
            else:
                status = (await self._db(outbox.mark_retry, item.id, now=now,
                                         reason=outcome.reason,
                                         retry_for=self._retry_for)).value
        except Exception:
            log.exception("outbox %s: could not record the result (%s)", item.id,
                          outcome.result)
            return
        code = "-" if outcome.code is None else outcome.code
        if outcome.ours:
            log.warning("outbox %s: %s (code %s); this is a problem with our account or "
                        "settings, not the recipient", item.id, status, code)
        elif status == "sent":
            log.debug("outbox %s: sent", item.id)
        else:
            log.info("outbox %s: %s (code %s, attempt %s)", item.id, status, code,
                     item.attempts)

    # --- sending --------------------------------------------------------------------------

    async def _attempt(self, connection: _Connection, item: Claimed) -> Outcome:
        try:
            message, recipients = self._render(item)
            data = wire_bytes(message)
        except Exception as exc:  # a message that cannot be built will never be sendable
            log.exception("outbox %s: cannot render the message", item.id)
            return Outcome("dead", f"render failed: {type(exc).__name__}", ours=True)
        envelope = [self._redirect] if self._redirect else recipients
        try:
            client = await connection.client()
            _refused, response = await client.sendmail(self._mail_from, envelope, data)
        except Exception as exc:
            outcome = classify(exc)
        else:
            outcome = Outcome("sent", outbox.describe_reason(f"250 {response}"), 250)
        if outcome.reconnect:
            await connection.drop()
        return outcome

    async def _round(self, slot: int) -> int:
        """Take limiter slots, claim that many due rows, send them; how many were handled."""
        while True:
            await self.limiter.ready()
            # Another worker may have taken the last slot meanwhile: then wait again.
            if allowed := self.limiter.try_acquire(self._batch):
                break
        self._busy[slot] = True
        try:
            try:
                items = await self._db(outbox.claim, worker=f"{self._worker}/{slot}",
                                       limit=allowed, now=self._clock.now(),
                                       lease=self._lease, channel="email")
            except Exception:
                self.limiter.release(allowed)
                log.exception("outbox: claiming failed")
                return 0
            self.limiter.release(allowed - len(items))
            connection = self._connections[slot]
            for item in items:
                await self._record(item, await self._attempt(connection, item))
            return len(items)
        finally:
            self._busy[slot] = False

    async def send_batch(self) -> int:
        """One round on every connection at once; how many messages were handled."""
        handled = await asyncio.gather(*(self._round(slot)
                                         for slot in range(len(self._connections))))
        return sum(handled)

    def notify(self) -> None:
        """New messages were queued: wake idle workers now (call from the event loop)."""
        for event in self._wake:
            event.set()

    async def _idle(self, slot: int, stop: asyncio.Event) -> None:
        wake = self._wake[slot]
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=self._idle_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            wake.clear()

    async def _until_stopped(self, slot: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            round_task = asyncio.ensure_future(self._round(slot))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([round_task, stopping], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not round_task.done():
                # Stopped mid-round. A round still waiting for the rate limit holds no rows
                # and is abandoned; one that has claimed rows finishes them first.
                if not self._busy[slot]:
                    round_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await round_task
                return
            if round_task.result() == 0:
                await self._idle(slot, stop)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then finish the messages in hand and close connections."""
        try:
            await asyncio.gather(*(self._until_stopped(slot, stop)
                                   for slot in range(len(self._connections))))
        finally:
            await self.close()

    async def close(self) -> None:
        """Close every connection."""
        await asyncio.gather(*(connection.drop() for connection in self._connections))
