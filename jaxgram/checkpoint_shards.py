"""Checkpoints of arrays laid out over processes: each process writes the rows of the tables its
devices hold, and on restore reads only the parts that hold the rows its devices take.

The file format is jaxgram.checkpoint's: process P > 0 writes its rows as a part file; once every
process has written (an allgather of what each wrote is the barrier), process 0 writes its own
rows with every other array and commits the manifest that lists the parts. The rows of a
checkpoint are the tables' real rows (no mesh padding), so any mesh, or none, restores any
checkpoint. A table every process holds whole (one device, or replicated over a mesh) is
process 0's to write: a checkpoint of one part, as a single process writes it. Restoring onto a
mesh reads each part once, hashed as it goes, and places its rows a block at a time (placed()).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable
from pathlib import Path

import jax
import numpy as np

from jaxgram import checkpoint, checkpoint_files, distributed
from jaxgram.errors import DataError, JaxgramError

MAX_PATH_BYTES = 4096  # Linux's PATH_MAX
# What a restore reads and places at a time: small beside a shard, large beside a block's dispatch.
BLOCK_BYTES = 4 << 20


def save(folder, named: dict, tables: set[str], rows: int, meta: dict) -> None:
    """Checkpoint `named` arrays (host, single-device or global) after meta["epochs_done"] epochs: the
    `tables` ([rows, D], padded or not) by the rows each process holds, the others by process 0.
    Every process of the run must call it; each writes into process 0's `folder` (the run's --out is
    process 0's), which must therefore be on a filesystem they share."""
    done, process, folder = meta["epochs_done"], jax.process_index(), _primary_folder(folder)
    start, stop = own_rows(named["E"], rows)
    mine = {name: _rows_as_blocks(named[name], start, stop) for name in tables}
    written = ""
    if process > 0 and stop > start:
        written = checkpoint.write_part(folder, checkpoint.part_name(done, process), mine)
    parts = _written_parts(done, start, stop, written)
    if process == 0:
        _check_rows_tiled(start, stop, parts, rows)
        arrays = {name: mine[name] if name in tables else _whole(array) for name, array in named.items()}
        checkpoint.save(folder, arrays, meta, parts)


def _primary_folder(folder) -> Path:
    """Process 0's `folder` (as an absolute path), on every process."""
    if jax.process_count() == 1:
        return Path(folder)
    from jax.experimental import multihost_utils

    encoded = np.zeros(MAX_PATH_BYTES, np.uint8)
    path = os.fsencode(os.path.abspath(folder))[:MAX_PATH_BYTES]  # no longer path can be opened anyway
    if jax.process_index() == 0:
        encoded[:len(path)] = np.frombuffer(path, np.uint8)
    return Path(os.fsdecode(np.asarray(multihost_utils.broadcast_one_to_all(encoded)).tobytes().rstrip(b"\0")))


def own_rows(table, rows: int) -> tuple[int, int]:
    """The rows [start, stop) of `table` that this process writes: those its devices hold, padding
    (rows past `rows`) left out; a table every process holds whole is process 0's."""
    spans = _local_spans(table)
    if spans is None:
        return (0, rows) if jax.process_index() == 0 else (rows, rows)
    for (_, end), (begin, _) in zip(spans, spans[1:]):
        if end != begin:  # a one-axis mesh gives each process a run of devices, so one run of rows
            raise RuntimeError(f"this process's shards of a table hold rows {spans}, which are not one run")
    return min(spans[0][0], rows), min(spans[-1][1], rows)


def _local_spans(table) -> list[tuple[int, int]] | None:
    """The row ranges of this process's shards of `table`, in order; None for a table held whole."""
    if not isinstance(table, jax.Array) or table.is_fully_replicated:
        return None
    return sorted({shard.index[0].indices(table.shape[0])[:2] for shard in table.addressable_shards})


