"""Load questionnaire YAML into the validated model, or report every problem with its line.

Policy: a file either loads completely or not at all. Every problem found is collected (not just
the first) and reported as `file:line: item ID: message`, so that whoever writes a questionnaire
can fix them in one pass. The engine is only ever handed a `Questionnaire` that passed here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import cast

import yaml

from flows.model import (
    DONT_KNOW,
    LANGS,
    NO,
    NOT_RELEVANT,
    YES,
    AllOf,
    AnyOf,
    Compare,
    CompareOp,
    Condition,
    Item,
    ItemType,
    Lang,
    Not,
    Option,
    Page,
    Questionnaire,
    Row,
    Scale,
    Text,
)

SPEC_VERSION = 1
DEFAULT_TEXT_MAX_LENGTH = 2000
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_COMPARE_OPS = ("equals", "not_equals", "in", "includes", "gte", "lte", "answered")

_TOP_KEYS = {"spec_version", "id", "title", "languages", "intro", "outro", "scales", "pages"}
_PAGE_KEYS = {"id", "title", "intro", "items"}
_ITEM_KEYS = {
    "id", "type", "text", "help", "required", "show_if", "options", "max_choices", "scale",
    "dont_know", "min", "max", "max_length", "rows", "row_type",
}
_TYPE_KEYS: dict[ItemType, set[str]] = {
    ItemType.SINGLE: {"options"},
    ItemType.MULTI: {"options", "max_choices"},
    ItemType.SCALE: {"scale"},
    ItemType.YESNO: {"dont_know"},
    ItemType.NUMBER: {"min", "max"},
    ItemType.TEXT: {"max_length"},
    ItemType.GRID: {"rows", "scale", "row_type", "dont_know"},
}
_COMMON_KEYS = {"id", "type", "text", "help", "required", "show_if"}
_SCALE_KEYS = {"min", "max", "labels", "dont_know", "not_relevant"}
_OPTION_KEYS = {"id", "label", "synonyms", "exclusive"}


class QuestionnaireError(Exception):
    """A questionnaire file that cannot be used; `problems` lists every reason, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- YAML with line numbers -----------------------------------------------------------------


