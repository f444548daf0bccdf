"""fit_many and `jaxnn sweep`: every model of the batched sweep is the model a separate fit trains.

The sweep is ``jax.vmap`` of the engine's chunk over the models' states, with each model's
learning rate and L2 coefficient in its optimizer state (``optax.inject_hyperparams``);
comparing each model with an independent ``fit`` in float64 (tight tolerances) proves the
per-model hyper-parameters, the optimizer-side L2 (against ``fit``'s L2 in the loss) and the
divergence guard are right. ``train_loss`` is the data loss: with ``l2 > 0`` it is compared with
the reference's loss minus its penalty.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxnn import engine, models, training, xla_cpu
from jaxnn.errors import DivergedError
from jaxnn.sweep import fit_grid as fit_many
from jaxnn.training import TrainConfig, fit, init_state

RTOL = 1e-10


def _data(n: int = 37, d: int = 3, k: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.sin(X @ rng.normal(size=(d, k))) + 0.1 * rng.normal(size=(n, k))
    return X, Y


def _assert_params_equal(a, b, rtol=RTOL):
    for la, lb in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(la["W"]), np.asarray(lb["W"]), rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(np.asarray(la["b"]), np.asarray(lb["b"]), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize(("optimizer", "gradients"), [("sgd", "manual"), ("adam", "autodiff")])
def test_shared_order_model_equals_individual_fit(optimizer, gradients):
    X, Y = _data()
    cfg = TrainConfig(hidden=(4,), batch_size=8, steps=23, optimizer=optimizer, gradients=gradients,
                      dtype="float64", seed=5, init="glorot")
    seeds, lrs = [1, 2], [0.05, 0.2]
    res = fit_many(cfg, X, Y, seeds=seeds, lrs=lrs)
    assert res.n_models == 4 and res.train_loss.shape == (4, 23)
    with jax.enable_x64(True):
        shared_key = init_state(cfg, 3, 1, len(X)).key  # the data order of config.seed
    for i, (s, lr) in enumerate(zip(res.seeds, res.lrs, strict=True)):
        one = dataclasses.replace(cfg, lr=float(lr))
        with jax.enable_x64(True):
            st = init_state(dataclasses.replace(one, seed=int(s)), 3, 1, len(X))._replace(key=shared_key)
        ref = fit(one, X, Y, state=st)
        _assert_params_equal(res.model_params(i), ref.params)
        np.testing.assert_allclose(res.train_loss[i], ref.history.train_loss, rtol=RTOL)
    assert list(res.seeds) == [1, 1, 2, 2] and list(res.lrs) == [0.05, 0.2, 0.05, 0.2]


@pytest.mark.parametrize(
    ("activation", "loss", "k", "optimizer", "gradients", "schedule"),
    [("relu", "cross_entropy", 3, "nesterov", "manual", "constant"),
     ("tanh", "mse", 2, "adam", "autodiff", "cosine"),
     ("leaky_relu", "mse", 1, "momentum", "manual", "exponential")])
def test_per_model_lr_and_l2_train_what_separate_fits_train(activation, loss, k, optimizer, gradients,
                                                            schedule):
    """Per-model learning rates (through schedules) and L2 in the optimizer state, shared order."""
    X, Y = _data(k=k)
    if loss == "cross_entropy":
        Y = np.eye(k)[np.argmax(Y, axis=1)]
    cfg = TrainConfig(hidden=(5,), activation=activation, loss=loss, batch_size=8, steps=17,
                      optimizer=optimizer, gradients=gradients, schedule=schedule, decay_rate=0.7,
                      dtype="float64", seed=2, init="glorot")
    res = fit_many(cfg, X, Y, seeds=[0, 1], lrs=[0.03, 0.1], l2s=[0.0, 0.2])
    assert res.n_models == 8
    with jax.enable_x64(True):
        shared_key = init_state(cfg, X.shape[1], k, len(X)).key
    # every (lr, l2) pair once, from both seeds: models 0, 3, 5, 6 of the seed-major grid (each
    # separate fit compiles its own program; the other four would test the same pairs again)
    picked = [0, 3, 5, 6]
    assert {(res.lrs[i], res.l2s[i]) for i in picked} == {(a, b) for a in (0.03, 0.1) for b in (0.0, 0.2)}
    assert {int(res.seeds[i]) for i in picked} == {0, 1}
    for i in picked:
        one = dataclasses.replace(cfg, lr=float(res.lrs[i]), l2=float(res.l2s[i]))
        with jax.enable_x64(True):
            st = init_state(dataclasses.replace(one, seed=int(res.seeds[i])), X.shape[1], k,
                            len(X))._replace(key=shared_key)
        ref = fit(one, X, Y, state=st)
        _assert_params_equal(res.model_params(i), ref.params)
        if res.l2s[i] == 0:
            np.testing.assert_allclose(res.train_loss[i], ref.history.train_loss, rtol=RTOL)
        else:  # fit's loss holds the penalty of the step's parameters; fit_many reports the data loss
            assert np.all(res.train_loss[i] < ref.history.train_loss)


def test_reported_loss_is_the_data_loss_without_the_penalty():
    """With L2 in the optimizer, a one-step sweep reports the data loss of the initial parameters."""
    X, Y = _data()
    cfg = TrainConfig(hidden=(4,), batch_size=len(X), steps=1, dtype="float64", init="glorot", shuffle=False)
    res = fit_many(cfg, X, Y, seeds=[3], l2s=[0.0, 0.5])
    with jax.enable_x64(True):
        p0 = init_state(dataclasses.replace(cfg, seed=3), 3, 1, len(X)).params
        act, loss, layer = training.resolve_network("sigmoid", "mse", "autodiff")
        want = float(np.mean(models.make_loss_fn(act, loss, layer=layer)(p0, X, Y)))
    np.testing.assert_allclose(res.train_loss[:, 0], [want, want], rtol=RTOL)


def test_a_new_learning_rate_or_l2_value_compiles_nothing():

    X, Y = _data()
    cfg = TrainConfig(hidden=(3,), batch_size=8, steps=6, optimizer="adam", schedule="cosine")
    fit_many(cfg, X, Y, seeds=range(2), lrs=[0.1, 0.2], l2s=[0.0, 0.1])
    n = len(engine._COMPILED)
    res = fit_many(cfg, X, Y, seeds=range(5, 7), lrs=[0.003, 0.05], l2s=[0.2, 0.01])
    assert len(engine._COMPILED) == n
    np.testing.assert_allclose(np.asarray(res.state.opt_state.hyperparams["learning_rate"]),
                               [0.003, 0.003, 0.05, 0.05] * 2, rtol=1e-6)


def test_stopped_models_do_not_broadcast_the_shared_minibatch():
    """Shared order: the first layer of all models is one (B, d) @ (d, M*h) product."""

    X, Y = _data(30, 4)
    fit_many(TrainConfig(hidden=(3,), batch_size=8, steps=12, optimizer="sgd"), X, Y, seeds=range(5))
    text = xla_cpu.compiled_text(next(reversed(engine._COMPILED.values())))
    assert "f32[8,15]" in text  # the hidden layer of all 5 models at once


def test_results_are_model_leading():
    """What fit_grid returns carries the model axis first on every per-model leaf (jax.vmap's layout)."""
    X, Y = _data(30, 4)
    r = fit_many(TrainConfig(hidden=(3,), batch_size=8, steps=12, optimizer="adam"), X, Y, seeds=range(5))
    assert r.params[0]["W"].shape == (5, 4, 3)
    assert r.state.opt_state.inner_state[0].mu[0]["W"].shape == (5, 4, 3)
    assert r.train_loss.shape == (5, 12)


def test_per_model_order_and_l2_equal_individual_fits():
    X, Y = _data(k=2)
    cfg = TrainConfig(hidden=(5, 3), activation="tanh", batch_size=10, steps=15, optimizer="momentum",
                      dtype="float64", init="glorot")
    res = fit_many(cfg, X, Y, seeds=[3, 4], lrs=0.1, l2s=[0.0, 0.3], shared_order=False)
    for i in range(res.n_models):
        one = dataclasses.replace(cfg, seed=int(res.seeds[i]), lr=float(res.lrs[i]), l2=float(res.l2s[i]))
        ref = fit(one, X, Y)
        _assert_params_equal(res.model_params(i), ref.params)
        if res.l2s[i] == 0:
            np.testing.assert_allclose(res.train_loss[i], ref.history.train_loss, rtol=RTOL)
        else:  # fit's loss holds the L2 penalty; fit_many reports the data loss
            assert np.all(res.train_loss[i] < ref.history.train_loss)
    # the models differ: L2 shrinks the weights
    w = [float(np.sum(np.square(res.model_params(i)[0]["W"]))) for i in range(4)]
    assert w[1] < w[0] and w[3] < w[2]


def test_diverging_model_keeps_last_finite_params_others_train_on():
    X, Y = _data()
    cfg = TrainConfig(hidden=(4,), batch_size=8, steps=40, optimizer="sgd", dtype="float64",
                      reduction="sum", init="normal")
    res = fit_many(cfg, X, Y, seeds=[0], lrs=[0.01, 1e3])
    assert res.diverged_step[0] == -1 and res.diverged_step[1] >= 0
    with pytest.raises(DivergedError) as e:
        fit(dataclasses.replace(cfg, lr=1e3), X, Y)
    assert res.diverged_step[1] == e.value.step
    _assert_params_equal(res.model_params(1), e.value.result.params)
    ok = fit(dataclasses.replace(cfg, lr=0.01), X, Y)
    _assert_params_equal(res.model_params(0), ok.params)
    assert np.all(np.isnan(res.train_loss[1, res.diverged_step[1]:]))


def test_predict_many_matches_each_model():
    X, Y = _data()
    cfg = TrainConfig(hidden=(4,), batch_size=8, steps=5, dtype="float64")
    res = fit_many(cfg, X, Y, seeds=range(3))
    out = res.predict(X[:6])
    assert out.shape == (3, 6, 1)
    from jaxnn.experiment import predict

    for i in range(3):
        np.testing.assert_allclose(out[i], predict(res.model_params(i), cfg, X[:6]), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"seeds": 5}, TypeError, "seeds"),
        ({"seeds": []}, ValueError, "seeds"),
        ({"lrs": [0.1, -1.0]}, ValueError, "lrs"),
        ({"l2s": [float("nan")]}, ValueError, "l2s"),
        ({"shared_order": "yes"}, TypeError, "shared_order"),
        ({"layout": "packed"}, TypeError, "layout"),
    ],
)
def test_bad_arguments_are_named(kwargs, exc, name):
    X, Y = _data()
    with pytest.raises(exc, match=name):
        fit_many(TrainConfig(steps=2), X, Y, **kwargs)


