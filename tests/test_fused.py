"""The fused C++ step (jaxgram.fused) against the pure step it replaces.

The reference is built here from losses.ns_group_loss exactly as training does it:
gather the rows, jax.grad of the mask-weighted sum, scatter-add -lr·grad. Batches use
a small vocabulary so ids repeat within a step (where snapshot semantics and
accumulation matter), with empty context slots and padding centres.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgram import fused
from jaxgram.losses import ns_group_loss

TOLERANCE = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def kernel():
    if not fused.available():
        reason = f"jaxgram.fused unavailable: {fused.unavailable_reason()}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI=true: the build must provide it)")
        pytest.skip(reason)


def pure_step(E, W, centers, contexts, negatives, mask, lr, tied=False):
    """training's sparse SGD step for "ns": (E, W or None, mask-weighted losses [B])."""
    output_table = E if tied else W
    outputs = jnp.concatenate([centers[:, None], negatives], axis=1)

    def objective(rows):
        losses = jax.vmap(ns_group_loss)(rows[0], contexts >= 0, rows[1][:, 0], rows[1][:, 1:]) * mask
        return jnp.sum(losses), losses

    grads, losses = jax.grad(objective, has_aux=True)((E[contexts], output_table[outputs]))
    E = E.at[contexts].add(-lr * grads[0])
    if tied:
        return E.at[outputs].add(-lr * grads[1]), None, losses
    return E, W.at[outputs].add(-lr * grads[1]), losses


def make_tables(rng, V, D):
    return tuple(jnp.asarray(rng.normal(0.0, 0.5, (V, D)).astype(np.float32)) for _ in range(2))


def make_batch(rng, V, B, C, K, steps=None):
    """centers [B], contexts [B, C] with ~30% empty slots, negatives [B, K], mask [B] with
    padding (0) and a few fractional weights; leading [steps] axis when steps is given."""
    lead = () if steps is None else (steps,)
    contexts = rng.integers(0, V, lead + (B, C)).astype(np.int32)
    contexts[rng.random(contexts.shape) < 0.3] = -1
    mask = rng.choice(np.float32([0.0, 1.0, 1.0, 1.0, 0.5]), lead + (B,))
    return (jnp.asarray(rng.integers(0, V, lead + (B,)), jnp.int32), jnp.asarray(contexts),
            jnp.asarray(rng.integers(0, V, lead + (B, K)), jnp.int32), jnp.asarray(mask, jnp.float32))


def assert_steps_equal(got, want):
    for name, g, w in zip(("E", "W", "losses"), got, want):
        assert (g is None) == (w is None), name
        if w is not None:
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), err_msg=name, **TOLERANCE)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("dim", [37, 100])
def test_one_fused_step_equals_one_pure_step(kernel, tied, dim):
    rng = np.random.default_rng(dim + tied)
    E, W = make_tables(rng, 24, dim)
    batch = make_batch(rng, 24, B=32, C=6, K=4)
    lr = jnp.float32(0.5)
    want = jax.jit(pure_step, static_argnums=7)(E, W, *batch, lr, tied)
    got = jax.jit(fused.ns_sgd_step, static_argnums=7)(E, None if tied else W, *batch, lr, tied)
    assert_steps_equal(got, want)
    # The comparison means something: the step moved rows far beyond the tolerance, and
    # the padding centres' losses are exactly 0.
    assert float(jnp.max(jnp.abs(want[0] - E))) > 0.1
    assert np.all(np.asarray(got[2])[np.asarray(batch[3]) == 0] == 0)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_worker_threads_do_not_change_the_step(kernel, tied):
    # Workers split phase 1 by centre and phase 2 by row owner; every row adds its updates in
    # centre order, so any thread count gives bitwise the same tables (repeated ids included).
    rng = np.random.default_rng(3 + tied)
    E, W = make_tables(rng, 12, 40)
    batch = make_batch(rng, 12, B=64, C=6, K=5)
    step = jax.jit(fused.ns_sgd_step, static_argnames=("tied", "workers"))
    one, two, three = (step(E, None if tied else W, *batch, jnp.float32(0.4), tied=tied, workers=n) for n in (1, 2, 3))
    for got in (two, three):
        for name, g, w in zip(("E", "W", "losses"), got, one):
            if w is not None:
                np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=name)
    assert float(jnp.max(jnp.abs(one[0] - E))) > 0.1


