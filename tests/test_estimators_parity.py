"""The estimators against scikit-learn's MLPs run from the same starting weights: stopping on ``tol``,
``sample_weight``, ``validation_scores_`` and ``verbose`` output, plus the refusals (huge integers, a
changed solver). Every comparison trains both in float64 with full-batch or unshuffled plain SGD, where
the two trajectories agree to rounding, so epoch counts and printed losses must agree exactly."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, make_classification, make_regression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.preprocessing import StandardScaler

from jaxnn.estimators import MAX_STEPS, MLPClassifier, MLPRegressor, load_estimator

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), (y - y.mean()) / y.std()


def _three_classes(n=90):
    X, y = make_classification(n_samples=n, n_features=5, n_informative=4, n_redundant=0, n_classes=3,
                               random_state=0)
    return StandardScaler().fit_transform(X), y


def _same_start(ours, theirs, X, y, sample_weight=None):
    """Fit both for one epoch, then give scikit-learn our weights and reset both runs' curves and
    counters: the next ``warm_start`` fit of each starts from the same parameters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.set_params(max_iter=1).fit(X, y, sample_weight=sample_weight)
        theirs.set_params(max_iter=1).fit(X, y, sample_weight=sample_weight)
    theirs.coefs_ = [W.copy() for W in ours.coefs_]
    theirs.intercepts_ = [b.copy() for b in ours.intercepts_]
    for est in (ours, theirs):
        est.loss_curve_, est.best_loss_, est._no_improvement_count = [], np.inf, 0
    return ours, theirs


def _pair(kind, **kw):
    """(jaxnn, scikit-learn) estimators with the same parameters; ours trains in float64."""
    ours, theirs = {"reg": (MLPRegressor, SkMLPRegressor), "clf": (MLPClassifier, SkMLPClassifier)}[kind]
    return ours(dtype="float64", **kw), theirs(**kw)


# --------------------------------------------------------------------------- tol


@pytest.mark.parametrize(("kind", "tol", "epochs"),
                         [("reg", 1e-3, 52), ("reg", 1e-4, 166), ("clf", 1e-3, None)])
def test_tol_stops_at_sklearns_epoch_and_warm_start_carries_the_count(kind, tol, epochs):
    """From the same start scikit-learn stops after 52 and 166 epochs, and so must we (the 0.1 trainer
    took about 3.6x and 8x as many: its best loss only moved on an improvement larger than tol)."""
    X, y = _diabetes() if kind == "reg" else _three_classes()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, batch_size=len(X), shuffle=False,
              learning_rate_init=0.1, tol=tol, random_state=0)
    ours, theirs = _same_start(*_pair(kind, **kw), X, y)
    for est in (ours, theirs):
        est.set_params(max_iter=5000, warm_start=True).fit(X, y)
    assert len(theirs.loss_curve_) < 5000  # scikit-learn's tol rule fired
    assert ours.n_iter_ == theirs.n_iter_ == len(ours.loss_curve_)  # this fit's epochs, as scikit-learn
    if epochs is not None:
        assert theirs.n_iter_ == epochs
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(ours.best_loss_, theirs.best_loss_, rtol=1e-12)
    assert ours._no_improvement_count == theirs._no_improvement_count == 11
    # a second warm start continues the best loss and the count: both stop after the same epochs
    for est in (ours, theirs):
        est.fit(X, y)
    assert len(ours.loss_curve_) == len(theirs.loss_curve_)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    for W, V in zip(ours.coefs_, theirs.coefs_, strict=True):
        np.testing.assert_allclose(W, V, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- sample_weight


@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_sample_weight_gives_sklearns_updates_and_losses(kind):
    """Three unshuffled minibatches of 20 per epoch, weights with zeros and a large alpha: the weighted
    loss and its L2 term over each minibatch's weight sum give scikit-learn's parameters and curve."""
    if kind == "reg":
        # one output: for several, scikit-learn's gradient is that of the sum over outputs of the loss
        # whose mean over outputs it reports (jaxnn: the mean's gradient; see the module docstring)
        X, y = make_regression(n_samples=60, n_features=4, noise=5.0, random_state=0)
        X, y = StandardScaler().fit_transform(X), y / y.std()
    else:
        X, y = _three_classes(60)
    w = np.random.default_rng(0).integers(0, 4, size=len(X)).astype(float)
    w[:20] *= 0.25  # the minibatches' weight sums differ
    kw = dict(hidden_layer_sizes=(6,), activation="tanh", solver="sgd", momentum=0.0, batch_size=20,
              shuffle=False, learning_rate_init=0.05, alpha=0.5, tol=0.0, random_state=0)
    ours, theirs = _same_start(*_pair(kind, **kw), X, y, sample_weight=w)
    for est in (ours, theirs):
        est.set_params(max_iter=8, warm_start=True).fit(X, y, sample_weight=w)
    assert len(ours.loss_curve_) == len(theirs.loss_curve_) == 8
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    for W, V in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(W, V, rtol=1e-10, atol=1e-13)
    # partial_fit takes the weights too
    ours.partial_fit(X, y, sample_weight=w)
    theirs.partial_fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.loss_curve_[-1], theirs.loss_curve_[-1], rtol=1e-12)


