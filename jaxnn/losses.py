"""Per-example losses with their hand-written backward passes right beside them.

A loss maps a minibatch's predictions and targets to one value per example, (n, k), (n, k) ->
(n,); the trainer (:func:`jaxnn.fit`) takes their mean over the minibatch's real rows (the
padding that fills an epoch's short last minibatch weighs 0), as optax's losses and JAX's
examples do. The seed's updates, which use the gradient of the *sum* of squared errors (its
linear regression, ``dLdP = -2 * (y - P)``) or of half that sum (its network, ``dLdP = -(y - P)``),
are the same losses summed and scaled: :class:`jaxnn.training.TrainConfig`'s ``reduction``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from jaxnn.backward import with_backward
from jaxnn.gradients import Entry, register

# --- Squared error -------------------------------------------------------------------------


def squared_error(pred: Array, target: Array) -> Array:
    """Per-example mean squared error over the k outputs: (n, k), (n, k) -> (n,).

    Its mean over the rows is the mean squared error the seed prints. Stacked models:
    (n, k, M) -> (n, M).
    """
    return jnp.mean(jnp.square(pred - target), axis=1)


def squared_error_vjp(pred: Array, target: Array, cotangent: Array) -> tuple[Array, Array]:
    """Backward of :func:`squared_error`: dpred = c_i 2 (p_i - y_i) / k, dtarget = -dpred. cotangent: (n,)."""
    dpred = cotangent[:, None] * (2.0 / pred.shape[1]) * (pred - target)
    return dpred, -dpred


squared_error_layer = with_backward(squared_error, squared_error_vjp)
""":func:`squared_error` whose gradient, under ``jax.grad``, is the hand-written :func:`squared_error_vjp`."""


# --- Softmax cross-entropy -----------------------------------------------------------------


def cross_entropy(logits: Array, target: Array) -> Array:
    """Per-example softmax cross-entropy against target distributions (one-hot for labels):
    (n, C), (n, C) -> (n,). Stacked models: (n, C, M) -> (n, M).
    """
    return -jnp.sum(target * jax.nn.log_softmax(logits, axis=1), axis=1)


def cross_entropy_vjp(logits: Array, target: Array, cotangent: Array) -> tuple[Array, Array]:
    """Backward of :func:`cross_entropy`.

    dz_i = c_i (softmax(z_i) sum(t_i) - t_i) (= softmax - onehot for labels),
    dt_i = -c_i log_softmax(z_i); cotangent: (n,).
    """
    logp = jax.nn.log_softmax(logits, axis=1)
    c = cotangent[:, None]
    return c * (jnp.exp(logp) * jnp.sum(target, axis=1, keepdims=True) - target), -c * logp


cross_entropy_layer = with_backward(cross_entropy, cross_entropy_vjp)
""":func:`cross_entropy` whose gradient, under ``jax.grad``, is the hand-written :func:`cross_entropy_vjp`."""


# --- Registry -------------------------------------------------------------------------------


def _regression_example(key: Array, dtype: Any) -> tuple[Array, Array]:
    kp, ky = jax.random.split(key)
    return jax.random.normal(kp, (6, 2), dtype), jax.random.normal(ky, (6, 2), dtype)


def _classification_example(key: Array, dtype: Any) -> tuple[Array, Array]:
    kz, kl = jax.random.split(key)
    logits = 3 * jax.random.normal(kz, (6, 4), dtype)
    return logits, jax.nn.one_hot(jax.random.randint(kl, (6,), 0, 4), 4, dtype=dtype)


register(Entry(name="squared_error", forward=squared_error, backward=squared_error_vjp,
               example=_regression_example))
register(Entry(name="cross_entropy", forward=cross_entropy, backward=cross_entropy_vjp,
               example=_classification_example))


# The seed's reductions (TrainConfig.reduction): its linear regression's gradient is that of the
# squared errors summed over rows and outputs, its network's of half that sum -- the per-example
# loss summed and scaled, whose backward is squared_error_vjp's with a constant cotangent.
for _name, _half in (("mse[sum]", 1.0), ("mse[half_sum]", 0.5)):
    register(Entry(
        name=_name,
        forward=lambda p, y, h=_half: h * p.shape[1] * jnp.sum(squared_error(p, y)),
        backward=lambda p, y, c, h=_half: squared_error_vjp(p, y, jnp.full(p.shape[:1], h * p.shape[1]) * c),
        example=_regression_example,
    ))
