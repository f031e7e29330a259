"""A seeded Zipf corpus: LineSentence text whose vocabulary at min_count 5 is about V words.

Word ids are drawn i.i.d. from p(r) ∝ r^-s over R = RAW_FACTOR·V raw words (rank r = 1 is
the most frequent); sentences are SENTENCE_LENGTH words. The exponent s is solved so that
the EXPECTED number of words seen at least `min_count` times is V (each word's count is
Binomial(N, p_r), close to Poisson). The raw words beyond V are the rare tail that min_count
prunes, as in real text. A corpus of N tokens cannot keep more words than it has room for
(V words at 5 each need well over 5·V tokens once the head takes its share): there s stops
at its floor S_MIN, fewer words are kept, and `expected_kept` says how many. The trainers'
own vocabularies (`vocab_size` in their stats) record what was actually kept.

Spelling: rank r is r in bijective base 26 ("a".."z", "aa", ...), so frequent words are
short, as in real text. Written in blocks of BLOCK_TOKENS with NumPy (no per-token Python),
so memory is bounded by a block plus the [R] tables; the same (N, V, seed) gives the same
bytes on any machine (PCG64 and float64 search are platform-independent).

`python -m bench.synthetic --tokens N --vocab V --seed S --out FILE` writes one; it needs
only NumPy (the GPU script uses it where gensim is not installed).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SENTENCE_LENGTH = 20
RAW_FACTOR = 2
MIN_COUNT = 5
S_MIN, S_MAX = 0.5, 2.0  # below 0.5 the distribution is too flat to call Zipf-like
BLOCK_TOKENS = 1_000_000  # a multiple of SENTENCE_LENGTH, so blocks end on sentence ends
_LETTERS = 26


@dataclass(frozen=True)
class SyntheticCorpus:
    """What a synthetic corpus is: enough to regenerate it and to read its results."""

    tokens: int
    vocab_target: int
    seed: int
    raw_vocab: int
    exponent: float
    expected_kept: int  # words expected to reach min_count
    min_count: int = MIN_COUNT
    sentence_length: int = SENTENCE_LENGTH

    def to_dict(self) -> dict:
        return asdict(self)


def expected_kept(tokens: int, raw_vocab: int, exponent: float, min_count: int = MIN_COUNT) -> float:
    """Expected number of the raw words seen at least `min_count` times in `tokens` draws."""
    rates = tokens * _probabilities(raw_vocab, exponent)
    # P(Poisson(rate) < min_count), summed term by term: a handful of vectorised passes.
    term = np.exp(-rates)
    below = term.copy()
    for j in range(1, min_count):
        term *= rates / j
        below += term
    return float(np.sum(1.0 - below))


def _probabilities(raw_vocab: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, raw_vocab + 1, dtype=np.float64) ** -exponent
    return weights / weights.sum()


def solve_exponent(tokens: int, vocab: int, raw_factor: int = RAW_FACTOR,
                   min_count: int = MIN_COUNT) -> tuple[float, int, int]:
    """(s, raw vocabulary R, expected kept words) of the corpus for target vocabulary `vocab`.

    Over R = raw_factor·vocab words, expected kept words rise then fall as s grows (too flat:
    every word is rare; too steep: the head takes everything); s is the root on the falling,
    Zipf-like side. When no s in [S_MIN, S_MAX] keeps `vocab` words, the corpus is too small
    for that vocabulary: s = S_MIN and R is the raw vocabulary that keeps the most words (about
    N / 11.6), so a larger target never yields fewer kept words than a smaller one.
    """
    raw = raw_factor * vocab

    def kept(s, words=raw):
        return expected_kept(tokens, words, s, min_count)

    peak = _argmax(lambda s: kept(s), S_MIN, S_MAX)
    if kept(peak) < vocab:
        # Searched over [2, N] whatever the target, so every too-large target gets the same corpus.
        best = round(math.exp(_argmax(lambda log_r: kept(S_MIN, round(math.exp(log_r))), math.log(2), math.log(tokens))))
        return S_MIN, best, round(kept(S_MIN, best))
    low, high = peak, S_MAX
    if kept(high) > vocab:
        return high, raw, round(kept(high))
    for _ in range(30):  # bisection on the falling side
        middle = (low + high) / 2
        low, high = (middle, high) if kept(middle) > vocab else (low, middle)
    return round(high, 4), raw, round(kept(round(high, 4)))


def _argmax(function, low: float, high: float, rounds: int = 30) -> float:
    """Where a unimodal function peaks on [low, high] (ternary search)."""
    for _ in range(rounds):
        a, b = low + (high - low) / 3, high - (high - low) / 3
        low, high = (a, high) if function(a) < function(b) else (low, b)
    return (low + high) / 2


def spellings(raw_vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """(letters uint8 [R, L], lengths [R]): id i spelled as i+1 in bijective base 26."""
    number = np.arange(1, raw_vocab + 1, dtype=np.int64)
    width = max(1, math.ceil(math.log(raw_vocab * (_LETTERS - 1) + 1, _LETTERS)) + 1)
    digits = np.zeros((raw_vocab, width), np.uint8)
    lengths = np.zeros(raw_vocab, np.int64)
    for place in range(width):  # least significant letter first, reversed below
        alive = number > 0
        digit = (number - 1) % _LETTERS
        digits[alive, place] = ord("a") + digit[alive]
        lengths += alive
        number = np.where(alive, (number - 1) // _LETTERS, 0)
    width = int(lengths.max())
    letters = np.zeros((raw_vocab, width), np.uint8)
    for place in range(width):
        source = lengths - 1 - place  # the most significant letter goes first
        ok = source >= 0
        letters[ok, place] = digits[np.nonzero(ok)[0], source[ok]]
    return letters, lengths


def render(ids: np.ndarray, first_token: int, total: int, letters: np.ndarray, lengths: np.ndarray) -> bytes:
    """The text of tokens `ids` (the corpus's tokens first_token...): words and their separators."""
    sizes = lengths[ids] + 1  # the word and the space or newline after it
    ends = np.cumsum(sizes)
    starts = ends - sizes
    text = np.empty(int(ends[-1]), np.uint8)
    for place in range(letters.shape[1]):
        has = lengths[ids] > place
        text[starts[has] + place] = letters[ids[has], place]
    position = first_token + np.arange(len(ids))
    last = ((position + 1) % SENTENCE_LENGTH == 0) | (position + 1 == total)
    text[ends - 1] = np.where(last, ord("\n"), ord(" "))
    return text.tobytes()


def describe(tokens: int, vocab: int, seed: int) -> SyntheticCorpus:
    """The corpus `write_corpus` would write, without writing it."""
    for name, value, least in (("tokens", tokens, SENTENCE_LENGTH), ("vocab", vocab, 2), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name}={value!r} is not allowed: it must be an int >= {least}")
    exponent, raw, kept = solve_exponent(tokens, vocab)
    return SyntheticCorpus(tokens, vocab, seed, raw, exponent, kept)


def write_corpus(path, tokens: int, vocab: int, seed: int) -> SyntheticCorpus:
    """Write the corpus of `tokens` tokens for target vocabulary `vocab` to `path` (streaming)."""
    from jaxgram.fileio import atomic_open

    corpus = describe(tokens, vocab, seed)
    cumulative = np.cumsum(_probabilities(corpus.raw_vocab, corpus.exponent))
    cumulative[-1] = 1.0  # no draw may fall past the last word
    letters, lengths = spellings(corpus.raw_vocab)
    rng = np.random.default_rng(seed)
    with atomic_open(path, "wb") as handle:
        for first in range(0, tokens, BLOCK_TOKENS):
            draws = rng.random(min(BLOCK_TOKENS, tokens - first))
            ids = np.searchsorted(cumulative, draws, side="right")
            handle.write(render(ids, first, tokens, letters, lengths))
    return corpus


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--vocab", type=int, required=True, help="target vocabulary at min_count 5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    return run_writer(parser.prog, lambda: write_corpus(args.out, args.tokens, args.vocab, args.seed))


def run_writer(prog: str, write) -> int:
    """A corpus command's body: call `write()`, print what it wrote (its to_dict()), or its error in one line."""
    try:
        corpus = write()
    except ValueError as exc:  # jaxgram's ConfigError is one too
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(corpus.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
