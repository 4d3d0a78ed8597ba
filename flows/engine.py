"""The dialogue engine: one pure function from (questionnaire, session, inbound) to a step.

`advance` reads no clock, touches no database or network and draws no random numbers: the
time comes in as `now`, and the same arguments always give the same step. Email and chat
share every rule here; they differ only in how much is asked at once (a page by email, one
item in a chat, where a grid comes one row at a time, asked as `grid.row`, with buttons).

What it promises the respondent:
- every line of text is either used, or named back to them ("I could not match …"), or passed
  to the contact person as a question: nothing is silently dropped;
- it confirms what it understood and asks again only what is missing or invalid, with help;
- changing an earlier answer re-evaluates every `show_if` after it.

Caller errors (a session for another questionnaire, a naive `now`) raise `EngineError` and
change nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache

from flows.answers import (
    Accepted,
    Rejected,
    normalise,
    read_answer,
    read_grid_line,
    read_grid_values,
    read_lettered_rows,
    read_row,
)
from flows.commands import Command, CommandKind, looks_like_question, read_command
from flows.events import (
    AnswerRecorded,
    AnswerRemoved,
    Choice,
    Event,
    Inbound,
    InputRejected,
    ItemSkipped,
    OptOut,
    PageCompleted,
    Paused,
    Prompt,
    QueryRaised,
    QuestionnaireCompleted,
    Reminder,
    Reply,
    Resumed,
    Start,
    Step,
    Stopped,
)
from flows.model import (
    AllOf,
    AnswerValue,
    AnyOf,
    Compare,
    Condition,
    Item,
    ItemType,
    Lang,
    Not,
    Page,
    Questionnaire,
    Row,
)
from flows.render import (
    chat_choices,
    example_answer,
    render_grid_row,
    render_item,
    render_value,
    row_letter,
)
from flows.session import Channel, Session, Status
from flows.texts import phrase

#: Characters of one inbound message that are read; the rest is reported, not processed.
MAX_INPUT_CHARS = 20_000
#: Longest quotation of the respondent's own text in a reply to them.
_QUOTE_CHARS = 60

#: "4: ja", "4a) 3", "nr. 4 - ja": an item number (and grid row letter) before a separator.
_KEY = re.compile(
    r"^(?:(?:nr|spm|q)\.?\s{0,3})?(\d{1,3})\s{0,3}([a-z])?\s{0,3}([:).\-–—=])\s*(.*)$",
    re.IGNORECASE)
_ROW_KEY = re.compile(r"^([a-z])\s{0,3}([:).\-–—=])\s*(.*)$", re.IGNORECASE)
_BULLET = re.compile(r"^[-*•>]\s+")
_GREETINGS = frozenset({
    "hei", "hallo", "heisann", "hei hei", "god morgen", "god dag", "hi", "hello", "dear",
    "takk", "tusen takk", "mvh", "hilsen", "med vennlig hilsen", "vennlig hilsen", "helsing",
    "beste hilsen", "best regards", "regards", "thanks", "thank you", "hei igjen",
})


class EngineError(ValueError):
    """The caller asked for something impossible; the session is unchanged."""


Visibility = dict[str, bool | None]


# --- skip logic -----------------------------------------------------------------------------


def _compare(cond: Compare, value: AnswerValue) -> bool:
    values = cond.value
    if cond.op == "answered":
        return True
    if cond.op == "equals":
        return value == [values[0]] if isinstance(value, list) else value == values[0]
    if cond.op == "not_equals":
        return value != [values[0]] if isinstance(value, list) else value != values[0]
    if cond.op == "in":
        if isinstance(value, list):
            return any(v in values for v in value)
        return value in values
    if cond.op == "includes":
        return isinstance(value, list) and values[0] in value
    if isinstance(value, int) and isinstance(values[0], int):
        return value >= values[0] if cond.op == "gte" else value <= values[0]
    return False


def _evaluate(cond: Condition, answers: dict[str, AnswerValue], skipped: Collection[str],
              vis: Visibility) -> bool | None:
    """Three-valued: True, False, or None while an earlier answer it needs is still pending."""
    kind = type(cond)
    if kind is Compare:
        assert isinstance(cond, Compare)  # noqa: S101 - narrowing for the type checker
        head = cond.item_id
        if vis.get(head) is False or head in skipped:
            return False
        if cond.answer_id != head and cond.answer_id in skipped:
            return False  # a grid row skipped on its own in a chat
        value = answers.get(cond.answer_id)
        return None if value is None else _compare(cond, value)
    if kind is Not:
        assert isinstance(cond, Not)  # noqa: S101
        inner = _evaluate(cond.part, answers, skipped, vis)
        return None if inner is None else not inner
    assert isinstance(cond, AllOf | AnyOf)  # noqa: S101 - the Condition union is closed
    decisive = kind is AnyOf  # the part value that settles the whole: True for any, False for all
    unknown = False
    for part in cond.parts:
        result = _evaluate(part, answers, skipped, vis)
        if result is None:
            unknown = True
        elif result is decisive:
            return decisive
    return None if unknown else not decisive


def _is_done(item: Item, answers: dict[str, AnswerValue], skipped: Collection[str]) -> bool:
    """Answered or skipped; a grid when each row is (a chat may skip single rows)."""
    if item.type is not ItemType.GRID:
        return item.id in answers or item.id in skipped
    return item.id in skipped or all(a in answers or a in skipped for a in item.keys)


def _item_id(asked_id: str) -> str:
    """The item an asked id belongs to: itself, or `grid` for the row `grid.row`."""
    return asked_id.partition(".")[0]


def _row_index(item: Item, asked_id: str) -> int | None:
    """The position of the row `asked_id` names in its grid; None for a whole item."""
    if asked_id == item.id:
        return None
    try:
        return item.keys.index(asked_id)
    except ValueError:
        return None


def visibility(questionnaire: Questionnaire, answers: dict[str, AnswerValue],
               skipped: Collection[str],
               on_hidden: Callable[[Item], None] | None = None) -> Visibility:
    """Whether each item applies: True, False, or None (depends on a pending answer).

    `on_hidden` is called for each hidden item as the pass reaches it, so a caller can remove
    its answers before later conditions are evaluated; since conditions only look back, one
    ordered pass is enough.
    """
    vis: Visibility = {}
    evaluated: dict[int, bool | None] = {}
    slots = questionnaire.condition_slots
    for item in questionnaire.items:
        if item.show_if is None:
            vis[item.id] = True
            continue
        # Equal conditions name the same earlier answers, so their result is shared.
        slot = slots[item.id]
        if slot not in evaluated:
            evaluated[slot] = _evaluate(item.show_if, answers, skipped, vis)
        shown = vis[item.id] = evaluated[slot]
        if shown is False and on_hidden is not None:
            on_hidden(item)
    return vis


def progress(questionnaire: Questionnaire, session: Session) -> tuple[int, int]:
    """(items answered or skipped, items that apply) for "Du har svart på 12 av 31 spørsmål".

    An item applies unless its `show_if` is false given the answers so far; an item whose
    condition waits for an answer not yet given is counted, as it may still be asked. So the
    total is the most this respondent can still be asked, never a question that was ruled
    out: it falls when an answer rules questions out (answering "nei" to every row of a grid
    drops the follow-ups of "ja"), and rises only when the respondent changes an earlier
    answer so that questions apply again. `page_position` counts pages by the same rule.
    """
    vis = visibility(questionnaire, session.answers, session.skipped)
    applicable = [i for i in questionnaire.items if vis[i.id] is not False]
    done = sum(1 for i in applicable if _is_done(i, session.answers, session.skipped))
    return done, len(applicable)


def page_position(questionnaire: Questionnaire, page_id: str, vis: Visibility) -> tuple[int, int]:
    """(n, total) for the header "Del n av total" of page `page_id`.

    Only pages that apply are counted: a page applies when one of its items does (see
    `progress`: shown, or waiting for an answer not yet given). A page that skip logic hides
    is left out of both numbers, so the parts a respondent sees are numbered 1, 2, 3 … with
    no gap where a page was skipped, and the total falls as answers rule pages out ("Del 2
    av 8", then "Del 3 av 7") rather than promising parts that will never come.
    """
    applies = [p.id for p in questionnaire.pages
               if p.id == page_id or any(vis.get(i.id) is not False for i in p.items)]
    return applies.index(page_id) + 1, len(applies)


# --- reading a reply ------------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """The lines a reply gives for one item (or one grid row)."""

    item: Item
    lines: list[str] = field(default_factory=list)
    rows: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class _Segment:
    """Unnumbered lines that stand together in a reply, and the items they may answer.

    A grid answered over several lines (its rows by their letters, or under a line naming
    it) takes its place in the reply: the unnumbered lines before it answer the open items
    before the grid, and those after its lettered rows the items after it. An answer left
    out then never moves the answers that follow it to the wrong questions.
    """

    #: The number of the item these lines follow (0: the start of the reply).
    after: int = 0
    #: The number of the grid answered after them, if any.
    before: int | None = None
    lines: list[str] = field(default_factory=list)

    def admits(self, item: Item) -> bool:
        """Whether `item` lies between the parts of the reply around these lines."""
        return self.after < item.number and (self.before is None or item.number < self.before)


@dataclass(slots=True)
class _Placement:
    """Where the lines of one reply go, decided line by line by `_Run.read_content`."""

    #: The items the reply answers: those asked by the last prompt that still apply.
    asked: list[Item]
    asked_ids: frozenset[str]
    blocks: dict[str, _Block] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    #: The block that unnumbered lines continue (a multi-line answer), if any.
    current: _Block | None = None
    #: A grid row named with nothing after its letter (`b)`): the next line answers it.
    open_row: str | None = None
    #: The current block is a grid answered by row letters, so a line that names no row
    #: ends it rather than continuing the last row.
    lettered: bool = False
    segments: list[_Segment] = field(default_factory=lambda: [_Segment()])

    def enter(self, item: Item) -> _Block:
        """Make `item`'s block (created on first use) the one later lines continue."""
        if self.current is None and item.type is ItemType.GRID:
            segment = self.segments[-1]
            if segment.before is None and item.number > segment.after:
                segment.before = item.number
        block = self.blocks.get(item.id)
        if block is None:
            block = self.blocks[item.id] = _Block(item)
            self.order.append(item.id)
        self.current = block
        self.open_row = None
        self.lettered = False
        return block

    def enter_rows(self, grid: Item) -> _Block:
        """The block of `grid`, entered to take rows named by their letters."""
        if self.current is None or self.current.item is not grid:
            self.enter(grid)
        assert self.current is not None  # noqa: S101 - `enter` sets it
        self.lettered = True
        self.open_row = None
        return self.current

    def grid_ahead(self) -> Item | None:
        """The grid that lettered rows on the next line belong to, if any.

        The grid being answered, or else the first asked grid after the reply's position (the
        item being answered, or the item the current unnumbered lines follow).
        """
        current = self.current
        if current is not None and current.item.type is ItemType.GRID:
            return current.item
        position = current.item.number if current is not None else self.segments[-1].after
        return next((i for i in self.asked
                     if i.type is ItemType.GRID and i.number > position), None)

    def take_rows(self, grid: Item, text: str, *, whole: bool) -> bool:
        """Give `text` to `grid` as rows named by their letters (`a 3, b 4`) if it reads so.

        A single row without a separator (`a 3`) is taken only where the grid is being
        answered (`whole`); elsewhere a line needs two rows, as `a 3` alone could be
        something else.
        """
        entries = read_lettered_rows(grid, text)
        if entries is None or (len(entries) < 2 and not whole):
            return False
        block = self.enter_rows(grid)
        for index, value in entries:
            block.rows.setdefault(grid.rows[index].id, []).append(value)
        return True

    def add_plain(self, line: str) -> None:
        """A line that names no item or row: it continues the current answer or stands alone."""
        current = self.current
        if current is None:
            self.segments[-1].lines.append(line)
        elif self.open_row is not None:
            current.rows[self.open_row].append(line)
            self.open_row = None
        elif self.lettered:
            self.current = None
            self.lettered = False
            self.segments.append(_Segment(after=current.item.number, lines=[line]))
        else:
            current.lines.append(line)


def _marks_an_option(place: _Placement, item: Item | None, letter: str | None, sep: str,
                     rest: str, *, sole: bool) -> bool:
    """Whether a numbered line (`2)`, `2.`, `5) Teknisk`) answers the one question asked.

    In a chat, or an email page that asks one question, the respondent sees one numbered
    list: `2)` copies the marker of option 2, not the number of question 2. A colon still
    points to another question (`5: ja`), a line such as `3.` followed by the answer still
    names the question asked, and once the reply has numbered the question asked
    (`1) kommune`), the lines after it are read as on a page of several questions (`2) 2`).
    A free-text question lists no options, so there a number keeps naming a question.
    """
    if len(place.asked) != 1 or letter:
        return False
    only = place.asked[0]
    if only.type is ItemType.TEXT or only.id in place.blocks:
        return False
    if (item is None or item.id != only.id) and sep not in ":=":
        return True
    return not rest and sole


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 1] + "…"


