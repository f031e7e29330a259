"""The one bound on stale row updates that every parallel path keeps (docs/how-it-works.md).

Parallel SGD writers each compute a row's change from the row as they last saw it, and miss
the other writers' changes to it until they sync:
- the XLA step (jaxgram.step.lockstep_ns_sgd) trains B streams side by side, one pair of each
  per context slot, and adds their changes when the slot ends: a stream misses the other
  streams' hits of that slot. On a mesh, B counts every device's streams: one step is one slot
  for all of them.
- the fused kernel (csrc/ns_sgd.cc) runs T threads, each training its own copies of the
  frequent words' rows for a step and the step adds the copies' changes when it ends: a thread
  sees its own hits in order but misses the other T - 1 threads' hits of that step,
  (T - 1) * (S / T) * h of them by its end for a step of S pairs. It misses them one by one as
  the step goes (none at its start), so its changes miss half that many on average, where each
  of the XLA step's B changes in a slot misses all the others'.
What one stale start can take is a step size: a row whose changes each miss n others moves
about alpha * n times a single change before they see each other. So the bound is on alpha
times the busiest row's stale hits, the mean a change misses:

    alpha * stale hits <= STALE_BUDGET  (tied tables: TIED_SHARE of it)

where h, the busiest row's expected hits per pair, counts every role a row plays: the output
row of the pair's centre (its share of the centres subsampling keeps) and of its K negatives
(K times its noise share), the input row of the context (its share of the kept tokens), and
with tied tables, where one row plays all three, their sum.

STALE_BUDGET = 6 (0.025 * 240) is where the XLA step was measured to hold and to fail: on the five
books 2,048 and 4,096 streams (alpha * stale hits 4.6 and 9.2) met the agreement rule against
gensim, 8,192 (18.4) fell just short of it (docs/agreement.md); on a planted-cluster corpus (200
words in 20 groups, alpha 0.1) 2,048 streams (6.1) trained and 3,333 (10.0) diverged. The fused
kernel's mean count lets its step be twice what a count of every miss would: on the Dostoevsky
config with 2 threads that is 1.85x gensim's words/s against 1.44x, at the same agreement and
quality (docs/performance.md). With one thread the fused kernel has no stale rows (it trains
pair by pair on the tables themselves) and no bound.

Tied tables have one more limit, on one thread too: alpha * h <= TIED_ALPHA_HITS (see there).
"""

from __future__ import annotations

import math

import numpy as np

# alpha times the stale hits the busiest row may take (see the module docstring).
STALE_BUDGET = 0.025 * 240
# With tied tables a quarter of it. A pair whose context is its centre's word scores a row against
# itself, and every such change grows the row along itself: stale changes then add in one direction
# instead of partly cancelling. Measured on planted-cluster corpora (bench/planted.py: 200 words in
# 20 groups, alpha 0.025): tied tables diverged with 4 threads at 8,192 pairs a step (alpha x stale
# hits 2.7, the fused kernel's mean count) and trained at 4,096 (1.35); the XLA step, tied, diverged
# at 2,048 streams at alpha 0.1 (7.2) and trained at alpha 0.025 (1.8).
TIED_SHARE = 0.25
# Tied tables, even on one thread: a row hit this often per pair at this alpha grows along itself
# faster than its negatives pull it back. Planted corpora, tied: 200 words with one at 60% of the
# tokens (h = 1.47) diverged at alpha 0.1 on one thread (alpha * h = 0.147) and trained at 0.025
# (0.037); 20 words (h = 0.35) trained at alpha 0.1 (0.035).
TIED_ALPHA_HITS = 0.075


def highest_tied_alpha(row_hits: float) -> float:
    """The highest alpha tied tables train at when the busiest row takes `row_hits` hits per pair."""
    return TIED_ALPHA_HITS / row_hits


def busiest_row_hits(counts: np.ndarray, keep_prob: np.ndarray, noise_probs: np.ndarray, negative: int,
                     tied: bool = False) -> float:
    """Expected hits of the busiest row per pair, over every role a row plays (module docstring)."""
    kept = np.asarray(counts, np.float64) * keep_prob
    share = kept / kept.sum()
    output = share + negative * np.asarray(noise_probs, np.float64)  # W's rows: centre and negatives
    if tied:
        return float(np.max(output + share))  # one table: the context's input row too
    return float(max(np.max(output), np.max(share)))


def stale_hits_allowed(alpha: float, tied: bool = False) -> float:
    """The stale hits the busiest row may take at `alpha` (tied tables: TIED_SHARE of them)."""
    return STALE_BUDGET * (TIED_SHARE if tied else 1.0) / alpha


def widest_lockstep(row_hits: float, alpha: float, tied: bool = False) -> int:
    """The most streams (centres per step, all devices together) the XLA step trains side by side."""
    return max(1, int(stale_hits_allowed(alpha, tied) / row_hits))


def fused_stale_hits(row_hits: float, threads: int, pairs: int) -> float:
    """The stale hits a change of the busiest row's copy misses on average in a fused step of `pairs`
    pairs: the other threads' (threads - 1) * (pairs / threads) * row_hits, half of them (module docstring)."""
    return (threads - 1) * (pairs / threads) * row_hits / 2


def widest_fused_pairs(row_hits: float, alpha: float, threads: int, tied: bool = False) -> int | None:
    """The most pairs per step the fused kernel's `threads` take (None: one thread, no bound)."""
    if threads <= 1:
        return None
    return max(1, int(stale_hits_allowed(alpha, tied) / fused_stale_hits(row_hits, threads, 1)))


def most_fused_threads(row_hits: float, alpha: float, pairs_per_centre: int, tied: bool = False) -> int:
    """The most threads the fused kernel can run within the bound with one centre per thread per step:
    T threads of one centre each (T * pairs_per_centre pairs) take (T - 1) * pairs_per_centre * h / 2."""
    return 1 + math.floor(2 * stale_hits_allowed(alpha, tied) / (row_hits * pairs_per_centre))
