"""Planted-cluster corpora: seeded LineSentence text whose words fall in known groups, and the
cluster purity of vectors trained on it.

W words in G groups of W / G words. Each sentence (SENTENCE_LENGTH tokens; the last one may be
shorter) picks a group uniformly; each of its tokens is the dominant word with probability
`dominant_share` (when there is one: it lands in every sentence alike, so it co-occurs with
every group), else, with probability `noise`, a word drawn uniformly from all W (cross-group
noise), else a word drawn uniformly from the sentence's group. Words of one group share their
contexts, so a trainer that learns co-occurrence puts them next to each other, and purity says
how far it did: for each word, the share of its k = W / G - 1 nearest neighbours (cosine) that
are in its own group, averaged over the words. The dominant word belongs to no group: it is
neither scored nor counted among the neighbours, so perfect groups score 1.0 with or without it.

Spelling: "g3w17" is word 17 of group 3 (both from 0), the dominant word is "dominant". The same
spec gives the same bytes on any machine (PCG64). `python -m bench.planted --words 200 --groups 20
--tokens 300k --dominant-share 0.6 --out FILE` writes one; it needs only NumPy.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jaxgram.errors import ConfigError

SENTENCE_LENGTH = 10
NOISE = 0.1
DOMINANT = "dominant"
_LAYOUT = re.compile(r"(\d+)/(\d+)(?:\+([0-9.]+))?")


@dataclass(frozen=True)
class PlantedCorpus:
    """What a planted corpus is: enough to regenerate it and to score vectors trained on it."""

    words: int
    groups: int
    tokens: int
    dominant_share: float = 0.0
    seed: int = 0
    noise: float = NOISE
    sentence_length: int = SENTENCE_LENGTH

    def __post_init__(self):
        for name, least in (("words", 2), ("groups", 1), ("tokens", 1), ("seed", 0), ("sentence_length", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{name}={value!r} is not allowed: it must be an int >= {least}")
        if self.words % self.groups or self.words // self.groups < 2:
            raise ConfigError(f"words={self.words} in groups={self.groups} is not allowed: the groups must be equal, "
                              "of at least 2 words each")
        for name in ("dominant_share", "noise"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not allowed: it must be in [0, 1)")

    @property
    def group_size(self) -> int:
        return self.words // self.groups

    @property
    def name(self) -> str:
        """The layout as the command line spells it: "200/20", or "200/20+0.6" with a dominant word."""
        return f"{self.words}/{self.groups}" + (f"+{self.dominant_share:g}" if self.dominant_share else "")

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


def parse_layout(text: str) -> tuple[int, int, float]:
    """"200/20+0.6" -> (200 words, 20 groups, dominant share 0.6); the share is optional."""
    match = _LAYOUT.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"corpus layout {text!r} is not allowed: write WORDS/GROUPS or WORDS/GROUPS+SHARE "
                          "(like 20/4 or 200/20+0.6)")
    return int(match.group(1)), int(match.group(2)), float(match.group(3) or 0.0)


def vocabulary(corpus: PlantedCorpus) -> list[str]:
    """The corpus's words in id order: group by group, then the dominant word when there is one."""
    size = corpus.group_size
    words = [f"g{group}w{index}" for group in range(corpus.groups) for index in range(size)]
    return words + [DOMINANT] * (corpus.dominant_share > 0)


def group_ids(corpus: PlantedCorpus) -> np.ndarray:
    """int [len(vocabulary)]: each word's group, -1 for the dominant word."""
    groups = np.repeat(np.arange(corpus.groups), corpus.group_size)
    return np.concatenate([groups, [-1] * (corpus.dominant_share > 0)]).astype(np.int64)


def draw_ids(corpus: PlantedCorpus) -> np.ndarray:
    """int [tokens]: the corpus's tokens as ids into vocabulary(corpus), drawn from its seed."""
    rng = np.random.default_rng(corpus.seed)
    sentences = math.ceil(corpus.tokens / corpus.sentence_length)
    token_group = np.repeat(rng.integers(corpus.groups, size=sentences), corpus.sentence_length)[:corpus.tokens]
    own = token_group * corpus.group_size + rng.integers(corpus.group_size, size=corpus.tokens)
    anywhere = rng.integers(corpus.words, size=corpus.tokens)
    ids = np.where(rng.random(corpus.tokens) < corpus.noise, anywhere, own)
    if corpus.dominant_share:
        ids = np.where(rng.random(corpus.tokens) < corpus.dominant_share, corpus.words, ids)
    return ids


def write_corpus(path, corpus: PlantedCorpus) -> PlantedCorpus:
    """Write the corpus to `path` as LineSentence text: one sentence a line, words separated by spaces."""
    from jaxgram.fileio import atomic_open

    words = np.array(vocabulary(corpus))[draw_ids(corpus)]
    length = corpus.sentence_length
    with atomic_open(path, "w", encoding="ascii") as handle:
        for start in range(0, corpus.tokens, length):
            handle.write(" ".join(words[start:start + length]) + "\n")
    return corpus


def cluster_purity(vectors, groups, k: int | None = None) -> float:
    """Mean over words of the share of its k nearest neighbours (cosine) in its own group.

    vectors [n, D]; groups [n] ints, negative for a word outside every group (neither scored
    nor a neighbour). k defaults to the smallest group's size - 1, where perfect groups score 1.0.
    """
    vectors, groups = np.asarray(vectors, np.float64), np.asarray(groups)
    inside = groups >= 0
    vectors, groups = vectors[inside], groups[inside]
    if k is None:
        k = int(np.unique(groups, return_counts=True)[1].min()) - 1
    if not 1 <= k < len(groups):
        raise ValueError(f"k={k} is not allowed for {len(groups)} grouped words: it must be in [1, {len(groups) - 1}]")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    cosines = unit @ unit.T
    np.fill_diagonal(cosines, -np.inf)  # a word is not its own neighbour
    nearest = np.argpartition(-cosines, k - 1, axis=1)[:, :k]
    return float(np.mean(groups[nearest] == groups[:, None]))


def embedding_purity(embeddings, corpus: PlantedCorpus) -> float:
    """cluster_purity of trained vectors (anything with index_to_key and [word]) over the corpus's groups."""
    group_of = dict(zip(vocabulary(corpus), group_ids(corpus).tolist()))
    words = [word for word in embeddings.index_to_key if word in group_of]
    vectors = np.asarray([embeddings[word] for word in words])
    return cluster_purity(vectors, np.array([group_of[word] for word in words]), corpus.group_size - 1)


def chance_purity(corpus: PlantedCorpus) -> float:
    """Expected purity of vectors that know nothing: k neighbours drawn at random from the other W - 1 words."""
    return (corpus.group_size - 1) / (corpus.words - 1)


def main(argv=None) -> int:
    from bench.__main__ import sizes
    from bench.synthetic import run_writer

    parser = argparse.ArgumentParser(prog="python -m bench.planted", description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, required=True)
    parser.add_argument("--groups", type=int, required=True)
    parser.add_argument("--tokens", type=lambda text: sizes(text)[0], required=True)
    parser.add_argument("--dominant-share", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    return run_writer(parser.prog, lambda: write_corpus(
        args.out, PlantedCorpus(args.words, args.groups, args.tokens, args.dominant_share, args.seed)))


if __name__ == "__main__":
    sys.exit(main())
