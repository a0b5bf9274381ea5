"""Training end to end: XOR, a real-looking problem, determinism, GD modes, the API."""

import numpy as np
import pytest

import fastbp as fb
from tests.helpers import dense_model

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0])


def blobs(n_per_class=200, n_classes=3, n_features=10, seed=0):
    """Overlapping Gaussian clusters, standardised: a small but real-looking problem."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, n_features)) * 2
    X = np.concatenate([c + rng.standard_normal((n_per_class, n_features)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def test_two_layer_relu_network_learns_xor(backend):
    model = dense_model(
        [(2, None), (8, "relu"), (2, None)], backend=backend, optimizer=fb.SGD(lr=0.3)
    )
    model.fit(XOR_X, XOR_Y, epochs=500, batch_size=None, verbose=0)
    assert (model.predict(XOR_X) == XOR_Y).all()
    assert model.evaluate(XOR_X, XOR_Y)["accuracy"] == 1.0


def test_loss_decreases_on_blobs(backend, dtype):
    X, y = blobs()
    model = dense_model(
        [(10, None), (32, "relu"), (3, None)],
        backend=backend,
        seed=1,
        optimizer=fb.SGD(lr=0.05),
        dtype=np.dtype(dtype).name,
    )
    before = model.evaluate(X, y)["loss"]
    hist = model.fit(X, y, epochs=10, batch_size=32, validation_data=(X[:100], y[:100]), verbose=0)
    losses = hist.history["loss"]
    assert set(hist.history) == {"loss", "accuracy", "lr", "val_loss", "val_accuracy"}
    assert len(losses) == 10 and losses[-1] < 0.5 * losses[0] < before
    assert hist.history["accuracy"][-1] > 0.9
    assert model.get_weights()[0].dtype == dtype


def test_binary_cross_entropy_and_mse_train(backend):
    X, y = blobs(n_classes=2)
    clf = dense_model(
        [(10, None), (16, "tanh"), (1, "sigmoid")],
        "binary_cross_entropy",
        backend,
        seed=2,
        optimizer=fb.SGD(lr=0.1),
    )
    clf.fit(X, y, epochs=5, verbose=0)
    assert clf.evaluate(X, y)["accuracy"] > 0.9
    assert clf.predict(X).shape == (len(X),) and clf.predict_proba(X).shape == (len(X), 1)

    target = np.sin(X[:, :2])
    reg = dense_model(
        [(10, None), (32, "tanh"), (2, None)], "mse", backend, seed=3, optimizer=fb.SGD(lr=0.05)
    )
    first = reg.evaluate(X, target)["loss"]
    reg.fit(X, target, epochs=20, verbose=0)
    assert reg.evaluate(X, target)["loss"] < 0.5 * first
    assert "accuracy" not in reg.evaluate(X, target)


def test_same_seed_gives_bit_identical_weights(backend):
    X, y = blobs(n_per_class=50)
    runs = []
    for _ in range(2):
        model = dense_model([(10, None), (16, "relu"), (3, None)], backend=backend, seed=42)
        model.fit(X, y, epochs=3, batch_size=16, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("batch_size", [None, 1, 7, 10_000])
def test_gradient_descent_modes(backend, batch_size):
    """None: full batch (one step per epoch); 1: stochastic; k: mini-batch;
    larger than the data: clamped to the data."""
    X, y = blobs(n_per_class=20, n_features=4)
    model, replay = (
        small_model(backend, "tanh", units=8, optimizer=fb.SGD(lr=0.05)) for _ in range(2)
    )
    start = model.get_weights()
    model.fit(X, y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    # replay the same steps one train_step at a time
    replay.set_weights(start)
    step = len(X) if batch_size is None else min(batch_size, len(X))
    for i in range(0, len(X), step):
        replay.train_step(X[i : i + step], y[i : i + step])
    for a, b in zip(model.get_weights(), replay.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def small_model(backend, activation, units=5, **kwargs):
    """Dense(units, activation) then Dense(3) logits on 4 features, softmax cross-entropy."""
    return dense_model([(4, None), (units, activation), (3, None)], backend=backend, **kwargs)


def test_train_step_returns_the_loss_before_the_step(backend):
    X, y = blobs(n_per_class=10, n_features=4)
    model = small_model(backend, "relu", optimizer=fb.SGD(lr=0.1, weight_decay=0.01))
    expected = model.evaluate(X, y)["loss"]
    assert model.train_step(X, y) == pytest.approx(expected, rel=1e-5)
    assert model.evaluate(X, y)["loss"] < expected


def test_sgd_step_is_w_minus_lr_times_gradient(backend):
    X, y = blobs(n_per_class=10, n_features=4)
    model = small_model(
        backend, "sigmoid", optimizer=fb.SGD(lr=0.2, weight_decay=0.1), dtype="float64"
    )
    before = model.get_weights()
    _, grads = model.loss_and_gradients(X, y)
    model.train_step(X, y)
    for w0, g, w1 in zip(before, grads, model.get_weights()):
        np.testing.assert_allclose(w1, w0 - 0.2 * g, rtol=1e-12, atol=1e-14)


def test_probability_targets_equal_one_hot_labels(backend):
    X, y = blobs(n_per_class=10, n_features=4)
    model = small_model(backend, "relu", dtype="float64")
    loss_labels, grads_labels = model.loss_and_gradients(X, y)
    loss_onehot, grads_onehot = model.loss_and_gradients(X, np.eye(3)[y])
    assert loss_labels == pytest.approx(loss_onehot, rel=1e-12)
    for a, b in zip(grads_labels, grads_onehot):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_predict_proba_rows_are_probabilities(backend):
    X, _y = blobs(n_per_class=10, n_features=4)
    model = small_model(backend, "relu")
    P = model.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    assert (model.predict(X) == P.argmax(axis=1)).all()
    logits = model.forward(X)
    assert (logits.argmax(axis=1) == model.predict(X)).all()


def test_model_built_from_first_data_and_weights_roundtrip(backend):
    X, y = blobs(n_per_class=10, n_features=6)
    model = dense_model([(None, None), (4, "relu"), (3, None)], backend=backend)
    assert not model.built
    model.fit(X, y, epochs=1, verbose=0)
    assert model.input_dim == 6
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(6, 4), (4,), (4, 3), (3,)]
    other = dense_model([(6, None), (4, "relu"), (3, None)], backend=backend, seed=99)
    other.set_weights(weights)
    assert np.array_equal(other.predict_proba(X), model.predict_proba(X))


def test_verbose_fit_prints_one_line_per_epoch(backend, capsys):
    X, y = blobs(n_per_class=10, n_features=4)
    model = small_model(backend, "relu")
    model.fit(X, y, epochs=2, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2") and "loss" in lines[1]
    model.fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_does_not_change_training(backend):
    X, y = blobs(n_per_class=100, n_features=10)
    weights = []
    for verbose in (0, 1):
        model = dense_model([(10, None), (8, "relu"), (3, None)], backend=backend)
        model.fit(X, y, epochs=2, batch_size=7, verbose=verbose)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        assert np.array_equal(a, b)
