"""The checks of what a user passes to :func:`jaxnn.fit` and :func:`jaxnn.fit_many`, one per kind of argument.

Every check raises ``ValueError`` or ``TypeError`` naming the argument (``data[1]: contains NaN
...``, ``state: its optimizer state comes from another optimizer ...``) before anything is
compiled; :func:`check_model` traces the model once (shapes only) to refuse a loss that mixes
the minibatch's rows or an optimizer whose update is malformed.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from jaxnn.errors import InputError, InputTypeError
from jaxnn.names import finite_float as finite_float  # (the checks of numbers live with the names:
from jaxnn.names import positive_int as positive_int  # JAX-free, for the CLI's checks before JAX)

MAX_STEPS = 2**31 - 1  # the step counter is int32


def check_run(loss_fn: Any, optimizer: Any, val_fn: Any, batch_size: Any, epochs: Any, steps: Any,
              shuffle: Any) -> None:
    """The checks :func:`jaxnn.fit` and :func:`jaxnn.fit_many` share: the callables, the batch size,
    exactly one of ``epochs``/``steps`` (their values are checked by each) and ``shuffle``."""
    if not callable(loss_fn):
        raise InputTypeError("loss_fn: expected a callable loss_fn(params, *batch), got "
                             f"{type(loss_fn).__name__}")
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise InputTypeError("optimizer: expected an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
                             f"got {optimizer!r}")
    if val_fn is not None and not callable(val_fn):
        raise InputTypeError(f"val_fn: expected a callable, got {type(val_fn).__name__}")
    positive_int("batch_size", batch_size)
    if (epochs is None) == (steps is None):
        raise InputError(f"epochs/steps: give exactly one of them, got epochs={epochs!r}, steps={steps!r}")
    if not isinstance(shuffle, bool | np.bool_):
        raise InputTypeError(f"shuffle: expected True or False, got {shuffle!r}")


def float_dtype(params: Any) -> Any:
    """The floating dtype of ``params`` (the first floating leaf's), which the data is cast to.

    Raises TypeError naming the first leaf that is not floating: every leaf is trained.
    """
    first = None
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dt = np.asarray(leaf).dtype if not hasattr(leaf, "dtype") else leaf.dtype
        if not jnp.issubdtype(dt, jnp.floating):
            raise InputTypeError(f"params{jax.tree_util.keystr(path)}: expected a floating-point array, got "
                                 f"{dt}; every leaf of params is trained (pass integer settings through "
                                 "loss_args or a closure)")
        first = jnp.dtype(dt) if first is None else first
    if first is None:
        raise InputError("params: expected a pytree with at least one floating-point array")
    return first


def as_data(name: str, data: Any, dtype: Any) -> tuple[np.ndarray, ...]:
    """A tuple of host arrays sharing their leading axis; floating ones cast to ``dtype``, checked finite."""
    if not isinstance(data, tuple | list) or len(data) == 0:
        raise InputTypeError(f"{name}: expected a tuple of arrays such as (X, Y), got {type(data).__name__}")
    out = []
    for i, a in enumerate(data):
        arr = real_array(f"{name}[{i}]", a)
        if arr.ndim == 0:
            raise InputError(f"{name}[{i}]: expected an array with a leading axis of rows, got a scalar")
        if np.issubdtype(arr.dtype, np.floating):
            arr = finite_cast(f"{name}[{i}]", arr, dtype)
        out.append(arr)
    n = out[0].shape[0]
    if n < 1:
        raise InputError(f"{name}: expected at least one row, got 0")
    for i, a in enumerate(out):
        if a.shape[0] != n:
            raise InputError(f"{name}: arrays have different numbers of rows: {name}[0] has {n}, "
                             f"{name}[{i}] has {a.shape[0]}")
    return tuple(out)


def to_device(x: Any) -> Array:
    """A parameter leaf on the device, as ``jnp.asarray`` would give it, without compiling a copy."""
    return x if isinstance(x, jax.Array) else jax.device_put(np.asarray(x) if not np.isscalar(x) else x)


def pad_rows(a: np.ndarray, rows: int, fill: Any = None) -> np.ndarray:
    """``a`` with rows appended up to ``rows``: copies of row 0, or ``fill``."""
    extra = rows - a.shape[0]
    if extra == 0:
        return a
    pad = np.repeat(a[:1], extra, axis=0) if fill is None else np.full((extra, *a.shape[1:]), fill, a.dtype)
    return np.concatenate([a, pad])


def real_array(name: str, a: Any) -> np.ndarray:
    """``a`` as a host array of real numbers (or booleans); errors name ``name``."""
    try:
        arr = np.asarray(a)
    except ValueError as e:
        raise InputError(f"{name}: expected a rectangular array ({e})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) \
            or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputTypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr


def finite_cast(name: str, arr: np.ndarray, dtype: Any) -> np.ndarray:
    """``arr`` checked finite and cast to ``dtype`` -- a copy only where the dtype changes -- refusing
    values the cast overflows; errors name ``name``."""
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        where = f"row {bad[0]}, column {bad[1]}" if arr.ndim == 2 else f"index {tuple(bad)}"
        raise InputError(f"{name}: contains NaN or inf" + (f" (first at {where})" if arr.ndim else ""))
    if arr.dtype == dtype:
        return arr
    with np.errstate(over="ignore"):
        cast = arr.astype(dtype)
    if not np.all(np.isfinite(cast)):
        raise InputError(f"{name}: values exceed the range of {np.dtype(dtype).name} "
                         f"(max {np.finfo(dtype).max:.3g}); rescale the data or use float64")
    return cast


def as_loss_args(loss_args: Any, dtype: Any) -> tuple[Any, ...]:
    """``loss_args`` as a tuple of finite host arrays: floating values in the params' dtype."""
    if not isinstance(loss_args, tuple | list):
        raise InputTypeError("loss_args: expected a tuple of arrays or numbers, "
                             f"got {type(loss_args).__name__}")
    out = []
    for i, leaf in enumerate(loss_args):
        arr = real_array(f"loss_args[{i}]", leaf)
        if np.issubdtype(arr.dtype, np.floating):
            arr = finite_cast(f"loss_args[{i}]", arr, dtype)
        out.append(arr)
    return tuple(out)


def as_key(key: Any) -> Array:
    if key is None:
        return jax.random.key(0)
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise InputError(f"key: expected one key, got an array of keys of shape {key.shape}")
        return key
    raise InputTypeError(f"key: expected a typed PRNG key (jax.random.key(seed)), got {type(key).__name__}")


def is_x64(dtype: Any) -> bool:
    return jnp.dtype(dtype).itemsize == 8


def x64_context(dtype: Any) -> contextlib.AbstractContextManager[Any]:
    """``jax.enable_x64()`` for a 64-bit ``dtype`` (``"float64"``, ``np.float64``); nothing otherwise."""
    return jax.enable_x64(True) if is_x64(dtype) else contextlib.nullcontext()


def describe(tree: Any) -> list[tuple[str, tuple[int, ...], str]]:
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(p), tuple(jnp.shape(x)), str(jnp.result_type(x))) for p, x in paths]


