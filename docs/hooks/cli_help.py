"""mkdocs hook: ``<!-- jaxnn --help -->`` and ``<!-- jaxnn COMMAND --help -->`` become the real help text.

The command-line page shows what ``jaxnn --help`` and each subcommand's ``--help`` print, taken
from the parser itself at build time, so the page cannot drift from the flags.
"""

from __future__ import annotations

import argparse
import functools
import re
from typing import Any

MARKER = re.compile(r"^<!-- jaxnn (?:(?P<command>[a-z]+) )?--help -->$", re.M)
WIDTH = 100


def _help(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=WIDTH)
    return parser.format_help()


def help_text(command: str | None) -> str:
    from jaxnn.cli import build_parser

    parser = build_parser()
    if command is None:
        return _help(parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if command not in sub.choices:
        raise ValueError(f"docs: no subcommand {command!r} (jaxnn has {sorted(sub.choices)})")
    return _help(sub.choices[command])


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARKER.sub(lambda m: "```text\n" + help_text(m.group("command")).rstrip() + "\n```", markdown)
