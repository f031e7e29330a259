# %% [markdown]
# # Embedding geometry: skip-gram from scratch
#
# This notebook retraces the Embedding Geometry article: a tiny skip-gram model trained with a **full softmax**
# on a small, controlled corpus, to see what is real inside an embedding space. Not the axes (they have no
# names, and a new random seed rotates them) but the geometry: cosines and neighbours, which survive.
#
# Every step is a call into `jaxgram` (vocabulary, encoding, pair generation, the loss, training, geometry);
# nothing here is a word2vec library.

# %% tags=["parameters"]
import os

# Quick settings when the test suite runs this notebook (JAXGRAM_NOTEBOOK_SMALL=1), full settings otherwise.
SMALL = os.environ.get("JAXGRAM_NOTEBOOK_SMALL") == "1"
EPOCHS = 10 if SMALL else 30  # the toy model's training length (jaxgram.toy.TOY_CONFIG uses 30)
SEEDS = (1, 2)  # two random initialisations of the same model
OUT = os.environ.get("JAXGRAM_NOTEBOOK_OUT")  # None: runs/notebooks/<this notebook> in the checkout

# %%

import matplotlib.pyplot as plt
import numpy as np

from eval.figures import notebook_setup, show_table

REPO, OUT, _ = notebook_setup("01_embedding_geometry", OUT)

# %% [markdown]
# ## 1. A controlled corpus
#
# `jaxgram.toy` holds a corpus written for this project from a few templates. *Car* and *plane* share
# every context (engines, passengers, speed); *boat* and *bicycle* share some of them; the animals share none.
# The corpus is the teacher: whatever geometry appears below comes from these co-occurrences.

# %%
from jaxgram.toy import TOY_CONFIG, toy_sentences

sentences = toy_sentences()
print(f"{len(sentences)} sentences, {sum(map(len, sentences))} tokens; every 12th one:")
for tokens in sentences[::12]:
    print("   ", " ".join(tokens))

# %% [markdown]
# ## 2. Vocabulary and index
#
# Words become ids: the vocabulary is sorted by frequency (ties alphabetically), so ids do not depend on the
# order of the corpus. This is the `vocab.tsv` file (`id word count`) that `jaxgram train` writes.

# %%
from jaxgram.vocab import build_vocabulary

vocab = build_vocabulary(sentences, min_count=TOY_CONFIG.min_count)
print(f"V = {len(vocab)} words. The first lines of the index (id, word, count):")
print("".join(vocab.index_text().splitlines(keepends=True)[:10]) + "...")

# %% [markdown]
# ## 3. Encoding: the model only ever sees integers

# %%
from jaxgram.vocab import encode

encoded = encode(sentences, vocab)
example = ["the", "car", "moves", "fast"]
print(" ".join(example), "->", [vocab.word_to_id[word] for word in example])
print(f"\nthe encoded corpus: {len(encoded.ids)} ids in {len(encoded.sentences())} sentences; the first three:")
for ids in encoded.sentences()[:3]:
    print("   ", " ".join(map(str, ids.tolist())))

# %% [markdown]
# ## 4. From sentences to training pairs
#
# Skip-gram slides a window of size $w$ over each sentence and pairs every centre word with the words up to
# $w$ positions to its left and right. Near the ends of a sentence there are fewer neighbours, so a sentence
# of $T$ tokens gives
#
# $$\text{pairs}(T, w) = \sum_{i=0}^{T-1} \big(\min(w, i) + \min(w, T-1-i)\big).$$
#
# For *the car moves fast*, $T = 4$ and $w = 2$: $2 + 3 + 3 + 2 = 10$ pairs.

# %%
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

# %% [markdown]
# ## 5. The model: two tables and a full softmax, D = 20
#
# `Params(E, W)` holds two tables of shape $V \times D$: `E[c]` is the vector of word $c$ as a centre word,
# `W[j]` the vector of word $j$ as a context word (the article writes $W$ as $D \times V$; its columns are our rows).
# For a centre word the model scores every word of the vocabulary,
#
# $$\text{logits} = W\,h,\quad h = E[c], \qquad P = \operatorname{softmax}(\text{logits}), \qquad
# L = -\log P_t,$$
#
# where $t$ is the context word the corpus actually shows.

# %%
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

