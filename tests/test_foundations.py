"""Section 1.2 of the seed (``jaxnn.foundations``): every derivative proven three ways.

References, independent of the code under test:

* the seed notebook's printed numbers (computed by NumPy, partly with numerical derivatives);
* ``jax.grad`` / ``jax.vjp`` / ``jax.jacobian`` of the forward functions, in float64;
* the seed's own check, "increase x a little and compare": f(x + h) - f(x) - f'(x) h is
  bounded by (sup |f''| / 2) h^2, with sup |f''| worked out by hand for each function.
"""

from __future__ import annotations

import ast
import functools
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from jaxnn import foundations
from jaxnn.foundations import (
    chain_deriv,
    chain_forward,
    deriv,
    identity,
    identity_deriv,
    leaky_relu,
    leaky_relu_deriv,
    matrix_forward_extra,
    matrix_forward_extra_vjp,
    matrix_function_backward_1,
    matrix_function_backward_sum_1,
    matrix_function_backward_sum_2,
    matrix_function_forward_sum,
    multiple_inputs_add,
    multiple_inputs_add_backward,
    relu,
    relu_deriv,
    sigmoid,
    sigmoid_deriv,
    square,
    square_deriv,
    tanh,
    tanh_deriv,
)

ROOT = Path(__file__).resolve().parents[1]

ELEMENTWISE = [
    (square, square_deriv),
    (sigmoid, sigmoid_deriv),
    (relu, relu_deriv),
    (leaky_relu, leaky_relu_deriv),
    (tanh, tanh_deriv),
    (identity, identity_deriv),
]
ELEMENTWISE_IDS = [f.__name__ for f, _ in ELEMENTWISE]
FUNCS = [f for f, _ in ELEMENTWISE]

# sup |f''| over the real line, by hand: sigmoid'' = s(1-s)(1-2s) peaks at 1/(6 sqrt 3);
# tanh'' = -2 tanh (1 - tanh^2) peaks at 4/(3 sqrt 3); square'' = 2.
SECOND_DERIV_BOUND = {
    sigmoid: 1 / (6 * math.sqrt(3)),
    tanh: 4 / (3 * math.sqrt(3)),
    square: 2.0,
}
SMOOTH = list(SECOND_DERIV_BOUND)
SMOOTH_IDS = [f.__name__ for f in SMOOTH]

# Agreement of two exact float64 derivative formulas (different rounding only).
EXACT = {"rtol": 1e-12, "atol": 1e-12}


def _floats(lo: float, hi: float, width: int = 64) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, width=width, allow_nan=False, allow_subnormal=False)


def _close(actual, desired, **tol) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), **tol)


def _grad_elementwise(f):
    """jax's derivative of an elementwise f, for arrays of any shape."""
    g = jax.grad(lambda x: f(x))
    return lambda x: jax.vmap(g)(x.ravel()).reshape(x.shape)


# --- The seed's printed numbers --------------------------------------------------------------


def test_seed_forward_values(x64):
    _close(chain_forward([square, sigmoid], 2), 0.9820137900379085, rtol=1e-15)
    _close(chain_forward([leaky_relu, square, sigmoid], -4), 0.6547534606063192, rtol=1e-15)
    _close(multiple_inputs_add(3, 4, sigmoid), 0.9990889488055994, rtol=1e-15)
    _close(multiple_inputs_add(np.array(3), np.array(4), sigmoid), 0.9990889488055994,
           rtol=1e-15)


def test_seed_numerical_derivative_of_square(x64):
    # [4]: the seed printed 3.999999999995595; NumPy's (2.001**2 - 1.999**2) / 0.002 is
    # 3.9999999999995595 (the seed's text seems to have lost one 9). deriv is that formula.
    numpy_value = (np.square(2 + 0.001) - np.square(2 - 0.001)) / (2 * 0.001)
    assert float(deriv(square, 2)) == pytest.approx(numpy_value, rel=1e-15)
    assert abs(float(deriv(square, 2)) - 3.999999999995595) <= 1e-11
    assert float(square_deriv(2)) == 4.0


@pytest.mark.parametrize(
    ("chain", "x", "seed_printed"),
    [
        ([square, sigmoid], 2.0, 0.0706508353807067),
        ([leaky_relu, square, sigmoid], -4.0, -0.07233643296206184),
    ],
    ids=["chain_deriv_2", "chain_deriv_3"],
)
def test_seed_chain_backward(chain, x, seed_printed, x64):
    analytic = float(chain_deriv(chain, x))
    auto = float(jax.grad(lambda u: chain_forward(chain, u))(x))
    assert analytic == pytest.approx(auto, rel=1e-12, abs=1e-15)
    # The seed's central difference of the whole chain, and the seed's own printout
    # (per-link central differences): both within ~1e-6 of the analytic value.
    numerical = float(deriv(lambda u: chain_forward(chain, u), x))
    assert abs(numerical - analytic) <= 1e-6
    assert abs(seed_printed - analytic) <= 1e-6
    # The seed's chain_deriv_n, rebuilt with `deriv` per link, reproduces its printout:
    # proof that `deriv` is the seed's central difference.
    u, seed_style = jnp.float64(x), 1.0
    for f in chain:
        seed_style = seed_style * deriv(f, u)
        u = f(u)
    assert float(seed_style) == pytest.approx(seed_printed, rel=1e-12)


