"""Every name jaxnn accepts for an activation, loss, optimizer and the like, in one place.

The engine (:func:`jaxnn.fit`) takes values -- a ``loss_fn``, an optax transformation,
activation callables. Strings exist only at the edges that must be JSON-friendly: a
:class:`~jaxnn.training.TrainConfig` (CLI, checkpoints, sweeps) and the scikit-learn
estimators. Those edges validate against these tuples and translate with the two functions
below, so adding a name is one line here (plus its value). Importing this module imports no
JAX (the CLI's ``--help`` reads it).

* Activations map to :mod:`jaxnn.foundations`' functions (each with its analytic ``.deriv``).
* Losses map to :mod:`jaxnn.losses`' (``LOSSES`` for whole-batch losses, ``PER_EXAMPLE`` for the
  engine's per-example layers).
* Optimizers map to optax (:func:`optimizer`).
"""

from __future__ import annotations

from typing import Any

from jaxnn.errors import InputError

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
"""How a whole-batch loss reduces its rows: the mean (default), or the seed's sum / half sum."""

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
"""Optax optimizers by name (:func:`optimizer`)."""

SCHEDULES = ("constant", "cosine", "exponential")
"""Learning-rate schedules of a :class:`~jaxnn.training.TrainConfig`."""

INITS = ("normal", "glorot", "he")
"""Initialisations of :func:`jaxnn.models.init_params` (``"normal"`` is the seed's)."""

GRADIENTS = ("manual", "autodiff")
"""Hand-written backward passes, or ``jax.grad`` of the plain forwards."""

DTYPES = ("float32", "float64")
"""Training dtypes (float64 turns on JAX's x64 mode for the run)."""


def check(name: str, value: Any, valid: tuple[str, ...] | dict[str, str]) -> None:
    """Raise ``ValueError`` naming the argument ``name`` unless ``value`` is one of ``valid``."""
    if not isinstance(value, str) or value not in valid:
        listed = sorted(valid) if isinstance(valid, dict) else list(valid)
        raise InputError(f"{name}: expected one of {listed}, got {value!r}")


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


def activation(name: str) -> Any:
    """The activation function ``name`` (:data:`ACTIVATIONS`, or a scikit-learn spelling)."""
    from jaxnn import foundations

    check("activation", name, SKLEARN_ACTIVATIONS)
    return foundations.ACTIVATIONS[SKLEARN_ACTIVATIONS[name]]
