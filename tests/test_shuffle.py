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


def test_the_hosts_stable_argsort_keeps_ties_in_order():
    """The host's packed sort (each key with its position in one uint64) is NumPy's stable argsort."""
    rng = np.random.default_rng(1)
    for high in (2, 70_000, 2**32):
        keys = rng.integers(0, high, (3, 3000), dtype=np.uint64).astype(np.uint32)
        keys[:, -5:] = 0xFFFFFFFF  # the padding's keys, tied
        np.testing.assert_array_equal(shuffle._stable_argsort_rows(keys),
                                      np.argsort(keys, axis=1, kind="stable"))


def test_stable_argsort_refuses_what_it_cannot_sort():
    with pytest.raises(ValueError, match="keys"):
        shuffle.stable_argsort_u32(jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match="keys"):
        shuffle.stable_argsort_u32(jnp.zeros(2**16 + 1, jnp.uint32))


@pytest.mark.parametrize("n,size", [(0, 8), (1, 8), (23, 32), (354, 400), (1625, 1625), (1797, 1800),
                                    (5000, 5600), (70_000, 70_000)])
def test_orders_drawn_on_the_host_are_the_devices_bit_for_bit(n, size):
    """epoch_orders (NumPy) == permutation(fold_in(key, e), n), then the padding positions n..size-1."""
    epochs = np.array([0, 1, 7, 2**31 - 1])
    for key in (jax.random.key(0), jax.random.key(2**40 + 3), jax.random.fold_in(jax.random.key(5), 9)):
        host = shuffle.epoch_orders(np.asarray(jax.random.key_data(key)), epochs, n, size)
        assert host.shape == (len(epochs), size) and host.dtype == np.int32
        for row, e in zip(host, epochs, strict=True):
            want = jax.random.permutation(jax.random.fold_in(key, int(e)), n)
            np.testing.assert_array_equal(row[:n], want)
            np.testing.assert_array_equal(row[n:], np.arange(n, size))
            if size <= 2**16:  # the device's padded draw, which the host replaces
                device = shuffle.permutation_prefix(jax.random.fold_in(key, int(e)), jnp.int32(n), size,
                                                    shuffle.rounds(n))
                np.testing.assert_array_equal(row, device)


def test_threefry_in_numpy_is_jaxs_hash():
    from jax.extend.random import threefry_2x32

    rng = np.random.default_rng(0)
    k = rng.integers(0, 2**32, 2, dtype=np.uint64).astype(np.uint32)
    x = rng.integers(0, 2**32, 2000, dtype=np.uint64).astype(np.uint32)
    a, b = shuffle.threefry2x32_np(k[0], k[1], x[:1000], x[1000:])
    np.testing.assert_array_equal(np.concatenate([a, b]), threefry_2x32(jnp.asarray(k), jnp.asarray(x)))


def test_only_single_threefry_keys_are_drawn_on_the_host():
    assert shuffle.draws_on_host(jax.random.key(0))
    assert not shuffle.draws_on_host(jax.random.key(0, impl="rbg"))
    assert not shuffle.draws_on_host(jax.random.split(jax.random.key(0), 3))  # stacked models' own keys
