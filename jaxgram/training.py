"""The training loop: optax updates of the pure skip-gram losses, many steps per jit call.

Design choices:
- Objective = SUM of per-pair losses over the batch, not the mean: word2vec's alpha is
  a per-pair step size, and a mean would divide it by the batch size.
- For SGD (the default) the gradient is taken with respect to the rows a batch gathers
  (see gather_rows) and the optax update is scattered back into
  those rows only, so an ns step costs O(B·(C+K)·D), not O(V·D). Adam and Adagrad keep per-entry
  state for the whole table, so they differentiate the full tables (dense update).
- Training data come in centre groups: one row per centre with its (up to 2·window)
  context ids. Full softmax shares one softmax per centre, so the V logits are computed
  once per centre (losses.softmax_group_loss). Negative sampling follows word2vec's
  skip-gram (each context's input row predicts the centre's output row) with the K
  negatives shared by one centre's contexts (Ji et al. 2016, losses.ns_group_loss): per
  centre one gather/scatter of its context rows of E and of 1+K rows of W, and the
  scores are one small matrix product.
- Each jit call runs `steps_per_call` steps with lax.scan. With several local devices
  (on CPU: one per core, up to CPU_REPLICAS, claimed when this module is imported before
  JAX starts) sparse SGD runs data-parallel replicas, each on its own share of the call's
  batches; at the end of the call their table changes are summed (Hogwild-style, like
  gensim's workers, but applied once per call). XLA's CPU scatter is single-threaded, so
  this is what uses more than one core. One device (a GPU, or a single core) runs the
  same step unreplicated.
- Pairs for epoch e come from numpy's generator seeded with (seed, e), and the device key
  is part of the checkpoint, so a resumed run replays exactly what an uninterrupted one does.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgram import checkpoint
from jaxgram.config import TrainConfig
from jax.sharding import Mesh, PartitionSpec

from jaxgram.data import epoch_groups, keep_probabilities, noise_distribution, noise_table
from jaxgram.embeddings import Embeddings
from jaxgram.errors import ConfigError, DataError, TrainingDiverged
from jaxgram.fileio import atomic_open, atomic_write_json, atomic_write_text
from jaxgram.init import init_params
from jaxgram.losses import Params, ns_group_loss, softmax_group_loss
from jaxgram.vocab import (EncodedCorpus, Vocabulary, build_vocabulary, encode, read_sentences, save_encoded_npy,
                           save_encoded_text)

CHECKPOINT_DIR = "checkpoint"
# Steps per jit call; with replicas also the steps between two merges of their tables.
STEPS_PER_CALL = 64
# Host devices claimed on CPU (one per core): more replicas merged once per call would
# make frequent rows take several stale steps at once; 2 is what has been measured.
CPU_REPLICAS = 2


def _claim_cpu_cores() -> None:
    """Ask for one CPU device per core (up to CPU_REPLICAS) unless the user chose a count."""
    if jax.config.jax_num_cpu_devices != -1 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", max(1, min(CPU_REPLICAS, len(os.sched_getaffinity(0)))))
    except RuntimeError:
        pass  # JAX already runs (this module was imported late): keep its devices


_claim_cpu_cores()


@dataclass
class TrainResult:
    params: Params
    initial_params: Params
    vocab: Vocabulary
    embeddings: Embeddings
    loss_per_epoch: list[float]
    wall_seconds: float
    words_per_second: float
    corpus_words: int
    pairs_per_epoch: list[int]
    config: TrainConfig


class Carry(NamedTuple):
    trainable: Params  # W is None when the tables are tied
    opt_state: optax.OptState
    key: jax.Array


# -- the model: which rows a batch touches, and the loss of those rows ----------------------


def model_params(trainable: Params) -> Params:
    """The (E, W) pair the losses see; a tied model uses one table for both roles."""
    return Params(trainable.E, trainable.E if trainable.W is None else trainable.W)


def gather_rows(params: Params, objective: str, inputs, outputs):
    """ns: E rows of the contexts [B, C] and W rows of outputs [B, 1+K] (the centre, then its
    negatives). softmax: E rows of the centres [B] and the whole output table."""
    if objective == "ns":
        return params.E[inputs], params.W[outputs]
    return params.E[inputs], params.W


def rows_objective(rows, objective: str, contexts, mask):
    """Sum over the batch of the loss (masked rows are padding and count zero).

    One row per centre; contexts [B, C] its context ids (-1 = empty slot).
    """
    if objective == "ns":
        losses = jax.vmap(ns_group_loss)(rows[0], contexts >= 0, rows[1][:, 0], rows[1][:, 1:])
    else:
        losses = jax.vmap(softmax_group_loss, in_axes=(0, None, 0))(rows[0], rows[1], contexts)
    total = jnp.sum(losses * mask)
    return total, total


def scatter_rows(trainable: Params, updates, objective: str, inputs, outputs) -> Params:
    E, W = trainable.E, trainable.W
    tied = W is None
    E = E.at[inputs].add(updates[0])
    if objective == "ns":
        if tied:
            return Params(E.at[outputs].add(updates[1]), None)
        return Params(E, W.at[outputs].add(updates[1]))
    if tied:
        return Params(E + updates[1], None)
    return Params(E, W + updates[1])


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    schedule = optax.linear_schedule(config.alpha, config.min_alpha, max(total_steps, 1))
    return {"sgd": optax.sgd, "adam": optax.adam, "adagrad": optax.adagrad}[config.optimizer](schedule)


def make_step(config: TrainConfig, optimizer: optax.GradientTransformation, noise_ids: jax.Array,
              sparse: bool | None = None):
    """step(carry, (centers, contexts, mask)) -> (carry, summed loss): one optax update.

    `sparse` (default: only for SGD, whose update is stateless per entry) updates just the
    gathered rows; the result equals the dense update, which tests check.
    """
    objective = config.objective
    sparse = config.optimizer == "sgd" if sparse is None else sparse
    table_size = int(noise_ids.shape[0])
    if table_size & (table_size - 1) or table_size > 1 << 32:
        raise ValueError(f"the noise table must have a power-of-two size, got {table_size}")
    shift = 33 - table_size.bit_length()  # the top log2(size) bits of a uint32 index the table

    def step(carry: Carry, batch):
        centers, contexts, mask = batch
        key, sample_key = jax.random.split(carry.key)
        # Centre groups [B, C]; a batch of plain pairs is groups of one.
        contexts = contexts[:, None] if contexts.ndim == 1 else contexts
        if objective == "ns":
            # As in word2vec, the contexts' input rows predict the centre's output row; the
            # K negatives are shared by one centre's contexts. Empty slots (-1) read and
            # write E's last row with zero weight.
            bits = jax.random.bits(sample_key, (centers.shape[0], config.negative), jnp.uint32)
            inputs, outputs = contexts, jnp.concatenate([centers[:, None], noise_ids[bits >> shift]], axis=1)
        else:
            inputs, outputs = centers, contexts
        if sparse:
            rows = gather_rows(model_params(carry.trainable), objective, inputs, outputs)
            grads, total = jax.grad(rows_objective, has_aux=True)(rows, objective, contexts, mask)
            updates, opt_state = _optimizer_update(optimizer, grads, carry.opt_state)
            trainable = scatter_rows(carry.trainable, updates, objective, inputs, outputs)
        else:
            def loss_of(trainable):
                rows = gather_rows(model_params(trainable), objective, inputs, outputs)
                return rows_objective(rows, objective, contexts, mask)

            grads, total = jax.grad(loss_of, has_aux=True)(carry.trainable)
            updates, opt_state = _optimizer_update(optimizer, grads, carry.opt_state, carry.trainable)
            trainable = optax.apply_updates(carry.trainable, updates)
        return Carry(trainable, opt_state, key), total

    return step


def _optimizer_update(optimizer, grads, opt_state, params=None):
    # optax's Adam bias correction raises a float to an int32 step count, which strict
    # dtype promotion (used by the test suite to catch accidental mixes) refuses.
    with jax.numpy_dtype_promotion("standard"):
        return optimizer.update(grads, opt_state, params)


def compile_steps(step):
    """(run_many, run_one): many steps per call via lax.scan, and one step for an epoch's tail."""

    @jax.jit
    def run_many(carry, centers, contexts, mask):
        return jax.lax.scan(step, carry, (centers, contexts, mask))

    @jax.jit
    def run_one(carry, centers, contexts, mask):
        return step(carry, (centers, contexts, mask))

    return run_many, run_one


