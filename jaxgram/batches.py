"""The batch plan and the epoch stream: how many centres a step takes, how steps group into calls,
and the centre groups of each epoch, generated on a host thread while the device trains.

- The corpus is encoded into a memory-mapped int32 file and read in chunks of
  `chunk_tokens` cut at sentence boundaries; a chunk's centres are taken in corpus order from
  `streams` contiguous shares in turn (training_streams), and each
  call's contexts are built from the chunk's tokens when the call comes (data.CentreGroups),
  so the host holds a few int32 per token of one chunk, not 2·window of them, nor the corpus.
- Pairs for epoch e come from NumPy's generator seeded with (seed, e), drawn from chunk to
  chunk in file order, so an epoch is reproducible from (seed, epoch) alone: a resumed run
  replays exactly what an uninterrupted one does.
- Each call runs `steps_per_call` steps of `batch_size` centres; a chunk's last call is
  padded with masked rows, so every call has one shape and the step compiles once.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np

from jaxgram.config import TrainConfig, resolved_batch_size, resolved_workers
from jaxgram.data import (
    CentreGroups,
    corpus_chunks,
    keep_probabilities,
    noise_distribution,
    split_sentences,
    training_groups,
)
from jaxgram.errors import ConfigError

log = logging.getLogger(__name__)

# Steps per jit call.
STEPS_PER_CALL = 64


def items_per_step(config: TrainConfig, platform: str = "cpu", kernel: str = "xla") -> int:
    """Centres per step the config asks for: about batch_size pairs' worth of them (batch_size None:
    the platform's or the fused kernel's default, config.BATCH_PAIRS).

    Full softmax takes batch_size // 2 centres: its step is one [centres, V] product,
    which on 2 CPU cores ran 1.6x faster per centre with 512 rows than with 170, at the
    same quality (1,024 rows was slower again: the [B, V] logits outgrow the cache).
    """
    pairs = resolved_batch_size(config, platform, kernel)
    if config.objective == "softmax":
        return max(1, pairs // 2)
    return max(1, pairs // contexts_per_centre(config))


def contexts_per_centre(config: TrainConfig) -> int:
    """A centre's context words on average: window + 1 when windows shrink (word2vec's reach b is
    uniform on 1..window, and a centre has 2b), 2 * window when they do not."""
    return config.window + 1 if config.shrink_window else 2 * config.window


# The XLA step trains one centre of each of B streams side by side (step.lockstep_ns_sgd), so in
# each context slot the busiest output row (W's row of the most frequent word, as a centre kept by
# subsampling or as one of K negatives) takes about B * busiest_row_share hits at once, whose changes
# add up. On the five books (V = 8,122, busiest row 0.0900 hits per stream; seed 1, 5 epochs) 2,048
# and 4,096 streams (184 and 369 hits) met the agreement rule against gensim, and 8,192 (737) fell
# just short of it, 16,384 well short (docs/agreement.md). A step stays within:
MAX_ROW_HITS = 400


def busiest_row_share(counts: np.ndarray, keep_prob: np.ndarray, noise_probs: np.ndarray, negative: int) -> float:
    """Expected hits of the busiest W row per lockstep stream and slot: the word's share of the centres
    subsampling keeps, plus K times its share of the noise distribution."""
    kept = np.asarray(counts, np.float64) * keep_prob
    return float(np.max(kept / kept.sum() + negative * np.asarray(noise_probs, np.float64)))


def widest_lockstep(counts: np.ndarray, keep_prob: np.ndarray, noise_probs: np.ndarray, negative: int) -> int:
    """The most streams (centres per step, all devices together) the XLA step takes on this vocabulary."""
    return max(1, int(MAX_ROW_HITS / busiest_row_share(counts, keep_prob, noise_probs, negative)))


def trains_in_lockstep(config: TrainConfig, kernel: str) -> bool:
    """Whether make_step's step for this config and kernel is lockstep_ns_sgd (sparse SGD NS on XLA)."""
    return kernel == "xla" and config.objective == "ns" and config.optimizer == "sgd"


