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

:func:`epoch_orders` draws the same permutations on the host, with NumPy: JAX's threefry hash
(:func:`threefry2x32_np`) and NumPy's stable argsort. :func:`jaxnn.fit` passes a chunk's orders
in that way, so its compiled program holds no random bits and no sort: drawn inside it, they were
about a third of a small fit's compile time (0.5 of 1.7 s) and of its load from the persistent
cache. Stacked sweeps (one key per model) and keys of other PRNG implementations are still drawn
on the device, with :func:`permutation_prefix`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from jaxnn.errors import InputError

_DIGIT = 16
_MAX_N = 1 << _DIGIT
MAX_PADDED = _MAX_N  # the largest size permutation_prefix draws (its positions fit in 16 bits)


def stable_argsort_u32(keys: Array) -> Array:
    """Stable argsort of a 1-D uint32 array of at most 2**16 elements, as int32 indices.

    keys: (n,) uint32 -> (n,) int32, equal to ``jnp.argsort(keys, stable=True)``.
    """
    n = keys.shape[0]
    if keys.ndim != 1 or keys.dtype != jnp.uint32 or n > _MAX_N:
        raise InputError(f"keys: expected a 1-D uint32 array of at most {_MAX_N} elements, got "
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


def partitionable() -> bool:
    """``jax_threefry_partitionable`` (JAX's default since 0.5): threefry bits are drawn per position,
    which :func:`permutation_prefix` and :func:`epoch_orders` rely on. Without it, the engine pads no
    rows and draws its orders with ``jax.random.permutation`` itself."""
    return bool(getattr(jax.config, "jax_threefry_partitionable", True))


def permutation(key: Array, n: int) -> Array:
    """A random permutation of ``arange(n)``: (n,) ints, equal to ``jax.random.permutation(key, n)``.

    key: a typed PRNG key (``jax.random.key``); n: a Python int >= 0.
    """
    if n > _MAX_N or not partitionable():
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
        raise InputError(f"size: at most {_MAX_N} rows can be padded, got {size}")
    if not partitionable():  # the engine does not pad then (engine.make_plan)
        raise InputError("permutation_prefix needs jax_threefry_partitionable=True (JAX's default)")
    position = jnp.arange(size)  # the default integer type, as JAX's (int64 under x64)
    padding = position >= jnp.asarray(n).astype(position.dtype)
    x = position
    for _ in range(n_rounds):
        key, subkey = jax.random.split(key)
        bits = jnp.where(padding, jnp.uint32(0xFFFFFFFF), jax.random.bits(subkey, (size,), jnp.uint32))
        x = x[stable_argsort_u32(bits)]
    return x


# --- The same orders, drawn on the host ------------------------------------------------------

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_SPLIT_COUNTERS = np.arange(2, dtype=np.uint32)


def threefry2x32_np(k1: np.ndarray, k2: np.ndarray, x1: np.ndarray, x2: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The Threefry-2x32 hash of the counters ``(x1, x2)`` under the key ``(k1, k2)``, in NumPy.

    All uint32 arrays, broadcast together; returns two uint32 arrays. The same function as JAX's
    ``threefry2x32`` primitive (``jax._src.random.threefry2x32``): five groups of four
    add-rotate-xor rounds, each followed by a key injection; additions wrap around.
    """
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = x1 ^ ((x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r)))
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3]
        x2 = x2 + np.uint32(i + 1)
    return x1, x2


def draws_on_host(key: Array) -> bool:
    """Whether :func:`epoch_orders` draws ``key``'s orders: a single threefry key (JAX's default
    implementation) under ``jax_threefry_partitionable`` (JAX's default since 0.5)."""
    return jnp.ndim(key) == 0 and draws_each_on_host(key)


def draws_each_on_host(keys: Array) -> bool:
    """Whether :func:`epoch_orders` draws the orders of each of ``keys`` (typed keys of any shape,
    one per model): threefry keys under ``jax_threefry_partitionable``."""
    return str(jax.random.key_impl(keys)) == "threefry2x32" and partitionable()


def epoch_orders(key_data: np.ndarray, epochs: np.ndarray, n: int, size: int) -> np.ndarray:
    """(E, size) int32: row ``i`` is ``jax.random.permutation(fold_in(key, epochs[i]), n)``, then
    the padding positions ``n..size-1`` -- :func:`permutation_prefix`'s result, for any size.

    The engine's data orders, computed on the host with NumPy, bit for bit
    (``tests/test_shuffle.py``): JAX's ``fold_in``, ``split`` and ``bits`` of a threefry key (with
    ``jax_threefry_partitionable``, JAX's default) hash counters with :func:`threefry2x32_np`, and a
    stable sort is a stable sort. key_data: the key's (2,) uint32 data (``jax.random.key_data``);
    epochs: (E,) non-negative ints; ``0 <= n <= size``.
    """
    k = np.asarray(key_data, np.uint32)
    e = np.asarray(epochs, np.int64).astype(np.uint32)
    zeros = np.zeros_like(e)
    k1, k2 = threefry2x32_np(k[0], k[1], zeros, e)  # fold_in(key, e): the counter (0, e)
    position = np.arange(size, dtype=np.uint32)
    x = np.broadcast_to(np.arange(size, dtype=np.int32), (len(e), size))
    for _ in range(rounds(n)):
        # split(key): key (0, 0), subkey (0, 1); bits(subkey, (size,)): counters (0, i), both halves xor-ed
        a, b = threefry2x32_np(k1[:, None], k2[:, None], np.zeros(2, np.uint32), _SPLIT_COUNTERS)
        k1, k2 = a[:, 0], b[:, 0]
        c1, c2 = threefry2x32_np(a[:, 1:], b[:, 1:], np.zeros(size, np.uint32), position)
        bits = c1 ^ c2
        bits[:, n:] = 0xFFFFFFFF  # padding positions sort last, in order
        x = np.take_along_axis(x, _stable_argsort_rows(bits), axis=1)
    return x


def _stable_argsort_rows(bits: np.ndarray) -> np.ndarray:
    """``np.argsort(bits, axis=1, kind="stable")`` of (E, size) uint32 keys, by sorting each key
    packed with its position into one uint64 (unique, so any sort is stable): the same indices,
    several times faster than NumPy's stable sort of 32-bit keys."""
    packed = (bits.astype(np.uint64) << np.uint64(32)) | np.arange(bits.shape[1], dtype=np.uint64)
    packed.sort(axis=1)
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)
