"""What :func:`jaxnn.check_vjp` found, and how it is told.

The result (:class:`VJPCheck`, with one :class:`ArgumentCheck` per argument and the
:class:`Tolerances` it ran with), its report, and the hints that name the likely bug behind a
wrong gradient: a constant factor (2, 1/2, a size of the arguments), a flipped sign, a transpose,
a missing sum over the batch axis, a mask on the wrong quantity.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

_tree = jax.tree_util


@dataclasses.dataclass(frozen=True)
class Tolerances:
    """The tolerances a check ran with.

    Attributes:
        dtype: the dtype they were chosen for.
        rtol: relative tolerance of each element against ``jax.vjp``.
        atol: absolute tolerance (None: per argument, ``rtol * max|ref| + floor``).
        fd_rtol: relative tolerance of a directional derivative against finite differences.
        eps: finite-difference step, relative to ``max(1, max|x|)``.
    """

    dtype: str
    rtol: float
    atol: float | None
    fd_rtol: float
    eps: float


@dataclasses.dataclass
class ArgumentCheck:
    """How the hand-written gradient of one argument compares with the references.

    Attributes:
        index, name: position and parameter name of the argument.
        shape, dtype: the argument's (``shape`` of its first leaf for a pytree).
        differentiable: False for integer arguments (not checked).
        max_abs_err, max_rel_err: max |hand - jax.vjp| over cotangents and elements, and that
            divided by max |jax.vjp| (NaN when not compared).
        fd_rel_err, fd_abs_err: worst relative and absolute error of a directional
            derivative ``<hand, v>`` against finite differences.
        worst: ``(where, hand, reference, cotangent #)`` of the element furthest out of
            tolerance, or None.
        atol: the absolute tolerance used.
        problems: structural failures (wrong shape, dtype, tree, non-finite values).
        hints: what the error looks like (a factor, a sign, a transpose, a missing sum).
        notes: things that are not failures (inconclusive finite differences at a kink).
        passed: this argument passed every check (False when it was not checked).
        checked: its gradient was checked; False when the backward's result could not be matched
            to the arguments (it raised, or returned no tuple of one gradient per argument).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    differentiable: bool
    max_abs_err: float = math.nan
    max_rel_err: float = math.nan
    fd_rel_err: float = math.nan
    fd_abs_err: float = math.nan
    worst: tuple[str, float, float, int] | None = None
    atol: float = math.nan
    problems: list[str] = dataclasses.field(default_factory=list)
    hints: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    passed: bool = True
    checked: bool = True


@dataclasses.dataclass
class VJPCheck:
    """The result of :func:`jaxnn.check_vjp`. ``str(result)`` is :meth:`report`.

    Attributes:
        name: the forward's name.
        passed: every check passed.
        dtype: the dtype the tolerances were chosen for.
        reference_dtype: the dtype ``jax.vjp`` and the finite differences ran in.
        tolerances: the :class:`Tolerances` used.
        arguments: one :class:`ArgumentCheck` per argument.
        n_cotangents: how many cotangents were pulled back (the random ones and the caller's).
        problems: failures not tied to one argument (gradient count, linearity, jit, zeros).
        hints: hints not tied to one argument (a cotangent ignored, right only for ones).
        notes: remarks that are not failures.
        checks: name -> passed, for each check that ran.
    """

    name: str
    passed: bool
    dtype: str
    reference_dtype: str
    tolerances: Tolerances
    arguments: list[ArgumentCheck]
    n_cotangents: int
    problems: list[str] = dataclasses.field(default_factory=list)
    hints: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    checks: dict[str, bool] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.report()

    @property
    def max_abs_err(self) -> float:
        return _nanmax([a.max_abs_err for a in self.arguments])

    @property
    def max_rel_err(self) -> float:
        return _nanmax([a.max_rel_err for a in self.arguments])

    @property
    def fd_rel_err(self) -> float:
        return _nanmax([a.fd_rel_err for a in self.arguments])

    def report(self) -> str:
        """The human report: per argument, errors against each reference, worst element, hints."""
        t = self.tolerances
        status = "passed" if self.passed else "FAILED"
        lines = [
            f"check_vjp({self.name}): {status}  [{self.dtype}; jax.vjp and finite differences in "
            f"{self.reference_dtype}; {self.n_cotangents} cotangents"
            f"]",
            f"  tolerances: |hand - jax.vjp| <= atol + rtol*|jax.vjp| with rtol {t.rtol:.0e}, atol "
            + (f"{t.atol:.1e}" if t.atol is not None else "rtol*max|jax.vjp| + rounding floor")
            + f"; finite differences rel <= {t.fd_rtol:.0e}, step {t.eps:.0e}",
        ]
        for a in self.arguments:
            head = f"  argument {a.index} ({a.name}): {a.dtype}{list(a.shape)}"
            if not a.differentiable:
                lines.append(f"{head}  integer, not differentiated")
                continue
            if not a.checked:
                lines.append(f"{head}  not checked (no gradient of it to compare; see the problem below)")
                continue
            lines.append(f"{head}  {'ok' if a.passed else 'FAILED'}")
            if not math.isnan(a.max_abs_err):
                lines.append(f"    vs jax.vjp:              max abs err {a.max_abs_err:.3e}   "
                             f"max rel err {a.max_rel_err:.3e}   (atol {a.atol:.1e})")
            if not math.isnan(a.fd_rel_err):
                lines.append(f"    vs finite differences:   abs err {a.fd_abs_err:.3e}   "
                             f"rel err {a.fd_rel_err:.3e}   (directional derivatives)")
            if a.worst is not None and not a.passed:
                where, h, r, k = a.worst
                lines.append(f"    worst element {where} (cotangent #{k}): hand-written "
                             f"{h:.10g}   jax.vjp {r:.10g}")
            lines += [f"    problem: {p}" for p in a.problems]
            lines += [f"    hint: {h}" for h in a.hints]
            lines += [f"    note: {n}" for n in a.notes]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  hint: {h}" for h in self.hints]
        lines += [f"  note: {n}" for n in self.notes]
        if self.checks:
            lines.append("  checks: " + ", ".join(
                f"{k} {'ok' if v else 'FAILED'}" for k, v in self.checks.items()))
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "passed": self.passed, "dtype": self.dtype,
            "reference_dtype": self.reference_dtype,
            "tolerances": dataclasses.asdict(self.tolerances),
            "max_abs_err": _json_float(self.max_abs_err),
            "max_rel_err": _json_float(self.max_rel_err),
            "fd_rel_err": _json_float(self.fd_rel_err),
            "problems": self.problems, "hints": self.hints,
            "arguments": [
                {"index": a.index, "name": a.name, "passed": a.passed, "checked": a.checked,
                 "max_abs_err": _json_float(a.max_abs_err),
                 "max_rel_err": _json_float(a.max_rel_err),
                 "fd_rel_err": _json_float(a.fd_rel_err),
                 "problems": a.problems, "hints": a.hints}
                for a in self.arguments
            ],
        }


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else x


