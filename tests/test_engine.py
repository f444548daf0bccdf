"""jaxnn.fit: the engine for any model, checked against a plain-JAX reference loop."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from jaxnn import engine, xla_cpu
from jaxnn.errors import DivergedError

# --- a user's own model: a residual block with a hand-written softplus -----------------------


def softplus(x):
    return jnp.logaddexp(x, 0.0)


def softplus_backward(x, cotangent):
    return (cotangent * jax.nn.sigmoid(x),)


act = jaxnn.with_backward(softplus, softplus_backward)


def _normal(rng, shape, dtype):
    """Test inputs drawn with NumPy: a ``jax.random`` draw would compile a program per shape."""
    return jnp.asarray(rng.standard_normal(shape), dtype)


def _rng(key):
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())


def init(key, d, h, k, dtype):
    rng = _rng(key)
    return {
        "dense": [{"W": _normal(rng, (d, h), dtype) / math.sqrt(d), "b": jnp.zeros((h,), dtype)},
                  {"W": _normal(rng, (h, k), dtype) / math.sqrt(h), "b": jnp.zeros((k,), dtype)}],
        "skip": (_normal(rng, (d, k), dtype) * 0.1,),
    }


def predict(p, x):
    h = act(x @ p["dense"][0]["W"] + p["dense"][0]["b"][None, :])
    return h @ p["dense"][1]["W"] + p["dense"][1]["b"][None, :] + x @ p["skip"][0]


def loss_fn(p, x, y):
    return jnp.sum(jnp.square(predict(p, x) - y), axis=-1)  # (B,)


def make_data(key, n, d, k, dtype):
    rng = _rng(key)
    X = _normal(rng, (n, d), dtype)
    Y = jnp.sin(X[:, :k]) + 0.1 * _normal(rng, (n, k), dtype)
    return X, Y


def optimizer():
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(3e-3, weight_decay=1e-2))


def reference_fit(loss_fn, params, X, Y, opt, *, batch_size, steps, key, shuffle=True):
    """The documented contract in plain JAX: epoch e visits permutation(fold_in(key, e), n) in
    consecutive minibatches; the last one is short; each step minimises its mean loss."""
    n = X.shape[0]
    nb = math.ceil(n / batch_size)
    state = opt.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        g = jax.grad(lambda p: jnp.mean(loss_fn(p, xb, yb)))(params)
        with jax.numpy_dtype_promotion("standard"):
            u, state = opt.update(g, state, params)
        return optax.apply_updates(params, u), state

    t = 0
    losses = []
    for e in range(math.ceil(steps / nb)):
        order = jax.random.permutation(jax.random.fold_in(key, e), n) if shuffle else jnp.arange(n)
        for j in range(nb):
            if t == steps:
                break
            rows = order[j * batch_size:(j + 1) * batch_size]
            losses.append(float(jnp.mean(loss_fn(params, X[rows], Y[rows]))))
            params, state = step(params, state, X[rows], Y[rows])
            t += 1
    return params, np.array(losses)


def assert_trees_close(a, b, rtol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=0)


def test_users_residual_model_equals_a_plain_jax_loop_float64():
    with jax.enable_x64(True):
        X, Y = make_data(jax.random.key(1), 45, 4, 2, jnp.float64)  # 45 = 3 * 13 + 6: a short last batch
        p0 = init(jax.random.key(2), 4, 8, 2, jnp.float64)
        key = jax.random.key(3)
        res = jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optimizer(), batch_size=13, steps=30, key=key)
        ref, ref_losses = reference_fit(loss_fn, p0, X, Y, optimizer(), batch_size=13, steps=30, key=key)
        assert res.steps == 30 and res.history.train_loss.shape == (30,)
        assert_trees_close(res.params, ref, rtol=1e-9)
        np.testing.assert_allclose(res.history.train_loss, ref_losses, rtol=1e-9)
        # the structure of the user's pytree is kept
        assert jax.tree_util.tree_structure(res.params) == jax.tree_util.tree_structure(p0)


def test_hand_written_and_autodiff_models_train_alike():
    with jax.enable_x64(True):
        X, Y = make_data(jax.random.key(1), 40, 4, 2, jnp.float64)
        p0 = init(jax.random.key(2), 4, 8, 2, jnp.float64)

        def loss_auto(p, x, y):
            h = softplus(x @ p["dense"][0]["W"] + p["dense"][0]["b"][None, :])
            out = h @ p["dense"][1]["W"] + p["dense"][1]["b"][None, :] + x @ p["skip"][0]
            return jnp.sum(jnp.square(out - y), axis=-1)

        a = jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optax.sgd(0.05), batch_size=8, epochs=5)
        b = jaxnn.fit(loss_auto, p0, (X, Y), optimizer=optax.sgd(0.05), batch_size=8, epochs=5)
        assert_trees_close(a.params, b.params, rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_resume_mid_epoch_is_bit_identical(dtype):
    with jax.enable_x64(dtype == jnp.float64):
        X, Y = make_data(jax.random.key(1), 50, 4, 2, dtype)
        p0 = init(jax.random.key(2), 4, 8, 2, dtype)
        schedule = optax.cosine_decay_schedule(1e-2, 61)
        opt = optax.adam(schedule)
        kw = dict(optimizer=opt, batch_size=16, key=jax.random.key(5), patience=50)
        whole = jaxnn.fit(loss_fn, p0, (X, Y), steps=61, **kw)
        first = engine._fit(loss_fn, p0, (X, Y), steps=33, chunk_epochs=2, **kw)  # stops inside epoch 8
        assert first.steps == 33
        rest = engine._fit(loss_fn, p0, (X, Y), steps=61, state=first.state, chunk_epochs=1, **kw)
        assert rest.steps == 61 and rest.history.train_loss.shape == (28,)
        for a, b in zip(jax.tree_util.tree_leaves(whole.state), jax.tree_util.tree_leaves(rest.state),
                        strict=True):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.concatenate([first.history.train_loss, rest.history.train_loss]),
                                      whole.history.train_loss)


def test_chunking_never_changes_a_result():
    X, Y = make_data(jax.random.key(1), 37, 3, 1, jnp.float32)
    p0 = init(jax.random.key(2), 3, 5, 1, jnp.float32)
    runs = [engine._fit(loss_fn, p0, (X, Y), optimizer=optax.sgd(0.01, momentum=0.9), batch_size=10,
                      epochs=7, chunk_epochs=c, val_data=(X[:5], Y[:5])) for c in (1, 3, 7, 100)]
    for r in runs[1:]:
        assert_trees_close(r.params, runs[0].params, rtol=0)
        np.testing.assert_array_equal(r.history.val_loss, runs[0].history.val_loss)
        np.testing.assert_array_equal(r.history.epoch_loss, runs[0].history.epoch_loss)
    assert runs[0].history.val_loss.shape == (7,)


def test_state_from_another_optimizer_or_params_is_refused():
    X, Y = make_data(jax.random.key(1), 20, 3, 1, jnp.float32)
    p0 = init(jax.random.key(2), 3, 5, 1, jnp.float32)
    sgd = jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optax.sgd(0.01), steps=3)
    with pytest.raises(ValueError, match="another optimizer"):
        jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optax.adam(0.01), steps=6, state=sgd.state)
    other = init(jax.random.key(2), 3, 6, 1, jnp.float32)
    with pytest.raises(ValueError, match=r"params.*\[3, 6\]"):
        jaxnn.fit(loss_fn, other, (X, Y), optimizer=optax.sgd(0.01), steps=6, state=sgd.state)


def test_a_state_from_another_optimizer_names_the_transformations_that_differ():
    """Before: ``... comes from another optimizer than this run's (tuple vs tuple)``. The states'
    structures say which optax transformation (and its fields) each optimizer keeps, and where."""
    X, Y = make_data(jax.random.key(1), 20, 3, 1, jnp.float32)
    p0 = init(jax.random.key(2), 3, 5, 1, jnp.float32)
    adam = jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optax.adam(0.01), steps=3)
    with pytest.raises(ValueError) as exc:
        jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optax.sgd(0.01, momentum=0.9), steps=6, state=adam.state)
    assert str(exc.value) == (
        "state: its optimizer state comes from another optimizer than this run's: the saved state is "
        "(ScaleByAdamState(count, mu, nu), EmptyState()), this run's optimizer makes (TraceState(trace), "
        "EmptyState()); they differ at opt_state[0]: ScaleByAdamState(count, mu, nu) vs TraceState(trace); "
        "resume with the optimizer it was trained with")
    # a chain whose hyper-parameters differ: the field and the keys are named
    lr = optax.inject_hyperparams(optax.adam)(learning_rate=0.01)
    injected = jaxnn.fit(loss_fn, p0, (X, Y), optimizer=lr, steps=3)
    with pytest.raises(ValueError, match=r"differ at opt_state\.hyperparams: \{'b1', 'b2', 'eps', "
                                         r"'eps_root', 'learning_rate'\} vs \{'learning_rate'\}"):
        jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optax.inject_hyperparams(optax.sgd)(learning_rate=0.01),
                  steps=6, state=injected.state)


def test_integer_labels_and_sample_weights():
    with jax.enable_x64(True):
        kx, ky, kw = jax.random.split(jax.random.key(0), 3)
        X = jax.random.normal(kx, (30, 4), jnp.float64)
        y = jax.random.randint(ky, (30,), 0, 3)
        sw = jax.random.uniform(kw, (30,), jnp.float64, 0.0, 2.0)
        p0 = {"W": jnp.zeros((4, 3), jnp.float64), "b": jnp.zeros((3,), jnp.float64)}

        def ce(p, x, y):
            return optax.softmax_cross_entropy_with_integer_labels(x @ p["W"] + p["b"][None, :], y)

        res = jaxnn.fit(ce, p0, (X, y), optimizer=optax.sgd(0.1), batch_size=30, steps=4, shuffle=False,
                        sample_weight=sw)
        p = p0
        for _ in range(4):  # full batch: each step minimises the weighted mean
            g = jax.grad(lambda p: jnp.sum(sw * ce(p, X, y)) / jnp.sum(sw))(p)
            p = jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g)
        assert_trees_close(res.params, p, rtol=1e-12)


def test_early_stopping_follows_sklearn_tol_semantics_and_restores_best():
    with jax.enable_x64(True):
        X, Y = make_data(jax.random.key(1), 40, 3, 1, jnp.float64)
        Xv, Yv = make_data(jax.random.key(9), 20, 3, 1, jnp.float64)
        p0 = init(jax.random.key(2), 3, 5, 1, jnp.float64)
        kw = dict(optimizer=optax.sgd(0.05, momentum=0.9), batch_size=8, val_data=(Xv, Yv))
        full = jaxnn.fit(loss_fn, p0, (X, Y), epochs=60, **kw)
        tol, patience = 1e-3, 4
        stopped = jaxnn.fit(loss_fn, p0, (X, Y), epochs=60, patience=patience, tol=tol, **kw)
        # replay the rule on the full run's validation curve
        best, bad, stop_at, best_at = np.inf, 0, None, None
        for e, v in enumerate(full.history.val_loss):
            bad = 0 if v <= best - tol else bad + 1
            if v < best:
                best, best_at = v, e
            if bad >= patience:
                stop_at = e
                break
        assert stop_at is not None, "the test needs a run that stops early"
        assert stopped.stopped_early and stopped.epochs == stop_at + 1
        np.testing.assert_array_equal(stopped.history.val_loss, full.history.val_loss[:stop_at + 1])
        again = jaxnn.fit(loss_fn, p0, (X, Y), epochs=best_at + 1, **kw)
        assert_trees_close(stopped.params, again.state.params, rtol=0)


def test_divergence_keeps_the_last_finite_parameters():
    X, Y = make_data(jax.random.key(1), 32, 3, 1, jnp.float32)
    p0 = init(jax.random.key(2), 3, 5, 1, jnp.float32)
    with pytest.raises(DivergedError) as err:
        jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optax.sgd(1e38), batch_size=8, steps=10)
    res = err.value.result
    assert res.steps == res.diverged_step  # every step before the bad one was applied, none after
    assert np.all(np.isfinite(res.history.train_loss)) and res.history.train_loss.shape == (res.steps,)
    if res.steps:
        before = jaxnn.fit(loss_fn, p0, (X, Y), optimizer=optax.sgd(1e38), batch_size=8, steps=res.steps)
        assert_trees_close(res.params, before.params, rtol=0)
    else:
        assert_trees_close(res.params, p0, rtol=0)


def test_bad_arguments_are_named():
    X, Y = make_data(jax.random.key(1), 10, 3, 1, jnp.float32)
    p0 = init(jax.random.key(2), 3, 5, 1, jnp.float32)
    cases = [
        (dict(optimizer="adam", steps=1), TypeError, "optimizer"),
        (dict(optimizer=optax.sgd(0.1)), ValueError, "epochs/steps"),
        (dict(optimizer=optax.sgd(0.1), steps=3_000_000_000), ValueError, "steps.*limit"),
        (dict(optimizer=optax.sgd(0.1), steps=1, batch_size=0), ValueError, "batch_size"),
        (dict(optimizer=optax.sgd(0.1), steps=1, key=0), TypeError, "key"),
    ]
    for kw, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            jaxnn.fit(loss_fn, p0, (X, Y), **kw)
    with pytest.raises(ValueError, match="different numbers of rows"):
        jaxnn.fit(loss_fn, p0, (X, Y[:5]), optimizer=optax.sgd(0.1), steps=1)
    with pytest.raises(ValueError, match="NaN"):
        jaxnn.fit(loss_fn, p0, (X.at[2, 1].set(jnp.nan), Y), optimizer=optax.sgd(0.1), steps=1)
    with pytest.raises(ValueError, match=r"loss_fn: expected per-example losses of shape \(4,\)"):
        jaxnn.fit(lambda p, x, y: jnp.mean(loss_fn(p, x, y)), p0, (X, Y), optimizer=optax.sgd(0.1),
                  batch_size=4, steps=1)


def test_the_compiled_chunk_is_reused_for_the_same_loss_and_optimizer():
    X, Y = make_data(jax.random.key(1), 20, 3, 1, jnp.float32)
    opt = optax.sgd(0.01)
    engine._COMPILED.clear()
    a = jaxnn.fit(loss_fn, init(jax.random.key(2), 3, 5, 1, jnp.float32), (X, Y), optimizer=opt, steps=6)
    b = jaxnn.fit(loss_fn, init(jax.random.key(3), 3, 5, 1, jnp.float32), (X, Y), optimizer=opt, steps=6)
    assert len(engine._COMPILED) == 1
    assert a.seconds["compile"] > 10 * b.seconds["compile"]


def test_orders_drawn_on_the_host_train_exactly_as_orders_drawn_on_the_device(monkeypatch):
    """A single threefry key's orders are drawn with NumPy and passed to the chunk, which then holds
    no sort and no random bits; the run is bit for bit the one that draws them inside the program,
    across chunks (a resumed mid-epoch start, the last chunk's skipped epochs) and padding."""
    X, Y = make_data(jax.random.key(1), 45, 4, 2, jnp.float32)
    p0 = init(jax.random.key(2), 4, 8, 2, jnp.float32)
    opt = optax.adam(1e-2)
    kw = dict(optimizer=opt, batch_size=13, key=jax.random.key(3), chunk_epochs=2)

    def run():
        engine._COMPILED.clear()
        first = engine._fit(loss_fn, p0, (X, Y), steps=10, **kw)  # 10 steps: mid-epoch (4 per epoch)
        hlo = [xla_cpu.compiled_text(c) for c in engine._COMPILED.values()]
        return engine._fit(loss_fn, p0, (X, Y), steps=29, state=first.state, **kw), first, hlo

    host, host_first, host_hlo = run()
    monkeypatch.setattr(engine._shuffle, "draws_on_host", lambda key: False)
    device, device_first, device_hlo = run()
    for a, b in ((host, device), (host_first, device_first)):
        np.testing.assert_array_equal(a.history.train_loss, b.history.train_loss)
        leaves = jax.tree_util.tree_leaves
        for x, y in zip(leaves(a.params), leaves(b.params), strict=True):
            np.testing.assert_array_equal(x, y)
    assert host.steps == 29 and host.history.train_loss.shape == (19,)
    assert all(" sort(" not in h and "threefry" not in h for h in host_hlo) and host_hlo
    assert all(" sort(" in h for h in device_hlo) and device_hlo


def test_more_rows_than_the_padded_shuffle_takes_train_the_same_from_either_order_source(monkeypatch):
    """Beyond 2**16 rows nothing is padded and the device draws JAX's own permutation (until
    2026-12-02 a shuffled fit of so many rows raised ValueError from permutation_prefix); the
    host's orders are the same."""
    n = 2**16 + 5
    X = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    Y = X @ np.array([[1.0], [-2.0]], np.float32)
    p0 = {"W": jnp.zeros((2, 1)), "b": jnp.zeros((1,))}

    def lin(p, x, y):
        return jnp.sum((x @ p["W"] + p["b"][None, :] - y) ** 2, axis=1)

    kw = dict(optimizer=optax.sgd(0.1), batch_size=2**15, epochs=2, key=jax.random.key(4))
    host = jaxnn.fit(lin, p0, (X, Y), **kw)
    monkeypatch.setattr(engine._shuffle, "draws_on_host", lambda key: False)
    device = jaxnn.fit(lin, p0, (X, Y), **kw)
    assert host.steps == device.steps == 6
    np.testing.assert_array_equal(host.history.train_loss, device.history.train_loss)
    np.testing.assert_array_equal(host.params["W"], device.params["W"])
    # the device's order is jax.random.permutation's: epoch 1's first minibatch, from its loss
    order = np.asarray(jax.random.permutation(jax.random.fold_in(kw["key"], 1), n))
    after_epoch_0 = jaxnn.fit(lin, p0, (X, Y), **{**kw, "epochs": 1})
    rows = order[:2**15]
    want = np.mean(np.asarray(lin(after_epoch_0.params, X[rows], Y[rows])))
    np.testing.assert_allclose(device.history.train_loss[3], want, rtol=1e-5)
