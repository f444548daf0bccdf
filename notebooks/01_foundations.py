# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Foundations: functions, derivatives and the chain rule
#
# This notebook retells section 1.2 of the course notebook (*9.1 Deep Learning — Neural
# Network*, after Weidman ch. 1) with `jaxnn.foundations`. As in the seed, every idea is shown
# three ways:
#
# 1. **Math** — the formula;
# 2. **Pictures** — a plot;
# 3. **Code** — a function you can call, and a number you can check.
#
# Where jaxnn differs from the seed:
#
# * **Analytic derivatives.** The seed's `chain_deriv_2`, `chain_deriv_3` and matrix backwards
#   used the *numerical* derivative `deriv` (a central difference). jaxnn writes every
#   derivative by hand next to its function (`sigmoid` / `sigmoid_deriv`, also reachable as
#   `sigmoid.deriv`) and keeps `deriv` only as the seed's check.
# * **Chains of any length.** `chain_length_2` / `chain_length_3` become `chain_forward` and
#   `chain_deriv`, which take a list of any length.
# * **`ValueError`, not `assert`.** The seed checked shapes with `assert`, which `python -O`
#   removes. jaxnn raises `ValueError` naming both shapes.
# * **dL/dW is coded.** The seed derives $\partial L / \partial W = X^\top (\ldots)$ but never
#   writes it; `matrix_function_backward_sum_2` does.
# * **Every derivative is proven.** Each hand-written backward is registered in
#   `jaxnn.gradients` and compared with `jax.vjp` and with finite differences (last section).
#
# **Your turn.** Three cells ask you to write a derivative yourself: softplus's derivative
# (after 1.2.2), the chain rule for a new chain (after 1.2.5) and $\partial L / \partial W$ of
# the matrix lesson (1.2.8). Replace the `...` in the function's body and run the cell:
# `jaxnn.exercises` grades it with `jaxnn.check_vjp` against `jax.vjp` and finite
# differences and prints its verdict and report. Left blank, a cell says so and the notebook
# still runs top to bottom. Worked solutions: `solutions.py`, beside this notebook.

# %%
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from jaxnn import exercises, gradients
from jaxnn import foundations as F

# The seed printed NumPy float64 numbers; to reproduce them digit for digit this notebook
# runs JAX in float64 (JAX's default is float32). The switch is for this whole script.
jax.config.update("jax_enable_x64", True)

OUT = os.environ.get("JAXNN_NOTEBOOK_OUT")


def show(fig, name):
    """Save the figure when JAXNN_NOTEBOOK_OUT names a directory; display it in Jupyter."""
    if OUT:
        out = Path(OUT)
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / f"01_{name}.png", dpi=80, bbox_inches="tight")
    if "inline" in matplotlib.get_backend():
        plt.show()
    plt.close(fig)


# %% [markdown]
# ## 1.2.1 Functions
#
# **Math.** Two functions of one input:
#
# $$f_1(x) = x^2 \qquad f_2(x) = \max(x, 0)$$
#
# and the others a network uses: the sigmoid $\sigma(x) = 1 / (1 + e^{-x})$, the leaky ReLU
# ($x$ for $x \ge 0$, $0.2\,x$ otherwise — the seed's printed numbers need slope 0.2) and
# $\tanh$. Each is *elementwise*: applied to an array, it acts on every entry.
#
# **Code.** Each function sits beside its derivative:

# %%
x = jnp.linspace(-2.0, 2.0, 5)
for f in (F.square, F.relu, F.leaky_relu, F.sigmoid, F.tanh):
    print(f"{f.__name__:>10}(x) = {np.round(np.asarray(f(x)), 4)}")
    print(f"{f.__name__ + '_deriv':>10}(x) = {np.round(np.asarray(f.deriv(x)), 4)}")

# %% [markdown]
# **Pictures.** Each function (solid) with its derivative (dashed):
#
# $$\tfrac{d}{dx}x^2 = 2x,\quad
# \sigma'(x) = \sigma(x)\,(1 - \sigma(x)),\quad
# \tanh'(x) = 1 - \tanh^2 x,\quad
# \text{relu}'(x) = [x > 0],\quad
# \text{leaky}'(x) = 1 \text{ if } x \ge 0 \text{ else } 0.2$$

