"""No shell, no code execution from data, and files only where the user asked.

Two halves:

* a static check over the AST of every module in ``jaxnn/``: no ``os.system``/``popen``/
  ``exec*``/``spawn*``, no ``subprocess`` call with ``shell=True``, no builtin
  ``eval``/``exec``/``compile``/``__import__``, no pickle-family import, and every
  ``np.load`` passes ``allow_pickle=False`` literally (``allow_pickle=True`` is refused
  anywhere). The checker is itself tested on a module that breaks every rule.
* a runtime check: ``jaxnn train`` in an empty working directory, with its home and cache
  directories redirected into the test's temporary directory, creates exactly the files
  it was asked to and nothing else -- and a ``--data`` path full of shell syntax is only
  ever a file name.
"""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jaxnn
from jaxnn.cli import main

PACKAGE = Path(jaxnn.__file__).resolve().parent

# os functions that start processes (a shell, or any program)
OS_PROCESS = {"system", "popen", "startfile", "posix_spawn", "posix_spawnp", "fork", "forkpty"}
OS_PROCESS_PREFIXES = ("exec", "spawn")
BUILTINS_THAT_RUN_CODE = {"eval", "exec", "compile", "__import__"}
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
LOADERS_NEEDING_ALLOW_PICKLE = {"load"}  # np.load / numpy.load / jnp.load


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ``""``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _is_true(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def violations(source: str, filename: str = "<string>") -> list[str]:
    """Every forbidden construct in ``source``, as ``file:line: what``."""
    tree = ast.parse(source, filename=filename)
    found: list[str] = []

    def flag(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNPICKLING_MODULES:
                    flag(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if mod in UNPICKLING_MODULES:
                flag(node, f"from {node.module} import ...")
            if mod == "os":
                for alias in node.names:
                    if alias.name in OS_PROCESS or alias.name.startswith(OS_PROCESS_PREFIXES):
                        flag(node, f"from os import {alias.name}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, last = name.rpartition(".")
            kwargs = {k.arg: k.value for k in node.keywords if k.arg is not None}
            if isinstance(node.func, ast.Name) and name in BUILTINS_THAT_RUN_CODE:
                flag(node, f"builtin {name}()")
            if head == "os" and (last in OS_PROCESS or last.startswith(OS_PROCESS_PREFIXES)):
                flag(node, f"{name}()")
            if "shell" in kwargs and not (isinstance(kwargs["shell"], ast.Constant)
                                          and kwargs["shell"].value is False):
                flag(node, f"{name}(shell=...)")
            if name.endswith("create_subprocess_shell"):
                flag(node, f"{name}()")
            if "allow_pickle" in kwargs and not (isinstance(kwargs["allow_pickle"], ast.Constant)
                                                 and kwargs["allow_pickle"].value is False):
                flag(node, f"{name}(allow_pickle=...)")
            if head in {"np", "numpy", "jnp", "jax.numpy"} and last in LOADERS_NEEDING_ALLOW_PICKLE \
                    and "allow_pickle" not in kwargs:
                flag(node, f"{name}() without allow_pickle=False")
            if head in {"yaml", "torch"} and last in {"load", "unsafe_load"}:
                flag(node, f"{name}()")
    return found


def package_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_checker_catches_every_rule() -> None:
    bad = """
import os, pickle, subprocess
from os import system
from joblib import load
import numpy as np
os.system("ls")
os.popen("ls")
os.execv("/bin/sh", [])
subprocess.run("ls", shell=True)
subprocess.Popen(["ls"], shell=flag)
eval("1 + 1")
exec("x = 1")
compile("1", "f", "eval")
__import__("os")
np.load("a.npy")
np.load("a.npy", allow_pickle=True)
np.lib.format.read_array(fh, allow_pickle=True)
yaml.load(text)
"""
    found = violations(bad)
    for what in ("import pickle", "from os import system", "from joblib import", "os.system()",
                 "os.popen()", "os.execv()", "subprocess.run(shell=...)", "subprocess.Popen(shell=...)",
                 "builtin eval()", "builtin exec()", "builtin compile()", "builtin __import__()",
                 "np.load() without allow_pickle=False", "np.load(allow_pickle=...)",
                 "np.lib.format.read_array(allow_pickle=...)", "yaml.load()"):
        assert any(what in f for f in found), (what, found)
    ok = """
import numpy as np
np.load("a.npz", allow_pickle=False)
np.lib.format.write_array(fh, a, allow_pickle=False)
jax.jit(f).lower(x).compile()
subprocess.run(["ls"], shell=False)
"""
    assert violations(ok) == []


def test_jaxnn_never_runs_a_shell_or_unpickles() -> None:
    modules = package_modules()
    assert PACKAGE / "training.py" in modules and PACKAGE / "cli" / "__init__.py" in modules
    found = [v for m in modules
             for v in violations(m.read_text(encoding="utf-8"), str(m.relative_to(PACKAGE)))]
    assert found == []


# ------------------------------------------------------------------------ runtime


def _tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _sandbox(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """(cwd, home, env): an empty working directory and a private home for a child jaxnn."""
    cwd, home = tmp_path / "work", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    env = dict(os.environ)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), MPLCONFIGDIR=str(home / ".mpl"),
               TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return cwd, home, env


def _jaxnn(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jaxnn.cli", *argv], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=180, check=False)


def test_train_writes_only_what_it_was_asked_to(tmp_path: Path) -> None:
    cwd, _, env = _sandbox(tmp_path)
    data = tmp_path / "data.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(12)), encoding="utf-8")
    (cwd / "out").mkdir()
    before = _tree(tmp_path)
    proc = _jaxnn(["train", "--data", str(data), "--epochs", "2", "--json", "--save", "out/x.npz",
                   "--out", "figs", "--log-jsonl", "run.jsonl"], cwd, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    after = _tree(tmp_path)
    # caches are the tools' (JAX, matplotlib), not ours, and were redirected into home/
    new = {p for p in set(after) - set(before) if not p.startswith(("home/.cache/", "home/.mpl/"))}
    figures = {p for p in new if p.startswith("work/figs/")}
    assert new - figures == {"work/out/x.npz", "work/run.jsonl"}  # no temp file left beside x.npz
    assert figures and all(p.endswith(".png") for p in figures)
    assert after["data.csv"] == before["data.csv"]  # the input is read, never rewritten


def test_shell_syntax_in_a_path_is_only_a_file_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    evil = "x; touch pwned #$(touch pwned2)`touch pwned3`"
    for argv in (["train", "--data", f"{evil}.csv"],
                 ["train", "--save", f"{evil}/m.npz", "--epochs", "1"],
                 ["predict", "--model", f"{evil}.npz", "--data", "diabetes"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "touch pwned" in err
    assert list(tmp_path.iterdir()) == []


def test_a_path_with_a_newline_stays_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A file name cannot forge extra lines on stderr (the path is quoted with repr)."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "a\nFAKE ERROR\nb.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FAKE ERROR" in err
