"""Write the three notebooks from one reviewable script (nbformat), and run them (nbclient).

    python notebooks/build.py             # (re)write the .ipynb files, without outputs
    python notebooks/build.py --execute   # ... then run each with its FULL settings and save the outputs

The test suite (tests/test_notebooks.py) runs them with their small settings and checks that
the committed notebooks hold exactly the cells this script writes. Edit the cells here, not
in Jupyter, then rebuild and re-execute.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat

NOTEBOOK_DIR = Path(__file__).resolve().parent
# Environment variables the parameter cells read; the committed run clears them all.
SMALL_ENV = "JAXGRAM_NOTEBOOK_SMALL"
OUT_ENV = "JAXGRAM_NOTEBOOK_OUT"
MIRROR_ENV = "JAXGRAM_MIRROR"
PARAMETER_ENV = (SMALL_ENV, OUT_ENV, MIRROR_ENV)


def md(text: str):
    return ("markdown", text.strip("\n"), ())


def code(text: str, *tags: str):
    return ("code", text.strip("\n"), tags)


# -- cells shared by the notebooks (one source, written into each) ------------------------

SETUP = r'''
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import jaxgram
from eval.report import Table, render_markdown

# The trainer imports tqdm.auto even with progress=False; without ipywidgets that warns once.
warnings.filterwarnings("ignore", message="IProgress not found")

NOTEBOOK = "{name}"


def find_repo_root() -> Path:
    """The checkout this notebook runs in: the nearest folder above the working directory with
    pyproject.toml and jaxgram/ (else the folder above the imported jaxgram package)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "jaxgram").is_dir():
            return folder
    return Path(jaxgram.__file__).resolve().parent.parent


def shown(path) -> str:
    """A path as the reader should see it: relative to the checkout."""
    return os.path.relpath(Path(path).resolve(), REPO)


def show_table(headers, rows) -> None:
    """A Markdown table, rendered by the report module."""
    table = Table(tuple(map(str, headers)), tuple(tuple(str(cell) for cell in row) for row in rows))
    display(Markdown(render_markdown([table])))


REPO = find_repo_root()
OUT = Path(OUT) if OUT else REPO / "runs" / "notebooks" / NOTEBOOK  # runs/ is git-ignored
OUT.mkdir(parents=True, exist_ok=True)
plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})
print("outputs go to", shown(OUT))
'''

MIRROR_SETUP = r'''
# The Gutenberg copy beside the checkout (../shared/gutenberg) when there is one, else gutenberg.org.
LOCAL_MIRROR = REPO.parent / "shared" / "gutenberg"
if MIRROR is None and (LOCAL_MIRROR / "cache" / "epub").is_dir():
    MIRROR = os.path.relpath(LOCAL_MIRROR)  # relative to the working directory: no machine paths in the outputs
print("books from", "https://www.gutenberg.org" if MIRROR is None else MIRROR if "://" in MIRROR else shown(MIRROR))
'''


def parameters(lines: str, books: bool) -> tuple:
    """The cell tagged `parameters`: small settings under test, full settings for reading."""
    head = (
        "import os\n\n"
        f"# Quick settings when the test suite runs this notebook ({SMALL_ENV}=1), full settings otherwise.\n"
        f'SMALL = os.environ.get("{SMALL_ENV}") == "1"\n'
    )
    tail = f'OUT = os.environ.get("{OUT_ENV}")  # None: runs/notebooks/<this notebook> in the checkout\n'
    if books:
        tail += (f'MIRROR = os.environ.get("{MIRROR_ENV}")  # a mirror URL or folder; '
                 "None: ../shared/gutenberg if present, else gutenberg.org\n")
    return code(head + lines.strip("\n") + "\n" + tail, "parameters")


def setup(name: str, books: bool) -> tuple:
    source = SETUP.strip("\n").replace("{name}", name) + "\n"
    if books:
        source += MIRROR_SETUP
    return code(source)


# -- 01: seed 000 ----------------------------------------------------------------------------

NB01 = [
    md(r'''
# Embedding geometry: skip-gram from scratch

This notebook retraces the first reference article: a tiny skip-gram model trained with a **full softmax**
on a small, controlled corpus, to see what is real inside an embedding space. Not the axes (they have no
names, and a new random seed rotates them) but the geometry: cosines and neighbours, which survive.

Every step is a call into `jaxgram` (vocabulary, encoding, pair generation, the loss, training, geometry);
nothing here is a word2vec library.
'''),
    parameters('''
