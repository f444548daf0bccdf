"""``MLPRegressor`` and ``MLPClassifier``: scikit-learn's MLPs, trained by :func:`jaxnn.fit`.

The objective, initialisation, update rules, stopping rule, fitted attributes and error messages
are scikit-learn's (``sklearn/neural_network/_multilayer_perceptron.py``); what differs is listed
in ``docs/how-to/sklearn.md``. The pieces live beside this module: the network's heads and
losses (:mod:`._network`), scikit-learn's SGD and Adam as optax transformations (:mod:`._optim`),
L-BFGS (:mod:`._lbfgs`), save/load (:mod:`._io`). A stochastic fit (sgd, adam) runs in :mod:`._stochastic`.
"""

from __future__ import annotations

import itertools
import math
import numbers
import sys
import warnings
from typing import Any

import jax
import numpy as np
import optax
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from jaxnn import engine, names, training
from jaxnn.errors import InputError
from jaxnn.estimators import _io, _lbfgs, _network, _optim
from jaxnn.estimators._stochastic import _NON_FINITE, _Optimizer, _Run

_SPARSE = ["csr", "csc", "coo"]
MAX_STEPS = engine.MAX_STEPS  # optimizer steps of one fit: the engine's step counter is int32


def _check_range(name: str, a: np.ndarray, dtype: np.dtype) -> None:
    """ValueError naming ``name`` when finite values of ``a`` overflow ``dtype``."""
    if a.size and np.max(np.abs(a)) > np.finfo(dtype).max:
        raise InputError(f"{name}: values exceed the range of {dtype.name}")


