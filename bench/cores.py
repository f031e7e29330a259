"""`python -m bench --corpus FILE --workers 1,2,4`: both trainers at each worker count.

At each count T, jaxgram (the config's kernel, `workers=T`) and gensim (corpus_file mode,
`workers=T`) train the same seeds, each in its own child process, as `python -m bench` trains
them (bench.run.measure_run); each count is held to the single-config benchmark's bars: its
agreement (overlap@k of jaxgram vs gensim against both noise floors at that count), its quality
rules, and every run exiting 0. A run that fails (a diverged one exits 3) is recorded with its
exit status instead of stopping the benchmark. On a machine with fewer cores than T, the T
threads share the cores: such a row measures the model trained with T workers (agreement and
quality), not the speed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.run import (
    AGREEMENT_TOLERANCE,
    FORMAT,
    QUALITY_TOLERANCE,
    _agreement_cell,
    _corpus_from,
    _number,
    _short,
    _spread,
    agreement_block,
    agreement_settings,
    corpus_record,
    machine_info,
    measure_run,
    quality_rules,
    train_config,
    trainer_summaries,
)
from eval.evaluate import load_vectors
from jaxgram.errors import ConfigError, JaxgramError
from jaxgram.fileio import atomic_write_json

CONFIG_NAME = "cores"
TRAINERS = ("gensim", "jaxgram")  # the order each seed runs them, as in run_benchmark
# With gensim_modes, gensim from an iterable too: how far gensim's own two modes part at each count.
BOTH_MODES = ("gensim", "gensim_iterable", "jaxgram")
NOTES = ("per worker count T: both trainers with workers=T, the same seeds; speed: median over seeds (words/s = raw "
         "corpus words x epochs / process_seconds, the whole child process); quality: mean [min, max]; agreement: "
         "overlap@k medians over the seeds both trainers finished (jaxgram vs gensim at the same seed, each trainer's "
         "pairs of seeds); exit_status: 0, or the failed run's (3: diverged); rows with workers above the machine's "
         "cores measure the model, not the speed")


def run_cores(corpus=None, mirror=None, config_name: str = "default", workers=(1, 2), seeds: int = 3, out=None,
              work=None, progress: bool = False, gensim_modes: bool = False) -> dict:
    """Train jaxgram and gensim `seeds` times at each worker count; return the results, written to `out` after
    each count (a run cut short keeps the counts it finished: `complete` says whether all are there).
    `gensim_modes`: gensim from an iterable too, each row then also holding both gensim modes' agreement."""
    workers = _counts("workers", workers)
    seeds = _counts("seeds", [seeds])[0]
    config = train_config(config_name, 1, workers=1)
    with tempfile.TemporaryDirectory(prefix="jaxgram-bench-cores-") as scratch:
        work = Path(work) if work is not None else Path(scratch)
        corpus = _corpus_from(corpus, mirror, work)
        # Worker counts are per row: the machine's own line names none.
        machine = {key: value for key, value in machine_info(config).items()
                   if key not in ("jaxgram_workers", "gensim_workers")}
        results = {"format": FORMAT, "config_name": CONFIG_NAME, "base_config": config_name,
                   "config": {**config.to_dict(), "workers": None}, "corpus": corpus_record(corpus),
                   "corpus_words": None, "seeds": seeds, "workers": list(workers), "machine": machine, "counts": [],
                   "complete": False, "all_hold": None, "notes": NOTES}
        for count in workers:
            results["counts"].append(measure_count(corpus, config_name, count, seeds, work / f"workers{count}",
                                                   progress, gensim_modes))
            results.update(corpus_words=_corpus_words(results["counts"]), complete=len(results["counts"]) == len(workers),
                           all_hold=verdict([row["holds"] for row in results["counts"]]))
            if out is not None:
                Path(out).parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(out, results)
    return results


def _counts(name: str, values) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(f"{name}={list(values)!r} is not allowed: it must be a non-empty list of ints >= 1")
    if len(set(values)) != len(values):
        raise ConfigError(f"{name}={list(values)!r} is not allowed: each count once")
    return values


def measure_count(corpus: Path, config_name: str, count: int, seeds: int, work: Path, progress: bool,
                  gensim_modes: bool = False) -> dict:
    """Both trainers `seeds` times with `count` workers: their summaries, agreement, quality rules and bars
    (with `gensim_modes`, gensim from an iterable too: agreement's cross_mode block, not a bar here)."""
    configs = [train_config(config_name, seed, workers=count) for seed in range(1, seeds + 1)]
    trainers_run = BOTH_MODES if gensim_modes else TRAINERS
    runs = {trainer: [] for trainer in trainers_run}
    for config in configs:
        for trainer in trainers_run:
            runs[trainer].append(attempt(trainer, corpus, config, work / f"{trainer}-seed{config.seed}", progress))
    finished = [config.seed for config in configs
                if all(run["exit_status"] == 0 for rows in runs.values() for run in rows if run["seed"] == config.seed)]
    agreed = None
    if finished:
        models = {trainer: {seed: load_vectors(work / f"{trainer}-seed{seed}") for seed in finished}
                  for trainer in trainers_run}
        agreed = agreement_block(models, agreement_settings(config_name), configs[0].objective)
    trainers = trainer_summaries(runs)
    rules = quality_rules(trainers["jaxgram"], trainers["gensim"])
    exits = {trainer: [run["exit_status"] for run in rows] for trainer, rows in runs.items()}
    bars = {"agreement": None if agreed is None else agreed["bar"]["holds"],
            **{key: rule["holds"] for key, rule in rules.items()},
            "exits": all(status == 0 for statuses in exits.values() for status in statuses)}
    return {"workers": count, "trainers": trainers, "agreement": agreed, "quality_rule": rules, "exit_status": exits,
            "bars": bars, "holds": verdict(list(bars.values()))}


