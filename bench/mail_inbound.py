"""Inbound mail end to end: replies through parse → trim → classify → engine → store → queue.

Goal: the dispatcher handles replies at no less than half the rate at which the standard
library alone parses the same bytes with `policy.default` (ratio ≥ 0.5).

Setup (not timed): a fresh SQLite database in a temporary folder (in /dev/shm where there
is one), `--n` invited unit leaders and their invitations queued, one reply to each
answering question 1 from the simulated mail clients in turn (see `_replies`). The replies
are cut into `--pairs` blocks (after a short warm-up block, drained untimed); for each pair
the block is stored in the inbox with `store_inbound` (timed on its own, in no ratio), then
A and B run back to back, the order swapped every pair (bench/interleave.py):

* A, the baseline: the standard library parses the block's bytes (`policy.default`);
* B, svarbot: `Dispatcher.drain()` handles the block, one transaction per message (the
  production path: read, classify, trim, engine, anonymised store, next page queued).

Printed per pair: both rates and B/A; then the median B/A over the pairs, its spread
(min–max) and PASS or MISS against 0.5, what every message became, and the peak RSS.

    .venv/bin/python bench/mail_inbound.py [--n 5000] [--pairs 5]
"""

from __future__ import annotations

import argparse
import email
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interleave import Spread, order, verdict

from bot.channels.email.channel import EmailChannel
from bot.channels.email.clients import STYLES, compose_reply
from bot.channels.email.compose import OutgoingMail, render
from bot.config import Settings, SurveySettings
from bot.conversation.dispatch import Dispatcher
from bot.conversation.outgoing import SurveyContext, queue_invitations
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import make_engine, session_factory, transaction
from storage.identity import ensure_survey, invite, upsert_respondent
from storage.inbox import message_id_of, store_inbound
from storage.migrate import init_database
from storage.outbox import Result, record
from storage.schema import InboxMessage, OutboxMessage

SURVEY = "virksomhetsleder-2020"
NOW = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)
GOAL = 0.5
#: Replies drained, untimed, before the pairs (caches warm, statements compiled).
WARM_UP = 100
#: Rows written per setup transaction: big enough to be quick, small enough to stay lean.
BATCH = 1000
#: In memory where there is a tmpfs: the disk's fsync latency is not what is measured here.
_SHM = Path("/dev/shm")  # noqa: S108 - only ever the parent of a private mkdtemp folder
DB_DIR = str(_SHM) if _SHM.is_dir() else None


def _invite(factory: sessionmaker[Session], count: int) -> None:
    """`count` unit leaders in distinct municipalities, each invited to the survey."""
    for start in range(0, count, BATCH):
        with transaction(factory) as session:
            survey = ensure_survey(session, SURVEY, SURVEY)
            for i in range(start, min(count, start + BATCH)):
                respondent = upsert_respondent(
                    # Same-length names and addresses: see `_replies`.
                    session, email=f"leder{i:06d}@kommune{i:06d}.example",
                    name=f"Leder Nummer{i:06d}", role="unit_leader",
                    municipality_no=f"{1000 + i % 9000:04d}",
                    municipality_name=f"Kommune{i:06d}", county="Viken", size_class="medium",
                    landsdel="Østlandet", sector="helse", unit_type="sykehjem",
                    phone=f"+47 9{i:07d}", telegram=f"@leder{i}")
                invite(session, respondent, survey)


def _replies(factory: sessionmaker[Session], settings: Settings) -> list[bytes]:
    """One human reply per queued invitation, answering question 1, client styles in turn.

    A simulated client takes ~15 ms a reply, more than handling it, so each style composes
    one real reply (to the invitation rendered as the sender would) and the others are that
    reply with the invitation's own token, Message-IDs, address and name put in: the same
    bytes a real reply from that client would have, at no cost. The rows are then sent.
    """
    with transaction(factory) as session:
        rows = [(row.id, row.message_id or "", OutgoingMail.from_payload(row.payload))
                for row in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
                if row.payload is not None]
        record(session, [Result(outbox_id, "sent") for outbox_id, _, _ in rows], now=NOW)
    templates = []
    for t, (_, message_id, mail) in enumerate(rows[: len(STYLES)]):
        raw = render(mail, message_id=message_id, settings=settings.email, now=NOW).as_bytes()
        reply = compose_reply(raw, "1: helse\n\nHilsen Leder", style=STYLES[t],
                              from_address=mail.to_address, from_name=mail.to_name,
                              now=NOW + timedelta(minutes=30), message_id=_reply_id(t))
        own = (mail.token, message_id, mail.to_address, mail.to_name, _reply_id(t))
        templates.append((reply, [field.encode() for field in own]))
    replies = []
    for i, (_, message_id, mail) in enumerate(rows):
        reply, placeholders = templates[i % len(templates)]
        mine = (mail.token, message_id, mail.to_address, mail.to_name, _reply_id(i))
        for old, new in zip(placeholders, mine, strict=True):
            reply = reply.replace(old, new.encode())
        replies.append(reply)
    return replies


