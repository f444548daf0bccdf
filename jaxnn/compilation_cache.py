"""A persistent compilation cache for jaxnn's programs: private, verified, bounded -- only ever a cache.

jaxnn keeps JAX's compiled executables in its own directory, keyed by JAX's own persistent-cache
key, each entry verified by a SHA-256 digest before JAX sees it, read only as a regular file, written
atomically, and evicted least recently used past :data:`MAX_BYTES`. The first :func:`jaxnn.fit` or
:func:`jaxnn.check_vjp` (and every ``jaxnn`` command) installs it for the process unless
``JAXNN_NO_COMPILATION_CACHE=1``, :func:`disable` or the user's own JAX cache says otherwise; it
reads and writes only inside :func:`scope`. What it guarantees, where it lives and how to opt out:
``docs/explanation/compile-once.md``, "Between processes".

This module is the one place where jaxnn reaches into JAX's internals (``jax._src``): JAX has no
public hook for a cache store. Should a JAX release change them, :func:`enable` returns None and
jaxnn runs without a persistent cache (:func:`why_off` says why) -- slower to start, never wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jaxnn import envvars

ENV_DISABLE = "JAXNN_NO_COMPILATION_CACHE"
ENV_DIR = "JAXNN_CACHE_DIR"
MAX_BYTES = 256 << 20  # the whole directory; a small network's training program is about 0.3 MB
MAX_ENTRY_BYTES = 64 << 20  # a larger file is not read (and is removed)
SUFFIX = ".jaxnn"
_MAGIC = b"jaxnn-cache-entry 1\n"
_DIGEST = 32  # SHA-256
_STALE_TMP_S = 3600.0  # a temporary file this old was left by a killed process
_RESCAN_S = 60.0  # a write scans the directory at least this often (see VerifiedStore.put)
_SAFE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


def default_dir() -> Path:
    """The cache directory: $JAXNN_CACHE_DIR, $XDG_CACHE_HOME/jaxnn/jax or ~/.cache/jaxnn/jax."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "jaxnn" / "jax"


def disabled_by_env() -> bool:
    """True when ``JAXNN_NO_COMPILATION_CACHE`` is set to anything but "", "0", "false" or "no"."""
    return envvars.is_set(ENV_DISABLE)


def why_off() -> str | None:
    """Why jaxnn's store is not in use in this process (None when it is)."""
    if _state["store"] is not None:
        return None
    return _state["why"] or "not enabled yet (the first jaxnn.fit or jaxnn.check_vjp enables it)"


# --- the store -------------------------------------------------------------------------------


