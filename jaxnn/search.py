"""``jaxnn.GridSearchCV`` / ``RandomizedSearchCV``: scikit-learn's searches, every (candidate x fold) of a
group trained in one :func:`jaxnn.fit_many` call.

They are scikit-learn's own ``GridSearchCV`` and ``RandomizedSearchCV`` -- the same parameters,
folds, scoring, refit, ``cv_results_``, ``best_params_``, ``best_estimator_`` -- with one step
added before scikit-learn's loop over (candidate, fold) fits: the fits that can share a compiled
program are trained together, as one ``jax.vmap`` of the engine's chunk, and each fitted result is
kept. scikit-learn's loop then runs as it always does; when it calls a jaxnn estimator's ``fit``
on one of those (candidate, fold) pairs, the estimator takes the kept result instead of training
(:func:`prefitted`), so the scores, the error handling and the formatting are scikit-learn's.

**Groups.** Candidates share a program when they share the network and the solver's form: the
class, ``hidden_layer_sizes``, ``activation``, ``solver``, ``nesterovs_momentum``, ``batch_size``,
``shuffle``, ``loss``, ``gradients`` and the dtype. What varies inside a group is a runtime input
of the program, per model: ``alpha`` (the loss's L2 strength), ``learning_rate_init``,
``momentum``, ``beta_1``, ``beta_2``, ``epsilon`` (the optimizer's state), ``random_state`` (the
initial weights and the data order), ``max_iter``, ``tol`` and ``n_iter_no_change`` (scikit-learn's
stopping rule, applied per model). A group is one fold's fits: its models share the rows, so each
minibatch is gathered once and a layer of all of them is one product; a group trains in one call,
and the groups train concurrently, one thread each.

**What runs one by one.** Settings whose rule needs the host between epochs, as in the
estimator's own ``fit``: ``solver="lbfgs"``, ``learning_rate`` "invscaling"/"adaptive",
``early_stopping=True``, ``warm_start``, ``verbose``, ``class_weight``, fit parameters (such as
``sample_weight``). They fit as they would in scikit-learn's search, one by one.

**Pipelines.** With a ``Pipeline`` whose last step is a jaxnn estimator, the earlier steps are
fitted per (candidate, fold) on the host first, and the last step's fits are grouped as above.

``n_jobs`` is ignored (the fits already run as one program; scikit-learn's loop, which only
scores, runs in this process).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import numpy as np
from sklearn import model_selection
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state

# the kept fits of the search running in this context: {parameters: [(X, y, fitted attributes)]}
_Kept = dict[str, list[tuple[np.ndarray, np.ndarray | None, dict[str, Any]]]]
_PREFITTED: contextvars.ContextVar[_Kept | None] = contextvars.ContextVar(
    "jaxnn_prefitted", default=None)

# the parameters that are a group's runtime inputs (everything else of the estimator is static)
RUNTIME = ("alpha", "learning_rate_init", "momentum", "beta_1", "beta_2", "epsilon", "random_state",
           "max_iter", "tol", "n_iter_no_change")


def _params_key(est: Any) -> str:
    """The estimator's class and parameters, as one string."""
    params = sorted((k, repr(v)) for k, v in est.get_params(deep=False).items())
    return f"{type(est).__qualname__}{params!r}"


def _as_array(a: Any) -> np.ndarray:
    import scipy.sparse

    return a.toarray() if scipy.sparse.issparse(a) else np.asarray(a)


def _same(a: Any, b: np.ndarray) -> bool:
    a = _as_array(a)
    return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))


def prefitted(est: Any, X: Any, y: Any) -> dict[str, Any] | None:
    """The kept fitted attributes of ``est`` on ``(X, y)`` in the running search, or None: a kept
    fit of the same class and parameters on equal data (compared value for value)."""
    kept = _PREFITTED.get()
    for X_kept, y_kept, attrs in ([] if kept is None else kept.get(_params_key(est), [])):
        same_y = (y is None and y_kept is None) or (y is not None and y_kept is not None and _same(y, y_kept))
        if same_y and _same(X, X_kept):
            return attrs
    return None


