"""What a run shows: the progress bar's loss is loss.json's loss per training pair."""

import time

import numpy as np
import pytest

from jaxgram.batches import BatchPlan
from jaxgram.progress import LossMeter


class _Bar:
    """Keeps what the meter last showed (tqdm's own drawing is not under test)."""

    def __init__(self):
        self.postfix, self.steps = {}, 0

    def update(self, steps):
        self.steps += steps

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
    meter.settle(0)
    bar.close()
    drawn = capsys.readouterr().err
    assert ("loss=3.0000" in drawn and "2/4" in drawn) if enabled else drawn == ""
