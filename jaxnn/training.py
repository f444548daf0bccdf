"""Training as one compiled program: ``lax.scan`` over minibatches inside ``lax.scan`` over epochs.

The structure (see :func:`fit`):

* the training data lives on the device; each epoch draws a permutation with
  ``jax.random.permutation(fold_in(key, epoch), n)`` -- no host shuffling -- computed by
  :func:`jaxnn.shuffle.permutation` (the same result, cheaper sorts), for all epochs of a
  chunk at once before its scan;
* every epoch has ``ceil(n / batch_size)`` minibatches of the *same* shape. The
  last one is padded with weight-0 rows, so it is the mean over its real
  examples, and nothing is ever recompiled. (The seed's loop instead sets
  ``batch_size = n - start`` for the short batch and never restores it, so every
  later step of its training uses that small batch.)
* one jitted ``run_chunk`` runs ``chunk_epochs`` epochs; :func:`fit` calls it
  once per chunk (it is compiled once). Between chunks the host updates progress
  bars, writes checkpoints, notices Ctrl-C and divergence -- the scan itself
  never calls back to the host.

Per-step training losses and per-epoch validation losses come back as the
history. Early stopping (``patience``) restores the best parameters. A step
whose loss or new parameters are not finite is *not* applied: the state keeps
the last finite parameters and training stops (``DivergedError``).

Checking every new parameter at every step is a pass over all weights, 5-12% of a
784-512-512-10 step. So the chunk first runs with the loss checked per step and the
parameters checked once, at its end (:func:`finite_and_not_diverged`): a non-finite parameter stays
non-finite under every later update, so finite parameters at the end mean every step of the
chunk passed the full check. Only a chunk that diverged, or ended with a non-finite parameter,
runs again from its first state with the full per-step check (compiled then, once), so its
result is exactly what checking every step gives.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from jaxnn import distributed, models, xla_cpu
from jaxnn.errors import DivergedError
from jaxnn.losses import REDUCTIONS
from jaxnn.shuffle import permutation as _permutation

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "cosine", "exponential")
LOSS_NAMES = ("mse", "cross_entropy")
DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (JSON-friendly; saved in checkpoints).

    Attributes:
        hidden: hidden layer widths; ``()`` is linear regression.
        activation: hidden activation, one of ``models.ACTIVATIONS``.
        loss: ``"mse"`` or ``"cross_entropy"`` (targets one-hot).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"half_sum"``; see
            :mod:`jaxnn.losses` -- the seed's updates use "sum" (linear) and
            "half_sum" (network).
        optimizer: ``"sgd"`` (the seed's ``W -= lr * grad``), ``"momentum"``, ``"nesterov"``, ``"adam"``.
        lr: learning rate (> 0).
        momentum: momentum for ``"momentum"``.
        schedule: learning-rate schedule: ``"constant"``, ``"cosine"`` (decay to 0
            over the run) or ``"exponential"`` (times ``decay_rate`` per epoch).
        decay_rate: per-epoch factor of the exponential schedule.
        l2: L2 penalty coefficient: loss += l2 * 0.5 * sum ||W||^2.
        batch_size: minibatch size (>= 1); capped at the number of samples.
        epochs: number of epochs, or
        steps: number of optimizer steps (exactly one of the two).
        gradients: ``"manual"`` (hand-written backprop) or ``"autodiff"`` (jax.grad).
        dtype: ``"float32"`` (default) or ``"float64"``.
        seed: seeds initialisation and shuffling.
        init: ``"normal"`` (the seed's), ``"glorot"`` or ``"he"``.
        shuffle: reshuffle every epoch (else fixed data order).
        patience: early stopping after this many epochs without improving the
            validation loss by more than ``tol`` (None: off).
        tol: minimum improvement for early stopping.
        chunk_epochs: epochs per compiled call (None: chosen so there are about 20 chunks).
    """

    hidden: tuple[int, ...] = (13,)
    activation: str = "sigmoid"
    loss: str = "mse"
    reduction: str = "mean"
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    schedule: str = "constant"
    decay_rate: float = 0.99
    l2: float = 0.0
    batch_size: int = 32
    epochs: int | None = None
    steps: int | None = None
    gradients: str = "manual"
    dtype: str = "float32"
    seed: int = 0
    init: str = "normal"
    shuffle: bool = True
    patience: int | None = None
    tol: float = 0.0
    chunk_epochs: int | None = None

    def __post_init__(self) -> None:
        validate_config(self)


