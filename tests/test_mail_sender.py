"""The SMTP sender against a real aiosmtpd server on loopback (tests/smtp_servers.py).

Backoff waits are skipped with a fake clock rather than slept through; everything that waits
on the real world (the server, the database, the sender's loop) waits on a condition with a
deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from smtp_servers import SmtpSink, closing, policy, too_big, try_later, unknown_user
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.orm import Session, sessionmaker
from storage_support import add_people

from bot.channels.email.compose import OutgoingMail
from bot.channels.email.smtp import Sender, SenderError, compose_render, wire_bytes
from bot.channels.ratelimit import DAY, RateLimiter
from bot.cli.outbox import outbox as outbox_cli
from bot.config import Settings
from storage import outbox
from storage.db import session_factory, transaction
from storage.migrate import init_database, open_database
from storage.outbox import Claimed
from storage.schema import Invitation, InvitationStatus, OutboxMessage, OutboxStatus

pytest_plugins = ["storage_backends"]

START = datetime.now(UTC).replace(microsecond=0)


class FakeClock:
    """Time that moves only when told to (or when the rate limiter sleeps)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []
        self.on_sleep: list[object] = []
        self.sink: SmtpSink | None = None

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return START + timedelta(seconds=self.t)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.on_sleep.append(self.sink.count if self.sink is not None else None)
        self.t += seconds
        await asyncio.sleep(0)

    def advance(self, delta: timedelta) -> None:
        self.t += delta.total_seconds()


def render(item: Claimed) -> tuple[EmailMessage, list[str]]:
    """A tiny message carrying the row's Message-ID (what tests match on)."""
    message = EmailMessage()
    message["From"] = "Svarbot <svar@svarbot.localhost>"
    message["To"] = item.recipient
    message["Subject"] = f"Spørsmål {item.id}"
    message["Message-ID"] = item.message_id or f"<{item.id}@x>"
    message.set_content(f"Hei {item.id}\n.dot line stays\n")
    return message, [item.recipient]


