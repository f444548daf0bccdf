"""What scikit-learn's maintainers declined and users keep asking for, each against a plain reference:
``fit(X, y, X_val=..., y_val=...)`` (scikit-learn issue 18748), ``validation_loss_curve_`` (18507),
``class_weight`` for the classifier (9113)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.utils.class_weight import compute_sample_weight

from jaxnn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _regression():
    X, y = make_regression(150, 5, noise=10.0, random_state=0)
    return X, y / np.std(y)


def _initial_rng(sizes, random_state=0):
    """The estimator's RandomState after scikit-learn's initial draws (W then b per layer)."""
    rng = np.random.RandomState(random_state)
    for fan_in, fan_out in itertools.pairwise(sizes):
        rng.uniform(size=(fan_in, fan_out))
        rng.uniform(size=fan_out)
    return rng


@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_a_users_validation_set_equals_the_same_split_drawn_by_early_stopping(kind):
    """``early_stopping=True`` draws ``validation_fraction`` of the rows (scikit-learn's split); passing
    that very split as ``X_val``/``y_val`` must train, score and stop identically."""
    if kind == "reg":
        X, y = _regression()
        make, n_out = MLPRegressor, 1
    else:
        X, y = make_classification(150, 5, n_informative=3, random_state=0)
        make, n_out = MLPClassifier, 1
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.05, shuffle=False, random_state=0,
              early_stopping=True, validation_fraction=0.2, n_iter_no_change=4, max_iter=200)
    drawn = make(**kw).fit(X, y)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, random_state=_initial_rng([5, 8, n_out]), test_size=0.2,
                                                stratify=y if kind == "clf" else None)
    given = make(**kw).fit(X_tr, y_tr, X_val=X_val, y_val=y_val)
    assert given.n_iter_ == drawn.n_iter_ < 200
    np.testing.assert_allclose(given.validation_scores_, drawn.validation_scores_, rtol=1e-12)
    assert given.best_validation_score_ == drawn.best_validation_score_
    for a, b in zip(given.coefs_ + given.intercepts_, drawn.coefs_ + drawn.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert given.score(X_val, y_val) == pytest.approx(given.best_validation_score_, rel=1e-12)
    assert len(given.validation_loss_curve_) == given.n_iter_


def test_validation_loss_curve_is_the_objective_on_the_validation_set_after_each_epoch():
    """Without early stopping a validation set is only watched: ``validation_scores_`` and
    ``validation_loss_curve_`` hold its R^2 and its loss (0.5 * MSE + the L2 term over its rows, the
    objective of ``loss_curve_``) after every epoch -- here recomputed from fits of 1, 2, ... epochs."""
    X, y = _regression()
    X_tr, X_val, y_tr, y_val = X[:110], X[110:], y[:110], y[110:]
    kw = dict(hidden_layer_sizes=(6,), solver="adam", learning_rate_init=0.02, shuffle=False, random_state=0,
              alpha=0.5, batch_size=40)
    est = MLPRegressor(max_iter=6, **kw).fit(X_tr, y_tr, X_val=X_val, y_val=y_val)
    assert est.n_iter_ == len(est.validation_loss_curve_) == len(est.validation_scores_) == 6
    assert est.best_loss_ is not None  # training stops on its own loss, as without a validation set
    for k in range(1, 7):
        ref = MLPRegressor(max_iter=k, **kw).fit(X_tr, y_tr)  # the parameters after epoch k
        pred = ref.predict(X_val)
        penalty = 0.5 * 0.5 * sum(np.sum(W**2) for W in ref.coefs_) / len(X_val)
        objective = 0.5 * np.mean((pred - y_val) ** 2) + penalty
        np.testing.assert_allclose(est.validation_loss_curve_[k - 1], objective, rtol=1e-10)
        np.testing.assert_allclose(est.validation_scores_[k - 1], ref.score(X_val, y_val), rtol=1e-10)


def test_classifier_validation_loss_is_the_log_loss():
    X, y = make_classification(160, 5, n_informative=3, n_classes=3, random_state=1)
    X_tr, X_val, y_tr, y_val = X[:120], X[120:], y[:120], y[120:]
    kw = dict(hidden_layer_sizes=(6,), shuffle=False, random_state=0, alpha=0.0)
    est = MLPClassifier(max_iter=3, **kw).fit(X_tr, y_tr, X_val=X_val, y_val=y_val)
    ref = MLPClassifier(max_iter=3, **kw).fit(X_tr, y_tr)
    np.testing.assert_allclose(est.validation_loss_curve_[-1], log_loss(y_val, ref.predict_proba(X_val)),
                               rtol=1e-10)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 1.0, 1: 4.0, 2: 0.5}])
def test_class_weight_is_sample_weight_by_class_as_scikit_learn_defines_it(class_weight):
    X, y = make_classification(150, 5, n_informative=3, n_classes=3, weights=[0.6, 0.3, 0.1], random_state=0)
    kw = dict(hidden_layer_sizes=(6,), solver="sgd", shuffle=False, random_state=0, max_iter=20,
              batch_size=50)
    weighted = MLPClassifier(class_weight=class_weight, **kw).fit(X, y)
    w = compute_sample_weight(class_weight, y)
    reference = MLPClassifier(**kw).fit(X, y, sample_weight=w)
    for a, b in zip(weighted.coefs_ + weighted.intercepts_, reference.coefs_ + reference.intercepts_,
                    strict=True):
        np.testing.assert_array_equal(a, b)
    theirs = SkMLPClassifier(**kw).fit(X, y, sample_weight=w)  # scikit-learn's MLP, the same weights
    for a, b in zip(weighted.coefs_ + weighted.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    plain = MLPClassifier(**kw).fit(X, y)
    assert not np.allclose(plain.coefs_[0], weighted.coefs_[0])


@pytest.mark.parametrize(("call", "match"), [
    (lambda est, X, y: est.fit(X, y, X_val=X), "X_val, y_val"),
    (lambda est, X, y: est.set_params(class_weight="heavy").fit(X, y), "class_weight"),
    (lambda est, X, y: est.set_params(class_weight="balanced").fit(X, np.stack([y, 1 - y], 1)), "multilabel"),
    (lambda est, X, y: est.fit(X, y, X_val=X[:, :2], y_val=y), "features"),
])
def test_bad_extras_raise_value_errors_naming_the_argument(call, match):
    X, y = make_classification(40, 4, random_state=0)
    with pytest.raises(ValueError, match=match):
        call(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2), X, y)
