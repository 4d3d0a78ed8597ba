"""Time one `advance` step on the unit-leader questionnaire (goal: p99 under 200 µs).

Simulated email and chat conversations (`flows.simulate.converse`, `--conversations` of
them, half of each) are replayed once, untimed, to collect every step: the session as
stored before it (JSON) and the inbound message. Then `--pairs` pairs of blocks, the order
swapped every pair (bench/interleave.py):

* A, the baseline: every step's session through a JSON round trip (`to_json`, `from_json`),
  work every step needs anyway (the dispatcher loads the session and stores the new one);
* B, svarbot: `advance` on every step, each on its session freshly loaded from its JSON (as
  the dispatcher has it; the loading is not timed).

Each step is timed by the thread's CPU clock (`time.thread_time`), which leaves out the time
the operating system gave the core to another process: on a shared machine that time is most
of the wall-clock p99 (a lost time slice is milliseconds), and it is not the engine's. The
wall-clock p99 is printed beside it. Printed per pair: p50 and p99 of both sides and the
ratio of the p50s; then advance's p50 and p99 as the median over the pairs with their
spread, the p99 of every step of every pair pooled, the ratio B/A, and PASS or MISS against
p99 < 200 µs (CPU time, the median of the pairs' p99).

    .venv/bin/python bench/engine_step.py [--conversations 200] [--pairs 5]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import Spread, pairs, verdict

from flows.engine import advance
from flows.events import Inbound, Reply, Start
from flows.loader import load_shipped
from flows.model import Questionnaire
from flows.session import from_json, new_session, to_json
from flows.simulate import Persona, converse

GOAL_US = 200.0
US = 1e6


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile by the nearest rank below."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass(frozen=True, slots=True)
class StepInput:
    """One step to replay: the session as stored before it, and what came in."""

    state: str
    inbound: Inbound


def collect(q: Questionnaire, conversations: int, seed: int,
            now: datetime) -> list[StepInput]:
    """Every step of `conversations` simulated conversations, in order."""
    rng = random.Random(seed)
    steps: list[StepInput] = []
    for n in range(conversations):
        channel: Literal["email", "chat"] = "chat" if n % 2 else "email"
        transcript = converse(q, rng, channel=channel, now=now, persona=Persona(typo_rate=0.1))
        session = new_session(q.id, q.revision, channel=channel)
        inputs: list[Inbound] = [Start(), *(Reply(text) for text in transcript.inputs)]
        for inbound in inputs:
            state = to_json(session)
            steps.append(StepInput(state, inbound))
            session = advance(q, from_json(state), inbound, now=now).session
    return steps


@dataclass(frozen=True, slots=True)
class Timed:
    """Seconds per step: of this thread's CPU, and of the wall clock."""

    cpu: list[float]
    wall: list[float]


def time_baseline(steps: Sequence[StepInput]) -> Timed:
    """Seconds per step for the session's JSON round trip."""
    cpu, wall = time.thread_time, time.perf_counter
    sessions = [from_json(step.state) for step in steps]
    out = Timed([], [])
    for session in sessions:
        started, began = cpu(), wall()
        from_json(to_json(session))
        out.wall.append(wall() - began)
        out.cpu.append(cpu() - started)
    return out


def time_advance(q: Questionnaire, steps: Sequence[StepInput], now: datetime) -> Timed:
    """Seconds per step for `advance`."""
    cpu, wall = time.thread_time, time.perf_counter
    out = Timed([], [])
    for step in steps:
        session = from_json(step.state)
        started, began = cpu(), wall()
        advance(q, session, step.inbound, now=now)
        out.wall.append(wall() - began)
        out.cpu.append(cpu() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=5,
                        help="interleaved baseline/advance pairs (default 5)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    q = load_shipped("virksomhetsleder-2020")
    now = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)
    steps = collect(q, args.conversations, args.seed, now)
    time_advance(q, steps[:200], now)  # warm-up, untimed
    print(f"{len(steps)} steps in {args.conversations} conversations; {args.pairs} pairs of "
          f"blocks, A = session\nJSON round trip, B = advance; µs of the thread's CPU time, "
          f"and B's wall-clock p99")
    print(f"{'pair':>4} {'order':<6}{'A p50':>8}{'A p99':>8}{'B p50':>9}{'B p99':>9}"
          f"{'B/A p50':>9}{'B wall p99':>12}")
    b50s, b99s, walls, ratios, pooled = [], [], [], [], []
    for pair, first, a, b in pairs(args.pairs, lambda: time_baseline(steps),
                                   lambda: time_advance(q, steps, now)):
        a50, a99 = percentile(a.cpu, 0.50) * US, percentile(a.cpu, 0.99) * US
        b50, b99 = percentile(b.cpu, 0.50) * US, percentile(b.cpu, 0.99) * US
        wall99 = percentile(b.wall, 0.99) * US
        b50s.append(b50)
        b99s.append(b99)
        walls.append(wall99)
        ratios.append(b50 / a50)
        pooled += b.cpu
        print(f"{pair:>4} {first:<6}{a50:>8.1f}{a99:>8.1f}{b50:>9.1f}{b99:>9.1f}"
              f"{b50 / a50:>8.1f}x{wall99:>12.1f}", flush=True)
    p99 = Spread.of(b99s)
    print(f"advance p50 {Spread.of(b50s).text(1, ' µs')}")
    print(f"advance p99 {p99.text(1, ' µs')}")
    print(f"  pooled over all pairs: p99 {percentile(pooled, 0.99) * US:.1f} µs, max "
          f"{max(pooled) * US:.0f} µs (CPU)")
    print(f"  wall clock p99 {Spread.of(walls).text(1, ' µs')}")
    print(f"B/A at p50 {Spread.of(ratios).text(1, 'x')}")
    print(f"goal p99 < {GOAL_US:.0f} µs (CPU, median of the pairs): "
          f"{verdict(p99.median < GOAL_US)}")

if __name__ == "__main__":
    main()
