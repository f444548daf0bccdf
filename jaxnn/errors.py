"""Exceptions with a meaning on the command line, and the exit statuses they map to.

Exit statuses of ``jaxnn``:

====  ==========================================================
0     success
1     ``jaxnn gradcheck``: some hand-written backward failed
2     bad input: an :class:`InputError` (jaxnn refused an argument, a flag, a file's contents) or an
      ``OSError`` on a file the user named
3     training diverged (loss became NaN or inf)
70    internal error: any other exception -- a bug in jaxnn or in a library it uses (NumPy,
      scikit-learn, JAX, optax), never the input's fault
130   interrupted (Ctrl-C); a checkpoint is saved when ``--save`` was given
====  ==========================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GRADCHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class InputError(ValueError):
    """jaxnn refuses an argument it was given: a value, a shape, a file's contents, a flag.

    Every refusal jaxnn raises on purpose is an ``InputError`` (or :class:`InputTypeError`), and
    its message names the argument (``"test_size: ..."``; on the command line the flag,
    ``"--test-size: ..."``). It is a ``ValueError``, so ``except ValueError`` keeps catching it.
    A plain ``ValueError`` that reaches the command line was not raised on purpose: it means a
    bug, and exits 70, not 2.
    """


class InputTypeError(InputError, TypeError):
    """An argument of the wrong type (also a ``TypeError``, as Python's own are)."""


class DivergedError(RuntimeError):
    """Training produced a NaN or inf loss.

    Attributes:
        step: the optimizer step (0-based) whose loss was not finite.
        result: the training result holding the last finite parameters, if any.
    """

    def __init__(self, message: str, *, step: int, result: object = None) -> None:
        super().__init__(message)
        self.step = step
        self.result = result
