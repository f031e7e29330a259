import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxgram import Params, full_softmax_loss, negative_sampling_loss
from jaxgram.losses import ns_pair_loss, softmax_pair_loss

V, D, B, K = 13, 6, 7, 4


@pytest.fixture
def params():
    key_e, key_w = jax.random.split(jax.random.PRNGKey(0))
    return Params(jax.random.normal(key_e, (V, D)), jax.random.normal(key_w, (V, D)))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.integers(0, V, B), jnp.int32), jnp.asarray(rng.integers(0, V, B), jnp.int32),
            jnp.asarray(rng.integers(0, V, (B, K)), jnp.int32))


def test_softmax_gradient_is_p_minus_y(params):
    center, context = 3, 8
    grads = jax.grad(softmax_pair_loss)(params, center, context)
    h = np.asarray(params.E[center], np.float64)
    W = np.asarray(params.W, np.float64)
    logits = W @ h
    p = np.exp(logits - logits.max())
    p /= p.sum()
    y = np.eye(V)[context]
    # dL/dlogits = P - y, so dL/dW = outer(P - y, h) and dL/dh = W^T (P - y)
    np.testing.assert_allclose(grads.W, np.outer(p - y, h), atol=1e-5)
    expected_e = np.zeros((V, D))
    expected_e[center] = W.T @ (p - y)
    np.testing.assert_allclose(grads.E, expected_e, atol=1e-5)


def test_negative_sampling_gradient_is_sigma_minus_label(params):
    center, context = 2, 5
    negatives = jnp.array([1, 7, 9], jnp.int32)
    grads = jax.grad(ns_pair_loss)(params, center, context, negatives)
    h = np.asarray(params.E[center], np.float64)
    W = np.asarray(params.W, np.float64)
    def sigma(s):
        return 1 / (1 + np.exp(-s))

    coef_pos = sigma(W[context] @ h) - 1  # sigma(s) - 1 for the true pair
    coef_neg = sigma(W[np.asarray(negatives)] @ h)  # sigma(s) for each negative
    expected_w = np.zeros((V, D))
    expected_w[context] += coef_pos * h
    for n, c in zip(np.asarray(negatives), coef_neg):
        expected_w[n] += c * h
    expected_e = np.zeros((V, D))
    expected_e[center] = coef_pos * W[context] + coef_neg @ W[np.asarray(negatives)]
    np.testing.assert_allclose(grads.W, expected_w, atol=1e-5)
    np.testing.assert_allclose(grads.E, expected_e, atol=1e-5)


