"""Hostile and mutated mail for the fuzz tests and `bench/fuzz_mail.py`.

Mail reaches svarbot from broken gateways, old clients and people who want to break it. The
reading path must turn every message into a reading or a quarantine reason, quickly; these
generators make the messages that try it. Two kinds:

* `Recipe` / `build`: a seeded mutator over the real corpora (the fixtures' hand-made replies,
  sisimai's 600 bounces, the forward-parser bodies) and over messages made from scratch. A
  recipe names its seed, its base and its mutations, so a message that fails or is slow is
  reproduced from one line: `build(Recipe(seed, base, mutations))`.
* Hypothesis strategies (`raw_messages`, `mime_messages`): structure drawn by Hypothesis
  (nested parts, charsets, transfer encodings, boundaries that do or do not match), so that
  a failure shrinks to a small message.

The mutations are what the field produces: broken MIME boundaries, wrong and unknown charsets,
huge headers, deep nesting (multiparts, attached messages, HTML), base64 garbage, NUL bytes,
endless lines, malformed delivery reports and HTML that is slow to parse.
"""

from __future__ import annotations

import base64
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: The folders whose *.eml are bases, and the trimmer's reply bodies (wrapped into messages).
CORPUS_DIRS = (FIXTURES / "mail", FIXTURES / "corpora")
BODY_DIRS = (FIXTURES / "trim",)
#: The token scratch replies are addressed to (the dispatcher tests put a real one instead).
TOKEN = "n4rvgk2a7b5c6d2e3f4g5h6j7k2m3p4q"  # noqa: S105 - a made-up invitation token
REPLY_TO = f"svar+{TOKEN}@svarbot.localhost"

