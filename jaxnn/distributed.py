"""Data parallelism on JAX's own runtime: a ``data`` mesh axis, in one process or across several.

Minibatches are sharded over ``"data"``; parameters, optimizer state, key and the dataset are
replicated, and XLA inserts the gradient all-reduce. Several processes join with
:func:`initialize` first; only :func:`is_primary` writes files. What is placed where, and why:
docs/how-to/devices.md.
"""

from __future__ import annotations

import contextlib
import os
import sys
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnn.errors import InputError, InputTypeError

DATA_AXIS = "data"

# Environment variables read by :func:`initialize` when an argument is not given.
# JAX itself reads JAX_COORDINATOR_ADDRESS; the other two are jaxnn's (JAX finds the
# process count and index itself only on SLURM, Open MPI, Kubernetes, ... clusters).
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


# --- Several processes ------------------------------------------------------------------------


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name}: expected an integer, got {text!r}") from None


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: int = 300,
) -> bool:
    """Join a multi-process JAX run (``jax.distributed.initialize``), if one is asked for.

    Call it before anything creates JAX arrays or lists devices. Arguments left as
    None come from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``; on SLURM / Open MPI / Kubernetes JAX detects the count
    and index itself once a coordinator is known. With nothing given and nothing
    in the environment this is a no-op (one process).

    On CPU, cross-process collectives use gloo (``jax_cpu_collectives_implementation``).

    Args:
        coordinator: ``"HOST:PORT"`` of process 0's coordinator service; every
            process passes the same address.
        num_processes: total number of processes P (>= 1).
        process_id: this process's index in ``[0, P)``.
        timeout_s: seconds to wait for all processes to join.
    Returns:
        True when running as part of a multi-process run (also when it was
        already initialised), False for a plain single-process run.
    Raises:
        ValueError/TypeError: malformed arguments or environment variables, named.
    """
    if jax.distributed.is_initialized():
        return True
    coordinator = coordinator if coordinator is not None else os.environ.get(ENV_COORDINATOR)
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    if coordinator is None and num_processes is None and process_id is None:
        return False
    if coordinator is not None:
        if not isinstance(coordinator, str):
            raise InputTypeError(f"coordinator: expected 'HOST:PORT', got {type(coordinator).__name__}")
        host, sep, port = coordinator.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InputError(f"coordinator: expected 'HOST:PORT' (e.g. 10.0.0.1:1234), got {coordinator!r}")
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer)):
            raise InputTypeError(f"{name}: expected an integer, got {value!r}")
    if num_processes is not None and num_processes < 1:
        raise InputError(f"num_processes: expected a positive integer, got {num_processes}")
    too_big = num_processes is not None and process_id is not None and process_id >= num_processes
    if process_id is not None and (process_id < 0 or too_big):
        raise InputError(f"process_id: expected an integer in [0, num_processes={num_processes}), "
                         f"got {process_id}")
    if num_processes == 1 and coordinator is None:
        return False
    if getattr(jax.config, "jax_cpu_collectives_implementation", None) is None:  # no CPU collectives set
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # gloo announces its connections on stdout (from C++, at the first cross-process
    # collective): make that happen now, inside a redirection to stderr, so stdout stays
    # clean for `jaxnn train --json`. The collective also checks every process has joined.
    with _stdout_to_stderr():
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=None if num_processes is None else int(num_processes),
            process_id=None if process_id is None else int(process_id),
            initialization_timeout=int(timeout_s),
        )
        multihost_utils.sync_global_devices("jaxnn.distributed.initialize")
    return True


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for the duration (catches output from C++ too)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def is_primary() -> bool:
    """True in process 0 (and in every single-process run): the one process that writes files."""
    return jax.process_index() == 0


def request_cpu_devices(n: int) -> None:
    """Ask JAX for ``n`` CPU devices (``jax_num_cpu_devices``), one per core worth using.

    For a command-line entry point, before anything starts JAX's backends: on a CPU-only
    machine, ``--devices N`` then finds N devices. It changes nothing when the user already
    chose a count (``JAX_NUM_CPU_DEVICES`` or XLA_FLAGS' ``--xla_force_host_platform_device_count``)
    or when JAX has already started (the devices are then what they are, and too few gives
    :func:`make_data_mesh`'s error). Accelerators are not affected.
    """
    if os.environ.get("JAX_NUM_CPU_DEVICES") or \
            "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        jax.config.update("jax_num_cpu_devices", int(n))
    except RuntimeError:  # JAX's backends already started
        pass


def default_devices() -> int | None:
    """What ``devices=`` defaults to in the CLI: None (one device) in a single process,
    every device of every process in a multi-process run."""
    return jax.device_count() if jax.process_count() > 1 else None


# --- The mesh --------------------------------------------------------------------------------


