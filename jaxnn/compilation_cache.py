"""JAX's persistent compilation cache, on by default for the ``jaxnn`` command line.

Compiling the seed network's training scan takes about a second; a second process that
finds the compiled program on disk loads it in a fraction of that. ``jaxnn`` (the CLI) calls
:func:`enable` before it builds anything. Python users opt in with one line::

    import jaxnn.compilation_cache
    jaxnn.compilation_cache.enable()          # or enable("/some/dir")

Where: ``$JAXNN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/jaxnn/jax``, else
``~/.cache/jaxnn/jax``. Opt out with ``JAXNN_NO_COMPILATION_CACHE=1`` or the CLI's
``--no-compilation-cache``. JAX's default thresholds skip programs that compile in under a
second and tiny entries; jaxnn's programs are small, so both thresholds are set to cache
everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from jaxnn import envvars

ENV_DISABLE = "JAXNN_NO_COMPILATION_CACHE"
ENV_DIR = "JAXNN_CACHE_DIR"


def default_dir() -> Path:
    """The cache directory: $JAXNN_CACHE_DIR, $XDG_CACHE_HOME/jaxnn/jax or ~/.cache/jaxnn/jax."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "jaxnn" / "jax"


def disabled_by_env() -> bool:
    """True when ``JAXNN_NO_COMPILATION_CACHE`` is set to anything but "", "0", "false" or "no"."""
    return envvars.is_set(ENV_DISABLE)


def enable(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`default_dir`).

    Returns:
        The directory, or None when ``JAXNN_NO_COMPILATION_CACHE`` opts out or the directory
        cannot be created (the cache is an optimisation; training works without it).
    """
    if disabled_by_env():
        return None
    directory = Path(path).expanduser() if path is not None else default_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # cache every program: jaxnn's compile in about a second and are a few hundred kB, below
    # JAX's default thresholds (1 s, and a minimum entry size)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def disable() -> None:
    """Stop using the persistent cache in this process."""
    jax.config.update("jax_compilation_cache_dir", None)
