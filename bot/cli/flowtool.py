"""The questionnaire simulator behind `svarbot flow`: check, show and try a questionnaire file.

For whoever writes questionnaires: `check` lists every problem with its line, `show` prints the
normalised questionnaire, and `try` runs the real engine in the terminal (or as JSON lines for
scripts), exactly as a respondent would meet it by email or in a chat.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, TextIO

from flows.engine import advance
from flows.events import InputRejected, Reply, Start, Step
from flows.model import Item, ItemType, Lang, Questionnaire, Text
from flows.session import Channel, Session, from_json, new_session, to_json


def _text_json(text: Text) -> dict[str, str]:
    return {lang: value for lang, value in (("nb", text.nb), ("nn", text.nn), ("en", text.en))
            if value}


def _item_json(item: Item) -> dict[str, object]:
    data: dict[str, object] = {
        "id": item.id,
        "number": item.number,
        "page": item.page,
        "type": item.type.value,
        "text": _text_json(item.text),
        "required": item.required,
        "options": [{"id": o.id, "label": _text_json(o.label), "exclusive": o.exclusive}
                    for o in item.options],
        "min": item.min,
        "max": item.max,
        "rows": [{"id": r.id, "label": _text_json(r.label)} for r in item.rows],
    }
    if item.scale is not None:
        data["min"], data["max"] = item.scale.min, item.scale.max
        data["labels"] = {str(p): _text_json(t) for p, t in item.scale.labels}
        data["dont_know"] = item.scale.dont_know
        data["not_relevant"] = item.scale.not_relevant
    elif item.type is ItemType.YESNO or (item.row_type == "yesno" and item.rows):
        data["dont_know"] = item.dont_know
    if item.type is ItemType.MULTI:
        data["max_choices"] = item.max_choices
    if item.type is ItemType.TEXT:
        data["max_length"] = item.max_length
    if item.type is ItemType.GRID:
        data["row_type"] = item.row_type
    data["conditional"] = item.show_if is not None
    return data


def questionnaire_json(q: Questionnaire) -> dict[str, object]:
    """The normalised questionnaire as plain data (what `flow show --json` prints)."""
    return {
        "id": q.id,
        "spec_version": q.spec_version,
        "revision": q.revision,
        "title": _text_json(q.title),
        "languages": list(q.languages),
        "pages": [{"id": p.id, "title": _text_json(p.title), "items": [i.id for i in p.items]}
                  for p in q.pages],
        "items": [_item_json(item) for item in q.items],
    }


def _now() -> datetime:
    """The simulator's clock: the one place here that reads the time."""
    return datetime.now(UTC)


class Conversation:
    """One simulated conversation; the session crosses a JSON round trip between steps,
    exactly as it will when stored with an invitation."""

    def __init__(self, q: Questionnaire, *, channel: Channel, lang: Lang) -> None:
        self.q = q
        self._stored = to_json(new_session(q.id, q.revision, channel=channel, lang=lang))

    @property
    def session(self) -> Session:
        """The current session, read back from its stored form."""
        return from_json(self._stored)

    def step(self, inbound: Start | Reply) -> Step:
        """Advance one step and store the new session."""
        result = advance(self.q, self.session, inbound, now=_now())
        self._stored = to_json(result.session)
        return result


def jsonl_line(step: Step) -> dict[str, object]:
    """One output line of `flow try --jsonl`."""
    recorded: dict[str, object] = {}
    for event in step.events:
        if event.kind == "answer_recorded":
            recorded[event.answer_id] = event.value  # type: ignore[union-attr]
    rejected = sorted({e.item_id for e in step.events
                       if isinstance(e, InputRejected) and e.item_id is not None})
    return {
        "asked": list(step.prompts[-1].asked) if step.prompts else [],
        "prompt": "\n\n".join(p.text for p in step.prompts),
        "recorded": recorded,
        "rejected": rejected,
        "events": [e.kind for e in step.events],
        "status": step.session.status.value,
        "answers": step.session.answers,
    }


def run_jsonl(q: Questionnaire, lines: Iterable[str], out: TextIO, *, channel: Channel,
              lang: Lang) -> int:
    """Drive a conversation from JSON lines (`{"text": ...}`); one output line per step.

    A line that is not a JSON object with a text string gets an `{"error": ...}` line and the
    conversation carries on. Returns the number of such bad lines.
    """
    conversation = Conversation(q, channel=channel, lang=lang)
    _emit(out, jsonl_line(conversation.step(Start())))
    bad = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            message = json.loads(raw)
        except json.JSONDecodeError as exc:
            message = None
            problem = f"input line {number}: not JSON ({exc.msg})"
        else:
            problem = f"input line {number}: expected an object like {{\"text\": \"ja\"}}"
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            bad += 1
            _emit(out, {"error": problem})
            continue
        _emit(out, jsonl_line(conversation.step(Reply(message["text"]))))
    return bad


def _emit(out: TextIO, data: dict[str, object]) -> None:
    out.write(json.dumps(data, ensure_ascii=False) + "\n")
    out.flush()


def _read_messages(stream: IO[str], channel: Channel, prompt: str) -> Iterator[str]:
    """Messages typed in the terminal: a chat sends each line, an email ends at an empty line."""
    while True:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        if channel == "chat":
            line = stream.readline()
            if not line:
                return
            yield line.rstrip("\n")
            continue
        lines: list[str] = []
        while True:
            line = stream.readline()
            if not line:
                if lines:
                    yield "\n".join(lines)
                return
            if not line.strip() and lines:
                break
            if line.strip():
                lines.append(line.rstrip("\n"))
        yield "\n".join(lines)


def run_interactive(q: Questionnaire, stream: IO[str], out: TextIO, *, channel: Channel,
                    lang: Lang) -> None:
    """A conversation in the terminal, as the respondent would have it."""
    conversation = Conversation(q, channel=channel, lang=lang)
    how = ("(Skriv svaret; en tom linje sender e-posten. Ctrl-D avslutter.)" if channel == "email"
           else "(Skriv en melding og trykk Enter. Ctrl-D avslutter.)")
    out.write(how + "\n\n")
    step = conversation.step(Start())
    _print_step(step, out)
    for message in _read_messages(stream, channel, "\n> " if channel == "chat" else "\n>>> "):
        step = conversation.step(Reply(message))
        _print_step(step, out)
        if step.session.status.value in ("stopped",):
            break


def _print_step(step: Step, out: TextIO) -> None:
    for prompt in step.prompts:
        out.write("\n" + "─" * 60 + "\n")
        out.write(prompt.text + "\n")
        if prompt.choices:
            out.write("   [" + "] [".join(c.label for c in prompt.choices) + "]\n")
    out.flush()
