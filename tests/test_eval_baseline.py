"""The ONE mapping from a jaxgram TrainConfig to gensim Word2Vec arguments: every field is either mapped to
the gensim keyword of the same meaning or named jaxgram-only, and on a real corpus both trainers build the
same vocabulary and train the same number of pairs."""

import dataclasses

import numpy as np
import pytest
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from eval.baseline import SOFTMAX_NOTE, baseline_note, gensim_kwargs, train_gensim
from eval.pipeline import _trainer_stage
from jaxgram.config import TrainConfig, resolved_workers
from jaxgram.data import count_pairs, keep_probabilities, noise_distribution
from jaxgram.errors import ConfigError, DataError
from jaxgram.training import prepare_corpus, train
from jaxgram.vocab import read_sentences

SENTENCES = [["alpha", "beta", "gamma", "delta"] * 3, ["beta", "gamma", "alpha"] * 4] * 20

# The config each mapping case changes one field of.
BASE = TrainConfig(dim=8, epochs=1, min_count=1)
# field -> (gensim keyword, a value for the field other than BASE's, the value gensim must then hold).
# What the words mean, beyond the name, is checked on a real corpus below: min_count, max_vocab_size
# (vocabulary), sample and ns_exponent (the same formulas), window, shrink_window and sample (pairs per epoch).
GENSIM_TWIN = {
    "objective": ("hs", "softmax", 1),  # and negative=0: see the softmax test
    "dim": ("vector_size", 24, 24),
    "window": ("window", 3, 3),
    "shrink_window": ("shrink_windows", False, False),
    "negative": ("negative", 7, 7),
    "ns_exponent": ("ns_exponent", 0.5, 0.5),
    "epochs": ("epochs", 2, 2),
    "min_count": ("min_count", 2, 2),
    "max_vocab_size": ("max_final_vocab", 3, 3),
    "sample": ("sample", 1e-4, 1e-4),
    "alpha": ("alpha", 0.03, 0.03),
    "min_alpha": ("min_alpha", 0.001, 0.001),
    "seed": ("seed", 11, 11),
    "workers": ("workers", 3, 3),
}
JAXGRAM_ONLY = {
    "optimizer": "gensim trains with plain SGD and its linear learning-rate decay only",
    "init": "gensim 4 always starts from its own uniform(-1, 1)/D, which init='gensim' reproduces",
    "tied": "gensim always keeps separate input and output tables",
    "batch_size": "gensim updates pair by pair (its batch_words only sizes the jobs handed to threads)",
    "devices": "gensim runs on CPU threads of one process, not over a device mesh",
    "shard_tables": "gensim keeps its tables whole in one process's memory",
    "chunk_tokens": "gensim streams the corpus file; how jaxgram chunks it is jaxgram's memory bound",
    "kernel": "which jaxgram implementation runs the step: the fused kernel is gensim's pair-by-pair update",
    "alpha_schedule": "gensim has no switch: its corpus_file mode (the baseline's) lowers alpha per worker, "
                      "its iterable mode linearly",
}


def test_every_config_field_is_mapped_to_gensim_or_named_jaxgram_only():
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    assert not set(GENSIM_TWIN) & set(JAXGRAM_ONLY)
    assert fields - set(GENSIM_TWIN) - set(JAXGRAM_ONLY) == set(), "new TrainConfig field: map it or say why not"
    assert set(GENSIM_TWIN) | set(JAXGRAM_ONLY) <= fields, "the tables name a field TrainConfig no longer has"
    assert all(reason for reason in JAXGRAM_ONLY.values())


@pytest.mark.parametrize("field", sorted(GENSIM_TWIN))
def test_each_mapped_field_drives_its_gensim_twin_on_a_real_model(field):
    keyword, value, gensim_value = GENSIM_TWIN[field]
    assert getattr(BASE, field) != value, "the case must change the field"
    kwargs = gensim_kwargs(dataclasses.replace(BASE, **{field: value}))
    assert kwargs[keyword] == pytest.approx(gensim_value)
    assert gensim_kwargs(BASE)[keyword] != kwargs[keyword], f"{keyword} does not follow {field}"
    model = Word2Vec(sentences=SENTENCES, **kwargs)
    assert getattr(model, keyword) == pytest.approx(gensim_value)
    assert model.sg == 1


