"""A whole invitation wave (default 100,000) queued and sent: enqueue time, rate, peak memory.

Three phases, each in a fresh process (spawned) so that each peak RSS (`ru_maxrss`) is its own:

1. enqueue: N respondents and pending invitations inserted directly (not timed), then the wave
   queued by `bot.conversation.outgoing.queue_invitations` in chunks of 500, each its own
   transaction (timed), as the campaign clock's wave does it;
2. bare (before the send, which clears the bodies): aiosmtplib alone sends the first
   `--bare-n` of the queued messages, rendered beforehand, over the same connections to the
   same sink (a subset, so the baseline does not double the run time; its rate is per
   message, so it compares);
3. send: the real `Sender` drains the outbox into an aiosmtpd sink in its own process
   (`tests/smtp_servers.py sink PORT`), with progress every few seconds.

The goal for memory is a peak below 300 MB in the sending process.

    .venv/bin/python bench/wave_100k.py [--n 100000] [--connections 3] [--bare-n 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mail_outbound import (
    NOW,
    QUESTIONNAIRE,
    SURVEY,
    Sink,
    _bare,
    drain,
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
from storage.schema import Invitation, InvitationStatus, OutboxMessage, Respondent
from storage.tokens import new_token

GOAL_MB = 300
PROGRESS_SECONDS = 5.0


@dataclass(frozen=True)
class Phase:
    seconds: float
    count: int
    rss_peak_mb: float


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- phases ---------------------------------------------------------------------------------


#: Rows inserted per transaction while setting up (not timed).
INSERT_CHUNK = 10_000
#: Invitations queued per transaction, as the campaign's wave does.
WAVE_CHUNK = 500


def enqueue_phase(path: str, n: int, _port: int, _connections: int) -> Phase:
    url = f"sqlite:///{path}"
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    try:
        with transaction(factory) as session:
            survey_id = ensure_survey(session, SURVEY, QUESTIONNAIRE).id
        for first in range(0, n, INSERT_CHUNK):  # not timed; chunked to keep memory flat
            with transaction(factory) as session:
                ids = session.scalars(Respondent.__table__.insert().returning(
                    Respondent.__table__.c.id), [
                    {"email": f"leder{i}@kommune{i % 356}.example", "name": f"Leder Nummer{i}",
                     "role": "unit_leader", "municipality_no": f"{i % 356:04d}",
                     "municipality_name": f"Kommune {i % 356}", "county": "Vestland",
                     "size_class": "medium", "landsdel": "Vestlandet", "lang": "nb",
                     "updated_at": NOW} for i in range(first, min(n, first + INSERT_CHUNK))]
                ).all()
                session.execute(Invitation.__table__.insert(), [
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


def send_phase(path: str, _n: int, port: int, connections: int) -> Phase:
    engine = open_database(f"sqlite:///{path}")
    try:
        factory = session_factory(engine)
        with transaction(factory) as session:
            total = int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)
        sender = Sender(session_factory=factory, settings=settings_for(port, connections),
                        worker="bench")
        started = last = time.perf_counter()

        def progress(done: int) -> None:
            nonlocal last
            if time.perf_counter() - last >= PROGRESS_SECONDS:
                last = time.perf_counter()
                elapsed = last - started
                print(f"  sent {done:>7} of {total} in {elapsed:6.1f} s "
                      f"({done / elapsed:5.0f}/s, rss {_rss_mb():.0f} MB)", flush=True)

        sent = asyncio.run(drain(sender, factory, total, progress=progress))
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return Phase(seconds, sent, _rss_mb())


def bare_phase(path: str, n: int, port: int, connections: int) -> Phase:
    """The first `n` queued messages, pre-rendered, sent by a bare aiosmtplib loop."""
    settings = settings_for(port, connections)
    messages = prerender(Path(path), settings, limit=n)
    mail_from = parseaddr(settings.email.from_address)[1]
    started = time.perf_counter()
    sent = asyncio.run(_bare(port, connections, messages, mail_from,
                             mail_from.rpartition("@")[2]))
    return Phase(time.perf_counter() - started, sent, _rss_mb())


_PHASES = {"enqueue": enqueue_phase, "send": send_phase, "bare": bare_phase}


def _child(kind: str, args: tuple[str, int, int, int],
           results: multiprocessing.Queue[Phase]) -> None:
    results.put(_PHASES[kind](*args))


def in_child(kind: str, path: Path, n: int, port: int, connections: int) -> Phase:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[Phase] = context.Queue()
    process = context.Process(target=_child, args=(kind, (str(path), n, port, connections),
                                                   results))
    process.start()
    try:
        measured = results.get(timeout=3600)
    finally:
        process.join(timeout=60)
    if process.exitcode != 0:
        raise RuntimeError(f"the {kind} phase failed (exit code {process.exitcode})")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="invitations (default 100000)")
    parser.add_argument("--connections", type=int, default=3, help="SMTP connections")
    parser.add_argument("--bare-n", type=int, default=10_000,
                        help="messages for the bare baseline (default 10000, at most --n)")
    args = parser.parse_args()
    bare_n = min(args.bare_n, args.n)
    with tempfile.TemporaryDirectory(prefix="svarbot-wave-") as folder:
        path = Path(folder) / "wave.db"
        print(f"enqueue: {args.n} invitations ...", flush=True)
        enqueued = in_child("enqueue", path, args.n, 0, args.connections)
        print(f"enqueue: {enqueued.count} queued in {enqueued.seconds:.1f} s "
              f"({enqueued.count / enqueued.seconds:.0f}/s), peak rss "
              f"{enqueued.rss_peak_mb:.0f} MB", flush=True)
        sink = Sink()
        try:
            # The baseline first: sending clears the bodies it renders from.
            bare = in_child("bare", path, bare_n, sink.port, args.connections)
            print(f"bare aiosmtplib: {bare.count} pre-rendered messages in {bare.seconds:.1f} s "
                  f"({bare.count / bare.seconds:.0f}/s), peak rss {bare.rss_peak_mb:.0f} MB",
                  flush=True)
            print(f"send: {args.n} messages over {args.connections} connections ...",
                  flush=True)
            sent = in_child("send", path, args.n, sink.port, args.connections)
            print(f"send: {sent.count} sent in {sent.seconds:.1f} s "
                  f"({sent.count / sent.seconds:.0f}/s), peak rss {sent.rss_peak_mb:.0f} MB "
                  f"(goal < {GOAL_MB} MB: {'met' if sent.rss_peak_mb < GOAL_MB else 'NOT met'})",
                  flush=True)
        finally:
            received = sink.stop()
        rate, bare_rate = sent.count / sent.seconds, bare.count / bare.seconds
        print(f"svarbot/bare = {rate / bare_rate:.2f}; the sink accepted {received} "
              f"(expected {sent.count + bare.count})")


if __name__ == "__main__":
    main()
