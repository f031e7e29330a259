"""`python -m bench.gpu`: jaxgram's steady-state training words/s on an accelerator (bench/gpu.sh runs it).

measure   First a microbenchmark: the gather + scatter-add bandwidth of rows the XLA step
          achieves, against a plain streaming copy on the same device. Then train negative
          sampling with the XLA step (the default config at the width the trainer picks for the
          device and the vocabulary, at D = 100 and D = 300) on the five books, when a corpus file
          is given, and on a seeded synthetic Zipf corpus (bench.synthetic). Epoch ends are timed through train()'s
          on_epoch_end callback, so epoch 1 (which compiles the step) is kept apart: steady
          words/s = raw corpus words x (epochs - 1) / seconds of epochs 2.., and the compile
          estimate = epoch 1 - a steady epoch. Every part is written to OUT/gpu.json as soon
          as it is measured, so a run cut short keeps what it finished; the five-book vectors
          go to OUT/books_vectors.bin (word2vec binary) for scoring back on CPU.
prepare   (CPU, beforehand) build bench/gpu_corpus.txt, the five books, from a Gutenberg mirror.
score     (CPU, afterwards) analogy accuracy and WordSim-353 Spearman of vectors brought back.

`measure` needs only JAX, optax, NumPy and tqdm (no gensim, requests or bs4), and no
device-specific API: the same command runs on CPU with --smoke (tiny sizes), which the
test suite does so the script cannot rot.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from jaxgram.errors import JaxgramError
from jaxgram.fileio import atomic_write_json, sha256_file

FORMAT = 1
RESULTS = "gpu.json"
VECTORS = "books_vectors.bin"
DEFAULT_CORPUS = Path("bench/gpu_corpus.txt")
# name -> (synthetic tokens, target vocabulary, epochs, centres per step, books epochs, dimensions).
# Centres None: the trainer's default for the device, narrowed to the widest the vocabulary allows
# (jaxgram.batches.step_width); both are recorded.
SIZES = {"full": (100_000_000, 100_000, 2, None, 5, (100, 300)), "smoke": (20_000, 300, 2, 64, 2, (100,))}


def gpu_config(epochs: int, centres: int | None, dim: int = 100, seed: int = 1):
    """eval's default NS config on the XLA step (the GPU's, and on CPU what a smoke run checks), with
    `centres` centres per step (batch_size counts pairs, about window + 1 per centre; None: the default)."""
    from eval.config import load_config

    pipeline = load_config("default")
    pairs = None if centres is None else centres * (pipeline.train.window + 1)
    return pipeline.with_train(seed=seed, epochs=epochs, dim=dim, batch_size=pairs, kernel="xla").train


def timed_train(corpus, config) -> tuple[dict, object]:
    """Train once; (figures, TrainResult): steady-state words/s with the first (compiling) epoch apart."""
    import jax

    from jaxgram.batches import step_width
    from jaxgram.training import train

    if config.epochs < 2:
        raise ValueError("steady-state timing needs epochs >= 2: epoch 1 compiles")
    marks = []
    began = time.perf_counter()
    result = train(corpus, config, progress=False, on_epoch_end=lambda done, loss: marks.append(time.perf_counter()))
    call = time.perf_counter() - began
    steady = marks[-1] - marks[0]
    steady_epoch = steady / (config.epochs - 1)
    first_epoch = result.wall_seconds - steady
    centres, widest = step_width(config, result.vocab.counts, jax.default_backend())
    return {
        "corpus_words": result.corpus_words,
        "vocab_size": len(result.vocab),
        "dim": config.dim,
        "epochs": config.epochs,
        "centres_per_step": centres,
        "widest_centres_for_vocabulary": widest,
        "call_seconds": call,
        "outside_loop_seconds": call - result.wall_seconds,  # vocabulary, encoding, initialisation
        "first_epoch_seconds": first_epoch,
        "steady_epoch_seconds": steady_epoch,
        "compile_seconds_estimate": first_epoch - steady_epoch,
        "steady_words_per_second": result.corpus_words * (config.epochs - 1) / steady,
        "first_epoch_words_per_second": result.corpus_words / first_epoch,
        "loss_per_epoch": result.loss_per_epoch,
        "pairs_per_epoch": result.pairs_per_epoch,
    }, result


def host_groups_rate(counts: np.ndarray, config, tokens: int = 4_000_000) -> float:
    """Words/s at which this host turns encoded text into an epoch's centre groups (one chunk, NumPy).

    The device trains while a host thread prepares the next chunk; when steady words/s comes
    close to this figure, the host, not the device, sets the pace.
    """
    from jaxgram.data import epoch_groups, keep_probabilities

    rng = np.random.default_rng(0)
    ids = rng.choice(len(counts), size=tokens, p=counts / counts.sum()).astype(np.int32)
    sentence_ids = np.arange(tokens) // 20
    keep = keep_probabilities(counts, config.sample)
    best = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        epoch_groups(ids, sentence_ids, keep, config.window, config.shrink_window, rng)
        best = min(best, time.perf_counter() - began)
    return tokens / best


def machine() -> dict:
    import jax

    device = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"backend": jax.default_backend(), "device": getattr(device, "device_kind", device.platform),
            "devices": jax.device_count(), "jax": jax.__version__, "python": platform.python_version(),
            "cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}


def peak_device_mib() -> float | None:
    """Peak memory of device 0 so far (MiB), where the backend reports it (GPUs do; CPU may not)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # not every backend implements memory_stats
        return None
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def books_corpus(books, mirror, work: Path):
    """(corpus path or None, why not): the given file, else the five books ingested from `mirror`."""
    if books is not None:
        return (Path(books), None) if Path(books).is_file() else (None, f"corpus file {books} does not exist")
    if mirror is None:
        return None, f"no corpus file (make one on CPU: python -m bench.gpu prepare -> {DEFAULT_CORPUS}) and no mirror"
    try:
        from ingest.pipeline import ingest_books  # needs requests and bs4, which a GPU machine may lack
    except ImportError as exc:
        return None, f"cannot ingest from {mirror} here: {exc}"
    try:
        report = ingest_books(mirror=mirror, out=work / "books", progress=False)
    except JaxgramError as exc:
        return None, f"ingesting from {mirror} failed: {exc}"
    if report.errors:
        return None, f"ingesting from {mirror} failed: {report.errors[0]}"
    return Path(report.corpus_path), None