def test_seed_multiple_inputs_backward(x64):
    dx, dy = multiple_inputs_add_backward(3, 4, sigmoid)
    auto_x, auto_y = jax.grad(lambda x, y: multiple_inputs_add(x, y, sigmoid), argnums=(0, 1))(
        3.0, 4.0
    )
    _close(dx, auto_x, rtol=1e-12)
    _close(dy, auto_y, rtol=1e-12)
    seed_printed = 0.0009102213310852036
    assert abs(float(dx) - seed_printed) <= 1e-6
    assert abs(float(dy) - seed_printed) <= 1e-6
    assert abs(float(deriv(sigmoid, 7.0)) - float(dx)) <= 1e-6
    assert float(deriv(sigmoid, 7.0)) == pytest.approx(seed_printed, rel=1e-12)


def test_seed_increase_by_a_little(x64):
    # [11]: x = 2 -> 2.0001 through [square, sigmoid].
    chain = [square, sigmoid]
    _close(chain_forward(chain, 2 + 0.0001), 0.9820208539349344, rtol=1e-14)
    lin = chain_forward(chain, 2) + chain_deriv(chain, 2.0) * 0.0001
    _close(lin, 0.9820208551204942, atol=1e-10)  # seed used its numerical derivative
    # [15]: x = -4 -> -3.9 through [leaky_relu, square, sigmoid].
    chain = [leaky_relu, square, sigmoid]
    _close(chain_forward(chain, -4 + 0.1), 0.6475757341144874, rtol=1e-14)
    lin = chain_forward(chain, -4) + chain_deriv(chain, -4.0) * 0.1
    _close(lin, 0.647519817310113, atol=1e-8)
    # [19]-[21]: multiple inputs, x, y and both increased by 0.001.
    s, (dx, dy) = multiple_inputs_add(3, 4, sigmoid), multiple_inputs_add_backward(3, 4, sigmoid)
    _close(multiple_inputs_add(3 + 0.001, 4, sigmoid), 0.9990898585726491, rtol=1e-14)
    _close(multiple_inputs_add(3, 4 + 0.001, sigmoid), 0.9990898585726491, rtol=1e-14)
    _close(s + dx * 0.001, 0.9990898590269305, atol=1e-12)
    _close(s + dy * 0.001, 0.9990898590269305, atol=1e-12)
    _close(multiple_inputs_add(3 + 0.001, 4 + 0.001, sigmoid), 0.9990907674320407, rtol=1e-14)
    _close(s + dx * 0.001 + dy * 0.001, 0.9990907692482616, atol=1e-12)


SEED_X = [
    [-1.57752816, -0.6664228, 0.63910406],
    [-0.56152218, 0.73729959, -1.42307821],
    [-1.44348429, -0.39128029, 0.1539322],
]
SEED_DLDX = [
    [0.2488887, -0.37478057, 0.01121962],
    [0.12604152, -0.27807404, -0.13945837],
    [0.22992798, -0.36623443, -0.02252592],
]


def test_seed_matrix_sum_example(x64):
    np.random.seed(190204)  # the seed's legacy global RNG, reproduced on purpose  # noqa: NPY002
    X = np.random.randn(3, 3)  # noqa: NPY002
    W = np.random.randn(3, 2)  # noqa: NPY002
    _close(X, SEED_X, atol=1e-8)
    L = float(matrix_function_forward_sum(X, W, sigmoid))
    assert round(L, 4) == 2.3755
    dLdX = matrix_function_backward_sum_1(X, W, sigmoid)
    # The seed's dLdX came from numerical derivatives and was printed to 8 digits.
    _close(dLdX, SEED_DLDX, atol=1e-7)
    _close(dLdX, jax.grad(matrix_function_forward_sum)(X, W, sigmoid), **EXACT)
    # [29]: X[0, 0] += 0.001 -> (L1 - L) / 0.001 rounds to 0.2489.
    X1 = X.copy()
    X1[0, 0] += 0.001
    slope = (float(matrix_function_forward_sum(X1, W, sigmoid)) - L) / 0.001
    assert round(slope, 4) == 0.2489
    assert abs(slope - float(dLdX[0, 0])) <= 1e-4