_SALUTATIONS = frozenset({"hei", "hallo", "hi", "hello", "dear", "mvh", "hilsen", "helsing"})
_SIGN_OFFS = frozenset({"mvh", "hilsen", "med vennlig hilsen", "vennlig hilsen", "helsing",
                        "med venleg helsing", "venleg helsing", "beste hilsen", "best regards",
                        "regards", "kind regards"})
#: A sign-off followed by at most this many short lines: those lines are the signature.
_SIGNATURE_LINES = 4


_cached_normalise = lru_cache(maxsize=4096)(normalise)


def _normalised(line: str) -> str:
    """`normalise`, remembered for short lines: a reply's lines are looked at several times."""
    return _cached_normalise(line) if len(line) <= 200 else normalise(line)


def _drop_signature(lines: list[str]) -> list[str]:
    """Lines up to a closing sign-off ("Mvh" / "Med vennlig hilsen" and a name or two)."""
    for index, line in enumerate(lines):
        if _normalised(line) in _SIGN_OFFS:
            rest = [x for x in lines[index + 1:] if x.strip()]
            if len(rest) <= _SIGNATURE_LINES and all(len(x.split()) <= 6 for x in rest):
                return lines[:index]
    return lines


def _is_greeting(line: str) -> bool:
    """A greeting or sign-off line ("Hei!", "Mvh Kari"): not an answer, nothing to report."""
    words = _normalised(line)
    if words in _GREETINGS:
        return True
    parts = words.split()
    return 1 < len(parts) <= 3 and parts[0] in _SALUTATIONS


