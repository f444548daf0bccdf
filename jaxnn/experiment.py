"""From a dataset to a trained, evaluated model: the glue the CLI, the demo and sweeps share.

``run(config, split)`` trains with :func:`jaxnn.training.fit` and returns a
:class:`Report` whose ``as_json()`` is the ``jaxnn train --json`` contract::

    {"dataset", "model", "steps", "test": {...}, "train": {...},
     "history": {"train_loss": [...], "val_loss": [...]},
     "seconds": {"compile": ..., "train": ...}}

``test``/``train`` hold mse, rmse, mae, r2 for regression and accuracy, log_loss for
classification; ``history.val_loss`` is empty when the run has no validation rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import softmax

from jaxnn import metrics, models, names
from jaxnn.datasets import Scaler, Split
from jaxnn.errors import InputError
from jaxnn.training import FitResult, TrainConfig, as_2d_float, fit, x64_context


def targets(y: np.ndarray, task: str, n_classes: int | None) -> np.ndarray:
    """Training targets (n, k): regression y as a column, classes one-hot."""
    if task == "classification":
        if n_classes is None:
            raise InputError("n_classes: needed for classification")
        return np.eye(n_classes, dtype=np.float64)[np.asarray(y, dtype=np.int64)]
    return np.asarray(y, dtype=np.float64).reshape(len(y), -1)


def model_name(config: TrainConfig) -> str:
    """``"linear"`` or ``"mlp[100 relu]"``-style description."""
    if not config.hidden:
        return "linear"
    return f"mlp[{'-'.join(map(str, config.hidden))} {config.activation}]"


def predict(params: Any, config: TrainConfig, X: np.ndarray,
            target_scaler: Scaler | None = None) -> np.ndarray:
    """Raw network outputs (n, k) as NumPy: predictions or logits. X: (n, d).

    ``target_scaler``: the standardisation the regression targets were trained in
    (:func:`run`'s ``scale_targets``); the outputs are mapped back to the targets' scale.

    Raises:
        TypeError / ValueError: X is not a finite 2-D real array (naming ``X``), or its number
            of columns is not the model's ``d``.
    """
    with x64_context(config.dtype):
        Xj = as_2d_float("X", X, jnp.dtype(config.dtype))
        d = params[0]["W"].shape[0]
        if Xj.shape[1] != d:
            raise InputError(f"X: the model expects {d} feature columns, got {Xj.shape[1]}")
        activation = names.activation(config.activation)
        out = np.asarray(jax.jit(models.predict, static_argnums=2)(params, Xj, activation))
    if target_scaler is not None:
        out = target_scaler.inverse_transform(out).astype(out.dtype)
    return out


def evaluate(params: Any, config: TrainConfig, X: np.ndarray, y: np.ndarray, task: str,
             target_scaler: Scaler | None = None) -> dict[str, float]:
    """Metrics of ``params`` on (X, y): regression or classification report.

    Computed on the host with ``sklearn.metrics`` (nothing compiles) and reported in the run's
    dtype (float64 runs report float64 digits).
    """
    out = predict(params, config, X, target_scaler)
    if task == "classification":
        probs = softmax(out.astype(np.float64), axis=1).astype(out.dtype)
        report = metrics.classification_report(np.asarray(y), probs)
    else:
        report = metrics.regression_report(np.asarray(y, dtype=out.dtype).reshape(out.shape), out)
    # computed on the host (scikit-learn, float64), reported in the run's dtype
    return {k: float(np.asarray(v, out.dtype)) for k, v in report.items()}


@dataclasses.dataclass
class Report:
    """A trained model, its metrics and timings."""

    dataset: str
    model: str
    task: str
    config: TrainConfig
    fit: FitResult
    test: dict[str, float]
    train: dict[str, float]
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    target_scaler: Scaler | None = None  # regression targets were trained standardised (run)

    def as_json(self) -> dict[str, Any]:
        h = self.fit.history
        return {
            "dataset": self.dataset,
            "model": self.model,
            "task": self.task,
            "steps": self.fit.steps,
            "epochs": self.fit.epochs,
            "test": self.test,
            "train": self.train,
            "history": {"train_loss": [float(x) for x in h.train_loss],
                        "val_loss": [float(x) for x in h.val_loss]},
            "seconds": {k: float(v) for k, v in self.fit.seconds.items()},
            "stopped_early": self.fit.stopped_early,
            "rows": dict(self.rows),
            "config": dataclasses.asdict(self.config),
        }


#: validation_fraction when early stopping is on and none was given (scikit-learn's default).
DEFAULT_VALIDATION_FRACTION = 0.1


def run(config: TrainConfig, split: Split, *, validation_fraction: float | None = None,
        scale_targets: bool | Scaler = False, **fit_kwargs: Any) -> Report:
    """Train ``config`` on ``split.X_train`` and evaluate on both splits.

    ``scale_targets`` (regression only): train on standardised targets -- ``True`` fits the
    standardisation on the training targets, a :class:`~jaxnn.datasets.Scaler` (a resumed run's)
    is used as it is -- and map predictions back for the reports (``Report.target_scaler``).
    The network then learns numbers of order 1 whatever the targets' units: adam's steps of about
    ``lr`` reach a target of mean 150 (diabetes) in the same few epochs as one of mean 0. The
    seed trains on the raw targets (the default, False).

    Early stopping (``config.patience``) watches validation rows carved from the training
    rows -- ``split.X_val`` if the split has them, else ``validation_fraction`` (default
    :data:`DEFAULT_VALIDATION_FRACTION` when ``patience`` is set) of ``split.X_train`` -- never
    the test rows, which are evaluated once, at the end.

    Raises:
        ValueError: a regression split with fewer than 2 train or test rows (R² is undefined
            for one row), before any training is spent.
    """
    if split.X_val is None and (validation_fraction is not None or config.patience is not None):
        from jaxnn.datasets import with_validation

        split = with_validation(split, validation_fraction or DEFAULT_VALIDATION_FRACTION, config.seed)
    elif split.X_val is not None and validation_fraction is not None:
        raise InputError("validation_fraction: the split already has validation rows")
    ds = split.dataset
    if ds.task == "regression":
        for name, y in (("train", split.y_train), ("test", split.y_test)):
            if len(y) < 2:
                raise InputError(
                    f"{name} set: {len(y)} row of {ds.n_samples}; R² needs at least 2 rows per "
                    "set (use more data, or another test_size)"
                )
    n_classes = ds.n_classes if ds.task == "classification" else None
    Y_train = targets(split.y_train, ds.task, n_classes)
    target_scaler: Scaler | None = None
    if ds.task == "regression" and scale_targets is not False:
        target_scaler = scale_targets if isinstance(scale_targets, Scaler) else Scaler.fit(Y_train)
        Y_train = target_scaler.transform(Y_train)
    val: dict[str, Any] = {}
    if split.X_val is not None and split.y_val is not None:
        Y_val = targets(split.y_val, ds.task, n_classes)
        if target_scaler is not None:
            Y_val = target_scaler.transform(Y_val)
        val = {"X_val": split.X_val, "Y_val": Y_val}
    result = fit(config, split.X_train, Y_train, **val, **fit_kwargs)
    return Report(
        dataset=ds.name,
        model=model_name(config),
        task=ds.task,
        config=config,
        fit=result,
        test=evaluate(result.params, config, split.X_test, split.y_test, ds.task, target_scaler),
        train=evaluate(result.params, config, split.X_train, split.y_train, ds.task, target_scaler),
        rows=split.sizes,
        target_scaler=target_scaler,
    )
