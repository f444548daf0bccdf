"""mkdocs hook: the course notebooks (``notebooks/*.py``, jupytext percent format) as tutorial pages.

The notebooks stay where learners open them; this hook adds each one to the site as
``tutorials/<name>/`` without copying it, so mkdocs-jupyter converts (and, in ``make docs``,
executes) the file itself, with the notebook's own folder as the working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns these into notebook pages
def on_files(files: Files, config: Any) -> Files:
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        files.append(File.generated(config, f"tutorials/{path.name}", abs_src_path=str(path)))
    return files


def on_nav(nav: Any, config: Any, files: Files) -> Any:
    # mkdocs-jupyter wraps each notebook's File in its own NotebookFile, which recomputes
    # abs_src_path from src_dir (None for a file added by a hook): give it the real path back.
    for f in files:
        inner = getattr(f, "file", None)
        if inner is not None and f.abs_src_path is None:
            f.abs_src_path = inner.abs_src_path
    return nav
