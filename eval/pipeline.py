"""ingest -> train jaxgram -> train gensim -> (noise floors) -> evaluate -> report.

Each stage is keyed by a hash of its inputs and config; a rerun reuses every stage whose
key is unchanged and whose outputs are still there, so only what changed is redone.
Progress goes to stderr, the summary table to stdout.

The run holds its folder (jaxgram.rundir.claim) from start to end, so a second pipeline into
it is refused; each trainer stage empties its folder only while holding that folder too, so
a `jaxgram train` using it refuses the stage instead of losing its files.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eval import report as report_module
from eval.baseline import baseline_note, gensim_kwargs
from eval.config import PipelineConfig
from eval.measure import run_trainer
from jaxgram import rundir
from jaxgram.errors import DataError
from jaxgram.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    sha256_bytes,
    sha256_file,
)
from jaxgram.tables import table_lines

# Bump when a stage's code changes what it produces, so old results are not reused (jaxgram 2:
# corpus-order training and the pair-by-pair fused kernel; 3: the pair-by-pair XLA step, config.json as it ran;
# evaluate 2: word-pair p-values, empty analogy sections null; report 2: the figures redrawn).
STAGE_VERSIONS = {"ingest": 1, "jaxgram": 3, "gensim": 1, "evaluate": 2, "report": 2}
RECORDS = "stages"
# How a run refused by this one names it (the lock file records it).
COMMAND = "jaxgram pipeline"
EVALUATION = "evaluate/evaluation.json"


@dataclass(frozen=True)
class Stage:
    name: str  # folder and record name
    title: str  # what the progress display says
    key: str
    outputs: tuple[str, ...]  # relative to the run folder; all must exist to reuse
    run: Callable[[], dict]  # does the work, returns facts to record (paths, hashes)


@dataclass
class PipelineResult:
    out: Path
    stages: dict[str, dict] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def report_path(self) -> Path:
        return self.out / "report.html"


def stage_key(name: str, **inputs) -> str:
    payload = json.dumps({"stage": name, "version": STAGE_VERSIONS[name.removesuffix("_b")], **inputs},
                         sort_keys=True, default=str)
    return sha256_bytes(payload.encode("utf-8"))


class Runner:
    """Runs or reuses stages in order, recording each in OUT/stages/NAME.json."""

    def __init__(self, out: Path, total: int, log):
        self.out, self.total, self.log = out, total, log
        self.records: dict[str, dict] = {}

    def _record_path(self, name: str) -> Path:
        return self.out / RECORDS / f"{name}.json"

    def _previous(self, stage: Stage) -> dict | None:
        try:
            record = json.loads(self._record_path(stage.name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if record.get("key") != stage.key:
            return None
        if not all((self.out / path).exists() for path in stage.outputs):
            return None
        return record

    def __call__(self, stage: Stage) -> dict:
        number = len(self.records) + 1
        previous = self._previous(stage)
        if previous is not None:
            self.log(f"[{number}/{self.total}] {stage.title}: reused (inputs and config unchanged, key {stage.key[:10]})")
            record = {**previous, "status": "reused"}
        else:
            self.log(f"[{number}/{self.total}] {stage.title} ...")
            # Drop the old record first: an interrupted stage must never look finished.
            self._record_path(stage.name).unlink(missing_ok=True)
            began = time.perf_counter()
            info = stage.run()
            seconds = time.perf_counter() - began
            record = {"key": stage.key, "seconds": seconds, "info": info, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            if not info.get("incomplete"):
                atomic_write_json(self._record_path(stage.name), record)
            record = {**record, "status": "ran"}
            self.log(f"[{number}/{self.total}] {stage.title}: done in {seconds:.1f} s")
        self.records[stage.name] = record
        return record


def _ingest_stage(config: PipelineConfig, mirror, out: Path, corpus, progress: bool, log) -> Stage:
    if corpus is not None:
        corpus = Path(corpus)
        if not corpus.is_file():
            raise DataError(f"corpus file {corpus} does not exist or is not a file")

        def use_given() -> dict:
            return {"corpus_path": str(corpus.resolve()), "corpus_sha256": sha256_file(corpus)}

        return Stage("ingest", f"corpus {corpus} (given, no ingest)", stage_key("ingest", corpus=str(corpus.resolve()),
                     sha256=sha256_file(corpus)), (), use_given)

    def ingest() -> dict:
        from ingest import ingest_books

        options = {"out": out / "ingest", "fmt": config.ingest.fmt, "progress": progress}
        if mirror is not None:
            options["mirror"] = str(mirror)
        report = ingest_books(config.ingest.books, **options)
        errors = [f"book {error.id}: {error.message}" for error in getattr(report, "errors", [])]
        for line in errors:
            log(f"      warning: {line}")
        corpus_path = Path(report.corpus_path).resolve()
        # A run that lost books is not recorded as done, so the next run tries them again.
        return {"corpus_path": str(corpus_path), "corpus_sha256": sha256_file(corpus_path),
                "manifest_path": str(report.manifest_path), "book_errors": errors, "incomplete": bool(errors)}

    key = stage_key("ingest", ingest=dataclasses.asdict(config.ingest), mirror=str(mirror))
    return Stage("ingest", f"ingest {len(config.ingest.books)} books from {mirror or 'the default mirror'}",
                 key, ("ingest",), ingest)


def _trainer_stage(trainer: str, name: str, corpus: dict, config, out: Path, progress: bool) -> Stage:
    inputs = config.to_dict() if trainer == "jaxgram" else {k: v for k, v in gensim_kwargs(config).items() if k != "workers"}
    if trainer == "gensim":
        import gensim
        inputs["gensim_version"] = gensim.__version__
    key = stage_key(name, corpus=corpus["corpus_sha256"], config=inputs)

    def train() -> dict:
        folder = out / name
        rundir.clear(folder, COMMAND)  # the trainer's child claims the folder again to train in it
        return run_trainer(trainer, corpus["corpus_path"], config, folder, progress=progress, initial_vectors=True)

    return Stage(name, f"train {trainer} (seed {config.seed})", key, (f"{name}/vectors.bin", f"{name}/stats.json"), train)


def run_pipeline(config: PipelineConfig, out, mirror=None, corpus=None, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> PipelineResult:
    """Run (or reuse) every stage and write report.md, report.html and metrics.json into `out`.

    `out` is held for the whole run: DataError naming the holder if another run uses it."""
    from eval.probes import load_probes

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    probes = load_probes(config.probes_path)  # fail on a bad probes file before any work
    with rundir.claim(out, COMMAND) as out:
        return _run_stages(config, probes, out, mirror, corpus, progress, log)


def _run_stages(config: PipelineConfig, probes, out: Path, mirror, corpus, progress: bool, log) -> PipelineResult:
    seeds = {"": config.train.seed}
    if config.eval.noise_floors:
        seeds["_b"] = config.eval.second_seed
    runner = Runner(out, total=2 + 2 * len(seeds) + 1, log=log)

    corpus_record = _run_ingest(runner, config, mirror, out, corpus, progress, log)
    trainer_keys = _run_trainers(runner, config, seeds, corpus_record, out, progress)
    evaluation = _run_evaluate(runner, config, probes, trainer_keys, corpus_record, out, log)
    runner(Stage("report", "report (report.md, report.html, figures)",
                 stage_key("report", evaluation=sha256_file(out / EVALUATION)),
                 ("report.md", "report.html"), lambda: _write_report(evaluation, out)))
    return _finish(runner, evaluation, out)


def _run_ingest(runner: Runner, config: PipelineConfig, mirror, out: Path, corpus, progress: bool, log) -> dict:
    """The ingest stage's record: the corpus path and its sha256 as the file is now."""
    corpus_record = dict(runner(_ingest_stage(config, mirror, out, corpus, progress, log))["info"])
    corpus_path = Path(corpus_record["corpus_path"])
    if not corpus_path.is_file():
        raise DataError(f"corpus file {corpus_path} does not exist (recorded by the ingest stage)")
    # Key the trainers on the corpus as it is now, even if someone edited it since ingest.
    corpus_record["corpus_sha256"] = sha256_file(corpus_path)
    return corpus_record


