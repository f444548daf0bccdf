"""CSV files: the strict reader, the choice of columns, and :func:`load_csv` (a file to a Dataset).

:func:`load_csv` reads every file through :func:`read_table` and picks its target, dropped and
one-hot columns with :func:`resolve_columns`; the command line runs the same two on the header alone
before its slow imports (``jaxnn.cli.userinput``), so a misspelt ``--target`` or a header of numbers
is refused at once, in the same words. Importing this module imports neither NumPy, JAX nor
scikit-learn (:func:`load_csv` imports NumPy when called).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxnn.errors import InputError, InputTypeError
from jaxnn.files import open_regular_file

if TYPE_CHECKING:
    import numpy as np

    from jaxnn.datasets import Dataset

__all__ = ["MISSING_MARKERS", "CsvOptions", "load_csv", "number", "one_hot", "parse_column", "read_header",
           "read_table", "resolve_columns"]

#: Cells read as a missing value (compared after stripping, case-insensitively).
MISSING_MARKERS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "null", "none"})


@dataclasses.dataclass(frozen=True)
class CsvOptions:
    """How :func:`load_csv` reads a file (the CLI's ``--no-header``, ``--delimiter``, ``--drop``,
    ``--one-hot``, ``--drop-missing``).

    Attributes:
        header: the first non-blank row names the columns (default). ``False``: every row is data
            and the columns are named ``x0``, ``x1``, ...
        delimiter: the one-character field separator (``","``; e.g. ``";"`` or ``"\\t"``).
        drop: columns to leave out (e.g. an id or a text column).
        one_hot: categorical feature columns to expand into 0/1 columns ``"col=value"``, one per
            distinct value (sorted).
        drop_missing: drop the rows that have a missing value (empty, ``NA``, ``N/A``, ``NaN``,
            ``null``, ``None``) in a column that is used; default: refuse the file, with the count.
    """

    header: bool = True
    delimiter: str = ","
    drop: tuple[str, ...] = ()
    one_hot: tuple[str, ...] = ()
    drop_missing: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.header, bool):
            raise InputTypeError(f"header: expected True or False, got {self.header!r}")
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1 or self.delimiter in "\"\r\n":
            raise InputError(f"delimiter: expected one character other than a quote or newline, "
                             f"got {self.delimiter!r}")
        for name in ("drop", "one_hot"):
            cols = getattr(self, name)
            if isinstance(cols, str) or not all(isinstance(c, str) for c in cols):
                raise InputTypeError(f"{name}: expected a sequence of column names, got {cols!r}")
            object.__setattr__(self, name, tuple(c.strip() for c in cols))
        if not isinstance(self.drop_missing, bool):
            raise InputTypeError(f"drop_missing: expected True or False, got {self.drop_missing!r}")


def number(text: str) -> float | None:
    """``text`` as a float, or None: ASCII only (``float`` also reads Arabic-Indic and other digits)."""
    if not text.isascii():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_table(path: str | os.PathLike[str], options: CsvOptions | None = None, *,
               max_rows: int | None = None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Read a CSV strictly as text: (column names, [(file line, stripped cells), ...]).

    Blank lines are skipped; every data row must have as many fields as the first row. A first
    row of numbers only is refused unless ``options.header`` is False (``--no-header``): it is
    data, not column names, and would otherwise be lost. ``max_rows``: stop after that many data
    rows (the file's header and first row, without reading the rest).

    Raises:
        FileNotFoundError / IsADirectoryError / ValueError (a FIFO or device, not UTF-8, bad CSV,
        empty, ragged, a header of numbers, duplicate or empty names).
    """
    opts = options or CsvOptions()
    p = Path(path)
    names: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        # utf-8-sig drops a byte-order mark (spreadsheet exports); newline="" for csv.
        with io.TextIOWrapper(open_regular_file(p, "path"), newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, strict=True, delimiter=opts.delimiter)
            for fields in reader:
                line = reader.line_num
                if not fields or all(not f.strip() for f in fields):
                    continue  # blank lines carry nothing; skip them wherever they are
                cells = [f.strip() for f in fields]
                if names is None:
                    if opts.header:
                        names = _parse_header(cells, p)
                        continue
                    names = [f"x{j}" for j in range(len(cells))]
                if len(cells) != len(names):
                    what = "header" if opts.header else "first row"
                    raise InputError(f"{str(p)!r} line {line} (data row {len(rows) + 1}) has {len(cells)} "
                                     f"fields, but the {what} has {len(names)} columns")
                rows.append((line, cells))
                if max_rows is not None and len(rows) >= max_rows:
                    break
    except UnicodeDecodeError as exc:
        raise InputError(f"path: {str(p)!r} is not a UTF-8 text file ({exc})") from exc
    except csv.Error as exc:
        raise InputError(f"path: {str(p)!r} is not valid CSV: {exc}") from exc
    if names is None:
        raise InputError(f"path: {str(p)!r} is empty; expected a header row and data rows")
    if not rows:
        raise InputError(f"path: {str(p)!r} has a header but no data rows; expected at least 2 rows")
    return names, rows