@pytest.mark.filterwarnings("ignore:Got `batch_size`")  # 200 > rows: one minibatch, as scikit-learn warns
@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_integer_weights_equal_repeated_rows(kind):
    X, y = _three_classes(40)
    if kind == "reg":
        y = X @ np.array([1.0, -2.0, 0.5, 0.0, 1.0])
    w = np.random.default_rng(1).integers(0, 4, size=len(X))
    kw = dict(hidden_layer_sizes=(7,), batch_size=200, shuffle=False, max_iter=40, alpha=0.1, random_state=0,
              learning_rate_init=0.01)
    make = MLPRegressor if kind == "reg" else MLPClassifier
    weighted = make(dtype="float64", **kw).fit(X, y, sample_weight=w)
    repeated = make(dtype="float64", **kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.n_iter_ == repeated.n_iter_
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)
    for W, V in zip(weighted.coefs_, repeated.coefs_, strict=True):
        np.testing.assert_allclose(W, V, rtol=1e-8, atol=1e-12)
    # ones change nothing
    plain = make(dtype="float64", **kw).fit(X, y)
    ones = make(dtype="float64", **kw).fit(X, y, sample_weight=np.ones(len(X)))
    for W, V in zip(plain.coefs_, ones.coefs_, strict=True):
        np.testing.assert_array_equal(W, V)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (-np.ones(20), "Negative values"),
        (np.zeros(20), "at least one non-zero"),
        (np.ones(21), "sample_weight"),
        (np.ones((20, 2)), "1D array"),
        (np.full(20, np.nan), "NaN"),
    ],
)
def test_bad_sample_weights_raise_value_errors(weights, match):
    X, y = _three_classes(20)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(max_iter=2).fit(X, y, sample_weight=weights)


def _estimator_rng(sizes, random_state=0):
    """The estimator's RandomState after its first draws, scikit-learn's initialisation (W then b of
    each layer, as scikit-learn draws them): the validation split comes next, as in scikit-learn."""
    rng = np.random.RandomState(random_state)
    for fan_in, fan_out in itertools.pairwise(sizes):
        rng.uniform(size=(fan_in, fan_out))
        rng.uniform(size=fan_out)
    return rng


def test_early_stopping_refuses_a_validation_split_without_weight():
    X, y = _diabetes()
    w = np.ones(len(X))
    rng = _estimator_rng([X.shape[1], 100, 1])
    _, val = train_test_split(np.arange(len(X)), random_state=rng, test_size=0.1)
    w[val] = 0.0
    with pytest.raises(ValueError, match="validation split are all zero"):
        MLPRegressor(early_stopping=True, random_state=0, max_iter=3).fit(X, y, sample_weight=w)


