"""Save and restore the training state (tables, optimiser state, random key) at the end of an epoch.

The file format (arrays + a sha256-checked manifest, written so a kill leaves the previous
checkpoint or the new one) is jaxgram.checkpoint's; this module decides what goes in and
checks, on restore, that the checkpoint belongs to this run: same config (but for `epochs`,
which may change as long as it is not below the epochs done: see _check_epochs), same
vocabulary, same shapes and the same number of CPU workers (each holds its own random key).

A checkpoint is input like any other file (its checksums hold whatever its last editor wrote):
every manifest field is typed and range-checked, each arrays file is read only up to the bytes
this run's tables and state take, and each array must have the shape and dtype the run expects.

On a mesh every process saves the rows of the tables its devices hold and restores only the rows
its devices take, on whatever mesh resumes the run (jaxgram.checkpoint_shards).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxgram import checkpoint, checkpoint_shards
from jaxgram.config import TrainConfig, resolved_alpha_schedule
from jaxgram.errors import ConfigError, DataError
from jaxgram.losses import Params
from jaxgram.parallel import MeshLayout, training_mesh
from jaxgram.step import Carry, resolve_kernel
from jaxgram.validation import field_types
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
    """One checkpoint of `carry` (host, device or mesh arrays) after `history.epochs_done` epochs. Every
    process of a run calls it: each writes the rows of the tables its devices hold (checkpoint_shards)."""
    named = _named_arrays(carry)
    meta = {"format": FORMAT, "epochs_done": history.epochs_done, "config": config.to_dict(),
            "vocab_sha256": vocab.fingerprint(), "loss_per_epoch": history.loss_per_epoch,
            "pairs_per_epoch": history.pairs_per_epoch, "opt_leaves": _opt_leaf_count(carry)}
    checkpoint_shards.save(folder, named, _table_names(named), len(vocab), meta)


def saved_config(folder) -> dict | None:
    """The config a checkpoint in `folder` was trained with (None when there is no checkpoint):
    what `--resume` starts from, so only the options given again on the command line change."""
    if not checkpoint.exists(folder):
        return None
    return dict(_checked_meta(folder)["config"])


def epochs_trained(folder) -> int:
    """How many epochs the checkpoint in `folder` holds; 0 when there is none."""
    return _checked_meta(folder)["epochs_done"] if checkpoint.exists(folder) else 0


def restore_state(folder, template: Carry, config: TrainConfig, vocab: Vocabulary,
                  layout: MeshLayout | None = None) -> tuple[Carry, History]:
    """The carry and history saved in `folder`, shaped like `template` (its tables [V, D] unpadded, or laid
    out by `layout`: then each process reads only the parts of the tables its devices take, whatever mesh
    wrote them); refuses another run's checkpoint, and a missing or damaged part, on every process.

    The manifest is checked first, then each arrays file, read only up to the bytes its arrays take in
    the template's shapes, and each array must have the template's shape and dtype."""
    meta = _checked_meta(folder)
    _check_same_run(folder, meta, config, vocab)
    if meta["opt_leaves"] != _opt_leaf_count(template):
        raise DataError(f"checkpoint in {folder} has optimiser state of another shape")
    named = _named_arrays(template)
    tables = _table_names(named)
    expected = {name: ((len(vocab), *array.shape[1:]) if name in tables else tuple(array.shape), np.dtype(array.dtype))
                for name, array in named.items()}

    def read() -> dict:
        reader = checkpoint_shards.PartReader(folder, meta, expected, tables, len(vocab))
        if layout is not None:
            return checkpoint_shards.placed(reader, layout)
        return {name: jnp.asarray(array) for name, array in reader.whole().items()}

    arrays = checkpoint_shards.agreed(read)
    leaves, treedef = jax.tree_util.tree_flatten(template.opt_state)
    opt_state = jax.tree_util.tree_unflatten(treedef, [arrays[f"opt_{i}"] for i in range(len(leaves))])
    carry = Carry(Params(arrays["E"], arrays.get("W")), opt_state, arrays["key"])
    return carry, History(meta["epochs_done"], list(meta["loss_per_epoch"]), list(meta["pairs_per_epoch"]))


def _named_arrays(carry: Carry) -> dict:
    """The carry's arrays under the names a checkpoint stores them by (as given: JAX or NumPy arrays)."""
    named = {"E": carry.trainable.E, "key": carry.key}
    if carry.trainable.W is not None:
        named["W"] = carry.trainable.W
    named.update({f"opt_{i}": leaf for i, leaf in enumerate(jax.tree_util.tree_leaves(carry.opt_state))})
    return named


def _opt_leaf_count(carry: Carry) -> int:
    return len(jax.tree_util.tree_leaves(carry.opt_state))


def _table_names(named: dict) -> set[str]:
    """The arrays stored by rows: E and those shaped like it (W, per-entry optimiser state)."""
    return {name for name, array in named.items() if name != "key" and np.shape(array) == np.shape(named["E"])}


