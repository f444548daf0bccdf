"""A JSON-lines metrics log (``jaxnn train --log-jsonl``): one line per compiled chunk, then a summary.

Every line is flushed as written, so an interrupted run leaves a readable log; non-finite numbers
are written as ``null`` (strict JSON has no NaN). The fields: docs/how-to/save-resume-predict.md.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import IO, Any

import numpy as np

from jaxnn.errors import InputError
from jaxnn.training import ChunkInfo

__all__ = ["RunLog"]


def _number(x: Any) -> float | None:
    """A JSON-safe float: ``None`` for NaN/inf/missing."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _clean(obj: Any) -> Any:
    """Replace non-finite floats anywhere in ``obj`` by None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return _number(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


class RunLog:
    """Append-only JSON-lines log of a training run; use as ``fit(callback=log)``.

    Args:
        path: the file to write (truncated first).
        extra: fields added to every line (e.g. ``{"run": "lr=0.01"}``).

    Example::

        with RunLog("run.jsonl") as log:
            result = fit(config, X, Y, callback=log)
            log.summary(status="ok", step=result.steps, epoch=result.epochs)
    """

    def __init__(self, path: str | os.PathLike[str], *, extra: dict[str, Any] | None = None) -> None:
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"--log-jsonl: {self.path!r} is a directory, expected a file name")
        self._fh: IO[str] | None = open(self.path, "w", encoding="utf-8")
        self._extra = dict(extra or {})
        self._t0 = time.perf_counter()
        self.lines = 0

    def write(self, event: str, **fields: Any) -> None:
        """Write one line ``{"event": event, **fields, "elapsed": seconds}`` and flush it."""
        if self._fh is None:
            raise InputError(f"RunLog {self.path!r} is closed")
        record = {"event": event, **self._extra, **fields,
                  "elapsed": round(time.perf_counter() - self._t0, 6)}
        self._fh.write(json.dumps(_clean(record), allow_nan=False) + "\n")
        self._fh.flush()
        self.lines += 1

    def __call__(self, info: ChunkInfo) -> None:
        """The ``fit`` callback: log one compiled chunk."""
        tl = np.asarray(info.train_loss)
        vl = np.asarray(info.val_loss)
        self.write(
            "chunk",
            step=int(info.steps_done),
            total_steps=int(info.total_steps),
            epoch=int(info.epochs_done),
            train_loss=_number(tl.mean()) if tl.size else None,
            val_loss=_number(vl[-1]) if vl.size else None,
        )

    def summary(self, *, status: str, **fields: Any) -> None:
        """The final line: ``status`` is "ok", "interrupted" or "diverged", plus any fields."""
        self.write("summary", status=status, **fields)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
