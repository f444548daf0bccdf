"""The file format of every checkpoint: named NumPy arrays and JSON metadata in an ``.npz``.

:func:`save_arrays` writes one atomically (:func:`atomic_write`); :func:`load_arrays` reads one
back without unpickling, after checking everything that can be checked before any array data is
decompressed. The format and what loading refuses: docs/explanation/checkpoints.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from jaxnn import __version__
from jaxnn.errors import InputError, InputTypeError
from jaxnn.files import open_regular_file, refuse_special_target

__all__ = ["ALLOWED_DTYPES", "FORMAT", "FORMAT_VERSION", "MAX_TOTAL_BYTES", "atomic_write", "check_layout",
           "load_arrays", "save_arrays"]

FORMAT = "jaxnn-npz"
FORMAT_VERSION = 1
META_KEY = "__meta__"
#: dtypes an array in a checkpoint may have; everything else (object!) is refused.
ALLOWED_DTYPES: tuple[str, ...] = ("float32", "float64", "int32", "uint32", "bool")
#: Limits that keep a hostile file from making the loader allocate without bound.
MAX_META_BYTES = 1 << 20
MAX_ARRAYS = 10_000
MAX_ARRAY_BYTES = 1 << 33
#: The most array data one file may declare, all members together (a deflate bomb declares
#: far more than it holds; the declaration is checked before anything is decompressed).
MAX_TOTAL_BYTES = 1 << 29
#: zip compression methods a member may use: stored (what jaxnn writes) and deflate (np.savez_compressed).
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
#: the newest zip "version needed to extract" read: 4.5 (zip64); later ones mean features jaxnn never writes.
_MAX_ZIP_VERSION = 45
# "/"-separated words; no part starts with "." (so no "." or ".." parts).
_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*(/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*")


# --- Atomic file writing --------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; a no-op where directories cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write a file so that readers see the old content or the new, never a mix.

    Args:
        path: the target file; its directory must exist.
        write: called with a binary file object open on a temporary file beside ``path``.
    Raises:
        IsADirectoryError: ``path`` is a directory.
        FileNotFoundError: the directory of ``path`` does not exist.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"path: {str(target)!r} is a directory, expected a file name")
    refuse_special_target(target, "path")
    directory = target.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"path: directory {str(directory)!r} of {str(target)!r} does not exist")
    # O_EXCL with a random name: never follows or clobbers someone else's file; mode 0o666
    # lets the umask decide the permissions, as for any file the user creates.
    tmp = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:  # including KeyboardInterrupt: never leave a half-written temp file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


# --- Generic arrays + metadata ----------------------------------------------------------------


def _check_array_for_save(name: str, a: Any) -> np.ndarray:
    if not isinstance(name, str) or name == META_KEY or not _NAME.fullmatch(name):
        raise InputError(f"arrays: invalid array name {name!r}; use letters, digits, _ . - and '/'")
    arr = np.asarray(a)
    if arr.dtype.name not in ALLOWED_DTYPES:
        raise InputTypeError(f"arrays[{name!r}]: dtype {arr.dtype} is not one of {list(ALLOWED_DTYPES)}")
    return np.array(arr, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)


def save_arrays(
    path: str | os.PathLike[str],
    arrays: Mapping[str, Any],
    meta: Mapping[str, Any],
    *,
    kind: str = "arrays",
) -> None:
    """Write named arrays and a JSON metadata dict atomically as a ``.npz`` file.

    Args:
        path: the file to (over)write.
        arrays: name -> array; names are ``/``-separated words of ``[A-Za-z0-9_.-]`` not starting with ``.``;
            dtypes must be in :data:`ALLOWED_DTYPES`.
        meta: JSON-serialisable dict (no NaN/inf) stored beside the arrays.
        kind: what the file holds (e.g. ``"train_state"``, ``"estimator"``); checked by
            :func:`load_arrays` when it is given ``kind``.
    Raises:
        TypeError: an array of a disallowed dtype, or ``meta`` not JSON-serialisable.
        ValueError: a bad array name, NaN/inf in ``meta``, or too many arrays.
    """
    if not isinstance(meta, Mapping):
        raise InputTypeError(f"meta: expected a dict, got {type(meta).__name__}")
    checked = {name: _check_array_for_save(name, a) for name, a in arrays.items()}
    if len(checked) > MAX_ARRAYS:
        raise InputError(f"arrays: at most {MAX_ARRAYS} arrays per file, got {len(checked)}")
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "jaxnn_version": __version__,
        "arrays": {n: {"shape": list(a.shape), "dtype": a.dtype.name} for n, a in checked.items()},
        "meta": dict(meta),
    }
    try:
        text = json.dumps(header, allow_nan=False, sort_keys=True)
    except ValueError as e:
        raise InputError(f"meta: not storable as strict JSON ({e})") from None
    except TypeError as e:
        raise InputTypeError(f"meta: not JSON-serialisable ({e})") from None
    meta_bytes = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    if meta_bytes.size > MAX_META_BYTES:
        raise InputError(f"meta: {meta_bytes.size} bytes of JSON, at most {MAX_META_BYTES}")

    def write(fh: IO[bytes]) -> None:
        # Exactly np.savez's layout (a stored zip of .npy members), written by hand so no
        # array name can collide with savez's own keyword arguments.
        with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, a in (*checked.items(), (META_KEY, meta_bytes)):
                with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, a, allow_pickle=False)

    atomic_write(path, write)


def refuse(path: Any, problem: str) -> InputError:
    """The error that refuses a file: it names the file and the problem, on one line."""
    return InputError(f"{str(path)!r} is not a valid jaxnn checkpoint: {problem}")


def _read_header(npz: Any, member: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of a ``.npy`` member, without reading its data."""
    with npz.zip.open(member + ".npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise InputError(f"unsupported .npy version {version}")
        return tuple(shape), dtype, f.tell()


def _decode_meta(path: Any, raw: np.ndarray) -> dict[str, Any]:
    """The checked JSON header of a file, from its ``__meta__`` bytes (a 1-D uint8 array)."""

    def no_constants(name: str) -> Any:
        raise InputError(f"JSON constant {name} is not allowed")

    try:
        header = json.loads(raw.tobytes().decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise refuse(path, f"metadata is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise refuse(path, "metadata must be a JSON object")
    for key in ("format", "format_version", "kind", "arrays", "meta"):
        if key not in header:
            raise refuse(path, f"metadata lacks the key {key!r}")
    if header["format"] != FORMAT:
        raise refuse(path, f"format is {header['format']!r}, expected {FORMAT!r}")
    if header["format_version"] != FORMAT_VERSION or isinstance(header["format_version"], bool):
        raise refuse(path, f"format_version is {header['format_version']!r}; this jaxnn reads "
                            f"version {FORMAT_VERSION}")
    if not isinstance(header["arrays"], dict) or not isinstance(header["meta"], dict):
        raise refuse(path, "metadata 'arrays' and 'meta' must be JSON objects")
    for name, spec in header["arrays"].items():
        if not isinstance(name, str) or name == META_KEY or not _NAME.fullmatch(name):
            raise refuse(path, f"invalid array name {name!r}")
        ok = (isinstance(spec, dict) and set(spec) == {"shape", "dtype"}
              and isinstance(spec["shape"], list) and len(spec["shape"]) <= 8
              and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in spec["shape"])
              and spec["dtype"] in ALLOWED_DTYPES)
        if not ok:
            raise refuse(path, f"array {name!r}: bad declaration {spec!r} (shape: list of "
                                f"non-negative ints, dtype: one of {list(ALLOWED_DTYPES)})")
    return header


#: ``(shape, dtype)`` of an array, as declared in a file or wanted by a loader.
Spec = tuple[tuple[int, ...], np.dtype]
Check = Callable[[dict[str, Spec], dict[str, Any], Callable[[str], np.ndarray]], None]


def load_arrays(path: str | os.PathLike[str], *, kind: str | None = None, check: Check | None = None,
                max_bytes: int = MAX_TOTAL_BYTES, arrays: bool = True
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays`, validating everything first.

    Nothing is decompressed before the zip directory, every member's ``.npy`` header, the metadata
    and the total declared size have been checked, and ``check`` has accepted them.

    Args:
        path: the ``.npz`` file (a regular file: FIFOs and devices are refused before opening).
        kind: if given, the file's ``kind`` must equal it.
        check: called as ``check(declared, meta, read)`` before any array data is read;
            ``declared`` maps name -> (shape, dtype); ``read(name)`` reads one array (for small
            ones, e.g. a step counter). Raise ``ValueError`` to refuse the file.
        max_bytes: the most array data the file may declare in all.
        arrays: False: read no array data, only the checked headers and metadata (``arrays`` is
            then ``{}``; ``jaxnn predict`` reads a model's columns so, before importing JAX).
    Returns:
        ``(arrays, meta)``: name -> read-only NumPy array, and the writer's ``meta`` dict.
    Raises:
        FileNotFoundError / IsADirectoryError: no such file, or a directory.
        ValueError: anything wrong with the content, naming the file and the problem.
    """
    p = Path(path)
    # Our own handle, so it is closed even when np.load fails half-way (a truncated zip).
    with open_regular_file(p, "model file") as fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # refuse pickles and the like up front
            raise refuse(p, f"not an .npz (zip) archive: it starts with {magic!r}")
        try:
            loaded = np.load(fh, allow_pickle=False)
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
            raise refuse(p, f"not an .npz archive ({e})") from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise refuse(p, "a single .npy array, expected an .npz archive")
        with loaded as npz:
            try:
                return _read_validated(p, npz, kind, check, max_bytes, arrays)
            except (EOFError, zipfile.BadZipFile, OSError, KeyError, NotImplementedError,
                    RuntimeError) as e:  # truncated or corrupt members
                raise refuse(p, f"corrupt archive ({type(e).__name__}: {e})") from None


def _check_zip_directory(p: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse what zipfile would raise RuntimeError/NotImplementedError on, before opening a member."""
    for info in infos:
        if info.flag_bits & 0x1:
            raise refuse(p, f"member {info.filename!r} is encrypted")
        if info.compress_type not in _METHODS:
            raise refuse(p, f"member {info.filename!r} uses compression method {info.compress_type}; "
                             f"only {', '.join(_METHODS.values())} are read")
        if info.extract_version > _MAX_ZIP_VERSION:
            raise refuse(p, f"member {info.filename!r} needs zip version {info.extract_version / 10:.1f}; "
                             f"at most {_MAX_ZIP_VERSION / 10:.1f} is read")


def _read_validated(p: Path, npz: Any, kind: str | None, check: Check | None, max_bytes: int,
                    read_arrays: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    _check_zip_directory(p, npz.zip.infolist())
    members = [i.filename for i in npz.zip.infolist()]
    if len(members) > MAX_ARRAYS + 1:
        raise refuse(p, f"{len(members)} members, at most {MAX_ARRAYS + 1}")
    if any(not m.endswith(".npy") for m in members) or len(set(members)) != len(members):
        raise refuse(p, "members must be distinct .npy files")
    names = {m[: -len(".npy")] for m in members}
    if META_KEY not in names:
        raise refuse(p, f"no {META_KEY} member (not written by jaxnn)")
    shape, dtype, hlen = _read_header(npz, META_KEY)
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_META_BYTES:
        raise refuse(p, f"{META_KEY} must be a 1-D uint8 array of at most {MAX_META_BYTES} bytes")
    if npz.zip.getinfo(META_KEY + ".npy").file_size != hlen + shape[0]:
        raise refuse(p, f"{META_KEY}: the member's size does not match its header")
    header = _decode_meta(p, npz[META_KEY])
    if kind is not None and header["kind"] != kind:
        raise refuse(p, f"it holds {header['kind']!r}, expected {kind!r}")
    declared: dict[str, Any] = header["arrays"]
    present = names - {META_KEY}
    if present != set(declared):
        extra, missing = sorted(present - set(declared)), sorted(set(declared) - present)
        raise refuse(p, f"arrays do not match the metadata (extra: {extra}, missing: {missing})")
    sizes = {i.filename: i.file_size for i in npz.zip.infolist()}
    total = sum(math.prod(spec["shape"]) * np.dtype(spec["dtype"]).itemsize for spec in declared.values())
    if total > max_bytes:
        raise refuse(p, f"it declares {total} bytes of arrays, at most {max_bytes} are read "
                         "(refused before decompressing anything)")
    headers: dict[str, Spec] = {}
    for name, spec in declared.items():
        shape, dtype, hlen = _read_header(npz, name)
        want_shape, want_dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])  # (an allowed dtype)
        if shape != want_shape or dtype != want_dtype:
            raise refuse(p, f"array {name!r} is {dtype} {shape}, the metadata says "
                             f"{want_dtype} {want_shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES or sizes[name + ".npy"] != hlen + nbytes:
            raise refuse(p, f"array {name!r}: member holds {sizes[name + '.npy'] - hlen} data "
                             f"bytes, shape {shape} needs {nbytes}")
        headers[name] = (shape, dtype)
    if not read_arrays:
        return {}, header["meta"]
    arrays: dict[str, np.ndarray] = {}

    def read(name: str) -> np.ndarray:
        if name not in arrays:
            a = npz[name]
            a.flags.writeable = False
            arrays[name] = a
        return arrays[name]

    if check is not None:
        check(headers, header["meta"], read)
    return {name: read(name) for name in declared}, header["meta"]


def check_layout(p: str | os.PathLike[str], declared: Mapping[str, Spec], want: Mapping[str, Spec],
                 what: str) -> None:
    """Refuse a file whose arrays differ from ``want`` in name, shape or dtype, naming the first."""
    if set(declared) != set(want):
        unexpected, missing = sorted(set(declared) - set(want)), sorted(set(want) - set(declared))
        raise refuse(p, f"it holds another structure than {what} (unexpected: {unexpected}, "
                         f"missing: {missing})")
    for name, (shape, dtype) in want.items():
        if declared[name] != (shape, dtype):
            raise refuse(p, f"{name} is {declared[name][1]}{list(declared[name][0])}, {what} "
                             f"needs {dtype}{list(shape)}")
