"""A whole invitation wave (default 100,000) queued and sent: enqueue time, rate, peak memory.

Goal: a campaign of 100,000 respondents stays under 300 MB (peak RSS) in the process that
queues its wave and in the one that sends it.

1. enqueue, in a fresh process (spawned, so that its peak RSS, `ru_maxrss`, is its own): N
   respondents and pending invitations inserted directly (not timed), then the wave queued by
   `bot.conversation.outgoing.queue_invitations` in chunks of 500, each its own transaction
   (timed), as the campaign clock's wave does it. Every queued message is due at once.
2. The first `--block` messages are rendered once, the way the sender renders them, for the
   baseline (before anything is sent: sending clears the bodies).
3. send, interleaved: the real `Sender` runs in one long-lived process (spawned) against an
   aiosmtpd sink in its own process (`tests/smtp_servers.py sink PORT`), over `--connections`
   connections, rate limits far above what loopback can do, working through the whole
   100,000-row outbox as in production; between its windows it is paused (SIGSTOP), so that
   the baseline runs alone. `--pairs` pairs, the order swapped every pair
   (bench/interleave.py), of:
   * A, the baseline: bare aiosmtplib in a fresh process sends the pre-rendered messages over
     as many connections to the same sink (the whole loop is timed);
   * B, svarbot: the sender is resumed (SIGCONT) until it has recorded `--block` more
     messages as sent; timed from the resume to the last result it recorded (results of
     messages sent just before a pause, at most `flush_seconds`' worth, count in the next
     window: a few per cent of a window of 2,000).
   Printed per pair: both rates, B/A and the sender's RSS after its window (whether it grows
   with what was sent); then the median B/A and its spread, and the peak RSS of both
   processes against 300 MB (PASS or MISS).

    .venv/bin/python bench/wave_100k.py [--n 100000] [--connections 3] [--block 2000]
                                        [--pairs 3]

`--block 20000 --pairs 5` sends the whole wave of 100,000 (about ten minutes more).
The sender's claims are cheap here only if they are cheap with 100,000 rows due, which is
why nothing is held back.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import multiprocessing.synchronize
import os
import pickle
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from queue import Empty

from sqlalchemy import Engine, func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import Spread, pairs, verdict
from mail_outbound import (
    NOW,
    QUESTIONNAIRE,
    SURVEY,
    Sink,
    _bare,
    prerender,
    settings_for,
)

from bot.channels.email.channel import EmailChannel
from bot.channels.email.smtp import Sender
from bot.config import SurveySettings
from bot.conversation.outgoing import SurveyContext, queue_invitations
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.identity import ensure_survey
from storage.migrate import init_database, open_database
from storage.schema import Invitation, InvitationStatus, OutboxMessage, OutboxStatus, Respondent
from storage.tokens import new_token

GOAL_MB = 300
#: Rows inserted per transaction while setting up.
INSERT_CHUNK = 10_000
#: Invitations queued per transaction, as the campaign's wave does.
WAVE_CHUNK = 500
BLOCK_TIMEOUT = 900.0


@dataclass(frozen=True)
class Phase:
    seconds: float
    count: int
    rss_peak_mb: float


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(pid: int, field: str) -> float:
    """A memory figure of a running process from /proc (VmRSS now, VmHWM its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


# --- 1. enqueue -----------------------------------------------------------------------------


def enqueue_phase(path: str, n: int) -> Phase:
    url = f"sqlite:///{path}"
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            survey_id = ensure_survey(session, SURVEY, QUESTIONNAIRE).id
        for first in range(0, n, INSERT_CHUNK):  # not timed; chunked to keep memory flat
            with transaction(factory) as session:
                ids = session.scalars(insert(Respondent).returning(Respondent.id), [
                    {"email": f"leder{i}@kommune{i % 356}.example", "name": f"Leder Nummer{i}",
                     "role": "unit_leader", "municipality_no": f"{i % 356:04d}",
                     "municipality_name": f"Kommune {i % 356}", "county": "Vestland",
                     "size_class": "medium", "landsdel": "Vestlandet", "lang": "nb",
                     "updated_at": NOW} for i in range(first, min(n, first + INSERT_CHUNK))]
                ).all()
                session.execute(insert(Invitation), [
                    {"respondent_id": rid, "survey_id": survey_id, "token": new_token(),
                     "status": InvitationStatus.PENDING.value, "reminders_sent": 0,
                     "email_address": f"leder{rid - 1}@kommune{(rid - 1) % 356}.example",
                     "answered_from_other_address": False, "created_at": NOW,
                     "updated_at": NOW} for rid in ids])
        context = SurveyContext(settings=SurveySettings(id=SURVEY, questionnaire=QUESTIONNAIRE),
                                questionnaire=load_shipped(QUESTIONNAIRE))
        store = AnswerStore(LinkKey(b"bench-link-key-0123456789"))
        started = time.perf_counter()
        queued = 0
        while True:  # the wave in chunks, each its own transaction, as the campaign clock does
            with transaction(factory) as session:
                done = queue_invitations(session, EmailChannel(settings_for(1, 1)), context,
                                         store, now=NOW, limit=WAVE_CHUNK)
            queued += done
            if done == 0:
                break
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return Phase(seconds, queued, _rss_mb())


def render_phase(path: str, limit: int, out: str) -> Phase:
    """The first `limit` queued messages rendered as the sender renders them, to `out`."""
    started = time.perf_counter()
    messages = prerender(Path(path), settings_for(1, 1), limit=limit)
    Path(out).write_bytes(pickle.dumps(messages))
    return Phase(time.perf_counter() - started, len(messages), _rss_mb())


# --- 3. the pairs ---------------------------------------------------------------------------


def bare_phase(rendered: str, port: int, connections: int) -> Phase:
    """The pre-rendered messages sent by a bare aiosmtplib loop."""
    messages: list[tuple[str, bytes]] = pickle.loads(Path(rendered).read_bytes())  # noqa: S301 - our own file
    settings = settings_for(port, connections)
    mail_from = parseaddr(settings.email.from_address)[1]
    started = time.perf_counter()
    sent = asyncio.run(_bare(port, connections, messages, mail_from,
                             mail_from.rpartition("@")[2]))
    return Phase(time.perf_counter() - started, sent, _rss_mb())


def _run_child(kind: str, args: tuple[object, ...],
               results: multiprocessing.Queue[Phase]) -> None:
    if kind == "enqueue":
        results.put(enqueue_phase(*args))  # type: ignore[arg-type]
    elif kind == "render":
        results.put(render_phase(*args))  # type: ignore[arg-type]
    else:
        results.put(bare_phase(*args))  # type: ignore[arg-type]


def in_child(kind: str, *args: object) -> Phase:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[Phase] = context.Queue()
    process = context.Process(target=_run_child, args=(kind, args, results))
    process.start()
    try:
        measured = results.get(timeout=3600)
    finally:
        process.join(timeout=60)
    if process.exitcode != 0:
        raise RuntimeError(f"the {kind} phase failed (exit code {process.exitcode})")
    return measured


def _sender_child(path: str, port: int, connections: int,
                  start: multiprocessing.synchronize.Event,
                  stop: multiprocessing.synchronize.Event,
                  results: multiprocessing.Queue[float]) -> None:
    engine = open_database(f"sqlite:///{path}")

    async def main() -> None:
        stopping = asyncio.Event()
        sender = Sender(session_factory=session_factory(engine),
                        settings=settings_for(port, connections), worker="bench")
        await asyncio.to_thread(start.wait)
        task = asyncio.create_task(sender.run(stopping))
        await asyncio.to_thread(stop.wait)
        stopping.set()
        await task

    try:
        asyncio.run(main())
    finally:
        engine.dispose()
    results.put(_rss_mb())


class SenderProcess:
    """The real sender in a spawned process for the whole run, paused between its windows;
    `stop` returns its peak RSS."""

    def __init__(self, path: Path, port: int, connections: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._start = context.Event()
        self._stop = context.Event()
        self._results: multiprocessing.Queue[float] = context.Queue()
        self.process = context.Process(target=_sender_child, args=(
            str(path), port, connections, self._start, self._stop, self._results))
        self.process.start()
        self._paused = False

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def rss_mb(self) -> float:
        return _status_mb(self.pid, "VmRSS")

    def resume(self) -> None:
        if self._paused:
            os.kill(self.pid, signal.SIGCONT)
            self._paused = False
        self._start.set()

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self._paused = True

    def stop(self) -> float:
        if self._paused:
            self.resume()
        self._start.set()
        self._stop.set()
        try:
            peak = self._results.get(timeout=120)
        except Empty:
            self.process.kill()
            raise RuntimeError("the sender did not stop") from None
        self.process.join(timeout=30)
        if self.process.exitcode != 0:
            raise RuntimeError(f"the sender failed (exit code {self.process.exitcode})")
        return peak


def _sent(engine: Engine) -> tuple[int, dt.datetime | None]:
    with engine.connect() as connection:
        sent, last = connection.execute(
            select(func.count(), func.max(OutboxMessage.sent_at))
            .where(OutboxMessage.status == OutboxStatus.SENT)).one()
    return int(sent), last


def send_window(engine: Engine, count: int, sender: SenderProcess) -> Phase:
    """Resume the sender until it has recorded `count` more messages sent, then pause it."""
    before, _ = _sent(engine)
    resumed = dt.datetime.now(dt.UTC)
    sender.resume()
    deadline = time.perf_counter() + BLOCK_TIMEOUT
    try:
        while True:
            sent, last = _sent(engine)
            if sent - before >= count and last is not None:
                break
            if sender.process.exitcode is not None:
                raise RuntimeError(f"the sender stopped after {sent - before} of {count}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{sent - before} of {count} sent within "
                                   f"{BLOCK_TIMEOUT:.0f} s")
            time.sleep(0.1)
    finally:
        sender.pause()
    last_at: dt.datetime = last if last.tzinfo else last.replace(tzinfo=dt.UTC)
    return Phase((last_at - resumed).total_seconds(), sent - before, sender.rss_mb())


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="invitations (default 100000)")
    parser.add_argument("--connections", type=int, default=3, help="SMTP connections")
    parser.add_argument("--block", type=int, default=2000,
                        help="messages per side of a pair (default 2000)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="interleaved bare/svarbot pairs (default 3)")
    args = parser.parse_args()
    if args.block * args.pairs > args.n:
        parser.error(f"--block {args.block} × --pairs {args.pairs} is more than --n {args.n}")
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="svarbot-wave-") as folder:
        path = Path(folder) / "wave.db"
        print(f"enqueue: {args.n} invitations ...", flush=True)
        enqueued = in_child("enqueue", str(path), args.n)
        print(f"enqueue: {enqueued.count} queued in {enqueued.seconds:.1f} s "
              f"({enqueued.count / enqueued.seconds:.0f}/s), peak RSS "
              f"{enqueued.rss_peak_mb:.0f} MB", flush=True)
        rendered = Path(folder) / "rendered.pickle"
        in_child("render", str(path), args.block, str(rendered))
        engine = open_database(f"sqlite:///{path}")
        sink = Sink()
        try:
            sender = SenderProcess(path, sink.port, args.connections)
            print(f"{args.pairs} pairs of {args.block} messages over {args.connections} "
                  f"connections; A = bare aiosmtplib,\nB = svarbot's sender (one process "
                  f"for the whole run, all {enqueued.count} due)")
            print(f"{'pair':>4} {'order':<6}{'A msg/s':>9}{'B msg/s':>9}{'B/A':>7}"
                  f"{'B sent':>8}{'B rss after':>13}")
            ratios = []
            try:
                for pair, first, a, b in pairs(
                        args.pairs,
                        lambda: in_child("bare", str(rendered), sink.port, args.connections),
                        lambda: send_window(engine, args.block, sender)):
                    rate_a, rate_b = a.count / a.seconds, b.count / b.seconds
                    ratios.append(rate_b / rate_a)
                    print(f"{pair:>4} {first:<6}{rate_a:>9.0f}{rate_b:>9.0f}"
                          f"{rate_b / rate_a:>7.2f}{b.count:>8}{b.rss_peak_mb:>10.0f} MB",
                          flush=True)
            finally:
                sender_peak = sender.stop()
        finally:
            received = sink.stop()
            engine.dispose()
    peak = max(enqueued.rss_peak_mb, sender_peak)
    print(f"svarbot/bare rate (B/A): {Spread.of(ratios).text()}")
    print(f"peak RSS: enqueue {enqueued.rss_peak_mb:.0f} MB, sender {sender_peak:.0f} MB "
          f"({args.n} queued);\n  goal < {GOAL_MB} MB: {verdict(peak < GOAL_MB)}")
    print(f"the sink accepted {received} ({args.pairs * args.block} from A, the rest "
          f"from B); wall time "
          f"{time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