def test_seed_vector_example(x64):
    np.random.seed(190203)  # noqa: NPY002
    X = np.random.randn(1, 3)  # noqa: NPY002
    W = np.random.randn(3, 1)  # noqa: NPY002
    _close(X, [[0.47231121, 0.61514271, -1.72622715]], atol=1e-8)
    S = matrix_forward_extra(X, W, sigmoid)
    _close(S, [[0.89779986]], atol=1e-8)
    dSdX = matrix_function_backward_1(X, W, sigmoid)
    _close(dSdX, [[0.08516695, -0.05574581, -0.11206627]], atol=1e-7)
    X_new = X.copy()
    X_new[:, 0] += 0.001
    _close(matrix_forward_extra(X_new, W, sigmoid), [[0.897885]], atol=1e-6)
    _close(S + dSdX[0, 0] * 0.001, [[0.89788503]], atol=1e-8)


@functools.partial(jax.jit, static_argnums=2)
def _vector_example(X, W, sigma):
    """(hand-written dS/dX, jax.jacobian of S, jax.grad of each S_i w.r.t. its own row)."""
    J = jax.jacobian(matrix_forward_extra)(X, W, sigma)  # (n, 1, n, d)
    rows = jax.vmap(jax.grad(lambda x: matrix_forward_extra(x[None], W, sigma)[0, 0]))(X)
    return matrix_function_backward_1(X, W, sigma), J, rows


@settings(max_examples=20)
@given(
    n=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    sigma=st.sampled_from(FUNCS),
)
def test_vector_backward_equals_jacobian_row_by_row(n, seed, sigma, x64):
    """W of shape (3, 1): row i of dS/dX is the gradient of S_i w.r.t. row i of X."""
    rng = np.random.default_rng(seed)
    X, W = rng.normal(size=(n, 3)), rng.normal(size=(3, 1))
    got, J, rows = _vector_example(jnp.asarray(X), jnp.asarray(W), sigma)
    assert got.shape == (n, 3) and J.shape == (n, 1, n, 3)
    _close(got, rows, **EXACT)
    for i in range(n):
        _close(got[i], J[i, 0, i], **EXACT)
        others = np.delete(np.asarray(J[i, 0]), i, axis=0)
        assert not np.any(others)  # S_i does not depend on the other rows of X
    # Eagerly, without jit, the same numbers.
    _close(matrix_function_backward_1(X, W, sigma), got, rtol=1e-13, atol=1e-15)


# --- Elementwise functions and their derivatives ---------------------------------------------


@pytest.mark.parametrize(("f", "d"), ELEMENTWISE, ids=ELEMENTWISE_IDS)
def test_deriv_attribute_is_the_derivative(f, d):
    assert f.deriv is d
    assert foundations.derivative_of(f) is d


@pytest.mark.parametrize(("f", "d"), ELEMENTWISE, ids=ELEMENTWISE_IDS)
@given(x=hnp.arrays(np.float64, 8, elements=_floats(-10, 10)))
def test_deriv_equals_jax_grad_float64(f, d, x, x64):
    expected = _grad_elementwise(f)(jnp.asarray(x))
    _close(d(x), expected, **EXACT)
    _close(f.deriv(x), expected, **EXACT)
    # Python scalar in, scalar out.
    _close(d(float(x[0])), jax.grad(f)(float(x[0])), **EXACT)


@pytest.mark.parametrize(("f", "d"), ELEMENTWISE, ids=ELEMENTWISE_IDS)
def test_deriv_matches_central_differences(f, d, x64):
    # Away from the kinks, the seed's `deriv` (O(diff^2) truncation) agrees to ~1e-6.
    x = jnp.linspace(-3.0, 3.0, 24)  # even count: 0 is not on the grid
    _close(d(x), deriv(f, x), atol=1e-6)


@pytest.mark.parametrize(("f", "d"), ELEMENTWISE, ids=ELEMENTWISE_IDS)
def test_input_kinds_and_dtypes(f, d):
    values = [-2.5, -0.5, 0.75, 3.0]
    # float32 (the default without x64): numpy, jax, Python scalar.
    for x in (np.asarray(values, np.float32), jnp.asarray(values, jnp.float32)):
        out, der = f(x), d(x)
        assert out.dtype == jnp.float32 and der.dtype == jnp.float32
        assert der.shape == x.shape
        _close(der, _grad_elementwise(f)(jnp.asarray(x)), rtol=1e-6, atol=1e-7)
    assert d(0.75).dtype == jnp.float32 and d(0.75).shape == ()
    _close(d(0.75), jax.grad(f)(0.75), rtol=1e-6)
    # Integers are promoted to float.
    assert d(np.asarray([1, 2])).dtype == jnp.float32
    with jax.enable_x64(True):
        x64_in = np.asarray(values, np.float64)
        assert f(x64_in).dtype == jnp.float64 and d(x64_in).dtype == jnp.float64
        # float32 stays float32 even with x64 on (no silent upcast).
        x32_in = np.asarray(values, np.float32)
        assert f(x32_in).dtype == jnp.float32 and d(x32_in).dtype == jnp.float32
        assert d(0.75).dtype == jnp.float64
        _close(d(x64_in), _grad_elementwise(f)(jnp.asarray(x64_in)), **EXACT)
        # 2-D input, shape kept.
        m = x64_in.reshape(2, 2)
        assert d(m).shape == (2, 2)
        _close(d(m), _grad_elementwise(f)(jnp.asarray(m)), **EXACT)


