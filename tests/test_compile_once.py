"""Compile once, reuse everywhere (issue 16): runtime hyper-parameters, row buckets, few programs,
traced programs and compiled code kept between processes.

Compilations are counted by name with JAX's own monitoring event (``CompileCounter`` of
``test_perf_invariants``); results are compared with the unbucketed run in float64.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.model_selection import cross_val_score
from test_perf_invariants import CompileCounter

import jaxnn
from jaxnn import engine, models
from jaxnn.estimators import MLPClassifier, MLPRegressor
from jaxnn.shuffle import permutation_prefix, rounds

ROOT = Path(__file__).resolve().parents[1]
# short fits on purpose: scikit-learn's "not converged" warning is expected
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def compiles() -> CompileCounter:
    return CompileCounter()


def _classes(n: int, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)


# --- row buckets --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "size"),
                         [(1, 8), (5, 8), (100, 128), (1198, 1280), (1626, 1792), (3000, 3072)])
def test_padded_permutation_is_jax_permutation_then_the_padding(n, size):
    for seed in range(3):
        key = jax.random.key(seed)
        got = permutation_prefix(key, jnp.int32(n), size, rounds(n))
        np.testing.assert_array_equal(got[:n], jax.random.permutation(key, n))
        np.testing.assert_array_equal(got[n:], np.arange(n, size))


def test_row_buckets_add_no_step_and_are_few():
    for batch_size in (8, 23, 200):
        sizes = range(1, 3000)
        buckets = [engine.train_rows(n, batch_size) for n in sizes]
        for n, N in zip(sizes, buckets, strict=True):
            assert N >= n
            assert -(-N // min(batch_size, N)) == -(-n // min(batch_size, n))  # the same steps per epoch
        assert buckets == sorted(buckets)
        assert len({N for n, N in zip(sizes, buckets, strict=True) if n <= batch_size}) <= 6
    assert engine.train_rows(1 << 17, 32) == 1 << 17  # beyond 2**16 rows: no padding
    evaluated = [engine.row_bucket(n) for n in range(1, 5000)]  # validation data, evaluated whole
    assert all(n <= b <= max(8, 1.25 * n) for n, b in enumerate(evaluated, 1))
    assert len(set(evaluated)) <= 40


def _residual_model(seed: int = 0) -> tuple[dict, tuple]:
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(5, 3)) * 0.3, "b": np.zeros(3), "skip": rng.normal(size=(5, 3)) * 0.1}
    return params, ()


def _loss(p, x, y):
    h = jnp.tanh(x @ p["W"] + p["b"][None, :]) + x @ p["skip"]
    return jnp.sum(jnp.square(h - y), axis=-1)


@pytest.mark.parametrize(("n", "batch_size"), [(45, 8), (45, 64), (101, 25), (13, 200)])
def test_bucketed_rows_equal_unbucketed_float64(n, batch_size):
    """Padding the data to its row bucket changes no number (float64): not the data order, not the
    minibatches' real rows, not early stopping, sample weights or validation."""
    assert engine.train_rows(n, batch_size) > n
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(n, 5)), rng.normal(size=(n, 3))
    w = rng.uniform(0.2, 2.0, size=n)
    with jax.enable_x64(True):
        params, _ = _residual_model()
        runs = [engine._fit(_loss, params, (X, Y), optimizer=optax.adam(1e-2), batch_size=batch_size,
                            epochs=7,
                          key=jax.random.key(3), sample_weight=w, val_data=(X[:9], Y[:9]), patience=3,
                          bucket_rows=bucket) for bucket in (True, False)]
    a, b = runs
    rtol = 0 if batch_size <= n else 1e-13  # one minibatch of n rows or of its bucket: sums may round
    np.testing.assert_allclose(a.history.train_loss, b.history.train_loss, rtol=rtol)
    np.testing.assert_allclose(a.history.val_loss, b.history.val_loss, rtol=rtol)
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=max(rtol, 1e-300), atol=1e-15 if rtol else 0)
    assert a.steps == b.steps and a.stopped_early == b.stopped_early


