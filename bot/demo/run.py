"""`svarbot demo`: the barometer end to end on this machine, by email and Telegram, with
simulated people.

What it does, in the order a real campaign would:
1. builds synthetic frames on the real 2019 municipality list (unit leaders; all mayors);
2. draws a stratified sample of unit leaders (sector × landsdel × size class);
3. creates a fresh SQLite database and imports both contact lists (each invitation a token);
4. starts svarbot as `svarbot run` does (sender, SMTP listener, dispatcher) against a simulated
   world of mail servers on loopback (`bot.demo.world`), queues the invitations, and lets the
   simulated people answer by email in the styles of their mail clients: Outlook in Norwegian,
   Gmail, iPhone, bottom-posting, with out-of-office replies, bounces, opt-outs and questions
   for the contact person. Every message crosses the real path: outbox → render → SMTP → reply
   → listener → inbox → parse → classify → trim → engine → anonymised store → outbox;
   a share of those who answer (by default a third of the mayors, a tenth of the unit leaders)
   open the Telegram link their mail carries instead, and answer in the chat on a fake Bot API
   on loopback (`bot.demo.fake_telegram`, the one the tests use), tapping buttons and typing
   (`bot.demo.telegram_people`); some answer the first page by email and then move to the
   chat, a few go back to email with "/epost". svarbot runs its Telegram poller and worker
   exactly as `svarbot run` does: outbox → Telegram worker → Bot API → chat → poller → inbox →
   channel → engine → store;
5. prints the operator's summary and the first published tables, small cells hidden.

While the people answer, the fieldwork is shown as it happens: invitations sent, conversations
finished of those begun, messages in flight. A terminal gets progress bars; a pipe or a log
file, where bars never show, gets a plain line every few seconds.

Everything goes into one folder (default `demo/`), with a config file pointing at its database
and frames by paths relative to that folder (so it can be moved), and the result can be
explored afterwards with `svarbot report … --config demo/config.yaml`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shlex
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.registry import configured_channels
from bot.config import Settings, load_settings
from bot.conversation.outgoing import (
    SurveyContext,
    invitation_channel,
    others_than,
    queue_invitations,
)
from bot.demo.fake_telegram import FakeTelegram, Stats
from bot.demo.telegram_people import ChatTally, ChatWorld
from bot.demo.world import Behaviour, Route, WorldMail, draw_behaviour, draw_route, draw_style
from bot.demo.world import Respondent as Person
from bot.runner import Service
from flows.model import AnswerValue, Lang, Questionnaire
from storage.answers import AnswerStore, LinkKey
from storage.contacts import import_contacts, load_contacts
from storage.db import session_factory, transaction
from storage.frame import write_frame
from storage.migrate import init_database, open_database
from storage.sampling import write_sample
from storage.schema import (
    DeskQuery,
    InboxMessage,
    InboxStatus,
    Invitation,
    InvitationStatus,
    OutboxMessage,
    OutboxStatus,
    Respondent,
    UserRole,
)
from storage.users import add_user

#: The first day of fieldwork in the demo (the 2020 barometer went out on 15 October 2019).
FIELDWORK_START = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)
#: Items per survey shown in the demo's printed report (the full report: `svarbot report`).
SHOWN_ITEMS = 2
#: The demo gives up waiting for the simulated people after this many seconds.
TIMEOUT_SECONDS = 300.0
#: Shares of the mayors and of the unit leaders who answer that take the Telegram link.
TELEGRAM_MAYORS = 1 / 3
TELEGRAM_LEADERS = 0.1
#: The simulated people answer at once, so the demo's Telegram runs this many times faster
#: than Telegram's limits allow (the fake enforces the faster limits, svarbot keeps its own
#: configured pace as many times faster): otherwise one chat's forty questions, at about a
#: message a second per chat, would take longer than the whole demo may.
TELEGRAM_SPEEDUP = 10
#: Telegram's own limits, which the fake enforces (times `TELEGRAM_SPEEDUP`).
TELEGRAM_PER_SECOND = 30
TELEGRAM_PER_CHAT_PER_SECOND = 1.0
TELEGRAM_BURST = 3
#: The simulated Telegram users' ids: this plus the invitation's id.
CHAT_IDS = 700_000_000
#: Seconds between two plain progress lines when the output is not a terminal.
PROGRESS_EVERY = 5.0


@dataclass(slots=True)
class Tally:
    """What the operator sees for one survey."""

    invited: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    away: int = 0
    other_address: int = 0
    queries: int = 0


@dataclass(slots=True)
class ChannelTally:
    """One channel's traffic and answers, for the summary."""

    #: Messages sent (Telegram: not counting the acknowledgements of button presses).
    sent: int = 0
    #: Acknowledgements of button presses (the spinner answered, the buttons changed).
    acks: int = 0
    bounced_at_send: int = 0
    received: int = 0
    quarantined: int = 0
    #: Inbound messages read as answers (or questions for the contact person).
    answers: int = 0
    #: Invitations that answered on this channel at least once.
    respondents: int = 0
    #: Invitations finished with their last message on this channel.
    finished: int = 0


