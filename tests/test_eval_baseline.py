"""The ONE mapping from a jaxgram TrainConfig to gensim Word2Vec arguments, checked on a real model."""

import os

import pytest
from gensim.models import Word2Vec

from eval.baseline import SOFTMAX_NOTE, baseline_note, gensim_kwargs, train_gensim
from jaxgram.config import TrainConfig
from jaxgram.errors import DataError

SENTENCES = [["alpha", "beta", "gamma", "delta"] * 3, ["beta", "gamma", "alpha"] * 4] * 20


def test_negative_sampling_mapping_reaches_the_gensim_model():
    config = TrainConfig(objective="ns", dim=24, window=3, negative=7, ns_exponent=0.5, epochs=2,
                         min_count=2, sample=1e-4, alpha=0.03, min_alpha=0.001, seed=11)
    kwargs = gensim_kwargs(config)
    assert kwargs["workers"] == os.cpu_count()
    model = Word2Vec(sentences=SENTENCES, **kwargs)
    assert (model.sg, model.hs, model.negative) == (1, 0, 7)
    assert model.vector_size == 24 and model.wv.vector_size == 24
    assert model.window == 3
    assert model.ns_exponent == pytest.approx(0.5)
    assert model.epochs == 2
    assert model.min_count == 2
    assert model.sample == pytest.approx(1e-4)
    assert model.alpha == pytest.approx(0.03)
    assert model.min_alpha == pytest.approx(0.001)
    assert model.seed == 11
    assert model.workers == os.cpu_count()


def test_every_training_field_with_a_gensim_twin_is_mapped():
    # Fields without a gensim twin: jaxgram-only options (optimiser, init, tying, batching, devices, chunking,
    # and which implementation runs the step).
    jaxgram_only = {"objective", "shrink_window", "optimizer", "init", "tied", "batch_size", "devices", "shard_tables",
                    "chunk_tokens", "kernel"}
    renamed = {"dim": "vector_size"}
    kwargs = gensim_kwargs(TrainConfig())
    for field in TrainConfig().to_dict():
        if field not in jaxgram_only:
            assert renamed.get(field, field) in kwargs, field


def test_softmax_maps_to_hierarchical_softmax_and_the_note_says_so():
    config = TrainConfig(objective="softmax", negative=0, dim=8, min_count=1)
    kwargs = gensim_kwargs(config)
    assert (kwargs["sg"], kwargs["hs"], kwargs["negative"]) == (1, 1, 0)
    model = Word2Vec(sentences=SENTENCES, **kwargs)
    assert model.hs == 1 and model.negative == 0
    assert SOFTMAX_NOTE in baseline_note(config)
    assert "hs=1" in baseline_note(config)
    assert SOFTMAX_NOTE not in baseline_note(TrainConfig())


def test_invalid_config_is_refused_before_gensim_sees_it():
    with pytest.raises(Exception, match="dim"):
        gensim_kwargs(TrainConfig(dim=0))


def test_train_gensim_names_a_missing_corpus(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match="nope.txt"):
        train_gensim(missing, TrainConfig())


def test_train_gensim_reads_a_line_sentence_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in SENTENCES) + "\n")
    model = train_gensim(corpus, TrainConfig(dim=8, epochs=1, min_count=1))
    assert set(model.wv.index_to_key) == {"alpha", "beta", "gamma", "delta"}
    assert model.corpus_total_words == sum(len(s) for s in SENTENCES)
