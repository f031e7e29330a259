"""The three notebooks: executed top to bottom with their small settings in a real Jupyter kernel
(nbclient + ipykernel), and the committed copies checked against their jupytext scripts
(notebooks/NAME.py, which notebooks/build.py writes into NAME.ipynb).

The book notebooks fetch the five novels over HTTP from the loopback mirror_server fixture.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
MAX_COMMITTED_BYTES = 1_000_000


def _load_build():
    # notebooks/ is not a package; load its generator without leaving a __pycache__ in notebooks/.
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOK_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


build = _load_build()

# What each notebook must leave in its output folder, and whether it reads the books.
EXPECTED = {
    "01_embedding_geometry": (("seed1/E.npy", "seed1/corpus_encoded.txt", "seed2/vocab.tsv"), False),
    "02_dostoevsky": (("ingest/corpus.txt", "ingest/manifest.json"), True),
    "03_jaxgram_vs_gensim": (("report.html", "metrics.json", "jaxgram/vectors.bin", "gensim_b/vectors.bin"), True),
}


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if "__pycache__" not in p.parts}


def _errors(notebook) -> list[str]:
    return [f"cell {cell.get('id')}: {output.get('ename')}: {output.get('evalue')}"
            for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "error"]


def test_every_notebook_has_an_expectation():
    assert set(EXPECTED) == set(build.NOTEBOOKS)
    # one jupytext script per notebook, and nothing else beside build.py
    assert {p.stem for p in NOTEBOOK_DIR.glob("*.py")} - {"build"} == set(EXPECTED)
    assert {p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")} == set(EXPECTED)


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if books else [])
                                  for name, (_, books) in EXPECTED.items()])
def test_notebook_runs_with_small_settings(name, tmp_path, request):
    expected_files, reads_books = EXPECTED[name]
    out = tmp_path / "out"
    env = {key: value for key, value in os.environ.items() if key not in build.PARAMETER_ENV}
    env.update({build.SMALL_ENV: "1", build.OUT_ENV: str(out),
                # the suite's dtype policy (conftest.py) holds inside the kernel too
                "JAX_NUMPY_DTYPE_PROMOTION": "strict"})
    served_before = 0
    if reads_books:
        mirror = request.getfixturevalue("mirror_server")
        env[build.MIRROR_ENV] = mirror.url
        served_before = len(mirror.requests)
    notebook_dir_before = _snapshot(NOTEBOOK_DIR)

    # The committed file itself is executed (a copy in memory): what runs is what readers get.
    notebook = nbformat.read(build.path_of(name), as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    build.execute(notebook, env, timeout=300)  # raises CellExecutionError naming the failing cell

    assert _errors(notebook) == []
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells), "a code cell did not run"
    missing = [path for path in expected_files if not (out / path).is_file()]
    assert not missing, f"{name} did not write {missing} under its output folder"
    assert _snapshot(NOTEBOOK_DIR) == notebook_dir_before, "the notebook wrote into notebooks/"
    if reads_books:
        fetched = [path for path in mirror.requests[served_before:] if path.startswith("/cache/epub/")]
        assert len(fetched) >= 5, f"expected the five books from the loopback mirror, it served {fetched}"


def _cells(notebook) -> list[tuple]:
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in notebook.cells]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_committed_notebook_matches_its_script(name):
    committed = nbformat.read(build.path_of(name), as_version=4)
    nbformat.validate(committed)
    script = jupytext.read(NOTEBOOK_DIR / f"{name}.py", fmt="py:percent")
    assert _cells(committed) == _cells(script), \
        f"{name}.ipynb differs from notebooks/{name}.py: run `python notebooks/build.py --execute {name}`"
    parameter_cells = [c for c in committed.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameter_cells) == 1 and build.SMALL_ENV in parameter_cells[0].source


@pytest.mark.parametrize("name", list(EXPECTED))
def test_rebuilding_keeps_the_committed_notebook(name):
    # `python notebooks/build.py` rewrites the committed notebook as it is: same cell ids, same outputs.
    committed = nbformat.read(build.path_of(name), as_version=4)
    rebuilt = build.build(name)
    assert build.keep_outputs(rebuilt, committed), f"{name}.ipynb: the code cells differ from notebooks/{name}.py"
    assert [(c.id, c.cell_type, c.source, c.metadata, c.get("outputs")) for c in rebuilt.cells] == \
        [(c.id, c.cell_type, c.source, c.metadata, c.get("outputs")) for c in committed.cells]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_committed_notebook_holds_a_full_run(name):
    path = build.path_of(name)
    committed = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in committed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells), \
        f"{name}.ipynb is not executed: run `python notebooks/build.py --execute {name}`"
    assert _errors(committed) == []
    assert path.stat().st_size < MAX_COMMITTED_BYTES
    assert any(output.get("data", {}).get("image/png") for cell in code_cells for output in cell.outputs), \
        f"{name}.ipynb has no figure"
    text = "".join(output.get("text", "")
                   + "".join(output.get("data", {}).get(kind, "") for kind in ("text/plain", "text/markdown"))
                   for cell in code_cells for output in cell.outputs)
    # Outputs of the reading run: not the test suite's quick run, no paths private to one machine, no warnings.
    for unwanted in ("/tmp/", "127.0.0.1", str(REPO_ROOT), "Warning"):
        assert unwanted not in text, f"{name}.ipynb outputs contain {unwanted!r}"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_committed_outputs_come_from_todays_code(name):
    # A notebook shows figures of the code it ran; once jaxgram/, csrc/, eval/ or ingest/ change, its
    # committed outputs may no longer be true, so they must be executed again.
    committed = nbformat.read(build.path_of(name), as_version=4)
    assert committed.metadata.get(build.FINGERPRINT_KEY) == build.code_fingerprint(), \
        f"{name}.ipynb was executed with other code: run `python notebooks/build.py --execute`"
