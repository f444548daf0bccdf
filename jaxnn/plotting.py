"""Figures with matplotlib: loss curves, predictions, weights, and the seed's calculus lessons.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``: no global
figure state, no GUI backend, never ``show()``, so they work headless), optionally saves it to
``path`` (the format follows the extension, at 120 dpi) and returns it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jaxnn import foundations
from jaxnn.errors import InputError

__all__ = [
    "chain_rule",
    "confusion_matrix",
    "feature_weights",
    "loss_curves",
    "predicted_vs_actual",
    "save_demo_figures",
    "save_training_figures",
    "seed_functions",
]

PathLike = str | os.PathLike[str]
DPI = 120


def _finish(fig: Figure, path: PathLike | None) -> Figure:
    if path is not None:
        p = Path(path)
        if not p.parent.is_dir():
            raise FileNotFoundError(f"path: directory {str(p.parent)!r} does not exist")
        fig.savefig(p, dpi=DPI)
    return fig


def _out_dir(out_dir: PathLike) -> Path:
    """``out_dir``, created if missing (``--out``)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out: {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _1d(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(f"{name}: expected shape (n,) or (n, 1), got {arr.shape}")
    return arr


def loss_curves(
    train_loss: Any,
    val_loss: Any = None,
    *,
    steps_per_epoch: int | None = None,
    log_scale: bool | None = None,
    title: str = "Training loss",
    path: PathLike | None = None,
) -> Figure:
    """Training loss per step and, if given, validation loss per epoch on one axis.

    Args:
        train_loss: (steps,) minibatch losses.
        val_loss: (epochs,) validation losses, or None/empty.
        steps_per_epoch: x position of epoch ``e``'s validation point is
            ``(e + 1) * steps_per_epoch``; default ``steps // epochs``.
        log_scale: log y axis; default: when every loss is positive.
        title: axis title.
        path: save the figure here.
    Returns:
        The figure.
    """
    tl = _1d("train_loss", train_loss)
    vl = _1d("val_loss", [] if val_loss is None else val_loss)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    steps = np.arange(1, tl.size + 1)
    ax.plot(steps, tl, lw=0.8, alpha=0.7, label="train (per minibatch)")
    if vl.size:
        spe = steps_per_epoch or max(1, tl.size // vl.size)
        ax.plot((np.arange(vl.size) + 1) * spe, vl, "o-", ms=3, lw=1.5, label="validation (per epoch)")
    values = np.concatenate([tl, vl])
    finite = values[np.isfinite(values)]
    if (log_scale if log_scale is not None else (finite.size > 0 and np.all(finite > 0))):
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if tl.size or vl.size:
        ax.legend()
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def predicted_vs_actual(y_true: Any, y_pred: Any, *, title: str = "Predicted vs actual",
                        path: PathLike | None = None) -> Figure:
    """Scatter of predictions (n,) against targets (n,) with the y = x line and R^2."""
    yt, yp = _1d("y_true", y_true), _1d("y_pred", y_pred)
    if yt.shape != yp.shape:
        raise InputError(f"y_true, y_pred: shapes {yt.shape} and {yp.shape} differ")
    fig = Figure(figsize=(4.8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(yt, yp, s=12, alpha=0.7)
    lo, hi = float(min(yt.min(), yp.min())), float(max(yt.max(), yp.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ss_res = float(np.sum((yt - yp) ** 2))
    ss_tot = float(np.sum((yt - yt.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(f"{title} (R² = {r2:.3f})")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def confusion_matrix(y_true: Any, y_pred: Any, classes: Sequence[Any], *, title: str = "Confusion matrix",
                     path: PathLike | None = None) -> Figure:
    """Counts of (true class, predicted class) as an image, accuracy in the title.

    Args:
        y_true, y_pred: (n,) class indices into ``classes``.
        classes: the C class labels.
    """
    yt = np.asarray(y_true).astype(np.int64).reshape(-1)
    yp = np.asarray(y_pred).astype(np.int64).reshape(-1)
    c = len(classes)
    if yt.shape != yp.shape:
        raise InputError(f"y_true, y_pred: shapes {yt.shape} and {yp.shape} differ")
    if yt.size and (min(yt.min(), yp.min()) < 0 or max(yt.max(), yp.max()) >= c):
        raise InputError(f"y_true, y_pred: class indices must lie in 0..{c - 1}")
    counts = np.zeros((c, c), dtype=np.int64)
    np.add.at(counts, (yt, yp), 1)
    fig = Figure(figsize=(1.2 + 0.45 * c, 1.0 + 0.45 * c), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(counts, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8)
    for i in range(c):
        for j in range(c):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if counts[i, j] > counts.max() / 2 else "black")
    labels = [str(x) for x in classes]
    ax.set_xticks(range(c), labels)
    ax.set_yticks(range(c), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = float(np.mean(yt == yp)) if yt.size else float("nan")
    ax.set_title(f"{title} (accuracy {acc:.3f})")
    return _finish(fig, path)


def feature_weights(params: Sequence[Any], feature_names: Sequence[str] | None = None, *,
                    max_features: int = 40, path: PathLike | None = None) -> Figure:
    """What the model learned per input feature, as horizontal bars.

    A linear model (one layer) shows its coefficients ``W[:, j]`` (one bar group per
    output); an MLP shows the L2 norm of each feature's row of the first-layer ``W``
    (how strongly the feature feeds the hidden units). Only the ``max_features`` largest
    in absolute value are drawn.

    Args:
        params: ``[{"W": (d, h), "b": (h,)}, ...]``.
        feature_names: d names (default ``x0, x1, ...``).
    """
    W = np.asarray(params[0]["W"], dtype=np.float64)
    if W.ndim != 2:
        raise InputError(f"params[0]['W']: expected a 2-D array, got shape {W.shape}")
    d = W.shape[0]
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(d)]
    if len(names) != d:
        raise InputError(f"feature_names: {len(names)} names for {d} input features")
    linear = len(params) == 1
    values = W if linear else np.linalg.norm(W, axis=1, keepdims=True)
    order = np.argsort(np.max(np.abs(values), axis=1))[::-1][:max_features][::-1]
    k = values.shape[1]
    fig = Figure(figsize=(6.4, 1.0 + 0.22 * len(order)), layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / k
    for out in range(k):
        ax.barh(np.arange(len(order)) + (out - (k - 1) / 2) * height, values[order, out], height=height,
                label=f"output {out}" if k > 1 else None)
    ax.set_yticks(range(len(order)), [names[j] for j in order])
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_xlabel("coefficient" if linear else "‖first-layer weights‖₂")
    ax.set_title("Linear coefficients" if linear else "First-layer weight norm per feature")
    if linear and 1 < k <= 10:
        ax.legend(fontsize=7)
    return _finish(fig, path)


SEED_FUNCTIONS = ("square", "sigmoid", "relu", "leaky_relu", "tanh")


def seed_functions(x: Any = None, *, path: PathLike | None = None) -> Figure:
    """Each seed function (section 1.2.1) beside its analytic derivative, one panel each.

    The dots are the seed's numerical ``deriv`` (central difference) at a few points,
    so the figure shows the analytic and numerical derivatives agree.

    Args:
        x: (m,) points to draw at (default 201 points on [-3, 3]).
    """
    xs = np.linspace(-3.0, 3.0, 201) if x is None else _1d("x", x)
    fig = Figure(figsize=(12.0, 2.8), layout="constrained")
    axes = fig.subplots(1, len(SEED_FUNCTIONS))
    for ax, name in zip(axes, SEED_FUNCTIONS, strict=True):
        f = getattr(foundations, name)
        df = getattr(foundations, f"{name}_deriv")
        ax.plot(xs, np.asarray(f(xs)), label=name)
        ax.plot(xs, np.asarray(df(xs)), label=f"{name}_deriv")
        ax.plot(xs, np.asarray(foundations.deriv(f, xs)), "k.", ms=4, ls="none",
                markevery=max(1, xs.size // 12), label="deriv (numerical)")
        ax.set_title(name)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _finish(fig, path)


def _default_chains() -> list[tuple[str, list[Any]]]:
    f = foundations
    return [("square → sigmoid", [f.square, f.sigmoid]),
            ("leaky_relu → square → sigmoid", [f.leaky_relu, f.square, f.sigmoid])]


def chain_rule(chains: Sequence[tuple[str, Sequence[Any]]] | None = None, x: Any = None, *,
               path: PathLike | None = None) -> Figure:
    """The seed's chain-rule check: chain output, chain-rule derivative, numerical derivative.

    For each chain (default: the seed's ``[square, sigmoid]`` and
    ``[leaky_relu, square, sigmoid]``) one panel draws ``chain_forward``, the derivative
    by the chain rule (``chain_deriv``) and the seed's central difference ``deriv`` of
    the whole chain; the title gives their largest absolute difference.

    Args:
        chains: ``[(label, [f1, f2, ...]), ...]``; every link needs ``.deriv``.
        x: (m,) points (default 201 points on [-2, 2]).
    """
    chains = list(chains) if chains is not None else _default_chains()
    xs = np.linspace(-2.0, 2.0, 201) if x is None else _1d("x", x)
    fig = Figure(figsize=(5.2 * len(chains), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(chains)))
    for ax, (label, chain) in zip(axes, chains, strict=True):
        out = np.asarray(foundations.chain_forward(chain, xs))
        analytic = np.asarray(foundations.chain_deriv(chain, xs))
        def whole_chain(u: Any, c: Sequence[Any] = chain) -> Any:
            return foundations.chain_forward(c, u)

        numeric = np.asarray(foundations.deriv(whole_chain, xs))
        err = float(np.max(np.abs(analytic - numeric)))
        ax.plot(xs, out, label="chain(x)")
        ax.plot(xs, analytic, lw=2.5, alpha=0.6, label="chain rule (chain_deriv)")
        ax.plot(xs, numeric, "k--", lw=1, label="numerical (deriv)")
        ax.set_title(f"{label}\nmax |chain rule - numerical| = {err:.1e}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(fig, path)


def save_training_figures(report: Any, split: Any, out_dir: PathLike) -> list[Path]:
    """The figures of ``jaxnn train --out DIR``; returns the paths written.

    Writes ``loss_curves.png``, ``feature_weights.png`` and, on the test split,
    ``predicted_vs_actual.png`` (regression) or ``confusion_matrix.png`` (classification).

    Args:
        report: a :class:`jaxnn.experiment.Report`.
        split: the :class:`jaxnn.datasets.Split` it was trained on.
        out_dir: directory, created if missing.
    """
    from jaxnn.experiment import predict

    out = _out_dir(out_dir)
    ds = split.dataset
    res = report.fit
    from jaxnn.training import steps_per_epoch

    spe = steps_per_epoch(split.X_train.shape[0], report.config.batch_size)
    written = [out / "loss_curves.png", out / "feature_weights.png"]
    loss_curves(res.history.train_loss, res.history.val_loss, steps_per_epoch=spe,
                title=f"{report.model} on {ds.name}", path=written[0]).clear()
    feature_weights(res.params, ds.feature_names, path=written[1]).clear()
    raw = predict(res.params, report.config, np.asarray(split.X_test), report.target_scaler)
    if ds.task == "classification":
        written.append(out / "confusion_matrix.png")
        confusion_matrix(split.y_test, np.argmax(raw, axis=1), list(ds.classes),
                         title="Test confusion matrix", path=written[-1]).clear()
    else:
        written.append(out / "predicted_vs_actual.png")
        predicted_vs_actual(split.y_test, raw[:, 0], title="Test set", path=written[-1]).clear()
    return written


def save_demo_figures(out_dir: PathLike) -> list[Path]:
    """The figures of ``jaxnn demo --out DIR``: ``seed_functions.png`` and ``chain_rule.png``."""
    out = _out_dir(out_dir)
    written = [out / "seed_functions.png", out / "chain_rule.png"]
    seed_functions(path=written[0]).clear()
    chain_rule(path=written[1]).clear()
    return written
