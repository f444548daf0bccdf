"""jaxnn.metrics against sklearn.metrics: float64 to rtol 1e-12, float32 to rtol 1e-5."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm

from jaxnn import metrics

REGRESSION = {
    "mse": (metrics.mse, skm.mean_squared_error),
    "rmse": (metrics.rmse, skm.root_mean_squared_error),
    "mae": (metrics.mae, skm.mean_absolute_error),
    "r2": (metrics.r2, skm.r2_score),
}


def _regression_data(n: int, k: int | None, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (n,) if k is None else (n, k)
    y_true = rng.normal(3.0, 2.0, size=shape).astype(dtype)
    y_pred = (y_true + rng.normal(0.0, 1.0, size=shape)).astype(dtype)
    return y_true, y_pred


def _softmax_np(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _classification_data(n: int, c: int, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[labels]
    return labels, logits, _softmax_np(logits).astype(dtype)


# ------------------------------------------------------------------ regression


@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize("k", [None, 1, 3])
def test_regression_matches_sklearn_float64(x64, name, k):
    ours, theirs = REGRESSION[name]
    y_true, y_pred = _regression_data(57, k, np.float64)
    got = ours(jnp.asarray(y_true), jnp.asarray(y_pred))
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(float(got), theirs(y_true, y_pred), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_matches_sklearn_float32(name):
    ours, theirs = REGRESSION[name]
    y_true, y_pred = _regression_data(200, None, np.float32)
    got = ours(jnp.asarray(y_true), jnp.asarray(y_pred))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), theirs(y_true, y_pred), rtol=1e-5)


@given(
    n=st.integers(2, 300),
    k=st.one_of(st.none(), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
)
def test_regression_matches_sklearn_hypothesis(x64, n, k, seed):
    y_true, y_pred = _regression_data(n, k, np.float64, seed)
    # One jit around all four: one compilation per drawn shape keeps this test fast.
    got = _all_regression(jnp.asarray(y_true), jnp.asarray(y_pred))
    for name, (_, theirs) in REGRESSION.items():
        np.testing.assert_allclose(float(got[name]), theirs(y_true, y_pred), rtol=1e-12, err_msg=name)


@jax.jit
def _all_regression(y_true, y_pred):
    return {name: fn(y_true, y_pred) for name, (fn, _) in REGRESSION.items()}


@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_column_vector_either_side(x64, name):
    ours, theirs = REGRESSION[name]
    y_true, y_pred = _regression_data(20, None, np.float64)
    want = theirs(y_true, y_pred)
    for a, b in [(y_true[:, None], y_pred), (y_true, y_pred[:, None]), (y_true[:, None], y_pred[:, None])]:
        np.testing.assert_allclose(float(ours(a, b)), want, rtol=1e-12)


def test_r2_constant_target_like_sklearn(x64):
    y = np.full(5, 2.0)
    assert float(metrics.r2(y, y)) == skm.r2_score(y, y) == 1.0
    assert float(metrics.r2(y, y + 1.0)) == skm.r2_score(y, y + 1.0) == 0.0
    multi = np.stack([y, np.arange(5.0)], axis=1)
    pred = multi + np.array([[1.0, 0.5]])
    np.testing.assert_allclose(float(metrics.r2(multi, pred)), skm.r2_score(multi, pred), rtol=1e-12)


def test_r2_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.r2(jnp.ones(1), jnp.ones(1))


@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize(
    ("shape_true", "shape_pred"),
    [((5,), (4,)), ((5,), (5, 2)), ((5, 2), (5,)), ((5, 1), (5, 2)), ((5,), (1, 5))],
)
def test_regression_shape_mismatch_names_y_pred(name, shape_true, shape_pred):
    fn = REGRESSION[name][0]
    with pytest.raises(ValueError, match="y_pred"):
        fn(jnp.ones(shape_true), jnp.ones(shape_pred))


def test_regression_rejects_bad_rank_and_empty():
    with pytest.raises(ValueError, match="y_true"):
        metrics.mse(jnp.ones((2, 2, 2)), jnp.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        metrics.mse(jnp.ones(0), jnp.ones(0))


def test_mixed_dtypes_compared_in_the_wider_one(x64):
    y_true, y_pred = _regression_data(30, None, np.float64)
    got = metrics.mse(jnp.asarray(y_true), jnp.asarray(y_pred, dtype=jnp.float32))
    assert got.dtype == jnp.float64
    want = skm.mean_squared_error(y_true, y_pred.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(float(got), want, rtol=1e-12)
    ints = np.arange(10)
    np.testing.assert_allclose(float(metrics.mae(ints, ints + 1)), 1.0)
    np.testing.assert_allclose(float(metrics.mse(y_pred=[1, 3], y_true=[1.0, 2.0])), 0.5)


@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_jit_equals_eager(x64, name):
    fn = REGRESSION[name][0]
    y_true, y_pred = _regression_data(40, 2, np.float64)
    a, b = jnp.asarray(y_true), jnp.asarray(y_pred)
    with jax.disable_jit():  # truly op-by-op
        eager = float(fn(a, b))
    assert float(jax.jit(fn)(a, b)) == pytest.approx(eager, rel=1e-14)


# -------------------------------------------------------------- classification


@pytest.mark.parametrize("c", [2, 3, 10])
def test_accuracy_and_log_loss_match_sklearn_float64(x64, c):
    labels, logits, probs = _classification_data(80, c, np.float64)
    want_acc = skm.accuracy_score(labels, probs.argmax(axis=1))
    for scores in (logits, probs, probs.argmax(axis=1)):
        got = metrics.accuracy(jnp.asarray(labels), jnp.asarray(scores))
        np.testing.assert_allclose(float(got), want_acc, rtol=1e-12)
    got = metrics.log_loss(jnp.asarray(labels), jnp.asarray(probs))
    assert got.dtype == jnp.float64
    want = skm.log_loss(labels, probs, labels=np.arange(c))
    np.testing.assert_allclose(float(got), want, rtol=1e-12)


def test_log_loss_matches_sklearn_float32():
    labels, _, probs = _classification_data(300, 4, np.float32)
    got = metrics.log_loss(jnp.asarray(labels), jnp.asarray(probs))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), skm.log_loss(labels, probs, labels=np.arange(4)), rtol=1e-5)
    acc = metrics.accuracy(jnp.asarray(labels), jnp.asarray(probs))
    np.testing.assert_allclose(float(acc), skm.accuracy_score(labels, probs.argmax(1)), rtol=1e-5)


@given(n=st.integers(1, 200), c=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_classification_matches_sklearn_hypothesis(x64, n, c, seed):
    labels, _, probs = _classification_data(n, c, np.float64, seed)
    loss, acc = _both_classification(jnp.asarray(labels), jnp.asarray(probs))
    np.testing.assert_allclose(float(loss), skm.log_loss(labels, probs, labels=np.arange(c)), rtol=1e-12)
    np.testing.assert_allclose(float(acc), skm.accuracy_score(labels, probs.argmax(axis=1)), rtol=1e-12)


@jax.jit
def _both_classification(labels, probs):
    return metrics.log_loss(labels, probs), metrics.accuracy(labels, probs)


def test_log_loss_clips_like_sklearn(x64):
    labels = np.array([0, 1, 1, 0])
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.3, 0.7]])  # one certain miss
    got = float(metrics.log_loss(labels, probs))
    assert np.isfinite(got)
    np.testing.assert_allclose(got, skm.log_loss(labels, probs), rtol=1e-12)


def test_log_loss_binary_vector_probs(x64):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=50)
    p1 = rng.uniform(size=50)
    np.testing.assert_allclose(float(metrics.log_loss(labels, p1)), skm.log_loss(labels, p1), rtol=1e-12)
    report = metrics.classification_report(labels, p1)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(labels, p1 > 0.5))


def test_log_loss_out_of_range_label_is_nan():
    probs = jnp.full((2, 3), 1.0 / 3.0)
    assert np.isnan(float(metrics.log_loss(jnp.array([0, 3]), probs)))


def test_classification_shape_errors():
    with pytest.raises(ValueError, match="y_pred"):
        metrics.accuracy(jnp.zeros(4, jnp.int32), jnp.zeros((4, 1)))  # ambiguous column
    with pytest.raises(ValueError, match="y_pred"):
        metrics.accuracy(jnp.zeros(4, jnp.int32), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="probs"):
        metrics.log_loss(jnp.zeros(4, jnp.int32), jnp.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="y_true"):
        metrics.log_loss(jnp.zeros((4, 2), jnp.int32), jnp.full((4, 2), 0.5))


def test_classification_jit_equals_eager(x64):
    labels, logits, probs = _classification_data(64, 5, np.float64)
    y, p, s = jnp.asarray(labels), jnp.asarray(probs), jnp.asarray(logits)
    with jax.disable_jit():  # truly op-by-op
        eager_loss, eager_acc = float(metrics.log_loss(y, p)), float(metrics.accuracy(y, s))
    assert float(jax.jit(metrics.log_loss)(y, p)) == pytest.approx(eager_loss, rel=1e-14)
    assert float(jax.jit(metrics.accuracy)(y, s)) == eager_acc


# --------------------------------------------------------------------- reports


def test_regression_report_plain_floats(x64):
    y_true, y_pred = _regression_data(33, None, np.float64)
    report = metrics.regression_report(y_true, y_pred)
    assert list(report) == ["mse", "rmse", "mae", "r2"]
    assert all(type(v) is float for v in report.values())
    for name, (_, theirs) in REGRESSION.items():
        np.testing.assert_allclose(report[name], theirs(y_true, y_pred), rtol=1e-12)


def test_classification_report_plain_floats(x64):
    labels, _, probs = _classification_data(40, 3, np.float64)
    report = metrics.classification_report(labels, probs)
    assert set(report) == {"accuracy", "log_loss"}
    assert all(type(v) is float for v in report.values())
    np.testing.assert_allclose(
        report["log_loss"], skm.log_loss(labels, probs, labels=np.arange(3)), rtol=1e-12
    )
    assert report["accuracy"] == skm.accuracy_score(labels, probs.argmax(axis=1))
