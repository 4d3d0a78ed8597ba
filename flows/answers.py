"""Reading one free-text answer to one question.

Respondents answer by email or chat in whatever words come naturally: "2", "b)", "helse og
omsorg", "Ja, det har vi", "ca. 40", "veit ikkje", "4 5 3 2 6 1". The dialogue engine needs one
predictable reading of such a text, or a precise reason why it could not be read, so that the
bot can say what was wrong instead of a vague "I did not understand".

The rules are conservative on purpose. When a text could mean two things it is rejected as
ambiguous rather than guessed, because a wrong answer silently stored is worse than asking once
more. Matching ignores case, accents and punctuation, and knows bokmål, nynorsk and English.

Everything here is pure (no I/O, no clock, no randomness) and total: no function raises on any
string. Input is capped before matching so that a huge or hostile text cannot make a call slow,
and the lookup tables for an item are built once per item object and cached, because the engine
calls this on every step within a budget of about 200 µs. Those tables include the readings of
the most common whole answers ("2", "ja", "vet ikke", an option's name), worked out in advance
by the same rules, so that such an answer costs one normalisation and one lookup.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from flows.model import (
    DONT_KNOW,
    NO,
    NOT_RELEVANT,
    YES,
    AnswerValue,
    Item,
    ItemType,
    Scale,
)

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MAX_INPUT",
    "Accepted",
    "Reading",
    "RejectReason",
    "Rejected",
    "normalise",
    "read_answer",
    "read_grid_line",
    "read_grid_values",
    "read_lettered_rows",
    "read_row",
]

#: Only this many characters of an answer are looked at (free text answers excepted).
MAX_INPUT = 10_000
#: The length limit of a free-text answer whose item sets no `max_length`.
DEFAULT_MAX_LENGTH = 2000


# --- results --------------------------------------------------------------------------------


class RejectReason(StrEnum):
    """Why an answer text could not be read; the bot words its reply after this."""

    EMPTY = "empty"
    UNKNOWN_OPTION = "unknown_option"
    AMBIGUOUS = "ambiguous"
    TOO_MANY = "too_many"
    EXCLUSIVE = "exclusive"
    OUT_OF_RANGE = "out_of_range"
    NOT_A_NUMBER = "not_a_number"
    NOT_YES_NO = "not_yes_no"
    TOO_LONG = "too_long"
    NOT_OFFERED = "not_offered"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The text was read as `value` (in the form the answer store keeps)."""

    value: AnswerValue


@dataclass(frozen=True, slots=True)
class Rejected:
    """The text could not be read.

    Attributes:
        limit: the bound that was broken where there is one: `max_choices` (TOO_MANY, 1 for a
            single choice), the violated `min`/`max` of a number, the scale's `max`, the text's
            `max_length`, or the number of options when an option number does not exist.
        candidates: what an ambiguous text could mean (option ids, or scale points as
            strings), or the exclusive options that were combined with others.
    """

    reason: RejectReason
    limit: int | None = None
    candidates: tuple[str, ...] = ()


Reading = Accepted | Rejected

_EMPTY = Rejected(RejectReason.EMPTY)
_NOT_A_NUMBER = Rejected(RejectReason.NOT_A_NUMBER)
_NOT_YES_NO = Rejected(RejectReason.NOT_YES_NO)
_NOT_OFFERED = Rejected(RejectReason.NOT_OFFERED)
#: The readings of the answer words; shared, as they cannot change.
_ACCEPTED_WORDS = {value: Accepted(value) for value in (YES, NO, DONT_KNOW, NOT_RELEVANT)}


# --- normalising ----------------------------------------------------------------------------

_TRAILING = ".!,;: "
# Letters that Unicode does not decompose but Norwegians read as plain letters, and the
# typographic apostrophes and dashes that mail programs put in.
_FOLD_TABLE = str.maketrans(
    {
        "ø": "o",
        "æ": "ae",
        "œ": "oe",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "ı": "i",
        "\u2018": "'",
        "\u2019": "'",
        "\u02bc": "'",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
    }
)
_COMBINING_RE = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold())
    return _COMBINING_RE.sub("", text).translate(_FOLD_TABLE)


def _quick_fold_table() -> dict[int, int | str]:
    """What `_fold` makes of each Latin letter, accent and typographic mark that folds to ASCII.

    Case folding, decomposition, accent removal and the table above all work one character at
    a time (decomposition only reorders accents among themselves, and those are removed), so
    a text made of ASCII and these characters folds to its characters' folds joined; and an
    ASCII result is stable once lower-cased. One `str.translate` then does the work of two
    or more rounds of `_fold`. ASCII maps to itself here only because `str.translate` is
    several times slower on characters missing from its table.
    """
    table: dict[int, int | str] = {code: code for code in range(0x80)}
    ranges = (range(0x80, 0x250), range(0x300, 0x370), range(0x1E00, 0x1F00),
              range(0x2000, 0x2070), _FOLD_TABLE.keys())  # fmt: skip
    for codes in ranges:
        for code in codes:
            folded = _fold(chr(code))
            if folded.isascii():
                table[code] = folded
    return table


_QUICK_FOLD = _quick_fold_table()
#: A character that is not in `_QUICK_FOLD`; found at once in Cyrillic or Chinese text.
_UNKNOWN_FOLD_RE = re.compile(
    "[^" + "".join(re.escape(chr(code)) for code in sorted(_QUICK_FOLD)) + "]"
)
#: Beyond this length, a text is searched for `_UNKNOWN_FOLD_RE` before it is translated.
_QUICK_FOLD_TRY = 64


def normalise(text: str) -> str:
    """The text as it is compared: case-folded, accents removed, whitespace collapsed.

    `é` becomes `e` and `å` becomes `a`; `ø` becomes `o` and `æ` becomes `ae`. Trailing
    `. ! , ; :` are dropped, but not `?` (a lone `?` means something). Idempotent.
    """
    if text.isascii():
        folded = text.lower()
    elif len(text) > _QUICK_FOLD_TRY and _UNKNOWN_FOLD_RE.search(text):
        folded = _fold_stable(text)
    else:
        quick = text.translate(_QUICK_FOLD)
        # ASCII when every character's fold is known (Norwegian and other Latin letters).
        folded = quick.lower() if quick.isascii() else _fold_stable(text)
    return " ".join(folded.split()).rstrip(_TRAILING)


