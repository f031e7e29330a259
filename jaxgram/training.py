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
  once per centre (losses.softmax_groups_loss). Negative sampling follows word2vec's
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
  same step unreplicated. This is the default (`devices` unset, one process).
- `devices` = N or "all" (and any multi-process run, which always uses every process's
  devices) selects synchronous data parallelism instead, with JAX's own sharding: a
  one-axis Mesh, each step's batch (`batch_size` pairs per device) split across it, E and
  W replicated or, with `shard_tables`, row-sharded (V padded to a multiple of the device
  count), and the same pure step jitted once for the whole mesh; XLA's SPMD partitioner
  inserts the collectives. Every step sees every device's updates, so the result depends
  on the device count (deterministically) but not on whether tables are sharded, up to
  float rounding. The Hogwild replicas above are never used on this path.
- The corpus is encoded into a memory-mapped int32 file (TMPDIR) and read in chunks of
  `chunk_tokens` cut at sentence boundaries; centres are shuffled within a chunk. Host
  memory is bounded by one chunk's groups plus the prefetched next, not by the corpus.
- Pairs for epoch e come from numpy's generator seeded with (seed, e), drawn from chunk to
  chunk, and the device key is part of the checkpoint, so a resumed run replays exactly
  what an uninterrupted one does.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxgram import checkpoint, distributed
from jaxgram.config import ALL_DEVICES, TrainConfig
from jaxgram.data import (corpus_chunks, epoch_groups, keep_probabilities, noise_distribution, noise_table,
                          split_sentences)
from jaxgram.distributed import DATA_AXIS, global_array, is_primary, to_host
from jaxgram.embeddings import Embeddings
from jaxgram.errors import ConfigError, DataError, TrainingDiverged
from jaxgram.init import init_params
from jaxgram.losses import Params, ns_group_loss, softmax_groups_loss
from jaxgram.outputs import write_outputs
from jaxgram.vocab import (EncodedCorpus, EncodedFile, Vocabulary, build_vocabulary, encode, encode_to_npy,
                           read_sentences)

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
        losses = softmax_groups_loss(rows[0], rows[1], contexts)
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


def learning_rate_schedule(config: TrainConfig, total_steps: int) -> optax.Schedule:
    """word2vec's schedule: alpha falling linearly to min_alpha over the whole run."""
    return optax.linear_schedule(config.alpha, config.min_alpha, max(total_steps, 1))


def make_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(config, total_steps)
    return {"sgd": optax.sgd, "adam": optax.adam, "adagrad": optax.adagrad}[config.optimizer](schedule)


