"""Tokenizer and sentence splitter: the documented rules, and gensim reading the output."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.tokenizer import (
    format_line_sentences,
    line_sentences,
    split_sentences,
    tokenize,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Don't", ["dont"]),  # apostrophes are deleted, as the reference rule does
        ("Ivan’s father wouldn’t", ["ivans", "father", "wouldnt"]),
        ("the boys' game", ["the", "boys", "game"]),
        ("a well-known man", ["a", "well", "known", "man"]),  # hyphens separate words
        ("ironical--it might", ["ironical", "it", "might"]),  # a double hyphen is a dash
        ("stupidity—the majority", ["stupidity", "the", "majority"]),  # em dash
        ("1825–1826 was", ["was"]),  # digits and en dash dropped
        ("Café Adelaïda, Mme. Zoë", ["cafe", "adelaida", "mme", "zoe"]),  # NFKD accent folding
        ("STRASSE Straße", ["strasse", "strasse"]),
        ("“Cold?” said he; (yes!)", ["cold", "said", "he", "yes"]),
        ("_in one hour_ everything", ["in", "one", "hour", "everything"]),
        ("", []),
    ],
)
def test_tokenize_rules(text, expected):
    assert tokenize(text) == expected


@given(st.text())
def test_tokens_are_lowercase_ascii_letters(text):
    assert all(re.fullmatch(r"[a-z]+", token) for token in tokenize(text))


def test_split_sentences_on_terminal_punctuation_and_quotes():
    paragraph = "“What, been abroad?” He nodded. Yes! It was cold… Then silence."
    assert split_sentences(paragraph) == ["“What, been abroad?”", "He nodded.", "Yes!", "It was cold…", "Then silence."]


def test_split_sentences_keeps_abbreviations_and_initials():
    paragraph = "Mr. Smith went to St. Petersburg with A. Pushkin. They came back."
    assert split_sentences(paragraph) == ["Mr. Smith went to St. Petersburg with A. Pushkin.", "They came back."]


def test_no_split_before_lowercase():
    # "..." inside a sentence followed by a lower-case word is not a boundary.
    assert split_sentences("I am... well, tired. Go.") == ["I am... well, tired.", "Go."]


def test_sentences_never_cross_paragraphs():
    text = "First paragraph without a stop\n\nsecond paragraph, also open\n"
    assert list(line_sentences(text)) == [
        ["first", "paragraph", "without", "a", "stop"],
        ["second", "paragraph", "also", "open"],
    ]


def test_line_sentence_format_is_read_back_by_gensim(tmp_path):
    from gensim.models.word2vec import LineSentence

    text = "It's a well-known café.  He said--nothing!\n\n“No,” she said.\n\n* * *\n"
    sentences = list(line_sentences(text))
    path = tmp_path / "corpus.txt"
    path.write_text(format_line_sentences(sentences), encoding="utf-8")
    raw_lines = path.read_text(encoding="utf-8").splitlines()
    assert all(line == " ".join(line.split()) and line for line in raw_lines)  # single spaces, no blanks
    assert [list(s) for s in LineSentence(str(path))] == sentences
    assert sentences == [["its", "a", "well", "known", "cafe"], ["he", "said", "nothing"], ["no", "she", "said"]]