@contextlib.contextmanager
def _keeping(kept: _Kept) -> Iterator[None]:
    token = _PREFITTED.set(kept)
    try:
        yield
    finally:
        _PREFITTED.reset(token)


def _groupable(est: Any, fit_params: dict[str, Any]) -> bool:
    """Whether ``est``'s fit is one engine call with scikit-learn's rule on the device (the estimator's
    own ``device`` path), so that it can train beside others in one program."""
    from jaxnn.estimators import MLPClassifier, MLPRegressor

    if not isinstance(est, MLPClassifier | MLPRegressor) or fit_params:
        return False
    constant = est.solver == "adam" or (est.solver == "sgd" and est.learning_rate == "constant")
    return (constant and not est.early_stopping and not est.warm_start and not est.verbose
            and getattr(est, "class_weight", None) is None)


def _static(est: Any, n_features: int, n_outputs: int, dtype: Any) -> tuple[Any, ...]:
    params = est.get_params(deep=False)
    return (type(est), n_features, n_outputs, str(dtype),
            *sorted((k, repr(v)) for k, v in params.items() if k not in RUNTIME))


def _prepare(base: Any, candidate: dict[str, Any], X: Any, y: Any, train: np.ndarray) -> tuple[Any, Any, Any]:
    """(the jaxnn estimator with the candidate's parameters, its training X, y) -- after a Pipeline's
    earlier steps, fitted on this fold's training rows as scikit-learn's fit would fit them."""
    est = clone(base).set_params(**candidate)
    X_tr = X[train] if not hasattr(X, "iloc") else X.iloc[train]
    y_tr = None if y is None else (y[train] if not hasattr(y, "iloc") else y.iloc[train])
    if isinstance(est, Pipeline):
        head = est[:-1]
        X_tr = head.fit_transform(X_tr, y_tr)
        est = est.steps[-1][1]
    return est, X_tr, y_tr


def train_groups(base: Any, candidates: list[dict[str, Any]], X: Any, y: Any,
                 splits: list[tuple[np.ndarray, np.ndarray]], fit_params: dict[str, Any]
                 ) -> tuple[_Kept, int]:
    """Train every groupable (candidate, fold) fit, one :func:`jaxnn.fit_many` call per group.

    A group is one fold's fits that share a program: its models share the rows, so a minibatch
    is gathered once and a layer of all of them is one product (one group of every fold, with
    per-model rows, is slower). The groups train concurrently, each in its own thread, started as
    soon as its fold's fits are prepared: a group's program is a sequence of small kernels that
    keeps about one core busy, and JAX releases the GIL while it runs.

    Returns ``(the kept fits, number of groups)`` for :func:`prefitted`.
    """
    validated: dict[Any, _Job] = {}  # a fold's rows validated once per estimator class and loss
    futures = []
    pool = ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1), thread_name_prefix="jaxnn-search")
    try:
        for fold, (train, _) in enumerate(splits):
            groups: dict[Any, list[_Job]] = {}
            for cand in candidates:
                est, X_tr, y_tr = _prepare(base, cand, X, y, train)
                if not _groupable(est, fit_params):
                    continue
                same_rows = (None if isinstance(base, Pipeline)
                             else (fold, type(est), getattr(est, "loss", None)))
                job = _Job(est, X_tr, y_tr, like=validated.get(same_rows))
                if same_rows is not None:
                    validated.setdefault(same_rows, job)
                groups.setdefault(job.static, []).append(job)
            # each thread runs in a copy of this context (the accelerations' switches)
            futures += [pool.submit(contextvars.copy_context().run, _train_group, jobs)
                        for jobs in groups.values()]
        kept: _Kept = {}
        for future in futures:
            for key, fit in future.result():
                kept.setdefault(key, []).append(fit)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return kept, len(futures)


# what an estimator's validation of (X, y) sets on it
_VALIDATED = ("n_features_in_", "feature_names_in_", "_label_binarizer", "classes_")