@dataclass(slots=True)
class _Run:
    """The working copy of one step; turned into a `Step` by `finish`."""

    q: Questionnaire
    before: Session
    status: Status
    channel: Channel
    lang: Lang
    answers: dict[str, AnswerValue]
    skipped: list[str]
    focus: list[str]
    asked: list[str]
    events: list[Event] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    show_help: set[str] = field(default_factory=set)
    rejected_items: set[str] = field(default_factory=set)
    touched: set[str] = field(default_factory=set)
    final_kind: str | None = None
    remind: bool = False
    welcome: bool = False
    #: `tilbake` went to an earlier row of the grid being asked.
    row_back: bool = False
    progress_note: bool = False
    #: Visibility cached until the next event or skip changes what it depends on.
    _vis: tuple[tuple[int, int], Visibility] | None = None
    initial_vis: Visibility = field(default_factory=dict)

    # -- helpers --

    def say(self, key: str, **values: object) -> None:
        self.notes.append(phrase(key, self.lang, **values))

    def vis(self) -> Visibility:
        key = (len(self.events), len(self.skipped))
        if self._vis is None or self._vis[0] != key:
            self._vis = (key, visibility(self.q, self.answers, self.skipped))
        return self._vis[1]

    def done(self, item: Item) -> bool:
        return _is_done(item, self.answers, self.skipped)

    def unit_done(self, item: Item, asked_id: str) -> bool:
        """Whether the item, or the one grid row `asked_id` names, is answered or skipped."""
        if asked_id == item.id:
            return self.done(item)
        return asked_id in self.answers or asked_id in self.skipped or item.id in self.skipped

    def units(self, item: Item) -> tuple[str, ...]:
        """What this channel asks of `item` at a time: a grid's rows in a chat, else the item."""
        if self.channel == "chat" and item.type is ItemType.GRID:
            return item.keys
        return (item.id,)

    def asked_row(self, item: Item) -> int | None:
        """The grid row of `item` the last prompt asked on its own, if it asked one."""
        prefix = item.id + "."
        for asked_id in self.asked:
            if asked_id.startswith(prefix):
                return _row_index(item, asked_id)
        return None

    def asked_items(self, vis: Visibility) -> list[Item]:
        """The items the last prompt asked that still apply (a grid once, however many of its
        rows were asked)."""
        items: dict[str, Item] = {}
        for asked_id in self.asked:
            item = self.q.find(_item_id(asked_id))
            if item is not None and vis.get(item.id):
                items.setdefault(item.id, item)
        return list(items.values())

    def record(self, item: Item, answer_id: str, value: AnswerValue) -> None:
        self.touched.add(item.id)
        self.touched.add(answer_id)
        if item.id in self.skipped:
            self.skipped.remove(item.id)
        if answer_id in self.skipped:
            self.skipped.remove(answer_id)
        previous = self.answers.get(answer_id)
        if previous == value:
            return
        self.answers[answer_id] = value
        self.events.append(AnswerRecorded(answer_id, value, changed=previous is not None))
        self.recorded.append(answer_id)

    def reject(self, item: Item | None, reason: str, text: str, *, label: str | None = None,
               **values: object) -> None:
        self.events.append(InputRejected(item.id if item else None, reason, text))
        if item is None:
            self.say("not_placed", text=_quote(text))
            return
        self.rejected_items.add(item.id)
        self.show_help.add(item.id)
        why = phrase(f"why_{reason}", self.lang, **values)
        self.say("not_understood", number=label or item.number, text=_quote(text), why=why)

    def unplaced(self, text: str) -> None:
        if looks_like_question(text):
            self.events.append(QueryRaised(text.strip()))
            self.say("query")
        else:
            self.reject(None, "not_placed", text)

    # -- reading answers --

    def read_block(self, block: _Block) -> None:
        item = block.item
        if item.type is ItemType.GRID:
            self.read_grid(block)
            return
        lines = [line for line in block.lines if line.strip()]
        if not lines:
            return
        if item.type is ItemType.TEXT or len(lines) == 1:
            whole = "\n".join(lines)
            self.apply(item, item.id, read_answer(item, whole), whole)
            return
        # A short answer followed by more lines: the first line is the answer when it reads
        # on its own, and the rest is named back rather than folded into it.
        first = read_answer(item, lines[0])
        if isinstance(first, Accepted):
            self.apply(item, item.id, first, lines[0])
            for extra in lines[1:]:
                self.unplaced(extra)
            return
        whole = " ".join(lines)
        self.apply(item, item.id, read_answer(item, whole), whole)

    def apply(self, item: Item, answer_id: str, reading: Accepted | Rejected, text: str,
              label: str | None = None) -> None:
        if isinstance(reading, Accepted):
            self.record(item, answer_id, reading.value)
            return
        if reading.reason == "empty":
            return
        values: dict[str, object] = {"limit": reading.limit}
        if reading.reason == "ambiguous":
            names = [render_value(item, c, self.lang) for c in reading.candidates]
            values["candidates"] = ", ".join(names) if names else "?"
        self.reject(item, str(reading.reason), text, label=label, **values)

    def read_grid(self, block: _Block) -> None:
        item = block.item
        rows = {row.id: (index, row) for index, row in enumerate(item.rows)}
        for row_id, lines in block.rows.items():
            index, _ = rows[row_id]
            text = " ".join(line for line in lines if line.strip())
            if text.strip():
                self.apply(item, f"{item.id}.{row_id}", read_row(item, text), text,
                           label=f"{item.number}{row_letter(index)}")
        lines = [line for line in block.lines if line.strip()]
        if not lines:
            return
        start = self.asked_row(item)
        if start is not None:
            self.read_rows_from(item, start, lines, frozenset(block.rows))
            return
        missing = tuple(r for r in item.rows
                        if r.id not in block.rows and f"{item.id}.{r.id}" not in self.answers)
        if not missing:
            missing = tuple(r for r in item.rows if r.id not in block.rows)
        self.read_grid_values(item, missing, lines)

    def read_grid_values(self, item: Item, rows: tuple[Row, ...], lines: list[str]) -> None:
        """Lines for several rows: one per row, or all on one line in row order."""
        if not rows:
            for line in lines:
                self.unplaced(line)
            return
        whole = " ".join(lines)
        subset = replace(item, rows=rows)
        readings = read_grid_line(subset, whole)
        if readings is None and len(lines) == len(rows):
            readings = [read_row(item, line) for line in lines]
        if readings is None and len(rows) == 1:
            readings = [read_row(item, whole)]
        if readings is None:
            letters = ", ".join(row_letter(item.rows.index(r)) for r in rows)
            self.reject(item, "rows_missing", whole, rows=letters)
            return
        for row, reading in zip(rows, readings, strict=True):
            label = f"{item.number}{row_letter(item.rows.index(row))}"
            self.apply(item, f"{item.id}.{row.id}", reading, whole, label=label)

    def read_rows_from(self, item: Item, start: int, lines: list[str],
                       named: frozenset[str]) -> None:
        """Unlettered answers while one row of `item` is asked (a chat): a single value is
        that row's; several values (`3 4 2`, `ja nei`, one per line) are that row's and the
        next ones', skipping rows already answered; as many values as the grid has rows are
        the whole grid's, from its first row. `named` rows were given by letter and are left
        out."""
        after = tuple(r for r in item.rows[start:] if r.id not in named)
        if not after:
            for line in lines:
                self.unplaced(line)
            return
        first = item.rows[start].id
        open_rows = tuple(r for r in after
                          if r.id == first or f"{item.id}.{r.id}" not in self.answers) or after
        whole = " ".join(lines)
        single = read_row(item, lines[0])
        targets = self.row_targets(item, open_rows, after, lines, named, single=single)
        if targets is None:
            letters = ", ".join(row_letter(item.rows.index(r)) for r in after)
            self.reject(item, "rows_missing", whole, rows=letters)
            return
        if targets:
            for row, reading in targets:
                label = f"{item.number}{row_letter(item.rows.index(row))}"
                self.apply(item, f"{item.id}.{row.id}", reading, whole, label=label)
            return
        row = open_rows[0]
        label = f"{item.number}{row_letter(item.rows.index(row))}"
        if len(lines) > 1 and isinstance(single, Accepted):
            self.apply(item, f"{item.id}.{row.id}", single, lines[0], label=label)
            for extra in lines[1:]:
                self.unplaced(extra)
            return
        self.apply(item, f"{item.id}.{row.id}", read_row(item, whole), whole, label=label)

    @staticmethod
    def row_targets(item: Item, open_rows: tuple[Row, ...], after: tuple[Row, ...],
                    lines: list[str], named: frozenset[str], *,
                    single: Accepted | Rejected) -> list[tuple[Row, Accepted | Rejected]] | None:
        """The rows an answer given while one row is asked goes to, with their readings.

        [] when the text is not a list of values (the caller then reads it as that row's
        answer), None when it holds more values than rows are left. Plain values (`3 4 2`,
        `nei nei`) are several rows even where `read_row` would take them as one (`4 4`);
        other words are one answer (`4 helt enig`) unless they give exactly one value for
        each row left, as by email.
        """

        def rows_for(count: int) -> tuple[Row, ...] | None:
            for rows in (open_rows, after):
                if count <= len(rows):
                    return rows[:count]
            return item.rows if count == len(item.rows) and not named else None

        whole = " ".join(lines)
        if len(lines) > 1:
            per_line = [read_row(item, line) for line in lines]
            if all(isinstance(r, Accepted) for r in per_line):
                rows = rows_for(len(per_line))
                return None if rows is None else list(zip(rows, per_line, strict=True))
        values = read_grid_values(item, whole)
        if values is not None and len(values) > 1:
            rows = rows_for(len(values))
            return None if rows is None else list(zip(rows, values, strict=True))
        if len(lines) == 1 and isinstance(single, Accepted):
            return [(open_rows[0], single)]
        for rows in dict.fromkeys((open_rows, after, item.rows)):
            if len(rows) > 1 and (rows is not item.rows or not named):
                readings = read_grid_line(replace(item, rows=rows), whole)
                if readings is not None:
                    return list(zip(rows, readings, strict=True))
        return []

    def read_content(self, lines: list[str]) -> None:
        """Map the non-command lines of a reply to items, then read each item's part."""
        vis = self.vis()
        asked = self.asked_items(vis)
        place = _Placement(asked, frozenset(item.id for item in asked))
        cleaned = []
        for raw in _drop_signature(lines):
            line = _BULLET.sub("", raw.strip())
            if line and not _is_greeting(line):
                cleaned.append(line)
        for line in cleaned:
            match = _KEY.match(line)
            if match and self.place_numbered(place, match, line, vis, sole=len(cleaned) == 1):
                continue
            if not self.place_rows(place, line):
                place.add_plain(line)
        deferred = [i for i in place.order if i not in place.asked_ids and not vis.get(i)]
        for item_id in place.order:
            if item_id not in deferred:
                self.read_block(place.blocks[item_id])
        if deferred:
            now_shown = self.vis()
            for item_id in deferred:
                if now_shown.get(item_id):
                    self.read_block(place.blocks[item_id])
                else:
                    item = place.blocks[item_id].item
                    self.events.append(InputRejected(None, "no_such_item", str(item.number)))
                    self.say("no_such_item", number=item.number)
        for segment in place.segments:
            if segment.lines:
                self.read_plain(segment.lines, self.open_items(place, segment))

    def place_numbered(self, place: _Placement, match: re.Match[str], line: str,
                       vis: Visibility, *, sole: bool) -> bool:
        """A line that starts with an item number ("4: ja", "17a) 5"); False if it is not one."""
        item = self.q.by_number(int(match.group(1)))
        letter, sep, rest = match.group(2), match.group(3), match.group(4)
        if _marks_an_option(place, item, letter, sep, rest, sole=sole):
            return False
        asked = item is not None and item.id in place.asked_ids
        shown = vis.get(item.id) if item is not None else False
        # An item that depends on an answer in this same reply ("1: kommune" then "2: 2") is
        # read after the others, once its condition can be evaluated.
        if item is not None and (asked or shown is None or sep == ":"):
            block = place.enter(item)
            if item.type is not ItemType.GRID:
                block.lines.append(f"{letter} {rest}" if letter else rest)
            elif letter:
                self.place_lettered_row(place, block, letter, rest, line)
            elif rest and not place.take_rows(item, rest, whole=True):
                block.lines.append(rest)
            return True
        if item is None and sep == ":":
            self.events.append(InputRejected(None, "no_such_item", line))
            self.say("no_such_item", number=match.group(1))
            return True
        return False

    def place_lettered_row(self, place: _Placement, block: _Block, letter: str, rest: str,
                           line: str) -> None:
        """`17a: 5` (or `17a: 5, b: 6`): the rows of a numbered grid given by their letters."""
        row_id = self._row_id(block.item, letter)
        if row_id is None:
            self.reject(block.item, "not_placed", line)
            return
        if not place.take_rows(block.item, f"{letter} {rest}", whole=True):
            block.rows.setdefault(row_id, []).append(rest)
            place.lettered = True
            place.open_row = None if rest else row_id

    def place_rows(self, place: _Placement, line: str) -> bool:
        """A line that answers grid rows by their letters (`a) 3`, `a 3, b 4`); False if not.

        The rows belong to the grid being answered, or else to the first grid asked after the
        reply's position, so that `22: ja` followed by `a) 1`, `b) 2` answers the grid 25
        rather than adding lines to 22, and an answer to 26 after them is not read as a row.
        """
        grid = place.grid_ahead()
        if grid is None:
            return False
        current = place.current
        whole = (current is not None and current.item is grid) or (
            len(place.asked) == 1 and place.asked[0] is grid)
        row_key = _ROW_KEY.match(line)
        if place.take_rows(grid, line, whole=whole or row_key is not None):
            return True
        if row_key is None or not (row_key.group(3) or whole):
            return False
        row_id = self._row_id(grid, row_key.group(1))
        if row_id is None:
            return False
        block = place.enter_rows(grid)
        block.rows.setdefault(row_id, []).append(row_key.group(3))
        place.open_row = None if row_key.group(3) else row_id
        return True

    def open_items(self, place: _Placement, segment: _Segment) -> list[Item]:
        """The asked items a run of unnumbered lines may answer, in order (see `_Segment`)."""
        candidates = [i for i in place.asked if segment.admits(i) and i.id not in place.blocks]
        return [i for i in candidates if not self.done(i)] or candidates

    def read_plain(self, lines: list[str], remaining: list[Item]) -> None:
        """Unnumbered lines: answers in the order of the questions still open."""
        questions = [line for line in lines if looks_like_question(line)]
        lines = [line for line in lines if line not in questions]
        for question in questions:
            self.unplaced(question)
        if not lines:
            return
        if not remaining:
            for line in lines:
                self.unplaced(line)
            return
        if len(remaining) == 1 or len(lines) == 1:
            self.read_block(_Block(remaining[0], lines=lines))
            return
        for item, line in zip(remaining, lines, strict=False):
            self.read_block(_Block(item, lines=[line]))
        for line in lines[len(remaining):]:
            self.unplaced(line)

    @staticmethod
    def _row_id(item: Item, letter: str) -> str | None:
        index = ord(letter.lower()) - ord("a")
        return item.rows[index].id if 0 <= index < len(item.rows) else None

    # -- commands --

    def command(self, cmd: Command) -> None:
        kind = cmd.kind
        if kind is CommandKind.HELP:
            self.show_help.update(map(_item_id, self.asked))
            self.say("commands")
        elif kind is CommandKind.STATUS:
            self.progress_note = True
        elif kind is CommandKind.PAUSE:
            if self.status in (Status.IN_PROGRESS, Status.NEW):
                self.status = Status.PAUSED
                self.events.append(Paused())
        elif kind is CommandKind.RESUME:
            self.resume()
        elif kind is CommandKind.STOP:
            if self.status is not Status.STOPPED:
                self.status = Status.STOPPED
                self.events.append(Stopped())
        elif kind is CommandKind.SKIP:
            self.skip()
        elif kind is CommandKind.BACK:
            self.back()
        elif kind is CommandKind.CHANGE:
            item = self.q.by_number(cmd.number or 0)
            if item is None or not self.vis().get(item.id):
                self.events.append(InputRejected(None, "no_such_item", f"endre {cmd.number}"))
                self.say("no_such_item", number=cmd.number)
            else:
                self.focus = list(self.units(item))
                self.show_help.add(item.id)

    def resume(self) -> None:
        if self.status in (Status.PAUSED, Status.STOPPED):
            self.status = Status.IN_PROGRESS
            self.events.append(Resumed())

    def skip(self) -> None:
        """`hopp over`: skip what was asked and not answered in the same reply (in a chat,
        that is one grid row at a time); a required item is never skipped."""
        vis = self.vis()
        open_units: list[tuple[Item, str]] = []
        for asked_id in self.asked:
            item = self.q.find(_item_id(asked_id))
            if item is None or not vis.get(item.id) or asked_id in self.touched:
                continue
            if self.unit_done(item, asked_id) and asked_id not in self.focus:
                continue
            open_units.append((item, asked_id))
        if not open_units:
            self.say("nothing_to_skip")
            return
        skipped = []
        for item, asked_id in open_units:
            if item.required:
                self.say("required", number=item.number)
                continue
            row = _row_index(item, asked_id)
            for answer_id in item.answer_ids() if row is None else (asked_id,):
                if self.answers.pop(answer_id, None) is not None:
                    self.events.append(AnswerRemoved(answer_id))
            if asked_id not in self.skipped:
                self.skipped.append(asked_id)
            self.events.append(ItemSkipped(asked_id))
            skipped.append(str(item.number) + ("" if row is None else row_letter(row)))
            if asked_id in self.focus:
                self.focus.remove(asked_id)
        if skipped:
            self.say("skipped", numbers=", ".join(skipped))

    def back(self) -> None:
        """`tilbake`: the previous item (a grid's previous row) in a chat, the previous page
        by email."""
        vis = self.vis()
        if self.channel == "chat":
            self.back_one(vis)
            return
        items = self.q.items
        anchor = _item_id(self.asked[0]) if self.asked else None
        position = next((n for n, i in enumerate(items) if i.id == anchor), len(items))
        earlier = [i for i in items[:position] if vis.get(i.id) and self.done(i)]
        if not earlier:
            self.say("at_start")
            return
        page = earlier[-1].page
        self.focus = [i.id for i in earlier if i.page == page]

    def back_one(self, vis: Visibility) -> None:
        """In a chat: re-ask the last answered (or skipped) question or grid row before the
        one asked, so that `tilbake` walks back through a grid row by row."""
        units = [(item, unit) for item in self.q.items for unit in self.units(item)]
        anchor = self.asked[0] if self.asked else None
        position = next((n for n, (item, unit) in enumerate(units) if anchor in (unit, item.id)),
                        len(units))
        earlier = [unit for item, unit in units[:position]
                   if vis.get(item.id) and self.unit_done(item, unit)]
        if not earlier:
            self.say("at_start")
            return
        self.focus = [earlier[-1]]
        if anchor is not None and "." in anchor:
            self.row_back = _item_id(anchor) == _item_id(earlier[-1])

    # -- what to ask next --

    def next_asked(self, vis: Visibility) -> list[str]:
        """The ids the next prompt asks: in a chat one item or one grid row, by email the
        open items of a page; what the respondent asked to see again (`focus`) first."""
        if self.channel == "chat":
            return self.next_unit(vis)
        focus = list(dict.fromkeys(i for i in map(_item_id, self.focus) if vis.get(i)))
        if focus:
            return focus
        items = self.q.items
        first = next((n for n, i in enumerate(items)
                      if vis[i.id] is not False and not self.done(i)), None)
        if first is None:
            return []
        page = items[first].page
        return [i.id for i in items[first:]
                if i.page == page and vis[i.id] and not self.done(i)]

    def next_unit(self, vis: Visibility) -> list[str]:
        """What a chat asks next: the first focus that applies, else the first item not done,
        and of a grid its first row not answered or skipped."""
        for unit in self.focus:
            item = self.q.find(_item_id(unit))
            if item is not None and vis.get(item.id):
                return [unit if unit != item.id else self.units(item)[0]]
        item = next((i for i in self.q.items if vis[i.id] is not False and not self.done(i)),
                    None)
        if item is None:
            return []
        return [next(u for u in self.units(item) if not self.unit_done(item, u))]

    def settle_focus(self) -> None:
        """The focus in this channel's terms: a grid's rows in a chat (so `endre` walks
        through them, and a grid focused by email is asked row by row), whole items by email.
        Ids that name nothing in the questionnaire are dropped."""
        units: list[str] = []
        for unit in self.focus:
            item = self.q.find(_item_id(unit))
            if item is None or (unit != item.id and _row_index(item, unit) is None):
                continue
            if self.channel == "email":
                units.append(item.id)
            elif unit == item.id:
                units.extend(self.units(item))
            else:
                units.append(unit)
        self.focus = list(dict.fromkeys(units))

    def drop_hidden(self) -> Visibility:
        """Remove answers to items that a changed answer has hidden."""
        return visibility(self.q, self.answers, self.skipped, self._forget)

    def _forget(self, item: Item) -> None:
        for answer_id in item.keys:
            if self.answers.pop(answer_id, None) is not None:
                self.events.append(AnswerRemoved(answer_id))
        for skipped_id in (item.id, *item.keys):
            if skipped_id in self.skipped:
                self.skipped.remove(skipped_id)