# %% tags=["figure"]
grid = jnp.linspace(-3.0, 3.0, 601)
funcs = (F.square, F.sigmoid, F.relu, F.leaky_relu, F.tanh)
fig, axes = plt.subplots(1, len(funcs), figsize=(18, 3.4))
for ax, f in zip(axes, funcs):
    ax.plot(grid, f(grid), label=f"{f.__name__}(x)")
    ax.plot(grid, f.deriv(grid), "--", label=f"{f.__name__}'(x)")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.set_title(f.__name__)
    ax.set_xlabel("input")
    ax.legend(fontsize=8)
axes[0].set_ylabel("output")
fig.tight_layout()
show(fig, "functions_and_derivatives")

# %% [markdown]
# ## 1.2.2 Derivatives
#
# **Math.** The derivative of $f$ at $a$ is the rate of change of the output with respect to the
# input there:
#
# $$\frac{df}{da} = \lim_{\Delta \to 0} \frac{f(a + \Delta) - f(a - \Delta)}{2\Delta}
# \approx \frac{f(a + 0.001) - f(a - 0.001)}{0.002}.$$
#
# For the square at $a = 2$: $(2.001^2 - 1.999^2) / 0.002 = 4$, and calculus gives
# $2a = 4$. It means: increase $x = 2$ by $0.001$ and the output grows by $4 \times 0.001$
# (indeed $2.001^2 = 4.004001 \approx 4 + 0.004$; the leftover $0.000001 = h^2$ is the
# second-order term).
#
# **Code.** `deriv` is the seed's central difference; `square_deriv` is calculus.

# %%
print("deriv(square, 2)       =", float(F.deriv(F.square, 2.0)))
print("square_deriv(2)        =", float(F.square_deriv(2.0)))
print("square(2.001)          =", float(F.square(2.001)))
print("square(2) + 4 * 0.001  =", float(F.square(2.0) + F.square_deriv(2.0) * 0.001))

# %% [markdown]
# The central difference has error $O(\Delta^2)$: for every function it agrees with the
# analytic derivative to about $10^{-7}$ (away from the kinks of relu and leaky relu).

# %%
points = jnp.asarray([-2.5, -0.7, 0.3, 1.1, 2.9])
print(f"{'function':>10}  max |deriv - analytic| on {np.asarray(points)}")
for f in funcs:
    err = jnp.max(jnp.abs(F.deriv(f, points) - f.deriv(points)))
    print(f"{f.__name__:>10}  {float(err):.1e}")

# %% [markdown]
# **Pictures.** The derivative is the slope of the tangent line:

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(5, 3.6))
xs = jnp.linspace(0.0, 3.0, 301)
ax.plot(xs, F.square(xs), label="$x^2$")
a = 2.0
ax.plot(xs, F.square(a) + F.square_deriv(a) * (xs - a), "--",
        label=f"tangent at {a:g}, slope {float(F.square_deriv(a)):g}")
ax.plot([a], [F.square(a)], "o")
ax.set_xlabel("input")
ax.set_ylabel("output")
ax.legend()
show(fig, "tangent")

# %% [markdown]
# ### Kinks
#
# `relu` and `leaky_relu` are not differentiable at 0. jaxnn picks the same one-sided values
# as `jax.nn`: $\text{relu}'(0) = 0$ (left-hand) and $\text{leaky}'(0) = 1$ (right-hand,
# because $\text{leaky}(x) = x$ for $x \ge 0$). `jax.grad` of these very functions gives the
# same numbers, so hand-written and automatic derivatives agree even at 0.

# %%
for f in (F.relu, F.leaky_relu):
    print(f"{f.__name__:>10}: hand-written {float(f.deriv(0.0))}, jax.grad {float(jax.grad(f)(0.0))}")

