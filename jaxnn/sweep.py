"""The seed network's sweeps: ``fit_grid`` trains ``seeds x lrs x l2s`` of one ``TrainConfig``.

The seed trains one network on one split and prints one number; a sweep turns that number into
error bars. :func:`fit_grid` is a thin layer over :func:`jaxnn.fit_many` (many models of any
model in one compiled program) with the built-in network's loss:

* **Hyper-parameters are runtime inputs.** The optimizer is
  ``optax.inject_hyperparams(lambda learning_rate, l2: chain(add_decayed_weights(l2, mask=weights),
  <config's optimizer at learning_rate>))``: every model's learning rate and L2 coefficient sit
  in its own optimizer state (``fit_many(hyperparams=...)``), so a sweep over other values -- or
  other seeds -- compiles nothing.
* **L2 lives in the optimizer.** ``optax.add_decayed_weights`` *before* the optimizer adds
  ``l2 * W`` to the gradient of every weight (biases are masked out): the gradient of
  ``loss + l2 * 0.5 * sum ||W||^2``, i.e. coupled L2 exactly as :func:`jaxnn.training.fit`
  trains it (adam sees the penalised gradient). So the **reported** per-step losses
  (``train_loss``) are the data loss alone, without the penalty.
* **Data order.** With ``shared_order=True`` (default) every model sees the minibatches of
  ``config.seed``'s data-order key (one key: the minibatch is gathered once for all models);
  with ``shared_order=False`` every model shuffles with its own seed, exactly as
  ``fit(config.replace(seed=s))`` would.
* **Divergence stops one model**: it keeps its last finite parameters while the others train on.

Model ``i`` of a shared-order sweep equals ``fit(config.replace(lr=lr_i, l2=l2_i),
state=init_state(...seed_i...)._replace(key=<data-order key of config.seed>))`` and model ``i``
of a per-model-order sweep equals ``fit(config.replace(seed=s_i, lr=lr_i, l2=l2_i))`` -- the
tests check both in float64. No early stopping (``patience`` must be None).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.sharding import Mesh

from jaxnn import engine, models, names, training, xla_cpu
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
    """(M, n, k): the network's forward, ``vmap``-ed over the models."""
    return jax.vmap(lambda p: models.predict(p, X, names.activation(activation)))(params)


def _hyper(name: str, values: Any, default: float, *, positive: bool) -> tuple[float, ...]:
    if values is None:
        return (float(default),)
    if isinstance(values, int | float | np.floating | np.integer) and not isinstance(values, bool):
        values = (values,)
    vals = tuple(values)
    if not vals:
        raise InputError(f"{name}: expected at least one value")
    for v in vals:
        names.finite_float(name, v, positive=positive)
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


@partial(xla_cpu.jit_once, static_argnums=(1, 2, 3))
def _init_stacked(seeds: Array, sizes: tuple[int, ...], init: str, dtype: str) -> tuple[Any, Array]:
    """Stacked initial params (M, ...) and data-order keys (M,): exactly ``training.init_state``'s."""
    def one(seed: Array) -> tuple[Any, Array]:
        k_init, k_shuffle = jax.random.split(jax.random.key(seed))
        params = models.init_params(k_init, sizes, init=names.initializer(init), dtype=jnp.dtype(dtype))
        return params, k_shuffle

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


def fit_grid(
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
    """Train the grid ``seeds x lrs x l2s`` of ``config``'s network in one :func:`jaxnn.fit_many` call.

    Args:
        config: the network and training run; its ``lr``/``l2``/``seed`` are the defaults of
            ``lrs``/``l2s``/``seeds``. ``patience`` must be None.
        X: (n, d) training inputs; Y: (n, k) targets ((n,) is taken as (n, 1)).
        seeds: initialisation seeds (one model per seed, learning rate and L2 value).
        lrs: learning rates (> 0). l2s: L2 coefficients (>= 0), applied by the optimizer.
        shared_order: all models see the minibatches of ``config.seed``'s shuffle; False: each
            model shuffles with its own seed, as separate ``fit`` calls would.
        devices: None (one device), or the devices to split the **models** over -- an int N,
            a list of devices or a ``Mesh`` with a ``"models"`` axis; the number of models must
            divide by the number of devices. On a CPU, N simulated devices
            (``JAX_NUM_CPU_DEVICES=N`` before Python starts, or ``jaxnn sweep --devices N``) put
            N cores to work.
    Returns:
        A :class:`SweepResult` with M = len(seeds) * len(lrs) * len(l2s) models.
    Raises:
        ValueError/TypeError: bad arguments, named.
    """
    from jaxnn import many

    if not isinstance(config, TrainConfig):
        raise InputTypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if config.patience is not None:
        raise InputError("patience: fit_grid has no early stopping; set patience=None")
    if not isinstance(shared_order, bool):
        raise InputTypeError(f"shared_order: expected a bool, got {shared_order!r}")
    seed_v = _seeds(seeds, config.seed)
    lr_v = _hyper("lrs", lrs, config.lr, positive=True)
    l2_v = _hyper("l2s", l2s, config.l2, positive=False)
    seed_a, lr_a, l2_a = grid(seed_v, lr_v, l2_v)
    with training.x64_context(config.dtype):
        dtype = jnp.dtype(config.dtype)
        Xj = training.as_2d_float("X", X, dtype)
        Yj = training.as_2d_float("Y", Y, dtype)
        if Xj.shape[0] != Yj.shape[0]:
            raise InputError(f"X, Y: different numbers of rows: {Xj.shape[0]} and {Yj.shape[0]}")
        n, d = Xj.shape
        n_steps = training.total_steps(config, n)
        if n_steps > engine.MAX_STEPS:
            raise InputError(f"epochs/steps: {n_steps} steps in all, above the limit of {engine.MAX_STEPS}")
        nb = training.steps_per_epoch(n, config.batch_size)
        base = dataclasses.replace(config, seed=0, lr=1.0, l2=0.0)  # what the compiled program depends on
        with_l2 = bool(np.any(l2_a > 0))
        optimizer = sweep_optimizer(base, nb, n_steps, with_l2)
        sizes = models.layer_sizes(d, config.hidden, Yj.shape[1])
        params, keys = _init_stacked(jnp.asarray(seed_a, jnp.int32), sizes, config.init, config.dtype)
        network = training.resolve(base, n)  # the loss and its reduction, as values
        res = many._fit_many(
            network.loss_fn, params, (np.asarray(Xj), np.asarray(Yj)), optimizer=optimizer,
            hyperparams={"learning_rate": lr_a, **({"l2": l2_a} if with_l2 else {})},
            key=training._key_parts(config)[1] if shared_order else keys,
            batch_size=config.batch_size, epochs=None, steps=n_steps, shuffle=config.shuffle,
            sample_weight=None, val_data=None, val_fn=None, patience=None, tol=0.0, restore_best=None,
            state=None, loss_args=(), callback=None, devices=devices,
            summed=network.summed)
    losses = np.full((len(seed_a), n_steps), np.nan, res.history.train_loss.dtype)
    losses[:, :res.history.train_loss.shape[1]] = res.history.train_loss
    return SweepResult(
        params=res.params, seeds=seed_a, lrs=lr_a, l2s=l2_a, train_loss=losses,
        diverged_step=res.diverged_step, steps=n_steps, seconds=res.seconds,
        shared_order=shared_order, config=config, state=res.state,
    )


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
