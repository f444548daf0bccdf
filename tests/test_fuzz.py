"""Hypothesis drives the training API, the experiment glue, the CSV reader and the estimators.

Random shapes, dtypes, ranks, NaN/inf injection, mismatched rows and huge learning rates.
The contract under test: only documented exception types come out -- ``ValueError``,
``TypeError`` (``FileNotFoundError`` etc. are not reachable here) and
:class:`~jaxnn.errors.DivergedError` -- and whatever does *not* raise is sound: finite
parameters and predictions of the right shape. Injected NaN/inf must always be refused
(never a silent NaN), with a message naming the argument.

Every new shape compiles a new scan, so example counts are small and runs are a few
steps long; the profile is derandomized (tests/conftest.py), so CI sees the same cases.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from jaxnn import experiment, names
from jaxnn.datasets import Dataset, load_csv, split_dataset
from jaxnn.errors import DivergedError
from jaxnn.training import TrainConfig, fit

DOCUMENTED = (ValueError, TypeError, DivergedError)

# dtypes a user might hand over; the non-real ones must be refused
REAL_DTYPES = ["float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"]
BAD_DTYPES = ["complex64", "object", "<U3", "datetime64[s]"]


def _finite_tree(tree: Any) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


@st.composite
def arrays_for_fit(draw: st.DrawFn) -> dict[str, Any]:
    """X, Y and what was done to them: dtype, rank change, NaN/inf injection, row mismatch."""
    n = draw(st.integers(1, 9))
    d = draw(st.integers(1, 3))
    k = draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X = rng.normal(size=(n, d))
    Y = rng.normal(size=(n, k))
    spoil = draw(st.sampled_from(["none", "none", "none", "nan", "inf", "dtype", "rank", "rows"]))
    x_dtype = draw(st.sampled_from(REAL_DTYPES))
    with np.errstate(invalid="ignore", over="ignore"):
        X = (X * 3).astype(x_dtype)  # ints/bools from normals: values the dtype can hold
    where = None
    if spoil in ("nan", "inf"):
        target = draw(st.sampled_from(["X", "Y"]))
        A = (X if target == "X" else Y).astype(np.float64)
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, A.shape[1] - 1))
        A[i, j] = np.nan if spoil == "nan" else draw(st.sampled_from([np.inf, -np.inf]))
        if target == "X":
            X = A
        else:
            Y = A
        where = (target, i, j)
    elif spoil == "dtype":
        bad = draw(st.sampled_from(BAD_DTYPES))
        X = np.full((n, d), "abc") if bad == "<U3" else np.ones((n, d), dtype=bad)
    elif spoil == "rank":
        X = X.reshape(n, d, 1) if draw(st.booleans()) else X.reshape(-1)
    elif spoil == "rows":
        Y = Y[: max(n - 1, 0)] if n > 1 else np.concatenate([Y, Y])
    return {"X": X, "Y": Y, "spoil": spoil, "where": where}


@settings(max_examples=20)
@given(
    data=arrays_for_fit(),
    hidden=st.sampled_from([(), (2,), (3, 2)]),
    batch_size=st.integers(1, 10),
    steps=st.integers(1, 3),
    lr=st.sampled_from([1e-2, 1e6, 1e20]),
    optimizer=st.sampled_from(["sgd", "adam"]),
    dtype=st.sampled_from(["float32", "float64"]),
    gradients=st.sampled_from(["manual", "autodiff"]),
)
def test_fit_raises_only_documented_errors(data: dict[str, Any], hidden: tuple[int, ...], batch_size: int,
                                           steps: int, lr: float, optimizer: str, dtype: str,
                                           gradients: str) -> None:
    config = TrainConfig(hidden=hidden, batch_size=batch_size, steps=steps, lr=lr, optimizer=optimizer,
                         dtype=dtype, gradients=gradients, init="glorot")
    try:
        result = fit(config, data["X"], data["Y"])
        event("trained")
    except DivergedError as e:
        event("diverged")
        assert data["spoil"] == "none" and lr >= 1e6  # only a huge step diverges clean data
        assert _finite_tree(e.result.params) and e.result.steps == e.step < steps
        return
    except (ValueError, TypeError) as e:
        assert data["spoil"] != "none", e  # clean data is never refused
        if data["where"] is not None:
            name, i, j = data["where"]
            assert isinstance(e, ValueError) and str(e).startswith(f"{name}:") and "NaN or inf" in str(e)
            assert f"row {i}, column {j}" in str(e)
        return
    assert data["spoil"] == "none", f"{data['spoil']} was accepted"
    assert result.steps == steps and result.diverged_step is None
    assert _finite_tree(result.params) and np.all(np.isfinite(result.history.train_loss))
    assert result.history.train_loss.shape == (steps,)


@settings(max_examples=6)
@given(
    n=st.integers(2, 12),
    d=st.integers(1, 3),
    classes=st.integers(0, 3),  # 0: regression
    test_size=st.sampled_from([0.25, 0.5, 0.0, 1.0, -1.0, math.nan, 0.95]),
    lr=st.sampled_from([1e-2, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_experiment_run_raises_only_documented_errors(n: int, d: int, classes: int, test_size: float,
                                                      lr: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    task = "classification" if classes >= 2 else "regression"
    y = rng.integers(0, classes, n) if task == "classification" else rng.normal(size=n)
    ds = Dataset(name="fuzz", X=rng.normal(size=(n, d)), y=y, feature_names=tuple(f"f{j}" for j in range(d)),
                 target_name="t", task=task,
                 classes=np.arange(classes) if task == "classification" else None)
    config = TrainConfig(hidden=(2,), loss=names.task_loss(task), optimizer="sgd", lr=lr, epochs=2,
                         batch_size=4)
    try:
        split = split_dataset(ds, test_size=test_size, random_state=seed)
        report = experiment.run(config, split)
    except DOCUMENTED as e:
        if isinstance(e, DivergedError):
            assert lr == 1e6 and _finite_tree(e.result.params)
        else:  # refused: an invalid test_size, one that empties a split, or a 1-row split (R²)
            assert "test_size" in str(e), e
        return
    assert 0 < test_size < 1
    out = report.as_json()
    assert all(math.isfinite(v) for part in ("train", "test") for v in out[part].values())


# ------------------------------------------------------------------------ CSV reader

_GOOD_CELLS = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
                        st.integers(-1000, 1000).map(str))
_BAD_CELLS = st.sampled_from(["", " ", "nan", "NaN", "inf", "-Infinity", "1e999", "x", "1,5", '"2"', '"',
                              "1 2", "0x10", "--1", "\u00a0", "\ufeff3", "+.5", "\t7", "1;2"])


@st.composite
def csv_text(draw: st.DrawFn) -> tuple[list[str], str, str]:
    """(header names, file text, target): mostly well-formed, one kind of damage now and then."""
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "y"]), min_size=1, max_size=4, unique=True))
    header = list(names)
    damage = draw(st.sampled_from(["none", "none", "cell", "ragged", "header", "blank_lines"]))
    if damage == "header":
        header[draw(st.integers(0, len(header) - 1))] = draw(st.sampled_from(["", " ", names[0]]))
    n_rows = draw(st.sampled_from([0, 1, 2, 3, 5, 5]))
    rows = [[draw(_GOOD_CELLS) for _ in header] for _ in range(n_rows)]
    if rows and damage == "cell":
        rows[draw(st.integers(0, n_rows - 1))][draw(st.integers(0, len(header) - 1))] = draw(_BAD_CELLS)
    if rows and damage == "ragged":
        r = draw(st.integers(0, n_rows - 1))
        rows[r] = rows[r][:-1] if draw(st.booleans()) else [*rows[r], "1"]
    lines = [",".join(header), *(",".join(r) for r in rows)]
    if damage == "blank_lines":
        lines = [x for line in lines for x in (line, "")]
    target = draw(st.sampled_from([*names, *names, "missing"]))
    return [h.strip() for h in header], "\n".join(lines) + "\n", target


@settings(max_examples=100)
@given(
    table=csv_text(),
    task=st.sampled_from([None, "regression", "regression", "classification", "cluster"]),
)
def test_csv_reader_raises_only_documented_errors(table: tuple[list[str], str, str], task: str | None,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    header, text, target = table
    path = tmp_path_factory.mktemp("csv") / "fuzz.csv"
    path.write_text(text, encoding="utf-8")
    try:
        ds = load_csv(path, target, task=task)
    except (ValueError, TypeError) as e:
        msg = str(e)
        assert "\n" not in msg and msg  # one line, never empty
        event(f"refused: {type(e).__name__}")
        return
    event("accepted")
    assert ds.n_samples >= 2 and ds.X.shape == (ds.n_samples, len(header) - 1)
    assert np.all(np.isfinite(ds.X)) and np.all(np.isfinite(ds.y.astype(np.float64)))
    assert ds.target_name == target and target in header
    # the numbers are the file's: the target column read back independently
    column = [line.split(",")[header.index(target)] for line in text.splitlines()[1:] if line]
    y = ds.classes[ds.y] if ds.task == "classification" else ds.y
    np.testing.assert_array_equal(np.asarray(y, np.float64), np.asarray([float(c) for c in column]))


# ------------------------------------------------------------------------ estimators


@settings(max_examples=12)
@given(
    kind=st.sampled_from(["MLPRegressor", "MLPClassifier"]),
    data=arrays_for_fit(),
    hidden=st.sampled_from([(2,), (3, 2)]),
    solver=st.sampled_from(["sgd", "adam"]),
    lr=st.sampled_from([1e-3, 1e6]),
    batch_size=st.sampled_from(["auto", 1, 4]),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_estimators_raise_only_documented_errors(kind: str, data: dict[str, Any], hidden: tuple[int, ...],
                                                 solver: str, lr: float, batch_size: Any, dtype: str) -> None:
    import jaxnn

    X, Y = data["X"], data["Y"]
    y: Any = Y[:, 0] if Y.shape[1] == 1 else Y
    if kind == "MLPClassifier":  # 1-D labels, keeping an injected NaN/inf of Y
        y = (np.nan_to_num(Y[:, 0]) > 0).astype(np.float64)
        if data["where"] is not None and data["where"][0] == "Y":
            _, i, j = data["where"]
            y[i] = Y[i, j]
    est = getattr(jaxnn, kind)(hidden_layer_sizes=hidden, solver=solver, learning_rate_init=lr,
                               batch_size=batch_size, max_iter=2, random_state=0, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 2 iterations never converge
        warnings.filterwarnings("ignore", "Got `batch_size`")  # scikit-learn's note: batch_size > rows
        try:
            est.fit(X, y)
        except DOCUMENTED as e:
            if isinstance(e, DivergedError):
                assert lr == 1e6 and _finite_tree(e.result.params)
            if data["spoil"] in ("nan", "inf"):
                assert isinstance(e, ValueError) and ("NaN" in str(e) or "infinity" in str(e)), e
            return
    # accepted: never NaN/inf data (scikit-learn's validate_data refuses it)
    assert data["spoil"] not in ("nan", "inf")
    pred = est.predict(X)
    assert pred.shape[0] == X.shape[0]
    if kind == "MLPRegressor":
        assert np.all(np.isfinite(pred))
    else:
        assert set(np.unique(pred)) <= set(est.classes_)
        proba = est.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
