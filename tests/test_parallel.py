"""Which devices a run uses (one, unless `devices` asks for a mesh), and CPU workers: the fused kernel's threads."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from compiled_hlo import collectives, loop_collectives, whole_table_instructions
from test_distributed import run_child

from jaxgram import TrainConfig, train
from jaxgram.parallel import training_devices
from jaxgram.toy import toy_sentences

# alpha 0.25: at word2vec's 0.025 this toy run's loss falls by 0.0003 an epoch, less than the number of
# negatives gensim's update skips (those equal to the centre, common among 46 words) moves it.
SMALL = TrainConfig(dim=8, window=2, negative=3, epochs=2, min_count=1, batch_size=32, seed=2, alpha=0.25)


def test_one_device_trains_whatever_the_host_has_unless_devices_asks_for_more():
    assert len(jax.local_devices()) >= 2, "the test session configures one CPU device per worker (conftest)"
    for config in (SMALL, dataclasses.replace(SMALL, workers=2), dataclasses.replace(SMALL, optimizer="adam"),
                   dataclasses.replace(SMALL, objective="softmax")):
        assert training_devices(config) == jax.local_devices()[:1]


def test_the_xla_step_is_one_device_whose_run_the_worker_count_does_not_change():
    # Before, every local device trained a replica and their changes were summed; now one device
    # trains, so the CPU worker count (the fused kernel's threads) leaves the XLA run bitwise alone.
    corpus = toy_sentences() * 5
    xla = dataclasses.replace(SMALL, kernel="xla")
    one, again, two = (train(corpus, dataclasses.replace(xla, workers=n), progress=False) for n in (1, 1, 2))
    np.testing.assert_array_equal(one.params.E, again.params.E)
    np.testing.assert_array_equal(one.params.E, two.params.E)
    np.testing.assert_array_equal(one.params.W, two.params.W)
    assert two.loss_per_epoch[-1] < two.loss_per_epoch[0]


def test_fused_workers_are_threads_of_one_call_and_walk_their_own_shares_of_the_corpus():
    from jaxgram import fused

    if not fused.available():
        pytest.fail(f"the fused kernel is not built: {fused.unavailable_reason()}")
    corpus = toy_sentences() * 5
    assert training_devices(dataclasses.replace(SMALL, workers=2), kernel="fused") == jax.local_devices()[:1]
    one, again, two = (train(corpus, dataclasses.replace(SMALL, kernel="fused", workers=n), progress=False)
                       for n in (1, 1, 2))
    # One worker reproduces a run bitwise; with two, the threads train their shares of the
    # corpus side by side (data.training_groups) and race on shared rows, as gensim's do.
    np.testing.assert_array_equal(one.params.E, again.params.E)
    np.testing.assert_array_equal(one.params.W, again.params.W)
    assert not np.array_equal(one.params.E, two.params.E)
    assert one.pairs_per_epoch == two.pairs_per_epoch
    assert two.loss_per_epoch[-1] < two.loss_per_epoch[0]


# Compiles the mesh step (compile_sharded over make_step, as training._compile builds it) for each
# NAME=JSON of argv[4:] (a TrainConfig's fields and "rows_hint": make_step's rows_sharding is the
# replicated layout) on tables of argv[1] rows, two steps of argv[2] context slots, and writes
# its compiled HLO to argv[3]/NAME.hlo.
MESH_STEP_HLO = """
    import functools, json, sys
    from pathlib import Path
    import jax
    import numpy as np
    from jaxgram import TrainConfig
    from jaxgram.data import noise_table
    from jaxgram.distributed import device_mesh, global_array
    from jaxgram.init import init_params
    from jaxgram.losses import Params
    from jaxgram.parallel import MeshLayout, compile_sharded
    from jaxgram.step import Carry, make_optimizer, make_step
    vocab_size, slots, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    rng = np.random.default_rng(0)
    for spec in sys.argv[4:]:
        name, values = spec.split("=", 1)
        values = json.loads(values)
        rows_hint = values.pop("rows_hint")
        config = TrainConfig(**values)
        layout = MeshLayout(device_mesh(config.devices), vocab_size, config.shard_tables)
        optimizer = make_optimizer(config, 100)
        initial = init_params(jax.random.PRNGKey(0), vocab_size, config.dim, "glorot")
        carry = layout.place(Carry(initial, optimizer.init(initial), jax.random.PRNGKey(1)))
        step_for = functools.partial(make_step, config, optimizer, rows_sharding=layout.replicated if rows_hint else None)
        width = config.batch_size * config.devices  # a step's centres: batch_size per device
        centers = rng.integers(0, vocab_size, (2, width), dtype=np.int32)
        contexts = rng.integers(-1, vocab_size, (2, width, slots), dtype=np.int32)
        mask = np.ones((2, width), np.float32)
        noise_ids = global_array(noise_table(np.full(vocab_size, 1 / vocab_size)), layout.replicated)
        lowered = compile_sharded(step_for, layout, carry).lower(carry, centers, contexts, mask, noise_ids)
        (folder / f"{name}.hlo").write_text(lowered.compile().as_text())
