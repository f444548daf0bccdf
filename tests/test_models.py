"""Models: initialisation, forward against NumPy, hand-written backprop against jax.grad, and the
seed's gradient scaling written out in NumPy.

References are independent of the code under test: NumPy forwards and the seed notebook's own
gradient formulas (sections 1.3 and 1.4), JAX's autodiff of the forward, and finite differences.
Gradient equality runs in float64 (the ``x64`` fixture), where the three gradient paths agree to
round-off.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxnn import layers, models, names, training
from jaxnn.training import TrainConfig

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
NP_ACTIVATIONS = {
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.2 * z),  # the seed's slope
}
# (d, *hidden, k): linear regression, then 1, 2 and 3 hidden layers
# (equal widths keep the set of array shapes small: eager ops compile once per shape)
DEPTHS = ((5, 3), (5, 4, 3), (5, 4, 4, 3), (5, 4, 4, 4, 3))


def np_forward(params, X, activation):
    """Reference forward in NumPy: hidden layers act, the output layer is linear."""
    h = np.asarray(X)
    for i, layer in enumerate(params):
        z = h @ np.asarray(layer["W"]) + np.asarray(layer["b"])
        h = NP_ACTIVATIONS[activation](z) if i < len(params) - 1 else z
    return h


def rel_err(a, b) -> float:
    """max |a - b| / max |b| over one array (0 when both vanish)."""
    a, b = np.asarray(a), np.asarray(b)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def tree_rel_err(a, b) -> float:
    errs = jax.tree_util.tree_map(rel_err, a, b)
    return max(jax.tree_util.tree_leaves(errs))


def problem(sizes, loss_name, *, n=9, seed=0, dtype=jnp.float64):
    """Parameters, inputs, targets and non-uniform example weights for ``sizes``.

    Drawn with NumPy: eager ``jax.random`` would compile a sampler for every new shape.
    """
    rng = np.random.default_rng(seed)
    params = [
        {"W": jnp.asarray(rng.standard_normal((a, b)) / np.sqrt(a), dtype),
         "b": jnp.asarray(0.1 * rng.standard_normal(b), dtype)}  # non-zero, to exercise the bias path
        for a, b in itertools.pairwise(sizes)
    ]
    X = jnp.asarray(rng.standard_normal((n, sizes[0])), dtype)
    if loss_name == "cross_entropy":
        Y = jnp.asarray(np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)], dtype)
    else:
        Y = jnp.asarray(rng.standard_normal((n, sizes[-1])), dtype)
    w = jnp.asarray(rng.uniform(0.2, 2.0, n), dtype)
    return params, X, Y, w


# --- initialisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("init", names.INITS)
@pytest.mark.parametrize("sizes", [(13, 1), (13, 13, 1), (4, 6, 5, 3)])
def test_init_shapes_and_dtype(init, sizes):
    params = models.init_params(jax.random.key(1), sizes, init=names.initializer(init))
    assert len(params) == len(sizes) - 1
    for layer, (d_in, d_out) in zip(params, itertools.pairwise(sizes), strict=True):
        assert set(layer) == {"W", "b"}
        assert layer["W"].shape == (d_in, d_out)
        assert layer["b"].shape == (d_out,)
        assert layer["W"].dtype == jnp.float32
        assert layer["b"].dtype == jnp.float32


def test_init_float64(x64):
    params = models.init_params(jax.random.key(1), (3, 4, 2), dtype=jnp.float64)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float64)}


def test_init_normal_is_standard_normal_like_the_seed():
    # the seed draws W and B with np.random.randn: mean 0, standard deviation 1
    (layer,) = models.init_params(jax.random.key(2), (400, 500), init=models.normal)
    W = np.asarray(layer["W"], dtype=np.float64)  # 200,000 draws: sd of the mean is 0.0022
    assert abs(W.mean()) < 0.01
    assert abs(W.std() - 1.0) < 0.01
    b = np.asarray(layer["b"], dtype=np.float64)  # the bias is random too, as in the seed
    assert abs(b.mean()) < 0.2
    assert abs(b.std() - 1.0) < 0.15


def test_init_glorot_is_uniform_within_its_bounds():
    d_in, d_out = 300, 200
    (layer,) = models.init_params(jax.random.key(3), (d_in, d_out), init=models.glorot)
    lim = math.sqrt(6.0 / (d_in + d_out))
    W = np.asarray(layer["W"], dtype=np.float64)
    assert W.min() >= -lim and W.max() <= lim
    assert W.min() < -0.99 * lim and W.max() > 0.99 * lim  # fills the interval
    assert abs(W.var() - lim**2 / 3) < 0.02 * lim**2 / 3  # variance of U(-lim, lim)
    # a flat histogram: each tenth of the interval holds about a tenth of the draws
    counts, _ = np.histogram(W, bins=10, range=(-lim, lim))
    assert np.all(np.abs(counts / W.size - 0.1) < 0.01)
    np.testing.assert_array_equal(np.asarray(layer["b"]), np.zeros(d_out))


def test_init_he_has_std_sqrt_2_over_fan_in():
    d_in, d_out = 250, 400
    (layer,) = models.init_params(jax.random.key(4), (d_in, d_out), init=models.he)
    W = np.asarray(layer["W"], dtype=np.float64)
    assert abs(W.std() - math.sqrt(2.0 / d_in)) < 0.01 * math.sqrt(2.0 / d_in)
    assert abs(W.mean()) < 0.01 * math.sqrt(2.0 / d_in) * 3
    np.testing.assert_array_equal(np.asarray(layer["b"]), np.zeros(d_out))


def test_init_is_a_pure_function_of_the_key():
    a = models.init_params(jax.random.key(5), (4, 3, 2))
    b = models.init_params(jax.random.key(5), (4, 3, 2))
    c = models.init_params(jax.random.key(6), (4, 3, 2))
    for la, lb, lc in zip(a, b, c, strict=True):
        np.testing.assert_array_equal(np.asarray(la["W"]), np.asarray(lb["W"]))
        assert not np.array_equal(np.asarray(la["W"]), np.asarray(lc["W"]))


# --- forward -----------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", DEPTHS)
def test_predict_matches_numpy_forward(x64, sizes, activation):
    params, X, _, _ = problem(sizes, "mse")
    out = models.predict(params, X, names.activation(activation))
    assert out.shape == (X.shape[0], sizes[-1])
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(out), np_forward(params, X, activation), rtol=1e-12, atol=1e-12)


def test_linear_regression_is_x_at_w_plus_b():
    # seed 1.3: N = X @ W, P = N + B
    params, X, _, _ = problem((13, 1), "mse", dtype=jnp.float32)
    P = models.predict(params, X)
    assert P.shape == (9, 1) and P.dtype == jnp.float32
    ref = np.asarray(X, np.float64) @ np.asarray(params[0]["W"], np.float64) + np.asarray(params[0]["b"])
    np.testing.assert_allclose(np.asarray(P), ref, rtol=1e-5, atol=1e-5)


def loss_fns(activation, loss_name, **kw):
    """(hand-written, autodiff) per-example losses of the MLP, as jaxnn.training builds them."""
    fns = []
    for gradients in names.GRADIENTS:
        act, loss, layer = training.resolve_network(activation, loss_name, gradients)
        fns.append(models.make_loss_fn(act, loss, layer=layer, **kw))
    return tuple(fns)


def test_loss_values_match_numpy(x64):
    sizes = (5, 4, 3)
    params, X, Y, _ = problem(sizes, "mse")
    P = np_forward(params, X, "tanh")
    for fn in loss_fns("tanh", "mse"):
        np.testing.assert_allclose(fn(params, X, Y), np.mean((P - np.asarray(Y)) ** 2, axis=1), rtol=1e-12)
    # cross-entropy: -sum_c t_c log softmax(z)_c per example
    params, X, Y, _ = problem(sizes, "cross_entropy")
    Z = np_forward(params, X, "relu")
    logp = Z - Z.max(1, keepdims=True) - np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1, keepdims=True))
    nll = -np.sum(np.asarray(Y) * logp, axis=1)
    for fn in loss_fns("relu", "cross_entropy"):
        np.testing.assert_allclose(fn(params, X, Y), nll, rtol=1e-12)
    # the l2 term on every example: 0.5 * l2 * sum ||W||^2, biases excluded; a scale on the data loss
    pen = 0.5 * sum(np.sum(np.asarray(p["W"]) ** 2) for p in params)
    for fn in loss_fns("relu", "cross_entropy", l2=0.3, scale=0.5):
        np.testing.assert_allclose(fn(params, X, Y), 0.5 * nll + 0.3 * pen, rtol=1e-12)
    # summed (the seed's reductions): the penalty spread over the rows, so their sum carries it once
    for fn in loss_fns("relu", "cross_entropy", l2=0.3, summed=True):
        np.testing.assert_allclose(float(jnp.sum(fn(params, X, Y))), nll.sum() + 0.3 * pen, rtol=1e-12)


# --- hand-written backprop == jax.grad ----------------------------------------------------------


def _gradient_cases():
    for sizes in DEPTHS:
        # a linear model has no hidden activation: one activation is enough there
        acts = ACTIVATIONS if len(sizes) > 2 else ("sigmoid",)
        for act, loss_name in itertools.product(acts, names.LOSSES):
            yield pytest.param(sizes, act, loss_name, id=f"{len(sizes) - 2}hidden-{act}-{loss_name}")


@pytest.mark.parametrize(("sizes", "activation", "loss_name"), list(_gradient_cases()))
def test_manual_backprop_equals_jax_grad(x64, sizes, activation, loss_name):
    """jax.grad of the network built from with_backward pieces runs only hand-written backward passes;
    it equals jax.grad of the plain forwards for any weighting of the examples (the minibatch mean,
    the padding's zeros, the seed's sums), with and without L2."""
    params, X, Y, w = problem(sizes, loss_name, seed=len(sizes))
    for l2, summed in itertools.product((0.0, 0.25), (False, True)):
        manual, auto = loss_fns(activation, loss_name, l2=l2, summed=summed)
        v_manual, g_manual = jax.value_and_grad(lambda p, f=manual: jnp.sum(w * f(p, X, Y)))(params)
        v_auto, g_auto = jax.value_and_grad(lambda p, f=auto: jnp.sum(w * f(p, X, Y)))(params)
        where = f"l2={l2}, summed={summed}"
        assert float(v_manual) == pytest.approx(float(v_auto), rel=1e-12), where
        assert tree_rel_err(g_manual, g_auto) <= 1e-10, where


def test_hand_written_path_passes_finite_differences(x64):
    # a third, independent reference: central differences of the forward, in float64
    params, X, Y, _ = problem((4, 5, 3, 2), "mse", seed=11)
    manual, _ = loss_fns("tanh", "mse", l2=0.1)
    f = jax.jit(lambda p: jnp.mean(manual(p, X, Y)))
    check_grads(f, (params,), order=1, modes=["rev"], eps=1e-6, atol=1e-7, rtol=1e-7)


def test_manual_backprop_gradients_wrt_inputs_and_targets(x64):
    # dX (dense_vjp) and dY (the loss's vjp): what a bigger graph around the loss needs
    params, X, Y, w = problem((5, 4, 3), "cross_entropy", seed=3)
    manual, auto = loss_fns("sigmoid", "cross_entropy")
    dX, dY = jax.grad(lambda x, y: jnp.sum(w * manual(params, x, y)), argnums=(0, 1))(X, Y)
    gX, gY = jax.grad(lambda x, y: jnp.sum(w * auto(params, x, y)), argnums=(0, 1))(X, Y)
    assert rel_err(dX, gX) <= 1e-10
    assert rel_err(dY, gY) <= 1e-10


def test_manual_backprop_float32_smoke():
    params, X, Y, _ = problem((5, 4, 3), "mse", dtype=jnp.float32)
    manual, auto = loss_fns("tanh", "mse", l2=0.1)
    v, g = jax.jit(jax.value_and_grad(lambda p: jnp.mean(manual(p, X, Y))))(params)
    g2 = jax.jit(jax.grad(lambda p: jnp.mean(auto(p, X, Y))))(params)
    assert v.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(g))
    assert tree_rel_err(g, g2) <= 1e-5


def test_l2_penalises_weights_not_biases(x64):
    params, X, Y, _ = problem((5, 4, 3), "mse", seed=7)
    (m0, _), (m1, _) = loss_fns("sigmoid", "mse"), loss_fns("sigmoid", "mse", l2=0.5)
    g0 = jax.grad(lambda p: jnp.mean(m0(p, X, Y)))(params)
    g1 = jax.grad(lambda p: jnp.mean(m1(p, X, Y)))(params)
    for a, b, p in zip(g1, g0, params, strict=True):
        np.testing.assert_allclose(np.asarray(a["W"] - b["W"]), 0.5 * np.asarray(p["W"]),
                                   rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(np.asarray(a["b"]), np.asarray(b["b"]))


# --- the seed's gradient scaling (seed 1.3 and 1.4, in NumPy) ----------------------------------


def seed_linear_regression_gradients(X, y, W, B):
    """The seed's ``loss_gradients`` of section 1.3, verbatim in NumPy (W (d, 1), B (1, 1))."""
    N = X @ W
    P = N + B
    dLdP = -2 * (y - P)
    dPdN = np.ones_like(N)
    dPdB = np.ones_like(B)
    dLdN = dLdP * dPdN
    dLdW = X.T @ dLdN
    dLdB = (dLdP * dPdB).sum(axis=0)
    return {"W": dLdW, "B": dLdB}, np.mean(np.power(y - P, 2))