def test_patience_is_refused():
    X, Y = _data()
    with pytest.raises(ValueError, match="patience"):
        fit_many(TrainConfig(steps=2, patience=3), X, Y)


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "jaxnn.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_sweep_json_and_figure(boston_csv, tmp_path):
    p = _cli("sweep", "--data", str(boston_csv), "--seeds", "3", "--lr", "0.01", "--lr", "0.05",
             "--hidden", "13", "--activation", "sigmoid",  # the seed's network, with its sgd and batch
             "--optimizer", "sgd", "--batch-size", "23", "--steps", "300", "--json",
             "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["n_models"] == 6 and len(r["models"]) == 6 and r["steps"] == 300
    assert r["shared_order"] is True and "layout" not in r
    rmse = np.array([m["test"]["rmse"] for m in r["models"]])
    assert r["test"]["rmse"]["mean"] == pytest.approx(rmse.mean())
    assert r["test"]["rmse"]["std"] == pytest.approx(rmse.std())
    assert [row["lr"] for row in r["by_lr"]] == [0.01, 0.05]
    assert {m["seed"] for m in r["models"]} == {0, 1, 2}
    assert set(r["seconds"]) == {"compile", "train", "total"}
    # a trained network beats predicting the training mean on the test split
    assert all(m["test"]["r2"] > 0.5 for m in r["models"])
    png = tmp_path / "sweep_spread.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv", [["--lr", "0"], ["--seeds", "0"], ["--patience", "3"],
                                  ["--out", "/nonexistent/dir"]])