def _fold_stable(text: str) -> str:
    # Case folding and compatibility decomposition can each undo the other's work on
    # exotic characters; repeat until nothing changes so that the result is stable.
    folded = _fold(text)
    for _ in range(4):
        if folded.isascii():
            # What `_fold` does to ASCII, and the result is stable.
            return folded.lower()
        again = _fold(folded)
        if again == folded:
            break
        folded = again
    return folded


# --- tokens ---------------------------------------------------------------------------------

_WORD_RE = re.compile(r"[^\W_]+")
#: Splits a text into words (the captured parts) and what stands between them, in one pass.
_SPLIT_RE = re.compile(r"([^\W_]+)")
_GRID_TOKEN_RE = re.compile(r"[^\W_]+|\?+")
#: Punctuation between two words that separates list items ("1, 3", "kultur/idrett").
_HARD_BREAKS = frozenset(",;/+&|")
#: Punctuation after an option number or letter that marks it as one ("2)", "b.", "3 - ").
_REF_MARKS = frozenset(").:-")
#: A list of option numbers and nothing else ("1, 3", "1 3", "1,3 og 5"). Linear: the numbers
#: are digits and every separator starts with a character that is not one.
_NUMBER_LIST_RE = re.compile(r"[0-9]{1,15}(?:(?:[,;] ?| | og | and )[0-9]{1,15})*")
_DIGITS_RE = re.compile(r"[0-9]+")
_MAX_PHRASE_WORDS = 6


def _split(norm: str) -> tuple[list[str], list[str]]:
    """The words of a normalised text, and the gap before each word.

    `gaps[i]` is what stood between `words[i - 1]` (or the start) and `words[i]`: punctuation
    and at most single spaces, NOT stripped; strip it where a space makes a difference.
    """
    if norm.isascii() and norm.replace(" ", "").isalnum():
        # Only letters and digits between single spaces (most answers): the words are what
        # lies between the spaces, unless a space is doubled or at an end.
        words = norm.split(" ")
        if "" not in words:
            gaps = [" "] * len(words)
            gaps[0] = ""
            return words, gaps
    parts = _SPLIT_RE.split(norm)
    return parts[1::2], parts[0:-1:2]


def _key(text: str) -> str:
    """The form in which texts are compared: words only, single spaces."""
    return " ".join(_WORD_RE.findall(normalise(text)))


def _is_digits(word: str) -> bool:
    return word.isascii() and word.isdigit()


def _to_int(digits: str) -> int:
    # int() of thousands of digits is slow or refused; nothing that long is in range.
    return int(digits) if len(digits) <= 15 else 10**16


def _has_break(gap: str) -> bool:
    return not _HARD_BREAKS.isdisjoint(gap)


def _only_question_marks(norm: str) -> bool:
    return bool(norm) and not norm.replace("?", "").strip()


def _table(*groups: tuple[Iterable[str], str]) -> dict[str, str]:
    table: dict[str, str] = {}
    for phrases, value in groups:
        for phrase in phrases:
            table.setdefault(_key(phrase), value)
    return table


@dataclass(frozen=True, slots=True)
class _Phrases:
    """Phrases (as `_key` writes them) and their values, indexed by their first word."""

    table: dict[str, str]
    #: For each first word, the most words of a phrase that starts with it (at most
    #: `_MAX_PHRASE_WORDS`), so that a lookup tries no longer spans than can match.
    reach: dict[str, int]


def _phrases(table: dict[str, str]) -> _Phrases:
    reach: dict[str, int] = {}
    for phrase in table:
        words = phrase.split(" ")
        longest = max(reach.get(words[0], 0), len(words))
        reach[words[0]] = min(longest, _MAX_PHRASE_WORDS)
    return _Phrases(table, reach)


def _longest(words: list[str], phrases: _Phrases, start: int = 0) -> tuple[str, int] | None:
    """The longest phrase that starts at `words[start]`: its value and end."""
    if start >= len(words):
        return None
    reach = phrases.reach.get(words[start])
    if reach is None:
        return None
    table = phrases.table
    for end in range(min(len(words), start + reach), start + 1, -1):
        value = table.get(" ".join(words[start:end]))
        if value is not None:
            return value, end
    value = table.get(words[start])
    return None if value is None else (value, start + 1)


# --- word lists -----------------------------------------------------------------------------

