"""Every bad input of issue 7, through the Python API and through the ``jaxnn`` command line.

Python: a ``ValueError``/``TypeError`` (``FileNotFoundError``/``IsADirectoryError`` for
paths, as ``open`` raises) whose message names the argument and says what was expected.
CLI: exactly one line on stderr, nothing on stdout, exit status 2, no traceback --
unless ``--debug`` is given, which lets the exception (and its traceback) through.

Most CLI cases call ``jaxnn.cli.main`` in-process (no JAX start-up per case); a few real
subprocesses prove that nothing else (a traceback, a warning) reaches the terminal.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from jaxnn import checkpoint, experiment
from jaxnn.cli import main
from jaxnn.datasets import load_csv, load_dataset, split_dataset
from jaxnn.errors import EXIT_BAD_INPUT, InputError, InputTypeError
from jaxnn.training import TrainConfig, fit

# --------------------------------------------------------------------------- helpers


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``jaxnn argv`` run in this process.

    argparse usage errors leave through ``SystemExit``; everything else returns a status.
    """
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, out: str, err: str, *expected: str) -> None:
    """Exit 2, stdout empty, stderr one line that contains every ``expected`` piece."""
    assert status == EXIT_BAD_INPUT, (status, err)
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.match(r"jaxnn( (demo|train|predict|sweep|gradcheck))?: error: ", err), err
    for piece in expected:
        assert piece in err, (piece, err)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """A child environment whose caches land in ``tmp_path``, never in the user's home."""
    env = dict(os.environ)
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONWARNINGS="error")
    return env


# ------------------------------------------------------------------- data files (CSV)

GOOD = "a,b,y\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n"

# name -> (file content, target column, pieces every message must contain)
CSV_CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "header_only": ("a,b,y\n", "y", ("no data rows", "at least 2 rows")),
    "zero_bytes": ("", "y", ("is empty", "header row")),
    "non_numeric_cell": ("a,b,y\n1,2,3\n1,x,3\n4,5,6\n", "y",
                         ("line 3", "data row 2", "column 'b'", "'x'", "number")),
    "empty_cell": ("a,b,y\n1,2,3\n1,,3\n4,5,6\n", "y",
                   ("1 missing value", "data row 2", "column 'b'", "empty value", "--drop-missing")),
    "nan_in_feature": ("a,b,y\n1,2,3\n1,nan,3\n4,NA,\n", "y",
                       ("3 missing values in 2 rows", "data row 2", "column 'b'", "'nan'", "--drop-missing")),
    "header_of_numbers": ("1,2,3\n4,5,6\n7,8,9\n", "y", ("all numbers", "--no-header")),
    "arabic_indic_digits": ("a,b,y\n1,2,3\n\u0661,5,6\n4,5,6\n", "y",
                            ("data row 2", "column 'a'", "'\u0661'")),
    "inf_in_target": ("a,b,y\n1,2,3\n1,2,3\n4,5,-inf\n", "y",
                      ("data row 3", "column 'y'", "non-finite", "'-inf'")),
    "one_row": ("a,b,y\n1,2,3\n", "y", ("only 1 data row", "at least 2")),
    "ragged_row": ("a,b,y\n1,2,3\n1,2\n4,5,6\n", "y",
                   ("data row 2", "has 2 fields", "header has 3 columns")),
    "long_row": ("a,b,y\n1,2,3\n1,2,3,4\n", "y", ("data row 2", "has 4 fields")),
    "unknown_target": (GOOD, "price", ("target", "'price'", "available columns: a, b, y")),
    "duplicate_column": ("a,a,y\n1,2,3\n4,5,6\n", "y", ("duplicate column", "'a'")),
    "not_utf8": ("a,b,y\n1,2,3\n\udcff,5,6\n", "y", ("not a UTF-8 text file",)),
}


def write_case(tmp_path: Path, name: str) -> Path:
    text, _, _ = CSV_CASES[name]
    p = tmp_path / f"{name}.csv"
    p.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return p


@pytest.mark.parametrize("name", sorted(CSV_CASES))
def test_bad_csv_python(tmp_path: Path, name: str) -> None:
    path = write_case(tmp_path, name)
    _, target, pieces = CSV_CASES[name]
    with pytest.raises(ValueError) as exc:
        load_csv(path, target)
    for piece in pieces:
        assert piece in str(exc.value)
    # load_dataset (what --data takes) raises the same error
    with pytest.raises(ValueError, match=re.escape(pieces[0])):
        load_dataset(str(path), target)


@pytest.mark.parametrize("name", sorted(CSV_CASES))
def test_bad_csv_cli(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_case(tmp_path, name)
    _, target, pieces = CSV_CASES[name]
    status, out, err = run_cli(["train", "--data", str(path), "--target", target, "--epochs", "1"],
                               capsys)
    assert_one_line_error(status, out, err, *pieces)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=r"path: no such file: .*nope\.csv"):
        load_csv(path, "y")
    assert_one_line_error(*run_cli(["train", "--data", str(path)], capsys), "--data: no such file",
                          "nope.csv")
    assert not path.exists()  # a failed read creates nothing


