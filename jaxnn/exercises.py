"""The course notebooks' "your turn" exercises, graded by :func:`jaxnn.check_vjp`.

A learner writes a derivative or a backward pass; a ``grade_*`` function checks it against
``jax.vjp`` and finite differences, prints a verdict in one line followed by
:func:`~jaxnn.check_vjp`'s report, and returns a :class:`Verdict`. The exercises and what each
verdict says: notebooks/README.md. A learner's mistake is a verdict, never a traceback; errors of
the grader itself (a bad argument to ``check_vjp``, a forward that fails) propagate. Grading runs
inside ``jax.enable_x64(True)`` (restored on exit), with check_vjp's float64 tolerances.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import foundations as F
from jaxnn.checking import VJPCheck, check_vjp

__all__ = [
    "NETWORK_KEYS",
    "Verdict",
    "chain_3",
    "grade_chain",
    "grade_dLdW",
    "grade_network",
    "grade_softplus",
    "network_loss",
    "softplus",
]

Status = Literal["passed", "wrong", "blank", "error"]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a ``grade_*`` function found.

    Attributes:
        exercise: the name of the function the learner wrote (``"softplus_deriv"``).
        status: ``"passed"``, ``"wrong"``, ``"blank"`` (not written yet) or ``"error"``
            (the attempt raised).
        message: the verdict for a person: its first line says what is wrong (a few lines).
        check: ``check_vjp``'s result when the attempt ran (``None`` for blank and error).
    """

    exercise: str
    status: Status
    message: str
    check: VJPCheck | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message + ("" if self.check is None else "\n\n" + self.check.report())

    def __repr__(self) -> str:
        return f"Verdict(exercise={self.exercise!r}, status={self.status!r})"


# --- The functions the exercises differentiate ---------------------------------------------


def softplus(x: jax.Array) -> jax.Array:
    """softplus(x) = log(1 + e^x), elementwise (a smooth relu). Shape in = shape out."""
    return jnp.logaddexp(x, jnp.zeros_like(x))


chain_3 = [F.tanh, F.square, F.sigmoid]
"""The chain of the chain-rule exercise: x -> tanh -> square -> sigmoid, i.e. sigmoid(tanh(x)^2)."""

NETWORK_KEYS = ("W1", "B1", "W2", "B2")
"""The seed's weight names of the two-layer network, in the order of its forward pass."""


def network_loss(X: jax.Array, y: jax.Array, weights: dict[str, jax.Array]) -> jax.Array:
    """The seed's two-layer network and the loss whose gradient its backward computes.

    M1 = X @ W1, N1 = M1 + B1, O1 = sigmoid(N1), M2 = O1 @ W2, P = M2 + B2,
    L = 1/2 sum((y - P)^2) (so dL/dP = -(y - P), the seed's ``dLdP``).

    Args:
        X: (n, d) inputs. y: (n, 1) targets.
        weights: ``W1`` (d, h), ``B1`` (1, h), ``W2`` (h, 1), ``B2`` (1, 1).
    Returns:
        L, a scalar.
    """
    N1 = X @ weights["W1"] + weights["B1"]
    O1 = F.sigmoid(N1)
    P = O1 @ weights["W2"] + weights["B2"]
    return 0.5 * jnp.sum(jnp.square(y - P))


# --- Grading ---------------------------------------------------------------------------------

_SKIP_DIRS = tuple(os.path.dirname(m.__file__ or "") + os.sep for m in (jax, np))
_THIS_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _where(e: BaseException) -> str:
    """The learner's line that raised: the innermost frame outside jax, numpy and jaxnn."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if not f.filename.startswith((*_SKIP_DIRS, _THIS_PACKAGE))]
    if not frames:
        return ""
    f = frames[-1]
    code = f" `{f.line.strip()}`" if f.line else ""
    return f"\n  at line {f.lineno} of {f.name}:{code}"


def _run_attempt(exercise: str, signature: str, attempt: Any, args: tuple[Any, ...],
                 grader: str) -> tuple[Any, Verdict | None]:
    """Call the learner's function once: its output, or the blank/error verdict."""
    if not callable(attempt):
        return None, Verdict(exercise, "error", (
            f"{grader} takes your function itself, {exercise}, and got a "
            f"{type(attempt).__name__}: write {grader}({exercise}), not {grader}({signature})."))
    try:
        out = attempt(*args)
    except NotImplementedError:
        out = None
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        return None, Verdict(exercise, "error",
                             f"Error: your {exercise} raised {type(e).__name__}: {first}{_where(e)}")
    if out is None or out is Ellipsis:
        return None, Verdict(exercise, "blank", (
            f"Not attempted yet: {exercise} still returns nothing (its body is `...`). "
            f"Write its body, then run this cell again."))
    return out, None


def _shape_problem(got: Any, expected: tuple[int, ...], of: str) -> str | None:
    try:
        shape = tuple(np.shape(got))
    except Exception:  # a ragged list and the like
        return f"it returned a {type(got).__name__} that is not an array"
    if shape != expected:
        return f"it returned shape {shape}; the gradient has {of}'s shape {expected}"
    return None