def test_workers_default_to_the_count_jaxgram_trains_with_and_an_explicit_count_wins():
    assert gensim_kwargs(BASE)["workers"] == resolved_workers(BASE)
    assert gensim_kwargs(dataclasses.replace(BASE, workers=3))["workers"] == 3
    assert gensim_kwargs(dataclasses.replace(BASE, workers=3), workers=5)["workers"] == 5
    with pytest.raises(ConfigError, match="workers=0"):
        gensim_kwargs(BASE, workers=0)


def test_the_gensim_stage_is_redone_when_a_mapped_field_changes(tmp_path):
    corpus = {"corpus_sha256": "0" * 64, "corpus_path": str(tmp_path / "corpus.txt")}

    def key(config):
        return _trainer_stage("gensim", "gensim", corpus, config, tmp_path, progress=False).key

    # Workers are left out of the key on purpose: the thread count changes how fast gensim runs, not what it learns.
    for field in sorted(set(GENSIM_TWIN) - {"workers"}):
        assert key(dataclasses.replace(BASE, **{field: GENSIM_TWIN[field][1]})) != key(BASE), field


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


# ---- The same meaning on a real corpus ----------------------------------------------------------------

# Lines of zipf_corpus used: 15,000 tokens, so the rare half of its 2,000 words falls below min_count.
SMALL_CORPUS_LINES = 1000
MIN_COUNT = 5


@pytest.fixture(scope="module")
def small_corpus(zipf_corpus, tmp_path_factory):
    lines = zipf_corpus.read_text().splitlines(keepends=True)[:SMALL_CORPUS_LINES]
    path = tmp_path_factory.mktemp("small-zipf") / "corpus.txt"
    path.write_text("".join(lines))
    return path


def _jaxgram_vocabulary(corpus, config) -> dict[str, int]:
    vocab, _ = prepare_corpus(corpus, config)
    return dict(zip(vocab.words, vocab.counts.tolist()))


def _gensim_model(corpus, config) -> Word2Vec:
    """A gensim model with its vocabulary built from `corpus` as train_gensim builds it (no training)."""
    model = Word2Vec(**gensim_kwargs(config))
    model.build_vocab(corpus_file=str(corpus))
    return model


def _gensim_vocabulary(model: Word2Vec) -> dict[str, int]:
    return {word: int(model.wv.get_vecattr(word, "count")) for word in model.wv.index_to_key}


def _max_vocab_size_for(cut: str, ranked_counts: list[int]) -> int | None:
    """A max_vocab_size that cuts the min_count vocabulary (`ranked_counts`, most frequent first) as `cut` says:
    "none", "clean" (the last word kept is more frequent than the first one cut), "tied" (both have the same
    count) or "past_min_count" (larger than what min_count leaves, so min_count decides)."""
    if cut == "none":
        return None
    if cut == "past_min_count":
        return len(ranked_counts) + 10
    tied = cut == "tied"
    # From halfway down, where many words share a count, so a tie at the cut is not rare.
    start = len(ranked_counts) // 2
    return next(size for size in range(start, len(ranked_counts))
                if (ranked_counts[size - 1] == ranked_counts[size]) == tied)


@pytest.mark.parametrize("cut", ["none", "clean", "tied", "past_min_count"])
def test_gensim_builds_jaxgram_vocabulary_except_the_ties_at_the_cut(small_corpus, cut):
    distinct_words = len({word for sentence in read_sentences(small_corpus) for word in sentence})
    ranked_counts = list(_jaxgram_vocabulary(small_corpus, TrainConfig(min_count=MIN_COUNT)).values())
    assert len(ranked_counts) < distinct_words / 2, "min_count must prune"
    max_vocab_size = _max_vocab_size_for(cut, ranked_counts)
    config = TrainConfig(min_count=MIN_COUNT, max_vocab_size=max_vocab_size)
    jaxgram_vocab = _jaxgram_vocabulary(small_corpus, config)
    gensim_vocab = _gensim_vocabulary(_gensim_model(small_corpus, config))

    # gensim keeps only words more frequent than the first word jaxgram cuts (see eval.baseline), so on a
    # tie it also drops the words jaxgram kept with that count; everywhere else the two are the same.
    first_cut_count = ranked_counts[max_vocab_size] if cut in ("clean", "tied") else 0
    tied_at_the_cut = sorted(word for word, count in jaxgram_vocab.items() if count == first_cut_count)
    assert bool(tied_at_the_cut) == (cut == "tied")
    assert len(jaxgram_vocab) == min(max_vocab_size or len(ranked_counts), len(ranked_counts))
    assert gensim_vocab == {word: count for word, count in jaxgram_vocab.items() if word not in tied_at_the_cut}, (
        f"gensim should lack exactly {tied_at_the_cut}")


