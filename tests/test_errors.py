"""Bad input gets a clear error and leaves the model as it was."""

import numpy as np
import pytest

import fastbp as fb


def classifier(backend="cython", **kwargs):
    return fb.Sequential(
        [fb.Dense(5, activation="relu", input_dim=4), fb.Dense(3)],
        loss="softmax_cross_entropy",
        seed=0,
        backend=backend,
        **kwargs,
    )


def data(n=10):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


@pytest.mark.parametrize(
    "make_X, make_y, match",
    [
        (lambda X, y: X[:, :3], lambda X, y: y, "3 features, but the model was built for 4"),
        (lambda X, y: X, lambda X, y: y[:-1], "9 rows but X has 10"),
        (lambda X, y: X[:, 0], lambda X, y: y, "must be 2-D"),
        (lambda X, y: X[None], lambda X, y: y, "must be 2-D"),
        (lambda X, y: X[:0], lambda X, y: y[:0], "empty"),
        (lambda X, y: np.where(X > 1, np.nan, X), lambda X, y: y, "NaN or infinite"),
        (lambda X, y: X, lambda X, y: y + 3, r"labels must be in \[0, 3\)"),
        (lambda X, y: X, lambda X, y: y - 1, r"labels must be in \[0, 3\)"),
        (lambda X, y: X, lambda X, y: y + 0.5, "non-integer class labels"),
        (lambda X, y: X, lambda X, y: np.full((10, 3), 0.5), "sum to 1"),
        (lambda X, y: X, lambda X, y: np.ones((10, 4)), "4 columns, but the model has 3 outputs"),
        (lambda X, y: X.astype(str), lambda X, y: y, "must hold numbers"),
    ],
)
def test_bad_data_is_rejected_and_model_unchanged(backend, make_X, make_y, match):
    model = classifier(backend)
    X, y = data()
    before = model.get_weights()
    rng_state = model._rng.bit_generator.state
    for call in (
        lambda: model.fit(make_X(X, y), make_y(X, y), epochs=1, verbose=0),
        lambda: model.train_step(make_X(X, y), make_y(X, y)),
        lambda: model.loss_and_gradients(make_X(X, y), make_y(X, y)),
        lambda: model.evaluate(make_X(X, y), make_y(X, y)),
    ):
        with pytest.raises((ValueError, TypeError), match=match):
            call()
    for a, b in zip(before, model.get_weights()):
        assert np.array_equal(a, b)
    assert model._rng.bit_generator.state == rng_state


