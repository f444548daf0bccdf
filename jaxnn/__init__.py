"""jaxnn: neural-network foundations in JAX, with hand-written gradients proven right.

Public surface (see the docs site, ``make docs``, for a tour):

* :mod:`jaxnn.foundations` -- the seed's calculus lessons (functions, derivatives, chains).
* :mod:`jaxnn.gradients` -- the registry of every hand-written backward and its checker.
* :mod:`jaxnn.layers`, :mod:`jaxnn.losses`, :mod:`jaxnn.models` -- dense layers, losses and
  MLPs with hand-written backprop beside ``jax.grad``.
* :mod:`jaxnn.engine` -- ``jaxnn.fit(loss_fn, params, data, optimizer=...)``: any model, one
  jitted ``lax.scan`` over minibatches; :mod:`jaxnn.backward` -- ``jaxnn.with_backward``.
* :mod:`jaxnn.many` -- ``jaxnn.fit_many``: M models of any model in one compiled program
  (``jax.vmap`` of the engine's chunk); :mod:`jaxnn.sweep` -- the seed network's grid on it.
* :mod:`jaxnn.checking` -- ``jaxnn.check_vjp``: prove a hand-written backward.
* :mod:`jaxnn.accelerations` -- the switches of what runs faster than the plain core (each its own module).
* :mod:`jaxnn.training` -- the built-in models' string-configured runs (``TrainConfig``) on the engine.
Importing jaxnn changes nothing in the user's process (no XLA_FLAGS, no x64, no handlers) and does
not import JAX; the CLI and the benchmarks opt in to XLA:CPU's small-loop setting themselves.
* :mod:`jaxnn.datasets`, :mod:`jaxnn.metrics`, :mod:`jaxnn.experiment`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"


if TYPE_CHECKING:
    from jaxnn.backward import with_backward
    from jaxnn.checking import check_vjp
    from jaxnn.engine import FitResult, TrainState, fit
    from jaxnn.estimators import MLPClassifier, MLPRegressor
    from jaxnn.gradients import registry
    from jaxnn.many import ManyResult, PerModel, fit_many
    from jaxnn.search import GridSearchCV, RandomizedSearchCV
    from jaxnn.training import TrainConfig

__all__ = [
    "FitResult",
    "GridSearchCV",
    "MLPClassifier",
    "MLPRegressor",
    "ManyResult",
    "PerModel",
    "RandomizedSearchCV",
    "TrainConfig",
    "TrainState",
    "__version__",
    "check_vjp",
    "fit",
    "fit_many",
    "registry",
    "with_backward",
]

# Every public name is imported on first use, so `import jaxnn` does not import JAX: the CLI
# (jaxnn.cli.main) installs its Ctrl-C handler before anything registers JAX's callbacks.
_LAZY = {
    "with_backward": "jaxnn.backward",
    "registry": "jaxnn.gradients",
    "check_vjp": "jaxnn.checking",
    "fit": "jaxnn.engine",
    "FitResult": "jaxnn.engine",
    "TrainState": "jaxnn.engine",
    "TrainConfig": "jaxnn.training",
    "MLPRegressor": "jaxnn.estimators",
    "MLPClassifier": "jaxnn.estimators",
    "fit_many": "jaxnn.many",
    "GridSearchCV": "jaxnn.search",
    "RandomizedSearchCV": "jaxnn.search",
    "ManyResult": "jaxnn.many",
    "PerModel": "jaxnn.many",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jaxnn' has no attribute {name!r}")