@pytest.mark.parametrize(("f", "d"), ELEMENTWISE, ids=ELEMENTWISE_IDS)
def test_jit_equals_no_jit(f, d, x64):
    x = jnp.linspace(-4.0, 4.0, 17)  # includes 0, the kink
    # XLA may fuse differently under jit (e.g. tanh): equal up to a few ulps.
    _close(jax.jit(d)(x), d(x), rtol=1e-13, atol=1e-16)
    _close(jax.jit(f)(x), f(x), rtol=1e-13, atol=1e-16)
    _close(jax.jit(lambda u: chain_deriv([f, sigmoid], u))(x), chain_deriv([f, sigmoid], x),
           rtol=1e-13, atol=1e-16)


# --- Kinks ---------------------------------------------------------------------------------


def test_leaky_relu_default_slope_is_0_2(x64):
    assert float(leaky_relu(-1.0)) == pytest.approx(-0.2, rel=1e-15)
    assert float(leaky_relu(3.0)) == 3.0
    assert float(leaky_relu_deriv(-1.0)) == pytest.approx(0.2, rel=1e-15)
    assert float(leaky_relu(-1.0, 0.1)) == pytest.approx(-0.1, rel=1e-15)
    assert float(leaky_relu_deriv(-1.0, 0.1)) == pytest.approx(0.1, rel=1e-15)
    assert float(jax.grad(leaky_relu)(-1.0, 0.1)) == pytest.approx(0.1, rel=1e-15)


def test_kink_conventions_at_zero(x64):
    # Documented in jaxnn.foundations: relu'(0) = 0 (left), leaky_relu'(0) = 1 (right).
    assert float(relu_deriv(0.0)) == 0.0
    assert float(leaky_relu_deriv(0.0)) == 1.0
    assert float(jax.grad(relu)(0.0)) == 0.0
    assert float(jax.grad(leaky_relu)(0.0)) == 1.0
    # The same conventions as jax.nn, so users switching to jax.nn see the same numbers.
    assert float(jax.grad(jax.nn.relu)(0.0)) == float(relu_deriv(0.0))
    # -0.0 is 0: same convention.
    assert float(relu_deriv(-0.0)) == 0.0
    assert float(leaky_relu_deriv(-0.0)) == 1.0
    for dtype in (jnp.float32, jnp.float64):
        z = jnp.zeros(3, dtype)
        _close(relu_deriv(z), np.zeros(3))
        _close(leaky_relu_deriv(z), np.ones(3))
        _close(chain_deriv([relu], z), _grad_elementwise(relu)(z))
        _close(chain_deriv([leaky_relu], z), _grad_elementwise(leaky_relu)(z))


@pytest.mark.parametrize("eps", [1e-12, 1e-300])
def test_one_sided_derivatives_next_to_the_kink(eps, x64):
    x = jnp.asarray([-eps, eps])
    _close(relu_deriv(x), [0.0, 1.0], rtol=0, atol=0)
    _close(leaky_relu_deriv(x), [0.2, 1.0], rtol=1e-15, atol=0)
    _close(_grad_elementwise(relu)(x), [0.0, 1.0], rtol=0, atol=0)
    _close(_grad_elementwise(leaky_relu)(x), [0.2, 1.0], rtol=1e-15, atol=0)
    _close(relu(x), [0.0, eps], rtol=0, atol=0)
    _close(leaky_relu(x), [-0.2 * eps, eps], rtol=1e-15, atol=0)


@given(x=_floats(-1e-6, 1e-6), slope=_floats(0.01, 0.9))
def test_leaky_relu_near_kink(x, slope, x64):
    expected = 1.0 if x >= 0 else slope
    assert float(leaky_relu_deriv(x, slope)) == pytest.approx(expected, rel=1e-15)
    assert float(jax.grad(leaky_relu)(x, slope)) == pytest.approx(expected, rel=1e-15)
    assert float(chain_deriv([leaky_relu], x)) == pytest.approx(1.0 if x >= 0 else 0.2)
    # Piecewise linear: the forward value is exactly slope * x or x.
    assert float(leaky_relu(x, slope)) == pytest.approx(x if x >= 0 else slope * x, rel=1e-15)


# --- Chains --------------------------------------------------------------------------------


