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
from typing import Any

__version__ = "0.1.0"

# before anything starts JAX's backend: let XLA:CPU compile small training loops as one
# function (see jaxnn.xla_cpu; opt out with JAXNN_NO_XLA_FLAGS=1)
from jaxnn import xla_cpu

xla_cpu.request_small_loops()

from jaxnn.backward import with_backward  # noqa: E402
from jaxnn.gradients import registry  # noqa: E402
from jaxnn.training import TrainConfig  # noqa: E402

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

# Names whose modules pull in scikit-learn's estimator machinery or vmap sweeps: imported on
# first use so `import jaxnn` stays light.
_LAZY = {
    "fit": "jaxnn.engine",
    "TrainState": "jaxnn.engine",
    "FitResult": "jaxnn.engine",
    "MLPRegressor": "jaxnn.estimators",
    "MLPClassifier": "jaxnn.estimators",
    "fit_many": "jaxnn.sweep",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jaxnn' has no attribute {name!r}")