def test_array_likes_are_accepted(backend):
    model = classifier(backend)
    X, y = data()
    as_lists = model.loss_and_gradients(X.tolist(), y.tolist())[0]
    fortran = model.loss_and_gradients(np.asfortranarray(X), y)[0]
    strided = model.loss_and_gradients(np.repeat(X, 2, axis=1)[:, ::2], y)[0]
    assert as_lists == fortran == strided
    assert model.predict(X > 0).shape == (10,)  # booleans become the model's dtype


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": -1}, "epochs must be an integer >= 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
        ({"validation_data": ([[1, 2, 3, 4]],)}, "validation_data must be a pair"),
    ],
)
def test_bad_fit_arguments(kwargs, match):
    model = classifier()
    X, y = data()
    with pytest.raises(ValueError, match=match):
        model.fit(X, y, verbose=0, **kwargs)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: fb.Dense(0), "units must be an integer >= 1"),
        (
            lambda: fb.Dense(3, activation="swishy"),
            "activation must be one of 'identity', .*; got 'swishy'; None means identity",
        ),
        (
            lambda: fb.Dense(3, kernel_initializer="ones"),
            "initializer must be one of 'zeros', .*; got 'ones'",
        ),
        (
            lambda: fb.Sequential([fb.Dense(2, input_dim=2)], loss="hinge"),
            "loss must be one of 'mse', .*; got 'hinge'",
        ),
        (
            lambda: fb.Sequential([fb.Dense(2, input_dim=2)], optimizer="lbfgs"),
            "optimizer must be one of 'sgd', .*; got 'lbfgs'",
        ),
        (
            lambda: fb.Sequential([fb.Dense(2, input_dim=2)], dtype="float16"),
            "float32', 'float64",
        ),
        (
            lambda: fb.Sequential([fb.Dense(2, input_dim=2)], backend="gpu"),
            "backend must be one of 'numpy', 'cython'; got 'gpu'",
        ),
        (lambda: fb.SGD(lr=0), "lr must be a number > 0; got 0"),
        (lambda: fb.SGD(lr=0.1, weight_decay=-1), "weight_decay must be a number >= 0; got -1"),
        (
            lambda: fb.Sequential(
                [fb.Dense(3, activation="relu", input_dim=2)], loss="softmax_cross_entropy"
            ),
            "must output logits",
        ),
        (
            lambda: fb.Sequential([fb.Dense(1, input_dim=2)], loss="binary_cross_entropy"),
            "activation='sigmoid'",
        ),
        (
            lambda: fb.Sequential([fb.Dense(1, input_dim=2)], loss="softmax_cross_entropy"),
            "at least 2",
        ),
    ],
)
def test_bad_configuration_is_rejected(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_set_weights_checks_count_shape_and_values(backend):
    model = classifier(backend)
    weights = model.get_weights()
    with pytest.raises(ValueError, match="expected 4 arrays"):
        model.set_weights(weights[:3])
    with pytest.raises(ValueError, match=r"weights\[2\] has shape \(3, 5\), expected \(5, 3\)"):
        model.set_weights(weights[:2] + [weights[2].T] + weights[3:])
    bad = [w.copy() for w in weights]
    bad[3][0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.set_weights(bad)
    for a, b in zip(weights, model.get_weights()):
        assert np.array_equal(a, b)


def test_backward_needs_a_forward_first():
    model = classifier()
    X, y = data()
    with pytest.raises(RuntimeError, match="forward pass first"):
        model.backward(np.ones((10, 3)))
    model.forward(X)
    with pytest.raises(ValueError, match="dout has 9 rows"):
        model.backward(np.ones((9, 3)))
    model.evaluate(X, y)  # inference keeps its own buffers: the forward pass stays
    model.predict(X)
    assert model.backward(np.ones((10, 3))).shape == (10, 4)
    model.loss_and_gradients(X, y)  # a training call in between invalidates it
    with pytest.raises(RuntimeError, match="forward pass first"):
        model.backward(np.ones((10, 3)))


def diverging(backend):
    """Targets of size 1e3 and a rate of 10: training blows up within a few epochs."""
    X, _ = data(50)
    y = X @ np.ones((4, 1)) * 1e3
    model = fb.Sequential(
        [fb.Dense(8, input_dim=4), fb.Dense(1)],
        loss="mse",
        optimizer=fb.SGD(lr=10.0),
        seed=0,
        backend=backend,
    )
    return X, y, model


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_stops_training_with_finite_weights(backend):
    X, y, model = diverging(backend)
    with pytest.raises(FloatingPointError, match="diverged"):
        model.fit(X, y, epochs=50, batch_size=10, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.filterwarnings("ignore:overflow|invalid value")
def test_divergence_can_stop_with_a_warning(backend):
    X, y, model = diverging(backend)
    with pytest.warns(RuntimeWarning, match="diverged in epoch"):
        hist = model.fit(X, y, epochs=50, batch_size=10, verbose=0, on_divergence="stop")
    assert 0 < len(hist.history.get("loss", [])) + 1 < 50
    assert all(np.isfinite(w).all() for w in model.get_weights())
    with pytest.raises(ValueError, match="on_divergence must be"):
        model.fit(X, y, on_divergence="ignore")


@pytest.mark.filterwarnings("ignore:overflow|invalid value")
@pytest.mark.parametrize("call", ["fit", "train_step"])
def test_optimiser_state_overflow_is_divergence(backend, call, tmp_path):
    """Unscaled features with Adam: the squared gradients overflow float32 while the
    weights stay finite (the steps become 0). That is divergence too: the state
    goes back, the error names the array, and the model still saves and loads."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)) * 1e12, rng.standard_normal((64, 3))
    model = fb.Sequential(
        [fb.Dense(8, activation="relu", input_dim=4), fb.Dense(3)],
        loss="mse",
        optimizer=fb.Adam(),
        seed=0,
        backend=backend,
    )
    model.fit(X[:4] * 1e-12, y[:4], verbose=0)
    before = [a.copy() for a in model._plan.training_state()]
    with pytest.raises(FloatingPointError, match="W1 optimiser state 2 stopped being finite"):
        model.fit(X, y, verbose=0) if call == "fit" else model.train_step(X, y)
    for a, b in zip(before, model._plan.training_state()):
        assert np.array_equal(a, b)
    model.save(tmp_path / "m.npz")
    loaded = fb.load(tmp_path / "m.npz")
    for a, b in zip(before, loaded._plan.training_state()):
        assert np.array_equal(a, b)


def test_predict_proba_needs_a_classifier():
    model = fb.Sequential([fb.Dense(2, input_dim=2)], loss="mse")
    with pytest.raises(ValueError, match="classification loss"):
        model.predict_proba(np.ones((1, 2)))
