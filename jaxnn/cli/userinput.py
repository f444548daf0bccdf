"""What the user named on the command line, checked and reported in the words they typed.

Two jobs, neither of which imports JAX or scikit-learn:

* :func:`check_data` -- a subcommand's ``preflight``: a CSV ``--data`` must be a regular file
  whose header reads (UTF-8, not a row of numbers, no duplicate names) and has the ``--target``,
  ``--drop`` and ``--one-hot`` columns; a built-in name must be known and agree with ``--target``
  and ``--task``. The same functions read the file later (:mod:`jaxnn.csvfile`), so the words
  are the same, only seconds earlier.
* :func:`flag_names` -- the library names its arguments as Python does (``path:``, ``spec:``,
  ``target:``, ``model file:``); around a library call, the CLI renames them to the flags the user
  typed (``--data:``, ``--target:``, ``--model:``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from jaxnn import names
from jaxnn.errors import InputError

#: The library's argument names -> the CLI's flags, for loading ``--data`` (jaxnn.datasets).
DATA_FLAGS: dict[str, str] = {
    "path": "--data", "spec": "--data", "target": "--target", "task": "--task",
    "drop, one_hot": "--drop, --one-hot", "drop": "--drop", "one_hot": "--one-hot",
    "options": "--no-header/--delimiter/--drop/--one-hot/--drop-missing",
}
#: ... for splitting it (jaxnn.datasets.split_dataset: ``test_size=0.9 on 2 rows gives ...``).
SPLIT_FLAGS: dict[str, str] = {"test_size": "--test-size", "validation_fraction": "--validation-fraction"}

#: Target column and task of each built-in data set (what jaxnn.datasets' loaders return).
BUILTIN_TARGETS: dict[str, tuple[str, str]] = {
    "diabetes": ("disease_progression", "regression"),
    "digits": ("digit", "classification"),
    "boston": ("medv", "regression"),
    "friedman1": ("y", "regression"),
}


def renamed(message: str, flags: Mapping[str, str], default: str | None = None) -> str:
    """``message`` with a leading library argument name (``"path: ..."``, ``"test_size=..."``)
    replaced by its flag; a message that names none gets ``default`` in front (if given)."""
    if message.startswith("--"):
        return message
    for name in sorted(flags, key=len, reverse=True):
        for sep in (": ", "="):
            if message.startswith(name + sep):
                return flags[name] + sep + message[len(name) + len(sep):]
    return f"{default}: {message}" if default else message


@contextlib.contextmanager
def flag_names(flags: Mapping[str, str], default: str | None = None) -> Iterator[None]:
    """Rename the argument a bad-input error of the block names (see :func:`renamed`).

    The exception keeps its type and traceback; only bad input is renamed
    (:class:`~jaxnn.errors.InputError`, an ``OSError`` on the user's file): an internal error is
    left as it is.
    """
    try:
        yield
    except (InputError, OSError) as e:
        from jaxnn.cli import _is_internal

        if _is_internal(e):
            raise
        if len(e.args) == 1 and isinstance(e.args[0], str):
            e.args = (renamed(e.args[0], flags, default),)
            raise
        if isinstance(e, OSError) and e.strerror and default:  # e.g. PermissionError from open()
            new = type(e)(f"{default}: {e.strerror}: {e.filename!r}")
            raise new.with_traceback(e.__traceback__) from None
        raise


def is_csv(data: str) -> bool:
    """``--data`` names a CSV file (no built-in name ends so)."""
    return str(data).lower().endswith(".csv")


def csv_options(args: argparse.Namespace) -> Any:
    """The :class:`~jaxnn.csvfile.CsvOptions` of the ``train``/``sweep`` CSV flags."""
    from jaxnn.csvfile import CsvOptions

    return CsvOptions(header=not args.no_header, delimiter=args.delimiter, drop=tuple(args.drop or ()),
                      one_hot=tuple(args.one_hot or ()), drop_missing=args.drop_missing)


def check_data(args: argparse.Namespace, *, builtins: tuple[str, ...] = names.DATASETS) -> str:
    """Check ``--data`` and the flags about its columns; returns the task it will be trained for.

    Raises:
        FileNotFoundError / IsADirectoryError / ValueError: as loading it would, naming the flags.
    """
    from jaxnn.csvfile import CsvOptions, read_header, resolve_columns
    from jaxnn.files import check_regular_file

    data, target, task = str(args.data), getattr(args, "target", None), getattr(args, "task", None)
    has_options = hasattr(args, "no_header")
    options = csv_options(args) if has_options else CsvOptions()
    if is_csv(data):
        check_regular_file(data, "--data")
        with flag_names(DATA_FLAGS, "--data"):
            resolve_columns(read_header(data, options), target, options, data)
        return task or "regression"
    if has_options and options != CsvOptions():
        raise InputError(f"--no-header/--delimiter/--drop/--one-hot/--drop-missing: {data!r} is a "
                         "built-in dataset, not a CSV file")
    if data not in builtins:
        if os.path.isdir(data):
            raise IsADirectoryError(f"--data: {data!r} is a directory, expected a CSV file")
        raise InputError(f"--data: unknown dataset {data!r}; expected one of {', '.join(builtins)} "
                         "or a path ending in .csv")
    fixed, own_task = BUILTIN_TARGETS[data]
    if target is not None and target != fixed:
        raise InputError(f"--target: {data!r} has the fixed target {fixed!r}, got {target!r}")
    if task is not None and task != own_task:
        raise InputError(f"--task: {data!r} is a {own_task} dataset, got {task!r}")
    return own_task


def check_out_dir(out: str | None) -> None:
    """``--out DIR`` (figures): a directory, or a path where one can be made."""
    if out is not None and os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out: {out!r} exists and is not a directory")


# --- jaxnn predict: the model's columns, read from its checkpoint without JAX ---


def peek_model(path: str) -> dict[str, Any] | None:
    """The ``dataset`` description and the CLI flags stored in a jaxnn checkpoint, read from its
    checked metadata alone (:func:`jaxnn.npzfile.load_arrays` without the arrays, no JAX); None when
    the file cannot be read so -- then :func:`jaxnn.checkpoint.load` says what is wrong with it."""
    from jaxnn.npzfile import load_arrays

    try:
        _, meta = load_arrays(path, arrays=False)
        dataset, extra = meta["dataset"], meta.get("extra", {})
        cli_args = extra.get("cli_args", {}) if isinstance(extra, dict) else {}
        if not isinstance(dataset, dict) or not isinstance(cli_args, dict):
            return None
        n, feature_names, target = dataset["n_features"], dataset.get("feature_names"), dataset.get("target")
        if (type(n) is not int or n < 1 or not (target is None or isinstance(target, str))
                or not (feature_names is None or (isinstance(feature_names, list) and len(feature_names) == n
                                                  and all(isinstance(c, str) for c in feature_names)))):
            return None
        return {"dataset": dataset, "cli_args": cli_args}
    except Exception:  # anything odd: the full load reports it
        return None