def _value_problem(got: Any, ref: Any, what: str, x: Any = None) -> str | None:
    """The worst element of ``got`` against the true gradient ``ref`` (same shape), in words.

    ``x``: the input of an elementwise function, named at the worst element.
    """
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return f"{what} holds values that are not numbers ({type(got).__name__})"
    ref = np.asarray(ref, dtype=np.float64)
    if not np.all(np.isfinite(got)):
        return f"{what} has NaN or inf values"
    err = np.abs(got - ref) / (1e-300 + np.maximum(np.abs(ref), np.max(np.abs(ref))))
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    if err[i] <= 1e-8:
        return None
    at = f"[{', '.join(str(int(j)) for j in i)}]" if i else ""
    where = "" if x is None else f"at x = {float(np.asarray(x)[i]):.4g}, "
    return f"{where}{what}{at} is {float(got[i]):.6g}; the true value is {float(ref[i]):.6g}"


def _hints(check: VJPCheck) -> list[str]:
    """The report's problems and hints, the arguments' first: the first is what to read first."""
    return [h for a in check.arguments for h in (*a.problems, *a.hints)] + [
        *check.problems, *check.hints]


def _only_jit_failed(check: VJPCheck) -> bool:
    failed = [name for name, ok in check.checks.items() if not ok]
    return (not check.passed and failed == ["jit == no jit"]
            and all(a.passed for a in check.arguments))


def _verdict(exercise: str, check: VJPCheck, problem: str | None, quiet: bool) -> Verdict:
    if check.passed:
        v = Verdict(exercise, "passed", f"Correct: your {exercise} agrees with jax.vjp and with "
                                        "finite differences.", check)
    elif _only_jit_failed(check):  # right values from NumPy code or a Python `if`
        jit = next(p for p in check.problems if p.startswith("jax.jit"))
        v = Verdict(exercise, "wrong", (
            f"Not yet: the values are right, but {exercise} does not run under jax.jit "
            f"({jit.rstrip('.')}).\n  Write it with jax.numpy (jnp.exp, not np.exp) and jnp.where "
            "instead of a Python `if` on array values.\n  check_vjp's report:"), check)
    else:
        hints = _hints(check)
        why = (problem or next(iter(hints), "it disagrees with jax.vjp; see the report")).rstrip(".")
        hint = next((h for h in hints if h != why and "shape" not in h), None)
        v = Verdict(exercise, "wrong", f"Not yet: {why}." + (f"\n  hint: {hint}" if hint else "")
                    + "\n  check_vjp's report:", check)
    return _tell(v, quiet)


def _tell(v: Verdict, quiet: bool) -> Verdict:
    if not quiet:
        print(v)
    return v


def _elementwise_problem(out: Any, f: Callable[[jax.Array], jax.Array], x: jax.Array,
                         name: str) -> str | None:
    """Shape, then value: the learner's derivative of an elementwise ``f`` at ``x``."""
    problem = _shape_problem(out, x.shape, "x")
    if problem is not None:
        return problem
    true = jax.jvp(f, (x,), (jnp.ones_like(x),))[1]  # elementwise f: its Jacobian is diagonal
    return _value_problem(out, true, f"{name}(x)", x)


def grade_softplus(softplus_deriv: Callable[[jax.Array], Any], *, quiet: bool = False) -> Verdict:
    """Grade ``softplus_deriv(x)``, the derivative of :func:`softplus` at every entry of ``x``.

    Args:
        softplus_deriv: ``softplus_deriv(x) -> array``; ``x`` is (5,) float64 and the result has
            ``x``'s shape. It is checked as the backward ``c * softplus_deriv(x)``.
        quiet: do not print the verdict and report (they are always returned).
    Returns:
        The :class:`Verdict`.
    """
    name = "softplus_deriv"
    with jax.enable_x64(True):
        x = 3.0 * jax.random.normal(jax.random.key(1), (5,), jnp.float64)
        out, early = _run_attempt(name, "softplus_deriv(x)", softplus_deriv, (x,), "grade_softplus")
        if early is not None:
            return _tell(early, quiet)
        check = check_vjp(softplus, lambda x, c: (c * jnp.asarray(softplus_deriv(x)),), (x,),
                          name=f"softplus with your {name}")
        return _verdict(name, check, _elementwise_problem(out, softplus, x, name), quiet)


def grade_chain(chain_3_deriv: Callable[[jax.Array], Any], *, quiet: bool = False) -> Verdict:
    """Grade ``chain_3_deriv(x)``: d/dx of ``sigmoid(square(tanh(x)))`` (the chain :data:`chain_3`).

    Args:
        chain_3_deriv: ``chain_3_deriv(x) -> array``; ``x`` is (6,) float64 and the result has
            ``x``'s shape. It is checked as the backward ``c * chain_3_deriv(x)``.
        quiet: do not print the verdict and report.
    Returns:
        The :class:`Verdict`.
    """
    name = "chain_3_deriv"

    def sigmoid_of_tanh_squared(x: jax.Array) -> jax.Array:
        return F.chain_forward(chain_3, x)

    with jax.enable_x64(True):
        x = 1.5 * jax.random.normal(jax.random.key(2), (6,), jnp.float64)
        out, early = _run_attempt(name, "chain_3_deriv(x)", chain_3_deriv, (x,), "grade_chain")
        if early is not None:
            return _tell(early, quiet)
        check = check_vjp(sigmoid_of_tanh_squared,
                          lambda x, c: (c * jnp.asarray(chain_3_deriv(x)),), (x,),
                          name=f"sigmoid(tanh(x)^2) with your {name}")
        return _verdict(name, check,
                        _elementwise_problem(out, sigmoid_of_tanh_squared, x, name), quiet)


