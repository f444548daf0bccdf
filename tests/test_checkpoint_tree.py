"""checkpoint.save_tree / load_tree: any pytree that jaxnn.fit trains, resumed bit for bit."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from jaxnn import checkpoint, engine


def loss_fn(p, x, y):
    h = jnp.tanh(x @ p["layers"][0]["W"])
    return jnp.sum(jnp.square(h @ p["layers"][1]["W"] + x @ p["skip"] - y), axis=-1)


def setup():
    k1, k2, k3, kx = jax.random.split(jax.random.key(0), 4)
    params = {"layers": [{"W": jax.random.normal(k1, (3, 5))}, {"W": jax.random.normal(k2, (5, 2))}],
              "skip": jax.random.normal(k3, (3, 2)) * 0.1}
    X = jax.random.normal(kx, (40, 3))
    return params, X, jnp.sin(X[:, :2])


def opt():
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2))


def test_a_saved_engine_state_resumes_bit_for_bit(tmp_path: Path) -> None:
    params, X, Y = setup()
    kw = dict(optimizer=opt(), batch_size=16, key=jax.random.key(4))
    whole = jaxnn.fit(loss_fn, params, (X, Y), steps=20, **kw)
    half = jaxnn.fit(loss_fn, params, (X, Y), steps=7, **kw)
    checkpoint.save_tree(tmp_path / "s.npz", half.state, meta={"note": "mid-epoch"})
    template = engine.init_state(params, opt(), jax.random.key(0))
    state, meta = checkpoint.load_tree(tmp_path / "s.npz", template)
    assert meta == {"note": "mid-epoch"} and int(state.step) == 7
    rest = jaxnn.fit(loss_fn, params, (X, Y), steps=20, state=state, **kw)
    leaves = jax.tree_util.tree_leaves
    for a, b in zip(leaves(whole.params), leaves(rest.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_another_structure_shape_or_dtype_is_refused_naming_it(tmp_path: Path) -> None:
    params, X, Y = setup()
    res = jaxnn.fit(loss_fn, params, (X, Y), optimizer=opt(), steps=2)
    f = tmp_path / "s.npz"
    checkpoint.save_tree(f, res.state)
    with pytest.raises(ValueError, match="another structure"):
        checkpoint.load_tree(f, engine.init_state(params, optax.sgd(0.1), jax.random.key(0)))
    wider = {**params, "skip": jnp.zeros((3, 3))}
    checkpoint.save_tree(f, params)
    with pytest.raises(ValueError, match=r"skip is float32\[3, 2\], the template needs float32\[3, 3\]"):
        checkpoint.load_tree(f, wider)
    f.write_bytes(f.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match=r"not a valid jaxnn checkpoint|not an \.npz"):
        checkpoint.load_tree(f, params)
