"""The operator's pages on a 100,000-invitation campaign, and the sender while they refresh.

1. pages. Each page of the dashboard and desk (`PAGES`: /dashboard and its CSV, the delivery
   log and two of its filters, /attention, /outbox, /quarantine, /health, /desk, one
   respondent's page) is requested over HTTP from the real web application
   (`bot.web.serve.WebServer`, uvicorn in a thread of this process, started as
   tests/web_support.py `WebRun` does) by httpx on loopback, logged in as an operator, over
   one keep-alive connection: request to full response, which is the server's time plus a
   small client overhead. The baseline, measured in the same run, is the bare SQL behind
   what the page shows: hand-written SELECTs for the same counts and rows (for /dashboard
   the GROUP BY COUNTs over invitations, outbox and their events; for /log the one
   `SELECT … ORDER BY id DESC LIMIT 200` join; …), run through one SQLAlchemy connection
   with the rows fetched as tuples: no ORM objects, no login lookup, no rendering, no HTTP.
   `--pairs` rounds; in each, for every page, n baseline runs then n page requests
   (interleaved, so drift on the machine hits both alike), n being `--requests` or, for a
   page slower than `ROUND_SECONDS / --requests`, as many as fit in `ROUND_SECONDS` per side
   (at least `FEWEST`), so that a 1-second page does not make the run last half an hour.
   Printed per page: the requests measured, svarbot's p50 and p95 over every round, the
   baseline's p50, the ratio of the two medians per round (median over the rounds, and
   min–max), and PASS or MISS against the goal: p95 under 250 ms.
2. sender. `svarbot run`'s parts (`bot.runner.Service` with the web application enabled, so
   the email outbox worker and the pages share one event loop, as in production) send
   `--send` queued invitations of a second survey over 3 SMTP connections to an aiosmtpd
   sink in its own process (`tests/smtp_servers.py sink PORT`, via bench/mail_outbound.py's
   `Sink`), rate limits far above what loopback can do. A: no web traffic; B: a thread of
   this process requests /dashboard every `--refresh` seconds, or at once when the last
   request took longer (0.5 s: like thirty operators with the page open at the default
   `web.refresh_seconds` of 15). `--send-pairs` pairs, the
   order swapped every pair. A run's rate is its messages over the time from the commit
   that queued them (the worker is woken at once) to the last result the worker recorded.
   Printed: each pair's rates and B/A, the median B/A and its spread (goal: unchanged, about
   1.0), and the dashboard's latency under the sender.

Setup (timed and printed, in no figure): a temporary SQLite database (`init_database`)
holding one campaign, "virksomhetsleder-2020", of `--invitations` invitations with its
history, inserted in bulk (Core `insert()` with lists of dicts, in chunks): respondents over
4 sectors × 7 landsdeler × 3 size classes (84 strata); statuses invited/started/finished/
bounced/opted_out; per invitation an "invitation" outbox row sent over ten days in id order
(as a wave at `smtp.per_day` 10,000 goes), by email and a few by Telegram, with 2–4 outbox
events each (queued, sent; some retry, soft_bounce, bounced), reminders for a share of the
early ones (some dead), invitation events for every status change, 200 desk queries (a
quarter open), 400 inbox rows (40 in the quarantine), one operator made with
`storage.users.add_user`; plus the pending invitations the sender part queues, in a second
survey (same respondents). No ANALYZE is run: as a database svarbot built itself.

    .venv/bin/python bench/web_pages.py [--invitations 100000] [--pairs 5] [--requests 30]
                                        [--send 2000] [--send-pairs 3] [--refresh 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import random
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import Connection, Engine, TextClause, func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mail_outbound import UNLIMITED, Sink
from web_support import PASSWORDS, Visitor, WebRun

from bot.channels.email.channel import EmailChannel
from bot.config import Settings
from bot.conversation.outgoing import SurveyContext, queue_invitations
from bot.runner import Service
from bot.web.context import WebContext
from flows.loader import load_shipped
from storage.answers import AnswerStore, LinkKey
from storage.db import session_factory, transaction
from storage.identity import ensure_survey
from storage.migrate import init_database, open_database
from storage.schema import (
    DeskQuery,
    Heartbeat,
    InboxEvent,
    InboxMessage,
    Invitation,
    InvitationEvent,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    Respondent,
    UserRole,
)
from storage.tokens import new_token
from storage.users import add_user

SURVEY = "virksomhetsleder-2020"
#: The second survey, whose pending invitations the sender part sends.
SEND_SURVEY = "utsending"
QUESTIONNAIRE = "virksomhetsleder-2020"
OPERATOR = "ola"
GOAL_MS = 250.0
CONNECTIONS = 3

SECTORS = ("helse", "oppvekst", "teknisk", "administrasjon")
LANDSDELER = ("Oslo og Akershus", "Innlandet", "Sør-Østlandet", "Agder og Rogaland",
              "Vestlandet", "Trøndelag", "Nord-Norge")
SIZES = ("small", "medium", "large")
#: Where the campaign's invitations stand (cumulative shares are drawn from these).
STATUS_MIX = (("finished", 0.36), ("started", 0.12), ("invited", 0.43), ("bounced", 0.05),
              ("opted_out", 0.04))
#: Rows per INSERT while setting up.
CHUNK = 10_000
#: The wave: invitations sent in id order over this long, ending a day before now.
SPAN = dt.timedelta(days=10)
#: Page requests before measuring (also to estimate how long one takes).
WARM_UP = 2
#: Each side of a round takes about this long: slow pages get fewer requests ...
ROUND_SECONDS = 1.0
#: ... but never fewer than this.
FEWEST = 4


# --- setup ----------------------------------------------------------------------------------


def _stamp(moment: dt.datetime) -> str:
    """A time as SQLAlchemy stores a DateTime in SQLite (UTC, no offset): for bare SQL."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class Rows:
    """One chunk of the campaign's rows, per table, in insertion order."""

    respondents: list[dict[str, object]] = field(default_factory=list)
    invitations: list[dict[str, object]] = field(default_factory=list)
    invitation_events: list[dict[str, object]] = field(default_factory=list)
    outbox: list[dict[str, object]] = field(default_factory=list)
    outbox_events: list[dict[str, object]] = field(default_factory=list)