def seed_network_gradients(X, y, W1, B1, W2, B2):
    """The seed's section 1.4 gradients of the 13-sigmoid network (dLdP = -(y - P)).

    The seed then sums ``dLdB1`` over axis 0 a *second* time (``loss_gradients['B1'] =
    dLdB1.sum(axis=0)``), which turns the hidden bias gradient into one scalar shared by
    every unit; this returns the per-unit gradient before that second sum (see
    :func:`test_seed_hidden_bias_double_sum_is_a_defect`).
    """
    sig = lambda x: 1 / (1 + np.exp(-1.0 * x))
    M1 = X @ W1
    N1 = M1 + B1
    O1 = sig(N1)
    M2 = O1 @ W2
    P = M2 + B2
    dLdP = -(y - P)
    dLdB2 = dLdP.sum(axis=0)
    dLdW2 = O1.T @ dLdP
    dLdO1 = dLdP @ W2.T
    dLdN1 = dLdO1 * sig(N1) * (1 - sig(N1))
    dLdB1 = dLdN1.sum(axis=0)
    dLdW1 = X.T @ dLdN1
    return {"W1": dLdW1, "B1": dLdB1, "W2": dLdW2, "B2": dLdB2}, np.mean(np.power(y - P, 2))


def seed_network_params(W1, B1, W2, B2):
    """The seed's weight dict (B as (1, h) rows) as jaxnn's layer list."""
    return [{"W": jnp.asarray(W1), "b": jnp.asarray(B1[0])}, {"W": jnp.asarray(W2), "b": jnp.asarray(B2[0])}]