class _BaseMLP(BaseEstimator):
    """Shared machinery; see :class:`MLPRegressor` / :class:`MLPClassifier`."""

    _classifier = False

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # --- parameters ---------------------------------------------------------------------

    def _hidden(self) -> tuple[int, ...]:
        h = self.hidden_layer_sizes
        sizes = list(h) if hasattr(h, "__iter__") else [h]
        for s in sizes:
            names.positive_int("hidden_layer_sizes", s, what=f"expected positive integers in {h!r}")
        return tuple(int(s) for s in sizes)

    def _check_params(self) -> None:
        names.check("activation", self.activation, _network.ACTIVATIONS)
        names.check("solver", self.solver, ("lbfgs", "sgd", "adam"))
        names.check("learning_rate", self.learning_rate, ("constant", "invscaling", "adaptive"))
        if not self._classifier:
            names.check("loss", self.loss, ("squared_error", "poisson"))
        self._hidden()
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto") and (
                isinstance(self.batch_size, bool) or not isinstance(self.batch_size, numbers.Integral)
                or self.batch_size < 1):
            raise InputError(f"batch_size: expected 'auto' or a positive integer, got {self.batch_size!r}")
        # max_iter epochs of at least one step each; n_iter_no_change + 1 epochs of patience
        names.positive_int("max_iter", self.max_iter, limit=MAX_STEPS)
        if self.n_iter_no_change != np.inf:
            names.positive_int("n_iter_no_change", self.n_iter_no_change, limit=MAX_STEPS - 1,
                               what="expected a positive integer or np.inf")
        names.positive_int("max_fun", self.max_fun, limit=sys.maxsize)
        if not isinstance(self.verbose, bool | np.bool_) and (
                not isinstance(self.verbose, numbers.Integral) or self.verbose < 0):
            raise InputError(f"verbose: expected True, False or an integer >= 0, got {self.verbose!r}")
        for name in ("alpha", "tol", "power_t", "momentum", "beta_1", "beta_2"):
            names.finite_float(name, getattr(self, name))
        for name in ("learning_rate_init", "epsilon"):
            names.finite_float(name, getattr(self, name), positive=True)
        for name, top in (("momentum", "1]"), ("beta_1", "1)"), ("beta_2", "1)")):
            v = getattr(self, name)
            if v > 1 or (v == 1 and top == "1)"):
                raise InputError(f"{name}: expected a number in [0, {top}, got {v!r}")
        names.fraction("validation_fraction", self.validation_fraction)
        names.check("gradients", self.gradients, names.GRADIENTS)
        if self.dtype is not None:
            names.check("dtype", self.dtype, names.DTYPES)

    def _batch(self, n_samples: int) -> int:
        return min(200, n_samples) if self.batch_size == "auto" else min(int(self.batch_size), n_samples)

    def _hyperparams(self, opt_state: Any, lr: float, dtype: Any) -> Any:
        if self.solver == "sgd":
            values = {"learning_rate": lr, "momentum": float(self.momentum)}
        else:
            values = {"learning_rate": lr, "beta_1": float(self.beta_1), "beta_2": float(self.beta_2),
                      "epsilon": float(self.epsilon)}
        return _optim.with_hyperparams(opt_state, values, dtype)

    def _make_optimizer(self) -> optax.GradientTransformation:
        return _optim.optimizer(self.solver, bool(self.nesterovs_momentum) if self.solver == "sgd" else True)

    def save(self, path: Any) -> None:
        """Save the fitted estimator to ``path`` (``.npz``); see :func:`jaxnn.estimators.save_estimator`."""
        _io.save_estimator(self, path)

    @staticmethod
    def load(path: Any) -> _BaseMLP:
        """Load an estimator saved with :meth:`save`; see :func:`jaxnn.estimators.load_estimator`."""
        return _io.load_estimator(path)

    # --- training -----------------------------------------------------------------------

    def _validate(self, X: Any, y: Any, *, incremental: bool, reset: bool, name: str = "X"
                  ) -> tuple[Any, np.ndarray, Any]:
        """(X, Y (n, k) float targets, labels for the stratified split and class weights)."""
        raise NotImplementedError

    def _out_activation(self) -> str:
        raise NotImplementedError

    def _score_kind(self) -> str:
        return "regression"

    def _initialize(self, n_outputs: int, sizes: tuple[int, ...], dtype: np.dtype,
                    rng: np.random.RandomState) -> None:
        """scikit-learn's ``_initialize``: attributes, then per layer ``W`` then ``b`` drawn uniform in
        ``+-sqrt(f / (fan_in + fan_out))`` (``f`` = 2 for "logistic", else 6), draw for draw."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._out_activation()
        factor = 2.0 if self.activation in ("logistic", "sigmoid") else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = math.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
        for name in ("_opt_state", "_optimizer", "loss_curve_", "validation_loss_curve_"):
            self.__dict__.pop(name, None)
        if self.solver != "lbfgs":
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_: list[float] | None = []
                self.best_validation_score_: float | None = -math.inf
                self.best_loss_: float | None = None
            else:
                self.best_loss_, self.validation_scores_, self.best_validation_score_ = math.inf, None, None

    def _fit(self, X: Any, y: Any, *, incremental: bool, sample_weight: Any = None, X_val: Any = None,
             y_val: Any = None, sample_weight_val: Any = None) -> _BaseMLP:
        if not incremental and sample_weight is None and X_val is None:
            from jaxnn import search

            kept = search.prefitted(self, X, y)  # this fit, trained with its group by a jaxnn search
            if kept is not None:
                self.__dict__.update(kept)
                if not all(np.isfinite(a).all() for a in (*self.coefs_, *self.intercepts_)):
                    raise InputError(_NON_FINITE)
                return self
        self._check_params()
        hidden = self._hidden()
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, Y, labels = self._validate(X, y, incremental=incremental, reset=first)
        if scipy.sparse.issparse(X):
            X = X.toarray()
        dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
        w = (np.ones(X.shape[0]) if sample_weight is None else
             _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True))
        w = w * self._class_weights(labels)
        weighted = sample_weight is not None or getattr(self, "class_weight", None) is not None
        rng = check_random_state(self.random_state)
        sizes = (X.shape[1], *hidden, Y.shape[1])
        if first:
            self._initialize(Y.shape[1], sizes, dtype, rng)
        else:
            fitted = tuple(W.shape[1] for W in self.coefs_[:-1])
            if fitted != hidden:
                raise InputError(f"hidden_layer_sizes: {hidden} differs from the fitted layers {fitted}; "
                                 "set warm_start=False to train new layers")
            if self.solver != "lbfgs" and not hasattr(self, "loss_curve_"):  # after an lbfgs fit
                self.loss_curve_, self._no_improvement_count = [], 0
                self.best_loss_, self.validation_scores_, self.best_validation_score_ = math.inf, None, None
        for name, a in (("X", X), ("y", Y)):
            _check_range(name, a, dtype)
        if self.solver == "lbfgs":
            self._fit_lbfgs(X.astype(dtype), Y, w, dtype)
        else:
            val = None
            if X_val is not None:
                Xv, Yv, _ = self._validate(X_val, y_val, incremental=True, reset=False, name="X_val")
                if scipy.sparse.issparse(Xv):
                    Xv = Xv.toarray()
                wv = (np.ones(Xv.shape[0]) if sample_weight_val is None else
                      _check_sample_weight(sample_weight_val, Xv, dtype=np.float64, ensure_non_negative=True))
                val = (Xv, Yv, wv)
            self._fit_stochastic(X, Y, w, labels, rng, dtype, incremental=incremental, weighted=weighted,
                                 user_val=val)
        if not all(np.isfinite(a).all() for a in (*self.coefs_, *self.intercepts_)):
            raise InputError(_NON_FINITE)
        return self

    def _class_weights(self, labels: Any) -> Any:
        return 1.0

    def _fit_lbfgs(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray, dtype: np.dtype) -> None:
        total = _network.total_loss(self.activation, self.out_activation_, self.gradients)
        with training.x64_context(dtype.name):
            coefs, intercepts, n_iter, loss = _lbfgs.fit_lbfgs(
                total, [np.asarray(W, dtype) for W in self.coefs_],
                [np.asarray(b, dtype) for b in self.intercepts_],
                X, Y.astype(dtype), w.astype(dtype), alpha=float(self.alpha), max_iter=int(self.max_iter),
                max_fun=int(self.max_fun), tol=float(self.tol), dtype=dtype)
        self.coefs_, self.intercepts_, self.n_iter_, self.loss_ = coefs, intercepts, n_iter, loss

    def _stop_message(self, early: bool) -> str:
        what = "Validation score" if early else "Training loss"
        return (f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                "consecutive epochs.")

    def _fit_stochastic(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray, labels: Any,
                        rng: np.random.RandomState, dtype: np.dtype, *, incremental: bool, weighted: bool,
                        user_val: Any) -> None:
        if self.early_stopping and incremental:
            raise InputError("partial_fit does not support early_stopping=True")
        early = bool(self.early_stopping)
        val = user_val
        if early and val is None:  # scikit-learn's split, from its random state after the initial draws
            stratify = labels if self._classifier and self.n_outputs_ == 1 else None
            X, Xv, Y, Yv, w, wv = train_test_split(X, Y, w, random_state=rng,
                                                   test_size=self.validation_fraction, stratify=stratify)
            if Xv.shape[0] < 2:
                raise InputError("The validation set is too small. Increase 'validation_fraction' or the "
                                 "size of your dataset.")
            val = (Xv, Yv, wv)
        if val is not None:
            for part, weights in (("training", w), ("validation", val[2])):
                if not np.any(weights > 0):
                    raise InputError(f"sample_weight: the weights of the {part} split are all zero; "
                                     "use another random_state or validation_fraction")
        if not early and user_val is None:
            self.validation_scores_, self.best_validation_score_ = None, None
        elif self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -math.inf
        if early:
            self.best_loss_ = None
        elif self.best_loss_ is None:
            self.best_loss_ = math.inf
        seed = int(rng.randint(np.iinfo(np.int32).max))
        n = X.shape[0]
        B = self._batch(n)
        if self.batch_size != "auto" and self.batch_size > n:  # scikit-learn's warning
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                          "clipped", stacklevel=4)
        spe = engine.steps_per_epoch(n, B)
        epochs = 1 if incremental else int(self.max_iter)
        if epochs * spe > MAX_STEPS:
            raise InputError(f"max_iter: {epochs} epochs of {spe} minibatches are {epochs * spe} steps, "
                             f"above the limit of {MAX_STEPS}")
        optimizer = self._make_optimizer()
        if not incremental or not hasattr(self, "_optimizer"):  # scikit-learn's new optimizer per fit
            self._optimizer = _Optimizer(float(self.learning_rate_init))
            opt_state = None
        else:
            opt_state = getattr(self, "_opt_state", None)
        params = [{"W": np.asarray(W, dtype), "b": np.asarray(b, dtype)}
                  for W, b in zip(self.coefs_, self.intercepts_, strict=True)]
        fitted_tree: Any = jax.tree_util.tree_structure(opt_state)
        if opt_state is not None and fitted_tree != jax.tree_util.tree_structure(
                engine.opt_state_shapes(optimizer, params)):
            raise InputError(f"solver: the fitted optimizer state is not one of solver={self.solver!r}; the "
                             "solver changed since the last fit and partial_fit continues the optimizer "
                             "state. Set the previous solver back, or call fit to start afresh")
        kind = self._score_kind()
        run = _Run(self, X, Y, w, val, params, opt_state, seed, dtype, epochs=epochs, early=early,
                   kind=kind, incremental=incremental, user_val=user_val is not None)
        # the host applies the rule between epochs when the device's rule would not be scikit-learn's
        host = (self.solver == "sgd" and self.learning_rate != "constant") or (weighted and spe > 1) \
            or user_val is not None or (early and self.n_iter_no_change == np.inf)
        with training.x64_context(dtype.name):
            run.host_loop() if host else run.device()
        run.finish()


def _init_params(self: Any, hidden_layer_sizes: Any, activation: str, kw: dict[str, Any]) -> None:
    self.hidden_layer_sizes = hidden_layer_sizes
    self.activation = activation
    for k, v in kw.items():
        setattr(self, k, v)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: squared error or Poisson loss, scikit-learn's API and numbers.

    Parameters as scikit-learn's (see ``docs/how-to/sklearn.md`` for what differs), plus:

    * ``gradients``: "manual" (hand-written backprop, the default) or "autodiff" (``jax.grad``);
    * ``dtype``: None (the default: the weights' dtype follows ``X``, float32 or float64, as
      scikit-learn's), or "float32"/"float64" to train in that dtype whatever ``X`` is.

    Fitted attributes as scikit-learn's: ``coefs_``, ``intercepts_``, ``loss_``, ``n_iter_``,
    ``t_``, ``n_features_in_``, ``n_layers_``, ``n_outputs_``, ``out_activation_`` ("identity",
    "exp" for Poisson); stochastic solvers: ``loss_curve_``, ``best_loss_``,
    ``validation_scores_``, ``best_validation_score_``; and ``validation_loss_curve_`` with a
    validation set passed to ``fit``.
    """

    def __init__(self, loss: str = "squared_error", hidden_layer_sizes: Any = (100,),
                 activation: str = "relu", *, solver: str = "adam", alpha: float = 0.0001,
                 batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float = 1e-4, verbose: bool = False,
                 warm_start: bool = False, momentum: float = 0.9, nesterovs_momentum: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: Any = 10,
                 max_fun: int = 15000, gradients: str = "manual", dtype: str | None = None) -> None:
        self.loss = loss
        _init_params(self, hidden_layer_sizes, activation, dict(
            solver=solver, alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter, shuffle=shuffle,
            random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, max_fun=max_fun, gradients=gradients, dtype=dtype))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _validate(self, X: Any, y: Any, *, incremental: bool, reset: bool, name: str = "X"
                  ) -> tuple[Any, np.ndarray, Any]:
        X, y = validate_data(self, X, y, accept_sparse=_SPARSE, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise InputError("y: loss='poisson' needs non-negative targets")
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if not reset and hasattr(self, "n_outputs_") and Y.shape[1] != self.n_outputs_:
            raise InputError(f"y: expected {self.n_outputs_} outputs as in the first fit, got {Y.shape[1]}")
        return X, Y, None

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, X_val: Any = None, y_val: Any = None,
            sample_weight_val: Any = None) -> MLPRegressor:
        """Train on X (n, n_features) and y (n,) or (n, n_outputs); returns self.

        ``X_val``, ``y_val`` (optional ``sample_weight_val``): a validation set of the user's
        (scikit-learn draws ``validation_fraction`` of the data): its R^2 after every epoch is in
        ``validation_scores_`` and its loss in ``validation_loss_curve_``; with
        ``early_stopping=True`` training stops on it and keeps the best weights.
        """
        if (X_val is None) != (y_val is None):
            raise InputError("X_val, y_val: give both or neither")
        return self._fit(X, y, incremental=False, sample_weight=sample_weight, X_val=X_val, y_val=y_val,
                         sample_weight_val=sample_weight_val)  # type: ignore[return-value]

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y), optionally sample-weighted, continuing the weights and the optimizer."""
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)  # type: ignore[return-value]

    def _check_solver(self) -> bool:
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is "
                                 "not stochastic.")
        return True

    def predict(self, X: Any) -> np.ndarray:
        """Predictions: (n,) for one output, else (n, n_outputs), in the weights' (and X's) dtype."""
        out = _raw_output(self, X)
        return out.ravel() if out.shape[1] == 1 else out


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: binary, multiclass and multilabel, scikit-learn's API and numbers.

    Parameters as scikit-learn's (see ``docs/how-to/sklearn.md`` for what differs), plus:

    * ``gradients``: "manual" (hand-written backprop, the default) or "autodiff" (``jax.grad``);
    * ``dtype``: None (the default: the weights' dtype follows ``X``, float32 or float64, as
      scikit-learn's), or "float32"/"float64" to train in that dtype whatever ``X`` is.
    * ``class_weight``: None, "balanced" or {label: weight}, scikit-learn's meaning (each
      sample's weight multiplied by its class's weight); 1-D ``y`` only.

    Binary problems have one logistic output unit and multilabel ones one per label (as
    scikit-learn); multiclass a softmax. Fitted attributes as :class:`MLPRegressor` plus
    ``classes_``; ``validation_scores_`` hold accuracies.
    """

    _classifier = True

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
                 alpha: float = 0.0001, batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float = 1e-4, verbose: bool = False,
                 warm_start: bool = False, momentum: float = 0.9, nesterovs_momentum: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: Any = 10,
                 max_fun: int = 15000, class_weight: Any = None, gradients: str = "manual",
                 dtype: str | None = None) -> None:
        _init_params(self, hidden_layer_sizes, activation, dict(
            solver=solver, alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter, shuffle=shuffle,
            random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, max_fun=max_fun, class_weight=class_weight,
            gradients=gradients, dtype=dtype))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    _check_solver = MLPRegressor._check_solver

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _score_kind(self) -> str:
        if self._label_binarizer.y_type_ == "multiclass":
            return "multiclass"
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return "multilabel"
        return "single" if len(self.classes_) == 1 else "binary"

    def _validate(self, X: Any, y: Any, *, incremental: bool, reset: bool, name: str = "X"
                  ) -> tuple[Any, np.ndarray, Any]:
        """scikit-learn's ``_validate_input``: y through the label binarizer, (n, k) 0/1 targets."""
        X, y = validate_data(self, X, y, accept_sparse=_SPARSE, multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)  # names the target type ("continuous", ...), not its values
        if name == "X_val":
            pass
        elif not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise InputError("warm_start can only be used where `y` has the same classes as in "
                                     "the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise InputError("`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        Y = self._label_binarizer.transform(y).astype(bool)
        return X, Y.astype(np.float64), (Y if Y.shape[1] == 1 else y)

    def _class_weights(self, labels: Any) -> Any:
        if self.class_weight is None:
            return 1.0
        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise InputError("class_weight: not supported with multilabel y")
        y = labels if labels.ndim == 1 else self.classes_[np.asarray(labels[:, 0], int)] \
            if len(self.classes_) > 1 else np.repeat(self.classes_, len(labels))
        return compute_sample_weight(self.class_weight, y)

    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, X_val: Any = None, y_val: Any = None,
            sample_weight_val: Any = None) -> MLPClassifier:
        """Train on X (n, n_features) and y: (n,) labels or an (n, n_labels) indicator matrix.

        ``X_val``, ``y_val`` (optional ``sample_weight_val``): a validation set of the user's: its
        accuracy after every epoch is in ``validation_scores_`` and its loss in
        ``validation_loss_curve_``; with ``early_stopping=True`` training stops on it.
        """
        if (X_val is None) != (y_val is None):
            raise InputError("X_val, y_val: give both or neither")
        return self._fit(X, y, incremental=False, sample_weight=sample_weight, X_val=X_val, y_val=y_val,
                         sample_weight_val=sample_weight_val)  # type: ignore[return-value]

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing the weights and optimizer (``classes`` on the first call)."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)  # type: ignore[return-value]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities (n, n_classes) in the order of ``classes_`` (binary: [1 - p, p])."""
        out = _raw_output(self, X)
        if out.shape[1] == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """Labels (n,), or an (n, n_labels) indicator matrix for multilabel y."""
        out = _raw_output(self, X)
        return self._label_binarizer.inverse_transform(out.ravel() if out.shape[1] == 1 else out)


def _raw_output(est: _BaseMLP, X: Any) -> np.ndarray:
    """The network's output activation (n, n_outputs_), computed in float64 on the host (compiling
    nothing) and returned in the dtype scikit-learn's would have: that of ``X`` and the weights."""
    check_is_fitted(est)
    X = validate_data(est, X, accept_sparse=_SPARSE, reset=False, dtype=(np.float64, np.float32))
    if scipy.sparse.issparse(X):
        X = X.toarray()
    z = _network.host_forward(est.coefs_, est.intercepts_, X, est.activation)
    with np.errstate(over="ignore"):
        out = _network.HOST_OUTPUTS[est.out_activation_](z)
    return out.astype(np.result_type(X.dtype, est.coefs_[0].dtype), copy=False)
