"""Linear regression and MLPs as pure functions over a plain pytree of parameters.

Parameters are a list with one dict per dense layer, ``[{"W": (d_in, d_out), "b": (d_out,)},
...]``. Linear regression (seed 1.3) is the MLP with no hidden layer; the seed's network (1.4)
is ``sizes = (13, 13, 1)`` with sigmoid.

The network is composed of :func:`jaxnn.with_backward` pieces: :func:`jaxnn.layers.dense_layer`,
a :func:`hand_written` activation and a per-example loss of :mod:`jaxnn.losses`. ``jax.grad`` of
its loss runs each piece's hand-written backward in reverse order -- the seed's backward pass,
layer by layer -- and the same network built from the plain forwards
(:func:`jaxnn.backward.forward_of`) is its autodiff twin; the tests prove the two equal.
Everything here takes values (activation functions, losses, initializers); the names of a
:class:`~jaxnn.training.TrainConfig` are turned into them by :func:`jaxnn.training.resolve`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from jaxnn import foundations, names
from jaxnn.backward import forward_of, with_backward
from jaxnn.errors import InputTypeError
from jaxnn.gradients import Entry, register
from jaxnn.layers import dense, dense_layer

Params = list[dict[str, Array]]
Initializer = Callable[[Array, int, int, Any], tuple[Array, Array]]
"""``init(key, d_in, d_out, dtype) -> (W (d_in, d_out), b (d_out,))``: one dense layer's start."""


def layer_sizes(n_features: int, hidden: Sequence[int], n_outputs: int) -> tuple[int, ...]:
    """(n_features, *hidden, n_outputs), validated.

    Raises:
        ValueError: if any size is not a positive integer.
    """
    sizes = (n_features, *hidden, n_outputs)
    for name, s in zip(("n_features", *["hidden"] * len(hidden), "n_outputs"), sizes, strict=True):
        names.positive_int(name, s, what="layer sizes must be positive integers")
    return sizes


# --- Initialisation --------------------------------------------------------------------------


def normal(key: Array, d_in: int, d_out: int, dtype: Any) -> tuple[Array, Array]:
    """Standard normal W and b: exactly what the seed does (``np.random.randn``)."""
    kw, kb = jax.random.split(key)
    return jax.random.normal(kw, (d_in, d_out), dtype), jax.random.normal(kb, (d_out,), dtype)


def glorot(key: Array, d_in: int, d_out: int, dtype: Any) -> tuple[Array, Array]:
    """W uniform in +-sqrt(6 / (fan_in + fan_out)), b = 0."""
    kw, _ = jax.random.split(key)
    lim = math.sqrt(6.0 / (d_in + d_out))
    return jax.random.uniform(kw, (d_in, d_out), dtype, -lim, lim), jnp.zeros((d_out,), dtype)


def he(key: Array, d_in: int, d_out: int, dtype: Any) -> tuple[Array, Array]:
    """W normal with variance 2 / fan_in, b = 0."""
    kw, _ = jax.random.split(key)
    return math.sqrt(2.0 / d_in) * jax.random.normal(kw, (d_in, d_out), dtype), jnp.zeros((d_out,), dtype)


def _function(arg: str, value: Any, decoder: str) -> None:
    """Refuse what is not a function where the models take one; a name says how to decode it."""
    if not callable(value):
        hint = (f"; jaxnn.names.{decoder}({value!r}) turns a configuration's name into one"
                if isinstance(value, str) else "")
        raise InputTypeError(f"{arg}: expected a function, got {value!r}{hint}")


def init_params(key: Array, sizes: Sequence[int], *, init: Initializer = normal,
                dtype: Any = jnp.float32) -> Params:
    """Initial parameters for an MLP with layer sizes ``(d, h_1, ..., h_L, k)``.

    Args:
        key: a typed PRNG key (``jax.random.key``); layer i draws from its i-th split.
        sizes: layer widths, inputs first.
        init: an :data:`Initializer` -- :func:`normal` (the seed's), :func:`glorot`, :func:`he`
            or the user's own (:func:`jaxnn.names.initializer` turns a configuration's name into one).
        dtype: float32 or float64.
    Returns:
        ``[{"W": (sizes[i], sizes[i+1]), "b": (sizes[i+1],)}, ...]``.
    """
    _function("init", init, "initializer")
    keys = jax.random.split(key, len(sizes) - 1)
    return [dict(zip(("W", "b"), init(k, d_in, d_out, dtype), strict=True))
            for k, (d_in, d_out) in zip(keys, itertools.pairwise(sizes), strict=True)]


# --- The network -----------------------------------------------------------------------------


@functools.cache
def hand_written(func: foundations.ArrayFunction) -> Any:
    """An elementwise ``func`` whose backward is its analytic ``func.deriv`` (:func:`jaxnn.with_backward`).

    Cached, so one activation is one function (the engine's compiled programs are keyed by it).
    """
    deriv = foundations.derivative_of(func)
    return with_backward(func, lambda z, cotangent: (cotangent * deriv(z),))


