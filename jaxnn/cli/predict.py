"""``jaxnn predict``: apply a saved model (``jaxnn train --save``) to new rows of a CSV
(``docs/how-to/save-resume-predict.md``). ``--json`` prints one object::

    {"model": "m.npz", "task": "regression", "target": "medv", "n": 506,
     "predictions": [24.1, ...]}

Classification adds ``"classes"`` and ``"probabilities"`` (n rows of C softmax
probabilities). A model with several regression outputs prints lists.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from jaxnn.cli.train import _delimiter
from jaxnn.errors import EXIT_OK, InputError
from jaxnn.names import DATASETS


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict",
        help="predict with a model saved by `jaxnn train --save`",
        description="Apply a saved model (with its scaler) to the rows of a CSV file.",
    )
    p.add_argument("--model", required=True, metavar="FILE",
                   help="checkpoint (.npz) from `jaxnn train --save`")
    p.add_argument("--data", required=True, metavar="CSV",
                   help="CSV with a header and the model's feature columns (the target column is ignored), "
                        "or a built-in dataset name")
    p.add_argument("--delimiter", type=_delimiter, default=None, metavar="C",
                   help="field separator of the CSV (default: the one the model was trained with, else ',')")
    p.add_argument("--no-header", action="store_true",
                   help="the CSV has no header row (columns x0, x1, ...; default: as in training)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def read_features(spec: str, info: dict[str, Any], options: Any = None) -> np.ndarray:
    """The model's feature columns of ``spec`` (CSV path or built-in name), in the model's order.

    A feature named ``"col=value"`` (``--one-hot col`` in training) is rebuilt as 0/1 from the
    CSV column ``col``; a value the model never saw is refused.

    Args:
        spec: a CSV path or a built-in dataset name.
        info: the checkpoint's dataset description (``feature_names``, ``n_features``, ``target``).
        options: the :class:`~jaxnn.datasets.CsvOptions` the model was trained with (header,
            delimiter); None: the defaults.
    Returns:
        (n, d) float64 features.
    Raises:
        ValueError: wrong number of feature columns, names that do not match, bad cells.
    """
    from jaxnn import datasets
    from jaxnn.cli.userinput import is_csv
    from jaxnn.csvfile import one_hot, parse_column

    target = info.get("target")
    names = info.get("feature_names")
    if is_csv(spec):
        header, rows = datasets.read_table(spec, options)  # the same strict reader training used
        lines: list[int] = [line for line, _ in rows]
        columns: list[Any] = [[cells[j] for _, cells in rows] for j in range(len(header))]
    else:  # a built-in name (preflight refused any other)
        ds = datasets.load_dataset(spec)
        header = [*ds.feature_names]
        columns = [np.asarray(ds.X)[:, j] for j in range(ds.n_features)]
        lines = []

    def numeric(j: int) -> np.ndarray:
        col = columns[j]
        return col if isinstance(col, np.ndarray) else parse_column(col, header[j], lines, spec)

    check_columns(header, info, spec)
    keep = [j for j, name in enumerate(header) if name != target]
    encoded = _encoded(names, header)
    if names is None:  # a checkpoint saved without names: take the columns in file order
        return np.stack([numeric(j) for j in keep], axis=1)
    out = []
    for n in names:
        if n in header:
            out.append(numeric(header.index(n)))
            continue
        base, value = n.split("=", 1)
        col = [str(v) for v in columns[header.index(base)]]
        known = {e.split("=", 1)[1] for e in encoded if e.split("=", 1)[0] == base}
        unseen = sorted(set(col) - known)
        if unseen:
            raise InputError(f"--data: column {base!r} has values {unseen[:5]} the model was not trained "
                             f"on (it knows {sorted(known)})")
        out += one_hot(col, [value])
    return np.stack(out, axis=1)


def _encoded(names: list[str] | None, header: list[str]) -> list[str]:
    """The model's one-hot features ``"col=value"`` rebuilt from a column ``col`` of ``header``."""
    return [n for n in (names or []) if n not in header and "=" in n and n.split("=", 1)[0] in header]


def _listed(cols: list[str], most: int = 8) -> str:
    shown = ", ".join(repr(c) for c in cols[:most])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > most else "")