_YES_WORDS = (
    "ja", "jo", "joda", "jada", "ja da", "jo da", "japp", "jepp", "javisst", "ja visst",
    "ja takk", "det har vi", "det har me", "det gjer vi", "det gjer me", "det gjør vi",
    "det er det", "det stemmer", "yes", "yep", "yeah", "yup", "y", "j", "ok", "okay", "okei",
    "stemmer", "riktig", "korrekt", "absolutt", "selvfølgelig", "sjølvsagt", "selvsagt",
    "definitivt", "of course", "sure",
)  # fmt: skip
_NO_WORDS = (
    "nei", "neida", "nei da", "nei takk", "nope", "no", "nah", "n", "ikke", "ikkje", "har ikke",
    "har ikkje", "har vi ikke", "har me ikkje", "ingen", "aldri", "never", "no thanks",
    "not yet", "not at all", "det har vi ikke", "det har vi ikkje", "det har me ikkje",
    "det har me ikke", "stemmer ikke", "stemmer ikkje", "det stemmer ikke", "det stemmer ikkje",
    "ikke riktig", "ikkje riktig", "absolutt ikke", "absolutt ikkje", "selvfølgelig ikke",
    "sjølvsagt ikkje", "ikke ennå", "ikke enda", "ikkje enno", "ikkje endå",
)  # fmt: skip
_DONT_KNOW_WORDS = (
    "vet ikke", "veit ikke", "veit ikkje", "vet ikkje", "vi vet ikke", "vi veit ikkje",
    "usikker", "usikre", "ikke sikker", "ikkje sikker", "don't know", "dont know",
    "do not know", "not sure", "unsure", "ingen formening", "ingen anelse", "aner ikke",
    "aner ikkje", "har ingen formening",
)  # fmt: skip
_NOT_RELEVANT_WORDS = (
    "ikke relevant", "ikkje relevant", "ikke aktuelt", "ikkje aktuelt", "ikke aktuell",
    "ikkje aktuell", "not relevant", "not applicable", "n/a", "irrelevant", "uaktuelt",
    "gjelder ikke", "gjelder ikkje", "gjeld ikkje", "gjeld ikke",
)  # fmt: skip
_NUMBER_WORDS: dict[str, int] = {
    "null": 0, "zero": 0,
    "en": 1, "ein": 1, "ei": 1, "ett": 1, "eitt": 1, "eit": 1, "one": 1, "ener": 1,
    "to": 2, "two": 2, "toer": 2,
    "tre": 3, "three": 3, "treer": 3,
    "fire": 4, "four": 4, "firer": 4,
    "fem": 5, "five": 5, "femmer": 5,
    "seks": 6, "six": 6, "sekser": 6,
    "sju": 7, "syv": 7, "seven": 7, "sjuer": 7, "syver": 7,
    "atte": 8, "eight": 8, "atter": 8,
    "ni": 9, "nine": 9, "nier": 9,
    "ti": 10, "ten": 10, "tier": 10,
}  # fmt: skip
#: For a count, "none" is a number.
_ZERO_WORDS = frozenset({"ingen", "none", "null", "zero"})
_APPROX_WORDS = frozenset(
    {"ca", "cirka", "circa", "omtrent", "omkring", "rundt", "about", "around", "approx",
     "approximately", "roughly", "ungefaer"}
)  # fmt: skip
#: "40 tusen" is not 40.
_MULTIPLIERS = frozenset(
    {"k", "tusen", "thousand", "mill", "million", "millioner", "mrd", "milliard", "milliarder",
     "hundre", "hundred", "billion"}
)  # fmt: skip
_SOFT_SEPARATORS = frozenset({"og", "and", "eller", "or", "samt", "pluss", "plus"})
_FILLERS = frozenset({"nr", "nummer", "number", "no", "alternativ", "option"})
_NEGATIONS = frozenset({"ikke", "ikkje", "not", "ingen", "never", "aldri"})
#: Words that describe a change rather than name an option: "økt" in "økt effektivitet" must
#: not pick the option "Økt trivsel …"; they belong to the word after them.
_MODIFIERS = frozenset(
    {"okt", "okte", "bedre", "mer", "meir", "mindre", "ny", "nye", "nytt", "storre", "hoyere",
     "hogare", "lavere", "lagare", "more", "better", "increased", "less", "new", "higher",
     "lower"}
)  # fmt: skip
_STOPWORDS = frozenset(
    {"og", "i", "av", "for", "til", "med", "pa", "eller", "and", "or", "of", "the", "in", "to",
     "a", "an", "om", "som", "det", "de", "den", "en", "et", "ei", "ein", "eit", "at", "vi",
     "me", "er"}
)  # fmt: skip
#: Yes/no words that count at the start of a longer answer only before punctuation
#: ("No, we have not" but not the nynorsk "No har vi …" = "Now we have …").
_NEED_BREAK = frozenset({"no", "ok", "okay", "okei", "sure", "to"})
_WHOLE_ONLY = frozenset({"y", "j", "n", "v"})
_HEDGES = frozenset({"kanskje", "maybe", "perhaps", "muligens", "tja", "delvis", "partly"})
_YES_NO_CONNECTORS = frozenset({"og", "eller", "and", "or", "men", "but"})

_SPECIALS = _phrases(_table((_DONT_KNOW_WORDS, DONT_KNOW), (_NOT_RELEVANT_WORDS, NOT_RELEVANT)))
_YES_NO = _phrases(
    _table((_YES_WORDS, YES), (_NO_WORDS, NO), (_DONT_KNOW_WORDS, DONT_KNOW), (("v",), DONT_KNOW))
)
_NOT_RELEVANT = _phrases(_table((_NOT_RELEVANT_WORDS, NOT_RELEVANT)))
_NO_PHRASES = _phrases({})
#: Answer words whose presence right after another answer word makes a reply contradictory.
_STRONG = frozenset(
    {"ja", "jo", "nei", "yes", "no", "jada", "joda", "neida", "nope", "yep"}
    | {_key(w) for w in _DONT_KNOW_WORDS}
)
#: Yes/no values that stand for one row each in a list of rows (`ja nei j n vet ikke`).
_PLAIN_YES_NO = _STRONG | {"j", "n", "y", "v", "jepp", "japp"}
#: Whole answers read in advance: bare numbers up to this (exclusive) besides the options.
_SMALL_NUMBERS = 11


def _known(candidates: Iterable[str], read: Callable[[str], Reading]) -> dict[str, Reading]:
    """The readings of normalised answers, worked out in advance by the general rules.

    Only texts that `normalise` leaves as they are qualify, so that looking a normalised
    answer up here gives exactly what reading it would.
    """
    return {text: read(text) for text in candidates if text and normalise(text) == text}


# --- per-item lookup tables -----------------------------------------------------------------

_K = TypeVar("_K")
_V = TypeVar("_V")


class _IdentityCache(Generic[_K, _V]):
    """Values computed once per object, keyed by identity.

    Hashing a frozen Item compares every option and text, which costs more than the reading
    itself; the identity of the object is enough because items are immutable. Each entry
    keeps its object alive, so an id cannot be reused while it is in the cache.
    """

    __slots__ = ("_build", "_entries", "_size")

    def __init__(self, build: Callable[[_K], _V], size: int = 4096) -> None:
        self._build = build
        self._entries: dict[int, tuple[_K, _V]] = {}
        self._size = size

    def get(self, key: _K) -> _V:
        entry = self._entries.get(id(key))
        if entry is not None and entry[0] is key:
            return entry[1]
        value = self._build(key)
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[id(key)] = (key, value)
        return value


