"""Interleaved pairs for the benchmarks: a baseline (A) and svarbot (B), ABAB….

The machines these benchmarks run on are shared and noisy: a run measured on its own, or a
baseline measured once at the start, can be off by more than the gap between the two. So
every benchmark measures A and B in pairs, back to back, swaps the order every pair (AB, BA, AB…,
so that whatever drifts during a pair hits each side first as often as second), takes the
ratio B/A within each pair, and reports the median ratio over the pairs with its spread
(min–max): one figure that can be trusted, and how far to trust it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")

def order(pair: int) -> tuple[str, str]:
    """Which side runs first in pair `pair` (0-based): A first in even pairs, B in odd."""
    return ("A", "B") if pair % 2 == 0 else ("B", "A")


def pairs(count: int, run_a: Callable[[], A], run_b: Callable[[], B]
          ) -> Iterator[tuple[int, str, A, B]]:
    """Run `count` pairs; yield (pair number from 1, "AB" or "BA", A's result, B's result)
    after each pair, so the caller can print it while the run goes on."""
    for pair in range(count):
        if order(pair)[0] == "A":
            a = run_a()
            b = run_b()
        else:
            b = run_b()
            a = run_a()
        yield pair + 1, "".join(order(pair)), a, b


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of per-pair values and their range."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, digits: int = 2, unit: str = "") -> str:
        """`0.83 (spread 0.79–0.88, 5 pairs)`."""
        return (f"{self.median:.{digits}f}{unit} (spread {self.low:.{digits}f}–"
                f"{self.high:.{digits}f}{unit}, {self.count} pair{'s' if self.count != 1 else ''})")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"