EPOCHS = 10 if SMALL else 30  # the toy model's training length (jaxgram.toy.TOY_CONFIG uses 30)
SEEDS = (1, 2)  # two random initialisations of the same model
''', books=False),
    setup("01_embedding_geometry", books=False),
    md(r'''
## 1. A controlled corpus

`jaxgram.toy` holds a corpus written for this project from a few templates. *Car* and *plane* share
every context (engines, passengers, speed); *boat* and *bicycle* share some of them; the animals share none.
The corpus is the teacher: whatever geometry appears below comes from these co-occurrences.
'''),
    code(r'''
from jaxgram.toy import TOY_CONFIG, toy_sentences

sentences = toy_sentences()
print(f"{len(sentences)} sentences, {sum(map(len, sentences))} tokens; every 12th one:")
for tokens in sentences[::12]:
    print("   ", " ".join(tokens))
'''),
    md(r'''
## 2. Vocabulary and index

Words become ids: the vocabulary is sorted by frequency (ties alphabetically), so ids do not depend on the
order of the corpus. This is the `vocab.tsv` file (`id word count`) that `jaxgram train` writes.
'''),
    code(r'''
from jaxgram.vocab import build_vocabulary

vocab = build_vocabulary(sentences, min_count=TOY_CONFIG.min_count)
print(f"V = {len(vocab)} words. The first lines of the index (id, word, count):")
print("".join(vocab.index_text().splitlines(keepends=True)[:10]) + "...")
'''),
    md(r'''
## 3. Encoding: the model only ever sees integers
'''),
    code(r'''
from jaxgram.vocab import encode

encoded = encode(sentences, vocab)
example = "the car moves fast".split()
print(" ".join(example), "->", [vocab.word_to_id[word] for word in example])
print(f"\nthe encoded corpus: {len(encoded.ids)} ids in {len(encoded.sentences())} sentences; the first three:")
for ids in encoded.sentences()[:3]:
    print("   ", " ".join(map(str, ids.tolist())))
'''),
    md(r'''
## 4. From sentences to training pairs

Skip-gram slides a window of size $w$ over each sentence and pairs every centre word with the words up to
$w$ positions to its left and right. Near the ends of a sentence there are fewer neighbours, so a sentence
of $T$ tokens gives

$$\text{pairs}(T, w) = \sum_{i=0}^{T-1} \big(\min(w, i) + \min(w, T-1-i)\big).$$

For *the car moves fast*, $T = 4$ and $w = 2$: $2 + 3 + 3 + 2 = 10$ pairs.
'''),
    code(r'''
from jaxgram.data import count_pairs, sentence_pairs, window_pairs

pairs = sentence_pairs(example, window=2)
print(f"count_pairs(T=4, w=2) = {count_pairs(len(example), 2)}; the pairs themselves ({len(pairs)}):")
print("   ", ", ".join(f"({center}, {context})" for center, context in pairs))
assert count_pairs(len(example), 2) == len(pairs) == 10

# The formula against the vectorised generator the trainer uses (fixed window, no subsampling).
centers, contexts = window_pairs(encoded.ids, encoded.sentence_ids, TOY_CONFIG.window, shrink=False)
formula = sum(count_pairs(len(tokens), TOY_CONFIG.window) for tokens in sentences)
print(f"\nwhole corpus, w = {TOY_CONFIG.window}: the formula says {formula} pairs, the generator makes {len(centers)}")
assert formula == len(centers)
'''),
    md(r'''
## 5. The model: two tables and a full softmax, D = 20

`Params(E, W)` holds two tables of shape $V \times D$: `E[c]` is the vector of word $c$ as a centre word,
`W[j]` the vector of word $j$ as a context word (the article writes $W$ as $D \times V$; its columns are our rows).
For a centre word the model scores every word of the vocabulary,

$$\text{logits} = W\,h,\quad h = E[c], \qquad P = \operatorname{softmax}(\text{logits}), \qquad
L = -\log P_t,$$

where $t$ is the context word the corpus actually shows.
'''),
    code(r'''
import jax
import jax.numpy as jnp

from jaxgram.init import init_params
from jaxgram.losses import softmax_pair_loss, softmax_rows_loss

V, D = len(vocab), TOY_CONFIG.dim
# Glorot, so that both tables start random and P is not uniform (word2vec's own scheme starts W at zero).
params = init_params(jax.random.PRNGKey(0), V, D, scheme="glorot")
center, context = vocab.word_to_id["car"], vocab.word_to_id["moves"]
h = params.E[center]
logits = params.W @ h
P = jax.nn.softmax(logits)
y = jax.nn.one_hot(context, V)
loss = float(softmax_pair_loss(params, center, context))
print(f"E {params.E.shape}, W {params.W.shape}")
print(f"pair (car, moves): loss {loss:.4f} = -log P(moves | car) = {float(-jnp.log(P[context])):.4f}")
'''),
    md(r'''
