"""Losses with hand-written backward passes, over weighted examples.

Every loss takes per-example ``weights`` (n,): 1 for a real example, 0 for the
padding that fills the last short minibatch of an epoch (see
:mod:`jaxnn.training`). With all weights 1 they are the textbook losses.

Reductions of the squared error (why there are three):

* ``"mean"`` -- sum_i w_i ||p_i - y_i||^2 / (k * sum_i w_i): the mean squared
  error the seed *reports*, and jaxnn's default.
* ``"sum"`` -- sum_i w_i ||p_i - y_i||^2: the loss whose gradient the seed's
  linear regression *uses* (``dLdP = -2 * (y - P)``, no 1/n).
* ``"half_sum"`` -- 0.5 * sum: the loss whose gradient the seed's neural network
  uses (``dLdP = -(y - P)``).

Pick ``"sum"`` / ``"half_sum"`` to reproduce the seed's exact updates; the
hand-written gradient always equals ``jax.grad`` of the loss it claims.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from jaxnn.backward import with_backward
from jaxnn.errors import InputError
from jaxnn.gradients import Entry, register
from jaxnn.names import REDUCTIONS


def _check(pred: Array, target: Array, weights: Array, what: str) -> None:
    if pred.ndim != 2 or pred.shape != target.shape or weights.shape != pred.shape[:1]:
        raise InputError(
            f"{what}: expected pred (n, k), target (n, k), weights (n,), got shapes "
            f"{pred.shape}, {target.shape}, {weights.shape}"
        )


def _reduction_scale(reduction: str, weights: Array, k: int) -> Array:
    """The factor c in L = c * sum_i w_i e_i."""
    if reduction == "mean":
        return 1.0 / (k * jnp.maximum(jnp.sum(weights), 1e-30))
    if reduction == "sum":
        return jnp.ones((), weights.dtype)
    if reduction == "half_sum":
        return jnp.full((), 0.5, weights.dtype)
    raise InputError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


# --- Squared error -------------------------------------------------------------------------


def mse(pred: Array, target: Array, weights: Array, reduction: str = "mean") -> Array:
    """Weighted squared error. pred, target: (n, k); weights: (n,). Returns a scalar."""
    _check(pred, target, weights, "mse")
    se = jnp.sum(jnp.square(pred - target), axis=1)  # (n,) per-example squared error
    return _reduction_scale(reduction, weights, pred.shape[1]) * jnp.sum(weights * se)


def mse_vjp(
    pred: Array, target: Array, weights: Array, cotangent: Array, reduction: str = "mean"
) -> tuple[Array, Array, Array]:
    """Backward of :func:`mse`: (dpred, dtarget, dweights).

    dL/dp_i = 2 c w_i (p_i - y_i); dL/dy_i = -dL/dp_i; and for ``"mean"``, where
    c = 1 / (k sum w) depends on the weights too, dL/dw_i = c (e_i - k L).
    """
    _check(pred, target, weights, "mse_vjp")
    k = pred.shape[1]
    c = _reduction_scale(reduction, weights, k)
    diff = pred - target  # (n, k)
    se = jnp.sum(jnp.square(diff), axis=1)  # (n,)
    dpred = cotangent * 2 * c * weights[:, None] * diff
    if reduction == "mean":
        loss = c * jnp.sum(weights * se)
        dweights = cotangent * c * (se - k * loss)
    else:
        dweights = cotangent * c * se
    return dpred, -dpred, dweights


# --- Softmax cross-entropy -----------------------------------------------------------------


def log_softmax(logits: Array, axis: int = -1) -> Array:
    """log softmax over ``axis`` (the last by default), stable: z - logsumexp(z)."""
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def softmax(logits: Array) -> Array:
    """softmax over the last axis, stable."""
    return jnp.exp(log_softmax(logits))


def softmax_cross_entropy(
    logits: Array, target: Array, weights: Array, reduction: str = "mean"
) -> Array:
    """Weighted softmax cross-entropy against target distributions (one-hot for labels).

    logits, target: (n, C); weights: (n,). ``"mean"`` averages over the weighted
    examples (not over classes), ``"sum"`` sums, ``"half_sum"`` halves the sum.
    """
    _check(logits, target, weights, "softmax_cross_entropy")
    nll = -jnp.sum(target * log_softmax(logits), axis=1)  # (n,)
    scale = _reduction_scale(reduction, weights, 1)
    return scale * jnp.sum(weights * nll)


def softmax_cross_entropy_vjp(
    logits: Array, target: Array, weights: Array, cotangent: Array, reduction: str = "mean"
) -> tuple[Array, Array, Array]:
    """Backward of :func:`softmax_cross_entropy`: (dlogits, dtarget, dweights).

    dL/dz_i = c w_i (softmax(z_i) * sum(t_i) - t_i)  (= softmax - onehot for labels);
    dL/dt_i = -c w_i log_softmax(z_i).
    """
    _check(logits, target, weights, "softmax_cross_entropy_vjp")
    c = _reduction_scale(reduction, weights, 1)
    logp = log_softmax(logits)  # (n, C)
    nll = -jnp.sum(target * logp, axis=1)  # (n,)
    cw = (cotangent * c * weights)[:, None]  # (n, 1)
    dlogits = cw * (jnp.exp(logp) * jnp.sum(target, axis=1, keepdims=True) - target)
    dtarget = -cw * logp
    if reduction == "mean":
        loss = c * jnp.sum(weights * nll)
        dweights = cotangent * c * (nll - loss)
    else:
        dweights = cotangent * c * nll
    return dlogits, dtarget, dweights


LOSSES = {"mse": (mse, mse_vjp), "cross_entropy": (softmax_cross_entropy, softmax_cross_entropy_vjp)}
"""name -> (loss, loss_vjp)."""


# --- Per-example losses: what the training engine (jaxnn.fit) averages -----------------------
# The outputs are axis 1: M models stacked on a trailing axis (jaxnn.fit_many) give (n, k, M) -> (n, M).


def squared_error(pred: Array, target: Array) -> Array:
    """Per-example mean squared error over the k outputs: (n, k), (n, k) -> (n,).

    Its mean over the rows is :func:`mse` with ``reduction="mean"``. Stacked models: (n, k, M) -> (n, M).
    """
    return jnp.mean(jnp.square(pred - target), axis=1)


def squared_error_vjp(pred: Array, target: Array, cotangent: Array) -> tuple[Array, Array]:
    """Backward of :func:`squared_error`: dpred = c_i 2 (p_i - y_i) / k, dtarget = -dpred. cotangent: (n,)."""
    dpred = cotangent[:, None] * (2.0 / pred.shape[1]) * (pred - target)
    return dpred, -dpred


def cross_entropy(logits: Array, target: Array) -> Array:
    """Per-example softmax cross-entropy against target distributions: (n, C), (n, C) -> (n,).

    Stacked models: (n, C, M) -> (n, M).
    """
    return -jnp.sum(target * log_softmax(logits, axis=1), axis=1)


def cross_entropy_vjp(logits: Array, target: Array, cotangent: Array) -> tuple[Array, Array]:
    """Backward of :func:`cross_entropy`.

    dz_i = c_i (softmax(z_i) sum(t_i) - t_i), dt_i = -c_i log_softmax(z_i); cotangent: (n,).
    """
    logp = log_softmax(logits, axis=1)
    c = cotangent[:, None]
    return c * (jnp.exp(logp) * jnp.sum(target, axis=1, keepdims=True) - target), -c * logp


squared_error_layer = with_backward(squared_error, squared_error_vjp)
cross_entropy_layer = with_backward(cross_entropy, cross_entropy_vjp)
PER_EXAMPLE = {"mse": squared_error_layer, "cross_entropy": cross_entropy_layer}
"""name -> per-example loss (a :func:`~jaxnn.with_backward` function: hand-written backward)."""


# --- Registry -------------------------------------------------------------------------------


def _regression_example(key: Array, dtype: Any) -> tuple[Array, Array, Array]:
    kp, ky, kw = jax.random.split(key, 3)
    return (
        jax.random.normal(kp, (6, 2), dtype),
        jax.random.normal(ky, (6, 2), dtype),
        jax.random.uniform(kw, (6,), dtype, 0.5, 1.5),
    )


def _classification_example(key: Array, dtype: Any) -> tuple[Array, Array, Array]:
    kz, kl, kw = jax.random.split(key, 3)
    logits = 3 * jax.random.normal(kz, (6, 4), dtype)
    target = jax.nn.one_hot(jax.random.randint(kl, (6,), 0, 4), 4, dtype=dtype)
    return logits, target, jax.random.uniform(kw, (6,), dtype, 0.5, 1.5)


def _stacked(example: tuple[Array, Array]) -> tuple[Array, Array]:
    """Three models' outputs (n, k, 3) -- the first, scaled -- against the targets broadcast to them."""
    out, target = example
    stacked = jnp.stack([out, 0.5 * out, -out], axis=-1)
    return stacked, jnp.broadcast_to(target[..., None], stacked.shape)


for _r in REDUCTIONS:
    register(
        Entry(
            name=f"mse[{_r}]",
            forward=lambda p, y, w, r=_r: mse(p, y, w, r),
            backward=lambda p, y, w, c, r=_r: mse_vjp(p, y, w, c, r),
            example=_regression_example,
        )
    )
register(
    Entry(
        name="softmax_cross_entropy",
        forward=softmax_cross_entropy,
        backward=softmax_cross_entropy_vjp,
        example=_classification_example,
    )
)

register(Entry(name="squared_error", forward=squared_error, backward=squared_error_vjp,
               example=lambda key, dtype: _regression_example(key, dtype)[:2]))
register(Entry(name="squared_error[3 stacked models]", forward=squared_error, backward=squared_error_vjp,
               example=lambda key, dtype: _stacked(_regression_example(key, dtype)[:2])))
register(Entry(name="cross_entropy", forward=cross_entropy, backward=cross_entropy_vjp,
               example=lambda key, dtype: _classification_example(key, dtype)[:2]))
register(Entry(name="cross_entropy[3 stacked models]", forward=cross_entropy, backward=cross_entropy_vjp,
               example=lambda key, dtype: _stacked(_classification_example(key, dtype)[:2])))
