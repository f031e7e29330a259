"""Command line of the benchmark: argument parsing only; the work is in bench.run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jaxgram.errors import JaxgramError

DEFAULT_OUT = Path("bench/results.json")


def main(argv=None) -> int:
    from bench.run import CONFIGS
    from eval.config import RENAMED_CONFIGS, current_config_name

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", type=Path, help="LineSentence corpus file (one sentence per line)")
    source.add_argument("--mirror", help="Gutenberg mirror (folder or URL): ingest the five books first")
    parser.add_argument("--config", default="default", choices=[*CONFIGS, *RENAMED_CONFIGS],
                        metavar="{" + ",".join(CONFIGS) + "}",
                        help="default: NS D=100 5 epochs; dostoevsky: the Dostoevsky article's NS D=32 20 epochs; "
                             "softmax: full softmax D=100 5 epochs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per trainer (default: 3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results JSON (default: {DEFAULT_OUT})")
    parser.add_argument("--work", type=Path, help="folder for the trained vectors (default: a temporary folder)")
    parser.add_argument("--progress", action="store_true", help="show the trainers' progress bars")
    args = parser.parse_args(argv)
    try:
        from bench.run import format_table, run_benchmark

        results = run_benchmark(corpus=args.corpus, mirror=args.mirror, config_name=current_config_name(args.config),
                                seeds=args.seeds, out=args.out, work=args.work, progress=args.progress)
    except JaxgramError as exc:
        print(f"python -m bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(format_table(results))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