def test_cli_sweep_bad_input_exits_2(boston_csv, argv):
    p = _cli("sweep", "--data", str(boston_csv), "--steps", "2", *argv)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1


# --- Models split over devices (simulated CPU devices, so in a subprocess) -----------------

_DEVICES_SCRIPT = """
import json, re
import jax, numpy as np
from jaxnn import engine, sweep, xla_cpu
from jaxnn.sweep import fit_grid as fit_many
from jaxnn.training import TrainConfig

rng = np.random.default_rng(0)
X = rng.normal(size=(37, 3))
Y = np.sin(X @ rng.normal(size=(3, 2)))
out = {"device_count": jax.device_count()}
# every layout on 2 or 4 devices, the first on both (each split compiles a program of its own)
for name, hidden, order, splits in [("shared", (4,), True, (2, 4)), ("shared_deep", (3, 2), True, (4,)),
                                    ("own", (4,), False, (2,))]:
    cfg = TrainConfig(hidden=hidden, batch_size=8, steps=23, dtype="float64", init="glorot",
                      optimizer="adam", activation="tanh")
    kw = dict(seeds=range(2), lrs=[0.01, 0.1], l2s=[0.0, 0.1], shared_order=order)
    one = fit_many(cfg, X, Y, **kw)
    for n in splits:
        r = fit_many(cfg, X, Y, devices=n, **kw)
        out[f"{name}_{n}"] = {
            "params": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                          for a, b in zip(jax.tree_util.tree_leaves(r.params),
                                          jax.tree_util.tree_leaves(one.params))),
            "loss": float(np.max(np.abs(r.train_loss - one.train_loss))),
            "single_device": all(len(a.devices()) == 1 for a in jax.tree_util.tree_leaves(r.params))}
# the compiled program holds 8 / 4 = 2 models per device: the hidden layer is (8, 2*4)
fit_many(TrainConfig(hidden=(4,), batch_size=8, steps=3), X, Y, seeds=range(8), devices=4)
text = xla_cpu.compiled_text(next(reversed(engine._COMPILED.values())))
out["local_hidden"] = bool(re.search(r"f32\\[8,8\\]", text))
# one model diverges on one device, the others train on
r = fit_many(TrainConfig(hidden=(4,), batch_size=8, steps=40, reduction="sum", init="normal"), X, Y,
             seeds=[0], lrs=[0.01, 1e3], devices=2)
out["diverged"] = [int(v) for v in r.diverged_step]
try:
    fit_many(TrainConfig(hidden=(4,), steps=3), X, Y, seeds=range(3), devices=2)
except ValueError as e:
    out["uneven"] = str(e)
print("RESULT " + json.dumps(out))
"""