# %% [markdown]
# ### Your turn: softplus's derivative
#
# The **softplus** $\;s(x) = \log(1 + e^x)$ is a smooth relu: close to 0 for very negative
# $x$, close to $x$ for large $x$, and differentiable everywhere (`exercises.softplus`).
# Write its derivative, elementwise. Hint: $\frac{d}{dx}\log u = \frac{u'}{u}$, and the
# answer is a function you met above.
#
# `grade_softplus` checks your `softplus_deriv` as the backward `c * softplus_deriv(x)` of
# `softplus` with `jaxnn.check_vjp`: random cotangents `c`, against `jax.vjp` and finite
# differences, in float64.

# %% tags=["exercise"]
def softplus_deriv(x):
    """d/dx log(1 + e^x) at every entry of x; returns an array of x's shape."""
    ...  # your code here


verdict = exercises.grade_softplus(softplus_deriv)

# %% [markdown]
# ## 1.2.3 Nested functions
#
# **Math.** $y = f_2(f_1(x))$: first apply $f_1$, then $f_2$ to the result.
#
# **Code.** A *chain* is a list of elementwise functions; `chain_forward` feeds $x$ through
# them in order. The seed's example:

# %%
chain_1 = [F.square, F.sigmoid]
print("chain_forward([square, sigmoid], 2) =", float(F.chain_forward(chain_1, 2.0)))
print("the seed printed                      0.9820137900379085")

# %% [markdown]
# ## 1.2.4 The chain rule
#
# **Math.**
#
# $$\frac{d f_2}{dx}(x) = \frac{df_2}{du}\big(f_1(x)\big) \cdot \frac{df_1}{dx}(x)$$
#
# If box 1 turns a change of 1 in $x$ into a change of 3, and box 2 turns a change of 1 in its
# input into $-2$, the two together turn 1 into $-2 \times 3 = -6$: the derivatives multiply.
#
# **Code.** `chain_deriv` multiplies the analytic derivatives of the links, each evaluated at
# that link's own input. The seed multiplied *numerical* derivatives and printed
# `0.0706508353807067`; the analytic value differs from it by about $10^{-9}$.

# %%
analytic = float(F.chain_deriv(chain_1, 2.0))
numerical = float(F.deriv(lambda u: F.chain_forward(chain_1, u), 2.0))
autodiff = float(jax.grad(lambda u: F.chain_forward(chain_1, u))(2.0))
print(f"chain rule (analytic): {analytic!r}")
print(f"deriv of the chain:    {numerical!r}")
print(f"jax.grad:              {autodiff!r}")
print("seed (numerical):      0.0706508353807067")

# %% [markdown]
# The seed's check: increase the input by $h = 0.0001$ and the output should grow by
# $h$ times the derivative.

# %%
h = 0.0001
print("chain(2 + h)             =", float(F.chain_forward(chain_1, 2.0 + h)))
print("chain(2) + chain'(2) * h =", float(F.chain_forward(chain_1, 2.0) + analytic * h))

# %% [markdown]
# **Pictures.** The seed's chain-rule figure: $f_1$, $f_2$ and $f_2 \circ f_1$ (left), and the
# derivative of $f_2 \circ f_1$ by the chain rule and by `deriv` (right) — the curves lie on top
# of each other. Both orders of the two functions are shown.

# %% tags=["figure"]
fig, axes = plt.subplots(2, 2, figsize=(11, 7))
for row, chain in zip(axes, ([F.square, F.sigmoid], [F.sigmoid, F.square])):
    f1, f2 = chain
    name = f"{f2.__name__}({f1.__name__}(x))"
    row[0].plot(grid, f1(grid), label=f"f1 = {f1.__name__}")
    row[0].plot(grid, f2(grid), label=f"f2 = {f2.__name__}")
    row[0].plot(grid, F.chain_forward(chain, grid), lw=2.5, label=name)
    row[0].set_ylim(-0.5, 3.0)
    row[0].set_title("forward")
    row[0].legend(fontsize=8)
    row[1].plot(grid, F.chain_deriv(chain, grid), lw=3, alpha=0.6, label="chain rule (analytic)")
    row[1].plot(grid, F.deriv(lambda u, c=chain: F.chain_forward(c, u), grid), "k--",
                label="deriv (central difference)")
    row[1].set_title(f"d/dx {name}")
    row[1].legend(fontsize=8)
