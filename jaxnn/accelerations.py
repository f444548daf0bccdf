"""Where jaxnn runs faster than its plain core: one named module per acceleration, one switch each.

The engine's core (:mod:`jaxnn.engine`) is a plain ``lax.scan`` over minibatches whose data
orders are drawn in the program, over exactly the rows given, compiled by ``jax.jit``. Each
acceleration below sits in its own module, is on by default, and can be switched off; none
changes a result (``tests/test_accelerations.py`` trains with each one off, and all of them
off, against the default: the same bits, or equal to 1e-12 in float64 where the order of
floating-point operations differs). Their history and measured gains: ``docs/development.md``.

============================  ==============================  ================================================
switch                        module                          what it does
============================  ==============================  ================================================
``"host_orders"``             :mod:`jaxnn.shuffle`            draws each chunk's data orders on the host with
                                                              NumPy, bit for bit JAX's permutations, and
                                                              passes them in (the program holds no sort)
``"row_buckets"``             :func:`jaxnn.engine.train_rows`  pads the rows to a bucket (weight-0 rows), so
                                                              data of nearby sizes share one program
``"xla_cpu"``                 :mod:`jaxnn.xla_cpu`            compiles tiny steps without YNNPACK on CPU,
                                                              programs that run once (initial parameters,
                                                              optimizer states) for a short compile, and
                                                              float64 weight gradients from a written-out
                                                              transpose
``"compilation_cache"``       :mod:`jaxnn.compilation_cache`  keeps compiled programs on disk, verified
============================  ==============================  ================================================

Usage::

    with jaxnn.accelerations.off():                # the plain core
        jaxnn.fit(...)
    with jaxnn.accelerations.off("host_orders"):   # one of them
        jaxnn.fit(...)

The switches are per thread (and per asyncio task): a ``contextvars.ContextVar``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from jaxnn.errors import InputError

NAMES = ("host_orders", "row_buckets", "xla_cpu", "compilation_cache")

_OFF: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("jaxnn_accelerations_off",
                                                                      default=frozenset())


def enabled(name: str) -> bool:
    """Whether the acceleration ``name`` (one of :data:`NAMES`) is on here."""
    if name not in NAMES:
        raise InputError(f"name: expected one of {', '.join(NAMES)}, got {name!r}")
    return name not in _OFF.get()


@contextlib.contextmanager
def off(*names: str) -> Iterator[None]:
    """Switch accelerations off inside the ``with`` block: the named ones, or all of them."""
    for name in names:
        if name not in NAMES:
            raise InputError(f"names: expected some of {', '.join(NAMES)}, got {name!r}")
    token = _OFF.set(_OFF.get() | frozenset(names or NAMES))
    try:
        yield
    finally:
        _OFF.reset(token)
