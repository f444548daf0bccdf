"""``jaxnn sweep``: train seeds x learning rates of one network in one compiled call
(``docs/how-to/sweeps.md``). ``--json`` prints one object::

    {"dataset", "model", "task", "n_models", "steps", "shared_order", "devices",
     "models": [{"seed", "lr", "l2", "diverged_step", "test": {...}, "train": {...}}, ...],
     "test": {metric: {"mean", "std"}}, "train": {...},
     "by_lr": [{"lr", "test": {metric: {"mean", "std"}}}, ...],
     "seconds": {"compile", "train", "total"}, "config": {...}}
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from jaxnn.cli.train import (
    DEFAULT_LR,
    _positive_float,
    _positive_int,
    add_data_arguments,
    add_model_arguments,
    check_model_flags,
    config_from_args,
    load_split,
)
from jaxnn.errors import EXIT_OK, InputError


def add_parser(sub: Any) -> argparse.ArgumentParser:
    # "resolve": the sweep's repeatable --lr replaces train's single --lr
    p = sub.add_parser(
        "sweep",
        help="train many seeds x learning rates in one compiled call; mean ± std of test metrics",
        description="Train the grid seeds x learning rates of one network with jaxnn.sweep.fit_grid "
                    "(jax.vmap of jaxnn.fit's compiled scan, the learning rates as inputs) and "
                    "report test metrics as mean ± std.",
        conflict_handler="resolve",
    )
    add_data_arguments(p)
    add_model_arguments(p)
    g = p.add_argument_group("sweep")
    g.add_argument("--seeds", type=_positive_int, default=8, metavar="N",
                   help="number of seeds, starting at --seed (default 8)")
    g.add_argument("--lr", type=_positive_float, action="append", default=None, metavar="LR",
                   help=f"learning rate; repeat for several (default {DEFAULT_LR:g})")
    g.add_argument("--devices", type=_positive_int, default=None, metavar="N",
                   help="split the models over N devices (no communication: each trains its "
                        "share); on a CPU-only machine jaxnn makes N CPU devices, so N = the "
                        "number of cores puts every core to work. The number of models "
                        "(seeds x learning rates) must divide by N (default: one device)")
    g.add_argument("--per-model-order", action="store_true",
                   help="every model shuffles with its own seed (default: all models share the "
                        "minibatch order of --seed, which is faster)")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    out.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="write the figure of the spread (sweep_spread.png) into DIR")
    return p


def preflight(args: argparse.Namespace) -> None:
    """Checked before JAX is imported: ``--data`` (a CSV's header and the columns the flags name),
    the model flags, ``--patience`` and ``--out``."""
    from jaxnn.cli.userinput import check_data

    check_model_flags(args, check_data(args))
    if args.patience is not None:
        raise InputError("--patience: jaxnn sweep has no early stopping")
    if args.out is not None and not args.out.is_dir():
        raise InputError(f"--out: {str(args.out)!r} is not a directory")


def run(args: argparse.Namespace) -> int:
    from jaxnn import distributed
    from jaxnn.experiment import model_name, targets
    from jaxnn.sweep import evaluate_many, fit_grid, mean_std, spread_figure

    t0 = time.perf_counter()
    if args.devices is not None:  # before anything starts JAX's backends
        distributed.request_cpu_devices(args.devices)
    lrs = args.lr or [DEFAULT_LR]
    split = load_split(args)
    ds = split.dataset
    config = config_from_args(argparse.Namespace(**{**vars(args), "lr": lrs[0]}), ds.task)
    n_classes = ds.n_classes if ds.task == "classification" else None
    result = fit_grid(config, split.X_train, targets(split.y_train, ds.task, n_classes),
                      seeds=range(args.seed, args.seed + args.seeds), lrs=lrs,
                      shared_order=not args.per_model_order, devices=args.devices)
    test = evaluate_many(result, split.X_test, split.y_test, ds.task)
    train = evaluate_many(result, split.X_train, split.y_train, ds.task)
    by_lr = [{"lr": lr, "test": mean_std([t for t, m in zip(test, result.lrs, strict=True) if m == lr])}
             for lr in lrs]
    metric = "accuracy" if ds.task == "classification" else "rmse"
    if args.out is not None:
        spread_figure(result.lrs, [t[metric] for t in test], metric=metric,
                      path=args.out / "sweep_spread.png")
    seconds = {**result.seconds, "total": time.perf_counter() - t0}
    report = {
        "dataset": ds.name, "model": model_name(config), "task": ds.task,
        "n_models": result.n_models, "steps": result.steps, "shared_order": result.shared_order,
        "devices": args.devices or 1,
        "models": [{"seed": int(s), "lr": float(lr), "l2": float(l2), "diverged_step": int(dv),
                    "test": te, "train": tr}
                   for s, lr, l2, dv, te, tr in zip(result.seeds, result.lrs, result.l2s,
                                                    result.diverged_step, test, train, strict=True)],
        "test": mean_std(test), "train": mean_std(train), "by_lr": by_lr,
        "seconds": seconds, "config": dataclasses.asdict(config),
    }
    if args.json:
        print(json.dumps(report))
        return EXIT_OK
    print(f"jaxnn sweep: {report['model']} on {ds.name} ({ds.task}), {result.n_models} models "
          f"({args.seeds} seeds x {len(lrs)} learning rates), {result.steps} steps each")
    print(f"  compile {seconds['compile']:.2f} s, train {seconds['train']:.2f} s "
          f"({result.n_models * result.steps / max(seconds['train'], 1e-9):.3g} model-steps/s)")
    for row in by_lr:
        stats = "  ".join(f"{k}={v['mean']:.4f}±{v['std']:.4f}" for k, v in row["test"].items())
        print(f"  lr={row['lr']:<8g} test {stats}")
    n_div = int((result.diverged_step >= 0).sum())
    if n_div:
        print(f"  {n_div} model(s) diverged and kept their last finite parameters")
    return EXIT_OK