for ax in axes[-1]:
    ax.set_xlabel("input")
fig.tight_layout()
show(fig, "chain_rule")

# %% [markdown]
# ## 1.2.5 A longer chain
#
# **Math.**
#
# $$\frac{df_3}{dx}(x) = \frac{df_3}{du}\big(f_2(f_1(x))\big) \cdot
# \frac{df_2}{du}\big(f_1(x)\big) \cdot \frac{df_1}{dx}(x)$$
#
# Already here we see a *forward pass* (compute and keep every link's input) and a *backward
# pass* (multiply the links' derivatives at those inputs).
#
# **Code.** The seed's `[leaky_relu, square, sigmoid]` at $x = -4$ (it printed forward
# `0.6547534606063192`, backward `-0.07233643296206184`):

# %%
chain_2 = [F.leaky_relu, F.square, F.sigmoid]
fwd = float(F.chain_forward(chain_2, -4.0))
bwd = float(F.chain_deriv(chain_2, -4.0))
print("forward :", fwd)
print("backward:", bwd, "  jax.grad:", float(jax.grad(lambda u: F.chain_forward(chain_2, u))(-4.0)))
print("increase by 0.1:  chain(-3.9) =", float(F.chain_forward(chain_2, -3.9)),
      "  forward + 0.1 * backward =", fwd + 0.1 * bwd)

# %% [markdown]
# The 0.1 step is large, so the second-order term (about $5 \times 10^{-5}$) is visible.
# `chain_deriv` takes chains of any length; here are six links, checked against `jax.grad`:

# %%
chain_6 = [F.tanh, F.square, F.leaky_relu, F.sigmoid, F.square, F.tanh]
xs6 = jnp.asarray([-1.5, -0.2, 0.4, 2.0])
print("chain_deriv:", np.asarray(F.chain_deriv(chain_6, xs6)))
print("jax.grad   :", np.asarray(jax.vmap(jax.grad(lambda u: F.chain_forward(chain_6, u)))(xs6)))

# %% [markdown]
# ### Your turn: the chain rule for a new chain
#
# The chain `exercises.chain_3 = [F.tanh, F.square, F.sigmoid]` computes
# $f(x) = \sigma\big(\tanh(x)^2\big)$. Write $df/dx$ by the chain rule, without
# `F.chain_deriv` and without `jax.grad`: run the forward pass link by link, keeping each
# link's input ($u_1 = \tanh x$, $u_2 = u_1^2$), then multiply the links' derivatives
# (`F.tanh_deriv`, `F.square_deriv`, `F.sigmoid_deriv`), **each at its own input**.

# %% tags=["exercise"]
def chain_3_deriv(x):
    """d/dx sigmoid(tanh(x)^2) at every entry of x; returns an array of x's shape."""
    ...  # your code here


verdict = exercises.grade_chain(chain_3_deriv)

# %% [markdown]
# ## 1.2.6 Functions with multiple inputs
#
# **Math.** $a = \alpha(x, y) = x + y$, $s = \sigma(a)$. Since
# $\partial \alpha / \partial x = \partial \alpha / \partial y = 1$,
#
# $$\frac{\partial s}{\partial x} = \frac{\partial s}{\partial y} = \sigma'(x + y).$$
#
# **Code.** $x$ and $y$ must have the same shape (no silent broadcasting):

# %%
s = F.multiple_inputs_add(3.0, 4.0, F.sigmoid)
ds_dx, ds_dy = F.multiple_inputs_add_backward(3.0, 4.0, F.sigmoid)
print("forward :", float(s), "   (seed: 0.9990889488055994)")
print("backward:", float(ds_dx), float(ds_dy), "   (seed, numerical: 0.0009102213310852036)")
print("x + 0.001      :", float(F.multiple_inputs_add(3.001, 4.0, F.sigmoid)),
      " vs", float(s + ds_dx * 0.001))
print("y + 0.001      :", float(F.multiple_inputs_add(3.0, 4.001, F.sigmoid)),
      " vs", float(s + ds_dy * 0.001))
