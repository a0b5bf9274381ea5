"""A built model's public attributes: what may change (and then works exactly as a
fresh model would), and what is fixed (and then refused, the model unchanged)."""

import copy

import numpy as np
import pytest

import fastbp as fb
from tests.helpers import OPTIMIZER_CASES


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def classifier(backend, optimizer=None, dtype="float64", seed=0):
    return fb.Sequential(
        [fb.Dense(8, activation="tanh", input_dim=4), fb.PReLU(), fb.Dense(3)],
        loss="softmax_cross_entropy",
        optimizer=optimizer or fb.SGD(lr=0.1),
        dtype=dtype,
        seed=seed,
        backend=backend,
    )


def fresh_twin(model, optimizer):
    """A new model holding model's weights and a fresh optimiser."""
    twin = classifier(model.backend_name, optimizer, model.dtype.name, seed=1)
    twin.set_weights(model.get_weights())
    return twin


def assert_same_weights(a, b):
    for x, y in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(x, y)


OPTIMIZERS = OPTIMIZER_CASES


@pytest.mark.parametrize("before", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("after", sorted(OPTIMIZERS))
def test_assigning_an_optimizer_trains_like_a_fresh_one(backend, before, after):
    """The swapped-in optimiser gets state of its own layout, starting from zero
    (Adam's bias correction counted from the swap): bit-identical to a new model."""
    X, y = data()
    model = classifier(backend, OPTIMIZERS[before]())
    model.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    model.optimizer = OPTIMIZERS[after]()
    twin = fresh_twin(model, OPTIMIZERS[after]())
    for m in (model, twin):
        m.fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
        m.train_step(X[:10], y[:10])
    assert_same_weights(model, twin)


def test_assigning_the_same_optimizer_keeps_its_state(backend):
    X, y = data()
    model = classifier(backend, fb.Adam(lr=0.01))
    model.fit(X, y, epochs=1, verbose=0)
    state = [s.copy() for s in model._plan.optimizer_state()]
    model.optimizer = model.optimizer
    for a, b in zip(state, model._plan.optimizer_state()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("start, change", [(0.0, 0.9), (0.9, 0.0), (0.9, 0.5)])
def test_momentum_changed_in_place(backend, start, change):
    """Momentum to or from 0 changes what state SGD keeps: the next call re-plans it
    (a fresh velocity); 0.9 -> 0.5 keeps the velocity and only scales it."""
    X, y = data()
    model = classifier(backend, fb.SGD(lr=0.05, momentum=start))
    model.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    velocity = [s.copy() for s in model._plan.optimizer_state()[:-2]]
    model.optimizer.momentum = change
    twin = fresh_twin(model, fb.SGD(lr=0.05, momentum=change))
    if start and change:  # same layout: the velocity carries over
        for kept, live in zip(velocity, twin._plan.optimizer_state()):
            live[...] = kept
    for m in (model, twin):
        m.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert_same_weights(model, twin)


@pytest.mark.parametrize(
    "name, value",
    [
        ("lr", 0.2),
        ("beta1", 0.5),
        ("beta2", 0.9),
        ("eps", 1e-3),
        ("weight_decay", 0.01),
        ("clipnorm", 0.05),
    ],
)
def test_hyper_parameters_take_effect_at_the_next_call(backend, name, value):
    X, y = data()
    model = classifier(backend, fb.Adam(lr=0.01))
    model.fit(X, y, epochs=1, shuffle=False, verbose=0)
    config = {k: v for k, v in model.optimizer.get_config().items() if k != "name"}
    changed, unchanged = (
        fresh_twin(model, fb.Adam(**{**config, **extra})) for extra in ({name: value}, {})
    )
    for twin in (changed, unchanged):  # same weights, moments, step count and origin
        for live, kept in zip(twin._plan.training_state(), model._plan.training_state()):
            live[...] = kept
    setattr(model.optimizer, name, value)
    for m in (model, changed, unchanged):
        m.fit(X, y, epochs=1, shuffle=False, verbose=0)
    assert_same_weights(model, changed)
    assert not all(
        np.array_equal(a, b) for a, b in zip(model.get_weights(), unchanged.get_weights())
    )


@pytest.mark.parametrize(
    "opt, name, bad",
    [
        (fb.SGD(), "lr", -1),
        (fb.SGD(), "lr", "0.1"),
        (fb.SGD(), "lr", float("nan")),
        (fb.SGD(), "lr", True),
        (fb.SGD(), "momentum", 1.0),
        (fb.SGD(), "nesterov", 2),
        (fb.SGD(), "nesterov", True),
        (fb.SGD(momentum=0.9, nesterov=True), "momentum", 0),
        (fb.Adam(), "beta1", 1.0),
        (fb.Adam(), "beta2", -0.1),
        (fb.Adam(), "eps", 0),
        (fb.RMSProp(), "rho", 1.5),
        (fb.Adam(), "clipnorm", 0),
        (fb.Adam(), "schedule", "nope"),
        (fb.Adagrad(), "weight_decay", -1),
    ],
)
def test_bad_hyper_parameters_are_refused_when_set(opt, name, bad):
    before = getattr(opt, name)
    with pytest.raises((ValueError, TypeError), match=name):
        setattr(opt, name, bad)
    assert getattr(opt, name) == before


def test_numpy_scalars_are_accepted_as_hyper_parameters():
    opt = fb.SGD(lr=np.float32(0.5), momentum=np.float64(0.25))
    assert opt.lr == 0.5 and opt.momentum == 0.25 and type(opt.lr) is float


def test_dtype_is_fixed_once_built(backend):
    X, y = data()
    model = classifier(backend)
    before = model.predict_proba(X)
    with pytest.raises(AttributeError, match="dtype is fixed once the model is built"):
        model.dtype = np.dtype("float32")
    model.dtype = "float64"  # the same dtype is fine
    assert model.dtype == np.float64
    assert np.array_equal(model.predict_proba(X), before)
    unbuilt = fb.Sequential([fb.Dense(3)], loss="softmax_cross_entropy", backend=backend)
    unbuilt.dtype = np.float64
    unbuilt.fit(X, y, verbose=0)
    assert unbuilt.get_weights()[0].dtype == np.float64
    with pytest.raises(ValueError, match="dtype must be"):
        unbuilt.dtype = "int8"


def test_layers_are_read_only(backend):
    model = classifier(backend)
    n = len(model.layers)
    for change in (
        lambda: model.layers.append(fb.Dense(2)),
        lambda: model.layers.insert(0, fb.Dense(2)),
        lambda: model.layers.pop(),
        lambda: model.layers.__setitem__(0, fb.Dense(2)),
        lambda: model.layers.__delitem__(0),
    ):
        with pytest.raises(TypeError, match=r"model.layers cannot be changed"):
            change()
    with pytest.raises(AttributeError, match=r"model.layers cannot be replaced"):
        model.layers = [fb.Dense(3)]
    assert len(model.layers) == n and isinstance(model.layers[0], fb.Dense)


@pytest.mark.parametrize(
    "layer_index, name, value",
    [
        (0, "units", 5),
        (0, "activation", "relu"),
        (0, "input_dim", 7),
        (1, "initial_slope", 0.1),
        (0, "kernel_initializer", "zeros"),
    ],
)
def test_layer_configuration_is_fixed_once_built(backend, layer_index, name, value):
    X, _ = data()
    model = classifier(backend)
    before = model.predict_proba(X)
    layer = model.layers[layer_index]
    with pytest.raises(AttributeError, match=f"{name} is fixed once the model is built"):
        setattr(layer, name, value)
    assert np.array_equal(model.predict_proba(X), before)


@pytest.mark.parametrize("layer", [fb.Dropout(0.2), fb.Maxout(3, pieces=2)])
def test_dropout_and_maxout_configuration_is_fixed(layer):
    model = fb.Sequential([fb.Dense(6, input_dim=4), layer, fb.Dense(2)], loss="mse")
    name = "rate" if isinstance(layer, fb.Dropout) else "pieces"
    before = getattr(layer, name)
    with pytest.raises(AttributeError, match="is fixed once the model is built"):
        setattr(layer, name, 0.5 if name == "rate" else 3)
    assert getattr(model.layers[1], name) == before


def test_assigning_a_layer_parameter_copies_into_the_live_weights(backend):
    X, _ = data()
    model = classifier(backend)
    dense, prelu = model.layers[0], model.layers[1]
    live = dense.W
    dense.W = np.ones((4, 8))  # float64 array, copied
    prelu.alpha = [0.5] * 8  # a list works too
    assert dense.W is live and np.array_equal(model.get_weights()[0], np.ones((4, 8)))
    assert np.array_equal(model.get_weights()[2], np.full(8, 0.5))
    twin = fresh_twin(model, fb.SGD(lr=0.1))
    assert np.array_equal(model.predict_proba(X), twin.predict_proba(X))


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.ones((8, 4)), ValueError, r"Dense.W has shape \(8, 4\), expected \(4, 8\)"),
        (np.full((4, 8), np.nan), ValueError, "NaN or infinite"),
        (np.full((4, 8), 1e39), ValueError, "overflow float32"),
        (np.full((4, 8), "a"), TypeError, "must be numeric"),
    ],
)
def test_bad_layer_parameters_are_refused(backend, bad, error, match):
    model = classifier(backend, dtype="float32")
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.layers[0].W = bad
    assert_same_weights_list(before, model.get_weights())


