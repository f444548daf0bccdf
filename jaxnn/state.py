"""The training state: what the engine's scan carries, its fresh value, and the check of a resumed one.

:class:`TrainState` is a ``NamedTuple`` of arrays (a pytree): pass ``result.state`` back to
:func:`jaxnn.fit` to resume exactly. :func:`init_state` builds a fresh one; a resumed one is
checked against the run's parameters and optimizer before anything is compiled, naming the
first difference (``state: its optimizer state comes from another optimizer ...``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from jaxnn import xla_cpu
from jaxnn.arguments import float_dtype as _float_dtype
from jaxnn.arguments import opt_state_shapes
from jaxnn.arguments import same_layout as _same_layout
from jaxnn.arguments import state_difference as _state_difference
from jaxnn.errors import InputError, InputTypeError


class TrainState(NamedTuple):
    """Everything the scan carries; pass it back to :func:`fit` to resume exactly.

    Attributes:
        params: the model's parameters (any pytree).
        opt_state: the optimizer's state.
        key: typed PRNG key of the data order (epoch ``e`` uses ``fold_in(key, e)``).
        step: optimizer steps applied so far (int32 scalar).
        best_params: parameters at the best monitored value; None unless early stopping is on.
        best_loss: best monitored value so far (inf at the start).
        bad_epochs: epochs since the last improvement by at least ``tol``.
        stopped: early stopping or divergence has ended training.
        diverged_step: the step whose loss or update was not finite, or -1.
        epoch_loss: sum of the current epoch's minibatch losses times their real rows.
        epoch_rows: the current epoch's real rows so far (its mean training loss is the ratio).
    """

    params: Any
    opt_state: Any
    key: Array
    step: Array
    best_params: Any
    best_loss: Array
    bad_epochs: Array
    stopped: Array
    diverged_step: Array
    epoch_loss: Array
    epoch_rows: Array


@functools.lru_cache(maxsize=64)
def _init_state_jit(optimizer: optax.GradientTransformation, track_best: bool) -> Callable[..., TrainState]:
    """:func:`init_state` as one compiled program (not one small program per array it creates)."""
    def init(params: Any, key: Array) -> TrainState:
        return _init_state(params, optimizer, key, track_best=track_best)

    return xla_cpu.jit_once(init)


def _check_state(state: Any, params: Any, optimizer: optax.GradientTransformation, track_best: bool) -> None:
    if not isinstance(state, TrainState):
        raise InputTypeError(f"state: expected a jaxnn TrainState (result.state), got {type(state).__name__}")
    _same_layout("params", state.params, params)
    try:
        want = opt_state_shapes(optimizer, params)
    except Exception as e:  # an optimizer that cannot init these params: say so, by name
        raise InputError(f"optimizer: cannot initialise a state for these params ({e})") from None
    if str(jax.tree_util.tree_structure(state.opt_state)) != str(jax.tree_util.tree_structure(want)):
        raise InputError("state: its optimizer state comes from another optimizer than this run's: "
                         f"{_state_difference(state.opt_state, want)}; resume with the optimizer it was "
                         "trained with")
    _same_layout("opt_state", state.opt_state, want)
    if (state.best_params is not None) != track_best:
        raise InputError("state: it was saved with early stopping " + ("off" if track_best else "on")
                         + f"; resume with patience {'set' if not track_best else 'None'} as then")


def init_state(params: Any, optimizer: optax.GradientTransformation, key: Array, *,
               track_best: bool = False, opt_state: Any = None) -> TrainState:
    """A fresh :class:`TrainState`: step 0, ``optimizer.init(params)``, the data-order ``key``.

    One compiled program per optimizer and parameter shapes (reused), not one per array it
    creates; ``params`` may be host (NumPy) arrays. With ``opt_state`` given (the optimizer's
    initial state, e.g. built on the host), nothing is compiled: the state is assembled from host
    values as they are.
    """
    if opt_state is not None:
        return _fresh(params, opt_state, key, track_best, _float_dtype(params), np)
    try:
        init = _init_state_jit(optimizer, track_best)
    except TypeError:  # an unhashable optimizer: initialise without caching the program
        init = xla_cpu.jit_once(lambda p, k: _init_state(p, optimizer, k, track_best=track_best))
    return init(params, key)


def _init_state(params: Any, optimizer: optax.GradientTransformation, key: Array, *,
                track_best: bool) -> TrainState:
    dtype = _float_dtype(params)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return _fresh(params, optimizer.init(params), key, track_best, dtype, jnp)


def _fresh(params: Any, opt_state: Any, key: Array, track_best: bool, dtype: Any, xp: Any) -> TrainState:
    """Step 0 of a run, its counters made by ``xp``: NumPy on the host, ``jax.numpy`` in a program."""
    return TrainState(
        params=params,
        opt_state=opt_state,
        key=key,
        step=xp.asarray(0, xp.int32),
        best_params=params if track_best else None,
        best_loss=xp.asarray(xp.inf, dtype),
        bad_epochs=xp.asarray(0, xp.int32),
        stopped=xp.asarray(False),
        diverged_step=xp.asarray(-1, xp.int32),
        epoch_loss=xp.asarray(0, dtype),
        epoch_rows=xp.asarray(0, dtype),
    )
