"""The outbox on SQLite and PostgreSQL: idempotent enqueue, exactly-once claims with leases,
backoff and deadlines, bounces, operator replay, and the `svarbot outbox` commands."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from storage_support import add_people

from bot.cli.outbox import outbox as outbox_cli
from storage import outbox
from storage.claim import OUTBOX, claim_statement
from storage.db import session_factory, transaction
from storage.migrate import init_database
from storage.schema import InvitationStatus, OutboxEvent, OutboxMessage, OutboxStatus

pytest_plugins = ["storage_backends"]

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def _queue(session: object, n: int, *, start: int = 0, **kwargs: object) -> list[int]:
    ids = []
    for i in range(start, start + n):
        row = outbox.enqueue(session, idempotency_key=f"key-{i}",  # type: ignore[arg-type]
                             channel=str(kwargs.get("channel", "email")),
                             kind=str(kwargs.get("kind", "page")),
                             recipient=f"person{i}@example.org", payload={"n": i},
                             message_id=f"<m{i}@svarbot.localhost>",
                             invitation_id=kwargs.get("invitation_id"),  # type: ignore[arg-type]
                             not_before=kwargs.get("not_before"),  # type: ignore[arg-type]
                             deadline=kwargs.get("deadline"),  # type: ignore[arg-type]
                             now=NOW)
        assert row is not None
        ids.append(row.id)
    return ids


def _row(engine: Engine, outbox_id: int) -> OutboxMessage:
    with transaction(session_factory(engine)) as session:
        row = session.get(OutboxMessage, outbox_id)
        assert row is not None
        return row


def _events(engine: Engine, outbox_id: int) -> list[tuple[str, str]]:
    with transaction(session_factory(engine)) as session:
        return [(e.status, e.detail) for e in outbox.history(session, outbox_id)]


# --- enqueue --------------------------------------------------------------------------------


def test_enqueue_is_idempotent_and_keeps_the_transaction_usable(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        first = outbox.enqueue(session, idempotency_key="wave-1/inv-1", channel="email",
                               kind="invitation", recipient="a@example.org",
                               payload={"x": 1}, message_id="<a@x>", now=NOW)
        again = outbox.enqueue(session, idempotency_key="wave-1/inv-1", channel="email",
                               kind="invitation", recipient="a@example.org",
                               payload={"x": 2}, message_id="<b@x>", now=NOW)
        assert first is not None
        assert again is None
        # The transaction is still healthy after the duplicate (PostgreSQL would say not).
        other = outbox.enqueue(session, idempotency_key="wave-1/inv-2", channel="email",
                               kind="invitation", recipient="b@example.org",
                               payload={"x": 3}, message_id="<c@x>", now=NOW)
        assert other is not None
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
        row = outbox.find_by_key(session, "wave-1/inv-1")
        assert row is not None
        assert row.payload == {"x": 1}
        assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 0)
        assert [e.status for e in outbox.history(session, row.id)] == ["queued"]
        assert outbox.find_by_message_id(session, "<a@x>") is not None


def test_a_key_inserted_by_a_racing_transaction_is_skipped_not_an_error(engine: Engine) -> None:
    """The check-first misses a row another transaction inserted; ON CONFLICT catches it."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        _queue(session, 1)
    with transaction(factory) as session:
        values = {"idempotency_key": "key-0", "channel": "email", "kind": "page",
                  "recipient": "x@example.org", "payload": {}, "message_id": "<other@x>",
                  "status": "queued", "attempts": 0, "next_attempt_at": NOW,
                  "deadline_at": None, "claimed_by": None, "created_at": NOW,
                  "sent_at": None}
        assert outbox._insert_new(session, values) is None
        assert _queue(session, 1, start=1)
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 2


# --- claiming -------------------------------------------------------------------------------