def _page_complete(page: Page, vis: Visibility, answers: dict[str, AnswerValue],
                   skipped: Collection[str]) -> bool:
    return all(vis[i.id] is False or (vis[i.id] and _is_done(i, answers, skipped))
               for i in page.items)


def advance(questionnaire: Questionnaire, session: Session, inbound: Inbound, *,
            now: datetime) -> Step:
    """Take one inbound message (or start, or reminder) and return the next step.

    Raises:
        EngineError: the session belongs to another questionnaire, or `now` has no time zone.
    """
    if now.tzinfo is None:
        raise EngineError("now must carry a time zone")
    if session.questionnaire != questionnaire.id:
        raise EngineError(f"session is for '{session.questionnaire}', not '{questionnaire.id}'")
    run = _Run(
        q=questionnaire,
        before=session,
        status=session.status,
        channel=session.channel,
        lang=session.lang,
        answers=dict(session.answers),
        skipped=list(session.skipped),
        focus=list(session.focus),
        asked=list(session.asked),
    )
    # Visibility before this step: read_content starts from it and page completion compares
    # against it, so it is computed once.
    run._vis = ((0, len(run.skipped)), visibility(questionnaire, session.answers, session.skipped))
    run.initial_vis = run._vis[1]
    if isinstance(inbound, Start):
        _start(run, inbound)
    elif isinstance(inbound, Reminder):
        _remind(run, inbound)
    elif isinstance(inbound, OptOut):
        _opt_out(run, inbound)
    else:
        _reply(run, inbound)
    return _finish(run, now)


