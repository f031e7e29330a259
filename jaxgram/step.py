"""One training step: the objective, its gradient and the optax update, for every path.

- Sparse SGD negative sampling (the default model: gensim's) trains pair by pair, as
  word2vec.c and gensim do: each (context, centre) pair is one SGD step on
  losses.ns_rows_loss with its own K negatives (and gensim's two skips: gensim_pair_loss),
  taken on the tables as the pairs before it left them. Two implementations:
  - the XLA step (`kernel` "xla"; every accelerator and mesh): a step holds one centre from
    each of B streams (contiguous shares of the corpus), and lockstep_ns_sgd trains them
    side by side, one context slot of every stream at a time (jax.grad of the pair loss,
    vmap over streams, lax.scan over slots); colliding rows' changes add up, each computed
    from the row as the slot found it, so the step's width is kept within jaxgram.staleness's
    bound.
  - on CPU the fused C++ kernel (jaxgram.fused, `kernel` "fused" or "auto"): each of
    `streams` shares walked pair by pair on its own worker thread.
  Both take the step's learning rate from the optax schedule.
- Adam and Adagrad keep per-entry state for the whole tables, so they differentiate the full
  tables (dense update) of one batch: the contexts' input rows predict the centre's output
  row, with K negatives shared by one centre's contexts (Ji et al. 2016, losses.ns_group_loss).
- Full softmax shares one softmax per centre, so the V logits are computed once per centre
  (losses.batched_softmax_group_loss); with SGD the gradient is taken with respect to the
  gathered centre rows and scattered back into them only.
- A batch's objective is the SUM of its per-group losses (jaxgram.losses returns one loss per
  centre group and leaves the reduction to the caller), not the mean: word2vec's alpha is a
  per-pair step size, and a mean would divide it by the batch size.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxgram import fused
from jaxgram.config import TrainConfig, resolved_alpha_schedule, resolved_workers
from jaxgram.errors import ConfigError
from jaxgram.losses import Params, batched_softmax_group_loss, ns_group_loss

log = logging.getLogger("jaxgram")


class Carry(NamedTuple):
    """The training state a step takes and returns."""

    trainable: Params  # W is None when the tables are tied
    opt_state: optax.OptState
    key: jax.Array


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
    """Sum over the batch of the per-group losses (masked rows are padding and count zero).

    One row per centre; contexts [B, C] its context ids (-1 = empty slot).
    """
    if objective == "ns":
        losses = jax.vmap(ns_group_loss)(rows[0], contexts >= 0, rows[1][:, 0], rows[1][:, 1:])
    else:
        losses = batched_softmax_group_loss(rows[0], rows[1], contexts)
    total = jnp.sum(losses * mask)
    return total, total


def scatter_rows(trainable: Params, updates, inputs) -> Params:
    """Add full softmax's updates back: rows of E at the centres `inputs`, and the whole output table."""
    E, W = trainable.E, trainable.W
    E = E.at[inputs].add(updates[0])
    if W is None:
        return Params(E + updates[1], None)
    return Params(E, W + updates[1])


def learning_rate_schedule(config: TrainConfig, total_steps: int, kernel: str = "xla", xp=jnp) -> optax.Schedule:
    """alpha falling to min_alpha over the run's `total_steps` (`config.epochs` epochs of equal steps).

    "linear": with the run's progress, as word2vec.c does (optax.linear_schedule's values).
    "per_worker": with one worker's progress, as gensim's corpus_file mode does, where each of
    the `workers` threads counts only the words of its own share: in epoch e, after a fraction f
    of its steps, alpha is where a linear schedule is at e + f / workers epochs. Which one a run
    takes: config.resolved_alpha_schedule for its `kernel`. `xp` is the array module it computes
    with: jax.numpy in a step, NumPy for the host's progress bar and log, which then dispatch
    nothing to a device (eight small programs for the first value otherwise).
    """
    total_steps = max(total_steps, 1)
    workers = resolved_workers(config)
    per_worker = resolved_alpha_schedule(config, kernel) == "per_worker" and workers > 1
    steps_per_epoch = max(total_steps // config.epochs, 1)
    fall = config.alpha - config.min_alpha

    def schedule(count):
        if not per_worker:  # optax.linear_schedule's arithmetic, so a step's rate is the same to the bit
            return fall * (1 - xp.clip(count, 0, total_steps) / total_steps) + config.min_alpha
        count = xp.asarray(count, xp.float32)
        epoch = xp.floor(count / steps_per_epoch)
        progress = (epoch + (count - epoch * steps_per_epoch) / (steps_per_epoch * workers)) / config.epochs
        return xp.maximum(config.min_alpha, config.alpha - fall * progress)

    return schedule


def make_optimizer(config: TrainConfig, total_steps: int, kernel: str = "xla") -> optax.GradientTransformation:
    schedule = learning_rate_schedule(config, total_steps, kernel)
    return {"sgd": optax.sgd, "adam": optax.adam, "adagrad": optax.adagrad}[config.optimizer](schedule)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["starts"], meta_fields=["log2_size"])