def measure(args) -> dict:
    """The bandwidth check, then both trainings, each written to OUT/gpu.json as soon as it is done (or failed)."""
    tokens, vocab, synthetic_epochs, centres, books_epochs, dims = SIZES["smoke" if args.smoke else "full"]
    tokens, vocab, centres = args.tokens or tokens, args.vocab or vocab, args.centres or centres
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"format": FORMAT, "smoke": args.smoke, "machine": machine(),
               "config": gpu_config(books_epochs, centres).to_dict(),
               "notes": "steady words/s = raw corpus words x (epochs - 1) / seconds of epochs 2.. (epoch 1 compiles); "
                        "compile estimate = first epoch - steady epoch; outside_loop = vocabulary, encoding, "
                        "initialisation; bandwidth: bytes the step's row gather + scatter-add moves per second, "
                        "against a streaming copy's",
               "bandwidth": None, "books": None, "synthetic": None}
    with tempfile.TemporaryDirectory(prefix="jaxgram-gpu-", dir=args.work) as scratch:
        work = Path(scratch)
        # One part failing (no books, a divergence) must not cost the others their measurement.
        parts = (("bandwidth", lambda: row_bandwidth(vocab, dims[0], centres or 2048, args.smoke)),
                 ("books", lambda: _books(args, work, books_epochs, centres, dims, out)),
                 ("synthetic", lambda: _synthetic(work, tokens, vocab, synthetic_epochs, centres, dims)))
        for part, body in parts:
            try:
                results[part] = body()
            except JaxgramError as exc:
                results[part] = {"failed": f"{type(exc).__name__}: {exc}"}
            atomic_write_json(out / RESULTS, results)
    return results