def compile_replicated(step, devices):
    """run_many over data-parallel replicas, one per device; inputs [replicas, steps, batch, ...].

    Every replica starts the call from the same tables and key block row; at the end the
    replicas' table changes are summed into one set of tables again.
    """
    mesh = Mesh(np.asarray(devices), ("replica",))
    split, whole = PartitionSpec("replica"), PartitionSpec()
    carry_spec = Carry(whole, whole, split)

    def run(carry, centers, contexts, mask):
        start = carry.trainable
        # Inside the call each replica's tables drift apart ("varying" across the mesh).
        local = Carry(jax.lax.pcast(start, ("replica",), to="varying"), carry.opt_state, carry.key[0])
        carry, totals = jax.lax.scan(step, local, (centers[0], contexts[0], mask[0]))
        merged = jax.tree_util.tree_map(lambda before, after: before + jax.lax.psum(after - before, "replica"),
                                        start, carry.trainable)
        return carry._replace(trainable=merged, key=carry.key[None]), jax.lax.psum(totals, "replica")

    return jax.jit(jax.shard_map(run, mesh=mesh, in_specs=(carry_spec, split, split, split),
                                 out_specs=(carry_spec, whole)))


def training_devices(config: TrainConfig) -> list:
    """The devices train() replicates over: all local ones for sparse SGD, else the first."""
    devices = jax.local_devices()
    if config.optimizer != "sgd" or config.objective != "ns":
        return devices[:1]
    return devices


