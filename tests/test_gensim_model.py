"""jaxgram.Word2Vec: gensim's signature and defaults over jaxgram.train(), the same vectors as train() with
the mapped TrainConfig, train() again as --resume, save/load without pickle, callbacks, loss, refusals."""

from __future__ import annotations

import gc
import inspect
import io
import pickle
import zipfile

import numpy as np
import pytest
from gensim.models import Word2Vec as GensimWord2Vec
from gensim.models.callbacks import CallbackAny2Vec

import jaxgram
from eval.baseline import gensim_kwargs
from jaxgram import TrainConfig, Word2Vec, checkpoint, train
from jaxgram.errors import ConfigError, DataError
from jaxgram.toy import toy_sentences

# One worker: the tests compare runs bitwise (with more, the fused kernel's threads race on shared rows).
KEYWORDS = {"vector_size": 16, "window": 3, "negative": 4, "epochs": 2, "min_count": 1, "sample": 1e-2, "seed": 3,
            "workers": 1}


def _config(**changes) -> TrainConfig:
    """The TrainConfig KEYWORDS map to (gensim's names read by from_dict, gensim's initial vectors)."""
    return TrainConfig.from_dict({**KEYWORDS, "init": "gensim", **changes})


@pytest.fixture(scope="module")
def sentences() -> list[list[str]]:
    rng = np.random.default_rng(0)
    toy = toy_sentences() * 5
    return [toy[i] for i in rng.permutation(len(toy))]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, sentences):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("".join(" ".join(tokens) + "\n" for tokens in sentences), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(corpus_file):
    """jaxgram.train() on the corpus file with the config KEYWORDS map to."""
    return train(corpus_file, _config(), progress=False)


def test_the_signature_is_gensims_with_gensims_defaults_but_sg_1():
    ours = inspect.signature(Word2Vec).parameters
    gensims = inspect.signature(GensimWord2Vec).parameters
    named = [name for name in ours if ours[name].kind is not inspect.Parameter.VAR_KEYWORD]
    assert {name: ours[name].default for name in named if name != "sg"} == \
        {name: gensims[name].default for name in named if name != "sg"}
    assert ours["sg"].default == 1 and gensims["sg"].default == 0  # gensim's default, CBOW, is not trained here
    assert Word2Vec().config == TrainConfig(dim=100, window=5, min_count=5, sample=1e-3, alpha=0.025, min_alpha=0.0001,
                                            negative=5, ns_exponent=0.75, epochs=5, seed=1, init="gensim", workers=3)


def test_gensim_kwargs_of_the_models_config_gives_back_its_keywords():
    """eval.baseline.gensim_kwargs, the one TrainConfig -> gensim mapping, inverts what Word2Vec does."""
    given = {"vector_size": 24, "window": 7, "min_count": 2, "max_final_vocab": 50, "sample": 1e-4, "seed": 9,
             "workers": 2, "alpha": 0.03, "min_alpha": 0.001, "negative": 8, "ns_exponent": 0.5, "epochs": 4,
             "shrink_windows": False}
    model = Word2Vec(**given)
    assert gensim_kwargs(model.config) == {"sg": 1, "hs": 0, **given}
    assert {name: getattr(model, name) for name in given} == given  # gensim's attribute names read them back


def test_corpus_file_gives_bitwise_the_vectors_of_train_with_the_mapped_config(corpus_file, reference):
    model = Word2Vec(corpus_file=str(corpus_file), **KEYWORDS)
    assert model.config == _config()
    assert model.wv.index_to_key == list(reference.vocab.words)
    np.testing.assert_array_equal(model.wv.vectors, reference.params.E)
    np.testing.assert_array_equal(model.syn1neg, reference.params.W)
    assert [model.wv.get_vecattr(word, "count") for word in model.wv.index_to_key] == reference.vocab.counts.tolist()


def test_sentences_give_bitwise_what_the_same_text_as_corpus_file_gives(sentences, reference):
    model = Word2Vec(sentences, **KEYWORDS)
    np.testing.assert_array_equal(model.wv.vectors, reference.params.E)
    assert model.corpus_count == len(sentences) and model.corpus_total_words == sum(map(len, sentences))


def test_build_vocab_then_train_starts_from_trains_initial_vectors_and_ends_with_its_model(corpus_file, reference):
    model = Word2Vec(**KEYWORDS)
    model.build_vocab(corpus_file=corpus_file)
    np.testing.assert_array_equal(model.wv.vectors, reference.initial_params.E)  # gensim's build_vocab starts them too
    np.testing.assert_array_equal(model.syn1neg, reference.initial_params.W)
    model.train(corpus_file=corpus_file, total_words=model.corpus_total_words, epochs=model.epochs)
    np.testing.assert_array_equal(model.wv.vectors, reference.params.E)


def test_save_load_then_train_continues_as_resume_does(corpus_file, tmp_path):
    model = Word2Vec(corpus_file=corpus_file, **KEYWORDS)
    model.save(tmp_path / "model.zip")
    loaded = Word2Vec.load(tmp_path / "model.zip")
    np.testing.assert_array_equal(loaded.wv.vectors, model.wv.vectors)
    assert (loaded.corpus_count, loaded.get_latest_training_loss()) == (model.corpus_count,
                                                                       model.get_latest_training_loss())
    loaded.train(corpus_file=corpus_file, total_words=loaded.corpus_total_words, epochs=1)
    # `jaxgram train --resume --epochs 3` after a 2-epoch run into the same folder.
    train(corpus_file, _config(), out=tmp_path / "run", progress=False)
    resumed = train(corpus_file, _config(epochs=3), out=tmp_path / "run", resume=True, progress=False)
    np.testing.assert_array_equal(loaded.wv.vectors, resumed.params.E)
    np.testing.assert_array_equal(loaded.syn1neg, resumed.params.W)
    # The loss of the last call: the third epoch's alone.
    assert loaded.get_latest_training_loss() == pytest.approx(resumed.loss_per_epoch[2] * resumed.pairs_per_epoch[2])
    model.train(corpus_file=corpus_file, total_words=model.corpus_total_words, epochs=1)  # the same, not saved
    np.testing.assert_array_equal(model.wv.vectors, resumed.params.E)


def test_latest_training_loss_is_the_loss_summed_over_the_calls_pairs(sentences, reference):
    model = Word2Vec(sentences, **KEYWORDS)
    summed = sum(loss * pairs for loss, pairs in zip(reference.loss_per_epoch, reference.pairs_per_epoch))
    assert model.get_latest_training_loss() == pytest.approx(summed) and summed > 0
    assert Word2Vec(**KEYWORDS).get_latest_training_loss() == 0.0  # nothing trained yet


class _Recorder(CallbackAny2Vec):
    """gensim's callback class, recording each event and, at each epoch's end, the model's vectors and loss."""

    def __init__(self):
        self.events, self.vectors, self.losses = [], [], []

    def on_train_begin(self, model):
        self.events.append("train_begin")

    def on_epoch_begin(self, model):
        self.events.append("epoch_begin")

    def on_epoch_end(self, model):
        self.events.append("epoch_end")
        self.vectors.append(np.array(model.wv.vectors))
        self.losses.append(model.get_latest_training_loss())

    def on_train_end(self, model):
        self.events.append("train_end")


def test_callbacks_get_gensims_events_in_order_with_each_epochs_vectors_and_loss(sentences, reference):
    recorder = _Recorder()
    model = Word2Vec(sentences, callbacks=[recorder], **KEYWORDS)
    assert recorder.events == ["train_begin", "epoch_begin", "epoch_end", "epoch_begin", "epoch_end", "train_end"]
    first_epoch = reference.loss_per_epoch[0] * reference.pairs_per_epoch[0]
    assert recorder.losses == pytest.approx([first_epoch, model.get_latest_training_loss()])
    assert not np.array_equal(recorder.vectors[0], reference.initial_params.E)
    assert not np.array_equal(recorder.vectors[0], recorder.vectors[1])
    np.testing.assert_array_equal(recorder.vectors[1], model.wv.vectors)
    again = _Recorder()
    model.train(sentences, total_examples=model.corpus_count, epochs=1, callbacks=[again])
    assert again.events == ["train_begin", "epoch_begin", "epoch_end", "train_end"]


def _trained(sentences) -> Word2Vec:
    return Word2Vec(sentences, **KEYWORDS)


# Each: what a gensim user might call, and the keyword or setting the one-line refusal names.
REFUSALS = {
    "cbow": (lambda s: Word2Vec(sg=0), r"^sg=0 is not allowed: .*skip-gram"),
    "hierarchical softmax": (lambda s: Word2Vec(hs=1, negative=0),
                             r"^hs=1 is not allowed: .*objective='softmax'\)\): a different model"),
    "a gensim keyword jaxgram lacks": (lambda s: Word2Vec(cbow_mean=0),
                                       r"^cbow_mean=0 is not allowed: Word2Vec takes sentences, corpus_file, vector_size"),
    "a train() keyword jaxgram lacks": (lambda s: _trained(s).train(s, epochs=1, queue_factor=3),
                                        r"^queue_factor=3 is not allowed: Word2Vec.train takes corpus_iterable, "),
    "gensim's max_vocab_size": (lambda s: Word2Vec(max_vocab_size=100), r"^max_vocab_size=100 .*max_final_vocab"),
    "online vocabulary update": (lambda s: _trained(s).build_vocab(s, update=True), r"^update=True is not allowed"),
    "a new start_alpha": (lambda s: _trained(s).train(s, epochs=1, start_alpha=0.5), r"^start_alpha=0.5 is not allowed"),
    "changing alpha": (lambda s: setattr(_trained(s), "alpha", 0.5), r"^alpha cannot change"),
    "train without epochs": (lambda s: _trained(s).train(s, total_examples=len(s)), r"^epochs=None is not allowed"),
    "train before build_vocab": (lambda s: Word2Vec().train(s, epochs=1), r"^train\(\) needs the model's vocabulary"),
    "two corpora": (lambda s: Word2Vec(s, corpus_file="c.txt"), r"^give the corpus once"),
    "a generator": (lambda s: Word2Vec(tokens for tokens in s), r"^sentences is an iterator"),
    "a list of str": (lambda s: Word2Vec([" ".join(tokens) for tokens in s]), r"^sentences must be token lists"),
    "a path as sentences": (lambda s: Word2Vec("corpus.txt"), r"^sentences='corpus.txt' is a path"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_what_jaxgram_does_not_train_is_refused_in_one_line(sentences, case):
    call, message = REFUSALS[case]
    with pytest.raises(ConfigError, match=message) as refused:
        call(sentences)
    assert isinstance(refused.value, ValueError) and "\n" not in str(refused.value)


def test_sg_0_and_hs_1_are_refused_before_the_corpus_is_read(tmp_path):
    missing = tmp_path / "no-such-corpus.txt"
    for keywords in ({"sg": 0}, {"hs": 1}):
        with pytest.raises(ConfigError, match=f"^{next(iter(keywords))}="):
            Word2Vec(corpus_file=missing, **keywords)


@pytest.mark.fault
def test_train_on_another_vocabulary_is_refused_and_the_model_is_kept(sentences):
    model = _trained(sentences)
    before = np.array(model.wv.vectors)
    with pytest.raises(ConfigError, match=r"^the corpus given to train\(\) has another vocabulary"):
        model.train(sentences + [["a", "new", "sentence"]], total_examples=len(sentences) + 1, epochs=1)
    np.testing.assert_array_equal(model.wv.vectors, before)
    model.train(sentences, total_examples=len(sentences), epochs=1)  # its own corpus still trains on
    assert not np.array_equal(model.wv.vectors, before)


def test_the_private_run_folder_goes_with_the_model(sentences):
    model = _trained(sentences)
    folder = model._folder
    assert checkpoint.exists(folder / "checkpoint")
    del model
    gc.collect()
    assert not folder.exists()


def test_word2vec_is_exported():
    assert jaxgram.Word2Vec is Word2Vec and "Word2Vec" in jaxgram.__all__


class _Trap:
    """Unpickling this creates `marker`: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.fault
def test_load_refuses_what_save_did_not_write_and_runs_no_code(sentences, tmp_path):
    """A pickle (gensim's own save format) that would run code, a truncated archive, and an archive whose
    checkpoint arrays were altered: each a DataError naming the file; the pickle's code never runs."""
    marker = tmp_path / "code-ran"
    (tmp_path / "gensim.model").write_bytes(pickle.dumps(_Trap(marker)))
    _trained(sentences).save(tmp_path / "model.zip")
    whole = (tmp_path / "model.zip").read_bytes()
    (tmp_path / "truncated.zip").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "altered.zip").write_bytes(_with_altered_arrays(whole))
    for name in ("gensim.model", "truncated.zip", "altered.zip", "missing.zip"):
        with pytest.raises(DataError, match=f"^cannot load the model {tmp_path / name}: ") as refused:
            Word2Vec.load(tmp_path / name)
        assert "\n" not in str(refused.value)
    assert not marker.exists()
    assert Word2Vec.load(tmp_path / "model.zip").wv.vectors.shape == (len(set(sum(sentences, []))), 16)


def _with_altered_arrays(archive_bytes: bytes) -> bytes:
    """The archive with one byte of its checkpoint's arrays changed (the zip itself still sound)."""
    altered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as source, zipfile.ZipFile(altered, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name.endswith(".npz"):
                data = data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
            target.writestr(name, data)
    return altered.getvalue()


@pytest.mark.slow
def test_on_the_five_books_it_trains_bitwise_what_jaxgram_train_trains_with_the_mapped_options(five_book_corpus,
                                                                                               tmp_path):
    """gensim's keywords here and `jaxgram train`'s options there (the same settings, gensim's initial vectors):
    one worker gives the same vectors, from a corpus file or from the sentences read from it."""
    import subprocess
    import sys

    keywords = {"vector_size": 32, "window": 5, "min_count": 5, "sample": 1e-3, "negative": 5, "epochs": 1,
                "seed": 7, "workers": 1}
    cli = subprocess.run([sys.executable, "-m", "jaxgram", "train", "--corpus", str(five_book_corpus),
                          "--out", str(tmp_path / "cli"), "--no-progress", "--save", "npy", "--init", "gensim",
                          "--dim", "32", "--window", "5", "--min-count", "5", "--sample", "0.001", "--negative", "5",
                          "--epochs", "1", "--seed", "7", "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr
    from_file = Word2Vec(corpus_file=str(five_book_corpus), **keywords)
    np.testing.assert_array_equal(from_file.wv.vectors, np.load(tmp_path / "cli" / "E.npy"))
    np.testing.assert_array_equal(from_file.syn1neg, np.load(tmp_path / "cli" / "W.npy"))
    sentences = [line.split() for line in five_book_corpus.read_text(encoding="utf-8").splitlines()]
    np.testing.assert_array_equal(Word2Vec(sentences, **keywords).wv.vectors, from_file.wv.vectors)
