"""`svarbot run`: per channel an outbox worker and receivers, one dispatcher, the clock.

The parts only meet through the database: the receivers (the SMTP listener, the IMAP reader)
put messages in the inbox, the dispatcher turns them into answers and outbox rows, each
channel's outbox worker delivers that channel's rows, and the campaign clock queues
invitations and reminders when they are due. Each part is told
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
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.campaign.scheduler import CampaignClock, Tick
from bot.channels.base import Channels, Receiver
from bot.channels.outbox_worker import OutboxWorker
from bot.channels.registry import configured_channels
from bot.config import Settings
from bot.conversation.dispatch import Dispatcher
from bot.conversation.outgoing import SurveyContext
from bot.leader import Leadership, process_name
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
    """The running parts of one svarbot process, for every enabled channel.

    Per channel: an outbox worker (its transport from the channel) and the channel's
    receivers; one dispatcher for the inbox rows of all of them. `leadership` None means this
    process leads without asking anyone (for callers that know it is the only process, such as
    tests); `ticks` are the campaign clock's jobs (none: no clock); `listen` False keeps this
    process off the receivers' ports (extra workers).
    """

    settings: Settings
    session_factory: sessionmaker[Session]
    store: AnswerStore
    surveys: Mapping[str, SurveyContext]
    worker: str = field(default_factory=worker_name)
    leadership: Leadership | None = None
    ticks: Sequence[Tick] = ()
    listen: bool = True
    channels: Channels = field(init=False)
    senders: dict[str, OutboxWorker] = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    receivers: list[Receiver] = field(init=False, default_factory=list)
    leading: list[Receiver] = field(init=False, default_factory=list)
    clock: CampaignClock | None = field(init=False, default=None)
    #: The desk and dashboard, when `web.enabled` (its `port` is the one bound).
    web: Any = field(init=False, default=None)
    _parts: list[Receiver] = field(init=False, default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.channels = configured_channels(self.settings)
        self.senders = {
            channel.name: OutboxWorker(
                session_factory=self.session_factory, channel=channel.name,
                transport=channel.transport(), limits=channel.limits(),
                retry_for=channel.retry_for(), worker=self.worker, lease=channel.lease())
            for channel in self.channels}
        self.dispatcher = Dispatcher(session_factory=self.session_factory,
                                     settings=self.settings, store=self.store,
                                     surveys=self.surveys, on_queued=self._queued_elsewhere,
                                     channels=self.channels)
        # Made now, so that a setting a receiver needs (a secret) fails before anything runs.
        self._parts = [receiver for channel in self.channels
                       for receiver in channel.receivers(self.session_factory,
                                                         self._wake_dispatcher)
                       if self.listen or not receiver.binds_port]

    @property
    def sender(self) -> OutboxWorker:
        """The email outbox worker."""
        return self.senders["email"]

    @property
    def listener(self) -> Any:
        """The SMTP/LMTP listener, when this process runs it (its `port` is bound)."""
        for receiver in self.receivers:
            found = getattr(receiver, "listener", None)
            if found is not None:
                return found
        return None

    def notify_senders(self, channels: set[str] | None = None) -> None:
        """Messages were queued on `channels` (default: any): their outbox workers look now
        (call from the event loop)."""
        for name, sender in self.senders.items():
            if channels is None or name in channels:
                sender.notify()

    def _queued_elsewhere(self, channels: set[str]) -> None:
        """The dispatcher (in a worker thread) queued messages: wake their workers."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.notify_senders, set(channels))

    def _wake_dispatcher(self) -> None:
        """A receiver stored a message (from any thread): the dispatcher looks now."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.dispatcher.notify)

    def _receivers(self, *, leader: bool) -> list[Receiver]:
        return [receiver for receiver in self._parts if receiver.leader_only == leader]

    async def run(self, stop: asyncio.Event,
                  on_ready: Callable[[Service], None] | None = None) -> None:
        """Run every enabled part until `stop` is set."""
        self._loop = asyncio.get_running_loop()
        for receiver in self._receivers(leader=False):
            await receiver.start()
            self.receivers.append(receiver)
        tasks = [asyncio.create_task(sender.run(stop), name=f"sender:{name}")
                 for name, sender in self.senders.items()]
        tasks.append(asyncio.create_task(self.dispatcher.run(stop), name="dispatcher"))
        if self.settings.web.enabled and self.listen:
            tasks.append(await self._serve_web(stop))
        if self.leadership is None:
            await self._lead()
            tasks.append(asyncio.create_task(self._hold(stop), name="leader"))
        else:
            tasks.append(asyncio.create_task(
                self.leadership.run(stop, self._lead, self._step_down), name="leadership"))
        log.info("svarbot running (%s; channels %s)", self.worker,
                 ", ".join(self.channels.names()))
        if on_ready is not None:
            on_ready(self)
        try:
            await stop.wait()
        finally:
            for receiver in reversed(self.receivers):
                await receiver.stop()
            self.receivers.clear()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for task, result in zip(tasks, results, strict=True):
                if isinstance(result, Exception):
                    log.error("%s ended with an error: %r", task.get_name(), result)
            log.info("svarbot stopped")

    async def _serve_web(self, stop: asyncio.Event) -> asyncio.Task[None]:
        """Start the desk and dashboard (`web.enabled`); returns once it listens.

        Raises:
            OSError: the port cannot be bound.
        """
        from bot.web.context import WebContext
        from bot.web.serve import WebServer

        ctx = WebContext(settings=self.settings, factory=self.session_factory,
                         surveys=self.surveys, store=self.store,
                         on_queued=lambda: self._queued_elsewhere(set(self.channels.names())))
        self.web = WebServer(ctx, host=self.settings.web.host, port=self.settings.web.port)
        ready = asyncio.Event()
        task = asyncio.create_task(self.web.run(stop, on_ready=lambda _s: ready.set()),
                                   name="web")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiting.cancel()
            task.result()  # raises why it could not start
        return task

    async def _lead(self) -> None:
        """Start what only the leader runs: the mailbox and chat pollers, the campaign clock."""
        try:
            if not self.leading:
                for receiver in self._receivers(leader=True):
                    await receiver.start()
                    self.leading.append(receiver)
            if self.ticks and self.clock is None:
                self.clock = CampaignClock(self.ticks,
                                           after=lambda _job, _r: self.notify_senders())
                self.clock.start()
        except Exception:  # the senders and dispatcher must go on; the next leader may do better
            log.exception("cannot start the leader's parts")

    async def _step_down(self) -> None:
        """Stop the leader's parts (on stop, or when leadership was lost)."""
        clock, self.clock = self.clock, None
        leading, self.leading = self.leading, []
        if clock is not None:
            await clock.stop()
        for receiver in reversed(leading):
            await receiver.stop()

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