print("both + 0.001   :", float(F.multiple_inputs_add(3.001, 4.001, F.sigmoid)),
      " vs", float(s + ds_dx * 0.001 + ds_dy * 0.001))
try:
    F.multiple_inputs_add(jnp.ones(2), jnp.ones(3), F.sigmoid)
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# ## 1.2.7 Vector inputs
#
# **Math.** One observation $X = [x_1, x_2, x_3]$, weights $W = [w_1, w_2, w_3]^\top$,
# $N = \nu(X, W) = X W = \sum_i x_i w_i$ and $S = \sigma(N)$. Since
# $\partial \nu / \partial x_i = w_i$, i.e. $\partial \nu / \partial X = W^\top$,
#
# $$\frac{\partial S}{\partial X} = \sigma'(X W)\, W^\top .$$
#
# **Code.** The seed's example (`np.random.seed(190203)`; the seed printed
# `S = [[0.89779986]]`, `dS/dX = [[0.08516695 -0.05574581 -0.11206627]]`):

# %%
rng = np.random.RandomState(190203)  # the seed's legacy generator, without global state
X_vec, W_vec = rng.randn(1, 3), rng.randn(3, 1)
S_vec = F.matrix_forward_extra(X_vec, W_vec, F.sigmoid)
dSdX = F.matrix_function_backward_1(X_vec, W_vec, F.sigmoid)
print("X    :", X_vec)
print("S    :", np.asarray(S_vec))
print("dS/dX:", np.asarray(dSdX))
X_new = X_vec.copy()
X_new[:, 0] += 0.001
print("x1 + 0.001:", np.asarray(F.matrix_forward_extra(X_new, W_vec, F.sigmoid)),
      "vs", np.asarray(S_vec + dSdX[0, 0] * 0.001))

# %% [markdown]
# ## 1.2.8 Matrix inputs
#
# **Math.** Now $X$ is $n \times d$ (one row per observation) and $W$ is $d \times k$:
# $N = X W$, $S = \sigma(N)$. A gradient needs a single number at the end, so sum:
# $L = \Lambda(S) = \sum_{ij} S_{ij}$. Then $\partial L / \partial S$ is all ones, and
#
# $$\frac{\partial L}{\partial X} = \Big(\frac{\partial L}{\partial S} \odot \sigma'(N)\Big)
# W^\top, \qquad
# \frac{\partial L}{\partial W} = X^\top \Big(\frac{\partial L}{\partial S} \odot
# \sigma'(N)\Big).$$
#
# $W^\top$ multiplies from the right for $X$, $X^\top$ from the left for $W$ — the order in
# which each factors out of the sum.
#
# ### Your turn: $\partial L / \partial W$
#
# The seed derives $\partial L / \partial W$ but never codes it. Before you read jaxnn's
# `matrix_function_backward_sum_2` below, write it: `dLdW(X, W)` for
# $L = \sum_{ij} \sigma(X W)_{ij}$, with $X$ of shape $(n, d)$ and $W$ of shape $(d, k)$. It
# returns an array of $W$'s shape $(d, k)$. Use `F.sigmoid_deriv` for $\sigma'$. The grader
# uses the seed's shapes, $X$ (3, 3) and $W$ (3, 2) — square $X$, so a forgotten transpose
# still has the right shape and only the values give it away.

# %% tags=["exercise"]
def dLdW(X, W):
    """dL/dW of L = sum(sigmoid(X @ W)); X (n, d), W (d, k) -> (d, k)."""
    ...  # your code here


verdict = exercises.grade_dLdW(dLdW)

# %% [markdown]
# **Code.** The seed's example (`np.random.seed(190204)`; it printed `L = 2.3755` and `dLdX`;
# jaxnn also codes `dLdW`, which the seed only derived):

