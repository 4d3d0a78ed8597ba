"""Claiming due work rows exactly once, on SQLite and on PostgreSQL, with one statement.

Several workers (tasks, threads or processes) take rows from the same queue table. A row must
go to exactly one of them, and a row whose worker died must not stay taken forever. Both are
done by one `UPDATE … RETURNING` whose target rows come from a CTE:

    WITH claimed AS (SELECT id FROM t WHERE <due> ORDER BY due, id LIMIT n [FOR UPDATE SKIP LOCKED])
    UPDATE t SET status='sending', claimed_by=:worker, attempts=attempts+1, due=:now+lease
    FROM claimed WHERE t.id = claimed.id RETURNING t.id

Why this shape:

* SQLite silently drops `FOR UPDATE`; a SELECT followed by an UPDATE would hand the same rows to
  several connections. A single UPDATE is atomic there (one writer at a time), so it is
  exactly-once without any lock clause.
* On PostgreSQL `FOR UPDATE SKIP LOCKED` in the CTE lets concurrent claimers pass over each
  other's rows instead of queueing behind them. The equivalent `WHERE id IN (SELECT … SKIP
  LOCKED)` was measured 25× slower (shared/testing.md §6), so the join form is used.
* Leases instead of a plain status flag: while a row is in flight its due column holds the
  lease expiry, so no extra column is needed. A row in flight whose lease has passed belongs to
  a worker that died (or hung); it is due again and the next claim takes it over.
* Claims are made in batches (a worker takes as many rows as it can work on soon), so their
  cost is shared; a worker that stops with rows it never started hands them back at once
  with `release_rows` rather than leaving them to their leases.

The generic `claim_rows` takes the table and columns as a `ClaimSpec`, so other queues (for
example reminders) can reuse it; `claim_due` is the outbox's use of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, Update, and_, case, or_, select, update
from sqlalchemy.orm import Session

from storage.schema import OutboxMessage, OutboxStatus


@dataclass(frozen=True)
class ClaimSpec:
    """Which table and columns make up a work queue.

    `due` is when a waiting row becomes due and, while a row is `in_flight`, when its lease
    ends. `attempts` (optional) is incremented on every claim. `ready[0]` is the state of a
    row never tried and `ready[-1]` that of one tried before (they may be the same): a
    released row goes back to the one that matches its attempts.
    """

    table: Table
    id: str
    status: str
    due: str
    owner: str
    ready: tuple[str, ...]
    in_flight: str
    attempts: str | None = None


OUTBOX = ClaimSpec(
    table=cast(Table, OutboxMessage.__table__),
    id="id", status="status", due="next_attempt_at", owner="claimed_by",
    ready=(OutboxStatus.QUEUED.value, OutboxStatus.RETRY.value),
    in_flight=OutboxStatus.SENDING.value, attempts="attempts")


def claim_statement(spec: ClaimSpec, *, dialect: str, worker: str, limit: int, now: datetime,
                    lease: timedelta, where: Sequence[ColumnElement[bool]] = ()) -> Update:
    """The claim as one UPDATE statement (exposed so tests can check the SQL per dialect).

    `where` narrows which rows may be claimed (for example one channel). Only PostgreSQL gets
    `FOR UPDATE SKIP LOCKED`; other dialects rely on the single statement being atomic.
    """
    columns = spec.table.c
    due = columns[spec.due]
    status = columns[spec.status]
    key = columns[spec.id]
    waiting = and_(status.in_(spec.ready), due <= now)
    abandoned = and_(status == spec.in_flight, due < now)
    candidates = (select(key.label("id")).where(or_(waiting, abandoned), *where)
                  .order_by(due, key).limit(limit))
    if dialect == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    claimed = candidates.cte("claimed")
    values: dict[str, object] = {spec.status: spec.in_flight, spec.owner: worker,
                                 spec.due: now + lease}
    if spec.attempts is not None:
        values[spec.attempts] = columns[spec.attempts] + 1
    return update(spec.table).where(key == claimed.c.id).values(values).returning(key)


def claim_rows(session: Session, spec: ClaimSpec, *, worker: str, limit: int, now: datetime,
               lease: timedelta, where: Sequence[ColumnElement[bool]] = ()) -> list[int]:
    """Claim up to `limit` due rows of `spec` for `worker`; their ids, oldest due first.

    Runs in the caller's transaction; the claim holds once that transaction commits. Commit
    promptly: on PostgreSQL the claimed rows stay locked until then.
    """
    if limit <= 0:
        return []
    statement = claim_statement(spec, dialect=session.get_bind().dialect.name, worker=worker,
                                limit=limit, now=now, lease=lease, where=where)
    return sorted(int(row[0]) for row in session.execute(statement))


#: Outbox kinds sent by the campaign in waves; everything else answers a respondent.
WAVE_KINDS = ("invitation", "reminder")


def claim_due(session: Session, *, worker: str, limit: int, now: datetime, lease: timedelta,
              channel: str | None = None) -> list[int]:
    """Claim up to `limit` due outbox rows (of `channel`, if given) for `worker`.

    Answers to respondents (pages, confirmations, a chat's replies) are claimed before the
    campaign's waves: someone who writes during a wave of thousands gets the next question at
    once, not after the wave. A claimed row is `sending`, owned by `worker` (`claimed_by`), has
    one more attempt, and its `next_attempt_at` is the lease expiry `now + lease`: if no result
    is recorded by then, the row is taken over by the next claim (its worker is presumed dead).
    """
    where = [] if channel is None else [OUTBOX.table.c.channel == channel]
    kind = OUTBOX.table.c.kind
    ids = claim_rows(session, OUTBOX, worker=worker, limit=limit, now=now, lease=lease,
                     where=[*where, kind.not_in(WAVE_KINDS)])
    if len(ids) < limit:
        ids += claim_rows(session, OUTBOX, worker=worker, limit=limit - len(ids), now=now,
                          lease=lease, where=[*where, kind.in_(WAVE_KINDS)])
    return ids


def release_rows(session: Session, spec: ClaimSpec, *, ids: Sequence[int], worker: str,
                 now: datetime) -> int:
    """Give rows that `worker` claimed but never started back to the queue; how many.

    Only rows still in flight and still owned by `worker` are touched (a row whose lease was
    taken over belongs to its new owner). They are due at `now`, unowned, and the attempt the
    claim counted is taken back: nothing was tried.
    """
    if not ids:
        return 0
    columns = spec.table.c
    values: dict[str, object] = {spec.owner: None, spec.due: now,
                                 spec.status: spec.ready[0]}
    if spec.attempts is not None:
        attempts = columns[spec.attempts]
        values[spec.attempts] = attempts - 1
        values[spec.status] = case((attempts > 1, spec.ready[-1]), else_=spec.ready[0])
    result = session.execute(
        update(spec.table)
        .where(columns[spec.id].in_(list(ids)), columns[spec.status] == spec.in_flight,
               columns[spec.owner] == worker)
        .values(values))
    return int(getattr(result, "rowcount", 0))
