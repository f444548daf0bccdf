"""Training programs kept on disk, so a new process neither traces nor compiles them.

JAX's persistent compilation cache (:mod:`jaxnn.compilation_cache`) saves the XLA compilation,
but every process still traces and lowers the Python of a training chunk before it can look the
program up -- about half a second for a small MLP, more than scikit-learn's whole ``fit``. A run
that names its program (``jaxnn.fit(..., program_name=...)``; the estimators and the CLI do)
keeps two files per program beside the compilation cache:

* ``<hash>.jaxexport``: the traced chunk, :func:`jax.export.export`-ed. A process that finds it
  deserializes it instead of tracing (milliseconds), then compiles it (which the compilation
  cache answers).
* ``<hash>.<machine>.xla``: the compiled executable itself
  (:mod:`jax.experimental.serialize_executable`). A process that finds it loads it and runs:
  no tracing, no lowering, no cache lookup. Compiled code is specific to the CPU it was compiled
  for, so its name also hashes the processor's feature flags, the machine type, ``XLA_FLAGS`` and
  whether YNNPACK was on; any other machine or setting compiles (from the ``.jaxexport``) and
  keeps its own. Only an executable this process compiled is kept: one that JAX's persistent
  cache answered serializes without its code on XLA:CPU (it fails when run), so then the next
  process takes the cache's way again. It is a pickle (JAX's format), which runs code as it
  loads: only regular files of this user that nobody else can write are loaded.

The ``<hash>`` is of everything the program depends on: the name (which must identify the loss,
optimizer and validation functions), the static plan, the argument shapes and dtypes, the
versions of jax, jaxlib and jaxnn, the platform, x64 mode and the source of jaxnn itself, so an
edited jaxnn never loads a program made from older code. A file that cannot be read or loaded is
ignored (traced or compiled again); files are written atomically. ``JAXNN_NO_COMPILATION_CACHE=1``
or :func:`jaxnn.compilation_cache.disable` (the CLI's ``--no-compilation-cache``) turn this off
too. Typed PRNG keys cross the boundary as their key data.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import platform
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


_cache_hits = [0]  # JAX's persistent-cache hits in this process


def _count_hit(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _cache_hits[0] += 1


jax.monitoring.register_event_listener(_count_hit)


def _flat(state: Any) -> Any:
    return state._replace(key=jax.random.key_data(state.key))


def compiled(path: Path, build: Callable[[], Callable[..., list[Any]]], in_leaves: list[Any], *,
             no_ynnpack: bool) -> Callable[..., list[Any]]:
    """The compiled ``build()`` (flat arrays in, a flat list of arrays out) for ``in_leaves``' shapes:
    the executable of ``path`` if this machine has one, else the program of ``path`` (traced and
    saved when absent) compiled here."""
    executable = executable_path(path, no_ynnpack=no_ynnpack)
    loaded = _load_executable(executable)
    if loaded is not None:
        return loaded  # type: ignore[no-any-return]
    exp = _load(path)
    if exp is None:
        specs = [jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in in_leaves]
        exp = jax.export.export(jax.jit(build()))(*specs)
        _save(path, bytes(exp.serialize()))
    hits = _cache_hits[0]
    program = xla_cpu.compile(jax.jit(exp.call).lower(*in_leaves), no_ynnpack=no_ynnpack)
    if _cache_hits[0] == hits:  # compiled here: an executable loaded from JAX's cache
        # serializes without its code (XLA:CPU keeps only what it compiled), so it is not kept
        _save_executable(executable, program)
    return program  # type: ignore[no-any-return]


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


@functools.cache
def _cpu_flags() -> str:
    """The processor's feature flags (Linux), which compiled CPU code may use."""
    try:
        return next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


def executable_path(path: Path, *, no_ynnpack: bool) -> Path:
    """The compiled executable's file beside the exported program ``path``, for this machine."""
    text = repr((platform.machine(), _cpu_flags(), no_ynnpack, os.environ.get("XLA_FLAGS", "")))
    return path.with_suffix("." + hashlib.sha256(text.encode()).hexdigest()[:16] + ".xla")


def _trusted(path: Path) -> bool:
    """Whether ``path`` is a regular file of this user that nobody else can write.

    A serialized executable is a pickle (JAX's format), which runs code as it loads: only files
    this user wrote are loaded, as with Python's own ``__pycache__``.
    """
    try:
        st = path.lstat()
    except OSError:
        return False
    import stat

    owner_ok = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return stat.S_ISREG(st.st_mode) and owner_ok and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _load_executable(path: Path) -> Any:
    from jax.experimental import serialize_executable

    if not _trusted(path):
        return None
    try:
        serialized, in_tree, out_tree = pickle.loads(path.read_bytes())
        return serialize_executable.deserialize_and_load(serialized, in_tree, out_tree)
    except Exception:  # absent, unreadable, damaged or refused by this jaxlib: compile again
        return None


def _save_executable(path: Path, compiled: Any) -> None:
    from jax.experimental import serialize_executable

    try:
        data = pickle.dumps(serialize_executable.serialize(compiled))
    except Exception:  # an executable this backend cannot serialize: nothing is kept
        return
    _save(path, data)


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