def _choice(name: str, value: Any, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ValueError(f"{name}: expected one of {list(valid)}, got {value!r}")


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _finite_float(name: str, value: Any, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0) or (not positive and value < 0):
        kind = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}: expected a finite number {kind}, got {value!r}")


def validate_config(c: TrainConfig) -> None:
    """Raise ``ValueError``/``TypeError`` naming the first bad field of ``c``."""
    if not isinstance(c.hidden, tuple):
        raise TypeError(f"hidden: expected a tuple of positive integers, got {c.hidden!r}")
    for h in c.hidden:
        _positive_int("hidden", h)
    _choice("activation", c.activation, models.ACTIVATIONS)
    _choice("loss", c.loss, LOSS_NAMES)
    _choice("reduction", c.reduction, REDUCTIONS)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("schedule", c.schedule, SCHEDULES)
    _choice("gradients", c.gradients, models.GRADIENTS)
    _choice("dtype", c.dtype, DTYPES)
    _choice("init", c.init, models.INITS)
    _finite_float("lr", c.lr, positive=True)
    _finite_float("momentum", c.momentum)
    _finite_float("decay_rate", c.decay_rate, positive=True)
    _finite_float("l2", c.l2)
    _finite_float("tol", c.tol)
    _positive_int("batch_size", c.batch_size)
    _positive_int("patience", c.patience, allow_none=True)
    _positive_int("chunk_epochs", c.chunk_epochs, allow_none=True)
    if isinstance(c.seed, bool) or not isinstance(c.seed, int | np.integer):
        raise TypeError(f"seed: expected an integer, got {c.seed!r}")
    if (c.epochs is None) == (c.steps is None):
        raise ValueError(
            f"epochs/steps: give exactly one of them, got epochs={c.epochs!r}, steps={c.steps!r}"
        )
    _positive_int("epochs", c.epochs, allow_none=True)
    _positive_int("steps", c.steps, allow_none=True)


class TrainState(NamedTuple):
    """Everything the scan carries; a checkpoint of it resumes training exactly.

    Attributes:
        params: the model parameters (layer list).
        opt_state: optax state.
        key: typed PRNG key for shuffling (fixed; epoch e uses fold_in(key, e)).
        step: optimizer steps applied so far (int32 scalar).
        epoch: epochs completed so far (int32 scalar).
        best_params: parameters at the best monitored loss (early stopping).
        best_loss: best monitored loss so far (inf at the start).
        bad_epochs: epochs since the best loss improved.
        stopped: early stopping or divergence has stopped training.
        diverged_step: the step whose loss or update was not finite, or -1.
    """

    params: Any
    opt_state: Any
    key: Array
    step: Array
    epoch: Array
    best_params: Any
    best_loss: Array
    bad_epochs: Array
    stopped: Array
    diverged_step: Array


@dataclasses.dataclass
class History:
    """train_loss: (steps,) minibatch loss of every step; val_loss: (epochs,) or empty."""

    train_loss: np.ndarray
    val_loss: np.ndarray


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: final parameters (the best ones when early stopping is on).
        state: the final :class:`TrainState` (pass it back to ``fit`` to resume).
        history: per-step training and per-epoch validation losses.
        steps: optimizer steps applied; epochs: epochs run.
        seconds: ``{"compile": ..., "train": ...}``; train excludes compilation.
        stopped_early: early stopping ended the run.
        diverged_step: the step whose loss was not finite, else None.
        config: the :class:`TrainConfig`.
    """

    params: Any
    state: TrainState
    history: History
    steps: int
    epochs: int
    seconds: dict[str, float]
    stopped_early: bool
    diverged_step: int | None
    config: TrainConfig


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`; ``.result`` holds the state at the last completed chunk."""

    def __init__(self, result: FitResult) -> None:
        super().__init__("training interrupted")
        self.result = result


