"""Shared fixtures: the local Gutenberg mirror served on loopback, and the five-book corpus.

Tests that need ../shared/gutenberg skip with a reason when it is missing locally, and
fail when CI=true, so a CI run can never pass by silently skipping them.
"""

from __future__ import annotations

import functools
import http.server
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import jax
import pytest

from jaxgram.distributed import configure_cpu_workers

# One compilation cache for the whole session, shared with the `jaxgram train` children the tests
# start (they inherit the environment): the same programs compile once, not once per child, and
# nothing lands in the user's own cache. Tests of the cache itself set their own folders.
_SESSION_CACHE = tempfile.TemporaryDirectory(prefix="jaxgram-test-xla-")
os.environ.setdefault("JAXGRAM_COMPILATION_CACHE", _SESSION_CACHE.name)

# Tests run with strict dtype promotion so an accidental float64/int mix is an error.
jax.config.update("jax_numpy_dtype_promotion", "strict")
# The test session is a process start like the CLI's: give JAX the CPU devices `jaxgram train`
# does (2 by default), so in-process training and meshes of 2 run as the CLI's do.
configure_cpu_workers()

REPO_ROOT = Path(__file__).resolve().parents[1]
GUTENBERG_DIR = Path(os.environ.get("JAXGRAM_GUTENBERG_DIR", REPO_ROOT.parent / "shared" / "gutenberg"))
FIVE_BOOKS = (28054, 2638, 8117, 600, 40745)


def _require_mirror() -> Path:
    if (GUTENBERG_DIR / "cache" / "epub").is_dir():
        return GUTENBERG_DIR
    reason = f"local Gutenberg mirror not found at {GUTENBERG_DIR}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: this must not be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def gutenberg_dir() -> Path:
    return _require_mirror()


@dataclass
class LoopbackServer:
    """A real HTTP server on 127.0.0.1 that records every path it was asked for."""

    url: str
    requests: list[str] = field(default_factory=list)


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass

    def send_head(self):
        self.server.recorded.append(self.path)
        return super().send_head()


@pytest.fixture(scope="session")
def mirror_server(gutenberg_dir):
    handler = functools.partial(_RecordingHandler, directory=str(gutenberg_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.recorded = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LoopbackServer(url=f"http://127.0.0.1:{server.server_address[1]}", requests=server.recorded)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def five_book_ingest(mirror_server, tmp_path_factory):
    """The five books ingested once per session from the loopback mirror (text route)."""
    from ingest import ingest_books

    out = tmp_path_factory.mktemp("five-books")
    return ingest_books(FIVE_BOOKS, mirror=mirror_server.url, out=out, fmt="text", progress=False)


@pytest.fixture(scope="session")
def five_book_corpus(five_book_ingest) -> Path:
    """Path of corpus.txt for the five books: one sentence per line, tokens separated by spaces."""
    return Path(five_book_ingest.corpus_path)


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """A small generated LineSentence corpus (two topics with their own words), no real text."""
    import numpy as np

    rng = np.random.default_rng(0)
    topics = [[f"a{i}" for i in range(30)] + ["murder", "crime"], [f"b{i}" for i in range(30)] + ["school", "king"]]
    lines = [" ".join(rng.choice(topics[i % 2], size=12)) for i in range(400)]
    path = tmp_path_factory.mktemp("synthetic") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def zipf_corpus(tmp_path_factory) -> Path:
    """350k tokens of Zipf-distributed made-up words, 15 per line: an epoch takes about a second."""
    import numpy as np

    rng = np.random.default_rng(0)
    vocab_size = 2000
    probabilities = 1.0 / np.arange(1, vocab_size + 1)
    ids = rng.choice(vocab_size, size=350_000, p=probabilities / probabilities.sum())
    words = np.array([f"w{i}" for i in range(vocab_size)])
    path = tmp_path_factory.mktemp("zipf-corpus") / "corpus.txt"
    path.write_text("".join(" ".join(words[ids[k:k + 15]]) + "\n" for k in range(0, len(ids), 15)))
    return path


@pytest.fixture(scope="session")
def synthetic_runs(synthetic_corpus, tmp_path_factory) -> dict:
    """Both trainers, seeds 1 and 2, trained (in this process) on synthetic_corpus: name -> run folder."""
    from eval.measure import run_in_this_process
    from jaxgram.config import TrainConfig

    out = tmp_path_factory.mktemp("synthetic-runs")
    runs = {}
    for suffix, seed in (("", 1), ("_b", 2)):
        config = TrainConfig(dim=8, epochs=2, window=2, min_count=2, batch_size=256, seed=seed)
        for trainer in ("jaxgram", "gensim"):
            runs[trainer + suffix] = out / (trainer + suffix)
            run_in_this_process(trainer, synthetic_corpus, config, runs[trainer + suffix], initial_vectors=True)
    return runs
