"""``jaxnn train``: train a linear model or MLP on a dataset and report its metrics."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from jaxnn import names
from jaxnn.cli import interrupt
from jaxnn.errors import EXIT_OK, InputError

#: Ctrl-C sets a flag (jaxnn.cli.interrupt) that ``run`` checks between start-up phases and after
#: every compiled chunk: the run ends with exit 130 and the last completed chunk saved (--save).
DEFERS_SIGINT = True

#: The default network of ``jaxnn train`` and ``jaxnn sweep``: scikit-learn's ``MLPRegressor()`` /
#: ``MLPClassifier()`` with jaxnn's minibatches of 32 (why, and the scores measured against
#: scikit-learn: ``docs/how-to/cli.md``, "Defaults").
DEFAULT_HIDDEN: tuple[int, ...] = (100,)
DEFAULT_ACTIVATION = "relu"
DEFAULT_LR = 1e-3
DEFAULT_BATCH_SIZE = 32
DEFAULT_EPOCHS = 200


def _hidden(text: str) -> list[int]:
    """``--hidden 100`` or ``--hidden 64,32``."""
    try:
        sizes = [_positive_int(s) for s in text.split(",") if s.strip()]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected positive integers up to {INT32_MAX} like 100 or 64,32, got {text!r}") from None
    if not sizes:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive integers, got {text!r}")
    return sizes


#: Counts (steps, epochs, sizes) live in int32 on the device; seeds are 32-bit (a larger seed
#: would silently collide with a smaller one).
INT32_MAX = 2**31 - 1
SEED_MAX = 2**32 - 1


def _checked(parse: Callable[[str], Any], what: str, check: Callable[[str, Any], Any]) -> Any:
    """An argparse type: the text parsed by ``parse`` (else "expected ``what``"), then refused or
    kept by the library's check of that kind of argument (:mod:`jaxnn.names`), whose message
    argparse prints after the flag's name."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        try:
            check("", value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(": ")) from None
        return value

    return convert


def _int_in(lo: int, hi: int) -> Any:
    """An argparse type: an integer in [lo, hi] (a seed, a process index)."""

    def check(name: str, value: int) -> None:
        if not lo <= value <= hi:
            raise InputError(f"{name}: expected an integer in [{lo}, {hi}], got {value!r}")

    return _checked(int, f"an integer in [{lo}, {hi}]", check)


_positive_int = _checked(int, "a positive integer", names.positive_int)
_positive_float = _checked(float, "a number", functools.partial(names.finite_float, positive=True))
_fraction = _checked(float, "a number strictly between 0 and 1", names.fraction)
_seed = _int_in(0, SEED_MAX)


