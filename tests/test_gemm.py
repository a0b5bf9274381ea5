"""The GEMM provider (fastbp.gemm): choosing, switching and what each gives.

The MKL cases run against the real mkl_rt of the `mkl` wheel and skip when it is
not installed (CI installs it).
"""

import copy
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastbp as fb
from fastbp import gemm, threads
from tests.helpers import gemm_operands as operands

pytestmark = pytest.mark.skipif(
    "cython" not in fb.available_backends(), reason="the compiled backend is not built"
)
HAS_MKL = "mkl" in gemm.available()
needs_mkl = pytest.mark.skipif(not HAS_MKL, reason="MKL (pip install fastbp[mkl]) is absent")


@pytest.fixture(autouse=True)
def restore_provider():
    before = gemm.current()
    yield
    gemm.use(before.name)


def run(code, **env):
    import os

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def trained(dtype, epochs=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, 40)).astype(dtype)
    y = rng.integers(0, 4, 300)
    model = fb.Sequential(
        [fb.Dense(64, "relu", input_dim=40), fb.Dense(32, "tanh"), fb.Dense(4)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=1e-2),
        dtype=dtype,
        seed=seed,
    )
    model.fit(X, y, epochs=epochs, batch_size=32, verbose=0)
    return model, X


def test_current_is_a_loaded_provider():
    provider = gemm.current()
    assert provider.name in gemm.PROVIDERS
    assert provider.sgemm and provider.dgemm and provider.version


def test_scipy_always_loads():
    provider = gemm.use("scipy")
    assert provider.name == "scipy" and "SciPy" in provider.version
    assert gemm.current() is provider


@pytest.mark.parametrize("vendor", ["GenuineIntel", "AuthenticAMD", ""])
def test_auto_takes_mkl_where_installed_and_measured_faster(monkeypatch, vendor):
    monkeypatch.setattr(gemm, "cpu_vendor", lambda: vendor)
    wanted = "mkl" if HAS_MKL and vendor in gemm.AUTO_MKL_VENDORS else "scipy"
    assert gemm.use("auto").name == wanted
    if HAS_MKL:  # chosen by name, MKL runs on any x86-64 CPU
        assert gemm.use("mkl").name == "mkl"


def test_the_cpu_vendor_is_read():
    vendor = gemm.cpu_vendor()
    assert isinstance(vendor, str)
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            assert f"vendor_id\t: {vendor}\n" in f.read()


@pytest.mark.parametrize("name", ["MKL ", "openblas", "", "scipy,mkl"])
def test_unknown_names_are_refused_and_nothing_changes(name):
    before = gemm.current()
    with pytest.raises(ValueError, match="must be one of 'auto', 'scipy', 'mkl'"):
        gemm.use(name)
    assert gemm.current() is before


@pytest.mark.parametrize("value", [None, 1, b"mkl"])
def test_names_must_be_strings(value):
    with pytest.raises(TypeError, match="must be a name"):
        gemm.use(value)


def test_environment_choice_at_load():
    out = run("import fastbp; print(fastbp.gemm.current().name)", FASTBP_GEMM="scipy")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "scipy"


def test_bad_environment_value_names_the_variable():
    out = run(
        """
        import fastbp as fb
        print(fb.available_backends())
        try:
            fb.Sequential([fb.Dense(2, input_dim=2)])
        except RuntimeError as exc:
            print("error:", exc)
        """,
        FASTBP_GEMM="fast",
    )
    assert out.returncode == 0, out.stderr
    assert "['numpy']" in out.stdout
    assert "FASTBP_GEMM='fast' names no GEMM provider" in out.stdout


