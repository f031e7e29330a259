"""The evaluate stage: benchmarks, probes, agreement and figure data for trained runs, as one dict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eval import agreement, benchmarks
from eval.measure import INITIAL_VECTORS
from eval.probes import Probes, run_probes
from jaxgram.embeddings import Embeddings
from jaxgram.errors import DataError


def load_vectors(run_dir) -> Embeddings:
    """The word2vec-binary vectors a trainer stage wrote (DataError names the path if absent)."""
    path = Path(run_dir) / "vectors.bin"
    if not path.is_file():
        raise DataError(f"vectors file {path} does not exist")
    return Embeddings.load_word2vec_format(path, binary=True)


def load_initial(run_dir, words) -> Embeddings:
    path = Path(run_dir) / INITIAL_VECTORS
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read initial vectors {path}: {exc}") from None
    return Embeddings(words, table)


def read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def pca_2d(embeddings: Embeddings, words) -> dict:
    """2-D PCA coordinates of the words a model knows (the Dostoevsky article's before/after figures)."""
    known = [w for w in words if w in embeddings]
    if len(known) < 2:
        return {"words": known, "xy": [[0.0, 0.0] for _ in known], "explained": [0.0, 0.0]}
    matrix = np.asarray([embeddings[w] for w in known], dtype=np.float64)
    centred = matrix - matrix.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    xy = centred @ components.T
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    variance = singular ** 2
    explained = (variance[:2] / variance.sum()).tolist() if variance.sum() > 0 else [0.0, 0.0]
    return {"words": known, "xy": xy.tolist(), "explained": explained + [0.0] * (2 - len(explained))}


def cosine_matrix(embeddings: Embeddings, words) -> dict:
    known = [w for w in words if w in embeddings]
    return {"words": known, "cosines": [[embeddings.similarity(a, b) for b in known] for a in known]}


def evaluate_runs(runs: dict[str, Path], probes: Probes, settings, step=lambda name: None) -> dict:
    """Everything the report shows, computed from the trainer stages' output folders.

    `runs` maps jaxgram / gensim (seed A) and, for the noise floors, jaxgram_b / gensim_b.
    """
    models = {name: load_vectors(folder) for name, folder in runs.items()}
    trainers = {name: read_json(Path(folder) / "stats.json") for name, folder in runs.items()}
    main = ("jaxgram", "gensim")
    result: dict = {"trainers": trainers, "benchmarks": {}, "probes": {}, "agreement": {}, "figures": {}}
    for name in main:
        step(f"benchmarks {name}")
        result["benchmarks"][name] = benchmarks.run_benchmarks(models[name], settings.restrict_vocab)
        result["probes"][name] = run_probes(models[name], probes)
    comparisons = {"jaxgram_vs_gensim": ("jaxgram", "gensim"),
                   "gensim_a_vs_b": ("gensim", "gensim_b"),
                   "jaxgram_a_vs_b": ("jaxgram", "jaxgram_b")}
    for label, (left, right) in comparisons.items():
        if left in models and right in models:
            step(f"agreement {label}")
            result["agreement"][label] = agreement.compare(
                models[left], models[right], settings.overlap_words, settings.overlap_k,
                settings.cosine_pairs, settings.pairs_seed)
    step("figures")
    initial = load_initial(runs["jaxgram"], models["jaxgram"].index_to_key)
    result["figures"] = {
        "pca": {"jaxgram_before": pca_2d(initial, probes.plot_words),
                "jaxgram_after": pca_2d(models["jaxgram"], probes.plot_words),
                "gensim_after": pca_2d(models["gensim"], probes.plot_words)},
        "heatmap": {name: cosine_matrix(models[name], probes.plot_words) for name in main},
        "loss_per_epoch": trainers["jaxgram"].get("loss_per_epoch", []),
    }
    return result
