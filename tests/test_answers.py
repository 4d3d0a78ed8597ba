"""Tests for flows.answers: one free-text answer to one question becomes a value or a reason.

Items are built directly from flows.model so that each rule is pinned to a small, visible
definition. Hypothesis checks that nothing raises on arbitrary text and that huge texts stay
fast, since this runs on every step of the dialogue engine.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.answers import (
    DEFAULT_MAX_LENGTH,
    Accepted,
    Reading,
    Rejected,
    RejectReason,
    _fold,
    normalise,
    read_answer,
    read_grid_line,
    read_grid_values,
    read_lettered_rows,
    read_row,
)
from flows.model import (
    DONT_KNOW,
    NO,
    NOT_RELEVANT,
    YES,
    AnswerValue,
    Item,
    ItemType,
    Option,
    Row,
    Scale,
    Text,
)

# --- items ----------------------------------------------------------------------------------

OPTIONS = (
    Option(
        "oppvekst",
        Text("Oppvekst og utdanning", "Oppvekst og utdanning", "Education"),
        synonyms=("barnehage", "skole"),
    ),
    Option("helse", Text("Helse og omsorg", "Helse og omsorg", "Health and care"), ("sykehjem",)),
    Option("kultur", Text("Kultur", en="Culture")),
    Option("teknisk", Text("Teknisk sektor", en="Technical services")),
    Option("plan_bygg", Text("Plan og bygg", en="Planning and building")),
    Option("planlegging", Text("Planlegging og økonomi", "Planlegging og økonomi", "Finance")),
    Option("admin", Text("Administrasjon", "Administrasjon", "Administration")),
    Option("ingen", Text("Ingen av disse", "Ingen av desse", "None of these"), exclusive=True),
)
IDS = tuple(option.id for option in OPTIONS)

SIX = Scale(
    1,
    6,
    labels=(
        (1, Text("Hemmet i stor grad", "Hemma i stor grad", "Hindered a lot")),
        (6, Text("Fremmet i stor grad", "Fremma i stor grad", "Promoted a lot")),
    ),
    dont_know=True,
    not_relevant=True,
)
AGREE = Scale(
    1,
    4,
    labels=tuple(
        (point, Text(label))
        for point, label in enumerate(("Helt uenig", "Delvis uenig", "Delvis enig", "Helt enig"), 1)
    ),
    dont_know=True,
)
TEN = Scale(1, 10)
PLAIN = Scale(1, 5)


def make(kind: ItemType, **fields: object) -> Item:
    """A minimal item of `kind`; `fields` are passed to Item as they are."""
    return Item(f"q_{kind}", kind, Text("Spørsmål?"), 1, "side", **fields)  # type: ignore[arg-type]


SINGLE = make(ItemType.SINGLE, options=OPTIONS)
MULTI = make(ItemType.MULTI, options=OPTIONS)
MULTI_3 = make(ItemType.MULTI, options=OPTIONS, max_choices=3)
SCALE_6 = make(ItemType.SCALE, scale=SIX)
SCALE_AGREE = make(ItemType.SCALE, scale=AGREE)
SCALE_10 = make(ItemType.SCALE, scale=TEN)
SCALE_PLAIN = make(ItemType.SCALE, scale=PLAIN)
YESNO = make(ItemType.YESNO, dont_know=True)
YESNO_NO_DK = make(ItemType.YESNO)
NUMBER = make(ItemType.NUMBER, min=0, max=100_000)
NUMBER_BOUNDED = make(ItemType.NUMBER, min=1, max=500)
NUMBER_FREE = make(ItemType.NUMBER)
TEXT = make(ItemType.TEXT)
TEXT_SHORT = make(ItemType.TEXT, max_length=10)
ROWS = tuple(Row(f"r{i}", Text(f"Påstand {i}")) for i in range(1, 7))
GRID_SCALE = make(ItemType.GRID, scale=SIX, rows=ROWS)
GRID_YESNO = make(ItemType.GRID, rows=ROWS[:4], row_type="yesno", dont_know=True)
GRID_YESNO_NO_DK = make(ItemType.GRID, rows=ROWS[:4], row_type="yesno")
GRID_TEN = make(ItemType.GRID, scale=TEN, rows=ROWS[:2])

ALL_ITEMS = (
    SINGLE, MULTI, MULTI_3, SCALE_6, SCALE_AGREE, SCALE_10, YESNO, YESNO_NO_DK, NUMBER,
    NUMBER_BOUNDED, NUMBER_FREE, TEXT, TEXT_SHORT, GRID_SCALE, GRID_YESNO,
)  # fmt: skip
GRIDS = (GRID_SCALE, GRID_YESNO, GRID_YESNO_NO_DK, GRID_TEN)


def accepted(reading: Reading) -> AnswerValue:
    assert isinstance(reading, Accepted), reading
    return reading.value


def rejected(reading: Reading) -> Rejected:
    assert isinstance(reading, Rejected), reading
    return reading


# --- normalise ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hei   DU  ", "hei du"),
        ("Ærlig talt", "aerlig talt"),
        ("Økonomi", "okonomi"),
        ("Åpen", "apen"),
        ("Café", "cafe"),
        ("VEIT IKKJE", "veit ikkje"),
        ("ja!!!", "ja"),
        ("ja.", "ja"),
        ("ja, ", "ja"),
        ("vet ikke...", "vet ikke"),
        ("vet ikke…", "vet ikke"),
        ("ja;:", "ja"),
        ("?", "?"),
        ("5?", "5?"),
        ("a\tb\r\nc\u00a0d", "a b c d"),
        ("don\u2019t know", "don't know"),
        ("40\u201350", "40-50"),
        ("Straße", "strasse"),
        ("", ""),
        ("   ", ""),
        ("2)", "2)"),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


@given(st.text())
def test_normalise_is_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


def _fold_until_stable(text: str) -> str:
    """What `normalise` is defined as: fold (case, accents, letters like ø) until stable."""
    if text.isascii():
        folded = text.lower()
    else:
        folded = _fold(text)
        for _ in range(4):
            again = _fold(folded)
            if again == folded:
                break
            folded = again
    return " ".join(folded.split()).rstrip(".!,;: ")


#: Latin letters with every accent, typographic marks, loose accents, and a few characters
#: that only the full folding handles (ligatures, Greek, Cyrillic, Chinese, squared units).
_LATIN_AND_MORE = st.characters(max_codepoint=0x24F) | st.sampled_from(
    "\u0301\u0323\u030a\u2018\u2019\u2013\u2014\u2026\u00a0\u2002ẞếǅŉﬁΣσςЯж你\u3386"
)


@pytest.mark.parametrize(
    "text",
    [
        "Hvem skal svare på dette?",
        "Sjukeheimen – ÆØÅ, é, ü, ß og İ",
        "Oppvekst og utdanning (barnehage, grunnskule, SFO, vidaregåande skule) " * 3,
        "ﬁnne ut av det på ㎆",
        "Σίσυφος på ferie",
        "æøå " * 40 + "Я",
    ],
)
def test_normalise_examples_fold_until_stable(text: str) -> None:
    assert normalise(text) == _fold_until_stable(text)


@given(st.text(alphabet=_LATIN_AND_MORE, max_size=40) | st.text(_LATIN_AND_MORE, min_size=60))
def test_normalise_is_folding_until_stable(text: str) -> None:
    assert normalise(text) == _fold_until_stable(text)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_normalise_has_no_outer_space_or_trailing_punctuation(text: str) -> None:
    result = normalise(text)
    assert result == result.strip()
    assert not result.endswith((".", "!", ",", ";", ":"))
    assert "  " not in result


# --- empty input ----------------------------------------------------------------------------


@pytest.mark.parametrize("item", ALL_ITEMS, ids=lambda item: item.id)
@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\u00a0"])
def test_empty_is_empty_for_every_type(item: Item, text: str) -> None:
    assert rejected(read_answer(item, text)).reason is RejectReason.EMPTY


@pytest.mark.parametrize("item", [GRID_SCALE, GRID_YESNO], ids=["scale", "yesno"])
@pytest.mark.parametrize("text", ["", "  "])
def test_empty_row_is_empty(item: Item, text: str) -> None:
    assert rejected(read_row(item, text)).reason is RejectReason.EMPTY
    assert read_grid_line(item, text) is None


# --- single choice --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # option numbers
        ("2", "helse"),
        ("2)", "helse"),
        ("2.", "helse"),
        (" 2 ", "helse"),
        ("nr 2", "helse"),
        ("Nr. 2", "helse"),
        ("nummer 8", "ingen"),
        # option letters: a = 1
        ("b", "helse"),
        ("b)", "helse"),
        ("B", "helse"),
        ("h", "ingen"),
        # ids, labels in every language, synonyms
        ("helse", "helse"),
        ("plan_bygg", "plan_bygg"),
        ("Helse og omsorg", "helse"),
        ("HELSE OG OMSORG!", "helse"),
        ("health and care", "helse"),
        ("Ingen av desse", "ingen"),
        ("None of these.", "ingen"),
        ("Finance", "planlegging"),
        ("Planlegging og økonomi", "planlegging"),
        ("planlegging og okonomi", "planlegging"),
        ("sykehjem", "helse"),
        ("Barnehage", "oppvekst"),
        # prefixes of a label (3 characters or more)
        ("hel", "helse"),
        ("Helse og", "helse"),
        ("Oppvekst", "oppvekst"),
        ("adm", "admin"),
        ("Planning", "plan_bygg"),
        ("tekn", "teknisk"),
        # words contained in exactly one label
        ("omsorg", "helse"),
        ("og omsorg", "helse"),
        ("bygg", "plan_bygg"),
        ("Økonomi", "planlegging"),
        ("utdanning", "oppvekst"),
        ("sektor", "teknisk"),
        # number and label that agree
        ("3 - kultur", "kultur"),
        ("3 kultur", "kultur"),
        ("3) Kultur", "kultur"),
        ("2 helse og omsorg", "helse"),
        ("2. Helse", "helse"),
        ("b) helse og omsorg", "helse"),
        # a marked number followed by a comment
        ("2) fordi vi jobber der", "helse"),
    ],
)
def test_single_choice_reads(text: str, expected: str) -> None:
    assert accepted(read_answer(SINGLE, text)) == expected


@pytest.mark.parametrize(
    ("text", "reason", "limit", "candidates"),
    [
        ("9", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("0", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("nr 12", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("xyz", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("he", RejectReason.UNKNOWN_OPTION, 8, ()),  # prefixes need 3 characters
        ("og", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("z", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("ikke kultur", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("2 ansatte", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("😀", RejectReason.UNKNOWN_OPTION, 8, ()),
        ("plan", RejectReason.AMBIGUOUS, None, ("plan_bygg", "planlegging")),
        ("pla", RejectReason.AMBIGUOUS, None, ("plan_bygg", "planlegging")),
        ("3 helse og omsorg", RejectReason.AMBIGUOUS, None, ("helse", "kultur")),
        ("3 - helse", RejectReason.AMBIGUOUS, None, ("helse", "kultur")),
        ("a) kultur", RejectReason.AMBIGUOUS, None, ("oppvekst", "kultur")),
        ("1, 3", RejectReason.TOO_MANY, 1, ()),
        ("1-3", RejectReason.TOO_MANY, 1, ()),
        ("helse og kultur", RejectReason.TOO_MANY, 1, ()),
    ],
)
def test_single_choice_rejects(
    text: str, reason: RejectReason, limit: int | None, candidates: tuple[str, ...]
) -> None:
    assert read_answer(SINGLE, text) == Rejected(reason, limit, candidates)


def test_single_choice_prefers_the_displayed_number_over_an_id() -> None:
    numbered = make(ItemType.SINGLE, options=(Option("2", Text("To")), Option("1", Text("En"))))
    assert accepted(read_answer(numbered, "2")) == "1"
    assert accepted(read_answer(numbered, "to")) == "2"


def test_two_options_with_the_same_synonym_are_ambiguous() -> None:
    item = make(
        ItemType.SINGLE,
        options=(Option("a1", Text("Skole"), ("felles",)), Option("a2", Text("SFO"), ("felles",))),
    )
    assert read_answer(item, "felles") == Rejected(RejectReason.AMBIGUOUS, None, ("a1", "a2"))


@given(st.integers(min_value=1, max_value=len(OPTIONS)))
def test_single_choice_any_option_number(number: int) -> None:
    assert accepted(read_answer(SINGLE, str(number))) == IDS[number - 1]
    assert accepted(read_answer(SINGLE, f"{number})")) == IDS[number - 1]
    assert accepted(read_answer(SINGLE, "abcdefgh"[number - 1])) == IDS[number - 1]


@given(st.sampled_from(OPTIONS), st.sampled_from(("nb", "nn", "en")))
def test_single_choice_any_full_label(option: Option, lang: str) -> None:
    label = option.label.get(lang)  # type: ignore[arg-type]
    assert accepted(read_answer(SINGLE, label)) == option.id
    assert accepted(read_answer(SINGLE, label.upper() + ".")) == option.id


def test_lookup_tables_follow_the_item_not_its_id() -> None:
    # Tables are cached per item object; a revised item with the same id must not see the
    # old labels.
    first = make(
        ItemType.SINGLE, options=(Option("x", Text("Kultur")), Option("y", Text("Idrett")))
    )
    second = make(
        ItemType.SINGLE, options=(Option("x", Text("Idrett")), Option("y", Text("Kultur")))
    )
    for _ in range(2):
        assert accepted(read_answer(first, "kultur")) == "x"
        assert accepted(read_answer(second, "kultur")) == "y"


# --- multiple choice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1, 3 og 5", ["oppvekst", "kultur", "plan_bygg"]),
        ("1,3,5", ["oppvekst", "kultur", "plan_bygg"]),
        ("1 3 5", ["oppvekst", "kultur", "plan_bygg"]),
        ("5 3 1", ["oppvekst", "kultur", "plan_bygg"]),
        ("1; 3; 5", ["oppvekst", "kultur", "plan_bygg"]),
        ("1 and 3", ["oppvekst", "kultur"]),
        ("nr 1 og nr 3", ["oppvekst", "kultur"]),
        ("a og c", ["oppvekst", "kultur"]),
        ("a, c", ["oppvekst", "kultur"]),
        ("a c", ["oppvekst", "kultur"]),
        ("a) og c)", ["oppvekst", "kultur"]),
        ("helse og omsorg, kultur", ["helse", "kultur"]),
        ("Helse og omsorg og kultur", ["helse", "kultur"]),
        ("kultur og helse og omsorg", ["helse", "kultur"]),
        ("helse og omsorg", ["helse"]),
        ("Plan og bygg", ["plan_bygg"]),
        ("plan og bygg, planlegging og økonomi", ["plan_bygg", "planlegging"]),
        ("kultur / teknisk", ["kultur", "teknisk"]),
        ("kultur/teknisk", ["kultur", "teknisk"]),
        ("kultur + teknisk", ["kultur", "teknisk"]),
        ("kultur eller teknisk", ["kultur", "teknisk"]),
        ("kultur\nteknisk", ["kultur", "teknisk"]),
        ("- kultur\n- teknisk\n", ["kultur", "teknisk"]),
        ("kultur; teknisk", ["kultur", "teknisk"]),
        ("helse and culture", ["helse", "kultur"]),
        ("helse kultur", ["helse", "kultur"]),
        ("omsorg og kultur", ["helse", "kultur"]),
        ("barnehage og skole", ["oppvekst"]),
        ("5, 3, 3", ["kultur", "plan_bygg"]),
        ("2", ["helse"]),
        ("b", ["helse"]),
        ("8", ["ingen"]),
        ("Ingen av disse", ["ingen"]),
        ("3 kultur, 5", ["kultur", "plan_bygg"]),
        ("3 - kultur, 2 - helse og omsorg", ["helse", "kultur"]),
        ("1-3", ["oppvekst", "helse", "kultur"]),
        ("2-4, 7", ["helse", "kultur", "teknisk", "admin"]),
    ],
)
def test_multi_choice_reads(text: str, expected: list[str]) -> None:
    assert accepted(read_answer(MULTI, text)) == expected


PLAN_AMBIGUOUS = Rejected(RejectReason.AMBIGUOUS, None, ("plan_bygg", "planlegging"))


@pytest.mark.parametrize(
    ("item", "text", "reading"),
    [
        (MULTI_3, "1, 2, 3, 4", Rejected(RejectReason.TOO_MANY, 3)),
        (MULTI_3, "a b c d", Rejected(RejectReason.TOO_MANY, 3)),
        (MULTI_3, "1-5", Rejected(RejectReason.TOO_MANY, 3)),
        (MULTI, "1, 8", Rejected(RejectReason.EXCLUSIVE, None, ("ingen",))),
        (MULTI, "kultur og ingen av disse", Rejected(RejectReason.EXCLUSIVE, None, ("ingen",))),
        (MULTI, "9", Rejected(RejectReason.UNKNOWN_OPTION, 8)),
        (MULTI, "1, 9", Rejected(RejectReason.UNKNOWN_OPTION, 8)),
        (MULTI, "kultur, xyz", Rejected(RejectReason.UNKNOWN_OPTION, 8)),
        (MULTI, "ikke kultur", Rejected(RejectReason.UNKNOWN_OPTION, 8)),
        (MULTI, "3-1", Rejected(RejectReason.UNKNOWN_OPTION, 8)),
        (MULTI, "og", Rejected(RejectReason.UNKNOWN_OPTION, 8)),
        (MULTI, ",;", Rejected(RejectReason.EMPTY)),
        (MULTI, "plan", PLAN_AMBIGUOUS),
        (MULTI, "kultur, plan", PLAN_AMBIGUOUS),
        (MULTI, "3 helse", Rejected(RejectReason.AMBIGUOUS, None, ("helse", "kultur"))),
    ],
)
def test_multi_choice_rejects(item: Item, text: str, reading: Rejected) -> None:
    assert read_answer(item, text) == reading


def test_multi_choice_within_max_is_accepted() -> None:
    assert accepted(read_answer(MULTI_3, "1, 2, 3")) == ["oppvekst", "helse", "kultur"]


_SEPARATORS = st.sampled_from((", ", ",", " ", " og ", " and ", "/", "; ", " + ", "\n", " eller "))
_NOT_EXCLUSIVE = [i for i, option in enumerate(OPTIONS) if not option.exclusive]


@given(st.lists(st.sampled_from(_NOT_EXCLUSIVE), min_size=1, max_size=7), _SEPARATORS)
def test_multi_choice_any_numbers(indices: list[int], separator: str) -> None:
    text = separator.join(str(i + 1) for i in indices)
    assert accepted(read_answer(MULTI, text)) == [IDS[i] for i in sorted(set(indices))]


@given(
    st.lists(st.sampled_from(_NOT_EXCLUSIVE), min_size=1, max_size=4),
    st.sampled_from((", ", " og ", "\n", "; ", " / ")),
    st.sampled_from(("nb", "nn", "en")),
)
def test_multi_choice_any_labels(indices: list[int], separator: str, lang: str) -> None:
    text = separator.join(OPTIONS[i].label.get(lang) for i in indices)  # type: ignore[arg-type]
    assert accepted(read_answer(MULTI, text)) == [IDS[i] for i in sorted(set(indices))]


@given(
    st.lists(st.integers(min_value=0, max_value=len(OPTIONS) + 2), min_size=1, max_size=6),
    st.sampled_from((", ", ",", " ", " og ", " and ", "; ", ";")),
    st.sampled_from((MULTI, MULTI_3)),
)
def test_multi_choice_number_lists_read_like_numbered_options(
    numbers: list[int], separator: str, item: Item
) -> None:
    # Out of range, exclusive and too many included: a bare list reads like "nr 1, nr 3".
    plain = separator.join(str(number) for number in numbers)
    numbered = ", ".join(f"nr {number}" for number in numbers)
    assert read_answer(item, plain) == read_answer(item, numbered)


def test_multi_choice_label_that_looks_like_a_number_list() -> None:
    options = (Option("both", Text("1 og 2")), Option("b", Text("B")), Option("c", Text("C")))
    item = make(ItemType.MULTI, options=options)
    assert accepted(read_answer(item, "1 og 2")) == ["both"]
    assert accepted(read_answer(item, "1, 2")) == ["both", "b"]
    assert accepted(read_answer(item, "2 og 3")) == ["b", "c"]


# --- scales ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "text", "expected"),
    [
        (SCALE_6, "5", 5),
        (SCALE_6, "5.", 5),
        (SCALE_6, "5 av 6", 5),
        (SCALE_6, "5/6", 5),
        (SCALE_6, "5 / 6", 5),
        (SCALE_6, "5 out of 6", 5),
        (SCALE_6, "5 (fremmet)", 5),
        (SCALE_6, "6 - fremmet i stor grad", 6),
        (SCALE_6, "fem", 5),
        (SCALE_6, "Seks", 6),
        (SCALE_6, "fem av seks", 5),
        (SCALE_6, "femmer", 5),
        (SCALE_6, "ein", 1),
        (SCALE_6, "Fremmet i stor grad", 6),
        (SCALE_6, "fremma i stor grad", 6),
        (SCALE_6, "Promoted a lot", 6),
        (SCALE_6, "hemmet", 1),
        (SCALE_6, "fremmet i", 6),
        (SCALE_AGREE, "helt enig", 4),
        (SCALE_AGREE, "Helt uenig", 1),
        (SCALE_AGREE, "delvis enig", 3),
        (SCALE_AGREE, "helt e", 4),
        (SCALE_AGREE, "4 helt enig", 4),
        (SCALE_AGREE, "4 - Helt enig", 4),
        # specials
        (SCALE_6, "vet ikke", DONT_KNOW),
        (SCALE_6, "Veit ikkje", DONT_KNOW),
        (SCALE_6, "vet ikkje", DONT_KNOW),
        (SCALE_6, "veit ikke", DONT_KNOW),
        (SCALE_6, "usikker", DONT_KNOW),
        (SCALE_6, "don't know", DONT_KNOW),
        (SCALE_6, "Don\u2019t know", DONT_KNOW),
        (SCALE_6, "dont know", DONT_KNOW),
        (SCALE_6, "not sure", DONT_KNOW),
        (SCALE_6, "?", DONT_KNOW),
        (SCALE_6, "??", DONT_KNOW),
        (SCALE_6, "vet ikke helt", DONT_KNOW),
        (SCALE_6, "ikke relevant", NOT_RELEVANT),
        (SCALE_6, "ikkje relevant", NOT_RELEVANT),
        (SCALE_6, "ikke aktuelt", NOT_RELEVANT),
        (SCALE_6, "ikkje aktuelt", NOT_RELEVANT),
        (SCALE_6, "not relevant", NOT_RELEVANT),
        (SCALE_6, "N/A", NOT_RELEVANT),
        (SCALE_6, "irrelevant", NOT_RELEVANT),
        (SCALE_6, "Ikke relevant for oss.", NOT_RELEVANT),
    ],
)
def test_scale_reads(item: Item, text: str, expected: int | str) -> None:
    assert accepted(read_answer(item, text)) == expected


@pytest.mark.parametrize(
    ("words", "value"),
    [
        (("en", "ein", "ei", "ett", "eitt", "én", "one"), 1),
        (("to", "two"), 2),
        (("tre", "three"), 3),
        (("fire", "four"), 4),
        (("fem", "five"), 5),
        (("seks", "six"), 6),
        (("sju", "syv", "seven"), 7),
        (("åtte", "eight"), 8),
        (("ni", "nine"), 9),
        (("ti", "ten"), 10),
    ],
)
def test_scale_number_words(words: tuple[str, ...], value: int) -> None:
    for word in words:
        assert accepted(read_answer(SCALE_10, word)) == value, word
        assert accepted(read_answer(SCALE_10, word.capitalize() + ".")) == value, word


@given(st.integers(min_value=1, max_value=10))
def test_scale_every_point_by_digits(point: int) -> None:
    assert accepted(read_answer(SCALE_10, str(point))) == point
    assert accepted(read_answer(SCALE_10, f"{point} av 10")) == point


@pytest.mark.parametrize(
    ("item", "text", "reading"),
    [
        (SCALE_6, "7", Rejected(RejectReason.OUT_OF_RANGE, 6)),
        (SCALE_6, "0", Rejected(RejectReason.OUT_OF_RANGE, 6)),
        (SCALE_6, "-1", Rejected(RejectReason.OUT_OF_RANGE, 6)),
        (SCALE_6, "sju", Rejected(RejectReason.OUT_OF_RANGE, 6)),
        (SCALE_6, "9" * 40, Rejected(RejectReason.OUT_OF_RANGE, 6)),
        (SCALE_6, "5 av 10", Rejected(RejectReason.OUT_OF_RANGE, 6)),
        (SCALE_6, "4,5", Rejected(RejectReason.NOT_A_NUMBER)),
        (SCALE_6, "kanskje", Rejected(RejectReason.NOT_A_NUMBER)),
        (SCALE_6, "xx", Rejected(RejectReason.NOT_A_NUMBER)),
        (SCALE_6, "4 eller 5", Rejected(RejectReason.AMBIGUOUS, None, ("4", "5"))),
        (SCALE_6, "6 hemmet i stor grad", Rejected(RejectReason.AMBIGUOUS, None, ("1", "6"))),
        (SCALE_AGREE, "delvis", Rejected(RejectReason.AMBIGUOUS, None, ("2", "3"))),
        (SCALE_AGREE, "3 helt enig", Rejected(RejectReason.AMBIGUOUS, None, ("3", "4"))),
        (SCALE_AGREE, "ikke relevant", Rejected(RejectReason.NOT_OFFERED)),
        (SCALE_AGREE, "n/a", Rejected(RejectReason.NOT_OFFERED)),
        (SCALE_PLAIN, "vet ikke", Rejected(RejectReason.NOT_OFFERED)),
        (SCALE_PLAIN, "?", Rejected(RejectReason.NOT_OFFERED)),
        (SCALE_PLAIN, "ikkje aktuelt", Rejected(RejectReason.NOT_OFFERED)),
    ],
)
def test_scale_rejects(item: Item, text: str, reading: Rejected) -> None:
    assert read_answer(item, text) == reading


def test_scale_item_without_scale_is_not_a_number() -> None:
    broken = make(ItemType.SCALE)
    assert rejected(read_answer(broken, "3")).reason is RejectReason.NOT_A_NUMBER


# --- yes / no -------------------------------------------------------------------------------

_YES = (
    "ja", "Ja!", "jo", "joda", "jada", "japp", "jepp", "javisst", "ja takk", "Ja, det har vi",
    "det har vi", "det har me", "yes", "Yes.", "yep", "y", "j", "ok", "okei", "stemmer",
    "riktig", "absolutt", "selvfølgelig", "sjølvsagt", "Ja, vi har innført dette i fjor",
    "Jo, det gjør vi", "Ja, men ikke i alle enheter", "1", "1)",
)  # fmt: skip
_NO = (
    "nei", "Nei.", "neida", "nei takk", "nope", "no", "No, we have not", "n", "ikke", "ikkje",
    "har ikke", "har ikkje", "ingen", "aldri", "never", "Nei, ikke ennå", "det har vi ikke",
    "Ikke ennå", "absolutt ikke", "2",
)  # fmt: skip
_DONT_KNOW = (
    "vet ikke", "veit ikkje", "vet ikkje", "Veit ikke", "usikker", "ikke sikker", "don't know",
    "dont know", "not sure", "v", "V", "3", "?",
)  # fmt: skip
_NEITHER = (
    "kanskje", "Kanskje?", "maybe", "ja og nei", "ja/nei", "nei eller ja", "jein", "4", "0",
    "ja ikke", "ja, kanskje", "no har vi det", "ok vi får se", "ikke relevant", "n/a",
    "y tho", "x", "😀", "Vi vurderer det",
)  # fmt: skip


@pytest.mark.parametrize("text", _YES)
def test_yes(text: str) -> None:
    assert accepted(read_answer(YESNO, text)) == YES
    assert accepted(read_answer(YESNO_NO_DK, text)) == YES


@pytest.mark.parametrize("text", _NO)
def test_no(text: str) -> None:
    assert accepted(read_answer(YESNO, text)) == NO
    assert accepted(read_answer(YESNO_NO_DK, text)) == NO


@pytest.mark.parametrize("text", [t for t in _DONT_KNOW if t != "3"])
def test_dont_know_only_when_offered(text: str) -> None:
    assert accepted(read_answer(YESNO, text)) == DONT_KNOW
    assert read_answer(YESNO_NO_DK, text) == Rejected(RejectReason.NOT_OFFERED)


def test_three_is_dont_know_only_when_it_is_listed() -> None:
    assert accepted(read_answer(YESNO, "3")) == DONT_KNOW
    # Without "vet ikke" the prompt lists two answers, so 3 is no answer at all.
    assert read_answer(YESNO_NO_DK, "3") == Rejected(RejectReason.NOT_YES_NO)


@pytest.mark.parametrize("text", _NEITHER)
def test_neither_yes_nor_no(text: str) -> None:
    assert read_answer(YESNO, text) == Rejected(RejectReason.NOT_YES_NO)


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40", 40),
        ("ca. 40", 40),
        ("Ca. 40 ansatte.", 40),
        ("ca 40", 40),
        ("cirka 40", 40),
        ("omtrent 40", 40),
        ("about 40", 40),
        ("~40", 40),
        ("~ 40", 40),
        ("40 ansatte", 40),
        ("40 stk", 40),
        ("40 stk.", 40),
        ("40 (inkludert vikarer)", 40),
        ("1 200", 1200),
        ("1\u00a0200", 1200),
        ("1200", 1200),
        ("12 000 innbyggere", 12000),
        ("0", 0),
        ("fem", 5),
        ("ca fem", 5),
        ("ti", 10),
        ("ein", 1),
        ("seven", 7),
        ("ingen", 0),
        ("Null", 0),
    ],
)
def test_number_reads(text: str, expected: int) -> None:
    assert accepted(read_answer(NUMBER, text)) == expected


@pytest.mark.parametrize(
    ("item", "text", "reading"),
    [
        (NUMBER, "1.200", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "40,5", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "40.5", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "40-50", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "40 - 50", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "40\u201350", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "40 til 50", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "mellom 40 og 50", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "40 tusen", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "40k", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "fem tusen", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "mange", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "vet ikke", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "ca.", Rejected(RejectReason.NOT_A_NUMBER)),
        (NUMBER, "-5", Rejected(RejectReason.OUT_OF_RANGE, 0)),
        (NUMBER, "100001", Rejected(RejectReason.OUT_OF_RANGE, 100_000)),
        (NUMBER, "9" * 40, Rejected(RejectReason.OUT_OF_RANGE, 100_000)),
        (NUMBER_BOUNDED, "0", Rejected(RejectReason.OUT_OF_RANGE, 1)),
        (NUMBER_BOUNDED, "ingen", Rejected(RejectReason.OUT_OF_RANGE, 1)),
        (NUMBER_BOUNDED, "501", Rejected(RejectReason.OUT_OF_RANGE, 500)),
        (NUMBER_FREE, "9" * 40, Rejected(RejectReason.NOT_A_NUMBER)),
    ],
)
def test_number_rejects(item: Item, text: str, reading: Rejected) -> None:
    assert read_answer(item, text) == reading


@given(st.integers(min_value=1, max_value=500))
def test_number_bounds_are_inclusive(value: int) -> None:
    assert accepted(read_answer(NUMBER_BOUNDED, str(value))) == value


@given(st.integers(min_value=1000, max_value=999_999))
def test_number_with_thousands_space(value: int) -> None:
    spaced = f"{value:,}".replace(",", " ")
    assert accepted(read_answer(NUMBER_FREE, spaced)) == value


def test_negative_numbers_are_read_when_allowed() -> None:
    assert accepted(read_answer(NUMBER_FREE, "-5")) == -5


# --- free text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Vi har   innført  Ø-ordning. \n", "Vi har   innført  Ø-ordning."),
        ("Linje 1\nLinje 2", "Linje 1\nLinje 2"),
        ("?", "?"),
        ("STOPP", "STOPP"),
    ],
)
def test_text_is_kept_as_written(text: str, expected: str) -> None:
    assert accepted(read_answer(TEXT, text)) == expected


def test_text_length_limits() -> None:
    assert accepted(read_answer(TEXT, "x" * DEFAULT_MAX_LENGTH)) == "x" * DEFAULT_MAX_LENGTH
    too_long = read_answer(TEXT, "x" * (DEFAULT_MAX_LENGTH + 1))
    assert too_long == Rejected(RejectReason.TOO_LONG, DEFAULT_MAX_LENGTH)
    assert accepted(read_answer(TEXT_SHORT, "  1234567890  ")) == "1234567890"
    assert read_answer(TEXT_SHORT, "12345678901") == Rejected(RejectReason.TOO_LONG, 10)


# --- grids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "text", "expected"),
    [
        (GRID_SCALE, "5", 5),
        (GRID_SCALE, "5 av 6", 5),
        (GRID_SCALE, "fremmet i stor grad", 6),
        (GRID_SCALE, "vet ikke", DONT_KNOW),
        (GRID_SCALE, "ikke relevant", NOT_RELEVANT),
        (GRID_YESNO, "ja", YES),
        (GRID_YESNO, "Nei, ikke ennå", NO),
        (GRID_YESNO, "veit ikkje", DONT_KNOW),
        (GRID_YESNO, "3", DONT_KNOW),
    ],
)
def test_read_row(item: Item, text: str, expected: AnswerValue) -> None:
    assert accepted(read_row(item, text)) == expected


@pytest.mark.parametrize(
    ("item", "text", "reason"),
    [
        (GRID_SCALE, "7", RejectReason.OUT_OF_RANGE),
        (GRID_SCALE, "kanskje", RejectReason.NOT_A_NUMBER),
        (GRID_YESNO, "kanskje", RejectReason.NOT_YES_NO),
        (GRID_YESNO_NO_DK, "vet ikke", RejectReason.NOT_OFFERED),
        (make(ItemType.GRID, rows=ROWS), "4", RejectReason.NOT_A_NUMBER),
    ],
)
def test_read_row_rejects(item: Item, text: str, reason: RejectReason) -> None:
    assert rejected(read_row(item, text)).reason is reason


@pytest.mark.parametrize(
    ("item", "text", "expected"),
    [
        (GRID_SCALE, "4 5 3 2 6 1", [4, 5, 3, 2, 6, 1]),
        (GRID_SCALE, "4,5,3,2,6,1", [4, 5, 3, 2, 6, 1]),
        (GRID_SCALE, "4, 5, 3, 2, 6, 1.", [4, 5, 3, 2, 6, 1]),
        (GRID_SCALE, "4;5;3;2;6;1", [4, 5, 3, 2, 6, 1]),
        (GRID_SCALE, "453261", [4, 5, 3, 2, 6, 1]),
        (GRID_SCALE, "fire fem tre to seks en", [4, 5, 3, 2, 6, 1]),
        (GRID_SCALE, "4 5 vet ikke 2 ? 1", [4, 5, DONT_KNOW, 2, DONT_KNOW, 1]),
        (GRID_SCALE, "4 5 ikke relevant 2 6 og 1", [4, 5, NOT_RELEVANT, 2, 6, 1]),
        (GRID_SCALE, "hemmet i stor grad 2 3 4 5 fremmet i stor grad", [1, 2, 3, 4, 5, 6]),
        (GRID_YESNO, "ja nei ja vet ikke", [YES, NO, YES, DONT_KNOW]),
        (GRID_YESNO, "j n j v", [YES, NO, YES, DONT_KNOW]),
        (GRID_YESNO, "Ja, nei, ja, nei.", [YES, NO, YES, NO]),
        (GRID_YESNO, "ja nei veit ikkje jo", [YES, NO, DONT_KNOW, YES]),
        (GRID_YESNO, "1 2 1 3", [YES, NO, YES, DONT_KNOW]),
        (GRID_YESNO, "1213", [YES, NO, YES, DONT_KNOW]),
        (GRID_TEN, "10 9", [10, 9]),
    ],
)
def test_grid_line_reads(item: Item, text: str, expected: list[AnswerValue]) -> None:
    readings = read_grid_line(item, text)
    assert readings is not None
    assert [accepted(reading) for reading in readings] == expected


_ROW_VALUES = {
    GRID_SCALE: ("1", "6", "7", "0", "fem", "vet ikke", "ikke relevant", "?", "hemmet i stor grad"),
    GRID_YESNO: ("ja", "nei", "j", "n", "v", "vet ikke", "1", "2", "3", "4", "?", "ok", "nope"),
    GRID_YESNO_NO_DK: ("ja", "nei", "v", "3", "veit ikkje", "?", "jo"),
}


@given(st.data(), st.sampled_from(tuple(_ROW_VALUES)), st.sampled_from((" ", ", ", ";", " og ")))
def test_grid_line_reads_like_its_rows(data: st.DataObject, item: Item, separator: str) -> None:
    values = data.draw(st.lists(st.sampled_from(_ROW_VALUES[item]), min_size=len(item.rows),
                                max_size=len(item.rows)))  # fmt: skip
    line = separator.join(value.upper() if len(value) > 2 else value for value in values)
    assert read_grid_line(item, line) == [read_row(item, value) for value in values]


def test_grid_line_keeps_bad_values_in_place() -> None:
    readings = read_grid_line(GRID_SCALE, "4 5 7 2 6 1")
    assert readings is not None
    assert readings[2] == Rejected(RejectReason.OUT_OF_RANGE, 6)
    assert [r for i, r in enumerate(readings) if i != 2] == [Accepted(v) for v in (4, 5, 2, 6, 1)]
    no_dk = read_grid_line(GRID_YESNO_NO_DK, "j n j v")
    assert no_dk is not None
    assert no_dk[3] == Rejected(RejectReason.NOT_OFFERED)
    assert no_dk[:3] == [Accepted(YES), Accepted(NO), Accepted(YES)]


@pytest.mark.parametrize(
    ("item", "text", "expected"),
    [
        (GRID_SCALE, "4", [4]),
        (GRID_SCALE, "4 5", [4, 5]),
        (GRID_SCALE, "4 4 4", [4, 4, 4]),
        (GRID_SCALE, "4,5", [4, 5]),
        (GRID_SCALE, "fem og seks", [5, 6]),
        (GRID_SCALE, "vet ikke 3 ?", [DONT_KNOW, 3, DONT_KNOW]),
        (GRID_SCALE, "ikke relevant 2", [NOT_RELEVANT, 2]),
        (GRID_SCALE, "4 5 3 2 6 1", [4, 5, 3, 2, 6, 1]),
        (GRID_YESNO, "ja nei", [YES, NO]),
        (GRID_YESNO, "j n v", [YES, NO, DONT_KNOW]),
        (GRID_YESNO, "nei, nei", [NO, NO]),
        (GRID_YESNO, "vet ikke ja", [DONT_KNOW, YES]),
        (GRID_YESNO, "1 2", [YES, NO]),
    ],
)
def test_grid_values_read_the_first_rows(item: Item, text: str,
                                         expected: list[AnswerValue]) -> None:
    """A chat asks a grid a row at a time: plain values answer that row and the next ones."""
    readings = read_grid_values(item, text)
    assert readings is not None
    assert [accepted(reading) for reading in readings] == expected


@pytest.mark.parametrize(
    ("item", "text"),
    [
        (GRID_SCALE, "4 fremmet i stor grad"),  # a value and its label are one answer
        (GRID_SCALE, "hemmet i stor grad 2"),
        (GRID_SCALE, "5 av 6"),
        (GRID_SCALE, "4 5 3 2 6 1 2"),  # more values than rows
        (GRID_SCALE, "a 4, b 5"),
        (GRID_SCALE, "hei på deg"),
        (GRID_SCALE, ""),
        (GRID_YESNO, "ja, det har vi"),
        (GRID_YESNO, "ja takk"),
        (GRID_YESNO, "ja nei ja nei ja"),
        (SINGLE, "1 2"),
    ],
)
def test_grid_values_not_plain_values(item: Item, text: str) -> None:
    assert read_grid_values(item, text) is None


def test_grid_values_never_split_digits() -> None:
    """`45` is one value where the number of rows to answer is not known: out of range."""
    assert read_grid_values(GRID_SCALE, "45") == [Rejected(RejectReason.OUT_OF_RANGE, 6)]
    readings = read_grid_line(GRID_SCALE, "453261")
    assert readings is not None
    assert len(readings) == 6


@pytest.mark.parametrize(
    ("item", "text"),
    [
        (GRID_SCALE, "4 5 3"),
        (GRID_SCALE, "4 5 3 2 6 1 2"),
        (GRID_SCALE, "45326"),
        (GRID_SCALE, "hei på deg"),
        (GRID_SCALE, "4 5 3 2 6 kanskje"),
        (GRID_SCALE, "a: 4, b: 5"),
        (GRID_SCALE, "1) 4 2) 5 3) 3 4) 2 5) 6 6) 1"),
        (GRID_SCALE, ""),
        (GRID_SCALE, "..."),
        (GRID_YESNO, "ja nei ja"),
        (GRID_YESNO, "ja nei kanskje ja"),
        (GRID_TEN, "109"),
        (SINGLE, "1 2 3"),
    ],
)
def test_grid_line_not_a_grid_line(item: Item, text: str) -> None:
    assert read_grid_line(item, text) is None


@pytest.mark.parametrize(
    ("item", "text", "expected"),
    [
        (GRID_SCALE, "a 3, b 4, c 2", [(0, "3"), (1, "4"), (2, "2")]),
        (GRID_SCALE, "a3 b4 c2", [(0, "3"), (1, "4"), (2, "2")]),
        (GRID_SCALE, "a: 3, b: 4", [(0, "3"), (1, "4")]),
        (GRID_SCALE, "a) 3 b) 4 c) vet ikke", [(0, "3"), (1, "4"), (2, "vet ikke")]),
        (GRID_SCALE, "A=1; B=2", [(0, "1"), (1, "2")]),
        (GRID_SCALE, "a 3 og b 4", [(0, "3"), (1, "4")]),
        (GRID_SCALE, "c 2, a 5", [(2, "2"), (0, "5")]),
        (GRID_SCALE, "a - 3, b\u00a04", [(0, "3"), (1, "4")]),
        (GRID_SCALE, "f 6", [(5, "6")]),
        (GRID_SCALE, "a 9, b 4", [(0, "9"), (1, "4")]),  # the value is read (and refused) later
        (GRID_YESNO, "a ja b nei c v d j", [(0, "ja"), (1, "nei"), (2, "v"), (3, "j")]),
        (GRID_YESNO, "a: veit ikkje, b: jo", [(0, "veit ikkje"), (1, "jo")]),
    ],
)
def test_lettered_rows_on_one_line(item: Item, text: str,
                                   expected: list[tuple[int, str]]) -> None:
    """Rows named by their letters on one line: each letter's answer, in the order written."""
    assert read_lettered_rows(item, text) == expected


