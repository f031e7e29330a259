"""Checkpoints of the training state: a round trip gives the same carry, and another run's checkpoint is refused."""

import dataclasses
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from resealed_checkpoint import reseal, split

from jaxgram import TrainConfig, checkpoint, fused
from jaxgram.distributed import device_mesh
from jaxgram.errors import ConfigError, DataError
from jaxgram.losses import Params
from jaxgram.parallel import MeshLayout
from jaxgram.step import Carry, make_optimizer
from jaxgram.train_state import History, restore_state, save_state, saved_config
from jaxgram.vocab import build_vocabulary

CONFIG = TrainConfig(dim=4, min_count=1, optimizer="adam")
VOCAB = build_vocabulary([["a", "b", "c", "a"]], min_count=1)


def _carry(config: TrainConfig, replicas: int = 1, seed: int = 0) -> Carry:
    rng = np.random.default_rng(seed)
    trainable = Params(jnp.asarray(rng.normal(size=(len(VOCAB), config.dim)), jnp.float32),
                       None if config.tied else jnp.asarray(rng.normal(size=(len(VOCAB), config.dim)), jnp.float32))
    key = jax.random.PRNGKey(seed) if replicas == 1 else jax.random.split(jax.random.PRNGKey(seed), replicas)
    return Carry(trainable, make_optimizer(config, 10).init(trainable), key)


@pytest.mark.parametrize("tied", [False, True])
def test_a_saved_state_restores_exactly(tmp_path, tied):
    config = dataclasses.replace(CONFIG, tied=tied)
    saved, history = _carry(config, seed=1), History(2, [3.5, 3.0], [100, 98])
    save_state(tmp_path, saved, config, VOCAB, history)
    restored, restored_history = restore_state(tmp_path, _carry(config, seed=2), config, VOCAB)
    assert restored_history == history
    for mine, theirs in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(saved), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert (restored.trainable.W is None) == tied


def test_another_runs_checkpoint_is_refused(tmp_path):
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(1, [1.0], [10]))
    with pytest.raises(ConfigError, match=r"dim=5 \(checkpoint: 4\)"):
        restore_state(tmp_path, _carry(dataclasses.replace(CONFIG, dim=5)), dataclasses.replace(CONFIG, dim=5), VOCAB)
    with pytest.raises(DataError, match="different vocabulary"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, build_vocabulary([["a", "b", "d"]], min_count=1))
    # An older jaxgram's run of 2 CPU replicas saved one random key per replica.
    save_state(tmp_path, _carry(CONFIG, replicas=2), CONFIG, VOCAB, History(1, [1.0], [10]))
    with pytest.raises(DataError, match=r"key of shape \(2, 2\), expected \(2,\).*several CPU replicas"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)


def test_history_records_each_epoch():
    history = History()
    history.record(2.0, 50)
    history.record(1.5, 49)
    assert history == History(2, [2.0, 1.5], [50, 49])


def test_epochs_may_change_on_resume_but_not_below_the_epochs_done(tmp_path, caplog):
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(2, [3.5, 3.0], [100, 98]))
    for epochs in (2, 3, 8):  # fewer than planned (5) but not than done, or more
        longer = dataclasses.replace(CONFIG, epochs=epochs)
        caplog.clear()
        _, history = restore_state(tmp_path, _carry(longer), longer, VOCAB)
        assert history.epochs_done == 2
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "epochs=5 with epochs=" + str(epochs) in warning.getMessage()
    caplog.clear()
    restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)
    assert not caplog.records  # the planned epochs: nothing to warn about
    shorter = dataclasses.replace(CONFIG, epochs=1)
    with pytest.raises(ConfigError, match=r"^epochs=1 is fewer than the 2 epochs already trained .*epochs >= 2$"):
        restore_state(tmp_path, _carry(shorter), shorter, VOCAB)
    other = dataclasses.replace(CONFIG, epochs=8, seed=9)
    with pytest.raises(ConfigError, match=r": seed=9 \(checkpoint: 1\)$"):  # epochs may change; seed may not
        restore_state(tmp_path, _carry(other), other, VOCAB)


