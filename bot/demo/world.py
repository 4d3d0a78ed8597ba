"""The demo's simulated world: mail servers and respondents on loopback.

svarbot's sender delivers to `WorldMail`, an SMTP server that stands in for every
municipality's mail system. Each address belongs to a `Respondent` who reads the message
(the numbered questions in its text part) and acts as real people and systems do: answers in
the style of their mail client (Outlook in Norwegian, Gmail, iPhone, Apple Mail, Thunderbird,
bottom-posting), asks the contact person something, opts out, is away with an out-of-office
reply, forwards the invitation from a central mailbox, or does not exist (rejected at RCPT, or
bounced later with a delivery status report). Their mail goes back to svarbot's own SMTP
listener, so every message crosses the same path as in production.

Some of those who answer prefer their phone: their `Route` says when they open the Telegram
link their mail carries ("Svar heller på mobilen i Telegram"), and from then on their mail
waits while they answer in the chat (`bot.demo.telegram_people`); one who types "/epost"
there comes back to the mail and finishes by email.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from enum import StrEnum
from typing import Protocol

import aiosmtplib
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as SMTPSession

from bot.channels.email.clients import STYLES, compose_auto_reply, compose_bounce, compose_reply
from flows.model import AnswerValue, Item, Lang, Questionnaire
from flows.simulate import Persona, choose_value
from flows.simulate import compose_reply as compose_answers

#: A numbered question line in a page: "4. Hvor enig er du …".
_QUESTION = re.compile(r"^(\d{1,3})\. \S", re.MULTILINE)
#: The link to the chat that every asking mail carries, when Telegram is on.
_TELEGRAM_LINK = re.compile(r"https://t\.me/[A-Za-z0-9_]+\?start=[A-Za-z0-9_-]+")

#: How mail clients are spread among respondents (weights; Outlook dominates in municipalities).
CLIENT_WEIGHTS = {"outlook_nb": 40, "outlook_web_nb": 12, "iphone_nb": 18, "gmail_nb": 8,
                  "gmail_en": 2, "apple_mail_nb": 6, "thunderbird_nb": 4, "bottom_post": 10}


class Behaviour(StrEnum):
    """What a simulated respondent does with svarbot's mail."""

    ANSWERS = "answers"
    SILENT = "silent"
    AWAY = "away"
    OPTS_OUT = "opts_out"
    UNSUBSCRIBES = "unsubscribes"
    NO_SUCH_USER = "no_such_user"
    BOUNCES_LATER = "bounces_later"
    CENTRAL_MAILBOX = "central_mailbox"


#: Shares of behaviours (the rest answer).
BEHAVIOUR_SHARES = {Behaviour.SILENT: 0.22, Behaviour.AWAY: 0.05, Behaviour.OPTS_OUT: 0.02,
                    Behaviour.UNSUBSCRIBES: 0.01, Behaviour.NO_SUCH_USER: 0.02,
                    Behaviour.BOUNCES_LATER: 0.01, Behaviour.CENTRAL_MAILBOX: 0.04}


#: Chance that someone who answers stops at a given page (and leaves the survey half done).
DROP_OUT_PER_PAGE = 0.02


class Route(StrEnum):
    """Where a respondent who answers does it: by email, in the Telegram chat, or both."""

    EMAIL = "email"
    #: Opens the Telegram link in the invitation and answers everything in the chat.
    TELEGRAM = "telegram"
    #: Answers the first page by email, then opens the link in the next page's mail.
    SWITCHES = "switches"
    #: Starts in the chat, types "/epost" after a few questions and finishes by email.
    BACK_TO_EMAIL = "back_to_email"


#: How those who take the Telegram link spread over the routes that use it (weights).
CHAT_ROUTE_WEIGHTS = {Route.TELEGRAM: 0.68, Route.SWITCHES: 0.2, Route.BACK_TO_EMAIL: 0.12}


def draw_behaviour(rng: random.Random) -> Behaviour:
    """One respondent's behaviour, by `BEHAVIOUR_SHARES`."""
    roll = rng.random()
    for behaviour, share in BEHAVIOUR_SHARES.items():
        if roll < share:
            return behaviour
        roll -= share
    return Behaviour.ANSWERS


def draw_route(rng: random.Random, chat_share: float) -> Route:
    """Whether (and how) a respondent who answers uses Telegram: `chat_share` of them do."""
    if rng.random() >= chat_share:
        return Route.EMAIL
    routes = list(CHAT_ROUTE_WEIGHTS)
    return rng.choices(routes, weights=[CHAT_ROUTE_WEIGHTS[r] for r in routes])[0]


def telegram_link(text: str) -> str | None:
    """The chat link in a mail's text ("Svar heller på mobilen i Telegram: https://t.me/…")."""
    found = _TELEGRAM_LINK.search(text)
    return found.group(0) if found else None


