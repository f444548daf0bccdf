"""jaxnn.metrics' reports: scikit-learn's numbers as plain floats, and shape errors naming the arguments."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from jaxnn import metrics


def _regression_data(n: int, k: int | None, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (n,) if k is None else (n, k)
    y_true = rng.normal(3.0, 2.0, size=shape)
    return y_true, y_true + rng.normal(0.0, 1.0, size=shape)


def _softmax_np(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [None, 1, 3])
def test_regression_report_is_sklearns_as_plain_floats(k):
    y_true, y_pred = _regression_data(33, k)
    report = metrics.regression_report(y_true, y_pred)
    assert list(report) == ["mse", "rmse", "mae", "r2"]
    assert all(type(v) is float for v in report.values())
    theirs = {"mse": skm.mean_squared_error, "rmse": skm.root_mean_squared_error,
              "mae": skm.mean_absolute_error, "r2": skm.r2_score}
    for name, fn in theirs.items():
        np.testing.assert_allclose(report[name], fn(y_true, y_pred), rtol=1e-12)


def test_regression_report_takes_a_column_either_side_and_refuses_other_shapes():
    y_true, y_pred = _regression_data(20, None)
    column = metrics.regression_report(y_true[:, None], y_pred)
    assert metrics.regression_report(y_true, y_pred[:, None]) == column
    with pytest.raises(ValueError, match="y_true, y_pred: shapes"):
        metrics.regression_report(y_true, np.ones((20, 2)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.regression_report(np.ones(1), np.ones(1))


def test_classification_report_is_sklearns_as_plain_floats():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=40)
    probs = _softmax_np(rng.normal(size=(40, 3)) + 1.5 * np.eye(3)[labels])
    report = metrics.classification_report(labels, probs)
    assert set(report) == {"accuracy", "log_loss"}
    assert all(type(v) is float for v in report.values())
    np.testing.assert_allclose(report["log_loss"], skm.log_loss(labels, probs, labels=np.arange(3)),
                               rtol=1e-12)
    assert report["accuracy"] == skm.accuracy_score(labels, probs.argmax(axis=1))


def test_classification_report_binary_probabilities_and_a_certain_miss():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=50)
    p1 = rng.uniform(size=50)
    report = metrics.classification_report(labels, p1)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(labels, p1 > 0.5))
    np.testing.assert_allclose(report["log_loss"], skm.log_loss(labels, p1), rtol=1e-12)
    certain_miss = metrics.classification_report(np.array([0, 1]), np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert np.isfinite(certain_miss["log_loss"])
    with pytest.raises(ValueError, match="probs has shape"):
        metrics.classification_report(np.zeros(4, int), np.full((3, 2), 0.5))
