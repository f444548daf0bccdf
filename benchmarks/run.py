"""``make bench``: jaxnn against NumPy, scikit-learn and a per-step jit loop, plus sweeps and a big MLP.

Runs every workload of :mod:`benchmarks.workloads` in its own process (so each peak RSS is its
own), prints a table and one JSON object (the last line), and writes the JSON to
``benchmarks/results.json`` (``--out``). ``--quick`` shrinks every workload to a smoke test
(seconds; the test suite runs it and checks the JSON's shape, never its speed).

Targets (ratios, since machines differ): W1 jaxnn >= 8x the NumPy loop (the seed's own code)
and >= 30x MLPRegressor per step; W2 256 models >= 20x the model-steps/s of one model, 1,024
models within 1 GB; W3 >= 90% of the measured matmul rate -- reported against the step's own
products run alone and against one large product. Beside W2, the bound of ``benchmarks.bounds``
(the packed step cut down to its unavoidable work); beside W3, the same epoch as plain JAX code
without jaxnn's divergence test (``benchmarks.baselines.textbook_mlp_epoch``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("w1", "cli", "w2", "w2_cores", "w2_memory", "w3")
# w2_cores splits the models over one simulated CPU device per core (no effect on a GPU)
WORKLOAD_ENV = {"w2_cores": {"JAX_NUM_CPU_DEVICES": str(os.cpu_count() or 1)}}


def run_workload(name: str, quick: bool) -> dict[str, Any]:
    """Run one workload in a fresh Python process; its last stdout line is its JSON."""
    cmd = [sys.executable, "-m", "benchmarks.workloads", name, *(["--quick"] if quick else [])]
    env = {**os.environ, **WORKLOAD_ENV.get(name, {})}
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"benchmark {name} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    import jax

    dev = jax.devices()[0]
    return {"platform": dev.platform, "device": str(dev.device_kind), "devices": jax.device_count(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "jax": jax.__version__,
            "date": datetime.date.today().isoformat()}


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    """The headline ratios against the targets."""
    w1, w2, w3 = r["w1"], r["w2"], r["w3"]
    us = max(w1["jaxnn"]["us_per_step"], 1e-3)
    single = 1e6 / us  # model-steps/s of one model in jaxnn's scan
    return {
        "w1_speedup_vs_numpy": w1["numpy"]["us_per_step"] / us,
        "w1_speedup_vs_sklearn": w1["sklearn"]["us_per_step"] / us,
        "w1_speedup_vs_jit_loop": w1["jit_loop"]["us_per_step"] / us,
        "w2_throughput_ratio": w2["model_steps_per_s"] / single,
        "w2_cores_throughput_ratio": r["w2_cores"]["model_steps_per_s"] / single,
        # the most the packed layout could reach here: its step cut down to matmuls, sigmoid, W1 update
        "w2_bound_ratio": w2["bound"]["model_steps_per_s"] / single,
        "w2_cores_bound_ratio": r["w2_cores"]["bound"]["model_steps_per_s"] / single,
        "w2_1024_peak_rss_mb": r["w2_memory"]["peak_rss_mb"],
        "w1_speedup_vs_numpy_streamlined": w1["numpy_streamlined"]["us_per_step"] / us,
        "w3_fraction_of_step_matmuls": w3["fraction_of_step_matmuls"],
        "w3_fraction_of_matmul": w3["fraction_of_matmul"],
        "w3_textbook_fraction_of_step_matmuls": w3["textbook_fraction_of_step_matmuls"],
        # the products plus one SGD update of every weight, nothing else: the most a step can reach
        "w3_bound_fraction_of_step_matmuls": w3["bound_fraction_of_step_matmuls"],
        "w3_epoch_vs_textbook": w3["epoch_s"] / w3["textbook_epoch_s"],
        "targets": {"w1_speedup_vs_numpy": 8, "w1_speedup_vs_sklearn": 30, "w2_throughput_ratio": 20,
                    "w2_1024_peak_rss_mb": 1024, "w3_fraction_of_step_matmuls": 0.9,
                    "w3_fraction_of_matmul": 0.9},
    }


def table(r: dict[str, Any]) -> str:
    w1, cli, w2, w2m, w3, s = r["w1"], r["cli"], r["w2"], r["w2_memory"], r["w3"], r["summary"]
    m = r["machine"]
    rows = [
        f"jaxnn benchmarks  {m['date']}  {m['platform']} ({m['device']}), {m['cpu_count']} CPU cores, "
        f"jax {m['jax']}{'  [--quick]' if r['quick'] else ''}",
        "",
        f"W1 seed network (354x13, 13 sigmoid, batch 23), marginal cost of {w1['steps']} steps:",
        f"  {'implementation':<28}{'µs/step':>10}{'vs jaxnn':>10}{'compile s':>11}",
    ]
    us = max(w1["jaxnn"]["us_per_step"], 1e-3)
    for key, name in (("numpy", "NumPy, the seed's own code"), ("numpy_streamlined", "NumPy, streamlined"),
                      ("sklearn", "sklearn MLPRegressor(sgd)"),
                      ("jit_loop", "jax.jit step, Python loop"), ("jaxnn", "jaxnn fit (one lax.scan)")):
        v = w1[key]
        comp = f"{v['compile_s']:.2f}" if "compile_s" in v else "-"
        rows.append(f"  {name:<28}{v['us_per_step']:>10.2f}{v['us_per_step'] / us:>9.1f}x{comp:>11}")
    rows += [
        f"  CLI `jaxnn train` {cli['steps']} steps end to end: cold cache {cli['cold']['wall_s']:.2f} s "
        f"(compile {cli['cold']['compile_s']:.2f} s), warm cache {cli['warm']['wall_s']:.2f} s "
        f"(compile {cli['warm']['compile_s']:.2f} s)",
        f"  peak RSS {w1['peak_rss_mb']:.0f} MiB",
        "",
        f"W2 fit_many: {w2['models']} models x {w2['steps']} steps: {w2['model_steps_per_s']:.3g} "
        f"model-steps/s = {s['w2_throughput_ratio']:.1f}x one model (compile {w2['compile_s']:.2f} s, "
        f"peak RSS {w2['peak_rss_mb']:.0f} MiB)",
        f"   split over {r['w2_cores']['devices']} devices (one per core): "
        f"{r['w2_cores']['model_steps_per_s']:.3g} model-steps/s = "
        f"{s['w2_cores_throughput_ratio']:.1f}x one model ({r['w2_cores']['us_per_step']:.0f} µs/step)",
        f"   bound (the step cut down to its two matmuls, sigmoid and W1 update): "
        f"{w2['bound']['us_per_step']:.0f} µs/step = {s['w2_bound_ratio']:.1f}x one model; over every core "
        f"{r['w2_cores']['bound']['us_per_step']:.0f} µs/step = {s['w2_cores_bound_ratio']:.1f}x",
        f"   {w2m['models']} models: {w2m['model_steps_per_s']:.3g} model-steps/s, "
        f"peak RSS {w2m['peak_rss_mb']:.0f} MiB",
        "",
        f"W3 MLP 784-{'-'.join(map(str, w3['hidden']))}-10 softmax, batch {w3['batch']}, "
        f"{w3['samples']} samples: {w3['epoch_s']:.2f} s/epoch, {w3['gflops']:.1f} GFLOP/s = "
        f"{100 * w3['fraction_of_step_matmuls']:.0f}% of the step's own jnp.matmul products alone "
        f"({w3['step_matmuls_gflops']:.1f} GFLOP/s), {100 * w3['fraction_of_matmul']:.0f}% of a "
        f"{'x'.join(map(str, w3['matmul_shape']))} jnp.matmul ({w3['matmul_gflops']:.1f} GFLOP/s)",
        f"   plain jax.grad + optax.sgd scan, no divergence test: {w3['textbook_epoch_s']:.2f} s/epoch = "
        f"{100 * s['w3_textbook_fraction_of_step_matmuls']:.0f}%; jaxnn takes "
        f"{s['w3_epoch_vs_textbook']:.2f}x its time",
        f"   bound (the products plus one SGD update of every weight, nothing else): "
        f"{w3['step_matmuls_update_gflops']:.1f} GFLOP/s = "
        f"{100 * s['w3_bound_fraction_of_step_matmuls']:.0f}% of the products alone",
        f"   compile {w3['compile_s']:.2f} s, peak RSS {w3['peak_rss_mb']:.0f} MiB",
        "",
        "targets: W1 >= 8x NumPy ({:.1f}x), >= 30x sklearn ({:.1f}x); W2 >= 20x ({:.1f}x; "
        "{:.1f}x over every core), "
        "1,024 models <= 1024 MiB ({:.0f}); W3 >= 90% ({:.0f}% / {:.0f}%)".format(
            s["w1_speedup_vs_numpy"], s["w1_speedup_vs_sklearn"], s["w2_throughput_ratio"],
            s["w2_cores_throughput_ratio"], s["w2_1024_peak_rss_mb"], 100 * s["w3_fraction_of_step_matmuls"],
            100 * s["w3_fraction_of_matmul"]),
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    p.add_argument("--out", type=Path, default=None,
                   help="write the JSON here (default benchmarks/results.json; --quick: nowhere)")
    args = p.parse_args(argv)
    results: dict[str, Any] = {"quick": args.quick, "machine": machine()}
    for name in WORKLOADS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_workload(name, args.quick)
    results["summary"] = summarize(results)
    print(table(results))
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results.json")
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
