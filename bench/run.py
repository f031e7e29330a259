"""The benchmark itself: train both trainers per seed, score them, measure the machine.

Each training runs in its own child process (eval.measure), so wall time, words/s and peak
RSS are measured the same way for both; seeds alternate gensim, jaxgram so that load from
other processes falls on both alike. Speed and memory are summarised by the median,
quality by the mean with min and max over seeds. Agreement is `make run`'s (eval.agreement):
jaxgram vs gensim at each seed, against each trainer's noise floor over its pairs of seeds.
"""

from __future__ import annotations

import io
import itertools
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from eval import agreement
from eval.baseline import gensim_kwargs
from eval.benchmarks import datapath, evaluate_analogies, evaluate_word_pairs
from eval.config import EvalSettings, PipelineConfig, load_config
from eval.evaluate import load_vectors
from eval.measure import run_trainer
from jaxgram.config import TrainConfig, usable_cores
from jaxgram.embeddings import Embeddings
from jaxgram.errors import ConfigError, DataError
from jaxgram.fileio import atomic_write_bytes, atomic_write_json, sha256_file

# name -> (eval config it starts from, changes to its [train] table)
CONFIGS = {
    "default": ("default", {}),
    "dostoevsky": ("dostoevsky", {}),
    "softmax": ("default", {"objective": "softmax"}),
    # The pure JAX step (every accelerator and mesh run), on CPU: one device, and a mesh of 2.
    "xla": ("default", {"kernel": "xla"}),
    "xla_devices2": ("default", {"kernel": "xla", "devices": 2}),
}
FORMAT = 2  # 2: `corpus` is the file's name, size and sha256, no longer its path
# The bar: jaxgram vs gensim may agree this much less than the lower of the two noise floors; for the XLA
# step, this much less than gensim trained from an iterable agrees with gensim's corpus_file models
# (the wide step need not copy corpus_file's particular order and per-worker alpha, as gensim's other
# mode does not).
AGREEMENT_TOLERANCE = 0.01
# Quality: jaxgram's mean over seeds may fall this much below the lowest of gensim's seeds.
QUALITY_TOLERANCE = {"analogy_accuracy": 0.005, "wordsim353_spearman": 0.02}


def _base_config(name: str) -> tuple[PipelineConfig, dict]:
    if name not in CONFIGS:
        raise ConfigError(f"config={name!r} is not allowed: choose one of {', '.join(CONFIGS)}")
    base, changes = CONFIGS[name]
    return load_config(base), changes


def trainers_of(config: TrainConfig) -> tuple[str, ...]:
    """The trainers a config's benchmark runs, in the order each seed runs them: the XLA step's is
    also held to gensim's agreement across its own two modes."""
    return ("gensim", "gensim_iterable", "jaxgram") if config.kernel == "xla" else ("gensim", "jaxgram")


def train_config(name: str, seed: int, workers: int | None = None) -> TrainConfig:
    """The config's [train] table at `seed`, with `workers` worker threads for both trainers."""
    base, changes = _base_config(name)
    # Both trainers get every core (gensim at its fastest), unless the caller or the config names a count.
    return base.with_train(seed=seed, **{"workers": usable_cores() if workers is None else workers, **changes}).train


def agreement_settings(name: str) -> EvalSettings:
    """The [eval] settings `make run` would measure agreement with for this config (overlap@k, words, pairs)."""
    return _base_config(name)[0].eval


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

    from jaxgram.config import resolved_workers
    from jaxgram.distributed import configure_cpu_workers
    from jaxgram.step import resolve_kernel

    configure_cpu_workers(config.workers, config.devices)  # the CPU devices the jaxgram child will have too

    device = jax.local_devices()[0]
    kernel = resolve_kernel(config, device.platform, on_mesh=config.devices is not None)
    devices = len(jax.devices()) if config.devices == "all" else config.devices or 1
    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "gensim": gensim.__version__,
        "device": f"{device.platform}: {getattr(device, 'device_kind', device.platform)}",
        "jaxgram_devices": devices,
        "jaxgram_kernel": kernel,
        "jaxgram_workers": resolved_workers(config),
        "gensim_workers": gensim_kwargs(config)["workers"],
    }


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module says."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        return model


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


