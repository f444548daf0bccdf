"""jaxnn.estimators against scikit-learn: its own estimator checks, its meta-estimators, its MLPs' scores."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits, make_classification
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from jaxnn.estimators import MLPClassifier, MLPRegressor

# Why ConvergenceWarning is ignored here: like scikit-learn's MLPs, ours warn when max_iter epochs end
# before the loss settles; the checks and the small comparisons below train deliberately short runs.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.slow
@parametrize_with_checks([MLPRegressor(), MLPClassifier()])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    """Every check, on the default constructors as they are (no parameter changed for any check)."""
    # scikit-learn's array-API check (with plain NumPy arrays, since our tags do not claim array-API
    # support) only runs when SCIPY_ARRAY_API is set; set it for this one check instead of skipping.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


def _digits():
    X, y = load_digits(return_X_y=True)
    return X, y


def test_digits_cross_validated_accuracy_at_least_sklearns():
    X, y = _digits()
    kw = dict(hidden_layer_sizes=(64,), random_state=0)
    ours = cross_val_score(make_pipeline(StandardScaler(), MLPClassifier(**kw)), X, y, cv=3)
    theirs = cross_val_score(make_pipeline(StandardScaler(), SkMLPClassifier(**kw)), X, y, cv=3)
    assert theirs.mean() > 0.9
    # the same initial weights (scikit-learn's draws) but another data order (JAX's permutations):
    # the same accuracy to within the noise of a few of the 1,797 digits
    assert abs(ours.mean() - theirs.mean()) <= 0.01


def test_diabetes_regression_close_to_sklearns():
    X, y = load_diabetes(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0)
    kw = dict(hidden_layer_sizes=(64,), learning_rate_init=0.01, max_iter=300, random_state=0)
    ours = make_pipeline(StandardScaler(), MLPRegressor(**kw)).fit(X_tr, y_tr).score(X_te, y_te)
    theirs = make_pipeline(StandardScaler(), SkMLPRegressor(**kw)).fit(X_tr, y_tr).score(X_te, y_te)
    assert theirs > 0.3
    assert abs(ours - theirs) < 0.08, (ours, theirs)


def test_grid_search_picks_a_setting_and_refits():
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, random_state=0)
    base = MLPClassifier(hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.02, random_state=0)
    grid = GridSearchCV(base, {"alpha": [1e-4, 10.0]}, cv=2)
    grid.fit(X, y)
    assert grid.best_params_ == {"alpha": 1e-4}  # alpha=10 shrinks the weights to nearly nothing
    assert grid.best_estimator_.n_iter_ >= 1
    assert grid.best_estimator_.validation_scores_ is None  # no early stopping, no validation split
    assert grid.score(X, y) > 0.8


def test_loss_curve_is_sklearns_objective_and_predict_is_jaxnns_forward():
    """With one full batch per epoch, loss_curve_[-1] is scikit-learn's objective (0.5 * MSE + 0.5 *
    alpha * ||W||^2 / n) at the parameters before the last epoch, recomputed here in NumPy."""
    from jaxnn import foundations, models

    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    alpha = 0.5
    reg = MLPRegressor(hidden_layer_sizes=(8,), activation="logistic", alpha=alpha, batch_size=len(X),
                       shuffle=False, random_state=0, learning_rate_init=0.01, dtype="float64")
    for _ in range(10):
        reg.partial_fit(X, y)
    pred = reg.predict(X)
    penalty = 0.5 * alpha * sum(np.sum(W**2) for W in reg.coefs_) / len(X)
    objective = 0.5 * np.mean((y - pred) ** 2) + penalty
    reg.partial_fit(X, y)
    np.testing.assert_allclose(reg.loss_curve_[-1], objective, rtol=1e-10)
    assert reg.n_iter_ == 1 and len(reg.loss_curve_) == 11  # n_iter_: that call's epochs, as scikit-learn
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    # predict's NumPy forward is jaxnn.models.predict on the fitted parameters
    params = [{"W": W, "b": b} for W, b in zip(reg.coefs_, reg.intercepts_, strict=True)]
    with jax.enable_x64(True):
        expected = np.asarray(models.predict(params, np.asarray(X), foundations.sigmoid))[:, 0]
    np.testing.assert_allclose(reg.predict(X), expected, rtol=1e-12)


def test_manual_and_autodiff_gradients_give_equal_coefs_in_float64():
    X, y = make_classification(n_samples=90, n_features=5, n_informative=3, n_classes=3, random_state=1)
    kw = dict(hidden_layer_sizes=(7, 5), activation="tanh", max_iter=25, random_state=3, dtype="float64",
              batch_size=32)
    a = MLPClassifier(gradients="manual", **kw).fit(X, y)
    b = MLPClassifier(gradients="autodiff", **kw).fit(X, y)
    assert a.coefs_[0].dtype == np.float64
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)


def test_partial_fit_runs_one_epoch_each_and_keeps_state():
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(10,), random_state=0, learning_rate_init=0.01)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1])
    first = [W.copy() for W in clf.coefs_]
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 31  # n_iter_: the last call's, as scikit-learn
    assert clf.loss_curve_[-1] < clf.loss_curve_[1]
    assert not np.allclose(first[0], clf.coefs_[0])
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X[:4], np.array([0, 1, 2, 1]))


def test_early_stopping_records_validation_scores_and_keeps_the_best():
    X, y = make_classification(n_samples=200, n_features=8, random_state=0)
    clf = MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=3, learning_rate_init=0.05, max_iter=200, random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.n_iter_ < 200  # stopped: validation accuracy did not improve for 4 epochs
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None


def test_fitted_attributes_match_sklearns_shapes_and_pickle_round_trips():
    X, y = make_classification(n_samples=60, n_features=5, n_informative=3, n_classes=3, random_state=2)
    labels = np.array(["a", "b", "c"])[y]
    ours = MLPClassifier(hidden_layer_sizes=(6, 4), max_iter=20, random_state=0).fit(X, labels)
    theirs = SkMLPClassifier(hidden_layer_sizes=(6, 4), max_iter=20, random_state=0).fit(X, labels)
    for name in ("n_layers_", "n_outputs_", "n_features_in_", "n_iter_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [W.shape for W in ours.coefs_] == [W.shape for W in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    proba = ours.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(ours.predict_log_proba(X)), proba, rtol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), ours.classes_[np.argmax(proba, axis=1)])
    again = pickle.loads(pickle.dumps(ours))
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    again.partial_fit(X, labels)  # the optimizer state survives pickling
    assert again.n_iter_ == 1 and len(again.loss_curve_) == len(ours.loss_curve_) + 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(solver="lbfgsb"), "solver"),
        (dict(activation="softsign"), "activation"),
        (dict(solver="sgd", learning_rate="cosine"), "learning_rate"),
        (dict(power_t=-1.0), "power_t"),
        (dict(beta_2=1.0), "beta_2"),
        (dict(max_fun=0), "max_fun"),
        (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes"),
        (dict(batch_size=0), "batch_size"),
        (dict(gradients="numeric"), "gradients"),
        (dict(dtype="float16"), "dtype"),
        (dict(early_stopping=True, validation_fraction=1.5), "validation_fraction"),
    ],
)
def test_bad_parameters_raise_named_value_errors_at_fit(params, match):
    X, y = make_classification(n_samples=20, n_features=3, n_informative=2, n_redundant=0, random_state=0)
    clf = MLPClassifier(**params)  # no validation in __init__, as scikit-learn requires
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


def test_classifier_takes_multilabel_and_refuses_unfitted_use():
    X, y = make_classification(n_samples=20, n_features=3, n_informative=2, n_redundant=0, random_state=0)
    with pytest.raises(NotFittedError):
        MLPClassifier().predict_proba(X)
    Y = np.stack([y, 1 - y, y], axis=1)  # an indicator matrix: one logistic unit per label, as scikit-learn
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.coefs_[-1].shape == (4, 3)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict(X).shape == (20, 3) and clf.predict_proba(X).shape == (20, 3)
    np.testing.assert_array_equal(clf.predict(X), clf.predict_proba(X) > 0.5)


def test_sgd_with_nesterov_momentum_trains():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier(solver="sgd", learning_rate_init=0.05, hidden_layer_sizes=(32,), max_iter=20,
                        random_state=0).fit(X[:900], y[:900])
    assert clf.score(X[900:], y[900:]) > 0.85


def test_host_activations_equal_jaxnns_and_predict_runs_models_network():
    """predict compiles nothing: models.network on NumPy arrays, with each activation's NumPy twin."""
    from jaxnn import estimators, models, names
    from jaxnn.estimators import _network

    z = np.concatenate([np.linspace(-30, 30, 601), [0.0, -0.0, 1e-300, -1e-300]])
    assert set(estimators._HOST_ACTIVATIONS) == set(_network.ACTIVATIONS) >= set(names.ACTIVATIONS)
    with jax.enable_x64(True):
        for name, host in estimators._HOST_ACTIVATIONS.items():
            got = host(z)
            assert isinstance(got, np.ndarray)
            for gradients in ("manual", "autodiff"):  # the training activations, hand-written or plain
                twin = _network.hidden_activation(name, gradients)
                np.testing.assert_allclose(got, np.asarray(twin(jnp.asarray(z))), rtol=1e-15, atol=0)
                # and their derivatives (the hand-written backward, or jax.grad of the forward)
                smooth = z[:601][z[:601] != 0]  # relu's kink is at 0
                grad = jax.vmap(jax.grad(twin))(jnp.asarray(smooth))
                fd = (host(smooth + 1e-6) - host(smooth - 1e-6)) / 2e-6
                np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-8)
    rng = np.random.default_rng(0)
    coefs = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    intercepts = [rng.normal(size=4), rng.normal(size=2)]
    X = rng.normal(size=(5, 3))
    for name in names.ACTIVATIONS:
        out = estimators._forward(coefs, intercepts, X, name)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        params = [{"W": W, "b": b} for W, b in zip(coefs, intercepts, strict=True)]
        with jax.enable_x64(True):
            expected = models.predict(params, X, names.activation(name))
            np.testing.assert_allclose(out, np.asarray(expected), rtol=1e-13)