def _delimiter(text: str) -> str:
    """``--delimiter ';'``; ``tab`` or ``\\t`` for a tab."""
    c = {"tab": "\t", "\\t": "\t"}.get(text, text)
    if len(c) != 1 or c in "\"\r\n":
        raise argparse.ArgumentTypeError(f"expected one character (or 'tab'), got {text!r}")
    return c


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default="diabetes", metavar="{diabetes,digits,boston,PATH.csv}",
                   help="dataset name or CSV path (default: diabetes)")
    g.add_argument("--target", default=None, metavar="COL",
                   help="target column of a CSV (default: its last column)")
    g.add_argument("--task", choices=("regression", "classification"), default=None,
                   help="task of a CSV target (default: regression); classification takes numbers "
                        "or strings as class labels")
    c = p.add_argument_group("CSV files")
    c.add_argument("--no-header", action="store_true",
                   help="the CSV has no header row: every row is data, the columns are x0, x1, ... "
                        "(--target then takes a name or a 0-based index; default: the last column)")
    c.add_argument("--delimiter", type=_delimiter, default=",", metavar="C",
                   help="field separator, one character or 'tab' (default ',')")
    c.add_argument("--drop", action="append", default=None, metavar="COL",
                   help="leave column COL out (an id, a text column); repeatable")
    c.add_argument("--one-hot", action="append", default=None, metavar="COL",
                   help="expand categorical column COL into 0/1 features COL=value; repeatable")
    c.add_argument("--drop-missing", action="store_true",
                   help="drop rows with a missing value (empty, NA, N/A, NaN, null, None) in a used "
                        "column (default: refuse the file and say how many there are)")
    g.add_argument("--test-size", type=_fraction, default=0.3, help="test fraction (default 0.3)")
    g.add_argument("--split-seed", type=_seed, default=80718,
                   help="random_state of train_test_split (default 80718, the seed's)")
    g.add_argument("--validation-fraction", type=_fraction, default=None, metavar="F",
                   help="fraction of the training rows held out for early stopping and the "
                        "validation loss curve (default: 0.1 with --patience, else none); "
                        "the test rows are only evaluated once, at the end")
    g.add_argument("--scale-before-split", action="store_true",
                   help="standardise all rows before splitting, as the seed does "
                        "(default: fit the scaler on the training split)")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument("--model", choices=("linear", "mlp"), default="mlp")
    g.add_argument("--hidden", type=_hidden, action="append", default=None, metavar="N",
                   help="hidden layer sizes, repeatable or comma list (default "
                        f"{','.join(map(str, DEFAULT_HIDDEN))}; the seed's network: 13 with "
                        "--activation sigmoid)")
    g.add_argument("--activation", choices=names.ACTIVATIONS, default=DEFAULT_ACTIVATION,
                   help=f"hidden activation (default {DEFAULT_ACTIVATION})")
    g.add_argument("--loss", choices=names.LOSSES, default=None,
                   help="default: mse for regression, cross_entropy for classification")
    g.add_argument("--reduction", choices=names.REDUCTIONS, default="mean",
                   help="squared-error reduction; sum/half_sum reproduce the seed's updates")
    g.add_argument("--optimizer", choices=names.OPTIMIZERS, default="adam", help="(default adam)")
    g.add_argument("--lr", type=_positive_float, default=DEFAULT_LR,
                   help=f"learning rate (default {DEFAULT_LR:g})")
    g.add_argument("--schedule", choices=names.SCHEDULES, default="constant")
    g.add_argument("--l2", type=float, default=0.0, help="L2 penalty coefficient (default 0)")
    g.add_argument("--init", choices=names.INITS, default="glorot",
                   help="weight init; 'normal' is the seed's standard normal (default glorot)")
    g.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE,
                   help=f"minibatch size, capped at the training rows (default {DEFAULT_BATCH_SIZE})")
    n = g.add_mutually_exclusive_group()
    n.add_argument("--epochs", type=_positive_int, default=None, help=f"epochs (default {DEFAULT_EPOCHS})")
    n.add_argument("--steps", type=_positive_int, default=None, help="optimizer steps")
    g.add_argument("--patience", type=_positive_int, default=None,
                   help="early stopping patience in epochs (default: off)")
    g.add_argument("--gradients", choices=names.GRADIENTS, default="manual",
                   help="hand-written backprop or jax.grad (default manual)")
    g.add_argument("--dtype", choices=names.DTYPES, default="float32")
    g.add_argument("--seed", type=_seed, default=0,
                   help=f"seed of initialisation and shuffling, 0..{SEED_MAX} (default 0)")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a linear model or MLP and report test metrics",
        description="Train with one compiled lax.scan and report train/test metrics.",
    )
    add_data_arguments(p)
    add_model_arguments(p)
    p.add_argument("--target-scaling", choices=("auto", "standard", "none"), default="auto",
                   help="regression targets: 'standard' trains on standardised targets and maps "
                        "predictions back (the network learns numbers of order 1 whatever the "
                        "units); 'none' trains on the raw targets, as the seed does; 'auto' "
                        "(default): standard, except with --scale-before-split (the seed's recipe). "
                        "A resumed run keeps its checkpoint's")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    out.add_argument("--quiet", action="store_true",
                     help="no progress bar (shown only on a terminal anyway; JAXNN_PROGRESS=1 forces it)")
    add_output_arguments(out)  # checkpoints, figures, JSON-lines log (section at the end)
    add_distributed_arguments(p)
    return p


