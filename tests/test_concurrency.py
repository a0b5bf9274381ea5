"""One model, many threads: inference gives exactly the single-threaded answers
(and runs in parallel), training calls are serialised, never interleaved."""

import threading

import numpy as np
import pytest

import fastbp as fb

N_THREADS = 4
CALLS = 100


def trained(backend, dtype, layers=None):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 6))
    y = rng.integers(0, 3, 600)
    layers = layers or [
        fb.Dense(16, activation="relu", input_dim=6),
        fb.Dropout(0.2),
        fb.Maxout(8, pieces=3),
        fb.Dense(3),
    ]
    model = fb.Sequential(
        layers,
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=0.01),
        dtype=dtype,
        seed=0,
        backend=backend,
    )
    model.fit(X, y, epochs=2, verbose=0)
    return model, X, y


def run_in_threads(work, n_threads=N_THREADS):
    """work(thread_index) in n_threads threads started together; their results,
    re-raising the first error."""
    barrier = threading.Barrier(n_threads)
    results, errors = [None] * n_threads, []

    def body(k):
        try:
            barrier.wait()
            results[k] = work(k)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


CALLS_BY_NAME = {
    "predict": lambda m, X, y: m.predict(X),
    "predict_proba": lambda m, X, y: m.predict_proba(X),
    "evaluate": lambda m, X, y: np.array(list(m.evaluate(X, y).values())),
    "forward": lambda m, X, y: m.forward(X),
}


@pytest.mark.parametrize("call", sorted(CALLS_BY_NAME))
def test_inference_from_many_threads_equals_one_thread(backend, dtype, call):
    """Each thread makes CALLS calls on slices of different sizes (so the scratch
    pool serves several capacities at once); every answer equals, bit for bit,
    the answer computed alone beforehand."""
    model, X, y = trained(backend, dtype)
    fn = CALLS_BY_NAME[call]
    slices = [slice(k, k + size) for k, size in zip(range(0, 300, 3), [1, 7, 64, 300] * 25)]
    expected = [fn(model, X[s], y[s]) for s in slices]

    def work(k):
        order = np.random.default_rng(k).permutation(len(slices))
        return [(i, fn(model, X[slices[i]], y[slices[i]])) for i in order[:CALLS]]

    for answers in run_in_threads(work):
        assert len(answers) == CALLS
        for i, answer in answers:
            assert np.array_equal(answer, expected[i]), f"call {call} on slice {slices[i]}"


def test_large_predictions_from_many_threads(dtype):
    """Rows beyond one scratch chunk: every chunk of every thread is its own."""
    model, _, _ = trained("cython", dtype)
    X = np.random.default_rng(1).standard_normal((5000, 6))
    expected = model.predict_proba(X)
    for answer in run_in_threads(lambda k: model.predict_proba(X)):
        assert np.array_equal(answer, expected)


def test_two_threads_training_one_model_are_serialised(backend):
    """Two fits at once run one after the other: the result equals two fits in a row."""
    model, X, y = trained(backend, np.float64)
    alone = fb.Sequential.from_config(model.get_config())
    alone.set_weights(model.get_weights())
    for live, kept in zip(alone._plan.training_state(), model._plan.training_state()):
        live[...] = kept
    alone.epochs_done = model.epochs_done

    def train(m):
        m.fit(X, y, epochs=2, batch_size=32, shuffle=False, verbose=0)

    run_in_threads(lambda k: train(model), n_threads=2)
    train(alone)
    train(alone)
    for a, b in zip(model.get_weights(), alone.get_weights()):
        assert np.array_equal(a, b)
    assert model.epochs_done == alone.epochs_done == 2 + 4


def test_predictions_while_another_thread_trains(backend):
    """Inference during fit sees whole steps only: each answer equals the model's
    answer for the weights of some moment between two engine calls, so it is
    finite and well-formed; afterwards the answers are the trained model's."""
    model, X, y = trained(backend, np.float64)
    done = threading.Event()
    seen = []

    def work(k):
        if k == 0:
            try:
                model.fit(X, y, epochs=3, batch_size=8, verbose=0)
            finally:
                done.set()
            return None
        while not done.is_set():
            proba = model.predict_proba(X[:50])
            seen.append(proba)
            assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1)
        return None

    run_in_threads(work, n_threads=3)
    assert seen
    twin = fb.Sequential.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    assert np.array_equal(model.predict_proba(X), twin.predict_proba(X))


def test_optimizer_swapped_while_another_thread_trains(backend):
    model, X, y = trained(backend, np.float32)
    swaps = [fb.SGD(lr=0.01, momentum=0.9), fb.Adagrad(), fb.RMSProp(), fb.Adam()]

    def work(k):
        if k == 0:
            for _ in range(3):
                model.fit(X, y, epochs=1, batch_size=16, verbose=0)
        else:
            for opt in swaps:
                model.optimizer = opt
                model.optimizer.lr = 0.005

    run_in_threads(work, n_threads=2)
    assert np.isfinite(model.evaluate(X, y)["loss"])
    model.fit(X, y, epochs=1, verbose=0)


def test_backward_belongs_to_the_thread_that_ran_forward(backend):
    model, X, _ = trained(backend, np.float64)
    model.forward(X[:10])
    with pytest.raises(RuntimeError, match="in the same thread"):
        run_in_threads(lambda k: model.backward(np.ones((10, 3))), n_threads=1)
    assert model.backward(np.ones((10, 3))).shape == (10, 6)
