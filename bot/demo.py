"""`svarbot demo`: the barometer end to end on this machine, with simulated respondents.

What it does, in the order a real campaign would:
1. builds synthetic frames on the real 2019 municipality list (unit leaders; all 439 mayors);
2. draws a stratified sample of unit leaders (sector × landsdel × size class);
3. creates a fresh database and imports both contact lists (each invitation gets its token);
4. lets the simulated respondents answer through the real dialogue engine, by email (a page per
   message) or in a chat (a question per message), in bokmål or nynorsk, with the mistakes,
   questions to the contact person and opt-outs that real respondents make; every step is
   stored exactly as a channel will store it (session, invitation status, anonymised answers);
5. prints the operator's summary and the first published tables, small cells hidden.

Everything goes into one folder (default `demo/`), with a config file pointing at its database,
so the result can be explored afterwards with `svarbot report … --config demo/config.yaml`.
"""

from __future__ import annotations

import os
import random
import secrets
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from bot.config import Settings
from bot.conversation import apply_step
from flows.events import InputRejected, QueryRaised, Reply
from flows.loader import load_reference
from flows.model import AnswerValue, Lang, Questionnaire
from flows.session import Channel
from flows.simulate import Persona, converse
from storage.answers import AnswerStore, LinkKey
from storage.contacts import import_contacts, load_contacts
from storage.db import session_factory, transaction
from storage.frame import write_frame
from storage.migrate import init_database, open_database
from storage.sampling import write_sample
from storage.schema import Invitation, InvitationStatus, Respondent

#: The first day of fieldwork in the demo (the 2020 barometer went out on 15 October 2019).
FIELDWORK_START = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)
#: Share of the invited who never answer at all.
SILENT_SHARE = 0.3
#: Share of those who answer who opt out after the first message instead.
OPT_OUT_SHARE = 0.03
#: Items per survey shown in the demo's printed report (the full report: `svarbot report`).
SHOWN_ITEMS = 2


@dataclass(slots=True)
class Tally:
    """What the operator sees for one survey."""

    invited: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    messages_in: int = 0
    messages_out: int = 0
    rejected: int = 0
    queries: int = 0


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


def _converse_all(url: str, survey_id: str, q: Questionnaire, store: AnswerStore,
                  rng: random.Random, progress: Progress) -> Tally:
    factory = session_factory(open_database(url))
    tally = Tally()
    with factory() as session:
        rows = session.execute(
            select(Invitation.id, Respondent.lang, Respondent.telegram)
            .join(Respondent, Respondent.id == Invitation.respondent_id)
            .where(Invitation.survey_id == survey_id).order_by(Invitation.id)).all()
    task = progress.add_task(f"{survey_id}: respondentene svarer", total=len(rows))
    for invitation_id, lang, telegram in rows:
        tally.invited += 1
        channel: Channel = "chat" if telegram and rng.random() < 0.4 else "email"
        language: Lang = "nn" if lang == "nn" else "en" if lang == "en" else "nb"
        day = FIELDWORK_START + timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 600))
        with transaction(factory) as session:
            invitation = session.get_one(Invitation, invitation_id)
            respondent = session.get_one(Respondent, invitation.respondent_id)
            invitation.status = InvitationStatus.INVITED
            if rng.random() < SILENT_SHARE:
                tally.statuses[invitation.status] += 1
                progress.advance(task)
                continue
            transcript = converse(q, rng, channel=channel, lang=language, now=day,
                                  persona=Persona(typo_rate=0.12, skip_rate=0.05),
                                  known=_known_answers(q, respondent))
            steps = transcript.steps
            if rng.random() < OPT_OUT_SHARE:
                from flows.engine import advance

                steps = [steps[0], advance(q, steps[0].session, Reply("meld meg av"), now=day)]
            for step in steps:
                apply_step(session, store, invitation, respondent, step, now=day,
                           questionnaire=q)
                tally.messages_out += len(step.prompts)
                tally.rejected += sum(isinstance(e, InputRejected) for e in step.events)
                tally.queries += sum(isinstance(e, QueryRaised) for e in step.events)
            tally.messages_in += len(steps) - 1
            tally.channels[channel] += 1
            tally.statuses[invitation.status] += 1
        progress.advance(task)
    return tally


def run_demo(settings: Settings, *, respondents: int, seed: int, folder: Path,
             console: Console | None = None) -> dict[str, Tally]:
    """Run the whole demo in `folder` and print what an operator would look at."""
    from bot.cli_report import print_report
    from storage.aggregate import build_report

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)  # a log file or a pipe: no need to squeeze columns
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    store = AnswerStore(_link_key(settings))
    url = _fresh_database(folder)
    config_path = _write_config(settings, folder, url)
    sample, mayors = _frames(folder, respondents, seed)
    factory = session_factory(open_database(url))
    tallies: dict[str, Tally] = {}
    questionnaires: dict[str, Questionnaire] = {}
    with Progress(console=console, transient=True) as progress:
        for survey in settings.surveys:
            q = questionnaires[survey.id] = load_reference(survey.questionnaire)
            contacts = load_contacts(mayors if q.id.startswith("ordforer") else sample).contacts
            import_contacts(factory, survey.id, contacts, questionnaire=survey.questionnaire,
                            default_lang=survey.default_lang)
            tallies[survey.id] = _converse_all(url, survey.id, q, store, rng, progress)
    _print_summary(console, tallies)
    with open_database(url).connect() as connection:
        for survey_id, q in questionnaires.items():
            by = ("size_class",) if q.id.startswith("ordforer") else ("sector",)
            report = build_report(connection, survey_id, q, by, settings.privacy.min_cell)
            # The background page is what the strata are made of; show what follows it.
            background = q.pages[0].id
            shown = [t for t in report.tables if t.spec.item.page != background][:SHOWN_ITEMS]
            print_report(replace(report, tables=tuple(shown)), console)
    console.print(f"\nDemoen ligger i {folder}/. Hele rapporten: svarbot report --survey "
                  f"virksomhetsleder-2020 --by sector --config {config_path}")
    return tallies


def _print_summary(console: Console, tallies: dict[str, Tally]) -> None:
    table = Table(title="Feltarbeid (simulert)")
    for column in ("undersøkelse", "invitert", "fullført", "påbegynt", "ikke svart",
                   "avmeldt", "e-post/chat", "inn", "ut", "uforstått", "til kontakt"):
        table.add_column(column, justify="left" if column == "undersøkelse" else "right")
    for survey_id, t in tallies.items():
        table.add_row(
            survey_id, str(t.invited), str(t.statuses[InvitationStatus.FINISHED]),
            str(t.statuses[InvitationStatus.STARTED]), str(t.statuses[InvitationStatus.INVITED]),
            str(t.statuses[InvitationStatus.OPTED_OUT]),
            f"{t.channels['email']}/{t.channels['chat']}", str(t.messages_in),
            str(t.messages_out), str(t.rejected), str(t.queries))
    console.print(table)
