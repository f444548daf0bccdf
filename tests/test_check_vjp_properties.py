"""Property tests: the registry's hand-written backwards pass check_vjp over drawn shapes and
values (saturated, next to kinks, at kinks), and a drawn mutation of them is always caught."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxnn import gradients
from jaxnn.checking import check_vjp

ELEMENTWISE = ["square", "sigmoid", "tanh", "relu", "leaky_relu"]
VALUES = st.one_of(
    st.floats(-50.0, 50.0, allow_nan=False),
    st.sampled_from([0.0, 1e-12, -1e-12, 1e-300, -1e-9, 45.0, -50.0]),  # kinks, saturation
)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
SEEDS = st.integers(0, 2**20)


@settings(max_examples=4)
@given(name=st.sampled_from(ELEMENTWISE), x=hnp.arrays(np.float64, SHAPES, elements=VALUES),
       seed=SEEDS)
def test_elementwise_entries_pass_on_drawn_shapes_and_values(name, x, seed):
    entry = gradients.get(name)
    with jax.enable_x64(True):
        r = check_vjp(entry.forward, entry.backward, (jnp.asarray(x),), key=jax.random.key(seed))
    assert r.passed, r.report()


def _normals(seed, *shapes):
    """Standard normals of these shapes, drawn with NumPy (a jax.random draw compiles per shape)."""
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.standard_normal(shape)) for shape in shapes]


def _dense_args(n, d, k, scale, seed):
    x, W, b = _normals(seed, (n, d), (d, k), (k,))
    return scale * x, W, b


@settings(max_examples=4)
@given(n=st.integers(1, 5), d=st.integers(1, 5), k=st.integers(1, 5),
       scale=st.sampled_from([1e-3, 1.0, 30.0]), seed=SEEDS)
def test_dense_passes_on_drawn_shapes(n, d, k, scale, seed):
    entry = gradients.get("dense")
    with jax.enable_x64(True):
        r = check_vjp(entry.forward, entry.backward, _dense_args(n, d, k, scale, seed),
                      key=jax.random.key(seed + 1))
    assert r.passed, r.report()


@settings(max_examples=4)
@given(n=st.integers(1, 5), d=st.integers(1, 5), k=st.integers(1, 5), seed=SEEDS,
       which=st.integers(0, 2), factor=st.sampled_from([2.0, 0.5, -1.0, 1.01]))
def test_a_drawn_mutation_of_dense_is_always_caught(n, d, k, seed, which, factor):
    entry = gradients.get("dense")

    def wrong(x, W, b, c):
        grads = list(entry.backward(x, W, b, c))
        grads[which] = factor * grads[which]
        return tuple(grads)

    with jax.enable_x64(True):
        args = _dense_args(n, d, k, 1.0, seed)
        r = check_vjp(entry.forward, wrong, args, key=jax.random.key(seed + 1))
    assert not r.passed
    assert not r.arguments[which].passed
    assert all(r.arguments[i].passed for i in range(3) if i != which)


@settings(max_examples=4)
@given(name=st.sampled_from(["squared_error", "mse[sum]", "mse[half_sum]", "cross_entropy"]),
       n=st.integers(1, 6), c=st.integers(2, 5), scale=st.sampled_from([0.1, 1.0, 20.0]),
       seed=SEEDS)
def test_losses_pass_on_drawn_shapes(name, n, c, scale, seed):
    entry = gradients.get(name)
    with jax.enable_x64(True):
        pred, target = _normals(seed, (n, c), (n, c))
        pred = scale * pred
        if name == "cross_entropy":
            target = jnp.asarray(np.eye(c)[np.random.default_rng(seed + 2).integers(0, c, n)])
        r = check_vjp(entry.forward, entry.backward, (pred, target),
                      key=jax.random.key(seed + 1))
    assert r.passed, r.report()
