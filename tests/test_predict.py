"""``jaxnn predict``: a saved model reproduces the in-process predictions; bad input exits 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxnn import checkpoint, experiment
from jaxnn.cli import main
from jaxnn.datasets import load_csv, load_dataset, split_dataset
from jaxnn.training import TrainConfig

TIMEOUT = 120


def jaxnn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jaxnn.cli", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def boston_model(tmp_path_factory: pytest.TempPathFactory, boston_csv: Path):
    """An MLP trained in-process on the seed's Boston CSV, saved with its scaler."""
    ds = load_csv(boston_csv, "medv")
    split = split_dataset(ds)
    config = TrainConfig(hidden=(8,), optimizer="adam", lr=0.01, epochs=15, init="glorot")
    report = experiment.run(config, split)
    f = tmp_path_factory.mktemp("model") / "boston.npz"
    checkpoint.save(f, report.fit.state, config, scaler=split.scaler, dataset=checkpoint.dataset_info(ds))
    expected = experiment.predict(report.fit.params, config, split.scaler.transform(ds.X))[:, 0]
    return f, ds, expected, report


def test_predict_on_training_csv_reproduces_in_process_predictions(boston_model, boston_csv) -> None:
    f, ds, expected, report = boston_model
    proc = jaxnn("predict", "--model", str(f), "--data", str(boston_csv), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["task"] == "regression" and out["target"] == "medv" and out["n"] == 506
    got = np.asarray(out["predictions"], dtype=np.float32)
    np.testing.assert_array_equal(got, expected.astype(np.float32))
    # And they are the trained model's: their squared errors add up to the report's train and test mse.
    n_test = len(split_dataset(ds).y_test)
    sse = report.test["mse"] * n_test + report.train["mse"] * (506 - n_test)
    np.testing.assert_allclose(np.sum((ds.y - got.astype(np.float64)) ** 2), sse, rtol=1e-4)


def test_plain_output_and_reordered_columns_without_target(boston_model, tmp_path: Path) -> None:
    f, ds, _, report = boston_model
    rows = ds.X[:7]
    order = list(reversed(range(ds.n_features)))  # columns in another order, no target column
    csv_path = tmp_path / "new.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([ds.feature_names[j] for j in order])
        w.writerows([[repr(float(r[j])) for j in order] for r in rows])
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["predict", "--model", str(f), "--data", str(csv_path)]) == 0
    lines = buf.getvalue().splitlines()
    assert len(lines) == 7
    # The same 7 rows in process (a different batch size may round differently in the last bit).
    scaler = checkpoint.load(f).scaler
    expected = experiment.predict(report.fit.params, report.config, scaler.transform(rows))[:, 0]
    np.testing.assert_array_equal(np.asarray([float(x) for x in lines], np.float32), expected)


