"""Hostile and broken files are refused in bounded memory and time, before anything is decompressed.

Real files on disk, real subprocesses for the CLI and for peak-memory measurements, a real FIFO.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jaxnn import checkpoint
from jaxnn.cli import main
from jaxnn.datasets import Scaler
from jaxnn.training import TrainConfig, fit

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))
Y = X @ np.array([[1.0], [-2.0], [0.5]])
INFO = {"name": "toy", "task": "regression", "feature_names": ["a", "b", "c"], "target": "y",
        "n_features": 3, "n_outputs": 1, "classes": None}
CONFIG = TrainConfig(hidden=(), optimizer="adam", epochs=2, batch_size=10)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    res = fit(CONFIG, X, Y)
    f = tmp_path_factory.mktemp("ck") / "good.npz"
    checkpoint.save(f, res.state, CONFIG, scaler=Scaler.fit(X), dataset=INFO, history=res.history)
    return f


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jaxnn.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


def one_line_exit_2(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 2, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    command = r.args[3]  # python -m jaxnn.cli COMMAND ...
    assert len(lines) == 1 and lines[0].startswith(f"jaxnn {command}: error:"), r.stderr[-3000:]
    for w in words:
        assert w in lines[0], lines[0]


def bomb(src: Path, dst: Path, gib: float = 1.0) -> None:
    """``src`` with params/0/W re-declared (metadata and .npy header) as ``gib`` GiB of deflated zeros."""
    with np.load(src) as z:
        meta = json.loads(z["__meta__"].tobytes())
    k = meta["arrays"]["params/0/W"]["shape"][1]
    rows = int(gib * (1 << 30)) // (4 * k)
    meta["arrays"]["params/0/W"]["shape"] = [rows, k]
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=1,
                                                      allowZip64=True) as zout:
        for info in zin.infolist():
            if info.filename == "__meta__.npy":
                with zout.open(info.filename, "w") as f:
                    np.lib.format.write_array(f, np.frombuffer(json.dumps(meta).encode(), np.uint8))
            elif info.filename == "params/0/W.npy":
                with zout.open(info.filename, "w", force_zip64=True) as f:
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": "<f4", "fortran_order": False, "shape": (rows, k)})
                    zeros, left = bytes(1 << 24), rows * k * 4
                    while left:
                        f.write(zeros[:min(left, len(zeros))])
                        left -= min(left, len(zeros))
            else:
                zout.writestr(info, zin.read(info.filename))


def test_deflate_bomb_is_refused_before_decompressing_in_bounded_memory(good: Path, tmp_path: Path) -> None:
    f = tmp_path / "bomb.npz"
    bomb(good, f, gib=1.0)
    assert f.stat().st_size < 8 << 20  # a few MB on disk, 1 GiB declared
    # VmHWM is this program's own peak (ru_maxrss would carry over the forking pytest worker's,
    # which Linux keeps across exec)
    code = ("import re, sys\nfrom jaxnn.cli import main\nrc = main(sys.argv[1:])\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print(int(hwm) // 1024, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code, "predict", "--model", str(f), "--data", "diabetes"],
                       capture_output=True, text=True, timeout=120, check=False)
    *err, rss = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr[-3000:]
    assert "params/0/W" in err[0] or "declares" in err[0], err
    assert int(rss) < 700, f"peak RSS {rss} MiB: the 1 GiB member was decompressed"  # before: 6.4 GB


def test_total_declared_size_is_capped(good: Path) -> None:
    with pytest.raises(ValueError, match=r"declares .* bytes of arrays, at most 100"):
        checkpoint.load(good, max_bytes=100)
    with pytest.raises(ValueError, match="declares"):
        checkpoint.load_arrays(good, max_bytes=100)


@pytest.mark.parametrize("change, message", [
    (lambda a, m: a.update({"history/train_loss": np.zeros(50)}), "history holds 50 training"),
    (lambda a, m: a.update({"history/val_loss": np.zeros(9)}), "validation losses"),
    (lambda a, m: a.update({"step": np.int32(-1)}), "step -1 must be >= 0"),
    (lambda a, m: a.update({"epoch_rows": np.full_like(a["epoch_rows"], -3.0)}), "epoch_rows"),
    (lambda a, m: a.update({"step": np.int32(2_000_000_000)}), "history holds|past the config"),
    (lambda a, m: a.update({"diverged_step": np.int32(-7)}), "diverged_step"),
    (lambda a, m: a.update({"params/0/W": np.full_like(a["params/0/W"], np.nan)}), "NaN or inf"),
    (lambda a, m: a.update({"opt_state/0/mu/0/b": np.full_like(a["opt_state/0/mu/0/b"], np.inf)}),
     "NaN or inf"),
    (lambda a, m: m["meta"]["dataset"].update({"feature_names": ["a", "a", "c"]}), "duplicate"),
])
def test_tampered_counters_histories_and_values_are_refused(good: Path, tmp_path: Path, change,
                                                            message: str) -> None:
    f = tmp_path / "bad.npz"
    arrays, meta = checkpoint.load_arrays(good)
    arrays = {k: np.array(v) for k, v in arrays.items()}
    wrapped = {"meta": meta}
    change(arrays, wrapped)
    checkpoint.save_arrays(f, arrays, wrapped["meta"], kind="train_state")
    with pytest.raises(ValueError, match=message):
        checkpoint.load(f)


def _patch(src: Path, dst: Path, member: str, local_off: int, central_off: int, fmt: str, value: int) -> None:
    """Overwrite one field of ``member``'s local and central zip headers."""
    data = bytearray(src.read_bytes())
    name = member.encode()
    for sig, off in ((b"PK\x03\x04", local_off), (b"PK\x01\x02", central_off)):
        i = data.find(sig)
        while i >= 0:
            n_len_at = i + (26 if sig == b"PK\x03\x04" else 28)
            n_len = struct.unpack_from("<H", data, n_len_at)[0]
            start = i + (30 if sig == b"PK\x03\x04" else 46)
            if data[start:start + n_len] == name:
                struct.pack_into(fmt, data, i + off, value)
            i = data.find(sig, i + 4)
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("field, local_off, central_off, fmt, value, words", [
    ("encrypted", 6, 8, "<H", 0x1, "encrypted"),
    ("method 99 (AES)", 8, 10, "<H", 99, "compression method 99"),
    ("method 12 (bzip2)", 8, 10, "<H", 12, "compression method 12"),
    ("zip version 9.9", 4, 6, "<H", 99, "version 9.9"),
])
def test_zip_features_jaxnn_never_writes_are_one_line_exit_2(good: Path, tmp_path: Path, field: str,
                                                             local_off: int, central_off: int, fmt: str,
                                                             value: int, words: str, capsys) -> None:
    f = tmp_path / "odd.npz"
    _patch(good, f, "params/0/W.npy", local_off, central_off, fmt, value)
    with pytest.raises(ValueError, match=words):
        checkpoint.load(f)
    assert main(["predict", "--model", str(f), "--data", "diabetes"]) == 2  # (was 1, with a traceback)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_fifo_model_and_data_are_refused_without_opening(good: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    one_line_exit_2(cli("predict", "--model", str(fifo), "--data", "diabetes", cwd=tmp_path, timeout=60),
                    "not a regular file")
    one_line_exit_2(cli("train", "--resume", str(fifo), cwd=tmp_path, timeout=60), "not a regular file")
    csv_fifo = tmp_path / "data.csv"
    os.mkfifo(csv_fifo)
    one_line_exit_2(cli("train", "--data", str(csv_fifo), cwd=tmp_path, timeout=60), "not a regular file")