def test_rows_no_present_centre_touches_stay_bitwise_equal(kernel):
    rng = np.random.default_rng(7)
    E, W = make_tables(rng, 40, 16)
    centers, contexts, negatives, mask = make_batch(rng, 20, B=8, C=4, K=3)  # ids < 20 only
    newE, newW, _ = fused.ns_sgd_step(E, W, centers, contexts, negatives, mask, jnp.float32(0.1))
    np.testing.assert_array_equal(np.asarray(newE[20:]), np.asarray(E[20:]))
    np.testing.assert_array_equal(np.asarray(newW[20:]), np.asarray(W[20:]))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_fused_steps_in_jit_and_scan_equal_as_many_pure_steps(kernel, tied):
    rng = np.random.default_rng(11 + tied)
    E, W = make_tables(rng, 30, 20)
    batches = make_batch(rng, 30, B=16, C=5, K=3, steps=5)
    lr = jnp.float32(0.3)

    def run(step):
        def body(tables, batch):
            E, W, losses = step(*tables, *batch, lr, tied)
            return (E, W), losses

        return jax.jit(lambda E, W: jax.lax.scan(body, (E, W), batches))

    (wantE, wantW), want_losses = run(pure_step)(E, None if tied else W)
    (gotE, gotW), got_losses = run(fused.ns_sgd_step)(E, None if tied else W)
    assert_steps_equal((gotE, gotW, got_losses), (wantE, wantW, want_losses))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_donated_tables_are_aliased_in_place(kernel, tied):
    rng = np.random.default_rng(3)
    E, W = make_tables(rng, 24, 12)
    batch = make_batch(rng, 24, B=10, C=4, K=2)
    want = pure_step(E, W, *batch, jnp.float32(0.2), tied)
    donated = (E + 0.0, None if tied else W + 0.0)
    step = jax.jit(fused.ns_sgd_step, static_argnums=7, donate_argnums=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Some donated buffers were not usable" would fail
        got = step(*donated, *batch, jnp.float32(0.2), tied)
    assert donated[0].is_deleted()
    assert_steps_equal(got, want)


def test_an_id_outside_the_tables_fails_the_call(kernel):
    rng = np.random.default_rng(5)
    E, W = make_tables(rng, 10, 8)
    centers, contexts, negatives, mask = make_batch(rng, 10, B=4, C=3, K=2)
    with pytest.raises(Exception, match="outside W"):
        jax.block_until_ready(fused.ns_sgd_step(E, W, centers.at[0].set(10), contexts, negatives,
                                                jnp.ones_like(mask), jnp.float32(0.1)))
    with pytest.raises(ValueError, match="negatives"):
        fused.ns_sgd_step(E, W, centers, contexts, negatives[:2], mask, jnp.float32(0.1))


SHARD_MAP_SCRIPT = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_num_cpu_devices", 2)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    sys.path.insert(0, sys.argv[1])
    from test_fused import assert_steps_equal, make_batch, make_tables, pure_step
    from jaxgram import fused

    rng = np.random.default_rng(2)
    E, W = make_tables(rng, 30, 16)
    batches = [make_batch(rng, 30, B=12, C=4, K=3, steps=3) for _ in range(2)]
    stacked = tuple(jnp.stack(parts) for parts in zip(*batches))  # [replica, steps, ...]
    lr = jnp.float32(0.25)  # the same on every replica, as the trainer's schedule is

    def replica(E, W, centers, contexts, negatives, mask, lr):
        # As training.compile_replicated: tables vary per replica inside the call.
        E, W = jax.lax.pcast((E, W), ("replica",), to="varying")
        def body(tables, batch):
            E, W, losses = fused.ns_sgd_step(*tables, *batch, lr)
            return (E, W), losses
        (E, W), losses = jax.lax.scan(body, (E, W), (centers[0], contexts[0], negatives[0], mask[0]))
        return E[None], W[None], losses[None]

    mesh = Mesh(np.asarray(jax.devices()[:2]), ("replica",))
    split, whole = P("replica"), P()
    run = jax.jit(jax.shard_map(replica, mesh=mesh, in_specs=(whole, whole) + (split,) * 4 + (whole,),
                                out_specs=(split, split, split)))
    gotE, gotW, got_losses = run(E, W, *stacked, lr)
    for r, batch in enumerate(batches):
        wantE, wantW, want_losses = E, W, []
        for s in range(3):
            wantE, wantW, losses = pure_step(wantE, wantW, *(part[s] for part in batch), lr)
            want_losses.append(losses)
        assert_steps_equal((gotE[r], gotW[r], got_losses[r]), (wantE, wantW, jnp.stack(want_losses)))
    print("replicas ok")
""")


def test_fused_steps_under_shard_map_on_two_cpu_devices(kernel):
    result = subprocess.run([sys.executable, "-c", SHARD_MAP_SCRIPT, str(Path(__file__).parent)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "replicas ok" in result.stdout


def test_importing_registers_nothing_and_a_missing_library_is_reported():
    code = textwrap.dedent("""
        import sys
        import jaxgram.fused as fused
        assert "jax" not in sys.modules, "importing jaxgram.fused loaded jax"
        assert not fused.available()
        assert "/nowhere/_ns_sgd.so" in fused.unavailable_reason(), fused.unavailable_reason()
        try:
            fused.ns_sgd_step(None, None, None, None, None, None, 0.1)
        except RuntimeError as error:
            assert "not built" in str(error), error
        else:
            raise AssertionError("ns_sgd_step ran without its library")
        print("reported")
    """)
    env = {**os.environ, fused.LIBRARY_ENV: "/nowhere/_ns_sgd.so"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "reported" in result.stdout
