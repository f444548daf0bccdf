"""How jaxnn asks XLA:CPU to compile its programs; nothing here changes a result beyond the
order of floating-point operations.

Three settings (why, and what each gains: ``docs/development.md``, "Small training loops as one
function" and "Programs that run once"):

* :func:`request_small_loops` adds XLA:CPU's small-while-loop threshold to ``XLA_FLAGS``, so the
  scan over minibatches of a small network compiles into one function. XLA reads it once, when JAX
  starts its CPU backend, so only a program that owns its process calls it (the CLI, the
  benchmarks); importing jaxnn changes nothing.
* :func:`jit` compiles a training program for CPU: without YNNPACK for tiny steps
  (:func:`is_tiny_step`), whose loop a YNNPACK kernel would keep from being one function; and
  for larger float64 steps, with every weight gradient's product reading a written-out transpose
  (:func:`written_out_transposes`), which XLA:CPU computes twice as fast as the same product
  with its left operand contracted over its rows.
* :func:`jit_once` compiles a program that runs once per fit (drawing the initial parameters,
  creating the optimizer's state) for a short compile rather than fast code (:data:`ONCE`):
  XLA:CPU's classic kernel emitters and LLVM's level-1 optimisations. Such a program has no
  loop, so its compile time is all it costs.
"""

from __future__ import annotations

import collections
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


def jit(fn: Any, *, accelerate: bool, tiny: bool, args: tuple[Any, ...], **jit_kw: Any) -> Any:
    """``jax.jit(fn)``, compiled for ``args`` now; with ``accelerate`` (one device, the ``"xla_cpu"``
    switch on) and on CPU: without YNNPACK for a ``tiny`` step, else through
    :func:`written_out_transposes` when ``args`` hold float64 arrays (a tiny step's products are
    too small for their form to matter, and the rewrite costs a second trace of the program).

    Returns the jitted function -- never the compiled executable, so it stays traceable
    (``eval_shape``, ``vmap``, an outer ``jit``); its later calls with ``args``' shapes reuse the
    compilation. A jaxlib that does not know the option compiles with its defaults instead.
    """
    import jax
    import numpy as np

    tries: list[dict[str, Any]] = [{}]
    if accelerate and jax.default_backend() == "cpu":
        if tiny:
            tries.insert(0, {"compiler_options": NO_YNNPACK})
        elif any(getattr(x, "dtype", None) == np.float64 for x in jax.tree_util.tree_leaves(args)):
            fn = written_out_transposes(fn)
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


def written_out_transposes(fn: Any) -> Any:
    """``fn`` with every float64 weight gradient ``a.T @ b`` (2-D ``a`` and ``b`` contracted over
    their rows, hand-written or from ``jax.grad``) computed as ``copy(a.T) @ b``: a written-out
    transpose, then a product of rows by columns, which XLA:CPU runs about twice as fast.

    XLA folds a transpose into the product it feeds, and moves one that follows a product onto
    its operands; ``optimization_barrier`` keeps the copy and the product apart. ``fn`` is traced
    to a jaxpr and run again equation by equation with those products replaced, inside loops and
    branches too; nothing else changes. Gain: ``docs/development.md``, "Weight gradients in
    float64".
    """
    import jax

    @functools.wraps(fn)  # (the program keeps fn's name)
    def call(*args: Any) -> Any:
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        out = _run(closed.jaxpr, closed.consts, jax.tree_util.tree_leaves(args))
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shapes), out)

    return call


def _rows_product(eqn: Any, made_by: dict[Any, Any]) -> tuple[Any, Any, Any] | None:
    """For a float64 product whose 2-D left operand is contracted over its rows (``a.T @ b``): (``a``,
    ``b``, ``b``'s contracted axes); else None. ``made_by``: each variable's transpose equation."""
    import jax
    import numpy as np

    if eqn.primitive is not jax.lax.dot_general_p:
        return None
    a, b = eqn.invars
    (lc, rc), (lb, _) = eqn.params["dimension_numbers"]
    if lb or a.aval.ndim != 2 or a.aval.dtype != np.float64:
        return None
    if tuple(lc) == (0,):  # dot_general(c, x) contracting rows: jax.grad's form
        return a, b, tuple(rc)
    if tuple(lc) == (1,) and a in made_by:  # x.T @ c, written by hand
        return made_by[a].invars[0], b, tuple(rc)
    return None