def _nanmax(xs: Sequence[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return max(xs) if xs else math.nan


# --- Comparing a gradient with its reference ---------------------------------------------


def leaves_with_paths(tree: Any) -> list[tuple[str, Any]]:
    """``(path, leaf)`` of every leaf, the path as ``jax.tree_util.keystr`` writes it."""
    return [(_tree.keystr(p), x) for p, x in _tree.tree_flatten_with_path(tree)[0]]


def f64(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float64)


def abs_diff(h: np.ndarray, r: np.ndarray) -> np.ndarray:
    """|h - r|, with matching NaNs/infs counted as equal and a non-finite mismatch as inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(h - r)
    same = (np.isnan(h) & np.isnan(r)) | (np.isinf(h) & (h == r))
    d = np.where(same, 0.0, d)
    return np.where(np.isnan(d), np.inf, d)


def all_close(h: np.ndarray, r: np.ndarray, atol: float, rtol: float) -> bool:
    """Every element of ``h`` within ``atol + rtol * |r|`` of ``r`` (as :func:`abs_diff` counts)."""
    return bool(np.all(abs_diff(h, r) <= atol + rtol * np.abs(r)))


# --- Hints: what shape a wrong gradient's error has ----------------------------------------


def shape_hints(arg_shape: tuple[int, ...], grad_shape: tuple[int, ...]) -> list[str]:
    """What a gradient of the wrong shape suggests: a transpose, a missing sum, a broadcast."""
    arg_shape, grad_shape = tuple(arg_shape), tuple(grad_shape)
    if len(arg_shape) == 2 and grad_shape == arg_shape[::-1]:
        return ["the gradient has the transposed shape: a product in the wrong order or a "
                "missing .T (e.g. c @ x where x.T @ c belongs)"]
    extra = len(grad_shape) - len(arg_shape)
    if extra > 0 and grad_shape[extra:] == arg_shape:
        axes = "0" if extra == 1 else str(tuple(range(extra)))
        return [f"the gradient keeps {extra} leading axis/axes {grad_shape[:extra]} the argument "
                f"does not have: a missing sum over the batch axis (sum(axis={axes}))"]
    if len(grad_shape) == len(arg_shape) and all(
            g in (a, 1) or a == 1 for a, g in zip(arg_shape, grad_shape, strict=True)):
        bcast = tuple(k for k, (a, g) in enumerate(zip(arg_shape, grad_shape, strict=True))
                      if a == 1 and g != 1)
        if bcast:
            return [f"the argument was broadcast along axis {bcast}: sum the gradient over it "
                    "(keepdims=True)"]
    return []


def value_hints(hands: list[Any], refs: list[Any], tol: Tolerances, atol: float,
                args: tuple[Any, ...], out: Any, names: list[str]) -> list[str]:
    """What wrong values suggest, from one argument's gradients ``hands`` and references ``refs``
    (one per cotangent): NaNs, zeros, a constant factor, a transpose, a few elements off."""
    hints: list[str] = []
    hs = [np.concatenate([f64(x).ravel() for x in _tree.tree_leaves(h)]) for h in hands]
    rs = [np.concatenate([x.ravel() for x in _tree.tree_leaves(r)]) for r in refs]
    if not all(np.all(np.isfinite(h)) for h in hs):
        return ["the hand-written gradient has NaN or inf where jax.vjp is finite"]
    if all(not np.any(h) for h in hs):
        return ["the hand-written gradient is all zeros"]
    # a constant factor k, the same for every cotangent: hand == k * ref within the tolerances
    factors: list[float] = []
    for h, r in zip(hs, rs, strict=True):
        rr = float(r @ r)
        k = float(h @ r) / rr if rr > 0 else math.nan
        fits = rr > 0 and all_close(h, k * r, abs(k) * atol, 4 * tol.rtol)
        factors.append(k if fits else math.nan)
    if factors and not any(math.isnan(k) for k in factors):
        k = float(np.mean(factors))
        if max(factors) - min(factors) <= 8 * tol.rtol * abs(k) and abs(k - 1) > 8 * tol.rtol:
            return [_describe_factor(k, _named_sizes(args, out, names))]
    # a transpose of a square matrix (a non-square one fails on shape)
    leaves = [(f64(h), r) for hand, ref in zip(hands, refs, strict=True)
              for h, r in zip(_tree.tree_leaves(hand), _tree.tree_leaves(ref), strict=True)]
    square = [h.ndim == 2 and h.shape[0] == h.shape[1] > 1 for h, _ in leaves]
    if any(square) and all(all_close(h, r.T if sq else r, atol, tol.rtol)
                           for (h, r), sq in zip(leaves, square, strict=True)):
        return ["transposed: hand-written = jax.vjp.T (a product in the wrong order, e.g. "
                "c @ x where x.T @ c belongs; on a square matrix the shapes cannot tell)"]
    # errors confined to a few elements: a mask or a special case
    h, r = hs[0], rs[0]
    bad = abs_diff(h, r) > atol + tol.rtol * np.abs(r)
    n_bad, n = int(bad.sum()), bad.size
    if 0 < n_bad < n:
        where = f"{n_bad} of {n} elements"
        if np.all(r[bad] == 0):
            hints.append(f"differs at {where}, all where jax.vjp is exactly 0: a mask on the "
                         "wrong quantity or condition? (relu's output >= 0 is always true; "
                         "mask on the input x > 0)")
        elif np.all(h[bad] == 0):
            hints.append(f"differs at {where}, all where the hand-written gradient is 0: a mask "
                         "that drops elements it should keep?")
        elif n_bad <= max(1, n // 10):
            hints.append(f"differs at only {where}: a special case, an index or one "
                         "element off")
    return hints


def _named_sizes(args: tuple[Any, ...], out: Any, names: list[str]) -> list[tuple[int, str]]:
    sizes: list[tuple[int, str]] = []
    for i, a in enumerate(args):
        for path, x in leaves_with_paths(a):
            shp = np.shape(x)
            for ax, n in enumerate(shp):
                sizes.append((int(n), f"the size of axis {ax} of {names[i]}{path}"))
            if len(shp) > 1:
                sizes.append((int(np.prod(shp)), f"the number of elements of {names[i]}{path}"))
    for path, o in leaves_with_paths(out):
        for ax, n in enumerate(np.shape(o)):
            sizes.append((int(n), f"the size of axis {ax} of the output{path}"))
    return [(n, what) for n, what in sizes if n > 1]


def _describe_factor(k: float, sizes: list[tuple[int, str]]) -> str:
    m = abs(k)
    if k < 0 and abs(m - 1) <= 1e-6:
        return "flipped sign: hand-written = -1 x jax.vjp"
    what = ""
    for n, desc in sizes:
        if abs(m - n) <= 1e-6 * n:
            what = f" (a factor {n}, {desc}: a 1/{n} missing, or a sum where a mean belongs?)"
            break
        if abs(m - 1 / n) <= 1e-6 / n:
            what = f" (a factor 1/{n}, {desc}: a mean where a sum belongs, or 1/{n} twice?)"
            break
    if not what:
        for p, q in [(2, 1), (1, 2), (3, 1), (1, 3), (4, 1), (1, 4)]:
            if abs(m - p / q) <= 1e-6:
                what = f" (a constant factor {p}{'' if q == 1 else f'/{q}'})"
                break
    lead = "flipped sign and a constant factor: " if k < 0 else "a constant factor: "
    return f"{lead}hand-written = {k:.6g} x jax.vjp{what}"
