"""Every Ctrl-C ends ``jaxnn train`` with exit 130: real processes, real SIGINTs, many moments.

Python's default handler raises KeyboardInterrupt wherever the interpreter is; when that is
JAX's ``_xla_gc_callback`` the exception is "ignored" and training runs on to exit 0. These
tests send SIGINT during start-up (JAX importing, data loading, compiling) and between chunks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jaxnn import checkpoint

FLAGS = ["train", "--data", "diabetes", "--model", "linear", "--epochs", "100000",
         "--checkpoint-every", "100", "--quiet"]


def _start(tmp: Path, i: int) -> subprocess.Popen[str]:
    env = {**os.environ, "JAXNN_CACHE_DIR": str(tmp / "cache")}
    return subprocess.Popen([sys.executable, "-m", "jaxnn.cli", *FLAGS, "--save", f"ck{i}.npz",
                             "--log-jsonl", f"log{i}.jsonl"], cwd=tmp, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _check_interrupted(tmp: Path, i: int, proc: subprocess.Popen[str], when: str) -> None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"SIGINT {when}: status {proc.returncode}, stderr {err[-2000:]}"
    assert "Exception ignored" not in err and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines()[-1] == "jaxnn train: error: interrupted", err[-2000:]
    assert out == ""
    log = tmp / f"log{i}.jsonl"
    chunks = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    steps = [c["step"] for c in chunks if c.get("event") != "summary"]
    ck = tmp / f"ck{i}.npz"
    if steps:  # the last completed chunk is the one saved
        saved = checkpoint.load(ck)
        assert int(saved.state.step) == steps[-1], (when, steps[-1], int(saved.state.step))
        assert saved.history.train_loss.shape == (steps[-1],)
        assert chunks[-1]["event"] == "summary" and chunks[-1]["status"] == "interrupted"


def test_sigint_at_many_moments_always_exits_130(tmp_path: Path) -> None:
    """SIGINT from 0.7 s (JAX importing) to a few seconds in (compiling, training), 4 at a time.

    (Before 0.1 s the interpreter itself is starting: Python's own default applies there.)"""
    delays = [0.7, 1.0, 1.3, 1.6, 2.0, 2.6, 3.4, 4.5]
    for batch in range(0, len(delays), 4):
        group = list(enumerate(delays))[batch:batch + 4]
        procs = {i: _start(tmp_path, i) for i, _ in group}
        t0 = time.monotonic()
        try:
            for i, d in group:
                time.sleep(max(0.0, t0 + d - time.monotonic()))
                assert procs[i].poll() is None, f"run {i} ended before its SIGINT at {d} s"
                procs[i].send_signal(signal.SIGINT)
            for i, d in group:
                _check_interrupted(tmp_path, i, procs[i], f"at {d} s")
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
                    p.communicate()


def test_sigint_between_chunks_saves_the_last_chunk_and_resumes(tmp_path: Path) -> None:
    proc = _start(tmp_path, 0)
    try:
        log = tmp_path / "log0.jsonl"
        deadline = time.monotonic() + 120
        while not (log.exists() and len(log.read_text().splitlines()) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _check_interrupted(tmp_path, 0, proc, "between chunks")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    saved = checkpoint.load(tmp_path / "ck0.npz")
    assert int(saved.state.step) >= 3 * 100 and int(saved.state.step) % 100 == 0
    assert np.isfinite(saved.history.train_loss).all()
