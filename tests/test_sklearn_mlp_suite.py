"""scikit-learn's own MLP tests, run against jaxnn's estimators.

The installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py`` is read at test time (never
copied into this repository), its one import of ``MLPClassifier, MLPRegressor`` rewritten to jaxnn's,
written to a temporary directory and run by pytest in a subprocess. Every test must pass but the
ones listed in ``EXPECTED_FAILURES`` (each with its reason), and the file must hold the number of
tests it held when this list was made: a scikit-learn upgrade that adds, removes or renames a test
fails here until the lists are looked at again.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sklearn

SKLEARN_TESTS = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"

# scikit-learn 1.9.1's file: 59 tests (parametrizations counted). Before issue 31, 21 passed.
EXPECTED_TESTS = 59
EXPECTED_FAILURES = {
    # It calls the private ``mlp._loss_grad_lbfgs(packed, X, Y, None, activations, deltas, coef_grads,
    # intercept_grads)``, scikit-learn's NumPy backprop with its preallocated buffers. jaxnn's gradient
    # is jax.grad / the hand-written backward of the same objective; tests/test_sklearn_parity.py
    # compares it with that very function instead.
    "test_gradient",
}


def _run_sklearn_tests(tmp_path: Path) -> tuple[set[str], set[str], str]:
    text = SKLEARN_TESTS.read_text()
    assert text.count(IMPORT) == 1, f"{SKLEARN_TESTS} no longer has the line {IMPORT!r}"
    jaxnn_import = "from jaxnn import MLPClassifier, MLPRegressor"
    (tmp_path / "test_mlp.py").write_text(text.replace(IMPORT, jaxnn_import))
    report = tmp_path / "report.xml"
    # sklearn.conftest provides the fixtures the file uses (global_random_seed); -c /dev/null keeps this
    # repository's pytest settings (warnings as errors, markers) out of scikit-learn's file
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-c", "/dev/null", "--rootdir", str(tmp_path),
         "-p", "sklearn.conftest", "-p", "no:cacheprovider", "-p", "no:xdist", f"--junitxml={report}",
         str(tmp_path / "test_mlp.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    passed, failed = set(), set()
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name", "")
        bad = any(child.tag in ("failure", "error", "skipped") for child in case)
        (failed if bad else passed).add(name)
    return passed, failed, proc.stdout


@pytest.mark.slow
def test_sklearns_own_mlp_tests_pass_against_jaxnn(tmp_path: Path) -> None:
    passed, failed, out = _run_sklearn_tests(tmp_path)
    assert len(passed) + len(failed) == EXPECTED_TESTS, (
        f"scikit-learn {sklearn.__version__}'s test_mlp.py has {len(passed) + len(failed)} tests, this "
        f"list was made for {EXPECTED_TESTS}: look at the new ones")
    failed_functions = {name.split("[")[0] for name in failed}
    assert failed_functions <= EXPECTED_FAILURES, out[-6000:]
    assert failed_functions == EXPECTED_FAILURES, f"now passing: {EXPECTED_FAILURES - failed_functions}"
    assert len(passed) == EXPECTED_TESTS - 1
