"""The small path (fastbp.gemm.small_flops): fastbp's own loops for small GEMMs.

Checked against float64 NumPy and against the provider itself, over shapes that hit
every edge of the tiling (blocks of 64 bytes of columns, tiles of 6/4/2/1 rows, the
transposed layout chosen for narrow outputs, k longer than one panel), both dtypes,
every transpose and the BLAS rules for alpha and beta.
"""

import numpy as np
import pytest

import fastbp as fb
from fastbp import gemm
from tests.helpers import gemm_operands as operands

pytestmark = pytest.mark.skipif(
    "cython" not in fb.available_backends(), reason="the compiled backend is not built"
)

TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]
# (m, n, k): the tiny and small configs' shapes, single rows and columns, every row
# remainder, column counts on both sides of a block (8 and 16 values), and k > 512
SHAPES = [
    (32, 32, 64),
    (64, 32, 32),
    (32, 64, 10),
    (32, 10, 32),
    (64, 10, 128),
    (128, 10, 64),
    (1, 1, 1),
    (1, 17, 3),
    (17, 1, 3),
    (5, 7, 1),
    (6, 16, 9),
    (7, 15, 2),
    (9, 33, 11),
    (3, 8, 600),
    (11, 9, 1100),
    (2, 130, 5),
    (130, 2, 5),
]


@pytest.fixture
def small_path():
    """The small path on for every GEMM during the test, back to before after."""
    before = gemm.set_small_flops(1e18)
    yield
    gemm.set_small_flops(before)


def reference(A, B, C, trans_a, trans_b, alpha, beta):
    """alpha op(A) @ op(B) + beta C in float64, and a bound on the rounding of it."""
    op_a = (A.T if trans_a else A).astype(np.float64)
    op_b = (B.T if trans_b else B).astype(np.float64)
    exact = alpha * (op_a @ op_b) + beta * C.astype(np.float64)
    magnitude = abs(alpha) * (np.abs(op_a) @ np.abs(op_b)) + abs(beta) * np.abs(C)
    eps = np.finfo(A.dtype).eps
    return exact, 2 * (op_a.shape[1] + 2) * eps * magnitude


