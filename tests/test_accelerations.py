"""jaxnn.accelerations: the engine's plain core gives the results of the accelerated default.

Each acceleration is switched off alone, then all of them: a user's own model trained by
``jaxnn.fit`` and ``jaxnn.fit_many`` must give the default run's results -- in float64, to
1e-12 (a program compiled with other XLA options may order its sums differently) -- and the
program must really be the plain one (no host orders, no padding rows).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from jaxnn import accelerations, compilation_cache, engine

TOL = 1e-12


def _model():
    def loss(p, x, y):
        return ((jnp.sin(x @ p["w"] + p["b"][None, :]) @ p["v"] - y) ** 2).sum(-1)

    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"w": jax.random.normal(k1, (4, 6)), "b": jnp.zeros(6), "v": jax.random.normal(k2, (6, 2))}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(45, 4))  # 45 rows, batch 13: a padded last batch and a row bucket of 52
    return loss, params, (X, np.cos(X[:, :2]))


def _run(**switch_off):
    loss, params, data = _model()
    kw = dict(optimizer=optax.adam(1e-2), batch_size=13, epochs=9, key=jax.random.key(3),
              val_data=data, patience=4)
    many_params = jax.tree_util.tree_map(lambda a: jnp.stack([a, 0.5 * a]), params)
    return (jaxnn.fit(loss, params, data, **kw),
            jaxnn.fit_many(loss, many_params, data, **kw))


def _close(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("names", [(name,) for name in accelerations.NAMES] + [()])
def test_the_core_alone_gives_the_accelerated_results(names):
    with jax.enable_x64(True):
        fast_one, fast_many = _run()
        engine._COMPILED.clear()
        with accelerations.off(*names):
            plain_one, plain_many = _run()
            plans = [k[4 if k[0] == "many" else 3] for k in engine._COMPILED]
    off = set(names or accelerations.NAMES)
    for plan in plans:  # the programs compiled inside the block are the plain ones
        assert plan.host_orders == ("host_orders" not in off)
        assert (plan.rows == 45) == ("row_buckets" in off)
    _close(plain_one.params, fast_one.params)
    np.testing.assert_allclose(plain_one.history.train_loss, fast_one.history.train_loss, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(plain_one.history.val_loss, fast_one.history.val_loss, rtol=TOL, atol=TOL)
    assert plain_one.steps == fast_one.steps
    _close(plain_many.params, fast_many.params)
    if "host_orders" in off and "row_buckets" in off and "xla_cpu" in off:  # nothing of the default left
        assert len(plans) >= 2


def test_switches_are_scoped_and_names_are_checked():
    assert accelerations.enabled("host_orders")
    with accelerations.off("host_orders"):
        assert not accelerations.enabled("host_orders") and accelerations.enabled("xla_cpu")
        with accelerations.off():
            assert not any(accelerations.enabled(n) for n in accelerations.NAMES)
        assert accelerations.enabled("xla_cpu")
    assert all(accelerations.enabled(n) for n in accelerations.NAMES)
    with pytest.raises(ValueError, match="names: expected some of host_orders"):
        with accelerations.off("gpu_magic"):
            pass
    with pytest.raises(ValueError, match="name: expected one of"):
        accelerations.enabled("gpu_magic")


def test_with_the_cache_switched_off_nothing_is_written():
    """Inside ``off("compilation_cache")`` a new program compiles without writing to jaxnn's store;
    the same program compiled with the cache on is written (the suite runs with the cache on)."""
    loss, params, data = _model()
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    jaxnn.fit(loss, params, data, optimizer=optax.sgd(0.5), batch_size=7, epochs=1)  # the store is installed
    path = compilation_cache.enable_default()
    assert path is not None, compilation_cache.why_off()

    def entries():
        return {p.name for p in path.iterdir() if p.suffix == ".jaxnn"}

    before = entries()
    opt = optax.sgd(0.01234567)  # a constant no other program has: a new cache key
    with accelerations.off("compilation_cache"):
        jaxnn.fit(loss, params, data, optimizer=opt, batch_size=7, epochs=1)
    assert entries() == before
    engine._COMPILED.clear()
    jaxnn.fit(loss, params, data, optimizer=opt, batch_size=7, epochs=1)
    assert entries() - before
