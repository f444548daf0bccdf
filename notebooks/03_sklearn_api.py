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
# # 03 · jaxnn the scikit-learn way: estimators, a hyper-parameter search, figures
#
# `jaxnn.MLPClassifier` and `jaxnn.MLPRegressor` take scikit-learn's parameter names and pass
# scikit-learn's own estimator checks, so they fit into `Pipeline`, `GridSearchCV` and
# `cross_val_score`. Inside, training is jaxnn's one compiled `lax.scan` with the hand-written
# backward (`gradients="manual"`). With `early_stopping=True` a fitted estimator keeps
# scikit-learn's per-epoch validation scores (`validation_scores_`, `best_validation_score_`).

# %%
# %matplotlib inline
import os
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import jaxnn
from jaxnn import plotting

# The searches below train briefly on purpose; scikit-learn would warn about every short fit.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

OUT = Path(os.environ["JAXNN_NOTEBOOK_OUT"]) if os.environ.get("JAXNN_NOTEBOOK_OUT") else None


def save(fig, name):
    """Save the figure when JAXNN_NOTEBOOK_OUT names a directory; return it, to display it."""
    if OUT is not None:
        OUT.mkdir(parents=True, exist_ok=True)
        fig.savefig(OUT / f"03_{name}.png", dpi=80, bbox_inches="tight")
    return fig


X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)

# %% [markdown]
# ## A pipeline with early stopping
#
# Standardise, then a 64-unit MLP. With `early_stopping=True` 10% of the training rows are held
# out and training stops when their accuracy stops improving (as scikit-learn); the best parameters
# are restored.

# %%
clf = make_pipeline(
    StandardScaler(),
    jaxnn.MLPClassifier(hidden_layer_sizes=(64,), early_stopping=True, max_iter=100, random_state=0),
)
clf.fit(X_train, y_train)
mlp = clf[-1]
print(f"test accuracy {clf.score(X_test, y_test):.4f} after {mlp.n_iter_} epochs")
print("last training losses:", np.round(mlp.loss_curve_[-3:], 4))
print("last validation accuracies:", np.round(mlp.validation_scores_[-3:], 4),
      f"best {mlp.best_validation_score_:.4f}")

# %% [markdown]
# ## A hyper-parameter search
#
# `GridSearchCV` clones and fits the estimator as it would any scikit-learn model. Each fit of the
# same shapes reuses the compiled training program.

# %%
search = GridSearchCV(
    make_pipeline(StandardScaler(), jaxnn.MLPClassifier(max_iter=30, random_state=0)),
    {"mlpclassifier__hidden_layer_sizes": [(16,), (64,)],
     "mlpclassifier__learning_rate_init": [1e-3, 1e-2]},
    cv=3,
)
search.fit(X_train, y_train)
print("best:", search.best_params_, f"cv accuracy {search.best_score_:.4f}")
print(f"test accuracy of the refitted best model: {search.score(X_test, y_test):.4f}")

# %% [markdown]
# ## Figures
#
# The training loss per epoch and the confusion matrix of the pipeline above.
# `jaxnn.plotting` returns matplotlib figures and never calls `show()`: a figure left as a
# cell's last expression is displayed inline. That needs the `%matplotlib inline` of the first
# cell: these figures are not made by pyplot, so nothing else loads Jupyter's inline
# display of figures (without it a figure shows as `<Figure size ...>`). Run as a script,
# jupytext's commented magic is a plain comment.

# %% tags=["figure"]
fig_loss = plotting.loss_curves(mlp.loss_curve_, title="MLPClassifier on digits")
save(fig_loss, "loss_curves")

# %% tags=["figure"]
fig_cm = plotting.confusion_matrix(y_test, clf.predict(X_test), classes=list(range(10)))
save(fig_cm, "confusion_matrix")

# %% [markdown]
# ## Save and load
#
# `save` writes the weights, optimizer state and fitted attributes as a validated `.npz` (no
# pickle); `load` gives back an estimator that predicts identically and whose `partial_fit`
# continues exactly where the saved one stopped.

# %%
import tempfile  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    mlp.save(Path(tmp) / "digits_mlp.npz")
    again = jaxnn.MLPClassifier.load(Path(tmp) / "digits_mlp.npz")
Xs = clf[0].transform(X_test)
print("identical predictions after load:", bool(np.array_equal(mlp.predict_proba(Xs),
                                                                again.predict_proba(Xs))))