@dataclass(slots=True)
class Fieldwork:
    """The whole demo's traffic, for the summary."""

    surveys: dict[str, Tally]
    channels: dict[str, ChannelTally] = field(default_factory=dict)
    #: Invitations whose Telegram chat is bound (the link was opened).
    chats: int = 0
    #: Invitations that answered by email first and then in the chat, and the other way.
    to_telegram: int = 0
    to_email: int = 0
    telegram: Stats | None = None
    people: ChatTally | None = None
    seconds: float = 0.0

    def channel(self, name: str) -> ChannelTally:
        """The tally of channel `name` (zeros when it carried nothing)."""
        return self.channels.setdefault(name, ChannelTally())


#: The demo's database, in its folder.
DATABASE_FILE = "svarbot.db"


def _fresh_database(folder: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        (folder / f"{DATABASE_FILE}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{folder.absolute() / DATABASE_FILE}"
    init_database(url)
    return url


def _portable(settings: Settings, folder: Path) -> dict[str, Any]:
    """The settings as YAML data, the database and every file inside `folder` named relative
    to it: a configuration's paths are read against its own folder, so the demo's folder
    works from anywhere and can be moved."""
    folder = folder.absolute()

    def inside(value: str) -> str:
        path = Path(value)
        return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else value

    data = settings.model_dump(mode="json")
    data["database"]["url"] = f"sqlite:///{DATABASE_FILE}"
    for survey in data["surveys"]:
        for key in ("questionnaire", "frame", "previous"):
            if isinstance(survey.get(key), str):
                survey[key] = inside(survey[key])
    return data


def _write_config(settings: Settings, folder: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text("# Written by `svarbot demo`: the shipped configuration with the demo's "
                    "database and frames.\n# Paths are relative to this file's folder.\n"
                    + yaml.safe_dump(_portable(settings, folder), allow_unicode=True,
                                     sort_keys=False),
                    encoding="utf-8")
    return path


def _link_key(settings: Settings) -> LinkKey:
    """The configured link key, or a fresh one for this demo run only."""
    variable = settings.privacy.link_key_env
    if not os.environ.get(variable):
        os.environ[variable] = secrets.token_hex(32)
    return LinkKey.from_env(variable)


def _frames(folder: Path, respondents: int, seed: int) -> tuple[Path, Path]:
    units = folder / "virksomhetsledere-ramme.csv"
    write_frame(units, units=max(respondents * 6, 1000), seed=seed)
    sample = folder / "virksomhetsledere-utvalg.csv"
    write_sample(load_contacts(units), sample, n=respondents,
                 strata=("sector", "landsdel", "size"), seed=seed)
    mayors = folder / "ordforere.csv"
    write_frame(mayors, mayors=True, seed=seed)
    return sample, mayors


#: The mayors' questionnaire's population bands, by the reference list's size class.
_POPULATION_OPTION = {"<3000": "under_3000", "3000-9999": "fra_3000",
                      "10000-49999": "fra_10000", "50000+": "fra_50000"}


def _known_answers(q: Questionnaire, respondent: Respondent) -> dict[str, AnswerValue]:
    """Background answers a simulated respondent gives truthfully, from their contact row."""
    facts: dict[str, AnswerValue] = {}
    if respondent.sector and q.find("sektor"):
        facts["sektor"] = respondent.sector
    item = q.find("enhetstype")
    if item is not None and respondent.unit_type and item.option(respondent.unit_type):
        facts["enhetstype"] = respondent.unit_type
    if q.find("forvaltningsniva"):
        county = respondent.size_class == "fylkeskommune"
        facts["forvaltningsniva"] = "fylkeskommune" if county else "kommune"
        if not county and respondent.size_class in _POPULATION_OPTION:
            facts["innbyggere"] = _POPULATION_OPTION[respondent.size_class]
    return facts


def _demo_settings(settings: Settings, url: str) -> Settings:
    """The configuration with the demo's database and loopback-only, unthrottled mail."""
    email = settings.email.model_copy(update={
        "smtp": settings.email.smtp.model_copy(update={
            "host": "127.0.0.1", "start_tls": False, "username": None, "connections": 4,
            "per_minute": 1_000_000, "per_day": 10_000_000}),
        "listen": settings.email.listen.model_copy(update={
            "enabled": True, "host": "127.0.0.1", "port": 0, "protocol": "smtp"}),
        "imap": settings.email.imap.model_copy(update={"enabled": False})})
    return settings.model_copy(update={
        "email": email, "database": settings.database.model_copy(update={"url": url}),
        "dev_mode": settings.dev_mode.model_copy(update={"redirect_to": None})})


#: The 2018 figures KS published, the demo's previous wave for the unit leaders.
PREVIOUS_2018 = Path(__file__).parents[1] / "results" / "data" / "innovasjonsbarometeret-2018.csv"


def _with_frames(settings: Settings, folder: Path) -> Settings:
    """Each survey weighted to the frame it is drawn from, the unit leaders compared with the
    2018 edition (so that `svarbot report` on the demo shows weights and changes)."""
    surveys = []
    for survey in settings.surveys:
        mayors = survey.questionnaire.startswith("ordforer")
        frame = folder.absolute() / ("ordforere.csv" if mayors
                                     else "virksomhetsledere-ramme.csv")
        surveys.append(survey.model_copy(update={
            "frame": str(frame), "weight_by": [] if mayors else survey.weight_by,
            "previous": None if mayors else str(PREVIOUS_2018)}))
    return settings.model_copy(update={"surveys": tuple(surveys)})


def _telegram_settings(settings: Settings, fake: FakeTelegram) -> Settings:
    """The configuration with Telegram on, polling the fake Bot API, `TELEGRAM_SPEEDUP` times
    faster than configured, and quick to notice news (a short long poll)."""
    tg = settings.telegram
    telegram = tg.model_copy(update={
        "enabled": True, "api_url": fake.base_url, "mode": "polling", "poll_timeout": 1,
        "bot_username": str(fake.bot_user["username"]), "timeout": 10.0,
        "per_second": tg.per_second * TELEGRAM_SPEEDUP,
        "per_chat_per_second": tg.per_chat_per_second * TELEGRAM_SPEEDUP})
    return settings.model_copy(update={"telegram": telegram})


@contextlib.contextmanager
def _telegram_token(settings: Settings, fake: FakeTelegram) -> Iterator[None]:
    """A synthetic bot token in `telegram.token_env` while the demo runs (a real token, if one
    is set, is neither used nor sent anywhere, and is back afterwards)."""
    variable = settings.telegram.token_env
    before = os.environ.get(variable)
    os.environ[variable] = f"{fake.bot_user['id']}:{secrets.token_urlsafe(24)}"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before


def _people(factory: sessionmaker[Session], contexts: dict[str, SurveyContext],
            seed: int, *, telegram_mayors: float = 0.0,
            telegram_leaders: float = 0.0) -> dict[str, Person]:
    """A simulated person for every invited address; of those who answer, the given shares
    of mayors and unit leaders take the Telegram link (on a route of their own)."""
    people: dict[str, Person] = {}
    with factory() as session:
        rows = session.execute(
            select(Invitation, Respondent)
            .join(Respondent, Respondent.id == Invitation.respondent_id)
            .order_by(Invitation.id)).all()
        for invitation, respondent in rows:
            q = contexts[invitation.survey_id].questionnaire
            rng = random.Random(seed * 100_003 + invitation.id)
            lang: Lang = "nn" if respondent.lang == "nn" else (
                "en" if respondent.lang == "en" else "nb")
            behaviour = draw_behaviour(rng)
            share = telegram_mayors if q.id.startswith("ordforer") else telegram_leaders
            # Their own generator: the Telegram share changes nobody's email behaviour.
            route = (draw_route(random.Random(f"{seed}:route:{invitation.id}"), share)
                     if behaviour is Behaviour.ANSWERS else Route.EMAIL)
            people[respondent.email.lower()] = Person(
                address=respondent.email.lower(), name=respondent.name, lang=lang,
                questionnaire=q, behaviour=behaviour, style=draw_style(rng), rng=rng,
                planned=_known_answers(q, respondent), route=route,
                chat_id=CHAT_IDS + invitation.id)
    return people


@dataclass(slots=True)
class _Counts:
    """What is still to handle in the outbox (by channel) and the inbox, and where the
    invitations stand."""

    out_waiting: Counter[str] = field(default_factory=Counter)
    in_waiting: int = 0
    #: Invitations sent (or refused by the recipient's server), whatever their channel.
    invitations_sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


#: Outbox rows that are still to be sent.
_WAITING = (OutboxStatus.QUEUED, OutboxStatus.SENDING, OutboxStatus.RETRY)


def _counts(factory: sessionmaker[Session]) -> _Counts:
    counts = _Counts()
    with factory() as session:
        for channel, kind, status, n in session.execute(
                select(OutboxMessage.channel, OutboxMessage.kind, OutboxMessage.status,
                       func.count())
                .group_by(OutboxMessage.channel, OutboxMessage.kind, OutboxMessage.status)):
            if status in _WAITING:
                counts.out_waiting[channel] += n
            elif kind == "invitation":
                counts.invitations_sent += n
        for in_status, n in session.execute(select(InboxMessage.status, func.count())
                                            .group_by(InboxMessage.status)):
            counts.in_waiting += n if in_status == InboxStatus.RECEIVED else 0
        for invitation_status, n in session.execute(select(Invitation.status, func.count())
                                                    .group_by(Invitation.status)):
            counts.statuses[invitation_status] += n
    return counts


@dataclass(frozen=True, slots=True)
class FieldworkState:
    """How far the fieldwork has come at one moment, as the demo shows it while it runs."""

    seconds: float
    invited: int
    #: Invitations sent (or refused by the recipient's server).
    sent: int
    #: Conversations begun (something was answered) and, of those, finished.
    started: int
    finished: int
    #: Messages on their way: waiting in the outbox, unread in the people's mailboxes, Telegram
    #: updates not yet fetched, and inbox rows not yet handled.
    in_flight: int

    def line(self, what: str = "feltarbeid") -> str:
        """The state as one plain line (for a log file or a pipe)."""
        return (f"{what} {self.seconds:.0f} s: {self.sent}/{self.invited} invitasjoner sendt, "
                f"{self.finished} av {self.started} påbegynte samtaler fullført, "
                f"{self.in_flight} meldinger i omløp")


def _state(counts: _Counts, world: WorldMail, fake: FakeTelegram, *, invited: int,
           seconds: float) -> FieldworkState:
    statuses = counts.statuses
    finished = statuses[InvitationStatus.FINISHED]
    read = sum(person.received for person in world.respondents.values())
    unread = max(world.outcome.delivered - read, 0)
    return FieldworkState(
        seconds=seconds, invited=invited, sent=counts.invitations_sent,
        started=statuses[InvitationStatus.STARTED] + finished, finished=finished,
        in_flight=(counts.out_waiting.total() + unread + len(fake.pending_updates())
                   + counts.in_waiting))


class _Watch(Protocol):
    """Where the fieldwork is shown while it runs."""

    def show(self, state: FieldworkState) -> None:
        """The fieldwork has moved (called a few times a second)."""

    def done(self, state: FieldworkState) -> None:
        """The fieldwork has settled (or the demo stopped waiting)."""


class _Bars:
    """Progress bars on a terminal, redrawn as the fieldwork moves."""

    COLUMNS = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.fields[count]}"), TimeElapsedColumn())

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._sent = progress.add_task("invitasjoner sendt", total=None, count="")
        self._finished = progress.add_task("samtaler fullført av påbegynte", total=None,
                                           count="")
        self._in_flight = progress.add_task("meldinger i omløp", total=None, count="")

    def show(self, state: FieldworkState) -> None:
        self._bar(self._sent, state.sent, state.invited)
        self._bar(self._finished, state.finished, state.started)
        self._progress.update(self._in_flight, count=str(state.in_flight))

    def done(self, state: FieldworkState) -> None:
        self.show(state)

    def _bar(self, task: TaskID, done: int, total: int) -> None:
        self._progress.update(task, total=max(total, 1), completed=done,
                              count=f"{done}/{total}")


class _Lines:
    """A plain line every `every` seconds, and one at the end, where bars would never show."""

    def __init__(self, console: Console, every: float) -> None:
        self._console = console
        self._every = every
        self._next = every

    def show(self, state: FieldworkState) -> None:
        if state.seconds >= self._next:
            self._print(state.line())
            while self._next <= state.seconds:
                self._next += self._every

    def done(self, state: FieldworkState) -> None:
        self._print(state.line("feltarbeid ferdig etter"))

    def _print(self, line: str) -> None:
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _watching(console: Console, every: float) -> Iterator[_Watch]:
    """Bars on a terminal, plain lines every `every` seconds anywhere else."""
    if not console.is_terminal:
        yield _Lines(console, every)
        return
    with Progress(*_Bars.COLUMNS, console=console, transient=True) as progress:
        yield _Bars(progress)


async def _fieldwork(settings: Settings, factory: sessionmaker[Session], store: AnswerStore,
                     contexts: dict[str, SurveyContext], people: dict[str, Person],
                     watch: _Watch) -> tuple[float, Stats, ChatTally]:
    """Run svarbot against the simulated world (mail servers, and Telegram's Bot API with the
    people in their chats) until all traffic has settled; the seconds it took, what the fake
    Bot API saw, and what the chat users did."""
    async with FakeTelegram(per_second=TELEGRAM_PER_SECOND * TELEGRAM_SPEEDUP,
                            per_chat_per_second=TELEGRAM_PER_CHAT_PER_SECOND * TELEGRAM_SPEEDUP,
                            burst=TELEGRAM_BURST,
                            bot_username=settings.telegram.bot_username) as fake:
        chats = ChatWorld(fake)
        world = WorldMail(people, svarbot_port=0, clock=FIELDWORK_START, chats=chats)
        await world.start()
        await chats.start()
        settings = _telegram_settings(settings, fake)
        settings = settings.model_copy(update={"email": settings.email.model_copy(update={
            "smtp": settings.email.smtp.model_copy(update={"port": world.port})})})
        try:
            with _telegram_token(settings, fake):
                seconds = await _serve(settings, factory, store, contexts, world, chats, fake,
                                       watch)
        finally:
            await chats.stop()
            await world.stop()
        return seconds, fake.stats(), chats.tally


async def _serve(settings: Settings, factory: sessionmaker[Session], store: AnswerStore,
                 contexts: dict[str, SurveyContext], world: WorldMail, chats: ChatWorld,
                 fake: FakeTelegram, watch: _Watch) -> float:
    """svarbot as `svarbot run` runs it, with the invitations queued, until nothing moves."""
    service = Service(settings=settings, session_factory=factory, store=store,
                      surveys=contexts, worker="demo")
    stop = asyncio.Event()
    ready = asyncio.Event()
    running = asyncio.create_task(service.run(stop, on_ready=lambda _: ready.set()))
    await ready.wait()
    if service.listener is None:
        raise RuntimeError("svarbot's SMTP listener did not start")
    world.svarbot_port = service.listener.port
    started = time.monotonic()
    channels = configured_channels(settings)
    with transaction(factory) as session:
        invited = 0
        for context in contexts.values():
            channel = invitation_channel(channels, context)
            invited += queue_invitations(session, channel, context, store, now=FIELDWORK_START,
                                         others=others_than(channels, channel))
    service.notify_senders()
    settled = 0
    state: FieldworkState | None = None
    try:
        while time.monotonic() - started < TIMEOUT_SECONDS:
            await asyncio.sleep(0.3)
            counts = await asyncio.to_thread(_counts, factory)
            state = _state(counts, world, fake, invited=invited,
                           seconds=time.monotonic() - started)
            watch.show(state)
            idle = (not counts.out_waiting.total() and counts.in_waiting == 0 and world.idle
                    and chats.idle and not fake.pending_updates())
            settled = settled + 1 if idle else 0
            if settled >= 3:
                break
    finally:
        stop.set()
        await running
    if state is not None:
        watch.done(state)
    return time.monotonic() - started


def _tally(factory: sessionmaker[Session], seconds: float) -> Fieldwork:
    result = Fieldwork(surveys={}, seconds=seconds)
    with factory() as session:
        for survey_id, status, away, other, n in session.execute(
                select(Invitation.survey_id, Invitation.status,
                       Invitation.away_until.is_not(None), Invitation.answered_from_other_address,
                       func.count()).group_by(
                    Invitation.survey_id, Invitation.status, Invitation.away_until.is_not(None),
                    Invitation.answered_from_other_address)):
            tally = result.surveys.setdefault(survey_id, Tally())
            tally.invited += n
            tally.statuses[status] += n
            tally.away += n if away else 0
            tally.other_address += n if other else 0
        for survey_id, n in session.execute(
                select(Invitation.survey_id, func.count()).join(
                    DeskQuery, DeskQuery.invitation_id == Invitation.id)
                .group_by(Invitation.survey_id)):
            result.surveys.setdefault(survey_id, Tally()).queries = n
        for channel, kind, out_status, n in session.execute(
                select(OutboxMessage.channel, OutboxMessage.kind, OutboxMessage.status,
                       func.count())
                .group_by(OutboxMessage.channel, OutboxMessage.kind, OutboxMessage.status)):
            traffic = result.channel(channel)
            if out_status == OutboxStatus.SENT and kind == "ack":
                traffic.acks += n
            elif out_status == OutboxStatus.SENT:
                traffic.sent += n
            elif out_status == OutboxStatus.BOUNCED:
                traffic.bounced_at_send += n
        for channel, in_status, n in session.execute(
                select(InboxMessage.channel, InboxMessage.status, func.count())
                .group_by(InboxMessage.channel, InboxMessage.status)):
            result.channel(channel).received += n
            if in_status == InboxStatus.FAILED:
                result.channel(channel).quarantined += n
        _answers_by_channel(session, result)
    return result


#: How the inbox classifies what the engine read as an answer (or a question to a person).
_ANSWERING = ("answer", "query")


def _answers_by_channel(session: Session, result: Fieldwork) -> None:
    """Answers, respondents and finished invitations per channel, and who changed channel
    (the order of the messages each invitation answered with, email before chat or after)."""
    rows = session.execute(
        select(InboxMessage.invitation_id, InboxMessage.channel)
        .where(InboxMessage.status == InboxStatus.PROCESSED,
               InboxMessage.classification.in_(_ANSWERING),
               InboxMessage.invitation_id.is_not(None))
        .order_by(InboxMessage.id)).all()
    order: dict[int, list[str]] = {}
    for invitation_id, channel in rows:
        result.channel(channel).answers += 1
        seen = order.setdefault(invitation_id or 0, [])
        if not seen or seen[-1] != channel:
            seen.append(channel)
    for channels in order.values():
        for channel in set(channels):
            result.channel(channel).respondents += 1
        pairs = set(pairwise(channels))
        result.to_telegram += ("email", "telegram") in pairs
        result.to_email += ("telegram", "email") in pairs
    for last, n in session.execute(
            select(Invitation.last_channel, func.count())
            .where(Invitation.status == InvitationStatus.FINISHED)
            .group_by(Invitation.last_channel)):
        result.channel(last or "email").finished += n
    result.chats = session.scalar(select(func.count()).select_from(Invitation).where(
        Invitation.telegram_chat_id.is_not(None))) or 0


def run_demo(settings: Settings, *, respondents: int, seed: int, folder: Path,
             mayors: int = 439, telegram_mayors: float = TELEGRAM_MAYORS,
             telegram_leaders: float = TELEGRAM_LEADERS,
             console: Console | None = None,
             progress_every: float = PROGRESS_EVERY) -> Fieldwork:
    """Run the whole demo in `folder` and print what an operator would look at.

    `telegram_mayors` and `telegram_leaders` are the shares of the mayors and of the unit
    leaders who answer that do it (or some of it) in the Telegram chat. When `console` is not
    a terminal, the fieldwork is shown as a plain line every `progress_every` seconds.
    """
    from bot.results.published import publish_results
    from bot.results.terminal import print_results
    from bot.runner import survey_contexts
    from storage.aggregate import build_report

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)  # a log file or a pipe: no need to squeeze columns
    folder.mkdir(parents=True, exist_ok=True)
    store = AnswerStore(_link_key(settings))
    url = _fresh_database(folder)
    config_path = _write_config(_with_frames(_demo_settings(settings, url), folder), folder)
    # The demo runs on the file it leaves behind, so what it shows is what that file gives.
    settings = load_settings(config_path)
    url = settings.database.url
    sample, mayor_frame = _frames(folder, respondents, seed)
    engine = open_database(url)
    factory = session_factory(engine)
    contexts = survey_contexts(settings)
    for survey in settings.surveys:
        q = contexts[survey.id].questionnaire
        if q.id.startswith("ordforer"):
            everyone = list(load_contacts(mayor_frame).contacts)
            contacts = random.Random(seed).sample(everyone, min(mayors, len(everyone)))
        else:
            contacts = list(load_contacts(sample).contacts)
        import_contacts(factory, survey.id, contacts, questionnaire=survey.questionnaire,
                        default_lang=survey.default_lang)
    people = _people(factory, contexts, seed, telegram_mayors=telegram_mayors,
                     telegram_leaders=telegram_leaders)
    with _watching(console, progress_every) as watch:
        seconds, stats, chat_people = asyncio.run(
            _fieldwork(settings, factory, store, contexts, people, watch))
    result = _tally(factory, seconds)
    result.telegram, result.people = stats, chat_people
    _print_summary(console, result)
    with engine.connect() as connection:
        for survey_id, context in contexts.items():
            q = context.questionnaire
            by = ("size_class",) if q.id.startswith("ordforer") else ("sector",)
            report = build_report(connection, survey_id, q, by, settings.privacy.min_cell)
            # The background page is what the strata are made of; show what follows it.
            background = q.pages[0].id
            shown = [t for t in report.tables if t.spec.item.page != background][:SHOWN_ITEMS]
            print_results(publish_results(replace(report, tables=tuple(shown))), console)
    logins = _demo_users(factory)
    engine.dispose()
    _print_next_steps(console, settings, folder, config_path, logins)
    return result


def _print_next_steps(console: Console, settings: Settings, folder: Path, config_path: Path,
                      logins: dict[str, str]) -> None:
    """Where the demo is, and the commands that explore it, each naming its configuration
    (from another folder than this one, `SVARBOT_CONFIG` with the absolute path does). Long
    lines are not wrapped, so that each command can be copied whole."""
    config = f"--config {shlex.quote(str(config_path))}"
    web = settings.web
    console.print(
        f"\nDemoen ligger i {folder}/: databasen {DATABASE_FILE}, rammene og utvalget (CSV) og "
        f"{config_path.name} (stiene i den gjelder fra mappen, så den kan flyttes).\n"
        f"Hele rapporten: svarbot report --survey virksomhetsleder-2020 --by sector {config}\n"
        f"Som nettside, PDF eller Excel: legg til --format html --out rapport.html "
        f"(eller pdf, xlsx)\n"
        f"Slik leser svarbot en e-post: svarbot mail inspect FIL.eml {config}\n"
        f"Oversikten og spørsmålene i nettleseren: svarbot web {config}\n"
        f"  åpne http://{web.host}:{web.port}/ og logg inn som "
        + " eller ".join(f"{name} (passord {password})" for name, password in logins.items())
        + f"\nUten --config, fra hvilken som helst mappe: "
          f"export SVARBOT_CONFIG={shlex.quote(str(config_path.absolute()))}",
        markup=False, highlight=False, soft_wrap=True)


#: The demo's people who log in: an operator and a contact person.
DEMO_USERS = (("operator", UserRole.OPERATOR), ("kontakt", UserRole.CONTACT))


def _demo_users(factory: sessionmaker[Session]) -> dict[str, str]:
    """An operator and a contact person with fresh passwords (printed, for this demo only)."""
    logins = {}
    with transaction(factory) as session:
        for name, role in DEMO_USERS:
            password = secrets.token_urlsafe(9)
            add_user(session, name, role, password, actor="svarbot demo")
            logins[name] = password
    return logins


def _print_summary(console: Console, result: Fieldwork) -> None:
    table = Table(title=f"Feltarbeid på e-post og Telegram (simulert, {result.seconds:.0f} s)")
    for column in ("undersøkelse", "invitert", "fullført", "påbegynt", "ikke svart",
                   "avmeldt", "avvist adresse", "fraværende", "annen avsender", "til kontakt"):
        table.add_column(column, justify="left" if column == "undersøkelse" else "right")
    for survey_id, t in result.surveys.items():
        s = t.statuses
        table.add_row(
            survey_id, str(t.invited), str(s[InvitationStatus.FINISHED]),
            str(s[InvitationStatus.STARTED]),
            str(s[InvitationStatus.INVITED] + s[InvitationStatus.DELIVERED]
                + s[InvitationStatus.PENDING]),
            str(s[InvitationStatus.OPTED_OUT]), str(s[InvitationStatus.BOUNCED]),
            str(t.away), str(t.other_address), str(t.queries))
    console.print(table)
    mail, chat = result.channel("email"), result.channel("telegram")
    console.print(f"E-post: {mail.sent} sendt, {mail.bounced_at_send} avvist ved sending, "
                  f"{mail.received} mottatt, {mail.quarantined} i karantene.")
    refused = result.telegram.rejected_429 if result.telegram is not None else 0
    console.print(f"Telegram: {chat.sent} meldinger sendt, {chat.acks} kvitteringer for "
                  f"knappetrykk, {chat.received} oppdateringer mottatt, {result.chats} chatter "
                  f"koblet, {chat.bounced_at_send} utilgjengelige.")
    console.print(f"Telegrams Bot API (falsk, på 127.0.0.1, grensene ×{TELEGRAM_SPEEDUP} for "
                  f"å holde tritt med de simulerte): {refused} ganger bedt om å vente (429).")
    channels = Table(title="Svar per kanal")
    for column in ("kanal", "meldinger lest som svar", "personer som svarte der",
                   "fullførte der"):
        channels.add_column(column, justify="left" if column == "kanal" else "right")
    for name, tally in (("e-post", mail), ("Telegram", chat)):
        channels.add_row(name, str(tally.answers), str(tally.respondents), str(tally.finished))
    console.print(channels)
    console.print(f"Byttet kanal: {result.to_telegram} fra e-post til Telegram, "
                  f"{result.to_email} fra Telegram til e-post (/epost).")
    people = result.people
    if people is not None:
        console.print(f"I chatten: {people.taps} trykk på knapper, {people.typed} skrevne "
                      f"meldinger, {people.left} ga seg underveis.")