@dataclasses.dataclass(frozen=True)
class ChunkInfo:
    """Passed to ``fit(callback=...)`` after every compiled chunk."""

    steps_done: int
    total_steps: int
    epochs_done: int
    train_loss: np.ndarray  # this chunk's per-step losses
    val_loss: np.ndarray  # this chunk's per-epoch validation losses
    state: TrainState


# --- Pieces of the step ---------------------------------------------------------------------


def make_optimizer(c: TrainConfig, steps_per_epoch: int, total_steps: int) -> optax.GradientTransformation:
    """The optax optimizer of ``c``. Plain ``sgd`` is exactly the seed's ``W -= lr * grad``."""
    if c.schedule == "constant":
        lr: Any = c.lr
    elif c.schedule == "cosine":
        lr = optax.cosine_decay_schedule(c.lr, max(total_steps, 1))
    else:
        decay = optax.exponential_decay(c.lr, transition_steps=steps_per_epoch,
                                        decay_rate=c.decay_rate, staircase=True)
        # optax divides its int32 step count, which yields a float32 rate even in float64
        # runs; a count in the training dtype keeps the rate exact
        lr = lambda count: decay(jnp.asarray(count, jnp.dtype(c.dtype)))
    if c.optimizer == "sgd":
        return optax.sgd(lr)
    if c.optimizer == "momentum":
        return optax.sgd(lr, momentum=c.momentum)
    if c.optimizer == "nesterov":  # scikit-learn's default sgd (nesterovs_momentum=True)
        return optax.sgd(lr, momentum=c.momentum, nesterov=True)
    return optax.adam(lr)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / min(batch_size, n))


def total_steps(c: TrainConfig, n: int) -> int:
    spe = steps_per_epoch(n, c.batch_size)
    return c.steps if c.steps is not None else c.epochs * spe  # type: ignore[operator]


def total_epochs(c: TrainConfig, n: int) -> int:
    return math.ceil(total_steps(c, n) / steps_per_epoch(n, c.batch_size))


def _tree_all_finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def guarded_update(params: Any, updates: Any, value: Array, active: Array, *,
                   check_params: bool = True) -> tuple[Any, Array]:
    """``(params + updates, True)`` if ``active`` and the step is finite, else ``(params, False)``.

    The step is finite when the loss ``value`` and every new parameter are. The new parameters
    are ``p + where(apply, u, 0)``: one pass over each leaf, where choosing between a stored
    ``p + u`` and ``p`` takes two (the check's ``p + u`` is fused into its reduction). A step
    not applied leaves ``p`` exactly as it was (``p + 0``). ``check_params=False`` checks the
    loss only, for a chunk whose parameters are checked at its end (:func:`finite_and_not_diverged`).
    """
    ok = jnp.isfinite(value)
    if check_params:
        ok = ok & _tree_all_finite(optax.apply_updates(params, updates))
    apply = active & ok
    new = jax.tree_util.tree_map(lambda p, u: p + jnp.where(apply, u, jnp.zeros_like(u)), params, updates)
    return new, apply


def finite_and_not_diverged(state: TrainState) -> Array:
    """True when a chunk run with ``check_params=False`` needs no second run: nothing diverged
    and every parameter is finite.

    A parameter that became NaN or inf stays so (``NaN + u`` is NaN, ``inf + u`` is inf or NaN),
    so a finite one at the end was finite after every step. Early stopping's ``best_params``
    is a copy of ``params`` taken after some step, so it is finite too.
    """
    return (state.diverged_step < 0) & _tree_all_finite(state.params)


