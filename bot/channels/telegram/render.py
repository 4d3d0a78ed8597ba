"""What a respondent sees in the chat: texts split to Telegram's size, and inline buttons.

Buttons carry compact callback data (at most 64 bytes, checked), and it is untrusted input:
what a tap says is read back by `read_tap` and checked against the conversation before the
engine sees it (`TelegramChannel.still_asked`).

* `a:<item>:<reply>` answers the asked item (or grid row) `<item>` with the reply text the
  engine offered (`Choice.reply`: "3", "ja", "vet ikke");
* `t:<item>:<mask>:<k>` toggles option k of a multiple choice; the keyboard itself keeps the
  selection (`<mask>`, one bit per option), so no state lives anywhere else;
* `d:<item>:<mask>` is "Ferdig": the chosen option numbers, as "1, 3, 5".

`<item>` is a short digest of the item id, not the id: it says nothing about the questionnaire
to whoever reads the data, and it keeps the data short.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from flows.events import Choice

#: Telegram's limit for one message, in characters (UTF-16 code units, strictly).
MAX_TEXT = 4096
#: Where a long text is split: under the limit, at a paragraph if there is one.
SPLIT_AT = 4000
#: Telegram's limit for a button's callback data, in bytes.
MAX_CALLBACK_BYTES = 64
#: Buttons per keyboard row: short labels (numbers, ja/nei) side by side, long ones alone.
_ROW_WIDTH = 5
_SHORT_LABEL = 6
#: The ✓ put before a chosen option of a multiple choice.
CHECK = "✓ "

_DONE = {"nb": "Ferdig", "nn": "Ferdig", "en": "Done"}

#: A keyboard: rows of (label, callback data).
Keyboard = list[list[tuple[str, str]]]


def item_key(item_id: str) -> str:
    """The short digest of an item id used in callback data."""
    return hashlib.blake2s(item_id.encode("utf-8"), digest_size=4).hexdigest()


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = SPLIT_AT) -> list[str]:
    """`text` in pieces Telegram accepts: at paragraph breaks where possible, then at lines,
    then hard (never empty pieces, nothing lost but the blank lines at a cut)."""
    text = text.strip("\n")
    if _utf16_len(text) <= limit:
        return [text] if text.strip() else []
    pieces: list[str] = []
    rest = text
    while _utf16_len(rest) > limit:
        window = rest[:limit]
        while _utf16_len(window) > limit:  # astral characters count twice
            window = window[:-1]
        cut = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0) or len(window)
        head, rest = rest[:cut].rstrip("\n"), rest[cut:].lstrip("\n")
        if head.strip():
            pieces.append(head)
    if rest.strip():
        pieces.append(rest)
    return pieces


def _short(label: str, width: int = 40) -> str:
    return label if len(label) <= width else label[: width - 1].rstrip() + "…"


def _rows(buttons: list[tuple[str, str]]) -> Keyboard:
    """Short buttons side by side (a scale 1–5), long ones one per row (options)."""
    if all(len(label) <= _SHORT_LABEL for label, _ in buttons):
        return [buttons[i:i + _ROW_WIDTH] for i in range(0, len(buttons), _ROW_WIDTH)]
    return [[button] for button in buttons]


def _checked(data: str) -> str:
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def keyboard(item_id: str, choices: Sequence[Choice], *, multiple: bool,
             lang: str) -> Keyboard:
    """The inline keyboard for the item asked, or [] when it has no buttons."""
    if not choices:
        return []
    key = item_key(item_id)
    if multiple:
        toggles = [(_short(c.label), _checked(f"t:{key}:0:{k}")) for k, c in enumerate(choices)]
        return [*_rows(toggles), [(_DONE.get(lang, _DONE["nb"]), _checked(f"d:{key}:0"))]]
    return _rows([(_short(c.label), _checked(f"a:{key}:{c.reply}")) for c in choices])


@dataclass(frozen=True, slots=True)
class Tap:
    """A button press, read back from its callback data.

    `reply` is the text for the engine (None for a toggle, which only changes the keyboard);
    `keyboard` is the new keyboard a toggle asks for.
    """

    item: str
    reply: str | None
    keyboard: Keyboard | None = None


def read_tap(data: str, current: Keyboard) -> Tap | None:
    """What a tap with `data` on a message whose keyboard is `current` means; None when the
    data is not ours (forged, longer than Telegram carries, or from an older version of the
    bot)."""
    if len(data.encode("utf-8", "surrogatepass")) > MAX_CALLBACK_BYTES:
        return None
    kind, _, rest = data.partition(":")
    if kind == "a":
        item, sep, reply = rest.partition(":")
        return Tap(item, reply) if sep and reply else None
    parts = rest.split(":")
    if kind == "d" and len(parts) == 2:
        mask = _mask(parts[1])
        if mask is None:
            return None
        chosen = [str(k + 1) for k in range(64) if mask >> k & 1]
        return Tap(parts[0], ", ".join(chosen) if chosen else "")
    if kind == "t" and len(parts) == 3:
        mask = _mask(parts[1])
        option = _option(parts[2])
        if mask is None or option is None:
            return None
        return Tap(parts[0], None, _toggled(current, parts[0], mask ^ (1 << option)))
    return None


def _mask(text: str) -> int | None:
    """A selection mask as written: 1 to 16 hex digits, nothing else (`int` would also take
    signs, blanks, underscores and "0x")."""
    if not 0 < len(text) <= 16 or not all(c in "0123456789abcdefABCDEF" for c in text):
        return None
    return int(text, 16)


def _option(text: str) -> int | None:
    """An option number 0–63 as written: ASCII digits only ("²" is a digit to `isdigit`, and
    no number to `int`)."""
    if not 0 < len(text) <= 2 or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value < 64 else None


def _toggled(current: Keyboard, item: str, mask: int) -> Keyboard:
    """The multiple-choice keyboard `current` with the selection `mask`: ✓ on the chosen."""
    rows: Keyboard = []
    for row in current:
        new_row = []
        for label, data in row:
            kind, _, rest = data.partition(":")
            parts = rest.split(":")
            plain = label.removeprefix(CHECK)
            if kind == "t" and len(parts) == 3 and parts[0] == item:
                k = _option(parts[2]) or 0
                mark = CHECK if mask >> k & 1 else ""
                new_row.append((mark + plain, f"t:{item}:{mask:x}:{k}"))
            elif kind == "d" and parts[:1] == [item]:
                new_row.append((plain, f"d:{item}:{mask:x}"))
            else:
                new_row.append((label, data))
        rows.append(new_row)
    return rows