def test_save_onto_a_fifo_or_device_is_refused_and_leaves_it(tmp_path: Path) -> None:
    fifo = tmp_path / "out.npz"
    os.mkfifo(fifo)
    for target in (str(fifo), "/dev/null"):
        one_line_exit_2(cli("train", "--steps", "1", "--save", target, cwd=tmp_path, timeout=60),
                        "not a regular file")
    assert fifo.is_fifo() and Path("/dev/null").is_char_device()
    with pytest.raises(ValueError, match="not a regular file"):
        checkpoint.atomic_write(fifo, lambda fh: None)


def test_check_regular_file_refuses_what_open_regular_file_refuses_alike(tmp_path: Path) -> None:
    from jaxnn.files import check_regular_file, open_regular_file

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    regular = tmp_path / "ok.csv"
    regular.write_text("a,y\n1,2\n")
    for path in (fifo, tmp_path, tmp_path / "missing.csv"):
        with pytest.raises((OSError, ValueError)) as opened:
            open_regular_file(path, "path").close()
        with pytest.raises(type(opened.value)) as checked:
            check_regular_file(path, "path")
        assert str(checked.value) == str(opened.value)
    check_regular_file(regular, "path")  # a regular file passes
    assert fifo.is_fifo()  # and nothing was opened or replaced


