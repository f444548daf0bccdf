"""Many models of any model in one compiled program: ``jaxnn.fit_many``.

:func:`jaxnn.fit` trains one model; :func:`fit_many` trains M of them -- seeds, learning rates,
L2 strengths, the folds of a cross-validation -- as ``jax.vmap`` of the very same compiled chunk
over the models (the PureJaxRL recipe, ``jit(vmap(train))``). Nothing about training is written
twice: the data order, the padded last batch, the divergence guard, early stopping and resume are
the engine's (:mod:`jaxnn.engine`), per model. Model ``i`` of a run equals ``jaxnn.fit`` of model
``i`` alone -- its parameters, hyper-parameters, key and rows -- up to the order of floating-point
operations (the tests check 1e-9 in float64).

What varies per model enters the program as an input with a leading model axis, so a new value
compiles nothing:

* **parameters** ``params``: every leaf carries the model axis (``jax.vmap(init)(keys)``);
* **optimizer hyper-parameters** through ``optax.inject_hyperparams``: ``hyperparams=
  {"learning_rate": lrs}`` writes each model's value into its own optimizer state;
* **loss hyper-parameters** ``loss_args``: every leaf carries the model axis (an L2 strength
  per model is ``loss_args=(l2s,)``);
* **the data order** ``key``: one key (every model sees the same minibatches, gathered once for
  all) or M keys (each model its own order, exactly as its own ``fit`` would draw it);
* **the rows** ``data``: shared by all models, or :class:`PerModel` -- each model its own rows
  (a CV fold's training rows), padded on the host to one length, with each model's real row
  count, steps per epoch and total steps as runtime inputs;
* **the run**: ``epochs``/``steps``, ``patience`` and ``tol`` may be one value or M.

The batched step is the engine's step under ``vmap``: a product ``x @ W`` of a shared minibatch
with M weight matrices is one batched product, which every backend's matrix kernels run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn import accelerations, arguments, compilation_cache, distributed, engine, xla_cpu
from jaxnn import shuffle as _shuffle
from jaxnn.engine import FitResult, History, Knobs, TrainState
from jaxnn.errors import InputError, InputTypeError

MODEL_AXIS = "models"  # the mesh axis fit_many(devices=...) splits the models over


@dataclasses.dataclass(frozen=True)
class PerModel:
    """Data (or sample weights) given per model: ``PerModel([(X0, Y0), (X1, Y1), ...])``.

    Entry ``i`` is model ``i``'s own rows (a tuple of arrays with one leading row axis, or for
    ``sample_weight`` one (n_i,) array); the models may have different numbers of rows.
    """

    items: Sequence[Any]


@dataclasses.dataclass
class ManyResult:
    """What :func:`fit_many` returns; every array has a leading model axis M.

    Attributes:
        params: the final parameters (the best ones where early stopping restores them).
        state: the final :class:`~jaxnn.engine.TrainState` of every model (``state=`` resumes).
        history: ``train_loss`` (M, steps), ``epoch_loss`` and ``val_loss`` (M, epochs) of this
            call, NaN-padded where a model ran fewer steps or epochs than the longest.
        steps, epochs: (M,) optimizer steps applied and epochs completed in all.
        diverged_step: (M,) the step whose loss or update was not finite, -1 where none.
        stopped_early: (M,) early stopping ended the model's run.
        seconds: ``{"compile": ..., "train": ...}`` for the whole call.
    """

    params: Any
    state: TrainState
    history: History
    steps: np.ndarray
    epochs: np.ndarray
    diverged_step: np.ndarray
    stopped_early: np.ndarray
    seconds: dict[str, float]
    _on_host: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def n_models(self) -> int:
        return len(self.steps)

    def model(self, i: int) -> FitResult:
        """Model ``i``'s result as :func:`jaxnn.fit` reports it (its history without the padding).

        Its parameters and state are host (NumPy) arrays -- the data-order key stays a JAX key --:
        all models are copied to the host once, on the first call, not one small device
        operation per leaf and model.
        """
        if not 0 <= i < self.n_models:
            raise InputError(f"i: expected 0 <= i < {self.n_models}, got {i}")
        if self._on_host is None:
            self._on_host = jax.device_get((self.params, self.state._replace(key=None)))  # type: ignore[arg-type]
        params, state = self._on_host

        def pick(tree: Any) -> Any:
            return jax.tree_util.tree_map(lambda a: a[i], tree)

        def real(a: np.ndarray) -> np.ndarray:
            return a[i][~np.isnan(a[i])]

        d = int(self.diverged_step[i])
        return FitResult(params=pick(params), state=pick(state)._replace(key=self.state.key[i]),
                         history=History(train_loss=real(self.history.train_loss),
                                         val_loss=real(self.history.val_loss),
                                         epoch_loss=real(self.history.epoch_loss)),
                         steps=int(self.steps[i]), epochs=int(self.epochs[i]), seconds=dict(self.seconds),
                         stopped_early=bool(self.stopped_early[i]), diverged_step=d if d >= 0 else None)


def fit_many(
    loss_fn: Callable[..., Array],
    params: Any,
    data: Any,
    *,
    optimizer: optax.GradientTransformation,
    hyperparams: dict[str, Any] | None = None,
    key: Array | None = None,
    batch_size: int = 32,
    epochs: int | Sequence[int] | None = None,
    steps: int | Sequence[int] | None = None,
    shuffle: bool = True,
    sample_weight: Any = None,
    val_data: Any = None,
    val_fn: Callable[..., Array] | None = None,
    patience: int | Sequence[int] | None = None,
    tol: float | Sequence[float] = 0.0,
    restore_best: bool | None = None,
    state: TrainState | None = None,
    loss_args: tuple[Any, ...] = (),
    callback: Callable[[engine.ChunkInfo], None] | None = None,
    devices: Any = None,
) -> ManyResult:
    """Train M models at once: :func:`jaxnn.fit`'s contract, ``jax.vmap``-ed over a leading model axis.

    Args:
        loss_fn: ``loss_fn(params_i, *batch, *loss_args_i) -> (B,)`` per-example losses of ONE
            model (as for :func:`jaxnn.fit`); it is vmapped over the models.
        params: the M models' initial parameters: any pytree whose leaves all carry a leading
            model axis M (``jax.vmap(init)(jax.random.split(key, M))``).
        data: a tuple of arrays shared by all models, ``(X, Y)`` with leading axis n; or
            :class:`PerModel` ``([(X0, Y0), ...])``, M tuples, each model's own rows.
        optimizer: any optax transformation, one for all models; per-model values of its
            hyper-parameters come through ``optax.inject_hyperparams`` and ``hyperparams``.
        hyperparams: ``{name: (M,) values}`` written into each model's optimizer state
            (``optax.tree_utils.tree_set``), e.g. ``{"learning_rate": lrs}``; every name must be a
            hyper-parameter the (injected) optimizer holds.
        key: the data order: one typed key (every model the same minibatches) or (M,) keys (each
            model the order its own ``fit(..., key=key[i])`` would draw); default ``key(0)``.
            Ignored on resume.
        batch_size: rows per minibatch (capped at each model's rows).
        epochs: an int for every model or M values (each model's own run), or
        steps: optimizer steps, likewise (exactly one of the two).
        shuffle: reshuffle every epoch; False visits the rows in order.
        sample_weight: (n,) shared, (M, n) per model with shared data, or :class:`PerModel`
            with per-model data.
        val_data: a tuple shared by all models, or :class:`PerModel` of tuples of one length.
        val_fn: ``val_fn(params_i, *val_data, *loss_args_i) -> scalar`` (default: the mean loss).
        patience: early stopping's patience, one value or M values (None: off);
        tol: its minimum improvement, one value or M values.
        restore_best: as in :func:`jaxnn.fit`.
        state: resume from ``result.state`` of an earlier :func:`fit_many` of these models.
        loss_args: a tuple of arrays whose leaves all carry the model axis: model ``i``'s loss
            receives ``loss_args[j][i]``.
        callback: called with a :class:`~jaxnn.engine.ChunkInfo` (of all models) after each chunk.
        devices: split the **models** over devices -- an int N, a list of devices or a ``Mesh``
            with a ``"models"`` axis; M must divide by their number. The models are independent:
            each device trains its own with no communication.
    Returns:
        A :class:`ManyResult`; ``result.model(i)`` is model ``i``'s :class:`~jaxnn.engine.FitResult`.
        A model that diverges keeps its last finite parameters and stops; the others train on
        (nothing is raised: see ``diverged_step``).
    Raises:
        ValueError / TypeError: a bad argument, named.
        TrainingInterrupted: Ctrl-C; ``.result`` holds the :class:`ManyResult` of the last chunk.
    """
    return _fit_many(loss_fn, params, data, optimizer=optimizer, hyperparams=hyperparams, key=key,
                     batch_size=batch_size, epochs=epochs, steps=steps, shuffle=shuffle,
                     sample_weight=sample_weight, val_data=val_data, val_fn=val_fn, patience=patience,
                     tol=tol, restore_best=restore_best, state=state, loss_args=loss_args,
                     callback=callback, devices=devices)


def _n_models(params: Any) -> int:
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise InputError("params: expected a pytree of arrays with a leading model axis")
    sizes = {int(jnp.shape(x)[0]) if jnp.ndim(x) else -1 for x in leaves}
    if len(sizes) != 1 or -1 in sizes or 0 in sizes:
        raise InputError("params: every leaf must carry the same leading model axis M >= 1 "
                         f"(jax.vmap(init)(keys)), got leading sizes {sorted(sizes)}")
    return sizes.pop()


def _per_model_ints(name: str, value: Any, M: int, *, allow_none: bool = False) -> np.ndarray | None:
    """``value`` (one positive int or M of them) as (M,) int64; None stays None when allowed."""
    if value is None:
        if allow_none:
            return None
        raise InputError(f"{name}: expected a positive integer or {M} of them, got None")
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full((M,), arr)
    if arr.shape != (M,) or not (np.issubdtype(arr.dtype, np.integer)) or np.any(arr < 1):
        raise InputError(f"{name}: expected a positive integer or {M} of them, got {value!r}")
    for v in arr:
        arguments.positive_int(name, int(v))
    return arr.astype(np.int64)


def _per_model_floats(name: str, value: Any, M: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full((M,), arr)
    if arr.shape != (M,) or not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool \
            or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError(f"{name}: expected a finite number >= 0 or {M} of them, got {value!r}")
    return arr.astype(np.float64)


def _per_model_rows(name: str, items: Any, M: int, dtype: Any) -> list[tuple[np.ndarray, ...]]:
    """M per-model tuples of host arrays; every model's arrays have the same trailing shapes and dtypes."""
    if isinstance(items, tuple | list) is False or len(items) != M:
        raise InputError(f"{name}: expected {M} entries, one per model, got {len(items)}")
    hosts = [arguments.as_data(f"{name}[{i}]", d, dtype) for i, d in enumerate(items)]
    layout = [(a.shape[1:], a.dtype) for a in hosts[0]]
    for i, h in enumerate(hosts):
        if [(a.shape[1:], a.dtype) for a in h] != layout:
            raise InputError(f"{name}[{i}]: expected arrays shaped like {name}[0]'s rows {layout}, "
                             f"got {[(a.shape[1:], a.dtype) for a in h]}")
    return hosts


def _sample_weights(sample_weight: Any, per_model: bool, ns: np.ndarray, M: int) -> Any:
    """(n,) shared, (M, n) per model, or (per-model data) a list of M (n_i,) arrays; checked."""
    if isinstance(sample_weight, PerModel) != per_model:
        raise InputTypeError("sample_weight: give it per model (PerModel) exactly when data is per model")
    rows = [np.asarray(w) for w in sample_weight.items] if per_model else [np.asarray(sample_weight)]
    if per_model and (len(rows) != M or any(r.shape != (int(n),) for r, n in zip(rows, ns, strict=False))):
        raise InputError(f"sample_weight: expected {M} arrays, each model's ({'/'.join(map(str, ns))},) rows")
    if not per_model and rows[0].shape not in ((int(ns[0]),), (M, int(ns[0]))):
        raise InputError(f"sample_weight: expected ({ns[0]},) or ({M}, {ns[0]}), got {rows[0].shape}")
    for r in rows:
        if (r.dtype == bool or not np.issubdtype(r.dtype, np.number) or not np.all(np.isfinite(r))
                or np.any(r < 0)):
            raise InputError("sample_weight: expected finite, non-negative numbers")
        if not np.all(np.any(r.reshape(-1, r.shape[-1]) > 0, axis=-1)):
            raise InputError("sample_weight: some model's weights are all 0, so it has nothing to train on")
    return rows if per_model else rows[0]


def _set_hyperparams(opt_state: Any, hyperparams: dict[str, Any] | None, M: int) -> Any:
    """``opt_state`` with each named hyper-parameter set to its (M,) values: every value
    ``optax.tree_utils.tree_set`` would replace."""
    if hyperparams is None:
        return opt_state
    if not isinstance(hyperparams, dict):
        raise InputTypeError("hyperparams: expected a dict of name -> (M,) values, "
                        f"got {type(hyperparams).__name__}")
    leaves, treedef = jax.tree_util.tree_flatten(opt_state)
    for name, v in hyperparams.items():
        slots = _hyperparam_leaves(treedef, opt_state, name)
        current = leaves[slots[0]] if slots else None
        if current is None or not hasattr(current, "dtype"):
            raise InputError(f"hyperparams: the optimizer holds no hyper-parameter {name!r}; build it with "
                             f"optax.inject_hyperparams(...)({name}=...) to vary it per model")
        arr = np.asarray(v)
        if arr.ndim == 0:
            arr = np.full((M,), arr)
        if arr.shape != (M,) or not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise InputError(f"hyperparams[{name!r}]: expected one finite number or {M} of them, got {v!r}")
        value = jax.device_put(arr.astype(current.dtype))
        for i in slots:
            leaves[i] = value
    return jax.tree_util.tree_unflatten(treedef, leaves)


_SLOTS: dict[Any, list[int]] = {}


def _hyperparam_leaves(treedef: Any, opt_state: Any, name: str) -> list[int]:
    """The positions, among ``opt_state``'s leaves, of the values ``optax.tree_utils.tree_set``
    replaces for ``name`` (found once per optimizer state layout; an empty list: none)."""
    if (treedef, name) not in _SLOTS:
        marker = object()  # a leaf of its own: where tree_set puts it is where the value goes
        try:
            marked = jax.tree_util.tree_leaves(optax.tree_utils.tree_set(opt_state, **{name: marker}))
        except KeyError:  # no value of that name
            marked = []
        same_layout = len(marked) == treedef.num_leaves  # not a whole state named `name`
        _SLOTS[(treedef, name)] = [i for i, leaf in enumerate(marked) if leaf is marker and same_layout]
    return _SLOTS[(treedef, name)]


def _fit_many(loss_fn: Any, params: Any, data: Any, *, optimizer: Any, hyperparams: Any, key: Any,
              batch_size: int, epochs: Any, steps: Any, shuffle: bool, sample_weight: Any, val_data: Any,
              val_fn: Any, patience: Any, tol: Any, restore_best: bool | None, state: Any, loss_args: Any,
              callback: Any, devices: Any, summed: bool = False, pass_weights: bool = False) -> ManyResult:
    arguments.check_run(loss_fn, optimizer, val_fn, batch_size, epochs, steps, shuffle)
    M = _n_models(params)
    dtype = arguments.float_dtype(params)
    with compilation_cache.compiling(), arguments.x64_context(dtype):
        return _run(loss_fn, params, data, M=M, dtype=dtype, optimizer=optimizer, hyperparams=hyperparams,
                    key=key, batch_size=int(batch_size), epochs=epochs, steps=steps, shuffle=bool(shuffle),
                    sample_weight=sample_weight, val_data=val_data, val_fn=val_fn, patience=patience,
                    tol=tol, restore_best=restore_best, state=state, loss_args=loss_args,
                    callback=callback, devices=devices, summed=summed, pass_weights=pass_weights)


def _run(loss_fn: Any, params: Any, data: Any, *, M: int, dtype: Any, optimizer: Any, hyperparams: Any,
         key: Any, batch_size: int, epochs: Any, steps: Any, shuffle: bool, sample_weight: Any,
         val_data: Any, val_fn: Any, patience: Any, tol: Any, restore_best: bool | None, state: Any,
         loss_args: Any, callback: Any, devices: Any, summed: bool, pass_weights: bool) -> ManyResult:
    # --- the rows: shared (n,) or per model, with (M,) real row counts ---
    per_model = isinstance(data, PerModel)
    if per_model:
        hosts = _per_model_rows("data", data.items, M, dtype)
        ns = np.array([h[0].shape[0] for h in hosts], np.int64)
    else:
        shared = arguments.as_data("data", data, dtype)
        ns = np.full((M,), shared[0].shape[0], np.int64)
    n_max = int(ns.max())
    sw = None if sample_weight is None else _sample_weights(sample_weight, per_model, ns, M)
    # --- the run's length and stopping rule, per model ---
    spe = np.array([engine.steps_per_epoch(int(n), batch_size) for n in ns], np.int64)
    if steps is not None:
        total = np.asarray(_per_model_ints("steps", steps, M))
    else:
        total = np.asarray(_per_model_ints("epochs", epochs, M)) * spe
    if np.any(total > arguments.MAX_STEPS):
        raise InputError(f"epochs/steps: {int(total.max())} steps in all, above the limit of "
                         f"{arguments.MAX_STEPS}")
    n_epochs = -(-total // spe)
    pat = _per_model_ints("patience", patience, M, allow_none=True)
    tols = _per_model_floats("tol", tol, M)
    has_val = val_data is not None
    track_best = pat is not None and (restore_best if restore_best is not None else has_val)
    # --- validation data: shared, or per model of one length ---
    val_arrays: Any = ()
    val_axis: Any = None
    if has_val:
        if isinstance(val_data, PerModel):
            hosts = [arguments.as_data(f"val_data[{i}]", d, dtype) for i, d in enumerate(val_data.items)]
            if len(hosts) != M or len({h[0].shape[0] for h in hosts}) != 1:
                raise InputError(f"val_data: expected {M} per-model tuples with the same number of rows")
            val_arrays, val_axis = tuple(np.stack(c) for c in zip(*hosts, strict=True)), 0
        else:
            val_arrays = arguments.as_data("val_data", val_data, dtype)
        if val_fn is None:
            val_fn = engine._mean_loss(loss_fn)
    extra = _per_model_loss_args(loss_args, M, dtype)
    # --- states: fresh (keys shared or per model, hyper-parameters written in) or resumed ---
    fresh = state is None
    if fresh:
        keys = _model_keys(key, M)
        params = jax.tree_util.tree_map(arguments.to_device, params)
        state = _init_states(optimizer, track_best)(params, keys)
        state = state._replace(opt_state=_set_hyperparams(state.opt_state, hyperparams, M))
    else:
        if not isinstance(state, TrainState) or _n_models(state.params) != M:
            raise InputTypeError(f"state: expected the TrainState of {M} models (result.state of fit_many)")
        one = jax.tree_util.tree_map(lambda a: a[0], (state, params))
        engine._check_state(one[0], one[1], optimizer, track_best)
    # --- the static plan (rows padded to the largest model's bucket) and the per-model knobs ---
    # about 4 compiled calls per run, at least 8 epochs each (the models' host bookkeeping is per call)
    longest = int(n_epochs.max())
    chunk = engine.epochs_per_call(longest, calls=4, at_least=8)
    on_host = shuffle and _shuffle.draws_each_on_host(state.key) and accelerations.enabled("host_orders")
    plan = engine.make_plan(n_max, batch_size, chunk_epochs=chunk, shuffle=shuffle, has_val=has_val,
                            has_weights=sw is not None, track_best=track_best,
                            summed=summed, host_orders=on_host, pass_weights=pass_weights,
                            bucket_rows=accelerations.enabled("row_buckets"))
    if (per_model and len(set(ns.tolist())) > 1 and shuffle and not plan.host_orders
            and (plan.rows > _shuffle.MAX_PADDED or not _shuffle.partitionable())):
        raise InputError("data: models with different numbers of rows need padded data, which needs a "
                         "threefry key under jax_threefry_partitionable (JAX's defaults)")
    if per_model and not plan.host_orders and shuffle and len({_shuffle.rounds(int(n)) for n in ns}) > 1:
        raise InputError("data: models of fewer and more than 1,625 rows need their orders drawn on "
                         "the host (a threefry key, JAX's default); split them into two fit_many calls")
    # the data on the device: real rows first, padded to the plan's rows (weight 0: never in a loss)
    if per_model:
        arrays: Any = tuple(np.stack([arguments.pad_rows(h[j], plan.rows) for h in hosts])
                            for j in range(len(hosts[0])))
    else:
        arrays = tuple(arguments.pad_rows(a, plan.rows) for a in shared)
    weights: Any = ()
    if sw is not None:
        rows_of = sw if per_model or sw.ndim == 2 else [sw]
        weights = np.stack([arguments.pad_rows(r, plan.rows, fill=0) for r in rows_of]).astype(dtype)
        if not (per_model or sw.ndim == 2):
            weights = weights[0]
    knobs = Knobs(n=ns.astype(np.int32), steps_per_epoch=spe.astype(np.int32),
                  total_steps=total.astype(np.int32),
                  patience=(np.full((M,), arguments.MAX_STEPS, np.int32) if pat is None
                            else pat.astype(np.int32)),
                  tol=tols.astype(dtype))
    # the models' (M, 2) key data on the host; a fresh run's from the keys given, not waiting for its states
    key_data = (np.broadcast_to(np.asarray(jax.random.key_data(keys if fresh else state.key)), (M, 2))
                if plan.host_orders else None)

    def orders_from(step: np.ndarray, stopped: np.ndarray) -> tuple[np.ndarray | None, Any]:
        """The chunk's orders: (E, slots, B) shared by all models when they agree, else (M, E, slots, B)."""
        if key_data is None:
            return None, None
        e0 = step // spe
        alive = [i for i in range(M) if not stopped[i]] or [0]
        j = alive[0]
        same = all((key_data[i] == key_data[j]).all()
                   and (e0[i], ns[i], n_epochs[i]) == (e0[j], ns[j], n_epochs[j]) for i in alive)
        if same:  # a model that stopped applies no step, whatever order it is given
            i = alive[0]
            return engine.chunk_orders(key_data[i], int(e0[i]), int(ns[i]), int(n_epochs[i]), plan), None
        return np.stack([engine.chunk_orders(key_data[i], int(e0[i]), int(ns[i]), int(n_epochs[i]), plan)
                         for i in range(M)]), 0

    mesh = _model_mesh(devices, M)
    data_axis = 0 if per_model else None
    w_axis = 0 if sw is not None and (per_model or sw.ndim == 2) else None
    args = [state, arrays, weights, val_arrays, knobs, extra]
    if mesh is not None:
        args = [_put_models(a, mesh, ax) for a, ax in zip(args, (0, data_axis, w_axis, val_axis, 0, 0),
                                                            strict=True)]
    seconds = {"compile": 0.0, "train": 0.0}
    programs: dict[Any, Any] = {}

    def program(check_params: bool, orders: Any, o_axis: Any) -> Any:
        k = (check_params, o_axis)
        if k not in programs:
            t = time.perf_counter()
            axes = (0, data_axis, w_axis, val_axis, 0, 0, o_axis, None)
            programs[k] = _compiled_many(loss_fn, optimizer, val_fn, plan, (*args, orders, np.int32(0)), axes,
                                         check_params=check_params, mesh=mesh)
            seconds["compile"] += time.perf_counter() - t
        return programs[k]

    chunks: list[tuple[np.ndarray, ...]] = []  # each call's (train (M, E, slots), val, epoch, done (M, E))
    st = args[0]
    if fresh:  # known on the host: no transfer, no wait for the states' program
        step, stopped, diverged = np.zeros((M,), np.int32), np.zeros((M,), bool), np.full((M,), -1, np.int32)
    else:
        step, stopped, diverged = (np.asarray(x) for x in
                                   jax.device_get((st.step, st.stopped, st.diverged_step)))

    def result(s: TrainState, step_np: np.ndarray, stopped_np: np.ndarray, div: np.ndarray) -> ManyResult:
        """The result of state ``s``, whose counters on the host are ``step_np``, ``stopped_np``, ``div``."""
        if mesh is not None:
            s = jax.device_put(s, jax.local_devices()[0])
        div = div.astype(np.int64)
        final = s.params
        if track_best and s.best_params is not None:
            use_best = jnp.isfinite(s.best_loss)  # (M,): the model saw at least one epoch end

            def best(b: Array, p: Array) -> Array:
                return jnp.where(use_best.reshape((-1,) + (1,) * (b.ndim - 1)), b, p)

            final = jax.tree_util.tree_map(best, s.best_params, s.params)

        def per_model(values: list[np.ndarray], keep: list[np.ndarray]) -> np.ndarray:
            """Each model's kept values of every call, in order, NaN-padded to one length: (M, T)."""
            rows = [np.concatenate([v[i][k[i]] for v, k in zip(values, keep, strict=True)]) if values
                    else np.zeros((0,), np.dtype(dtype)) for i in range(M)]
            out = np.full((M, max((len(r) for r in rows), default=0)), np.nan, np.dtype(dtype))
            for i, r in enumerate(rows):
                out[i, :len(r)] = r
            return out

        train = [c[0].reshape(M, -1) for c in chunks]
        done = [c[3] for c in chunks]
        history = History(train_loss=per_model(train, [~np.isnan(t) for t in train]),
                          epoch_loss=per_model([c[2] for c in chunks], done),
                          val_loss=per_model([c[1] for c in chunks], done) if has_val else per_model([], []))
        return ManyResult(params=final, state=s,
                          history=history,
                          steps=step_np.astype(np.int64), epochs=step_np.astype(np.int64) // spe,
                          diverged_step=div, stopped_early=stopped_np & (div < 0), seconds=dict(seconds))

    ahead: tuple[np.ndarray, np.ndarray, Any] | None = None  # (step, stopped) drawn for, and the orders
    try:
        while np.any((step < total) & ~stopped):
            t1, compile_before = time.perf_counter(), seconds["compile"]
            if ahead is not None and np.array_equal(ahead[0], step) and np.array_equal(ahead[1], stopped):
                orders, o_axis = ahead[2]
            else:
                orders, o_axis = orders_from(step, stopped)
            e0 = step // spe
            running = (step < total) & ~stopped
            live = np.int32(min(plan.chunk_epochs, int(np.max((n_epochs - e0)[running]))))  # epochs to run
            after, tl, vl, el, done, clean = program(False, orders, o_axis)(st, *args[1:], orders, live)
            if key_data is not None:  # the next chunk's orders, drawn while the device runs this one,
                # for the steps every running model reaches unless it stops early or diverges
                reached = np.where(running, np.minimum((e0 + live) * spe, total), step)
                ahead = ((reached, stopped, orders_from(reached, stopped))
                         if np.any((reached < total) & ~stopped) else None)
            # the chunk's counters and losses: one transfer
            got = jax.device_get((clean, after.step, after.stopped, after.diverged_step, tl, vl, el, done))
            if not bool(np.all(got[0])):  # a model diverged: every step checked
                after, tl, vl, el, done, _ = program(True, orders, o_axis)(st, *args[1:], orders, live)
                got = jax.device_get((None, after.step, after.stopped, after.diverged_step, tl, vl, el, done))
            st = after
            step, stopped, diverged = (np.asarray(x) for x in got[1:4])
            chunks.append(tuple(np.asarray(x) for x in got[4:]))
            seconds["train"] += time.perf_counter() - t1 - (seconds["compile"] - compile_before)
            if callback is not None:
                callback(engine.ChunkInfo(steps_done=int(step.max()), total_steps=int(total.max()),
                                          epochs_done=int((step // spe).max()),
                                          train_loss=chunks[-1][0].reshape(M, -1),
                                          val_loss=chunks[-1][1] if has_val else np.zeros((0,)), state=st))
    except KeyboardInterrupt as e:
        raise engine.TrainingInterrupted(result(st, step, stopped, diverged)) from e  # type: ignore[arg-type]
    return result(st, step, stopped, diverged)


def _per_model_loss_args(loss_args: Any, M: int, dtype: Any) -> tuple[Any, ...]:
    extra = arguments.as_loss_args(loss_args, dtype)
    for i, a in enumerate(extra):
        if a.ndim == 0 or a.shape[0] != M:
            raise InputError(f"loss_args[{i}]: expected a leading model axis of {M} (one value per model; "
                             f"np.full({M}, value) for a shared one), got shape {a.shape}")
    return extra


def _model_keys(key: Any, M: int) -> Array:
    """The models' keys, checked: one typed key (every model's, repeated by :func:`_init_states`)
    or (M,) keys."""
    if key is None:
        key = jax.random.key(0)
    if not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise InputTypeError(f"key: expected a typed PRNG key or (M,) keys (jax.random.key), "
                        f"got {type(key).__name__}")
    if key.shape not in ((), (M,)):
        raise InputError(f"key: expected one key or {M} keys, got keys of shape {key.shape}")
    return key


_INIT: dict[Any, Any] = {}


def _init_states(optimizer: Any, track_best: bool) -> Callable[[Any, Array], TrainState]:
    """``vmap`` of the engine's fresh state, one compiled program per optimizer; ``keys``: (M,)
    keys, or one key that every model gets."""
    def init(params: Any, keys: Array) -> TrainState:
        if keys.ndim == 0:
            keys = jnp.broadcast_to(keys, (_n_models(params),))
        return jax.vmap(lambda p, k: engine._init_state(p, optimizer, k, track_best=track_best))(params, keys)

    try:
        return _INIT.setdefault((optimizer, track_best), xla_cpu.jit_once(init))  # type: ignore[no-any-return]
    except TypeError:  # an unhashable optimizer
        return xla_cpu.jit_once(init)  # type: ignore[no-any-return]


def _model_mesh(devices: Any, M: int) -> Mesh | None:
    if devices is None:
        return None
    mesh = distributed.make_data_mesh(devices, axis=MODEL_AXIS)
    if any(d.process_index != jax.process_index() for d in mesh.devices.flat):
        raise InputError("devices: fit_many splits models over this process's own devices")
    if M % mesh.shape[MODEL_AXIS]:
        raise InputError(f"devices: {M} models do not split evenly over {mesh.shape[MODEL_AXIS]} devices")
    return mesh


def _spec(axis: Any) -> Callable[[Any], P]:
    return lambda leaf: P() if axis is None or jnp.ndim(leaf) == 0 else P(MODEL_AXIS)


def _put_models(tree: Any, mesh: Mesh, axis: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: jax.device_put(x, NamedSharding(mesh, _spec(axis)(x))), tree)


def _compiled_many(loss_fn: Any, optimizer: Any, val_fn: Any, plan: Any, args: tuple[Any, ...],
                   axes: tuple[Any, ...], *, check_params: bool, mesh: Mesh | None) -> Any:
    """The engine's chunk, ``jax.vmap``-ed over the models (``axes``: each argument's model axis)."""
    leaves, treedef = jax.tree_util.tree_flatten(args)
    avals = tuple((x.shape, x.dtype) for x in leaves)
    accelerate = mesh is None and accelerations.enabled("xla_cpu")

    def build() -> Any:
        n_params = sum(int(np.prod(jnp.shape(x)[1:])) for x in jax.tree_util.tree_leaves(args[0].params))
        first = jax.tree_util.tree_map(lambda a: a[0], args[0])
        data_one = tuple(a[0] for a in args[1]) if axes[1] == 0 else args[1]
        loss_one = tuple(a[0] for a in args[5])
        arguments.check_model(loss_fn, optimizer, first, data_one, loss_one, pass_weights=plan.pass_weights)
        chunk = engine._build_chunk(loss_fn, optimizer, val_fn, plan, check_params=check_params,
                                    batch_sharding=None)
        many = jax.vmap(chunk, in_axes=axes)
        if mesh is not None:  # the same program on every device, on its own models
            in_specs = tuple(jax.tree_util.tree_map(_spec(ax), a) for a, ax in zip(args, axes, strict=True))
            out_specs = (jax.tree_util.tree_map(_spec(0), args[0]), *[P(MODEL_AXIS)] * 5)
            many = jax.shard_map(many, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
        return xla_cpu.jit(many, accelerate=accelerate, tiny=xla_cpu.is_tiny_step(plan.batch, n_params),
                           args=args)

    key = ("many", loss_fn, optimizer, val_fn, plan, axes, check_params, treedef, avals, accelerate,
           None if mesh is None else tuple(d.id for d in mesh.devices.flat))
    return engine.cached_program(key, build)
