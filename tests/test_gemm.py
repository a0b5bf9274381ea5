"""The GEMM provider (fastbp.gemm): choosing, switching and what each gives.

The MKL cases run against the real mkl_rt of the `mkl` wheel and skip when it is
not installed (CI installs it).
"""

import copy
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastbp as fb
from fastbp import gemm, threads

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


def test_auto_prefers_mkl_when_installed():
    assert gemm.use("auto").name == ("mkl" if HAS_MKL else "scipy")


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
def test_mkl_trains_the_same_model_to_rounding(dtype, rtol):
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
