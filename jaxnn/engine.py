"""The training engine: ``jaxnn.fit(loss_fn, params, data, optimizer=...)``, one compiled scan for any model.

The trainer's only contract with a model is its loss::

    def loss_fn(params, x, y):          # x: (B, ...), y: (B, ...) -> (B,) per-example losses
        return optax.l2_loss(predict(params, x), y).sum(-1)

    result = jaxnn.fit(loss_fn, params, (X, Y), optimizer=optax.adam(1e-3), batch_size=32, epochs=100,
                       key=jax.random.key(0))
    result.params, result.history.train_loss, result.history.val_loss, result.diverged_step

``params`` is any pytree, ``optimizer`` any ``optax.GradientTransformation``, ``data`` a tuple of
arrays sharing their leading axis ``n`` (``loss_fn(params, *batch)`` receives one minibatch of
each). Hand-written backward passes enter through the model itself (:func:`jaxnn.with_backward`);
the engine only calls ``jax.value_and_grad``.

How a run is computed (every one of these is a documented contract the tests check):

* **Data order.** Epoch ``e`` visits the rows in the order
  ``jax.random.permutation(jax.random.fold_in(key, e), n)`` (``arange(n)`` with
  ``shuffle=False``), in consecutive minibatches of ``B = min(batch_size, n)`` rows. Step ``t``
  is minibatch ``t % nb`` of epoch ``t // nb``, with ``nb = ceil(n / B)`` steps per epoch.
* **One shape.** The last minibatch of an epoch is padded to ``B`` rows whose weight is 0, and
  every step minimises ``sum(w * losses) / sum(w)``: the mean over its real rows, what calling
  ``loss_fn`` on the short batch would give. Nothing recompiles. ``sample_weight`` multiplies
  ``w``, so a step minimises the sample-weighted mean.
* **One program.** A compiled *chunk* runs ``chunk_epochs`` epochs as a ``lax.scan`` over epochs
  of a ``lax.scan`` over minibatches. The chunk's data orders are drawn on the host with NumPy
  (:func:`jaxnn.shuffle.epoch_orders`, bit for bit the same permutations) and passed in: drawn
  inside the program they were a third of its compile time and of its load from the persistent
  cache. (Keys of another PRNG implementation have them drawn in the program, before its scan,
  by :func:`jaxnn.shuffle.permutation`.) Between chunks the host runs callbacks, progress
  bars and notices Ctrl-C.
  Steps before the state's ``step`` (a resume in mid-epoch) or past the total are computed but
  not applied, so **results do not depend on chunking**: ``fit(steps=61, state=fit(steps=33).state)``
  equals ``fit(steps=61)`` bit for bit.
* **Divergence.** A step whose loss or new parameters are not finite is not applied; training
  stops, keeps the last finite parameters and reports that step (``DivergedError`` by default).
  The loss is checked at every step, the parameters once per chunk; a chunk that ends with a
  non-finite parameter runs again from its start with every step's parameters checked, so the
  result is what checking every step gives.
* **Epoch ends.** After the last step of each epoch the engine records the epoch's mean training
  loss (over real rows) and, with ``val_data``, the validation loss ``val_fn(params, *val_data)``
  (default: the mean of ``loss_fn``). Early stopping (``patience``) watches the validation loss,
  or the mean training loss without validation data, with scikit-learn's ``tol`` semantics:
  an epoch counts as bad unless it improves on the best value by at least ``tol``; the best
  value and, with ``restore_best``, the best parameters follow every strict improvement.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from jaxnn import accelerations, compilation_cache, distributed, xla_cpu
from jaxnn import shuffle as _shuffle
from jaxnn.arguments import MAX_STEPS, check_model, check_run, pad_rows, x64_context
from jaxnn.arguments import as_data as _as_data
from jaxnn.arguments import as_key as _as_key
from jaxnn.arguments import as_loss_args as _as_loss_args
from jaxnn.arguments import float_dtype as _float_dtype
from jaxnn.arguments import opt_state_shapes as opt_state_shapes
from jaxnn.arguments import positive_int as _positive_int
from jaxnn.arguments import to_device as _to_device
from jaxnn.errors import DivergedError, InputError, InputTypeError
from jaxnn.plan import Knobs, _Plan, _slot_indices, chunk_orders, make_knobs, make_plan, steps_per_epoch
from jaxnn.plan import epochs_per_call as epochs_per_call  # (the trainers' one rule)
from jaxnn.row_buckets import row_bucket as row_bucket  # (the estimators pad validation data to one)
from jaxnn.row_buckets import train_rows as train_rows
from jaxnn.shuffle import permutation as _permutation
from jaxnn.state import TrainState, _check_state, init_state
from jaxnn.state import _init_state as _init_state


@dataclasses.dataclass
class History:
    """Losses of one :func:`fit` call (a resumed call holds only its own steps and epochs).

    Attributes:
        train_loss: (steps,) the minibatch loss of every applied step.
        val_loss: (epochs,) each completed epoch's validation loss; empty without ``val_data``.
        epoch_loss: (epochs,) each completed epoch's mean training loss over its real rows.
    """

    train_loss: np.ndarray
    val_loss: np.ndarray
    epoch_loss: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,)))


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        params: the final parameters -- the best ones when early stopping restores them.
        state: the final :class:`TrainState` (``fit(..., state=result.state)`` resumes).
        history: this call's losses (:class:`History`).
        steps: optimizer steps applied in all (``state.step``); epochs: completed epochs.
        seconds: ``{"compile": ..., "train": ...}``; train excludes compilation and the data's
            transfer to the device.
        stopped_early: early stopping ended the run.
        diverged_step: the step whose loss or update was not finite, else None.
    """

    params: Any
    state: TrainState
    history: History
    steps: int
    epochs: int
    seconds: dict[str, float]
    stopped_early: bool
    diverged_step: int | None


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
    val_loss: np.ndarray  # this chunk's per-epoch validation losses (empty without val_data)
    state: TrainState


