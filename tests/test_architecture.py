"""The shape of the code a newcomer reads: short functions, a short training module, no import
cycles, no import-time side effects on JAX, no binary archives or insider labels in the tree."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jaxgram", "ingest", "eval", "bench")
MAX_FUNCTION_LINES = 60
MAX_TRAINING_LINES = 300


def _python_files(*packages: str):
    for package in packages:
        yield from sorted((REPO_ROOT / package).rglob("*.py"))


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_is_longer_than_sixty_lines():
    too_long = [f"{path.relative_to(REPO_ROOT)}:{line} {name} ({length} lines)"
                for path in _python_files(*PACKAGES) for name, line, length in _functions(path)
                if length > MAX_FUNCTION_LINES]
    assert not too_long, "split these functions:\n" + "\n".join(too_long)


def test_the_training_module_reads_in_one_sitting():
    lines = len((REPO_ROOT / "jaxgram" / "training.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_TRAINING_LINES


def _jaxgram_imports(path: Path) -> set[str]:
    """The jaxgram modules `path` imports, anywhere in the file (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jaxgram":
            if node.module == "jaxgram":  # from jaxgram import checkpoint, distributed
                found |= {f"jaxgram.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("jaxgram.")}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}

    def visit(module, trail):
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return trail[trail.index(imported):] + [imported] if imported in trail else [module, imported]
            if imported not in state and (found := visit(imported, trail + [imported])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_jaxgram_modules_import_each_other_without_a_cycle():
    graph = {f"jaxgram.{path.stem}": _jaxgram_imports(path) - {f"jaxgram.{path.stem}"}
             for path in _python_files("jaxgram") if path.stem not in ("__init__", "__main__")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


IMPORT_EVERY_MODULE = """
import importlib, pathlib, jax, jaxgram
before = dict(jax.config.values)
# Every Python module of the package (the compiled kernel library beside them is not one).
names = sorted(p.stem for p in pathlib.Path(jaxgram.__file__).parent.glob("*.py") if p.stem != "__main__")
for name in names:
    importlib.import_module("jaxgram." + name)
changed = {k: (v, jax.config.values[k]) for k, v in before.items() if jax.config.values[k] != v}
assert not changed, changed
from jax._src import xla_bridge
assert not xla_bridge.backends_are_initialized(), "importing jaxgram started JAX"
print(len(names))
"""


def test_importing_any_jaxgram_module_leaves_jax_config_unchanged():
    completed = subprocess.run([sys.executable, "-c", IMPORT_EVERY_MODULE], capture_output=True, text=True,
                               cwd=REPO_ROOT)
    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout) >= 15  # every module was imported, not an empty package


def _tracked_files() -> list[str]:
    completed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=REPO_ROOT)
    if completed.returncode != 0:
        pytest.skip("not a git checkout")
    return completed.stdout.splitlines()


def test_no_archive_or_wheel_is_tracked():
    archives = re.compile(r"\.(whl|zip|tar|gz|tgz|bz2|xz|7z|egg|npz|pkl)$")
    assert [name for name in _tracked_files() if archives.search(name)] == []


# Labels of documents a reader of the code does not have ("seed" + a three-digit number).
INSIDER_LABEL = re.compile(r"seed[ _]?0\d\d\b|as the issue", re.IGNORECASE)
# The pipeline config's old name, still accepted (with a deprecation note) where it is mapped and tested.
OLD_CONFIG_NAME = {"eval/config.py": '"seed004"', "tests/test_eval_config.py": '"seed004"'}


def test_no_insider_labels_in_code_configs_or_readme():
    readable = re.compile(r"\.(py|toml|md|cfg|txt|sh)$|^Makefile$")
    hits = []
    for name in _tracked_files():
        path = REPO_ROOT / name
        if readable.search(name) and path.is_file() and name != "tests/test_architecture.py":
            hits += [f"{name}:{number}: {line.strip()}"
                     for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                     if INSIDER_LABEL.search(line.replace(OLD_CONFIG_NAME.get(name, "\0"), ""))]
    assert not hits, "\n".join(hits)