def test_batched_losses_pass_check_grads(params, batch):
    centers, contexts, negatives = batch
    small = Params(params.E * 0.3, params.W * 0.3)
    def softmax_mean(p):
        return jnp.mean(full_softmax_loss(p, centers, contexts))

    def ns_mean(p):
        return jnp.mean(negative_sampling_loss(p, centers, contexts, negatives))

    for loss in (softmax_mean, ns_mean):
        check_grads(loss, (small,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


def test_batched_loss_is_the_vmapped_pair_loss(params, batch):
    centers, contexts, negatives = batch
    per_pair_softmax = [softmax_pair_loss(params, c, t) for c, t in zip(centers, contexts)]
    per_pair_ns = [ns_pair_loss(params, c, t, n) for c, t, n in zip(centers, contexts, negatives)]
    # One loss per pair (optax's convention: the caller reduces).
    np.testing.assert_allclose(full_softmax_loss(params, centers, contexts), per_pair_softmax, rtol=1e-6)
    np.testing.assert_allclose(negative_sampling_loss(params, centers, contexts, negatives), per_pair_ns, rtol=1e-6)
    vmapped = jax.vmap(ns_pair_loss, in_axes=(None, 0, 0, 0))(params, centers, contexts, negatives)
    np.testing.assert_allclose(vmapped, per_pair_ns, rtol=1e-6)


def test_losses_match_their_definitions(params, batch):
    centers, contexts, negatives = batch
    E, W = np.asarray(params.E, np.float64), np.asarray(params.W, np.float64)
    logits = E[np.asarray(centers)] @ W.T
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean(log_p[np.arange(B), np.asarray(contexts)])
    np.testing.assert_allclose(np.mean(full_softmax_loss(params, centers, contexts)), expected, rtol=1e-5)
    def log_sigma(s):
        return -np.log1p(np.exp(-s))

    h = E[np.asarray(centers)]
    pos = np.einsum("bd,bd->b", h, W[np.asarray(contexts)])
    neg = np.einsum("bd,bkd->bk", h, W[np.asarray(negatives)])
    expected = np.mean(-log_sigma(pos) - log_sigma(-neg).sum(axis=1))
    np.testing.assert_allclose(np.mean(negative_sampling_loss(params, centers, contexts, negatives)), expected, rtol=1e-5)


def test_per_pair_losses_refuse_batched_input(params, batch):
    centers, contexts, negatives = batch
    with pytest.raises(ValueError, match="vmap"):
        softmax_pair_loss(params, centers, contexts)
    with pytest.raises(ValueError, match="vmap"):
        ns_pair_loss(params, centers, contexts, negatives)
    with pytest.raises(ValueError, match="vmap"):
        jax.jit(ns_pair_loss)(params, 1, 2, negatives)


def test_losses_stay_finite_for_huge_scores():
    big = Params(jnp.full((3, 2), 100.0), jnp.full((3, 2), -100.0))
    assert np.isfinite(full_softmax_loss(big, jnp.array([0]), jnp.array([1])))
    assert np.isfinite(negative_sampling_loss(big, jnp.array([0]), jnp.array([1]), jnp.array([[2]])))
    grads = jax.grad(lambda *a: jnp.sum(negative_sampling_loss(*a)))(big, jnp.array([0]), jnp.array([1]), jnp.array([[2]]))
    assert all(np.isfinite(g).all() for g in grads)


def _random_groups(rng, centres: int, slots: int, empty_row: int):
    """Centre ids and their context slots, about 40% empty (-1); one centre with no context at all."""
    centers = rng.integers(0, V, centres)
    contexts = rng.integers(0, V, (centres, slots))
    contexts[rng.random((centres, slots)) < 0.4] = -1
    contexts[empty_row] = -1  # a centre with no context contributes nothing
    return centers, contexts


def test_grouped_softmax_equals_sum_of_per_pair_losses(params):
    # One row per centre with up to C context slots (-1 = empty): the shared-softmax objective
    # the trainer uses must equal, in value and gradient, the sum of the per-pair losses.
    from jaxgram.losses import batched_softmax_group_loss, softmax_group_loss

    rng = np.random.default_rng(1)
    centers, contexts = _random_groups(rng, 5, 4, empty_row=0)
    pairs = [(c, t) for c, row in zip(centers, contexts) for t in row if t >= 0]

    def grouped(p):
        rows = jax.vmap(softmax_group_loss, in_axes=(0, None, 0))(p.E[centers], p.W, jnp.asarray(contexts, jnp.int32))
        return jnp.sum(rows)

    def per_pair(p):
        return jnp.sum(full_softmax_loss(p, jnp.asarray([c for c, _ in pairs], jnp.int32),
                                         jnp.asarray([t for _, t in pairs], jnp.int32)))

    def batched(p):  # the trainer's form: one [B, V] product
        return jnp.sum(batched_softmax_group_loss(p.E[centers], p.W, jnp.asarray(contexts, jnp.int32)))

    for ours in (grouped, batched):
        np.testing.assert_allclose(ours(params), per_pair(params), rtol=1e-5)
        for mine, reference in zip(jax.grad(ours)(params), jax.grad(per_pair)(params)):
            np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-5)


def test_grouped_negative_sampling_equals_sum_of_per_pair_losses(params):
    # The trainer's NS objective, word2vec's direction: each context's input row E[c] predicts
    # the centre's output row W[t] against K negatives shared by that centre's contexts.
    # It must equal, in value and gradient, the per-pair losses with those negatives.
    from jaxgram.losses import ns_group_loss

    rng = np.random.default_rng(2)
    centers, contexts = _random_groups(rng, 4, 6, empty_row=1)
    negatives = rng.integers(0, V, (4, 3))
    present = jnp.asarray(contexts >= 0)

    def grouped(p):
        context_vecs = p.E[jnp.asarray(np.where(contexts >= 0, contexts, 0), jnp.int32)]
        return jnp.sum(jax.vmap(ns_group_loss)(context_vecs, present, p.W[jnp.asarray(centers, jnp.int32)],
                                               p.W[jnp.asarray(negatives, jnp.int32)]))

    def per_pair(p):
        return sum(ns_pair_loss(p, jnp.int32(c), jnp.int32(t), jnp.asarray(negatives[row], jnp.int32))
                   for row, t in enumerate(centers) for c in contexts[row] if c >= 0)

    np.testing.assert_allclose(grouped(params), per_pair(params), rtol=1e-5)
    for mine, reference in zip(jax.grad(grouped)(params), jax.grad(per_pair)(params)):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