@dataclass(frozen=True, slots=True)
class _Choices:
    ids: tuple[str, ...]
    exclusive: tuple[bool, ...]
    #: Whole-text matches: option ids, labels in every language, synonyms.
    exact: dict[str, frozenset[int]]
    #: For each first word of an `exact` key, the most words such a key has.
    reach: dict[str, int]
    #: Labels and synonyms as " word word ", for prefix and contained-words matching.
    texts: tuple[tuple[str, int], ...]
    #: `texts` joined, each after a NUL: one search tells whether any of them matches.
    joined: str
    #: Each option chosen (a single choice's reading).
    accepted: tuple[Accepted, ...]
    unknown: Rejected
    #: Readings of whole normalised answers (option numbers and names), filled once built.
    known: dict[str, Reading]
    #: Whether a list of option numbers such as "1 og 3" is also some option's name.
    numbered_names: bool


def _build_choices(item: Item) -> _Choices:
    exact: dict[str, set[int]] = {}
    reach: dict[str, int] = {}
    texts: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    for index, option in enumerate(item.options):
        names = (option.id, *option.label.variants(), *option.synonyms)
        for position, name in enumerate(names):
            key = _key(name)
            if not key:
                continue
            exact.setdefault(key, set()).add(index)
            first = key.partition(" ")[0]
            reach[first] = max(reach.get(first, 0), key.count(" ") + 1)
            padded = f" {key} "
            if position > 0 and (padded, index) not in seen:
                seen.add((padded, index))
                texts.append((padded, index))
    ids = tuple(option.id for option in item.options)
    choices = _Choices(
        ids=ids,
        exclusive=tuple(option.exclusive for option in item.options),
        exact={key: frozenset(found) for key, found in exact.items()},
        reach=reach,
        texts=tuple(texts),
        joined="".join(f"\0{text}" for text, _ in texts),
        accepted=tuple(Accepted(option_id) for option_id in ids),
        unknown=Rejected(RejectReason.UNKNOWN_OPTION, limit=len(ids)),
        known={},
        numbered_names=any(_NUMBER_LIST_RE.fullmatch(key) for key in exact),
    )
    candidates = [*choices.exact, *(str(n) for n in range(len(ids) + 2))]
    if item.type == ItemType.SINGLE:
        choices.known.update(_known(candidates, lambda norm: _single(choices, norm)))
    elif item.type == ItemType.MULTI:
        choices.known.update(_known(candidates, lambda norm: _multi(item, choices, norm)))
    return choices


@dataclass(frozen=True, slots=True)
class _ScaleInfo:
    exact: dict[str, frozenset[int]]
    texts: tuple[tuple[str, int], ...]
    #: `texts` joined, each after a NUL: one search tells whether any of them matches.
    joined: str
    #: Everything a one-line grid answer may contain as one value, besides digits.
    grid_words: _Phrases
    #: Readings of whole normalised answers (points, labels, specials), filled once built.
    known: dict[str, Reading]


def _build_scale(scale: Scale) -> _ScaleInfo:
    exact: dict[str, set[int]] = {}
    texts: list[tuple[str, int]] = []
    for point, label in scale.labels:
        for variant in label.variants():
            key = _key(variant)
            if key:
                exact.setdefault(key, set()).add(point)
                texts.append((f" {key}", point))
    grid_words = dict(_SPECIALS.table)
    grid_words.update({word: word for word in _NUMBER_WORDS})
    grid_words.update({key: key for key in exact if key.count(" ") < _MAX_PHRASE_WORDS})
    info = _ScaleInfo(
        exact={key: frozenset(found) for key, found in exact.items()},
        texts=tuple(texts),
        joined="".join(f"\0{text}" for text, _ in texts),
        grid_words=_phrases(grid_words),
        known={},
    )
    low = max(scale.min, 0)
    points = range(low, min(scale.max, low + 100) + 2)
    candidates = [
        "?",
        *info.exact,
        *_SPECIALS.table,
        *_NUMBER_WORDS,
        *map(str, range(_SMALL_NUMBERS)),
        *map(str, points),
    ]
    info.known.update(_known(candidates, lambda norm: _scale(scale, info, norm)))
    return info


_CHOICES: _IdentityCache[Item, _Choices] = _IdentityCache(_build_choices)
_SCALES: _IdentityCache[Scale, _ScaleInfo] = _IdentityCache(_build_scale)


# --- public entry points --------------------------------------------------------------------


def read_answer(item: Item, text: str) -> Reading:
    """Read a whole answer for a non-grid item (single, multi, scale, yesno, number, text).

    A grid is read row by row with `read_row` or on one line with `read_grid_line`; given
    a grid here, the answer is rejected as UNKNOWN_OPTION.
    """
    reader = _READERS.get(item.type)
    if reader is not None:
        return reader(item, text)
    if not normalise(text[:MAX_INPUT]):
        return _EMPTY
    return Rejected(RejectReason.UNKNOWN_OPTION)


def read_row(item: Item, text: str) -> Reading:
    """Read the answer for ONE grid row.

    A scale value per `item.scale`, or yes/no/dont_know when `item.row_type` is "yesno".
    """
    if item.row_type == "yesno":
        return _read_yes_no(text, dont_know=item.dont_know)
    return _read_scale(item.scale, text)


def read_grid_line(item: Item, text: str) -> list[Reading] | None:
    """A whole grid answered on one line as values in row order.

    For example `4 5 3 2 6 1`, `4,5,3,2,6,1`, `453261` (single-digit scales), `ja nei ja vet
    ikke` or `j n j v`. Returns one Reading per row when the number of values read equals
    `len(item.rows)`, else None (the caller then reports what is missing). Also None when the
    line holds something that is not a value at all (free text), or row labels such as
    `1: 4` or `a) ja`, which are for the caller to split.
    """
    values = _grid_values(item, text)
    if values is None:
        return None
    rows = len(item.rows)
    scale = item.scale
    if (
        len(values) == 1
        and rows > 1
        and _is_digits(values[0])
        and len(values[0]) == rows
        and (item.row_type == "yesno" or (scale is not None and scale.min >= 0 and scale.max <= 9))
    ):
        values = list(values[0])
    if len(values) != rows:
        return None
    return _grid_readings(item, values)