def assert_same_weights_list(a, b):
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_loss_may_change_to_one_the_last_layer_fits(backend):
    X, y = data()
    model = classifier(backend)
    model.fit(X, y, verbose=0)
    model.loss = "kl_divergence"
    probabilities = np.eye(3)[y]
    assert np.isfinite(model.evaluate(X, probabilities)["loss"])
    with pytest.raises(ValueError, match="does not fit the last layer"):
        model.loss = "binary_cross_entropy"
    with pytest.raises(ValueError, match=r"loss must be one of .*; got .hinge."):
        model.loss = "hinge"
    assert model.loss.name == "kl_divergence"
    model.loss = "mse"
    assert model.fit(X, probabilities, verbose=0).history["loss"]


def test_other_fixed_and_checked_attributes(backend):
    model = classifier(backend)
    with pytest.raises(AttributeError, match="backend_name is fixed"):
        model.backend_name = "numpy"
    with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
        model.n_threads = 0
    with pytest.raises(ValueError, match="epochs_done must be an integer >= 0"):
        model.epochs_done = -1
    with pytest.raises(ValueError, match="epochs_done must be an integer >= 0"):
        model.epochs_done = 1.5
    model.n_threads, model.epochs_done = 1, 3
    assert model.backend_name == backend and model.n_threads == 1 and model.epochs_done == 3


