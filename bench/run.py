"""The benchmark itself: train both trainers per seed, score them, measure the machine.

Each training runs in its own child process (eval.measure), so wall time, words/s and peak
RSS are measured the same way for both; seeds alternate gensim, jaxgram so that load from
other processes falls on both alike. Speed and memory are summarised by the median,
quality by the mean with min and max over seeds.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path

from eval.baseline import gensim_kwargs
from eval.benchmarks import datapath, evaluate_analogies, evaluate_word_pairs
from eval.config import load_config
from eval.measure import TRAINERS, run_trainer
from jaxgram.config import TrainConfig, usable_cores
from jaxgram.embeddings import Embeddings
from jaxgram.errors import ConfigError, DataError
from jaxgram.fileio import atomic_write_json, sha256_file

# name -> (eval config it starts from, changes to its [train] table)
CONFIGS = {
    "default": ("default", {}),
    "dostoevsky": ("dostoevsky", {}),
    "softmax": ("default", {"objective": "softmax"}),
}
FORMAT = 2  # 2: `corpus` is the file's name, size and sha256, no longer its path


def train_config(name: str, seed: int) -> TrainConfig:
    if name not in CONFIGS:
        raise ConfigError(f"config={name!r} is not allowed: choose one of {', '.join(CONFIGS)}")
    base, changes = CONFIGS[name]
    return load_config(base).with_train(seed=seed, **changes).train


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 [size, size] @ [size, size] throughput of JAX's default device, in GFLOP/s."""
    import jax
    import jax.numpy as jnp

    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(key_a, (size, size), jnp.float32)
    b = jax.random.normal(key_b, (size, size), jnp.float32)
    product = jax.jit(jnp.matmul)
    product(a, b).block_until_ready()  # compile
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        product(a, b).block_until_ready()
        best = min(best, time.perf_counter() - began)
    return 2 * size**3 / best / 1e9


def machine_info(config: TrainConfig) -> dict:
    import gensim
    import jax

    from jaxgram.distributed import configure_cpu_workers
    from jaxgram.parallel import training_devices

    configure_cpu_workers(config.workers)  # the CPU devices the jaxgram child will have too

    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            cpu_model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
                             cpu_model)
    except OSError:
        pass
    devices = training_devices(config)
    return {
        "cpu": cpu_model,
        "cores": usable_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "gensim": gensim.__version__,
        "device": f"{devices[0].platform}: {getattr(devices[0], 'device_kind', devices[0].platform)}",
        "jaxgram_replicas": len(devices),
        "gensim_workers": gensim_kwargs(config, workers=usable_cores())["workers"],
    }


def softmax_flops(corpus: Path, config: TrainConfig) -> float:
    """Useful FLOPs of full-softmax training: 3 products of 2·D·V per centre (logits, dE, dW)."""
    import numpy as np

    from jaxgram.data import epoch_groups, keep_probabilities
    from jaxgram.training import prepare_corpus

    vocab, encoded = prepare_corpus(corpus, config)
    keep_prob = keep_probabilities(vocab.counts, config.sample)
    centres = 0
    for epoch in range(config.epochs):  # the trainer's own epochs: same generator seeds
        rng = np.random.default_rng([config.seed, epoch])
        centres += len(epoch_groups(encoded.ids, encoded.sentence_ids, keep_prob, config.window,
                                    config.shrink_window, rng)[0])
    return 6.0 * centres * config.dim * len(vocab)


def quality(vectors_file: Path) -> dict:
    embeddings = Embeddings.load_word2vec_format(vectors_file, binary=True)
    wordsim = evaluate_word_pairs(embeddings, datapath("wordsim353.tsv"), "wordsim353")
    analogies = evaluate_analogies(embeddings)
    return {"analogy_accuracy": analogies.score, "analogy_evaluated": analogies.total.evaluated,
            "wordsim353_spearman": wordsim.spearman, "wordsim353_pairs": wordsim.pairs_used}


def summary(values: list) -> dict:
    present = [v for v in values if v is not None]
    if not present:
        return {"mean": None, "median": None, "min": None, "max": None, "values": values}
    return {"mean": statistics.fmean(present), "median": statistics.median(present), "min": min(present),
            "max": max(present), "values": values}


def _corpus_from(corpus, mirror, work: Path) -> Path:
    if corpus is not None:
        corpus = Path(corpus)
        if not corpus.is_file():
            raise DataError(f"corpus file {corpus} does not exist or is not a file")
        return corpus
    from ingest.pipeline import ingest_books

    report = ingest_books(mirror=mirror, out=work / "data", progress=False)
    if report.errors:
        raise DataError(f"ingesting from {mirror} failed for {len(report.errors)} book(s): {report.errors[0]}")
    return Path(report.corpus_path)


def corpus_record(corpus: Path) -> dict:
    """Which corpus the results came from, in terms that mean the same on any machine."""
    return {"file": corpus.name, "bytes": corpus.stat().st_size, "sha256": sha256_file(corpus)}


