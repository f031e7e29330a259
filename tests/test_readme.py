"""The front door: a README read in minutes, whose Python runs as written and whose links resolve."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 200
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation but hyphens dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines()
            if re.match(r"#{1,6} ", line)}


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; depth belongs in docs/"


@pytest.mark.parametrize("index", range(len(_python_blocks(README.read_text(encoding="utf-8")))))
def test_each_readme_python_block_runs_as_written(index, tmp_path):
    code = _python_blocks(README.read_text(encoding="utf-8"))[index]
    completed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                               timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_the_readme_has_python_to_run():
    assert _python_blocks(README.read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_relative_link_resolves(document):
    broken = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{document.name}: links that do not resolve: {broken}"


def test_the_licence_pyproject_names_is_there():
    assert "MIT" in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def _named_tests(cell: str) -> list[tuple[str, str]]:
    """(file, test) for each `file.py::test` and each `::test` after it (the same file) in a table cell."""
    named, current = [], None
    for file, test in re.findall(r"`(test_\w+\.py)?(?:::(\w+))?(?:\[[^\]]*\])?`", cell):
        current = file or current
        if current and test:
            named.append((current, test))
    return named


def test_every_test_the_reliability_table_names_exists():
    table = [line for line in (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8").splitlines()
             if line.startswith("| ") and "`test_" in line]
    named = [pair for line in table for pair in _named_tests(line.rsplit(" | ", 1)[-1])]
    assert len(named) >= len(table)
    missing = [f"{file}::{test}" for file, test in named
               if not re.search(rf"^(?:async )?def {test}\(", (ROOT / "tests" / file).read_text(encoding="utf-8"), re.M)]
    assert not missing
