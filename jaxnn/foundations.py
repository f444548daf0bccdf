"""Section 1.2 of the seed notebook as pure ``jax.numpy`` functions.

Every function keeps the seed's name and signature so a learner can follow the
notebook line by line. Each elementwise function has its analytic derivative
right beside it (``sigmoid`` / ``sigmoid_deriv``); the derivative is also
attached as the attribute ``.deriv`` so a chain can find it
(``sigmoid.deriv is sigmoid_deriv``).

Where jaxnn differs from the seed: docs/explanation/seed-differences.md. The derivatives
at the kinks of ``relu`` and ``leaky_relu`` are those of ``jax.nn``:
docs/explanation/gradient-proof.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxnn.errors import InputError, InputTypeError
from jaxnn.gradients import Entry, register

ArrayFunction = Callable[[ArrayLike], Array]
"""A function that takes an array and returns an array of the same shape."""

Chain = Sequence[ArrayFunction]
"""A chain is a list of elementwise functions, applied first to last."""


def _as_float(x: ArrayLike) -> Array:
    """``jnp.asarray(x)``, with integer and bool inputs promoted to the default float dtype."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


# --- 1.2.1 Functions and their derivatives -------------------------------------------------


def square(x: ArrayLike) -> Array:
    """f(x) = x^2, elementwise. Shape in = shape out."""
    return jnp.square(_as_float(x))


def square_deriv(x: ArrayLike) -> Array:
    """f'(x) = 2x."""
    return 2 * _as_float(x)


def sigmoid(x: ArrayLike) -> Array:
    """sigma(x) = 1 / (1 + exp(-x)), elementwise, stable for large |x|.

    Written with ``jnp.exp(-|x|)`` so no intermediate overflows: the seed's
    ``1 / (1 + np.exp(-x))`` overflows exp(-x) below about -88 in float32, where
    ``jax.grad`` of it turns into NaN.
    """
    x = _as_float(x)
    z = jnp.exp(-jnp.abs(x))
    r = 1 / (1 + z)  # one division serves both branches
    return jnp.where(x >= 0, r, z * r)


def sigmoid_deriv(x: ArrayLike) -> Array:
    """sigma'(x) = sigma(x) * (1 - sigma(x)) -- the identity the seed points out.

    Computed as sigma(x) * sigma(-x) = z / (1 + z)^2 with z = exp(-|x|) (the product
    is even in x): the same number, but it keeps full relative precision for large
    |x|, where 1 - sigma(x) rounds to 0, and costs one exp and one division. Capped at its
    exact maximum 1/4: near x = 0 the float32 product rounds to 0.25000003.
    """
    x = _as_float(x)
    z = jnp.exp(-jnp.abs(x))
    r = 1 / (1 + z)
    return jnp.minimum(z * r * r, 0.25)


def relu(x: ArrayLike) -> Array:
    """f(x) = max(x, 0), elementwise (the seed's f_2)."""
    x = _as_float(x)
    return jnp.where(x > 0, x, jnp.zeros_like(x))


def relu_deriv(x: ArrayLike) -> Array:
    """f'(x) = 1 for x > 0 else 0; at the kink x = 0 the left-hand derivative 0 (as jax.nn)."""
    x = _as_float(x)
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


def leaky_relu(x: ArrayLike, slope: float = 0.2) -> Array:
    """f(x) = x for x >= 0 else slope * x. The seed's printed values need slope 0.2."""
    x = _as_float(x)
    return jnp.where(x >= 0, x, slope * x)


def leaky_relu_deriv(x: ArrayLike, slope: float = 0.2) -> Array:
    """f'(x) = 1 for x >= 0 else slope; at x = 0 the right-hand derivative 1 (as jax.nn)."""
    x = _as_float(x)
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.full_like(x, slope))


def tanh(x: ArrayLike) -> Array:
    """f(x) = tanh(x), elementwise."""
    return jnp.tanh(_as_float(x))


def tanh_deriv(x: ArrayLike) -> Array:
    """f'(x) = 1 - tanh(x)^2."""
    return 1 - jnp.square(jnp.tanh(_as_float(x)))


def identity(x: ArrayLike) -> Array:
    """f(x) = x: the "activation" of a linear output layer."""
    return _as_float(x)


def identity_deriv(x: ArrayLike) -> Array:
    """f'(x) = 1."""
    return jnp.ones_like(_as_float(x))