@dataclass(frozen=True)
class NoiseSlots:
    """The noise table as its words' first slots (data.noise_slot_starts, uint32 [V]): the same
    draws found by a binary search over V entries instead of a gather from 64·V. Row-sharded runs
    take it: a whole table on every device (256 bytes a word) would outgrow a device's share of
    the rows (D·8/n bytes a word for E and W on n devices) from a few devices on."""

    starts: jax.Array
    log2_size: int


def negative_sampler(noise: jax.Array | NoiseSlots, negative: int):
    """sample(key, shape) -> [*shape, K] noise ids, from a power-of-two noise table (or its NoiseSlots).

    The top log2(size) bits of a uint32 index the table: one draw costs a shift and a gather.
    """
    if isinstance(noise, NoiseSlots):
        table_size = 1 << noise.log2_size
        def lookup(slots):  # the last word whose run starts at or before the slot
            return (jnp.searchsorted(noise.starts, slots, side="right") - 1).astype(jnp.int32)
    else:
        table_size = int(noise.shape[0])
        def lookup(slots):
            return noise[slots]
    if table_size & (table_size - 1) or table_size > 1 << 32:
        raise ValueError(f"the noise table must have a power-of-two size, got {table_size}")
    shift = 33 - table_size.bit_length()

    def sample(key, shape: tuple[int, ...]):
        bits = jax.random.bits(key, (*shape, negative), jnp.uint32)
        return lookup(bits >> shift)

    return sample


def resolve_kernel(config: TrainConfig, platform: str, on_mesh: bool) -> str:
    """"fused" or "xla": what `config.kernel` means for this run.

    The fused kernel is sparse SGD negative sampling on CPU devices outside a mesh; "auto"
    takes it there when it is built. A missing build falls back to XLA with one warning.
    """
    if config.kernel == "xla":
        return "xla"
    applies = config.optimizer == "sgd" and config.objective == "ns" and platform == "cpu" and not on_mesh
    if not applies:
        if config.kernel == "fused":
            raise ConfigError(f"kernel='fused' is not allowed with optimizer={config.optimizer!r}, objective="
                              f"{config.objective!r} on {platform}{' with devices' if on_mesh else ''}: the fused kernel "
                              "is sparse SGD negative sampling on CPU; use kernel='auto' or 'xla'")
        return "xla"
    if not fused.available():
        log.warning("the fused CPU kernel is not available (%s); training with the XLA step", fused.unavailable_reason())
        return "xla"
    return "fused"


