"""`jaxgram pipeline | report | benchmark`: argument parsing only; the work is in eval.*."""

from __future__ import annotations

import json
from pathlib import Path

from jaxgram.errors import DataError

DEFAULT_OUT = Path("runs/latest")


def register(subparsers) -> None:
    pipeline = subparsers.add_parser(
        "pipeline", help="ingest -> train jaxgram -> train gensim -> evaluate -> report (reuses unchanged stages)")
    pipeline.add_argument("--mirror", help="Gutenberg base URL or local mirror folder (default: ingest's default)")
    pipeline.add_argument("--config", default="default",
                          help="named config (default, dostoevsky) or a TOML file with [ingest], [train], [eval]")
    pipeline.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default: {DEFAULT_OUT})")
    pipeline.add_argument("--corpus", type=Path, help="use this corpus.txt instead of ingesting books")
    pipeline.add_argument("--no-progress", action="store_true", help="no progress bars")
    pipeline.set_defaults(func=_pipeline)

    report = subparsers.add_parser("report", help="re-render report.md / report.html from a run's evaluation")
    report.add_argument("--run", type=Path, default=DEFAULT_OUT, help=f"run folder (default: {DEFAULT_OUT})")
    report.set_defaults(func=_report)

    benchmark = subparsers.add_parser("benchmark", help="Google analogies, WordSim-353 and SimLex-999 for a vectors file")
    benchmark.add_argument("vectors", type=Path, help="word2vec file: .bin, .bin.gz, .bin.bz2 = binary, anything else = text")
    benchmark.add_argument("--restrict-vocab", type=int, default=300000,
                           help="score only the N most frequent words, as gensim's restrict_vocab (default: 300000)")
    benchmark.add_argument("--json", action="store_true", help="print every section's figures as JSON instead")
    benchmark.set_defaults(func=_benchmark)


def _pipeline(args) -> int:
    from eval.config import load_config
    from eval.pipeline import run_pipeline, summary_table

    config = load_config(args.config)
    result = run_pipeline(config, args.out, mirror=args.mirror, corpus=args.corpus, progress=not args.no_progress)
    print(summary_table(result))
    return 0


def _report(args) -> int:
    from eval.report import write_report

    path = args.run / "evaluate" / "evaluation.json"
    if not path.is_file():
        raise DataError(f"evaluation file {path} does not exist: run `jaxgram pipeline --out {args.run}` first")
    try:
        evaluation = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    from jaxgram import rundir

    with rundir.claim(args.run, "jaxgram report"):  # a pipeline writing this folder refuses this, and loses nothing
        paths = write_report(evaluation, args.run)
    print(f"report: {paths['report.html']}\n        {paths['report.md']}")
    return 0


def _benchmark(args) -> int:
    from eval.benchmarks import benchmark_table, run_benchmarks
    from jaxgram.embeddings import Embeddings
    from jaxgram.word2vec_format import is_binary_name

    if not args.vectors.is_file():
        raise DataError(f"vectors file {args.vectors} does not exist")
    embeddings = Embeddings.load_word2vec_format(args.vectors, binary=is_binary_name(args.vectors))
    report = run_benchmarks(embeddings, args.restrict_vocab)
    print(json.dumps(report, indent=2) if args.json else "\n".join(benchmark_table(report)))
    return 0
