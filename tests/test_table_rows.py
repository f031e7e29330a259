"""jaxgram.table_rows: row-sharded tables read out a block of rows at a time (the two-process
protocol, process 0 asking and the others serving, runs in test_distributed.py)."""

from __future__ import annotations

import json

from test_distributed import run_child

# On 2 CPU devices: a 13-row table padded to 16 rows of garbage, row-sharded, read in blocks of 5 rows and
# whole, twice (np.asarray: blocks of rows_per_write rows, shrunk to 5); prints the shapes of the blocks and
# of what each gather brought to the host.
READ_BLOCKS = """
    import json
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from jaxgram import table_rows, word2vec_format
    from jaxgram.losses import Params

    host = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    host[13:] = np.nan
    host[1, 1] = -0.0  # the gather sums bits, not floats: -0.0 stays -0.0
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    table = table_rows.ShardedTable(jax.device_put(host, NamedSharding(mesh, PartitionSpec("data", None))), 13)
    gathered, gather = [], table_rows._gather
    table_rows._gather = lambda array, first, size: gathered.append(gather(array, first, size).shape) or gather(
        array, first, size)
    word2vec_format.FLOATS_PER_WRITE = 5 * 3  # np.asarray reads blocks of rows_per_write(3) = 5 rows
    blocks = list(table.blocks(5))
    assert np.concatenate(blocks).tobytes() == host[:13].tobytes()
    assert np.asarray(table).tobytes() == host[:13].tobytes() and np.asarray(table, np.float64).dtype == np.float64
    # One process: nothing to ask of anyone, the tables come back as they are.
    params = Params(table, table)
    with table_rows.asked_by_primary(params) as asked:
        assert asked is params
    table_rows.serve_rows(params)
    # The program that gathers a block of a bigger table: what it exchanges and the scratch memory it needs.
    big = jax.device_put(np.zeros((1600, 8), np.float32), NamedSharding(mesh, PartitionSpec("data", None)))
    start = jax.device_put(np.int32(0), NamedSharding(mesh, PartitionSpec()))
    program = table_rows._slicer(5, mesh, "data").lower(big, start).compile()
    print(json.dumps({"devices": len(jax.devices()), "shape": table.shape, "blocks": [block.shape for block in blocks],
                      "gathered": gathered, "all_gather": "all-gather" in program.as_text(),
                      "scratch_bytes": program.memory_analysis().temp_size_in_bytes, "big_bytes": big.nbytes}))
"""


def test_a_sharded_table_comes_to_the_host_a_block_at_a_time_without_its_padding():
    read = json.loads(run_child(READ_BLOCKS, devices=2))
    assert read["devices"] == 2 and read["shape"] == [13, 3]
    assert read["blocks"] == [[5, 3], [5, 3], [3, 3]]
    # Every gather (3 for the blocks, 3 for each np.asarray) brought 5 rows to the host, never the table.
    assert read["gathered"] == [[5, 3]] * 9
    # Nor on the devices: a slice of the sharded table left to XLA's partitioner all-gathered the whole
    # table onto each device first (scratch 51,200 bytes, the table's size); picking rows and summing them
    # moves and holds one block.
    assert not read["all_gather"] and read["scratch_bytes"] < read["big_bytes"] / 10
