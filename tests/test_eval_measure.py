"""Each trainer in its own child process (`python -m eval.stage`): outputs, timings, peak memory, errors."""

import json

import numpy as np
import pytest

from eval.measure import run_in_this_process, run_trainer
from jaxgram.config import TrainConfig
from jaxgram.embeddings import Embeddings
from jaxgram.errors import ConfigError, DataError

SMALL = TrainConfig(dim=8, epochs=1, window=2, min_count=2, batch_size=256)


@pytest.fixture
def corpus(synthetic_corpus):
    return synthetic_corpus


@pytest.mark.parametrize("trainer", ["jaxgram", "gensim"])
def test_child_process_writes_vectors_and_stats(corpus, tmp_path, trainer):
    stats = run_trainer(trainer, corpus, SMALL, tmp_path / trainer, progress=False)
    assert stats == json.loads((tmp_path / trainer / "stats.json").read_text())
    assert stats["trainer"] == trainer
    # Each trainer's own settings: gensim's are its Word2Vec arguments, with none of jaxgram's own.
    assert ("kernel" in stats["config"]) == (trainer == "jaxgram") and ("sg" in stats["config"]) == (trainer != "jaxgram")
    assert stats["corpus_words"] == 400 * 12
    assert stats["vocab_size"] == 64
    assert 0 < stats["train_loop_seconds"] <= stats["wall_seconds"] < stats["process_seconds"]
    assert stats["words_per_second"] == pytest.approx(stats["corpus_words"] * SMALL.epochs / stats["wall_seconds"])
    # The child's own peak: more than an idle interpreter, well under this machine's memory.
    assert 20 < stats["peak_rss_mib"] < 8000
    assert stats["peak_rss_mib"] >= stats["rss_before_training_mib"]
    vectors = Embeddings.load_word2vec_format(tmp_path / trainer / "vectors.bin", binary=True)
    assert vectors.vectors.shape == (64, SMALL.dim)


def test_jaxgram_child_keeps_initial_vectors_when_asked_and_loss(corpus, tmp_path):
    run_trainer("jaxgram", corpus, SMALL, tmp_path / "bench", progress=False)
    assert not (tmp_path / "bench" / "init_E.npy").exists()  # a benchmark's run costs what `jaxgram train` does
    stats = run_trainer("jaxgram", corpus, SMALL, tmp_path, progress=False, initial_vectors=True)
    initial = np.load(tmp_path / "init_E.npy", allow_pickle=False)
    trained = Embeddings.load_word2vec_format(tmp_path / "vectors.bin", binary=True).vectors  # E, as trained
    assert initial.shape == trained.shape and not np.allclose(initial, trained)
    assert len(stats["loss_per_epoch"]) == SMALL.epochs and np.isfinite(stats["loss_per_epoch"]).all()


def test_the_parents_memory_does_not_count_in_the_childs_peak(corpus, tmp_path):
    """The parent holds ~400 MiB; the child's reported peak must not include it."""
    from eval.measure import peak_rss_mib

    ballast = np.ones(400 * 2**20, dtype=np.uint8)
    assert peak_rss_mib() > 400
    stats = run_trainer("gensim", corpus, SMALL, tmp_path, progress=False)
    assert stats["peak_rss_mib"] < 350
    del ballast


def test_child_errors_come_back_as_the_same_error_class(corpus, tmp_path):
    with pytest.raises(ConfigError, match="min_count"):
        run_trainer("jaxgram", corpus, TrainConfig(min_count=10_000), tmp_path / "a", progress=False)
    with pytest.raises(DataError, match="missing.txt"):
        run_trainer("gensim", tmp_path / "missing.txt", SMALL, tmp_path / "b", progress=False)


def test_in_process_body_matches_the_child(corpus, tmp_path):
    stats = run_in_this_process("gensim", corpus, SMALL, tmp_path)
    assert stats["vocab_size"] == 64 and (tmp_path / "gensim_kwargs.json").is_file()
