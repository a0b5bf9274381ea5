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


# --- the rate each epoch used ---------------------------------------------------------


def small_setup(optimizer=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((64, 5))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    model = fb.Sequential(
        [fb.Dense(8, activation="tanh", input_dim=5), fb.Dense(2)],
        loss="softmax_cross_entropy",
        optimizer=optimizer or fb.SGD(lr=0.2),
        dtype="float64",
        seed=seed,
    )
    return model, X, y


def trained_by_hand(rates, seed=0):
    """The weights after one epoch per rate, each set by hand on a schedule-free SGD."""
    model, X, y = small_setup(seed=seed)
    for rate in rates:
        model.optimizer.lr = rate
        model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    return model.get_weights()


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_history_logs_the_rate_of_the_optimisers_schedule():
    model, X, y = small_setup(fb.SGD(lr=0.2, schedule=fb.schedules.StepDecay(2, gamma=0.5)))
    first = model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    second = model.fit(X, y, epochs=2, batch_size=16, verbose=0)  # the schedule goes on
    expected = [0.2, 0.2, 0.1, 0.1, 0.05]
    assert first.history["lr"] + second.history["lr"] == pytest.approx(expected, rel=1e-15)
    # and those are the rates the steps really used
    assert_same_weights(model.get_weights(), trained_by_hand(expected))


def test_history_logs_a_constant_rate_and_callbacks_may_monitor_it():
    model, X, y = small_setup()
    seen = []

    class Watch(Callback):
        def check(self, recorded):
            seen.append(list(recorded))

    hist = model.fit(X, y, epochs=2, verbose=0, callbacks=[Watch()])
    assert hist.history["lr"] == [0.2, 0.2]
    assert "lr" in seen[0] and "val_lr" not in seen[0]


def test_a_schedule_function_on_the_optimiser_is_used_and_logged():
    model, X, y = small_setup(fb.SGD(lr=0.2, schedule=lambda lr, epoch: lr / (1 + epoch)))
    hist = model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    expected = [0.2, 0.1, 0.2 / 3]
    assert hist.history["lr"] == pytest.approx(expected, rel=1e-15)
    assert_same_weights(model.get_weights(), trained_by_hand(expected))
    assert "Function(<function" in repr(model.optimizer)


def test_a_model_with_a_schedule_function_refuses_to_be_saved_or_pickled(tmp_path):
    import pickle

    model, X, y = small_setup(fb.SGD(lr=0.2, schedule=lambda lr, epoch: lr))
    model.fit(X, y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="a file or a pickle cannot hold"):
        model.save(tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())
    with pytest.raises(TypeError, match=r"optimizer\.schedule = None"):
        pickle.dumps(model)
    model.optimizer.schedule = None  # the advice works
    model.save(tmp_path / "m.npz")
    assert fb.load(tmp_path / "m.npz").optimizer.schedule is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, "0.1", None])
def test_a_schedule_giving_a_bad_rate_stops_before_any_step_of_that_epoch(bad):
    def schedule(lr, epoch):
        return lr if epoch < 2 else bad

    model, X, y = small_setup(fb.SGD(lr=0.2, schedule=schedule))
    record = Recorder()
    with pytest.raises(ValueError, match=r"gave the rate .* for epoch 2 .* no step was taken"):
        model.fit(X, y, epochs=4, verbose=0, callbacks=[record])
    assert model.epochs_done == 2
    assert_same_weights(model.get_weights(), record.weights[-1])
    with pytest.raises(ValueError, match="no step was taken"):
        model.train_step(X, y)
    assert_same_weights(model.get_weights(), record.weights[-1])


# --- LearningRateScheduler ------------------------------------------------------------


def test_scheduler_of_the_epoch_sets_the_rate_before_each_epoch():
    model, X, y = small_setup()
    told = []

    def schedule(epoch):
        told.append(epoch)
        return 0.3 / (epoch + 1)

    scheduler = fb.LearningRateScheduler(schedule)
    first = model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[scheduler])
    second = model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[scheduler])
    expected = [0.3 / k for k in (1, 2, 3, 4)]
    assert told == [0, 1, 2, 3]  # counted over the model's training, as epochs_done
    assert first.history["lr"] + second.history["lr"] == pytest.approx(expected, rel=1e-15)
    assert_same_weights(model.get_weights(), trained_by_hand(expected))
    assert model.optimizer.lr == pytest.approx(0.075, rel=1e-15)  # the rate stays set


def test_scheduler_of_the_epoch_and_rate_receives_the_current_rate():
    model, X, y = small_setup()
    calls = []

    def halve(epoch, lr):
        calls.append((epoch, lr))
        return lr / 2 if epoch else lr

    hist = model.fit(
        X, y, epochs=3, verbose=0, callbacks=[fb.LearningRateScheduler(halve)], batch_size=16
    )
    assert calls == [(0, 0.2), (1, 0.2), (2, 0.1)]
    assert hist.history["lr"] == [0.2, 0.1, 0.05]


def test_scheduler_composes_with_the_optimisers_schedule():
    model, X, y = small_setup(fb.SGD(lr=0.2, schedule=fb.schedules.ExponentialDecay(0.5)))
    scheduler = fb.LearningRateScheduler(lambda epoch: 0.4)
    hist = model.fit(X, y, epochs=3, verbose=0, callbacks=[scheduler])
    assert hist.history["lr"] == pytest.approx([0.4, 0.2, 0.1], rel=1e-15)


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), 0, 0.0, -1e-3, "0.1", None, True, np.nan, [0.1]]
)
def test_scheduler_returning_a_bad_rate_stops_at_that_epoch_before_any_step(bad):
    model, X, y = small_setup()
    record = Recorder()
    scheduler = fb.LearningRateScheduler(lambda epoch: 0.1 if epoch < 2 else bad)
    with pytest.raises(ValueError, match=r"returned .* for epoch 2 .*finite number > 0"):
        model.fit(X, y, epochs=5, verbose=0, callbacks=[record, scheduler])
    assert model.epochs_done == 2 and model.optimizer.lr == 0.1
    assert_same_weights(model.get_weights(), record.weights[-1])


