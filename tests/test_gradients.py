"""The whole model: gradients against centred differences (float64, both backends),
and the Cython backend against the NumPy backend (float32 and float64)."""

import numpy as np
import pytest
from conftest import (
    BACKEND_RTOL,
    FD_RTOL,
    make_model,
    model_numerical_gradients,
    numerical_gradient,
    rel_error,
)

import fastbp as fb

# (architecture as (units, activation) with the input width first, loss, target kind)
CASES = {
    "tanh-softmax": ([(4, None), (5, "tanh"), (3, None)], "softmax_cross_entropy", "labels"),
    "sigmoid-softmax-probs": (
        [(3, None), (4, "sigmoid"), (4, None)],
        "softmax_cross_entropy",
        "probabilities",
    ),
    "leaky-relu-mse": ([(3, None), (6, "leaky_relu"), (4, "tanh"), (2, None)], "mse", "values"),
    "relu-mse-sigmoid-out": ([(4, None), (5, "relu"), (2, "sigmoid")], "mse", "values"),
    "tanh-bce": ([(3, None), (4, "tanh"), (2, "sigmoid")], "binary_cross_entropy", "binary"),
    "gelu-elu-kl": (
        [(3, None), (5, "gelu"), (4, "elu"), (3, None)],
        "kl_divergence",
        "probabilities",
    ),
    "silu-softplus-mse": (
        [(4, None), (6, "silu"), (5, "softplus"), (2, "hard_tanh")],
        "mse",
        "values",
    ),
}


def targets(kind, rng, n, d_out):
    if kind == "labels":
        return rng.integers(0, d_out, n)
    if kind == "probabilities":
        P = rng.random((n, d_out))
        return P / P.sum(axis=1, keepdims=True)
    if kind == "binary":
        return rng.integers(0, 2, (n, d_out)).astype(float)
    return rng.standard_normal((n, d_out))


def case_data(name, n=7, seed=0):
    layers, loss, kind = CASES[name]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, layers[0][0]))
    return layers, loss, X, targets(kind, rng, n, layers[-1][0])


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_model_gradients_match_finite_differences(backend, name, weight_decay):
    layers, loss, X, y = case_data(name)
    model = make_model(layers, loss, backend, np.float64, weight_decay=weight_decay)
    value, grads = model.loss_and_gradients(X, y)
    numeric = model_numerical_gradients(model, X, y)
    for k, (g, num) in enumerate(zip(grads, numeric)):
        assert rel_error(g, num) < FD_RTOL, f"parameter {k}"
    assert np.isfinite(value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_dX_matches_finite_differences(backend, name):
    """forward/backward for a loss the user writes: L = sum(G * out)."""
    layers, loss, X, _ = case_data(name)
    model = make_model(layers, loss, backend, np.float64)
    G = np.random.default_rng(1).standard_normal((len(X), layers[-1][0]))
    model.forward(X, training=True)
    dX = model.backward(G)
    numeric = numerical_gradient(lambda: float(np.sum(G * model.forward(X))), X)
    assert rel_error(dX, numeric) < FD_RTOL
    # the parameter gradients of the same loss were stored
    model.forward(X)
    model.backward(G)
    grads = model.get_gradients()
    weights = model.get_weights()

    def user_loss():
        model.set_weights(weights)
        return float(np.sum(G * model.forward(X)))

    assert rel_error(grads[0], numerical_gradient(user_loss, weights[0])) < FD_RTOL


def same_models(name, dtype, **kwargs):
    layers, loss, _, _ = case_data(name)
    return [make_model(layers, loss, b, dtype, **kwargs) for b in ("numpy", "cython")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_backends_agree_on_loss_and_gradients(dtype, name):
    _, _, X, y = case_data(name, n=33)
    results = [m.loss_and_gradients(X, y) for m in same_models(name, dtype, weight_decay=0.05)]
    (loss_np, grads_np), (loss_cy, grads_cy) = results
    tol = BACKEND_RTOL[dtype]
    assert rel_error(loss_cy, loss_np) <= tol
    for g_np, g_cy in zip(grads_np, grads_cy):
        assert g_cy.dtype == dtype
        assert rel_error(g_cy, g_np) <= tol


@pytest.mark.parametrize("name", sorted(CASES))
def test_backends_agree_on_forward_backward_predict(dtype, name):
    _, _, X, y = case_data(name, n=21)
    outs, dXs, preds, evals = [], [], [], []
    G = np.random.default_rng(2).standard_normal((21, CASES[name][0][-1][0]))
    for model in same_models(name, dtype):
        outs.append(model.forward(X, training=True))
        dXs.append(model.backward(G))
        preds.append(model._outputs(X))
        evals.append(model.evaluate(X, y))
    tol = BACKEND_RTOL[dtype]
    assert rel_error(outs[1], outs[0]) <= tol
    assert rel_error(dXs[1], dXs[0]) <= tol
    assert rel_error(preds[1], preds[0]) <= tol
    assert rel_error(evals[1]["loss"], evals[0]["loss"]) <= tol


@pytest.mark.parametrize("name", sorted(CASES))
def test_backends_agree_after_training(dtype, name):
    """A few train_steps and one shuffled mini-batch epoch with L2."""
    _, _, X, y = case_data(name, n=50)
    weights = []
    for model in same_models(name, dtype, lr=0.05, weight_decay=0.01):
        for _ in range(3):
            model.train_step(X[:16], y[:16])
        model.fit(X, y, epochs=1, batch_size=8, verbose=0)
        weights.append(model.get_weights())
    tol = BACKEND_RTOL[dtype]
    for w_np, w_cy in zip(*weights):
        assert rel_error(w_cy, w_np) <= tol


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
    for g_np, g_cy in zip(results[0][1], results[1][1]):
        assert rel_error(g_cy, g_np) <= tol
    big = rng.standard_normal((5000, 77))
    assert rel_error(models[1].predict_proba(big), models[0].predict_proba(big)) <= tol