@pytest.mark.parametrize(
    ("item", "text"),
    [
        (GRID_SCALE, "4 5 3 2 6 1"),
        (GRID_SCALE, "x a 3"),  # something before the first row
        (GRID_SCALE, "a 3, a 4"),  # a row named twice
        (GRID_SCALE, "a 3, b"),  # a row without its answer
        (GRID_SCALE, "a"),
        (GRID_SCALE, "a og c"),
        (GRID_SCALE, "g 3"),  # the grid has six rows
        (GRID_SCALE, "\u212a 3"),  # the Kelvin sign is not a k
        (GRID_YESNO, "ja nei ja nei"),
        (GRID_YESNO, "j n j v"),  # answers, not rows: the grid has four rows
        (GRID_SCALE, ""),
        (SINGLE, "a 3, b 4"),
    ],
)
def test_not_lettered_rows(item: Item, text: str) -> None:
    assert read_lettered_rows(item, text) is None


def test_grid_answer_as_a_whole_is_not_read() -> None:
    assert rejected(read_answer(GRID_SCALE, "4 5 3 2 6 1")).reason is RejectReason.UNKNOWN_OPTION
    assert rejected(read_answer(GRID_SCALE, " ")).reason is RejectReason.EMPTY


# --- robustness -----------------------------------------------------------------------------


