"""``with_backward``: how a hand-written backward pass enters any JAX model.

``f = with_backward(forward, backward)`` computes ``forward(*args)``; ``jax.grad`` and
``jax.vjp`` of anything built on ``f`` run the hand-written ``backward`` instead of
differentiating ``forward`` -- under ``jit``, ``vmap`` and inside ``lax.scan`` (it is a
``jax.custom_vjp``). This is the only switch the training engine needs: a model built from
``with_backward`` functions trains on its hand-written gradients, the same model built from the
plain forwards trains on autodiff, and the tests prove the two equal.

The contract, as in :func:`jax.custom_vjp`:

* ``forward(*args) -> out``: a pure ``jax.numpy`` function of positional array arguments (or
  pytrees of arrays). Non-array settings (a slope, a reduction name) are closed over, not passed.
* ``backward(*args, cotangent) -> tuple``: one gradient per argument, each with that argument's
  structure, shapes and dtypes: ``sum(cotangent * d out / d arg)``. ``cotangent`` has the shape
  of ``out``. Integer arguments (class labels) have no gradient: return ``None`` for them (any
  value returned there is ignored).

Example::

    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    def softplus_backward(x, cotangent):
        return (cotangent * jax.nn.sigmoid(x),)

    f = with_backward(softplus, softplus_backward)
    jax.grad(lambda x: f(x).sum())(x)  # runs softplus_backward
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn.errors import InputTypeError


def _is_float(x: Any) -> bool:
    return bool(jnp.issubdtype(jnp.result_type(x), jnp.inexact))


def with_backward(forward: Callable[..., Any],
                  backward: Callable[..., tuple[Any, ...]]) -> Callable[..., Any]:
    """``forward`` whose derivative, under ``jax.grad``/``jax.vjp``, is the hand-written ``backward``.

    Args:
        forward: ``forward(*args) -> out``, pure, positional arguments only.
        backward: ``backward(*args, cotangent) -> tuple`` with one gradient per argument.
    Returns:
        ``f(*args) -> out`` (a ``jax.custom_vjp`` function) with ``f.forward`` and ``f.backward``
        set to the two functions, so checkers and tests can reach them.
    Raises:
        TypeError: ``forward`` or ``backward`` is not callable; at differentiation time, when
            ``backward`` does not return a tuple (or list) of one gradient per argument.
    """
    if not callable(forward):
        raise InputTypeError(f"forward: expected a callable, got {type(forward).__name__}")
    if not callable(backward):
        raise InputTypeError(f"backward: expected a callable, got {type(backward).__name__}")
    name = getattr(forward, "__name__", "forward")

    @jax.custom_vjp
    def f(*args: Any) -> Any:
        return forward(*args)

    def f_fwd(*args: Any) -> tuple[Any, tuple[Any, ...]]:
        return forward(*args), args  # the residuals are the arguments themselves

    def f_bwd(args: tuple[Any, ...], cotangent: Any) -> tuple[Any, ...]:
        grads = backward(*args, cotangent)
        if not isinstance(grads, tuple | list) or len(grads) != len(args):
            got = f"{len(grads)} gradients" if isinstance(grads, tuple | list) else type(grads).__name__
            raise InputTypeError(f"{name}: backward must return a tuple of {len(args)} gradients "
                            f"(one per argument), got {got}")
        # integer leaves (labels, indices) get JAX's symbolic zero, whatever backward returned
        return tuple(
            None if all(not _is_float(leaf) for leaf in jax.tree_util.tree_leaves(a)) else g
            for a, g in zip(args, grads, strict=True)
        )

    f.defvjp(f_fwd, f_bwd)
    functools.update_wrapper(f, forward)
    f.forward = forward  # type: ignore[attr-defined]
    f.backward = backward  # type: ignore[attr-defined]
    return f


def forward_of(f: Callable[..., Any]) -> Callable[..., Any]:
    """The plain forward of a :func:`with_backward` function (``f`` itself otherwise).

    Building a model from ``forward_of(layer)`` instead of ``layer`` gives the autodiff twin of
    the hand-written model.
    """
    return getattr(f, "forward", f)
