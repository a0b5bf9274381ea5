"""fb.gradcheck: passes on correct gradients, fails on wrong ones, leaves the model alone."""

import numpy as np
import pytest

import fastbp as fb
from fastbp.backends import numpy_backend
from tests.helpers import dense_model


def model_and_data(backend="cython", dtype="float32"):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
    layers = [(5, None), (6, "tanh"), (4, "sigmoid"), (3, None)]
    model = dense_model(
        layers, backend=backend, seed=1, optimizer=fb.SGD(weight_decay=0.01), dtype=dtype
    )
    return model, X, y


def test_gradcheck_passes_and_leaves_the_model_unchanged(backend):
    model, X, y = model_and_data(backend)
    before = model.get_weights()
    state = model._rng.bit_generator.state
    result = fb.gradcheck(model, X, y)
    assert result.passed and result.max_rel_error < 1e-7
    assert [(c.layer, c.name) for c in result.checks] == [
        (1, "W"),
        (1, "b"),
        (2, "W"),
        (2, "b"),
        (3, "W"),
        (3, "b"),
    ]
    assert "passed" in str(result)
    for a, b in zip(before, model.get_weights()):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    assert model._rng.bit_generator.state == state


def test_gradcheck_catches_a_wrong_derivative(monkeypatch):
    f, _ = numpy_backend.ACTIVATIONS[2]
    monkeypatch.setitem(numpy_backend.ACTIVATIONS, 2, (f, lambda Z, A, p: 1 - A))  # not tanh'
    model, X, y = model_and_data("numpy")
    result = fb.gradcheck(model, X, y)
    assert not result.passed
    assert [c.name for c in result.checks if c.max_rel_error > result.threshold][:2] == ["W", "b"]
    assert "FAIL" in str(result)


def test_gradcheck_can_sample_entries():
    model, X, y = model_and_data()
    result = fb.gradcheck(model, X, y, max_checks_per_array=3)
    assert [c.n_checked for c in result.checks] == [3, 3, 3, 3, 3, 3]
    assert result.passed


def test_gradcheck_rejects_bad_arguments():
    model, X, y = model_and_data()
    with pytest.raises(ValueError, match="eps"):
        fb.gradcheck(model, X, y, eps=0)
    with pytest.raises(ValueError, match="features"):
        fb.gradcheck(model, X[:, :4], y)
