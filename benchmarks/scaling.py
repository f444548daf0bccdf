"""Data-parallel scaling of W3 (784-512-512-10 softmax MLP, batch 128) over 1/2/4/8 devices.

    python -m benchmarks.scaling                      # 1,2,4,8 simulated CPU devices
    python -m benchmarks.scaling --devices 1,2 --steps 32 --repeats 2 --out scaling.json

The device count of a JAX process is fixed when JAX starts, so every device count
runs in its own child process (``JAX_NUM_CPU_DEVICES=D``, ``JAX_PLATFORMS=cpu``
unless ``--real``). Each child trains W3 on synthetic data with
``jaxnn.training.fit(..., devices=D)`` (D=1: plain single-device ``fit``) and
reports the compile time and the best training time of ``--repeats`` runs
(compilation excluded), plus the final loss, so the table also shows that every
device count computes the same thing.

Simulated CPU devices share the machine's cores: on a 2-core machine 8 "devices"
are 8 partitions of one program run on 2 cores, so this measures the overhead of
partitioning and of the all-reduce, not a speedup. Real speedup needs real devices
(``--real`` on a multi-GPU host).

Prints a table, then one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
W3 = {"sizes": [784, 512, 512, 10], "activation": "relu", "loss": "cross_entropy", "batch_size": 128}


def child(devices: int, steps: int, n: int, repeats: int) -> dict:
    """Train W3 on ``devices`` devices in this process; return timings and the final loss."""
    import jax
    import numpy as np

    from jaxnn import training

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 784)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=n)]
    spe = training.steps_per_epoch(n, W3["batch_size"])
    config = training.TrainConfig(
        hidden=(512, 512), activation="relu", loss="cross_entropy", optimizer="sgd", lr=0.05,
        batch_size=W3["batch_size"], steps=steps, dtype="float32", init="he",
        chunk_epochs=-(-steps // spe),  # one compiled call: time the program, not the host loop
    )
    runs = []
    for _ in range(repeats):
        r = training.fit(config, X, Y, devices=None if devices == 1 else devices)
        runs.append(r)
    best = min(runs, key=lambda r: r.seconds["train"])
    return {
        "devices": devices,
        "platform": jax.devices()[0].platform,
        "device_count": jax.device_count(),
        "steps": best.steps,
        "compile_s": runs[0].seconds["compile"],  # later runs may hit fit's compile cache
        "train_s": best.seconds["train"],
        "train_s_all": [r.seconds["train"] for r in runs],
        "steps_per_s": best.steps / best.seconds["train"],
        "examples_per_s": best.steps * W3["batch_size"] / best.seconds["train"],
        "final_loss": float(best.history.train_loss[-1]),
    }


def run_child(devices: int, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    if not args.real:
        env.update(JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(devices))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-m", "benchmarks.scaling", "--child", str(devices), "--steps", str(args.steps),
           "--n", str(args.n), "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=args.timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"devices={devices}: child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n")[0])
    p.add_argument("--devices", default="1,2,4,8", help="comma list of device counts (default 1,2,4,8)")
    p.add_argument("--steps", type=int, default=64, help="optimizer steps per run (default 64)")
    p.add_argument("--n", type=int, default=2048, help="synthetic training rows (default 2048)")
    p.add_argument("--repeats", type=int, default=3, help="runs per device count; best kept (default 3)")
    p.add_argument("--real", action="store_true",
                   help="use the real devices (e.g. GPUs) instead of simulated CPU devices")
    p.add_argument("--timeout", type=float, default=600, help="seconds per device count (default 600)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.steps, args.n, args.repeats)))
        return 0

    counts = [int(s) for s in args.devices.split(",") if s.strip()]
    rows = [run_child(d, args) for d in counts]
    base = rows[0]
    for r in rows:
        r["speedup"] = base["train_s"] / r["train_s"]
        r["loss_rel_diff"] = abs(r["final_loss"] - base["final_loss"]) / abs(base["final_loss"])
    header = (f"{'devices':>7} {'platform':>8} {'compile s':>9} {'train s':>8} {'steps/s':>8} "
              f"{'examples/s':>10} {'speedup':>7} {'final loss':>10} {'rel diff':>9}")
    print(f"W3 784-512-512-10 relu/softmax, batch {W3['batch_size']}, {args.steps} SGD steps, "
          f"n={args.n} synthetic rows, float32, best of {args.repeats}; "
          f"host: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    print(header)
    for r in rows:
        print(f"{r['devices']:>7} {r['platform']:>8} {r['compile_s']:>9.2f} {r['train_s']:>8.3f} "
              f"{r['steps_per_s']:>8.1f} {r['examples_per_s']:>10.0f} {r['speedup']:>7.2f} "
              f"{r['final_loss']:>10.5f} {r['loss_rel_diff']:>9.1e}")
    result = {"benchmark": "scaling", "model": W3, "steps": args.steps, "n": args.n,
              "repeats": args.repeats, "simulated": not args.real, "cpu_count": os.cpu_count(),
              "loadavg": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d"), "rows": rows}
    text = json.dumps(result)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
