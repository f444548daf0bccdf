"""Nothing is lost on a crash: SIGKILL mid-write, Ctrl-C and resume, divergence -- real subprocesses."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxnn import checkpoint
from jaxnn.cli import main

TIMEOUT = 180.0
TEMP = re.compile(r"^\.ck\.npz\.[0-9a-f]{12}\.tmp$")


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "jaxnn.cli", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; killed (by their own pid) whatever happens."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)


def wait_for(pred, what: str, proc: subprocess.Popen[str], deadline: float) -> None:
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"process ended (status {proc.returncode}) before {what}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.0002)


def arrays_of(f: Path) -> dict[str, np.ndarray]:
    with np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def test_sigkill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path: Path, procs) -> None:
    """Three trainings checkpointing every epoch, killed: mid-write, and at two random moments."""
    flags = ["train", "--epochs", "100000", "--hidden", "32,32", "--checkpoint-every", "10",
             "--save", "ck.npz"]
    rng = np.random.default_rng(20261125)
    delays = [None, *rng.uniform(0.0, 1.5, size=2)]  # None: kill while a temporary file exists
    dirs = [tmp_path / f"run{i}" for i in range(len(delays))]
    for d in dirs:
        d.mkdir()
        procs.append(start(*flags, cwd=d))
    deadline = time.monotonic() + TIMEOUT
    seen_temp = False
    for d, p, delay in zip(dirs, procs, delays, strict=True):
        wait_for(lambda d=d: (d / "ck.npz").exists(), "the first checkpoint", p, deadline)
        if delay is None:
            def temp_exists(d: Path = d) -> bool:
                return any(TEMP.match(n) for n in os.listdir(d))

            wait_for(temp_exists, "a checkpoint being written", p, deadline)
            seen_temp = True
        else:
            time.sleep(float(delay))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL
    assert seen_temp
    for d in dirs:
        ck = checkpoint.load(d / "ck.npz")  # the previous complete checkpoint
        step = int(ck.state.step)
        assert step >= 10 and step % 10 == 0  # diabetes: 10 steps per epoch, one epoch per chunk
        assert ck.config.hidden == (32, 32) and ck.config.chunk_epochs == 1
        assert len(ck.history.train_loss) == step
        assert np.all(np.isfinite(np.asarray(ck.params[0]["W"])))
        others = [n for n in os.listdir(d) if n != "ck.npz"]
        assert all(TEMP.match(n) for n in others), others  # leftovers can't be mistaken for it


def test_sigint_saves_then_resume_is_bit_identical(tmp_path: Path, procs) -> None:
    flags = ["train", "--hidden", "13", "--epochs", "2000", "--checkpoint-every", "200", "--seed", "3"]
    p = start(*flags, "--save", "ck.npz", "--log-jsonl", "int.jsonl", cwd=tmp_path)
    procs.append(p)
    wait_for(lambda: (tmp_path / "ck.npz").exists(), "the first checkpoint", p,
             time.monotonic() + TIMEOUT)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 130, err
    assert "interrupted at step" in err and "--resume ck.npz" in err and "Traceback" not in err
    ck = checkpoint.load(tmp_path / "ck.npz")
    stopped_at = int(ck.state.step)
    assert 0 < stopped_at < 20_000 and stopped_at % 200 == 0
    last = json.loads((tmp_path / "int.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "summary" and last["status"] == "interrupted" and last["step"] == stopped_at

    # Continue in a new process; only --resume (the flags come from the checkpoint).
    r = subprocess.run([sys.executable, "-m", "jaxnn.cli", "train", "--resume", "ck.npz", "--save",
                        "resumed.npz", "--json"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=TIMEOUT, check=False)
    assert r.returncode == 0, r.stderr
    resumed = json.loads(r.stdout)

    # The uninterrupted run, in a process of its own as the others: the CLI asks XLA to compile small
    # loops as one function (jaxnn.xla_cpu), which takes effect where jaxnn.cli is imported before
    # JAX's backend starts -- in a pytest worker that depends on what ran first, and the program
    # compiled either way gives other bits
    r = subprocess.run([sys.executable, "-m", "jaxnn.cli", *flags, "--save", "ref.npz", "--log-jsonl",
                        "ref.jsonl", "--json"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=TIMEOUT, check=False)
    assert r.returncode == 0, r.stderr
    ref = json.loads(r.stdout)
    a, b = arrays_of(tmp_path / "ref.npz"), arrays_of(tmp_path / "resumed.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # bit for bit: params, opt state, key, losses
    del ref["seconds"], resumed["seconds"]
    assert resumed == ref  # metrics and the full loss history too

    # The JSON-lines log of the reference run: one line per chunk, then the summary.
    lines = [json.loads(x) for x in (tmp_path / "ref.jsonl").read_text().splitlines()]
    chunks, summary = lines[:-1], lines[-1]
    assert [c["step"] for c in chunks] == list(range(200, 20_001, 200))
    tl = np.asarray(ref["history"]["train_loss"], dtype=np.float32)
    want = [float(tl[i - 200:i].mean()) for i in range(200, 20_001, 200)]
    np.testing.assert_allclose([c["train_loss"] for c in chunks], want, rtol=1e-6)
    # no validation split asked for: the test rows are not looked at during training
    assert all(c["val_loss"] is None for c in chunks) and ref["history"]["val_loss"] == []
    assert all(x["elapsed"] <= y["elapsed"] for x, y in itertools.pairwise(lines))
    assert summary["event"] == "summary" and summary["status"] == "ok"
    assert summary["test"] == ref["test"] and summary["step"] == 20_000


def test_divergence_saves_last_finite_params_and_exits_3(tmp_path: Path, capsys) -> None:
    f = tmp_path / "div.npz"
    # the seed's sigmoid units keep the forward of the last finite parameters finite (relu's would
    # overflow float32 from those huge weights)
    status = main(["train", "--hidden", "13", "--activation", "sigmoid", "--optimizer", "sgd", "--lr", "1e6",
                   "--epochs", "20", "--save", str(f),
                   "--log-jsonl", str(tmp_path / "div.jsonl")])
    assert status == 3
    err = capsys.readouterr().err
    assert "diverged" in err and "smaller learning rate" in err
    ck = checkpoint.load(f)
    step = int(ck.state.diverged_step)
    assert step >= 0 and int(ck.state.step) == step  # stopped at the first non-finite step
    from jaxnn import models, names
    from jaxnn.datasets import load_dataset

    for leaf in (ck.params[0]["W"], ck.params[0]["b"], ck.params[1]["W"]):
        assert np.all(np.isfinite(np.asarray(leaf)))
    X = ck.scaler.transform(load_dataset("diabetes").X).astype(np.float32)
    activation = names.activation(ck.config.activation)
    assert np.all(np.isfinite(np.asarray(models.predict(ck.params, X, activation))))
    summary = json.loads((tmp_path / "div.jsonl").read_text().splitlines()[-1])
    assert summary["status"] == "diverged" and summary["step"] == step
    # Resuming a diverged run is refused: it would only diverge again.
    assert main(["train", "--resume", str(f)]) == 2
    assert "diverged at step" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "message"), [
    (["--checkpoint-every", "5"], "--checkpoint-every: needs --save"),
    (["--save", "no/such/dir/ck.npz"], "--save: cannot write"),
    (["--log-jsonl", "."], "--log-jsonl: cannot write"),
    (["--resume", "missing.npz"], "no such file"),
])
def test_output_flags_are_checked_before_training(tmp_path: Path, flags, message, capsys,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_resume_refuses_conflicting_flags_and_rounds_checkpoints_to_epochs(tmp_path: Path, capsys) -> None:
    f = tmp_path / "ck.npz"
    # 25 steps with 10 steps per epoch: checkpoints every ceil(25 / 10) = 3 epochs.
    assert main(["train", "--epochs", "6", "--checkpoint-every", "25", "--save", str(f), "--lr", "0.05"]) == 0
    ck = checkpoint.load(f)
    assert ck.config.chunk_epochs == 3 and int(ck.state.step) == 60
    assert main(["train", "--resume", str(f), "--lr", "0.1"]) == 2
    assert "--lr: " in capsys.readouterr().err
    assert main(["train", "--resume", str(f), "--epochs", "3"]) == 2
    assert "already at epoch 6" in capsys.readouterr().err
    # Same flags (or none) and a larger total: continues.
    assert main(["train", "--resume", str(f), "--lr", "0.05", "--epochs", "9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epochs"] == 9 and len(out["history"]["train_loss"]) == 90


def test_resume_mid_epoch_reaches_the_requested_total_bit_identically(tmp_path: Path, capsys) -> None:
    # 20 steps is mid-epoch; resuming to 64 must train exactly the 44 missing steps, continuing that
    # epoch's order (the 0.1 trainer restarted at the next epoch and trained 52 steps)
    a, b, c = (str(tmp_path / f) for f in ("a.npz", "b.npz", "c.npz"))
    flags = ["--optimizer", "adam", "--lr", "0.01"]
    assert main(["train", "--steps", "20", "--save", a, *flags]) == 0
    assert main(["train", "--resume", a, "--steps", "64", "--save", b, *flags]) == 0
    assert main(["train", "--steps", "64", "--save", c, *flags]) == 0
    capsys.readouterr()
    resumed, straight = checkpoint.load(b), checkpoint.load(c)
    assert int(checkpoint.load(a).state.step) == 20
    assert int(resumed.state.step) == int(straight.state.step) == 64
    leaves = jax.tree_util.tree_leaves
    for x, y in zip(leaves(resumed.state.params), leaves(straight.state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_array_equal(resumed.history.train_loss, straight.history.train_loss)


def test_a_checkpoint_saved_with_the_former_default_network_resumes_as_it_was(tmp_path: Path, capsys) -> None:
    """Before the default network became 100 relu units, a run without --hidden stored no hidden
    sizes among its flags (the default then was 13). Resuming it trains the checkpoint's network,
    bit for bit as the straight run, not today's default."""
    a, old, b, c = (str(tmp_path / f) for f in ("a.npz", "old.npz", "b.npz", "c.npz"))
    seed_net = ["--hidden", "13", "--activation", "sigmoid", "--lr", "0.01"]  # the former defaults
    assert main(["train", "--steps", "20", "--save", a, *seed_net]) == 0
    capsys.readouterr()
    ck = checkpoint.load(a)
    assert ck.extra["cli_args"]["hidden"] == [[13]]
    checkpoint.save(old, ck.state, ck.config, scaler=ck.scaler, dataset=ck.dataset, history=ck.history,
                    extra={"cli_args": {**ck.extra["cli_args"], "hidden": None}},  # as it was stored
                    target_scaler=ck.target_scaler)
    assert main(["train", "--resume", old, "--steps", "40", "--save", b, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "mlp[13 sigmoid]"
    assert main(["train", "--steps", "40", "--save", c, *seed_net]) == 0
    resumed, straight = checkpoint.load(b), checkpoint.load(c)
    leaves = jax.tree_util.tree_leaves
    for x, y in zip(leaves(resumed.state.params), leaves(straight.state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
