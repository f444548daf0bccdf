"""jaxnn: neural-network foundations in JAX, with hand-written gradients proven right.

Public surface (see the README for a tour):

* :mod:`jaxnn.foundations` -- the seed's calculus lessons (functions, derivatives, chains).
* :mod:`jaxnn.gradients` -- the registry of every hand-written backward and its checker.
* :mod:`jaxnn.layers`, :mod:`jaxnn.losses`, :mod:`jaxnn.models` -- dense layers, losses and
  MLPs with hand-written backprop beside ``jax.grad``.
* :mod:`jaxnn.training` -- ``fit``: one jitted ``lax.scan`` over minibatches and epochs.
* :mod:`jaxnn.datasets`, :mod:`jaxnn.metrics`, :mod:`jaxnn.experiment`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# before anything starts JAX's backend: let XLA:CPU compile small training loops as one
# function (see jaxnn.xla_cpu; opt out with JAXNN_NO_XLA_FLAGS=1)
from jaxnn import xla_cpu

xla_cpu.request_small_loops()


if TYPE_CHECKING:
    from jaxnn.backward import with_backward
    from jaxnn.estimators import MLPClassifier, MLPRegressor
    from jaxnn.gradients import registry
    from jaxnn.sweep import fit_many
    from jaxnn.training import FitResult, TrainConfig, TrainState, fit

__all__ = [
    "FitResult",
    "MLPClassifier",
    "MLPRegressor",
    "TrainConfig",
    "TrainState",
    "__version__",
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
    "FitResult": "jaxnn.training",
    "TrainConfig": "jaxnn.training",
    "TrainState": "jaxnn.training",
    "fit": "jaxnn.training",
    "MLPRegressor": "jaxnn.estimators",
    "MLPClassifier": "jaxnn.estimators",
    "fit_many": "jaxnn.sweep",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jaxnn' has no attribute {name!r}")