def test_directory_instead_of_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for d in (tmp_path / "looks_like.csv", tmp_path / "plain_dir"):
        d.mkdir()
        with pytest.raises(IsADirectoryError, match="is a directory"):
            load_dataset(str(d), "y")
        assert_one_line_error(*run_cli(["train", "--data", str(d)], capsys), "is a directory", d.name)


def test_unknown_dataset_name_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="diabetes, digits, boston"):
        load_dataset("iris")
    assert_one_line_error(*run_cli(["train", "--data", "iris"], capsys), "'iris'", "diabetes, digits, boston")


# --------------------------------------------------------------- hyper-parameters

# (TrainConfig field overrides, CLI flags, pieces both messages contain)
CONFIG_CASES: dict[str, tuple[dict[str, object], list[str], tuple[str, ...]]] = {
    "lr_zero": ({"lr": 0.0}, ["--lr", "0"], ("lr", "> 0")),
    "lr_negative": ({"lr": -0.1}, ["--lr", "-0.1"], ("lr", "> 0")),
    "lr_nan": ({"lr": math.nan}, ["--lr", "nan"], ("lr", "finite", "nan")),
    "lr_inf": ({"lr": math.inf}, ["--lr", "inf"], ("lr", "finite", "inf")),
    "batch_size_zero": ({"batch_size": 0}, ["--batch-size", "0"], ("batch", "positive integer", "0")),
    "hidden_zero": ({"hidden": (0,)}, ["--hidden", "0"], ("hidden", "positive integer", "0")),
    "hidden_zero_in_list": ({"hidden": (8, 0)}, ["--hidden", "8,0"], ("hidden", "positive integer", "0")),
    "epochs_zero": ({"epochs": 0}, ["--epochs", "0"], ("epochs", "positive integer", "0")),
    "activation": ({"activation": "swish"}, ["--activation", "swish"],
                   ("activation", "'swish'", "sigmoid", "tanh", "relu", "leaky_relu")),
    "optimizer": ({"optimizer": "rmsprop"}, ["--optimizer", "rmsprop"],
                  ("optimizer", "'rmsprop'", "sgd", "momentum", "adam")),
    "loss": ({"loss": "huber"}, ["--loss", "huber"], ("loss", "'huber'", "mse", "cross_entropy")),
}


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config_python(name: str) -> None:
    fields, _, pieces = CONFIG_CASES[name]
    with pytest.raises(ValueError) as exc:
        TrainConfig(**{"epochs": 1, **fields})  # type: ignore[arg-type]
    assert str(exc.value).split(":")[0] in {"lr", "batch_size", "hidden", "epochs", "activation",
                                            "optimizer", "loss"}  # the argument comes first
    for piece in pieces:
        assert piece in str(exc.value)


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_config_cli(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, flags, pieces = CONFIG_CASES[name]
    argv = ["train", *flags] if "--epochs" in flags else ["train", *flags, "--epochs", "1"]
    assert_one_line_error(*run_cli(argv, capsys), flags[0], *pieces[1:])


def test_config_types_are_checked() -> None:
    with pytest.raises(TypeError, match=r"lr: expected a number, got str"):
        TrainConfig(epochs=1, lr="0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"hidden: expected a tuple of positive integers"):
        TrainConfig(epochs=1, hidden=13)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"batch_size: expected a positive integer, got 2.5"):
        TrainConfig(epochs=1, batch_size=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.2, 1.5, math.nan])
