"""`jaxgram.Word2Vec`: gensim's Word2Vec signature over jaxgram.train() and TrainConfig, not a second trainer.

gensim's keywords become a TrainConfig through TrainConfig.from_dict, which reads gensim's names
(config.GENSIM_NAMES), so there is one table of names: eval.baseline.gensim_kwargs(model.config) gives
back the keywords the model was made with. gensim's defaults hold where they differ from TrainConfig's
(its initial vectors, init="gensim"; 3 workers). What differs from gensim, on purpose:

- skip-gram with negative sampling only: sg=0 (CBOW) and hs=1 (hierarchical softmax) are refused in
  one line (ConfigError, a ValueError), as are gensim's vocabulary rules jaxgram lacks (trim_rule,
  max_vocab_size while counting, build_vocab(update=True)).
- train() continues from where the last call stopped, as `jaxgram train --resume --epochs N` does: the
  model keeps a private run folder with train()'s checkpoint. The learning rate of the added epochs
  follows the schedule of a run of all the epochs (done + new), where gensim starts again at alpha.
  The corpus must give the model's vocabulary; total_examples and total_words are accepted, unused.
- save() writes one zip of JSON and the checkpoint's arrays (no pickle); load() reads only that.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil
import tempfile
import weakref
import zipfile
from pathlib import Path

import jax
import numpy as np

from jaxgram import checkpoint
from jaxgram.config import GENSIM_NAMES, TrainConfig
from jaxgram.embeddings import Embeddings
from jaxgram.errors import ConfigError, DataError
from jaxgram.fileio import atomic_open
from jaxgram.init import host_init_params
from jaxgram.losses import Params
from jaxgram.training import CHECKPOINT_DIR, train
from jaxgram.vocab import Vocabulary, build_vocabulary, read_sentences

# gensim keywords jaxgram refuses, with what it does instead.
INSTEAD = {
    "sg": "jaxgram trains skip-gram only (sg=1); CBOW (sg=0) is not implemented",
    "hs": ("jaxgram trains negative sampling (hs=0, negative >= 1); hierarchical softmax is not implemented. Its "
           "nearest jaxgram objective is the full softmax, jaxgram.train(corpus, TrainConfig(objective='softmax')): "
           "a different model"),
    "max_vocab_size": ("gensim's max_vocab_size prunes rare words while counting; jaxgram counts exactly and keeps "
                       "the N most frequent words with max_final_vocab=N"),
    "trim_rule": "jaxgram's vocabulary rules are min_count and max_final_vocab",
    "update": ("a model trains on one vocabulary (train() resumes its checkpoint); to add words, train a new "
               "Word2Vec on the whole corpus"),
    "start_alpha": "a continued train() keeps the model's alpha and schedule, as --resume does",
    "end_alpha": "a continued train() keeps the model's min_alpha and schedule, as --resume does",
}
# gensim's keywords above, at the values that ask for nothing jaxgram lacks.
NEUTRAL = {"sg": 1, "hs": 0, "max_vocab_size": None, "trim_rule": None, "update": False, "start_alpha": None,
           "end_alpha": None}
ARCHIVE_FORMAT = 1
SETTINGS = "word2vec.json"


class _Setting:
    """A TrainConfig field under gensim's name, read-only: a run's settings are fixed when the model is made."""

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.field = name, GENSIM_NAMES.get(name, name)

    def __get__(self, model, owner=None):
        return self if model is None else getattr(model.config, self.field)

    def __set__(self, model, value) -> None:
        raise ConfigError(f"{self.name} cannot change once the model is made (a continued train() keeps the run's "
                          f"settings, as --resume does): make a new Word2Vec({self.name}={value!r})")


class Word2Vec:
    """gensim's Word2Vec for skip-gram with negative sampling, trained by jaxgram.train() (see the module's notes).

    `wv` is a jaxgram.Embeddings (a gensim KeyedVectors); `syn1neg` the output table. get_latest_training_loss()
    is the loss summed over every pair the last train() call trained (each epoch's mean loss per pair times
    its pairs), as gensim's running sum is; jaxgram always measures it, so compute_loss changes nothing.
    `callbacks` get gensim's on_train_begin, on_epoch_begin, on_epoch_end and on_train_end; the first
    on_epoch_begin comes before the corpus is read. During on_epoch_end, `wv`, `syn1neg` and the loss are
    those of the epoch just ended (read from its checkpoint). With workers=1 a run reproduces itself bitwise.
    """

    sg, hs = 1, 0
    vector_size, window, min_count, max_final_vocab = _Setting(), _Setting(), _Setting(), _Setting()
    sample, seed, workers, alpha, min_alpha = _Setting(), _Setting(), _Setting(), _Setting(), _Setting()
    negative, ns_exponent, epochs, shrink_windows = _Setting(), _Setting(), _Setting(), _Setting()

    def __init__(self, sentences=None, corpus_file=None, *, vector_size=100, alpha=0.025, window=5, min_count=5,
                 max_final_vocab=None, sample=1e-3, seed=1, workers=3, min_alpha=0.0001, sg=1, hs=0, negative=5,
                 ns_exponent=0.75, epochs=5, shrink_windows=True, compute_loss=False, callbacks=(), **gensim_only):
        _refuse_untrained(Word2Vec.__init__, sg=sg, hs=hs, **gensim_only)
        config = TrainConfig.from_dict({
            # gensim's min_count=0 keeps every word, as 1 does (jaxgram's least min_count).
            "vector_size": vector_size, "alpha": alpha, "window": window, "min_count": 1 if min_count == 0 else min_count,
            "max_final_vocab": max_final_vocab, "sample": sample, "seed": seed, "workers": workers,
            "min_alpha": min_alpha, "negative": negative, "ns_exponent": ns_exponent, "epochs": epochs,
            "shrink_windows": shrink_windows, "init": "gensim"})
        self._start(config, compute_loss, callbacks)
        if sentences is not None or corpus_file is not None:
            self.build_vocab(sentences, corpus_file)
            self._train(_one_corpus(sentences, corpus_file), epochs, self.callbacks)

    def _start(self, config: TrainConfig, compute_loss: bool, callbacks) -> None:
        """An untrained model of `config`, with its private run folder (removed with the model)."""
        self.config, self.compute_loss, self.callbacks = config, compute_loss, tuple(callbacks)
        self.corpus_count, self.corpus_total_words = 0, 0
        self._vocab: Vocabulary | None = None
        self._params: Params | None = None  # the tables, None until read again (see _tables)
        self._wv = None
        self._call_began = 0  # epochs done when the last train() call began: its loss is theirs after it
        self._folder = Path(tempfile.mkdtemp(prefix="jaxgram-word2vec-"))
        weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)

    def __repr__(self) -> str:
        return f"Word2Vec<vocab={len(self._vocab or ())}, vector_size={self.vector_size}, alpha={self.alpha}>"

    # -- gensim's lifecycle -----------------------------------------------------------------

    def build_vocab(self, corpus_iterable=None, corpus_file=None, update=False, trim_rule=None) -> None:
        """Count the corpus (min_count, max_final_vocab) and start the tables afresh, as gensim's does; a
        trained model starts over."""
        _refuse_untrained(Word2Vec.build_vocab, update=update, trim_rule=trim_rule)
        vocab, tally = self._count(_one_corpus(corpus_iterable, corpus_file))
        shutil.rmtree(self._checkpoints, ignore_errors=True)
        self._vocab, self._params, self._wv, self._call_began = vocab, None, None, 0
        self.corpus_count, self.corpus_total_words = tally.sentences, tally.words

    def train(self, corpus_iterable=None, corpus_file=None, total_examples=None, total_words=None, epochs=None,
              start_alpha=None, end_alpha=None, compute_loss=False, callbacks=(), **gensim_only) -> None:
        """Train `epochs` more epochs on the corpus, continuing from where the last call stopped."""
        _refuse_untrained(Word2Vec.train, **gensim_only, **_changed_alpha(self, start_alpha, end_alpha))
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"epochs={epochs!r} is not allowed: train() needs the epochs to train, an int >= 1")
        if self._vocab is None:
            raise ConfigError("train() needs the model's vocabulary first: call build_vocab(corpus) (or give the "
                              "corpus to Word2Vec(...))")
        corpus = _one_corpus(corpus_iterable, corpus_file)
        self._check_same_vocabulary(corpus)
        self.compute_loss = compute_loss
        self._train(corpus, epochs, callbacks)

    def _train(self, corpus, epochs: int, callbacks) -> None:
        done = self._epochs_done()
        # The run's config counts every epoch (what --resume --epochs takes); model.epochs, as in gensim, the call's.
        config = dataclasses.replace(self.config, epochs=done + epochs)
        self.config, self._call_began = dataclasses.replace(self.config, epochs=epochs), done
        events = _Events(self, tuple(callbacks), config.epochs)
        events.begin()
        result = train(corpus, config, out=self._folder, resume=True, progress=False, on_epoch_end=events.epoch_end,
                       save="npy")
        self._params, self._wv = result.params, None
        events.end()

    def get_latest_training_loss(self) -> float:
        """The loss summed over the pairs of the last train() call (so far, during its callbacks)."""
        if not checkpoint.exists(self._checkpoints):
            return 0.0
        meta = checkpoint.read_meta(self._checkpoints)
        epochs = slice(self._call_began, None)
        return float(sum(loss * pairs for loss, pairs in zip(meta["loss_per_epoch"][epochs],
                                                               meta["pairs_per_epoch"][epochs])))

    # -- the tables ---------------------------------------------------------------------------

    @property
    def wv(self) -> Embeddings:
        if self._wv is None:
            self._wv = _embeddings(self._tables().E, self._vocab)
        return self._wv

    @wv.setter
    def wv(self, vectors) -> None:
        self._wv = vectors

    @property
    def syn1neg(self) -> np.ndarray:
        """The output table W (word2vec's syn1neg)."""
        return self._tables().W

    def _tables(self) -> Params:
        """The last epoch's tables: its checkpoint's, or the initial ones train() starts from."""
        if self._params is None and checkpoint.exists(self._checkpoints):
            arrays = checkpoint.load(self._checkpoints).arrays
            self._params = Params(arrays["E"], arrays["W"])
        elif self._params is None and self._vocab is None:  # gensim's Word2Vec() has empty vectors too
            self._params = Params(*(np.zeros((0, self.config.dim), np.float32),) * 2)
        elif self._params is None:
            self._params = _initial_tables(self.config, len(self._vocab))
        return self._params

    def _epoch_ended(self) -> None:
        """train() has saved an epoch's checkpoint: the tables are read again from it when next asked for."""
        self._params = self._wv = None

    @property
    def _checkpoints(self) -> Path:
        return self._folder / CHECKPOINT_DIR

    def _epochs_done(self) -> int:
        return checkpoint.read_meta(self._checkpoints)["epochs_done"] if checkpoint.exists(self._checkpoints) else 0

    # -- the corpus ---------------------------------------------------------------------------

    def _count(self, corpus) -> tuple[Vocabulary, _Tally]:
        """The corpus's vocabulary under the model's min_count and max_final_vocab, and its size."""
        tally = _Tally(corpus)
        where = "the corpus" if tally.is_iterable else f"corpus file {corpus}"
        return build_vocabulary(tally, self.config.min_count, self.config.max_vocab_size, source=where), tally

    def _check_same_vocabulary(self, corpus) -> None:
        vocab, _ = self._count(corpus)
        if vocab.fingerprint() != self._vocab.fingerprint():
            raise ConfigError(f"the corpus given to train() has another vocabulary ({len(vocab)} words) than the "
                              f"model's ({len(self._vocab)} words): {INSTEAD['update']}")

    # -- save and load --------------------------------------------------------------------------

    def save(self, fname: str | os.PathLike) -> None:
        """One zip archive (written atomically): the settings and vocabulary as JSON and the last epoch's
        checkpoint (arrays in .npz, sha256-checked), all load() needs to go on training. No pickle."""
        settings = {"format": ARCHIVE_FORMAT, "config": self.config.to_dict(), "compute_loss": self.compute_loss,
                    "corpus_count": self.corpus_count, "corpus_total_words": self.corpus_total_words,
                    "call_began": self._call_began}
        if self._vocab is not None:
            settings["vocabulary"] = {"words": list(self._vocab.words), "counts": self._vocab.counts.tolist()}
        with atomic_open(fname, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
            archive.writestr(SETTINGS, json.dumps(settings))
            if checkpoint.exists(self._checkpoints):
                arrays_file = checkpoint.read_meta(self._checkpoints)["arrays_file"]
                for name in (checkpoint.MANIFEST, arrays_file):
                    archive.write(self._checkpoints / name, f"{CHECKPOINT_DIR}/{name}")

    @classmethod
    def load(cls, fname: str | os.PathLike) -> Word2Vec:
        """A model save() wrote, ready to train on; DataError naming the file for anything else."""
        try:
            with zipfile.ZipFile(fname) as archive:
                settings = json.loads(archive.read(SETTINGS))
                model = cls.__new__(cls)
                model._restore(settings, archive)
        except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError, DataError) as exc:
            raise DataError(f"cannot load the model {fname}: not an archive Word2Vec.save wrote ({exc})") from None
        return model

    def _restore(self, settings: dict, archive: zipfile.ZipFile) -> None:
        if not isinstance(settings, dict) or settings.get("format") != ARCHIVE_FORMAT:
            raise ValueError(f"{SETTINGS} does not hold settings of format {ARCHIVE_FORMAT}")
        self._start(TrainConfig.from_dict(settings["config"]), settings["compute_loss"], ())
        self.corpus_count, self.corpus_total_words = settings["corpus_count"], settings["corpus_total_words"]
        self._call_began = settings["call_began"]
        if "vocabulary" in settings:
            self._vocab = Vocabulary(tuple(settings["vocabulary"]["words"]), settings["vocabulary"]["counts"])
        names = [name for name in archive.namelist() if name.startswith(f"{CHECKPOINT_DIR}/")]
        if names:
            self._restore_checkpoint(archive, names)

    def _restore_checkpoint(self, archive: zipfile.ZipFile, names: list[str]) -> None:
        """The archive's checkpoint, into the private run folder, checked (its vocabulary, its arrays' sha256)."""
        self._checkpoints.mkdir()
        for name in names:  # written under names of our own: nothing in the archive picks a path
            (self._checkpoints / Path(name).name).write_bytes(archive.read(name))
        trained_on = checkpoint.read_meta(self._checkpoints).get("vocab_sha256")
        if self._vocab is None or trained_on != self._vocab.fingerprint():
            raise ValueError("its checkpoint was trained on another vocabulary than the one it lists")
        self._tables()  # reads the arrays, checking their sha256, now rather than at the first query


class _Tally:
    """The corpus's token lists, counted (sentences, words) as build_vocabulary reads them."""

    def __init__(self, corpus):
        self.corpus, self.is_iterable = corpus, not isinstance(corpus, (str, os.PathLike))
        self.sentences = self.words = 0

    def __iter__(self):
        for sentence in self.corpus if self.is_iterable else read_sentences(self.corpus):
            self.sentences += 1
            self.words += len(sentence)
            yield sentence


class _Events:
    """gensim's callback events around one jaxgram.train() call that ends after `last_epoch` epochs."""

    def __init__(self, model: Word2Vec, callbacks: tuple, last_epoch: int):
        self.model, self.callbacks, self.last_epoch = model, callbacks, last_epoch

    def _tell(self, event: str) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self.model)

    def begin(self) -> None:
        self._tell("on_train_begin")
        self._tell("on_epoch_begin")

    def epoch_end(self, epochs_done: int, epoch_loss: float) -> None:
        """train()'s on_epoch_end: the epoch's checkpoint is saved."""
        self.model._epoch_ended()
        self._tell("on_epoch_end")
        if epochs_done < self.last_epoch:
            self._tell("on_epoch_begin")

    def end(self) -> None:
        self._tell("on_train_end")


