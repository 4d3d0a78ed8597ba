"""What goes into the engine (inbound values) and what comes out (prompts, events, the step).

Events are facts in the past tense; the host acts on them (copy an answer to the anonymised
store, open a desk query, close an invitation). Prompts are what to say to the respondent;
the channel decides how (an email, a chat message with buttons).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flows.model import AnswerValue, Lang
from flows.session import Channel, Session

# --- inbound --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Begin (or re-show) the conversation: an invitation sent, a chat's /start."""

    channel: Channel | None = None
    lang: Lang | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A message from the respondent, as text (a chat button press arrives as its text)."""

    text: str
    channel: Channel | None = None


@dataclass(frozen=True, slots=True)
class Reminder:
    """The scheduler wants to remind: say where the respondent stands and ask again.

    `channel` is how the reminder goes (a chat or an email page); it need not be the channel
    of the last message (a blocked chat falls back to email).
    """

    channel: Channel | None = None


@dataclass(frozen=True, slots=True)
class OptOut:
    """The channel says the respondent opted out without words for the engine to read.

    The unsubscribe address, a subject line that says "Stopp", an unsubscribe button: the
    channel has decided, and the engine stops the conversation exactly as for the command.
    """

    channel: Channel | None = None


Inbound = Start | Reply | Reminder | OptOut


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerRecorded:
    """An answer was stored; `changed` when it replaced an earlier one."""

    answer_id: str
    value: AnswerValue
    changed: bool = False
    kind: str = "answer_recorded"


@dataclass(frozen=True, slots=True)
class AnswerRemoved:
    """An earlier answer no longer applies (a changed answer hid its question)."""

    answer_id: str
    kind: str = "answer_removed"


@dataclass(frozen=True, slots=True)
class ItemSkipped:
    """The respondent chose not to answer an item (`item_id`), or in a chat one grid row
    (`item_id` is then the row's answer id, `grid.row`)."""

    item_id: str
    kind: str = "item_skipped"


@dataclass(frozen=True, slots=True)
class InputRejected:
    """Text that could not be used; `item_id` is None when it could not be placed at all."""

    item_id: str | None
    reason: str
    text: str
    kind: str = "input_rejected"


@dataclass(frozen=True, slots=True)
class PageCompleted:
    """Every question on a page that applies has been answered or skipped."""

    page_id: str
    kind: str = "page_completed"


@dataclass(frozen=True, slots=True)
class QuestionnaireCompleted:
    """Nothing is left to ask."""

    kind: str = "questionnaire_completed"


@dataclass(frozen=True, slots=True)
class Stopped:
    """The respondent opted out."""

    kind: str = "stopped"


@dataclass(frozen=True, slots=True)
class Paused:
    """The respondent wants to continue later."""

    kind: str = "paused"


@dataclass(frozen=True, slots=True)
class Resumed:
    """A paused or stopped conversation goes on."""

    kind: str = "resumed"


@dataclass(frozen=True, slots=True)
class QueryRaised:
    """The respondent asked a person something; it goes to the contact person's desk."""

    text: str
    kind: str = "query_raised"


Event = (
    AnswerRecorded | AnswerRemoved | ItemSkipped | InputRejected | PageCompleted
    | QuestionnaireCompleted | Stopped | Paused | Resumed | QueryRaised
)


def event_dict(event: Event) -> dict[str, object]:
    """An event as a plain mapping (for logs, golden files and JSON lines)."""
    return asdict(event)


# --- outbound -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    """A quick answer a chat can offer as a button.

    Attributes:
        label: what the button says (at most `flows.render.BUTTON_CHARS` characters).
        reply: the text a tap sends; the engine reads it as exactly this answer to the item
            (or grid row) the prompt asks. For a multiple choice, the option's number: the
            chosen numbers are sent together as "1, 3, 5".
    """

    label: str
    reply: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """One message to the respondent.

    Attributes:
        kind: questions, completed, stopped, paused or info.
        text: the message as plain text, in the session's language.
        asked: what this message asks: item ids, or `item.row` for one grid row (a chat asks
            a grid a row at a time; the id is the row's answer id in the store).
        choices: buttons for a chat, in order (empty for email, numbers and free text).
        multiple: the choices are options of a multiple choice, to be toggled and sent
            together (their replies joined by ", ") rather than sent on the first tap.
    """

    kind: str
    text: str
    asked: tuple[str, ...] = ()
    choices: tuple[Choice, ...] = ()
    multiple: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one `advance`: the new session, what to send, what happened."""

    session: Session
    prompts: tuple[Prompt, ...]
    events: tuple[Event, ...]
