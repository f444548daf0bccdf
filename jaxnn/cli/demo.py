"""``jaxnn demo``: the seed's whole study (sections 1.3-1.5) in one run, on bundled data.

A gradient check of the hand-written backward passes, linear regression trained with them and with
``jax.grad`` beside scikit-learn's ``LinearRegression``, the seed's 13-sigmoid network both ways,
and a table of their test metrics and timings. Why ``friedman1`` is the default data, the recipe
and its two deliberate changes, and the Boston reproduction: ``docs/how-to/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jaxnn.cli.train import _seed
from jaxnn.errors import EXIT_OK, InputError

DEFAULT_DATA = "friedman1"
TEST_SIZE = 0.3
SPLIT_SEED = 80718  # the seed's (DLFS) random_state

#: The hand-written backward passes the demo's two models train with.
DEMO_GRADCHECK = ("sigmoid", "dense", "mse[sum]", "mse[half_sum]", "linear_regression[mse]",
                  "mlp[sigmoid,mse]")

#: The seed notebook's printed test numbers on Boston (its cells [37], [40] and [48]). Its split
#: cell is not in the text; its scikit-learn MSE is reproduced to 1e-12 by ``test_size=0.3,
#: random_state=42`` (and by no other random_state in 0..99,999), so that is the split it used.
SEED_SPLIT_SEED = 42
SEED_PUBLISHED: dict[str, dict[str, float]] = {
    "linear_manual": {"mse": 21.962219458334552, "r2": 0.7052569177141323},
    "sklearn_linear": {"mse": 21.517444231177276, "r2": 0.7112260057484923},
    "mlp_manual": {"mse": 10.839123211769357, "r2": 0.8545339831990069},
}

#: The models of the study, in table order: key -> (label, gradients).
MODELS: dict[str, tuple[str, str]] = {
    "linear_manual": ("linear regression", "hand-written"),
    "linear_autodiff": ("linear regression", "jax.grad"),
    "sklearn_linear": ("scikit-learn LinearRegression", "closed form"),
    "mlp_manual": ("13 sigmoid units, 1 hidden layer", "hand-written"),
    "mlp_autodiff": ("13 sigmoid units, 1 hidden layer", "jax.grad"),
}


# --- The seed's recipes -----------------------------------------------------------------------


def linear_config(gradients: str, *, dtype: str = "float64", seed: int = 0) -> Any:
    """The seed's linear regression update (1.3), run long enough to converge.

    ``reduction="sum"`` is the loss whose gradient the seed's ``dLdP = -2 * (y - P)`` is (no
    1/n); ``sgd`` with ``lr=0.001``, ``batch_size=23`` and standard-normal init are the
    seed's. 5,000 steps with cosine decay (the seed: 1,000 constant steps) let SGD's noise die
    out, so the weights land on the least-squares solution scikit-learn computes in closed form.
    """
    from jaxnn.training import TrainConfig

    return TrainConfig(hidden=(), loss="mse", reduction="sum", optimizer="sgd", lr=1e-3,
                       schedule="cosine", batch_size=23, steps=5000, init="normal",
                       gradients=gradients, dtype=dtype, seed=seed)


def mlp_config(gradients: str, *, dtype: str = "float64", seed: int = 0) -> Any:
    """The seed's network (1.4): 13 sigmoid hidden units, its update and its 10,000 steps.

    ``reduction="half_sum"`` is the loss whose gradient the seed's ``dLdP = -(y - P)`` is.
    """
    from jaxnn.training import TrainConfig

    return TrainConfig(hidden=(13,), activation="sigmoid", loss="mse", reduction="half_sum",
                       optimizer="sgd", lr=1e-3, schedule="constant", batch_size=23, steps=10000,
                       init="normal", gradients=gradients, dtype=dtype, seed=seed)


def describe_config(c: Any) -> str:
    """One line: the hyper-parameters a reader needs to rerun a model with ``jaxnn train``."""
    sched = "" if c.schedule == "constant" else f" ({c.schedule} decay)"
    return (f"{c.optimizer} lr={c.lr:g}{sched}, batch {c.batch_size}, {c.steps} steps, "
            f"loss {c.loss} reduction={c.reduction}, init {c.init}, {c.dtype}")


# --- The study --------------------------------------------------------------------------------


def load_demo_split(data: str, target: str | None = None, *, split_seed: int = SPLIT_SEED) -> Any:
    """The demo's split of ``data`` (a dataset name or CSV path).

    Boston (the seed's data, from its CSV) is split with the seed's protocol: standardised
    before the split. Every other dataset gets the sound one: the scaler is fitted on the
    training rows only. Both use ``test_size=0.3, random_state=80718``.

    Raises:
        ValueError: a classification dataset (the demo is a regression study).
    """
    from jaxnn.cli.userinput import DATA_FLAGS, flag_names
    from jaxnn.datasets import load_dataset, split_dataset

    with flag_names(DATA_FLAGS, "--data"):  # the library's "path:", "target:" are --data, --target here
        ds = load_dataset(data, target)
    regression_only(data, ds.task)
    return split_dataset(ds, test_size=TEST_SIZE, random_state=split_seed,
                         scale_before_split=is_seed_data(ds))


def regression_only(data: str, task: str) -> None:
    """Refuse a classification dataset: the demo is a regression study."""
    if task != "regression":
        raise InputError(f"--data: the demo is a regression study and {data!r} is a "
                         f"{task} dataset; use `jaxnn train --data {data}` instead")


def is_seed_data(ds: Any) -> bool:
    """Boston housing -- the seed's own data -- recognised by its name and target column."""
    return bool(ds.name == "boston" and ds.target_name == "medv")


def gradcheck(scope: str) -> dict[str, Any]:
    """Check the hand-written backward passes (float64) and summarise.

    Args:
        scope: ``"used"`` (:data:`DEMO_GRADCHECK`, the entries this demo trains with) or
            ``"all"`` (every registered entry; slower).
    Returns:
        ``{"scope", "dtype", "passed", "total", "all_passed", "seconds", "entries": [...]}``.
    """
    from jaxnn import gradients

    t0 = time.perf_counter()
    if scope == "all":
        results = gradients.check_all(dtype="float64")
    else:
        results = [gradients.check_entry(gradients.get(name), dtype="float64")
                   for name in DEMO_GRADCHECK]
    n_ok = sum(r.passed for r in results)
    return {
        "scope": scope,
        "dtype": "float64",
        "passed": n_ok,
        "total": len(results),
        "all_passed": n_ok == len(results),
        "registered": len(gradients.registry()),
        "tolerances": {"max_rel_err": gradients.TOLERANCES["float64"][0],
                       "fd_rel_err": gradients.TOLERANCES["float64"][1]},
        "seconds": time.perf_counter() - t0,
        "entries": [r.as_json() for r in results],
    }


def _params_diff(a: Any, b: Any) -> tuple[float, float]:
    """(max |a - b|, that divided by max |b|) over all leaves of two parameter lists."""
    import jax

    la = [np.asarray(x, dtype=np.float64) for x in jax.tree_util.tree_leaves(a)]
    lb = [np.asarray(x, dtype=np.float64) for x in jax.tree_util.tree_leaves(b)]
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(la, lb, strict=True))
    scale = max(float(np.max(np.abs(y))) for y in lb)
    return diff, diff / max(scale, np.finfo(np.float64).tiny)


