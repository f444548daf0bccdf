"""Datasets as read-only float64 NumPy arrays: the built-in ones, standardisation and splits.

:func:`split_dataset` reproduces the seed notebook's ``StandardScaler`` + ``train_test_split``
(``scale_before_split=True`` exactly; by default the scaler sees the training rows only). Bad input
raises :class:`~jaxnn.errors.InputError` naming the argument. CSV files: :mod:`jaxnn.csvfile`
(:func:`load_csv` is re-exported here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxnn import names
from jaxnn.csvfile import CsvOptions, load_csv, read_table
from jaxnn.errors import InputError

__all__ = [
    "BUILTIN_DATASETS",
    "CsvOptions",
    "Dataset",
    "Scaler",
    "Split",
    "load_boston",
    "load_csv",
    "load_dataset",
    "load_diabetes",
    "load_digits",
    "load_friedman1",
    "read_table",
    "split_dataset",
    "with_validation",
]

TASKS: tuple[str, ...] = ("regression", "classification")
BUILTIN_DATASETS: tuple[str, ...] = names.DATASETS

#: OpenML id of the Boston housing data (506 rows, 13 features, target MEDV).
BOSTON_OPENML_ID = 531
BOSTON_TARGET = "medv"

#: Seconds the OpenML fetch may wait on the network (each connect or read; scikit-learn's
#: ``fetch_openml`` takes no timeout of its own, and a network that drops packets would otherwise
#: hang it for minutes). ``JAXNN_FETCH_TIMEOUT`` overrides it.
FETCH_TIMEOUT = 20.0
ENV_FETCH_TIMEOUT = "JAXNN_FETCH_TIMEOUT"


def fetch_openml(*args: Any, **kwargs: Any) -> Any:
    """``sklearn.datasets.fetch_openml``, imported when called (sklearn.datasets is slow to import)."""
    from sklearn.datasets import fetch_openml as fetch

    return fetch(*args, **kwargs)


def fetch_timeout() -> float:
    """The network timeout of :func:`load_boston`'s fetch, in seconds (``JAXNN_FETCH_TIMEOUT``)."""
    text = os.environ.get(ENV_FETCH_TIMEOUT, "").strip()
    if not text:
        return FETCH_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{ENV_FETCH_TIMEOUT}: expected a number of seconds > 0, got {text!r}")
    return value


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Sockets opened in the block time out after ``seconds``, unless the process already set its
    own default timeout (``socket.setdefaulttimeout``), which is left as it is."""
    if socket.getdefaulttimeout() is not None:
        yield
        return
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(None)


def _frozen_array(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a``; the caller's array (and its flags) stay untouched."""
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


# -------------------------------------------------------------------------- Dataset


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A table of numeric features and one target, ready to split.

    Equality is identity (``eq=False``): comparing arrays elementwise is the caller's
    call. Arrays are coerced to the documented dtypes and made read-only.

    Attributes:
        name: ``"diabetes"``, ``"digits"``, ``"boston"``, or the CSV file's stem.
        X: features, shape ``(n, d)``, float64.
        y: targets, shape ``(n,)``: float64 for regression, int64 class indices
            ``0..C-1`` for classification.
        feature_names: ``d`` column names.
        target_name: the target column's name.
        task: ``"regression"`` or ``"classification"``.
        classes: for classification the original class labels, shape ``(C,)``
            (``y`` indexes into it); ``None`` for regression.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    task: str
    classes: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"task must be one of {TASKS}, got {self.task!r}")
        X = np.asarray(self.X, dtype=np.float64)
        if X.ndim != 2:
            raise InputError(f"X must have shape (n, d), got {X.shape}")
        y = np.asarray(self.y)
        if y.shape != (X.shape[0],):
            raise InputError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
        names = tuple(str(f) for f in self.feature_names)
        if len(names) != X.shape[1]:
            raise InputError(f"feature_names has {len(names)} names, X has {X.shape[1]} columns")
        classes = self.classes
        if self.task == "regression":
            if classes is not None:
                raise InputError("classes must be None for a regression dataset")
            y = y.astype(np.float64)
        else:
            if classes is None:
                raise InputError("classes is required for a classification dataset")
            classes = np.asarray(classes)
            if classes.ndim != 1 or classes.shape[0] < 2:
                raise InputError(f"classes must have shape (C,) with C >= 2, got {classes.shape}")
            if y.size and (
                not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() >= classes.shape[0]
            ):
                raise InputError(f"y must hold class indices 0..{classes.shape[0] - 1} for classification")
            y = y.astype(np.int64)
            object.__setattr__(self, "classes", _frozen_array(classes))
        object.__setattr__(self, "X", _frozen_array(X))
        object.__setattr__(self, "y", _frozen_array(y))
        object.__setattr__(self, "feature_names", names)

    @property
    def n_samples(self) -> int:
        """Number of rows ``n``."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns ``d``."""
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int | None:
        """Number of classes ``C`` for classification, ``None`` for regression."""
        return None if self.classes is None else int(self.classes.shape[0])


