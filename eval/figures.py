"""Plots and tables the notebooks show, and the little plumbing they share.

The computations live elsewhere (PCA in eval.evaluate, tables and report sections in eval.report,
geometry in jaxgram.geometry); this module turns their results into rows, Markdown and matplotlib
figures. Functions that return data can be tested anywhere; the `show_*` / `plot_*` ones display
in a Jupyter kernel (IPython is imported only then).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eval import report
from eval.evaluate import pca_2d

# -- notebook plumbing ---------------------------------------------------------------------------


def find_repo_root(start=None) -> Path:
    """The checkout a notebook runs in: the nearest folder at or above `start` (default: the working
    directory) with pyproject.toml and jaxgram/, else the folder above the imported jaxgram package."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "jaxgram").is_dir():
            return folder
    import jaxgram

    return Path(jaxgram.__file__).resolve().parent.parent


def shown(path, root) -> str:
    """A path as the reader should see it: relative to the checkout `root`."""
    return os.path.relpath(Path(path).resolve(), root)


def local_mirror(mirror, repo):
    """`mirror` if given; else the Gutenberg copy beside the checkout (../shared/gutenberg) when there is
    one, as a path relative to the working directory (no machine paths in the outputs); else None,
    which means gutenberg.org."""
    local = Path(repo).parent / "shared" / "gutenberg"
    if mirror is None and (local / "cache" / "epub").is_dir():
        return os.path.relpath(local)
    return mirror


def mirror_label(mirror, repo) -> str:
    """Where the books come from, for the reader: a URL as is, a folder relative to the checkout."""
    if mirror is None:
        return "https://www.gutenberg.org"
    return mirror if "://" in mirror else shown(mirror, repo)


def notebook_setup(notebook: str, out=None, mirror=None, books: bool = False):
    """(repo, out folder, mirror) for `notebook`, each notebook's first code cell in one call.

    `out` defaults to runs/notebooks/<notebook> in the checkout (git-ignored); with `books`,
    `mirror` defaults to the Gutenberg copy beside the checkout. Prints both for the reader
    (relative to the checkout, so no machine paths reach the outputs) and sets the figure size.
    """
    import warnings

    import matplotlib.pyplot as plt

    # The trainer imports tqdm.auto even with progress=False; without ipywidgets that warns once.
    warnings.filterwarnings("ignore", message="IProgress not found")
    repo = find_repo_root()
    out = Path(out) if out else repo / "runs" / "notebooks" / notebook
    out.mkdir(parents=True, exist_ok=True)
    plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
    print("outputs go to", shown(out, repo))
    if books:
        mirror = local_mirror(mirror, repo)
        print("books from", mirror_label(mirror, repo))
    return repo, out, mirror


def _display(*objects) -> None:
    from IPython.display import display

    display(*objects)


# -- tables ----------------------------------------------------------------------------------------


def markdown_table(headers, rows) -> str:
    """A Markdown table, rendered by the report module (every cell converted with str)."""
    table = report.Table(tuple(map(str, headers)), tuple(tuple(str(cell) for cell in row) for row in rows))
    return report.render_markdown([table])


def show_table(headers, rows) -> None:
    from IPython.display import Markdown

    _display(Markdown(markdown_table(headers, rows)))


def cosine_rows(models: dict, pairs) -> list:
    """One row per word pair: `cos(a, b)`, then the cosine in each model (3 decimals, signed)."""
    return [(f"cos({a}, {b})", *(f"{m.similarity(a, b):+.3f}" for m in models.values())) for a, b in pairs]


def neighbour_rows(models: dict, words, topn: int = 8) -> list:
    """One row per word: the word, then its `topn` nearest words in each model."""
    return [(word, *(", ".join(w for w, _ in m.most_similar(word, topn=topn)) for m in models.values()))
            for word in words]


def rank_of(embeddings, word: str, other: str) -> int:
    """Position of `other` among the nearest words of `word` (1 = nearest)."""
    return 1 + [w for w, _ in embeddings.most_similar(word, topn=len(embeddings))].index(other)


def mean_cosine(embeddings, n: int = 1000) -> float:
    """Mean cosine between distinct words among the n most frequent: how much everything looks alike."""
    top = np.asarray(embeddings.vectors[:n], dtype=np.float64)
    n = len(top)
    unit = top / np.linalg.norm(top, axis=1, keepdims=True)
    cosines = unit @ unit.T
    return float((cosines.sum() - n) / (n * (n - 1)))


# -- figures -----------------------------------------------------------------------------------------


def pca_figure(panels: dict, words):
    """One PCA panel per model (title -> Embeddings): the `words` it knows, projected on their first two
    principal components (eval.evaluate.pca_2d), each point labelled with its word."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5))
    for axis, (title, embeddings) in zip(np.atleast_1d(axes), panels.items()):
        pca = pca_2d(embeddings, words)
        xy = np.asarray(pca["xy"]).reshape(-1, 2)
        axis.scatter(xy[:, 0], xy[:, 1], s=16)
        report.label_points(axis, pca["words"], xy[:, 0], xy[:, 1])
        explained = pca["explained"]
        axis.set_title(f"{title}\nPC1 {explained[0]:.0%}, PC2 {explained[1]:.0%} of the variance", fontsize=10)
        axis.grid(alpha=0.3)
    return figure


def plot_pca(panels: dict, words) -> None:
    """pca_figure, shown."""
    import matplotlib.pyplot as plt

    pca_figure(panels, words)
    plt.show()


# -- report sections -------------------------------------------------------------------------------


def section_blocks(blocks, title_start: str) -> list:
    """The blocks of the report section whose heading starts with `title_start`, up to the next heading."""
    starts = [i for i, block in enumerate(blocks)
              if isinstance(block, report.Heading) and block.text.startswith(title_start)]
    if not starts:
        raise KeyError(f"the report has no section starting with {title_start!r}")
    start = starts[0]
    end = next((i for i in range(start + 1, len(blocks)) if isinstance(blocks[i], report.Heading)), len(blocks))
    return list(blocks[start:end])


def section_parts(blocks, title_start: str) -> list[tuple[str, object]]:
    """A report section as ("markdown", text) and ("png", bytes) parts, in order: consecutive
    headings, paragraphs and tables become one Markdown part, each image its own part."""
    parts, pending = [], []
    for block in section_blocks(blocks, title_start):
        if isinstance(block, report.Image):
            if pending:
                parts.append(("markdown", report.render_markdown(pending)))
                pending = []
            parts.append(("png", block.png))
        else:
            pending.append(block)
    if pending:
        parts.append(("markdown", report.render_markdown(pending)))
    return parts


def show_section(blocks, title_start: str) -> None:
    """A report section in the notebook: tables as Markdown, figures as PNG."""
    from IPython.display import Image, Markdown

    for kind, content in section_parts(blocks, title_start):
        _display(Markdown(content) if kind == "markdown" else Image(data=content))
