"""Estimators save and load through jaxnn's validated, pickle-free checkpoint format."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from jaxnn.estimators import MLPClassifier, MLPRegressor, load_estimator

# The fits here are deliberately short: what is tested is the round trip, not convergence.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X)[:300], y[:300]


def test_classifier_roundtrip_predicts_identically_and_continues_exactly(digits, tmp_path):
    X, y = digits
    a = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    path = tmp_path / "clf.npz"
    a.save(path)
    b = MLPClassifier.load(path)
    assert isinstance(b, MLPClassifier)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.classes_, b.classes_)
    assert b.n_iter_ == a.n_iter_ and b.loss_curve_ == a.loss_curve_
    assert b.get_params() == a.get_params()
    a.partial_fit(X, y)
    b.partial_fit(X, y)
    for Wa, Wb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_array_equal(Wa, Wb)


def test_regressor_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=80)
    a = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=1).fit(X, y)
    a.save(tmp_path / "reg.npz")
    b = load_estimator(tmp_path / "reg.npz")
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert b.score(X, y) == a.score(X, y)


def test_tampered_estimator_file_is_refused(digits, tmp_path):
    X, y = digits
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y).save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "bad.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError):
        load_estimator(tmp_path / "bad.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError):
        load_estimator(tmp_path / "garbage.npz")


def _tampered(src, dst, change):
    """dst = the estimator file src with its arrays and metadata passed through change(arrays, meta)."""
    from jaxnn import checkpoint

    arrays, meta = checkpoint.load_arrays(src, kind="estimator")
    arrays = {k: np.array(v) for k, v in arrays.items()}
    change(arrays, meta)
    checkpoint.save_arrays(dst, arrays, meta, kind="estimator")


@pytest.mark.parametrize("change, message", [
    (lambda a, m: m["params"].update(activation="softplus"), "activation"),
    (lambda a, m: m["params"].update(max_iter=2**40), "max_iter: 1099511627776 is above the limit"),
    (lambda a, m: m.pop("classes"), "class labels"),
    (lambda a, m: m["classes"].update(values=list(range(9))), "one per output unit"),
    (lambda a, m: m["classes"].update(values=[0, 1, 2, 3, 4, 5, 6, 7, 9, 8]), "sorted, distinct"),
    (lambda a, m: a["coefs/0"].__setitem__((0, 0), np.nan), "NaN or inf"),
    (lambda a, m: m["fitted"].update(n_features_in_=5), "n_features_in_"),
    (lambda a, m: a.pop("opt_state/1"), r"another structure than the estimator's optimizer state"),
])
def test_estimator_file_with_tampered_fields_is_refused(digits, tmp_path, change, message):
    X, y = digits
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y).save(tmp_path / "m.npz")
    _tampered(tmp_path / "m.npz", tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match=message):
        load_estimator(tmp_path / "bad.npz")


@pytest.mark.parametrize("name, value", [("max_iter", 2**40), ("n_iter_no_change", 2**31)])
def test_huge_iteration_counts_are_refused_with_the_limit(name, value):
    X, y = np.zeros((10, 2)), np.arange(10.0)
    with pytest.raises(ValueError, match=rf"{name}: {value} is above the limit of \d+"):
        MLPRegressor(**{name: value}).fit(X, y)


@pytest.mark.parametrize("case", ["binary", "multilabel", "lbfgs", "poisson"])
def test_scikit_learn_shaped_estimators_round_trip(case, tmp_path):
    """One logistic unit for two classes, an indicator y, an lbfgs fit (no optimizer state), a Poisson
    head: each loads back predicting identically, and a stochastic one continues exactly."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    if case == "poisson":
        est, y = MLPRegressor(loss="poisson", hidden_layer_sizes=(5,), max_iter=5, random_state=0), \
            rng.poisson(np.exp(X[:, 0] * 0.3))
    else:
        y = (X[:, :3] > 0).astype(int) if case == "multilabel" else np.where(X[:, 0] > 0, "yes", "no")
        est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0,
                            solver="lbfgs" if case == "lbfgs" else "adam")
    est.fit(X, y)
    est.save(tmp_path / "m.npz")
    back = load_estimator(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if case != "poisson":
        np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(back.classes_, est.classes_)
    assert back.out_activation_ == est.out_activation_
    if case != "lbfgs":
        est.partial_fit(X, y)
        back.partial_fit(X, y)
        for a, b in zip(est.coefs_, back.coefs_, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        assert not hasattr(back, "partial_fit")
