"""`make lab`: JupyterLab opens the percent-format notebooks/*.py as notebooks.

The static checks run everywhere. The server check needs the ``lab`` extra (JupyterLab is not
in the ``test`` extra: it is heavy); where it is installed, it starts ``jupyter lab`` on
notebooks/ the way the Makefile does, without a browser, and asks the server's REST API what a
learner's double click would get.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABCONFIG = ROOT / "notebooks" / ".jupyter"
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"


def test_lab_extra_and_make_target():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", req)[0] for req in extras["lab"]}
    assert {"jupyterlab", "jupytext", "ipykernel"} <= names
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\nlab:"):]
    assert "'.[lab]'" in makefile and "notebooks/.jupyter" in recipe and "jupyter lab notebooks/" in recipe


def test_labconfig_makes_python_files_open_as_notebooks():
    overrides = json.loads((LABCONFIG / "labconfig" / "default_setting_overrides.json").read_text())
    assert overrides[DOCMANAGER]["defaultViewers"]["python"] == "Jupytext Notebook"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:  # a local server this test started
        return json.load(r)


@pytest.mark.slow
def test_jupyter_lab_serves_the_py_files_as_notebooks(tmp_path):
    # the test extra installs JupyterLab and jupytext (the lab extra's packages)
    # the command `make lab` runs (as root too: the recipe adds --allow-root), with this test's flags
    port, token = _free_port(), secrets.token_hex(16)
    args = f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    dry = subprocess.run(["make", "-s", "--no-print-directory", "-n", "lab", f"LAB_ARGS={args}",
                          f"BIN={Path(sys.executable).parent}"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    lines = dry.splitlines()  # (after the lab extra's install lines, when its stamp is missing)
    recipe = "\n".join(lines[next(i for i, line in enumerate(lines) if "JUPYTER_CONFIG_PATH=" in line):])
    assert "jupyter lab notebooks/" in recipe and "--allow-root" in recipe, recipe
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path))
    log = (tmp_path / "server.log").open("w")
    # its own process group: stopping the shell's group stops the server it started
    server = subprocess.Popen(["sh", "-c", recipe], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start:\n" + (tmp_path / "server.log").read_text())
                time.sleep(0.5)
        listing = _get(f"{base}/api/contents?token={token}")["content"]
        kinds = {item["name"]: item["type"] for item in listing}
        for name in ("01_foundations.py", "02_linear_regression_and_nn.py", "03_sklearn_api.py",
                     "solutions.py"):
            assert kinds.get(name) == "notebook", kinds
        assert kinds.get("README.md") == "file", kinds  # notebooks/jupytext.toml: only .py and .ipynb
        nb = _get(f"{base}/api/contents/01_foundations.py?type=notebook&content=1&token={token}")
        assert nb["type"] == "notebook" and nb["format"] == "json"
        assert any("figure" in c["metadata"].get("tags", []) for c in nb["content"]["cells"])
        settings = _get(f"{base}/lab/api/settings/{DOCMANAGER}?token={token}")
        viewers = settings["schema"]["properties"]["defaultViewers"]["default"]
        assert viewers.get("python") == "Jupytext Notebook", viewers
        specs = _get(f"{base}/api/kernelspecs?token={token}")
        assert specs["default"] == "python3" and "python3" in specs["kernelspecs"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
