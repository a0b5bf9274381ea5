"""Single kernels: the compiled ones (fastbp._kernels.kernels) against the NumPy
code the NumPy backend runs for the same job.

Each benchmark group holds the two implementations of one kernel at one dtype
and size, so `pytest benchmarks/test_kernels.py` prints them side by side. Every
test then checks the result it timed against a float64 computation written
from the definitions (docs/design.md §1), so a wrong kernel fails here too.

Sizes are (n_samples, d_in, d_out) of one dense layer; the element-wise kernels
(bias gradient, activation derivatives) work on its (n_samples, d_out) outputs.
The compiled kernels are called through their memoryview wrappers, which check
shapes on each call (about a microsecond, visible at the smallest size) and then
run without the GIL.
"""

import numpy as np
import pytest

from benchmarks.conftest import assert_close, skip_unless_available
from fastbp.activations import ACTIVATIONS
from fastbp.backends.numpy_backend import ACTIVATIONS as NUMPY_ACTIVATIONS
from fastbp.backends.numpy_backend import activate

try:
    from fastbp._kernels import kernels
except ImportError:  # not built: the "cython" cases skip
    kernels = None

pytestmark = pytest.mark.benchmark(max_time=0.5)

SIZES = [(32, 64, 32), (64, 784, 128), (256, 784, 1024)]
SIZE_IDS = [f"{n}x{d_in}-{d_out}" for n, d_in, d_out in SIZES]
IMPLEMENTATIONS = ["cython", "numpy"]
RELU = ACTIVATIONS["relu"].code


def layer_arrays(n_samples, d_in, d_out, dtype, seed=0):
    """Inputs of one dense layer, all C-contiguous of dtype.

    X : (n_samples, d_in); W : (d_in, d_out), scaled as He initialisation does;
    b : (d_out,); dA : (n_samples, d_out), an upstream gradient.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, d_in)).astype(dtype)
    W = (rng.standard_normal((d_in, d_out)) * np.sqrt(2.0 / d_in)).astype(dtype)
    b = (0.1 * rng.standard_normal(d_out)).astype(dtype)
    dA = rng.standard_normal((n_samples, d_out)).astype(dtype)
    return X, W, b, dA


def as64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


# --- reference derivatives f'(Z), from the definitions (kinks as in PyTorch) ------------


def _sigmoid(Z):
    return 1.0 / (1.0 + np.exp(-Z))


def _gelu_derivative(Z, param):
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (Z + 0.044715 * Z**3))
    return 0.5 * (1 + t) + 0.5 * Z * (1 - t * t) * c * (1 + 3 * 0.044715 * Z * Z)


REFERENCE_DERIVATIVES = {
    "identity": lambda Z, p: np.ones_like(Z),
    "sigmoid": lambda Z, p: _sigmoid(Z) * (1.0 - _sigmoid(Z)),
    "tanh": lambda Z, p: 1.0 - np.tanh(Z) ** 2,
    "relu": lambda Z, p: (Z > 0).astype(np.float64),
    "leaky_relu": lambda Z, p: np.where(Z > 0, 1.0, p),
    "elu": lambda Z, p: np.where(Z > 0, 1.0, p * np.exp(np.minimum(Z, 0))),
    "softplus": lambda Z, p: _sigmoid(Z),
    "hard_sigmoid": lambda Z, p: np.where((Z > -2) & (Z < 2), 0.25, 0.0),
    "hard_tanh": lambda Z, p: np.where((Z > -1) & (Z < 1), 1.0, 0.0),
    "silu": lambda Z, p: _sigmoid(Z) * (1 + Z * (1 - _sigmoid(Z))),
    "gelu": _gelu_derivative,
}


# the activations with a kernel of their own (prelu's slopes are a layer's parameter)
KERNEL_ACTIVATIONS = [name for name, spec in ACTIVATIONS.items() if not spec.learnable]


def reference_derivative(name, Z, param):
    """f'(Z) in float64 for an activation name; Z : (n_samples, n_units)."""
    if name not in REFERENCE_DERIVATIVES:
        raise ValueError(f"no reference derivative for {name!r}")
    return REFERENCE_DERIVATIVES[name](Z, param)