def read_header(path: str | os.PathLike[str], options: CsvOptions | None = None) -> list[str]:
    """The column names of a CSV, read as :func:`read_table` reads them (the header and the first
    data row are checked; the rest of the file is not read)."""
    return read_table(path, options, max_rows=1)[0]


def _parse_header(names: list[str], p: Path) -> list[str]:
    for j, name in enumerate(names, start=1):
        if not name:
            raise InputError(f"{str(p)!r}: header column {j} has an empty name")
    if all(number(n) is not None for n in names):
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise InputError(f"{str(p)!r}: the first row ({shown}) "
                         "is all numbers, not column names; if the file has no header row, pass "
                         "--no-header (header=False): every row is then data and the columns are x0, x1, ...")
    seen: dict[str, int] = {}
    dups = []
    for j, name in enumerate(names, start=1):
        if name in seen:
            dups.append(f"{name!r} (columns {seen[name]} and {j})")
        else:
            seen[name] = j
    if dups:
        raise InputError(f"{str(p)!r}: duplicate column names in header: {', '.join(dups)}")
    return names


def column(names: list[str], spec: str, what: str, path: Any, *, header: bool) -> int:
    """Index of column ``spec``: a name, or with ``header=False`` also a 0-based index (-1: the last)."""
    if spec in names:
        return names.index(spec)
    if not header and spec.lstrip("-").isdigit() and spec.isascii() and -len(names) <= int(spec) < len(names):
        return int(spec) % len(names)
    raise InputError(f"{what}: column {spec!r} is not in {str(path)!r}; available columns: {', '.join(names)}"
                     + ("" if header else f" (or an index 0..{len(names) - 1})"))


def resolve_columns(names: list[str], target: str | None, options: CsvOptions | None, path: Any
                    ) -> tuple[int, set[int], list[int]]:
    """(target index, dropped indices, one-hot indices) of a CSV with columns ``names``.

    Raises:
        ValueError: an unknown ``target``/``drop``/``one_hot`` column (naming the argument and the
            available columns), the target dropped or one-hot encoded, a column both dropped and
            encoded, or no feature column left.
    """
    opts = options or CsvOptions()
    t = (len(names) - 1 if target is None
         else column(names, target.strip(), "target", path, header=opts.header))
    dropped = {column(names, c, "drop", path, header=opts.header) for c in opts.drop}
    encoded = [column(names, c, "one_hot", path, header=opts.header) for c in opts.one_hot]
    for what, cols in (("drop", dropped), ("one_hot", set(encoded))):
        if t in cols:
            raise InputError(f"{what}: {names[t]!r} is the target column")
    if dropped & set(encoded):
        raise InputError(f"drop, one_hot: {sorted(names[j] for j in dropped & set(encoded))} given to both")
    if len([j for j in range(len(names)) if j not in dropped]) < 2:
        raise InputError(f"{str(path)!r} has only the target column {names[t]!r}; no features")
    return t, dropped, encoded


def parse_column(cells: list[str], name: str, lines: list[int], p: Any) -> np.ndarray:
    """A column's cells as float64 numbers, refusing a missing, unparsable or infinite one by its place."""
    import numpy as np

    out = np.empty(len(cells), dtype=np.float64)
    for i, text in enumerate(cells):
        value = number(text)
        where = f"{str(p)!r} line {lines[i]} (data row {i + 1}), column {name!r}"
        if text.lower() in MISSING_MARKERS:
            raise InputError(f"{where}: missing value {text!r} ({'empty' if not text else 'NA'}); "
                             "every feature needs a number")
        if value is None:
            raise InputError(f"{where}: cannot parse {text!r} as a number")
        if not math.isfinite(value):
            raise InputError(f"{where}: non-finite value {text!r}; inf is not allowed in features or target")
        out[i] = value
    return out


def one_hot(cells: list[str], categories: list[str]) -> list[np.ndarray]:
    """The 0/1 float64 indicator column of each category: ``cells == category`` (features
    ``"col=category"`` of ``--one-hot col``)."""
    import numpy as np

    return [np.asarray([c == cat for c in cells], dtype=np.float64) for cat in categories]