class _Map(dict[str, object]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int
    key_lines: dict[str, int]


class _List(list[object]):
    """A YAML sequence that remembers its line."""

    line: int


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry 1-based line numbers."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[str(key)] = loader.construct_object(value_node, deep=True)
        result.key_lines[str(key)] = key_node.start_mark.line + 1
    return result


def _construct_list(loader: _LineLoader, node: yaml.SequenceNode) -> _List:
    result = _List(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_list)


def _line_of(value: object, default: int) -> int:
    return getattr(value, "line", default)


# --- the validator --------------------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    """Collects problems while one file is read."""

    source: str
    languages: tuple[Lang, ...] = ("nb",)
    problems: list[str] = field(default_factory=list)

    def error(self, line: int, where: str, message: str) -> None:
        prefix = f"{self.source}:{line}: "
        self.problems.append(f"{prefix}{where}: {message}" if where else prefix + message)


def _key_line(mapping: _Map, key: str) -> int:
    return mapping.key_lines.get(key, mapping.line)


def _check_keys(ctx: _Context, mapping: _Map, allowed: set[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            ctx.error(_key_line(mapping, key), where, f"unknown key '{key}'")


def _text(ctx: _Context, value: object, line: int, where: str, what: str) -> Text | None:
    if isinstance(value, str):
        if not value.strip():
            ctx.error(line, where, f"{what} is empty")
            return None
        if len(ctx.languages) > 1:
            ctx.error(line, where, f"{what} needs {', '.join(ctx.languages)}; only nb is given")
        return Text(nb=value)
    if isinstance(value, _Map):
        for key in value:
            if key not in LANGS:
                ctx.error(_key_line(value, key), where, f"{what}: unknown language '{key}'")
        texts: dict[str, str | None] = {}
        for lang in LANGS:
            raw = value.get(lang)
            if raw is None:
                texts[lang] = None
            elif isinstance(raw, str | int | float) and str(raw).strip():
                texts[lang] = str(raw)
            else:
                ctx.error(_key_line(value, lang), where, f"{what}: '{lang}' is empty")
                texts[lang] = None
        missing = [lang for lang in ctx.languages if not texts.get(lang)]
        if missing:
            ctx.error(value.line, where, f"{what} is missing {', '.join(missing)}")
        nb = texts["nb"]
        if not nb:
            return None
        return Text(nb=nb, nn=texts["nn"], en=texts["en"])
    ctx.error(line, where, f"{what} must be a text or a mapping of languages")
    return None


def _int(ctx: _Context, value: object, line: int, where: str, what: str) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(line, where, f"{what} must be a whole number, not {value!r}")
        return None
    return value


def _bool(ctx: _Context, mapping: _Map, key: str, where: str) -> bool:
    value = mapping.get(key, False)
    if not isinstance(value, bool):
        ctx.error(_key_line(mapping, key), where, f"'{key}' must be true or false")
        return False
    return value


def _check_id(ctx: _Context, value: object, line: int, where: str, what: str) -> str | None:
    if not isinstance(value, str) or not _ID.match(value):
        ctx.error(line, where, f"{what} {value!r} must start with a letter and hold only "
                  "letters, digits, '_' and '-'")
        return None
    return value


def _scale(ctx: _Context, value: object, line: int, where: str) -> Scale | None:
    if not isinstance(value, _Map):
        ctx.error(line, where, "a scale must be a mapping with min and max")
        return None
    _check_keys(ctx, value, _SCALE_KEYS, where)
    low = _int(ctx, value.get("min"), _key_line(value, "min"), where, "scale min")
    high = _int(ctx, value.get("max"), _key_line(value, "max"), where, "scale max")
    if low is None or high is None:
        return None
    if high <= low:
        ctx.error(value.line, where, f"scale max {high} must be above min {low}")
        return None
    if high - low > 20:
        ctx.error(value.line, where, "a scale may have at most 21 points")
        return None
    labels: list[tuple[int, Text]] = []
    raw_labels = value.get("labels", _Map())
    if not isinstance(raw_labels, _Map):
        ctx.error(_key_line(value, "labels"), where, "scale labels must map points to texts")
    else:
        for key, label in raw_labels.items():
            key_line = _key_line(raw_labels, key)
            try:
                point = int(key)
            except ValueError:
                ctx.error(key_line, where, f"scale label key '{key}' is not a point")
                continue
            if not low <= point <= high:
                ctx.error(key_line, where, f"scale label {point} is outside {low}–{high}")
                continue
            text = _text(ctx, label, key_line, where, f"scale label {point}")
            if text:
                labels.append((point, text))
    return Scale(
        min=low,
        max=high,
        labels=tuple(sorted(labels, key=lambda pair: pair[0])),
        dont_know=_bool(ctx, value, "dont_know", where),
        not_relevant=_bool(ctx, value, "not_relevant", where),
    )


def _choices(ctx: _Context, raw: object, line: int, where: str, what: str) -> list[_Map]:
    if not isinstance(raw, _List) or not raw:
        ctx.error(line, where, f"{what} must be a non-empty list")
        return []
    good: list[_Map] = []
    for entry in raw:
        if isinstance(entry, _Map):
            good.append(entry)
        else:
            ctx.error(_line_of(entry, raw.line), where, f"each of {what} must be a mapping")
    return good


def _options(ctx: _Context, item: _Map, where: str) -> tuple[Option, ...]:
    options: list[Option] = []
    seen: set[str] = set()
    for raw in _choices(ctx, item.get("options"), _key_line(item, "options"), where, "options"):
        _check_keys(ctx, raw, _OPTION_KEYS, where)
        option_id = _check_id(ctx, raw.get("id"), _key_line(raw, "id"), where, "option id")
        label = _text(ctx, raw.get("label"), _key_line(raw, "label"), where, "option label")
        synonyms = raw.get("synonyms", [])
        if not isinstance(synonyms, list) or not all(isinstance(s, str) for s in synonyms):
            ctx.error(_key_line(raw, "synonyms"), where, "synonyms must be a list of words")
            synonyms = []
        if option_id in seen:
            ctx.error(raw.line, where, f"option id '{option_id}' is used twice")
        if option_id and label:
            seen.add(option_id)
            options.append(Option(
                id=option_id,
                label=label,
                synonyms=tuple(cast(list[str], synonyms)),
                exclusive=_bool(ctx, raw, "exclusive", where),
            ))
    return tuple(options)


def _rows(ctx: _Context, item: _Map, where: str) -> tuple[Row, ...]:
    rows: list[Row] = []
    seen: set[str] = set()
    for raw in _choices(ctx, item.get("rows"), _key_line(item, "rows"), where, "rows"):
        _check_keys(ctx, raw, {"id", "label"}, where)
        row_id = _check_id(ctx, raw.get("id"), _key_line(raw, "id"), where, "row id")
        label = _text(ctx, raw.get("label"), _key_line(raw, "label"), where, "row label")
        if row_id in seen:
            ctx.error(raw.line, where, f"row id '{row_id}' is used twice")
        if row_id and label:
            seen.add(row_id)
            rows.append(Row(id=row_id, label=label))
    return tuple(rows)


class _Scope:
    """What a condition may refer to: the items (and grid rows) before the current one."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}

    def target(self, answer_id: str) -> tuple[Item, bool] | None:
        """The item an answer id names, and whether it names a grid row."""
        if answer_id in self.items:
            return self.items[answer_id], False
        head, _, row = answer_id.partition(".")
        item = self.items.get(head)
        if item and item.type is ItemType.GRID and any(r.id == row for r in item.rows):
            return item, True
        return None


def _allowed_values(item: Item, is_row: bool) -> tuple[set[str | int], str] | None:
    """The values a comparison with this answer may name, and how to describe them."""
    kind = item.row_type if is_row else item.type.value
    scale = item.scale
    if kind in (ItemType.SINGLE, ItemType.MULTI):
        return {o.id for o in item.options}, "option"
    if kind == "yesno":
        return {YES, NO, DONT_KNOW}, "yes/no value"
    if kind in ("scale",) and scale is not None:
        values: set[str | int] = set(range(scale.min, scale.max + 1))
        values |= {DONT_KNOW, NOT_RELEVANT}
        return values, "scale value"
    return None


def _condition(ctx: _Context, raw: object, line: int, where: str,
               scope: _Scope) -> Condition | None:
    if not isinstance(raw, _Map):
        ctx.error(line, where, "show_if must be a mapping")
        return None
    line = raw.line
    for combinator in ("any", "all"):
        if combinator in raw:
            if len(raw) != 1:
                ctx.error(line, where, f"'{combinator}' must stand alone in show_if")
                return None
            parts_raw = raw[combinator]
            if not isinstance(parts_raw, _List) or not parts_raw:
                ctx.error(line, where, f"'{combinator}' needs a non-empty list of conditions")
                return None
            parts = [_condition(ctx, p, _line_of(p, line), where, scope) for p in parts_raw]
            if any(p is None for p in parts):
                return None
            clean = tuple(p for p in parts if p is not None)
            return AnyOf(clean) if combinator == "any" else AllOf(clean)
    if "not" in raw:
        if len(raw) != 1:
            ctx.error(line, where, "'not' must stand alone in show_if")
            return None
        part = _condition(ctx, raw["not"], _key_line(raw, "not"), where, scope)
        return Not(part) if part is not None else None
    if "item" not in raw:
        ctx.error(line, where, "show_if needs 'item' (or any/all/not)")
        return None
    ops = [key for key in raw if key != "item"]
    unknown = [op for op in ops if op not in _COMPARE_OPS]
    if unknown:
        ctx.error(_key_line(raw, unknown[0]), where, f"unknown operator '{unknown[0]}' in show_if")
        return None
    if len(ops) != 1:
        ctx.error(line, where, "show_if needs exactly one operator: " + ", ".join(_COMPARE_OPS))
        return None
    op = ops[0]
    answer_id = str(raw["item"])
    target = scope.target(answer_id)
    if target is None:
        ctx.error(_key_line(raw, "item"), where,
                  f"show_if refers to '{answer_id}', which is not an earlier item")
        return None
    item, is_row = target
    value = raw[op]
    values: tuple[str | int, ...]
    if op == "answered":
        if value is not True:
            ctx.error(_key_line(raw, op), where, "'answered' must be true")
            return None
        values = ()
    elif op == "in":
        if not isinstance(value, list) or not value:
            ctx.error(_key_line(raw, op), where, "'in' needs a non-empty list")
            return None
        values = tuple(cast(list[str | int], value))
    else:
        if isinstance(value, bool):
            # YAML reads bare yes/no as booleans; take them as the yes/no answers.
            value = YES if value else NO
        if not isinstance(value, str | int):
            ctx.error(_key_line(raw, op), where, f"'{op}' needs a single value")
            return None
        values = (value,)
    if op in ("gte", "lte"):
        if not isinstance(values[0], int) or not (
            item.type in (ItemType.NUMBER, ItemType.SCALE) or (is_row and item.row_type == "scale")
        ):
            ctx.error(_key_line(raw, op), where,
                      f"'{op}' needs a number and a number or scale item")
            return None
    elif op == "includes" and item.type is not ItemType.MULTI:
        ctx.error(_key_line(raw, op), where, "'includes' works only on a multiple choice item")
        return None
    elif op != "answered":
        if item.type is ItemType.GRID and not is_row:
            ctx.error(_key_line(raw, "item"), where,
                      f"show_if must name a row of grid '{item.id}' (e.g. {item.id}.ROW)")
            return None
        allowed = _allowed_values(item, is_row)
        if allowed is not None:
            known, what = allowed
            for v in values:
                normal: str | int = (YES if v else NO) if isinstance(v, bool) else v
                if normal not in known:
                    kind = "option" if what == "option" else what
                    ctx.error(_key_line(raw, op), where, f"unknown {kind} '{v}' in show_if")
                    return None
            values = tuple((YES if v else NO) if isinstance(v, bool) else v for v in values)
    return Compare(answer_id=answer_id, op=cast(CompareOp, op), value=values)


def _item(ctx: _Context, raw: _Map, number: int, page_id: str, scope: _Scope,
          scales: dict[str, Scale]) -> Item | None:
    item_id = _check_id(ctx, raw.get("id"), _key_line(raw, "id"), "", "item id")
    where = f"item {item_id}" if item_id else f"item #{number}"
    _check_keys(ctx, raw, _ITEM_KEYS, where)
    type_raw = raw.get("type")
    try:
        item_type = ItemType(str(type_raw))
    except ValueError:
        ctx.error(_key_line(raw, "type"), where,
                  f"unknown type {type_raw!r}; use one of {', '.join(t.value for t in ItemType)}")
        return None
    for key in raw:
        if key in _ITEM_KEYS and key not in _COMMON_KEYS and key not in _TYPE_KEYS[item_type]:
            ctx.error(_key_line(raw, key), where, f"'{key}' does not apply to a {item_type} item")
    text = _text(ctx, raw.get("text"), _key_line(raw, "text"), where, "text")
    help_text = None
    if "help" in raw:
        help_text = _text(ctx, raw["help"], _key_line(raw, "help"), where, "help")
    show_if = None
    if "show_if" in raw:
        show_if = _condition(ctx, raw["show_if"], _key_line(raw, "show_if"), where, scope)
    options: tuple[Option, ...] = ()
    rows: tuple[Row, ...] = ()
    scale: Scale | None = None
    low = high = max_choices = max_length = None
    row_type = "scale"
    if item_type in (ItemType.SINGLE, ItemType.MULTI):
        options = _options(ctx, raw, where)
    if item_type is ItemType.MULTI and "max_choices" in raw:
        max_choices = _int(ctx, raw["max_choices"], _key_line(raw, "max_choices"), where,
                           "max_choices")
        if max_choices is not None and max_choices < 1:
            ctx.error(_key_line(raw, "max_choices"), where, "max_choices must be at least 1")
    if item_type is ItemType.GRID:
        rows = _rows(ctx, raw, where)
        row_type = str(raw.get("row_type", "scale"))
        if row_type not in ("scale", "yesno"):
            ctx.error(_key_line(raw, "row_type"), where, "row_type must be scale or yesno")
        elif row_type == "yesno" and "scale" in raw:
            ctx.error(_key_line(raw, "scale"), where, "a yes/no grid has no scale")
        elif row_type == "scale" and "dont_know" in raw:
            ctx.error(_key_line(raw, "dont_know"), where,
                      "put dont_know in the scale of a scale grid")
    if item_type is ItemType.SCALE or (item_type is ItemType.GRID and row_type == "scale"):
        scale_raw = raw.get("scale")
        if isinstance(scale_raw, str):
            scale = scales.get(scale_raw)
            if scale is None:
                ctx.error(_key_line(raw, "scale"), where, f"unknown scale '{scale_raw}'")
        elif scale_raw is None:
            ctx.error(raw.line, where, "needs a scale")
        else:
            scale = _scale(ctx, scale_raw, _key_line(raw, "scale"), where)
    if item_type is ItemType.NUMBER:
        if "min" in raw:
            low = _int(ctx, raw["min"], _key_line(raw, "min"), where, "min")
        if "max" in raw:
            high = _int(ctx, raw["max"], _key_line(raw, "max"), where, "max")
        if low is not None and high is not None and high < low:
            ctx.error(raw.line, where, f"max {high} is below min {low}")
    if item_type is ItemType.TEXT:
        max_length = DEFAULT_TEXT_MAX_LENGTH
        if "max_length" in raw:
            max_length = _int(ctx, raw["max_length"], _key_line(raw, "max_length"), where,
                              "max_length")
    if item_id is None or text is None:
        return None
    return Item(
        id=item_id,
        type=item_type,
        text=text,
        number=number,
        page=page_id,
        help=help_text,
        required=_bool(ctx, raw, "required", where),
        show_if=show_if,
        options=options,
        max_choices=max_choices,
        scale=scale,
        dont_know=_bool(ctx, raw, "dont_know", where),
        min=low,
        max=high,
        max_length=max_length,
        rows=rows,
        row_type="yesno" if row_type == "yesno" else "scale",
    )


def _languages(ctx: _Context, doc: _Map) -> tuple[Lang, ...]:
    raw = doc.get("languages", ["nb"])
    line = _key_line(doc, "languages")
    if not isinstance(raw, list) or not raw:
        ctx.error(line, "", "languages must be a list such as [nb, nn]")
        return ("nb",)
    langs: list[Lang] = []
    for lang in raw:
        if lang not in LANGS:
            ctx.error(line, "", f"unknown language '{lang}'; use nb, nn or en")
        elif lang not in langs:
            langs.append(cast(Lang, lang))
    if "nb" not in langs:
        ctx.error(line, "", "languages must include nb")
        langs.insert(0, "nb")
    return tuple(langs)


def _problem_line(problem: str) -> int:
    """The line number in a `source:line: ...` problem, for listing problems in file order."""
    parts = problem.rsplit(": ", 1)[0].split(":")
    for part in parts[1:]:
        if part.isdigit():
            return int(part)
    return 0


def parse(source_text: str, source: str = "<questionnaire>") -> Questionnaire:
    """Validate a questionnaire given as YAML text.

    Raises:
        QuestionnaireError: listing every problem as `source:line: where: message`.
    """
    ctx = _Context(source)
    try:
        doc = yaml.load(source_text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise QuestionnaireError([f"{source}:{line}: not valid YAML: {problem}"]) from exc
    if not isinstance(doc, _Map):
        raise QuestionnaireError([f"{source}:1: a questionnaire must be a YAML mapping"])
    _check_keys(ctx, doc, _TOP_KEYS, "")
    version = doc.get("spec_version")
    if version != SPEC_VERSION:
        ctx.error(_key_line(doc, "spec_version"), "",
                  f"spec_version must be {SPEC_VERSION} (found {version!r})")
    ctx.languages = _languages(ctx, doc)
    q_id = _check_id(ctx, doc.get("id"), _key_line(doc, "id"), "", "questionnaire id")
    title = _text(ctx, doc.get("title"), _key_line(doc, "title"), "", "title")
    intro = outro = None
    if "intro" in doc:
        intro = _text(ctx, doc["intro"], _key_line(doc, "intro"), "", "intro")
    if "outro" in doc:
        outro = _text(ctx, doc["outro"], _key_line(doc, "outro"), "", "outro")

    scales: dict[str, Scale] = {}
    raw_scales = doc.get("scales", _Map())
    if isinstance(raw_scales, _Map):
        for name, raw in raw_scales.items():
            scale = _scale(ctx, raw, _key_line(raw_scales, name), f"scale {name}")
            if scale:
                scales[name] = scale
    else:
        ctx.error(_key_line(doc, "scales"), "", "scales must be a mapping of names to scales")

    scope = _Scope()
    pages: list[Page] = []
    page_ids: set[str] = set()
    number = 0
    for raw_page in _choices(ctx, doc.get("pages"), _key_line(doc, "pages"), "", "pages"):
        page_id = _check_id(ctx, raw_page.get("id"), _key_line(raw_page, "id"), "", "page id")
        where = f"page {page_id}"
        _check_keys(ctx, raw_page, _PAGE_KEYS, where)
        if page_id in page_ids:
            ctx.error(raw_page.line, where, "page id is used twice")
        page_ids.add(page_id or "")
        page_title = _text(ctx, raw_page.get("title"), _key_line(raw_page, "title"), where, "title")
        page_intro = None
        if "intro" in raw_page:
            page_intro = _text(ctx, raw_page["intro"], _key_line(raw_page, "intro"), where, "intro")
        items: list[Item] = []
        for raw_item in _choices(ctx, raw_page.get("items"), _key_line(raw_page, "items"), where,
                                 "items"):
            number += 1
            item = _item(ctx, raw_item, number, page_id or "", scope, scales)
            if item is None:
                continue
            if item.id in scope.items:
                ctx.error(raw_item.line, f"item {item.id}", "item id is used twice")
                continue
            scope.items[item.id] = item
            items.append(item)
        if page_id and page_title:
            pages.append(Page(id=page_id, title=page_title, intro=page_intro, items=tuple(items)))
    if ctx.problems:
        raise QuestionnaireError(sorted(ctx.problems, key=_problem_line))
    if q_id is None or title is None:  # reported above; keeps the type checker informed
        raise QuestionnaireError([f"{source}:1: the questionnaire needs an id and a title"])
    revision = hashlib.sha256(
        json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()[:12]
    return Questionnaire(
        id=q_id,
        spec_version=SPEC_VERSION,
        title=title,
        languages=ctx.languages,
        pages=tuple(pages),
        intro=intro,
        outro=outro,
        revision=revision,
    )


def load_file(path: str | Path) -> Questionnaire:
    """Load and validate one questionnaire file (errors name this file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionnaireError([f"{path}:1: cannot read: {exc}"]) from exc
    return parse(text, source=str(path))


def shipped() -> dict[str, Path]:
    """The questionnaires that come with svarbot, by id (file name without .yaml)."""
    folder = resources.files("flows.questionnaires")
    return {
        entry.name.removesuffix(".yaml"): Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def load_shipped(questionnaire_id: str) -> Questionnaire:
    """Load a shipped questionnaire by id."""
    files = shipped()
    if questionnaire_id not in files:
        known = ", ".join(sorted(files)) or "none"
        raise QuestionnaireError(
            [f"no shipped questionnaire '{questionnaire_id}' (known: {known})"])
    return load_file(files[questionnaire_id])


def load_reference(reference: str) -> Questionnaire:
    """A questionnaire named as a survey names it: a file path, or the id of a shipped one."""
    if reference.endswith((".yaml", ".yml")) or Path(reference).exists():
        return load_file(reference)
    return load_shipped(reference)