def attempt(trainer: str, corpus: Path, config, run_dir: Path, progress: bool) -> dict:
    """measure_run's row plus its exit status; a failed run (a diverged one exits 3) is a row saying why."""
    try:
        return {**measure_run(trainer, corpus, config, run_dir, progress), "exit_status": 0}
    except JaxgramError as exc:
        return {"seed": config.seed, "exit_status": exc.exit_code, "error": f"{type(exc).__name__}: {exc}"}


def verdict(holds: list) -> bool | None:
    """False if any bar fails, else None if any could not be judged (one seed, nothing scored), else True."""
    if False in holds:
        return False
    return None if None in holds else True


def _corpus_words(rows: list) -> int | None:
    counted = [run["corpus_words"] for row in rows for stats in row["trainers"].values() for run in stats["runs"]
               if "corpus_words" in run]
    return counted[0] if counted else None


_BAR_LABELS = {"agreement": "agreement", "analogy_accuracy": "analogy", "wordsim353_spearman": "WordSim-353",
               "exits": "exit status"}


def _bars_cell(row: dict) -> str:
    failed = [_BAR_LABELS[key] for key, holds in row["bars"].items() if holds is False]
    unjudged = [_BAR_LABELS[key] for key, holds in row["bars"].items() if holds is None]
    if failed:
        return "FAILS: " + ", ".join(failed)
    return "hold" + (f" (n/a: {', '.join(unjudged)})" if unjudged else "")


def _rate(stats: dict) -> str:
    return "n/a" if stats["median"] is None else _short(stats["median"])


def _exits(statuses: list) -> str:
    return ",".join(map(str, statuses))


def format_cores_table(results: dict) -> str:
    """The cores results as a Markdown table (for docs/performance.md), with the machine and the caveat on cores."""
    config, machine, cores = results["config"], results["machine"], results["machine"]["cores"]
    crowded = [row["workers"] for row in results["counts"] if row["workers"] > cores]
    words = "n/a" if results["corpus_words"] is None else f"{results['corpus_words']:,}"
    lines = [
        (f"worker counts, config {results['base_config']}: objective={config['objective']} dim={config['dim']} "
         f"epochs={config['epochs']} window={config['window']} negative={config['negative']} "
         f"sample={config['sample']}; {results['seeds']} seed(s) per trainer and count; corpus {words} words "
         f"({results['corpus']['file']}); jaxgram ({machine['jaxgram_kernel']} step) and gensim (corpus_file) "
         "both with workers = the row's count"),
        (f"machine: {machine['cpu']}, {cores} cores, jax {machine['jax']} on {machine['device']}, "
         f"gensim {machine['gensim']}"),
        (f"bars per row: overlap@k median jaxgram vs gensim >= min(floor medians) - {AGREEMENT_TOLERANCE}; "
         + "; ".join(f"{_BAR_LABELS[key]} mean >= gensim min - {tolerance}" for key, tolerance in QUALITY_TOLERANCE.items())
         + "; every run exits 0 (a diverged run exits 3)"),
    ]
    if crowded:
        lines.append(f"This machine has {cores} cores: the rows marked * ({', '.join(map(str, crowded))} workers) "
                     f"run more threads than cores, so they measure the model trained with that many workers "
                     "(agreement, quality), not the speed.")
    modes = any((row["agreement"] or {}).get("cross_mode") for row in results["counts"])
    if modes:
        lines.append("gensim's two modes: gensim from an iterable with the row's workers trained too; its column gives "
                     "the mean overlap@k with the row's corpus_file models over every pair of seeds, gensim from an "
                     "iterable's and jaxgram's (information, not a bar here)")
    lines += ["",
              "| workers | words/s jaxgram / gensim | whole s jaxgram / gensim | analogy jaxgram / gensim "
              "| WordSim-353 jaxgram / gensim | overlap@k jaxgram vs gensim / floor jaxgram / floor gensim (medians) "
              + ("| vs gensim corpus_file: gensim iterable / jaxgram (means) " if modes else "")
              + "| exit status jaxgram / gensim | bars |",
              "|---:|---:|---:|---:|---:|---:|" + ("---:|" if modes else "") + "---|---|"]
    for row in results["counts"]:
        ours, theirs = row["trainers"]["jaxgram"], row["trainers"]["gensim"]
        cells = [f"{row['workers']}{' *' if row['workers'] > cores else ''}",
                 f"{_rate(ours['words_per_second'])} / {_rate(theirs['words_per_second'])}",
                 f"{_number(ours['process_seconds']['median'], 1)} / {_number(theirs['process_seconds']['median'], 1)}",
                 f"{_spread(ours['analogy_accuracy'])} / {_spread(theirs['analogy_accuracy'])}",
                 f"{_spread(ours['wordsim353_spearman'])} / {_spread(theirs['wordsim353_spearman'])}",
                 _agreement_cell(_floor_bar_only(row["agreement"])),
                 *([_modes_cell(row["agreement"])] if modes else []),
                 f"{_exits(row['exit_status']['jaxgram'])} / {_exits(row['exit_status']['gensim'])}",
                 _bars_cell(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _floor_bar_only(block):
    """The agreement block without gensim's cross-mode figures: a row here is held to the noise floors' bar."""
    return None if block is None else {key: value for key, value in block.items() if key != "cross_mode"}


def _modes_cell(block) -> str:
    cross = (block or {}).get("cross_mode")
    if not cross:
        return "n/a"
    return " / ".join(_number(cross[name]["overlap_at_k"]["mean"]) for name in ("gensim_iterable", "jaxgram"))
