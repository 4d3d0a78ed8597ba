"""Keeping one sending account (a mailbox, a bot) under its provider's limits.

Providers count per account: Exchange Online allows 30 messages a minute and 10 000 recipients
a rolling day per mailbox, and answers with 4xx/5xx (or suspends the account) when either is
exceeded. So the sender asks this limiter before every attempt, and waits rather than fails.

Both limits are sliding windows of send times (not token buckets): that is exactly how the
providers count ("in any 60 seconds", "in any 24 hours"). The day's window survives a restart
because the sender seeds it with the sent times it reads from the outbox at start-up. The
limiter is per process: two processes sending from one account must split the limits between
them in configuration.

Time comes from a `Clock` so that tests can run a day of limits in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

SECOND = 1.0
MINUTE = 60.0
#: Paces run this much under the limit they keep: the other side counts arrivals, we count
#: departures, and the network moves messages closer together on the way.
PACE_MARGIN = 0.99
DAY = 86_400.0


class Clock(Protocol):
    """Where the sender and the limiter get the time from, and how they wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals)."""
        ...

    def now(self) -> datetime:
        """The current time, aware, UTC (for what is stored)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class RateLimiter:
    """At most `per_minute` sends in any 60 s and `per_day` in any 24 h, and with
    `per_second` (a chat bot's broadcast limit) at most that many in any one second.

    `sent_ago` seeds the windows with earlier sends, as seconds before now (from the outbox's
    `sent_at` values of the last 24 hours).
    """

    def __init__(self, *, per_minute: int, per_day: int, clock: Clock | None = None,
                 sent_ago: Iterable[float] = (), per_second: int | None = None) -> None:
        if per_minute < 1 or per_day < 1 or (per_second is not None and per_second < 1):
            raise ValueError("rate limits must be at least 1")
        self.per_minute = per_minute
        self.per_day = per_day
        self.per_second = per_second
        self._clock: Clock = clock or SystemClock()
        now = self._clock.monotonic()
        earlier = sorted(now - max(0.0, ago) for ago in sent_ago if ago < DAY)
        self._day: deque[float] = deque(earlier)
        self._minute: deque[float] = deque(t for t in earlier if t > now - MINUTE)
        self._second: deque[float] = deque(t for t in earlier if t > now - SECOND)
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def _expire(self, now: float) -> None:
        while self._second and self._second[0] <= now - SECOND:
            self._second.popleft()
        while self._minute and self._minute[0] <= now - MINUTE:
            self._minute.popleft()
        while self._day and self._day[0] <= now - DAY:
            self._day.popleft()

    def delay(self) -> float:
        """Seconds until one more send is allowed (0.0: now)."""
        now = self._clock.monotonic()
        self._expire(now)
        waits = [0.0, self._paused_until - now]
        if self.per_second is not None and len(self._second) >= self.per_second:
            waits.append(self._second[len(self._second) - self.per_second] + SECOND - now)
        if len(self._minute) >= self.per_minute:
            waits.append(self._minute[len(self._minute) - self.per_minute] + MINUTE - now)
        if len(self._day) >= self.per_day:
            waits.append(self._day[len(self._day) - self.per_day] + DAY - now)
        return max(waits)

    def paused_for(self) -> float:
        """Seconds the pause asked for still has to run (0.0: not paused)."""
        return max(0.0, self._paused_until - self._clock.monotonic())

    def pause(self, seconds: float) -> None:
        """Allow no send for `seconds` from now (the other side asked everyone to wait)."""
        self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)

    def _take(self) -> None:
        now = self._clock.monotonic()
        self._second.append(now)
        self._minute.append(now)
        self._day.append(now)

    def try_acquire(self, count: int = 1) -> int:
        """Take up to `count` sends that are allowed right now, without waiting; how many."""
        taken = 0
        while taken < count and self.delay() <= 0:
            self._take()
            taken += 1
        return taken

    def release(self, count: int) -> None:
        """Give back `count` sends that were taken but not made (nothing was due to send)."""
        for _ in range(min(count, len(self._day))):
            self._day.pop()
            if self._minute:
                self._minute.pop()
            if self._second:
                self._second.pop()

    async def ready(self) -> None:
        """Wait until a send would be allowed, without taking it (see `try_acquire`)."""
        while (wait := self.delay()) > 0:
            await self._clock.sleep(wait)

    async def acquire(self) -> None:
        """Wait until one more send is allowed, and take it. Waiters are served in order."""
        async with self._lock:
            while (wait := self.delay()) > 0:
                await self._clock.sleep(wait)
            self._take()

    @property
    def used_today(self) -> int:
        """Sends in the last 24 hours."""
        self._expire(self._clock.monotonic())
        return len(self._day)


class Spacing:
    """Sends spaced evenly at `per_second` (under `PACE_MARGIN`) across every task, at the
    moment of sending: the limiter's windows decide how many may be claimed, this decides
    when each one leaves, so a claimed batch is not sent in one burst. A pause of the limiter
    holds the sends already claimed as well."""

    def __init__(self, per_second: float, limiter: RateLimiter, clock: Clock) -> None:
        self._interval = 1.0 / (per_second * PACE_MARGIN)
        self._limiter = limiter
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Wait for this send's turn."""
        async with self._lock:
            while True:
                now = self._clock.monotonic()
                wait = max(self._next - now, self._limiter.paused_for())
                if wait <= 0:
                    break
                await self._clock.sleep(wait)
            self._next = max(now, self._next) + self._interval