# --- data parallelism (jaxnn.distributed) ---
def add_distributed_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "devices and processes",
        "data parallelism: each minibatch is split over the devices, parameters are replicated "
        "(see the docs, 'Several devices and processes')")
    g.add_argument("--devices", type=_positive_int, default=None, metavar="N",
                   help="train on the first N devices (all processes' devices together); "
                        "--batch-size must divide by N (default: 1, or all in a multi-process run)")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="process 0's address; every process passes the same one "
                        "(default: $JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--num-processes", type=_positive_int, default=None, metavar="P",
                   help="number of processes (default: $JAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=_int_in(0, INT32_MAX), default=None, metavar="I",
                   help="this process's index in [0, P) (default: $JAX_PROCESS_ID)")
# --- end data parallelism ---


def config_from_args(args: argparse.Namespace, task: str) -> Any:
    """A :class:`~jaxnn.training.TrainConfig` from parsed flags."""
    from jaxnn.training import TrainConfig

    loss = check_model_flags(args, task)
    hidden = () if args.model == "linear" else tuple(
        h for group in (args.hidden or [DEFAULT_HIDDEN]) for h in group)
    epochs = args.epochs if (args.epochs or args.steps) else DEFAULT_EPOCHS
    return TrainConfig(
        hidden=hidden, activation=args.activation, loss=loss, reduction=args.reduction,
        optimizer=args.optimizer, lr=args.lr, schedule=args.schedule, l2=args.l2,
        batch_size=args.batch_size, epochs=epochs, steps=args.steps,
        gradients=args.gradients, dtype=args.dtype, seed=args.seed, init=args.init,
        patience=args.patience,
    )


def check_model_flags(args: argparse.Namespace, task: str) -> str:
    """Refuse model flags that contradict each other or the task (no JAX needed); returns the loss."""
    if args.model == "linear" and args.hidden:
        raise InputError("--hidden: a linear model has no hidden layers")
    loss = args.loss or names.task_loss(task)
    if loss != names.task_loss(task):
        raise InputError(f"--loss: {task} needs {names.task_loss(task)}, got {loss}")
    return loss


