"""eval.figures: the tables, PCA figures and report sections the notebooks show."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from eval import figures, report
from eval.evaluate import pca_2d
from jaxgram.embeddings import Embeddings

REPO_ROOT = Path(__file__).resolve().parents[1]
SQRT_HALF = f"+{np.sqrt(0.5):.3f}"


@pytest.fixture(scope="module")
def toy():
    """The toy geometry experiment's model, trained for real (seconds)."""
    from jaxgram import train
    from jaxgram.toy import TOY_CONFIG, toy_sentences

    return train(toy_sentences(), TOY_CONFIG, progress=False).embeddings


@pytest.fixture
def known():
    """Four 2-D vectors with known cosines, and the same vectors rotated by 90 degrees."""
    words = ["east", "north", "northeast", "west"]
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    rotation = np.array([[0.0, 1.0], [-1.0, 0.0]])
    return Embeddings(words, vectors), Embeddings(words, vectors @ rotation)


@pytest.fixture
def shown_objects(monkeypatch):
    """What show_* passes to IPython's display, instead of displaying it."""
    import IPython.display

    objects = []
    monkeypatch.setattr(IPython.display, "display", lambda *items: objects.extend(items))
    return objects


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# -- plumbing ------------------------------------------------------------------------------------


def test_find_repo_root_from_the_notebooks_folder_and_from_elsewhere(tmp_path):
    assert figures.find_repo_root(REPO_ROOT / "notebooks") == REPO_ROOT
    checkout = tmp_path / "checkout"
    (checkout / "jaxgram").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    (checkout / "notebooks" / "deep").mkdir(parents=True)
    assert figures.find_repo_root(checkout / "notebooks" / "deep") == checkout.resolve()
    # No checkout above: the folder holding the imported jaxgram package.
    import jaxgram

    assert figures.find_repo_root(tmp_path) == Path(jaxgram.__file__).resolve().parent.parent


def test_shown_paths_are_relative_to_the_checkout(tmp_path):
    assert figures.shown(tmp_path / "runs" / "x", tmp_path) == os.path.join("runs", "x")
    assert figures.shown(tmp_path, tmp_path / "a" / "b") == os.path.join("..", "..")


def test_local_mirror_prefers_the_given_one_then_the_copy_beside_the_checkout(tmp_path, monkeypatch):
    repo = tmp_path / "main"
    (repo / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(repo / "notebooks")
    assert figures.local_mirror(None, repo) is None
    (tmp_path / "shared" / "gutenberg" / "cache" / "epub").mkdir(parents=True)
    assert figures.local_mirror(None, repo) == os.path.join("..", "..", "shared", "gutenberg")
    assert figures.local_mirror("http://mirror.example", repo) == "http://mirror.example"
    assert figures.mirror_label(None, repo) == "https://www.gutenberg.org"
    assert figures.mirror_label("http://mirror.example/x", repo) == "http://mirror.example/x"
    assert figures.mirror_label(figures.local_mirror(None, repo), repo) == os.path.join("..", "shared", "gutenberg")


# -- tables --------------------------------------------------------------------------------------


def test_markdown_table_converts_every_cell_and_escapes_pipes(shown_objects):
    text = figures.markdown_table(["pair", 1], [("a|b", 0.5), ("c", None)])
    assert text == "| pair | 1 |\n|---|---|\n| a\\|b | 0.5 |\n| c | None |\n"
    figures.show_table(["pair", 1], [("a|b", 0.5), ("c", None)])
    assert [type(item).__name__ for item in shown_objects] == ["Markdown"]
    assert shown_objects[0].data == text


def test_cosine_rows_hold_the_cosines_of_known_vectors(known):
    plain, rotated = known
    rows = figures.cosine_rows({"plain": plain, "rotated": rotated},
                               [("east", "north"), ("east", "northeast"), ("east", "west"), ("north", "northeast")])
    # Rotating every vector changes no cosine.
    assert rows == [("cos(east, north)", "+0.000", "+0.000"), ("cos(east, northeast)", SQRT_HALF, SQRT_HALF),
                    ("cos(east, west)", "-1.000", "-1.000"), ("cos(north, northeast)", SQRT_HALF, SQRT_HALF)]


def test_neighbour_rows_and_ranks_of_known_vectors(known):
    plain, rotated = known
    assert figures.neighbour_rows({"plain": plain, "rotated": rotated}, ["east", "west"], topn=2) == [
        ("east", "northeast, north", "northeast, north"), ("west", "north, northeast", "north, northeast")]
    assert figures.rank_of(plain, "east", "northeast") == 1
    assert figures.rank_of(plain, "east", "west") == 3


def test_mean_cosine_of_known_vectors(known):
    plain, _ = known
    # Distinct pairs among east, north, northeast: 0, s, s (s = cos 45 degrees).
    assert figures.mean_cosine(plain, n=3) == pytest.approx(2 * np.sqrt(0.5) / 3)
    # All four (east, west adds -1, 0 and -s): n larger than the vocabulary counts the words there are.
    expected = (0 + np.sqrt(0.5) - 1 + np.sqrt(0.5) + 0 - np.sqrt(0.5)) / 6
    assert figures.mean_cosine(plain, n=10) == pytest.approx(expected)


def test_toy_model_tables(toy):
    rows = {row[0]: float(row[1]) for row in figures.cosine_rows({"toy": toy}, [("car", "plane"), ("car", "elephant")])}
    assert rows["cos(car, plane)"] > 0.9 > abs(rows["cos(car, elephant)"])
    (word, neighbours), = figures.neighbour_rows({"toy": toy}, ["car"], topn=5)
    assert word == "car" and neighbours.split(", ")[0] == "plane" and len(neighbours.split(", ")) == 5
    assert figures.rank_of(toy, "car", "plane") == 1


# -- PCA figure -------------------------------------------------------------------------------------


def test_pca_figure_draws_one_labelled_point_per_known_word(toy, known):
    words = ["car", "plane", "elephant", "lion", "not-a-word"]
    figure = figures.pca_figure({"toy": toy, "compass": known[0]}, words)
    first, second = figure.axes
    assert [text.get_text() for text in first.texts] == ["car", "plane", "elephant", "lion"]
    assert len(second.texts) == 0 and len(second.collections[0].get_offsets()) == 0  # the compass model knows none
    points = first.collections[0].get_offsets()
    expected = pca_2d(toy, words)
    assert np.asarray(points).shape == (4, 2) == np.asarray(expected["xy"]).shape
    np.testing.assert_allclose(points, expected["xy"])
    assert first.get_title().startswith("toy\nPC1 ") and first.get_title().endswith("of the variance")
    # car and plane share every context: they land together, far from the animals.
    xy = dict(zip(expected["words"], np.asarray(expected["xy"])))
    assert np.linalg.norm(xy["car"] - xy["plane"]) < np.linalg.norm(xy["car"] - xy["elephant"]) / 5


def test_pca_figure_with_one_panel_and_plot_pca_shows_it(toy, monkeypatch):
    figure = figures.pca_figure({"only": toy}, ["car", "plane", "boat"])
    assert len(figure.axes) == 1 and len(figure.axes[0].texts) == 3
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append([len(axis.texts) for axis in plt.gcf().axes]))
    figures.plot_pca({"a": toy, "b": toy}, ["car", "plane"])
    assert shown == [[2, 2]]