def test_test_size_outside_open_unit_interval(test_size: float, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ds = load_csv(write(tmp_path, "ok.csv", GOOD), "y")
    with pytest.raises(ValueError, match=r"test_size: expected a number strictly between 0 and 1"):
        split_dataset(ds, test_size=test_size)
    status, out, err = run_cli(["train", "--data", str(tmp_path / "ok.csv"), "--test-size", str(test_size)],
                               capsys)
    assert_one_line_error(status, out, err, "--test-size", "strictly between 0 and 1")


def test_test_size_that_empties_a_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "two.csv", "a,y\n1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"test_size=0.9 on 2 rows gives 0 train"):
        split_dataset(load_csv(path, "y"), test_size=0.9)
    assert_one_line_error(*run_cli(["train", "--data", str(path), "--test-size", "0.9"], capsys),
                          "0 train", "non-empty")


def test_one_row_regression_split_is_refused_before_training(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # 2 rows at test_size 0.3: 1 train and 1 test row, and R² is undefined for one row
    path = write(tmp_path, "two.csv", "a,y\n1,2\n3,4\n")
    calls: list[object] = []
    with pytest.raises(ValueError, match=r"train set: 1 row of 2; R² needs at least 2"):
        experiment.run(TrainConfig(hidden=(), epochs=1), split_dataset(load_csv(path, "y")),
                       callback=calls.append)
    assert calls == []  # refused before a single chunk ran
    assert_one_line_error(*run_cli(["train", "--data", str(path)], capsys), "R² needs at least 2")


def test_mismatched_task_and_loss(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run_cli(["train", "--loss", "cross_entropy", "--epochs", "1"], capsys),
                          "--loss", "regression needs mse")


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse errors of the main parser and of the subparsers: no usage block, exit 2, named after
    the subcommand once there is one (before: ``jaxnn: error: unrecognized arguments`` for all)."""
    for argv, piece in (
        (["frobnicate"], "jaxnn: error: argument COMMAND: invalid choice: 'frobnicate'"),
        ([], "jaxnn: error: the following arguments are required: COMMAND"),
        (["train", "--no-such-flag"], "jaxnn train: error: unrecognized arguments: --no-such-flag"),
        (["train", "--epochs", "2", "--steps", "3"],
         "jaxnn train: error: argument --steps: not allowed with"),
        (["train", "--batch-size", "ten"], "jaxnn train: error: argument --batch-size: expected a positive "
                                           "integer, got 'ten'"),
        (["train", "--lr"], "jaxnn train: error: argument --lr: expected one argument"),
        (["gradcheck", "--dtype", "float16"], "jaxnn gradcheck: error: argument --dtype: invalid choice: "
                                              "'float16'"),
        (["predict", "--model"], "jaxnn predict: error: argument --model: expected one argument"),
        (["predict", "--model", "m.npz", "--data", "x.csv", "--delimiter", ";;"],  # (was exit 70)
         "jaxnn predict: error: argument --delimiter: expected one character (or 'tab'), got ';;'"),
        (["demo", "--no-such-flag"], "jaxnn demo: error: unrecognized arguments: --no-such-flag"),
        (["sweep", "--no-such-flag"], "jaxnn sweep: error: unrecognized arguments: --no-such-flag"),
        (["gradcheck", "--no-such-flag"], "jaxnn gradcheck: error: unrecognized arguments: --no-such-flag"),
    ):
        status, out, err = run_cli(argv, capsys)
        assert_one_line_error(status, out, err)
        assert err.startswith(piece), (piece, err)


def test_errors_name_the_subcommand_and_the_flags_the_user_typed(tmp_path: Path, model_file: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """One prefix, ``jaxnn SUBCOMMAND: error:``, and the flag, never the library's argument name.

    Before: ``jaxnn: error: path: 'x.csv' is not a regular file``, ``jaxnn: error: model file: no such
    file``, ``jaxnn: error: spec: unknown dataset``, ``jaxnn: error: 'x.csv' line 3 ... cannot parse``.
    """
    bad = write_case(tmp_path, "non_numeric_cell")
    tiny = write(tmp_path, "tiny.csv", "a,y\n1,2\n3,4\n")
    absent = tmp_path / "absent.npz"
    cases = [
        (["train", "--data", "/dev/null.csv"], "jaxnn train: error: --data: no such file: '/dev/null.csv'"),
        (["train", "--data", str(tmp_path / "dir.csv")],
         f"jaxnn train: error: --data: {str(tmp_path / 'dir.csv')!r} is a directory, expected a file"),
        (["train", "--data", str(bad), "--epochs", "1"],
         f"jaxnn train: error: --data: {str(bad)!r} line 3 (data row 2), column 'b': cannot parse 'x' as a "
         "number"),
        (["train", "--data", str(tiny), "--test-size", "0.9"], "jaxnn train: error: --test-size=0.9 on 2 "
         "rows gives 0 train and 2 test rows; both sets must be non-empty (use a smaller test_size or more "
         "data)"),
        (["train", "--resume", str(absent)], f"jaxnn train: error: --resume: no such file: {str(absent)!r}"),
        (["train", "--resume", str(bad)],
         f"jaxnn train: error: --resume: {str(bad)!r} is not a valid jaxnn checkpoint: not an .npz (zip) "
         "archive: it starts with b'a,b,'"),
        (["predict", "--model", str(absent), "--data", str(bad)],
         f"jaxnn predict: error: --model: no such file: {str(absent)!r}"),
        (["predict", "--model", str(bad), "--data", str(bad)],
         f"jaxnn predict: error: --model: {str(bad)!r} is not a valid jaxnn checkpoint: not an .npz (zip) "
         "archive: it starts with b'a,b,'"),
        (["predict", "--model", str(model_file), "--data", str(bad)],
         f"jaxnn predict: error: --data: {str(bad)!r} line 3 (data row 2), column 'b': cannot parse 'x' as "
         "a number"),
        (["sweep", "--data", "iris"], "jaxnn sweep: error: --data: unknown dataset 'iris'"),
        (["demo", "--data", str(bad), "--gradcheck", "off"],
         f"jaxnn demo: error: --data: {str(bad)!r} line 3 (data row 2), column 'b': cannot parse 'x' as a "
         "number"),
    ]
    (tmp_path / "dir.csv").mkdir()
    for argv, line in cases:
        status, out, err = run_cli(argv, capsys)
        assert_one_line_error(status, out, err)
        assert err.startswith(line), (line, err)


# --------------------------------------------------------------- arrays passed to fit


@pytest.mark.parametrize(
    ("X", "Y", "error", "pieces"),
    [
        (np.ones((4, 2, 2)), np.ones((4, 1)), ValueError, ("X:", "2-D", "(4, 2, 2)")),
        (np.ones(4), np.ones((4, 1)), ValueError, ("X:", "2-D", "(4,)")),
        (np.ones((4, 2)), np.ones((4, 1, 1)), ValueError, ("Y:", "2-D", "(4, 1, 1)")),
        (np.ones((0, 2)), np.ones((0, 1)), ValueError, ("X:", "at least one row", "(0, 2)")),
        (np.ones((4, 2)), np.ones((3, 1)), ValueError, ("X, Y", "4 and 3")),
        (np.array([["a", "b"]] * 4), np.ones((4, 1)), TypeError, ("X:", "numeric", "<U1")),
        (np.ones((4, 2), complex), np.ones((4, 1)), TypeError, ("X:", "real numeric", "complex128")),
        (np.array([[None, 1]] * 4), np.ones((4, 1)), TypeError, ("X:", "numeric", "object")),
        ([[1.0, 2.0], [3.0]], np.ones((2, 1)), ValueError, ("X:", "rectangular")),
        (np.where(np.eye(4, 2) > 0, np.nan, 1.0), np.ones((4, 1)), ValueError,
         ("X:", "NaN or inf", "row 0, column 0")),
        (np.ones((4, 2)), np.array([1.0, 2.0, np.inf, 4.0]), ValueError, ("Y:", "NaN or inf", "row 2")),
        (np.full((4, 2), 1e300), np.ones((4, 1)), ValueError, ("X:", "range of float32")),
    ],
)
def test_fit_rejects_bad_arrays(X: object, Y: object, error: type[Exception],
                                pieces: tuple[str, ...]) -> None:
    with pytest.raises(error) as exc:
        fit(TrainConfig(hidden=(3,), epochs=1), X, Y)
    # a refusal jaxnn raises on purpose: InputError (a ValueError) or InputTypeError (also a TypeError)
    assert type(exc.value) is {ValueError: InputError, TypeError: InputTypeError}[error]
    for piece in pieces:
        assert piece in str(exc.value)


def test_fit_rejects_a_non_config() -> None:
    with pytest.raises(TypeError, match="config: expected a TrainConfig, got dict"):
        fit({"lr": 0.1}, np.ones((4, 2)), np.ones((4, 1)))  # type: ignore[arg-type]


# ----------------------------------------------------------------- model files


def test_model_file_missing_directory_or_garbage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model file: no such file"):
        checkpoint.load(tmp_path / "absent.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        checkpoint.load(tmp_path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="is not a valid jaxnn checkpoint"):
        checkpoint.load(garbage)
    plain = tmp_path / "plain.npz"
    np.savez(plain, W=np.ones((2, 2)))
    with pytest.raises(ValueError, match="not a valid jaxnn checkpoint: no __meta__"):
        checkpoint.load(plain)


# ---------------------------------------------------------- real processes, --debug


def test_debug_lets_the_exception_through(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        main(["train", "--data", str(tmp_path / "nope.csv"), "--debug"])
    with pytest.raises(ValueError, match="data row 2"):
        main(["--debug", "train", "--data", str(write_case(tmp_path, "non_numeric_cell"))])


def test_subprocess_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = write_case(tmp_path, "non_numeric_cell")
    for argv, piece in (
        (["train", "--data", str(bad)], "column 'b'"),
        (["train", "--lr", "nan"], "--lr"),  # an argparse usage error
    ):
        proc = subprocess.run([sys.executable, "-m", "jaxnn.cli", *argv], capture_output=True, text=True,
                              cwd=tmp_path, env=subprocess_env(tmp_path), timeout=120, check=False)
        assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("jaxnn"), proc.stderr
        assert piece in proc.stderr


def test_subprocess_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jaxnn.cli", "--debug", "train", "--data", str(tmp_path / "missing.csv")],
        capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(tmp_path), timeout=120, check=False,
    )
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert "FileNotFoundError: --data: no such file" in proc.stderr


# ------------------------------------------------- output paths: refused before training


@pytest.mark.parametrize(
    ("flags", "pieces"),
    [
        (["--save", "nodir/m.npz"], ("--save", "cannot write 'nodir/m.npz'", "directory is missing")),
        (["--save", "."], ("--save", "cannot write '.'", "a directory")),
        (["--log-jsonl", "nodir/log.jsonl"], ("--log-jsonl", "cannot write", "directory is missing")),
        (["--out", "a_file"], ("--out", "'a_file' exists and is not a directory")),
        (["--checkpoint-every", "5"], ("--checkpoint-every", "needs --save")),
        (["--resume", "absent.npz"], ("no such file", "absent.npz")),
    ],
)
def test_bad_output_paths_fail_before_training(flags: list[str], pieces: tuple[str, ...], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("keep me", encoding="utf-8")
    # 10**6 epochs: only an error raised before training lets this test finish
    status, out, err = run_cli(["train", "--data", str(write(tmp_path, "ok.csv", GOOD)),
                                "--epochs", "1000000", *flags], capsys)
    assert_one_line_error(status, out, err, *pieces)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "ok.csv"]
    assert (tmp_path / "a_file").read_text(encoding="utf-8") == "keep me"


# ---------------------------------------------------------------------- jaxnn predict


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by ``jaxnn train --save`` on features a, b (target y)."""
    d = tmp_path_factory.mktemp("model")
    data = d / "train.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{(i * 7) % 5},{i - 2 * ((i * 7) % 5)}\n" for i in range(20)),
                    encoding="utf-8")
    path = d / "m.npz"
    assert main(["train", "--data", str(data), "--epochs", "1", "--save", str(path), "--json"]) == 0
    return path


