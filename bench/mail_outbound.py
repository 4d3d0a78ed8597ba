"""Time the outbound mail path against a bare SMTP loop (goal: ≥ 0.8 of the bare rate).

N invitations go the whole way: outbox rows (queued by
`bot.conversation.outgoing.queue_invitations`, as a wave would be) → claim → render
(`bot.channels.email.compose`) → aiosmtplib over C pooled connections → an aiosmtpd sink in its
own process (`tests/smtp_servers.py sink PORT`), with every result recorded in the outbox. The
baseline, in the same run and against the same sink, is bare aiosmtplib sending the same
messages, rendered beforehand, over the same number of connections: what the network and the
SMTP libraries cost without svarbot. For each connection count, `--pairs` pairs of phases
run interleaved, the order swapped every pair (bench/interleave.py); printed per pair: both
rates, their ratio, CPU per message and the sending process's peak RSS; then per connection
count the median ratio over the pairs, its spread (min–max), and PASS or MISS against 0.8.

The setup is not timed: a temporary SQLite database with N respondents and invitations
(inserted directly), the wave queued by `queue_invitations`, and the pre-rendered bytes for the
baseline. Each timed phase runs in a fresh
process (spawned, not forked) on a fresh copy of the database, so that its peak RSS
(`ru_maxrss`) is its own; `--tracemalloc` also prints the Python heap's peak, at the price of
slower runs (rates are then not comparable).

    .venv/bin/python bench/mail_outbound.py [--n 2000] [--connections 1,3,8,16] [--pairs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path

import aiosmtplib
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import Spread, pairs, verdict

from bot.channels.email.channel import EmailChannel
from bot.channels.email.smtp import Sender, compose_render, wire_bytes
from bot.channels.ratelimit import SystemClock
from bot.config import Settings, SurveySettings
from bot.conversation.outgoing import SurveyContext, queue_invitations
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.identity import ensure_survey
from storage.migrate import init_database, open_database
from storage.outbox import Claimed
from storage.schema import Invitation, InvitationStatus, OutboxMessage, Respondent
from storage.tokens import new_token

ROOT = Path(__file__).resolve().parent.parent
SURVEY = "bench"
QUESTIONNAIRE = "virksomhetsleder-2020"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GOAL = 0.8
#: Limits far above what loopback can do, so the rate limiter never waits.
UNLIMITED = 10**9


def settings_for(port: int, connections: int) -> Settings:
    return Settings.model_validate({
        "surveys": [{"id": SURVEY, "questionnaire": QUESTIONNAIRE}],
        "email": {"smtp": {"host": "127.0.0.1", "port": port, "connections": connections,
                           "per_minute": UNLIMITED, "per_day": UNLIMITED, "timeout": 30}}})


# --- setup (not timed) ----------------------------------------------------------------------


def insert_pending(session: Session, survey_id: str, n: int) -> None:
    """`n` respondents with a pending invitation each, inserted in bulk."""
    session.execute(insert(Respondent), [
        {"email": f"leder{i}@kommune{i % 356}.example", "name": f"Leder Nummer{i}",
         "role": "unit_leader", "municipality_no": f"{i % 356:04d}",
         "municipality_name": f"Kommune {i % 356}", "county": "Vestland",
         "size_class": "medium", "landsdel": "Vestlandet", "lang": "nb"}
        for i in range(n)])
    session.execute(insert(Invitation), [
        {"respondent_id": rid, "survey_id": survey_id, "token": new_token(),
         "status": InvitationStatus.PENDING.value, "reminders_sent": 0,
         "email_address": email, "answered_from_other_address": False}
        for rid, email in session.execute(select(Respondent.id, Respondent.email))])


def build_database(path: Path, n: int) -> dict[str, float]:
    """N respondents with pending invitations, and the wave queued; seconds per step."""
    url = f"sqlite:///{path}"
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    took: dict[str, float] = {}
    try:
        started = time.perf_counter()
        with transaction(factory) as session:
            survey = ensure_survey(session, SURVEY, QUESTIONNAIRE)
            # Straight inserts: storage.identity's upsert_respondent/invite look every row up
            # first (2.5 ms each here, half a minute for 10,000), which an import needs and
            # this setup does not. The wave itself goes through queue_invitations.
            insert_pending(session, survey.id, n)
        took["respondents+invitations"] = time.perf_counter() - started
        started = time.perf_counter()
        settings = settings_for(1, 1)
        context = SurveyContext(settings=SurveySettings(id=SURVEY, questionnaire=QUESTIONNAIRE),
                                questionnaire=load_shipped(QUESTIONNAIRE))
        store = AnswerStore(LinkKey(b"bench-link-key-0123456789"))
        with transaction(factory) as session:
            queued = queue_invitations(session, EmailChannel(settings), context, store, now=NOW)
        assert queued == n, queued
        took["queue_invitations"] = time.perf_counter() - started
    finally:
        engine.dispose()
    return took


def prerender(path: Path, settings: Settings,
              limit: int | None = None) -> list[tuple[str, bytes]]:
    """The first `limit` (default: all) queued rows as (recipient, wire bytes), rendered the
    way the sender renders them."""
    engine = open_database(f"sqlite:///{path}")
    try:
        with transaction(session_factory(engine)) as session:
            rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)
                                   .limit(limit)).all()
            claimed = [Claimed(id=r.id, channel=r.channel, kind=r.kind, recipient=r.recipient,
                               message_id=r.message_id, payload=r.payload, attempts=1,
                               invitation_id=r.invitation_id, created_at=r.created_at,
                               deadline_at=None) for r in rows]
    finally:
        engine.dispose()
    render = compose_render(settings, SystemClock())
    out = []
    for item in claimed:
        message, recipients = render(item)
        out.append((recipients[0], wire_bytes(message)))
    return out


# --- timed phases (each in its own process) -------------------------------------------------


@dataclass(frozen=True)
class Measured:
    seconds: float
    sent: int
    cpu_seconds: float
    rss_before_mb: float
    rss_peak_mb: float
    heap_peak_mb: float | None


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _bare(port: int, connections: int, messages: list[tuple[str, bytes]],
                mail_from: str, hostname: str) -> int:
    pending = iter(messages)
    sent = 0

    async def worker() -> None:
        nonlocal sent
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname=hostname,
                                 start_tls=False, timeout=30)
        await client.connect()
        try:
            for recipient, data in pending:
                await client.sendmail(mail_from, [recipient], data)
                sent += 1
        finally:
            await client.quit()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return sent


def bare_phase(port: int, connections: int, path: Path, trace: bool) -> Measured:
    settings = settings_for(port, connections)
    messages = prerender(path, settings)
    mail_from = parseaddr(settings.email.from_address)[1]
    hostname = mail_from.rpartition("@")[2]
    before = _rss_mb()
    if trace:
        tracemalloc.start()
    started, cpu = time.perf_counter(), _cpu()
    sent = asyncio.run(_bare(port, connections, messages, mail_from, hostname))
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    heap = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    return Measured(seconds, sent, cpu, before, _rss_mb(), heap)


async def drain(sender: Sender, factory: sessionmaker[Session], total: int, *,
                progress: Callable[[int], None] | None = None) -> int:
    """Run `sender` until `total` rows are sent; `progress(sent)` is called on every look."""

    def sent() -> int:
        with transaction(factory) as session:
            return int(session.scalar(select(func.count()).select_from(OutboxMessage)
                                      .where(OutboxMessage.status == "sent")) or 0)

    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        while (done := await asyncio.to_thread(sent)) < total:
            if task.done():
                task.result()
                raise RuntimeError(f"the sender stopped after {done} of {total}")
            if progress is not None:
                progress(done)
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    return done


def sender_phase(port: int, connections: int, path: Path, trace: bool) -> Measured:
    settings = settings_for(port, connections)
    engine = open_database(f"sqlite:///{path}")
    try:
        factory = session_factory(engine)
        with transaction(factory) as session:
            total = int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)
        sender = Sender(session_factory=factory, settings=settings, worker="bench")
        before = _rss_mb()
        if trace:
            tracemalloc.start()
        started, cpu = time.perf_counter(), _cpu()
        sent = asyncio.run(drain(sender, factory, total))
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
        heap = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    finally:
        engine.dispose()
    return Measured(seconds, sent, cpu, before, _rss_mb(), heap)


def _child(kind: str, port: int, connections: int, path: str, trace: bool,
           results: multiprocessing.Queue[Measured]) -> None:
    phase = bare_phase if kind == "bare" else sender_phase
    results.put(phase(port, connections, Path(path), trace))


def in_child(kind: str, port: int, connections: int, path: Path, trace: bool) -> Measured:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[Measured] = context.Queue()
    process = context.Process(target=_child, args=(kind, port, connections, str(path), trace,
                                                   results))
    process.start()
    try:
        measured = results.get(timeout=600)
    finally:
        process.join(timeout=30)
    if process.exitcode != 0:
        raise RuntimeError(f"the {kind} phase failed (exit code {process.exitcode})")
    return measured


# --- the sink -------------------------------------------------------------------------------


class Sink:
    """`tests/smtp_servers.py sink PORT` in its own process."""

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        from smtp_servers import free_port

        self.port = free_port()
        self.process = subprocess.Popen(  # noqa: S603 - our own script
            [sys.executable, str(ROOT / "tests" / "smtp_servers.py"), "sink", str(self.port)],
            stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"the SMTP sink did not start: {line!r}")

    def cpu_seconds(self) -> float:
        """CPU time the sink has used so far (user + system, from /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        """Stop the sink; how many messages it accepted."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return int(out.strip().rsplit(" ", 1)[-1])


# --- main ---------------------------------------------------------------------------------


def fresh_copy(template: Path, copy: Path) -> Path:
    """A copy of the template database (and its WAL files) for one timed phase."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(template) + suffix)
        target = Path(str(copy) + suffix)
        target.unlink(missing_ok=True)
        if source.exists():
            shutil.copyfile(source, target)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000,
                        help="invitations per timed phase (default 2000)")
    parser.add_argument("--connections", default="1,3,8,16",
                        help="comma-separated connection counts (default 1,3,8,16)")
    parser.add_argument("--pairs", type=int, default=3,
                        help="interleaved bare/svarbot pairs per connection count (default 3)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace the Python heap's peak (slows every phase)")
    args = parser.parse_args()
    counts = [int(c) for c in args.connections.split(",")]

    with tempfile.TemporaryDirectory(prefix="svarbot-bench-") as folder:
        template = Path(folder) / "template.db"
        started = time.perf_counter()
        took = build_database(template, args.n)
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in took.items())
        print(f"setup: {args.n} invitations queued in {time.perf_counter() - started:.1f} s\n"
              f"  ({steps})")
        print(f"{args.pairs} pairs per connection count, the order swapped every pair;\n"
              f"A = bare aiosmtplib, B = svarbot's sender; cpu = ms of CPU per message in "
              f"the\nsending process")
        print(f"{'C':>3}{'pair':>5} {'order':<6}{'A msg/s':>8}{'B msg/s':>8}{'B/A':>6}"
              f"{'A cpu':>7}{'B cpu':>7}{'B rss':>8}" + ("  B heap" if args.tracemalloc else ""))
        results: dict[int, Spread] = {}
        for connections in counts:
            sink = Sink()
            try:
                def phase(kind: str, connections: int = connections,
                          sink: Sink = sink) -> Measured:
                    copy = fresh_copy(template, Path(folder) / f"{kind}.db")
                    m = in_child(kind, sink.port, connections, copy, args.tracemalloc)
                    if m.sent != args.n:
                        raise RuntimeError(f"{kind}: {m.sent} of {args.n} sent")
                    return m

                ratios = []
                for pair, first, a, b in pairs(args.pairs, lambda: phase("bare"),
                                               lambda: phase("svarbot")):
                    rate_a, rate_b = a.sent / a.seconds, b.sent / b.seconds
                    ratios.append(rate_b / rate_a)
                    heap = (f"{b.heap_peak_mb:>6.0f}MB" if b.heap_peak_mb is not None else "")
                    print(f"{connections:>3}{pair:>5} {first:<6}{rate_a:>8.0f}{rate_b:>8.0f}"
                          f"{rate_b / rate_a:>6.2f}{a.cpu_seconds / a.sent * 1000:>7.2f}"
                          f"{b.cpu_seconds / b.sent * 1000:>7.2f}{b.rss_peak_mb:>6.0f}MB"
                          f"{heap}", flush=True)
            finally:
                received = sink.stop()
            if received != 2 * args.pairs * args.n:
                raise RuntimeError(f"the sink accepted {received}, expected "
                                   f"{2 * args.pairs * args.n}")
            results[connections] = Spread.of(ratios)
        print(f"svarbot/bare rate (B/A), median over the pairs; goal ≥ {GOAL}:")
        for connections, spread in results.items():
            print(f"  C={connections:<3} {spread.text()}  {verdict(spread.median >= GOAL)}")


if __name__ == "__main__":
    main()
