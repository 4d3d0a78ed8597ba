"""The state of one conversation: a small, versioned, JSON-serialisable value.

The session belongs to the invitation, not to a channel, so a respondent can start by email and
finish in a chat. It holds the answers given so far because skip logic, "change item 3" and
progress all need them; the channels copy answers to the anonymised store as they are recorded,
and sealing a survey deletes whatever sessions remain.

`to_json`/`from_json` are the only way a session crosses a process boundary; the version field
lets a later svarbot upgrade sessions stored by an earlier one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, cast

from flows.model import LANGS, AnswerValue, Lang

SESSION_VERSION = 1

Channel = Literal["email", "chat"]
CHANNELS: tuple[Channel, ...] = ("email", "chat")


class Status(StrEnum):
    """Where a conversation stands."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"


class SessionError(ValueError):
    """A stored session that cannot be read (wrong version, damaged JSON)."""


@dataclass(frozen=True, slots=True)
class Session:
    """One respondent's conversation with one questionnaire.

    Attributes:
        answers: recorded values by answer id (item id, or `grid.row`).
        skipped: what the respondent chose to skip: item ids, and in a chat single grid rows
            (`grid.row`).
        focus: what is asked out of order (after `tilbake` or `endre 3`), in the ids of
            `asked`; empty means "whatever comes next".
        asked: the ids the last prompt asked, which a reply is read against: item ids, or in
            a chat `grid.row` for a grid asked one row at a time.
        updated_at: ISO timestamp of the last step, from the caller's clock.
    """

    questionnaire: str
    revision: str
    channel: Channel = "email"
    lang: Lang = "nb"
    status: Status = Status.NEW
    answers: dict[str, AnswerValue] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    focus: tuple[str, ...] = ()
    asked: tuple[str, ...] = ()
    updated_at: str = ""
    version: int = SESSION_VERSION

    def with_changes(self, **changes: object) -> Session:
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


def new_session(questionnaire_id: str, revision: str, *, channel: Channel = "email",
                lang: Lang = "nb") -> Session:
    """A session that has not started yet."""
    return Session(questionnaire=questionnaire_id, revision=revision, channel=channel, lang=lang)


def to_json(session: Session) -> str:
    """Serialise a session (stable key order, so equal sessions give equal text)."""
    return json.dumps(
        {
            "version": session.version,
            "questionnaire": session.questionnaire,
            "revision": session.revision,
            "channel": session.channel,
            "lang": session.lang,
            "status": session.status.value,
            "answers": session.answers,
            "skipped": list(session.skipped),
            "focus": list(session.focus),
            "asked": list(session.asked),
            "updated_at": session.updated_at,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _strings(raw: object, name: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise SessionError(f"session field '{name}' must be a list of strings")
    return tuple(cast(list[str], raw))


def _answer(raw: object, key: str) -> AnswerValue:
    if isinstance(raw, bool):
        raise SessionError(f"session answer '{key}' has a bad value")
    if isinstance(raw, str | int):
        return raw
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return cast(list[str], raw)
    raise SessionError(f"session answer '{key}' has a bad value")


def from_json(text: str) -> Session:
    """Read a session written by `to_json`.

    Raises:
        SessionError: the text is not a session of a version this svarbot understands.
    """
    try:
        raw = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise SessionError(f"session is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise SessionError("session must be a JSON object")
    version = raw.get("version")
    if version != SESSION_VERSION:
        raise SessionError(f"session version {version!r} is not supported")
    try:
        channel = raw["channel"]
        lang = raw["lang"]
        answers_raw = raw["answers"]
        if channel not in CHANNELS:
            raise SessionError(f"unknown channel {channel!r}")
        if lang not in LANGS:
            raise SessionError(f"unknown language {lang!r}")
        if not isinstance(answers_raw, dict):
            raise SessionError("session answers must be an object")
        return Session(
            questionnaire=str(raw["questionnaire"]),
            revision=str(raw["revision"]),
            channel=channel,
            lang=lang,
            status=Status(raw["status"]),
            answers={str(k): _answer(v, str(k)) for k, v in answers_raw.items()},
            skipped=_strings(raw["skipped"], "skipped"),
            focus=_strings(raw["focus"], "focus"),
            asked=_strings(raw["asked"], "asked"),
            updated_at=str(raw["updated_at"]),
            version=SESSION_VERSION,
        )
    except KeyError as exc:
        raise SessionError(f"session is missing '{exc.args[0]}'") from exc
    except ValueError as exc:
        if isinstance(exc, SessionError):
            raise
        raise SessionError(str(exc)) from exc
