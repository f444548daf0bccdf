"""jaxnn.accelerations: the engine's plain core gives the results of the accelerated default.

Each acceleration is switched off alone, then all of them: a user's own model trained by
``jaxnn.fit`` and ``jaxnn.fit_many`` must give the default run's results -- in float64, to
1e-12 (a program compiled with other XLA options may order its sums differently) -- and the
program must really be the plain one (no host orders, no padding rows).
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_default_path import user_env

import jaxnn
from jaxnn import accelerations, engine

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


_CACHE_OFF_SCRIPT = """
import json, sys
from pathlib import Path
import jax, jax.numpy as jnp, numpy as np, optax

import jaxnn
from jaxnn import accelerations, compilation_cache, engine

def loss(p, x, y):
    return ((x @ p["w"] - y) ** 2).sum(-1)

params = {"w": jnp.zeros((3, 1))}
data = (np.ones((10, 3), np.float32), np.ones((10, 1), np.float32))
cache = Path(sys.argv[1])

def entries():
    return sorted(p.name for p in cache.iterdir() if p.suffix == ".jaxnn") if cache.exists() else []

with accelerations.off("compilation_cache"):
    jaxnn.fit(loss, params, data, optimizer=optax.sgd(0.1), batch_size=4, epochs=1)
off = entries()
engine._COMPILED.clear()
jaxnn.fit(loss, params, data, optimizer=optax.sgd(0.1), batch_size=4, epochs=1)
print(json.dumps({"off": off, "on": entries(), "why": compilation_cache.why_off()}))
"""


def test_with_the_cache_switched_off_nothing_is_written(tmp_path):
    """Inside ``off("compilation_cache")`` a fit compiles without writing to jaxnn's store; the same
    fit with the cache on writes its programs. In a process of its own with its own cache directory
    (the suite's store is shared by the workers, which write to it meanwhile)."""
    cache = tmp_path / "cache"
    p = subprocess.run([sys.executable, "-c", _CACHE_OFF_SCRIPT, str(cache)], capture_output=True, text=True,
                       env=user_env(cache), timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["why"] is None
    assert out["off"] == []
    assert any(name.startswith("jit_run_chunk") for name in out["on"]), out["on"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_programs_that_run_once_give_the_same_bits_compiled_for_a_short_compile(dtype):
    """Initial parameters (each initializer, one model and stacked for a sweep) and optimizer
    states from programs compiled with ``xla_cpu.ONCE`` equal, bit for bit, those that
    ``jax.jit``'s defaults compile (the ``"xla_cpu"`` switch off)."""
    from jaxnn import many, state, sweep, training, xla_cpu

    def draw_all():
        inits = [training.init_state(training.TrainConfig(hidden=hidden, init=init, steps=1, dtype=dtype),
                                     5, 3, 40)
                 for hidden, init in (((13,), "normal"), ((7, 9), "glorot"), ((11,), "he"))]
        stacked = sweep._init_stacked(jnp.asarray([0, 3, 7], jnp.int32), (5, 9, 3), "glorot", dtype)
        states = many._init_states(optax.adam(1e-3), True)(stacked[0], stacked[1])
        out = (inits, stacked, states.opt_state)
        return jax.device_get(jax.tree_util.tree_map(
            lambda a: jax.random.key_data(a) if jnp.issubdtype(a.dtype, jax.dtypes.prng_key) else a, out))

    def clear():
        training._init_program.cache_clear()
        state._init_state_jit.cache_clear()
        many._INIT.clear()
        jax.clear_caches()

    with jax.enable_x64(dtype == "float64"):
        clear()
        fast = draw_all()
        clear()
        with accelerations.off("xla_cpu"):
            plain = draw_all()
    leaves_fast, leaves_plain = jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(plain)
    assert len(leaves_fast) == len(leaves_plain) > 30
    for a, b in zip(leaves_fast, leaves_plain, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert xla_cpu.ONCE["xla_cpu_use_fusion_emitters"] is False


def test_a_jaxlib_without_the_run_once_options_compiles_with_its_defaults(monkeypatch):
    """As ``xla_cpu.jit``: an option the installed jaxlib does not know is dropped, not an error."""
    from jaxnn import xla_cpu

    monkeypatch.setitem(xla_cpu.ONCE, "xla_cpu_no_such_option_for_this_test", True)
    draw = xla_cpu.jit_once(lambda k: jax.random.normal(k, (3, 2)))
    got = draw(jax.random.key(4))
    np.testing.assert_array_equal(got, jax.jit(lambda k: jax.random.normal(k, (3, 2)))(jax.random.key(4)))
    assert np.array_equal(draw(jax.random.key(4)), got)  # the second call goes straight to the defaults


def _weight_gradient_functions():
    """Functions whose products contract a 2-D operand over its rows: written by hand, from
    ``jax.grad`` of a user's model, inside a loop and a branch, and a hand-written one over a
    shared minibatch under ``jax.vmap`` (as ``fit_many`` runs the estimators' models)."""
    def user_loss(p, x, y):
        return jnp.sum((jnp.tanh(x @ p["w"] + p["b"][None, :]) @ p["v"] - y) ** 2)

    grad = jax.grad(user_loss)

    def in_loop(p, x, y):
        def body(q, _):
            return jax.tree_util.tree_map(lambda a, g: a - 0.01 * g, q, grad(q, x, y)), None
        return jax.lax.scan(body, p, None, length=3)[0]

    def in_branch(p, x, y):
        return jax.lax.cond(jnp.sum(x) > -1e9, lambda q: grad(q, x, y), lambda q: q, p)

    def penalised(p, x, y):  # a gradient penalty: jax.grad's transposed product read by another product
        return user_loss(p, x, y) + jnp.sum(grad(p, x, y)["v"] @ jnp.ones((3, 2)))

    def by_hand(p, x, y):  # a dense layer's dW = x.T @ c, for c = x @ w
        return x.T @ (x @ p["w"])

    def many(p, x, y):  # the same for two models sharing the minibatch: c is batched, x is not
        return jax.vmap(by_hand, in_axes=({"w": 0, "b": None, "v": None}, None, None))(
            dict(p, w=jnp.stack([p["w"], -p["w"]])), x, y)

    return {"by hand": by_hand, "jax.grad": grad, "scan": in_loop, "cond": in_branch, "vmap": many,
            "gradient penalty": jax.grad(penalised)}


@pytest.mark.parametrize("name", ["by hand", "jax.grad", "scan", "cond", "vmap", "gradient penalty"])
def test_float64_weight_gradients_read_a_written_out_transpose(name):
    """``xla_cpu.written_out_transposes``: the same values (1e-12 in float64, bit for bit in float32,
    where it changes nothing) from a program whose row-contracting products read a written-out
    transpose (an ``optimization_barrier`` in the jaxpr, which XLA cannot fold away)."""
    from jaxnn import xla_cpu

    fn = _weight_gradient_functions()[name]
    rng = np.random.default_rng(1)
    for dtype in (np.float64, np.float32):
        with jax.enable_x64(dtype == np.float64):
            p = {"w": jnp.asarray(rng.normal(size=(5, 7)), dtype), "b": jnp.zeros(7, dtype),
                 "v": jnp.asarray(rng.normal(size=(7, 3)), dtype)}
            x, y = jnp.asarray(rng.normal(size=(40, 5)), dtype), jnp.asarray(rng.normal(size=(40, 3)), dtype)
            rewritten = xla_cpu.written_out_transposes(fn)
            text = str(jax.make_jaxpr(rewritten)(p, x, y))
            want, got = jax.jit(fn)(p, x, y), jax.jit(rewritten)(p, x, y)
            if dtype == np.float64:
                assert "optimization_barrier" in text
                _close(got, want)
            else:
                assert "optimization_barrier" not in text
                for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
                    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_float64_fit_multiplies_rows_by_columns_unless_switched_off():
    """In the compiled training program of a float64 ``jaxnn.fit``, no 2-D product contracts its left
    operand over its rows (XLA:CPU's slow form); with the ``"xla_cpu"`` switch off, the weight
    gradients do."""
    import contextlib
    import re

    from jaxnn import xla_cpu

    def loss(p, x, y):
        return ((jnp.tanh(x @ p["w"]) @ p["v"] - y) ** 2).sum(-1)

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(100, 20)), rng.normal(size=(100, 2))
    texts = {}
    with jax.enable_x64(True):
        p = {"w": jnp.asarray(rng.normal(size=(20, 32))), "v": jnp.asarray(rng.normal(size=(32, 2)))}
        assert not xla_cpu.is_tiny_step(50, 20 * 32 + 32 * 2)  # (a tiny step is left as it is)
        for on in (True, False):
            engine._COMPILED.clear()
            with contextlib.nullcontext() if on else accelerations.off("xla_cpu"):
                jaxnn.fit(loss, p, (X, Y), optimizer=optax.adam(1e-2), batch_size=50, epochs=2)
            texts[on] = xla_cpu.compiled_text(next(reversed(engine._COMPILED.values())))
    rows_first = {on: len(re.findall(r"= f64\[\d+,\d+\]\S* dot\([^\n]*lhs_contracting_dims=\{0\}", t))
                  for on, t in texts.items()}
    assert rows_first[True] == 0 and rows_first[False] >= 2, rows_first


@jax.jit
def _jitted_forward(p, x):
    return jnp.tanh(x @ p["w"]) @ p["v"]


def _loss_through_jit(p, x, y):  # a model whose forward the user jitted: the products sit in a pjit
    return ((_jitted_forward(p, x) - y) ** 2).sum(-1)


def _loss_with_remat(p, x, y):
    return ((jax.checkpoint(lambda p, x: jnp.tanh(x @ p["w"]) @ p["v"])(p, x) - y) ** 2).sum(-1)


def _loss_with_loop_and_callback(p, x, y):  # a scan, and an equation with no outputs
    h, _ = jax.lax.scan(lambda h, _: (jnp.tanh(h @ p["u"]), None), jnp.tanh(x @ p["w"]), None, length=2)
    jax.debug.callback(lambda v: None, h.sum())
    return ((h @ p["v"] - y) ** 2).sum(-1)


@pytest.mark.parametrize("loss", [_loss_through_jit, _loss_with_remat, _loss_with_loop_and_callback])
def test_written_out_transposes_keep_what_a_users_model_computes(loss):
    """A user's model with its own ``jax.jit``, ``jax.checkpoint``, ``lax.scan`` and a debug callback
    trains, through ``jaxnn.fit`` and ``jaxnn.fit_many`` in float64, to the parameters of the plain
    program (the ``"xla_cpu"`` switch off), to 1e-12."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(200, 20)), rng.normal(size=(200, 2))
    kw = dict(optimizer=optax.adam(1e-2), batch_size=50, epochs=3)
    with jax.enable_x64(True):
        p = {name: jnp.asarray(rng.normal(size=shape) * 0.2)
             for name, shape in (("w", (20, 32)), ("v", (32, 2)), ("u", (32, 32)))}
        many = jax.tree_util.tree_map(lambda a: jnp.stack([a, 0.5 * a]), p)
        fast = jaxnn.fit(loss, p, (X, Y), **kw), jaxnn.fit_many(loss, many, (X, Y), **kw)
        with accelerations.off("xla_cpu"):
            plain = jaxnn.fit(loss, p, (X, Y), **kw), jaxnn.fit_many(loss, many, (X, Y), **kw)
    _close(fast[0].params, plain[0].params)
    _close(fast[1].params, plain[1].params)
    assert fast[0].history.train_loss.shape == (12,)
