"""Command line of the benchmark: argument parsing only; the work is in bench.run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxgram.errors import ConfigError, JaxgramError

DEFAULT_OUT = Path("bench/results.json")
SYNTHETIC_OUT = Path("bench/results/synthetic.json")
_SUFFIXES = {"k": 1_000, "m": 1_000_000}


def sizes(text: str) -> list[int]:
    """`500k,2M` -> [500000, 2000000]: comma-separated ints, with an optional k or M suffix."""
    values = []
    for part in text.split(","):
        part = part.strip().lower()
        scale = _SUFFIXES.get(part[-1:], 1)
        digits = part[:-1] if scale != 1 else part
        try:
            values.append(round(float(digits) * scale))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of sizes (like 500k,2M)") from None
    return values


def _parser() -> argparse.ArgumentParser:
    from bench.run import CONFIGS, SYNTHETIC_DIMS, SYNTHETIC_LARGE, SYNTHETIC_TOKENS, SYNTHETIC_VOCABS
    from eval.config import RENAMED_CONFIGS

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, help="LineSentence corpus file (one sentence per line)")
    source.add_argument("--mirror", help="Gutenberg mirror (folder or URL): ingest the five books first")
    source.add_argument("--synthetic", action="store_true",
                        help="seeded Zipf corpora: words/s and peak RSS of both trainers against V, D and corpus size "
                             f"(default out: {SYNTHETIC_OUT}, and a PNG beside it)")
    parser.add_argument("--config", default="default", choices=[*CONFIGS, *RENAMED_CONFIGS],
                        metavar="{" + ",".join(CONFIGS) + "}",
                        help="default: NS D=100 5 epochs; dostoevsky: the Dostoevsky article's NS D=32 20 epochs; "
                             "softmax: full softmax D=100 5 epochs")
    parser.add_argument("--seeds", type=int,
                        help="seeds per trainer (default: 3; with --synthetic: at each grid cell, default 3, while the "
                             "V ~ 1M cell runs once)")
    parser.add_argument("--out", type=Path, help=f"results JSON (default: {DEFAULT_OUT})")
    parser.add_argument("--work", type=Path, help="folder for the trained vectors (default: a temporary folder)")
    parser.add_argument("--progress", action="store_true", help="show the trainers' progress bars")
    parser.add_argument("--readme-table", type=Path, nargs="+", metavar="JSON",
                        help="train nothing: print the README's summary table of these results files")
    synthetic = parser.add_argument_group("--synthetic options")
    synthetic.add_argument("--tokens", type=sizes, help=f"corpus sizes (default: {','.join(map(str, SYNTHETIC_TOKENS))})")
    synthetic.add_argument("--vocab-sizes", type=sizes,
                           help=f"target vocabularies at min_count 5 (default: {','.join(map(str, SYNTHETIC_VOCABS))})")
    synthetic.add_argument("--dims", type=sizes, help=f"embedding sizes (default: {','.join(map(str, SYNTHETIC_DIMS))})")
    synthetic.add_argument("--large-cell", action=argparse.BooleanOptionalAction,
                           help="also the true V ~ 1M cell (tokens, V target, D = "
                                + ", ".join(f"{t:,} {v:,} {d}" for t, v, d in SYNTHETIC_LARGE)
                                + "; default: on, unless --tokens, --vocab-sizes or --dims narrow the grid)")
    synthetic.add_argument("--table", action="store_true",
                           help="train nothing: print the Markdown table of --out and redraw its PNG")
    synthetic.add_argument("--plot", type=Path, help="PNG of the figures (default: --out with .png)")
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not (args.readme_table or args.corpus or args.mirror or args.synthetic):
        parser.error("one of the arguments --corpus --mirror --synthetic --readme-table is required")
    given = [name for name in ("tokens", "vocab_sizes", "dims", "plot", "large_cell") if getattr(args, name) is not None]
    if not args.synthetic and (given or args.table):
        parser.error(f"--{(given[0] if given else 'table').replace('_', '-')} is only allowed with --synthetic")
    try:
        if args.readme_table:
            from bench.run import load_results, readme_table

            print(readme_table([load_results(path) for path in args.readme_table]))
            return 0
        return _synthetic(args) if args.synthetic else _benchmark(args)
    except JaxgramError as exc:
        print(f"python -m bench: error: {exc}", file=sys.stderr)
        return exc.exit_code


def _benchmark(args) -> int:
    from bench.run import format_table, run_benchmark
    from eval.config import current_config_name

    out = args.out or DEFAULT_OUT
    results = run_benchmark(corpus=args.corpus, mirror=args.mirror, config_name=current_config_name(args.config),
                            seeds=3 if args.seeds is None else args.seeds, out=out, work=args.work,
                            progress=args.progress)
    print(format_table(results))
    print(f"written: {out}")
    return 0


def _synthetic(args) -> int:
    from bench import run

    out = args.out or SYNTHETIC_OUT
    plot = args.plot or out.with_suffix(".png")
    if args.table:
        results = run.load_results(out)
        if results.get("config_name") != "synthetic":
            raise ConfigError(f"{out} holds no --synthetic results (config_name={results.get('config_name')!r})")
    else:
        results = run.run_synthetic(tokens=args.tokens or run.SYNTHETIC_TOKENS,
                                    vocabs=args.vocab_sizes or run.SYNTHETIC_VOCABS, dims=args.dims or run.SYNTHETIC_DIMS,
                                    seeds=run.SYNTHETIC_SEEDS if args.seeds is None else args.seeds, out=out,
                                    work=args.work, progress=args.progress,
                                    large=run.SYNTHETIC_LARGE if _large_cell(args) else ())
    run.write_synthetic_figure(results, plot)
    print(run.format_synthetic_table(results))
    print(f"written: {plot}" if args.table else f"written: {out}, {plot}")
    return 0


def _large_cell(args) -> bool:
    """--large-cell as given; by default on for the default grid, off for a grid narrowed on the command line."""
    if args.large_cell is not None:
        return args.large_cell
    return args.tokens is None and args.vocab_sizes is None and args.dims is None


if __name__ == "__main__":
    sys.exit(main())
