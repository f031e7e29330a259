"""The `jaxgram` command: parses arguments and calls library code, nothing more.

Each package registers its own subcommands (`register(subparsers)`), and each
subcommand's handler takes the parsed arguments and returns an exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from collections.abc import Sequence

from jaxgram.errors import JaxgramError

# Modules that contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES = ("ingest.cli", "jaxgram.commands", "eval.cli")


class _Parser(argparse.ArgumentParser):
    """argparse, except that a single-dash option matches only when written in full, as in word2vec.c
    (whose -size, -iter, -threads `jaxgram train` takes). Plain argparse takes `-i 5` for `-iter 5`,
    `-w` for `-window` (abbreviations that read as one-letter flags), and `-hs` for `-h s`.
    `--` options still abbreviate. Subparsers get this class too: add_subparsers uses the parent's."""

    def error(self, message):
        # One line, as jaxgram's own refusals are (exit 2, as argparse's): argparse printed its usage
        # first, 15 lines for `train`, above the one that says what is wrong. --help still shows it.
        self.exit(2, f"{self.prog}: error: {message}; try '{self.prog} --help'\n")

    def _get_option_tuples(self, option_string):
        # argparse asks this only for a string that is no option's full name: the guesses.
        if option_string[1:2] in self.prefix_chars:  # a `--` option
            return super()._get_option_tuples(option_string)
        return []


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(
        prog="jaxgram",
        description="Skip-gram word embeddings in JAX: scrape, train, evaluate against gensim.",
    )
    from jaxgram import __version__

    parser.add_argument("--version", action="version", version=f"jaxgram {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        # No fallback: a module that fails to import is a broken install, and skipping it
        # would only turn the error into a puzzling "invalid choice" for its subcommands.
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (what Slurm, systemd and `timeout` send first) stops a command as Ctrl-C does:
    # cleanup runs, the last checkpoint is kept, exit 130. Only while a command runs, and only
    # here: a library must not take over signals when it is imported.
    try:
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        installed = True
    except ValueError:  # not the main thread, the only one Python lets handle signals
        installed = False
    previous_hook = sys.unraisablehook
    if installed:
        sys.unraisablehook = functools.partial(_interrupt_again, previous_hook)
    try:
        return int(args.func(args) or 0)
    except JaxgramError as exc:
        print(f"jaxgram {args.command}: error: {exc}", file=sys.stderr)
        _leave_run_now(exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"jaxgram {args.command}: interrupted", file=sys.stderr)
        _leave_run_now(130)
        return 130
    except Exception as exc:
        if not _partner_left(exc):
            raise
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"jaxgram {args.command}: error: another process of the run has ended, so this one cannot go on "
              f"({first_line})", file=sys.stderr)
        _leave_run_now(1)
        return 1
    finally:
        if installed:  # None: a handler set outside Python, which cannot be put back; the default can
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            sys.unraisablehook = previous_hook


def _leave_run_now(status: int) -> None:
    """End a process of a multi-process run at once. Its own cleanup has run (the interrupt came up
    through every `finally`), but JAX's exit handler waits at a shutdown barrier for the other
    processes, which wait in the step for this one: an interrupted process printed "interrupted" and
    then hung (60 s and more, its partner with it). Exiting here closes its connections, so the others
    fail their step rather than wait. A single process exits the usual way."""
    distributed = sys.modules.get("jaxgram.distributed")  # never imports JAX itself
    if distributed is not None and distributed.joined():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _partner_left(exc: Exception) -> bool:
    """Whether `exc` is a failed collective of a multi-process run (XLA's runtime error in a joined
    process): what this process sees when another one of the run ended or was killed."""
    distributed, jax = sys.modules.get("jaxgram.distributed"), sys.modules.get("jax")
    return (distributed is not None and jax is not None and isinstance(exc, jax.errors.JaxRuntimeError)
            and distributed.joined())


def _interrupt_again(previous_hook, unraisable) -> None:
    """sys.unraisablehook while a command runs: a KeyboardInterrupt that landed where Python ignores
    exceptions is raised again in the main thread, not lost. SIGTERM's handler runs wherever the main
    thread is, and that was once JAX's gc callback: the run printed "Exception ignored" with a
    traceback and trained on (jax-ml/jax#18246). The interrupt is marked again from another thread a
    moment later, so that it comes once this hook has returned: one raised in here is ignored too.
    (interrupt_main does nothing once the command has ended: SIGTERM's handler is no longer Python's.)"""
    import _thread
    import signal
    import threading

    again = threading.Timer(0.01, _thread.interrupt_main, (signal.SIGTERM,))
    try:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            again.start()
        else:
            previous_hook(unraisable)
    except KeyboardInterrupt:  # another signal, come while in here: pass it on the same way
        if again.ident is None:
            again.start()


@contextlib.contextmanager
def interrupts_held():
    """Hold SIGTERM and SIGINT inside the block, and act on them as it ends.

    For start-up code that no KeyboardInterrupt may land in: one raised while jaxlib's C++ extension
    imports itself (its initialisation runs Python code) aborted the process (status -6, a C++ stack
    dump) or failed the import with a traceback. Keep such blocks short: a held signal waits for
    the block. The handlers are put back before a held signal is raised again, so it has the effect
    it would have had (KeyboardInterrupt under main, the default elsewhere). Outside the main thread,
    where Python runs no handlers, nothing is held."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = {signum: signal.signal(signum, lambda signum, frame: held.append(signum))
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)


if __name__ == "__main__":
    sys.exit(main())