@pytest.mark.usefixtures("small_path")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", TRANSPOSES)
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_small_path_equals_float64_numpy_to_rounding(m, n, k, trans_a, trans_b, dtype):
    from fastbp._kernels import kernels

    assert kernels.gemm_runs_small(m, n, k)
    rng = np.random.default_rng(m * 10_000 + n * 100 + k)
    for alpha, beta in [(1.0, 0.0), (-0.01, 1.0), (0.5, -0.25)]:
        A, B, C = operands(rng, m, n, k, trans_a, trans_b, dtype)
        expected, bound = reference(A, B, C, trans_a, trans_b, alpha, beta)
        kernels.gemm_rowmajor(A, B, C, trans_a, trans_b, alpha, beta)
        assert C.dtype == dtype
        assert np.all(np.abs(C - expected) <= bound), (alpha, beta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", TRANSPOSES)
def test_small_path_agrees_with_the_provider(trans_a, trans_b, dtype):
    from fastbp._kernels import kernels

    rng = np.random.default_rng(5)
    before = gemm.small_flops()
    try:
        for m, n, k in SHAPES:
            A, B, C = operands(rng, m, n, k, trans_a, trans_b, dtype)
            results = []
            for flops in (1e18, 0.0):
                gemm.set_small_flops(flops)
                assert kernels.gemm_runs_small(m, n, k) == (flops > 0)
                out = C.copy()
                kernels.gemm_rowmajor(A, B, out, trans_a, trans_b, 0.75, 0.5)
                results.append(out)
            _, bound = reference(A, B, C, trans_a, trans_b, 0.75, 0.5)
            assert np.all(np.abs(results[0] - results[1]) <= 2 * bound), (m, n, k)
    finally:
        gemm.set_small_flops(before)


@pytest.mark.usefixtures("small_path")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_beta_zero_never_reads_c_and_alpha_zero_only_scales(dtype):
    """BLAS's rules: C's old NaNs vanish when beta is 0; alpha = 0 (or k = 0) reads
    neither A nor B, so their NaNs do not reach C."""
    from fastbp._kernels import kernels

    rng = np.random.default_rng(6)
    A, B, _ = operands(rng, 9, 20, 7, False, False, dtype)
    C = np.full((9, 20), np.nan, dtype)
    expected, bound = reference(A, B, np.zeros_like(C), False, False, 1.0, 0.0)
    kernels.gemm_rowmajor(A, B, C, alpha=1.0, beta=0.0)
    assert np.all(np.abs(C - expected) <= bound)
    A[2, 3] = np.nan
    C = rng.standard_normal((9, 20)).astype(dtype)
    expected = 0.5 * C
    kernels.gemm_rowmajor(A, B, C, alpha=0.0, beta=0.5)
    np.testing.assert_array_equal(C, expected)
    C[:] = np.nan
    kernels.gemm_rowmajor(A, B, C, alpha=0.0, beta=0.0)
    np.testing.assert_array_equal(C, 0)
    C = np.ones((9, 20), dtype)
    empty_a, empty_b = np.zeros((9, 0), dtype), np.zeros((0, 20), dtype)
    kernels.gemm_rowmajor(empty_a, empty_b, C, alpha=1.0, beta=2.0)
    np.testing.assert_array_equal(C, 2)


@pytest.mark.usefixtures("small_path")
def test_nan_and_inf_in_the_inputs_propagate_as_in_blas():
    from fastbp._kernels import kernels

    rng = np.random.default_rng(7)
    A, B, C = operands(rng, 10, 12, 6, False, False, np.float32)
    A[3, 2] = np.nan
    B[4, 5] = np.inf
    kernels.gemm_rowmajor(A, B, C)
    assert np.isnan(C[3]).all()
    rows = [i for i in range(10) if i != 3]
    assert np.isinf(C[rows, 5]).all()
    others = np.delete(np.delete(C, 3, axis=0), 5, axis=1)
    assert np.isfinite(others).all()


def test_the_threshold_decides_by_shape_and_is_checked():
    from fastbp._kernels import kernels

    threshold = gemm.small_flops()
    assert threshold == gemm.SMALL_FLOPS > 0
    for m, n, k in [(32, 32, 64), (64, 10, 128), (128, 256, 128), (64, 128, 784)]:
        assert kernels.gemm_runs_small(m, n, k) == (2 * m * n * k <= threshold), (m, n, k)
    for value, error in [
        ("1e6", TypeError),
        (True, TypeError),
        (None, TypeError),
        (-1, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
    ]:
        with pytest.raises(error, match="small-path threshold"):
            gemm.set_small_flops(value)
        assert gemm.small_flops() == threshold
    previous = gemm.set_small_flops(0)
    try:
        assert previous == threshold
        assert not kernels.gemm_runs_small(1, 1, 1)
        gemm.use("scipy")  # the threshold stays across provider switches
        assert gemm.small_flops() == 0
        lines = []
        fb.show_config(lines.append)
        assert any("small path off" in line for line in lines)
    finally:
        gemm.set_small_flops(threshold)
    assert kernels.gemm_runs_small(1, 1, 1)
    lines = []
    fb.show_config(lines.append)
    assert any("in fastbp's own loops" in line for line in lines)


def tiny_fit(dtype, n_threads, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((256, 64)).astype(dtype)
    y = rng.integers(0, 10, 256)
    model = fb.Sequential(
        [fb.Dense(32, "relu", input_dim=64), fb.Dense(10)],
        loss="softmax_cross_entropy",
        dtype=dtype,
        seed=seed,
        n_threads=n_threads,
    )
    history = model.fit(X, y, epochs=3, batch_size=32, verbose=0)
    return model, history, X


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-4), (np.float64, 1e-11)])
def test_a_model_trains_to_the_same_weights_with_or_without_the_small_path(dtype, rtol):
    before = gemm.small_flops()
    runs = []
    try:
        for flops in (1e18, 0.0):
            gemm.set_small_flops(flops)
            runs.append(tiny_fit(dtype, n_threads=None))
    finally:
        gemm.set_small_flops(before)
    (on, on_history, _), (off, off_history, _) = runs
    for a, b in zip(on.get_weights(), off.get_weights()):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(on_history.history["loss"], off_history.history["loss"], rtol=rtol)


@pytest.mark.usefixtures("small_path")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_path_results_do_not_depend_on_the_thread_count(dtype):
    """Its loops run on the calling thread whatever n_threads says: same bits."""
    one, _, X = tiny_fit(dtype, n_threads=1)
    two, _, _ = tiny_fit(dtype, n_threads=2)
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.predict_proba(X), two.predict_proba(X))


@pytest.mark.usefixtures("small_path")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engine_gradients_through_the_small_path_equal_numpys(dtype):
    """The NumPy twin and the compiled engine, one backward pass on a tiny net."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((29, 13)).astype(dtype)
    y = rng.integers(0, 5, 29)
    grads = {}
    for backend in ("numpy", "cython"):
        model = fb.Sequential(
            [fb.Dense(11, "tanh", input_dim=13), fb.Dense(7, "relu"), fb.Dense(5)],
            loss="softmax_cross_entropy",
            dtype=dtype,
            seed=2,
            backend=backend,
        )
        logits = model.forward(X)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(29), y] -= 1
        grads[backend] = model.backward(probs / 29)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    for a, b in zip(grads["numpy"], grads["cython"]):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@pytest.mark.usefixtures("small_path")
def test_a_thread_with_a_small_stack_trains_through_the_small_path():
    """The panel lives on the stack (16 KiB): a 256 KiB thread must have room."""
    import threading

    results = {}

    def train():
        results["weights"] = tiny_fit(np.float64, n_threads=1)[0].get_weights()

    previous = threading.stack_size(256 * 1024)
    try:
        worker = threading.Thread(target=train)
        worker.start()
        worker.join()
    finally:
        threading.stack_size(previous)
    expected = tiny_fit(np.float64, n_threads=1)[0].get_weights()
    for a, b in zip(results["weights"], expected):
        np.testing.assert_array_equal(a, b)