## 6. One training step is $P - y$

Differentiating $L = -\text{logit}_t + \log \sum_j e^{\text{logit}_j}$ gives $\partial L / \partial \text{logit}_j = P_j - y_j$,
where $y$ is the one-hot vector of the observed context word: the gap between the model's belief and the corpus.
`jax.grad` finds exactly that. By the chain rule every row of $W$ then moves by $(P_j - y_j)\,h$, and only the
centre row of $E$ moves, by $W^\top (P - y)$.
'''),
    code(r'''
# The pair loss as a function of the logits alone: with the identity as the output table,
# the "centre vector" the loss receives IS the logits vector.
grad_logits = jax.grad(softmax_rows_loss)(logits, jnp.eye(V), context)
print(f"max |dL/dlogits - (P - y)| = {float(jnp.max(jnp.abs(grad_logits - (P - y)))):.2e}")
assert jnp.allclose(grad_logits, P - y, atol=1e-6)

grads = jax.grad(softmax_pair_loss)(params, center, context)
assert jnp.allclose(grads.W, jnp.outer(P - y, h), atol=1e-5)  # every row of W moves
assert jnp.allclose(grads.E[center], params.W.T @ (P - y), atol=1e-5)  # the centre row of E moves ...
assert not jnp.any(jnp.delete(grads.E, center, axis=0))  # ... and no other row of E

learning_rate = 0.5
stepped = jax.tree_util.tree_map(lambda table, grad: table - learning_rate * grad, params, grads)
P_after = jax.nn.softmax(stepped.W @ stepped.E[center])
print(f"one SGD step (learning rate {learning_rate}): P(moves | car) {float(P[context]):.4f} -> {float(P_after[context]):.4f}")
assert P_after[context] > P[context]

order = np.argsort(-np.asarray(P - y))
figure, axis = plt.subplots(figsize=(11, 3))
axis.bar(range(V), np.asarray(P - y)[order], color=["C3" if i == context else "C0" for i in order])
axis.set_xticks(range(V), [vocab.words[i] for i in order], rotation=90, fontsize=7)
axis.set_ylabel("P - y")
axis.set_title("dL/dlogits for the pair (car, moves): the observed word is pushed up, every other word down a little")
plt.show()
'''),
    md(r'''
## 7. Train the same model twice, from two random seeds

`TOY_CONFIG` is the article's setup: full softmax, $D = 20$, window 2 (fixed, no subsampling), plain SGD.
Each run writes `jaxgram train`'s files (vectors, `E.npy`, `W.npy`, `vocab.tsv`, and the encoded corpus)
into the output folder.
'''),
    code(r'''
import dataclasses

from jaxgram import train

runs = {}
for seed in SEEDS:
    config = dataclasses.replace(TOY_CONFIG, seed=seed, epochs=EPOCHS)
    runs[seed] = train(sentences, config, out=OUT / f"seed{seed}", encoded_text=True, progress=False)
    losses = runs[seed].loss_per_epoch
    print(f"seed {seed}: mean loss per pair {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} epochs "
          f"({runs[seed].pairs_per_epoch[0]} pairs per epoch)")
print("files of the first run:", ", ".join(sorted(p.name for p in (OUT / f"seed{SEEDS[0]}").iterdir())))

figure, axis = plt.subplots(figsize=(6, 3))
for seed, run in runs.items():
    axis.plot(range(1, len(run.loss_per_epoch) + 1), run.loss_per_epoch, marker=".", label=f"seed {seed}")
axis.set_xlabel("epoch")
axis.set_ylabel("mean loss per pair")
axis.legend()
axis.grid(alpha=0.3)
plt.show()
'''),
    md(r'''
## 8. Cosine similarity: car and plane versus car and elephant
'''),
    code(r'''
embeddings = {seed: run.embeddings for seed, run in runs.items()}
probe_pairs = [("car", "plane"), ("car", "elephant"), ("car", "boat"), ("elephant", "lion"), ("fast", "loud")]
show_table(["pair", *(f"seed {seed}" for seed in SEEDS)],
           [(f"cos({a}, {b})", *(f"{e.similarity(a, b):+.3f}" for e in embeddings.values())) for a, b in probe_pairs])
