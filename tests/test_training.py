"""The scan training engine against independent references.

The main reference is a plain NumPy training loop for linear regression (:func:`np_linear_train`):
explicit minibatches, the MSE gradient written out, and sgd / momentum / adam and the
learning-rate schedules written from their formulas -- no JAX, no optax. jaxnn's compiled scan
must follow it step for step in float64. Other tests compare ``gradients="manual"`` against
``"autodiff"`` over a long run, count XLA compilations, and probe history, early stopping,
divergence and config validation.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn.plan
from jaxnn import datasets, engine, foundations, models, training
from jaxnn.errors import DivergedError
from jaxnn.training import TrainConfig


def toy_regression(n=10, d=3, k=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    Y = X @ rng.standard_normal((d, k)) + 0.5 + 0.1 * rng.standard_normal((n, k))
    return X, Y


def initial_params(config, X, Y):
    """The parameters ``fit`` starts from (a pure function of ``config.seed``)."""
    return training.init_state(config, X.shape[1], Y.shape[1], X.shape[0]).params


def fixed_order_batches(n, batch_size, steps):
    """The index sets of ``steps`` minibatches in data order (``shuffle=False``): full batches,
    then one short batch with the remaining rows, every epoch."""
    per_epoch = [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    return [per_epoch[t % len(per_epoch)] for t in range(steps)]


def np_linear_train(X, Y, W, b, batches, *, lr_at, optimizer="sgd", momentum=0.9, l2=0.0):
    """Linear regression trained in NumPy on the MSE (mean over the batch's rows and outputs).

    Args:
        X: (n, d); Y: (n, k); W: (d, k); b: (k,) initial parameters.
        batches: one index array per step.
        lr_at: step t (0-based) -> learning rate.
        optimizer: "sgd", "momentum" (heavy ball: v = g + m v; W -= lr v) or "adam"
            (b1 0.9, b2 0.999, eps 1e-8, bias-corrected).
        l2: loss += l2 * 0.5 * ||W||^2 (the bias is not penalised).
    Returns:
        (W, b, losses) -- the losses of every step, before its update.
    """
    W, b = W.copy(), b.copy()
    k = Y.shape[1]
    state = {name: (np.zeros_like(W), np.zeros_like(b)) for name in ("v", "m", "s")}
    losses = []
    for t, idx in enumerate(batches):
        Xb, Yb = X[idx], Y[idx]
        P = Xb @ W + b
        losses.append(np.sum((P - Yb) ** 2) / (k * len(idx)) + l2 * 0.5 * np.sum(W**2))
        dP = 2 * (P - Yb) / (k * len(idx))
        g = (Xb.T @ dP + l2 * W, dP.sum(axis=0))
        lr = lr_at(t)
        if optimizer == "sgd":
            step = g
        elif optimizer == "momentum":
            state["v"] = tuple(gi + momentum * vi for gi, vi in zip(g, state["v"], strict=True))
            step = state["v"]
        else:
            b1, b2, eps = 0.9, 0.999, 1e-8
            state["m"] = tuple(b1 * mi + (1 - b1) * gi for gi, mi in zip(g, state["m"], strict=True))
            state["s"] = tuple(b2 * si + (1 - b2) * gi**2 for gi, si in zip(g, state["s"], strict=True))
            step = tuple((mi / (1 - b1 ** (t + 1))) / (np.sqrt(si / (1 - b2 ** (t + 1))) + eps)
                         for mi, si in zip(state["m"], state["s"], strict=True))
        W, b = W - lr * step[0], b - lr * step[1]
    return W, b, np.asarray(losses)


def fit_vs_numpy(config, X, Y, **np_kw):
    """Run ``fit`` and the NumPy loop from the same start; return both."""
    result = training.fit(config, X, Y)
    p0 = initial_params(config, X, Y)
    batches = fixed_order_batches(X.shape[0], config.batch_size, result.steps)
    W, b, losses = np_linear_train(X, Y, np.asarray(p0[0]["W"]), np.asarray(p0[0]["b"]), batches, **np_kw)
    return result, (W, b, losses)


def assert_params_close(result, W, b, rtol=1e-10):
    np.testing.assert_allclose(np.asarray(result.params[0]["W"]), W, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.asarray(result.params[0]["b"]), b, rtol=rtol, atol=rtol)


LINEAR = dict(hidden=(), shuffle=False, dtype="float64", init="normal")


# --- the step: optimizers, schedules, L2, the masked last batch ---------------------------------


def test_sgd_step_is_w_minus_lr_times_grad(x64):
    # one full-batch step of the MLP: params - lr * jax.grad(loss)
    X, Y = toy_regression(n=12, d=3, k=2)
    c = TrainConfig(hidden=(5,), activation="tanh", optimizer="sgd", lr=0.3, batch_size=12, steps=1,
                    dtype="float64", shuffle=False)
    p0 = initial_params(c, X, Y)
    g = jax.grad(lambda p: jnp.mean(jnp.square(models.predict(p, jnp.asarray(X), foundations.tanh) - Y)))(p0)
    result = training.fit(c, X, Y)
    for got, p, gi in zip(result.params, p0, g, strict=True):
        for name in ("W", "b"):
            np.testing.assert_allclose(np.asarray(got[name]), np.asarray(p[name] - 0.3 * gi[name]),
                                       rtol=1e-12, atol=1e-14)
    assert result.steps == 1


def test_masked_last_batch_is_the_mean_over_its_real_rows(x64):
    # n = 10, batch 4: batches of 4, 4 and 2 rows; the third step's loss and gradient are the
    # mean over rows 8 and 9 only (the padding rows carry weight 0)
    X, Y = toy_regression(n=10)
    c = TrainConfig(**LINEAR, optimizer="sgd", lr=0.1, batch_size=4, steps=6)
    result, (W, b, losses) = fit_vs_numpy(c, X, Y, lr_at=lambda t: 0.1)
    assert training.steps_per_epoch(10, 4) == 3
    assert result.steps == 6 and result.epochs == 2
    np.testing.assert_allclose(result.history.train_loss, losses, rtol=1e-12)
    assert_params_close(result, W, b)
    # the third loss, written out once more: the squared error of rows 8, 9 at the params after 2 steps
    two = training.fit(dataclasses.replace(c, steps=2), X, Y).params[0]
    P = X[8:] @ np.asarray(two["W"]) + np.asarray(two["b"])
    assert result.history.train_loss[2] == pytest.approx(np.mean((P - Y[8:]) ** 2), rel=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_optimizers_follow_their_formulas(x64, optimizer):
    X, Y = toy_regression(n=12, k=2, seed=1)
    c = TrainConfig(**LINEAR, optimizer=optimizer, lr=0.05, momentum=0.8, batch_size=4, steps=7)
    result, (W, b, losses) = fit_vs_numpy(c, X, Y, lr_at=lambda t: 0.05, optimizer=optimizer, momentum=0.8)
    np.testing.assert_allclose(result.history.train_loss, losses, rtol=1e-12)
    assert_params_close(result, W, b)


def test_schedules_change_the_step_size_as_optax_says(x64):
    X, Y = toy_regression(n=10, seed=2)
    base = TrainConfig(**LINEAR, optimizer="sgd", lr=0.2, batch_size=4, steps=9)  # 3 steps per epoch
    T, spe = 9, 3
    schedules = {
        "constant": lambda t: 0.2,
        # optax.cosine_decay_schedule(0.2, decay_steps=T): 0.2 * (1 + cos(pi t / T)) / 2
        "cosine": lambda t: 0.2 * 0.5 * (1 + math.cos(math.pi * min(t, T) / T)),
        # optax.exponential_decay(0.2, transition_steps=spe, decay_rate=0.5, staircase=True)
        "exponential": lambda t: 0.2 * 0.5 ** (t // spe),
    }
    finals = {}
    for name, lr_at in schedules.items():
        c = dataclasses.replace(base, schedule=name, decay_rate=0.5)
        result, (W, b, _) = fit_vs_numpy(c, X, Y, lr_at=lr_at)
        assert_params_close(result, W, b)
        finals[name] = np.asarray(result.params[0]["W"])
    # the schedules really differ from the constant step size
    assert not np.allclose(finals["cosine"], finals["constant"], rtol=1e-6)
    assert not np.allclose(finals["exponential"], finals["constant"], rtol=1e-6)


def test_l2_penalises_weights_not_biases(x64):
    X, Y = toy_regression(n=8, seed=3)
    c = TrainConfig(**LINEAR, optimizer="sgd", lr=0.1, l2=0.5, batch_size=8, steps=5)
    result, (W, b, losses) = fit_vs_numpy(c, X, Y, lr_at=lambda t: 0.1, l2=0.5)
    np.testing.assert_allclose(result.history.train_loss, losses, rtol=1e-12)
    assert_params_close(result, W, b)
    # the same run with the bias penalised too would end elsewhere: the test can tell them apart
    p0 = initial_params(c, X, Y)
    assert abs(float(p0[0]["b"][0])) > 0.1


# --- manual == autodiff, determinism, one compilation --------------------------------------------


def test_manual_and_autodiff_training_agree_after_2000_steps(boston_csv):
    split = datasets.split_dataset(datasets.load_dataset(boston_csv), test_size=0.3, random_state=80718,
                                   scale_before_split=True)
    y = split.y_train.reshape(-1, 1)
    c = TrainConfig(hidden=(13,), activation="sigmoid", optimizer="sgd", lr=0.01, batch_size=32,
                    steps=2000, dtype="float64", seed=3)
    manual = training.fit(c, split.X_train, y)
    auto = training.fit(dataclasses.replace(c, gradients="autodiff"), split.X_train, y)
    assert manual.steps == auto.steps == 2000
    for pm, pa in zip(manual.params, auto.params, strict=True):
        for name in ("W", "b"):
            a, m = np.asarray(pa[name]), np.asarray(pm[name])
            assert a.dtype == np.float64
            assert np.max(np.abs(m - a)) <= 1e-9 * np.max(np.abs(a))
    np.testing.assert_allclose(manual.history.train_loss, auto.history.train_loss, rtol=1e-9)
    # and the run really trained: the loss fell by a large factor
    assert manual.history.train_loss[-20:].mean() < 0.2 * manual.history.train_loss[:10].mean()


def _small_run(seed, **kw):
    X, Y = toy_regression(n=50, d=4, seed=4)
    c = TrainConfig(hidden=(6,), activation="tanh", optimizer="adam", lr=0.01, batch_size=8, epochs=4,
                    seed=seed, **kw)
    return training.fit(c, X[:40], Y[:40], X_val=X[40:], Y_val=Y[40:])


def test_same_seed_is_bit_identical_and_seeds_differ():
    a, b, other = _small_run(0), _small_run(0), _small_run(1)
    for la, lb, lo in zip(a.params, b.params, other.params, strict=True):
        np.testing.assert_array_equal(np.asarray(la["W"]), np.asarray(lb["W"]))
        np.testing.assert_array_equal(np.asarray(la["b"]), np.asarray(lb["b"]))
        assert not np.array_equal(np.asarray(la["W"]), np.asarray(lo["W"]))
    np.testing.assert_array_equal(a.history.train_loss, b.history.train_loss)
    np.testing.assert_array_equal(a.history.val_loss, b.history.val_loss)
    assert not np.array_equal(a.history.train_loss, other.history.train_loss)


def test_the_seed_also_drives_the_shuffle():
    # same init (fixed by the params passed in), different seeds: only the batch order differs
    X, Y = toy_regression(n=20, seed=5)
    c0 = TrainConfig(hidden=(), optimizer="sgd", lr=0.05, batch_size=5, epochs=2, seed=0)
    c1 = dataclasses.replace(c0, seed=1)
    p = initial_params(c0, X, Y)
    s0 = training.init_state(c0, 3, 1, 20)._replace(params=p)
    s1 = training.init_state(c1, 3, 1, 20)._replace(params=p)
    i0 = engine.batch_indices(s0.key, jnp.int32(0), 20, 5, True)
    i1 = engine.batch_indices(s1.key, jnp.int32(0), 20, 5, True)
    assert not np.array_equal(np.asarray(i0), np.asarray(i1))
    r0, r1 = training.fit(c0, X, Y, state=s0), training.fit(c1, X, Y, state=s1)
    assert not np.array_equal(r0.history.train_loss, r1.history.train_loss)


@pytest.fixture
def backend_compiles():
    """Names of the functions XLA compiles while the test runs (jax.monitoring events)."""
    names: list[str] = []

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(str(kw.get("fun_name", "")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield names
    jax.monitoring.unregister_event_duration_listener(listener)


def test_fit_compiles_the_training_program_once(backend_compiles):
    X, Y = toy_regression(n=30, d=4, seed=6)
    at_chunk: list[int] = []
    # 30 rows / 8: a padded last batch every epoch. The odd `tol` and shapes are this test's alone,
    # so no program compiled (and cached) by an earlier test can hide a compilation
    c = TrainConfig(hidden=(7,), optimizer="adam", lr=0.01, batch_size=8, epochs=10, chunk_epochs=1,
                    patience=None, tol=1.2345e-9, seed=7)
    result = training.fit(c, X, Y, X_val=X[:11], Y_val=Y[:11],
                          callback=lambda info: at_chunk.append(len(backend_compiles)))
    assert result.epochs == 10 and result.steps == 40
    assert len(at_chunk) == 10  # ten compiled calls ...
    assert len(set(at_chunk)) == 1  # ... and nothing at all was compiled between them
    training_programs = [name for name in backend_compiles if "chunk" in name]
    assert len(training_programs) == 1, backend_compiles
    # a second fit of the same shapes compiles at most once more (JAX may reuse the executable)
    before = len(backend_compiles)
    training.fit(dataclasses.replace(c, seed=8), X, Y, X_val=X[:11], Y_val=Y[:11])
    assert len([name for name in backend_compiles[before:] if "chunk" in name]) <= 1


# --- steps, history, early stopping, dtypes -----------------------------------------------------


def test_steps_mode_runs_exactly_that_many_steps():
    X, Y = toy_regression(n=10)
    c = TrainConfig(hidden=(), optimizer="sgd", lr=0.05, batch_size=4, steps=7)  # 3 steps per epoch
    result = training.fit(c, X, Y, X_val=X, Y_val=Y)
    assert result.steps == 7
    assert result.history.train_loss.shape == (7,)
    # the third epoch stops after its first step: two epochs are complete, and only a complete
    # epoch is evaluated (so that resuming mid-epoch evaluates that epoch once, at its end)
    assert result.epochs == 2
    assert result.history.val_loss.shape == (2,)
    assert int(result.state.step) == 7


def test_history_shapes_and_val_loss_values(x64):
    X, Y = toy_regression(n=50, d=4, seed=8)
    c = TrainConfig(hidden=(5,), activation="tanh", optimizer="adam", lr=0.01, batch_size=8, epochs=5,
                    dtype="float64")
    result = training.fit(c, X[:40], Y[:40], X_val=X[40:], Y_val=Y[40:])
    assert result.history.train_loss.shape == (5 * 5,)  # 40 rows / 8 = 5 steps per epoch
    assert result.history.val_loss.shape == (5,)
    assert np.all(np.isfinite(result.history.train_loss))
    # the last epoch's validation loss is the MSE of the final parameters, recomputed in NumPy
    p = result.params
    H = np.tanh(X[40:] @ np.asarray(p[0]["W"]) + np.asarray(p[0]["b"]))
    P = H @ np.asarray(p[1]["W"]) + np.asarray(p[1]["b"])
    assert result.history.val_loss[-1] == pytest.approx(np.mean((P - Y[40:]) ** 2), rel=1e-12)
    no_val = training.fit(c, X[:40], Y[:40])
    assert no_val.history.train_loss.shape == (25,) and no_val.history.val_loss.shape == (0,)


def test_early_stopping_restores_the_best_parameters(x64):
    # 15 noisy rows and a wide network: it soon overfits, and the validation loss turns up
    rng = np.random.default_rng(9)
    X = rng.standard_normal((60, 5))
    Y = np.sin(X[:, :1]) + 0.8 * rng.standard_normal((60, 1))
    c = TrainConfig(hidden=(64,), activation="tanh", optimizer="adam", lr=0.03, batch_size=15,
                    epochs=400, patience=10, init="glorot", dtype="float64", seed=1)
    result = training.fit(c, X[:15], Y[:15], X_val=X[15:], Y_val=Y[15:])
    assert result.stopped_early
    assert result.epochs < 400
    val = result.history.val_loss
    assert val.shape == (result.epochs,)
    best = int(np.argmin(val))
    assert result.epochs == best + 1 + 10  # stopped exactly `patience` epochs after the best
    # the returned parameters are the best epoch's: re-evaluate their validation loss
    def mse(params):
        return jnp.mean(jnp.square(models.predict(params, jnp.asarray(X[15:]), foundations.tanh) - Y[15:]))

    again = mse(result.params)
    assert float(again) == pytest.approx(val.min(), rel=1e-12)
    last = mse(result.state.params)
    assert float(last) == pytest.approx(val[-1], rel=1e-12)
    assert float(last) > float(again)


def test_float32_by_default_float64_on_request():
    X, Y = toy_regression(n=10)
    c = TrainConfig(hidden=(3,), batch_size=5, epochs=1)
    r32 = training.fit(c, X, Y)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(r32.params)} == {jnp.dtype(jnp.float32)}
    r64 = training.fit(dataclasses.replace(c, dtype="float64"), X, Y)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(r64.params)} == {jnp.dtype(jnp.float64)}
    # and x64 is switched off again afterwards
    assert jnp.asarray(1.0).dtype == jnp.float32


def test_divergence_raises_and_keeps_the_last_finite_params():
    X, Y = toy_regression(n=40, d=4, seed=10)
    c = TrainConfig(hidden=(8,), optimizer="sgd", lr=1e6, batch_size=8, epochs=50)
    with pytest.raises(DivergedError, match="step") as info:
        training.fit(c, X, Y)
    err = info.value
    assert isinstance(err.step, int) and err.step >= 0
    res = err.result
    assert res.diverged_step == err.step
    assert res.steps == err.step  # steps before the bad one were applied, the bad one was not
    assert res.history.train_loss.shape == (err.step,)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(res.params))
    assert str(err.step) in str(err)
    # without raising, the same run returns the same record
    quiet = training.fit(c, X, Y, raise_on_divergence=False)
    assert quiet.diverged_step == err.step


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "exc", "pattern"),
    [
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr=-0.1), ValueError, "lr"),
        (dict(lr=float("nan")), ValueError, "lr"),
        (dict(lr=float("inf")), ValueError, "lr"),
        (dict(lr="0.1"), TypeError, "lr"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=2.5), ValueError, "batch_size"),
        (dict(hidden=(0,)), ValueError, "hidden"),
        (dict(hidden=(13, -1)), ValueError, "hidden"),
        (dict(hidden=[13]), TypeError, "hidden"),
        (dict(activation="softplus"), ValueError, r"activation.*sigmoid.*tanh.*relu.*leaky_relu"),
        (dict(optimizer="rmsprop"), ValueError, r"optimizer.*sgd.*momentum.*adam"),
        (dict(loss="hinge"), ValueError, r"loss.*mse.*cross_entropy"),
        (dict(reduction="median"), ValueError, r"reduction.*mean.*half_sum"),
        (dict(gradients="numeric"), ValueError, r"gradients.*manual.*autodiff"),
        (dict(dtype="float16"), ValueError, r"dtype.*float32.*float64"),
        (dict(init="xavier"), ValueError, r"init.*normal.*glorot.*he"),
        (dict(schedule="step"), ValueError, r"schedule.*cosine"),
        (dict(l2=-1.0), ValueError, "l2"),
        (dict(patience=0), ValueError, "patience"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(epochs=None, steps=-3), ValueError, "steps"),
        (dict(steps=10), ValueError, "epochs/steps"),  # both
        (dict(epochs=None), ValueError, "epochs/steps"),  # neither
        (dict(seed=1.5), TypeError, "seed"),
    ],
)
def test_bad_config_names_the_field(kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        TrainConfig(**{"epochs": 1, **kw})


def test_bad_data_names_the_argument():
    X, Y = toy_regression(n=10)
    c = TrainConfig(hidden=(), epochs=1)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X: contains NaN"):
        training.fit(c, bad, Y)
    with pytest.raises(ValueError, match=r"X, Y"):
        training.fit(c, X, Y[:9])
    with pytest.raises(ValueError, match=r"X_val, Y_val"):
        training.fit(c, X, Y, X_val=X)
    with pytest.raises(TypeError, match="config"):
        training.fit({"epochs": 1}, X, Y)


def test_fit_validates_the_data_on_the_host_and_copies_it_only_to_cast():
    # fit hands the engine host arrays: the engine pads them and moves them to the device once
    # (a device array here travelled there and back: 12% of W3's whole fit, docs/development.md)
    X32 = np.arange(12, dtype=np.float32).reshape(6, 2)
    same = training.as_2d_host("X", X32, np.float32)
    assert isinstance(same, np.ndarray) and np.shares_memory(same, X32)
    cast = training.as_2d_host("X", X32.astype(np.float64), np.float32)
    assert cast.dtype == np.float32 and np.array_equal(cast, X32)
    with pytest.raises(ValueError, match=r"Y_big: values exceed the range of float32"):
        training.as_2d_host("Y_big", np.array([1e300]), np.float32)
    r = training.fit(TrainConfig(hidden=(), epochs=3, batch_size=4), X32, np.arange(6.0))
    assert r.params[0]["W"].dtype == jnp.float32 and np.all(np.isfinite(r.history.train_loss))
    assert X32.flags.writeable and np.array_equal(X32, np.arange(12).reshape(6, 2))  # untouched


def run_chunk(c, opt, state, X, Y, *, n_steps, chunk_epochs, check_params):
    """One compiled chunk of the engine for the built-in model of ``c``, run once from ``state``."""
    n = X.shape[0]
    plan = engine.make_plan(n, c.batch_size, chunk_epochs=chunk_epochs, shuffle=c.shuffle,
                            track_best=c.patience is not None, bucket_rows=False)
    knobs = engine.make_knobs(n, c.batch_size, n_steps, patience=c.patience, tol=c.tol, dtype=X.dtype)
    loss_fn = training.resolve(c, c.batch_size).loss_fn
    fn = engine._build_chunk(loss_fn, opt, None, plan, check_params=check_params, batch_sharding=None)
    return jax.jit(fn)(state, (X, Y), (), (), knobs, (), None, np.int32(chunk_epochs))


def test_shuffles_computed_per_chunk_equal_shuffles_computed_per_epoch(monkeypatch):
    # the chunk's epoch permutations are drawn in one batch before the scan, at most
    # _MAX_ORDER_INDICES of them (so chunks shrink to one epoch below that): the same run
    X, Y = toy_regression(n=40, d=3, seed=11)
    c = TrainConfig(hidden=(5,), optimizer="sgd", lr=0.05, batch_size=6, epochs=6, chunk_epochs=4)
    hoisted = training.fit(c, X, Y)
    monkeypatch.setattr(jaxnn.plan, "_MAX_ORDER_INDICES", 0)
    engine._COMPILED.clear()
    per_epoch = training.fit(c, X, Y)
    np.testing.assert_array_equal(hoisted.history.train_loss, per_epoch.history.train_loss)
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(hoisted.params), leaves(per_epoch.params), strict=True):
        np.testing.assert_array_equal(a, b)
    # and both are jax.random.permutation's order: the first epoch's first minibatch
    idx = engine.batch_indices(hoisted.state.key, jnp.int32(0), 40, 6, True)
    perm = jax.random.permutation(jax.random.fold_in(hoisted.state.key, 0), 40)
    np.testing.assert_array_equal(idx.reshape(-1)[:40], perm)


# --- guarded_update: one pass per leaf, and a rejected step changes nothing ---


def _guard_case():
    f32 = lambda a: jnp.array(a, jnp.float32)
    params = [{"W": f32([[1.0, -2.0], [0.5, 3.0]]), "b": f32([0.25, -0.0])}]
    updates = [{"W": f32([[0.1, 0.2], [-0.3, 0.4]]), "b": f32([1.0, 2.0])}]
    return params, updates


def test_guarded_update_applies_a_finite_step_exactly_as_optax():
    import optax

    params, updates = _guard_case()
    new, applied = engine.guarded_update(params, updates, jnp.float32(0.5), jnp.bool_(True))
    assert bool(applied)
    want = optax.apply_updates(params, updates)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["inactive", "nan_loss", "inf_update", "nan_update", "overflow"])
def test_guarded_update_rejects_and_keeps_the_parameters(case):
    params, updates = _guard_case()
    value, active = jnp.float32(0.5), jnp.bool_(True)
    if case == "inactive":
        active = jnp.bool_(False)
    elif case == "nan_loss":
        value = jnp.float32(jnp.nan)
    elif case == "inf_update":
        updates[0]["b"] = updates[0]["b"].at[1].set(jnp.inf)
    elif case == "nan_update":
        updates[0]["W"] = updates[0]["W"].at[0, 1].set(jnp.nan)
    else:  # finite + finite beyond float32's range: the new parameter would be inf
        params[0]["W"] = params[0]["W"].at[1, 1].set(3e38)
        updates[0]["W"] = updates[0]["W"].at[1, 1].set(3e38)
    new, applied = engine.guarded_update(params, updates, value, active)
    assert not bool(applied)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)
        assert np.all(np.isfinite(a))


def test_guarded_update_without_the_parameter_check_tests_the_loss_only():
    params, updates = _guard_case()
    updates[0]["b"] = updates[0]["b"].at[1].set(jnp.inf)
    new, applied = engine.guarded_update(params, updates, jnp.float32(0.5), jnp.bool_(True),
                                           check_params=False)
    assert bool(applied) and np.isinf(np.asarray(new[0]["b"][1]))  # left to the chunk's end
    _, applied = engine.guarded_update(params, updates, jnp.float32(jnp.nan), jnp.bool_(True),
                                         check_params=False)
    assert not bool(applied)


# --- the parameter check at a chunk's end, and the second run that finds the step ---


def test_a_step_with_a_finite_loss_but_overflowing_parameters_is_found_by_the_second_run():
    """lr = 1e38: step 0's loss is finite, its new weights overflow to inf; step 1's loss is inf.

    Checked by the loss alone, step 1 would be the one that diverged, and the weights inf.
    fit() sees the non-finite parameters at the chunk's end, runs the chunk again with every
    step checked, and so rejects step 0 and keeps the initial parameters.
    """
    X, Y = toy_regression(n=12, d=3)
    Y = 100 * Y  # gradients well above 3.4 so that lr * g overflows float32
    c = TrainConfig(hidden=(), optimizer="sgd", lr=1e38, steps=6, batch_size=12, shuffle=False)
    Xj, Yj = jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32)
    state0 = training.init_state(c, 3, 1, 12)
    opt = training.make_optimizer(c, 1, 6)

    def run(check_params):
        return run_chunk(c, opt, state0, Xj, Yj, n_steps=6, chunk_epochs=6, check_params=check_params)[0]

    loss_only, every_step = run(False), run(True)
    assert int(loss_only.diverged_step) == 1 and not np.all(np.isfinite(loss_only.params[0]["W"]))
    assert int(every_step.diverged_step) == 0
    assert not bool(engine.finite_and_not_diverged(loss_only))

    r = training.fit(c, X, Y, raise_on_divergence=False)
    assert r.diverged_step == 0 and r.steps == 0 and r.history.train_loss.shape == (0,)
    for a, b in zip(jax.tree_util.tree_leaves(r.params), jax.tree_util.tree_leaves(state0.params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_parameters_checked_at_the_chunk_end_train_exactly_as_checked_every_step():
    """A run that never diverges: the two ways of checking give the same numbers."""
    X, Y = toy_regression(n=40, d=4, k=2)
    c = TrainConfig(hidden=(8,), optimizer="momentum", lr=0.05, epochs=5, batch_size=7, dtype="float64")
    with jax.enable_x64(True):
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
        state0 = training.init_state(c, 4, 2, 40)
        opt = training.make_optimizer(c, 6, 30)
        out = [run_chunk(c, opt, state0, Xj, Yj, n_steps=30, chunk_epochs=5, check_params=check)
               for check in (False, True)]
        assert bool(engine.finite_and_not_diverged(out[0][0]))
    for a, b in zip(jax.tree_util.tree_leaves(out[0]), jax.tree_util.tree_leaves(out[1]), strict=True):
        if jnp.issubdtype(a.dtype, jnp.floating):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_l2_with_a_sum_reduction_is_added_once_per_full_minibatch(x64):
    X, Y = toy_regression(n=12, d=3, seed=4)
    c = TrainConfig(hidden=(4,), activation="tanh", optimizer="sgd", lr=0.01, batch_size=12, steps=1,
                    reduction="sum", l2=0.3, dtype="float64", shuffle=False)
    p0 = training.init_state(c, 3, 1, 12).params
    res = training.fit(c, X, Y)
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    g = jax.grad(lambda p: jnp.sum(jnp.square(models.network(p, Xj, jnp.tanh) - Yj))
                 + 0.3 * models.l2_penalty(p))(p0)
    for got, a, b in zip(jax.tree_util.tree_leaves(res.params), jax.tree_util.tree_leaves(p0),
                         jax.tree_util.tree_leaves(g), strict=True):
        np.testing.assert_allclose(got, a - 0.01 * b, rtol=1e-12)
