"""Ctrl-C and errors in the middle of fit: the interrupted epoch is rolled back
whole, callbacks end, and training resumes exactly where it stood."""

import _thread
import threading
import time

import numpy as np
import pytest

import fastbp as fb
from fastbp.callbacks import Callback


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 16))
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0).astype(int)


def model_for(backend, seed=0, dtype="float64"):
    return fb.Sequential(
        [
            fb.Dense(64, activation="relu", input_dim=16),
            fb.Dropout(0.1),
            fb.Dense(64, activation="tanh"),
            fb.Dense(3),
        ],
        loss="softmax_cross_entropy",
        seed=seed,
        backend=backend,
        dtype=dtype,
        optimizer=fb.Adam(lr=0.001, schedule=fb.schedules.ExponentialDecay(0.9)),
    )


def state(model):
    """Everything that says how far training got."""
    return (
        [a.copy() for a in model._plan.training_state()],
        model._rng.bit_generator.state,
        model.epochs_done,
    )


def assert_same_state(a, b):
    assert a[1] == b[1] and a[2] == b[2]
    for x, y in zip(a[0], b[0]):
        assert np.array_equal(x, y)


class InterruptIn(Callback):
    """After epoch `after`, interrupts the main thread `delay` seconds into the next
    epoch, as Ctrl-C would; records the state at that epoch's end."""

    def __init__(self, after, delay):
        self.after, self.delay = after, delay
        self.saved = self.fired_at = None
        self.ended = False

    def on_epoch_end(self, epoch, logs, model):
        if epoch == self.after:
            self.saved = state(model)
            threading.Timer(self.delay, self._fire).start()

    def _fire(self):
        self.fired_at = time.perf_counter()
        _thread.interrupt_main()

    def on_train_end(self, model):
        self.ended = True


@pytest.mark.parametrize("backend, n", [("cython", 60000), ("numpy", 6000)])
def test_ctrl_c_rolls_back_the_epoch_and_training_resumes_exactly(backend, n, tmp_path):
    X, y = data(n)
    reference = model_for(backend)
    started = time.perf_counter()
    reference.fit(X, y, epochs=1, batch_size=16, verbose=0)
    epoch_seconds = time.perf_counter() - started
    reference.fit(X, y, epochs=2, batch_size=16, verbose=0)

    model = model_for(backend)
    interrupt = InterruptIn(after=0, delay=0.1 * epoch_seconds)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[interrupt])
    # seen well before the epoch could have finished (it takes about epoch_seconds)
    assert time.perf_counter() - interrupt.fired_at < 0.5 * epoch_seconds
    assert interrupt.ended
    assert_same_state(state(model), interrupt.saved)
    model.save(tmp_path / "m.npz")
    for resumed in (model, fb.load(tmp_path / "m.npz")):
        resumed.fit(X, y, epochs=2, batch_size=16, verbose=0)
        assert_same_state(state(resumed), state(reference))


class Explode(Callback):
    def __init__(self, epoch):
        self.epoch, self.ended = epoch, False

    def on_epoch_end(self, epoch, logs, model):
        if epoch == self.epoch:
            raise RuntimeError("callback failed")

    def on_train_end(self, model):
        self.ended = True


def test_an_error_after_an_epoch_keeps_the_epochs_completed(backend):
    X, y = data(400)
    model = model_for(backend)
    explode = Explode(epoch=1)
    with pytest.raises(RuntimeError, match="callback failed"):
        model.fit(X, y, epochs=4, verbose=0, callbacks=[explode])
    assert explode.ended and model.epochs_done == 2


def test_an_error_inside_an_epoch_rolls_it_back(backend, monkeypatch):
    X, y = data(400)
    model = model_for(backend)
    model.fit(X, y, epochs=1, verbose=0)
    before = state(model)
    calls = []
    real = model._backend.epoch

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("simulated")
        return real(*args)

    monkeypatch.setattr(model._backend, "epoch", failing)
    monkeypatch.setattr(fb.model, "CALL_SECONDS", 0.0)  # one batch per engine call
    with pytest.raises(MemoryError):
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert len(calls) == 3
    assert_same_state(state(model), before)


def test_restore_best_weights_on_interruption(backend):
    X, y = data(400)
    Xv, yv = data(100, seed=1)
    model = model_for(backend)
    stopper = fb.EarlyStopping(patience=10, restore_best_weights=True)
    with pytest.raises(RuntimeError):
        model.fit(
            X,
            y,
            epochs=5,
            verbose=0,
            validation_data=(Xv, yv),
            callbacks=[stopper, Explode(epoch=2)],
        )
    assert stopper.best_weights is not None
    for a, b in zip(model.get_weights(), stopper.best_weights):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "callback",
    [
        fb.EarlyStopping(),
        fb.ReduceLROnPlateau(),
        fb.EarlyStopping(monitor="val_accuracy"),
        fb.EarlyStopping(monitor="grad_norm_9"),
    ],
)
def test_callbacks_needs_are_checked_before_any_training(backend, callback):
    X, y = data(200)
    model = model_for(backend)
    model.fit(X, y, verbose=0)
    before = state(model)
    with pytest.raises(ValueError, match="does not record"):
        model.fit(X, y, epochs=3, verbose=0, callbacks=[callback], diagnostics=True)
    assert_same_state(state(model), before)


def test_diagnostic_readings_may_be_monitored(backend):
    X, y = data(200)
    model = model_for(backend)
    stopper = fb.EarlyStopping(monitor="grad_norm_1", mode="min", patience=1)
    history = model.fit(X, y, epochs=2, verbose=0, diagnostics=True, callbacks=[stopper])
    assert "grad_norm_1" in history.history


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_how_an_epoch_is_split_into_calls_changes_nothing(backend, dtype, monkeypatch):
    # fit runs an epoch as engine calls of a growing number of batches (so that
    # Ctrl-C is seen between them); with one batch per call the weights and the
    # recorded losses, summed batch after batch, must be the same bits
    X, y = data(600, seed=3)
    runs = []
    for seconds in (fb.model.CALL_SECONDS, 0.0):
        monkeypatch.setattr(fb.model, "CALL_SECONDS", seconds)
        m = model_for(backend, dtype=dtype)
        hist = m.fit(
            X, y, epochs=4, batch_size=5, verbose=0, sample_weight=np.linspace(0.5, 2, 600)
        )
        runs.append((m.get_weights(), hist.history["loss"], hist.history["accuracy"]))
    (w1, loss1, acc1), (w2, loss2, acc2) = runs
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert loss1 == loss2 and acc1 == acc2
