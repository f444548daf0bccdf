"""Save and load a fitted estimator in jaxnn.npzfile's validated, pickle-free ``.npz`` format."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

from jaxnn import npzfile, training
from jaxnn.errors import InputError, InputTypeError

_FITTED_SCALARS = ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_",
                   "loss_", "best_loss_", "best_validation_score_", "_no_improvement_count")


def save_estimator(est: Any, path: Any) -> None:
    """Save a fitted estimator: weights, optimizer state, shuffle key, fitted attributes and parameters.

    Written atomically as ``.npz`` + JSON metadata by :func:`jaxnn.npzfile.save_arrays`; loading
    never unpickles. ``load_estimator(path)`` gives back an estimator that predicts identically and
    whose ``partial_fit`` continues exactly where this one stopped.
    """
    check_is_fitted(est, "coefs_")
    arrays: dict[str, Any] = {}
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        arrays[f"coefs/{i}"], arrays[f"intercepts/{i}"] = np.asarray(W), np.asarray(b)
    for i, leaf in enumerate(jax.tree_util.tree_leaves(getattr(est, "_opt_state", None))):
        arrays[f"opt_state/{i}"] = np.asarray(leaf)
    if hasattr(est, "_key_data"):
        arrays["key_data"] = np.asarray(est._key_data)
    if hasattr(est, "loss_curve_"):  # stochastic solvers only, as scikit-learn
        arrays["loss_curve"] = np.asarray(est.loss_curve_, dtype=np.float64)
    if getattr(est, "validation_loss_curve_", None) is not None:
        arrays["validation_loss_curve"] = np.asarray(est.validation_loss_curve_, dtype=np.float64)
    if getattr(est, "validation_scores_", None) is not None:
        arrays["validation_scores"] = np.asarray(est.validation_scores_, dtype=np.float64)
    meta: dict[str, Any] = {
        "class": type(est).__name__,
        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in est.get_params().items()
                   if k != "random_state" or v is None or isinstance(v, int)},
        "fitted": {k: getattr(est, k) for k in _FITTED_SCALARS
                   if getattr(est, k, None) is not None and not (isinstance(getattr(est, k), float)
                                                                and not math.isfinite(getattr(est, k)))},
    }
    if hasattr(est, "classes_"):  # labels may be ints or strings: kept in the JSON, not as arrays
        classes_ = np.asarray(est.classes_)
        if classes_.dtype.kind not in "biufU":
            raise InputTypeError(f"classes_: cannot save labels of dtype {classes_.dtype}")
        meta["classes"] = {"values": classes_.tolist(), "dtype": classes_.dtype.str,
                           "y_type": est._label_binarizer.y_type_}
    if hasattr(est, "_optimizer"):
        meta["learning_rate"] = float(est._optimizer.learning_rate)
    npzfile.save_arrays(path, arrays, meta, kind="estimator")


def load_estimator(path: Any) -> Any:
    """Load an estimator written by :func:`save_estimator` (validated; ``ValueError`` if tampered)."""
    from jaxnn.estimators._mlp import MLPClassifier, MLPRegressor, _Optimizer

    arrays, meta = npzfile.load_arrays(path, kind="estimator")
    classes = {"MLPRegressor": MLPRegressor, "MLPClassifier": MLPClassifier}
    name = meta.get("class")
    if name not in classes or not isinstance(meta.get("params"), dict):
        raise InputError(f"{path}: not a jaxnn estimator file (class {name!r})")
    params = dict(meta["params"])
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        est = classes[name](**params)
        est._check_params()  # a tampered activation, solver, max_iter... is refused here
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: bad estimator parameters: {e}") from None
    n_layers = sum(1 for k in arrays if k.startswith("coefs/"))
    try:
        est.coefs_ = [arrays[f"coefs/{i}"] for i in range(n_layers)]
        est.intercepts_ = [arrays[f"intercepts/{i}"] for i in range(n_layers)]
    except KeyError as e:
        raise InputError(f"{path}: missing array {e}") from None
    if "key_data" in arrays:
        est._key_data = arrays["key_data"]
    if "loss_curve" in arrays:
        est.loss_curve_ = arrays["loss_curve"].tolist()
    if "validation_loss_curve" in arrays:
        est.validation_loss_curve_ = arrays["validation_loss_curve"].tolist()
    if isinstance(meta.get("learning_rate"), float):
        est._optimizer = _Optimizer(meta["learning_rate"])
    if n_layers < 1:
        raise InputError(f"{path}: no layers")
    for i in range(n_layers):
        W, b = est.coefs_[i], est.intercepts_[i]
        if W.ndim != 2 or b.shape != (W.shape[1],) or (i and W.shape[0] != est.coefs_[i - 1].shape[1]):
            raise InputError(f"{path}: layer {i} has inconsistent shapes {W.shape}, {b.shape}")
    if not all(np.isfinite(a).all() for a in (*est.coefs_, *est.intercepts_)):
        raise InputError(f"{path}: the weights hold NaN or inf")
    if est.solver != "lbfgs":  # the stochastic solvers' records, as scikit-learn keeps them
        est.validation_scores_ = (arrays["validation_scores"].tolist() if "validation_scores" in arrays
                                  else None)
        est.best_loss_ = est.best_validation_score_ = None  # unless saved (None is not)
        est._no_improvement_count = 0
    for k, v in meta.get("fitted", {}).items():
        if k in _FITTED_SCALARS:
            setattr(est, k, v)
    if "classes" in meta:
        try:
            dtype = np.dtype(meta["classes"]["dtype"])
            if dtype.kind not in "biufU":
                raise InputError(dtype)
            est.classes_ = np.asarray(meta["classes"]["values"], dtype=dtype)
        except (TypeError, ValueError, KeyError):
            raise InputError(f"{path}: invalid classes in the metadata") from None
    if getattr(est, "n_features_in_", None) != est.coefs_[0].shape[0]:
        raise InputError(f"{path}: n_features_in_ is {getattr(est, 'n_features_in_', None)!r}, the first "
                         f"layer takes {est.coefs_[0].shape[0]}")
    if isinstance(est, MLPClassifier):
        k = est.coefs_[-1].shape[1]
        labels = getattr(est, "classes_", None)
        y_type = meta.get("classes", {}).get("y_type")
        want = len(labels) if labels is not None and (y_type != "binary") else 1
        if labels is None or labels.ndim != 1 or len(np.unique(labels)) != len(labels) \
                or not np.array_equal(np.sort(labels), labels) or k != want \
                or y_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise InputError(f"{path}: a classifier needs its sorted, distinct class labels, one per output "
                             f"unit ({k}; one unit for two classes); the file has "
                             f"{None if labels is None else labels.tolist()}")
        binarizer = LabelBinarizer()
        binarizer.fit(np.eye(len(labels), dtype=int) if y_type == "multilabel-indicator" else labels)
        est._label_binarizer = binarizer
    elif "classes" in meta:
        raise InputError(f"{path}: a regressor has no classes")
    if est.solver == "lbfgs" or not any(k.startswith("opt_state/") for k in arrays):
        return est
    # Rebuild the optimizer state's structure from the estimator's own optimizer, then fill it.
    dt = jnp.dtype(est.coefs_[0].dtype)
    with training.x64_context(dt.name):
        params_tree = [{"W": jnp.asarray(W, dt), "b": jnp.asarray(b, dt)}
                       for W, b in zip(est.coefs_, est.intercepts_, strict=True)]
        template = est._make_optimizer().init(params_tree)
    leaves, treedef = jax.tree_util.tree_flatten(template)
    layout = {f"opt_state/{i}": (np.shape(t), np.dtype(t.dtype)) for i, t in enumerate(leaves)}
    saved = {k: (a.shape, a.dtype) for k, a in arrays.items() if k.startswith("opt_state/")}
    npzfile.check_layout(path, saved, layout, "the estimator's optimizer state")
    est._opt_state = jax.tree_util.tree_unflatten(treedef, [arrays[k] for k in layout])
    return est


