"""The campaign clock: APScheduler 3 used as a clock, never as a database.

The campaign jobs ("due-invitations", "due-reminders", "closing", "housekeeping", and the
desk's and the operators' mail: "desk-notices", "alerts", with the leader's "heartbeat") each
ask the database what is due *now* and do it idempotently. APScheduler only says when to ask: the
jobs live in a MemoryJobStore with fixed ids, and nothing about a campaign is stored in it. After
a restart the database says what is due, so the scheduler has nothing to remember.

Choices, and why:

* `next_run_time=now`: every job runs once at start-up. A wave whose start passed while svarbot
  was down is sent at that first tick, because the job asks "invite_at <= now and still pending",
  not "is it exactly 09:00".
* `coalesce=True`: ticks missed while the loop was busy become one run, not a burst of N.
* `misfire_grace_time` = the job's interval (at least 1 s). With coalescing the one remaining
  run time is never older than one interval, so the catch-up run always happens; APScheduler's
  default of 1 s would drop it after any stall longer than a second. A late tick is harmless:
  it asks the same question as an on-time one.
* `max_instances=1`: a job still busy when its next tick comes is skipped (APScheduler logs a
  warning), and the next tick after it finishes catches up.
* Each job body runs in a thread (`asyncio.to_thread`): the bodies do synchronous database
  work, and the event loop keeps serving the sender and the SMTP listener meanwhile.
* An exception in a body is logged and the clock goes on ticking; the next tick retries.

This module is the only place that imports APScheduler.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

from apscheduler.jobstores.memory import MemoryJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.config import Settings
    from bot.conversation.outgoing import SurveyContext
    from storage.answers import AnswerStore

log = logging.getLogger(__name__)

#: The fixed job ids, in the order they are registered.
JOB_IDS = ("due-invitations", "due-reminders", "closing", "housekeeping")

#: Seconds between ticks of each job in production.
DEFAULT_INTERVALS: Mapping[str, float] = {
    "due-invitations": 30.0, "due-reminders": 60.0, "closing": 300.0, "housekeeping": 3600.0}

#: The longest `stop()` waits for job bodies already running to finish their transaction.
STOP_WAIT_SECONDS = 30.0


class JobBody(Protocol):
    """A job body: does what is due at `now`, idempotently; returns anything (logged if truthy)."""

    def __call__(self, *, now: dt.datetime) -> object: ...


@dataclass(frozen=True, slots=True)
class Tick:
    """One clock job: its fixed id, its body, and the seconds between runs."""

    id: str
    body: JobBody
    seconds: float

    @property
    def misfire_grace_time(self) -> int:
        """One interval (APScheduler wants whole seconds, at least 1): see the module notes."""
        return max(1, math.ceil(self.seconds))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CampaignClock:
    """Runs `ticks` on an AsyncIOScheduler in the running event loop.

    `now` is what the job bodies are told the time is (tests pass a clock they can move);
    APScheduler itself always runs on real time. `after(job_id, result)` is called in the loop
    when a body returned something truthy (the runner wakes the sender after new outbox rows).
    """

    def __init__(self, ticks: Sequence[Tick], *,
                 now: Callable[[], dt.datetime] = utc_now,
                 after: Callable[[str, object], None] | None = None) -> None:
        ids = [t.id for t in ticks]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate job ids in {ids}")
        self._ticks = {t.id: t for t in ticks}
        self._now = now
        self._after = after
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        """Register the jobs and start ticking; must be called inside the running loop."""
        if self._scheduler is not None:
            return
        loop = asyncio.get_running_loop()
        # APScheduler logs each job run ("Running job …", "executed successfully") at INFO,
        # which would drown the log; its warnings (a skipped or missed run) still show.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=dt.UTC,
                                     jobstores={"default": MemoryJobStore()})
        start = dt.datetime.now(dt.UTC)
        for tick in self._ticks.values():
            scheduler.add_job(self._run_tick, IntervalTrigger(seconds=tick.seconds),
                              args=(tick.id,), id=tick.id, name=tick.id,
                              replace_existing=True, coalesce=True, max_instances=1,
                              misfire_grace_time=tick.misfire_grace_time,
                              next_run_time=start)
        scheduler.start()
        self._scheduler = scheduler
        log.info("campaign clock started (%s)", ", ".join(
            f"{t.id} every {t.seconds:g} s" for t in self._ticks.values()))

    def wake(self, job_id: str | None = None) -> None:
        """Run `job_id` (or every job) now instead of at its next tick, e.g. after new work."""
        if self._scheduler is None:
            return
        now = dt.datetime.now(dt.UTC)
        for tick_id in [job_id] if job_id is not None else list(self._ticks):
            self._scheduler.modify_job(tick_id, next_run_time=now)

    async def stop(self, wait_seconds: float = STOP_WAIT_SECONDS) -> None:
        """Stop ticking, then let bodies already running finish (up to `wait_seconds`)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if self._running:
            _done, pending = await asyncio.wait(set(self._running), timeout=wait_seconds)
            if pending:
                log.warning("campaign clock stopped with %d job(s) still running", len(pending))
        log.info("campaign clock stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set."""
        self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _run_tick(self, tick_id: str) -> None:
        # The body runs in its own task, shielded: APScheduler cancels its job coroutine on
        # shutdown, but a body in the middle of a transaction should finish, and `stop()`
        # waits for it.
        task = asyncio.create_task(asyncio.to_thread(self._call, tick_id), name=tick_id)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        result = await asyncio.shield(task)
        if result and self._after is not None:
            try:
                self._after(tick_id, result)
            except Exception:
                log.exception("campaign job %s: the follow-up failed", tick_id)

    def _call(self, tick_id: str) -> object:
        tick = self._ticks[tick_id]
        now = self._now()
        try:
            result = tick.body(now=now)
        except Exception:
            log.exception("campaign job %s failed; it runs again at its next tick", tick_id)
            return None
        if result:
            log.info("campaign job %s: %s", tick_id, result)
        return result


def campaign_ticks(session_factory: sessionmaker[Session], settings: Settings,
                   surveys: Mapping[str, SurveyContext], store: AnswerStore, *,
                   intervals: Mapping[str, float] = DEFAULT_INTERVALS) -> list[Tick]:
    """The production jobs, bound to this service's database, settings and surveys: the
    campaign's four, mailing new questions to the desk, the alerts, and the leader's
    heartbeat."""
    from bot import health
    from bot.campaign import jobs as campaign
    from bot.desk.notify import notify_desk
    from bot.leader import process_name

    bodies: dict[str, JobBody] = {
        "due-invitations": partial(campaign.due_invitations, session_factory, settings,
                                   surveys, store),
        "due-reminders": partial(campaign.due_reminders, session_factory, settings, surveys,
                                 store),
        "closing": partial(campaign.close_due, session_factory, settings),
        "housekeeping": partial(campaign.housekeeping, session_factory, settings),
        "desk-notices": partial(notify_desk, session_factory, settings, surveys),
        "alerts": partial(health.mail_alerts, session_factory, settings),
        "heartbeat": partial(health.leader_heartbeat, session_factory,
                             detail=process_name()),
    }
    return [Tick(job_id, bodies[job_id], intervals.get(job_id, DEFAULT_INTERVALS[job_id]))
            for job_id in JOB_IDS]
