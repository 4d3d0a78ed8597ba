"""The demo's simulated Telegram users read what the chat shows and answer what they meant.

They see only the text and the buttons, so these tests walk the real engine in chat mode
through both questionnaires, in every language, and check that the question a person reads
off each message is the one the engine asks, and that the button they tap (read back as the
Telegram channel reads a tap) records the answer they had decided on.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from bot.channels.telegram.render import keyboard, read_tap
from bot.demo.telegram_people import (
    choose_button,
    done_button,
    read_question,
    start_payload,
    tick_button,
    tick_labels,
)
from bot.demo.world import Behaviour, Respondent, Route, draw_route, telegram_link
from flows.engine import advance
from flows.events import AnswerRecorded, Reply, Start
from flows.loader import load_shipped
from flows.model import ItemType, Lang
from flows.session import Status, new_session
from flows.simulate import Persona, choose_value, say_value
from flows.simulate import compose_reply as compose_answers

NOW = dt.datetime(2019, 10, 15, 9, 0, tzinfo=dt.UTC)


def _tap_reply(rows: list[list[tuple[str, str]]], data: str) -> str | None:
    tap = read_tap(data, rows)
    assert tap is not None, f"the button {data!r} is not one of the keyboard's"
    return tap.reply


def _ticked(rows: list[list[tuple[str, str]]], labels: list[str]) -> str:
    """Tick `labels` one by one on a multiple choice's keyboard, then "Ferdig": the reply."""
    for label in labels:
        data = tick_button([b for row in rows for b in row], label)
        assert data is not None, f"no option {label!r} to tick"
        tap = read_tap(data, rows)
        assert tap is not None
        assert tap.keyboard is not None
        rows = tap.keyboard
    done = done_button([b for row in rows for b in row])
    assert done is not None
    reply = _tap_reply(rows, done)
    assert reply is not None
    return reply


@pytest.mark.parametrize("survey", ["ordforer-2020", "virksomhetsleder-2020"])
@pytest.mark.parametrize("lang", ["nb", "nn", "en"])
def test_a_chat_user_reads_each_question_and_taps_what_they_meant(survey: str,
                                                                   lang: Lang) -> None:
    q = load_shipped(survey)
    for seed in range(6):
        rng = random.Random(seed)
        person = Respondent(address="a@kommune.example", name="Kari Nordmann", lang=lang,
                            questionnaire=q, behaviour=Behaviour.ANSWERS, style="outlook_nb",
                            rng=rng, persona=Persona(skip_rate=0, typo_rate=0))
        step = advance(q, new_session(q.id, q.revision, channel="chat", lang=lang),
                       Start(channel="chat", lang=lang), now=NOW)
        taps = 0
        while step.session.status is Status.IN_PROGRESS:
            prompt = step.prompts[-1]
            text = "\n\n".join(p.text for p in step.prompts if p.text.strip())
            asked = read_question(person, text)
            assert asked is not None, text
            if len(prompt.asked) == 1:
                assert asked.key == prompt.asked[0], text
            item = asked.item
            if not any(a in person.planned for a in item.answer_ids()):
                person.planned.update(choose_value(item, rng, person.persona))
            if item.type is ItemType.GRID and asked.row is None:
                reply = compose_answers([item], person.planned, rng, numbered=False, lang=lang)
            else:
                value = person.planned[asked.key]
                rows = keyboard(prompt.asked[0], prompt.choices, multiple=prompt.multiple,
                                lang=lang)
                buttons = [b for row in rows for b in row]
                if item.type is ItemType.MULTI and rows:
                    reply = _ticked(rows, tick_labels(item, value, lang))
                elif rows:
                    data = choose_button(buttons, item, value, lang)
                    assert data is not None, (asked.key, value, buttons)
                    tapped = _tap_reply(rows, data)
                    assert tapped is not None
                    reply = tapped
                else:
                    reply = say_value(item, value, rng, lang)
                taps += bool(rows)
            step = advance(q, step.session, Reply(reply, channel="chat"), now=NOW)
            recorded = {e.answer_id: e.value for e in step.events
                        if isinstance(e, AnswerRecorded)}
            assert asked.key in recorded or (asked.row is None and recorded), (asked, reply)
            for key, value in recorded.items():
                assert value == person.planned[key], (key, reply)
        assert step.session.status is Status.COMPLETED
        assert taps > 5


def test_the_link_is_read_from_the_mail_and_its_payload_from_the_link() -> None:
    text = ("1. Hvilket verv hadde du?\n\nSvar heller på mobilen i Telegram: "
            "https://t.me/svarbot_demo_bot?start=AbC_d-0123456789abcdefghijklmnopq\n")
    link = telegram_link(text)
    assert link == "https://t.me/svarbot_demo_bot?start=AbC_d-0123456789abcdefghijklmnopq"
    assert start_payload(link) == "AbC_d-0123456789abcdefghijklmnopq"
    assert telegram_link("Svar på denne e-posten.") is None


def test_routes_follow_the_share_and_include_every_way_of_using_the_chat() -> None:
    rng = random.Random(1)
    routes = [draw_route(rng, 0.25) for _ in range(4000)]
    chat = [r for r in routes if r is not Route.EMAIL]
    assert 0.22 < len(chat) / len(routes) < 0.28
    assert {Route.TELEGRAM, Route.SWITCHES, Route.BACK_TO_EMAIL} == set(chat)
    assert all(draw_route(rng, 0.0) is Route.EMAIL for _ in range(100))
