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
# # 02 · Linear regression as a neural network, and the two-layer network
#
# This notebook retells sections 1.3–1.5 of the course notebook (*9.1 Deep Learning — Neural
# Network*, after Weidman, *Deep Learning from Scratch*, ch. 2) with jaxnn:
#
# * **1.3** linear regression written as a neural network — a forward pass, hand-written
#   gradients, a training loop, and a comparison with scikit-learn;
# * **1.4** the "improved model": 13 sigmoid hidden units between two linear layers;
# * **1.5** what we learned.
#
# Where jaxnn differs from the seed:
#
# * **Gradients of the loss they claim.** The seed's linear regression reports the *mean*
#   squared error but updates with `dLdP = -2 * (y - P)` — the gradient of the *sum*; its
#   network uses `-(y - P)`, the gradient of *half* the sum. jaxnn names the reduction
#   (`"mean"`, `"sum"`, `"half_sum"`), so a hand-written gradient always equals `jax.grad` of the
#   loss it belongs to, and the seed's exact update is one setting away.
# * **No shrinking batch.** The seed's loop sets `batch_size = n - start` for the short last
#   batch of an epoch and never restores it: after the first epoch every step uses that small
#   batch. jaxnn pads the last batch to full size with weight-0 rows, so every step has the
#   same shape (nothing recompiles) and the last batch is the mean over its real rows.
# * **One compiled scan.** Training is one `jax.jit`-compiled `lax.scan` over minibatches
#   inside a `lax.scan` over epochs, shuffling on the device — not a Python loop per step.
# * **Proven twice.** Every model is trained with the hand-written backward *and* with
#   `jax.grad`; in float64 the two runs end with the same parameters.
# * **Bias gradients keep their shape.** The seed's network sums its first bias gradient twice
#   (`dLdB1 = (dLdN1 * dN1dB1).sum(axis=0)`, then `loss_gradients['B1'] = dLdB1.sum(axis=0)`),
#   so `B1`'s 13 entries get one shared number; jaxnn's gradient of `B1` has `B1`'s shape.
#
# **Your turn.** In section 1.4 you write the two-layer network's backward yourself;
# `jaxnn.exercises.grade_network` grades it with `jaxnn.check_vjp` (solution: `solutions.py`).

# %%
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score

from jaxnn import engine, exercises, layers, losses, models, training
from jaxnn import foundations as F
from jaxnn.datasets import load_dataset, split_dataset
from jaxnn.experiment import run as run_experiment
from jaxnn.training import TrainConfig

# Float64 for the whole script: the seed computed in NumPy float64, and hand-written vs
# jax.grad training agree to rounding only when rounding is small.
jax.config.update("jax_enable_x64", True)

OUT = os.environ.get("JAXNN_NOTEBOOK_OUT")


def show(fig, name):
    """Save the figure when JAXNN_NOTEBOOK_OUT names a directory; display it in Jupyter."""
    if OUT:
        out = Path(OUT)
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / f"02_{name}.png", dpi=80, bbox_inches="tight")
    if "inline" in matplotlib.get_backend():
        plt.show()
    plt.close(fig)


# %% [markdown]
# ## The data
#
# The seed uses the Boston housing data: 506 towns, 13 features, target `medv` (median house
# value, in \$1000s). scikit-learn removed its loader in 1.2 (one feature was engineered from
# the share of Black residents on the assumption that segregation raises prices), so jaxnn
# reads it from a CSV beside the project, `../shared/datasets/boston.csv`, and falls back to
# the bundled, non-linear `friedman1` data when the file is missing.
#
# As in the seed, the features are standardised on **all** rows *before* the split (this leaks
# test statistics into training; `split_dataset` fits on the training rows unless asked), and
# 30% of the rows are held out. The seed's split cell is not in its text, but its printed
# scikit-learn MSE, 21.517444231177276, is reproduced to 12 digits by `random_state=42` — and by
# no other seed in 0…99,999 — so that is the split we use. (`jaxnn demo` defaults to 80718, the
# split of the *Deep Learning from Scratch* book; `jaxnn demo --split-seed 42` gives this one.)