show_table(["word", *(f"seed {seed}: 5 nearest words" for seed in SEEDS)],
           [(word, *(", ".join(w for w, _ in e.most_similar(word, topn=5)) for e in embeddings.values()))
            for word in ("car", "elephant", "fast", "grass")])
'''),
    md(r'''
## 9. Axes rotate, geometry survives

Both runs use the same vocabulary ids, so their tables can be compared row by row. The raw coordinates
of a word have nothing in common across the two runs, and no dimension of one run matches a dimension of
the other; yet the cosine of every word pair, and the nearest neighbours, come out nearly the same.
'''),
    code(r'''
from itertools import combinations

from eval.agreement import cosine_spearman
from jaxgram.geometry import coordinate_correlation, neighbour_overlap

first, second = (embeddings[seed] for seed in SEEDS)
assert first.index_to_key == second.index_to_key
words = first.index_to_key
A, B = first.vectors, second.vectors

show_table(["", *(f"dim {d}" for d in range(1, 7))],
           [(f"car, seed {seed}", *(f"{value:+.2f}" for value in embeddings[seed]["car"][:6])) for seed in SEEDS])

all_pairs = np.array(list(combinations(range(len(words)), 2)))
coordinates_r = coordinate_correlation(A, B)
cosines_rho = cosine_spearman(first, second, words, all_pairs)
overlap = neighbour_overlap(first, second, words, k=5)
show_table(["measure (seed 1 vs seed 2)", "value", "reads as"], [
    ("correlation of raw coordinates, entry by entry", f"{coordinates_r:+.3f}", "axes are arbitrary"),
    (f"Spearman of the cosines of all {len(all_pairs)} word pairs", f"{cosines_rho:+.3f}", "angles survive"),
    ("top-5 neighbour overlap (mean Jaccard over all words)", f"{overlap:.3f}", "neighbourhoods survive"),
])

unit_a = A / np.linalg.norm(A, axis=1, keepdims=True)
unit_b = B / np.linalg.norm(B, axis=1, keepdims=True)
figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
axes[0].scatter(A.ravel(), B.ravel(), s=3, alpha=0.4)
axes[0].set(title=f"raw coordinates (r = {coordinates_r:+.2f})", xlabel=f"seed {SEEDS[0]}", ylabel=f"seed {SEEDS[1]}")
dimensions = np.corrcoef(A.T, B.T)[:D, D:]
image = axes[1].imshow(dimensions, cmap="RdBu_r", vmin=-1, vmax=1)
axes[1].set(title="correlation of dimension i (seed 1)\nwith dimension j (seed 2)", xlabel="j", ylabel="i")
figure.colorbar(image, ax=axes[1], fraction=0.046)
rows, cols = all_pairs.T
axes[2].scatter((unit_a[rows] * unit_a[cols]).sum(1), (unit_b[rows] * unit_b[cols]).sum(1), s=3, alpha=0.4)
axes[2].set(title=f"cosine of every word pair (Spearman {cosines_rho:+.2f})", xlabel=f"seed {SEEDS[0]}", ylabel=f"seed {SEEDS[1]}")
figure.tight_layout()
plt.show()
'''),
    md(r'''
## 10. Orthogonal Procrustes: one rotation maps one run onto the other

If the geometry is the same and only the basis changed, a single orthogonal matrix $R$ (a rotation, possibly
with a reflection) should carry run 1 onto run 2: $R = \arg\min_{R^\top R = I} \lVert A R - B \rVert$, found
from the SVD of $A^\top B$. `jaxgram.geometry.procrustes_residual` reports $\lVert A R - B \rVert / \lVert B \rVert$
on unit-length rows: 0 for the same geometry, larger for unrelated tables (up to about $\sqrt 2$ when there are
many more words than dimensions; with 46 words in 20 dimensions a rotation fits part of any two tables, so two
*untrained* initialisations give the baseline for "unrelated").
'''),
    code(r'''
from scipy.linalg import orthogonal_procrustes

from jaxgram.geometry import procrustes_residual

