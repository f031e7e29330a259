"""Write each notebook from its jupytext script (notebooks/NAME.py, percent format), and run it (nbclient).

    python notebooks/build.py             # rewrite each .ipynb from its .py script
    python notebooks/build.py --execute   # ... and run each with its FULL settings, saving the outputs

Edit the .py scripts, not the .ipynb. A rewrite keeps the committed outputs only while the code cells are
exactly the ones that produced them (markdown edits keep them); otherwise the notebook is written without
outputs and must be re-executed. tests/test_notebooks.py runs the notebooks with their small settings
and checks that each .ipynb holds exactly the cells of its script.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent
NOTEBOOKS = ("01_embedding_geometry", "02_dostoevsky", "03_jaxgram_vs_gensim")
# Environment variables the parameter cells read; the committed run clears them all.
SMALL_ENV = "JAXGRAM_NOTEBOOK_SMALL"
OUT_ENV = "JAXGRAM_NOTEBOOK_OUT"
MIRROR_ENV = "JAXGRAM_MIRROR"
PARAMETER_ENV = (SMALL_ENV, OUT_ENV, MIRROR_ENV)
# The code the notebooks run: a notebook's committed outputs are true of the code it was executed with,
# whose fingerprint --execute records in the notebook's metadata (a test compares it with today's).
CODE_FOLDERS = ("jaxgram", "csrc", "eval", "ingest")
CODE_SUFFIXES = (".py", ".cc", ".h", ".toml")
FINGERPRINT_KEY = "jaxgram_code_sha256"
METADATA = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
            "language_info": {"name": "python"}}


def code_fingerprint(root: Path = NOTEBOOK_DIR.parent) -> str:
    """sha256 of the source files of CODE_FOLDERS, each by its path and its bytes."""
    digest = hashlib.sha256()
    files = sorted(path for folder in CODE_FOLDERS for path in (root / folder).rglob("*")
                   if path.suffix in CODE_SUFFIXES and "__pycache__" not in path.parts and path.is_file())
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def path_of(name: str) -> Path:
    return NOTEBOOK_DIR / f"{name}.ipynb"


def script_of(name: str) -> Path:
    return NOTEBOOK_DIR / f"{name}.py"


def build(name: str) -> nbformat.NotebookNode:
    """The notebook of `name`'s script, without outputs; cell ids are fixed so a rebuild changes nothing."""
    notebook = jupytext.read(script_of(name), fmt="py:percent")
    notebook.metadata = nbformat.from_dict(METADATA)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index:02d}"
        tags = cell.metadata.get("tags")
        cell.metadata = nbformat.from_dict({"tags": list(tags)} if tags else {})
    nbformat.validate(notebook)
    return notebook


def keep_outputs(notebook: nbformat.NotebookNode, committed: nbformat.NotebookNode) -> bool:
    """Copy the committed run's outputs into `notebook` if its code cells are exactly the ones that ran."""
    new = [cell for cell in notebook.cells if cell.cell_type == "code"]
    old = [cell for cell in committed.cells if cell.cell_type == "code"]
    if [cell.source for cell in new] != [cell.source for cell in old]:
        return False
    for target, source in zip(new, old):
        target.outputs, target.execution_count = source.outputs, source.execution_count
    notebook.metadata["language_info"] = committed.metadata.get("language_info", METADATA["language_info"])
    if FINGERPRINT_KEY in committed.metadata:
        notebook.metadata[FINGERPRINT_KEY] = committed.metadata[FINGERPRINT_KEY]
    return True


def execute(notebook: nbformat.NotebookNode, env: dict, timeout: int = 900) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel, working directory notebooks/; CellExecutionError on the first failure."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute(env=env)
    return notebook


def full_environment() -> dict:
    """This process's environment without the test suite's notebook parameters: the reading settings."""
    return {key: value for key, value in os.environ.items() if key not in PARAMETER_ENV}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run each notebook with its full settings and save the outputs")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"notebooks to write: {', '.join(NOTEBOOKS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"unknown notebook {unknown[0]!r}; choose from {', '.join(NOTEBOOKS)}")
    for name in args.names or NOTEBOOKS:
        notebook, path = build(name), path_of(name)
        if args.execute:
            began = time.perf_counter()
            execute(notebook, full_environment())
            notebook.metadata[FINGERPRINT_KEY] = code_fingerprint()
            print(f"{name}: executed in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        elif path.is_file() and not keep_outputs(notebook, nbformat.read(path, as_version=4)):
            print(f"{name}: code cells changed, written without outputs: run with --execute {name}", file=sys.stderr)
        nbformat.write(notebook, path)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
