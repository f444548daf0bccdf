"""Checkpoints: validated, pickle-free ``.npz`` files, written atomically.

* :func:`save_arrays` / :func:`load_arrays` -- named NumPy arrays plus a JSON metadata dict: the
  layer everything else (the scikit-learn estimators included) is stored in;
* :func:`save_tree` / :func:`load_tree` -- any pytree, e.g. ``jaxnn.fit``'s ``result.state``;
* :func:`save` / :func:`load` -- a :class:`~jaxnn.training.TrainState` with its
  :class:`~jaxnn.training.TrainConfig`, scaler, data set description and loss history, which
  :func:`jaxnn.training.fit` resumes bit-identically.

The file format and everything loading refuses: the "Checkpoints and what loading refuses" page of
the docs (``docs/explanation/checkpoints.md``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import distributed, training
from jaxnn.datasets import Dataset, Scaler
from jaxnn.errors import InputError, InputTypeError
from jaxnn.files import open_regular_file, refuse_special_target
from jaxnn.training import History, TrainConfig, TrainState

__all__ = [
    "ALLOWED_DTYPES",
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "dataset_info",
    "load",
    "load_arrays",
    "load_tree",
    "save",
    "save_arrays",
    "save_tree",
]

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
_KIND_TRAIN_STATE = "train_state"
_KIND_TREE = "pytree"
_HISTORY = ("history/train_loss", "history/val_loss")
_SCALER = ("scaler/mean", "scaler/scale")
_TARGET = ("target/mean", "target/scale")  # standardised regression targets (experiment.run)


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
        "jaxnn_version": _version(),
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


def _version() -> str:
    from jaxnn import __version__

    return __version__


def _refuse(path: Any, problem: str) -> InputError:
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
        raise _refuse(path, f"metadata is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _refuse(path, "metadata must be a JSON object")
    for key in ("format", "format_version", "kind", "arrays", "meta"):
        if key not in header:
            raise _refuse(path, f"metadata lacks the key {key!r}")
    if header["format"] != FORMAT:
        raise _refuse(path, f"format is {header['format']!r}, expected {FORMAT!r}")
    if header["format_version"] != FORMAT_VERSION or isinstance(header["format_version"], bool):
        raise _refuse(path, f"format_version is {header['format_version']!r}; this jaxnn reads "
                            f"version {FORMAT_VERSION}")
    if not isinstance(header["arrays"], dict) or not isinstance(header["meta"], dict):
        raise _refuse(path, "metadata 'arrays' and 'meta' must be JSON objects")
    for name, spec in header["arrays"].items():
        if not isinstance(name, str) or name == META_KEY or not _NAME.fullmatch(name):
            raise _refuse(path, f"invalid array name {name!r}")
        ok = (isinstance(spec, dict) and set(spec) == {"shape", "dtype"}
              and isinstance(spec["shape"], list) and len(spec["shape"]) <= 8
              and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in spec["shape"])
              and spec["dtype"] in ALLOWED_DTYPES)
        if not ok:
            raise _refuse(path, f"array {name!r}: bad declaration {spec!r} (shape: list of "
                                f"non-negative ints, dtype: one of {list(ALLOWED_DTYPES)})")
    return header


#: ``(shape, dtype)`` of an array, as declared in a file or wanted by a loader.
Spec = tuple[tuple[int, ...], np.dtype]
Check = Callable[[dict[str, Spec], dict[str, Any], Callable[[str], np.ndarray]], None]


def load_arrays(path: str | os.PathLike[str], *, kind: str | None = None, check: Check | None = None,
                max_bytes: int = MAX_TOTAL_BYTES) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays`, validating everything first.

    Nothing is decompressed before the zip directory (encryption flag, compression method, zip
    version), every member's ``.npy`` header and the metadata have been checked against each
    other, the total declared size against ``max_bytes``, and ``check`` has accepted them.

    Args:
        path: the ``.npz`` file (a regular file: FIFOs and devices are refused before opening).
        kind: if given, the file's ``kind`` must equal it.
        check: called as ``check(declared, meta, read)`` before any array data is read;
            ``declared`` maps name -> (shape, dtype); ``read(name)`` reads one array (for small
            ones, e.g. a step counter). Raise ``ValueError`` to refuse the file.
        max_bytes: the most array data the file may declare in all.
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
            raise _refuse(p, f"not an .npz (zip) archive: it starts with {magic!r}")
        try:
            loaded = np.load(fh, allow_pickle=False)
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
            raise _refuse(p, f"not an .npz archive ({e})") from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise _refuse(p, "a single .npy array, expected an .npz archive")
        with loaded as npz:
            try:
                return _read_validated(p, npz, kind, check, max_bytes)
            except (EOFError, zipfile.BadZipFile, OSError, KeyError, NotImplementedError,
                    RuntimeError) as e:  # truncated or corrupt members
                raise _refuse(p, f"corrupt archive ({type(e).__name__}: {e})") from None


def _check_zip_directory(p: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse what zipfile would raise RuntimeError/NotImplementedError on, before opening a member."""
    for info in infos:
        if info.flag_bits & 0x1:
            raise _refuse(p, f"member {info.filename!r} is encrypted")
        if info.compress_type not in _METHODS:
            raise _refuse(p, f"member {info.filename!r} uses compression method {info.compress_type}; "
                             f"only {', '.join(_METHODS.values())} are read")
        if info.extract_version > _MAX_ZIP_VERSION:
            raise _refuse(p, f"member {info.filename!r} needs zip version {info.extract_version / 10:.1f}; "
                             f"at most {_MAX_ZIP_VERSION / 10:.1f} is read")