# -- corpus ---------------------------------------------------------------------------------


def prepare_corpus(corpus, config: TrainConfig) -> tuple[Vocabulary, EncodedCorpus]:
    """Vocabulary and encoded corpus from a LineSentence path or an iterable of token lists."""
    if isinstance(corpus, (str, os.PathLike)):
        def sentences():
            return read_sentences(corpus)
        where = f"corpus file {corpus}"
    else:
        corpus = [list(tokens) for tokens in corpus]
        def sentences():
            return iter(corpus)
        where = "the corpus"
    vocab = build_vocabulary(sentences(), config.min_count, config.max_vocab_size, source=where)
    return vocab, encode(sentences(), vocab)


# -- the loop -----------------------------------------------------------------------------------


def train(corpus, config: TrainConfig | None = None, out=None, resume: bool = False, progress: bool = True,
          on_epoch_end=None, encoded_text: bool = False) -> TrainResult:
    """Train skip-gram on `corpus` (LineSentence path or token lists); write outputs to `out` if given.

    `on_epoch_end(epochs_done, epoch_loss)` is called after each epoch's checkpoint is saved
    (like gensim's callbacks); an exception it raises stops training with that checkpoint kept.
    With `out`, the encoded corpus is written as corpus.npy (int32, -1 between sentences), and
    with `encoded_text` also as seed 000's corpus_encoded.txt.
    """
    config = (config or TrainConfig()).validate()
    vocab, encoded = prepare_corpus(corpus, config)
    keep_prob = keep_probabilities(vocab.counts, config.sample)
    noise = noise_distribution(vocab.counts, config.ns_exponent)
    noise_ids = jnp.asarray(noise_table(noise))


    def pairs_for(epoch: int):
        rng = np.random.default_rng([config.seed, epoch])
        return epoch_groups(encoded.ids, encoded.sentence_ids, keep_prob, config.window, config.shrink_window, rng)

    devices = training_devices(config)
    replicas = len(devices)
    init_key, train_key = jax.random.split(jax.random.PRNGKey(config.seed))
    initial = init_params(init_key, len(vocab), config.dim, config.init)
    trainable0 = Params(initial.E, None if config.tied else initial.W)
    first_pairs = pairs_for(0)
    if len(first_pairs[0]) == 0:
        raise ConfigError(f"window={config.window} and sample={config.sample} leave no training pairs: the corpus needs sentences of at least 2 in-vocabulary words")
    batch_size = items_per_step(config)
    # The schedule needs its length up front; epochs differ by a few pairs (random
    # subsampling and windows), so epoch 0's length stands for all (optax clamps at the end).
    rounds = math.ceil(len(first_pairs[0]) / (batch_size * replicas))
    steps_per_call = min(STEPS_PER_CALL, rounds)
    steps_per_epoch = math.ceil(rounds / steps_per_call) * steps_per_call
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(config, total_steps)
    keys = train_key if replicas == 1 else jax.random.split(train_key, replicas)
    carry = Carry(trainable0, optimizer.init(trainable0), keys)
    schedule = optax.linear_schedule(config.alpha, config.min_alpha, max(total_steps, 1))

    start_epoch, losses, pair_counts = 0, [], []
    ckpt_dir = Path(out) / CHECKPOINT_DIR if out is not None else None
    if resume and ckpt_dir is not None and checkpoint.exists(ckpt_dir):
        carry, start_epoch, losses, pair_counts = _restore(ckpt_dir, carry, config, vocab)

    step = make_step(config, optimizer, noise_ids)
    run_many = compile_steps(step)[0] if replicas == 1 else compile_replicated(step, devices)
    bar = _progress_bar(progress, total_steps, start_epoch * steps_per_epoch)
    wall = 0.0
    # The next epoch's pairs are generated on a host thread while the device trains
    # (NumPy releases the GIL); each epoch has its own generator, so order cannot matter.
    prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    upcoming = None
    try:
        for epoch in range(start_epoch, config.epochs):
            began = time.perf_counter()
            if epoch == 0:
                centers, contexts = first_pairs
                first_pairs = None  # one epoch's pairs in memory at a time, plus the prefetched next
            else:
                centers, contexts = upcoming.result() if upcoming is not None else pairs_for(epoch)
            upcoming = prefetch.submit(pairs_for, epoch + 1) if epoch + 1 < config.epochs else None
            carry, loss_sum = _run_epoch(carry, centers, contexts, (replicas, steps_per_call, batch_size), run_many,
                                         bar, epoch, schedule, encoded.raw_words, began)
            pairs = int(np.count_nonzero(contexts >= 0)) if contexts.ndim == 2 else len(centers)
            epoch_loss = loss_sum / pairs
            wall += time.perf_counter() - began
            if not math.isfinite(epoch_loss):
                raise TrainingDiverged(
                    f"loss became {epoch_loss} in epoch {epoch + 1}; try a lower alpha (now {config.alpha})"
                    + (f"; the last good checkpoint in {ckpt_dir} is intact" if ckpt_dir and checkpoint.exists(ckpt_dir) else "")
                )
            losses.append(epoch_loss)
            pair_counts.append(pairs)
            if ckpt_dir is not None:
                _save(ckpt_dir, carry, config, vocab, epoch + 1, losses, pair_counts)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, epoch_loss)
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)
        bar.close()

    final = model_params(carry.trainable)
    final = Params(np.asarray(final.E), np.asarray(final.W))
    epochs_run = config.epochs - start_epoch
    result = TrainResult(
        params=final,
        initial_params=Params(np.asarray(initial.E), np.asarray(initial.W)),
        vocab=vocab,
        embeddings=Embeddings.from_params(final, vocab, "E"),
        loss_per_epoch=[float(x) for x in losses],
        wall_seconds=wall,
        words_per_second=encoded.raw_words * epochs_run / wall if wall > 0 else 0.0,
        corpus_words=encoded.raw_words,
        pairs_per_epoch=pair_counts,
        config=config,
    )
    if out is not None:
        write_outputs(out, result)
        save_encoded_npy(Path(out) / "corpus.npy", encoded)
        if encoded_text:
            save_encoded_text(Path(out) / "corpus_encoded.txt", encoded)
    return result


