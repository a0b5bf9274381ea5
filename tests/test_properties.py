"""Property-based checks: random shapes (1, and sizes that are not multiples of a
SIMD width) in both dtypes, the compiled engine against the NumPy backend; and
two models trained at once in two threads."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp as fb
from tests.helpers import BACKEND_RTOL, rel_error

ACTIVATIONS = sorted(fb.activations.ACTIVATIONS)
dims = st.integers(min_value=1, max_value=37)


@st.composite
def networks(draw):
    """(widths, activations, loss, n_samples, dtype, seed)."""
    n_hidden = draw(st.integers(min_value=0, max_value=3))
    widths = [draw(dims) for _ in range(n_hidden + 1)]
    acts = [draw(st.sampled_from(ACTIVATIONS)) for _ in range(n_hidden)]
    loss = draw(st.sampled_from(["mse", "softmax_cross_entropy", "binary_cross_entropy"]))
    n_out = draw(st.integers(min_value=2 if loss == "softmax_cross_entropy" else 1, max_value=11))
    return (
        widths,
        acts,
        loss,
        n_out,
        draw(st.integers(1, 70)),
        draw(st.sampled_from([np.float32, np.float64])),
        draw(st.integers(0, 2**16)),
    )


def build(widths, acts, loss, n_out, dtype, seed, backend):
    out_act = "sigmoid" if loss == "binary_cross_entropy" else None
    layers = [
        fb.Dense(w, activation=a, input_dim=widths[0] if i == 0 else None)
        for i, (w, a) in enumerate(zip(widths[1:], acts))
    ]
    layers.append(fb.Dense(n_out, activation=out_act, input_dim=None if layers else widths[0]))
    return fb.Sequential(
        layers,
        loss=loss,
        optimizer=fb.SGD(lr=0.05, weight_decay=0.01),
        dtype=np.dtype(dtype).name,
        seed=seed,
        backend=backend,
    )


def flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def targets(loss, rng, n, n_out):
    if loss == "softmax_cross_entropy":
        return rng.integers(0, n_out, n)
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, (n, n_out))
    return rng.standard_normal((n, n_out))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(networks())
def test_engine_matches_numpy_on_random_networks(net):
    """float64: the engine within 1e-12 of NumPy. float32: the engine no further from
    a float64 run of the same weights than NumPy's own float32 run is (times 4), or
    within 1e-5; random shapes hit sums that cancel (a loss gradient a - y of one
    sample, a bias gradient of 5e-4 from terms of 1e-2), where float32's rounding
    alone moves a gradient by more than 1e-5 of itself."""
    widths, acts, loss, n_out, n, dtype, seed = net
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, widths[0])).astype(dtype)
    y = targets(loss, rng, n, n_out)
    models = [build(widths, acts, loss, n_out, dtype, seed, b) for b in ("numpy", "cython")]
    reference = build(widths, acts, loss, n_out, np.float64, seed, "numpy")
    reference.set_weights(models[0].get_weights())
    tol = BACKEND_RTOL[dtype]

    def close(engine, numpy_run, exact):
        if dtype == np.float64:
            return rel_error(engine, numpy_run) <= tol
        return rel_error(engine, exact) <= max(tol, 4 * rel_error(numpy_run, exact))

    (loss_np, grads_np), (loss_cy, grads_cy) = [m.loss_and_gradients(X, y) for m in models]
    loss_ref, grads_ref = reference.loss_and_gradients(X, y)
    assert close(loss_cy, loss_np, loss_ref)
    assert close(flat(grads_cy), flat(grads_np), flat(grads_ref))
    outs = [m.predict(X) for m in models + [reference]]
    assert close(outs[1], outs[0], outs[2])
    batch = int(rng.integers(1, n + 1))
    for m in models + [reference]:
        m.fit(X, y, epochs=1, batch_size=batch, shuffle=False, verbose=0)
    weights = [flat(m.get_weights()) for m in models + [reference]]
    assert close(weights[1], weights[0], weights[2])


def test_two_models_in_two_threads_match_sequential_training():
    """The engine releases the GIL; concurrent training must not mix the models up."""
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((2000, 30)), rng.integers(0, 5, 2000)) for _ in range(2)]

    def model(seed):
        return fb.Sequential(
            [fb.Dense(64, activation="relu", input_dim=30), fb.Dense(5)],
            loss="softmax_cross_entropy",
            optimizer=fb.SGD(lr=0.05),
            seed=seed,
            n_threads=1,
        )

    sequential = []
    for seed, (X, y) in enumerate(data):
        m = model(seed)
        m.fit(X, y, epochs=3, batch_size=16, verbose=0)
        sequential.append(m.get_weights())

    concurrent = [model(seed) for seed in range(2)]
    threads = [
        threading.Thread(target=m.fit, args=(X, y), kwargs=dict(epochs=3, batch_size=16, verbose=0))
        for m, (X, y) in zip(concurrent, data)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m, expected in zip(concurrent, sequential):
        for a, b in zip(m.get_weights(), expected):
            assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "loss, out_act", [("softmax_cross_entropy", None), ("binary_cross_entropy", "sigmoid")]
)
def test_huge_logits_keep_loss_and_gradients_finite(backend, dtype, loss, out_act):
    model = fb.Sequential(
        [fb.Dense(3, activation=out_act, input_dim=2)],
        loss=loss,
        dtype=np.dtype(dtype).name,
        backend=backend,
        seed=0,
    )
    W = np.array([[1e4, -1e4, 0], [-1e4, 1e4, 1e4]])
    model.set_weights([W, np.zeros(3)])
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = [0, 2, 1] if loss == "softmax_cross_entropy" else np.eye(3)
    value, grads = model.loss_and_gradients(X, y)
    assert np.isfinite(value) and value > 100
    assert all(np.isfinite(g).all() for g in grads)
