"""jaxnn's on/off environment variables (``JAXNN_NO_COMPILATION_CACHE``, ``JAXNN_NO_XLA_FLAGS``)."""

from __future__ import annotations

import os
from collections.abc import Mapping


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``name`` is set to anything but "", "0", "false" or "no" (any case, trimmed)."""
    env = os.environ if environ is None else environ
    return env.get(name, "").strip().lower() not in ("", "0", "false", "no")
