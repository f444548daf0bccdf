"""jaxnn.check_vjp: its numbers, its structural checks, its report, and its errors on bad input."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import foundations as F
from jaxnn import gradients
from jaxnn.checking import check_deriv, check_vjp
from jaxnn.testing import assert_vjp


def softplus(x):
    return jnp.logaddexp(x, 0.0)


def softplus_backward(x, c):
    return (c * jax.nn.sigmoid(x),)


def dense(x, W, b):
    return x @ W + b[None, :]


def dense_backward(x, W, b, c):
    return c @ W.T, x.T @ c, jnp.sum(c, axis=0)


def _dense_args(key=0, n=5, d=4, k=3):
    kx, kw, kb = jax.random.split(jax.random.key(key), 3)
    return (jax.random.normal(kx, (n, d), jnp.float64), jax.random.normal(kw, (d, k), jnp.float64),
            jax.random.normal(kb, (k,), jnp.float64))


def _x(shape=(4, 5), key=1, dtype=jnp.float64, scale=1.0):
    return scale * jax.random.normal(jax.random.key(key), shape, dtype)


# --- numbers ---------------------------------------------------------------------------------


def test_correct_backward_passes_and_reports_tiny_errors(x64):
    r = check_vjp(softplus, softplus_backward, (_x(),))
    assert r.passed and bool(r)
    assert r.reference_dtype == "float64" and r.dtype == "float64"
    assert r.max_rel_err < 1e-14 and r.fd_rel_err < 1e-8
    assert all(r.checks.values()) and len(r.checks) == 5
    assert not r.hints and not r.problems and not r.arguments[0].hints
    # a gradient that is zero everywhere (relu on negatives) is no "ignored cotangent"
    zero = check_vjp(F.relu, lambda x, c: (jnp.where(x > 0, c, 0.0),), (-jnp.abs(_x()) - 1,))
    assert zero.passed and not zero.hints
    assert "passed" in r.report() and "argument 0 (x): float64[4, 5]  ok" in r.report()


def test_random_draws_follow_the_key_and_compile_nothing(x64, caplog):
    """The cotangents, directions and coefficients come from the key (same key, same report; another
    key, other draws), drawn on the host: a check at shapes never seen compiles no random program
    (a ``jax.random`` draw would compile one per shape)."""
    def dense(x, W, b):
        return x @ W + b[None, :]

    def wrong(x, W, b, c):  # a bias gradient that averages: its errors depend on the cotangents drawn
        return c @ W.T, x.T @ c, jnp.mean(c, axis=0)

    args = _dense_args(n=11, d=5, k=9)  # shapes no other test uses
    with caplog.at_level("WARNING", logger="jax"), jax.log_compiles(True):
        first = check_vjp(dense, wrong, args)
    compiled = " ".join(r.getMessage() for r in caplog.records)
    assert "Compiling jit(matmul)" in compiled  # the log is live: the forward compiled at new shapes
    for random_program in ("_normal", "_uniform", "_randint", "_threefry_split", "_threefry_seed"):
        assert f"Compiling jit({random_program})" not in compiled, random_program
    again = check_vjp(dense, wrong, args)
    other = check_vjp(dense, wrong, args, key=jax.random.key(1))
    b0, b1, b2 = (r.arguments[2] for r in (first, again, other))
    assert not first.passed and b0.max_abs_err == b1.max_abs_err and b0.fd_abs_err == b1.fd_abs_err
    assert b2.max_abs_err != b0.max_abs_err and b2.fd_abs_err != b0.fd_abs_err


def test_factor_two_errors_and_worst_element_are_the_true_ones(x64):
    """The report's numbers against an independent computation of the same errors."""
    x = _x()
    cot = _x(key=7)
    r = check_vjp(softplus, lambda x, c: (2 * c * jax.nn.sigmoid(x),), (x,), cotangent=cot)
    assert not r.passed
    # every cotangent's error is |2g - g| = |g|; the user's cotangent is #0
    ref = np.asarray(cot * jax.nn.sigmoid(x))
    arg = r.arguments[0]
    assert arg.max_abs_err >= np.max(np.abs(ref))
    assert arg.max_rel_err == pytest.approx(1.0, rel=1e-12)
    where, hand, refv, _k = arg.worst
    assert hand == pytest.approx(2 * refv, rel=1e-12)
    # the element furthest out is the largest gradient over all cotangents, the user's included
    assert abs(refv) >= np.max(np.abs(ref)) * (1 - 1e-12)
    assert re.fullmatch(r"\[\d, \d\]", where)
    assert any("= 2 x jax.vjp" in h for h in arg.hints)
    text = r.report()
    assert "worst element [" in text and "hand-written" in text and "rtol 1e-10" in text