#: Charsets a mutation puts in place of the declared one: real ones that do not fit the bytes,
#: unknown names, codecs that are not text codecs, and nonsense.
CHARSETS = (
    "utf-8", "us-ascii", "iso-8859-1", "windows-1252", "iso-8859-15", "koi8-r", "utf-16",
    "utf-16-le", "utf-32", "utf-7", "unicode-1-1-utf-7", "shift_jis", "iso-2022-jp", "gb2312",
    "big5", "cp037", "mac-roman", "x-unknown", "unknown-8bit", "x-user-defined", "default",
    "rot13", "base64", "hex", "zlib", "uu", "bz2", "idna", "punycode", "raw_unicode_escape",
    "unicode_escape", "", '"', "utf-8\x00", "x" * 300, "=?utf-8?", "utf-8; format=flowed",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Recipe:
    """How one generated message is made: the seed, the base and the mutations in order."""

    seed: int
    base: str
    mutations: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"seed={self.seed} base={self.base} mutations={'+'.join(self.mutations) or '-'}"


# --- bases ------------------------------------------------------------------------------------


@functools.cache
def corpus() -> dict[str, bytes]:
    """Every corpus message by its path under tests/fixtures, sorted."""
    found: dict[str, bytes] = {}
    for folder in CORPUS_DIRS:
        for path in sorted(folder.rglob("*.eml")):
            found[str(path.relative_to(FIXTURES))] = path.read_bytes()
    for folder in BODY_DIRS:
        for path in sorted(folder.rglob("*")):
            if path.suffix in (".txt", ".html") and path.is_file():
                found[str(path.relative_to(FIXTURES))] = _wrap_body(path)
    return found


def _wrap_body(path: Path) -> bytes:
    """A reply body of the trimmer's corpus as a reply to us, as its client would send it."""
    subtype = "html" if path.suffix == ".html" else "plain"
    head = (f"From: Kari Nordmann <kari@kommune.example>\r\nTo: {REPLY_TO}\r\n"
            f"Subject: SV: Innovasjonsbarometeret\r\nMessage-ID: <{path.stem}@kommune.example>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/{subtype}; charset=utf-8\r\n\r\n")
    return head.encode() + path.read_bytes()


def _headers(subject: str = "SV: Innovasjonsbarometeret", extra: str = "") -> bytes:
    return (f"From: Kari Nordmann <kari@kommune.example>\r\nTo: {REPLY_TO}\r\n"
            f"Subject: {subject}\r\nDate: Tue, 15 Oct 2019 10:00:00 +0200\r\n"
            f"Message-ID: <fuzz@kommune.example>\r\n"
            f"In-Reply-To: <r-{TOKEN}@svarbot.localhost>\r\nMIME-Version: 1.0\r\n{extra}"
            ).encode()


_ANSWER = "1: helse og omsorg\r\n2: 4\r\n3: ca. 40 ansatte\r\n"
_QUOTE = ("\r\nFra: Innovasjonsbarometeret <svar@svarbot.localhost>\r\n"
          "Sendt: 15. oktober 2019 09:00\r\nTil: Kari\r\nEmne: Innovasjonsbarometeret\r\n\r\n"
          "> 1. Hvilken sektor jobber du i?\r\n> 2. Hvor fornøyd er du?\r\n")
_HTML = ("<html><head><style>p {margin:0}</style></head><body><div dir=\"ltr\">1: helse<br>"
         "2: 4</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">tir. 15. okt. 2019 "
         "kl. 09:00 skrev Svarbot &lt;svar@svarbot.localhost&gt;:</div><blockquote "
         "class=\"gmail_quote\">1. Hvilken sektor?</blockquote></div></body></html>")


def _scratch_reply(rng: random.Random) -> bytes:
    del rng
    return _headers() + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + \
        (_ANSWER + _QUOTE).encode()


def _scratch_html(rng: random.Random) -> bytes:
    del rng
    return _headers() + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + _HTML.encode()


def _scratch_alternative(rng: random.Random) -> bytes:
    boundary = f"alt{rng.randrange(10**6)}"
    return _headers() + (
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n1: helse og omsorg=\r\n\r\n2: 4\r\n"
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.encodebytes(_HTML.encode()).decode()}--{boundary}--\r\n").encode()


def _scratch_dsn(rng: random.Random) -> bytes:
    boundary = f"dsn{rng.randrange(10**6)}"
    status = rng.choice(("5.1.1", "4.2.2", "5.7.1", "2.0.0", "9.9.9", ""))
    action = rng.choice(("failed", "delayed", "delivered", "", "FAILED (x)"))
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.kommune.example>\r\n"
        "To: svar@svarbot.localhost\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n"
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nYour message could not be "
        f"delivered.\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.kommune.example\r\n\r\n"
        "Final-Recipient: rfc822; leder@kommune.example\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <out-1@svarbot.localhost>\r\nReply-To: {REPLY_TO}\r\n"
        f"References: <r-{TOKEN}@svarbot.localhost>\r\n--{boundary}--\r\n").encode()


def _scratch_auto_reply(rng: random.Random) -> bytes:
    subject = rng.choice(("Automatisk svar: Innovasjonsbarometeret", "Fraværende", "Out of Office"))
    return _headers(subject, "Auto-Submitted: auto-replied\r\n") + \
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nJeg er tilbake 14. oktober.\r\n"


def _scratch_empty(rng: random.Random) -> bytes:
    return rng.choice((b"", b"\r\n", b"\r\n\r\n", b"\x00", b":", b"From:\r\n\r\n"))


def _scratch_garbage(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randrange(1, 4000))


def _scratch_headers_only(rng: random.Random) -> bytes:
    del rng
    return _headers()


SCRATCH: dict[str, Callable[[random.Random], bytes]] = {
    "reply": _scratch_reply,
    "html": _scratch_html,
    "alternative": _scratch_alternative,
    "dsn": _scratch_dsn,
    "auto_reply": _scratch_auto_reply,
    "empty": _scratch_empty,
    "garbage": _scratch_garbage,
    "headers_only": _scratch_headers_only,
}


@functools.cache
def bases() -> tuple[str, ...]:
    """Every base a recipe may start from: "corpus:<path>" and "scratch:<kind>"."""
    return (*(f"corpus:{name}" for name in corpus()), *(f"scratch:{name}" for name in SCRATCH))


def base_bytes(base: str, rng: random.Random) -> bytes:
    kind, _, name = base.partition(":")
    if kind == "corpus":
        return corpus()[name]
    return SCRATCH[name](rng)


