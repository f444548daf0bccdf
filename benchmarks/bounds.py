"""How fast W2's packed layout could possibly run here: the step cut down to its unavoidable work.

A step of M packed seed networks (``jaxnn.packed``) must at least run its two matmuls -- the
forward ``x (B, d) @ W1 (d, h*M)`` and the backward ``[x, 1]^T (d+1, B) @ dZ (B, h*M)`` -- one
sigmoid over the (B, h*M) hidden layer and the update of W1 and b1. :func:`packed_step_bound_us`
times exactly that and nothing else (no output layer, no loss, no dZ, no divergence test), over
the same devices as the sweep, so no implementation of the layout can take less time per step on
this machine. ``benchmarks.run`` reports the throughput ratio this bound allows beside W2's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from jaxnn import xla_cpu


def packed_step_bound_us(X: np.ndarray, *, models: int, hidden: int, batch_size: int, steps: int,
                         devices: int = 1) -> float:
    """Marginal µs per step of the cut-down packed step for ``models`` networks.

    X: (n, d) the data (only its first ``n // batch_size`` full batches are read). The models are
    split over ``devices`` devices with ``jax.shard_map``, as ``fit_many(devices=...)`` splits
    them. Compiled both with and without YNNPACK's dot kernels; the faster is the bound.
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from benchmarks.workloads import _marginal_us

    d, B = X.shape[1], batch_size
    nb = X.shape[0] // B
    Xj = jnp.asarray(X[:nb * B], jnp.float32)
    rng = np.random.default_rng(0)
    W1 = jnp.asarray(rng.standard_normal((d, hidden * models)) * 0.1, jnp.float32)
    b1 = jnp.zeros((hidden * models,), jnp.float32)

    def run(W1: Any, b1: Any, Xj: Any, n_steps: Any) -> Any:
        def step(i: Any, p: Any) -> Any:
            W1, b1 = p
            x = jax.lax.dynamic_slice(Xj, ((i % nb) * B, 0), (B, d))
            A = jax.nn.sigmoid(x @ W1 + b1)  # (B, h*M): the forward matmul and the activation
            g = jnp.concatenate([x, jnp.ones((B, 1), x.dtype)], axis=1).T @ A  # the backward matmul
            return W1 - 1e-6 * g[:-1], b1 - 1e-6 * g[-1]
        return jax.lax.fori_loop(0, n_steps, step, (W1, b1))

    args: tuple[Any, ...] = (W1, b1, Xj)
    if devices > 1:
        mesh = jax.make_mesh((devices,), ("models",), axis_types=(jax.sharding.AxisType.Auto,),
                             devices=jax.devices()[:devices])
        specs = (P(None, "models"), P("models"), P())
        args = tuple(jax.device_put(a, NamedSharding(mesh, s)) for a, s in zip(args, specs, strict=True))
        run = jax.shard_map(run, mesh=mesh, in_specs=(*specs, P()), out_specs=specs[:2])
    best = float("inf")
    for no_ynnpack in (True, False):
        compiled = xla_cpu.jit(run, accelerate=True, tiny=no_ynnpack, args=(*args, jnp.int32(steps)))
        jax.block_until_ready(compiled(*args, jnp.int32(1)))

        def seconds(n_steps: int, compiled: Any = compiled) -> float:
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(*args, jnp.int32(n_steps)))
            return time.perf_counter() - t0

        best = min(best, _marginal_us(seconds, steps, reps=3)["us_per_step"])
    return best
