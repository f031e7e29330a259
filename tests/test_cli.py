"""The `jaxgram` parser: every subcommand module registers, and a broken one fails loudly."""

import pytest

from jaxgram import cli


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
