"""Assertions for the user's own tests: ``assert_vjp`` proves a hand-written backward in pytest.

Example::

    from jaxnn.testing import assert_vjp

    def test_softplus_backward():
        with jax.enable_x64(True):
            x = jax.random.normal(jax.random.key(0), (4, 5), jnp.float64)
            assert_vjp(softplus, softplus_backward, (x,))   # or assert_vjp(f, (x,))
"""

from __future__ import annotations

from typing import Any

from jaxnn.checking import VJPCheck, check_vjp

__all__ = ["assert_vjp"]


def assert_vjp(forward: Any, backward: Any = None, args: Any = None, **kwargs: Any) -> VJPCheck:
    """:func:`jaxnn.check_vjp` that raises ``AssertionError`` with the report on a failure.

    Takes the same arguments as :func:`jaxnn.check_vjp` (``check_vjp(forward, backward, args)``
    or ``check_vjp(f, args)``, and its keywords). Returns the passed result.

    Raises:
        AssertionError: the check failed; the message is the full report.
        TypeError, ValueError: bad arguments, as :func:`jaxnn.check_vjp`.
    """
    result = check_vjp(forward, backward, args, **kwargs)
    if not result.passed:
        raise AssertionError("\n" + result.report())
    return result
