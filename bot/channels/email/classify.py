"""Deciding what an inbound message is before anything reads it as an answer.

A survey answer is only ever taken from a human reply that carries an invitation token. Every
other message — our own mail come back, bounces, out-of-office replies, forwards, opt-outs —
must be recognised first (protocols §3.1: first match wins), because reading a vacation
notice or a non-delivery report as "the answer to question 3" is silent data corruption.

The order is: loop, complaint (ARF), bounce, auto-reply, forward, then — only with a token —
opt-out, question and answer. Bounces come before auto-replies because most DSNs also carry
`Auto-Submitted`. Everything here is a pure function of the parsed message.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from functools import lru_cache

from flufl.bounce._scan import _DETECTORS as _FLUFL_DETECTORS

from bot.channels.email.dates import parse_return_date
from bot.channels.email.inbound import (
    MailKind,
    ParsedMail,
    header_text,
    message_ids,
    stored_payload,
)
from flows.commands import CommandKind, looks_like_question, read_command

__all__ = [
    "Bounce",
    "Classification",
    "classify",
    "find_token",
    "parse_return_date",
]

#: Tokens are 32 lowercase base32 characters; anything alphanumeric of a sane length is read.
_TOKEN = r"(?P<token>[A-Za-z0-9]{16,64})"  # noqa: S105 - a regex, not a secret
#: How much of the text the fallback opt-out/question check reads when no trimmed reply is
#: given: the new text of a reply is on top.
_HEAD_LINES = 20


@dataclass(frozen=True, slots=True)
class Bounce:
    """A delivery failure report.

    Attributes:
        permanent: the address will not work (5.x.x failed); False for delays, 4.x.x and a
            full mailbox (x.2.2), which are worth retrying.
        recipients: the failed addresses, lowercased.
        status: the RFC 3463 status ("5.1.1"), when the report gives one.
        diagnostic: the remote server's words, for the operator.
        original_message_id: the Message-ID of our message that bounced, from the returned
            headers; the caller finds the outbox row by it.
    """

    permanent: bool
    recipients: tuple[str, ...]
    status: str | None
    diagnostic: str | None
    original_message_id: str | None


@dataclass(frozen=True, slots=True)
class Classification:
    """What a message is, the invitation token it carries, and why it was classed so.

    `token_source` is "recipient", "subject" or "references" for ordinary mail, and
    "original" when a bounce's returned headers held the token.
    """

    kind: MailKind
    token: str | None
    token_source: str | None
    bounce: Bounce | None
    return_date: date | None
    reason: str


# --- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Patterns:
    reply: re.Pattern[str]
    reply_in_text: re.Pattern[str]
    unsubscribe: re.Pattern[str]
    reference: re.Pattern[str]
    subject_tag: re.Pattern[str]


@lru_cache(maxsize=16)
def _patterns(reply_pattern: str, unsubscribe_pattern: str) -> _Patterns:
    """Regexes for the configured address templates ("svar+{token}@host").

    Raises ValueError for a template without `{token}`: that is a configuration error.
    """
    reply_prefix, reply_suffix = _split_template(reply_pattern)
    unsub_prefix, unsub_suffix = _split_template(unsubscribe_pattern)
    domain = reply_suffix.rpartition("@")[2] or reply_prefix.rpartition("@")[2]
    local_word = re.sub(r"[^A-Za-z]", "", reply_prefix.partition("@")[0]) or "svar"
    reply_body = re.escape(reply_prefix) + _TOKEN + re.escape(reply_suffix)
    return _Patterns(
        reply=re.compile(reply_body, re.IGNORECASE),
        reply_in_text=re.compile(rf"(?<![\w.+-]){reply_body}(?![\w-]|\.\w)", re.IGNORECASE),
        unsubscribe=re.compile(
            re.escape(unsub_prefix) + _TOKEN + re.escape(unsub_suffix), re.IGNORECASE
        ),
        reference=re.compile(rf"<?r-{_TOKEN}@{re.escape(domain)}>?", re.IGNORECASE),
        subject_tag=re.compile(
            rf"\[\s*(?:{re.escape(local_word)}|svar|ref|token)\s*[:#]\s*{_TOKEN}\s*\]",
            re.IGNORECASE,
        ),
    )


def _split_template(template: str) -> tuple[str, str]:
    prefix, marker, suffix = template.strip().partition("{token}")
    if not marker:
        raise ValueError(f"address template without {{token}}: {template!r}")
    return prefix, suffix


def find_token(
    mail: ParsedMail, *, reply_pattern: str, unsubscribe_pattern: str
) -> tuple[str | None, str | None]:
    """The invitation token and where it was found (protocols §2.2).

    Recipients first (To, Cc, Delivered-To …: our reply or unsubscribe address), then the
    subject (a `[svar:TOKEN]` tag or our reply address), then In-Reply-To and References
    entries `<r-TOKEN@reply-domain>`. The From header never identifies anyone: anybody can
    write any address there.
    """
    patterns = _patterns(reply_pattern, unsubscribe_pattern)
    token, _ = _recipient_token(mail.recipients, patterns)
    if token is not None:
        return token, "recipient"
    subject = patterns.subject_tag.search(mail.subject) or patterns.reply_in_text.search(
        mail.subject
    )
    if subject is not None:
        return subject.group("token").lower(), "subject"
    for reference in (mail.in_reply_to, *mail.references):
        if reference is None:
            continue
        match = patterns.reference.fullmatch(reference)
        if match is not None:
            return match.group("token").lower(), "references"
    return None, None


def _recipient_token(
    recipients: Iterable[str], patterns: _Patterns
) -> tuple[str | None, bool]:
    """The token in our reply or unsubscribe address among the recipients, and whether it
    was the unsubscribe address. The reply address wins when both are present."""
    unsubscribe: str | None = None
    for address in recipients:
        match = patterns.reply.fullmatch(address)
        if match is not None:
            return match.group("token").lower(), False
        match = patterns.unsubscribe.fullmatch(address)
        if match is not None and unsubscribe is None:
            unsubscribe = match.group("token").lower()
    return unsubscribe, unsubscribe is not None


# --- the decision ---------------------------------------------------------------------------


def classify(
    mail: ParsedMail,
    *,
    reply_pattern: str,
    unsubscribe_pattern: str,
    today: date,
    own_addresses: tuple[str, ...] = (),
    new_text: str | None = None,
) -> Classification:
    """Classify `mail`; the first rule that matches wins (see the module docstring).

    `new_text` is the reply with the quote trimmed off (`bot.channels.email.trim.extract_reply`); it
    decides opt-out and question. Without it the first lines of the text that are not
    `>`-quoted are used.
    """
    patterns = _patterns(reply_pattern, unsubscribe_pattern)
    token, source = find_token(
        mail, reply_pattern=reply_pattern, unsubscribe_pattern=unsubscribe_pattern
    )

    def result(kind: MailKind, reason: str, *, bounce: Bounce | None = None,
               return_date: date | None = None) -> Classification:
        return Classification(kind, token, source, bounce, return_date, reason)

    if _is_loop(mail, own_addresses, patterns):
        return result(MailKind.UNKNOWN, "loop")
    if _is_complaint(mail):
        return result(MailKind.UNKNOWN, "complaint")
    bounce_reason = _bounce_signal(mail)
    if bounce_reason is not None:
        bounce = read_bounce(mail)
        if bounce is not None:
            original = _original_token(mail, patterns)
            if original is not None:
                token, source = original, "original"
            return result(MailKind.BOUNCE, bounce_reason, bounce=bounce)
        return result(MailKind.UNKNOWN, f"{bounce_reason}:no-failure")
    auto_reason = _auto_reply_signal(mail)
    if auto_reason is not None:
        back = parse_return_date(f"{mail.subject}\n{_plain(mail)}", today=today)
        return result(MailKind.AUTO_REPLY, auto_reason, return_date=back)
    if any(name in mail.headers for name in _LIST_HEADERS):
        return result(MailKind.UNKNOWN, "mailing-list")
    forward_reason = _forward_signal(mail)
    if forward_reason is not None:
        return result(MailKind.FORWARD, forward_reason)
    if token is None:
        return result(MailKind.UNKNOWN, "no-token")
    _, to_unsubscribe = _recipient_token(mail.recipients, patterns)
    if to_unsubscribe:
        return result(MailKind.OPT_OUT, "unsubscribe-address")
    text = new_text if new_text is not None else _head(mail)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    for line, where in ((first, "command:stop"), (_bare_subject(mail.subject), "subject:stop")):
        command = read_command(line) if line else None
        if command is not None and command.kind is CommandKind.STOP:
            return result(MailKind.OPT_OUT, where)
    if looks_like_question(text[:2000]):
        return result(MailKind.QUERY, "question")
    return result(MailKind.ANSWER, "answer")


def _is_loop(mail: ParsedMail, own: tuple[str, ...], patterns: _Patterns) -> bool:
    """Our own message come back: it carries our X-Loop, or comes from our address."""
    ours = {address.lower() for address in own}
    loops = {address for _, address in getaddresses(mail.header_values.get("x-loop", ()))}
    if ours & {address.lower() for address in loops}:
        return True
    sender = mail.from_address
    if sender is None:
        return False
    return (sender in ours or patterns.reply.fullmatch(sender) is not None
            or patterns.unsubscribe.fullmatch(sender) is not None)


def _all_values(msg: Message, name: str) -> list[str]:
    return [header_text(v) for k, v in msg.raw_items() if k.strip().lower() == name]


def _head(mail: ParsedMail) -> str:
    text = _plain(mail)
    lines = [line for line in text.splitlines()[:_HEAD_LINES] if not line.lstrip().startswith(">")]
    return "\n".join(lines)


_SUBJECT_PREFIX_RE = re.compile(r"^(?:\s*(?:re|sv|aw|vs|fwd?|antw)\s*(?:\[\d+\])?\s*:)+",
                                re.IGNORECASE)


def _bare_subject(subject: str) -> str:
    return _SUBJECT_PREFIX_RE.sub("", subject).strip()


#: A tag: it cannot run past the next `<`, so stripping is linear however the markup is broken.
_TAG_RE = re.compile(r"<[^<>]{0,2000}>")
_RAW_START_RE = re.compile(r"<(script|style)\b", re.IGNORECASE)


def _plain(mail: ParsedMail) -> str:
    """The text, with tags stripped when it is HTML — good enough to read dates and words."""
    if not mail.text_is_html:
        return mail.text
    return html.unescape(_TAG_RE.sub(" ", _without_raw_text(mail.text[:200_000])))


def _without_raw_text(markup: str) -> str:
    """`markup` without its script and style elements; an unclosed one hides the rest.

    One search per element, each starting where the last one ended: a document of a hundred
    thousand unclosed `<script>` tags costs one pass, not one pass per tag.
    """
    lowered = markup.lower()
    out: list[str] = []
    pos = 0
    while (start := _RAW_START_RE.search(markup, pos)) is not None:
        out.append(markup[pos:start.start()])
        close = lowered.find(f"</{start.group(1).lower()}", start.end())
        end = lowered.find(">", close) if close >= 0 else -1
        if end < 0:
            return "".join(out)
        out.append(" ")
        pos = end + 1
    out.append(markup[pos:])
    return "".join(out)


# --- complaints -----------------------------------------------------------------------------


def _is_complaint(mail: ParsedMail) -> bool:
    """An ARF (RFC 5965) feedback report: someone marked our mail as spam.

    Not an opt-out in the respondent's own words, and not a bounce; the operator decides.
    Vendor variants without the report type still carry a `Feedback-Type` field.
    """
    msg = mail.message
    if (msg.get_content_type() == "multipart/report"
            and str(msg.get_param("report-type", "")).lower() == "feedback-report"):
        return True
    if any(content_type == "message/feedback-report" for content_type, _ in mail.parts):
        return True
    if mail.subject.lower().startswith("complaint about message from"):
        return True  # Microsoft JMRP
    original = _original_headers(mail)
    if original is not None and original.get("x-hmxmroriginalrecipient") is not None:
        return True
    return bool(_FEEDBACK_RE.search(mail.text[:20_000])) or _ses_type(mail) == "complaint"


_FEEDBACK_RE = re.compile(r"^Feedback-Type:\s*\w", re.IGNORECASE | re.MULTILINE)


# --- bounces --------------------------------------------------------------------------------

_DAEMON_RE = re.compile(r"^(?:mailer-daemon|postmaster|post_master|mail-daemon|maildaemon"
                        r"|mailerdaemon|mail\.daemon|bounces?|mdaemon)(?:@|$)", re.IGNORECASE)
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|non[- ]?delivery|delivery (?:status|failure|failed|report|problem"
    r"|notification)|returned mail|mail delivery|failure notice|delivery has failed"
    r"|could not be delivered|unable to deliver|returned to sender|rejected|bounced?"
    r"|ikke levert|kunne ikke leveres|levering mislyktes|leveringsfeil|unzustellbar"
    r"|nicht zustellbar|onbestelbaar|no entregado|non recapitabile|warning: could not send"
    r"|mail system error|message not delivered|failed delivery|delivery notification",
    re.IGNORECASE,
)


def _bounce_signal(mail: ParsedMail) -> str | None:
    """Why `mail` looks like a non-delivery report, or None (protocols §3.1)."""
    if _delivery_status_parts(mail):
        return "dsn"
    headers = mail.headers
    if "x-ms-exchange-message-is-ndr" in headers:
        return "exchange-ndr"
    if "x-failed-recipients" in headers:
        return "x-failed-recipients"
    sender = mail.from_address or ""
    if _DAEMON_RE.match(sender):
        return "from:" + sender.partition("@")[0].lower()
    display = (headers.get("from", "").split() or [""])[0].strip('"')
    if not sender and _DAEMON_RE.match(display):
        return "from:" + display.lower()  # "MAILER-DAEMON <>": a name and an empty address
    if _ses_type(mail) in ("bounce", "delivery"):
        return "ses-notification"
    null_path = _null_return_path(headers)
    if _original_headers(mail) is not None and (
        null_path or _NOREPLY_RE.match(sender) or _auto_submitted(headers)
    ):
        return "returned-message"
    if null_path or _BOUNCE_SUBJECT_RE.search(mail.subject):
        temporary, permanent = _flufl(mail.message)
        if temporary or permanent:
            return "null-return-path" if null_path else "subject+flufl"
        if _BOUNCE_SUBJECT_RE.search(mail.subject) and (null_path or _looks_automatic(mail)):
            return "subject"
    return None


def _null_return_path(headers: Mapping[str, str]) -> bool:
    value = headers.get("return-path")
    return value is not None and value.strip() in ("<>", "")


def _looks_automatic(mail: ParsedMail) -> bool:
    return _auto_submitted(mail.headers) or _DSN_TEXT_RE.search(mail.text[:20_000]) is not None


def _auto_submitted(headers: Mapping[str, str]) -> bool:
    """RFC 3834 Auto-Submitted with any value but "no"."""
    value = headers.get("auto-submitted")
    return value is not None and value.split(";")[0].strip().lower() not in ("no", "")


_SES_TYPE_RE = re.compile(r'\\?"(?:notificationType|eventType)\\?"\s*:\s*\\?"(\w+)')
_SES_FIELD_RE = re.compile(
    r'\\?"(emailAddress|status|diagnosticCode|bounceType)\\?"\s*:\s*\\?"([^"\\]*)'
)


def _ses_type(mail: ParsedMail) -> str | None:
    """The type of an Amazon SES notification delivered by mail (JSON, maybe SNS-wrapped)."""
    if "amazonses" not in mail.text[:20_000] and "amazonaws" not in (mail.from_address or ""):
        return None
    match = _SES_TYPE_RE.search(mail.text[:20_000])
    return match.group(1).lower() if match else None


def _ses_bounce(mail: ParsedMail) -> Bounce | None:
    """The failure in an SES Bounce notification; None for a Delivery notification."""
    if _ses_type(mail) != "bounce":
        return None
    fields: dict[str, list[str]] = {}
    for name, value in _SES_FIELD_RE.findall(mail.text[:100_000]):
        fields.setdefault(name, []).append(value)
    status = next(iter(fields.get("status", [])), None)
    return Bounce(
        permanent=next(iter(fields.get("bounceType", [])), "") == "Permanent"
        and not (status or "").endswith(".2.2"),
        recipients=_unique(fields.get("emailAddress", [])),
        status=status,
        diagnostic=next(iter(fields.get("diagnosticCode", [])), None),
        original_message_id=None,
    )


_DSN_TEXT_RE = re.compile(
    r"\b[45]\.\d{1,3}\.\d{1,3}\b|\b[45]\d\d[ -]|permanent(?:ly)? (?:error|fatal|failure)"
    r"|could not be delivered|delivery to the following recipients? failed|user unknown"
    r"|no such user|mailbox (?:is )?(?:full|unavailable|not found)|address rejected",
    re.IGNORECASE,
)


def _delivery_status_parts(mail: ParsedMail) -> list[Message]:
    return [part for content_type, part in mail.parts
            if content_type in ("message/delivery-status", "message/global-delivery-status")]


#: How much of a message flufl.bounce is given: its detectors run some forty patterns over
#: every line of every part (seconds for a message of a few hundred kilobytes), and a bounce
#: says what failed near its top.
_FLUFL_PART_CHARS = 16 * 1024
_FLUFL_PART_LINES = 300
_FLUFL_PARTS = 64


@lru_cache(maxsize=2)  # asked twice for the same bounce (is it one, and what failed)
def _flufl(msg: Message) -> tuple[frozenset[str], frozenset[str]]:
    """flufl.bounce's (temporary, permanent) failures as lowercased strings.

    The same walk as its `all_failures` (detectors in its order, the first that finds
    something wins), on `_bounded(msg)`. Its heuristic detectors are written for well-formed
    mail and raise on broken input (Yale's IndexError on a From without an address);
    `all_failures` then logs a traceback and gives up on the detectors after it. Here a
    detector that raises has found nothing, and the next one is asked.
    """
    bounded = _bounded(msg)
    temporary: set[bytes | str] = set()
    permanent: set[bytes | str] = set()
    for detector in _FLUFL_DETECTORS:
        try:
            found_temporary, found_permanent = detector().process(bounded)
        except Exception:  # noqa: S112 - a detector's error is its "nothing found"
            continue
        temporary.update(found_temporary)
        permanent.update(found_permanent)
        if found_temporary or found_permanent:
            break
    return _addresses(temporary), _addresses(permanent)


def _bounded(msg: Message) -> Message:
    """A copy of `msg` with at most `_FLUFL_PARTS` parts of at most `_FLUFL_PART_CHARS`
    characters and `_FLUFL_PART_LINES` lines each; the headers are shared, `msg` itself is not
    changed."""
    left = _FLUFL_PARTS

    def bounded(part: Message) -> Message:
        nonlocal left
        clone = copy.copy(part)
        payload = stored_payload(part)
        if isinstance(payload, list):
            children: list[Message | str] = []
            for child in payload:
                if left <= 0:
                    break
                if isinstance(child, Message):
                    left -= 1
                    children.append(bounded(child))
            clone.set_payload(children)
        elif isinstance(payload, str):
            head = payload[:_FLUFL_PART_CHARS]
            cut = _nth_line_end(head, _FLUFL_PART_LINES)
            if cut is not None or len(head) < len(payload):
                clone.set_payload(head[:cut])
        return clone

    return bounded(msg)


def _nth_line_end(text: str, lines: int) -> int | None:
    """The index just past the `lines`-th line end in `text`; None when it has fewer."""
    pos = -1
    for _ in range(lines):
        pos = text.find("\n", pos + 1)
        if pos < 0:
            return None
    return pos + 1


def _addresses(found: Iterable[bytes | str]) -> frozenset[str]:
    out: set[str] = set()
    for item in found:
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        text = text.strip().strip("<>").lower()
        if "@" in text:
            out.add(text)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class _Recipient:
    address: str | None
    action: str
    status: str | None
    diagnostic: str | None


_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE_RE = re.compile(r"(?<![\d.])([45])\d\d(?=[\s-])")
_QUOTA_RE = re.compile(r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:the )?"
                       r"(?:storage|quota)|insufficient (?:disk )?space|mailbox size limit",
                       re.IGNORECASE)


def read_bounce(mail: ParsedMail) -> Bounce | None:
    """The failure a bounce reports, or None when it reports no failure at all.

    RFC 3464 per-recipient blocks are read first. A DSN whose recipients were all delivered
    or relayed is no bounce. Anything else (vendor formats, plain-text notices) goes to
    flufl.bounce, with the status code and the quota wording read from the text.
    """
    original = _original_headers(mail)
    original_id = _original_message_id(mail, original)
    recipients = [r for part in _delivery_status_parts(mail)
                  for r in _dsn_recipients(part)]
    failed = [r for r in recipients if r.action in ("failed", "delayed")]
    if failed:
        permanent = [r for r in failed if _permanent(r)]
        chosen = permanent[0] if permanent else failed[0]
        return Bounce(
            permanent=bool(permanent),
            recipients=_unique(r.address for r in failed),
            status=chosen.status,
            diagnostic=chosen.diagnostic,
            original_message_id=original_id,
        )
    if recipients and all(r.action in ("delivered", "relayed", "expanded") for r in recipients):
        return None
    if _ses_type(mail) is not None:
        return _ses_bounce(mail)
    return _heuristic_bounce(mail, original, original_id)


def _heuristic_bounce(
    mail: ParsedMail, original: Message | None, original_id: str | None
) -> Bounce:
    text = _plain(mail)[:100_000]
    temporary, permanent = _flufl(mail.message)
    status_match = _STATUS_RE.search(text)
    status = status_match.group(0) if status_match else None
    diagnostic = _diagnostic_line(text, status)
    quota = bool(_QUOTA_RE.search(text)) or (status is not None and status[2:] == "2.2")
    if permanent:
        is_permanent = not quota
    elif temporary:
        is_permanent = False
    elif status is not None:
        is_permanent = status.startswith("5") and not quota
    else:
        code = _SMTP_CODE_RE.search(text)
        is_permanent = code is not None and code.group(1) == "5" and not quota
    found = sorted(permanent | temporary)
    if not found:
        found = [a for _, a in getaddresses(mail.header_values.get("x-failed-recipients", ()))]
    if not found and original is not None:
        found = [a for _, a in getaddresses(_all_values(original, "to"))]
    if not found:
        found = _text_recipients(text, mail)
    return Bounce(
        permanent=is_permanent,
        recipients=_unique(found),
        status=status,
        diagnostic=diagnostic,
        original_message_id=original_id,
    )


#: The lookbehind starts a match only where a local part begins: without it, a line of a
#: hundred thousand letters is scanned again from every one of them.
_ADDRESS_RE = re.compile(r"(?<![\w.+=-])[\w.+=-]+@[\w-]+(?:\.[\w-]+)+")
#: Lines whose addresses are the sender's or ids, not the failed recipient.
_NOT_RECIPIENT_LINE_RE = re.compile(
    r"^\s*(?:from|return-path|reply-to|sender|message-id|in-reply-to|references|received"
    r"|x-[\w-]+|reporting-mta|remote-mta|envelope-from|by|id|\(?envelope-from)\b",
    re.IGNORECASE,
)


def _text_recipients(text: str, mail: ParsedMail) -> list[str]:
    """The first address in a plain-text bounce that is neither ours nor the sender's.

    Plain-text notices name the failed address in prose ("There was an error delivering your
    mail to <x@y>"); the returned headers also name our own addresses, which are skipped.
    """
    own = {*mail.recipients, mail.from_address or ""}
    for line in text.splitlines()[:400]:
        if _NOT_RECIPIENT_LINE_RE.match(line):
            continue
        for address in _ADDRESS_RE.findall(line):
            address = address.lower().strip(".")
            if address not in own and not _DAEMON_RE.match(address):
                return [address]
    return []


def _diagnostic_line(text: str, status: str | None) -> str | None:
    for line in text.splitlines():
        stripped = line.strip()
        if (status and status in stripped) or _SMTP_CODE_RE.match(stripped):
            return stripped[:300]
    return None


def _permanent(recipient: _Recipient) -> bool:
    """Failed with a 5.x.x status; a full mailbox (x.2.2) clears up, so it is not permanent.

    Without a status the Diagnostic-Code's SMTP reply decides, and "failed" without either
    is taken at its word.
    """
    if recipient.action != "failed":
        return False
    status = recipient.status
    if status is None:
        code = _SMTP_CODE_RE.search(recipient.diagnostic or "")
        if code is not None:
            return code.group(1) == "5" and not _QUOTA_RE.search(recipient.diagnostic or "")
        return True
    quota = status.endswith(".2.2") or bool(_QUOTA_RE.search(recipient.diagnostic or ""))
    return status.startswith("5") and not quota


def _dsn_recipients(part: Message) -> list[_Recipient]:
    """The per-recipient blocks of a delivery-status part (RFC 3464 §2.3)."""
    blocks = _status_blocks(part)
    out: list[_Recipient] = []
    for fields in blocks:
        final = fields.get("final-recipient") or fields.get("original-recipient")
        if final is None and "action" not in fields:
            continue  # the per-message block
        action = fields.get("action", "").split()[0].lower() if fields.get("action") else ""
        status_match = _STATUS_RE.search(fields.get("status", ""))
        diagnostic = fields.get("diagnostic-code")
        if diagnostic is not None:
            diagnostic = diagnostic.partition(";")[2].strip() or diagnostic.strip()
        if not action:
            action = "failed" if status_match and status_match.group(1) in "45" else ""
        out.append(_Recipient(
            address=_recipient_address(final),
            action=action,
            status=status_match.group(0) if status_match else None,
            diagnostic=diagnostic[:500] if diagnostic else None,
        ))
    return out


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The header blocks of a delivery-status part as lowercased-name dictionaries.

    The stdlib splits message/delivery-status into blocks; message/global-delivery-status
    (RFC 6533) stays one text, which is split at blank lines here.
    """
    payload = stored_payload(part)
    if isinstance(payload, list):
        return [{k.strip().lower(): header_text(v) for k, v in reversed(list(block.raw_items()))}
                for block in payload if isinstance(block, Message)]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    blocks = []
    for chunk in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        parsed = HeaderParser().parsestr(chunk.strip() + "\n")
        fields = {k.strip().lower(): header_text(v) for k, v in reversed(list(parsed.items()))}
        if fields:
            blocks.append(fields)
    return blocks


def _recipient_address(value: str | None) -> str | None:
    if not value:
        return None
    address = value.partition(";")[2] if ";" in value else value
    address = address.strip().strip("<>").lower()
    return address or None


def _unique(addresses: Iterable[str | None]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for address in addresses:
        if address and "@" in address:  # "rfc822; kijitora" names no address we sent to
            seen.setdefault(address.strip().strip("<>").lower(), None)
    return tuple(seen)


def _original_headers(mail: ParsedMail) -> Message | None:
    """The headers of the message that bounced: a message/rfc822 or text/rfc822-headers part."""
    for kind, part in mail.parts:
        if kind in ("message/rfc822", "message/global"):
            payload = stored_payload(part)
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind in ("text/rfc822-headers", "message/rfc822-headers",
                    "message/global-headers"):
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
            return HeaderParser().parsestr(text.replace("\r\n", "\n"))
    return None


#: `[ \t]`, not `\s`: with MULTILINE a `\s*` at each line start would run over every blank
#: line below it, a quadratic search on a body of blank lines.
_BODY_MSGID_RE = re.compile(r"^[ \t]*Message-ID:[ \t]*(<[^<>\s]{1,998}>)",
                            re.IGNORECASE | re.MULTILINE)


def _original_message_id(mail: ParsedMail, original: Message | None) -> str | None:
    if original is not None:
        ids = message_ids(" ".join(_all_values(original, "message-id")))
        if ids:
            return ids[0]
    match = _BODY_MSGID_RE.search(mail.text[:100_000])
    return match.group(1) if match else None


def _original_token(mail: ParsedMail, patterns: _Patterns) -> str | None:
    """The token in the bounced message: its References, Reply-To or Message-ID, else the
    returned text of a plain-text bounce."""
    original = _original_headers(mail)
    texts: list[str] = []
    if original is not None:
        for name in ("references", "in-reply-to", "reply-to", "message-id", "from"):
            texts.extend(_all_values(original, name))
    texts.append(mail.text[:100_000])
    for text in texts:
        match = patterns.reference.search(text) or patterns.reply_in_text.search(text)
        if match is not None:
            return match.group("token").lower()
    return None


# --- auto-replies ---------------------------------------------------------------------------

_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-reply", "x-autoresponse",
                      "x-autoresponder")
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_NOREPLY_RE = re.compile(r"^(?:no-?reply|do-?not-?reply|noreply-[^@]*|no_reply)@", re.IGNORECASE)
_AUTO_SUBJECT_RE = re.compile(
    r"^\s*(?P<prefix>automatisk svar|automatiskt svar|autosvar|auto-svar|fraværende|fråverande"
    r"|fraværsmelding|fråværsmelding|fråversmelding|fravær|frånvaro|out of (?:the )?office"
    r"|automatic reply|auto[- ]?reply|autoresponse|auto[- ]?response|abwesenheitsnotiz"
    r"|automatische antwort|automatisch antwoord|réponse automatique|risposta automatica"
    r"|respuesta automática|poissa|ikke (?:på|til stede på) kontoret|auto(?=\s*:)"
    r"|on vacation|vacation reply)\b",
    re.IGNORECASE,
)


def _auto_reply_signal(mail: ParsedMail) -> str | None:
    """Why `mail` looks like an automatic reply, or None (RFC 3834 and vendor habits).

    `X-Auto-Response-Suppress` alone is not a signal: Outlook puts it on ordinary mail.
    """
    headers = mail.headers
    if _auto_submitted(headers):
        return "auto-submitted"
    for name in _AUTOREPLY_HEADERS:
        if name in headers:
            return name
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"precedence:{precedence}"
    source = headers.get("x-ms-exchange-generated-message-source", "")
    if "mailbox rules agent" in source.lower():
        return "mailbox-rules-agent"
    if (headers.get("x-auto-response-suppress", "").strip().lower() == "all"
            and "x-ms-exchange-inbox-rules-loop" in headers):
        return "exchange-rules-loop"
    if headers.get("x-apple-action", "").strip().lower() == "vacation":
        return "x-apple-action"
    if _null_return_path(headers):
        return "null-return-path"
    if _NOREPLY_RE.match(mail.from_address or ""):
        return "noreply-from"
    subject = _AUTO_SUBJECT_RE.match(mail.subject)
    if subject is not None:
        return f"subject:{subject.group('prefix').lower()}"
    return None


#: Mailing-list traffic is nobody's personal reply (protocols §3.1).
_LIST_HEADERS = ("list-id", "list-post", "list-unsubscribe", "list-subscribe", "x-mailing-list",
                 "mailing-list", "x-mlserver", "x-ml-name")


# --- forwards -------------------------------------------------------------------------------

_FORWARD_SUBJECT_RE = re.compile(
    r"^\s*\[?\s*(?:fwd?|fw|vs|videresend|videresendt|vb|wg|tr|rv|enc|doorst|i|trs)\s*:",
    re.IGNORECASE,
)
_FORWARD_MARKER_RE = re.compile(
    r"^[ \t>]*(?:-{2,}[ \t]*(?:videresendt melding|vidaresendt melding|forwarded message"
    r"|original message|opprinnelig melding|opphavleg melding|weitergeleitete nachricht"
    r"|ursprüngliche nachricht|vidarebefordrat meddelande|videresendt besked"
    r"|message transféré|mensaje reenviado)"
    r"|(?:begin forwarded message|start of forwarded message|videresendt melding"
    r"|vidaresendt melding|start på videresendt melding|start på videresendt e-post)[ \t]*:"
    r"|-{3,}[ \t]*[^\W\d_][^-\n]{2,50}[ \t]-{3,})",  # "----- Weitergeleitete … -----"
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_LINE_RE = re.compile(
    r"^[ \t>]*\*?(?:fra|frå|from|von|de|från|van|da|od|sendt|sent|dato|date|datum|gesendet"
    r"|til|to|an|kopi|cc|emne|subject|betreff|objet|ämne|onderwerp|oggetto|asunto)\*?[ \t]*:"
    r"\*?[ \t]*\S",
    re.IGNORECASE,
)
#: "Kari <kari@x.no> skrev følgende den 28/10/2021, 12:46:" — any language: an address in
#: brackets on a line that ends in a colon.
_QUOTE_HEADER_RE = re.compile(r"^[ \t>]*[^\n<>]{0,200}<[^<>\s@]+@[^<>\s]+>[^\n<>]{0,200}:[ \t]*$",
                              re.MULTILINE)
_ANY_HEADER_LINE_RE = re.compile(r"^[ \t>]*\*?[^\W\d_][\w .'-]{0,24}\*?[ \t]*:\*?[ \t]*\S")
_FROM_LINE_RE = re.compile(r"^[ \t>]*\*?(?:fra|frå|from|von|de|från|van|da|od)\*?[ \t]*:",
                           re.IGNORECASE)


def _forward_signal(mail: ParsedMail) -> str | None:
    """A forward: a forwarding subject prefix AND a forwarded message inside.

    Both are required: "VS:" alone is also a reply to a forwarded mail, and a quoted header
    block alone is every Outlook reply (protocols §1.5).
    """
    if not _FORWARD_SUBJECT_RE.match(mail.subject):
        return None
    if any(content_type == "message/rfc822" for content_type, _ in mail.parts):
        return "forward:attachment"
    text = _plain(mail)[:100_000]
    if _FORWARD_MARKER_RE.search(text):
        return "forward:marker"
    if _has_header_block(text):
        return "forward:header-block"
    if _QUOTE_HEADER_RE.search(text):
        return "forward:quote-header"
    return None


def _has_header_block(text: str) -> bool:
    """Two or more consecutive header lines, one of them naming the sender.

    Known labels ("Fra:", "From:", "Emne:" …) count, and so do unknown ones ("Od:", "От:")
    when the block holds an address: clients label forwards in their user's language.
    """
    run = 0
    saw_from = False
    for line in text.splitlines()[:2000]:
        known = _HEADER_LINE_RE.match(line)
        if known or _ANY_HEADER_LINE_RE.match(line):
            run += 1
            saw_from = saw_from or bool(_FROM_LINE_RE.match(line) or "@" in line)
            if run >= 2 and saw_from:
                return True
        elif line.strip():
            run = 0
            saw_from = False
    return False