def grade_dLdW(dLdW: Callable[[jax.Array, jax.Array], Any], *, quiet: bool = False) -> Verdict:
    """Grade ``dLdW(X, W)``: the gradient of L = sum(sigmoid(X @ W)) with respect to ``W``.

    Args:
        dLdW: ``dLdW(X, W) -> array``; ``X`` is (3, 3) and ``W`` (3, 2), float64, as in the seed's
            matrix lesson; the result has ``W``'s shape (3, 2). It is checked as the backward of
            ``W -> L`` with ``X`` held fixed: ``c * dLdW(X, W)``.
        quiet: do not print the verdict and report.
    Returns:
        The :class:`Verdict`.
    """
    name = "dLdW"
    with jax.enable_x64(True):
        kx, kw = jax.random.split(jax.random.key(3))
        X = jax.random.normal(kx, (3, 3), jnp.float64)
        W0 = jax.random.normal(kw, (3, 2), jnp.float64)

        def L(W: jax.Array) -> jax.Array:  # X fixed: check_vjp differentiates W only
            return F.matrix_function_forward_sum(X, W, F.sigmoid)

        out, early = _run_attempt(name, "dLdW(X, W)", dLdW, (X, W0), "grade_dLdW")
        if early is not None:
            return _tell(early, quiet)
        check = check_vjp(L, lambda W, c: (c * jnp.asarray(dLdW(X, W)),), (W0,),
                          name=f"L = sum(sigmoid(X @ W)) with your {name}")
        problem = (_shape_problem(out, W0.shape, "W")
                   or _value_problem(out, jax.grad(L)(W0), "dLdW(X, W)"))
        return _verdict(name, check, problem, quiet)


def grade_network(network_backward: Callable[..., Any], *, quiet: bool = False) -> Verdict:
    """Grade ``network_backward(X, y, weights)``: the gradients of :func:`network_loss`.

    Args:
        network_backward: ``network_backward(X, y, weights) -> dict`` with the keys ``W1``,
            ``B1``, ``W2``, ``B2``, each the gradient dL/d(that weight), of that weight's shape.
            Graded at ``X`` (6, 4), ``y`` (6, 1), ``W1`` (4, 3), ``B1`` (1, 3), ``W2`` (3, 1),
            ``B2`` (1, 1), float64; checked as the backward of ``weights -> L`` (X, y fixed).
        quiet: do not print the verdict and report.
    Returns:
        The :class:`Verdict`.
    """
    name = "network_backward"
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(4), 6)
        X = jax.random.normal(k[0], (6, 4), jnp.float64)
        y = jax.random.normal(k[1], (6, 1), jnp.float64)
        shapes: dict[str, tuple[int, ...]] = {"W1": (4, 3), "B1": (1, 3), "W2": (3, 1), "B2": (1, 1)}
        w0 = {key: jax.random.normal(kk, shapes[key], jnp.float64)
              for key, kk in zip(NETWORK_KEYS, k[2:], strict=True)}

        def loss(weights: dict[str, jax.Array]) -> jax.Array:  # X and y fixed
            return network_loss(X, y, weights)

        def backward(weights: dict[str, jax.Array], c: jax.Array) -> tuple[Any]:
            g = network_backward(X, y, weights)
            if isinstance(g, dict):
                return ({key: c * jnp.asarray(v) for key, v in g.items()},)
            return (g,)  # not a dict: check_vjp reports the structure

        out, early = _run_attempt(name, "network_backward(X, y, weights)", network_backward,
                                  (X, y, w0), "grade_network")
        if early is not None:
            return _tell(early, quiet)
        check = check_vjp(loss, backward, (w0,), name=f"the two-layer network with your {name}")
        return _verdict(name, check, _network_problem(out, shapes, jax.grad(loss)(w0)), quiet)


def _network_problem(out: Any, shapes: dict[str, tuple[int, ...]],
                     true: dict[str, jax.Array]) -> str | None:
    """Keys, then shapes, then values -- in backward order (B2 first), where a mistake starts."""
    if not isinstance(out, dict) or set(out) != set(NETWORK_KEYS):
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        return f"it returned {got}; it should return a dict with the keys {list(NETWORK_KEYS)}"
    for key in reversed(NETWORK_KEYS):
        problem = _shape_problem(out[key], shapes[key], key)
        if problem is not None:
            return f"{key}: {problem}"
    for key in reversed(NETWORK_KEYS):
        problem = _value_problem(out[key], true[key], f"the gradient {key}")
        if problem is not None:
            return problem
    return None
