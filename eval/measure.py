"""Run one trainer in its own child process and collect wall time, words/s and peak memory.

A child per trainer keeps the peaks apart. The peak is the child's VmHWM (high-water mark of
its own address space, reset by exec); ru_maxrss is only the fallback off Linux because
Linux carries the parent's ru_maxrss over fork + exec, which would confound the two trainers.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from eval.baseline import gensim_kwargs
from jaxgram import errors
from jaxgram.config import TrainConfig
from jaxgram.fileio import atomic_write_json

# gensim_iterable: gensim's Word2Vec fed a LineSentence iterable (one reader, word2vec's linear
# alpha) instead of corpus_file (the baseline): how much gensim agrees with itself across modes.
TRAINERS = ("jaxgram", "gensim", "gensim_iterable")
STATS_FILE = "stats.json"
ERROR_FILE = "error.json"
INITIAL_VECTORS = "init_E.npy"


def peak_rss_mib() -> float:
    """Peak resident memory of this process (MiB), imports included."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # reported in kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _train_jaxgram(corpus: Path, config: TrainConfig, out: Path, progress: bool, initial_vectors: bool) -> dict:
    import jaxgram.training as jaxgram_train
    from jaxgram.outputs import save_npy

    result = jaxgram_train.train(corpus, config, out=out, progress=progress)
    # The peak of the train call, what `jaxgram train` costs: the report's extra below (drawing
    # the initial tables again) comes after it, as gensim's peak is read after it saved its vectors.
    peak = peak_rss_mib()
    if initial_vectors:  # the random initial vectors, for the report's "before training" PCA
        save_npy(out / INITIAL_VECTORS, result.initial_params.E)
    return {"corpus_words": result.corpus_words, "vocab_size": len(result.vocab),
            "train_loop_seconds": result.wall_seconds, "loss_per_epoch": result.loss_per_epoch, "peak_rss_mib": peak}


def _train_gensim(corpus: Path, config: TrainConfig, out: Path, progress: bool, initial_vectors: bool = False,
                  iterable: bool = False) -> dict:
    from eval.baseline import train_gensim
    from jaxgram.embeddings import Embeddings

    model = train_gensim(corpus, config, progress=progress, iterable=iterable)
    Embeddings(model.wv.index_to_key, model.wv.vectors).save_word2vec_format(out / "vectors.bin", binary=True)
    atomic_write_json(out / "gensim_kwargs.json", gensim_kwargs(config))
    return {"corpus_words": int(model.corpus_total_words), "vocab_size": len(model.wv),
            "train_loop_seconds": float(model.total_train_time)}


def run_in_this_process(trainer: str, corpus, config: TrainConfig, out, progress: bool = False,
                        initial_vectors: bool = False) -> dict:
    """Train, write the vectors and stats.json into `out`; the child process's body.

    `initial_vectors`: jaxgram also writes init_E.npy (the report's "before training" PCA),
    after its peak memory is read but inside wall_seconds; a benchmark leaves it out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rss_before = peak_rss_mib()
    began = time.perf_counter()
    body = {"jaxgram": _train_jaxgram, "gensim": _train_gensim,
            "gensim_iterable": functools.partial(_train_gensim, iterable=True)}[trainer]
    stats = body(Path(corpus), config, out, progress, initial_vectors)
    wall = time.perf_counter() - began
    stats.update({
        "trainer": trainer,
        "wall_seconds": wall,
        # Raw corpus tokens times epochs per second of the whole train call (vocabulary,
        # compilation and training), the same rule for both trainers.
        "words_per_second": stats["corpus_words"] * config.epochs / wall if wall > 0 else 0.0,
        "peak_rss_mib": stats.get("peak_rss_mib", peak_rss_mib()),
        "rss_before_training_mib": rss_before,
        # Each trainer's own settings: jaxgram's config, or the Word2Vec arguments gensim ran with.
        "config": config.to_dict() if trainer == "jaxgram" else gensim_kwargs(config),
    })
    atomic_write_json(out / STATS_FILE, stats)
    return stats


def run_trainer(trainer: str, corpus, config: TrainConfig, out, progress: bool = True,
                initial_vectors: bool = False) -> dict:
    """Train in a child process (`python -m eval.stage`); re-raise its error in this one.

    The stats add `process_seconds`: the child's whole life, from its start to its exit (the
    interpreter, imports and everything the trainer does), as a user's command costs it."""
    if trainer not in TRAINERS:
        raise errors.ConfigError(f"trainer={trainer!r} is not allowed: choose one of {', '.join(TRAINERS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (STATS_FILE, ERROR_FILE):
        (out / stale).unlink(missing_ok=True)
    command = [sys.executable, "-m", "eval.stage", trainer, "--corpus", str(corpus), "--out", str(out),
               "--config-json", json.dumps(config.to_dict())]
    command += ["--progress"] * progress + ["--initial-vectors"] * initial_vectors
    began = time.perf_counter()
    # Child's stderr is ours, so its progress bar shows; errors come back through error.json.
    completed = subprocess.run(command, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    process_seconds = time.perf_counter() - began
    if completed.returncode != 0:
        raise _child_error(trainer, out, completed.returncode)
    stats = {**json.loads((out / STATS_FILE).read_text(encoding="utf-8")), "process_seconds": process_seconds}
    atomic_write_json(out / STATS_FILE, stats)
    return stats


def _child_error(trainer: str, out: Path, returncode: int) -> errors.JaxgramError:
    try:
        report = json.loads((out / ERROR_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return errors.JaxgramError(f"{trainer} training failed with exit status {returncode} (see the messages above)")
    cls = getattr(errors, report.get("type", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.JaxgramError)):
        cls = errors.JaxgramError
    return cls(report.get("message", f"{trainer} training failed"))


def write_child_error(out, exc: BaseException) -> None:
    """The child's last word: which JaxgramError class and its message, for the parent to re-raise."""
    known = next((c.__name__ for c in type(exc).__mro__ if c.__module__ == errors.__name__), "JaxgramError")
    atomic_write_json(Path(out) / ERROR_FILE, {"type": known, "message": str(exc)})
