"""Train and test reports: scikit-learn's metrics on the host, as plain floats for printing and JSON.

A report is computed once, after training, so jaxnn does not reimplement metrics: it checks the
shapes (no silent ``(n,)`` against ``(n, 1)`` broadcasting -- shapes that differ raise
:class:`ValueError`) and calls ``sklearn.metrics`` in float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from jaxnn.errors import InputError

__all__ = ["classification_report", "regression_report"]


def regression_report(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """MSE, RMSE, MAE and R^2 as plain Python floats.

    Args:
        y_true: targets, shape ``(n,)`` or ``(n, k)``; ``n >= 2`` (for R^2).
        y_pred: predictions, the same shape (``(n,)`` vs ``(n, 1)`` accepted).

    Returns:
        ``{"mse": ..., "rmse": ..., "mae": ..., "r2": ...}``.
    """
    from sklearn import metrics as skm

    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yt.ndim == 1:
        yt = yt[:, None]
    if yp.ndim == 1:
        yp = yp[:, None]
    if yt.shape != yp.shape:
        raise InputError(f"y_true, y_pred: shapes {np.shape(y_true)} and {np.shape(y_pred)} differ")
    if yt.shape[0] < 2:
        raise InputError(f"r2 needs at least 2 samples in y_true, got {yt.shape[0]}")
    return {
        "mse": float(skm.mean_squared_error(yt, yp)),
        "rmse": float(skm.root_mean_squared_error(yt, yp)),
        "mae": float(skm.mean_absolute_error(yt, yp)),
        "r2": float(skm.r2_score(yt, yp)),
    }


def classification_report(y_true: ArrayLike, probs: ArrayLike) -> dict[str, float]:
    """Accuracy and log-loss as plain Python floats.

    Probabilities are clipped to ``[eps, 1 - eps]`` with ``eps`` of their own dtype (a certain
    miss is finite).

    Args:
        y_true: integer class labels in ``[0, C)``, shape ``(n,)``.
        probs: predicted probabilities, shape ``(n, C)`` (or ``(n,)`` for binary).

    Returns:
        ``{"accuracy": ..., "log_loss": ...}``; accuracy uses the argmax of ``probs``
        (for binary ``(n,)`` probabilities: ``p > 0.5`` selects class 1).
    """
    from sklearn import metrics as skm

    p = np.asarray(probs)
    scores = np.stack([1 - p, p], axis=1) if p.ndim == 1 else p
    labels = np.asarray(y_true).astype(np.int64)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0] or scores.shape[1] < 2:
        raise InputError(f"probs has shape {p.shape}; expected ({labels.shape[0]}, C) with C >= 2, or "
                         f"({labels.shape[0]},) for binary positive-class probabilities")
    eps = np.finfo(p.dtype if np.issubdtype(p.dtype, np.floating) else np.float64).eps
    picked = np.clip(scores.astype(np.float64), eps, 1 - eps)[np.arange(len(labels)), labels]
    return {
        "accuracy": float(skm.accuracy_score(labels, np.argmax(scores, axis=1))),
        "log_loss": float(-np.mean(np.log(picked))),
    }
