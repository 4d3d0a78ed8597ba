"""Reading one inbound message into a `ParsedMail`: headers, recipients and the body as text.

Mail reaches svarbot from Outlook, iPhone and Gmail, through municipal gateways that rewrite
and re-encode it, and sometimes from broken software. Parsing therefore tolerates everything
the standard library can still read (missing boundaries, bad headers, unknown charsets) and
fails in exactly one way, `BadMail` with a reason code, so that the caller can quarantine the
raw bytes instead of losing them. Nothing here does I/O.

Messages are parsed with (a variant of) the compat32 policy. `policy.default` parses a
header into an object on every access (each content type, parameter and address lookup),
which cost many times the parse itself; here each header is decoded once, when it is read.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.policy import Compat32
from email.utils import getaddresses, parseaddr
from enum import StrEnum
from types import MappingProxyType

__all__ = ["BadMail", "MailKind", "ParsedMail", "parse_mail"]

#: Only this much of the body is kept as text: answers are short, quotes and signatures long.
MAX_TEXT_CHARS = 256 * 1024
#: Headers that name where a message was delivered. Reply-all puts our address in Cc, and
#: forwarding rules keep it only in Delivered-To / X-Original-To (protocols §2.2).
RECIPIENT_HEADERS = (
    "to", "cc", "delivered-to", "x-original-to", "x-gm-original-to", "envelope-to",
    "resent-to", "resent-cc", "x-forwarded-to",
)  # fmt: skip
#: Tried in order after the declared charset; latin-1 decodes any byte, so decoding is total.
FALLBACK_CHARSETS = ("utf-8", "windows-1252", "latin-1")
#: Parts nested deeper than this (multiparts and attached messages) make the message
#: unreadable ("too_deep"): mail clients nest a few levels per forward, and everything that
#: reads a message (the stdlib's `walk`, flufl.bounce) recurses over the depth.
MAX_DEPTH = 64
#: A message declaring more multipart and message/* parts than this is not parsed at all
#: ("too_many_parts"): the stdlib parser spends about a millisecond on each level of nesting
#: before it runs out of stack, and no mail client makes a tenth of this many.
MAX_CONTAINERS = 256
#: Nor one with more lines that may be part delimiters (lines that begin with "--"): each
#: part costs the parser some 50 µs, and ten megabytes hold a couple of hundred thousand.
MAX_DELIMITER_LINES = 2000
#: A Content-Type field longer than this (folded lines included) makes the message
#: "not_mime" before parsing: its boundary (RFC 2046 allows 70 characters) may be all of it,
#: and the stdlib parser compiles each boundary into a pattern, seconds for a megabyte.
MAX_CONTENT_TYPE_CHARS = 4096
#: A header value is read up to this many characters: no client writes a longer one, and
#: RFC 2047 decoding and address parsing cost time in the length.
MAX_HEADER_CHARS = 32 * 1024
#: A Message-ID longer than a header line may be (RFC 5322 §2.1.1) is nobody's id.
MAX_MESSAGE_ID_CHARS = 998
#: Only the newest References are kept: each may be looked up in the outbox, and a thread is
#: never this long.
MAX_REFERENCES = 100


class _Policy(Compat32):
    """compat32, except that a header value fetched from a message is always a plain string.

    compat32 returns an `email.header.Header` for a value with 8-bit bytes, which code that
    expects a string (`msg.get("from", "").lower()` in flufl.bounce's detectors) trips over.
    Such bytes are read as UTF-8 (else U+FFFD) and folding is undone, as `policy.default`
    shows values; header parsing itself stays compat32's cheap one.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        if "\n" in value or "\r" in value:
            value = _FOLD_RE.sub("", value)
        if _SURROGATE_RE.search(value):
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return value


_FOLD_RE = re.compile(r"\r\n|\r|\n")
_POLICY = _Policy()
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_SURROGATE_RE = re.compile("[\udc80-\udcff]")
#: A surrogate left alone after decoding (a "charset" such as unicode_escape makes them): no
#: text column, terminal or JSON encoder takes it, so it becomes U+FFFD.
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class MailKind(StrEnum):
    """What an inbound message is, as far as the conversation is concerned."""

    ANSWER = "answer"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    FORWARD = "forward"
    OPT_OUT = "opt_out"
    QUERY = "query"
    UNKNOWN = "unknown"


class BadMail(Exception):
    """The message cannot be read at all; `reason` is the quarantine reason code.

    Codes: "too_large" (over the byte limit, not parsed), "not_mime" (no header fields at
    all: not an email), "no_body" (no text, HTML, report or attached message anywhere),
    "too_deep" (parts nested beyond `MAX_DEPTH`), "too_many_parts" (more multipart and
    message/* parts declared than `MAX_CONTAINERS`, or more lines that may delimit parts than
    `MAX_DELIMITER_LINES`; not parsed), "read_error" (reading failed in a way nobody
    foresaw; `detail` names the exception).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """One inbound message, decoded.

    Attributes:
        message_id: the Message-ID as written, angle brackets included ("<id@host>").
        in_reply_to: the first message id in In-Reply-To.
        references: the ids in References, oldest first, brackets included.
        from_address: the From address, lowercased; None when there is none.
        recipients: every delivery address (To, Cc, Delivered-To, X-Original-To, …),
            lowercased, first occurrence first, no duplicates.
        headers: lowercased header name → its first value, RFC 2047-decoded.
        text: the body as text — text/plain preferred, else the raw HTML (`text_is_html`);
            line ends are LF, format=flowed is joined, at most `MAX_TEXT_CHARS` characters.
        size: the size of the raw message in bytes.
        message: the parsed message (compat32: header values are raw strings), for the
            delivery-status and returned-message parts.
        parts: every part of `message` in `walk()` order with its content type, so that
            the classifier's part checks need not walk and re-read headers again.
        header_values: lowercased header name → all its values, RFC 2047-decoded, in order.
    """

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    from_address: str | None
    recipients: tuple[str, ...]
    headers: Mapping[str, str]
    text: str
    text_is_html: bool
    size: int
    message: Message
    parts: tuple[tuple[str, Message], ...]
    header_values: Mapping[str, tuple[str, ...]]


def parse_mail(raw: bytes, *, max_bytes: int = 10_000_000) -> ParsedMail:
    """Parse raw RFC 5322 bytes.

    The size, the number of parts and the length of Content-Type are checked before parsing,
    so a 20 MB attachment or a hundred thousand parts cost nothing, and the depth right
    after, before anything walks the parts. Any failure inside the standard library becomes
    `BadMail("not_mime")` (or "too_deep" when it ran out of stack on the nesting): one
    exception type is all the caller has to handle, and the raw bytes stay with the caller
    for an operator.
    """
    if len(raw) > max_bytes:
        raise BadMail("too_large", f"{len(raw)} bytes > {max_bytes}")
    if _containers(raw) > MAX_CONTAINERS:
        raise BadMail("too_many_parts", f"more than {MAX_CONTAINERS} multipart or message parts")
    delimiters = raw.count(b"\n--") + raw.count(b"\r--")
    if delimiters > MAX_DELIMITER_LINES:
        raise BadMail("too_many_parts", f"{delimiters} lines that may delimit parts")
    if _long_content_type(raw):
        raise BadMail("not_mime", f"a Content-Type over {MAX_CONTENT_TYPE_CHARS} characters")
    try:
        return _parse(raw)
    except BadMail:
        raise
    except RecursionError as exc:
        raise BadMail("too_deep", "nested beyond what the parser can read") from exc
    except Exception as exc:  # the stdlib parser has raised odd errors on hostile input
        raise BadMail("not_mime", type(exc).__name__) from exc


_CONTAINER_RE = re.compile(rb"content-type:[ \t]*(?:multipart|message)/", re.IGNORECASE)
#: A Content-Type field with its folded lines (up to a line end not followed by a blank).
_CONTENT_TYPE_RE = re.compile(rb"^content-type:[^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*",
                              re.IGNORECASE | re.MULTILINE)


def _long_content_type(raw: bytes) -> bool:
    """Whether a Content-Type field in `raw` (in any part) is over `MAX_CONTENT_TYPE_CHARS`."""
    return any(match.end() - match.start() > MAX_CONTENT_TYPE_CHARS
               for match in _CONTENT_TYPE_RE.finditer(raw))


def _containers(raw: bytes) -> int:
    """How many multipart and message/* parts `raw` declares, counted up to one past
    `MAX_CONTAINERS` (an upper bound: a text part may mention such a header too)."""
    count = 0
    for _ in _CONTAINER_RE.finditer(raw):
        count += 1
        if count > MAX_CONTAINERS:
            break
    return count


def nesting_depth(msg: Message) -> int:
    """How deep `msg`'s parts nest (1: no parts), counted without recursion."""
    deepest = 0
    stack = [(msg, 1)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
    return deepest


def _parse(raw: bytes) -> ParsedMail:
    msg = message_from_bytes(raw, policy=_POLICY)
    if not msg.keys():
        raise BadMail("not_mime", "no header fields")
    if nesting_depth(msg) > MAX_DEPTH:
        raise BadMail("too_deep", f"parts nested more than {MAX_DEPTH} deep")
    raw_values: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        key = name.strip().lower()
        if key:
            raw_values.setdefault(key, []).append(value)
    values = HeaderValues(raw_values)
    headers = {key: values.first(key) for key in raw_values}
    parts = tuple((part.get_content_type(), part) for part in msg.walk())
    text, is_html = body_text(msg, parts)
    references = tuple(message_ids(headers.get("references", "")))[-MAX_REFERENCES:]
    in_reply_to = next(iter(message_ids(headers.get("in-reply-to", ""))), None)
    message_id = next(iter(message_ids(headers.get("message-id", ""))), None)
    return ParsedMail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        subject=" ".join(headers.get("subject", "").split()),
        from_address=address_of(headers.get("from", "")),
        recipients=_recipients(values),
        headers=MappingProxyType(headers),
        text=text,
        text_is_html=is_html,
        size=len(raw),
        message=msg,
        parts=parts,
        header_values=values,
    )


class HeaderValues(Mapping[str, tuple[str, ...]]):
    """Lowercased header name → all its values, decoded on first access.

    A message carries many values nobody reads (a bounce has twenty Received lines), so
    each name is decoded only when asked for, and then once.
    """

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Mapping[str, list[str]]) -> None:
        self._raw = raw
        self._decoded: dict[str, tuple[str, ...]] = {}

    def __getitem__(self, name: str) -> tuple[str, ...]:
        found = self._decoded.get(name)
        if found is None:
            found = self._decoded[name] = tuple(header_text(v) for v in self._raw[name])
        return found

    def first(self, name: str) -> str:
        """The first value of `name`, decoded; KeyError when there is none."""
        return self[name][0] if name in self._decoded else header_text(self._raw[name][0])

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def header_text(value: object) -> str:
    """A header value as one line of decoded text, whatever the policy made of it.

    RFC 2047 words are decoded leniently (an unknown charset keeps the encoded word), and
    folding is undone, so that subjects and addresses compare as plain strings. Only the
    first `MAX_HEADER_CHARS` characters are read.
    """
    text = str(value)[:MAX_HEADER_CHARS]
    if _SURROGATE_RE.search(text):  # 8-bit bytes in a header (no RFC 2047): decode them
        text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    if "=?" in text:
        with contextlib.suppress(Exception):  # an undecodable word stays as written
            text = str(make_header(decode_header(text)))
    if _LONE_SURROGATE_RE.search(text):
        text = _LONE_SURROGATE_RE.sub("\ufffd", text)
    return " ".join(text.replace("\x00", "").split())


def message_ids(value: str) -> list[str]:
    """The `<id>` tokens of a Message-ID / In-Reply-To / References value.

    Clients that drop the brackets still get their ids read, one per whitespace-separated word
    containing '@'. An id longer than `MAX_MESSAGE_ID_CHARS` is left out.
    """
    found = _MSGID_RE.findall(value)
    if not found:
        found = [f"<{word.strip('<>,')}>" for word in value.split() if "@" in word]
    return [found_id for found_id in found if len(found_id) <= MAX_MESSAGE_ID_CHARS]


def address_of(value: str) -> str | None:
    """The single address in a From-like header, lowercased."""
    _, address = parseaddr(value)
    address = address.strip().lower()
    return address or None


def recipient_addresses(msg: Message) -> tuple[str, ...]:
    """All addresses in the delivery headers, lowercased and in header order."""
    values: dict[str, list[str]] = {}
    for key, value in msg.raw_items():
        values.setdefault(key.strip().lower(), []).append(value)
    return _recipients(HeaderValues(values))


def _recipients(values: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """The delivery addresses among decoded header values (name → values in order)."""
    found: list[str] = []
    for name in RECIPIENT_HEADERS:
        found.extend(values.get(name, ()))
    seen: dict[str, None] = {}
    for _, address in getaddresses(found):
        address = address.strip().strip("<>").lower()
        if address:
            seen.setdefault(address, None)
    return tuple(seen)


# --- body -----------------------------------------------------------------------------------


def body_text(
    msg: Message, parts: Iterable[tuple[str, Message]] | None = None
) -> tuple[str, bool]:
    """The text of the message and whether it is HTML.

    text/plain is preferred (protocols §1.3); an empty plain part gives way to HTML. When
    `find_body` finds nothing (a lone attachment, a report without a readable part), the
    first text part anywhere is used; a message with no text at all is `no_body` unless it
    carries a report or an attached message, which the classifier reads instead. `parts` is
    `msg.walk()` with each part's content type, when the caller has it already.
    """
    walked = (
        tuple(parts) if parts is not None
        else tuple((part.get_content_type(), part) for part in msg.walk())
    )
    plain = find_body(msg, "plain")
    if plain is not None:
        text = part_text(plain)
        if text.strip():
            return text, False
    html = find_body(msg, "html")
    if html is not None:
        return part_text(html), True
    for content_type, part in walked:
        maintype, _, subtype = content_type.partition("/")
        if maintype == "text":
            return part_text(part), subtype == "html"
        if maintype == "multipart" and not part.is_multipart():
            # A multipart without a usable boundary: its content is one unparsed string.
            # The first "--x" line is most likely the boundary the sender forgot to declare.
            return _reparse_multipart(part), False
    if plain is not None:
        return "", False
    if any(content_type.startswith("message/") for content_type, _ in walked):
        return "", False
    if walked[0][0] == "multipart/report":
        return "", False
    raise BadMail("no_body", walked[0][0])


_BOUNDARY_LINE_RE = re.compile(r"^--([^\s]{1,70})\s*$", re.MULTILINE)


def _reparse_multipart(part: Message) -> str:
    """The text of a multipart part whose boundary is missing, read with a guessed one."""
    stored = stored_payload(part)
    raw = stored if isinstance(stored, str) else ""
    guess = _BOUNDARY_LINE_RE.search(raw[:2000])
    if guess is not None:
        boundary = guess.group(1).removesuffix("--")
        head = f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
        inner = message_from_bytes(
            (head + raw).encode("utf-8", "surrogateescape"), policy=_POLICY
        )
        body = find_body(inner, "plain")
        if body is None:  # not `or`: a Message without headers is falsy
            body = find_body(inner, "html")
        if body is not None and body.get_content_maintype() == "text":
            return part_text(body)
    return part_text(part)


def stored_payload(part: Message) -> object:
    """A part's payload as the parser stored it: its parts, or its text with 8-bit bytes as
    surrogate escapes.

    `get_payload()` would decode such text with the declared charset, which may be any codec
    Python has (punycode: quadratic time, a UnicodeError on bytes it does not expect) or no
    name at all (an RFC 2231 triple: TypeError); `get_payload(decode=True)` is safe, but also
    undoes the transfer encoding.
    """
    return vars(part).get("_payload")


def find_body(msg: Message, subtype: str) -> Message | None:
    """The first text/`subtype` part that is the message's body, as `get_body` finds it.

    The same walk as `EmailMessage.get_body(preferencelist=(subtype,))`, for compat32
    messages: depth first, attachments skipped, and of a multipart/related only its root
    part (the `start` parameter, else the first part).
    """
    return _find_body(part=msg, subtype=subtype, descend=msg.is_multipart())


def _find_body(*, part: Message, subtype: str, descend: bool) -> Message | None:
    if part.get_content_disposition() == "attachment":
        return None
    maintype, _, sub = part.get_content_type().partition("/")
    if maintype == "text":
        return part if sub == subtype else None
    if maintype != "multipart" or not descend:  # get_body checks the root, not the part
        return None
    payload = part.get_payload() if part.is_multipart() else []
    children = [child for child in payload if isinstance(child, Message)]
    if sub == "related":
        candidate: Message | None = None
        start = part.get_param("start")
        if start:
            candidate = next(
                (child for child in children if _content_id(child) == start), None
            )
        if candidate is None:
            candidate = children[0] if children else None
        children = [candidate] if candidate is not None else []
    for child in children:
        found = _find_body(part=child, subtype=subtype, descend=descend)
        if found is not None:
            return found
    return None


def _content_id(part: Message) -> str | None:
    value = part.get("content-id")
    return None if value is None else header_text(value)


def part_text(part: Message) -> str:
    """A text part decoded: transfer encoding, charset chain, format=flowed, LF, NFC."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        data = payload
    else:  # a multipart or message part where a leaf was expected
        data = str(stored_payload(part)).encode("utf-8", "surrogateescape")
    text = decode_bytes(data[: MAX_TEXT_CHARS * 4], _first_word(part.get_content_charset()))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _first_word(part.get_param("format", "")) == "flowed":
        delsp = _first_word(part.get_param("delsp", "")).lower() == "yes"
        text = unflow(text, delsp=delsp)
    return unicodedata.normalize("NFC", text[:MAX_TEXT_CHARS])


def _first_word(value: object) -> str:
    """A Content-Type parameter value up to the first blank, as an RFC 2045 token ends there.

    compat32 keeps whatever follows a value on a folded line ("delsp=yes<LF><TAB>junk");
    the token alone is what the sender meant. An RFC 2231 triple is read as its text.
    """
    if isinstance(value, tuple):
        value = value[2]
    words = str(value or "").split()
    return words[0] if words else ""


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Decode with the declared charset, then UTF-8, windows-1252 and latin-1.

    A declared charset that Python does not know (`x-unknown`), that is not a text codec
    (`rot13`), that is a codec of Python's but no charset (`punycode`, see `_NOT_CHARSETS`),
    or that does not fit the bytes is skipped; latin-1 always succeeds. A lone
    surrogate in the result (which Python's own codecs such as `unicode_escape` make)
    becomes U+FFFD.
    """
    for charset in (declared, *FALLBACK_CHARSETS):
        if not charset or not _is_charset(charset):
            continue
        try:
            text = data.decode(charset)
        except (LookupError, UnicodeError, ValueError, TypeError):
            continue
        if _LONE_SURROGATE_RE.search(text):
            text = _LONE_SURROGATE_RE.sub("\ufffd", text)
        return text
    return data.decode("latin-1")  # pragma: no cover - latin-1 is in the chain


#: Codecs Python has that no mail client declares as a charset. idna and punycode decode in
#: quadratic time (a megabyte takes minutes); the escape codecs make lone surrogates.
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape",
                           "undefined"})


@functools.lru_cache(maxsize=256)
def _is_charset(name: str) -> bool:
    """Whether `name` is a codec Python knows that may be used as a charset."""
    try:
        return codecs.lookup(name).name not in _NOT_CHARSETS
    except (LookupError, ValueError, TypeError):
        return False


def unflow(text: str, *, delsp: bool) -> str:
    """Join RFC 3676 format=flowed lines.

    A line ending in a space continues on the next line of the same quote depth; with
    DelSp=yes that space was inserted by the sender and is removed. The signature separator
    "-- " is never a soft break, and space-stuffing is undone.
    """
    out: list[str] = []
    current: list[str] | None = None  # the pieces of the line being joined
    depth_now = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        if current is not None and depth != depth_now:
            out.append(_quoted(depth_now, "".join(current)))
            current = None
        if current is None:
            current = []
        current.append(content)
        depth_now = depth
        if content.endswith(" ") and content != "-- ":
            if delsp:
                current[-1] = content[:-1]
            continue
        out.append(_quoted(depth, "".join(current)))
        current = None
    if current is not None:
        out.append(_quoted(depth_now, "".join(current)))
    return "\n".join(out)


def _quoted(depth: int, text: str) -> str:
    return f"{'>' * depth} {text}" if depth else text
