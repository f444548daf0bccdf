"""Every registered hand-written backward, proven against jax.vjp and finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import gradients
from jaxnn.checking import check_vjp

ENTRIES = gradients.registry()
IDS = [e.name for e in ENTRIES]


def compare(entry, args, cotangent=None, *, key=None):
    """(max_abs_err, max_rel_err, fd_rel_err) of ``entry``'s backward at ``args``: check_vjp's errors,
    infinite for a structural failure (the numbers `jaxnn gradcheck` prints)."""
    r = check_vjp(entry.forward, entry.backward, tuple(args), cotangent=cotangent, key=key, name=entry.name)
    return gradients._errors(r)


def test_registry_names_are_unique_and_nonempty():
    assert len(ENTRIES) >= 9
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_float64_equals_jax_vjp(entry, x64):
    for seed in range(3):
        key = jax.random.key(seed)
        args = entry.example(key, jnp.float64)
        abs_err, rel_err, fd_rel = compare(entry, args, key=jax.random.key(seed + 100))
        assert rel_err <= 1e-10, (entry.name, abs_err, rel_err)
        assert fd_rel <= 1e-6, (entry.name, fd_rel)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_float32_smoke(entry):
    args = entry.example(jax.random.key(1), jnp.float32)
    out = entry.forward(*args)
    assert out.dtype == jnp.float32
    _, rel_err, _ = compare(entry, args, key=jax.random.key(2))
    assert rel_err <= 1e-5


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_backward_shapes_and_dtypes_match_arguments(entry, x64):
    args = entry.example(jax.random.key(3), jnp.float64)
    out = entry.forward(*args)
    grads = entry.backward(*args, jnp.ones_like(out))
    assert isinstance(grads, tuple) and len(grads) == len(args)
    for a, g in zip(args, grads, strict=True):
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(g), strict=True):
            assert jnp.shape(x) == jnp.shape(y)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_jit_equals_no_jit(entry, x64):
    args = entry.example(jax.random.key(4), jnp.float64)
    out = entry.forward(*args)
    cot = jax.random.normal(jax.random.key(5), jnp.shape(out), jnp.float64)
    eager = entry.backward(*args, cot)
    jitted = jax.jit(entry.backward)(*args, cot)
    for e, j in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(jitted),
                    strict=True):
        np.testing.assert_allclose(np.asarray(e), np.asarray(j), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        np.asarray(entry.forward(*args)), np.asarray(jax.jit(entry.forward)(*args)),
        rtol=1e-12, atol=1e-15,
    )


def test_a_wrong_backward_is_caught(x64):
    """The checker is not vacuous: a backward off by a factor 2 fails."""
    good = gradients.get("sigmoid")
    bad = gradients.Entry(
        name="sigmoid_wrong",
        forward=good.forward,
        backward=lambda x, cot: tuple(2 * g for g in good.backward(x, cot)),
        example=good.example,
    )
    result = gradients.check_entry(bad)
    assert not result.passed
    assert result.max_rel_err > 0.5
    assert result.fd_rel_err > 0.1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_check_all_passes_in_both_dtypes(dtype):
    results = gradients.check_all(dtype=dtype)
    assert [r.name for r in results] == IDS
    assert all(r.passed for r in results), [r for r in results if not r.passed]


def test_unknown_entry_lists_valid_names():
    with pytest.raises(ValueError, match="valid"):
        gradients.get("nope")


def test_a_wrong_shape_is_a_failed_check_that_names_both_shapes(x64):
    """check_vjp underneath: a structural error is a failed result with a report, not a crash."""
    good = gradients.get("dense")
    bad = gradients.Entry(
        name="dense_dW_transposed",
        forward=good.forward,
        backward=lambda x, W, b, c: (c @ W.T, c.T @ x, jnp.sum(c, axis=0)),
        example=good.example,
    )
    result = gradients.check_entry(bad)
    assert not result.passed and result.max_rel_err == np.inf
    assert "gradient has shape (3, 4), argument has shape (4, 3)" in result.report
    assert result.as_json()["report"] == result.report
    assert "report" not in gradients.check_entry(good).as_json()
    assert compare(bad, good.example(jax.random.key(0), jnp.float64)) == (np.inf,) * 3
