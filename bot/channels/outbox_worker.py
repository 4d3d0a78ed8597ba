"""The outbox worker: takes one channel's due messages from the outbox and delivers them.

One worker per channel and process. It owns everything about delivery that is not the
channel's: claims, leases, batching, handing back, rate limits, retries and the delivery
history. The channel's `Transport` only tries one message and says what came of it (sent,
retry, bounced, dead; see `bot.channels.base.Delivery`).

Design, and why:

* `transport.concurrency` worker tasks (SMTP connections, concurrent HTTP requests) take the
  next claimed message from a shared queue and hand it to the transport.
* The database is the cost to keep down (a commit is milliseconds, a send on a local server
  well under one), so its work is batched: rows are claimed a batch at a time, sized to the
  concurrency, and claimed again when the queue runs low; results are recorded together, in
  one transaction per batch (`storage.outbox.record`), at most `flush_seconds` after they came
  in. Claims are exactly-once across tasks and processes (storage.claim), with a lease.
* A crash loses at most the results not yet recorded: those rows are sent, but still `sending`,
  and are taken over (and sent again, with the same message id where the channel has one, so
  receivers can drop the duplicate) once their lease ends. A message that waited so long in
  the queue that its lease is half spent is handed back unsent rather than risk being sent by
  two workers; so is every message not yet started when the worker stops.
* Every attempt has a deadline: its result must be in hand by `SEND_SHARE` of the lease after
  the claim (so at least 30 % of the lease once it starts). A server that answers one byte a
  second, or accepts and then says nothing, keeps each answer inside the transport's own
  timeout and could still hold a message past its lease, and then two workers would send it;
  at the deadline the attempt is cancelled and recorded as a retry that says so.
* A database that cannot be used for a while (a full disk, a PostgreSQL restart) costs no
  result: what could not be recorded is kept and recorded when the database is back, tried
  again after growing pauses (`DB_RETRY_FIRST` to `DB_RETRY_MAX` seconds), with one line in
  the log when the trouble starts and one when it ends. Claims wait meanwhile; messages already
  claimed are still sent (their results keep too). A worker stopping during the outage keeps
  trying for `CLOSE_GRACE_MAX` seconds (at most half a lease), then says how many rows stay
  `sending` until their lease ends.
* Sends are paced by a `RateLimiter` (the channel's `limits`), and the slots for a batch are
  taken *before* the batch is claimed: the worker never holds claimed rows while it waits for
  the limit, so a long wait cannot outlive the lease. A delivery that asks the whole channel
  to wait (`pause_all`, e.g. a flood limit) pauses the limiter for every task.
* Logs name messages by outbox id, status code and the recorded reason (with addresses and
  token-like strings removed): no addresses, tokens or bodies.

Database work runs in a worker thread (`asyncio.to_thread`), one statement batch at a time, so
that a slow commit never stalls the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import Delivery, Limits, Transport
from bot.channels.ratelimit import Clock, RateLimiter, Spacing, SystemClock
from storage import outbox
from storage.db import transaction, unavailable
from storage.outbox import Claimed
from storage.schema import OutboxStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

#: An attempt must have its result by this share of the lease after the claim.
SEND_SHARE = 0.8
#: Seconds before the first try after the database failed, doubling up to the second.
DB_RETRY_FIRST = 0.2
DB_RETRY_MAX = 5.0
#: The longest a stopping worker keeps trying to record results while the database is away.
CLOSE_GRACE_MAX = 30.0


class _Unavailable(Exception):
    """The database cannot be used right now (see `storage.db.unavailable`); logged already."""


class _Outage:
    """Whether the database works, as this worker last found it, and when to try it again.

    One error line when it stops working and one warning when it works again, however many
    tries fail in between (those go to debug): the log says what happened, not every second
    of it.
    """

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.since: float | None = None
        self.failures = 0
        self.next_try = 0.0

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, reason: str) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.error("outbox %s: the database cannot be used (%s); results are kept and "
                      "recorded when it is back", self.channel, reason)
        else:
            log.debug("outbox %s: the database still cannot be used (%s)", self.channel,
                      reason)
        self.failures += 1
        self.next_try = now + min(DB_RETRY_FIRST * 2 ** (self.failures - 1), DB_RETRY_MAX)

    def recovered(self) -> None:
        if self.since is not None:
            log.warning("outbox %s: the database works again after %.1f s", self.channel,
                        time.monotonic() - self.since)
        self.since = None
        self.failures = 0
        self.next_try = 0.0

    def wait(self) -> float:
        """Seconds until the next try is due (0 when the database works)."""
        return max(0.0, self.next_try - time.monotonic()) if self.active else 0.0


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
    results: list[tuple[Claimed, Delivery]] = field(default_factory=list)
    #: Claimed but never tried: to be handed back (their limiter slots are released).
    unsent: list[Claimed] = field(default_factory=list)
    closing: bool = False
    #: Set with `closing`, for waits that only closing may cut short.
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class OutboxWorker:
    """Delivers one channel's due messages from the outbox (one per process and channel).

    `channel` is the outbox rows' channel name; `transport` tries each message; `limits` and
    `retry_for` are the channel's. `batch_size` is how many rows one claim takes (default: 25
    per concurrent slot, between 50 and 200); results are recorded once `batch_size` of them
    are in, or `flush_seconds` after the first, whichever comes first.
    """

    def __init__(self, *, session_factory: sessionmaker[Session], channel: str,
                 transport: Transport, limits: Limits, retry_for: timedelta, worker: str,
                 clock: Clock | None = None, batch_size: int | None = None,
                 lease: timedelta = outbox.DEFAULT_LEASE, idle_seconds: float = 0.5,
                 flush_seconds: float = 0.1) -> None:
        self._factory = session_factory
        self.channel = channel
        self.transport = transport
        self._worker = worker
        self._clock: Clock = clock or SystemClock()
        slots = max(1, transport.concurrency)
        self._slots_count = slots
        self._batch = max(1, batch_size if batch_size is not None
                          else min(200, max(50, 25 * slots)))
        #: Claim again when no more than this many messages wait (enough to cover a claim).
        self._low_water = max(self._batch // 2, slots)
        self._lease = lease
        self._idle_seconds = idle_seconds
        self._flush_seconds = flush_seconds
        self._retry_for = retry_for
        self._running: _Run | None = None
        self._outage = _Outage(channel)
        #: Seconds after its claim by which an attempt must have its result.
        self._send_seconds = lease.total_seconds() * SEND_SHARE
        self._close_grace = min(CLOSE_GRACE_MAX, lease.total_seconds() / 2)
        self.limiter = RateLimiter(per_minute=limits.per_minute, per_day=limits.per_day,
                                   per_second=limits.per_second, clock=self._clock,
                                   sent_ago=self._recent_sends())
        self._spacing = (None if limits.per_second is None
                         else Spacing(limits.per_second, self.limiter, self._clock))

    def _recent_sends(self) -> list[float]:
        """Seconds since each send of the last 24 h, so the day's budget survives a restart."""
        now = self._clock.now()
        with transaction(self._factory) as session:
            times = outbox.sent_since(session, now - timedelta(days=1), channel=self.channel)
        return [(now - at).total_seconds() for at in times]

    # --- database -------------------------------------------------------------------------

    def _in_transaction(self, action: Callable[..., T], *args: object, **kwargs: object) -> T:
        with transaction(self._factory) as session:
            return action(session, *args, **kwargs)

    async def _db(self, action: Callable[..., T], *args: object, **kwargs: object) -> T:
        """`action` in a transaction of its own, in a thread.

        Raises:
            _Unavailable: the database cannot be used right now (logged by `_Outage`).
        """
        try:
            result = await asyncio.to_thread(
                functools.partial(self._in_transaction, action, *args, **kwargs))
        except Exception as exc:
            reason = unavailable(exc)
            if reason is None:
                raise
            self._outage.failed(reason)
            raise _Unavailable(reason) from exc
        self._outage.recovered()
        return result

    def _record_and_claim(self, session: Session, results: list[outbox.Result], *,
                          limit: int, now: datetime) -> tuple[dict[int, OutboxStatus],
                                                              list[Claimed]]:
        statuses = outbox.record(session, results, now=now, retry_for=self._retry_for)
        return statuses, outbox.claim(session, worker=self._worker, limit=limit, now=now,
                                      lease=self._lease, channel=self.channel)

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
            except Exception as exc:
                if not isinstance(exc, _Unavailable):
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
        """Record the results in hand in one transaction and hand back unsent messages.

        What the database could not take now stays in `state` for the next flush.
        """
        results, state.results = state.results, []
        unsent, state.unsent = state.unsent, []
        if not results and not unsent:
            return
        async with state.db:
            kept = await self._record(results) if results else []
            back = unsent
            if unsent and not kept:
                back = await self._give_back(unsent)
        state.results[:0] = kept
        state.unsent[:0] = back

    async def _record(self, results: list[tuple[Claimed, Delivery]]
                      ) -> list[tuple[Claimed, Delivery]]:
        """Commit the outcomes of a batch of attempts; those to try again later.

        A database that cannot be used now keeps every result for later. Any other failure is
        logged, not raised: each result is then tried in its own transaction, so that one bad
        row does not cost the others their record.
        """
        now = self._clock.now()
        batch = _results(results)
        try:
            statuses = await self._db(outbox.record, batch, now=now, retry_for=self._retry_for)
        except _Unavailable:
            return results
        except Exception:
            log.exception("outbox: could not record %d results at once; trying one by one",
                          len(batch))
            statuses = {}
            kept = []
            for pair, result in zip(results, batch, strict=True):
                try:
                    statuses.update(await self._db(outbox.record, [result], now=now,
                                                   retry_for=self._retry_for))
                except _Unavailable:
                    kept.append(pair)
                except Exception:
                    log.exception("outbox %s: could not record the result (%s)",
                                  result.outbox_id, result.outcome)
            _log_results(results, statuses)
            return kept
        _log_results(results, statuses)
        return []

    async def _give_back(self, unsent: list[Claimed]) -> list[Claimed]:
        """Return claimed messages nobody tried to the queue; those to try again later."""
        try:
            count = await self._db(outbox.release, [item.id for item in unsent],
                                   worker=self._worker, now=self._clock.now())
        except _Unavailable:
            return unsent
        except Exception:
            log.exception("outbox: could not hand back %d unsent messages (their leases will "
                          "expire)", len(unsent))
            return []
        log.info("outbox: %d claimed messages handed back unsent", count)
        return []

    def _unsent(self, state: _Run, items: list[Claimed]) -> None:
        """`items` will not be tried: their limiter slots are free again, the rows go back."""
        if items:
            self.limiter.release(len(items))
            state.unsent.extend(items)
            state.flush.set()

    # --- sending --------------------------------------------------------------------------

    async def _turn(self) -> None:
        """A message's turn among the channel's sends (see `Transport.send`)."""
        if self._spacing is not None:
            await self._spacing.take()

    async def _attempt(self, slot: int, item: Claimed, budget: float) -> Delivery:
        """One try of `item`, given up (a retry) once `budget` seconds have passed."""
        timer = asyncio.timeout(budget)
        try:
            async with timer:
                delivery = await self.transport.send(item, slot, self._turn)
        except Exception as exc:  # a transport must not raise; if it does, try again later
            if isinstance(exc, TimeoutError) and timer.expired():
                log.warning("outbox %s: no result from the %s transport within %.1f s; "
                            "given up for now, before its lease ends", item.id, self.channel,
                            budget)
                return Delivery("retry", f"deadline: no result within {budget:.1f} s")
            log.exception("outbox %s: the %s transport failed", item.id, self.channel)
            delivery = Delivery("retry", f"error: {type(exc).__name__}", ours=True)
        if delivery.pause_all and delivery.retry_after:
            self.limiter.pause(delivery.retry_after)
            log.warning("outbox: %s asks to wait %.0f s; pausing every %s send", self.channel,
                        delivery.retry_after, self.channel)
        return delivery

    async def _work(self, state: _Run, slot: int) -> None:
        """One connection's loop: send queued messages until told to stop (None)."""
        half_lease = self._lease.total_seconds() / 2
        while (entry := await state.queue.get()) is not None:
            if state.queue.qsize() <= self._low_water:
                state.room.set()
            item, claimed_at = entry
            waited = self._clock.monotonic() - claimed_at
            if waited > half_lease:
                # Its lease may end before the server answers, and another worker would send
                # it too: give it back instead.
                self._unsent(state, [item])
                continue
            outcome = await self._attempt(slot, item, self._send_seconds - waited)
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
        workers = min(count, self._slots_count)
        for _ in range(workers):
            state.queue.put_nowait(None)
        try:
            await asyncio.gather(*(self._work(state, slot) for slot in range(workers)))
        finally:
            self._close(state)
            await self._record_until_closed(state)
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
                await _first_of([stop, state.wake],
                                within=max(self._idle_seconds, self._outage.wait()))

    async def _record_until_closed(self, state: _Run) -> None:
        """Record results in batches: `batch_size` at once, or `flush_seconds` after the first.

        While the database cannot be used, results wait for its next try. Once closing, the
        rest is recorded, or given up after the close grace with one line saying what is left.
        """
        grace_ends: float | None = None
        while True:
            if not state.results and not state.unsent and not state.closing:
                state.flush.clear()
                await state.flush.wait()
            if not state.closing and len(state.results) < self._batch:
                state.flush.clear()
                await _first_of([state.flush], within=self._flush_seconds)
            if state.closing and grace_ends is None:
                grace_ends = time.monotonic() + self._close_grace
            if self._outage.active:
                wait = self._outage.wait()
                if grace_ends is None:  # closing cuts the pause short, new results do not
                    await _first_of([state.closed], within=wait)
                else:
                    await asyncio.sleep(min(wait, max(0.0, grace_ends - time.monotonic())))
            await self._flush(state)
            if not state.closing:
                continue
            if not state.results and not state.unsent:
                return
            if grace_ends is not None and time.monotonic() >= grace_ends:
                log.error("outbox %s: stopping with %d results unrecorded and %d messages not "
                          "handed back (the database cannot be used); those rows stay "
                          "`sending` until their lease ends, then are sent again",
                          self.channel, len(state.results), len(state.unsent))
                return

    @staticmethod
    def _close(state: _Run) -> None:
        state.closing = True
        state.closed.set()
        state.flush.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then finish and record the messages being sent, hand back
        those not started, and close the connections."""
        state = _Run()
        self._running = state
        workers = [asyncio.create_task(self._work(state, slot))
                   for slot in range(self._slots_count)]
        recorder = asyncio.create_task(self._record_until_closed(state))
        try:
            await self._feed(state, stop)
        finally:
            self._running = None
            waiting = []
            while not state.queue.empty():
                entry = state.queue.get_nowait()
                if entry is not None:
                    waiting.append(entry[0])
            self._unsent(state, waiting)
            for _ in workers:
                state.queue.put_nowait(None)
            try:
                await asyncio.gather(*workers)
            finally:
                self._close(state)
                try:
                    await recorder
                finally:
                    await self.close()

    async def close(self) -> None:
        """Close the transport's connections."""
        await self.transport.close()


def _results(results: list[tuple[Claimed, Delivery]]) -> list[outbox.Result]:
    return [outbox.Result(item.id, outcome.result, outcome.reason,
                          retry_after=None if outcome.retry_after is None
                          else timedelta(seconds=outcome.retry_after))
            for item, outcome in results]


def _log_results(results: list[tuple[Claimed, Delivery]],
                 statuses: dict[int, OutboxStatus]) -> None:
    """One line per recorded result, with its reason: a warning when it is our problem, else
    info (debug if sent)."""
    for item, outcome in results:
        status = statuses.get(item.id)
        if status is None:
            continue
        code = "-" if outcome.code is None else outcome.code
        reason = outbox.describe_reason(outcome.reason)
        if outcome.ours:
            log.warning("outbox %s: %s (code %s, attempt %s: %s); this is a problem with our "
                        "mail server, account or settings, not the recipient", item.id,
                        status.value, code, item.attempts, reason)
        elif status == OutboxStatus.SENT:
            log.debug("outbox %s: sent", item.id)
        else:
            log.info("outbox %s: %s (code %s, attempt %s: %s)", item.id, status.value, code,
                     item.attempts, reason)


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
