"""Data parallelism (jaxnn.distributed): equal to one device, on 8 simulated devices and 2 real processes.

Simulated devices must be configured before JAX starts, so those checks run in a
subprocess (``JAX_NUM_CPU_DEVICES=8``) that prints its numbers as JSON; this
process compares them. The multi-process test starts two real ``jaxnn train``
processes that meet through ``jax.distributed`` on 127.0.0.1 (gloo collectives).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import checkpoint, distributed, training
from jaxnn.cli import main

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_", "XLA_")) or k == "JAX_ENABLE_X64"}
    env.pop("JAX_ENABLE_X64", None)
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **extra)
    return env


def _rel(a: object, b: object) -> float:
    """max |a - b| / max |b|: relative error of a whole array (robust to entries near 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# --- In this process (one CPU device) -------------------------------------------------------


def test_fit_on_a_one_device_mesh_equals_plain_fit(x64):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    c = training.TrainConfig(hidden=(8,), optimizer="momentum", lr=0.02, batch_size=16, epochs=5,
                             dtype="float64")
    plain = training.fit(c, X, Y)
    meshed = training.fit(c, X, Y, devices=1)
    for a, b in zip(jax.tree_util.tree_leaves(meshed.params), jax.tree_util.tree_leaves(plain.params),
                    strict=True):
        assert _rel(a, b) < 1e-12
    np.testing.assert_allclose(meshed.history.train_loss, plain.history.train_loss, rtol=1e-12)
    # What fit returns is an ordinary array, not tied to the mesh.
    assert isinstance(meshed.params[0]["W"].sharding, jax.sharding.SingleDeviceSharding)
    assert int(meshed.state.step) == plain.steps == 20


def test_put_replicated_and_back_keeps_values_and_typed_keys():
    mesh = distributed.make_data_mesh(1)
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "key": jax.random.key(7), "n": np.int32(3)}
    placed = distributed.put_replicated(tree, mesh)
    assert placed["w"].sharding == distributed.replicated(mesh)
    back = distributed.to_local(placed)
    np.testing.assert_array_equal(back["w"], tree["w"])
    assert int(back["n"]) == 3
    np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(tree["key"]))
    np.testing.assert_array_equal(jax.random.uniform(back["key"], (3,)),
                                  jax.random.uniform(tree["key"], (3,)))


def test_make_data_mesh_shapes_and_errors():
    mesh = distributed.make_data_mesh()
    assert mesh.axis_names == ("data",) and mesh.shape["data"] == jax.device_count()
    assert distributed.make_data_mesh(mesh) is mesh
    assert distributed.make_data_mesh(jax.devices()[:1]).shape["data"] == 1
    with pytest.raises(ValueError, match=r"devices: 64 requested .*JAX_NUM_CPU_DEVICES=64"):
        distributed.make_data_mesh(64)
    with pytest.raises(ValueError, match="devices: expected a positive"):
        distributed.make_data_mesh(0)
    with pytest.raises(TypeError, match="devices"):
        distributed.make_data_mesh("cpu")
    other = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("model",))
    with pytest.raises(ValueError, match="'data' axis"):
        distributed.make_data_mesh(other)