# %%
try:
    NOTEBOOK = Path(__file__).resolve()
except NameError:  # inside Jupyter there is no __file__; the notebook's folder is the cwd
    NOTEBOOK = Path.cwd().resolve() / "02_linear_regression_and_nn.py"
BOSTON_CSV = NOTEBOOK.parents[2] / "shared" / "datasets" / "boston.csv"

if BOSTON_CSV.is_file():
    ds = load_dataset(BOSTON_CSV, "medv")
    split = split_dataset(ds, test_size=0.3, random_state=42, scale_before_split=True)
else:
    print(f"{BOSTON_CSV} not found: using the bundled friedman1 data instead")
    ds = load_dataset("friedman1")
    split = split_dataset(ds, test_size=0.3, random_state=42)
SEED_DATA = ds.name == "boston"

X_train, X_test = jnp.asarray(split.X_train), jnp.asarray(split.X_test)
y_train = jnp.asarray(split.y_train)[:, None]  # (n, 1): one output column, as in the seed
y_test = np.asarray(split.y_test)
print(f"{ds.name}: X_train {X_train.shape}, X_test {X_test.shape}, target {ds.target_name} "
      f"(mean {float(np.mean(ds.y)):.2f}, std {float(np.std(ds.y)):.2f})")

# %% [markdown]
# ## 1.3 Linear regression as a neural network
#
# **Forward.** The seed's forward pass is two operations and a loss:
#
# $$N = X W, \qquad P = N + B, \qquad \Lambda = \operatorname{mean}\big((Y - P)^2\big)$$
#
# with $X$ of shape (batch, 13), $W$ (13, 1) and $B$ a single number added to every row. In
# jaxnn these are one dense layer, `layers.dense(X, W, b)`, and a loss. Parameters are a plain
# list of layers, `[{"W": (13, 1), "b": (1,)}]`, initialised from a standard normal as the seed
# does.

# %%
params = models.init_params(jax.random.key(0), models.layer_sizes(ds.n_features, (), 1),
                            init=models.normal, dtype=jnp.float64)
Xb, yb = X_train[:23], y_train[:23]  # one minibatch of the seed's size
W, b = params[0]["W"], params[0]["b"]
N = Xb @ W
P = N + b
print("P from the seed's two steps equals layers.dense:",
      bool(jnp.allclose(P, layers.dense(Xb, W, b))))
print("mean squared error on the batch:", float(jnp.mean((yb - P) ** 2)))

# %% [markdown]
# **Hand-written gradients.** The chain rule through the three steps gives
#
# $$\frac{\partial\Lambda}{\partial W} = X^\top \frac{\partial\Lambda}{\partial P}, \qquad
# \frac{\partial\Lambda}{\partial B} = \sum_{\text{rows}} \frac{\partial\Lambda}{\partial P}$$
#
# — the bias gradient sums over the rows because $B$ is added to every row. The seed writes
# `dLdP = -2 * (y - P)`. For $\Lambda = \sum_i (y_i - P_i)^2$ that is exactly right; for the
# **mean** it reports, the gradient carries a factor $1/n$:
#
# $$\frac{\partial}{\partial P_i}\,\frac1n\sum_j (y_j - P_j)^2 = -\frac{2}{n}(y_i - P_i).$$
#
# So the seed's update is gradient descent on the *sum* of squares — with the batch size folded
# into its learning rate. Below: the seed's formula, jaxnn's hand-written backward
# (`losses.squared_error_vjp` then `layers.dense_vjp`) and `jax.grad`, for the sum and the mean.
# The loss is per example (one squared error a row); the sum and the mean are two weightings of
# the rows, so the loss's backward takes them as its cotangent: 1 a row for the sum, $1/n$ for
# the mean.

