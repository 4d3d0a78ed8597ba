"""Plain-text rendering of questions and answers, the same for every channel.

A question reads well in any mail client and in a chat bubble: its number, the question, the
numbered options, one line on how to answer. Email shows a whole page with a header; a chat
shows one question and offers buttons. Channel adapters may add HTML or keyboards around
this, never different words.
"""

from __future__ import annotations

import string

from flows.events import Choice
from flows.model import DONT_KNOW, NO, NOT_RELEVANT, YES, AnswerValue, Item, ItemType, Lang, Scale
from flows.texts import phrase

LETTERS = string.ascii_lowercase


def row_letter(index: int) -> str:
    """The letter a grid row is shown with (a, b, c …)."""
    return LETTERS[index] if index < len(LETTERS) else str(index + 1)


def _scale_lines(scale: Scale, lang: Lang) -> list[str]:
    lines = []
    for point in range(scale.min, scale.max + 1):
        label = scale.label(point)
        if label is not None:
            lines.append(f"   {point} = {label.get(lang)}")
    return lines


def _specials(scale: Scale | None, dont_know: bool, lang: Lang) -> list[str]:
    words = []
    if (scale is not None and scale.dont_know) or dont_know:
        words.append(phrase("dont_know", lang).lower())
    if scale is not None and scale.not_relevant:
        words.append(phrase("not_relevant", lang).lower())
    return words


def _instruction(item: Item, lang: Lang) -> str:
    scale = item.scale
    if item.type is ItemType.SINGLE:
        return phrase("single", lang)
    if item.type is ItemType.MULTI:
        if item.max_choices:
            return phrase("multi_max", lang, max=item.max_choices)
        return phrase("multi", lang)
    if item.type is ItemType.SCALE and scale is not None:
        return phrase("scale", lang, min=scale.min, max=scale.max)
    if item.type is ItemType.YESNO:
        return phrase("yesno", lang)
    if item.type is ItemType.NUMBER:
        if item.min is not None and item.max is not None:
            return phrase("number_range", lang, min=item.min, max=item.max)
        return phrase("number", lang)
    if item.type is ItemType.GRID:
        if item.row_type == "yesno" or scale is None:
            return phrase("yesno_grid", lang)
        return phrase("scale_grid", lang, min=scale.min, max=scale.max)
    return phrase("text", lang)


def render_item(item: Item, lang: Lang, *, rows: tuple[str, ...] | None = None,
                show_help: bool = False) -> str:
    """One question as text.

    Args:
        rows: for a grid, the row ids still to answer (None: all rows).
        show_help: include the item's help text (after `hjelp` or a rejected answer).
    """
    lines = [f"{item.number}. {item.text.get(lang)}"]
    if show_help and item.help is not None:
        lines.append(f"   ({item.help.get(lang)})")
    if item.type in (ItemType.SINGLE, ItemType.MULTI):
        lines.extend(f"   {i}) {o.label.get(lang)}" for i, o in enumerate(item.options, 1))
    elif item.type is ItemType.GRID:
        for index, row in enumerate(item.rows):
            if rows is None or row.id in rows:
                lines.append(f"   {row_letter(index)}) {row.label.get(lang)}")
        if item.scale is not None and item.row_type == "scale":
            lines.extend(_scale_lines(item.scale, lang))
    elif item.type is ItemType.SCALE and item.scale is not None:
        lines.extend(_scale_lines(item.scale, lang))
    lines.append("   " + _instruction(item, lang))
    specials = _specials(item.scale, item.dont_know, lang)
    if specials:
        lines.append("   " + phrase("or_special", lang, words="» / «".join(specials)))
    if item.required:
        lines.append("   " + phrase("required_item", lang))
    return "\n".join(lines)


def render_grid_row(item: Item, index: int, lang: Lang, *, question: bool,
                    show_help: bool = False) -> str:
    """One row of a grid, asked on its own as a chat does: `10b) statement`.

    Args:
        question: put the grid's question (with its scale and how to answer) above the row:
            the first row asked, or when the respondent needs to see it again. The rows after
            it follow in the same thread, so they need only their statement.
        show_help: include the grid's help text with the question.
    """
    row = f"{item.number}{row_letter(index)}) {item.rows[index].label.get(lang)}"
    if not question:
        return row
    lines = [f"{item.number}. {item.text.get(lang)}"]
    if show_help and item.help is not None:
        lines.append(f"   ({item.help.get(lang)})")
    scale = item.scale
    if scale is not None and item.row_type == "scale":
        lines.extend(_scale_lines(scale, lang))
    lines.append("   " + _row_instruction(item, lang))
    specials = _specials(scale, item.dont_know, lang)
    if specials:
        lines.append("   " + phrase("or_special", lang, words="» / «".join(specials)))
    if item.required:
        lines.append("   " + phrase("required_item", lang))
    return "\n".join(lines) + "\n\n" + row