def items_per_step(config: TrainConfig) -> int:
    """Centres per step: about batch_size pairs' worth of them."""
    contexts_per_centre = config.window + 1 if config.shrink_window else 2 * config.window
    return max(1, config.batch_size // contexts_per_centre)


def _run_epoch(carry, centers, contexts, layout, run_many, bar, epoch, schedule, raw_words, began):
    """One epoch in calls of [replicas, steps, batch] rows; the last call is padded with masked rows."""
    replicas, steps, batch_size = layout
    n = len(centers)
    per_call = replicas * steps * batch_size
    calls = math.ceil(n / per_call)
    shape = (steps, batch_size) if replicas == 1 else (replicas, steps, batch_size)
    full_mask = np.ones(shape, np.float32)

    def call_inputs(call: int):
        # Slices of the epoch's arrays (views, no copy); only the last call is padded.
        block = slice(call * per_call, (call + 1) * per_call)
        chunk_centers, chunk_contexts = centers[block], contexts[block]
        if len(chunk_centers) == per_call:
            return chunk_centers.reshape(shape), chunk_contexts.reshape(shape + contexts.shape[1:]), full_mask
        missing = per_call - len(chunk_centers)
        mask = np.pad(np.ones(len(chunk_centers), np.float32), (0, missing)).reshape(shape)
        chunk_centers = np.pad(chunk_centers, (0, missing)).reshape(shape)
        chunk_contexts = np.pad(chunk_contexts, [(0, missing)] + [(0, 0)] * (contexts.ndim - 1),
                                constant_values=-1 if contexts.ndim == 2 else 0).reshape(shape + contexts.shape[1:])
        return chunk_centers, chunk_contexts, mask

    pending, loss_sum, done = [], 0.0, 0
    total_steps = calls * steps
    step0 = int(_count(carry.opt_state))

    def settle(keep: int):
        # Fetch losses one call behind, so the device always has the next call queued.
        nonlocal loss_sum, done
        while len(pending) > keep:
            totals = pending.pop(0)
            value = float(np.sum(np.asarray(totals, dtype=np.float64)))
            loss_sum += value
            done += steps
            bar.update(steps)
            seconds = time.perf_counter() - began
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / max(done * batch_size * replicas, 1):.4f}",
                            lr=f"{float(schedule(step0 + done)):.5f}",
                            words_s=f"{raw_words * done / total_steps / max(seconds, 1e-9):.0f}", refresh=False)
            if not math.isfinite(value):
                pending.clear()
                loss_sum = value

    for call in range(calls):
        carry, totals = run_many(carry, *call_inputs(call))
        pending.append(totals)
        settle(1)
        if not math.isfinite(loss_sum):
            return carry, loss_sum
    settle(0)
    return carry, loss_sum