def network(params: Params, X: Array, activation: Any = foundations.sigmoid, *,
            layer: Any = dense_layer) -> Array:
    """The MLP's output (n, k): ``layer`` then ``activation`` for every hidden layer, a linear output.

    ``activation`` is any callable (``jax.nn.tanh``, a :func:`hand_written` activation, the user's
    own); ``layer`` is :func:`jaxnn.layers.dense_layer` (hand-written backward) or ``dense``
    (autodiff). X: (n, d); params: ``[{"W": (d_in, d_out), "b": (d_out,)}, ...]``.
    """
    _function("activation", activation, "activation")
    h = X
    for i, p in enumerate(params):
        h = layer(h, p["W"], p["b"])
        if i < len(params) - 1:
            h = activation(h)
    return h


def predict(params: Params, X: Array, activation: Any = foundations.sigmoid) -> Array:
    """Network output (n, k): regression predictions or classification logits.

    ``activation``: the hidden activation function (:func:`jaxnn.names.activation` turns a
    configuration's name into one).
    """
    return network(params, X, activation, layer=dense)


def l2_penalty(params: Params) -> Array:
    """0.5 * sum of squared weights (biases are not penalised, as in scikit-learn): a scalar."""
    return 0.5 * sum(jnp.sum(jnp.square(layer["W"])) for layer in params)  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def make_loss_fn(activation: Any, loss: Any, *, layer: Any = dense_layer, l2: float = 0.0,
                 scale: float = 1.0, summed: bool = False) -> Any:
    """``loss_fn(params, X, Y) -> (n,)``: per-example losses of the MLP, for :func:`jaxnn.fit`.

    Args:
        activation: the hidden activation as the network applies it (:func:`hand_written` for the
            hand-written backward, the plain function for autodiff).
        loss: a per-example loss ``(pred, Y) -> (n,)`` of :mod:`jaxnn.losses`.
        layer: :func:`jaxnn.layers.dense_layer` (hand-written backward) or ``dense`` (autodiff).
        l2: the L2 coefficient: each example's loss is ``scale * loss_i + l2 * l2_penalty(params)``,
            so the mean over a minibatch is ``scale * mean loss + l2 * penalty``.
        scale: the data loss's factor (0.5 for the seed's half sum).
        summed: for a minibatch summed, not averaged (the seed's reductions): the penalty is
            spread over its B rows (``l2 * penalty / B`` each), so a full minibatch's sum
            carries it once.
    Cached: the same arguments give the same function, so the engine's compiled programs are
    reused.
    """
    _function("activation", activation, "activation")
    _function("loss", loss, "loss")

    def loss_fn(params: Params, X: Array, Y: Array) -> Array:
        out = loss(network(params, X, activation, layer=layer), Y)
        if scale != 1.0:
            out = scale * out
        if not l2:
            return out
        penalty = l2 * l2_penalty(params)
        return out + (penalty / X.shape[0] if summed else penalty)[None]

    return loss_fn


# --- Registry: the composed network's gradient ----------------------------------------------
# jax.grad of the with_backward network runs only hand-written backward passes (dense_vjp, each
# activation's .deriv, the loss's vjp); checked against jax.vjp of the plain network.


def _network_entry(name: str, activation: str, loss_name: str, sizes: tuple[int, ...], l2: float) -> Entry:
    act, loss = names.activation(activation), names.loss(loss_name)
    manual = make_loss_fn(hand_written(act), loss, l2=l2)
    plain = make_loss_fn(act, forward_of(loss), layer=dense, l2=l2)

    def example(key: Array, dtype: Any) -> tuple[Any, ...]:
        kp, kx, ky = jax.random.split(key, 3)
        params = init_params(kp, sizes, init=glorot, dtype=dtype)
        X = jax.random.normal(kx, (7, sizes[0]), dtype)
        if loss_name == "cross_entropy":
            Y = jax.nn.one_hot(jax.random.randint(ky, (7,), 0, sizes[-1]), sizes[-1], dtype=dtype)
        else:
            Y = jax.random.normal(ky, (7, sizes[-1]), dtype)
        return params, X, Y

    def backward(params: Params, X: Array, Y: Array, cotangent: Array) -> tuple[Any, ...]:
        return jax.vjp(lambda *a: jnp.mean(manual(*a)), params, X, Y)[1](cotangent)

    return Entry(name=name, forward=lambda *a: jnp.mean(plain(*a)), backward=backward, example=example,
                 kink="relu'(0) = 0, leaky_relu'(0) = 1" if "relu" in activation else None)


for _args in [("linear_regression[mse]", "sigmoid", "mse", (4, 1), 0.0),
              ("mlp[sigmoid,mse]", "sigmoid", "mse", (4, 5, 1), 0.0),
              ("mlp[tanh,mse,l2]", "tanh", "mse", (4, 5, 3, 2), 0.1),
              ("mlp[relu,cross_entropy]", "relu", "cross_entropy", (4, 6, 3), 0.0),
              ("mlp[leaky_relu,cross_entropy]", "leaky_relu", "cross_entropy", (4, 6, 5, 3), 0.0)]:
    register(_network_entry(*_args))
