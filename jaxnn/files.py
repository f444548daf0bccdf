"""Opening user-named files safely: a FIFO, device or socket is refused, never waited on or replaced."""

from __future__ import annotations

import os
import stat
from typing import IO

from jaxnn.errors import InputError

__all__ = ["check_regular_file", "open_regular_file", "refuse_special_target"]


def open_regular_file(path: str | os.PathLike[str], what: str) -> IO[bytes]:
    """Open an existing regular file for reading; refuse FIFOs, devices, sockets and directories
    *before* a blocking open (a FIFO with no writer would hang forever).

    Raises:
        FileNotFoundError / IsADirectoryError / ValueError (not a regular file), naming ``what``.
    """
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: no such file: {p!r}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{what}: {p!r} is a directory, expected a file") from None
    try:
        _refuse_mode(os.fstat(fd).st_mode, p, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular_file(path: str | os.PathLike[str], what: str) -> None:
    """Refuse what :func:`open_regular_file` would refuse, with the same errors, without opening.

    ``os.stat`` never blocks, even on a FIFO: the command line checks the files it was named
    before its slow imports, so a mistyped path fails at once.
    """
    p = os.fspath(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: no such file: {p!r}") from None
    _refuse_mode(mode, p, what)


def _refuse_mode(mode: int, p: str, what: str) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{what}: {p!r} is a directory, expected a file")
    if not stat.S_ISREG(mode):
        raise InputError(f"{what}: {p!r} is not a regular file (a FIFO, device or socket)")


def refuse_special_target(path: str | os.PathLike[str], what: str) -> None:
    """Refuse to write onto an existing FIFO, device or socket (a regular file or nothing is fine)."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise InputError(f"{what}: {os.fspath(path)!r} exists and is not a regular file "
                         "(a FIFO, device or socket); refusing to replace it")