def _count(opt_state) -> int:
    counts = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(opt_state)
              if path and getattr(path[-1], "name", None) == "count"]
    return int(counts[0]) if counts else 0


def _progress_bar(enabled: bool, total: int, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, file=sys.stderr, unit="step", dynamic_ncols=True)


# -- checkpoints -------------------------------------------------------------------------------


def _save(folder, carry: Carry, config, vocab, epochs_done, losses, pair_counts) -> None:
    leaves = jax.tree_util.tree_leaves(carry.opt_state)
    arrays = {"E": np.asarray(carry.trainable.E), "key": np.asarray(carry.key)}
    if carry.trainable.W is not None:
        arrays["W"] = np.asarray(carry.trainable.W)
    arrays.update({f"opt_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
    meta = {"format": 1, "epochs_done": epochs_done, "config": config.to_dict(),
            "vocab_sha256": vocab.fingerprint(), "loss_per_epoch": losses, "pairs_per_epoch": pair_counts,
            "opt_leaves": len(leaves)}
    checkpoint.save(folder, arrays, meta)


def _restore(folder, template: Carry, config, vocab):
    saved = checkpoint.load(folder)
    meta, arrays = saved.meta, saved.arrays
    if meta.get("config") != config.to_dict():
        saved_config = meta.get("config") or {}
        diffs = ", ".join(f"{k}={v!r} (checkpoint: {saved_config.get(k)!r})"
                          for k, v in config.to_dict().items() if saved_config.get(k) != v)
        raise ConfigError(f"--resume with a config that differs from the checkpoint in {folder}: {diffs}")
    if meta.get("vocab_sha256") != vocab.fingerprint():
        raise DataError(f"checkpoint in {folder} was trained on a different vocabulary (corpus changed?)")
    leaves, treedef = jax.tree_util.tree_flatten(template.opt_state)
    if meta.get("opt_leaves") != len(leaves):
        raise DataError(f"checkpoint in {folder} has optimiser state of another shape")
    opt_leaves = [jnp.asarray(arrays[f"opt_{i}"], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
    E = jnp.asarray(arrays["E"])
    W = jnp.asarray(arrays["W"]) if template.trainable.W is not None else None
    if E.shape != template.trainable.E.shape:
        raise DataError(f"checkpoint in {folder} holds E of shape {E.shape}, expected {template.trainable.E.shape}")
    if arrays["key"].shape != template.key.shape:
        raise DataError(f"checkpoint in {folder} was written by a run with {_replica_count(arrays['key'])} replica(s); "
                        f"this one has {_replica_count(template.key)} (devices: {jax.local_device_count()})")
    carry = Carry(Params(E, W), jax.tree_util.tree_unflatten(treedef, opt_leaves), jnp.asarray(arrays["key"]))
    return carry, int(meta["epochs_done"]), list(meta["loss_per_epoch"]), list(meta["pairs_per_epoch"])


def _replica_count(key) -> int:
    return 1 if np.ndim(key) == 1 else int(np.shape(key)[0])


# -- outputs -------------------------------------------------------------------------------------


def save_npy(path, array) -> None:
    with atomic_open(path, "wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


def write_outputs(out, result: TrainResult) -> None:
    """Everything `jaxgram train` promises in `out` (each file written atomically)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_npy(out / "E.npy", result.params.E)
    save_npy(out / "W.npy", result.params.W)
    result.vocab.save(out / "vocab.tsv")
    result.embeddings.save_word2vec_format(out / "vectors.txt", binary=False)
    result.embeddings.save_word2vec_format(out / "vectors.bin", binary=True)
    # TensorBoard projector: one row of tab-separated floats per word, words in metadata.tsv.
    atomic_write_text(out / "vectors.tsv", "".join("\t".join(f"{v:.9g}" for v in row) + "\n"
                                                     for row in result.embeddings.vectors.tolist()))
    atomic_write_text(out / "metadata.tsv", "".join(w + "\n" for w in result.vocab.words))
    atomic_write_json(out / "config.json", result.config.to_dict())
    atomic_write_json(out / "loss.json", {
        "loss_per_epoch": result.loss_per_epoch,
        "pairs_per_epoch": result.pairs_per_epoch,
        "objective": result.config.objective,
        "wall_seconds": result.wall_seconds,
        "words_per_second": result.words_per_second,
        "corpus_words": result.corpus_words,
    })