def read_grid_values(item: Item, text: str) -> list[Reading] | None:
    """Plain values for the first rows of a grid, on one line in row order: `3 4`, `ja nei`.

    Where `read_grid_line` wants every row, this takes from one value up to one per row: a
    chat asks a grid one row at a time, and a respondent may answer that row and the next
    ones at once. Only plain values count (digits, number words, `ja`/`nei`/`j`/`n`, `vet
    ikke`, `ikke relevant`): a scale label or a longer phrase after a value (`4 helt enig`,
    `ja, det har vi`) is that one answer in other words, not a second row. Digits are never
    split (`34` is one value), as the number of values is not known in advance. None when
    the line is not such a list, or has more values than rows.
    """
    values = _grid_values(item, text)
    if values is None or not all(_plain_value(item, value) for value in values):
        return None
    return _grid_readings(item, values)


def _plain_value(item: Item, value: str) -> bool:
    if value[0] == "?" or _is_digits(value):
        return True
    if item.row_type == "yesno":
        return value in _PLAIN_YES_NO
    return value in _NUMBER_WORDS or value in _SPECIALS.table


def _grid_values(item: Item, text: str) -> list[str] | None:
    """The values of a one-line grid answer as texts, at most one per row; None if not one."""
    if item.type != ItemType.GRID or not item.rows:
        return None
    raw = text[:MAX_INPUT]
    if ":" in raw or "=" in raw or "(" in raw or ")" in raw:
        return None
    norm = normalise(raw)
    if norm.isascii() and norm.replace(" ", "").isalnum():
        words = norm.split(" ")  # plain words between single spaces, as the regex finds them
    else:
        words = _GRID_TOKEN_RE.findall(norm)
    if not words:
        return None
    table = _grid_table(item)
    rows = len(item.rows)
    values: list[str] = []
    position = 0
    while position < len(words):
        word = words[position]
        if word in _SOFT_SEPARATORS:
            position += 1
            continue
        if word[0] == "?" or _is_digits(word):
            values.append(word)
            position += 1
        else:
            found = _longest(words, table, position)
            if found is None:
                return None
            values.append(" ".join(words[position : found[1]]))
            position = found[1]
        if len(values) > rows:
            return None
    return values or None


def _grid_table(item: Item) -> _Phrases:
    """The words one value of the grid's rows may be, besides digits."""
    if item.row_type == "yesno":
        return _YES_NO
    if item.scale is not None:
        return _SCALES.get(item.scale).grid_words
    return _NO_PHRASES


def _grid_readings(item: Item, values: list[str]) -> list[Reading]:
    """Each value read as one row (values are normalised already, so a reading known in
    advance is exactly what `read_row` would give)."""
    known: dict[str, Reading]
    if item.row_type == "yesno":
        known = _yes_no_known(dont_know=item.dont_know)
    elif item.scale is not None:
        known = _SCALES.get(item.scale).known
    else:
        known = {}
    readings: list[Reading] = []
    for value in values:
        reading = known.get(value)
        readings.append(read_row(item, value) if reading is None else reading)
    return readings


#: Where a grid row's letter starts an entry of a one-line answer: an ASCII letter standing
#: alone (after the start, a space, a comma or a semicolon), then a separator, a space, a digit
#: or the end: "a 3", "a3", "a: 3", "b) nei", "c=2", "d - 4". A dash counts as a separator
#: only before a space, so that "a -1" keeps its minus. No IGNORECASE: it would let the Kelvin
#: sign and other look-alikes in as letters.
_ROW_ENTRY_RE = re.compile(
    r"(?<![^\s,;])([a-zA-Z])(?=[\s0-9:).=?\-\u2013\u2014]|$)\s{0,3}"
    r"(?:[:).=]|[-\u2013\u2014](?=\s))?"
)
#: What may stand between two entries besides spaces: "a 3, b 4", "a 3 og b 4".
_ENTRY_GAP = " \t,;"
_ENTRY_JOINERS = frozenset({"og", "and", "&", "samt", "+"})


def read_lettered_rows(item: Item, text: str) -> list[tuple[int, str]] | None:
    """Grid rows answered on one line by their letters: `a 3, b 4, c 2`, `a3 b4 c2`, `a: 3, b: 4`.

    Returns (row index, answer text) for each row named, in the order written, for the caller
    to read with `read_row`; None unless the whole text is such a list: it starts with a row
    letter, every letter is one of the grid's rows and is named once, and every row has an
    answer. Only the grid's own letters start an entry, so answer words that are single
    letters (`j`, `n`, `v`) stay answers when the grid has fewer rows than that.
    """
    if item.type != ItemType.GRID or not item.rows:
        return None
    raw = text[:MAX_INPUT].strip()
    rows = len(item.rows)
    starts = [m for m in _ROW_ENTRY_RE.finditer(raw) if ord(m.group(1).lower()) - 97 < rows]
    if not starts or starts[0].start() != 0:
        return None
    entries: list[tuple[int, str]] = []
    seen: set[int] = set()
    for number, match in enumerate(starts):
        end = starts[number + 1].start() if number + 1 < len(starts) else len(raw)
        value = _entry_value(raw[match.end():end])
        index = ord(match.group(1).lower()) - 97
        if not value or index in seen:
            return None
        seen.add(index)
        entries.append((index, value))
    return entries


def _entry_value(text: str) -> str:
    """One entry's answer without the comma or "og" that joins it to the next."""
    value = text.strip(_ENTRY_GAP)
    words = value.split()
    while words and words[-1].lower() in _ENTRY_JOINERS:
        words.pop()
    return " ".join(words).strip(_ENTRY_GAP)


# --- free text ------------------------------------------------------------------------------


def _read_text(item: Item, text: str) -> Reading:
    answer = text.strip()
    if not answer:
        return _EMPTY
    limit = DEFAULT_MAX_LENGTH if item.max_length is None else item.max_length
    if len(answer) > limit:
        return Rejected(RejectReason.TOO_LONG, limit=limit)
    return Accepted(answer)


# --- choices --------------------------------------------------------------------------------


def _one(choices: _Choices, hits: frozenset[int]) -> Reading:
    if len(hits) == 1:
        return choices.accepted[next(iter(hits))]
    return _ambiguous(choices, hits)


def _ambiguous(choices: _Choices, hits: Iterable[int]) -> Rejected:
    return Rejected(
        RejectReason.AMBIGUOUS, candidates=tuple(choices.ids[i] for i in sorted(set(hits)))
    )


