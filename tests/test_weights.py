"""sample_weight and class_weight: weighted losses and gradients, on both backends."""

import numpy as np
import pytest

import fastbp as fb
from tests.helpers import BACKEND_RTOL, FD_RTOL, numerical_gradient, rel_error


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def classifier(backend, dtype="float64", loss="softmax_cross_entropy", **kwargs):
    return fb.Sequential(
        [fb.Dense(6, activation="tanh", input_dim=4), fb.Dense(3)],
        loss=loss,
        optimizer=fb.SGD(lr=0.1, **kwargs),
        dtype=dtype,
        seed=0,
        backend=backend,
    )


def test_integer_weights_equal_repeated_rows(backend):
    X, y = data()
    w = np.random.default_rng(1).integers(0, 4, len(y))
    model = classifier(backend)
    loss_w, grads_w = model.loss_and_gradients(X, y, sample_weight=w)
    rows = np.repeat(np.arange(len(y)), w)
    loss_r, grads_r = model.loss_and_gradients(X[rows], y[rows])
    # 1/N sum w_i l_i over N rows against the plain mean over sum(w) rows
    scale = len(rows) / len(y)
    assert loss_w == pytest.approx(loss_r * scale, rel=1e-12)
    for a, b in zip(grads_w, grads_r):
        np.testing.assert_allclose(a, b * scale, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    "loss, out",
    [
        ("softmax_cross_entropy", None),
        ("kl_divergence", None),
        ("mse", "tanh"),
        ("binary_cross_entropy", "sigmoid"),
    ],
)
def test_weighted_gradients_match_finite_differences(backend, loss, out):
    X, labels = data(10)
    y = {
        "softmax_cross_entropy": labels,
        "kl_divergence": np.eye(3)[labels] * 0.7 + 0.1,
        "mse": np.sin(X[:, :3]),
        "binary_cross_entropy": np.eye(3)[labels],
    }[loss]
    model = fb.Sequential(
        [fb.Dense(5, activation="tanh", input_dim=4), fb.Dense(3, activation=out)],
        loss=loss,
        dtype="float64",
        seed=0,
        backend=backend,
    )
    w = np.random.default_rng(2).random(10) * 3
    _, grads = model.loss_and_gradients(X, y, sample_weight=w)
    W = model.get_weights()

    def loss_of():
        model.set_weights(W)
        return model.loss_and_gradients(X, y, sample_weight=w)[0]

    for k in (0, 3):
        assert rel_error(grads[k], numerical_gradient(loss_of, W[k])) < FD_RTOL


def test_backends_agree_with_weights(dtype):
    X, y = data(80)
    w = np.random.default_rng(3).random(80)
    results = []
    for backend in ("numpy", "cython"):
        model = classifier(backend, np.dtype(dtype).name, momentum=0.5)
        model.fit(X, y, epochs=2, batch_size=16, sample_weight=w, class_weight={0: 2.0}, verbose=0)
        results.append(
            (
                np.concatenate([p.ravel() for p in model.get_weights()]),
                model.evaluate(X, y, sample_weight=w)["loss"],
            )
        )
    assert rel_error(results[1][0], results[0][0]) <= 10 * BACKEND_RTOL[dtype]
    assert rel_error(results[1][1], results[0][1]) <= 10 * BACKEND_RTOL[dtype]


def test_class_weight_is_sample_weight_by_label(backend):
    X, y = data(40)
    runs = []
    for kwargs in (
        {"class_weight": {1: 3.0, 2: 0.5}},
        {"sample_weight": np.array([1.0, 3.0, 0.5])[y]},
    ):
        model = classifier(backend)
        model.fit(X, y, epochs=2, batch_size=8, verbose=0, **kwargs)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def test_unit_weights_change_nothing(backend):
    X, y = data(40)
    runs = []
    for w in (None, np.ones(40)):
        model = classifier(backend)
        model.fit(X, y, epochs=2, batch_size=8, verbose=0, sample_weight=w)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sample_weight": np.ones(5)}, "must be 24 numbers"),
        ({"sample_weight": -np.ones(24)}, "finite and >= 0"),
        ({"sample_weight": np.full(24, np.nan)}, "finite and >= 0"),
        ({"class_weight": [1, 2]}, "must be a dict"),
        (
            {"class_weight": {-1: 2.0}},
            "class_weight key \\(a class index\\) must be an integer >= 0; got -1",
        ),
        ({"class_weight": {0: -2.0}}, r"class_weight\[0\] must be a number >= 0; got -2.0"),
    ],
)
def test_bad_weights(kwargs, match):
    X, y = data()
    model = classifier("cython")
    before = model.get_weights()
    with pytest.raises((ValueError, TypeError), match=match):
        model.fit(X, y, verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        assert np.array_equal(a, b)


def test_class_weight_needs_a_classifier():
    X, _ = data()
    model = fb.Sequential([fb.Dense(2, input_dim=4)], loss="mse")
    with pytest.raises(ValueError, match="class_weight needs a classification loss"):
        model.fit(X, X[:, :2], verbose=0, class_weight={0: 1.0})
