"""scikit-learn estimators: ``MLPRegressor`` and ``MLPClassifier`` with scikit-learn's numbers.

A drop-in for :mod:`sklearn.neural_network`'s MLPs -- the same parameters and defaults, the same
objective, initialisation, update rules (sgd with momentum/Nesterov and "invscaling"/"adaptive"
rates, scikit-learn's Adam, L-BFGS through SciPy), stopping rule, fitted attributes and error
messages -- trained by :func:`jaxnn.fit` (one compiled ``lax.scan`` over epochs of minibatches)
with hand-written backprop (``gradients="manual"``) or ``jax.grad`` (``"autodiff"``). Beyond
scikit-learn: ``fit(X, y, X_val=..., y_val=...)`` with ``validation_loss_curve_``,
``class_weight``, ``save``/``load``. What differs, and why: ``docs/how-to/sklearn.md``.

Modules, one job each: :mod:`._mlp` (the estimators: parameters, validation, fit),
:mod:`._stochastic` (a sgd/adam fit on the engine, with scikit-learn's records), :mod:`._network`
(hidden activations, output heads and losses, the host forward), :mod:`._optim` (scikit-learn's
SGD and Adam as optax transformations), :mod:`._lbfgs` (SciPy's L-BFGS-B on a jitted
value-and-grad), :mod:`._io` (save/load).
"""

from __future__ import annotations

from jaxnn.estimators._io import load_estimator, save_estimator
from jaxnn.estimators._mlp import MAX_STEPS, MLPClassifier, MLPRegressor
from jaxnn.estimators._network import HOST_ACTIVATIONS as _HOST_ACTIVATIONS
from jaxnn.estimators._network import host_forward as _forward
from jaxnn.estimators._stochastic import _chunk_epochs

__all__ = ["MAX_STEPS", "MLPClassifier", "MLPRegressor", "load_estimator", "save_estimator"]
__all__ += ["_HOST_ACTIVATIONS", "_chunk_epochs", "_forward"]  # for the tests
