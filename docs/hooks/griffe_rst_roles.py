"""Griffe extension: Sphinx roles in jaxnn's docstrings (``:func:`fit```) render as code in the API reference.

jaxnn's docstrings are Google style with a few reStructuredText roles (``:func:``, ``:class:``,
``:mod:``, ...). mkdocstrings renders docstrings as Markdown, where a role would show as literal
text; this turns ``:role:`target``` into ```target``` (``~a.b.c`` into ```c```, as Sphinx does).
The docstrings themselves stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|mod|data|meth|attr|exc|obj):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class RstRoles(griffe.Extension):
    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