# -- report sections ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blocks(synthetic_runs):
    from eval.baseline import baseline_note
    from eval.config import DEFAULT_PROBES, EvalSettings, PipelineConfig
    from eval.evaluate import evaluate_runs
    from eval.probes import load_probes

    metrics = evaluate_runs(synthetic_runs, load_probes(DEFAULT_PROBES), EvalSettings(overlap_words=50, cosine_pairs=500))
    config = PipelineConfig()
    metrics.update({"config": config.to_dict(), "config_source": "test",
                    "corpus": {"path": "corpus.txt", "sha256": "0" * 64, "words": 4800},
                    "baseline": {"note": baseline_note(config.train)}})
    return report.build_blocks(metrics)


def test_section_blocks_run_to_the_next_heading(blocks):
    section = figures.section_blocks(blocks, "Summary")
    assert [type(block).__name__ for block in section] == ["Heading", "Table", "Paragraph"]
    assert section[0].text == "Summary" and section[1].headers == ("Metric", "jaxgram", "gensim")
    last = figures.section_blocks(blocks, "jaxgram loss")
    assert last[-1] is blocks[-1]  # the last section runs to the end
    with pytest.raises(KeyError, match="Nonexistent"):
        figures.section_blocks(blocks, "Nonexistent")


def test_section_parts_group_markdown_around_images(blocks, shown_objects):
    parts = figures.section_parts(blocks, "jaxgram loss")
    assert [kind for kind, _ in parts] == ["markdown", "png", "markdown"]
    assert parts[0][1].startswith("## jaxgram loss per epoch\n\n| Epoch | Mean loss per pair |")
    assert parts[1][1].startswith(b"\x89PNG\r\n\x1a\n")
    assert parts[2][1] == "All numbers above are in metrics.json next to this report.\n"
    figures.show_section(blocks, "jaxgram loss")
    assert [type(item).__name__ for item in shown_objects] == ["Markdown", "Image", "Markdown"]
    assert shown_objects[1].data == parts[1][1]


def test_notebook_setup_makes_the_output_folder_and_names_it_relative_to_the_checkout(tmp_path, capsys):
    repo = figures.find_repo_root()
    out = tmp_path / "nb" / "01"
    assert figures.notebook_setup("01", out) == (repo, out, None)
    assert out.is_dir() and capsys.readouterr().out == f"outputs go to {os.path.relpath(out, repo)}\n"
    given = "http://127.0.0.1:9/mirror"
    assert figures.notebook_setup("02", out, given, books=True)[2] == given
    assert capsys.readouterr().out.splitlines()[1] == f"books from {given}"