def _row_instruction(item: Item, lang: Lang) -> str:
    scale = item.scale
    count = len(item.rows)
    if item.row_type == "yesno" or scale is None:
        return phrase("yesno_rows", lang, count=count) if count > 1 else phrase("yesno", lang)
    if count > 1:
        return phrase("scale_rows", lang, min=scale.min, max=scale.max, count=count)
    return phrase("scale", lang, min=scale.min, max=scale.max)


#: The longest button label; a longer option text is shortened with "…".
BUTTON_CHARS = 40
#: A label is not cut back to an open parenthesis that leaves less than this.
_SHORTEST_CUT = 6


def button_label(text: str, limit: int = BUTTON_CHARS) -> str:
    """`text` as a button label of at most `limit` characters.

    A phone shows a long label cut off at an arbitrary point, or wraps it over several lines;
    a label that ends at a word, without a parenthesis left open, reads better. The prompt's
    text above the buttons keeps the whole option.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    opened = cut.rfind("(")
    if opened > cut.rfind(")") and opened >= _SHORTEST_CUT:
        cut = cut[:opened]
    return cut.rstrip(" ,;:.–-(") + "…"


def _lower_first(text: str) -> str:
    """"Helt uenig" → "helt uenig" after a number; "NAV" and the like stay as written."""
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def _word(key: str, lang: Lang) -> Choice:
    """A button that answers with one of the engine's own words (ja, nei, vet ikke)."""
    label = phrase(key, lang)
    return Choice(label, label.lower())


def _yes_no_choices(dont_know: bool, lang: Lang) -> tuple[Choice, ...]:
    choices = [_word("yes", lang), _word("no", lang)]
    if dont_know:
        choices.append(_word("dont_know", lang))
    return tuple(choices)


def _scale_choices(scale: Scale, lang: Lang) -> tuple[Choice, ...]:
    """One button per point, the end points with their labels ("1 – helt uenig"), then the
    special answers the scale offers. Labels in between stay in the prompt's text: a row of
    short buttons fits a phone's width."""
    choices = []
    for point in range(scale.min, scale.max + 1):
        label = scale.label(point) if point in (scale.min, scale.max) else None
        text = f"{point} – {_lower_first(label.get(lang))}" if label else str(point)
        choices.append(Choice(button_label(text), str(point)))
    if scale.dont_know:
        choices.append(_word("dont_know", lang))
    if scale.not_relevant:
        choices.append(_word("not_relevant", lang))
    return tuple(choices)


def chat_choices(item: Item, lang: Lang) -> tuple[Choice, ...]:
    """Buttons for answering this item (or, for a grid, any one of its rows) with a tap.

    Each reply is a text the engine reads back as exactly the answer its button stands for
    while that item or row is asked: an option's number, a scale point, the engine's own word
    for yes, no, don't know or not relevant. Numbers and free text get no buttons.
    """
    if item.type in (ItemType.SINGLE, ItemType.MULTI):
        return tuple(Choice(button_label(o.label.get(lang)), str(i))
                     for i, o in enumerate(item.options, 1))
    if item.type is ItemType.YESNO:
        return _yes_no_choices(item.dont_know, lang)
    if item.type is ItemType.SCALE and item.scale is not None:
        return _scale_choices(item.scale, lang)
    if item.type is ItemType.GRID:
        if item.row_type == "yesno" or item.scale is None:
            return _yes_no_choices(item.dont_know, lang)
        return _scale_choices(item.scale, lang)
    return ()


def render_value(item: Item, value: AnswerValue, lang: Lang) -> str:
    """A recorded answer as the respondent would say it (for confirmations)."""
    if value == DONT_KNOW:
        return phrase("dont_know", lang)
    if value == NOT_RELEVANT:
        return phrase("not_relevant", lang)
    if value == YES:
        return phrase("yes", lang)
    if value == NO:
        return phrase("no", lang)
    if isinstance(value, list):
        labels = [_option_label(item, v, lang) for v in value]
        return ", ".join(labels)
    if isinstance(value, str) and item.type in (ItemType.SINGLE, ItemType.MULTI):
        return _option_label(item, value, lang)
    if isinstance(value, int) and item.scale is not None:
        label = item.scale.label(value)
        return f"{value} ({label.get(lang)})" if label else str(value)
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _option_label(item: Item, option_id: str, lang: Lang) -> str:
    option = item.option(option_id)
    return option.label.get(lang) if option else option_id


def example_answer(item: Item) -> str:
    """An example reply line for the first question of an email page."""
    if item.type is ItemType.YESNO:
        return f"{item.number}: ja"
    if item.type is ItemType.TEXT:
        return f"{item.number}: …"
    if item.type is ItemType.GRID:
        if item.row_type == "yesno" or item.scale is None:
            return f"{item.number}a: ja"
        return f"{item.number}a: {item.scale.max}"
    if item.type is ItemType.SCALE and item.scale is not None:
        return f"{item.number}: {item.scale.max}"
    if item.type is ItemType.NUMBER:
        return f"{item.number}: 12"
    return f"{item.number}: 1"