def test_a_checkpoint_with_a_field_this_config_lacks_is_refused(tmp_path):
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(1, [1.0], [10]))
    saved = checkpoint.load(tmp_path)
    meta = {k: v for k, v in saved.meta.items() if k not in ("arrays_file", "arrays_sha256")}
    meta["config"] = {**meta["config"], "retired_option": 3}
    checkpoint.save(tmp_path, saved.arrays, meta)
    with pytest.raises(ConfigError, match="retired_option \\(only in the checkpoint\\)"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)


# -- the manifest and arrays are untrusted input ------------------------------------------------------

SAVED_CONFIG = CONFIG.to_dict()


@pytest.mark.parametrize("changes, refusal", [
    ({"format": 2}, "format=2, which is not allowed: only 1"),
    ({"format": True}, "format=true, which is not allowed: only 1"),
    ({"epochs_done": 9, "arrays_file": "epoch-9.npz"}, r"epochs_done=9, which is not allowed: from 1 to the run's epochs \(5\)"),
    ({"config": "dim=4"}, "config=\"dim=4\", which is not allowed: an object of the run's settings"),
    ({"config": {**SAVED_CONFIG, "dim": "4"}}, "a config that is not allowed: dim='4' has the wrong type: expected int"),
    ({"config": {**SAVED_CONFIG, "window": 0}}, "a config that is not allowed: window=0 is not allowed"),
    ({"vocab_sha256": None}, "vocab_sha256=null, which is not allowed: a sha256"),
    ({"loss_per_epoch": [3.5]}, r"loss_per_epoch=\[3.5\], which is not allowed: a list of 2 finite numbers"),
    ({"loss_per_epoch": [3.5, float("nan")]}, r"loss_per_epoch=\[3.5, NaN\], which is not allowed"),
    ({"pairs_per_epoch": [100, -1]}, r"pairs_per_epoch=\[100, -1\], which is not allowed: a list of 2 integers >= 0"),
    ({"opt_leaves": "2"}, "opt_leaves=\"2\", which is not allowed: an integer >= 0"),
])
def test_every_manifest_field_is_typed_and_range_checked(tmp_path, changes, refusal):
    """Each field save_state writes, resealed with a wrong type or out of range: one line naming the manifest,
    the field and what is allowed, from --resume's first read (saved_config) and from restore_state."""
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(2, [3.5, 3.0], [100, 98]))
    reseal(tmp_path, **changes)
    pattern = re.escape(f"checkpoint {tmp_path / checkpoint.MANIFEST} has ") + ".*" + refusal
    for read in (saved_config, lambda folder: restore_state(folder, _carry(CONFIG), CONFIG, VOCAB)):
        with pytest.raises(DataError, match=pattern) as refused:
            read(tmp_path)
        assert "\n" not in str(refused.value)


def _resave(folder, arrays) -> None:
    """The checkpoint in `folder` with other arrays, committed with every checksum right."""
    meta = {k: v for k, v in checkpoint.read_meta(folder).items() if k not in ("arrays_file", "arrays_sha256")}
    checkpoint.save(folder, arrays, meta)


@pytest.mark.parametrize("alter, refusal", [
    (lambda arrays: {**arrays, "E": arrays["E"].astype(np.float64)}, "holds E of dtype float64, expected float32"),
    (lambda arrays: {**arrays, "extra": np.zeros(2, np.float32)}, "holds the arrays E, W, extra, key, opt_0"),
    (lambda arrays: {**arrays, "W": np.zeros((len(VOCAB), 4000), np.float32)}, r"epoch-1\.npz is [\d,]+ bytes, more than"),
])
def test_arrays_of_another_name_shape_or_dtype_are_refused_before_use(tmp_path, alter, refusal):
    """Arrays other than the run's (resaved, so every sha256 holds): refused, and an arrays file larger than the
    run's tables take is refused before it is read."""
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(1, [1.0], [10]))
    _resave(tmp_path, alter(checkpoint.load(tmp_path).arrays))
    with pytest.raises(DataError, match=refusal):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)


