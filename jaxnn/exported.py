"""Traced programs kept on disk (``jax.export``), so a new process skips tracing them.

JAX's persistent compilation cache (:mod:`jaxnn.compilation_cache`) saves the XLA compilation,
but every process still traces and lowers the Python of a training chunk before it can look the
program up -- about half a second for a small MLP, more than scikit-learn's whole ``fit``. A run
that names its program (``jaxnn.fit(..., program_name=...)``; the estimators and the CLI do)
keeps the traced program beside the compilation cache, :func:`jax.export.export`-ed, as
``<hash>.jaxexport``. A process that finds it deserializes it instead of tracing (milliseconds),
then compiles it, which JAX's persistent compilation cache answers.

The compiled executable itself is not kept by jaxnn: JAX's only public format for it
(:mod:`jax.experimental.serialize_executable`) is a pickle, and jaxnn never unpickles
(``tests/test_no_shell.py``); the persistent cache keeps compiled code in XLA's own format.

The ``<hash>`` is of everything the program depends on: the name (which must identify the loss,
optimizer and validation functions), the static plan, the argument shapes and dtypes, the
versions of jax, jaxlib and jaxnn, the platform, x64 mode and the source of jaxnn itself, so an
edited jaxnn never loads a program made from older code. A file that cannot be read or loaded is
ignored (traced again); files are written atomically. ``JAXNN_NO_COMPILATION_CACHE=1``
or :func:`jaxnn.compilation_cache.disable` (the CLI's ``--no-compilation-cache``) turn this off
too. Typed PRNG keys cross the boundary as their key data.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxnn import compilation_cache, xla_cpu

_PACKAGE = Path(__file__).resolve().parent


@functools.cache
def _source_digest() -> str:
    """A hash of jaxnn's own source (every .py file of the package)."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        h.update(path.relative_to(_PACKAGE).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def directory() -> Path | None:
    """Where exported programs live: ``<jaxnn cache dir>/exported``, or None when opted out."""
    if compilation_cache.is_off():
        return None
    return compilation_cache.default_dir().parent / "exported"


def path_for(name: str, *parts: Any) -> Path | None:
    """The file of the program ``name`` with these static parts (None: not stored)."""
    where = directory()
    if where is None:
        return None
    import jaxlib

    from jaxnn import __version__

    text = repr((name, parts, jax.__version__, jaxlib.__version__, __version__, jax.default_backend(),
                 bool(jax.config.jax_enable_x64),  # type: ignore[attr-defined]
                 _source_digest()))
    return where / (hashlib.sha256(text.encode()).hexdigest()[:40] + ".jaxexport")


def _flat(state: Any) -> Any:
    return state._replace(key=jax.random.key_data(state.key))


def compiled(path: Path, build: Callable[[], Callable[..., list[Any]]], in_leaves: list[Any], *,
             no_ynnpack: bool) -> Callable[..., list[Any]]:
    """The compiled ``build()`` (flat arrays in, a flat list of arrays out) for ``in_leaves``' shapes,
    from the program of ``path`` (traced and saved there when absent); compiled with JAX's persistent
    cache on, as :func:`jaxnn.fit` turns it on (a program compiled before a process's first fit too)."""
    compilation_cache.enable_default()
    exp = _load(path)
    if exp is None:
        specs = [jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in in_leaves]
        exp = jax.export.export(jax.jit(build()))(*specs)
        _save(path, bytes(exp.serialize()))
    return xla_cpu.compile(jax.jit(exp.call).lower(*in_leaves), no_ynnpack=no_ynnpack)  # type: ignore[no-any-return]


def compiled_chunk(path: Path, build: Callable[[], Callable[..., Any]], args: tuple[Any, ...], *,
                   no_ynnpack: bool) -> Callable[..., Any]:
    """A callable like the compiled ``run_chunk(*args)``, from ``path`` or traced once and saved there.

    The exported function takes and returns flat lists of arrays (pytrees of optax states need no
    registration that way); the state's typed key crosses as its key data.
    """
    in_leaves, in_tree = jax.tree_util.tree_flatten((_flat(args[0]), *args[1:]))
    out_tree = jax.tree_util.tree_structure((_flat(args[0]), 0, 0, 0, 0, 0))

    def build_flat() -> Callable[..., list[Any]]:
        chunk = build()

        def flat_chunk(*leaves: Any) -> list[Any]:
            state, *rest = jax.tree_util.tree_unflatten(in_tree, leaves)
            out = chunk(state._replace(key=jax.random.wrap_key_data(state.key)), *rest)
            return jax.tree_util.tree_leaves((_flat(out[0]), *out[1:]))

        return flat_chunk

    program = compiled(path, build_flat, in_leaves, no_ynnpack=no_ynnpack)

    def run(state: Any, *rest: Any) -> Any:
        leaves = jax.tree_util.tree_leaves((_flat(state), *rest))
        out = jax.tree_util.tree_unflatten(out_tree, program(*leaves))
        return (out[0]._replace(key=jax.random.wrap_key_data(out[0].key)), *out[1:])

    return run


def _load(path: Path) -> Any:
    try:
        return jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # absent, unreadable or damaged (flatbuffers raises struct.error and more): trace again
        return None


def _save(path: Path, data: bytes) -> None:
    """Write atomically (temporary file, then rename); a failure only costs the next process a trace."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except (OSError, ImportError):
        pass