PREDICT_DATA: dict[str, tuple[str, tuple[str, ...]]] = {
    "too_many_features": ("a,b,c\n1,2,3\n", ("--data", "has a column the model was not trained on: 'c'",
                                             "3 feature columns", "expects 2")),
    "too_few_features": ("a,y\n1,2\n", ("--data", "lacks the model's feature column 'b'",
                                        "1 feature column besides the target 'y'", "expects 2")),
    "renamed_feature": ("a,z\n1,2\n", ("--data", "lacks the model's feature column 'b' and has a column the "
                                       "model was not trained on: 'z'")),
    "nan_feature": ("a,b\n1,nan\n", ("data row 1", "column 'b'", "missing value 'nan'")),
    "non_numeric": ("a,b\n1,2\n3,four\n", ("data row 2", "column 'b'", "'four'")),
    "ragged": ("a,b\n1,2\n3\n", ("data row 2", "has 1 fields")),
    "header_only": ("a,b\n", ("no data rows",)),
}


@pytest.mark.parametrize("name", sorted(PREDICT_DATA))
def test_predict_bad_data(name: str, model_file: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    text, pieces = PREDICT_DATA[name]
    data = write(tmp_path, f"{name}.csv", text)
    assert_one_line_error(*run_cli(["predict", "--model", str(model_file), "--data", str(data)], capsys),
                          *pieces)


def test_predict_good_data_works(model_file: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The contrast: columns in another order and an extra target column are fine."""
    data = write(tmp_path, "new.csv", "b,y,a\n2,0,1\n4,0,3\n")
    status, out, err = run_cli(["predict", "--model", str(model_file), "--data", str(data)], capsys)
    assert status == 0 and err == ""
    assert len(out.splitlines()) == 2 and all(math.isfinite(float(v)) for v in out.split())


def test_predict_into_a_closed_pipe_stops_quietly(model_file: Path, tmp_path: Path) -> None:
    # `jaxnn predict ... | head -1`: the reader leaves after one line; more output than a pipe buffer
    data = write(tmp_path, "many.csv", "a,b\n" + "".join(f"{i},{i % 5}\n" for i in range(50_000)))
    proc = subprocess.Popen([sys.executable, "-m", "jaxnn.cli", "predict", "--model", str(model_file),
                             "--data", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path, env=subprocess_env(tmp_path))
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader is gone
    status = proc.wait(timeout=120)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert math.isfinite(float(first))
    assert status == 0 and err == "", err


def test_predict_bad_model_files(model_file: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path, "new.csv", "a,b\n1,2\n")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(4096))
    text = write(tmp_path, "model.csv", GOOD)
    npy = tmp_path / "array.npy"
    np.save(npy, np.ones(3))
    cases = [
        (tmp_path / "absent.npz", ("--model: no such file", "absent.npz")),
        (tmp_path, ("is a directory",)),
        (garbage, ("garbage.npz", "is not a valid jaxnn checkpoint")),
        (text, ("model.csv", "is not a valid jaxnn checkpoint")),
        (npy, ("array.npy", "is not a valid jaxnn checkpoint")),
    ]
    for model, pieces in cases:
        status, out, err = run_cli(["predict", "--model", str(model), "--data", str(data)], capsys)
        assert_one_line_error(status, out, err, *pieces)
        if model.is_file():  # the same refusal in Python
            with pytest.raises(ValueError, match="is not a valid jaxnn checkpoint"):
                checkpoint.load(model)
    assert_one_line_error(*run_cli(["predict", "--data", str(data)], capsys), "required", "--model")


def test_predict_truncated_model_file(model_file: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint cut short (a crashed copy): refused, and no file handle is left open.

    (``np.load(path)`` leaks its handle when the zip is corrupt; the leak shows up as a
    ResourceWarning, an error under this suite's ``filterwarnings = error``.)
    """
    data = write(tmp_path, "new.csv", "a,b\n1,2\n")
    size = model_file.stat().st_size
    for cut in (size // 2, size - 1, 100):
        truncated = tmp_path / f"truncated_{cut}.npz"
        truncated.write_bytes(model_file.read_bytes()[:cut])
        status, out, err = run_cli(["predict", "--model", str(truncated), "--data", str(data)], capsys)
        assert_one_line_error(status, out, err, truncated.name, "is not a valid jaxnn checkpoint")
        with pytest.raises(ValueError, match="is not a valid jaxnn checkpoint"):
            checkpoint.load(truncated)
        gc.collect()  # an unclosed handle would warn here, inside this test


# ------------------------------------------------------------------------ estimators


@pytest.fixture(scope="module")
def fitted() -> tuple[object, object]:
    """A regressor and a classifier fitted on 3 features (ConvergenceWarning is expected)."""
    from sklearn.exceptions import ConvergenceWarning

    from jaxnn.estimators import MLPClassifier, MLPRegressor

    X = np.random.default_rng(0).normal(size=(24, 3))
    with pytest.warns(ConvergenceWarning):
        reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, X[:, 0])
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, X[:, 0] > 0)
    return reg, clf


BAD_ESTIMATOR_ARRAYS = {
    "X_rank_3": (np.ones((3, 3, 3)), np.ones(3), ("dim 3",)),
    "X_rank_1": (np.ones(3), np.ones(3), ("Expected 2D array",)),
    "y_rank_3": (np.ones((3, 2)), np.ones((3, 1, 1)), ("dim 3",)),
    "X_strings": (np.array([["a", "b"]] * 3), np.ones(3), ("could not convert string to float",)),
    "X_complex": (np.ones((3, 2), complex), np.ones(3), ("Complex data not supported",)),
    "X_objects": (np.array([[None, 1.0]] * 3), np.ones(3), ("X contains NaN",)),
    "X_nan": (np.array([[1.0, np.nan]] * 3), np.ones(3), ("X contains NaN",)),
    "y_inf": (np.ones((3, 2)), np.array([1.0, np.inf, 0.0]), ("y contains infinity",)),
    "rows_differ": (np.ones((3, 2)), np.ones(2), ("inconsistent numbers of samples", "[3, 2]")),
    "no_rows": (np.ones((0, 2)), np.ones(0), ("0 sample(s)",)),
    "X_beyond_float32": (np.full((3, 2), 1e300), np.ones(3), ("X:", "range of float32")),
}


@pytest.mark.parametrize("name", sorted(BAD_ESTIMATOR_ARRAYS))
@pytest.mark.parametrize("kind", ["MLPRegressor", "MLPClassifier"])
def test_estimators_reject_bad_arrays(kind: str, name: str) -> None:
    import jaxnn

    X, y, pieces = BAD_ESTIMATOR_ARRAYS[name]
    if kind == "MLPClassifier" and name not in ("y_inf",):
        y = (np.arange(len(y)) % 2).reshape(np.shape(y)) if np.ndim(y) else y
    est = getattr(jaxnn, kind)(hidden_layer_sizes=(2,), max_iter=1)
    if name == "X_beyond_float32":  # float64 X trains in float64 (as scikit-learn) unless told float32
        est.set_params(dtype="float32")
    with pytest.raises(ValueError) as exc:
        est.fit(X, y)
    for piece in pieces:
        assert piece in str(exc.value)


@pytest.mark.parametrize(
    ("X", "pieces"),
    [
        (np.ones((2, 4)), ("X has 4 features", "expecting 3 features")),
        (np.ones((2, 3, 1)), ("dim 3",)),
        (np.ones(3), ("Expected 2D array",)),
        (np.full((2, 3), np.nan), ("X contains NaN",)),
        (np.array([["a", "b", "c"]]), ("could not convert string to float",)),
    ],
)
def test_estimator_predict_rejects_bad_arrays(fitted, X: np.ndarray, pieces: tuple[str, ...]) -> None:
    for est in fitted:
        with pytest.raises(ValueError) as exc:
            est.predict(X)
        for piece in pieces:
            assert piece in str(exc.value)


@pytest.mark.parametrize(
    ("params", "pieces"),
    [
        ({"hidden_layer_sizes": (0,)}, ("hidden_layer_sizes", "positive integers")),
        ({"learning_rate_init": 0.0}, ("learning_rate_init", "> 0")),
        ({"learning_rate_init": math.nan}, ("learning_rate_init", "finite")),
        ({"batch_size": 0}, ("batch_size", "positive integer")),
        ({"activation": "swish"}, ("activation", "'swish'", "relu", "tanh", "logistic")),
        ({"solver": "rmsprop"}, ("solver", "'lbfgs'", "'sgd'", "'adam'")),
        ({"early_stopping": True, "validation_fraction": 1.0},
         ("validation_fraction", "strictly between 0 and 1")),
    ],
)
def test_estimator_bad_parameters(params: dict[str, object], pieces: tuple[str, ...]) -> None:
    from jaxnn.estimators import MLPRegressor

    X = np.random.default_rng(1).normal(size=(10, 2))
    with pytest.raises(ValueError) as exc:
        MLPRegressor(max_iter=1, **params).fit(X, X[:, 0])  # type: ignore[arg-type]
    for piece in pieces:
        assert piece in str(exc.value)


def test_classifier_label_errors() -> None:
    from jaxnn.estimators import MLPClassifier

    X = np.random.default_rng(2).normal(size=(10, 2))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        MLPClassifier(max_iter=1).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="Unknown label type: continuous-multioutput"):
        MLPClassifier(max_iter=1).fit(X, X)
    with pytest.raises(ValueError, match=r"`y` has classes not in `self\.classes_`"):
        MLPClassifier(max_iter=1).partial_fit(X, np.arange(10) % 3, classes=[0, 1])


