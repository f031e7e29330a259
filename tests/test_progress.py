"""What a run shows: the progress bar's loss is loss.json's loss per training pair, and its steps the steps taken."""

import logging
import time

import numpy as np
import pytest

from jaxgram.batches import BatchPlan
from jaxgram.progress import LossMeter


class _Bar:
    """Keeps what the meter last showed (tqdm's own drawing is not under test)."""

    def __init__(self):
        self.postfix, self.steps, self.total = {}, 0, None

    def update(self, steps):
        self.steps += steps

    def refresh(self):
        pass

    def set_postfix(self, refresh=True, **shown):
        self.postfix = shown


def test_the_bar_shows_the_loss_per_pair_that_loss_json_records():
    bar = _Bar()
    plan = BatchPlan(steps_per_call=2, batch_size=10, steps_per_epoch=4, epochs=1)
    meter = LossMeter(bar, 0, plan, lambda count: 0.025, raw_words=100, began=time.perf_counter(), step0=0)
    meter.add(np.array([30.0, 30.0], np.float32), pairs=20, centres=12)  # 60 over 20 pairs
    meter.add(np.array([10.0, 10.0], np.float32), pairs=10, centres=7)   # 20 over 10 pairs
    assert float(bar.postfix["loss"]) == pytest.approx(3.0)  # one call behind: the first call's 60 / 20
    meter.settle(0)
    assert meter.mean_loss() == pytest.approx(80 / 30)
    assert bar.postfix["loss"] == f"{80 / 30:.4f}" and bar.steps == 4


@pytest.mark.parametrize("enabled", [True, False])
def test_the_bar_draws_on_stderr_only_when_enabled(enabled, capsys):
    from jaxgram.progress import progress_bar

    plan = BatchPlan(steps_per_call=2, batch_size=10, steps_per_epoch=4, epochs=1)
    bar = progress_bar(enabled, total=4, initial=0)
    meter = LossMeter(bar, 0, plan, lambda count: 0.025, raw_words=100, began=time.perf_counter(), step0=0)
    meter.add(np.array([30.0, 30.0], np.float32), pairs=20, centres=12)
    meter.end()  # the epoch, planned for 4 steps, took 2: the bar ends at 2 of 2
    bar.close()
    drawn = capsys.readouterr().err
    assert ("loss=3.0000" in drawn and "2/2" in drawn.split("\r")[-1]) if enabled else drawn == ""


def test_the_bar_and_the_epoch_log_count_the_steps_taken(caplog):
    caplog.set_level(logging.INFO)
    bar = _Bar()
    bar.steps = 4  # where progress_bar starts it: the first epoch's steps, taken before
    plan = BatchPlan(steps_per_call=2, batch_size=10, steps_per_epoch=4, epochs=3)
    schedule = lambda count: 0.025 - 0.001 * count  # noqa: E731
    # The second epoch, after a first of 4 steps, takes a call more than the plan has: 3 calls, 6 steps.
    meter = LossMeter(bar, 1, plan, schedule, raw_words=100, began=time.perf_counter(), step0=4)
    for _ in range(3):
        meter.add(np.array([30.0, 30.0], np.float32), pairs=20, centres=12)
    meter.end()
    assert bar.steps == 4 + 6 and bar.total == 4 + 6 + 4  # the steps taken, and the plan's for the epoch to come
    meter.log_epoch_end(1.0)
    (record,) = [r for r in caplog.records if str(r.msg).startswith("EPOCH")]
    # (..., alpha of the epoch's first step, of its last, steps taken by its end, the plan's steps)
    assert record.args[6:] == (pytest.approx(0.025 - 0.004), pytest.approx(0.025 - 0.009), 10, 12)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # a call off the plan: subsampling
    meter = LossMeter(bar, 2, plan, schedule, raw_words=100, began=time.perf_counter(), step0=10)
    for _ in range(4):
        meter.add(np.array([30.0, 30.0], np.float32), pairs=20, centres=12)
    meter.end()
    assert bar.total == bar.steps == 18  # the run's last epoch: the bar ends at the steps taken
    meter.log_epoch_end(1.0)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.args == (3, 8, 4)