def test_a_layer_belongs_to_one_model(backend):
    first = classifier(backend)
    with pytest.raises(ValueError, match="already belongs to another model"):
        fb.Sequential([first.layers[0], fb.Dense(3)], backend=backend)
    with pytest.raises(ValueError, match="already belongs to another model"):
        fb.Sequential(backend=backend).add(first.layers[2])
    copied = copy.deepcopy(first.layers[0])
    second = fb.Sequential([copied, fb.Dense(3)], loss="softmax_cross_entropy", backend=backend)
    second.fit(*data(), verbose=0)
    assert np.array_equal(first.layers[0].W, first.get_weights()[0])
    assert not np.shares_memory(second.get_weights()[0], first.layers[0].W)


def test_a_layer_of_a_model_that_failed_to_build_may_be_reused(backend):
    layer = fb.Dense(4, input_dim=4)
    with pytest.raises(ValueError, match="does not fit the last layer"):
        fb.Sequential([layer], loss="binary_cross_entropy", backend=backend)
    model = fb.Sequential([layer], loss="mse", backend=backend)
    assert model.built


def test_training_refuses_weights_made_non_finite_in_place(backend):
    X, y = data()
    model = classifier(backend)
    model.layers[2].W[0, 0] = np.nan  # in-place writes bypass every check
    before = model._checkpoint()
    for call in (lambda: model.fit(X, y, verbose=0), lambda: model.train_step(X, y)):
        with pytest.raises(ValueError, match="W3 holds NaN or infinite values"):
            call()
    assert model.epochs_done == 0 and model._rng.bit_generator.state == before[1]


def test_a_swapped_optimizer_saves_copies_and_resumes_exactly(backend, tmp_path):
    """The swap's origin (where Adam's bias correction counts from) travels with
    the model through save/load and pickling."""
    X, y = data()
    model = classifier(backend, fb.SGD(lr=0.05))
    model.fit(X, y, epochs=2, verbose=0)
    model.optimizer = fb.Adam(lr=0.01)
    model.fit(X, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.npz")
    copies = [fb.load(tmp_path / "m.npz"), copy.deepcopy(model)]
    for m in [model] + copies:
        m.fit(X, y, epochs=2, verbose=0)
    for other in copies:
        assert_same_weights(model, other)
        assert other._plan.optimizer_origin[0] == model._plan.optimizer_origin[0] > 0


def test_save_refuses_what_load_would_refuse(backend, tmp_path):
    model = classifier(backend)
    model.layers[0].b[0] = np.inf
    with pytest.raises(ValueError, match="b1 holds NaN or infinite values, so it would not load"):
        model.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="would not load"):
        copy.deepcopy(model)
    assert not (tmp_path / "m.npz").exists()


def test_review_cases_unbuilt_save_and_swap_between_forward_and_backward(backend, tmp_path):
    """save() of a model that builds on first use does not deadlock; an optimiser
    swap or a weight change ends the forward/backward pairing."""
    unbuilt = fb.Sequential(backend=backend)
    unbuilt.add(fb.Dense(3, input_dim=4))
    unbuilt.save(tmp_path / "u.npz")
    assert fb.load(tmp_path / "u.npz").built
    X, _ = data()
    model = classifier(backend)
    for change in (
        lambda: setattr(model, "optimizer", fb.Adam()),
        lambda: model.set_weights(model.get_weights()),
        lambda: setattr(model.layers[0], "W", np.ones((4, 8))),
    ):
        out = model.forward(X)
        change()
        with pytest.raises(RuntimeError, match="forward pass first"):
            model.backward(np.ones_like(out))


def test_in_place_layout_change_then_save_loads(backend, tmp_path):
    X, y = data()
    model = classifier(backend, fb.SGD(lr=0.1))
    model.fit(X, y, verbose=0)
    model.optimizer.momentum = 0.9
    model.save(tmp_path / "m.npz")
    loaded = fb.load(tmp_path / "m.npz")
    copied = copy.deepcopy(model)
    for m in (model, loaded, copied):
        m.fit(X, y, verbose=0)
    assert_same_weights(model, loaded)
    assert_same_weights(model, copied)
