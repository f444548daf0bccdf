"""Figures: rendered headless with Agg, checked as real PNG files and for the numbers they draw."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from jaxnn import foundations, plotting
from jaxnn.cli import main


def png_size(path: Path, min_bytes: int = 5_000) -> tuple[int, int]:
    """(width, height) of a valid PNG; fails on anything else or a near-empty image."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    length, tag = struct.unpack(">I4s", data[8:16])
    assert tag == b"IHDR" and length == 13
    ihdr = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    assert zlib.crc32(b"IHDR" + ihdr) == crc
    assert data.endswith(b"IEND\xaeB`\x82")
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes"
    w, h = struct.unpack(">II", ihdr[:8])
    return w, h


def test_loss_curves_draw_the_given_losses(tmp_path: Path) -> None:
    train = np.linspace(2.0, 0.5, 40)
    val = np.array([1.5, 1.0, 0.8, 0.7])
    fig = plotting.loss_curves(train, val, steps_per_epoch=10, path=tmp_path / "loss.png")
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), train)
    np.testing.assert_array_equal(ax.lines[1].get_xdata(), [10, 20, 30, 40])
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), val)
    assert ax.get_yscale() == "log"
    assert png_size(tmp_path / "loss.png") == (768, 480)  # 6.4 x 4.0 inches at 120 dpi


def test_predicted_vs_actual_reports_sklearn_r2(tmp_path: Path) -> None:
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    p = y + 0.3 * rng.normal(size=50)
    fig = plotting.predicted_vs_actual(y, p[:, None], path=tmp_path / "pva.png")
    assert f"R² = {r2_score(y, p):.3f}" in fig.axes[0].get_title()
    np.testing.assert_array_equal(fig.axes[0].collections[0].get_offsets(), np.column_stack([y, p]))
    png_size(tmp_path / "pva.png")
    with pytest.raises(ValueError, match="y_true, y_pred"):
        plotting.predicted_vs_actual(y, p[:10])


def test_confusion_matrix_counts_match_sklearn(tmp_path: Path) -> None:
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(1)
    yt, yp = rng.integers(0, 3, 80), rng.integers(0, 3, 80)
    fig = plotting.confusion_matrix(yt, yp, ["a", "b", "c"], path=tmp_path / "cm.png")
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), confusion_matrix(yt, yp))
    assert f"accuracy {np.mean(yt == yp):.3f}" in fig.axes[0].get_title()
    png_size(tmp_path / "cm.png")
    with pytest.raises(ValueError, match=r"0\.\.2"):
        plotting.confusion_matrix(yt, yp + 1, ["a", "b", "c"])


def test_feature_weights_linear_coefficients_and_mlp_norms(tmp_path: Path) -> None:
    W = np.array([[0.5], [-2.0], [1.0]])
    fig = plotting.feature_weights([{"W": W, "b": np.zeros(1)}], ["a", "b", "c"], path=tmp_path / "w.png")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = {lab: bar.get_width() for lab, bar in zip(labels, ax.patches, strict=True)}
    assert widths == {"a": 0.5, "b": -2.0, "c": 1.0}
    assert labels[-1] == "b"  # largest |coefficient| on top
    png_size(tmp_path / "w.png")
    W1 = np.arange(12.0).reshape(3, 4)
    fig = plotting.feature_weights([{"W": W1, "b": np.zeros(4)}, {"W": np.ones((4, 1)), "b": np.zeros(1)}])
    ax = fig.axes[0]
    got = sorted(bar.get_width() for bar in ax.patches)
    np.testing.assert_allclose(got, sorted(np.linalg.norm(W1, axis=1)))
    with pytest.raises(ValueError, match="feature_names"):
        plotting.feature_weights([{"W": W, "b": np.zeros(1)}], ["a"])


def test_seed_functions_draw_each_function_and_its_derivative(tmp_path: Path) -> None:
    x = np.linspace(-3.0, 3.0, 201, dtype=np.float32)
    fig = plotting.seed_functions(x, path=tmp_path / "seed.png")
    assert [ax.get_title() for ax in fig.axes] == list(plotting.SEED_FUNCTIONS)
    for ax, name in zip(fig.axes, plotting.SEED_FUNCTIONS, strict=True):
        f, df = getattr(foundations, name), getattr(foundations, f"{name}_deriv")
        np.testing.assert_allclose(ax.lines[0].get_ydata(), np.asarray(f(x)), rtol=1e-6)
        np.testing.assert_allclose(ax.lines[1].get_ydata(), np.asarray(df(x)), rtol=1e-6)
        # The numerical derivative drawn beside it agrees away from the kinks.
        smooth = np.abs(x) > 0.05
        np.testing.assert_allclose(ax.lines[2].get_ydata()[smooth], np.asarray(df(x))[smooth], atol=2e-3)
    assert png_size(tmp_path / "seed.png")[0] == 1440


def test_chain_rule_figure_shows_agreement(tmp_path: Path) -> None:
    fig = plotting.chain_rule(path=tmp_path / "chain.png")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        err = float(re.search(r"= ([0-9.e+-]+)$", ax.get_title()).group(1))
        assert err < 1e-3  # chain rule vs central difference (float32, diff = 1e-3)
        analytic, numeric = ax.lines[1].get_ydata(), ax.lines[2].get_ydata()
        assert np.max(np.abs(analytic - numeric)) == pytest.approx(err, rel=0.06)
    # The seed's printed check: chain_deriv([square, sigmoid]) at x = 2 is the drawn curve's value there.
    xs = fig.axes[0].lines[1].get_xdata()
    i = int(np.argmin(np.abs(xs - 2.0)))
    want = float(foundations.chain_deriv([foundations.square, foundations.sigmoid], np.float32(xs[i])))
    assert fig.axes[0].lines[1].get_ydata()[i] == pytest.approx(want, rel=1e-6)
    png_size(tmp_path / "chain.png")


@pytest.mark.parametrize(("data", "expected"), [
    ("diabetes", {"loss_curves.png", "feature_weights.png", "predicted_vs_actual.png"}),
    ("digits", {"loss_curves.png", "feature_weights.png", "confusion_matrix.png"}),
])
def test_train_out_writes_pngs(tmp_path: Path, data: str, expected: set[str], capsys) -> None:
    out = tmp_path / "figs"
    assert main(["train", "--data", data, "--epochs", "3", "--hidden", "8", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {p.name for p in out.iterdir()} == expected
    for p in out.iterdir():
        png_size(p)
    assert report["epochs"] == 3


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["train", "--epochs", "1", "--out", str(f)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_save_demo_figures(tmp_path: Path) -> None:
    paths = plotting.save_demo_figures(tmp_path / "demo")
    assert [p.name for p in paths] == ["seed_functions.png", "chain_rule.png"]
    for p in paths:
        png_size(p)