def _run_trainers(runner: Runner, config: PipelineConfig, seeds: dict[str, int], corpus_record: dict, out: Path,
                  progress: bool) -> dict[str, str]:
    """Train both trainers once per seed; returns each training stage's key by stage name."""
    trainer_keys = {}
    for suffix, seed in seeds.items():
        train_config = dataclasses.replace(config.train, seed=seed).validate()
        for trainer in ("jaxgram", "gensim"):
            stage = _trainer_stage(trainer, trainer + suffix, corpus_record, train_config, out, progress)
            runner(stage)
            trainer_keys[stage.name] = stage.key
    return trainer_keys


def _run_evaluate(runner: Runner, config: PipelineConfig, probes, trainer_keys: dict[str, str], corpus_record: dict,
                  out: Path, log) -> dict:
    """Run (or reuse) the evaluate stage and return the evaluation it wrote."""
    from eval.evaluate import evaluate_runs

    evaluation_path = out / EVALUATION

    def evaluate() -> dict:
        runs = {name: out / name for name in trainer_keys}
        evaluation = evaluate_runs(runs, probes, config.eval, step=lambda what: log(f"      {what}"))
        evaluation.update(_evaluation_context(config, corpus_record, evaluation))
        atomic_write_json(evaluation_path, evaluation)
        return {"evaluation": str(evaluation_path)}

    runner(Stage("evaluate", "evaluate (benchmarks, probes, agreement)",
                 stage_key("evaluate", trainers=trainer_keys, eval=dataclasses.asdict(config.eval),
                           probes=sha256_file(config.probes_path), config=config.to_dict()),
                 (EVALUATION,), evaluate))
    try:
        return json.loads(evaluation_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {evaluation_path}: {exc}") from None


def _evaluation_context(config: PipelineConfig, corpus_record: dict, evaluation: dict) -> dict:
    """What the report needs besides the scores: config, corpus and how gensim was set up."""
    return {
        "config": config.to_dict(),
        "config_source": config.source,
        "corpus": {"path": corpus_record["corpus_path"], "sha256": corpus_record["corpus_sha256"],
                   "words": evaluation["trainers"]["jaxgram"]["corpus_words"]},
        "baseline": {"note": baseline_note(config.train),
                     "gensim_kwargs": gensim_kwargs(config.train),
                     "softmax_compared_with_hs": config.train.objective == "softmax"},
        "probes_file": str(config.probes_path),
    }


def _write_report(evaluation: dict, out: Path) -> dict:
    paths = report_module.write_report(evaluation, out)
    return {"files": sorted(str(p) for p in paths.values())}


def _finish(runner: Runner, evaluation: dict, out: Path) -> PipelineResult:
    """Copy the vectors to OUT/vectors.bin and write metrics.json: the run's summary."""
    # `jaxgram neighbors|analogy|similarity` read OUT/vectors.bin by default.
    atomic_write_bytes(out / "vectors.bin", (out / "jaxgram" / "vectors.bin").read_bytes())
    stages = {name: {"status": r["status"], "seconds": r.get("seconds"), "key": r["key"]}
              for name, r in runner.records.items()}
    metrics = {**evaluation, "stages": stages,
               "report": {"markdown": str(out / "report.md"), "html": str(out / "report.html")}}
    atomic_write_json(out / "metrics.json", metrics)
    return PipelineResult(out, stages, metrics)


def summary_table(result: PipelineResult) -> str:
    """The terminal summary: stages, then jaxgram vs gensim on the headline numbers."""
    metrics = result.metrics
    stage_rows = [(name, stage["status"], f"{stage['seconds']:.1f}" if stage["status"] == "ran" else "-")
                  for name, stage in result.stages.items()]
    lines = table_lines(("stage", "status", "seconds"), stage_rows, "<<>", widths=(12, 7, 8), gap=" ")
    rows = [(label, *cells) for label, *cells in report_module.trainer_rows(metrics)]
    agreement = metrics["agreement"]
    for key, label in (("jaxgram_vs_gensim", "overlap@k jaxgram vs gensim"),
                       ("gensim_a_vs_b", "noise floor gensim A vs B"),
                       ("jaxgram_a_vs_b", "noise floor jaxgram A vs B")):
        if key in agreement:
            rows.append((label, report_module.fmt(agreement[key]["overlap_at_k"]), ""))
    # Widths fit the rows alone, the numbers two wider: the layout this table always had.
    label_width = max(len(r[0]) for r in rows)
    number_width = max(len(c) for r in rows for c in r[1:]) + 2
    lines += ["", *table_lines(("metric", "jaxgram", "gensim"), rows, "<>>",
                               widths=(label_width, number_width, number_width), gap=" ")]
    lines += ["", f"report: {result.out / 'report.html'}", f"        {result.out / 'report.md'}",
              f"metrics: {result.out / 'metrics.json'}"]
    return "\n".join(lines)