def test_missing_mkl_says_how_to_install(monkeypatch):
    monkeypatch.setattr(gemm, "_mkl_rt_paths", list)
    monkeypatch.setattr(gemm, "_loaded", {k: v for k, v in gemm._loaded.items() if k != "mkl"})
    before = gemm.current()
    with pytest.raises(gemm.ProviderUnavailable, match=r"pip install fastbp\[mkl\]"):
        gemm.use("mkl")
    assert gemm.current() is before
    assert gemm.use("auto").name == "scipy"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_switching_back_to_scipy_is_bit_identical(dtype):
    gemm.use("scipy")
    reference, _ = trained(dtype)
    for name in gemm.available():
        gemm.use(name)
        trained(dtype)
    gemm.use("scipy")
    again, _ = trained(dtype)
    for a, b in zip(reference.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


@needs_mkl
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-3), (np.float64, 1e-9)])
def test_mkl_trains_the_same_model_to_rounding(monkeypatch, dtype, rtol):
    monkeypatch.setattr(gemm, "_small_flops", 0.0)  # every GEMM through the provider
    gemm.use("scipy")
    reference, X = trained(dtype)
    gemm.use("mkl")
    model, _ = trained(dtype)
    np.testing.assert_allclose(
        model.predict_proba(X), reference.predict_proba(X), rtol=rtol, atol=rtol * 1e-2
    )
    assert not all(
        np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights())
    ), "the two providers gave identical bits: is MKL really in use?"


@needs_mkl
def test_mkl_is_reproducible_whatever_the_alignment():
    gemm.use("mkl")
    model, X = trained(np.float32)
    expected = model.predict_proba(X)
    twin = copy.deepcopy(model)
    # the same rows at another address alignment (offset by one float)
    buffer = np.empty(X.size + 1, np.float32)
    shifted = buffer[1:].reshape(X.shape)
    shifted[...] = X
    np.testing.assert_array_equal(twin.predict_proba(shifted), expected)
    again, _ = trained(np.float32)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)


@needs_mkl
def test_thread_limits_reach_mkl():
    from threadpoolctl import threadpool_info

    gemm.use("mkl")

    def mkl_threads():
        return [i["num_threads"] for i in threadpool_info() if i["internal_api"] == "mkl"]

    outside = mkl_threads()
    assert outside
    with threads.limit(1):
        assert mkl_threads() == [1]
    assert mkl_threads() == outside


def test_show_config_names_the_provider():
    lines = []
    fb.show_config(print_fn=lines.append)
    text = "\n".join(lines)
    provider = gemm.current()
    assert f"GEMM provider: {provider.name}" in text
    assert f"fastbp {fb.__version__}" in text
    facts = fb.config.describe()
    assert facts["gemm"]["name"] == provider.name
    assert any(entry["threads"] for entry in facts["blas_threads"])


@needs_mkl
def test_limits_reach_mkl_in_threads_already_running():
    """MKL keeps a thread count per OpenMP thread: a limit set first by another
    thread must still hold in a thread that was already running."""
    gemm.use("mkl")
    max_threads = gemm._libraries[0].MKL_Get_Max_Threads
    started, go, seen = threading.Event(), threading.Event(), []

    def worker():
        before = max_threads()
        started.set()
        go.wait(10)
        with threads.limit(1):
            seen.append(max_threads())
        seen.append(max_threads() == before)

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait(10)
    with threads.limit(1):
        go.set()
        thread.join(10)
    assert seen == [1, True]


@needs_mkl
@pytest.mark.parametrize("given, expected", [(None, "0"), ("50", "50")])
def test_mkl_idle_workers_sleep_unless_the_user_says(given, expected):
    env = {"FASTBP_GEMM": "mkl"}
    code = "import os, fastbp; print(fastbp.gemm.current().name, os.environ['KMP_BLOCKTIME'])"
    if given is not None:
        env["KMP_BLOCKTIME"] = given
    else:
        code = "import os; os.environ.pop('KMP_BLOCKTIME', None); " + code
    out = run(code, **env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["mkl", expected]


# --- the thread policy: small GEMMs on one thread -------------------------------------------

TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]


def numpy_gemm(A, B, C, trans_a, trans_b, alpha, beta):
    op_a = A.T if trans_a else A
    op_b = B.T if trans_b else B
    return alpha * (op_a.astype(np.float64) @ op_b.astype(np.float64)) + beta * C


