"""Exceptions with a meaning on the command line, and the exit statuses they map to.

Exit statuses of ``jaxnn``:

====  ==========================================================
0     success
1     ``jaxnn gradcheck``: some hand-written backward failed
2     bad input (a ``ValueError``/``TypeError``/``OSError`` on user input)
3     training diverged (loss became NaN or inf)
70    internal error: a failure inside jaxnn, JAX or optax, not a fault of the input
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
