"""Simulated mail clients: the replies, auto-replies and bounces real respondents' mail produces.

`svarbot demo`, the tests and the benchmarks need inbound mail that looks like what Outlook,
Gmail, iPhone, Apple Mail and Thunderbird users actually send to the bot — with each client's
attribution line, quote style, mobile footer, threading headers and HTML containers — so that
reply extraction and threading are exercised against the formats in protocols.md §1.2 rather than
against an idealised reply. The formats are reproduced from the reference corpora and client
documentation; they are models, not byte-exact captures.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import format_datetime, formataddr, getaddresses, make_msgid, parsedate_to_datetime

from bs4 import BeautifulSoup

__all__ = ["INLINE_STYLE", "STYLES", "compose_auto_reply", "compose_bounce", "compose_reply"]

STYLES: tuple[str, ...] = (
    "outlook_nb",
    "outlook_web_nb",
    "gmail_nb",
    "gmail_en",
    "iphone_nb",
    "apple_mail_nb",
    "thunderbird_nb",
    "bottom_post",
)
#: Answers typed under each quoted question (Thunderbird-like); its `answer` is "N: text"
#: lines, and a question without a line is left blank.
INLINE_STYLE = "inline_nb"

_WEEKDAYS_NB = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")
_WEEKDAYS_NB_SHORT = ("man.", "tir.", "ons.", "tor.", "fre.", "lør.", "søn.")
_MONTHS_NB = ("januar", "februar", "mars", "april", "mai", "juni", "juli", "august",
              "september", "oktober", "november", "desember")
_MONTHS_NB_SHORT = ("jan.", "feb.", "mar.", "apr.", "mai", "jun.", "jul.", "aug.", "sep.",
                    "okt.", "nov.", "des.")
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
# Gmail hard-wraps its plain-text attribution line near this width.
_GMAIL_WRAP = 76


@dataclass(frozen=True, slots=True)
class _Original:
    """What a client reads from the message being answered."""

    subject: str
    message_id: str
    references: str
    reply_to: str
    from_name: str
    from_address: str
    to: str
    sent: datetime
    text: str
    html_body: str


def _header(msg: Message, name: str) -> str:
    """A header decoded from RFC 2047 (compat32 parsing leaves it encoded)."""
    value = msg.get(name)
    if value is None:
        return ""
    return " ".join(str(make_header(decode_header(str(value)))).split())


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(part.get_content_charset() or "utf-8", errors="replace")


def _read_original(raw: bytes, fallback_date: datetime) -> _Original:
    # compat32 parsing: several times faster than policy.default, and this runs for every
    # simulated reply in the demo and the benchmarks.
    msg = message_from_bytes(raw)
    senders = getaddresses([_header(msg, "From")])
    from_name, from_address = senders[0] if senders else ("", "")
    reply_to = getaddresses([_header(msg, "Reply-To")])
    sent = fallback_date
    if msg.get("Date"):
        try:
            sent = parsedate_to_datetime(str(msg["Date"]))
        except (TypeError, ValueError):
            sent = fallback_date
    text, html_body = "", ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not text:
            text = _part_text(part)
        elif part.get_content_type() == "text/html" and not html_body:
            html_body = _part_text(part)
    if not text and html_body:
        text = BeautifulSoup(html_body, "html.parser").get_text("\n")
    if not html_body:
        html_body = "<br>\n".join(html.escape(line) for line in text.split("\n"))
    return _Original(
        subject=_header(msg, "Subject"),
        message_id=str(msg.get("Message-ID", "")).strip(),
        references=" ".join(str(msg.get("References", "")).split()),
        reply_to=reply_to[0][1] if reply_to and reply_to[0][1] else from_address,
        from_name=from_name,
        from_address=from_address,
        to=_header(msg, "To"),
        sent=sent,
        text=text.replace("\r\n", "\n").rstrip("\n"),
        html_body=_body_inner_html(html_body),
    )


_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.IGNORECASE | re.DOTALL)


def _body_inner_html(document: str) -> str:
    match = _BODY.search(document)
    if match is not None:
        return match.group(1)
    soup = BeautifulSoup(document, "html.parser")
    body = soup.body
    return body.decode_contents() if body is not None else str(soup)


# --- date formats the clients use in their attribution lines ---------------------------------
def _nb_long(moment: datetime) -> str:
    """Outlook nb: "tirsdag 14. januar 2025 10:03"."""
    return (f"{_WEEKDAYS_NB[moment.weekday()]} {moment.day}. {_MONTHS_NB[moment.month - 1]} "
            f"{moment.year} {moment:%H:%M}")


def _nb_gmail(moment: datetime) -> str:
    """Gmail nb: "tir. 14. jan. 2025 kl. 10:03"."""
    return (f"{_WEEKDAYS_NB_SHORT[moment.weekday()]} {moment.day}. "
            f"{_MONTHS_NB_SHORT[moment.month - 1]} {moment.year} kl. {moment:%H:%M}")


def _nb_apple(moment: datetime) -> str:
    """Apple Mail / iOS nb: "14. jan. 2025 kl. 10:03"."""
    return f"{moment.day}. {_MONTHS_NB_SHORT[moment.month - 1]} {moment.year} kl. {moment:%H:%M}"


def _en_gmail(moment: datetime) -> str:
    """Gmail en: "Tue, Jan 14, 2025 at 10:03 AM"."""
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{moment:%a, %b} {moment.day}, {moment.year} at {hour}:{moment:%M} {suffix}"


# --- quoting ----------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def _wrap_attribution(line: str, *, split_before: str) -> str:
    """Break a long attribution as Gmail does, before `split_before` ("<" or "wrote:")."""
    if len(line) <= _GMAIL_WRAP:
        return line
    cut = line.rfind(split_before)
    if cut <= 0:
        return line
    if split_before == "<":
        return f"{line[:cut + 1]}\n{line[cut + 1:]}"
    return f"{line[:cut].rstrip()}\n{line[cut:]}"


def _sender(name: str, address: str) -> str:
    return f"{name} <{address}>" if name else address


def _outlook_block(orig: _Original, *, dashes: bool) -> str:
    lines = ["________________________________"] if dashes else []
    lines += [
        f"Fra: {_sender(orig.from_name, orig.from_address)}",
        f"Sendt: {_nb_long(orig.sent)}",
        f"Til: {orig.to}",
        f"Emne: {orig.subject}",
    ]
    return "\n".join(lines)


# --- HTML pieces ------------------------------------------------------------------------------
def _html_lines(text: str, *, tag: str, empty: str, attrs: str = "") -> str:
    out = []
    for line in text.split("\n"):
        inner = html.escape(line) if line else empty
        out.append(f"<{tag}{attrs}>{inner}</{tag}>")
    return "\n".join(out)


def _html_doc(body: str, *, body_attrs: str = "") -> str:
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        f"</head><body{body_attrs}>\n{body}\n</body></html>\n"
    )


def _outlook_header_html(orig: _Original) -> str:
    return (
        f"<b>Fra:</b> {html.escape(_sender(orig.from_name, orig.from_address))}<br>\n"
        f"<b>Sendt:</b> {html.escape(_nb_long(orig.sent))}<br>\n"
        f"<b>Til:</b> {html.escape(orig.to)}<br>\n"
        f"<b>Emne:</b> {html.escape(orig.subject)}"
    )


# --- per-client bodies ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Client:
    subject_prefix: str
    references: str  # "full", "parent" or "none"
    agent_header: tuple[str, str] | None
    content_language: str | None = None


_CLIENTS: dict[str, _Client] = {
    "outlook_nb": _Client("SV: ", "parent", ("X-Mailer", "Microsoft Outlook 16.0"), "nb-NO"),
    "outlook_web_nb": _Client("SV: ", "full", None, "nb-NO"),
    "gmail_nb": _Client("Re: ", "full", None),
    "gmail_en": _Client("Re: ", "full", None),
    "iphone_nb": _Client("Re: ", "none", ("X-Mailer", "iPhone Mail (22C152)")),
    "apple_mail_nb": _Client("Re: ", "full", ("X-Mailer", "Apple Mail (2.3826.300.87.4.3)")),
    "thunderbird_nb": _Client(
        "Re: ", "full",
        ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 "
                       "Thunderbird/128.6.0"),
        "nb",
    ),
    "bottom_post": _Client("Re: ", "full", None),
    "inline_nb": _Client("Re: ", "full", ("User-Agent", "Mozilla/5.0 Thunderbird/128.6.0"), "nb"),
}

#: A question of our page in the quoted text ("21. Hvor kom ideen fra?").
_PAGE_QUESTION = re.compile(r"^(\d{1,3})\. \S")


def _inline(original: str, answer: str) -> tuple[str, str]:
    """The quoted original with answers typed under their questions (text, HTML).

    `answer` holds one "N: text" line per question answered; a question without a line is
    left blank, as a respondent who skips it leaves it.
    """
    typed: dict[str, str] = {}
    for line in answer.splitlines():
        number, sep, text = line.partition(":")
        if sep and number.strip().isdigit():
            typed[number.strip()] = text.strip()
    lines = original.split("\n")
    out: list[str] = []
    html_parts: list[str] = []
    quoted: list[str] = []
    current: str | None = None

    def type_answer() -> None:
        nonlocal current
        if current is not None and typed.get(current):
            out.append(typed[current])
            html_parts.append(f"<blockquote type=\"cite\">{'<br>'.join(quoted)}</blockquote>"
                              f"<p>{html.escape(typed[current])}</p>")
            quoted.clear()
        current = None

    for line in lines:
        match = _PAGE_QUESTION.match(line)
        if match is not None or (current is not None and not line.startswith(" ")):
            type_answer()
        if match is not None:
            current = match.group(1)
        out.append(f"> {line}" if line else ">")
        quoted.append(html.escape(line))
    type_answer()
    html_parts.append(f"<blockquote type=\"cite\">{'<br>'.join(quoted)}</blockquote>")
    return "\n".join(out), "".join(html_parts)


def _bodies(style: str, orig: _Original, answer: str) -> tuple[str, str]:
    """Return (text/plain, text/html) as the client would write them."""
    sender = _sender(orig.from_name, orig.from_address)
    answer_divs = _html_lines(answer, tag="div", empty="<br>")
    if style == "outlook_nb":
        text = f"{answer}\n\n{_outlook_block(orig, dashes=False)}\n\n{orig.text}\n"
        answer_html = _html_lines(answer, tag="p", empty="<o:p>&nbsp;</o:p>",
                                  attrs=' class="MsoNormal"')
        body = (
            f'<div class="WordSection1">\n{answer_html}\n'
            '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>\n<div>\n'
            '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
            f'\n<p class="MsoNormal">{_outlook_header_html(orig)}<o:p></o:p></p>\n</div>\n</div>'
            f"\n{orig.html_body}\n</div>"
        )
        return text, _html_doc(body, body_attrs=' lang="NO-BOK"')
    if style == "outlook_web_nb":
        text = (f"{answer}\n\nHent Outlook for iOS<https://aka.ms/o0ukef>\n"
                f"{_outlook_block(orig, dashes=True)}\n\n{orig.text}\n")
        body = (
            f'<div class="elementToProof">{answer_divs}</div>\n'
            '<div id="ms-outlook-mobile-signature"><div><br></div>'
            'Hent <a href="https://aka.ms/o0ukef">Outlook for iOS</a></div>\n'
            '<div id="appendonsend"></div>\n<hr style="display:inline-block;width:98%" '
            'tabindex="-1">\n<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" '
            f'style="font-size:11pt" color="#000000">{_outlook_header_html(orig)}</font>'
            f"<div>&nbsp;</div></div>\n<div>{orig.html_body}</div>"
        )
        return text, _html_doc(body, body_attrs=' dir="ltr"')
    if style in ("gmail_nb", "gmail_en", "bottom_post"):
        if style == "gmail_en":
            attribution = _wrap_attribution(f"On {_en_gmail(orig.sent)} {sender} wrote:",
                                            split_before="wrote:")
        else:
            attribution = _wrap_attribution(f"{_nb_gmail(orig.sent)} skrev {sender}:",
                                            split_before="<")
        attribution_html = html.escape(" ".join(attribution.split("\n")))
        quote_html = (
            '<div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">'
            f"{attribution_html}<br></div><blockquote class=\"gmail_quote\" "
            'style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);'
            f'padding-left:1ex">{orig.html_body}</blockquote></div>'
        )
        if style == "bottom_post":
            text = f"{attribution}\n\n{_quote(orig.text)}\n\n{answer}\n"
            return text, f'{quote_html}<div dir="ltr">{answer_divs}</div>\n'
        text = f"{answer}\n\n{attribution}\n\n{_quote(orig.text)}\n"
        return text, f'<div dir="ltr">{answer_divs}</div><br>{quote_html}\n'
    if style == "iphone_nb":
        attribution = f"Den {_nb_apple(orig.sent)} skrev {sender}:"
        text = (f"{answer}\n\nSendt fra min iPhone\n\n{_quote(attribution)}\n>\n"
                f"{_quote(orig.text)}\n")
        body = (
            f'<div dir="ltr">{answer_divs}</div><div dir="ltr"><br>'
            '<div dir="ltr">Sendt fra min iPhone</div><div dir="ltr"><br>'
            f'<blockquote type="cite">{html.escape(attribution)}<br><br></blockquote></div>'
            f'<blockquote type="cite"><div dir="ltr">{orig.html_body}</div></blockquote></div>'
        )
        return text, _html_doc(body, body_attrs=' dir="auto"')
    if style == "apple_mail_nb":
        attribution = f"{_nb_apple(orig.sent)} skrev {sender}:"
        text = f"{answer}\n\n{attribution}\n\n{_quote(orig.text)}\n"
        body = (
            f"{answer_divs}<div><br><blockquote type=\"cite\"><div>{html.escape(attribution)}"
            f"</div><br class=\"Apple-interchange-newline\"><div>{orig.html_body}</div>"
            "</blockquote></div><br>"
        )
        return text, _html_doc(body, body_attrs=' style="overflow-wrap: break-word;"')
    if style == "inline_nb":
        attribution = f"Den {orig.sent:%d.%m.%Y %H:%M}, skrev {sender}:"
        inline_text, inline_html = _inline(orig.text, answer)
        body = (f'<div class="moz-cite-prefix">{html.escape(attribution)}<br></div>\n'
                f"{inline_html}")
        return f"{attribution}\n{inline_text}\n", _html_doc(body)
    if style == "thunderbird_nb":
        attribution = f"Den {orig.sent:%d.%m.%Y %H:%M}, skrev {sender}:"
        text = f"{answer}\n\n{attribution}\n{_quote(orig.text)}\n"
        body = (
            f"<p>{'<br>'.join(html.escape(line) for line in answer.split(chr(10)))}</p>\n"
            f'<div class="moz-cite-prefix">{html.escape(attribution)}<br></div>\n'
            f'<blockquote type="cite" cite="mid:{html.escape(orig.message_id.strip("<>"))}">'
            f"{orig.html_body}</blockquote>"
        )
        return text, _html_doc(body)
    raise ValueError(f"unknown mail client style: {style!r}")


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _subject(prefix: str, subject: str) -> str:
    lowered = subject.lower()
    if lowered.startswith((prefix.lower(), "re:", "sv:")):
        return subject
    return prefix + subject


def compose_reply(
    original: bytes,
    answer: str,
    *,
    style: str,
    from_address: str,
    from_name: str,
    now: datetime,
    html_only: bool = False,
    message_id: str | None = None,
) -> bytes:
    """Return the raw reply a human would send with the given client (`STYLES`).

    Deterministic for equal inputs once `message_id` is given; otherwise only the Message-ID
    (random, on the sender's domain) differs between calls.
    """
    if style not in _CLIENTS:
        raise ValueError(f"unknown mail client style: {style!r}")
    client = _CLIENTS[style]
    orig = _read_original(original, now)
    text, html_body = _bodies(style, orig, answer)

    msg = EmailMessage()
    msg["From"] = formataddr((from_name, from_address))
    msg["To"] = orig.reply_to
    msg["Subject"] = _subject(client.subject_prefix, orig.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id or make_msgid(domain=_domain(from_address))
    if orig.message_id:
        msg["In-Reply-To"] = orig.message_id
        if client.references == "full":
            msg["References"] = " ".join(filter(None, (orig.references, orig.message_id)))
        elif client.references == "parent":
            msg["References"] = orig.message_id
    if client.agent_header is not None:
        msg[client.agent_header[0]] = client.agent_header[1]
    if client.content_language is not None:
        msg["Content-Language"] = client.content_language
    if html_only:
        msg.set_content(html_body, subtype="html")
    else:
        msg.set_content(text)
        msg.add_alternative(html_body, subtype="html")
        msg.set_boundary(_boundary(original, answer, style, now))
    return msg.as_bytes(policy=policy.SMTP)


def _boundary(*parts: object) -> str:
    """A MIME boundary derived from the inputs, so equal inputs give equal bytes."""
    digest = hashlib.sha256("\x00".join(map(repr, parts)).encode()).hexdigest()
    return f"_000_{digest[:32]}_"


# --- automatic mail ---------------------------------------------------------------------------
_AWAY_TEXT = {
    "nb": "Jeg er på ferie og er tilbake {day}. {month}.",
    "nn": "Eg er på ferie og er tilbake {day}. {month}.",
    "en": "I am on holiday and will be back on {day} {month_en}.",
}
_AUTO_SUBJECT = {
    ("exchange", "nb"): "Automatisk svar: ",
    ("exchange", "nn"): "Automatisk svar: ",
    ("exchange", "en"): "Automatic reply: ",
    ("gmail", "nb"): "Fraværende: ",
    ("gmail", "nn"): "Fråverande: ",
    ("gmail", "en"): "Out of Office: ",
}


def compose_auto_reply(
    original: bytes,
    *,
    from_address: str,
    return_date: date,
    lang: str,
    style: str = "exchange",
    now: datetime | None = None,
    message_id: str | None = None,
) -> bytes:
    """Return an out-of-office reply to `original` as Exchange or Gmail sends it.

    Exchange answers the sender (From) and marks the message as rule-generated; Gmail's vacation
    responder answers Reply-To and says `auto-replied`. Both carry RFC 3834 `Auto-Submitted`,
    which is what svarbot's classifier must key on. `now` defaults to two minutes after the
    original's Date so the output is reproducible.
    """
    if (style, lang) not in _AUTO_SUBJECT:
        raise ValueError(f"unsupported auto-reply style/language: {style!r}/{lang!r}")
    fallback = datetime(2025, 1, 1, tzinfo=UTC)
    orig = _read_original(original, fallback)
    moment = now or (orig.sent + timedelta(minutes=2))
    text = _AWAY_TEXT[lang].format(day=return_date.day,
                                   month=_MONTHS_NB[return_date.month - 1],
                                   month_en=_MONTHS_EN[return_date.month - 1])
    msg = EmailMessage()
    msg["From"] = from_address
    msg["Subject"] = _AUTO_SUBJECT[(style, lang)] + orig.subject
    msg["Date"] = format_datetime(moment)
    msg["Message-ID"] = message_id or make_msgid(domain=_domain(from_address))
    if orig.message_id:
        msg["In-Reply-To"] = orig.message_id
        msg["References"] = orig.message_id
    if style == "exchange":
        msg["To"] = orig.from_address or orig.reply_to
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-MS-Exchange-Generated-Message-Source"] = "Mailbox Rules Agent"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["X-MS-Exchange-Inbox-Rules-Loop"] = from_address
        msg["Content-Language"] = "en-US" if lang == "en" else "nb-NO"
        msg.set_content(text + "\n")
        msg.add_alternative(_html_doc(f"<p>{html.escape(text)}</p>"), subtype="html")
        msg.set_boundary(_boundary(original, from_address, return_date, lang, moment))
    else:
        msg["To"] = orig.reply_to
        msg["Auto-Submitted"] = "auto-replied"
        msg.set_content(text + "\n")
    return msg.as_bytes(policy=policy.SMTP)


def compose_bounce(
    original: bytes, *, reporting_mta: str, permanent: bool, now: datetime
) -> bytes:
    """Return an RFC 3464 delivery status notification for `original`, as Postfix writes it.

    Permanent: `Action: failed`, `Status: 5.1.1` (no such user). Otherwise `Action: delayed`,
    `Status: 4.2.2` (mailbox full). The original headers come back as `text/rfc822-headers`,
    which is how svarbot correlates a bounce with what it sent.
    """
    msg = message_from_bytes(original, policy=policy.default)
    recipients = getaddresses([str(msg.get("To", ""))])
    recipient = recipients[0][1] if recipients else "unknown@invalid"
    return_path = getaddresses([str(msg.get("Return-Path", "") or msg.get("From", ""))])
    bounce_to = return_path[0][1] if return_path else ""
    header_end = original.find(b"\r\n\r\n")
    if header_end < 0:
        header_end = original.find(b"\n\n")
    original_headers = (original[:header_end] if header_end >= 0 else original).decode(
        "utf-8", errors="replace").replace("\r\n", "\n")
    digest = hashlib.sha256(original + now.isoformat().encode()).hexdigest()
    boundary = f"{digest[:12]}.{int(now.timestamp())}/{reporting_mta}"
    date_text = format_datetime(now)
    if permanent:
        action, status = "failed", "5.1.1"
        diagnostic = (f"smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: "
                      "User unknown in virtual mailbox table")
        subject = "Undelivered Mail Returned to Sender"
        human = ("I'm sorry to have to inform you that your message could not\n"
                 "be delivered to one or more recipients. It's attached below.")
        extra = ""
    else:
        action, status = "delayed", "4.2.2"
        diagnostic = f"smtp; 452 4.2.2 <{recipient}>: Mailbox full"
        subject = "Delayed Mail (still being retried)"
        human = ("This is a warning only; you do not need to resend your message.\n"
                 "Delivery will be retried for up to five days.")
        extra = f"Will-Retry-Until: {format_datetime(now + timedelta(days=5))}\n"
    lines = [
        "Return-Path: <>",
        f"From: MAILER-DAEMON@{reporting_mta} (Mail Delivery System)",
        f"To: {bounce_to}",
        f"Subject: {subject}",
        f"Date: {date_text}",
        f"Message-ID: <{digest[:24]}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"This is the mail system at host {reporting_mta}.",
        "",
        human,
        "",
        f"<{recipient}>: {diagnostic.removeprefix('smtp; ')}",
        "",
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {reporting_mta}",
        f"Arrival-Date: {date_text}",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        f"Original-Recipient: rfc822;{recipient}",
        f"Action: {action}",
        f"Status: {status}",
        f"Remote-MTA: dns; mx.{_domain(recipient)}",
        f"Diagnostic-Code: {diagnostic}",
        *([extra.rstrip("\n")] if extra else []),
        "",
        f"--{boundary}",
        "Content-Description: Undelivered Message Headers",
        "Content-Type: text/rfc822-headers",
        "",
        original_headers,
        "",
        f"--{boundary}--",
        "",
    ]
    return "\n".join(lines).replace("\n", "\r\n").encode("utf-8")