def test_with_backward_function_checks_value_and_wiring(x64):
    f = jaxnn.with_backward(softplus, softplus_backward)
    r = check_vjp(f, (_x(),))
    assert r.passed and r.checks["f == forward"] and r.checks["jax.vjp(f) == backward"]
    g = jaxnn.with_backward(softplus, lambda x, c: (-c * jax.nn.sigmoid(x),))
    bad = check_vjp(g, (_x(),))
    assert not bad.passed and "flipped sign" in bad.report()


def test_float32_inputs_are_checked_against_a_float64_reference():
    assert not jax.config.jax_enable_x64
    x = _x(dtype=jnp.float32)
    r = check_vjp(softplus, softplus_backward, (x,))
    assert r.passed and r.dtype == "float32" and r.reference_dtype == "float64"
    # float32 rounding of the hand-written backward, not of the reference: ~1e-7
    assert 0 < r.max_rel_err < 1e-5
    assert not jax.config.jax_enable_x64  # the x64 context was restored
    bad = check_vjp(softplus, lambda x, c: (1.001 * c * jax.nn.sigmoid(x),), (x,))
    assert not bad.passed


def test_forward_that_cannot_run_in_float64_falls_back_with_a_note():
    def f(x):
        return x * jnp.ones(x.shape, jnp.float32)  # float64 * float32 is an error (strict)

    r = check_vjp(f, lambda x, c: (c,), (_x(dtype=jnp.float32),))
    assert r.passed and r.reference_dtype == "float32"
    assert any("could not run in float64" in n for n in r.notes)


def test_integer_arguments_are_not_checked(x64):
    def nll(logits, labels):
        return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

    def nll_backward(logits, labels, c):
        onehot = jax.nn.one_hot(labels, logits.shape[1], dtype=logits.dtype)
        return c * (jax.nn.softmax(logits) - onehot), None

    labels = jnp.array([0, 2, 1, 2], jnp.int32)
    r = check_vjp(nll, nll_backward, (_x((4, 3)), labels))
    assert r.passed
    assert not r.arguments[1].differentiable
    assert "integer, not differentiated" in r.report()


def test_pytree_arguments(x64):
    def f(p, x):
        return jnp.tanh(x @ p["W"] + p["b"][None, :])

    def f_backward(p, x, c):
        d = c * (1 - f(p, x) ** 2)
        return {"W": x.T @ d, "b": jnp.sum(d, axis=0)}, d @ p["W"].T

    x, W, b = _dense_args()
    assert check_vjp(f, f_backward, ({"W": W, "b": b}, x)).passed

    def wrong(p, x, c):
        g, dx = f_backward(p, x, c)
        return {"W": g["W"], "b": 2 * g["b"]}, dx

    r = check_vjp(f, wrong, ({"W": W, "b": b}, x))
    assert not r.passed and r.arguments[0].worst[0].startswith("['b']")


# --- structure -------------------------------------------------------------------------------


def test_wrong_number_of_gradients_is_a_failed_result(x64):
    r = check_vjp(dense, lambda x, W, b, c: (c @ W.T, x.T @ c), _dense_args())
    assert not r.passed
    assert "backward returned 2 gradients for 3 arguments" in r.report()
    r = check_vjp(softplus, lambda x, c: c * jax.nn.sigmoid(x), (_x(),))
    assert not r.passed and "must return a tuple" in r.report()