def _read_validated(p: Path, npz: Any, kind: str | None, check: Check | None, max_bytes: int
                    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    _check_zip_directory(p, npz.zip.infolist())
    members = [i.filename for i in npz.zip.infolist()]
    if len(members) > MAX_ARRAYS + 1:
        raise _refuse(p, f"{len(members)} members, at most {MAX_ARRAYS + 1}")
    if any(not m.endswith(".npy") for m in members) or len(set(members)) != len(members):
        raise _refuse(p, "members must be distinct .npy files")
    names = {m[: -len(".npy")] for m in members}
    if META_KEY not in names:
        raise _refuse(p, f"no {META_KEY} member (not written by jaxnn)")
    shape, dtype, hlen = _read_header(npz, META_KEY)
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_META_BYTES:
        raise _refuse(p, f"{META_KEY} must be a 1-D uint8 array of at most {MAX_META_BYTES} bytes")
    if npz.zip.getinfo(META_KEY + ".npy").file_size != hlen + shape[0]:
        raise _refuse(p, f"{META_KEY}: the member's size does not match its header")
    header = _decode_meta(p, npz[META_KEY])
    if kind is not None and header["kind"] != kind:
        raise _refuse(p, f"it holds {header['kind']!r}, expected {kind!r}")
    declared: dict[str, Any] = header["arrays"]
    present = names - {META_KEY}
    if present != set(declared):
        extra, missing = sorted(present - set(declared)), sorted(set(declared) - present)
        raise _refuse(p, f"arrays do not match the metadata (extra: {extra}, missing: {missing})")
    sizes = {i.filename: i.file_size for i in npz.zip.infolist()}
    total = sum(math.prod(spec["shape"]) * np.dtype(spec["dtype"]).itemsize for spec in declared.values())
    if total > max_bytes:
        raise _refuse(p, f"it declares {total} bytes of arrays, at most {max_bytes} are read "
                         "(refused before decompressing anything)")
    headers: dict[str, Spec] = {}
    for name, spec in declared.items():
        shape, dtype, hlen = _read_header(npz, name)
        want_shape, want_dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])  # (an allowed dtype)
        if shape != want_shape or dtype != want_dtype:
            raise _refuse(p, f"array {name!r} is {dtype} {shape}, the metadata says "
                             f"{want_dtype} {want_shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES or sizes[name + ".npy"] != hlen + nbytes:
            raise _refuse(p, f"array {name!r}: member holds {sizes[name + '.npy'] - hlen} data "
                             f"bytes, shape {shape} needs {nbytes}")
        headers[name] = (shape, dtype)
    arrays: dict[str, np.ndarray] = {}

    def read(name: str) -> np.ndarray:
        if name not in arrays:
            a = npz[name]
            a.flags.writeable = False
            arrays[name] = a
        return arrays[name]

    if check is not None:
        check(headers, header["meta"], read)
    for name in declared:
        read(name)
    return {name: arrays[name] for name in declared}, header["meta"]


# --- Any pytree: what jaxnn.fit trains (params and optimizer state of any structure) ---------


def _named_leaves(tree: Any) -> tuple[dict[str, Any], Any]:
    """``name -> leaf`` (the key path joined by ``/``: ``"params/0/W"``) and the treedef."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    named: dict[str, Any] = {}
    for path, leaf in flat:
        name = jax.tree_util.keystr(path, simple=True, separator="/") or "leaf"
        if name in named:
            raise InputError(f"tree: two leaves are both named {name!r}; use distinct dict keys")
        named[name] = leaf
    return named, treedef


def _host_arrays(tree: Any) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The named leaves as NumPy arrays (a typed PRNG key as its key data), and ``name -> key impl``."""
    named, _ = _named_leaves(tree)
    keys = {name: str(jax.random.key_impl(leaf)) for name, leaf in named.items() if distributed.is_key(leaf)}
    arrays = {name: np.asarray(jax.device_get(jax.random.key_data(leaf) if name in keys else leaf))
              for name, leaf in named.items()}
    return arrays, keys


def _layout(like: Any) -> tuple[dict[str, Spec], Any]:
    """``name -> (shape, dtype)`` that a file of ``like`` (arrays or ``jax.eval_shape`` structs) must
    declare, a typed PRNG key as its key data; and the treedef."""
    named, treedef = _named_leaves(like)
    want = {}
    for name, leaf in named.items():
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        want[name] = (tuple(np.shape(leaf)), np.dtype(leaf.dtype))
    return want, treedef


def check_layout(p: str | os.PathLike[str], declared: Mapping[str, Spec], want: Mapping[str, Spec],
                 what: str) -> None:
    """Refuse a file whose arrays differ from ``want`` in name, shape or dtype, naming the first."""
    if set(declared) != set(want):
        unexpected, missing = sorted(set(declared) - set(want)), sorted(set(want) - set(declared))
        raise _refuse(p, f"it holds another structure than {what} (unexpected: {unexpected}, "
                         f"missing: {missing})")
    for name, (shape, dtype) in want.items():
        if declared[name] != (shape, dtype):
            raise _refuse(p, f"{name} is {declared[name][1]}{list(declared[name][0])}, {what} "
                             f"needs {dtype}{list(shape)}")


def _unflatten(treedef: Any, names: Any, arrays: Mapping[str, np.ndarray], keys: Mapping[str, str]) -> Any:
    """The tree of ``arrays[name]`` for ``names`` in leaf order, key data in ``keys`` wrapped as keys."""
    leaves = []
    for name in names:
        a = jnp.asarray(arrays[name])
        if name in keys:
            a = jax.random.wrap_key_data(a, impl=keys[name])
        leaves.append(a)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def save_tree(path: str | os.PathLike[str], tree: Any, *, meta: Mapping[str, Any] | None = None) -> None:
    """Save any pytree of arrays -- e.g. ``jaxnn.fit``'s ``result.state`` -- atomically as ``.npz``.

    One member per leaf, named by its key path; typed PRNG keys are stored as their key data.
    Load it with :func:`load_tree` and a template of the same structure. ``meta``: any JSON-ready
    dict you want back.

    Raises:
        TypeError: a leaf of a dtype the format does not allow (:data:`ALLOWED_DTYPES`).
        ValueError: two leaves with the same name, or a name the format does not allow.
    """
    arrays, keys = _host_arrays(tree)
    save_arrays(path, arrays, {"keys": keys, "extra": dict(meta or {})}, kind=_KIND_TREE)


def load_tree(path: str | os.PathLike[str], like: Any, *,
              max_bytes: int = MAX_TOTAL_BYTES) -> tuple[Any, dict[str, Any]]:
    """Load a :func:`save_tree` file into the structure of ``like``, refusing anything that differs.

    Args:
        path: the ``.npz`` file.
        like: a template with the expected structure, shapes and dtypes: e.g. a fresh
            ``jaxnn.engine.init_state(params, optimizer, key)``, or its ``jax.eval_shape``.
        max_bytes: the most array data the file may declare.
    Returns:
        ``(tree, meta)``: the loaded pytree (structure of ``like``) and the ``meta`` dict saved.
    Raises:
        ValueError: another structure (names the missing and unexpected members), another shape or
            dtype of a leaf (names it), or a damaged or hostile file -- all checked before any
            array data is read.
    """
    p = Path(path)
    want, treedef = _layout(like)

    def check(declared: dict[str, Spec], meta: dict[str, Any],
              read: Callable[[str], np.ndarray]) -> None:
        if set(meta) != {"keys", "extra"} or not isinstance(meta["keys"], dict):
            raise _refuse(p, "meta must hold 'keys' and 'extra'")
        check_layout(p, declared, want, "the template")

    arrays, meta = load_arrays(p, kind=_KIND_TREE, check=check, max_bytes=max_bytes)
    return _unflatten(treedef, want, arrays, meta["keys"]), dict(meta["extra"])


# --- Training checkpoints -------------------------------------------------------------------


def dataset_info(ds: Dataset) -> dict[str, Any]:
    """What :func:`save` records about the training data (JSON-ready).

    Returns:
        ``{"name", "task", "feature_names", "target", "n_features", "n_outputs",
        "classes"}``; ``n_outputs`` is the class count for classification, else 1;
        ``classes`` is ``None`` for regression.
    """
    classes = None if ds.classes is None else ds.classes.tolist()
    return {
        "name": ds.name,
        "task": ds.task,
        "feature_names": list(ds.feature_names),
        "target": ds.target_name,
        "n_features": ds.n_features,
        "n_outputs": ds.n_classes if ds.task == "classification" else 1,
        "classes": classes,
    }


def save(
    path: str | os.PathLike[str],
    state: TrainState,
    config: TrainConfig,
    *,
    scaler: Scaler | None = None,
    dataset: Mapping[str, Any] | None = None,
    history: History | None = None,
    extra: Mapping[str, Any] | None = None,
    target_scaler: Scaler | None = None,
) -> None:
    """Save a training state atomically, with what :func:`load` needs to resume or predict.

    Args:
        path: the ``.npz`` file to (over)write.
        state: the :class:`TrainState` (e.g. ``FitResult.state`` or ``ChunkInfo.state``).
        config: the run's :class:`TrainConfig`.
        scaler: the feature standardisation to apply before predicting, or None.
        dataset: :func:`dataset_info` of the training data (feature names, task,
            classes); None stores only the sizes implied by the parameters.
        history: training (per step) and validation (per epoch) losses so far.
        extra: any JSON-ready dict the caller wants back (the CLI stores its flags).
        target_scaler: the standardisation the regression targets were trained in (predictions
            are mapped back with it), or None.
    Raises:
        TypeError: ``state`` is not a TrainState, or ``config`` not a TrainConfig.
    """
    if not isinstance(state, TrainState):
        raise InputTypeError(f"state: expected a TrainState, got {type(state).__name__}")
    if not isinstance(config, TrainConfig):
        raise InputTypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    arrays: dict[str, Any] = _host_arrays(state)[0]
    d = int(arrays["params/0/W"].shape[0])
    k = int(arrays[f"params/{len(state.params) - 1}/W"].shape[1])
    info = dict(dataset) if dataset is not None else {"n_features": d, "n_outputs": k}
    if scaler is not None:
        arrays["scaler/mean"], arrays["scaler/scale"] = scaler.mean, scaler.scale
    if target_scaler is not None:
        arrays["target/mean"], arrays["target/scale"] = target_scaler.mean, target_scaler.scale
    if history is not None:
        arrays["history/train_loss"] = np.asarray(history.train_loss)
        arrays["history/val_loss"] = np.asarray(history.val_loss)
    meta = {
        "config": dataclasses.asdict(config),
        "dataset": info,
        "key_impl": str(jax.random.key_impl(state.key)),
        "extra": dict(extra or {}),
    }
    save_arrays(path, arrays, meta, kind=_KIND_TRAIN_STATE)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded training checkpoint.

    Attributes:
        state: the :class:`TrainState`; pass it to ``fit(config, ..., state=...)``.
        config: the run's :class:`TrainConfig`.
        scaler: the feature scaler, or None when the run used raw features.
        target_scaler: the standardisation of the regression targets the network was trained in,
            or None (raw targets); :func:`jaxnn.experiment.predict` maps outputs back with it.
        dataset: the data set description (see :func:`dataset_info`).
        history: losses up to this checkpoint (empty when none were saved).
        extra: the caller's extra dict.
        path: the file it came from.
    """

    state: TrainState
    config: TrainConfig
    scaler: Scaler | None
    dataset: dict[str, Any]
    history: History
    extra: dict[str, Any]
    path: str
    target_scaler: Scaler | None = None

    @property
    def params(self) -> Any:
        """The parameters to predict with: the best ones when early stopping fired."""
        state = self.state
        early = self.config.patience is not None and bool(state.stopped) and int(state.diverged_step) < 0
        return state.best_params if early else state.params


def _config_from_meta(p: Path, raw: Any) -> TrainConfig:
    if not isinstance(raw, dict):
        raise _refuse(p, "meta.config must be a JSON object")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if set(raw) != fields:
        raise _refuse(p, f"meta.config keys differ from TrainConfig's (extra: {sorted(set(raw) - fields)}, "
                         f"missing: {sorted(fields - set(raw))})")
    values = dict(raw)
    if isinstance(values["hidden"], list):
        values["hidden"] = tuple(values["hidden"])
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as e:
        raise _refuse(p, f"meta.config is invalid ({e})") from None


def _check_dataset(p: Path, info: Any, d: int, k: int) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise _refuse(p, "meta.dataset must be a JSON object")
    for key in ("n_features", "n_outputs"):
        if info.get(key) != (d if key == "n_features" else k):
            raise _refuse(p, f"meta.dataset.{key} is {info.get(key)!r}, the parameters imply "
                             f"{d if key == 'n_features' else k}")
    names = info.get("feature_names")
    if names is not None and (not isinstance(names, list) or len(names) != d
                              or not all(isinstance(n, str) for n in names)):
        raise _refuse(p, f"meta.dataset.feature_names must be {d} strings")
    if names is not None and len(set(names)) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise _refuse(p, f"meta.dataset.feature_names has duplicate names {dups}")
    task = info.get("task", "regression")
    if task not in ("regression", "classification"):
        raise _refuse(p, f"meta.dataset.task is {task!r}")
    classes = info.get("classes")
    if task == "classification" and (
        not isinstance(classes, list) or len(classes) != k
        or not all(isinstance(c, int | float | str) and not isinstance(c, bool) for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise _refuse(p, f"meta.dataset.classes must list the {k} distinct class labels")
    return info


def load(path: str | os.PathLike[str], *, max_bytes: int = MAX_TOTAL_BYTES) -> Checkpoint:
    """Load a checkpoint written by :func:`save`, refusing anything that does not fit.

    Every array must have the name, shape and dtype of the training state its stored config
    implies; that, the step counters and the history lengths are checked before any array data is
    decompressed, and the parameters and optimizer state must then be finite.

    Args:
        path: the ``.npz`` file.
        max_bytes: the most array data the file may declare (see :data:`MAX_TOTAL_BYTES`).
    Returns:
        A :class:`Checkpoint`.
    Raises:
        FileNotFoundError / IsADirectoryError: no such file, or a directory.
        ValueError: truncated, garbage or tampered content; the message names the file.
    """
    p = Path(path)
    found: dict[str, Any] = {}
    arrays, meta = load_arrays(p, kind=_KIND_TRAIN_STATE, max_bytes=max_bytes,
                               check=lambda *args: found.update(_check_declared(p, *args)))
    config, want = found["config"], found["want"]
    for name in want:
        a = arrays[name]
        if name.startswith(("params/", "best_params/", "opt_state/")) and a.dtype.kind == "f" \
                and not np.isfinite(a).all():
            raise _refuse(p, f"array {name!r} holds NaN or inf")
    if "history/train_loss" in arrays:
        history = History(train_loss=np.array(arrays["history/train_loss"]),
                          val_loss=np.array(arrays["history/val_loss"]))
    else:
        history = History(train_loss=np.zeros((0,)), val_loss=np.zeros((0,)))
    with training.x64_context(config.dtype):
        state = _unflatten(found["treedef"], want, arrays, {"key": meta["key_impl"]})
    return Checkpoint(state=state, config=config, scaler=_scaler(p, arrays, _SCALER), dataset=found["info"],
                      history=history, extra=meta["extra"], path=str(p),
                      target_scaler=_scaler(p, arrays, _TARGET))


def _check_declared(p: Path, declared: dict[str, Spec], meta: dict[str, Any],
                    read: Callable[[str], np.ndarray]) -> dict[str, Any]:
    """Everything :func:`load` can check before array data is read; returns what it derived."""
    if set(meta) != {"config", "dataset", "key_impl", "extra"}:
        raise _refuse(p, f"meta keys are {sorted(meta)}, expected config, dataset, extra, key_impl")
    config = _config_from_meta(p, meta["config"])
    n_layers = len(config.hidden) + 1
    w0, wl = declared.get("params/0/W"), declared.get(f"params/{n_layers - 1}/W")
    if w0 is None or wl is None or len(w0[0]) != 2 or len(wl[0]) != 2:
        raise _refuse(p, f"missing the weights of the {n_layers} layers the config describes")
    d, k = int(w0[0][0]), int(wl[0][1])
    if d < 1 or k < 1:
        raise _refuse(p, f"layer sizes {d}, {k} must be positive")
    info = _check_dataset(p, meta["dataset"], d, k)
    with training.x64_context(config.dtype):
        want, treedef = _layout(jax.eval_shape(lambda: training.init_state(config, d, k, 1)))
    optional = (*_SCALER, *_TARGET, *_HISTORY)
    check_layout(p, {n: s for n, s in declared.items() if n not in optional}, want,
                  "its config's training state")
    if meta["key_impl"] != (default_impl := str(jax.random.key_impl(jax.random.key(0)))):
        raise _refuse(p, f"key_impl is {meta['key_impl']!r}, expected {default_impl!r}")
    if not isinstance(meta["extra"], dict):
        raise _refuse(p, "meta.extra must be a JSON object")
    for group in (_SCALER, _TARGET, _HISTORY):
        if (group[0] in declared) != (group[1] in declared):
            raise _refuse(p, f"{group[0]} and {group[1]} must both be present")
    for names_, size in ((_SCALER, d), (_TARGET, k)):
        for name in names_:
            if name in declared and declared[name] != ((size,), np.dtype(np.float64)):
                raise _refuse(p, f"{name} must be float64 of shape ({size},), got {declared[name][1]} "
                                 f"{declared[name][0]}")
    # The counters (scalars: a few bytes) bound the history lengths.
    # (the epoch is not stored: it is step // steps_per_epoch, and at most step)
    step = int(read("step"))
    diverged, bad = int(read("diverged_step")), int(read("bad_epochs"))
    rows = float(read("epoch_rows"))
    if step < 0:
        raise _refuse(p, f"step {step} must be >= 0")
    if config.steps is not None and step > config.steps:
        raise _refuse(p, f"step {step} is past the config's total of {config.steps} steps")
    if not -1 <= diverged <= step or bad < 0 or not (math.isfinite(rows) and 0 <= rows):
        raise _refuse(p, f"diverged_step {diverged} (-1 or a step <= {step}), bad_epochs {bad} (>= 0) "
                         f"or epoch_rows {rows} (>= 0) out of range")
    if _HISTORY[0] in declared:
        (tl, tl_dtype), (vl, vl_dtype) = declared["history/train_loss"], declared["history/val_loss"]
        if len(tl) != 1 or len(vl) != 1 or tl_dtype.kind != "f" or vl_dtype.kind != "f":
            raise _refuse(p, "history arrays must be 1-D float arrays")
        longest = step + 1 if diverged >= 0 else step  # a diverged run also records the failing loss
        if not step <= tl[0] <= longest or vl[0] > step:
            raise _refuse(p, f"history holds {tl[0]} training and {vl[0]} validation losses; "
                             f"step {step} allows {step} and at most {step}")
    return {"config": config, "info": info, "want": want, "treedef": treedef}


def _scaler(p: Path, arrays: Mapping[str, np.ndarray], names_: tuple[str, str]) -> Scaler | None:
    """The scaler stored as ``names_`` (shapes and dtypes already checked), or None."""
    if names_[0] not in arrays:
        return None
    try:
        return Scaler(mean=arrays[names_[0]], scale=arrays[names_[1]])
    except ValueError as e:
        raise _refuse(p, f"{names_[0].split('/')[0]} is invalid ({e})") from None
