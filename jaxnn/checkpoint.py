"""Checkpoints: validated, pickle-free ``.npz`` files, written atomically.

* :func:`save_arrays` / :func:`load_arrays` (from :mod:`jaxnn.npzfile`) -- named NumPy arrays plus
  a JSON metadata dict: the layer everything else (the scikit-learn estimators included) is stored in;
* :func:`save_tree` / :func:`load_tree` -- any pytree, e.g. ``jaxnn.fit``'s ``result.state``;
* :func:`save` / :func:`load` -- a :class:`~jaxnn.training.TrainState` with its
  :class:`~jaxnn.training.TrainConfig`, scaler, data set description and loss history, which
  :func:`jaxnn.training.fit` resumes bit-identically.

The file format and everything loading refuses: the "Checkpoints and what loading refuses" page of
the docs (``docs/explanation/checkpoints.md``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import distributed, training
from jaxnn.datasets import Dataset, Scaler
from jaxnn.errors import InputError, InputTypeError
from jaxnn.npzfile import (
    ALLOWED_DTYPES,
    FORMAT,
    FORMAT_VERSION,
    MAX_META_BYTES,
    MAX_TOTAL_BYTES,
    Spec,
    atomic_write,
    check_layout,
    load_arrays,
    refuse,
    save_arrays,
)
from jaxnn.training import History, TrainConfig, TrainState

__all__ = [  # the generic layer (jaxnn.npzfile) is re-exported: checkpoint.save_arrays, ...
    "ALLOWED_DTYPES",
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_META_BYTES",
    "MAX_TOTAL_BYTES",
    "Checkpoint",
    "atomic_write",
    "dataset_info",
    "load",
    "load_arrays",
    "load_tree",
    "save",
    "save_arrays",
    "save_tree",
]

_KIND_TRAIN_STATE = "train_state"
_KIND_TREE = "pytree"
_HISTORY = ("history/train_loss", "history/val_loss")
_SCALER = ("scaler/mean", "scaler/scale")
_TARGET = ("target/mean", "target/scale")  # standardised regression targets (experiment.run)


# --- Any pytree: what jaxnn.fit trains (params and optimizer state of any structure) ---------


def _named_leaves(tree: Any) -> tuple[dict[str, Any], Any]:
    """``name -> leaf`` (the key path joined by ``/``: ``"params/0/W"``) and the treedef."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    named: dict[str, Any] = {}
    for path, leaf in flat:
        name = jax.tree_util.keystr(path, simple=True, separator="/") or "leaf"
        if name in named:
            raise InputError(f"tree: two leaves are both named {name!r}; use distinct dict keys")
        named[name] = leaf
    return named, treedef