def _seed_data(n=40, d=13, hidden=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X @ rng.standard_normal((d, 1)) + 0.3 * rng.standard_normal((n, 1)))
    if hidden is None:
        return X, y, rng.standard_normal((d, 1)), rng.standard_normal((1, 1))
    return X, y, rng.standard_normal((d, hidden)), rng.standard_normal((1, hidden)), \
        rng.standard_normal((hidden, 1)), rng.standard_normal((1, 1))


def training_loss(reduction, gradients, hidden, activation="sigmoid"):
    """The training loss jaxnn.fit sums (``reduction="sum"``/``"half_sum"``) or averages over a minibatch."""
    c = TrainConfig(hidden=hidden, activation=activation, reduction=reduction, gradients=gradients, steps=1)
    r = training.resolve(c, 40)
    reduce = jnp.sum if r.summed else jnp.mean
    return lambda p, X, Y: reduce(r.loss_fn(p, X, Y))


@pytest.mark.parametrize("gradients", names.GRADIENTS)
def test_linear_regression_sum_gradient_is_the_seeds(x64, gradients):
    X, y, W, B = _seed_data()
    seed_g, seed_loss = seed_linear_regression_gradients(X, y, W, B)
    params = [{"W": jnp.asarray(W), "b": jnp.asarray(B[0])}]
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    g_sum = jax.grad(training_loss("sum", gradients, ()))(params, Xj, yj)
    np.testing.assert_allclose(np.asarray(g_sum[0]["W"]), seed_g["W"], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g_sum[0]["b"]), seed_g["B"], rtol=1e-12)
    # the default "mean" reports the seed's printed loss, and its gradient is the seed's / n
    v_mean, g_mean = jax.value_and_grad(training_loss("mean", gradients, ()))(params, Xj, yj)
    assert float(v_mean) == pytest.approx(seed_loss, rel=1e-12)
    n = X.shape[0]
    np.testing.assert_allclose(np.asarray(g_mean[0]["W"]), seed_g["W"] / n, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g_mean[0]["b"]), seed_g["B"] / n, rtol=1e-12)