def _run_dir(work: Path, trainer: str, seed: int) -> Path:
    return work / f"{trainer}-seed{seed}"


def _compare_pairs(lefts: dict, rights: dict, pairs: list, settings: EvalSettings) -> dict:
    """eval.agreement.compare (as in `make run`'s metrics.json) of lefts[a] with rights[b] for each (a, b) of seeds."""
    rows = [{"seeds": [a, b], **agreement.compare(lefts[a], rights[b], settings.overlap_words, settings.overlap_k,
                                                  settings.cosine_pairs, settings.pairs_seed)}
            for a, b in pairs]
    return {"overlap_at_k": summary([row["overlap_at_k"] for row in rows]), "pairs": rows}


# Why a bar may not apply: full softmax has no gensim twin (the bench compares it with gensim's
# hierarchical softmax, another model, whose vectors need not agree with it).
NO_TWIN = "gensim has no full softmax: it is compared with gensim's hierarchical softmax, another model"


def agreement_bar(block: dict, objective: str = "ns") -> dict:
    """Does jaxgram agree with gensim about as much as each agrees with itself across seeds?"""
    cross = block["jaxgram_vs_gensim"]["overlap_at_k"]["median"]
    floors = [block[name]["overlap_at_k"]["median"] for name in ("jaxgram_floor", "gensim_floor")]
    rule = f"jaxgram_vs_gensim median >= min(floor medians) - {AGREEMENT_TOLERANCE}"
    if objective == "softmax":
        return {"rule": rule, "threshold": None, "holds": None, "why": NO_TWIN}
    if cross is None or None in floors:
        return {"rule": rule, "threshold": None, "holds": None, "why": "one seed: no noise floor"}
    threshold = min(floors) - AGREEMENT_TOLERANCE
    return {"rule": rule, "threshold": threshold, "holds": cross >= threshold}


def agreement_block(models: dict, settings: EvalSettings, objective: str = "ns") -> dict:
    """Overlap@k of jaxgram vs gensim at each seed, and the noise floors: each trainer's seeds against each other.

    `models` maps trainer -> seed -> Embeddings, the same seeds for both trainers.
    """
    seeds = sorted(models["jaxgram"])
    same_seed = [(seed, seed) for seed in seeds]
    seed_pairs = list(itertools.combinations(seeds, 2))
    block = {"k": settings.overlap_k, "overlap_words": settings.overlap_words,
             "jaxgram_vs_gensim": _compare_pairs(models["jaxgram"], models["gensim"], same_seed, settings),
             "jaxgram_floor": _compare_pairs(models["jaxgram"], models["jaxgram"], seed_pairs, settings),
             "gensim_floor": _compare_pairs(models["gensim"], models["gensim"], seed_pairs, settings)}
    block["bar"] = agreement_bar(block, objective)
    if "gensim_iterable" in models:
        block["cross_mode"] = cross_mode_block(models, settings)
    return block


def cross_mode_block(models: dict, settings: EvalSettings) -> dict:
    """jaxgram and gensim-from-an-iterable, each against gensim's corpus_file models: every pair of seeds."""
    seeds = sorted(models["jaxgram"])
    every = list(itertools.product(seeds, seeds))
    block = {name: _compare_pairs(models[name], models["gensim"], every, settings)
             for name in ("jaxgram", "gensim_iterable")}
    ours, theirs = (block[name]["overlap_at_k"]["mean"] for name in ("jaxgram", "gensim_iterable"))
    threshold = theirs - AGREEMENT_TOLERANCE
    block["bar"] = {"rule": f"mean overlap of jaxgram with gensim corpus_file >= that of gensim from an iterable "
                            f"- {AGREEMENT_TOLERANCE}", "threshold": threshold, "holds": ours >= threshold}
    return block


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


