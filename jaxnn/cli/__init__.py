"""The ``jaxnn`` command line: one module per subcommand, errors as exit statuses.

Every subcommand module defines ``add_parser(subparsers)`` and ``run(args) -> int``, and may
define ``preflight(args)``: the checks of its files and flags that need neither JAX nor
scikit-learn (:mod:`jaxnn.cli.userinput`), run before ``run`` imports them, so bad input fails in a
fraction of a second. Bad input is one line on stderr and exit status 2, naming the flag; any other
exception is an internal error, exit 70 (``docs/explanation/reliability.md``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from jaxnn import xla_cpu
from jaxnn.errors import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    DivergedError,
    InputError,
)

# The CLI owns its process: before JAX starts its backend, let XLA:CPU compile small training
# loops as one function (see jaxnn.xla_cpu; opt out with JAXNN_NO_XLA_FLAGS=1).
xla_cpu.request_small_loops()

# Subcommands, in the order `jaxnn --help` lists them.
SUBCOMMANDS: tuple[str, ...] = ("demo", "train", "predict", "sweep", "gradcheck")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2, prefixed with the
    subcommand's name (``jaxnn train: error: ...``) once the subcommand is known."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}".replace("\n", " ") + "\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # said by the subcommand's parser, whose flags they are not
            getattr(parsed, "_parser", self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


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
    for name in SUBCOMMANDS:
        mod = importlib.import_module(f"jaxnn.cli.{name}")
        p = mod.add_parser(sub)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback on errors")
        p.add_argument("--no-compilation-cache", action="store_true", default=argparse.SUPPRESS,
                       help="do not use JAX's persistent compilation cache")
        p.set_defaults(_run=mod.run, _preflight=getattr(mod, "preflight", None), _parser=p,
                       _defers_sigint=getattr(mod, "DEFERS_SIGINT", False))
    return parser


def _fail(prog: str, message: str, status: int) -> int:
    print(f"{prog}: error: {message}".replace("\n", " "), file=sys.stderr)
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
    prog = f"jaxnn {args.command}"  # errors name the subcommand, as its usage errors do
    try:
        if not getattr(args, "_defers_sigint", False) and interrupt.installed():
            interrupt.restore(signal.default_int_handler)
        interrupt.check()
        if args._preflight is not None:  # bad paths fail before the slow imports
            args._preflight(args)
        from jaxnn import compilation_cache  # imports no JAX until it is used

        if getattr(args, "no_compilation_cache", False):
            compilation_cache.disable()  # and jaxnn.fit will not turn it on either
        else:  # a second run loads every program this one compiles
            compilation_cache.enable_default()
        interrupt.check()
        with compilation_cache.scope():
            status = int(args._run(args))
        interrupt.check()  # a Ctrl-C that came after the last check still ends the run with 130
        return status
    except DivergedError as e:
        if debug:
            raise
        return _fail(prog, str(e), EXIT_DIVERGED)
    except KeyboardInterrupt:
        if debug:
            raise
        return _fail(prog, "interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # the reader closed stdout (`jaxnn predict ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception as e:
        if debug:
            raise
        if _is_internal(e):  # never "bad input": a bug in jaxnn or a library it uses
            return _fail(prog, f"internal error: {type(e).__name__}: {e} (a bug in jaxnn or a library it "
                         "uses, not in your input; please report it with the traceback --debug shows)",
                         EXIT_INTERNAL)
        return _fail(prog, str(e) or type(e).__name__, EXIT_BAD_INPUT)


_LIBRARY_PARTS = ("jax", "jaxlib", "optax")


def _is_internal(e: BaseException) -> bool:
    """Whether ``e`` is a failure of jaxnn or a library it uses, not a refusal of the user's input.

    Bad input is what jaxnn refuses on purpose (:class:`~jaxnn.errors.InputError`) and an
    ``OSError`` on a file the user named; an ``OSError`` raised by JAX's runtime, or from a frame of
    the jax, jaxlib or optax packages, is internal all the same (jaxnn opens the user's files
    itself). Everything else -- a ``ValueError`` from NumPy or scikit-learn, a ``TypeError`` or
    ``KeyError`` from a bug -- is internal.
    """
    if isinstance(e, InputError):
        return False
    if not isinstance(e, OSError):
        return True
    if "jax" in sys.modules:  # (never imported just to ask)
        from jax.errors import JaxRuntimeError

        if isinstance(e, JaxRuntimeError):
            return True
    tb, module = e.__traceback__, ""
    while tb is not None:  # the frame that raised it
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return module.split(".")[0] in _LIBRARY_PARTS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