def run_benchmark(corpus=None, mirror=None, config_name: str = "default", seeds: int = 3, out=None, work=None,
                  progress: bool = False) -> dict:
    """Train jaxgram and gensim `seeds` times each, score them; write and return the results."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds={seeds!r} is not allowed: it must be an int >= 1")
    configs = [train_config(config_name, seed) for seed in range(1, seeds + 1)]
    with tempfile.TemporaryDirectory(prefix="jaxgram-bench-") as scratch:
        work = Path(work) if work is not None else Path(scratch)
        corpus = _corpus_from(corpus, mirror, work)
        corpus_facts = corpus_record(corpus)  # now: an ingested corpus goes with the scratch folder
        machine = machine_info(configs[0])
        machine["matmul_gflops_fp32"] = matmul_gflops()
        runs = {trainer: [] for trainer in TRAINERS}
        for config in configs:
            for trainer in ("gensim", "jaxgram"):
                run_dir = work / f"{trainer}-seed{config.seed}"
                stats = run_trainer(trainer, corpus, config, run_dir, progress=progress)
                runs[trainer].append({
                    "seed": config.seed,
                    "corpus_words": stats["corpus_words"],
                    "wall_seconds": stats["wall_seconds"],
                    "train_loop_seconds": stats["train_loop_seconds"],
                    "words_per_second": stats["words_per_second"],
                    "peak_rss_mib": stats["peak_rss_mib"],
                    **quality(run_dir / "vectors.bin"),
                })
        flops = softmax_flops(corpus, configs[0]) if configs[0].objective == "softmax" else None
    results = _summarise(runs, configs[0], config_name, corpus_facts, machine, flops)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, results)
    return results


def _summarise(runs: dict, config: TrainConfig, config_name: str, corpus: dict, machine: dict, flops) -> dict:
    trainers = {}
    for trainer, rows in runs.items():
        trainers[trainer] = {key: summary([row[key] for row in rows])
                             for key in ("wall_seconds", "train_loop_seconds", "words_per_second", "peak_rss_mib",
                                         "analogy_accuracy", "wordsim353_spearman")}
        trainers[trainer]["runs"] = rows
    jax_runs, gensim_runs = trainers["jaxgram"], trainers["gensim"]

    def ratio(key):
        return jax_runs[key]["median"] / gensim_runs[key]["median"]

    def within(key):
        # jaxgram's mean must reach at least the bottom of gensim's seed-to-seed range
        ours, theirs = jax_runs[key]["mean"], gensim_runs[key]["min"]
        return None if ours is None or theirs is None else ours >= theirs

    softmax = None
    if flops is not None:
        achieved = flops / jax_runs["train_loop_seconds"]["median"] / 1e9
        softmax = {"useful_gflop": flops / 1e9, "achieved_gflops": achieved,
                   "fraction_of_matmul": achieved / machine["matmul_gflops_fp32"]}
    return {
        "format": FORMAT,
        "config_name": config_name,
        "config": config.to_dict(),
        "corpus": corpus,
        "corpus_words": runs["jaxgram"][0]["corpus_words"],
        "seeds": len(runs["jaxgram"]),
        "machine": machine,
        "trainers": trainers,
        "words_per_second_ratio": ratio("words_per_second"),
        "peak_rss_ratio": ratio("peak_rss_mib"),
        "quality_within_gensim_range": {"analogy_accuracy": within("analogy_accuracy"),
                                        "wordsim353_spearman": within("wordsim353_spearman")},
        "softmax_matmul": softmax,
        "notes": "speed and memory: median over seeds; quality: mean [min, max]; words/s = raw corpus words x epochs / "
                 "wall seconds of the whole train call (vocabulary, compilation and training) in a child process",
    }


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(results: dict) -> str:
    """The results as a Markdown table, with the machine they came from."""
    jax_runs, gensim_runs = results["trainers"]["jaxgram"], results["trainers"]["gensim"]

    def spread(stats, digits=3):
        return f"{_number(stats['mean'], digits)} [{_number(stats['min'], digits)}, {_number(stats['max'], digits)}]"

    machine = results["machine"]
    config = results["config"]
    lines = [
        (f"config {results['config_name']}: objective={config['objective']} dim={config['dim']} "
         f"epochs={config['epochs']} window={config['window']} negative={config['negative']} "
         f"sample={config['sample']}; {results['seeds']} seeds; corpus {results['corpus_words']} words"),
        (f"machine: {machine['cpu']}, {machine['cores']} cores, jax {machine['jax']} on {machine['device']} "
         f"({machine['jaxgram_replicas']} replica(s)), gensim {machine['gensim']} with {machine['gensim_workers']} workers"),
        "",
        "| | jaxgram | gensim | jaxgram / gensim |",
        "|---|---:|---:|---:|",
        (f"| wall s, whole train call (median) | {_number(jax_runs['wall_seconds']['median'], 2)} "
         f"| {_number(gensim_runs['wall_seconds']['median'], 2)} | |"),
        (f"| train loop s (median) | {_number(jax_runs['train_loop_seconds']['median'], 2)} "
         f"| {_number(gensim_runs['train_loop_seconds']['median'], 2)} | |"),
        (f"| words/s (median) | {jax_runs['words_per_second']['median']:,.0f} "
         f"| {gensim_runs['words_per_second']['median']:,.0f} | {results['words_per_second_ratio']:.2f} |"),
        (f"| peak RSS MiB (median) | {jax_runs['peak_rss_mib']['median']:.0f} "
         f"| {gensim_runs['peak_rss_mib']['median']:.0f} | {results['peak_rss_ratio']:.2f} |"),
        (f"| analogy accuracy, mean [min, max] | {spread(jax_runs['analogy_accuracy'])} "
         f"| {spread(gensim_runs['analogy_accuracy'])} | |"),
        (f"| WordSim-353 Spearman, mean [min, max] | {spread(jax_runs['wordsim353_spearman'])} "
         f"| {spread(gensim_runs['wordsim353_spearman'])} | |"),
    ]
    lines.append(f"| fp32 matmul 2048² GFLOP/s (machine) | {machine['matmul_gflops_fp32']:.0f} | | |")
    softmax = results.get("softmax_matmul")
    if softmax:
        lines.append(f"| full-softmax achieved GFLOP/s | {softmax['achieved_gflops']:.0f} "
                     f"({100 * softmax['fraction_of_matmul']:.0f}% of matmul) | | |")
    return "\n".join(lines)
