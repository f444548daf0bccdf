"""scikit-learn's MLP as jaxnn trains it: hidden activations, output heads and their losses.

A network is jaxnn's :func:`jaxnn.models.network` (dense layers, a hidden activation between
them, a linear output ``z``); a *head* turns ``z`` (n, k) into scikit-learn's output activation
and loss. Each head's loss is written next to its hand-written backward, which is
scikit-learn's ``delta = out - y`` for every head (each pairs its output activation with its
canonical loss):

=========  ===================  =======================================================
head       ``out_activation_``  per-row loss (scikit-learn's, before the row average)
=========  ===================  =======================================================
identity   identity             ``0.5 * mean_k (z - y)^2`` (``squared_error``)
exp        exp                  ``sum_k xlogy(y, y) - y z - y + exp(z)`` (``poisson``)
logistic   logistic             ``sum_k softplus(z) - y z`` (binary / multilabel log-loss)
softmax    softmax              ``logsumexp(z) - sum_k y z`` (multiclass log-loss)
=========  ===================  =======================================================

The squared loss averages over the outputs but its backward is ``z - y`` for every output, the
gradient of the *sum*: scikit-learn reports the mean and steps along the sum's gradient, and so
does jaxnn. scikit-learn clips probabilities to ``[eps, 1 - eps]`` in the reported log-loss; the
forms above are the exact log-loss, equal to scikit-learn's unless a probability saturates.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import xlogy
from scipy.special import expit, softmax

from jaxnn import foundations, layers, models, names
from jaxnn.backward import forward_of, with_backward
from jaxnn.layers import dense_layer

ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "sigmoid", "leaky_relu")
"""``activation`` values: scikit-learn's four, jaxnn's "sigmoid" (= "logistic") and "leaky_relu"."""

_LEAKY_SLOPE = 0.2  # jaxnn.foundations.leaky_relu's default slope


def hidden_activation(name: str, gradients: str) -> Any:
    """The hidden activation ``name`` for the training loss: hand-written backward or plain forward."""
    func = foundations.identity if name == "identity" else names.activation(name)
    return models.hand_written(func) if gradients == "manual" else func


# --- Heads: per-row loss of the linear output z (n, k) against targets Y (n, k) ---------------


def squared_error(z: Array, Y: Array) -> Array:
    """(n,) ``0.5 * mean_k (z - y)^2``."""
    return 0.5 * jnp.mean(jnp.square(z - Y), axis=1)


def squared_error_backward(z: Array, Y: Array, cotangent: Array) -> tuple[Array, None]:
    return cotangent[:, None] * (z - Y), None  # the summed loss's gradient, as scikit-learn


def poisson(z: Array, Y: Array) -> Array:
    """(n,) Poisson deviance half-terms with ``out = exp(z)``: ``sum_k xlogy(y, y / out) - y + out``."""
    return jnp.sum(xlogy(Y, Y) - Y * z - Y + jnp.exp(z), axis=1)


def poisson_backward(z: Array, Y: Array, cotangent: Array) -> tuple[Array, None]:
    return cotangent[:, None] * (jnp.exp(z) - Y), None


def binary_log_loss(z: Array, Y: Array) -> Array:
    """(n,) ``sum_k -y log p - (1 - y) log(1 - p)`` with ``p = sigmoid(z)``, computed stably."""
    return jnp.sum(jnp.logaddexp(z, 0.0) - Y * z, axis=1)


def binary_log_loss_backward(z: Array, Y: Array, cotangent: Array) -> tuple[Array, None]:
    return cotangent[:, None] * (jax.nn.sigmoid(z) - Y), None


def log_loss(z: Array, Y: Array) -> Array:
    """(n,) ``-sum_k y log softmax(z)``, computed stably (``Y`` one-hot rows)."""
    return jax.nn.logsumexp(z, axis=1) - jnp.sum(Y * z, axis=1)


def log_loss_backward(z: Array, Y: Array, cotangent: Array) -> tuple[Array, None]:
    return cotangent[:, None] * (jax.nn.softmax(z, axis=1) - Y), None


HEADS = {
    "identity": (squared_error, squared_error_backward),
    "exp": (poisson, poisson_backward),
    "logistic": (binary_log_loss, binary_log_loss_backward),
    "softmax": (log_loss, log_loss_backward),
}
"""``out_activation_`` -> (per-row loss of z, its hand-written backward)."""


def _head(out_activation: str, gradients: str) -> Any:
    loss, backward = HEADS[out_activation]
    if gradients == "manual":
        return with_backward(loss, backward)
    if out_activation == "identity":  # autodiff of the sum's gradient, the mean's value
        def summed_gradient(z: Array, Y: Array) -> Array:
            total = 0.5 * jnp.sum(jnp.square(z - Y), axis=1)
            return total + jax.lax.stop_gradient(loss(z, Y) - total)
        return summed_gradient
    return loss


@functools.lru_cache(maxsize=64)
def loss_fn(activation: str, out_activation: str, gradients: str) -> Any:
    """``loss_fn(params, X, Y, l2, w) -> (B,)``: per-row data loss plus scikit-learn's L2 term.

    The engine takes the ``w``-weighted mean over the minibatch (``w``: the rows' sample weights,
    0 for padding rows; the engine's ``pass_weights``), so adding ``l2 * 0.5 ||W||^2 / sum(w)`` to
    every row adds it once: scikit-learn divides the L2 term by the minibatch's weight sum (its
    row count without weights). ``l2`` is a runtime input: a new ``alpha`` compiles nothing.
    Cached, so the engine reuses its compiled programs.
    """
    act = hidden_activation(activation, gradients)
    layer = dense_layer if gradients == "manual" else forward_of(dense_layer)
    head = _head(out_activation, gradients)

    def fn(params: Any, X: Array, Y: Array, l2: Array, w: Array) -> Array:
        s = jnp.sum(w)
        z = models.network(params, X, act, layer=layer)
        return head(z, Y) + l2 * models.l2_penalty(params) / jnp.where(s > 0, s, 1)

    return fn


@functools.lru_cache(maxsize=64)
def total_loss(activation: str, out_activation: str, gradients: str) -> Any:
    """``total(params, X, Y, w, l2) -> ()``: scikit-learn's full-batch objective (lbfgs minimises it)."""
    fn = loss_fn(activation, out_activation, gradients)

    def total(params: Any, X: Array, Y: Array, w: Array, l2: Array) -> Array:
        return jnp.sum(w * fn(params, X, Y, l2, w)) / jnp.sum(w)

    return total


