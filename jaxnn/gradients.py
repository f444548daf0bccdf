"""One registry of every hand-written backward pass in jaxnn, and the checker that proves them.

Each module that defines a hand-written backward registers it once, right
below the code, with :func:`register`. :func:`registry` returns them all.

An :class:`Entry` is a hand-written vector-Jacobian product (VJP):

* ``forward(*args) -> out``
* ``backward(*args, cotangent) -> tuple`` of one gradient per argument, each with
  the shape of that argument: ``sum(cotangent * d out / d arg)``.
* ``example(key, dtype) -> args``: realistic random arguments for the check.

:func:`check_entry` compares ``backward`` with ``jax.vjp`` of ``forward`` (the
independent reference) and with central finite differences along a random
direction. It is what ``jaxnn gradcheck`` runs and what the tests assert.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Args = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Entry:
    """A hand-written backward pass, registered for checking.

    Attributes:
        name: unique name, e.g. ``"sigmoid"`` or ``"dense"``.
        forward: ``forward(*args) -> array``.
        backward: ``backward(*args, cotangent) -> tuple`` with one gradient per
            argument (same shapes as the arguments).
        example: ``example(key, dtype) -> tuple`` of realistic example arguments.
        kink: a short note on how a nonsmooth point is handled, if any.
    """

    name: str
    forward: Callable[..., jax.Array]
    backward: Callable[..., tuple[Any, ...]]
    example: Callable[[jax.Array, Any], Args]
    kink: str | None = None


_REGISTRY: dict[str, Entry] = {}

# Modules whose import registers entries. Imported lazily by `registry()` so that
# they may themselves import `register` from here without a cycle.
_PROVIDERS: tuple[str, ...] = (
    "jaxnn.foundations",
    "jaxnn.layers",
    "jaxnn.losses",
    "jaxnn.models",
)


def register(entry: Entry) -> Entry:
    """Add ``entry`` to the registry. Names are unique.

    Raises:
        ValueError: if an entry of that name is already registered.
    """
    if entry.name in _REGISTRY and _REGISTRY[entry.name] is not entry:
        raise ValueError(f"register: an entry named {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def registry() -> tuple[Entry, ...]:
    """Every registered hand-written backward, in registration order."""
    for module in _PROVIDERS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:  # a provider not written yet
            if e.name != module:
                raise
    return tuple(_REGISTRY.values())


def get(name: str) -> Entry:
    """The registered entry called ``name``.

    Raises:
        ValueError: if there is none; the message lists the valid names.
    """
    entries = {e.name: e for e in registry()}
    if name not in entries:
        raise ValueError(f"name: unknown gradient entry {name!r}; valid: {sorted(entries)}")
    return entries[name]


# --- The checker ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """How one entry's hand-written backward compares with its references.

    Attributes:
        name: the entry's name.
        max_abs_err: max |backward - jax.vjp| over all gradient elements.
        max_rel_err: ``max_abs_err`` divided by max(|jax.vjp|, tiny).
        fd_rel_err: relative error of the directional derivative
            <cotangent, J v> by central differences vs <backward, v>.
        passed: both errors within the tolerances of the dtype.
        dtype: the dtype the check ran in.
    """

    name: str
    max_abs_err: float
    max_rel_err: float
    fd_rel_err: float
    passed: bool
    dtype: str

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Tolerances on the relative error, by dtype: (vs jax.vjp, vs finite differences).
TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-10, 1e-6),
    "float32": (1e-5, 5e-2),
}


def _max_abs(tree: Any) -> float:
    leaves = jax.tree_util.tree_leaves(tree)
    return max((float(jnp.max(jnp.abs(x))) if x.size else 0.0) for x in leaves)


def _vdot(a: Any, b: Any) -> jax.Array:
    pairs = zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    return sum(jnp.vdot(x, y) for x, y in pairs)  # type: ignore[return-value]


def _differentiable(args: Args) -> list[int]:
    """Indices of the arguments that are floating point (integer labels have no gradient)."""
    return [
        i
        for i, a in enumerate(args)
        if all(jnp.issubdtype(x.dtype, jnp.floating) for x in jax.tree_util.tree_leaves(a))
    ]


def compare(
    entry: Entry,
    args: Sequence[Any],
    cotangent: Any | None = None,
    *,
    key: jax.Array | None = None,
    eps: float | None = None,
) -> tuple[float, float, float]:
    """Errors of ``entry.backward`` at ``args``: (max_abs_err, max_rel_err, fd_rel_err).

    The cotangent (random normal if not given, drawn from ``key``) is pulled back
    through ``entry.backward`` and through ``jax.vjp(entry.forward)``. Integer
    arguments (class labels) are not differentiated.
    """
    args = tuple(args)
    key = jax.random.key(0) if key is None else key
    k_cot, k_dir = jax.random.split(key)
    out, vjp_fn = jax.vjp(entry.forward, *args)
    if cotangent is None:
        cotangent = jax.random.normal(k_cot, jnp.shape(out), jnp.result_type(out))
    manual = entry.backward(*args, cotangent)
    auto = vjp_fn(cotangent)
    if len(manual) != len(args):
        raise ValueError(
            f"{entry.name}: backward returned {len(manual)} gradients for {len(args)} arguments"
        )
    diff_idx = _differentiable(args)
    man = [manual[i] for i in diff_idx]
    aut = [auto[i] for i in diff_idx]
    for i, m, a in zip(diff_idx, man, aut, strict=True):
        if str(jax.tree_util.tree_structure(m)) != str(jax.tree_util.tree_structure(a)) or any(
            jnp.shape(x) != jnp.shape(y)
            for x, y in zip(jax.tree_util.tree_leaves(m), jax.tree_util.tree_leaves(a), strict=True)
        ):
            raise ValueError(f"{entry.name}: gradient {i} has the wrong structure or shape")
    abs_err = _max_abs(jax.tree_util.tree_map(lambda m, a: m - a, man, aut))
    scale = max(_max_abs(aut), float(np.finfo(np.float32).tiny))
    rel_err = abs_err / scale

    # Finite differences along a random direction v in the differentiable arguments:
    # <cot, (f(x + eps v) - f(x - eps v)) / 2 eps>  vs  <backward, v>.
    dtype = jnp.result_type(out)
    if eps is None:
        eps = 1e-6 if dtype == jnp.float64 else 1e-2
    leaves, treedef = jax.tree_util.tree_flatten([args[i] for i in diff_idx])
    dir_keys = jax.random.split(k_dir, max(len(leaves), 1))
    v = jax.tree_util.tree_unflatten(
        treedef,
        [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(dir_keys, leaves, strict=False)]
    )

    def shifted(sign: float) -> jax.Array:
        moved = list(args)
        for j, i in enumerate(diff_idx):
            moved[i] = jax.tree_util.tree_map(lambda x, d: x + sign * eps * d, args[i], v[j])
        return entry.forward(*moved)

    fd = _vdot(cotangent, (shifted(1.0) - shifted(-1.0)) / (2 * eps))
    an = _vdot(man, v)
    fd_rel = float(jnp.abs(fd - an) / jnp.maximum(jnp.maximum(jnp.abs(fd), jnp.abs(an)), 1.0))
    return abs_err, rel_err, fd_rel


def check_entry(entry: Entry, *, dtype: Any = jnp.float64, seed: int = 0) -> CheckResult:
    """Check one entry at its example arguments in ``dtype`` (float64 by default).

    float64 runs inside ``jax.enable_x64()``, restored on exit.
    """
    dtype_name = jnp.dtype(dtype).name
    if dtype_name not in TOLERANCES:
        raise ValueError(f"dtype: expected float32 or float64, got {dtype_name!r}")
    with jax.enable_x64(dtype_name == "float64"):
        key = jax.random.key(seed)
        k_ex, k_cmp = jax.random.split(key)
        args = entry.example(k_ex, jnp.dtype(dtype_name))
        abs_err, rel_err, fd_rel = compare(entry, args, key=k_cmp)
    tol_ad, tol_fd = TOLERANCES[dtype_name]
    finite = all(math.isfinite(x) for x in (abs_err, rel_err, fd_rel))
    passed = finite and rel_err <= tol_ad and fd_rel <= tol_fd
    return CheckResult(entry.name, abs_err, rel_err, fd_rel, passed, dtype_name)


def check_all(*, dtype: Any = jnp.float64, seed: int = 0) -> list[CheckResult]:
    """Check every registered entry; see :func:`check_entry`."""
    return [check_entry(e, dtype=dtype, seed=seed) for e in registry()]
