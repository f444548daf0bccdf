"""jaxnn.GridSearchCV / RandomizedSearchCV against scikit-learn's own searches over the same jaxnn estimator.

The reference is scikit-learn's ``GridSearchCV`` fitting each (candidate, fold) one by one with
the estimator's own ``fit``; jaxnn's search trains the groupable fits together in one
``fit_many`` call per group. In float64 the scores are equal to 1e-9; in float32 within 0.01.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import model_selection
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jaxnn
from jaxnn import search


def _digits(n=300):
    X, y = load_digits(return_X_y=True)
    X = X[:n]
    return (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1), y[:n]


def _both(make_search, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = make_search(jaxnn)
        theirs = make_search(model_selection)
        ours.fit(X, y)
        theirs.fit(X, y)
    return ours, theirs


def _same_results(ours, theirs, tol):
    assert ours.best_params_ == theirs.best_params_
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    for key in theirs.cv_results_:
        if "test_score" in key and not key.startswith("rank"):
            np.testing.assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], rtol=0, atol=tol)
    np.testing.assert_array_equal(ours.cv_results_["rank_test_score"], theirs.cv_results_["rank_test_score"])
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=tol)


def test_grid_search_equals_scikit_learns_one_by_one_in_float64():
    X, y = _digits()
    est = jaxnn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=6, batch_size=64, random_state=0)
    grid = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2], "max_iter": [4, 6]}

    def make(lib):
        return lib.GridSearchCV(est, grid, cv=3)

    ours, theirs = _both(make, X.astype(np.float64), y)
    _same_results(ours, theirs, 1e-9)
    assert ours.grouped_fits_ == 8 * 3 and ours.groups_ == 3  # one program call per fold
    np.testing.assert_allclose(ours.best_estimator_.coefs_[0], theirs.best_estimator_.coefs_[0], rtol=1e-12)


def test_a_pipeline_regressor_in_float32_and_ungroupable_candidates_one_by_one():
    X, y = load_diabetes(return_X_y=True)
    X, y = X.astype(np.float32), y.astype(np.float32) / 100
    pipe = make_pipeline(StandardScaler(), jaxnn.MLPRegressor(hidden_layer_sizes=(8,), max_iter=20,
                                                              random_state=1, batch_size=32))
    grid = [{"mlpregressor__alpha": [1e-4, 1e-1], "mlpregressor__random_state": [1, 2]},
            {"mlpregressor__solver": ["lbfgs"], "mlpregressor__max_iter": [15]}]  # lbfgs: one by one

    def make(lib):
        return lib.GridSearchCV(pipe, grid, cv=3, scoring="r2")

    ours, theirs = _both(make, X, y)
    _same_results(ours, theirs, 0.01)
    assert ours.grouped_fits_ == 4 * 3


def test_randomized_search_equals_scikit_learns():
    X, y = _digits(240)
    est = jaxnn.MLPClassifier(hidden_layer_sizes=(12,), max_iter=5, random_state=0, solver="sgd",
                              batch_size=50, learning_rate_init=0.05)
    dist = {"alpha": [1e-5, 1e-3, 1e-1], "momentum": [0.5, 0.9], "tol": [1e-4, 1e-2]}

    def make(lib):
        return lib.RandomizedSearchCV(est, dist, n_iter=5, cv=2, random_state=0)

    ours, theirs = _both(make, X.astype(np.float64), y)
    _same_results(ours, theirs, 1e-9)
    assert ours.grouped_fits_ == 5 * 2


def test_outside_a_search_nothing_is_prefitted():
    X, y = _digits(60)
    est = jaxnn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    assert search.prefitted(est, X, y) is None
