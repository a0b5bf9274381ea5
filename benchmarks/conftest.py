"""Fixtures and helpers shared by the benchmark suites.

Run by path: `python -m pytest benchmarks/` (timings) or with
`--benchmark-disable` (each benchmarked call runs once, the checks still run).
PyTorch is optional: only the torch contenders need it, and they skip without it.
"""

import time

import numpy as np
import pytest

from benchmarks import workloads

# Seconds to wait before each timed test. NumPy and the compiled kernels call two
# different OpenBLAS builds (NumPy's own and SciPy's), each with its own worker
# threads; after a call those workers keep spinning for about 0.1 s. On a
# 2-core machine the spinning pool of the previous test would steal a core from
# the next one, so each test starts after the other pool has gone to sleep.
SETTLE_SECONDS = 0.15

# Tolerances for checking a benchmarked result against a float64 reference:
# relative to each entry, plus an absolute term relative to the array's largest
# entry (entries near zero carry the rounding error of the large ones).
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_close(actual, expected, dtype):
    """Entries of actual within the dtype's tolerance of the (float64) expected."""
    rtol = RTOL[np.dtype(dtype)]
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max(initial=0.0)) or 1.0
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=rtol * scale
    )


def skip_unless_available(contender):
    """Skip the test when the contender cannot run here (no build, no torch)."""
    if contender in ("cython", "floor"):
        reason = workloads.cython_unavailable_reason()
        if reason:
            pytest.skip(reason)
    elif contender == "torch":
        torch = pytest.importorskip("torch")
        torch.set_num_threads(workloads.cpu_threads())


@pytest.fixture(autouse=True)
def _let_blas_threads_settle(request):
    """Pause before each timed benchmark (see SETTLE_SECONDS); no pause when
    benchmarking is disabled."""
    if "benchmark" in request.fixturenames and not request.config.getoption(
        "benchmark_disable", default=False
    ):
        time.sleep(SETTLE_SECONDS)
    yield


@pytest.fixture(scope="session")
def references():
    """Results of the NumPy backend, computed once per session and shared."""
    return References()


class References:
    """The NumPy backend's answers on the workloads, the oracle (docs/design.md §3)."""

    def __init__(self):
        self._cache = {}

    def _memo(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def step_loss(self, config, dtype):
        """Mean loss of the first step from the initial weights, on the first of
        make_batches(config)."""

        def compute():
            model = workloads.make_model(config, "numpy", dtype)
            return workloads.fastbp_step(model, workloads.make_batches(config, dtype))()[0]

        return self._memo(("step", config.name, dtype), compute)

    def epoch_loss(self, config, dtype):
        """Mean loss of the first epoch from the initial weights."""

        def compute():
            model = workloads.make_model(config, "numpy", dtype)
            X, y, order = workloads.epoch_data(config, dtype)
            total, _, n_seen = workloads.fastbp_epoch(model, X, y, order, config.batch_size)()
            return total / n_seen

        return self._memo(("epoch", config.name, dtype), compute)

    def logits(self, config, dtype, n_rows):
        """Outputs of the initial model on predict_data(config, n_rows)."""

        def compute():
            model = workloads.make_model(config, "numpy", dtype)
            return workloads.fastbp_predict(model, workloads.predict_data(config, dtype, n_rows))()

        return self._memo(("predict", config.name, dtype, n_rows), compute)
