"""Strip Project Gutenberg boilerplate and front matter from a plain-text book.

`clean_text` works on text, so the HTML route (see `ingest.html`) reuses it after
turning markup into paragraphs. Steps, in order:

1. byte-order marks and CRLF / CR line ends;
2. bracketed editorial notes: `[Illustration...]`, `[Transcriber's Note...]`;
3. header: everything up to the START marker (`*** START OF THIS PROJECT GUTENBERG EBOOK X ***`,
   `***START OF THE PROJECT GUTENBERG EBOOK X***`, EBook/EText variants, `*END*THE SMALL PRINT`);
4. footer and licence: everything from the first END marker (`*** END OF ...`,
   `End of the Project Gutenberg EBook of ...`, `End of Project Gutenberg's ...`);
   then blocks of transcriber's notes and `Produced by` credits;
5. front matter: title page, contents, epigraphs: every block before the first prose
   paragraph (books without a START marker keep their title page, so this matters);
6. headings (blocks of capitals or `Chapter IV.`-style lines, `THE END`) and a trailing
   footnotes section.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_EBOOK = r"E-?(?:BOOK|TEXT)"
_START = re.compile(
    rf"^[ \t]*(?:\*{{3}}[ \t]*START[ \t]+OF[ \t]+(?:THIS|THE)[ \t]+PROJECT[ \t]+GUTENBERG[ \t]+{_EBOOK}\b.*"
    r"|\*END\*[ \t]*THE SMALL PRINT.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_END = re.compile(
    rf"^[ \t]*(?:\*{{3}}[ \t]*END[ \t]+OF[ \t]+(?:THIS|THE)[ \t]+PROJECT[ \t]+GUTENBERG[ \t]+{_EBOOK}\b"
    rf"|End[ \t]+of[ \t]+(?:the[ \t]+)?Project[ \t]+Gutenberg(?:'s|’s)?[ \t]+(?:{_EBOOK}\b|.*,)"
    r"|\*{3}[ \t]*START:[ \t]*FULL LICENSE).*$",
    re.IGNORECASE | re.MULTILINE,
)
_BLOCK_SPLIT = re.compile(r"\n[ \t]*\n")
_BRACKET_NOTE = re.compile(
    # A note may wrap over lines but never spans a blank line, so an unclosed `[Illustration`
    # cannot swallow paragraphs (or a START marker) up to some later `]`.
    r"\[\s*(?:Illustration|Transcriber[’']?s?\s+Note|Frontispiece|Decoration)\b(?:[^\]\n]|\n(?![ \t]*\n))*\]",
    re.IGNORECASE,
)
_NOTE_BLOCK = re.compile(
    r"^\s*(?:Produced by\b|Transcriber[’']?s?\s+Notes?\b|E-?text prepared by\b|This e-?(?:book|text) was\b)",
    re.IGNORECASE,
)
_HEADING_WORDS = re.compile(
    r"^\s*(?:part|book|chapter|epilogue|prologue|conclusion|section|letter|contents|footnotes|notes)"
    r"\b[\s.:]*(?:[ivxlcdm]+\b|\d+\b|the\b|one\b|two\b|three\b|four\b|five\b|six\b|[.:]?\s*$)",
    re.IGNORECASE,
)
_THE_END = re.compile(r"^\s*(?:the\s+end|finis)[.!]?\s*$", re.IGNORECASE)
_FOOTNOTES = re.compile(r"^\s*(?:FOOTNOTES|Footnotes|NOTES)[:.]?\s*$")
_SENTENCE_CLOSE = re.compile(r"[.!?…][\"'”’»)\]_]*$")


@dataclass(frozen=True)
class CleanText:
    """Cleaned text (paragraphs separated by blank lines) and what cleaning removed."""

    text: str
    lines_removed: int
    had_start_marker: bool
    had_end_marker: bool


def _bytes_as_cp1252(error: UnicodeDecodeError) -> tuple[str, int]:
    return error.object[error.start : error.end].decode("cp1252", errors="replace"), error.end


codecs.register_error("ingest-cp1252", _bytes_as_cp1252)


def decode_text(body: bytes) -> str:
    """UTF-8 (with or without BOM); bytes that are not UTF-8 are read as cp1252 one by one.

    So older Latin-1 / cp1252 files decode, and so do files that mix both encodings,
    without turning their UTF-8 parts into mojibake.
    """
    return body.decode("utf-8-sig", errors="ingest-cp1252")


def normalize_newlines(text: str) -> str:
    # U+FEFF is a byte-order mark at the start and an invisible no-break space anywhere else.
    return text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")


def strip_boilerplate(text: str) -> tuple[str, bool, bool]:
    """Drop the header up to the START marker and everything from the END marker on.

    With several START markers before the END (old files close their licence header with
    `*END*THE SMALL PRINT`), the last one counts, so no marker line survives cleaning.
    """
    start = _START.search(text)
    if start:
        end = _END.search(text, start.end())
        limit = end.start() if end else len(text)
        while later := _START.search(text, start.end(), limit):
            start = later
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    return text, start is not None, end is not None


def has_gutenberg_marker(text: str) -> bool:
    """True if a START or END marker line is in `text` (what `strip_boilerplate` cuts at)."""
    return bool(_START.search(text) or _END.search(text))


def _letters(block: str) -> str:
    return "".join(ch for ch in block if ch.isalpha())


def is_heading(block: str) -> bool:
    """A short block of capitals ("CHAPTER I", "THE END", "II.") or a `Chapter IV. Title` line."""
    lines = [line for line in block.splitlines() if line.strip()]
    if not lines or len(lines) > 3 or len(block.split()) > 20:
        return False
    letters = _letters(block)
    if letters and letters == letters.upper() or _THE_END.match(block):
        return True
    # "Chapter IV. The Engagement": a chapter word and numeral, short or not ending like a sentence.
    if _HEADING_WORDS.match(lines[0]):
        return len(block.split()) <= 12 or not _SENTENCE_CLOSE.search(block.strip())
    return False


def is_prose(block: str) -> bool:
    """A real paragraph: unindented, mostly lower-case, 20+ words, ends like a sentence."""
    if block[:1] in (" ", "\t") or len(block.split()) < 20:
        return False
    letters = _letters(block)
    lower = sum(ch.islower() for ch in letters)
    return lower >= 0.6 * len(letters) and bool(_SENTENCE_CLOSE.search(block.rstrip()))


def _drop_trailing_footnotes(blocks: list[str]) -> list[str]:
    # A FOOTNOTES heading in the last tenth of the book starts end matter, not prose.
    for index in range(len(blocks) - 1, max(-1, int(len(blocks) * 0.9) - 1), -1):
        if _FOOTNOTES.match(blocks[index]):
            return blocks[:index]
    return blocks


def remove_notes(text: str) -> str:
    """Remove `[Illustration...]`-style notes, repeatedly: removing one can close another around it."""
    while True:
        shorter = _BRACKET_NOTE.sub("", text)
        if shorter == text:
            return text
        text = shorter


def _tidy(block: str) -> str:
    # Trailing blanks would let the joined output split into blocks differently next time.
    return "\n".join(line.rstrip() for line in block.split("\n")).strip("\n")


def clean_body(text: str) -> list[str]:
    """Paragraph blocks of the book proper: front matter, headings and footnotes removed."""
    blocks = [_tidy(block) for block in _BLOCK_SPLIT.split(text)]
    blocks = [block for block in blocks if block.strip() and not _NOTE_BLOCK.match(block)]
    first_prose = next((index for index, block in enumerate(blocks) if is_prose(block)), 0)
    blocks = _drop_trailing_footnotes(blocks[first_prose:])
    return [block for block in blocks if not is_heading(block)]


def _count_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def clean_text(raw: str) -> CleanText:
    """Clean one book's plain text; `lines_removed` counts non-blank input lines dropped."""
    text = normalize_newlines(raw)
    # Notes go first: removing one could otherwise bring a marker to the start of a line.
    body, had_start, had_end = strip_boilerplate(remove_notes(text))
    cleaned = "\n\n".join(clean_body(body))
    removed = _count_lines(text) - _count_lines(cleaned)
    return CleanText(text=cleaned + "\n" if cleaned else "", lines_removed=removed,
                     had_start_marker=had_start, had_end_marker=had_end)