def draw_style(rng: random.Random) -> str:
    """A mail client, by `CLIENT_WEIGHTS` (only styles the client simulator knows)."""
    styles = [s for s in CLIENT_WEIGHTS if s in STYLES]
    return rng.choices(styles, weights=[CLIENT_WEIGHTS[s] for s in styles])[0]


def text_part(raw: bytes) -> str:
    """The plain-text body of a message svarbot sent (compat32 parsing: fast, enough here)."""
    for part in email.message_from_bytes(raw).walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return ""


@dataclass(slots=True)
class Respondent:
    """One simulated person and their mail client."""

    address: str
    name: str
    lang: Lang
    questionnaire: Questionnaire
    behaviour: Behaviour
    style: str
    rng: random.Random
    persona: Persona = field(default_factory=lambda: Persona(typo_rate=0.08, skip_rate=0.04))
    #: Answers decided so far (seeded with facts the person knows, such as their sector).
    planned: dict[str, AnswerValue] = field(default_factory=dict)
    confused: set[str] = field(default_factory=set)
    received: int = 0
    done: bool = False
    asked_person: bool = False
    route: Route = Route.EMAIL
    #: Their Telegram user id (and private chat id), for those whose route uses the chat.
    chat_id: int = 0
    #: Answering in the chat now: mail that comes meanwhile is left unread.
    in_chat: bool = False
    #: Has opened the chat link (nobody opens it twice).
    chatted: bool = False

    def takes_link(self, items: list[Item]) -> bool:
        """Whether this person opens the chat link in the mail that asks `items`."""
        if self.chatted or self.route is Route.EMAIL:
            return False
        if self.route is Route.SWITCHES:
            return items[0].page != self.questionnaire.pages[0].id
        return True

    def asked_items(self, text: str) -> list[Item]:
        """The questions a page asks, read off its numbered lines."""
        items = []
        for match in _QUESTION.finditer(text):
            item = self.questionnaire.by_number(int(match.group(1)))
            if item is not None and item not in items:
                items.append(item)
        return items

    def answer_text(self, items: list[Item]) -> str:
        """What this person types for `items` (sometimes a question or a slip first)."""
        for item in items:
            if not any(a in self.planned for a in item.answer_ids()):
                self.planned.update(choose_value(item, self.rng, self.persona))
        first = items[0]
        if not self.asked_person and self.rng.random() < 0.01:
            self.asked_person = True
            return self.rng.choice(("Hvem skal egentlig svare på dette?",
                                    "Gjelder dette hele kommunen eller bare min enhet?"))
        if first.id not in self.confused and self.rng.random() < self.persona.typo_rate:
            self.confused.add(first.id)
            return self.rng.choice(("hmm", "vet ikke helt", "se over"))
        numbered = len(items) > 1 or self.rng.random() < 0.5
        text = compose_answers(items, self.planned, self.rng, numbered=numbered, lang=self.lang)
        if self.rng.random() < 0.15:
            text += "\n\nHilsen\n" + self.name.split()[0]
        return text


@dataclass(slots=True)
class Outcome:
    """What the world saw, for the demo's summary."""

    delivered: int = 0
    rejected: int = 0
    replies: int = 0
    auto_replies: int = 0
    bounces: int = 0
    opt_outs: int = 0


class Chats(Protocol):
    """Where people go who open the Telegram link in their mail."""

    def open(self, person: Respondent, link: str) -> None:
        """`person` opens `link` in Telegram (which sends `/start <payload>` for them)."""
        ...


