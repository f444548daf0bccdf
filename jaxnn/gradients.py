"""One registry of every hand-written backward pass in jaxnn (and the user's), checked by ``check_vjp``.

Each module that defines a hand-written backward registers it once, right below the code, with
:func:`register`; :func:`registry` returns them all; :func:`check_entry` runs
:func:`jaxnn.checking.check_vjp` on one at its example arguments (what ``jaxnn gradcheck`` and
the tests run). What an entry is and how it is checked: docs/explanation/gradient-proof.md.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxnn import compilation_cache
from jaxnn.checking import VJPCheck, check_vjp, tolerances_for
from jaxnn.errors import InputError, InputTypeError

Args = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Entry:
    """A hand-written backward pass, registered for checking.

    Attributes:
        name: unique name, e.g. ``"sigmoid"`` or ``"dense"``.
        forward: ``forward(*args) -> array``.
        backward: ``backward(*args, cotangent) -> tuple`` with one gradient per
            argument (same shapes and dtypes as the arguments).
        example: ``example(key, dtype) -> tuple`` of realistic example arguments.
        kink: a short note on how a nonsmooth point is handled, if any.
        module: the module that registered it (set by :func:`register`).
    """

    name: str
    forward: Callable[..., jax.Array]
    backward: Callable[..., tuple[Any, ...]]
    example: Callable[[jax.Array, Any], Args]
    kink: str | None = None
    module: str | None = None


_REGISTRY: dict[str, Entry] = {}

# Modules whose import registers entries. Imported by `registry()`, not here, so that they may
# themselves import `register` from here without a cycle.
_PROVIDERS: tuple[str, ...] = (
    "jaxnn.foundations",
    "jaxnn.layers",
    "jaxnn.losses",
    "jaxnn.models",
)


def register(entry: Any, *, name: str | None = None, example: Any = None,
             kink: str | None = None) -> Entry:
    """Add ``entry`` to the registry; an entry of the same name is replaced.

    Args:
        entry: an :class:`Entry`, or a function made by :func:`jaxnn.with_backward`
            (then ``example`` is required and ``name`` defaults to its ``__name__``).
        name: the entry's name (for a ``with_backward`` function).
        example: ``example(key, dtype) -> args``, or a fixed tuple of arguments.
        kink: how a nonsmooth point is handled, if any.
    Returns:
        The registered :class:`Entry`.
    Raises:
        TypeError: ``entry`` is neither an Entry nor a ``with_backward`` function, or
            ``example`` is missing or not callable / a tuple.
    """
    caller = sys._getframe(1).f_globals.get("__name__")
    if isinstance(entry, Entry):
        if name is not None or example is not None:
            raise InputTypeError("register: name= and example= are for a with_backward function, "
                            "not an Entry")
    else:
        fwd, bwd = getattr(entry, "forward", None), getattr(entry, "backward", None)
        if not (callable(entry) and callable(fwd) and callable(bwd)):
            raise InputTypeError(f"entry: expected an Entry or a function made by jaxnn.with_backward, "
                            f"got {type(entry).__name__}")
        if example is None:
            raise InputTypeError("example: required to register a with_backward function: "
                            "example(key, dtype) -> args, or a tuple of arguments")
        if isinstance(example, tuple | list):
            fixed = tuple(example)
            example_fn: Callable[[jax.Array, Any], Args] = lambda key, dtype: fixed
        elif callable(example):
            example_fn = example
        else:
            raise InputTypeError(f"example: expected example(key, dtype) -> args or a tuple, got "
                            f"{type(example).__name__}")
        entry = Entry(str(name or getattr(entry, "__name__", "forward")), fwd, bwd, example_fn, kink)
    if not isinstance(entry.name, str) or not entry.name:
        raise InputError(f"name: expected a non-empty string, got {entry.name!r}")
    if entry.module is None and isinstance(caller, str):
        entry = dataclasses.replace(entry, module=caller)
    _REGISTRY[entry.name] = entry  # a re-registered name keeps its place
    return entry


def unregister(name: str) -> None:
    """Remove the entry called ``name`` (no error if there is none)."""
    _REGISTRY.pop(name, None)


def registry() -> tuple[Entry, ...]:
    """Every registered hand-written backward, in registration order."""
    for module in _PROVIDERS:
        importlib.import_module(module)
    return tuple(_REGISTRY.values())


def get(name: str) -> Entry:
    """The registered entry called ``name``.

    Raises:
        ValueError: if there is none; the message lists the valid names.
    """
    entries = {e.name: e for e in registry()}
    if name not in entries:
        raise InputError(f"name: unknown gradient entry {name!r}; valid: {sorted(entries)}")
    return entries[name]


# --- The checker ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """How one entry's hand-written backward compares with its references.

    Attributes:
        name: the entry's name.
        max_abs_err: max |backward - jax.vjp| over all gradient elements and cotangents.
        max_rel_err: ``max_abs_err`` divided by the largest |jax.vjp| gradient element.
        fd_rel_err: worst relative error of a directional derivative
            <cotangent, J v> by central differences vs <backward, v>.
        passed: every check of :func:`jaxnn.checking.check_vjp` passed.
        dtype: the dtype the check ran in.
        report: the checker's report (what is wrong, with hints).
    """

    name: str
    max_abs_err: float
    max_rel_err: float
    fd_rel_err: float
    passed: bool
    dtype: str
    report: str = ""

    def as_json(self) -> dict[str, Any]:
        """The fields as a dict; the report only for a failed check."""
        d = dataclasses.asdict(self)
        if self.passed:
            del d["report"]
        return d


# Default tolerances by dtype: (rtol vs jax.vjp, rtol vs finite differences); see jaxnn.checking.
TOLERANCES: dict[str, tuple[float, float]] = {
    d: (tolerances_for(d).rtol, tolerances_for(d).fd_rtol) for d in ("float64", "float32")
}


def _err(x: float) -> float:
    return math.inf if math.isnan(x) else x


def _errors(r: VJPCheck) -> tuple[float, float, float]:
    """(max_abs_err, max_rel_err, fd_rel_err) of a check; infinite for a structural failure."""
    if r.problems or any(a.problems for a in r.arguments):
        return math.inf, math.inf, math.inf
    return _err(r.max_abs_err), _err(r.max_rel_err), _err(r.fd_rel_err)


def check_entry(entry: Entry, *, dtype: Any = jnp.float64, seed: int = 0) -> CheckResult:
    """Check one entry at its example arguments in ``dtype`` (float64 by default).

    float64 runs inside ``jax.enable_x64(True)``, restored on exit.
    """
    dtype_name = jnp.dtype(dtype).name
    if dtype_name not in TOLERANCES:
        raise InputError(f"dtype: expected float32 or float64, got {dtype_name!r}")
    with compilation_cache.compiling(), jax.enable_x64(dtype_name == "float64"):  # as check_vjp
        k_ex, k_cmp = jax.random.split(jax.random.key(seed))
        args = entry.example(k_ex, jnp.dtype(dtype_name))
        r = check_vjp(entry.forward, entry.backward, tuple(args), key=k_cmp, name=entry.name)
    return CheckResult(entry.name, *_errors(r), r.passed, dtype_name, r.report())


def check_all(*, dtype: Any = jnp.float64, seed: int = 0,
              entries: Sequence[Entry] | None = None) -> list[CheckResult]:
    """Check every registered entry (or ``entries``); see :func:`check_entry`."""
    return [check_entry(e, dtype=dtype, seed=seed)
            for e in (registry() if entries is None else entries)]
