"""Batch, stochastic and mini-batch gradient descent on the same problem.

The same 64-32-10 ReLU network, from the same initial weights, is trained for a few
epochs on the standardised digits with plain SGD in three modes:

- batch (batch_size=None): one exact gradient step per epoch;
- stochastic (batch_size=1): one noisy step per sample, many tiny products;
- mini-batch (batch_size=32): the usual compromise.

The table shows each epoch's training loss and the time per epoch. fit reports an
epoch's loss as the mean of the losses of its batches, each measured before that
batch's step, so batch descent's epoch 1 shows the initial loss. Batch
descent makes one step per epoch, so its loss falls slowly per epoch; stochastic
descent falls fastest per epoch but each epoch costs the most time.

Run:  python examples/gd_modes.py [curves.png]
      (with matplotlib installed and a path given, the three loss curves are drawn)
"""

import sys
import time

import numpy as np

import fastbp as fb
import fastbp.datasets
from fastbp.callbacks import Callback

MODES = {"batch": None, "stochastic": 1, "mini-batch": 32}
LEARNING_RATES = {"batch": 0.5, "stochastic": 0.01, "mini-batch": 0.1}


class EpochTimer(Callback):
    """Records the wall time of each epoch."""

    def on_train_begin(self, model):
        self.times, self._last = [], time.perf_counter()

    def on_epoch_end(self, epoch, logs, model):
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now


def data():
    X, y = fastbp.datasets.load_digits()
    return fastbp.datasets.standardize(X), y


def train(mode, epochs=8, seed=0):
    """(initial loss, loss per epoch, seconds per epoch) for one mode."""
    X, y = data()
    model = fb.Sequential(
        [fb.Dense(32, activation="relu", input_dim=64), fb.Dense(10)],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=LEARNING_RATES[mode]),
        seed=seed,
    )
    start = model.evaluate(X, y)["loss"]
    timer = EpochTimer()
    hist = model.fit(X, y, epochs=epochs, batch_size=MODES[mode], verbose=0, callbacks=[timer])
    return start, hist.history["loss"], timer.times


def plot(results, path):
    """Draw the three loss curves to path; returns False when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for mode, r in results.items():
        losses = [r["start"]] + r["loss"]
        ax.plot(range(len(losses)), losses, marker="o", label=f"{mode} ({MODES[mode]})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend(title="batch_size")
    fig.savefig(path, format="png", dpi=100)
    return True


def main(verbose=True, epochs=8, plot_path=None):
    results = {}
    for mode in MODES:
        start, losses, times = train(mode, epochs)
        results[mode] = {
            "start": start,
            "loss": losses,
            "seconds": times,
            "median_seconds": float(np.median(times)),
        }
    if verbose:
        names = list(MODES)
        print("training loss per epoch (digits, 64-32-10 ReLU, plain SGD)")
        print("epoch " + "".join(f"{n:>14}" for n in names))
        print(f"{0:>5} " + "".join(f"{results[n]['start']:14.4f}" for n in names))
        for e in range(epochs):
            print(f"{e + 1:>5} " + "".join(f"{results[n]['loss'][e]:14.4f}" for n in names))
        print(
            "ms/epoch"
            + "".join(f"{1e3 * results[n]['median_seconds']:12.2f}  " for n in names)
            + "(median)"
        )
    if plot_path is not None:
        drawn = plot(results, plot_path)
        if verbose:
            print(
                f"plot written to {plot_path}" if drawn else "matplotlib is not installed: no plot"
            )
        results["plotted"] = drawn
    return results


if __name__ == "__main__":
    main(plot_path=sys.argv[1] if len(sys.argv) > 1 else None)