def same_layout(name: str, got: Any, want: Any) -> None:
    """Raise ValueError naming the first difference of structure, shape or dtype of two pytrees."""
    gs, ws = jax.tree_util.tree_structure(got), jax.tree_util.tree_structure(want)
    if str(gs) != str(ws):
        raise InputError(f"state: its {name} have another structure than this run's: {gs} vs {ws}")
    for (path, gshape, gdt), (_, wshape, wdt) in zip(describe(got), describe(want), strict=True):
        if gshape != wshape or gdt != wdt:
            raise InputError(f"state: {name}{path} is {gdt}{list(gshape)}, "
                             f"this run needs {wdt}{list(wshape)}")


@functools.lru_cache(maxsize=64)
def _opt_state_shapes(optimizer: Any, treedef: Any, avals: tuple[Any, ...]) -> Any:
    like = jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in avals])
    return jax.eval_shape(optimizer.init, like)


def opt_state_shapes(optimizer: optax.GradientTransformation, params: Any) -> Any:
    """``jax.eval_shape(optimizer.init, params)``, traced once per optimizer and parameter shapes."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    avals = tuple((tuple(np.shape(x)), np.dtype(jnp.result_type(x))) for x in leaves)
    try:
        return _opt_state_shapes(optimizer, treedef, avals)
    except TypeError:  # an unhashable optimizer
        return jax.eval_shape(optimizer.init, params)


def children(x: Any) -> list[tuple[str, Any]]:
    """The pytree children of ``x`` one level down, as (key path like ``[0]`` or ``.mu``, child)."""
    pairs = jax.tree_util.tree_flatten_with_path(x, is_leaf=lambda y: y is not x)[0]
    return [(jax.tree_util.keystr(k), c) for k, c in pairs if k]


def one_level(x: Any) -> str:
    """What kind of pytree node ``x`` is (its type and keys, not its children's): equal for equal kinds."""
    return str(jax.tree_util.tree_structure(x, is_leaf=lambda y: y is not x))


def outline(x: Any) -> str:
    """An optimizer state in words, from its pytree structure: ``ScaleByAdamState(count, mu, nu)``
    for a named tuple (an optax transformation's state and its fields), ``(..., ...)`` for a chain."""
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return f"{type(x).__name__}({', '.join(x._fields)})"
    if isinstance(x, tuple | list):
        inner = ", ".join(outline(c) for c in x)
        return f"({inner})" if isinstance(x, tuple) else f"[{inner}]"
    if isinstance(x, dict):
        return "{" + ", ".join(repr(k) for k in x) + "}"
    if x is None:
        return "None"
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"{jnp.dtype(x.dtype).name}{list(x.shape)}"
    return type(x).__name__


def state_difference(got: Any, want: Any) -> str:
    """Where two optimizer states first differ in structure, and what each holds there."""
    where, g, w = "", got, want
    while one_level(g) == one_level(w):
        pairs = [(k, a, b) for (k, a), (_, b) in zip(children(g), children(w), strict=True)
                 if str(jax.tree_util.tree_structure(a)) != str(jax.tree_util.tree_structure(b))]
        if not pairs:  # (equal structures: no difference to name)
            break
        k, g, w = pairs[0]
        where += k
    text = f"the saved state is {outline(got)}, this run's optimizer makes {outline(want)}"
    if where:
        text += f"; they differ at opt_state{where}: {outline(g)} vs {outline(w)}"
    return text


def check_model(loss_fn: Any, optimizer: Any, state: Any, data: tuple[Any, ...],
                loss_args: tuple[Any, ...], *, pass_weights: bool) -> None:
    """Refuse, naming the argument, an optimizer whose update is not ``(updates, state)`` shaped like
    the parameters, and a loss that mixes the minibatch's rows.

    The rows check traces ``loss_fn`` (shapes only, nothing runs) on a minibatch of a prime number
    of rows ``P`` that no other axis has: an intermediate with two axes of ``P`` is a (B, B) array
    -- almost always targets (n,) broadcast against predictions (n, 1) -- whose row sums still pass
    the (B,) shape check while minimising a different objective.
    """
    params, opt_state = state.params, state.opt_state
    like = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), params)
    try:
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            out = jax.eval_shape(optimizer.update, like, opt_state, like)
    except Exception as e:
        raise InputTypeError("optimizer: its update(grads, state, params) fails: "
                             f"{type(e).__name__}: {e}") from e
    want: Any = jax.tree_util.tree_structure(like)
    if not (isinstance(out, tuple) and len(out) == 2 and jax.tree_util.tree_structure(out[0]) == want):
        raise InputTypeError("optimizer: update(grads, state, params) must return (updates, new_state) with "
                        f"updates shaped like params, got {type(out).__name__} "
                        f"{jax.tree_util.tree_structure(out)}")
    dims = {d for x in (*jax.tree_util.tree_leaves(params), *data, *jax.tree_util.tree_leaves(loss_args))
            for d in jnp.shape(x)}
    rows = next(p for p in (1009, 2003, 4001, 8009, 16001, 32003, 65521, 131071) if p not in dims)
    batch = [jax.ShapeDtypeStruct((rows, *jnp.shape(a)[1:]), jnp.result_type(a)) for a in data]
    extra = (jax.ShapeDtypeStruct((rows,), float_dtype(params)),) if pass_weights else ()
    jaxpr = jax.make_jaxpr(lambda p, *b: loss_fn(p, *b, *loss_args, *extra))(params, *batch)
    for shape in intermediate_shapes(jaxpr.jaxpr):
        if sum(d == rows for d in shape) >= 2:
            raise InputError(
                "loss_fn: mixes the minibatch's rows -- for a minibatch of B rows it builds a (B, B) "
                f"array (shape {tuple('B' if d == rows else d for d in shape)}); usually targets of shape "
                "(n,) broadcast against predictions of shape (n, 1): give Y the predictions' shape "
                "(Y.reshape(-1, 1)) or flatten the predictions")


def intermediate_shapes(jaxpr: Any) -> Any:
    """Every output shape of every equation of ``jaxpr`` and of the jaxprs inside it."""
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            yield tuple(getattr(v.aval, "shape", ()))
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from intermediate_shapes(inner)