# %%
dLdP_seed = -2 * (yb - P)
seed_dW, seed_dB = Xb.T @ dLdP_seed, jnp.sum(dLdP_seed, axis=0)

n_batch = Xb.shape[0]
for reduction, reduce in (("sum", jnp.sum), ("mean", jnp.mean)):
    row_weights = jnp.ones(n_batch, Xb.dtype) if reduction == "sum" else jnp.full(n_batch, 1 / n_batch)
    dP, _ = losses.squared_error_vjp(P, yb, row_weights)
    _, hand_dW, hand_db = layers.dense_vjp(Xb, W, b, dP)
    auto = jax.grad(lambda p, r=reduce: r(losses.squared_error(models.predict(p, Xb), yb)))(params)
    print(f"reduction={reduction!r:7}: hand-written vs jax.grad, max |dW diff| = "
          f"{float(jnp.max(jnp.abs(hand_dW - auto[0]['W']))):.1e};  seed's dW / this dW = "
          f"{float(seed_dW[0, 0] / hand_dW[0, 0]):g}")

# %% [markdown]
# The seed's gradient equals the gradient of the sum (ratio 1) and is $n = 23$ times the
# gradient of the mean it reports. jaxnn's hand-written backward matches `jax.grad` for both
# — each is the gradient of the loss it is named after. `reduction="sum"` with the seed's
# learning rate 0.001 therefore reproduces the seed's update exactly.
#
# **The shrinking batch.** The seed's training loop (cell [33]) walks through a permutation in
# steps of `batch_size`; when fewer rows remain it sets `batch_size = n - start` — and never
# sets it back. Replaying its index logic for our 354 training rows:

# %%
def seed_batch_sizes(n, batch_size, n_iter):
    """The batch sizes the seed's loop uses, step by step (its index logic, verbatim)."""
    sizes, start = [], 0
    for _ in range(n_iter):
        if start >= n:
            start = 0
        if start + batch_size > n:
            batch_size = n - start
        sizes.append(batch_size)
        start += batch_size
    return sizes


n_train = X_train.shape[0]
sizes = seed_batch_sizes(n_train, 23, 1000)
print("seed, steps 1-20:   ", sizes[:20])
print("seed, steps 981-1000:", sizes[-20:])
print("seed: steps per batch size:", {size: sizes.count(size) for size in sorted(set(sizes), reverse=True)})

idx = engine.batch_indices(jax.random.key(0), jnp.asarray(0), n_train, 23, True)
w = engine.batch_weights(n_train, 23)
print(f"jaxnn: every epoch is an index array of shape {tuple(idx.shape)}; real rows per batch:",
      np.asarray(jnp.sum(w, axis=1)).tolist())

# %% [markdown]
# After its first epoch the seed's batch shrinks to 9 rows (354 = 15 · 23 + 9), after the next
# pass to 3 rows (354 = 39 · 9 + 3), and 3 divides 354, so it stays there: only 15 of its 1,000
# steps use the intended batch of 23, and most use 3 rows. jaxnn keeps the shape (16, 23) every
# epoch: the last batch holds 9 real rows and 14 padding rows of
# weight 0, and its loss is the weighted mean over the real rows — so it counts as much as any
# other batch would, nothing recompiles, and no later batch shrinks.
#
# **Training by one scan.** `jaxnn.training.fit` compiles one function that runs whole epochs:
# `lax.scan` over the 16 minibatches of an epoch inside a `lax.scan` over epochs, with a fresh
# permutation per epoch (`jax.random.permutation(fold_in(key, epoch), n)`, drawn on the host
# while the device trains). The seed's
# recipe — SGD, learning rate 0.001, batches of 23, the *sum* reduction — trains the linear
# model. We give it 5,000 steps with a cosine-decayed learning rate (the seed: 1,000 constant
# steps) so SGD's noise dies out and the weights settle on the least-squares solution; we train
# it twice, with the hand-written gradients and with `jax.grad`.

