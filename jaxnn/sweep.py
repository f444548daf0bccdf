"""Many models in one compiled call: ``fit_many`` runs :func:`jaxnn.fit`'s chunk on M stacked models.

The seed trains one network on one split and prints one number; a sweep turns that number into
error bars. :func:`fit_many` trains the grid ``seeds x lrs x l2s`` (seed-major order) of the
network described by a :class:`~jaxnn.training.TrainConfig`. There is one training loop in
jaxnn, the engine's (:mod:`jaxnn.engine`), and one forward pass per model
(:func:`jaxnn.models.network`); a sweep runs them on the M models stacked:

* **The same step on stacked models.** Every leaf of the parameters and optimizer state carries
  a trailing model axis -- a weight is one ``(d_in, d_out, M)`` array -- and the engine's chunk
  (data order, padded last batch, divergence guard, per-step losses, epoch ends) runs once for
  all of them (``models=M`` of :func:`jaxnn.engine._build_chunk`): the network's layers take
  stacked parameters as they are (:func:`jaxnn.layers.dense`), its loss is (B, M), each model's
  flags and hyper-parameters are (M,) and broadcast against the trailing axis. Nothing about
  training is written twice. Results are returned model-leading.
* **Why stacked, not ``jax.vmap``.** ``fit_many`` used to ``jax.vmap`` the step over the models.
  ``vmap`` moves the model axis to the front at every broadcasting operation (bias, learning rate,
  guard), and XLA:CPU made those moves copies of the (B, M, hidden) activations at every step;
  the trailing layout needs none: a 256-model sweep of the seed network steps about 2x faster
  (docs/development.md).
* **Hyper-parameters are runtime inputs.** The optimizer is
  ``optax.inject_hyperparams(lambda learning_rate, l2: chain(add_decayed_weights(l2, mask=weights),
  <config's optimizer at learning_rate>))``: every model's learning rate and L2 coefficient sit
  in its own optimizer state, so a sweep over other values -- or other seeds -- compiles
  nothing, and no update has to be linear in the learning rate (schedules, adam, momentum are
  the optimizer's own).
* **L2 lives in the optimizer.** ``optax.add_decayed_weights`` *before* the optimizer adds
  ``l2 * W`` to the gradient of every weight (biases are masked out): the gradient of
  ``loss + l2 * 0.5 * sum ||W||^2``, i.e. coupled L2 exactly as :func:`jaxnn.training.fit`
  trains it (adam sees the penalised gradient; this is not adamw's decoupled decay). A loss
  function cannot take a per-model coefficient as an input, an optimizer state can. So the
  **reported** per-step losses (``train_loss``) are the data loss alone, without the penalty.
* **Data order.** With ``shared_order=True`` (default) every model sees the minibatches of
  ``config.seed``'s data-order key: the key is shared, so the gathered minibatch is too and the
  first layer of all models is one ``(B, d) @ (d, h*M)`` matmul.
  With ``shared_order=False`` every model shuffles with its own seed, exactly as
  ``fit(config.replace(seed=s))`` would.
* **Divergence stops one model.** Each state has its own ``stopped``/``diverged_step``: a model
  whose loss or parameters become NaN/inf keeps its last finite parameters while the others
  train on; nothing is raised. As in :func:`jaxnn.fit`, parameters are tested once per run and
  a run with a non-finite model is computed again with every step tested.

Model ``i`` of a shared-order sweep equals ``fit(config.replace(lr=lr_i, l2=l2_i),
state=init_state(...seed_i...)._replace(key=<data-order key of config.seed>))`` and model ``i``
of a per-model-order sweep equals ``fit(config.replace(seed=s_i, lr=lr_i, l2=l2_i))`` -- the
tests check both in float64.

What ``fit`` has and ``fit_many`` does not: early stopping (``patience`` must be None),
validation monitoring, callbacks and chunking (the sweep is one compiled call).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import math
import os
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn import compilation_cache, distributed, engine, models, training, xla_cpu
from jaxnn.errors import InputError, InputTypeError
from jaxnn.training import TrainConfig


@dataclasses.dataclass
class SweepResult:
    """What :func:`fit_many` returns; M is the number of models.

    Attributes:
        params: the layer list with a leading model axis: ``[{"W": (M, d_in, d_out),
            "b": (M, d_out)}, ...]``.
        seeds, lrs, l2s: (M,) the hyper-parameters of every model (seed-major grid).
        train_loss: (M, steps) minibatch data loss of every step (without the L2 penalty, which
            the optimizer applies); NaN where a diverged model stopped.
        diverged_step: (M,) the step at which a model's loss or update became non-finite,
            -1 where it did not.
        steps: optimizer steps per model; seconds: ``{"compile": ..., "train": ...}``.
        shared_order: whether all models saw the same minibatches.
        config: the base :class:`~jaxnn.training.TrainConfig`.
        state: the final :class:`~jaxnn.engine.TrainState` of all models (leading model axis on
            every per-model leaf; the optimizer state holds each model's ``learning_rate`` and
            ``l2`` in ``opt_state.hyperparams``).
    """

    params: Any
    seeds: np.ndarray
    lrs: np.ndarray
    l2s: np.ndarray
    train_loss: np.ndarray
    diverged_step: np.ndarray
    steps: int
    seconds: dict[str, float]
    shared_order: bool
    config: TrainConfig
    state: Any = None

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    def model_params(self, i: int) -> Any:
        """Model ``i``'s parameters as an ordinary layer list (what ``fit`` returns)."""
        if not 0 <= i < self.n_models:
            raise InputError(f"i: expected 0 <= i < {self.n_models}, got {i}")
        return jax.tree_util.tree_map(lambda a: a[i], self.params)

    def predict(self, X: Any) -> np.ndarray:
        """Outputs (M, n, k) of every model on X (n, d): predictions or logits."""
        with training.x64_context(self.config.dtype):
            Xj = jnp.asarray(np.asarray(X), dtype=jnp.dtype(self.config.dtype))
            if Xj.ndim != 2 or Xj.shape[1] != self.params[0]["W"].shape[1]:
                raise InputError(f"X: expected shape (n, {self.params[0]['W'].shape[1]}), got {Xj.shape}")
            return np.asarray(_predict_many(self.params, Xj, self.config.activation))


