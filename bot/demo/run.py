"""`svarbot demo`: the barometer end to end on this machine, by email, with simulated people.

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
5. prints the operator's summary and the first published tables, small cells hidden.

Everything goes into one folder (default `demo/`), with a config file pointing at its database,
so the result can be explored afterwards with `svarbot report … --config demo/config.yaml`.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.registry import configured_channels
from bot.config import Settings
from bot.conversation.outgoing import SurveyContext, invitation_channel, queue_invitations
from bot.demo.world import Respondent as Person
from bot.demo.world import WorldMail, draw_behaviour, draw_style
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
)

#: The first day of fieldwork in the demo (the 2020 barometer went out on 15 October 2019).
FIELDWORK_START = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)
#: Items per survey shown in the demo's printed report (the full report: `svarbot report`).
SHOWN_ITEMS = 2
#: The demo gives up waiting for the simulated people after this many seconds.
TIMEOUT_SECONDS = 300.0


@dataclass(slots=True)
class Tally:
    """What the operator sees for one survey."""

    invited: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    away: int = 0
    other_address: int = 0
    queries: int = 0


@dataclass(slots=True)
class Fieldwork:
    """The whole demo's traffic, for the summary."""

    surveys: dict[str, Tally]
    sent: int = 0
    bounced_at_send: int = 0
    received: int = 0
    quarantined: int = 0
    seconds: float = 0.0


def _fresh_database(folder: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        (folder / f"svarbot.db{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{folder / 'svarbot.db'}"
    init_database(url)
    return url


def _write_config(settings: Settings, folder: Path, url: str) -> Path:
    data = settings.model_dump(mode="json")
    data["database"]["url"] = url
    path = folder / "config.yaml"
    path.write_text("# Written by `svarbot demo`: the shipped configuration with the demo "
                    "database.\n" + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
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


def _people(factory: sessionmaker[Session], contexts: dict[str, SurveyContext],
            seed: int) -> dict[str, Person]:
    """A simulated person for every invited address."""
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
            people[respondent.email.lower()] = Person(
                address=respondent.email.lower(), name=respondent.name, lang=lang,
                questionnaire=q, behaviour=draw_behaviour(rng), style=draw_style(rng), rng=rng,
                planned=_known_answers(q, respondent))
    return people


def _counts(factory: sessionmaker[Session]) -> tuple[int, int, int, int]:
    """(outbox rows, outbox rows still to send, inbox rows, inbox rows still to handle)."""
    waiting = (OutboxStatus.QUEUED, OutboxStatus.SENDING, OutboxStatus.RETRY)
    with factory() as session:
        out_total = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
        out_waiting = session.scalar(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.status.in_(waiting))) or 0
        in_total = session.scalar(select(func.count()).select_from(InboxMessage)) or 0
        in_waiting = session.scalar(select(func.count()).select_from(InboxMessage).where(
            InboxMessage.status == InboxStatus.RECEIVED)) or 0
    return out_total, out_waiting, in_total, in_waiting


async def _fieldwork(settings: Settings, factory: sessionmaker[Session], store: AnswerStore,
                     contexts: dict[str, SurveyContext], people: dict[str, Person],
                     progress: Progress) -> float:
    """Run svarbot against the simulated world until all traffic has settled."""
    world = WorldMail(people, svarbot_port=0, clock=FIELDWORK_START)
    await world.start()
    settings = settings.model_copy(update={"email": settings.email.model_copy(update={
        "smtp": settings.email.smtp.model_copy(update={"port": world.port})})})
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
        invited = sum(queue_invitations(session, invitation_channel(channels, context), context,
                                        store, now=FIELDWORK_START)
                      for context in contexts.values())
    service.sender.notify()
    sent_task = progress.add_task("e-post sendt", total=invited)
    in_task = progress.add_task("svar og annen post behandlet", total=None)
    settled = 0
    try:
        while time.monotonic() - started < TIMEOUT_SECONDS:
            await asyncio.sleep(0.3)
            out_total, out_waiting, in_total, in_waiting = await asyncio.to_thread(
                _counts, factory)
            _show(progress, sent_task, out_total, out_total - out_waiting)
            _show(progress, in_task, in_total, in_total - in_waiting)
            idle = out_waiting == 0 and in_waiting == 0 and world.idle
            settled = settled + 1 if idle else 0
            if settled >= 3:
                break
    finally:
        stop.set()
        await running
        await world.stop()
    return time.monotonic() - started


def _show(progress: Progress, task: TaskID, total: int, done: int) -> None:
    progress.update(task, total=max(total, 1), completed=done)


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
        for out_status, n in session.execute(select(OutboxMessage.status, func.count())
                                             .group_by(OutboxMessage.status)):
            if out_status == OutboxStatus.SENT:
                result.sent = n
            elif out_status == OutboxStatus.BOUNCED:
                result.bounced_at_send = n
        for in_status, n in session.execute(select(InboxMessage.status, func.count())
                                            .group_by(InboxMessage.status)):
            result.received += n
            if in_status == InboxStatus.FAILED:
                result.quarantined = n
    return result


def run_demo(settings: Settings, *, respondents: int, seed: int, folder: Path,
             mayors: int = 439, console: Console | None = None) -> Fieldwork:
    """Run the whole demo in `folder` and print what an operator would look at."""
    from bot.cli.report import print_report
    from bot.runner import survey_contexts
    from storage.aggregate import build_report

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)  # a log file or a pipe: no need to squeeze columns
    folder.mkdir(parents=True, exist_ok=True)
    store = AnswerStore(_link_key(settings))
    url = _fresh_database(folder)
    settings = _demo_settings(settings, url)
    config_path = _write_config(settings, folder, url)
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
    people = _people(factory, contexts, seed)
    with Progress(console=console, transient=True) as progress:
        seconds = asyncio.run(_fieldwork(settings, factory, store, contexts, people, progress))
    result = _tally(factory, seconds)
    _print_summary(console, result)
    with engine.connect() as connection:
        for survey_id, context in contexts.items():
            q = context.questionnaire
            by = ("size_class",) if q.id.startswith("ordforer") else ("sector",)
            report = build_report(connection, survey_id, q, by, settings.privacy.min_cell)
            # The background page is what the strata are made of; show what follows it.
            background = q.pages[0].id
            shown = [t for t in report.tables if t.spec.item.page != background][:SHOWN_ITEMS]
            print_report(replace(report, tables=tuple(shown)), console)
    engine.dispose()
    console.print(f"\nDemoen ligger i {folder}/: databasen svarbot.db, rammene og utvalget (CSV) "
                  f"og {config_path.name}.\nHele rapporten: svarbot report --survey "
                  f"virksomhetsleder-2020 --by sector --config {config_path}\n"
                  f"Slik leser svarbot en e-post: svarbot mail inspect FIL.eml "
                  f"--config {config_path}")
    return result


def _print_summary(console: Console, result: Fieldwork) -> None:
    table = Table(title=f"Feltarbeid på e-post (simulert, {result.seconds:.0f} s)")
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
    console.print(f"E-post: {result.sent} sendt, {result.bounced_at_send} avvist ved sending, "
                  f"{result.received} mottatt, {result.quarantined} i karantene.")