# --------------------------------------------------------------------------- Scaler


@dataclasses.dataclass(frozen=True, eq=False)
class Scaler:
    """Feature standardisation ``(X - mean) / scale`` as two plain arrays.

    Save it with ``np.savez(path, mean=s.mean, scale=s.scale)`` or as JSON lists and
    rebuild it with ``Scaler(mean=..., scale=...)``.

    Attributes:
        mean: per-feature mean, shape ``(d,)``, float64.
        scale: per-feature population standard deviation (``ddof=0``), shape ``(d,)``;
            constant columns get 1.0, as in scikit-learn's ``StandardScaler``.
    """

    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        if mean.ndim != 1 or scale.shape != mean.shape:
            raise InputError(f"mean and scale must both have shape (d,), got {mean.shape} and {scale.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
            raise InputError("mean and scale must be finite")
        if np.any(scale <= 0):
            raise InputError("scale must be positive")
        object.__setattr__(self, "mean", _frozen_array(mean))
        object.__setattr__(self, "scale", _frozen_array(scale))

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        """Fit on ``X`` with ``sklearn.preprocessing.StandardScaler`` itself: the seed notebook's numbers.

        Args:
            X: data, shape ``(n, d)`` with ``n >= 1``.

        Returns:
            The fitted scaler.
        """
        from sklearn.preprocessing import StandardScaler  # imported when used: it is slow to import

        X = _as_2d_float(X, "X")
        if X.shape[0] == 0:
            raise InputError("X is empty; cannot fit a Scaler on 0 rows")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by column
            sk = StandardScaler().fit(X)
        bad = ~(np.isfinite(sk.mean_) & np.isfinite(sk.scale_))
        if bad.any():
            raise InputError(f"X: column {int(np.argmax(bad))} (0-based) is too large to standardise: its "
                             "mean or standard deviation overflows float64")
        return cls(mean=sk.mean_, scale=sk.scale_)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """``Z * scale + mean``: standardised values (n, d) back on the original scale (float64)."""
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.mean.shape[0]:
            raise InputError(f"expected an array of shape (n, {self.mean.shape[0]}), got {Z.shape}")
        return Z * self.scale + self.mean

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise ``X``.

        Args:
            X: data, shape ``(n, d)`` with ``d`` equal to ``mean.shape[0]``.

        Returns:
            ``(X - mean) / scale``, shape ``(n, d)``, float64 (a new writable array).
        """
        X = _as_2d_float(X, "X")
        if X.shape[1] != self.mean.shape[0]:
            raise InputError(
                f"X has {X.shape[1]} features, but the Scaler was fitted on {self.mean.shape[0]} features"
            )
        return (X - self.mean) / self.scale


def _as_2d_float(X: np.ndarray, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise InputError(f"{name} must have shape (n, d), got {X.shape}")
    return X


# ---------------------------------------------------------------------------- Split


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """A train/test split of a :class:`Dataset`, features already standardised if asked.

    Attributes:
        X_train: shape ``(n_train, d)``, float64.
        X_test: shape ``(n_test, d)``, float64.
        y_train: shape ``(n_train,)`` (dtype as ``dataset.y``).
        y_test: shape ``(n_test,)``.
        scaler: the standardisation applied to ``X_train``/``X_test`` (fitted on the
            training rows, or on all rows with ``scale_before_split=True``); ``None`` when
            the features were left as they are. Apply it to new data before predicting.
        dataset: the dataset that was split (unscaled).
        X_val: ``(n_val, d)`` validation rows carved from the training rows (early stopping
            watches them; they are not in ``X_train``), or ``None``.
        y_val: ``(n_val,)``, or ``None``.
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    scaler: Scaler | None
    dataset: Dataset
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.X_val is None) != (self.y_val is None):
            raise InputError("X_val, y_val: give both or neither")
        for part in ("train", "test", "val"):
            X = getattr(self, f"X_{part}")
            y = getattr(self, f"y_{part}")
            if X is None:
                continue
            if X.ndim != 2 or y.shape != (X.shape[0],):
                raise InputError(f"X_{part} {X.shape} and y_{part} {y.shape} must be (n, d) and (n,)")
            object.__setattr__(self, f"X_{part}", _frozen_array(X))
            object.__setattr__(self, f"y_{part}", _frozen_array(y))

    @property
    def sizes(self) -> dict[str, int]:
        """Rows per part: ``{"train": ..., "validation": ..., "test": ...}`` (they add up to n)."""
        return {"train": int(self.X_train.shape[0]),
                "validation": 0 if self.X_val is None else int(self.X_val.shape[0]),
                "test": int(self.X_test.shape[0])}


