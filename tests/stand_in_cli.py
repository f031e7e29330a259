"""A one-command `jaxgram` run through the real cli.main, for the child processes of tests that
stop a command (tests/test_cli.py, tests/test_rundir.py): only the command itself is a stand-in."""

from __future__ import annotations

import argparse
import sys

from jaxgram import cli


def run(command: str, func, argument: str, argv: list[str]) -> None:
    """Exit with cli.main(argv) for a CLI whose one `command` takes one `argument` and runs func(args)."""

    def build_parser():
        parser = argparse.ArgumentParser(prog="jaxgram")
        stand_in = parser.add_subparsers(dest="command", required=True).add_parser(command)
        stand_in.add_argument(argument)
        stand_in.set_defaults(func=func)
        return parser

    cli.build_parser = build_parser
    sys.exit(cli.main(argv))
