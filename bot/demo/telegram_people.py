"""The demo's Telegram users: respondents who answer on their phone, in the chat with the bot.

They play Telegram's side through the fake Bot API's control API (`FakeTelegram.message`,
`FakeTelegram.click`), so that everything they do reaches svarbot as it would from Telegram:
as updates its poller fetches, stored in the inbox, read by the Telegram channel and answered
by the engine through the outbox and the Telegram worker.

A person reads only what the chat shows: the newest question in the bot's latest messages
(`read_question`: "7. Tok kommunestyret …" or, for one row of a grid, "10b) Administrasjonen
…") and the buttons under it. They never assume an order of questions, so a questionnaire or
an engine that asks differently (a grid at once or a row at a time) is answered all the same.
What they answer is decided as for the email respondents (`flows.simulate.choose_value`, kept
in the person's plan, so a switch of channel does not change their mind). Most of the time
they tap the button that says their answer (for a multiple choice, each option and then
"Ferdig", waiting for the ticks to show as a person does); otherwise, and where there are no
buttons (numbers, free text), they type it. Now and then they type something the bot cannot
read, or "/status", and answer once the question comes again; a few stop half-way, and those
whose route says so type "/epost" after a few questions and go back to their mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from bot.channels.telegram.render import CHECK
from bot.demo.fake_telegram import FakeTelegram, SentMessage
from bot.demo.world import Respondent, Route
from flows.model import DONT_KNOW, NO, NOT_RELEVANT, YES, AnswerValue, Item, ItemType, Lang
from flows.render import button_label, row_letter
from flows.simulate import choose_value, say_value
from flows.simulate import compose_reply as compose_answers
from flows.texts import phrase

log = logging.getLogger(__name__)

#: A question as the chat shows it: "7. Tok …" for an item, "10b) Administrasjonen …" for a
#: grid row (option lines and the "Registrert" lines are indented, so they do not match).
_ASKED = re.compile(r"^(\d{1,3})(?:\.|([a-z])\)) \S", re.MULTILINE)

#: Chance of typing an answer although there is a button for it.
TYPE_INSTEAD = 0.2
#: Chance of a "/status" once in the conversation (the bot says how far, and asks again).
ASKS_STATUS = 0.04
#: Chance of putting the phone away for good after a question.
DROP_OUT_PER_QUESTION = 0.004
#: Questions answered in the chat before "/epost", for those who go back to email.
BEFORE_EMAIL = (2, 6)
#: How long someone waits for the ticks of a multiple choice to show before typing instead.
TICK_SECONDS = 5.0
#: A conversation that has gone on this long is left (a loop in the bot must not hang the demo).
MAX_REACTIONS = 400
#: What people type when they are not sure what the bot wants.
_UNSURE = ("hmm", "tja", "kanskje det")
#: The engine's words for the special answers, by value (their buttons say these).
_WORDS = {YES: "yes", NO: "no", DONT_KNOW: "dont_know", NOT_RELEVANT: "not_relevant"}


@dataclass(frozen=True, slots=True)
class Asked:
    """What the bot asks in the chat: an item, or one row of a grid (`row` its index)."""

    item: Item
    row: int | None = None

    @property
    def key(self) -> str:
        """The answer id asked (`grid.row` for a row), also what the person remembers."""
        if self.row is None:
            return self.item.id
        return f"{self.item.id}.{self.item.rows[self.row].id}"


def read_question(person: Respondent, text: str) -> Asked | None:
    """The last question in `text`, as a person reads it off the chat; None when nothing is
    asked (a confirmation, a notice)."""
    found = None
    for match in _ASKED.finditer(text):
        item = person.questionnaire.by_number(int(match.group(1)))
        if item is None:
            continue
        letter = match.group(2)
        if letter is None:
            found = Asked(item)
            continue
        rows = [n for n in range(len(item.rows)) if row_letter(n) == letter]
        if item.type is ItemType.GRID and rows:
            found = Asked(item, rows[0])
    return found


def start_payload(link: str) -> str:
    """The `start` parameter of a deep link (what Telegram sends as `/start <payload>`)."""
    return parse_qs(urlsplit(link).query).get("start", [""])[0]


def _fits(label: str, wanted: str) -> bool:
    """Whether a button labelled `label` says `wanted` (labels may be cut short with "…",
    and a scale's end points carry their words: "4 – helt enig")."""
    shown = label.removeprefix(CHECK).strip()
    wanted = " ".join(wanted.split())
    if shown.endswith("…"):
        return wanted.startswith(shown[:-1].rstrip())
    return shown.casefold() == wanted.casefold() or shown.split(" – ", 1)[0] == wanted


def _said(item: Item, value: AnswerValue, lang: Lang) -> tuple[str, str]:
    """(what the button for `value` says, the reply the engine offers for it)."""
    if isinstance(value, str) and value in _WORDS:
        word = phrase(_WORDS[value], lang)
        return word, word.lower()
    if isinstance(value, int):
        return str(value), str(value)
    options = [n for n, o in enumerate(item.options) if o.id == value]
    if not options:
        return str(value), str(value)
    return button_label(item.options[options[0]].label.get(lang)), str(options[0] + 1)


def choose_button(buttons: list[tuple[str, str]], item: Item, value: AnswerValue,
                  lang: Lang) -> str | None:
    """The callback data of the button that says `value` for `item` (one option, a scale
    point, yes, no, don't know), found by its label, else by the reply it carries; None when
    no button says it (the person types it then)."""
    label, reply = _said(item, value, lang)
    for shown, data in buttons:
        if data.startswith("a:") and _fits(shown, label):
            return data
    for _shown, data in buttons:
        if data.startswith("a:") and data.rsplit(":", 1)[-1] == reply:
            return data
    return None


def tick_labels(item: Item, value: AnswerValue, lang: Lang) -> list[str]:
    """The labels of the options to tick for a multiple-choice `value`."""
    chosen = value if isinstance(value, list) else [value]
    return [_said(item, v, lang)[0] for v in chosen]


def tick_button(buttons: list[tuple[str, str]], label: str) -> str | None:
    """The callback data of the unticked option labelled `label` (None if none is)."""
    return next((data for shown, data in buttons
                 if data.startswith("t:") and not shown.startswith(CHECK)
                 and _fits(shown, label)), None)


def done_button(buttons: list[tuple[str, str]]) -> str | None:
    """The callback data of a multiple choice's "Ferdig"."""
    return next((data for _shown, data in buttons if data.startswith("d:")), None)


@dataclass(slots=True)
class _Ticking:
    """A multiple choice being ticked: the message, the labels still to tick, the keyboard as
    it was before the last tap (it changes when the bot has taken the tick)."""

    message: SentMessage
    labels: list[str]
    asked: Asked
    before: list[tuple[str, str]]
    deadline: float


@dataclass(slots=True)
class ChatUser:
    """One person in their private chat with the bot."""

    person: Respondent
    seen: int = 0
    answered: int = 0
    reactions: int = 0
    before_email: int = 0
    asked_status: bool = False
    #: The question last seen, for when a word that answered nothing is not followed by the
    #: question again.
    pending: tuple[Asked, SentMessage] | None = None
    ticking: _Ticking | None = None


@dataclass(slots=True)
class ChatTally:
    """What the chat users did, for the demo's summary."""

    opened: int = 0
    taps: int = 0
    typed: int = 0
    to_email: int = 0
    left: int = 0


class ChatWorld:
    """Everyone who answers in Telegram, watching their chats on the fake Bot API.

    One task watches all chats (one wake-up per change of the fake, not one per person) and
    lets each person whose chat changed react; reacting is immediate, as if everyone had
    their phone in hand.
    """

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.tally = ChatTally()
        self._users: dict[int, ChatUser] = {}
        self._task: asyncio.Task[None] | None = None

    def open(self, person: Respondent, link: str) -> None:
        """`person` opens the deep link: Telegram sends `/start <payload>` from their chat."""
        user = ChatUser(person=person, seen=len(self.fake.sent(person.chat_id)),
                        before_email=person.rng.randint(*BEFORE_EMAIL))
        self._users[person.chat_id] = user
        first, _, last = person.name.partition(" ")
        self.fake.message(person.chat_id, f"/start {start_payload(link)}",
                          first_name=first or "Respondent", last_name=last or None,
                          language_code=person.lang)
        self.tally.opened += 1

    @property
    def idle(self) -> bool:
        """Nobody has an unread message in the chat or a tick on the way."""
        return not any(self._news(user) or user.ticking for user in self._users.values())

    async def start(self) -> None:
        """Start watching the chats."""
        self._task = asyncio.create_task(self._watch(), name="telegram-people")

    async def stop(self) -> None:
        """Stop watching (people leave their conversations where they are)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await self.fake.wait_until(self._anything, timeout=1.0)
            for chat_id, user in list(self._users.items()):
                if self._news(user):
                    try:
                        self._react(user)
                    except Exception:  # one confused person must not stall everyone's demo
                        log.exception("simulated chat %s: giving up", chat_id)
                        user.person.done = True
                if user.person.done or not user.person.in_chat:
                    del self._users[chat_id]

    def _anything(self) -> bool:
        return any(self._news(user) for user in self._users.values())

    def _news(self, user: ChatUser) -> bool:
        ticking = user.ticking
        if ticking is not None:
            return (ticking.message.buttons() != ticking.before
                    or time.monotonic() > ticking.deadline)
        return len(self.fake.sent(user.person.chat_id)) > user.seen

    # --- one person -----------------------------------------------------------------------

    def _react(self, user: ChatUser) -> None:
        user.reactions += 1
        if user.reactions > MAX_REACTIONS:
            user.person.done = True
            return
        if user.ticking is not None:
            self._tick_on(user, user.ticking)
            return
        messages = self.fake.sent(user.person.chat_id)
        fresh = [m for m in messages[user.seen:] if not m.deleted]
        user.seen = len(messages)
        question = None
        for message in reversed(fresh):
            asked = read_question(user.person, message.text)
            if asked is not None:
                question = (asked, message)
                break
        question, user.pending = question or user.pending, None
        if question is None:
            return  # a confirmation or a notice: nothing to answer
        self._answer(user, *question)

    def _answer(self, user: ChatUser, asked: Asked, message: SentMessage) -> None:
        person = user.person
        rng = person.rng
        if user.answered and rng.random() < DROP_OUT_PER_QUESTION:
            person.done = True  # the phone goes back in the pocket; a reminder may bring it out
            self.tally.left += 1
            return
        if person.route is Route.BACK_TO_EMAIL and user.answered >= user.before_email:
            self._type(user, rng.choice(("/epost", "epost")))
            person.in_chat = False  # the rest comes by email, and is answered there
            self.tally.to_email += 1
            return
        if not any(a in person.planned for a in asked.item.answer_ids()):
            person.planned.update(choose_value(asked.item, rng, person.persona))
        if (asked.key not in person.confused and asked.item.type is not ItemType.TEXT
                and rng.random() < person.persona.typo_rate):  # free text takes any words
            person.confused.add(asked.key)
            user.pending = (asked, message)
            self._type(user, rng.choice(_UNSURE))
            return
        if not user.asked_status and rng.random() < ASKS_STATUS:
            user.asked_status = True
            user.pending = (asked, message)
            self._type(user, "/status")
            return
        user.answered += 1
        item = asked.item
        if item.type is ItemType.GRID and asked.row is None:  # a whole grid in one message
            self._type(user, compose_answers([item], person.planned, rng, numbered=False,
                                             lang=person.lang))
            return
        value = person.planned[asked.key]
        buttons = message.buttons()
        if not buttons or rng.random() < TYPE_INSTEAD:
            self._type(user, say_value(item, value, rng, person.lang))
            return
        if item.type is ItemType.MULTI:
            labels = tick_labels(item, value, person.lang)
            self._tick_on(user, _Ticking(message, labels, asked, [], time.monotonic()))
            return
        data = choose_button(buttons, item, value, person.lang)
        if data is None:
            self._type(user, say_value(item, value, rng, person.lang))
        else:
            self._tap(user, message, data)

    def _tick_on(self, user: ChatUser, ticking: _Ticking) -> None:
        """Tick the next option of a multiple choice (once the last tick shows), then "Ferdig";
        if the ticks do not show in time, type the answer instead."""
        user.ticking = None
        person = user.person
        buttons = ticking.message.buttons()
        if ticking.before and buttons == ticking.before:  # the bot did not take the tick
            value = person.planned[ticking.asked.key]
            self._type(user, say_value(ticking.asked.item, value, person.rng, person.lang))
            return
        while ticking.labels:
            data = tick_button(buttons, ticking.labels.pop(0))
            if data is not None:
                self._tap(user, ticking.message, data)
                ticking.before = buttons
                ticking.deadline = time.monotonic() + TICK_SECONDS
                user.ticking = ticking
                return
        done = done_button(buttons)
        if done is None:
            value = person.planned[ticking.asked.key]
            self._type(user, say_value(ticking.asked.item, value, person.rng, person.lang))
        else:
            self._tap(user, ticking.message, done)

    def _type(self, user: ChatUser, text: str) -> None:
        self.fake.message(user.person.chat_id, text)
        self.tally.typed += 1

    def _tap(self, user: ChatUser, message: SentMessage, data: str) -> None:
        self.fake.click(user.person.chat_id, message.message_id, data)
        self.tally.taps += 1
