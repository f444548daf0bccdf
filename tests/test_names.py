"""One place for names: every string edge (TrainConfig, CLI, estimators) accepts exactly jaxnn.names'."""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn import foundations, names
from jaxnn.cli import train as cli_train
from jaxnn.estimators import MLPRegressor
from jaxnn.training import TrainConfig


def _cli_choices() -> dict[str, tuple[str, ...]]:
    p = argparse.ArgumentParser()
    cli_train.add_model_arguments(p)
    return {a.dest: tuple(a.choices) for a in p._actions if a.choices is not None}


@pytest.mark.parametrize("dest, expected", [
    ("activation", names.ACTIVATIONS), ("loss", names.LOSSES), ("reduction", names.REDUCTIONS),
    ("optimizer", names.OPTIMIZERS), ("schedule", names.SCHEDULES), ("init", names.INITS),
    ("gradients", names.GRADIENTS), ("dtype", names.DTYPES)])
def test_cli_offers_exactly_the_names(dest: str, expected: tuple[str, ...]) -> None:
    assert _cli_choices()[dest] == expected


@pytest.mark.parametrize("field, valid", [
    ("activation", names.ACTIVATIONS), ("loss", names.LOSSES), ("reduction", names.REDUCTIONS),
    ("optimizer", names.OPTIMIZERS), ("schedule", names.SCHEDULES), ("init", names.INITS),
    ("gradients", names.GRADIENTS), ("dtype", names.DTYPES)])
def test_train_config_accepts_the_names_and_refuses_others(field: str, valid: tuple[str, ...]) -> None:
    for value in valid:
        assert getattr(TrainConfig(steps=1, **{field: value}), field) == value
    with pytest.raises(ValueError, match=f"^{field}: expected one of"):
        TrainConfig(steps=1, **{field: "nope"})


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_activation_names_map_onto_jaxnn_activations() -> None:
    assert set(names.SKLEARN_ACTIVATIONS.values()) == set(names.ACTIVATIONS)
    for name, target in names.SKLEARN_ACTIVATIONS.items():
        assert names.activation(name) is getattr(foundations, target)
    X = np.linspace(-1, 1, 12).reshape(6, 2)
    for name in names.SKLEARN_ACTIVATIONS:  # the estimator takes every one of them
        MLPRegressor(hidden_layer_sizes=(3,), activation=name, max_iter=1, random_state=0).fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"^activation: expected one of"):
        MLPRegressor(activation="softsign").fit(X, X[:, 0])


def test_optimizer_names_are_the_updates_they_promise() -> None:
    """Two steps of each named optimizer against the update written out by hand."""
    # optax is written for standard promotion (the engine runs its updates so)
    with jax.enable_x64(), jax.numpy_dtype_promotion("standard"):
        p = jnp.array([1.0, -2.0])
        grads = [jnp.array([0.5, 1.0]), jnp.array([-1.0, 0.25])]
        lr, mu = 0.1, 0.9

        def run(opt: optax.GradientTransformation) -> np.ndarray:
            q, s = p, opt.init(p)
            for g in grads:
                u, s = opt.update(g, s, q)
                q = optax.apply_updates(q, u)
            return np.asarray(q)

        g1, g2 = (np.asarray(g) for g in grads)
        p0 = np.asarray(p)
        want = {"sgd": p0 - lr * g1 - lr * g2,
                "momentum": p0 - lr * g1 - lr * (mu * g1 + g2),
                "nesterov": p0 - lr * (g1 + mu * g1) - lr * (g2 + mu * (mu * g1 + g2))}
        for name, expected in want.items():
            np.testing.assert_allclose(run(names.optimizer(name, lr, mu)), expected, rtol=1e-12)
        # adam's first step is lr * sign(g): bias-corrected m / sqrt(v), eps aside
        adam = names.optimizer("adam", lr)
        step, _ = adam.update(grads[0], adam.init(p), p)
        np.testing.assert_allclose(np.asarray(optax.apply_updates(p, step)), p0 - lr * np.sign(g1), rtol=1e-6)
    with pytest.raises(ValueError, match=r"^optimizer: expected one of"):
        names.optimizer("rmsprop", 0.1)


def test_each_kind_of_name_is_turned_into_its_value_in_one_function() -> None:
    from jaxnn import losses, models

    assert names.loss("mse") is losses.squared_error_layer
    assert names.loss("cross_entropy") is losses.cross_entropy_layer
    assert [names.initializer(n) for n in names.INITS] == [models.normal, models.glorot, models.he]
    for kind, bad in ((names.loss, "hinge"), (names.initializer, "xavier")):
        with pytest.raises(ValueError, match="expected one of"):
            kind(bad)


def test_resolve_gives_values_shared_by_runs_that_differ_only_in_seed_or_stopping() -> None:
    from jaxnn import training

    a = training.resolve(TrainConfig(hidden=(3,), activation="tanh", optimizer="adam", epochs=2), 40)
    b = training.resolve(TrainConfig(hidden=(3,), activation="tanh", optimizer="adam", epochs=2, seed=5,
                                     patience=3), 40)
    assert (a.loss_fn, a.val_fn, a.optimizer, a.init) == (b.loss_fn, b.val_fn, b.optimizer, b.init)
    assert a.activation is foundations.tanh and not a.summed
    assert training.resolve(TrainConfig(reduction="half_sum", epochs=2), 40).summed