# --- helpers for the mutations ------------------------------------------------------------------


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(headers, separator, body); the separator is b"" when there is no blank line."""
    for sep in (b"\r\n\r\n", b"\n\n", b"\r\r"):
        head, found, body = raw.partition(sep)
        if found:
            return head, found, body
    return raw, b"", b""


def _eol(raw: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in raw[:4000] else b"\n"


def _body_part(raw: bytes) -> bytes:
    """The message as a body part: its content headers and its body."""
    head, _, body = _split(raw)
    keep = [line for line in head.splitlines()
            if line.lower().startswith((b"content-", b" ", b"\t"))]
    return b"\r\n".join(keep) + b"\r\n\r\n" + body


def _top_headers(raw: bytes) -> bytes:
    """The message's headers without its content headers (for a new top-level body)."""
    head, _, _ = _split(raw)
    lines: list[bytes] = []
    skipping = False
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                lines.append(line)
            continue
        skipping = line.lower().startswith(b"content-")
        if not skipping:
            lines.append(line)
    return b"\r\n".join(lines) + b"\r\n"


def _replace_params(raw: bytes, name: bytes, values: Callable[[], bytes]) -> bytes:
    """Every `name=value` parameter given a new value from `values()`."""
    out = bytearray()
    lower = raw.lower()
    key = name + b"="
    i = 0
    while True:
        j = lower.find(key, i)
        if j < 0:
            out += raw[i:]
            return bytes(out)
        k = j + len(key)
        if raw[k:k + 1] == b'"':
            end = raw.find(b'"', k + 1)
            end = len(raw) if end < 0 else end + 1
        else:
            end = k
            while end < len(raw) and raw[end:end + 1] not in b' \t\r\n;':
                end += 1
        out += raw[i:k] + values()
        i = end


# --- mutations ----------------------------------------------------------------------------------


