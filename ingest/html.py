"""Extract a book's text from a Gutenberg HTML edition with BeautifulSoup.

Markup that is never prose is removed (head, style, script, the `#pgheader`/`#pgfooter`
blocks and `pg-header`/`pg-footer` sections, page-number spans, tables of contents);
every block element becomes its own paragraph, and the result goes through the same
`clean_text` as the plain-text route, which removes marker lines kept in `<pre>` blocks.
"""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, NavigableString, Tag
from bs4.dammit import EncodingDetector
from bs4.element import PreformattedString

from ingest.clean import CleanText, clean_text, decode_text

_BLOCKS = frozenset((
    "p", "div", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "table", "blockquote",
    "section", "article", "dd", "dt", "hr", "ul", "ol", "body",
))
_DROP_TAGS = ("head", "style", "script", "noscript", "title")
_GUTENBERG_BLOCK = re.compile(r"^pg-?(header|footer)$|^pglicense$", re.IGNORECASE)
_PAGE_NUMBER = re.compile(r"^(pagenum|pageno|page-?num|tei-pb|pb)$", re.IGNORECASE)
_TOC = re.compile(r"^(toc\d*|tei-index-toc|contents)$", re.IGNORECASE)
_BREAK = "\x00"  # paragraph boundary marker; never occurs in book text


def _classes(tag: Tag) -> list[str]:
    return list(tag.get("class") or []) + ([tag["id"]] if tag.get("id") else [])


def _is_toc_container(tag: Tag) -> bool:
    """A list or table whose text is almost all links inside the document: a table of contents."""
    if tag.name not in ("table", "ul", "ol"):
        return False
    text = tag.get_text(" ", strip=True)
    if not text:
        return False
    linked = sum(len(a.get_text(" ", strip=True)) for a in tag.find_all("a", href=True) if a["href"].startswith("#"))
    page_cells = sum(len(cell.get_text(strip=True)) for cell in tag.find_all(class_=re.compile("tocpg")))
    return (linked + page_cells) >= 0.5 * len(text.replace(" ", "")) or bool(tag.find(class_=re.compile("tocpg")))


def _unwanted(tag: Tag) -> bool:
    names = _classes(tag)
    if any(_GUTENBERG_BLOCK.match(name) for name in names):
        return True
    if tag.name == "span" and any(_PAGE_NUMBER.match(name) for name in names):
        return True
    return any(_TOC.match(name) for name in names) or _is_toc_container(tag)


def _collect(node: Tag, pieces: list[str]) -> None:
    """Text of `node` with a paragraph break around every block element (no tree edits: those are O(n))."""
    for child in node.children:
        if isinstance(child, NavigableString):
            if not isinstance(child, PreformattedString):  # comments, doctype, CDATA
                pieces.append(str(child))
        elif child.name == "br":
            pieces.append(" ")
        elif child.name == "pre":
            # <pre> keeps its own line structure: each line is its own paragraph.
            pieces.append(_BREAK + child.get_text().replace("\n", _BREAK) + _BREAK)
        elif child.name in _BLOCKS:
            pieces.append(_BREAK)
            _collect(child, pieces)
            pieces.append(_BREAK)
        else:
            _collect(child, pieces)


def _decode(markup: bytes) -> bytes | str:
    """UTF-8 as such; a page declaring its charset is left to BeautifulSoup; anything else is
    read like a text file (UTF-8, other bytes as cp1252), since guessing picks e.g. cp1250."""
    try:
        return markup.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if EncodingDetector.find_declared_encoding(markup, is_html=True):
        return markup
    return decode_text(markup)


def html_to_paragraphs(markup: bytes | str) -> str:
    """Book text as paragraphs separated by blank lines (boilerplate markers still present)."""
    if isinstance(markup, bytes):
        markup = _decode(markup)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(markup, "html.parser")
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(_unwanted):
        if not tag.decomposed:
            tag.decompose()
    pieces: list[str] = []
    _collect(soup, pieces)
    text = "".join(pieces)
    paragraphs = (" ".join(part.split()) for part in text.split(_BREAK))
    return "\n\n".join(part for part in paragraphs if part) + "\n"


def clean_html(markup: bytes | str) -> CleanText:
    """Clean one book's HTML edition: markup removal, then the shared text cleaning."""
    return clean_text(html_to_paragraphs(markup))
