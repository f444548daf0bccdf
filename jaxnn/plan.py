"""A run's plan: what its compiled chunk depends on (static), its runtime scalars, and its data orders.

:func:`make_plan` fixes the rows (padded to a row bucket), the minibatch, the slots per epoch and
the on/off switches -- everything a compiled chunk is specialised to; :func:`make_knobs` gives the
run's scalars that are runtime inputs (real rows, steps per epoch, total steps, patience, tol), so
a new value compiles nothing. An epoch's data order is
``jax.random.permutation(fold_in(key, e), n)`` (:func:`_slot_indices` in the program,
:func:`chunk_orders` on the host: the same bits).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxnn import shuffle as _shuffle
from jaxnn.arguments import MAX_STEPS
from jaxnn.row_buckets import train_rows
from jaxnn.shuffle import permutation as _permutation
from jaxnn.shuffle import permutation_prefix as _permutation_prefix
from jaxnn.shuffle import rounds as shuffle_rounds

_MAX_ORDER_INDICES = 1 << 22  # a chunk's orders, drawn before its scan: at most 4M indices (16 MB)


class _Plan(NamedTuple):
    """Everything static about a run: what the compiled chunk depends on besides shapes and dtypes.

    Hyper-parameters are not here: the real row count, steps per epoch, total steps, patience and
    tol are runtime inputs (:class:`Knobs`), and so are the optimizer's hyper-parameters when it
    is built with ``optax.inject_hyperparams`` and the loss's ``loss_args``. A new value of any
    of them runs the same compiled program.
    """

    rows: int  # N: rows of the data arrays (the real rows, then padding up to the row bucket)
    batch: int  # B: rows per minibatch
    slots: int  # ceil(N / B): minibatch slots per epoch; the real ones are the first ceil(n / B)
    rounds: int  # sort rounds of the permutation of n rows (as jax.random.permutation draws them)
    chunk_epochs: int
    shuffle: bool
    has_val: bool
    has_weights: bool
    track_best: bool
    summed: bool  # a step minimises the sum of its rows' losses, not their mean
    pass_weights: bool = False
    host_orders: bool = False  # the chunk takes its (E, slots, B) orders as an argument


class Knobs(NamedTuple):
    """The run's scalars that are runtime inputs of the compiled chunk (a new value compiles nothing).

    Attributes:
        n: real rows of the data (int32); rows ``n..N-1`` of the arrays are padding.
        steps_per_epoch: ``ceil(n / B)`` (int32).
        total_steps: steps of the whole run (int32).
        patience: epochs without improvement that stop training (int32; ``MAX_STEPS``: off).
        tol: minimum improvement that resets the patience counter (the params' float dtype).
    """

    n: Any
    steps_per_epoch: Any
    total_steps: Any
    patience: Any
    tol: Any


def epochs_per_call(n_epochs: int, *, calls: int | None = None, at_least: int = 1) -> int:
    """Epochs per compiled call of a run of ``n_epochs`` epochs: the one rule of every trainer.

    The fewest epochs that split the run into about ``calls`` calls (None: no such bound) and that
    are at least ``at_least``, rounded up to a power of two and at most the power of two at or
    above ``n_epochs``. A power of two, so runs of nearby lengths share one program (the epochs
    past a run's end are skipped, not computed). ``jaxnn.fit`` asks for about 20 calls (progress
    and Ctrl-C between them), ``fit_many`` for about 4 of at least 8 epochs (its host bookkeeping is
    per call and per model), the estimators for at least a fixed amount of work per call.
    """
    want = max(1, at_least, math.ceil(n_epochs / calls) if calls else 1)
    return min(1 << (want - 1).bit_length(), 1 << (max(n_epochs, 1) - 1).bit_length())


def steps_per_epoch(n: int, batch_size: int) -> int:
    """``ceil(n / min(batch_size, n))``."""
    return math.ceil(n / min(batch_size, n))


def _slot_indices(key: Array, epoch: Array, n: Array, plan: _Plan) -> Array:
    """(slots, B) row indices of an epoch over padded data: :func:`batch_indices` for the ``n`` real
    rows in its first positions, then the padding rows ``n..N-1`` (weight 0)."""
    N, B = plan.rows, plan.batch
    if plan.shuffle and (N > _shuffle.MAX_PADDED or not _shuffle.partitionable()):  # never padded: all real
        perm = _permutation(jax.random.fold_in(key, epoch), N)
    elif plan.shuffle:
        perm = _permutation_prefix(jax.random.fold_in(key, epoch), n, N, plan.rounds)
    else:
        perm = jnp.arange(N)
    return jnp.concatenate([perm, jnp.zeros((plan.slots * B - N,), perm.dtype)]).reshape(plan.slots, B)


def make_plan(n: int, batch_size: int, *, chunk_epochs: int, shuffle: bool = True, has_val: bool = False,
              has_weights: bool = False, track_best: bool = False, summed: bool = False,
              bucket_rows: bool = True, pass_weights: bool = False, host_orders: bool = False) -> _Plan:
    """The static plan of a run over ``n`` real rows (padded to :func:`train_rows` unless told not to).

    ``host_orders``: the shuffled orders are drawn on the host and passed to each chunk. A chunk's
    orders are one (E, slots, B) array, so ``chunk_epochs`` is capped at ``_MAX_ORDER_INDICES``
    indices (at least one epoch).
    """
    # padded rows need threefry bits drawn per position (JAX's default; jaxnn.shuffle.partitionable)
    N = train_rows(n, batch_size) if bucket_rows and (_shuffle.partitionable() or not shuffle) else n
    B = min(batch_size, N)
    slots = math.ceil(N / B)
    chunk_epochs = max(1, min(chunk_epochs, _MAX_ORDER_INDICES // (slots * B)))
    return _Plan(rows=N, batch=B, slots=slots, rounds=shuffle_rounds(n), chunk_epochs=chunk_epochs,
                 shuffle=shuffle, has_val=has_val, has_weights=has_weights, track_best=track_best,
                 summed=summed, pass_weights=pass_weights, host_orders=host_orders and shuffle)


def chunk_orders(key_data: np.ndarray, e0: int, n: int, n_epochs: int, plan: _Plan) -> np.ndarray:
    """(E, slots, B) int32: the row orders of the chunk whose first epoch is ``e0``, drawn on the host.

    Epoch ``e``'s row is :func:`jaxnn.shuffle.epoch_orders` of ``fold_in(key, e)`` over the plan's
    rows (``n`` real ones first), then zeros for the padding slots of the last minibatch; epochs
    at or past ``n_epochs`` (the chunk's skipped tail) are all zeros. key_data: the (2,) uint32
    data of the run's threefry key.
    """
    E, B = plan.chunk_epochs, plan.batch
    epochs = np.arange(e0, min(e0 + E, n_epochs))
    out = np.zeros((E, plan.slots * B), np.int32)
    out[:len(epochs), :plan.rows] = _shuffle.epoch_orders(key_data, epochs, n, plan.rows)
    return out.reshape(E, plan.slots, B)


def make_knobs(n: int, batch_size: int, total_steps: int, *, patience: int | None = None, tol: float = 0.0,
               dtype: Any = jnp.float32) -> Knobs:
    """The runtime :class:`Knobs` of a run, as NumPy scalars (transferred, never compiled)."""
    i32 = np.int32
    return Knobs(n=i32(n), steps_per_epoch=i32(steps_per_epoch(n, batch_size)), total_steps=i32(total_steps),
                 patience=i32(MAX_STEPS if patience is None else patience), tol=np.asarray(tol, dtype))
