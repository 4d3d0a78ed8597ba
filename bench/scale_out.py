"""Scale-out: 2 `svarbot run` processes on PostgreSQL against 1, to a far-away mail server.

Goal: two processes send at least 1.8 times as fast as one (rate ≥ 1.8x).

When the mail server is far away, a sender spends its time waiting for replies, not working:
each message over a connection costs the round trips of an SMTP transaction. A second process
(with its own connections) should then nearly double the rate, sharing the outbox through
PostgreSQL (`FOR UPDATE SKIP LOCKED` claims) without sending anything twice. This measures
whether it does.

* The sink: aiosmtpd in its own process (`python bench/scale_out.py sink PORT LOG`), whose
  handler waits `--latency` (default 50 ms) before it answers each message's DATA, as a
  far-away server does, and appends the time it accepted each message to a file.
* The database: a temporary PostgreSQL database (`--server`, default the local one) made by
  `init_database`, with `--n` respondents and pending invitations (inserted directly) and the
  wave queued by `queue_invitations`, then held back (`next_attempt_at` a year ahead). It is
  the template: each run gets a fresh copy (`CREATE DATABASE … TEMPLATE`), and all of them
  are dropped at the end.
* A run: 1 or 2 `svarbot run` processes (`python -m bot run --config FILE`, real
  subprocesses, with a generated configuration: the run's database, the sink, `--connections`
  SMTP connections each, rate limits far above what is sent, logging at INFO to a file)
  are started; once every one has logged that it runs, the queued rows are released (made
  due now) and the processes send them; they are stopped with SIGTERM once the sink has every
  message. The run's rate is its messages per second from the first send to the last, as the
  sink saw them ((n - 1) / (last - first)).
* `--pairs` pairs of runs (1 process, A; 2 processes, B), the order swapped every pair
  (bench/interleave.py). Printed per pair: both rates and B/A; then the median B/A, its spread
  (min–max) and PASS or MISS against 1.8; and the messages the sink received twice (0
  expected: the processes share the outbox without overlap).

    .venv/bin/python bench/scale_out.py [--n 2000] [--pairs 3] [--connections 3]
                                        [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import create_engine, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from interleave import Spread, pairs, verdict
from mail_outbound import insert_pending

from bot.channels.email.channel import EmailChannel
from bot.config import Settings, SurveySettings
from bot.conversation.outgoing import SurveyContext, queue_invitations
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.identity import ensure_survey
from storage.migrate import init_database, open_database
from storage.schema import OutboxMessage

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("SVARBOT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
SURVEY = "bench"
QUESTIONNAIRE = "virksomhetsleder-2020"
GOAL = 1.8
LINK_KEY = "bench-link-key-0123456789abcdef"
#: Far above what a run sends, so that svarbot's rate limiter never waits.
UNLIMITED = 10**9
HELD = timedelta(days=365)
START_TIMEOUT = 60.0
RUN_TIMEOUT = 600.0


# --- the sink, in its own process -----------------------------------------------------------


class _Slow:
    """aiosmtpd's DATA hook: wait as a far-away server would, then accept and note the time."""

    def __init__(self, latency: float, log: TextIO) -> None:
        self.latency = latency
        self.log = log
        self.count = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        await asyncio.sleep(self.latency)
        self.count += 1
        rcpt = getattr(envelope, "rcpt_tos", ["?"])[0]
        self.log.write(f"{time.time():.6f} {rcpt}\n")
        self.log.flush()
        return "250 2.0.0 Ok: queued"


async def _serve(port: int, log: TextIO, latency: float) -> int:
    from aiosmtpd.smtp import SMTP

    handler = _Slow(latency, log)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="localhost"),
                                      "127.0.0.1", port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), timeout=1)
    return handler.count


class SlowSink:
    """`python bench/scale_out.py sink PORT LOG` in its own process."""

    def __init__(self, log: Path, latency: float) -> None:
        from smtp_servers import free_port

        self.port = free_port()
        self.log = log
        self.process = subprocess.Popen(  # noqa: S603 - our own script
            [sys.executable, __file__, "sink", str(self.port), str(log), str(latency)],
            stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"the SMTP sink did not start: {line!r}")

    def accepted(self) -> list[tuple[float, str]]:
        """(time, recipient) of every message accepted so far."""
        out = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            at, _, rcpt = line.partition(" ")
            out.append((float(at), rcpt))
        return out

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=10)


# --- the database ---------------------------------------------------------------------------


def run_sql(statement: str) -> None:
    engine = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def build_template(name: str, n: int) -> float:
    """The template database: `n` invitations queued and held back; seconds it took."""
    started = time.perf_counter()
    run_sql(f'CREATE DATABASE "{name}"')
    url = f"{SERVER}/{name}"
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    settings = Settings.model_validate({"surveys": [{"id": SURVEY,
                                                     "questionnaire": QUESTIONNAIRE}]})
    try:
        with transaction(factory) as session:
            survey = ensure_survey(session, SURVEY, QUESTIONNAIRE)
            insert_pending(session, survey.id, n)
        context = SurveyContext(settings=SurveySettings(id=SURVEY, questionnaire=QUESTIONNAIRE),
                                questionnaire=load_shipped(QUESTIONNAIRE))
        store = AnswerStore(LinkKey(LINK_KEY.encode()))
        with transaction(factory) as session:
            queued = queue_invitations(session, EmailChannel(settings), context, store,
                                       now=datetime.now(UTC))
            session.execute(update(OutboxMessage).values(
                next_attempt_at=datetime.now(UTC) + HELD))
        if queued != n:
            raise RuntimeError(f"{queued} of {n} invitations queued")
    finally:
        engine.dispose()
    return time.perf_counter() - started