def test_classification_labels_and_probabilities(tmp_path: Path, capsys) -> None:
    f = tmp_path / "digits.npz"
    assert main(["train", "--data", "digits", "--epochs", "2", "--hidden", "16", "--lr", "0.01",
                 "--save", str(f)]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(f), "--data", "digits", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ck = checkpoint.load(f)
    ds = load_dataset("digits")
    logits = experiment.predict(ck.params, ck.config, ck.scaler.transform(ds.X))
    probs = np.asarray(out["probabilities"])
    assert out["classes"] == list(range(10)) and probs.shape == (1797, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, shifted / shifted.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert out["predictions"] == np.argmax(logits, axis=1).tolist()
    # The saved model is the trained one: its accuracy is far above chance (0.1).
    assert np.mean(np.asarray(out["predictions"]) == ds.y) > 0.5


def test_wrong_feature_count_exits_2_with_one_line(boston_model, tmp_path: Path) -> None:
    f, _, _, _ = boston_model
    few = tmp_path / "few.csv"
    few.write_text("crim,zn,indus\n0.1,0.0,2.3\n0.2,0.0,7.1\n")
    proc = jaxnn("predict", "--model", str(f), "--data", str(few))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "3 feature columns" in lines[0] and "expects 13" in lines[0]


_PEEK = """
import sys
from jaxnn.cli import main
status = main(sys.argv[1:])
print("STATUS", status, "jax" in sys.modules, "sklearn" in sys.modules)
"""


def test_a_csv_without_a_column_names_it_before_jax_is_imported(boston_model, boston_csv,
                                                                tmp_path: Path) -> None:
    """Before: ``--data: 'x.csv' has 12 feature columns (besides the target 'medv'), the model expects
    13``, after the seconds JAX and scikit-learn take to import. Now the column is named, at once."""
    f = boston_model[0]
    rows = list(csv.reader(boston_csv.read_text().splitlines()))
    drop = rows[0].index("crim")
    (tmp_path / "no_crim.csv").write_text("".join(",".join(r[:drop] + r[drop + 1:]) + "\n" for r in rows))
    renamed = [["CRIME" if c == "crim" else c for c in rows[0]], *rows[1:]]
    (tmp_path / "renamed.csv").write_text("".join(",".join(r) + "\n" for r in renamed))
    for data, want in (
        ("no_crim.csv", "jaxnn predict: error: --data: 'no_crim.csv' lacks the model's feature column 'crim' "
                        "(12 feature columns besides the target 'medv', the model expects 13)"),
        ("renamed.csv", "jaxnn predict: error: --data: 'renamed.csv' lacks the model's feature column 'crim' "
                        "and has a column the model was not trained on: 'CRIME' (13 feature columns "
                        "besides the target 'medv', the model expects 13)"),
    ):
        p = subprocess.run([sys.executable, "-c", _PEEK, "predict", "--model", str(f), "--data", data],
                           capture_output=True, text=True, cwd=tmp_path, timeout=TIMEOUT, check=False)
        assert p.stderr == want + "\n", p.stderr
        assert p.stdout.split() == ["STATUS", "2", "False", "False"], p.stdout


def test_sklearn_digits_csv_says_target_is_not_the_models_digit_column(tmp_path: Path, capsys) -> None:
    """A CSV of ``load_digits(as_frame=True)`` calls the label ``target``; the built-in digits,
    ``digit``. Before: ``has 65 feature columns, the model expects 64``."""
    from sklearn.datasets import load_digits

    f = tmp_path / "digits.npz"
    assert main(["train", "--data", "digits", "--epochs", "1", "--hidden", "4", "--save", str(f)]) == 0
    capsys.readouterr()
    frame = load_digits(as_frame=True).frame
    assert list(frame.columns)[-1] == "target"
    data = tmp_path / "sk_digits.csv"
    frame.head(20).to_csv(data, index=False)
    assert main(["predict", "--model", str(f), "--data", str(data)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"jaxnn predict: error: --data: {str(data)!r} has a column the model was not trained on: 'target' "
        "(65 feature columns, the model expects 64); the model's target column is 'digit' (a column of "
        "that name is ignored): if 'target' is the target, rename it 'digit' or remove it\n")
    frame.head(20).rename(columns={"target": "digit"}).to_csv(data, index=False)  # the way forward
    assert main(["predict", "--model", str(f), "--data", str(data)]) == 0
    predictions = [int(v) for v in capsys.readouterr().out.split()]
    assert len(predictions) == 20 and set(predictions) <= set(range(10))


@pytest.mark.parametrize("case", ["renamed_column", "missing_model", "directory_model", "missing_csv",
                                  "bad_cell", "not_csv"])
def test_bad_input_exits_2(boston_model, boston_csv, tmp_path: Path, case: str, capsys) -> None:
    f, ds, _, _ = boston_model
    model, data = str(f), str(boston_csv)
    if case == "renamed_column":
        text = boston_csv.read_text().replace("crim", "CRIME", 1)
        (tmp_path / "renamed.csv").write_text(text)
        data, want = (str(tmp_path / "renamed.csv"),
                      "lacks the model's feature column 'crim' and has a column the model was not trained "
                      "on: 'CRIME' (13 feature columns besides the target 'medv', the model expects 13)")
    elif case == "missing_model":
        model, want = str(tmp_path / "none.npz"), "no such file"
    elif case == "directory_model":
        model, want = str(tmp_path), "is a directory"
    elif case == "missing_csv":
        data, want = str(tmp_path / "none.csv"), "no such file"
    elif case == "bad_cell":
        row = ",".join(["1"] * 12 + ["x"])
        (tmp_path / "bad.csv").write_text(",".join(ds.feature_names) + "\n" + row + "\n")
        data, want = str(tmp_path / "bad.csv"), "cannot parse 'x'"
    else:
        data, want = "data.txt", "expected a .csv path"
    assert main(["predict", "--model", model, "--data", data]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and want in err, err


def test_a_model_trained_on_standardised_targets_predicts_on_the_targets_scale(tmp_path: Path,
                                                                               boston_csv: Path) -> None:
    """`jaxnn train` standardises regression targets by default; the checkpoint keeps that scaling
    and `jaxnn predict` maps the outputs back: the same numbers as the training run's report."""
    f = tmp_path / "m.npz"
    train = jaxnn("train", "--data", str(boston_csv), "--target", "medv", "--model", "linear", "--steps",
                  "300", "--lr", "0.01", "--dtype", "float64", "--save", str(f), "--json", "--quiet")
    assert train.returncode == 0, train.stderr
    report = json.loads(train.stdout)
    ck = checkpoint.load(f)
    ds = load_csv(boston_csv, "medv")
    split = split_dataset(ds)
    assert ck.target_scaler is not None
    np.testing.assert_allclose(ck.target_scaler.mean, [split.y_train.mean()], rtol=1e-12)
    np.testing.assert_allclose(ck.target_scaler.scale, [split.y_train.std()], rtol=1e-12)
    proc = jaxnn("predict", "--model", str(f), "--data", str(boston_csv), "--json")
    assert proc.returncode == 0, proc.stderr
    got = np.asarray(json.loads(proc.stdout)["predictions"], dtype=np.float64)
    n_test = len(split.y_test)
    sse = report["test"]["mse"] * n_test + report["train"]["mse"] * (506 - n_test)
    np.testing.assert_allclose(np.sum((ds.y - got) ** 2), sse, rtol=1e-9)
    assert report["test"]["r2"] > 0.6  # on the targets' scale: medv in thousands of dollars
