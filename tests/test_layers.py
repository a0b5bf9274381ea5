"""The layer types beyond Dense: Maxout, PReLU (and Dense(activation="prelu")),
standalone Activation layers, softmax as an activation, Dropout anywhere but last.

The architectures using them are in tests/helpers.ARCHS, checked by the model-level
contract of tests/test_gradients.py; here: what each layer computes, how the
spellings agree, saving, memory, summaries and configuration errors.
"""

import numpy as np
import pytest

import fastbp as fb
from fastbp import losses
from tests.helpers import ARCHS, NO_ARRAY, arch_data, build, peak_growth, rel_error


def test_a_softmax_output_trains_exactly_like_logits(backend):
    """Dense(k, "softmax") with the cross-entropy: the loss works from the logits
    under the softmax, so loss, gradients and training equal those of Dense(k)
    giving logits; forward and predict_proba give the probabilities."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    models = [
        fb.Sequential(
            [fb.Dense(5, "tanh", input_dim=4), fb.Dense(3, activation=act)],
            loss="softmax_cross_entropy",
            dtype="float64",
            seed=0,
            backend=backend,
        )
        for act in (None, "softmax")
    ]
    logits, probs = models
    assert all(
        rel_error(a, b) == 0
        for a, b in zip(logits.loss_and_gradients(X, y)[1], probs.loss_and_gradients(X, y)[1])
    )
    for m in models:
        m.fit(X, y, epochs=3, batch_size=10, verbose=0)
    for a, b in zip(logits.get_weights(), probs.get_weights()):
        assert rel_error(a, b) <= 1e-14
    out = probs.forward(X)
    assert rel_error(out.sum(axis=1), np.ones(30)) <= 1e-14
    assert rel_error(probs.predict_proba(X), logits.predict_proba(X)) <= 1e-14
    assert rel_error(out, probs.predict_proba(X)) <= 1e-14
    assert np.array_equal(probs.predict(X), logits.predict(X))
    assert probs.evaluate(X, y) == pytest.approx(logits.evaluate(X, y), rel=1e-14)


def test_activation_layers_equal_fused_activations(backend):
    """Dense(k) + Activation(f) computes and learns what Dense(k, f) does."""
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((24, 3)), rng.standard_normal((24, 2))
    fused = fb.Sequential(
        [fb.Dense(6, "elu", input_dim=3), fb.Dense(2, "tanh")],
        loss="mse",
        dtype="float64",
        seed=0,
        backend=backend,
    )
    split = fb.Sequential(
        [fb.Dense(6, input_dim=3), fb.Activation("elu"), fb.Dense(2), fb.Activation("tanh")],
        loss="mse",
        dtype="float64",
        seed=0,
        backend=backend,
    )
    split.set_weights(fused.get_weights())
    for m in (fused, split):
        m.fit(X, y, epochs=3, batch_size=6, verbose=0)
    for a, b in zip(fused.get_weights(), split.get_weights()):
        assert rel_error(a, b) <= 1e-13
    assert rel_error(fused.predict(X), split.predict(X)) <= 1e-13


def test_prelu_slopes_are_learnt_and_not_decayed(backend):
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((64, 3)), rng.standard_normal((64, 1))
    model = fb.Sequential(
        [fb.Dense(8, activation="prelu", input_dim=3), fb.Dense(1)],
        loss="mse",
        optimizer=fb.SGD(lr=0.05),
        dtype="float64",
        seed=0,
        backend=backend,
    )
    assert model.weight_names() == ["W1", "b1", "alpha1", "W2", "b2"]
    assert np.array_equal(model.get_weights()[2], np.full(8, 0.25))
    model.fit(X, y, epochs=3, verbose=0)
    assert not np.allclose(model.get_weights()[2], 0.25)
    decayed = fb.Sequential.from_config(
        dict(model.get_config(), optimizer=fb.SGD(lr=0.05, weight_decay=0.5).get_config()),
        backend=backend,
    )
    decayed.set_weights(model.get_weights())
    plain_grads = model.loss_and_gradients(X, y)[1]
    decayed_grads = decayed.loss_and_gradients(X, y)[1]
    assert np.array_equal(plain_grads[2], decayed_grads[2])  # alpha: no L2
    assert not np.array_equal(plain_grads[0], decayed_grads[0])  # W: L2


def test_prelu_spellings_agree():
    """Dense(k, "prelu"), Dense(k) + PReLU() and Dense(k) + Activation("prelu")."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((10, 3))
    layer = fb.Activation("prelu", initial_slope=0.1)
    assert isinstance(layer, fb.PReLU) and layer.initial_slope == 0.1
    models = [
        fb.Sequential([fb.Dense(4, "prelu", input_dim=3), fb.Dense(2)], seed=0),
        fb.Sequential([fb.Dense(4, input_dim=3), fb.PReLU(), fb.Dense(2)], seed=0),
        fb.Sequential([fb.Dense(4, input_dim=3), fb.Activation("prelu"), fb.Dense(2)], seed=0),
    ]
    weights = models[0].get_weights()
    for m in models[1:]:
        m.set_weights(weights)
    outputs = [m.predict(X) for m in models]
    assert all(np.array_equal(outputs[0], out) for out in outputs[1:])


def test_maxout_shapes_and_what_it_computes():
    model = fb.Sequential([fb.Maxout(3, pieces=4, input_dim=5)], dtype="float64")
    W, b = model.get_weights()
    assert W.shape == (5, 12) and b.shape == (12,) and model.output_dim == 3
    X = np.random.default_rng(7).standard_normal((6, 5))
    expected = (X @ W + b).reshape(6, 3, 4).max(axis=2)  # unit j: columns 4j .. 4j + 3
    assert rel_error(model.predict(X), expected) <= 1e-15


