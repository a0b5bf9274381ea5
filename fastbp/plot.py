"""Plots of a training run and of a classifier's decision regions, written as PNG files.

Optional: needs matplotlib (`pip install "fastbp[plot]"`). It is imported only when a
function runs, so `import fastbp.plot` works without it. The figures are
`matplotlib.figure.Figure` objects drawn by the Agg canvas, never pyplot figures: they
do not change the pyplot backend or its list of open figures, nothing needs closing,
and a display is never needed.

- `history(hist, path)`: loss per epoch (training and validation) and, for
  classifiers, accuracy per epoch in a second panel.
- `decision_boundary(model, X, y, path)`: the class a two-input classifier predicts at
  every point of the plane around X, with the points of X coloured by their class.

`history_figure` and `decision_boundary_figure` return the Figure instead of writing
it, to restyle it or save it in another format.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastbp.validation import check_int

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from fastbp.callbacks import History
    from fastbp.model import Sequential

# where a PNG goes: a file name or a binary file object
Destination = str | os.PathLike[str] | IO[bytes]

__all__ = ["decision_boundary", "decision_boundary_figure", "history", "history_figure"]

DPI = 100
_INSTALL_HINT = 'pip install "fastbp[plot]" (or pip install matplotlib)'
_TRAIN_COLOR = "tab:blue"
_VAL_COLOR = "tab:orange"
_SHADE = 0.35  # weight of a class colour in its (opaque) region shade; the rest is white
_MARGIN = 0.1  # the grid extends past X by this fraction of X's span on each side


def _matplotlib() -> tuple[Any, Any, ModuleType]:
    """(Figure, FigureCanvasAgg, matplotlib) or an ImportError that says how to install."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"fastbp.plot needs matplotlib, which is not installed: {_INSTALL_HINT}"
        ) from exc
    return Figure, FigureCanvasAgg, matplotlib


def _save(fig: Figure, path: Destination) -> Destination:
    """Write fig as a PNG to path (whatever its suffix) and return path unchanged."""
    _, FigureCanvasAgg, _ = _matplotlib()
    FigureCanvasAgg(fig)
    fig.savefig(path if hasattr(path, "write") else os.fspath(path), format="png", dpi=DPI)
    return path


# --------------------------------------------------------------------------- history


