"""Properties of the compiled engine beyond its numbers: no allocation in the hot
path, thread settings, determinism under a thread limit."""

import numpy as np
import pytest

import fastbp as fb
from fastbp import losses, threads
from tests.helpers import NO_ARRAY, OPTIMIZER_CASES, peak_growth


def mlp(backend="cython", **kwargs):
    return fb.Sequential(
        [
            fb.Dense(32, activation="relu", input_dim=16),
            fb.Dense(16, activation="tanh"),
            fb.Dense(4),
        ],
        loss="softmax_cross_entropy",
        seed=0,
        backend=backend,
        **kwargs,
    )


def data(n=6400):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 16)).astype(np.float32), rng.integers(0, 4, n)


# one instance per case, made at collection as the tests read them only
OPTIMIZERS = [pytest.param(make(), id=name) for name, make in OPTIMIZER_CASES.items()]


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("backend, allocates", [("cython", False), ("numpy", True)])
def test_training_steps_allocate_no_arrays(backend, allocates, opt):
    """The compiled engine allocates nothing per step; the NumPy backend, whose
    expressions make temporaries, shows that the measurement can tell."""
    model = mlp(backend, optimizer=opt)
    X, y = data(32)
    step = model._backend.step
    step(X, y, losses.SOFTMAX_XENT_INT, opt, True, 0.1)  # warm-up sizes the workspaces

    def steps():
        for _ in range(200):
            step(X, y, losses.SOFTMAX_XENT_INT, opt, True, 0.1)

    assert (peak_growth(steps) > NO_ARRAY) == allocates


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_an_epoch_of_200_steps_allocates_no_arrays(opt):
    model = mlp(optimizer=opt)
    X, y = data()
    order = np.arange(len(X), dtype=np.int64)
    epoch = model._backend.epoch
    epoch(X, y, order, 32, losses.SOFTMAX_XENT_INT, opt, 0.1)  # warm-up
    assert peak_growth(lambda: epoch(X, y, order, 32, losses.SOFTMAX_XENT_INT, opt, 0.1)) < NO_ARRAY


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
    with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
        mlp(n_threads=bad)
