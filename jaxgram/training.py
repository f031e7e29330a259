"""train(): plan the batches, initialise or resume, run the epochs, build the result.

The parts live in their own modules: the step (gather rows, objective, scatter, optax
update) in jaxgram.step; the ways to compile it (one device, CPU workers, a mesh) in
jaxgram.parallel; the batch plan and epoch stream in jaxgram.batches; checkpoints of the
training state in jaxgram.train_state; the result and output files in jaxgram.outputs.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from jaxgram import checkpoint, distributed, resources, rundir
from jaxgram.batches import (
    EPOCH_END,
    BatchPlan,
    EpochSource,
    call_stream,
    epoch_source,
    fitted_workers,
    padded,
    plan_batches,
    planned_centres,
    prefetched,
    step_width,
)
from jaxgram.config import TrainConfig, resolved_config, resolved_workers
from jaxgram.convergence import check_converging
from jaxgram.corpus_shares import agreed, count_and_encode, process_columns
from jaxgram.data import keep_probabilities
from jaxgram.distributed import is_primary
from jaxgram.errors import ConfigError, DataError
from jaxgram.init import host_init_params, init_params
from jaxgram.losses import Params
from jaxgram.outputs import DEFAULT_SAVE, TrainResult, checked_save, result_params, write_run_outputs
from jaxgram.parallel import MeshLayout, compile_ahead, compile_sharded, placed_noise_table, training_mesh
from jaxgram.progress import LossMeter, log_downsampling, log_training_end, log_training_start, progress_bar, step_count
from jaxgram.step import (
    Carry,
    learning_rate_schedule,
    make_optimizer,
    make_step,
    model_params,
    resolve_kernel,
)
from jaxgram.train_state import History, restore_state, save_state
from jaxgram.vocab import (
    EncodedCorpus,
    EncodedFile,
    Vocabulary,
    build_vocabulary,
    encode,
    read_sentences,
)

__all__ = ["TrainResult", "prepare_corpus", "train"]

CHECKPOINT_DIR = "checkpoint"

log = logging.getLogger(__name__)


def train(corpus, config: TrainConfig | None = None, out=None, resume: bool = False, progress: bool = True,
          on_epoch_end=None, encoded_text: bool = False, save=DEFAULT_SAVE) -> TrainResult:
    """Train skip-gram on `corpus` (LineSentence path or token lists); write outputs to `out` if given.

    `on_epoch_end(epochs_done, epoch_loss)` is called after each epoch's checkpoint is saved
    (like gensim's callbacks); an exception it raises stops training with that checkpoint kept.
    With `out`, the files of the `save` formats (outputs.SAVE_FORMATS: "bin" by default, "txt",
    "tsv", "npy", "corpus" for corpus.npy) and with `encoded_text` the Embedding Geometry
    article's corpus_encoded.txt. In a multi-process run each process reads its share of the
    corpus, every process returns the same result, process 0 writes `out` and, with row-sharded
    tables, every process writes its rows' checkpoint part there: `out` must be on a shared
    filesystem (docs/distributed.md).

    `resume` continues from out/checkpoint, finished runs included: `config` must be the
    checkpoint's but for `epochs`, which may be larger (train more, as calling gensim's train
    again does) or smaller, never below the epochs done. The learning rate always follows the
    schedule of a `config.epochs`-epoch run, so the epochs still to train take the rates an
    uninterrupted run of that length has there; the epochs already done kept their own, so a
    run extended this way is not bitwise one trained for `config.epochs` from the start.
    Progress goes to the `jaxgram` logger at gensim's points (the vocabulary, each epoch, the
    end); the library adds no handler: logging.basicConfig(level=logging.INFO) shows it.
    """
    config = (config or TrainConfig()).validate()
    save = checked_save(save)
    mesh = training_mesh(config)
    if config.shard_tables:  # tables too big for one device: freed buffers go back to the OS at once
        resources.map_large_buffers_apart()
    # Process 0 alone writes `out`: it holds the folder for the run (a second run into it is
    # refused) and keeps the encoded corpus in it (out/.scratch), where a rerun replaces it;
    # other processes, and runs without `out`, keep theirs in TMPDIR.
    owned = out if out is not None and is_primary() else None
    with rundir.claim(owned), rundir.scratch_folder(owned) as scratch:
        # Counted and encoded in one pass, each token split and looked up once; with several processes,
        # each its own share of the corpus, under the whole corpus's vocabulary (jaxgram.corpus_shares).
        vocab, encoded = count_and_encode(corpus, *_sentences(corpus), scratch / "corpus.npy", config,
                                          whole_corpus_kept="corpus" in save or encoded_text)
        config = fitted_workers(config, vocab.counts)  # the usable cores, unless the vocabulary takes fewer
        run = _Run(config, vocab, Path(out) / CHECKPOINT_DIR if out is not None else None, progress, on_epoch_end)
        result = _train_encoded(run, encoded, mesh, resume)
        write_run_outputs(out, result, encoded, save, encoded_text)  # process 0 writes; the others serve it rows
    return result


def prepare_corpus(corpus, config: TrainConfig) -> tuple[Vocabulary, EncodedCorpus]:
    """Vocabulary and encoded corpus, in memory, from a LineSentence path or an iterable of token lists.

    (train() itself encodes into a memory-mapped file and reads it in chunks.)
    """
    sentences, where = _sentences(corpus)
    vocab = build_vocabulary(sentences(), config.min_count, config.max_vocab_size, source=where)
    return vocab, encode(sentences(), vocab)


def _sentences(corpus):
    """(a function returning a fresh iterator of the corpus's token lists, how errors name the corpus)."""
    if isinstance(corpus, (str, os.PathLike)):
        return (lambda: read_sentences(corpus)), f"corpus file {corpus}"
    corpus = [list(tokens) for tokens in corpus]
    return (lambda: iter(corpus)), "the corpus"


@dataclass(frozen=True)
class _Run:
    """What stays fixed through one train() call."""

    config: TrainConfig
    vocab: Vocabulary
    checkpoints: Path | None  # None: no --out, nothing saved
    progress: bool
    on_epoch_end: object


def _train_encoded(run: _Run, encoded: EncodedFile, mesh, resume: bool) -> TrainResult:
    config, vocab = run.config, run.vocab
    keep_prob = keep_probabilities(vocab.counts, config.sample)
    log_downsampling(vocab.counts, keep_prob, config.sample)
    platform = jax.local_devices()[0].platform
    devices_per_step = mesh.size if mesh is not None else 1
    kernel = resolve_kernel(config, platform, on_mesh=mesh is not None)
    step_centres, _ = step_width(config, vocab.counts, platform, devices_per_step, kernel)
    resources.check_memory(config, len(vocab), len(encoded), kernel, step_centres, devices_per_step, platform)
    source = epoch_source(encoded.read, len(encoded), keep_prob, config, step_centres, kernel, process_columns(step_centres))
    epoch0 = source.groups(0)
    first = next(epoch0)
    centres = planned_centres(source, first)
    if centres == 0:
        raise ConfigError("the corpus gives no training pairs: it needs sentences of at least 2 in-vocabulary words")
    plan = plan_batches(config, centres, step_centres)
    optimizer = make_optimizer(config, plan.total_steps, kernel)
    # Placed before the tables are drawn, and not kept on the host: its one copy is the device's.
    noise_ids = placed_noise_table(vocab.counts, config.ns_exponent, mesh, slots=config.shard_tables)
    init_key, train_key = jax.random.split(jax.random.PRNGKey(config.seed))
    layout = None if mesh is None else MeshLayout(mesh, len(vocab), config.shard_tables)  # where the carry lives
    start = functools.partial(_initial_state, config, init_key, train_key, len(vocab), optimizer)
    carry, history = _resume_or_start(run, start, resume, layout)
    # The fused kernel runs its workers as threads of one call; the XLA step runs on one device or a mesh.
    workers = mesh.size if mesh is not None else resolved_workers(config) if kernel == "fused" else 1
    log_training_start(config, len(vocab), workers, kernel if mesh is None else f"{kernel} on a mesh")
    example_call = padded(plan, *first.block(0, min(len(first), plan.per_call)))  # the step compiles for its shapes
    run_many, layout, carry = _compile(config, optimizer, noise_ids, carry, layout, kernel, source.streams, example_call)
    del noise_ids  # run_many holds it
    started = ([first], epoch0) if history.epochs_done == 0 else None
    del first  # the stream holds it now, and lets go of it once used
    start_epoch = history.epochs_done
    schedule = learning_rate_schedule(config, plan.total_steps, kernel, xp=np)  # the progress bar's and log's lr
    carry, wall = _run_epochs(run, carry, history, plan, schedule, run_many, layout, source, encoded.raw_words,
                              started)
    final = result_params(model_params(carry.trainable), layout)  # row-sharded tables stay where they are
    # The result's initial tables are drawn again from the same key when first asked for, rather
    # than copied now: training never holds a spare copy of both tables.
    initial = functools.partial(host_init_params, init_key, len(vocab), config.dim, config.init)
    ran = resolved_config(config, kernel)
    return _result(run, ran, final, initial, history, encoded.raw_words, wall, config.epochs - start_epoch)


def _initial_state(config: TrainConfig, init_key, train_key, vocab_size: int, optimizer, layout) -> Carry:
    """The carry the first step takes; on a mesh (`layout`) born there, each process drawing only its devices' rows."""
    if layout is not None:
        return layout.initial_carry(config, init_key, train_key, optimizer)
    initial = init_params(init_key, vocab_size, config.dim, config.init)
    trainable = Params(initial.E, None if config.tied else initial.W)
    return Carry(trainable, optimizer.init(trainable), train_key)


def _resume_or_start(run: _Run, start, resume: bool, layout) -> tuple[Carry, History]:
    """The checkpoint's state when resuming from one, else start(layout) (_initial_state) and an empty history."""
    carry, history = None, History()
    if resume and run.checkpoints is not None and checkpoint.exists(run.checkpoints):
        # Straight onto the mesh (`layout`): each process reads only the rows its devices take. The template
        # is shapes only (eval_shape): no tables are drawn just to be replaced, a V x D pair beside the restored.
        carry, history = restore_state(run.checkpoints, jax.eval_shape(start, None), run.config, run.vocab, layout)
        log.info("resuming from the checkpoint in %s after %i of %i epochs", run.checkpoints, history.epochs_done,
                 run.config.epochs)
    if not distributed.same_on_all_processes(history.epochs_done):
        raise DataError(f"the processes found different checkpoints in {run.checkpoints}: --out must be on a "
                        "filesystem every process reads")
    return carry if carry is not None else start(layout), history


def _compile(config: TrainConfig, optimizer, noise_ids: jax.Array, carry: Carry, layout, kernel: str, streams: int,
             example_call):
    """(run_many, mesh layout or None, carry laid out for it): one device (compiled now), or a mesh."""
    if layout is None:
        step_for = functools.partial(make_step, config, optimizer, kernel=kernel, streams=streams)
        return _with_noise(compile_ahead(step_for, carry, example_call, noise_ids), noise_ids), None, carry
    carry = layout.place(carry)
    # The batch's row changes are gathered whole onto every device, once a slot (the partitioner would
    # otherwise sum a V·D table per step, or exchange the ids, the changes and the loss each on its own).
    step_for = functools.partial(make_step, config, optimizer, rows_sharding=layout.replicated)
    run_many = compile_sharded(step_for, layout, carry)
    return _with_noise(run_many, noise_ids), layout, carry


def _with_noise(run_many, noise_ids):
    """run_many with the noise table bound: (carry, centers, contexts, mask) -> (carry, totals)."""
    return lambda carry, centers, contexts, mask: run_many(carry, centers, contexts, mask, noise_ids)


def _run_epochs(run: _Run, carry: Carry, history: History, plan: BatchPlan, schedule, run_many, layout,
                source: EpochSource, raw_words: int, started) -> tuple[Carry, float]:
    """Train the remaining epochs; returns the carry and the seconds spent in them."""
    bar = progress_bar(run.progress and is_primary(), plan.total_steps, step_count(carry.opt_state))
    prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    upcoming = agreed(prefetched(call_stream(source, plan, history.epochs_done, started), prefetch), source, plan)
    first_epoch, wall, effective_words = history.epochs_done, 0.0, 0
    try:
        for epoch in range(first_epoch, run.config.epochs):
            began = time.perf_counter()
            meter = LossMeter(bar, epoch, plan, schedule, raw_words, began, step_count(carry.opt_state))
            carry = _run_epoch(carry, upcoming, run_many, meter)
            seconds = time.perf_counter() - began  # the epoch's training, not its checkpoint
            wall += seconds
            effective_words += meter.effective_words
            _end_epoch(run, carry, layout, history, meter, seconds)
    finally:
        upcoming.close()
        prefetch.shutdown(wait=True, cancel_futures=True)
        bar.close()
    epochs_run = run.config.epochs - first_epoch
    if epochs_run:
        log_training_end(raw_words * epochs_run, effective_words, wall)
    else:
        log.info("the checkpoint in %s already holds all %i epochs: nothing left to train", run.checkpoints,
                 run.config.epochs)
    return carry, wall


def _run_epoch(carry: Carry, calls, run_many, meter: LossMeter) -> Carry:
    """The calls of one epoch, up to its EPOCH_END; `meter` tallies their loss, pairs and centres."""
    for item in calls:
        if item is EPOCH_END:
            break
        inputs, call_pairs = item
        carry, totals = run_many(carry, *inputs)
        mask = inputs[-1]  # 1 for each centre the call trains, 0 for padding
        meter.add(totals, call_pairs, int(np.count_nonzero(mask)))
        if not math.isfinite(meter.loss_sum):
            return carry  # the caller reports the divergence
    meter.end()
    return carry


def _end_epoch(run: _Run, carry: Carry, layout, history: History, meter: LossMeter, seconds: float) -> None:
    """Refuse a diverged epoch; record it, checkpoint it, log it, and tell the caller."""
    epoch, epoch_loss = meter.epoch, meter.mean_loss()
    check_converging(epoch_loss, epoch, run.config, len(run.vocab), meter.plan.batch_size, run.checkpoints)
    history.record(epoch_loss, meter.pairs)
    if run.checkpoints is not None:  # every process writes the rows its devices hold
        save_state(run.checkpoints, carry, run.config, run.vocab, history)
    meter.log_epoch_end(seconds)
    if run.on_epoch_end is not None:
        run.on_epoch_end(epoch + 1, epoch_loss)


def _result(run: _Run, ran: TrainConfig, final: Params, initial, history: History, raw_words: int, wall: float,
            epochs_run: int) -> TrainResult:
    return TrainResult(
        params=final,
        initial_tables=initial,
        vocab=run.vocab,
        loss_per_epoch=[float(x) for x in history.loss_per_epoch],
        wall_seconds=wall,
        words_per_second=raw_words * epochs_run / wall if wall > 0 else 0.0,
        corpus_words=raw_words,
        pairs_per_epoch=history.pairs_per_epoch,
        config=ran,
    )