# --- runtime hyper-parameters -------------------------------------------------------------------


def test_loss_args_are_runtime_inputs_and_equal_a_baked_constant(compiles):
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))

    def loss(p, x, y, l2):
        return _loss(p, x, y) + l2 * jnp.sum(jnp.square(p["W"]))

    opt = optax.sgd(0.05)
    with jax.enable_x64(True):
        params, _ = _residual_model()
        first = jaxnn.fit(loss, params, (X, Y), optimizer=opt, batch_size=8, epochs=3, loss_args=(0.1,))
        with compiles as again:
            second = jaxnn.fit(loss, params, (X, Y), optimizer=opt, batch_size=8, epochs=5, loss_args=(0.3,),
                               patience=2, tol=1e-3)
        baked = jaxnn.fit(lambda p, x, y: loss(p, x, y, 0.3), params, (X, Y), optimizer=opt, batch_size=8,
                          epochs=5, patience=2, tol=1e-3)
    assert again.programs("run_chunk") == 0  # another L2, length, patience and tol: the same program
    assert first.steps == 15 and second.steps == baked.steps
    np.testing.assert_allclose(second.history.train_loss, baked.history.train_loss, rtol=1e-13)


def test_estimator_hyperparameters_compile_nothing(compiles):
    X, y = _classes(150)
    base = dict(hidden_layer_sizes=(9,), max_iter=12, random_state=0)
    MLPClassifier(**base).fit(X, y)
    MLPClassifier(solver="sgd", **base).fit(X, y)
    changes = [dict(alpha=0.1), dict(learning_rate_init=0.05), dict(max_iter=15), dict(tol=1e-2),
               dict(n_iter_no_change=3), dict(random_state=4), dict(solver="sgd", momentum=0.5),
               dict(solver="sgd", learning_rate_init=0.3, alpha=1e-5)]
    for change in changes:
        with compiles as c:
            MLPClassifier(**{**base, **change}).fit(X, y).predict(X)
        assert c.count == 0, (change, c.names)


def test_a_chunk_longer_than_the_run_is_its_power_of_two_so_nearby_lengths_share_it(compiles):
    X, Y = jnp.ones((40, 3)), jnp.ones((40, 1))
    p0 = {"W": jnp.zeros((3, 1)), "b": jnp.zeros((1,))}

    def loss_fn(p, x, y):
        return jnp.sum((x @ p["W"] + p["b"][None] - y) ** 2, axis=1)

    runs, sgd = [], optax.sgd(0.01)
    for epochs in (6, 7, 8):
        with compiles as c:
            runs.append(engine._fit(loss_fn, p0, (X, Y), optimizer=sgd, batch_size=10, epochs=epochs,
                                  chunk_epochs=1000))
        assert c.programs("run_chunk") == (epochs == 6), (epochs, c.names)  # one 8-epoch program
        assert runs[-1].steps == 4 * epochs