@pytest.fixture
def db(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """The sender's database: a fresh migrated SQLite file (conftest's `factory`)."""
    return factory


def settings(sink: SmtpSink, *, dev: str | None = None, **smtp: object) -> Settings:
    return Settings.model_validate({
        "email": {"smtp": {"host": sink.host, "port": sink.port, "connections": 1,
                           "timeout": 5, **smtp}},
        "dev_mode": {"redirect_to": dev}})


def queue(factory: sessionmaker[Session], addresses: list[str], *, kind: str = "page",
          invitation_id: int | None = None, now: datetime = START,
          payload: dict[str, object] | None = None) -> list[int]:
    ids = []
    with transaction(factory) as session:
        for address in addresses:
            n = session.scalar(select(func.count()).select_from(OutboxMessage))
            row = outbox.enqueue(session, idempotency_key=f"k{n}", channel="email", kind=kind,
                                 recipient=address, payload=payload or {"n": n},
                                 message_id=f"<m{n}@svarbot.localhost>",
                                 invitation_id=invitation_id, now=now)
            assert row is not None
            ids.append(row.id)
    return ids


def bulk_queue(factory: sessionmaker[Session], count: int) -> None:
    """`count` queued rows in one statement (enqueue is tested elsewhere; this is fast)."""
    with transaction(factory) as session:
        session.execute(insert(OutboxMessage), [
            {"idempotency_key": f"bulk{i}", "channel": "email", "kind": "page",
             "recipient": f"p{i}@example.org", "payload": {"n": i},
             "message_id": f"<bulk{i}@svarbot.localhost>", "status": "queued", "attempts": 0,
             "next_attempt_at": START, "created_at": START} for i in range(count)])


def row(factory: sessionmaker[Session], outbox_id: int) -> OutboxMessage:
    with transaction(factory) as session:
        found = session.get(OutboxMessage, outbox_id)
        assert found is not None
        return found


def statuses(factory: sessionmaker[Session]) -> Counter[str]:
    with transaction(factory) as session:
        return Counter(str(s) for s in session.scalars(select(OutboxMessage.status)))


def events(factory: sessionmaker[Session], outbox_id: int) -> list[str]:
    with transaction(factory) as session:
        return [e.status for e in outbox.history(session, outbox_id)]


def rounds(sender: Sender, times: int = 1) -> list[int]:
    async def go() -> list[int]:
        try:
            return [await sender.send_batch() for _ in range(times)]
        finally:
            await sender.close()

    return asyncio.run(go())


# --- delivery -------------------------------------------------------------------------------


def test_messages_go_out_as_exact_bytes_and_are_marked_sent(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    ids = queue(db, ["a@example.org", "b@example.org", "c@example.org"])
    sender = Sender(session_factory=db, settings=settings(sink), worker="t", render=render)
    assert rounds(sender) == [3]
    received = sink.wait_for(3)
    with transaction(db) as session:
        expected = {}
        for outbox_id in ids:
            claimed = outbox.Claimed(
                id=outbox_id, channel="email", kind="page",
                recipient=session.get(OutboxMessage, outbox_id).recipient,  # type: ignore[union-attr]
                message_id=f"<m{outbox_id - 1}@svarbot.localhost>", payload=None, attempts=1,
                invitation_id=None, created_at=START, deadline_at=None)
            expected[claimed.recipient] = wire_bytes(render(claimed)[0])
    assert {m.rcpt_tos[0]: m.data for m in received} == expected
    assert {m.mail_from for m in received} == {"svar@svarbot.localhost"}
    for outbox_id in ids:
        sent = row(db, outbox_id)
        assert (sent.status, sent.payload, sent.attempts) == (OutboxStatus.SENT, None, 1)
        assert events(db, outbox_id) == ["queued", "sent"]


def test_default_render_and_dev_mode_send_everything_to_the_test_address(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        invitation = add_people(session, "s1", 1)[0]
        token = invitation.token
    mail = OutgoingMail(kind="invitation", lang="nb", token=token,
                        to_address="leder0@kommune0.example", to_name="Leder Nummer0",
                        survey_title="Innovasjonsbarometeret", prompts=("Velkommen.",))
    [msg] = queue(db, ["leder0@kommune0.example"], kind="invitation",
                  invitation_id=invitation.id, payload=mail.to_payload())
    sender = Sender(session_factory=db, settings=settings(sink, dev="test@svarbot.localhost"),
                    worker="t")
    assert rounds(sender) == [1]
    [received] = sink.wait_for(1)
    assert received.rcpt_tos == ("test@svarbot.localhost",)
    assert b"\r\nTo: test@svarbot.localhost\r\n" in received.data
    assert b"Message-ID: <m0@svarbot.localhost>" in received.data
    assert row(db, msg).status == OutboxStatus.SENT
    with transaction(db) as session:
        assert session.get(Invitation, invitation.id).status == InvitationStatus.INVITED  # type: ignore[union-attr]


def test_dev_mode_overrides_what_a_custom_renderer_says(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    queue(db, ["real@example.org", "other@example.org"])
    sender = Sender(session_factory=db, settings=settings(sink, dev="test@svarbot.localhost"),
                    worker="t", render=render)
    assert rounds(sender) == [2]
    assert {m.rcpt_tos for m in sink.wait_for(2)} == {("test@svarbot.localhost",)}


def test_wire_bytes_are_the_standard_generators_bytes(sink: SmtpSink,
                                                       db: sessionmaker[Session]) -> None:
    """wire_bytes flattens faster than as_bytes; the bytes (what DKIM signs) must not differ."""
    with transaction(db) as session:
        invitation = add_people(session, "s1", 1)[0]
    mail = OutgoingMail(kind="invitation", lang="nb", token=invitation.token,
                        to_address="leder0@kommune0.example", to_name="Leder Nummer0",
                        survey_title="Innovasjonsbarometeret",
                        prompts=("Velkommen.\r\nLinje to\rog tre\n\n", "Æ ø å " * 40))
    item = Claimed(id=1, channel="email", kind="invitation", recipient=mail.to_address,
                   message_id="<m1@svarbot.localhost>", payload=mail.to_payload(), attempts=1,
                   invitation_id=invitation.id, created_at=START, deadline_at=None)
    for message in (compose_render(settings(sink), FakeClock())(item)[0], render(item)[0]):
        assert wire_bytes(message) == message.as_bytes(
            policy=message.policy.clone(linesep="\r\n"))


def test_a_batch_is_claimed_and_recorded_in_two_transactions(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    ids = queue(db, [f"p{i}@example.org" for i in range(20)])
    sink.fail("p3@example.org", unknown_user())
    sink.fail("p4@example.org", try_later(1))
    sender = Sender(session_factory=db, settings=settings(sink, connections=3, per_minute=100),
                    worker="t", render=render, batch_size=50)
    commits: list[int] = []
    event.listen(db.kw["bind"], "commit", lambda _connection: commits.append(1))
    assert rounds(sender) == [20]
    assert len(commits) == 2
    assert statuses(db) == Counter({"sent": 18, "bounced": 1, "retry": 1})
    assert events(db, ids[4]) == ["queued", "retry"]
    assert sink.wait_for(18)


# --- exactly once ---------------------------------------------------------------------------


def _run_until_sent(senders: list[Sender], factory: sessionmaker[Session], total: int,
                    timeout: float = 20.0) -> float:
    """Run the senders until `total` rows are sent; the seconds it took."""

    async def go() -> float:
        stop = asyncio.Event()
        started = time.perf_counter()
        tasks = [asyncio.create_task(s.run(stop)) for s in senders]
        deadline = time.monotonic() + timeout
        try:
            while statuses(factory)["sent"] < total:
                assert time.monotonic() < deadline, statuses(factory)
                assert not any(t.done() for t in tasks)
                await asyncio.sleep(0.05)
            return time.perf_counter() - started
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)

    return asyncio.run(go())


def _assert_each_once(sink: SmtpSink, total: int) -> None:
    received = sink.wait_for(total)
    ids = Counter(m.data.split(b"Message-ID: ")[1].split(b"\r\n")[0] for m in received)
    duplicates = {k: n for k, n in ids.items() if n > 1}
    assert (len(ids), duplicates) == (total, {})


def test_eight_connections_send_each_message_exactly_once_on_sqlite(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    bulk_queue(db, 500)
    sender = Sender(session_factory=db, settings=settings(sink, connections=8, per_minute=10_000),
                    worker="t", render=render, batch_size=5, idle_seconds=0.05)
    _run_until_sent([sender], db, 500)
    _assert_each_once(sink, 500)
    assert sink.connections == 8
    time.sleep(0.2)
    assert sink.count == 500


def test_two_senders_on_postgresql_send_each_message_exactly_once(
        sink: SmtpSink, postgres_database: str) -> None:
    init_database(postgres_database)
    migrated_url = postgres_database
    engines: list[Engine] = [open_database(migrated_url) for _ in range(2)]
    try:
        factories = [session_factory(e) for e in engines]
        bulk_queue(factories[0], 500)
        config = settings(sink, connections=4, per_minute=10_000)
        senders = [Sender(session_factory=f, settings=config, worker=f"proc{i}", render=render,
                          batch_size=5, idle_seconds=0.05) for i, f in enumerate(factories)]
        _run_until_sent(senders, factories[0], 500)
        _assert_each_once(sink, 500)
        with transaction(factories[0]) as session:
            assert set(session.scalars(select(OutboxMessage.attempts))) == {1}
    finally:
        for engine in engines:
            engine.dispose()


# --- failures -------------------------------------------------------------------------------


def test_try_later_twice_then_accepted_ends_sent_after_three_attempts(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    sink.fail("busy@example.org", try_later(2))
    [msg] = queue(db, ["busy@example.org"])
    clock = FakeClock()
    sender = Sender(session_factory=db, settings=settings(sink), worker="t", render=render,
                    clock=clock)

    async def go() -> list[int]:
        handled = []
        for _ in range(3):
            handled.append(await sender.send_batch())
            handled.append(await sender.send_batch())  # not due yet: backoff
            clock.advance(timedelta(hours=1))
        await sender.close()
        return handled

    assert asyncio.run(go()) == [1, 0, 1, 0, 1, 0]
    sent = row(db, msg)
    assert (sent.status, sent.attempts) == (OutboxStatus.SENT, 3)
    assert events(db, msg) == ["queued", "retry", "retry", "sent"]
    assert len(sink.wait_for(1)) == 1


def test_unknown_user_bounces_the_message_and_the_invitation(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    with transaction(db) as session:
        invitation = add_people(session, "s1", 1)[0]
    sink.fail("gone@example.org", unknown_user())
    sink.fail("huge@example.org", too_big())
    [msg] = queue(db, ["gone@example.org"], kind="invitation", invitation_id=invitation.id)
    [big] = queue(db, ["huge@example.org"])
    sender = Sender(session_factory=db, settings=settings(sink), worker="t", render=render)
    assert rounds(sender) == [2]
    assert row(db, msg).status == OutboxStatus.BOUNCED
    assert row(db, big).status == OutboxStatus.BOUNCED
    with transaction(db) as session:
        assert session.get(Invitation, invitation.id).status == InvitationStatus.BOUNCED  # type: ignore[union-attr]
        [_, bounced] = outbox.history(session, msg)
        assert bounced.detail == "RCPT: 550 5.1.1 User unknown"
    assert sink.count == 0


def test_policy_refusal_is_ours_not_the_recipients(
        sink: SmtpSink, db: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    with transaction(db) as session:
        invitation = add_people(session, "s1", 1)[0]
    sink.fail("someone@example.org", policy())
    [msg] = queue(db, ["someone@example.org"], kind="invitation", invitation_id=invitation.id)
    sender = Sender(session_factory=db, settings=settings(sink), worker="t", render=render)
    with caplog.at_level(logging.INFO, logger="bot.channels.email.smtp"):
        assert rounds(sender) == [1]
    assert row(db, msg).status == OutboxStatus.RETRY
    with transaction(db) as session:
        assert session.get(Invitation, invitation.id).status == InvitationStatus.PENDING  # type: ignore[union-attr]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not the recipient" in warnings[0].getMessage()
    assert all("@" not in r.getMessage() for r in caplog.records)


def test_421_and_dropped_connections_are_retried_on_a_new_connection(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    sink.fail("flaky@example.org", closing(1))
    sink.drop_after = 2
    ids = queue(db, ["flaky@example.org"] + [f"p{i}@example.org" for i in range(5)])
    clock = FakeClock()
    sender = Sender(session_factory=db, settings=settings(sink), worker="t", render=render,
                    clock=clock)

    async def go() -> None:
        deadline = time.monotonic() + 10
        while statuses(db)["sent"] < len(ids):
            assert time.monotonic() < deadline
            await sender.send_batch()
            clock.advance(timedelta(hours=1))
        await sender.close()

    asyncio.run(go())
    assert events(db, ids[0]) == ["queued", "retry", "sent"]
    _assert_each_once(sink, len(ids))
    flaky = next(m for m in sink.messages if m.rcpt_tos == ("flaky@example.org",))
    assert flaky.connection > 1
    assert sink.connections >= 3
    assert max(Counter(m.connection for m in sink.messages).values()) <= 2


def test_retry_window_passed_is_dead_and_outbox_retry_brings_it_back(
        sink: SmtpSink, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    init_database(url)
    engine = open_database(url)
    try:
        factory = session_factory(engine)
        rule = sink.fail("down@example.org", try_later(1000))
        [msg] = queue(factory, ["down@example.org"])
        clock = FakeClock()
        sender = Sender(session_factory=factory, settings=settings(sink, retry_for_hours=2),
                        worker="t", render=render, clock=clock)

        async def attempt() -> int:
            handled = await sender.send_batch()
            clock.advance(timedelta(hours=1))
            return handled

        async def until_dead() -> list[int]:
            try:
                return [await attempt() for _ in range(4)]
            finally:
                await sender.close()

        assert asyncio.run(until_dead()) == [1, 1, 1, 0]
        assert row(factory, msg).status == OutboxStatus.DEAD
        assert events(factory, msg) == ["queued", "retry", "retry", "dead"]

        config = tmp_path / "config.yaml"
        config.write_text(f"database:\n  url: {url}\n", encoding="utf-8")
        result = CliRunner().invoke(outbox_cli, ["retry", "--all-dead", "--config", str(config)])
        assert (result.exit_code, result.output.strip()) == (0, "replayed 1 dead message")
        assert row(factory, msg).status == OutboxStatus.QUEUED
        rule.times = 0
        assert rounds(sender) == [1]
        assert row(factory, msg).status == OutboxStatus.SENT
        assert events(factory, msg)[-2:] == ["queued", "sent"]
        assert sink.wait_for(1)[0].rcpt_tos == ("down@example.org",)
    finally:
        engine.dispose()


def test_expired_lease_of_a_dead_worker_is_taken_over(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    [msg] = queue(db, ["a@example.org"])
    clock = FakeClock()
    with transaction(db) as session:
        assert len(outbox.claim(session, worker="crashed", limit=5, now=clock.now())) == 1
    sender = Sender(session_factory=db, settings=settings(sink), worker="t", render=render,
                    clock=clock)

    async def go() -> list[int]:
        first = await sender.send_batch()
        clock.advance(outbox.DEFAULT_LEASE + timedelta(seconds=1))
        second = await sender.send_batch()
        await sender.close()
        return [first, second]

    assert asyncio.run(go()) == [0, 1]
    sent = row(db, msg)
    assert (sent.status, sent.attempts) == (OutboxStatus.SENT, 2)
    assert sink.count == 1


def test_start_tls_required_but_not_offered_never_sends_in_clear(
        sink: SmtpSink, db: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    [msg] = queue(db, ["a@example.org"])
    sender = Sender(session_factory=db, settings=settings(sink, start_tls=True), worker="t",
                    render=render)
    with caplog.at_level(logging.WARNING, logger="bot.channels.email.smtp"):
        assert rounds(sender) == [1]
    assert row(db, msg).status == OutboxStatus.RETRY
    with transaction(db) as session:
        assert "STARTTLS" in outbox.history(session, msg)[-1].detail
    assert len(caplog.records) == 1
    time.sleep(0.1)
    assert sink.count == 0


def test_login_uses_the_password_from_the_environment(
        db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpSink(auth=("svarbot", "s3cret")) as sink:
        config = settings(sink, username="svarbot",
                          password_env="SVARBOT_TEST_SMTP_PASSWORD")  # noqa: S106 - a name
        monkeypatch.delenv("SVARBOT_TEST_SMTP_PASSWORD", raising=False)
        with pytest.raises(SenderError, match="SVARBOT_TEST_SMTP_PASSWORD is not set"):
            Sender(session_factory=db, settings=config, worker="t", render=render)
        monkeypatch.setenv("SVARBOT_TEST_SMTP_PASSWORD", "wrong")
        [bad] = queue(db, ["a@example.org"])
        assert rounds(Sender(session_factory=db, settings=config, worker="t",
                             render=render)) == [1]
        assert row(db, bad).status == OutboxStatus.RETRY
        monkeypatch.setenv("SVARBOT_TEST_SMTP_PASSWORD", "s3cret")
        [good] = queue(db, ["b@example.org"])
        assert rounds(Sender(session_factory=db, settings=config, worker="t",
                             render=render)) == [1]
        assert row(db, good).status == OutboxStatus.SENT
        assert sink.wait_for(1)[0].rcpt_tos == ("b@example.org",)


# --- pacing and the loop --------------------------------------------------------------------


def test_rate_limit_sends_five_a_minute_then_waits(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    queue(db, [f"p{i}@example.org" for i in range(8)])
    clock = FakeClock()
    clock.sink = sink
    sender = Sender(session_factory=db, settings=settings(sink, per_minute=5), worker="t",
                    render=render, clock=clock)
    assert rounds(sender, 2) == [5, 3]
    assert clock.slept[0] == pytest.approx(60.0)
    assert clock.on_sleep[0] == 5
    assert sink.wait_for(8)


def test_day_budget_counts_what_was_sent_before_a_restart(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    ids = queue(db, ["a@example.org", "b@example.org", "c@example.org"])
    with transaction(db) as session:
        for outbox_id in ids[:2]:
            outbox.mark_sent(session, outbox_id, now=START - timedelta(hours=23))
    clock = FakeClock()
    sender = Sender(session_factory=db, settings=settings(sink, per_day=2), worker="t",
                    render=render, clock=clock)
    assert sender.limiter.used_today == 2
    assert sender.limiter.delay() == pytest.approx(3600.0)
    limiter = RateLimiter(per_minute=100, per_day=3, clock=clock, sent_ago=[10, 20, 3600])
    assert limiter.delay() == pytest.approx(DAY - 3600)
    assert limiter.try_acquire(1) == 0


def test_run_wakes_on_notify_and_stops_promptly(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    sender = Sender(session_factory=db, settings=settings(sink, connections=2, per_minute=1),
                    worker="t", render=render, idle_seconds=30)

    async def go() -> tuple[float, float]:
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run(stop))
        await asyncio.sleep(0.2)  # both workers are idle now (30 s idle wait)
        queue(db, ["a@example.org", "b@example.org"])
        started = time.monotonic()
        sender.notify()
        while sink.count < 1:
            assert time.monotonic() - started < 3
            await asyncio.sleep(0.01)
        woke = time.monotonic() - started
        # The second message waits a minute for the limit; stopping must not wait for it.
        await asyncio.sleep(0.1)
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, timeout=3)
        return woke, time.monotonic() - started

    woke, stopped = asyncio.run(go())
    assert woke < 1.0
    assert stopped < 1.0
    assert statuses(db) == Counter({"sent": 1, "queued": 1})


def test_stopping_finishes_messages_in_flight_and_hands_back_the_rest(
        sink: SmtpSink, db: sessionmaker[Session]) -> None:
    bulk_queue(db, 60)
    stop = asyncio.Event()
    rendered: list[int] = []

    def render_then_stop(item: Claimed) -> tuple[EmailMessage, list[str]]:
        rendered.append(item.id)
        if len(rendered) == 5:
            stop.set()
        return render(item)

    sender = Sender(session_factory=db, settings=settings(sink, connections=2, per_minute=1000),
                    worker="t", render=render_then_stop, batch_size=40)

    async def go() -> float:
        task = asyncio.create_task(sender.run(stop))
        await asyncio.wait_for(stop.wait(), timeout=5)
        started = time.monotonic()
        await asyncio.wait_for(task, timeout=5)
        return time.monotonic() - started

    assert asyncio.run(go()) < 1.0
    counts = statuses(db)
    # Every message a connection started was sent and recorded; the claimed rest is queued
    # again at once, with no attempt counted, for any worker (not after the lease).
    assert counts["sent"] == len(rendered) == sink.count
    assert counts["queued"] == 60 - len(rendered)
    with transaction(db) as session:
        waiting = session.scalars(select(OutboxMessage)
                                  .where(OutboxMessage.status == "queued")).all()
        assert {(m.attempts, m.claimed_by) for m in waiting} == {(0, None)}


@pytest.mark.parametrize("kind", ["invitation", "reminder", "page", "confirmation", "closed"])
@pytest.mark.parametrize("lang", ["nb", "nn", "en"])
def test_composed_messages_take_the_fast_path_with_the_generators_bytes(kind: str,
                                                                          lang: str) -> None:
    """The direct writer for compose's messages gives exactly the generator's bytes."""
    from bot.channels.email.compose import render as compose
    from bot.channels.email.smtp import _composed_wire
    from bot.config import EmailSettings

    token = "abcdefghijklmnopqrstuvwxyz234567"  # noqa: S105 - an invitation token
    mail = OutgoingMail(kind=kind, lang=lang, token=token,
                        to_address="leder0@kommune0.example", to_name="Åse Ødegård-Lie",
                        survey_title="Innovasjonsbarometeret 2020",
                        prompts=("Velkommen.\r\nLinje to\rog tre\n\n", "Æ ø å " * 40,
                                 "1. Spørsmål\n   1) ja\n   2) nei"),
                        progress=(3, 31), contact="Kari Nordmann, KS",
                        in_reply_to="<a@b.example>", references=("<r@b.example>",))
    for redirect in (None, "test@svarbot.localhost"):
        message = compose(mail, message_id="<m1@svarbot.localhost>",
                          settings=EmailSettings(unsubscribe_url="https://x.example/u/{token}"),
                          redirect_to=redirect, now=START)
        fast = _composed_wire(message)
        assert fast is not None
        assert fast == message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        assert wire_bytes(message) == fast


def test_a_per_second_limit_spreads_a_burst_over_seconds() -> None:
    """A chat bot's broadcast limit: 30 a minute allows the whole minute's worth at once,
    `per_second` takes only that many in any one second; a pause stops everything."""
    clock = FakeClock()
    limiter = RateLimiter(per_minute=1500, per_day=10_000, per_second=25, clock=clock)
    assert limiter.try_acquire(100) == 25
    assert limiter.delay() == pytest.approx(1.0)
    clock.t += 1.0
    assert limiter.try_acquire(100) == 25
    limiter.pause(5)
    clock.t += 1.0
    assert limiter.try_acquire(100) == 0
    assert limiter.delay() == pytest.approx(4.0)
    clock.t += 4.0
    assert limiter.try_acquire(100) == 25


def test_spacing_spreads_sends_evenly_and_holds_them_during_a_pause() -> None:
    """At 10 a second each send leaves about 0.1 s after the one before (a little more: the
    margin), whatever was claimed at once; a flood-limit pause holds the ones in hand."""
    from bot.channels.ratelimit import PACE_MARGIN, Spacing

    clock = FakeClock()
    limiter = RateLimiter(per_minute=1000, per_day=10_000, per_second=10, clock=clock)
    spacing = Spacing(10, limiter, clock)

    async def sends(n: int) -> list[float]:
        times = []
        for _ in range(n):
            await spacing.take()
            times.append(clock.t)
        return times

    times = asyncio.run(sends(5))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1 / PACE_MARGIN] * 4)
    limiter.pause(3.0)
    start = clock.t
    [after] = asyncio.run(sends(1))
    assert after - start == pytest.approx(3.0)
