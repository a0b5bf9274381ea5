"""fit(diagnostics=True): readings per epoch, one warning per alarming kind."""

import warnings

import numpy as np
import pytest

import fastbp as fb
from fastbp import datasets
from fastbp.diagnostics import TrainingHealthWarning
from tests.helpers import dense_model


@pytest.fixture(scope="module")
def digits():
    X, y = datasets.load_digits()
    return datasets.standardize(X[:600]), y[:600]


def fit_logged(model, X, y, epochs=2):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = model.fit(X, y, epochs=epochs, verbose=0, diagnostics=True)
    return hist.history, [str(w.message) for w in caught if w.category is TrainingHealthWarning]


def test_zero_initialisation_is_flagged_once(backend, digits):
    X, y = digits
    model = fb.Sequential(
        [fb.Dense(16, activation="relu", input_dim=64, kernel_initializer="zeros"), fb.Dense(10)],
        loss="softmax_cross_entropy",
        seed=0,
        backend=backend,
    )
    history, messages = fit_logged(model, X, y, epochs=3)
    assert history["duplicate_units"] == [15, 15, 15]
    assert history["dead_relu_fraction"] == [1.0, 1.0, 1.0]
    assert history["grad_norm_1"] == [0.0, 0.0, 0.0]
    assert sum("did not break the symmetry" in m for m in messages) == 1
    assert sum("ReLU units are dead" in m for m in messages) == 1


def test_healthy_training_raises_no_alarm(backend, digits):
    X, y = digits
    layers = [(64, None), (32, "relu"), (16, "tanh"), (10, None)]
    model = dense_model(layers, backend=backend, optimizer=fb.SGD(lr=0.05))
    history, messages = fit_logged(model, X, y)
    assert messages == []
    assert history["duplicate_units"] == [0, 0]
    assert 0 <= history["dead_relu_fraction"][-1] < 0.5
    assert 0 <= history["saturated_fraction"][-1] < 0.5
    assert all(history[f"grad_norm_{i}"][-1] > 0 for i in (1, 2, 3))


def test_deep_sigmoid_stack_shows_vanishing_gradients(digits):
    X, y = digits
    layers = [fb.Dense(32, activation="sigmoid", input_dim=64)]
    layers += [fb.Dense(32, activation="sigmoid") for _ in range(9)] + [fb.Dense(10)]
    model = fb.Sequential(layers, loss="softmax_cross_entropy", seed=0)
    history, messages = fit_logged(model, X, y, epochs=1)
    assert history["grad_norm_1"][0] < 1e-4 * history["grad_norm_11"][0]
    assert any("vanishing" in m for m in messages)


def test_diagnostics_do_not_change_training(digits):
    X, y = digits
    weights = []
    for diagnostics in (False, True):
        model = fb.Sequential(
            [fb.Dense(16, activation="relu", input_dim=64), fb.Dense(10)],
            loss="softmax_cross_entropy",
            seed=1,
        )
        model.fit(X, y, epochs=2, verbose=0, diagnostics=diagnostics)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        assert np.array_equal(a, b)
