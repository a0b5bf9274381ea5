"""Properties of the compiled engine beyond its numbers: no allocation in the hot
path, thread settings, determinism under a thread limit."""
import tracemalloc

import numpy as np
import pytest

import fastbp as fb
from fastbp import losses, threads

NUMPY_DOMAIN = np.lib.tracemalloc_domain


def numpy_allocations(fn):
    """Number of NumPy data buffers allocated (and still alive or not) while fn runs."""
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        fn()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    domain = tracemalloc.DomainFilter(True, NUMPY_DOMAIN)
    diff = after.filter_traces([domain]).compare_to(before.filter_traces([domain]), "traceback")
    return sum(max(stat.count_diff, 0) for stat in diff)


def mlp(backend="cython", **kwargs):
    return fb.Sequential([fb.Dense(32, activation="relu", input_dim=16),
                          fb.Dense(16, activation="tanh"), fb.Dense(4)],
                         loss="softmax_cross_entropy", seed=0, backend=backend, **kwargs)


def data(n=6400):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 16)).astype(np.float32), rng.integers(0, 4, n)


def test_training_steps_allocate_no_arrays():
    model = mlp()
    X, y = data(32)
    step = model._backend.step
    step(X, y, losses.SOFTMAX_XENT_INT, 0.01, True, 0.1)  # warm-up sizes the workspaces

    def steps():
        for _ in range(200):
            step(X, y, losses.SOFTMAX_XENT_INT, 0.01, True, 0.1)

    assert numpy_allocations(steps) == 0


def test_an_epoch_allocates_the_same_whatever_its_number_of_steps():
    model = mlp()
    X, y = data()
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)  # warm-up
    few = numpy_allocations(lambda: model.fit(X, y, epochs=1, batch_size=640, verbose=0))
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    many = numpy_allocations(lambda: model.fit(X, y, epochs=1, batch_size=32, verbose=0))
    assert many <= few + 2   # 200 steps cost no more arrays than 10


def test_n_threads_is_applied_and_restored():
    X, y = data(256)
    controllers = threads._blas_controllers()
    before = [c.num_threads for c in controllers]
    seen = []

    class Spy:
        """Wraps the backend to record BLAS thread counts during a call."""
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            def call(*args):
                seen.append([c.num_threads for c in controllers])
                return getattr(self.inner, name)(*args)
            return call

    model = mlp(n_threads=1)
    model._backend = Spy(model._backend)
    model.fit(X, y, epochs=1, verbose=0)
    model.predict(X)
    assert seen and all(counts == [1] * len(controllers) for counts in seen)
    assert [c.num_threads for c in controllers] == before


def test_thread_limit_gives_the_same_weights():
    X, y = data(512)
    runs = []
    for n_threads in (None, 1):
        model = mlp(n_threads=n_threads)
        model.fit(X, y, epochs=2, batch_size=64, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_n_threads(bad):
    with pytest.raises(ValueError, match="n_threads must be a positive integer"):
        mlp(n_threads=bad)