"""


def _mesh_step_hlo(folder, devices: int, vocab_size: int, slots: int, **configs) -> dict[str, str]:
    """{name: compiled HLO} of the mesh step for each name=config, compiled in a child with `devices` CPU devices."""
    run_child(MESH_STEP_HLO, str(vocab_size), str(slots), str(folder),
              *(f"{name}={json.dumps(values)}" for name, values in configs.items()), devices=devices, timeout=120)
    return {name: (folder / f"{name}.hlo").read_text() for name in configs}


@pytest.mark.parametrize("devices", [2, 4])
def test_the_mesh_step_moves_and_holds_only_the_rows_it_touches(tmp_path, devices):
    # A scatter into a row-sharded table can lower to an all-gather of the whole table
    # (jax-ml/jax#23052), and replicated tables to a sum of whole tables over the mesh: per slot of
    # a step, O(V x D) where the slot touches O(batch) rows. The vocabulary dwarfs a slot's rows
    # (V/4 = 5001 rows against 64 x 6), and is odd so the sharded tables are padded.
    vocab_size, dim, negative, slots, per_device = 20_001, 16, 4, 6, 16
    base = dict(dim=dim, negative=negative, batch_size=per_device, kernel="xla", devices=devices)
    # As training._compile builds the step: every device takes the gathered row updates whole.
    hlo = _mesh_step_hlo(tmp_path, devices, vocab_size, slots,
                         replicated={**base, "rows_hint": True}, sharded={**base, "shard_tables": True, "rows_hint": True},
                         replicated_unhinted={**base, "rows_hint": False},
                         sharded_adam={**base, "shard_tables": True, "optimizer": "adam", "rows_hint": False})
    padded = -(-vocab_size // devices) * devices
    table_rows = {vocab_size, padded, padded // devices}  # whole, padded whole, one shard
    touched = per_device * devices * (negative + 2)  # a slot's rows: a context of E, the centre and K negatives of W

    def whole_tables(name):
        return [line for rows in table_rows for line in whole_table_instructions(hlo[name], rows, dim)]

    def oversized(name):  # collectives returning an array larger than a slot's rows
        return [c.line for c in collectives(hlo[name]) if any(np.prod(dims) > touched * dim for _, dims in c.results)]

    for name, local_rows in (("replicated", vocab_size), ("sharded", padded // devices)):
        assert f"f32[{local_rows},{dim}]" in hlo[name]  # the tables are in the module the checks read
        assert not whole_tables(name), whole_tables(name)[:3]
        assert collectives(hlo[name]) and not oversized(name), oversized(name)[:3]
    # The checks see what they look for: without the replicated rows hint, the partitioner sums
    # whole replicated tables over the mesh; Adam updates every entry of its shards.
    assert oversized("replicated_unhinted")
    assert whole_tables("sharded_adam")


def test_each_slot_of_the_mesh_step_makes_few_exchanges(tmp_path):
    # Across processes each exchange is a round trip (gloo on CPU: milliseconds), so a slot's count
    # of them, not their bytes, sets the multi-process speed. The slot's row ids and loss are
    # exchanged once a step; in the slot, replicated tables take one all-gather of the rows'
    # changes, row-sharded ones also look their rows up (ids out, rows summed back). Before:
    # 7 and 8 a slot.
    base = dict(dim=16, negative=4, batch_size=16, kernel="xla", devices=2)
    hlo = _mesh_step_hlo(tmp_path, 2, 20_001, 6, replicated={**base, "rows_hint": True},
                         sharded={**base, "shard_tables": True, "rows_hint": True})
    per_slot = {name: max(loop_collectives(text), key=len) for name, text in hlo.items()}
    # The one exchange: every stream's changes to its context's row of E and its 1 + K rows of W.
    assert [(c.kind, c.results) for c in per_slot["replicated"]] == [("all-gather", (("f32", (32, 6, 16)),))]
    assert 2 <= len(per_slot["sharded"]) <= 4, [c.line for c in per_slot["sharded"]]


# Builds MeshLayout.initial_carry on tables of argv[1] rows over all devices for each NAME=JSON
# (a TrainConfig's fields) of argv[3:], and saves each local shard of each leaf (E, W, the
# optimiser state's leaves, the key) with where it starts to argv[2]/NAME.npz.
BORN_CARRY = """
    import json, sys
    import jax
    import numpy as np
    from jaxgram import TrainConfig
    from jaxgram.parallel import MeshLayout, training_mesh
    from jaxgram.step import make_optimizer
    vocab_size, folder = int(sys.argv[1]), sys.argv[2]
    for spec in sys.argv[3:]:
        name, values = spec.split("=", 1)
        config = TrainConfig(**json.loads(values))
        layout = MeshLayout(training_mesh(config), vocab_size, config.shard_tables)
        init_key, train_key = jax.random.split(jax.random.PRNGKey(config.seed))
        carry = layout.initial_carry(config, init_key, train_key, make_optimizer(config, 100))
        leaves = {"E": carry.trainable.E, "W": carry.trainable.W, "key": carry.key,
                  **{f"opt{i}": leaf for i, leaf in enumerate(jax.tree_util.tree_leaves(carry.opt_state))}}
        saved = {}
        for leaf_name, leaf in leaves.items():
            if leaf is None:
                continue
            assert leaf.sharding == layout.shardings(leaf), leaf_name
            for i, shard in enumerate(leaf.addressable_shards):
                saved[f"{leaf_name}/{i}"] = np.asarray(shard.data)
                saved[f"{leaf_name}/{i}/start"] = np.asarray((shard.index[0].start or 0) if shard.index else 0)
        np.savez(f"{folder}/{name}.npz", **saved)