@partial(jax.jit, static_argnums=2)
def _predict_many(params: Any, X: Array, activation: str) -> Array:
    """(M, n, k): the network's one forward on the models stacked (model axis last), model-leading again."""
    stacked = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, -1), params)
    return jnp.moveaxis(models.predict(stacked, X, activation), -1, 0)


def _hyper(name: str, values: Any, default: float, *, positive: bool) -> tuple[float, ...]:
    if values is None:
        return (float(default),)
    if isinstance(values, int | float | np.floating | np.integer) and not isinstance(values, bool):
        values = (values,)
    vals = tuple(values)
    if not vals:
        raise InputError(f"{name}: expected at least one value")
    for v in vals:
        training._finite_float(name, v, positive=positive)
    return tuple(float(v) for v in vals)


def _seeds(seeds: Any, default: int) -> tuple[int, ...]:
    if seeds is None:
        return (default,)
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        raise InputTypeError(f"seeds: expected a sequence of integers such as range({seeds}), got an integer")
    vals = tuple(seeds)
    if not vals:
        raise InputError("seeds: expected at least one seed")
    for s in vals:
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise InputTypeError(f"seeds: expected integers, got {s!r}")
    return tuple(int(s) for s in vals)


def grid(seeds: Sequence[int], lrs: Sequence[float], l2s: Sequence[float]
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed-major product ``seeds x lrs x l2s`` as three (M,) arrays."""
    rows = list(itertools.product(seeds, lrs, l2s))
    return (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows]),
            np.array([r[2] for r in rows]))


@partial(jax.jit, static_argnums=(1, 2, 3))
def _init_stacked(seeds: Array, sizes: tuple[int, ...], init: str, dtype: str) -> tuple[Any, Array]:
    """Stacked initial params (M, ...) and data-order keys (M,): exactly ``training.init_state``'s."""
    def one(seed: Array) -> tuple[Any, Array]:
        k_init, k_shuffle = jax.random.split(jax.random.key(seed))
        return models.init_params(k_init, sizes, init=init, dtype=jnp.dtype(dtype)), k_shuffle

    return jax.vmap(one)(seeds)


# --- The optimizer with the hyper-parameters in its state -----------------------------------


def _weights_only(params: Any) -> Any:
    """The L2 mask: True for every layer's ``W``, False for its ``b`` (as ``models.l2_penalty``)."""
    return [{name: name == "W" for name in layer} for layer in params]


@functools.lru_cache(maxsize=16)
def sweep_optimizer(c: TrainConfig, steps_per_epoch: int, total_steps: int, with_l2: bool
                    ) -> optax.GradientTransformation:
    """``c``'s optimizer with ``learning_rate`` (and ``l2``) as runtime inputs in its state.

    ``optax.inject_hyperparams`` keeps them in ``opt_state.hyperparams`` (in the params' dtype);
    ``c.lr``/``c.l2`` are only the initial values, which :func:`fit_many` replaces per model. L2
    is ``add_decayed_weights`` ahead of the optimizer (coupled L2, the gradient of the penalised
    loss), present only when some model has ``l2 > 0``. One object per (config without its
    seed/lr/l2, run shape): the compiled sweep is keyed by it.
    """
    def make(learning_rate: Any, l2: Any = 0.0) -> optax.GradientTransformation:
        opt = training.make_optimizer(c, steps_per_epoch, total_steps, lr=learning_rate)
        return optax.chain(optax.add_decayed_weights(l2, mask=_weights_only), opt) if with_l2 else opt

    hypers = {"learning_rate": c.lr, **({"l2": c.l2} if with_l2 else {})}
    return optax.inject_hyperparams(make)(**hypers)


def _with_hypers(opt_state: Any, lr: Array, l2: Array) -> Any:
    """``opt_state`` with this model's learning rate and L2 coefficient."""
    hp = dict(opt_state.hyperparams)
    hp["learning_rate"] = lr.astype(hp["learning_rate"].dtype)
    if "l2" in hp:
        hp["l2"] = l2.astype(hp["l2"].dtype)
    return opt_state._replace(hyperparams=hp)


MODEL_AXIS = "models"  # the mesh axis fit_many(devices=...) splits the models over

# compiled sweeps by (config without seed/lr/l2, shapes, check_params, mesh): a second sweep of
# the same shapes -- other seeds, learning rates or L2 values -- compiles nothing
_COMPILED: collections.OrderedDict[Any, Any] = collections.OrderedDict()
_COMPILED_MAX = 8


def fit_many(
    config: TrainConfig,
    X: Any,
    Y: Any,
    *,
    seeds: Sequence[int] | None = None,
    lrs: Sequence[float] | float | None = None,
    l2s: Sequence[float] | float | None = None,
    shared_order: bool = True,
    devices: int | Sequence[Any] | Mesh | None = None,
) -> SweepResult:
    """Train the grid ``seeds x lrs x l2s`` of ``config``'s network: the engine's chunk on the models stacked.

    Args:
        config: the network and training run; its ``lr``/``l2``/``seed`` are the defaults of
            ``lrs``/``l2s``/``seeds``. ``patience`` must be None.
        X: (n, d) training inputs; Y: (n, k) targets ((n,) is taken as (n, 1)).
        seeds: initialisation seeds (one model per seed, learning rate and L2 value).
        lrs: learning rates (> 0). l2s: L2 coefficients (>= 0), applied by the optimizer.
        shared_order: all models see the minibatches of ``config.seed``'s shuffle (fast: the
            first layer of all models is one matmul); False: each model shuffles with its own
            seed, as separate ``fit`` calls would.
        devices: None (one device), or the devices to split the **models** over -- an int N
            (the first N of ``jax.devices()``), a list of devices or a ``Mesh`` with a
            ``"models"`` axis. The models are independent, so each device trains its share
            with no communication at all; the number of models must divide by the number of
            devices. On a CPU, N simulated devices (``JAX_NUM_CPU_DEVICES=N`` before Python
            starts, or ``jaxnn sweep --devices N``) put N cores to work.
    Returns:
        A :class:`SweepResult` with M = len(seeds) * len(lrs) * len(l2s) models.
    Raises:
        ValueError/TypeError: bad arguments, named.
    """
    if not isinstance(config, TrainConfig):
        raise InputTypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if config.patience is not None:
        raise InputError("patience: fit_many has no early stopping; set patience=None")
    if not isinstance(shared_order, bool):
        raise InputTypeError(f"shared_order: expected a bool, got {shared_order!r}")
    seed_v = _seeds(seeds, config.seed)
    lr_v = _hyper("lrs", lrs, config.lr, positive=True)
    l2_v = _hyper("l2s", l2s, config.l2, positive=False)
    seed_a, lr_a, l2_a = grid(seed_v, lr_v, l2_v)
    mesh = _model_mesh(devices, len(seed_a))
    compilation_cache.enable_default()  # as jaxnn.fit: once per process, unless opted out
    with compilation_cache.scope(), training.x64_context(config.dtype):
        dtype = jnp.dtype(config.dtype)
        Xj = training.as_2d_float("X", X, dtype)
        Yj = training.as_2d_float("Y", Y, dtype)
        if Xj.shape[0] != Yj.shape[0]:
            raise InputError(f"X, Y: different numbers of rows: {Xj.shape[0]} and {Yj.shape[0]}")
        n, d = Xj.shape
        k = Yj.shape[1]
        n_steps = training.total_steps(config, n)
        if n_steps > engine.MAX_STEPS:
            raise InputError(f"epochs/steps: {n_steps} steps in all, above the limit of {engine.MAX_STEPS}")
        nb = training.steps_per_epoch(n, config.batch_size)
        base = dataclasses.replace(config, seed=0, lr=1.0, l2=0.0)  # what the compiled program depends on
        optimizer = sweep_optimizer(base, nb, n_steps, bool(np.any(l2_a > 0)))
        loss_fn = training._loss_fns(base)[0]
        states = _move(_init_states(config, seed_a, lr_a, l2_a, d, k, optimizer, shared_order),
                       to_stacked=True)
        data = (Xj, Yj)
        if mesh is not None:  # each device holds its models, and all the data
            states = jax.tree_util.tree_map(
                lambda x: jax.device_put(x, NamedSharding(mesh, _model_spec(x))), states)
            data = jax.device_put(data, NamedSharding(mesh, P()))
        seconds = {"compile": 0.0, "train": 0.0}

        def run(check_params: bool) -> Any:
            t0 = time.perf_counter()
            compiled = _compiled_sweep(loss_fn, optimizer, base, n, n_steps, states, data, mesh,
                                       check_params=check_params)
            t1 = time.perf_counter()
            out = jax.block_until_ready(compiled(states, data))
            seconds["compile"] += t1 - t0
            seconds["train"] += time.perf_counter() - t1
            return out

        out = run(check_params=False)  # each model's parameters tested once, at the end
        if not bool(jnp.all(out[-1])):  # a model diverged: again, every step's parameters tested
            out = run(check_params=True)
        final, train = out[0], out[1]  # train: (epochs, steps per epoch, M)
        losses = np.asarray(jax.device_get(train)).reshape(-1, len(seed_a)).T[:, :n_steps]
        if mesh is not None:  # ordinary single-device arrays again
            final = jax.device_put(final, jax.local_devices()[0])
        final = _move(final, to_stacked=False)
    return SweepResult(
        params=final.params, seeds=seed_a, lrs=lr_a, l2s=l2_a, train_loss=losses,
        diverged_step=np.asarray(final.diverged_step), steps=n_steps, seconds=seconds,
        shared_order=shared_order, config=config, state=final,
    )


def _init_states(c: TrainConfig, seeds: np.ndarray, lrs: np.ndarray, l2s: np.ndarray, d: int, k: int,
                 optimizer: optax.GradientTransformation, shared_order: bool) -> engine.TrainState:
    """The M models' fresh states, every per-model leaf with a leading model axis.

    Per model: params, optimizer state (with its learning rate and L2), the counters, and with
    ``shared_order=False`` the data-order key. Shared with ``shared_order=True``: the data-order key
    of ``c.seed``, so each minibatch is gathered once for all models.
    """
    dtype = jnp.dtype(c.dtype)
    params, keys = _init_stacked(jnp.asarray(seeds, jnp.int32), models.layer_sizes(d, c.hidden, k),
                                 c.init, c.dtype)
    opt_state = jax.vmap(lambda p, lr, l2: _with_hypers(optimizer.init(p), lr, l2))(
        params, jnp.asarray(lrs, dtype), jnp.asarray(l2s, dtype))
    shared_key = training._key_parts(c)[1]
    first = jax.tree_util.tree_map(lambda a: a[0], params)
    one = engine.init_state(first, optimizer, shared_key)
    counters = {f: jnp.broadcast_to(getattr(one, f), (len(seeds),)) for f in _COUNTERS}
    return one._replace(params=params, opt_state=opt_state, key=shared_key if shared_order else keys,
                        **counters)


# --- The models stacked on a trailing axis ---------------------------------------------------

# the per-model scalars of a TrainState, (M,) each; params and opt_state are per-model pytrees, the
# key is per-model or shared, and there are no best params (no patience)
_COUNTERS = tuple(f for f in engine.TrainState._fields
                  if f not in ("params", "opt_state", "key", "best_params"))


def _model_spec(leaf: Any) -> P:
    """How a stacked leaf (model axis last; a scalar: shared) splits over the ``"models"`` mesh axis."""
    ndim = jnp.ndim(leaf)
    return P() if ndim == 0 else P(*([None] * (ndim - 1)), MODEL_AXIS)


def _move(states: engine.TrainState, *, to_stacked: bool) -> engine.TrainState:
    """Params and optimizer state between the model-leading layout (what :class:`SweepResult`
    returns) and the engine's stacked one (model axis last)."""
    def move(a: Array) -> Array:
        return jnp.moveaxis(a, 0, -1) if to_stacked else jnp.moveaxis(a, -1, 0)

    return states._replace(params=jax.tree_util.tree_map(move, states.params),
                           opt_state=jax.tree_util.tree_map(move, states.opt_state))


def _compiled_sweep(loss_fn: Any, optimizer: Any, c: TrainConfig, n: int, n_steps: int,
                    states: engine.TrainState, data: tuple[Array, Array], mesh: Mesh | None, *,
                    check_params: bool) -> Any:
    """The compiled ``run(states, data) -> (states, train (E, nb, M), val, mean, done, clean (M,))``:
    the engine's chunk over the whole run, on the models stacked in ``states``."""
    nb = training.steps_per_epoch(n, c.batch_size)
    n_epochs = math.ceil(n_steps / nb)
    n_models = states.step.shape[0]
    n_devices = 1 if mesh is None else mesh.shape[MODEL_AXIS]
    plan = engine.make_plan(n, c.batch_size, chunk_epochs=n_epochs, shuffle=c.shuffle,
                            reduction="mean" if c.reduction == "mean" else "sum", bucket_rows=False)
    B = plan.batch
    knobs = engine.make_knobs(n, c.batch_size, n_steps, dtype=jnp.dtype(c.dtype))
    args = (states, data)
    leaves, treedef = jax.tree_util.tree_flatten(args)
    key = (loss_fn, optimizer, plan, n, n_steps, check_params, treedef,
           tuple((x.shape, str(x.dtype)) for x in leaves),
           None if mesh is None else tuple(dev.id for dev in mesh.devices.flat))
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    chunk = engine._build_chunk(loss_fn, optimizer, None, plan, check_params=check_params,
                                batch_sharding=None, models=n_models // n_devices)

    def many(s: engine.TrainState, data: tuple[Array, Array]) -> Any:
        return chunk(s, data, (), (), knobs, ())

    if mesh is not None:  # the same program on every device, on its own models
        state_specs = jax.tree_util.tree_map(_model_spec, states)
        per_step, per_epoch = P(None, None, MODEL_AXIS), P(None, MODEL_AXIS)  # (E, nb, M), (E, M)
        out_specs = (state_specs, per_step, per_epoch, per_epoch, per_epoch, P(MODEL_AXIS))
        many = jax.shard_map(many, mesh=mesh, in_specs=(state_specs, P()), out_specs=out_specs,
                             check_vma=False)
    # each model's step is the engine's: without YNNPACK where it is tiny, as the engine compiles it
    per_model = sum(int(np.prod(x.shape)) // n_models for x in jax.tree_util.tree_leaves(states.params))
    compiled = xla_cpu.jit(many, no_ynnpack=xla_cpu.is_tiny_step(B, per_model), args=args)
    _COMPILED[key] = compiled
    while len(_COMPILED) > _COMPILED_MAX:
        _COMPILED.popitem(last=False)
    return compiled


def _model_mesh(devices: Any, n_models: int) -> Mesh | None:
    """The one-axis ``("models",)`` mesh of ``devices`` (None: one device)."""
    if devices is None:
        return None
    mesh = distributed.make_data_mesh(devices, axis=MODEL_AXIS)
    if any(d.process_index != jax.process_index() for d in mesh.devices.flat):
        raise InputError("devices: fit_many splits models over this process's own devices")
    n_dev = mesh.shape[MODEL_AXIS]
    if n_models % n_dev:
        raise InputError(f"devices: {n_models} models do not split evenly over {n_dev} devices; "
                         f"choose seeds x lrs x l2s divisible by {n_dev}")
    return mesh


# --- Evaluation and the figure of the spread -------------------------------------------------


def evaluate_many(result: SweepResult, X: Any, y: Any, task: str) -> list[dict[str, float]]:
    """Per-model metrics on (X, y): the regression or classification report of each model.

    X: (n, d); y: (n,) targets or integer classes. Returns M dicts (see :mod:`jaxnn.metrics`).
    """
    from jaxnn import metrics

    out = result.predict(X)  # (M, n, k)
    if task == "classification":
        probs = np.asarray(jax.nn.softmax(jnp.asarray(out), axis=-1))
        return [metrics.classification_report(np.asarray(y), p) for p in probs]
    y_arr = np.asarray(y, dtype=out.dtype).reshape(out.shape[1:])
    return [metrics.regression_report(y_arr, o) for o in out]


def mean_std(reports: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean": ..., "std": ...}}`` over models (std with ddof=0; NaNs ignored)."""
    if not reports:
        return {}
    out = {}
    for name in reports[0]:
        vals = np.array([r[name] for r in reports], dtype=np.float64)
        finite = vals[np.isfinite(vals)]
        out[name] = {"mean": float(np.mean(finite)) if finite.size else float("nan"),
                     "std": float(np.std(finite)) if finite.size else float("nan")}
    return out


def spread_figure(lrs: Any, values: Any, *, metric: str,
                  path: str | os.PathLike[str] | None = None) -> Any:
    """Strip plot of a test metric per learning rate, with mean ± std bars (matplotlib Agg).

    lrs, values: (M,) each model's learning rate and metric. Saved to ``path`` if given.
    """
    from matplotlib.figure import Figure

    lr_a = np.asarray(lrs, dtype=np.float64)
    v_a = np.asarray(values, dtype=np.float64)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    levels = np.unique(lr_a)
    rng = np.random.default_rng(0)  # jitter only, so points of one learning rate do not overlap
    for j, lr in enumerate(levels):
        vals = v_a[lr_a == lr]
        ax.scatter(j + rng.uniform(-0.15, 0.15, vals.size), vals, s=10, alpha=0.6)
        ax.errorbar(j + 0.3, np.nanmean(vals), yerr=np.nanstd(vals), fmt="o", color="k", capsize=4)
    ax.set_xticks(range(len(levels)), [f"{lr:g}" for lr in levels])
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{len(v_a)} models: test {metric} by learning rate (mean ± std)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