def _reply_id(i: int) -> str:
    return f"<bench-reply-{i:07d}@kommune.example>"


def _store(factory: sessionmaker[Session], replies: list[bytes], first: int) -> float:
    """Store replies[first:first + len] … in the inbox; seconds it took."""
    started = time.perf_counter()
    for start in range(0, len(replies), BATCH):
        with transaction(factory) as session:
            for i in range(start, min(len(replies), start + BATCH)):
                raw = replies[i]
                store_inbound(session, channel="email", external_id=f"bench:{first + i}",
                              raw=raw, message_id=message_id_of(raw),
                              now=NOW + timedelta(minutes=31))
    return time.perf_counter() - started


def _parse(replies: list[bytes]) -> float:
    """Seconds for the standard library alone to parse every reply (policy.default)."""
    started = time.perf_counter()
    for raw in replies:
        email.message_from_bytes(raw, policy=default_policy)
    return time.perf_counter() - started


def _drain(dispatcher: Dispatcher, count: int) -> float:
    """Seconds for the dispatcher to handle the `count` replies waiting in the inbox."""
    started = time.perf_counter()
    handled = dispatcher.drain()
    seconds = time.perf_counter() - started
    if handled != count:
        raise RuntimeError(f"the dispatcher handled {handled} replies, expected {count}")
    return seconds


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="replies (one per invitation)")
    parser.add_argument("--pairs", type=int, default=5,
                        help="interleaved parse/dispatch pairs (default 5)")
    parser.add_argument("--db-dir", default=DB_DIR,
                        help=f"folder for the SQLite database (default {DB_DIR or 'temp'})")
    args = parser.parse_args()
    settings = Settings(surveys=(SurveySettings(id=SURVEY, questionnaire=SURVEY,
                                                contact="Kari Nordmann, KS"),))
    store = AnswerStore(LinkKey(b"bench-link-key-0123456789"))
    contexts = {SURVEY: SurveyContext(settings=settings.surveys[0],
                                      questionnaire=load_shipped(SURVEY))}
    warm_up = min(WARM_UP, args.n // (args.pairs + 1))
    block = (args.n - warm_up) // args.pairs
    with tempfile.TemporaryDirectory(prefix="svarbot-bench-", dir=args.db_dir) as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        init_database(url)
        engine = make_engine(url)
        try:
            factory = session_factory(engine)
            started = time.perf_counter()
            _invite(factory, args.n)
            with transaction(factory) as session:
                queue_invitations(session, EmailChannel(settings), contexts[SURVEY], store,
                                  now=NOW)
            replies = _replies(factory, settings)
            size = sum(len(raw) for raw in replies) / len(replies)
            print(f"setup: {len(replies)} replies ({size:.0f} bytes on average, "
                  f"{len(STYLES)} client styles)\n  in {time.perf_counter() - started:.1f} s "
                  f"(invite, queue, render, compose; not timed); database in\n  "
                  f"{args.db_dir or tempfile.gettempdir()}", flush=True)
            dispatcher = Dispatcher(session_factory=factory, settings=settings, store=store,
                                    surveys=contexts, clock=lambda: NOW + timedelta(hours=1))
            stored = _store(factory, replies[:warm_up], 0)
            _drain(dispatcher, warm_up)
            print(f"{args.pairs} pairs of {block} replies (after {warm_up} untimed); A = "
                  f"stdlib parse, B = the\ndispatcher")
            print(f"{'pair':>4} {'order':<6}{'A msg/s':>9}{'B msg/s':>9}{'B ms/msg':>10}"
                  f"{'B/A':>7}")
            ratios, b_seconds = [], []
            for pair in range(args.pairs):
                first = warm_up + pair * block
                chunk = replies[first:first + block]
                stored += _store(factory, chunk, first)
                got = {}
                for side in order(pair):
                    got[side] = _parse(chunk) if side == "A" else _drain(dispatcher, len(chunk))
                a, b = got["A"], got["B"]
                ratios.append(a / b)
                b_seconds.append(b)
                print(f"{pair + 1:>4} {''.join(order(pair)):<6}{block / a:>9.0f}"
                      f"{block / b:>9.0f}{b / block * 1000:>10.2f}{a / b:>7.2f}", flush=True)

            with factory() as session:
                statuses = Counter({str(status): int(n) for status, n in session.execute(
                    select(InboxMessage.status, func.count()).group_by(InboxMessage.status))})
                pages = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.kind == "page")) or 0
        finally:
            engine.dispose()

    spread = Spread.of(ratios)
    stored_count = warm_up + args.pairs * block
    print(f"dispatcher/stdlib rate (B/A): {spread.text()}")
    print(f"  B: median {statistics.median(b_seconds) / block * 1000:.2f} ms per message; "
          f"goal ≥ {GOAL}: {verdict(spread.median >= GOAL)}")
    print(f"store_inbound: {stored_count / stored:.0f} msg/s (not in the ratio)")
    print(f"outcome: {dict(statuses)}; {pages} next pages queued")
    print(f"peak memory: {_peak_mib():.0f} MiB (max RSS of the whole run)")


if __name__ == "__main__":
    main()