def load_split(args: argparse.Namespace) -> Any:
    from jaxnn.cli.userinput import DATA_FLAGS, SPLIT_FLAGS, csv_options, flag_names
    from jaxnn.datasets import load_dataset, split_dataset
    from jaxnn.experiment import DEFAULT_VALIDATION_FRACTION

    with flag_names(DATA_FLAGS, "--data"):  # the library's "path:", "target:" are --data, --target here
        ds = load_dataset(args.data, args.target, task=args.task, options=csv_options(args))
    fraction = args.validation_fraction
    if fraction is None and args.patience is not None:
        fraction = DEFAULT_VALIDATION_FRACTION
    with flag_names(SPLIT_FLAGS):
        return split_dataset(ds, test_size=args.test_size, random_state=args.split_seed,
                             scale_before_split=args.scale_before_split, validation_fraction=fraction)


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


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before training, not after it."""
    from jaxnn.cli.userinput import check_out_dir
    from jaxnn.files import refuse_special_target

    if args.checkpoint_every is not None and args.save is None:
        raise InputError("--checkpoint-every: needs --save FILE to write the checkpoints to")
    for flag, path in (("--save", args.save), ("--log-jsonl", args.log_jsonl)):
        if path is not None and (os.path.isdir(path) or not os.path.isdir(os.path.dirname(path) or ".")):
            raise InputError(f"{flag}: cannot write {path!r} (a directory, or its directory is missing)")
    if args.save is not None:  # a FIFO or device would be replaced by the checkpoint: refuse it
        refuse_special_target(args.save, "--save")
    check_out_dir(args.out)


def preflight(args: argparse.Namespace) -> None:
    """The checks of ``jaxnn train`` that need no JAX, run by the CLI before :func:`run`: output
    paths, ``--data`` (a CSV's header and the columns the flags name) and the model flags."""
    from jaxnn.cli.userinput import check_data, is_csv
    from jaxnn.files import check_regular_file

    check_outputs(args)
    if args.resume is not None:  # the data and model flags come from the checkpoint: checked in run
        check_regular_file(args.resume, "--resume")
        if is_csv(args.data):
            check_regular_file(args.data, "--data")
        return
    check_model_flags(args, check_data(args))


def run(args: argparse.Namespace) -> int:
    from jaxnn import distributed
    from jaxnn.experiment import run as run_experiment

    # Joining the other processes must come before anything touches JAX devices.
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    interrupt.check()
    devices = args.devices if args.devices is not None else distributed.default_devices()
    outputs = TrainOutputs(args)  # --resume fills the data/model flags from the checkpoint
    interrupt.check()
    split = load_split(args)
    interrupt.check()
    config = outputs.resolve(config_from_args(args, split.dataset.task), split)
    with outputs:  # saves a checkpoint on Ctrl-C and divergence, then re-raises
        interrupt.check()
        with progress_bar(args, config, split) as bar:  # closed before anything is printed
            report = run_experiment(config, split, devices=devices,
                                    **with_progress(outputs.fit_kwargs(), bar))
        interrupt.check()  # a Ctrl-C during the last chunk or the evaluation: the last chunk is saved
        outputs.finish(report)
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print(format_summary(report))
    return EXIT_OK


# --- progress bar (jaxnn.progress) ---
def progress_bar(args: argparse.Namespace, config: Any, split: Any) -> Any:
    """A :class:`~jaxnn.progress.ProgressBar` on stderr: off with --quiet, off on processes other
    than the first, else shown when stderr is a terminal (or JAXNN_PROGRESS=1)."""
    from jaxnn.distributed import is_primary
    from jaxnn.progress import ProgressBar
    from jaxnn.training import total_steps

    enable = False if args.quiet or not is_primary() else None
    return ProgressBar(total_steps(config, len(split.X_train)), enable=enable, desc="jaxnn train")


def with_progress(fit_kwargs: dict[str, Any], bar: Any) -> dict[str, Any]:
    """``fit_kwargs`` whose ``callback`` also updates ``bar`` after every compiled chunk."""
    inner = fit_kwargs.get("callback")

    def callback(info: Any) -> None:
        if inner is not None:
            inner(info)
        bar.update(info)
        interrupt.check()  # between chunks: the one just completed is recorded, stop here

    return {**fit_kwargs, "callback": callback}
# --- end progress bar ---


# --- checkpoints, resume, figures, JSON-lines log (jaxnn.checkpoint, jaxnn.plotting, jaxnn.runlog) ---
# The resume contract and where checkpoints land: docs/how-to/save-resume-predict.md.


def add_output_arguments(out: Any) -> None:
    out.add_argument("--save", default=None, metavar="FILE",
                     help="write a checkpoint (.npz) at the end, on Ctrl-C and on divergence")
    out.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="N",
                     help="also checkpoint to --save FILE every N steps, rounded up to whole epochs")
    out.add_argument("--resume", default=None, metavar="FILE",
                     help="continue the run saved in FILE to the total --epochs/--steps "
                          "(bit-identical to an uninterrupted run)")
    out.add_argument("--out", default=None, metavar="DIR", help="write PNG figures into DIR")
    out.add_argument("--log-jsonl", default=None, metavar="FILE",
                     help="write one JSON line per compiled chunk and a summary line")


def _flag_defaults() -> dict[str, Any]:
    """Defaults of the data and model flags (the ones a checkpoint records)."""
    p = argparse.ArgumentParser(add_help=False)
    add_data_arguments(p)
    add_model_arguments(p)
    return vars(p.parse_args([]))