def test_no_argument_line_says_ok_when_nothing_was_compared(x64):
    """Before: ``argument 0 (x): float64[4, 5]  ok`` above ``one gradient per argument FAILED``."""
    r = check_vjp(softplus, lambda x, c: c * jax.nn.sigmoid(x), (_x(),))  # a bare array, not (g,)
    lines = r.report().splitlines()
    assert "  argument 0 (x): float64[4, 5]  not checked (no gradient of it to compare; see the problem " \
           "below)" in lines
    assert "  problem: backward must return a tuple of 1 gradients (one per argument), got a bare array " \
           "(ArrayImpl); return (gradient,) even for one argument" in lines
    assert not any(line.startswith("  argument") and line.endswith("  ok") for line in lines)
    assert [(a.checked, a.passed) for a in r.arguments] == [(False, False)]
    assert r.as_json()["arguments"][0]["checked"] is False
    r = check_vjp(dense, lambda x, W, b, c: (c @ W.T, x.T @ c), _dense_args())  # 2 gradients for 3
    assert not r.passed and all(not a.passed and not a.checked for a in r.arguments)
    assert sum(" not checked " in line for line in r.report().splitlines()) == 3
    # every line agrees with the verdict where the backward is right
    good = check_vjp(softplus, lambda x, c: (c * jax.nn.sigmoid(x),), (_x(),))
    assert good.passed and all(a.checked and a.passed for a in good.arguments)


def test_shape_mismatch_names_both_shapes_and_the_transpose(x64):
    r = check_vjp(dense, lambda x, W, b, c: (c @ W.T, c.T @ x, jnp.sum(c, axis=0)), _dense_args())
    assert not r.passed
    text = r.report()
    assert "gradient has shape (3, 4), argument has shape (4, 3)" in text
    assert "transposed shape" in text
    assert r.arguments[0].passed and r.arguments[2].passed


def test_float32_gradient_for_float64_argument_fails(x64):
    r = check_vjp(softplus, lambda x, c: ((c * jax.nn.sigmoid(x)).astype(jnp.float32),), (_x(),))
    assert not r.passed
    assert "gradient has dtype float32, argument has dtype float64" in r.report()


def test_backward_that_raises_is_a_failed_result(x64):
    def boom(x, c):
        raise RuntimeError("no backward yet")

    r = check_vjp(softplus, boom, (_x(),))
    assert not r.passed and "backward raised RuntimeError: no backward yet" in r.report()


def test_not_linear_and_nonzero_for_zero_cotangent(x64):
    r = check_vjp(softplus, lambda x, c: (c * jax.nn.sigmoid(x) + 1e-3,), (_x(),))
    assert not r.passed
    assert r.checks["zero cotangent gives zeros"] is False
    assert r.checks["linear in the cotangent"] is False
    r = check_vjp(softplus, lambda x, c: (c * jnp.abs(c) * jax.nn.sigmoid(x),), (_x(),))
    assert not r.passed and r.checks["linear in the cotangent"] is False


def test_jit_and_no_jit_must_agree(x64):
    def sneaky(x, c):
        g = c * jax.nn.sigmoid(x)
        return (g * 1.5 if isinstance(c, jax.core.Tracer) else g,)

    r = check_vjp(softplus, sneaky, (_x(),))
    assert r.arguments[0].passed  # right eagerly ...
    assert not r.passed and r.checks["jit == no jit"] is False  # ... wrong under jit

    def not_jittable(x, c):
        return (c * np.asarray(jax.nn.sigmoid(x)),)

    r = check_vjp(softplus, not_jittable, (_x(),))
    assert not r.passed and "jax.jit(backward) fails" in r.report()


def test_custom_vjp_forward_is_decided_by_finite_differences(x64):
    """jax.vjp of a with_backward function runs its own backward: no independent reference."""
    f = jaxnn.with_backward(softplus, lambda x, c: (2 * c * jax.nn.sigmoid(x),))
    r = check_vjp(f, f.backward, (_x(),))  # forward = f itself
    assert not r.passed
    assert any("custom_vjp" in n for n in r.notes)
    assert "disagrees with finite differences" in r.report()


# --- kinks and saturation ----------------------------------------------------------------------


