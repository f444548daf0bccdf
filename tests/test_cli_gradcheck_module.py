"""``jaxnn gradcheck --module``: the user's own hand-written backwards, checked from the shell."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from jaxnn import gradients
from jaxnn.cli import main

USER_MODULE = '''
import jax
import jax.numpy as jnp

import jaxnn
from jaxnn.gradients import register


def softplus(x):
    return jnp.logaddexp(x, 0.0)


softplus = jaxnn.with_backward(softplus, lambda x, c: (c * jax.nn.sigmoid(x),))
register(softplus, example=lambda key, dtype: (jax.random.normal(key, (4, 5), dtype),))

{extra}
'''

BAD = '''
def my_tanh(x):
    return jnp.tanh(x)


my_tanh = jaxnn.with_backward(my_tanh, lambda x, c: (c * (1 - x**2),))
register(my_tanh, example=lambda key, dtype: (jax.random.normal(key, (3,), dtype),))

unregistered = jaxnn.with_backward(jnp.sin, lambda x, c: (c * jnp.cos(x),))
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a user module into a fresh directory (the cwd); restore the registry afterwards."""
    saved = dict(gradients._REGISTRY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def write(name: str, extra: str = "") -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE.format(extra=extra)))
        names.append(name)
        return name

    yield write
    gradients._REGISTRY.clear()
    gradients._REGISTRY.update(saved)
    for name in names:
        sys.modules.pop(name, None)


def test_module_of_correct_backwards_passes(user_module, capsys):
    mod = user_module("user_layers_ok")
    assert main(["gradcheck", "--module", mod, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] and [e["name"] for e in out["entries"]] == ["softplus"]
    assert out["entries"][0]["max_rel_err"] < 1e-14  # only the user's entry, not jaxnn's 21


def test_module_with_a_wrong_backward_exits_1_with_the_report(user_module, capsys):
    mod = user_module("user_layers_bad", BAD)
    assert main(["gradcheck", "--module", mod]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["entry", "max_abs_err", "max_rel_err", "fd_rel_err", "ok"]
    assert any(line.startswith("softplus") and line.endswith("yes") for line in lines)
    assert any(line.startswith("my_tanh") and line.endswith("NO") for line in lines)
    assert "1/2 hand-written backward passes agree" in out
    assert "check_vjp(my_tanh): FAILED" in out and "worst element" in out
    # the named subset: only softplus, which passes
    assert main(["gradcheck", "--module", f"{mod}:softplus", "--json"]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)["entries"]] == ["softplus"]
    assert main(["gradcheck", "--module", f"{mod}:my_tanh", "--json"]) == 1
    entry = json.loads(capsys.readouterr().out)["entries"][0]
    assert not entry["passed"] and "FAILED" in entry["report"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("no_such_module_xyz", "cannot import 'no_such_module_xyz': ModuleNotFoundError"),
        ("{mod}:unregistered", "has no example arguments"),
        ("{mod}:nothing_here", "no registered entry or with_backward function named"),
    ],
)
def test_bad_modules_exit_2_with_one_line(user_module, capsys, spec, match):
    mod = user_module("user_layers_names", BAD)
    assert main(["gradcheck", "--module", spec.format(mod=mod)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("jaxnn gradcheck: error: --module:") and match in err


def test_module_that_fails_on_import_or_registers_nothing_exits_2(user_module, tmp_path, capsys):
    (tmp_path / "user_broken.py").write_text("raise RuntimeError('half-written module')\n")
    (tmp_path / "user_empty.py").write_text("X = 1\n")
    try:
        assert main(["gradcheck", "--module", "user_broken"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "RuntimeError: half-written module" in err
        assert main(["gradcheck", "--module", "user_empty"]) == 2
        assert "registers no hand-written backward" in capsys.readouterr().err
    finally:
        sys.modules.pop("user_broken", None)
        sys.modules.pop("user_empty", None)
