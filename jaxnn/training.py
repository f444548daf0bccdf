"""The built-in models' training runs, described by a :class:`TrainConfig`, trained by :func:`jaxnn.fit`.

A :class:`TrainConfig` names everything about a run of the built-in linear model / MLP with
strings and numbers (JSON-friendly: the CLI, checkpoints and the scikit-learn estimators use it).
:func:`resolve` turns it, in one place, into the values the engine and the models take -- a
``loss_fn`` (:func:`jaxnn.models.make_loss_fn`), an optax optimizer (:func:`make_optimizer`), an
initializer -- and :func:`fit` calls :func:`jaxnn.engine.fit`: one compiled ``lax.scan`` over
minibatches (see :mod:`jaxnn.engine` for the data order, padding, divergence and early-stopping
contracts).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from jaxnn import engine, layers, models, names, xla_cpu
from jaxnn.arguments import finite_cast, real_array, x64_context
from jaxnn.backward import forward_of
from jaxnn.errors import DivergedError, InputError, InputTypeError


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (JSON-friendly; saved in checkpoints).

    Attributes:
        hidden: hidden layer widths; ``()`` is linear regression.
        activation: hidden activation, one of ``names.ACTIVATIONS``.
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
        l2: L2 penalty coefficient: each minibatch's loss += l2 * 0.5 * sum ||W||^2 (with a "sum" or
            "half_sum" reduction the term is spread over the batch's rows, so a short last batch
            carries its share).
        batch_size: minibatch size (>= 1); capped at the number of samples.
        epochs: number of epochs, or
        steps: number of optimizer steps (exactly one of the two).
        gradients: ``"manual"`` (hand-written backprop) or ``"autodiff"`` (jax.grad).
        dtype: ``"float32"`` (default) or ``"float64"``.
        seed: seeds initialisation and shuffling.
        init: ``"normal"`` (the seed's), ``"glorot"`` or ``"he"``.
        shuffle: reshuffle every epoch (else fixed data order).
        patience: early stopping after this many epochs without improving the
            validation loss by at least ``tol`` (None: off).
        tol: minimum improvement for early stopping.
        chunk_epochs: epochs per compiled call (None: about 20 calls, :func:`jaxnn.plan.epochs_per_call`).
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


def validate_config(c: TrainConfig) -> None:
    """Raise ``ValueError``/``TypeError`` naming the first bad field of ``c``."""
    if not isinstance(c.hidden, tuple):
        raise InputTypeError(f"hidden: expected a tuple of positive integers, got {c.hidden!r}")
    for h in c.hidden:
        names.positive_int("hidden", h)
    names.check("activation", c.activation, names.ACTIVATIONS)
    names.check("loss", c.loss, names.LOSSES)
    names.check("reduction", c.reduction, names.REDUCTIONS)
    names.check("optimizer", c.optimizer, names.OPTIMIZERS)
    names.check("schedule", c.schedule, names.SCHEDULES)
    names.check("gradients", c.gradients, names.GRADIENTS)
    names.check("dtype", c.dtype, names.DTYPES)
    names.check("init", c.init, names.INITS)
    names.finite_float("lr", c.lr, positive=True)
    names.finite_float("momentum", c.momentum)
    names.finite_float("decay_rate", c.decay_rate, positive=True)
    names.finite_float("l2", c.l2)
    names.finite_float("tol", c.tol)
    names.positive_int("batch_size", c.batch_size)
    names.positive_int("patience", c.patience, allow_none=True)
    names.positive_int("chunk_epochs", c.chunk_epochs, allow_none=True)
    if isinstance(c.seed, bool) or not isinstance(c.seed, int | np.integer):
        raise InputTypeError(f"seed: expected an integer, got {c.seed!r}")
    if (c.epochs is None) == (c.steps is None):
        raise InputError(
            f"epochs/steps: give exactly one of them, got epochs={c.epochs!r}, steps={c.steps!r}"
        )
    names.positive_int("epochs", c.epochs, allow_none=True)
    names.positive_int("steps", c.steps, allow_none=True)


from jaxnn.engine import (  # noqa: E402  (the engine's types are this module's)
    ChunkInfo,
    History,
    TrainingInterrupted,
    TrainState,
    steps_per_epoch,
)
from jaxnn.engine import FitResult as _EngineResult  # noqa: E402

__all__ = ["ChunkInfo", "FitResult", "History", "Resolved", "TrainConfig", "TrainState",
           "TrainingInterrupted", "fit", "init_state", "make_optimizer", "resolve",
           "resolve_network", "steps_per_epoch"]


@dataclasses.dataclass
class FitResult(_EngineResult):
    """:class:`jaxnn.engine.FitResult` plus the run's :class:`TrainConfig` (``config``)."""

    config: TrainConfig | None = None


