"""How jaxnn asks XLA:CPU to compile its programs; nothing here changes a result.

Three settings (why, and what each gains: ``docs/development.md``, "Small training loops as one
function" and "Programs that run once"):

* :func:`request_small_loops` adds XLA:CPU's small-while-loop threshold to ``XLA_FLAGS``, so the
  scan over minibatches of a small network compiles into one function. XLA reads it once, when JAX
  starts its CPU backend, so only a program that owns its process calls it (the CLI, the
  benchmarks); importing jaxnn changes nothing.
* :func:`jit` compiles a program without YNNPACK on CPU, where asked: for tiny steps
  (:func:`is_tiny_step`), whose loop a YNNPACK kernel would keep from being one function.
* :func:`jit_once` compiles a program that runs once per fit (drawing the initial parameters,
  creating the optimizer's state) for a short compile rather than fast code (:data:`ONCE`):
  XLA:CPU's classic kernel emitters and LLVM's level-1 optimisations. Such a program has no
  loop, so its compile time is all it costs.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import MutableMapping, Sequence
from typing import Any

from jaxnn import envvars

ENV_OPT_OUT = "JAXNN_NO_XLA_FLAGS"
SMALL_LOOP_BYTES = 1 << 18  # 256 KiB per iteration: the seed network's scan needs about 100 KiB
SMALL_LOOP_FLAG = f"--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold={SMALL_LOOP_BYTES}"
NO_YNNPACK: dict[str, str | bool] = {"xla_cpu_experimental_ynn_fusion_type": ""}
ONCE: dict[str, str | bool | int] = {"xla_cpu_use_fusion_emitters": False,
                                     "xla_backend_optimization_level": 1}
TINY_STEP_FLOPS = 16_384  # forward FLOPs of one minibatch; the seed network's is 8,372


def request_small_loops(environ: MutableMapping[str, str] | None = None) -> bool:
    """Add the small-loop threshold to ``XLA_FLAGS``; True if it was added.

    Leaves ``XLA_FLAGS`` alone when it already sets ``--xla_backend_extra_options`` (the
    user's own) or when ``JAXNN_NO_XLA_FLAGS`` is set to anything but "", "0", "false", "no".
    """
    env = os.environ if environ is None else environ
    if envvars.is_set(ENV_OPT_OUT, env):
        return False
    flags = env.get("XLA_FLAGS", "")
    if "xla_backend_extra_options" in flags:
        return False
    env["XLA_FLAGS"] = f"{flags} {SMALL_LOOP_FLAG}".strip()
    return True


def step_flops(batch_size: int, sizes: Sequence[int]) -> int:
    """Forward FLOPs of one minibatch through an MLP of these layer sizes: 2 B sum(a b)."""
    return 2 * batch_size * sum(a * b for a, b in itertools.pairwise(sizes))


def _unknown_option(e: Exception) -> bool:
    """Whether a compile failed because the installed jaxlib does not know a compile option."""
    return "compile option" in str(e)


def jit(fn: Any, *, no_ynnpack: bool, args: tuple[Any, ...], **jit_kw: Any) -> Any:
    """``jax.jit(fn)``, without YNNPACK when asked and running on CPU, compiled for ``args`` now.

    Returns the jitted function -- never the compiled executable, so it stays traceable
    (``eval_shape``, ``vmap``, an outer ``jit``); its later calls with ``args``' shapes reuse the
    compilation. A jaxlib that does not know the option compiles with its defaults instead.
    """
    import jax

    tries: list[dict[str, Any]] = [{}]
    if no_ynnpack and jax.default_backend() == "cpu":
        tries.insert(0, {"compiler_options": NO_YNNPACK})
    for i, options in enumerate(tries):
        jitted: Any = jax.jit(fn, **options, **jit_kw)
        try:
            compiled = jitted.lower(*args).compile()
        except jax.errors.JaxRuntimeError as e:
            if i == len(tries) - 1 or not _unknown_option(e):
                raise
            continue
        jitted.hlo_text = compiled.as_text  # (for compiled_text; not callable with data)
        return jitted
    raise AssertionError("unreachable: the last try returns or raises")


def jit_once(fn: Any, **jit_kw: Any) -> Any:
    """``jax.jit(fn, **jit_kw)`` for a program that runs once per fit: on CPU compiled with
    :data:`ONCE` (same bits, a shorter compile); on another backend, inside another trace
    (``jax.eval_shape``, an outer ``jit``) or with the ``"xla_cpu"`` acceleration off, as
    ``jax.jit`` compiles it. The backend is read at the call, not at import. A jaxlib that does
    not know an option of :data:`ONCE` compiles with its defaults instead (as :func:`jit`)."""
    import jax

    from jaxnn import accelerations

    variants: dict[bool, Any] = {}

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves((args, kwargs)))
        once = not traced and accelerations.enabled("xla_cpu") and jax.default_backend() == "cpu"
        if once not in variants:
            variants[once] = jax.jit(fn, **jit_kw, compiler_options=ONCE if once else None)
        try:
            return variants[once](*args, **kwargs)
        except jax.errors.JaxRuntimeError as e:
            if not once or not _unknown_option(e):
                raise
            variants[True] = variants.setdefault(False, jax.jit(fn, **jit_kw))  # never ask again
            return variants[True](*args, **kwargs)

    return call


def compiled_text(jitted: Any) -> str:
    """The optimized HLO of a program from :func:`jit`, as compiled for its arguments (for tests)."""
    return str(jitted.hlo_text())


def is_tiny_step(batch_size: int, n_params: int) -> bool:
    """Whether a step is small enough that per-kernel overhead, not arithmetic, dominates: a dense
    model's forward FLOPs are about 2 B (number of params)."""
    return 2 * batch_size * n_params <= TINY_STEP_FLOPS