rotation, _ = orthogonal_procrustes(unit_a, unit_b)
aligned = unit_a @ rotation
residual = procrustes_residual(A, B)
# scipy's R is the one jaxgram.geometry uses
assert np.isclose(np.linalg.norm(aligned - unit_b) / np.linalg.norm(unit_b), residual, atol=1e-6)
assert np.allclose(rotation.T @ rotation, np.eye(D), atol=1e-6)
untrained = procrustes_residual(*(runs[seed].initial_params.E for seed in SEEDS))
show_table(["seed 1 vs seed 2", "before alignment", "after rotating seed 1 by R"], [
    ("correlation of coordinates (unit rows)", f"{coordinate_correlation(unit_a, unit_b):+.3f}",
     f"{coordinate_correlation(aligned, unit_b):+.3f}"),
    ("Procrustes residual, trained runs", "", f"{residual:.3f}"),
    ("Procrustes residual, the two untrained initialisations", "", f"{untrained:.3f}"),
])
print(f"det R = {np.linalg.det(rotation):+.0f} ({'a rotation' if np.linalg.det(rotation) > 0 else 'a rotation with a reflection'})")

figure, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True, sharey=True)
for axis, left, title in ((axes[0], unit_a, "before: seed 1 as trained"), (axes[1], aligned, "after: seed 1 rotated by R")):
    axis.scatter(left.ravel(), unit_b.ravel(), s=3, alpha=0.4)
    axis.set(title=title, xlabel="seed 1 coordinate", ylabel="seed 2 coordinate")
    axis.grid(alpha=0.3)
plt.show()
'''),
    md(r'''
## 11. The whole experiment in one call

`jaxgram.toy.run_toy` (and the command `jaxgram toy`) runs sections 7 to 10 in one go:
'''),
    code(r'''
from jaxgram.toy import run_toy

print(run_toy(seeds=SEEDS, config=dataclasses.replace(TOY_CONFIG, epochs=EPOCHS)).format())
'''),
    md(r'''
**What to take away.** No coordinate of a trained embedding means anything on its own: retrain with another
seed and dimension 1 becomes some mixture of all twenty. What the corpus determines is the geometry: the angles
between words and therefore their neighbours, which agree across runs and line up after a single rotation.
'''),
]


# -- 02: seed 004 ----------------------------------------------------------------------------

NB02 = [
    md(r'''
# Word embeddings on Dostoevsky

The second reference article trained skip-gram with negative sampling on five Dostoevsky novels (about
a million words) in NumPy loops: two tables, $D = 32$, 5 negatives drawn from the unigram distribution
raised to 0.75, 20 epochs, 30+ hours on a laptop. Here the same experiment runs with `ingest` and `jaxgram`
in minutes. The settings are read from `eval/configs/seed004.toml`, the file `jaxgram pipeline --config seed004` uses.

Then the article's ablation: it first used **one shared table** for the centre and context roles, saw
*love* line up with *crime*, and switched to two tables. Section 5 shows what one table does here.
'''),
    parameters('''
EPOCHS = 1 if SMALL else 20  # the article trains for 20 epochs
''', books=True),
    setup("02_dostoevsky", books=True),
    md(r'''
## 1. Ingest the five books

`ingest_books` downloads (or reuses its cache), strips the Project Gutenberg header, footer and licence,
and writes one tokenised sentence per line.
'''),
    code(r'''
import dataclasses

from eval.config import load_config
from ingest import ingest_books

ARTICLE = load_config("seed004")
report = ingest_books(ARTICLE.ingest.books, mirror=MIRROR, out=OUT / "ingest", fmt=ARTICLE.ingest.fmt, progress=False)
print("\n".join(line for line in report.summary().splitlines() if not line.startswith(("corpus:", "manifest:"))))
corpus = report.corpus_path
'''),
    md(r'''
## 2. Train with the article's settings
'''),
    code(r'''
from jaxgram import train

config = dataclasses.replace(ARTICLE.train, epochs=EPOCHS)
print(", ".join(f"{key}={value}" for key, value in config.to_dict().items()))
two_tables = train(corpus, config, progress=False)
print(f"\n{two_tables.corpus_words:,} words, {len(two_tables.vocab):,} in the vocabulary (min_count {config.min_count}); "
      f"epochs: {config.epochs}, trained in {two_tables.wall_seconds:.0f} s ({two_tables.words_per_second:,.0f} words/s)")
print("mean loss per pair by epoch:", " ".join(f"{loss:.3f}" for loss in two_tables.loss_per_epoch))
'''),
    md(r'''
## 3. The chosen words before and after training (PCA)

The words are the probe words of `eval/probes.toml`. Before training the vectors are the random initial
table `E`; a 2-D projection only hints at the geometry, so section 4 measures it with cosines.
'''),
    code(r'''
from eval.evaluate import pca_2d
from eval.probes import load_probes
from jaxgram import Embeddings

PROBES = load_probes(ARTICLE.probes_path)
WORDS = PROBES.plot_words
before = Embeddings(two_tables.vocab.words, two_tables.initial_params.E)
after = two_tables.embeddings


