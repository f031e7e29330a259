"""Synthetic Gutenberg-style books for the fault suite (generated text, never copied from a real book)."""

from __future__ import annotations

import random

HEADER = (
    "The Project Gutenberg eBook of {title}\n\n"
    "This ebook is for the use of anyone anywhere in the United States and\n"
    "most other parts of the world at no cost and with almost no restrictions\n"
    "whatsoever.\n\n"
    "Title: {title}\n\n"
    "Release date: January 1, 2001 [eBook #{id}]\n\n"
    "Language: English\n\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK {upper} ***\n\n"
)
FOOTER = (
    "\n\n*** END OF THE PROJECT GUTENBERG EBOOK {upper} ***\n\n"
    "Updated editions will replace the previous one--the old editions will\n"
    "be renamed.\n\n"
    "START: FULL LICENSE\n\n"
    "THE FULL PROJECT GUTENBERG LICENSE\n"
    "PLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK\n\n"
    "To protect the Project Gutenberg mission of promoting the free\n"
    "distribution of electronic works, by using or distributing this work\n"
    "you agree to comply with all the terms of the Full Project Gutenberg License.\n"
)
LICENCE_ONLY = (
    "The Project Gutenberg eBook of Nothing\n\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK NOTHING ***\n\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK NOTHING ***\n\n"
    "THE FULL PROJECT GUTENBERG LICENSE\n"
    "PLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK\n\n"
    "Section 1. General Terms of Use and Redistributing Project Gutenberg electronic works.\n"
)
WORDS = ("the old man walked slowly along the river and thought about the house where his "
         "brother had lived for many years before the war came to the quiet town").split()


def prose(seed: int, paragraphs: int = 12, words: int = 40) -> str:
    """Paragraphs of 40 lower-case words, each ending with a full stop: prose to the cleaner."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(paragraphs):
        text = " ".join(rng.choice(WORDS) for _ in range(words))
        blocks.append(text[0].upper() + text[1:] + ".")
    return "\n\n".join(blocks)


def book(book_id: int, body: str, title: str = "A Synthetic Book") -> str:
    """`body` wrapped in a Gutenberg header (START marker) and footer (END marker and licence)."""
    names = {"id": book_id, "title": title, "upper": title.upper()}
    return HEADER.format(**names) + body + FOOTER.format(**names)


def text_path(book_id: int) -> str:
    return f"cache/epub/{book_id}/pg{book_id}.txt"


def html_path(book_id: int) -> str:
    return f"cache/epub/{book_id}/pg{book_id}-images.html"


# What a busy server, a proxy or a CDN sends instead of the book. The cleaner finds a "prose"
# paragraph between its blank lines, so before ingest/verify.py it was ingested (and cached) as the book.
ACCESS_DENIED = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Access denied | Too many requests</title>
<script>
window.dataLayer = window.dataLayer || [];
function gtag() { dataLayer.push(arguments); }
</script>
</head>
<body>

<h1>Access denied</h1>

We have received too many requests from your network in a short time, so access to this site has been
paused for a while. Please wait a few minutes and try again, or write to the site administrator if you
believe that this is a mistake.

</body>
</html>
"""
