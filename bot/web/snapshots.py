"""Figures that cost a second to count, counted at most once per refresh for everyone.

Thirty operators with the dashboard open, each page refreshing every `web.refresh_seconds`,
would otherwise run the same GROUP BYs thirty times per interval against the database the
senders write to. A snapshot is shared: the first request after it has gone stale counts
again while the others are served the previous figures at once, so no request waits behind
another's count (only the very first one, with nothing to show yet, waits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    at: float


class Snapshots(Generic[V]):
    """Values by key, each recomputed when older than `max_age` seconds (thread-safe)."""

    def __init__(self, max_age: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._guard = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The value for `key`: the stored one while fresh, or while another thread is
        computing its successor; otherwise computed now by this thread."""
        with self._guard:
            entry = self._entries.get(key)
            if entry is not None and self._clock() - entry.at < self.max_age:
                return entry.value
            lock = self._computing.setdefault(key, threading.Lock())
        if entry is not None and not lock.acquire(blocking=False):
            return entry.value  # stale, but someone is counting: no waiting behind them
        if entry is None:
            lock.acquire()
        try:
            with self._guard:
                newer = self._entries.get(key)
            if newer is not None and newer is not entry and \
                    self._clock() - newer.at < self.max_age:
                return newer.value  # counted by the thread this one waited for
            value = compute()
            with self._guard:
                self._entries[key] = _Entry(value, self._clock())
            return value
        finally:
            lock.release()

    def forget(self) -> None:
        """Drop every value (the next request counts afresh)."""
        with self._guard:
            self._entries.clear()
