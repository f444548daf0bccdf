"""jaxnn's benchmark suite: ``make bench`` (``python -m benchmarks.run``); see the README, "Performance"."""

# A benchmark owns its process: let XLA:CPU compile small training loops as one function, as the
# `jaxnn` CLI does (jaxnn.xla_cpu; importing jaxnn itself changes nothing).
import json
import os
from pathlib import Path
from typing import Any

from jaxnn import xla_cpu

_ADDED = xla_cpu.request_small_loops()
RESULTS = Path(__file__).resolve().parent / "results.json"


def as_a_user_runs() -> None:
    """Undo the package's XLA flag before JAX starts: the process a user has (no XLA flags).

    ``benchmarks.many`` and ``benchmarks.search`` measure what a user runs, so they call this first.
    """
    if _ADDED:
        flags = os.environ.get("XLA_FLAGS", "").replace(xla_cpu.SMALL_LOOP_FLAG, "").strip()
        if flags:
            os.environ["XLA_FLAGS"] = flags
        else:
            os.environ.pop("XLA_FLAGS", None)


def record(out: dict[str, Any]) -> None:
    """Merge ``out``'s keys into ``benchmarks/results.json`` (beside ``make bench``'s other workloads)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**results, **out}, indent=2) + "\n")