def _select(pred: Array, a: Any, b: Any) -> Any:
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def batch_indices(key: Array, epoch: Array, n: int, batch_size: int, shuffle: bool) -> tuple[Array, Array]:
    """Indices (nb, B) and weights (nb, B) of one epoch's minibatches.

    The permutation is drawn on device from fold_in(key, epoch). The last batch is
    padded with index 0 and weight 0 so every batch has the same shape.
    """
    B = min(batch_size, n)
    nb = math.ceil(n / B)
    if shuffle:
        perm = _permutation(jax.random.fold_in(key, epoch), n)
    else:
        perm = jnp.arange(n)
    idx = jnp.concatenate([perm, jnp.zeros((nb * B - n,), perm.dtype)]).reshape(nb, B)
    return idx, batch_weights(n, batch_size)


def batch_weights(n: int, batch_size: int) -> Array:
    """(nb, B) bool: True for real rows, False for the padding of the last batch (every epoch's)."""
    B = min(batch_size, n)
    nb = math.ceil(n / B)
    return jnp.concatenate([jnp.ones((n,), bool), jnp.zeros((nb * B - n,), bool)]).reshape(nb, B)


_HOIST_MAX_INDICES = 1 << 22


def build_chunk_fn(
    c: TrainConfig,
    optimizer: optax.GradientTransformation,
    *,
    n_train: int,
    n_steps: int,
    chunk_epochs: int,
    has_val: bool,
    batch_sharding: Any = None,
    check_params: bool = True,
) -> Callable[..., tuple[TrainState, Array, Array]]:
    """The (unjitted) function that runs ``chunk_epochs`` epochs from a state.

    ``run_chunk(state, X, Y, X_val, Y_val) -> (state, train_loss (E, nb), val_loss (E,))``.
    Steps past ``n_steps`` and everything after a stop are skipped. ``check_params``: test
    every new parameter at every step (:func:`guarded_update`); False tests the loss only,
    and :func:`fit` checks the parameters at the chunk's end (:func:`finite_and_not_diverged`).
    """
    loss_kw = dict(activation=c.activation, loss_name=c.loss, reduction=c.reduction, l2=c.l2)
    nb = steps_per_epoch(n_train, c.batch_size)
    epochs_needed = math.ceil(n_steps / nb)
    # Shuffling is a sort, much cheaper per element when the chunk's epochs are sorted in one batch
    # (XLA:CPU's per-sort overhead dominates at a few hundred rows); bounded to 4M indices (16 MB).
    hoist = chunk_epochs * nb * min(c.batch_size, n_train) <= _HOIST_MAX_INDICES

    def train_step(state: TrainState, X: Array, Y: Array, idx: Array, w: Array
                   ) -> tuple[TrainState, Array]:
        xb, yb = X[idx], Y[idx]
        if batch_sharding is not None:
            xb = jax.lax.with_sharding_constraint(xb, batch_sharding)
            yb = jax.lax.with_sharding_constraint(yb, batch_sharding)
        wb = w.astype(xb.dtype)
        value, grads = models.value_and_grad(state.params, xb, yb, wb, gradients=c.gradients,
                                             **loss_kw)
        # optax's bias corrections and schedules compute `float ** int32 count`, which JAX's
        # strict dtype promotion rejects; give optax the standard rules it is written for
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        active = (state.step < n_steps) & ~state.stopped
        params, apply = guarded_update(state.params, updates, value, active, check_params=check_params)
        diverged = active & ~apply
        new = state._replace(
            params=params,
            opt_state=_select(apply, opt_state, state.opt_state),
            step=state.step + apply.astype(state.step.dtype),
            stopped=state.stopped | diverged,
            diverged_step=jnp.where(diverged, state.step, state.diverged_step),
        )
        return new, jnp.where(apply, value, jnp.nan)  # NaN marks a step not applied

    def run_epoch(state: TrainState, idx: Array, w: Array, X: Array, Y: Array, X_val: Array,
                  Y_val: Array) -> tuple[TrainState, tuple[Array, Array]]:
        def body(s: TrainState, iw: tuple[Array, Array]) -> tuple[TrainState, Array]:
            return train_step(s, X, Y, *iw)

        state, losses = jax.lax.scan(body, state, (idx, w))
        if has_val:
            val = models.loss(state.params, X_val, Y_val, jnp.ones(X_val.shape[0], X_val.dtype),
                              activation=c.activation, loss_name=c.loss, reduction="mean", l2=0.0)
        else:  # monitor the epoch's mean training loss, as scikit-learn does without validation:
            # minibatch losses weighted by their real rows (the padded last batch counts less)
            rows = jnp.sum(w, axis=1).astype(losses.dtype)  # (nb,)
            applied = ~jnp.isnan(losses)
            val = (jnp.sum(jnp.where(applied, losses * rows, 0))
                   / jnp.sum(jnp.where(applied, rows, 0)))
        improved = jnp.isfinite(val) & (val < state.best_loss - c.tol)
        bad = jnp.where(improved, 0, state.bad_epochs + 1)
        state = state._replace(
            best_params=_select(improved, state.params, state.best_params),
            best_loss=jnp.where(improved, val, state.best_loss),
            bad_epochs=bad,
            stopped=state.stopped | (c.patience is not None and bad >= (c.patience or 0)),
            epoch=state.epoch + 1,
        )
        return state, (losses, val if has_val else jnp.full((), jnp.nan, X.dtype))

    def run_chunk(state: TrainState, X: Array, Y: Array, X_val: Array, Y_val: Array
                  ) -> tuple[TrainState, Array, Array]:
        w = batch_weights(n_train, c.batch_size)

        def order(key: Array, epoch: Array) -> Array:  # (nb, B) row indices of one epoch
            return batch_indices(key, epoch, n_train, c.batch_size, c.shuffle)[0]

        def epoch_body(s: TrainState, idx: Array | None) -> tuple[TrainState, tuple[Array, Array]]:
            if idx is None:  # not drawn ahead: the chunk's orders exceed _HOIST_MAX_INDICES
                idx = order(s.key, s.epoch)
            skip = s.stopped | (s.epoch >= epochs_needed)
            nan = jnp.full((), jnp.nan, X.dtype)
            return jax.lax.cond(
                skip,
                lambda s: (s, (jnp.full((nb,), nan), nan)),
                lambda s: run_epoch(s, idx, w, X, Y, X_val, Y_val),
                s,
            )

        orders = None
        if hoist:  # every epoch's shuffle of the chunk in one batched computation, before the scan
            epochs = state.epoch + jnp.arange(chunk_epochs, dtype=state.epoch.dtype)
            orders = jax.vmap(order, in_axes=(None, 0))(state.key, epochs)  # (chunk_epochs, nb, B)
        state, (train_losses, val_losses) = jax.lax.scan(epoch_body, state, orders, length=chunk_epochs)
        return state, train_losses, val_losses

    return run_chunk


