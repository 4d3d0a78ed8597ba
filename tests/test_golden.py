"""Golden conversations: whole scripted conversations whose every prompt and event is on file.

Each case drives a shipped questionnaire through the engine, with the session round-tripped
through JSON between steps, and compares the result with `tests/golden/<case>.json`. The files
are meant to be read in review: they show exactly what a respondent receives. After an intended
change, rewrite them with `pytest tests/test_golden.py --update-golden` and read the diff.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.engine import advance
from flows.events import Reply, Start, Step, event_dict
from flows.loader import load_shipped
from flows.model import Lang
from flows.session import Channel, from_json, new_session, to_json

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2019, 10, 15, 9, 0, tzinfo=UTC)

#: case name -> (questionnaire, channel, language, the respondent's messages in order)
CASES: dict[str, tuple[str, Channel, Lang, list[str]]] = {
    "virksomhetsleder.email.nb": ("virksomhetsleder-2020", "email", "nb", [
        "Hei!\n\n1: helse og omsorg\n2: sykehjem\n3: ca. 85 ansatte\n\nMvh Kari",
        "4: ja nei ja nei",
        "7: Digitalt nattilsyn med sensorer.\n8: 1 og 3\n9: a\n10: inspirert\n12: 2\n13: jepp",
        "Hva menes med nettverk her?",
        "1, 3",
        "14: ledere og ansatte\n15: 1, 2, 3, 4\n16: andre kommuner",
        "ansatte og brukere",
        "17: 5 6 4 6 2 5 4 3 vet ikke",
        "18: bedre kvalitet, økt effektivitet\n19: nei\n21: intern",
        "endre 19",
        "ja",
        "konferanser",
        "ja\nnei\nja\n3 4 3 2 1\nhopp over",
    ]),
    "virksomhetsleder.chat.nn": ("virksomhetsleder-2020", "chat", "nn", [
        "4", "bibliotek", "ca 12", "nei nei nei nei", "status", "jo", "tilbake", "nei",
        "hopp over", "veit ikkje", "ja", "a) 4\nb) 3\nc) 2\nd) 1\ne) veit ikkje",
        "Eg har ikkje noko å leggje til.", "takk",
    ]),
    "ordforer.email.nb": ("ordforer-2020", "email", "nb", [
        "kommune",
        "1",
        "3: ja\n6: nei",
        "4: begge\n5: 1, 2 og 4",
        "Jepp",
        "8: helse, oppvekst\n9: Velferdsteknologi i hjemmetjenesten.",
        "10: 4 3 3 2 4\n11: delvis uenig\n12: a, c\n13: ja",
        "pause",
        "Ingen flere kommentarer.",
    ]),
    # A mayor on a phone: every reply is what a button sends, the grid a row at a time.
    "ordforer.chat.nb": ("ordforer-2020", "chat", "nb", [
        "1", "3", "1", "3", "1, 2, 4", "ja", "ja", "2, 4", "hopp over",
        "4", "3", "tilbake", "2", "hopp over", "vet ikke", "4",
        "3", "2, 3", "nei", "endre 10", "4", "3", "1", "4", "4",
        "Ingen flere kommentarer.",
    ]),
    "ordforer.chat.en": ("ordforer-2020", "chat", "en", [
        "2", "don't know", "1 and 2", "no", "yes", "1", "skip", "4 4 4 4 4", "3", "stop",
        "7: yes", "continue",
    ]),
}


def _record(step: Step, message: str | None) -> dict[str, object]:
    return {
        "input": message,
        "prompts": [
            {"kind": p.kind, "asked": list(p.asked), "text": p.text.split("\n"),
             **({"buttons": [c.label for c in p.choices]} if p.choices else {}),
             **({"multiple": True} if p.multiple else {})}
            for p in step.prompts
        ],
        "events": [event_dict(e) for e in step.events],
        "status": step.session.status.value,
    }


def run_case(name: str) -> dict[str, object]:
    """Play one case through the engine and return its transcript."""
    q_id, channel, lang, messages = CASES[name]
    q = load_shipped(q_id)
    stored = to_json(new_session(q.id, q.revision, channel=channel, lang=lang))
    step = advance(q, from_json(stored), Start(), now=NOW)
    steps = [_record(step, None)]
    for message in messages:
        stored = to_json(step.session)
        step = advance(q, from_json(stored), Reply(message), now=NOW)
        steps.append(_record(step, message))
    return {"questionnaire": q_id, "channel": channel, "lang": lang, "steps": steps,
            "answers": step.session.answers}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_conversation(name: str, update_golden: bool) -> None:
    """The conversation gives exactly the prompts and events on file."""
    path = GOLDEN / f"{name}.json"
    actual = run_case(name)
    if update_golden:
        path.write_text(json.dumps(actual, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert path.exists(), f"{path} is missing; create it with --update-golden and review it"
    expected = json.loads(path.read_text(encoding="utf-8"))
    for number, (want, got) in enumerate(zip(expected["steps"], actual["steps"], strict=False)):
        assert got == want, f"{name}: step {number} (input {got['input']!r}) differs"
    assert actual == expected


def test_golden_cases_end_where_they_should() -> None:
    """The scripted paths finish (or stop) as intended, so the files cover whole conversations."""
    assert run_case("virksomhetsleder.email.nb")["steps"][-1]["status"] == "completed"
    assert run_case("virksomhetsleder.chat.nn")["steps"][-1]["status"] == "completed"
    assert run_case("ordforer.email.nb")["steps"][-1]["status"] == "completed"
    assert run_case("ordforer.chat.nb")["steps"][-1]["status"] == "completed"
    assert run_case("ordforer.chat.en")["steps"][-1]["status"] == "in_progress"
