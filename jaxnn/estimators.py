"""scikit-learn estimators: ``MLPRegressor`` and ``MLPClassifier`` trained by :func:`jaxnn.fit`.

Drop-in for :mod:`sklearn.neural_network`'s MLPs: the same parameter names and
defaults where jaxnn has the feature, the same fitted attributes (``coefs_``,
``intercepts_``, ``loss_curve_``, ``n_iter_``, ``classes_``, ``validation_scores_``,
...), ``sample_weight`` in ``fit``/``partial_fit``, ``partial_fit`` and
``predict_proba``, ``verbose`` output, and they pass ``sklearn.utils.estimator_checks``
with their defaults. Training is :func:`jaxnn.fit` -- one jitted ``lax.scan`` over
epochs of minibatches -- with hand-written backprop (``gradients="manual"``) or
``jax.grad`` (``"autodiff"``).

The objective is scikit-learn's, term for term: per minibatch, the sample-weighted
mean of the squared loss ``0.5 * (y - p)^2`` (averaged over outputs; regression) or
of the log-loss (classification), plus ``0.5 * alpha * sum ||W||^2 / S`` where ``S``
is the minibatch's weight sum (its row count without ``sample_weight``).
``loss_curve_`` reports it per epoch as scikit-learn does (the minibatch losses
weighted by their row counts). jaxnn's "mean" squared error is twice scikit-learn's
squared loss, so the regressor trains on 2x the objective (and half the step size
for ``solver="sgd"``, giving the same updates; Adam does not see the factor).

Stopping follows scikit-learn: after every epoch the monitored value -- the epoch's
training loss, or with ``early_stopping=True`` the accuracy / R^2 on the
``validation_fraction`` split (``validation_scores_``) -- counts as "no change"
unless it beats the best so far by more than ``tol``; the best follows every strict
improvement (``best_loss_`` / ``best_validation_score_``), and training stops after
``n_iter_no_change + 1`` such epochs in a row. With early stopping the best
parameters are kept. ``warm_start`` carries the best value and that count over, as
scikit-learn does. ``verbose=True`` prints scikit-learn's lines on stdout
(``Iteration 1, loss = 0.69314718``, ``Validation score: 0.500000``, the stopping
message), one epoch at a time.

Differences from scikit-learn, by design or not (yet) supported:

* ``activation``: "relu", "tanh", "logistic" (also spelled "sigmoid"), and jaxnn's
  "leaky_relu" (slope 0.2). "identity" raises ``ValueError``.
* ``solver``: "adam" and "sgd" (momentum / Nesterov as scikit-learn's). "lbfgs"
  raises ``ValueError``.
* ``learning_rate``: "constant". "invscaling"/"adaptive" (used only by "sgd", as
  in scikit-learn) raise ``ValueError`` with ``solver="sgd"``; ignored with "adam".
* no ``power_t``, ``beta_1``, ``beta_2``, ``epsilon`` (Adam uses optax's 0.9, 0.999,
  1e-8 -- scikit-learn's defaults), ``max_fun``; sparse ``X`` is densified.
* ``sample_weight`` must be non-negative (scikit-learn accepts negative weights).
* several regression outputs: the squared loss is averaged over the outputs, and so
  is its gradient (scikit-learn reports that average but steps along the gradient
  of the sum, n_outputs times larger).
* the classifier always has a softmax output, two units for binary problems
  (scikit-learn: one logistic unit), so ``coefs_[-1]`` is (h, 2) there and
  ``out_activation_ == "softmax"``. Multilabel ``y`` (2-D) raises ``ValueError``.
* the last minibatch of an epoch is padded to the full batch size with weight-0
  rows (one compiled shape); its loss is the weighted mean over its real rows, but
  its L2 term is divided by ``batch_size`` (with ``sample_weight``: by its weight
  sum plus the first row's weight per padding row), not by its real rows' weight.
* the monitored value is computed in the training ``dtype``.
  With ``sample_weight`` and several minibatches, the training loss that early
  stopping watches is the epoch's sample-weighted mean (``loss_curve_`` is
  scikit-learn's: minibatch losses weighted by row counts).
* ``warm_start`` and ``partial_fit`` continue the optimizer state too (scikit-learn's
  ``warm_start`` restarts its optimizer), so changing ``solver`` (or between plain
  and momentum ``sgd``) or ``hidden_layer_sizes`` before them raises ``ValueError``;
  ``n_iter_`` counts the epochs of all calls (scikit-learn: of the last call).
* ``max_iter`` times the minibatches per epoch must fit jaxnn's int32 step counter
  (2**31 - 1 steps): larger raises ``ValueError``.
* predictions are computed in NumPy float64 from ``coefs_``/``intercepts_``, so
  they do not depend on how the rows are batched, and predicting compiles nothing.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse
from scipy.special import expit, log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from jaxnn import engine, layers, models, names, training
from jaxnn.errors import InputError, InputTypeError

_ACTIVATIONS = names.SKLEARN_ACTIVATIONS  # scikit-learn's names -> jaxnn's hidden activations
_LEAKY_SLOPE = 0.2  # jaxnn.foundations.leaky_relu's
_SPARSE = ["csr", "csc", "coo"]
MAX_STEPS = engine.MAX_STEPS  # optimizer steps of one fit: the engine's step counter is int32
# multiply-adds of the forward pass per compiled call (see _chunk_epochs)
_CHUNK_WORK = 1 << 27


def _chunk_epochs(epochs: int, n: int, batch: int, n_params: int) -> int:
    """Epochs per compiled call of a fit: about ``_CHUNK_WORK`` forward multiply-adds, a power of two.

    Each call of the engine's compiled chunk costs about 2 ms of dispatch and bookkeeping on a
    2-core CPU: at the engine's default of about 20 calls per run they were a third of a small
    first fit (digits, 64 hidden units, 40 epochs: 109 against 67 ms with five calls). A fit's
    chunks are there for Ctrl-C, not for progress (scikit-learn prints none unless ``verbose``),
    so a small model takes as many epochs per call as fit in ``_CHUNK_WORK``. A power of two, and
    at most the power of two at or above ``epochs``: nearby ``max_iter`` values and CV folds share
    one program (epochs past the end are skipped, not computed).
    """
    per_epoch = engine.steps_per_epoch(n, batch) * min(batch, n) * n_params
    want = max(1, _CHUNK_WORK // max(per_epoch, 1))
    return min(1 << (want - 1).bit_length(), 1 << (max(epochs, 1) - 1).bit_length())


# The hidden activations on the host (NumPy, float64), for predicting without compiling anything;
# tests/test_estimators.py proves each equal to its jaxnn.foundations twin
_HOST_ACTIVATIONS = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh, "sigmoid": expit,
                     "leaky_relu": lambda z: np.where(z >= 0, z, _LEAKY_SLOPE * z)}


def _forward(coefs: list[np.ndarray], intercepts: list[np.ndarray], X: np.ndarray,
             activation: str) -> np.ndarray:
    """Network output (n, k) in float64: :func:`jaxnn.models.network` -- the one forward pass of
    the built-in MLPs -- run on NumPy arrays with :func:`jaxnn.layers.dense`, so it compiles nothing."""
    params = [{"W": W.astype(np.float64), "b": b.astype(np.float64)}
              for W, b in zip(coefs, intercepts, strict=True)]
    return models.network(params, np.asarray(X, dtype=np.float64),  # type: ignore[arg-type, return-value]
                          _HOST_ACTIVATIONS[activation], layer=layers.dense)


# --- What the engine trains: loss, validation score, optimizer (cached: one compile per shape) ---


@functools.lru_cache(maxsize=64)
def _loss_fn(activation: str, loss_name: str, gradients: str) -> Any:
    """``loss_fn(params, X, Y, l2, w) -> (B,)``: per-example data loss plus scikit-learn's L2 term.

    The engine takes the ``w``-weighted mean over the minibatch (``w``: the rows' sample weights,
    0 for padding rows; the engine's ``pass_weights``), so adding the same
    ``l2 * 0.5 ||W||^2 / sum(w)`` to every row adds it once: scikit-learn divides the L2 term by
    the minibatch's weight sum (by its row count without weights).
    ``l2`` is a runtime input (the engine's ``loss_args``): a new ``alpha`` compiles nothing.
    """
    data_loss = models.make_loss_fn(activation, loss_name, gradients=gradients)

    def loss_fn(params: Any, X: jax.Array, Y: jax.Array, l2: jax.Array, w: jax.Array) -> jax.Array:
        s = jnp.sum(w)
        return data_loss(params, X, Y) + l2 * models.l2_penalty(params) / jnp.where(s > 0, s, 1)

    return loss_fn


@functools.lru_cache(maxsize=16)
def _negative_score_fn(activation: str, classifier: bool) -> Any:
    """``-score(params, X, Y, w, l2)``, the engine's monitored value (lower is better) with early stopping.

    The score is scikit-learn's ``score``: the weighted accuracy (classifier; ``Y`` one-hot) or
    R^2 averaged over the outputs (regressor; a constant target scores 1 if predicted exactly,
    else 0, as ``r2_score``'s ``force_finite``). ``l2`` (the engine passes its ``loss_args``) is unused.
    """

    def negative_score(params: Any, X: jax.Array, Y: jax.Array, w: jax.Array, l2: jax.Array) -> jax.Array:
        out = models.predict(params, X, activation)
        total = jnp.sum(w)
        if classifier:
            hits = (jnp.argmax(out, axis=1) == jnp.argmax(Y, axis=1)).astype(w.dtype)
            return -jnp.sum(w * hits) / total
        mean = jnp.sum(w[:, None] * Y, axis=0) / total
        num = jnp.sum(w[:, None] * jnp.square(Y - out), axis=0)
        den = jnp.sum(w[:, None] * jnp.square(Y - mean[None, :]), axis=0)
        r2 = jnp.where(den > 0, 1 - num / jnp.where(den > 0, den, 1), jnp.where(num == 0, 1.0, 0.0))
        return -jnp.mean(r2)

    return negative_score


@functools.lru_cache(maxsize=16)
def _optimizer(name: str) -> optax.GradientTransformation:
    """The optax optimizer ``name`` (:func:`jaxnn.names.optimizer`), its learning rate and momentum
    runtime inputs.

    ``optax.inject_hyperparams`` keeps them in the optimizer state (:func:`_with_hyperparams`
    sets them), so a new ``learning_rate_init`` or ``momentum`` runs the same compiled program.
    Adam uses optax's (and scikit-learn's) beta_1 0.9, beta_2 0.999, epsilon 1e-8.
    """
    return optax.inject_hyperparams(names.optimizer, static_args=("name",))(
        name=name, learning_rate=1e-3, momentum=0.9)


def _with_hyperparams(opt_state: Any, lr: float, momentum: float, dtype: Any) -> Any:
    """``opt_state`` with this run's learning rate and momentum, as host arrays of ``dtype``."""
    values = {"learning_rate": lr, "momentum": momentum}
    if set(opt_state.hyperparams) != set(values):  # an optax that injects otherwise: fail loudly
        raise RuntimeError(f"optax injects {sorted(opt_state.hyperparams)}, jaxnn sets {sorted(values)}")
    return opt_state._replace(hyperparams={k: np.asarray(v, dtype) for k, v in values.items()})


def _check_range(name: str, a: np.ndarray, dtype: np.dtype) -> None:
    """ValueError naming ``name`` when finite values of ``a`` overflow ``dtype``."""
    if a.size and np.max(np.abs(a)) > np.finfo(dtype).max:
        raise InputError(f"{name}: values exceed the range of {dtype.name}")


def _optimizer_name(solver: str, momentum: float, nesterov: bool) -> str:
    if solver == "adam":
        return "adam"
    return "sgd" if momentum == 0 else "nesterov" if nesterov else "momentum"


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

    # --- parameters ---------------------------------------------------------------------

    def _hidden(self) -> tuple[int, ...]:
        h = self.hidden_layer_sizes
        sizes = list(h) if hasattr(h, "__iter__") else [h]
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise InputError(f"hidden_layer_sizes: expected positive integers, got {h!r}")
            if int(s) > MAX_STEPS:
                raise InputError(f"hidden_layer_sizes: {s} units are above the limit of {MAX_STEPS}")
        return tuple(int(s) for s in sizes)

    def _check_params(self) -> None:
        if self.activation not in _ACTIVATIONS:
            raise InputError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
                             + (" (jaxnn has no identity activation)" if self.activation == "identity"
                                else ""))
        if self.solver not in ("adam", "sgd"):
            raise InputError(f"solver: expected 'adam' or 'sgd', got {self.solver!r}"
                             + (" (jaxnn trains by minibatch scans; lbfgs is not supported)"
                                if self.solver == "lbfgs" else ""))
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise InputError(f"learning_rate: expected 'constant', 'invscaling' or 'adaptive', "
                             f"got {self.learning_rate!r}")
        if self.solver == "sgd" and self.learning_rate != "constant":
            raise InputError(f"learning_rate: only 'constant' is supported with solver='sgd', "
                             f"got {self.learning_rate!r}")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto") and (
                isinstance(self.batch_size, bool) or not isinstance(self.batch_size, numbers.Integral)
                or self.batch_size < 1):
            raise InputError(f"batch_size: expected 'auto' or a positive integer, got {self.batch_size!r}")
        # max_iter epochs of at least one step each; n_iter_no_change + 1 epochs of patience
        for name, limit in (("max_iter", MAX_STEPS), ("n_iter_no_change", MAX_STEPS - 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise InputError(f"{name}: expected a positive integer, got {v!r}")
            if int(v) > limit:
                raise InputError(f"{name}: {v} is above the limit of {limit} (jaxnn counts steps in int32)")
        if isinstance(self.verbose, bool | np.bool_):
            pass
        elif not isinstance(self.verbose, numbers.Integral) or self.verbose < 0:
            raise InputError(f"verbose: expected True, False or an integer >= 0, got {self.verbose!r}")
        for name, positive in (("alpha", False), ("learning_rate_init", True), ("tol", False),
                               ("momentum", False)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise InputTypeError(f"{name}: expected a number, got {type(v).__name__}")
            if not math.isfinite(v) or v < 0 or (positive and v == 0):
                raise InputError(f"{name}: expected a finite number {'> 0' if positive else '>= 0'}, "
                                 f"got {v!r}")
        if self.momentum > 1:
            raise InputError(f"momentum: expected a number in [0, 1], got {self.momentum!r}")
        if self.early_stopping and not 0 < self.validation_fraction < 1:
            raise InputError(f"validation_fraction: expected a number in (0, 1), "
                             f"got {self.validation_fraction!r}")
        names.check("gradients", self.gradients, names.GRADIENTS)
        names.check("dtype", self.dtype, names.DTYPES)

    def _batch(self, n_samples: int) -> int:
        return min(200, n_samples) if self.batch_size == "auto" else min(int(self.batch_size), n_samples)

    def _make_optimizer(self) -> optax.GradientTransformation:
        """This solver's optax optimizer (its hyper-parameters set by :meth:`_hyperparams`)."""
        return _optimizer(_optimizer_name(self.solver, self.momentum, self.nesterovs_momentum))

    def _hyperparams(self, opt_state: Any) -> Any:
        """``opt_state`` with this estimator's learning rate and momentum on jaxnn's objective
        (1 / ``_scale`` times scikit-learn's)."""
        lr = float(self.learning_rate_init)
        if self.solver == "sgd":
            lr *= self._scale  # same updates as scikit-learn's on the 1/scale-times objective
        return _with_hyperparams(opt_state, lr, float(self.momentum), np.dtype(self.dtype))

    # --- training -----------------------------------------------------------------------

    def _targets(self, y: np.ndarray, *, first: bool, classes: Any = None) -> np.ndarray:
        """(n, k) float targets; subclasses set ``classes_``/``n_outputs_`` when ``first``."""
        raise NotImplementedError

    def _validate(self, X: Any, y: Any, *, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _init_coefs(self, rng: np.random.RandomState, n_features: int, n_outputs: int
                    ) -> list[dict[str, np.ndarray]]:
        """scikit-learn's initialisation, draw for draw: per layer, ``W`` then ``b`` uniform in
        ``+-sqrt(f / (fan_in + fan_out))`` (``f`` = 2 for "logistic", else 6) from ``rng``.

        On the host: it compiles nothing, and a multiclass or regression network starts from
        scikit-learn's own weights for the same ``random_state``.
        """
        sizes = models.layer_sizes(n_features, self._hidden(), n_outputs)
        factor = 2.0 if _ACTIVATIONS[self.activation] == "sigmoid" else 6.0
        params = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = math.sqrt(factor / (fan_in + fan_out))
            W = rng.uniform(-bound, bound, (fan_in, fan_out))
            b = rng.uniform(-bound, bound, fan_out)
            params.append({"W": W.astype(self.dtype), "b": b.astype(self.dtype)})
        return params

    def _initial_state(self, optimizer: optax.GradientTransformation, params: list[dict[str, np.ndarray]],
                       seed: int, *, early: bool) -> engine.TrainState:
        """A fresh run from ``params``; the data order's key is ``jax.random.key(seed)``."""
        key = jax.random.wrap_key_data(np.asarray([0, seed], np.uint32))  # type: ignore[arg-type]  # key(seed), compiling nothing
        # Adam's moments, SGD's momentum and the step count start at zero, and _hyperparams sets the
        # rest: the optimizer's initial state is built on the host, compiling nothing
        shapes = engine.opt_state_shapes(optimizer, params)
        zeros = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), shapes)
        return engine.init_state(params, optimizer, key, track_best=early, opt_state=self._hyperparams(zeros))

    def _resume_state(self, optimizer: optax.GradientTransformation, *, early: bool, incremental: bool
                      ) -> engine.TrainState:
        """The stored parameters and optimizer state (``warm_start``, ``partial_fit``), step 0.

        Every continuation shuffles with its own key, ``key(seed + n_iter_ * 2**32)`` (the first
        fit's key is ``key(seed)``), so it does not repeat the permutations of the previous call.
        As scikit-learn, a ``warm_start`` fit carries the best monitored value and the count of
        epochs without improvement over.
        """
        fitted = tuple(W.shape[1] for W in self.coefs_[:-1])
        if fitted != self._hidden():
            raise InputError(f"hidden_layer_sizes: {self._hidden()} differs from the fitted layers {fitted}; "
                             "set warm_start=False to train new layers")
        dt = np.dtype(self.dtype)
        params = [{"W": np.asarray(W, dt), "b": np.asarray(b, dt)}
                  for W, b in zip(self.coefs_, self.intercepts_, strict=True)]
        want = engine.opt_state_shapes(optimizer, params)
        fitted_tree: Any = jax.tree_util.tree_structure(self._opt_state)
        if fitted_tree != jax.tree_util.tree_structure(want):
            call = "partial_fit" if incremental else "warm_start"
            raise InputError(
                f"solver: the fitted optimizer state is not one of solver={self.solver!r}"
                + (f" with momentum={self.momentum!r}" if self.solver == "sgd" else "")
                + f"; the solver changed since the last fit and {call} continues the optimizer state. "
                "Set the previous solver back, or warm_start=False and call fit to start afresh")
        opt_state = jax.tree_util.tree_map(lambda a, t: np.asarray(a, t.dtype), self._opt_state, want)
        # key(seed + n_iter_ * 2**32): its key data built on the host, compiling nothing
        data = np.asarray(self._key_data, np.uint32).copy()
        data[0] = np.uint32((int(data[0]) + int(self.n_iter_)) % 2**32)
        key = jax.random.wrap_key_data(data)  # type: ignore[arg-type]
        state = engine.init_state(params, optimizer, key, track_best=early,
                                  opt_state=self._hyperparams(opt_state))
        if incremental:
            return state
        if early and self.validation_scores_ is not None and self.best_validation_score_ is not None:
            best = -float(self.best_validation_score_)
        elif not early and self.best_loss_ is not None:
            best = float(self.best_loss_) / self._scale
        else:  # early_stopping switched since the last fit: nothing to carry over
            return state
        return state._replace(best_loss=jnp.asarray(best, state.best_loss.dtype),
                              bad_epochs=jnp.asarray(getattr(self, "_no_improvement_count", 0), jnp.int32))

    def save(self, path: Any) -> None:
        """Save the fitted estimator to ``path`` (``.npz``); see :func:`save_estimator`."""
        save_estimator(self, path)

    @staticmethod
    def load(path: Any) -> _BaseMLP:
        """Load an estimator saved with :meth:`save`; see :func:`load_estimator`."""
        return load_estimator(path)

    def _stop_message(self, early: bool) -> str:
        """scikit-learn's message when ``n_iter_no_change`` epochs in a row did not improve."""
        what = "Validation score" if early else "Training loss"
        return (f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                "consecutive epochs. Stopping.")

    def _fit(self, X: Any, y: Any, *, incremental: bool, sample_weight: Any = None,
             classes: Any = None) -> _BaseMLP:
        self._check_params()
        first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate(X, y, reset=first)
        if scipy.sparse.issparse(X):
            X = X.toarray()
        w = (np.ones(X.shape[0]) if sample_weight is None else
             _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True))
        Y = self._targets(y, first=first, classes=classes)
        rng = check_random_state(self.random_state)
        init = self._init_coefs(rng, X.shape[1], Y.shape[1]) if first else None  # scikit-learn's draws
        seed = int(rng.randint(np.iinfo(np.int32).max))
        early = self.early_stopping and not incremental
        X_val = Y_val = w_val = None
        if early:
            stratify = y if self._loss_name == "cross_entropy" else None
            X, X_val, Y, Y_val, w, w_val = train_test_split(
                X, Y, w, random_state=rng, test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise InputError("validation_fraction: the validation set is too small; increase "
                                 "'validation_fraction' or the size of your dataset")
            for part, weights in (("training", w), ("validation", w_val)):
                if not np.any(weights > 0):
                    raise InputError(f"sample_weight: the weights of the {part} split are all zero; "
                                     "use another random_state or validation_fraction")
        n, _d = X.shape
        B = self._batch(n)
        spe = engine.steps_per_epoch(n, B)
        epochs = 1 if incremental else int(self.max_iter)
        if epochs * spe > MAX_STEPS:
            raise InputError(f"max_iter: {epochs} epochs of {spe} minibatches are {epochs * spe} steps, "
                             f"above the limit of {MAX_STEPS}")
        if first:
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
        if first or (early and self.validation_scores_ is None) or (not early and self.best_loss_ is None):
            self.best_loss_: float | None = None if early else math.inf
            self.validation_scores_: list[float] | None = [] if early else None
            self.best_validation_score_: float | None = -math.inf if early else None
            self._no_improvement_count = 0

        optimizer = self._make_optimizer()
        loss_fn = _loss_fn(_ACTIVATIONS[self.activation], self._loss_name, self.gradients)
        printed = [0]

        def report(info: engine.ChunkInfo) -> None:  # scikit-learn's lines, as each chunk ends
            scores = -np.asarray(info.val_loss, np.float64)
            for i, loss in enumerate(self._epoch_losses(info.train_loss, n, B)):
                printed[0] += 1
                print(f"Iteration {printed[0]}, loss = {loss:.8f}", flush=True)
                if early:
                    print(f"Validation score: {scores[i]:f}", flush=True)

        dt = np.dtype(self.dtype)
        with training.x64_context(self.dtype):
            for name, a in (("X", X), ("y", Y)):
                _check_range(name, a, dt)
            data = (X, Y)
            val = None
            if early and X_val is not None:  # padded to a row bucket, weight-0 rows the score ignores
                N = engine.row_bucket(X_val.shape[0])
                val = tuple(engine.pad_rows(a, N, fill=0) for a in (X_val, Y_val, w_val))  # type: ignore[arg-type]
            if first:
                state = self._initial_state(optimizer, init, seed, early=early)  # type: ignore[arg-type]
            else:
                state = self._resume_state(optimizer, early=early, incremental=incremental)
            result = engine._fit(
                loss_fn, state.params, data, optimizer=optimizer,
                batch_size=200 if self.batch_size == "auto" else int(self.batch_size), epochs=epochs,
                shuffle=bool(self.shuffle), sample_weight=w,  # ones without weights: one program for both
                val_data=val,
                val_fn=_negative_score_fn(_ACTIVATIONS[self.activation], self._loss_name == "cross_entropy")
                if early else None,
                # scikit-learn stops once more than n_iter_no_change epochs did not improve
                patience=None if incremental else self.n_iter_no_change + 1,
                tol=float(self.tol) if early else float(self.tol) / self._scale,
                restore_best=early, state=state, callback=report if self.verbose else None,
                # verbose: a line as each epoch ends; else few calls (_chunk_epochs)
                chunk_epochs=1 if self.verbose else _chunk_epochs(
                    epochs, n, B, sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(state.params))),
                loss_args=(float(self.alpha) / self._scale,), pass_weights=True)

        # scikit-learn keeps the last parameters unless it early-stops on validation
        params = jax.device_get(result.params)
        self.coefs_ = [np.asarray(p["W"]) for p in params]
        self.intercepts_ = [np.asarray(p["b"]) for p in params]
        self._opt_state = jax.device_get(result.state.opt_state)
        if first:
            self._key_data = np.asarray(jax.random.key_data(result.state.key))
        self.n_layers_ = len(self.coefs_) + 1
        self.n_outputs_ = Y.shape[1]
        self.out_activation_ = "softmax" if self._loss_name == "cross_entropy" else "identity"

        curve = self._epoch_losses(result.history.train_loss, n, B)
        self.loss_curve_ = [*self.loss_curve_, *curve]
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else math.nan
        self.n_iter_ += len(curve)
        self.t_ += len(curve) * n
        if early:
            self.validation_scores_ = [*(self.validation_scores_ or []),
                                       *(-float(v) for v in result.history.val_loss)]
            self.best_validation_score_ = -float(result.state.best_loss)
            self._no_improvement_count = int(result.state.bad_epochs)
        elif incremental:  # one epoch: scikit-learn's rule, on the host
            best = math.inf if self.best_loss_ is None else self.best_loss_
            for loss in curve:
                self._no_improvement_count = self._no_improvement_count + 1 if loss > best - self.tol else 0
                best = min(best, loss)
            self.best_loss_ = best
            if self.verbose and self._no_improvement_count > self.n_iter_no_change:
                print(self._stop_message(early=False), flush=True)
        else:
            self.best_loss_ = min([self.best_loss_ if self.best_loss_ is not None else math.inf, *curve])
            self._no_improvement_count = int(result.state.bad_epochs)
        if self.verbose and result.stopped_early:
            print(self._stop_message(early), flush=True)
        if not incremental and not result.stopped_early and len(curve) == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _epoch_losses(self, step_losses: np.ndarray, n: int, B: int) -> list[float]:
        """scikit-learn's per-epoch loss: minibatch losses weighted by their real row counts / n."""
        spe = engine.steps_per_epoch(n, B)
        sizes = np.full(spe, B, dtype=np.float64)
        sizes[-1] = n - (spe - 1) * B
        full = len(step_losses) // spe
        per_epoch = np.asarray(step_losses[: full * spe], np.float64).reshape(full, spe) @ sizes / n
        return [self._scale * float(v) for v in per_epoch]

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _BaseMLP:
        """Train on X (n_samples, n_features) and y; returns self.

        Args:
            X: (n, n_features) inputs, dense or sparse.
            y: regressor: (n,) or (n, n_outputs) targets; classifier: (n,) class labels.
            sample_weight: optional (n,) non-negative weights: each minibatch minimises the
                weighted mean loss plus the L2 term over its weight sum, as scikit-learn.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    # --- prediction ---------------------------------------------------------------------

    def _raw(self, X: Any) -> np.ndarray:
        """Network outputs (n, n_outputs_) in float64 for validated X."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=_SPARSE, reset=False, dtype=(np.float64, np.float32))
        if scipy.sparse.issparse(X):
            X = X.toarray()
        return _forward(self.coefs_, self.intercepts_, X, _ACTIVATIONS[self.activation])

# --- save / load (jaxnn.checkpoint's validated, pickle-free .npz format) ---------------------

_FITTED_SCALARS = ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_",
                   "loss_", "best_loss_", "best_validation_score_", "_no_improvement_count")


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
    if est.validation_scores_ is not None:
        arrays["validation_scores"] = np.asarray(est.validation_scores_, dtype=np.float64)
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
            raise InputTypeError(f"classes_: cannot save labels of dtype {classes_.dtype}")
        meta["classes"] = {"values": classes_.tolist(), "dtype": classes_.dtype.str}
    checkpoint.save_arrays(path, arrays, meta, kind="estimator")