def make_step(config: TrainConfig, optimizer: optax.GradientTransformation, noise_ids: jax.Array,
              sparse: bool | None = None, rows_sharding=None):
    """step(carry, (centers, contexts, mask)) -> (carry, summed loss): one optax update.

    `sparse` (default: only for SGD, whose update is stateless per entry) updates just the
    gathered rows; the result equals the dense update, which tests check. `rows_sharding`
    (a layout hint for a mesh, no effect on the values) is where the sparse row updates are
    gathered before they are scattered into the tables: replicated, every device receives
    the batch's B·(C+K+1)·D updates, instead of XLA summing a whole V·D table per step.
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
            if rows_sharding is not None:
                updates, inputs, outputs = jax.lax.with_sharding_constraint((updates, inputs, outputs), rows_sharding)
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
    """run_many: many steps per call via lax.scan, inputs [steps, batch, ...] (an epoch's tail is padded)."""

    @jax.jit
    def run_many(carry, centers, contexts, mask):
        return jax.lax.scan(step, carry, (centers, contexts, mask))

    return run_many


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


# -- synchronous data parallelism on a mesh --------------------------------------------------------


def training_mesh(config: TrainConfig) -> Mesh | None:
    """The mesh of the synchronous path (`devices` set, or several processes); None: the default path."""
    if config.devices is None and jax.process_count() == 1:
        return None
    return distributed.training_mesh(ALL_DEVICES if config.devices is None else config.devices)


@dataclass(frozen=True)
class MeshLayout:
    """How the synchronous path lays the carry and the inputs out on a mesh.

    Tables (E, W and per-entry optimiser state, all [V, D]) are replicated, or row-sharded
    with V padded to a multiple of the mesh size (padding rows are never indexed: every id is
    < V, and they are stripped from what comes back); everything else is replicated; the
    batch axis of the inputs [steps, batch, ...] is split across the mesh.
    """

    mesh: Mesh
    vocab_size: int
    shard_tables: bool

    @property
    def rows(self) -> int:
        return -(-self.vocab_size // self.mesh.size) * self.mesh.size if self.shard_tables else self.vocab_size

    @property
    def table(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(DATA_AXIS, None) if self.shard_tables else PartitionSpec())

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    @property
    def batch(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec(None, DATA_AXIS))

    def _is_table(self, leaf) -> bool:
        return np.ndim(leaf) == 2 and np.shape(leaf)[0] in (self.vocab_size, self.rows)

    def shardings(self, carry: Carry):
        return jax.tree_util.tree_map(lambda leaf: self.table if self._is_table(leaf) else self.replicated, carry)

    def place(self, carry: Carry) -> Carry:
        """A carry of host or single-device arrays (unpadded), laid out on the mesh."""
        def put(leaf):
            host = np.asarray(leaf)
            if not self._is_table(host):
                return global_array(host, self.replicated)
            return global_array(np.pad(host, ((0, self.rows - len(host)), (0, 0))), self.table)

        return jax.tree_util.tree_map(put, carry)

    def fetch(self, carry: Carry) -> Carry:
        """The carry as unpadded NumPy arrays on every process (all processes must call it)."""
        return jax.tree_util.tree_map(lambda leaf: to_host(leaf)[:self.vocab_size] if self._is_table(leaf)
                                      else to_host(leaf), carry)


def compile_sharded(step, layout: MeshLayout, carry: Carry):
    """run_many for synchronous data parallelism: one `step` over the whole mesh, inputs [steps, batch, ...].

    The step is the same pure function as on one device; jit's SPMD partitioner splits the
    batch and inserts the collectives (gathering rows of sharded tables, summing each step's
    row updates). Host arrays go in as global arrays, each process feeding its own shards.
    """
    shardings = layout.shardings(carry)

    def constrained(carry, batch):
        carry, total = step(carry, batch)
        # Every step hands the next the tables in the same layout (no resharding inside the scan).
        return jax.lax.with_sharding_constraint(carry, shardings), total

    def run(carry, centers, contexts, mask):
        return jax.lax.scan(constrained, carry, (centers, contexts, mask))

    batch = layout.batch
    run = jax.jit(run, in_shardings=(shardings, batch, batch, batch), out_shardings=(shardings, layout.replicated),
                  donate_argnums=0)

    def run_many(carry, centers, contexts, mask):
        return run(carry, *(global_array(inputs, batch) for inputs in (centers, contexts, mask)))

    return run_many


# -- corpus ---------------------------------------------------------------------------------


def prepare_corpus(corpus, config: TrainConfig) -> tuple[Vocabulary, EncodedCorpus]:
    """Vocabulary and encoded corpus, in memory, from a LineSentence path or an iterable of token lists.

    (train() itself encodes into a memory-mapped file and reads it in chunks.)
    """
    sentences, vocab = _vocabulary(corpus, config)
    return vocab, encode(sentences(), vocab)


def _vocabulary(corpus, config: TrainConfig):
    """(a function returning a fresh iterator of the corpus's token lists, its vocabulary)."""
    if isinstance(corpus, (str, os.PathLike)):
        sentences, where = (lambda: read_sentences(corpus)), f"corpus file {corpus}"
    else:
        corpus = [list(tokens) for tokens in corpus]
        sentences, where = (lambda: iter(corpus)), "the corpus"
    return sentences, build_vocabulary(sentences(), config.min_count, config.max_vocab_size, source=where)


# -- the loop -----------------------------------------------------------------------------------


def train(corpus, config: TrainConfig | None = None, out=None, resume: bool = False, progress: bool = True,
          on_epoch_end=None, encoded_text: bool = False) -> TrainResult:
    """Train skip-gram on `corpus` (LineSentence path or token lists); write outputs to `out` if given.

    `on_epoch_end(epochs_done, epoch_loss)` is called after each epoch's checkpoint is saved
    (like gensim's callbacks); an exception it raises stops training with that checkpoint kept.
    With `out`, the encoded corpus is written as corpus.npy (int32, -1 between sentences), and
    with `encoded_text` also as seed 000's corpus_encoded.txt. In a multi-process run every
    process returns the same result and only process 0 writes `out` (checkpoints included);
    --resume reads the checkpoint on every process, so `out` must be on a shared filesystem.
    """
    config = (config or TrainConfig()).validate()
    mesh = training_mesh(config)
    sentences, vocab = _vocabulary(corpus, config)
    # The encoded corpus lives in a scratch file under TMPDIR while training reads it.
    with tempfile.TemporaryDirectory(prefix="jaxgram-encoded-") as scratch:
        encoded = encode_to_npy(sentences(), vocab, Path(scratch) / "corpus.npy")
        return _train_encoded(vocab, encoded, config, mesh, out, resume, progress, on_epoch_end, encoded_text)


def _train_encoded(vocab: Vocabulary, encoded: EncodedFile, config: TrainConfig, mesh: Mesh | None, out, resume,
                   progress, on_epoch_end, encoded_text) -> TrainResult:
    keep_prob = keep_probabilities(vocab.counts, config.sample)
    noise_ids = noise_table(noise_distribution(vocab.counts, config.ns_exponent))
    chunks = corpus_chunks(encoded.read, len(encoded), config.chunk_tokens)

    def groups_of(epoch: int):
        # One generator per epoch, drawn from chunk to chunk in file order: an epoch is
        # reproducible from (seed, epoch) alone, which is what resuming relies on.
        rng = np.random.default_rng([config.seed, epoch])
        for start, stop in chunks:
            ids, sentence_ids = split_sentences(encoded.read(start, stop))
            yield epoch_groups(ids, sentence_ids, keep_prob, config.window, config.shrink_window, rng)

    epoch0 = groups_of(0)
    first = next(epoch0)
    if len(first[0]) == 0:
        raise ConfigError(f"window={config.window} and sample={config.sample} leave no training pairs: the corpus needs sentences of at least 2 in-vocabulary words")

    replicas = 1 if mesh is not None else len(training_devices(config))
    batch_size = items_per_step(config) * (mesh.size if mesh is not None else 1)
    # The schedule needs its length up front; epochs differ by a few pairs (random
    # subsampling and windows), so epoch 0's length stands for all (optax clamps at the end).
    # A corpus of several chunks uses the expected count of kept tokens instead.
    centres = len(first[0]) if len(chunks) == 1 else max(1, int(np.sum(vocab.counts * keep_prob)))
    rounds = math.ceil(centres / (batch_size * replicas))
    steps_per_call = min(STEPS_PER_CALL, rounds)
    steps_per_epoch = math.ceil(rounds / steps_per_call) * steps_per_call
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(config, total_steps)
    schedule = learning_rate_schedule(config, total_steps)  # for the progress bar's lr

    init_key, train_key = jax.random.split(jax.random.PRNGKey(config.seed))
    # On a mesh the tables start on the host CPU, so no single accelerator ever holds them whole.
    with jax.default_device(jax.local_devices(backend="cpu")[0]) if mesh is not None else contextlib.nullcontext():
        initial = init_params(init_key, len(vocab), config.dim, config.init)
        trainable0 = Params(initial.E, None if config.tied else initial.W)
        keys = train_key if replicas == 1 else jax.random.split(train_key, replicas)
        carry = Carry(trainable0, optimizer.init(trainable0), keys)
    initial = Params(np.asarray(initial.E), np.asarray(initial.W))

    start_epoch, losses, pair_counts = 0, [], []
    ckpt_dir = Path(out) / CHECKPOINT_DIR if out is not None else None
    if resume and ckpt_dir is not None and checkpoint.exists(ckpt_dir):
        carry, start_epoch, losses, pair_counts = _restore(ckpt_dir, carry, config, vocab)
    if not distributed.same_on_all_processes(start_epoch):
        raise DataError(f"the processes found different checkpoints in {ckpt_dir}: --out must be on a "
                        "filesystem every process reads")

    if mesh is None:
        layout = None
        step = make_step(config, optimizer, jnp.asarray(noise_ids))
        run_many = compile_steps(step) if replicas == 1 else compile_replicated(step, training_devices(config))
    else:
        layout = MeshLayout(mesh, len(vocab), config.shard_tables)
        carry = layout.place(carry)
        # Replicated tables take the batch's row updates whole (the partitioner would otherwise
        # sum a V·D table per step); row-sharded ones are already updated from gathered rows.
        step = make_step(config, optimizer, global_array(noise_ids, layout.replicated),
                         rows_sharding=None if config.shard_tables else layout.replicated)
        run_many = compile_sharded(step, layout, carry)
    bar = _progress_bar(progress and is_primary(), total_steps, start_epoch * steps_per_epoch)
    wall = 0.0

    first = [first] if start_epoch == 0 else []  # a list, so the stream lets go of it once used

    def stream():
        for epoch in range(start_epoch, config.epochs):
            if epoch == 0:
                yield first.pop()
                yield from epoch0
            else:
                yield from groups_of(epoch)

    # The next chunk's groups are generated on a host thread while the device trains
    # (NumPy releases the GIL): at most the chunk in training, the next and the one being
    # generated are in memory.
    prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    upcoming = _prefetched(stream(), prefetch)
    try:
        for epoch in range(start_epoch, config.epochs):
            began = time.perf_counter()
            carry, loss_sum, pairs = _run_epoch(carry, itertools.islice(upcoming, len(chunks)),
                                                (replicas, steps_per_call, batch_size), run_many, bar, epoch,
                                                schedule, encoded.raw_words, began, steps_per_epoch)
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
                saved = carry if layout is None else layout.fetch(carry)  # every process takes part in the gather
                if is_primary():
                    _save(ckpt_dir, saved, config, vocab, epoch + 1, losses, pair_counts)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, epoch_loss)
    finally:
        upcoming.close()
        prefetch.shutdown(wait=True, cancel_futures=True)
        bar.close()

    final = model_params((carry if layout is None else layout.fetch(carry)).trainable)
    final = Params(np.asarray(final.E), np.asarray(final.W))
    epochs_run = config.epochs - start_epoch
    result = TrainResult(
        params=final,
        initial_params=initial,
        vocab=vocab,
        embeddings=Embeddings.from_params(final, vocab, "E"),
        loss_per_epoch=[float(x) for x in losses],
        wall_seconds=wall,
        words_per_second=encoded.raw_words * epochs_run / wall if wall > 0 else 0.0,
        corpus_words=encoded.raw_words,
        pairs_per_epoch=pair_counts,
        config=config,
    )
    if out is not None and is_primary():
        write_outputs(out, result, encoded, encoded_text)
    return result


def _prefetched(items, executor):
    """Yield `items` in order, computing each next one on `executor` while the caller uses this one."""
    iterator = iter(items)
    upcoming = executor.submit(next, iterator, None)
    while (item := upcoming.result()) is not None:
        upcoming = executor.submit(next, iterator, None)
        yield item


def items_per_step(config: TrainConfig) -> int:
    """Centres per step (per device on a mesh): about batch_size pairs' worth of them.

    Full softmax takes batch_size // 2 centres: its step is one [centres, V] product,
    which on 2 CPU cores ran 1.6x faster per centre with 512 rows than with 170, at the
    same quality (1,024 rows was slower again: the [B, V] logits outgrow the cache).
    """
    if config.objective == "softmax":
        return max(1, config.batch_size // 2)
    contexts_per_centre = config.window + 1 if config.shrink_window else 2 * config.window
    return max(1, config.batch_size // contexts_per_centre)


def _run_epoch(carry, chunk_groups, layout, run_many, bar, epoch, schedule, raw_words, began, steps_per_epoch):
    """One epoch, chunk by chunk, in calls of [replicas, steps, batch] rows; each chunk's last call is
    padded with masked rows. Returns (carry, summed loss, pairs)."""
    replicas, steps, batch_size = layout
    per_call = replicas * steps * batch_size
    shape = (steps, batch_size) if replicas == 1 else (replicas, steps, batch_size)
    full_mask = np.ones(shape, np.float32)

    def call_inputs(centers, contexts, call: int):
        # Slices of the chunk's arrays (views, no copy); only the last call is padded.
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

    pending, loss_sum, done, pairs = [], 0.0, 0, 0
    step0 = _count(carry.opt_state)

    def settle(keep: int):
        # Fetch losses one call behind, so the device always has the next call queued.
        nonlocal loss_sum, done
        while len(pending) > keep:
            value = float(np.sum(to_host(pending.pop(0)).astype(np.float64)))
            loss_sum += value
            done += steps
            bar.update(steps)
            seconds = time.perf_counter() - began
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / max(done * batch_size * replicas, 1):.4f}",
                            lr=f"{float(schedule(step0 + done)):.5f}",
                            words_s=f"{raw_words * done / steps_per_epoch / max(seconds, 1e-9):.0f}", refresh=False)
            if not math.isfinite(value):
                pending.clear()
                loss_sum = value

    for centers, contexts in chunk_groups:
        pairs += int(np.count_nonzero(contexts >= 0)) if contexts.ndim == 2 else len(centers)
        for call in range(math.ceil(len(centers) / per_call)):
            carry, totals = run_many(carry, *call_inputs(centers, contexts, call))
            pending.append(totals)
            settle(1)
            if not math.isfinite(loss_sum):
                return carry, loss_sum, pairs
    settle(0)
    return carry, loss_sum, pairs


def _count(opt_state) -> int:
    counts = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(opt_state)
              if path and getattr(path[-1], "name", None) == "count"]
    return int(to_host(counts[0])) if counts else 0


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
