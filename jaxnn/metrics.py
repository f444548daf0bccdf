"""Regression and classification metrics in pure ``jax.numpy``, equal to scikit-learn's.

Every metric is a pure function of arrays and can be wrapped in :func:`jax.jit`: all the
checks below look only at shapes and dtypes, which are static under tracing. Values are
*not* checked (a NaN in, a NaN out), so the metrics are cheap inside a training scan.

Shape contract (no silent broadcasting -- ``(n,) - (n, 1)`` is an ``(n, n)`` matrix in
NumPy, the classic bug these checks exist to catch):

* regression metrics take ``y_true`` and ``y_pred`` of the same shape ``(n,)`` or
  ``(n, k)``; ``(n,)`` against ``(n, 1)`` is accepted either way round (one output);
* classification metrics take integer class labels ``y_true`` of shape ``(n,)`` (or
  ``(n, 1)``) and predictions of shape ``(n,)`` (labels for :func:`accuracy`,
  positive-class probabilities for :func:`log_loss`) or ``(n, C)`` (scores/probabilities).

Mismatched shapes raise :class:`ValueError` naming the argument.

dtypes: the two inputs are cast to their common dtype explicitly (integer inputs to the
default float dtype), so ``float32`` predictions may be scored against ``float64``
targets even under ``jax_numpy_dtype_promotion='strict'``. The result has that dtype.

>>> import jax.numpy as jnp
>>> float(mse(jnp.array([1.0, 2.0]), jnp.array([1.0, 4.0])))
2.0
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

__all__ = [
    "accuracy",
    "classification_report",
    "log_loss",
    "mae",
    "mse",
    "r2",
    "regression_report",
    "rmse",
]


# --------------------------------------------------------------------------- helpers


def _jit_on_arrays(fn: Callable[..., Array]) -> Callable[..., Array]:
    """``jax.jit`` ``fn`` and convert its arguments with ``jnp.asarray`` first.

    Why: called eagerly, each ``jnp`` op compiles on its own for every new input shape
    (~0.3 s for a metric); one jitted function compiles once (~30 ms). The shape checks
    run at trace time, so they still raise ``ValueError``. Inside an outer ``jit`` this
    simply inlines.
    """
    jitted = jax.jit(fn)

    @functools.wraps(fn)
    def wrapper(*args: ArrayLike, **kwargs: ArrayLike) -> Array:
        return jitted(*(jnp.asarray(a) for a in args), **{k: jnp.asarray(v) for k, v in kwargs.items()})

    return wrapper


def _common_float_dtype(*arrays: Array) -> np.dtype:
    """The dtype two arrays are compared in: the wider float, ints -> default float."""
    floats = [a.dtype for a in arrays if jnp.issubdtype(a.dtype, jnp.floating)]
    if not floats:
        return jnp.asarray(0.0).dtype  # float32, or float64 under x64
    # Widest float wins; never a silent int->float promotion inside jnp's strict mode.
    return max(floats, key=lambda d: np.dtype(d).itemsize)


def _regression_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[Array, Array]:
    """Validate shapes and return both as ``(n, k)`` arrays of a common float dtype."""
    yt = jnp.asarray(y_true)
    yp = jnp.asarray(y_pred)
    for name, a in (("y_true", yt), ("y_pred", yp)):
        if a.ndim not in (1, 2):
            raise ValueError(f"{name} must have shape (n,) or (n, k), got {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {a.shape}); need at least one sample")
    if yt.shape != yp.shape:
        one_output = {yt.shape, yp.shape} == {(yt.shape[0],), (yt.shape[0], 1)}
        if not one_output:
            raise ValueError(
                f"y_pred has shape {yp.shape}, which does not match y_true's shape "
                f"{yt.shape}; expected the same shape (or (n,) against (n, 1))"
            )
    dtype = _common_float_dtype(yt, yp)
    n = yt.shape[0]
    k = 1 if yt.ndim == 1 else yt.shape[1]
    return yt.astype(dtype).reshape(n, k), yp.astype(dtype).reshape(n, k)


def _labels(y_true: ArrayLike) -> Array:
    """Class labels as a ``(n,)`` array (``(n, 1)`` is flattened)."""
    yt = jnp.asarray(y_true)
    if yt.ndim == 2 and yt.shape[1] == 1:
        yt = yt.reshape(-1)
    if yt.ndim != 1:
        raise ValueError(f"y_true must be class labels of shape (n,) or (n, 1), got {yt.shape}")
    if yt.shape[0] == 0:
        raise ValueError("y_true is empty; need at least one sample")
    return yt


# ------------------------------------------------------------------------ regression


@_jit_on_arrays
def mse(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """Mean squared error, as ``sklearn.metrics.mean_squared_error``.

    Args:
        y_true: targets, shape ``(n,)`` or ``(n, k)``.
        y_pred: predictions, the same shape (``(n,)`` vs ``(n, 1)`` accepted).

    Returns:
        A scalar: ``mean((y_true - y_pred) ** 2)``; for ``k`` outputs the uniform average
        of the per-output errors (which is the same number).

    Raises:
        ValueError: on mismatched or unsupported shapes.
    """
    yt, yp = _regression_pair(y_true, y_pred)
    return jnp.mean(jnp.mean(jnp.square(yt - yp), axis=0))


@_jit_on_arrays
def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """Root mean squared error, as ``sklearn.metrics.root_mean_squared_error``.

    Args:
        y_true: targets, shape ``(n,)`` or ``(n, k)``.
        y_pred: predictions, the same shape (``(n,)`` vs ``(n, 1)`` accepted).

    Returns:
        A scalar. For ``k`` outputs it is the mean of the per-output RMSEs (scikit-learn's
        ``multioutput='uniform_average'``), *not* the square root of the overall MSE.

    Raises:
        ValueError: on mismatched or unsupported shapes.
    """
    yt, yp = _regression_pair(y_true, y_pred)
    return jnp.mean(jnp.sqrt(jnp.mean(jnp.square(yt - yp), axis=0)))


@_jit_on_arrays
def mae(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """Mean absolute error, as ``sklearn.metrics.mean_absolute_error``.

    Args:
        y_true: targets, shape ``(n,)`` or ``(n, k)``.
        y_pred: predictions, the same shape (``(n,)`` vs ``(n, 1)`` accepted).

    Returns:
        A scalar: ``mean(|y_true - y_pred|)`` (uniform average over outputs).

    Raises:
        ValueError: on mismatched or unsupported shapes.
    """
    yt, yp = _regression_pair(y_true, y_pred)
    return jnp.mean(jnp.mean(jnp.abs(yt - yp), axis=0))


@_jit_on_arrays
def r2(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """Coefficient of determination, as ``sklearn.metrics.r2_score`` (its defaults).

    ``R^2 = 1 - SS_res / SS_tot`` per output, with ``SS_res = sum((y - y_hat)^2)`` and
    ``SS_tot = sum((y - mean(y))^2)``. Like scikit-learn's ``force_finite=True``, a
    constant target (``SS_tot == 0``) scores 1.0 when predicted perfectly and 0.0
    otherwise. Several outputs are averaged uniformly.

    Args:
        y_true: targets, shape ``(n,)`` or ``(n, k)`` with ``n >= 2``.
        y_pred: predictions, the same shape (``(n,)`` vs ``(n, 1)`` accepted).

    Returns:
        A scalar, at most 1.0 (arbitrarily negative for bad predictions).

    Raises:
        ValueError: on mismatched shapes, or fewer than 2 samples (R^2 is undefined;
            scikit-learn warns and returns NaN).
    """
    yt, yp = _regression_pair(y_true, y_pred)
    if yt.shape[0] < 2:
        raise ValueError(f"r2 needs at least 2 samples in y_true, got {yt.shape[0]}")
    ss_res = jnp.sum(jnp.square(yt - yp), axis=0)  # (k,)
    mean = jnp.mean(yt, axis=0, keepdims=True)  # (1, k)
    ss_tot = jnp.sum(jnp.square(yt - mean), axis=0)  # (k,)
    safe_tot = jnp.where(ss_tot == 0, jnp.ones_like(ss_tot), ss_tot)
    one, zero = jnp.ones_like(ss_res), jnp.zeros_like(ss_res)
    per_output = jnp.where(
        ss_tot != 0,
        one - ss_res / safe_tot,
        jnp.where(ss_res == 0, one, zero),
    )
    return jnp.mean(per_output)


# -------------------------------------------------------------------- classification


@_jit_on_arrays
def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """Fraction of correct predictions, as ``sklearn.metrics.accuracy_score``.

    Args:
        y_true: class labels, shape ``(n,)`` (or ``(n, 1)``).
        y_pred: either predicted labels, shape ``(n,)``, or scores of shape ``(n, C)``
            with ``C >= 2`` -- logits or probabilities -- whose row-wise argmax is the
            predicted label. A single column ``(n, 1)`` is refused as ambiguous
            (threshold a sigmoid output yourself).

    Returns:
        A float scalar in ``[0, 1]``.

    Raises:
        ValueError: on mismatched or unsupported shapes.
    """
    yt = _labels(y_true)
    yp = jnp.asarray(y_pred)
    n = yt.shape[0]
    if yp.ndim == 2 and yp.shape[0] == n and yp.shape[1] >= 2:
        yp = jnp.argmax(yp, axis=1)
    elif yp.shape != (n,):
        raise ValueError(
            f"y_pred has shape {yp.shape}; expected labels of shape ({n},) or scores of "
            f"shape ({n}, C) with C >= 2 to match y_true"
        )
    # Compare in y_true's label dtype; argmax gives int32/int64 which may differ.
    correct = yt == yp.astype(yt.dtype)
    return jnp.mean(correct.astype(jnp.asarray(0.0).dtype))


@_jit_on_arrays
def log_loss(y_true: ArrayLike, probs: ArrayLike) -> Array:
    """Mean cross-entropy of predicted probabilities, as ``sklearn.metrics.log_loss``.

    Probabilities are clipped to ``[eps, 1 - eps]`` with ``eps = finfo(probs.dtype).eps``
    exactly as scikit-learn does, so a confident wrong answer costs ``-log(eps)`` rather
    than infinity. Rows are *not* renormalised after clipping: scikit-learn stopped doing
    that (1.5+; it now only warns when rows do not sum to one), and this function follows
    the installed scikit-learn. Pass real probabilities (e.g. ``jax.nn.softmax`` output).

    Unlike scikit-learn, the classes are not inferred from ``y_true``: labels are column
    indices ``0..C-1`` of ``probs``, so a batch need not contain every class. A label
    outside that range makes the result NaN (loud rather than silently ignored).

    Args:
        y_true: integer class labels in ``[0, C)``, shape ``(n,)`` (or ``(n, 1)``).
        probs: probabilities, shape ``(n, C)``; or shape ``(n,)`` for the probability of
            class 1 in a binary problem (expanded to ``[1 - p, p]`` as scikit-learn does).

    Returns:
        A float scalar, ``-mean(log(probs[i, y_true[i]]))``, in ``probs``' dtype.

    Raises:
        ValueError: on mismatched or unsupported shapes.
    """
    yt = _labels(y_true)
    p = jnp.asarray(probs)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.asarray(0.0).dtype)
    n = yt.shape[0]
    if p.shape == (n,):
        p = jnp.stack([1 - p, p], axis=1)  # binary: probability of the positive class
    if p.ndim != 2 or p.shape[0] != n or p.shape[1] < 2:
        raise ValueError(
            f"probs has shape {p.shape}; expected ({n}, C) with C >= 2, or ({n},) for "
            "binary positive-class probabilities, to match y_true"
        )
    eps = jnp.finfo(p.dtype).eps
    log_p = jnp.log(jnp.clip(p, eps, 1 - eps))  # (n, C)
    classes = jnp.arange(p.shape[1], dtype=yt.dtype)  # (C,)
    one_hot = yt[:, None] == classes[None, :]  # (n, C)
    picked = jnp.sum(jnp.where(one_hot, log_p, jnp.zeros_like(log_p)), axis=1)  # (n,)
    in_range = jnp.any(one_hot, axis=1)
    per_sample = jnp.where(in_range, -picked, jnp.full_like(picked, jnp.nan))
    return jnp.mean(per_sample)


# ------------------------------------------------------------------------- reports


def regression_report(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """All regression metrics as plain Python floats (for printing or JSON), on the host.

    A report is computed once, after training, on host data: it calls ``sklearn.metrics``
    (in float64, compiling nothing) rather than the jittable functions above, which are for use
    inside compiled code.

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
        raise ValueError(f"y_true, y_pred: shapes {np.shape(y_true)} and {np.shape(y_pred)} differ")
    if yt.shape[0] < 2:
        raise ValueError(f"r2 needs at least 2 samples in y_true, got {yt.shape[0]}")
    return {
        "mse": float(skm.mean_squared_error(yt, yp)),
        "rmse": float(skm.root_mean_squared_error(yt, yp)),
        "mae": float(skm.mean_absolute_error(yt, yp)),
        "r2": float(skm.r2_score(yt, yp)),
    }


def classification_report(y_true: ArrayLike, probs: ArrayLike) -> dict[str, float]:
    """Accuracy and log-loss as plain Python floats (for printing or JSON), on the host.

    Computed with ``sklearn.metrics`` (see :func:`regression_report`); probabilities are
    clipped to ``[eps, 1 - eps]`` with ``eps`` of their own dtype, as :func:`log_loss`.

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
        raise ValueError(f"probs has shape {p.shape}; expected ({labels.shape[0]}, C) with C >= 2, or "
                         f"({labels.shape[0]},) for binary positive-class probabilities")
    eps = np.finfo(p.dtype if np.issubdtype(p.dtype, np.floating) else np.float64).eps
    picked = np.clip(scores.astype(np.float64), eps, 1 - eps)[np.arange(len(labels)), labels]
    return {
        "accuracy": float(skm.accuracy_score(labels, np.argmax(scores, axis=1))),
        "log_loss": float(-np.mean(np.log(picked))),
    }
