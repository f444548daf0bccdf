"""Many models in one compiled call: ``fit_many`` vmaps training over seeds, learning rates and L2.

The seed trains one network on one split and prints one number; a sweep turns that number into
error bars. :func:`fit_many` trains the grid ``seeds x lrs x l2s`` (seed-major order) of the
network described by a :class:`~jaxnn.training.TrainConfig` in **one** jitted ``lax.scan``:

* every model has its own parameters, optimizer state, learning rate and L2 coefficient --
  the per-model step is ``jax.vmap`` of the same hand-written (or autodiff) step that
  :func:`jaxnn.fit` runs;
* with ``shared_order=True`` (default) all models see the same minibatches (the data order
  of ``config.seed``). The first layers of all models are then one matmul ``(B, d) @
  (d, h*M)``, and so is their gradient. For one hidden layer (the seed's network) the
  sweep trains in the **packed** layout of :mod:`jaxnn.packed` -- model axis last, with its
  own hand-written backward -- about twice as fast as vmapping the one-model step;
  deeper networks use the vmapped step (``layout="vmap"`` forces it);
* with ``shared_order=False`` every model shuffles with its own seed, exactly as
  ``fit(config.replace(seed=s))`` would; the matmuls are then batched per model (slower).

Model ``i`` of a shared-order sweep equals ``fit(config.replace(lr=lr_i, l2=l2_i),
state=init_state(...seed_i...)._replace(key=<shuffle key of config.seed>))`` and model ``i``
of a per-model-order sweep equals ``fit(config.replace(seed=s_i, lr=lr_i, l2=l2_i))`` -- the
tests check both in float64.

What ``fit`` has and ``fit_many`` does not: early stopping (``patience`` must be None),
validation monitoring, callbacks and chunking (the sweep is one call). A model whose loss or
parameters become NaN/inf stops at its last finite parameters (``diverged_step[i] >= 0``)
while the others train on; nothing is raised.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
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

from jaxnn import distributed, models, packed, training, xla_cpu
from jaxnn.training import TrainConfig


@dataclasses.dataclass
class SweepResult:
    """What :func:`fit_many` returns; M is the number of models.

    Attributes:
        params: the layer list with a leading model axis: ``[{"W": (M, d_in, d_out),
            "b": (M, d_out)}, ...]``.
        seeds, lrs, l2s: (M,) the hyper-parameters of every model (seed-major grid).
        train_loss: (M, steps) minibatch loss of every step; NaN where a diverged model
            stopped.
        diverged_step: (M,) the step at which a model's loss or update became non-finite,
            -1 where it did not.
        steps: optimizer steps per model; seconds: ``{"compile": ..., "train": ...}``.
        shared_order: whether all models saw the same minibatches.
        layout: ``"packed"`` (:mod:`jaxnn.packed`) or ``"vmap"``: how the step was laid out.
        config: the base :class:`~jaxnn.training.TrainConfig`.
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
    layout: str
    config: TrainConfig

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    def model_params(self, i: int) -> Any:
        """Model ``i``'s parameters as an ordinary layer list (what ``fit`` returns)."""
        if not 0 <= i < self.n_models:
            raise ValueError(f"i: expected 0 <= i < {self.n_models}, got {i}")
        return jax.tree_util.tree_map(lambda a: a[i], self.params)

    def predict(self, X: Any) -> np.ndarray:
        """Outputs (M, n, k) of every model on X (n, d): predictions or logits."""
        with training.x64_context(self.config.dtype):
            Xj = jnp.asarray(np.asarray(X), dtype=jnp.dtype(self.config.dtype))
            if Xj.ndim != 2 or Xj.shape[1] != self.params[0]["W"].shape[1]:
                raise ValueError(f"X: expected shape (n, {self.params[0]['W'].shape[1]}), got {Xj.shape}")
            return np.asarray(_predict_many(self.params, Xj, self.config.activation))


@partial(jax.jit, static_argnums=2)
def _predict_many(params: Any, X: Array, activation: str) -> Array:
    return jax.vmap(models.predict, in_axes=(0, None, None))(params, X, activation)


def _hyper(name: str, values: Any, default: float, *, positive: bool) -> tuple[float, ...]:
    if values is None:
        return (float(default),)
    if isinstance(values, int | float | np.floating | np.integer) and not isinstance(values, bool):
        values = (values,)
    vals = tuple(values)
    if not vals:
        raise ValueError(f"{name}: expected at least one value")
    for v in vals:
        training._finite_float(name, v, positive=positive)
    return tuple(float(v) for v in vals)


