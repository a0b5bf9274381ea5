"""The vectorised math of csrc/fbp_math.h (exp, expm1, tanh, log1p(exp(-a))), checked
through the activation and loss kernels that use it, against float64 NumPy over
dense grids and at the edges: 0, tiny, the clamp points, +-1e4, +-inf, NaN.

Errors are measured in units in the last place (ulp) of the result's dtype, at the
float64 reference. Where a formula cancels (gelu near its zeros, the derivatives of
silu and gelu), the ulp is taken at the size of the formula's terms instead: that
is the accuracy any evaluation in that dtype can promise. Results below the smallest
normal number are only held to an absolute error of that number (exp of very
negative inputs may flush to 0). Every assert message carries the measured figure.
"""

import numpy as np
import pytest

from fastbp import activations
from fastbp._kernels import kernels

# Measured float32 maxima (AVX2+FMA clone and SSE2 build) are 1-3.1 ulp; these bounds
# leave about one ulp of room for other compilers and instruction sets.
MAX_ULP = {"sigmoid": 4, "tanh": 4, "elu": 3, "softplus": 4.5, "silu": 5, "gelu": 4}
MAX_ULP_GRAD = {"softplus": 4, "silu": 5, "gelu": 6}
# float64 keeps to the backends' tolerance (docs/design.md §3), and to a few eps.
F64_REL = 1e-12
EPS64 = float(np.finfo(np.float64).eps)
F64_MAX_EPS = 8  # measured: <= 2.7 eps relative to the terms' size

TINY32 = float(np.finfo(np.float32).tiny)
GELU_C = np.sqrt(2 / np.pi)
GELU_K = 0.044715
EDGES = [
    0.0,
    1e-45,
    1e-40,
    1e-38,
    1e-30,
    1e-12,
    1e-8,
    1e-6,
    1e-3,
    0.25,
    0.34657359,
    0.5,
    0.62,
    0.6931472,
    1.0,
    2.0,
    4.5,
    8.0,
    9.01,
    15.0,
    17.0,
    30.0,
    44.4,
    87.33,
    88.37,
    88.72,
    88.7228,
    88.73,
    89.0,
    103.9,
    104.0,
    110.0,
    1e4,
    1e30,
    3.4e38,
]


def grid(dtype):
    """A dense grid over [-120, 120], magnitudes from 1e-40 to 1e5 of both signs, and
    the edge values with their float neighbours; finite values only."""
    lin = np.linspace(-120.0, 120.0, 480_001)
    mags = np.logspace(-40, 5, 40_001)
    edges = np.array(EDGES, dtype=dtype)
    edges = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    x = np.concatenate([lin, mags, -mags, edges.astype(np.float64), -edges.astype(np.float64)])
    x = x.astype(dtype)
    return x[np.isfinite(x)]


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def reference(name, x):
    """(f(x), size of f's terms) in float64, from the definitions."""
    with np.errstate(over="ignore", invalid="ignore"):
        if name == "sigmoid":
            f = _sigmoid(x)
            return f, np.abs(f)
        if name == "tanh":
            f = np.tanh(x)
            return f, np.abs(f)
        if name == "elu":
            f = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
            return f, np.abs(f)
        if name == "softplus":
            f = np.logaddexp(0.0, x)
            return f, np.abs(f)
        if name == "silu":  # below x = -87.3 sigmoid(x) is subnormal in float32
            s = _sigmoid(x)
            f = x * s
            return f, np.where(s >= TINY32, np.abs(f), 0.0)
        if name == "gelu":
            t = np.tanh(GELU_C * (x + GELU_K * x**3))
            f = 0.5 * x * (1 + t)
            return f, np.maximum(np.abs(f), 0.5 * np.abs(x) * np.maximum(np.abs(1 + t), 1.0))
    raise ValueError(name)


def reference_grad(name, x):
    """(f'(x), size of the terms of f'(x)) in float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        s = _sigmoid(x)
        if name == "softplus":
            return s, s
        if name == "silu":  # 1 - s cancels: its terms are 1 and s
            size = np.where(s >= TINY32, s * (1 + np.abs(x) * (1 + s)), 0.0)
            return s * (1 + x * (1 - s)), size
        if name == "gelu":  # 1 - t^2 cancels: its terms are 1 and t^2
            t = np.tanh(GELU_C * (x + GELU_K * x**3))
            factor = 0.5 * x * GELU_C * (1 + 3 * GELU_K * x * x)
            size = np.maximum(0.5 * (1 + np.abs(t)), np.abs(factor) * (1 + t * t))
            return 0.5 * (1 + t) + factor * (1 - t * t), size
    raise ValueError(name)


def forward(name, x):
    spec = activations.get(name)
    Z = np.ascontiguousarray(x.reshape(1, -1))
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, spec.code, spec.param)
    return A.ravel()


def backward(name, x):
    """f'(x), as dZ with dA = 1 (A from the forward kernel)."""
    spec = activations.get(name)
    Z = np.ascontiguousarray(x.reshape(1, -1))
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, spec.code, spec.param)
    dZ = np.empty_like(Z)
    kernels.activation_backward(Z, A, np.ones_like(Z), dZ, spec.code, spec.param)
    return dZ.ravel()


