"""Outbound email to respondents: the outbox payload and the message built from it.

An `OutgoingMail` is what the outbox stores (as JSON); `render` turns it into the message at
send time, so a retry re-renders the same words under the same Message-ID. Everything a
respondent reads is in the phrase table below (bokmål, nynorsk, English) and laid out by two
Jinja2 templates, one for the text part and one for the HTML part, so both parts say the
same thing.

The headers: the reply key in Reply-To and in a synthetic first References entry, which
survives providers that rewrite Message-ID (protocols §2.2); `Auto-Submitted` (RFC 3834 §5)
and `X-Auto-Response-Suppress: OOF, AutoReply` (never `All`, which also stops the bounces we
need) against out-of-office loops (§3.1); RFC 8058 one-click unsubscribe; `Re:` plus
References/In-Reply-To so Gmail and Apple Mail thread a conversation (§4.1). The text part
opens with our marker line, where the reply trimmer cuts a top-posted reply's quote (§1.3).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, getaddresses, parseaddr

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup, escape

from bot.config import EmailSettings
from flows import texts
from storage.tokens import is_token

__all__ = [
    "KINDS",
    "LANGS",
    "OutgoingMail",
    "base_subject",
    "mail_domain",
    "new_message_id",
    "reference_id",
    "render",
    "reply_address",
]

KINDS = ("invitation", "reminder", "page", "confirmation", "closed", "info", "desk_reply",
         "desk_notice", "alert")
LANGS = ("nb", "nn", "en")

#: Kinds sent on our own initiative; the rest answer a respondent's mail (RFC 3834 §5).
_UNSOLICITED = frozenset({"invitation", "reminder", "desk_notice", "alert"})
#: Kinds that ask questions, so they explain how to answer and how to opt out. (A desk reply
#: is followed by the page the respondent was at.)
_ASKING = frozenset({"invitation", "reminder", "page", "desk_reply"})
#: Kinds to svarbot's own people (the desk, the operators), not to a respondent: no
#: unsubscribe header (there is nothing to leave), and a subject of their own.
_TO_DESK = frozenset({"desk_notice", "alert"})

#: Where our own paragraphs are wrapped: below the 78 characters every client shows unbroken.
_WIDTH = 76

#: A Message-ID we are willing to copy into a header: printable ASCII, one @, no brackets
#: inside. An id from an inbound mail that fails this is dropped rather than risk the header.
_MSG_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")
#: What may stand between <> in List-Unsubscribe: printable ASCII without space or brackets.
_URI = re.compile(r"[!-;=?-~]+")

_PHRASES: dict[str, tuple[str, str, str]] = {
    # key: (nb, nn, en)
    "subject": ("{title}: vil du svare?",
                "{title}: vil du svare?",
                "{title}: will you take part?"),
    "desk_subject": ("Spørsmål til kontaktpersonen: {title}",
                     "Spørsmål til kontaktpersonen: {title}",
                     "A question for the contact person: {title}"),
    "reminder_prefix": ("Påminnelse: ", "Påminning: ", "Reminder: "),
    "marker": ("--- Skriv svaret ditt over denne linjen ---",
               "--- Skriv svaret ditt over denne linja ---",
               "--- Write your answer above this line ---"),
    "greeting": ("Hei,", "Hei,", "Hello,"),
    "greeting_name": ("Hei {name},", "Hei {name},", "Hello {name},"),
    "invitation": (
        "Du er invitert til å svare på {title}. Svaret ditt er viktig: jo flere som svarer, "
        "desto bedre bilde gir undersøkelsen av hvordan kommunene arbeider.",
        "Du er invitert til å svare på {title}. Svaret ditt er viktig: di fleire som svarer, "
        "di betre bilete gir undersøkinga av korleis kommunane arbeider.",
        "You are invited to take part in {title}. Your answers matter: the more people "
        "answer, the better the survey shows how municipalities work.",
    ),
    "reminder": (
        "For en tid siden inviterte vi deg til å svare på {title}. Vi har ikke fått svar "
        "fra deg ennå, og vi håper du har tid nå.",
        "For ei tid sidan inviterte vi deg til å svare på {title}. Vi har ikkje fått svar "
        "frå deg enno, og vi håpar du har tid no.",
        "A while ago we invited you to take part in {title}. We have not heard from you yet "
        "and hope you have time now.",
    ),
    "reminder_started": (
        "Takk for svarene du har sendt til {title} så langt. Du er ikke helt ferdig ennå, "
        "og her er spørsmålene som gjenstår.",
        "Takk for svara du har sendt til {title} så langt. Du er ikkje heilt ferdig enno, "
        "og her er spørsmåla som står att.",
        "Thank you for your answers to {title} so far. You are not quite finished yet, and "
        "here are the remaining questions.",
    ),
    "page": ("Her er fortsettelsen av {title}.", "Her er framhaldet av {title}.",
             "Here is the next part of {title}."),
    "closed": (
        "{title} er avsluttet, så vi kan dessverre ikke ta imot flere svar. Takk for "
        "interessen!",
        "{title} er avslutta, så vi kan diverre ikkje ta imot fleire svar. Takk for "
        "interessa!",
        "{title} has closed, so unfortunately we cannot accept any more answers. Thank you "
        "for your interest.",
    ),
    "anonymity": (
        "Svarene blir bare publisert samlet, slik at ingen kan se hva du har svart.",
        "Svara blir berre publiserte samla, slik at ingen kan sjå kva du har svart.",
        "Answers are only published in aggregate, so no one can see what you answered.",
    ),
    "next": ("Du får de neste spørsmålene i et svar fra oss.",
             "Du får dei neste spørsmåla i eit svar frå oss.",
             "We will reply with the next questions."),
    "signoff": ("Vennlig hilsen", "Venleg helsing", "Kind regards"),
    "join_telegram": ("Svar heller på mobilen i Telegram", "Svar heller på mobilen i Telegram",
                      "Answer on your phone in Telegram instead"),
    "contact": ("Spørsmål om undersøkelsen? Kontakt {contact}.",
                "Spørsmål om undersøkinga? Kontakt {contact}.",
                "Questions about the survey? Contact {contact}."),
    "stop": ("Vil du ikke delta? Svar «stopp», så får du ikke flere e-poster om undersøkelsen.",
             "Vil du ikkje delta? Svar «stopp», så får du ikkje fleire e-postar om "
             "undersøkinga.",
             "Don't want to take part? Reply «stop» and you will get no more emails about the "
             "survey."),
}

#: The intro paragraphs of each kind, by phrase key. Confirmations and info mails carry the
#: engine's own words ("Takk! Du har svart på alle spørsmålene.", help, opt-out) unprefixed.
_INTRO: dict[str, tuple[str, ...]] = {
    # The engine's page already ends with how to answer, and the questionnaire's intro says
    # how answers are published: an invitation repeats neither.
    "invitation": ("invitation", "next"),
    "reminder": ("reminder", "anonymity"),
    "page": ("page",),
    "desk_reply": (),
    "desk_notice": (),
    "alert": (),
    "confirmation": (),
    "closed": ("closed",),
    "info": (),
}


def _phrase(key: str, lang: str) -> str:
    return _PHRASES[key][LANGS.index(lang)]


# --- the payload --------------------------------------------------------------------------


def _check_str(key: str, value: object, *, optional: bool = False) -> None:
    if isinstance(value, str) or (optional and value is None):
        return
    raise ValueError(f"outgoing mail: {key!r} must be a string, not {type(value).__name__}")


def _check_str_seq(key: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"outgoing mail: {key!r} must be a list of strings")


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One email to a respondent, as the outbox row's JSON payload holds it (rendered at send time).

    Construction checks every field (a ValueError names the bad one), so that a bad row fails
    when it is queued rather than when the sender renders it; the token in particular goes into
    header addresses and must have the token's shape.
    """

    kind: str
    lang: str
    token: str
    to_address: str
    to_name: str
    survey_title: str
    prompts: tuple[str, ...]
    progress: tuple[int, int] | None = None
    contact: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    #: Links that move the conversation to another channel: (channel name, url).
    join_links: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for key in ("kind", "lang", "token", "to_address", "to_name", "survey_title"):
            _check_str(key, getattr(self, key))
        if self.kind not in KINDS:
            raise ValueError(f"outgoing mail: 'kind' must be one of {', '.join(KINDS)}, "
                             f"not {self.kind!r}")
        if self.lang not in LANGS:
            raise ValueError(f"outgoing mail: 'lang' must be one of {', '.join(LANGS)}, "
                             f"not {self.lang!r}")
        if not is_token(self.token):
            raise ValueError("outgoing mail: 'token' is not an invitation token")
        _check_str_seq("prompts", self.prompts)
        _check_str_seq("references", self.references)
        _check_str("contact", self.contact, optional=True)
        _check_str("in_reply_to", self.in_reply_to, optional=True)
        if not all(isinstance(link, tuple) and len(link) == 2
                   and all(isinstance(part, str) for part in link)
                   and link[1].startswith("https://") for link in self.join_links):
            raise ValueError("outgoing mail: 'join_links' must be (channel, https url) pairs")
        if self.progress is not None and not (
                isinstance(self.progress, tuple) and len(self.progress) == 2
                and all(type(n) is int and n >= 0 for n in self.progress)):
            raise ValueError("outgoing mail: 'progress' must be two counts (answered, total)")

    def to_payload(self) -> dict[str, object]:
        """The fields as JSON-ready values (tuples become lists)."""
        return {
            "kind": self.kind, "lang": self.lang, "token": self.token,
            "to_address": self.to_address, "to_name": self.to_name,
            "survey_title": self.survey_title, "prompts": list(self.prompts),
            "progress": list(self.progress) if self.progress is not None else None,
            "contact": self.contact, "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "join_links": [list(link) for link in self.join_links],
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> OutgoingMail:
        """Read `to_payload`'s output back (after a JSON round trip).

        Raises:
            ValueError: a required key is missing, a key is unknown or a value has the wrong
                type; the message names the key.
        """
        for key in _REQUIRED:
            if key not in payload:
                raise ValueError(f"outgoing mail: missing key {key!r}")
        for key in payload:
            if key not in _FIELDS:
                raise ValueError(f"outgoing mail: unknown key {key!r}")
        values = dict(payload)
        for key in ("prompts", "references"):
            if key in values:
                values[key] = _as_tuple(key, values[key])
        if values.get("progress") is not None:
            values["progress"] = _as_tuple("progress", values["progress"])
        if "join_links" in values:
            values["join_links"] = tuple(_as_tuple("join_links", link)
                                         for link in _as_tuple("join_links",
                                                               values["join_links"]))
        return cls(**values)  # type: ignore[arg-type]  # each field is checked in __post_init__


_FIELDS = frozenset(OutgoingMail.__dataclass_fields__)
_REQUIRED = ("kind", "lang", "token", "to_address", "to_name", "survey_title", "prompts")


def _as_tuple(key: str, value: object) -> tuple[object, ...]:
    if isinstance(value, list | tuple):
        return tuple(value)
    raise ValueError(f"outgoing mail: {key!r} must be a list")


# --- addresses and ids --------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _sender(from_address: str) -> tuple[str, str, str]:
    """(display name, address, domain) of `email.from_address`, parsed once per setting."""
    name, address = parseaddr(from_address)
    local, at, domain = address.rpartition("@")
    if not (local and at and domain):
        raise ValueError(f"email.from_address: {from_address!r} has no address with a domain")
    return name, address, domain.lower()


def mail_domain(settings: EmailSettings) -> str:
    """The domain of `email.from_address`: where our Message-IDs and reference ids live."""
    return _sender(settings.from_address)[2]


def new_message_id(settings: EmailSettings) -> str:
    """A fresh Message-ID, chosen when the mail is queued and kept over every retry.

    128 random bits, so ids never collide across processes and reveal nothing (not the host,
    the time or the process, which `email.utils.make_msgid` puts in).
    """
    return f"<{secrets.token_hex(16)}@{mail_domain(settings)}>"


def reference_id(token: str, settings: EmailSettings) -> str:
    """The synthetic first References entry that carries the token (GitLab's trick).

    Some submission services rewrite our Message-ID but keep References, so a reply still
    names its invitation when the reply-to address has lost its `+token`.
    """
    return f"<r-{token}@{mail_domain(settings)}>"


def reply_address(token: str, settings: EmailSettings) -> str:
    """`email.reply_to` with the token filled in: the reply key (`svar+TOKEN@domain`)."""
    return settings.reply_to.replace("{token}", token)


def _unsubscribe(token: str, settings: EmailSettings) -> tuple[list[str], bool]:
    """The List-Unsubscribe entries and whether they offer RFC 8058 one-click (https).

    Raises:
        ValueError: an unsubscribe setting would not make a valid header.
    """
    mailto = f"mailto:{settings.unsubscribe_address.replace('{token}', token)}?subject=avmeld"
    if not _URI.fullmatch(mailto):
        raise ValueError("email.unsubscribe_address: not a plain ASCII address")
    entries = [f"<{mailto}>"]
    one_click = False
    if settings.unsubscribe_url:
        url = settings.unsubscribe_url.replace("{token}", token)
        if not _URI.fullmatch(url):
            raise ValueError("email.unsubscribe_url: not a URL without spaces or brackets")
        entries.insert(0, f"<{url}>")
        one_click = url.lower().startswith("https://")
    return entries, one_click


def _references(mail: OutgoingMail, settings: EmailSettings) -> list[str]:
    """Our reference id, the thread's earlier ids, then the mail we answer; each once."""
    chain = [reference_id(mail.token, settings), *mail.references]
    if mail.in_reply_to is not None:
        chain.append(mail.in_reply_to)
    return list(dict.fromkeys(i for i in chain if _MSG_ID.fullmatch(i)))


# --- the words ----------------------------------------------------------------------------


#: Spaces that must not become line breaks: inside a phone number ("12 34 56 78").
_UNBREAKABLE = re.compile(r"(?<=\d) (?=\d)|(?<=tlf\.) (?=\d)|(?<=tel\.) (?=\d)")


@functools.lru_cache(maxsize=4096)
def _wrap(paragraph: str) -> str:
    """A paragraph of our own in lines of at most `_WIDTH` (a long address stays whole)."""
    # textwrap breaks only at ASCII whitespace, so a stand-in character (private use, never
    # in our text) holds a number together until the lines are made.
    kept = _UNBREAKABLE.sub("\ue000", paragraph)
    wrapped = textwrap.fill(kept, _WIDTH, break_long_words=False, break_on_hyphens=False)
    return wrapped.replace("\ue000", " ")


@functools.lru_cache(maxsize=1)
def _templates() -> tuple[Template, Template]:
    """The compiled text and HTML templates, loaded once per process."""
    env = Environment(
        loader=PackageLoader("bot.channels.email", "templates"),
        autoescape=select_autoescape(["html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["wrap"] = _wrap
    return env.get_template("mail.txt.j2"), env.get_template("mail.html.j2")


_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")
_INDENT = re.compile(r"^ +", re.MULTILINE)


def _no_break(match: re.Match[str]) -> str:
    return "\u00a0" * len(match[0])


@functools.lru_cache(maxsize=512)
def _blocks(prompt: str) -> tuple[Markup, ...]:
    """A prompt as HTML paragraphs, escaped, lines kept apart by `<br>`.

    The engine indents options under their question; the indent is kept as no-break spaces
    so the HTML part shows the same layout as the text part without a `<pre>`. Escaping the
    prompt as a whole (not line by line in the template) keeps rendering fast, and a page
    sent to many respondents is split once.
    """
    escaped = str(escape(prompt.replace("\r\n", "\n")))
    return tuple(Markup(_INDENT.sub(_no_break, block).replace("\n", "<br>\n"))  # noqa: S704 - escaped
                 for block in _BLANK_LINES.split(escaped.strip("\n")) if block.strip())


def base_subject(mail: OutgoingMail) -> str:
    """The invitation's subject, which every later mail of the thread repeats."""
    return _phrase("subject", mail.lang).format(title=mail.survey_title)


def _subject(mail: OutgoingMail) -> str:
    base = base_subject(mail)
    if mail.kind == "alert":
        return f"svarbot: {mail.survey_title}"
    if mail.kind in _TO_DESK:
        return _phrase("desk_subject", mail.lang).format(title=mail.survey_title)
    if mail.kind == "invitation":
        return base
    if mail.kind == "reminder":
        return _phrase("reminder_prefix", mail.lang) + base
    return f"Re: {base}"


def _context(mail: OutgoingMail, settings: EmailSettings) -> dict[str, object]:
    lang = mail.lang
    title = mail.survey_title
    keys = _INTRO[mail.kind]
    if mail.kind == "reminder" and mail.progress is not None and mail.progress[0] > 0:
        keys = ("reminder_started", *keys[1:])
    intro = [_phrase(key, lang).format(title=title) for key in keys]
    footer = []
    if mail.contact:
        footer.append(_phrase("contact", lang).format(contact=mail.contact.rstrip(". ")))
    if mail.kind in _ASKING:
        footer.append(_phrase("stop", lang))
    join = [(_phrase(f"join_{name}", lang), url) for name, url in mail.join_links
            if f"join_{name}" in _PHRASES] if mail.kind in _ASKING else []
    progress = None
    if mail.progress is not None:
        answered, total = mail.progress
        progress = texts.phrase("progress", "nn" if lang == "nn" else "en" if lang == "en"
                                else "nb", done=answered, total=total)
    name = mail.to_name.strip()
    sender_name, _, domain = _sender(settings.from_address)
    return {
        "lang": lang,
        "title": title,
        "subject": _subject(mail),
        "marker": _phrase("marker", lang),
        "greeting": (_phrase("greeting_name", lang).format(name=name) if name
                     else _phrase("greeting", lang)),
        "intro": intro,
        "progress": progress,
        "prompts": mail.prompts,
        "prompt_blocks": [_blocks(p) for p in mail.prompts],
        "join": join,
        "signoff": _phrase("signoff", lang),
        "sender": sender_name or domain,
        "footer": footer,
    }


# --- the message --------------------------------------------------------------------------
#
# The stdlib's header machinery (`policy.default`'s header registry and folder) costs about
# 0.1 ms per header and set_content/add_alternative over a millisecond per message, and it
# folds a long Message-ID or URL into RFC 2047 encoded-words, which breaks References and
# List-Unsubscribe. So the message is assembled from headers that are folded once, here:
# values with non-ASCII text go through the stdlib folder once per distinct value (cached),
# per-recipient values are validated ASCII items or base64 encoded-words we build, and the
# bodies are quoted-printable (7-bit, safe to DKIM-sign and for relays without 8BITMIME).


class _Header(str):
    """A finished header: `str()` is its value, `fold()` its wire form.

    The policy stores and writes a value that has a `name` and a `fold` method as it is
    (documented in `email.policy.EmailPolicy`: header_store_parse, header_fetch_parse, fold).
    """

    name: str
    folded: str  # "Name: value" with "\n" line ends, folded lines starting with a space

    def __new__(cls, name: str, value: str, folded: str) -> _Header:
        header = super().__new__(cls, value)
        header.name = name
        header.folded = folded
        return header

    def fold(self, *, policy: Policy) -> str:
        """The header as the generator writes it, with the policy's line ends."""
        return self.folded if policy.linesep == "\n" else self.folded.replace("\n", policy.linesep)


def _items(name: str, items: list[str], *, value: str | None = None) -> _Header:
    """A header of ASCII items, never encoded, folded between items to fit in `_LINE`.

    An item longer than a line (an Outlook Message-ID, a URL) gets a line of its own; RFC
    5322 allows 998 characters, and breaking inside it would change it.
    """
    lines = [f"{name}:"]
    for index, item in enumerate(items):
        if index == 0 or len(lines[-1]) + 1 + len(item) <= _LINE:
            lines[-1] += " " + item
        else:
            lines.append(" " + item)
    return _Header(name, " ".join(items) if value is None else value, "\n".join(lines) + "\n")


@functools.lru_cache(maxsize=256)
def _constant(name: str, value: str) -> _Header:
    """A one-item header whose value repeats from message to message."""
    return _items(name, [value])


@functools.lru_cache(maxsize=1024)
def _standard(name: str, value: str) -> _Header:
    """A header encoded and folded by the stdlib once per distinct value (subjects, From)."""
    header = policy.default.header_factory(name, value)
    if header.defects:
        raise ValueError(f"{name}: {value!r} is not a valid header value")
    return _Header(name, str(header), header.fold(policy=policy.default))


#: Line length we fold at (RFC 5322 §2.1.1 SHOULD), and the longest encoded-word text.
_LINE = 78
_EW_BYTES = 45  # 60 base64 characters: "=?utf-8?b?" + 60 + "?=" = 72 < 75 (RFC 2047 §2)
#: A display name written as is: letters, digits, spaces, hyphens and apostrophes.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 '-]*")
#: A dot-atom address (no quoted local parts, no non-ASCII: they need SMTPUTF8).
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                      r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")


@functools.lru_cache(maxsize=4096)
def _phrase_words(name: str) -> tuple[str, ...]:
    """A display name as header words: as is when plain, else UTF-8 base64 encoded-words.

    Encoding anything unusual (æøå, commas, quotes, dots) avoids quoted-string rules
    altogether; each encoded-word holds whole characters and stays within RFC 2047's 75.
    """
    if _PLAIN_NAME.fullmatch(name):
        return tuple(name.split())
    chunks: list[bytes] = []
    chunk = b""
    for char in name:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _EW_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += encoded
    chunks.append(chunk)
    return tuple(f"=?utf-8?b?{base64.b64encode(c).decode('ascii')}?=" for c in chunks)


def _mailbox(name: str, address: str) -> list[str]:
    """Header items for `name <address>`, the address checked to be a plain ASCII one."""
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"{address!r} is not an address svarbot can send to")
    name = " ".join(name.split())
    return [*_phrase_words(name), f"<{address}>"] if name else [address]


def _display(name: str, address: str) -> str:
    name = " ".join(name.split())
    return f"{name} <{address}>" if name else address


@functools.lru_cache(maxsize=64)
def _redirect_header(redirect_to: str) -> _Header:
    """The To header of a dev-mode rehearsal (one address from the configuration)."""
    header = _standard("To", redirect_to)
    if len(getaddresses([redirect_to])) != 1:
        raise ValueError(f"dev_mode.redirect_to: {redirect_to!r} is not one address")
    return header


def _part(subtype: str, body: str) -> EmailMessage:
    """A text part in UTF-8, quoted-printable (lines of at most 76 on the wire)."""
    part = EmailMessage()
    part.set_raw("Content-Type", _constant("Content-Type", f'text/{subtype}; charset="utf-8"'))
    part.set_raw("Content-Transfer-Encoding",
                 _constant("Content-Transfer-Encoding", "quoted-printable"))
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part


def render(mail: OutgoingMail, *, message_id: str, settings: EmailSettings,
           redirect_to: str | None = None, now: datetime) -> EmailMessage:
    """Build the message for `mail`: multipart/alternative, text first, HTML last.

    `redirect_to` (dev mode) sends it to that address instead, keeps the real recipient in
    `X-Svarbot-Original-To` and marks the subject "[TEST]". `now` must be timezone-aware
    (it becomes the Date header). Header values read back from the returned message are
    plain strings; parse `as_bytes()` for header objects.

    Raises:
        ValueError: `now` is naive, `message_id` is not `<id@domain>`, or an address or an
            unsubscribe setting cannot be put in a header.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("render: 'now' must be timezone-aware")
    if not _MSG_ID.fullmatch(message_id):
        raise ValueError(f"render: {message_id!r} is not a Message-ID")
    text_template, html_template = _templates()
    context = _context(mail, settings)
    sender_name, sender_address, _ = _sender(settings.from_address)
    recipient = _mailbox(mail.to_name, mail.to_address)
    recipient_text = _display(mail.to_name, mail.to_address)
    subject = str(context["subject"])
    unsubscribe, one_click = _unsubscribe(mail.token, settings)

    headers = [_standard("From", settings.from_address)]
    if redirect_to is None:
        headers.append(_items("To", recipient, value=recipient_text))
    else:
        headers.append(_redirect_header(redirect_to))
        headers.append(_items("X-Svarbot-Original-To", recipient, value=recipient_text))
        subject = f"[TEST] {subject}"
    headers += [
        _standard("Subject", subject),
        _items("Date", [format_datetime(now)]),
        _items("Message-ID", [message_id]),
    ]
    if mail.in_reply_to is not None and _MSG_ID.fullmatch(mail.in_reply_to):
        headers.append(_items("In-Reply-To", [mail.in_reply_to]))
    reply_to = reply_address(mail.token, settings)
    headers += [
        _items("References", _references(mail, settings)),
        _items("Reply-To", _mailbox(sender_name, reply_to),
               value=_display(sender_name, reply_to)),
    ]
    if mail.kind not in _TO_DESK:
        headers.append(_items("List-Unsubscribe",
                              [*(u + "," for u in unsubscribe[:-1]), unsubscribe[-1]]))
    if one_click and mail.kind not in _TO_DESK:
        headers.append(_constant("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    headers += [
        _constant("Auto-Submitted",
                  "auto-generated" if mail.kind in _UNSOLICITED else "auto-replied"),
        _constant("X-Auto-Response-Suppress", "OOF, AutoReply"),
        _constant("X-Loop", sender_address),
        _constant("X-Svarbot-Kind", mail.kind),
        _constant("Content-Language", mail.lang),
        _constant("MIME-Version", "1.0"),
        _items("Content-Type", ["multipart/alternative;",
                                f'boundary="=_{secrets.token_hex(16)}"']),
    ]
    msg = EmailMessage()
    for header in headers:
        # set_raw, not msg[name] = ...: the item assignment looks the name up in the header
        # registry, which builds a class on every call.
        msg.set_raw(header.name, header)
    msg.attach(_part("plain", text_template.render(context)))
    msg.attach(_part("html", html_template.render(context)))
    return msg
