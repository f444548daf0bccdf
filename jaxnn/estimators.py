"""scikit-learn estimators: ``MLPRegressor`` and ``MLPClassifier`` trained by jaxnn's compiled scan.

Drop-in for :mod:`sklearn.neural_network`'s MLPs: the same parameter names and
defaults where jaxnn has the feature, the same fitted attributes (``coefs_``,
``intercepts_``, ``loss_curve_``, ``n_iter_``, ``classes_``, ...), ``partial_fit``
and ``predict_proba``, and they pass ``sklearn.utils.estimator_checks`` with their
defaults. Training is :func:`jaxnn.training.fit` -- one jitted ``lax.scan`` over
epochs of minibatches -- with hand-written backprop (``gradients="manual"``) or
``jax.grad`` (``"autodiff"``).

The objective is scikit-learn's, term for term: squared loss ``0.5 * mean((y - p)^2)``
(regression) or log-loss (classification), plus ``0.5 * alpha * sum ||W||^2 /
batch_size``; ``loss_curve_`` reports it per epoch as scikit-learn does
(sample-weighted mean of the minibatch losses). jaxnn's "mean" squared error is
twice scikit-learn's squared loss, so the regressor trains on 2x the objective with
``l2 = 2 alpha / batch_size`` (and half the step size for ``solver="sgd"``, giving
the same updates; Adam does not see the factor).

Differences from scikit-learn, by design or not (yet) supported:

* ``activation``: "relu", "tanh", "logistic" (also spelled "sigmoid"), and jaxnn's
  "leaky_relu" (slope 0.2). "identity" raises ``ValueError``.
* ``solver``: "adam" and "sgd" (momentum / Nesterov as scikit-learn's). "lbfgs"
  raises ``ValueError``.
* ``learning_rate``: "constant". "invscaling"/"adaptive" (used only by "sgd", as
  in scikit-learn) raise ``ValueError`` with ``solver="sgd"``; ignored with "adam".
* no ``power_t``, ``beta_1``, ``beta_2``, ``epsilon`` (Adam uses optax's 0.9, 0.999,
  1e-8 -- scikit-learn's defaults), ``max_fun``, ``sample_weight``; sparse ``X`` is
  densified.
* the classifier always has a softmax output, two units for binary problems
  (scikit-learn: one logistic unit), so ``coefs_[-1]`` is (h, 2) there and
  ``out_activation_ == "softmax"``. Multilabel ``y`` (2-D) raises ``ValueError``.
* the last minibatch of an epoch is padded to the full batch size with weight-0
  rows (one compiled shape); its loss is the mean over its real rows, but its L2
  term is divided by ``batch_size``, not by its real row count.
* ``early_stopping=True`` monitors the *validation loss* on the
  ``validation_fraction`` split (scikit-learn monitors the validation accuracy /
  R^2) and keeps the best parameters; ``validation_loss_curve_`` is that loss per
  epoch. Without early stopping, training stops after ``n_iter_no_change + 1``
  epochs whose mean training loss did not improve by ``tol``, as in scikit-learn.
* predictions are computed in NumPy float64 from ``coefs_``/``intercepts_``, so
  they do not depend on how the rows are batched, and predicting compiles nothing.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from scipy.special import expit, log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from jaxnn import training
from jaxnn.progress import ProgressBar

# scikit-learn's names -> jaxnn's hidden activations
_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid", "sigmoid": "sigmoid",
                "leaky_relu": "leaky_relu"}
_LEAKY_SLOPE = 0.2  # jaxnn.foundations.leaky_relu's
_SPARSE = ["csr", "csc", "coo"]


def _forward(coefs: list[np.ndarray], intercepts: list[np.ndarray], X: np.ndarray,
             activation: str) -> np.ndarray:
    """Network output (n, k) in float64: the forward of :func:`jaxnn.models.predict`, in NumPy."""
    h = np.asarray(X, dtype=np.float64)
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        h = h @ W.astype(np.float64) + b.astype(np.float64)
        if i < len(coefs) - 1:
            if activation == "relu":
                h = np.maximum(h, 0.0)
            elif activation == "tanh":
                h = np.tanh(h)
            elif activation == "sigmoid":
                h = expit(h)
            else:
                h = np.where(h >= 0, h, _LEAKY_SLOPE * h)
    return h


class _BaseMLP(BaseEstimator):
    """Shared machinery; see :class:`MLPRegressor` / :class:`MLPClassifier`."""

    _loss_name = "mse"
    # scikit-learn objective = _scale * jaxnn objective (see the module docstring)
    _scale = 1.0

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        gradients: str = "manual",
        dtype: str = "float32",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.gradients = gradients
        self.dtype = dtype

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # --- parameters -> TrainConfig ------------------------------------------------------

    def _hidden(self) -> tuple[int, ...]:
        h = self.hidden_layer_sizes
        sizes = list(h) if hasattr(h, "__iter__") else [h]
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ValueError(f"hidden_layer_sizes: expected positive integers, got {h!r}")
        return tuple(int(s) for s in sizes)

    def _check_params(self) -> None:
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
                             + (" (jaxnn has no identity activation)" if self.activation == "identity"
                                else ""))
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"solver: expected 'adam' or 'sgd', got {self.solver!r}"
                             + (" (jaxnn trains by minibatch scans; lbfgs is not supported)"
                                if self.solver == "lbfgs" else ""))
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise ValueError(f"learning_rate: expected 'constant', 'invscaling' or 'adaptive', "
                             f"got {self.learning_rate!r}")
        if self.solver == "sgd" and self.learning_rate != "constant":
            raise ValueError(f"learning_rate: only 'constant' is supported with solver='sgd', "
                             f"got {self.learning_rate!r}")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto") and (
                isinstance(self.batch_size, bool) or not isinstance(self.batch_size, numbers.Integral)
                or self.batch_size < 1):
            raise ValueError(f"batch_size: expected 'auto' or a positive integer, got {self.batch_size!r}")
        for name in ("max_iter", "n_iter_no_change"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= int(v) <= _MAX_ITER:
                raise ValueError(f"{name}: expected an integer in [1, {_MAX_ITER}], got {v!r}")
        for name, positive in (("alpha", False), ("learning_rate_init", True), ("tol", False),
                               ("momentum", False)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name}: expected a number, got {type(v).__name__}")
            if not math.isfinite(v) or v < 0 or (positive and v == 0):
                raise ValueError(f"{name}: expected a finite number {'> 0' if positive else '>= 0'}, "
                                 f"got {v!r}")
        if self.momentum > 1:
            raise ValueError(f"momentum: expected a number in [0, 1], got {self.momentum!r}")
        if self.early_stopping and not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction: expected a number in (0, 1), "
                             f"got {self.validation_fraction!r}")
        if self.gradients not in ("manual", "autodiff"):
            raise ValueError(f"gradients: expected 'manual' or 'autodiff', got {self.gradients!r}")
        if self.dtype not in training.DTYPES:
            raise ValueError(f"dtype: expected one of {list(training.DTYPES)}, got {self.dtype!r}")

    def _config(self, n_samples: int, *, epochs: int, seed: int, monitor: bool) -> training.TrainConfig:
        """The :class:`~jaxnn.training.TrainConfig` of scikit-learn's objective on ``n_samples`` rows."""
        B = min(200, n_samples) if self.batch_size == "auto" else min(int(self.batch_size), n_samples)
        lr = float(self.learning_rate_init)
        if self.solver == "sgd":
            optimizer = ("sgd" if self.momentum == 0 else
                         "nesterov" if self.nesterovs_momentum else "momentum")
            lr *= self._scale  # same updates as scikit-learn's on the 1/scale-times objective
        else:
            optimizer = "adam"
        return training.TrainConfig(
            hidden=self._hidden(), activation=_ACTIVATIONS[self.activation], loss=self._loss_name,
            reduction="mean", optimizer=optimizer, lr=lr, momentum=float(self.momentum),
            l2=float(self.alpha) / (B * self._scale), batch_size=B, epochs=epochs,
            gradients=self.gradients, dtype=self.dtype, seed=seed, init="glorot",
            shuffle=bool(self.shuffle),
            # scikit-learn stops once more than n_iter_no_change epochs did not improve
            patience=self.n_iter_no_change + 1 if monitor else None,
            tol=float(self.tol) / self._scale,
        )

    # --- training -----------------------------------------------------------------------

    def _targets(self, y: np.ndarray, *, first: bool, classes: Any = None) -> np.ndarray:
        """(n, k) float targets; subclasses set ``classes_``/``n_outputs_`` when ``first``."""
        raise NotImplementedError

    def _validate(self, X: Any, y: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _resume_state(self, config: training.TrainConfig, n_features: int, n_train: int
                      ) -> training.TrainState:
        """The stored parameters and optimizer state, with the run counters reset.

        Every continuation shuffles with ``fold_in(key, n_iter_)`` so it does not
        repeat the permutations of the previous call.
        """
        with training.x64_context(config.dtype):
            dt = jnp.dtype(config.dtype)
            params = [{"W": jnp.asarray(W, dt), "b": jnp.asarray(b, dt)}
                      for W, b in zip(self.coefs_, self.intercepts_, strict=True)]
            opt_state = jax.tree_util.tree_map(jnp.asarray, self._opt_state)
            key = jax.random.fold_in(jax.random.wrap_key_data(jnp.asarray(self._key_data)), self.n_iter_)
            fresh = training.init_state(config, n_features, len(self.intercepts_[-1]), n_train)
            return fresh._replace(params=params, opt_state=opt_state, key=key,
                                  best_params=None if fresh.best_params is None else params)

    def save(self, path: Any) -> None:
        """Save the fitted estimator to ``path`` (``.npz``); see :func:`save_estimator`."""
        save_estimator(self, path)

    @staticmethod
    def load(path: Any) -> _BaseMLP:
        """Load an estimator saved with :meth:`save`; see :func:`load_estimator`."""
        return load_estimator(path)

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> _BaseMLP:
        self._check_params()
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate(X, y, reset=first)
        if scipy.sparse.issparse(X):
            X = X.toarray()
        Y = self._targets(y, first=first, classes=classes)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        early = self.early_stopping and not incremental
        X_val = Y_val = None
        if early:
            stratify = y if self._loss_name == "cross_entropy" else None
            X, X_val, Y, Y_val = train_test_split(X, Y, random_state=rng, test_size=self.validation_fraction,
                                                  stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError("validation_fraction: the validation set is too small; increase "
                                 "'validation_fraction' or the size of your dataset")
        n = X.shape[0]
        epochs = 1 if incremental else int(self.max_iter)
        config = self._config(n, epochs=epochs, seed=seed, monitor=not incremental)
        state = None if first else self._resume_state(config, X.shape[1], n)
        if first:
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_: list[float] = []
            self.best_loss_: float | None = math.inf
            self.validation_loss_curve_: list[float] | None = [] if early else None
        spe = training.steps_per_epoch(n, config.batch_size)
        with ProgressBar(epochs * spe, enable=None if self.verbose else False,
                         desc=type(self).__name__) as bar:
            result = training.fit(config, X, Y, X_val=X_val, Y_val=Y_val, state=state, callback=bar.update)

        # scikit-learn keeps the last parameters unless it early-stops on validation
        params = result.params if early else result.state.params
        params = jax.device_get(params)
        self.coefs_ = [np.asarray(p["W"]) for p in params]
        self.intercepts_ = [np.asarray(p["b"]) for p in params]
        self._opt_state = jax.device_get(result.state.opt_state)
        if first:
            self._key_data = np.asarray(jax.random.key_data(result.state.key))
        self.n_layers_ = len(self.coefs_) + 1
        self.n_outputs_ = Y.shape[1]
        self.out_activation_ = "softmax" if self._loss_name == "cross_entropy" else "identity"

        curve = self._epoch_losses(result.history.train_loss, n, config.batch_size)
        self.loss_curve_ = [*self.loss_curve_, *curve]
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else math.nan
        self.n_iter_ += len(curve)
        self.t_ += len(curve) * n
        if early:
            self.validation_loss_curve_ = [
                *(self.validation_loss_curve_ or []),
                *(self._scale * float(v) for v in result.history.val_loss)]
            self.best_loss_ = None  # as scikit-learn with early_stopping
        else:
            self.validation_loss_curve_ = None
            self.best_loss_ = min([self.best_loss_ if self.best_loss_ is not None else math.inf, *curve])
        if not incremental and not result.stopped_early and len(curve) == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _epoch_losses(self, step_losses: np.ndarray, n: int, B: int) -> list[float]:
        """scikit-learn's per-epoch loss: minibatch losses weighted by their real row counts / n."""
        spe = training.steps_per_epoch(n, B)
        sizes = np.full(spe, B, dtype=np.float64)
        sizes[-1] = n - (spe - 1) * B
        full = len(step_losses) // spe
        per_epoch = np.asarray(step_losses[: full * spe], np.float64).reshape(full, spe) @ sizes / n
        return [self._scale * float(v) for v in per_epoch]

    def fit(self, X: Any, y: Any) -> _BaseMLP:
        """Train on X (n_samples, n_features) and y; returns self.

        Regressor: y (n,) or (n, n_outputs). Classifier: y (n,) class labels.
        """
        return self._fit(X, y, incremental=False)

    # --- prediction ---------------------------------------------------------------------

    def _raw(self, X: Any) -> np.ndarray:
        """Network outputs (n, n_outputs_) in float64 for validated X."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=_SPARSE, reset=False, dtype=(np.float64, np.float32))
        if scipy.sparse.issparse(X):
            X = X.toarray()
        return _forward(self.coefs_, self.intercepts_, X, _ACTIVATIONS[self.activation])


# --- save / load (jaxnn.checkpoint's validated, pickle-free .npz format) ---------------------

#: Epoch counts are int32 on the device, times the steps per epoch: a million epochs is the most.
_MAX_ITER = 1_000_000

_FITTED_SCALARS = ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_",
                   "loss_", "best_loss_")


def save_estimator(est: _BaseMLP, path: Any) -> None:
    """Save a fitted estimator: weights, optimizer state, shuffle key, fitted attributes and parameters.

    Written atomically as ``.npz`` + JSON metadata by :func:`jaxnn.checkpoint.save_arrays`; loading
    never unpickles. ``load_estimator(path)`` gives back an estimator that predicts identically and
    whose ``partial_fit`` continues exactly where this one stopped.
    """
    from jaxnn import checkpoint

    check_is_fitted(est, "coefs_")
    arrays: dict[str, Any] = {}
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        arrays[f"coefs/{i}"], arrays[f"intercepts/{i}"] = np.asarray(W), np.asarray(b)
    for i, leaf in enumerate(jax.tree_util.tree_leaves(est._opt_state)):
        arrays[f"opt_state/{i}"] = np.asarray(leaf)
    arrays["key_data"] = np.asarray(est._key_data)
    arrays["loss_curve"] = np.asarray(est.loss_curve_, dtype=np.float64)
    if est.validation_loss_curve_ is not None:
        arrays["validation_loss_curve"] = np.asarray(est.validation_loss_curve_, dtype=np.float64)
    meta: dict[str, Any] = {
        "class": type(est).__name__,
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in est.get_params().items()
                   if k != "random_state" or v is None or isinstance(v, int)},
        "fitted": {k: getattr(est, k) for k in _FITTED_SCALARS
                   if getattr(est, k, None) is not None and not (isinstance(getattr(est, k), float)
                                                                and not math.isfinite(getattr(est, k)))},
    }
    if hasattr(est, "classes_"):  # labels may be ints or strings: kept in the JSON, not as arrays
        classes_ = np.asarray(est.classes_)
        if classes_.dtype.kind not in "biufU":
            raise TypeError(f"classes_: cannot save labels of dtype {classes_.dtype}")
        meta["classes"] = {"values": classes_.tolist(), "dtype": classes_.dtype.str}
    checkpoint.save_arrays(path, arrays, meta, kind="estimator")


def load_estimator(path: Any) -> _BaseMLP:
    """Load an estimator written by :func:`save_estimator` (validated; ``ValueError`` if tampered)."""
    from jaxnn import checkpoint

    arrays, meta = checkpoint.load_arrays(path, kind="estimator")
    classes = {"MLPRegressor": MLPRegressor, "MLPClassifier": MLPClassifier}
    name = meta.get("class")
    if name not in classes or not isinstance(meta.get("params"), dict):
        raise ValueError(f"{path}: not a jaxnn estimator file (class {name!r})")
    params = dict(meta["params"])
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        est = classes[name](**params)
        est._check_params()  # a tampered activation, solver, max_iter... is refused here
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad estimator parameters: {e}") from None
    n_layers = sum(1 for k in arrays if k.startswith("coefs/"))
    try:
        est.coefs_ = [arrays[f"coefs/{i}"] for i in range(n_layers)]
        est.intercepts_ = [arrays[f"intercepts/{i}"] for i in range(n_layers)]
        est._key_data = arrays["key_data"]
        est.loss_curve_ = arrays["loss_curve"].tolist()
    except KeyError as e:
        raise ValueError(f"{path}: missing array {e}") from None
    if n_layers < 1:
        raise ValueError(f"{path}: no layers")
    for i in range(n_layers):
        W, b = est.coefs_[i], est.intercepts_[i]
        if W.ndim != 2 or b.shape != (W.shape[1],) or (i and W.shape[0] != est.coefs_[i - 1].shape[1]):
            raise ValueError(f"{path}: layer {i} has inconsistent shapes {W.shape}, {b.shape}")
    if not all(np.isfinite(a).all() for a in (*est.coefs_, *est.intercepts_)):
        raise ValueError(f"{path}: the weights hold NaN or inf")
    est.validation_loss_curve_ = (arrays["validation_loss_curve"].tolist()
                                  if "validation_loss_curve" in arrays else None)
    for k, v in meta.get("fitted", {}).items():
        if k in _FITTED_SCALARS:
            setattr(est, k, v)
    if "classes" in meta:
        try:
            dtype = np.dtype(meta["classes"]["dtype"])
            if dtype.kind not in "biufU":
                raise ValueError(dtype)
            est.classes_ = np.asarray(meta["classes"]["values"], dtype=dtype)
        except (TypeError, ValueError, KeyError):
            raise ValueError(f"{path}: invalid classes in the metadata") from None
    if getattr(est, "n_features_in_", None) != est.coefs_[0].shape[0]:
        raise ValueError(f"{path}: n_features_in_ is {getattr(est, 'n_features_in_', None)!r}, the first "
                         f"layer takes {est.coefs_[0].shape[0]}")
    if isinstance(est, MLPClassifier):
        k = est.coefs_[-1].shape[1]
        labels = getattr(est, "classes_", None)
        if labels is None or labels.ndim != 1 or len(labels) < 2 or len(np.unique(labels)) != len(labels) \
                or not np.array_equal(np.sort(labels), labels) or len(labels) != k:
            raise ValueError(f"{path}: a classifier needs its sorted, distinct class labels, one per output "
                             f"unit ({k}); the file has {None if labels is None else labels.tolist()}")
    elif "classes" in meta:
        raise ValueError(f"{path}: a regressor has no classes")
    # Rebuild the optimizer state's structure from the estimator's own optimizer, then fill it.
    dt = jnp.dtype(est.dtype)
    with training.x64_context(est.dtype):
        params_tree = [{"W": jnp.asarray(W, dt), "b": jnp.asarray(b, dt)}
                       for W, b in zip(est.coefs_, est.intercepts_, strict=True)]
        config = est._config(2, epochs=1, seed=0, monitor=False)
        template = training.make_optimizer(config, 1, 1).init(params_tree)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    saved = [arrays.get(f"opt_state/{i}") for i in range(len(leaves))]
    if any(a is None or a.shape != np.shape(t) for a, t in zip(saved, leaves, strict=True)) or \
            any(k.startswith("opt_state/") and int(k.split("/")[1]) >= len(leaves) for k in arrays):
        raise ValueError(f"{path}: the optimizer state does not match the estimator's optimizer")
    est._opt_state = jax.tree_util.tree_unflatten(treedef, saved)
    return est


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (squared loss), scikit-learn's API, jaxnn's training.

    Parameters as :class:`sklearn.neural_network.MLPRegressor` (see the module
    docstring for what differs), plus ``gradients`` ("manual": hand-written
    backprop, "autodiff": ``jax.grad``) and ``dtype`` ("float32"/"float64").

    Fitted attributes: ``coefs_`` (list of (fan_in, fan_out) arrays),
    ``intercepts_`` (list of (fan_out,)), ``loss_curve_`` (per-epoch training loss),
    ``validation_loss_curve_`` (per-epoch validation loss with ``early_stopping``,
    else None), ``best_loss_``, ``loss_``, ``n_iter_``, ``t_``, ``n_features_in_``,
    ``n_layers_``, ``n_outputs_``, ``out_activation_`` ("identity").

    Example:
        >>> from jaxnn.estimators import MLPRegressor
        >>> reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=50).fit(X, y)  # doctest: +SKIP
    """

    _loss_name = "mse"
    _scale = 0.5  # scikit-learn's squared loss is half jaxnn's mean squared error

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _validate(self, X: Any, y: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        return validate_data(self, X, y, accept_sparse=_SPARSE, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)

    def _targets(self, y: np.ndarray, *, first: bool, classes: Any = None) -> np.ndarray:
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if not first and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} outputs as in the first fit, got {Y.shape[1]}")
        return Y

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y), continuing from the current parameters and optimizer state."""
        self._fit(X, y, incremental=True)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions: (n,) for one output, else (n, n_outputs)."""
        out = self._raw(X)
        return out.ravel() if out.shape[1] == 1 else out


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier (softmax + log-loss), scikit-learn's API, jaxnn's training.

    Parameters as :class:`sklearn.neural_network.MLPClassifier` (see the module
    docstring for what differs), plus ``gradients`` and ``dtype``. Binary and
    multiclass; y must be 1-D labels (any sortable type).

    Fitted attributes as :class:`MLPRegressor` plus ``classes_`` (n_classes,);
    ``out_activation_`` is "softmax" (also for two classes).
    """

    _loss_name = "cross_entropy"
    _scale = 1.0

    def _validate(self, X: Any, y: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=_SPARSE, multi_output=False,
                             dtype=(np.float64, np.float32), reset=reset)
        check_classification_targets(y)
        return X, y

    def _targets(self, y: np.ndarray, *, first: bool, classes: Any = None) -> np.ndarray:
        if classes is None and first:
            self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"y: a classifier needs samples of at least 2 classes; got 1 class "
                             f"({self.classes_[0]!r})")
        idx = np.searchsorted(self.classes_, y)
        idx = np.minimum(idx, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(f"y: labels {np.unique(np.asarray(y)[unknown]).tolist()} are not in "
                             f"classes {self.classes_.tolist()}")
        return np.eye(len(self.classes_), dtype=np.float64)[idx]

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing from the current state.

        Args:
            X: (n, n_features).
            y: (n,) labels.
            classes: all labels, required on the first call (as in scikit-learn).
        """
        _check_partial_fit_first_call(self, classes)  # sets classes_ or checks them
        self._fit(X, y, incremental=True, classes=classes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, n_classes), columns in the order of ``classes_``."""
        z = self._raw(X)
        return np.exp(log_softmax(z, axis=1))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities (n, n_classes)."""
        return log_softmax(self._raw(X), axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """Labels (n,) from ``classes_``: the most probable class."""
        z = self._raw(X)  # first: NotFittedError before classes_ is read
        return self.classes_[np.argmax(z, axis=1)]
