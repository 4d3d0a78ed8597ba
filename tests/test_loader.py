"""Questionnaire files: the shipped ones load, and every kind of mistake is named with its line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flows.loader import QuestionnaireError, load_file, load_shipped, parse, shipped
from flows.model import ItemType

HEADER = """\
spec_version: 1
id: t
title: Test
languages: [nb]
pages:
  - id: p1
    title: Side 1
    items:
"""


def problems(items_yaml: str, header: str = HEADER) -> list[str]:
    """The problems the loader reports for a file with these items (indented as items)."""
    text = header + textwrap.indent(textwrap.dedent(items_yaml), "      ")
    with pytest.raises(QuestionnaireError) as info:
        parse(text, source="t.yaml")
    return info.value.problems


def test_shipped_questionnaires_load_with_all_item_types() -> None:
    """Both barometer questionnaires load, in bokmål and nynorsk, and use every item type."""
    assert set(shipped()) >= {"virksomhetsleder-2020", "ordforer-2020"}
    types: set[ItemType] = set()
    for q_id in ("virksomhetsleder-2020", "ordforer-2020"):
        q = load_shipped(q_id)
        assert {"nb", "nn"} <= set(q.languages)
        assert len(q.items) >= 10
        for item in q.items:
            assert item.text.nn, f"{q_id}:{item.id} has no nynorsk text"
            types.add(item.type)
        assert [i.number for i in q.items] == list(range(1, len(q.items) + 1))
    assert types == set(ItemType)


def test_no_negatively_phrased_yes_no_questions() -> None:
    """Yes/no questions never ask 'har dere ikke …', where 'jo' and 'ja' get confused."""
    for q_id in ("virksomhetsleder-2020", "ordforer-2020"):
        for item in load_shipped(q_id).items:
            if item.type is ItemType.YESNO or (item.row_type == "yesno" and item.rows):
                words = item.text.nb.lower().replace("?", " ").split()
                assert "ikke" not in words, f"{q_id}:{item.id}: {item.text.nb}"
                assert "ikkje" not in (item.text.nn or "").lower().split()


def test_unknown_option_in_show_if_names_file_line_and_item() -> None:
    """The issue's own example: an unknown option in show_if, reported as file:line: item."""
    found = problems("""\
        - id: sektor
          type: single
          text: Sektor?
          options:
            - {id: helse, label: Helse}
        - id: q7
          type: yesno
          text: Spørsmål?
          show_if: {item: sektor, equals: x}
        """)
    assert found == ["t.yaml:17: item q7: unknown option 'x' in show_if"]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ("- {id: a, type: yesno, text: A, show_if: {item: b, equals: 'yes'}}\n"
         "- {id: b, type: yesno, text: B}\n",
         "item a: show_if refers to 'b', which is not an earlier item"),
        ("- {id: a, type: bogus, text: A}\n", "item a: unknown type 'bogus'"),
        ("- {id: a, type: yesno, text: A, colour: red}\n", "item a: unknown key 'colour'"),
        ("- {id: a, type: yesno, text: A, options: []}\n",
         "item a: 'options' does not apply to a yesno item"),
        ("- {id: a, type: single, text: A}\n", "item a: options must be a non-empty list"),
        ("- {id: a, type: scale, text: A, scale: {min: 6, max: 1}}\n",
         "item a: scale max 1 must be above min 6"),
        ("- {id: a, type: scale, text: A, scale: nope}\n", "item a: unknown scale 'nope'"),
        ("- {id: a, type: number, text: A, min: ten}\n", "item a: min must be a whole number"),
        ("- {id: a, type: yesno, text: A}\n- {id: a, type: yesno, text: B}\n",
         "item a: item id is used twice"),
        ("- {id: a, type: multi, text: A, options: [{id: x, label: X}, {id: x, label: Y}]}\n",
         "item a: option id 'x' is used twice"),
        ("- {id: a, type: grid, text: A, rows: [{id: r, label: R}]}\n", "item a: needs a scale"),
        ("- {id: a, type: yesno, text: A}\n- {id: b, type: yesno, text: B, "
         "show_if: {item: a, gt: 1}}\n", "item b: unknown operator 'gt' in show_if"),
        ("- {id: a, type: yesno, text: A}\n- {id: b, type: yesno, text: B, "
         "show_if: {item: a, includes: 'yes'}}\n",
         "item b: 'includes' works only on a multiple choice item"),
        ("- {id: g, type: grid, row_type: yesno, text: G, rows: [{id: r, label: R}]}\n"
         "- {id: b, type: yesno, text: B, show_if: {item: g, equals: 'yes'}}\n",
         "item b: show_if must name a row of grid 'g'"),
        ("- {id: 9a, type: yesno, text: A}\n", "item id '9a' must start with a letter"),
    ],
)
def test_each_mistake_is_reported_with_its_item(items: str, expected: str) -> None:
    """Each kind of mistake gives a message naming the item, with a file:line prefix."""
    found = problems(items)
    assert any(expected in p for p in found), found
    assert all(p.startswith("t.yaml:") and p.split(":")[1].isdigit() for p in found)


def test_missing_language_is_reported() -> None:
    """A file that promises nynorsk must have it on every text."""
    header = HEADER.replace("languages: [nb]", "languages: [nb, nn]").replace(
        "title: Test", "title: {nb: Test, nn: Test}").replace(
        "title: Side 1", "title: {nb: Side, nn: Side}")
    found = problems("- id: a\n  type: yesno\n  text: {nb: Har dere}\n", header)
    assert found == ["t.yaml:11: item a: text is missing nn"]


def test_all_problems_are_listed_in_line_order() -> None:
    """Several problems are all reported, first line first, so one pass fixes them."""
    found = problems("""\
        - {id: a, type: yesno, text: A, colour: red}
        - {id: b, type: nope, text: B}
        - {id: c, type: number, text: C, min: 5, max: 1}
        """)
    lines = [int(p.split(":")[1]) for p in found]
    assert len(found) == 3
    assert lines == sorted(lines)


def test_broken_yaml_and_wrong_version() -> None:
    """Broken YAML gives its line; a wrong spec_version is named."""
    with pytest.raises(QuestionnaireError) as info:
        parse("spec_version: 1\nid: [unclosed\n", source="b.yaml")
    assert info.value.problems[0].startswith("b.yaml:")
    assert "not valid YAML" in info.value.problems[0]
    with pytest.raises(QuestionnaireError) as info:
        parse(HEADER.replace("spec_version: 1", "spec_version: 7") +
              "      - {id: a, type: yesno, text: A}\n", source="v.yaml")
    assert info.value.problems == ["v.yaml:1: spec_version must be 1 (found 7)"]


def test_missing_file(tmp_path: Path) -> None:
    """A file that does not exist is one clear problem, not a traceback."""
    with pytest.raises(QuestionnaireError) as info:
        load_file(tmp_path / "nope.yaml")
    assert "nope.yaml:1: cannot read" in info.value.problems[0]


def test_revision_changes_with_content_not_formatting() -> None:
    """The revision identifies the content: reformatting keeps it, a changed text does not."""
    body = "      - {id: a, type: yesno, text: A}\n"
    one = parse(HEADER + body)
    spaced = parse(HEADER.replace("title: Test", "title:   Test") + body)
    other = parse(HEADER + body.replace("A", "B"))
    assert one.revision == spaced.revision
    assert one.revision != other.revision
