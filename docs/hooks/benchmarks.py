"""mkdocs hook: the Benchmarks page's numbers, rendered at build time from ``benchmarks/results.json``.

``docs/benchmarks.md`` holds the prose and the line ``<!-- results.json -->``; this hook replaces
that line with tables generated from whatever the JSON holds (``make bench`` writes it). The
rendering is generic -- every top-level key becomes a section -- so a workload added to the
benchmarks appears on the page without touching this file:

* scalars of a section: one ``key | value`` table;
* nested objects of scalars (``w1.numpy``, ``w1.jaxnn``, ...): one table, a row per object and a
  column per key found in any of them; deeper objects are flattened to ``a.b`` column names;
* lists of objects (``proof``): a table, a row per object;
* lists of scalars: written inline; top-level scalars (``quick``): one table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results.json"
MARKER = "<!-- results.json -->"

# Optional headings for the keys known today; any other key is shown under its own name.
TITLES = {
    "machine": "Machine and date",
    "w1": "W1 — the seed's network (354 x 13, 13 sigmoid units, batch 23, SGD)",
    "user": "A user's own model through jaxnn.fit (13-13-1, adam, batch 32)",
    "cli": "End to end: jaxnn train in a fresh process",
    "w2": "W2 — 256 models with fit_many, one device",
    "w2_cores": "W2 over every core",
    "w2_memory": "W2 — 1,024 models (peak memory)",
    "w3": "W3 — 784-512-512-10 MLP, one epoch of 60,000 samples",
    "summary": "Summary ratios",
    "proof": "Targets (issue 14)",
}


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(_cell(v) for v in value)
    if value is None:
        return "-"
    text = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{name}."))
        else:
            flat[name] = v
    return flat


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _rows_table(first: str, named: list[tuple[str, dict[str, Any]]]) -> list[str]:
    flats = [(name, _flatten(obj)) for name, obj in named]
    columns: list[str] = []
    for _, flat in flats:
        columns += [c for c in flat if c not in columns]
    rows = [[f"`{name}`", *(_cell(flat.get(c)) for c in columns)] for name, flat in flats]
    return _table([first, *(f"`{c}`" for c in columns)], rows)


def _section(key: str, value: Any) -> list[str]:
    title = TITLES.get(key, key)
    lines = [f"### {title}", "", f"`{key}`", ""]
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if not isinstance(v, dict)}
        children = [(k, v) for k, v in value.items() if isinstance(v, dict)]
        if scalars:
            lines += _table(["key", "value"], [[f"`{k}`", _cell(v)] for k, v in scalars.items()])
        if children:
            lines += _rows_table("", children)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        lines += _rows_table("#", [(str(i), v) for i, v in enumerate(value)])
    else:
        lines += [_cell(value), ""]
    return lines


def render(results: dict[str, Any]) -> str:
    """Markdown for every top-level key of ``results`` (the machine first), in the file's order."""
    machine = results.get("machine", {})
    lines: list[str] = []
    if isinstance(machine, dict) and machine:
        lines += [f"Measured on **{machine.get('date', 'an unknown date')}**, "
                  f"{machine.get('platform', '?')} ({machine.get('device', '?')}), "
                  f"{machine.get('cpu_count', '?')} CPU cores, jax {machine.get('jax', '?')}, "
                  f"load average {_cell(machine.get('load_avg_1m'))} at the start.", ""]
    scalars = {k: v for k, v in results.items() if not isinstance(v, dict | list)}
    if scalars:
        rows = [[f"`{k}`", _cell(v)] for k, v in scalars.items()]
        lines += ["### Run", "", *_table(["key", "value"], rows)]
    keys = sorted((k for k in results if k not in scalars), key=lambda k: k != "machine")  # stable sort
    for key in keys:
        lines += _section(key, results[key])
    return "\n".join(lines)


def on_config(config: Any) -> Any:
    config.watch.append(str(RESULTS))  # `mkdocs serve` rebuilds when make bench rewrites it
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render(json.loads(RESULTS.read_text())))