def _tree_all_finite(tree: Any) -> Array:
    """Whether every float leaf of ``tree`` is finite (a () bool)."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.ones((), bool)


def _select(pred: Array, a: Any, b: Any) -> Any:
    """``where(pred, a, b)`` leaf by leaf, for a () ``pred``."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def guarded_update(params: Any, updates: Any, value: Array, active: Array, *,
                   check_params: bool = True) -> tuple[Any, Array]:
    """``(params + updates, True)`` if ``active`` and the step is finite, else ``(params, False)``.

    The step is finite when the loss ``value`` (and, with ``check_params``, every new parameter)
    is. ``p + where(apply, u, 0)`` is one pass over each leaf; a step not applied leaves ``p``
    exactly as it was (``p + 0``).
    """
    ok = jnp.isfinite(value)
    if check_params:
        ok = ok & _tree_all_finite(optax.apply_updates(params, updates))
    apply = active & ok
    new = jax.tree_util.tree_map(
        lambda p, u: p + jnp.where(apply, u, jnp.zeros_like(u)).astype(p.dtype), params, updates)
    return new, apply


def finite_and_not_diverged(state: TrainState) -> Array:
    """True when a chunk run with ``check_params=False`` needs no second run.

    A parameter that became NaN or inf stays so under every later update (``NaN + u``, ``inf + u``),
    so finite parameters at the end were finite after every step of the chunk.
    """
    return (state.diverged_step < 0) & _tree_all_finite(state.params)


def batch_weights(n: int, batch_size: int) -> Array:
    """(nb, B) bool: True for real rows, False for the padding of the last batch (every epoch's)."""
    B = min(batch_size, n)
    nb = math.ceil(n / B)
    return jnp.concatenate([jnp.ones((n,), bool), jnp.zeros((nb * B - n,), bool)]).reshape(nb, B)


def batch_indices(key: Array, epoch: Array, n: int, batch_size: int, shuffle: bool) -> Array:
    """(nb, B) row indices of epoch ``epoch``'s minibatches; the padding rows are index 0.

    The order is ``jax.random.permutation(jax.random.fold_in(key, epoch), n)`` (computed by
    :func:`jaxnn.shuffle.permutation`, bit for bit the same), or ``arange(n)`` without shuffling.
    """
    B = min(batch_size, n)
    nb = math.ceil(n / B)
    perm = _permutation(jax.random.fold_in(key, epoch), n) if shuffle else jnp.arange(n)
    return jnp.concatenate([perm, jnp.zeros((nb * B - n,), perm.dtype)]).reshape(nb, B)


