"""Initialisers: their scales, the defaults, and symmetry (breaking it or not)."""

import numpy as np
import pytest

import fastbp as fb
from fastbp import initializers


@pytest.mark.parametrize(
    "name, std",
    [
        ("small_normal", lambda i, o: 0.01),
        ("glorot_uniform", lambda i, o: np.sqrt(6 / (i + o)) / np.sqrt(3)),
        ("glorot_normal", lambda i, o: np.sqrt(2 / (i + o))),
        ("he_uniform", lambda i, o: np.sqrt(6 / i) / np.sqrt(3)),
        ("he_normal", lambda i, o: np.sqrt(2 / i)),
        ("lecun_normal", lambda i, o: np.sqrt(1 / i)),
    ],
)
def test_random_initializers_have_their_scale(name, std):
    W = initializers.get(name)(np.random.default_rng(0), 400, 300)
    assert W.shape == (400, 300)
    assert abs(W.mean()) < 0.05 * std(400, 300)
    assert W.std() == pytest.approx(std(400, 300), rel=0.02)


def test_constant_and_zeros():
    rng = np.random.default_rng(0)
    assert (initializers.get("zeros")(rng, 3, 2) == 0).all()
    assert (initializers.Constant(0.5)(rng, 3, 2) == 0.5).all()
    with pytest.raises(ValueError, match="value must be a number; got nan"):
        initializers.Constant(float("nan"))


def test_defaults_follow_the_activation():
    assert fb.Dense(3, activation="relu").kernel_initializer == "he_normal"
    assert fb.Dense(3, activation="leaky_relu").kernel_initializer == "he_normal"
    assert fb.Dense(3, activation="tanh").kernel_initializer == "glorot_uniform"
    assert fb.Dense(3).kernel_initializer == "glorot_uniform"


@pytest.mark.parametrize(
    "init, identical",
    [("zeros", True), (initializers.Constant(0.3), True), ("small_normal", False)],
)
def test_symmetry_is_kept_by_constants_and_broken_by_random_weights(backend, init, identical):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((50, 4)), rng.integers(0, 3, 50)
    model = fb.Sequential(
        [
            fb.Dense(6, activation="tanh", input_dim=4, kernel_initializer=init),
            fb.Dense(3, kernel_initializer=init),
        ],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.5),
        seed=0,
        backend=backend,
    )
    model.fit(X, y, epochs=3, batch_size=10, verbose=0)
    W1 = model.get_weights()[0]
    assert np.allclose(W1, W1[:, :1]) == identical


def test_unknown_initializer():
    with pytest.raises(
        ValueError,
        match=r"initializer must be one of 'zeros', .*; got 'ones'; "
        r"or pass fastbp\.initializers\.Constant",
    ):
        fb.Dense(3, kernel_initializer="ones")
