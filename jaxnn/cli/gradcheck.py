"""``jaxnn gradcheck``: prove every hand-written backward against jax.vjp and finite differences."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jaxnn.cli.train import _seed
from jaxnn.errors import EXIT_GRADCHECK_FAILED, EXIT_OK


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "gradcheck",
        help="check every hand-written backward against jax.vjp and finite differences",
        description=(
            "For every entry of jaxnn.gradients.registry(), pull a random cotangent back "
            "through the hand-written backward and through jax.vjp (float64), and compare a "
            "random directional derivative with central finite differences. Exit status 1 "
            "if any entry fails."
        ),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64",
        help="precision of the check (default float64; float32 uses looser tolerances)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the example arguments")
    return p


def run(args: argparse.Namespace) -> int:
    from jaxnn.gradients import TOLERANCES, check_all

    results = check_all(dtype=args.dtype, seed=args.seed)
    passed = all(r.passed for r in results)
    if args.json:
        print(json.dumps({
            "passed": passed,
            "dtype": args.dtype,
            "tolerances": {"max_rel_err": TOLERANCES[args.dtype][0],
                           "fd_rel_err": TOLERANCES[args.dtype][1]},
            "entries": [
                {"name": r.name, "max_abs_err": r.max_abs_err, "max_rel_err": r.max_rel_err,
                 "fd_rel_err": r.fd_rel_err, "passed": r.passed}
                for r in results
            ],
        }))
    else:
        print(format_table(results))
        tol_ad, tol_fd = TOLERANCES[args.dtype]
        n_ok = sum(r.passed for r in results)
        print(f"\n{n_ok}/{len(results)} hand-written backward passes agree with jax.vjp "
              f"(rel <= {tol_ad:g}) and finite differences (rel <= {tol_fd:g}) in {args.dtype}.")
    return EXIT_OK if passed else EXIT_GRADCHECK_FAILED


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