def _rows_as_blocks(table, start: int, stop: int) -> checkpoint.Blocks:
    """Rows [start, stop) of `table`, as the blocks of this process's shards: written shard by shard,
    so no process ever holds more of a table than its devices do."""
    def blocks() -> Iterable[np.ndarray]:
        if _local_spans(table) is None:
            yield _whole(table)[start:stop]
            return
        shards = {shard.index[0].indices(table.shape[0])[:2]: shard for shard in table.addressable_shards}
        for (begin, end), shard in sorted(shards.items()):
            if min(end, stop) > max(begin, start):
                yield np.asarray(shard.data)[max(begin, start) - begin:min(end, stop) - begin]

    return checkpoint.Blocks((stop - start, *table.shape[1:]), np.dtype(table.dtype), blocks)


def _whole(array) -> np.ndarray:
    """An array every process holds whole (host, single-device, or replicated over a mesh), as NumPy."""
    if isinstance(array, jax.Array) and not array.is_fully_addressable:
        return np.asarray(array.addressable_data(0))
    return np.asarray(array)


def _written_parts(done: int, start: int, stop: int, sha256: str) -> list[checkpoint.Part]:
    """The parts every process other than 0 wrote (their rows and sha256), in the order of their rows.
    Each process's answer comes only once it has written: this is also the barrier before the commit."""
    if jax.process_count() == 1:
        return []
    every = distributed.allgather_ints([start, stop, *bytes.fromhex(sha256 or "00" * 32)])
    parts = [checkpoint.Part(checkpoint.part_name(done, process), bytes(row[2:].astype(np.uint8)).hex(),
                             int(row[0]), int(row[1])) for process, row in enumerate(every) if process and row[1] > row[0]]
    return sorted(parts, key=lambda part: part.start)


def _check_rows_tiled(start: int, stop: int, parts: list[checkpoint.Part], rows: int) -> None:
    """Process 0's rows start the table and the parts go on from there to its end, as a reader requires."""
    ends = [stop, *(part.stop for part in parts)]
    if start != 0 or [part.start for part in parts] != ends[:-1] or ends[-1] != rows:
        raise RuntimeError(f"the processes hold rows [{start}, {stop}) and {parts} of {rows}: not one run from 0")


