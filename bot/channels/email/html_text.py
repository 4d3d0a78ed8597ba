"""HTML mail to plain text, and removal of the quote containers mail clients insert.

Used for replies that carry no text/plain part. Quote containers must be removed on the HTML
tree: after conversion the quoted original of Gmail or Outlook is no longer `>`-prefixed and
cannot be told apart from the answer. The stdlib "html.parser" backend is used so no C parser
(lxml) is needed.

The markup is hostile input, and the stdlib parser is not built for that: it rescans to the
end of the document for every construct that is never closed (`<!--` or `<a` a hundred
thousand times takes minutes), and the tree it builds is as deep as the nesting (Beautiful
Soup's own comparisons recurse over it). So before parsing, `_defuse` rewrites the markup in
one linear pass into markup the parser reads in linear time: comments, declarations and
processing instructions (which show no text) are dropped, script and style elements too, a
`<` that opens no complete tag becomes text, nesting stops at `MAX_DEPTH` and elements at
`MAX_ELEMENTS` (the text inside is kept, only the structure is flattened: a block below the
depth still begins a line), and end tags that close nothing are dropped. The tree is then
walked without recursion, once to find the quote (by class and id, not CSS selectors:
soupsieve ran each selector over every element) and once to render the text without it; the
tree itself is not changed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from bs4 import BeautifulSoup
from bs4.builder import HTMLTreeBuilder
from bs4.element import (
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    PageElement,
    ProcessingInstruction,
    Tag,
)

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "html_reply_text", "html_to_text",
           "strip_quote_containers"]

#: Elements nested deeper than this are flattened into their ancestor at this depth. Mail
#: clients nest a few levels per quoted reply; Beautiful Soup recurses over the depth.
MAX_DEPTH = 128
#: Elements beyond this many are dropped (their text stays): a long Outlook thread has a
#: few thousand, and each costs the tree builder some 50 µs.
MAX_ELEMENTS = 10_000

# Containers whose own subtree is the quote (the answer may continue after them), by the
# clients' markup: Gmail, Apple Mail and Thunderbird (blockquote type=cite), Outlook on the web
# (#Signature), Yahoo, Proton.
_REMOVE_CLASSES = frozenset({"gmail_quote_container", "gmail_extra", "gmail_signature",
                             "yahoo_quoted", "protonmail_quote"})
_REMOVE_DIV_CLASSES = frozenset({"gmail_quote"})
_REMOVE_IDS = frozenset({"Signature"})
# Markers after which everything in document order is the quoted original: Thunderbird's
# attribution, Outlook's "append on send" anchor and its reply header block.
_CUT_CLASSES = frozenset({"moz-cite-prefix"})
_CUT_IDS = frozenset({"appendonsend", "divRplyFwdMsg"})
# Outlook desktop separates the quoted header with a top border in one of these colours.
_OUTLOOK_BORDER = re.compile(r"border-top:solid(?:#e1e1e1|#b5c4df)1\.0pt")
# A cut removes what follows up to the document's body, not beyond it.
_CUT_STOPS = frozenset({"body", "html", "[document]"})

_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset",
     "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
     "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul"}
)
_SKIP_TAGS = frozenset({"head", "script", "style", "title", "template", "noscript"})
_WHITESPACE = re.compile(r"[ \t\r\n\f]+")


_VOID = frozenset(HTMLTreeBuilder.DEFAULT_EMPTY_ELEMENT_TAGS or ())
#: A complete start or end tag (quoted attribute values may hold `<` and `>`), or a
#: declaration, marked section or processing instruction. No part can run past the next `<`
#: outside quotes, so each match costs at most the distance to it.
_CONSTRUCT = re.compile(
    r"""<(?:(?P<end>/?)(?P<name>[a-zA-Z][^\t\n\r\f />\x00<]*)"""
    r"""[^<>"']*(?:(?:"[^"]*"|'[^']*')[^<>"']*)*>|[!?][^<>]*>)"""
)
_COMMENT_END = re.compile(r"--\s*>")  # as html.parser ends a comment
_RAW_END = {name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE) for name in ("script", "style")}


def _defuse(html: str) -> str:
    """`html` rewritten so that html.parser reads it in linear time (see the module docstring).

    One pass, left to right; every search starts where the previous one ended or stops at the
    next `<`, so the work is linear in the length.
    """
    html = html.replace("\x00", "")
    out: list[str] = []
    stack: list[str] = []
    open_names: Counter[str] = Counter()
    dropped: Counter[str] = Counter()  # start tags left out, by name: their end tags go too
    elements = 0
    pos = 0
    n = len(html)
    while pos < n:
        lt = html.find("<", pos)
        if lt < 0:
            out.append(html[pos:])
            break
        if lt > pos:
            out.append(html[pos:lt])
        if html.startswith("<!--", lt):
            close = _COMMENT_END.search(html, lt + 4)
            if close is None:
                break  # an unclosed comment hides the rest, as in a browser
            pos = close.end()
            continue
        match = _CONSTRUCT.match(html, lt)
        if match is None:
            out.append("&lt;")
            pos = lt + 1
            continue
        pos = match.end()
        name = match.group("name")
        if name is None:
            continue  # a declaration, marked section or processing instruction: no text
        name = name.lower()
        tag = match.group()
        if match.group("end"):
            if dropped[name]:
                dropped[name] -= 1
            elif open_names[name]:
                while stack:
                    top = stack.pop()
                    open_names[top] -= 1
                    if top == name:
                        break
                out.append(tag)
            continue  # an end tag that closes nothing open is dropped
        empty = name in _VOID or tag.endswith("/>")
        if name in _RAW_END and not empty:
            close = _RAW_END[name].search(html, pos)
            if close is None:
                break  # html.parser would hide the rest inside the element
            pos = close.end()
            continue
        elements += 1
        if elements > MAX_ELEMENTS or (not empty and len(stack) >= MAX_DEPTH):
            if not empty:
                dropped[name] += 1
            if name in _BLOCK_TAGS and elements <= MAX_ELEMENTS and out[-1:] != ["<br>"]:
                out.append("<br>")  # a flattened block still begins a line
            continue
        out.append(tag)
        if not empty:
            stack.append(name)
            open_names[name] += 1
    text = "".join(out)
    if len(text) <= 256 and "\n" not in text:
        text += "\n"  # Beautiful Soup takes short markup without a newline for a file name
    return text


def _parse(html: str) -> BeautifulSoup:
    return BeautifulSoup(_defuse(html), "html.parser")


@dataclass(frozen=True, slots=True)
class _Quote:
    """Where the quote is in a parsed reply: containers to leave out, and the element from
    which on (in document order, up to the body) everything is the quoted original."""

    removed: frozenset[int]  # id() of each removed element
    cut: Tag | None


def _classes(tag: Tag) -> list[str]:
    value = tag.get("class")
    if isinstance(value, str):
        return value.split()
    return list(value) if value else []


def _find_quote(soup: BeautifulSoup) -> _Quote:
    """The quote containers and the cut, found in one walk in document order.

    A container's subtree is not searched (what it holds goes with it). The first cut marker
    ends the walk: everything after it goes anyway.
    """
    removed: set[int] = set()
    stack: list[Iterator[PageElement]] = [iter(soup.contents)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        if not isinstance(child, Tag):
            continue
        classes = _classes(child)
        element_id = child.get("id")
        if (_REMOVE_CLASSES.intersection(classes)
                or (child.name == "div" and _REMOVE_DIV_CLASSES.intersection(classes))
                or (child.name == "blockquote" and str(child.get("type", "")).lower() == "cite")
                or element_id in _REMOVE_IDS):
            removed.add(id(child))
            continue
        if (_CUT_CLASSES.intersection(classes) or element_id in _CUT_IDS
                or (child.name == "div" and _is_outlook_separator(child))):
            if element_id == "divRplyFwdMsg":
                previous = child.find_previous_sibling()
                if isinstance(previous, Tag) and previous.name == "hr":
                    removed.add(id(previous))
            return _Quote(frozenset(removed), child)
        stack.append(iter(child.contents))
    return _Quote(frozenset(removed), None)


def _is_outlook_separator(tag: Tag) -> bool:
    style = tag.get("style")
    if not isinstance(style, str):
        return False
    return _OUTLOOK_BORDER.search(style.replace(" ", "").lower()) is not None


def _remove_following(tag: Tag) -> None:
    """Remove `tag` and everything after it in document order, up to the body."""
    node: Tag | None = tag
    while node is not None and node.name not in _CUT_STOPS:
        for sibling in list(node.next_siblings):
            sibling.extract()
        parent = node.parent
        if node is tag:
            node.extract()
        node = parent


def strip_quote_containers(html: str) -> str:
    """Return the HTML with known reply-quote containers (and what follows them) removed."""
    soup = _parse(html)
    quote = _find_quote(soup)
    for tag in list(soup.find_all(True)):
        if isinstance(tag, Tag) and id(tag) in quote.removed and not tag.decomposed:
            tag.decompose()
    if quote.cut is not None:
        _remove_following(quote.cut)
    return str(soup)


class _TextWriter:
    """Accumulates text with block boundaries as single line breaks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.at_line_start = True

    def newline(self) -> None:
        self.parts.append("\n")
        self.at_line_start = True

    def block_break(self) -> None:
        if not self.at_line_start:
            self.newline()

    def text(self, value: str, *, pre: bool) -> None:
        if not pre:
            value = _WHITESPACE.sub(" ", value)
            if self.at_line_start:
                value = value.lstrip(" ")
        if not value:
            return
        self.parts.append(value)
        self.at_line_start = value.endswith("\n")