def plot_pca(panels: dict) -> None:
    """One PCA panel per model: the probe words projected on their first two principal components."""
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5))
    for axis, (title, embeddings) in zip(np.atleast_1d(axes), panels.items()):
        pca = pca_2d(embeddings, WORDS)
        xy = np.asarray(pca["xy"])
        axis.scatter(xy[:, 0], xy[:, 1], s=16)
        for word, (x, y) in zip(pca["words"], xy):
            axis.annotate(word, (x, y), fontsize=9, xytext=(3, 3), textcoords="offset points")
        explained = pca["explained"]
        axis.set_title(f"{title}\nPC1 {explained[0]:.0%}, PC2 {explained[1]:.0%} of the variance", fontsize=10)
        axis.grid(alpha=0.3)
    plt.show()


plot_pca({"before training (initial E)": before, f"after {config.epochs} epochs (E)": after})
'''),
    md(r'''
## 4. Cosine tables

The article: "murder moves close to crime, punishment, and death", and "school, university, and monastery
cluster together".
'''),
    code(r'''
from itertools import combinations

GROUPS = (("murder", "crime", "punishment", "death"), ("school", "university", "monastery"))


def cosine_rows(models: dict, pairs) -> list:
    return [(f"cos({a}, {b})", *(f"{m.similarity(a, b):+.3f}" for m in models.values())) for a, b in pairs]


def neighbour_rows(models: dict, words, topn: int = 8) -> list:
    return [(word, *(", ".join(w for w, _ in m.most_similar(word, topn=topn)) for m in models.values())) for word in words]


trained = {"before training": before, "after training": after}
for group in GROUPS:
    show_table(["pair", *trained], cosine_rows(trained, combinations(group, 2)))
show_table(["word", "8 nearest words after training"], neighbour_rows({"after": after}, [w for g in GROUPS for w in g] + ["love"]))
'''),
    md(r'''
## 5. Ablation: one shared table instead of two

With `tied=True` a single table plays both roles: a word's centre vector is also its context vector. The
article reported that this made *love* align with *crime* and "every word look similar". Same corpus, same
settings, same seed; only `tied` changes.
'''),
    code(r'''
tied = train(corpus, dataclasses.replace(config, tied=True), progress=False)
models = {"two tables (E, W)": two_tables.embeddings, "one shared table": tied.embeddings}


def rank_of(embeddings, word: str, other: str) -> int:
    """Position of `other` among the nearest words of `word` (1 = nearest)."""
    return 1 + [w for w, _ in embeddings.most_similar(word, topn=len(embeddings))].index(other)


def mean_cosine(embeddings, n: int = 1000) -> float:
    """Mean cosine between distinct words among the n most frequent: how much everything looks alike."""
    top = np.asarray(embeddings.vectors[:n], dtype=np.float64)
    unit = top / np.linalg.norm(top, axis=1, keepdims=True)
    cosines = unit @ unit.T
    return float((cosines.sum() - n) / (n * (n - 1)))


pairs = list(PROBES.cosine_pairs) + [pair for group in GROUPS for pair in combinations(group, 2)]
show_table(["pair", *models], cosine_rows(models, dict.fromkeys(map(tuple, pairs))))
show_table(["", *models], [
    ("rank of crime among the neighbours of love", *(rank_of(m, "love", "crime") for m in models.values())),
    ("mean cosine among the 1000 most frequent words", *(f"{mean_cosine(m):+.3f}" for m in models.values())),
    ("final mean loss per pair", *(f"{run.loss_per_epoch[-1]:.3f}" for run in (two_tables, tied))),
])
show_table(["word", *(f"{name}: 8 nearest" for name in models)], neighbour_rows(models, ["love", "crime", "murder", "school"]))

two, one = (m.similarity("love", "crime") for m in models.values())
print(f"cos(love, crime): two tables {two:+.3f}, one shared table {one:+.3f}: "
      f"{'higher' if one > two else 'lower'} with one table, in this run.")
'''),
    code(r'''
figure, axis = plt.subplots(figsize=(6, 3))
for name, run in zip(models, (two_tables, tied)):
    axis.plot(range(1, len(run.loss_per_epoch) + 1), run.loss_per_epoch, marker=".", label=name)
axis.set(xlabel="epoch", ylabel="mean loss per pair", title="negative-sampling loss")
axis.legend()
axis.grid(alpha=0.3)
plt.show()
plot_pca(models)
'''),
    md(r'''
## What the ablation shows here

The committed outputs above are from the full run (20 epochs); a different seed or corpus moves the numbers a little.

