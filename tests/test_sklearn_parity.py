"""The same numbers as scikit-learn: for the same random_state, data order and hyper-parameters, in
float64, jaxnn's estimators end with scikit-learn's weights -- every solver, every task.

Data order: scikit-learn shuffles with NumPy's RandomState, jaxnn with JAX's keys, so the runs
compared here use ``shuffle=False`` (both visit the rows in order). The last minibatch of every epoch
is short (120 rows in batches of 32), so the padding of jaxnn's compiled scan is in play.

L-BFGS runs 15 iterations: its iterates amplify rounding (scikit-learn's own run, its gradient
perturbed by 1e-15 relative, moves 1e-9 to 2.5e-8 from itself after 30 iterations on these data),
so a longer run measures the amplification, not the implementation. The objective and gradient
themselves are compared with scikit-learn's ``_loss_grad_lbfgs`` to rounding.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import neural_network as sk
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression

from jaxnn import MLPClassifier, MLPRegressor
from jaxnn.estimators import _lbfgs, _network

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TASKS = ("binary", "multiclass", "multilabel", "regression", "poisson")


def _data(task: str) -> tuple[np.ndarray, np.ndarray]:
    if task == "binary":
        X, y = make_classification(120, 6, random_state=0)
    elif task == "multiclass":
        X, y = make_classification(120, 6, n_informative=4, n_classes=3, random_state=0)
    elif task == "multilabel":
        X, y = make_multilabel_classification(120, 6, n_classes=3, random_state=0)
    elif task == "regression":
        X, y = make_regression(120, 6, n_targets=2, random_state=0)
        y = y / 100
    else:  # counts
        X = np.random.default_rng(0).normal(size=(120, 6))
        y = np.random.default_rng(1).poisson(np.exp(0.3 * X[:, 0] + 0.5))
    return X.astype(np.float64), y


def _pair(task: str, **kw):
    if task in ("regression", "poisson"):
        loss = "poisson" if task == "poisson" else "squared_error"
        return MLPRegressor(loss=loss, **kw), sk.MLPRegressor(loss=loss, **kw)
    return MLPClassifier(**kw), sk.MLPClassifier(**kw)


def _relative(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float:
    """The largest difference of any array, relative to that array's largest magnitude."""
    return max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(ours, theirs, strict=True))


SOLVER_SETTINGS = {
    # each sgd task exercises another learning-rate rule and momentum
    ("sgd", "binary"): dict(learning_rate="invscaling", power_t=0.3, learning_rate_init=0.05),
    ("sgd", "multiclass"): dict(learning_rate="adaptive", n_iter_no_change=2, tol=0.05),
    ("sgd", "multilabel"): dict(nesterovs_momentum=False),
    ("sgd", "regression"): dict(momentum=0.0),
    ("sgd", "poisson"): dict(learning_rate_init=0.001),
}


