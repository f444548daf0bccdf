"""Row buckets: pad the training rows so that data of nearby sizes share one compiled program.

An acceleration (:mod:`jaxnn.accelerations`, switch ``"row_buckets"``): CV folds, validation
splits and ``partial_fit`` chunks of nearby sizes run the same program. The padding rows have
weight 0 and are never part of a minibatch's real rows, and no step is added, so a bucket never
changes a result (``tests/test_compile_once.py``, in float64).
"""

from __future__ import annotations

from jaxnn import shuffle as _shuffle

_ROW_BUCKET_BITS = 3  # row buckets m * 2**k with m in 4..7: at most 25% padding


def row_bucket(n: int) -> int:
    """A padded row count for ``n`` rows evaluated whole (validation data): the smallest ``m * 2**k
    >= n`` with ``m`` in 4..7 (at least 8); ``n`` itself beyond 2**16 rows."""
    if n > 1 << 16:
        return n
    if n <= 8:
        return 8
    step = 1 << max(0, n.bit_length() - _ROW_BUCKET_BITS)
    return min(-(-n // step) * step, 1 << 16)


def train_rows(n: int, batch_size: int) -> int:
    """The padded row count of ``n`` training rows in minibatches of ``batch_size``: the row bucket.

    Several minibatches: whole minibatches, ``ceil(n / batch_size) * batch_size`` -- every ``n``
    with the same number of steps per epoch shares a program, and no step is added. One
    minibatch (``n <= batch_size``): ``batch_size`` when ``n`` is at least a quarter of it (every
    ``partial_fit`` chunk of 50-200 rows shares one program), else the next power of two (at
    least 8). Beyond 2**16 rows (:func:`jaxnn.shuffle.permutation_prefix`'s limit): ``n``.
    """
    if n > batch_size:
        N = -(-n // batch_size) * batch_size
    elif 4 * n >= batch_size:
        N = batch_size
    else:
        N = min(batch_size, max(8, 1 << (n - 1).bit_length()))
    return N if N <= _shuffle.MAX_PADDED else n
