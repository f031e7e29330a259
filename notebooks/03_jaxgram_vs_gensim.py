# %% [markdown]
# # jaxgram versus gensim Word2Vec
#
# The same five books and the same settings as the Dostoevsky notebook (`eval/configs/dostoevsky.toml`: skip-gram,
# negative sampling, $D = 32$, 5 negatives, 20 epochs), trained once by jaxgram and once by gensim's `Word2Vec`,
# then compared. Each trainer runs in its own child process, so wall time and peak memory are its own.
# A second seed of each trainer gives the **noise floors**: how much a trainer agrees with itself when only the
# random seed changes. jaxgram and gensim cannot be expected to agree more than that.
#
# Everything is `eval.pipeline.run_pipeline`, the function behind `jaxgram pipeline --config dostoevsky`
# (and `make run CONFIG=dostoevsky`); this notebook shows its results. A rerun reuses every finished stage.

# %% tags=["parameters"]
import os

# Quick settings when the test suite runs this notebook (JAXGRAM_NOTEBOOK_SMALL=1), full settings otherwise.
SMALL = os.environ.get("JAXGRAM_NOTEBOOK_SMALL") == "1"
EPOCHS = 1 if SMALL else 20  # the article trains for 20 epochs
OUT = os.environ.get("JAXGRAM_NOTEBOOK_OUT")  # None: runs/notebooks/<this notebook> in the checkout
MIRROR = os.environ.get("JAXGRAM_MIRROR")  # a mirror URL or folder; None: ../shared/gutenberg if present, else gutenberg.org

# %%

import matplotlib.pyplot as plt

from eval.figures import notebook_setup, show_table, shown

REPO, OUT, MIRROR = notebook_setup("03_jaxgram_vs_gensim", OUT, MIRROR, books=True)

# %%
from eval.baseline import baseline_note
from eval.config import load_config
from eval.pipeline import run_pipeline

config = load_config("dostoevsky").with_train(epochs=EPOCHS)
print(baseline_note(config.train), "\n")
result = run_pipeline(config, out=OUT, mirror=MIRROR, progress=False, log=print)
metrics = result.metrics
print("\nthe full report:", shown(result.report_path, REPO))

# %%
from eval import report
from eval.figures import notebook_setup, show_section

BLOCKS = report.build_blocks(metrics)

# %% [markdown]
# ## 1. The metric table
#
# Google analogies, WordSim-353 and SimLex-999 are general-English benchmarks; a 19th-century novelist's
# vocabulary misses most of their words (countries, currencies, modern nouns), so only a small share of the
# questions can be asked at all, and the scores are low for both trainers. They still compare the two on equal terms.

# %%
show_section(BLOCKS, "Summary")
show_section(BLOCKS, "Analogies per section")

# %% [markdown]
# ## 2. Neighbour overlap against the noise floors

# %%
show_section(BLOCKS, "Agreement")

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

# %% [markdown]
# ## 3. Timing
#
# Wall time is the whole train call in the child process (importing the trainer, building the vocabulary, JIT
# compilation and training); "training loop" is the epochs only. Both trainers get the same machine and the same
# worker threads (one per usable core), each walking its own share of the corpus: gensim's, and the threads of
# jaxgram's fused kernel.

# %%
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

# %% [markdown]
# ## 4. The seed probes, side by side
#
# (The cosine heatmap of the probe words is in the full report, `report.html` in the output folder.)

# %%
show_section(BLOCKS, "Seed probes")
show_section(BLOCKS, "Probe words before and after")
show_section(BLOCKS, "jaxgram loss")
