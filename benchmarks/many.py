"""``python -m benchmarks.many``: ``jaxnn.fit_many`` over a grid of shapes, side by side in one process.

For each shape (hidden layers, batch size, number of models M) it trains M copies of a plain MLP
-- a user's own loss, not the built-in network -- with adam for a few epochs three ways:

* ``fit_many``: one :func:`jaxnn.fit_many` call (``jax.vmap`` of the engine's chunk);
* ``separate``: M :func:`jaxnn.fit` calls, one after the other (the program compiled once);
* ``plain_vmap``: ``jax.jit(jax.vmap(train))`` of a bare ``lax.scan`` of the same step, with the
  same data orders (what a JAX user writes by hand, with no guard, padding or bookkeeping).

The process is a user's: no XLA flags (the package's small-loop flag is undone), caches at their
defaults.

Timings are the best of ``--reps`` runs after a warm-up (compilation excluded from all three);
the report gives each one's time per model-step and the ratios the issue sets targets on:
``fit_many`` against the plain vmap (>= 0.8x at every shape) and against separate fits.

``fit_many`` against the plain vmap is the **median of ``--pairs`` back-to-back pairs** (each
pair's ratio of time per step, the pair's order alternating): a shared machine's slow spells last
seconds, and the ratio of two best-of-3 times moved several times more from run to run than the
median of paired ratios (``docs/development.md``, "A steadier ratio"). The ratio of the two best
times over all their runs is kept beside it (``fit_many_vs_plain_vmap_of_minima``).
The last stdout line is the JSON; a full run (not ``--quick``) also records it as ``fit_many``
in ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import as_a_user_runs, record

as_a_user_runs()  # measured as a user's process runs: no XLA flags, caches at their defaults

BOSTON = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "boston.csv"
# (name, hidden, batch size, models, data): the three shapes
SHAPES = (("tiny", (13,), 23, 256, "boston"), ("medium", (64,), 128, 16, "digits"),
          ("wide", (256, 256), 128, 16, "digits"))


def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Standardised float32 inputs and float32 targets (one-hot for digits)."""
    if name == "boston":
        import csv

        with open(BOSTON) as f:
            rows = list(csv.DictReader(f))
        cols = [c for c in rows[0] if c != "medv"]
        X = np.array([[float(r[c]) for c in cols] for r in rows])[:354]
        y = np.array([float(r["medv"]) for r in rows])[:354, None]
        y = (y - y.mean()) / y.std()
    else:
        from sklearn.datasets import load_digits

        X, labels = load_digits(return_X_y=True)
        y = np.eye(10)[labels]
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1)
    return X.astype(np.float32), y.astype(np.float32)