class WorldMail:
    """The respondents' mail systems: accepts svarbot's mail and lets people react to it.

    `chats` is where the people whose route uses Telegram go when they open the link; without
    it everyone answers by email.
    """

    def __init__(self, respondents: dict[str, Respondent], *, svarbot_port: int,
                 clock: dt.datetime, chats: Chats | None = None) -> None:
        self.respondents = respondents
        self.svarbot_port = svarbot_port
        self.clock = clock
        self.chats = chats
        self.outcome = Outcome()
        self.behaviours = Counter(r.behaviour for r in respondents.values())
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._worker: asyncio.Task[None] | None = None
        self._client: aiosmtplib.SMTP | None = None
        self._busy = False

    @property
    def idle(self) -> bool:
        """Nobody has unread mail or is writing a reply."""
        return self._queue.empty() and not self._busy

    @property
    def port(self) -> int:
        """The port svarbot's sender should deliver to."""
        if self._server is None:
            raise RuntimeError("the world's mail server has not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen on a free loopback port and start reacting to mail."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTPServer(self, hostname="localhost"), "127.0.0.1", 0)
        self._worker = asyncio.create_task(self._react_forever(), name="world")

    async def stop(self) -> None:
        """Stop listening and reacting."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._client is not None and self._client.is_connected:
            await self._client.quit()

    # --- aiosmtpd handler hooks -------------------------------------------------------------

    async def handle_RCPT(self, server: SMTPServer, session: SMTPSession,
                          envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        """Refuse addresses that do not exist, as a real server does."""
        person = self.respondents.get(address.lower())
        if person is None or person.behaviour is Behaviour.NO_SUCH_USER:
            self.outcome.rejected += 1
            return "550 5.1.1 <" + address + ">: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: SMTPSession,
                          envelope: Envelope) -> str:
        """Accept the message and hand it to the people it is for."""
        raw = envelope.original_content or b""
        for address in envelope.rcpt_tos:
            self._queue.put_nowait((address.lower(), raw))
            self.outcome.delivered += 1
        return "250 2.0.0 Ok: queued"

    # --- people -----------------------------------------------------------------------------

    async def _react_forever(self) -> None:
        while True:
            address, raw = await self._queue.get()
            self._busy = True
            try:
                await self._react(self.respondents[address], raw)
            except (aiosmtplib.SMTPException, OSError):
                await asyncio.sleep(0.2)  # svarbot is restarting: the person tries again later
                self._queue.put_nowait((address, raw))
            finally:
                self._busy = False

    async def _react(self, person: Respondent, raw: bytes) -> None:
        person.received += 1
        now = self.clock + dt.timedelta(minutes=person.received * 7)
        b = person.behaviour
        if b in (Behaviour.SILENT, Behaviour.NO_SUCH_USER) or person.done:
            return
        if b is Behaviour.BOUNCES_LATER:
            person.done = True
            self.outcome.bounces += 1
            await self._submit(compose_bounce(raw, reporting_mta="mx.kommune.example",
                                              permanent=True, now=now))
            return
        if b is Behaviour.AWAY:
            person.done = True
            self.outcome.auto_replies += 1
            back = (self.clock + dt.timedelta(days=person.rng.randint(3, 20))).date()
            await self._submit(compose_auto_reply(raw, from_address=person.address,
                                                  return_date=back, lang=person.lang,
                                                  style=person.rng.choice(("exchange", "gmail"))))
            return
        if person.in_chat:  # answering on the phone: the mail can wait
            return
        text = text_part(raw)
        items = person.asked_items(text)
        if not items:  # a confirmation: the conversation is over
            person.done = True
            return
        if b is Behaviour.OPTS_OUT:
            person.done = True
            self.outcome.opt_outs += 1
            answer = person.rng.choice(("Nei takk, meld meg av.", "stopp",
                                        "Jeg vil ikke delta."))
        elif b is Behaviour.UNSUBSCRIBES:
            person.done = True
            self.outcome.opt_outs += 1
            await self._submit(_unsubscribe_mail(raw, person.address, now))
            return
        elif person.received > 1 and person.rng.random() < DROP_OUT_PER_PAGE:
            person.done = True  # called into a meeting; the rest waits for a reminder
            return
        elif self.chats is not None and person.takes_link(items) and (
                link := telegram_link(text)) is not None:
            person.in_chat = person.chatted = True
            self.chats.open(person, link)
            return
        else:
            answer = person.answer_text(items)
        sender = (f"postmottak@{person.address.split('@', 1)[1]}"
                  if b is Behaviour.CENTRAL_MAILBOX else person.address)
        self.outcome.replies += 1
        await self._submit(compose_reply(raw, answer, style=person.style, from_address=sender,
                                         from_name=person.name, now=now))

    async def _submit(self, raw: bytes) -> None:
        """Send `raw` to svarbot's listener over one kept-open connection."""
        if self._client is None or not self._client.is_connected:
            self._client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.svarbot_port,
                                           local_hostname="localhost", start_tls=False)
            await self._client.connect()
        message = email.message_from_bytes(raw, policy=default_policy)
        sender = email.utils.parseaddr(str(message.get("From", "")))[1] or "postmaster@localhost"
        recipients = [email.utils.parseaddr(str(message.get("To", "")))[1]]
        await self._client.sendmail(sender, recipients, raw)


def _unsubscribe_mail(original: bytes, address: str, now: dt.datetime) -> bytes:
    """What a mail client sends when its Unsubscribe button uses the mailto: address."""
    message = email.message_from_bytes(original, policy=default_policy)
    header = str(message.get("List-Unsubscribe", ""))
    target = next((m.group(1) for m in re.finditer(r"<mailto:([^>?]+)", header)), "")
    mail = EmailMessage()
    mail["From"] = address
    mail["To"] = target
    mail["Subject"] = "unsubscribe"
    mail["Date"] = email.utils.format_datetime(now)
    mail["Message-ID"] = email.utils.make_msgid(domain=address.split("@", 1)[1])
    mail.set_content("This message was automatically generated by the mail client.\n")
    return mail.as_bytes()
