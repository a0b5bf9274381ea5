"""Symmetry breaking: why hidden units need random initial weights.

If every hidden unit of a layer starts with the same incoming weights (all zeros,
or any constant), they compute the same output, receive the same gradient and get
the same update, so they stay identical forever: the layer behaves like one unit.
A random initialisation ("small_normal" here) makes them differ, and training
pushes them further apart.

`fit(..., diagnostics=True)` counts hidden units that duplicate another unit of
their layer (history key "duplicate_units") and emits a
fastbp.diagnostics.TrainingHealthWarning when there are any.

Run:  python examples/symmetry.py
"""

import warnings

import numpy as np

import fastbp as fb
import fastbp.datasets
from fastbp.diagnostics import TrainingHealthWarning

HIDDEN = 8


def data():
    X, y = fastbp.datasets.moons(n_samples=200, noise=0.1, seed=0)
    return fastbp.datasets.standardize(X), y


def make_model(init, seed=0):
    """A 2-8-2 tanh network whose every layer starts from `init`."""
    return fb.Sequential(
        [
            fb.Dense(HIDDEN, activation="tanh", input_dim=2, kernel_initializer=init),
            fb.Dense(2, kernel_initializer=init),
        ],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.5),
        dtype="float64",
        seed=seed,
    )


def distinct_hidden_units(model):
    """How many different (incoming weights, bias) columns the hidden layer has."""
    W, b = model.get_weights()[:2]
    return len(np.unique(np.vstack([W, b]).T, axis=0))


def train(init, epochs, diagnostics=False):
    """Train from `init`; returns (distinct hidden units, history, health warnings)."""
    X, y = data()
    model = make_model(init)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model.fit(X, y, epochs=epochs, batch_size=32, verbose=0, diagnostics=diagnostics)
    health = [w for w in caught if issubclass(w.category, TrainingHealthWarning)]
    return distinct_hidden_units(model), hist, health


def main(verbose=True, epochs=20):
    results = {}
    for name, init in [
        ("zeros", "zeros"),
        ("constant 0.5", fb.initializers.Constant(0.5)),
        ("small_normal", "small_normal"),
    ]:
        # one optimiser step on one mini-batch, then a full training run with diagnostics
        X, y = data()
        model = make_model(init)
        model.train_step(X[:32], y[:32])
        after_one = distinct_hidden_units(model)
        after_many, hist, health = train(init, epochs=epochs, diagnostics=True)
        results[name] = {
            "after_one_step": after_one,
            "after_training": after_many,
            "duplicate_units": hist.history["duplicate_units"][-1],
            "warnings": [str(w.message) for w in health],
            "final_loss": hist.history["loss"][-1],
        }
    if verbose:
        print(f"distinct hidden units out of {HIDDEN}:")
        print(f"{'initialiser':<14} {'1 step':>7} {epochs:>4} epochs  duplicate_units  loss")
        for name, r in results.items():
            print(
                f"{name:<14} {r['after_one_step']:>7} {r['after_training']:>11}  "
                f"{r['duplicate_units']:>15}  {r['final_loss']:.4f}"
            )
        for name, r in results.items():
            for message in r["warnings"]:
                print(f"warning ({name}): {message}")
    return results


if __name__ == "__main__":
    main()