def test_scheduler_that_raises_leaves_the_model_as_at_that_epochs_start():
    model, X, y = small_setup()
    record = Recorder()

    def schedule(epoch):
        if epoch == 1:
            raise ZeroDivisionError("inside the schedule")
        return 0.1

    with pytest.raises(ZeroDivisionError, match="inside the schedule"):
        model.fit(X, y, epochs=3, verbose=0, callbacks=[record, fb.LearningRateScheduler(schedule)])
    assert model.epochs_done == 1
    assert_same_weights(model.get_weights(), record.weights[0])


def test_an_epoch_that_fails_takes_back_its_scheduled_rate_and_resumes_exactly(monkeypatch):
    def halve(epoch, lr):
        return lr / 2

    reference, X, y = small_setup()
    reference.fit(
        X, y, epochs=3, batch_size=8, verbose=0, callbacks=[fb.LearningRateScheduler(halve)]
    )

    model, _, _ = small_setup()
    scheduler = fb.LearningRateScheduler(halve)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0, callbacks=[scheduler])
    calls, real = [], model._backend.epoch

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the epoch
        return real(*args)

    monkeypatch.setattr(model._backend, "epoch", failing)
    monkeypatch.setattr(fb.model, "CALL_SECONDS", 0.0)  # one batch per engine call
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[scheduler])
    assert model.epochs_done == 1 and model.optimizer.lr == 0.1
    monkeypatch.undo()
    model.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[scheduler])
    assert model.optimizer.lr == reference.optimizer.lr == 0.025
    assert_same_weights(model.get_weights(), reference.get_weights())


def test_scheduler_refuses_what_is_not_a_schedule():
    with pytest.raises(TypeError, match="schedule must be a function"):
        fb.LearningRateScheduler(0.1)
    with pytest.raises(TypeError, match="takes no positional one"):
        fb.LearningRateScheduler(lambda: 0.1)
    with pytest.raises(TypeError, match="takes 3 required positional"):
        fb.LearningRateScheduler(lambda epoch, lr, extra: 0.1)
    # a default or *args still admits (epoch, lr)
    assert fb.LearningRateScheduler(lambda epoch, lr=0.1: lr)._arity == 2
    assert fb.LearningRateScheduler(lambda *args: 0.1)._arity == 2
    assert fb.LearningRateScheduler(lambda epoch, *, scale=1: 0.1)._arity == 1


def test_the_default_early_stopping_keeps_the_last_weights_as_keras():
    model, X, y, Xv, yv = overfitting_setup()
    stop = fb.EarlyStopping(monitor="val_loss", patience=2)
    assert stop.restore_best_weights is False
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
    assert stop.stopped_epoch is not None and len(hist.epoch) < 200
    assert_same_weights(model.get_weights(), record.weights[-1])
    assert stop.best == min(hist.history["val_loss"])  # the value itself, not a signed one


def test_a_reused_early_stopping_starts_afresh():
    model, X, y, Xv, yv = overfitting_setup()
    stop = fb.EarlyStopping(monitor="val_loss", patience=2)
    model.fit(X, y, epochs=100, batch_size=8, validation_data=(Xv, yv), verbose=0, callbacks=[stop])
    first_stop = stop.stopped_epoch
    hist = model.fit(
        X, y, epochs=3, batch_size=8, validation_data=(Xv, yv), verbose=0, callbacks=[stop]
    )
    assert first_stop is not None
    assert stop.best == min(hist.history["val_loss"])  # this fit's best only


def test_every_begun_callback_ends_even_when_another_fails_to_begin_or_end():
    model, X, y = small_setup()
    events = []

    class Note(Callback):
        def __init__(self, name, fail_begin=False, fail_end=False):
            self.name, self.fail_begin, self.fail_end = name, fail_begin, fail_end

        def on_train_begin(self, model):
            events.append(("begin", self.name))
            if self.fail_begin:
                raise OSError("cannot begin")

        def on_train_end(self, model):
            events.append(("end", self.name))
            if self.fail_end:
                raise RuntimeError(f"cannot end {self.name}")

    with pytest.raises(OSError, match="cannot begin"):
        model.fit(X, y, verbose=0, callbacks=[Note("a"), Note("b", fail_begin=True), Note("c")])
    assert events == [("begin", "a"), ("begin", "b"), ("end", "a")]
    assert model.epochs_done == 0
    events.clear()
    with pytest.raises(RuntimeError, match="cannot end a"):
        model.fit(X, y, verbose=0, callbacks=[Note("a", fail_end=True), Note("b", fail_end=True)])
    assert events == [("begin", "a"), ("begin", "b"), ("end", "a"), ("end", "b")]


def test_callbacks_in_one_process_have_no_communicator():
    model, X, y = small_setup()
    seen = []

    class Look(Callback):
        def on_train_begin(self, model):
            seen.append(self.comm)

    model.fit(X, y, verbose=0, callbacks=[Look()])
    assert seen == [None]


def test_the_command_line_asks_early_stopping_for_the_best_weights(monkeypatch, capsys):
    from fastbp import cli

    made = []

    class Spy(fb.EarlyStopping):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(fb, "EarlyStopping", Spy)
    assert cli.main(["train", "--epochs", "2", "--early-stopping", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert len(made) == 1 and made[0].restore_best_weights is True