# %%
rng = np.random.RandomState(190204)
X, W = rng.randn(3, 3), rng.randn(3, 2)
L = F.matrix_function_forward_sum(X, W, F.sigmoid)
dLdX = F.matrix_function_backward_sum_1(X, W, F.sigmoid)
dLdW = F.matrix_function_backward_sum_2(X, W, F.sigmoid)
gX, gW = jax.grad(F.matrix_function_forward_sum, argnums=(0, 1))(X, W, F.sigmoid)
print("X:\n", X)
print("L:", round(float(L), 4))
print("dL/dX:\n", np.asarray(dLdX))
print("dL/dW:\n", np.asarray(dLdW))
print("max |dL/dX - jax.grad| =", float(jnp.max(jnp.abs(dLdX - gX))))
print("max |dL/dW - jax.grad| =", float(jnp.max(jnp.abs(dLdW - gW))))
X1 = X.copy()
X1[0, 0] += 0.001
print("(L(X + 0.001 e11) - L) / 0.001 =",
      round((float(F.matrix_function_forward_sum(X1, W, F.sigmoid)) - float(L)) / 0.001, 4),
      "  dL/dx11 =", round(float(dLdX[0, 0]), 4))

# %% [markdown]
# Shapes that cannot be multiplied are refused with a `ValueError` naming both — under
# `python -O` too, where the seed's `assert` would have vanished:

# %%
try:
    F.matrix_function_forward_sum(np.ones((3, 3)), np.ones((4, 2)), F.sigmoid)
except ValueError as e:
    print("ValueError:", e)

# %% [markdown]
# **Pictures.** How $L$ responds to one entry of $X$ and one of $W$, with the tangent whose
# slope is the hand-written gradient:

# %% tags=["figure"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
ts = jnp.linspace(-1.5, 1.5, 121)
for ax, (which, (i, j)) in zip(axes, (("X", (0, 0)), ("W", (2, 1)))):
    base = X if which == "X" else W
    grad = dLdX if which == "X" else dLdW
    values = []
    for t in np.asarray(ts):
        moved = base.copy()
        moved[i, j] += t
        args = (moved, W) if which == "X" else (X, moved)
        values.append(float(F.matrix_function_forward_sum(*args, F.sigmoid)))
    ax.plot(base[i, j] + ts, values, label=f"L as {which}[{i},{j}] varies")
    ax.plot(base[i, j] + ts, float(L) + float(grad[i, j]) * ts, "--",
            label=f"tangent, slope dL/d{which}[{i},{j}] = {float(grad[i, j]):.4f}")
    ax.plot([base[i, j]], [float(L)], "o")
    ax.set_xlabel(f"{which}[{i},{j}]")
    ax.legend(fontsize=8)
axes[0].set_ylabel("L")
fig.tight_layout()
show(fig, "matrix_tangents")

# %% [markdown]
# ## The proof: every hand-written backward against `jax.vjp`
#
# Every hand-written backward in jaxnn — those above and the layers, losses and models of
# later notebooks — is registered in `jaxnn.gradients` as a vector-Jacobian product.
# The checker pulls a random cotangent back through each one and through `jax.vjp` of its
# forward (float64; pass when the relative error is at most $10^{-10}$), and compares a random
# directional derivative with central finite differences (at most $10^{-6}$).
#
# `gradients.check_all()` checks the whole registry; it is what the tests and
# `jaxnn gradcheck` on the command line run. To keep this notebook quick, we check here only
# the entries this section registered (those defined in `jaxnn.foundations`), one
# `gradients.check_entry` each — `check_all()` is exactly this loop over every entry.

# %%
section_1_2 = [e for e in gradients.registry() if e.forward.__module__ == F.__name__]
results = [gradients.check_entry(e) for e in section_1_2]
tol_ad, tol_fd = gradients.TOLERANCES["float64"]
width = max(len(r.name) for r in results)
print(f"{'entry':<{width}}  {'rel err vs jax.vjp':>18}  {'rel err vs FD':>13}  passed")
for r in results:
    print(f"{r.name:<{width}}  {r.max_rel_err:>18.1e}  {r.fd_rel_err:>13.1e}  {r.passed}")
print(f"\n{sum(r.passed for r in results)}/{len(results)} pass "
      f"(vs jax.vjp <= {tol_ad:g}, vs finite differences <= {tol_fd:g}); "
      f"the full registry has {len(gradients.registry())} entries: gradients.check_all()")
if not all(r.passed for r in results):
    raise RuntimeError("a hand-written backward disagrees with jax.vjp")
