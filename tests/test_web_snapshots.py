"""The dashboard's shared figures (`bot.web.snapshots`): counted once per refresh, never
waited for once there is something to show."""

from __future__ import annotations

import threading

import pytest

from bot.web.snapshots import Snapshots


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_value_is_not_counted_again_and_a_stale_one_is() -> None:
    clock = Clock()
    figures: Snapshots[int] = Snapshots(15, clock=clock)
    calls: list[str] = []

    def count() -> int:
        calls.append("counted")
        return len(calls)

    assert figures.get("s", count) == 1
    clock.now = 14.9
    assert figures.get("s", count) == 1
    assert figures.get("other", count) == 2  # each key has its own figures
    clock.now = 15.0
    assert figures.get("s", count) == 3
    figures.forget()
    assert figures.get("s", count) == 4


def test_while_one_request_counts_the_others_get_the_previous_figures_at_once() -> None:
    clock = Clock()
    figures: Snapshots[str] = Snapshots(15, clock=clock)
    assert figures.get("s", lambda: "old") == "old"
    clock.now = 20.0
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        assert release.wait(10)
        return "new"

    result: list[str] = []
    counting = threading.Thread(target=lambda: result.append(figures.get("s", slow)))
    counting.start()
    assert started.wait(10)
    # a second request while the first counts: the old figures, without calling its own count
    assert figures.get("s", lambda: "never counted") == "old"
    release.set()
    counting.join(10)
    assert result == ["new"]
    assert figures.get("s", lambda: "never counted") == "new"


def test_the_first_requests_wait_for_one_count_rather_than_counting_twice() -> None:
    figures: Snapshots[int] = Snapshots(15)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        started.set()
        assert release.wait(10)
        return 42

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(figures.get("s", slow)))
               for _ in range(3)]
    threads[0].start()
    assert started.wait(10)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert results == [42, 42, 42]
    assert calls == [1]


def test_a_failed_count_leaves_the_next_request_free_to_count() -> None:
    figures: Snapshots[int] = Snapshots(15)

    def broken() -> int:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        figures.get("s", broken)
    assert figures.get("s", lambda: 7) == 7
