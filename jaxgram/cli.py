"""The `jaxgram` command: parses arguments and calls library code, nothing more.

Each package registers its own subcommands (`register(subparsers)`), and each
subcommand's handler takes the parsed arguments and returns an exit status.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from jaxgram.errors import JaxgramError

# Modules that contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES = ("ingest.cli", "jaxgram.commands", "eval.cli")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="jaxgram",
        description="Skip-gram word embeddings in JAX: scrape, train, evaluate against gensim.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except JaxgramError as exc:
        print(f"jaxgram {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"jaxgram {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