def measure_run(trainer: str, corpus: Path, config: TrainConfig, run_dir: Path, progress: bool = False) -> dict:
    """Train `trainer` once in its own child process and score its vectors: one row of a benchmark's runs."""
    stats = run_trainer(trainer, corpus, config, run_dir, progress=progress)
    return {
        "seed": config.seed,
        "corpus_words": stats["corpus_words"],
        "process_seconds": stats["process_seconds"],
        "wall_seconds": stats["wall_seconds"],
        "train_loop_seconds": stats["train_loop_seconds"],
        # The whole process's rate: what a user waiting for `jaxgram train` (or a gensim script) gets.
        "words_per_second": stats["corpus_words"] * config.epochs / stats["process_seconds"],
        "peak_rss_mib": stats["peak_rss_mib"],
        **quality(run_dir / "vectors.bin"),
    }


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
        trainers = trainers_of(configs[0])
        runs = {trainer: [] for trainer in trainers}
        for config in configs:
            for trainer in trainers:
                runs[trainer].append(measure_run(trainer, corpus, config, _run_dir(work, trainer, config.seed),
                                                 progress))
        flops = softmax_flops(corpus, configs[0]) if configs[0].objective == "softmax" else None
        # Read back from the run folders, which go with the scratch folder.
        models = {trainer: {config.seed: load_vectors(_run_dir(work, trainer, config.seed)) for config in configs}
                  for trainer in trainers}
        agreed = agreement_block(models, agreement_settings(config_name), configs[0].objective)
    results = _summarise(runs, configs[0], config_name, corpus_facts, machine, flops, agreed)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, results)
    return results


# The figures of a run that a benchmark summarises over seeds (measure_run's rows).
RUN_FIGURES = ("process_seconds", "wall_seconds", "train_loop_seconds", "words_per_second", "peak_rss_mib",
               "analogy_accuracy", "wordsim353_spearman")


def trainer_summaries(runs: dict) -> dict:
    """trainer -> each of RUN_FIGURES summarised over its rows (a figure a run lacks counts as None), and the rows."""
    return {trainer: {**{key: summary([row.get(key) for row in rows]) for key in RUN_FIGURES}, "runs": rows}
            for trainer, rows in runs.items()}


def quality_rules(jax_runs: dict, gensim_runs: dict) -> dict:
    """Each quality figure's rule (QUALITY_TOLERANCE) over two trainers' summaries, and whether it holds."""

    def rule(key):
        # jaxgram's mean may fall QUALITY_TOLERANCE below gensim's lowest seed
        rule = f"jaxgram mean >= gensim min - {QUALITY_TOLERANCE[key]}"
        ours, theirs = jax_runs[key]["mean"], gensim_runs[key]["min"]
        if ours is None or theirs is None:  # nothing scored
            return {"rule": rule, "threshold": None, "holds": None}
        threshold = theirs - QUALITY_TOLERANCE[key]
        return {"rule": rule, "threshold": threshold, "holds": ours >= threshold}

    return {key: rule(key) for key in QUALITY_TOLERANCE}


def _summarise(runs: dict, config: TrainConfig, config_name: str, corpus: dict, machine: dict, flops,
               agreed: dict) -> dict:
    trainers = trainer_summaries(runs)
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
        "quality_rule": quality_rules(jax_runs, gensim_runs),
        "agreement": agreed,
        "softmax_matmul": softmax,
        "notes": "speed and memory: median over seeds; quality: mean [min, max]; process_seconds: a trainer's whole "
                 "child process from its start to its exit (interpreter, imports, vocabulary, compilation, training, "
                 "writing its vectors); wall_seconds: the train call inside it; words/s = raw corpus words x epochs / "
                 "process_seconds; "
                 "agreement: eval.agreement.compare per pair of runs (same seed across trainers, every pair of seeds "
                 "within one), overlap@k median [min, max]",
    }