def make_data_mesh(devices: int | Sequence[Any] | Mesh | None = None, *, axis: str = DATA_AXIS) -> Mesh:
    """A one-axis mesh ``("data",)`` for data parallelism (or named ``axis``: ``fit_many``'s models).

    Args:
        devices: None: every device (of every process); an int N: the first N of
            ``jax.devices()``; a sequence of ``jax.Device``; or a ready ``Mesh``
            with a ``"data"`` axis (returned as it is).
    Returns:
        ``Mesh`` of shape ``(D,)`` with axis type ``Auto`` (shardings are hints to
        XLA's partitioner, which inserts the gradient all-reduce).
    Raises:
        ValueError: too many devices requested, or a mesh that leaves out a process.
        TypeError: ``devices`` of another type.
    """
    if isinstance(devices, Mesh):
        if axis not in devices.axis_names:
            raise InputError(f"devices: the mesh needs a {axis!r} axis, got axes {devices.axis_names}")
        return devices
    available = jax.devices()
    if devices is None:
        chosen = list(available)
    elif isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        if devices < 1:
            raise InputError(f"devices: expected a positive number of devices, got {devices}")
        if devices > len(available):
            hint = ""
            if available[0].platform == "cpu":
                hint = (f"; to simulate {devices} devices on CPU set JAX_NUM_CPU_DEVICES={devices} "
                        f"(or XLA_FLAGS=--xla_force_host_platform_device_count={devices}) "
                        "before starting Python")
            raise InputError(f"devices: {devices} requested but only {len(available)} "
                             f"{available[0].platform} device(s) available{hint}")
        chosen = list(available[: int(devices)])
    elif isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices) > 0:
        chosen = list(devices)
        if not all(isinstance(d, jax.Device) for d in chosen):
            raise InputTypeError("devices: expected jax.Device objects in the sequence")
        if len({d.id for d in chosen}) != len(chosen):
            raise InputError("devices: the same device is listed twice")
    else:
        raise InputTypeError("devices: expected None, a positive int, a sequence of jax devices or a Mesh, "
                        f"got {devices!r}")
    # Every process must own part of the mesh, or it could not take part in the program.
    missing = set(range(jax.process_count())) - {d.process_index for d in chosen}
    if missing:
        raise InputError(f"devices: the {len(chosen)} chosen device(s) leave out process(es) "
                         f"{sorted(missing)}; in a multi-process run use every process's devices "
                         f"({len(available)} in all)")
    return Mesh(np.array(chosen), (axis,), axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows (the leading axis) split over ``"data"``; the rest of the array whole."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Raise ``ValueError`` unless ``batch_size`` rows split evenly over the mesh's devices.

    The rule: the minibatch of B rows (``min(batch_size, n_samples)``) must be a
    multiple of the device count D, so that every device gets B / D rows. (The
    padded last batch has the same shape B, so it splits the same way.)
    """
    d = mesh.shape[DATA_AXIS]
    if batch_size % d:
        lower = max(d, batch_size // d * d)
        raise InputError(
            f"batch_size: {batch_size} rows per minibatch do not split evenly over {d} devices; "
            f"use a multiple of {d} (e.g. {lower} or {lower + d})"
        )


# --- Moving pytrees on and off the mesh ------------------------------------------------------


def is_key(x: Any) -> bool:
    """Whether ``x`` is a typed PRNG key array (``jax.random.key``)."""
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Every leaf of ``tree`` as a global array replicated on ``mesh``.

    Works across processes: each process passes the same values (it holds the
    whole array) and gets back a global array spanning every process's devices.
    Typed PRNG keys travel as their raw key data.
    """
    sharding = replicated(mesh)
    if jax.process_count() > 1:
        _check_same_on_every_process(tree)

    def put(x: Any) -> Any:
        if is_key(x):
            data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        return jax.device_put(np.asarray(x), sharding)

    return jax.tree_util.tree_map(put, tree)


def _check_same_on_every_process(tree: Any) -> None:
    """Raise ``ValueError`` unless every process passes the same values (a CRC32 per leaf).

    Replicated arrays are built from each process's own copy; JAX does not compare
    them, and processes that loaded different data would silently train on a mix.
    """
    digest = np.array([zlib.crc32(np.ascontiguousarray(
        np.asarray(jax.random.key_data(x)) if is_key(x) else np.asarray(x)).tobytes())
        for x in jax.tree_util.tree_leaves(tree)], dtype=np.uint32)
    every = np.asarray(multihost_utils.process_allgather(digest)).reshape(jax.process_count(), -1)
    differ = [i for i in range(every.shape[0]) if not np.array_equal(every[i], digest)]
    if differ:
        raise InputError(f"processes {sorted(differ)} hold different training data or state than process "
                         f"{jax.process_index()}: every process must load the same dataset, split and "
                         "configuration")


def to_local(tree: Any) -> Any:
    """Every (fully replicated) leaf of ``tree`` as an ordinary array on this process's default device.

    What :func:`jaxnn.training.fit` returns after data-parallel training, so
    predictions, metrics and checkpoints never see the mesh.
    """

    def get(x: Any) -> Any:
        if is_key(x):
            return jax.random.wrap_key_data(jnp.asarray(np.asarray(jax.random.key_data(x))),
                                            impl=jax.random.key_impl(x))
        return jnp.asarray(np.asarray(x))

    return jax.tree_util.tree_map(get, tree)
