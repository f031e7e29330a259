"""Save and restore the training state (tables, optimiser state, random key) at the end of an epoch.

The file format (arrays + a sha256-checked manifest, written so a kill leaves the previous
checkpoint or the new one) is jaxgram.checkpoint's; this module decides what goes in and
checks, on restore, that the checkpoint belongs to this run: same config (but for `epochs`,
which may change as long as it is not below the epochs done: see _check_epochs), same
vocabulary, same shapes and the same number of CPU workers (each holds its own random key).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from jaxgram import checkpoint
from jaxgram.config import TrainConfig
from jaxgram.errors import ConfigError, DataError
from jaxgram.losses import Params
from jaxgram.step import Carry
from jaxgram.vocab import Vocabulary

FORMAT = 1

log = logging.getLogger(__name__)


@dataclass
class History:
    """What the finished epochs left: their count, mean loss and trained pairs."""

    epochs_done: int = 0
    loss_per_epoch: list[float] = field(default_factory=list)
    pairs_per_epoch: list[int] = field(default_factory=list)

    def record(self, loss: float, pairs: int) -> None:
        self.epochs_done += 1
        self.loss_per_epoch.append(loss)
        self.pairs_per_epoch.append(pairs)


def save_state(folder, carry: Carry, config: TrainConfig, vocab: Vocabulary, history: History) -> None:
    """One checkpoint of `carry` (host or device arrays) after `history.epochs_done` epochs."""
    leaves = jax.tree_util.tree_leaves(carry.opt_state)
    arrays = {"E": np.asarray(carry.trainable.E), "key": np.asarray(carry.key)}
    if carry.trainable.W is not None:
        arrays["W"] = np.asarray(carry.trainable.W)
    arrays.update({f"opt_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
    meta = {"format": FORMAT, "epochs_done": history.epochs_done, "config": config.to_dict(),
            "vocab_sha256": vocab.fingerprint(), "loss_per_epoch": history.loss_per_epoch,
            "pairs_per_epoch": history.pairs_per_epoch, "opt_leaves": len(leaves)}
    checkpoint.save(folder, arrays, meta)


def saved_config(folder) -> dict | None:
    """The config a checkpoint in `folder` was trained with (None when there is no checkpoint):
    what `--resume` starts from, so only the options given again on the command line change."""
    if not checkpoint.exists(folder):
        return None
    return dict(checkpoint.read_meta(folder).get("config") or {})


def restore_state(folder, template: Carry, config: TrainConfig, vocab: Vocabulary) -> tuple[Carry, History]:
    """The carry and history saved in `folder`, shaped like `template`; refuses another run's checkpoint."""
    saved = checkpoint.load(folder)
    meta, arrays = saved.meta, saved.arrays
    _check_same_run(folder, meta, config, vocab)
    leaves, treedef = jax.tree_util.tree_flatten(template.opt_state)
    if meta.get("opt_leaves") != len(leaves):
        raise DataError(f"checkpoint in {folder} has optimiser state of another shape")
    opt_leaves = [jnp.asarray(arrays[f"opt_{i}"], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
    E = jnp.asarray(arrays["E"])
    W = jnp.asarray(arrays["W"]) if template.trainable.W is not None else None
    if E.shape != template.trainable.E.shape:
        raise DataError(f"checkpoint in {folder} holds E of shape {E.shape}, expected {template.trainable.E.shape}")
    if arrays["key"].shape != template.key.shape:
        raise DataError(f"checkpoint in {folder} holds a random key of shape {arrays['key'].shape}, expected "
                        f"{template.key.shape} (written by an older jaxgram that trained several CPU replicas?)")
    carry = Carry(Params(E, W), jax.tree_util.tree_unflatten(treedef, opt_leaves), jnp.asarray(arrays["key"]))
    history = History(int(meta["epochs_done"]), list(meta["loss_per_epoch"]), list(meta["pairs_per_epoch"]))
    return carry, history


def _check_same_run(folder, meta: dict, config: TrainConfig, vocab: Vocabulary) -> None:
    """Refuse a checkpoint of another config or vocabulary; `epochs` alone may change (see _check_epochs)."""
    saved, current = meta.get("config") or {}, config.to_dict()
    diffs = [f"{k}={v!r} (checkpoint: {saved.get(k)!r})" for k, v in current.items()
             if k not in saved or (k != "epochs" and saved[k] != v)]
    diffs += [f"{k} (only in the checkpoint)" for k in saved if k not in current]
    if diffs:
        raise ConfigError(f"--resume with a config that differs from the checkpoint in {folder}: {', '.join(diffs)}")
    if meta.get("vocab_sha256") != vocab.fingerprint():
        raise DataError(f"checkpoint in {folder} was trained on a different vocabulary (corpus changed?)")
    _check_epochs(folder, meta, config)


def _check_epochs(folder, meta: dict, config: TrainConfig) -> None:
    """A run may be resumed with another epoch count, but never fewer epochs than its checkpoint holds.

    The learning-rate schedule is always that of a `config.epochs`-epoch run: the epochs still
    to come take the rates an uninterrupted run of that length has at those epochs. The
    epochs already trained keep the rates they had, so a run continued with more epochs than
    it started with is not bitwise the run that had them from the start.
    """
    done, planned = int(meta.get("epochs_done", 0)), meta["config"]["epochs"]
    if config.epochs < done:
        raise ConfigError(f"epochs={config.epochs} is fewer than the {done} epochs already trained in the checkpoint "
                          f"in {folder}: resume with epochs >= {done}")
    if config.epochs != planned:  # on purpose, or a --resume that forgot the run's --epochs: say so either way
        log.warning("resuming a run of epochs=%s with epochs=%i: the epochs after the %i trained take the learning "
                    "rates of a %i-epoch run", planned, config.epochs, done, config.epochs)