@pytest.mark.parametrize("gradients", names.GRADIENTS)
def test_network_half_sum_gradient_is_the_seeds(x64, gradients):
    X, y, W1, B1, W2, B2 = _seed_data(hidden=13, seed=1)
    seed_g, seed_loss = seed_network_gradients(X, y, W1, B1, W2, B2)
    params = seed_network_params(W1, B1, W2, B2)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    g = jax.grad(training_loss("half_sum", gradients, (13,)))(params, Xj, yj)
    for ours, theirs in [(g[0]["W"], seed_g["W1"]), (g[0]["b"], seed_g["B1"]),
                         (g[1]["W"], seed_g["W2"]), (g[1]["b"], seed_g["B2"])]:
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-11, atol=1e-13)
    # mean = half_sum / (n / 2): jaxnn's default gradient is the gradient of the mean it reports
    v_mean, g_mean = jax.value_and_grad(training_loss("mean", gradients, (13,)))(params, Xj, yj)
    assert float(v_mean) == pytest.approx(seed_loss, rel=1e-12)
    half_n = X.shape[0] / 2
    for ours, theirs in [(g_mean[0]["W"], seed_g["W1"]), (g_mean[1]["b"], seed_g["B2"])]:
        np.testing.assert_allclose(np.asarray(ours), theirs / half_n, rtol=1e-11, atol=1e-13)