def test_kernel_and_schedule_are_compared_by_what_ran(tmp_path):
    """An "auto" checkpoint resumes under the kernel and schedule it resolved to, and only those: adam always
    runs the XLA step, with the linear schedule."""
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(1, [1.0], [10]))
    for given in ({"kernel": "xla"}, {"alpha_schedule": "linear"}, {"kernel": "xla", "alpha_schedule": "linear"}):
        restore_state(tmp_path, _carry(CONFIG), dataclasses.replace(CONFIG, **given), VOCAB)
    per_worker = dataclasses.replace(CONFIG, alpha_schedule="per_worker")
    with pytest.raises(ConfigError, match=r": alpha_schedule='per_worker' \(checkpoint: 'auto', which ran 'linear'\)$"):
        restore_state(tmp_path, _carry(CONFIG), per_worker, VOCAB)


@pytest.mark.skipif(not fused.available(), reason="the fused kernel is not built here")
def test_an_auto_run_that_ran_fused_resumes_with_kernel_fused_and_not_xla(tmp_path):
    sgd = dataclasses.replace(CONFIG, optimizer="sgd")
    save_state(tmp_path, _carry(sgd), sgd, VOCAB, History(1, [1.0], [10]))
    restore_state(tmp_path, _carry(sgd), dataclasses.replace(sgd, kernel="fused"), VOCAB)
    with pytest.raises(ConfigError, match=r": kernel='xla' \(checkpoint: 'auto', which ran 'fused'\)$"):
        restore_state(tmp_path, _carry(sgd), dataclasses.replace(sgd, kernel="xla"), VOCAB)


# -- checkpoints in parts, restored onto any mesh ------------------------------------------------------

def _layout(shard_tables: bool) -> MeshLayout:
    return MeshLayout(device_mesh(2), len(VOCAB), shard_tables)  # 3 rows: sharded, padded to 4


@pytest.mark.parametrize("shard_tables", [None, False, True])
def test_a_checkpoint_in_parts_restores_exactly_onto_any_layout(tmp_path, shard_tables):
    """Two processes' parts (E, W and Adam's moments split at row 1), restored with no mesh, or laid out on
    a mesh of two devices (tables replicated, or row-sharded and padded): the saved state, exactly."""
    saved = _carry(CONFIG, seed=1)
    save_state(tmp_path, saved, CONFIG, VOCAB, History(1, [1.0], [10]))
    split(tmp_path, 1, tables=("E", "W", "opt_1", "opt_2", "opt_3", "opt_4"))
    layout = None if shard_tables is None else _layout(shard_tables)
    restored, history = restore_state(tmp_path, _carry(CONFIG, seed=2), CONFIG, VOCAB, layout)
    assert history.epochs_done == 1
    for mine, theirs in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(saved), strict=True):
        if layout is not None and mine.ndim == 2:
            assert mine.sharding == layout.table and mine.shape == (layout.rows, CONFIG.dim)
            np.testing.assert_array_equal(mine[len(VOCAB):], 0)  # padding rows
            mine = mine[:len(VOCAB)]
        np.testing.assert_array_equal(mine, theirs)


def test_a_sharded_carry_is_saved_from_its_shards_without_the_padding(tmp_path):
    """One process holding both devices' shards writes one part, its rows unpadded: what any mesh restores."""
    layout, saved = _layout(True), _carry(CONFIG, seed=1)
    save_state(tmp_path, layout.place(saved), CONFIG, VOCAB, History(1, [1.0], [10]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "epoch-1.npz"]
    loaded = checkpoint.load(tmp_path).arrays
    for name, array in zip(("E", "W"), saved.trainable, strict=True):
        np.testing.assert_array_equal(loaded[name], array)
    restored, _ = restore_state(tmp_path, _carry(CONFIG, seed=2), CONFIG, VOCAB)
    np.testing.assert_array_equal(restored.trainable.E, saved.trainable.E)


def test_a_part_of_other_rows_or_a_missing_part_is_refused_on_restore(tmp_path):
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(1, [1.0], [10]))
    split(tmp_path, 1, tables=("E", "W", "opt_1", "opt_2", "opt_3", "opt_4"))
    reseal(tmp_path, parts=[{**checkpoint.read_meta(tmp_path)["parts"][0], "rows": [1, 2]}])
    with pytest.raises(DataError, match=r"holds 2 rows of each table, expected 3"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)
    reseal(tmp_path, parts=[{**checkpoint.read_meta(tmp_path)["parts"][0], "rows": [2, 3]}])
    with pytest.raises(DataError, match=r"checkpoint in .* holds E of shape \(1, 4\), expected \(2, 4\)"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB)
    (tmp_path / "epoch-1.part-1.npz").unlink()
    with pytest.raises(DataError, match=r"epoch-1\.part-1\.npz is missing, so the checkpoint in .* is incomplete: refused$"):
        restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, _layout(True))


