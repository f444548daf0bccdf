"""Linear regression and MLPs as pure functions over a plain pytree of parameters.

Parameters are a list with one dict per dense layer, ``[{"W": (d_in, d_out),
"b": (d_out,)}, ...]``. Linear regression (seed 1.3) is the MLP with no hidden
layer; the seed's network (1.4) is ``sizes = (13, 13, 1)`` with sigmoid.

Three ways to get gradients, and the tests prove them equal:

* :func:`value_and_grad_manual` -- the hand-written backprop: :func:`forward`
  keeps the residuals, :func:`backward` walks the layers in reverse with the
  analytic derivatives (no autodiff anywhere);
* :func:`loss_with_manual_vjp` -- the same hand-written path handed to JAX via
  ``jax.custom_vjp``, so ``jax.grad`` itself runs the hand-written backward;
* ``jax.value_and_grad(loss)`` -- JAX's autodiff of the forward.

``value_and_grad(..., gradients="manual" | "autodiff")`` picks one; the
training loop takes the same switch.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from jaxnn import foundations, losses, names
from jaxnn.backward import forward_of, with_backward
from jaxnn.errors import InputError
from jaxnn.gradients import Entry, register
from jaxnn.layers import dense, dense_layer, dense_vjp

Params = list[dict[str, Array]]
INITS = names.INITS
GRADIENTS = names.GRADIENTS
ACTIVATIONS = names.ACTIVATIONS


def layer_sizes(n_features: int, hidden: Sequence[int], n_outputs: int) -> tuple[int, ...]:
    """(n_features, *hidden, n_outputs), validated.

    Raises:
        ValueError: if any size is not a positive integer.
    """
    sizes = (n_features, *hidden, n_outputs)
    for name, s in zip(("n_features", *["hidden"] * len(hidden), "n_outputs"), sizes, strict=True):
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise InputError(f"{name}: layer sizes must be positive integers, got {s!r}")
    return sizes


def init_params(
    key: Array, sizes: Sequence[int], *, init: str = "normal", dtype: Any = jnp.float32
) -> Params:
    """Initial parameters for an MLP with layer sizes ``(d, h_1, ..., h_L, k)``.

    Args:
        key: a typed PRNG key (``jax.random.key``).
        sizes: layer widths, inputs first.
        init: ``"normal"`` -- standard normal W and b, exactly what the seed does
            (``np.random.randn``); ``"glorot"`` -- uniform(+-sqrt(6/(fan_in+fan_out))),
            b = 0; ``"he"`` -- normal(0, 2/fan_in), b = 0.
        dtype: float32 or float64.
    Returns:
        ``[{"W": (sizes[i], sizes[i+1]), "b": (sizes[i+1],)}, ...]``.
    """
    names.check("init", init, INITS)
    params: Params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (d_in, d_out) in zip(keys, itertools.pairwise(sizes), strict=True):
        kw, kb = jax.random.split(k)
        if init == "normal":
            W = jax.random.normal(kw, (d_in, d_out), dtype)
            b = jax.random.normal(kb, (d_out,), dtype)
        elif init == "glorot":
            lim = math.sqrt(6.0 / (d_in + d_out))
            W = jax.random.uniform(kw, (d_in, d_out), dtype, -lim, lim)
            b = jnp.zeros((d_out,), dtype)
        else:
            W = math.sqrt(2.0 / d_in) * jax.random.normal(kw, (d_in, d_out), dtype)
            b = jnp.zeros((d_out,), dtype)
        params.append({"W": W, "b": b})
    return params


def _loss_pair(name: str) -> tuple[Any, Any]:
    names.check("loss_name", name, names.LOSSES)
    return losses.LOSSES[name]


def _activation(name: str) -> foundations.ArrayFunction:
    names.check("activation", name, ACTIVATIONS)
    return names.activation(name)


# --- The model the engine trains: with_backward layers composed ------------------------------


def hand_written(func: foundations.ArrayFunction) -> Any:
    """An elementwise ``func`` whose backward is its analytic ``func.deriv`` (:func:`jaxnn.with_backward`)."""
    deriv = foundations.derivative_of(func)
    return with_backward(func, lambda z, cotangent: (cotangent * deriv(z),))


ACTIVATION_LAYERS = {name: hand_written(foundations.ACTIVATIONS[name]) for name in ACTIVATIONS}
"""name -> hidden activation whose gradient is its hand-written derivative."""


def network(params: Params, X: Array, activation: Any = ACTIVATION_LAYERS["sigmoid"], *,
            layer: Any = dense_layer) -> Array:
    """The MLP's output (n, k): ``layer`` then ``activation`` for every hidden layer, a linear output.

    ``activation`` is any callable (``jax.nn.tanh``, a :func:`hand_written` activation, the user's
    own); ``layer`` is :func:`jaxnn.layers.dense_layer` (hand-written backward) or ``dense``
    (autodiff). X: (n, d); params: ``[{"W": (d_in, d_out), "b": (d_out,)}, ...]``. The same
    function runs M models stacked on a trailing axis (W (d_in, d_out, M), b (d_out, M), X (n, d)
    shared or (n, d, M)) and returns (n, k, M): :func:`jaxnn.layers.dense`.
    """
    h = X
    for i, p in enumerate(params):
        h = layer(h, p["W"], p["b"])
        if i < len(params) - 1:
            h = activation(h)
    return h


@functools.lru_cache(maxsize=64)
def make_loss_fn(activation: str = "sigmoid", loss_name: str = "mse", *, l2: float = 0.0,
                 scale: float = 1.0, gradients: str = "manual", summed: bool = False) -> Any:
    """``loss_fn(params, X, Y) -> (n,)`` per-example losses of the built-in MLP, for :func:`jaxnn.fit`.

    ``gradients="manual"`` builds it from the hand-written layers, activation and loss
    (:func:`jaxnn.with_backward`); ``"autodiff"`` from their plain forwards (``jax.grad`` of them).
    Each example's loss is ``scale * loss_i + l2 * l2_penalty(params)``, so the mean over a minibatch
    is ``scale * mean loss + l2 * penalty``. ``summed=True`` is for the engine's ``reduction="sum"``:
    the penalty is spread over the minibatch's B rows (``l2 * penalty / B`` each), so a full
    minibatch's sum carries it once. Cached: the same arguments give the same function, so the
    engine's compiled programs are reused.
    """
    names.check("gradients", gradients, GRADIENTS)
    plain = _activation(activation)
    names.check("loss_name", loss_name, names.LOSSES)
    manual = gradients == "manual"
    act = ACTIVATION_LAYERS[activation] if manual else plain
    layer = dense_layer if manual else forward_of(dense_layer)
    per_example = losses.PER_EXAMPLE[loss_name] if manual else forward_of(losses.PER_EXAMPLE[loss_name])

    def loss_fn(params: Params, X: Array, Y: Array) -> Array:
        pred = network(params, X, act, layer=layer)
        if pred.ndim == 3 and Y.ndim == 2:  # stacked models (jaxnn.fit_many), shared targets
            Y = jnp.broadcast_to(Y[..., None], pred.shape)
        out = per_example(pred, Y)
        if scale != 1.0:
            out = scale * out
        if not l2:
            return out
        penalty = l2 * l2_penalty(params)  # () or, stacked, (M,)
        return out + (penalty / X.shape[0] if summed else penalty)[None]

    return loss_fn


# --- Forward and hand-written backward, side by side ---------------------------------------


def forward(params: Params, X: Array, activation: str = "sigmoid") -> tuple[Array, list[Any]]:
    """Forward pass keeping what the backward pass needs.

    Args:
        params: the layer list.
        X: (n, d) inputs.
        activation: hidden-layer activation; the output layer is linear.
    Returns:
        (out, residuals): out is (n, k); residuals[l] = (input of layer l,
        pre-activation of layer l).
    """
    act = _activation(activation)
    residuals = []
    h = X
    for i, layer in enumerate(params):
        z = dense(h, layer["W"], layer["b"])  # M = h @ W, N = M + b
        residuals.append((h, z))
        h = act(z) if i < len(params) - 1 else z
    return h, residuals


def backward(
    params: Params, residuals: list[Any], d_out: Array, activation: str = "sigmoid"
) -> tuple[Params, Array]:
    """Hand-written backprop: pull d_out = dL/d(out) (n, k) back through every layer.

    Returns:
        (grads, dX): grads has the structure of params; dX is (n, d).
    """
    act_deriv = foundations.derivative_of(_activation(activation))
    grads: Params = [{} for _ in params]
    dz = d_out
    for i in reversed(range(len(params))):
        h, _ = residuals[i]
        dh, dW, db = dense_vjp(h, params[i]["W"], params[i]["b"], dz)
        grads[i] = {"W": dW, "b": db}
        if i > 0:
            _, z_prev = residuals[i - 1]
            dz = dh * act_deriv(z_prev)  # through the hidden activation
        else:
            dX = dh
    return grads, dX


def predict(params: Params, X: Array, activation: str = "sigmoid") -> Array:
    """Network output (n, k): regression predictions or classification logits."""
    return network(params, X, _activation(activation), layer=dense)


def l2_penalty(params: Params) -> Array:
    """0.5 * sum of squared weights (biases are not penalised, as in scikit-learn).

    A scalar, or (M,) -- each model's -- for M models stacked on a trailing axis.
    """
    return 0.5 * sum(jnp.sum(jnp.square(layer["W"]), axis=(0, 1)) for layer in params)  # type: ignore[return-value]


def loss(
    params: Params,
    X: Array,
    Y: Array,
    weights: Array,
    *,
    activation: str = "sigmoid",
    loss_name: str = "mse",
    reduction: str = "mean",
    l2: float = 0.0,
) -> Array:
    """Scalar training loss: data loss + l2 * :func:`l2_penalty`.

    X: (n, d); Y: (n, k) targets (one-hot for cross-entropy); weights: (n,).
    """
    loss_fn, _ = _loss_pair(loss_name)
    out = predict(params, X, activation)
    value = loss_fn(out, Y, weights, reduction)
    return value + l2 * l2_penalty(params) if l2 else value  # no penalty ops when l2 == 0


def full_vjp(
    params: Params,
    X: Array,
    Y: Array,
    weights: Array,
    cotangent: Array,
    *,
    activation: str = "sigmoid",
    loss_name: str = "mse",
    reduction: str = "mean",
    l2: float = 0.0,
) -> tuple[Array, tuple[Params, Array, Array, Array]]:
    """Loss and its hand-written VJP for every argument: (loss, (dparams, dX, dY, dweights))."""
    loss_fn, loss_vjp = _loss_pair(loss_name)
    out, residuals = forward(params, X, activation)
    value = loss_fn(out, Y, weights, reduction)
    if l2:
        value = value + l2 * l2_penalty(params)
    d_out, dY, dweights = loss_vjp(out, Y, weights, cotangent, reduction)
    grads, dX = backward(params, residuals, d_out, activation)
    if l2:
        grads = [{"W": g["W"] + cotangent * l2 * p["W"], "b": g["b"]} for g, p in
                 zip(grads, params, strict=True)]
    return value, (grads, dX, dY, dweights)


def value_and_grad_manual(
    params: Params, X: Array, Y: Array, weights: Array, **kw: Any
) -> tuple[Array, Params]:
    """(loss, dloss/dparams) by the hand-written backprop alone -- no autodiff."""
    value, (grads, _, _, _) = full_vjp(params, X, Y, weights, jnp.ones((), X.dtype), **kw)
    return value, grads


# --- The hand-written path, handed to JAX --------------------------------------------------


@partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6, 7))
def loss_with_manual_vjp(
    params: Params,
    X: Array,
    Y: Array,
    weights: Array,
    activation: str = "sigmoid",
    loss_name: str = "mse",
    reduction: str = "mean",
    l2: float = 0.0,
) -> Array:
    """:func:`loss` whose derivative, under ``jax.grad``/``jax.vjp``, is the hand-written one."""
    return loss(params, X, Y, weights, activation=activation, loss_name=loss_name,
                reduction=reduction, l2=l2)


def _loss_fwd(params, X, Y, weights, activation, loss_name, reduction, l2):  # type: ignore[no-untyped-def]
    return loss_with_manual_vjp(params, X, Y, weights, activation, loss_name, reduction, l2), (
        params, X, Y, weights)


def _loss_bwd(activation, loss_name, reduction, l2, res, g):  # type: ignore[no-untyped-def]
    params, X, Y, weights = res
    _, grads = full_vjp(params, X, Y, weights, g, activation=activation, loss_name=loss_name,
                        reduction=reduction, l2=l2)
    return grads


loss_with_manual_vjp.defvjp(_loss_fwd, _loss_bwd)


def value_and_grad(
    params: Params, X: Array, Y: Array, weights: Array, *, gradients: str = "manual", **kw: Any
) -> tuple[Array, Params]:
    """(loss, grads) by the hand-written backprop (``"manual"``) or ``jax.grad`` (``"autodiff"``)."""
    if gradients == "manual":
        return value_and_grad_manual(params, X, Y, weights, **kw)
    if gradients == "autodiff":
        return jax.value_and_grad(loss)(params, X, Y, weights, **kw)
    raise InputError(f"gradients: expected one of {GRADIENTS}, got {gradients!r}")


# --- Registry: the whole network's hand-written backprop -----------------------------------


def _network_example(loss_name: str, activation: str, sizes: tuple[int, ...]) -> Any:
    def example(key: Array, dtype: Any) -> tuple[Any, ...]:
        kp, kx, ky, kw = jax.random.split(key, 4)
        params = init_params(kp, sizes, init="glorot", dtype=dtype)
        n = 7
        X = jax.random.normal(kx, (n, sizes[0]), dtype)
        if loss_name == "cross_entropy":
            Y = jax.nn.one_hot(jax.random.randint(ky, (n,), 0, sizes[-1]), sizes[-1], dtype=dtype)
        else:
            Y = jax.random.normal(ky, (n, sizes[-1]), dtype)
        w = jax.random.uniform(kw, (n,), dtype, 0.5, 1.5)
        return params, X, Y, w

    return example


_NETWORKS = [
    ("linear_regression[mse]", "sigmoid", "mse", (4, 1), 0.0),
    ("mlp[sigmoid,mse]", "sigmoid", "mse", (4, 5, 1), 0.0),
    ("mlp[tanh,mse,l2]", "tanh", "mse", (4, 5, 3, 2), 0.1),
    ("mlp[relu,cross_entropy]", "relu", "cross_entropy", (4, 6, 3), 0.0),
    ("mlp[leaky_relu,cross_entropy]", "leaky_relu", "cross_entropy", (4, 6, 5, 3), 0.0),
]
for _name, _act, _loss, _sizes, _l2 in _NETWORKS:
    register(
        Entry(
            name=_name,
            forward=partial(loss, activation=_act, loss_name=_loss, l2=_l2),
            backward=lambda p, X, Y, w, c, a=_act, lo=_loss, l2=_l2: full_vjp(
                p, X, Y, w, c, activation=a, loss_name=lo, l2=l2)[1],
            example=_network_example(_loss, _act, _sizes),
            kink="relu'(0) = 0, leaky_relu'(0) = 1" if "relu" in _act else None,
        )
    )