def test_experiment_predict_validates_its_input() -> None:
    config = TrainConfig(hidden=(3,), epochs=1)
    X = np.random.default_rng(0).normal(size=(8, 2))
    params = fit(config, X, X[:, :1]).params
    assert experiment.predict(params, config, X).shape == (8, 1)
    bad_X = X.copy()
    bad_X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X: contains NaN or inf \(first at row 2, column 1\)"):
        experiment.predict(params, config, bad_X)
    with pytest.raises(ValueError, match="X: the model expects 2 feature columns, got 3"):
        experiment.predict(params, config, np.ones((4, 3)))
    with pytest.raises(TypeError, match="X: expected a real numeric array"):
        experiment.predict(params, config, np.array([["a", "b"]]))


# ------------------------------------------------------- jaxnn.fit: what the model must be


def _tiny() -> tuple[np.ndarray, np.ndarray]:
    X = np.linspace(-1, 1, 30, dtype=np.float32).reshape(10, 3)
    return X, X @ np.array([1.0, -1.0, 0.5], np.float32)


def test_fit_refuses_what_would_train_silently_wrong() -> None:
    import jax
    import jax.numpy as jnp
    import optax

    import jaxnn

    X, y = _tiny()
    sgd = optax.sgd(0.1)
    with pytest.raises(ValueError, match="sample_weight: every weight is 0"):
        jaxnn.fit(lambda p, x, t: (x @ p - t) ** 2, jnp.zeros(3), (X, y), optimizer=sgd, epochs=2,
                  sample_weight=np.zeros(10))

    def broadcasting(p, x, t):  # (B, 1) predictions against (B,) targets: a (B, B) objective
        return jnp.sum((x @ p["W"] - t) ** 2, axis=-1)

    # (the suite raises on rank promotion; a user's process allows it, as JAX's default does)
    with jax.numpy_rank_promotion("allow"), pytest.raises(
            ValueError, match=r"loss_fn: mixes the minibatch's rows .*\(n,\).*\(n, 1\)"):
        jaxnn.fit(broadcasting, {"W": jnp.zeros((3, 1))}, (X, y), optimizer=sgd, epochs=2)
    # the same model with targets of the predictions' shape trains, and matches the flat model
    good = jaxnn.fit(broadcasting, {"W": jnp.zeros((3, 1))}, (X, y[:, None]), optimizer=sgd, epochs=2,
                     key=jaxnn.engine._as_key(None))
    flat = jaxnn.fit(lambda p, x, t: (x @ p - t) ** 2, jnp.zeros(3), (X, y), optimizer=sgd, epochs=2,
                     key=jaxnn.engine._as_key(None))
    np.testing.assert_allclose(np.asarray(good.params["W"])[:, 0], np.asarray(flat.params), rtol=1e-6)


