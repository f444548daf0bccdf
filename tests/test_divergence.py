"""Divergence: a learning rate of 1e6 makes the loss inf/NaN within a few steps.

Training must stop at the end of the compiled chunk in which that happens, say at which
step and suggest a smaller learning rate, keep the last finite parameters (Python:
``DivergedError.result``), and make ``jaxnn train`` exit with status 3 and one line on
stderr.

The "last finite parameters" are checked against an independent run: the same config
stopped after exactly ``step`` steps must give bit-identical parameters, and one more
full-batch SGD step from them, computed here by hand with ``jax.value_and_grad``, must
indeed be non-finite.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import checkpoint, experiment, foundations, models
from jaxnn.cli import main
from jaxnn.datasets import load_dataset, split_dataset
from jaxnn.errors import EXIT_DIVERGED, DivergedError
from jaxnn.training import ChunkInfo, TrainConfig, fit, steps_per_epoch

LR = 1e6


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    """Standardised diabetes training split: X (309, 10), Y (309, 1)."""
    sp = split_dataset(load_dataset("diabetes"))
    return np.asarray(sp.X_train), experiment.targets(sp.y_train, "regression", None)


def all_finite(tree: object) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


def test_diverged_run_stops_at_the_end_of_its_chunk_and_keeps_finite_params(diabetes) -> None:
    X, Y = diabetes
    n = X.shape[0]
    # Full batch: every step sees all rows, so the step after the kept params can be recomputed.
    config = TrainConfig(hidden=(13,), optimizer="sgd", lr=LR, epochs=40, chunk_epochs=2, batch_size=n)
    chunks: list[ChunkInfo] = []
    with pytest.raises(DivergedError) as exc:
        fit(config, X, Y, callback=chunks.append)
    e = exc.value
    step = e.step
    assert isinstance(step, int) and step >= 1
    # the message: one line, the step, the advice
    msg = str(e)
    assert "\n" not in msg
    assert f"at step {step}" in msg
    assert "smaller learning rate" in msg and "1e+06" in msg
    # stopped at the end of the chunk that diverged: no chunk after it ran
    steps_per_chunk = steps_per_epoch(n, config.batch_size) * config.chunk_epochs
    assert len(chunks) == step // steps_per_chunk + 1
    assert chunks[-1].steps_done == step
    assert all(c.steps_done < step for c in chunks[:-1])
    # the result: steps applied, the diverged step, finite parameters and history
    r = e.result
    assert r.steps == step and r.diverged_step == step
    assert r.history.train_loss.shape == (step,) and np.all(np.isfinite(r.history.train_loss))
    assert all_finite(r.params) and all_finite(r.state.opt_state)
    assert r.epochs < config.epochs
    # independent reference: the same run asked to stop after `step` steps
    ref = fit(dataclasses.replace(config, epochs=None, steps=step), X, Y)
    for a, b in zip(jax.tree_util.tree_leaves(r.params), jax.tree_util.tree_leaves(ref.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # ... and the step after them really is non-finite (jax.grad, not our backprop)
    Xj, Yj = jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32)

    def loss(p):
        return jnp.mean(jnp.square(models.predict(p, Xj, foundations.sigmoid) - Yj))

    value, grads = jax.value_and_grad(loss)(r.params)
    nxt = jax.tree_util.tree_map(lambda p, g: p - LR * g, r.params, grads)
    assert not (np.isfinite(float(value)) and all_finite(nxt))


def test_no_raise_mode_reports_the_step(diabetes) -> None:
    X, Y = diabetes
    config = TrainConfig(hidden=(13,), optimizer="sgd", lr=LR, epochs=40, chunk_epochs=2, batch_size=32)
    r = fit(config, X, Y, raise_on_divergence=False)
    assert r.diverged_step is not None and r.steps == r.diverged_step
    assert all_finite(r.params) and r.history.train_loss.shape == (r.steps,)


def test_cli_diverged_exits_3_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["train", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "20"])
    out, err = capsys.readouterr()
    assert status == EXIT_DIVERGED == 3
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("jaxnn train: error: training diverged")
    assert "Traceback" not in err
    assert "at step " in err and "smaller learning rate than 1e+06" in err


def test_cli_diverged_saves_the_last_finite_params(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "diverged.npz"
    # --debug hands the DivergedError to the caller; --save has written the checkpoint by then
    with pytest.raises(DivergedError) as exc:
        main(["train", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "20", "--save", str(saved),
              "--debug"])
    err = capsys.readouterr().err
    step = exc.value.step
    assert err == f"jaxnn train: diverged at step {step}: checkpoint saved to {saved}\n"
    ck = checkpoint.load(saved)
    assert int(ck.state.diverged_step) == step == int(ck.state.step)
    assert all_finite(ck.params) and all_finite(ck.state.opt_state)
    for a, b in zip(jax.tree_util.tree_leaves(ck.params), jax.tree_util.tree_leaves(exc.value.result.params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the saved history ends at the last applied step
    assert ck.history.train_loss.shape == (step,) and np.all(np.isfinite(ck.history.train_loss))
    # a diverged checkpoint is not resumed silently
    status = main(["train", "--resume", str(saved)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert f"diverged at step {step}" in err and "smaller --lr" in err


def test_cli_diverged_subprocess(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "jaxnn.cli", "train", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "20"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=180, check=False,
    )
    assert proc.returncode == EXIT_DIVERGED, proc.stderr
    assert proc.stderr.count("\n") == 1 and "training diverged" in proc.stderr, proc.stderr
    assert "smaller learning rate" in proc.stderr


# --- the per-step guard: the same bits wherever a run is resumed; a non-finite loss alone stops it ---

def _linear(p, x, y):  # a user's model: (B, 10) -> (B,) squared errors
    return jnp.square(x @ p["w"] + p["b"] - y[:, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_run_resumed_mid_epoch_equals_one_of_whole_epochs_bit_for_bit(diabetes, dtype) -> None:
    """README: resume "from any step, bit for bit". With adam's state, and a run of whole epochs as
    the reference. (XLA:CPU fuses ``p + a * b`` into one multiply-add where it can, so a program whose
    step skipped the optimizer state's per-step select -- measured 5-13% faster for fit_many -- gave
    results 1 ulp apart from a resumed run's; see docs/development.md.)"""
    import optax

    import jaxnn

    X, Y = (a.astype(dtype) for a in diabetes)
    with jax.enable_x64(dtype == np.float64):
        p0 = {"w": jnp.zeros((10,), dtype), "b": jnp.zeros((), dtype)}
        kw = dict(optimizer=optax.adam(1e-2), batch_size=32, key=jax.random.key(3))
        nb = steps_per_epoch(X.shape[0], 32)
        whole = jaxnn.fit(_linear, p0, (X, Y), epochs=5, **kw)
        first = jaxnn.fit(_linear, p0, (X, Y), steps=7, **kw)
        resumed = jaxnn.fit(_linear, p0, (X, Y), steps=5 * nb, state=first.state, **kw)
    assert whole.steps == resumed.steps == 5 * nb and whole.diverged_step is None
    for a, b in zip(jax.tree_util.tree_leaves((whole.params, whole.state.opt_state)),
                    jax.tree_util.tree_leaves((resumed.params, resumed.state.opt_state)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(whole.history.train_loss,
                                  np.concatenate([first.history.train_loss, resumed.history.train_loss]))


def test_an_infinite_loss_with_finite_gradients_stops_at_its_step(diabetes) -> None:
    """A loss that is inf on one row (its gradient 0 there, so every parameter stays finite): the
    step whose minibatch holds the row is not applied, in ``fit`` and in ``fit_many``: the guard
    checks the loss, not only the parameters."""
    import optax

    import jaxnn

    X, Y = diabetes
    bad = 100  # the row whose loss is inf

    def loss(p, x, y):
        ok = jnp.any(x != X[bad][None, :], axis=1)
        return jnp.where(ok, jnp.square(x @ p["w"] + p["b"] - y[:, 0]), jnp.inf)

    with jax.enable_x64(True):
        p0 = {"w": jnp.zeros((10,)), "b": jnp.zeros(())}
        kw = dict(optimizer=optax.sgd(1e-2), batch_size=32, key=jax.random.key(0))
        with pytest.raises(DivergedError) as exc:
            jaxnn.fit(loss, p0, (X, Y), epochs=3, **kw)
        r = exc.value.result
        assert r.diverged_step is not None and r.steps == r.diverged_step
        # the step it stopped at is the first whose minibatch holds the row (the engine's order)
        order = np.concatenate([np.asarray(jaxnn.shuffle.epoch_orders(
            np.asarray(jax.random.key_data(kw["key"])), np.array([e]), X.shape[0], X.shape[0]))[0]
            for e in range(3)])
        first_bad_row = int(np.flatnonzero(order == bad)[0])
        nb = steps_per_epoch(X.shape[0], 32)
        epoch, pos = divmod(first_bad_row, X.shape[0])
        assert r.diverged_step == epoch * nb + pos // 32
        ref = jaxnn.fit(loss, p0, (X, Y), steps=r.diverged_step, **kw)
        leaves = jax.tree_util.tree_leaves
        for a, b in zip(leaves(r.params), leaves(ref.params), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        # two models, one that meets the row and one without it: the other trains on
        many = jaxnn.fit_many(loss, jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), p0),
                              jaxnn.PerModel([(X, Y), (np.delete(X, bad, 0), np.delete(Y, bad, 0))]),
                              epochs=3, **kw)
        assert many.diverged_step[0] == r.diverged_step and many.diverged_step[1] < 0
        assert many.steps[1] == 3 * steps_per_epoch(X.shape[0] - 1, 32)
        for a, b in zip(jax.tree_util.tree_leaves(r.params), jax.tree_util.tree_leaves(many.model(0).params),
                        strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
