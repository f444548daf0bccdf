"""A mutation suite: every classic backprop bug, written out, must be caught by check_vjp in
float64 (with the hint its shape calls for); the correct backwards must pass on many draws."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import pytest

from jaxnn import foundations as F
from jaxnn.checking import check_vjp

N, D, K = 5, 4, 3  # batch, inputs, outputs


def _normal(key: Any, shape: tuple[int, ...], scale: float = 1.0) -> jax.Array:
    return scale * jax.random.normal(key, shape, jnp.float64)


# --- the functions and their correct backwards -------------------------------------------------


def sigmoid_bwd(x, c):
    return (c * F.sigmoid_deriv(x),)


def tanh_bwd(x, c):
    return (c * (1 - jnp.tanh(x) ** 2),)


def relu_bwd(x, c):
    return (jnp.where(x > 0, c, 0.0),)


def matmul(X, W):
    return X @ W


def matmul_bwd(X, W, c):
    return c @ W.T, X.T @ c


def dense(x, W, b):
    return x @ W + b[None, :]


def dense_bwd(x, W, b, c):
    return c @ W.T, x.T @ c, jnp.sum(c, axis=0)


def mse(p, y):
    return jnp.mean((p - y) ** 2)


def mse_bwd(p, y, c):
    d = c * 2 * (p - y) / p.size
    return d, -d


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy against integer labels."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def cross_entropy_bwd(logits, labels, c):
    onehot = jax.nn.one_hot(labels, logits.shape[1], dtype=logits.dtype)
    return c * (jax.nn.softmax(logits) - onehot) / logits.shape[0], None


def _vec(key):
    return (_normal(key, (N, D), 3.0),)


def _square(key):
    k1, k2 = jax.random.split(key)
    return _normal(k1, (D, D)), _normal(k2, (D, D))


def _dense(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return _normal(k1, (N, D)), _normal(k2, (D, K)), _normal(k3, (K,))


def _regression(key):
    k1, k2 = jax.random.split(key)
    return _normal(k1, (N, K)), _normal(k2, (N, K))


def _classification(key):
    k1, k2 = jax.random.split(key)
    return _normal(k1, (N, K), 3.0), jax.random.randint(k2, (N,), 0, K)


Case = tuple[Callable[..., Any], Callable[..., Any], Callable[[Any], tuple[Any, ...]]]
CORRECT: dict[str, Case] = {
    "sigmoid": (F.sigmoid, sigmoid_bwd, _vec),
    "tanh": (jnp.tanh, tanh_bwd, _vec),
    "relu": (F.relu, relu_bwd, _vec),
    "matmul_square": (matmul, matmul_bwd, _square),
    "dense": (dense, dense_bwd, _dense),
    "mse_mean": (mse, mse_bwd, _regression),
    "cross_entropy": (cross_entropy, cross_entropy_bwd, _classification),
}


# --- the mutants: (function, wrong backward, example, a hint the report must contain) -----------

def _one_element_off(x, c):
    (g,) = sigmoid_bwd(x, c)
    return (g.at[2, 1].multiply(1 + 1e-6),)


MUTANTS: dict[str, tuple[Callable, Callable, Callable, str | None]] = {
    "factor 2": (F.sigmoid, lambda x, c: (2 * sigmoid_bwd(x, c)[0],), _vec, "constant factor 2"),
    "factor 1/2": (F.sigmoid, lambda x, c: (sigmoid_bwd(x, c)[0] / 2,), _vec,
                   "constant factor 1/2"),
    "flipped sign": (jnp.tanh, lambda x, c: (-tanh_bwd(x, c)[0],), _vec, "flipped sign"),
    "tanh' = 1 - x**2": (jnp.tanh, lambda x, c: (c * (1 - x**2),), _vec, None),
    "sigmoid' = s(x)": (F.sigmoid, lambda x, c: (c * F.sigmoid(x),), _vec, None),
    "relu masks output >= 0": (F.relu, lambda x, c: (jnp.where(F.relu(x) >= 0, c, 0.0),), _vec,
                               "mask on the wrong quantity"),
    "relu masks x < 0": (F.relu, lambda x, c: (jnp.where(x < 0, c, 0.0),), _vec, None),
    "square dW transposed": (matmul, lambda X, W, c: (c @ W.T, (X.T @ c).T), _square,
                             "transposed"),
    "square dX without .T": (matmul, lambda X, W, c: (c @ W, X.T @ c), _square, None),
    "bias not summed": (dense, lambda x, W, b, c: (c @ W.T, x.T @ c, c), _dense,
                        "missing sum over the batch axis"),
    "bias averaged": (dense, lambda x, W, b, c: (c @ W.T, x.T @ c, jnp.mean(c, axis=0)), _dense,
                      "a factor 1/5"),
    "mse missing 1/n": (mse, lambda p, y, c: (c * 2 * (p - y), -c * 2 * (p - y)), _regression,
                        "a factor 15"),
    "cross-entropy missing softmax": (
        cross_entropy,
        lambda z, y, c: (c * (z - jax.nn.one_hot(y, K, dtype=z.dtype)) / z.shape[0], None),
        _classification, None),
    "one element off by 1e-6": (F.sigmoid, _one_element_off, _vec, "only 1 of 20 elements"),
    "ignores the cotangent": (F.sigmoid, lambda x, c: (F.sigmoid_deriv(x),), _vec,
                              "ignores its cotangent"),
    "right only for ones": (F.sigmoid, lambda x, c: (jnp.mean(c) * F.sigmoid_deriv(x),), _vec,
                            "cotangent of ones"),
    "float32 gradient": (F.sigmoid, lambda x, c: (sigmoid_bwd(x, c)[0].astype(jnp.float32),),
                         _vec, None),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_classic_bug_is_caught(name, x64):
    forward, wrong, example, hint = MUTANTS[name]
    caught = []
    for seed in range(3):
        r = check_vjp(forward, wrong, example(jax.random.key(seed)), key=jax.random.key(seed + 50))
        caught.append(not r.passed)
        if hint is not None:
            assert hint in r.report(), r.report()
    assert all(caught)


@pytest.mark.parametrize("name", list(CORRECT))
def test_correct_backwards_pass_on_many_draws(name, x64):
    forward, backward, example = CORRECT[name]
    for seed in range(12):
        r = check_vjp(forward, backward, example(jax.random.key(seed)),
                      key=jax.random.key(seed + 1000))
        assert r.passed, r.report()


def test_every_mutant_has_a_correct_twin():
    """Each mutant breaks a function whose correct backward is proven above."""
    correct_forwards = {id(f) for f, _, _ in CORRECT.values()}
    assert all(id(f) in correct_forwards for f, _, _, _ in MUTANTS.values())