def test_fit_names_integer_parameters_integer_losses_and_broken_optimizers() -> None:
    import jax.numpy as jnp
    import optax

    import jaxnn

    X, y = _tiny()
    sq = lambda p, x, t: (x @ p["W"] - t) ** 2
    with pytest.raises(TypeError, match=r"params\['n'\]: expected a floating-point array, got int32"):
        jaxnn.fit(sq, {"W": jnp.zeros(3), "n": jnp.int32(3)}, (X, y), optimizer=optax.sgd(0.1), epochs=1)
    with pytest.raises(TypeError, match="loss_fn: expected floating-point losses, got int32"):
        jaxnn.fit(lambda p, x, t: jnp.round(x @ p - t).astype(jnp.int32), jnp.zeros(3), (X, y),
                  optimizer=optax.sgd(0.1), epochs=1)
    returns_none = optax.GradientTransformation(lambda p: optax.EmptyState(), lambda u, s, p=None: None)
    with pytest.raises(TypeError, match=r"optimizer: update\(grads, state, params\) must return"):
        jaxnn.fit(lambda p, x, t: (x @ p - t) ** 2, jnp.zeros(3), (X, y), optimizer=returns_none, epochs=1)


def test_an_internal_error_is_not_bad_input() -> None:
    """A TypeError raised inside JAX, or a ValueError from NumPy, is a failure of jaxnn (exit 70),
    not of the user's input (2): only what jaxnn refuses on purpose (InputError) and OSErrors on
    the user's files are."""
    import jax.numpy as jnp

    from jaxnn.cli import _is_internal
    from jaxnn.errors import EXIT_INTERNAL

    try:
        jnp.ones(3) @ jnp.ones(4)
    except TypeError as e:
        inside_jax = e
    try:
        TrainConfig(hidden=(3,), epochs=0)
    except ValueError as e:
        refused = e
    try:
        np.ones(3).reshape(2, 2)
    except ValueError as e:
        inside_numpy = e
    assert isinstance(refused, InputError)
    assert _is_internal(inside_jax) and _is_internal(inside_numpy) and not _is_internal(refused)
    assert not _is_internal(FileNotFoundError(2, "No such file or directory", "x.csv"))
    assert _is_internal(KeyError("x")) and _is_internal(ValueError("a plain ValueError"))
    assert EXIT_INTERNAL not in (0, 1, EXIT_BAD_INPUT, 3, 130)


