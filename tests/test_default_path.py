"""What users run by default, end to end in real processes: caches on, first empty, then warm.

Every workflow here runs twice against one cache directory -- once when it is empty, once with
what the first run left -- in fresh ``python`` processes with nothing set in the environment but
that directory (``JAXNN_CACHE_DIR``: never the developer's own cache) and warnings as errors.
Both runs must succeed and give the same bits. The bug these tests would have caught (issue 28):
with the caches on, ``jaxnn predict``, ``--resume`` and loading a Ctrl-C or divergence
checkpoint called an already-compiled program where JAX traces (``jax.eval_shape``) and failed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxnn import checkpoint

ROOT = Path(__file__).resolve().parents[1]


def user_env(cache: Path) -> dict[str, str]:
    """A user's environment: no jaxnn or JAX variables but the cache directory; warnings are errors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAXNN_", "JAX_", "XLA_"))}
    env.update(JAXNN_CACHE_DIR=str(cache), PYTHONWARNINGS="error")
    return env


def jaxnn_cli(cache: Path, cwd: Path, *argv: str, status: int = 0) -> str:
    """Run ``python -m jaxnn.cli *argv`` in ``cwd``; check its exit status; return its stdout."""
    p = subprocess.run([sys.executable, "-m", "jaxnn.cli", *argv], capture_output=True, text=True,
                       cwd=cwd, env=user_env(cache), timeout=300, check=False)
    assert p.returncode == status, (argv, p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr and "Warning" not in p.stderr, p.stderr[-3000:]
    return p.stdout


def python(cache: Path, cwd: Path, code: str, *args: str) -> Any:
    """Run ``code`` in a fresh interpreter; return the JSON its last stdout line holds."""
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                       text=True, cwd=cwd, env=user_env(cache), timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def cold_then_warm(tmp_path: Path, workflow: Callable[[Path, Path], Any]) -> Any:
    """``workflow(cache, workdir)`` with an empty cache, then again with what it left: the same result."""
    cache = tmp_path / "cache"
    results = []
    for run in ("cold", "warm"):
        (tmp_path / run).mkdir()
        results.append(workflow(cache, tmp_path / run))
        assert any(cache.glob("*.jaxnn")), f"{run}: nothing was stored in the cache"
    assert results[0] == results[1], "the warm run differs from the cold run"
    return results[0]


def _train_save_predict_resume(data: list[str], predict_data: str) -> Callable[[Path, Path], Any]:
    def workflow(cache: Path, work: Path) -> Any:
        train = ["train", *data, "--model", "mlp", "--seed", "3", "--quiet"]
        straight = work.parent / "cold" / "straight.npz"  # the cold run's; the warm run resumes against it
        if work.name == "cold":
            jaxnn_cli(cache, work, *train, "--steps", "120", "--save", "straight.npz")
        jaxnn_cli(cache, work, *train, "--steps", "50", "--save", "half.npz")
        jaxnn_cli(cache, work, *train, "--steps", "120", "--resume", "half.npz", "--save", "resumed.npz")
        # a resumed run is the straight run, bit for bit: every array of the two files (parameters,
        # optimizer state, key, step, history, scaler) is equal, so are their predictions
        want, _ = checkpoint.load_arrays(straight)
        resumed, _ = checkpoint.load_arrays(work / "resumed.npz")
        assert sorted(resumed) == sorted(want)
        assert all(np.array_equal(resumed[name], want[name]) for name in want)
        return json.loads(jaxnn_cli(cache, work, "predict", "--model", "resumed.npz", "--data",
                                    predict_data, "--json"))

    return workflow


def test_regression_train_save_predict_resume(tmp_path: Path, boston_csv: Path) -> None:
    got = cold_then_warm(tmp_path, _train_save_predict_resume(
        ["--data", str(boston_csv), "--target", "medv"], str(boston_csv)))
    assert got["n"] == 506 and len(got["predictions"]) == 506
    assert np.all(np.isfinite(got["predictions"]))


def test_classification_train_save_predict_resume(tmp_path: Path) -> None:
    got = cold_then_warm(tmp_path, _train_save_predict_resume(["--data", "digits"], "digits"))
    probs = np.asarray(got["probabilities"])
    assert probs.shape == (1797, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.mean(np.asarray(got["predictions"]) == np.argmax(probs, axis=1)) == 1.0


def test_sweep_cold_and_warm(tmp_path: Path, boston_csv: Path) -> None:
    def workflow(cache: Path, work: Path) -> Any:
        sweep = json.loads(jaxnn_cli(cache, work, "sweep", "--data", str(boston_csv), "--target", "medv",
                                     "--seeds", "2", "--lr", "0.01", "--lr", "0.05", "--steps", "60",
                                     "--hidden", "13",
                                     "--json"))
        del sweep["seconds"]  # the only field that may differ between runs
        return sweep

    sweep = cold_then_warm(tmp_path, workflow)
    assert sweep["n_models"] == 4 and len(sweep["models"]) == 4
    assert all(np.isfinite(m["test"]["mse"]) for m in sweep["models"])


def test_gradcheck_cold_and_warm(tmp_path: Path) -> None:
    gradcheck = cold_then_warm(tmp_path, lambda cache, work: json.loads(
        jaxnn_cli(cache, work, "gradcheck", "--json")))
    assert gradcheck["passed"] and all(e["passed"] for e in gradcheck["entries"]), gradcheck


_ESTIMATOR_FIT = """
    import json, pickle, sys, warnings
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from jaxnn import MLPClassifier
    warnings.simplefilter("ignore", ConvergenceWarning)  # 5 epochs: expected
    X, y = load_digits(return_X_y=True)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X / 16, y)
    clf.save("clf.npz")
    with open("clf.pkl", "wb") as f:
        pickle.dump(clf, f)
    print(json.dumps(clf.predict_proba(X / 16).tolist()))
"""

_ESTIMATOR_LOAD = """
    import json, pickle
    from sklearn.datasets import load_digits
    from jaxnn import MLPClassifier
    X, _ = load_digits(return_X_y=True)
    with open("clf.pkl", "rb") as f:
        pickled = pickle.load(f)
    loaded = MLPClassifier.load("clf.npz")
    print(json.dumps([loaded.predict_proba(X / 16).tolist(), pickled.predict_proba(X / 16).tolist()]))
"""


def test_estimator_save_load_and_pickle_in_a_new_process(tmp_path: Path) -> None:
    def workflow(cache: Path, work: Path) -> Any:
        fitted = python(cache, work, _ESTIMATOR_FIT)
        loaded, pickled = python(cache, work, _ESTIMATOR_LOAD)
        assert loaded == fitted and pickled == fitted  # identical predict_proba
        return fitted

    probs = np.asarray(cold_then_warm(tmp_path, workflow))
    assert probs.shape == (1797, 10)


# Two ways a fit's state crosses processes, in one script (each process starts once for both): a tree
# checkpoint (checkpoint.save_tree / load_tree) and a pickled TrainState (the in-memory path of
# save/load). "first" saves each state part-way and prints the straight runs' parameters; "second"
# resumes from each and prints the resumed runs' parameters.
_STATES = """
    import json, pickle, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    import jaxnn
    from jaxnn import checkpoint

    def tolist(tree):
        return jax.tree_util.tree_map(lambda a: np.asarray(a).tolist(), tree)

    def loss_fn(p, x, y):
        return (jnp.tanh(x @ p["W"] + p["b"]) @ p["V"] - y) ** 2

    rng = np.random.default_rng(0)
    X = rng.normal(size=(70, 3)).astype(np.float32); Y = X[:, 0] * X[:, 1]
    k = jax.random.split(jax.random.key(1), 2)
    params = {"W": jax.random.normal(k[0], (3, 8)), "b": jnp.zeros(8), "V": jax.random.normal(k[1], (8,)) / 3}
    opt = optax.adam(1e-2)
    kw = dict(optimizer=opt, batch_size=16, key=jax.random.key(5))

    loss = lambda p, x, y: (x @ p - y) ** 2
    X2 = np.linspace(-1, 1, 40, dtype=np.float32).reshape(20, 2); Y2 = X2[:, 0] - X2[:, 1]
    p0 = jnp.zeros(2)
    kw2 = dict(optimizer=optax.sgd(0.1), batch_size=4)

    if sys.argv[1] == "first":
        r = jaxnn.fit(loss_fn, params, (X, Y), steps=20, **kw)
        checkpoint.save_tree("state.npz", r.state)
        r = jaxnn.fit(loss, p0, (X2, Y2), steps=7, **kw2)
        pickle.dump(r.state, open("s.pkl", "wb"))
        out = {"tree": jaxnn.fit(loss_fn, params, (X, Y), steps=45, **kw).params,
               "pickle": jaxnn.fit(loss, p0, (X2, Y2), steps=15, **kw2).params}
    else:
        like = jax.eval_shape(lambda: jaxnn.engine.init_state(params, opt, jax.random.key(5)))
        state, _ = checkpoint.load_tree("state.npz", like)
        s = pickle.load(open("s.pkl", "rb"))
        out = {"tree": jaxnn.fit(loss_fn, params, (X, Y), steps=45, state=state, **kw).params,
               "pickle": jaxnn.fit(loss, p0, (X2, Y2), steps=15, state=s, **kw2).params}
    print(json.dumps(tolist(out)))
"""


@pytest.fixture(scope="module")
def saved_states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``_STATES`` cold and warm: ``{"straight": ..., "resumed": ...}``, each with a "tree" and a
    "pickle" result."""

    def workflow(cache: Path, work: Path) -> Any:
        return {"straight": python(cache, work, _STATES, "first"),
                "resumed": python(cache, work, _STATES, "second")}

    return cold_then_warm(tmp_path_factory.mktemp("states"), workflow)


def test_tree_checkpoint_of_a_fit_state_resumes_bit_for_bit_in_a_new_process(saved_states: dict) -> None:
    assert saved_states["resumed"]["tree"] == saved_states["straight"]["tree"]


def test_pickle_of_a_fit_result_state_round_trips(saved_states: dict) -> None:
    """A TrainState pickled by one process is usable by another (the in-memory path of save/load)."""
    assert saved_states["resumed"]["pickle"] == saved_states["straight"]["pickle"]


def test_ctrl_c_and_divergence_checkpoints_load_and_resume(tmp_path: Path) -> None:
    def workflow(cache: Path, work: Path) -> Any:
        # Ctrl-C between chunks: the checkpoint of the last completed chunk
        argv = [sys.executable, "-m", "jaxnn.cli", "train", "--data", "diabetes", "--model", "linear",
                "--epochs", "100000", "--checkpoint-every", "100", "--quiet", "--save", "ck.npz",
                "--log-jsonl", "log.jsonl"]
        proc = subprocess.Popen(argv, cwd=work, env=user_env(cache), text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            log = work / "log.jsonl"
            while not (log.exists() and len(log.read_text().splitlines()) >= 2):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err[-2000:]
        step = int(checkpoint.load(work / "ck.npz").state.step)
        assert step >= 200 and step % 100 == 0
        # it loads in a new process: predict with it, and resume from it
        jaxnn_cli(cache, work, "predict", "--model", "ck.npz", "--data", "diabetes", "--json")
        jaxnn_cli(cache, work, "train", "--data", "diabetes", "--model", "linear", "--quiet",
                  "--steps", str(step + 50), "--resume", "ck.npz", "--save", "more.npz")
        assert int(checkpoint.load(work / "more.npz").state.step) == step + 50
        # divergence: exit 3, the last finite parameters saved, loadable, resuming refused by name
        jaxnn_cli(cache, work, "train", "--hidden", "13", "--activation", "sigmoid", "--optimizer", "sgd",
                  "--lr", "1e6", "--epochs", "20", "--quiet",
                  "--save", "div.npz", status=3)
        diverged = checkpoint.load(work / "div.npz")
        assert int(diverged.state.diverged_step) >= 0
        assert all(np.isfinite(np.asarray(leaf)).all()
                   for leaf in __import__("jax").tree_util.tree_leaves(diverged.state.params))
        out = json.loads(jaxnn_cli(cache, work, "predict", "--model", "div.npz", "--data", "diabetes",
                                   "--json"))
        return len(out["predictions"])

    assert cold_then_warm(tmp_path, workflow) == 442


def test_every_readme_python_block_runs_in_a_fresh_process_cold_and_warm(tmp_path: Path) -> None:
    """The README's examples (its quickstart first) as a new user runs them: each in a new process."""
    from test_docs import python_blocks

    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 3
    quickstart = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    stated = float(re.search(r"prints `test accuracy: ([0-9.]+)`", quickstart).group(1))  # type: ignore[union-attr]

    def workflow(cache: Path, work: Path) -> Any:
        outputs = []
        for line, code in blocks:
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work,
                               env=user_env(cache), timeout=300, check=False)
            assert p.returncode == 0, (f"README.md:{line}", p.stderr[-3000:])
            outputs.append(p.stdout)
        return outputs

    outputs = cold_then_warm(tmp_path, workflow)
    printed = re.fullmatch(r"test accuracy: ([0-9.]+)", outputs[0].strip())
    assert printed is not None, outputs[0]
    assert abs(float(printed.group(1)) - stated) <= 0.005  # as test_docs: another BLAS may round one digit
