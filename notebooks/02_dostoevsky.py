# %% [markdown]
# # Word embeddings on Dostoevsky
#
# The Dostoevsky article trained skip-gram with negative sampling on five Dostoevsky novels (about
# a million words) in NumPy loops: two tables, $D = 32$, 5 negatives drawn from the unigram distribution
# raised to 0.75, 20 epochs, 30+ hours on a laptop. Here the same experiment runs with `ingest` and `jaxgram`
# in minutes. The settings are read from `eval/configs/dostoevsky.toml`, the file `jaxgram pipeline --config dostoevsky` uses.
#
# Then the article's ablation: it first used **one shared table** for the centre and context roles, saw
# *love* line up with *crime*, and switched to two tables. Section 5 shows what one table does here.

# %% tags=["parameters"]
import os

# Quick settings when the test suite runs this notebook (JAXGRAM_NOTEBOOK_SMALL=1), full settings otherwise.
SMALL = os.environ.get("JAXGRAM_NOTEBOOK_SMALL") == "1"
EPOCHS = 1 if SMALL else 20  # the article trains for 20 epochs
OUT = os.environ.get("JAXGRAM_NOTEBOOK_OUT")  # None: runs/notebooks/<this notebook> in the checkout
MIRROR = os.environ.get("JAXGRAM_MIRROR")  # a mirror URL or folder; None: ../shared/gutenberg if present, else gutenberg.org

# %%

import matplotlib.pyplot as plt

from eval.figures import notebook_setup, show_table
from jaxgram import configure_cpu_workers

# A kernel is a process start, like `jaxgram train`'s: before any JAX work, set up the process for
# training (the fused kernel's worker threads default to the usable cores).
configure_cpu_workers()

REPO, OUT, MIRROR = notebook_setup("02_dostoevsky", OUT, MIRROR, books=True)

# %% [markdown]
# ## 1. Ingest the five books
#
# `ingest_books` downloads (or reuses its cache), strips the Project Gutenberg header, footer and licence,
# and writes one tokenised sentence per line.

# %%
import dataclasses

from eval.config import load_config
from ingest import ingest_books

ARTICLE = load_config("dostoevsky")
report = ingest_books(ARTICLE.ingest.books, mirror=MIRROR, out=OUT / "ingest", fmt=ARTICLE.ingest.fmt, progress=False)
print("\n".join(line for line in report.summary().splitlines() if not line.startswith(("corpus:", "manifest:"))))
corpus = report.corpus_path

# %% [markdown]
# ## 2. Train with the article's settings

# %%
from jaxgram import train

config = dataclasses.replace(ARTICLE.train, epochs=EPOCHS)
print(", ".join(f"{key}={value}" for key, value in config.to_dict().items()))
two_tables = train(corpus, config, progress=False)
print(f"\n{two_tables.corpus_words:,} words, {len(two_tables.vocab):,} in the vocabulary (min_count {config.min_count}); "
      f"epochs: {config.epochs}, trained in {two_tables.wall_seconds:.0f} s ({two_tables.words_per_second:,.0f} words/s)")
print("mean loss per pair by epoch:", " ".join(f"{loss:.3f}" for loss in two_tables.loss_per_epoch))

# %% [markdown]
# ## 3. The chosen words before and after training (PCA)
#
# The words are the probe words of `eval/probes.toml`. Before training the vectors are the random initial
# table `E`; a 2-D projection only hints at the geometry, so section 4 measures it with cosines.

# %%
from eval.figures import notebook_setup, plot_pca
from eval.probes import load_probes
from jaxgram import Embeddings

PROBES = load_probes(ARTICLE.probes_path)
WORDS = PROBES.plot_words
before = Embeddings(two_tables.vocab.words, two_tables.initial_params.E)
after = two_tables.embeddings
plot_pca({"before training (initial E)": before, f"after {config.epochs} epochs (E)": after}, WORDS)

# %% [markdown]
# ## 4. Cosine tables
#
# The article: "murder moves close to crime, punishment, and death", and "school, university, and monastery
# cluster together".

# %%
from itertools import combinations

from eval.figures import cosine_rows, neighbour_rows, notebook_setup

GROUPS = (("murder", "crime", "punishment", "death"), ("school", "university", "monastery"))
trained = {"before training": before, "after training": after}
for group in GROUPS:
    show_table(["pair", *trained], cosine_rows(trained, combinations(group, 2)))
probe_words = [word for group in GROUPS for word in group] + ["love"]
show_table(["word", "8 nearest words after training"], neighbour_rows({"after": after}, probe_words))

# %% [markdown]
# ## 5. Ablation: one shared table instead of two
#
# With `tied=True` a single table plays both roles: a word's centre vector is also its context vector. The
# article reported that this made *love* align with *crime* and "every word look similar". Same corpus, same
# settings, same seed; only `tied` changes.

# %%
from eval.figures import mean_cosine, notebook_setup, rank_of

tied = train(corpus, dataclasses.replace(config, tied=True), progress=False)
models = {"two tables (E, W)": two_tables.embeddings, "one shared table": tied.embeddings}
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

# %%
figure, axis = plt.subplots(figsize=(6, 3))
for name, run in zip(models, (two_tables, tied)):
    axis.plot(range(1, len(run.loss_per_epoch) + 1), run.loss_per_epoch, marker=".", label=name)
axis.set(xlabel="epoch", ylabel="mean loss per pair", title="negative-sampling loss")
axis.legend()
axis.grid(alpha=0.3)
plt.show()
plot_pca(models, WORDS)

# %% [markdown]
# ## What the ablation shows here
#
# The committed outputs above are from the full run (20 epochs); a different seed or corpus moves the numbers a little.
#
# - **The article's failure does not show up here.** With one shared table, *crime* is not among the nearest words
#   of *love* (the table above lists them: words of its own family and of feeling, such as *loves* and *loved*), and
#   cos(love, crime) is *lower* than with two tables.
# - **Cosines are lower across the board with one table**, partly because two-table word2vec vectors share a common
#   direction (a clearly positive mean cosine among frequent words) while the shared-table vectors do not (mean cosine
#   about 0): the opposite of "every word looks similar". Ranks remove that offset: by rank, *crime* sits closer to
#   *love* with one table, yet still more than a thousand words away.
# - **What one table does cost is the fit.** Its loss stays far above the two-table loss. The score of a pair becomes
#   the symmetric $E_c \cdot E_t$, so words that occur *next to each other* are pulled towards each other directly,
#   instead of words that occur *in the same contexts* being pulled towards the same context vectors. The neighbours
#   drift accordingly (compare *school*'s in the table above: with two tables words of the life around it, such as
#   *gymnasium* and *moscow*, with one the words of its own sentences), and the probe groups
#   (murder/crime/punishment/death, school/university/monastery) are looser.
#
# So two tables are the better choice here too, but for a different reason than the one the article gives; this
# notebook cannot tell why its single-table run put *love* next to *crime*.
