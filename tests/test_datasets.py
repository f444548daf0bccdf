"""jaxnn.datasets: built-in loaders, the strict CSV reader, the seed's split, the Scaler."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from jaxnn import datasets
from jaxnn.datasets import Dataset, Scaler, load_boston, load_csv, load_dataset, split_dataset

BOSTON_FEATURES = (
    "crim",
    "zn",
    "indus",
    "chas",
    "nox",
    "rm",
    "age",
    "dis",
    "rad",
    "tax",
    "ptratio",
    "b",
    "lstat",
)


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = "a,b,y\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n"


# ------------------------------------------------------------------- built-ins


def test_diabetes():
    ds = datasets.load_diabetes()
    assert (ds.name, ds.task, ds.classes) == ("diabetes", "regression", None)
    assert ds.X.shape == (442, 10) and ds.y.shape == (442,)
    assert ds.X.dtype == np.float64 and ds.y.dtype == np.float64
    assert len(ds.feature_names) == 10


def test_digits():
    ds = datasets.load_digits()
    assert (ds.name, ds.task) == ("digits", "classification")
    assert ds.X.shape == (1797, 64) and ds.y.shape == (1797,)
    assert ds.X.dtype == np.float64 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.classes, np.arange(10))
    np.testing.assert_array_equal(np.unique(ds.y), np.arange(10))
    assert ds.n_classes == 10


def test_arrays_are_read_only():
    ds = datasets.load_diabetes()
    with pytest.raises(ValueError, match="read-only"):
        ds.X[0, 0] = 1.0


# ---------------------------------------------------------------------- Boston


def test_boston_from_shared_csv(boston_csv):
    ds = load_boston(boston_csv)
    assert (ds.name, ds.task, ds.target_name) == ("boston", "regression", "medv")
    assert ds.X.shape == (506, 13) and ds.y.shape == (506,)
    assert ds.feature_names == BOSTON_FEATURES
    assert ds.y[0] == 24.0 and ds.X[0, 0] == 0.00632  # first data row of the file


def test_load_dataset_csv_defaults_to_last_column(boston_csv):
    ds = load_dataset(str(boston_csv))
    assert ds.target_name == "medv" and ds.X.shape == (506, 13)
    ds_path = load_dataset(boston_csv, "medv")
    np.testing.assert_array_equal(ds_path.X, ds.X)


def test_dlfs_split_reproduces_the_seed_exactly(boston_csv):
    ds = load_boston(boston_csv)
    split = split_dataset(ds, test_size=0.3, random_state=80718, scale_before_split=True)
    assert split.X_train.shape == (354, 13) and split.X_test.shape == (152, 13)
    assert split.y_train.shape == (354,) and split.y_test.shape == (152,)
    # The seed, by hand.
    X = StandardScaler().fit_transform(ds.X)
    X_train, X_test, y_train, y_test = train_test_split(X, ds.y, test_size=0.3, random_state=80718)
    np.testing.assert_array_equal(split.X_train, X_train)
    np.testing.assert_array_equal(split.X_test, X_test)
    np.testing.assert_array_equal(split.y_train, y_train)
    np.testing.assert_array_equal(split.y_test, y_test)
    sk = StandardScaler().fit(ds.X)
    np.testing.assert_array_equal(split.scaler.mean, sk.mean_)
    np.testing.assert_array_equal(split.scaler.scale, sk.scale_)


def test_default_split_fits_scaler_on_train_only(boston_csv):
    ds = load_boston(boston_csv)
    split = split_dataset(ds)  # test_size=0.3, random_state=80718
    X_train, X_test, y_train, _ = train_test_split(ds.X, ds.y, test_size=0.3, random_state=80718)
    sk = StandardScaler().fit(X_train)
    np.testing.assert_array_equal(split.scaler.mean, sk.mean_)
    np.testing.assert_array_equal(split.scaler.scale, sk.scale_)
    np.testing.assert_array_equal(split.X_train, sk.transform(X_train))
    np.testing.assert_array_equal(split.X_test, sk.transform(X_test))
    np.testing.assert_array_equal(split.y_train, y_train)
    assert split.dataset is ds


def test_unscaled_and_stratified_split():
    ds = datasets.load_digits()
    split = split_dataset(ds, scale=False, stratify=True, test_size=0.25)
    assert split.scaler is None
    assert split.X_train.shape[0] + split.X_test.shape[0] == 1797
    counts_train = np.bincount(split.y_train) / split.y_train.shape[0]
    counts_all = np.bincount(ds.y) / ds.y.shape[0]
    np.testing.assert_allclose(counts_train, counts_all, atol=0.01)


def test_scaler_equals_standard_scaler_with_constant_column():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(5.0, 3.0, 50), np.full(50, 7.0)])
    scaler = Scaler.fit(X)
    sk = StandardScaler().fit(X)
    np.testing.assert_array_equal(scaler.mean, sk.mean_)
    np.testing.assert_array_equal(scaler.scale, sk.scale_)
    assert scaler.scale[1] == 1.0
    np.testing.assert_array_equal(scaler.transform(X), sk.transform(X))
    with pytest.raises(ValueError, match="has 3 features, but the Scaler was fitted on 2"):
        scaler.transform(np.ones((3, 3)))


def test_load_boston_offline_raises_without_retrying(monkeypatch):
    """Offline, one attempt per call (no retry loop to wait through), then a clear OSError."""
    calls = []

    def offline(*args, **kwargs):
        calls.append(kwargs)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets, "fetch_openml", offline)
    with pytest.raises(OSError, match=r"(?s)OpenML.*pass the seed's CSV instead: --data path/to/boston.csv "
                                      r"--target medv on the command line, load_boston\('path/to/"):
        load_boston()
    with pytest.raises(OSError, match="pass the seed's CSV instead"):
        load_dataset("boston")
    assert len(calls) == 2
    assert all(c.get("data_id") == 531 and c.get("n_retries", 3) <= 1 for c in calls)


# --------------------------------------------------------------- load_csv good


def test_csv_regression_and_classification(tmp_path):
    path = _write(tmp_path, GOOD, "toy.csv")
    ds = load_csv(path, "b")
    assert ds.name == "toy" and ds.task == "regression" and ds.classes is None
    assert ds.feature_names == ("a", "y")
    np.testing.assert_array_equal(ds.X, [[1, 3], [4, 6], [7, 9], [10, 12]])
    np.testing.assert_array_equal(ds.y, [2, 5, 8, 11])

    path = _write(tmp_path, "x1,x2,label\n0,1,5\n1,0,3\n2,2,5\n3,1,3\n", "cls.csv")
    ds = load_dataset(path, task="classification")
    assert ds.task == "classification" and ds.target_name == "label"
    np.testing.assert_array_equal(ds.classes, [3, 5])
    assert ds.classes.dtype == np.int64 and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 0])


def test_csv_tolerates_spaces_bom_and_blank_lines(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf a , y \r\n1, 2\r\n\r\n3 ,4\r\n\r\n")
    ds = load_csv(path, "y")
    assert ds.feature_names == ("a",)
    np.testing.assert_array_equal(ds.X[:, 0], [1, 3])


# ---------------------------------------------------------------- load_csv bad


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"path: no such file.*nope\.csv"):
        load_csv(tmp_path / "nope.csv", "y")
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        load_dataset(str(tmp_path / "nope.csv"))


def test_directory_instead_of_file(tmp_path):
    d = tmp_path / "dir.csv"
    d.mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_csv(d, "y")


def test_empty_file(tmp_path):
    for text in ("", "\n\n  \n"):
        with pytest.raises(ValueError, match="is empty; expected a header row"):
            load_csv(_write(tmp_path, text), "y")


def test_header_only(tmp_path):
    with pytest.raises(ValueError, match="header but no data rows"):
        load_csv(_write(tmp_path, "a,b,y\n"), "y")


def test_non_numeric_cell_names_line_row_column_and_value(tmp_path):
    text = "a,b,y\n1,2,3\n4,five,6\n"
    with pytest.raises(ValueError, match=r"line 3 \(data row 2\), column 'b'.*'five'"):
        load_csv(_write(tmp_path, text), "y")


def test_non_numeric_target_and_empty_cell(tmp_path):
    with pytest.raises(ValueError, match=r"line 2 \(data row 1\), column 'y'.*'high'"):
        load_csv(_write(tmp_path, "a,y\n1,high\n2,3\n"), "y")
    with pytest.raises(ValueError, match=r"line 3 \(data row 2\), column 'a': empty value"):
        load_csv(_write(tmp_path, "a,y\n1,2\n,3\n"), "y")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a,y\n1,2\nnan,3\n", r"line 3 \(data row 2\), column 'a'.*'nan'"),
        ("a,y\n1,inf\n2,3\n", r"line 2 \(data row 1\), column 'y'.*'inf'"),
        ("a,y\n1,2\n2,-Infinity\n", r"line 3 \(data row 2\), column 'y'.*'-Infinity'"),
        ("a,y\n1,2\n2,NaN\n", r"1 missing value in 1 row.*column 'y'.*'NaN'.*--drop-missing"),
    ],
)
def test_nan_or_inf(tmp_path, text, where):
    with pytest.raises(ValueError, match=where):
        load_csv(_write(tmp_path, text), "y")


def test_single_data_row(tmp_path):
    with pytest.raises(ValueError, match="only 1 data row; need at least 2"):
        load_csv(_write(tmp_path, "a,y\n1,2\n"), "y")


def test_ragged_rows(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"line 3 \(data row 2\) has 2 fields, but the header "
        r"has 3 columns",
    ):
        load_csv(_write(tmp_path, "a,b,y\n1,2,3\n4,5\n"), "y")
    with pytest.raises(ValueError, match="has 4 fields"):
        load_csv(_write(tmp_path, "a,b,y\n1,2,3,4\n4,5,6\n"), "y")


def test_unknown_target_lists_columns(tmp_path):
    with pytest.raises(ValueError, match=r"target: column 'price'.*available columns: a, b, y"):
        load_csv(_write(tmp_path, GOOD), "price")


def test_duplicate_column_names(tmp_path):
    with pytest.raises(ValueError, match=r"duplicate column names.*'a' \(columns 1 and 3\)"):
        load_csv(_write(tmp_path, "a,b,a,y\n1,2,3,4\n5,6,7,8\n"), "y")


def test_empty_column_name_and_no_features(tmp_path):
    with pytest.raises(ValueError, match="header column 2 has an empty name"):
        load_csv(_write(tmp_path, "a,,y\n1,2,3\n4,5,6\n"), "y")
    with pytest.raises(ValueError, match="no features"):
        load_csv(_write(tmp_path, "y\n1\n2\n"), "y")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("caf\xe9,y\n1,2\n3,4\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        load_csv(path, "y")


def test_bad_task_and_single_class(tmp_path):
    path = _write(tmp_path, GOOD)
    with pytest.raises(ValueError, match="task must be one of"):
        load_csv(path, "y", task="clustering")
    with pytest.raises(ValueError, match="at least 2 classes"):
        load_csv(_write(tmp_path, "a,y\n1,0\n2,0\n"), "y", task="classification")


def test_unknown_spec_and_contradicting_builtin_options():
    with pytest.raises(ValueError, match=r"spec: unknown dataset 'mnist'.*\.csv"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="target"):
        load_dataset("diabetes", target="bmi")
    with pytest.raises(ValueError, match="task"):
        load_dataset("digits", task="regression")


# ------------------------------------------------------------------- bad split


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_test_size_outside_unit_interval(tmp_path, test_size):
    ds = load_csv(_write(tmp_path, GOOD), "y")
    with pytest.raises(ValueError, match="test_size: expected a number strictly between 0 and 1"):
        split_dataset(ds, test_size=test_size)


@pytest.mark.parametrize("test_size", ["0.3", True, None])
def test_test_size_wrong_type(tmp_path, test_size):
    ds = load_csv(_write(tmp_path, GOOD), "y")
    with pytest.raises(TypeError, match="test_size"):
        split_dataset(ds, test_size=test_size)


def test_split_leaving_an_empty_set(tmp_path):
    ds = load_csv(_write(tmp_path, "a,y\n1,2\n3,4\n"), "y")
    with pytest.raises(ValueError, match=r"test_size=0\.9 on 2 rows gives 0 train and 2 test"):
        split_dataset(ds, test_size=0.9)
    split = split_dataset(ds, test_size=0.5)  # 1 + 1 is fine
    assert split.X_train.shape == (1, 1) and split.X_test.shape == (1, 1)


def test_split_option_conflicts(tmp_path):
    ds = load_csv(_write(tmp_path, GOOD), "y")
    with pytest.raises(ValueError, match="scale_before_split=True needs scale=True"):
        split_dataset(ds, scale=False, scale_before_split=True)
    with pytest.raises(ValueError, match="stratify"):
        split_dataset(ds, stratify=True)


def test_dataset_validates_its_fields():
    with pytest.raises(ValueError, match="feature_names"):
        Dataset("t", np.ones((3, 2)), np.ones(3), ("a",), "y", "regression")
    with pytest.raises(ValueError, match="y must have shape"):
        Dataset("t", np.ones((3, 2)), np.ones(4), ("a", "b"), "y", "regression")
    with pytest.raises(ValueError, match="classes"):
        Dataset("t", np.ones((3, 2)), np.zeros(3), ("a", "b"), "y", "classification")
