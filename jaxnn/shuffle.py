"""``jax.random.permutation(key, n)``, computed with cheaper sorts.

``jax.random.permutation(key, n)`` shuffles ``arange(n)`` by a *stable* sort of uint32 random
keys carried with their values (``lax.sort_key_val``), one round per ~2**10 elements. On XLA:CPU a
two-operand sort calls a compiled comparator per comparison and costs ~100 ns per element; a
one-operand uint32 sort takes the library fast path at ~25 ns. :func:`permutation` draws exactly the
same keys and replaces each key-value sort by a two-pass LSD radix sort with 16-bit digits, each pass
one single-operand uint32 sort of ``digit << 16 | position``. A stable sort by the low digit followed
by a stable sort by the high digit is a stable sort by the whole key, so the result is *bit-for-bit*
``jax.random.permutation(key, n)`` (``tests/test_shuffle.py`` checks it) at about half the cost on
CPU. For ``n > 2**16`` the positions do not fit in 16 bits and JAX's own function is used.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

_DIGIT = 16
_MAX_N = 1 << _DIGIT


def stable_argsort_u32(keys: Array) -> Array:
    """Stable argsort of a 1-D uint32 array of at most 2**16 elements, as int32 indices.

    keys: (n,) uint32 -> (n,) int32, equal to ``jnp.argsort(keys, stable=True)``.
    """
    n = keys.shape[0]
    if keys.ndim != 1 or keys.dtype != jnp.uint32 or n > _MAX_N:
        raise ValueError(f"keys: expected a 1-D uint32 array of at most {_MAX_N} elements, got "
                         f"{keys.dtype} {keys.shape}")
    position = jnp.arange(n, dtype=jnp.uint32)
    mask = jnp.uint32(_MAX_N - 1)
    low, high = keys & mask, keys >> _DIGIT
    by_low = (jnp.sort((low << _DIGIT) | position) & mask).astype(jnp.int32)  # stable: ties by position
    by_high = (jnp.sort((high[by_low] << _DIGIT) | position) & mask).astype(jnp.int32)
    return by_low[by_high]


def rounds(n: int) -> int:
    """Sort rounds ``jax.random.permutation`` uses for ``n`` elements: enough 32-bit keys that
    collisions are rare (``jax.random._shuffle``); 1 up to 1,625 elements, then 2."""
    return math.ceil(3 * math.log(max(1, n)) / math.log(np.iinfo(np.uint32).max))


def permutation(key: Array, n: int) -> Array:
    """A random permutation of ``arange(n)``: (n,) ints, equal to ``jax.random.permutation(key, n)``.

    key: a typed PRNG key (``jax.random.key``); n: a Python int >= 0.
    """
    if n > _MAX_N:
        return jax.random.permutation(key, n)
    return permutation_prefix(key, jnp.int32(n), n, rounds(n))  # no padding: every position is real


def permutation_prefix(key: Array, n: Array, size: int, n_rounds: int) -> Array:
    """(size,) ints: ``permutation(key, n)`` for a *traced* ``n <= size``, then ``n..size-1``.

    Padded data keeps one compiled shape for every ``n`` up to ``size``. It is bit for bit the
    unpadded permutation because JAX's threefry bits are drawn per position
    (``jax_threefry_partitionable``, JAX's default): the first ``n`` of ``bits(key, (size,))`` are
    ``bits(key, (n,))``. Positions ``>= n`` get the largest key, so a stable sort puts them last
    and leaves the first ``n`` in the unpadded order. ``n_rounds`` must be :func:`rounds` of ``n``.
    """
    if size > _MAX_N:
        raise ValueError(f"size: at most {_MAX_N} rows can be padded, got {size}")
    # JAX's default since 0.5
    if not getattr(jax.config, "jax_threefry_partitionable", True):  # pragma: no cover
        raise ValueError("permutation_prefix needs jax_threefry_partitionable=True (JAX's default)")
    position = jnp.arange(size)  # the default integer type, as JAX's (int64 under x64)
    padding = position >= jnp.asarray(n).astype(position.dtype)
    x = position
    for _ in range(n_rounds):
        key, subkey = jax.random.split(key)
        bits = jnp.where(padding, jnp.uint32(0xFFFFFFFF), jax.random.bits(subkey, (size,), jnp.uint32))
        x = x[stable_argsort_u32(bits)]
    return x