def _transposes(jaxpr: Any) -> dict[Any, Any]:
    """Each variable of ``jaxpr`` made by a 2-D transpose: its equation."""
    import jax

    return {e.outvars[0]: e for e in jaxpr.eqns
            if e.primitive is jax.lax.transpose_p and tuple(e.params["permutation"]) == (1, 0)}


def _has_rows_product(jaxpr: Any) -> bool:
    """Whether :func:`_run` would replace a product in ``jaxpr`` or in a jaxpr inside it."""
    from jax.extend.core import jaxprs_in_params

    made_by = _transposes(jaxpr)
    return any(_rows_product(e, made_by) is not None
               or any(map(_has_rows_product, jaxprs_in_params(e.params))) for e in jaxpr.eqns)


def _dot_options(eqn: Any) -> dict[str, Any]:
    return {k: eqn.params[k] for k in ("precision", "preferred_element_type") if k in eqn.params}


def _run(jaxpr: Any, consts: Any, args: Any) -> list[Any]:
    """Evaluate ``jaxpr`` as ``jax.core.eval_jaxpr`` does, with :func:`written_out_transposes`'
    products, here and in its sub-jaxprs."""
    import jax
    from jax.extend.core import ClosedJaxpr, Literal

    def sub(closed: ClosedJaxpr) -> ClosedJaxpr:
        avals = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in closed.in_avals]
        return jax.make_jaxpr(lambda *a: _run(closed.jaxpr, closed.consts, a))(*avals)

    def param(v: Any) -> Any:  # a loop's or branch's jaxpr is traced again only if it has such a product
        if isinstance(v, ClosedJaxpr) and _has_rows_product(v.jaxpr):
            return sub(v)
        if (isinstance(v, tuple) and v and all(isinstance(b, ClosedJaxpr) for b in v)  # cond's branches
                and any(_has_rows_product(b.jaxpr) for b in v)):
            return tuple(sub(b) for b in v)
        return v

    made_by = _transposes(jaxpr)
    uses = collections.Counter(v for e in jaxpr.eqns for v in e.invars if not isinstance(v, Literal))
    uses.update(v for v in jaxpr.outvars if not isinstance(v, Literal))
    # jax.grad's ``transpose(dot_general(c, x))``: computed as x.T @ c, the transpose dropped
    then_t = {e.invars[0]: e for e in made_by.values() if uses[e.invars[0]] == 1}
    env: dict[Any, Any] = dict(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    barrier = jax.lax.optimization_barrier

    def read(v: Any) -> Any:
        return v.val if isinstance(v, Literal) else env[v]

    for eqn in jaxpr.eqns:
        if eqn.outvars and eqn.outvars[0] in env:  # a transpose already computed with its product
            continue
        pair = _rows_product(eqn, made_by)  # (a, b, b's contracted axes)
        with eqn.ctx.manager:
            if pair is not None:
                a, b, rc = read(pair[0]), read(pair[1]), pair[2]
                out = eqn.outvars[0]
                swap = out in then_t and b.ndim == 2 and rc == (0,)
                if swap:  # the transposed product, computed directly
                    a, b = b, a
                dims = (((1,), rc), ((), ()))
                product = barrier(jax.lax.dot_general(barrier(a.T), b, dims, **_dot_options(eqn)))
                if swap:  # (the product itself stays readable: XLA drops it where nothing reads it)
                    env[then_t[out].outvars[0]], product = product, product.T
                env[out] = product
                continue
            params = eqn.primitive.get_bind_params({k: param(v) for k, v in eqn.params.items()})
            outs = eqn.primitive.bind(*map(read, eqn.invars), **params)
        env.update(zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs], strict=True))
    return [read(v) for v in jaxpr.outvars]


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