# ------------------------------------------------------------------ builtin loaders


def load_diabetes() -> Dataset:
    """scikit-learn's diabetes data (bundled, offline): 442 rows, 10 features, regression.

    The features are scikit-learn's default ``scaled=True`` version (mean-centred, scaled
    by ``std * sqrt(n)``); the target is disease progression one year after baseline.

    Returns:
        ``Dataset`` with ``X`` shape ``(442, 10)`` and ``y`` shape ``(442,)`` float64,
        ``target_name="disease_progression"``.
    """
    import sklearn.datasets  # imported when used: it is slow to import

    bunch = sklearn.datasets.load_diabetes()
    return Dataset(
        name="diabetes",
        X=bunch.data,
        y=bunch.target,
        feature_names=tuple(bunch.feature_names),
        target_name="disease_progression",
        task="regression",
    )


def load_digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (bundled, offline): 10-class classification.

    Returns:
        ``Dataset`` with ``X`` shape ``(1797, 64)`` (pixel intensities 0..16, float64),
        ``y`` shape ``(1797,)`` int64 in ``0..9``, ``classes = arange(10)``,
        ``target_name="digit"``.
    """
    import sklearn.datasets

    bunch = sklearn.datasets.load_digits()
    return Dataset(
        name="digits",
        X=bunch.data,
        y=bunch.target,
        feature_names=tuple(bunch.feature_names),
        target_name="digit",
        task="classification",
        classes=np.asarray(bunch.target_names, dtype=np.int64),
    )


def load_friedman1() -> Dataset:
    """Friedman's benchmark #1 (generated offline by scikit-learn): a *non-linear* regression.

    ``y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 10 x3 + 5 x4 + noise`` with ``x ~ U(0, 1)^10``
    (x5..x9 are irrelevant) and Gaussian noise of standard deviation 1; the same 1,000 rows on every
    machine. A linear model explains about 74% of the variance; a small sigmoid network about 90%,
    so the seed's lesson -- non-linearity helps -- is visible on it.

    Returns:
        ``Dataset`` named ``"friedman1"``, ``X`` shape ``(1000, 10)``, ``y`` shape ``(1000,)``
        (mean about 14, standard deviation about 5), ``target_name="y"``.
    """
    import sklearn.datasets

    X, y = sklearn.datasets.make_friedman1(n_samples=1000, n_features=10, noise=1.0, random_state=0)
    return Dataset(
        name="friedman1",
        X=X,
        y=y,
        feature_names=tuple(f"x{i}" for i in range(10)),
        target_name="y",
        task="regression",
    )


def load_boston(path: str | os.PathLike[str] | None = None) -> Dataset:
    """Boston housing (506 rows, 13 features, target ``medv``): the seed's regression data.

    scikit-learn deprecated ``load_boston`` in 1.0 and removed it in 1.2 for ethical
    reasons: the authors of the data engineered the feature ``B = 1000 (Bk - 0.63)^2``
    (``Bk``: proportion of Black residents by town) on the assumption that racial
    self-segregation raises house prices, and the data set was widely used without that
    assumption being questioned. jaxnn keeps it only to reproduce the seed notebook's
    numbers; prefer :func:`load_diabetes` or another data set for anything else.

    Args:
        path: a CSV file with a header and a ``medv`` target column (all other columns
            are features), e.g. ``../shared/datasets/boston.csv``. With ``None`` the data
            are fetched from OpenML (``data_id=531``) -- this needs the network, or
            scikit-learn's OpenML cache under ``~/scikit_learn_data``.

    Returns:
        ``Dataset`` named ``"boston"``, ``X`` shape ``(506, 13)``, ``y`` shape ``(506,)``.

    Each request gives up after ``JAXNN_FETCH_TIMEOUT`` seconds without an answer (default 20;
    sockets the process opens meanwhile get that default timeout, unless it set its own with
    ``socket.setdefaulttimeout``). ``fetch_openml`` is asked for one retry (its least), 1 s after
    a failure; scikit-learn 1.9 nests two retrying layers, so a network that never answers costs
    four timeouts and three pauses (7 s with ``JAXNN_FETCH_TIMEOUT=1``) before the error.

    Raises:
        OSError: ``path=None`` and OpenML cannot be reached or does not answer in time; the
            message says to pass the CSV path. Also the file errors of :func:`load_csv`.
        ValueError: a malformed CSV (see :func:`load_csv`).
    """
    if path is not None:
        return dataclasses.replace(load_csv(path, BOSTON_TARGET, task="regression"), name="boston")
    timeout = fetch_timeout()
    try:
        # liac-arff needs no pandas; it returns the nominal columns (chas, rad) as codes
        # into ``bunch.categories``, decoded below. The fewest retries scikit-learn takes.
        with _socket_timeout(timeout), warnings.catch_warnings():
            # scikit-learn warns before its retry; the error below says all there is to say
            warnings.filterwarnings("ignore", message="A network error occurred", category=UserWarning)
            bunch = fetch_openml(
                data_id=BOSTON_OPENML_ID,
                as_frame=False,
                parser="liac-arff",
                n_retries=1,
                delay=1.0,
            )
    except OSError as exc:  # URLError, HTTPError, TimeoutError, socket errors
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError):
            reason = f"no answer within {timeout:g} s ({ENV_FETCH_TIMEOUT} sets the limit)"
        raise OSError(
            f"could not fetch Boston housing from OpenML (data_id={BOSTON_OPENML_ID}): {reason}; "
            "without network access pass the seed's CSV instead: --data path/to/boston.csv "
            "--target medv on the command line, load_boston('path/to/boston.csv') in Python"
        ) from exc
    X = np.array(bunch.data, dtype=np.float64)
    names = [str(f) for f in bunch.feature_names]
    for col, cats in (bunch.categories or {}).items():
        j = names.index(col)
        X[:, j] = np.asarray([float(c) for c in cats], dtype=np.float64)[X[:, j].astype(int)]
    return Dataset(
        name="boston",
        X=X,
        y=np.asarray(bunch.target, dtype=np.float64),
        feature_names=tuple(n.lower() for n in names),
        target_name=BOSTON_TARGET,
        task="regression",
    )


def load_dataset(
    spec: str | os.PathLike[str], target: str | None = None, *, task: str | None = None,
    options: CsvOptions | None = None,
) -> Dataset:
    """Load a data set by name or CSV path (what the CLI's ``--data`` takes).

    Args:
        spec: ``"diabetes"``, ``"digits"``, ``"boston"`` (fetched from OpenML -- pass the
            CSV path when offline), or a path ending in ``.csv``.
        target: for a CSV, the target column; ``None`` means the *last* column (for the
            seed's ``boston.csv`` that is ``medv``). Must be ``None`` (or the dataset's
            own target name) for the built-in names.
        task: for a CSV, ``"regression"`` (default) or ``"classification"``. For the
            built-in names ``None`` or their own task.
        options: for a CSV, how to read it (:class:`CsvOptions`); must be None or the default for
            the built-in names.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: an unknown ``spec``, or ``target``/``task`` that contradict a
            built-in dataset; plus everything :func:`load_csv` and :func:`load_boston`
            raise.
    """
    spec_str = os.fspath(spec)
    if spec_str in BUILTIN_DATASETS:
        loaders = {"diabetes": load_diabetes, "digits": load_digits, "boston": load_boston,
                   "friedman1": load_friedman1}
        if options is not None and options != CsvOptions():
            raise InputError(f"options: {spec_str!r} is a built-in dataset, not a CSV file")
        ds = loaders[spec_str]()
        if target is not None and target != ds.target_name:
            raise InputError(f"target: {spec_str!r} has the fixed target {ds.target_name!r}, got {target!r}")
        if task is not None and task != ds.task:
            raise InputError(f"task: {spec_str!r} is a {ds.task} dataset, got {task!r}")
        return ds
    if spec_str.lower().endswith(".csv"):
        return load_csv(spec_str, target, task=task, options=options)
    if os.path.isdir(spec_str):  # say so, rather than "unknown dataset", for `--data some/dir`
        raise IsADirectoryError(f"spec: {spec_str!r} is a directory, expected a CSV file")
    raise InputError(
        f"spec: unknown dataset {spec_str!r}; expected one of {', '.join(BUILTIN_DATASETS)} "
        "or a path ending in .csv"
    )


# ---------------------------------------------------------------------------- split


def split_dataset(
    ds: Dataset,
    *,
    test_size: float = 0.3,
    random_state: int | None = 80718,
    scale: bool = True,
    scale_before_split: bool = False,
    stratify: bool = False,
    validation_fraction: float | None = None,
) -> Split:
    """Split into train and test rows with scikit-learn's ``train_test_split``.

    The defaults of ``test_size`` and ``random_state`` are the seed notebook's, so the
    same rows land in the same split (Boston: 354 train / 152 test).

    Args:
        ds: the dataset.
        test_size: fraction of rows for the test set, strictly between 0 and 1;
            ``ceil(test_size * n)`` rows go to the test set (scikit-learn's rule).
        random_state: seed of the shuffle; ``None`` for a different split every call.
        scale: standardise the features (see :class:`Scaler`).
        scale_before_split: fit the scaler on *all* rows before splitting, as the seed
            does. This leaks test statistics into training; it exists to reproduce the
            seed's numbers. Default: fit on the training rows only.
        stratify: keep class proportions equal in both parts (classification only).
        validation_fraction: if given, this fraction of the *training* rows (strictly between
            0 and 1, as scikit-learn's ``validation_fraction``) becomes ``X_val``/``y_val`` for
            early stopping; the scaler is then fitted on the remaining training rows.

    Returns:
        :class:`Split` with ``X_*`` shape ``(n_*, d)`` and ``y_*`` shape ``(n_*,)``.

    Raises:
        TypeError: ``test_size`` is not a real number.
        ValueError: ``test_size`` outside ``(0, 1)``; a split leaving the train or test
            set empty; ``scale_before_split`` without ``scale``; ``stratify`` for
            regression (or classes too small to stratify, from scikit-learn).
    """
    test_size = names.fraction("test_size", test_size)
    if scale_before_split and not scale:
        raise InputError("scale_before_split=True needs scale=True")
    if stratify and ds.task != "classification":
        raise InputError("stratify=True needs a classification dataset")
    n = ds.n_samples
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train < 1 or n_test < 1:
        raise InputError(
            f"test_size={test_size} on {n} rows gives {n_train} train and {n_test} test "
            "rows; both sets must be non-empty (use a smaller test_size or more data)"
        )
    from sklearn.model_selection import train_test_split

    X = ds.X
    scaler = None
    if scale and scale_before_split:
        scaler = Scaler.fit(X)
        X = scaler.transform(X)
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        ds.y,
        test_size=test_size,
        random_state=random_state,
        stratify=ds.y if stratify else None,
    )
    X_val = y_val = None
    if validation_fraction is not None:
        X_train, X_val, y_train, y_val = _carve(X_train, y_train, validation_fraction, random_state,
                                                ds.task == "classification")
    if scale and not scale_before_split:
        scaler = Scaler.fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        X_val = None if X_val is None else scaler.transform(X_val)
    return Split(
        X_train=X_train,
        X_test=X_test,
        y_train=y_train,
        y_test=y_test,
        scaler=scaler,
        dataset=ds,
        X_val=X_val,
        y_val=y_val,
    )


def with_validation(split: Split, validation_fraction: float, random_state: int | None = 0) -> Split:
    """``split`` with ``validation_fraction`` of its training rows moved to ``X_val``/``y_val``.

    The test rows are untouched; the scaler stays the one ``split`` was standardised with.

    Raises:
        TypeError / ValueError: ``validation_fraction`` not a number strictly between 0 and 1,
            or too few training rows to leave at least one in each part.
    """
    if split.X_val is not None:
        raise InputError("split: it already has validation rows")
    X_tr, X_val, y_tr, y_val = _carve(split.X_train, split.y_train, validation_fraction, random_state,
                                      split.dataset.task == "classification")
    return dataclasses.replace(split, X_train=X_tr, y_train=y_tr, X_val=X_val, y_val=y_val)


def _carve(X: np.ndarray, y: np.ndarray, fraction: float, random_state: int | None, classes: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_fit, X_val, y_fit, y_val): ``ceil(fraction * n)`` validation rows, stratified for
    classes when every class has at least 2 training rows (as scikit-learn's MLPs do)."""
    fraction = names.fraction("validation_fraction", fraction)
    n = X.shape[0]
    n_val = math.ceil(fraction * n)
    if n - n_val < 1 or n_val < 1:
        raise InputError(f"validation_fraction={fraction} of {n} training rows leaves {n - n_val} to train "
                         f"on and {n_val} to validate on; both must be non-empty")
    stratify = None
    if classes:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and n_val >= counts.size and n - n_val >= counts.size:
            stratify = y
    from sklearn.model_selection import train_test_split

    seed = None if random_state is None else int(random_state) % (1 << 32)
    X_fit, X_val, y_fit, y_val = train_test_split(X, y, test_size=fraction, random_state=seed,
                                                  stratify=stratify)
    return X_fit, X_val, y_fit, y_val
