"""bench.gensim_shares against real gensim: the words its corpus_file workers read are the ones counted here."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.models import Word2Vec

from bench import gensim_shares

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Lines of 1-40 words, an empty line and one line of 25,000 words (cut into pieces by both readers)."""
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(300)]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 40))) for _ in range(4_000)]
    lines[1_000] = ""
    lines[2_500] = " ".join(rng.choice(words, size=25_000))
    path = tmp_path_factory.mktemp("shares") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def gensim_words_read(path: Path, workers: int) -> int:
    model = Word2Vec(vector_size=4, sg=1, negative=1, min_count=1, workers=workers, epochs=1, seed=1)
    model.build_vocab(corpus_file=str(path))
    _, raw_words = model.train(corpus_file=str(path), total_examples=model.corpus_count,
                               total_words=model.corpus_total_words, epochs=1)
    assert model.corpus_total_words == gensim_shares.corpus_words(path)
    return raw_words


@pytest.mark.parametrize("workers", [1, 3, 8, 13])
def test_the_words_each_worker_reads_add_up_to_gensims_own_count(corpus, workers):
    assert gensim_shares.words_read(corpus, workers) == gensim_words_read(corpus, workers)


def test_more_workers_read_more_than_the_corpus(corpus):
    total = gensim_shares.corpus_words(corpus)
    read = [gensim_shares.words_read(corpus, workers) for workers in (1, 4, 16)]
    assert read[0] == total
    assert total < read[1] < read[2]


def test_the_shares_corpus_holds_every_workers_share_in_turn(corpus, tmp_path):
    out = gensim_shares.write_shares_corpus(corpus, 5, tmp_path / "shares.txt")
    written = sum(len(line.split()) for line in out.read_bytes().splitlines())
    assert written == gensim_shares.words_read(corpus, 5)
    first_share = gensim_shares.worker_shares(corpus, 5)[0]
    assert out.read_bytes().splitlines()[:len(first_share)] == [b" ".join(s) for s in first_share]


def test_the_command_prints_the_words_read_at_each_count(corpus):
    result = subprocess.run([sys.executable, "-m", "bench", "--corpus", str(corpus), "--gensim-shares",
                             "--workers", "1,8"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    total = gensim_shares.corpus_words(corpus)
    assert f"| 8 | {gensim_shares.words_read(corpus, 8):,} | {gensim_shares.words_read(corpus, 8) / total:.3f} |" \
        in result.stdout
    assert f"| 1 | {total:,} | 1.000 |" in result.stdout