def output(out_activation: str, z: Array) -> Array:
    """The head's output activation on device (for the validation score)."""
    if out_activation == "identity":
        return z
    if out_activation == "exp":
        return jnp.exp(z)
    if out_activation == "logistic":
        return jax.nn.sigmoid(z)
    return jax.nn.softmax(z, axis=1)


# --- The host forward: NumPy, float64, compiling nothing (predict) ---------------------------

HOST_ACTIVATIONS = {"identity": lambda z: z, "relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh,
                    "sigmoid": expit, "logistic": expit,
                    "leaky_relu": lambda z: np.where(z >= 0, z, _LEAKY_SLOPE * z)}
"""Hidden activations in NumPy; tests/test_estimators.py proves each equal to its JAX twin."""

HOST_OUTPUTS = {"identity": lambda z: z, "exp": np.exp, "logistic": expit,
                "softmax": lambda z: softmax(z, axis=1)}


def host_forward(coefs: list[np.ndarray], intercepts: list[np.ndarray], X: np.ndarray,
                 activation: str) -> np.ndarray:
    """The linear output z (n, k) in float64: :func:`jaxnn.models.network` on NumPy arrays."""
    params = [{"W": np.asarray(W, np.float64), "b": np.asarray(b, np.float64)}
              for W, b in zip(coefs, intercepts, strict=True)]
    return models.network(params, np.asarray(X, dtype=np.float64),  # type: ignore[arg-type, return-value]
                          HOST_ACTIVATIONS[activation], layer=layers.dense)
