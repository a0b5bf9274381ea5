"""fit(callbacks=[...]): early stopping and reducing the rate on a plateau."""

import itertools

import numpy as np
import pytest

import fastbp as fb
from fastbp.callbacks import Callback


def overfitting_setup():
    """Few noisy samples, a wide net and a high rate: validation loss turns up soon."""
    rng = np.random.default_rng(0)
    X, Xv = rng.standard_normal((30, 10)), rng.standard_normal((200, 10))
    w = rng.standard_normal(10)
    y, yv = (X @ w + 2 * rng.standard_normal(30) > 0).astype(int), (Xv @ w > 0).astype(int)
    model = fb.Sequential(
        [fb.Dense(128, activation="relu", input_dim=10), fb.Dense(2)],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.3),
        seed=0,
    )
    return model, X, y, Xv, yv


class Recorder(Callback):
    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs, model):
        self.weights.append(model.get_weights())


def test_early_stopping_stops_and_restores_the_best_epoch(backend):
    model, X, y, Xv, yv = overfitting_setup()
    stop = fb.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    record = Recorder()
    hist = model.fit(
        X,
        y,
        epochs=200,
        batch_size=8,
        validation_data=(Xv, yv),
        verbose=0,
        callbacks=[record, stop],
    )
    val = hist.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) == best + 4 < 200  # three epochs without improvement, then stop
    assert stop.stopped_epoch == len(val) - 1
    for a, b in zip(model.get_weights(), record.weights[best]):
        assert np.array_equal(a, b)


def test_reduce_lr_on_plateau_lowers_the_rate():
    model, X, y, Xv, yv = overfitting_setup()
    reduce = fb.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=0.01)
    hist = model.fit(
        X, y, epochs=40, batch_size=8, validation_data=(Xv, yv), verbose=0, callbacks=[reduce]
    )
    rates = hist.history["lr"]
    assert rates[0] == 0.3 and rates[-1] < 0.3 and min(rates) >= 0.01
    assert all(b in (a, max(0.01, a * 0.5)) for a, b in itertools.pairwise(rates))


def test_monitoring_a_missing_metric_is_a_clear_error():
    model, X, y, _, _ = overfitting_setup()
    with pytest.raises(ValueError, match="monitors 'val_loss', which this fit does not record"):
        model.fit(X, y, epochs=2, verbose=0, callbacks=[fb.EarlyStopping()])
    with pytest.raises(TypeError, match="callbacks must be"):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[print])


def test_accuracy_is_maximised():
    model, X, y, Xv, yv = overfitting_setup()
    stop = fb.EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=False)
    model.fit(X, y, epochs=100, batch_size=8, validation_data=(Xv, yv), verbose=0, callbacks=[stop])
    assert stop.sign == 1.0 and stop.stopped_epoch is not None