class TrainOutputs:
    """What ``jaxnn train`` writes besides its report, and resuming from a checkpoint."""

    def __init__(self, args: argparse.Namespace) -> None:
        from jaxnn import checkpoint
        from jaxnn.cli.userinput import flag_names

        self.args = args  # its output paths were checked by preflight, before the slow imports
        self.resumed: Any = None
        if args.resume is not None:
            with flag_names({"model file": "--resume"}, "--resume"):
                self.resumed = checkpoint.load(args.resume)
        if self.resumed is not None:
            self._apply_resume_flags()
        self._cli = {k: getattr(args, k) for k in _flag_defaults()}  # what the checkpoint records
        self.split: Any = None
        self.target_scaler: Any = None
        self.config: Any = None
        self.log: Any = None
        self.last_state: Any = None
        self.train_hist: list[Any] = []
        self.val_hist: list[Any] = []

    def _apply_resume_flags(self) -> None:
        ck: Any = self.resumed
        args = self.args
        stored = ck.extra.get("cli_args", {})
        for dest, default in _flag_defaults().items():
            if dest in ("epochs", "steps") or dest not in stored:
                continue
            given = getattr(args, dest)
            if given != default and given != stored[dest]:
                raise InputError(f"--{dest.replace('_', '-')}: {args.resume!r} was trained with "
                                 f"{stored[dest]!r}, got {given!r}; leave the flag out to resume")
            setattr(args, dest, stored[dest])
        if args.hidden is None and ck.config.hidden:  # saved with the default of its day (13 before
            args.hidden = [list(ck.config.hidden)]    # 100): the checkpoint's network, not today's
        if args.epochs is None and args.steps is None:
            args.epochs, args.steps = ck.config.epochs, ck.config.steps

    def resolve(self, config: Any, split: Any) -> Any:
        """The config to train: chunks aligned with checkpoints; on resume, checked."""
        from jaxnn.plan import epochs_per_call
        from jaxnn.training import steps_per_epoch, total_epochs

        self.split = split
        self.target_scaler = self._target_scaler(split)
        spe = steps_per_epoch(split.X_train.shape[0], config.batch_size)
        if self.args.checkpoint_every is not None:
            config = dataclasses.replace(config, chunk_epochs=math.ceil(self.args.checkpoint_every / spe))
        elif self.resumed is not None:
            config = dataclasses.replace(config, chunk_epochs=self.resumed.config.chunk_epochs)
        elif self.args.save is not None:  # pin the chunking so a resume compiles the same program
            config = dataclasses.replace(
                config, chunk_epochs=epochs_per_call(total_epochs(config, split.X_train.shape[0]), calls=20))
        if self.resumed is not None:
            self._check_resume(config, split)
            self.train_hist = [self.resumed.history.train_loss]
            self.val_hist = [self.resumed.history.val_loss]
        self.config = config
        return config

    def _target_scaler(self, split: Any) -> Any:
        """The standardisation regression targets train in (--target-scaling), or None.

        A resumed run keeps its checkpoint's, so it trains in the numbers it started in."""
        from jaxnn.datasets import Scaler
        from jaxnn.experiment import targets

        if self.resumed is not None:
            return self.resumed.target_scaler
        mode = self.args.target_scaling
        if split.dataset.task != "regression" or mode == "none" or (
                mode == "auto" and self.args.scale_before_split):
            return None
        return Scaler.fit(targets(split.y_train, "regression", None))

    def _check_resume(self, config: Any, split: Any) -> None:
        ck: Any = self.resumed
        where = repr(self.args.resume)
        a, b = dataclasses.asdict(config), dataclasses.asdict(ck.config)
        diff = [f"{f}={b[f]!r} (flags: {a[f]!r})" for f in a
                if a[f] != b[f] and f not in ("epochs", "steps", "chunk_epochs")]
        if diff:
            raise InputError(f"--resume: {where} was trained with {', '.join(diff)}")
        names = ck.dataset.get("feature_names")
        if names is not None and list(names) != list(split.dataset.feature_names):
            raise InputError(f"--resume: {where} was trained on features {names}, the data has "
                             f"{list(split.dataset.feature_names)}")
        if ck.state.diverged_step >= 0:
            raise InputError(f"--resume: {where} holds the last finite parameters of a run that "
                             f"diverged at step {int(ck.state.diverged_step)}; retrain with a smaller --lr")
        from jaxnn.training import steps_per_epoch, total_epochs

        done_epochs = int(ck.state.step) // steps_per_epoch(split.X_train.shape[0], config.batch_size)
        if done_epochs > total_epochs(config, split.X_train.shape[0]):
            raise InputError(f"--epochs/--steps: {where} is already at epoch {done_epochs}, "
                             "past the requested total")

    def fit_kwargs(self) -> dict[str, Any]:
        """``state=`` (on resume) and ``callback=`` for :func:`jaxnn.experiment.run`."""
        from jaxnn.distributed import is_primary
        from jaxnn.runlog import RunLog

        if self.args.log_jsonl is not None and is_primary():  # one writer in multi-process runs
            self.log = RunLog(self.args.log_jsonl)
        scale = self.target_scaler if self.target_scaler is not None else False
        kw: dict[str, Any] = {"callback": self._on_chunk, "scale_targets": scale}
        if self.resumed is not None:
            kw["state"] = self.resumed.state
        return kw

    def _on_chunk(self, info: Any) -> None:
        self.last_state = info.state
        self.train_hist.append(info.train_loss)
        self.val_hist.append(info.val_loss)
        if self.log is not None:
            self.log(info)
        if self.args.checkpoint_every is not None:
            self._save(info.state, self._history())

    def _history(self, result: Any = None) -> Any:
        import numpy as np

        from jaxnn.training import History

        if result is not None:  # this run's history (the result's), after the resumed one's
            before = slice(0, 1 if self.resumed is not None else 0)
            tl = [*self.train_hist[before], result.history.train_loss]
            vl = [*self.val_hist[before], result.history.val_loss]
        else:
            tl, vl = self.train_hist, self.val_hist
        return History(train_loss=np.concatenate([np.asarray(x, np.float64) for x in tl] or [np.zeros(0)]),
                       val_loss=np.concatenate([np.asarray(x, np.float64) for x in vl] or [np.zeros(0)]))

    def _save(self, state: Any, history: Any) -> None:
        import jax

        from jaxnn import checkpoint

        if self.args.save is None or jax.process_index() != 0:  # one writer in multi-process runs
            return
        # (a Ctrl-C meanwhile only sets jaxnn.cli.interrupt's flag: the file is written whole)
        checkpoint.save(self.args.save, state, self.config, scaler=self.split.scaler,
                        dataset=checkpoint.dataset_info(self.split.dataset), history=history,
                        extra={"cli_args": self._cli}, target_scaler=self.target_scaler)

    def finish(self, report: Any) -> None:
        """After a completed run: full history into the report, final checkpoint, figures, log."""
        report.fit.history = self._history(report.fit)
        self._save(report.fit.state, report.fit.history)
        from jaxnn.distributed import is_primary

        if self.args.out is not None and is_primary():  # one writer in multi-process runs
            from jaxnn.plotting import save_training_figures

            save_training_figures(report, self.split, self.args.out)
        if self.log is not None:
            r = report.as_json()
            self.log.summary(status="ok", step=r["steps"], epoch=r["epochs"], test=r["test"],
                             train=r["train"], seconds=r["seconds"])

    def __enter__(self) -> TrainOutputs:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from jaxnn.errors import DivergedError
        from jaxnn.training import TrainingInterrupted

        try:
            if isinstance(exc, KeyboardInterrupt):
                # The last state a callback saw is consistent with the history it saw.
                state = self.last_state
                if state is None and isinstance(exc, TrainingInterrupted):
                    state = exc.result.state
                if state is None and self.resumed is not None:
                    state = self.resumed.state
                if state is None:  # stopped before the first chunk completed: nothing to save
                    self._note_stop("interrupted", 0, saved=False)
                else:
                    self._save(state, self._history())
                    self._note_stop("interrupted", int(state.step))
            elif isinstance(exc, DivergedError) and exc.result is not None:
                result: Any = exc.result
                self._save(result.state, self._history(result))
                self._note_stop("diverged", int(result.state.step))
        finally:
            if self.log is not None:
                self.log.close()

    def _note_stop(self, status: str, step: int, *, saved: bool = True) -> None:
        if self.log is not None:
            self.log.summary(status=status, step=step)
        if self.args.save is not None and not saved:
            print(f"jaxnn train: {status} before the first chunk completed: no checkpoint written",
                  file=sys.stderr)
        elif self.args.save is not None:
            hint = f"; continue with --resume {self.args.save}" if status == "interrupted" else ""
            print(f"jaxnn train: {status} at step {step}: checkpoint saved to {self.args.save}{hint}",
                  file=sys.stderr)
# --- end checkpoints, resume, figures, JSON-lines log ---