def ulp_error(got, x, ref, size, dtype):
    """Max error in ulps of dtype at size (normal range); (max ulp, worst x, max abs
    error where size is below the smallest normal)."""
    got = got.astype(np.float64)
    err = np.abs(got - ref)
    tiny = float(np.finfo(dtype).tiny)
    normal = size >= tiny
    ulp = np.spacing(size[normal].astype(dtype)).astype(np.float64)
    ulps = err[normal] / ulp
    worst = int(np.argmax(ulps))
    sub_err = float(err[~normal].max(initial=0.0))
    return float(ulps[worst]), float(x[normal][worst]), sub_err


def check_finite_agreement(got, ref, x):
    """Non-finite references must be matched exactly; finite ones must stay finite."""
    bad_inf = ~np.isfinite(ref) & (got.astype(np.float64) != ref)
    assert not bad_inf.any(), (
        f"x={x[bad_inf][:5]}: got {got[bad_inf][:5]}, expected {ref[bad_inf][:5]}"
    )
    bad_fin = np.isfinite(ref) & ~np.isfinite(got)
    assert not bad_fin.any(), (
        f"x={x[bad_fin][:5]}: got {got[bad_fin][:5]}, expected {ref[bad_fin][:5]}"
    )


# (name, "f" or "f'"): the forward values and the derivatives that are checked
FUNCTIONS = [(name, "f") for name in sorted(MAX_ULP)] + [
    (name, "f'") for name in sorted(MAX_ULP_GRAD)
]
FUNCTION_IDS = [name + ("'" if order == "f'" else "") for name, order in FUNCTIONS]


def compared(name, order, dtype):
    """(x, kernel result, float64 reference, size of the reference's terms) over the
    grid, where the comparison is meaningful; non-finite references already checked."""
    x = grid(dtype)
    if order == "f'":
        x = x[np.abs(x) < 1e4]  # silu' and gelu' overflow x^3 beyond, as NumPy's do
        got = backward(name, x)
        ref, size = reference_grad(name, x.astype(np.float64))
    else:
        got = forward(name, x)
        ref, size = reference(name, x.astype(np.float64))
        if name == "gelu":  # x^3 overflows from |x| ~ 1.5e12 (float32): compare below
            keep = np.abs(x) < (1e12 if dtype == np.float32 else 1e100)
            x, got, ref, size = x[keep], got[keep], ref[keep], size[keep]
    check_finite_agreement(got, ref, x)
    finite = np.isfinite(ref)
    return x[finite], got[finite], ref[finite], size[finite]


@pytest.mark.parametrize("name, order", FUNCTIONS, ids=FUNCTION_IDS)
def test_float32_within_ulps(name, order):
    label = name if order == "f" else f"{name}'"
    x, got, ref, size = compared(name, order, np.float32)
    worst, at, sub_err = ulp_error(got, x, ref, size, np.float32)
    bound = (MAX_ULP if order == "f" else MAX_ULP_GRAD)[name]
    print(f"{label}: max {worst:.2f} ulp at x={at:.9g}")
    assert worst <= bound, f"{label}: max error {worst:.2f} ulp at x={at:.9g}"
    assert sub_err <= np.finfo(np.float32).tiny, f"{label}: abs error {sub_err:g} below normal"


@pytest.mark.parametrize("name, order", FUNCTIONS, ids=FUNCTION_IDS)
def test_float64_relative(name, order):
    label = name if order == "f" else f"{name}'"
    x, got, ref, size = compared(name, order, np.float64)
    ok = size >= np.finfo(np.float64).tiny
    rel = np.abs(got[ok] - ref[ok]) / size[ok]
    worst = int(np.argmax(rel))
    print(f"{label} float64: max {rel[worst] / EPS64:.2f} eps at x={x[ok][worst]:.17g}")
    assert rel[worst] <= min(F64_REL, F64_MAX_EPS * EPS64), (
        f"{label}: max relative error {rel[worst]:.3g} "
        f"({rel[worst] / EPS64:.2f} eps) at x={x[ok][worst]:.17g}"
    )


# --- special values -------------------------------------------------------------------

