"""Time one `advance` step on the unit-leader questionnaire (goal: p99 under 200 µs).

Replays simulated email and chat conversations through the engine and times every step.
Machines here are noisy, so the same run also times a baseline, a JSON round trip of the
session (work every step needs anyway), and prints the engine's cost as a ratio of it.

    .venv/bin/python bench/engine_step.py [--conversations 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime

from flows.engine import advance
from flows.events import Reply, Start
from flows.loader import load_shipped
from flows.session import from_json, new_session, to_json
from flows.simulate import Persona, converse


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    q = load_shipped("virksomhetsleder-2020")
    now = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)
    rng = random.Random(args.seed)
    scripts = []
    for n in range(args.conversations):
        channel = "chat" if n % 2 else "email"
        transcript = converse(q, rng, channel=channel, now=now, persona=Persona(typo_rate=0.1))
        scripts.append((channel, transcript.inputs))

    engine: list[float] = []
    baseline: list[float] = []
    clock = time.perf_counter
    for channel, inputs in scripts:
        session = new_session(q.id, q.revision, channel=channel)  # type: ignore[arg-type]
        started = clock()
        step = advance(q, session, Start(), now=now)
        engine.append(clock() - started)
        for text in inputs:
            started = clock()
            stored = from_json(to_json(step.session))
            baseline.append(clock() - started)
            started = clock()
            step = advance(q, stored, Reply(text), now=now)
            engine.append(clock() - started)

    us = 1e6
    p50, p99 = _percentile(engine, 0.50) * us, _percentile(engine, 0.99) * us
    b50, b99 = _percentile(baseline, 0.50) * us, _percentile(baseline, 0.99) * us
    print(f"steps timed:            {len(engine)} in {len(scripts)} conversations")
    print(f"advance      p50 {p50:8.1f} µs   p99 {p99:8.1f} µs   mean "
          f"{statistics.fmean(engine) * us:8.1f} µs   max {max(engine) * us:8.1f} µs")
    print(f"baseline     p50 {b50:8.1f} µs   p99 {b99:8.1f} µs   (session JSON round trip)")
    print(f"ratio        p50 {p50 / b50:8.1f}x     p99 {p99 / b99:8.1f}x")
    print(f"goal p99 < 200 µs: {'met' if p99 < 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
