"""Performance invariants that hold on any machine -- no timings asserted here.

* every step runs inside the compiled program (a scan over epochs of a scan over minibatches),
  never in a Python loop; the host sees one call per chunk;
* ``fit`` compiles once per shape: more chunks do not mean more compilations, and a second fit
  with another seed compiles nothing; ``fit_many`` likewise;
* the persistent compilation cache is written by one process and hit by the next; the opt-out
  env var and CLI flag turn it off;
* ``python -m benchmarks.run --quick`` produces the JSON the docs' benchmarks page is built from.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import compilation_cache, engine, training, xla_cpu
from jaxnn.sweep import fit_grid as fit_many
from jaxnn.training import TrainConfig, fit, init_state, make_optimizer

ROOT = Path(__file__).resolve().parents[1]


class CompileCounter:
    """Counts XLA backend compilations (JAX's own monitoring event) while active."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self) -> None:
        self.names: list[str] = []
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event: str, duration: float, **kwargs: object) -> None:
        if self.active and event == self.EVENT:
            self.names.append(str(kwargs.get("fun_name")))

    @property
    def count(self) -> int:
        """All compilations, the small eager helpers (init, transfers) included."""
        return len(self.names)

    def programs(self, name: str) -> int:
        """Compilations of the jitted function called ``name``."""
        return self.names.count(f"jit({name})")

    def __enter__(self) -> CompileCounter:
        self.names, self.active = [], True
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False


@pytest.fixture(scope="module")
def compiles() -> CompileCounter:
    return CompileCounter()