def machine_line(machine: dict) -> str:
    """The machine a results file was measured on, in one line."""
    kernel = machine.get("jaxgram_kernel", "xla")  # results from before the fused kernel name none
    devices = machine.get("jaxgram_devices", machine.get("jaxgram_replicas"))  # older results name replicas
    workers = machine.get("jaxgram_workers", devices)
    return (f"machine: {machine['cpu']}, {machine['cores']} cores, jax {machine['jax']} on {machine['device']} "
            f"({kernel} step, {workers} workers, {devices} device(s)), gensim {machine['gensim']} "
            f"with {machine['gensim_workers']} workers")


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
        machine_line(machine),
        "",
        "| | jaxgram | gensim | jaxgram / gensim |",
        "|---|---:|---:|---:|",
        (f"| s, whole process (median) | {_number(jax_runs['process_seconds']['median'], 2)} "
         f"| {_number(gensim_runs['process_seconds']['median'], 2)} | |"),
        (f"| s, train call (median) | {_number(jax_runs['wall_seconds']['median'], 2)} "
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
    return "\n".join([*lines, "", *quality_lines(results), *agreement_lines(results.get("agreement"))])


def _bar_verdict(bar: dict) -> str:
    if bar["holds"] is None:  # results from before the reason was recorded had one seed
        return f"n/a ({bar.get('why', 'one seed: no noise floor')})"
    return f"{'holds' if bar['holds'] else 'FAILS'} (threshold {bar['threshold']:.3f})"


def agreement_lines(block) -> list[str]:
    """The agreement of the two trainers, under the table; results from before it was measured have none."""
    if not block:
        return ["agreement: n/a (not measured in these results)"]

    def median_range(name):
        stats = block[name]["overlap_at_k"]
        return f"{_number(stats['median'])} [{_number(stats['min'])}, {_number(stats['max'])}]"

    return [f"agreement, overlap@{block['k']} over the {block['overlap_words']} most frequent shared words, "
            "median [min, max]:",
            f"- jaxgram vs gensim, same seed: {median_range('jaxgram_vs_gensim')}",
            f"- noise floor jaxgram, seed pairs: {median_range('jaxgram_floor')}",
            f"- noise floor gensim, seed pairs: {median_range('gensim_floor')}",
            f"- bar, {block['bar']['rule']}: {_bar_verdict(block['bar'])}"
            + (" (the fused kernel's bar; the XLA step's is below)" if block.get("cross_mode") else ""),
            *_cross_mode_lines(block.get("cross_mode"))]


def _cross_mode_lines(block) -> list[str]:
    if not block:
        return []

    def mean_range(name):
        stats = block[name]["overlap_at_k"]
        return f"{_number(stats['mean'])} [{_number(stats['min'])}, {_number(stats['max'])}]"

    return ["with gensim's corpus_file models, every pair of seeds, mean [min, max]:",
            f"- jaxgram: {mean_range('jaxgram')}",
            f"- gensim from an iterable: {mean_range('gensim_iterable')}",
            f"- bar, {block['bar']['rule']}: {_bar_verdict(block['bar'])}"]


def quality_lines(results: dict) -> list[str]:
    """Each quality rule and whether it holds; results from before the rules were recorded have none."""
    rules = results.get("quality_rule")
    if not rules:
        return []
    return [f"quality, {name}: {rule['rule']}: "
            + ("n/a (nothing scored)" if rule["holds"] is None else _bar_verdict(rule)) for name, rule in rules.items()]


README_CONFIG_LABELS = {"default": "default: NS, D=100, 5 epochs", "dostoevsky": "dostoevsky: NS, D=32, 20 epochs",
                       "softmax": "softmax: full softmax, D=100, 5 epochs (gensim: hs=1)",
                       "xla": "xla: default, `--kernel xla` (the JAX step), 1 CPU device",
                       "xla_devices2": "xla_devices2: default, `--kernel xla --devices 2` (2 CPU devices)"}


def readme_table(results: list[dict]) -> str:
    """The README's summary of several configs' results, one row each (`python -m bench --readme-table`)."""
    # The agreement column only once some results measured it: tables of older results stay as they were.
    with_agreement = any(result.get("agreement") for result in results)
    lines = ["| config | jaxgram s | gensim s | words/s jaxgram / gensim | ratio | peak RSS MiB jaxgram / gensim "
             "| analogy jaxgram / gensim | WordSim-353 jaxgram / gensim |"
             + (" overlap@k jaxgram vs gensim / floor jaxgram / floor gensim (medians) |" if with_agreement else ""),
             "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if with_agreement else "")]
    for result in results:
        jax_runs, gensim_runs = result["trainers"]["jaxgram"], result["trainers"]["gensim"]
        cells = [README_CONFIG_LABELS.get(result["config_name"], result["config_name"]),
                 f"{jax_runs['process_seconds']['median']:.1f}", f"{gensim_runs['process_seconds']['median']:.1f}",
                 f"{_short(jax_runs['words_per_second']['median'])} / {_short(gensim_runs['words_per_second']['median'])}",
                 f"{result['words_per_second_ratio']:.2f}",
                 f"{jax_runs['peak_rss_mib']['median']:.0f} / {gensim_runs['peak_rss_mib']['median']:.0f}",
                 f"{_spread(jax_runs['analogy_accuracy'])} / {_spread(gensim_runs['analogy_accuracy'])}",
                 f"{_spread(jax_runs['wordsim353_spearman'])} / {_spread(gensim_runs['wordsim353_spearman'])}"]
        if with_agreement:
            cells.append(_agreement_cell(result.get("agreement")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _agreement_cell(block) -> str:
    if not block:
        return "n/a"
    medians = " / ".join(_number(block[name]["overlap_at_k"]["median"])
                         for name in ("jaxgram_vs_gensim", "jaxgram_floor", "gensim_floor"))
    verdict = {True: "bar holds", False: "bar fails", None: "no bar: another model" if block["bar"].get("why") == NO_TWIN
               else "no bar"}[block["bar"]["holds"]]
    cross = block.get("cross_mode")
    if cross:  # the XLA step's bar is gensim's agreement across its own two modes
        verdict = {True: "bar holds", False: "bar fails"}[cross["bar"]["holds"]]
        return (f"{medians}; with all gensim seeds {_number(cross['jaxgram']['overlap_at_k']['mean'])} vs gensim "
                f"from an iterable {_number(cross['gensim_iterable']['overlap_at_k']['mean'])} ({verdict})")
    return f"{medians} ({verdict})"


def _short(words_per_second: float) -> str:
    return f"{words_per_second / 1e6:.2f}M" if words_per_second >= 1e6 else f"{words_per_second / 1e3:.0f}k"


def _spread(stats: dict) -> str:
    return f"{_number(stats['mean'])} [{_number(stats['min'])}, {_number(stats['max'])}]"


# -- `python -m bench --synthetic`: how cost grows with V, D and corpus size -----------------------

SYNTHETIC_TOKENS = (500_000, 2_000_000)
SYNTHETIC_VOCABS = (10_000, 100_000, 1_000_000)
SYNTHETIC_DIMS = (100, 300)
# The grid holds corpora of 0.5M and 2M tokens; a vocabulary of 1M words needs ~12M tokens.
SYNTHETIC_LARGE = ((12_000_000, 1_000_000, 300),)  # (tokens, V target, D): the true V ~ 1M cell
SYNTHETIC_CORPUS_SEED = 0
# Seeds per trainer at each grid cell: a half-million-token run takes about 2 s, and this VM's
# speed moves by up to a quarter between runs, so one run each would decide its bars by chance.
# The V ~ 1M cell runs once (minutes per run; its margins are tens of seconds).
SYNTHETIC_SEEDS, SYNTHETIC_LARGE_SEEDS = 3, 1
SYNTHETIC_NOTES = ("one epoch per run; median over seeds; process_seconds is a trainer's whole child process, from "
                   "its start to its exit (interpreter, imports, vocabulary, compilation, training, writing its "
                   "vectors: gensim train + save_word2vec_format(binary=True), jaxgram train with its default "
                   "outputs), us/word = 1e6 x process_seconds / raw corpus tokens; loop us/word uses the trainer's own "
                   "training-loop seconds; fixed_seconds = process_seconds - train_loop_seconds; vocab_kept is the "
                   "vocabulary the trainers built at min_count 5 (a corpus of N tokens holds at most about N / 11.6 "
                   "words with Zipf exponent >= 0.5: a larger target gets that corpus, see same_corpus_as)")
# What each cell is held to (issue: large vocabularies): jaxgram's whole process no slower than
# gensim's, its fixed cost within FIXED_GAP_SECONDS of gensim's, its peak memory within
# gensim's x RSS_FACTOR + RSS_ALLOWANCE_MIB (the tables E and W are the floor both share).
FIXED_GAP_SECONDS = 1.5
RSS_FACTOR, RSS_ALLOWANCE_MIB = 1.25, 250


def synthetic_config(dim: int, seed: int) -> TrainConfig:
    """The default NS config (window 5, 5 negatives, sample 1e-3) for one epoch at dimension `dim`."""
    return load_config("default").with_train(seed=seed, dim=dim, epochs=1).train


def _sizes(name: str, values, least: int) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < least for v in values):
        raise ConfigError(f"{name}={list(values)!r} is not allowed: it must be a non-empty list of ints >= {least}")
    return values


def run_synthetic(tokens=SYNTHETIC_TOKENS, vocabs=SYNTHETIC_VOCABS, dims=SYNTHETIC_DIMS, seeds: int = SYNTHETIC_SEEDS,
                  out=None, work=None, progress: bool = False, large=SYNTHETIC_LARGE,
                  large_seeds: int = SYNTHETIC_LARGE_SEEDS) -> dict:
    """Train both trainers `seeds` times on seeded Zipf corpora of every (tokens, vocabulary) at every D,
    then `large_seeds` times on each (tokens, V target, D) of `large`; write and return the results,
    with each cell's bars."""
    from bench.synthetic import SENTENCE_LENGTH, describe

    tokens, vocabs = _sizes("tokens", tokens, SENTENCE_LENGTH), _sizes("vocab_sizes", vocabs, 2)
    dims, seeds = _sizes("dims", dims, 1), _sizes("seeds", [seeds], 1)[0]
    large_seeds = _sizes("large_seeds", [large_seeds], 1)[0]
    large = [tuple(_sizes("large", cell, 1)) for cell in large]
    plan = [(size, target, dims, seeds) for size in tokens for target in vocabs]
    plan += [(t, v, (d,), large_seeds) for t, v, d in large if not (t in tokens and v in vocabs and d in dims)]
    with tempfile.TemporaryDirectory(prefix="jaxgram-bench-synthetic-") as scratch:
        work = Path(work) if work is not None else Path(scratch)
        machine = machine_info(synthetic_config(dims[0], 1))
        machine["matmul_gflops_fp32"] = matmul_gflops()
        corpora, runs = [], []
        measured = {}  # (tokens, raw vocabulary, exponent) -> the target whose corpus that is
        for size, target, cell_dims, cell_seeds in plan:
            spec = describe(size, target, SYNTHETIC_CORPUS_SEED)
            same = measured.setdefault((size, spec.raw_vocab, spec.exponent), target)
            if same != target:  # the corpus is too small for this target: it is another's corpus
                corpora.append({**spec.to_dict(), "same_corpus_as": same})
                continue
            record, rows = _measure_corpus(spec, cell_dims, cell_seeds, work, progress)
            corpora.append(record)
            runs.extend(rows)
    cells = _cells(runs)
    results = {"format": FORMAT, "config_name": "synthetic", "config": synthetic_config(dims[0], 1).to_dict(),
               "grid": {"tokens": list(tokens), "vocab_targets": list(vocabs), "dims": list(dims), "seeds": seeds,
                        "large": [list(cell) for cell in large], "large_seeds": large_seeds},
               "machine": machine, "corpora": corpora, "runs": runs, "cells": cells, "bars": synthetic_bars(cells),
               "notes": SYNTHETIC_NOTES}
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, results)
    return results


def _measure_corpus(spec, dims, seeds: int, work: Path, progress: bool) -> tuple[dict, list]:
    """Write one corpus, train both trainers on it at every D and seed; the corpus and the run dirs are removed after."""
    from bench.synthetic import write_corpus

    path = work / f"synthetic-{spec.tokens}-{spec.vocab_target}.txt"
    write_corpus(path, spec.tokens, spec.vocab_target, spec.seed)
    record = {**spec.to_dict(), **corpus_record(path)}
    rows = []
    for dim in dims:
        for seed in range(1, seeds + 1):
            config = synthetic_config(dim, seed)
            for trainer in ("gensim", "jaxgram"):  # alternated, as in run_benchmark
                run_dir = work / f"{path.stem}-{trainer}-d{dim}-seed{seed}"
                stats = run_trainer(trainer, path, config, run_dir, progress=progress)
                shutil.rmtree(run_dir)  # a 1M x 300 run writes gigabytes of tables
                rows.append({"tokens": spec.tokens, "vocab_target": spec.vocab_target, "vocab_kept": stats["vocab_size"],
                             "dim": dim, "trainer": trainer, "seed": seed, "corpus_words": stats["corpus_words"],
                             "process_seconds": stats["process_seconds"], "wall_seconds": stats["wall_seconds"],
                             "train_loop_seconds": stats["train_loop_seconds"],
                             "words_per_second": stats["words_per_second"], "peak_rss_mib": stats["peak_rss_mib"]})
    path.unlink()
    record["vocab_kept"] = rows[0]["vocab_kept"]
    return record, rows


def _cells(runs: list) -> list:
    """Medians over seeds of each (tokens, vocabulary, D, trainer)."""
    groups: dict = {}
    for row in runs:
        groups.setdefault((row["tokens"], row["vocab_target"], row["dim"], row["trainer"]), []).append(row)
    cells = []
    for (tokens, target, dim, trainer), rows in groups.items():
        process = statistics.median(r["process_seconds"] for r in rows)
        loop = statistics.median(r["train_loop_seconds"] for r in rows)
        words = rows[0]["corpus_words"]
        cells.append({"tokens": tokens, "vocab_target": target, "vocab_kept": rows[0]["vocab_kept"], "dim": dim,
                      "trainer": trainer, "seeds": len(rows), "process_seconds": process,
                      "wall_seconds": statistics.median(r["wall_seconds"] for r in rows), "train_loop_seconds": loop,
                      "fixed_seconds": statistics.median(r["process_seconds"] - r["train_loop_seconds"] for r in rows),
                      "us_per_word": 1e6 * process / words, "loop_us_per_word": 1e6 * loop / words,
                      "words_per_second": statistics.median(r["words_per_second"] for r in rows),
                      "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in rows)})
    return cells


def synthetic_bars(cells: list) -> list:
    """Each (tokens, V target, D) measured by both trainers, held to the three bars (see FIXED_GAP_SECONDS)."""
    bars = []
    for theirs, ours in _pairs_of(cells):
        if theirs is None or ours is None:
            continue
        gap = ours["fixed_seconds"] - theirs["fixed_seconds"]
        budget = theirs["peak_rss_mib"] * RSS_FACTOR + RSS_ALLOWANCE_MIB
        bars.append({"tokens": ours["tokens"], "vocab_target": ours["vocab_target"], "dim": ours["dim"],
                     "whole_process": {"jaxgram": ours["process_seconds"], "gensim": theirs["process_seconds"],
                                       "holds": ours["process_seconds"] <= theirs["process_seconds"]},
                     "fixed": {"jaxgram": ours["fixed_seconds"], "gensim": theirs["fixed_seconds"], "gap": gap,
                               "allowed_gap": FIXED_GAP_SECONDS, "holds": gap <= FIXED_GAP_SECONDS},
                     "peak_rss": {"jaxgram": ours["peak_rss_mib"], "gensim": theirs["peak_rss_mib"], "budget": budget,
                                  "holds": ours["peak_rss_mib"] <= budget}})
    return bars


def _pairs_of(cells: list):
    """(gensim cell, jaxgram cell) of each (tokens, vocabulary, D), in run order."""
    by_key = {(c["tokens"], c["vocab_target"], c["dim"], c["trainer"]): c for c in cells}
    for key in dict.fromkeys(k[:3] for k in by_key):
        yield by_key.get((*key, "gensim")), by_key.get((*key, "jaxgram"))


_BAR_NAMES = {"whole_process": "whole", "fixed": "fixed", "peak_rss": "RSS"}


def _bar_cell(bar: dict) -> str:
    failed = [name for key, name in _BAR_NAMES.items() if not bar[key]["holds"]]
    return "fails: " + ", ".join(failed) if failed else "hold"


def format_synthetic_table(results: dict) -> str:
    """The synthetic results as the README's Markdown table, with the machine and the corpora they came from."""
    config, machine, grid = results["config"], results["machine"], results["grid"]
    lines = [
        (f"synthetic Zipf corpora (20-word sentences, min_count {config['min_count']}): objective={config['objective']} "
         f"epochs={config['epochs']} window={config['window']} negative={config['negative']} sample={config['sample']}; "
         f"{_seeds_line(grid)}, medians; bars: jaxgram's whole process <= gensim's, its fixed cost (whole - loop) "
         f"within {FIXED_GAP_SECONDS} s of gensim's, its peak RSS <= gensim's x {RSS_FACTOR} + {RSS_ALLOWANCE_MIB} MiB"),
        machine_line(machine),
        "",
        "| tokens | V target | V kept | Zipf s | D | whole s jaxgram / gensim | fixed s jaxgram / gensim "
        "| loop µs/word jaxgram / gensim | peak RSS MiB jaxgram / gensim (budget) | bars |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    exponents = {(c["tokens"], c["vocab_target"]): c["exponent"] for c in results["corpora"]}
    cells = {(c["tokens"], c["vocab_target"], c["dim"], c["trainer"]): c for c in results["cells"]}
    for bar in synthetic_bars(results["cells"]):
        ours, theirs = (cells[(bar["tokens"], bar["vocab_target"], bar["dim"], t)] for t in ("jaxgram", "gensim"))
        lines.append(
            f"| {ours['tokens']:,} | {ours['vocab_target']:,} | {ours['vocab_kept']:,} "
            f"| {exponents[(ours['tokens'], ours['vocab_target'])]:.2f} | {ours['dim']} "
            f"| {ours['process_seconds']:.1f} / {theirs['process_seconds']:.1f} "
            f"| {ours['fixed_seconds']:.1f} / {theirs['fixed_seconds']:.1f} "
            f"| {ours['loop_us_per_word']:.2f} / {theirs['loop_us_per_word']:.2f} "
            f"| {ours['peak_rss_mib']:,.0f} / {theirs['peak_rss_mib']:,.0f} ({bar['peak_rss']['budget']:,.0f}) "
            f"| {_bar_cell(bar)} |")
    for corpus in results["corpora"]:
        if "same_corpus_as" in corpus:
            lines.append(f"\nV target {corpus['vocab_target']:,} at {corpus['tokens']:,} tokens: the corpus is too small "
                         f"for it (about {corpus['expected_kept']:,} words reach min_count at most), so it is the "
                         f"V target {corpus['same_corpus_as']:,} corpus, measured once.")
    return "\n".join(lines)


def _seeds_line(grid: dict) -> str:
    line = f"{grid['seeds']} seed(s) per trainer"
    if grid["large"] and grid["large_seeds"] != grid["seeds"]:
        line += f" ({grid['large_seeds']} in the {' and '.join(f'{t:,}-token' for t, _, _ in grid['large'])} row)"
    return line


def synthetic_figure(results: dict) -> bytes:
    """PNG: µs per word (whole process, training loop) and peak RSS against the kept vocabulary, per trainer, D, corpus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    colours = {"jaxgram": "tab:blue", "gensim": "tab:orange"}
    styles = dict(zip(results["grid"]["dims"], ("-", "--", ":", "-.")))
    markers = dict(zip(results["grid"]["tokens"], "os^Dv"))
    for key in dict.fromkeys((c["trainer"], c["dim"], c["tokens"]) for c in results["cells"]):
        cells = sorted((c for c in results["cells"] if (c["trainer"], c["dim"], c["tokens"]) == key),
                       key=lambda c: c["vocab_kept"])
        trainer, dim, tokens = key
        style = {"color": colours[trainer], "linestyle": styles.get(dim, "-"), "marker": markers.get(tokens, "o"),
                 "label": f"{trainer} D={dim} N={tokens:,}"}
        xs = [c["vocab_kept"] for c in cells]
        for axis, field in zip(axes, ("us_per_word", "loop_us_per_word", "peak_rss_mib")):
            axis.plot(xs, [c[field] for c in cells], **style)
    labels = ("µs per corpus word, whole process", "µs per corpus word, training loop", "peak RSS, MiB")
    for axis, label in zip(axes, labels):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("vocabulary kept at min_count 5")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, which="both")
    axes[2].legend(fontsize=7)
    figure.suptitle(f"1 epoch NS, window 5, 5 negatives; {results['machine']['cpu']}, {results['machine']['cores']} cores",
                    fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def write_synthetic_figure(results: dict, path) -> None:
    atomic_write_bytes(path, synthetic_figure(results))


def load_results(path) -> dict:
    """A results JSON written before, for --table; DataError names the file if it is not there."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read results {path}: {exc}") from exc
