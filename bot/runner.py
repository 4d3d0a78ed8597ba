"""`svarbot run`: the sender, the inbound readers and the dispatcher in one process.

The parts only meet through the database: the listener and the IMAP reader put mail in the
inbox, the dispatcher turns it into answers and outbox rows, the sender delivers the outbox.
Each part is told when there is new work (so a reply goes out within a second) and also looks
on its own now and then (so nothing waits for a lost wake-up).

SIGTERM or Ctrl-C set the stop event: the listener stops accepting, the reader logs out, the
dispatcher finishes the message in hand and the sender the messages in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.mail.dispatch import Dispatcher
from bot.mail.imap_reader import ImapReader
from bot.mail.listener import MailListener
from bot.mail.outgoing import SurveyContext
from bot.mail.sender import Sender
from flows.loader import load_reference
from storage.answers import AnswerStore

log = logging.getLogger(__name__)


def survey_contexts(settings: Settings) -> dict[str, SurveyContext]:
    """Every configured survey with its questionnaire, loaded once."""
    return {s.id: SurveyContext(settings=s, questionnaire=load_reference(s.questionnaire))
            for s in settings.surveys}


def worker_name() -> str:
    """This process's name in `claimed_by`: host and pid, so an operator can find it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(slots=True)
class Service:
    """The running parts of one svarbot process."""

    settings: Settings
    session_factory: sessionmaker[Session]
    store: AnswerStore
    surveys: Mapping[str, SurveyContext]
    worker: str = field(default_factory=worker_name)
    sender: Sender = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    listener: MailListener | None = field(init=False, default=None)
    reader: ImapReader | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.sender = Sender(session_factory=self.session_factory, settings=self.settings,
                             worker=self.worker)
        self.dispatcher = Dispatcher(session_factory=self.session_factory,
                                     settings=self.settings, store=self.store,
                                     surveys=self.surveys, on_queued=self.sender.notify)

    async def run(self, stop: asyncio.Event,
                  on_ready: Callable[[Service], None] | None = None) -> None:
        """Run every enabled part until `stop` is set."""
        loop = asyncio.get_running_loop()

        def wake_dispatcher() -> None:
            loop.call_soon_threadsafe(self.dispatcher.notify)

        email = self.settings.email
        if email.listen.enabled:
            self.listener = MailListener(settings=self.settings,
                                         session_factory=self.session_factory,
                                         on_stored=self.dispatcher.notify)
            await self.listener.start()
        if email.imap.enabled:
            self.reader = ImapReader(settings=self.settings,
                                     session_factory=self.session_factory,
                                     on_stored=wake_dispatcher)
            self.reader.start()
        tasks = [asyncio.create_task(self.sender.run(stop), name="sender"),
                 asyncio.create_task(self.dispatcher.run(stop), name="dispatcher")]
        log.info("svarbot running (%s)", self.worker)
        if on_ready is not None:
            on_ready(self)
        try:
            await stop.wait()
        finally:
            if self.listener is not None:
                await self.listener.stop()
            if self.reader is not None:
                await asyncio.to_thread(self.reader.stop)
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("svarbot stopped")


def run_until_signalled(service: Service) -> None:
    """Run `service` in a fresh event loop until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await service.run(stop)

    asyncio.run(main())
