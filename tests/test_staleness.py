"""The stale-update bound: the busiest row's hits per pair, and the widths and thread counts it allows."""

import dataclasses

import numpy as np
import pytest

from jaxgram import TrainConfig
from jaxgram.batches import fitted_workers, step_width, widest_centres
from jaxgram.data import noise_distribution
from jaxgram.errors import ConfigError
from jaxgram.staleness import (
    STALE_BUDGET,
    TIED_ALPHA_HITS,
    TIED_SHARE,
    busiest_row_hits,
    most_fused_threads,
    stale_hits_allowed,
    widest_fused_pairs,
    widest_lockstep,
)

COUNTS = np.array([1000, 500, 100, 10, 10])
NOISE = noise_distribution(COUNTS, 0.75)
SHARE = COUNTS / COUNTS.sum()


def test_the_busiest_row_counts_every_role_it_plays():
    keep = np.ones(5)
    # Untied: W's row of the most frequent word (centre + K negatives) is busier than its E row (contexts).
    assert busiest_row_hits(COUNTS, keep, NOISE, 5) == pytest.approx(SHARE[0] + 5 * NOISE[0])
    # Tied: one row is the context's input row too.
    assert busiest_row_hits(COUNTS, keep, NOISE, 5, tied=True) == pytest.approx(2 * SHARE[0] + 5 * NOISE[0])
    # With no negatives the input row can be the busiest one.
    assert busiest_row_hits(COUNTS, keep, NOISE, 0) == pytest.approx(SHARE[0])
    # Subsampling moves hits off the frequent word.
    thinned = np.array([0.1, 1, 1, 1, 1])
    assert busiest_row_hits(COUNTS, thinned, NOISE, 5) < busiest_row_hits(COUNTS, keep, NOISE, 5)


@pytest.mark.parametrize("alpha", [0.025, 0.1])
def test_each_paths_width_keeps_the_stale_hits_within_the_budget(alpha):
    hits = 0.3
    allowed = stale_hits_allowed(alpha)
    assert allowed * alpha == pytest.approx(STALE_BUDGET)
    # The XLA step: B streams in a slot, each missing the others' hits.
    streams = widest_lockstep(hits, alpha)
    assert streams * hits <= allowed < (streams + 1) * hits
    # The fused kernel: each of T threads misses the other threads' share of a step's hits, one by
    # one as the step goes, so half of them on average.
    assert widest_fused_pairs(hits, alpha, 1) is None  # one thread trains on the tables themselves
    widths = {}
    for threads in (2, 4, 16, 64):
        pairs = widest_fused_pairs(hits, alpha, threads)
        missed = (threads - 1) * (pairs / threads) * hits / 2
        assert missed <= allowed < missed * (pairs + 1) / pairs
        widths[threads] = pairs
    # More threads: shorter steps between merges, never below what the lockstep step takes.
    assert widths[2] > widths[4] > widths[16] > widths[64] >= allowed / hits
    most = most_fused_threads(hits, alpha, pairs_per_centre=6)
    assert (most - 1) * 6 * hits / 2 <= allowed < most * 6 * hits / 2


def test_the_fused_kernels_step_narrows_as_threads_grow_and_too_many_are_refused():
    config = TrainConfig(window=5, min_count=1, sample=0.0)
    one, _ = step_width(dataclasses.replace(config, workers=1), COUNTS, kernel="fused")
    assert one == 16384 // 6  # one thread: the default step, no bound
    widths = [step_width(dataclasses.replace(config, workers=t), COUNTS, kernel="fused")[0] for t in (2, 4, 8)]
    assert widths[0] > widths[1] > widths[2] >= 8
    hits = busiest_row_hits(COUNTS, np.ones(5), NOISE, 5)
    most = most_fused_threads(hits, config.alpha, 6)
    assert widest_centres(dataclasses.replace(config, workers=most), COUNTS, "fused") >= most
    with pytest.raises(ConfigError, match=rf"^workers={most + 1} is too many .* the most that fit are workers={most}"):
        widest_centres(dataclasses.replace(config, workers=most + 1), COUNTS, "fused")
    # The default worker count is lowered to what fits rather than refused; a count given is kept.
    assert fitted_workers(dataclasses.replace(config, workers=most + 1), COUNTS).workers == most + 1


def test_a_default_worker_count_past_the_bound_is_lowered(monkeypatch):
    config = TrainConfig(window=5, min_count=1, sample=0.0, alpha=0.5)
    hits = busiest_row_hits(COUNTS, np.ones(5), NOISE, 5)
    most = most_fused_threads(hits, config.alpha, 6)
    monkeypatch.setattr("jaxgram.config.usable_cores", lambda: most + 5)
    assert fitted_workers(config, COUNTS).workers == most
    monkeypatch.setattr("jaxgram.config.usable_cores", lambda: most)
    assert fitted_workers(config, COUNTS).workers is None


def test_tied_tables_take_a_quarter_of_the_budget():
    assert stale_hits_allowed(0.025, tied=True) == pytest.approx(TIED_SHARE * stale_hits_allowed(0.025))
    assert widest_lockstep(0.3, 0.025, tied=True) == int(TIED_SHARE * STALE_BUDGET / 0.025 / 0.3)
    untied, tied = (widest_fused_pairs(0.3, 0.025, 4, tied=t) for t in (False, True))
    assert tied == pytest.approx(TIED_SHARE * untied, abs=1)
    assert most_fused_threads(0.3, 0.025, 6, tied=True) < most_fused_threads(0.3, 0.025, 6)


def test_tied_tables_at_too_high_an_alpha_are_refused_on_every_path():
    config = TrainConfig(window=5, min_count=1, sample=0.0, tied=True, workers=1)
    hits = busiest_row_hits(COUNTS, np.ones(5), NOISE, 5, tied=True)
    highest = TIED_ALPHA_HITS / hits
    for kernel in ("fused", "xla"):
        widest_centres(dataclasses.replace(config, alpha=0.9 * highest), COUNTS, kernel)  # fits: no error
        with pytest.raises(ConfigError, match=rf"^tied=True is not allowed at alpha=.*the highest alpha that fits is "
                                              rf"alpha={highest:.3g}, or untied tables$"):
            widest_centres(dataclasses.replace(config, alpha=1.1 * highest), COUNTS, kernel)
    assert widest_centres(dataclasses.replace(config, alpha=1.1 * highest, tied=False), COUNTS, "xla") is not None