class VerifiedStore:
    """JAX's compilation-cache interface (``get``/``put``) over one private directory of verified files.

    An entry ``<key>.jaxnn`` holds ``_MAGIC``, ``sha256(key, NUL, value)`` and ``value`` (what JAX
    stores: its compressed executable and compile time). Reads and writes happen only inside
    :func:`scope`; anything wrong with an entry makes ``get`` return None (JAX compiles, then ``put``
    rewrites it). No method raises: a cache that fails is a cache that misses.
    """

    def __init__(self, directory: Path, max_bytes: int = MAX_BYTES) -> None:
        self._path = directory  # the attribute name JAX's reset_cache() logs
        self.max_bytes = int(max_bytes)
        # the directory's size at the last scan plus what this process wrote since: a write scans
        # the directory only when that passes max_bytes or the scan is _RESCAN_S old (other
        # processes write too), not on every write -- a scan stats every entry
        self._known: int | None = None
        self._written = 0
        self._scanned = 0.0

    def _file(self, key: str) -> Path:
        name = key if _SAFE_KEY.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()
        return self._path / (name + SUFFIX)

    @staticmethod
    def _digest(key: str, value: bytes) -> bytes:
        return hashlib.sha256(key.encode() + b"\0" + value).digest()

    def get(self, key: str) -> bytes | None:
        if not _active():
            return None
        path = self._file(key)
        data = _read_regular(path, MAX_ENTRY_BYTES + len(_MAGIC) + _DIGEST)
        if data is None:
            if os.path.lexists(path):
                _discard(path)  # unreadable, too large, or a FIFO, device or link where an entry should be
            return None
        head, digest, value = data[:len(_MAGIC)], data[len(_MAGIC):len(_MAGIC) + _DIGEST], \
            data[len(_MAGIC) + _DIGEST:]
        if head != _MAGIC or digest != self._digest(key, value):
            _discard(path)  # damaged, truncated, or another program's entry: compiled afresh
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used is evicted first
        return value

    def put(self, key: str, value: bytes) -> None:
        if not _active() or len(value) > MAX_ENTRY_BYTES:
            return
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self._path, prefix=".tmp-", suffix=SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + self._digest(key, value) + value)
            os.replace(tmp, self._file(key))
            tmp = None
            self._written += len(_MAGIC) + _DIGEST + len(value)
        except OSError:
            pass  # a full disk or a read-only directory: the next process compiles again
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        if (self._known is None or self._known + self._written > self.max_bytes
                or time.monotonic() - self._scanned > _RESCAN_S):
            self._evict()

    def _evict(self) -> None:
        """Remove stale temporary files, then the least recently used entries past ``max_bytes``."""
        try:
            entries = []
            now = time.time()
            with os.scandir(self._path) as it:
                for e in it:
                    if not e.name.endswith(SUFFIX) or not e.is_file(follow_symlinks=False):
                        continue
                    st = e.stat(follow_symlinks=False)
                    if e.name.startswith(".tmp-"):
                        if now - st.st_mtime > _STALE_TMP_S:
                            _discard(Path(e.path))
                    else:
                        entries.append((st.st_mtime, st.st_size, e.path))
        except OSError:
            return
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            _discard(Path(path))
            total -= size
        self._known, self._written, self._scanned = total, 0, time.monotonic()


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else None.

    Never blocks (a FIFO is opened non-blocking and refused) and never follows a symlink.
    """
    flags = os.O_RDONLY
    for name in ("O_NONBLOCK", "O_NOFOLLOW", "O_CLOEXEC"):
        flags |= getattr(os, name, 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        if not path.is_dir() or path.is_symlink():
            path.unlink()


def private_dir(directory: Path) -> str | None:
    """Create ``directory`` private (0700) if absent; None if it is safe to use, else why not.

    Safe: a directory (after links) owned by this user that neither group nor others can write to.
    """
    if directory.exists() and not directory.is_dir():
        return f"{directory}: not a directory"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
    except OSError as e:
        return f"{directory}: cannot create the cache directory ({e.strerror or e})"
    if not stat.S_ISDIR(st.st_mode):
        return f"{directory}: not a directory"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{directory}: owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{directory}: writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


# --- turning it on and off -------------------------------------------------------------------

_state: dict[str, Any] = {"store": None, "off": False, "why": None, "default_done": False}
_LOCK = threading.Lock()
_LOCAL = threading.local()


def _jax_cache_module() -> Any:
    from jax._src import compilation_cache as jax_cache

    for name in ("_cache", "_get_cache", "reset_cache"):
        if not hasattr(jax_cache, name):
            raise AttributeError(name)
    return jax_cache


def enable(path: str | os.PathLike[str] | None = None, *, max_bytes: int = MAX_BYTES) -> Path | None:
    """Install jaxnn's store in ``path`` (default :func:`default_dir`) as this process's compilation cache.

    Returns:
        The directory, or None when it is not in use: ``JAXNN_NO_COMPILATION_CACHE`` opts out, the
        user chose a cache of their own (left alone), or the directory is unsafe or cannot be
        created (:func:`why_off` says which; training works without a cache).
    """
    if disabled_by_env():
        _state["why"] = f"{ENV_DISABLE} is set"
        return None
    import jax

    directory = Path(path).expanduser() if path is not None else default_dir()
    with _LOCK:
        _state["default_done"] = True  # a choice made here is not undone by enable_default()
        if jax.config.jax_compilation_cache_dir is not None:  # type: ignore[attr-defined]
            _state["why"] = "the process chose its own cache (jax_compilation_cache_dir): left alone"
            return None
        try:
            jax_cache = _jax_cache_module()
        except (ImportError, AttributeError) as e:
            _state["why"] = f"this JAX has no cache hook jaxnn knows ({e})"
            return None
        current = jax_cache._cache
        if current is not None and current is not _state["store"]:
            _state["why"] = "the process already uses a JAX compilation cache: left alone"
            return None
        problem = private_dir(directory)
        if problem is not None:
            _state["why"] = problem
            return None
        store = VerifiedStore(directory, max_bytes)
        jax_cache._cache = store
        _state.update(store=store, off=False, why=None)
        return directory


def enable_default() -> Path | None:
    """:func:`enable` once per process, unless opted out (called by :func:`jaxnn.fit` and the CLI)."""
    if _state["default_done"]:
        return _state["store"]._path if _state["store"] is not None else None
    _state["default_done"] = True
    if _state["off"]:
        return None
    return enable()


def disable() -> None:
    """Stop using jaxnn's store in this process (and keep :func:`enable_default` from turning it on)."""
    with _LOCK:
        _state.update(off=True, default_done=True, why="disabled in this process")
        store, _state["store"] = _state["store"], None
        if store is not None:
            try:
                jax_cache = _jax_cache_module()
            except (ImportError, AttributeError):
                return
            if jax_cache._cache is store:
                jax_cache.reset_cache()


def compiling() -> contextlib.AbstractContextManager[None]:
    """Where jaxnn compiles (``jaxnn.fit``, ``fit_many``, ``check_vjp``): through this store, installed
    once per process unless opted out, or plainly when the ``"compilation_cache"`` acceleration is
    off (:mod:`jaxnn.accelerations`)."""
    from jaxnn import accelerations

    if not accelerations.enabled("compilation_cache"):
        return contextlib.nullcontext()
    enable_default()
    return scope()


def _active() -> bool:
    return getattr(_LOCAL, "depth", 0) > 0


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Compile jaxnn's programs through its store: reads and writes are on inside, off outside.

    Inside, JAX's write thresholds (``jax_persistent_cache_min_compile_time_secs`` and
    ``jax_persistent_cache_min_entry_size_bytes``) are 0 for this thread only, so jaxnn's
    sub-second programs are kept; the process's own values are untouched. Per thread, re-entrant.
    """
    thresholds = contextlib.ExitStack()
    if _state["store"] is not None:
        try:
            from jax._src import config as jax_config

            thresholds.enter_context(jax_config.persistent_cache_min_compile_time_secs(0.0))
            thresholds.enter_context(jax_config.persistent_cache_min_entry_size_bytes(0))
        except (ImportError, AttributeError):
            pass  # entries below JAX's thresholds are then not written: slower, never different
    _LOCAL.depth = getattr(_LOCAL, "depth", 0) + 1
    try:
        with thresholds:
            yield
    finally:
        _LOCAL.depth -= 1