for _f, _d in [
    (square, square_deriv),
    (sigmoid, sigmoid_deriv),
    (relu, relu_deriv),
    (leaky_relu, leaky_relu_deriv),
    (tanh, tanh_deriv),
    (identity, identity_deriv),
]:
    _f.deriv = _d  # type: ignore[attr-defined]


def derivative_of(func: Callable[..., Any]) -> ArrayFunction:
    """Return the analytic derivative attached to ``func`` (``func.deriv``).

    Raises:
        TypeError: if ``func`` carries no analytic derivative.
    """
    d = getattr(func, "deriv", None)
    if d is None:
        raise InputTypeError(
            f"chain: {getattr(func, '__name__', func)!r} has no analytic derivative; "
            "attach one as `func.deriv = ...` (see jaxnn.foundations)"
        )
    return d


# --- 1.2.2 Numerical derivative ------------------------------------------------------------


def deriv(func: ArrayFunction, input_: ArrayLike, diff: float = 0.001) -> Array:
    """The seed's central difference: (f(x + diff) - f(x - diff)) / (2 * diff).

    Elementwise for an elementwise ``func``; the truncation error is O(diff^2).
    """
    input_ = _as_float(input_)
    return (func(input_ + diff) - func(input_ - diff)) / (2 * diff)


# --- 1.2.3-1.2.5 Nested functions and the chain rule --------------------------------------


def _check_chain(chain: Chain) -> None:
    if not isinstance(chain, Sequence) or isinstance(chain, str) or len(chain) == 0:
        raise InputError(f"chain: expected a non-empty list of functions, got {chain!r}")
    for f in chain:
        if not callable(f):
            raise InputTypeError(f"chain: every link must be callable, got {f!r}")


def chain_forward(chain: Chain, x: ArrayLike) -> Array:
    """Feed ``x`` through every function of ``chain`` in order: f_n(...f_2(f_1(x))).

    The seed's ``chain_length_2`` / ``chain_length_3`` for chains of any length.
    """
    _check_chain(chain)
    out = _as_float(x)
    for f in chain:
        out = f(out)
    return out


def chain_deriv(chain: Chain, x: ArrayLike) -> Array:
    """d/dx f_n(...f_1(x)) by the hand-written chain rule, for chains of any length.

    Forward pass: keep every link's input u_k. Backward pass: multiply the
    analytic derivatives f_k'(u_k) together (elementwise, since every link is
    elementwise). This is the seed's ``chain_deriv_2``/``chain_deriv_3`` with
    analytic instead of numerical link derivatives.

    It trusts every link's ``.deriv``; :func:`check_chain` proves them.
    """
    _check_chain(chain)
    derivs = [derivative_of(f) for f in chain]
    u = _as_float(x)
    total = jnp.ones_like(u)
    for f, df in zip(chain, derivs, strict=True):
        total = total * df(u)  # df_k/du evaluated at this link's input
        u = f(u)
    return total


def check_chain(chain: Chain, x: ArrayLike, *, key: Array | None = None) -> list[Any]:
    """Check every link's ``.deriv`` at the input the chain gives it (``jaxnn.checking.check_deriv``).

    Args:
        chain: elementwise functions, each with ``.deriv``.
        x: the chain's input (float64 inside ``jax.enable_x64(True)`` for the tightest check).
        key: a ``jax.random.key`` for the checker's random cotangents.
    Returns:
        One :class:`jaxnn.checking.VJPCheck` per link, all passed.
    Raises:
        ValueError: a link's ``.deriv`` disagrees with its function; the message names the
            link and carries the checker's report.
        TypeError: a link is not callable or has no ``.deriv``.
    """
    from jaxnn.checking import check_deriv  # here: jaxnn.checking is the checker, not a lesson

    _check_chain(chain)
    u = _as_float(x)
    results = []
    for k, f in enumerate(chain):
        r = check_deriv(f, u, deriv=derivative_of(f), key=key)
        if not r.passed:
            raise InputError(f"chain: link {k} ({getattr(f, '__name__', f)!r}) has a .deriv that "
                             f"disagrees with the function:\n{r.report()}")
        results.append(r)
        u = f(u)
    return results


# --- 1.2.6 Functions with multiple inputs --------------------------------------------------