def _build_chunk(loss_fn: Callable[..., Array], optimizer: optax.GradientTransformation,
                 val_fn: Callable[..., Array] | None, plan: _Plan, *, check_params: bool,
                 batch_sharding: Any) -> Callable[..., Any]:
    """``run_chunk(state, data, weights, val_data, knobs, loss_args, orders, live) -> (state,
    train (E, slots), val (E,), epoch (E,), done (E,), clean)``: ``plan.chunk_epochs`` epochs from
    the state's current one, the first ``live`` of them run.

    ``orders`` (E, slots, B) int32 are the chunk's row orders when ``plan.host_orders`` (drawn by
    :func:`jaxnn.shuffle.epoch_orders` for the epochs from ``state.step // steps_per_epoch``);
    otherwise None, and the chunk draws them itself.

    ``data`` holds ``plan.rows`` rows, the first ``knobs.n`` real; ``loss_args`` are passed to every
    ``loss_fn`` call after the minibatch. One model: :func:`jaxnn.fit_many` trains many by
    ``jax.vmap`` of this function over their states, knobs and (where they differ) data and orders.
    """
    B, slots = plan.batch, plan.slots

    def batch_loss(params: Any, batch: tuple[Any, ...], w: Array, loss_args: tuple[Any, ...]) -> Array:
        """The minibatch's loss: the mean (or sum) of the per-example losses over its real rows."""
        if plan.pass_weights:  # the rows' weights in this step's mean: 0 for padding rows
            losses = loss_fn(params, *batch, *loss_args, w.astype(_float_dtype(params)))
        else:
            losses = loss_fn(params, *batch, *loss_args)
        if not jnp.issubdtype(jnp.result_type(losses), jnp.floating):
            raise InputTypeError(f"loss_fn: expected floating-point losses, got {jnp.result_type(losses)}; "
                            "a loss must be differentiable (no rounding or integer casts)")
        if jnp.shape(losses) != (B,):
            raise InputError(f"loss_fn: expected per-example losses of shape {(B,)} for a minibatch of "
                             f"{B} rows, got shape {jnp.shape(losses)}; return one loss per row "
                             "(e.g. optax.l2_loss(pred, y).sum(axis=-1)), fit takes their mean")
        w = w.astype(losses.dtype)
        total = jnp.sum(w * losses)
        if plan.summed:
            return total
        return total / jnp.maximum(jnp.sum(w), jnp.finfo(losses.dtype).tiny)

    def train_step(s: TrainState, data: Any, weights: Any, knobs: Knobs, loss_args: Any,
                   idx: Array, w: Array, t: Array, real: Array) -> tuple[TrainState, Array]:
        batch = tuple(a[idx] for a in data)
        if batch_sharding is not None:
            batch = tuple(jax.lax.with_sharding_constraint(b, batch_sharding) for b in batch)
        wb = w.astype(weights.dtype) * weights[idx] if plan.has_weights else w
        value, grads = jax.value_and_grad(batch_loss)(s.params, batch, wb, loss_args)
        # optax's bias corrections and schedules compute `float ** int32 count`, which strict
        # dtype promotion rejects; give optax the standard rules it is written for
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, s.opt_state, s.params)
        active = real & (s.step == t) & (t < knobs.total_steps) & ~s.stopped
        params, apply = guarded_update(s.params, updates, value, active, check_params=check_params)
        diverged = active & ~apply
        rows = jnp.sum(wb.astype(value.dtype))
        total = value if plan.summed else value * rows  # sum(w * losses)
        new = s._replace(
            params=params,
            opt_state=_select(apply, opt_state, s.opt_state),
            step=s.step + apply.astype(s.step.dtype),
            stopped=s.stopped | diverged,
            diverged_step=jnp.where(diverged, s.step, s.diverged_step),
            epoch_loss=s.epoch_loss + jnp.where(apply, total, 0).astype(s.epoch_loss.dtype),
            epoch_rows=s.epoch_rows + jnp.where(apply, rows, 0).astype(s.epoch_rows.dtype),
        )
        return new, jnp.where(apply, value, jnp.nan)  # NaN marks a step not applied

    def end_epoch(s: TrainState, val_data: Any, knobs: Knobs, loss_args: Any
                  ) -> tuple[TrainState, tuple[Array, Array]]:
        train_mean = s.epoch_loss / s.epoch_rows
        monitored = train_mean
        if plan.has_val and val_fn is not None:
            monitored = jnp.asarray(val_fn(s.params, *val_data, *loss_args)).astype(s.best_loss.dtype)
        better = monitored < s.best_loss
        bad = jnp.where(monitored <= s.best_loss - knobs.tol, 0, s.bad_epochs + 1)
        s = s._replace(
            best_params=_select(better, s.params, s.best_params) if plan.track_best else s.best_params,
            best_loss=jnp.where(better, monitored, s.best_loss),
            bad_epochs=bad,
            stopped=s.stopped | (bad >= knobs.patience),
            epoch_loss=jnp.zeros_like(s.epoch_loss),
            epoch_rows=jnp.zeros_like(s.epoch_rows),
        )
        return s, (monitored, train_mean)

    def run_epoch(s: TrainState, e: Array, idx: Array, w: Array, data: Any, weights: Any, val_data: Any,
                  knobs: Knobs, loss_args: Any) -> tuple[TrainState, tuple[Array, Array, Array, Array]]:
        def body(s: TrainState, xs: tuple[Array, Array, Array, Array]) -> tuple[TrainState, Array]:
            return train_step(s, data, weights, knobs, loss_args, *xs)

        nb = knobs.steps_per_epoch
        slot = jnp.arange(slots, dtype=s.step.dtype)
        s, losses = jax.lax.scan(body, s, (idx, w, e * nb + slot, slot < nb))
        # the epoch's end, where its last step ran in this chunk: computed always and kept where done
        # (a select, not a lax.cond, so that jax.vmap over models broadcasts no data; fit_many)
        done = s.step == (e + 1) * nb
        ended, (val, mean) = end_epoch(s, val_data, knobs, loss_args)
        s = s._replace(**{f: _select(done, getattr(ended, f), getattr(s, f)) for f in
                          ("best_params", "best_loss", "bad_epochs", "stopped", "epoch_loss", "epoch_rows")})
        nan = jnp.full((), jnp.nan, s.best_loss.dtype)
        val, mean = jnp.where(done, val, nan), jnp.where(done, mean, nan)
        return s, (losses, val, mean, done)

    def run_chunk(s: TrainState, data: Any, weights: Any, val_data: Any, knobs: Knobs, loss_args: Any,
                  orders: Array | None, live: Array) -> Any:
        """``live``: how many of the chunk's epochs run; the rest (past the run's end) are skipped."""
        nb = knobs.steps_per_epoch
        w = (jnp.arange(slots * B, dtype=knobs.n.dtype) < knobs.n).reshape(slots, B)  # real rows come first
        index = jnp.arange(plan.chunk_epochs, dtype=s.step.dtype)
        epochs = s.step // nb + index

        def epoch_body(s: TrainState, xs: tuple[Array, Array, Any]) -> tuple[TrainState, Any]:
            j, e, idx = xs
            nan = jnp.full((), jnp.nan, s.best_loss.dtype)
            skipped = (jnp.full((slots,), jnp.nan, s.best_loss.dtype), nan, nan, jnp.zeros((), bool))
            return jax.lax.cond(j >= live, lambda s: (s, skipped),
                                lambda s: run_epoch(s, e, idx, w, data, weights, val_data, knobs, loss_args),
                                s)

        if not plan.host_orders:  # (E, slots, B), drawn before the scan
            orders = jax.vmap(lambda e: _slot_indices(s.key, e, knobs.n, plan))(epochs)
        s, (train, val, mean, done) = jax.lax.scan(epoch_body, s, (index, epochs, orders))
        return s, train, val, mean, done, finite_and_not_diverged(s)

    return run_chunk


