"""First impressions: ``jaxnn train`` with its defaults gives a model as good as scikit-learn's.

For each regression dataset the suite can load offline (the bundled diabetes data and the seed's
Boston CSV), on the same split the CLI uses: ``--model linear`` with its defaults is within 0.02
test R² of ``LinearRegression`` (closed form), and the default MLP is at least as good as
``MLPRegressor()`` with scikit-learn's defaults. Regression targets train standardised
(``--target-scaling auto``); without that, the linear model's defaults ended at R² -2.74 on
diabetes (its targets have mean ~150).
"""

from __future__ import annotations

import json
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPRegressor

from jaxnn.cli import main
from jaxnn.datasets import load_csv, load_dataset, split_dataset


def _train(capsys, *argv: str) -> dict:
    assert main(["train", *argv, "--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("data", ["diabetes", "boston.csv"])
def test_default_linear_and_mlp_match_scikit_learn(capsys, boston_csv, data):
    if data == "diabetes":
        argv, ds = ["--data", "diabetes"], load_dataset("diabetes")
    else:
        argv, ds = ["--data", str(boston_csv), "--target", "medv"], load_csv(boston_csv, target="medv")
    split = split_dataset(ds)  # the CLI's defaults: test_size 0.3, split seed 80718, scaler on train
    linear = _train(capsys, *argv, "--model", "linear")
    mlp = _train(capsys, *argv)  # the default model
    closed_form = r2_score(split.y_test, LinearRegression().fit(split.X_train, split.y_train)
                           .predict(split.X_test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # scikit-learn's default 200 iterations
        sk_mlp = r2_score(split.y_test, MLPRegressor(random_state=0).fit(split.X_train, split.y_train)
                          .predict(split.X_test))
    assert abs(linear["test"]["r2"] - closed_form) <= 0.02, (linear["test"]["r2"], closed_form)
    assert mlp["test"]["r2"] >= sk_mlp, (mlp["test"]["r2"], sk_mlp)
