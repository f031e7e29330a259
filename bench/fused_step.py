"""`python -m bench.fused_step`: µs per centre of the XLA sparse SGD step vs the fused kernel.

Both run as the trainer runs them: jitted, `--steps` steps per call under lax.scan, the
tables in the scan carry and donated, on one CPU device. The XLA step is the trainer's
step.lockstep_ns_sgd (one centre of each of B streams side by side, a context slot at a time:
gather the rows, jax.grad of losses.ns_rows_loss, scatter-add -lr·grad; K negatives per pair
drawn beforehand); the fused step is
jaxgram.fused.ns_sgd_step (word2vec's pair-by-pair SGD, K negatives per pair drawn in the
kernel from a noise table, `--streams` streams on `--workers` threads). Batches look like
training's: word2vec's shrinking window (about 40% of the context slots empty), ids drawn
from a Zipf-like distribution so frequent rows repeat within a step. Not a timed test: the
figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxgram import fused
from jaxgram.data import noise_table
from jaxgram.losses import Params
from jaxgram.step import lockstep_ns_sgd


def xla_step(E, W, batch, lr):
    centers, contexts, negatives, _, _ = batch
    tables, total = lockstep_ns_sgd(Params(E, W), centers, contexts, negatives, lr)
    return tables.E, tables.W, total


def fused_step(noise_ids, negative: int, streams: int, workers: int):
    def step(E, W, batch, lr):
        centers, contexts, _, seeds, mask = batch
        return fused.ns_sgd_step(E, W, centers, contexts, noise_ids, seeds, mask, lr, negative, streams,
                                 workers=workers)

    return step


def unigram_weights(vocab: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, vocab + 1) ** 0.75
    return weights / weights.sum()


def make_batches(rng, vocab: int, steps: int, batch: int, window: int, negative: int):
    """[steps, ...] centres, contexts (shrinking window, -1 = empty), negatives (K per pair: [steps, C, B, K]),
    seeds, mask."""
    weights = unigram_weights(vocab)
    centers = rng.choice(vocab, (steps, batch), p=weights).astype(np.int32)
    contexts = rng.choice(vocab, (steps, batch, 2 * window), p=weights).astype(np.int32)
    reach = rng.integers(1, window + 1, (steps, batch, 1))  # word2vec: window - U[0, window)
    offset = np.abs(np.arange(2 * window) - window + 0.5) + 0.5  # slot distances 5..1, 1..5
    contexts[offset > reach] = -1
    negatives = rng.choice(vocab, (steps, 2 * window, batch, negative), p=weights).astype(np.int32)
    seeds = rng.integers(0, 2**32, (steps, 2), dtype=np.uint64).astype(np.uint32)
    mask = np.ones((steps, batch), np.float32)
    return tuple(jnp.asarray(part) for part in (centers, contexts, negatives, seeds, mask))


def compile_run(step, lr):
    def body(tables, batch):
        E, W, losses = step(*tables, batch, lr)
        return (E, W), jnp.sum(losses)

    return jax.jit(lambda E, W, batches: jax.lax.scan(body, (E, W), batches), donate_argnums=(0, 1))


def seconds_per_call(run, tables, batches, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds (all the process's threads) of one call."""
    E, W = jax.block_until_ready(run(*tables, batches)[0])  # compile and warm up
    wall, cpu = [], []
    for _ in range(repeats):
        began, began_cpu = time.perf_counter(), time.process_time()
        (E, W), _ = run(E, W, batches)
        jax.block_until_ready((E, W))
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return statistics.median(wall), statistics.median(cpu)


def measure(vocab: int, args, rng) -> dict:
    dim = args.dim
    tables = [jnp.asarray(rng.normal(0.0, 0.1, (vocab, dim)).astype(np.float32)) for _ in range(2)]
    batches = make_batches(rng, vocab, args.steps, args.batch, args.window, args.negative)
    lr = jnp.float32(0.025)
    centres = args.steps * args.batch
    figures = {}
    noise_ids = jnp.asarray(noise_table(unigram_weights(vocab)))
    for name, step in (("xla", xla_step), ("fused", fused_step(noise_ids, args.negative, args.streams, args.workers))):
        copies = [table + 0.0 for table in tables]  # donated: each run gets its own
        wall, cpu = seconds_per_call(compile_run(step, lr), copies, batches, args.repeats)
        figures[name], figures[f"{name}_cpu"] = 1e6 * wall / centres, 1e6 * cpu / centres
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fused_step", description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, nargs="+", default=[8122, 100_000])
    parser.add_argument("--batch", type=int, default=170, help="centres per step (default: 170)")
    parser.add_argument("--window", type=int, default=5, help="context slots per centre: 2·window (default: 5)")
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--streams", type=int, default=2, help="the fused step's streams (default: 2)")
    parser.add_argument("--workers", type=int, default=2, help="the fused step's threads (default: 2)")
    parser.add_argument("--steps", type=int, default=64, help="steps per jit call (default: 64)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls; the median is shown (default: 20)")
    args = parser.parse_args(argv)
    if not fused.available():
        print(f"fused kernel unavailable: {fused.unavailable_reason()}")
        return 1
    rng = np.random.default_rng(0)
    print(f"B={args.batch} C={2 * args.window} K={args.negative} D={args.dim}, {args.steps} steps per call, "
          f"fused: {args.streams} streams on {args.workers} threads, device {jax.devices()[0]}")
    print("µs per centre, median call: wall (CPU time of all threads)")
    print(f"{'V':>8} {'XLA step':>17} {'fused step':>17} {'speed-up':>9}")
    for vocab in args.vocab:
        f = measure(vocab, args, rng)
        print(f"{vocab:>8} {f['xla']:>8.3f} ({f['xla_cpu']:>6.3f}) {f['fused']:>8.3f} ({f['fused_cpu']:>6.3f}) "
              f"{f['xla'] / f['fused']:>8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