# A `jaxnn` process with one of jaxnn's functions replaced by a broken one (a real bug, in a real
# process): argv[1] names the breakage, the rest is the command line.
_BROKEN_RUNNER = """
import sys
import numpy as np
import jaxnn.csvfile

where, argv = sys.argv[1], sys.argv[2:]
if where == "numpy":  # a ValueError raised inside NumPy, as a shape bug in jaxnn would
    import jaxnn.experiment
    jaxnn.experiment.run = lambda *a, **k: np.ones(3).reshape(2, 2)
elif where == "keyerror":  # a plain bug in jaxnn
    import jaxnn.experiment
    jaxnn.experiment.run = lambda *a, **k: {}["params"]
elif where == "preflight":  # a plain ValueError inside the checks that rename bad input to the flags
    def read_header(*a, **k):
        raise ValueError("path: not a refusal, a bug")
    jaxnn.csvfile.read_header = read_header
from jaxnn.cli import main
sys.exit(main(argv))
"""


@pytest.mark.parametrize(("where", "flags", "status", "pieces"), [
    ("numpy", [], 70, ("jaxnn train: error: internal error: ValueError: cannot reshape",)),
    ("keyerror", [], 70, ("jaxnn train: error: internal error: KeyError: 'params'",)),
    ("preflight", [], 70, ("jaxnn train: error: internal error: ValueError: path: not a refusal, a bug",)),
    ("none", ["--test-size", "0.9"], 2, ("jaxnn train: error: --test-size=0.9 on 4 rows",)),
    ("none", ["--hidden", "0"], 2, ("jaxnn train: error: argument --hidden",)),
])
def test_internal_errors_exit_70_and_bad_input_2_in_a_real_process(
        tmp_path: Path, where: str, flags: list[str], status: int, pieces: tuple[str, ...]) -> None:
    data = write(tmp_path, "ok.csv", GOOD)
    proc = subprocess.run([sys.executable, "-c", _BROKEN_RUNNER, where, "train", "--data", str(data),
                           "--steps", "1", "--hidden", "2", *flags],
                          capture_output=True, text=True, cwd=tmp_path, env=subprocess_env(tmp_path),
                          timeout=120, check=False)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    for piece in pieces:
        assert piece in proc.stderr, proc.stderr
    internal = "(a bug in jaxnn or a library it uses, not in your input; please report it" in proc.stderr
    assert internal == (status == 70), proc.stderr


