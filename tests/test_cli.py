"""The `jaxgram` parser: every subcommand module registers, and a broken one fails loudly; SIGTERM
stops a command wherever it lands."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jaxgram import cli

REPO = Path(__file__).resolve().parents[1]


def _subcommands(parser) -> set[str]:
    return set(parser._subparsers._group_actions[0].choices)


def test_every_package_contributes_its_subcommands():
    assert {"ingest", "train", "toy", "pipeline", "report", "benchmark"} <= _subcommands(cli.build_parser())


def test_a_missing_subcommand_module_is_an_error_not_a_silent_drop(monkeypatch):
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("jaxgram.commands", "jaxgram.no_such_commands"))
    with pytest.raises(ModuleNotFoundError, match="jaxgram.no_such_commands"):
        cli.build_parser()


def test_a_subcommand_module_that_fails_to_import_is_an_error(monkeypatch, tmp_path):
    (tmp_path / "broken_commands.py").write_text("import no_such_dependency_of_broken_commands\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("broken_commands",))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_of_broken_commands"):
        cli.build_parser()


def _word2vec_style_parser():
    parser = cli._Parser(prog="p")
    parser.add_argument("--dim", "-size", dest="dim")
    parser.add_argument("--sample", "-sample", dest="sample")
    return parser


def test_subcommand_parsers_are_the_strict_single_dash_parser():
    assert {type(parser) for parser in cli.build_parser()._subparsers._group_actions[0].choices.values()} == {cli._Parser}


@pytest.mark.parametrize("argv, dim, left", [
    (["-size", "3"], "3", []),
    (["-size=3"], "3", []),
    (["--dim", "3"], "3", []),
    (["--di", "3"], "3", []),  # `--` options still abbreviate
    (["-s", "3"], None, ["-s", "3"]),  # plain argparse: "ambiguous option: -s could match -size, -sample"
    (["-si", "3"], None, ["-si", "3"]),  # plain argparse: -size 3
    (["-hs", "0"], None, ["-hs", "0"]),  # plain argparse: -h with "s" attached
    (["-size3"], None, ["-size3"]),
])
def test_single_dash_options_match_only_when_written_in_full(argv, dim, left):
    parsed, unparsed = _word2vec_style_parser().parse_known_args(argv)
    assert (parsed.dim, parsed.sample, unparsed) == (dim, None, left)


def test_an_argument_error_is_one_line_and_help_still_shows_the_usage(capsys):
    parser = _word2vec_style_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--bogus"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "p: error: unrecognized arguments: --bogus; try 'p --help'\n"
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--help"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("usage: p [-h]")


def test_a_subcommands_argument_error_names_the_subcommand_in_its_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--corpus", "c.txt", "--out", "o", "--devices", "foo"])
    assert info.value.code == 2
    assert capsys.readouterr().err == ("jaxgram train: error: argument --devices: invalid value 'foo': give a number of "
                                       "devices or 'all'; try 'jaxgram train --help'\n")


# -- SIGTERM wherever it lands -------------------------------------------------------------------------

# A stand-in command run by cli.main in a child: argv[1] says where its SIGTERM lands.
STAND_IN = textwrap.dedent("""
    import gc, signal, sys, time
    from jaxgram import cli
    sys.path.insert(0, "tests")  # the child runs in the checkout
    from stand_in_cli import run

    def in_gc_callback():
        # JAX's gc callback once caught the KeyboardInterrupt SIGTERM became; Python ignores an
        # exception raised there ("Exception ignored in ...") and the command went on.
        def callback(phase, info):
            if phase == "start" and not fired:
                fired.append(True)
                signal.raise_signal(signal.SIGTERM)
        fired = []
        gc.callbacks.append(callback)
        gc.collect()

    def while_held():
        with cli.interrupts_held():
            signal.raise_signal(signal.SIGTERM)
            time.sleep(0.05)
            print("held", flush=True)

    def command(args):
        {"gc": in_gc_callback, "held": while_held}[args.where]()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # Python work, where a pending interrupt is acted on
            sum(range(1000))
        print("went on", flush=True)
        return 0

    run("probe", command, "where", ["probe", sys.argv[1]])
""")


@pytest.mark.parametrize("where, printed", [("gc", ""), ("held", "held\n")])
def test_sigterm_stops_the_command_even_where_python_ignores_exceptions_or_it_was_held(where, printed):
    completed = subprocess.run([sys.executable, "-c", STAND_IN, where], capture_output=True, text=True, timeout=60,
                               cwd=REPO)
    assert (completed.returncode, completed.stdout) == (130, printed), completed.stderr
    assert completed.stderr == "jaxgram probe: interrupted\n"


HELD_OUTSIDE_MAIN = textwrap.dedent("""
    import signal, time
    from jaxgram.cli import interrupts_held

    with interrupts_held():  # SIGTERM's default action: the held signal ends the process as the block ends
        signal.raise_signal(signal.SIGTERM)
        time.sleep(0.05)
        print("held", flush=True)
    print("not reached", flush=True)
""")


def test_interrupts_held_outside_the_cli_acts_on_the_signal_as_the_default_would():
    completed = subprocess.run([sys.executable, "-c", HELD_OUTSIDE_MAIN], capture_output=True, text=True, timeout=60,
                               cwd=REPO)
    assert (completed.returncode, completed.stdout, completed.stderr) == (-signal.SIGTERM, "held\n", "")
