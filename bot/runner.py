"""`svarbot run`: the sender, the dispatcher, the inbound readers and the campaign clock.

The parts only meet through the database: the listener and the IMAP reader put mail in the
inbox, the dispatcher turns it into answers and outbox rows, the sender delivers the outbox,
and the campaign clock queues invitations and reminders when they are due. Each part is told
when there is new work (so a reply goes out within a second) and also looks on its own now and
then (so nothing waits for a lost wake-up).

Several processes can share one PostgreSQL database (`svarbot run --workers N`, or processes on
several hosts): every process sends and dispatches (rows are claimed with SKIP LOCKED), only the
first process of a `--workers` group binds the listener's port, and only the leader (see
bot/leader.py) runs the campaign clock and the IMAP reader. On SQLite there is one process.

SIGTERM or Ctrl-C set the stop event: the listener stops accepting, the reader logs out, the
clock lets a running job finish, the dispatcher finishes the message in hand and the sender the
messages in flight. The first process of a group stops its workers the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.leader import Leadership, process_name
from bot.mail.dispatch import Dispatcher
from bot.mail.imap_reader import ImapReader
from bot.mail.listener import MailListener
from bot.mail.outgoing import SurveyContext
from bot.mail.sender import Sender
from bot.scheduler import CampaignClock, Tick
from flows.loader import load_reference
from storage.answers import AnswerStore

log = logging.getLogger(__name__)


def survey_contexts(settings: Settings) -> dict[str, SurveyContext]:
    """Every configured survey with its questionnaire, loaded once."""
    return {s.id: SurveyContext(settings=s, questionnaire=load_reference(s.questionnaire))
            for s in settings.surveys}


def worker_name() -> str:
    """This process's name in `claimed_by`: host and pid, so an operator can find it."""
    return process_name()


@dataclass(slots=True)
class Service:
    """The running parts of one svarbot process.

    `leadership` None means this process leads without asking anyone (for callers that know
    it is the only process, such as tests); `ticks` are the campaign clock's jobs (none: no
    clock); `listen` False keeps this process off the listener's port (extra workers).
    """

    settings: Settings
    session_factory: sessionmaker[Session]
    store: AnswerStore
    surveys: Mapping[str, SurveyContext]
    worker: str = field(default_factory=worker_name)
    leadership: Leadership | None = None
    ticks: Sequence[Tick] = ()
    listen: bool = True
    sender: Sender = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    listener: MailListener | None = field(init=False, default=None)
    reader: ImapReader | None = field(init=False, default=None)
    clock: CampaignClock | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.sender = Sender(session_factory=self.session_factory, settings=self.settings,
                             worker=self.worker,
                             lease=timedelta(seconds=self.settings.email.smtp.lease_seconds))
        self.dispatcher = Dispatcher(session_factory=self.session_factory,
                                     settings=self.settings, store=self.store,
                                     surveys=self.surveys, on_queued=self.sender.notify)

    async def run(self, stop: asyncio.Event,
                  on_ready: Callable[[Service], None] | None = None) -> None:
        """Run every enabled part until `stop` is set."""
        if self.listen and self.settings.email.listen.enabled:
            self.listener = MailListener(settings=self.settings,
                                         session_factory=self.session_factory,
                                         on_stored=self.dispatcher.notify)
            await self.listener.start()
        tasks = [asyncio.create_task(self.sender.run(stop), name="sender"),
                 asyncio.create_task(self.dispatcher.run(stop), name="dispatcher")]
        if self.leadership is None:
            await self._lead()
            tasks.append(asyncio.create_task(self._hold(stop), name="leader"))
        else:
            tasks.append(asyncio.create_task(
                self.leadership.run(stop, self._lead, self._step_down), name="leadership"))
        log.info("svarbot running (%s)", self.worker)
        if on_ready is not None:
            on_ready(self)
        try:
            await stop.wait()
        finally:
            if self.listener is not None:
                await self.listener.stop()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, Exception):
                    log.error("%s ended with an error: %r", task.get_name(), result)
            log.info("svarbot stopped")

    async def _lead(self) -> None:
        """Start what only the leader runs: the IMAP reader and the campaign clock."""
        loop = asyncio.get_running_loop()

        def wake_dispatcher() -> None:
            loop.call_soon_threadsafe(self.dispatcher.notify)

        try:
            if self.settings.email.imap.enabled and self.reader is None:
                self.reader = ImapReader(settings=self.settings,
                                         session_factory=self.session_factory,
                                         on_stored=wake_dispatcher)
                self.reader.start()
            if self.ticks and self.clock is None:
                self.clock = CampaignClock(self.ticks, after=lambda _job, _r: self.sender.notify())
                self.clock.start()
        except Exception:  # the sender and dispatcher must go on; the next leader may do better
            log.exception("cannot start the leader's parts")

    async def _step_down(self) -> None:
        """Stop the leader's parts (on stop, or when leadership was lost)."""
        clock, self.clock = self.clock, None
        reader, self.reader = self.reader, None
        if clock is not None:
            await clock.stop()
        if reader is not None:
            await asyncio.to_thread(reader.stop)

    async def _hold(self, stop: asyncio.Event) -> None:
        try:
            await stop.wait()
        finally:
            await self._step_down()