def boundary_break(raw: bytes, rng: random.Random) -> bytes:
    """A multipart whose boundaries do not match: undeclared, renamed, unclosed, empty."""
    if b"boundary=" not in raw.lower():
        raw = _top_headers(raw) + b'Content-Type: multipart/mixed; boundary="fz"\r\n\r\n--fz\r\n' \
            + _body_part(raw) + b"\r\n--fz--\r\n"
    action = rng.randrange(7)
    if action == 0:  # the parameter gone
        return _replace_params(raw, b"boundary", lambda: b"").replace(b"boundary=", b"")
    if action == 1:  # renamed in the header only
        return _replace_params(raw, b"boundary", lambda: b'"other-%d"' % rng.randrange(100))
    if action == 2:  # the closing delimiters gone, or the message cut inside a part
        cut = raw.rfind(b"--\r\n")
        return raw[:cut] if cut > 0 else raw[: len(raw) // 2]
    if action == 3:  # empty, or longer than RFC 2046 allows
        value = rng.choice((b'""', b"", b'"' + b"b" * 5000 + b'"', b'" "', b'"--"'))
        return _replace_params(raw, b"boundary", lambda: value)
    if action == 4:  # a delimiter line in the middle of a part
        pos = rng.randrange(len(raw) + 1)
        return raw[:pos] + b"\r\n--fz\r\n" + raw[pos:]
    if action == 5:  # every delimiter line without its leading dashes
        return raw.replace(b"\n--", b"\n")
    return _replace_params(raw, b"boundary", lambda: b'"\\";=\x00"')


def charset_swap(raw: bytes, rng: random.Random) -> bytes:
    """Declared charsets (parameters and RFC 2047 words) replaced by wrong or unknown ones."""
    def pick() -> bytes:
        return rng.choice(CHARSETS).encode("utf-8")
    if b"charset=" not in raw.lower():
        head, sep, body = _split(raw)
        raw = (head + b"\r\nContent-Type: text/plain; charset=" + pick()
               + (sep or b"\r\n\r\n") + body)
    raw = _replace_params(raw, b"charset", pick)
    if b"=?" in raw:
        raw = raw.replace(b"=?utf-8?", b"=?" + pick() + b"?").replace(
            b"=?UTF-8?", b"=?" + pick() + b"?")
    return raw


def header_bloat(raw: bytes, rng: random.Random) -> bytes:
    """Huge headers: a 1 MB subject, thousands of Received or References, endless folding."""
    eol = _eol(raw)
    action = rng.randrange(7)
    if action == 0:
        extra = b"Subject: " + b"x" * 1_000_000
    elif action == 1:
        extra = eol.join(b"Received: from mx%d.example by mx.example; Tue, 15 Oct 2019" % n
                         for n in range(20_000))
    elif action == 2:
        extra = b"References:" + b"".join(b" <id%d@x.example>" % n for n in range(20_000))
    elif action == 3:
        extra = b"X-Folded: a" + (eol + b" a") * 50_000
    elif action == 4:
        extra = b"To: " + b", ".join(b"p%d@kommune.example" % n for n in range(20_000))
    elif action == 5:
        extra = b"Subject: " + b"=?utf-8?B?w6bDuMOl?= " * 20_000
    else:
        extra = b"Message-ID: <" + b"m" * 200_000 + b"@x.example>"
    return extra + eol + raw


def deep_multipart(raw: bytes, rng: random.Random) -> bytes:
    """The body wrapped in hundreds of nested multiparts."""
    depth = rng.choice((100, 500, 500, 1000, 3000))
    inner = _body_part(raw)
    opens = b"".join(b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (n, n)
                     for n in range(depth))
    closes = b"".join(b"\r\n--d%d--\r\n" % n for n in reversed(range(depth)))
    return _top_headers(raw) + opens + inner + closes


def deep_message(raw: bytes, rng: random.Random) -> bytes:
    """The message attached to itself hundreds of times (message/rfc822 in message/rfc822)."""
    depth = rng.choice((100, 500, 1000, 3000))
    wrapper = b"Content-Type: message/rfc822\r\n\r\nFrom: x@y.example\r\n"
    return _top_headers(raw) + wrapper * depth + _body_part(raw)


def deep_html(raw: bytes, rng: random.Random) -> bytes:
    """An HTML body nested hundreds or tens of thousands of elements deep."""
    depth = rng.choice((500, 500, 5000, 50_000))
    tag = rng.choice((b"div", b"blockquote", b"b", b"span", b"li", b"td", b"p"))
    closed = rng.random() < 0.5
    html = b"<html><body>" + b"<%s>" % tag * depth + b"1: helse<br>2: 4"
    if closed:
        html += b"</%s>" % tag * depth
    html += b"</x>" * rng.choice((0, 100, 5000)) + b"</body></html>"
    return _top_headers(raw) + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html


def base64_garbage(raw: bytes, rng: random.Random) -> bytes:
    """A transfer encoding that the body does not follow (base64, quoted-printable, uuencode)."""
    encoding = rng.choice((b"base64", b"base64", b"quoted-printable", b"x-uuencode", b"bogus"))
    head, sep, body = _split(raw)
    head = b"\r\n".join(line for line in head.splitlines()
                        if not line.lower().startswith(b"content-transfer-encoding"))
    action = rng.randrange(4)
    if action == 0:
        body = rng.randbytes(rng.randrange(1, 20_000))
    elif action == 1:
        body = base64.b64encode(body)[:-3] + b"!!=="
    elif action == 2:
        body = b"=ZZ=\r\n=" * 2000 + body
    else:
        body = b"=" * 5000
    return head + b"\r\nContent-Transfer-Encoding: " + encoding + (sep or b"\r\n\r\n") + body


def nul_bytes(raw: bytes, rng: random.Random) -> bytes:
    """NUL bytes in headers and body, or in place of the blank line after the headers."""
    if rng.random() < 0.2:
        return raw.replace(b"\r\n\r\n", b"\x00\x00", 1)
    out = bytearray(raw)
    for _ in range(rng.randrange(1, 50)):
        out.insert(rng.randrange(len(out) + 1), 0)
    return bytes(out)


def long_line(raw: bytes, rng: random.Random) -> bytes:
    """A line of a megabyte, in the body or in a header."""
    line = rng.choice((b"a" * 1_000_000, b"ja " * 350_000, b">" * 1_000_000, b"-" * 1_000_000))
    head, sep, body = _split(raw)
    if rng.random() < 0.3:
        return b"X-Long: " + line + b"\r\n" + raw
    return head + (sep or b"\r\n\r\n") + line + body


def broken_dsn(raw: bytes, rng: random.Random) -> bytes:
    """A multipart/report whose message/delivery-status part is malformed."""
    del raw
    status_part = rng.choice((
        b"",
        b"\r\n\r\n\r\n",
        b"Action:\r\nStatus:\r\nFinal-Recipient:\r\n\r\nAction:   \r\n",
        b"Final-Recipient: rfc822;\r\nAction: failed\r\nStatus: 5.\r\n",
        b"Final-Recipient: ;;;@@@\r\nAction: \x00\r\nStatus: 5.1.1.1.1\r\n",
        rng.randbytes(2000),
        b"Reporting-MTA: dns; x\r\n\r\n" + b"Final-Recipient: rfc822; a@b.example\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n" * 5000,
        b"Final-Recipient: rfc822; " + b"a" * 100_000 + b"@x\r\nAction: failed\r\n",
        b"Diagnostic-Code: smtp; " + b"550 " * 50_000 + b"\r\nAction: failed\r\n",
    ))
    kind = rng.choice((b"message/delivery-status", b"message/global-delivery-status"))
    encoding = rng.choice((b"", b"Content-Transfer-Encoding: base64\r\n",
                           b"Content-Transfer-Encoding: quoted-printable\r\n"))
    original = rng.choice((
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: message/rfc822\r\n\r\n\x00\x00\x00",
        b"Content-Type: text/rfc822-headers\r\n\r\n: : :\r\nMessage-ID: <\x00>\r\n",
        b"Content-Type: message/rfc822-headers\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n",
        b"",
    ))
    parts = [b"Content-Type: text/plain\r\n\r\nDelivery failed.\r\n",
             b"Content-Type: " + kind + b"\r\n" + encoding + b"\r\n" + status_part]
    if original:
        parts.append(original)
    boundary = b"rep"
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    if rng.random() < 0.7:
        body += b"--" + boundary + b"--\r\n"
    report_type = rng.choice((b"; report-type=delivery-status", b"", b"; report-type=\x00"))
    return (b"From: MAILER-DAEMON@mx.example\r\nTo: svar@svarbot.localhost\r\n"
            b"Subject: Undeliverable: Innovasjonsbarometeret\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/report" + report_type + b'; boundary="' + boundary
            + b'"\r\n\r\n' + body)


#: HTML that is slow or deep to parse: unterminated constructs (each rescanned to the end by
#: a naive parser), floods of tags, entities, attributes and unmatched end tags.
_HTML_BOMBS: tuple[Callable[[int], bytes], ...] = (
    lambda n: b"<!--" * n,
    lambda n: b"<a" * n,
    lambda n: b"<![CDATA[" * n,
    lambda n: b"<![if x>" * n,
    lambda n: b"<?" * n,
    lambda n: b"</" * n,
    lambda n: b"<!" * n,
    lambda n: b"<" * n,
    lambda n: b"<script>" * n,
    lambda n: b"<style>" + b"<" * n,
    lambda n: b"<table><tr><td>" * n,
    lambda n: b"<b><i><u>" * n,
    lambda n: b"</div>" * n,
    lambda n: b"<div " + b"a=b " * n + b">",
    lambda n: b"<a title='" * n,
    lambda n: b'<a title="<' * n,
    lambda n: b"&#99999999999;&amp;&" * n,
    lambda n: b"<br>" * n,
    lambda n: b"<li>" * n,
    lambda n: b"<div class=gmail_quote>" * n,
    lambda n: b"<?xml version='1.0'?><x>" * n,
    lambda n: b"<div style='border-top:solid #E1E1E1 1.0pt'>" * n,
)


def html_bomb(raw: bytes, rng: random.Random) -> bytes:
    """An HTML body that is slow or deep to parse."""
    bomb = rng.choice(_HTML_BOMBS)(rng.choice((1_000, 20_000, 100_000)))
    html = b"<html><body><div>1: helse</div>" + bomb
    return _top_headers(raw) + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html


def truncate(raw: bytes, rng: random.Random) -> bytes:
    """The message cut off at a random point."""
    return raw[: rng.randrange(len(raw) + 1)]


def byte_flip(raw: bytes, rng: random.Random) -> bytes:
    """Random bytes changed."""
    if not raw:
        return rng.randbytes(10)
    out = bytearray(raw)
    for _ in range(rng.randrange(1, 64)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def splice(raw: bytes, rng: random.Random) -> bytes:
    """A slice of another corpus message inserted at a random point."""
    other = corpus()[rng.choice(sorted(corpus()))]
    start = rng.randrange(len(other) + 1)
    piece = other[start:start + rng.randrange(1, 4000)]
    pos = rng.randrange(len(raw) + 1)
    return raw[:pos] + piece + raw[pos:]


def line_endings(raw: bytes, rng: random.Random) -> bytes:
    """Bare CR, bare LF, or a mix of line ends."""
    action = rng.randrange(3)
    unified = raw.replace(b"\r\n", b"\n")
    if action == 0:
        return unified.replace(b"\n", b"\r")
    if action == 1:
        return unified
    return b"".join(line + rng.choice((b"\r\n", b"\n", b"\r", b"\n\r"))
                    for line in unified.split(b"\n"))


def no_separator(raw: bytes, rng: random.Random) -> bytes:
    """No blank line between headers and body, or the body glued to a header."""
    head, _, body = _split(raw)
    return head + rng.choice((b"\r\n", b"", b" ")) + body


def encoded_words(raw: bytes, rng: random.Random) -> bytes:
    """RFC 2047 words that cannot be decoded, in the headers the classifier reads."""
    word = rng.choice((b"=?utf-8?B?!!!?=", b"=?x-unknown?Q?=FF=FE?=", b"=?utf-8?X?abc?=",
                       b"=?utf-8?Q?=?=", b"=??B??=", b"=?utf-8*no?Q?a?=", b"=?rot13?Q?abc?=",
                       b"=?utf-8?B?" + base64.b64encode(b"\xff\xfe\x00") + b"?=",
                       b"=?utf-16?B?" + base64.b64encode("Fraværende".encode("utf-16"))
                       + b"?="))
    names = (b"Subject", b"From", b"To", b"Auto-Submitted", b"Return-Path", b"References")
    extra = b"".join(rng.choice(names) + b": " + word * rng.randrange(1, 50) + b"\r\n"
                     for _ in range(rng.randrange(1, 5)))
    return extra + raw


def mime_params(raw: bytes, rng: random.Random) -> bytes:
    """Content-Type parameters that break naive readers: RFC 2231 pieces, unclosed quotes."""
    params = rng.choice((
        b"text/plain; charset*=''; format*=x''flowed",
        b"text/plain; charset*0*=utf-8''a; charset*1=b; delsp*=yes",
        b"text/plain; charset*=us-ascii'en'%FF%FE; format=flowed; delsp=yes",
        b'text/plain; charset="utf-8',
        b"text/plain; ;;;; =; charset",
        b"multipart/related; start=\"<missing>\"; type=text/html; boundary=b",
        b"text/plain; format=flowed\r\n\tjunk; delsp=yes\r\n\tmore",
        b"/; charset=utf-8",
        b"text/; charset=utf-8",
        b"multipart/; boundary=b",
        b"\x00/\x00",
    ))
    head, sep, body = _split(raw)
    lines = [line for line in head.splitlines() if not line.lower().startswith(b"content-type")]
    return b"\r\n".join([*lines, b"Content-Type: " + params]) + (sep or b"\r\n\r\n") + body


def flowed(raw: bytes, rng: random.Random) -> bytes:
    """format=flowed declared over a body of soft breaks and quote depths that change."""
    body = rng.choice((b"a \r\n" * 100_000, b"> a \r\n>> b \r\n" * 20_000,
                       b" \r\n" * 100_000, b"-- \r\n" * 10_000))
    return _top_headers(raw) + b"Content-Type: text/plain; format=flowed; delsp=yes\r\n\r\n" \
        + body + _split(raw)[2]


def slow_codec(raw: bytes, rng: random.Random) -> bytes:
    """A long body declared in a codec that Python decodes slowly or strangely (punycode and
    idna in quadratic time, the escape codecs into lone surrogates)."""
    charset, body = rng.choice((
        (b"punycode", b"a-" + b"ba" * 300_000),
        (b"idna", b"xn--" + b"ba" * 300_000),
        (b"unicode_escape", b"1: \\ud800\\udfff ja\r\n" * 1000),
        (b"raw_unicode_escape", b"\\ud83d" * 10_000),
        (b"utf-7", b"+2D3/-" * 50_000),
        (b"utf-16", b"\xff\xfe" + b"\x00\xd8" * 100_000),
    ))
    return _top_headers(raw) + b"Content-Type: text/plain; charset=" + charset + \
        b"\r\n\r\n" + body


def many_parts(raw: bytes, rng: random.Random) -> bytes:
    """A multipart with tens of thousands of small parts."""
    count = rng.choice((1_000, 20_000))
    part = b"--m\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return _top_headers(raw) + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n' + \
        b"--m\r\n" + _body_part(raw) + b"\r\n" + part * count + b"--m--\r\n"


#: Every mutation by name, with its weight: the costly ones (megabyte inputs) come less often,
#: so that a run of many messages still reaches the rare paths of the cheap ones.
MUTATIONS: dict[str, tuple[Callable[[bytes, random.Random], bytes], int]] = {
    "boundary_break": (boundary_break, 10),
    "charset_swap": (charset_swap, 10),
    "header_bloat": (header_bloat, 2),
    "deep_multipart": (deep_multipart, 2),
    "deep_message": (deep_message, 2),
    "deep_html": (deep_html, 2),
    "base64_garbage": (base64_garbage, 6),
    "nul_bytes": (nul_bytes, 8),
    "long_line": (long_line, 2),
    "broken_dsn": (broken_dsn, 6),
    "html_bomb": (html_bomb, 3),
    "truncate": (truncate, 8),
    "byte_flip": (byte_flip, 10),
    "splice": (splice, 6),
    "line_endings": (line_endings, 5),
    "no_separator": (no_separator, 4),
    "encoded_words": (encoded_words, 6),
    "mime_params": (mime_params, 6),
    "flowed": (flowed, 2),
    "many_parts": (many_parts, 1),
    "slow_codec": (slow_codec, 2),
}
_NAMES = tuple(MUTATIONS)
_WEIGHTS = tuple(weight for _, weight in MUTATIONS.values())


def recipe(seed: int) -> Recipe:
    """The recipe for `seed`: a base (most often a corpus message) and up to three mutations."""
    rng = random.Random(seed)
    scratch = rng.random() < 0.15
    base = f"scratch:{rng.choice(sorted(SCRATCH))}" if scratch else rng.choice(bases())
    count = rng.choices((0, 1, 2, 3), weights=(1, 6, 3, 1))[0]
    return Recipe(seed, base, tuple(rng.choices(_NAMES, weights=_WEIGHTS, k=count)))


def build(r: Recipe) -> bytes:
    """The message `r` describes; the same recipe always gives the same bytes."""
    rng = random.Random(f"{r.seed}:{r.base}:{'+'.join(r.mutations)}")
    raw = base_bytes(r.base, rng)
    for name in r.mutations:
        raw = MUTATIONS[name][0](raw, rng)
    return raw


def message(seed: int) -> tuple[Recipe, bytes]:
    """The recipe for `seed` and its message."""
    r = recipe(seed)
    return r, build(r)


def with_recipient(raw: bytes, address: str) -> bytes:
    """`raw` also delivered to `address` (a To header in front), as the dispatcher tests need
    messages that reach a real invitation."""
    return f"To: {address}\r\n".encode() + raw


# --- Hypothesis ----------------------------------------------------------------------------------


def recipes() -> st.SearchStrategy[Recipe]:
    """Recipes drawn by Hypothesis: any base, any mutations in any order."""
    return st.builds(
        Recipe,
        seed=st.integers(min_value=0, max_value=2**32 - 1),
        base=st.sampled_from(bases()),
        mutations=st.lists(st.sampled_from(_NAMES), max_size=3).map(tuple),
    )


_HEADER_NAMES = ("From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References",
                 "Auto-Submitted", "Precedence", "Return-Path", "X-Failed-Recipients",
                 "Delivered-To", "List-Id", "X-Loop", "Content-Type", "MIME-Version",
                 "X-Autoreply", "Feedback-Type")
_LEAF_TYPES = ("text/plain", "text/html", "text/enriched", "application/octet-stream",
               "message/delivery-status", "message/global-delivery-status",
               "text/rfc822-headers", "message/feedback-report", "image/png", "text/x-weird")
_MULTI_TYPES = ("mixed", "alternative", "related", "report", "digest", "signed", "x-unknown")
_ENCODINGS = ("", "7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus")

_odd_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=200
)
_header_value = st.one_of(
    _odd_text,
    st.sampled_from(("", "<>", "auto-replied", "bulk", f"<{REPLY_TO}>", REPLY_TO,
                     "MAILER-DAEMON@x", f"<r-{TOKEN}@svarbot.localhost>",
                     "=?utf-8?B?w6bDuMOl?=", "=?x?Q?a?=", "Automatisk svar: x")),
)


def _encode(text: str, charset: str) -> bytes:
    try:
        return text.encode(charset)
    except (LookupError, UnicodeError, ValueError, TypeError):
        return text.encode("utf-8", "surrogatepass")


@st.composite
def _leaf(draw: st.DrawFn) -> bytes:
    content_type = draw(st.sampled_from(_LEAF_TYPES))
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(_ENCODINGS))
    body = draw(st.one_of(st.binary(max_size=500), _odd_text.map(lambda t: _encode(t, "utf-8")),
                          st.sampled_from((_ANSWER.encode(), _HTML.encode(), b"Action: failed\r\n"
                                           b"Status: 5.1.1\r\nFinal-Recipient: rfc822; a@b\r\n"))))
    if encoding == "base64" and draw(st.booleans()):
        body = base64.encodebytes(body)
    head = f"Content-Type: {content_type}; charset={charset}\r\n"
    if encoding:
        head += f"Content-Transfer-Encoding: {encoding}\r\n"
    if draw(st.booleans()):
        head += f"Content-Disposition: {draw(st.sampled_from(('attachment', 'inline', '')))}\r\n"
    return _encode(head, "utf-8") + b"\r\n" + body


