"""Layers with their hand-written backward passes right beside the forward.

A dense layer is the seed's ``N = X @ W`` followed by ``P = N + B``; the
activations live in :mod:`jaxnn.foundations` (each with its ``.deriv``) and are
registered there. Shapes: ``x`` is (n, d_in), ``W`` is (d_in, d_out), ``b`` is
(d_out,), the output is (n, d_out).
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
    if not (x.ndim == 2 and W.ndim == 2 and b.ndim == 1):
        raise InputError(f"dense: expected x (n, d_in), W (d_in, d_out), b (d_out,), got shapes "
                         f"{x.shape}, {W.shape}, {b.shape}")
    if x.shape[1] != W.shape[0] or W.shape[1:] != b.shape:
        raise InputError(f"dense: shapes do not chain: x {x.shape} @ W {W.shape} + b {b.shape}")


def dense(x: Array, W: Array, b: Array) -> Array:
    """y = x @ W + b. x: (n, d_in), W: (d_in, d_out), b: (d_out,) -> (n, d_out).

    Many models at once are ``jax.vmap`` of this (:func:`jaxnn.fit_many`).
    """
    _check_dense(x, W, b)
    return x @ W + b[None, :]


def dense_vjp(x: Array, W: Array, b: Array, cotangent: Array) -> tuple[Array, Array, Array]:
    """Backward of :func:`dense`: (dx, dW, db) = (c @ W^T, x^T @ c, sum_rows(c)).

    ``db`` sums over the rows because b is added to every row (the seed's ``sum(axis=0)``).
    cotangent: (n, d_out).
    """
    _check_dense(x, W, b)
    return cotangent @ W.T, x.T @ cotangent, jnp.sum(cotangent, axis=0)


dense_layer = with_backward(dense, dense_vjp)
""":func:`dense` whose gradient, under ``jax.grad``, is the hand-written :func:`dense_vjp`."""


def _dense_example(key: Array, dtype: Any) -> tuple[Array, Array, Array]:
    kx, kw, kb = jax.random.split(key, 3)
    return (
        jax.random.normal(kx, (5, 4), dtype),
        jax.random.normal(kw, (4, 3), dtype),
        jax.random.normal(kb, (3,), dtype),
    )


register(Entry(name="dense", forward=dense, backward=dense_vjp, example=_dense_example))