@functools.lru_cache(maxsize=64)
def _mean_loss(loss_fn: Callable[..., Array]) -> Callable[..., Array]:
    """The default ``val_fn``: the mean of ``loss_fn`` over the validation rows (one per loss_fn)."""

    def val_fn(p: Any, *batch: Any) -> Array:
        return jnp.mean(loss_fn(p, *batch))

    return val_fn


# --- Program cache: one jitted chunk per (loss, optimizer, plan, shapes) ------------------------
#
# The rule that keeps compiled code out of traced code: what is cached and returned is always the
# *jitted function* (traceable: ``eval_shape``, ``vmap`` or an outer ``jit`` may call it), compiled
# once up front for the run's arguments so the compile is timed apart from training. A compiled
# executable (``.lower().compile()``) never leaves this function.

_COMPILED: collections.OrderedDict[Any, Any] = collections.OrderedDict()
_COMPILED_MAX = 32
# fits in several threads (joblib's threading backend) build each program once, not once per thread
_COMPILE_LOCK = threading.RLock()


def cached_program(key: Any, build: Callable[[], Any]) -> Any:
    """The jitted program kept under ``key``, else ``build()`` -- kept, the least recently used of
    :data:`_COMPILED_MAX` evicted. A ``key`` of None, or one that cannot be hashed (an unhashable
    loss or optimizer), builds every time."""
    with _COMPILE_LOCK:
        try:
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in _COMPILED:
            _COMPILED.move_to_end(key)
            return _COMPILED[key]
        jitted = build()
        if key is not None:
            _COMPILED[key] = jitted
            while len(_COMPILED) > _COMPILED_MAX:
                _COMPILED.popitem(last=False)
        return jitted


