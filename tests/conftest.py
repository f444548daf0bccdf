"""Strict numerics for the whole suite (see ../shared/STYLE.md).

* dtype promotion is strict: mixing float32 and float64 (or int and float arrays)
  raises instead of silently promoting;
* rank promotion raises: ``(n,) + (n, 1)`` is an error, not an (n, n) matrix --
  the classic silent bug of hand-written backward code;
* warnings are errors (``filterwarnings = error`` in pyproject.toml);
* the caches are as users have them: jaxnn's persistent compilation cache is on (its default),
  in a fresh directory for this test session, never the developer's own (``JAXNN_CACHE_DIR``,
  set here before pytest-xdist starts its workers, which inherit it). The opt-out
  (``JAXNN_NO_COMPILATION_CACHE``) has its own tests, which set it in their subprocesses.

float64 tests use ``jax.enable_x64()`` as a context manager, so x64 is never left on.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest
from hypothesis import HealthCheck, settings

if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller (or a run without xdist)
    os.environ.pop("JAXNN_NO_COMPILATION_CACHE", None)
    _SESSION_CACHE = tempfile.mkdtemp(prefix="jaxnn-test-cache-")
    os.environ["JAXNN_CACHE_DIR"] = _SESSION_CACHE
    atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "jaxnn",
    deadline=None,  # the first call of a jitted function compiles
    max_examples=int(os.environ.get("JAXNN_HYPOTHESIS_EXAMPLES", "40")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # CI runs must be reproducible
)
settings.load_profile("jaxnn")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BOSTON_CSV = SHARED / "datasets" / "boston.csv"


@pytest.fixture
def x64():
    """Run the test body with 64-bit types enabled, restored afterwards."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session")
def boston_csv() -> Path:
    """The seed's Boston housing CSV, beside the project (never copied into the repo)."""
    if not BOSTON_CSV.is_file():
        raise FileNotFoundError(
            f"{BOSTON_CSV} is missing: the tests expect ../shared/datasets/boston.csv "
            "beside the project root"
        )
    return BOSTON_CSV


# The modules whose tests are long (real subprocesses, simulated devices, Jupyter kernels) run first:
# with ``--dist worksteal`` the long tests then start early and the many short ones fill in at the
# end, instead of one long test running alone while the other worker idles. Order changes nothing else.
_LONG_MODULES = ("test_sklearn_mlp_suite.py", "test_default_path.py", "test_perf_invariants.py",
                 "test_sweep.py", "test_notebooks.py", "test_distributed.py", "test_cache_reliability.py",
                 "test_demo.py", "test_crash_safety.py", "test_compile_once.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(_LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(_LONG_MODULES)))  # stable: the rest keep order