- **The article's failure does not show up here.** With one shared table, *crime* is not among the nearest words
  of *love* (those stay *suffer, loves, loved, happiness, ...*), and cos(love, crime) is *lower* than with two tables.
- **Cosines are lower across the board with one table**, partly because two-table word2vec vectors share a common
  direction (a clearly positive mean cosine among frequent words) while the shared-table vectors do not (mean cosine
  about 0): the opposite of "every word looks similar". Ranks remove that offset: by rank, *crime* sits somewhat
  closer to *love* with one table, yet still about a thousand words away.
- **What one table does cost is the fit.** Its loss stays far above the two-table loss. The score of a pair becomes
  the symmetric $E_c \cdot E_t$, so words that occur *next to each other* are pulled towards each other directly,
  instead of words that occur *in the same contexts* being pulled towards the same context vectors. The neighbours
  drift accordingly (school: *boarding, province, ...* rather than *gymnasium, university*), and the probe groups
  (murder/crime/punishment/death, school/university/monastery) are looser.

So two tables are the better choice here too, but for a different reason than the one the article gives; this
notebook cannot tell why its single-table run put *love* next to *crime*.
'''),
]


# -- 03: jaxgram vs gensim -------------------------------------------------------------------

NB03 = [
    md(r'''
# jaxgram versus gensim Word2Vec

The same five books and the same settings as the Dostoevsky notebook (`eval/configs/seed004.toml`: skip-gram,
negative sampling, $D = 32$, 5 negatives, 20 epochs), trained once by jaxgram and once by gensim's `Word2Vec`,
then compared. Each trainer runs in its own child process, so wall time and peak memory are its own.
A second seed of each trainer gives the **noise floors**: how much a trainer agrees with itself when only the
random seed changes. jaxgram and gensim cannot be expected to agree more than that.

Everything is `eval.pipeline.run_pipeline`, the function behind `jaxgram pipeline --config seed004`
(and `make run CONFIG=seed004`); this notebook shows its results. A rerun reuses every finished stage.
'''),
    parameters('''
EPOCHS = 1 if SMALL else 20  # the article trains for 20 epochs
''', books=True),
    setup("03_jaxgram_vs_gensim", books=True),
    code(r'''
from eval.baseline import baseline_note
from eval.config import load_config
from eval.pipeline import run_pipeline

config = load_config("seed004").with_train(epochs=EPOCHS)
print(baseline_note(config.train), "\n")
result = run_pipeline(config, out=OUT, mirror=MIRROR, progress=False, log=print)
metrics = result.metrics
print("\nthe full report:", shown(result.report_path))
'''),
    code(r'''
from IPython.display import Image

from eval import report

BLOCKS = report.build_blocks(metrics)


def show_section(title_start: str) -> None:
    """The report's section whose heading starts with `title_start`: tables as Markdown, figures as PNG."""
    start = next(i for i, block in enumerate(BLOCKS)
                 if isinstance(block, report.Heading) and block.text.startswith(title_start))
    end = next((i for i in range(start + 1, len(BLOCKS)) if isinstance(BLOCKS[i], report.Heading)), len(BLOCKS))
    pending = []
    for block in BLOCKS[start:end]:
        if isinstance(block, report.Image):
            if pending:
                display(Markdown(report.render_markdown(pending)))
                pending = []
            display(Image(data=block.png))
        else:
            pending.append(block)
    if pending:
        display(Markdown(report.render_markdown(pending)))
'''),
    md(r'''
## 1. The metric table

Google analogies, WordSim-353 and SimLex-999 are general-English benchmarks; a 19th-century novelist's
vocabulary misses most of their words (countries, currencies, modern nouns), so only a small share of the
questions can be asked at all, and the scores are low for both trainers. They still compare the two on equal terms.
'''),
    code(r'''
show_section("Summary")
show_section("Analogies per section")
'''),
    md(r'''
## 2. Neighbour overlap against the noise floors
'''),
    code(r'''
show_section("Agreement")

agreement = metrics["agreement"]
labels = {"jaxgram_vs_gensim": "jaxgram vs gensim", "jaxgram_a_vs_b": "jaxgram: seed A vs B",
          "gensim_a_vs_b": "gensim: seed A vs B"}
measures = {"overlap_at_k": f"neighbour overlap@{config.eval.overlap_k} (higher = closer)",
            "cosine_spearman": "Spearman of cosines (higher = closer)",
            "procrustes_residual": "Procrustes residual (lower = closer)"}
