"""The worked examples under examples/ reproduce their numbers."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_computation_graph():
    r = load("computation_graph").main(verbose=False)
    n, g = r["nodes"], r["grads"]
    assert [n[k] for k in ("w0*x0", "w1*x1", "sum", "neg")] == [-2.0, 6.0, 1.0, -1.0]
    assert n["1/z"] == pytest.approx(0.73, abs=5e-3)
    assert g["+1"] == pytest.approx(-0.53, abs=5e-3)  # through 1/z: -1/z^2
    assert g["sum"] == pytest.approx(0.20, abs=5e-3)
    hand_dW = [g["w0"], g["w1"]]
    hand_dX = [g["x0"], g["x1"]]
    assert np.allclose(hand_dW, [-0.20, -0.39], atol=5e-3)
    assert np.allclose(hand_dX, [0.39, -0.59], atol=5e-3)
    # fastbp agrees with the hand computation to float64 rounding
    assert r["f"] == pytest.approx(n["1/z"], rel=1e-14)
    np.testing.assert_allclose(r["dX"], hand_dX, rtol=1e-13)
    np.testing.assert_allclose(r["dW"], hand_dW, rtol=1e-13)
    np.testing.assert_allclose(r["db"], [g["w2"]], rtol=1e-13)


def test_xor():
    r = load("xor").main(verbose=False)
    np.testing.assert_allclose(r["ls_w"], [0, 0], atol=1e-12)
    assert r["ls_b"] == pytest.approx(0.5)
    assert r["ls_loss"] == pytest.approx(0.125)
    np.testing.assert_allclose(r["sgd_pred"], 0.5, atol=1e-4)
    assert r["sgd_loss"] == pytest.approx(0.125, abs=1e-7)
    assert r["exact"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert r["classes"].tolist() == [0, 1, 1, 0]
    assert np.all(np.abs(r["proba"] - [0, 1, 1, 0]) < 0.1)


def test_symmetry():
    r = load("symmetry").main(verbose=False, epochs=5)
    for name in ("zeros", "constant 0.5"):
        assert r[name]["after_one_step"] == 1
        assert r[name]["after_training"] == 1
        assert r[name]["duplicate_units"] > 0
        assert any("duplicate" in m for m in r[name]["warnings"])
    rnd = r["small_normal"]
    assert rnd["after_one_step"] == rnd["after_training"] == 8
    assert rnd["duplicate_units"] == 0
    assert not rnd["warnings"]


def test_vanishing_gradients():
    r = load("vanishing_gradients").main(verbose=False)
    assert r["ratios"]["sigmoid"] < 1e-3
    assert r["ratios"]["relu"] > 1e-2
    # the sigmoid stack's norms grow from the first layer to the last
    assert np.all(np.diff(r["norms"]["sigmoid"]) > 0)


def test_two_notations():
    diffs = load("two_notations").main(verbose=False)
    assert set(diffs) == {"loss", "A1", "A2", "dX", "dW1", "db1", "dW2", "db2"}
    for name, d in diffs.items():
        assert d < 1e-12, name


def test_universal_approximation():
    losses = load("universal_approximation").main(verbose=False)
    assert losses[4] > losses[16] > losses[64]
    assert losses[64] < 1e-3


def test_gd_modes(tmp_path):
    plot_path = tmp_path / "modes.png"
    r = load("gd_modes").main(verbose=False, epochs=4, plot_path=plot_path)
    for mode in ("batch", "stochastic", "mini-batch"):
        assert r[mode]["loss"][-1] < r[mode]["start"], mode
        assert len(r[mode]["seconds"]) == 4
    # timings are reported, not asserted: they depend on the machine's load
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r["plotted"] is False
    else:
        assert r["plotted"] and plot_path.read_bytes()[:4] == b"\x89PNG"