def test_claim_compiles_to_one_update_with_skip_locked_only_on_postgresql() -> None:
    statement = claim_statement(OUTBOX, dialect="postgresql", worker="w", limit=10, now=NOW,
                                lease=LEASE)
    pg = " ".join(str(statement.compile(dialect=postgresql.dialect())).split())
    assert pg.startswith("WITH claimed AS (SELECT outbox.id AS id FROM outbox WHERE")
    assert "ORDER BY outbox.next_attempt_at, outbox.id LIMIT" in pg
    assert "FOR UPDATE SKIP LOCKED) UPDATE outbox SET status=" in pg
    assert "attempts=(outbox.attempts +" in pg
    assert pg.endswith("FROM claimed WHERE outbox.id = claimed.id RETURNING outbox.id")
    assert " IN (SELECT" not in pg

    statement = claim_statement(OUTBOX, dialect="sqlite", worker="w", limit=10, now=NOW,
                                lease=LEASE)
    lite = " ".join(str(statement.compile(dialect=sqlite.dialect())).split())
    assert lite.startswith("WITH claimed AS (SELECT outbox.id AS id FROM outbox WHERE")
    assert "FOR UPDATE" not in lite
    assert ") UPDATE outbox SET status=?, attempts=(outbox.attempts + ?)" in lite
    assert lite.endswith("FROM claimed WHERE outbox.id = claimed.id RETURNING id")


