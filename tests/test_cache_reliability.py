"""The persistent compilation cache is only ever a cache: damaged, hostile, racing, read-only or full,
it never changes a number, fails a run or hangs one.

The store's rules are tested on :class:`jaxnn.compilation_cache.VerifiedStore` directly (fast,
every byte of an entry); what a user sees is tested in fresh processes (warnings as errors):
each damage is done to the real training program's entry between two fits, and the second fit
must give the first fit's bits, say nothing, and leave a valid entry behind.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_default_path import user_env

from jaxnn import compilation_cache
from jaxnn.compilation_cache import SUFFIX, VerifiedStore

ROOT = Path(__file__).resolve().parents[1]
FOREIGN_UID = 65534  # "nobody"


# --- the store's rules, in process -------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> VerifiedStore:
    assert compilation_cache.private_dir(tmp_path / "store") is None
    return VerifiedStore(tmp_path / "store", max_bytes=1 << 20)


def test_an_entry_round_trips_only_while_jaxnn_compiles(store: VerifiedStore) -> None:
    store.put("jit_f-abc", b"payload")  # outside scope(): the user's own programs never land here
    assert not list(store._path.iterdir())
    with compilation_cache.scope():
        store.put("jit_f-abc", b"payload")
        assert store.get("jit_f-abc") == b"payload"
        assert store.get("jit_g-abc") is None
    assert store.get("jit_f-abc") is None  # outside scope() the store answers nothing
    (entry,) = store._path.iterdir()
    assert entry.name == "jit_f-abc" + SUFFIX and stat.S_IMODE(entry.stat().st_mode) == 0o600


def test_every_changed_byte_of_an_entry_is_caught_and_the_entry_replaced(store: VerifiedStore) -> None:
    value = bytes(range(256)) * 4
    with compilation_cache.scope():
        store.put("jit_f-1", value)
        path = store._file("jit_f-1")
        good = path.read_bytes()
        for i in range(len(good)):  # every byte: magic, digest and payload
            damaged = bytearray(good)
            damaged[i] ^= 1 << (i % 8)
            path.write_bytes(bytes(damaged))
            assert store.get("jit_f-1") is None, f"byte {i} changed and not caught"
            assert not path.exists()  # discarded: JAX compiles and the put below rewrites it
            store.put("jit_f-1", value)
            assert store.get("jit_f-1") == value


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "other_key", "too_large"])
def test_damaged_entries_are_misses_and_removed(store: VerifiedStore, damage: str) -> None:
    with compilation_cache.scope():
        store.put("jit_f-1", b"x" * 1000)
        store.put("jit_g-2", b"y" * 1000)
        path, other = store._file("jit_f-1"), store._file("jit_g-2")
        if damage == "truncated":  # as a full disk leaves a non-atomic writer's file
            path.write_bytes(path.read_bytes()[:500])
        elif damage == "empty":
            path.write_bytes(b"")
        elif damage == "garbage":
            path.write_bytes(os.urandom(1100))
        elif damage == "other_key":  # another program's entry under this program's name
            path.write_bytes(other.read_bytes())
        else:
            with path.open("r+b") as f:
                f.truncate(compilation_cache.MAX_ENTRY_BYTES + 1000)  # sparse: no disk used
        assert store.get("jit_f-1") is None and not path.exists()
        assert store.get("jit_g-2") == b"y" * 1000  # the other entry is untouched


def test_a_fifo_or_a_link_in_place_of_an_entry_never_blocks_nor_is_followed(store: VerifiedStore,
                                                                           tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"not yours")
    with compilation_cache.scope():
        store.put("jit_f-1", b"v")
        good = store._file("jit_f-1").read_bytes()
        target.write_bytes(good)  # a valid entry elsewhere: a link to it is still not followed
        for make in (os.mkfifo, lambda p: os.symlink(target, p)):
            path = store._file("jit_f-1")
            path.unlink(missing_ok=True)
            make(path)
            got: list[Any] = []

            def read(got: list[Any] = got) -> None:
                with compilation_cache.scope():  # per thread
                    got.append(store.get("jit_f-1"))

            t = threading.Thread(target=read, daemon=True)
            t.start()
            t.join(timeout=10)
            assert not t.is_alive(), "get() blocked on a FIFO"
            assert got == [None] and not os.path.lexists(path)
        assert target.read_bytes() == good  # the link's target was neither read as an entry nor removed


def test_the_directory_has_a_size_cap_and_keeps_the_most_recently_used(tmp_path: Path) -> None:
    assert compilation_cache.private_dir(tmp_path / "s") is None
    store = VerifiedStore(tmp_path / "s", max_bytes=1 << 20)
    with compilation_cache.scope():
        for i in range(10):
            store.put(f"jit_f-{i}", bytes(3000))
            os.utime(store._file(f"jit_f-{i}"), (1000 + i, 1000 + i))  # a clear order of use
        store.max_bytes = 10_000
        store.get("jit_f-0")  # used again: now the most recent
        store.put("jit_f-new", bytes(3000))
    names = {p.name for p in store._path.iterdir()}
    total = sum(p.stat().st_size for p in store._path.iterdir())
    assert total <= 10_000
    assert {"jit_f-0" + SUFFIX, "jit_f-new" + SUFFIX} <= names
    assert "jit_f-1" + SUFFIX not in names  # the least recently used went first


def test_a_write_scans_the_directory_only_when_the_cap_may_be_passed(tmp_path: Path) -> None:
    """A scan stats every entry, so writes do not scan each time: only the first, one that takes the
    size this process knows past the cap, or one a minute after the last scan."""
    assert compilation_cache.private_dir(tmp_path / "s") is None
    store = VerifiedStore(tmp_path / "s", max_bytes=1 << 20)
    stale = store._path / (".tmp-dead" + SUFFIX)
    with compilation_cache.scope():
        store.put("jit_f-0", bytes(3000))  # the first write scans
        stale.write_bytes(b"left by a killed process")
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
        for i in range(1, 20):
            store.put(f"jit_f-{i}", bytes(3000))
        assert stale.exists()  # 19 writes well under the cap: no scan
        store.max_bytes = 30_000
        store.put("jit_f-new", bytes(3000))  # past the cap: scanned, evicted
        assert not stale.exists()
        assert sum(p.stat().st_size for p in store._path.iterdir()) <= 30_000
        stale.write_bytes(b"left by a killed process")
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
        store._scanned -= compilation_cache._RESCAN_S  # as if the last scan were a minute old
        store.put("jit_f-late", bytes(10))
        assert not stale.exists()


def test_stale_temporary_files_are_removed(store: VerifiedStore) -> None:
    stale = store._path / (".tmp-dead" + SUFFIX)
    stale.write_bytes(b"left by a killed process")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = store._path / (".tmp-writing" + SUFFIX)
    fresh.write_bytes(b"another process is writing this")
    with compilation_cache.scope():
        store.put("jit_f-1", b"v")
    assert not stale.exists() and fresh.exists()


def test_the_directory_is_created_private_and_refused_when_unsafe(tmp_path: Path) -> None:
    new = tmp_path / "a" / "b"
    assert compilation_cache.private_dir(new) is None
    assert stat.S_IMODE(new.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert "writable by others" in (compilation_cache.private_dir(shared) or "")
    shared.chmod(0o775)
    assert "writable by others" in (compilation_cache.private_dir(shared) or "")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert compilation_cache.private_dir(a_file) is not None
    foreign = _foreign_dir(tmp_path)
    assert "owned by another user" in (compilation_cache.private_dir(foreign) or "")


def _foreign_dir(tmp_path: Path) -> Path:
    """A directory another user owns (made so as root; any root-owned one for other users)."""
    if os.getuid() == 0:
        d = tmp_path / "foreign"
        d.mkdir(mode=0o755)
        os.chown(d, FOREIGN_UID, FOREIGN_UID)
        return d
    return Path("/")


# --- what a user sees, in fresh processes ------------------------------------------------------

_DAMAGE = """
import json, os, sys, warnings
import jax, jax.numpy as jnp, numpy as np, optax
import jaxnn
from jaxnn import compilation_cache, engine

