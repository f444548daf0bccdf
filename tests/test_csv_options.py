"""CSV files as they come: no header, another delimiter, missing values, categorical columns and
string class labels -- each with a way forward, and never a row lost silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jaxnn.cli import main
from jaxnn.datasets import CsvOptions, load_csv

ROWS = [(i, (i * 7) % 5, 2 * i + 1.5) for i in range(12)]


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as e:
        status = int(e.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def one_line(status: int, err: str, *pieces: str) -> None:
    assert status == 2 and err.count("\n") == 1 and err.startswith("jaxnn"), (status, err)
    for piece in pieces:
        assert piece in err, (piece, err)


def test_no_header_keeps_every_row_and_names_columns(tmp_path, capsys):
    body = "".join(f"{a},{b},{y}\n" for a, b, y in ROWS)
    f = write(tmp_path, "raw.csv", body)
    status, _, err = cli(["train", "--data", str(f), "--steps", "1"], capsys)
    one_line(status, err, "all numbers", "--no-header")
    ds = load_csv(f, options=CsvOptions(header=False))
    assert ds.n_samples == len(ROWS) and ds.feature_names == ("x0", "x1") and ds.target_name == "x2"
    np.testing.assert_array_equal(ds.X[0], [0, 0])  # the first row is data, not lost
    assert load_csv(f, "0", options=CsvOptions(header=False)).target_name == "x0"
    assert load_csv(f, "x1", options=CsvOptions(header=False)).feature_names == ("x0", "x2")
    status, out, err = cli(["train", "--data", str(f), "--no-header", "--target", "1", "--steps", "1",
                            "--model", "linear", "--json"], capsys)
    assert status == 0, err
    assert sum(json.loads(out)["rows"].values()) == len(ROWS)


def test_delimiter(tmp_path, capsys):
    f = write(tmp_path, "semi.csv", "a;b;y\n" + "".join(f"{a};{b};{y}\n" for a, b, y in ROWS))
    assert load_csv(f, "y", options=CsvOptions(delimiter=";")).n_features == 2
    status, _, err = cli(["train", "--data", str(f), "--delimiter", ";", "--steps", "1", "--json"], capsys)
    assert status == 0, err
    status, _, err = cli(["train", "--data", str(f), "--delimiter", ";;", "--steps", "1"], capsys)
    one_line(status, err, "--delimiter", "one character")


def test_missing_values_refused_with_count_or_dropped(tmp_path, capsys):
    text = "a,b,y\n" + "".join(f"{a},{b},{y}\n" for a, b, y in ROWS[:8]) + "1,NA,3\n,,4\n2,3,null\n"
    f = write(tmp_path, "holes.csv", text)
    with pytest.raises(ValueError, match=r"4 missing values in 3 rows.*line 10 \(data row 9\), column 'b'"):
        load_csv(f, "y")
    status, _, err = cli(["train", "--data", str(f), "--steps", "1"], capsys)
    one_line(status, err, "4 missing values in 3 rows", "--drop-missing")
    assert load_csv(f, "y", options=CsvOptions(drop_missing=True)).n_samples == 8
    status, out, err = cli(["train", "--data", str(f), "--drop-missing", "--steps", "1", "--json"], capsys)
    assert status == 0, err
    assert sum(json.loads(out)["rows"].values()) == 8


def test_drop_and_one_hot_then_predict(tmp_path, capsys):
    colors = ["red", "green", "blue"]
    text = "id,color,a,y\n" + "".join(f"row{i},{colors[i % 3]},{a},{y}\n" for i, (a, _, y) in enumerate(ROWS))
    f = write(tmp_path, "cat.csv", text)
    status, _, err = cli(["train", "--data", str(f), "--steps", "1"], capsys)
    one_line(status, err, "column 'id'", "'row0'")
    ds = load_csv(f, "y", options=CsvOptions(drop=("id",), one_hot=("color",)))
    assert ds.feature_names == ("color=blue", "color=green", "color=red", "a")
    np.testing.assert_array_equal(ds.X[:3, :3], [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    model = tmp_path / "m.npz"
    status, _, err = cli(["train", "--data", str(f), "--drop", "id", "--one-hot", "color", "--steps", "3",
                          "--save", str(model)], capsys)
    assert status == 0, err
    status, out, err = cli(["predict", "--model", str(model), "--data", str(f), "--json"], capsys)
    assert status == 0, err
    assert json.loads(out)["n"] == len(ROWS)
    g = write(tmp_path, "new.csv", "id,color,a\nq,purple,1\n")
    status, _, err = cli(["predict", "--model", str(model), "--data", str(g)], capsys)
    one_line(status, err, "'color'", "'purple'", "not trained on")
    with pytest.raises(ValueError, match="target column"):
        load_csv(f, "y", options=CsvOptions(drop=("y",)))
    with pytest.raises(ValueError, match=r"one_hot: column 'colour' is not in"):
        load_csv(f, "y", options=CsvOptions(one_hot=("colour",)))


def test_string_class_labels_train_and_predict(tmp_path, capsys):
    text = "a,b,animal\n" + "".join(f"{a},{b},{'cat' if a % 2 else 'dog'}\n" for a, b, _ in ROWS)
    f = write(tmp_path, "pets.csv", text)
    ds = load_csv(f, "animal", task="classification")
    assert ds.classes.tolist() == ["cat", "dog"] and ds.y.tolist()[:2] == [1, 0]
    model = tmp_path / "pets.npz"
    status, out, err = cli(["train", "--data", str(f), "--task", "classification", "--steps", "3",
                            "--save", str(model), "--json"], capsys)
    assert status == 0, err
    status, out, err = cli(["predict", "--model", str(model), "--data", str(f), "--json"], capsys)
    assert status == 0, err
    r = json.loads(out)
    assert r["classes"] == ["cat", "dog"] and set(r["predictions"]) <= {"cat", "dog"}
    with pytest.raises(ValueError, match=r"column 'animal'.*'dog'"):  # regression still needs numbers
        load_csv(f, "animal")


def test_non_ascii_digits_are_not_numbers(tmp_path):
    f = write(tmp_path, "arabic.csv", "a,y\n1,2\n\u0663,4\n5,6\n")  # Arabic-Indic three
    with pytest.raises(ValueError, match=r"data row 2\), column 'a': cannot parse '\u0663'"):
        load_csv(f, "y")
    g = write(tmp_path, "arabic_header.csv", "\u0661,\u0662\n1,2\n3,4\n")  # a header, not numbers
    assert load_csv(g).feature_names == ("\u0661",)


def test_bad_input_is_one_line_with_no_warning_before_it(tmp_path):
    """Values whose statistics overflow: numpy and scikit-learn warn on the way to the error."""
    import subprocess
    import sys

    f = write(tmp_path, "big.csv", "a,y\n" + "".join(f"{1 + i / 10}e308,{i}\n" for i in range(6)))
    r = subprocess.run([sys.executable, "-m", "jaxnn.cli", "train", "--data", str(f), "--steps", "1"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "column 0" in r.stderr and "overflows" in r.stderr and "Warning" not in r.stderr
