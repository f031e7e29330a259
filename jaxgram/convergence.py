"""When a run must stop: an epoch whose loss shows the step made the model worse than knowing nothing.

A diverged run never exits 0. Its loss per pair either stops being finite or rises above what a
model with every score 0 pays (untrained_loss); in either case more epochs will not undo it, and
the vectors are noise. The trainer stops with one line naming the step size and alpha, and the
last good epoch's checkpoint stays as it was. Only a checkpoint of this run is called that: a run
whose first epoch diverges saved none, and a checkpoint already in the folder is an earlier run's.
"""

from __future__ import annotations

import math
from pathlib import Path

from jaxgram import checkpoint
from jaxgram.config import TrainConfig
from jaxgram.errors import TrainingDiverged

# An epoch's loss is a float32 sum of per-pair losses; a run that barely moves (alpha 1e-9, as a
# test of gensim's pair count does) sits at the untrained loss up to this relative rounding.
UNTRAINED_LOSS_ROUNDING = 1e-4


def untrained_loss(config: TrainConfig, vocab_size: int) -> float:
    """Loss per pair of a model that knows nothing: every score 0, so (1+K)·ln 2 for negative
    sampling (word2vec's zero output table starts exactly there) and ln V for full softmax."""
    return (1 + config.negative) * math.log(2) if config.objective == "ns" else math.log(vocab_size)


def check_converging(epoch_loss: float, epoch: int, config: TrainConfig, vocab_size: int, centres_per_step: int,
                     checkpoints: Path | None) -> None:
    """Raise TrainingDiverged when an epoch's loss per pair is not finite or above untrained_loss
    (beyond float32 rounding of the sums): the step has made the model worse than knowing nothing,
    and more epochs will not undo it."""
    limit = untrained_loss(config, vocab_size)
    if math.isfinite(epoch_loss) and epoch_loss <= limit * (1 + UNTRAINED_LOSS_ROUNDING):
        return
    raise TrainingDiverged(
        f"training diverged: loss per pair {epoch_loss:.4g} in epoch {epoch + 1} (an untrained model's is "
        f"{limit:.4f}) at alpha={config.alpha} with {centres_per_step} centres per step (batch_size="
        f"{config.batch_size if config.batch_size is not None else 'default'}); lower alpha or batch_size (--alpha, "
        "--batch-size)" + _what_is_kept(epoch, checkpoints))


def _what_is_kept(epoch: int, checkpoints: Path | None) -> str:
    """What the divergence message says of the checkpoint in `checkpoints`. The epochs before `epoch`
    (counted from 0) are this run's: each ended with a checkpoint, or, resumed, came from the one it
    continues. With none before it, a checkpoint there is an earlier run's, which this run never touched."""
    if checkpoints is None or not checkpoint.exists(checkpoints):
        return ""
    if epoch == 0:
        return f"; the checkpoint in {checkpoints} is an earlier run's, left as it was"
    return f"; the last good epoch's checkpoint in {checkpoints} is intact"