# %%
def linear_config(gradients):
    return TrainConfig(hidden=(), loss="mse", reduction="sum", optimizer="sgd", lr=1e-3,
                       schedule="cosine", batch_size=23, steps=5000, init="normal",
                       gradients=gradients, dtype="float64", seed=0)


lin = {g: run_experiment(linear_config(g), split) for g in ("manual", "autodiff")}
for g, rep in lin.items():
    s = rep.fit.seconds
    print(f"linear, gradients={g!r:10}: {rep.fit.steps} steps, compile {s['compile']:.2f} s, "
          f"train {s['train']:.3f} s, test MSE {rep.test['mse']:.4f}, R^2 {rep.test['r2']:.4f}")
diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
    jax.tree_util.tree_leaves(lin["manual"].fit.params),
    jax.tree_util.tree_leaves(lin["autodiff"].fit.params), strict=True))
print(f"hand-written vs jax.grad training: max |parameter difference| = {diff:.1e}")

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(6.4, 3.6))
h = lin["manual"].fit.history
ax.plot(np.arange(1, h.train_loss.size + 1), h.train_loss / 23, lw=0.6, alpha=0.6,
        label="train: minibatch sum of squares / 23")
spe = training.steps_per_epoch(n_train, 23)  # 16: the x position of each epoch's end
ax.plot((np.arange(h.val_loss.size) + 1) * spe, h.val_loss, lw=1.5, label="test MSE, per epoch")
ax.set_yscale("log")
ax.set_xlabel("optimizer step")
ax.set_ylabel("squared error")
ax.set_title("Linear regression trained by one compiled scan")
ax.legend()
show(fig, "linear_loss")

# %% [markdown]
# **Comparison with scikit-learn.** `LinearRegression` solves the least-squares problem in closed
# form. If the network above is linear regression, gradient descent must arrive at the same
# coefficients — and it does, to about $10^{-3}$:

# %%
sk = LinearRegression().fit(split.X_train, split.y_train)
sk_pred = sk.predict(split.X_test)
W_jaxnn = np.asarray(lin["manual"].fit.params[0]["W"])[:, 0]
print(f"{'feature':>8} {'jaxnn':>9} {'sklearn':>9}")
for name, a, c in zip(ds.feature_names, W_jaxnn, sk.coef_, strict=True):
    print(f"{name:>8} {a:9.4f} {c:9.4f}")
print(f"{'(bias)':>8} {float(lin['manual'].fit.params[0]['b'][0]):9.4f} {sk.intercept_:9.4f}")
print(f"max |coefficient difference| = {np.max(np.abs(W_jaxnn - sk.coef_)):.1e}")
print(f"scikit-learn test MSE {mean_squared_error(y_test, sk_pred):.12f}, "
      f"R^2 {r2_score(y_test, sk_pred):.4f}")
if SEED_DATA:
    print("the seed printed        MSE 21.517444231177276, R^2 0.7112  (same split, same numbers)")
    print(f"jaxnn linear: test MSE {lin['manual'].test['mse']:.4f} "
          f"(the seed's from-scratch model, 1,000 constant steps: 21.9622)")

# %% [markdown]
# Predicted against actual values (the seed's cell [38]) and, because the features are
# standardised, the coefficients as feature importances (its cell [39]):

