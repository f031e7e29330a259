"""Fault suite, hostile text: hypothesis properties of ingest's cleaner and tokenizer."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ingest.clean import _END, _START, clean_text
from ingest.html import clean_html
from ingest.tokenizer import format_line_sentences, line_sentences, tokenize

pytestmark = pytest.mark.fault

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that steer generated text into the cleaner's and tokenizer's special cases.
FRAGMENTS = st.sampled_from([
    "\n", "\n\n", "\r\n", "\r", " ", "\t", ".", "!", "?", "--", "—", "'", "’", "\"", "“", "[", "]",
    "[Illustration]", "[Illus", "tration]", "[Transcriber's Note: x]", "Produced by Someone", "CHAPTER I",
    "Chapter IV. The Engagement", "THE END", "FOOTNOTES", "Mr.", "Dr.", "St.", "A.", "café", "Straße", "ﬁ",
    "Ivan’s", "well-known", "Æsop", "ǅ", "İ", "ß", "\u0301", "\u00a0", "\u2028", "\ufeff", "\x00", "１２",
    "*** START OF THE PROJECT GUTENBERG EBOOK X ***", "*** END OF THE PROJECT GUTENBERG EBOOK X ***",
    "End of the Project Gutenberg EBook of X", "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*",
    "the old man walked slowly along the river and thought about it for a long time and then went home.",
    "The", "word", "Ivan", "x",
])
TEXT = st.one_of(st.text(max_size=300), st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=40).map("".join))
TOKEN = re.compile(r"[a-z]+")
LINE_SENTENCES = re.compile(r"(?:[a-z]+(?: [a-z]+)*\n)*")


@PROPERTY
@given(TEXT)
def test_tokenizer_never_crashes_and_emits_only_a_to_z(text):
    """Any text gives tokens of [a-z]+, and re-tokenizing the joined tokens changes nothing."""
    tokens = tokenize(text)
    assert all(TOKEN.fullmatch(token) for token in tokens)
    assert tokenize(" ".join(tokens)) == tokens


@PROPERTY
@given(TEXT)
def test_cleaner_and_line_sentences_emit_only_the_alphabet(text):
    """Cleaning then sentence-splitting any text gives LineSentence text over [a-z ] and newlines."""
    cleaned = clean_text(text)
    corpus = format_line_sentences(line_sentences(cleaned.text))
    assert LINE_SENTENCES.fullmatch(corpus), corpus


def _non_blank_lines(text: str) -> int:
    # A byte-order mark is invisible: a line holding only one is blank.
    return sum(1 for line in text.replace("\ufeff", "").splitlines() if line.strip())


@PROPERTY
@given(TEXT)
def test_cleaning_never_adds_lines_and_counts_what_it_drops(text):
    """lines_removed is exactly the non-blank lines in minus the non-blank lines out, and never negative."""
    cleaned = clean_text(text)
    lines_in, lines_out = _non_blank_lines(text), _non_blank_lines(cleaned.text)
    assert cleaned.lines_removed == lines_in - lines_out
    assert lines_out <= lines_in


MARKER_IN_PROSE = ("*** START OF THE PROJECT GUTENBERG EBOOK the old man walked slowly along the river and thought "
                   "about it for a long time and then went home.")


@PROPERTY
@given(TEXT)
@example("[Illus[Illustration]tration]")  # removing the inner note closes an outer one
@example(f"{MARKER_IN_PROSE}\n\n{MARKER_IN_PROSE}\n\nThe end.")  # a second START marker
@example(f"[Illustration]{MARKER_IN_PROSE}\n\nThe end.")  # a marker that starts its line once a note is gone
@example("\n\ufeff")  # a byte-order mark that only becomes leading once cleaned
@example("The old man walked slowly along the river and thought about it for a long time and then went home.\n \t")
def test_cleaning_is_idempotent(text):
    """Cleaning already-cleaned text changes nothing (each example was a counterexample once)."""
    once = clean_text(text).text
    assert clean_text(once).text == once


@PROPERTY
@given(st.one_of(TEXT, st.lists(st.sampled_from(["<p>", "</p>", "<div class='pg-header'>", "</div>", "<pre>",
                                                   "</pre>", "<br>", "<!--", "-->", "<script>", "&amp;", "&#0;",
                                                   "<table><tr><td>", "<", ">", "word", " ", "\n"]),
                                  max_size=40).map("".join)))
def test_html_cleaner_never_crashes_on_malformed_markup(markup):
    """Unclosed, misnested or binary-looking markup never crashes the HTML route, and its output is clean text."""
    cleaned = clean_html(markup)
    assert LINE_SENTENCES.fullmatch(format_line_sentences(line_sentences(cleaned.text)))


HEADERS = [
    ("The Project Gutenberg EBook of {t}, by Nobody\n\nThis eBook is for the use of anyone anywhere at no cost.\n\n"
     "Title: {t}\n\nRelease Date: May 1, 2001 [EBook #9]\n\n*** START OF THIS PROJECT GUTENBERG EBOOK {T} ***\n\n"),
    ("The Project Gutenberg eBook of {t}\n\nTitle: {t}\n\nLanguage: English\n\n"
     "***START OF THE PROJECT GUTENBERG EBOOK {T}***\n\n\n"),
    "Project Gutenberg's Etext of {t}\n\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n",
    # An unclosed note in the header must not swallow the START marker up to a `]` in the book.
    "The Project Gutenberg eBook of {t}\n\n[Illustration: the cover\n\n*** START OF THE PROJECT GUTENBERG EBOOK {T} ***\n\n",
]
FOOTERS = [
    ("\n\n*** END OF THIS PROJECT GUTENBERG EBOOK {T} ***\n\n***** This file should be named 9.txt *****\n\n"
     "THE FULL PROJECT GUTENBERG LICENSE\nPLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK\n"),
    "\n\nEnd of the Project Gutenberg EBook of {t}, by Nobody\n\n*** END OF THIS PROJECT GUTENBERG EBOOK {T} ***\n",
    "\n\nEnd of Project Gutenberg's {t}, by Nobody\n\nSection 1. General Terms of Use\n",
    "\n\n*** START: FULL LICENSE ***\n\nTHE FULL PROJECT GUTENBERG LICENSE\n",
]


@PROPERTY
@example(body="The old man walked home. ] And then he slept.", header=HEADERS[-1], footer=FOOTERS[0], crlf=False,
         title="A Book")
@given(body=TEXT, header=st.sampled_from(HEADERS), footer=st.sampled_from(FOOTERS), crlf=st.booleans(),
       title=st.sampled_from(["Notes", "Poor Folk", "A Book"]))
def test_no_boilerplate_line_survives_around_arbitrary_prose(body, header, footer, crlf, title):
    """A Gutenberg header and footer around any body: no line of either survives cleaning."""
    assume(not _START.search(body) and not _END.search(body))
    header, footer = header.format(t=title, T=title.upper()), footer.format(t=title, T=title.upper())
    raw = header + body + footer
    cleaned = clean_text(raw.replace("\n", "\r\n") if crlf else raw).text
    for line in (header + footer).splitlines():
        line = line.strip()
        if line and line not in body:
            assert line not in cleaned, line