def test_maxout_learns_a_nonlinear_problem():
    X, y = fb.datasets.circles(400, seed=0)
    model = fb.Sequential(
        [fb.Maxout(8, pieces=3, input_dim=2), fb.Dense(2)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=0.02),
        seed=0,
    )
    model.fit(X, y, epochs=60, batch_size=32, verbose=0)
    assert model.evaluate(X, y)["accuracy"] > 0.95


def test_chunked_predict_equals_forward():
    """predict runs 1024-row chunks through ping-pong buffers (and a scratch buffer
    for maxout pieces); dropout is the identity there."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((2500, 6))
    model = fb.Sequential(
        [
            fb.Dense(40, "prelu", input_dim=6),
            fb.Dropout(0.5),
            fb.Maxout(300, pieces=4),
            fb.Activation("tanh"),
            fb.Dense(5, "softmax"),
        ],
        loss="softmax_cross_entropy",
        dtype="float64",
        seed=0,
    )
    assert rel_error(model.predict_proba(X), model.forward(X)) <= 1e-14
    numpy_twin = fb.Sequential.from_config(model.get_config(), backend="numpy")
    numpy_twin.set_weights(model.get_weights())
    assert rel_error(model.predict_proba(X), numpy_twin.predict_proba(X)) <= 1e-12


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_save_and_load_round_trip(tmp_path, name):
    X, y = arch_data(name, n=20)
    model = build(name, optimizer=fb.Adam(lr=0.01))
    model.fit(X, y, epochs=2, batch_size=5, verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = fb.load(tmp_path / "m.npz")
    assert loaded.get_config() == model.get_config()
    assert np.array_equal(loaded.predict(X), model.predict(X))
    for model_ in (model, loaded):  # the same next epoch: optimiser state and masks restored
        model_.fit(X, y, epochs=1, batch_size=5, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)


def test_every_layer_type_trains_without_allocating():
    model = build("everything-with-dropout", dtype=np.float32, optimizer=fb.Adam(lr=0.01))
    rng = np.random.default_rng(9)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    P = rng.random((32, 3)).astype(np.float32)
    y = P / P.sum(axis=1, keepdims=True)
    step, opt = model._backend.step, model.optimizer
    step(X, y, losses.SOFTMAX_KL, opt, True, 0.01)  # warm-up sizes the workspaces

    def steps():
        for _ in range(200):
            step(X, y, losses.SOFTMAX_KL, opt, True, 0.01)

    assert peak_growth(steps) < NO_ARRAY


def test_summary_and_parameter_count():
    model = fb.Sequential(
        [
            fb.Dense(4, "prelu", input_dim=3),
            fb.Maxout(2, pieces=3),
            fb.Dropout(0.5),
            fb.PReLU(),
            fb.Dense(3),
            fb.Activation("softmax"),
        ],
        loss="softmax_cross_entropy",
    )
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for label in (
        "Dense 1 (prelu)",
        "Maxout 2 (3 pieces)",
        "Dropout 3 (0.5)",
        "PReLU 4",
        "Activation 6 (softmax)",
    ):
        assert label in text
    expected = (3 * 4 + 4 + 4) + (4 * 6 + 6) + 2 + (2 * 3 + 3)
    assert model.count_params() == expected and f"total parameters: {expected}" in text


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: fb.Maxout(4, pieces=1),
            ValueError,
            "pieces must be an integer >= 2; got 1; a maxout unit of one piece",
        ),
        (lambda: fb.Dense(4, activation="maxout"), ValueError, r"fastbp.Maxout\(units, pieces=k\)"),
        (lambda: fb.Activation("maxout"), ValueError, "is a layer, not an activation"),
        (
            lambda: fb.Sequential([fb.Activation("tanh"), fb.PReLU()]),
            ValueError,
            "at least one Dense or Maxout",
        ),
        (
            lambda: fb.Sequential(
                [fb.Dense(3, input_dim=2), fb.PReLU()], loss="softmax_cross_entropy"
            ),
            ValueError,
            "must output logits or apply a softmax",
        ),
        (
            lambda: fb.Sequential([fb.Maxout(3, input_dim=2)], loss="binary_cross_entropy"),
            ValueError,
            "activation='sigmoid'",
        ),
        (
            lambda: fb.Sequential(
                [fb.Dense(3, input_dim=2), fb.Dense(1, "softmax")], loss="softmax_cross_entropy"
            ),
            ValueError,
            "at least 2",
        ),
        (
            lambda: fb.Sequential([fb.Dense(3, input_dim=2), "relu"]),
            TypeError,
            "layers must be one of",
        ),
        (lambda: fb.PReLU(initial_slope=float("nan")), ValueError, "must be a number; got nan"),
        (lambda: fb.PReLU("x"), ValueError, "initial_slope must be a number; got 'x'"),
        (
            lambda: fb.Activation("elu", alpha=-1),
            ValueError,
            "alpha must be a number >= 0; got -1; pass e.g. alpha=1.0",
        ),
    ],
)
def test_bad_layer_configurations(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_reused_width_keeping_layers_declare_no_input_width():
    """A PReLU, Activation or Dropout built in one model does not fix the next
    model's input width: only Dense and Maxout declare input_dim."""
    prelu, act, drop = (
        fb.PReLU(initial_slope=-0.1),
        fb.Activation("leaky_relu", slope=0.3),
        fb.Dropout(0.2),
    )
    fb.Sequential([prelu, act, drop, fb.Dense(3)]).build(4)
    again = fb.Sequential([prelu, act, drop, fb.Dense(3)])
    assert not again.built
    again.build(5)
    assert again.input_dim == 5 and np.array_equal(prelu.alpha, np.full(5, -0.1, np.float32))
    assert repr(act) == "Activation('leaky_relu', slope=0.3)"