#: The longest the first process waits for a worker to stop after SIGTERM before killing it.
WORKER_STOP_SECONDS = 30.0
#: Pause before starting a worker again that ended by itself.
WORKER_RESTART_SECONDS = 5.0


@dataclass(slots=True)
class WorkerPool:
    """`count` extra worker processes (`command`), kept running until `stop` is set.

    A worker that ends by itself is started again after a pause. On stop each gets SIGTERM and
    stops cleanly like the first process; one that hangs is killed after a deadline.
    """

    command: Sequence[str]
    count: int
    pids: dict[int, int] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._keep(index, stop) for index in range(1, self.count + 1)))

    async def _keep(self, index: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            process = await asyncio.create_subprocess_exec(*self.command)
            self.pids[index] = process.pid
            log.info("worker %d started (pid %d)", index, process.pid)
            waiter = asyncio.create_task(process.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if waiter.done():
                log.warning("worker %d (pid %d) ended with status %s; starting it again in "
                            "%.0f s", index, process.pid, waiter.result(), WORKER_RESTART_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), WORKER_RESTART_SECONDS)
                continue
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(waiter), WORKER_STOP_SECONDS)
            except TimeoutError:
                log.warning("worker %d (pid %d) did not stop; killing it", index, process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await waiter
            log.info("worker %d stopped (status %s)", index, waiter.result())


def worker_command(config_path: str, parent_pid: int) -> list[str]:
    """The command line of an extra worker of process `parent_pid`."""
    return [sys.executable, "-m", "bot", "run", "--config", config_path,
            "--worker-of", str(parent_pid)]


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Stop this worker if the process that started it is gone (e.g. killed with SIGKILL)."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("the first svarbot process (pid %d) is gone; stopping", parent_pid)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def run_until_signalled(service: Service, *, pool: WorkerPool | None = None,
                        parent_pid: int | None = None) -> None:
    """Run `service` (and `pool`) in a fresh event loop until SIGTERM or SIGINT.

    `parent_pid`: this is an extra worker of that process, and stops when it disappears.
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        helpers = []
        if pool is not None:
            helpers.append(asyncio.create_task(pool.run(stop), name="workers"))
        if parent_pid is not None:
            helpers.append(asyncio.create_task(_watch_parent(parent_pid, stop)))
        try:
            await service.run(stop)
        finally:
            stop.set()  # also when the service failed: the workers must not outlive it
            await asyncio.gather(*helpers, return_exceptions=True)

    asyncio.run(main())