def _fuzzy(choices: _Choices, key: str) -> frozenset[int]:
    """Options whose label starts with `key`, else those whose label contains its words."""
    if len(key) < 3:
        return frozenset()
    head = f" {key}"
    # `key` holds only words and spaces, never a NUL, so a hit in `joined` is a hit in a text.
    if f"\0{head}" in choices.joined:
        return frozenset(index for text, index in choices.texts if text.startswith(head))
    if all(word in _STOPWORDS for word in key.split(" ")):
        return frozenset()
    head += " "
    if head not in choices.joined:
        return frozenset()
    return frozenset(index for text, index in choices.texts if head in text)


def _resolve(choices: _Choices, key: str) -> frozenset[int]:
    return choices.exact.get(key) or _fuzzy(choices, key)


def _letter(word: str, count: int) -> int | None:
    if len(word) == 1 and "a" <= word <= "z" and ord(word) - 97 < count:
        return ord(word) - 97
    return None


def _longest_exact(
    choices: _Choices, words: list[str], start: int
) -> tuple[frozenset[int], int] | None:
    reach = choices.reach.get(words[start])
    if reach is None:
        return None
    exact = choices.exact
    for end in range(min(len(words), start + reach), start + 1, -1):
        hits = exact.get(" ".join(words[start:end]))
        if hits:
            return hits, end
    hits = exact.get(words[start])
    return (hits, start + 1) if hits else None


def _chunk_end(words: list[str], gaps: list[str], start: int) -> int:
    """The end of the free words from `start`: up to a separator or a number."""
    end = start + 1
    while end < len(words):
        word = words[end]
        if word in _SOFT_SEPARATORS or _has_break(gaps[end]) or _is_digits(word):
            break
        end += 1
    return end


def _read_single(item: Item, text: str) -> Reading:
    norm = normalise(text[:MAX_INPUT])
    if not norm:
        return _EMPTY
    choices = _CHOICES.get(item)
    known = choices.known.get(norm)
    return _single(choices, norm) if known is None else known


def _single(choices: _Choices, norm: str) -> Reading:
    words, gaps = _split(norm)
    if not words:
        return choices.unknown
    count = len(choices.ids)
    # An option number or letter at the start: "2", "nr 2", "b)", "3 - helse og omsorg".
    used = 0
    index: int | None = None
    if words[0] in _FILLERS and len(words) > 1 and _is_digits(words[1]):
        used, index = 2, _to_int(words[1]) - 1
    elif _is_digits(words[0]):
        used, index = 1, _to_int(words[0]) - 1
    if index is not None and used == len(words):
        return choices.accepted[index] if 0 <= index < count else choices.unknown
    key = " ".join(words)
    hits = choices.exact.get(key)
    if hits:
        return _one(choices, hits)
    is_number = index is not None
    if index is None:
        index = _letter(words[0], count)
        used = 1
    pending: Rejected | None = None
    if index is not None:
        if used == len(words):
            return choices.accepted[index]
        if not 0 <= index < count:
            pending = choices.unknown
        else:
            marked = not _REF_MARKS.isdisjoint(gaps[used])
            hits = _resolve(choices, " ".join(words[used:]))
            if index in hits:
                return choices.accepted[index]
            if hits and (is_number or marked):
                return _ambiguous(choices, hits | {index})
            if not hits and marked and not any(_is_digits(w) for w in words[used:]):
                return choices.accepted[index]
    hits = _fuzzy(choices, key)
    if hits:
        return _one(choices, hits)
    if pending is not None:
        return pending
    many = _pick_many(choices, words, gaps)
    if not isinstance(many, Rejected) and len(set(many)) > 1:
        return Rejected(RejectReason.TOO_MANY, limit=1)
    return choices.unknown


def _read_multi(item: Item, text: str) -> Reading:
    norm = normalise(text[:MAX_INPUT].replace("\n", " ; "))
    if not norm.strip("; "):
        return _EMPTY
    choices = _CHOICES.get(item)
    known = choices.known.get(norm)
    if known is None:
        return _multi(item, choices, norm)
    if isinstance(known, Accepted) and isinstance(known.value, list):
        return Accepted(list(known.value))  # a list of its own for every caller
    return known


def _multi(item: Item, choices: _Choices, norm: str) -> Reading:
    if not choices.numbered_names and _NUMBER_LIST_RE.fullmatch(norm):
        # What `_pick_many` makes of option numbers with only separators between them: the
        # options, or UNKNOWN_OPTION as soon as one number is not an option's.
        numbers = {int(digits) for digits in _DIGITS_RE.findall(norm)}
        if min(numbers) < 1 or max(numbers) > len(choices.ids):
            return choices.unknown
        chosen = sorted(number - 1 for number in numbers)
    else:
        words, gaps = _split(norm)
        if not words:
            return choices.unknown
        key = " ".join(words)
        # A whole label first, so that "og" and commas inside labels are not split on.
        whole = choices.exact.get(key) if not _is_digits(key) else None
        picked: list[int] | Rejected
        if whole:
            if len(whole) > 1:
                return _ambiguous(choices, whole)
            picked = list(whole)
        else:
            picked = _pick_many(choices, words, gaps)
        if isinstance(picked, Rejected):
            return picked
        chosen = sorted(set(picked))
    if not chosen:
        return choices.unknown
    exclusive = [i for i in chosen if choices.exclusive[i]]
    if exclusive and len(chosen) > 1:
        return Rejected(RejectReason.EXCLUSIVE, candidates=tuple(choices.ids[i] for i in exclusive))
    if item.max_choices is not None and len(chosen) > item.max_choices:
        return Rejected(RejectReason.TOO_MANY, limit=item.max_choices)
    return Accepted([choices.ids[i] for i in chosen])