@pytest.mark.parametrize(("solver", "task"), list(itertools.product(("sgd", "adam", "lbfgs"), TASKS)))
def test_float64_weights_equal_sklearns(solver: str, task: str) -> None:
    X, y = _data(task)
    kw = dict(hidden_layer_sizes=(7, 5), solver=solver, activation="tanh", alpha=1e-3, random_state=0,
              shuffle=False, batch_size=32, learning_rate_init=0.01, max_iter=15 if solver == "lbfgs" else 30)
    kw.update(SOLVER_SETTINGS.get((solver, task), {}))
    ours, theirs = _pair(task, **kw)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.coefs_[0].dtype == np.float64
    assert ours.out_activation_ == theirs.out_activation_
    assert [W.shape for W in ours.coefs_] == [W.shape for W in theirs.coefs_]
    assert ours.n_iter_ == theirs.n_iter_
    assert _relative(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_) < 1e-10
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-10)
    if solver != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
        assert ours._no_improvement_count == theirs._no_improvement_count
        assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    if task == "multiclass" and solver == "sgd":
        assert theirs._optimizer.learning_rate < kw["learning_rate_init"]  # "adaptive" did divide the rate
    np.testing.assert_allclose(ours.predict(X) if task not in ("binary", "multiclass") else
                               ours.predict_proba(X),
                               theirs.predict(X) if task not in ("binary", "multiclass") else
                               theirs.predict_proba(X), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("gradients", ["manual", "autodiff"])
def test_objective_and_gradient_equal_sklearns_backprop(activation: str, task: str, gradients: str) -> None:
    """scikit-learn's test_gradient reads its private ``_loss_grad_lbfgs``; this compares jaxnn's
    objective and gradient (hand-written backward or jax.grad) with that very function."""
    X, y = _data(task)
    X, y = X[:40], y[:40]
    _, theirs = _pair(task, hidden_layer_sizes=(7, 5), activation=activation, solver="lbfgs", max_iter=1,
                      alpha=0.3, random_state=0)
    theirs.fit(X, y)  # one step away from the start, so no weight is special
    units = [X.shape[1], 7, 5, theirs.n_outputs_]
    theirs._coef_indptr, theirs._intercept_indptr, start = [], [], 0
    for fan_in, fan_out in itertools.pairwise(units):
        theirs._coef_indptr.append((start, start + fan_in * fan_out, (fan_in, fan_out)))
        start += fan_in * fan_out
    for fan_out in units[1:]:
        theirs._intercept_indptr.append((start, start + fan_out))
        start += fan_out
    packed = _lbfgs.pack(theirs.coefs_, theirs.intercepts_)
    Y = theirs._label_binarizer.transform(y).astype(float) if hasattr(theirs, "classes_") else \
        np.asarray(y, float).reshape(len(y), -1)
    buffers = ([X] + [None] * 3, [None] * 3, [np.empty(s) for s in itertools.pairwise(units)],
               [np.empty(s) for s in units[1:]])
    value, grad = theirs._loss_grad_lbfgs(packed.copy(), X, Y, None, *buffers)
    shapes = tuple(np.shape(a) for a in theirs.coefs_ + theirs.intercepts_)
    with jax.enable_x64(True):
        total = _network.total_loss(activation, theirs.out_activation_, gradients)
        fn = _lbfgs._value_and_grad(total, shapes)
        ours_value, ours_grad = fn(jnp.asarray(packed), jnp.asarray(X), jnp.asarray(Y), jnp.ones(len(X)),
                                   jnp.asarray(0.3))
    np.testing.assert_allclose(float(ours_value), value, rtol=1e-13)
    scale = np.max(np.abs(grad))
    np.testing.assert_allclose(np.asarray(ours_grad) / scale, grad / scale, rtol=0, atol=1e-13)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_sample_weight_early_stopping_and_warm_start_equal_sklearns(task: str) -> None:
    """Several minibatches with sample weights (the host applies the rule), early stopping on
    scikit-learn's split (drawn right after the initial weights, as scikit-learn draws it), the best
    weights kept; then a warm start from there."""
    X, y = _data(task)
    w = np.random.default_rng(3).uniform(0.2, 2.0, size=len(X))
    kw = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05, random_state=0, shuffle=False,
              batch_size=32, early_stopping=True, validation_fraction=0.25, n_iter_no_change=3, max_iter=60)
    ours, theirs = _pair(task, **kw)
    ours.fit(X, y, sample_weight=w)
    theirs.fit(X, y, sample_weight=w)
    assert ours.n_iter_ == theirs.n_iter_ < 60
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-10)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-12)
    assert _relative(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_) < 1e-10
    for est in (ours, theirs):
        est.set_params(warm_start=True, max_iter=10).fit(X, y, sample_weight=w)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-10)
    assert _relative(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_) < 1e-10


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_equals_sklearns(solver: str) -> None:
    X, y = _data("multiclass")
    kw = dict(hidden_layer_sizes=(6,), solver=solver, random_state=0, shuffle=False, batch_size=10,
              learning_rate="invscaling" if solver == "sgd" else "constant")
    ours, theirs = _pair("multiclass", **kw)
    for i in range(5):
        chunk = slice(24 * i, 24 * i + 24)
        ours.partial_fit(X[chunk], y[chunk], classes=[0, 1, 2])
        theirs.partial_fit(X[chunk], y[chunk], classes=[0, 1, 2])
    assert ours.n_iter_ == theirs.n_iter_ == 1 and ours.t_ == theirs.t_ == 120
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert _relative(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_) < 1e-10


def test_float32_input_trains_float32_weights_close_to_sklearns() -> None:
    X, y = _data("multiclass")
    X32 = X.astype(np.float32)
    kw = dict(hidden_layer_sizes=(7,), solver="adam", random_state=0, shuffle=False, max_iter=20)
    ours, theirs = _pair("multiclass", **kw)
    ours.fit(X32, y)
    theirs.fit(X32, y)
    assert all(a.dtype == np.float32 for a in ours.coefs_ + ours.intercepts_)
    assert ours.predict_proba(X32).dtype == np.float32
    assert _relative(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_) < 1e-4


@pytest.mark.parametrize("solver", ["sgd", "sgd-nesterov", "sgd-plain", "adam"])
def test_optax_transformations_are_sklearns_optimizers(solver: str) -> None:
    """jaxnn's scikit-learn SGD and Adam (optax transformations) against scikit-learn's own optimizer
    objects, fed the same gradients, with the learning rate changed between steps as "invscaling" does."""
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

    from jaxnn.estimators import _optim

    rng = np.random.default_rng(0)
    params = [rng.normal(size=(3, 2)), rng.normal(size=2)]
    theirs_params = [p.copy() for p in params]
    name = solver.split("-")[0]
    if name == "sgd":
        momentum = 0.0 if solver == "sgd-plain" else 0.9
        theirs = SGDOptimizer(theirs_params, 0.1, "constant", momentum, solver == "sgd-nesterov", 0.5)
        values = {"learning_rate": 0.1, "momentum": momentum}
    else:
        theirs = AdamOptimizer(theirs_params, 0.01, 0.8, 0.99, 1e-6)
        values = {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6}
    with jax.enable_x64(True):
        opt = _optim.optimizer(name, solver == "sgd-nesterov" if name == "sgd" else True)
        ours = [jnp.asarray(p) for p in params]
        state = opt.init(ours)
        for step in range(6):
            if step == 3 and name == "sgd":  # the rate changes between epochs ("invscaling", "adaptive")
                theirs.learning_rate = values["learning_rate"] = 0.03
            grads = [rng.normal(size=p.shape) for p in params]
            theirs.update_params(theirs_params, grads)
            state = _optim.with_hyperparams(state, values, np.float64)
            updates, state = opt.update([jnp.asarray(g) for g in grads], state, ours)
            ours = [p + u for p, u in zip(ours, updates, strict=True)]
            for a, b in zip(ours, theirs_params, strict=True):
                np.testing.assert_allclose(np.asarray(a), b, rtol=1e-14, atol=1e-15)
