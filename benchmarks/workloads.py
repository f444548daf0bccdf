"""The benchmark workloads; each runs in its own process so its peak RSS is its own.

``python -m benchmarks.workloads NAME [--quick]`` prints one JSON object (the last line).
Timings are wall seconds, best of ``reps`` runs; "marginal" costs are
``(time(2N steps) - time(N steps)) / N``: what one more step costs once everything is warm,
free of start-up and compilation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SEED_SHAPE = (354, 13)  # the seed's Boston training split
HIDDEN, BATCH, LR = 13, 23, 1e-3
BOSTON_CSV = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "boston.csv"


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardised synthetic data of the seed's shape: X (354, 13), y (354, 1), float32."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal(SEED_SHAPE).astype(np.float32)
    y = (np.tanh(X @ rng.standard_normal((13, 1))) + 0.1 * rng.standard_normal((354, 1)))
    return X, y.astype(np.float32)


def _best(fn: Any, reps: int) -> float:
    return min(fn() for _ in range(reps))


def _marginal_us(fn: Any, steps: int, reps: int) -> dict[str, float]:
    """µs per step from runs of N and 2N steps: (t(2N) - t(N)) / N, plus t(N) / N."""
    t1 = _best(lambda: fn(steps), reps)
    t2 = _best(lambda: fn(2 * steps), reps)
    return {"us_per_step": _marginal(t1, t2, steps) * 1e6, "us_per_step_total": t1 / steps * 1e6,
            "seconds_n_steps": t1}


def _marginal(t1: float, t2: float, steps: int) -> float:
    """Seconds per step from t(N) and t(2N); noise can make t(2N) <= t(N), then t(2N) / 2N."""
    return (t2 - t1) / steps if t2 > t1 else t2 / (2 * steps)


def jaxnn_seed_config(steps: int) -> Any:
    from jaxnn.training import TrainConfig

    # one compiled chunk for the whole run: the scan never returns to Python in between
    return TrainConfig(hidden=(HIDDEN,), activation="sigmoid", batch_size=BATCH, steps=steps,
                       optimizer="sgd", lr=LR, reduction="half_sum", chunk_epochs=10**6)


def w1(quick: bool) -> dict[str, Any]:
    """The seed's network: NumPy loop, MLPRegressor, per-step jit loop and jaxnn's scan."""
    import jax

    from benchmarks import baselines
    from jaxnn.training import fit

    X, Y = seed_data()
    steps = 500 if quick else 10_000
    reps = 1 if quick else 3
    kw = dict(hidden=HIDDEN, batch_size=BATCH, lr=LR)
    out: dict[str, Any] = {"steps": steps}
    # (a) the seed's own code -- the "NumPy loop implementing the seed's algorithm" -- and,
    # for perspective, the same mathematics in the fewest NumPy operations
    out["numpy"] = _marginal_us(lambda s: baselines.seed_numpy_loop(X, Y, steps=s, **kw), steps, reps)
    out["numpy_streamlined"] = _marginal_us(lambda s: baselines.numpy_loop(X, Y, steps=s, **kw), steps,
                                            reps)
    out["sklearn"] = _marginal_us(lambda s: baselines.sklearn_mlp(X, Y, steps=s, **kw), steps, 1)
    first: list[float] = []

    def jit_loop(s: int) -> float:
        t, t_first = baselines.jit_step_loop(X, Y, steps=s, **kw)
        first.append(t_first)
        return t

    out["jit_loop"] = _marginal_us(jit_loop, steps, reps)
    out["jit_loop"]["compile_s"] = min(first)
    compiles: list[float] = []

    def scan(s: int) -> float:
        r = fit(jaxnn_seed_config(s), X, Y)
        compiles.append(r.seconds["compile"])
        return r.seconds["train"]

    out["jaxnn"] = _marginal_us(scan, steps, reps)
    out["jaxnn"]["compile_s"] = compiles[0]
    out["device"] = str(jax.devices()[0].device_kind)
    return out


def cli(quick: bool) -> dict[str, Any]:
    """End-to-end ``jaxnn train`` in a fresh process: cold, then warm persistent compilation cache."""
    steps = 500 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        data = str(BOSTON_CSV)
        if not BOSTON_CSV.is_file():  # the seed's shape, written as a CSV
            X, Y = seed_data()
            data = os.path.join(tmp, "seedshape.csv")
            header = ",".join([f"x{i}" for i in range(13)] + ["y"])
            np.savetxt(data, np.hstack([X, Y]), delimiter=",", header=header, comments="")
        argv = [sys.executable, "-m", "jaxnn.cli", "train", "--data", data, "--optimizer", "sgd",
                "--lr", str(LR), "--batch-size", str(BATCH), "--steps", str(steps),
                "--init", "normal", "--json"]
        env = {**os.environ, "JAXNN_CACHE_DIR": os.path.join(tmp, "cache")}
        env.pop("JAXNN_NO_COMPILATION_CACHE", None)
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            p = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
            wall = time.perf_counter() - t0
            rep = json.loads(p.stdout)
            runs.append({"wall_s": wall, "compile_s": rep["seconds"]["compile"],
                         "train_s": rep["seconds"]["train"]})
    return {"steps": steps, "cold": runs[0], "warm": runs[1]}


def _sweep_rate(M: int, steps: int, devices: int | None = None) -> dict[str, Any]:
    """Marginal µs per step and model-steps/s of a sweep of M seed networks (M/4 seeds x 4 lrs)."""
    from jaxnn.sweep import fit_many

    X, Y = seed_data()
    lrs = [1e-3, 3e-3, 1e-2, 3e-2]
    seconds: dict[int, float] = {}
    compile_s = 0.0
    for s in (steps, 2 * steps):
        r = fit_many(jaxnn_seed_config(s), X, Y, seeds=range(max(M // len(lrs), 1)), lrs=lrs,
                     devices=devices)
        seconds[s] = r.seconds["train"]
        compile_s = compile_s or r.seconds["compile"]
    per_step = _marginal(seconds[steps], seconds[2 * steps], steps)
    return {"models": r.n_models, "compile_s": compile_s,
            "us_per_step": per_step * 1e6, "model_steps_per_s": r.n_models / per_step}


def w2(quick: bool, n_models: int | None = None) -> dict[str, Any]:
    """fit_many: seeds x 4 learning rates of the seed network, one compiled call, one device."""
    import jax

    M = n_models or (16 if quick else 256)
    steps = 200 if quick else 2_000
    # fit_many: jax.vmap of the engine's step over the models' states
    sweep = _sweep_rate(M, steps)
    return {"steps": steps, **sweep, "bound": _packed_bound(M, steps, devices=1),
            "device": str(jax.devices()[0].device_kind)}


def _packed_bound(M: int, steps: int, devices: int) -> dict[str, float]:
    """The packed step cut down to its matmuls, sigmoid and W1 update (``benchmarks.bounds``)."""
    from benchmarks.bounds import packed_step_bound_us

    us = packed_step_bound_us(seed_data()[0], models=M, hidden=13, batch_size=23, steps=steps,
                              devices=devices)
    return {"us_per_step": us, "model_steps_per_s": M / us * 1e6}


def w2_cores(quick: bool) -> dict[str, Any]:
    """W2 with the models split over every device: ``benchmarks.run`` starts this process with
    one simulated CPU device per core (``JAX_NUM_CPU_DEVICES``), or it finds the GPUs."""
    import jax

    M = 16 if quick else 256
    n_dev = max(d for d in range(1, jax.device_count() + 1) if M % d == 0)
    steps = 200 if quick else 2_000
    out = _sweep_rate(M, steps, devices=n_dev)
    return {**out, "devices": n_dev, "bound": _packed_bound(M, steps, devices=n_dev),
            "device": str(jax.devices()[0].device_kind)}


def w2_memory(quick: bool) -> dict[str, Any]:
    """1,024 models (256 seeds x 4 learning rates) of the seed network: peak RSS."""
    from jaxnn.sweep import fit_many

    X, Y = seed_data()
    steps = 100 if quick else 2_000
    r = fit_many(jaxnn_seed_config(steps), X, Y, seeds=range(256), lrs=[1e-3, 3e-3, 1e-2, 3e-2])
    return {"models": r.n_models, "steps": steps, "train_s": r.seconds["train"],
            "compile_s": r.seconds["compile"],
            "model_steps_per_s": r.n_models * steps / max(r.seconds["train"], 1e-9)}


def matmul_gflops(m: int, k: int, n: int) -> Any:
    """A timer of one (m, k) @ (k, n) float32 jnp.matmul: each call returns its GFLOP/s."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((m, k)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((k, n)), jnp.float32)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))

    def once() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(f(a, b))
        return 2 * m * k * n / (time.perf_counter() - t0) / 1e9

    return once