# --- one run --------------------------------------------------------------------------------


def config_text(url: str, port: int, connections: int) -> str:
    return (f"database:\n  url: '{url}'\n"
            f"surveys:\n  - id: {SURVEY}\n    questionnaire: {QUESTIONNAIRE}\n"
            f"email:\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n"
            f"    connections: {connections}\n    per_minute: {UNLIMITED}\n"
            f"    per_day: {UNLIMITED}\n    timeout: 60\n"
            f"logging:\n  level: INFO\n")


@dataclass(frozen=True)
class Run:
    processes: int
    sent: int
    seconds: float
    #: Messages the sink received more than once in this run.
    twice: int

    @property
    def rate(self) -> float:
        return (self.sent - 1) / self.seconds


def _wait(what: str, done: Callable[[], bool], timeout: float,
          processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"svarbot run exited ({process.returncode}) before "
                                   f"{what}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


def one_run(template: str, count: int, n: int, sink: SlowSink, connections: int,
            folder: Path) -> Run:
    """A fresh copy of the template, `count` processes, until every message is at the sink."""
    name = f"svarbot_bench_{secrets.token_hex(6)}"
    run_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = f"{SERVER}/{name}"
    config = folder / f"{name}.yaml"
    config.write_text(config_text(url, sink.port, connections), encoding="utf-8")
    env = {**os.environ, "SVARBOT_LINK_KEY": LINK_KEY}
    before = len(sink.accepted())
    logs = [folder / f"{name}-{i}.log" for i in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for log in logs:
            with open(log, "wb") as out:
                processes.append(subprocess.Popen(  # noqa: S603 - our own module
                    [sys.executable, "-m", "bot", "run", "--config", str(config)],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
        _wait("it runs", lambda: all("svarbot running" in log.read_text(errors="replace")
                                     for log in logs), START_TIMEOUT, processes, logs)
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                connection.execute(update(OutboxMessage).values(
                    next_attempt_at=datetime.now(UTC)))
        finally:
            engine.dispose()
        _wait(f"{n} messages at the sink", lambda: len(sink.accepted()) - before >= n,
              RUN_TIMEOUT, processes, logs)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    got = sink.accepted()[before:]
    times = sorted(at for at, _ in got)
    return Run(count, len(got), times[-1] - times[0], len(got) - len({r for _, r in got}))


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="messages per run (default 2000)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="interleaved 1-process/2-process pairs (default 3)")
    parser.add_argument("--connections", type=int, default=3,
                        help="SMTP connections per process (default 3)")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds the sink waits before answering each message "
                             "(default 0.05)")
    args = parser.parse_args()
    template = f"svarbot_bench_{secrets.token_hex(6)}"
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="svarbot-scale-") as name:
        folder = Path(name)
        sink = SlowSink(folder / "sink.log", args.latency)
        try:
            took = build_template(template, args.n)
            print(f"setup: {args.n} invitations queued on PostgreSQL in {took:.1f} s; the sink "
                  f"waits\n  {args.latency * 1000:.0f} ms before answering each message; "
                  f"{args.connections} SMTP connections per process")
            print(f"{args.pairs} pairs of runs; A = 1 `svarbot run` process, B = 2")
            print(f"{'pair':>4} {'order':<6}{'A msg/s':>9}{'B msg/s':>9}{'B/A':>7}"
                  f"{'A s':>7}{'B s':>7}")
            ratios, twice = [], 0
            for pair, first, a, b in pairs(
                    args.pairs,
                    lambda: one_run(template, 1, args.n, sink, args.connections, folder),
                    lambda: one_run(template, 2, args.n, sink, args.connections, folder)):
                ratios.append(b.rate / a.rate)
                twice += a.twice + b.twice
                print(f"{pair:>4} {first:<6}{a.rate:>9.1f}{b.rate:>9.1f}{b.rate / a.rate:>7.2f}"
                      f"{a.seconds:>7.1f}{b.seconds:>7.1f}", flush=True)
        finally:
            sink.stop()
            run_sql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    spread = Spread.of(ratios)
    ideal = args.connections / args.latency
    print(f"2 processes / 1 (B/A): {spread.text()}")
    print(f"  goal ≥ {GOAL}x: {verdict(spread.median >= GOAL)}")
    print(f"  the latency alone allows {ideal:.0f} msg/s per process ({args.connections} "
          f"connections / {args.latency:g} s)")
    print(f"  messages received more than once in a run: {twice}; wall time "
          f"{time.perf_counter() - wall:.0f} s")


def sink_main(argv: list[str]) -> None:
    with open(argv[1], "a", encoding="utf-8") as log:
        count = asyncio.run(_serve(int(argv[0]), log, float(argv[2])))
    print(f"received {count}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["sink"]:
        sink_main(sys.argv[2:])
    else:
        main()