def _same_shape(x: Array, y: Array, what: str) -> None:
    if x.shape != y.shape:
        raise InputError(f"{what}: x and y must have the same shape, got {x.shape} and {y.shape}")


def multiple_inputs_add(x: ArrayLike, y: ArrayLike, sigma: ArrayFunction) -> Array:
    """s = sigma(x + y). x and y must have the same shape (no silent broadcasting)."""
    x, y = _as_float(x), _as_float(y)
    _same_shape(x, y, "multiple_inputs_add")
    a = x + y
    return sigma(a)


def multiple_inputs_add_backward(
    x: ArrayLike, y: ArrayLike, sigma: ArrayFunction
) -> tuple[Array, Array]:
    """(ds/dx, ds/dy) of s = sigma(x + y): both equal sigma'(x + y) * 1."""
    x, y = _as_float(x), _as_float(y)
    _same_shape(x, y, "multiple_inputs_add_backward")
    a = x + y
    dsda = derivative_of(sigma)(a)
    dadx = jnp.ones_like(x)
    dady = jnp.ones_like(y)
    return dsda * dadx, dsda * dady


# --- 1.2.7-1.2.8 Vector and matrix inputs ---------------------------------------------------


def _check_matmul(X: Array, W: Array, what: str) -> None:
    if X.ndim != 2 or W.ndim != 2:
        raise InputError(
            f"{what}: X and W must be 2-D matrices, got shapes {X.shape} and {W.shape}"
        )
    if X.shape[1] != W.shape[0]:
        raise InputError(
            f"{what}: inner dimensions of X @ W differ: X has shape {X.shape}, W has shape "
            f"{W.shape} ({X.shape[1]} != {W.shape[0]})"
        )


def matrix_forward_extra(X: ArrayLike, W: ArrayLike, sigma: ArrayFunction) -> Array:
    """S = sigma(X @ W).

    Args:
        X: (n, d) inputs.
        W: (d, k) weights.
        sigma: elementwise function.
    Returns:
        S: (n, k).
    """
    X, W = _as_float(X), _as_float(W)
    _check_matmul(X, W, "matrix_forward_extra")
    N = X @ W
    return sigma(N)


def matrix_function_backward_1(X: ArrayLike, W: ArrayLike, sigma: ArrayFunction) -> Array:
    """dS/dX of S = sigma(X @ W) for one output column (the seed's k = 1 case).

    For W of shape (d, 1): dS/dX = sigma'(X @ W) @ W^T, shape (n, d) -- row i is
    the gradient of S_i with respect to row i of X. For k > 1 this is the
    gradient of sum(S), i.e. the vector-Jacobian product with a cotangent of ones.
    """
    X, W = _as_float(X), _as_float(W)
    _check_matmul(X, W, "matrix_function_backward_1")
    N = X @ W
    dSdN = derivative_of(sigma)(N)  # (n, k)
    dNdX = W.T  # (k, d)
    return dSdN @ dNdX  # (n, d)


def matrix_function_forward_sum(X: ArrayLike, W: ArrayLike, sigma: ArrayFunction) -> Array:
    """L = sum(sigma(X @ W)): a scalar, so dL/dX and dL/dW are well defined.

    Args:
        X: (n, d). W: (d, k).
    Returns:
        L: scalar.
    """
    X, W = _as_float(X), _as_float(W)
    _check_matmul(X, W, "matrix_function_forward_sum")
    N = X @ W
    S = sigma(N)
    return jnp.sum(S)


def matrix_function_backward_sum_1(X: ArrayLike, W: ArrayLike, sigma: ArrayFunction) -> Array:
    """dL/dX of L = sum(sigma(X @ W)) = (1 * sigma'(N)) @ W^T, shape (n, d)."""
    X, W = _as_float(X), _as_float(W)
    _check_matmul(X, W, "matrix_function_backward_sum_1")
    N = X @ W
    dLdS = jnp.ones_like(N)  # L is a plain sum
    dSdN = derivative_of(sigma)(N)
    dLdN = dLdS * dSdN  # (n, k)
    dNdX = W.T  # (k, d)
    return dLdN @ dNdX  # (n, d)