figure, axes = plt.subplots(1, len(measures), figsize=(13, 2.6), sharey=True)
for axis, (key, title) in zip(axes, measures.items()):
    axis.barh(list(labels.values()), [agreement[name][key] for name in labels], color=["C3", "C0", "C0"])
    axis.set_title(title, fontsize=10)
    axis.grid(axis="x", alpha=0.3)
figure.tight_layout()
plt.show()

cross = agreement["jaxgram_vs_gensim"]["overlap_at_k"]
floors = {name: agreement[key]["overlap_at_k"] for key, name in (("jaxgram_a_vs_b", "jaxgram"), ("gensim_a_vs_b", "gensim"))}
print(f"jaxgram and gensim share {cross:.1%} of their top-{config.eval.overlap_k} neighbours (Jaccard) over the "
      f"{agreement['jaxgram_vs_gensim']['overlap_words']:,} most frequent words; changing only the seed, "
      + ", ".join(f"{name} shares {value:.1%} with itself" for name, value in floors.items())
      + f". Cross-trainer agreement is {cross / max(floors.values()):.0%} of the higher noise floor.")
'''),
    md(r'''
## 3. Timing

Wall time is the whole train call in the child process (importing the trainer, building the vocabulary, JIT
compilation and training); "training loop" is the epochs only. Both trainers get the same machine: gensim uses
one worker thread per core, jaxgram runs XLA on the default JAX device.
'''),
    code(r'''
import jax

from eval.baseline import gensim_kwargs

trainers = metrics["trainers"]
names = [name for name in ("jaxgram", "gensim", "jaxgram_b", "gensim_b") if name in trainers]
print(f"this machine: {os.cpu_count()} CPU cores; JAX backend {jax.default_backend()}; "
      f"gensim workers {gensim_kwargs(config.train)['workers']}")
show_table(["run", "wall time (s)", "training loop (s)", "setup + compile (s)", "words/s (wall)", "peak RSS (MiB)"],
           [(name, f"{trainers[name]['wall_seconds']:.1f}", f"{trainers[name]['train_loop_seconds']:.1f}",
             f"{trainers[name]['wall_seconds'] - trainers[name]['train_loop_seconds']:.1f}",
             f"{trainers[name]['words_per_second']:,.0f}", f"{trainers[name]['peak_rss_mib']:.0f}") for name in names])

figure, axis = plt.subplots(figsize=(7, 2.6))
loops = [trainers[name]["train_loop_seconds"] for name in names]
axis.barh(names, loops, label="training loop")
axis.barh(names, [trainers[name]["wall_seconds"] - loop for name, loop in zip(names, loops)], left=loops,
          label="setup + compile")
axis.set_xlabel("seconds")
axis.invert_yaxis()
axis.legend(fontsize=8)
axis.grid(axis="x", alpha=0.3)
plt.show()
ratios = {name: trainers[f"{name}_b"]["wall_seconds"] / trainers[name]["wall_seconds"]
          for name in ("jaxgram", "gensim") if f"{name}_b" in trainers}
print("the same work with another seed took " + ", ".join(f"{ratio:.2f}x as long for {name}" for name, ratio in ratios.items())
      + ": read the timings with that spread in mind (other work on the machine shares its cores)")
show_table(["pipeline stage", "status", "seconds"],
           [(name, stage["status"], "-" if stage["seconds"] is None else f"{stage['seconds']:.1f}")
            for name, stage in result.stages.items()])
'''),
    md(r'''
## 4. The seed probes, side by side

(The cosine heatmap of the probe words is in the full report, `report.html` in the output folder.)
'''),
    code(r'''
show_section("Seed probes")
show_section("Probe words before and after")
show_section("jaxgram loss")
'''),
]

NOTEBOOKS = {
    "01_embedding_geometry": NB01,
    "02_dostoevsky": NB02,
    "03_jaxgram_vs_gensim": NB03,
}


def build(cells) -> nbformat.NotebookNode:
    """A notebook without outputs; cell ids are fixed so a rebuild changes nothing."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    for index, (kind, source, tags) in enumerate(cells):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(source, id=f"cell-{index:02d}")
        if tags:
            cell.metadata["tags"] = list(tags)
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def path_of(name: str) -> Path:
    return NOTEBOOK_DIR / f"{name}.ipynb"


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
        notebook = build(NOTEBOOKS[name])
        if args.execute:
            began = time.perf_counter()
            execute(notebook, full_environment())
            print(f"{name}: executed in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        nbformat.write(notebook, path_of(name))
        print(f"wrote {path_of(name)} ({path_of(name).stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
