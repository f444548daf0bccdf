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
# # Solutions to the "your turn" exercises
#
# Try each exercise in its notebook first: `01_foundations.py` (softplus's derivative, the
# chain rule for a new chain, $\partial L / \partial W$) and `02_linear_regression_and_nn.py`
# (the two-layer network's backward). Each solution below is graded exactly as in the
# exercise, by `jaxnn.exercises` with `jaxnn.check_vjp`; after it, a typical mistake and what
# the grader says about it.

# %%
import jax.numpy as jnp

from jaxnn import exercises
from jaxnn import foundations as F

# %% [markdown]
# ## Softplus's derivative
#
# $s(x) = \log(1 + e^x)$, so $s'(x) = \dfrac{e^x}{1 + e^x} = \dfrac{1}{1 + e^{-x}} = \sigma(x)$:
# the derivative of the softplus is the sigmoid.

# %% tags=["solution"]
def softplus_deriv(x):
    """d/dx log(1 + e^x) at every entry of x; returns an array of x's shape."""
    return F.sigmoid(x)


# %%
verdict = exercises.grade_softplus(softplus_deriv)

# %% [markdown]
# A typical mistake: mixing up the derivative with the function ($x\,\sigma(x)$ is the
# "swish" activation, not softplus's derivative).

# %% tags=["mistake"]
def softplus_deriv_mistake(x):
    return F.sigmoid(x) * x


# %%
verdict = exercises.grade_softplus(softplus_deriv_mistake)

# %% [markdown]
# ## The chain rule for $\sigma(\tanh(x)^2)$
#
# Forward, keeping each link's input: $u_1 = \tanh x$, $u_2 = u_1^2$. Backward, each link's
# derivative at its own input:
# $\dfrac{df}{dx} = \sigma'(u_2)\cdot 2u_1 \cdot \tanh'(x)$.

# %% tags=["solution"]
def chain_3_deriv(x):
    """d/dx sigmoid(tanh(x)^2) at every entry of x; returns an array of x's shape."""
    u1 = F.tanh(x)  # input of square
    u2 = F.square(u1)  # input of sigmoid
    return F.sigmoid_deriv(u2) * F.square_deriv(u1) * F.tanh_deriv(x)


# %%
verdict = exercises.grade_chain(chain_3_deriv)

# %% [markdown]
# A typical mistake: every link's derivative evaluated at $x$ instead of at its own input.

# %% tags=["mistake"]
def chain_3_deriv_mistake(x):
    return F.sigmoid_deriv(x) * F.square_deriv(x) * F.tanh_deriv(x)


# %%
verdict = exercises.grade_chain(chain_3_deriv_mistake)

# %% [markdown]
# ## $\partial L / \partial W$ of $L = \sum \sigma(XW)$
#
# $N = XW$; $\partial L / \partial S$ is all ones, so
# $\partial L / \partial N = \sigma'(N)$, and $W$ factors out of the sum with $X^\top$ on the
# left: $\partial L / \partial W = X^\top \sigma'(N)$, shape $(d, n)(n, k) = (d, k)$.

# %% tags=["solution"]
def dLdW(X, W):
    """dL/dW of L = sum(sigmoid(X @ W)); X (n, d), W (d, k) -> (d, k)."""
    N = X @ W  # (n, k)
    dLdS = jnp.ones_like(N)  # L is a plain sum
    dLdN = dLdS * F.sigmoid_deriv(N)  # (n, k)
    return X.T @ dLdN  # (d, n) @ (n, k) -> (d, k)


# %%
verdict = exercises.grade_dLdW(dLdW)

# %% [markdown]
# Two typical mistakes: the transpose forgotten (with a square $X$ the shape is still right),
# and the sigmoid's derivative forgotten.

# %% tags=["mistake"]
def dLdW_no_transpose(X, W):
    return X @ F.sigmoid_deriv(X @ W)


def dLdW_no_sigmoid_deriv(X, W):
    return X.T @ jnp.ones_like(X @ W)


# %%
verdict = exercises.grade_dLdW(dLdW_no_transpose)

# %%
verdict = exercises.grade_dLdW(dLdW_no_sigmoid_deriv)

# %% [markdown]
# ## The two-layer network's backward
#
# Forward: $N_1 = XW_1 + B_1$, $O_1 = \sigma(N_1)$, $P = O_1 W_2 + B_2$. Backward from
# $\partial L / \partial P = -(y - P)$: $W_2$ and $B_2$ as in linear regression (with $O_1$ in
# the place of $X$); back through $W_2$ with $W_2^\top$ on the right; through the sigmoid,
# times $\sigma'(N_1)$; then $W_1$ and $B_1$ as in linear regression. Bias gradients sum over
# the rows and keep their $(1, \cdot)$ shape.

# %% tags=["solution"]
def network_backward(X, y, weights):
    """dL/dW1, dL/dB1, dL/dW2, dL/dB2 of L = 1/2 sum((y - P)^2), as a dict of weights' shapes."""
    N1 = X @ weights["W1"] + weights["B1"]  # (n, h)
    O1 = F.sigmoid(N1)  # (n, h)
    P = O1 @ weights["W2"] + weights["B2"]  # (n, 1)
    dLdP = -(y - P)  # (n, 1)
    dLdO1 = dLdP @ weights["W2"].T  # (n, h)
    dLdN1 = dLdO1 * F.sigmoid_deriv(N1)  # (n, h)
    return {
        "W1": X.T @ dLdN1,  # (d, h)
        "B1": dLdN1.sum(axis=0, keepdims=True),  # (1, h)
        "W2": O1.T @ dLdP,  # (h, 1)
        "B2": dLdP.sum(axis=0, keepdims=True),  # (1, 1)
    }


# %%
verdict = exercises.grade_network(network_backward)

# %% [markdown]
# Two typical mistakes: the seed's double sum of the first bias gradient (it collapses
# `B1`'s gradient to one number), and the sigmoid's derivative forgotten.

# %% tags=["mistake"]
def network_backward_seed_bias(X, y, weights):
    grads = network_backward(X, y, weights)
    return {**grads, "B1": grads["B1"].sum(axis=0).sum(axis=0)}


def network_backward_no_sigmoid_deriv(X, y, weights):
    N1 = X @ weights["W1"] + weights["B1"]
    O1 = F.sigmoid(N1)
    dLdP = -(y - (O1 @ weights["W2"] + weights["B2"]))
    dLdN1 = dLdP @ weights["W2"].T  # sigma'(N1) missing
    return {"W1": X.T @ dLdN1, "B1": dLdN1.sum(axis=0, keepdims=True),
            "W2": O1.T @ dLdP, "B2": dLdP.sum(axis=0, keepdims=True)}


# %%
verdict = exercises.grade_network(network_backward_seed_bias)

# %%
verdict = exercises.grade_network(network_backward_no_sigmoid_deriv)