def make_step(config: TrainConfig, optimizer: optax.GradientTransformation, noise_ids: jax.Array,
              sparse: bool | None = None, rows_sharding=None, kernel: str = "xla", streams: int = 1):
    """step(carry, (centers, contexts, mask)) -> (carry, summed loss): one optax update.

    `sparse` (default: only for SGD, whose update is stateless per entry) updates just the
    rows a step touches: for negative sampling pair by pair (lockstep_ns_sgd); for full
    softmax the gathered rows, which equals the dense update, as tests check. `rows_sharding`
    (a layout hint for a mesh, no effect on the values) is where the sparse row updates are
    gathered before they are scattered into the tables: replicated, every device receives
    the batch's B·(C+K+1)·D updates, instead of XLA summing a whole V·D table per step.
    `kernel` ("xla" or "fused", see resolve_kernel) selects who runs the sparse NS update;
    `streams` is how many interleaved shares of the corpus a batch holds (the fused kernel
    trains each in order).
    """
    objective = config.objective
    sparse = config.optimizer == "sgd" if sparse is None else sparse
    sample_negatives = negative_sampler(noise_ids, config.negative)

    def step(carry: Carry, batch):
        centers, contexts, mask = batch
        key, sample_key = jax.random.split(carry.key)
        # Centre groups [B, C]; a batch of plain pairs is groups of one.
        contexts = contexts[:, None] if contexts.ndim == 1 else contexts
        if kernel == "fused":
            seed = jax.random.bits(sample_key, (2,), jnp.uint32)  # the kernel draws each pair's negatives
            trainable, opt_state, total = _fused_update(optimizer, carry, (centers, contexts, mask), seed, noise_ids,
                                                        config.negative, streams, resolved_workers(config))
            return Carry(trainable, opt_state, key), total
        if objective == "ns" and sparse:
            # K negatives for every pair: [C, B, K], one slot of all streams at a time.
            negatives = sample_negatives(sample_key, (contexts.shape[1], centers.shape[0]))
            trainable, opt_state, total = _lockstep_update(optimizer, carry, (centers, contexts, negatives),
                                                           rows_sharding)
            return Carry(trainable, opt_state, key), total
        if objective == "ns":
            # Dense optimisers (Adam, Adagrad) take one gradient of the whole batch: the contexts'
            # input rows predict the centre's output row, with K negatives shared by one centre's
            # contexts. Empty slots (-1) read E's last row with zero weight.
            negatives = sample_negatives(sample_key, centers.shape)
            inputs, outputs = contexts, jnp.concatenate([centers[:, None], negatives], axis=1)
        else:
            inputs, outputs = centers, contexts
        update = _sparse_update if sparse else _dense_update
        trainable, opt_state, total = update(optimizer, carry, objective, (inputs, outputs, contexts, mask),
                                             rows_sharding)
        return Carry(trainable, opt_state, key), total

    return step


def _sparse_update(optimizer, carry: Carry, objective: str, batch, rows_sharding):
    inputs, outputs, contexts, mask = batch
    rows = gather_rows(model_params(carry.trainable), objective, inputs, outputs)
    grads, total = jax.grad(rows_objective, has_aux=True)(rows, objective, contexts, mask)
    updates, opt_state = _optimizer_update(optimizer, grads, carry.opt_state)
    if rows_sharding is not None:
        updates, inputs, outputs = jax.lax.with_sharding_constraint((updates, inputs, outputs), rows_sharding)
    return scatter_rows(carry.trainable, updates, inputs), opt_state, total


# gensim's MAX_EXP: w2v_fast_sentence_sg_neg gives a score with |s| >= 6 no update, right or wrong
# (word2vec.c clips the gradient there instead); csrc/ns_sgd.cc does the same.
SATURATED_SCORE = 6.0


def gensim_pair_loss(center_vec, context_vec, negative_vecs, negative_kept):
    """losses.ns_rows_loss over the negatives `negative_kept` [K] marks, whose gradient is gensim's
    update: a negative equal to the pair's target is skipped (it neither trains nor counts), and a
    saturated score (|s| >= 6) counts in the loss but contributes no gradient."""
    scores = jnp.concatenate([-(context_vec @ center_vec)[None], negative_vecs @ center_vec])
    terms = jax.nn.softplus(scores)
    terms = jnp.where(jnp.abs(scores) < SATURATED_SCORE, terms, jax.lax.stop_gradient(terms))
    return jnp.sum(jnp.where(jnp.concatenate([jnp.ones(1, bool), negative_kept]), terms, 0.0))