def _model_entry(key: str, report: Any) -> dict[str, Any]:
    label, grads = MODELS[key]
    return {"label": label, "gradients": grads, "model": report.model, "steps": report.fit.steps,
            "test": report.test, "train": report.train,
            "seconds": {k: float(v) for k, v in report.fit.seconds.items()},
            "config": describe_config(report.config)}


def sklearn_linear(split: Any) -> tuple[Any, dict[str, Any]]:
    """scikit-learn's ``LinearRegression`` on the same split: (estimator, model entry)."""
    from sklearn.linear_model import LinearRegression

    from jaxnn import metrics
    from jaxnn.training import x64_context

    t0 = time.perf_counter()
    est = LinearRegression().fit(split.X_train, split.y_train)
    seconds = time.perf_counter() - t0
    label, grads = MODELS["sklearn_linear"]
    with x64_context("float64"):  # scikit-learn predicts in float64; score it in float64
        test = metrics.regression_report(split.y_test, est.predict(split.X_test))
        train = metrics.regression_report(split.y_train, est.predict(split.X_train))
    return est, {
        "label": label, "gradients": grads, "model": "linear", "steps": None,
        "test": test, "train": train, "seconds": {"compile": 0.0, "train": seconds},
        "config": "ordinary least squares (scipy lstsq)",
    }


