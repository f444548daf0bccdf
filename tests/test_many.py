"""jaxnn.fit_many: model i of a run is jaxnn.fit of model i alone, for a user's own model.

The reference is the engine's single-model ``fit`` with model i's parameters, hyper-parameters,
key and rows, in float64; the models here are plain dicts with a custom activation, not the
built-in network.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from jaxnn import engine
from jaxnn.many import PerModel

TOL = 1e-9


def act(z):
    return jnp.tanh(z) + 0.1 * z  # a user's own activation


def init(key, d=5, h=7, k=1):
    """float64 inside ``jax.enable_x64()``, else float32 (JAX's default dtype)."""
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (d, h)) * 0.3, "b1": jnp.zeros(h),
            "w2": jax.random.normal(k2, (h, k)) * 0.3}


def loss(p, x, y, l2):
    pred = act(x @ p["w1"] + p["b1"][None, :]) @ p["w2"]
    return ((pred - y) ** 2).sum(-1) + l2 * jnp.sum(p["w1"] ** 2)


def _data(n=101, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, X[:, :1] * 2 + np.sin(X[:, 1:2])


def _params(M, seed=1):
    return jax.vmap(init)(jax.random.split(jax.random.key(seed), M))


def _pick(tree, i):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def _adam(lr):
    return optax.inject_hyperparams(optax.adam)(learning_rate=lr)


def test_each_model_is_its_own_fit_with_its_rows_key_rate_l2_and_length():
    """CV-fold rows of different sizes, one key per model, per-model learning rate, L2 and epochs."""
    with jax.enable_x64(True):
        X, Y = _data()
        M = 4
        params = _params(M)
        lrs, l2s = np.array([1e-3, 3e-3, 1e-2, 3e-2]), np.array([0.0, 1e-3, 1e-2, 0.1])
        keys = jax.random.split(jax.random.key(7), M)
        folds = [np.flatnonzero(np.arange(101) % 4 != i)[: 60 + 7 * i] for i in range(M)]
        res = jaxnn.fit_many(loss, params, PerModel([(X[f], Y[f]) for f in folds]), optimizer=_adam(1e-3),
                             hyperparams={"learning_rate": lrs}, key=keys, batch_size=16,
                             epochs=[5, 6, 7, 8], loss_args=(l2s,))
        for i in range(M):
            one = jaxnn.fit(loss, _pick(params, i), (X[folds[i]], Y[folds[i]]), optimizer=_adam(lrs[i]),
                            key=keys[i], batch_size=16, epochs=5 + i, loss_args=(l2s[i],))
            mine = res.model(i)
            assert mine.steps == one.steps == (5 + i) * -(-len(folds[i]) // 16)
            assert _max_diff(mine.params, one.params) < TOL
            np.testing.assert_allclose(mine.history.train_loss, one.history.train_loss, rtol=0, atol=TOL)
            np.testing.assert_allclose(mine.history.epoch_loss, one.history.epoch_loss, rtol=0, atol=TOL)
        # the padded history: NaN past each model's own end
        assert res.history.train_loss.shape == (M, int(res.steps.max()))
        assert np.isnan(res.history.train_loss[0, res.steps[0]:]).all()


def test_one_key_and_shared_data_every_model_sees_the_same_minibatches():
    with jax.enable_x64(True):
        X, Y = _data()
        M = 3
        params = _params(M, seed=2)
        sw = np.random.default_rng(3).uniform(0.5, 2.0, size=(M, 101))
        res = jaxnn.fit_many(loss, params, (X, Y), optimizer=optax.sgd(0.05), key=jax.random.key(3),
                             batch_size=32, epochs=3, sample_weight=sw, loss_args=(np.zeros(M),))
        for i in range(M):
            one = jaxnn.fit(loss, _pick(params, i), (X, Y), optimizer=optax.sgd(0.05), key=jax.random.key(3),
                            batch_size=32, epochs=3, sample_weight=sw[i], loss_args=(0.0,))
            assert _max_diff(res.model(i).params, one.params) < TOL


def test_a_diverged_model_stops_and_keeps_its_last_finite_parameters_the_others_train_on():
    with jax.enable_x64(True):
        X, Y = _data()
        params = _params(3, seed=4)
        lrs = np.array([1e-2, 1e6, 3e-2])
        sgd = optax.inject_hyperparams(optax.sgd)
        res = jaxnn.fit_many(loss, params, (X, Y), optimizer=sgd(learning_rate=0.1),
                             hyperparams={"learning_rate": lrs}, batch_size=16, epochs=6,
                             loss_args=(np.zeros(3),))
        assert res.diverged_step[0] == res.diverged_step[2] == -1 and res.diverged_step[1] >= 0
        for i in range(3):
            one = engine._fit(loss, _pick(params, i), (X, Y),
                            optimizer=optax.inject_hyperparams(optax.sgd)(learning_rate=lrs[i]),
                            batch_size=16, epochs=6, loss_args=(0.0,), raise_on_divergence=False)
            assert res.model(i).diverged_step == one.diverged_step
            assert res.model(i).steps == one.steps
            leaves = jax.tree_util.tree_leaves
            # (relative: a diverging model's last finite parameters can be huge)
            for a, b in zip(leaves(res.model(i).params), leaves(one.params), strict=True):
                np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)
            assert all(np.isfinite(a).all() for a in jax.tree_util.tree_leaves(res.model(i).params))


def test_early_stopping_per_model_with_validation_data_and_per_model_patience():
    with jax.enable_x64(True):
        X, Y = _data(160)
        Xv, Yv = _data(40, seed=9)
        params = _params(3, seed=5)
        lrs = np.array([3e-2, 1e-1, 3e-1])
        pats, tols = [2, 3, 1], [1e-3, 0.0, 1e-2]
        res = jaxnn.fit_many(loss, params, (X, Y), optimizer=_adam(1e-3), hyperparams={"learning_rate": lrs},
                             batch_size=32, epochs=40, val_data=(Xv, Yv), patience=pats, tol=tols,
                             loss_args=(np.zeros(3),))
        assert res.stopped_early.any()
        for i in range(3):
            one = jaxnn.fit(loss, _pick(params, i), (X, Y), optimizer=_adam(lrs[i]), batch_size=32, epochs=40,
                            val_data=(Xv, Yv), patience=pats[i], tol=tols[i], loss_args=(0.0,))
            mine = res.model(i)
            assert (mine.steps, mine.stopped_early) == (one.steps, one.stopped_early)
            np.testing.assert_allclose(mine.history.val_loss, one.history.val_loss, rtol=0, atol=TOL)
            assert _max_diff(mine.params, one.params) < TOL  # the restored best parameters


def test_a_run_of_several_calls_draws_each_calls_orders_ahead_as_its_own_fit_would():
    """20 and 13 epochs run in calls of 8: each call's orders, drawn on the host while the device
    runs the call before, are the ones each model's own ``fit`` uses."""
    with jax.enable_x64(True):
        X, Y = _data()
        params = _params(2, seed=8)
        keys = jax.random.split(jax.random.key(5), 2)
        res = jaxnn.fit_many(loss, params, (X, Y), optimizer=_adam(1e-3),
                             hyperparams={"learning_rate": [1e-2, 3e-2]}, key=keys, batch_size=32,
                             epochs=[20, 13], loss_args=(np.zeros(2),))
        for i, epochs in enumerate((20, 13)):
            one = jaxnn.fit(loss, _pick(params, i), (X, Y), optimizer=_adam([1e-2, 3e-2][i]), key=keys[i],
                            batch_size=32, epochs=epochs, loss_args=(0.0,))
            assert res.model(i).steps == one.steps == epochs * 4
            assert _max_diff(res.model(i).params, one.params) < TOL
            np.testing.assert_allclose(res.model(i).history.train_loss, one.history.train_loss,
                                       rtol=0, atol=TOL)


def test_a_hyper_parameter_held_in_two_places_is_set_in_both():
    """A chain of two injected transformations holds two learning rates: ``hyperparams`` sets
    both (as ``optax.tree_utils.tree_set`` does), and model i is its own fit with both at its rate."""
    def chain(lr):
        sgd = optax.inject_hyperparams(optax.sgd)
        return optax.chain(sgd(learning_rate=lr), sgd(learning_rate=lr))

    with jax.enable_x64(True):
        X, Y = _data()
        params = _params(2, seed=9)
        lrs = np.array([0.05, 0.02])  # two sgd steps in a row: an update of +lr**2 g, kept small
        res = jaxnn.fit_many(loss, params, (X, Y), optimizer=chain(1.0), hyperparams={"learning_rate": lrs},
                             batch_size=32, epochs=3, loss_args=(np.zeros(2),))
        for i in range(2):
            one = jaxnn.fit(loss, _pick(params, i), (X, Y), optimizer=chain(lrs[i]), batch_size=32, epochs=3,
                            loss_args=(0.0,))
            assert _max_diff(res.model(i).params, one.params) < TOL


def test_resume_continues_exactly():
    with jax.enable_x64(True):
        X, Y = _data()
        params = _params(2, seed=6)
        kw = dict(optimizer=_adam(1e-3), hyperparams={"learning_rate": [1e-2, 3e-2]},
                  key=jax.random.split(jax.random.key(0), 2), batch_size=16, loss_args=(np.zeros(2),))
        whole = jaxnn.fit_many(loss, params, (X, Y), steps=41, **kw)
        half = jaxnn.fit_many(loss, params, (X, Y), steps=19, **kw)
        rest = jaxnn.fit_many(loss, params, (X, Y), steps=41, state=half.state, **kw)
        assert _max_diff(whole.params, rest.params) == 0.0
        np.testing.assert_array_equal(rest.steps, [41, 41])


def test_a_new_learning_rate_or_l2_compiles_nothing():
    X, Y = _data()
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    params = jax.vmap(init)(jax.random.split(jax.random.key(0), 4))
    opt = _adam(1e-3)
    jaxnn.fit_many(loss, params, (X, Y), optimizer=opt, hyperparams={"learning_rate": np.full(4, 1e-3)},
                   batch_size=16, epochs=2, loss_args=(np.zeros(4, np.float32),))
    before = len(engine._COMPILED)
    lrs = [1e-2, 2e-2, 3e-2, 4e-2]
    r = jaxnn.fit_many(loss, params, (X, Y), optimizer=opt, hyperparams={"learning_rate": lrs},
                       batch_size=16, epochs=2, loss_args=(np.array([0.1, 0.2, 0.3, 0.4], np.float32),))
    assert len(engine._COMPILED) == before and r.seconds["compile"] < 0.5
    np.testing.assert_allclose(np.asarray(optax.tree_utils.tree_get(r.state.opt_state, "learning_rate")),
                               [1e-2, 2e-2, 3e-2, 4e-2], rtol=1e-6)


def test_a_shared_minibatch_is_one_product_for_all_models():
    """One key, shared data: the first layer of M models is one (B, d) @ (d, M*h) product, not M."""
    from jaxnn import xla_cpu

    X, Y = _data(40, 4)
    params = jax.vmap(lambda k: init(k, d=4, h=3))(jax.random.split(jax.random.key(0), 5))
    jaxnn.fit_many(loss, params, (X, Y), optimizer=optax.sgd(0.1), batch_size=8, epochs=1,
                   loss_args=(np.zeros(5, np.float32),))
    text = xla_cpu.compiled_text(next(reversed(engine._COMPILED.values())))
    assert "f32[8,15]" in text  # the hidden layer of all 5 models at once


@pytest.mark.parametrize("kwargs, match", [
    (dict(params={"w": np.zeros((2, 3)), "b": np.zeros((3,))}), "leading model axis"),
    (dict(hyperparams={"momentum": [0.1, 0.2]}), "no hyper-parameter 'momentum'"),
    (dict(hyperparams={"learning_rate": [0.1, 0.2, 0.3]}), r"hyperparams\['learning_rate'\]"),
    (dict(key=jax.random.split(jax.random.key(0), 3)), "key: expected one key or 2 keys"),
    (dict(loss_args=(0.1,)), r"loss_args\[0\]: expected a leading model axis of 2"),
    (dict(epochs=[1, 2, 3]), "epochs: expected a positive integer or 2 of them"),
    (dict(data=PerModel([(np.zeros((5, 2)), np.zeros((5, 1)))])), "data: expected 2 entries"),
    (dict(sample_weight=np.zeros((2, 10))), "all 0"),
    (dict(patience=[1, 0]), "patience"),
])
def test_bad_arguments_are_named(kwargs, match):
    X, Y = np.ones((10, 2), np.float32), np.ones((10, 1), np.float32)
    params = {"w": np.zeros((2, 2, 1), np.float32)}

    def lin(p, x, y, l2=0.0):
        return ((x @ p["w"] - y) ** 2).sum(-1) + l2 * jnp.sum(p["w"] ** 2)

    args = dict(params=params, data=(X, Y), optimizer=_adam(1e-3), epochs=1,
                loss_args=(np.zeros(2, np.float32),))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        jaxnn.fit_many(lin, args.pop("params"), args.pop("data"), **args)