def test_single_process_defaults(monkeypatch):
    for name in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID):
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize() is False
    assert distributed.is_primary()
    assert distributed.default_devices() is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"coordinator": "localhost", "num_processes": 2, "process_id": 0}, "coordinator: expected 'HOST:PORT'"),
    ({"coordinator": "h:99999", "num_processes": 2, "process_id": 0}, "coordinator"),
    ({"coordinator": "h:1234", "num_processes": 2, "process_id": 2}, r"process_id: .*\[0, num_processes=2\)"),
    ({"coordinator": "h:1234", "num_processes": 0, "process_id": 0}, "num_processes"),
])
def test_initialize_rejects_bad_arguments_before_contacting_anyone(kwargs, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize(**kwargs)


def test_initialize_reads_the_environment(monkeypatch):
    monkeypatch.setenv(distributed.ENV_COORDINATOR, "127.0.0.1:1234")
    monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES: expected an integer, got 'two'"):
        distributed.initialize()


def test_cli_bad_distributed_flags_are_one_line_and_exit_2(capsys, monkeypatch):
    for name in (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID):
        monkeypatch.delenv(name, raising=False)
    status = main(["train", "--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "5"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "process_id" in err
    status = main(["train", "--devices", "64", "--epochs", "1"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "devices: 64 requested" in err


# --- 8 simulated CPU devices, in a subprocess ------------------------------------------------

# One `jaxnn train` run: the 8-device script runs it on one device (the reference) and with
# --devices 8; the multi-process test runs it in two processes.
TRAIN_ARGS = ["train", "--data", "diabetes", "--hidden", "13", "--activation", "sigmoid",
              "--epochs", "8", "--batch-size", "32", "--lr", "0.05",
              "--dtype", "float64", "--validation-fraction", "0.1", "--json"]

EIGHT_DEVICES = textwrap.dedent('''
    import contextlib, io, json, re
    import jax, numpy as np
    from jaxnn import checkpoint, distributed, engine, training
    from jaxnn.cli import main

    out = {"device_count": jax.device_count()}
    flat = lambda params: np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree_util.tree_leaves(params)])
    rng = np.random.default_rng(0)

    # Regression: 200 rows, batch 32 -> the 7th batch is padded with 24 weight-0 rows.
    X = rng.normal(size=(200, 5))
    Y = np.sin(X @ rng.normal(size=(5, 2)))
    Xv, Yv = X[:40] + 0.1, Y[:40]
    for dtype, splits in (("float64", (None, 2, 8)), ("float32", (None, 8))):
        c = training.TrainConfig(hidden=(16,), activation="tanh", optimizer="adam", lr=0.01,
                                 batch_size=32, epochs=12, dtype=dtype, init="glorot")
        for devices in splits:
            r = training.fit(c, X, Y, X_val=Xv, Y_val=Yv, devices=devices)
            out[f"reg_{dtype}_{devices}"] = {"params": flat(r.params).tolist(),
                                             "train_loss": r.history.train_loss.tolist(),
                                             "val_loss": r.history.val_loss.tolist(), "steps": r.steps}

    # Classification, cross-entropy, momentum, 130 rows in batches of 40 (last one padded).
    Xc = rng.normal(size=(130, 4))
    yc = np.argmax(Xc @ rng.normal(size=(4, 3)), axis=1)
    Yc = np.eye(3)[yc]
    c = training.TrainConfig(hidden=(8, 8), activation="relu", loss="cross_entropy",
                             optimizer="momentum", lr=0.05, batch_size=40, epochs=10,
                             dtype="float64", init="he")
    for devices in (None, 8):
        r = training.fit(c, Xc, Yc, devices=devices)
        out[f"cls_{devices}"] = {"params": flat(r.params).tolist(),
                                 "train_loss": r.history.train_loss.tolist()}

    try:
        training.fit(training.TrainConfig(batch_size=30, epochs=1), X, Y, devices=8)
    except ValueError as e:
        out["bad_batch"] = str(e)

    # The compiled program really splits each minibatch: 32 rows / 8 devices = 4 rows per
    # device in the first layer's matmul, and an all-reduce combines the gradients.
    c = training.TrainConfig(hidden=(16,), batch_size=32, epochs=1)
    mesh = distributed.make_data_mesh(8)
    opt = training.make_optimizer(c, 7, 7)
    plan = engine.make_plan(200, 32, chunk_epochs=1, bucket_rows=False)
    knobs = engine.make_knobs(200, 32, 7)
    fn = engine._build_chunk(training.resolve(c, c.batch_size).loss_fn, opt, None, plan, check_params=False,
                             batch_sharding=distributed.batch_sharding(mesh))
    state = training.init_state(c, 5, 2, 200)
    data = (X.astype(np.float32), Y.astype(np.float32))
    args = distributed.put_replicated((state, data, (), (), knobs, ()), mesh)
    lowered = jax.jit(fn, out_shardings=distributed.replicated(mesh)).lower(*args, None, np.int32(1))
    hlo = lowered.compile().as_text()
    out["hlo_all_reduce"] = hlo.count("all-reduce(")
    out["hlo_dot_shapes"] = sorted(set(re.findall(r"= f32\\[(\\d+),16\\]\\S* dot\\(", hlo)))

    # The CLI: --devices 8 against one device, same process.
    for flag in ([], ["--devices", "8"]):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            status = main([*TRAIN_ARGS, *flag])
        out["cli_" + ("8" if flag else "1")] = {"status": status, "report": json.loads(buf.getvalue())}
    print("RESULT " + json.dumps(out))
''').replace("TRAIN_ARGS", repr(TRAIN_ARGS))


@pytest.fixture(scope="module")
def eight_devices() -> dict:
    proc = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=_env(JAX_NUM_CPU_DEVICES="8"), cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_eight_simulated_devices_exist(eight_devices):
    assert eight_devices["device_count"] == 8


@pytest.mark.parametrize("devices", [2, 8])
def test_float64_regression_on_devices_equals_one_device(eight_devices, devices):
    one, many = eight_devices["reg_float64_None"], eight_devices[f"reg_float64_{devices}"]
    assert many["steps"] == one["steps"] == 12 * 7
    assert _rel(many["params"], one["params"]) < 1e-9
    assert _rel(many["train_loss"], one["train_loss"]) < 1e-9
    np.testing.assert_allclose(many["val_loss"], one["val_loss"], rtol=1e-9)
    # The runs learned something (the comparison is not between two untrained models).
    assert one["val_loss"][-1] < 0.7 * one["val_loss"][0]


def test_float32_regression_on_eight_devices_is_close(eight_devices):
    one, many = eight_devices["reg_float32_None"], eight_devices["reg_float32_8"]
    assert _rel(many["params"], one["params"]) < 1e-6
    np.testing.assert_allclose(many["val_loss"], one["val_loss"], rtol=1e-6)


def test_float64_classification_on_eight_devices_equals_one_device(eight_devices):
    one, many = eight_devices["cls_None"], eight_devices["cls_8"]
    assert len(one["train_loss"]) == 10 * 4
    assert _rel(many["params"], one["params"]) < 1e-9
    np.testing.assert_allclose(many["train_loss"], one["train_loss"], rtol=1e-9)


def test_batch_size_must_divide_by_the_device_count(eight_devices):
    msg = eight_devices["bad_batch"]
    assert msg.startswith("batch_size: 30") and "8 devices" in msg and "24 or 32" in msg


def test_compiled_step_shards_the_batch_and_all_reduces(eight_devices):
    rows = eight_devices["hlo_dot_shapes"]  # leading dims of (rows, 16) matmuls: x @ W1 and dW
    assert "4" in rows and "32" not in rows  # 32 rows / 8 devices; never the whole batch
    assert eight_devices["hlo_all_reduce"] >= 1


def test_cli_devices_8_equals_one_device(eight_devices):
    one, many = eight_devices["cli_1"], eight_devices["cli_8"]
    assert one["status"] == many["status"] == 0
    r1, r8 = one["report"], many["report"]
    assert r1["steps"] == r8["steps"] > 0
    assert _rel(r8["history"]["train_loss"], r1["history"]["train_loss"]) < 1e-9
    np.testing.assert_allclose(r8["history"]["val_loss"], r1["history"]["val_loss"], rtol=1e-9)
    for name, value in r1["test"].items():
        assert r8["test"][name] == pytest.approx(value, rel=1e-9)
    assert r1["test"]["r2"] > 0.3  # a model that learned something


# --- 2 real processes on 127.0.0.1 ----------------------------------------------------------


def _run_together(commands: list[list[str]]) -> list[tuple[int, str, str]]:
    """Start every command at once; (status, stdout, stderr) of each. Nothing outlives the call."""
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(), cwd=ROOT) for cmd in commands]
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:  # on a timeout or any failure, leave nothing running
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_print_the_single_process_result(eight_devices, tmp_path):
    """Two `jaxnn train` processes meet on 127.0.0.1; the reference is the one-device run.

    Each process is given its own output paths so the test can see who writes: only process 0.
    """
    port = _free_port()
    commands = [
        [sys.executable, "-m", "jaxnn.cli", *TRAIN_ARGS, "--coordinator", f"127.0.0.1:{port}",
         "--num-processes", "2", "--process-id", str(i), "--save", str(tmp_path / f"ck{i}.npz"),
         "--out", str(tmp_path / f"figures{i}"), "--log-jsonl", str(tmp_path / f"log{i}.jsonl")]
        for i in range(2)
    ]
    results = _run_together(commands)
    for status, _, err in results:
        assert status == 0, err[-3000:]
    multi = [json.loads(out) for _, out, _ in results]  # stdout is exactly one JSON object
    single = eight_devices["cli_1"]["report"]
    assert multi[0]["steps"] == multi[1]["steps"] == single["steps"] == 8 * 9  # 278 training rows / 32
    timings = {"seconds"}
    assert {k: v for k, v in multi[1].items() if k not in timings} == \
           {k: v for k, v in multi[0].items() if k not in timings}
    report = multi[0]
    assert _rel(report["history"]["train_loss"], single["history"]["train_loss"]) < 1e-9
    # val_loss is the validation rows' MSE after every epoch, in float64.
    np.testing.assert_allclose(report["history"]["val_loss"], single["history"]["val_loss"], rtol=1e-9)
    for name, value in single["test"].items():  # test MSE, RMSE, MAE, R^2
        assert report["test"][name] == pytest.approx(value, rel=1e-9)
    # Process 0 alone writes the checkpoint, the figures and the log.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck0.npz", "figures0", "log0.jsonl"]
    assert any(f.suffix == ".png" for f in (tmp_path / "figures0").iterdir())
    saved = checkpoint.load(tmp_path / "ck0.npz")
    assert int(saved.state.step) == 72
    np.testing.assert_allclose(saved.history.val_loss, single["history"]["val_loss"], rtol=1e-9)


DIFFERENT_DATA = textwrap.dedent('''
    import sys, numpy as np
    from jaxnn import distributed, training
    pid, port = int(sys.argv[1]), sys.argv[2]
    distributed.initialize(f"127.0.0.1:{port}", 2, pid, timeout_s=60)
    X = np.random.default_rng(pid).normal(size=(40, 3))  # each process draws its own rows
    try:
        training.fit(training.TrainConfig(hidden=(4,), batch_size=8, epochs=1), X, X[:, :1], devices=2)
    except ValueError as e:
        print(e)
        sys.exit(2)
''')


def test_processes_holding_different_data_are_refused():
    port = _free_port()
    results = _run_together([[sys.executable, "-c", DIFFERENT_DATA, str(i), str(port)] for i in range(2)])
    for i, (status, out, err) in enumerate(results):
        assert status == 2, err[-3000:]
        assert f"processes [{1 - i}] hold different training data" in out