def _render(root: Tag, quote: _Quote | None = None) -> str:
    """The text of `root`'s subtree, walked with an explicit stack (no recursion), without
    the quote when one is given (its containers, and everything from the cut on)."""
    removed = quote.removed if quote is not None else frozenset()
    cut = quote.cut if quote is not None else None
    out = _TextWriter()
    # Each level: the element, its children still to visit, whether inside <pre>, whether a
    # block.
    stack: list[tuple[Tag, Iterator[PageElement], bool, bool]] = [
        (root, iter(root.contents), False, False)]
    while stack:
        _, children, pre, block = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if block:
                out.block_break()
            continue
        if child is cut:
            # The cut and what follows it, at its level and at each level above up to the
            # body, is the quote: those levels have nothing more to show.
            for level in range(len(stack) - 1, -1, -1):
                element, _, level_pre, level_block = stack[level]
                stack[level] = (element, iter(()), level_pre, level_block)
                if element.name in _CUT_STOPS:
                    break
            continue
        if isinstance(child, (Comment, Doctype, Declaration, ProcessingInstruction)):
            continue
        if isinstance(child, NavigableString):
            out.text(str(child), pre=pre)
            continue
        if not isinstance(child, Tag) or id(child) in removed:
            continue
        name = child.name
        if name in _SKIP_TAGS:
            continue
        if name == "br":
            out.newline()
            continue
        if name in _BLOCK_TAGS:
            out.block_break()
            if name == "li":
                out.text("- ", pre=True)
                out.at_line_start = False
            stack.append((child, iter(child.contents), pre or name == "pre", True))
            continue
        stack.append((child, iter(child.contents), pre, False))
    lines = [line.rstrip() for line in "".join(out.parts).split("\n")]
    return "\n".join(lines).strip("\n")


def html_to_text(html: str) -> str:
    """Render HTML as plain text: blocks and `<br>` as line breaks, list items as "- item".

    Entities are decoded by the parser. The result keeps one line per visual line, which is
    what the plain-text trimmer expects.
    """
    return _render(_parse(html))


def html_reply_text(html: str) -> str:
    """`html_to_text(strip_quote_containers(html))`, parsing once and changing no tree: the
    quote is found in one walk and left out while rendering."""
    soup = _parse(html)
    return _render(soup, _find_quote(soup))