@given(
    chain=st.lists(st.sampled_from(FUNCS), min_size=1, max_size=6),
    x=_floats(-3, 3),
)
def test_chain_deriv_equals_jax_grad(chain, x, x64):
    expected = jax.grad(lambda u: chain_forward(chain, u))(x)
    got = chain_deriv(chain, x)
    assert np.isfinite(float(got))
    _close(got, expected, **EXACT)


@given(
    chain=st.lists(st.sampled_from(FUNCS), min_size=1, max_size=6),
    x=hnp.arrays(np.float64, 5, elements=_floats(-3, 3)),
)
def test_chain_deriv_elementwise_on_arrays(chain, x, x64):
    got = chain_deriv(chain, x)
    assert got.shape == x.shape and got.dtype == jnp.float64
    _close(got, _grad_elementwise(lambda u: chain_forward(chain, u))(jnp.asarray(x)), **EXACT)


@given(
    f1=st.sampled_from(FUNCS), f2=st.sampled_from(FUNCS), f3=st.sampled_from(FUNCS),
    x=_floats(-3, 3),
)
def test_chain_deriv_2_and_3_formulas(f1, f2, f3, x, x64):
    """The seed's explicit products, written out again, with analytic link derivatives."""
    # chain_deriv_2: f2'(f1(x)) * f1'(x)
    expected_2 = f2.deriv(f1(x)) * f1.deriv(x)
    _close(chain_deriv([f1, f2], x), expected_2, **EXACT)
    _close(chain_forward([f1, f2], x), f2(f1(x)), rtol=0, atol=0)
    # chain_deriv_3: f3'(f2(f1(x))) * f2'(f1(x)) * f1'(x)
    expected_3 = f3.deriv(f2(f1(x))) * f2.deriv(f1(x)) * f1.deriv(x)
    _close(chain_deriv([f1, f2, f3], x), expected_3, **EXACT)
    _close(chain_forward([f1, f2, f3], x), f3(f2(f1(x))), rtol=0, atol=0)


def test_chain_accepts_tuples_and_long_chains(x64):
    chain = (tanh, sigmoid) * 5  # 10 links
    _close(chain_deriv(chain, 0.3), jax.grad(lambda u: chain_forward(chain, u))(0.3), **EXACT)


