"""Checkpoints: exact round trips, bit-identical resume, and refusal of every tampered file."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxnn import checkpoint, training
from jaxnn.cli import main
from jaxnn.datasets import Scaler
from jaxnn.training import TrainConfig, fit

RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 4))
Y = (X @ np.array([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * RNG.normal(size=(60, 1)))
INFO = {"name": "toy", "task": "regression", "feature_names": ["a", "b", "c", "d"], "target": "y",
        "n_features": 4, "n_outputs": 1, "classes": None}


def leaves(state: training.TrainState) -> list[np.ndarray]:
    """Every array of a state, the key as its uint32 data."""
    with_data = state._replace(key=jax.random.key_data(state.key))
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(with_data)]


def assert_same_state(a: training.TrainState, b: training.TrainState) -> None:
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)  # bit-identical, not merely close


CONFIGS = [
    TrainConfig(hidden=(5,), optimizer="sgd", schedule="cosine", epochs=12, chunk_epochs=3, batch_size=16),
    TrainConfig(hidden=(5, 3), optimizer="momentum", schedule="exponential", epochs=12, chunk_epochs=4,
                batch_size=16, activation="tanh"),
    TrainConfig(hidden=(), optimizer="adam", epochs=12, chunk_epochs=3, batch_size=16, dtype="float64",
                patience=2, lr=0.05),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.optimizer}-{c.schedule}-{c.dtype}")
def test_round_trip_is_exact_and_resume_is_bit_identical(tmp_path: Path, config: TrainConfig) -> None:
    saved: list[Path] = []

    def every_chunk(info: training.ChunkInfo) -> None:
        f = tmp_path / f"step{info.steps_done}.npz"
        checkpoint.save(f, info.state, config, scaler=Scaler.fit(X), dataset=INFO)
        saved.append(f)

    full = fit(config, X, Y, X_val=X[:10], Y_val=Y[:10], callback=every_chunk)
    assert len(saved) >= 2
    last = checkpoint.load(saved[-1])
    assert_same_state(last.state, full.state)
    assert last.config == config
    assert last.dataset == INFO
    np.testing.assert_array_equal(last.scaler.mean, X.mean(axis=0))
    if config.dtype == "float64":
        assert leaves(last.state)[0].dtype == np.float64
    # Resume from the first mid-run checkpoint: the same final state, bit for bit.
    mid = checkpoint.load(saved[0])
    assert 0 < int(mid.state.step) < full.steps
    resumed = fit(mid.config, X, Y, X_val=X[:10], Y_val=Y[:10], state=mid.state)
    assert_same_state(resumed.state, full.state)
    for a, b in zip(jax.tree_util.tree_leaves(resumed.params), jax.tree_util.tree_leaves(full.params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_same_seed_identical_different_seed_differs() -> None:
    c = CONFIGS[0]
    a, b = fit(c, X, Y), fit(c, X, Y)
    assert_same_state(a.state, b.state)
    other = fit(TrainConfig(**{**c.__dict__, "seed": 1}), X, Y)
    assert not np.array_equal(np.asarray(other.params[0]["W"]), np.asarray(a.params[0]["W"]))


def test_final_params_are_best_params_after_early_stopping(tmp_path: Path) -> None:
    c = TrainConfig(hidden=(4,), epochs=60, patience=1, tol=1e9, chunk_epochs=5, batch_size=16)
    res = fit(c, X, Y, X_val=X[:10], Y_val=Y[:10])
    assert res.stopped_early
    checkpoint.save(tmp_path / "m.npz", res.state, c)
    ck = checkpoint.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(np.asarray(ck.params[0]["W"]), np.asarray(res.params[0]["W"]))
    assert ck.dataset == {"n_features": 4, "n_outputs": 1}


# --- the generic layer ---------------------------------------------------------------------


def test_save_arrays_round_trip_and_kind(tmp_path: Path) -> None:
    arrays = {"coefs/0": np.arange(6, dtype=np.float32).reshape(2, 3), "n_iter": np.int32(7),
              "mask": np.array([True, False]), "seeds": np.array([1, 2], np.uint32),
              "x64": np.linspace(0, 1, 3)}
    f = tmp_path / "est.npz"
    checkpoint.save_arrays(f, arrays, {"params": {"alpha": 1e-4}, "classes": [0, 1]}, kind="estimator")
    got, meta = checkpoint.load_arrays(f, kind="estimator")
    assert meta == {"params": {"alpha": 1e-4}, "classes": [0, 1]}
    assert set(got) == set(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == np.asarray(v).dtype and got[k].shape == np.shape(v)
        np.testing.assert_array_equal(got[k], v)
    with pytest.raises(ValueError, match="holds 'estimator', expected 'train_state'"):
        checkpoint.load_arrays(f, kind="train_state")
    with pytest.raises(ValueError, match="train_state"):
        checkpoint.load(f)
    assert sorted(np.load(f, allow_pickle=False).files) == sorted([*arrays, "__meta__"])  # plain npz


@pytest.mark.parametrize(("arrays", "meta", "exc", "match"), [
    ({"a": np.array([1], dtype=np.int64)}, {}, TypeError, "int64"),
    ({"a": np.array(["x"])}, {}, TypeError, "dtype"),
    ({"../evil": np.zeros(1, np.float32)}, {}, ValueError, "invalid array name"),
    ({"__meta__": np.zeros(1, np.float32)}, {}, ValueError, "invalid array name"),
    ({"a": np.zeros(1, np.float32)}, {"x": float("nan")}, ValueError, "strict JSON"),
    ({"a": np.zeros(1, np.float32)}, {"x": object()}, TypeError, "JSON-serialisable"),
])
def test_save_arrays_refuses_what_it_could_not_load(tmp_path: Path, arrays, meta, exc, match) -> None:
    with pytest.raises(exc, match=match):
        checkpoint.save_arrays(tmp_path / "x.npz", arrays, meta)
    assert os.listdir(tmp_path) == []  # nothing written, no temp file left


def test_atomic_write_keeps_previous_file_when_writing_fails(tmp_path: Path) -> None:
    f = tmp_path / "c.npz"
    checkpoint.save_arrays(f, {"a": np.ones(3, np.float32)}, {"v": 1})
    before = f.read_bytes()

    def broken(fh) -> None:
        fh.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_write(f, broken)
    assert f.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]
    with pytest.raises(IsADirectoryError):
        checkpoint.atomic_write(tmp_path, broken)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.atomic_write(tmp_path / "nope" / "c.npz", broken)


# --- tampered files --------------------------------------------------------------------------


class Payload:
    """Unpickling this creates a file: proof that a loader executed code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def read_members(f: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(f, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    header = json.loads(members.pop("__meta__").tobytes().decode())
    return members, header


def write_members(f: Path, members: dict[str, np.ndarray], header: dict | bytes | None) -> None:
    """An npz written by hand, pickles allowed: what an attacker could produce."""
    with zipfile.ZipFile(f, "w") as zf:
        for name, a in members.items():
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, np.asarray(a), allow_pickle=True)
        if header is not None:
            raw = header if isinstance(header, bytes) else json.dumps(header).encode()
            with zf.open("__meta__.npy", "w") as fh:
                np.lib.format.write_array(fh, np.frombuffer(raw, np.uint8))


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    c = TrainConfig(hidden=(5,), optimizer="adam", epochs=2, batch_size=16)
    res = fit(c, X, Y)
    f = tmp_path_factory.mktemp("good") / "good.npz"
    checkpoint.save(f, res.state, c, scaler=Scaler.fit(X), dataset=INFO, history=res.history)
    return f


def _tamper(kind: str, good: Path, bad: Path) -> None:
    members, header = read_members(good)
    raw = good.read_bytes()
    if kind == "object_array":
        members["params/0/W"] = np.array([Payload(bad.with_suffix(".pwned")), 1], dtype=object)
        write_members(bad, members, header)
    elif kind == "object_array_declared":
        members["params/0/W"] = np.array([Payload(bad.with_suffix(".pwned")), 1], dtype=object)
        header["arrays"]["params/0/W"] = {"shape": [2], "dtype": "object"}
        write_members(bad, members, header)
    elif kind == "extra_key_undeclared":
        members["evil"] = np.zeros(3, np.float32)
        write_members(bad, members, header)
    elif kind == "extra_key_declared":
        members["evil"] = np.zeros(3, np.float32)
        header["arrays"]["evil"] = {"shape": [3], "dtype": "float32"}
        write_members(bad, members, header)
    elif kind == "missing_key":
        del members["opt_state/0/mu/0/W"]
        write_members(bad, members, header)
    elif kind == "missing_key_declared":
        del members["opt_state/0/mu/0/W"]
        del header["arrays"]["opt_state/0/mu/0/W"]
        write_members(bad, members, header)
    elif kind == "wrong_shape":
        members["params/0/b"] = np.zeros(6, np.float32)
        write_members(bad, members, header)
    elif kind == "wrong_shape_declared":
        members["params/0/b"] = np.zeros(6, np.float32)
        header["arrays"]["params/0/b"]["shape"] = [6]
        write_members(bad, members, header)
    elif kind == "wrong_dtype_declared":
        members["step"] = members["step"].astype(np.int64)
        header["arrays"]["step"]["dtype"] = "int64"
        write_members(bad, members, header)
    elif kind == "scaler_wrong_dtype":
        members["scaler/mean"] = members["scaler/mean"].astype(np.float32)
        header["arrays"]["scaler/mean"]["dtype"] = "float32"
        write_members(bad, members, header)
    elif kind == "huge_shape_declared":  # a header claiming 40 GB over a few bytes of data
        header["arrays"]["params/0/W"]["shape"] = [100_000, 100_000]
        write_members(bad, {k: v for k, v in members.items() if k != "params/0/W"}, header)
        with zipfile.ZipFile(bad, "a") as zf, zf.open("params/0/W.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)})
            fh.write(b"\x00" * 64)
    elif kind == "no_meta":
        write_members(bad, members, None)
    elif kind == "bad_json":
        write_members(bad, members, b'{"format": "jaxnn-npz", "format_version": 1,')
    elif kind == "nan_in_json":
        write_members(bad, members, json.dumps({**header, "meta": {"x": float("nan")}}).encode())
    elif kind == "wrong_format_version":
        write_members(bad, members, {**header, "format_version": 2})
    elif kind == "wrong_format":
        write_members(bad, members, {**header, "format": "other"})
    elif kind == "bad_config":
        header["meta"]["config"]["lr"] = -1.0
        write_members(bad, members, header)
    elif kind == "config_extra_field":
        header["meta"]["config"]["evil"] = "__import__('os')"
        write_members(bad, members, header)
    elif kind == "feature_names_mismatch":
        header["meta"]["dataset"]["n_features"] = 5
        write_members(bad, members, header)
    elif kind.startswith("truncated_"):
        frac = float(kind.split("_")[1])
        bad.write_bytes(raw[: int(len(raw) * frac)])
    elif kind == "bit_flip":
        flipped = bytearray(raw)
        flipped[len(raw) // 3] ^= 0xFF
        bad.write_bytes(bytes(flipped))
    elif kind == "random_bytes":
        bad.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "plain_npy":
        with open(bad, "wb") as fh:
            np.save(fh, np.zeros(3))
    elif kind == "pickle":
        import pickle

        bad.write_bytes(pickle.dumps(Payload(bad.with_suffix(".pwned"))))
    else:  # pragma: no cover
        raise AssertionError(kind)


TAMPERED = ["object_array", "object_array_declared", "extra_key_undeclared", "extra_key_declared",
            "missing_key", "missing_key_declared", "wrong_shape", "wrong_shape_declared",
            "wrong_dtype_declared", "huge_shape_declared", "scaler_wrong_dtype", "no_meta", "bad_json",
            "nan_in_json",
            "wrong_format_version", "wrong_format", "bad_config", "config_extra_field",
            "feature_names_mismatch", "truncated_0.1", "truncated_0.5", "truncated_0.95",
            "truncated_0.999", "bit_flip", "random_bytes", "empty", "plain_npy", "pickle"]


@pytest.mark.parametrize("kind", TAMPERED)
def test_tampered_files_are_refused(tmp_path: Path, good_checkpoint: Path, kind: str, capsys) -> None:
    bad = tmp_path / "bad.npz"
    _tamper(kind, good_checkpoint, bad)
    with pytest.raises(ValueError, match=r"'.*bad\.npz' is not a valid jaxnn checkpoint: ") as err:
        checkpoint.load(bad)
    assert "\n" not in str(err.value)
    # The CLI: exit status 2 and one line on stderr.
    assert main(["predict", "--model", str(bad), "--data", "diabetes"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "bad.npz" in captured.err
    assert not bad.with_suffix(".pwned").exists()  # nothing was unpickled


def test_the_object_array_payload_would_run_if_unpickled(tmp_path: Path, good_checkpoint: Path) -> None:
    """The tampering test above can fail: numpy with allow_pickle=True does execute it."""
    bad = tmp_path / "bad.npz"
    _tamper("object_array", good_checkpoint, bad)
    with np.load(bad, allow_pickle=True) as z:
        z["params/0/W"]
    assert bad.with_suffix(".pwned").exists()


def test_good_checkpoint_loads_and_unchanged_copy_loads(tmp_path: Path, good_checkpoint: Path) -> None:
    """The tampering helpers themselves produce a loadable file when they change nothing."""
    members, header = read_members(good_checkpoint)
    copy = tmp_path / "copy.npz"
    write_members(copy, members, header)
    a, b = checkpoint.load(good_checkpoint), checkpoint.load(copy)
    assert_same_state(a.state, b.state)
    assert len(a.history.train_loss) == 8


def test_missing_or_directory_model_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        checkpoint.load(tmp_path / "none.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        checkpoint.load(tmp_path)


def test_predict_subprocess_refuses_garbage_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.npz"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    cmd = [sys.executable, "-m", "jaxnn.cli", "predict", "--model", str(bad), "--data", "diabetes"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "garbage.npz" in lines[0] and "Traceback" not in proc.stderr