def test_models_split_over_devices_train_what_one_device_trains():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    proc = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], capture_output=True, text=True,
                          timeout=300, env={**env, "JAX_NUM_CPU_DEVICES": "4", "JAX_PLATFORMS": "cpu"},
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))[7:])
    assert r["device_count"] == 4
    for name, splits in (("shared", (2, 4)), ("shared_deep", (4,)), ("own", (2,))):
        for n in splits:
            got = r[f"{name}_{n}"]
            assert got["params"] < 1e-12 and got["loss"] < 1e-12, (name, n, got)
            assert got["single_device"]
    assert r["local_hidden"]
    assert r["diverged"][0] == -1 and r["diverged"][1] >= 0
    assert "devices" in r["uneven"] and "3 models" in r["uneven"]


def test_cli_sweep_devices_makes_cpu_devices_and_matches_one_device(boston_csv):
    argv = ["sweep", "--data", str(boston_csv), "--seeds", "2", "--lr", "0.01", "--lr", "0.05",
            "--optimizer", "sgd", "--batch-size", "23", "--steps", "200", "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update(JAX_PLATFORMS="cpu")  # one CPU device unless asked
    runs = [subprocess.run([sys.executable, "-m", "jaxnn.cli", *argv, *extra], capture_output=True,
                           text=True, timeout=300, env=env, check=False)
            for extra in ([], ["--devices", "2"])]
    for p in runs:
        assert p.returncode == 0, p.stderr
    one, two = (json.loads(p.stdout) for p in runs)
    assert (one["devices"], two["devices"]) == (1, 2)
    for a, b in zip(one["models"], two["models"], strict=True):
        assert a["test"]["rmse"] == pytest.approx(b["test"]["rmse"], rel=1e-5)
