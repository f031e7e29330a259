"""Sentence splitting and tokenization into gensim's LineSentence format.

Rules (the reference rule is "lower-case, remove `[^a-z\\s]`"; ours differs only where
that rule would glue two words together):

- Accented letters are folded to ASCII with Unicode NFKD: "café" -> "cafe".
- Apostrophes inside or at the end of words are deleted: "don't" -> "dont",
  "Ivan’s" -> "ivans" (as the reference rule does).
- Hyphens and dashes separate words: "well-known" -> "well known",
  "ironical--it" -> "ironical it", "stupidity—the" -> "stupidity the".
- Every other non-letter (digits, punctuation) separates words and is dropped.

Sentences never cross a paragraph (blank line); inside a paragraph a sentence ends at
., ! or ? (with any closing quotes) followed by a capital letter, except after common
abbreviations and single-letter initials.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

_APOSTROPHES = re.compile(r"['’ʼ‘`´]")
_NON_LETTERS = re.compile(r"[^a-z]+")
# Letters outside a-z that NFKD does not decompose.
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "ð": "d"})

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]_]*\s+(?=[\"'“‘«(\[_]*[A-Z])")
_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "messrs", "dr", "st", "mme", "mlle", "mm", "ms", "prof", "rev", "gen", "col", "capt", "lieut", "sgt",
     "vol", "ch", "no", "vs", "etc", "cf", "viz"]
)
_LAST_WORD = re.compile(r"([A-Za-z]+)[.]+$")


def fold(text: str) -> str:
    """Lower-case and strip accents: NFKD, then drop combining marks."""
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str) -> list[str]:
    """Lower-case ASCII word tokens of `text` (see the module docstring for the rules)."""
    return _NON_LETTERS.sub(" ", _APOSTROPHES.sub("", fold(text))).split()


def paragraphs(text: str) -> Iterator[str]:
    """Blocks of `text` separated by blank lines, each joined into one line."""
    for block in re.split(r"\n[ \t]*\n", text):
        joined = " ".join(block.split())
        if joined:
            yield joined


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph into sentences (raw text, not yet tokenized)."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        head = paragraph[start : match.start() + 1]
        last = _LAST_WORD.search(head)
        if last and (last.group(1).lower() in _ABBREVIATIONS or len(last.group(1)) == 1 and last.group(1).isupper()):
            continue
        sentences.append(paragraph[start : match.end()].strip())
        start = match.end()
    tail = paragraph[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def line_sentences(text: str) -> Iterator[list[str]]:
    """Token lists, one per sentence, for cleaned text; empty sentences are skipped."""
    for paragraph in paragraphs(text):
        for sentence in split_sentences(paragraph):
            tokens = tokenize(sentence)
            if tokens:
                yield tokens


def format_line_sentences(sentences: Iterable[list[str]]) -> str:
    """LineSentence format: one sentence per line, tokens separated by single spaces."""
    return "".join(" ".join(tokens) + "\n" for tokens in sentences)