def _seeds(seeds: Any, default: int) -> tuple[int, ...]:
    if seeds is None:
        return (default,)
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        raise TypeError(f"seeds: expected a sequence of integers such as range({seeds}), got an integer")
    vals = tuple(seeds)
    if not vals:
        raise ValueError("seeds: expected at least one seed")
    for s in vals:
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise TypeError(f"seeds: expected integers, got {s!r}")
    return tuple(int(s) for s in vals)


def grid(seeds: Sequence[int], lrs: Sequence[float], l2s: Sequence[float]
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed-major product ``seeds x lrs x l2s`` as three (M,) arrays."""
    rows = list(itertools.product(seeds, lrs, l2s))
    return (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows]),
            np.array([r[2] for r in rows]))


def _init_many(c: TrainConfig, seeds: np.ndarray, d: int, k: int, n: int) -> tuple[Any, Array]:
    """Stacked initial params (M, ...) and shuffle keys (M,) -- exactly ``init_state``'s."""
    sizes = models.layer_sizes(d, c.hidden, k)
    return _init_stacked(jnp.asarray(seeds, jnp.int32), sizes, c.init, c.dtype)


@partial(jax.jit, static_argnums=(1, 2, 3))
def _init_stacked(seeds: Array, sizes: tuple[int, ...], init: str, dtype: str) -> tuple[Any, Array]:
    def one(seed: Array) -> tuple[Any, Array]:
        k_init, k_shuffle = jax.random.split(jax.random.key(seed))
        return models.init_params(k_init, sizes, init=init, dtype=jnp.dtype(dtype)), k_shuffle

    return jax.vmap(one)(seeds)


LAYOUTS = ("auto", "packed", "vmap")
MODEL_AXIS = "models"  # the mesh axis fit_many(devices=...) splits the models over

# compiled sweeps by (config without seed/lr/l2, shapes, layout): a second sweep of the same
# shapes -- other seeds or learning rates -- compiles nothing
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
    layout: str = "auto",
    devices: int | Sequence[Any] | Mesh | None = None,
) -> SweepResult:
    """Train the grid ``seeds x lrs x l2s`` of ``config``'s network in one compiled call.

    Args:
        config: the network and training run; its ``lr``/``l2``/``seed`` are the defaults of
            ``lrs``/``l2s``/``seeds``. ``patience`` must be None.
        X: (n, d) training inputs; Y: (n, k) targets ((n,) is taken as (n, 1)).
        seeds: initialisation seeds (one model per seed, learning rate and L2 value).
        lrs: learning rates (> 0). l2s: L2 coefficients (>= 0).
        shared_order: all models see the minibatches of ``config.seed``'s shuffle (fast: the
            first layer of all models is one matmul); False: each model shuffles with its own
            seed, as separate ``fit`` calls would.
        layout: ``"auto"`` (packed where it applies: shared order and one hidden layer),
            ``"packed"`` (refused where it does not apply) or ``"vmap"`` (``jax.vmap`` of
            the one-model step). Both train the same models; packed is faster.
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
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if config.patience is not None:
        raise ValueError("patience: fit_many has no early stopping; set patience=None")
    if not isinstance(shared_order, bool):
        raise TypeError(f"shared_order: expected a bool, got {shared_order!r}")
    use_packed = _packed_applies(config, shared_order, layout)
    seed_v = _seeds(seeds, config.seed)
    lr_v = _hyper("lrs", lrs, config.lr, positive=True)
    l2_v = _hyper("l2s", l2s, config.l2, positive=False)
    seed_a, lr_a, l2_a = grid(seed_v, lr_v, l2_v)
    mesh = _model_mesh(devices, len(seed_a))
    with training.x64_context(config.dtype):
        dtype = jnp.dtype(config.dtype)
        Xj = training.as_2d_float("X", X, dtype)
        Yj = training.as_2d_float("Y", Y, dtype)
        if Xj.shape[0] != Yj.shape[0]:
            raise ValueError(f"X, Y: different numbers of rows: {Xj.shape[0]} and {Yj.shape[0]}")
        n, d = Xj.shape
        k = Yj.shape[1]
        n_steps = training.total_steps(config, n)
        params, keys = _init_many(config, seed_a, d, k, n)
        if shared_order:
            keys = jax.random.split(jax.random.key(config.seed))[1]
        has_l2 = bool(np.any(l2_a > 0))
        lr_j = jnp.asarray(lr_a, dtype)
        l2_j = jnp.asarray(l2_a, dtype)
        args = (params, keys, lr_j, l2_j, Xj, Yj)
        per_model = P(MODEL_AXIS)
        specs = (per_model, P() if shared_order else per_model, per_model, per_model, P(), P())
        if mesh is not None:  # each device holds its models, and all the data
            args = tuple(jax.device_put(a, NamedSharding(mesh, sp))
                         for a, sp in zip(args, specs, strict=True))
        leaves, treedef = jax.tree_util.tree_flatten(args)
        key = (dataclasses.replace(config, seed=0, lr=1.0, l2=0.0), shared_order, use_packed, has_l2,
               treedef, tuple((x.shape, str(x.dtype)) for x in leaves),
               None if mesh is None else tuple(d.id for d in mesh.devices.flat))
        t0 = time.perf_counter()
        compiled = _COMPILED.get(key)
        if compiled is None:
            run = _build_sweep(config, n=n, n_steps=n_steps, shared_order=shared_order, has_l2=has_l2,
                               use_packed=use_packed)
            if mesh is not None:  # the same program on every device, on its own models
                run = jax.shard_map(run, mesh=mesh, in_specs=specs, out_specs=P(MODEL_AXIS),
                                    check_vma=False)
            # YNNPACK ran the packed step about 6x slower (1,650 against 250 µs at 256 models)
            compiled = _COMPILED[key] = xla_cpu.compile(jax.jit(run).lower(*args), no_ynnpack=use_packed)
            while len(_COMPILED) > _COMPILED_MAX:
                _COMPILED.popitem(last=False)
        t_compile = time.perf_counter() - t0
        t1 = time.perf_counter()
        params, losses, diverged = compiled(*args)
        losses_np = np.asarray(jax.device_get(losses))
        diverged_np = np.asarray(jax.device_get(diverged))
        if mesh is not None:  # ordinary single-device arrays again
            params = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), params)
        t_train = time.perf_counter() - t1
    return SweepResult(
        params=params, seeds=seed_a, lrs=lr_a, l2s=l2_a, train_loss=losses_np,
        diverged_step=diverged_np, steps=n_steps,
        seconds={"compile": t_compile, "train": t_train}, shared_order=shared_order,
        layout="packed" if use_packed else "vmap", config=config,
    )


def _model_mesh(devices: Any, n_models: int) -> Mesh | None:
    """The one-axis ``("models",)`` mesh of ``devices`` (None: one device)."""
    if devices is None:
        return None
    mesh = distributed.make_data_mesh(devices, axis=MODEL_AXIS)
    if any(d.process_index != jax.process_index() for d in mesh.devices.flat):
        raise ValueError("devices: fit_many splits models over this process's own devices")
    n_dev = mesh.shape[MODEL_AXIS]
    if n_models % n_dev:
        raise ValueError(f"devices: {n_models} models do not split evenly over {n_dev} devices; "
                         f"choose seeds x lrs x l2s divisible by {n_dev}")
    return mesh


def _packed_applies(c: TrainConfig, shared_order: bool, layout: str) -> bool:
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    applies = shared_order and len(c.hidden) == 1
    if layout == "packed" and not applies:
        raise ValueError(f"layout: 'packed' needs shared_order=True and one hidden layer, got "
                         f"shared_order={shared_order} and hidden={c.hidden}")
    return applies and layout != "vmap"


def _build_sweep(c: TrainConfig, *, n: int, n_steps: int, shared_order: bool, has_l2: bool,
                 use_packed: bool = False) -> Any:
    """``run(params, keys, lrs (M,), l2s (M,), X, Y)`` -> (params, losses (M, steps), diverged (M,))."""
    nb = training.steps_per_epoch(n, c.batch_size)
    n_epochs = training.total_epochs(c, n)
    # the optimizer with lr = 1: every update is linear in the learning rate (sgd, momentum,
    # adam and the multiplicative schedules), so each model scales its own by lr_i
    unit = training.make_optimizer(dataclasses.replace(c, lr=1.0), nb, n_steps)
    loss_kw = dict(activation=c.activation, loss_name=c.loss, reduction=c.reduction, l2=0.0)

    def model_update(params: Any, opt_state: Any, grads: Any, value: Array, live: Array, lr: Array
                     ) -> tuple[Any, Any, Array, Array]:
        """One model's optimizer update and divergence guard (vmapped over models)."""
        with jax.numpy_dtype_promotion("standard"):  # optax's counters, as in training.fit
            updates, new_opt = unit.update(grads, opt_state, params)
        new, apply = training.guarded_update(params, jax.tree_util.tree_map(lambda u: lr * u, updates),
                                             value, live)
        return new, training._select(apply, new_opt, opt_state), apply, jnp.where(apply, value, jnp.nan)

    def value_and_grads(params: Any, l2s: Array, xb: Array, yb: Array, wb: Array, shared: bool
                        ) -> tuple[Array, Any]:
        """(M,) losses and per-model gradients (leading model axis)."""
        # the shared minibatch is not batched over models: vmap then turns x @ W1 for all models
        # into one (B, d) @ (d, M*h) matmul, and x^T @ dZ1 into one more
        axis = None if shared else 0
        value, grads = jax.vmap(
            lambda p, x, y, w: models.value_and_grad(p, x, y, w, gradients=c.gradients, **loss_kw),
            in_axes=(0, axis, axis, axis))(params, xb, yb, wb)
        if has_l2:  # as models.full_vjp adds it, with l2 a per-model array instead of a constant
            value = value + l2s * jax.vmap(models.l2_penalty)(params)
            grads = [{"W": g["W"] + l2s[:, None, None] * p["W"], "b": g["b"]}
                     for g, p in zip(grads, params, strict=True)]
        return value, grads

    def packed_update(params: Any, opt_state: Any, grads: Any, value: Array, active: Array, lrs: Array
                      ) -> tuple[Any, Any, Array, Array]:
        """``model_update`` of all models at once in the packed layout (model axis last).

        The optimizers are elementwise, so one update of the packed tree is every model's own.
        """
        with jax.numpy_dtype_promotion("standard"):
            updates, new_opt = unit.update(grads, opt_state, params)
        new = optax.apply_updates(params, jax.tree_util.tree_map(partial(packed.per_model, lrs), updates))
        ok = jnp.isfinite(value) & packed.finite_per_model(new)
        apply = active & ok

        def keep(a: Array, b: Array) -> Array:  # the shared step count (a scalar) always advances
            return packed.where_per_model(apply, a, b) if a.ndim else a

        return (jax.tree_util.tree_map(keep, new, params), jax.tree_util.tree_map(keep, new_opt, opt_state),
                active & ok, jnp.where(apply, value, jnp.nan))

    def packed_value_and_grads(params: Any, l2s: Array, xb: Array, yb: Array, wb: Array) -> tuple[Array, Any]:
        return packed.value_and_grad(params, xb, yb, wb, l2s if has_l2 else None, gradients=c.gradients,
                                     activation=c.activation, loss_name=c.loss, reduction=c.reduction)

    def run(params: Any, keys: Array, lrs: Array, l2s: Array, X: Array, Y: Array) -> Any:
        M = lrs.shape[0]
        if use_packed:
            params = packed.pack(params)
            opt_state = unit.init(params)
        else:
            opt_state = jax.vmap(unit.init)(params)
        live = jnp.ones((M,), bool)
        diverged = jnp.full((M,), -1, jnp.int32)

        def epoch(carry: Any, e: Array) -> Any:
            params, opt_state, live, diverged = carry
            if shared_order:
                idx, w = training.batch_indices(keys, e, n, c.batch_size, c.shuffle)
                xs = (X[idx], Y[idx], w.astype(X.dtype), jnp.arange(nb, dtype=jnp.int32))  # (nb, B, d), ...
            else:
                idx, w = jax.vmap(training.batch_indices, in_axes=(0, None, None, None, None))(
                    keys, e, n, c.batch_size, c.shuffle)  # (M, nb, B)
                xs = (jnp.swapaxes(X[idx], 0, 1), jnp.swapaxes(Y[idx], 0, 1),  # (nb, M, B, ...)
                      jnp.swapaxes(w, 0, 1).astype(X.dtype), jnp.arange(nb, dtype=jnp.int32))

            def step(carry: Any, batch: Any) -> Any:
                params, opt_state, live, diverged = carry
                xb, yb, wb, i = batch
                t = e * nb + i  # the global step index
                active = live & (t < n_steps)
                if use_packed:
                    value, grads = packed_value_and_grads(params, l2s, xb, yb, wb)
                    new_p, new_o, still, value = packed_update(params, opt_state, grads, value, active, lrs)
                else:
                    value, grads = value_and_grads(params, l2s, xb, yb, wb, shared_order)
                    new_p, new_o, still, value = jax.vmap(model_update)(
                        params, opt_state, grads, value, active, lrs)
                diverged = jnp.where(active & ~still, t, diverged)
                live = live & (still | ~active)
                return (new_p, new_o, live, diverged), value

            carry, losses = jax.lax.scan(step, (params, opt_state, live, diverged), xs)
            return carry, losses  # (nb, M)

        (params, _, _, diverged), losses = jax.lax.scan(
            epoch, (params, opt_state, live, diverged), jnp.arange(n_epochs, dtype=jnp.int32))
        losses = losses.reshape(n_epochs * nb, M)[:n_steps].T  # (M, steps)
        return (packed.unpack(params) if use_packed else params), losses, diverged

    return run



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