def matrix_function_backward_sum_2(X: ArrayLike, W: ArrayLike, sigma: ArrayFunction) -> Array:
    """dL/dW of L = sum(sigma(X @ W)) = X^T @ (1 * sigma'(N)), shape (d, k)."""
    X, W = _as_float(X), _as_float(W)
    _check_matmul(X, W, "matrix_function_backward_sum_2")
    N = X @ W
    dLdS = jnp.ones_like(N)
    dSdN = derivative_of(sigma)(N)
    dLdN = dLdS * dSdN  # (n, k)
    dNdW = X.T  # (d, n)
    return dNdW @ dLdN  # (d, k)


# --- Registry: each lesson's hand-written backward as a vector-Jacobian product -----------
# backward(*args, cotangent) pulls the cotangent of the output back to every argument,
# using only the analytic derivatives above. `jaxnn gradcheck` proves each against jax.vjp.


def _normal(key: Array, shape: tuple[int, ...], dtype: Any, scale: float = 1.0) -> Array:
    return scale * jax.random.normal(key, shape, dtype)


def _elementwise_entry(name: str, func: ArrayFunction, kink: str | None = None) -> Entry:
    d = derivative_of(func)
    return Entry(
        name=name,
        forward=func,
        backward=lambda x, cot: (cot * d(x),),
        example=lambda key, dtype: (_normal(key, (4, 5), dtype, 3.0),),
        kink=kink,
    )


register(_elementwise_entry("square", square))
register(_elementwise_entry("sigmoid", sigmoid))
register(_elementwise_entry("tanh", tanh))
register(_elementwise_entry("relu", relu, kink="relu'(0) = 0 (left-hand, as jax.nn.relu)"))
register(
    _elementwise_entry(
        "leaky_relu", leaky_relu, kink="leaky_relu'(0) = 1 (right-hand, as jax.nn.leaky_relu)"
    )
)

_SEED_CHAIN: tuple[ArrayFunction, ...] = (leaky_relu, square, sigmoid)

register(
    Entry(
        name="chain[leaky_relu,square,sigmoid]",
        forward=lambda x: chain_forward(_SEED_CHAIN, x),
        backward=lambda x, cot: (cot * chain_deriv(_SEED_CHAIN, x),),
        example=lambda key, dtype: (_normal(key, (6,), dtype, 2.0),),
        kink="leaky_relu'(0) = 1 (right-hand)",
    )
)

register(
    Entry(
        name="multiple_inputs_add[sigmoid]",
        forward=lambda x, y: multiple_inputs_add(x, y, sigmoid),
        backward=lambda x, y, cot: tuple(
            cot * g for g in multiple_inputs_add_backward(x, y, sigmoid)
        ),
        example=lambda key, dtype: tuple(
            _normal(k, (3, 2), dtype, 2.0) for k in jax.random.split(key)
        ),
    )
)


def matrix_forward_extra_vjp(
    X: ArrayLike, W: ArrayLike, sigma: ArrayFunction, cotangent: ArrayLike
) -> tuple[Array, Array]:
    """VJP of S = sigma(X @ W): (dX, dW) = ((c * sigma'(N)) @ W^T, X^T @ (c * sigma'(N))).

    With a cotangent of ones this is ``matrix_function_backward_1`` (and the sum
    backwards); any cotangent c of shape (n, k) is allowed.
    """
    X, W = _as_float(X), _as_float(W)
    _check_matmul(X, W, "matrix_forward_extra_vjp")
    N = X @ W
    dLdN = jnp.asarray(cotangent) * derivative_of(sigma)(N)  # (n, k)
    return dLdN @ W.T, X.T @ dLdN


def _matrix_example(key: Array, dtype: Any) -> tuple[Array, Array]:
    kx, kw = jax.random.split(key)
    return _normal(kx, (3, 3), dtype), _normal(kw, (3, 2), dtype)


register(
    Entry(
        name="matrix_forward_extra[sigmoid]",
        forward=lambda X, W: matrix_forward_extra(X, W, sigmoid),
        backward=lambda X, W, cot: matrix_forward_extra_vjp(X, W, sigmoid, cot),
        example=_matrix_example,
    )
)

register(
    Entry(
        name="matrix_function_forward_sum[sigmoid]",
        forward=lambda X, W: matrix_function_forward_sum(X, W, sigmoid),
        backward=lambda X, W, cot: (
            cot * matrix_function_backward_sum_1(X, W, sigmoid),
            cot * matrix_function_backward_sum_2(X, W, sigmoid),
        ),
        example=_matrix_example,
    )
)