def lockstep_ns_sgd(tables: Params, centers, contexts, negatives, lr, rows_sharding=None):
    """word2vec's pair-by-pair SGD of negative sampling, B streams in lockstep: (tables, summed loss).

    `tables` as the carry holds them (W None: tied); centers [B] (one per stream), contexts [B, C]
    (-1 = empty slot), negatives [C, B, K]. For each context slot in turn, every stream's pair
    (context -> centre, with its own K negatives) takes one SGD step on gensim_pair_loss with
    the tables as the slots before it left them. The B pairs of a slot are computed side by side
    and their row changes added, so two streams that hit one row in the same slot both land (as
    gensim's threads race). What this keeps of word2vec, and a step from one snapshot lacks, is
    self-correction: a row hit again sees its earlier updates, so repeated hits on a frequent word
    shrink as its sigmoid saturates. Empty slots index one past the table (gathered as zeros,
    their scatter dropped): no real row is touched.
    """
    vocab, tied = tables.E.shape[0], tables.W is None
    pair_loss_and_grads = jax.vmap(jax.value_and_grad(gensim_pair_loss, argnums=(0, 1, 2)))
    # Every slot's rows, [C, B] inputs and [C, B, 1 + K] outputs, made before the slots run: on a
    # mesh (`rows_sharding`) they are gathered once a step, not once a slot.
    present = contexts.T >= 0
    slot_inputs = jnp.where(present, contexts.T, vocab)
    targets = jnp.broadcast_to(centers[None, :, None], (*present.shape, 1))
    slot_outputs = jnp.where(present[..., None], jnp.concatenate([targets, negatives], axis=2), vocab)
    gathered = _constrained((slot_inputs, slot_outputs), rows_sharding)

    def slot(tables: Params, slot_inputs):
        inputs, outputs, negs, (all_inputs, all_outputs) = slot_inputs  # [B], [B, 1 + K], [B, K], as gathered
        E, W = tables.E, tables.E if tied else tables.W
        e = E.at[inputs].get(mode="fill", fill_value=0)
        w = W.at[outputs].get(mode="fill", fill_value=0)
        losses, (de, dw_target, dw_negs) = pair_loss_and_grads(e, w[:, 0], w[:, 1:], negs != centers[:, None])
        # One exchange a slot: the rows' changes, E's and W's side by side.
        changes = _constrained(jnp.concatenate([de[:, None], dw_target[:, None], dw_negs], axis=1), rows_sharding)
        E = E.at[all_inputs].add(-lr * changes[:, 0], mode="drop")
        W = E if tied else W
        W = W.at[all_outputs].add(-lr * changes[:, 1:], mode="drop")
        tables = Params(W, None) if tied else Params(E, W)
        return tables, jnp.where(inputs < vocab, losses, 0.0)

    tables, losses = jax.lax.scan(slot, tables, (slot_inputs, slot_outputs, negatives, gathered))
    return tables, jnp.sum(losses)  # summed once a step: on a mesh one reduction, not one a slot


def _constrained(arrays, sharding):
    return arrays if sharding is None else jax.lax.with_sharding_constraint(arrays, sharding)


def _lockstep_update(optimizer, carry: Carry, batch, rows_sharding):
    centers, contexts, negatives = batch
    # optax's own SGD update of a scalar 1 is -lr for this step and advances its step count, so
    # the pair-by-pair steps (here and in the fused kernel) follow the schedule a gradient step does.
    negative_lr, opt_state = _optimizer_update(optimizer, jnp.ones((), jnp.float32), carry.opt_state)
    trainable, total = lockstep_ns_sgd(carry.trainable, centers, contexts, negatives, -negative_lr,
                                       rows_sharding)
    return trainable, opt_state, total


def _fused_update(optimizer, carry: Carry, batch, seed, noise_ids, negative: int, streams: int, workers: int):
    centers, contexts, mask = batch
    negative_lr, opt_state = _optimizer_update(optimizer, jnp.ones((), jnp.float32), carry.opt_state)
    E, W, losses = fused.ns_sgd_step(carry.trainable.E, carry.trainable.W, centers, contexts, noise_ids, seed, mask,
                                     -negative_lr, negative, streams, tied=carry.trainable.W is None, workers=workers)
    return Params(E, W), opt_state, jnp.sum(losses)


def _dense_update(optimizer, carry: Carry, objective: str, batch, rows_sharding):
    inputs, outputs, contexts, mask = batch

    def loss_of(trainable):
        rows = gather_rows(model_params(trainable), objective, inputs, outputs)
        return rows_objective(rows, objective, contexts, mask)

    grads, total = jax.grad(loss_of, has_aux=True)(carry.trainable)
    updates, opt_state = _optimizer_update(optimizer, grads, carry.opt_state, carry.trainable)
    return optax.apply_updates(carry.trainable, updates), opt_state, total


def _optimizer_update(optimizer, grads, opt_state, params=None):
    # optax's Adam bias correction raises a float to an int32 step count, which strict
    # dtype promotion (used by the test suite to catch accidental mixes) refuses.
    with jax.numpy_dtype_promotion("standard"):
        return optimizer.update(grads, opt_state, params)


def optimizer_step_count(opt_state) -> jax.Array | None:
    """The step counter optax keeps in `opt_state` (the schedule's position), or None."""
    counts = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(opt_state)
              if path and getattr(path[-1], "name", None) == "count"]
    return counts[0] if counts else None
