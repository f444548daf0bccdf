"""Ctrl-C for the command line: a SIGINT only sets a flag; the program checks it where it is safe.

Python's default SIGINT handler raises ``KeyboardInterrupt`` at whatever bytecode runs next. When
that is a callback the interpreter calls for itself -- JAX's ``_xla_gc_callback`` during garbage
collection, a weakref finaliser -- the exception is printed as "Exception ignored in ..." and
dropped, and the run goes on to the end with exit status 0. So ``jaxnn`` (a program that owns its
process) replaces the handler, before it imports JAX, with one that never raises: it records the
signal, and the command checks :func:`check` between its phases and after every compiled chunk,
saves what it has and exits with status 130.

This module changes nothing on import; :func:`install` is called by :func:`jaxnn.cli.main` only.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_pending: list[int] = []


def _on_sigint(signum: int, frame: FrameType | None) -> None:  # never raises: see the module doc
    _pending.append(signum)


def install() -> Any:
    """Replace the SIGINT handler (main thread only); returns the old one for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return None
    _pending.clear()
    return signal.signal(signal.SIGINT, _on_sigint)


def restore(old: Any) -> None:
    """Put back the handler :func:`install` replaced."""
    if old is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, old)


def installed() -> bool:
    """Whether SIGINT is deferred by this module right now."""
    return signal.getsignal(signal.SIGINT) is _on_sigint


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a SIGINT arrived (call it where stopping is safe)."""
    if _pending:
        raise KeyboardInterrupt
