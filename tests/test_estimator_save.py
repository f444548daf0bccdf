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