INF, NAN = np.inf, np.nan
SPECIAL = {
    # name: [(x, f(x)), ...]; exact expectations
    "sigmoid": [(INF, 1.0), (-INF, 0.0), (1e4, 1.0), (-1e4, 0.0), (0.0, 0.5), (200.0, 1.0)],
    "tanh": [
        (INF, 1.0),
        (-INF, -1.0),
        (1e4, 1.0),
        (-1e4, -1.0),
        (20.0, 1.0),
        (-20.0, -1.0),
        (0.0, 0.0),
        (1e-30, 1e-30),
        (-1e-30, -1e-30),
    ],
    "elu": [
        (INF, INF),
        (-INF, -1.0),
        (1e4, 1e4),
        (-1e4, -1.0),
        (-200.0, -1.0),
        (0.0, 0.0),
        (-1e-30, -1e-30),
    ],
    "softplus": [(INF, INF), (-INF, 0.0), (1e4, 1e4), (-1e4, 0.0), (3e38, 3e38), (100.0, 100.0)],
    "silu": [(INF, INF), (1e4, 1e4), (-1e4, 0.0), (0.0, 0.0)],
    "gelu": [(INF, INF), (1e4, 1e4), (-1e4, 0.0), (0.0, 0.0)],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_values(name, dtype):
    xs = np.array([x for x, _ in SPECIAL[name]] + [NAN], dtype=dtype)
    expected = np.array([f for _, f in SPECIAL[name]] + [NAN], dtype=dtype)
    got = forward(name, xs)
    np.testing.assert_array_equal(got, expected, err_msg=f"{name} at {xs}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_keeps_the_sign_of_zero(dtype):
    got = forward("tanh", np.array([0.0, -0.0], dtype=dtype))
    assert not np.signbit(got[0]) and np.signbit(got[1]), f"tanh(+0), tanh(-0) = {got}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(MAX_ULP_GRAD))
def test_derivative_saturates(name, dtype):
    """f'(x) far out: softplus', silu' and gelu' are 0 on the left and 1 on the right."""
    got = backward(name, np.array([-1e3, 1e3, -1e4, 1e4], dtype=dtype))
    np.testing.assert_array_equal(
        got, np.array([0.0, 1.0, 0.0, 1.0], dtype=dtype), err_msg=f"{name}'"
    )


# --- losses ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_cols", [3, 10, 37, 1024])
def test_softmax_xent_over_a_wide_range(dtype, n_cols):
    """Softmax rows spread over +-90 (exp(z - m) reaches the flush-to-zero range)."""
    rng = np.random.default_rng(7)
    Z = rng.uniform(-90, 90, size=(64, n_cols)).astype(dtype)
    Z[0] = 0.0  # all exps equal 1
    Z[1, :] = -1e4
    Z[1, 0] = 1e4  # one exp is 1, the rest underflow to 0
    y = rng.integers(0, n_cols, size=64).astype(np.int64)
    dout = np.empty_like(Z)
    total, _ = kernels.loss_and_output_grad(1, Z, np.empty_like(Z), y, dout, 1.0)
    # z - m rounded in dtype as the kernel (and NumPy's backend) does, then float64
    shifted = (Z - Z.max(axis=1, keepdims=True)).astype(np.float64)
    P = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    onehot = np.zeros_like(P)
    onehot[np.arange(64), y] = 1.0
    # -log softmax(z)[y] = log sum exp(z - m) - (z[y] - m)
    loss = (np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(64), y]).sum()
    finfo = np.finfo(dtype)
    size = np.maximum(P, onehot)
    err = np.abs(dout.astype(np.float64) - (P - onehot))
    normal = size >= finfo.tiny
    ulps = float((err[normal] / np.spacing(size[normal].astype(dtype))).max())
    limit = 6 if dtype == np.float32 else 1e-12 / finfo.eps
    assert ulps <= limit, f"softmax gradient: max {ulps:.2f} ulp"
    assert float(err[~normal].max(initial=0.0)) <= finfo.tiny
    rel = abs(total - loss) / abs(loss)
    assert rel <= (1e-6 if dtype == np.float32 else 1e-13), f"loss relative error {rel:.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_bce_loss_over_a_wide_range(dtype):
    """The BCE loss's log1p(exp(-|z|)) term, z over +-120 (both saturated ends)."""
    rng = np.random.default_rng(8)
    Z = np.linspace(-120, 120, 64 * 257).reshape(64, 257).astype(dtype)
    Y = (rng.uniform(size=Z.shape) < 0.5).astype(dtype)
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, activations.get("sigmoid").code, 0.0)
    dout = np.empty_like(Z)
    total, _ = kernels.loss_and_output_grad(3, Z, A, Y, dout, 1.0)
    Z64, Y64 = Z.astype(np.float64), Y.astype(np.float64)
    # each term in float64; the kernel sums dtype terms in double
    terms = np.maximum(Z64, 0) - Y64 * Z64 + np.log1p(np.exp(-np.abs(Z64)))
    rel = abs(total - terms.sum()) / terms.sum()
    assert rel <= (1e-6 if dtype == np.float32 else 1e-13), f"BCE loss relative error {rel:.3g}"