def _flip_byte(path, where: float) -> None:
    data = bytearray(path.read_bytes())
    data[min(int(len(data) * where), len(data) - 1)] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("file", ["epoch-1.npz", "epoch-1.part-1.npz"])
@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])  # a zip header, within the arrays, the zip's directory
def test_a_damaged_part_is_refused_onto_a_mesh_as_not_its_sha256(tmp_path, file, where):
    """Restoring onto a mesh reads each part once, in blocks, placing rows as it goes: a part with one byte
    flipped, wherever it is (even where the file's structure can no longer be read), is refused in one line
    as not matching the manifest's sha256, and no arrays come back."""
    save_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, History(1, [1.0], [10]))
    split(tmp_path, 1, tables=("E", "W", "opt_1", "opt_2", "opt_3", "opt_4"))
    _flip_byte(tmp_path / file, where)
    for shard_tables in (False, True):
        with pytest.raises(DataError, match=rf"{re.escape(file)} do not match the sha256 in .*: truncated or altered$"):
            restore_state(tmp_path, _carry(CONFIG), CONFIG, VOCAB, _layout(shard_tables))


# Saves a carry of V = argv[1] words and D = argv[2] laid out on 2 devices (sharded, SGD: E and W), then
# prints the peak growth of resident memory (from the OS) while restore_state places it on the mesh again.
RESTORE_PEAK = """
    import gc, sys, tempfile
    import jax, jax.numpy as jnp, numpy as np
    from jaxgram import TrainConfig
    from jaxgram.distributed import device_mesh
    from jaxgram.losses import Params
    from jaxgram.parallel import MeshLayout
    from jaxgram.step import Carry, make_optimizer
    from jaxgram.train_state import History, restore_state, save_state
    from jaxgram.vocab import build_vocabulary

    def kib(field):
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))

    V, D = int(sys.argv[1]), int(sys.argv[2])
    config = TrainConfig(dim=D, min_count=1, optimizer="sgd", devices=2, shard_tables=True)
    vocab = build_vocabulary([[f"w{i}" for i in range(V)]], min_count=1)
    layout, folder = MeshLayout(device_mesh(2), V, True), tempfile.mkdtemp()

    def carry():
        tables = Params(jnp.ones((V, D), jnp.float32), jnp.full((V, D), 2.0, jnp.float32))
        return Carry(tables, make_optimizer(config, 10).init(tables), jax.random.PRNGKey(0))

    save_state(folder, layout.place(carry()), config, vocab, History(1, [1.0], [10]))
    gc.collect()
    open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from here
    before = kib("VmRSS")
    restored, _ = restore_state(folder, jax.eval_shape(carry), config, vocab, layout)
    jax.block_until_ready(restored)
    assert float(restored.trainable.E[V - 1, 0]) == 1.0 and float(restored.trainable.W[0, D - 1]) == 2.0
    print((kib("VmHWM") - before) * 1024 / (V * D * 4))
"""


def test_restoring_onto_a_mesh_holds_a_block_of_rows_besides_the_placed_tables():
    """V = 400k, D = 200 (305 MiB a table), 1 process x 2 devices, sharded, SGD: restoring places E and W
    (two tables) and holds little else: no part file read whole (the old reader's +4.0 tables), no shard."""
    from test_distributed import run_child

    growth = float(run_child(RESTORE_PEAK, "400000", "200", devices=2))
    assert growth < 2 + 0.5, f"restore's peak grew by {growth:.2f} tables, placed tables 2"