def _pick_many(choices: _Choices, words: list[str], gaps: list[str]) -> list[int] | Rejected:
    """The options named in a list such as `1, 3 og 5` or `helse og omsorg, kultur`."""
    total = len(words)
    count = len(choices.ids)
    picked: list[int] = []
    position = 0
    while position < total:
        word = words[position]
        if word in _SOFT_SEPARATORS:
            position += 1
            continue
        if word in _FILLERS and position + 1 < total and _is_digits(words[position + 1]):
            position += 1
            continue
        if word.isdigit() and word.isascii():
            number = _to_int(word)
            if not 1 <= number <= count:
                return choices.unknown
            position += 1
            if position < total and gaps[position].strip() == "-" and _is_digits(words[position]):
                last = _to_int(words[position])  # a range: "1-3"
                if not number < last <= count:
                    return choices.unknown
                picked.extend(range(number - 1, last))
                position += 1
                continue
            index = number - 1
        else:
            span = _longest_exact(choices, words, position)
            if span is not None:
                if len(span[0]) > 1:
                    return _ambiguous(choices, span[0])
                picked.extend(span[0])
                position = span[1]
                continue
            letter = _letter(word, count)
            if letter is None:
                end = _chunk_end(words, gaps, position)
                found = _free_words(choices, words[position:end])
                if isinstance(found, Rejected):
                    return found
                picked.extend(found)
                position = end
                continue
            index = letter
            position += 1
        if position < total:
            after = _annotation(choices, words, gaps, position, index)
            if isinstance(after, Rejected):
                return after
            position = after
        picked.append(index)
    return picked


def _annotation(
    choices: _Choices, words: list[str], gaps: list[str], start: int, index: int
) -> int | Rejected:
    """Skip a label written after an option number ("3 - helse og omsorg") if it agrees."""
    if start >= len(words):
        return start
    word = words[start]
    if (
        _has_break(gaps[start])
        or word in _SOFT_SEPARATORS
        or _is_digits(word)
        or _letter(word, len(choices.ids)) is not None
    ):
        return start
    span = _longest_exact(choices, words, start)
    if span is not None:
        hits, end = span
    else:
        end = _chunk_end(words, gaps, start)
        hits = _fuzzy(choices, " ".join(words[start:end]))
    if index in hits:
        return end
    if hits:
        return _ambiguous(choices, hits | {index})
    return choices.unknown


def _free_words(choices: _Choices, words: list[str]) -> list[int] | Rejected:
    """Options named by words that are not a whole label: "helse", "omsorg", "helse kultur"."""
    if not _NEGATIONS.isdisjoint(words):
        return choices.unknown
    if all(word in _MODIFIERS or word in _STOPWORDS for word in words):
        return []  # "økt" before an option's own word: the option is named by what follows
    hits = _fuzzy(choices, " ".join(words))
    if len(hits) == 1:
        return list(hits)
    if hits:
        return _ambiguous(choices, hits)
    found: list[int] = []
    for word in words:
        if word in _STOPWORDS or word in _MODIFIERS:
            continue
        one = _resolve(choices, word)
        if len(one) != 1:
            return choices.unknown
        found.extend(one)
    return found or choices.unknown


# --- scales ---------------------------------------------------------------------------------


def _leading_number(words: list[str], start: int = 0) -> int | None:
    if start >= len(words):
        return None
    word = words[start]
    if _is_digits(word):
        return _to_int(word)
    return _NUMBER_WORDS.get(word)


def _read_scale(scale: Scale | None, text: str) -> Reading:
    norm = normalise(text[:MAX_INPUT])
    if not norm:
        return _EMPTY
    if scale is None:
        return _NOT_A_NUMBER
    info = _SCALES.get(scale)
    known = info.known.get(norm)
    return _scale(scale, info, norm) if known is None else known


def _scale(scale: Scale, info: _ScaleInfo, norm: str) -> Reading:
    if _only_question_marks(norm):
        return _ACCEPTED_WORDS[DONT_KNOW] if scale.dont_know else _NOT_OFFERED
    words, gaps = _split(norm)
    if not words:
        return _NOT_A_NUMBER
    key = " ".join(words)
    hits = info.exact.get(key)
    if hits:
        return _scale_hits(hits)
    special = _longest(words, _SPECIALS)
    if special is not None:
        value = special[0]
        offered = scale.dont_know if value == DONT_KNOW else scale.not_relevant
        return _ACCEPTED_WORDS[value] if offered else _NOT_OFFERED
    number = _leading_number(words)
    if number is not None:
        return _scale_number(scale, info, words, gaps, number)
    if len(key) >= 3:
        head = f" {key}"
        if f"\0{head}" in info.joined:
            return _scale_hits(
                frozenset(point for label, point in info.texts if label.startswith(head))
            )
    return _NOT_A_NUMBER


def _scale_hits(hits: frozenset[int]) -> Reading:
    if len(hits) == 1:
        return Accepted(next(iter(hits)))
    return Rejected(RejectReason.AMBIGUOUS, candidates=tuple(str(p) for p in sorted(hits)))


def _scale_number(
    scale: Scale, info: _ScaleInfo, words: list[str], gaps: list[str], number: int
) -> Reading:
    if gaps[0].strip().endswith("-"):
        number = -number
    if len(words) > 1 and gaps[1].strip() in {",", "."} and _is_digits(words[1]):
        return _NOT_A_NUMBER  # "4,5": scales take whole points
    out_of_range = Rejected(RejectReason.OUT_OF_RANGE, limit=scale.max)
    rest = 1
    # "5 av 6", "5/6", "5 out of 6"
    after = rest
    if after < len(words) and words[after] == "out" and words[after + 1 : after + 2] == ["of"]:
        after += 2
    elif after < len(words) and words[after] in {"av", "of"}:
        after += 1
    elif after < len(words) and gaps[after].strip() == "/":
        pass
    else:
        after = -1
    if after >= 0:
        total = _leading_number(words, after)
        if total is not None:
            if total != scale.max:
                return out_of_range
            rest = after + 1
    for word in words[rest:]:
        if _is_digits(word):
            other = _to_int(word)
            if other != number:
                first, second = sorted((number, other))
                return Rejected(RejectReason.AMBIGUOUS, candidates=(str(first), str(second)))
    if rest < len(words):
        named = info.exact.get(" ".join(words[rest:]))
        if named and number not in named:
            both = sorted(named | {number})
            return Rejected(RejectReason.AMBIGUOUS, candidates=tuple(str(p) for p in both))
    if not scale.min <= number <= scale.max:
        return out_of_range
    return Accepted(number)


# --- yes / no -------------------------------------------------------------------------------


def _read_yes_no(text: str, *, dont_know: bool) -> Reading:
    norm = normalise(text[:MAX_INPUT])
    known = (_YES_NO_KNOWN if dont_know else _YES_NO_KNOWN_NO_DK).get(norm)
    if known is not None:
        return known
    if not norm:
        return _EMPTY
    return _yes_no(norm, dont_know=dont_know)


