"""A diverged run never exits 0: a loss that is not finite or above an untrained model's stops it."""

import dataclasses

import numpy as np
import pytest

from jaxgram import TrainConfig
from jaxgram.errors import TrainingDiverged
from jaxgram.toy import toy_sentences
from jaxgram.training import train

SMALL = TrainConfig(dim=16, window=2, negative=3, epochs=2, min_count=1, batch_size=64, seed=3)


def test_a_loss_above_an_untrained_models_stops_the_run_with_the_step_and_alpha_named(tmp_path):
    from jaxgram.convergence import check_converging, untrained_loss

    config = dataclasses.replace(SMALL, negative=5, alpha=0.5, batch_size=512)
    limit = untrained_loss(config, vocab_size=100)
    assert limit == pytest.approx(6 * np.log(2))
    assert untrained_loss(dataclasses.replace(config, objective="softmax"), 100) == pytest.approx(np.log(100))
    check_converging(limit * 0.9, 0, config, 100, 85, None)  # learning: no error
    check_converging(limit * 1.00005, 0, config, 100, 85, None)  # float32 rounding of a run that barely moved
    for loss in (limit * 1.001, 9.9e9, float("nan")):  # finite but worse than knowing nothing, or not finite
        with pytest.raises(TrainingDiverged, match=r"epoch 3.*alpha=0\.5 with 85 centres per step \(batch_size=512\); "
                                                   r"lower alpha or batch_size"):
            check_converging(loss, 2, config, 100, 85, tmp_path)


def test_a_huge_step_stops_with_one_line_or_is_refused_before_training(tmp_path):
    # alpha 5 on the XLA step: a step wider than the stale-update bound allows is refused before any
    # work, naming the width that fits; one centre per step (within the bound) diverges, and the run
    # stops in epoch 1 with the one-line error, never a result.
    from jaxgram.errors import ConfigError

    config = dataclasses.replace(SMALL, alpha=5.0, kernel="xla", epochs=3)
    with pytest.raises(ConfigError, match=r"^batch_size=64 is too wide .* at alpha=5\.0: .*the widest that fits is "
                                          r"batch_size=\d+$"):
        train(toy_sentences() * 10, config, out=tmp_path / "wide", progress=False)
    assert not (tmp_path / "wide" / "vectors.bin").exists()
    with pytest.raises(TrainingDiverged, match=r"in epoch 1 .*lower alpha") as stopped:
        train(toy_sentences() * 10, dataclasses.replace(config, batch_size=3), out=tmp_path / "run", progress=False)
    assert "\n" not in str(stopped.value)
    assert not (tmp_path / "run" / "vectors.bin").exists()


def test_only_a_checkpoint_of_this_run_is_called_the_last_good_epochs(tmp_path):
    """A run whose first epoch diverges saved no checkpoint: one already in the folder is an earlier run's,
    and the message says so; from the second epoch on the checkpoint is this run's last good epoch's."""
    from jaxgram import checkpoint
    from jaxgram.convergence import check_converging

    folder = tmp_path / "checkpoint"
    checkpoint.save(folder, {"E": np.zeros((2, 2), np.float32)}, {"epochs_done": 4})
    said = {}
    for epoch, where in ((0, folder), (1, folder), (0, tmp_path / "empty"), (0, None)):
        with pytest.raises(TrainingDiverged) as stopped:
            check_converging(float("nan"), epoch, SMALL, 100, 85, where)
        said[epoch, where] = str(stopped.value)
    assert said[0, folder].endswith(f"; the checkpoint in {folder} is an earlier run's, left as it was")
    assert "last good" not in said[0, folder]
    assert said[1, folder].endswith(f"; the last good epoch's checkpoint in {folder} is intact")
    assert "checkpoint" not in said[0, tmp_path / "empty"] and "checkpoint" not in said[0, None]
