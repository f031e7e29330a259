"""Command line of the benchmark: argument parsing only; the work is in bench.run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxgram.errors import ConfigError, JaxgramError

DEFAULT_OUT = Path("bench/results.json")
SYNTHETIC_OUT = Path("bench/results/synthetic.json")
CORES_OUT = Path("bench/results/cores.json")
PLANTED_OUT = Path("bench/results/planted.json")
MESHES_OUT = Path("bench/results/meshes.json")
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


def _floats(text: str) -> list[float]:
    """`0.025,0.1` -> [0.025, 0.1]."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers (like 0.025,0.1)") from None


def _words(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_TYINGS = {"untied": False, "tied": True}


def _tyings(text: str) -> list[bool]:
    """`untied,tied` -> [False, True]."""
    unknown = [word for word in _words(text) if word not in _TYINGS]
    if unknown or not _words(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of untied, tied")
    return [_TYINGS[word] for word in _words(text)]


# Options that belong to some modes only: option -> the modes (source arguments) that take it.
_ONLY_WITH = {"tokens": ("synthetic", "planted"), "dims": ("synthetic", "planted"), "vocab_sizes": ("synthetic",),
              "large_cell": ("synthetic",), "plot": ("synthetic",), "table": ("synthetic", "planted"),
              "workers": ("corpus", "mirror", "planted"), "corpora": ("planted",), "widths": ("planted",),
              "alphas": ("planted",), "tying": ("planted",), "epochs": ("planted",),
              "noise": ("planted",), "gensim_shares": ("corpus",), "meshes": ("corpus",), "gensim_modes": ("corpus", "mirror")}


def _parser() -> argparse.ArgumentParser:
    from bench.planted_grid import WORKERS
    from bench.run import CONFIGS, SYNTHETIC_DIMS, SYNTHETIC_LARGE, SYNTHETIC_TOKENS, SYNTHETIC_VOCABS
    from eval.config import RENAMED_CONFIGS

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, help="LineSentence corpus file (one sentence per line)")
    source.add_argument("--mirror", help="Gutenberg mirror (folder or URL): ingest the five books first")
    source.add_argument("--synthetic", action="store_true",
                        help="seeded Zipf corpora: words/s and peak RSS of both trainers against V, D and corpus size "
                             f"(default out: {SYNTHETIC_OUT}, and a PNG beside it)")
    source.add_argument("--planted", action="store_true",
                        help="planted-cluster corpora: cluster purity of jaxgram's settings against gensim's "
                             f"(default out: {PLANTED_OUT})")
    parser.add_argument("--config", default="default", choices=[*CONFIGS, *RENAMED_CONFIGS],
                        metavar="{" + ",".join(CONFIGS) + "}",
                        help="default: NS D=100 5 epochs; dostoevsky: the Dostoevsky article's NS D=32 20 epochs; "
                             "softmax: full softmax D=100 5 epochs")
    parser.add_argument("--seeds", type=int,
                        help="seeds per trainer (default: 3, with --workers at each count; with --synthetic: at each "
                             "grid cell, default 3, while the V ~ 1M cell runs once; with --planted: at each cell)")
    parser.add_argument("--out", type=Path,
                        help=f"results JSON (default: {DEFAULT_OUT}; with --workers {CORES_OUT}, --synthetic "
                             f"{SYNTHETIC_OUT}, --planted {PLANTED_OUT})")
    parser.add_argument("--work", type=Path, help="folder for the trained vectors (default: a temporary folder)")
    parser.add_argument("--progress", action="store_true", help="show the trainers' progress bars")
    parser.add_argument("--readme-table", type=Path, nargs="+", metavar="JSON",
                        help="train nothing: print the README's summary table of these results files")
    parser.add_argument("--workers", type=sizes,
                        help="worker counts (like 1,2,4,8): with --corpus or --mirror, train both trainers with "
                             f"workers=T at each count T (default out: {CORES_OUT}); with --planted, the fused "
                             f"kernel's counts (default: {','.join(map(str, WORKERS))})")
    parser.add_argument("--gensim-shares", action="store_true", default=None,
                        help="with --corpus and --workers, train nothing: print the words gensim's corpus_file "
                             "workers read in an epoch at each count (they read past their shares: bench.gensim_shares)")
    parser.add_argument("--meshes", action="store_true", default=None,
                        help="with --corpus: train one epoch with the XLA step on 1 process x 2 CPU devices and on "
                             f"2 processes x 1 device, tables replicated and row-sharded (default out: {MESHES_OUT})")
    parser.add_argument("--meshes-table", type=Path, nargs="?", const=MESHES_OUT, metavar="JSON",
                        help=f"train nothing: print docs/distributed.md's table of --meshes results (default: {MESHES_OUT})")
    parser.add_argument("--gensim-modes", action="store_true", default=None,
                        help="with --workers: gensim from an iterable too at each count, and how far it agrees with "
                             "gensim's corpus_file models (gensim's two modes side by side)")
    parser.add_argument("--cores-table", type=Path, nargs="?", const=CORES_OUT, metavar="JSON",
                        help=f"train nothing: print the Markdown table of a --workers results file (default: {CORES_OUT})")
    synthetic = parser.add_argument_group("--synthetic options")
    synthetic.add_argument("--tokens", type=sizes, help=f"corpus sizes (default: {','.join(map(str, SYNTHETIC_TOKENS))})")
    synthetic.add_argument("--vocab-sizes", type=sizes,
                           help=f"target vocabularies at min_count 5 (default: {','.join(map(str, SYNTHETIC_VOCABS))})")
    synthetic.add_argument("--dims", type=sizes, help=f"embedding sizes (default: {','.join(map(str, SYNTHETIC_DIMS))})")
    synthetic.add_argument("--large-cell", action=argparse.BooleanOptionalAction,
                           help="also the true V ~ 1M cell (tokens, V target, D = "
                                + ", ".join(f"{t:,} {v:,} {d}" for t, v, d in SYNTHETIC_LARGE)
                                + "; default: on, unless --tokens, --vocab-sizes or --dims narrow the grid)")
    synthetic.add_argument("--table", action="store_true", default=None,
                           help="train nothing: print the Markdown table of --out (--synthetic: and redraw its PNG)")
    synthetic.add_argument("--plot", type=Path, help="PNG of the figures (default: --out with .png)")
    _planted_options(parser)
    return parser


def _planted_options(parser: argparse.ArgumentParser) -> None:
    from bench.planted import NOISE
    from bench.planted_grid import ALPHAS, DIM, EPOCHS, LAYOUTS, SEEDS, TOKENS, WIDTHS

    planted = parser.add_argument_group("--planted options (also --tokens, one size, default "
                                        f"{TOKENS:,}; --dims, one size, default {DIM}; --workers; --seeds, default "
                                        f"{SEEDS}; --table)")
    planted.add_argument("--corpora", type=_words,
                         help="corpus layouts WORDS/GROUPS[+DOMINANT SHARE] (default: "
                              + ",".join(f"{w}/{g}" + (f"+{d:g}" if d else "") for w, g, d in LAYOUTS) + ")")
    planted.add_argument("--widths", type=_words,
                         help=f"widths of the XLA step, of {', '.join(WIDTHS)}; none: an empty string "
                              f"(default: {','.join(WIDTHS)})")
    planted.add_argument("--alphas", type=_floats, help=f"alphas (default: {','.join(map(str, ALPHAS))})")
    planted.add_argument("--tying", type=_tyings, help="untied, tied or both (default: untied,tied)")
    planted.add_argument("--epochs", type=int, help=f"epochs per run (default: {EPOCHS})")
    planted.add_argument("--noise", type=float,
                         help="share of the tokens (but the dominant word's) drawn from any group, not the "
                              f"sentence's (default: {NOISE})")


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    mode = next((name for name in ("synthetic", "planted", "corpus", "mirror") if getattr(args, name)), None)
    if not (args.readme_table or args.cores_table or args.meshes_table or mode):
        parser.error("one of the arguments --corpus --mirror --synthetic --planted --readme-table --cores-table "
                     "--meshes-table is required")
    for name, modes in _ONLY_WITH.items():
        if getattr(args, name) is not None and mode not in modes:
            parser.error(f"--{name.replace('_', '-')} is only allowed with " + " or ".join(f"--{m}" for m in modes))
    if args.gensim_modes and args.workers is None:
        parser.error("--gensim-modes needs --workers (the counts to train gensim's two modes at, like 1,2,4,16)")
    try:
        if args.meshes_table:
            return _meshes_table(args.meshes_table)
        if args.readme_table or args.cores_table:
            return _tables(args)
        if mode == "synthetic":
            return _synthetic(args)
        if mode == "planted":
            return _planted(args)
        if args.gensim_shares:
            return _gensim_shares(args)
        if args.meshes:
            return _meshes(args)
        return _benchmark(args) if args.workers is None else _cores(args)
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


def _tables(args) -> int:
    from bench.run import load_results, readme_table

    if args.readme_table:
        print(readme_table([load_results(path) for path in args.readme_table]))
    if args.cores_table:
        from bench.cores import format_cores_table

        print(format_cores_table(_results_of(args.cores_table, "cores", "--workers")))
    return 0


def _results_of(path: Path, config_name: str, option: str) -> dict:
    """The results JSON at `path`, which must come from `option` (its config_name says so)."""
    from bench.run import load_results

    results = load_results(path)
    if results.get("config_name") != config_name:
        raise ConfigError(f"{path} holds no {option} results (config_name={results.get('config_name')!r})")
    return results


def _cores(args) -> int:
    from bench.cores import format_cores_table, run_cores
    from eval.config import current_config_name

    out = args.out or CORES_OUT
    results = run_cores(corpus=args.corpus, mirror=args.mirror, config_name=current_config_name(args.config),
                        workers=args.workers, seeds=3 if args.seeds is None else args.seeds, out=out, work=args.work,
                        progress=args.progress, gensim_modes=bool(args.gensim_modes))
    print(format_cores_table(results))
    print(f"written: {out}")
    return 0


def _planted(args) -> int:
    from bench import planted_grid as grid
    from bench.planted import parse_layout

    out = args.out or PLANTED_OUT
    if args.table:
        print(grid.format_planted_table(_results_of(out, "planted", "--planted")))
        return 0
    results = grid.run_planted(
        layouts=[parse_layout(text) for text in args.corpora] if args.corpora else grid.LAYOUTS,
        tokens=_one("tokens", args.tokens, grid.TOKENS), dim=_one("dims", args.dims, grid.DIM),
        workers=grid.WORKERS if args.workers is None else args.workers,
        widths=grid.WIDTHS if args.widths is None else args.widths, alphas=args.alphas or grid.ALPHAS,
        tyings=args.tying or grid.TYINGS, seeds=grid.SEEDS if args.seeds is None else args.seeds,
        epochs=grid.EPOCHS if args.epochs is None else args.epochs,
        noise=grid.NOISE if args.noise is None else args.noise, out=out, work=args.work)
    print(grid.format_planted_table(results))
    print(f"written: {out}")
    return 0


def _one(name: str, values, default: int) -> int:
    if values is None:
        return default
    if len(values) != 1:
        raise ConfigError(f"{name}={values!r} is not allowed with --planted: give one size")
    return values[0]


def _synthetic(args) -> int:
    from bench import run

    out = args.out or SYNTHETIC_OUT
    plot = args.plot or out.with_suffix(".png")
    if args.table:
        results = _results_of(out, "synthetic", "--synthetic")
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


def _gensim_shares(args) -> int:
    from bench.gensim_shares import corpus_words, words_read

    if args.workers is None:
        raise ConfigError("--gensim-shares needs --workers (the counts to read the corpus with, like 2,8,16,64)")
    total = corpus_words(args.corpus)
    print(f"gensim corpus_file workers on {args.corpus} ({total:,} words): words read in one epoch\n")
    print("| workers | words read | of the corpus |\n|---:|---:|---:|")
    for count in args.workers:
        read = words_read(args.corpus, count)
        print(f"| {count} | {read:,} | {read / total:.3f} |")
    return 0


def _meshes(args) -> int:
    import tempfile

    from bench.meshes import format_table, run_meshes

    with tempfile.TemporaryDirectory() as scratch:
        rows = run_meshes(args.corpus, Path(args.work or scratch), args.out or MESHES_OUT)
    print("\n" + format_table(rows))
    return 0


def _meshes_table(path: Path) -> int:
    from bench.meshes import format_table
    from bench.run import load_results

    print(format_table(load_results(path)["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