# --------------------------------------------------------------------------- early stopping


def _sklearn_stop(scores, tol, n_iter_no_change):
    """scikit-learn's _update_no_improvement_count on validation scores: the epoch it stops at."""
    best, count = -np.inf, 0
    for epoch, score in enumerate(scores, 1):
        count = count + 1 if score < best + tol else 0
        best = max(best, score)
        if count > n_iter_no_change:
            return epoch
    return None


@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_validation_scores_are_sklearns_score_of_the_kept_parameters(kind):
    if kind == "reg":
        X, y = _diabetes()
        w = np.random.default_rng(2).uniform(0.5, 2.0, size=len(X))
        est = MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, dtype="float64")
    else:
        X, y = _three_classes(300)
        w = None
        est = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.02)
    est.set_params(early_stopping=True, validation_fraction=0.2, n_iter_no_change=5, max_iter=300,
                   random_state=0).fit(X, y, sample_weight=w)
    assert len(est.validation_scores_) == est.n_iter_ < 300
    assert est.best_loss_ is None
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.n_iter_ == _sklearn_stop(est.validation_scores_, est.tol, est.n_iter_no_change)
    # the same split as the estimator's: its first draws, then train_test_split with the same RandomState
    rng = _estimator_rng([X.shape[1], 16, 1 if kind == "reg" else 3])
    ww = np.ones(len(X)) if w is None else w
    _, X_val, _, y_val, _, w_val = train_test_split(X, y, ww, random_state=rng, test_size=0.2,
                                                    stratify=None)  # scikit-learn stratifies binary y only
    score = est.score(X_val, y_val, sample_weight=w_val)  # scikit-learn's accuracy_score / r2_score
    np.testing.assert_allclose(est.best_validation_score_, score, rtol=1e-9 if kind == "reg" else 1e-6)
    theirs = (SkMLPRegressor if kind == "reg" else SkMLPClassifier)(early_stopping=True).fit(X[:50], y[:50])
    assert isinstance(theirs.validation_scores_, list) and isinstance(est.validation_scores_, list)


def test_early_stopping_scores_survive_save_and_load(tmp_path):
    X, y = _three_classes(120)
    est = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=15, random_state=0).fit(X, y)
    est.save(tmp_path / "m.npz")
    back = load_estimator(tmp_path / "m.npz")
    assert back.validation_scores_ == est.validation_scores_
    assert back.best_validation_score_ == est.best_validation_score_ and back.best_loss_ is None
    assert back._no_improvement_count == est._no_improvement_count


# --------------------------------------------------------------------------- verbose


def _template(text):
    """The output with every number replaced by N: the format, without the values."""
    return re.sub(r"-?\d+(\.\d+)?", "N", text)


def test_verbose_prints_sklearns_lines_with_sklearns_values(capsys):
    X, y = _diabetes()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, batch_size=len(X), shuffle=False,
              learning_rate_init=0.1, tol=1e-3, random_state=0)
    ours, theirs = _same_start(*_pair("reg", **kw), X, y)
    capsys.readouterr()
    ours.set_params(max_iter=500, warm_start=True, verbose=True).fit(X, y)
    mine = capsys.readouterr()
    theirs.set_params(max_iter=500, warm_start=True, verbose=True).fit(X, y)
    sk = capsys.readouterr()
    assert mine.err == ""
    assert mine.out == sk.out  # the same lines, the same numbers to 8 decimals
    lines = mine.out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ") and len(lines) == 53
    assert lines[-1] == ("Training loss did not improve more than tol=0.001000 for 10 consecutive epochs. "
                         "Stopping.")


