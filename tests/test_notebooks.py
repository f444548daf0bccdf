"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel, as a learner runs it.

Notebooks are jupytext "percent" scripts. Each is read with jupytext and executed by
``nbclient`` in an ipykernel running this interpreter (``sys.executable``, through a kernelspec
written for the test, so no user-level ``python3`` kernelspec can take its place), with the
notebook's folder as the working directory, matplotlib's *inline* backend and
``JAXNN_NOTEBOOK_OUT`` pointing at a temporary directory, where notebooks also save their
figures. Notebooks added later are picked up by the glob.

Cell tags (``# %% tags=["figure"]`` in the percent format) say what a cell must show:

* ``figure``: the cell displays its figure inline -- an ``image/png`` output of that cell;
* ``exercise``: a "your turn" cell, left blank in the notebook: it runs and prints the
  grader's "not attempted yet" message (never a traceback);
* in ``solutions.py``, the grading cell after a ``solution`` cell prints "Correct", the one
  after a ``mistake`` cell prints "Not yet".
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
COURSE = ("01_foundations", "02_linear_regression_and_nn", "03_sklearn_api")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMEOUT_S = 300  # per cell
INLINE = "module://matplotlib_inline.backend_inline"
# a code cell that draws: pyplot, a jaxnn.plotting figure, or the notebooks' show()/save() helpers
PLOTS = re.compile(r"\bplt\.(subplots|figure|plot)\b|\bplotting\.\w+\(|(?<!def )\b(show|save)\(fig\b")


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _text(cell) -> str:
    """Everything a code cell printed (streams and plain-text results), joined."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out and "text/plain" in out.data:
            parts.append(out.data["text/plain"])
    return "".join(parts)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebooks_are_found():
    stems = {p.stem for p in NOTEBOOKS}
    assert set(COURSE) | {"solutions"} <= stems, stems


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_jupytext_percent(notebook):
    text = notebook.read_text()
    assert text.startswith("# ---\n# jupyter:\n"), "missing the jupytext header"
    nb = jupytext.reads(text, fmt="py:percent")
    kinds = [cell.cell_type for cell in nb.cells]
    assert "markdown" in kinds and "code" in kinds
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_figure_cells_are_tagged(notebook):
    """A cell that draws is tagged "figure" and a "figure" cell draws: the kernel test can trust the tags."""
    for cell in _code_cells(jupytext.read(notebook)):
        draws = bool(PLOTS.search(cell.source))
        what = "untagged figure cell" if draws else "figure tag on a cell that draws nothing"
        assert draws == ("figure" in _tags(cell)), f"{notebook.name}: {what}:\n{cell.source[:300]}"


def test_course_notebooks_have_exercises():
    tagged = {p.stem: sum("exercise" in _tags(c) for c in _code_cells(jupytext.read(p)))
              for p in NOTEBOOKS if p.stem in COURSE}
    assert tagged["01_foundations"] >= 3 and tagged["02_linear_regression_and_nn"] >= 1, tagged


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A kernelspec that runs this interpreter's ipykernel."""
    d = tmp_path_factory.mktemp("kernels")
    spec = d / "jaxnn-test"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "jaxnn tests", "language": "python"}))
    return d


def _execute(notebook: Path, out: Path, kernel_dir: Path):
    """Run the notebook in a fresh kernel; return the executed notebook."""
    nb = jupytext.read(notebook)
    env = dict(os.environ)
    env.update(
        MPLBACKEND=INLINE,  # what a kernel uses by default; never Agg here
        JAXNN_NOTEBOOK_OUT=str(out),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        JUPYTER_RUNTIME_DIR=str(out / "runtime"),  # connection files stay out of ~
    )
    env.pop("JAX_ENABLE_X64", None)  # each notebook chooses its own precision
    (out / "runtime").mkdir()
    km = KernelManager(kernel_name="jaxnn-test", connection_file=str(out / "runtime" / "kernel.json"),
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = NotebookClient(nb, km=km, timeout=TIMEOUT_S,
                            resources={"metadata": {"path": str(notebook.parent)}})
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        pytest.fail(f"{notebook.name} raised in a cell:\n{str(e)[-4000:]}")
    finally:  # a km passed in is the caller's to shut down (nbclient only cleans up its own)
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        km.context.destroy(linger=0)
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_a_kernel(notebook, tmp_path, kernel_dir):
    nb = _execute(notebook, tmp_path, kernel_dir)
    cells = _code_cells(nb)
    for cell in cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{notebook.name}: {errors[0].ename}: {errors[0].evalue}"
        assert "Traceback" not in _text(cell), _text(cell)[-2000:]

    # every figure cell displays its figure inline, and only there
    figures = [c for c in cells if "figure" in _tags(c)]
    for cell in cells:
        pngs = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        if "figure" in _tags(cell):
            assert pngs, f"{notebook.name}: no inline figure from\n{cell.source[:300]}"
        else:
            assert not pngs, f"{notebook.name}: an untagged cell shows a figure\n{cell.source[:300]}"
    if notebook.stem in COURSE:
        assert figures, f"{notebook.name} has no figure cell"

    # the blank exercises run, and say they are blank
    for cell in cells:
        if "exercise" in _tags(cell):
            assert "Not attempted yet" in _text(cell), _text(cell)

    text = "".join(_text(c) for c in cells)
    if notebook.stem == "01_foundations":
        pngs = sorted(tmp_path.glob("*.png"))
        assert len(pngs) >= 3, pngs
        for png in pngs:
            data = png.read_bytes()
            assert len(data) > 1000, png
            assert data.startswith(PNG_SIGNATURE), png
        # The seed's numbers appear in the output.
        for number in ("0.9820137900379085", "2.3755", "0.2489"):
            assert number in text, number
        # Its gradient-check table: every section 1.2 entry passed.
        checked = re.search(r"^(\d+)/(\d+) pass", text, flags=re.M)
        assert checked is not None and checked[1] == checked[2] and int(checked[1]) >= 9
    if notebook.stem == "03_sklearn_api":
        assert {p.name for p in tmp_path.glob("*.png")} >= {"03_loss_curves.png",
                                                             "03_confusion_matrix.png"}
    if notebook.stem == "solutions":
        graded = 0
        for prev, cell in itertools.pairwise(cells):
            if "verdict = exercises.grade_" not in cell.source:
                continue
            graded += 1
            if "solution" in _tags(prev):
                assert _text(cell).startswith("Correct:"), _text(cell)[:2000]
            else:
                assert _text(cell).startswith("Not yet:"), _text(cell)[:2000]
                assert "FAILED" in _text(cell)  # check_vjp's report follows the verdict
        assert graded == 10, graded


def test_solution_grading_cells_follow_their_definitions():
    """In solutions.py a grading cell follows its solution or mistake cell (what the kernel test reads)."""
    cells = _code_cells(jupytext.read(ROOT / "notebooks" / "solutions.py"))
    kinds = []
    for prev, cell in itertools.pairwise(cells):
        if "verdict = exercises.grade_" in cell.source:
            kinds.append("solution" if "solution" in _tags(prev) else
                         "mistake" if ("mistake" in _tags(prev) or "verdict" in prev.source) else "?")
    assert kinds.count("solution") == 4 and "?" not in kinds, kinds


def test_nbformat_is_valid():
    for notebook in NOTEBOOKS:
        nbformat.validate(jupytext.read(notebook))