def study(
    data: str = DEFAULT_DATA,
    *,
    target: str | None = None,
    gradcheck_scope: str = "used",
    split_seed: int = SPLIT_SEED,
    dtype: str = "float64",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the whole demo.

    Args:
        data: dataset name or CSV path (default ``friedman1``).
        target: target column of a CSV (default: its last column).
        gradcheck_scope: ``"used"``, ``"all"`` or ``"off"``.
        dtype: ``"float64"`` (default) or ``"float32"`` for the four trained models.
        seed: initialisation and shuffling seed of the trained models.
        log: called with a progress line after each stage (None: silent).

    Returns:
        ``(report, artifacts)``: ``report`` is the JSON-ready result (what ``--json``
        prints); ``artifacts`` holds the split and the fitted parameters (for figures).
    """
    from jaxnn.experiment import run as run_experiment

    if gradcheck_scope not in ("used", "all", "off"):
        raise InputError(f"gradcheck_scope: expected 'used', 'all' or 'off', got {gradcheck_scope!r}")
    say = log or (lambda _line: None)
    t_start = time.perf_counter()
    split = load_demo_split(data, target, split_seed=split_seed)
    ds = split.dataset
    seed_data = is_seed_data(ds)
    report: dict[str, Any] = {
        "dataset": {
            "name": ds.name, "target": ds.target_name, "n_samples": ds.n_samples,
            "n_features": ds.n_features, "n_train": int(split.X_train.shape[0]),
            "n_test": int(split.X_test.shape[0]), "test_size": TEST_SIZE,
            "split_seed": split_seed, "scale_before_split": seed_data,
        },
    }
    say(_dataset_line(report["dataset"]))

    if gradcheck_scope != "off":
        report["gradcheck"] = gradcheck(gradcheck_scope)
        say(_gradcheck_line(report["gradcheck"]))

    models: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    for key, make in (("linear_manual", linear_config), ("linear_autodiff", linear_config),
                      ("mlp_manual", mlp_config), ("mlp_autodiff", mlp_config)):
        if key == "mlp_manual":  # table order: scikit-learn right after the linear models
            est, models["sklearn_linear"] = sklearn_linear(split)
            say(_trained_line("sklearn_linear", models["sklearn_linear"]))
        grads = "manual" if key.endswith("manual") else "autodiff"
        configs[key] = make(grads, dtype=dtype, seed=seed)
        rep = run_experiment(configs[key], split)
        models[key], params[key] = _model_entry(key, rep), rep.fit.params
        say(_trained_line(key, models[key]))
    report["models"] = models

    coef_diffs = {}
    for key in ("linear_manual", "linear_autodiff"):
        W = np.asarray(params[key][0]["W"], dtype=np.float64)[:, 0]
        b = float(np.asarray(params[key][0]["b"], dtype=np.float64)[0])
        coef_diffs[key] = {"max_abs_coef_diff": float(np.max(np.abs(W - est.coef_))),
                           "abs_intercept_diff": abs(b - float(est.intercept_))}
    lin_diff, lin_rel = _params_diff(params["linear_manual"], params["linear_autodiff"])
    mlp_diff, mlp_rel = _params_diff(params["mlp_manual"], params["mlp_autodiff"])
    report["agreement"] = {
        "linear_vs_sklearn": coef_diffs,
        "max_abs_coef_diff": max(d["max_abs_coef_diff"] for d in coef_diffs.values()),
        "linear_manual_vs_autodiff": {"max_abs_param_diff": lin_diff, "max_rel_param_diff": lin_rel},
        "mlp_manual_vs_autodiff": {"max_abs_param_diff": mlp_diff, "max_rel_param_diff": mlp_rel},
    }
    lin, mlp = models["linear_manual"]["test"], models["mlp_manual"]["test"]
    report["lesson"] = {
        "linear_test_rmse": lin["rmse"], "mlp_test_rmse": mlp["rmse"],
        "linear_test_r2": lin["r2"], "mlp_test_r2": mlp["r2"],
        "rmse_reduction": 1.0 - mlp["rmse"] / lin["rmse"],
        "nonlinearity_helps": mlp["rmse"] < lin["rmse"],
    }
    if seed_data:
        report["seed_published"] = {
            "split_seed": SEED_SPLIT_SEED,
            "test": {k: {**v, "rmse": float(np.sqrt(v["mse"]))} for k, v in SEED_PUBLISHED.items()},
        }
    report["settings"] = {"dtype": dtype, "seed": seed,
                          "linear": describe_config(linear_config("manual", dtype=dtype, seed=seed)),
                          "mlp": describe_config(mlp_config("manual", dtype=dtype, seed=seed))}
    report["seconds"] = {"total": time.perf_counter() - t_start}
    return report, {"split": split, "params": params, "configs": configs, "sklearn": est}


# --- Human-readable output --------------------------------------------------------------------


def _dataset_line(d: dict[str, Any]) -> str:
    scaling = ("features standardised on all rows before the split (the seed's protocol)"
               if d["scale_before_split"] else "features standardised on the training rows")
    return (f"data: {d['name']} ({d['n_samples']} rows, {d['n_features']} features, target "
            f"{d['target']}); {d['n_train']} train / {d['n_test']} test rows (test_size "
            f"{d['test_size']}, random_state {d['split_seed']}); {scaling}")


def _gradcheck_line(g: dict[str, Any]) -> str:
    what = ("every registered hand-written backward pass" if g["scope"] == "all"
            else "hand-written backward passes this demo trains with")
    tail = "" if g["scope"] == "all" else f"; `jaxnn gradcheck` checks all {g['registered']}"
    return (f"gradient check: {g['passed']}/{g['total']} passed -- {what} agree with jax.vjp "
            f"(rel <= {g['tolerances']['max_rel_err']:g}) and finite differences "
            f"(rel <= {g['tolerances']['fd_rel_err']:g}) in {g['dtype']}{tail}")


def _trained_line(key: str, m: dict[str, Any]) -> str:
    label, grads = MODELS[key]
    t = m["test"]
    return (f"trained {label} ({grads}): test RMSE {t['rmse']:.4f}, R^2 {t['r2']:.4f} "
            f"[compile {m['seconds']['compile']:.2f} s, train {m['seconds']['train']:.3f} s]")


def format_table(report: dict[str, Any]) -> str:
    """The results table: one row per model (and the seed's published numbers on Boston)."""
    seed = report.get("seed_published", {}).get("test", {})
    head = (f"{'model':<34} {'gradients':<13} {'test MSE':>9} {'test RMSE':>9} {'test R^2':>8} "
            f"{'compile s':>9} {'train s':>8}")
    if seed:
        head += f"  {'seed MSE':>8} {'seed R^2':>8}"
    lines = [head, "-" * len(head)]
    for key, m in report["models"].items():
        t, s = m["test"], m["seconds"]
        row = (f"{m['label']:<34} {m['gradients']:<13} {t['mse']:9.4f} {t['rmse']:9.4f} "
               f"{t['r2']:8.4f} {s['compile']:9.2f} {s['train']:8.3f}")
        if seed:
            pub = seed.get(key)
            row += (f"  {pub['mse']:8.4f} {pub['r2']:8.4f}" if pub else f"  {'':>8} {'':>8}")
        lines.append(row)
    return "\n".join(lines)


def format_report(report: dict[str, Any]) -> str:
    """Everything after the progress lines: table, agreement, lesson, settings."""
    a, lesson = report["agreement"], report["lesson"]
    out = ["", format_table(report), ""]
    out.append(f"linear coefficients vs scikit-learn: max |difference| = {a['max_abs_coef_diff']:.2e} "
               f"(hand-written {a['linear_vs_sklearn']['linear_manual']['max_abs_coef_diff']:.2e}, "
               f"jax.grad {a['linear_vs_sklearn']['linear_autodiff']['max_abs_coef_diff']:.2e})")
    out.append("hand-written vs jax.grad training, max |parameter difference|: "
               f"linear {a['linear_manual_vs_autodiff']['max_abs_param_diff']:.2e}, "
               f"network {a['mlp_manual_vs_autodiff']['max_abs_param_diff']:.2e}")
    pct = 100 * lesson["rmse_reduction"]
    if lesson["nonlinearity_helps"]:
        out.append(f"non-linearity helps: the sigmoid network cuts test RMSE from "
                   f"{lesson['linear_test_rmse']:.4f} to {lesson['mlp_test_rmse']:.4f} ({pct:.0f}% lower), "
                   f"R^2 {lesson['linear_test_r2']:.3f} -> {lesson['mlp_test_r2']:.3f}")
    else:
        out.append(f"on this data the sigmoid network does NOT beat linear regression (test RMSE "
                   f"{lesson['mlp_test_rmse']:.4f} vs {lesson['linear_test_rmse']:.4f})")
    if "seed_published" in report:
        sk = report["models"]["sklearn_linear"]["test"]["mse"]
        pub = SEED_PUBLISHED["sklearn_linear"]["mse"]
        if report["dataset"]["split_seed"] == SEED_SPLIT_SEED:
            out.append(f"seed columns: the seed notebook's printed numbers, on this very split "
                       f"(random_state {SEED_SPLIT_SEED}): scikit-learn scores MSE {sk:.4f} here, "
                       f"the seed printed {pub:.4f}")
        else:
            out.append(f"seed columns: the seed notebook's printed numbers come from random_state "
                       f"{SEED_SPLIT_SEED} (scikit-learn's MSE there is exactly its {pub:.4f}; rerun "
                       f"with --split-seed {SEED_SPLIT_SEED} to compare row by row); on random_state "
                       f"{report['dataset']['split_seed']} scikit-learn scores {sk:.4f}")
    s = report["settings"]
    out.append(f"settings: linear: {s['linear']}; network: {s['mlp']}; seed {s['seed']}")
    for name, path in report.get("figures", {}).items():
        out.append(f"figure {name}: {path}")
    out.append(f"total {report['seconds']['total']:.1f} s")
    return "\n".join(out)


# --- Figures hook -----------------------------------------------------------------------------
# `--out DIR` hands the demo's results to jaxnn.plotting (owned by the plotting module; the
# demo draws nothing itself). Extend the plotting side, not this function, for new figures.


def write_figures(out_dir: str, report: dict[str, Any], artifacts: dict[str, Any]) -> dict[str, str]:
    """PNG figures of the demo under ``out_dir``; returns ``{name: path}``."""
    from jaxnn import plotting
    from jaxnn.experiment import predict

    written = {p.stem: str(p) for p in plotting.save_demo_figures(out_dir)}
    split, params = artifacts["split"], artifacts["params"]
    out = Path(out_dir)
    for key in ("linear_manual", "mlp_manual"):
        pred = predict(params[key], artifacts["configs"][key], np.asarray(split.X_test))[:, 0]
        path = out / f"predicted_vs_actual_{key.split('_')[0]}.png"
        plotting.predicted_vs_actual(split.y_test, pred, title=f"{MODELS[key][0]} (test set)",
                                     path=path).clear()
        written[path.stem] = str(path)
    path = out / "feature_weights_linear.png"
    plotting.feature_weights(params["linear_manual"], split.dataset.feature_names, path=path).clear()
    written[path.stem] = str(path)
    return written


# --- Command line -----------------------------------------------------------------------------


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="the seed's whole study in one run: gradcheck, linear regression vs scikit-learn, "
             "the sigmoid network, a results table",
        description=(
            "The course notebook's study (sections 1.3-1.5) in one run: check the hand-written "
            "gradients; train linear regression with hand-written gradients and with jax.grad "
            "beside scikit-learn's LinearRegression; train the seed's 13-sigmoid network both "
            "ways; print MSE/RMSE/R^2 and timings. The default data, friedman1 (1,000 rows from "
            "scikit-learn's make_friedman1, offline), is non-linear, so the seed's lesson shows: "
            "the network beats the linear model by far (on the bundled diabetes data it does "
            "not). --data path/to/boston.csv reproduces the seed on its own data and protocol."
        ),
    )
    p.add_argument("--data", default=DEFAULT_DATA, metavar="{friedman1,diabetes,boston,PATH.csv}",
                   help="regression dataset name or CSV path (default friedman1: non-linear, so "
                        "non-linearity visibly helps; a boston CSV reproduces the seed)")
    p.add_argument("--target", default=None, metavar="COL",
                   help="target column of a CSV (default: its last column)")
    p.add_argument("--split-seed", type=_seed, default=SPLIT_SEED,
                   help=f"random_state of the 70/30 split (default {SPLIT_SEED}, Deep Learning from "
                        f"Scratch's; the seed notebook's printed Boston numbers use {SEED_SPLIT_SEED})")
    p.add_argument("--gradcheck", choices=("used", "all", "off"), default="used",
                   help="which hand-written backward passes to check first: those the demo trains "
                        "with (default), all registered ones (~20 s more), or none")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="precision of the trained models (default float64, so hand-written and "
                        "jax.grad training agree to rounding)")
    p.add_argument("--seed", type=_seed, default=0, help="initialisation and shuffling seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write PNG figures (via jaxnn.plotting) into DIR")
    return p


def preflight(args: argparse.Namespace) -> None:
    """Checked before JAX is imported: ``--data`` (a regression dataset; a CSV's header and
    ``--target``) and ``--out``."""
    from jaxnn.cli.userinput import check_data, check_out_dir

    regression_only(args.data, check_data(args))
    check_out_dir(args.out)


def run(args: argparse.Namespace) -> int:
    header = ["jaxnn demo: the seed's study (sections 1.3-1.5) -- hand-written gradients, jax.grad "
              "and scikit-learn side by side"]

    def log(line: str) -> None:  # the header comes with the first result: nothing on stdout if the data fail
        for text in [*header, line]:
            print(text, flush=True)
        header.clear()

    report, artifacts = study(args.data, target=args.target, gradcheck_scope=args.gradcheck,
                              split_seed=args.split_seed, dtype=args.dtype, seed=args.seed,
                              log=None if args.json else log)
    if args.out is not None:
        report["figures"] = write_figures(args.out, report, artifacts)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    return EXIT_OK