_PREFLIGHT = """
import sys
from jaxnn.cli import main
status = main(sys.argv[1:])
print("STATUS", status, "jax" in sys.modules, "sklearn" in sys.modules)
"""


@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "{fifo}"], "--data: {fifo!r} is not a regular file"),
    (["train", "--resume", "{missing}"], "--resume: no such file"),
    (["train", "--save", "{fifo}"], "--save: {fifo!r} exists and is not a regular file"),
    (["predict", "--model", "{fifo}", "--data", "diabetes"], "--model: {fifo!r} is not a regular file"),
    (["sweep", "--data", "{missing}"], "--data: no such file"),
    (["demo", "--data", "{fifo}"], "--data: {fifo!r} is not a regular file"),
])
def test_bad_paths_fail_before_jax_and_sklearn_are_imported(tmp_path: Path, argv: list[str],
                                                            words: str) -> None:
    fifo, missing = str(tmp_path / "data.csv"), str(tmp_path / "missing.csv")
    os.mkfifo(fifo)
    argv = [a.format(fifo=fifo, missing=missing) for a in argv]
    p = subprocess.run([sys.executable, "-c", _PREFLIGHT, *argv], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, check=False)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"jaxnn {argv[0]}: error: "), p.stderr[-3000:]
    assert words.format(fifo=fifo) in lines[0], lines[0]
    assert p.stdout.split() == ["STATUS", "2", "False", "False"], p.stdout


