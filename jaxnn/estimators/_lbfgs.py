"""``solver="lbfgs"``: SciPy's L-BFGS-B on a jitted value-and-gradient of scikit-learn's objective.

scikit-learn minimises the full-batch objective (sample-weighted mean loss plus
``0.5 * alpha * sum ||W||^2 / sum(w)``) with ``scipy.optimize.minimize(method="L-BFGS-B")`` over
the parameters packed as ``[W_0, ..., W_L, b_0, ..., b_L]`` (each raveled). jaxnn calls the same
SciPy routine with the same options (``maxiter=max_iter``, ``maxfun=max_fun``, ``gtol=tol``) on
the same packing, with the value and gradient computed by one jitted JAX function: the same
iterates as scikit-learn to rounding. (A JAX-native L-BFGS, such as optax's, has another line
search and would not give scikit-learn's numbers.)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from sklearn.utils.optimize import _check_optimize_result

from jaxnn import compilation_cache


def _shapes(coefs: list[np.ndarray], intercepts: list[np.ndarray]) -> list[tuple[int, ...]]:
    return [np.shape(a) for a in (*coefs, *intercepts)]


def pack(coefs: list[np.ndarray], intercepts: list[np.ndarray]) -> np.ndarray:
    """scikit-learn's ``_pack``: every coefficient matrix raveled, then every intercept."""
    return np.hstack([np.ravel(a) for a in (*coefs, *intercepts)])


def unpack(flat: Any, shapes: list[tuple[int, ...]]) -> list[Any]:
    """The arrays of :func:`pack`, in its order."""
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out


@functools.lru_cache(maxsize=32)
def _value_and_grad(total_loss: Any, shapes: tuple[tuple[int, ...], ...]) -> Any:
    """Jitted ``(flat, X, Y, w, l2) -> (objective, its gradient)`` over packed parameters (cached:
    refits of the same network compile nothing)."""
    n_layers = len(shapes) // 2

    def value_and_grad(flat: jax.Array, X: jax.Array, Y: jax.Array, w: jax.Array, l2: jax.Array) -> Any:
        def objective(flat: jax.Array) -> jax.Array:
            arrays = unpack(flat, list(shapes))
            params = [{"W": arrays[i], "b": arrays[n_layers + i]} for i in range(n_layers)]
            return total_loss(params, X, Y, w, l2)
        return jax.value_and_grad(objective)(flat)

    return jax.jit(value_and_grad)


def fit_lbfgs(total_loss: Any, coefs: list[np.ndarray], intercepts: list[np.ndarray], X: np.ndarray,
              Y: np.ndarray, w: np.ndarray, *, alpha: float, max_iter: int, max_fun: int, tol: float,
              dtype: Any) -> tuple[list[np.ndarray], list[np.ndarray], int, float]:
    """Minimise ``total_loss(params, X, Y, w, l2)`` from (coefs, intercepts) as scikit-learn does.

    Args:
        total_loss: :func:`jaxnn.estimators._network.total_loss`'s function.
        coefs, intercepts: the starting weights, (fan_in, fan_out) and (fan_out,) per layer.
        X: (n, d), Y: (n, k), w: (n,) sample weights (ones without), all of ``dtype``.
    Returns:
        (coefs, intercepts, n_iter, loss): the weights in ``dtype``, the iterations run
        (scikit-learn's ``n_iter_``) and the final objective (``loss_``).
    """
    shapes = _shapes(coefs, intercepts)
    n_layers = len(coefs)
    step = _value_and_grad(total_loss, tuple(shapes))
    args = (*(jnp.asarray(a, dtype) for a in (X, Y, w)), jnp.asarray(alpha, dtype))

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        with compilation_cache.scope():  # the first call compiles through jaxnn's store, as jaxnn.fit
            value, grad = step(jnp.asarray(flat, dtype), *args)
        return float(value), np.asarray(grad, np.float64)

    compilation_cache.enable_default()

    # scikit-learn passes iprint only to SciPy < 1.15, which had it; verbose prints nothing here
    res = scipy.optimize.minimize(fun, pack(coefs, intercepts).astype(np.float64), method="L-BFGS-B",
                                  jac=True, options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol})
    n_iter = _check_optimize_result("lbfgs", res, max_iter)  # scikit-learn's ConvergenceWarning
    arrays = [np.asarray(a, dtype) for a in unpack(np.asarray(res.x), shapes)]
    return arrays[:n_layers], arrays[n_layers:], int(n_iter), float(res.fun)
