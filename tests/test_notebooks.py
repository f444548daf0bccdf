"""Every notebook in notebooks/ runs headless as a plain script, as a reader would run it.

Notebooks are jupytext "percent" scripts. Each is executed in a fresh interpreter
(``sys.executable``) with the Agg backend and ``JAXNN_NOTEBOOK_OUT`` pointing at a temporary
directory, where notebooks save their figures. Notebooks added later are picked up by the glob.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMEOUT_S = 300


def _run(notebook: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        MPLBACKEND="Agg",
        JAXNN_NOTEBOOK_OUT=str(out),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    env.pop("JAX_ENABLE_X64", None)  # each notebook chooses its own precision
    return subprocess.run(
        [sys.executable, str(notebook)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_notebooks_are_found():
    assert ROOT / "notebooks" / "01_foundations.py" in NOTEBOOKS


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_jupytext_percent(notebook):
    text = notebook.read_text()
    assert text.startswith("# ---\n# jupyter:\n"), "missing the jupytext header"
    nb = jupytext.reads(text, fmt="py:percent")
    kinds = [cell.cell_type for cell in nb.cells]
    assert "markdown" in kinds and "code" in kinds
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_headless(notebook, tmp_path):
    proc = _run(notebook, tmp_path)
    assert proc.returncode == 0, f"{notebook.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    if notebook.stem == "01_foundations":
        pngs = sorted(tmp_path.glob("*.png"))
        assert len(pngs) >= 3, pngs
        for png in pngs:
            data = png.read_bytes()
            assert len(data) > 1000, png
            assert data.startswith(PNG_SIGNATURE), png
        # The seed's numbers appear in the output.
        for number in ("0.9820137900379085", "2.3755", "0.2489"):
            assert number in proc.stdout, number
        # Its gradient-check table: every section 1.2 entry passed.
        checked = re.search(r"^(\d+)/(\d+) pass", proc.stdout, flags=re.M)
        assert checked is not None and checked[1] == checked[2] and int(checked[1]) >= 9