def _refuse_untrained(method, **given) -> None:
    """ConfigError for the first of gensim's keywords `given` to `method` that asks for what jaxgram does not train."""
    for name, value in given.items():
        if name in NEUTRAL and value == NEUTRAL[name]:
            continue
        takes = [key for key, parameter in inspect.signature(method).parameters.items()
                 if key != "self" and parameter.kind is not parameter.VAR_KEYWORD]
        called = method.__qualname__.removesuffix(".__init__")
        raise ConfigError(f"{name}={value!r} is not allowed: " + INSTEAD.get(name, f"{called} takes {', '.join(takes)}"))


def _changed_alpha(model: Word2Vec, start_alpha, end_alpha) -> dict:
    """train()'s start_alpha and end_alpha where they differ from the model's alpha and min_alpha."""
    changed = {}
    if start_alpha not in (None, model.alpha):
        changed["start_alpha"] = start_alpha
    if end_alpha not in (None, model.min_alpha):
        changed["end_alpha"] = end_alpha
    return changed


def _one_corpus(corpus_iterable, corpus_file):
    """The corpus train() takes: token lists, or a LineSentence file's path; ConfigError for anything else."""
    if (corpus_iterable is None) == (corpus_file is None):
        raise ConfigError("give the corpus once: sentences (corpus_iterable, token lists) or corpus_file (a path), "
                          "not both and not neither")
    if corpus_file is not None:
        if not isinstance(corpus_file, (str, os.PathLike)):
            raise ConfigError(f"corpus_file={corpus_file!r} is not allowed: it must be a path")
        return corpus_file
    if isinstance(corpus_iterable, (str, os.PathLike)):
        raise ConfigError(f"sentences={corpus_iterable!r} is a path, not token lists: pass corpus_file= for a file")
    if iter(corpus_iterable) is corpus_iterable:
        raise ConfigError("sentences is an iterator, read only once: build_vocab and train each read the corpus, so "
                          "pass a list of token lists, a restartable iterable (gensim's LineSentence) or corpus_file")
    if isinstance(next(iter(corpus_iterable), None), str):
        raise ConfigError("sentences must be token lists (each a list of words); its first item is a str")
    return corpus_iterable


def _initial_tables(config: TrainConfig, vocab_size: int) -> Params:
    """The tables train() starts from (drawn from the first key of the seed's split, as train() draws them)."""
    init_key, _ = jax.random.split(jax.random.PRNGKey(config.seed))
    return host_init_params(init_key, vocab_size, config.dim, config.init)


def _embeddings(vectors: np.ndarray, vocab: Vocabulary | None) -> Embeddings:
    words, counts = (vocab.words, vocab.counts) if vocab is not None else ((), np.zeros(0, np.int64))
    embeddings = Embeddings(words, vectors, counts)
    # gensim's own code reads a word's count from expandos["count"], where an Embeddings that keeps its counts
    # only in .counts has none.
    embeddings.expandos.setdefault("count", counts.copy())
    return embeddings
