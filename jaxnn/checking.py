"""``check_vjp``: prove a hand-written backward pass against autodiff and finite differences.

``check_vjp(forward, backward, args)`` (or ``check_vjp(f, args)`` for a function made by
:func:`jaxnn.with_backward`) pulls random cotangents back through the hand-written ``backward``
and through two references, ``jax.vjp`` of ``forward`` in float64 and central finite
differences; checks the structure of what ``backward`` returns; and says what is wrong in words
a person can act on::

    result = check_vjp(softplus, softplus_backward, (x,))
    result.passed          # bool
    print(result)          # the report: errors per argument, worst element, tolerances, hints

The references, the structural checks, the tolerances of each dtype and the rule at kinks are
explained in docs/explanation/gradient-proof.md.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import compilation_cache
from jaxnn.check_report import (
    ArgumentCheck,
    Tolerances,
    VJPCheck,
    abs_diff,
    all_close,
    f64,
    leaves_with_paths,
    shape_hints,
    value_hints,
)
from jaxnn.errors import InputError, InputTypeError
from jaxnn.names import finite_float

__all__ = ["ArgumentCheck", "Tolerances", "VJPCheck", "check_deriv", "check_vjp", "tolerances_for"]

N_COTANGENTS = 3
"""Random cotangents drawn per check (a backward right for one cotangent only must fail)."""
N_DIRECTIONS = 2
"""Random finite-difference directions per argument."""


# dtype -> (rtol vs jax.vjp, fd rtol, and the fd step and rtol where the forward cannot run in
# float64 and the finite differences run in this dtype)
_DEFAULTS: dict[str, tuple[float, float, float, float]] = {
    "float64": (1e-10, 1e-6, 1e-6, 1e-6),
    "float32": (1e-4, 1e-3, 1e-2, 5e-2),
    "bfloat16": (5e-2, 5e-2, 1e-1, 0.3),
    "float16": (1e-2, 1e-2, 1e-1, 0.2),
}


def tolerances_for(dtype: Any, *, rtol: float | None = None, atol: float | None = None,
                   eps: float | None = None) -> Tolerances:
    """The default tolerances of ``dtype`` (docs/explanation/gradient-proof.md), with overrides."""
    name = jnp.dtype(dtype).name
    if name not in _DEFAULTS:
        raise InputError(f"dtype: expected one of {sorted(_DEFAULTS)}, got {name!r}")
    d_rtol, d_fd, _, _ = _DEFAULTS[name]
    r = d_rtol if rtol is None else rtol
    return Tolerances(name, r, atol, max(d_fd, r), 1e-6 if eps is None else eps)


# --- Helpers -------------------------------------------------------------------------------

_tree = jax.tree_util


def _kind(arg: Any, where: str) -> str:
    """'float' or 'int' for an argument (every leaf of the same kind); raises otherwise."""
    kinds = set()
    leaves = _tree.tree_leaves(arg)
    if not leaves:
        raise InputError(f"{where}: an argument with no arrays in it")
    for leaf in leaves:
        dt = jnp.result_type(leaf)
        if jnp.issubdtype(dt, jnp.complexfloating):
            raise InputTypeError(f"{where}: complex dtype {dt} is not supported")
        kinds.add("float" if jnp.issubdtype(dt, jnp.floating) else "int")
    if len(kinds) > 1:
        raise InputError(f"{where}: mixes floating and integer arrays; pass them as "
                         "separate arguments")
    return kinds.pop()


def _as_array_tree(arg: Any, where: str) -> Any:
    def conv(leaf: Any) -> Any:
        if isinstance(leaf, jax.Array | np.ndarray | np.generic | bool | int | float):
            return jnp.asarray(leaf)
        raise InputTypeError(f"{where}: expected arrays (or pytrees of arrays), got "
                             f"{type(leaf).__name__}")
    return _tree.tree_map(conv, arg)


def _param_names(forward: Callable[..., Any], n: int) -> list[str]:
    try:
        params = list(inspect.signature(forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [positional[i] if i < len(positional) else f"arg{i}" for i in range(n)]


def _has_custom_vjp(jaxpr: Any) -> bool:
    """Whether ``jaxpr``, or a jaxpr inside one of its equations, calls a ``custom_vjp``."""
    for eqn in jaxpr.eqns:
        if "custom_vjp" in eqn.primitive.name:
            return True
        for v in eqn.params.values():
            for sub in v if isinstance(v, tuple | list) else (v,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's Jaxpr, or a Jaxpr
                if hasattr(inner, "eqns") and _has_custom_vjp(inner):
                    return True
    return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def _resolve(forward: Any, backward: Any, args: Any) -> tuple[Callable, Callable, Any, Any]:
    """(forward, backward, args, f or None) from either calling convention."""
    if not callable(forward):
        raise InputTypeError(f"forward: expected a callable, got {type(forward).__name__}")
    if callable(backward) or args is not None:
        if not callable(backward):
            raise InputTypeError(f"backward: expected a callable backward(*args, cotangent), got "
                                 f"{type(backward).__name__}")
        return forward, backward, args, None
    f = forward
    if not (callable(getattr(f, "forward", None)) and callable(getattr(f, "backward", None))):
        raise InputTypeError(
            f"f: {getattr(f, '__name__', f)!r} has no .forward/.backward: make it with "
            "jaxnn.with_backward(forward, backward), or call check_vjp(forward, backward, args)")
    return f.forward, f.backward, backward, f


# --- The checker ---------------------------------------------------------------------------


def _through_the_cache(check: Callable[..., VJPCheck]) -> Callable[..., VJPCheck]:
    """Run ``check`` where jaxnn compiles (:func:`jaxnn.compilation_cache.compiling`): the many small
    programs of a check are kept on disk, so a check run again in a new process compiles nothing."""
    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> VJPCheck:
        with compilation_cache.compiling():
            return check(*args, **kwargs)

    return wrapper


@_through_the_cache
@jax.default_matmul_precision("highest")
def check_vjp(
    forward: Callable[..., Any],
    backward: Any = None,
    args: Any = None,
    *,
    cotangent: Any = None,
    key: jax.Array | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    eps: float | None = None,
    name: str | None = None,
) -> VJPCheck:
    """Check a hand-written ``backward`` of ``forward`` at ``args``.

    What is checked, against which references and with which tolerances:
    docs/explanation/gradient-proof.md.

    Args:
        forward: ``forward(*args) -> out`` (an array or pytree of floating arrays). Or a
            function made by :func:`jaxnn.with_backward`, called as ``check_vjp(f, args)``:
            then its ``.forward``/``.backward`` are checked, and ``f`` itself must give the
            forward's value and the backward's gradient under ``jax.vjp``.
        backward: ``backward(*args, cotangent) -> tuple``, one gradient per argument
            (``None`` or anything for integer arguments).
        args: tuple (or list) of the positional arguments, arrays or pytrees of arrays; a
            single array is taken as the only argument.
        cotangent: a cotangent of ``out``'s shape to check in addition to the random ones.
        key: a ``jax.random.key`` seeding the random cotangents, directions and coefficients,
            drawn with NumPy on the host from its key data (default: ``key(0)``'s).
        rtol: override the dtype's relative tolerance.
        atol: override the dtype's absolute tolerance.
        eps: override the finite-difference step.
        name: the name in the report (default: the forward's ``__name__``).
    Returns:
        A :class:`VJPCheck`; ``.passed`` and ``str(result)``, the report.
    Raises:
        TypeError, ValueError: bad arguments to ``check_vjp`` itself (named in the message).
            Errors of the hand-written backward (a wrong shape, an exception) are failed
            results, not exceptions; an exception of ``forward`` at ``args`` propagates.

    Matrix products run at full precision during the check
    (``jax.default_matmul_precision("highest")``): a GPU's TF32 products would add ~1e-3
    relative errors to a float32 backward that are not the backward's.
    """
    forward, backward, args, f = _resolve(forward, backward, args)
    if isinstance(args, jax.Array | np.ndarray):
        args = (args,)
    if not isinstance(args, tuple | list):
        raise InputTypeError(f"args: expected a tuple of positional arguments, got {type(args).__name__}")
    args = tuple(_as_array_tree(a, f"args[{i}]") for i, a in enumerate(args))
    if not args:
        raise InputError("args: expected at least one argument")
    kinds = [_kind(a, f"args[{i}]") for i, a in enumerate(args)]
    diff = [i for i, k in enumerate(kinds) if k == "float"]
    if not diff:
        raise InputError("args: no floating-point argument to differentiate")
    for arg_name, value, positive in (("rtol", rtol, True), ("atol", atol, False), ("eps", eps, True)):
        if value is not None:
            finite_float(arg_name, value, positive=positive)
    if key is not None and not (isinstance(key, jax.Array)
                                and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        raise InputTypeError("key: expected a typed key from jax.random.key(seed), got "
                             f"{type(key).__name__}")
    name = str(name or getattr(forward if f is None else f, "__name__", "forward"))
    names = _param_names(forward, len(args))

    out = forward(*args)
    out_leaves = _tree.tree_leaves(out)
    if not out_leaves or not all(jnp.issubdtype(jnp.result_type(o), jnp.floating)
                                 for o in out_leaves):
        raise InputError(f"forward: must return floating-point arrays, got "
                         f"{[str(jnp.result_type(o)) for o in out_leaves]}")
    # the least precise floating dtype among the differentiable arguments and the output
    dts = [jnp.result_type(x) for i in diff for x in _tree.tree_leaves(args[i])]
    dts += [jnp.result_type(o) for o in out_leaves]
    check_dtype = max(dts, key=lambda d: float(jnp.finfo(d).eps))
    tol = tolerances_for(check_dtype, rtol=rtol, atol=atol, eps=eps)
    rng_cot, rng_lin, *rng_dir = _generators(key, 2 + len(args))
    cots = _cotangents(cotangent, out, rng_cot)
    ones = _tree.tree_map(jnp.ones_like, out)

    result = VJPCheck(name, True, tol.dtype, "float64", tol, [], len(cots))
    for i, a in enumerate(args):
        leaf0 = _tree.tree_leaves(a)[0]
        result.arguments.append(ArgumentCheck(
            i, names[i], tuple(jnp.shape(leaf0)), str(jnp.result_type(leaf0)), kinds[i] == "float"))

    # --- the hand-written backward, in the caller's dtype
    def call_backward(cot: Any) -> tuple[Any, ...] | str:
        try:
            g = backward(*args, cot)
        except Exception as e:  # the hand-written code's failure is a result, not a crash
            return f"backward raised {_first_line(e)}"
        if not isinstance(g, tuple | list):
            bare = (f"a bare array ({type(g).__name__}); return (gradient,) even for one argument"
                    if hasattr(g, "shape") else type(g).__name__)
            return f"backward must return a tuple of {len(args)} gradients (one per argument), got {bare}"
        if len(g) != len(args):
            return f"backward returned {len(g)} gradients for {len(args)} arguments"
        return tuple(g)

    hand = [call_backward(c) for c in cots]
    if isinstance(hand[0], str):
        result.problems.append(hand[0])
        result.passed = False
        for i in diff:  # nothing was compared: no argument line may say ok
            result.arguments[i].passed = result.arguments[i].checked = False
        result.checks["one gradient per argument"] = False
        return result
    result.checks["one gradient per argument"] = True

    # --- structure: tree, shapes and dtypes of every differentiable argument's gradient
    for i in diff:
        _check_structure(result.arguments[i], args[i], hand[0][i])
    ok_args = [i for i in diff if not result.arguments[i].problems]
    result.checks["shapes and dtypes"] = len(ok_args) == len(diff)

    # --- references in float64 (where the forward runs in float64), else in its own dtype
    refs, fd_fn, ref_dtype = _references(forward, args, diff, [*cots, ones], result)
    result.reference_dtype = ref_dtype
    if ref_dtype != "float64":  # finite differences in a low precision need a longer step
        _, _, fd_eps, fd_rtol = _DEFAULTS[ref_dtype]
        tol = dataclasses.replace(tol, eps=fd_eps if eps is None else tol.eps,
                                  fd_rtol=max(tol.fd_rtol, fd_rtol))
        result.tolerances = tol
    try:
        independent = not _has_custom_vjp(jax.make_jaxpr(forward)(*args).jaxpr)
    except Exception:  # a forward make_jaxpr cannot trace: jax.vjp ran it, so treat it as plain
        independent = True
    if not independent:
        result.notes.append("forward contains a custom_vjp, so jax.vjp is no independent "
                            "reference: the finite differences decide")

    # a rounding floor: derivative values below eps * |cotangent| are rounding noise
    cot_scale = max(float(np.max(np.abs(f64(c)))) if jnp.size(c) else 0.0
                    for c in _tree.tree_leaves(cots))
    floor = 16 * float(jnp.finfo(check_dtype).eps) * cot_scale
    compared = [(h, r) for h, r in zip(hand, refs, strict=False) if not isinstance(h, str)]
    for i in ok_args:
        _compare_argument(result.arguments[i], [h[i] for h, _ in compared],
                          [r[i] for _, r in compared], tol, floor, args, out, names)

    # --- finite differences along random directions, one argument at a time
    for i in ok_args:
        _finite_differences(result.arguments[i], i, args, hand, cots, fd_fn, rng_dir[i], tol,
                            independent, ref_dtype)

    _behaviour_checks(result, backward, call_backward, args, ok_args, hand, cots, ones, refs[-1],
                      tol, floor, rng_lin)
    if f is not None:
        _check_wrapped(result, f, forward, args, cots[0], hand[0], ok_args, tol, floor)

    result.passed = (all(a.passed for a in result.arguments) and not result.problems)
    return result


def _generators(key: jax.Array | None, n: int) -> list[np.random.Generator]:
    """``n`` independent NumPy generators seeded from ``key``'s data (``key(0)``'s for None).

    The check's random draws are test inputs, drawn on the host: a ``jax.random`` draw would
    compile a program for every new shape.
    """
    seed = [0, 0] if key is None else np.asarray(jax.random.key_data(key)).ravel().tolist()
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _normal_like(rng: np.random.Generator, o: Any) -> jax.Array:
    """Standard normals of ``o``'s shape and floating dtype."""
    return jnp.asarray(np.asarray(rng.standard_normal(jnp.shape(o)), dtype=jnp.result_type(o)))


def _cotangents(cotangent: Any, out: Any, rng: np.random.Generator) -> list[Any]:
    """The user's cotangent (if any), then random normals in the output's dtypes."""
    out_leaves, out_def = _tree.tree_flatten(out)
    cots: list[Any] = []
    if cotangent is not None:
        cotangent = _as_array_tree(cotangent, "cotangent")
        if str(_tree.tree_structure(cotangent)) != str(out_def):
            raise InputError(f"cotangent: structure {_tree.tree_structure(cotangent)} does not "
                             f"match the output's {out_def}")
        for c, o in zip(_tree.tree_leaves(cotangent), out_leaves, strict=True):
            if jnp.shape(c) != jnp.shape(o):
                raise InputError(f"cotangent: shape {jnp.shape(c)} does not match the output's "
                                 f"shape {jnp.shape(o)}")
        cots.append(_tree.tree_map(lambda c, o: c.astype(jnp.result_type(o)), cotangent, out))
    for _ in range(N_COTANGENTS):
        cots.append(_tree.tree_unflatten(out_def, [_normal_like(rng, o) for o in out_leaves]))
    return cots


def _check_structure(arg: ArgumentCheck, a: Any, g: Any) -> None:
    """The tree, shapes and dtypes of the gradient ``g`` of the argument ``a``."""
    if g is None:
        arg.problems.append("backward returned None for a floating-point argument")
    elif str(_tree.tree_structure(a)) != str(_tree.tree_structure(g)):
        arg.problems.append(f"gradient has tree structure {_tree.tree_structure(g)}, argument has "
                            f"{_tree.tree_structure(a)}")
    else:
        for (path, x), (_, y) in zip(leaves_with_paths(a), leaves_with_paths(g), strict=True):
            at = f" at {path}" if path else ""
            try:
                y_shape, y_dtype = tuple(jnp.shape(y)), jnp.result_type(y)
            except TypeError:
                arg.problems.append(f"gradient{at} is a {type(y).__name__}, not an array")
                continue
            if y_shape != tuple(jnp.shape(x)):
                arg.problems.append(
                    f"gradient{at} has shape {y_shape}, argument has shape {tuple(jnp.shape(x))}")
                arg.hints += shape_hints(np.shape(x), y_shape)
            elif y_dtype != jnp.result_type(x):
                arg.problems.append(
                    f"gradient{at} has dtype {y_dtype}, argument has dtype {jnp.result_type(x)}")
    if arg.problems:
        arg.passed = False


def _compiled_or_eager(fn: Callable[..., Any], *args: Any) -> Any:
    """``jax.jit(fn)(*args)``, or ``fn(*args)`` op by op where ``fn`` cannot be traced (a Python
    branch on a value); an error of ``fn`` itself is raised again by the eager call.

    Op by op, ``jax.vjp`` of a forward compiles one program per operation (and shape) of its
    linearized and transposed forms; compiled, the pullbacks of all cotangents are one program.
    """
    try:
        return jax.jit(fn)(*args)
    except Exception:
        return fn(*args)


def _references(forward: Callable[..., Any], args: tuple[Any, ...], diff: list[int],
                cots: list[Any], result: VJPCheck
                ) -> tuple[list[tuple[Any, ...]], Callable[..., Any], str]:
    """jax.vjp pullbacks (as float64 numpy) of every cotangent, the forward the finite
    differences use, and their dtype: float64 where the forward runs in float64. The pullbacks
    are one compiled program where the forward can be traced (:func:`_compiled_or_eager`); the
    finite differences run the forward as the caller does, op by op."""
    def to64(tree: Any) -> Any:
        return _tree.tree_map(
            lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)

    def pullbacks(a: tuple[Any, ...], cs: list[Any]) -> list[tuple[Any, ...]]:
        out, vjp_fn = jax.vjp(forward, *a)
        return [vjp_fn(_tree.tree_map(lambda c, o: c.astype(o.dtype), c, out)) for c in cs]

    def pull(a: tuple[Any, ...], cast: Callable[[Any], Any]) -> list[tuple[Any, ...]]:
        gs = _compiled_or_eager(pullbacks, a, [cast(c) for c in cots])
        return [tuple(_tree.tree_map(f64, g[i]) if i in diff else None for i in range(len(a)))
                for g in gs]

    try:
        with jax.enable_x64(True):
            refs = pull(to64(args), to64)

        def fd_fn(*a: Any) -> Any:
            with jax.enable_x64(True):
                return _tree.tree_map(f64, forward(*to64(_tree.tree_map(jnp.asarray, a))))

        return refs, fd_fn, "float64"
    except Exception as e:  # a forward that cannot run in float64: references in its own dtype
        result.notes.append(f"forward could not run in float64 ({_first_line(e)}); "
                            "jax.vjp and finite differences ran in the arguments' dtype")
        return (pull(args, lambda c: c), lambda *a: _tree.tree_map(f64, forward(*a)),
                result.dtype)


def _compare_argument(arg: ArgumentCheck, hands: list[Any], refs: list[Any], tol: Tolerances,
                      floor: float, args: tuple[Any, ...], out: Any, names: list[str]) -> None:
    """Errors of one argument's gradient against jax.vjp over every cotangent."""
    ref_scale = max((float(np.max(np.abs(r))) if r.size else 0.0)
                    for ref in refs for r in _tree.tree_leaves(ref))
    ref_scale = ref_scale if math.isfinite(ref_scale) else 0.0
    atol = tol.atol if tol.atol is not None else tol.rtol * ref_scale + floor
    arg.atol = atol
    worst_ratio, max_abs = -1.0, 0.0
    bad_any = False
    for k, (hand, ref) in enumerate(zip(hands, refs, strict=True)):
        for (path, h), (_, r) in zip(leaves_with_paths(hand), leaves_with_paths(ref), strict=True):
            h = f64(h)
            if h.size == 0:
                continue
            d = abs_diff(h, r)
            allowed = atol + tol.rtol * np.abs(np.nan_to_num(r))
            ratio = d / np.maximum(allowed, np.finfo(np.float64).tiny)
            j = int(np.argmax(ratio))
            max_abs = max(max_abs, float(np.max(d)))
            bad_any |= bool(np.any(d > allowed))
            if float(ratio.flat[j]) > worst_ratio:
                worst_ratio = float(ratio.flat[j])
                idx = np.unravel_index(j, h.shape)
                where = path + (f"[{', '.join(str(int(x)) for x in idx)}]" if h.ndim else "")
                arg.worst = (where or "(scalar)", float(h.flat[j]), float(r.flat[j]), k)
    arg.max_abs_err = max_abs
    arg.max_rel_err = max_abs / ref_scale if ref_scale > 0 else (0.0 if max_abs == 0 else math.inf)
    if bad_any:
        arg.passed = False
        arg.hints += value_hints(hands, refs, tol, atol, args, out, names)


# --- Finite differences, behaviour, the with_backward wiring --------------------------------


def _finite_differences(arg: ArgumentCheck, i: int, args: tuple[Any, ...], hand: list[Any],
                        cots: list[Any], fd_fn: Callable[..., Any], rng: np.random.Generator,
                        tol: Tolerances, independent: bool, fd_dtype: str) -> None:
    """<cot, (f(x + h v) - f(x - h v)) / 2h> vs <hand, v> along random v for argument i."""
    leaves, treedef = _tree.tree_flatten(args[i])
    x64 = [f64(x) for x in leaves]
    scale = max([1.0] + [float(np.max(np.abs(x))) for x in x64 if x.size])
    fd_eps = float(jnp.finfo(fd_dtype).eps)
    dtypes = [jnp.result_type(x) for x in leaves]
    worst, worst_abs, failed, inconclusive = 0.0, 0.0, False, False
    for d in range(N_DIRECTIONS):
        k = d % len(cots)
        if isinstance(hand[k], str):  # this cotangent made backward fail: reported elsewhere
            continue
        cot = [f64(c) for c in _tree.tree_leaves(cots[k])]
        g = [f64(x) for x in _tree.tree_leaves(hand[k][i])]
        v = [rng.standard_normal(x.shape) for x in x64]
        an = sum(float(np.sum(a * b)) for a, b in zip(g, v, strict=True))
        denom_an = sum(float(np.sum(np.abs(a * b))) for a, b in zip(g, v, strict=True))
        best, best_abs = math.inf, math.inf
        for shrink in (1.0, 1e-2, 1e-4):
            h = tol.eps * scale * shrink

            def at(s: float, h: float = h, v: list[np.ndarray] = v) -> list[np.ndarray]:
                moved = list(args)
                new: list[Any] = [x + s * h * vv for x, vv in zip(x64, v, strict=True)]
                if fd_dtype != "float64":  # the forward runs in the arguments' own dtype
                    new = [jnp.asarray(x.astype(dt)) for x, dt in zip(new, dtypes, strict=True)]
                moved[i] = _tree.tree_unflatten(treedef, new)
                return [np.asarray(o) for o in _tree.tree_leaves(fd_fn(*moved))]

            plus, minus = at(1.0), at(-1.0)
            fd = sum(float(np.sum(c * (p - m))) for c, p, m in zip(cot, plus, minus, strict=True)) / (2 * h)
            rounding = 8 * fd_eps * sum(float(np.sum(np.abs(c) * (np.abs(p) + np.abs(m))))
                                        for c, p, m in zip(cot, plus, minus, strict=True)) / (2 * h)
            denom = max(abs(fd), denom_an, 1e-300)
            err = abs(fd - an)
            rel = err / denom if math.isfinite(err) else math.inf
            best = min(best, rel)
            best_abs = min(best_abs, err)
            if err <= tol.fd_rtol * denom + rounding:
                best = min(best, tol.fd_rtol) if rel > tol.fd_rtol else best
                break
        else:
            if arg.passed and independent:
                inconclusive = True
            else:
                failed = True
        worst, worst_abs = max(worst, best), max(worst_abs, best_abs)
    arg.fd_rel_err, arg.fd_abs_err = worst, worst_abs
    if failed:
        if arg.passed:  # jax.vjp agreed (not independent) but the finite differences do not
            arg.problems.append(f"disagrees with finite differences (rel err {worst:.2e})")
        arg.passed = False
    elif inconclusive:
        arg.notes.append("finite differences disagree with both the hand-written gradient and "
                         "jax.vjp (which agree): a kink within the step of the inputs; "
                         "see the one-sided convention")


def _behaviour_checks(result: VJPCheck, backward: Callable[..., Any],
                      call_backward: Callable[..., Any], args: tuple[Any, ...], ok_args: list[int],
                      hand: list[Any], cots: list[Any], ones: Any, ones_ref: tuple[Any, ...],
                      tol: Tolerances, floor: float, rng: np.random.Generator) -> None:
    """Linear in the cotangent, zeros for a zero cotangent, the cotangent used, jit == no jit."""
    def close(x: Any, y: Any, scale_tree: Any) -> bool:
        leaves = zip(_tree.tree_leaves(x), _tree.tree_leaves(y), _tree.tree_leaves(scale_tree),
                     strict=True)
        return all(all_close(f64(a), f64(b), 4 * tol.rtol * float(np.max(np.abs(f64(s)))) + floor,
                             tol.rtol)
                   for a, b, s in leaves if np.size(a))

    failed = [h for h in hand if isinstance(h, str)]
    if failed:
        result.problems.append(f"with a random cotangent: {failed[0]}")
    g1, g2 = hand[-2], hand[-1]
    if not ok_args or isinstance(g1, str) or isinstance(g2, str):
        return
    a, b = (float(x) for x in rng.uniform(0.5, 1.5, 2))
    b = -b
    g12 = call_backward(_tree.tree_map(lambda x, y: a * x + b * y, cots[-2], cots[-1]))
    if isinstance(g12, str):
        result.problems.append(f"with a combined cotangent: {g12}")
        linear = False
    else:
        linear = all(close(g12[i], _tree.tree_map(lambda x, y: a * f64(x) + b * f64(y), g1[i], g2[i]),
                           _tree.tree_map(lambda x, y: np.abs(a * f64(x)) + np.abs(b * f64(y)),
                                          g1[i], g2[i]))
                     for i in ok_args)
        if not linear:
            result.problems.append(f"not linear in the cotangent: backward({a:.3g} c1 {b:+.3g} c2) "
                                   f"!= {a:.3g} backward(c1) {b:+.3g} backward(c2)")
    result.checks["linear in the cotangent"] = linear
    g0 = call_backward(_tree.tree_map(jnp.zeros_like, cots[-1]))
    if isinstance(g0, str):
        result.problems.append(f"with a zero cotangent: {g0}")
        zeros = False
    else:
        zeros = all(np.all(np.abs(f64(x)) <= floor) for i in ok_args for x in _tree.tree_leaves(g0[i]))
        if not zeros:
            result.problems.append("a zero cotangent does not give zero gradients: backward adds "
                                   "something that does not depend on the cotangent")
    result.checks["zero cotangent gives zeros"] = bool(zeros)
    nonzero = any(np.any(f64(x)) for i in ok_args for x in _tree.tree_leaves(g1[i]))
    if nonzero and all(close(g1[i], g2[i], g1[i]) for i in ok_args):
        result.hints.append("backward gives the same gradient for different cotangents: it "
                            "ignores its cotangent (multiply by it)")
    wrong = [i for i in ok_args if not result.arguments[i].passed]  # wrong values, right shapes
    g_ones = call_backward(ones) if wrong else "not needed"
    if not isinstance(g_ones, str) and all(close(g_ones[i], ones_ref[i], ones_ref[i]) for i in wrong):
        result.hints.append("backward agrees with jax.vjp for a cotangent of ones but not for "
                            "random cotangents: the cotangent is not (or wrongly) multiplied in")
    try:
        gj = jax.jit(backward)(*args, cots[0])
        jit_ok = all(close(gj[i], hand[0][i], hand[0][i]) for i in ok_args)
        if not jit_ok:
            result.problems.append("jax.jit(backward) disagrees with the eager backward "
                                   "(Python-side state, or a branch on traced values?)")
    except Exception as e:
        jit_ok = False
        result.problems.append(f"jax.jit(backward) fails: {_first_line(e)}")
    result.checks["jit == no jit"] = jit_ok


def _check_wrapped(result: VJPCheck, f: Callable[..., Any], forward: Callable[..., Any],
                   args: tuple[Any, ...], cot: Any, hand: Any, ok_args: list[int],
                   tol: Tolerances, floor: float) -> None:
    """A with_backward function: f's value is forward's, and jax.vjp(f) runs the backward."""
    try:
        out_f, vjp_f = jax.vjp(f, *args)
    except Exception as e:
        result.problems.append(f"f(*args) fails: {_first_line(e)}")
        result.checks["f == forward"] = False
        return
    out = forward(*args)
    val_ok = all(
        np.shape(x) == np.shape(y) and np.allclose(f64(x), f64(y), rtol=tol.rtol, atol=0.0)
        for x, y in zip(_tree.tree_leaves(out_f), _tree.tree_leaves(out), strict=True))
    result.checks["f == forward"] = bool(val_ok)
    if not val_ok:
        result.problems.append("f(*args) differs from f.forward(*args)")
    try:
        gf = vjp_f(cot)
        wired = all(
            np.allclose(f64(x), f64(y), rtol=tol.rtol, atol=floor)
            for i in ok_args
            for x, y in zip(_tree.tree_leaves(gf[i]), _tree.tree_leaves(hand[i]), strict=True))
    except Exception as e:
        result.problems.append(f"jax.vjp(f) fails: {_first_line(e)}")
        wired = False
    result.checks["jax.vjp(f) == backward"] = bool(wired)
    if not wired:
        result.problems.append("jax.vjp(f) does not give f.backward's gradients: f is not wired "
                               "to its backward")


def check_deriv(func: Callable[..., Any], x: Any, *, deriv: Callable[..., Any] | None = None,
                key: jax.Array | None = None, rtol: float | None = None) -> VJPCheck:
    """Check an elementwise function's analytic derivative (``func.deriv`` by default).

    The derivative is the backward ``c * deriv(x)``, checked with :func:`check_vjp` at ``x``.
    ``jaxnn.foundations.chain_deriv`` trusts every link's ``.deriv``;
    ``jaxnn.foundations.check_chain`` runs this on each link.

    Raises:
        TypeError: ``func`` is not callable or has no ``.deriv`` (and none is given).
    """
    if not callable(func):
        raise InputTypeError(f"func: expected a callable, got {type(func).__name__}")
    d = deriv if deriv is not None else getattr(func, "deriv", None)
    if not callable(d):
        raise InputTypeError(f"func: {getattr(func, '__name__', func)!r} has no .deriv to check")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise InputTypeError(f"x: expected floating-point values, got {x.dtype}")
    name = getattr(func, "__name__", "func")
    return check_vjp(func, lambda x, c: (c * d(x),), (x,), key=key, rtol=rtol,
                     name=f"{name}.deriv")