"""


def test_tables_born_on_a_mesh_hold_init_params_rows_in_their_owners_shards(tmp_path):
    from jaxgram.init import ROWS_PER_DRAW, init_params

    # 3 devices: 3 * ROWS_PER_DRAW + 5 rows pad to a multiple of 3; each shard is longer than a
    # block, and they cross block boundaries and the last block's overlap with the one before.
    vocab_size, devices, dim = 3 * ROWS_PER_DRAW + 5, 3, 4
    base = dict(dim=dim, devices=devices, seed=7, kernel="xla")
    configs = {"glorot_adam": {**base, "shard_tables": True, "init": "glorot", "optimizer": "adam"},
               "word2vec_tied": {**base, "shard_tables": True, "tied": True},
               "replicated_adagrad": {**base, "init": "glorot", "optimizer": "adagrad"}}
    run_child(BORN_CARRY, str(vocab_size), str(tmp_path), *(f"{n}={json.dumps(c)}" for n, c in configs.items()),
              devices=devices)
    padded = -(-vocab_size // devices) * devices
    init_key, train_key = jax.random.split(jax.random.PRNGKey(7))
    for name, values in configs.items():
        born = np.load(tmp_path / f"{name}.npz")
        expected = init_params(init_key, vocab_size, dim, values.get("init", "word2vec"))
        sharded = values.get("shard_tables", False)
        for table in ("E",) if values.get("tied") else ("E", "W"):
            whole = np.zeros((padded if sharded else vocab_size, dim), np.float32)
            whole[:vocab_size] = np.asarray(getattr(expected, table))
            for i in range(devices):
                shard, start = born[f"{table}/{i}"], int(born[f"{table}/{i}/start"])
                assert shard.shape == ((padded // devices if sharded else vocab_size), dim)
                np.testing.assert_array_equal(shard, whole[start:start + len(shard)], err_msg=f"{name} {table} {i}")
        np.testing.assert_array_equal(born["key/0"], np.asarray(train_key))
        # The optimiser's state is its init, laid out like the tables: Adam's moments in shards
        # of zeros, Adagrad's accumulators (replicated here) at their start value.
        per_entry = [born[key] for key in born.files if key.startswith("opt") and born[key].ndim == 2]
        tables, start_value = {"glorot_adam": (4, 0.0), "word2vec_tied": (0, None), "replicated_adagrad": (2, 0.1)}[name]
        assert len(per_entry) == tables * devices
        for state in per_entry:
            assert state.shape == ((padded // devices if sharded else vocab_size), dim)
            assert np.all(state == np.float32(start_value))


# Lays out tables of argv[1] rows on a 2-device mesh (row-sharded, D = 200) each of two ways,
# after compiling both at a small size, and prints, for each, the growth of the process's peak
# resident memory (VmHWM, from the OS) while it was made, and the bytes its devices hold.
# born: MeshLayout.initial_carry; placed: whole tables drawn on the host, then laid out (a
# restored checkpoint's way, and the way every run started before tables were born sharded).
TABLES_MEMORY = """
    import json, sys
    import jax
    from jaxgram import TrainConfig
    from jaxgram.init import init_params
    from jaxgram.parallel import MeshLayout, training_mesh
    from jaxgram.step import Carry, make_optimizer

    def status(field):
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(field + ":"))

    def born(layout, key):
        return layout.initial_carry(config, key, key, optimizer)

    def placed(layout, key):
        tables = init_params(key, layout.vocab_size, config.dim, config.init)
        return layout.place(Carry(tables, optimizer.init(tables), key))

    config = TrainConfig(dim=200, devices=2, shard_tables=True, kernel="xla")
    optimizer, key, measured = make_optimizer(config, 100), jax.random.PRNGKey(0), {}
    for name, make in (("born", born), ("placed", placed)):
        make(MeshLayout(training_mesh(config), 20_000, True), key)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # the peak starts again from what is resident now
        resident = status("VmRSS")
        carry = make(MeshLayout(training_mesh(config), int(sys.argv[1]), True), key)
        held = sum(shard.data.nbytes for leaf in jax.tree_util.tree_leaves(carry) for shard in leaf.addressable_shards)
        measured[name] = {"growth": status("VmHWM") - resident, "held": held}
        del carry
    print(json.dumps(measured))
"""


def test_tables_born_sharded_never_exist_whole_on_the_host():
    # V = 400k, D = 200: 305 MiB a table. One process owns both devices here, so it holds all of
    # E and W; what it must not do is make them whole on the host first.
    vocab_size, dim = 400_000, 200
    table = vocab_size * dim * 4
    measured = json.loads(run_child(TABLES_MEMORY, str(vocab_size), devices=2))
    born, placed = measured["born"], measured["placed"]
    assert born["held"] == placed["held"] >= 2 * table
    # Born: what the devices hold, and a few blocks of rows (measured 0.04 of a table over; a
    # shard drawn on the host before it is copied to its device would be 0.5 over).
    assert born["growth"] < born["held"] + 0.25 * table, measured
    # The measure sees whole tables on the host: drawn whole, then copied out, it grew by
    # three tables more than the devices hold (measured 3.04).
    assert placed["growth"] > placed["held"] + 2 * table, measured