# --- fit ------------------------------------------------------------------------------------


def as_2d_float(name: str, A: Any, dtype: Any) -> Array:
    """A validated 2-D array of ``dtype``; errors name the argument ``name``.

    1-D ``Y``-named inputs become one column. Raises TypeError (not real numbers) or ValueError
    (ragged, not 2-D, empty, NaN or inf, or overflowing ``dtype``).
    """
    try:
        a = np.asarray(A)
    except ValueError as e:  # ragged nested lists: name the argument, not just numpy's complaint
        raise ValueError(f"{name}: expected a rectangular numeric array ({e})") from None
    # complex is a number to NumPy, but casting it to float would drop the imaginary part
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer)
                                 or np.issubdtype(a.dtype, np.floating) or a.dtype == bool):
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    if a.ndim == 1 and name.startswith("Y"):
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_columns), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one row and one column, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name}: contains NaN or inf (first at row {bad[0]}, column {bad[1]})")
    with np.errstate(over="ignore"):  # float64 values beyond float32's range become inf: refuse
        cast = a.astype(dtype)
    if not np.all(np.isfinite(cast)):
        raise ValueError(f"{name}: values exceed the range of {np.dtype(dtype).name} "
                         f"(max {np.finfo(dtype).max:.3g}); rescale the data or use float64")
    return jnp.asarray(cast, dtype=dtype)