def test_relu_next_to_and_at_the_kink(x64):
    x = jnp.array([-1.0, -1e-9, -1e-12, 0.0, 1e-12, 1e-9, 1e-7, 2.0])
    r = check_vjp(F.relu, lambda x, c: (jnp.where(x > 0, c, 0.0),), (x,))  # relu'(0) = 0 as jax.vjp
    assert r.passed, r.report()
    assert any("kink" in n for n in r.arguments[0].notes)  # the differences straddled it
    wrong = check_vjp(F.relu, lambda x, c: (jnp.where(x >= 0, c, 0.0),), (x,))  # right-hand at 0
    assert not wrong.passed and wrong.arguments[0].worst[0] == "[3]"
    lr = check_vjp(F.leaky_relu, lambda x, c: (c * F.leaky_relu_deriv(x),), (x,))
    assert lr.passed, lr.report()


@pytest.mark.parametrize("forward", [F.sigmoid, jax.nn.sigmoid], ids=["stable", "jax.nn"])
def test_saturated_sigmoid_backwards_pass(forward, x64):
    x = jnp.concatenate([jnp.linspace(-50.0, 50.0, 21), jnp.array([-50.0, -45.0, 45.0, 50.0])])
    stable = check_vjp(forward, lambda x, c: (c * F.sigmoid_deriv(x),), (x,))
    assert stable.passed, stable.report()

    def naive(x, c):
        s = 1 / (1 + jnp.exp(-x))
        return (c * s * (1 - s),)

    assert check_vjp(forward, naive, (x,)).passed
    saturated = jnp.array([45.0, 47.5, 50.0, -45.0, -50.0])  # only saturated values
    assert check_vjp(forward, lambda x, c: (c * F.sigmoid_deriv(x),), (saturated,)).passed


# --- assert_vjp, register, check_chain --------------------------------------------------------


def test_assert_vjp_raises_with_the_report(x64):
    assert assert_vjp(softplus, softplus_backward, (_x(),)).passed
    with pytest.raises(AssertionError, match=r"(?s)FAILED.*constant factor"):
        assert_vjp(softplus, lambda x, c: (0.5 * c * jax.nn.sigmoid(x),), (_x(),))


def test_register_replaces_and_accepts_with_backward_functions(x64):
    name = "test_check_vjp.softplus"
    f = jaxnn.with_backward(softplus, lambda x, c: (3 * c * jax.nn.sigmoid(x),))
    try:
        gradients.register(f, name=name, example=lambda key, dtype: (_x(dtype=dtype),))
        assert not gradients.check_entry(gradients.get(name)).passed
        g = jaxnn.with_backward(softplus, softplus_backward)
        e = gradients.register(g, name=name, example=(_x(),))  # the same name: replaced
        assert gradients.get(name) is e and e.module == __name__
        result = gradients.check_entry(gradients.get(name))
        assert result.passed and result.max_rel_err < 1e-14
        assert [x.name for x in gradients.registry()].count(name) == 1
    finally:
        gradients.unregister(name)
    with pytest.raises(TypeError, match="example"):
        gradients.register(f)
    with pytest.raises(TypeError, match="entry"):
        gradients.register(softplus, example=(_x(),))


