"""Hostile and mutated mail through the reading path: every message read or quarantined, fast.

Goal: N generated messages (the corpora mutated by `tests/mail_fuzz.py`, and messages made
from scratch) through `read_mail`, the function the dispatcher and `svarbot mail inspect`
use: none raises anything but a quarantine reason, none takes longer than the cap (2 s per
message), and the run goes to the end. Prints the count per outcome, the total time, messages
per second, and the slowest messages with their recipes (`mail_fuzz.build(Recipe(...))`
gives their bytes back). Exit status 1 when a message raised or went over the cap.

Setup (not timed): generating each message from its seed. The read is timed per message; a
watchdog stops a message at ten times the cap, so a hang is reported as one, not waited for.
No database: the dispatcher's part is covered by tests/test_fuzz_mail.py.

    .venv/bin/python bench/fuzz_mail.py [--n 100000] [--start 0] [--cap 2.0]

A hundred thousand messages (8.6 GB of mail) take about sixteen minutes on one core, some
105 messages a second; `--n 20000` about three and a half minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import statistics
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mail_fuzz import Recipe, message

from bot.channels.email.inbound import BadMail
from bot.channels.email.reading import read_mail
from bot.config import EmailSettings

TODAY = dt.date(2019, 10, 15)
#: How many of the slowest messages are listed.
SLOWEST = 5


class Hang(BaseException):
    """The watchdog's signal: a BaseException, so that no `except Exception` in the reading
    path takes it for a parse error."""


def _watchdog(signum: int, frame: FrameType | None) -> None:
    raise Hang


def read_one(raw: bytes, settings: EmailSettings, watchdog: float) -> tuple[str, float]:
    """The outcome of reading `raw` ("read:<kind>", "quarantined:<reason>", "crash:<type>",
    "hang") and the seconds it took."""
    signal.setitimer(signal.ITIMER_REAL, watchdog)
    started = time.perf_counter()
    try:
        reading = read_mail(raw, settings, today=TODAY)
        result = f"read:{reading.classification.kind}"
    except BadMail as exc:
        result = f"quarantined:{exc.reason}"
    except Hang:
        result = "hang"
    except Exception as exc:
        traceback.print_exc()
        result = f"crash:{type(exc).__name__}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="messages (default 100000)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--cap", type=float, default=2.0,
                        help="seconds one message may take (default 2)")
    args = parser.parse_args()
    settings = EmailSettings()
    signal.signal(signal.SIGALRM, _watchdog)
    outcomes: Counter[str] = Counter()
    times: list[float] = []
    slowest: list[tuple[float, Recipe, int, str]] = []
    failures: list[str] = []
    generating = 0.0
    total_bytes = 0
    began = time.perf_counter()
    for seed in range(args.start, args.start + args.n):
        made = time.perf_counter()
        recipe, raw = message(seed)
        generating += time.perf_counter() - made
        total_bytes += len(raw)
        result, seconds = read_one(raw, settings, watchdog=args.cap * 10)
        outcomes[result] += 1
        times.append(seconds)
        if result.startswith(("crash:", "hang")) or seconds > args.cap:
            failures.append(f"{seconds:8.3f} s  {result:<28} {recipe}")
        slowest.append((seconds, recipe, len(raw), result))
        if len(slowest) > 4 * SLOWEST:
            slowest = sorted(slowest, key=lambda item: -item[0])[:SLOWEST]
        done = seed - args.start + 1
        if done % 5000 == 0:
            print(f"  … {done} messages, {time.perf_counter() - began:.0f} s", flush=True)
    elapsed = time.perf_counter() - began
    reading = sum(times)
    print(f"\n{args.n} messages (seeds {args.start}–{args.start + args.n - 1}, "
          f"{total_bytes / 1e6:.0f} MB) through read_mail\n")
    print(f"{'outcome':<34}{'count':>8}{'share':>8}")
    for result, count in sorted(outcomes.items(), key=lambda item: (-item[1], item[0])):
        print(f"{result:<34}{count:>8}{count / args.n:>8.1%}")
    ordered = sorted(times)
    print(f"\nreading: {reading:.1f} s, {args.n / reading:.0f} msgs/s; per message median "
          f"{statistics.median(ordered) * 1e3:.1f} ms, p99 "
          f"{ordered[int(0.99 * (len(ordered) - 1))] * 1e3:.0f} ms, max "
          f"{ordered[-1] * 1e3:.0f} ms")
    print(f"wall clock: {elapsed:.1f} s in all ({generating:.1f} s generating the messages), "
          f"{args.n / elapsed:.0f} msgs/s")
    print(f"\nslowest {SLOWEST}:")
    for seconds, recipe, size, result in sorted(slowest, key=lambda item: -item[0])[:SLOWEST]:
        print(f"{seconds:8.3f} s  {size:>9,} bytes  {result:<26} {recipe}")
    print(f"\nover the {args.cap:g} s cap, raised or hung: {len(failures)}")
    for line in failures[:50]:
        print(line)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