class PartReader:
    """The arrays of a checkpoint, each part read (its size bounded, its sha256 and arrays checked) once,
    when a row it holds is first asked for: a process reads only the parts holding rows it takes."""

    def __init__(self, folder, meta: dict, expected: dict, tables: set[str], rows: int):
        checkpoint.check_parts_present(folder, meta)  # missing parts: refused the same way by every process
        self.folder, self.expected, self.tables, self.row_count = Path(folder), expected, tables, rows
        first, *others = checkpoint.parts(meta)
        self.parts = [checkpoint.Part(first.file, first.sha256, 0, rows if first.stop is None else first.stop), *others]
        if self.parts[-1].stop != rows:
            raise DataError(f"checkpoint in {folder} holds {self.parts[-1].stop} rows of each table, expected {rows}")
        self._read: dict[int, dict] = {}

    def value(self, name: str) -> np.ndarray:
        """An array that is not a table (part 0 holds them)."""
        return self._part(0)[name]

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of table `name`, from the parts that hold them."""
        blocks = [self._part(index)[name][max(start, part.start) - part.start:min(stop, part.stop) - part.start]
                  for index, part in enumerate(self.parts) if min(stop, part.stop) > max(start, part.start)]
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks) if blocks else self._empty(name)

    def whole(self) -> dict[str, np.ndarray]:
        return {name: self.rows(name, 0, self.row_count) if name in self.tables else self.value(name)
                for name in self.expected}

    def _empty(self, name: str) -> np.ndarray:
        shape, dtype = self.expected[name]
        return np.zeros((0, *shape[1:]), dtype)

    def _part(self, index: int) -> dict[str, np.ndarray]:
        if index not in self._read:
            expected = self._expected(index)
            arrays = checkpoint.read_part(self.folder, self.parts[index], checkpoint.npz_bytes_bound(expected.values()))
            _check_arrays(self._where(index), arrays, expected)
            self._read[index] = arrays
        return self._read[index]

    def _expected(self, index: int) -> dict:
        """The (shape, dtype) of each array part `index` must hold: its rows of the tables, part 0 the rest too."""
        part = self.parts[index]
        return {name: ((part.stop - part.start, *shape[1:]) if name in self.tables else shape, dtype)
                for name, (shape, dtype) in self.expected.items() if index == 0 or name in self.tables}

    def _where(self, index: int) -> str:
        return f"checkpoint in {self.folder}" if index == 0 else f"checkpoint part {self.folder / self.parts[index].file}"

    def stream(self, index: int, spans: list[tuple[int, int]], write) -> dict[str, np.ndarray]:
        """Part `index` read once from start to end through one descriptor, hashed on the way: its tables'
        rows within `spans` handed to write(name, first_row, rows) a block at a time, its other arrays
        returned. A part other than the manifest's sha256 says is refused once read, before the caller
        returns what was written; one it cannot parse, or of other arrays, is refused too (the sha256 first)."""
        part, expected = self.parts[index], self._expected(index)
        bound = checkpoint.npz_bytes_bound(expected.values())
        with checkpoint_files.HashedFile(self.folder / part.file, "checkpoint arrays", bound) as file:
            try:
                members = file.members()
                _check_arrays(self._where(index), members, expected)
            except DataError:
                self._check_sha256(file, part)  # a file other than the manifest's is refused as that first
                raise
            values = {}
            for name, member in sorted(members.items(), key=lambda item: item[1].offset):  # in file order
                if name in self.tables:
                    _stream_rows(file, name, member, part, spans, write)
                else:
                    values[name] = _read_array(file, member)
            self._check_sha256(file, part)
        return values

    def _check_sha256(self, file: checkpoint_files.HashedFile, part: checkpoint.Part) -> None:
        if file.sha256() != part.sha256:
            raise checkpoint.sha256_mismatch(self.folder, part)


def _stream_rows(file, name: str, member, part: checkpoint.Part, spans: list[tuple[int, int]], write) -> None:
    """The rows of table `name` within `spans` that `part` holds, read from `file` a block at a time."""
    if member.fortran_order:
        raise DataError(f"checkpoint arrays {file.path} hold {name} in Fortran order, which jaxgram does not write")
    row_bytes = math.prod(member.shape[1:]) * member.dtype.itemsize
    block_rows = max(1, BLOCK_BYTES // max(row_bytes, 1))
    for start, stop in spans:
        start, stop = max(start, part.start), min(stop, part.stop)
        for first in range(start, stop, block_rows):
            file.skip_to(member.offset + (first - part.start) * row_bytes)
            rows = np.empty((min(block_rows, stop - first), *member.shape[1:]), member.dtype)  # a new one each
            file.read_into(rows)  # time: a device may keep the host's buffer (CPU) until the write has run
            write(name, first, rows)


def _read_array(file, member) -> np.ndarray:
    """An array that is not a table (a few numbers), read whole from `file`."""
    file.skip_to(member.offset)
    flat = np.empty(math.prod(member.shape), member.dtype)
    file.read_into(flat)
    return flat.reshape(member.shape[::-1]).T if member.fortran_order else flat.reshape(member.shape)


def _check_arrays(where: str, arrays: dict, expected: dict) -> None:
    """Refuse arrays other than the expected names, shapes and dtypes, before any is used."""
    if sorted(arrays) != sorted(expected):
        raise DataError(f"{where} holds the arrays {', '.join(sorted(arrays))}, expected {', '.join(sorted(expected))}")
    for name, (shape, dtype) in expected.items():
        what = "a random key" if name == "key" else name
        if arrays[name].shape != shape:
            # An older jaxgram trained several CPU replicas, each with its own random key.
            hint = " (written by an older jaxgram that trained several CPU replicas?)" if name == "key" else ""
            raise DataError(f"{where} holds {what} of shape {arrays[name].shape}, expected {shape}{hint}")
        if arrays[name].dtype != dtype:
            raise DataError(f"{where} holds {what} of dtype {arrays[name].dtype}, expected {dtype}")


def placed(reader: PartReader, layout) -> dict[str, jax.Array]:
    """The checkpoint's arrays laid out by `layout` (a parallel.MeshLayout): each process streams only the
    parts holding rows its devices take (and part 0, for the other arrays), writing their rows into its
    devices' shards a block at a time: besides the placed tables the host holds a block of rows, never a
    part file nor a shard. Each part's sha256 is checked once it is read, before anything is returned."""
    tables = {name: _PlacedTable(layout, shape[1], dtype) for name, (shape, dtype) in reader.expected.items()
              if name in reader.tables}
    spans = next(iter(tables.values())).spans()
    values = {}
    for index, part in enumerate(reader.parts):
        if index == 0 or any(min(stop, part.stop) > max(start, part.start) for start, stop in spans):
            values.update(reader.stream(index, spans, lambda name, row, rows: tables[name].write(row, rows)))
    return {name: tables[name].array() if name in tables else distributed.global_array(values[name], layout.replicated)
            for name in reader.expected}