# %% tags=["figure"]
pred_lin = np.asarray(models.predict(lin["manual"].fit.params, X_test))[:, 0]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
ax = axes[0]
ax.scatter(pred_lin, y_test, s=12, alpha=0.7, label="jaxnn (hand-written gradients)")
ax.scatter(sk_pred, y_test, s=12, alpha=0.5, marker="x", label="scikit-learn")
lo, hi = float(min(y_test.min(), pred_lin.min())), float(max(y_test.max(), pred_lin.max()))
ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
ax.set_xlabel("Predicted value")
ax.set_ylabel("Actual value")
ax.set_title("Linear regression: predicted vs actual (test set)")
ax.legend()
ax = axes[1]
order = np.argsort(np.abs(W_jaxnn))
ypos = np.arange(len(order))
ax.barh(ypos - 0.2, W_jaxnn[order], height=0.4, label="jaxnn")
ax.barh(ypos + 0.2, sk.coef_[order], height=0.4, label="scikit-learn")
ax.set_yticks(ypos, [ds.feature_names[j] for j in order])
ax.axvline(0, color="k", lw=0.8)
ax.set_xlabel("coefficient (standardised feature)")
ax.set_title("Feature weights")
ax.legend()
fig.tight_layout()
show(fig, "linear_pred_and_weights")

# %% [markdown]
# ## 1.4 The improved model: a two-layer network
#
# The seed's network puts 13 weighted sums of the features through a sigmoid and feeds those
# 13 numbers into a linear regression:
#
# $$M_1 = X W_1,\ N_1 = M_1 + B_1,\ O_1 = \sigma(N_1),\ M_2 = O_1 W_2,\ P = M_2 + B_2.$$
#
# The backward pass walks back through the same steps; the only new factor is the sigmoid's
# derivative, $\sigma'(x) = \sigma(x)(1 - \sigma(x))$. Here the seed writes `dLdP = -(y - P)`:
# the gradient of **half** the sum of squares, `reduction="half_sum"`.
#
# ### Your turn: the two-layer network's backward
#
# Write `network_backward(X, y, weights)`: the gradients of
# $L = \tfrac12 \sum (y - P)^2$ (so $\partial L / \partial P = -(y - P)$, the seed's `dLdP`)
# with respect to each weight of the seed's network, `exercises.network_loss`. `weights` is a
# dict: `W1` $(d, h)$, `B1` $(1, h)$, `W2` $(h, 1)$, `B2` $(1, 1)$; `X` is $(n, d)$, `y`
# $(n, 1)$. Return a dict with the same keys, each gradient of its weight's shape. Walk back
# from $P$: $\partial L/\partial W_2 = O_1^\top\, \partial L/\partial P$; the bias gradients
# sum $\partial L/\partial P$ (or $\partial L/\partial N_1$) over the rows, keeping the
# $(1, \cdot)$ shape (`.sum(axis=0, keepdims=True)`); through the sigmoid multiply by
# $\sigma'(N_1)$ (`F.sigmoid_deriv`).
# The grader uses $n = 6$, $d = 4$, $h = 3$.

# %% tags=["exercise"]
def network_backward(X, y, weights):
    """dL/dW1, dL/dB1, dL/dW2, dL/dB2 of L = 1/2 sum((y - P)^2), as a dict of weights' shapes."""
    ...  # your code here


verdict = exercises.grade_network(network_backward)

# %% [markdown]
# The same walk for any depth, written out: the forward keeps each layer's input and
# pre-activation, the backward goes through the layers in reverse with `layers.dense_vjp` and
# the activation's derivative. jaxnn's trained network does not need this function: it is
# built from `with_backward` pieces (`layers.dense_layer`, the sigmoid with its derivative, the
# loss with its backward), so `jax.grad` of its training loss runs those hand-written pieces in
# exactly this order. On one batch, the walk, the trained network's gradient and `jax.grad` of
# the plain forwards agree:

# %%
def forward_walk(params, X, act=F.sigmoid):
    """The network's output and, per layer, (its input, its pre-activation)."""
    residuals, h = [], X
    for i, p in enumerate(params):
        z = layers.dense(h, p["W"], p["b"])
        residuals.append((h, z))
        h = act(z) if i < len(params) - 1 else z
    return h, residuals


