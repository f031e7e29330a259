"""HTML route: synthetic golden pages for each removal rule, and agreement with the text route."""

from __future__ import annotations

from collections import Counter

import pytest

from ingest.clean import clean_text
from ingest.html import clean_html, html_to_paragraphs
from ingest.pipeline import decode_text
from ingest.tokenizer import line_sentences

FIVE_BOOKS = (28054, 2638, 8117, 600, 40745)
PROSE_A = (
    "Morning came slowly over the grey river, and the ferryman counted his coins twice "
    "before he would admit that the night had been a poor one for anybody at all."
)
PROSE_B = (
    "Nobody in the village believed him, of course, but they listened all the same, "
    "because a story told badly is still better than the long silence of winter."
)


def words(text: str) -> list[str]:
    return [token for sentence in line_sentences(text) for token in sentence]


def page(body: str, head_extra: str = "") -> str:
    return (
        "<!DOCTYPE html><html><head><title>The Project Gutenberg eBook of The Ferry</title>"
        "<style>p { margin: 1em } .gutenberg { color: red }</style>"
        f"<script>var ebook = 'gutenberg';</script>{head_extra}</head><body>{body}</body></html>"
    )


def test_head_style_script_dropped():
    result = clean_html(page(f"<p>{PROSE_A}</p><p>{PROSE_B}</p>"))
    assert words(result.text) == words(PROSE_A + "\n\n" + PROSE_B)


def test_pgheader_and_pgfooter_blocks_dropped():
    body = (
        '<div id="pgheader"><p>The Project Gutenberg EBook of The Ferry</p><pre>Title: The Ferry\n\n'
        "***START OF THE PROJECT GUTENBERG EBOOK THE FERRY***</pre></div>"
        f"<p>{PROSE_A}</p><p>{PROSE_B}</p>"
        '<div id="pgfooter"><pre>***END OF THE PROJECT GUTENBERG EBOOK THE FERRY***</pre>'
        "<p>A word from Project Gutenberg about the licence.</p></div>"
    )
    assert words(clean_html(page(body)).text) == words(PROSE_A + "\n\n" + PROSE_B)


def test_pg_header_and_pg_footer_sections_dropped():
    body = (
        '<section class="pg-boilerplate pgheader" id="pg-header"><h2>The Project Gutenberg eBook of The Ferry</h2>'
        "<p>This ebook is for the use of anyone anywhere.</p></section>"
        f"<p>{PROSE_A}</p><p>{PROSE_B}</p>"
        '<section class="pg-boilerplate" id="pg-footer"><p>Updated editions will replace the previous one. '
        "Project Gutenberg is a registered trademark, and may not be used without permission.</p></section>"
    )
    assert words(clean_html(page(body)).text) == words(PROSE_A + "\n\n" + PROSE_B)


def test_marker_lines_in_pre_blocks_without_ids():
    body = (
        "<pre>\nThe Project Gutenberg EBook of The Ferry\n\nThis eBook is for the use of anyone anywhere.\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK THE FERRY ***\n\nProduced by Somebody Careful.\n</pre>"
        f"<h1>THE FERRY</h1><p>{PROSE_A}</p><p>{PROSE_B}</p>"
        "<pre>\nEnd of the Project Gutenberg EBook of The Ferry\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK THE FERRY ***\n\nTo protect the Project Gutenberg-tm mission.\n</pre>"
    )
    assert words(clean_html(page(body)).text) == words(PROSE_A + "\n\n" + PROSE_B)


def test_page_number_spans_dropped_without_splitting_words():
    broken = PROSE_A.replace("ferryman", 'ferry<span class="pagenum"><a name="Page_5">[Pg 5]</a></span>man')
    broken = broken.replace("coins", 'coins <span class="tei tei-pb" id="page002">[pg 002]</span>')
    result = clean_html(page(f"<p>{broken}</p><p>{PROSE_B}</p>"))
    assert words(result.text) == words(PROSE_A + "\n\n" + PROSE_B)


@pytest.mark.parametrize(
    "toc",
    [
        (
            '<h2>Contents</h2><ul class="tei tei-index tei-index-toc"><li><a href="#c1">Chapter I. The River</a></li>'
            '<li><a href="#c2">Chapter II. Winter Stories</a></li></ul>'
        ),
        (
            '<h2>CONTENTS</h2><table><tr><td><a href="#c1">THE RIVER</a></td><td class="tocpg">1</td></tr>'
            '<tr><td><a href="#c2">WINTER STORIES AND OTHER TALES</a></td><td class="tocpg">21</td></tr></table>'
        ),
        (
            '<p class="toc"><a href="#c1">The River in Spring and the Ferryman</a></p>'
            '<p class="toc"><a href="#c2">Winter Stories Told by the Stove</a></p>'
        ),
    ],
)
def test_table_of_contents_dropped(toc):
    body = f"{toc}<h2 id='c1'>CHAPTER I. THE RIVER</h2><p>{PROSE_A}</p><h2 id='c2'>CHAPTER II</h2><p>{PROSE_B}</p>"
    assert words(clean_html(page(body)).text) == words(PROSE_A + "\n\n" + PROSE_B)


def test_paragraph_boundaries_kept():
    # Neither paragraph ends with a full stop: only the markup separates them.
    first, second = PROSE_A.rstrip("."), PROSE_B.rstrip(".")
    text = html_to_paragraphs(page(f"<p>{first}<br/>still first</p><div><p>{second}</p></div>"))
    assert text.strip().split("\n\n") == [first + " still first", second]
    sentences = list(line_sentences(clean_html(page(f"<p>{first}</p><p>{second}</p>")).text))
    assert sentences == [words(first), words(second)]


def multiset_overlap(first: Counter, second: Counter) -> float:
    """Sum of per-token minimum counts over the larger total: 1.0 only for identical multisets."""
    return sum((first & second).values()) / max(sum(first.values()), sum(second.values()))


def test_multiset_overlap_definition():
    assert multiset_overlap(Counter("aab"), Counter("aab")) == 1.0
    assert multiset_overlap(Counter("aab"), Counter("abbb")) == pytest.approx(2 / 4)


@pytest.mark.parametrize("book_id", FIVE_BOOKS)
def test_text_and_html_routes_agree(gutenberg_dir, book_id):
    folder = gutenberg_dir / "cache" / "epub" / str(book_id)
    text_tokens = Counter(words(clean_text(decode_text((folder / f"pg{book_id}.txt").read_bytes())).text))
    html_tokens = Counter(words(clean_html((folder / f"pg{book_id}-images.html").read_bytes()).text))
    assert sum(text_tokens.values()) > 40_000
    assert multiset_overlap(text_tokens, html_tokens) >= 0.98
    for boilerplate in ("gutenberg", "ebook", "license"):
        assert html_tokens[boilerplate] == 0