def recording_setter(returned):
    """A C-callable calling-thread setter that records what it is asked and
    answers `returned` (the "previous" count)."""
    import ctypes

    calls = []

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
    def setter(n_threads):
        calls.append(n_threads)
        return returned

    return setter, calls


_alive = []  # the recording setters whose addresses the compiled modules may hold


def with_recorder(monkeypatch, flops, returned=7):
    """Route the compiled modules to SciPy's routines with a recording setter as
    the calling-thread count and `flops` as the threshold; returns the calls."""
    import ctypes

    scipy_provider = gemm._load("scipy")
    setter, calls = recording_setter(returned)
    address = ctypes.cast(setter, ctypes.c_void_p).value
    fake = gemm.Provider(
        "recorder", "test", "none", scipy_provider.sgemm, scipy_provider.dgemm, address
    )
    monkeypatch.setitem(gemm._serial_flops, "recorder", flops)
    monkeypatch.setattr(gemm, "_small_flops", 0.0)  # every GEMM through the provider
    gemm._route(fake)
    monkeypatch.setattr(gemm, "_current", fake)
    _alive.append(setter)
    return calls


@pytest.mark.parametrize("trans_a, trans_b", TRANSPOSES)
def test_policy_sets_one_thread_around_small_gemms_and_restores(monkeypatch, trans_a, trans_b):
    from fastbp._kernels import kernels

    calls = with_recorder(monkeypatch, flops=2 * 20 * 30 * 40 + 1, returned=7)
    rng = np.random.default_rng(0)
    # just below the threshold: one thread, then the previous count (7) back
    A, B, C = operands(rng, 20, 30, 40, trans_a, trans_b, np.float64)
    kernels.gemm_rowmajor(A, B, C, trans_a=trans_a, trans_b=trans_b)
    assert calls == [1, 7]
    np.testing.assert_allclose(C, numpy_gemm(A, B, C, trans_a, trans_b, 1, 0), rtol=1e-12)
    # one more row reaches it: the caller's count, untouched
    calls.clear()
    A, B, C = operands(rng, 21, 30, 40, trans_a, trans_b, np.float32)
    kernels.gemm_rowmajor(A, B, C, trans_a=trans_a, trans_b=trans_b)
    assert calls == []
    assert gemm.serial_flops() == 2 * 20 * 30 * 40 + 1