def backward_walk(params, residuals, dLdP, act_deriv=F.sigmoid_deriv):
    """dL/dparams from dL/d(output): dense_vjp for each layer, the activation's derivative between."""
    grads, dz = [None] * len(params), dLdP
    for i in reversed(range(len(params))):
        h, _ = residuals[i]
        dh, dW, db = layers.dense_vjp(h, params[i]["W"], params[i]["b"], dz)
        grads[i] = {"W": dW, "b": db}
        if i > 0:
            dz = dh * act_deriv(residuals[i - 1][1])
    return grads


net = models.init_params(jax.random.key(1), models.layer_sizes(ds.n_features, (13,), 1),
                         init=models.normal, dtype=jnp.float64)
out, res = forward_walk(net, Xb)
g_walk = backward_walk(net, res, -(yb - out))  # the seed's dLdP, of L = 1/2 sum (y - P)^2


def half_sum_loss(gradients):
    """The loss jaxnn.fit sums over a minibatch for reduction="half_sum" (jaxnn.training.resolve)."""
    c = TrainConfig(hidden=(13,), activation="sigmoid", reduction="half_sum", gradients=gradients, steps=1)
    loss_fn = training.resolve(c, n_train).loss_fn
    return lambda p: jnp.sum(loss_fn(p, Xb, yb))


g_hand = jax.grad(half_sum_loss("manual"))(net)  # runs dense_vjp and sigmoid_deriv
g_auto = jax.grad(half_sum_loss("autodiff"))(net)  # jax.grad of the plain forwards
for layer, (gw, gh, ga) in enumerate(zip(g_walk, g_hand, g_auto, strict=True), start=1):
    print(f"layer {layer}: max |dW walk - dW jax.grad| = {float(jnp.max(jnp.abs(gw['W'] - ga['W']))):.1e}, "
          f"max |dW trained network - dW jax.grad| = {float(jnp.max(jnp.abs(gh['W'] - ga['W']))):.1e}")

# The seed's own formulas (cell [44]) for the same batch:
dLdP = -(yb - out)
O1 = F.sigmoid(res[0][1])
dLdW2 = O1.T @ dLdP
dLdN1 = (dLdP @ net[1]["W"].T) * O1 * (1 - O1)
dLdW1 = Xb.T @ dLdN1
print("seed's dL/dW2 and dL/dW1 equal jaxnn's:",
      bool(jnp.allclose(dLdW2, g_hand[1]["W"]) and jnp.allclose(dLdW1, g_hand[0]["W"])))

# %% [markdown]
# Trained with the seed's recipe — SGD, learning rate 0.001, batches of 23, 10,000 steps,
# standard-normal initialisation — once with the hand-written backward and once with `jax.grad`:

# %%
def mlp_config(gradients):
    return TrainConfig(hidden=(13,), activation="sigmoid", loss="mse", reduction="half_sum",
                       optimizer="sgd", lr=1e-3, batch_size=23, steps=10000, init="normal",
                       gradients=gradients, dtype="float64", seed=0)


mlp = {g: run_experiment(mlp_config(g), split) for g in ("manual", "autodiff")}
for g, rep in mlp.items():
    s = rep.fit.seconds
    print(f"network, gradients={g!r:10}: {rep.fit.steps} steps, compile {s['compile']:.2f} s, "
          f"train {s['train']:.3f} s, test MSE {rep.test['mse']:.4f}, R^2 {rep.test['r2']:.4f}")
diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
    jax.tree_util.tree_leaves(mlp["manual"].fit.params),
    jax.tree_util.tree_leaves(mlp["autodiff"].fit.params), strict=True))
print(f"hand-written vs jax.grad training: max |parameter difference| = {diff:.1e}")
if SEED_DATA:
    print("the seed printed:  MSE 10.839123211769357, R^2 0.8545 (its own random initialisation)")