def row_bandwidth(vocab: int, dim: int, centres: int, smoke: bool) -> dict:
    """GB/s of one lockstep slot's row traffic (gather (1 + 1 + K) rows per stream, scatter-add them
    back, Zipf-like ids so frequent rows repeat as in training) against a streaming copy of a large
    array: how much of the card's bandwidth the step's memory pattern reaches."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    rows = centres * 7  # one input row and 1 + K = 6 output rows per stream
    weights = 1.0 / np.arange(1, vocab + 1) ** 0.75
    ids = jnp.asarray(rng.choice(vocab, rows, p=weights / weights.sum()).astype(np.int32))
    table = jnp.asarray(rng.normal(0, 0.01, (vocab, dim)).astype(np.float32))

    @functools.partial(jax.jit, donate_argnums=0)
    def gather_scatter(table, ids):
        return table.at[ids].add(0.001 * table[ids])

    big = jnp.ones((1 << (20 if smoke else 26),), jnp.float32)  # 4 MB smoke, 256 MB otherwise

    @functools.partial(jax.jit, donate_argnums=0)
    def copy(x):
        return x * 1.0001

    row_seconds, table = _best_seconds(gather_scatter, table, ids)
    copy_seconds, _ = _best_seconds(copy, big)
    row_gbs = rows * dim * 4 * 3 / row_seconds / 1e9  # gathered, then read and written by the scatter
    copy_gbs = big.size * 4 * 2 / copy_seconds / 1e9
    return {"vocab": vocab, "dim": dim, "rows_per_slot": rows, "slot_seconds": row_seconds,
            "gather_scatter_gb_per_s": row_gbs, "copy_gb_per_s": copy_gbs, "fraction_of_copy": row_gbs / copy_gbs}


def _best_seconds(fn, first, *rest, repeats: int = 20):
    """Best wall seconds of fn(x, *rest) over `repeats` calls, each taking the previous result (donated)."""
    import jax

    value = jax.block_until_ready(fn(first, *rest))  # compile
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        value = jax.block_until_ready(fn(value, *rest))
        best = min(best, time.perf_counter() - began)
    return best, value


def _books(args, work: Path, epochs: int, centres: int | None, dims, out: Path) -> dict:
    corpus, why = books_corpus(args.books, args.mirror, work)
    if corpus is None:
        return {"skipped": why}
    runs = []
    for dim in dims:
        figures, result = timed_train(corpus, gpu_config(epochs, centres, dim))
        runs.append(figures)
        if dim == dims[0]:  # the default config's D: scored back on CPU
            result.embeddings.save_word2vec_format(out / VECTORS, binary=True)
    # as bench.run.corpus_record, without importing bench.run (and the CPU baseline behind it)
    record = {"file": corpus.name, "bytes": corpus.stat().st_size, "sha256": sha256_file(corpus)}
    return {"runs": runs, "corpus": record, "vectors": VECTORS, "vectors_dim": dims[0],
            "peak_device_mib": peak_device_mib()}


def _synthetic(work: Path, tokens: int, vocab: int, epochs: int, centres: int | None, dims) -> dict:
    from bench.synthetic import write_corpus

    path = work / "synthetic.txt"
    began = time.perf_counter()
    spec = write_corpus(path, tokens, vocab, seed=0)
    generated = time.perf_counter() - began
    runs = []
    for dim in dims:
        figures, result = timed_train(path, gpu_config(epochs, centres, dim))
        runs.append(figures)
    path.unlink()
    return {"runs": runs, "corpus": spec.to_dict(), "generate_seconds": generated,
            "host_groups_words_per_second": host_groups_rate(result.vocab.counts, result.config),
            "peak_device_mib": peak_device_mib()}


def prepare(args) -> int:
    """Ingest the five books from a mirror (CPU, network or local copy) into the corpus file gpu.sh looks for."""
    import shutil

    from bench.run import _corpus_from

    with tempfile.TemporaryDirectory(prefix="jaxgram-gpu-prepare-") as scratch:
        corpus = _corpus_from(None, args.mirror, Path(scratch))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus, args.out)
    print(f"written: {args.out}")
    return 0


def score(args) -> int:
    from bench.run import quality

    print(json.dumps(quality(Path(args.vectors)), indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("measure", help="steady-state words/s on this machine's default JAX device")
    run.add_argument("--out", required=True, help="folder for gpu.json and the five-book vectors")
    run.add_argument("--books", help="five-book LineSentence corpus file")
    run.add_argument("--mirror", help="Gutenberg mirror folder to ingest the five books from (needs requests, bs4)")
    run.add_argument("--smoke", action="store_true", help="tiny sizes: a check that runs in seconds on CPU")
    run.add_argument("--tokens", type=int, help="synthetic corpus tokens (default: 100M; smoke: 20k)")
    run.add_argument("--vocab", type=int, help="synthetic target vocabulary (default: 100k; smoke: 300)")
    run.add_argument("--centres", type=int,
                     help="centres per step (default: the trainer's for the device and vocabulary; smoke: 64)")
    run.add_argument("--work", help="folder for the synthetic corpus (default: TMPDIR)")
    make = commands.add_parser("prepare", help="(CPU) write the five-book corpus file gpu.sh uses")
    make.add_argument("--mirror", default="../shared/gutenberg")
    make.add_argument("--out", default=str(DEFAULT_CORPUS))
    check = commands.add_parser("score", help="(CPU) analogy and WordSim-353 scores of vectors (word2vec binary)")
    check.add_argument("vectors")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "measure":
            results = measure(args)
            print(json.dumps(results, indent=2))
            return 1 if any("failed" in (results[part] or {}) for part in ("bandwidth", "books", "synthetic")) else 0
        return prepare(args) if args.command == "prepare" else score(args)
    except (JaxgramError, ValueError) as exc:
        print(f"python -m bench.gpu: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)


if __name__ == "__main__":
    sys.exit(main())
