"""What every channel provides, and the channel-neutral values that cross the seams.

A channel only translates between the conversation core and one way of reaching people:

* outbound, `outgoing` turns the engine's prompts (plus what the respondent needs around them:
  the survey title, progress, the contact line) into an `Outgoing`: the recipient on this
  channel and the outbox payload; `transport` delivers claimed rows and says only `Delivery`
  (sent, retry, permanent failure);
* inbound, `read` turns the stored bytes of an inbox row into a `Reading`: what to feed the
  engine, or a verdict that ends the matter without it (a bounce, an auto-reply, unreadable);
* `receivers` are the parts that put new messages into the inbox (an SMTP listener, an IMAP
  reader, a Telegram poller);
* `reachable` says, as SQL, which invitations can be written to on this channel.

Everything else (claims, leases, retries, rate limits, the delivery history, sessions, answers,
desk queries, status changes) lives once, in `bot.channels.outbox_worker` and
`bot.conversation`, for every channel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import Session, sessionmaker

    from flows.events import Choice
    from flows.model import Lang
    from flows.session import Channel as Style
    from storage.outbox import Claimed
    from storage.schema import Invitation, Respondent


class Verdict(StrEnum):
    """What an inbound message is, as far as the conversation is concerned."""

    ANSWER = "answer"
    QUERY = "query"
    OPT_OUT = "opt_out"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    #: The respondent marked our message as spam: never write to them again.
    COMPLAINT = "complaint"
    #: Nothing to do and nothing to keep (our own message come back, a delivery report).
    IGNORE = "ignore"
    #: A person should look at it (a forward, a message of unknown kind): quarantined.
    UNKNOWN = "unknown"
    FORWARD = "forward"


@dataclass(frozen=True, slots=True)
class Bounce:
    """A delivery failure report, reduced to what the conversation acts on."""

    permanent: bool
    status: str | None
    #: The outbox Message-ID of the message that failed, when the report names it.
    original_message_id: str | None


@dataclass(frozen=True, slots=True)
class Reading:
    """One inbound message as its channel understood it.

    `text` is what the respondent wrote (quotes, signatures and footers removed), for the
    engine. `token` ties the message to an invitation; `references` are outbox Message-IDs it
    answers, tried in order when there is no token. `reply` is the channel's own context for
    answering in the same thread (email: In-Reply-To and References). `sender` is the
    channel's address of whoever wrote (compared with the invitation's by the channel).
    `rule` and `needs_review` say how the text was extracted, for the inbox's history.
    """

    verdict: Verdict
    reason: str
    text: str = ""
    token: str | None = None
    references: tuple[str, ...] = ()
    reply: ReplyContext | None = None
    sender: str | None = None
    bounce: Bounce | None = None
    return_date: dt.date | None = None
    rule: str = ""
    needs_review: bool = False
    #: A join code the sender presents (a chat's `/start <payload>`); "" for none given.
    start: str | None = None
    #: The channel the sender asks to continue on ("email").
    switch_to: str | None = None
    #: A note for the sender whatever else happens (the channel's own words, by key).
    notice: str | None = None
    #: The sender's language as their app reports it, for words to a sender not yet known.
    lang: str | None = None
    #: A button press (to be acknowledged), and the asked item it answers (the channel's key).
    tap: bool = False
    item: str | None = None
    #: What only the channel needs to answer this message (opaque to the core).
    private: object = None


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """Where an answer to an inbound message belongs: the message and its thread."""

    message_id: str | None = None
    references: tuple[str, ...] = ()


class Unreadable(Exception):
    """The stored message cannot be read at all; `reason` is the quarantine reason code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    """What the respondent is to read: the engine's prompts and what goes around them."""

    kind: str
    lang: Lang
    token: str
    to_name: str
    survey_title: str
    prompts: tuple[str, ...]
    progress: tuple[int, int] | None
    contact: str | None
    reply: ReplyContext | None = None
    #: The item ids the prompts ask, and the quick answers for them (a chat's buttons).
    asked: tuple[str, ...] = ()
    choices: tuple[Choice, ...] = ()
    #: The item asked takes several choices (toggle buttons and "Ferdig").
    multiple: bool = False
    #: Links that move the conversation to another channel: (channel name, url).
    join_links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An outbox row's channel part: the recipient, the payload, and its message id."""

    recipient: str
    payload: dict[str, object]
    message_id: str | None = None


