"""fastbp.plot: PNG files that are valid and show what they claim, clear errors, and a
clear message when matplotlib is missing.

The pixel checks read the written PNG back and locate data coordinates in it with the
axes transform of the very figure that was saved (caught by a spy), so they test what
the file shows rather than what the code meant to draw.
"""

import io
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb
from fastbp import datasets, plot

needs_mpl = pytest.mark.skipif(
    find_spec("matplotlib") is None, reason='needs matplotlib: pip install "fastbp[plot]"'
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INSTALL_HINT = 'pip install "fastbp[plot]"'


# ----------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def moons_run():
    """The README-style run: a 2-16-2 tanh classifier on standardised moons, with
    validation data. (model, X_train, y_train, History)"""
    X, y = datasets.moons(n_samples=400, noise=0.1)
    X_tr, X_val, y_tr, y_val = datasets.train_test_split(X, y)
    X_tr, X_val = datasets.standardize(X_tr, X_val)
    model = fb.Sequential(
        [fb.Dense(16, activation="tanh", input_dim=2), fb.Dense(2)],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.5),
        seed=0,
    )
    hist = model.fit(X_tr, y_tr, epochs=100, validation_data=(X_val, y_val), verbose=0)
    return model, X_tr, y_tr, hist


@pytest.fixture(scope="module")
def regression_history():
    X = np.random.default_rng(0).standard_normal((64, 2))
    model = fb.Sequential(
        [fb.Dense(8, activation="tanh", input_dim=2), fb.Dense(1)], loss="mse", seed=0
    )
    return model, model.fit(X, X[:, :1] ** 2, epochs=12, verbose=0)


def read_png(path):
    """The file's bytes start with the PNG signature; returns its RGB pixels (H, W, 3)."""
    from matplotlib import image

    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return image.imread(path, format="png")[:, :, :3]


def pixel_size(fig):
    """(height, width) in pixels of fig written at plot.DPI."""
    width, height = fig.get_size_inches() * plot.DPI
    return round(height), round(width)


def catch_figure(monkeypatch, name):
    """Make plot.<name> remember the figures it returns."""
    figures = []
    make = getattr(plot, name)

    def spy(*args, **kwargs):
        figures.append(make(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(plot, name, spy)
    return figures


def rgb(color):
    from matplotlib.colors import to_rgb

    return np.array(to_rgb(color))


def count_pixels(pixels, color, tol=0.08):
    return int((np.abs(pixels - rgb(color)).max(axis=2) < tol).sum())


# -------------------------------------------------------------------------- history


@needs_mpl
def test_history_classifier_png_has_both_panels_and_curves(moons_run, tmp_path, monkeypatch):
    _, _, _, hist = moons_run
    figures = catch_figure(monkeypatch, "history_figure")
    path = tmp_path / "history.png"
    assert plot.history(hist, path) is path

    pixels = read_png(path)
    (fig,) = figures
    assert pixels.shape[:2] == pixel_size(fig) == (400, 1100)
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_title(), acc_ax.get_title()) == ("Loss", "Accuracy")
    for ax, key in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        train, val = ax.get_lines()[:2]
        np.testing.assert_array_equal(train.get_xdata(), np.arange(1, 101))
        np.testing.assert_allclose(train.get_ydata(), hist.history[key])
        np.testing.assert_allclose(val.get_ydata(), hist.history["val_" + key])
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert labels[0].startswith("training") and labels[1].startswith("validation")
        assert ax.get_xlabel() == "epoch" and ax.get_xticks()[0] == 1
        assert ax.get_xlim()[0] > 0  # epochs start at 1: no room for an epoch 0
    # Both curves are drawn in each half of the image.
    for half in (pixels[:, :550], pixels[:, 550:]):
        assert count_pixels(half, plot._TRAIN_COLOR) > 200
        assert count_pixels(half, plot._VAL_COLOR) > 200


@needs_mpl
def test_history_regressor_png_has_one_loss_panel(regression_history, tmp_path, monkeypatch):
    _, hist = regression_history
    figures = catch_figure(monkeypatch, "history_figure")
    path = plot.history(hist, str(tmp_path / "reg.png"))
    assert path == str(tmp_path / "reg.png")

    pixels = read_png(path)
    (fig,) = figures
    assert pixels.shape[:2] == pixel_size(fig) == (400, 550)
    (ax,) = fig.axes
    assert ax.get_title() == "Loss"
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 13))
    assert count_pixels(pixels, plot._TRAIN_COLOR) > 100
    assert count_pixels(pixels, plot._VAL_COLOR) == 0  # no validation curve


