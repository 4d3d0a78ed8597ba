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


def chat_choices(item: Item, lang: Lang) -> tuple[Choice, ...]:
    """Buttons for answering this item with one tap, where that makes sense."""
    if item.type is ItemType.SINGLE:
        return tuple(Choice(o.label.get(lang), str(i)) for i, o in enumerate(item.options, 1))
    if item.type is ItemType.YESNO:
        choices = [Choice(phrase("yes", lang), "ja"), Choice(phrase("no", lang), "nei")]
        if item.dont_know:
            choices.append(Choice(phrase("dont_know", lang), "vet ikke"))
        return tuple(choices)
    if item.type is ItemType.SCALE and item.scale is not None:
        scale = item.scale
        out = []
        for point in range(scale.min, scale.max + 1):
            label = scale.label(point)
            out.append(Choice(f"{point} {label.get(lang)}" if label else str(point), str(point)))
        if scale.dont_know:
            out.append(Choice(phrase("dont_know", lang), "vet ikke"))
        if scale.not_relevant:
            out.append(Choice(phrase("not_relevant", lang), "ikke relevant"))
        return tuple(out)
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