def _yes_no(norm: str, *, dont_know: bool) -> Reading:
    if _only_question_marks(norm):
        return _yes_no_value(DONT_KNOW, dont_know=dont_know)
    words, gaps = _split(norm)
    if not words:
        return _NOT_YES_NO
    if len(words) == 1 and _is_digits(words[0]):
        # The prompt lists the answers in this order: 1 ja, 2 nei, 3 vet ikke.
        value = {"1": YES, "2": NO, "3": DONT_KNOW if dont_know else ""}.get(words[0], "")
        return _yes_no_value(value, dont_know=dont_know) if value else _NOT_YES_NO
    if _longest(words, _NOT_RELEVANT) is not None:
        return _NOT_YES_NO
    found = _longest(words, _YES_NO)
    if found is None:
        return _NOT_YES_NO
    value, used = found
    if used < len(words):
        phrase = " ".join(words[:used])
        gap = gaps[used].strip()
        if phrase in _WHOLE_ONLY or (phrase in _NEED_BREAK and not gap):
            return _NOT_YES_NO
        if not gap and words[used] in _NEGATIONS:
            return _NOT_YES_NO  # "ja ikke"
        after = used
        while after < len(words) and words[after] in _YES_NO_CONNECTORS:
            after += 1
        if after < len(words) and words[after] in _HEDGES:
            return _NOT_YES_NO  # "ja, kanskje"
        following = _longest(words, _YES_NO, after)
        if (
            following is not None
            and following[0] != value
            and " ".join(words[after : following[1]]) in _STRONG
        ):
            return _NOT_YES_NO  # "ja og nei", "ja/nei"
    return _yes_no_value(value, dont_know=dont_know)


def _yes_no_value(value: str, *, dont_know: bool) -> Reading:
    if value == DONT_KNOW and not dont_know:
        return _NOT_OFFERED
    return _ACCEPTED_WORDS[value]


def _build_yes_no_known(*, dont_know: bool) -> dict[str, Reading]:
    candidates = ["?", *_YES_NO.table, *_NOT_RELEVANT.table, *map(str, range(_SMALL_NUMBERS))]
    return _known(candidates, lambda norm: _yes_no(norm, dont_know=dont_know))


_YES_NO_KNOWN = _build_yes_no_known(dont_know=True)
_YES_NO_KNOWN_NO_DK = _build_yes_no_known(dont_know=False)


def _yes_no_known(*, dont_know: bool) -> dict[str, Reading]:
    return _YES_NO_KNOWN if dont_know else _YES_NO_KNOWN_NO_DK


# --- numbers --------------------------------------------------------------------------------

# Linear: the optional prefix is fixed words, the digit groups are delimited by single spaces.
_NUMBER_RE = re.compile(
    r"(?:~ ?|(?:ca|cirka|circa|omtrent|omkring|rundt|about|around|approx|approximately"
    r"|roughly|ungefaer)\b\.? ?)?([+-]?)([0-9]{1,3}(?: [0-9]{3})+|[0-9]+)(?![0-9])(.*)",
    re.DOTALL,
)


def _read_number(item: Item, text: str) -> Reading:
    norm = normalise(text[:MAX_INPUT])
    if not norm:
        return _EMPTY
    if norm.isdigit() and norm.isascii():
        # A bare number, what `_NUMBER_RE` would find with no sign and nothing after it.
        if len(norm) > 15:
            return _huge_number(item, negative=False)
        value = int(norm)
    else:
        number = _number(item, norm)
        if isinstance(number, Rejected):
            return number
        value = number
    if item.min is not None and value < item.min:
        return Rejected(RejectReason.OUT_OF_RANGE, limit=item.min)
    if item.max is not None and value > item.max:
        return Rejected(RejectReason.OUT_OF_RANGE, limit=item.max)
    return Accepted(value)


def _number(item: Item, norm: str) -> int | Rejected:
    """The number a normalised answer gives, before its bounds are checked."""
    match = _NUMBER_RE.match(norm)
    if match is not None:
        sign, digits, rest = match.groups()
        if rest:
            if _DIGITS_RE.search(rest):
                return _NOT_A_NUMBER  # "40-50", "40,5", "1.200", "40 i 2020, 50 i 2021"
            first = _WORD_RE.search(rest)
            if first is not None and first.group() in _MULTIPLIERS:
                return _NOT_A_NUMBER
        digits = digits.replace(" ", "")
        if len(digits) > 15:
            return _huge_number(item, negative=sign == "-")
        value = int(digits)
        return -value if sign == "-" else value
    words = _WORD_RE.findall(norm)
    start = 0
    while start < len(words) and words[start] in _APPROX_WORDS:
        start += 1
    if start >= len(words):
        return _NOT_A_NUMBER
    word = words[start]
    if word in _ZERO_WORDS:
        value = 0
    elif word in _NUMBER_WORDS:
        value = _NUMBER_WORDS[word]
    else:
        return _NOT_A_NUMBER
    following = words[start + 1 : start + 2]
    if following and (following[0] in _MULTIPLIERS or _leading_number(following) is not None):
        return _NOT_A_NUMBER
    if any(_is_digits(w) for w in words[start + 1 :]):
        return _NOT_A_NUMBER
    return value


def _huge_number(item: Item, *, negative: bool) -> Rejected:
    bound = item.min if negative else item.max
    if bound is None:
        return _NOT_A_NUMBER
    return Rejected(RejectReason.OUT_OF_RANGE, limit=bound)


def _read_scale_item(item: Item, text: str) -> Reading:
    return _read_scale(item.scale, text)


def _read_yes_no_item(item: Item, text: str) -> Reading:
    return _read_yes_no(text, dont_know=item.dont_know)


_READERS: dict[str, Callable[[Item, str], Reading]] = {
    ItemType.TEXT: _read_text,
    ItemType.SINGLE: _read_single,
    ItemType.MULTI: _read_multi,
    ItemType.SCALE: _read_scale_item,
    ItemType.YESNO: _read_yes_no_item,
    ItemType.NUMBER: _read_number,
}
