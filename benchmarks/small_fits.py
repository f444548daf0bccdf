"""Time to result on small data: what a user waits for, jaxnn against scikit-learn (issue 16).

``python -m benchmarks.small_fits`` (``make bench`` runs it) times, each in fresh processes and side
by side in one run:

* **first fit** -- a fresh process's first ``MLPClassifier(hidden_layer_sizes=(64,), max_iter=40)
  .fit`` on the standardised digits (imports excluded), jaxnn with an empty and with a warm cache;
* **grid search** -- ``GridSearchCV``, 3 folds x 6 points (alpha x learning_rate_init), max_iter 30,
  with ``n_jobs=1``, ``n_jobs=2`` (joblib's process workers: their start-up included) and
  ``n_jobs=2`` on joblib's threading backend (imports excluded), then the same search again in the
  same process (``again_s``: joblib reuses its workers);
* **partial_fit** -- a stream of 12 chunks of different sizes (50-199 rows);
* **the CLI** -- ``jaxnn train`` on the seed's Boston data, 10,000 steps, a whole cold process with a
  warm cache, against the seed's own NumPy script (:mod:`benchmarks.seed_script`), and
  ``jaxnn --help``.

Every jaxnn row prints where its time went -- tracing, lowering, XLA compiling (which includes
loading from the persistent cache, shown apart too), and the rest (running, transfers, Python) --
from JAX's own monitoring events,
and the ratios are printed against scikit-learn's wall in the same run. The JSON goes under the
``small_fits`` key of ``benchmarks/results.json`` (the other keys are kept). ``--quick`` shrinks
every case to a smoke test.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BOSTON_CSV = ROOT.parent / "shared" / "datasets" / "boston.csv"
CASES = ("first_fit", "grid", "partial_fit")
GRID = {"alpha": [1e-4, 1e-3, 1e-2], "learning_rate_init": [1e-3, 1e-2]}

# --- what runs inside each child process ------------------------------------------------------


def _events() -> dict[str, Any]:
    """Start collecting JAX's compile events; the dict fills as JAX reports them."""
    import jax

    got: dict[str, Any] = {"trace": 0.0, "lower": 0.0, "compile": 0.0, "cache_load": 0.0, "programs": []}
    names = {"/jax/core/compile/jaxpr_trace_duration": "trace",
             "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
             "/jax/core/compile/backend_compile_duration": "compile",
             "/jax/compilation_cache/cache_retrieval_time_sec": "cache_load"}

    def on(event: str, duration: float, **kw: Any) -> None:
        if event in names:
            got[names[event]] += duration
        if event == "/jax/core/compile/backend_compile_duration":
            got["programs"].append(str(kw.get("fun_name")))

    jax.monitoring.register_event_duration_secs_listener(on)
    return got


def _digits() -> tuple[Any, Any]:
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


class _Search:
    """``GridSearchCV(est, grid, cv=3, n_jobs=n_jobs)``, fitted under joblib's ``backend`` if given."""

    def __init__(self, est: Any, grid: dict[str, Any], n_jobs: int, backend: str | None) -> None:
        from sklearn.model_selection import GridSearchCV

        self.search, self.backend = GridSearchCV(est, grid, cv=3, n_jobs=n_jobs), backend

    def fit(self, X: Any, y: Any) -> Any:
        import contextlib

        import joblib

        ctx = joblib.parallel_config(backend=self.backend) if self.backend else contextlib.nullcontext()
        with ctx:
            return self.search.fit(X, y)


