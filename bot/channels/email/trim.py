"""Extract the respondent's new text from a reply body.

A survey answer is whatever the respondent typed; everything their mail client added (the quoted
question, the attribution line, the Outlook header block, "Sendt fra min iPhone") has to go, and
nothing they typed may be lost. The two failure modes are not equally bad: a leftover "Hilsen
Kari" is harmless, a truncated answer is data loss. So every rule here cuts only at a line that
a mail client produced, never at closing phrases or list dashes, and anything that looks like an
inline or bottom-posted answer keeps all unquoted text.

An inline reply (answers typed under each quoted question) is read by what it answers, not by
position: a block typed below a quoted question ("> 21. …", or a grid row "> a) …" under it)
is given that question's number ("21: internt", "4a: 3"), so a question left blank stays blank
and no later answer moves up into it. Only what is really uncertain is flagged for review: a
forward, a truncated body, text below an attribution that quotes nothing (it may be the
original, not an answer), and inline text that follows no quoted question.

The design follows Discourse's email_reply_trimmer: classify each line on its own with small,
line-anchored regexes (so no pattern can backtrack across the whole body), then decide cuts from
the sequence of classes. Input is capped, so the work is bounded even for hostile mail.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.channels.email.html_text import html_reply_text

__all__ = ["MARKERS", "MAX_CHARS", "MAX_LINES", "Trimmed", "extract_reply", "extract_reply_html"]

MAX_CHARS = 64 * 1024
MAX_LINES = 2000
# Attribution lines are short; anything longer is prose, and the cap bounds regex work per line.
_MAX_HEADER_LEN = 400
# How many following lines a wrapped attribution may span (Gmail wraps at ~78 columns).
_MAX_HEADER_WRAP = 4

MARKERS: tuple[str, ...] = (
    "--- Skriv svaret ditt over denne linjen ---",
    "--- Skriv svaret ditt over denne linja ---",
    "--- Write your answer above this line ---",
)


@dataclass(frozen=True, slots=True)
class Trimmed:
    """The outcome of trimming one reply body.

    `elided` and `rule` are stored next to the answer so extraction can be audited and re-run
    after a rule is fixed; `needs_review` routes uncertain cases to a human instead of guessing.
    """

    text: str
    elided: str
    rule: str
    needs_review: bool


# --- line classes -----------------------------------------------------------------------------
EMPTY = "E"
TEXT = "T"
QUOTED = "Q"
MARKER = "M"
QUOTE_HEADER = "H"
FORWARD = "F"
FIELD = "h"  # a "Fra: …" style header field; only a run of them is a header block
BLOCK = "B"  # a header field that belongs to a header block
UNDERSCORES = "U"  # Outlook's "____" separator line
DECORATION = "D"  # a line of only -, =, *, … : dropped only when trailing
SIG_DASH = "G"  # RFC 3676 "-- "
MOBILE_SIG = "S"
DEVICE_SIG = "P"  # a mobile signature standing alone after the text: the client's, cut there

_BOUNDARY_RULE = {
    MARKER: "marker",
    QUOTE_HEADER: "quote_header",
    FORWARD: "forward",
    BLOCK: "header_block",
    UNDERSCORES: "delimiter",
    DEVICE_SIG: "signature",
}

# --- normalisation ----------------------------------------------------------------------------
_SPACES = "\u00a0\u2007\u202f"
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\x00"
_TRANSLATION = {ord(c): " " for c in _SPACES} | {ord(c): None for c in _INVISIBLE}


def _normalise(body: str) -> tuple[list[str], bool]:
    """Return the capped, cleaned lines and whether the input was cut by the caps."""
    truncated = len(body) > MAX_CHARS
    text = body[:MAX_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text.translate(_TRANSLATION))
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        lines = lines[:MAX_LINES]
        truncated = True
    return [line.rstrip() for line in lines], truncated


def _unquote(line: str) -> str:
    """Line content without quote prefixes (`>`, `> >`) and surrounding blanks."""
    return line.lstrip(" \t>").strip()


def _core(line: str) -> str:
    """Marker-comparison form: no quote prefix, dashes or emphasis; folded case and spacing."""
    stripped = line.strip(" \t>-—–_*")
    return " ".join(stripped.split()).casefold()


_MARKER_CORES = frozenset(_core(m) for m in MARKERS)

# --- attribution ("quote header") lines -------------------------------------------------------
_WROTE_WORDS = (
    r"wrote|skrev|skreiv|skrev følgende|schrieb|schreef|het volgende geschreven|a écrit|"
    r"ha scritto|napisał\(a\)|napisała|napisał|escreveu|escribió|написал|написала|пише|"
    r"kirjoitti|skrev följande|写道"
)
_WROTE_END = re.compile(rf"(?:{_WROTE_WORDS})\s?[:：]?$", re.IGNORECASE)
_WROTE_MID = (" skrev ", " skreiv ", " schrieb ", " schreef ", " пользователь ")
# The "wrote" word and an address sit at the end of an attribution: only the tail is searched.
_WROTE_TAIL = 40
_EMAIL_TAIL = 160
_STARTS_ON = re.compile(r"(?:on|den|på|le|il|op|am|em|el|dnia|at|w dniu)\s", re.IGNORECASE)
_STARTS_DATE = re.compile(
    r"(?:\d|(?:man|tir|ons|tor|fre|lør|søn|mon|tue|wed|thu|fri|sat|sun)[a-zæøå]*\.?,?\s)",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_TIME = re.compile(r"(?<!\d)\d{1,2}[:.]\d\d(?!\d)")
_ISO_DATE_START = re.compile(r"\d{4}[-/]\d{1,2}[-/]\d{1,2}\s")
_EMAIL_END = re.compile(r"<\s?[^<>@\s]+@[^<>\s]+>\s?:?$")
_GMT_LINE = re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d GMT[+-]\d\d:\d\d [\w ]+$")
_POSTED_BY = re.compile(r"posted by \S[^\n]* on \d\d/\d\d/\d{4}$", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"-{2,}\s?(?:original message|opprinnelig melding|oprindelig besked|oprindelig meddelelse|"
    r"ursprüngliche nachricht|mensaje original|message d'origine|messaggio originale|"
    r"ursprungligt meddelande|alkuperäinen viesti|reply message)\s?-{2,}",
    re.IGNORECASE,
)
_FORWARD_LINE = re.compile(
    r"(?:-{2,}\s?(?:forwarded message|videresendt melding|videresendt e-post|"
    r"videresendt meddelelse|vidarebefordrat meddelande|message transféré|"
    r"weitergeleitete nachricht|mensaje reenviado|messaggio inoltrato)\s?-{2,}"
    r"|(?:begin forwarded message|videresendt melding|start på videresendt melding|"
    r"vidarebefordrat brev)\s?:)",
    re.IGNORECASE,
)


def _header_kind(content: str) -> str | None:
    """Classify unquoted, stripped line content as an attribution or forward marker.

    Each check is a set of small anchored tests rather than one pattern with several wildcards:
    cheap on long lines, and each condition states why a line counts as client-generated.
    """
    s = content.strip(" \t*").lstrip("-").rstrip("-").strip(" \t*")
    if not s or len(s) > _MAX_HEADER_LEN:
        return None
    if _FORWARD_LINE.match(content.strip(" \t*")):
        return FORWARD
    if _ORIGINAL.match(content.strip(" \t*")):
        return QUOTE_HEADER
    has_digit = _DIGIT.search(s) is not None
    has_email = "@" in s
    starts_dateish = _STARTS_ON.match(s) is not None or _STARTS_DATE.match(s) is not None
    tail = s[-_WROTE_TAIL:]
    email_end = "@" in s and _EMAIL_END.search(s[-_EMAIL_TAIL:]) is not None
    if _WROTE_END.search(tail):
        if has_digit and starts_dateish:
            return QUOTE_HEADER  # "On Tue, … wrote:", "Den 15. jun. 2016 kl. 20.42 skrev X:"
        if has_email or " via " in s or "пользователь" in s:
            return QUOTE_HEADER  # "Some One <a@b> wrote:", "x via Discourse wrote:"
        return None
    ends_colon = s.endswith((":", "："))
    folded = s.casefold()
    wrote_mid = any(word in folded for word in _WROTE_MID)
    dated = has_email or (_YEAR.search(s) is not None and _TIME.search(s) is not None)
    if wrote_mid and dated and (ends_colon or s.endswith(">")):
        # Gmail nb "tir. 14. jan. 2025 kl. 10:03 skrev Name <a@b>:", Outlook Mac
        # "Name <a@b> skrev følgende den 28/10/2021, 12:46:", old Gmail without the colon.
        return QUOTE_HEADER
    if s.endswith(">:") and email_end and _YEAR.search(s) and _TIME.search(s):
        return QUOTE_HEADER  # '30.09.2017, 18.30, "John Doe" <a@b>:' (no "wrote" word)
    if _ISO_DATE_START.match(s) and email_end:
        return QUOTE_HEADER  # "2013/7/20 sam via Discourse Meta <info@discourse.org>"
    if _GMT_LINE.match(s) or _POSTED_BY.match(s):
        return QUOTE_HEADER
    return None


def _may_start_wrapped_header(content: str) -> bool:
    """Cheap pre-check so only plausible first halves of an attribution get joined.

    Numbered answers ("1: 4", "2: 10:00") start with a digit too, so a date-like start needs a
    year or a time, and "On …"/"Den …" needs a digit.
    """
    if not content or len(content) > 300:
        return False
    has_date = _YEAR.search(content) is not None or _TIME.search(content) is not None
    return (
        (_STARTS_ON.match(content) is not None and _DIGIT.search(content) is not None)
        or (_STARTS_DATE.match(content) is not None and has_date)
        or "<" in content
        or (_YEAR.search(content) is not None and _TIME.search(content) is not None)
    )


def _starts_own_header(content: str) -> bool:
    """True when a line begins an attribution itself, so it cannot continue an earlier one."""
    return (
        _STARTS_ON.match(content) is not None or _STARTS_DATE.match(content) is not None
    ) and (_YEAR.search(content) is not None or _TIME.search(content) is not None)


# --- other line types -------------------------------------------------------------------------
_FIELD_LINE = re.compile(
    r"[ \t>*]*(?P<name>fra|from|sendt|sent|dato|date|til|to|kopi|cc|bcc|blindkopi|emne|"
    r"subject|reply-to|svar til|von|an|gesendet|betreff|de|para|à|objet|envoyé|asunto|assunto|"
    r"enviado|enviada em|fecha|da|data|risposta|oggetto|inviato|från|skickat|till|ämne|datum|"
    r"van|aan|onderwerp|verzonden|sujet|copie à|message du)[ \t*]*:(?P<rest>[^\n]*)$",
    re.IGNORECASE,
)
_FROM_FIELDS = frozenset({"fra", "from", "von", "de", "da", "från", "van"})
_DATE_FIELDS = frozenset(
    {"sendt", "sent", "dato", "date", "gesendet", "enviado", "enviada em", "fecha", "data",
     "inviato", "skickat", "datum", "verzonden", "envoyé", "message du"}
)


def _field_name(line: str) -> str | None:
    """The lower-cased field name when the line is a mail header field quoted in a body."""
    m = _FIELD_LINE.match(line)
    if m is None:
        return None
    name = m.group("name").lower()
    rest = m.group("rest")
    if name in _DATE_FIELDS and _DIGIT.search(rest) is None:
        return None
    return name


_UNDERSCORES = re.compile(r"[ \t]*_{2,}[ \t]*$")
_DECORATION = re.compile(r"[ \t]*[-_,=+~#*ᐧ—–•.]+[ \t]*$")
_MOBILE_SIG = re.compile(
    r"[(<\[]*(?:"
    r"(?:sent|sendt|send|sendt ut) (?:from|fra|frå|via|with|med|by|using) \S"
    r"|(?:get|hent|last ned|få) \[?outlook for "
    r"|(?:gesendet von|envoyé à partir de|enviado desde) \[?outlook "
    r"|\w+ from mobile$"
    r"|from my \S"
    r"|envoyé depuis mon "
    r"|von meinem \S[^\n]* gesendet"
    r"|diese nachricht wurde von \S[^\n]* gesendet"
    r"|enviado desde mi "
    r"|skickat från min "
    r"|verzonden (?:met|vanaf) "
    r"|lähetetty "
    r"|從我的 iphone 傳送"
    r")",
    re.IGNORECASE,
)
_MAX_SIG_LEN = 120
# The subset of signatures that only a device or app writes. When such a line stands as its own
# paragraph below the text, whatever follows was added by the client (a quote without header).
_DEVICE_SIG = re.compile(
    r"[(<\[]*(?:sent from my |sendt fra min |sendt frå min |sendt fra mi "
    r"|(?:sent from|sendt fra|gesendet von|envoyé à partir de|enviado desde) \[?outlook "
    r"|(?:get|hent) \[?outlook for )",
    re.IGNORECASE,
)
_MAX_DEVICE_SIG_LEN = 80


def _classify(lines: Sequence[str]) -> list[str]:
    classes: list[str] = []
    for line in lines:
        classes.append(_classify_line(line))
    _join_wrapped_headers(lines, classes)
    _mark_header_blocks(lines, classes)
    _mark_device_signatures(lines, classes)
    # A header field outside a block is prose ("Til: alle ansatte").
    return [TEXT if c == FIELD else c for c in classes]


def _classify_line(line: str) -> str:
    if not line.strip():
        return EMPTY
    if _core(line) in _MARKER_CORES:
        return MARKER
    if line.lstrip(" \t").startswith(">"):
        return QUOTED
    if line.strip() == "--":
        return SIG_DASH
    if _UNDERSCORES.match(line):
        return UNDERSCORES
    kind = _header_kind(line.strip())
    if kind is not None:
        return kind
    if _DECORATION.match(line):
        return DECORATION
    stripped = line.strip()
    if len(stripped) <= _MAX_SIG_LEN and _MOBILE_SIG.match(stripped):
        return MOBILE_SIG
    if _field_name(line) is not None:
        return FIELD
    return TEXT


def _join_wrapped_headers(lines: Sequence[str], classes: list[str]) -> None:
    """Recognise attributions that the client wrapped over several lines.

    Gmail breaks "On …, Name <a@b>" / "wrote:" and "… <a@b" / ">:" over two lines; other
    clients push the address onto its own line. The continuation may look quoted (">:") or
    empty, so it is re-read without its prefix.
    """
    n = len(lines)
    for i in range(n):
        if classes[i] not in (TEXT, FIELD):
            continue
        first = lines[i].strip()
        if not _may_start_wrapped_header(first):
            continue
        pieces = [first]
        for j in range(i + 1, min(n, i + 1 + _MAX_HEADER_WRAP)):
            if classes[j] not in (TEXT, EMPTY, QUOTED, FIELD, QUOTE_HEADER):
                break
            piece = _unquote(lines[j])
            if len(piece) > 200:
                break
            if not piece:
                continue
            if _starts_own_header(piece):
                break
            pieces.append(piece)
            if _header_kind(" ".join(pieces)) is not None:
                for k in range(i, j + 1):
                    classes[k] = QUOTE_HEADER
                break


def _mark_header_blocks(lines: Sequence[str], classes: list[str]) -> None:
    """Turn runs of header fields ("Fra:/Sendt:/Til:/Emne:") into a header block.

    One field line alone is prose ("Til: alle ansatte"); a run of three, or two that name a
    sender plus a date or follow a separator, is a quoted message header. A single wrapped line
    inside the run (a long From or Subject) belongs to it.
    """
    n = len(lines)
    i = 0
    while i < n:
        if classes[i] != FIELD:
            i += 1
            continue
        run = [i]
        j = i + 1
        while j < n:
            if classes[j] == FIELD:
                run.append(j)
                j += 1
            elif classes[j] == TEXT and j + 1 < n and classes[j + 1] == FIELD:
                j += 1
            else:
                break
        names = {_field_name(lines[k]) for k in run}
        previous = _previous_nonempty(classes, i)
        after_separator = previous in (UNDERSCORES, DECORATION, QUOTE_HEADER, FORWARD)
        is_block = len(run) >= 3 or (
            len(run) == 2
            and bool(names & _FROM_FIELDS)
            and (bool(names & _DATE_FIELDS) or after_separator)
        )
        if is_block:
            for k in range(i, j):
                classes[k] = BLOCK
        i = j


def _mark_device_signatures(lines: Sequence[str], classes: list[str]) -> None:
    """Promote a device signature that forms its own paragraph below some text to a cut point."""
    n = len(lines)
    seen_text = False
    for i in range(n):
        c = classes[i]
        if c == TEXT:
            seen_text = True
        if c != MOBILE_SIG or not seen_text:
            continue
        stripped = lines[i].strip()
        alone = (i == 0 or classes[i - 1] == EMPTY) and (i + 1 == n or classes[i + 1] == EMPTY)
        if alone and len(stripped) <= _MAX_DEVICE_SIG_LEN and _DEVICE_SIG.match(stripped):
            classes[i] = DEVICE_SIG


def _previous_nonempty(classes: Sequence[str], index: int) -> str | None:
    for k in range(index - 1, -1, -1):
        if classes[k] != EMPTY:
            return classes[k]
    return None


# --- decisions --------------------------------------------------------------------------------
_TRAILING_JUNK = frozenset(
    {EMPTY, MOBILE_SIG, DEVICE_SIG, DECORATION, QUOTED, UNDERSCORES, SIG_DASH}
)
_STOPS_INLINE_SCAN = frozenset(
    {SIG_DASH, UNDERSCORES, FORWARD, BLOCK, QUOTE_HEADER, MOBILE_SIG, DEVICE_SIG}
)


def extract_reply(body: str) -> Trimmed:
    """Return the respondent's new text from a plain-text reply body.

    `format=flowed` must already be undone by the caller (it needs the MIME parameters).
    """
    lines, truncated = _normalise(body)
    classes = _classify(lines)
    n = len(lines)
    start = next((i for i, c in enumerate(classes) if c == TEXT), None)
    if start is None:
        elided = _join(lines, range(n))
        if any(_FORWARD_LINE.match(_unquote(line)) for line in lines):
            return Trimmed("", elided, "forward", True)
        quoted = any(c not in (EMPTY, TEXT) for c in classes)
        return Trimmed("", elided, "quoted" if quoted else "none", False)

    prefix = classes[:start]
    if any(c == MARKER and not lines[i].lstrip().startswith(">")
           for i, c in enumerate(prefix)):
        # Our own marker line, not quoted (Outlook puts the original below its header block
        # as it is): everything from it down is the message we sent. Nothing was typed above.
        return Trimmed("", _join(lines, range(n)), "quoted", False)
    rule: str | None = None
    review = False
    if FORWARD in prefix:
        rule, review = "forward", True
    elif any(c in _BOUNDARY_RULE or c == QUOTED for c in prefix):
        # The answer sits below the quote. Below a real `>` quote that is certain; below an
        # attribution alone the text may be an unquoted original (a forward).
        rule, review = "bottom_post", QUOTED not in prefix

    end = next((i for i in range(start, n) if classes[i] in _BOUNDARY_RULE), n)
    keep = list(range(start, end))
    if end < n:
        boundary = classes[end]
        if boundary == UNDERSCORES and _next_nonempty(classes, end) == BLOCK:
            boundary = BLOCK
        if rule is None:
            rule = _BOUNDARY_RULE[boundary]
        if boundary == FORWARD:
            review = True
        if boundary in (QUOTE_HEADER, MARKER):
            extra = _text_below_quote(classes, end)
            if extra:
                keep.extend(extra)
                rule = "inline"

    keep, sig_rule = _cut_signature(classes, keep)
    if sig_rule is not None and rule not in ("forward", "bottom_post", "inline"):
        rule = sig_rule  # the signature cut sits above the boundary: it is what ended the text
    keep, tail_rule = _drop_trailing(classes, keep)
    rule = rule or tail_rule
    if any(classes[k] == QUOTED for k in keep):
        keep = _drop_quoted(classes, keep)
        rule = rule if rule == "forward" else "inline"
    shown = list(lines)
    if rule in ("inline", "bottom_post"):
        labels, unplaced = _inline_labels(lines, classes, keep)
        for k, label in labels.items():
            shown[k] = f"{label}: {lines[k].strip()}"
        # Below the whole quote (a bottom-post) an answer follows no question by nature.
        review = review or (unplaced and rule == "inline")
    if rule is None:
        rule = "none"
    review = review or truncated
    kept = set(keep)
    text = _join(shown, keep)
    elided = _join(lines, (k for k in range(n) if k not in kept))
    return Trimmed(text, elided, rule, review)


def extract_reply_html(html: str) -> Trimmed:
    """Trim an HTML-only reply: drop the clients' quote containers, then trim the text.

    Removing containers first matters: once converted to text, Gmail's and Outlook's quoted
    originals are not `>`-prefixed and look like ordinary text.
    """
    return extract_reply(html_reply_text(html))


def _text_below_quote(classes: Sequence[str], boundary: int) -> list[int]:
    """Unquoted lines typed below a `>` quote that follows an attribution (inline replies)."""
    seen_quote = False
    found: list[int] = []
    for k in range(boundary + 1, len(classes)):
        c = classes[k]
        if c in _STOPS_INLINE_SCAN:
            break
        if c == QUOTED:
            seen_quote = True
        elif (c == TEXT and seen_quote) or (c in (EMPTY, DECORATION) and found):
            found.append(k)
    return found


#: The quote prefix of a line ("> ", "> > "), without the indentation after it.
_QUOTE_PREFIX = re.compile(r"^\s*(?:>[ ]?)+")
#: A quoted question of our page ("> 21. Hvor mange …"), at the start of the quoted line.
_QUOTED_QUESTION = re.compile(r"^(\d{1,3})[.)]\s+\S")
#: A quoted grid row under it ("> ···a) Vi har en plan …"), indented.
_QUOTED_ROW = re.compile(r"^\s{2,}([a-z])\)\s+\S")
#: A typed line that already says what it answers ("21: …", "4a) 3", "3 - ca. 40").
_NUMBERED = re.compile(r"^\s*\d{1,3}[a-z]?\s*[:.)\-]")


def _inline_labels(lines: Sequence[str], classes: Sequence[str],
                   keep: Sequence[int]) -> tuple[dict[int, str], bool]:
    """Which question each block of an inline reply answers: {first line: "21" or "4a"}.

    A block is kept text that follows quoted lines; it answers the quoted question (or grid
    row of it) whose lines are directly above it: its options, help and blank lines may come
    between, any other line of the page ends the question. Returns the labels and whether some
    block below a quote could not be placed (it then goes to the engine as typed, and an
    inline reading is flagged for review).
    """
    labels: dict[int, str] = {}
    unplaced = False
    question: str | None = None
    row: str | None = None
    kept = set(keep)
    after_quote = False
    for k, line in enumerate(lines):
        if classes[k] == QUOTED:
            content = _QUOTE_PREFIX.sub("", line)
            if (match := _QUOTED_QUESTION.match(content)) is not None:
                question, row = match.group(1), None
            elif question is not None and (match := _QUOTED_ROW.match(content)) is not None:
                row = match.group(1)
            elif content.strip() and not content[:1].isspace():
                # A line of the page that belongs to no question (a heading, the sign-off):
                # text typed below it answers nothing in particular.
                question, row = None, None
            after_quote = True
            continue
        if k not in kept or classes[k] != TEXT:
            continue
        if after_quote:
            if question is None:
                unplaced = True
            elif not _NUMBERED.match(line):
                labels[k] = question + (row or "")
        after_quote = False
    return labels, unplaced


def _drop_quoted(classes: Sequence[str], keep: list[int]) -> list[int]:
    """Remove quoted lines between answer parts, leaving one blank line where a quote was."""
    result: list[int] = []
    for k in keep:
        if classes[k] == QUOTED:
            continue
        if classes[k] == EMPTY and result and classes[result[-1]] == EMPTY:
            continue
        result.append(k)
    return result


def _cut_signature(classes: Sequence[str], keep: list[int]) -> tuple[list[int], str | None]:
    """Cut at an RFC 3676 `-- ` line, but only when there is exactly one.

    Several `--` lines mean the respondent uses them as separators, not as a signature.
    """
    dashes = [pos for pos, k in enumerate(keep) if classes[k] == SIG_DASH]
    if len(dashes) != 1:
        return keep, None
    pos = dashes[0]
    if not any(classes[k] == TEXT for k in keep[:pos]):
        return keep, None
    return keep[:pos], "signature"


def _drop_trailing(classes: Sequence[str], keep: list[int]) -> tuple[list[int], str | None]:
    """Drop trailing blank, decoration, mobile-signature and quoted lines."""
    rule: str | None = None
    while keep and classes[keep[-1]] in _TRAILING_JUNK:
        c = classes[keep.pop()]
        if c == QUOTED:
            rule = "quoted"
        elif c == MOBILE_SIG and rule is None:
            rule = "signature"
    return keep, rule


def _next_nonempty(classes: Sequence[str], index: int) -> str | None:
    for k in range(index + 1, len(classes)):
        if classes[k] != EMPTY:
            return classes[k]
    return None


def _join(lines: Sequence[str], indices: Iterable[int]) -> str:
    return "\n".join(lines[k] for k in indices).strip()
