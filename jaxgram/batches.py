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
- Each call runs `steps_per_call` steps of `batch_size` centres; the centres a chunk leaves
  short of a call start the next chunk's first call, and only an epoch's last call is padded
  with masked rows, so every call has one shape, the step compiles once, and an epoch takes
  the steps plan_batches counts for its centres however many chunks the corpus has.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np

from jaxgram.config import INT32_MAX, TrainConfig, resolved_batch_size, resolved_workers
from jaxgram.data import (
    CentreGroups,
    corpus_chunks,
    keep_probabilities,
    noise_distribution,
    split_sentences,
    training_groups,
)
from jaxgram.errors import ConfigError
from jaxgram.staleness import (
    busiest_row_hits,
    fused_stale_hits,
    highest_tied_alpha,
    most_fused_threads,
    stale_hits_allowed,
    widest_fused_pairs,
    widest_lockstep,
)

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


def trains_in_lockstep(config: TrainConfig, kernel: str) -> bool:
    """Whether make_step's step for this config and kernel is lockstep_ns_sgd (sparse SGD NS on XLA)."""
    return kernel == "xla" and config.objective == "ns" and config.optimizer == "sgd"


def busiest_row_hits_of(config: TrainConfig, counts: np.ndarray) -> float:
    """staleness.busiest_row_hits for this config's subsampling, noise and tables on a vocabulary of `counts`."""
    keep_prob = keep_probabilities(counts, config.sample)
    noise = noise_distribution(counts, config.ns_exponent)
    return busiest_row_hits(counts, keep_prob, noise, config.negative, config.tied)