def init_state(c: TrainConfig, n_features: int, n_outputs: int, n_train: int) -> TrainState:
    """A fresh :class:`TrainState` from ``c.seed`` (init key and shuffle key are independent)."""
    dtype = jnp.dtype(c.dtype)
    k_init, k_shuffle = jax.random.split(jax.random.key(c.seed))
    sizes = models.layer_sizes(n_features, c.hidden, n_outputs)
    params = models.init_params(k_init, sizes, init=c.init, dtype=dtype)
    spe = steps_per_epoch(n_train, c.batch_size)
    opt = make_optimizer(c, spe, total_steps(c, n_train))
    i32 = jnp.int32
    return TrainState(
        params=params,
        opt_state=opt.init(params),
        key=k_shuffle,
        step=jnp.zeros((), i32),
        epoch=jnp.zeros((), i32),
        best_params=params,
        best_loss=jnp.full((), jnp.inf, dtype),
        bad_epochs=jnp.zeros((), i32),
        stopped=jnp.zeros((), bool),
        diverged_step=jnp.full((), -1, i32),
    )


def default_chunk_epochs(n_epochs: int) -> int:
    """About 20 chunks: enough for progress and Ctrl-C, few enough to cost nothing."""
    return max(1, math.ceil(n_epochs / 20))


