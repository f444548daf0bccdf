"""The "your turn" exercises: the worked solutions pass, typical mistakes fail, blanks and bugs are told.

The solutions and mistakes are the very cells of ``notebooks/solutions.py`` (tagged
``solution`` and ``mistake``), executed here; every verdict comes from a real
``jaxnn.check_vjp`` run through ``jaxnn.exercises``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import jupytext
import numpy as np
import pytest

from jaxnn import exercises
from jaxnn import foundations as F

ROOT = Path(__file__).resolve().parents[1]

GRADERS = {
    "softplus_deriv": exercises.grade_softplus,
    "chain_3_deriv": exercises.grade_chain,
    "dLdW": exercises.grade_dLdW,
    "network_backward": exercises.grade_network,
}
# mistake -> (grader's exercise, words the one-line verdict must contain)
MISTAKES = {
    "softplus_deriv_mistake": ("softplus_deriv", "the true value is"),
    "chain_3_deriv_mistake": ("chain_3_deriv", "the true value is"),
    "dLdW_no_transpose": ("dLdW", "dLdW(X, W)["),
    "dLdW_no_sigmoid_deriv": ("dLdW", "dLdW(X, W)["),
    "network_backward_seed_bias": ("network_backward", "B1: it returned shape ()"),
    "network_backward_no_sigmoid_deriv": ("network_backward", "the gradient B1["),
}


@pytest.fixture(scope="module")
def solutions() -> dict:
    """The functions defined by the solution and mistake cells of notebooks/solutions.py."""
    nb = jupytext.read(ROOT / "notebooks" / "solutions.py")
    ns: dict = {}
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        defines = {"solution", "mistake"} & set(tags) or (not tags and "import" in cell.source)
        if cell.cell_type == "code" and defines:
            exec(compile(cell.source, "solutions.py", "exec"), ns)  # our own notebook's cells
    assert set(GRADERS) | set(MISTAKES) <= set(ns), sorted(ns)
    return ns


@pytest.mark.parametrize("name", list(GRADERS))
def test_solution_passes(solutions, name, capsys):
    verdict = GRADERS[name](solutions[name])
    assert verdict.status == "passed", str(verdict)
    assert verdict.passed and bool(verdict)
    assert verdict.check is not None and verdict.check.passed
    assert verdict.check.dtype == "float64"
    printed = capsys.readouterr().out
    assert printed.startswith(f"Correct: your {name} agrees with jax.vjp")
    assert "check_vjp(" in printed and ": passed" in printed  # the report follows


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_typical_mistake_fails(solutions, mistake, capsys):
    exercise, words = MISTAKES[mistake]
    verdict = GRADERS[exercise](solutions[mistake])
    assert verdict.status == "wrong", str(verdict)
    assert not verdict.passed and not bool(verdict)
    assert verdict.check is not None and not verdict.check.passed
    first = verdict.message.splitlines()[0]
    assert first.startswith("Not yet: ") and words in first, first
    printed = capsys.readouterr().out
    assert "FAILED" in printed  # check_vjp's report is printed after the verdict


def _blank(*args):
    ...


def _not_implemented(*args):
    raise NotImplementedError


@pytest.mark.parametrize("name", list(GRADERS))
@pytest.mark.parametrize("attempt", [_blank, _not_implemented], ids=["ellipsis", "NotImplementedError"])
def test_blank_attempt_is_told_not_a_traceback(name, attempt, capsys):
    verdict = GRADERS[name](attempt)
    assert verdict.status == "blank" and verdict.check is None
    assert verdict.message.startswith(f"Not attempted yet: {name}")
    assert "Not attempted yet" in capsys.readouterr().out


def test_a_bug_is_reported_with_its_line_not_swallowed():
    def softplus_deriv(x):
        y = 1 / 0  # the learner's bug
        return y * x

    verdict = exercises.grade_softplus(softplus_deriv, quiet=True)
    assert verdict.status == "error" and verdict.check is None
    lines = verdict.message.splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == "Error: your softplus_deriv raised ZeroDivisionError: division by zero"
    assert "softplus_deriv" in lines[1] and "`y = 1 / 0  # the learner's bug`" in lines[1]


def test_an_error_inside_jax_points_at_the_learners_line():
    def dLdW(X, W):
        return X.T @ W.T  # (3, 3) @ (2, 3): a shape error raised inside jax

    verdict = exercises.grade_dLdW(dLdW, quiet=True)
    assert verdict.status == "error", str(verdict)
    assert "TypeError" in verdict.message and "`return X.T @ W.T" in verdict.message


def test_passing_a_value_instead_of_the_function():
    verdict = exercises.grade_softplus(F.sigmoid(jnp.ones(3)), quiet=True)
    assert verdict.status == "error"
    assert "takes your function itself" in verdict.message


def test_wrong_shapes_are_named():
    v = exercises.grade_softplus(lambda x: F.sigmoid(x)[:-1], quiet=True)
    assert v.status == "wrong" and "returned shape (4,)" in v.message and "(5,)" in v.message
    v = exercises.grade_dLdW(lambda X, W: (X.T @ F.sigmoid_deriv(X @ W)).T, quiet=True)
    assert v.status == "wrong" and "returned shape (2, 3)" in v.message


def test_values_that_are_not_numbers_are_a_verdict_not_a_crash():
    v = exercises.grade_softplus(lambda x: ["a"] * 5, quiet=True)
    assert v.status == "wrong" and "not numbers" in v.message, v.message


def test_network_must_return_the_four_gradients(solutions):
    v = exercises.grade_network(lambda X, y, w: [1.0, 2.0], quiet=True)
    assert v.status == "wrong" and "should return a dict with the keys" in v.message

    def missing_b2(X, y, w):
        g = solutions["network_backward"](X, y, w)
        del g["B2"]
        return g

    v = exercises.grade_network(missing_b2, quiet=True)
    assert v.status == "wrong" and "['B1', 'W1', 'W2']" in v.message


def test_grading_leaves_x64_as_it_was(solutions):
    before = jax.config.jax_enable_x64
    exercises.grade_softplus(solutions["softplus_deriv"], quiet=True)
    assert jax.config.jax_enable_x64 == before


def test_verdict_repr_is_short():
    v = exercises.grade_chain(_blank, quiet=True)
    assert repr(v) == "Verdict(exercise='chain_3_deriv', status='blank')"


def test_numpy_code_with_right_values_is_told_to_use_jax_numpy():
    v = exercises.grade_softplus(lambda x: 1 / (1 + np.exp(-x)), quiet=True)
    assert v.status == "wrong" and v.check is not None
    assert all(a.passed for a in v.check.arguments)  # the values were right
    assert "does not run under jax.jit" in v.message and "jnp.exp, not np.exp" in v.message
