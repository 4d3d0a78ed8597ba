"""Properties of the engine that must hold for any input whatsoever."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.engine import advance
from flows.events import Reminder, Reply, Start
from flows.loader import load_shipped
from flows.model import Questionnaire
from flows.session import Status, from_json, new_session, to_json
from flows.simulate import Persona, choose_value, converse

NOW = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)
QUESTIONNAIRES = {q_id: load_shipped(q_id) for q_id in ("virksomhetsleder-2020", "ordforer-2020")}

messages = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from([
        "1: ja", "2) 4", "3 - helse og omsorg", "ja", "nei", "vet ikke", "hjelp", "tilbake",
        "hopp over", "endre 3", "pause", "status", "stopp", "fortsett", "a) 4", "4 5 3 2",
        "Hvem skal svare på dette?", "ca. 40", "1, 3 og 5", "", "\n", "endre 999", "17a: 7",
        "1", "2", "4", "ikke relevant", "3 4 2", "a 3, b 4", "ja nei", "endre 10", "endre 17",
    ]), max_size=6).map("\n".join),
)


def names_something(q: Questionnaire, asked_id: str) -> bool:
    """An item id, or `grid.row` for a row of a grid."""
    item_id, dot, _ = asked_id.partition(".")
    item = q.find(item_id)
    return item is not None and (not dot or asked_id in item.keys)


@pytest.mark.parametrize("q_id", sorted(QUESTIONNAIRES))
@given(inputs=st.lists(messages, max_size=8), chat=st.booleans())
def test_engine_never_raises_and_state_survives_json(q_id: str, inputs: list[str],
                                                     chat: bool) -> None:
    """Any sequence of Unicode messages: no exception, a valid session, a prompt every time."""
    q = QUESTIONNAIRES[q_id]
    session = new_session(q.id, q.revision, channel="chat" if chat else "email")
    step = advance(q, session, Start(), now=NOW)
    for text in inputs:
        stored = to_json(step.session)
        assert from_json(stored) == step.session
        step = advance(q, from_json(stored), Reply(text), now=NOW)
        assert step.prompts, "every reply gets an answer"
        for ids in (step.session.asked, step.session.focus, step.session.skipped,
                    step.session.answers):
            assert all(names_something(q, i) for i in ids), ids
        assert all(len(p.asked) == 1 for p in step.prompts if chat and p.kind == "questions")
    step = advance(q, from_json(to_json(step.session)), Reminder(), now=NOW)
    assert from_json(to_json(step.session)) == step.session


@pytest.mark.parametrize("q_id", sorted(QUESTIONNAIRES))
@given(inputs=st.lists(messages, max_size=6), chat=st.booleans())
def test_same_inputs_give_the_same_steps(q_id: str, inputs: list[str], chat: bool) -> None:
    """Determinism: replaying the same messages gives equal steps."""
    q = QUESTIONNAIRES[q_id]
    channel = "chat" if chat else "email"

    def play() -> list[object]:
        step = advance(q, new_session(q.id, q.revision, channel=channel), Start(), now=NOW)
        out: list[object] = [step]
        for text in inputs:
            step = advance(q, step.session, Reply(text), now=NOW)
            out.append(step)
        return out

    assert play() == play()


@pytest.mark.parametrize("q_id", sorted(QUESTIONNAIRES))
@pytest.mark.parametrize("channel", ["email", "chat"])
def test_simulated_respondents_finish(q_id: str, channel: str) -> None:
    """Respondents who write the way people do (numbers, labels, words) get to the end."""
    q = QUESTIONNAIRES[q_id]
    rng = random.Random(11)
    for _ in range(25):
        transcript = converse(q, rng, channel=channel, now=NOW,  # type: ignore[arg-type]
                              persona=Persona(typo_rate=0.2, skip_rate=0.1))
        assert transcript.final.status is Status.COMPLETED, transcript.inputs[-3:]


def _reachable(q: Questionnaire) -> set[str]:
    """Items asked along some answer path, found by walking many random respondents."""
    seen: set[str] = set()
    rng = random.Random(5)
    for _ in range(150):
        step = advance(q, new_session(q.id, q.revision, channel="chat"), Start(), now=NOW)
        while step.session.status is Status.IN_PROGRESS and step.prompts[0].asked:
            item = q.item(step.prompts[0].asked[0].partition(".")[0])
            seen.add(item.id)
            values = choose_value(item, rng, Persona(dont_know_rate=0.2))
            for answer_id, value in values.items():
                answers = dict(step.session.answers)
                answers[answer_id] = value
                step = advance(q, step.session.with_changes(answers=answers, asked=()),
                               Reply("status"), now=NOW)
    return seen


@pytest.mark.parametrize("q_id", sorted(QUESTIONNAIRES))
def test_every_item_is_reachable(q_id: str) -> None:
    """Every item of the shipped questionnaires is asked on some answer path."""
    q = QUESTIONNAIRES[q_id]
    assert _reachable(q) == {item.id for item in q.items}
