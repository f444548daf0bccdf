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
WORKLOADS = ("w1", "user", "cli", "w2", "w2_cores", "w2_memory", "w3")
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
            "date": datetime.date.today().isoformat(),
            # other work on the machine: the 1-minute load average when the run started
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str = "us_per_step") -> float | None:
    """a's µs per step over b's (wall, or ``key``), or None where either row is missing."""
    if not a or not b or key not in a or key not in b:
        return None
    return a[key] / max(b[key], 1e-3)


# Issue 14's "Proof": (summary key, what it is, target, ">=" or "<=")
PROOF = (
    ("user_tutorial_vs_jaxnn", "user model: tutorial loop / jaxnn.fit, per step", 3.0, ">="),
    ("user_jaxnn_vs_bare", "user model: jaxnn.fit / bare lax.scan, per step", 1.1, "<="),
    ("w1_engine_speedup_vs_numpy", "seed network: seed's NumPy / jaxnn.fit, per step", 8.0, ">="),
    ("w2_cores_throughput_ratio", "256-model sweep over every core / one model", 5.0, ">="),
    ("w3_fraction_of_step_matmuls", "W3: share of its step's own products", 0.8, ">="),
)


def proof(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Each of issue 14's benchmark targets with this run's value and whether it is met."""
    rows = []
    for key, what, target, op in PROOF:
        v = s.get(key)
        met = None if v is None else (v >= target if op == ">=" else v <= target)
        rows.append({"key": key, "what": what, "value": v, "target": f"{op} {target:g}", "met": met})
    return rows


def summarize(r: dict[str, Any]) -> dict[str, Any]:
    """The headline ratios against the targets."""
    w1, w2, w3, u = r["w1"], r["w2"], r["w3"], r["user"]
    us = max(w1["jaxnn"]["us_per_step"], 1e-3)
    single = 1e6 / us  # model-steps/s of one model in jaxnn's scan
    s = {
        # a user's own model (issue 14): jaxnn.fit against what a JAX user writes without it
        "user_tutorial_vs_jaxnn": _ratio(u["tutorial"], u.get("jaxnn")),
        "user_jaxnn_vs_bare": _ratio(u.get("jaxnn"), u["bare"]),
        "user_jaxnn_vs_bare_padded": _ratio(u.get("jaxnn"), u["bare_padded"]),
        "user_jaxnn_vs_bare_tuned": _ratio(u.get("jaxnn"), u["bare_tuned"]),
        # the bare scan with the engine's own tricks: what is left is the engine's bookkeeping
        "user_jaxnn_vs_bare_hoisted": _ratio(u.get("jaxnn"), u.get("bare_hoisted")),
        "user_tutorial_vs_bare": _ratio(u["tutorial"], u["bare"]),
        "user_v01_vs_jaxnn": _ratio(u.get("v01"), u.get("jaxnn")),
        # the same from the process's CPU seconds: steadier while other work shares the cores
        "user_tutorial_vs_jaxnn_cpu": _ratio(u["tutorial"], u.get("jaxnn"), "cpu_us_per_step"),
        "user_jaxnn_vs_bare_cpu": _ratio(u.get("jaxnn"), u["bare"], "cpu_us_per_step"),
        "user_jaxnn_vs_bare_hoisted_cpu": _ratio(u.get("jaxnn"), u.get("bare_hoisted"), "cpu_us_per_step"),
        "user_v01_vs_jaxnn_cpu": _ratio(u.get("v01"), u.get("jaxnn"), "cpu_us_per_step"),
        "w1_engine_speedup_vs_numpy": _ratio(w1["numpy"], w1.get("jaxnn_engine")),
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
        "targets": {"user_tutorial_vs_jaxnn": 3, "user_jaxnn_vs_bare": 1.1,
                    "w1_engine_speedup_vs_numpy": 8, "w1_speedup_vs_numpy": 8, "w1_speedup_vs_sklearn": 30,
                    "w2_throughput_ratio": 20,
                    "w2_1024_peak_rss_mb": 1024, "w3_fraction_of_step_matmuls": 0.9,
                    "w3_fraction_of_matmul": 0.9},
    }
    return s


def table(r: dict[str, Any]) -> str:
    w1, cli, w2, w2m, w3, s = r["w1"], r["cli"], r["w2"], r["w2_memory"], r["w3"], r["summary"]
    m = r["machine"]
    rows = [
        f"jaxnn benchmarks  {m['date']}  {m['platform']} ({m['device']}), {m['cpu_count']} CPU cores, "
        f"jax {m['jax']}{'  [--quick]' if r['quick'] else ''}, load average "
        f"{m.get('load_avg_1m')} -> {m.get('load_avg_1m_end')}",
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
    if w1.get("jaxnn_engine"):
        v = w1["jaxnn_engine"]
        name = "jaxnn.fit(loss_fn, sgd)"
        rows.append(f"  {name:<28}{v['us_per_step']:>10.2f}{v['us_per_step'] / us:>9.1f}x"
                    f"{v['compile_s']:>11.2f}")
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
    rows += ["", *user_table(r["user"])]
    rows += ["", "Issue 14 proof (ratios of this run):"]
    for p in r["proof"]:
        pct = p["key"].startswith("w3")
        op, target = p["target"].split()
        v = "n/a" if p["value"] is None else (f"{100 * p['value']:.0f}%" if pct else f"{p['value']:.2f}x")
        t = f"{100 * float(target):.0f}%" if pct else f"{target}x"
        met = {True: "met", False: "MISSED", None: "not measured"}[p["met"]]
        cpu = r["summary"].get(p["key"] + "_cpu")
        cpu_s = f"; CPU time {cpu:.2f}x" if cpu is not None else ""
        rows.append(f"  {p['what']:<52}{v:>8}  (target {op} {t}{cpu_s})  {met}")
    return "\n".join(rows)


USER_ROWS = (("tutorial", "tutorial: NumPy batches, jit step"),
             ("bare", "bare lax.scan, short batch dropped"),
             ("bare_padded", "bare lax.scan, short batch padded"),
             ("bare_tuned", "  same, compiled as jaxnn compiles"),
             ("bare_hoisted", "  same, and orders drawn before"),
             ("v01", "fit(TrainConfig(adam)), 0.1 API"), ("jaxnn", "jaxnn.fit(loss_fn, adam)"))


def user_table(u: dict[str, Any]) -> list[str]:
    """The rows of the user's-own-model workload: µs per step and the ratio to jaxnn.fit."""
    rows = [f"User's own model ({u['rows']}x{u['features']} {u['data']}, {u['hidden']} sigmoid, "
            f"batch {u['batch']}, {u['steps_per_epoch']} steps/epoch, {u['optimizer']}), marginal cost, "
            f"best of {u['rounds']} interleaved rounds:",
            f"  {'implementation':<36}{'µs/step':>9}{'vs jaxnn':>10}{'CPU µs/step':>13}{'first call s':>14}"]
    ref = u.get("jaxnn")
    for key, name in USER_ROWS:
        v = u.get(key)
        if v is None:
            rows.append(f"  {name:<36}{'(not measured)':>19}")
            continue
        ratio = f"{v['us_per_step'] / max(ref['us_per_step'], 1e-3):>9.2f}x" if ref else f"{'-':>10}"
        rows.append(f"  {name:<36}{v['us_per_step']:>9.2f}{ratio}{v['cpu_us_per_step']:>13.2f}"
                    f"{v['first_call_s']:>14.2f}")
    if ref and "max_abs_diff_vs_bare_padded" in ref:
        rows.append(f"  jaxnn.fit's final params vs the padded bare scan's: max |diff| "
                    f"{ref['max_abs_diff_vs_bare_padded']:.3g}")
    return rows


def _kept(out: Path) -> dict[str, Any]:
    """The keys of an existing ``out`` that this run does not write (``small_fits`` and its "before"
    figures are written by :mod:`benchmarks.small_fits` and by hand, ``fit_many`` by
    :mod:`benchmarks.many`): kept, not dropped."""
    try:
        old = json.loads(out.read_text())
    except (OSError, ValueError):
        return {}
    mine = ("small_fits", "fit_many")  # written by benchmarks.small_fits and benchmarks.many
    return {k: v for k, v in old.items() if k.startswith(mine)} if isinstance(old, dict) else {}


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
    results["machine"]["load_avg_1m_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results["summary"] = summarize(results)
    results["proof"] = proof(results["summary"])
    print(table(results))
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results.json")
    if out is not None:
        out.write_text(json.dumps({**_kept(out), **results}, indent=2) + "\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