# %% tags=["figure"]
pred_mlp = np.asarray(models.predict(mlp["manual"].fit.params, X_test, F.sigmoid))[:, 0]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharex=True, sharey=True)
for ax, pred, title in ((axes[0], pred_lin, "linear regression"),
                        (axes[1], pred_mlp, "13 sigmoid units")):
    ax.scatter(pred, y_test, s=12, alpha=0.7)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("Predicted value")
    ax.set_title(f"{title}: test R^2 = {r2_score(y_test, pred):.3f}")
axes[0].set_ylabel("Actual value")
fig.tight_layout()
show(fig, "pred_vs_actual_linear_vs_net")

# %% tags=["figure"]
# What the network's first layer reads: the norm of each feature's 13 outgoing weights.
W1 = np.asarray(mlp["manual"].fit.params[0]["W"])
norms = np.linalg.norm(W1, axis=1)
order = np.argsort(norms)
fig, ax = plt.subplots(figsize=(6.4, 4.2))
ax.barh(np.arange(len(order)), norms[order])
ax.set_yticks(np.arange(len(order)), [ds.feature_names[j] for j in order])
ax.set_xlabel("‖first-layer weights‖₂")
ax.set_title("Network: weight on each feature")
fig.tight_layout()
show(fig, "net_feature_weights")

# %% [markdown]
# ## 1.5 Conclusion

# %%
rows = [("linear regression, hand-written", lin["manual"].test),
        ("linear regression, jax.grad", lin["autodiff"].test),
        ("scikit-learn LinearRegression",
         {"mse": mean_squared_error(y_test, sk_pred), "r2": r2_score(y_test, sk_pred)}),
        ("13 sigmoid units, hand-written", mlp["manual"].test),
        ("13 sigmoid units, jax.grad", mlp["autodiff"].test)]
seed_mse = {0: 21.9622, 2: 21.5174, 3: 10.8391}
print(f"{'model':<33} {'test MSE':>9} {'test R^2':>8}" + (f" {'seed MSE':>9}" if SEED_DATA else ""))
for i, (name, m) in enumerate(rows):
    seed_col = (f" {seed_mse[i]:9.4f}" if i in seed_mse else f" {'':>9}") if SEED_DATA else ""
    print(f"{name:<33} {m['mse']:9.4f} {m['r2']:8.4f}{seed_col}")
gain = 1 - mlp["manual"].test["mse"] / lin["manual"].test["mse"]
print(f"\nthe network's test MSE is {100 * gain:.0f}% lower than linear regression's")
if not mlp["manual"].test["mse"] < lin["manual"].test["mse"]:
    raise RuntimeError("the network should beat linear regression here")
seconds = [r.fit.seconds for r in (*lin.values(), *mlp.values())]
print(f"the four trainings took {sum(s['train'] for s in seconds):.2f} s, "
      f"plus {sum(s['compile'] for s in seconds):.1f} s of compilation")

# %% [markdown]
# * **A neural network in its most basic form is linear regression.** Trained by gradient
#   descent through hand-written gradients, it lands on scikit-learn's closed-form coefficients;
#   on the seed's split it reproduces scikit-learn's test MSE, which the seed printed as 21.5174.
# * **The seed's gradients are right — for the sum.** Its `-2 (y - P)` is the gradient of the
#   sum of squares and its network's `-(y - P)` of half the sum, while it reports the mean.
#   jaxnn makes the reduction explicit, so its hand-written gradients equal `jax.grad` of the
#   loss they belong to, and training with either gives the same parameters (to ~1e-13 here).
# * **Non-linearity helps.** Thirteen sigmoid units lower the test MSE by about half and raise
#   R² from ~0.71 to ~0.87 on the seed's split — the seed's lesson, in its own numbers.
# * **Training is one compiled program**, with fixed-shape minibatches: the seed's shrinking
#   batch is gone, and the 10,000 steps of the network take a fraction of a second once compiled.
#
# `jaxnn demo` runs this whole study from the command line (on the bundled `friedman1` data by
# default, or `--data path/to/boston.csv`).
