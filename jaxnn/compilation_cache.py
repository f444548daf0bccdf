"""JAX's persistent compilation cache, on by default for the command line and for library use.

Compiling a training scan takes about a second; a second process that finds the compiled
program on disk loads it in a fraction of that. ``jaxnn`` (the CLI) calls :func:`enable` before
it builds anything. In Python, the first :func:`jaxnn.fit` (and so every estimator's ``fit``,
``partial_fit`` and :func:`jaxnn.fit_many`) calls :func:`enable_default`: it turns the cache on
in the directory below **unless** ``JAXNN_NO_COMPILATION_CACHE`` opts out or the process has
already chosen a cache directory of its own (``jax_compilation_cache_dir``, which jaxnn then
leaves alone). Importing jaxnn changes nothing. To choose the directory yourself::

    import jaxnn.compilation_cache
    jaxnn.compilation_cache.enable("/some/dir")      # or disable()

JAX's cache is process-wide: once on, it also stores the process's other compiled programs,
with the thresholds set below.

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


def is_off() -> bool:
    """True when this process opted out: ``JAXNN_NO_COMPILATION_CACHE``, or :func:`disable` was called."""
    return _OFF or disabled_by_env()


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
    global _OFF
    _OFF = False
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # cache every program: jaxnn's compile in about a second and are a few hundred kB, below
    # JAX's default thresholds (1 s, and a minimum entry size)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


_DEFAULT_DONE = False
_OFF = False


def enable_default() -> Path | None:
    """Turn the cache on in :func:`default_dir` once per process, unless opted out or already chosen.

    Called by :func:`jaxnn.fit`. Does nothing when ``JAXNN_NO_COMPILATION_CACHE`` is set, when
    ``jax_compilation_cache_dir`` is already set (by the user, or by :func:`enable`), or after
    :func:`disable`. Programs compiled before it in the process are compiled again only if they are
    needed again; from then on every compilation is looked up on disk first.
    """
    global _DEFAULT_DONE
    if _DEFAULT_DONE:
        return None
    _DEFAULT_DONE = True
    chosen = jax.config.jax_compilation_cache_dir  # type: ignore[attr-defined]
    if disabled_by_env() or chosen is not None:
        return None
    where = enable()
    if where is not None:
        # JAX decides once per process whether to use its cache, at the first compilation: when
        # something compiled before jaxnn's first fit, ask it to decide again
        from jax.experimental.compilation_cache import compilation_cache as jax_cache

        jax_cache.reset_cache()
    return where


def disable() -> None:
    """Stop using the persistent cache in this process (and keep :func:`enable_default` from turning it
    on, and :mod:`jaxnn.exported` from storing traced programs)."""
    global _DEFAULT_DONE, _OFF
    _DEFAULT_DONE = _OFF = True
    jax.config.update("jax_compilation_cache_dir", None)
