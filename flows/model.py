"""The questionnaire model: what a questionnaire file means once it has been validated.

Everything here is an immutable value. `flows.loader` builds these from YAML and guarantees
the invariants that the engine relies on (unique ids, conditions that only look backwards,
options that exist), so the engine never has to defend against a bad definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Lang = Literal["nb", "nn", "en"]
LANGS: tuple[Lang, ...] = ("nb", "nn", "en")

#: A recorded value. Single choice: option id; multiple choice: list of option ids;
#: scale and number: int; yes/no: "yes" | "no" | "dont_know"; text: str;
#: scale specials: "dont_know" | "not_relevant".
AnswerValue = str | int | list[str]

DONT_KNOW = "dont_know"
NOT_RELEVANT = "not_relevant"
YES = "yes"
NO = "no"


@dataclass(frozen=True, slots=True)
class Text:
    """A respondent-facing text in bokmål, with nynorsk and English where written."""

    nb: str
    nn: str | None = None
    en: str | None = None

    def get(self, lang: Lang) -> str:
        """The text in `lang`, falling back to bokmål where that language is missing."""
        if lang == "nn" and self.nn:
            return self.nn
        if lang == "en" and self.en:
            return self.en
        return self.nb

    def variants(self) -> tuple[str, ...]:
        """Every written variant, for matching a reply in any language."""
        return tuple(t for t in (self.nb, self.nn, self.en) if t)


class ItemType(StrEnum):
    """The kinds of question a questionnaire can hold."""

    SINGLE = "single"
    MULTI = "multi"
    SCALE = "scale"
    YESNO = "yesno"
    NUMBER = "number"
    TEXT = "text"
    GRID = "grid"


@dataclass(frozen=True, slots=True)
class Option:
    """One answer alternative of a choice item."""

    id: str
    label: Text
    #: Extra words that select this option (e.g. "barnehage" for oppvekst), any language.
    synonyms: tuple[str, ...] = ()
    #: Chosen alone: "none of these" or "don't know" in a multiple choice.
    exclusive: bool = False


@dataclass(frozen=True, slots=True)
class Scale:
    """A numeric scale with labelled points and optional special answers."""

    min: int
    max: int
    #: Labels for some or all points, e.g. {1: "Hemmet i stor grad", 6: "Fremmet i stor grad"}.
    labels: tuple[tuple[int, Text], ...] = ()
    dont_know: bool = False
    not_relevant: bool = False

    def label(self, value: int) -> Text | None:
        """The label of one point, if it has one."""
        for point, text in self.labels:
            if point == value:
                return text
        return None


@dataclass(frozen=True, slots=True)
class Row:
    """One statement of a grid; stored as its own answer `item.row`."""

    id: str
    label: Text


# --- conditions -----------------------------------------------------------------------------


CompareOp = Literal["equals", "not_equals", "in", "includes", "gte", "lte", "answered"]


@dataclass(frozen=True, slots=True)
class Compare:
    """A test of one earlier answer. `answer_id` is an item id or `grid.row`.

    `op` is one of: equals, not_equals, in, includes (multiple choice contains),
    gte, lte, answered.
    """

    answer_id: str
    op: CompareOp
    value: tuple[str | int, ...]
    #: The item the answer belongs to (derived: `answer_id` without a grid row).
    item_id: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_id", self.answer_id.partition(".")[0])


@dataclass(frozen=True, slots=True)
class AllOf:
    """True when every part is true."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when at least one part is true."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """True when the part is false."""

    part: Condition


Condition = Compare | AllOf | AnyOf | Not


# --- items and pages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One question.

    Attributes:
        number: the 1-based position in the whole questionnaire, shown to respondents and
            used in replies (`4: ja`) and commands (`endre 4`). Stable for a questionnaire.
        page: the id of the page (section) the item belongs to.
    """

    id: str
    type: ItemType
    text: Text
    number: int
    page: str
    help: Text | None = None
    required: bool = False
    show_if: Condition | None = None
    options: tuple[Option, ...] = ()
    #: Multiple choice: at most this many choices (None: no limit).
    max_choices: int | None = None
    scale: Scale | None = None
    #: Yes/no (and yes/no grids): offer "don't know".
    dont_know: bool = False
    #: Number: bounds; text: max_length.
    min: int | None = None
    max: int | None = None
    max_length: int | None = None
    rows: tuple[Row, ...] = ()
    #: Grid: the kind of answer in each row ("scale" or "yesno").
    row_type: Literal["scale", "yesno"] = "scale"
    #: The answer ids (derived): the item id, or `item.row` for each grid row.
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        # Derived once: the engine asks for an item's answer ids many times per step.
        if self.type is ItemType.GRID:
            keys = tuple(f"{self.id}.{row.id}" for row in self.rows)
        else:
            keys = (self.id,)
        object.__setattr__(self, "keys", keys)

    def option(self, option_id: str) -> Option | None:
        """The option with this id, if any."""
        for option in self.options:
            if option.id == option_id:
                return option
        return None

    def answer_ids(self) -> tuple[str, ...]:
        """The keys under which this item's answers are stored (one per grid row)."""
        return self.keys


@dataclass(frozen=True, slots=True)
class Page:
    """A section: what an email asks in one message."""

    id: str
    title: Text
    intro: Text | None
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class Questionnaire:
    """A validated questionnaire.

    Attributes:
        revision: a digest of the definition; a session remembers it so that a changed file
            can be noticed.
    """

    id: str
    spec_version: int
    title: Text
    languages: tuple[Lang, ...]
    pages: tuple[Page, ...]
    intro: Text | None = None
    outro: Text | None = None
    revision: str = ""
    #: All items in order (derived from `pages`).
    items: tuple[Item, ...] = field(default=(), compare=False, repr=False)
    #: Items whose `show_if` is equal share a slot, so a condition is evaluated once per pass.
    condition_slots: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    #: Memo for values derived from this (immutable) questionnaire, such as rendered items.
    memo: dict[object, str] = field(default_factory=dict, compare=False, repr=False)
    _by_id: dict[str, Item] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Derived once: the engine looks items up on every step.
        object.__setattr__(self, "items", tuple(i for page in self.pages for i in page.items))
        unique: dict[Condition, int] = {}
        for item in self.items:
            self._by_id[item.id] = item
            if item.show_if is not None:
                self.condition_slots[item.id] = unique.setdefault(item.show_if, len(unique))

    def item(self, item_id: str) -> Item:
        """The item with this id (KeyError if none)."""
        return self._by_id[item_id]

    def find(self, item_id: str) -> Item | None:
        """The item with this id, or None."""
        return self._by_id.get(item_id)

    def by_number(self, number: int) -> Item | None:
        """The item shown as `number`, or None."""
        if 1 <= number <= len(self.items):
            return self.items[number - 1]
        return None

    def page(self, page_id: str) -> Page:
        """The page with this id (KeyError if none)."""
        for page in self.pages:
            if page.id == page_id:
                return page
        raise KeyError(page_id)