def _multipart(children: st.SearchStrategy[list[bytes]]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build_one(draw: st.DrawFn) -> bytes:
        subtype = draw(st.sampled_from(_MULTI_TYPES))
        parts = draw(children)
        declared = draw(st.sampled_from(("b1", "b1", "b1", "", "other", '""')))
        closed = draw(st.booleans())
        if draw(st.booleans()) and not parts:
            return f"Content-Type: message/rfc822\r\n\r\nSubject: {subtype}\r\n\r\n".encode()
        head = f"Content-Type: multipart/{subtype}"
        if declared:
            head += f"; boundary={declared}"
        body = b"".join(b"--b1\r\n" + part + b"\r\n" for part in parts)
        if closed:
            body += b"--b1--\r\n"
        return head.encode() + b"\r\n\r\n" + body
    return build_one()


def mime_messages() -> st.SearchStrategy[bytes]:
    """Messages whose structure Hypothesis draws: headers of any text, parts nested in any way,
    charsets and transfer encodings that may not fit the bytes."""
    body = st.recursive(_leaf(), lambda inner: _multipart(st.lists(inner, max_size=4)),
                        max_leaves=8)
    headers = st.lists(st.tuples(st.one_of(st.sampled_from(_HEADER_NAMES), _odd_text),
                                 _header_value), max_size=8)
    return st.builds(
        lambda hs, b, eol: eol.join(_encode(f"{n}: {v}", "utf-8") for n, v in hs) + eol + b,
        headers, body, st.sampled_from((b"\r\n", b"\n", b"\r")),
    )


def raw_messages() -> st.SearchStrategy[bytes]:
    """Any message: a mutated corpus or scratch message, a drawn MIME structure, or bytes."""
    return st.one_of(recipes().map(build), mime_messages(), st.binary(max_size=2000))