def init(key: Any, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(key, len(sizes) - 1)
    return [{"W": jax.random.normal(k, (a, b)) * jnp.sqrt(1.0 / a), "b": jnp.zeros(b)}
            for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def predict(params: list[dict[str, Any]], x: Any) -> Any:
    import jax.numpy as jnp

    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["W"] + layer["b"])
    return x @ params[-1]["W"] + params[-1]["b"]


def loss_fn(params: list[dict[str, Any]], x: Any, y: Any) -> Any:
    return ((predict(params, x) - y) ** 2).sum(-1)


def measure(name: str, hidden: tuple[int, ...], batch: int, M: int, dataset: str, epochs: int,
            reps: int, pairs: int, separate_models: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import optax

    import jaxnn
    from jaxnn import shuffle

    X, Y = data(dataset)
    n = X.shape[0]
    sizes = (X.shape[1], *hidden, Y.shape[1])
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    lrs = np.geomspace(1e-4, 1e-2, M).astype(np.float32)
    params = jax.vmap(lambda k: init(k, sizes))(jax.random.split(jax.random.key(0), M))
    key = jax.random.key(1)

    def run_many() -> float:
        t = time.perf_counter()
        r = jaxnn.fit_many(loss_fn, params, (X, Y), optimizer=opt, hyperparams={"learning_rate": lrs},
                           key=key, batch_size=batch, epochs=epochs)
        jax.block_until_ready(r.params)
        return time.perf_counter() - t

    def run_separate() -> float:  # the first `separate_models` models, scaled to M
        t = time.perf_counter()
        for i in range(separate_models):
            p = jax.tree_util.tree_map(lambda a, i=i: a[i], params)
            r = jaxnn.fit(loss_fn, p, (X, Y), optimizer=opt, key=key, batch_size=batch, epochs=epochs)
            jax.block_until_ready(r.params)
        return (time.perf_counter() - t) * M / separate_models

    # the plain vmap: the same orders (the engine's, drawn on the host), full batches only
    nb = n // batch
    key_data = np.asarray(jax.random.key_data(key))
    orders = jnp.asarray(shuffle.epoch_orders(key_data, np.arange(epochs), n, n)[:, :nb * batch]
                         .reshape(epochs * nb, batch))
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

    def train(p: Any, lr: Any) -> Any:
        o = optax.adam(lr)

        def step(carry: Any, idx: Any) -> Any:
            p, s = carry
            g = jax.grad(lambda q: jnp.mean(loss_fn(q, Xj[idx], Yj[idx])))(p)
            u, s = o.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (p, o.init(p)), orders)[0][0]

    plain = jax.jit(jax.vmap(train))

    def run_plain() -> float:
        t = time.perf_counter()
        jax.block_until_ready(plain(params, jnp.asarray(lrs)))
        return time.perf_counter() - t

    run_many(), run_separate(), run_plain()  # compile (or load) everything first
    times: dict[str, list[float]] = {"fit_many": [], "separate": [], "plain_vmap": []}
    for _ in range(reps):  # alternately, so that slow spells of the machine fall on all three
        times["fit_many"].append(run_many())
        times["separate"].append(run_separate())
        times["plain_vmap"].append(run_plain())
    # fit_many against the plain vmap: back-to-back pairs, in alternating order
    pair_many, pair_plain = [], []
    for i in range(pairs):
        first, second = (run_many, run_plain) if i % 2 == 0 else (run_plain, run_many)
        a, b = first(), second()
        pair_many.append(a if first is run_many else b)
        pair_plain.append(b if first is run_many else a)
    times["fit_many"] += pair_many
    times["plain_vmap"] += pair_plain
    s = {k: min(v) for k, v in times.items()}
    # the plain vmap runs nb full batches per epoch; fit_many and fit run ceil(n / batch)
    steps_engine, steps_plain = -(-n // batch), nb
    per_step = {"fit_many": s["fit_many"] / steps_engine, "separate": s["separate"] / steps_engine,
                "plain_vmap": s["plain_vmap"] / steps_plain}
    paired = np.median((np.array(pair_plain) / steps_plain) / (np.array(pair_many) / steps_engine))
    return {"shape": name, "hidden": list(hidden), "batch": batch, "models": M, "rows": n, "epochs": epochs,
            "seconds": s, "us_per_model_step": {k: v / M * 1e6 / epochs for k, v in per_step.items()},
            "fit_many_vs_plain_vmap": float(paired),
            "fit_many_vs_plain_vmap_of_minima": per_step["plain_vmap"] / per_step["fit_many"],
            "pairs": pairs,
            "fit_many_vs_separate": per_step["separate"] / per_step["fit_many"],
            "plain_vmap_vs_separate": per_step["separate"] / per_step["plain_vmap"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smallest sizes: a smoke test")
    ap.add_argument("--reps", type=int, default=3, help="runs of each of the three (the best is kept)")
    ap.add_argument("--pairs", type=int, default=21,
                    help="back-to-back runs of fit_many and the plain vmap whose median ratio is reported")
    args = ap.parse_args(argv)
    rows = []
    for name, hidden, batch, M, dataset in SHAPES:
        if args.quick:
            hidden, M = tuple(min(h, 8) for h in hidden), min(M, 4)
        rows.append(measure(name, hidden, batch, M, dataset, epochs=1 if args.quick else 4,
                            reps=1 if args.quick else args.reps, pairs=1 if args.quick else args.pairs,
                            separate_models=min(M, 2 if args.quick else 16)))
    for r in rows:
        print(f"{r['shape']:>7} hidden {r['hidden']} batch {r['batch']} M={r['models']}: "
              f"fit_many {r['seconds']['fit_many']:.3f} s, separate {r['seconds']['separate']:.3f} s, "
              f"plain vmap {r['seconds']['plain_vmap']:.3f} s; fit_many = {r['fit_many_vs_plain_vmap']:.2f}x "
              f"the plain vmap (median of {r['pairs']} pairs; of the best times "
              f"{r['fit_many_vs_plain_vmap_of_minima']:.2f}x), "
              f"{r['fit_many_vs_separate']:.1f}x separate fits "
              f"(plain vmap {r['plain_vmap_vs_separate']:.1f}x)")
    out = {"fit_many": rows}
    if not args.quick:  # recorded beside make bench's other workloads
        record(out)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