def test_chain_errors():
    with pytest.raises(ValueError, match="non-empty"):
        chain_deriv([], 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        chain_forward([], 1.0)
    with pytest.raises(ValueError):
        chain_forward("sigmoid", 1.0)
    no_derivative = lambda u: jnp.exp(u)
    with pytest.raises(TypeError, match="no analytic derivative"):
        chain_deriv([sigmoid, no_derivative], 1.0)
    with pytest.raises(TypeError, match="no analytic derivative"):
        multiple_inputs_add_backward(1.0, 2.0, no_derivative)
    with pytest.raises(TypeError, match="callable"):
        chain_forward([sigmoid, 3], 1.0)
    # The forward pass alone needs no derivative.
    assert float(chain_forward([no_derivative], 0.0)) == 1.0


# --- Multiple inputs and matrices ------------------------------------------------------------


@given(
    x=hnp.arrays(np.float64, (2, 3), elements=_floats(-5, 5)),
    seed=st.integers(0, 2**31 - 1),
    sigma=st.sampled_from(FUNCS),
)
def test_multiple_inputs_add_backward_equals_jax_grad(x, seed, sigma, x64):
    y = np.random.default_rng(seed).normal(size=x.shape)
    dx, dy = multiple_inputs_add_backward(x, y, sigma)
    assert dx.shape == dy.shape == x.shape
    gx, gy = jax.grad(
        lambda a, b: jnp.sum(multiple_inputs_add(a, b, sigma)), argnums=(0, 1)
    )(jnp.asarray(x), jnp.asarray(y))
    _close(dx, gx, **EXACT)
    _close(dy, gy, **EXACT)
    jx, jy = jax.jit(multiple_inputs_add_backward, static_argnums=2)(x, y, sigma)
    _close(jx, dx, rtol=1e-13, atol=1e-16)
    _close(jy, dy, rtol=1e-13, atol=1e-16)


_dims = st.integers(1, 6)


@st.composite
def _matrices(draw):
    n, d, k = draw(_dims), draw(_dims), draw(_dims)
    X = draw(hnp.arrays(np.float64, (n, d), elements=_floats(-2, 2)))
    W = draw(hnp.arrays(np.float64, (d, k), elements=_floats(-2, 2)))
    return X, W


@functools.partial(jax.jit, static_argnums=3)
def _matrix_grads(X, W, cot, sigma):
    """Hand-written backwards and their jax references, one compile per shape and sigma."""
    _, vjp_fn = jax.vjp(lambda a, b: matrix_forward_extra(a, b, sigma), X, W)
    manual = {
        "dLdX": matrix_function_backward_sum_1(X, W, sigma),
        "dLdW": matrix_function_backward_sum_2(X, W, sigma),
        "backward_1": matrix_function_backward_1(X, W, sigma),
        "vjp": matrix_forward_extra_vjp(X, W, sigma, cot),
    }
    gX, gW = jax.grad(matrix_function_forward_sum, argnums=(0, 1))(X, W, sigma)
    auto = {"dLdX": gX, "dLdW": gW, "backward_1": gX, "vjp": vjp_fn(cot)}
    return manual, auto


@settings(max_examples=25)  # each new shape compiles; 25 draws cover n, d, k in 1..6 well
@given(XW=_matrices(), sigma=st.sampled_from(FUNCS), seed=st.integers(0, 2**31 - 1))
def test_matrix_backwards_equal_jax_grad_and_vjp(XW, sigma, seed, x64):
    """dL/dX, dL/dW of L = sum(sigma(X @ W)) equal jax.grad; the VJP of S equals jax.vjp."""
    X, W = XW
    cot = np.random.default_rng(seed).normal(size=(X.shape[0], W.shape[1]))
    manual, auto = _matrix_grads(jnp.asarray(X), jnp.asarray(W), jnp.asarray(cot), sigma)
    assert manual["dLdX"].shape == X.shape and manual["dLdW"].shape == W.shape
    assert manual["vjp"][0].shape == X.shape and manual["vjp"][1].shape == W.shape
    for name in manual:  # backward_1 (the seed's k = 1 case) is the VJP with ones
        for m, a in zip(jax.tree_util.tree_leaves(manual[name]),
                        jax.tree_util.tree_leaves(auto[name]), strict=True):
            _close(m, a, **EXACT, err_msg=name)


def test_matrix_backwards_eager_equal_jit(x64):
    X = jax.random.normal(jax.random.key(0), (5, 4), jnp.float64)
    W = jax.random.normal(jax.random.key(1), (4, 3), jnp.float64)
    cot = jax.random.normal(jax.random.key(2), (5, 3), jnp.float64)
    manual, auto = _matrix_grads(X, W, cot, sigmoid)
    _close(matrix_function_backward_sum_1(X, W, sigmoid), manual["dLdX"], rtol=1e-13)
    _close(matrix_function_backward_sum_2(X, W, sigmoid), manual["dLdW"], rtol=1e-13)
    eager_vjp = matrix_forward_extra_vjp(X, W, sigmoid, cot)
    _close(eager_vjp[0], auto["vjp"][0], **EXACT)
    _close(eager_vjp[1], auto["vjp"][1], **EXACT)


# --- Stability at large |x| ----------------------------------------------------------------


@pytest.mark.parametrize("width", [32, 64])
@given(data=st.data())
def test_sigmoid_and_derivative_stable_at_large_x(width, data):
    dtype = jnp.float32 if width == 32 else jnp.float64
    x = data.draw(hnp.arrays(np.float32 if width == 32 else np.float64, 6,
                             elements=_floats(-50, 50, width)))
    with jax.enable_x64(width == 64):
        s, ds = sigmoid(x), sigmoid_deriv(x)
        assert s.dtype == dtype and ds.dtype == dtype
        s, ds = np.asarray(s), np.asarray(ds)
        assert np.all(np.isfinite(s)) and np.all(np.isfinite(ds))
        assert np.all((s >= 0) & (s <= 1))
        assert np.all((ds >= 0) & (ds <= 0.25))
        # Against the closed form in float64 NumPy (math.exp of -|x| cannot overflow).
        ref = np.asarray([1 / (1 + math.exp(-v)) if v >= 0 else
                          math.exp(v) / (1 + math.exp(v)) for v in x.astype(np.float64)])
        tol = 1e-6 if width == 32 else 1e-15
        _close(s, ref, rtol=tol, atol=1e-30)
        _close(ds, ref * (1 - ref), atol=1e-7 if width == 32 else 1e-16)


def test_sigmoid_finite_where_the_naive_formula_overflows(x64):
    # 1 / (1 + exp(-x)) overflows exp(-x) below about -88 (float32) and -709 (float64).
    for x in (jnp.asarray([-100.0, 100.0], jnp.float32), jnp.asarray([-1000.0, 1000.0])):
        _close(sigmoid(x), [0.0, 1.0], atol=0)
        _close(sigmoid_deriv(x), [0.0, 0.0], atol=0)
        _close(_grad_elementwise(sigmoid)(x), [0.0, 0.0], atol=0)


_SQUASHERS = [sigmoid, tanh, relu, leaky_relu, identity]


@st.composite
def _chains_with_sigmoid(draw):
    """Chains with a sigmoid somewhere and at most two squares (|x| <= 50 stays finite)."""
    links = draw(st.lists(st.sampled_from(_SQUASHERS), min_size=0, max_size=4))
    links.insert(draw(st.integers(0, len(links))), sigmoid)
    for _ in range(draw(st.integers(0, 2))):
        links.insert(draw(st.integers(0, len(links))), square)
    return links


@pytest.mark.parametrize("width", [32, 64])
@given(chain=_chains_with_sigmoid(), data=st.data())
def test_chains_with_sigmoid_finite_at_large_x(chain, width, data):
    x = data.draw(hnp.arrays(np.float32 if width == 32 else np.float64, 4,
                             elements=_floats(-50, 50, width)))
    with jax.enable_x64(width == 64):
        out, der = chain_forward(chain, x), chain_deriv(chain, x)
        assert out.dtype == x.dtype and der.dtype == x.dtype
        assert np.all(np.isfinite(np.asarray(out))) and np.all(np.isfinite(np.asarray(der)))
        if width == 64:
            auto = _grad_elementwise(lambda u: chain_forward(chain, u))(jnp.asarray(x))
            # atol: sigma'(u) = s (1 - s) loses the tail below ~1e-16 that jax.grad keeps.
            _close(der, auto, rtol=1e-12, atol=1e-9)


# --- "Increase x by a little and compare": Taylor remainder <= C h^2 ----------------------

_h = st.one_of(_floats(1e-5, 1e-3), _floats(-1e-3, -1e-5))
_FP_SLACK = 1e-13  # rounding in f(x + h) - f(x) for |f| <= ~10


@pytest.mark.parametrize(
    ("chain", "C"),
    [
        # f = sigma(x^2): f'' = 2 sigma'(x^2) + 4 x^2 sigma''(x^2). The first term is in
        # (0, 0.5], the second <= 0 (sigma'' <= 0 on u >= 0); sup |f''| = 0.5 at x = 0.
        ([square, sigmoid], 0.3),
        # f = sigma(leaky(x)^2) is C^1 at 0 (f'(0) = 0 from both sides), and on each side
        # |f''| <= 0.5 as above, so the same bound holds across the kink.
        ([leaky_relu, square, sigmoid], 0.3),
        # tanh then sigmoid: |f''| <= |sigma''| + |sigma'| |tanh''| <= 0.0963 + 0.25 * 0.77.
        ([tanh, sigmoid], 0.15),
    ],
    ids=["square-sigmoid", "leaky-square-sigmoid", "tanh-sigmoid"],
)
@given(x=_floats(-3, 3), h=_h)
def test_chain_linearisation_error_is_order_h_squared(chain, C, x, h, x64):
    f0 = float(chain_forward(chain, x))
    f1 = float(chain_forward(chain, x + h))
    slope = float(chain_deriv(chain, x))
    assert abs(f1 - (f0 + slope * h)) <= C * h * h + _FP_SLACK


@pytest.mark.parametrize("sigma", SMOOTH, ids=SMOOTH_IDS)
@given(x=_floats(-3, 3), y=_floats(-3, 3), h=_h)
def test_multiple_inputs_linearisation_error_is_order_h_squared(sigma, x, y, h, x64):
    M2 = SECOND_DERIV_BOUND[sigma]
    s = float(multiple_inputs_add(x, y, sigma))
    dx, dy = (float(g) for g in multiple_inputs_add_backward(x, y, sigma))
    # a = x + y moves by h (x or y alone) or 2h (both): remainder <= M2 / 2 * (delta a)^2.
    err_x = abs(float(multiple_inputs_add(x + h, y, sigma)) - (s + dx * h))
    err_y = abs(float(multiple_inputs_add(x, y + h, sigma)) - (s + dy * h))
    err_xy = abs(float(multiple_inputs_add(x + h, y + h, sigma)) - (s + dx * h + dy * h))
    assert err_x <= M2 / 2 * h * h + _FP_SLACK
    assert err_y <= M2 / 2 * h * h + _FP_SLACK
    assert err_xy <= M2 / 2 * (2 * h) ** 2 + _FP_SLACK


@pytest.mark.parametrize("sigma", SMOOTH, ids=SMOOTH_IDS)
@given(
    XW=st.tuples(  # the seed's shapes, (3, 3) @ (3, 2); values drawn
        hnp.arrays(np.float64, (3, 3), elements=_floats(-2, 2)),
        hnp.arrays(np.float64, (3, 2), elements=_floats(-2, 2)),
    ),
    h=_h,
    data=st.data(),
)
def test_matrix_sum_linearisation_error_is_order_h_squared(sigma, XW, h, data, x64):
    X, W = XW
    M2 = SECOND_DERIV_BOUND[sigma]
    L = float(matrix_function_forward_sum(X, W, sigma))
    slack = _FP_SLACK * max(1.0, X.shape[0] * W.shape[1])
    # Perturb X[i, j]: row i of N moves by h * W[j, :], so L'' <= M2 * sum_k W[j, k]^2.
    i = data.draw(st.integers(0, X.shape[0] - 1))
    j = data.draw(st.integers(0, X.shape[1] - 1))
    X1 = X.copy()
    X1[i, j] += h
    dLdX = float(matrix_function_backward_sum_1(X, W, sigma)[i, j])
    err = abs(float(matrix_function_forward_sum(X1, W, sigma)) - (L + dLdX * h))
    assert err <= M2 / 2 * float(np.sum(W[j] ** 2)) * h * h + slack
    # Perturb W[j, k]: column k of N moves by h * X[:, j], so L'' <= M2 * sum_i X[i, j]^2.
    k = data.draw(st.integers(0, W.shape[1] - 1))
    W1 = W.copy()
    W1[j, k] += h
    dLdW = float(matrix_function_backward_sum_2(X, W, sigma)[j, k])
    err = abs(float(matrix_function_forward_sum(X, W1, sigma)) - (L + dLdW * h))
    assert err <= M2 / 2 * float(np.sum(X[:, j] ** 2)) * h * h + slack


def test_linearisation_check_catches_a_wrong_derivative(x64):
    """The O(h^2) test is not vacuous: a derivative 1% off breaks the bound at small h."""
    chain, x, h, C = [square, sigmoid], 1.0, 1e-5, 0.3
    f0, f1 = float(chain_forward(chain, x)), float(chain_forward(chain, x + h))
    right = float(chain_deriv(chain, x))
    assert abs(f1 - (f0 + right * h)) <= C * h * h
    assert abs(f1 - (f0 + 1.01 * right * h)) > C * h * h
    # Halving h quarters the remainder (second order), as Taylor says.
    errs = [abs(float(chain_forward(chain, x + s)) - (f0 + right * s)) for s in (1e-3, 5e-4)]
    assert errs[0] / errs[1] == pytest.approx(4.0, rel=0.01)


# --- Shape validation: ValueError naming both shapes, never a bare assert ----------------

MATRIX_FUNCS = [
    lambda X, W: matrix_forward_extra(X, W, sigmoid),
    lambda X, W: matrix_function_backward_1(X, W, sigmoid),
    lambda X, W: matrix_function_forward_sum(X, W, sigmoid),
    lambda X, W: matrix_function_backward_sum_1(X, W, sigmoid),
    lambda X, W: matrix_function_backward_sum_2(X, W, sigmoid),
    lambda X, W: matrix_forward_extra_vjp(X, W, sigmoid, np.ones((3, 2))),
]
MATRIX_IDS = [
    "matrix_forward_extra", "matrix_function_backward_1", "matrix_function_forward_sum",
    "matrix_function_backward_sum_1", "matrix_function_backward_sum_2",
    "matrix_forward_extra_vjp",
]


@pytest.mark.parametrize("func", MATRIX_FUNCS, ids=MATRIX_IDS)
def test_matrix_shape_mismatch_names_both_shapes(func):
    with pytest.raises(ValueError, match=r"\(3, 3\)") as info:
        func(np.ones((3, 3)), np.ones((4, 2)))
    assert "(4, 2)" in str(info.value)
    with pytest.raises(ValueError, match=r"\(3,\)") as info:
        func(np.ones(3), np.ones((3, 2)))
    assert "(3, 2)" in str(info.value)


@pytest.mark.parametrize("func", [multiple_inputs_add, multiple_inputs_add_backward])
def test_multiple_inputs_shape_mismatch_names_both_shapes(func):
    with pytest.raises(ValueError, match=r"\(2,\)") as info:
        func(np.ones(2), np.ones(3), sigmoid)
    assert "(3,)" in str(info.value)
    # No silent broadcasting either: (2,) with (1,) or () is refused.
    with pytest.raises(ValueError):
        func(np.ones(2), np.ones(1), sigmoid)
    with pytest.raises(ValueError):
        func(np.ones(2), 1.0, sigmoid)


def test_no_assert_statements_in_foundations():
    tree = ast.parse((ROOT / "jaxnn" / "foundations.py").read_text())
    asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert asserts == []


def test_validation_survives_python_dash_O():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from jaxnn.foundations import matrix_function_forward_sum, multiple_inputs_add, sigmoid
        assert False, "asserts are not stripped"  # must vanish under -O
        """
    )
    code += textwrap.dedent(
        """
        print("optimize", sys.flags.optimize)
        for call in (lambda: matrix_function_forward_sum(np.ones((3, 3)), np.ones((4, 2)), sigmoid),
                     lambda: multiple_inputs_add(np.ones(2), np.ones(3), sigmoid)):
            try:
                call()
            except ValueError as e:
                print("ValueError:", e)
            else:
                print("no error")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120,
        cwd=ROOT, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "optimize 1"
    assert len(lines) == 3 and all(line.startswith("ValueError:") for line in lines[1:]), lines
    assert "(3, 3)" in lines[1] and "(4, 2)" in lines[1]
    assert "(2,)" in lines[2] and "(3,)" in lines[2]
