"""A tqdm progress bar for :func:`jaxnn.training.fit`, moved between compiled chunks.

The training scan never calls back to the host (a host callback per step would cost a round trip
and breaks on several devices); ``fit`` hands each chunk's :class:`~jaxnn.training.ChunkInfo` to
its callback instead::

    with ProgressBar(total_steps, desc="train") as bar:
        fit(config, X, Y, callback=bar.update)
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from jaxnn.errors import InputError

ENV = "JAXNN_PROGRESS"


def should_show(file: Any, enable: bool | None) -> bool:
    """Resolve ``enable``: True/False as given; None -> ``$JAXNN_PROGRESS``, else ``file.isatty()``."""
    if enable is not None:
        return bool(enable)
    env = os.environ.get(ENV, "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    isatty = getattr(file, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


class ProgressBar:
    """Progress over optimizer steps, updated from :class:`~jaxnn.training.ChunkInfo`.

    Args:
        total: total optimizer steps of the run (``ChunkInfo.total_steps``).
        enable: True: always draw; False: never; None: only when ``file`` is a
            terminal (or as ``$JAXNN_PROGRESS`` says).
        file: the stream to draw on (default ``sys.stderr``).
        desc: text before the bar.
        delay: seconds before the bar first appears on a terminal; shorter runs draw nothing.
            (On a stream that is not a terminal the bar only shows when forced, and then at once.)
    """

    def __init__(self, total: int, *, enable: bool | None = None, file: TextIO | None = None,
                 desc: str = "train", delay: float = 0.5) -> None:
        if isinstance(total, bool) or not isinstance(total, int | np.integer) or total < 0:
            raise InputError(f"total: expected a non-negative integer, got {total!r}")
        stream = sys.stderr if file is None else file
        self.enabled = should_show(stream, enable)
        forced = self.enabled and not getattr(stream, "isatty", lambda: False)()
        self._bar: Any = None
        if self.enabled:  # a bar forced onto a non-terminal is drawn at once: someone asked for it
            self._bar = tqdm(total=int(total), file=stream, desc=desc, unit="step",
                             delay=0.0 if forced else delay, dynamic_ncols=True, leave=True)

    @property
    def n(self) -> int:
        """Steps shown so far (0 when disabled)."""
        return int(self._bar.n) if self._bar is not None else 0

    def update(self, info: Any) -> None:
        """The ``fit(callback=...)`` hook: move to ``info.steps_done``, show the latest loss.

        ``info`` is a :class:`~jaxnn.training.ChunkInfo`: ``steps_done``, ``total_steps``,
        ``epochs_done``, ``train_loss`` (this chunk's per-step losses, (steps,)) and
        ``val_loss`` (this chunk's per-epoch validation losses, (epochs,)).
        """
        if self._bar is None:
            return
        if int(info.total_steps) != self._bar.total:  # e.g. resumed or early-stopped runs
            self._bar.total = int(info.total_steps)
        postfix: dict[str, str] = {"epoch": str(int(info.epochs_done))}
        if len(info.train_loss):
            postfix["loss"] = f"{float(info.train_loss[-1]):.4g}"
        if len(info.val_loss):
            postfix["val_loss"] = f"{float(info.val_loss[-1]):.4g}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(int(info.steps_done) - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
