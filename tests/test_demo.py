"""`jaxnn demo`: the seed's study end to end, against scikit-learn and the seed's printed numbers.

The default demo (``--json``) runs in real subprocesses, as in test_default_path: with an empty
compilation cache, then with what it left (the same report but for its seconds); the Boston runs
are in-process (``jaxnn.cli.main``) with ``--gradcheck off`` to keep the suite quick -- the
subprocess runs already cover the gradient check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn.datasets
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from jaxnn.cli import main
from jaxnn.cli.demo import DEMO_GRADCHECK, SEED_PUBLISHED
from jaxnn.datasets import BUILTIN_DATASETS, load_dataset

MODEL_KEYS = {"linear_manual", "linear_autodiff", "sklearn_linear", "mlp_manual", "mlp_autodiff"}

# scikit-learn's LinearRegression on the DLFS split of Boston (test_size 0.3, random_state 80718).
SKLEARN_BOSTON_RMSE = 5.0476


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as e:
        status = int(e.code) if e.code is not None else 0
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def demo_cold_and_warm(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """``jaxnn demo --json`` as a user runs it: once with an empty compilation cache, once with
    what the first run left (test_default_path's fresh processes and environment)."""
    from test_default_path import cold_then_warm, jaxnn_cli

    reports: list[dict] = []

    def workflow(cache: Path, work: Path) -> None:
        lines = jaxnn_cli(cache, work, "demo", "--json").strip().splitlines()
        assert len(lines) == 1, "--json must print exactly one line on stdout"
        reports.append(json.loads(lines[0]))

    cold_then_warm(tmp_path_factory.mktemp("demo"), workflow)
    return reports


@pytest.fixture(scope="module")
def default_report(demo_cold_and_warm: list[dict]) -> dict:
    report = demo_cold_and_warm[0]
    assert isinstance(report, dict)
    return report


def _without_seconds(report: Any) -> Any:
    """The report without its timings (every ``seconds`` entry): all that may differ between runs."""
    if isinstance(report, dict):
        return {k: _without_seconds(v) for k, v in report.items() if k != "seconds"}
    if isinstance(report, list):
        return [_without_seconds(v) for v in report]
    return report


def friedman1_split_by_sklearn():
    """The default data and split, built with scikit-learn alone."""
    X, y = sklearn.datasets.make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=80718)
    sc = StandardScaler().fit(X_tr)
    return sc.transform(X_tr), sc.transform(X_te), y_tr, y_te


# --- The bundled default data ---------------------------------------------------------------


def test_friedman1_is_a_builtin_dataset_equal_to_make_friedman1():
    assert "friedman1" in BUILTIN_DATASETS
    ds = load_dataset("friedman1")
    X, y = sklearn.datasets.make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=0)
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.task == "regression" and ds.feature_names == tuple(f"x{i}" for i in range(10))
    with pytest.raises(ValueError, match="target"):
        load_dataset("friedman1", "not_y")


# --- The default demo (subprocesses, cold and warm) ----------------------------------------


def test_default_demo_reports_the_same_with_a_warm_cache(demo_cold_and_warm):
    cold, warm = demo_cold_and_warm
    assert _without_seconds(warm) == _without_seconds(cold)
    assert warm["seconds"]["total"] > 0


def test_default_demo_gradcheck_passes(default_report):
    g = default_report["gradcheck"]
    assert g["all_passed"] and g["passed"] == g["total"] == len(DEMO_GRADCHECK)
    assert {e["name"] for e in g["entries"]} == set(DEMO_GRADCHECK)
    for e in g["entries"]:
        assert e["passed"] and e["max_rel_err"] <= 1e-10 and e["fd_rel_err"] <= 1e-6, e


def test_default_demo_reports_every_model(default_report):
    r = default_report
    assert r["dataset"]["name"] == "friedman1"
    assert (r["dataset"]["n_train"], r["dataset"]["n_test"]) == (700, 300)
    assert set(r["models"]) == MODEL_KEYS
    for key, m in r["models"].items():
        assert set(m["test"]) == {"mse", "rmse", "mae", "r2"}, key
        assert m["seconds"]["train"] >= 0 and m["seconds"]["compile"] >= 0
        assert m["test"]["rmse"] == pytest.approx(np.sqrt(m["test"]["mse"]), rel=1e-12)
    assert r["models"]["linear_manual"]["steps"] == 5000
    assert r["models"]["mlp_manual"]["steps"] == 10000


def test_default_demo_sklearn_row_equals_sklearn(default_report):
    X_tr, X_te, y_tr, y_te = friedman1_split_by_sklearn()
    pred = LinearRegression().fit(X_tr, y_tr).predict(X_te)
    sk = default_report["models"]["sklearn_linear"]["test"]
    assert sk["mse"] == pytest.approx(mean_squared_error(y_te, pred), rel=1e-9)
    assert sk["rmse"] == pytest.approx(root_mean_squared_error(y_te, pred), rel=1e-9)
    assert sk["r2"] == pytest.approx(r2_score(y_te, pred), rel=1e-9)


def test_default_demo_linear_models_agree_with_sklearn(default_report):
    r = default_report
    a = r["agreement"]
    assert a["max_abs_coef_diff"] < 0.01  # measured 7e-4
    for key in ("linear_manual", "linear_autodiff"):
        assert a["linear_vs_sklearn"][key]["abs_intercept_diff"] < 0.01
        assert r["models"][key]["test"]["rmse"] == pytest.approx(
            r["models"]["sklearn_linear"]["test"]["rmse"], abs=0.01)