def test_subsampling_and_the_noise_distribution_follow_the_same_formulas(small_corpus):
    config = TrainConfig(min_count=MIN_COUNT, sample=1e-3, ns_exponent=0.6)
    model = _gensim_model(small_corpus, config)
    counts = np.array([model.wv.get_vecattr(word, "count") for word in model.wv.index_to_key])
    assert dict(zip(model.wv.index_to_key, counts.tolist())) == _jaxgram_vocabulary(small_corpus, config)
    gensim_keep = np.array([model.wv.get_vecattr(word, "sample_int") for word in model.wv.index_to_key]) / (2**32 - 1)
    jaxgram_keep = keep_probabilities(counts, config.sample)
    assert jaxgram_keep.min() < 0.2, "sample must drop some frequent words"
    np.testing.assert_allclose(gensim_keep, jaxgram_keep, atol=1e-8)
    gensim_noise = np.diff(model.cum_table, prepend=0) / model.cum_table[-1]
    np.testing.assert_allclose(gensim_noise, noise_distribution(counts, config.ns_exponent), atol=1e-8)


# gensim does not count the pairs it trains, but with compute_loss it adds one loss term per pair and one
# per negative, each -log(sigmoid(dot)). With an alpha too small to move any vector the dot products stay 0,
# so every term is the same, and with uniform noise (ns_exponent=0) every pair gets the same expected
# number of terms: its loss is pairs times a constant, measured on a run whose pairs are known exactly.
# gensim sums the loss in float32, which keeps it within about 0.3% at these sizes; one worker, as
# several overwrite each other's sum.
PAIR_COUNTING = TrainConfig(dim=8, window=5, negative=1, ns_exponent=0.0, epochs=4, min_count=MIN_COUNT,
                            sample=1e-3, alpha=1e-9, min_alpha=1e-9, seed=1, workers=1)
# On zipf corpora of seeds 0-4 with config seeds 1-3 the two trainers differed by at most 0.9% (about 27,000
# pairs per epoch with shrinking windows, 38,000 without); an unmapped shrink_window is 30% off.
PAIR_TOLERANCE = 0.04
# Full windows gave 1.42-1.44 times the pairs of shrinking ones, in both trainers (short sentences keep it
# below the (2·window)/(window+1) of long ones).
FULL_OVER_SHRUNK_AT_LEAST = 1.25


class _LossPerEpoch(CallbackAny2Vec):
    def __init__(self):
        self.losses = []

    def on_epoch_end(self, model):
        self.losses.append(model.get_latest_training_loss())
        model.running_training_loss = 0.0  # each epoch counts from 0, keeping the float32 sum small


def _gensim_loss_per_epoch(corpus, config) -> float:
    losses = _LossPerEpoch()
    Word2Vec(corpus_file=str(corpus), compute_loss=True, callbacks=[losses], **gensim_kwargs(config))
    return float(np.mean(losses.losses))


def _gensim_loss_per_pair(corpus, config) -> float:
    """Loss per pair where the pairs are known: full windows and no subsampling train every pair in each sentence."""
    exact = dataclasses.replace(config, shrink_window=False, sample=0.0)
    vocabulary = _jaxgram_vocabulary(corpus, exact)
    pairs = sum(count_pairs(sum(word in vocabulary for word in sentence), exact.window)
                for sentence in read_sentences(corpus))
    return _gensim_loss_per_epoch(corpus, exact) / pairs


def test_jaxgram_and_gensim_train_the_same_pairs_per_epoch_with_and_without_shrinking(small_corpus):
    loss_per_pair = _gensim_loss_per_pair(small_corpus, PAIR_COUNTING)
    pairs = {}
    for shrink in (True, False):
        config = dataclasses.replace(PAIR_COUNTING, shrink_window=shrink)
        jaxgram_pairs = float(np.mean(train(small_corpus, config, progress=False).pairs_per_epoch))
        gensim_pairs = _gensim_loss_per_epoch(small_corpus, config) / loss_per_pair
        pairs[shrink] = {"jaxgram": jaxgram_pairs, "gensim": gensim_pairs}
        assert gensim_pairs == pytest.approx(jaxgram_pairs, rel=PAIR_TOLERANCE), pairs
    for trainer in ("jaxgram", "gensim"):
        assert pairs[False][trainer] > FULL_OVER_SHRUNK_AT_LEAST * pairs[True][trainer], pairs