def load_csv(path: str | os.PathLike[str], target: str | None = None, *, task: str | None = None,
             options: CsvOptions | None = None) -> Dataset:
    """Load a CSV file; one column is the target, the others (numeric or one-hot) the features.

    UTF-8 (a byte-order mark is fine), ``options.delimiter``-separated, a header row unless
    ``options.header`` is False (columns ``x0``, ``x1``, ...); blank lines are skipped. Feature and
    regression-target cells must be finite ASCII numbers. The task is never guessed: with
    ``task="classification"`` the sorted distinct target values become ``Dataset.classes`` (int64
    when all are integers, float when numbers, else strings) and ``y`` indexes into them.

    Args:
        path: the CSV file.
        target: the target column's name (exact, after stripping spaces), or without a header also
            its 0-based index; None: the last column.
        task: ``"regression"`` (default) or ``"classification"``.
        options: :class:`CsvOptions` (header, delimiter, columns to drop or one-hot, missing values).

    Returns:
        ``Dataset`` named after the file's stem.

    Raises:
        FileNotFoundError / IsADirectoryError: no such file, or a directory.
        ValueError: a malformed file or an unknown column, naming the file line, data row and column
            (everything refused is listed in docs/explanation/reliability.md).
    """
    import numpy as np

    from jaxnn.datasets import TASKS, Dataset

    opts = options or CsvOptions()
    if task is None:
        task = "regression"
    if task not in TASKS:
        raise InputError(f"task must be one of {TASKS} or None, got {task!r}")
    if target is not None and not isinstance(target, str):
        raise InputTypeError(f"target must be a column name (str), got {type(target).__name__}")
    names, rows = read_table(path, opts)
    t, dropped, encoded = resolve_columns(names, target, opts, path)
    target = names[t]
    used = [j for j in range(len(names)) if j not in dropped]
    # Missing values: refused with their count, or their rows dropped.
    missing = [[j for j in used if cells[j].lower() in MISSING_MARKERS] for _, cells in rows]
    bad_rows = [i for i, cols in enumerate(missing) if cols]
    if bad_rows and not opts.drop_missing:
        line, cells = rows[bad_rows[0]]
        j = missing[bad_rows[0]][0]
        count = sum(len(cols) for cols in missing)
        first = "empty value" if not cells[j] else f"missing value {cells[j]!r}"
        raise InputError(f"{str(path)!r}: {count} missing value{'s' * (count != 1)} in {len(bad_rows)} "
                         f"row{'s' * (len(bad_rows) != 1)}, the first at line {line} (data row "
                         f"{bad_rows[0] + 1}), column {names[j]!r}: {first}; pass --drop-missing "
                         "(drop_missing=True) to drop such rows")
    keep = [i for i, cols in enumerate(missing) if not cols]
    lines = [rows[i][0] for i in keep]
    columns = [[rows[i][1][j] for i in keep] for j in range(len(names))]
    if len(keep) < 2:
        after = f" left after dropping {len(bad_rows)} with missing values" if bad_rows else ""
        raise InputError(f"{str(path)!r} has only {len(keep)} data row{after}; need at least 2 "
                         "(one to train on and one to test on)")
    features: list[np.ndarray] = []
    feature_names: list[str] = []
    for j in used:
        if j == t:
            continue
        if j in encoded:
            cats = sorted(set(columns[j]))
            features += one_hot(columns[j], cats)
            feature_names += [f"{names[j]}={cat}" for cat in cats]
        else:
            features.append(parse_column(columns[j], names[j], lines, path))
            feature_names.append(names[j])
    if len(set(feature_names)) != len(feature_names):
        raise InputError(f"one_hot: the encoded names {feature_names} collide with other columns")
    X = np.stack(features, axis=1)
    classes = None
    if task == "classification":
        labels = columns[t]
        parsed = [number(c) for c in labels]
        if all(v is not None and math.isfinite(v) for v in parsed):
            uniq, y_idx = np.unique(np.asarray(parsed, dtype=np.float64), return_inverse=True)
            classes = uniq.astype(np.int64) if np.all(uniq == np.round(uniq)) else uniq
        else:  # string class labels, as the scikit-learn estimators take them
            uniq, y_idx = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
            classes = uniq
        if uniq.shape[0] < 2:
            raise InputError(
                f"target: column {target!r} has a single value {labels[0]!r}; "
                "classification needs at least 2 classes"
            )
        y = y_idx.reshape(-1).astype(np.int64)
    else:
        y = parse_column(columns[t], target, lines, path)
    return Dataset(
        name=Path(path).stem,
        X=X,
        y=y,
        feature_names=tuple(feature_names),
        target_name=target,
        task=task,
        classes=classes,
    )
