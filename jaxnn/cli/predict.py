"""``jaxnn predict``: apply a saved model (``jaxnn train --save``) to new rows of a CSV.

The checkpoint holds the scaler and the feature names of its training data. The CSV
needs a header; its feature columns are matched to the model's by name (any order),
and the target column, if present, is ignored. Output: one prediction per line
(regression: the value; classification: the class label), or with ``--json`` one JSON
object::

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

from jaxnn.errors import EXIT_OK


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
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def read_features(spec: str, info: dict[str, Any]) -> np.ndarray:
    """The model's feature columns of ``spec`` (CSV path or built-in name), in the model's order.

    Args:
        spec: a CSV path or a built-in dataset name.
        info: the checkpoint's dataset description (``feature_names``, ``n_features``, ``target``).
    Returns:
        (n, d) float64 features.
    Raises:
        ValueError: wrong number of feature columns, or names that do not match.
    """
    from jaxnn import datasets

    d = int(info["n_features"])
    target = info.get("target")
    if spec in datasets.BUILTIN_DATASETS:
        ds = datasets.load_dataset(spec)
        header, values = [*ds.feature_names], np.asarray(ds.X)
    elif spec.lower().endswith(".csv"):
        header, values = datasets._read_numeric_csv(spec)  # the same strict reader training used
    else:
        raise ValueError(f"--data: expected a .csv path or one of {', '.join(datasets.BUILTIN_DATASETS)}, "
                         f"got {spec!r}")
    keep = [j for j, name in enumerate(header) if name != target]
    columns = [header[j] for j in keep]
    if len(columns) != d:
        raise ValueError(f"--data: {spec!r} has {len(columns)} feature columns"
                         f"{f' (besides the target {target!r})' if target in header else ''}, "
                         f"the model expects {d}")
    names = info.get("feature_names")
    if names is None:  # a checkpoint saved without names: take the columns in file order
        return values[:, keep]
    missing = [n for n in names if n not in columns]
    if missing:
        unexpected = [c for c in columns if c not in names]
        raise ValueError(f"--data: {spec!r} lacks the model's feature columns {missing}; "
                         f"it has {unexpected} instead")
    return values[:, [header.index(n) for n in names]]


def predict_checkpoint(ck: Any, X: np.ndarray) -> dict[str, Any]:
    """Predictions of a loaded checkpoint on raw (unscaled) features X (n, d), as JSON-ready data."""
    import jax
    import jax.numpy as jnp

    from jaxnn.experiment import predict
    from jaxnn.training import x64_context

    Xs = ck.scaler.transform(X) if ck.scaler is not None else X
    out = predict(ck.params, ck.config, Xs)  # (n, k) outputs or logits
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


def run(args: argparse.Namespace) -> int:
    from jaxnn import checkpoint

    ck = checkpoint.load(args.model)
    X = read_features(args.data, ck.dataset)
    result = {"model": str(Path(args.model)), **predict_checkpoint(ck, X)}
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(json.dumps(p) if isinstance(p, list) else repr(p) if isinstance(p, float) else str(p)
                        for p in result["predictions"]))
    return EXIT_OK