def widest_centres(config: TrainConfig, counts: np.ndarray, kernel: str = "xla") -> int | None:
    """The most centres per step (all devices together) the stale-update bound (jaxgram.staleness)
    allows on a vocabulary of `counts`; None when it sets none (a dense step, or one fused thread).
    Refuses tied tables at too high an alpha, and a fused worker count that would take more stale
    hits than the bound with one centre each."""
    if kernel != "fused" and not trains_in_lockstep(config, kernel):
        return None  # a dense step trains from one snapshot: no rows go stale within it
    hits = busiest_row_hits_of(config, counts)
    if config.tied:
        _check_tied_alpha(config, hits)
    if kernel != "fused":
        return widest_lockstep(hits, config.alpha, config.tied)
    threads, pairs = resolved_workers(config), contexts_per_centre(config)
    if threads == 1:
        return None
    most = _most_threads(config, hits)
    if threads > most:
        raise ConfigError(f"workers={threads} is too many for this vocabulary at alpha={config.alpha}: even at one "
                          f"centre per thread a step, each thread's copy of its most frequent word's row would miss "
                          f"{fused_stale_hits(hits, threads, threads * pairs):.0f} updates of the other threads on "
                          f"average, more than the "
                          f"{stale_hits_allowed(config.alpha, config.tied):.0f} the stale-update bound allows; the most "
                          f"that fit are workers={most}, or a lower alpha")
    return max(threads, widest_fused_pairs(hits, config.alpha, threads, config.tied) // pairs)


def _most_threads(config: TrainConfig, hits: float) -> int:
    """staleness.most_fused_threads for this config, its busiest row taking `hits` hits per pair."""
    return most_fused_threads(hits, config.alpha, contexts_per_centre(config), config.tied)


def _check_tied_alpha(config: TrainConfig, hits: float) -> None:
    """Refuse tied tables at an alpha past staleness.TIED_ALPHA_HITS, the busiest row taking `hits` a pair."""
    highest = highest_tied_alpha(hits)
    if config.alpha > highest:
        raise ConfigError(f"tied=True is not allowed at alpha={config.alpha} on this vocabulary: its most frequent "
                          f"word's row, hit {hits:.2f} times a pair in every role, would grow along itself; the "
                          f"highest alpha that fits is alpha={highest:.3g}, or untied tables")


def fitted_workers(config: TrainConfig, counts: np.ndarray) -> TrainConfig:
    """`config` with its default worker count (None: the usable cores) lowered to what the stale-update
    bound allows on a vocabulary of `counts` (a tiny vocabulary on many cores); a count given is kept
    (widest_centres refuses it if it does not fit)."""
    cores = resolved_workers(config)  # reads the affinity mask and the cgroup files: once
    if config.workers is not None or cores == 1:
        return config
    most = _most_threads(config, busiest_row_hits_of(config, counts))
    if cores <= most:
        return config
    log.info("training with %i workers, not the %i usable cores: more threads on this vocabulary would train "
             "copies of its most frequent rows from too stale a start (jaxgram.staleness)", most, cores)
    return dataclasses.replace(config, workers=most)


def step_width(config: TrainConfig, counts: np.ndarray, platform: str = "cpu", devices: int = 1,
               kernel: str = "xla") -> tuple[int, int | None]:
    """(centres per step, all devices together; the widest the stale-update bound allows on this
    vocabulary, or None where it sets none): what train() runs with `kernel` ("xla" or "fused",
    step.resolve_kernel), for `counts` of its vocabulary."""
    widest = widest_centres(config, counts, kernel)
    centres = centres_per_step(config, platform, devices, widest, kernel) * devices
    if widest is not None:
        log.info(("XLA" if kernel == "xla" else "fused") + " step: %i centres per step (%i per device), about %i "
                 "pairs; this vocabulary allows at most %i", centres, centres // devices,
                 centres * contexts_per_centre(config), widest)
    return centres, widest


def centres_per_step(config: TrainConfig, platform: str = "cpu", devices: int = 1, widest: int | None = None,
                     kernel: str = "xla") -> int:
    """Centres per step per device, all `devices` together kept within `widest` (widest_centres: the
    stale-update bound; None: no bound). batch_size None: the platform's default step for
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
        f"batch_size={config.batch_size} is too wide for this vocabulary at alpha={config.alpha}: its most frequent "
        f"word's row would take about {wanted * devices / widest:.1f} times the stale updates the step allows "
        f"(jaxgram.staleness); the widest that fits is batch_size={fits}{per_device}")


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
    centres (random subsampling and windows), so one estimate stands for all (planned_centres;
    optax clamps at the end). An epoch takes ceil(centres / per_call) calls (epoch_calls).
    """
    rounds = math.ceil(centres_per_epoch / step_centres)
    steps_per_call = min(STEPS_PER_CALL, rounds)
    steps_per_epoch = math.ceil(rounds / steps_per_call) * steps_per_call
    if steps_per_epoch * config.epochs > INT32_MAX:  # optax counts the steps in int32: an OverflowError traceback
        raise ConfigError(f"epochs={config.epochs} is too many for this corpus: {steps_per_epoch} steps an epoch, and the "
                          f"step count stops at {INT32_MAX}; the most that fit are epochs={INT32_MAX // steps_per_epoch}")
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


def epoch_calls(plan: BatchPlan, chunks):
    """(inputs, pairs) of every call over an epoch's chunks of groups, in order; only the last call is padded.

    The centres a chunk leaves short of a call are carried into the next chunk's first call:
    padding each chunk's last call instead ran a call per chunk more than the plan counts, so
    the schedule reached min_alpha long before the run ended. The centres keep their order, and
    a stream (the fused kernel's centres b % streams, the XLA step's column b) is still a walk
    through one share of a chunk after another, each in corpus order: the carried centres only
    shift which of the next chunk's shares a stream takes, and no stream ever went on from one
    chunk's share into the next chunk's in corpus order (a share of a chunk starts mid-chunk).
    The contexts are built as the calls need them; the host holds one chunk's groups and the
    fewer than a call's centres carried over.
    """
    carried = None  # (centers, contexts) that the chunks so far left short of a call
    for groups in chunks:
        carried = yield from _chunk_calls(plan, groups, carried)
        del groups  # let go of it before the next chunk's groups are built
    if carried is not None:
        yield _call(plan, *carried)


def _chunk_calls(plan: BatchPlan, groups: CentreGroups, carried):
    """Yield the calls `groups` fills after the centres `carried` from the chunks before it; return
    the centres it leaves short of a call (None: none)."""
    start = 0
    if carried is not None:
        start = plan.per_call - len(carried[0])
        carried = _joined(carried, groups.block(0, start))
        if len(carried[0]) < plan.per_call:
            return carried  # this chunk did not fill the call either
        yield _call(plan, *carried)
    whole = start + (len(groups) - start) // plan.per_call * plan.per_call
    for first in range(start, whole, plan.per_call):
        yield _call(plan, *groups.block(first, first + plan.per_call))
    return groups.block(whole, len(groups)) if whole < len(groups) else None


def _joined(first: tuple[np.ndarray, np.ndarray], then: tuple[np.ndarray, np.ndarray]):
    """(centers, contexts) of two blocks, one after the other."""
    return np.concatenate([first[0], then[0]]), np.concatenate([first[1], then[1]])


def _call(plan: BatchPlan, centers: np.ndarray, contexts: np.ndarray):
    """(inputs, pairs) of one call of at most plan.per_call centres."""
    return padded(plan, centers, contexts), pair_count(contexts)


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
    # corpus_shares.ProcessColumns: `read` is this process's share of a multi-process run's corpus,
    # fed to its devices' columns of each step; None: the whole corpus, the whole step.
    share: object = None

    def groups(self, epoch: int):
        """The CentreGroups of each chunk of `epoch`, in file order."""
        # One generator per epoch, drawn from chunk to chunk: (seed, epoch) fixes the epoch.
        rng = np.random.default_rng([self.config.seed, epoch])
        for start, stop in self.chunks:
            yield self._chunk_groups(start, stop, rng)

    def _chunk_groups(self, start: int, stop: int, rng: np.random.Generator) -> CentreGroups:
        # A function of its own, so that the chunk's tokens are let go of once its groups are built.
        ids, sentence_ids = split_sentences(self.read(start, stop))
        return training_groups(ids, sentence_ids, self.keep_prob, self.config.window, self.config.shrink_window, rng,
                               self.streams)

    def expected_centres(self) -> float:
        """The centres an epoch trains on average: the tokens subsampling keeps that keep another
        token of their sentence (training_groups leaves a centre without a context out)."""
        return sum(expected_centres(*split_sentences(self.read(start, stop)), self.keep_prob)
                   for start, stop in self.chunks)


def expected_centres(ids: np.ndarray, sentence_ids: np.ndarray, keep_prob: np.ndarray) -> float:
    """The expected count of tokens kept with another token of their sentence kept: the sum over
    tokens of keep * (1 - the product of (1 - keep) over the others of the sentence)."""
    keep = keep_prob[ids]
    # A sure token (keep = 1) makes the product 0, and log(1 - keep) is -inf for it: count the sure
    # tokens apart and sum the logs of the others.
    sure = keep >= 1.0
    log_dropped = np.log1p(-np.where(sure, 0.0, keep))
    sure_others = np.bincount(sentence_ids, weights=sure)[sentence_ids] - sure
    log_others_dropped = np.bincount(sentence_ids, weights=log_dropped)[sentence_ids] - log_dropped
    alone = np.where(sure_others > 0, 0.0, np.exp(log_others_dropped))
    return float(np.sum(keep * (1.0 - alone)))


def planned_centres(source: EpochSource, first: CentreGroups) -> int:
    """The centres to plan an epoch for, `first` the groups of epoch 0's first chunk: all of epoch
    0's when the corpus is one chunk, else the expected count over the chunks (each epoch draws its
    own subsample; the kept tokens alone, with a context or not, ran 0.25% long on the five books).
    A tiny corpus's first subsample may keep no pair where later ones keep some (gensim's 9-sentence
    common_texts at sample=1e-3): it too is planned from the expected count. 0 only when no epoch
    can draw a pair: no sentence of two in-vocabulary words."""
    if len(source.chunks) == 1 and len(first) > 0:
        centres = len(first)
    else:
        expected = source.expected_centres()
        centres = 0 if expected == 0 else max(1, round(expected))
    # Shares: all processes plan one run, with the steps the largest share takes (a collective).
    return centres if source.share is None else source.share.planned(centres)


def epoch_source(read, length: int, keep_prob: np.ndarray, config: TrainConfig, step_centres: int,
                 kernel: str = "xla", share=None) -> EpochSource:
    """The EpochSource of a run over an encoded corpus of `length` tokens, `step_centres` a step (all
    devices), trained by `kernel` (step.resolve_kernel); `share`: see EpochSource."""
    if share is None:
        streams = training_streams(config, step_centres, kernel)
        return EpochSource(read, corpus_chunks(read, length, config.chunk_tokens), keep_prob, config, streams)
    # A share's centres fill its devices' columns; an empty share is one empty chunk (epochs still begin).
    chunks = corpus_chunks(read, length, config.chunk_tokens) or [(0, 0)]
    return EpochSource(read, chunks, keep_prob, config, training_streams(config, share.width, kernel), share)


EPOCH_END = None  # what the call stream yields after an epoch's last call


def call_stream(source: EpochSource, plan: BatchPlan, first_epoch: int, started=None):
    """(inputs, pairs) of every call from `first_epoch` to the last epoch, EPOCH_END after each epoch.

    `started` = (held, rest): epoch 0 already begun, its first chunk's groups in the one-item
    list `held` (popped when used, so the stream lets go of it) and `rest` the same generator.
    A share's calls are its devices' columns of each step (corpus_shares.agreed widens them).
    """
    if source.share is not None:
        plan = dataclasses.replace(plan, batch_size=source.share.width)
    for epoch in range(first_epoch, plan.epochs):
        if epoch == 0 and started is not None:
            held, rest = started
            chunks = itertools.chain([held.pop()], rest)
        else:
            chunks = source.groups(epoch)
        yield from epoch_calls(plan, chunks)
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
