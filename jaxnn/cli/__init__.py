"""The ``jaxnn`` command line: one module per subcommand, errors as exit statuses.

Every subcommand module defines ``add_parser(subparsers)`` and ``run(args) -> int``, and may
define ``preflight(args)``: checks of the files it was named that need neither JAX nor
scikit-learn, run before ``run`` imports them, so a bad path fails in a fraction of a second.
Errors caused by the user's input become one line on stderr and exit status 2
(see :mod:`jaxnn.errors`); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

from jaxnn import xla_cpu
from jaxnn.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED, DivergedError

# The CLI owns its process: before JAX starts its backend, let XLA:CPU compile small training
# loops as one function (see jaxnn.xla_cpu; opt out with JAXNN_NO_XLA_FLAGS=1).
xla_cpu.request_small_loops()

# Subcommands, in the order `jaxnn --help` lists them.
SUBCOMMANDS: tuple[str, ...] = ("demo", "train", "predict", "sweep", "gradcheck")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _modules() -> list[ModuleType]:
    mods = []
    for name in SUBCOMMANDS:
        try:
            mods.append(importlib.import_module(f"jaxnn.cli.{name}"))
        except ModuleNotFoundError as e:
            if e.name != f"jaxnn.cli.{name}":
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jaxnn",
        description="Neural-network foundations in JAX, with hand-written gradients proven right.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback on errors"
    )
    # --- compilation cache (jaxnn.compilation_cache) ---
    parser.add_argument("--no-compilation-cache", action="store_true",
                        help="do not use JAX's persistent compilation cache "
                             "(also: JAXNN_NO_COMPILATION_CACHE=1)")
    # --- end compilation cache ---
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for mod in _modules():
        p = mod.add_parser(sub)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback on errors")
        p.add_argument("--no-compilation-cache", action="store_true", default=argparse.SUPPRESS,
                       help="do not use JAX's persistent compilation cache")
        p.set_defaults(_run=mod.run, _preflight=getattr(mod, "preflight", None),
                       _defers_sigint=getattr(mod, "DEFERS_SIGINT", False))
    return parser


def _fail(message: str, status: int) -> int:
    print(f"jaxnn: error: {message}".replace("\n", " "), file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxnn`` console script. Returns the exit status.

    SIGINT only sets a flag from here on (:mod:`jaxnn.cli.interrupt`), so a Ctrl-C during start-up
    cannot be swallowed by a callback inside JAX; a subcommand that sets ``DEFERS_SIGINT = True``
    checks the flag itself, the others get Python's usual ``KeyboardInterrupt`` back.
    """
    from jaxnn.cli import interrupt

    old = interrupt.install()
    try:
        return _main(argv)
    finally:
        interrupt.restore(old)


def _main(argv: Sequence[str] | None) -> int:
    """Run the command; Python warnings it raises are shown after it, unless it ends in bad input
    (exit 2): then the one error line is all that stderr gets."""
    with warnings.catch_warnings(record=True) as caught:
        status = _run(argv)
    if status != EXIT_BAD_INPUT:
        for w in caught:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status


def _run(argv: Sequence[str] | None) -> int:
    from jaxnn.cli import interrupt

    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        if not getattr(args, "_defers_sigint", False) and interrupt.installed():
            interrupt.restore(signal.default_int_handler)
        interrupt.check()
        if args._preflight is not None:  # bad paths fail before the slow imports
            args._preflight(args)
        if hasattr(args, "no_compilation_cache"):  # a command that trains: a second run reuses programs
            from jaxnn import compilation_cache

            if args.no_compilation_cache:
                compilation_cache.disable()  # and jaxnn.fit will not turn it on either
            else:
                compilation_cache.enable()
        interrupt.check()
        status = int(args._run(args))
        interrupt.check()  # a Ctrl-C that came after the last check still ends the run with 130
        return status
    except DivergedError as e:
        if debug:
            raise
        return _fail(str(e), EXIT_DIVERGED)
    except KeyboardInterrupt:
        if debug:
            raise
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # the reader closed stdout (`jaxnn predict ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except (ValueError, TypeError, OSError) as e:
        if debug:
            raise
        return _fail(str(e) or type(e).__name__, EXIT_BAD_INPUT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