def _compiled_chunk(loss_fn: Any, optimizer: Any, val_fn: Any, plan: _Plan, args: tuple[Any, ...], *,
                    check_params: bool, mesh: Any, batch_sharding: Any) -> Any:
    """The jitted chunk for ``args``' shapes, compiled (or loaded from the persistent cache) already."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    avals = tuple((tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", False))) for x in leaves)
    # one device: XLA:CPU's options for the training program (xla_cpu)
    accelerate = mesh is None and accelerations.enabled("xla_cpu")
    n_params = sum(int(np.prod(jnp.shape(x))) for x in jax.tree_util.tree_leaves(args[0].params))

    def build() -> Any:
        check_model(loss_fn, optimizer, args[0], args[1], args[5], pass_weights=plan.pass_weights)
        chunk = _build_chunk(loss_fn, optimizer, val_fn, plan, check_params=check_params,
                             batch_sharding=batch_sharding)
        jit_kw: dict[str, Any] = {}
        if mesh is not None:
            jit_kw["out_shardings"] = distributed.replicated(mesh)
        return xla_cpu.jit(chunk, accelerate=accelerate, tiny=xla_cpu.is_tiny_step(plan.batch, n_params),
                           args=args, **jit_kw)

    key = None if mesh is not None else (loss_fn, optimizer, val_fn, plan, check_params, treedef, avals,
                                          accelerate)
    return cached_program(key, build)


# --- fit ------------------------------------------------------------------------------------


def fit(
    loss_fn: Callable[..., Array],
    params: Any,
    data: Any,
    *,
    optimizer: optax.GradientTransformation,
    batch_size: int = 32,
    epochs: int | None = None,
    steps: int | None = None,
    key: Array | None = None,
    shuffle: bool = True,
    sample_weight: Any = None,
    val_data: Any = None,
    val_fn: Callable[..., Array] | None = None,
    patience: int | None = None,
    tol: float = 0.0,
    restore_best: bool | None = None,
    state: TrainState | None = None,
    callback: Callable[[ChunkInfo], None] | None = None,
    devices: Any = None,
    loss_args: tuple[Any, ...] = (),
) -> FitResult:
    """Minimise the mean of ``loss_fn`` over minibatches of ``data``: one compiled ``lax.scan`` per chunk.

    Args:
        loss_fn: ``loss_fn(params, *batch) -> (B,)`` per-example losses (as optax's losses return);
            ``batch`` holds ``B`` rows of each array of ``data``. Pure and traceable.
        params: the initial parameters, any pytree of arrays. Their floating dtype is the run's:
            floating data is cast to it; float64 params train inside ``jax.enable_x64()``.
        data: a tuple of arrays with the same leading axis ``n``, e.g. ``(X, Y)``; integer arrays
            (class labels) are kept as they are.
        optimizer: any ``optax.GradientTransformation`` (chains, clipping, schedules,
            ``inject_hyperparams``); its schedules count optimizer steps.
        batch_size: rows per minibatch (capped at ``n``).
        epochs: train for ``epochs * ceil(n / batch_size)`` steps in all, or
        steps: for this many optimizer steps in all (exactly one of the two). A resumed run
            continues to this total.
        key: typed PRNG key of the data order (default ``jax.random.key(0)``); ignored on resume
            (the state's key is used).
        shuffle: reshuffle every epoch; False visits ``0..n-1`` every epoch.
        sample_weight: optional (n,) non-negative weights; each step minimises the weighted mean.
        val_data: optional tuple like ``data``, evaluated after every completed epoch.
        val_fn: ``val_fn(params, *val_data, *loss_args) -> scalar`` to monitor (lower is better);
            default the mean of ``loss_fn`` over ``val_data``.
        patience: stop after this many epochs in a row without improving the monitored value
            (validation loss, else the epoch's mean training loss) by at least ``tol``. None: off,
            and then no best parameters are kept (it costs nothing).
        tol: minimum improvement that resets the patience counter.
        restore_best: return the best parameters seen (default: True when early stopping watches
            ``val_data``, else False, as scikit-learn).
        state: resume from this :class:`TrainState` (``result.state``); it must come from the same
            optimizer and parameter structure (else ``ValueError`` naming the difference).
        callback: called with a :class:`ChunkInfo` after every compiled chunk (about 20 per run),
            e.g. ``jaxnn.progress.ProgressBar(0).update`` for a tqdm bar.
        devices: data parallelism (:mod:`jaxnn.distributed`): an int N, a list of devices or a
            ``Mesh`` with a ``"data"`` axis; every minibatch is sharded, parameters replicated.
        loss_args: extra arrays or numbers passed whole to every call, ``loss_fn(params, *batch,
            *loss_args)`` (and to the default ``val_fn``): hyper-parameters such as an L2 strength.
            They are runtime inputs of the compiled program, so a new value compiles nothing
            (a value baked into ``loss_fn`` as a Python constant compiles a new program).

    Compilation: the first call installs jaxnn's persistent compilation cache for the process, in
    a private directory under the user's cache directory, used only while jaxnn compiles and never
    when the process chose a JAX cache of its own (:mod:`jaxnn.compilation_cache`;
    ``JAXNN_NO_COMPILATION_CACHE=1`` opts out), so another process loads the programs instead of
    compiling them; no ``jax.config`` value is changed. One program per (``loss_fn``,
    ``optimizer``, ``val_fn`` objects, row bucket,
    batch size, shapes and dtypes, and the on/off switches: shuffle, validation, weights, early
    stopping's best parameters, a summed loss); reused by every later call in the process. Epochs,
    steps, ``patience``, ``tol``, ``loss_args`` and the optimizer's ``inject_hyperparams`` values
    are runtime inputs. Pass the *same* ``loss_fn`` and ``optimizer`` objects to reuse a program
    (a new ``optax.adam(lr)`` per call is a new program: use ``optax.inject_hyperparams``).

    Returns:
        A :class:`FitResult`.
    Raises:
        ValueError / TypeError: a bad argument, named.
        DivergedError: a step's loss or new parameters were not finite; training stopped there and
            ``.result`` holds the :class:`FitResult` with the last finite parameters.
        TrainingInterrupted: Ctrl-C; ``.result`` holds the last completed chunk.
    """
    return _fit(loss_fn, params, data, optimizer=optimizer, batch_size=batch_size, epochs=epochs, steps=steps,
                key=key, shuffle=shuffle, sample_weight=sample_weight, val_data=val_data, val_fn=val_fn,
                patience=patience, tol=tol, restore_best=restore_best, state=state, callback=callback,
                devices=devices, loss_args=loss_args)


def _fit(loss_fn: Any, params: Any, data: Any, *, optimizer: Any, batch_size: int = 32,
         epochs: int | None = None, steps: int | None = None, key: Any = None, shuffle: bool = True,
         sample_weight: Any = None,
         val_data: Any = None, val_fn: Any = None, patience: int | None = None, tol: float = 0.0,
         restore_best: bool | None = None, state: TrainState | None = None, callback: Any = None,
         devices: Any = None, loss_args: Any = (), progress: bool | None = False,
         chunk_epochs: int | None = None, summed: bool = False, pass_weights: bool = False,
         bucket_rows: bool = True, raise_on_divergence: bool = True) -> FitResult:
    """:func:`fit` with the package's internal knobs (the built-in models, estimators and CLI use them).

    progress: a tqdm bar on stderr (True, False, or None: only on a terminal). chunk_epochs: epochs
    per compiled call (default about 20 calls per run; never changes a result). summed: a step
    minimises the (weighted) sum of its losses instead of their mean -- the seed's
    linear regression, whose gradient is that of the sum of squares. pass_weights: call
    ``loss_fn(params, *batch, *loss_args, w)`` with ``w`` (B,) each row's weight in the step's mean
    (0 for padding rows), for a loss that needs the minibatch's real rows (scikit-learn's L2 term).
    bucket_rows: pad the data to a row bucket (:func:`train_rows`) so data of nearby sizes share a
    program; never changes a result. raise_on_divergence: False returns with ``diverged_step`` set.
    """
    check_run(loss_fn, optimizer, val_fn, batch_size, epochs, steps, shuffle)
    _positive_int("epochs", epochs, allow_none=True)
    _positive_int("steps", steps, allow_none=True)
    _positive_int("patience", patience, allow_none=True)
    _positive_int("chunk_epochs", chunk_epochs, allow_none=True)
    if (isinstance(tol, bool) or not isinstance(tol, int | float | np.floating)
            or not math.isfinite(tol) or tol < 0):
        raise InputError(f"tol: expected a finite number >= 0, got {tol!r}")
    dtype = _float_dtype(params)
    with compilation_cache.compiling(), x64_context(dtype):
        return _train(loss_fn, params, data, optimizer=optimizer, batch_size=int(batch_size), epochs=epochs,
                    steps=steps, key=key, shuffle=bool(shuffle), sample_weight=sample_weight,
                    val_data=val_data, val_fn=val_fn, patience=patience, tol=float(tol),
                    restore_best=restore_best, state=state, callback=callback, progress=progress,
                    devices=devices, chunk_epochs=chunk_epochs, raise_on_divergence=raise_on_divergence,
                    dtype=dtype, summed=bool(summed), loss_args=loss_args, bucket_rows=bool(bucket_rows),
                    pass_weights=bool(pass_weights))


def _train(loss_fn: Any, params: Any, data: Any, *, optimizer: Any, batch_size: int, epochs: int | None,
           steps: int | None, key: Any, shuffle: bool, sample_weight: Any, val_data: Any, val_fn: Any,
           patience: int | None, tol: float, restore_best: bool | None, state: TrainState | None,
           callback: Any, progress: bool | None, devices: Any, chunk_epochs: int | None,
           raise_on_divergence: bool, dtype: Any, summed: bool, loss_args: Any,
           bucket_rows: bool, pass_weights: bool) -> FitResult:
    params = jax.tree_util.tree_map(_to_device, params)
    host = _as_data("data", data, dtype)
    n = host[0].shape[0]
    has_val = val_data is not None
    val_host = _as_data("val_data", val_data, dtype) if has_val else ()
    if has_val and val_fn is None:  # the default val_fn calls loss_fn on val_data's rows
        for i, (a, v) in enumerate(zip(host, val_host, strict=False)):
            if a.shape[1:] != v.shape[1:] or len(val_host) != len(host):
                raise InputError(f"val_data: expected arrays shaped like data's rows, got val_data[{i}] "
                                 f"{v.shape} for data[{i}] {a.shape}")
    sw_host: Any = None
    if sample_weight is not None:
        sw = np.asarray(sample_weight)
        if sw.ndim != 1 or sw.shape[0] != n or not np.issubdtype(sw.dtype, np.number):
            raise InputError(f"sample_weight: expected ({n},) numbers, got shape {sw.shape} of {sw.dtype}")
        if not np.all(np.isfinite(sw)) or np.any(sw < 0):
            raise InputError("sample_weight: expected finite, non-negative weights")
        if not np.any(sw > 0):
            raise InputError("sample_weight: every weight is 0, so there is nothing to train on; "
                             "give at least one row a positive weight")
        sw_host = sw.astype(dtype)
    nb = steps_per_epoch(n, batch_size)
    n_steps = steps if steps is not None else epochs * nb  # type: ignore[operator]
    if n_steps > MAX_STEPS:
        raise InputError(f"epochs: {epochs} epochs of {nb} steps are {n_steps} steps, above the limit "
                         f"of {MAX_STEPS}")
    n_epochs = math.ceil(n_steps / nb)
    track_best = patience is not None and (restore_best if restore_best is not None else has_val)
    # default: about 20 compiled calls (plan.epochs_per_call); a chunk given longer than the run is
    # the power of two at or above its epochs, so that runs of nearby lengths share a program
    chunk = (min(chunk_epochs, 1 << (n_epochs - 1).bit_length()) if chunk_epochs
             else epochs_per_call(n_epochs, calls=20))
    if state is None:
        state = init_state(params, optimizer, _as_key(key), track_best=track_best)
    else:
        _check_state(state, params, optimizer, track_best)
    plan = make_plan(n, batch_size, chunk_epochs=chunk, shuffle=shuffle, has_val=has_val,
                     has_weights=sample_weight is not None, track_best=track_best, summed=summed,
                     bucket_rows=bucket_rows and accelerations.enabled("row_buckets"),
                     pass_weights=pass_weights,
                     host_orders=_shuffle.draws_on_host(state.key) and accelerations.enabled("host_orders"))
    knobs = make_knobs(n, batch_size, n_steps, patience=patience, tol=tol, dtype=dtype)
    extra = _as_loss_args(loss_args, dtype)
    if val_fn is None and has_val:
        val_fn = _mean_loss(loss_fn)
    # the data on the device: real rows first, padded to the plan's rows with copies of row 0
    # (weight 0: they never enter a loss); one transfer, no compiled program
    arrays, weights, val_arrays = jax.device_put((
        tuple(pad_rows(a, plan.rows) for a in host),
        () if sw_host is None else pad_rows(sw_host, plan.rows, fill=0),
        val_host))
    B = plan.batch
    # --- data parallelism (jaxnn.distributed): replicate state and data on the mesh ---
    mesh = batch_sharding = None
    if devices is not None:
        mesh = distributed.make_data_mesh(devices)
        distributed.check_batch_size(B, mesh)
        batch_sharding = distributed.batch_sharding(mesh)
        state, arrays, weights, val_arrays, knobs, extra = distributed.put_replicated(
            (state, arrays, weights, val_arrays, knobs, extra), mesh)
    # the chunks' data orders, drawn on the host (plan.host_orders), else None
    key_data = np.asarray(jax.device_get(jax.random.key_data(state.key))) if plan.host_orders else None

    def orders_from(e0: int) -> np.ndarray | None:
        return None if key_data is None else chunk_orders(key_data, e0, n, n_epochs, plan)

    args = (state, arrays, weights, val_arrays, knobs, extra, orders_from(0), np.int32(0))

    seconds = {"compile": 0.0, "train": 0.0}

    def compiled(check_params: bool) -> Any:
        t = time.perf_counter()
        fn = _compiled_chunk(loss_fn, optimizer, val_fn, plan, args, check_params=check_params,
                             mesh=mesh, batch_sharding=batch_sharding)
        seconds["compile"] += time.perf_counter() - t
        return fn

    fast = compiled(check_params=False)  # parameters checked at each chunk's end
    jax.block_until_ready(args[1:])  # the data's transfer overlapped the compile; train times training
    checked: list[Any] = []
    train_losses: list[np.ndarray] = []
    epoch_losses: list[np.ndarray] = []
    val_losses: list[np.ndarray] = []

    def result(s: TrainState) -> FitResult:
        if mesh is not None:
            s = distributed.to_local(s)
        diverged = int(s.diverged_step)
        stopped_early = bool(s.stopped) and diverged < 0
        final = s.params
        if track_best and s.best_params is not None and np.isfinite(np.asarray(s.best_loss)):
            final = s.best_params
        empty = np.zeros((0,), np.dtype(dtype))

        def cat(xs: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(xs) if xs else empty

        return FitResult(params=final, state=s,
                         history=History(train_loss=cat(train_losses), epoch_loss=cat(epoch_losses),
                                         val_loss=cat(val_losses) if has_val else empty),
                         steps=int(s.step), epochs=int(s.step) // nb, seconds=dict(seconds),
                         stopped_early=stopped_early, diverged_step=diverged if diverged >= 0 else None)

    bar = None
    if progress is not False:
        from jaxnn.progress import ProgressBar
        bar = ProgressBar(n_steps, enable=progress, desc="fit")
        bar.__enter__()
    ahead: tuple[int, Any] = (0, args[6])  # the next chunk's first epoch and orders, drawn ahead
    try:
        while int(state.step) < n_steps and not bool(state.stopped):
            t1, compile_before = time.perf_counter(), seconds["compile"]
            e0 = int(state.step) // nb
            orders = ahead[1] if ahead[0] == e0 else orders_from(e0)
            live = np.int32(min(plan.chunk_epochs, n_epochs - e0))  # the epochs left to run in this chunk
            after, tl, vl, el, done, clean = fast(state, *args[1:6], orders, live)
            e_next = e0 + plan.chunk_epochs
            if key_data is not None and e_next < n_epochs:  # drawn while the device runs this chunk
                ahead = (e_next, orders_from(e_next))
            if not bool(clean):  # diverged somewhere in the chunk: run it again, every step checked
                if not checked:
                    checked.append(compiled(check_params=True))
                after, tl, vl, el, done, _ = checked[0](state, *args[1:6], orders, live)
            state = after  # (a Ctrl-C before this line leaves the last completed chunk's state)
            tl_np = np.asarray(jax.device_get(tl)).reshape(-1)
            done_np = np.asarray(jax.device_get(done))
            seconds["train"] += time.perf_counter() - t1 - (seconds["compile"] - compile_before)
            train_losses.append(tl_np[~np.isnan(tl_np)])
            epoch_losses.append(np.asarray(el)[done_np])
            if has_val:
                val_losses.append(np.asarray(vl)[done_np])
            info = ChunkInfo(steps_done=int(state.step), total_steps=n_steps,
                             epochs_done=int(state.step) // nb, train_loss=train_losses[-1],
                             val_loss=val_losses[-1] if has_val else np.zeros((0,)),
                             state=state)
            if bar is not None:
                bar.update(info)
            if callback is not None:
                callback(info)
    except KeyboardInterrupt as e:
        raise TrainingInterrupted(result(state)) from e
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    res = result(state)
    if res.diverged_step is not None and raise_on_divergence:
        raise DivergedError(
            f"training diverged: the loss or the parameters became NaN or inf at step {res.diverged_step}; "
            "try a smaller learning rate (the last finite parameters were kept)",
            step=res.diverged_step, result=res)
    return res
