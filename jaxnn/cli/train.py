"""``jaxnn train``: train a linear model or MLP on a dataset and report its metrics."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jaxnn.errors import EXIT_OK


def _hidden(text: str) -> list[int]:
    """``--hidden 13`` or ``--hidden 64,32``."""
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected positive integers like 13 or 64,32, got {text!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return v


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default="diabetes", metavar="{diabetes,digits,boston,PATH.csv}",
                   help="dataset name or CSV path (default: diabetes)")
    g.add_argument("--target", default=None, metavar="COL",
                   help="target column of a CSV (default: its last column)")
    g.add_argument("--task", choices=("regression", "classification"), default=None,
                   help="task of a CSV target (default: regression)")
    g.add_argument("--test-size", type=_fraction, default=0.3, help="test fraction (default 0.3)")
    g.add_argument("--split-seed", type=int, default=80718,
                   help="random_state of train_test_split (default 80718, the seed's)")
    g.add_argument("--scale-before-split", action="store_true",
                   help="standardise all rows before splitting, as the seed does "
                        "(default: fit the scaler on the training split)")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--model", choices=("linear", "mlp"), default="mlp")
    g.add_argument("--hidden", type=_hidden, action="append", default=None, metavar="N",
                   help="hidden layer sizes, repeatable or comma list (default 13)")
    g.add_argument("--activation", choices=("sigmoid", "tanh", "relu", "leaky_relu"),
                   default="sigmoid")
    g.add_argument("--loss", choices=("mse", "cross_entropy"), default=None,
                   help="default: mse for regression, cross_entropy for classification")
    g.add_argument("--reduction", choices=("mean", "sum", "half_sum"), default="mean",
                   help="squared-error reduction; sum/half_sum reproduce the seed's updates")
    g.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="adam")
    g.add_argument("--lr", type=_positive_float, default=0.01, help="learning rate (default 0.01)")
    g.add_argument("--schedule", choices=("constant", "cosine", "exponential"), default="constant")
    g.add_argument("--l2", type=float, default=0.0, help="L2 penalty coefficient (default 0)")
    g.add_argument("--init", choices=("normal", "glorot", "he"), default="glorot",
                   help="weight init; 'normal' is the seed's standard normal (default glorot)")
    g.add_argument("--batch-size", type=_positive_int, default=32)
    n = g.add_mutually_exclusive_group()
    n.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default 200)")
    n.add_argument("--steps", type=_positive_int, default=None, help="optimizer steps")
    g.add_argument("--patience", type=_positive_int, default=None,
                   help="early stopping patience in epochs (default: off)")
    g.add_argument("--gradients", choices=("manual", "autodiff"), default="manual",
                   help="hand-written backprop or jax.grad (default manual)")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a linear model or MLP and report test metrics",
        description="Train with one compiled lax.scan and report train/test metrics.",
    )
    add_data_arguments(p)
    add_model_arguments(p)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def config_from_args(args: argparse.Namespace, task: str) -> Any:
    """A :class:`~jaxnn.training.TrainConfig` from parsed flags."""
    from jaxnn.experiment import default_loss
    from jaxnn.training import TrainConfig

    if args.model == "linear":
        if args.hidden:
            raise ValueError("--hidden: a linear model has no hidden layers")
        hidden: tuple[int, ...] = ()
    else:
        hidden = tuple(h for group in (args.hidden or [[13]]) for h in group)
    loss = args.loss or default_loss(task)
    if task == "classification" and loss != "cross_entropy":
        raise ValueError(f"--loss: classification needs cross_entropy, got {loss}")
    if task == "regression" and loss != "mse":
        raise ValueError(f"--loss: regression needs mse, got {loss}")
    epochs = args.epochs if (args.epochs or args.steps) else 200
    return TrainConfig(
        hidden=hidden, activation=args.activation, loss=loss, reduction=args.reduction,
        optimizer=args.optimizer, lr=args.lr, schedule=args.schedule, l2=args.l2,
        batch_size=args.batch_size, epochs=epochs, steps=args.steps,
        gradients=args.gradients, dtype=args.dtype, seed=args.seed, init=args.init,
        patience=args.patience,
    )


def load_split(args: argparse.Namespace) -> Any:
    from jaxnn.datasets import load_dataset, split_dataset

    ds = load_dataset(args.data, args.target, task=args.task)
    return split_dataset(ds, test_size=args.test_size, random_state=args.split_seed,
                         scale_before_split=args.scale_before_split)


def format_summary(report: Any) -> str:
    """A readable multi-line summary of a :class:`~jaxnn.experiment.Report`."""
    r = report.as_json()
    lines = [
        f"jaxnn train: {r['model']} on {r['dataset']} ({r['task']}), "
        f"{r['steps']} steps / {r['epochs']} epochs, gradients={report.config.gradients}, "
        f"{report.config.optimizer} lr={report.config.lr:g}, {report.config.dtype}",
        f"  compile {r['seconds']['compile']:.2f} s, train {r['seconds']['train']:.2f} s"
        + ("  (stopped early)" if r["stopped_early"] else ""),
    ]
    for part in ("train", "test"):
        vals = "  ".join(f"{k}={v:.4f}" for k, v in r[part].items())
        lines.append(f"  {part:<5} {vals}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from jaxnn.experiment import run as run_experiment

    split = load_split(args)
    config = config_from_args(args, split.dataset.task)
    report = run_experiment(config, split)
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print(format_summary(report))
    return EXIT_OK