class _Job:
    """One (candidate, fold) fit, validated and initialised as the estimator's own ``fit`` does."""

    est: Any
    X: np.ndarray
    Y: np.ndarray
    X_given: np.ndarray
    y_given: np.ndarray | None

    def __init__(self, est: Any, X: Any, y: Any, like: _Job | None = None) -> None:
        import scipy.sparse

        self.key = _params_key(est)
        est._check_params()
        if like is None:
            self.X_given, self.y_given = _as_array(X), None if y is None else _as_array(y)
            Xv, Y, _ = est._validate(X, y, incremental=False, reset=True)
            if scipy.sparse.issparse(Xv):
                Xv = Xv.toarray()
        else:  # the same rows as `like`'s fit: its arrays and validation's results, not copies
            self.X_given, self.y_given = like.X_given, like.y_given
            Xv, Y = like.X, like.Y
            for name in _VALIDATED:
                if hasattr(like.est, name):
                    setattr(est, name, copy.deepcopy(getattr(like.est, name)))
        self.dtype = np.dtype(est.dtype) if est.dtype is not None else Xv.dtype
        self.rng = check_random_state(est.random_state)
        sizes = (Xv.shape[1], *est._hidden(), Y.shape[1])
        est._initialize(Y.shape[1], sizes, self.dtype, self.rng)
        self.seed = int(self.rng.randint(np.iinfo(np.int32).max))  # the data order, as _fit_stochastic
        self.est, self.X, self.Y = est, Xv, Y
        self.static = _static(est, Xv.shape[1], Y.shape[1], self.dtype)


def _train_group(jobs: list[_Job]) -> list[tuple[str, Any]]:
    """One ``fit_many`` call for ``jobs`` (one compiled program), then each job's estimator finished
    as its own ``fit`` would finish it (scikit-learn's records, counters and warnings)."""
    from jaxnn import engine, many, training
    from jaxnn.estimators import _network, _stochastic

    first = jobs[0].est
    dtype = jobs[0].dtype
    params = [{"W": np.stack([np.asarray(j.est.coefs_[i], dtype) for j in jobs]),
               "b": np.stack([np.asarray(j.est.intercepts_[i], dtype) for j in jobs])}
              for i in range(len(first.coefs_))]
    optimizer = first._make_optimizer()
    names = tuple(_HYPER[first.solver])
    hyper = {name: np.array([float(getattr(j.est, _HYPER[first.solver][name])) for j in jobs])
             for name in names}
    shared = all(j.X is jobs[0].X or (np.array_equal(j.X, jobs[0].X) and np.array_equal(j.Y, jobs[0].Y))
                 for j in jobs)
    if shared:  # (a Pipeline whose earlier steps vary gives each candidate other rows)
        data: Any = (jobs[0].X.astype(dtype), jobs[0].Y.astype(dtype))
        weights: Any = np.ones(jobs[0].X.shape[0])
    else:
        data = many.PerModel([(j.X.astype(dtype), j.Y.astype(dtype)) for j in jobs])
        weights = many.PerModel([np.ones(j.X.shape[0]) for j in jobs])
    keys = jax.random.wrap_key_data(jax.numpy.asarray(np.array([[0, j.seed] for j in jobs], np.uint32)))
    patience = [None if j.est.n_iter_no_change == np.inf else int(j.est.n_iter_no_change) + 1 for j in jobs]
    if any(p is None for p in patience) and not all(p is None for p in patience):
        patience = [engine.MAX_STEPS if p is None else p for p in patience]
    with training.x64_context(dtype.name):
        res = many._fit_many(
            _network.loss_fn(first.activation, first.out_activation_, first.gradients),
            params, data,
            optimizer=optimizer, hyperparams=hyper, key=keys,
            batch_size=200 if first.batch_size == "auto" else int(first.batch_size),
            epochs=[int(j.est.max_iter) for j in jobs], steps=None, shuffle=bool(first.shuffle),
            sample_weight=weights, val_data=None, val_fn=None,
            patience=None if patience[0] is None else patience, tol=[float(j.est.tol) for j in jobs],
            restore_best=False, state=None, loss_args=(np.array([float(j.est.alpha) for j in jobs]),),
            callback=None, devices=None, pass_weights=True)
    kept: list[tuple[str, Any]] = []
    for i, job in enumerate(jobs):
        est, one = job.est, res.model(i)
        est._optimizer = _stochastic._Optimizer(float(est.learning_rate_init))
        run = _stochastic._Run(est, job.X, job.Y, np.ones(job.X.shape[0]), None,
                               jax.tree_util.tree_map(np.asarray, _pick(params, i)), None, job.seed, dtype,
                               epochs=int(est.max_iter), early=False, kind=est._score_kind(),
                               incremental=False, user_val=False)
        run._record(one, 0)
        run.stopped = one.stopped_early
        run.diverged = one.diverged_step is not None
        run._keep(one)
        run.finish()
        attrs = {k: v for k, v in vars(est).items() if k.endswith("_") or k.startswith("_")}
        kept.append((job.key, (job.X_given, job.y_given, attrs)))
    return kept


