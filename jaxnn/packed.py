"""M one-hidden-layer networks side by side, sharing every minibatch: the fast layout of a sweep.

When all models of a sweep see the same minibatch (``fit_many(..., shared_order=True)``), the
first layers of M networks ``x (B, d) @ W1_m (d, h)`` are one matmul ``x @ [W1_1 ... W1_M]``.
This module keeps the parameters in that layout -- the **model axis last**:

    params = [{"W": (d, h, M), "b": (h, M)},   # hidden layer
              {"W": (h, k, M), "b": (k, M)}]   # output layer

so that, for all M models at once,

* the forward is one ``(B, d) @ (d, h*M)`` matmul, the activation, and a per-model
  ``h -> k`` multiply-and-sum for the (narrow) output layer;
* the hand-written backward is the same steps reversed; its two matmul-shaped products
  (``dW1`` and ``db1``) are again one matmul, ``[x, 1]^T (d+1, B) @ dZ (B, h*M)``;
* everything per model (learning rate, L2, the divergence test) broadcasts along the last axis.

:func:`forward`/:func:`backward` are the packed twins of :func:`jaxnn.models.forward`/
:func:`~jaxnn.models.backward`; the gradient registry checks the backward against ``jax.vjp``
and finite differences, and the sweep tests check that a packed sweep trains, model for model,
what separate :func:`jaxnn.fit` calls train (float64, rtol 1e-10).

Measured on a 2-core CPU for 256 seed networks (13-13-1, batch 23): ~250 µs per step packed,
against ~500 µs for ``jax.vmap`` of the one-model step (see the README's performance section).
"""

from __future__ import annotations

import functools
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from jaxnn import foundations, losses
from jaxnn.gradients import Entry, register

Packed = list[dict[str, Array]]


def pack(stacked: Any) -> Packed:
    """Stacked parameters (model axis first: ``W`` (M, d_in, d_out)) -> packed (model axis last)."""
    return jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, -1), stacked)


def unpack(params: Packed) -> Any:
    """Packed parameters -> stacked (model axis first), the layout of ``SweepResult.params``."""
    return jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, -1, 0), params)


def per_model(v: Array, x: Array) -> Array:
    """v (M,) broadcast against x (..., M): ``v[m] * x[..., m]``."""
    return v.reshape((1,) * (x.ndim - 1) + (-1,)) * x


def where_per_model(pred: Array, a: Array, b: Array) -> Array:
    """``a[..., m]`` where pred[m] (M,), else ``b[..., m]``."""
    return jnp.where(pred.reshape((1,) * (a.ndim - 1) + (-1,)), a, b)


def _check(params: Packed, X: Array) -> None:
    if len(params) != 2:
        raise ValueError(f"params: the packed layout holds one hidden layer (2 layers), got {len(params)}")
    W1, W2 = params[0]["W"], params[1]["W"]
    if X.ndim != 2 or W1.ndim != 3 or W2.ndim != 3 or X.shape[1] != W1.shape[0] \
            or W1.shape[1:] != params[0]["b"].shape or W2.shape[0] != W1.shape[1] \
            or W2.shape[2] != W1.shape[2] or W2.shape[1:] != params[1]["b"].shape:
        raise ValueError(
            f"packed: expected X (B, d), W1 (d, h, M), b1 (h, M), W2 (h, k, M), b2 (k, M), got "
            f"{X.shape}, {W1.shape}, {params[0]['b'].shape}, {W2.shape}, {params[1]['b'].shape}")


# --- Forward and hand-written backward, side by side ---------------------------------------


def forward(params: Packed, X: Array, activation: str = "sigmoid") -> tuple[Array, tuple[Array, Array]]:
    """All M networks on one minibatch.

    Args:
        params: packed parameters (see the module docstring).
        X: (B, d) the shared minibatch.
    Returns:
        (out, (Z, A)): out (B, k, M) every model's output; Z, A (B, h, M) the hidden
        pre-activations and activations, kept for the backward.
    """
    _check(params, X)
    (l1, l2), act = params, foundations.ACTIVATIONS[activation]
    Z = jnp.einsum("bd,dhm->bhm", X, l1["W"]) + l1["b"][None]  # one (B, d) @ (d, h*M) matmul
    A = act(Z)
    out = jnp.sum(A[:, :, None, :] * l2["W"][None], axis=1) + l2["b"][None]  # per model: A_m @ W2_m
    return out, (Z, A)


def backward(params: Packed, X: Array, residuals: tuple[Array, Array], d_out: Array,
             activation: str = "sigmoid", *, with_dX: bool = False) -> tuple[Packed, Array | None]:
    """Hand-written backprop of :func:`forward`: d_out (B, k, M) -> (grads, dX).

    The output layer: dW2 = A^T d_out and db2 = sum_rows(d_out) per model; dA = d_out W2^T.
    The hidden layer: dZ = dA * act'(Z); then ``[X, 1]^T @ dZ`` gives dW1 (its first d
    rows) and db1 (its last row, the sum over rows) of all models in one matmul.
    dX (B, d), the sum over models of each model's input gradient, only if ``with_dX``.
    """
    (l1, l2), (Z, A) = params, residuals
    dW2 = jnp.sum(A[:, :, None, :] * d_out[:, None, :, :], axis=0)  # (h, k, M)
    db2 = jnp.sum(d_out, axis=0)  # (k, M)
    dA = jnp.sum(d_out[:, None, :, :] * l2["W"][None], axis=2)  # (B, h, M)
    dZ = dA * foundations.derivative_of(foundations.ACTIVATIONS[activation])(Z)
    X1 = jnp.concatenate([X, jnp.ones((X.shape[0], 1), X.dtype)], axis=1)  # (B, d+1)
    g1 = jnp.einsum("bd,bhm->dhm", X1, dZ)  # (d+1, h, M): dW1 and db1
    grads = [{"W": g1[:-1], "b": g1[-1]}, {"W": dW2, "b": db2}]
    dX = jnp.einsum("bhm,dhm->bd", dZ, l1["W"]) if with_dX else None
    return grads, dX


