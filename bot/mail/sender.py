"""The SMTP sender: takes due messages from the outbox and delivers them to the mail server.

Design, and why:

* A small pool of connections (`email.smtp.connections`), each owned by one worker task that
  takes the next claimed message from a shared queue, renders it and sends it over its
  connection. Connections are reused (a new TLS handshake and login per message would be slow
  and looks like abuse to providers) and re-opened after any failure that may have left them
  broken. Rendering is CPU work on the event loop; it overlaps with the other connections'
  waits on the server.
* The database is the cost to keep down (a commit is milliseconds, a send on a local server
  well under one), so its work is batched: rows are claimed a batch at a time, sized to the
  connections, and claimed again when the queue runs low; results are recorded together, in
  one transaction per batch (`storage.outbox.record`), at most `flush_seconds` after they came
  in. Claims are exactly-once across tasks and processes (storage.claim), with a lease.
* A crash loses at most the results not yet recorded: those rows are sent, but still `sending`,
  and are taken over (and sent again, with the same Message-ID, so receivers can drop the
  duplicate) once their lease ends. That is the price of batching, and it is small. A message
  that waited so long in the queue that its lease is half spent is handed back unsent rather
  than risk being sent by two workers; so is every message not yet started when the sender
  stops.
* Sends are paced by a per-account `RateLimiter`, and the slots for a batch are taken *before*
  the batch is claimed: the sender never holds claimed rows while it waits for the limit, so a
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

Database work runs in a worker thread (`asyncio.to_thread`), one statement batch at a time, so
that a slow commit never stalls the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.utils import parseaddr
from typing import TypeVar

import aiosmtplib
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.mail.ratelimit import Clock, RateLimiter, SystemClock
from storage import outbox
from storage.db import transaction
from storage.outbox import Claimed, ResultKind
from storage.schema import OutboxStatus

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

    result: ResultKind
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
    """The bytes of a message as `bot.mail.compose` builds it, without the generator.

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
    A message built by `bot.mail.compose` (pre-folded headers, quoted-printable parts) is
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


@dataclass
class _Run:
    """The asyncio state of one `run` or `send_batch`, made inside the loop that uses it."""

    #: Claimed messages (with the clock's monotonic time of the claim); None stops a worker.
    queue: asyncio.Queue[tuple[Claimed, float] | None] = field(default_factory=asyncio.Queue)
    #: The queue ran low: claim more.
    room: asyncio.Event = field(default_factory=asyncio.Event)
    #: `notify` was called: look for new messages now.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: Results are waiting to be recorded (or the run is closing).
    flush: asyncio.Event = field(default_factory=asyncio.Event)
    #: One database transaction at a time (SQLite has a single writer anyway).
    db: asyncio.Lock = field(default_factory=asyncio.Lock)
    results: list[tuple[Claimed, Outcome]] = field(default_factory=list)
    #: Claimed but never tried: to be handed back.
    unsent: list[Claimed] = field(default_factory=list)
    closing: bool = False