def test_claim_takes_due_rows_once_and_sets_the_lease(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        due = _queue(session, 3)
        later = _queue(session, 1, start=3, not_before=NOW + timedelta(hours=1))
        other = _queue(session, 1, start=4, channel="telegram")
    with transaction(factory) as session:
        claimed = outbox.claim(session, worker="w1", limit=10, now=NOW, lease=LEASE)
    assert [c.id for c in claimed] == due
    assert claimed[0].payload == {"n": 0}
    assert claimed[0].attempts == 1
    assert claimed[0].created_at == NOW
    with transaction(factory) as session:
        assert outbox.claim(session, worker="w2", limit=10, now=NOW, lease=LEASE) == []
    row = _row(engine, due[0])
    assert (row.status, row.claimed_by) == (OutboxStatus.SENDING, "w1")
    assert outbox._utc(row.next_attempt_at) == NOW + LEASE
    with transaction(factory) as session:
        taken = outbox.claim(session, worker="w2", limit=10, now=NOW + timedelta(hours=1),
                             lease=LEASE)
        # An hour on: the deferred row is due, and w1's leases have expired (w1 died).
        assert [c.id for c in taken] == [*due, *later]
        assert [c.attempts for c in taken] == [2, 2, 2, 1]
        tg = outbox.claim(session, worker="w3", limit=10, now=NOW, lease=LEASE,
                          channel="telegram")
        assert [c.id for c in tg] == other


def test_concurrent_claims_hand_each_row_to_exactly_one_worker(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        _queue(session, 200)
    seen: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            while True:
                with transaction(factory) as session:
                    got = outbox.claim(session, worker=name, limit=7, now=NOW, lease=LEASE)
                if not got:
                    return
                with lock:
                    seen.extend(c.id for c in got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    duplicates = [i for i, n in Counter(seen).items() if n > 1]
    assert (len(seen), duplicates) == (200, [])


# --- results --------------------------------------------------------------------------------


def test_retry_backs_off_exponentially_and_dies_at_the_deadline(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        [msg] = _queue(session, 1)
    rng = random.Random(7)
    now = NOW
    delays = []
    for _ in range(9):
        with transaction(factory) as session:
            outbox.claim(session, worker="w", limit=1, now=now, lease=LEASE)
            status = outbox.mark_retry(session, msg, now=now, reason="451 later",
                                       retry_for=timedelta(hours=12), rng=rng)
        assert status == OutboxStatus.RETRY
        due = outbox._utc(_row(engine, msg).next_attempt_at)
        delays.append((due - now).total_seconds())
        now = due
    assert delays[0] == 60
    assert 96 <= delays[1] <= 120
    assert 192 <= delays[2] <= 240
    assert all(2880 <= d <= 3600 for d in delays[6:])
    with transaction(factory) as session:
        [own] = _queue(session, 1, start=1, deadline=NOW + timedelta(minutes=30))
        assert outbox.mark_retry(session, msg, now=NOW + timedelta(hours=12), reason="451",
                                 retry_for=timedelta(hours=12)) == OutboxStatus.DEAD
        # Its own deadline wins over the window; the last retry is never after it.
        assert outbox.mark_retry(session, own, now=NOW + timedelta(minutes=29, seconds=30),
                                 reason="451") == OutboxStatus.RETRY
    assert outbox._utc(_row(engine, own).next_attempt_at) == NOW + timedelta(minutes=30)
    events = _events(engine, msg)
    assert [s for s, _ in events] == ["queued"] + ["retry"] * 9 + ["dead"]
    assert events[1][1] == "451 later"
    with transaction(factory) as session:
        first_retry = outbox.history(session, msg)[1]
        # The attempt and the next attempt's time are columns, not words in the detail.
        assert first_retry.attempt == 1
        assert outbox._utc(first_retry.next_at) == NOW + timedelta(minutes=1)
    assert events[-1][1].startswith("gave up after 9 attempts")


def test_sent_clears_the_body_and_marks_the_invitation_invited(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        invitation = add_people(session, "s1", 1)[0]
        [msg] = _queue(session, 1, kind="invitation", invitation_id=invitation.id)
    with transaction(factory) as session:
        outbox.claim(session, worker="w", limit=1, now=NOW, lease=LEASE)
        outbox.mark_sent(session, msg, now=NOW, detail="250 ok")
        # A late result for a message already sent is recorded but changes nothing.
        outbox.mark_dead(session, msg, now=NOW, reason="late")
    row = _row(engine, msg)
    assert (row.status, row.payload, row.claimed_by) == (OutboxStatus.SENT, None, None)
    assert outbox._utc(row.sent_at) == NOW  # type: ignore[arg-type]
    assert [s for s, _ in _events(engine, msg)] == ["queued", "sent", "ignored"]
    with transaction(factory) as session:
        assert session.get(type(invitation), invitation.id).status == InvitationStatus.INVITED  # type: ignore[union-attr]
        assert outbox.sent_since(session, NOW - timedelta(hours=1)) == [NOW]
        # A delivery report can bounce a message the server had accepted.
        outbox.mark_bounced(session, msg, now=NOW, reason="dsn 5.1.1")
        assert session.get(type(invitation), invitation.id).status == InvitationStatus.BOUNCED  # type: ignore[union-attr]
    assert _row(engine, msg).status == OutboxStatus.BOUNCED


def test_bounce_does_not_undo_a_finished_invitation(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        invitation = add_people(session, "s1", 1)[0]
        invitation.status = InvitationStatus.FINISHED
        [msg] = _queue(session, 1, kind="confirmation", invitation_id=invitation.id)
    with transaction(factory) as session:
        outbox.mark_bounced(session, msg, now=NOW, reason="550 5.1.1")
        assert session.get(type(invitation), invitation.id).status == InvitationStatus.FINISHED  # type: ignore[union-attr]
    assert _row(engine, msg).status == OutboxStatus.BOUNCED


def test_replay_requeues_dead_messages_with_their_attempts(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        a, b, c = _queue(session, 3)
        outbox.claim(session, worker="w", limit=3, now=NOW, lease=LEASE)
        for msg in (a, b, c):
            outbox.mark_dead(session, msg, now=NOW, reason="gave up")
        # A sealed survey's bodies are gone (storage.answers writes SQL NULL).
        session.execute(update(OutboxMessage).where(OutboxMessage.id == c)
                        .values(payload=null()))
    later = NOW + timedelta(days=3)
    with transaction(factory) as session:
        assert outbox.replay(session, ids=[a], now=later) == 1
        assert outbox.replay(session, ids=None, now=later) == 1
        assert outbox.replay(session, ids=None, now=later) == 0
    for msg in (a, b):
        row = _row(engine, msg)
        assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 1)
        assert outbox._utc(row.deadline_at) == later + outbox.DEFAULT_RETRY_FOR  # type: ignore[arg-type]
        assert _events(engine, msg)[-1] == ("queued", "replayed by operator")
    assert _row(engine, c).status == OutboxStatus.DEAD
    with transaction(factory) as session:
        assert [c.id for c in outbox.claim(session, worker="w", limit=5, now=later)] == [a, b]


def test_record_writes_a_whole_batch_of_results_at_once(engine: Engine) -> None:
    """The sender's bookkeeping: every kind of result in one call, guarded like mark_*."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        invitations = add_people(session, "s1", 3)
        sent, bounced, retried = (
            _queue(session, 1, start=k, kind="invitation", invitation_id=invitations[k].id)[0]
            for k in range(3))
        dead, expired, late, twice = _queue(session, 4, start=3)
        session.execute(update(OutboxMessage).where(OutboxMessage.id == expired)
                        .values(deadline_at=NOW - timedelta(minutes=1)))
        outbox.claim(session, worker="w", limit=10, now=NOW, lease=LEASE)
        outbox.mark_sent(session, late, now=NOW)
    results = [outbox.Result(sent, "sent", "250 ok"), outbox.Result(bounced, "bounced", "550"),
               outbox.Result(retried, "retry", "451"), outbox.Result(dead, "dead", "render"),
               outbox.Result(expired, "retry", "451"), outbox.Result(late, "dead", "late"),
               outbox.Result(twice, "retry", "451"), outbox.Result(twice, "sent", "250 ok"),
               outbox.Result(9999, "sent", "250 ok")]
    with transaction(factory) as session:
        statuses = outbox.record(session, results, now=NOW, rng=random.Random(1))
    assert statuses == {sent: OutboxStatus.SENT, bounced: OutboxStatus.BOUNCED,
                        retried: OutboxStatus.RETRY, dead: OutboxStatus.DEAD,
                        expired: OutboxStatus.DEAD, late: OutboxStatus.SENT,
                        twice: OutboxStatus.SENT}
    assert _events(engine, sent)[1:] == [("sent", "250 ok")]
    assert [s for s, _ in _events(engine, retried)] == ["queued", "retry"]
    assert _events(engine, expired)[-1] == ("dead", "gave up after 1 attempts: 451")
    assert _events(engine, late)[-1] == ("ignored", "late result dead: late")
    # Two results for one message are applied in order: the retry, then the send.
    assert [s for s, _ in _events(engine, twice)] == ["queued", "retry", "sent"]
    assert (_row(engine, sent).payload, _row(engine, sent).claimed_by) == (None, None)
    assert outbox._utc(_row(engine, retried).next_attempt_at) == NOW + timedelta(minutes=1)
    with transaction(factory) as session:
        assert [session.get(type(i), i.id).status for i in invitations] == [  # type: ignore[union-attr]
            InvitationStatus.INVITED, InvitationStatus.BOUNCED, InvitationStatus.PENDING]


def test_release_hands_unsent_claims_back_without_counting_an_attempt(engine: Engine) -> None:
    factory = session_factory(engine)
    with transaction(factory) as session:
        tried, others, untried = _queue(session, 3)
        outbox.claim(session, worker="w", limit=1, now=NOW, lease=LEASE)
        outbox.mark_retry(session, tried, now=NOW, reason="451", rng=random.Random(1))
    later = NOW + timedelta(hours=1)
    with transaction(factory) as session:
        assert [c.id for c in outbox.claim(session, worker="x", limit=1, now=later,
                                           lease=LEASE)] == [others]
        claimed = outbox.claim(session, worker="w", limit=5, now=later, lease=LEASE)
        assert [c.id for c in claimed] == [tried, untried]
    with transaction(factory) as session:
        # Another worker's claim is not ours to hand back.
        assert outbox.release(session, [tried, others, untried], worker="w", now=later) == 2
    rows = {i: _row(engine, i) for i in (tried, others, untried)}
    assert (rows[tried].status, rows[tried].attempts) == (OutboxStatus.RETRY, 1)
    assert (rows[untried].status, rows[untried].attempts) == (OutboxStatus.QUEUED, 0)
    assert rows[untried].claimed_by is None
    assert outbox._utc(rows[untried].next_attempt_at) == later
    assert (rows[others].status, rows[others].claimed_by) == (OutboxStatus.SENDING, "x")
    with transaction(factory) as session:
        again = outbox.claim(session, worker="y", limit=5, now=later, lease=LEASE)
    assert [(c.id, c.attempts) for c in again] == [(tried, 2), (untried, 1)]


# --- svarbot outbox -------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    init_database(url)
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  url: {url}\n", encoding="utf-8")
    return path


def _cli_engine(config_file: Path) -> Engine:
    from storage.migrate import open_database

    url = config_file.read_text(encoding="utf-8").split("url: ")[1].strip()
    return open_database(url)


def test_cli_status_counts_per_status_and_kind(config_file: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(outbox_cli, ["status", "--config", str(config_file)])
    assert (result.exit_code, result.output.strip()) == (0, "the outbox is empty")
    engine = _cli_engine(config_file)
    try:
        with transaction(session_factory(engine)) as session:
            _queue(session, 3, kind="invitation")
            _queue(session, 2, start=3, kind="reminder")
            outbox.mark_sent(session, 1, now=NOW)
    finally:
        engine.dispose()
    result = runner.invoke(outbox_cli, ["status", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    assert "queued invitation 2" in lines
    assert "queued reminder 2" in lines
    assert "sent invitation 1" in lines
    assert "total 5" in lines


def test_cli_retry_replays_dead_messages(config_file: Path) -> None:
    engine = _cli_engine(config_file)
    try:
        with transaction(session_factory(engine)) as session:
            ids = _queue(session, 3)
            for msg in ids:
                outbox.mark_dead(session, msg, now=NOW, reason="gave up")
        runner = CliRunner()
        result = runner.invoke(outbox_cli, ["retry", "--config", str(config_file)])
        assert result.exit_code == 2
        assert "--all-dead" in result.output
        result = runner.invoke(outbox_cli, ["retry", "--id", str(ids[0]), "--config",
                                            str(config_file)])
        assert (result.exit_code, result.output.strip()) == (0, "replayed 1 dead message")
        result = runner.invoke(outbox_cli, ["retry", "--all-dead", "--config",
                                            str(config_file)])
        assert (result.exit_code, result.output.strip()) == (0, "replayed 2 dead messages")
        with transaction(session_factory(engine)) as session:
            statuses = set(session.scalars(select(OutboxMessage.status)))
            assert statuses == {OutboxStatus.QUEUED}
            replayed = session.scalars(select(OutboxEvent.detail)
                                       .where(OutboxEvent.status == "queued")).all()
            assert replayed.count("replayed by operator") == 3
    finally:
        engine.dispose()


def test_cli_reports_a_missing_database_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  url: sqlite:///{tmp_path / 'none.db'}\n", encoding="utf-8")
    result = CliRunner().invoke(outbox_cli, ["status", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith("svarbot: ")
    assert len(result.output.strip().splitlines()) == 1


def test_answers_to_respondents_are_claimed_before_a_wave(engine: Engine) -> None:
    """A page queued behind a wave of invitations is sent in the next batch, not after the
    wave: the respondent who wrote is waiting."""
    factory = session_factory(engine)
    with transaction(factory) as session:
        wave = _queue(session, 5, kind="invitation")
        reminders = _queue(session, 2, start=5, kind="reminder")
        [page] = _queue(session, 1, start=7, kind="page")
    with transaction(factory) as session:
        first = [c.id for c in outbox.claim(session, worker="w", limit=3, now=NOW)]
    assert first == sorted([page, *wave[:2]])
    with transaction(factory) as session:
        rest = [c.id for c in outbox.claim(session, worker="w", limit=10, now=NOW)]
    assert rest == [*wave[2:], *reminders]