def test_verbose_with_early_stopping_has_sklearns_format(capsys):
    X, y = _three_classes(200)
    kw = dict(hidden_layer_sizes=(8,), early_stopping=True, n_iter_no_change=3, max_iter=300, random_state=0,
              verbose=True)
    MLPClassifier(**kw).fit(X, y)
    mine = capsys.readouterr().out.splitlines()
    SkMLPClassifier(**kw).fit(X, y)
    sk = capsys.readouterr().out.splitlines()
    assert _template("\n".join(mine[:2] + mine[-3:])) == _template("\n".join(sk[:2] + sk[-3:]))
    assert [_template(s) for s in set(mine)] and {_template(s) for s in mine} == {_template(s) for s in sk}
    assert mine[1].startswith("Validation score: ")


def test_verbose_lines_reach_a_pipe():
    """Outside a terminal (stdout a pipe) every epoch's line is printed, as scikit-learn does."""
    code = ("import numpy as np; from jaxnn.estimators import MLPRegressor; "
            "X = np.random.default_rng(0).normal(size=(30, 3)); "
            "MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, verbose=True, random_state=0).fit(X, X[:, 0])")
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [s.split(",")[0] for s in lines] == ["Iteration 1", "Iteration 2", "Iteration 3"]
    assert all(re.fullmatch(r"Iteration \d+, loss = \d+\.\d{8}", s) for s in lines)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("params", "pieces"),
    [
        (dict(max_iter=2**40), ("max_iter", "1099511627776", f"limit of {MAX_STEPS}")),
        (dict(max_iter=2**31 - 1), ("max_iter", "3 minibatches", f"limit of {MAX_STEPS}")),
        (dict(n_iter_no_change=2**40), ("n_iter_no_change", f"limit of {MAX_STEPS - 1}")),
        (dict(hidden_layer_sizes=(2**40,)), ("hidden_layer_sizes", f"limit of {MAX_STEPS}")),
    ],
)
def test_huge_integers_are_refused_naming_the_argument_and_its_limit(params, pieces):
    X, y = _three_classes(30)
    with pytest.raises(ValueError) as exc:
        MLPClassifier(batch_size=10, **params).fit(X, y)
    for piece in pieces:
        assert piece in str(exc.value)


@pytest.mark.parametrize("change", [dict(solver="sgd"), dict(solver="sgd", momentum=0.0)])
def test_warm_start_restarts_the_optimizer_and_partial_fit_refuses_a_changed_solver(change, tmp_path):
    """As scikit-learn: a warm_start fit starts a new optimizer from the fitted weights (so any solver
    may follow), partial_fit continues the fitted optimizer's state (a changed solver is a ValueError
    here; scikit-learn silently keeps the old optimizer object)."""
    X, y = _three_classes(40)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    est.save(tmp_path / "m.npz")
    loaded = load_estimator(tmp_path / "m.npz")
    for e in (est, loaded):
        e.set_params(**change)
        with pytest.raises(ValueError, match=r"solver: the fitted optimizer state is not one of solver='sgd"):
            e.partial_fit(X, y)
        before = [W.copy() for W in e.coefs_]
        e.set_params(warm_start=True).fit(X, y)  # a new optimizer, from the fitted weights
        assert e.n_iter_ == 2 and not np.allclose(before[0], e.coefs_[0])
        e.partial_fit(X, y)  # continues the new (sgd) optimizer
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        est.set_params(hidden_layer_sizes=(5,)).fit(X, y)
    est.set_params(warm_start=False).fit(X, y)  # a fresh fit takes any solver and layers
    assert est.coefs_[0].shape == (5, 5)


def test_refits_of_the_same_shapes_reuse_the_compiled_program():
    from jaxnn import engine

    X, y = _three_classes(60)
    kw = dict(hidden_layer_sizes=(5,), max_iter=3)
    MLPClassifier(random_state=0, **kw).fit(X, y, sample_weight=np.ones(len(X)))
    programs = dict(engine._COMPILED)
    MLPClassifier(random_state=1, **kw).fit(X, y)  # another seed, no weights: the same program
    MLPClassifier(random_state=2, **kw).fit(X, y)
    assert dict(engine._COMPILED) == programs