def x64_context(dtype: str) -> contextlib.AbstractContextManager[Any]:
    """``jax.enable_x64()`` for float64 runs; nothing for float32."""
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def fit(
    config: TrainConfig,
    X: Any,
    Y: Any,
    *,
    X_val: Any = None,
    Y_val: Any = None,
    state: TrainState | None = None,
    callback: Callable[[ChunkInfo], None] | None = None,
    batch_sharding: Any = None,
    devices: Any = None,
    raise_on_divergence: bool = True,
) -> FitResult:
    """Train a linear model / MLP with one compiled scan.

    Args:
        config: the run (see :class:`TrainConfig`).
        X: (n, d) training inputs.
        Y: (n, k) training targets -- regression targets, or one-hot classes for
            cross-entropy. (n,) is taken as (n, 1).
        X_val, Y_val: optional validation data, evaluated after every epoch.
        state: resume from this state (e.g. a checkpoint); training continues to
            the total ``config.epochs``/``config.steps``.
        callback: called with a :class:`ChunkInfo` after every compiled chunk.
        batch_sharding: a ``jax.sharding.Sharding`` for every minibatch (data
            parallelism); None on one device.
        devices: data parallelism (:mod:`jaxnn.distributed`): an int N (the first N
            devices), a list of devices or a ``Mesh`` with a ``"data"`` axis. Every
            minibatch is sharded over the devices, parameters and optimizer state are
            replicated; the min(batch_size, n) rows must divide by the device count.
            The returned params/state are ordinary single-device arrays. None: one device.
        raise_on_divergence: raise :class:`DivergedError` (with ``.result``) when
            the loss becomes NaN/inf; else return with ``diverged_step`` set.
    Returns:
        A :class:`FitResult`.
    Raises:
        ValueError/TypeError: bad arguments, named.
        DivergedError: the loss became NaN or inf; ``.result.params`` are the last
            finite parameters.
        TrainingInterrupted: Ctrl-C; ``.result`` is the state at the last chunk.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    with x64_context(config.dtype):
        dtype = jnp.dtype(config.dtype)
        Xj = as_2d_float("X", X, dtype)
        Yj = as_2d_float("Y", Y, dtype)
        if Xj.shape[0] != Yj.shape[0]:
            raise ValueError(f"X, Y: different numbers of rows: {Xj.shape[0]} and {Yj.shape[0]}")
        has_val = X_val is not None
        if has_val != (Y_val is not None):
            raise ValueError("X_val, Y_val: give both or neither")
        if has_val:
            Xv = as_2d_float("X_val", X_val, dtype)
            Yv = as_2d_float("Y_val", Y_val, dtype)
            if Xv.shape[1] != Xj.shape[1] or Yv.shape[1] != Yj.shape[1] or Xv.shape[0] != Yv.shape[0]:
                raise ValueError(
                    f"X_val, Y_val: shapes {Xv.shape}, {Yv.shape} do not match the training "
                    f"data's columns {Xj.shape[1]}, {Yj.shape[1]}"
                )
        else:  # dummies with the right trailing shapes; never read
            Xv, Yv = Xj[:1], Yj[:1]
        n, d = Xj.shape
        k = Yj.shape[1]
        n_steps = total_steps(config, n)
        n_epochs = total_epochs(config, n)
        spe = steps_per_epoch(n, config.batch_size)
        chunk_epochs = min(config.chunk_epochs or default_chunk_epochs(n_epochs), n_epochs)
        optimizer = make_optimizer(config, spe, n_steps)
        if state is None:
            state = init_state(config, d, k, n)
        else:
            _check_state(state, config, d, k)
        # --- data parallelism (jaxnn.distributed): replicate state and data on the mesh ---
        mesh = None if devices is None else distributed.make_data_mesh(devices)
        jit_kw: dict[str, Any] = {}
        if mesh is not None:
            distributed.check_batch_size(min(config.batch_size, n), mesh)
            if batch_sharding is None:
                batch_sharding = distributed.batch_sharding(mesh)
            state, Xj, Yj, Xv, Yv = distributed.put_replicated((state, Xj, Yj, Xv, Yv), mesh)
            jit_kw["out_shardings"] = distributed.replicated(mesh)
        # --- end data parallelism ---
        def compile_chunk(check_params: bool) -> Any:
            chunk = build_chunk_fn(config, optimizer, n_train=n, n_steps=n_steps,
                                   chunk_epochs=chunk_epochs, has_val=has_val,
                                   batch_sharding=batch_sharding, check_params=check_params)

            def run_chunk(*args: Any) -> tuple[TrainState, Array, Array, Array]:
                after, tl, vl = chunk(*args)  # and whether it must run again, fully tested
                return after, tl, vl, finite_and_not_diverged(after)
            # --- compile cache (jaxnn.estimators refits the same shapes many times) ---
            cache_key = (_compile_key(config, (state, Xj, Yj, Xv, Yv), n_steps, chunk_epochs, has_val,
                                      check_params)
                         if mesh is None and batch_sharding is None else None)
            compiled = _COMPILED.get(cache_key) if cache_key is not None else None
            if compiled is None:
                lowered = jax.jit(run_chunk, donate_argnums=(), **jit_kw).lower(state, Xj, Yj, Xv, Yv)
                # a tiny step on one device: no YNNPACK, so XLA can make the scan one function
                tiny = mesh is None and batch_sharding is None and xla_cpu.is_tiny(
                    min(config.batch_size, n), models.layer_sizes(d, config.hidden, k))
                compiled = xla_cpu.compile(lowered, no_ynnpack=tiny)
                if cache_key is not None:
                    _remember_compiled(cache_key, compiled)
            # --- end compile cache ---
            return compiled

        t0 = time.perf_counter()
        compiled = compile_chunk(check_params=False)  # parameters checked at each chunk's end
        t_compile = time.perf_counter() - t0
        checked: list[Any] = []  # the chunk with every step's parameters checked, if ever needed

        def run_checked_chunk(start: TrainState) -> tuple[TrainState, Array, Array, Array]:
            nonlocal t_compile
            if not checked:
                t = time.perf_counter()
                checked.append(compile_chunk(check_params=True))
                t_compile += time.perf_counter() - t
            return checked[0](start, Xj, Yj, Xv, Yv)  # type: ignore[no-any-return]

        train_losses: list[np.ndarray] = []
        val_losses: list[np.ndarray] = []
        t_train = 0.0

        def result(state: TrainState) -> FitResult:
            if mesh is not None:  # hand back ordinary arrays, not the mesh's
                state = distributed.to_local(state)
            steps = int(state.step)
            tl = np.concatenate(train_losses) if train_losses else np.zeros((0,))
            vl = np.concatenate(val_losses) if val_losses else np.zeros((0,))
            early = config.patience is not None and bool(state.stopped) and int(state.diverged_step) < 0
            diverged = int(state.diverged_step)
            params = state.best_params if early else state.params
            return FitResult(
                params=params, state=state,
                history=History(train_loss=tl, val_loss=vl[np.isfinite(vl)] if has_val else vl[:0]),
                steps=steps, epochs=int(state.epoch),
                seconds={"compile": t_compile, "train": t_train},
                stopped_early=early, diverged_step=diverged if diverged >= 0 else None,
                config=config,
            )

        try:
            while int(state.epoch) < n_epochs and not bool(state.stopped):
                t1, compile_before = time.perf_counter(), t_compile
                after, tl, vl, clean = compiled(state, Xj, Yj, Xv, Yv)
                if not bool(clean):  # diverged: again, checking every step
                    after, tl, vl, _ = run_checked_chunk(start=state)
                state = after  # (a Ctrl-C before this line leaves the last completed chunk's state)
                tl_np = np.asarray(jax.device_get(tl)).reshape(-1)
                vl_np = np.asarray(jax.device_get(vl)).reshape(-1)
                t_train += time.perf_counter() - t1 - (t_compile - compile_before)
                train_losses.append(_active_losses(tl_np))
                val_losses.append(vl_np)
                if callback is not None:
                    callback(ChunkInfo(steps_done=int(state.step), total_steps=n_steps,
                                       epochs_done=int(state.epoch), train_loss=train_losses[-1],
                                       val_loss=vl_np[np.isfinite(vl_np)], state=state))
        except KeyboardInterrupt as e:
            raise TrainingInterrupted(result(state)) from e

        res = result(state)
        if res.diverged_step is not None and raise_on_divergence:
            raise DivergedError(
                f"training diverged: the loss became NaN or inf at step {res.diverged_step}; "
                f"try a smaller learning rate than {config.lr:g} (the last finite parameters "
                "were kept)",
                step=res.diverged_step, result=res,
            )
        return res


# --- compile cache: one compiled chunk program per (config minus seed, shapes, dtypes) ---
_COMPILED: collections.OrderedDict[Any, Any] = collections.OrderedDict()
_COMPILED_MAX = 32


def _compile_key(config: TrainConfig, args: Any, n_steps: int, chunk_epochs: int, has_val: bool,
                 check_params: bool) -> Any:
    """Everything the compiled chunk depends on: the seed only sets the initial state, so it is not part."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    avals = tuple((tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False))) for x in leaves)
    return (dataclasses.replace(config, seed=0), treedef, avals, n_steps, chunk_epochs, has_val, check_params)


def _remember_compiled(key: Any, compiled: Any) -> None:
    _COMPILED[key] = compiled
    while len(_COMPILED) > _COMPILED_MAX:  # least recently stored first
        _COMPILED.popitem(last=False)
# --- end compile cache ---


def _active_losses(tl: np.ndarray) -> np.ndarray:
    """The losses of applied steps (NaN marks a skipped or rejected step)."""
    return tl[~np.isnan(tl)]


def _check_state(state: TrainState, c: TrainConfig, d: int, k: int) -> None:
    if not isinstance(state, TrainState):
        raise TypeError(f"state: expected a TrainState, got {type(state).__name__}")
    want = models.layer_sizes(d, c.hidden, k)
    got = (state.params[0]["W"].shape[0], *(p["W"].shape[1] for p in state.params))
    if tuple(got) != want:
        raise ValueError(f"state: parameters have layer sizes {tuple(got)}, the data and "
                         f"config need {want}")