@needs_mpl
def test_history_figure_panels_follow_the_recorded_metrics():
    only_loss = plot.history_figure({"loss": [1.0, 0.5]})
    assert len(only_loss.axes) == 1 and len(only_loss.axes[0].get_lines()) == 1
    no_val = plot.history_figure({"loss": [1.0, 0.5, 0.2], "accuracy": [0.5, 0.7, 0.9]})
    assert [len(ax.get_lines()) for ax in no_val.axes] == [1, 1]
    # Extra keys (e.g. diagnostics) are ignored; the best validation loss is marked.
    fig = plot.history_figure(
        {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.3, 0.6], "grad_norm": [3.0, 2.0, 1.0]}
    )
    (ax,) = fig.axes
    best = ax.get_lines()[-1]
    assert (best.get_xdata(), best.get_ydata()) == ([2], [0.3])
    one_epoch = plot.history_figure({"loss": [0.7]})
    assert list(one_epoch.axes[0].get_xticks()) == [1]


@needs_mpl
def test_history_writes_to_a_file_object():
    buffer = io.BytesIO()
    assert plot.history({"loss": [0.7, 0.6]}, buffer) is buffer
    assert buffer.getvalue()[:8] == PNG_SIGNATURE


@needs_mpl
@pytest.mark.parametrize(
    "bad, error, match",
    [
        ({"loss": []}, ValueError, "no epochs"),
        ({"accuracy": [0.5]}, ValueError, "'loss'"),
        ({"loss": [[1.0, 2.0]]}, ValueError, "one number per epoch"),
        ([0.5, 0.4], TypeError, "fastbp.History"),
    ],
)
def test_history_rejects_what_it_cannot_plot(bad, error, match, tmp_path):
    with pytest.raises(error, match=match):
        plot.history(bad, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- decision boundary


def pixel_of(ax, pixels, x, y):
    """The RGB of the PNG pixel at data point (x, y) of ax."""
    col, row_up = ax.transData.transform((x, y))
    return pixels[int(pixels.shape[0] - row_up), int(col)]


def point_colors(ax):
    """{class: RGB} from the scatter of each class."""
    return {int(c.get_label()): np.asarray(c.get_facecolor()[0][:3]) for c in ax.collections}


def nearest_class(color, colors):
    return min(colors, key=lambda k: np.abs(color - colors[k]).sum())


@needs_mpl
def test_decision_boundary_shades_the_predicted_class(moons_run, tmp_path, monkeypatch):
    model, X, y, _ = moons_run
    figures = catch_figure(monkeypatch, "decision_boundary_figure")
    path = tmp_path / "boundary.png"
    assert plot.decision_boundary(model, X, y, path, resolution=120) is path

    pixels = read_png(path)
    (fig,) = figures
    (ax,) = fig.axes
    assert pixels.shape[:2] == pixel_size(fig)
    # The grid covers X with a margin.
    (x_lo, x_hi), (y_lo, y_hi) = ax.get_xlim(), ax.get_ylim()
    assert x_lo < X[:, 0].min() < X[:, 0].max() < x_hi
    assert y_lo < X[:, 1].min() < X[:, 1].max() < y_hi

    colors = point_colors(ax)
    assert sorted(colors) == [0, 1] and np.abs(colors[0] - colors[1]).sum() > 0.5
    # Probes far inside a region (the model agrees on a ring around them) and clear of
    # the points and the legend.
    legend = ax.get_legend().get_window_extent().padded(4)
    points_px = ax.transData.transform(X)
    seen = {0: [], 1: []}
    for px in np.linspace(x_lo, x_hi, 14)[1:-1]:
        for py in np.linspace(y_lo, y_hi, 14)[1:-1]:
            angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
            ring = np.column_stack([px + 0.15 * np.cos(angles), py + 0.15 * np.sin(angles)])
            classes = model.predict(np.vstack([[px, py], ring]))
            where = ax.transData.transform((px, py))
            if (
                (classes != classes[0]).any()
                or legend.contains(*where)
                or np.hypot(*(points_px - where).T).min() < 10
            ):
                continue
            color = pixel_of(ax, pixels, px, py)
            assert nearest_class(color, colors) == classes[0], (px, py)
            seen[int(classes[0])].append(color)
    for k, shades in seen.items():
        assert len(shades) >= 5, f"too few clear probes in class {k}"
        np.testing.assert_allclose(
            shades, np.broadcast_to(shades[0], np.shape(shades)), atol=0.01
        )  # one flat shade per class
        assert shades[0].mean() > colors[k].mean()  # lighter than the points

    # Points are drawn in the colour of their class y: look at isolated points.
    dist = np.hypot(*(points_px[:, None] - points_px[None]).transpose(2, 0, 1))
    np.fill_diagonal(dist, np.inf)
    for k in (0, 1):
        i = np.flatnonzero((y == k) & (dist.min(axis=1) > 12))[0]
        np.testing.assert_allclose(pixel_of(ax, pixels, *X[i]), colors[k], atol=0.05)


@needs_mpl
def test_decision_boundary_of_a_sigmoid_classifier(tmp_path, monkeypatch):
    # One sigmoid output, weights set by hand: class 1 exactly where x0 > 0.
    model = fb.Sequential(
        [fb.Dense(1, activation="sigmoid", input_dim=2)], loss="binary_cross_entropy", seed=0
    )
    model.set_weights([np.array([[4.0], [0.0]]), np.zeros(1)])
    X = np.array([[-2.0, -1.0], [-1.5, 1.0], [1.5, -1.0], [2.0, 1.0]])
    y = np.array([0, 0, 1, 1])
    figures = catch_figure(monkeypatch, "decision_boundary_figure")
    pixels = read_png(plot.decision_boundary(model, X, y, tmp_path / "b.png", resolution=50))
    (ax,) = figures[0].axes
    colors = point_colors(ax)
    for x, expected in ((-1.0, 0), (1.0, 1)):
        assert model.predict([[x, 0.0]])[0] == expected
        assert nearest_class(pixel_of(ax, pixels, x, 0.0), colors) == expected
    assert "100.0%" in ax.get_title()


@needs_mpl
def test_decision_boundary_errors(moons_run, regression_history, tmp_path):
    model, X, y, _ = moons_run
    path = tmp_path / "x.png"
    with pytest.raises(ValueError, match=r"2-D inputs.*got shape \(300, 3\)"):
        plot.decision_boundary(model, np.hstack([X, X[:, :1]]), y, path)
    with pytest.raises(ValueError, match=r"2-D inputs.*got shape \(300,\)"):
        plot.decision_boundary(model, X[:, 0], y, path)
    with pytest.raises(ValueError, match="'mse' is not a classification loss"):
        plot.decision_boundary(regression_history[0], X, y, path)
    unfitted = fb.Sequential([fb.Dense(2)], loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match="not fitted"):
        plot.decision_boundary(unfitted, X, y, path)
    wide = fb.Sequential([fb.Dense(2, input_dim=3)], loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match="takes 3"):
        plot.decision_boundary(wide, X, y, path)
    with pytest.raises(ValueError, match=r"one class index per row of X, shape \(300,\)"):
        plot.decision_boundary(model, X, y[:-1], path)
    with pytest.raises(ValueError, match=r"class indices 0\.\.1"):
        plot.decision_boundary(model, X, y + 1, path)
    with pytest.raises(ValueError, match="finite"):
        plot.decision_boundary(model, np.where(X > 1, np.nan, X), y, path)
    for resolution in (1, 2.5, True):
        with pytest.raises(ValueError, match="resolution"):
            plot.decision_boundary(model, X, y, path, resolution=resolution)
    multi_label = fb.Sequential(
        [fb.Dense(3, activation="sigmoid", input_dim=2)], loss="binary_cross_entropy"
    )
    with pytest.raises(ValueError, match="multi-label"):
        plot.decision_boundary(multi_label, X, y, path)
    assert not path.exists()


# ---------------------------------------------------------------- without matplotlib


def test_without_matplotlib_the_functions_say_how_to_install(moons_run, monkeypatch, tmp_path):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    model, X, y, hist = moons_run
    with pytest.raises(ImportError, match=r'pip install "fastbp\[plot\]"'):
        plot.history(hist, tmp_path / "h.png")
    with pytest.raises(ImportError, match=r"pip install matplotlib"):
        plot.decision_boundary(model, X, y, tmp_path / "b.png")
    assert not list(tmp_path.iterdir())


def test_import_works_without_matplotlib():
    # A fresh interpreter in which importing matplotlib fails.
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "matplotlib" or name.startswith("matplotlib."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        import fastbp.plot
        try:
            fastbp.plot.history({"loss": [1.0]}, "never.png")
        except ImportError as exc:
            print(exc)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert INSTALL_HINT in result.stdout and "matplotlib" in result.stdout


@needs_mpl
def test_pyplot_is_left_alone(tmp_path):
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plot.history_figure({"loss": [1.0, 0.5]})
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules
