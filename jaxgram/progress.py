"""What a training run shows: the progress bar, each epoch's loss read back one call behind, and the
log records of the `jaxgram` logger (the points where gensim logs, phrased as gensim phrases them).

The library only emits records (logger "jaxgram.progress"; the vocabulary's come from
"jaxgram.vocab"); showing them is the application's choice, e.g. logging.basicConfig(level=logging.INFO).
"""

from __future__ import annotations

import logging
import math
import sys
import time

import numpy as np
import optax

from jaxgram.batches import BatchPlan
from jaxgram.config import TrainConfig
from jaxgram.distributed import to_host
from jaxgram.step import optimizer_step_count

log = logging.getLogger(__name__)


class LossMeter:
    """Sums an epoch's losses, fetched one call behind so the device always has the next call queued,
    keeps the progress bar's loss, learning rate and words/s current, and counts the epoch's
    training pairs and effective words (centres trained after subsampling)."""

    def __init__(self, bar, epoch: int, plan: BatchPlan, schedule: optax.Schedule, raw_words: int, began: float,
                 step0: int):
        self.bar, self.epoch, self.plan, self.schedule = bar, epoch, plan, schedule
        self.raw_words, self.began, self.step0 = raw_words, began, step0
        self.pending, self.loss_sum, self.done = [], 0.0, 0
        self.pairs, self.settled_pairs, self.effective_words = 0, 0, 0

    def add(self, totals, pairs: int, centres: int) -> None:
        """One call's summed loss (still on the device), and the pairs and centres it trained."""
        self.pairs += pairs
        self.effective_words += centres
        self.pending.append((totals, pairs))
        self.settle(1)

    def settle(self, keep: int) -> None:
        while len(self.pending) > keep:
            totals, pairs = self.pending.pop(0)
            value = float(np.sum(to_host(totals).astype(np.float64)))
            self.loss_sum += value
            self.settled_pairs += pairs
            self.done += self.plan.steps_per_call
            self._show()
            if not math.isfinite(value):
                self.pending.clear()
                self.loss_sum = value

    def end(self) -> None:
        """The epoch's calls are all in: settle them, and set the bar's total to the run's steps as they
        now stand (an epoch may take a call more or fewer than planned: subsampling draws its centres)."""
        self.settle(0)
        self.bar.total = self.run_steps()
        self.bar.refresh()

    def steps_taken(self) -> int:
        """The optimiser's step count when the calls settled so far have run."""
        return self.step0 + self.done

    def run_steps(self) -> int:
        """The run's steps: those taken so far, and the plan's for the epochs still to come."""
        return self.steps_taken() + (self.plan.epochs - self.epoch - 1) * self.plan.steps_per_epoch

    def mean_loss(self) -> float:
        """The epoch's loss per training pair (what loss.json records); 0 for an epoch whose subsample kept
        no pair (it trained nothing: loss.json's pairs_per_epoch says 0), as gensim's summed loss is."""
        return self.loss_sum / self.pairs if self.pairs else 0.0

    def log_epoch_end(self, seconds: float) -> None:
        """gensim's end-of-epoch line, with the epoch's loss, the learning rates of its first and last step,
        and the steps taken by its end against the plan's; a warning when the epoch strayed from the plan
        by more than a call (which would leave the learning rate off its schedule)."""
        log.info("EPOCH %i: training on %i raw words (%i effective words) took %.1fs, %.0f effective words/s, "
                 "loss %.4f, alpha %.6f to %.6f, step %i of %i", self.epoch + 1, self.raw_words, self.effective_words,
                 seconds, self.effective_words / max(seconds, 1e-9), self.mean_loss(), float(self.schedule(self.step0)),
                 float(self.schedule(self.step0 + max(self.done, 1) - 1)), self.steps_taken(), self.plan.total_steps)
        if self.pairs == 0:
            log.warning("epoch %i trained nothing: its subsample kept no training pair (a corpus this small trains "
                        "every epoch with sample=0)", self.epoch + 1)
        if abs(self.done - self.plan.steps_per_epoch) > self.plan.steps_per_call:
            log.warning("epoch %i took %i steps where the plan has %i: the learning rate is off its schedule",
                        self.epoch + 1, self.done, self.plan.steps_per_epoch)

    def _show(self) -> None:
        plan, done = self.plan, self.done
        self.bar.update(plan.steps_per_call)
        seconds = max(time.perf_counter() - self.began, 1e-9)
        # Loss per training pair so far, as loss.json records each epoch's.
        self.bar.set_postfix(epoch=self.epoch + 1, loss=f"{self.loss_sum / max(self.settled_pairs, 1):.4f}",
                             lr=f"{float(self.schedule(self.step0 + done)):.5f}",
                             words_s=f"{self.raw_words * done / plan.steps_per_epoch / seconds:.0f}", refresh=False)


def log_downsampling(counts: np.ndarray, keep_prob: np.ndarray, sample: float) -> None:
    """gensim's summary of subsampling: how many words it thins, and the corpus it is expected to leave."""
    retained = int(counts.sum())
    expected = float(np.sum(counts * keep_prob))
    log.info("sample=%g downsamples %i most-common words", sample, int(np.count_nonzero(keep_prob < 1)))
    log.info("downsampling leaves estimated %i word corpus (%.1f%% of prior %i)", round(expected),
             100.0 * expected / max(retained, 1), retained)


def log_training_start(config: TrainConfig, vocab_size: int, workers: int, kernel: str) -> None:
    """gensim's line on what is about to be trained (jaxgram is always skip-gram: sg=1)."""
    log.info("training model with %i workers on %i vocabulary and %i features, using sg=1 objective=%s sample=%g "
             "negative=%i window=%i shrink_windows=%s epochs=%i alpha=%g min_alpha=%g (kernel %s)", workers, vocab_size,
             config.dim, config.objective, config.sample, config.negative, config.window, config.shrink_window,
             config.epochs, config.alpha, config.min_alpha, kernel)


def log_training_end(raw_words: int, effective_words: int, seconds: float) -> None:
    """gensim's closing line: the words of all epochs this call trained, and the time they took."""
    log.info("training on %i raw words (%i effective words) took %.1fs, %.0f effective words/s", raw_words,
             effective_words, seconds, effective_words / max(seconds, 1e-9))


def step_count(opt_state) -> int:
    """The optimiser's step count (where the learning-rate schedule is), 0 if it keeps none."""
    count = optimizer_step_count(opt_state)
    return 0 if count is None else int(to_host(count))


def progress_bar(enabled: bool, total: int, initial: int):
    """tqdm's bar over the run's steps, or, when not `enabled`, a bar that shows nothing (and costs no import of tqdm)."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, file=sys.stderr, unit="step", dynamic_ncols=True)


class _NoBar:
    """The calls a run makes on its progress bar, doing nothing."""

    total = 0

    def update(self, steps: int) -> None:
        pass

    def refresh(self) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def close(self) -> None:
        pass