def child(case: str, lib: str, quick: bool, n_jobs: int, backend: str | None = None) -> dict[str, Any]:
    """One timed case in this (fresh) process; imports happen before the clock starts."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    if lib == "sklearn":
        from sklearn.neural_network import MLPClassifier
        events = None
    else:
        from jaxnn.estimators import MLPClassifier
        events = _events()
    X, y = _digits()
    max_iter = 4 if quick else (40 if case == "first_fit" else 30)
    est = MLPClassifier(hidden_layer_sizes=(64,), max_iter=max_iter, random_state=0)
    t0 = time.perf_counter()
    if case == "first_fit":
        est.fit(X, y)
        score = est.score(X, y)
    elif case == "grid":
        grid = GRID if not quick else {"alpha": GRID["alpha"][:2]}
        search = _Search(est, grid, n_jobs, backend).fit(X, y)
        score = search.best_score_
    else:  # partial_fit over 12 chunks of different sizes
        rng = np.random.default_rng(0)
        sizes = rng.integers(50, 200, size=12 if not quick else 3)
        order = rng.permutation(len(X))
        start = 0
        classes = np.unique(y)
        for size in sizes:
            rows = order[start:start + size]
            start += size
            est.partial_fit(X[rows], y[rows], classes=classes)
        score = est.score(X, y)
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {"wall_s": wall, "score": float(score)}
    if case == "grid":  # the same search again in this process: joblib's workers are reused
        t1 = time.perf_counter()
        _Search(est, grid, n_jobs, backend).fit(X, y)
        out["again_s"] = time.perf_counter() - t1
    if events is not None:
        # JAX reports a persistent-cache hit inside its compile event: "compile" includes "cache_load"
        spent = events["trace"] + events["lower"] + events["compile"]
        out["split_s"] = {k: events[k] for k in ("trace", "lower", "compile", "cache_load")}
        out["split_s"]["rest"] = wall - spent
        out["programs"] = len(events["programs"])
        out["program_names"] = sorted(set(events["programs"]))
    return out


# --- the parent: fresh processes, side by side -------------------------------------------------


def _run_child(case: str, lib: str, quick: bool, env: dict[str, str], n_jobs: int = 1,
               backend: str | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.small_fits", "--child", case, "--lib", lib,
           "--n-jobs", str(n_jobs), *(["--quick"] if quick else []),
           *(["--backend", backend] if backend else [])]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{case}/{lib} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _best(rows: Any) -> dict[str, Any]:
    """The run with the smallest wall time (machines are noisy; each run is a fresh process)."""
    return min(rows, key=lambda r: r["wall_s"])


def _wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return time.perf_counter() - t0


def measure(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = {**os.environ}
        base.pop("JAXNN_NO_COMPILATION_CACHE", None)
        for case in CASES:
            # grid search: n_jobs 1 and 2 (joblib's default process workers), and 2 threads
            jobs = ((1, None), (2, None), (2, "threading")) if case == "grid" else ((1, None),)
            for n_jobs, backend in jobs:
                key = case if n_jobs == 1 else f"{case}_n_jobs_{n_jobs}" + (f"_{backend}" if backend else "")
                env = {**base, "JAXNN_CACHE_DIR": os.path.join(tmp, key, "jax")}
                # the faster of two fresh processes for scikit-learn and for the warm cache
                def run(lib: str, env: dict[str, str]) -> dict[str, Any]:
                    return _run_child(case, lib, quick, env, n_jobs, backend)  # noqa: B023

                row = {"sklearn": _best(run("sklearn", base) for _ in "ab"), "jaxnn_cold": run("jaxnn", env),
                       "jaxnn_warm": _best(run("jaxnn", env) for _ in "ab")}
                row["warm_vs_sklearn"] = row["jaxnn_warm"]["wall_s"] / row["sklearn"]["wall_s"]
                out[key] = row
        # the CLI end to end: a cold process with a warm cache, against the seed's own script
        steps = 500 if quick else 10_000
        data = str(BOSTON_CSV)
        env = {**base, "JAXNN_CACHE_DIR": os.path.join(tmp, "cli", "jax")}
        train = [sys.executable, "-m", "jaxnn.cli", "train", "--data", data, "--hidden", "13",
                 "--activation", "sigmoid", "--optimizer", "sgd", "--lr",
                 "1e-3", "--batch-size", "23", "--steps", str(steps), "--init", "normal", "--json"]
        cold = _wall(train, env)
        warm = min(_wall(train, env) for _ in range(3))
        seed = min(_wall([sys.executable, "-m", "benchmarks.seed_script", data, str(steps)], base)
                   for _ in range(3))
        help_s = min(_wall([sys.executable, "-m", "jaxnn.cli", "--help"], base) for _ in range(3))
        out["cli"] = {"steps": steps, "jaxnn_train_cold_s": cold, "jaxnn_train_warm_s": warm,
                      "seed_script_s": seed, "warm_vs_seed_script": warm / seed, "help_s": help_s}
    g1, g2, g2t = out["grid"], out["grid_n_jobs_2"], out["grid_n_jobs_2_threading"]
    out["summary"] = {
        "first_fit_warm_vs_sklearn": out["first_fit"]["warm_vs_sklearn"],
        "first_fit_cold_s": out["first_fit"]["jaxnn_cold"]["wall_s"],
        "grid_warm_vs_sklearn": g1["warm_vs_sklearn"],
        "grid_n_jobs_2_vs_1_warm": g2["jaxnn_warm"]["wall_s"] / g1["jaxnn_warm"]["wall_s"],
        "grid_n_jobs_2_vs_1_warm_again": g2["jaxnn_warm"]["again_s"] / g1["jaxnn_warm"]["again_s"],
        "sklearn_grid_n_jobs_2_vs_1": g2["sklearn"]["wall_s"] / g1["sklearn"]["wall_s"],
        "grid_n_jobs_2_threading_vs_1_warm": g2t["jaxnn_warm"]["wall_s"] / g1["jaxnn_warm"]["wall_s"],
        "partial_fit_warm_vs_sklearn": out["partial_fit"]["warm_vs_sklearn"],
        "cli_warm_vs_seed_script": out["cli"]["warm_vs_seed_script"],
        "help_s": out["cli"]["help_s"],
        "targets": {"first_fit_warm_vs_sklearn": "<= 1.5", "first_fit_cold_s": "<= 2.5",
                    "grid_warm_vs_sklearn": "<= 1.0", "grid_n_jobs_2_vs_1_warm": "< 1.0",
                    "partial_fit_warm_vs_sklearn": "<= 10", "cli_warm_vs_seed_script": "<= 2.0",
                    "help_s": "<= 0.5"},
    }
    return out


def _print(res: dict[str, Any]) -> None:
    for key, row in res.items():
        if key in ("summary", "cli", "date", "load_avg_1m"):
            continue
        sk = row["sklearn"]["wall_s"]
        print(f"{key:22s} scikit-learn {sk:7.3f} s")
        for name in ("jaxnn_cold", "jaxnn_warm"):
            r = row[name]
            split = "  ".join(f"{k} {v:.3f}" for k, v in r["split_s"].items())
            again = f"  again {r['again_s']:.3f} s (scikit-learn {row['sklearn']['again_s']:.3f})" \
                if "again_s" in r else ""
            print(f"{'':22s} {name:12s} {r['wall_s']:7.3f} s ({r['wall_s'] / sk:5.2f}x)  [{split}]  "
                  f"programs {r['programs']}{again}")
    c = res["cli"]
    print(f"cli: jaxnn train {c['steps']} steps cold {c['jaxnn_train_cold_s']:.2f} s, warm "
          f"{c['jaxnn_train_warm_s']:.2f} s; seed script {c['seed_script_s']:.2f} s "
          f"({c['warm_vs_seed_script']:.2f}x); jaxnn --help {c['help_s']:.2f} s")
    print(json.dumps(res["summary"], indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", choices=CASES)
    ap.add_argument("--lib", choices=("sklearn", "jaxnn"), default="jaxnn")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--backend", default=None, help="joblib backend of the grid search (default: joblib's)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.lib, args.quick, args.n_jobs, args.backend)))
        return 0
    res = measure(args.quick)
    res["date"] = datetime.date.today().isoformat()
    res["load_avg_1m"] = os.getloadavg()[0]
    _print(res)
    if not args.quick:
        path = Path(args.out)
        doc = json.loads(path.read_text()) if path.is_file() else {}
        doc["small_fits"] = res
        path.write_text(json.dumps(doc, indent=2) + "\n")  # as benchmarks.run writes it
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
