"""jaxnn.with_backward: jax.grad / jax.vjp of anything built on f run the hand-written backward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn.backward import forward_of


def softplus(x):
    return jnp.logaddexp(x, 0.0)


def softplus_backward(x, cotangent):
    return (cotangent * jax.nn.sigmoid(x),)


def test_grad_runs_the_hand_written_backward_not_autodiff():
    calls = []

    def backward(x, c):
        calls.append(1)
        return (3.0 * c,)  # deliberately not softplus' derivative: proves which rule ran

    f = jaxnn.with_backward(softplus, backward)
    x = jnp.linspace(-2.0, 2.0, 5)
    np.testing.assert_array_equal(f(x), softplus(x))
    np.testing.assert_allclose(jax.grad(lambda x: f(x).sum())(x), 3.0 * np.ones(5))
    assert calls


def test_equals_autodiff_in_float64_under_jit_vmap_and_scan():
    f = jaxnn.with_backward(softplus, softplus_backward)
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(0), (6, 3), jnp.float64) * 5

        def total(g, x):
            def body(c, row):
                return c + jnp.sum(g(row) ** 2), None
            return jax.lax.scan(body, jnp.zeros((), x.dtype), x)[0]

        manual = jax.jit(jax.grad(lambda x: total(f, x)))(x)
        auto = jax.grad(lambda x: total(softplus, x))(x)
        np.testing.assert_allclose(manual, auto, rtol=1e-13, atol=0)
        per_row = jax.vmap(jax.grad(lambda r: f(r).sum()))(x)
        np.testing.assert_allclose(per_row, jax.nn.sigmoid(x), rtol=1e-13)


def test_integer_arguments_get_no_gradient_and_pytrees_work():
    def ce(p, z, y):
        logits = z @ p["W"]
        return -jax.nn.log_softmax(logits)[jnp.arange(z.shape[0]), y]

    def ce_backward(p, z, y, c):
        logits = z @ p["W"]
        d = c[:, None] * (jax.nn.softmax(logits) - jax.nn.one_hot(y, logits.shape[1]))
        return {"W": z.T @ d}, d @ p["W"].T, None

    f = jaxnn.with_backward(ce, ce_backward)
    with jax.enable_x64(True):
        k1, k2 = jax.random.split(jax.random.key(1))
        p = {"W": jax.random.normal(k1, (4, 3), jnp.float64)}
        z = jax.random.normal(k2, (5, 4), jnp.float64)
        y = jnp.array([0, 2, 1, 1, 0])
        gm = jax.grad(lambda p, z: f(p, z, y).mean(), argnums=(0, 1))(p, z)
        ga = jax.grad(lambda p, z: ce(p, z, y).mean(), argnums=(0, 1))(p, z)
        np.testing.assert_allclose(gm[0]["W"], ga[0]["W"], rtol=1e-12)
        np.testing.assert_allclose(gm[1], ga[1], rtol=1e-12)


def test_forward_of_gives_the_plain_forward():
    f = jaxnn.with_backward(softplus, softplus_backward)
    assert forward_of(f) is softplus
    assert forward_of(softplus) is softplus
    assert f.backward is softplus_backward


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="forward"):
        jaxnn.with_backward(1, softplus_backward)
    with pytest.raises(TypeError, match="backward"):
        jaxnn.with_backward(softplus, "no")
    f = jaxnn.with_backward(softplus, lambda x, c: c)  # not a tuple
    with pytest.raises(TypeError, match="tuple of 1 gradients"):
        jax.grad(lambda x: f(x).sum())(jnp.ones(3))