def test_default_demo_manual_and_autodiff_training_agree(default_report):
    a = default_report["agreement"]
    # float64: 5,000 and 10,000 SGD steps with each gradient give the same parameters.
    assert a["linear_manual_vs_autodiff"]["max_rel_param_diff"] <= 1e-9
    assert a["mlp_manual_vs_autodiff"]["max_rel_param_diff"] <= 1e-9
    m = default_report["models"]
    for metric in ("mse", "r2"):
        assert m["mlp_manual"]["test"][metric] == pytest.approx(m["mlp_autodiff"]["test"][metric], rel=1e-9)


def test_default_demo_shows_that_nonlinearity_helps(default_report):
    lesson = default_report["lesson"]
    m = default_report["models"]
    assert lesson["nonlinearity_helps"]
    # The network is far better than the best linear fit (scikit-learn's), not marginally.
    assert m["mlp_manual"]["test"]["rmse"] < 0.8 * m["sklearn_linear"]["test"]["rmse"]
    assert m["mlp_manual"]["test"]["r2"] > 0.85 > 0.78 > m["sklearn_linear"]["test"]["r2"]
    assert "seed_published" not in default_report  # only for the seed's own data


# --- Boston: the seed's data (in-process) ---------------------------------------------------


def test_boston_demo_reproduces_the_dlfs_results(capsys, boston_csv):
    status, out, err = run_cli(["demo", "--data", str(boston_csv), "--gradcheck", "off", "--json"],
                               capsys)
    assert status == 0, err
    r = json.loads(out)
    assert r["dataset"]["scale_before_split"] and r["dataset"]["split_seed"] == 80718
    m = r["models"]
    assert m["sklearn_linear"]["test"]["rmse"] == pytest.approx(SKLEARN_BOSTON_RMSE, abs=5e-5)
    for key in ("linear_manual", "linear_autodiff"):
        assert abs(m[key]["test"]["rmse"] - SKLEARN_BOSTON_RMSE) <= 0.05
    assert r["agreement"]["max_abs_coef_diff"] < 0.05
    for key in ("mlp_manual", "mlp_autodiff"):
        assert m[key]["test"]["rmse"] <= 4.0  # the published from-scratch result is 3.885
    pub = r["seed_published"]
    assert pub["split_seed"] == 42
    assert pub["test"]["mlp_manual"]["r2"] == SEED_PUBLISHED["mlp_manual"]["r2"]


def test_boston_demo_on_the_seed_notebooks_split_matches_its_printed_numbers(capsys, boston_csv,
                                                                           tmp_path):
    """Human-readable output; random_state 42 is the split the seed notebook printed numbers for."""
    out_dir = tmp_path / "figures"
    status, out, err = run_cli(["demo", "--data", str(boston_csv), "--gradcheck", "off",
                                "--split-seed", "42", "--out", str(out_dir)], capsys)
    assert status == 0, err
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("model "))
    for col in ("test MSE", "test RMSE", "test R^2", "compile s", "train s", "seed MSE", "seed R^2"):
        assert col in header
    rows = {line.split("  ")[0].strip(): line for line in lines
            if line.startswith(("linear regression ", "scikit-learn", "13 sigmoid"))}
    assert set(rows) == {"linear regression", "scikit-learn LinearRegression",
                         "13 sigmoid units, 1 hidden layer"}
    # scikit-learn on this split scores exactly what the seed printed (21.517444...).
    sk_row = next(line for line in lines if line.startswith("scikit-learn"))
    sk_mse, seed_mse = float(sk_row.split()[4]), float(sk_row.split()[-2])
    assert sk_mse == pytest.approx(SEED_PUBLISHED["sklearn_linear"]["mse"], abs=1e-4)
    assert seed_mse == pytest.approx(SEED_PUBLISHED["sklearn_linear"]["mse"], abs=1e-4)
    # The network beats the seed's own printed MSE/R^2 ballpark: R^2 >= 0.85 (seed 0.8545).
    net_row = next(line for line in lines if line.startswith("13 sigmoid") and "hand-written" in line)
    assert float(net_row.split()[-5]) >= 0.85  # the test R^2 column
    assert any(line.startswith("non-linearity helps") for line in lines)
    # --out: the figures exist and are PNG files.
    pngs = sorted(out_dir.glob("*.png"))
    assert {p.name for p in pngs} >= {"predicted_vs_actual_linear.png", "predicted_vs_actual_mlp.png",
                                      "feature_weights_linear.png"}
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- Bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--data", "digits"], "classification"),
        (["--data", "/nonexistent/boston.csv"], "no such file"),
        (["--data", "nope"], "unknown dataset"),
        (["--gradcheck", "some"], "--gradcheck"),
    ],
)
def test_demo_bad_input_exits_2_with_one_line(capsys, argv, needle):
    status, out, err = run_cli(["demo", *argv, "--json"], capsys)
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_demo_prints_nothing_on_stdout_when_its_data_fail(tmp_path):
    """Before: the header line ``jaxnn demo: the seed's study ...`` went to stdout, then the error.
    A bad cell is found while loading (after the imports), a bad --target or --out before them."""
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,y\n1,2,3\n1,x,3\n4,5,6\n")
    (tmp_path / "a_file").write_text("")
    for argv, line in (
        (["--data", str(bad)], f"jaxnn demo: error: --data: {str(bad)!r} line 3 (data row 2), column 'b': "
                               "cannot parse 'x' as a number"),
        (["--data", str(bad), "--target", "price"],
         f"jaxnn demo: error: --target: column 'price' is not in {str(bad)!r}; available columns: a, b, y"),
        (["--out", "a_file"], "jaxnn demo: error: --out: 'a_file' exists and is not a directory"),
    ):
        proc = subprocess.run([sys.executable, "-m", "jaxnn.cli", "demo", "--gradcheck", "off", *argv],
                              capture_output=True, text=True, cwd=tmp_path, timeout=180, check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", line + "\n")
