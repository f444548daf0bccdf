"""scikit-learn's stochastic solvers as optax transformations, update for update.

scikit-learn's ``SGDOptimizer`` keeps a velocity ``v <- momentum * v - lr * g`` (the learning rate
inside it, so a changed rate -- "invscaling", "adaptive" -- mixes into the old velocity) and
steps by ``v`` or, with Nesterov, by ``momentum * v - lr * g``. Its ``AdamOptimizer`` adds
``epsilon`` to ``sqrt(v)`` *before* the bias correction, which it folds into the rate:
``lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``, ``step = -lr_t * m / (sqrt(v) + epsilon)``.
optax's ``sgd`` (a trace times a rate) and ``adam`` (epsilon after the correction) differ from
these, by ~1e-5 relative for Adam, so the estimators train with the two below.

Both take their hyper-parameters through :func:`optax.inject_hyperparams`: they are runtime
inputs of the engine's compiled program (a new learning rate compiles nothing), and the host
changes the learning rate between epochs for "invscaling" and "adaptive".
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class SGDState(NamedTuple):
    velocity: Any


def sklearn_sgd(learning_rate: Any, momentum: Any, nesterov: bool = True) -> optax.GradientTransformation:
    """scikit-learn's SGD: ``v <- momentum * v - lr * g``; the step is ``v`` (or Nesterov's
    ``momentum * v - lr * g``). ``momentum=0`` is plain SGD (the same state, so one program)."""

    def init(params: Any) -> SGDState:
        return SGDState(jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(grads: Any, state: SGDState, params: Any = None) -> tuple[Any, SGDState]:
        def rule(v: Any, g: Any) -> Any:
            return momentum * v - learning_rate * g

        velocity = jax.tree_util.tree_map(rule, state.velocity, grads)
        if nesterov:
            step = jax.tree_util.tree_map(rule, velocity, grads)
        else:
            step = velocity
        return step, SGDState(velocity)

    return optax.GradientTransformation(init, update)  # type: ignore[arg-type]


class AdamState(NamedTuple):
    count: Any
    mu: Any
    nu: Any


def sklearn_adam(learning_rate: Any, beta_1: Any, beta_2: Any, epsilon: Any) -> optax.GradientTransformation:
    """scikit-learn's Adam: epsilon added to ``sqrt(v)``, the bias correction in the rate."""

    def init(params: Any) -> AdamState:
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return AdamState(jnp.zeros((), jnp.int32), zeros, zeros)

    def update(grads: Any, state: AdamState, params: Any = None) -> tuple[Any, AdamState]:
        count = state.count + 1
        mu = jax.tree_util.tree_map(lambda m, g: beta_1 * m + (1 - beta_1) * g, state.mu, grads)
        nu = jax.tree_util.tree_map(lambda v, g: beta_2 * v + (1 - beta_2) * (g * g), state.nu, grads)
        leaf = jax.tree_util.tree_leaves(grads)[0]
        t = count.astype(leaf.dtype)
        rate = learning_rate * jnp.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        step = jax.tree_util.tree_map(lambda m, v: -rate * m / (jnp.sqrt(v) + epsilon), mu, nu)
        return step, AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=8)
def optimizer(solver: str, nesterov: bool = True) -> optax.GradientTransformation:
    """The solver's transformation, its hyper-parameters injected (set them with :func:`with_hyperparams`).

    Cached: the same solver is the same object, so the engine reuses its compiled program.
    """
    if solver == "sgd":
        return optax.inject_hyperparams(sklearn_sgd, static_args=("nesterov",))(
            learning_rate=1e-3, momentum=0.9, nesterov=nesterov)
    return optax.inject_hyperparams(sklearn_adam)(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def with_hyperparams(opt_state: Any, values: dict[str, float], dtype: Any) -> Any:
    """``opt_state`` with these hyper-parameter values, as host arrays of ``dtype``."""
    import numpy as np

    if set(opt_state.hyperparams) != set(values):  # an optax that injects otherwise: fail loudly
        raise RuntimeError(f"optax injects {sorted(opt_state.hyperparams)}, jaxnn sets {sorted(values)}")
    return opt_state._replace(hyperparams={k: np.asarray(v, dtype) for k, v in values.items()})