def _host_arrays(tree: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The named leaves as NumPy arrays (a typed PRNG key as its key data), and ``name -> key impl``."""
    named, _ = _named_leaves(tree)
    keys = {name: str(jax.random.key_impl(leaf)) for name, leaf in named.items() if distributed.is_key(leaf)}
    arrays = {name: np.asarray(jax.device_get(jax.random.key_data(leaf) if name in keys else leaf))
              for name, leaf in named.items()}
    return arrays, keys


def _layout(like: Any) -> tuple[dict[str, Spec], Any]:
    """``name -> (shape, dtype)`` that a file of ``like`` (arrays or ``jax.eval_shape`` structs) must
    declare, a typed PRNG key as its key data; and the treedef."""
    named, treedef = _named_leaves(like)
    want = {}
    for name, leaf in named.items():
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        want[name] = (tuple(np.shape(leaf)), np.dtype(leaf.dtype))
    return want, treedef


def _unflatten(treedef: Any, names: Any, arrays: Mapping[str, np.ndarray], keys: Mapping[str, str]) -> Any:
    """The tree of ``arrays[name]`` for ``names`` in leaf order, key data in ``keys`` wrapped as keys."""
    leaves = []
    for name in names:
        a = jnp.asarray(arrays[name])
        if name in keys:
            a = jax.random.wrap_key_data(a, impl=keys[name])
        leaves.append(a)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def save_tree(path: str | os.PathLike[str], tree: Any, *, meta: Mapping[str, Any] | None = None) -> None:
    """Save any pytree of arrays -- e.g. ``jaxnn.fit``'s ``result.state`` -- atomically as ``.npz``.

    One member per leaf, named by its key path; typed PRNG keys are stored as their key data.
    Load it with :func:`load_tree` and a template of the same structure. ``meta``: any JSON-ready
    dict you want back.

    Raises:
        TypeError: a leaf of a dtype the format does not allow (:data:`ALLOWED_DTYPES`).
        ValueError: two leaves with the same name, or a name the format does not allow.
    """
    arrays, keys = _host_arrays(tree)
    save_arrays(path, arrays, {"keys": keys, "extra": dict(meta or {})}, kind=_KIND_TREE)


def load_tree(path: str | os.PathLike[str], like: Any, *,
              max_bytes: int = MAX_TOTAL_BYTES) -> tuple[Any, dict[str, Any]]:
    """Load a :func:`save_tree` file into the structure of ``like``, refusing anything that differs.

    Args:
        path: the ``.npz`` file.
        like: a template with the expected structure, shapes and dtypes: e.g. a fresh
            ``jaxnn.engine.init_state(params, optimizer, key)``, or its ``jax.eval_shape``.
        max_bytes: the most array data the file may declare.
    Returns:
        ``(tree, meta)``: the loaded pytree (structure of ``like``) and the ``meta`` dict saved.
    Raises:
        ValueError: another structure (names the missing and unexpected members), another shape or
            dtype of a leaf (names it), or a damaged or hostile file -- all checked before any
            array data is read.
    """
    p = Path(path)
    want, treedef = _layout(like)

    def check(declared: dict[str, Spec], meta: dict[str, Any],
              read: Callable[[str], np.ndarray]) -> None:
        if set(meta) != {"keys", "extra"} or not isinstance(meta["keys"], dict):
            raise refuse(p, "meta must hold 'keys' and 'extra'")
        check_layout(p, declared, want, "the template")

    arrays, meta = load_arrays(p, kind=_KIND_TREE, check=check, max_bytes=max_bytes)
    return _unflatten(treedef, want, arrays, meta["keys"]), dict(meta["extra"])


# --- Training checkpoints -------------------------------------------------------------------


def dataset_info(ds: Dataset) -> dict[str, Any]:
    """What :func:`save` records about the training data (JSON-ready).

    Returns:
        ``{"name", "task", "feature_names", "target", "n_features", "n_outputs",
        "classes"}``; ``n_outputs`` is the class count for classification, else 1;
        ``classes`` is ``None`` for regression.
    """
    classes = None if ds.classes is None else ds.classes.tolist()
    return {
        "name": ds.name,
        "task": ds.task,
        "feature_names": list(ds.feature_names),
        "target": ds.target_name,
        "n_features": ds.n_features,
        "n_outputs": ds.n_classes if ds.task == "classification" else 1,
        "classes": classes,
    }


def save(
    path: str | os.PathLike[str],
    state: TrainState,
    config: TrainConfig,
    *,
    scaler: Scaler | None = None,
    dataset: Mapping[str, Any] | None = None,
    history: History | None = None,
    extra: Mapping[str, Any] | None = None,
    target_scaler: Scaler | None = None,
) -> None:
    """Save a training state atomically, with what :func:`load` needs to resume or predict.

    Args:
        path: the ``.npz`` file to (over)write.
        state: the :class:`TrainState` (e.g. ``FitResult.state`` or ``ChunkInfo.state``).
        config: the run's :class:`TrainConfig`.
        scaler: the feature standardisation to apply before predicting, or None.
        dataset: :func:`dataset_info` of the training data (feature names, task,
            classes); None stores only the sizes implied by the parameters.
        history: training (per step) and validation (per epoch) losses so far.
        extra: any JSON-ready dict the caller wants back (the CLI stores its flags).
        target_scaler: the standardisation the regression targets were trained in (predictions
            are mapped back with it), or None.
    Raises:
        TypeError: ``state`` is not a TrainState, or ``config`` not a TrainConfig.
    """
    if not isinstance(state, TrainState):
        raise InputTypeError(f"state: expected a TrainState, got {type(state).__name__}")
    if not isinstance(config, TrainConfig):
        raise InputTypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    arrays: dict[str, Any] = _host_arrays(state)[0]
    d = int(arrays["params/0/W"].shape[0])
    k = int(arrays[f"params/{len(state.params) - 1}/W"].shape[1])
    info = dict(dataset) if dataset is not None else {"n_features": d, "n_outputs": k}
    if scaler is not None:
        arrays["scaler/mean"], arrays["scaler/scale"] = scaler.mean, scaler.scale
    if target_scaler is not None:
        arrays["target/mean"], arrays["target/scale"] = target_scaler.mean, target_scaler.scale
    if history is not None:
        arrays["history/train_loss"] = np.asarray(history.train_loss)
        arrays["history/val_loss"] = np.asarray(history.val_loss)
    meta = {
        "config": dataclasses.asdict(config),
        "dataset": info,
        "key_impl": str(jax.random.key_impl(state.key)),
        "extra": dict(extra or {}),
    }
    save_arrays(path, arrays, meta, kind=_KIND_TRAIN_STATE)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded training checkpoint.

    Attributes:
        state: the :class:`TrainState`; pass it to ``fit(config, ..., state=...)``.
        config: the run's :class:`TrainConfig`.
        scaler: the feature scaler, or None when the run used raw features.
        target_scaler: the standardisation of the regression targets the network was trained in,
            or None (raw targets); :func:`jaxnn.experiment.predict` maps outputs back with it.
        dataset: the data set description (see :func:`dataset_info`).
        history: losses up to this checkpoint (empty when none were saved).
        extra: the caller's extra dict.
        path: the file it came from.
    """

    state: TrainState
    config: TrainConfig
    scaler: Scaler | None
    dataset: dict[str, Any]
    history: History
    extra: dict[str, Any]
    path: str
    target_scaler: Scaler | None = None

    @property
    def params(self) -> Any:
        """The parameters to predict with: the best ones when early stopping fired."""
        state = self.state
        early = self.config.patience is not None and bool(state.stopped) and int(state.diverged_step) < 0
        return state.best_params if early else state.params


def _config_from_meta(p: Path, raw: Any) -> TrainConfig:
    if not isinstance(raw, dict):
        raise refuse(p, "meta.config must be a JSON object")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if set(raw) != fields:
        raise refuse(p, f"meta.config keys differ from TrainConfig's (extra: {sorted(set(raw) - fields)}, "
                         f"missing: {sorted(fields - set(raw))})")
    values = dict(raw)
    if isinstance(values["hidden"], list):
        values["hidden"] = tuple(values["hidden"])
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as e:
        raise refuse(p, f"meta.config is invalid ({e})") from None


def _check_dataset(p: Path, info: Any, d: int, k: int) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise refuse(p, "meta.dataset must be a JSON object")
    for key, size in (("n_features", d), ("n_outputs", k)):
        if info.get(key) != size:
            raise refuse(p, f"meta.dataset.{key} is {info.get(key)!r}, the parameters imply {size}")
    names = info.get("feature_names")
    if names is not None and (not isinstance(names, list) or len(names) != d
                              or not all(isinstance(n, str) for n in names)):
        raise refuse(p, f"meta.dataset.feature_names must be {d} strings")
    if names is not None and len(set(names)) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise refuse(p, f"meta.dataset.feature_names has duplicate names {dups}")
    task = info.get("task", "regression")
    if task not in ("regression", "classification"):
        raise refuse(p, f"meta.dataset.task is {task!r}")
    classes = info.get("classes")
    if task == "classification" and (
        not isinstance(classes, list) or len(classes) != k
        or not all(isinstance(c, int | float | str) and not isinstance(c, bool) for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise refuse(p, f"meta.dataset.classes must list the {k} distinct class labels")
    return info


def load(path: str | os.PathLike[str], *, max_bytes: int = MAX_TOTAL_BYTES) -> Checkpoint:
    """Load a checkpoint written by :func:`save`, refusing anything that does not fit.

    Every array must have the name, shape and dtype of the training state its stored config
    implies; that, the step counters and the history lengths are checked before any array data is
    decompressed, and the parameters and optimizer state must then be finite.

    Args:
        path: the ``.npz`` file.
        max_bytes: the most array data the file may declare (see :data:`MAX_TOTAL_BYTES`).
    Returns:
        A :class:`Checkpoint`.
    Raises:
        FileNotFoundError / IsADirectoryError: no such file, or a directory.
        ValueError: truncated, garbage or tampered content; the message names the file.
    """
    p = Path(path)
    found: dict[str, Any] = {}
    arrays, meta = load_arrays(p, kind=_KIND_TRAIN_STATE, max_bytes=max_bytes,
                               check=lambda *args: found.update(_check_declared(p, *args)))
    config, want = found["config"], found["want"]
    for name in want:
        a = arrays[name]
        if name.startswith(("params/", "best_params/", "opt_state/")) and a.dtype.kind == "f" \
                and not np.isfinite(a).all():
            raise refuse(p, f"array {name!r} holds NaN or inf")
    if "history/train_loss" in arrays:
        history = History(train_loss=np.array(arrays["history/train_loss"]),
                          val_loss=np.array(arrays["history/val_loss"]))
    else:
        history = History(train_loss=np.zeros((0,)), val_loss=np.zeros((0,)))
    with training.x64_context(config.dtype):
        state = _unflatten(found["treedef"], want, arrays, {"key": meta["key_impl"]})
    return Checkpoint(state=state, config=config, scaler=_scaler(p, arrays, _SCALER), dataset=found["info"],
                      history=history, extra=meta["extra"], path=str(p),
                      target_scaler=_scaler(p, arrays, _TARGET))


def _check_declared(p: Path, declared: dict[str, Spec], meta: dict[str, Any],
                    read: Callable[[str], np.ndarray]) -> dict[str, Any]:
    """Everything :func:`load` can check before array data is read; returns what it derived."""
    if set(meta) != {"config", "dataset", "key_impl", "extra"}:
        raise refuse(p, f"meta keys are {sorted(meta)}, expected config, dataset, extra, key_impl")
    config = _config_from_meta(p, meta["config"])
    n_layers = len(config.hidden) + 1
    w0, wl = declared.get("params/0/W"), declared.get(f"params/{n_layers - 1}/W")
    if w0 is None or wl is None or len(w0[0]) != 2 or len(wl[0]) != 2:
        raise refuse(p, f"missing the weights of the {n_layers} layers the config describes")
    d, k = int(w0[0][0]), int(wl[0][1])
    if d < 1 or k < 1:
        raise refuse(p, f"layer sizes {d}, {k} must be positive")
    info = _check_dataset(p, meta["dataset"], d, k)
    with training.x64_context(config.dtype):
        want, treedef = _layout(jax.eval_shape(lambda: training.init_state(config, d, k, 1)))
    optional = (*_SCALER, *_TARGET, *_HISTORY)
    check_layout(p, {n: s for n, s in declared.items() if n not in optional}, want,
                  "its config's training state")
    if meta["key_impl"] != (default_impl := str(jax.random.key_impl(jax.random.key(0)))):
        raise refuse(p, f"key_impl is {meta['key_impl']!r}, expected {default_impl!r}")
    if not isinstance(meta["extra"], dict):
        raise refuse(p, "meta.extra must be a JSON object")
    for group in (_SCALER, _TARGET, _HISTORY):
        if (group[0] in declared) != (group[1] in declared):
            raise refuse(p, f"{group[0]} and {group[1]} must both be present")
    for names_, size in ((_SCALER, d), (_TARGET, k)):
        for name in names_:
            if name in declared and declared[name] != ((size,), np.dtype(np.float64)):
                raise refuse(p, f"{name} must be float64 of shape ({size},), got {declared[name][1]} "
                                 f"{declared[name][0]}")
    # The counters (scalars: a few bytes) bound the history lengths.
    # (the epoch is not stored: it is step // steps_per_epoch, and at most step)
    step = int(read("step"))
    diverged, bad = int(read("diverged_step")), int(read("bad_epochs"))
    rows = float(read("epoch_rows"))
    if step < 0:
        raise refuse(p, f"step {step} must be >= 0")
    if config.steps is not None and step > config.steps:
        raise refuse(p, f"step {step} is past the config's total of {config.steps} steps")
    if not -1 <= diverged <= step or bad < 0 or not (math.isfinite(rows) and 0 <= rows):
        raise refuse(p, f"diverged_step {diverged} (-1 or a step <= {step}), bad_epochs {bad} (>= 0) "
                         f"or epoch_rows {rows} (>= 0) out of range")
    if _HISTORY[0] in declared:
        (tl, tl_dtype), (vl, vl_dtype) = declared["history/train_loss"], declared["history/val_loss"]
        if len(tl) != 1 or len(vl) != 1 or tl_dtype.kind != "f" or vl_dtype.kind != "f":
            raise refuse(p, "history arrays must be 1-D float arrays")
        longest = step + 1 if diverged >= 0 else step  # a diverged run also records the failing loss
        if not step <= tl[0] <= longest or vl[0] > step:
            raise refuse(p, f"history holds {tl[0]} training and {vl[0]} validation losses; "
                             f"step {step} allows {step} and at most {step}")
    return {"config": config, "info": info, "want": want, "treedef": treedef}


def _scaler(p: Path, arrays: Mapping[str, np.ndarray], names_: tuple[str, str]) -> Scaler | None:
    """The scaler stored as ``names_`` (shapes and dtypes already checked), or None."""
    if names_[0] not in arrays:
        return None
    try:
        return Scaler(mean=arrays[names_[0]], scale=arrays[names_[1]])
    except ValueError as e:
        raise refuse(p, f"{names_[0].split('/')[0]} is invalid ({e})") from None
