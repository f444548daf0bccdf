"""Every name jaxnn accepts for an activation, loss, optimizer and the like, what each stands for,
and the checks of every kind of argument, in one place.

The engine (:func:`jaxnn.fit`) and the models take values -- a ``loss_fn``, an optax
transformation, activation and initializer callables. Strings exist only at the edges that must
be JSON-friendly: a :class:`~jaxnn.training.TrainConfig` (CLI, checkpoints, sweeps) and the
scikit-learn estimators. Those edges validate against these tuples; each kind of name is turned
into its value by one function below (:func:`activation`, :func:`loss`, :func:`initializer`,
:func:`optimizer`), and :func:`jaxnn.training.resolve` turns a whole configuration into values
with them. Adding a name is one line here (plus its value). Importing this module imports no JAX
(the CLI's ``--help`` reads it).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from jaxnn.errors import InputError, InputTypeError

DATASETS = ("diabetes", "digits", "boston", "friedman1")
"""Built-in data sets (:func:`jaxnn.datasets.load_dataset`); any other ``--data`` is a CSV path."""

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
"""Hidden activations of the built-in MLPs (:mod:`jaxnn.foundations`)."""

SKLEARN_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "sigmoid": "sigmoid",
                       "leaky_relu": "leaky_relu"}
"""scikit-learn's ``activation`` names (plus jaxnn's) -> jaxnn's :data:`ACTIVATIONS`."""

LOSSES = ("mse", "cross_entropy")
"""``"mse"`` (regression) and ``"cross_entropy"`` (softmax, one-hot targets)."""

REDUCTIONS = ("mean", "sum", "half_sum")
"""How a minibatch's per-example losses are reduced: the mean (default), or the seed's sum / half sum."""

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
"""Optax optimizers by name (:func:`optimizer`)."""

SCHEDULES = ("constant", "cosine", "exponential")
"""Learning-rate schedules of a :class:`~jaxnn.training.TrainConfig`."""

INITS = ("normal", "glorot", "he")
"""Initialisations of :func:`jaxnn.models.init_params` (:func:`initializer`; ``"normal"`` is the seed's)."""

GRADIENTS = ("manual", "autodiff")
"""Hand-written backward passes, or ``jax.grad`` of the plain forwards."""

DTYPES = ("float32", "float64")
"""Training dtypes (float64 turns on JAX's x64 mode for the run)."""


# --- The checks: one per kind of argument ---------------------------------------------------


def check(name: str, value: Any, valid: tuple[str, ...] | dict[str, str]) -> None:
    """Raise ``ValueError`` naming the argument ``name`` unless ``value`` is one of ``valid``."""
    if not isinstance(value, str) or value not in valid:
        listed = sorted(valid) if isinstance(valid, dict) else list(valid)
        raise InputError(f"{name}: expected one of {listed}, got {value!r}")


def positive_int(name: str, value: Any, *, allow_none: bool = False, limit: int = 2**31 - 1,
                 what: str = "expected a positive integer") -> None:
    """Raise ``InputError`` naming ``name`` unless ``value`` is an integer in 1..``limit`` (not a
    bool), or None where ``allow_none``."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise InputError(f"{name}: {what}, got {value!r}")
    if int(value) > limit:
        raise InputError(f"{name}: {value} is above the limit of {limit}")


def finite_float(name: str, value: Any, *, positive: bool = False) -> None:
    """Raise ``InputTypeError`` (not a number) or ``InputError`` (not finite, or below 0 -- at or
    below 0 where ``positive``) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0) or (not positive and value < 0):
        kind = "> 0" if positive else ">= 0"
        raise InputError(f"{name}: expected a finite number {kind}, got {value!r}")


def fraction(name: str, value: Any) -> float:
    """``value`` as a float strictly between 0 and 1 (``test_size``, ``validation_fraction``); raise
    ``InputTypeError`` (not a number) or ``InputError`` (outside, or NaN) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name}: expected a number strictly between 0 and 1, got {value!r}")
    if not 0.0 < float(value) < 1.0:  # also rejects NaN
        raise InputError(f"{name}: expected a number strictly between 0 and 1, got {value!r}")
    return float(value)


# --- Names to values ---------------------------------------------------------------------------


def task_loss(task: str) -> str:
    """The loss of a task: ``"mse"`` for regression, ``"cross_entropy"`` for classification."""
    return "cross_entropy" if task == "classification" else "mse"


def activation(name: str) -> Any:
    """The activation function ``name`` (:data:`ACTIVATIONS`, or a scikit-learn spelling): one of
    :mod:`jaxnn.foundations`' functions, each with its analytic ``.deriv``."""
    from jaxnn import foundations

    check("activation", name, SKLEARN_ACTIVATIONS)
    return {"sigmoid": foundations.sigmoid, "tanh": foundations.tanh, "relu": foundations.relu,
            "leaky_relu": foundations.leaky_relu}[SKLEARN_ACTIVATIONS[name]]


def loss(name: str) -> Any:
    """The per-example loss ``name`` (:data:`LOSSES`), with its hand-written backward
    (:func:`jaxnn.backward.forward_of` gives the plain function)."""
    from jaxnn import losses

    check("loss", name, LOSSES)
    return {"mse": losses.squared_error_layer, "cross_entropy": losses.cross_entropy_layer}[name]


def initializer(name: str) -> Any:
    """The layer initializer ``name`` (:data:`INITS`): :func:`jaxnn.models.normal` and its kin."""
    from jaxnn import models

    check("init", name, INITS)
    return {"normal": models.normal, "glorot": models.glorot, "he": models.he}[name]


def optimizer(name: str, learning_rate: Any, momentum: Any = 0.9) -> Any:
    """The optax optimizer ``name`` (:data:`OPTIMIZERS`) at ``learning_rate`` (a float, a schedule or,
    inside ``optax.inject_hyperparams``, a traced value).

    ``"sgd"`` is plain ``W -= lr * grad`` (the seed's update; ``momentum`` is ignored),
    ``"momentum"`` heavy-ball momentum, ``"nesterov"`` Nesterov momentum (scikit-learn's default
    sgd), ``"adam"`` optax's Adam with its (and scikit-learn's) defaults ``b1=0.9, b2=0.999,
    eps=1e-8`` (``momentum`` is ignored).
    """
    import optax

    check("optimizer", name, OPTIMIZERS)
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "adam":
        return optax.adam(learning_rate)
    return optax.sgd(learning_rate, momentum=momentum, nesterov=name == "nesterov")