# --- A configuration's names, turned into values (the one place) ----------------------------


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What a :class:`TrainConfig` stands for, as values (:func:`resolve`); everything below takes these.

    Attributes:
        init: the layer :data:`~jaxnn.models.Initializer` of ``init``.
        activation: the hidden activation of ``activation`` (its plain function, as
            :func:`jaxnn.models.predict` takes it).
        loss_fn: ``(params, X, Y) -> (B,)``: the training loss per example
            (:func:`jaxnn.models.make_loss_fn`) -- the network of ``hidden`` and ``activation``,
            its ``loss`` scaled for the ``reduction``, plus the L2 term, with hand-written
            backward passes or autodiff (``gradients``).
        val_fn: ``(params, X, Y) -> ()``: the mean data loss (no L2 term), for validation.
        optimizer: the optax transformation of ``optimizer``, ``lr``, ``momentum``, ``schedule``.
        summed: a step minimises the sum of its rows' losses, not their mean (``reduction``
            ``"sum"`` or ``"half_sum"``; the engine's ``summed``).
    """

    init: Callable[..., Any]
    activation: Callable[..., Array]
    loss_fn: Callable[..., Array]
    val_fn: Callable[..., Array]
    optimizer: optax.GradientTransformation
    summed: bool


def resolve(c: TrainConfig, n_train: int) -> Resolved:
    """The values ``c`` names, for a training set of ``n_train`` rows (the schedules count epochs).

    Each value is cached by what it depends on, so runs that differ only in their seed, their
    early stopping or their data get the same functions and optimizer, and share the engine's
    compiled programs.
    """
    act, loss, layer = resolve_network(c.activation, c.loss, c.gradients)
    plain_act, plain_loss, plain_layer = resolve_network(c.activation, c.loss, "autodiff")
    summed = c.reduction != "mean"  # "sum" and "half_sum"
    loss_fn = models.make_loss_fn(act, loss, layer=layer, l2=float(c.l2),
                                  scale=0.5 if c.reduction == "half_sum" else 1.0, summed=summed)
    spe = steps_per_epoch(n_train, c.batch_size)
    optimizer = _optimizer_of(c.optimizer, c.lr, c.momentum, c.schedule, c.decay_rate, c.dtype, spe,
                              total_steps(c, n_train))
    return Resolved(init=names.initializer(c.init), activation=plain_act, loss_fn=loss_fn,
                    val_fn=_mean_loss(models.make_loss_fn(plain_act, plain_loss, layer=plain_layer)),
                    optimizer=optimizer, summed=summed)


def resolve_network(activation: str, loss: str, gradients: str) -> tuple[Any, Any, Any]:
    """(hidden activation, per-example loss, dense layer) of these names, as
    :func:`jaxnn.models.make_loss_fn` takes them: the hand-written pieces (``gradients="manual"``)
    or their plain forwards, differentiated by ``jax.grad`` (``"autodiff"``)."""
    names.check("gradients", gradients, names.GRADIENTS)
    act, loss_layer = names.activation(activation), names.loss(loss)
    if gradients == "manual":
        return models.hand_written(act), loss_layer, layers.dense_layer
    return act, forward_of(loss_layer), layers.dense


@functools.lru_cache(maxsize=64)
def _mean_loss(per_example: Callable[..., Array]) -> Callable[..., Array]:
    def val_fn(params: Any, X: Array, Y: Array) -> Array:
        return jnp.mean(per_example(params, X, Y))

    return val_fn


def make_optimizer(c: TrainConfig, steps_per_epoch: int, total_steps: int, *,
                   lr: Any = None) -> optax.GradientTransformation:
    """The optax optimizer of ``c``. Plain ``sgd`` is exactly the seed's ``W -= lr * grad``.

    ``lr``: the learning rate instead of ``c.lr`` -- also a traced array, as
    ``optax.inject_hyperparams`` passes it (:func:`jaxnn.sweep.fit_many`'s per-model rates).
    """
    base: Any = c.lr if lr is None else lr
    if c.schedule == "constant":
        lr = base
    elif c.schedule == "cosine":
        lr = optax.cosine_decay_schedule(base, max(total_steps, 1))
    else:
        decay = optax.exponential_decay(base, transition_steps=steps_per_epoch,
                                        decay_rate=c.decay_rate, staircase=True)
        # optax divides its int32 step count, which yields a float32 rate even in float64
        # runs; a count in the training dtype keeps the rate exact
        lr = lambda count: decay(jnp.asarray(count, jnp.dtype(c.dtype)))
    return names.optimizer(c.optimizer, lr, c.momentum)


@functools.lru_cache(maxsize=64)
def _optimizer_of(optimizer: str, lr: float, momentum: float, schedule: str, decay_rate: float, dtype: str,
                  spe: int, n_steps: int) -> optax.GradientTransformation:
    """:func:`make_optimizer`, one object per optimizer setting and shape of the run (the engine's
    compiled programs are keyed by the optimizer)."""
    c = TrainConfig(optimizer=optimizer, lr=lr, momentum=momentum, schedule=schedule, decay_rate=decay_rate,
                    dtype=dtype, steps=1)
    return make_optimizer(c, spe, n_steps)


# --- The run ----------------------------------------------------------------------------------


def total_steps(c: TrainConfig, n: int) -> int:
    spe = steps_per_epoch(n, c.batch_size)
    return c.steps if c.steps is not None else c.epochs * spe  # type: ignore[operator]


def total_epochs(c: TrainConfig, n: int) -> int:
    return math.ceil(total_steps(c, n) / steps_per_epoch(n, c.batch_size))


def as_2d_float(name: str, A: Any, dtype: Any) -> Array:
    """A validated 2-D array of ``dtype`` on the device; errors name the argument ``name``.

    1-D ``Y``-named inputs become one column. Raises TypeError (not real numbers) or ValueError
    (ragged, not 2-D, empty, NaN or inf, or overflowing ``dtype``).
    """
    return jax.device_put(as_2d_host(name, A, dtype))  # jnp.asarray would compile a copy per shape


def as_2d_host(name: str, A: Any, dtype: Any) -> np.ndarray:
    """:func:`as_2d_float` on the host: what :func:`fit` hands the engine, which pads the rows and
    moves the data to the device in one transfer (a device array here would travel there and back).
    Copies ``A`` only where the dtype changes."""
    a = real_array(name, A)
    if a.ndim == 1 and name.startswith("Y"):
        a = a[:, None]
    if a.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (n_samples, n_columns), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"{name}: expected at least one row and one column, got shape {a.shape}")
    return finite_cast(name, a, dtype)


def _key_parts(c: TrainConfig) -> tuple[Array, Array]:
    """(initialisation key, data-order key) of ``c.seed``: independent halves of ``key(seed)``."""
    k_init, k_shuffle = jax.random.split(jax.random.key(c.seed))
    return k_init, k_shuffle


def _seed_key(seed: int) -> Array:
    """``jax.random.key(seed)``; for seeds in [0, 2**31) built from its key data, compiling nothing."""
    if 0 <= seed < 2**31:
        return jax.random.wrap_key_data(np.asarray([0, seed], np.uint32))  # type: ignore[arg-type]
    return jax.random.key(seed)


@functools.lru_cache(maxsize=32)
def _init_program(sizes: tuple[int, ...], init: Callable[..., Any], dtype: str) -> Any:
    """``key -> (layers, data-order key)`` as one jitted program (not one per random array)."""

    def draw(key: Array) -> tuple[Any, Array]:
        k_init, k_shuffle = jax.random.split(key)
        return models.init_params(k_init, list(sizes), init=init, dtype=jnp.dtype(dtype)), k_shuffle

    return xla_cpu.jit_once(draw)


def init_state(c: TrainConfig, n_features: int, n_outputs: int, n_train: int) -> TrainState:
    """A fresh :class:`TrainState` from ``c.seed`` (init key and shuffle key are independent:
    :func:`_key_parts`)."""
    r = resolve(c, n_train)
    sizes = tuple(models.layer_sizes(n_features, c.hidden, n_outputs))
    with x64_context(c.dtype):
        params, k_shuffle = _init_program(sizes, r.init, c.dtype)(_seed_key(int(c.seed)))
    return engine.init_state(params, r.optimizer, k_shuffle, track_best=c.patience is not None)


def fit(
    config: TrainConfig,
    X: Any,
    Y: Any,
    *,
    X_val: Any = None,
    Y_val: Any = None,
    state: TrainState | None = None,
    callback: Callable[[ChunkInfo], None] | None = None,
    devices: Any = None,
    raise_on_divergence: bool = True,
) -> FitResult:
    """Train the built-in linear model / MLP that ``config`` describes with :func:`jaxnn.fit`.

    Args:
        config: the run (see :class:`TrainConfig`).
        X: (n, d) training inputs.
        Y: (n, k) training targets -- regression targets, or one-hot classes for
            cross-entropy. (n,) is taken as (n, 1).
        X_val, Y_val: optional validation data, evaluated after every epoch (mean data loss,
            no L2 term); early stopping (``config.patience``) watches it, else the epoch's mean
            training loss.
        state: resume from this state (e.g. a checkpoint); training continues to
            the total ``config.epochs``/``config.steps``, in mid-epoch too.
        callback: called with a :class:`ChunkInfo` after every compiled chunk.
        devices: data parallelism (:mod:`jaxnn.distributed`): an int N, a list of devices or a
            ``Mesh`` with a ``"data"`` axis.
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
        raise InputTypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    with x64_context(config.dtype):
        dtype = jnp.dtype(config.dtype)
        Xj = as_2d_host("X", X, dtype)
        Yj = as_2d_host("Y", Y, dtype)
        if Xj.shape[0] != Yj.shape[0]:
            raise InputError(f"X, Y: different numbers of rows: {Xj.shape[0]} and {Yj.shape[0]}")
        has_val = X_val is not None
        if has_val != (Y_val is not None):
            raise InputError("X_val, Y_val: give both or neither")
        val = None
        if has_val:
            Xv = as_2d_host("X_val", X_val, dtype)
            Yv = as_2d_host("Y_val", Y_val, dtype)
            if Xv.shape[1] != Xj.shape[1] or Yv.shape[1] != Yj.shape[1] or Xv.shape[0] != Yv.shape[0]:
                raise InputError(
                    f"X_val, Y_val: shapes {Xv.shape}, {Yv.shape} do not match the training "
                    f"data's columns {Xj.shape[1]}, {Yj.shape[1]}"
                )
            val = (Xv, Yv)
        n, d = Xj.shape
        k = Yj.shape[1]
        n_steps = total_steps(config, n)
        if n_steps > engine.MAX_STEPS:
            raise InputError(f"epochs/steps: {n_steps} steps in all, above the limit of {engine.MAX_STEPS}")
        if state is None:
            state = init_state(config, d, k, n)
        else:
            _check_state(state, config, d, k)
        r = resolve(config, n)

        def with_config(res: _EngineResult) -> FitResult:
            return FitResult(**{f.name: getattr(res, f.name) for f in dataclasses.fields(_EngineResult)},
                             config=config)

        try:
            res = engine._fit(
                r.loss_fn, state.params, (Xj, Yj), optimizer=r.optimizer,
                batch_size=config.batch_size, steps=n_steps, shuffle=config.shuffle,
                val_data=val, val_fn=r.val_fn if has_val else None, patience=config.patience,
                tol=float(config.tol), restore_best=config.patience is not None, state=state,
                callback=callback, devices=devices, chunk_epochs=config.chunk_epochs,
                summed=r.summed, raise_on_divergence=False)
        except TrainingInterrupted as e:
            raise TrainingInterrupted(with_config(e.result)) from e.__cause__
        result = with_config(res)
        if result.diverged_step is not None and raise_on_divergence:
            raise DivergedError(
                f"training diverged: the loss became NaN or inf at step {result.diverged_step}; "
                f"try a smaller learning rate than {config.lr:g} (the last finite parameters "
                "were kept)",
                step=result.diverged_step, result=result,
            )
        return result


def _check_state(state: TrainState, c: TrainConfig, d: int, k: int) -> None:
    if not isinstance(state, TrainState):
        raise InputTypeError(f"state: expected a TrainState, got {type(state).__name__}")
    want = models.layer_sizes(d, c.hidden, k)
    got = (state.params[0]["W"].shape[0], *(p["W"].shape[1] for p in state.params))
    if tuple(got) != want:
        raise InputError(f"state: parameters have layer sizes {tuple(got)}, the data and "
                         f"config need {want}")
