"""HTML mail to plain text, and removal of the quote containers mail clients insert.

Used for replies that carry no text/plain part. Quote containers must be removed on the HTML
tree: after conversion the quoted original of Gmail or Outlook is no longer `>`-prefixed and
cannot be told apart from the answer. The stdlib "html.parser" backend is used so no C parser
(lxml) is needed.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.element import (
    Comment,
    Declaration,
    Doctype,
    NavigableString,
    ProcessingInstruction,
    Tag,
)

__all__ = ["html_to_text", "strip_quote_containers"]

# Containers whose own subtree is the quote (the answer may continue after them).
_REMOVE_SELECTORS = (
    "div.gmail_quote",
    ".gmail_quote_container",
    ".gmail_extra",
    ".gmail_signature",
    'blockquote[type="cite"]',
    "#Signature",
    ".yahoo_quoted",
    ".protonmail_quote",
)
# Markers after which everything in document order is the quoted original.
_CUT_AFTER_SELECTORS = (
    ".moz-cite-prefix",
    "#appendonsend",
    "#divRplyFwdMsg",
)
# Outlook desktop separates the quoted header with a top border in one of these colours.
_OUTLOOK_BORDER = re.compile(r"border-top:solid(?:#e1e1e1|#b5c4df)1\.0pt")

_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset",
     "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
     "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul"}
)
_SKIP_TAGS = frozenset({"head", "script", "style", "title", "template", "noscript"})
_WHITESPACE = re.compile(r"[ \t\r\n\f]+")


def _parse(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def _remove_following(tag: Tag) -> None:
    """Remove `tag` and everything after it in document order."""
    node: Tag | None = tag
    while node is not None and node.name not in ("body", "html", "[document]"):
        for sibling in list(node.next_siblings):
            sibling.extract()
        parent = node.parent
        if node is tag:
            node.extract()
        node = parent


def _is_outlook_separator(tag: Tag) -> bool:
    style = tag.get("style")
    if not isinstance(style, str):
        return False
    return _OUTLOOK_BORDER.search(style.replace(" ", "").lower()) is not None


def _strip_soup(soup: BeautifulSoup) -> None:
    for selector in _REMOVE_SELECTORS:
        for tag in soup.select(selector):
            tag.decompose()
    for selector in _CUT_AFTER_SELECTORS:
        found = soup.select_one(selector)
        if found is None:
            continue
        if selector == "#divRplyFwdMsg":
            previous = found.find_previous_sibling()
            if isinstance(previous, Tag) and previous.name == "hr":
                previous.decompose()
        _remove_following(found)
    for div in soup.find_all("div"):
        if isinstance(div, Tag) and div.parent is not None and _is_outlook_separator(div):
            _remove_following(div)
            break


def strip_quote_containers(html: str) -> str:
    """Return the HTML with known reply-quote containers (and what follows them) removed."""
    soup = _parse(html)
    _strip_soup(soup)
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


def _walk(node: Tag, out: _TextWriter, *, pre: bool) -> None:
    for child in node.children:
        if isinstance(child, (Comment, Doctype, Declaration, ProcessingInstruction)):
            continue
        if isinstance(child, NavigableString):
            out.text(str(child), pre=pre)
            continue
        if not isinstance(child, Tag):
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
            _walk(child, out, pre=pre or name == "pre")
            out.block_break()
            continue
        _walk(child, out, pre=pre)


def html_to_text(html: str) -> str:
    """Render HTML as plain text: blocks and `<br>` as line breaks, list items as "- item".

    Entities are decoded by the parser. The result keeps one line per visual line, which is
    what the plain-text trimmer expects.
    """
    soup = _parse(html)
    out = _TextWriter()
    _walk(soup, out, pre=False)
    lines = [line.rstrip() for line in "".join(out.parts).split("\n")]
    return "\n".join(lines).strip("\n")