@pytest.mark.parametrize("argv, line", [
    (["train", "--data", "{csv}", "--target", "price"],
     "jaxnn train: error: --target: column 'price' is not in {csv!r}; available columns: a, b, y"),
    (["train", "--data", "{csv}", "--drop", "id"],
     "jaxnn train: error: --drop: column 'id' is not in {csv!r}; available columns: a, b, y"),
    (["train", "--data", "{csv}", "--one-hot", "city"],
     "jaxnn train: error: --one-hot: column 'city' is not in {csv!r}; available columns: a, b, y"),
    (["train", "--data", "{csv}", "--drop", "y"], "jaxnn train: error: --drop: 'y' is the target column"),
    (["train", "--data", "{csv}", "--drop", "a", "--one-hot", "a"],
     "jaxnn train: error: --drop, --one-hot: ['a'] given to both"),
    (["train", "--data", "{csv}", "--drop", "a", "--drop", "b"],
     "jaxnn train: error: --data: {csv!r} has only the target column 'y'; no features"),
    (["train", "--data", "{numbers}"], "jaxnn train: error: --data: {numbers!r}: the first row (1, 2, 3) is "
     "all numbers, not column names; if the file has no header row, pass --no-header (header=False): "
     "every row is then data and the columns are x0, x1, ..."),
    (["train", "--data", "{empty}"],
     "jaxnn train: error: --data: {empty!r} is empty; expected a header row and data rows"),
    (["train", "--data", "{csv}", "--task", "classification", "--loss", "mse"],
     "jaxnn train: error: --loss: classification needs cross_entropy, got mse"),
    (["train", "--data", "diabetes", "--target", "price"],
     "jaxnn train: error: --target: 'diabetes' has the fixed target 'disease_progression', got 'price'"),
    (["train", "--data", "digits", "--task", "regression"],
     "jaxnn train: error: --task: 'digits' is a classification dataset, got 'regression'"),
    (["train", "--data", "diabetes", "--drop", "age"], "jaxnn train: error: --no-header/--delimiter/--drop/"
     "--one-hot/--drop-missing: 'diabetes' is a built-in dataset, not a CSV file"),
    (["train", "--data", "iris"], "jaxnn train: error: --data: unknown dataset 'iris'; expected one of "
     "diabetes, digits, boston, friedman1 or a path ending in .csv"),
    (["train", "--model", "linear", "--hidden", "8"],
     "jaxnn train: error: --hidden: a linear model has no hidden layers"),
    (["sweep", "--data", "{csv}", "--target", "price"],
     "jaxnn sweep: error: --target: column 'price' is not in {csv!r}; available columns: a, b, y"),
    (["sweep", "--patience", "3"], "jaxnn sweep: error: --patience: jaxnn sweep has no early stopping"),
    (["demo", "--data", "{csv}", "--target", "price"],
     "jaxnn demo: error: --target: column 'price' is not in {csv!r}; available columns: a, b, y"),
    (["demo", "--data", "digits"], "jaxnn demo: error: --data: the demo is a regression study and 'digits' "
     "is a classification dataset; use `jaxnn train --data digits` instead"),
    (["predict", "--model", "{model}", "--data", "{csv}"],
     "jaxnn predict: error: --data: {csv!r} lacks the model's feature column 'c' (2 feature columns "
     "besides the target 'y', the model expects 3)"),
    (["predict", "--model", "{model}", "--data", "{renamed}"],
     "jaxnn predict: error: --data: {renamed!r} lacks the model's feature column 'b' and has a column the "
     "model was not trained on: 'B' (3 feature columns, the model expects 3)"),
    (["predict", "--model", "{model}", "--data", "data.txt"], "jaxnn predict: error: --data: expected a "
     ".csv path or one of diabetes, digits, boston, friedman1, got 'data.txt'"),
])
def test_bad_columns_and_flags_fail_before_jax_and_sklearn_are_imported(good: Path, tmp_path: Path,
                                                                        argv: list[str], line: str) -> None:
    """Before, each of these took the seconds of importing JAX and scikit-learn (and some, loading the
    data) and named the library's arguments (``target:``, ``path:``, ``one_hot:``)."""
    files = {"csv": "a,b,y\n1,2,3\n4,5,6\n", "numbers": "1,2,3\n4,5,6\n", "empty": "",
             "renamed": "a,B,c\n1,2,3\n"}
    names = {k: str(tmp_path / f"{k}.csv") for k in files}
    for k, text in files.items():
        Path(names[k]).write_text(text)
    names["model"] = str(good)
    argv = [a.format(**names) for a in argv]
    p = subprocess.run([sys.executable, "-c", _PREFLIGHT, *argv], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path, check=False)
    assert p.stderr == line.format(**names) + "\n", p.stderr[-3000:]
    assert p.stdout.split() == ["STATUS", "2", "False", "False"], p.stdout


def test_preflight_knows_each_builtin_datasets_target_and_task() -> None:
    """The preflight's table (no scikit-learn imported) says what the loaders return."""
    from jaxnn.cli.userinput import BUILTIN_TARGETS
    from jaxnn.datasets import BOSTON_TARGET, BUILTIN_DATASETS, load_dataset

    assert set(BUILTIN_TARGETS) == set(BUILTIN_DATASETS)
    for name in ("diabetes", "digits", "friedman1"):  # (boston is fetched from OpenML)
        ds = load_dataset(name)
        assert BUILTIN_TARGETS[name] == (ds.target_name, ds.task), name
    assert BUILTIN_TARGETS["boston"] == (BOSTON_TARGET, "regression")