def step_width(config: TrainConfig, counts: np.ndarray, platform: str = "cpu", devices: int = 1,
               kernel: str = "xla") -> tuple[int, int | None]:
    """(centres per step, all devices together; the widest the lockstep step allows on this vocabulary, or
    None when the step is not the lockstep one): what train() runs with `kernel` ("xla" or "fused",
    step.resolve_kernel), for `counts` of its vocabulary."""
    if not trains_in_lockstep(config, kernel):
        return centres_per_step(config, platform, devices, kernel=kernel) * devices, None
    keep_prob = keep_probabilities(counts, config.sample)
    widest = widest_lockstep(counts, keep_prob, noise_distribution(counts, config.ns_exponent), config.negative)
    centres = centres_per_step(config, platform, devices, widest) * devices
    log.info("XLA step: %i centres per step side by side (%i per device), about %i pairs; this vocabulary allows "
             "at most %i", centres, centres // devices, centres * contexts_per_centre(config), widest)
    return centres, widest


def centres_per_step(config: TrainConfig, platform: str = "cpu", devices: int = 1, widest: int | None = None,
                     kernel: str = "xla") -> int:
    """Centres per step per device, all `devices` together kept within `widest` (widest_lockstep) when
    the step is the lockstep one (None: no bound). batch_size None: the platform's default step for
    the whole mesh, narrowed to fit, split across the devices (so that --devices N trains the step one
    device would). A batch_size given is per device; all devices' together past `widest` are
    refused, naming the widest that fits."""
    wanted = items_per_step(config, platform, kernel)
    if config.batch_size is None:
        whole = wanted if widest is None else min(wanted, widest)
        return max(1, whole // devices)
    if widest is None or wanted * devices <= widest:
        return wanted
    fits = max(1, widest // devices) * contexts_per_centre(config)
    per_device = " per device" if devices > 1 else ""
    raise ConfigError(
        f"batch_size={config.batch_size} is too wide for this vocabulary: the XLA step would train "
        f"{wanted * devices} centres side by side, and its most frequent word's row would take about "
        f"{MAX_ROW_HITS * wanted * devices / widest:.0f} updates at once (at most {MAX_ROW_HITS}); the widest that "
        f"fits is batch_size={fits}{per_device}")


@dataclass(frozen=True)
class BatchPlan:
    """The shape of every call: [steps_per_call, batch_size] centres."""

    steps_per_call: int
    batch_size: int
    steps_per_epoch: int
    epochs: int

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def per_call(self) -> int:
        return self.steps_per_call * self.batch_size

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.steps_per_call, self.batch_size)


def plan_batches(config: TrainConfig, centres_per_epoch: int, step_centres: int) -> BatchPlan:
    """The plan for an epoch of about `centres_per_epoch` centres, `step_centres` a step (all devices).

    The learning-rate schedule needs the run's length up front; epochs differ by a few
    centres (random subsampling and windows), so one estimate stands for all (optax clamps
    at the end).
    """
    rounds = math.ceil(centres_per_epoch / step_centres)
    steps_per_call = min(STEPS_PER_CALL, rounds)
    steps_per_epoch = math.ceil(rounds / steps_per_call) * steps_per_call
    return BatchPlan(steps_per_call, step_centres, steps_per_epoch, config.epochs)


def padded(plan: BatchPlan, centers: np.ndarray, contexts: np.ndarray):
    """(centers, contexts, mask) of one call, shaped by the plan; a short block is padded with
    masked rows whose context slots are empty."""
    shape = plan.shape
    if len(centers) == plan.per_call:
        return centers.reshape(shape), contexts.reshape(shape + contexts.shape[1:]), np.ones(shape, np.float32)
    missing = plan.per_call - len(centers)
    mask = np.pad(np.ones(len(centers), np.float32), (0, missing)).reshape(shape)
    centers = np.pad(centers, (0, missing)).reshape(shape)
    contexts = np.pad(contexts, [(0, missing)] + [(0, 0)] * (contexts.ndim - 1),
                      constant_values=-1 if contexts.ndim == 2 else 0).reshape(shape + contexts.shape[1:])
    return centers, contexts, mask


def chunk_calls(plan: BatchPlan, groups: CentreGroups):
    """(inputs, pairs) of every call over one chunk's groups, in order: the block's contexts are
    built as the call needs them, and only the chunk's last call is padded."""
    for start in range(0, len(groups), plan.per_call):
        centers, contexts = groups.block(start, start + plan.per_call)
        yield padded(plan, centers, contexts), pair_count(contexts)


def pair_count(contexts: np.ndarray) -> int:
    """Training pairs in a chunk's groups (context slots that hold a word)."""
    return int(np.count_nonzero(contexts >= 0)) if contexts.ndim == 2 else len(contexts)


def training_streams(config: TrainConfig, step_centres: int, kernel: str = "xla") -> int:
    """How many contiguous shares of the corpus a step's centres come from. The fused kernel: one per
    CPU worker, each walked pair by pair on its thread, as gensim's and word2vec.c's threads walk
    theirs. The XLA step: one per centre of the step, which it trains side by side
    (step.lockstep_ns_sgd), so each share is again walked in corpus order, a centre per step."""
    if kernel == "fused":
        return resolved_workers(config)
    return step_centres


@dataclass(frozen=True)
class EpochSource:
    """Where an epoch's centre groups come from: the encoded corpus, its chunks, and the sampling settings."""

    read: object  # read(start, stop) -> int32 ids of the encoded corpus, -1 between sentences
    chunks: list[tuple[int, int]]
    keep_prob: np.ndarray
    config: TrainConfig
    streams: int = 1  # contiguous shares of each chunk taken in turn (training_streams)

    def groups(self, epoch: int):
        """The CentreGroups of each chunk of `epoch`, in file order."""
        # One generator per epoch, drawn from chunk to chunk: (seed, epoch) fixes the epoch.
        rng = np.random.default_rng([self.config.seed, epoch])
        for start, stop in self.chunks:
            ids, sentence_ids = split_sentences(self.read(start, stop))
            yield training_groups(ids, sentence_ids, self.keep_prob, self.config.window, self.config.shrink_window,
                                  rng, self.streams)


def epoch_source(read, length: int, keep_prob: np.ndarray, config: TrainConfig, step_centres: int,
                 kernel: str = "xla") -> EpochSource:
    """The EpochSource of a run over an encoded corpus of `length` tokens, `step_centres` a step (all
    devices), trained by `kernel` (step.resolve_kernel)."""
    streams = training_streams(config, step_centres, kernel)
    return EpochSource(read, corpus_chunks(read, length, config.chunk_tokens), keep_prob, config, streams)


EPOCH_END = None  # what the call stream yields after an epoch's last call


def call_stream(source: EpochSource, plan: BatchPlan, first_epoch: int, started=None):
    """(inputs, pairs) of every call from `first_epoch` to the last epoch, EPOCH_END after each epoch.

    `started` = (held, rest): epoch 0 already begun, its first chunk's groups in the one-item
    list `held` (popped when used, so the stream lets go of it) and `rest` the same generator.
    """
    for epoch in range(first_epoch, plan.epochs):
        if epoch == 0 and started is not None:
            held, rest = started
            chunks = itertools.chain([held.pop()], rest)
        else:
            chunks = source.groups(epoch)
        for groups in chunks:
            yield from chunk_calls(plan, groups)
        yield EPOCH_END


_DONE = object()


def prefetched(items, executor: concurrent.futures.Executor):
    """Yield `items` in order, computing each next one on `executor` while the caller uses this one.

    NumPy releases the GIL, so the next call's inputs are built while the device trains on
    this one's: the host holds one chunk's groups and two calls' inputs.
    """
    iterator = iter(items)
    upcoming = executor.submit(next, iterator, _DONE)
    while (item := upcoming.result()) is not _DONE:
        upcoming = executor.submit(next, iterator, _DONE)
        yield item