@dataclass
class Campaign:
    """Makes the campaign's rows, chunk by chunk, with ids it hands out itself."""

    n: int
    start: dt.datetime
    rng: random.Random
    outbox_id: int = 0

    def _status(self) -> str:
        draw = self.rng.random()
        for status, share in STATUS_MIX:
            if draw < share:
                return status
            draw -= share
        return STATUS_MIX[-1][0]

    def _outbox(self, rows: Rows, *, invitation_id: int, kind: str, channel: str,
                recipient: str, at: dt.datetime, fate: str) -> None:
        """One outbox row and its events: `fate` is sent, retry (then sent), soft (sent, then
        a soft bounce), bounced (at RCPT or by a later report) or dead."""
        self.outbox_id += 1
        oid = self.outbox_id
        events: list[tuple[dt.datetime, str, str, int | None, dt.datetime | None]] = [
            (at, "queued", "", None, None)]
        sent_at: dt.datetime | None = at + dt.timedelta(seconds=self.rng.uniform(1, 30))
        status, attempts = OutboxStatus.SENT.value, 1
        code = "250 2.0.0 Ok: queued" if channel == "email" else "sendMessage ok"
        if fate == "retry":
            retry_at = at + dt.timedelta(seconds=20)
            later = retry_at + dt.timedelta(minutes=5)
            events.append((retry_at, "retry", "RCPT: 451 4.3.0 try later", 1, later))
            sent_at, attempts = later, 2
        assert sent_at is not None
        events.append((sent_at, "sent", code, None, None))
        if fate == "soft":
            events.append((sent_at + dt.timedelta(hours=2), "soft_bounce",
                           "DSN: 452 4.2.2 mailbox full", None, None))
        elif fate == "bounced":
            status = OutboxStatus.BOUNCED.value
            if self.rng.random() < 0.5:  # refused at RCPT: never sent
                events[-1] = (events[-1][0], "bounced", "RCPT: 550 5.1.1 User unknown", None,
                              None)
                sent_at = None
            else:
                events.append((sent_at + dt.timedelta(minutes=3), "bounced",
                               "DSN: 550 5.1.1 User unknown", None, None))
        elif fate == "dead":
            status, attempts = OutboxStatus.DEAD.value, 3
            first = at + dt.timedelta(seconds=20)
            events[1:] = [(first, "retry", "connection: TimeoutError", 1,
                           first + dt.timedelta(minutes=5)),
                          (first + dt.timedelta(minutes=5), "retry",
                           "connection: TimeoutError", 2, first + dt.timedelta(minutes=30)),
                          (first + dt.timedelta(minutes=30), "dead",
                           "gave up: connection: TimeoutError", None, None)]
            sent_at = None
        rows.outbox.append({
            "id": oid, "idempotency_key": f"{kind}:{invitation_id}", "invitation_id": invitation_id,
            "channel": channel, "kind": kind, "recipient": recipient,
            "message_id": f"<{kind}.{invitation_id}.{oid}@svarbot.localhost>"
            if channel == "email" else None,
            "payload": None, "status": status, "attempts": attempts,
            "next_attempt_at": events[-1][0], "deadline_at": None, "claimed_by": None,
            "created_at": at, "sent_at": sent_at})
        rows.outbox_events += [{"outbox_id": oid, "at": when, "status": what, "detail": detail,
                                "attempt": attempt, "next_at": next_at}
                               for when, what, detail, attempt, next_at in events]

    def chunk(self, first: int, last: int) -> Rows:
        """The rows of invitations `first` … `last - 1` (0-based; ids are one more)."""
        rows = Rows()
        rng = self.rng
        end = self.start + SPAN
        for i in range(first, last):
            rid = i + 1
            sector, landsdel, size = (SECTORS[i % 4], LANDSDELER[(i // 4) % 7],
                                      SIZES[(i // 28) % 3])
            email = f"leder{i}@kommune{i % 356}.example"
            rows.respondents.append({
                "id": rid, "name": f"Leder Nummer{i}", "email": email, "phone": None,
                "telegram": None, "role": "unit_leader", "municipality_no": f"{i % 356:04d}",
                "municipality_name": f"Kommune {i % 356}", "county": "Vestland",
                "sector": sector, "unit_type": "sykehjem", "size_class": size,
                "landsdel": landsdel, "lang": "nb", "updated_at": self.start})
            status = "started" if rid == 1 else self._status()
            sent = self.start + SPAN * (i / self.n) + dt.timedelta(seconds=rng.uniform(0, 60))
            by_telegram = rng.random() < 0.05
            channel = "telegram" if by_telegram else "email"
            recipient = str(700_000_000 + i) if by_telegram else email
            fate = ("bounced" if status == "bounced" else
                    "retry" if rng.random() < 0.05 else "soft" if rng.random() < 0.02
                    else "sent")
            self._outbox(rows, invitation_id=rid, kind="invitation", channel=channel,
                         recipient=recipient, at=sent, fate=fate)
            changes = [(sent, "invited", "pending", "sent")]
            last_channel = None
            contact = None
            if status in ("started", "finished", "opted_out"):
                contact = min(end, sent + dt.timedelta(hours=rng.uniform(0.1, 72)))
                first_status = "started" if status != "opted_out" else "opted_out"
                changes.append((contact, first_status, "invited", "reply"))
                if status != "opted_out" and rng.random() < 0.10:
                    last_channel = "telegram"
            if status == "finished":
                assert contact is not None
                contact = contact + dt.timedelta(minutes=rng.uniform(5, 2880))
                changes.append((contact, "finished", "started", "last page answered"))
            if status == "bounced":
                changes.append((sent + dt.timedelta(minutes=3), "bounced", "invited",
                                "550 5.1.1 User unknown"))
            reminders = 0
            if (status in ("invited", "started") and end - sent > dt.timedelta(days=4)
                    and (rid == 1 or rng.random() < 0.7)):
                reminders = 1
                self._outbox(rows, invitation_id=rid, kind="reminder",
                             channel=last_channel or channel,
                             recipient=recipient if last_channel is None
                             else str(700_000_000 + i),
                             at=sent + dt.timedelta(days=4, minutes=rng.uniform(0, 60)),
                             fate="dead" if rng.random() < 0.01 else "sent")
            away = (end.date() + dt.timedelta(days=rng.randint(1, 14))
                    if status == "invited" and rng.random() < 0.02 else None)
            rows.invitations.append({
                "id": rid, "respondent_id": rid, "survey_id": SURVEY, "token": new_token(),
                "status": status, "reminders_sent": reminders, "last_contact_at": contact,
                "session_state": None, "email_address": email,
                "answered_from_other_address": False, "away_until": away,
                "created_at": self.start - dt.timedelta(days=1),
                "updated_at": changes[-1][0], "telegram_start": None,
                "telegram_user_id": 700_000_000 + i if by_telegram or last_channel else None,
                "telegram_chat_id": 700_000_000 + i if by_telegram or last_channel else None,
                "telegram_active": True, "start_shared": False, "last_channel": last_channel})
            rows.invitation_events += [
                {"invitation_id": rid, "at": at, "status": new, "previous": old,
                 "reason": reason} for at, new, old, reason in changes]
        return rows


QUESTIONS = ("Hvem kan jeg kontakte om dette?", "Gjelder undersøkelsen også avdelingene våre?",
             "Jeg er ny i stillingen, skal jeg svare?", "Kan jeg svare på nynorsk?",
             "Hvor lang tid tar det å svare?")


def _quarantined_mail(n: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"ukjent{n}@example.org"
    mail["To"] = "svar@svarbot.localhost"
    mail["Subject"] = f"Et brev uten nøkkel nr. {n}"
    mail["Date"] = "Mon, 07 Oct 2019 09:00:00 +0200"
    mail["Message-ID"] = f"<stray-{n}@example.org>"
    mail.set_content("Hei, hva er dette?\n" * 20)
    return mail.as_bytes()


def _extras(conn: Connection, n: int, start: dt.datetime, rng: random.Random) -> None:
    """The desk queries, the inbox, a heartbeat."""
    end = start + SPAN
    asked = [1, *rng.sample(range(2, n + 1), min(199, n - 1))]
    queries = []
    for k, invitation_id in enumerate(asked):
        status = "open" if k % 4 == 0 else "answered" if k % 4 in (1, 2) else "closed"
        created = start + (end - start) * rng.random()
        queries.append({
            "invitation_id": invitation_id, "text": QUESTIONS[k % len(QUESTIONS)],
            "status": status, "answer": "Takk, svaret er ja." if status == "answered" else None,
            "created_at": created, "answered_at": created + dt.timedelta(hours=3)
            if status == "answered" else None,
            "channel": "telegram" if k % 7 == 0 else "email", "thread": None,
            "reply_key": None, "answered_by": "kari" if status == "answered" else None,
            "closed_at": created + dt.timedelta(days=1) if status == "closed" else None,
            "updated_at": created, "notified_at": created})
    conn.execute(insert(DeskQuery), queries)
    inbox, events = [], []
    for k in range(400):
        failed = k % 10 == 0
        about = None if failed else (1 if k < 3 else rng.randint(1, n))
        received = start + (end - start) * rng.random()
        inbox.append({
            "id": k + 1, "channel": "email" if k % 5 else "telegram",
            "external_id": f"INBOX/1/{k + 1}", "message_id": f"<reply-{k}@example.org>",
            "invitation_id": about,
            "classification": None if failed else "reply" if k % 3 else "auto_reply",
            "status": "failed" if failed else "processed",
            "raw": _quarantined_mail(k) if failed else None,
            "error": "no_token" if failed else None, "received_at": received})
        events += [{"inbox_id": k + 1, "at": received, "status": "received", "detail": ""},
                   {"inbox_id": k + 1, "at": received + dt.timedelta(seconds=1),
                    "status": "failed" if failed else "processed",
                    "detail": "no_token" if failed else ""}]
    conn.execute(insert(InboxMessage), inbox)
    conn.execute(insert(InboxEvent), events)
    conn.execute(insert(Heartbeat), [{"name": "leader", "at": dt.datetime.now(dt.UTC),
                                      "detail": "bench"}])


def build(path: Path, n: int, send_total: int) -> dict[str, float]:
    """The campaign (see the module notes) in a new database at `path`; seconds per step."""
    url = f"sqlite:///{path}"
    took: dict[str, float] = {}
    started = time.perf_counter()
    init_database(url)
    engine = open_database(url)
    factory = session_factory(engine)
    took["init"] = time.perf_counter() - started
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    campaign = Campaign(n=n, start=now - SPAN - dt.timedelta(days=1), rng=random.Random(2020))
    try:
        started = time.perf_counter()
        with transaction(factory) as session:
            ensure_survey(session, SURVEY, QUESTIONNAIRE)
            ensure_survey(session, SEND_SURVEY, QUESTIONNAIRE)
            add_user(session, OPERATOR, UserRole.OPERATOR, PASSWORDS[OPERATOR], actor="bench")
        with engine.begin() as conn:
            for first in range(0, n, CHUNK):
                rows = campaign.chunk(first, min(n, first + CHUNK))
                conn.execute(insert(Respondent), rows.respondents)
                conn.execute(insert(Invitation), rows.invitations)
                conn.execute(insert(InvitationEvent), rows.invitation_events)
                conn.execute(insert(OutboxMessage), rows.outbox)
                conn.execute(insert(OutboxEvent), rows.outbox_events)
            _extras(conn, n, campaign.start, campaign.rng)
        took["campaign"] = time.perf_counter() - started
        started = time.perf_counter()
        with engine.begin() as conn:  # the sender's invitations: the last respondents, pending
            conn.execute(insert(Invitation), [
                {"respondent_id": rid, "survey_id": SEND_SURVEY, "token": new_token(),
                 "status": "pending", "reminders_sent": 0,
                 "email_address": f"leder{rid - 1}@kommune{(rid - 1) % 356}.example",
                 "answered_from_other_address": False, "telegram_active": True,
                 "start_shared": False, "created_at": now, "updated_at": now}
                for rid in range(max(1, n - send_total + 1), n + 1)])
        took["pending"] = time.perf_counter() - started
    finally:
        engine.dispose()
    return took


def table_sizes(engine: Engine) -> str:
    with engine.connect() as conn:
        sizes = {name: conn.scalar(select(func.count()).select_from(model))
                 for name, model in (("invitations", Invitation), ("outbox", OutboxMessage),
                                     ("outbox_events", OutboxEvent),
                                     ("invitation_events", InvitationEvent))}
    return ", ".join(f"{name} {count}" for name, count in sizes.items()).replace(
        ", outbox_events", ",\n  outbox_events")


# --- the baselines: the bare SQL behind each page --------------------------------------------

Query = tuple[TextClause, dict[str, object]]

_FUNNEL = (
    "SELECT status, coalesce(last_channel, 'email'), count(*) FROM invitations "
    "WHERE survey_id = :survey GROUP BY status, coalesce(last_channel, 'email')",
    "SELECT o.status, o.channel, count(*) FROM outbox o JOIN invitations i "
    "ON i.id = o.invitation_id WHERE i.survey_id = :survey AND o.kind = 'invitation' "
    "GROUP BY o.status, o.channel",
    "SELECT o.channel, count(DISTINCT o.invitation_id) FROM outbox o JOIN outbox_events e "
    "ON e.outbox_id = o.id JOIN invitations i ON i.id = o.invitation_id "
    "WHERE i.survey_id = :survey AND e.status = 'soft_bounce' GROUP BY o.channel",
    "SELECT coalesce(last_channel, 'email'), count(*) FROM invitations WHERE survey_id = "
    ":survey AND away_until >= :today AND status NOT IN ('finished', 'opted_out') GROUP BY 1",
    "SELECT coalesce(q.channel, 'email'), count(*) FROM desk_queries q JOIN invitations i "
    "ON i.id = q.invitation_id WHERE i.survey_id = :survey AND q.status = 'open' GROUP BY 1",
    # the strata
    "SELECT coalesce(r.sector, ''), r.landsdel, r.size_class, count(*), "
    "sum(i.status = 'started'), sum(i.status = 'finished'), sum(i.status = 'opted_out'), "
    "sum(i.status = 'bounced') FROM invitations i JOIN respondents r "
    "ON r.id = i.respondent_id WHERE i.survey_id = :survey GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    # the days
    "SELECT date(o.sent_at), count(*) FROM outbox o JOIN invitations i "
    "ON i.id = o.invitation_id WHERE i.survey_id = :survey AND o.sent_at IS NOT NULL "
    "GROUP BY 1",
    "SELECT date(e.at), count(*) FROM invitation_events e JOIN invitations i "
    "ON i.id = e.invitation_id WHERE i.survey_id = :survey AND e.status = 'finished' "
    "GROUP BY 1",
)
_LOG = ("SELECT e.at, o.id, o.kind, o.channel, o.recipient, e.status, e.detail, "
        "i.respondent_id, i.survey_id FROM outbox_events e JOIN outbox o ON o.id = e.outbox_id "
        "LEFT JOIN invitations i ON i.id = o.invitation_id ")
_LOG_ALL = _LOG + "ORDER BY e.id DESC LIMIT 200"
_LOG_STATUS = _LOG + "WHERE e.status = :status ORDER BY e.id DESC LIMIT 200"
_LOG_ADDRESS = _LOG + "WHERE o.recipient LIKE :pattern ESCAPE '/' ORDER BY e.id DESC LIMIT 200"
_ATTENTION = (
    "SELECT r.id, r.name, r.email, i.survey_id, r.sector, r.landsdel, r.size_class, "
    "coalesce(i.last_contact_at, i.updated_at) AS since FROM invitations i JOIN respondents r "
    "ON r.id = i.respondent_id WHERE i.status = 'started' AND "
    "coalesce(i.last_contact_at, i.updated_at) < :before ORDER BY since LIMIT 500",
    "SELECT r.id, r.name, r.email, i.survey_id, r.sector, r.landsdel, r.size_class, "
    "i.updated_at FROM invitations i JOIN respondents r ON r.id = i.respondent_id "
    "WHERE i.status = 'bounced' ORDER BY r.sector, r.landsdel, r.name LIMIT 500",
)
_DEAD = ("SELECT o.id, o.kind, o.channel, o.recipient, o.attempts, (SELECT e.detail FROM "
         "outbox_events e WHERE e.outbox_id = o.id ORDER BY e.id DESC LIMIT 1) FROM outbox o "
         "WHERE o.status = 'dead' ORDER BY o.id DESC LIMIT 500")
_QUARANTINE = ("SELECT id, channel, error, received_at, raw FROM inbox WHERE status = 'failed' "
               "ORDER BY id")
_HEALTH = (
    "SELECT name, at, detail FROM heartbeats",
    "SELECT min(next_attempt_at) FROM outbox WHERE channel = 'email' AND status IN "
    "('queued', 'retry', 'sending') AND next_attempt_at <= :now",
    "SELECT count(*) FROM outbox WHERE channel = 'email' AND sent_at > :hour_ago",
    "SELECT count(DISTINCT e.outbox_id) FROM outbox_events e JOIN outbox o "
    "ON o.id = e.outbox_id WHERE o.channel = 'email' AND e.status = 'bounced' "
    "AND e.at > :hour_ago",
    "SELECT max(sent_at) FROM outbox WHERE channel = 'email'",
    "SELECT max(sent_at) FROM outbox WHERE channel = 'telegram'",
    "SELECT min(e.at) FROM outbox_events e JOIN outbox o ON o.id = e.outbox_id "
    "WHERE o.channel = 'email' AND e.status IN ('retry', 'dead') AND e.at > "
    "(SELECT max(sent_at) FROM outbox WHERE channel = 'email')",
    "SELECT status, channel, count(*) FROM outbox WHERE status IN "
    "('queued', 'retry', 'sending', 'dead') GROUP BY status, channel",
    "SELECT status, count(*) FROM inbox WHERE status IN ('received', 'failed') GROUP BY status",
    "SELECT max(received_at) FROM inbox WHERE channel = 'email'",
    "SELECT max(received_at) FROM inbox WHERE channel = 'telegram'",
)
_DESK = ("SELECT q.id, q.created_at, q.text, q.channel, r.id, r.name, r.role, r.unit_type, "
         "r.municipality_name, r.email, i.survey_id, i.session_state FROM desk_queries q "
         "JOIN invitations i ON i.id = q.invitation_id JOIN respondents r "
         "ON r.id = i.respondent_id WHERE q.status = 'open' ORDER BY q.created_at, q.id "
         "LIMIT 500")
_RESPONDENT = (
    "SELECT id, name, email, municipality_name, municipality_no, role, sector, unit_type, "
    "landsdel, size_class FROM respondents WHERE id = :rid",
    "SELECT id, survey_id, status, reminders_sent, last_channel FROM invitations "
    "WHERE respondent_id = :rid ORDER BY id",
    "SELECT e.id, e.at, e.status, e.previous, e.reason, i.survey_id FROM invitation_events e "
    "JOIN invitations i ON i.id = e.invitation_id WHERE i.respondent_id = :rid",
    "SELECT e.id, e.at, e.status, e.detail, e.attempt, e.next_at, o.kind, o.invitation_id, "
    "i.survey_id FROM outbox_events e JOIN outbox o ON o.id = e.outbox_id "
    "JOIN invitations i ON i.id = o.invitation_id WHERE i.respondent_id = :rid",
    "SELECT e.id, e.at, e.status, e.detail, m.classification, m.channel, i.survey_id "
    "FROM inbox_events e JOIN inbox m ON m.id = e.inbox_id JOIN invitations i "
    "ON i.id = m.invitation_id WHERE i.respondent_id = :rid",
)


@dataclass(frozen=True)
class Page:
    """A page to request, and the bare queries for what it shows."""

    path: str
    queries: Callable[[dt.datetime], list[Query]]


def _all(sqls: Sequence[str], **params: object) -> list[Query]:
    return [(text(sql), params) for sql in sqls]


def _dashboard(now: dt.datetime) -> list[Query]:
    return _all(_FUNNEL, survey=SURVEY, today=now.date().isoformat())


def _health(now: dt.datetime) -> list[Query]:
    return _all(_HEALTH, now=_stamp(now), hour_ago=_stamp(now - dt.timedelta(hours=1)))


PAGES = (
    Page("/dashboard", _dashboard),
    Page("/dashboard?format=csv", _dashboard),
    Page("/log", lambda _now: _all([_LOG_ALL])),
    Page("/log?status=dead", lambda _now: _all([_LOG_STATUS], status="dead")),
    Page("/log?address=leder1", lambda _now: _all([_LOG_ADDRESS], pattern="%leder1%")),
    Page("/attention", lambda now: _all(_ATTENTION,
                                        before=_stamp(now - dt.timedelta(days=7)))),
    Page("/outbox", lambda _now: _all([_DEAD])),
    Page("/quarantine", lambda _now: _all([_QUARANTINE])),
    Page("/health", _health),
    Page("/desk", lambda _now: _all([_DESK])),
    Page("/respondent/1", lambda _now: _all(_RESPONDENT, rid=1)),
)


def bare(engine: Engine, queries: list[Query]) -> float:
    """Seconds to run `queries` on one pooled connection and fetch every row."""
    started = time.perf_counter()
    with engine.connect() as conn:
        for statement, params in queries:
            conn.execute(statement, params).all()
    return time.perf_counter() - started


def fetch(visitor: Visitor, path: str) -> float:
    """Seconds from the request to the full response (which must be a 200)."""
    started = time.perf_counter()
    response = visitor.http.get(path)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {response.status_code}")
    return seconds


# --- statistics and printing ----------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0–1), by the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _spread(values: Sequence[float]) -> str:
    return f"{min(values):.1f}–{max(values):.1f}"


@dataclass
class PageResult:
    #: Requests (and baseline runs) per round.
    count: int = 0
    svarbot: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)


def measure_pages(run: WebRun, engine: Engine, pairs: int,
                  most: int) -> dict[str, PageResult]:
    """Every page, `pairs` rounds of baseline then svarbot; see the module notes."""
    visitor = run.visitor(OPERATOR)
    results = {page.path: PageResult() for page in PAGES}
    for page in PAGES:  # warm-up (templates compiled, pages cached), and how long one takes
        took = []
        for _ in range(WARM_UP):
            took.append(max(fetch(visitor, page.path),
                            bare(engine, page.queries(dt.datetime.now(dt.UTC)))))
        results[page.path].count = max(
            FEWEST, min(most, int(ROUND_SECONDS / statistics.median(took))))
    for pair in range(pairs):
        started = time.perf_counter()
        for page in PAGES:
            found = results[page.path]
            base = [bare(engine, page.queries(dt.datetime.now(dt.UTC)))
                    for _ in range(found.count)]
            mine = [fetch(visitor, page.path) for _ in range(found.count)]
            found.baseline += base
            found.svarbot += mine
            found.ratios.append(statistics.median(mine) / statistics.median(base))
        dashboard = results["/dashboard"]
        print(f"  round {pair + 1} of {pairs} in {time.perf_counter() - started:.0f} s: "
              f"/dashboard median {_ms(statistics.median(dashboard.svarbot[-dashboard.count:]))}"
              f" ms", flush=True)
    return results


def report_pages(results: dict[str, PageResult], pairs: int) -> list[str]:
    """Print the table; the pages that missed the goal."""
    print(f"pages: {pairs} rounds; n = requests measured over all rounds (as many runs of\n"
          f"the bare SQL); svarbot = HTTP request to full response, bare = the page's SQL\n"
          f"alone; ratio = svarbot/bare medians per round (median, min–max). Goal: p95 <\n"
          f"{GOAL_MS:.0f} ms.")
    print(f"{'page':<22}{'n':>4}{'p50 ms':>8}{'p95 ms':>8}{'bare ms':>9}{'ratio':>7} "
          f"{'spread':<12}{'goal':>5}")
    missed = []
    for path, found in results.items():
        p95 = percentile(found.svarbot, 0.95)
        ok = p95 * 1000 < GOAL_MS
        if not ok:
            missed.append(path)
        print(f"{path:<22}{len(found.svarbot):>4}{_ms(statistics.median(found.svarbot)):>8}"
              f"{_ms(p95):>8}{_ms(statistics.median(found.baseline)):>9}"
              f"{statistics.median(found.ratios):>7.1f} {_spread(found.ratios):<12}"
              f"{'PASS' if ok else 'MISS':>5}")
    return missed


# --- the sender while the dashboard refreshes ------------------------------------------------


def service_settings(url: str, smtp_port: int) -> Settings:
    return Settings.model_validate({
        "database": {"url": url},
        "surveys": [{"id": SURVEY, "questionnaire": QUESTIONNAIRE, "target_rate": 0.5},
                    {"id": SEND_SURVEY, "questionnaire": QUESTIONNAIRE}],
        "web": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "email": {"smtp": {"host": "127.0.0.1", "port": smtp_port, "connections": CONNECTIONS,
                           "per_minute": UNLIMITED, "per_day": UNLIMITED, "timeout": 30}}})


class ServiceRun:
    """`svarbot run`'s parts (senders, dispatcher, web) in a thread; a context manager."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="service", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.service.run(self._stop, on_ready=lambda _s: self._ready.set())

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by __enter__
            self.error = exc
            self._ready.set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.service.web.port}"

    def wake_senders(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.service.notify_senders)

    def __enter__(self) -> ServiceRun:
        self._thread.start()
        if not self._ready.wait(30) or self.error is not None:
            raise RuntimeError(f"svarbot run did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "svarbot run did not stop"


class Refresher:
    """A thread requesting /dashboard every `period` seconds (start to start; at once when
    the last request took longer) while `running`."""

    def __init__(self, base: str, period: float) -> None:
        self.visitor = Visitor(base)
        if self.visitor.login(OPERATOR).status_code != 303:
            raise RuntimeError("cannot log in to svarbot run's web")
        self.period = period
        self.seconds: list[float] = []
        self._stop = threading.Event()

    def _run(self) -> None:
        due = time.perf_counter()
        while not self._stop.is_set():
            self.seconds.append(fetch(self.visitor, "/dashboard"))
            due += self.period
            self._stop.wait(max(0.0, due - time.perf_counter()))

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        self._stop.clear()
        thread = threading.Thread(target=self._run, name="refresher", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(60)

    def close(self) -> None:
        self.visitor.close()


@dataclass(frozen=True)
class SendRun:
    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def _waiting(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status.in_((OutboxStatus.QUEUED, OutboxStatus.SENDING,
                                      OutboxStatus.RETRY)))) or 0)


def send_once(run: ServiceRun, engine: Engine, settings: Settings, batch: int) -> SendRun:
    """Queue `batch` invitations of the second survey, wake the sender, wait until they are
    through: the time from the commit to the last result the worker recorded."""
    context = SurveyContext(settings=settings.surveys[1],
                            questionnaire=load_shipped(QUESTIONNAIRE))
    store = AnswerStore(LinkKey(b"bench-link-key-0123456789"))
    with transaction(session_factory(engine)) as session:
        first = int(session.scalar(select(func.max(OutboxMessage.id))) or 0)
        queued = queue_invitations(session, EmailChannel(settings), context, store,
                                   now=dt.datetime.now(dt.UTC), limit=batch)
    started = dt.datetime.now(dt.UTC)
    run.wake_senders()
    if queued != batch:
        raise RuntimeError(f"queued {queued} of {batch}: too few pending invitations")
    deadline = time.perf_counter() + 300
    while _waiting(engine):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{batch} messages not sent within 300 s")
        time.sleep(0.05)
    with engine.connect() as conn:
        sent, last = conn.execute(
            select(func.count(), func.max(OutboxMessage.sent_at))
            .where(OutboxMessage.id > first, OutboxMessage.status == OutboxStatus.SENT)).one()
    if sent != batch or last is None:
        raise RuntimeError(f"{sent} of {batch} sent")
    last_at = last if last.tzinfo else last.replace(tzinfo=dt.UTC)
    return SendRun(int(sent), (last_at - started).total_seconds())


#: Messages sent before the pairs (connections made, code warm).
SEND_WARM_UP = 200


def measure_sender(url: str, pairs: int, batch: int, period: float) -> None:
    """The sender's rate without (A) and with (B) the dashboard refreshing; see the notes."""
    sink = Sink()
    engine = open_database(url)
    expected = SEND_WARM_UP + 2 * pairs * batch
    try:
        settings = service_settings(url, sink.port)
        surveys = {s.id: SurveyContext(settings=s, questionnaire=load_shipped(s.questionnaire))
                   for s in settings.surveys}
        service = Service(settings=settings, session_factory=session_factory(engine),
                          store=AnswerStore(LinkKey(b"bench-link-key-0123456789")),
                          surveys=surveys, worker="bench")
        print(f"sender: {pairs} pairs of {batch} invitations, {CONNECTIONS} SMTP connections, "
              f"the sink in its\nown process; A: no web traffic, B: /dashboard every "
              f"{period:g} s (svarbot run:\nsender and web in one event loop)", flush=True)
        print(f"{'pair':>4} {'first':<6}{'A msg/s':>9}{'B msg/s':>9}{'B/A':>6}"
              f"{'B pages':>9}{'B s':>7}")
        rates: dict[str, list[float]] = {"A": [], "B": []}
        ratios: list[float] = []
        with ServiceRun(service) as run:
            refresher = Refresher(run.base, period)
            try:
                fetch(refresher.visitor, "/dashboard")
                send_once(run, engine, settings, SEND_WARM_UP)
                for pair in range(pairs):
                    order = ("A", "B") if pair % 2 == 0 else ("B", "A")
                    got: dict[str, SendRun] = {}
                    pages = 0
                    for kind in order:
                        if kind == "B":
                            before = len(refresher.seconds)
                            with refresher.running():
                                got[kind] = send_once(run, engine, settings, batch)
                            pages = len(refresher.seconds) - before
                        else:
                            got[kind] = send_once(run, engine, settings, batch)
                        rates[kind].append(got[kind].rate)
                    ratio = got["B"].rate / got["A"].rate
                    ratios.append(ratio)
                    print(f"{pair + 1:>4} {order[0]:<6}{got['A'].rate:>9.0f}"
                          f"{got['B'].rate:>9.0f}{ratio:>6.2f}{pages:>9}"
                          f"{got['B'].seconds:>7.1f}", flush=True)
                loaded = list(refresher.seconds)
            finally:
                refresher.close()
    finally:
        received = sink.stop()
        engine.dispose()
    print(f"sender: A {statistics.median(rates['A']):.0f} msg/s, B "
          f"{statistics.median(rates['B']):.0f} msg/s (medians of {pairs})\n"
          f"  B/A = {statistics.median(ratios):.2f} (median; spread {min(ratios):.2f}–"
          f"{max(ratios):.2f}); goal: unchanged (≈ 1.0)")
    if loaded:
        print(f"  /dashboard during B and the queueing before it: {len(loaded)} requests, "
              f"p50\n  {_ms(statistics.median(loaded))} ms, p95 "
              f"{_ms(percentile(loaded, 0.95))} ms")
    print(f"  the sink accepted {received} messages (expected {expected})")


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invitations", type=int, default=100_000,
                        help="invitations in the campaign (default 100000)")
    parser.add_argument("--pairs", type=int, default=5,
                        help="rounds of baseline and page, per page (default 5)")
    parser.add_argument("--requests", type=int, default=30,
                        help="most requests per page and round (default 30; fewer for slow "
                             "pages, see ROUND_SECONDS)")
    parser.add_argument("--send", type=int, default=2000,
                        help="messages per sender run (default 2000)")
    parser.add_argument("--send-pairs", type=int, default=3,
                        help="A/B pairs of sender runs (default 3)")
    parser.add_argument("--refresh", type=float, default=0.5,
                        help="seconds between dashboard requests in B (default 0.5)")
    args = parser.parse_args()
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="svarbot-web-pages-") as folder:
        path = Path(folder) / "web.db"
        url = f"sqlite:///{path}"
        started = time.perf_counter()
        send_total = min(args.invitations, args.send * 2 * args.send_pairs + SEND_WARM_UP)
        took = build(path, args.invitations, send_total)
        engine = open_database(url)
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in took.items())
        print(f"setup: {args.invitations} invitations with their history in "
              f"{time.perf_counter() - started:.1f} s\n  ({steps})\n  {table_sizes(engine)}",
              flush=True)
        try:
            settings = service_settings(url, 8025)
            ctx = WebContext(settings=settings, factory=session_factory(engine),
                             surveys={s.id: SurveyContext(
                                 settings=s, questionnaire=load_shipped(s.questionnaire))
                                 for s in settings.surveys},
                             store=AnswerStore(LinkKey(b"bench-link-key-0123456789")))
            with WebRun(ctx) as run:
                results = measure_pages(run, engine, args.pairs, args.requests)
        finally:
            engine.dispose()
        missed = report_pages(results, args.pairs)
        if missed:
            print(textwrap.fill(f"missed the goal ({len(missed)}): {', '.join(missed)}",
                                width=78, initial_indent="  ", subsequent_indent="    "))
        measure_sender(url, args.send_pairs, args.send, args.refresh)
    print(f"wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