def test_check_chain_catches_a_wrong_deriv(x64):
    x = jnp.linspace(-2.0, 2.0, 9)
    assert len(F.check_chain([F.leaky_relu, F.square, F.sigmoid], x)) == 3

    def my_tanh(x):
        return jnp.tanh(x)

    my_tanh.deriv = lambda x: 1 - x**2  # the classic slip: 1 - x^2 instead of 1 - tanh(x)^2
    with pytest.raises(ValueError, match=r"link 1 \('my_tanh'\)"):
        F.check_chain([F.square, my_tanh], x)
    assert not check_deriv(my_tanh, x).passed
    assert check_deriv(my_tanh, x, deriv=F.tanh_deriv).passed


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: check_vjp(1, softplus_backward, (jnp.ones(2),)), TypeError, "forward"),
        (lambda: check_vjp(softplus, "nope", (jnp.ones(2),)), TypeError, "backward"),
        (lambda: check_vjp(softplus, (jnp.ones(2),)), TypeError, "with_backward"),
        (lambda: check_vjp(softplus, softplus_backward, {"x": jnp.ones(2)}), TypeError, "args"),
        (lambda: check_vjp(softplus, softplus_backward, ("a",)), TypeError, r"args\[0\]"),
        (lambda: check_vjp(softplus, softplus_backward, ()), ValueError, "args"),
        (lambda: check_vjp(softplus, softplus_backward, (jnp.ones(2, jnp.int32),)), ValueError,
         "no floating-point"),
        (lambda: check_vjp(softplus, softplus_backward, (jnp.ones(2),), rtol=-1.0), ValueError,
         "rtol"),
        (lambda: check_vjp(softplus, softplus_backward, (jnp.ones(2),), eps=0.0), ValueError, "eps"),
        (lambda: check_vjp(softplus, softplus_backward, (jnp.ones(2),), atol="x"), TypeError, "atol"),
        (lambda: check_vjp(softplus, softplus_backward, (jnp.ones(2),), key=jax.random.PRNGKey(0)),
         TypeError, "key"),
        (lambda: check_vjp(softplus, softplus_backward, (jnp.ones(2),), cotangent=jnp.ones(3)),
         ValueError, r"cotangent: shape \(3,\)"),
        (lambda: check_vjp(lambda x: (x > 0), softplus_backward, (jnp.ones(2),)), ValueError,
         "forward"),
    ],
)
def test_bad_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_readme_example_prints_the_report_shown(capsys):
    """The README's "Check your own backward" snippet runs and prints the report it shows."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Check your own backward", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    shown = section.split("```text\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("False\ncheck_vjp(dense): FAILED")
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  argument 2 (b)"))
    key_lines = [lines[1], *lines[start:]]  # the failing argument's block, whole (its numbers
    assert len(key_lines) >= 6  # are large; the passing ones' 1e-16 may differ by machine)
    for line in key_lines:
        assert line in shown, line


def test_pytree_output_and_low_precision_inputs():
    def polar(x):
        return jnp.sin(x), {"c": jnp.cos(x)}

    def polar_backward(x, c):
        return (c[0] * jnp.cos(x) - c[1]["c"] * jnp.sin(x),)

    with jax.enable_x64(True):
        assert check_vjp(polar, polar_backward, (_x(),)).passed
        r = check_vjp(polar, lambda x, c: (c[0] * jnp.cos(x) + c[1]["c"] * jnp.sin(x),), (_x(),))
        assert not r.passed
    for dtype in (jnp.float16, jnp.bfloat16):
        x = _x(dtype=jnp.float32).astype(dtype)
        r = check_vjp(polar, polar_backward, (x,))
        assert r.passed and r.dtype == jnp.dtype(dtype).name, r.report()
        assert not check_vjp(polar, lambda x, c: (2 * polar_backward(x, c)[0],), (x,)).passed


def test_references_are_one_compiled_program_or_eager_where_the_forward_cannot_be_traced(x64, caplog):
    """jax.vjp's pullbacks of all cotangents compile as one program (op by op, every operation of
    the linearized and transposed forward compiles its own); a forward with a Python branch on
    an integer argument's value cannot be traced by jax.jit, and gets its references op by op."""
    with caplog.at_level("WARNING", logger="jax"), jax.log_compiles(True):
        r = check_vjp(softplus, softplus_backward, (_x(shape=(7, 3)),))
    compiled = [m.getMessage() for m in caplog.records if m.getMessage().startswith("Compiling ")]
    assert r.passed and sum("Compiling jit(pullbacks)" in m for m in compiled) == 1, compiled

    def power(x, n):  # a Python branch on the integer argument's value: not traceable by jax.jit
        return jnp.sin(x) if int(n) > 0 else -x

    x, n = _x(), jnp.asarray(2)
    right = check_vjp(power, lambda x, n, c: (c * jnp.cos(x), None), (x, n))
    wrong = check_vjp(power, lambda x, n, c: (-c * jnp.cos(x), None), (x, n))
    assert right.passed and right.max_rel_err < 1e-14 and right.reference_dtype == "float64"
    assert not wrong.passed and wrong.arguments[0].max_rel_err > 1.0