def load_estimator(path: Any) -> _BaseMLP:
    """Load an estimator written by :func:`save_estimator` (validated; ``ValueError`` if tampered)."""
    from jaxnn import checkpoint

    arrays, meta = checkpoint.load_arrays(path, kind="estimator")
    classes = {"MLPRegressor": MLPRegressor, "MLPClassifier": MLPClassifier}
    name = meta.get("class")
    if name not in classes or not isinstance(meta.get("params"), dict):
        raise InputError(f"{path}: not a jaxnn estimator file (class {name!r})")
    params = dict(meta["params"])
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        est = classes[name](**params)
        est._check_params()  # a tampered activation, solver, max_iter... is refused here
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: bad estimator parameters: {e}") from None
    n_layers = sum(1 for k in arrays if k.startswith("coefs/"))
    try:
        est.coefs_ = [arrays[f"coefs/{i}"] for i in range(n_layers)]
        est.intercepts_ = [arrays[f"intercepts/{i}"] for i in range(n_layers)]
        est._key_data = arrays["key_data"]
        est.loss_curve_ = arrays["loss_curve"].tolist()
    except KeyError as e:
        raise InputError(f"{path}: missing array {e}") from None
    if n_layers < 1:
        raise InputError(f"{path}: no layers")
    for i in range(n_layers):
        W, b = est.coefs_[i], est.intercepts_[i]
        if W.ndim != 2 or b.shape != (W.shape[1],) or (i and W.shape[0] != est.coefs_[i - 1].shape[1]):
            raise InputError(f"{path}: layer {i} has inconsistent shapes {W.shape}, {b.shape}")
    if not all(np.isfinite(a).all() for a in (*est.coefs_, *est.intercepts_)):
        raise InputError(f"{path}: the weights hold NaN or inf")
    est.validation_scores_ = (arrays["validation_scores"].tolist() if "validation_scores" in arrays else None)
    est.best_loss_ = est.best_validation_score_ = None  # unless saved (None is not)
    est._no_improvement_count = 0
    for k, v in meta.get("fitted", {}).items():
        if k in _FITTED_SCALARS:
            setattr(est, k, v)
    if "classes" in meta:
        try:
            dtype = np.dtype(meta["classes"]["dtype"])
            if dtype.kind not in "biufU":
                raise InputError(dtype)
            est.classes_ = np.asarray(meta["classes"]["values"], dtype=dtype)
        except (TypeError, ValueError, KeyError):
            raise InputError(f"{path}: invalid classes in the metadata") from None
    if getattr(est, "n_features_in_", None) != est.coefs_[0].shape[0]:
        raise InputError(f"{path}: n_features_in_ is {getattr(est, 'n_features_in_', None)!r}, the first "
                         f"layer takes {est.coefs_[0].shape[0]}")
    if isinstance(est, MLPClassifier):
        k = est.coefs_[-1].shape[1]
        labels = getattr(est, "classes_", None)
        if labels is None or labels.ndim != 1 or len(labels) < 2 or len(np.unique(labels)) != len(labels) \
                or not np.array_equal(np.sort(labels), labels) or len(labels) != k:
            raise InputError(f"{path}: a classifier needs its sorted, distinct class labels, one per output "
                             f"unit ({k}); the file has {None if labels is None else labels.tolist()}")
    elif "classes" in meta:
        raise InputError(f"{path}: a regressor has no classes")
    # Rebuild the optimizer state's structure from the estimator's own optimizer, then fill it.
    dt = jnp.dtype(est.dtype)
    with training.x64_context(est.dtype):
        params_tree = [{"W": jnp.asarray(W, dt), "b": jnp.asarray(b, dt)}
                       for W, b in zip(est.coefs_, est.intercepts_, strict=True)]
        template = est._make_optimizer().init(params_tree)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    saved = [arrays.get(f"opt_state/{i}") for i in range(len(leaves))]
    if any(a is None or a.shape != np.shape(t) for a, t in zip(saved, leaves, strict=True)) or \
            any(k.startswith("opt_state/") and int(k.split("/")[1]) >= len(leaves) for k in arrays):
        raise InputError(f"{path}: the optimizer state does not match the estimator's optimizer")
    est._opt_state = jax.tree_util.tree_unflatten(treedef, saved)
    return est


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (squared loss), scikit-learn's API, jaxnn's training.

    Parameters as :class:`sklearn.neural_network.MLPRegressor` (see the module
    docstring for what differs), plus ``gradients`` ("manual": hand-written
    backprop, "autodiff": ``jax.grad``) and ``dtype`` ("float32"/"float64").

    Fitted attributes: ``coefs_`` (list of (fan_in, fan_out) arrays),
    ``intercepts_`` (list of (fan_out,)), ``loss_curve_`` (per-epoch training loss),
    ``validation_scores_`` (per-epoch R^2 on the validation split with ``early_stopping``,
    else None), ``best_validation_score_`` (its best, else None), ``best_loss_`` (None
    with ``early_stopping``), ``loss_``, ``n_iter_``, ``t_``, ``n_features_in_``,
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
            raise InputError(f"y: expected {self.n_outputs_} outputs as in the first fit, got {Y.shape[1]}")
        return Y

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y), optionally sample-weighted, continuing parameters and optimizer state."""
        self._fit(X, y, incremental=True, sample_weight=sample_weight)
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

    Fitted attributes as :class:`MLPRegressor` (``validation_scores_``: accuracy) plus
    ``classes_`` (n_classes,); ``out_activation_`` is "softmax" (also for two classes).
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
            raise InputError(f"y: a classifier needs samples of at least 2 classes; got 1 class "
                             f"({self.classes_[0]!r})")
        idx = np.searchsorted(self.classes_, y)
        idx = np.minimum(idx, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise InputError(f"y: labels {np.unique(np.asarray(y)[unknown]).tolist()} are not in "
                             f"classes {self.classes_.tolist()}")
        return np.eye(len(self.classes_), dtype=np.float64)[idx]

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing from the current state (scikit-learn's signature).

        Args:
            X: (n, n_features).
            y: (n,) labels.
            sample_weight: optional (n,) non-negative weights.
            classes: all labels, required on the first call (as in scikit-learn).
        """
        _check_partial_fit_first_call(self, classes)  # sets classes_ or checks them
        self._fit(X, y, incremental=True, sample_weight=sample_weight, classes=classes)
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