def test_policy_reaches_the_engine(monkeypatch):
    """Every GEMM of a training step below the threshold goes through the setter,
    in pairs (one thread, then the caller's count back)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 8))
    y = rng.integers(0, 3, 64)
    model = fb.Sequential(
        [fb.Dense(16, "relu", input_dim=8), fb.Dense(3)], loss="softmax_cross_entropy"
    )
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)  # the engine is built
    calls = with_recorder(monkeypatch, flops=1e12, returned=0)
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    # 2 batches x (2 forward + 2 weight + 1 input-gradient GEMMs)
    assert calls == [1, 0] * 10
    calls.clear()
    monkeypatch.setitem(gemm._serial_flops, "recorder", 0.0)
    gemm._route(gemm._current)
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert calls == []


def test_scipy_has_no_policy():
    from fastbp._kernels import kernels

    gemm.use("scipy")
    assert gemm.current().set_local_threads == 0
    assert gemm.serial_flops() == 0
    assert not kernels.gemm_runs_serial(1, 1, 1)
    with pytest.raises(RuntimeError, match="no per-thread thread count"):
        gemm.set_serial_flops(1e6)


@needs_mkl
def test_mkl_policy_picks_one_thread_below_the_threshold():
    from fastbp._kernels import kernels

    gemm.use("mkl")
    threshold = gemm.serial_flops()
    assert threshold == gemm.SERIAL_FLOPS["mkl"] > 0
    for m, n, k in [(1, 1, 1), (32, 10, 64), (128, 256, 256), (256, 256, 256), (256, 1024, 784)]:
        assert kernels.gemm_runs_serial(m, n, k) == (2 * m * n * k < threshold), (m, n, k)
    previous = gemm.set_serial_flops(0)
    try:
        assert previous == threshold
        assert not kernels.gemm_runs_serial(1, 1, 1)
        gemm.use("scipy")
        gemm.use("mkl")  # each provider keeps its own threshold
        assert gemm.serial_flops() == 0
    finally:
        gemm.set_serial_flops(threshold)
    assert kernels.gemm_runs_serial(1, 1, 1)


@needs_mkl
@pytest.mark.parametrize("value", ["1e6", None, True, [1]])
def test_serial_threshold_must_be_a_number(value):
    gemm.use("mkl")
    before = gemm.serial_flops()
    with pytest.raises(TypeError, match="must be a number of floating-point operations"):
        gemm.set_serial_flops(value)
    assert gemm.serial_flops() == before


@needs_mkl
@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf")])
def test_serial_threshold_must_be_finite_and_not_negative(value):
    gemm.use("mkl")
    before = gemm.serial_flops()
    with pytest.raises(ValueError, match="finite number >= 0"):
        gemm.set_serial_flops(value)
    assert gemm.serial_flops() == before


@needs_mkl
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-4), (np.float64, 1e-12)])
@pytest.mark.parametrize("trans_a, trans_b", TRANSPOSES)
@pytest.mark.parametrize("n_threads", [None, 1, 2])
def test_mkl_results_equal_numpys_on_both_sides_of_the_threshold(
    dtype, rtol, trans_a, trans_b, n_threads
):
    from fastbp._kernels import kernels

    gemm.use("mkl")
    rng = np.random.default_rng(2)
    shapes = [(32, 10, 64), (64, 128, 10), (7, 3, 5), (300, 256, 256)]
    assert {kernels.gemm_runs_serial(*shape) for shape in shapes} == {True, False}
    with threads.limit(n_threads):
        for m, n, k in shapes:
            for alpha, beta in [(1.0, 0.0), (-0.25, 1.0), (1.0, 0.5)]:
                A, B, C = operands(rng, m, n, k, trans_a, trans_b, dtype)
                expected = numpy_gemm(A, B, C, trans_a, trans_b, alpha, beta)
                kernels.gemm_rowmajor(A, B, C, trans_a, trans_b, alpha, beta)
                scale = np.abs(expected).max()
                np.testing.assert_allclose(C, expected, rtol=0, atol=rtol * scale * np.sqrt(k))


@needs_mkl
def test_mkl_calling_thread_count_is_restored_after_small_gemms(monkeypatch):
    from fastbp._kernels import kernels

    monkeypatch.setattr(gemm, "_small_flops", 0.0)  # these small GEMMs through MKL
    gemm.use("mkl")
    lib = gemm._libraries[0]
    A, B, C = operands(np.random.default_rng(3), 8, 8, 8, False, False, np.float64)
    assert kernels.gemm_runs_serial(8, 8, 8)
    original = lib.MKL_Set_Num_Threads_Local(0)
    try:
        for own in (0, 3):  # 0: the process-wide count, 3: a count of this thread's own
            lib.MKL_Set_Num_Threads_Local(own)
            kernels.gemm_rowmajor(A, B, C)
            assert lib.MKL_Set_Num_Threads_Local(0) == own
    finally:
        lib.MKL_Set_Num_Threads_Local(original)
    with threads.limit(2):
        kernels.gemm_rowmajor(A, B, C)
        assert lib.MKL_Get_Max_Threads() == 2
    with threads.limit(1):
        kernels.gemm_rowmajor(A, B, C)
        assert lib.MKL_Get_Max_Threads() == 1


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mkl_one_thread_runs_are_bit_identical_with_or_without_the_policy(dtype):
    gemm.use("mkl")
    threshold = gemm.serial_flops()
    runs = []
    try:
        for flops in (threshold, 0.0, 1e15):
            gemm.set_serial_flops(flops)
            rng = np.random.default_rng(4)
            X = rng.standard_normal((256, 300)).astype(dtype)
            y = rng.integers(0, 5, 256)
            model = fb.Sequential(
                [fb.Dense(200, "relu", input_dim=300), fb.Dense(5)],
                loss="softmax_cross_entropy",
                dtype=dtype,
                seed=1,
                n_threads=1,
            )
            model.fit(X, y, epochs=2, batch_size=128, verbose=0)
            runs.append(model.get_weights() + [model.predict_proba(X)])
    finally:
        gemm.set_serial_flops(threshold)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def wide_model(dtype, seed):
    """A model whose weight GEMMs sit above MKL's threshold (batch 256, 784 -> 512)."""
    return fb.Sequential(
        [fb.Dense(512, "relu", input_dim=784), fb.Dense(10)],
        loss="softmax_cross_entropy",
        dtype=dtype,
        seed=seed,
    )


