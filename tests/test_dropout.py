"""fb.Dropout: inverted dropout in training, identity at inference, the same masks on
both backends, exact gradients with the masks frozen."""

import numpy as np
import pytest

import fastbp as fb
from fastbp.backends.numpy_backend import uniform_stream
from tests.helpers import BACKEND_RTOL, rel_error


def model(backend="cython", dtype="float64", rate=0.5, seed=0, optimizer=None):
    return fb.Sequential(
        [
            fb.Dense(64, activation="relu", input_dim=6),
            fb.Dropout(rate),
            fb.Dense(32, activation="tanh"),
            fb.Dropout(rate / 2),
            fb.Dense(3),
        ],
        loss="softmax_cross_entropy",
        optimizer=optimizer or fb.SGD(lr=0.05),
        dtype=dtype,
        seed=seed,
        backend=backend,
    )


def data(n=40):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6)), rng.integers(0, 3, n)


def test_inference_ignores_dropout(backend):
    X, _ = data()
    with_dropout = model(backend)
    plain = fb.Sequential(
        [
            fb.Dense(64, activation="relu", input_dim=6),
            fb.Dense(32, activation="tanh"),
            fb.Dense(3),
        ],
        loss="softmax_cross_entropy",
        dtype="float64",
        backend=backend,
    )
    plain.set_weights(with_dropout.get_weights())
    assert np.array_equal(with_dropout.predict_proba(X), plain.predict_proba(X))
    assert np.array_equal(with_dropout.forward(X), plain.forward(X))
    assert not np.array_equal(with_dropout.forward(X, training=True), plain.forward(X))


def test_masks_drop_the_rate_and_scale_the_rest(backend):
    X, _ = data(400)
    m = model(backend, rate=0.3)
    m.forward(X, training=True)
    # node 1 is the first Dropout; the NumPy backend keeps its mask where Z would be
    mask = m._plan.nodes[1].mask[:400] if backend == "cython" else m._backend._Z[1]
    assert set(np.unique(mask)) == {0.0, 1 / 0.7}
    assert abs(np.mean(mask == 0) - 0.3) < 0.01


def test_both_backends_draw_the_same_masks(dtype):
    X, y = data()
    runs = []
    for backend in ("numpy", "cython"):
        m = model(backend, np.dtype(dtype).name, optimizer=fb.Adam(lr=0.01))
        loss, grads = m.loss_and_gradients(X, y)
        m.fit(X, y, epochs=2, batch_size=8, verbose=0)
        runs.append(
            (
                loss,
                np.concatenate([g.ravel() for g in grads]),
                np.concatenate([w.ravel() for w in m.get_weights()]),
            )
        )
    tol = BACKEND_RTOL[dtype]
    assert rel_error(runs[1][0], runs[0][0]) <= tol
    assert rel_error(runs[1][1], runs[0][1]) <= tol
    assert rel_error(runs[1][2], runs[0][2]) <= 10 * tol


def test_gradients_with_frozen_masks_pass_gradcheck(backend):
    X, y = data(12)
    m = model(backend, rate=0.4)
    m.fit(X, y, epochs=1, batch_size=4, verbose=0)  # a step count other than 0
    result = fb.gradcheck(m, X, y, max_checks_per_array=20)
    assert result.passed, str(result)


def test_masks_change_every_step_and_training_is_reproducible():
    X, y = data()
    m = model()
    m.forward(X, training=True)
    first = m._plan.nodes[1].mask[:40].copy()
    m.train_step(X, y)
    m.forward(X, training=True)
    assert not np.array_equal(first, m._plan.nodes[1].mask[:40])
    runs = []
    for verbose in (0, 1):
        m = model(seed=3)
        m.fit(X, y, epochs=2, batch_size=8, verbose=verbose)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def masks(m, backend, n):
    """The masks (n, width) of the model's two Dropout nodes (1 and 3) from its last
    training forward pass."""
    if backend == "cython":
        return [m._plan.nodes[l].mask[:n].copy() for l in (1, 3)]
    return [m._backend._Z[l].copy() for l in (1, 3)]


@pytest.mark.parametrize("k", [1, 17, 39])
def test_a_row_offset_draws_those_rows_of_the_whole_batch_mask(backend, k):
    """With plan.row_offset = k, rows k.. of a batch get the masks that rows k.. of
    the whole batch get at offset 0 (each node at its own width); at offset 0 they
    do not."""
    X, _ = data(40)
    m = model(backend, rate=0.4)
    m.forward(X, training=True)
    whole = masks(m, backend, 40)
    m.forward(X[k:], training=True)
    unplaced = masks(m, backend, 40 - k)
    m._plan.row_offset[0] = k
    m.forward(X[k:], training=True)
    placed = masks(m, backend, 40 - k)
    for full, part, other in zip(whole, placed, unplaced):
        np.testing.assert_array_equal(part, full[k:])
        assert not np.array_equal(other, full[k:])


def test_uniform_stream_from_an_offset_is_the_tail_of_the_stream():
    whole = uniform_stream(7, 1025, 300)
    np.testing.assert_array_equal(uniform_stream(7, 1025, 100, first=200), whole[200:])
    assert not np.array_equal(uniform_stream(7, 1025, 100), whole[200:])


def test_the_row_offset_is_not_saved(tmp_path):
    m = model()
    m.fit(*data(), epochs=1, batch_size=8, verbose=0)
    m._plan.row_offset[0] = 5
    m.save(tmp_path / "m.npz")
    assert fb.load(tmp_path / "m.npz")._plan.row_offset[0] == 0


def test_dropout_cannot_end_the_model():
    with pytest.raises(ValueError, match="last layer cannot be a Dropout"):
        fb.Sequential([fb.Dense(4, input_dim=3), fb.Dropout(0.5)], loss="mse")


def test_dropout_on_the_inputs_and_twice_in_a_row(dtype):
    """Dropout may come first (on the inputs) or follow another Dropout: the two
    backends draw the same masks and the gradients pass gradcheck."""
    X, y = data(12)
    runs = []
    for backend in ("numpy", "cython"):
        m = fb.Sequential(
            [
                fb.Dropout(
                    0.2,
                ),
                fb.Dense(8, activation="tanh", input_dim=6),
                fb.Dropout(0.3),
                fb.Dropout(0.3),
                fb.Dense(3),
            ],
            loss="softmax_cross_entropy",
            dtype=dtype,
            seed=1,
            backend=backend,
        )
        m.fit(X, y, epochs=2, batch_size=4, verbose=0)
        runs.append(np.concatenate([w.ravel() for w in m.get_weights()]))
        if dtype == "float64":
            result = fb.gradcheck(m, X, y)
            assert result.passed, str(result)
    assert rel_error(runs[1], runs[0]) <= 10 * BACKEND_RTOL[dtype]


@pytest.mark.parametrize("rate", [-0.1, 1.0, "half"])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\)"):
        fb.Dropout(rate)
