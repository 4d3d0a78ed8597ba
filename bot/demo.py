"""`svarbot demo`: the barometer run end to end on this machine with simulated respondents.

Each simulated unit leader and mayor answers through the real dialogue engine, some by email
(a page per message) and some in a chat (a question at a time), some in nynorsk, some making
mistakes, asking the contact person or opting out, and the demo ends with what an operator
would look at: how the conversations went, and a first aggregate with small cells hidden.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bot.config import Settings
from bot.flowtool import Conversation
from flows.events import InputRejected, QueryRaised, Reply, Start
from flows.loader import QuestionnaireError, load_file, load_shipped
from flows.model import ItemType, Lang, Questionnaire
from flows.session import Channel
from flows.simulate import Persona, converse

#: Hide a published count below this many respondents (the demo uses the configured value).
_SUPPRESSED = ":"


@dataclass(slots=True)
class _Tally:
    """What the operator sees for one survey."""

    respondents: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    messages_in: int = 0
    messages_out: int = 0
    rejected: int = 0
    queries: int = 0
    first: dict[str, Counter[str]] = field(default_factory=dict)


def _load(reference: str) -> Questionnaire:
    if reference.endswith((".yaml", ".yml")):
        return load_file(reference)
    return load_shipped(reference)


def _first_choice_item(q: Questionnaire) -> str | None:
    return next((i.id for i in q.items if i.type is ItemType.SINGLE), None)


def run_demo(settings: Settings, *, respondents: int, seed: int,
             console: Console | None = None) -> dict[str, _Tally]:
    """Simulate `respondents` per configured survey and print the operator's summary."""
    console = console or Console()
    rng = random.Random(seed)
    now = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)
    tallies: dict[str, _Tally] = {}
    surveys = []
    for survey in settings.surveys:
        try:
            surveys.append((survey.id, _load(survey.questionnaire)))
        except QuestionnaireError as exc:
            console.print(f"[red]survey {survey.id}: questionnaire cannot be used[/red]")
            for problem in exc.problems:
                console.print("  " + problem)
    total = respondents * len(surveys)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Simulerte respondenter svarer", total=total)
        for survey_id, q in surveys:
            tally = tallies[survey_id] = _Tally()
            watched = _first_choice_item(q)
            for _ in range(respondents):
                channel: Channel = "chat" if rng.random() < 0.3 else "email"
                lang: Lang = "nn" if rng.random() < 0.25 else "nb"
                persona = Persona(skip_rate=0.05, typo_rate=0.15)
                transcript = converse(q, rng, channel=channel, lang=lang, persona=persona,
                                      now=now)
                if rng.random() < 0.03:
                    # A respondent who opts out after the invitation.
                    conversation = Conversation(q, channel=channel, lang=lang)
                    conversation.step(Start())
                    final = conversation.step(Reply("meld meg av")).session
                    tally.messages_in += 1
                else:
                    final = transcript.final
                    tally.messages_in += len(transcript.inputs)
                    tally.messages_out += sum(len(s.prompts) for s in transcript.steps)
                    for step in transcript.steps:
                        tally.rejected += sum(isinstance(e, InputRejected) for e in step.events)
                        tally.queries += sum(isinstance(e, QueryRaised) for e in step.events)
                tally.respondents += 1
                tally.by_channel[channel] += 1
                tally.statuses[final.status.value] += 1
                if watched and isinstance(final.answers.get(watched), str):
                    option = q.item(watched).option(str(final.answers[watched]))
                    label = option.label.nb if option else "?"
                    tally.first.setdefault(watched, Counter())[label] += 1
                progress.advance(task)
    _print(console, surveys, tallies, settings.privacy.min_cell)
    return tallies


def _print(console: Console, surveys: list[tuple[str, Questionnaire]],
           tallies: dict[str, _Tally], min_cell: int) -> None:
    table = Table(title="Samtaler (simulert)")
    for column in ("undersøkelse", "svarere", "e-post/chat", "fullført", "avmeldt",
                   "inn", "ut", "uforstått", "til kontakt"):
        table.add_column(column, justify="right" if column != "undersøkelse" else "left")
    for survey_id, _ in surveys:
        t = tallies[survey_id]
        table.add_row(survey_id, str(t.respondents),
                      f"{t.by_channel['email']} / {t.by_channel['chat']}",
                      str(t.statuses["completed"]), str(t.statuses["stopped"]),
                      str(t.messages_in), str(t.messages_out), str(t.rejected), str(t.queries))
    console.print(table)
    for survey_id, q in surveys:
        for item_id, counts in tallies[survey_id].first.items():
            item = q.item(item_id)
            result = Table(title=f"{survey_id}: {item.number}. {item.text.nb}")
            result.add_column("svar")
            result.add_column("antall", justify="right")
            for option in item.options:
                n = counts.get(option.label.nb, 0)
                result.add_row(option.label.nb, str(n) if n >= min_cell else _SUPPRESSED)
            console.print(result)
    console.print(f"Celler med færre enn {min_cell} svar vises som «{_SUPPRESSED}».")
