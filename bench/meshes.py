"""How fast the XLA step trains on a mesh of CPU devices in one process, and across processes.

Each layout trains the corpus through the command line (`jaxgram train --kernel xla`), one run
per layout and table layout: 1 process x 2 devices (the devices' exchanges are copies inside
one process) and 2 processes x 1 device on loopback (each exchange a round trip through gloo).
Both run the same step on the same mesh width, so the seconds the second takes beyond the first
are its exchanges across processes; divided by the slots trained (steps x 2·window) they are
the cost of one slot's exchanges. What a slot exchanges is fixed by the step (tests/test_parallel.py
reads it from the compiled program): an all-gather of every stream's row changes, a context's row
of E and the 1 + K rows of W it trained, B/n·(2 + K)·D float32 from each of n devices; row-sharded
tables also sum the rows each owner looked up, B·(2 + K)·D float32 on every device.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jaxgram import TrainConfig
from jaxgram.batches import step_width
from jaxgram.errors import JaxgramError
from jaxgram.vocab import Vocabulary

LAYOUTS = ((1, 2), (2, 1))  # (processes, devices each)
FLOAT_BYTES = 4


def run_layout(corpus: Path, processes: int, devices: int, shard_tables: bool, out: Path, epochs: int) -> dict:
    """One training run of `processes` x `devices`; its figures from the run's own files."""
    argv = [sys.executable, "-m", "jaxgram", "train", "--corpus", str(corpus), "--out", str(out), "--epochs",
            str(epochs), "--kernel", "xla", "--no-progress", "--save", "bin"]
    argv += ["--shard-tables"] if shard_tables else []
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices)}
    if processes == 1:
        commands = [argv + ["--devices", str(devices)]]
    else:
        cluster = ["--devices", "all", "--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", str(processes)]
        commands = [argv + cluster + ["--process-id", str(rank)] for rank in range(processes)]
    started = time.perf_counter()
    children = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for command in commands]
    errors = [child.communicate()[1] for child in children]
    if any(child.returncode for child in children):
        last = next((line for err in errors for line in reversed(err.splitlines()) if line.strip()), "no message")
        raise JaxgramError(f"the {processes} x {devices} run{' (row-sharded)' if shard_tables else ''} failed: {last}")
    wall = time.perf_counter() - started
    return _figures(out, processes, devices, shard_tables, wall)


def _figures(out: Path, processes: int, devices: int, shard_tables: bool, wall: float) -> dict:
    loss = json.loads((out / "loss.json").read_text())
    config = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    steps = int(np.load(out / "checkpoint" / f"epoch-{config.epochs}.npz")["opt_0"])
    mesh = processes * devices
    centres, _ = step_width(config, Vocabulary.load(out / "vocab.tsv").counts, "cpu", mesh, "xla")
    row_bytes = (2 + config.negative) * config.dim * FLOAT_BYTES
    return {"processes": processes, "devices": devices, "shard_tables": shard_tables,
            "words_per_second": loss["train_loop_words_per_second"], "train_seconds": loss["train_loop_seconds"],
            "wall_seconds": wall, "steps": steps, "slots": steps * 2 * config.window, "step_centres": centres,
            "gathered_bytes_per_device": centres // mesh * row_bytes,
            "summed_bytes_per_device": centres * row_bytes if shard_tables else 0}


def run_meshes(corpus: Path, work: Path, out: Path, epochs: int = 1) -> list[dict]:
    rows = []
    for shard_tables in (False, True):
        for processes, devices in LAYOUTS:
            name = f"{processes}x{devices}{'-sharded' if shard_tables else ''}"
            rows.append(run_layout(corpus, processes, devices, shard_tables, work / name, epochs))
            print(format_row(rows[-1]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results_record(corpus, epochs, rows), indent=2) + "\n")
    return rows


def results_record(corpus: Path, epochs: int, rows: list[dict]) -> dict:
    """What bench/results/meshes.json holds: the runs, with the corpus and the machine they ran on."""
    import jax

    from bench.run import corpus_record, cpu_model, usable_cores

    machine = {"cpu": cpu_model(), "cores": usable_cores(), "python": platform.python_version(), "jax": jax.__version__}
    return {"format": 2, "config_name": "meshes", "corpus": corpus_record(corpus), "machine": machine,
            "epochs": epochs, "runs": rows}


HEADER = ("| tables | processes x devices | words/s | training s | slots | ms a slot beyond 1 x 2 | "
          "bytes a slot a device (gathered / summed) |\n|---|---|---:|---:|---:|---:|---:|")


def format_row(row: dict, same_process: dict | None = None) -> str:
    extra = "" if same_process is None else \
        f"{(row['train_seconds'] - same_process['train_seconds']) / row['slots'] * 1e3:.2f}"
    return (f"| {'row-sharded' if row['shard_tables'] else 'replicated'} | {row['processes']} x {row['devices']} | "
            f"{row['words_per_second']:,.0f} | {row['train_seconds']:.1f} | {row['slots']:,} | {extra} | "
            f"{row['gathered_bytes_per_device']:,} / {row['summed_bytes_per_device']:,} |")


def format_table(rows: list[dict]) -> str:
    """The markdown table of run_meshes's rows: each multi-process row beside its one-process twin."""
    twins = {(row["shard_tables"], row["processes"] * row["devices"]): row for row in rows if row["processes"] == 1}
    lines = [format_row(row, None if row["processes"] == 1 else twins.get((row["shard_tables"],
                                                                              row["processes"] * row["devices"])))
             for row in rows]
    return "\n".join([HEADER, *lines])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
