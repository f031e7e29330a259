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