def _pick(tree: Any, i: int) -> Any:
    return jax.tree_util.tree_map(lambda a: a[i], tree)


# the optimizer's injected hyper-parameter -> the estimator's parameter
_HYPER = {"sgd": {"learning_rate": "learning_rate_init", "momentum": "momentum"},
          "adam": {"learning_rate": "learning_rate_init", "beta_1": "beta_1", "beta_2": "beta_2",
                   "epsilon": "epsilon"}}


class _Grouped:
    """The step both searches add before scikit-learn's loop (see the module's docstring)."""

    def _run_search(self, evaluate_candidates: Any, *, callback_ctx: Any = None) -> None:
        outer: Any = self

        def grouped(candidate_params: Any, cv: Any = None, more_results: Any = None, callback_ctx: Any = None
                    ) -> Any:
            candidates = list(candidate_params)
            X, y, fit_params = outer._jaxnn_data
            splitter = check_cv(cv if cv is not None else outer.cv, y,
                                classifier=is_classifier(outer.estimator))
            t0 = time.perf_counter()
            kept, n_groups = train_groups(outer.estimator, candidates, X, y, list(splitter.split(X, y)),
                                          fit_params)
            outer.grouped_fits_ += sum(len(fits) for fits in kept.values())
            outer.groups_ += n_groups
            outer.group_seconds_ += time.perf_counter() - t0
            with _keeping(kept):
                return evaluate_candidates(candidates, cv=cv, more_results=more_results,
                                           callback_ctx=callback_ctx)

        super()._run_search(grouped, callback_ctx=callback_ctx)  # type: ignore[misc]

    def fit(self, X: Any, y: Any = None, **params: Any) -> Any:
        """scikit-learn's ``fit``, with the groupable fits trained first. Sets, besides scikit-learn's
        attributes, ``grouped_fits_`` (fits trained in groups), ``groups_`` (``fit_many`` calls) and
        ``group_seconds_`` (the wall-clock time of preparing and training the groups: ``cv_results_``'s
        ``fit_time`` of a grouped fit is only the time to take its kept result)."""
        self.grouped_fits_, self.groups_, self.group_seconds_ = 0, 0, 0.0
        self._jaxnn_data = (X, y, params)
        n_jobs: Any = getattr(self, "n_jobs", None)
        self.n_jobs = None  # scikit-learn's loop only scores: in this process
        try:
            return super().fit(X, y, **params)  # type: ignore[misc]
        finally:
            self.n_jobs = n_jobs
            del self._jaxnn_data


class GridSearchCV(_Grouped, model_selection.GridSearchCV):
    """scikit-learn's ``GridSearchCV``; the fits of each group of candidates train in one program."""


class RandomizedSearchCV(_Grouped, model_selection.RandomizedSearchCV):
    """scikit-learn's ``RandomizedSearchCV``; the fits of each group of candidates train in one program."""
