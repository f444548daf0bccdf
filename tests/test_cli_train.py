"""`jaxnn train` end to end: the --json contract, every flag, and bad input as exit status 2.

Most runs are in-process (``jaxnn.cli.main`` with capsys, no JAX start-up per run); one run
and one failure go through a real ``python -m jaxnn.cli`` subprocess. Reported metrics are
checked against an independent recomputation: the data are rebuilt with scikit-learn
(``train_test_split``, ``StandardScaler``), the same configuration is trained with
``jaxnn.training.fit`` (training is deterministic) and the predictions are scored with
``sklearn.metrics``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.datasets
from sklearn import metrics as skm
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from jaxnn import models, names
from jaxnn.cli import main
from jaxnn.training import TrainConfig, fit

ROOT = Path(__file__).resolve().parents[1]

CONTRACT = {"dataset", "model", "steps", "test", "train", "history", "seconds"}
REGRESSION_METRICS = {"mse", "rmse", "mae", "r2"}
CLASSIFICATION_METRICS = {"accuracy", "log_loss"}

# Small, fast runs: diabetes has 442 rows -> 309 train / 133 test (test_size 0.3).
N_TRAIN_DIABETES = 309


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``jaxnn`` in-process: (exit status, stdout, stderr). argparse errors exit via SystemExit."""
    try:
        status = main(argv)
    except SystemExit as e:  # usage errors: _Parser.error -> exit(2, message)
        status = int(e.code) if e.code is not None else 0
    out, err = capsys.readouterr()
    return status, out, err


def train_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    status, out, err = cli(["train", *argv, "--json"], capsys)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got {len(lines)}"
    report = json.loads(lines[0])
    assert isinstance(report, dict)
    return report


def check_contract(r: dict, task: str) -> None:
    assert CONTRACT <= set(r)
    want = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    assert set(r["test"]) == want and set(r["train"]) == want
    assert all(math.isfinite(v) for v in (*r["test"].values(), *r["train"].values()))
    assert set(r["history"]) == {"train_loss", "val_loss"}
    assert r["steps"] == len(r["history"]["train_loss"])
    assert set(r["seconds"]) >= {"compile", "train"}
    assert r["seconds"]["compile"] > 0 and r["seconds"]["train"] >= 0


def sklearn_split(name: str, *, split_seed: int = 80718, scale_before_split: bool = False):
    """The split the CLI should use, built with scikit-learn only."""
    loader = {"diabetes": sklearn.datasets.load_diabetes, "digits": sklearn.datasets.load_digits}[name]
    X, y = loader(return_X_y=True)
    if scale_before_split:
        X = StandardScaler().fit_transform(X)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=split_seed)
    if not scale_before_split:
        sc = StandardScaler().fit(X_tr)
        X_tr, X_te = sc.transform(X_tr), sc.transform(X_te)
    return X_tr, X_te, y_tr, y_te


def reference_outputs(config: TrainConfig, X_tr, y_tr, X_te, *, n_classes: int | None = None,
                      standardise: bool = False):
    """Train ``config`` directly with ``fit`` and return the test outputs (n, k) as float64.

    ``standardise``: train on ``(y - mean) / std`` (population std) and map the outputs back, as
    ``jaxnn train`` does for regression by default (``--target-scaling``)."""
    Y = np.eye(n_classes)[y_tr] if n_classes else np.asarray(y_tr, np.float64)[:, None]
    mean, std = (Y.mean(axis=0), Y.std(axis=0)) if standardise else (0.0, 1.0)
    res = fit(config, X_tr, (Y - mean) / std)
    with jax.enable_x64(config.dtype == "float64"):
        out = models.predict(res.params, jnp.asarray(X_te, config.dtype), names.activation(config.activation))
        return np.asarray(out, dtype=np.float64) * std + mean, res