def test_seed_hidden_bias_double_sum_is_a_defect(x64):
    # The seed's loss_gradients['B1'] = dLdB1.sum(axis=0) sums an (h,) vector once more: every
    # hidden bias then moves by the same scalar, the sum of the true per-unit gradients.
    X, y, W1, B1, W2, B2 = _seed_data(hidden=13, seed=2)
    seed_g, _ = seed_network_gradients(X, y, W1, B1, W2, B2)
    seed_b1_update = seed_g["B1"].sum(axis=0)
    assert np.ndim(seed_b1_update) == 0
    params = seed_network_params(W1, B1, W2, B2)
    g_auto = jax.grad(training_loss("half_sum", "autodiff", (13,)))(params, jnp.asarray(X), jnp.asarray(y))
    per_unit = np.asarray(g_auto[0]["b"])
    assert seed_b1_update == pytest.approx(per_unit.sum(), rel=1e-10)
    assert np.ptp(per_unit) > 1e-3  # the true gradient is not one shared value


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, (13,), 1), "n_features"),
        ((13, (13,), 0), "n_outputs"),
        ((13, (0,), 1), "hidden"),
        ((13, (13, -2), 1), "hidden"),
        ((13, (2.5,), 1), "hidden"),
        ((13, (True,), 1), "hidden"),
        ((13.0, (), 1), "n_features"),
    ],
)
def test_layer_sizes_rejects_bad_sizes(args, name):
    with pytest.raises(ValueError, match=name):
        models.layer_sizes(*args)


def test_layer_sizes_returns_the_sizes():
    assert models.layer_sizes(13, (13,), 1) == (13, 13, 1)
    assert models.layer_sizes(4, (), 3) == (4, 3)


def test_bad_names_raise_value_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"init.*glorot"):
        names.initializer("xavier")
    with pytest.raises(ValueError, match=r"activation.*leaky_relu"):
        names.activation("softplus")
    with pytest.raises(ValueError, match=r"gradients.*autodiff"):
        training.resolve_network("tanh", "mse", "numeric")
    with pytest.raises(ValueError, match=r"loss.*cross_entropy"):
        training.resolve_network("tanh", "hinge", "manual")


def test_shape_mismatch_raises_value_error():
    params, X, _, _ = problem((5, 4, 3), "mse", dtype=jnp.float32)
    with pytest.raises(ValueError, match="dense"):
        models.predict(params, X[:, :4])


@pytest.mark.parametrize("shape", [(128, 512, 10), (128, 16, 1), (7, 4, 3), (64, 256, 16)])
def test_dense_backward_of_narrow_and_wide_layers_equals_jax_vjp(x64, shape):
    n, d_in, d_out = shape
    rng = np.random.default_rng(3)  # test inputs: NumPy draws compile nothing
    shapes = ((n, d_in), (d_in, d_out), (d_out,), (n, d_out))
    x, W, b, c = (jnp.asarray(rng.standard_normal(s)) for s in shapes)
    want = jax.vjp(layers.dense, x, W, b)[1](c)
    got = jax.jit(layers.dense_vjp)(x, W, b, c)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


# --- The engine's built-in models: with_backward pieces == their plain forwards -------------


@pytest.mark.parametrize("activation", names.ACTIVATIONS)
@pytest.mark.parametrize("loss_name,l2,sizes", [("mse", 0.0, (5, 1)), ("mse", 0.3, (5, 7, 4, 2)),
                                                ("cross_entropy", 0.0, (5, 6, 3))])
