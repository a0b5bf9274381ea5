"""Shared helpers: centred finite differences, relative error, backend lists."""

import numpy as np
import pytest

import fastbp as fb

BACKENDS = ["numpy", "cython"]
DTYPES = [np.float32, np.float64]
# docs/design.md §3: Cython against NumPy on the same plan.
BACKEND_RTOL = {np.float32: 1e-5, np.float64: 1e-12}
FD_RTOL = 1e-7


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


def rel_error(actual, expected):
    """max |actual - expected| / max(|actual|, |expected|), 0 when both are 0."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(np.abs(actual).max(initial=0.0), np.abs(expected).max(initial=0.0))
    return 0.0 if scale == 0 else float(np.abs(actual - expected).max() / scale)


def numerical_gradient(f, x, eps=1e-6):
    """Centred differences of the scalar f() with respect to every entry of x,
    perturbed in place (x is restored)."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        plus = f()
        flat[i] = saved - eps
        minus = f()
        flat[i] = saved
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


def model_numerical_gradients(model, X, y, eps=1e-6):
    """Centred differences of model.loss_and_gradients' loss for every parameter."""
    weights = model.get_weights()
    grads = []
    for w in weights:

        def loss():
            model.set_weights(weights)
            return model.loss_and_gradients(X, y)[0]

        grads.append(numerical_gradient(loss, w, eps))
    model.set_weights(weights)
    return grads


def make_model(layers, loss, backend, dtype=np.float64, seed=0, lr=0.1, weight_decay=0.0):
    """Sequential from (units, activation) pairs; the first pair also gives input_dim."""
    (d_in, _), rest = layers[0], layers[1:]
    dense = [
        fb.Dense(units, activation=act, input_dim=d_in if i == 0 else None)
        for i, (units, act) in enumerate(rest)
    ]
    return fb.Sequential(
        dense,
        loss=loss,
        optimizer=fb.SGD(lr=lr, weight_decay=weight_decay),
        dtype=np.dtype(dtype).name,
        seed=seed,
        backend=backend,
    )