def _start(run: _Run, inbound: Start) -> None:
    if inbound.channel:
        run.channel = inbound.channel
    if inbound.lang:
        run.lang = inbound.lang
    if run.status is Status.NEW:
        run.status = Status.IN_PROGRESS
        run.welcome = True
    elif run.status is Status.PAUSED:
        run.resume()
    elif run.status is Status.STOPPED:
        run.final_kind = "still_stopped"


def _remind(run: _Run, inbound: Reminder) -> None:
    if inbound.channel:
        run.channel = inbound.channel
    if run.status in (Status.COMPLETED, Status.STOPPED):
        run.final_kind = "silent"
        return
    if run.status is Status.NEW:
        run.status = Status.IN_PROGRESS
        run.welcome = True
    run.remind = True
    run.progress_note = True


def _opt_out(run: _Run, inbound: OptOut) -> None:
    if inbound.channel:
        run.channel = inbound.channel
    run.command(Command(CommandKind.STOP))


def _reply(run: _Run, inbound: Reply) -> None:
    if inbound.channel:
        run.channel = inbound.channel
    text = inbound.text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_INPUT_CHARS:
        text = text[:MAX_INPUT_CHARS]
        run.events.append(InputRejected(None, "too_long", inbound.text[MAX_INPUT_CHARS:][:200]))
        run.say("too_long_message", limit=MAX_INPUT_CHARS)
    commands: list[Command] = []
    content: list[str] = []
    for line in text.split("\n"):
        head = line.lstrip()[:1]
        # No command starts with a digit, so numbered answer lines ("4: ja") skip the check.
        cmd = read_command(line) if head and not head.isdigit() else None
        if cmd is not None:
            commands.append(cmd)
        else:
            content.append(line)
    if run.status is Status.NEW:
        run.status = Status.IN_PROGRESS
        run.asked = run.next_asked(run.vis())
    if run.status is Status.STOPPED:
        if any(c.kind is CommandKind.RESUME for c in commands):
            run.resume()
        else:
            body = "\n".join(line for line in content if line.strip())
            if body and looks_like_question(body):
                run.events.append(QueryRaised(body.strip()))
                run.say("query")
            run.final_kind = "still_stopped"
            return
    if run.status is Status.PAUSED and ((content and any(line.strip() for line in content))
                                        or commands):
        stays_paused = all(c.kind is CommandKind.PAUSE for c in commands) and not any(
            line.strip() for line in content)
        if not stays_paused:
            run.resume()
    if any(line.strip() for line in content):
        run.read_content(content)
    for cmd in commands:
        run.command(cmd)
    if not commands and _nothing_found(run):
        run.say("no_answer")
    # Focus items are re-asked until answered; a reply that answers them ends the detour.
    if run.touched or any(isinstance(e, ItemSkipped) for e in run.events):
        run.focus = [i for i in run.focus if i in run.rejected_items or
                     (i not in run.touched and not any(
                         isinstance(e, ItemSkipped) and e.item_id == i for e in run.events))]


