"""``jaxnn gradcheck``: prove hand-written backward passes against jax.vjp and finite differences.

Without ``--module`` it checks every entry of :func:`jaxnn.gradients.registry`. With
``--module mypkg.layers`` it imports the user's module and checks the hand-written backwards
that module registers (``jaxnn.gradients.register(f, example=...)``); ``--module
mypkg.layers:softplus,dense`` checks only those names (registered names, or attributes of the
module that are an ``Entry`` or a registered ``with_backward`` function). Exit status 1 if
any check fails, 2 if a module cannot be imported or registers nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from jaxnn.cli.train import _seed
from jaxnn.errors import EXIT_GRADCHECK_FAILED, EXIT_OK, InputError


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "gradcheck",
        help="check hand-written backward passes against jax.vjp and finite differences",
        description=(
            "For every entry of jaxnn.gradients.registry() (or of --module), run "
            "jaxnn.check_vjp: pull random cotangents back through the hand-written backward "
            "and through jax.vjp (float64), compare directional derivatives with central "
            "finite differences, and check shapes, dtypes, linearity and jit. Exit status 1 "
            "if any entry fails, 2 if a --module cannot be imported."
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64",
        help="precision of the check (default float64; float32 uses looser tolerances)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the example arguments")
    p.add_argument(
        "--module", action="append", metavar="MODULE[:NAME,...]",
        help="import MODULE (from the current directory or sys.path) and check only the "
             "hand-written backwards it registers, or only NAME,...; repeatable",
    )
    return p


def _import(module: str) -> Any:
    if os.getcwd() not in sys.path:  # `jaxnn` is a console script: import as `python -m` would
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except Exception as e:  # the user's module: any failure on import is bad input
        raise InputError(f"--module: cannot import {module!r}: {type(e).__name__}: {e}") from e


def module_entries(spec: str) -> list[Any]:
    """The registry entries ``--module spec`` names (``module`` or ``module:name,name``).

    Raises:
        ValueError: the module cannot be imported, registers nothing, or lacks a name.
    """
    from jaxnn.gradients import Entry, registry

    module, _, names = spec.partition(":")
    if not module:
        raise InputError(f"--module: expected MODULE or MODULE:NAME,..., got {spec!r}")
    before = {e.name: e for e in registry()}  # jaxnn's own providers first
    mod = _import(module)
    entries = {e.name: e for e in registry()}
    if not names:
        found = [e for e in entries.values()
                 if e.module == module or (e.module or "").startswith(module + ".")
                 or before.get(e.name) is not e]
        if not found:
            raise InputError(f"--module: {module!r} registers no hand-written backward "
                             "(jaxnn.gradients.register(f, example=...))")
        return found
    found = []
    for name in filter(None, names.split(",")):
        attr = getattr(mod, name, None)
        if name in entries:
            found.append(entries[name])
        elif isinstance(attr, Entry):
            found.append(attr)
        elif callable(getattr(attr, "forward", None)):
            match = [e for e in entries.values() if e.forward is attr.forward]  # type: ignore[union-attr]
            if not match:
                raise InputError(f"--module: {module}.{name} has no example arguments: register "
                                 "it with jaxnn.gradients.register(f, example=...)")
            found.append(match[0])
        else:
            raise InputError(f"--module: {module!r} has no registered entry or with_backward "
                             f"function named {name!r}")
    return found


def run(args: argparse.Namespace) -> int:
    from jaxnn.gradients import TOLERANCES, check_all

    entries = None
    if args.module:
        entries = [e for spec in args.module for e in module_entries(spec)]
    results = check_all(dtype=args.dtype, seed=args.seed, entries=entries)
    passed = all(r.passed for r in results)
    if args.json:
        print(json.dumps({
            "passed": passed,
            "dtype": args.dtype,
            "modules": args.module or [],
            "tolerances": {"max_rel_err": TOLERANCES[args.dtype][0],
                           "fd_rel_err": TOLERANCES[args.dtype][1]},
            "entries": [
                {"name": r.name, "max_abs_err": _num(r.max_abs_err),
                 "max_rel_err": _num(r.max_rel_err), "fd_rel_err": _num(r.fd_rel_err),
                 "passed": r.passed, **({} if r.passed else {"report": r.report})}
                for r in results
            ],
        }))
    else:
        print(format_table(results))
        tol_ad, tol_fd = TOLERANCES[args.dtype]
        n_ok = sum(r.passed for r in results)
        print(f"\n{n_ok}/{len(results)} hand-written backward passes agree with jax.vjp "
              f"(rtol {tol_ad:g}) and finite differences (rel <= {tol_fd:g}) in {args.dtype}.")
        for r in results:
            if not r.passed:
                print("\n" + r.report)
    return EXIT_OK if passed else EXIT_GRADCHECK_FAILED


def _num(x: float) -> float | str:
    return x if x == x and abs(x) != float("inf") else str(x)  # JSON has no inf/NaN


def format_table(results: list[Any]) -> str:
    """A fixed-width table of check results."""
    width = max([len(r.name) for r in results] + [5])
    lines = [f"{'entry':<{width}}  {'max_abs_err':>11}  {'max_rel_err':>11}  "
             f"{'fd_rel_err':>10}  ok"]
    lines.append("-" * len(lines[0]))
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.max_abs_err:11.2e}  {r.max_rel_err:11.2e}  "
                     f"{r.fd_rel_err:10.2e}  {'yes' if r.passed else 'NO'}")
    return "\n".join(lines)
