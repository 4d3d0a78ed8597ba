"""Simulated respondents: plausible replies to a prompt, written the way people write them.

Used by `svarbot demo` and by tests that walk every path through a questionnaire. Randomness
comes in as a `random.Random`, so a seed gives the same respondent every time and `flows`
stays deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from flows.engine import advance
from flows.events import Reply, Start, Step
from flows.model import (
    DONT_KNOW,
    NO,
    NOT_RELEVANT,
    YES,
    AnswerValue,
    Item,
    ItemType,
    Lang,
    Questionnaire,
)
from flows.render import row_letter
from flows.session import Channel, Session, Status, from_json, new_session, to_json

_NUMBER_WORDS = {1: "en", 2: "to", 3: "tre", 4: "fire", 5: "fem", 6: "seks"}
_YES = ("ja", "Ja", "jepp", "Ja, det har vi")
_NO = ("nei", "Nei", "neida")
_DONT_KNOW = ("vet ikke", "Vet ikke", "usikker")
_TEXTS = (
    "Vi har tatt i bruk digitalt tilsyn om natten.",
    "Ny arbeidsform med faste tverrfaglige team.",
    "Chat-tjeneste for innbyggere i åpningstiden.",
    "Felles innkjøp av velferdsteknologi med nabokommunene.",
)


@dataclass(frozen=True, slots=True)
class Persona:
    """How one simulated respondent behaves."""

    #: Chance of skipping a question that may be skipped.
    skip_rate: float = 0.05
    #: Chance of writing an answer the bot will not understand (then answering properly).
    typo_rate: float = 0.05
    #: Chance of choosing "don't know" where it is offered.
    dont_know_rate: float = 0.05


def choose_value(item: Item, rng: random.Random, persona: Persona) -> dict[str, AnswerValue]:
    """Random valid answers for an item, by answer id."""
    if item.type is ItemType.GRID:
        out: dict[str, AnswerValue] = {}
        for row in item.rows:
            out[f"{item.id}.{row.id}"] = _row_value(item, rng, persona)
        return out
    return {item.id: _item_value(item, rng, persona)}


def _row_value(item: Item, rng: random.Random, persona: Persona) -> AnswerValue:
    if item.row_type == "yesno":
        if item.dont_know and rng.random() < persona.dont_know_rate:
            return DONT_KNOW
        return YES if rng.random() < 0.6 else NO
    scale = item.scale
    assert scale is not None  # noqa: S101 - a scale grid always has a scale
    if scale.dont_know and rng.random() < persona.dont_know_rate:
        return DONT_KNOW
    if scale.not_relevant and rng.random() < persona.dont_know_rate:
        return NOT_RELEVANT
    return rng.randint(scale.min, scale.max)


def _item_value(item: Item, rng: random.Random, persona: Persona) -> AnswerValue:
    if item.type is ItemType.SINGLE:
        return rng.choice(item.options).id
    if item.type is ItemType.MULTI:
        plain = [o for o in item.options if not o.exclusive]
        if not plain or rng.random() < 0.05:
            return [rng.choice(item.options).id]
        limit = min(item.max_choices or len(plain), len(plain))
        picked = rng.sample(plain, rng.randint(1, limit))
        return [o.id for o in item.options if o in picked]
    if item.type is ItemType.SCALE or item.type is ItemType.GRID:
        return _row_value(item, rng, persona)
    if item.type is ItemType.YESNO:
        if item.dont_know and rng.random() < persona.dont_know_rate:
            return DONT_KNOW
        return YES if rng.random() < 0.6 else NO
    if item.type is ItemType.NUMBER:
        low = item.min if item.min is not None else 0
        high = item.max if item.max is not None else 500
        return rng.randint(low, min(high, low + 200))
    return rng.choice(_TEXTS)


def say_value(item: Item, value: AnswerValue, rng: random.Random, lang: Lang = "nb") -> str:
    """How a person might write this value: a number, a label, a word."""
    if value == YES:
        return rng.choice(_YES)
    if value == NO:
        return rng.choice(_NO)
    if value == DONT_KNOW:
        return rng.choice(_DONT_KNOW)
    if value == NOT_RELEVANT:
        return "ikke relevant"
    if isinstance(value, list):
        parts = [_say_option(item, v, rng, lang) for v in value]
        if len(parts) > 1 and rng.random() < 0.5:
            return ", ".join(parts[:-1]) + " og " + parts[-1]
        return ", ".join(parts)
    if isinstance(value, int):
        if item.type is ItemType.NUMBER:
            return rng.choice((str(value), f"ca. {value}", f"{value} ansatte"))
        if value in _NUMBER_WORDS and rng.random() < 0.2:
            return _NUMBER_WORDS[value]
        return str(value)
    if item.type is ItemType.SINGLE:
        return _say_option(item, value, rng, lang)
    return value


def _say_option(item: Item, option_id: str, rng: random.Random, lang: Lang) -> str:
    index = next(n for n, o in enumerate(item.options) if o.id == option_id)
    option = item.options[index]
    roll = rng.random()
    if roll < 0.5:
        return str(index + 1)
    if roll < 0.6:
        return row_letter(index)
    return option.label.get(lang)


def compose_reply(items: list[Item], answers: dict[str, AnswerValue], rng: random.Random,
                  *, numbered: bool, lang: Lang = "nb") -> str:
    """A reply answering `items` with `answers`: numbered lines (`4: ja`) or plain lines."""
    lines: list[str] = []
    for item in items:
        if item.type is ItemType.GRID:
            values = [say_value(item, answers[f"{item.id}.{r.id}"], rng, lang) for r in item.rows]
            if numbered:
                lines.extend(f"{item.number}{row_letter(n)}: {v}" for n, v in enumerate(values))
            elif len(items) == 1 and rng.random() < 0.5:
                lines.extend(f"{row_letter(n)}) {v}" for n, v in enumerate(values))
            else:
                lines.append(" ".join(values))
            continue
        text = say_value(item, answers[item.id], rng, lang)
        lines.append(f"{item.number}: {text}" if numbered else text)
    return "\n".join(lines)


def _row_reply(grid: Item, row_id: str, answers: dict[str, AnswerValue], session: Session,
               rng: random.Random, lang: Lang) -> str:
    """A chat reply while one grid row is asked: usually that row's value, as a tap sends it
    or as typed; sometimes the rest of the grid at once (`4 3 2`, `c 4, d 3`)."""
    rest = [key for key in grid.keys[grid.keys.index(row_id):]
            if key == row_id or key not in session.answers]
    roll = rng.random()
    if len(rest) > 1 and roll < 0.15:
        values = [answers[key] for key in rest]
        if not all(_plain(v) for v in values):
            return say_value(grid, answers[row_id], rng, lang)
        return " ".join(_plain_word(v, rng) for v in values)
    if len(rest) > 1 and roll < 0.25:
        return ", ".join(
            f"{row_letter(grid.keys.index(key))} {say_value(grid, answers[key], rng, lang)}"
            for key in rest)
    return say_value(grid, answers[row_id], rng, lang)


def _plain(value: AnswerValue) -> bool:
    """Whether a value is written as one plain word or number in a list of rows."""
    return isinstance(value, int) or value in (YES, NO, DONT_KNOW, NOT_RELEVANT)


def _plain_word(value: AnswerValue, rng: random.Random) -> str:
    if isinstance(value, int):
        return str(value)
    return {YES: rng.choice(("ja", "j")), NO: rng.choice(("nei", "n")), DONT_KNOW: "vet ikke",
            NOT_RELEVANT: "ikke relevant"}[str(value)]


@dataclass(slots=True)
class Transcript:
    """What happened in one simulated conversation."""

    steps: list[Step]
    inputs: list[str]

    @property
    def final(self) -> Session:
        """The session after the last step."""
        return self.steps[-1].session


def converse(q: Questionnaire, rng: random.Random, *, channel: Channel = "email",
             lang: Lang = "nb", persona: Persona | None = None, now: datetime,
             known: dict[str, AnswerValue] | None = None, max_steps: int = 400) -> Transcript:
    """Walk one simulated respondent through the questionnaire with the real engine.

    The session crosses a JSON round trip between steps, as it does in storage. The respondent
    sometimes writes something the bot cannot read, asks a person a question or skips an item,
    then carries on, so the transcript exercises re-asking as well as the happy path.
    `known` answers (e.g. the respondent's own sector) are given instead of random ones.
    """
    persona = persona or Persona()
    step = advance(q, new_session(q.id, q.revision, channel=channel, lang=lang), Start(), now=now)
    steps, inputs = [step], []
    planned: dict[str, AnswerValue] = dict(known or {})
    confused: set[str] = set()
    while step.session.status is Status.IN_PROGRESS and len(steps) < max_steps:
        asked_ids = list(step.prompts[-1].asked) if step.prompts else []
        if not asked_ids:
            break
        asked = list({i: q.item(i) for i in (a.partition(".")[0] for a in asked_ids)}.values())
        for item in asked:
            if not any(a in planned for a in item.answer_ids()):
                planned.update(choose_value(item, rng, persona))
        first, unit = asked[0], asked_ids[0]
        if unit not in confused and rng.random() < persona.typo_rate:
            confused.add(unit)
            text = rng.choice(("hmm", "Hvem skal svare på dette?", "status", "hjelp"))
        elif not first.required and unit not in confused and rng.random() < persona.skip_rate:
            confused.add(unit)
            text = "hopp over"
        elif unit != first.id:
            text = _row_reply(first, unit, planned, step.session, rng, lang)
        else:
            session_answers = step.session.answers
            todo = [i for i in asked
                    if not all(a in session_answers for a in i.answer_ids())
                    or i.id in step.session.focus]
            text = compose_reply(todo or asked, planned, rng,
                                 numbered=channel == "email" and rng.random() < 0.7, lang=lang)
        inputs.append(text)
        stored = from_json(to_json(step.session))
        step = advance(q, stored, Reply(text), now=now)
        steps.append(step)
    return Transcript(steps=steps, inputs=inputs)