def check_columns(header: list[str], info: dict[str, Any], spec: str) -> None:
    """Refuse columns ``header`` that do not give the model's features (``info``: the checkpoint's
    dataset description), naming the model's columns it lacks and the ones it has instead.

    The target column (by the model's name for it) is ignored; any other column the model was not
    trained on is refused, unless a one-hot encoded feature is rebuilt from its column.

    Raises:
        ValueError: ``--data: 'new.csv' lacks the model's feature column 'crim' and has a column the
            model was not trained on: 'CRIME' (13 feature columns, the model expects 13)``.
    """
    d = int(info["n_features"])
    target = info.get("target")
    names = info.get("feature_names")
    plain = [c for c in header if c != target]
    encoded = _encoded(names, header)
    missing = [] if names is None else [n for n in names if n not in header and n not in encoded]
    if not missing and (encoded or len(plain) == d):
        return
    extra = [] if names is None else [c for c in plain if c not in names
                                      and not any(e.startswith(c + "=") for e in encoded)]
    n = len(plain)
    counts = (f"{n} feature column{'s' * (n != 1)}"
              f"{f' besides the target {target!r}' if target in header else ''}, the model expects {d}")
    said = []
    if missing:
        said.append(f"lacks the model's feature column{'s' * (len(missing) != 1)} {_listed(missing)}")
    if extra:
        said.append(f"has {'a column' if len(extra) == 1 else 'columns'} the model was not trained on: "
                    f"{_listed(extra)}")
    message = f"--data: {spec!r} " + (f"{' and '.join(said)} ({counts})" if said else f"has {counts}")
    if extra and not missing and target is not None and target not in header:
        which = repr(extra[0]) if len(extra) == 1 else "one of them"
        message += (f"; the model's target column is {target!r} (a column of that name is ignored): "
                    f"if {which} is the target, rename it {target!r} or remove it")
    raise InputError(message)


def csv_options(args: argparse.Namespace, stored: dict[str, Any]) -> Any:
    """How to read ``--data``: ``--delimiter``/``--no-header``, else as the model was trained."""
    from jaxnn.csvfile import CsvOptions

    delimiter = args.delimiter if args.delimiter is not None else stored.get("delimiter", ",")
    return CsvOptions(header=not (args.no_header or stored.get("no_header", False)), delimiter=delimiter)


def predict_checkpoint(ck: Any, X: np.ndarray) -> dict[str, Any]:
    """Predictions of a loaded checkpoint on raw (unscaled) features X (n, d), as JSON-ready data."""
    import jax
    import jax.numpy as jnp

    from jaxnn.experiment import predict
    from jaxnn.training import x64_context

    Xs = ck.scaler.transform(X) if ck.scaler is not None else X
    out = predict(ck.params, ck.config, Xs, ck.target_scaler)  # (n, k) outputs (targets' scale) or logits
    info = ck.dataset
    result: dict[str, Any] = {"task": info.get("task", "regression"), "target": info.get("target"),
                              "n": int(out.shape[0])}
    if result["task"] == "classification":
        with x64_context(ck.config.dtype):
            probs = np.asarray(jax.nn.softmax(jnp.asarray(out), axis=-1))
        classes = list(info["classes"])
        result["classes"] = classes
        result["predictions"] = [classes[i] for i in np.argmax(out, axis=1)]
        result["probabilities"] = probs.tolist()
    else:
        result["predictions"] = out[:, 0].tolist() if out.shape[1] == 1 else out.tolist()
    return result


def preflight(args: argparse.Namespace) -> None:
    """Checked before JAX is imported: ``--model`` and a CSV ``--data`` are regular files, and the
    CSV's header has the model's feature columns (read from the checkpoint's metadata)."""
    from jaxnn.cli.userinput import DATA_FLAGS, flag_names, is_csv, peek_model
    from jaxnn.csvfile import read_header
    from jaxnn.files import check_regular_file

    check_regular_file(args.model, "--model")
    if not is_csv(args.data):
        if args.data not in DATASETS:
            raise InputError(f"--data: expected a .csv path or one of {', '.join(DATASETS)}, "
                             f"got {args.data!r}")
        return
    check_regular_file(args.data, "--data")
    model = peek_model(args.model)
    if model is not None:  # (else checkpoint.load says what is wrong with the file)
        with flag_names(DATA_FLAGS, "--data"):
            check_columns(read_header(args.data, csv_options(args, model["cli_args"])), model["dataset"],
                          args.data)


def run(args: argparse.Namespace) -> int:
    from jaxnn import checkpoint
    from jaxnn.cli.userinput import DATA_FLAGS, flag_names

    with flag_names({"model file": "--model"}, "--model"):
        ck = checkpoint.load(args.model)
    stored = ck.extra.get("cli_args", {}) if isinstance(ck.extra.get("cli_args"), dict) else {}
    with flag_names(DATA_FLAGS, "--data"):
        X = read_features(args.data, ck.dataset, csv_options(args, stored))
    result = {"model": str(Path(args.model)), **predict_checkpoint(ck, X)}
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(json.dumps(p) if isinstance(p, list) else repr(p) if isinstance(p, float) else str(p)
                        for p in result["predictions"]))
    return EXIT_OK