@functools.partial(jax.jit, donate_argnums=0)
def _write_rows(shard: jax.Array, rows: jax.Array, at) -> jax.Array:
    return jax.lax.dynamic_update_slice(shard, rows, (at, 0))  # in place: the shard is donated


class _PlacedTable:
    """A [layout.rows, dim] table laid out by layout.table, made as zeros on this process's devices (the
    padding rows stay so) and filled in place by write(first_row, rows)."""

    def __init__(self, layout, dim: int, dtype: np.dtype):
        self.layout, self.shape = layout, (layout.rows, dim)
        self.bounds = {device: index[0].indices(layout.rows)[:2]
                       for device, index in layout.table.addressable_devices_indices_map(self.shape).items()}
        self.shards = {}  # bounds -> [the first device holding them, their rows]; the others copy it at the end
        for device, (start, stop) in self.bounds.items():
            if (start, stop) not in self.shards:  # zeros put there, not made by a program compiled for it
                self.shards[start, stop] = [device, jax.device_put(np.zeros((stop - start, dim), dtype), device)]

    def spans(self) -> list[tuple[int, int]]:
        """The rows of the unpadded table this process's devices hold, one span per shard, in order."""
        rows = self.layout.vocab_size
        return sorted((min(start, rows), min(stop, rows)) for start, stop in self.shards if start < rows)

    def write(self, first: int, rows: np.ndarray) -> None:
        (start, _), held = next(item for item in self.shards.items() if item[0][0] <= first < item[0][1])
        held[1] = _write_rows(held[1], jax.device_put(rows, held[0]), first - start)
        held[1].block_until_ready()  # one block of host rows in flight at a time

    def array(self) -> jax.Array:
        # device_put leaves a shard on its own device as it is, and copies it to a device of the same rows
        shards = [jax.device_put(self.shards[bounds][1], device) for device, bounds in self.bounds.items()]
        return jax.make_array_from_single_device_arrays(self.shape, self.layout.table, shards)


def agreed(read):
    """read()'s result, or its refusal on every process: one process's refusal (a part only it reads is
    damaged) makes the others refuse too, in one line, rather than fail in their next collective."""
    try:
        result, refusal = read(), None
    except JaxgramError as error:
        result, refusal = None, error
    if not distributed.same_on_all_processes(int(refusal is not None)) and refusal is None:
        raise DataError("another process of the run refused the checkpoint (its error names the file): nothing "
                        "was trained")
    if refusal is not None:
        raise refusal
    return result