def _nothing_found(run: _Run) -> bool:
    """Whether a reply in a conversation under way gave nothing to act on.

    An email that holds only the quoted questions, or only "Hei" and a signature, would
    otherwise bring the same page back without a word, as if the answers had been lost.
    """
    return (run.status is Status.IN_PROGRESS and not run.events and not run.notes
            and not run.touched)


def _confirmation(run: _Run) -> list[str]:
    """"Registrert:" and each answer recorded, in questionnaire order and once each.

    A reply may give a grid's lettered rows before the unnumbered answers around them, or an
    answer twice; the confirmation reads as the questionnaire does.
    """
    recorded = {a for a in run.recorded if a in run.answers}
    if not recorded:
        return []
    lines = [phrase("recorded", run.lang)]
    for answer_id in sorted(recorded, key=lambda a: _answer_position(run.q, a)):
        head, _, row_id = answer_id.partition(".")
        item = run.q.item(head)
        label = str(item.number)
        if row_id:
            label += row_letter(item.keys.index(answer_id))
        lines.append(f"  {label}: {render_value(item, run.answers[answer_id], run.lang)}")
    return lines


def _answer_position(questionnaire: Questionnaire, answer_id: str) -> tuple[int, int]:
    item = questionnaire.item(answer_id.partition(".")[0])
    return item.number, item.keys.index(answer_id)