def l2(p, x, y): return (x @ p - y) ** 2
def l1(p, x, y): return jnp.abs(x @ p - y)

X = np.linspace(-1, 1, 120, dtype=np.float32).reshape(40, 3); Y = X @ np.array([1., -2., .5], np.float32)
opt = optax.adam(0.05)
hits = []
jax.monitoring.register_event_listener(
    lambda e, **k: hits.append(e) if e == "/jax/compilation_cache/cache_hits" else None)

def fit(loss):
    jax.clear_caches(); engine._COMPILED.clear()  # as a new process: look the program up on disk
    n = len(hits)
    p = jaxnn.fit(loss, jnp.zeros(3), (X, Y), optimizer=opt, batch_size=8, epochs=5).params
    return np.asarray(p).tolist(), len(hits) > n

store = compilation_cache.default_dir()
first = {"l2": fit(l2)[0]}
entries = lambda: {p.name: p.read_bytes() for p in store.glob("*.jaxnn")}
before = entries()
first["l1"] = fit(l1)[0]
(l1_entry,) = set(entries()) - set(before)  # the L1 program's entry
l2_entry = next(n for n in before if n.startswith("jit_run_chunk-"))
out = {"l1_differs": first["l1"] != first["l2"], "cases": {}}
for case in sys.argv[1:]:
    path = store / l2_entry
    good = path.read_bytes()
    path.unlink()
    if case.startswith("flip"):
        i = int(case[4:]) % len(good)
        damaged = bytearray(good); damaged[i] ^= 0x10; path.write_bytes(bytes(damaged))
    elif case == "truncated": path.write_bytes(good[: len(good) // 2])
    elif case == "garbage": path.write_bytes(os.urandom(len(good)))
    elif case == "other_program": path.write_bytes((store / l1_entry).read_bytes())
    elif case == "fifo": os.mkfifo(path)
    elif case == "symlink": os.symlink(store / l1_entry, path)
    got, _ = fit(l2)
    with compilation_cache.scope():  # the entry was rewritten, valid
        rewritten = compilation_cache._state["store"].get(l2_entry[: -len(".jaxnn")]) is not None
    again, hit = fit(l2)  # and it loads
    out["cases"][case] = {"same": got == first["l2"] and again == first["l2"], "hit": hit,
                          "rewritten": rewritten and path.is_file() and not path.is_symlink()}
print(json.dumps(out))
"""


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**user_env(cache), **extra}


def _run(code: str, cache: Path, *args: str, env: dict[str, str] | None = None,
         prefix: tuple[str, ...] = ()) -> Any:
    p = subprocess.run([*prefix, sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                       text=True, cwd=ROOT, env=env or _env(cache), timeout=300, check=False)
    assert p.returncode == 0 and "Warning" not in p.stderr, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_damaged_entries_never_change_a_result_and_are_rewritten(tmp_path: Path) -> None:
    cases = ["flip0", "flip37", "flip5000", "flip-1", "truncated", "garbage", "other_program", "fifo",
             "symlink"]
    out = _run(_DAMAGE, tmp_path / "cache", *cases)
    assert out["l1_differs"]  # two losses of one shape: two programs, two results
    for case in cases:
        got = out["cases"][case]
        assert got == {"same": True, "hit": True, "rewritten": True}, (case, got)


_FIT = """
import json, sys
import numpy as np
from jaxnn import compilation_cache
from jaxnn.training import TrainConfig, fit
X = np.linspace(-1, 1, 90, dtype=np.float32).reshape(30, 3); Y = np.sin(X[:, :1] * 2)
r = fit(TrainConfig(hidden=(5,), batch_size=7, epochs=4, optimizer="adam", seed=int(sys.argv[1])), X, Y)
print(json.dumps({"params": [np.asarray(l["W"]).tolist() for l in r.params],
                  "why_off": compilation_cache.why_off()}))
"""


@pytest.fixture(scope="module")
def no_cache_params(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``_FIT``'s parameters from a process without a cache: what every cached run must give."""
    unused = tmp_path_factory.mktemp("no-cache") / "unused"
    return _run(_FIT, unused, "0", env=_env(unused, JAXNN_NO_COMPILATION_CACHE="1"))["params"]


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*")) if cache.is_dir() else []


def test_processes_racing_on_one_empty_cache_all_succeed_with_the_same_numbers(
        tmp_path: Path, no_cache_params: Any) -> None:
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", _FIT, "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(cache))
             for _ in range(4)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "Warning" not in err, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1])["params"])
    assert all(o == outs[0] for o in outs)
    assert not [n for n in _leftovers(cache) if n.startswith(".tmp-")]
    assert _run(_FIT, cache, "0")["params"] == outs[0] == no_cache_params