def _data(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, np.tanh(X.sum(axis=1, keepdims=True))


def _scan_lengths(jaxpr: jax.extend.core.ClosedJaxpr) -> list[int]:
    """Lengths of the scans in a jaxpr, outermost first (depth-first through sub-jaxprs)."""
    found: list[int] = []

    def walk(jp: jax.extend.core.Jaxpr) -> None:
        for eqn in jp.eqns:
            if eqn.primitive.name == "scan":
                found.append(eqn.params["length"])
            for v in eqn.params.values():
                for sub in v if isinstance(v, tuple | list) else (v,):
                    if hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
                        walk(sub.jaxpr)
                    elif hasattr(sub, "eqns"):
                        walk(sub)

    walk(jaxpr.jaxpr)
    return found


def test_steps_run_inside_the_compiled_scan():
    n, B, chunk = 50, 8, 3
    cfg = TrainConfig(hidden=(4,), batch_size=B, epochs=6, optimizer="sgd", chunk_epochs=chunk)
    X, Y = map(jnp.asarray, _data(n, 3))
    nb = math.ceil(n / B)
    plan = engine.make_plan(n, B, chunk_epochs=chunk, bucket_rows=False)
    knobs = engine.make_knobs(n, B, 6 * nb)
    loss_fn = training.resolve(cfg, cfg.batch_size).loss_fn
    run_chunk = engine._build_chunk(loss_fn, make_optimizer(cfg, nb, 6 * nb), None, plan,
                                    check_params=False, batch_sharding=None)
    args = (init_state(cfg, 3, 1, n), (X, Y), (), (), knobs, (), None, np.int32(chunk))
    lengths = _scan_lengths(jax.make_jaxpr(run_chunk)(*args))
    assert lengths[0] == chunk  # epochs of one chunk ...
    assert nb in lengths[1:]  # ... each a scan over all its minibatches


def test_host_sees_one_call_per_chunk_not_per_step():
    X, Y = _data(50, 3)
    calls: list[int] = []
    res = fit(TrainConfig(hidden=(4,), batch_size=8, epochs=10, chunk_epochs=5), X, Y,
              callback=lambda info: calls.append(info.steps_done))
    assert res.steps == 70 and calls == [35, 70]


def test_fit_compiles_once_per_shape(compiles):
    # Count the chunk program by name: how many eager helpers (init, transfers) compile depends
    # on which tests ran earlier in this worker, so their total is not a stable quantity.
    cfg = TrainConfig(hidden=(3,), batch_size=7, epochs=2, chunk_epochs=1, optimizer="sgd")
    with compiles as few:
        fit(cfg, *_data(22, 5))  # 2 chunks
    assert few.programs("run_chunk") == 1
    with compiles as many:
        fit(TrainConfig(hidden=(3,), batch_size=7, epochs=12, chunk_epochs=1, optimizer="sgd"),
            *_data(23, 6))  # 12 chunks of the same program
    assert many.programs("run_chunk") == 1
    with compiles as again:  # same shapes, another seed: everything is already compiled
        fit(TrainConfig(hidden=(3,), batch_size=7, epochs=12, chunk_epochs=1, optimizer="sgd", seed=9),
            *_data(23, 6))
    assert again.count == 0


def test_fit_many_is_one_program_reused_for_other_seeds(compiles):
    X, Y = _data(30, 4)
    cfg = TrainConfig(hidden=(3,), batch_size=8, steps=12, optimizer="sgd")
    fit_many(cfg, X, Y, seeds=range(4), lrs=[0.1, 0.2])
    with compiles as again:
        fit_many(cfg, X, Y, seeds=range(10, 14), lrs=[0.3, 0.01])
    assert again.count == 0


def test_sweep_compiles_without_the_option_on_a_jaxlib_that_lacks_it(monkeypatch):
    X, Y = _data(30, 4)
    cfg = TrainConfig(hidden=(3,), batch_size=8, steps=12, optimizer="sgd", seed=7)
    ref = fit_many(cfg, X, Y, seeds=range(3), lrs=[0.1])
    monkeypatch.setattr(xla_cpu, "NO_YNNPACK", {"xla_cpu_option_that_does_not_exist": ""})
    monkeypatch.setattr(engine, "_COMPILED", type(engine._COMPILED)())
    res = fit_many(cfg, X, Y, seeds=range(3), lrs=[0.1])
    np.testing.assert_allclose(res.train_loss, ref.train_loss, rtol=1e-5)


# --- jaxnn.xla_cpu: small loops as one function, YNNPACK off for tiny steps ---


def test_request_small_loops_adds_the_threshold_once_and_respects_the_user():
    env: dict[str, str] = {}
    assert xla_cpu.request_small_loops(env) is True
    assert env["XLA_FLAGS"] == xla_cpu.SMALL_LOOP_FLAG
    assert xla_cpu.request_small_loops(env) is False  # already there: not added twice
    env = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    assert xla_cpu.request_small_loops(env) is True
    assert env["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {xla_cpu.SMALL_LOOP_FLAG}"
    mine = {"XLA_FLAGS": "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1"}
    assert xla_cpu.request_small_loops(mine) is False and mine["XLA_FLAGS"].endswith("=1")
    for value, added in (("1", False), ("yes", False), ("0", True), ("", True), ("false", True)):
        env = {"JAXNN_NO_XLA_FLAGS": value}
        assert xla_cpu.request_small_loops(env) is added
        assert ("XLA_FLAGS" in env) is added


def test_importing_jaxnn_changes_nothing_in_the_process():
    script = ("import os, jax; import jaxnn, jaxnn.engine, jaxnn.training, jaxnn.models; "
              "print(repr(os.environ.get('XLA_FLAGS')), jax.config.jax_enable_x64)")
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXNN_NO_XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env=clean, cwd=ROOT, check=True).stdout.split()
    assert out == ["None", "False"]
    # the CLI owns its process and opts in
    cli = subprocess.run([sys.executable, "-c", "import os, jaxnn.cli; print(os.environ['XLA_FLAGS'])"],
                         capture_output=True, text=True, timeout=120, env=clean, cwd=ROOT, check=True)
    assert cli.stdout.strip() == xla_cpu.SMALL_LOOP_FLAG


def test_tiny_is_the_seed_network_not_the_large_mlp():
    assert xla_cpu.step_flops(23, (13, 13, 1)) == 2 * 23 * (13 * 13 + 13 * 1) == 8372
    assert xla_cpu.is_tiny_step(23, 13 * 13 + 13 + 13 + 1)
    assert not xla_cpu.is_tiny_step(128, 13 * 64 + 64 + 64 + 1)
    assert not xla_cpu.is_tiny_step(128, 784 * 512 + 512 * 512 + 512 * 10)


_LOOP_SCRIPT = textwrap.dedent("""
    import json, re, sys
    from jaxnn import xla_cpu
    xla_cpu.request_small_loops()  # the explicit opt-in, before JAX starts its backend
    import jax, numpy as np
    from jaxnn import engine, training, xla_cpu
    from jaxnn.training import TrainConfig, fit
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 13)); Y = X @ rng.standard_normal((13, 1))
    out = {}
    for name, hidden, batch in (("tiny", (13,), 23), ("large", (64,), 120)):
        r = fit(TrainConfig(hidden=hidden, activation="sigmoid", batch_size=batch, steps=40,
                            optimizer="sgd", lr=1e-3, dtype="float64"), X, Y)
        text = xla_cpu.compiled_text(next(reversed(engine._COMPILED.values())))
        # loops XLA compiled as one function: calls marked xla_cpu_small_call; the training
        # loop is the one that carries W1, f64[13, hidden]
        blocks = {m.group(1): m.group(0)
                  for m in re.finditer(r"^(?:ENTRY )?%(\\S+) .*?^}", text, re.S | re.M)}
        hoisted = re.findall(r'to_apply=%([^,\\s]+), frontend_attributes=[{]xla_cpu_small_call="true"', text)
        w1 = f"f64[13,{hidden[0]}]"
        out[name] = {"one_function": any(w1 in blocks.get(c, "") for c in hoisted),
                     "ynn": "__ynn_fusion" in text,
                     "loss": r.history.train_loss.tolist()}
    print(json.dumps({"backend": jax.default_backend(), **out}))
""")


def test_tiny_training_loop_compiles_as_one_function_with_the_same_numbers():
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXNN_NO_XLA_FLAGS")}
    run = lambda env: json.loads(subprocess.run(
        [sys.executable, "-c", _LOOP_SCRIPT], capture_output=True, text=True, timeout=300,
        env={**clean, **env}, cwd=ROOT, check=True).stdout.strip().splitlines()[-1])
    on, off = run({}), run({"JAXNN_NO_XLA_FLAGS": "1"})
    if on["backend"] == "cpu":  # XLA:CPU settings; other backends compile as they always do
        assert on["tiny"]["one_function"] and not on["tiny"]["ynn"]
        assert not off["tiny"]["one_function"]  # the opt-out leaves XLA's default: thunk by thunk
        assert on["large"]["ynn"]  # a step past TINY_STEP_FLOPS keeps XLA's YNNPACK matmuls
    for name in ("tiny", "large"):  # how it is compiled changes no result
        np.testing.assert_allclose(on[name]["loss"], off[name]["loss"], rtol=1e-12)


_ENABLE_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from jaxnn import compilation_cache
    os.environ["JAXNN_NO_COMPILATION_CACHE"] = "1"  # the opt-out is read at every call
    off = compilation_cache.enable(sys.argv[1])
    why = compilation_cache.why_off()
    del os.environ["JAXNN_NO_COMPILATION_CACHE"]
    on = compilation_cache.enable()  # the default: $JAXNN_CACHE_DIR
    print(json.dumps({"off": off, "why": why, "on": str(on), "why_on": compilation_cache.why_off()}))
""")


def test_enable_installs_the_environments_directory_unless_opted_out(tmp_path):
    """An explicit ``compilation_cache.enable()``: None and nothing created under the opt-out, else
    ``$JAXNN_CACHE_DIR``, created private. (A second process's hits on what the first stored:
    test_compile_once; the CLI's writes: test_default_path.)"""
    env = {k: v for k, v in os.environ.items() if k != "JAXNN_NO_COMPILATION_CACHE"}
    env["JAXNN_CACHE_DIR"] = str(tmp_path / "cache")
    p = subprocess.run([sys.executable, "-c", _ENABLE_SCRIPT, str(tmp_path / "off")], capture_output=True,
                       text=True, timeout=300, env=env, cwd=ROOT, check=True)
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["off"] is None and "JAXNN_NO_COMPILATION_CACHE" in got["why"]
    assert not (tmp_path / "off").exists()
    assert got["on"] == str(tmp_path / "cache") and got["why_on"] is None
    assert (tmp_path / "cache").is_dir()


def test_cli_flag_turns_the_cache_off(tmp_path, boston_csv):
    """``--no-compilation-cache`` writes nothing (that the CLI writes the cache by default is what
    every run of test_default_path checks)."""
    env = {**os.environ, "JAXNN_CACHE_DIR": str(tmp_path / "off")}
    env.pop("JAXNN_NO_COMPILATION_CACHE", None)
    subprocess.run([sys.executable, "-m", "jaxnn.cli", "--no-compilation-cache", "train", "--data",
                    str(boston_csv), "--steps", "3", "--json"], env=env, check=True, capture_output=True,
                   timeout=300)
    assert not (tmp_path / "off").exists()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXNN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache.default_dir() == tmp_path / "jaxnn" / "jax"
    monkeypatch.setenv("JAXNN_CACHE_DIR", str(tmp_path / "x"))
    assert compilation_cache.default_dir() == tmp_path / "x"
    for value, off in (("1", True), ("yes", True), ("0", False), ("", False), ("false", False)):
        monkeypatch.setenv("JAXNN_NO_COMPILATION_CACHE", value)
        assert compilation_cache.disabled_by_env() is off


def test_benchmark_quick_produces_the_report(tmp_path):
    out = tmp_path / "results.json"
    p = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r == json.loads(p.stdout.strip().splitlines()[-1])
    assert r["quick"] is True and r["machine"]["platform"] in ("cpu", "gpu", "cuda", "rocm", "tpu")
    for impl in ("numpy", "numpy_streamlined", "sklearn", "jit_loop", "jaxnn"):
        assert r["w1"][impl]["us_per_step"] > 0
    assert r["w1"]["jaxnn"]["compile_s"] > 0
    for impl in ("tutorial", "bare", "bare_padded", "bare_tuned"):  # jaxnn.fit's row once the engine exists
        assert r["user"][impl]["us_per_step"] > 0
    assert [p["key"] for p in r["proof"]][:2] == ["user_tutorial_vs_jaxnn", "user_jaxnn_vs_bare"]
    assert r["cli"]["cold"]["wall_s"] > 0 and r["cli"]["warm"]["compile_s"] >= 0
    assert r["w2"]["models"] == 16 and r["w2_memory"]["models"] == 1024
    assert 0 < r["w3"]["gflops"] and 0 < r["w3"]["matmul_gflops"] and 0 < r["w3"]["step_matmuls_gflops"]
    assert r["w3"]["textbook_epoch_s"] > 0 and r["summary"]["w3_epoch_vs_textbook"] > 0
    assert r["w3"]["step_matmuls_update_gflops"] > 0
    for name in ("w2", "w2_cores"):
        assert r[name]["bound"]["us_per_step"] > 0 and r[name]["bound"]["model_steps_per_s"] > 0
    for name in ("w1", "cli", "w2", "w2_memory", "w3"):
        assert r[name]["peak_rss_mb"] > 0
    assert set(r["summary"]["targets"]) <= set(r["summary"])
    assert "W1 seed network" in p.stdout and "targets:" in p.stdout and "Issue 14 proof" in p.stdout


def test_benchmark_run_keeps_the_small_fits_figures_it_does_not_measure(tmp_path):
    from benchmarks.run import _kept

    out = tmp_path / "results.json"
    assert _kept(out) == {}  # no file yet
    old = {"w1": {"old": 1}, "small_fits": {"first_fit": 1}, "small_fits_before": {"x": 2}}
    out.write_text(json.dumps(old))
    assert _kept(out) == {"small_fits": {"first_fit": 1}, "small_fits_before": {"x": 2}}
    out.write_text("not json")
    assert _kept(out) == {}