# --- Per-model loss and its gradient -------------------------------------------------------


def l2_penalty(params: Packed) -> Array:
    """(M,) each model's 0.5 * sum of squared weights (biases are not penalised)."""
    return 0.5 * sum(jnp.sum(jnp.square(layer["W"]), axis=(0, 1)) for layer in params)  # type: ignore[return-value]


def _data_losses(out: Array, Y: Array, weights: Array, loss_name: str, reduction: str) -> Array:
    """(M,) each model's data loss: the one-model loss vmapped over the last axis of out (B, k, M)."""
    loss_fn, _ = losses.LOSSES[loss_name]
    return jax.vmap(partial(loss_fn, reduction=reduction), in_axes=(2, None, None))(out, Y, weights)


def losses_of(params: Packed, X: Array, Y: Array, weights: Array, l2s: Array | None = None, *,
              activation: str = "sigmoid", loss_name: str = "mse", reduction: str = "mean") -> Array:
    """(M,) every model's training loss on the shared minibatch X (B, d), Y (B, k), weights (B,)."""
    values = _data_losses(forward(params, X, activation)[0], Y, weights, loss_name, reduction)
    return values if l2s is None else values + l2s * l2_penalty(params)


def value_and_grad(params: Packed, X: Array, Y: Array, weights: Array, l2s: Array | None = None, *,
                   activation: str = "sigmoid", loss_name: str = "mse", reduction: str = "mean",
                   gradients: str = "manual") -> tuple[Array, Packed]:
    """((M,) losses, packed per-model gradients) by the hand-written backprop or by ``jax.grad``.

    The models are independent, so the gradient of the *sum* of the M losses holds each
    model's own gradient in its slot. ``l2s`` (M,): per-model L2 coefficients, or None.
    """
    kw = dict(activation=activation, loss_name=loss_name, reduction=reduction)
    if gradients == "autodiff":
        def total(p: Packed) -> tuple[Array, Array]:
            values = losses_of(p, X, Y, weights, l2s, **kw)
            return jnp.sum(values), values

        (_, values), grads = jax.value_and_grad(total, has_aux=True)(params)
        return values, grads
    _, loss_vjp = losses.LOSSES[loss_name]
    out, residuals = forward(params, X, activation)
    values = _data_losses(out, Y, weights, loss_name, reduction)
    one = jnp.ones((), X.dtype)
    d_out = jax.vmap(lambda o: loss_vjp(o, Y, weights, one, reduction)[0], in_axes=2, out_axes=2)(out)
    grads, _ = backward(params, X, residuals, d_out, activation)
    if l2s is not None:
        values = values + l2s * l2_penalty(params)
        grads = [{"W": g["W"] + per_model(l2s, p["W"]), "b": g["b"]}
                 for g, p in zip(grads, params, strict=True)]
    return values, grads


def finite_per_model(tree: Any) -> Array:
    """(M,) whether every entry of model m (the last axis of each leaf) is finite.

    ``x * 0`` is 0 where x is finite and NaN where it is inf or NaN, so each model's column
    sum is finite exactly when all its entries are. The sum is taken as a product with a
    row of ones: XLA:CPU's reductions over the leading two axes of a (d, h, M) leaf
    (``all(isfinite(x), axis=(0, 1))``, or a sum) did not vectorise and cost about a third
    of the whole step at 256 models; the product costs a few microseconds.
    """
    def leaf_ok(x: Array) -> Array:
        cols = (x * 0).reshape(-1, x.shape[-1])  # (rows, M): 0 or NaN
        return jnp.isfinite(jnp.ones((1, cols.shape[0]), x.dtype) @ cols)[0]

    return functools.reduce(jnp.logical_and, map(leaf_ok, jax.tree_util.tree_leaves(tree)))


# --- Registry: the packed network's hand-written backprop ----------------------------------


def _example(key: Array, dtype: Any) -> tuple[Packed, Array]:
    k1, k2, k3, k4, kx = jax.random.split(key, 5)
    d, h, k, M, B = 4, 5, 2, 3, 7
    params = [{"W": jax.random.normal(k1, (d, h, M), dtype), "b": jax.random.normal(k2, (h, M), dtype)},
              {"W": jax.random.normal(k3, (h, k, M), dtype), "b": jax.random.normal(k4, (k, M), dtype)}]
    return params, jax.random.normal(kx, (B, d), dtype)


for _act in ("sigmoid", "tanh"):
    register(Entry(
        name=f"packed_mlp[{_act}]",
        forward=lambda p, X, a=_act: forward(p, X, a)[0],
        backward=lambda p, X, c, a=_act: backward(p, X, forward(p, X, a)[1], c, a, with_dX=True),
        example=_example,
    ))