def _checked_meta(folder) -> dict:
    """The checkpoint's manifest with every field save_state writes typed and in range: its checksum
    proves only that whoever wrote it last resealed it, so each value is checked as input."""
    meta = checkpoint.read_meta(folder)  # arrays_file, arrays_sha256 and epochs_done checked there
    manifest = Path(folder) / checkpoint.MANIFEST
    if not (checkpoint.is_count(meta.get("format")) and meta["format"] == FORMAT):
        raise checkpoint.field_error(manifest, "format", meta.get("format"), f"only {FORMAT}, what this jaxgram writes")
    epochs = _checked_config(manifest, meta.get("config")).epochs
    done = meta["epochs_done"]
    if not 1 <= done <= epochs:
        raise checkpoint.field_error(manifest, "epochs_done", done, f"from 1 to the run's epochs ({epochs})")
    for name, valid, allowed in (
        ("vocab_sha256", checkpoint.is_sha256, "a sha256, 64 hex digits"),
        ("loss_per_epoch", lambda v: _is_list_of(v, done, _is_finite_number), f"a list of {done} finite numbers"),
        ("pairs_per_epoch", lambda v: _is_list_of(v, done, checkpoint.is_count), f"a list of {done} integers >= 0"),
        ("opt_leaves", checkpoint.is_count, "an integer >= 0"),
    ):
        if not valid(meta.get(name)):
            raise checkpoint.field_error(manifest, name, meta.get(name), allowed)
    return meta


def _checked_config(manifest: Path, saved) -> TrainConfig:
    """The checkpoint's config, its fields checked as any config's are. A field this jaxgram does not
    know is left for _check_same_run to name."""
    if not isinstance(saved, dict):
        raise checkpoint.field_error(manifest, "config", saved, "an object of the run's settings")
    known = {key: value for key, value in saved.items() if key in field_types(TrainConfig)}
    try:
        return TrainConfig.from_dict(known)
    except ConfigError as error:
        raise DataError(f"checkpoint {manifest} has a config that is not allowed: {error}") from None


def _is_list_of(value, length: int, valid) -> bool:
    return isinstance(value, list) and len(value) == length and all(valid(item) for item in value)


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_same_run(folder, meta: dict, config: TrainConfig, vocab: Vocabulary) -> None:
    """Refuse a checkpoint of another config or vocabulary; `epochs` alone may change (see _check_epochs)."""
    diffs = _config_diffs(meta["config"], config)
    if diffs:
        raise ConfigError(f"--resume with a config that differs from the checkpoint in {folder}: {', '.join(diffs)}")
    if meta["vocab_sha256"] != vocab.fingerprint():
        raise DataError(f"checkpoint in {folder} was trained on a different vocabulary (corpus changed?)")
    _check_epochs(folder, meta, config)


# Options whose "auto" stands for what the run chose (step.resolve_kernel, config.resolved_alpha_schedule):
# they are compared by what ran, so `--resume --kernel fused` continues an "auto" run that ran fused.
_RESOLVED_OPTIONS = ("kernel", "alpha_schedule")


def _config_diffs(saved: dict, config: TrainConfig) -> list[str]:
    """Each setting of `config` other than the checkpoint's, as "name=value (checkpoint: value)"."""
    current = config.to_dict()
    diffs = [diff for k in current if (diff := _setting_diff(k, saved, config)) is not None]
    return diffs + [f"{k} (only in the checkpoint)" for k in saved if k not in current]


def _setting_diff(name: str, saved: dict, config: TrainConfig) -> str | None:
    value = getattr(config, name)
    if name not in saved:
        return f"{name}={value!r} (checkpoint: None)"
    if name == "epochs" or saved[name] == value:
        return None
    if name not in _RESOLVED_OPTIONS:
        return f"{name}={value!r} (checkpoint: {saved[name]!r})"
    ran = _what_ran(saved, config)[name]
    if ran == _what_ran(config.to_dict(), config)[name]:
        return None
    return f"{name}={value!r} (checkpoint: {saved[name]!r}{f', which ran {ran!r}' if ran != saved[name] else ''})"


def _what_ran(options: dict, config: TrainConfig) -> dict[str, str]:
    """The kernel and alpha schedule a run with `options` resolves to here (this platform, mesh or not)."""
    given = dataclasses.replace(config, **{k: options.get(k, getattr(config, k)) for k in _RESOLVED_OPTIONS})
    try:
        kernel = resolve_kernel(given, jax.local_devices()[0].platform, on_mesh=training_mesh(config) is not None)
    except ConfigError:  # fused asked for where it cannot run: compared as given
        return {k: getattr(given, k) for k in _RESOLVED_OPTIONS}
    return {"kernel": kernel, "alpha_schedule": resolved_alpha_schedule(given, kernel)}


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