def test_one_rule_gives_every_trainer_its_chunk_length() -> None:
    """``plan.epochs_per_call``: a power of two, the fewest epochs that make at most ``calls`` calls
    and at least ``at_least`` epochs, never above the run's own power of two; and ``jaxnn.fit`` and
    the configuration path (``training.fit``) split one run alike."""
    import math

    from jaxnn import training
    from jaxnn.plan import epochs_per_call

    for n in range(1, 700):
        top = 1 << (n - 1).bit_length()  # the power of two at or above n
        for calls, at_least in ((20, 1), (4, 8), (None, 100)):
            c = epochs_per_call(n, calls=calls, at_least=at_least)
            assert c & (c - 1) == 0 and 1 <= c <= top, (n, calls, c)
            if c < top:  # not capped: the bounds hold, and half as many epochs would break one
                assert (calls is None or math.ceil(n / c) <= calls) and c >= at_least, (n, calls, c)
                assert c == 1 or (calls is not None and math.ceil(n / (c // 2)) > calls) or c // 2 < at_least
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 1))
    config = training.TrainConfig(hidden=(4,), epochs=200, batch_size=20)  # 200 / 20: 10, not a power of 2
    calls_config: list[object] = []
    training.fit(config, X, Y, callback=calls_config.append)
    calls_fit: list[object] = []
    p0 = models.init_params(jax.random.key(0), (3, 4, 1))
    jaxnn.fit(lambda p, x, y: jnp.sum(jnp.square(models.predict(p, x) - y), axis=1), p0, (X, Y),
              optimizer=optax.sgd(1e-3), batch_size=20, epochs=200, callback=calls_fit.append)
    assert len(calls_config) == len(calls_fit) == math.ceil(200 / epochs_per_call(200, calls=20)) == 13


def test_small_estimator_fits_take_few_compiled_calls(compiles):
    from jaxnn.estimators import _chunk_epochs

    # digits: 1,797 rows in 9 minibatches of 200, 64 hidden units, 10 classes: 16 epochs per call,
    # so max_iter=40 is 3 calls (the engine's default, 2 epochs per call, made 20)
    digits = 64 * 64 + 64 + 64 * 10 + 10
    assert _chunk_epochs(40, 1797, 200, digits) == 16
    # a large network gets one epoch per call, as Ctrl-C wants
    assert _chunk_epochs(200, 60_000, 200, 784 * 512 + 512 * 512 + 512 * 10) == 1
    # never more than the run's power of two, the same for nearby max_iter values and fold sizes
    assert _chunk_epochs(12, 150, 200, 100) == _chunk_epochs(15, 149, 200, 100) == 16
    X, y = _classes(300)
    for max_iter in (12, 15):  # one program for both
        with compiles as c:
            MLPClassifier(hidden_layer_sizes=(9,), max_iter=max_iter, random_state=0).fit(X, y)
        if max_iter == 15:
            assert c.programs("run_chunk") == 0, c.names


def test_cross_validation_folds_share_one_program(compiles):
    # folds of 206 and 207 training rows: two minibatches of 200 each. (Folds whose steps per epoch
    # differ -- 200 and 201 rows -- compile one program per step count: buckets add no step.)
    X, y = _classes(310)
    with compiles as c:
        scores = cross_val_score(MLPClassifier(hidden_layer_sizes=(11,), max_iter=40, learning_rate_init=0.02,
                                               random_state=0), X, y, cv=3)
    assert c.programs("run_chunk") == 1
    assert scores.mean() > np.bincount(y).max() / len(y) + 0.1  # it learned: well above the majority class


def test_one_fit_and_predict_compile_one_program(compiles):
    X, y = _classes(80, d=7)
    with compiles as c:
        est = MLPRegressor(hidden_layer_sizes=(13,), max_iter=3, random_state=0).fit(X, y.astype(float))
        est.predict(X)
        est.score(X, y.astype(float))
    # the training scan, and nothing else: initialisation on the host, prediction in NumPy
    assert c.names == ["jit(run_chunk)"]


def test_partial_fit_chunks_of_nearby_sizes_share_one_program(compiles):
    X, y = _classes(1200, d=4)
    est = MLPClassifier(hidden_layer_sizes=(6,), random_state=0)
    est.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    start = 100
    with compiles as c:
        for size in (101, 57, 125, 199, 64, 150):
            est.partial_fit(X[start:start + size], y[start:start + size])
            start += size
    # every chunk of 50-200 rows is one minibatch of 200, and each call's data-order key is built on
    # the host: the stream compiles nothing after its first call
    assert c.count == 0, c.names
    assert est.n_iter_ == 1 and len(est.loss_curve_) == 7  # n_iter_: the last call's epochs, as scikit-learn


# --- between processes: traced programs and compiled code on disk --------------------------------

_FIT = textwrap.dedent("""
    import json, sys, jax, numpy as np
    traced = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda e, d, **k: traced.append(k.get("fun_name")) if e.endswith("jaxpr_trace_duration") else None)
    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda e, d, **k: compiled.append(e) if e.endswith("backend_compile_duration") else None)
    hits = []
    jax.monitoring.register_event_listener(
        lambda e, **k: hits.append(e) if e == "/jax/compilation_cache/cache_hits" else None)
    if sys.argv[1] == "own-dir":  # the user chose a cache directory before jaxnn's first fit
        jax.config.update("jax_compilation_cache_dir", sys.argv[2])
    from jaxnn.estimators import MLPClassifier
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 5)); y = (X[:, 0] > 0).astype(int)
    est = MLPClassifier(hidden_layer_sizes=(7,), max_iter=4, random_state=0).fit(X, y)
    from jaxnn import compilation_cache
    print(json.dumps({"traced": traced, "hits": len(hits), "compiles": len(compiled),
                      "coef": est.coefs_[0].tolist(), "cache_dir": jax.config.jax_compilation_cache_dir,
                      "why_off": compilation_cache.why_off(),
                      "min_compile_s": jax.config.jax_persistent_cache_min_compile_time_secs}))
""")


def _fit_in_process(env: dict[str, str], *args: str) -> dict:
    full = {k: v for k, v in os.environ.items() if k != "JAXNN_NO_COMPILATION_CACHE"}
    full.update(env)
    p = subprocess.run([sys.executable, "-c", _FIT, *(args or ("default",))], capture_output=True,
                       text=True, timeout=300, env=full, cwd=ROOT, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def first_fit(tmp_path_factory) -> tuple[Path, dict, list[Path]]:
    """The fit in a fresh process with an empty cache directory: (the directory, the result, its entries)."""
    store = tmp_path_factory.mktemp("first") / "jaxnn" / "jax"
    first = _fit_in_process({"JAXNN_CACHE_DIR": str(store)})
    return store, first, sorted(store.glob("*.jaxnn"))


def test_a_second_process_loads_the_training_program_from_the_verified_store(first_fit):
    store, first, entries = first_fit
    env = {"JAXNN_CACHE_DIR": str(store)}
    assert first["hits"] == 0 and first["compiles"] >= 1 and first["why_off"] is None
    assert any(p.name.startswith("jit_run_chunk-") for p in entries), entries
    assert stat.S_IMODE(store.stat().st_mode) == 0o700  # created private
    second = _fit_in_process(env)
    assert second["hits"] >= 1 and second["coef"] == first["coef"]
    # jaxnn changed no setting of the process: no cache directory, JAX's own write threshold
    assert second["cache_dir"] is None and second["min_compile_s"] == 1.0
    chunk = next(p for p in entries if p.name.startswith("jit_run_chunk-"))
    chunk.write_bytes(b"not a program")  # a damaged entry: compiled again, the same result, rewritten
    third = _fit_in_process(env)
    assert third["coef"] == first["coef"] and chunk.read_bytes() != b"not a program"
    assert _fit_in_process(env)["hits"] >= 1  # and the rewritten entry loads


def test_library_use_turns_the_cache_on_unless_opted_out_or_chosen(first_fit, tmp_path):
    _, on, entries = first_fit
    assert on["why_off"] is None and entries
    off = _fit_in_process({"JAXNN_CACHE_DIR": str(tmp_path / "off" / "jax"),
                           "JAXNN_NO_COMPILATION_CACHE": "1"})
    assert off["cache_dir"] is None and not (tmp_path / "off").exists()
    assert "JAXNN_NO_COMPILATION_CACHE" in off["why_off"]
    own = _fit_in_process({"JAXNN_CACHE_DIR": str(tmp_path / "ours" / "jax")}, "own-dir",
                          str(tmp_path / "own"))
    assert own["cache_dir"] == str(tmp_path / "own")  # with JAX's own thresholds, as the user set it
    assert own["min_compile_s"] == 1.0 and "own cache" in own["why_off"]
    assert not (tmp_path / "ours" / "jax").exists()  # jaxnn left the user's choice alone
    assert on["coef"] == off["coef"] == own["coef"]


_CHECK = textwrap.dedent("""
    import json, jax, jax.numpy as jnp
    compiled, hits = [], []
    jax.monitoring.register_event_duration_secs_listener(
        lambda e, d, **k: compiled.append(e) if e.endswith("backend_compile_duration") else None)
    jax.monitoring.register_event_listener(
        lambda e, **k: hits.append(e) if e == "/jax/compilation_cache/cache_hits" else None)
    import jaxnn
    def softplus(x):
        return jnp.logaddexp(x, 0.0)
    def softplus_backward(x, c):
        return (c * jax.nn.sigmoid(x),)
    with jax.enable_x64(True):
        r = jaxnn.check_vjp(softplus, softplus_backward, (jnp.linspace(-3.0, 3.0, 7),))
    print(json.dumps({"passed": r.passed, "report": str(r), "compiles": len(compiled), "hits": len(hits)}))
""")


def test_check_vjp_keeps_its_programs_for_the_next_process(tmp_path):
    """A check's many small programs go through jaxnn's store, as fit's do: a second process loads
    them (and prints the same report); opted out, nothing is written."""
    def run(**env: str) -> dict:
        full = {**{k: v for k, v in os.environ.items() if k != "JAXNN_NO_COMPILATION_CACHE"}, **env}
        p = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=300,
                           env=full, cwd=ROOT, check=False)
        assert p.returncode == 0, p.stderr[-3000:]
        return json.loads(p.stdout.strip().splitlines()[-1])

    cache = tmp_path / "jaxnn" / "jax"
    first = run(JAXNN_CACHE_DIR=str(cache))
    entries = len(list(cache.glob("*.jaxnn")))
    second = run(JAXNN_CACHE_DIR=str(cache))
    assert first["passed"] and first["hits"] == 0 and entries >= 10
    assert second["hits"] >= entries and second["report"] == first["report"]
    off = run(JAXNN_CACHE_DIR=str(tmp_path / "off"), JAXNN_NO_COMPILATION_CACHE="1")
    assert off["hits"] == 0 and not (tmp_path / "off").exists() and off["report"] == first["report"]


_INIT = textwrap.dedent("""
    import json, jax
    traced = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda e, d, **k: traced.append(k.get("fun_name")) if e.endswith("jaxpr_trace_duration") else None)
    from jaxnn import training
    from jaxnn.training import TrainConfig
    params = training.init_state(TrainConfig(hidden=(4, 3), init="glorot", seed=7, steps=1), 5, 2, 1).params
    print(json.dumps({"traced": traced, "params": jax.tree_util.tree_map(lambda a: a.tolist(), params)}))
""")


def test_initial_weights_are_the_documented_draw_with_an_empty_and_a_warm_cache(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k != "JAXNN_NO_COMPILATION_CACHE"},
           "JAXNN_CACHE_DIR": str(tmp_path / "jaxnn" / "jax")}

    def run() -> dict:
        p = subprocess.run([sys.executable, "-c", _INIT], capture_output=True, text=True, timeout=300,
                           env=env, cwd=ROOT, check=False)
        assert p.returncode == 0, p.stderr[-3000:]
        return json.loads(p.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    k_init, _ = jax.random.split(jax.random.key(7))  # the documented draw, here in plain JAX
    want = models.init_params(k_init, [5, 4, 3, 2], init=models.glorot)
    for got in (first["params"], second["params"]):
        for layer, ref in zip(got, want, strict=True):
            for name in ("W", "b"):
                np.testing.assert_array_equal(np.asarray(layer[name], np.float32), np.asarray(ref[name]))