def _finish(run: _Run, now: datetime) -> Step:
    lang = run.lang
    before = run.before
    changed = any(isinstance(e, AnswerRecorded | ItemSkipped | AnswerRemoved) for e in run.events)
    # Nothing answered, skipped or removed: what applies is what applied before this step.
    vis = run.drop_hidden() if changed else run.initial_vis
    skipped = tuple(run.skipped)
    prompts: list[Prompt] = []
    if changed and run.final_kind is None and run.status not in (Status.STOPPED, Status.PAUSED):
        before_vis = run.initial_vis
        # Only a page holding an item that was answered, skipped, or shown or hidden by this
        # step can have just become complete.
        moved = {e.answer_id.partition(".")[0] for e in run.events
                 if isinstance(e, AnswerRecorded | AnswerRemoved)}
        moved |= {_item_id(e.item_id) for e in run.events if isinstance(e, ItemSkipped)}
        moved |= {i for i, shown in vis.items() if before_vis.get(i) != shown}
        pages = {run.q.item(i).page for i in moved}
        for page in run.q.pages:
            if page.id not in pages or not any(vis[i.id] for i in page.items):
                continue  # a page skip logic hides entirely is never "completed"
            if _page_complete(page, vis, run.answers, skipped) and not _page_complete(
                    page, before_vis, before.answers, before.skipped):
                run.events.append(PageCompleted(page.id))
    head = _confirmation(run) + run.notes
    asked: list[str] = []
    kind = "questions"
    body: list[str] = []
    if run.final_kind == "silent":
        asked = list(before.asked)
    elif run.final_kind == "still_stopped":
        body = [phrase("still_stopped", lang)]
        kind = "stopped"
    elif run.status is Status.STOPPED:
        body = [phrase("stopped", lang)]
        kind = "stopped"
    elif run.status is Status.PAUSED:
        body = [phrase("paused", lang)]
        kind = "paused"
        asked = list(before.asked)
    else:
        run.settle_focus()
        asked = run.next_asked(vis)
        if not asked:
            kind = "completed"
            if before.status is not Status.COMPLETED or run.status is not Status.COMPLETED:
                run.events.append(QuestionnaireCompleted())
                run.status = Status.COMPLETED
                if run.q.outro is not None:
                    body.append(run.q.outro.get(lang))
                body.append(phrase("completed", lang))
            else:
                body.append(phrase("already_completed", lang))
        else:
            run.status = Status.IN_PROGRESS
            body = _questions(run, asked, vis)
    if run.progress_note and run.status in (Status.IN_PROGRESS, Status.PAUSED):
        done, total = progress(run.q, _session(run, asked, now))
        note = phrase("progress", lang, done=done, total=total)
        if run.remind:
            note = phrase("reminder", lang) + " " + note
        head.append(note)
    if run.final_kind != "silent":
        parts = ["\n".join(head)] if head else []
        parts += body
        choices: tuple[Choice, ...] = ()
        multiple = False
        if run.channel == "chat" and len(asked) == 1 and kind == "questions":
            item = run.q.item(_item_id(asked[0]))
            choices = chat_choices(item, lang)
            multiple = item.type is ItemType.MULTI and bool(choices)
        prompts.append(Prompt(kind=kind, text="\n\n".join(p for p in parts if p),
                              asked=tuple(asked), choices=choices, multiple=multiple))
    return Step(session=_session(run, asked, now), prompts=tuple(prompts), events=tuple(run.events))


