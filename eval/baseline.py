"""The gensim baseline: the ONE place a jaxgram TrainConfig becomes gensim Word2Vec arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxgram.config import TrainConfig, resolved_workers
from jaxgram.errors import ConfigError, DataError

# What the report says about objective="softmax": gensim has no full-softmax skip-gram.
SOFTMAX_NOTE = ("jaxgram's full-softmax objective has no exact gensim twin: it is compared with gensim's "
                "hierarchical-softmax skip-gram (hs=1, negative=0)")


def gensim_kwargs(config: TrainConfig, workers: int | None = None) -> dict[str, Any]:
    """Word2Vec keyword arguments equivalent to `config` (skip-gram, same corpus rules).

    gensim runs the worker threads jaxgram trains with (`config.workers`, or default_workers()
    when that is None) unless the caller passes `workers`.
    """
    config.validate()
    if workers is not None and workers < 1:
        raise ConfigError(f"workers={workers!r} is not allowed: gensim needs at least 1 worker thread")
    softmax = config.objective == "softmax"
    return {
        "sg": 1,
        "hs": 1 if softmax else 0,
        "negative": 0 if softmax else config.negative,
        "ns_exponent": config.ns_exponent,
        "vector_size": config.dim,
        "window": config.window,
        # Both draw each centre's reach uniformly from 1..window when on (word2vec's `b`), and use
        # the full window when off.
        "shrink_windows": config.shrink_window,
        "min_count": config.min_count,
        # jaxgram's max_vocab_size keeps the N most frequent words once counting is done; gensim's
        # max_vocab_size would instead prune rare words DURING counting (to cap memory), changing
        # the counts, so it stays off and max_final_vocab does the cut. gensim cuts by raising
        # min_count to one more than the count of the (N+1)-th most frequent word, so on a tie at
        # the cut it drops every word of that count and keeps fewer than N, where jaxgram keeps
        # exactly N (ties broken alphabetically). Away from ties the vocabularies are identical.
        "max_final_vocab": config.max_vocab_size,
        "sample": config.sample,
        "alpha": config.alpha,
        "min_alpha": config.min_alpha,
        "epochs": config.epochs,
        "seed": config.seed,
        "workers": workers if workers is not None else resolved_workers(config),
    }


def baseline_note(config: TrainConfig) -> str:
    """The sentence the report prints about how gensim was set up."""
    kwargs = gensim_kwargs(config)
    shown = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k != "workers")
    note = f"gensim Word2Vec({shown}, workers={kwargs['workers']}) on the same corpus.txt"
    return note + (f". {SOFTMAX_NOTE}." if config.objective == "softmax" else ".")


def train_gensim(corpus_path, config: TrainConfig, progress: bool = False, iterable: bool = False):
    """Train gensim's Word2Vec on a LineSentence file; returns the model.

    By default through corpus_file, gensim's fast multi-worker reader of LineSentence files (each
    worker walks its own share and lowers alpha by its own progress); `iterable`: as a LineSentence
    iterable instead (one reader feeding the workers, word2vec's linear alpha)."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    corpus_path = Path(corpus_path)
    if not corpus_path.is_file():
        raise DataError(f"corpus file {corpus_path} does not exist or is not a file")

    class EpochBar(CallbackAny2Vec):
        def __init__(self):
            from tqdm.auto import tqdm
            self.bar = tqdm(total=config.epochs, unit="epoch", desc="gensim", disable=not progress)

        def on_epoch_end(self, model):
            self.bar.update(1)

        def on_train_end(self, model):
            self.bar.close()

    if iterable:
        from gensim.models.word2vec import LineSentence

        return Word2Vec(LineSentence(str(corpus_path)), callbacks=[EpochBar()], **gensim_kwargs(config))
    return Word2Vec(corpus_file=str(corpus_path), callbacks=[EpochBar()], **gensim_kwargs(config))
