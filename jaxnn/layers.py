"""Layers with their hand-written backward passes right beside the forward.

A dense layer is the seed's ``N = X @ W`` followed by ``P = N + B``; the
activations live in :mod:`jaxnn.foundations` (each with its ``.deriv``) and are
registered there. Shapes: ``x`` is (n, d_in), ``W`` is (d_in, d_out), ``b`` is
(d_out,), the output is (n, d_out); M stacked models carry a trailing model axis (:func:`dense`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from jaxnn.backward import with_backward
from jaxnn.errors import InputError
from jaxnn.gradients import Entry, register


def _check_dense(x: Array, W: Array, b: Array) -> None:
    stacked = W.ndim == 3  # M models stacked on a trailing axis
    if not (W.ndim in (2, 3) and b.ndim == W.ndim - 1 and x.ndim in ((2, 3) if stacked else (2,))):
        raise InputError(
            f"dense: expected x (n, d_in), W (d_in, d_out), b (d_out,) -- or M stacked models: "
            f"x (n, d_in[, M]), W (d_in, d_out, M), b (d_out, M) -- got shapes "
            f"{x.shape}, {W.shape}, {b.shape}"
        )
    if x.shape[1] != W.shape[0] or W.shape[1:] != b.shape or (x.ndim == 3 and x.shape[2] != W.shape[2]):
        raise InputError(
            f"dense: shapes do not chain: x {x.shape} @ W {W.shape} + b {b.shape}"
        )


def dense(x: Array, W: Array, b: Array) -> Array:
    """y = x @ W + b. x: (n, d_in), W: (d_in, d_out), b: (d_out,) -> (n, d_out).

    **Stacked models** (:func:`jaxnn.fit_many`): with a trailing model axis on the parameters,
    W (d_in, d_out, M) and b (d_out, M), it is M layers at once, ``y[..., m] = x[..., m] @ W[..., m]
    + b[:, m]`` -> (n, d_out, M); ``x`` is (n, d_in, M), or (n, d_in) shared by all M (one
    ``(n, d_in) @ (d_in, d_out * M)`` product). Trailing, because a per-model scalar of shape (M,)
    then broadcasts against every leaf as NumPy broadcasts, with no transposes.
    """
    _check_dense(x, W, b)
    if W.ndim == 2:
        return x @ W + b[None, :]
    if x.ndim == 2:  # shared inputs
        n, (d_in, d_out, m) = x.shape[0], W.shape
        return (x @ W.reshape(d_in, d_out * m)).reshape(n, d_out, m) + b[None]
    return _stacked_product(x, W) + b[None]


def dense_vjp(x: Array, W: Array, b: Array, cotangent: Array) -> tuple[Array, Array, Array]:
    """Backward of :func:`dense`: (dx, dW, db) = (c @ W^T, x^T @ c, sum_rows(c)).

    ``db`` sums over the rows because b is added to every row (the seed's
    ``sum(axis=0)``). cotangent: (n, d_out), or (n, d_out, M) for stacked models (each model's
    own products; the gradient of inputs shared by all models sums over them).
    """
    _check_dense(x, W, b)
    if W.ndim == 2:
        return cotangent @ W.T, x.T @ cotangent, jnp.sum(cotangent, axis=0)
    db = _row_sum(cotangent)
    if x.ndim == 2:  # shared inputs: one product each, over all models' columns
        n, (d_in, d_out, m) = x.shape[0], W.shape
        c = cotangent.reshape(n, d_out * m)
        return c @ W.reshape(d_in, d_out * m).T, (x.T @ c).reshape(d_in, d_out, m), db
    dx = jnp.sum(cotangent[:, None] * W[None], axis=2)  # (n, d_in, d_out, M) summed over d_out
    return dx, _row_sum(x[:, :, None] * cotangent[:, None]), db


def _row_sum(a: Array) -> Array:
    """(n, ...) -> (...): the sum over the rows, as a product with a row of ones (stacked models only).

    The product reads ``a`` once it is computed; a sum fused with what computes ``a`` made the
    256-model sweep's step 1.3x slower (docs/development.md, "Row sums as products").
    """
    n = a.shape[0]
    return (jnp.ones((1, n), a.dtype) @ a.reshape(n, -1)).reshape(a.shape[1:])


def _stacked_product(x: Array, W: Array) -> Array:
    """(n, d_in, M), (d_in, d_out, M) -> (n, d_out, M): each model's ``x @ W``, as a multiply and a sum.

    Not ``einsum``: a batched product is written with its batch axis first, so the model axis of
    every activation and cotangent would be moved to the front and back at every step (2x the
    256-model sweep's step, docs/development.md).
    """
    return jnp.sum(x[:, :, None] * W[None], axis=1)


dense_layer = with_backward(dense, dense_vjp)
""":func:`dense` whose gradient, under ``jax.grad``, is the hand-written :func:`dense_vjp`."""


def _dense_example(key: Array, dtype: Any) -> tuple[Array, Array, Array]:
    kx, kw, kb = jax.random.split(key, 3)
    return (
        jax.random.normal(kx, (5, 4), dtype),
        jax.random.normal(kw, (4, 3), dtype),
        jax.random.normal(kb, (3,), dtype),
    )


def _stacked_example(shared: bool) -> Any:
    def example(key: Array, dtype: Any) -> tuple[Array, Array, Array]:
        kx, kw, kb = jax.random.split(key, 3)
        return (
            jax.random.normal(kx, (5, 4) if shared else (5, 4, 2), dtype),
            jax.random.normal(kw, (4, 3, 2), dtype),
            jax.random.normal(kb, (3, 2), dtype),
        )

    return example


register(Entry(name="dense", forward=dense, backward=dense_vjp, example=_dense_example))
register(Entry(name="dense[2 stacked models, shared x]", forward=dense, backward=dense_vjp,
               example=_stacked_example(shared=True)))
register(Entry(name="dense[2 stacked models]", forward=dense, backward=dense_vjp,
               example=_stacked_example(shared=False)))