def test_subprocess_json_is_one_object_with_the_contract():
    proc = subprocess.run(
        [sys.executable, "-m", "jaxnn.cli", "train", "--data", "diabetes", "--model", "linear",
         "--steps", "30", "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    r = json.loads(proc.stdout)
    check_contract(r, "regression")
    assert r["dataset"] == "diabetes" and r["model"] == "linear" and r["steps"] == 30


def test_regression_metrics_equal_an_independent_recomputation(capsys):
    argv = ["--data", "diabetes", "--model", "mlp", "--hidden", "8", "--activation", "tanh",
            "--optimizer", "adam", "--lr", "0.01", "--batch-size", "32", "--epochs", "4",
            "--init", "glorot", "--seed", "3", "--dtype", "float64"]
    r = train_json(argv, capsys)
    check_contract(r, "regression")
    spe = math.ceil(N_TRAIN_DIABETES / 32)
    assert r["steps"] == 4 * spe and r["history"]["val_loss"] == []  # no validation rows asked for
    assert r["rows"] == {"train": N_TRAIN_DIABETES, "validation": 0, "test": 442 - N_TRAIN_DIABETES}
    assert r["model"] == "mlp[8 tanh]"

    X_tr, X_te, y_tr, y_te = sklearn_split("diabetes")
    config = TrainConfig(hidden=(8,), activation="tanh", optimizer="adam", lr=0.01, batch_size=32,
                         epochs=4, init="glorot", seed=3, dtype="float64")
    out, res = reference_outputs(config, X_tr, y_tr, X_te, standardise=True)
    pred = out[:, 0]
    want = {
        "mse": skm.mean_squared_error(y_te, pred),
        "rmse": skm.root_mean_squared_error(y_te, pred),
        "mae": skm.mean_absolute_error(y_te, pred),
        "r2": skm.r2_score(y_te, pred),
    }
    for k, v in want.items():
        assert r["test"][k] == pytest.approx(v, rel=1e-9), k
    np.testing.assert_allclose(r["history"]["train_loss"], res.history.train_loss, rtol=1e-9)


def test_classification_linear_softmax_metrics_equal_sklearn(capsys):
    r = train_json(["--data", "digits", "--model", "linear", "--optimizer", "adam", "--lr", "0.01",
                    "--epochs", "3", "--dtype", "float64"], capsys)
    check_contract(r, "classification")
    assert r["model"] == "linear" and r["dataset"] == "digits"

    X_tr, X_te, y_tr, y_te = sklearn_split("digits")
    config = TrainConfig(hidden=(), loss="cross_entropy", optimizer="adam", lr=0.01, batch_size=32,
                         epochs=3, init="glorot", dtype="float64")
    logits, _ = reference_outputs(config, X_tr, y_tr, X_te, n_classes=10)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert r["test"]["accuracy"] == pytest.approx(skm.accuracy_score(y_te, probs.argmax(axis=1)), abs=1e-12)
    assert r["test"]["log_loss"] == pytest.approx(skm.log_loss(y_te, probs, labels=range(10)), rel=1e-7)
    assert r["test"]["accuracy"] > 0.85  # softmax regression on digits, even after 3 epochs


@pytest.mark.parametrize(("scale_before_split", "split_seed"), [(True, 80718), (False, 7)])
def test_split_flags_use_the_documented_split(capsys, scale_before_split, split_seed):
    argv = ["--data", "diabetes", "--model", "linear", "--optimizer", "sgd", "--lr", "0.05",
            "--steps", "40", "--dtype", "float64", "--split-seed", str(split_seed)]
    r = train_json([*argv, "--scale-before-split"] if scale_before_split else argv, capsys)
    X_tr, X_te, y_tr, y_te = sklearn_split("diabetes", split_seed=split_seed,
                                           scale_before_split=scale_before_split)
    config = TrainConfig(hidden=(), optimizer="sgd", lr=0.05, batch_size=32, steps=40, init="glorot",
                         dtype="float64")
    # --target-scaling auto: the seed's --scale-before-split trains on raw targets, else standardised
    out, _ = reference_outputs(config, X_tr, y_tr, X_te, standardise=not scale_before_split)
    assert r["test"]["mse"] == pytest.approx(skm.mean_squared_error(y_te, out[:, 0]), rel=1e-9)
    assert r["test"]["r2"] == pytest.approx(skm.r2_score(y_te, out[:, 0]), rel=1e-9)


def test_target_scaling_none_trains_on_the_raw_targets(capsys):
    argv = ["--data", "diabetes", "--model", "linear", "--optimizer", "sgd", "--lr", "0.05",
            "--steps", "40", "--dtype", "float64", "--target-scaling"]
    raw, standard = train_json([*argv, "none"], capsys), train_json([*argv, "standard"], capsys)
    X_tr, X_te, y_tr, y_te = sklearn_split("diabetes")
    config = TrainConfig(hidden=(), optimizer="sgd", lr=0.05, batch_size=32, steps=40, init="glorot",
                         dtype="float64")
    for r, standardise in ((raw, False), (standard, True)):
        out, _ = reference_outputs(config, X_tr, y_tr, X_te, standardise=standardise)
        assert r["test"]["r2"] == pytest.approx(skm.r2_score(y_te, out[:, 0]), rel=1e-9)
    assert standard["test"]["r2"] != raw["test"]["r2"]  # the two are different runs


def test_hidden_repeatable_equals_comma_list(capsys):
    base = ["--data", "diabetes", "--activation", "relu", "--steps", "15", "--dtype", "float64"]
    a = train_json([*base, "--hidden", "8", "--hidden", "4"], capsys)
    b = train_json([*base, "--hidden", "8,4"], capsys)
    assert a["model"] == b["model"] == "mlp[8-4 relu]"
    assert a["test"] == b["test"] and a["history"] == b["history"]


def test_steps_and_epochs(capsys):
    r = train_json(["--data", "diabetes", "--model", "linear", "--steps", "7"], capsys)
    assert r["steps"] == 7 and len(r["history"]["train_loss"]) == 7
    r = train_json(["--data", "diabetes", "--model", "linear", "--epochs", "2", "--batch-size", "100"],
                   capsys)
    assert r["steps"] == 2 * math.ceil(N_TRAIN_DIABETES / 100) == len(r["history"]["train_loss"])
    r = train_json(["--data", "diabetes", "--model", "linear", "--epochs", "2", "--batch-size", "100",
                    "--validation-fraction", "0.2"], capsys)
    assert len(r["history"]["val_loss"]) == 2
    assert r["rows"] == {"train": 247, "validation": 62, "test": 133}  # ceil(0.2 * 309) = 62
    status, _, err = cli(["train", "--steps", "5", "--epochs", "2"], capsys)
    assert status == 2 and "not allowed with" in err


def test_manual_and_autodiff_gradients_agree_in_float64(capsys):
    base = ["--data", "diabetes", "--hidden", "6", "--optimizer", "sgd", "--lr", "0.01",
            "--steps", "60", "--dtype", "float64"]
    m = train_json([*base, "--gradients", "manual"], capsys)
    a = train_json([*base, "--gradients", "autodiff"], capsys)
    assert m["config"]["gradients"] == "manual" and a["config"]["gradients"] == "autodiff"
    np.testing.assert_allclose(m["history"]["train_loss"], a["history"]["train_loss"], rtol=1e-9)
    for k in REGRESSION_METRICS:
        assert m["test"][k] == pytest.approx(a["test"][k], rel=1e-9)


def test_seed_changes_results_and_dtype_is_honoured(capsys):
    base = ["--data", "diabetes", "--hidden", "6", "--steps", "20"]
    s0 = train_json([*base, "--seed", "0"], capsys)
    s0_again = train_json([*base, "--seed", "0"], capsys)
    s1 = train_json([*base, "--seed", "1"], capsys)
    f64 = train_json([*base, "--seed", "0", "--dtype", "float64"], capsys)
    assert s0["test"] == s0_again["test"]  # deterministic for a seed
    assert s0["test"]["mse"] != s1["test"]["mse"]
    assert s0["config"]["dtype"] == "float32" and f64["config"]["dtype"] == "float64"
    # float64 metrics carry float64 digits (float32 ones are exactly representable in float32).
    assert all(float(np.float32(v)) == v for v in s0["test"].values())
    assert any(float(np.float32(v)) != v for v in f64["test"].values())


def test_human_readable_summary(capsys):
    status, out, err = cli(["train", "--data", "diabetes", "--model", "linear", "--steps", "5"], capsys)
    assert status == 0, err
    assert "linear on diabetes" in out and "test" in out and "rmse=" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--data", "/nonexistent/missing.csv"], "no such file"),
        (["--data", "BOSTON_CSV", "--target", "not_a_column"], "not_a_column"),
        (["--lr", "0"], "--lr"),
        (["--lr", "-0.1"], "--lr"),
        (["--batch-size", "0"], "--batch-size"),
        (["--hidden", "0"], "--hidden"),
        (["--hidden", "8,0"], "--hidden"),
        (["--activation", "swish"], "--activation"),
        (["--model", "linear", "--hidden", "4"], "--hidden"),
        (["--data", "digits", "--loss", "mse"], "--loss"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, boston_csv, argv, needle):
    argv = [str(boston_csv) if a == "BOSTON_CSV" else a for a in argv]
    status, out, err = cli(["train", *argv, "--steps", "1", "--json"], capsys)
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_bad_input_in_a_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,3\n4,oops,6\n7,8,9\n")
    proc = subprocess.run(
        [sys.executable, "-m", "jaxnn.cli", "train", "--data", str(bad), "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "oops" in proc.stderr


def test_early_stopping_watches_validation_rows_never_the_test_rows(capsys):
    """--patience carves 10% of the training rows; the test rows are evaluated once, at the end."""
    argv = ["--data", "diabetes", "--model", "linear", "--epochs", "300", "--patience", "3",
            "--dtype", "float64", "--optimizer", "adam", "--lr", "1"]
    r = train_json(argv, capsys)
    rows = r["rows"]
    assert rows == {"train": N_TRAIN_DIABETES - 31, "validation": 31, "test": 133}  # ceil(0.1 * 309)
    assert sum(rows.values()) == 442
    val = r["history"]["val_loss"]
    assert r["stopped_early"] and len(val) >= 4
    # Before the fix the monitored loss was the test MSE, so its minimum equalled the reported one.
    assert all(abs(v - r["test"]["mse"]) > 1e-6 * r["test"]["mse"] for v in val)
    # The reported test MSE is that of the best-validation parameters on the 133 test rows.
    assert len(sklearn_split("diabetes")[3]) == rows["test"]
    r2 = train_json([*argv, "--validation-fraction", "0.3"], capsys)
    assert r2["rows"] == {"train": 216, "validation": 93, "test": 133}


def test_experiment_run_never_monitors_the_test_split():
    from jaxnn.datasets import load_diabetes, split_dataset
    from jaxnn.experiment import run

    split = split_dataset(load_diabetes(), test_size=0.3, random_state=0)
    config = TrainConfig(hidden=(), optimizer="adam", lr=1.0, epochs=300, patience=3, dtype="float64")
    report = run(config, split)
    assert report.rows == {"train": 278, "validation": 31, "test": 133}
    assert sum(report.rows.values()) == 442
    assert report.fit.stopped_early
    val = report.fit.history.val_loss
    assert not np.isclose(val, report.test["mse"], rtol=1e-9).any()
    assert report.as_json()["rows"] == report.rows