DeliveryResult = Literal["sent", "retry", "bounced", "dead", "unreachable"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt came to, as the outbox worker needs it.

    `result` is "sent", "retry" (try again later), "bounced" (the recipient can never be
    reached here) or "dead" (the message itself can never be sent). `reason` goes into the
    message's history. `retry_after` is the wait the other side asked for (seconds); with
    `pause_all` the whole channel waits that long, not only this message (a flood limit).
    `ours` marks a failure of our own account or settings (a warning for the operator).
    """

    result: DeliveryResult
    reason: str
    code: int | None = None
    retry_after: float | None = None
    pause_all: bool = False
    ours: bool = False


#: Waits for a message's turn among the channel's sends (see `Transport.send`).
Turn = Callable[[], Awaitable[None]]


class Transport(Protocol):
    """Delivers claimed outbox rows of one channel; knows nothing of claims or retries."""

    #: How many messages may be in flight at once (SMTP connections, HTTP requests).
    concurrency: int

    async def send(self, item: Claimed, slot: int, turn: Turn) -> Delivery:
        """Try to deliver `item` over slot `slot` (0 ≤ slot < concurrency); never raises.

        `await turn()` right before the message leaves: the worker spaces the channel's
        messages there, after whatever the transport waited for itself (a chat's pace), so
        a message held back does not arrive bunched with the ones after it.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class Receiver(Protocol):
    """A part that stores new inbound messages in the inbox (and wakes the dispatcher)."""

    #: Only one process at a time runs it (the leader): a mailbox poller, a chat poller.
    leader_only: bool
    #: It listens on a port, so only the first process of a `--workers` group runs it.
    binds_port: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """A channel's sending limits for the whole account or bot: per minute and per day, and
    per second where the other side counts that way (Telegram's broadcast limit)."""

    per_minute: int
    per_day: int
    per_second: int | None = None


class Channel(Protocol):
    """One way of reaching respondents (see the module docstring)."""

    #: The name in the outbox and inbox rows, and in the plan (`email`, `telegram`).
    name: str
    #: How the engine asks on this channel: a page at a time (email) or one item (chat).
    style: Style

    def address(self, invitation: Invitation, respondent: Respondent) -> str | None:
        """The invitation's recipient on this channel; None when it cannot be reached here."""
        ...

    def reachable(self) -> ColumnElement[bool]:
        """SQL: the invitations that `address` would give a recipient for."""
        ...

    def outgoing(self, message: Message, recipient: str) -> Sequence[Outgoing]:
        """The outbox rows for `message` to `recipient` (a chat may need several), in order."""
        ...

    def read(self, raw: bytes, *, today: dt.date) -> Reading:
        """What the stored inbound message is. Raises `Unreadable`."""
        ...

    def same_sender(self, reading: Reading, invitation: Invitation,
                    respondent: Respondent) -> bool:
        """Whether the message came from the invitation's own address on this channel."""
        ...

    def lookup(self, session: Session, reading: Reading) -> Invitation | None:
        """The invitation a message belongs to by the channel's own means (a bound chat),
        when it carries no token; None when there is none."""
        ...

    def bind(self, session: Session, invitation: Invitation, reading: Reading) -> bool:
        """Tie the sender to `invitation` (a join code was presented); False when the
        invitation is already tied to someone else on this channel."""
        ...

    def join_link(self, session: Session, invitation: Invitation) -> str | None:
        """A link that moves the conversation to this channel, for messages sent on the
        others (None: this channel has none)."""
        ...

    def notice(self, reading: Reading, key: str, lang: str) -> Outgoing | None:
        """The channel's own note `key` to the sender of `reading` (None: it has none)."""
        ...

    def still_asked(self, reading: Reading, asked: Sequence[str]) -> bool:
        """Whether the item a tap answers (`reading.item`) is among the `asked` ids."""
        ...

    def acknowledge(self, reading: Reading, *, stale: bool) -> Sequence[Outgoing]:
        """What answers a button press (`reading.tap`): stop the spinner, take the buttons
        away (or show a toggled keyboard); `stale` when the item was answered already."""
        ...

    def limits(self) -> Limits:
        """The sending limits the outbox worker keeps to."""
        ...

    def retry_for(self) -> dt.timedelta:
        """How long a message is retried before it is given up (dead)."""
        ...

    def lease(self) -> dt.timedelta:
        """How long a claimed message is the claimer's before another worker may take it."""
        ...

    def transport(self) -> Transport:
        """A new transport (its connections are opened on first use)."""
        ...

    def receivers(self, session_factory: sessionmaker[Session],
                  on_stored: Callable[[], None]) -> Sequence[Receiver]:
        """The parts that store this channel's inbound messages (may be none)."""
        ...


@dataclass(slots=True)
class Channels:
    """The configured channels by name: the one place that knows them all."""

    by_name: dict[str, Channel] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Channel:
        return self.by_name[name]

    def get(self, name: str) -> Channel | None:
        return self.by_name.get(name)

    def __iter__(self) -> Iterator[Channel]:
        return iter(self.by_name.values())

    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)


class ChannelError(Exception):
    """A channel cannot start as configured; the message is one line for the operator."""