def _session(run: _Run, asked: list[str], now: datetime) -> Session:
    return Session(
        questionnaire=run.q.id,
        revision=run.q.revision,
        channel=run.channel,
        lang=run.lang,
        status=run.status,
        answers=run.answers,
        skipped=tuple(run.skipped),
        focus=tuple(run.focus),
        asked=tuple(asked),
        updated_at=now.isoformat(),
    )


def _questions(run: _Run, asked: list[str], vis: Visibility) -> list[str]:
    lang = run.lang
    items = [run.q.item(_item_id(i)) for i in asked]
    parts: list[str] = []
    page = run.q.page(items[0].page)
    before = run.q.find(_item_id(run.before.asked[0])) if run.before.asked else None
    before_page = before.page if before is not None else None
    going_on = _next_row_of_the_same_grid(run, asked)
    new_page = run.welcome or run.remind or before_page != page.id or (
        bool(run.focus) and not going_on)
    if run.welcome and run.q.intro is not None:
        parts.append(run.q.intro.get(lang))
    if new_page:
        number, total = page_position(run.q, page.id, vis)
        parts.append(phrase("page_header", lang, n=number, total=total,
                            title=page.title.get(lang)))
        first_time = not any(run.done(i) for i in page.items if vis.get(i.id))
        if page.intro is not None and (first_time or run.remind):
            parts.append(page.intro.get(lang))
    for asked_id, item in zip(asked, items, strict=True):
        row = _row_index(item, asked_id)
        if row is not None:
            question = new_page or not going_on or item.id in run.show_help
            parts.append(_row_text(run, item, row, question=question))
            continue
        rows = None
        if item.type is ItemType.GRID:
            missing = tuple(r.id for r in item.rows if f"{item.id}.{r.id}" not in run.answers
                            and f"{item.id}.{r.id}" not in run.skipped)
            rows = missing if missing and item.id not in run.focus else None
        memo_key = ("item", item.id, lang, rows, item.id in run.show_help)
        text = run.q.memo.get(memo_key) or ""
        if not text:
            text = run.q.memo[memo_key] = render_item(item, lang, rows=rows,
                                                      show_help=item.id in run.show_help)
        current = _current_answer(run, item)
        if current and item.id in run.focus:
            text += "\n   " + phrase("current_answer", lang, value=current)
        parts.append(text)
    if run.channel == "email":
        parts.append(phrase("how_to_email", lang, example=example_answer(items[0])))
    return parts


def _next_row_of_the_same_grid(run: _Run, asked: list[str]) -> bool:
    """Whether this prompt asks a grid row right after the respondent answered, skipped or
    stepped back from another row of the same grid: the thread then already shows the grid's
    question, so the row's statement is enough."""
    if len(asked) != 1 or not run.before.asked or "." not in asked[0]:
        return False
    previous = run.before.asked[0]
    if "." not in previous or _item_id(previous) != _item_id(asked[0]):
        return False
    return run.row_back or bool(run.touched) or any(isinstance(e, ItemSkipped)
                                                    for e in run.events)


def _row_text(run: _Run, item: Item, row: int, *, question: bool) -> str:
    """One grid row as a chat asks it, with its answer so far when it is asked again."""
    show_help = item.id in run.show_help
    memo_key = ("row", item.id, row, run.lang, question, show_help)
    text = run.q.memo.get(memo_key) or ""
    if not text:
        text = run.q.memo[memo_key] = render_grid_row(item, row, run.lang, question=question,
                                                      show_help=show_help)
    answer_id = item.keys[row]
    if answer_id in run.focus and answer_id in run.answers:
        value = render_value(item, run.answers[answer_id], run.lang)
        text += "\n   " + phrase("current_answer", run.lang, value=value)
    return text


def _current_answer(run: _Run, item: Item) -> str:
    values = []
    for index, answer_id in enumerate(item.answer_ids()):
        if answer_id in run.answers:
            value = render_value(item, run.answers[answer_id], run.lang)
            values.append(f"{row_letter(index)}: {value}" if item.type is ItemType.GRID else value)
    return "; ".join(values)