def history_figure(hist: History | Mapping[str, Sequence[float]]) -> Figure:
    """The figure `history` writes.

    hist : a fastbp.History (from `model.fit`) or its `.history` dict, which maps
        "loss" and optionally "val_loss", "accuracy", "val_accuracy" to one value
        per epoch; other keys are ignored.

    Returns a Figure with one panel (loss) or, when accuracy was recorded, two (loss,
    accuracy); epochs on the x axis count from 1.
    """
    Figure, _, _ = _matplotlib()
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    curves = _history_curves(hist)
    panels = [("loss", "Loss")]
    if "accuracy" in curves or "val_accuracy" in curves:
        panels.append(("accuracy", "Accuracy"))
    n_epochs = max(len(values) for values in curves.values())

    fig = Figure(figsize=(5.5 * len(panels), 4.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (metric, title) in zip(axes, panels):
        percent = metric == "accuracy"
        for key, label, color in (
            (metric, "training", _TRAIN_COLOR),
            ("val_" + metric, "validation", _VAL_COLOR),
        ):
            if key not in curves:
                continue
            values = curves[key]
            epochs = np.arange(1, len(values) + 1)
            last = f"{values[-1]:.1%}" if percent else f"{values[-1]:.4g}"
            ax.plot(
                epochs,
                values,
                color=color,
                label=f"{label} (last {last})",
                marker="o" if len(values) <= 20 else None,
                markersize=3,
            )
        if metric == "loss" and "val_loss" in curves and np.isfinite(curves["val_loss"]).any():
            best = int(
                np.nanargmin(np.where(np.isfinite(curves["val_loss"]), curves["val_loss"], np.nan))
            )
            ax.plot(
                best + 1,
                curves["val_loss"][best],
                "o",
                color=_VAL_COLOR,
                markerfacecolor="white",
                markersize=7,
                zorder=3,
                label=f"lowest validation loss, epoch {best + 1}",
            )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        _epoch_axis(ax, n_epochs, MaxNLocator)
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    return fig


def history(hist: History | Mapping[str, Sequence[float]], path: Destination) -> Destination:
    """Write the training curves of `hist` (see `history_figure`) as a PNG to path
    (str, os.PathLike or a binary file object); returns path."""
    return _save(history_figure(hist), path)


def _epoch_axis(ax: Axes, n_epochs: int, MaxNLocator: Any) -> None:
    """x from just before epoch 1 to just after the last; integer ticks that start at 1."""
    pad = min(0.9, max(0.3, 0.02 * (n_epochs - 1)))  # below 1, so no tick at epoch 0
    ax.set_xlim(1 - pad, n_epochs + pad)
    ticks = MaxNLocator(nbins=10, integer=True).tick_values(0, n_epochs)  # 0, 10, 20, ...
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    ticks = [1] + [int(t) for t in ticks if t - 1 > step / 2 and t <= n_epochs]
    ax.set_xticks(ticks)


def _history_curves(hist: Any) -> dict[str, NDArray[np.float64]]:
    """{metric: float64 array (n_epochs,)} for the plotted metrics present in hist."""
    if hasattr(hist, "history") and isinstance(hist.history, Mapping):
        record = hist.history
    elif isinstance(hist, Mapping):
        record = hist
    else:
        raise TypeError(
            f"history needs a fastbp.History (what model.fit returns) or its "
            f".history dict, got {type(hist).__name__}"
        )
    if len(record.get("loss", ())) == 0:
        raise ValueError(
            "the history has no epochs to plot: it needs a 'loss' entry with one "
            f"value per epoch (its keys: {sorted(record)}); fit with epochs >= 1"
        )
    curves = {}
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        if len(record.get(key, ())):
            values = np.asarray(record[key], dtype=np.float64)
            if values.ndim != 1:
                raise ValueError(
                    f"history[{key!r}] must hold one number per epoch, "
                    f"got an array of shape {values.shape}"
                )
            curves[key] = values
    return curves


# --------------------------------------------------------------- decision boundary


def decision_boundary_figure(
    model: Sequential, X: ArrayLike, y: ArrayLike, resolution: int = 200
) -> Figure:
    """The figure `decision_boundary` writes.

    model : a fitted fastbp.Sequential with a classification loss and 2 inputs.
    X : array-like of shape (n_samples, 2), the points to show (e.g. the training set).
    y : array-like of shape (n_samples,), their class indices.
    resolution : grid points per axis; `model.predict` runs on resolution**2 points.

    Returns a Figure with one panel: the plane around X (X's range plus 10% of its
    span on each side) shaded in a light tint of the class the model predicts there,
    and the points of X in the full colour of their class y.
    """
    Figure, _, matplotlib = _matplotlib()
    from matplotlib.colors import ListedColormap

    X, y, n_classes = _check_boundary_inputs(model, X, y)
    resolution = check_int("resolution", resolution, low=2, high=2000)  # per axis
    (x_lo, x_hi), (y_lo, y_hi) = (_padded_range(X[:, j]) for j in (0, 1))
    gx = np.linspace(x_lo, x_hi, resolution)
    gy = np.linspace(y_lo, y_hi, resolution)
    grid_x, grid_y = np.meshgrid(gx, gy)  # (resolution, resolution): [row = y, col = x]
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    regions = np.asarray(model.predict(grid)).reshape(resolution, resolution)
    accuracy = float(np.mean(np.asarray(model.predict(X)) == y))

    colors = _class_colors(matplotlib, n_classes)
    shades = _SHADE * colors + (1.0 - _SHADE) * np.ones_like(colors)

    fig = Figure(figsize=(6.0, 5.0), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    half_x = (x_hi - x_lo) / (2 * (resolution - 1))
    half_y = (y_hi - y_lo) / (2 * (resolution - 1))
    ax.imshow(
        regions,
        origin="lower",
        interpolation="nearest",
        aspect="auto",
        extent=(x_lo - half_x, x_hi + half_x, y_lo - half_y, y_hi + half_y),
        cmap=ListedColormap(shades),
        vmin=-0.5,
        vmax=n_classes - 0.5,
    )
    for k in range(n_classes):
        points = X[y == k]
        if len(points):
            ax.scatter(
                points[:, 0],
                points[:, 1],
                s=18,
                color=colors[k],
                edgecolors="white",
                linewidths=0.5,
                label=str(k),
                zorder=2,
            )
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("X[:, 0]")
    ax.set_ylabel("X[:, 1]")
    ax.set_title(f"Decision regions: {accuracy:.1%} of {len(X)} points correct", fontsize="medium")
    ax.legend(
        loc="best", fontsize="small", title="true class", title_fontsize="small", framealpha=0.9
    )
    return fig


def decision_boundary(
    model: Sequential, X: ArrayLike, y: ArrayLike, path: Destination, resolution: int = 200
) -> Destination:
    """Write the decision regions of `model` around X with the points X coloured by
    their class y (see `decision_boundary_figure`) to the PNG file path; returns path.

    model : fitted fastbp.Sequential, classification loss, 2 input features.
    X : (n_samples, 2); y : (n_samples,) class indices; resolution : grid points per axis.
    """
    return _save(decision_boundary_figure(model, X, y, resolution), path)


def _check_boundary_inputs(
    model: Any, X: ArrayLike, y: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.int64], int]:
    """X as float64 (n, 2), y as int64 (n,), and the number of classes the model predicts."""
    loss = getattr(model, "loss", None)
    if loss is None or not hasattr(model, "predict"):
        raise TypeError(
            f"decision_boundary needs a fitted fastbp.Sequential, got {type(model).__name__}"
        )
    if not loss.classification:
        raise ValueError(
            f"decision_boundary needs a classifier, but the model's loss "
            f"{loss.name!r} is not a classification loss; use "
            "'softmax_cross_entropy' or 'binary_cross_entropy'"
        )
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(
            f"decision_boundary needs 2-D inputs (2 features): X must have "
            f"shape (n_samples, 2), got shape {X.shape}"
        )
    if X.dtype.kind not in "biuf" or len(X) == 0 or not np.isfinite(X).all():
        raise ValueError("X must hold at least one row of finite numbers")
    X = X.astype(np.float64)
    if not model.built:
        raise ValueError("the model is not fitted yet: fit it on (X, y) first")
    if model.input_dim != 2:
        raise ValueError(
            f"decision_boundary needs a model with 2 input features; this one "
            f"takes {model.input_dim}"
        )
    if loss.name == "binary_cross_entropy":
        if model.output_dim != 1:
            raise ValueError(
                f"decision_boundary shows one class per point; this model has "
                f"{model.output_dim} independent sigmoid outputs (multi-label)"
            )
        n_classes = 2
    else:
        n_classes = model.output_dim
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (len(X),):
        raise ValueError(
            f"y must hold one class index per row of X, shape ({len(X)},); got "
            f"shape {y.shape} (for probability rows pass y.argmax(axis=1))"
        )
    labels = y.astype(np.int64) if y.dtype.kind in "biuf" and np.isfinite(y).all() else None
    if labels is None or (labels != y).any() or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"y must hold class indices 0..{n_classes - 1} (the model predicts "
            f"{n_classes} classes), got values {np.unique(y)[:10]}"
        )
    return X, labels, n_classes


def _padded_range(values: np.ndarray) -> tuple[float, float]:
    """(low, high) covering values plus _MARGIN of their span (or 1 when they are all equal)."""
    lo, hi = float(values.min()), float(values.max())
    pad = _MARGIN * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _class_colors(matplotlib: ModuleType, n_classes: int) -> NDArray[np.float64]:
    """RGB rows (n_classes, 3): tab10 up to 10 classes, evenly spaced turbo beyond."""
    if n_classes <= 10:
        rgba = matplotlib.colormaps["tab10"](np.arange(n_classes))
    else:
        rgba = matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))
    return np.asarray(rgba)[:, :3]
