"""jaxgram.progress: the log records a run emits, and the rule that the library never decides where they go."""

import ast
import logging
from pathlib import Path

import numpy as np

from jaxgram.data import keep_probabilities
from jaxgram.progress import log_downsampling, log_training_end

LIBRARY = Path(__file__).resolve().parents[1] / "jaxgram"
# Calls that decide where records go or which are shown: the application's business, not a library's.
HANDLER_CONFIGURATION = {"basicConfig", "dictConfig", "fileConfig", "addHandler", "setLevel", "disable"}
# The `jaxgram` command is an application: its modules may show the records (a --verbose flag, say).
COMMAND_LINE = {"cli.py", "commands.py", "__main__.py"}


def test_downsampling_summary_counts_the_thinned_words_and_the_expected_corpus(caplog):
    caplog.set_level(logging.INFO, logger="jaxgram")
    counts = np.array([1000, 100, 10, 1], np.int64)
    keep = keep_probabilities(counts, 0.01)
    log_downsampling(counts, keep, 0.01)
    thinned, left = caplog.records
    assert thinned.getMessage() == "sample=0.01 downsamples 2 most-common words"
    expected = 1000 * keep[0] + 100 * keep[1] + 10 + 1
    assert left.args == (round(expected), 100 * expected / 1111, 1111)
    assert {r.name for r in caplog.records} == {"jaxgram.progress"}


def test_training_end_line_is_gensims(caplog):
    caplog.set_level(logging.INFO, logger="jaxgram")
    log_training_end(2000, 1500, 2.0)
    assert caplog.records[0].getMessage() == "training on 2000 raw words (1500 effective words) took 2.0s, 750 effective words/s"


def _configuring_calls(path: Path) -> list[str]:
    """`file:line call` for each call in `path` that configures logging, except adding a NullHandler."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in HANDLER_CONFIGURATION:
            adds_null = node.func.attr == "addHandler" and "NullHandler" in ast.unparse(node)
            if not adds_null:
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_library_leaves_logging_configuration_to_the_application(tmp_path):
    calls = [call for path in sorted(LIBRARY.glob("*.py")) if path.name not in COMMAND_LINE
             for call in _configuring_calls(path)]
    assert calls == []
    # The check finds what it forbids.
    offender = tmp_path / "offender.py"
    offender.write_text("import logging\nlogging.basicConfig(level=logging.INFO)\n"
                        "logging.getLogger('jaxgram').addHandler(logging.NullHandler())\n")
    assert _configuring_calls(offender) == ["offender.py:2 logging.basicConfig(level=logging.INFO)"]
