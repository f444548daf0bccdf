"""jaxnn.progress: a tqdm bar fed by training.fit's ChunkInfo callback, and `jaxnn train --quiet`."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxnn.progress import ProgressBar
from jaxnn.training import TrainConfig, fit, total_steps


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    return X, X @ np.array([[1.0], [-2.0], [0.5]])


CONFIG = TrainConfig(hidden=(4,), optimizer="adam", lr=0.01, batch_size=16, epochs=12, chunk_epochs=3)


def test_forced_bar_follows_the_chunks_to_the_total_and_shows_the_last_loss():
    X, Y = _data()
    total = total_steps(CONFIG, len(X))  # 12 epochs x 4 batches
    out = io.StringIO()
    seen: list[int] = []
    with ProgressBar(total, enable=True, file=out, desc="fit") as bar:
        def callback(info):
            bar.update(info)
            seen.append(bar.n)
        result = fit(CONFIG, X, Y, callback=callback)
    assert total == 48
    assert seen == [12, 24, 36, 48]  # one update per compiled chunk of 3 epochs
    text = out.getvalue()
    assert "fit" in text and "48/48" in text
    assert f"loss={result.history.train_loss[-1]:.4g}" in text


def test_disabled_bar_writes_nothing():
    X, Y = _data()
    out = io.StringIO()
    with ProgressBar(48, enable=False, file=out) as bar:
        fit(CONFIG, X, Y, callback=bar.update)
        assert bar.n == 0 and not bar.enabled
    assert out.getvalue() == ""


def test_auto_mode_is_quiet_off_a_terminal_unless_the_environment_forces_it(monkeypatch):
    monkeypatch.delenv("JAXNN_PROGRESS", raising=False)
    assert not ProgressBar(5, file=io.StringIO()).enabled  # StringIO is not a terminal
    monkeypatch.setenv("JAXNN_PROGRESS", "1")
    assert ProgressBar(5, file=io.StringIO()).enabled
    monkeypatch.setenv("JAXNN_PROGRESS", "0")
    assert not ProgressBar(5, enable=None, file=io.StringIO()).enabled


def test_total_must_be_a_count():
    with pytest.raises(ValueError, match="total"):
        ProgressBar(-1, enable=False)


def _jaxnn_train(*flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JAXNN_PROGRESS": "1"}  # as if stderr were a terminal
    return subprocess.run(
        [sys.executable, "-m", "jaxnn.cli", "train", "--data", "diabetes", "--epochs", "5",
         "--batch-size", "64", "--json", *flags],
        capture_output=True, text=True, env=env, timeout=120, check=False)


def test_cli_shows_progress_on_stderr_and_quiet_silences_it():
    shown = _jaxnn_train()
    assert shown.returncode == 0, shown.stderr
    assert "jaxnn train" in shown.stderr and "25/25" in shown.stderr  # 5 epochs x ceil(309 / 64)
    quiet = _jaxnn_train("--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert quiet.stdout.startswith("{")  # the JSON report is untouched


def test_estimator_verbose_prints_sklearns_lines_not_a_bar(monkeypatch, capfd):
    """The estimators print scikit-learn's per-iteration lines (tests/test_estimators_parity.py checks
    them against scikit-learn's); no bar, even when one is forced."""
    from jaxnn.estimators import MLPRegressor

    X, Y = _data()
    monkeypatch.setenv("JAXNN_PROGRESS", "1")
    MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, verbose=True).partial_fit(X, Y[:, 0])
    out, err = capfd.readouterr()
    assert out.startswith("Iteration 1, loss = ") and err == ""
    MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, verbose=False).partial_fit(X, Y[:, 0])
    assert capfd.readouterr() == ("", "")