class Sender:
    """Delivers due email from the outbox (one per process and account).

    `render` turns a claimed row into a message and its envelope recipients (default:
    bot.mail.compose). In dev mode (`dev_mode.redirect_to`) every envelope goes to that address
    whatever `render` says. `local_hostname` is the EHLO name (default: the domain of
    `email.from_address`; never the machine's guessed FQDN). `batch_size` is how many rows one
    claim takes (default: 25 per connection, between 50 and 200); results are recorded once
    `batch_size` of them are in, or `flush_seconds` after the first, whichever comes first.
    """

    def __init__(self, *, session_factory: sessionmaker[Session], settings: Settings,
                 worker: str, render: Render | None = None, clock: Clock | None = None,
                 batch_size: int | None = None, lease: timedelta = outbox.DEFAULT_LEASE,
                 idle_seconds: float = 0.5, flush_seconds: float = 0.1,
                 local_hostname: str | None = None) -> None:
        self._factory = session_factory
        self._settings = settings
        self._smtp = settings.email.smtp
        self._worker = worker
        self._clock: Clock = clock or SystemClock()
        self._render: Render = render or compose_render(settings, self._clock)
        connections = self._smtp.connections
        self._batch = max(1, batch_size if batch_size is not None
                          else min(200, max(50, 25 * connections)))
        #: Claim again when no more than this many messages wait (enough to cover a claim).
        self._low_water = max(self._batch // 2, connections)
        self._lease = lease
        self._idle_seconds = idle_seconds
        self._flush_seconds = flush_seconds
        self._retry_for = timedelta(hours=self._smtp.retry_for_hours)
        self._redirect = settings.dev_mode.redirect_to
        self._mail_from = parseaddr(settings.email.from_address)[1]
        if "@" not in self._mail_from:
            raise SenderError("email.from_address: no address to send from")
        hostname = local_hostname or self._mail_from.rpartition("@")[2]
        password = self._password()
        self._connections = [_Connection(settings, hostname, password)
                             for _ in range(connections)]
        self._running: _Run | None = None
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

    def _record_and_claim(self, session: Session, results: list[outbox.Result], *,
                          limit: int, now: datetime) -> tuple[dict[int, OutboxStatus],
                                                              list[Claimed]]:
        statuses = outbox.record(session, results, now=now, retry_for=self._retry_for)
        return statuses, outbox.claim(session, worker=self._worker, limit=limit, now=now,
                                      lease=self._lease, channel="email")

    async def _claim(self, state: _Run, allowed: int) -> int:
        """Claim up to `allowed` rows (limiter slots already taken) into the queue; how many.

        The results in hand are recorded in the same transaction: a commit is the expensive
        part of either, so one commit for both halves the database's share of each message.
        """
        async with state.db:
            results, state.results = state.results, []
            try:
                statuses, items = await self._db(self._record_and_claim, _results(results),
                                                 limit=allowed, now=self._clock.now())
            except Exception:
                log.exception("outbox: claiming failed")
                state.results[:0] = results  # recorded on their own (see _flush)
                self.limiter.release(allowed)
                return 0
        _log_results(results, statuses)
        self.limiter.release(allowed - len(items))
        claimed_at = self._clock.monotonic()
        for item in items:
            state.queue.put_nowait((item, claimed_at))
        return len(items)

    async def _flush(self, state: _Run) -> None:
        """Record the results in hand in one transaction and hand back unsent messages."""
        results, state.results = state.results, []
        unsent, state.unsent = state.unsent, []
        if not results and not unsent:
            return
        async with state.db:
            if results:
                await self._record(results)
            if unsent:
                await self._give_back(unsent)

    async def _record(self, results: list[tuple[Claimed, Outcome]]) -> None:
        """Commit the outcomes of a batch of attempts; a database failure is logged, not raised.

        If the batch cannot be written, each result is tried in its own transaction, so that
        one bad row does not cost the others their record.
        """
        now = self._clock.now()
        batch = _results(results)
        try:
            statuses = await self._db(outbox.record, batch, now=now, retry_for=self._retry_for)
        except Exception:
            log.exception("outbox: could not record %d results at once; trying one by one",
                          len(batch))
            statuses = {}
            for result in batch:
                try:
                    statuses.update(await self._db(outbox.record, [result], now=now,
                                                   retry_for=self._retry_for))
                except Exception:
                    log.exception("outbox %s: could not record the result (%s)",
                                  result.outbox_id, result.outcome)
        _log_results(results, statuses)

    async def _give_back(self, unsent: list[Claimed]) -> None:
        """Return claimed messages nobody tried to the queue (and their limiter slots)."""
        self.limiter.release(len(unsent))
        try:
            count = await self._db(outbox.release, [item.id for item in unsent],
                                   worker=self._worker, now=self._clock.now())
        except Exception:
            log.exception("outbox: could not hand back %d unsent messages (their leases will "
                          "expire)", len(unsent))
            return
        log.info("outbox: %d claimed messages handed back unsent", count)

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

    async def _work(self, state: _Run, slot: int) -> None:
        """One connection's loop: send queued messages until told to stop (None)."""
        connection = self._connections[slot]
        half_lease = self._lease.total_seconds() / 2
        while (entry := await state.queue.get()) is not None:
            if state.queue.qsize() <= self._low_water:
                state.room.set()
            item, claimed_at = entry
            if self._clock.monotonic() - claimed_at > half_lease:
                # Its lease may end before the server answers, and another worker would send
                # it too: give it back instead.
                state.unsent.append(item)
                continue
            outcome = await self._attempt(connection, item)
            state.results.append((item, outcome))
            if len(state.results) in (1, self._batch):
                state.flush.set()

    async def _slots(self, stop: asyncio.Event | None) -> int:
        """Wait for the rate limit and take up to a batch of slots; 0 if stopped first."""
        while True:
            if stop is None:
                await self.limiter.ready()
            elif not await _unless_stopped(self.limiter.ready(), stop):
                return 0
            # Another claimer (a `send_batch` meanwhile) may have taken the last slot: wait again.
            if allowed := self.limiter.try_acquire(self._batch):
                return allowed

    async def send_batch(self) -> int:
        """Claim one batch, send it over the connections at once and record it; how many.

        Waits for the rate limit first. For tests and one-off use; `run` keeps a steady flow.
        """
        state = _Run()
        count = await self._claim(state, await self._slots(None))
        workers = min(count, len(self._connections))
        for _ in range(workers):
            state.queue.put_nowait(None)
        try:
            await asyncio.gather(*(self._work(state, slot) for slot in range(workers)))
        finally:
            await self._flush(state)
        return count

    def notify(self) -> None:
        """New messages were queued: look for them now (call from the event loop)."""
        if self._running is not None:
            self._running.wake.set()

    async def _feed(self, state: _Run, stop: asyncio.Event) -> None:
        """Keep the queue supplied with claimed messages until `stop` is set."""
        while not stop.is_set():
            state.room.clear()
            if state.queue.qsize() > self._low_water:
                await _first_of([stop, state.room])
                continue
            allowed = await self._slots(stop)
            if not allowed:
                return
            state.wake.clear()
            if await self._claim(state, allowed) == 0:
                await _first_of([stop, state.wake], within=self._idle_seconds)

    async def _record_until_closed(self, state: _Run) -> None:
        """Record results in batches: `batch_size` at once, or `flush_seconds` after the first."""
        while True:
            if not state.results and not state.closing:
                state.flush.clear()
                await state.flush.wait()
            if not state.closing and len(state.results) < self._batch:
                state.flush.clear()
                await _first_of([state.flush], within=self._flush_seconds)
            await self._flush(state)
            if state.closing and not state.results and not state.unsent:
                return

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then finish and record the messages being sent, hand back
        those not started, and close the connections."""
        state = _Run()
        self._running = state
        workers = [asyncio.create_task(self._work(state, slot))
                   for slot in range(len(self._connections))]
        recorder = asyncio.create_task(self._record_until_closed(state))
        try:
            await self._feed(state, stop)
        finally:
            self._running = None
            while not state.queue.empty():
                entry = state.queue.get_nowait()
                if entry is not None:
                    state.unsent.append(entry[0])
            for _ in workers:
                state.queue.put_nowait(None)
            try:
                await asyncio.gather(*workers)
            finally:
                state.closing = True
                state.flush.set()
                try:
                    await recorder
                finally:
                    await self.close()

    async def close(self) -> None:
        """Close every connection."""
        await asyncio.gather(*(connection.drop() for connection in self._connections))


def _results(results: list[tuple[Claimed, Outcome]]) -> list[outbox.Result]:
    return [outbox.Result(item.id, outcome.result, outcome.reason) for item, outcome in results]


def _log_results(results: list[tuple[Claimed, Outcome]],
                 statuses: dict[int, OutboxStatus]) -> None:
    """One line per recorded result: a warning when it is our problem, else info (debug if sent)."""
    for item, outcome in results:
        status = statuses.get(item.id)
        if status is None:
            continue
        code = "-" if outcome.code is None else outcome.code
        if outcome.ours:
            log.warning("outbox %s: %s (code %s); this is a problem with our account or "
                        "settings, not the recipient", item.id, status.value, code)
        elif status == OutboxStatus.SENT:
            log.debug("outbox %s: sent", item.id)
        else:
            log.info("outbox %s: %s (code %s, attempt %s)", item.id, status.value, code,
                     item.attempts)


async def _first_of(events: list[asyncio.Event], within: float | None = None) -> None:
    """Wait until any of `events` is set, or `within` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _unless_stopped(work: Coroutine[object, object, None], stop: asyncio.Event) -> bool:
    """Run `work` until it ends (True) or `stop` is set first (False: `work` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False
