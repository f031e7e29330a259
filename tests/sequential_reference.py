"""word2vec's pair-by-pair SGD step written plainly in NumPy: the reference for the fused kernel.

It follows the definition in csrc/ns_sgd.cc and jaxgram.fused.ns_sgd_step for one worker
thread, not its code: the streams take turns, each training its pairs one after another on
the tables themselves, in float64. The negatives are drawn with the same SplitMix64
streams, so results compare to float32 rounding.
"""

from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(state: int) -> tuple[int, int]:
    """(next state, 64 random bits): SplitMix64 (Steele, Lea and Flood 2014)."""
    state = (state + GOLDEN) & MASK64
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def stream_bits(seed: np.ndarray, stream: int):
    """The random bits stream `stream` draws in a step with `seed` (uint32[2], high word first)."""
    seed64 = (int(seed[0]) << 32) | int(seed[1])
    _, state = splitmix64(seed64 ^ ((0xD1B54A32D192ED03 * (stream + 1)) & MASK64))
    while True:
        state, bits = splitmix64(state)
        yield bits


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x: float) -> float:
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))


# gensim's MAX_EXP: a score this large in magnitude takes no update.
SATURATED_SCORE = 6.0


def train_pair(E, W, context: int, centre: int, negatives, lr: float) -> float:
    """One pair, in place: the output rows one by one, each score from the input row as the
    pair found it; the input row last. Returns the pair's loss (losses.ns_pair_loss). As gensim,
    a negative equal to the centre is skipped, and a score with |s| >= 6 counts but takes no step."""
    start = E[context].copy()
    change = np.zeros_like(start)
    loss = 0.0
    for k, output in enumerate([centre, *negatives]):
        if k > 0 and output == centre:
            continue
        score = float(start @ W[output])
        loss += _softplus(-score if k == 0 else score)
        if abs(score) >= SATURATED_SCORE:
            continue
        step = lr * (_sigmoid(-score) if k == 0 else -_sigmoid(score))
        change += step * W[output]
        W[output] += step * start
    E[context] += change
    return loss


def reference_step(E, W, centers, contexts, noise_ids, seed, mask, lr, negative: int, streams: int = 1,
                   parts: int = 1):
    """(E, W or None, losses [B]) as ns_sgd_step defines them with one thread; W None means tied tables.

    parts > 1: as `parts` threads train the step when every row is one they keep copies of (a
    vocabulary within the kernel's hot rows): part p trains streams p, p + parts, ... on its own
    copy of the tables, and the step adds up the parts' changes.
    """
    if parts > 1:
        return _parts_step(E, W, centers, contexts, noise_ids, seed, mask, lr, negative, streams, parts)
    tied = W is None
    E = np.array(E, np.float64)
    W = E if tied else np.array(W, np.float64)
    noise_ids, mask = np.asarray(noise_ids), np.asarray(mask, np.float64)
    centers, contexts, lr = np.asarray(centers), np.asarray(contexts), float(lr)
    shift = 64 - (len(noise_ids).bit_length() - 1)
    losses = np.zeros(len(centers))
    for stream in range(streams):
        bits = stream_bits(np.asarray(seed), stream)
        for b in range(stream, len(centers), streams):
            if mask[b] == 0:
                continue
            for context in contexts[b]:
                if context < 0:
                    continue
                draws = [next(bits) for _ in range(negative)]  # a one-entry table still takes its draws
                negatives = [noise_ids[0 if shift == 64 else draw >> shift] for draw in draws]
                losses[b] += mask[b] * train_pair(E, W, context, centers[b], negatives, lr * mask[b])
    return E, None if tied else W, losses


def _parts_step(E, W, centers, contexts, noise_ids, seed, mask, lr, negative, streams, parts):
    """reference_step with parts > 1: each part's streams from the step's tables, then the first
    part's rows plus every other part's change."""
    part_of = (np.arange(len(centers)) % streams) % parts
    results = [reference_step(E, W, centers, contexts, noise_ids, seed, np.where(part_of == part, mask, 0), lr,
                              negative, streams) for part in range(parts)]
    merged = []
    for table, start in ((0, E), (1, W)):
        if start is None:
            merged.append(None)
            continue
        start = np.array(start, np.float64)
        merged.append(results[0][table] + sum(result[table] - start for result in results[1:]))
    return merged[0], merged[1], sum(result[2] for result in results)