# %% [markdown]
# ## 6. One training step is $P - y$
#
# Differentiating $L = -\text{logit}_t + \log \sum_j e^{\text{logit}_j}$ gives $\partial L / \partial \text{logit}_j = P_j - y_j$,
# where $y$ is the one-hot vector of the observed context word: the gap between the model's belief and the corpus.
# `jax.grad` finds exactly that. By the chain rule every row of $W$ then moves by $(P_j - y_j)\,h$, and only the
# centre row of $E$ moves, by $W^\top (P - y)$.

# %%
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

# %% [markdown]
# ## 7. Train the same model twice, from two random seeds
#
# `TOY_CONFIG` is the article's setup: full softmax, $D = 20$, window 2 (fixed, no subsampling), plain SGD.
# Each run writes `jaxgram train`'s files into the output folder: by default the binary vectors, the vocabulary,
# config, loss and checkpoint; here also the text vectors, `E.npy` and `W.npy` and the encoded corpus, which the
# article looks at (`save=`, `--save` on the command line; the cell below lists them all).

# %%
import dataclasses

from jaxgram import train

runs = {}
for seed in SEEDS:
    config = dataclasses.replace(TOY_CONFIG, seed=seed, epochs=EPOCHS)
    runs[seed] = train(sentences, config, out=OUT / f"seed{seed}", save="bin,txt,npy,corpus", encoded_text=True,
                       progress=False)
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

# %% [markdown]
# ## 8. Cosine similarity: car and plane versus car and elephant

# %%
from eval.figures import cosine_rows, neighbour_rows, notebook_setup

embeddings = {seed: run.embeddings for seed, run in runs.items()}
probe_pairs = [("car", "plane"), ("car", "elephant"), ("car", "boat"), ("elephant", "lion"), ("fast", "loud")]
show_table(["pair", *(f"seed {seed}" for seed in SEEDS)], cosine_rows(embeddings, probe_pairs))
show_table(["word", *(f"seed {seed}: 5 nearest words" for seed in SEEDS)],
           neighbour_rows(embeddings, ("car", "elephant", "fast", "grass"), topn=5))

# %% [markdown]
# ## 9. Axes rotate, geometry survives
#
# Both runs use the same vocabulary ids, so their tables can be compared row by row. The raw coordinates
# of a word have nothing in common across the two runs, and no dimension of one run matches a dimension of
# the other; yet the cosine of every word pair, and the nearest neighbours, come out nearly the same.

# %%
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
axes[2].set(title=f"cosine of every word pair (Spearman {cosines_rho:+.2f})",
            xlabel=f"seed {SEEDS[0]}", ylabel=f"seed {SEEDS[1]}")
figure.tight_layout()
plt.show()

# %% [markdown]
# ## 10. Orthogonal Procrustes: one rotation maps one run onto the other
#
# If the geometry is the same and only the basis changed, a single orthogonal matrix $R$ (a rotation, possibly
# with a reflection) should carry run 1 onto run 2: $R = \arg\min_{R^\top R = I} \lVert A R - B \rVert$, found
# from the SVD of $A^\top B$. `jaxgram.geometry.procrustes_residual` reports $\lVert A R - B \rVert / \lVert B \rVert$
# on unit-length rows: 0 for the same geometry, larger for unrelated tables (up to about $\sqrt 2$ when there are
# many more words than dimensions; with 46 words in 20 dimensions a rotation fits part of any two tables, so two
# *untrained* initialisations give the baseline for "unrelated").

# %%
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
kind = "a rotation" if np.linalg.det(rotation) > 0 else "a rotation with a reflection"
print(f"det R = {np.linalg.det(rotation):+.0f} ({kind})")

figure, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True, sharey=True)
for axis, left, title in ((axes[0], unit_a, "before: seed 1 as trained"), (axes[1], aligned, "after: seed 1 rotated by R")):
    axis.scatter(left.ravel(), unit_b.ravel(), s=3, alpha=0.4)
    axis.set(title=title, xlabel="seed 1 coordinate", ylabel="seed 2 coordinate")
    axis.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 11. The whole experiment in one call
#
# `jaxgram.toy.run_toy` (and the command `jaxgram toy`) runs sections 7 to 10 in one go:

# %%
from jaxgram.toy import run_toy

print(run_toy(seeds=SEEDS, config=dataclasses.replace(TOY_CONFIG, epochs=EPOCHS)).format())

# %% [markdown]
# **What to take away.** No coordinate of a trained embedding means anything on its own: retrain with another
# seed and dimension 1 becomes some mixture of all twenty. What the corpus determines is the geometry: the angles
# between words and therefore their neighbours, which agree across runs and line up after a single rotation.