def step_matmul_shapes(B: int, sizes: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """The (m, k, n) of every product in one training step of an MLP with these layer sizes.

    Forward x @ W per layer, backward dW = x^T @ dZ per layer and dX = dZ @ W^T for every layer
    but the first (nothing needs dL/dX of the data).
    """
    pairs = list(itertools.pairwise(sizes))
    fwd = [(B, a, b) for a, b in pairs]
    dW = [(a, B, b) for a, b in pairs]
    dX = [(B, b, a) for a, b in pairs[1:]]
    return fwd + dW + dX


def step_matmuls_gflops(shapes: list[tuple[int, int, int]], repeat: int = 20, *,
                        with_update: bool = False) -> Any:
    """A timer of exactly these jnp.matmul products, all of them ``repeat`` times in one jitted
    loop: each call runs the loop once and returns its GFLOP/s.

    The products of one step, back to back and nothing else: the rate the training could reach if
    everything but its matmuls were free. Each iteration's inputs depend on the previous results
    (a negligible scalar nudge), so XLA cannot hoist the products out of the loop.

    ``with_update``: shapes as :func:`step_matmul_shapes` lists them, and after the products each
    layer's weight (the right operand of its forward product) takes an SGD update from its dW
    product -- one more pass over every weight, the least a training step adds to its products.
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    pairs = [(jnp.asarray(rng.standard_normal((m, k)), jnp.float32),
              jnp.asarray(rng.standard_normal((k, n)), jnp.float32)) for m, k, n in shapes]

    @jax.jit
    def run(pairs: Any) -> Any:
        def body(_: int, carry: Any) -> Any:
            nudge = sum(jnp.sum(a[:1] @ b[:, :1]) for a, b in carry) * 1e-30  # tiny, data-dependent
            outs = [a @ b for a, b in carry]
            new = [(a + nudge + 1e-30 * o[0, 0], b) for (a, b), o in zip(carry, outs, strict=True)]
            if with_update:
                layers = (len(shapes) + 1) // 3  # forward products first, then the dW products
                for i in range(layers):
                    new[i] = (new[i][0], new[i][1] - 1e-30 * outs[layers + i])
            return new
        return jax.lax.fori_loop(0, repeat, body, pairs)

    jax.block_until_ready(run(pairs))
    flops = repeat * sum(2 * m * k * n for m, k, n in shapes)

    def once() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(run(pairs))
        return flops / (time.perf_counter() - t0) / 1e9

    return once


def w3(quick: bool) -> dict[str, Any]:
    """784-512-512-10 softmax MLP, batch 128, one epoch of 60,000 synthetic samples."""
    import jax

    from benchmarks.baselines import textbook_mlp_epoch
    from jaxnn import xla_cpu
    from jaxnn.training import TrainConfig, fit

    n, d, k, B = (6_000, 784, 10, 128)
    hidden = (64, 64) if quick else (512, 512)
    if not quick:
        n = 60_000
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    cfg = TrainConfig(hidden=hidden, activation="relu", loss="cross_entropy", batch_size=B,
                      epochs=1, optimizer="sgd", lr=0.01, init="he", chunk_epochs=1)
    # Everything compiled first, then timed in interleaved rounds (best of each): the machine's
    # speed drifts by 10-20% over seconds, and every ratio below should see the same drift.
    compile_s = fit(cfg, X, Y).seconds["compile"]
    sizes = (d, *hidden, k)
    timers = {
        "jaxnn": lambda: fit(cfg, X, Y).seconds["train"],
        "textbook": textbook_mlp_epoch(X, Y, hidden=hidden, batch_size=B, lr=0.01),
        "same": step_matmuls_gflops(step_matmul_shapes(B, sizes)),
        "updated": step_matmuls_gflops(step_matmul_shapes(B, sizes), with_update=True),
        "ref": matmul_gflops(B * 16, d, hidden[0]),
    }
    runs: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(2 if quick else 5):
        for name, timer in timers.items():
            runs[name].extend(timer() for _ in range(1 if name in ("jaxnn", "textbook") else 3))
    epoch_s, textbook_s = min(runs["jaxnn"]), min(runs["textbook"])
    same, updated, ref = max(runs["same"]), max(runs["updated"]), max(runs["ref"])
    steps = -(-n // B)
    fwd = xla_cpu.step_flops(B, sizes)
    # backward: dW for every layer, dX for every layer but the first (nothing needs dL/dX)
    flops = steps * (fwd + fwd + (fwd - 2 * B * sizes[0] * sizes[1]))
    gflops = flops / epoch_s / 1e9
    return {"samples": n, "hidden": list(hidden), "batch": B, "steps": steps,
            "compile_s": compile_s, "epoch_s": epoch_s, "gflops": gflops,
            "step_matmuls_gflops": same, "fraction_of_step_matmuls": gflops / same,
            "step_matmuls_update_gflops": updated, "bound_fraction_of_step_matmuls": updated / same,
            "textbook_epoch_s": textbook_s,
            "textbook_fraction_of_step_matmuls": flops / textbook_s / 1e9 / same,
            "matmul_gflops": ref, "matmul_shape": [B * 16, d, hidden[0]], "fraction_of_matmul": gflops / ref,
            "device": str(jax.devices()[0].device_kind)}


WORKLOADS = {"w1": w1, "cli": cli, "w2": w2, "w2_cores": w2_cores, "w2_memory": w2_memory, "w3": w3}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("name", choices=sorted(WORKLOADS))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    result = WORKLOADS[args.name](args.quick)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