def test_hand_written_model_equals_autodiff_model(activation, loss_name, l2, sizes):
    with jax.enable_x64(True):
        params = models.init_params(jax.random.key(7), sizes, init=models.glorot, dtype=jnp.float64)
        rng = np.random.default_rng(7)  # test inputs: NumPy draws compile nothing
        X = jnp.asarray(2 * rng.standard_normal((9, sizes[0])))
        if loss_name == "cross_entropy":
            Y = jnp.asarray(np.eye(sizes[-1])[rng.integers(0, sizes[-1], 9)])
        else:
            Y = jnp.asarray(rng.standard_normal((9, sizes[-1])))
        manual, auto = loss_fns(activation, loss_name, l2=l2)
        assert manual is loss_fns(activation, loss_name, l2=l2)[0]  # cached: one compiled program
        np.testing.assert_array_equal(manual(params, X, Y), auto(params, X, Y))
        weights = jnp.asarray(rng.uniform(size=9))  # any cotangent, not only ones
        gm = jax.grad(lambda p: jnp.sum(weights * manual(p, X, Y)))(params)
        ga = jax.grad(lambda p: jnp.sum(weights * auto(p, X, Y)))(params)
        for a, b in zip(jax.tree_util.tree_leaves(gm), jax.tree_util.tree_leaves(ga), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shared", [True, False], ids=["shared inputs", "own inputs"])
@pytest.mark.parametrize("loss_name,l2,sizes",
                         [("mse", 0.3, (5, 7, 4, 2)), ("cross_entropy", 0.0, (5, 6, 3))])
def test_vmapped_models_are_each_model_and_their_gradients_the_autodiff_ones(shared, loss_name, l2, sizes):
    """M models under jax.vmap (what fit_many trains) through the hand-written network: each model's
    per-example losses are its own network's, and the hand-written gradient of any weighting of them is
    jax.grad of the plain forwards, model by model (float64)."""
    M = 3
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(11), M)
        each = [models.init_params(k, sizes, init=models.glorot, dtype=jnp.float64) for k in keys]
        many = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *each)  # the model axis leading
        rng = np.random.default_rng(5)  # test inputs: NumPy draws compile nothing
        Xs = [jnp.asarray(2 * rng.standard_normal((9, sizes[0]))) for _ in range(M)]
        Xs = [Xs[0]] * M if shared else Xs
        if loss_name == "cross_entropy":
            Y = jnp.asarray(np.eye(sizes[-1])[rng.integers(0, sizes[-1], 9)])
        else:
            Y = jnp.asarray(rng.standard_normal((9, sizes[-1])))
        manual, auto = loss_fns("tanh", loss_name, l2=l2)
        x_axis = None if shared else 0
        X = Xs[0] if shared else jnp.stack(Xs)
        out = jax.vmap(manual, in_axes=(0, x_axis, None))(many, X, Y)
        assert out.shape == (M, 9)
        weights = jnp.asarray(rng.uniform(size=(M, 9)))

        def total(p):
            return jnp.sum(weights * jax.vmap(manual, in_axes=(0, x_axis, None))(p, X, Y))

        g = jax.grad(total)(many)
        for m in range(M):
            np.testing.assert_allclose(out[m], auto(each[m], Xs[m], Y), rtol=1e-13)
            gm = jax.grad(lambda p, m=m: jnp.sum(weights[m] * auto(p, Xs[m], Y)))(each[m])
            for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(gm), strict=True):
                np.testing.assert_allclose(a[m], b, rtol=1e-12, atol=1e-14)


def test_the_models_refuse_a_name_and_say_how_to_decode_it():
    """The models take functions; a configuration's name is decoded by jaxnn.names (the error says so)."""
    with pytest.raises(TypeError, match=r"init: expected a function, got 'glorot'; jaxnn.names.initializer"):
        models.init_params(jax.random.key(0), (3, 2), init="glorot")
    params = models.init_params(jax.random.key(0), (3, 4, 2), init=names.initializer("glorot"))
    with pytest.raises(TypeError, match=r"activation: expected a function, got 'tanh'; jaxnn.names.activ"):
        models.predict(params, jnp.ones((5, 3)), "tanh")
    with pytest.raises(TypeError, match=r"loss: expected a function, got 'mse'; jaxnn.names.loss"):
        models.make_loss_fn(names.activation("tanh"), "mse")
    # decoded, the same names give the functions the models use
    assert models.predict(params, jnp.ones((5, 3)), names.activation("tanh")).shape == (5, 2)
