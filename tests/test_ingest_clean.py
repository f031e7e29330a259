"""Cleaning rules, each on a small synthetic book written for the test (no copied text)."""

from __future__ import annotations

import pytest

from ingest.clean import clean_text, is_heading, is_prose
from ingest.tokenizer import line_sentences

PROSE_A = (
    "Morning came slowly over the grey river, and the ferryman counted his coins twice\n"
    "before he would admit that the night had been a poor one for anybody at all."
)
PROSE_B = (
    "Nobody in the village believed him, of course, but they listened all the same,\n"
    "because a story told badly is still better than the long silence of winter."
)
BODY = f"{PROSE_A}\n\n{PROSE_B}\n"


def words(text: str) -> list[str]:
    return [token for sentence in line_sentences(text) for token in sentence]


def assert_only_body(result):
    assert words(result.text) == words(BODY)


@pytest.mark.parametrize(
    "start, end",
    [
        ("*** START OF THIS PROJECT GUTENBERG EBOOK THE FERRY ***", "*** END OF THIS PROJECT GUTENBERG EBOOK THE FERRY ***"),
        ("***START OF THE PROJECT GUTENBERG EBOOK THE FERRY***", "***END OF THE PROJECT GUTENBERG EBOOK THE FERRY***"),
        ("*** START OF THE PROJECT GUTENBERG EBook THE FERRY ***", "*** END OF THE PROJECT GUTENBERG EBook THE FERRY ***"),
        ("*** START OF THIS PROJECT GUTENBERG ETEXT THE FERRY ***", "*** END OF THIS PROJECT GUTENBERG ETEXT THE FERRY ***"),
        ("*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*", "End of the Project Gutenberg EBook of The Ferry"),
    ],
)
def test_marker_variants_strip_header_footer_and_licence(start, end):
    raw = (
        "The Project Gutenberg EBook of The Ferry, by Nobody\n\nThis eBook is for the use of anyone anywhere.\n"
        f"Title: The Ferry\n\n{start}\n\n{BODY}\n{end}\n\n"
        "*** START: FULL LICENSE ***\nTHE FULL PROJECT GUTENBERG LICENSE\nTo protect the Project Gutenberg mission.\n"
    )
    result = clean_text(raw)
    assert_only_body(result)
    assert result.had_start_marker and result.had_end_marker


@pytest.mark.parametrize(
    "footer",
    [
        "End of the Project Gutenberg EBook of The Ferry, by Nobody",
        "End of Project Gutenberg's The Ferry, by Nobody",
        "End of the Project Gutenberg EText of The Ferry",
    ],
)
def test_footer_only_book_without_start_marker(footer):
    raw = f"THE FERRY\n\nBy Nobody\n\n{BODY}\n\n\n{footer}\n"
    result = clean_text(raw)
    assert_only_body(result)
    assert not result.had_start_marker and result.had_end_marker


def test_bom_and_crlf():
    raw = "\ufeff*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n\r\n" + BODY.replace("\n", "\r\n")
    result = clean_text(raw)
    assert "\r" not in result.text and "\ufeff" not in result.text
    assert_only_body(result)


def test_illustration_notes_removed():
    raw = (
        f"[Illustration]\n\n{PROSE_A}\n\n[Illustration: The ferryman at\nhis oars]\n\n"
        f"{PROSE_B.replace('silence', 'silence [Illustration]')}\n"
    )
    assert_only_body(clean_text(raw))


def test_transcribers_notes_and_credits_removed():
    raw = (
        "Produced by Somebody Careful and the Online Distributed\nProofreading Team.\n\n"
        "Transcriber's Note: obvious typographical errors have been corrected\nwithout comment.\n\n"
        f"{PROSE_A}\n\n[Transcriber’s Note: a word was illegible here.]\n\n{PROSE_B}\n"
    )
    assert_only_body(clean_text(raw))


def test_title_page_and_contents_table_removed():
    raw = (
        "                 THE FERRY\n\n              _By_ NOBODY\n\n            [Illustration]\n\n"
        "         BOOKS, INC.  PUBLISHERS\n\n       *       *       *\n\n"
        "CONTENTS\n\n                         PAGE\n\nTHE FERRY        1\n\nTHE RIVER       21\n\n"
        "   Chapter I. The Ferryman\n   Chapter II. Winter Stories\n\n"
        "     \"Row softly, the river is deep,\n     and the night is long and cold.\"\n\n"
        f"THE FERRY\n\nI.\n\n{BODY}"
    )
    assert_only_body(clean_text(raw))


def test_headings_and_the_end_removed_inside_body():
    raw = (
        f"PART I\n\nCHAPTER I. THE RIVER\n\n{PROSE_A}\n\nChapter II. Winter Stories\n\nII\n\n"
        f"{PROSE_B}\n\nTHE END\n"
    )
    assert_only_body(clean_text(raw))


def test_trailing_footnotes_section_removed():
    filler = "\n\n".join([PROSE_A] * 20)
    raw = f"{filler}\n\n{PROSE_B}\n\nFOOTNOTES\n\n    1 In the original, a pun.\n\n    2 A proverb.\n"
    assert words(clean_text(raw).text) == words(f"{filler}\n\n{PROSE_B}")


def test_lines_removed_counts_non_blank_dropped_lines():
    raw = "Header line one\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\nCHAPTER I\n\n" + BODY + (
        "\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence line\n"
    )
    # dropped: header, START, CHAPTER I, END, licence = 5 non-blank lines
    assert clean_text(raw).lines_removed == 5


def test_prose_that_looks_like_nothing_special_is_kept_verbatim():
    result = clean_text(BODY)
    assert result.text == PROSE_A + "\n\n" + PROSE_B + "\n"
    assert result.lines_removed == 0


@pytest.mark.parametrize("block", ["CHAPTER IV", "PART II", "THE END", "II.", "Chapter IV. The Engagement", "Book I. A Family"])
def test_is_heading(block):
    assert is_heading(block)


@pytest.mark.parametrize("block", [PROSE_A, "“Cold?”", "Chapter and verse were quoted at him all evening, and he bore it."])
def test_is_not_heading(block):
    assert not is_heading(block)


def test_is_prose_rejects_indented_and_short_blocks():
    assert is_prose(PROSE_A)
    assert not is_prose("    " + PROSE_A)  # indented: an epigraph or contents entry
    assert not is_prose("A short line.")
    assert not is_prose(PROSE_A.upper())