def _read_only(prefix_dir: Path) -> dict[str, Any]:
    """How to run a child that cannot write to ``prefix_dir`` (mode 0500): as root, without the
    capability that lets root write anywhere; otherwise the mode alone does it."""
    prefix_dir.chmod(0o500)
    if os.getuid() == 0:
        caps = "-dac_override,-dac_read_search"
        return {"prefix": ("setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--")}
    return {}


def test_a_read_only_cache_changes_nothing(tmp_path: Path, no_cache_params: Any) -> None:
    cache = tmp_path / "cache"
    _run(_FIT, cache, "0")  # filled once...
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    for p in cache.iterdir():
        os.utime(p, (1000, 1000))
    try:
        out = _run(_FIT, cache, "0", **_read_only(cache))  # ...then read-only: loads, writes nothing
    finally:
        cache.chmod(0o700)
    assert out["params"] == no_cache_params
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    try:
        out = _run(_FIT, empty, "0", **_read_only(empty))  # read-only and empty: compiles, writes nothing
    finally:
        empty.chmod(0o700)
    assert out["params"] == no_cache_params and _leftovers(empty) == []


# first thing in the child: every file it writes is limited to 4 kB (EFBIG past it), as on a full disk
_FULL_DISK = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
"""


def test_a_full_disk_leaves_nothing_behind(tmp_path: Path, no_cache_params: Any) -> None:
    cache = tmp_path / "cache"
    out = _run(_FULL_DISK + _FIT, cache, "0")
    assert out["params"] == no_cache_params
    assert _leftovers(cache) == []  # no truncated entry, no temporary file
    assert _run(_FIT, cache, "0")["params"] == out["params"]  # and the next run fills it


def test_an_unsafe_cache_directory_is_refused_and_the_run_goes_on(tmp_path: Path,
                                                                  no_cache_params: Any) -> None:
    want = no_cache_params
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    for where, why in ((shared, "writable by others"), (_foreign_dir(tmp_path), "owned by another user"),
                       (a_file, "not a directory")):
        out = _run(_FIT, where, "0")
        assert out["params"] == want and why in out["why_off"], (where, out["why_off"])
    assert _leftovers(shared) == [] and a_file.read_text() == "not a directory"


_CONFIG = """
import json, sys
import jax
before = {"min_s": 5.0, "min_bytes": 123}
jax.config.update("jax_persistent_cache_min_compile_time_secs", before["min_s"])
jax.config.update("jax_persistent_cache_min_entry_size_bytes", before["min_bytes"])
import numpy as np
from jaxnn import compilation_cache, training
from jaxnn.training import TrainConfig, fit
if sys.argv[1] != "default":
    compilation_cache.enable(sys.argv[1])  # a directory the user chose for jaxnn
