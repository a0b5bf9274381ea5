"""The model-level contract, over every architecture of tests/helpers.ARCHS (every
activation as a Dense activation, the Activation, PReLU, Maxout and Dropout layers,
every loss and kind of target): gradients against centred differences (float64, both
backends), and the Cython backend against the NumPy backend (float32 and float64) on
loss and gradients, forward, backward, predict and evaluate, and through training."""

import numpy as np
import pytest

import fastbp as fb
from fastbp import activations, losses
from tests.helpers import (
    ARCHS,
    BACKEND_RTOL,
    FD_RTOL,
    arch_data,
    assert_all_close,
    assert_close,
    build,
    grad_labels,
    model_numerical_gradients,
    numerical_gradient,
    spread_slopes,
)

NAMES = sorted(ARCHS)


def test_the_table_covers_everything():
    """Every activation as a Dense activation, every layer type, every loss with every
    kind of target it takes."""
    dense_acts, layer_types, loss_codes = set(), set(), set()
    for _d_in, layers, loss, kind in ARCHS.values():
        for layer in layers():
            layer_types.add(type(layer).__name__)
            if isinstance(layer, fb.Dense):
                dense_acts.add(layer.activation.name)
        loss_codes.add((losses.get(loss).name, "probabilities" if kind == "binary" else kind))
    assert dense_acts == set(activations.ACTIVATIONS)
    assert layer_types == {"Dense", "Activation", "PReLU", "Maxout", "Dropout"}
    assert loss_codes == {(name, k) for name, spec in losses.LOSSES.items() for k in spec.codes}


# --- against centred differences (float64) ------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_gradients_match_finite_differences(backend, name, weight_decay):
    """loss_and_gradients: the training loss (L2 term included) and its gradients."""
    X, y = arch_data(name)
    model = build(name, backend, optimizer=fb.SGD(lr=0.1, weight_decay=weight_decay))
    spread_slopes(model, np.random.default_rng(1))
    value, grads = model.loss_and_gradients(X, y)
    assert np.isfinite(value)
    numeric = model_numerical_gradients(model, X, y)
    assert_all_close(grads, numeric, FD_RTOL, grad_labels(model))


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_finite_differences(backend, name):
    """forward/backward for a loss the user writes, L = sum(G * output): dX and the
    stored parameter gradients (through a final softmax by its Jacobian)."""
    X, _ = arch_data(name)
    model = build(name, backend)
    G = np.random.default_rng(2).standard_normal((len(X), model.output_dim))

    def loss():
        return float(np.sum(G * model.forward(X)))

    model.forward(X)  # inference: dropout is the identity, as in loss()
    dX = model.backward(G)
    assert_close(dX, numerical_gradient(loss, X), FD_RTOL, "dX")
    start = model.get_weights()
    for k, (g, w, label) in enumerate(zip(model.get_gradients(), start, grad_labels(model))):

        def loss_w(k=k, w=w):
            model.set_weights(start[:k] + [w] + start[k + 1 :])
            return loss()

        assert_close(g, numerical_gradient(loss_w, w), FD_RTOL, label)


# --- the Cython backend against the NumPy backend ---------------------------------------


def both_backends(name, dtype, **kwargs):
    return [build(name, backend, dtype, **kwargs) for backend in ("numpy", "cython")]


@pytest.mark.parametrize("name", NAMES)
def test_backends_agree_on_loss_and_gradients(dtype, name):
    X, y = arch_data(name, n=33)
    models = both_backends(name, dtype, optimizer=fb.SGD(lr=0.1, weight_decay=0.05))
    (loss_np, grads_np), (loss_cy, grads_cy) = [m.loss_and_gradients(X, y) for m in models]
    tol = BACKEND_RTOL[dtype]
    assert_close(loss_cy, loss_np, tol, "loss")
    assert all(g.dtype == dtype for g in grads_cy)
    assert_all_close(grads_cy, grads_np, tol, grad_labels(models[0]))


@pytest.mark.parametrize("name", NAMES)
def test_backends_agree_on_forward_backward_predict(dtype, name):
    X, y = arch_data(name, n=21)
    runs = []
    for model in both_backends(name, dtype):
        G = np.random.default_rng(2).standard_normal((21, model.output_dim))
        out = model.forward(X, training=True)
        dX = model.backward(G)
        runs.append((out, dX, model.get_gradients(), model._outputs(X), model.evaluate(X, y)))
    (out_np, dX_np, g_np, p_np, ev_np), (out_cy, dX_cy, g_cy, p_cy, ev_cy) = runs
    tol = BACKEND_RTOL[dtype]
    assert_close(out_cy, out_np, tol, "forward(training=True)")
    assert_close(dX_cy, dX_np, tol, "backward dX")
    assert_all_close(g_cy, g_np, tol, grad_labels(build(name)))
    assert_close(p_cy, p_np, tol, "predicted outputs")
    assert_close(ev_cy["loss"], ev_np["loss"], tol, "evaluate loss")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", NAMES)
def test_backends_agree_after_training(dtype, name, optimizer):
    """A few train_steps, then shuffled mini-batch epochs: plain SGD with L2 (folded
    into the GEMMs), or Adam (updates of every parameter, slopes included)."""
    X, y = arch_data(name, n=40)
    make = {
        "sgd": lambda: fb.SGD(lr=0.05, weight_decay=0.01),
        "adam": lambda: fb.Adam(lr=0.01),
    }[optimizer]
    runs = []
    for model in both_backends(name, dtype, optimizer=make()):
        for _ in range(3):
            model.train_step(X[:16], y[:16])
        model.fit(X, y, epochs=2, batch_size=8, verbose=0)
        runs.append((model.get_weights(), model._outputs(X[:5])))
    (w_np, p_np), (w_cy, p_cy) = runs
    # Adam divides by sqrt(v): float32 rounding differences grow by about an order
    tol = BACKEND_RTOL[dtype] * (10 if optimizer == "adam" else 1)
    assert_all_close(w_cy, w_np, tol, build(name).weight_names())
    assert_close(p_cy, p_np, tol, "predicted outputs")


def test_large_layers_agree(dtype):
    """Sizes that are not multiples of a SIMD width, and wider than a chunk of predict."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 77))
    y = rng.integers(0, 13, 300)
    models = [
        fb.Sequential(
            [
                fb.Dense(129, activation="relu", input_dim=77),
                fb.Dense(65, activation="tanh"),
                fb.Dense(13),
            ],
            loss="softmax_cross_entropy",
            dtype=np.dtype(dtype).name,
            seed=5,
            backend=b,
        )
        for b in ("numpy", "cython")
    ]
    results = [m.loss_and_gradients(X, y) for m in models]
    tol = BACKEND_RTOL[dtype]
    assert_all_close(results[1][1], results[0][1], tol, grad_labels(models[0]))
    big = rng.standard_normal((5000, 77))
    assert_close(models[1].predict_proba(big), models[0].predict_proba(big), tol, "predict_proba")