# --- dense layer --------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_dense_forward(benchmark, implementation, dtype, size):
    """Z = X @ W + b, A = relu(Z): one GEMM plus the fused bias and activation."""
    skip_unless_available(implementation)
    n, d_in, d_out = size
    benchmark.group = f"dense_forward relu {dtype} {n}x{d_in}->{d_out}"
    X, W, b, _ = layer_arrays(n, d_in, d_out, dtype)
    if implementation == "cython":
        Z = np.empty((n, d_out), dtype=dtype)
        A = np.empty_like(Z)

        def forward():
            kernels.dense_forward(X, W, b, Z, A, RELU, 0.0)
            return A
    else:
        relu = NUMPY_ACTIVATIONS[RELU][0]

        def forward():
            return relu(X @ W + b, 0.0)

    A = benchmark(forward)

    X64, W64, b64 = as64(X, W, b)
    assert_close(A, np.maximum(X64 @ W64 + b64, 0.0), dtype)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_dense_backward(benchmark, implementation, dtype, size):
    """dZ = dA * relu'(Z), dW = X.T @ dZ, db = column sums of dZ, dX = dZ @ W.T.

    The compiled kernel turns delta from dA into dZ in place, so each timed call
    first copies dA back into delta (a copy of n_samples x d_out, small next to
    the two GEMMs); the NumPy code allocates dZ instead, as the backend does.
    """
    skip_unless_available(implementation)
    n, d_in, d_out = size
    benchmark.group = f"dense_backward relu {dtype} {n}x{d_in}->{d_out}"
    X, W, b, dA = layer_arrays(n, d_in, d_out, dtype)
    Z = X @ W + b
    A = np.maximum(Z, 0)
    dW = np.empty_like(W)
    db = np.empty_like(b)
    if implementation == "cython":
        delta = np.empty_like(dA)
        dX = np.empty_like(X)

        def backward():
            np.copyto(delta, dA)
            kernels.dense_backward(X, W, Z, A, delta, dW, db, dX, RELU, 0.0)
            return dW, db, dX
    else:
        relu_derivative = NUMPY_ACTIVATIONS[RELU][1]

        def backward():
            dZ = dA * relu_derivative(Z, A, 0.0)
            dW[...] = X.T @ dZ
            db[...] = dZ.sum(axis=0)
            return dW, db, dZ @ W.T

    got_dW, got_db, got_dX = benchmark(backward)

    X64, W64, Z64, dA64 = as64(X, W, Z, dA)
    dZ64 = dA64 * (Z64 > 0)
    assert_close(got_dW, X64.T @ dZ64, dtype)
    assert_close(got_db, dZ64.sum(axis=0), dtype)
    assert_close(got_dX, dZ64 @ W64.T, dtype)


# --- element-wise kernels ---------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_bias_gradient(benchmark, implementation, size):
    """db = dZ.sum(axis=0) over dZ : (n_samples, d_out), float32."""
    skip_unless_available(implementation)
    n, _, d_out = size
    dtype = "float32"
    benchmark.group = f"bias_gradient {dtype} {n}x{d_out}"
    dZ = layer_arrays(n, 1, d_out, dtype)[3]
    db = np.empty(d_out, dtype=dtype)
    if implementation == "cython":

        def bias_gradient():
            kernels.bias_gradient(dZ, db)
            return db
    else:

        def bias_gradient():
            db[...] = dZ.sum(axis=0)
            return db

    got = benchmark(bias_gradient)

    assert_close(got, np.asarray(dZ, dtype=np.float64).sum(axis=0), dtype)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("activation", list(REFERENCE_DERIVATIVES))
def test_activation_derivative(benchmark, implementation, size, activation):
    """dZ = dA * f'(Z) over (n_samples, d_out), float32, for each activation."""
    skip_unless_available(implementation)
    n, _, d_out = size
    dtype = "float32"
    benchmark.group = f"activation_backward {activation} {dtype} {n}x{d_out}"
    spec = ACTIVATIONS[activation]
    f, f_derivative = NUMPY_ACTIVATIONS[spec.code]
    rng = np.random.default_rng(1)
    Z = (2.0 * rng.standard_normal((n, d_out))).astype(dtype)
    A = np.ascontiguousarray(f(Z, spec.default_param), dtype=dtype)
    dA = rng.standard_normal((n, d_out)).astype(dtype)
    if implementation == "cython":
        dZ = np.empty_like(dA)

        def activation_backward():
            kernels.activation_backward(Z, A, dA, dZ, spec.code, spec.default_param)
            return dZ
    else:

        def activation_backward():
            return dA * f_derivative(Z, A, spec.default_param)

    got = benchmark(activation_backward)

    Z64, dA64 = as64(Z, dA)
    assert_close(got, dA64 * reference_derivative(activation, Z64, spec.default_param), dtype)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("activation", KERNEL_ACTIVATIONS)
def test_activation_forward(benchmark, implementation, dtype, size, activation):
    """A = f(Z) over (n_samples, d_out), for each activation."""
    skip_unless_available(implementation)
    n, _, d_out = size
    benchmark.group = f"activation_forward {activation} {dtype} {n}x{d_out}"
    spec = ACTIVATIONS[activation]

    def f(Z, param):
        return activate(spec.code, Z, param)

    rng = np.random.default_rng(1)
    Z = (2.0 * rng.standard_normal((n, d_out))).astype(dtype)
    if implementation == "cython":
        A = np.empty_like(Z)

        def activation_forward():
            kernels.activation_forward(Z, A, spec.code, spec.default_param)
            return A
    else:

        def activation_forward():
            return f(Z, spec.default_param)

    got = benchmark(activation_forward)

    assert_close(got, f(Z.astype(np.float64), spec.default_param), dtype)
