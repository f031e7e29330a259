"""What a training run shows while it runs: the progress bar, and each epoch's loss read back one call behind."""

from __future__ import annotations

import math
import sys
import time

import numpy as np
import optax

from jaxgram.batches import BatchPlan
from jaxgram.distributed import to_host
from jaxgram.step import optimizer_step_count


class LossMeter:
    """Sums an epoch's losses, fetched one call behind so the device always has the next call queued,
    and keeps the progress bar's loss, learning rate and words/s current."""

    def __init__(self, bar, epoch: int, plan: BatchPlan, schedule: optax.Schedule, raw_words: int, began: float,
                 step0: int):
        self.bar, self.epoch, self.plan, self.schedule = bar, epoch, plan, schedule
        self.raw_words, self.began, self.step0 = raw_words, began, step0
        self.pending, self.loss_sum, self.done = [], 0.0, 0

    def add(self, totals) -> None:
        self.pending.append(totals)
        self.settle(1)

    def settle(self, keep: int) -> None:
        while len(self.pending) > keep:
            value = float(np.sum(to_host(self.pending.pop(0)).astype(np.float64)))
            self.loss_sum += value
            self.done += self.plan.steps_per_call
            self._show()
            if not math.isfinite(value):
                self.pending.clear()
                self.loss_sum = value

    def _show(self) -> None:
        plan, done = self.plan, self.done
        self.bar.update(plan.steps_per_call)
        seconds = max(time.perf_counter() - self.began, 1e-9)
        self.bar.set_postfix(epoch=self.epoch + 1, loss=f"{self.loss_sum / max(done * plan.batch_size * plan.replicas, 1):.4f}",
                             lr=f"{float(self.schedule(self.step0 + done)):.5f}",
                             words_s=f"{self.raw_words * done / plan.steps_per_epoch / seconds:.0f}", refresh=False)


def step_count(opt_state) -> int:
    """The optimiser's step count (where the learning-rate schedule is), 0 if it keeps none."""
    count = optimizer_step_count(opt_state)
    return 0 if count is None else int(to_host(count))


def progress_bar(enabled: bool, total: int, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, file=sys.stderr, unit="step", dynamic_ncols=True)