@needs_mkl
def test_switching_providers_thresholds_and_threads_mid_session_is_safe():
    """A fit on MKL gives the same bits after a detour through SciPy, another
    threshold and another thread count, and a small model fitted at the same
    time in another thread changes nothing (the policy's count is per thread)."""
    from fastbp._kernels import kernels

    gemm.use("mkl")
    assert not kernels.gemm_runs_serial(256, 512, 784)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((512, 784)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    Xs = rng.standard_normal((400, 20)).astype(np.float32)
    ys = rng.integers(0, 3, 400)

    def fit_wide():
        model = wide_model(np.float32, 2)
        model.fit(X, y, epochs=2, batch_size=256, verbose=0)
        return model.get_weights()

    def fit_small():
        model = fb.Sequential(
            [fb.Dense(16, "tanh", input_dim=20), fb.Dense(3)],
            loss="softmax_cross_entropy",
            seed=3,
        )
        model.fit(Xs, ys, epochs=5, batch_size=16, verbose=0)
        return model.get_weights()

    reference, small_reference = fit_wide(), fit_small()
    threshold = gemm.serial_flops()
    gemm.use("scipy")
    fit_wide()
    gemm.use("mkl")
    gemm.set_serial_flops(1e15)
    try:
        fit_wide()
    finally:
        gemm.set_serial_flops(threshold)
    with threads.limit(1):
        fit_wide()
    results = {}

    def small_loop():
        results["small"] = [fit_small() for _ in range(3)]

    worker = threading.Thread(target=small_loop)
    worker.start()
    results["wide"] = fit_wide()
    worker.join(120)
    for a, b in zip(reference, results["wide"]):
        np.testing.assert_array_equal(a, b)
    for run in results["small"]:
        for a, b in zip(small_reference, run):
            np.testing.assert_array_equal(a, b)


@needs_mkl
def test_switching_providers_while_another_thread_trains_never_crashes():
    """gemm.use() from one thread while another fits a small model (its GEMMs go
    through MKL's one-thread setter) in a child process: it ends normally, and the
    model trained."""
    out = run(
        """
        import threading
        import numpy as np
        import fastbp as fb
        from fastbp import gemm

        gemm.use("mkl")
        rng = np.random.default_rng(0)
        X = rng.standard_normal((2000, 20)).astype(np.float32)
        y = rng.integers(0, 3, 2000)
        model = fb.Sequential(
            [fb.Dense(16, "tanh", input_dim=20), fb.Dense(3)],
            loss="softmax_cross_entropy",
            seed=0,
        )
        done = threading.Event()

        def switch():
            while not done.is_set():
                gemm.use("scipy")
                gemm.use("mkl")

        switcher = threading.Thread(target=switch)
        switcher.start()
        try:
            hist = model.fit(X, y, epochs=30, batch_size=1, verbose=0)
        finally:
            done.set()
            switcher.join()
        assert np.isfinite(hist.history["loss"]).all()
        print("trained", len(hist.history["loss"]))
        """
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained 30" in out.stdout
