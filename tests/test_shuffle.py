"""jaxnn.shuffle.permutation is jax.random.permutation, bit for bit, computed with cheaper sorts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import shuffle


@pytest.mark.parametrize("n", [0, 1, 2, 3, 23, 354, 1000, 1626, 1700, 5000, 2**16, 2**16 + 3])
def test_permutation_equals_jax_random_permutation(n):
    for seed in range(3):
        key = jax.random.fold_in(jax.random.key(seed), n)
        ours, theirs = shuffle.permutation(key, n), jax.random.permutation(key, n)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == (n,)
        np.testing.assert_array_equal(ours, theirs)


def test_permutation_equals_jax_under_jit_vmap_and_x64():
    keys = jax.random.split(jax.random.key(7), 5)
    ours = jax.jit(jax.vmap(lambda k: shuffle.permutation(k, 354)))(keys)
    theirs = jax.vmap(lambda k: jax.random.permutation(k, 354))(keys)
    np.testing.assert_array_equal(ours, theirs)
    with jax.enable_x64(True):
        key = jax.random.key(3)
        ours, theirs = shuffle.permutation(key, 100), jax.random.permutation(key, 100)
        assert ours.dtype == theirs.dtype == jnp.int64
        np.testing.assert_array_equal(ours, theirs)


def test_stable_argsort_keeps_ties_in_order():
    rng = np.random.default_rng(0)
    for high in (2, 70_000, 2**32):  # many ties, ties in the low digit only, few ties
        keys = jnp.asarray(rng.integers(0, high, 3000, dtype=np.uint64).astype(np.uint32))
        np.testing.assert_array_equal(shuffle.stable_argsort_u32(keys),
                                      np.argsort(np.asarray(keys), kind="stable"))


def test_stable_argsort_refuses_what_it_cannot_sort():
    with pytest.raises(ValueError, match="keys"):
        shuffle.stable_argsort_u32(jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match="keys"):
        shuffle.stable_argsort_u32(jnp.zeros(2**16 + 1, jnp.uint32))