X = np.linspace(-1, 1, 60, dtype=np.float32).reshape(20, 3)
r = fit(TrainConfig(hidden=(4,), batch_size=6, epochs=2), X, X[:, :1])
params = training.init_state(TrainConfig(hidden=(3,), seed=11, steps=1), 2, 1, 1).params
print(json.dumps({"min_s": jax.config.jax_persistent_cache_min_compile_time_secs,
                  "min_bytes": jax.config.jax_persistent_cache_min_entry_size_bytes,
                  "dir": jax.config.jax_compilation_cache_dir,
                  "init": [np.asarray(l["W"]).tolist() for l in params],
                  "fit": [np.asarray(l["W"]).tolist() for l in r.params]}))
"""


def test_the_users_settings_are_never_changed_and_their_directory_is_used(tmp_path: Path) -> None:
    out = _run(_CONFIG, tmp_path / "default", "default")
    assert (out["min_s"], out["min_bytes"], out["dir"]) == (5.0, 123, None)
    assert any((tmp_path / "default").glob("*" + SUFFIX))
    mine = tmp_path / "mine"
    out = _run(_CONFIG, tmp_path / "default2", str(mine))
    assert (out["min_s"], out["min_bytes"], out["dir"]) == (5.0, 123, None)
    assert any(mine.glob("*" + SUFFIX)) and not (tmp_path / "default2").exists()
    assert not (tmp_path / "exported").exists() and not (tmp_path / "mine" / "exported").exists()


def test_jax_configuration_is_part_of_the_key(tmp_path: Path) -> None:
    """A process with another threefry setting leaves entries; a default process never uses them."""
    cache = tmp_path / "cache"
    other = _run(_CONFIG, cache, "default", env=_env(cache, JAX_THREEFRY_PARTITIONABLE="0"))
    default = _run(_CONFIG, cache, "default")
    fresh = _run(_CONFIG, tmp_path / "fresh", "default", env=_env(tmp_path / "fresh",
                                                                  JAXNN_NO_COMPILATION_CACHE="1"))
    assert default["init"] == fresh["init"] and default["fit"] == fresh["fit"]
    assert other["init"] != default["init"]  # the setting does change the draw: the test can tell
    assert other["fit"] != default["fit"]


def test_two_losses_of_one_shape_are_two_programs_across_processes(tmp_path: Path) -> None:
    code = """
    import json, sys
    import jax.numpy as jnp, numpy as np, optax
    import jaxnn
    losses = {"l2": lambda p, x, y: (x @ p - y) ** 2, "l1": lambda p, x, y: jnp.abs(x @ p - y)}
    X = np.linspace(-1, 1, 60, dtype=np.float32).reshape(20, 3); Y = X @ np.array([1., -2., .5], np.float32)
    out = {}
    for name in sys.argv[1:]:
        out[name] = np.asarray(jaxnn.fit(losses[name], jnp.zeros(3), (X, Y), optimizer=optax.adam(0.05),
                                         batch_size=4, epochs=3).params).tolist()
    print(json.dumps(out))
    """
    cache = tmp_path / "cache"
    first = _run(code, cache, "l2", "l1")
    second = _run(code, cache, "l1", "l2")  # the other order, from a warm cache
    assert first == second and first["l1"] != first["l2"]
    assert np.asarray(first["l1"]).shape == (3,)