def _read_everything(text: str) -> None:
    for item in ALL_ITEMS:
        reading = read_answer(item, text)
        assert isinstance(reading, (Accepted, Rejected))
    for grid in GRIDS:
        assert isinstance(read_row(grid, text), (Accepted, Rejected))
        lines = read_grid_line(grid, text)
        assert lines is None or len(lines) == len(grid.rows)
        values = read_grid_values(grid, text)
        assert values is None or 1 <= len(values) <= len(grid.rows)
        lettered = read_lettered_rows(grid, text)
        assert lettered is None or all(0 <= i < len(grid.rows) and v for i, v in lettered)


@given(st.text())
def test_never_raises_on_any_text(text: str) -> None:
    _read_everything(text)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30), st.sampled_from(ALL_ITEMS))
def test_readings_are_consistent(text: str, item: Item) -> None:
    reading = read_answer(item, text)
    assert read_answer(item, text) == reading  # pure: the same text gives the same reading
    if isinstance(reading, Rejected):
        assert reading.reason in set(RejectReason)
    elif item.type is ItemType.MULTI:
        assert isinstance(reading.value, list)
        assert reading.value == sorted(set(reading.value), key=IDS.index)


_LONG = 20_000
_PATHOLOGICAL = [
    "9" * _LONG,
    "1 " * (_LONG // 2),
    "1," * (_LONG // 2),
    "ja " * (_LONG // 3),
    "og " * (_LONG // 3),
    "helse og " * (_LONG // 9),
    "a" * _LONG,
    "? " * (_LONG // 2),
    "\x00\x1f\u200b😀" * (_LONG // 4),
    "a " * (_LONG // 2),
    "a 1 b 2 " * (_LONG // 8),
    "é" * _LONG,
    "1 200 " * (_LONG // 6),
    "ca. " * (_LONG // 4),
    "-" * _LONG,
    " " * (_LONG - 1) + "5",
]


def _assert_fast(text: str) -> None:
    for item in ALL_ITEMS:
        start = time.perf_counter()
        read_answer(item, text)
        assert time.perf_counter() - start < 0.5, item.id
    for grid in GRIDS:
        start = time.perf_counter()
        read_row(grid, text)
        read_grid_line(grid, text)
        read_lettered_rows(grid, text)
        assert time.perf_counter() - start < 0.5, grid.id


@pytest.mark.parametrize("text", _PATHOLOGICAL, ids=range(len(_PATHOLOGICAL)))
def test_huge_texts_are_fast(text: str) -> None:
    assert len(text) >= _LONG - 10
    _assert_fast(text)


@settings(max_examples=25)  # each example reads 20,000 characters ~20 times
@given(st.text(min_size=1, max_size=40))
def test_huge_random_texts_are_fast(seed: str) -> None:
    text = (seed * (_LONG // len(seed) + 1))[:_LONG]
    _assert_fast(text)


def test_huge_text_is_too_long_not_slow() -> None:
    text = "ord " * 5000
    start = time.perf_counter()
    reading = read_answer(TEXT, text)
    assert time.perf_counter() - start < 0.5
    assert reading == Rejected(RejectReason.TOO_LONG, DEFAULT_MAX_LENGTH)


def test_long_answer_is_read_from_its_start() -> None:
    # Only the first MAX_INPUT characters are looked at; a number at the start still counts.
    assert accepted(read_answer(NUMBER_FREE, "40 " + "x" * 20_000)) == 40


def test_a_modifier_word_does_not_pick_an_option_of_its_own() -> None:
    """'økt effektivitet' names efficiency only, though 'Økt trivsel …' also starts with 'økt'."""
    from flows.loader import load_shipped

    item = load_shipped("virksomhetsleder-2020").item("effekter")
    assert read_answer(item, "bedre kvalitet, økt effektivitet") == Accepted(
        ["kvalitet", "effektivitet"])
    assert read_answer(item, "økt trivsel") == Accepted(["trivsel"])
