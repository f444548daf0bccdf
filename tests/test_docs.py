"""The README and the docs site run as printed, and the site builds with warnings as errors.

* Every ```` ```python ```` block of ``README.md`` and of ``docs/**/*.md`` is executed exactly as
  printed, in order, one namespace per file, in a temporary working directory: a renamed argument
  breaks this test, not a reader. Blocks that are not meant to run (multi-host examples, output
  listings, shell sessions) use another fence language (``text``, ``console``, ``bash``).
* ``mkdocs build --strict`` (``make docs``) succeeds into a temporary folder. The notebooks are
  converted but not executed here (``JAXNN_DOCS_EXECUTE=false``): tests/test_notebooks.py executes
  them in a real kernel, and ``make docs`` executes them for the published pages.
* The benchmarks page renders every key of ``benchmarks/results.json``, including keys added later.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")


def code_blocks(text: str) -> list[tuple[str, int, str]]:
    """``(language, first line number, code)`` of every fenced block, in order."""
    blocks: list[tuple[str, int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        info = m.group("info").strip()
        lang = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        blocks.append((lang, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def python_blocks(path: Path) -> list[tuple[int, str]]:
    return [(line, code) for lang, line, code in code_blocks(path.read_text()) if lang in ("python", "py")]


def test_fence_parser():
    text = "a\n```python\nx = 1\n```\n\n```text\nout\n```\n    ```py\n    y = 2\n    ```\n"
    assert code_blocks(text) == [("python", 3, "x = 1\n"), ("text", 7, "out\n"), ("py", 10, "y = 2\n")]


def test_pages_with_code_are_found():
    with_code = {p.relative_to(ROOT).as_posix() for p in PAGES if python_blocks(p)}
    assert {"README.md", "docs/how-to/train-your-own-model.md", "docs/how-to/check-a-backward.md",
            "docs/how-to/sklearn.md", "docs/how-to/save-resume-predict.md"} <= with_code


def _readme_promises(ns: dict, printed: str) -> None:
    """What the README's examples claim, beyond running (was tests/test_readme_engine.py)."""
    import numpy as np

    result, loss_fn, params, X, Y = ns["result"], ns["loss_fn"], ns["params"], ns["X"], ns["Y"]
    before = float(np.mean(loss_fn(params, X, Y)))
    after = float(np.mean(loss_fn(result.params, X, Y)))
    assert after < 0.2 * before  # "Train your own model" trains
    assert result.history.val_loss.shape == (result.epochs,)
    assert result.diverged_step is None
    assert ns["report"].passed is False and "check_vjp(dense): FAILED" in printed  # "Check your own"


def _train_your_own_promises(ns: dict, printed: str) -> None:
    assert ns["result"].stopped_early and ns["result"].epochs < 200  # "stopped well before the 200"
    assert "25 60 35" in printed  # the resume example's stated output


PROMISES = {"README.md": _readme_promises, "docs/how-to/train-your-own-model.md": _train_your_own_promises}


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_python_blocks_run_as_printed(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    out = io.StringIO()
    for line, code in python_blocks(page):
        name = f"{page.relative_to(ROOT).as_posix()}:{line}"
        with contextlib.redirect_stdout(out):
            exec(compile(code, name, "exec"), namespace)  # running the page's code is the point
    check = PROMISES.get(page.relative_to(ROOT).as_posix())
    if check is not None:
        check(namespace, out.getvalue())


def test_readme_quickstart_prints_what_it_says():
    """The README's quickstart states its output; the run must print exactly that."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    (line, code), = python_blocks_of(section)
    stated = float(re.search(r"prints `test accuracy: ([0-9.]+)`", section).group(1))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md quickstart:{line}", "exec"), {})
    printed = re.fullmatch(r"test accuracy: ([0-9.]+)", out.getvalue().strip())
    assert printed is not None, out.getvalue()
    # the same to within two of the 450 test digits: another BLAS may round one differently
    assert abs(float(printed.group(1)) - stated) <= 0.005, (printed.group(0), stated)


def python_blocks_of(text: str) -> list[tuple[int, str]]:
    return [(line, code) for lang, line, code in code_blocks(text) if lang == "python"]


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for heading in ("## Two commands", "## Quickstart", "## Train your own model",
                    "## Check your own backward", "## Command line", "## Performance"):
        assert heading in text, heading
    assert "make demo" in text and "make test" in text and "make docs" in text
    # the README's links into the docs point at pages that exist
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / target).is_file(), target


def test_readme_lists_every_cli_subcommand():
    from jaxnn.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    text = (ROOT / "README.md").read_text()
    table = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    for command in commands:
        assert f"`jaxnn {command}" in table, command


# --- the benchmarks page -----------------------------------------------------------------------


def _benchmarks_hook():
    path = ROOT / "docs" / "hooks" / "benchmarks.py"
    spec = importlib.util.spec_from_file_location("docs_benchmarks_hook", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_page_renders_every_key_including_new_ones():
    hook = _benchmarks_hook()
    results = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    results["first_fit"] = {"note": "a workload added later", "jaxnn": {"seconds": 1.25, "compile_s": 0.5},
                            "sklearn": {"seconds": 0.75}}
    results["grid_rows"] = [{"what": "GridSearchCV, 3 folds", "seconds": 12.0}]
    page = hook.render(results)
    for key in results:
        assert f"`{key}`" in page, key
    machine = results["machine"]
    assert machine["date"] in page and machine["jax"] in page
    assert "`compile_s`" in page and "1.25" in page and "GridSearchCV, 3 folds" in page
    assert hook.MARKER in (ROOT / "docs" / "benchmarks.md").read_text()


# --- the site -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[test]' (or '.[docs]')")
    env = dict(os.environ, JAXNN_DOCS_EXECUTE="false", NO_MKDOCS_2_WARNING="1",
               JAXNN_DOCS_CACHE=str(tmp_path / "cache"))
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for page in ("index.html", "tutorials/01_foundations/index.html", "reference/jaxnn/index.html",
                 "benchmarks/index.html", "how-to/train-your-own-model/index.html"):
        assert (site / page).is_file(), page
    # every public name of jaxnn/__init__.py has its entry in the API reference, under its module
    import jaxnn

    api = (site / "reference" / "jaxnn" / "index.html").read_text()
    for name, module in jaxnn._LAZY.items():
        assert f'id="{module}.{name}"' in api, f"{module}.{name} is missing from docs/reference/jaxnn.md"
    for module in ("foundations", "layers", "losses", "models", "testing", "checkpoint"):
        page = (site / "reference" / module / "index.html").read_text()
        assert f'id="jaxnn.{module}.' in page, module
    bench = (site / "benchmarks" / "index.html").read_text()
    date = json.loads((ROOT / "benchmarks" / "results.json").read_text())["machine"]["date"]
    assert date in bench