# ------------------------------------------ --data boston (fetched from OpenML) without a network


@contextlib.contextmanager
def _silent_proxy() -> Iterator[str]:
    """An HTTP proxy on 127.0.0.1 that accepts connections and never answers: a network that
    swallows the request (the fetch must give up, not hang)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in held:
            conn.close()


@pytest.mark.parametrize("network", ["refused", "silent"])
def test_builtin_boston_offline_says_to_pass_the_csv(tmp_path: Path, network: str) -> None:
    """`--data boston` is fetched from OpenML. Without a network -- every connection goes through a
    proxy that refuses it, or one that never answers -- it is one line and exit 2 naming the CSV
    way, within the fetch timeout: no traceback, no hang."""
    env = subprocess_env(tmp_path)  # warnings are errors in it, as in the suite
    for name in ("no_proxy", "NO_PROXY"):
        env.pop(name, None)
    env.update(SCIKIT_LEARN_DATA=str(tmp_path / "scikit_learn_data"),  # nothing cached: a real fetch
               JAXNN_FETCH_TIMEOUT="1")
    with contextlib.ExitStack() as stack:
        # port 9 (discard) on the loopback: nothing listens there, the connection is refused
        proxy = "http://127.0.0.1:9" if network == "refused" else stack.enter_context(_silent_proxy())
        env.update(http_proxy=proxy, https_proxy=proxy, HTTP_PROXY=proxy, HTTPS_PROXY=proxy)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "jaxnn.cli", "train", "--data", "boston", "--steps",
                               "1"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
                              check=False)
        seconds = time.monotonic() - t0
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("jaxnn train: error: --data: could not fetch Boston housing from OpenML")
    assert "--data path/to/boston.csv --target medv" in proc.stderr
    if network == "silent":
        assert "no answer within 1 s (JAXNN_FETCH_TIMEOUT" in proc.stderr, proc.stderr
    assert seconds < 60, seconds  # up to four tries of 1 s each, three 1 s pauses, and the start-up
