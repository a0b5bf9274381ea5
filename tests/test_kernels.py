"""Every compiled kernel: against centred differences (float64) and against its
NumPy twin (float32 and float64)."""

import numpy as np
import pytest

from fastbp import activations, losses
from fastbp._kernels import kernels
from fastbp.backends import numpy_backend as twin
from fastbp.backends.numpy_backend import ACTIVATIONS as NP_ACTIVATIONS
from fastbp.backends.numpy_backend import LOSSES as NP_LOSSES
from tests.helpers import BACKEND_RTOL, FD_RTOL, numerical_gradient, rel_error

# every activation with a kernel code (prelu has kernels of its own, tested below)
ACT_NAMES = sorted(name for name, spec in activations.ACTIVATIONS.items() if not spec.learnable)


def away_from_kinks(rng, shape, dtype=np.float64):
    """Normal values with |z| >= 0.05 so finite differences never straddle a kink."""
    Z = rng.standard_normal(shape)
    Z = np.where(np.abs(Z) < 0.05, 0.05 * np.sign(Z + 1e-12), Z)
    return Z.astype(dtype)


def act_of(name):
    spec = activations.get(name)
    return spec.code, spec.param


# --- GEMM ------------------------------------------------------------------------------


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 5, 3), (33, 17, 65)])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, m, n, k):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    expected = 0.5 * ((A.T if trans_a else A) @ (B.T if trans_b else B)) + 2.0 * C
    kernels.gemm_rowmajor(A, B, C, trans_a, trans_b, 0.5, 2.0)
    assert rel_error(C, expected) <= BACKEND_RTOL[dtype]


def test_gemm_rejects_mismatched_shapes():
    A, B, C = np.ones((3, 4)), np.ones((5, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match="inner dimensions"):
        kernels.gemm_rowmajor(A, B, C)


# --- activations ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ACT_NAMES)
def test_activation_forward_matches_numpy(dtype, name):
    code, param = act_of(name)
    rng = np.random.default_rng(1)
    Z = (rng.standard_normal((13, 9)) * 4).astype(dtype)
    Z[0, :3] = [0, 30, -30]  # the kink and saturation
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, code, param)
    assert rel_error(A, twin.activate(code, Z, param)) <= BACKEND_RTOL[dtype]


@pytest.mark.parametrize("name", ACT_NAMES)
def test_activation_derivative_matches_finite_differences(name):
    code, param = act_of(name)
    rng = np.random.default_rng(2)
    Z = away_from_kinks(rng, (6, 5))
    G = rng.standard_normal(Z.shape)

    def loss():
        A = np.empty_like(Z)
        kernels.activation_forward(Z, A, code, param)
        return float(np.sum(G * A))

    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, code, param)
    dZ = np.empty_like(Z)
    kernels.activation_backward(Z, A, G, dZ, code, param)
    assert rel_error(dZ, numerical_gradient(loss, Z)) < FD_RTOL


@pytest.mark.parametrize("name", ACT_NAMES)
def test_activation_derivative_matches_numpy(dtype, name):
    code, param = act_of(name)
    rng = np.random.default_rng(3)
    Z = (rng.standard_normal((11, 7)) * 3).astype(dtype)
    Z[0, 0] = 0  # derivative at the kink
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, code, param)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    dZ = np.empty_like(Z)
    kernels.activation_backward(Z, A, dA, dZ, code, param)
    assert rel_error(dZ, twin.activation_backward(code, Z, A, dA, param)) <= BACKEND_RTOL[dtype]


@pytest.mark.parametrize(
    "name, z, expected",
    [
        ("relu", 0.0, 0.0),
        ("leaky_relu", 0.0, 0.01),
        ("elu", 0.0, 1.0),
        ("hard_tanh", 1.0, 0.0),
        ("hard_tanh", -1.0, 0.0),
        ("hard_tanh", 0.999, 1.0),
        ("hard_sigmoid", 2.0, 0.0),
        ("hard_sigmoid", -2.0, 0.0),
        ("hard_sigmoid", 1.999, 0.25),
    ],
)
def test_derivatives_at_kinks(backend, name, z, expected):
    """relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha as PyTorch; the clipped
    functions have slope only strictly inside their ramps (docs/design.md §1)."""
    code, param = act_of(name)
    Z = np.full((1, 1), z)
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, code, param)
    if backend == "cython":
        dZ = np.empty_like(Z)
        kernels.activation_backward(Z, A, np.ones_like(Z), dZ, code, param)
    else:
        dZ = NP_ACTIVATIONS[code][1](Z, A, param)
    assert dZ[0, 0] == expected


@pytest.mark.parametrize("name", ACT_NAMES)
def test_numpy_twin_keeps_the_dtype(dtype, name):
    code, param = act_of(name)
    Z = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    A = twin.activate(code, Z, param)
    assert A.dtype == dtype and twin.activation_backward(code, Z, A, A, param).dtype == dtype


def test_hard_sigmoid_is_the_seeds_definition():
    Z = np.array([[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]])
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, *act_of("hard_sigmoid"))
    assert A.tolist() == [[0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]]


def test_sigmoid_and_tanh_stay_finite_for_huge_inputs(dtype):
    Z = np.array([[-1e4, -100, 0, 100, 1e4]], dtype=dtype)
    for name in ("sigmoid", "tanh"):
        code, param = act_of(name)
        A = np.empty_like(Z)
        kernels.activation_forward(Z, A, code, param)
        dZ = np.empty_like(Z)
        kernels.activation_backward(Z, A, np.ones_like(Z), dZ, code, param)
        assert np.isfinite(A).all() and np.isfinite(dZ).all()
        assert A[0, 0] == (0 if name == "sigmoid" else -1) and A[0, -1] == 1


@pytest.mark.parametrize("name", ["softplus", "elu", "silu", "gelu"])
def test_smooth_activations_stay_finite_for_huge_inputs(dtype, name):
    code, param = act_of(name)
    Z = np.array([[-1e4, -100, 0, 100, 1e4]], dtype=dtype)
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, code, param)
    dZ = np.empty_like(Z)
    kernels.activation_backward(Z, A, np.ones_like(Z), dZ, code, param)
    assert np.isfinite(A).all() and np.isfinite(dZ).all()
    assert A[0, -1] == dtype(1e4)


# --- softmax, PReLU and maxout ---------------------------------------------------------


def test_softmax_backward_is_the_jacobian_product(dtype):
    """dZ = J^T dA with J = diag(s) - s s^T, built explicitly row by row."""
    rng = np.random.default_rng(20)
    Z = (rng.standard_normal((5, 4)) * 3).astype(dtype)
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    code = activations.get("softmax").code
    kernels.activation_forward(Z, A, code)
    dA = rng.standard_normal(Z.shape).astype(dtype)
    kernels.activation_backward(Z, A, dA, dZ, code)
    for s, da, dz in zip(A.astype(np.float64), dA, dZ):
        jacobian = np.diag(s) - np.outer(s, s)
        assert rel_error(dz, jacobian.T @ da) <= BACKEND_RTOL[dtype]
    assert rel_error(A.sum(axis=1), np.ones(5)) <= BACKEND_RTOL[dtype]


def test_softmax_stays_finite_for_huge_inputs(dtype):
    Z = np.array([[1e4, -1e4, 0], [1e4, 1e4, 1e4]], dtype=dtype)
    A = np.empty_like(Z)
    kernels.activation_forward(Z, A, activations.get("softmax").code)
    assert np.array_equal(A, np.array([[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], dtype))


def prelu_case(rng, dtype, shape=(9, 6)):
    Z = away_from_kinks(rng, shape, dtype)
    alpha = rng.uniform(-0.5, 0.8, shape[1]).astype(dtype)
    return Z, alpha


def test_prelu_matches_finite_differences():
    rng = np.random.default_rng(21)
    Z, alpha = prelu_case(rng, np.float64)
    G = rng.standard_normal(Z.shape)

    def loss():
        A = np.empty_like(Z)
        kernels.prelu_forward(Z, alpha, A)
        return float(np.sum(G * A))

    dZ, dalpha = np.empty_like(Z), np.empty_like(alpha)
    kernels.prelu_backward(Z, alpha, G, dZ, dalpha)
    assert rel_error(dZ, numerical_gradient(loss, Z)) < FD_RTOL
    assert rel_error(dalpha, numerical_gradient(loss, alpha)) < FD_RTOL


def test_prelu_matches_numpy(dtype):
    rng = np.random.default_rng(22)
    Z, alpha = prelu_case(rng, dtype, (33, 7))
    Z[0, :] = 0  # the kink: slope alpha, as PyTorch
    A = np.empty_like(Z)
    kernels.prelu_forward(Z, alpha, A)
    assert rel_error(A, twin.prelu(Z, alpha)) <= BACKEND_RTOL[dtype]
    dA = rng.standard_normal(Z.shape).astype(dtype)
    dZ, dalpha = dA.copy(), np.empty_like(alpha)
    kernels.prelu_backward(Z, alpha, dZ, dZ, dalpha)  # in place, as the engine runs it
    dZ_np, dalpha_np = twin.prelu_backward(Z, alpha, dA)
    assert rel_error(dZ, dZ_np) <= BACKEND_RTOL[dtype]
    assert rel_error(dalpha, dalpha_np) <= BACKEND_RTOL[dtype]
    assert np.array_equal(dZ[0], alpha * dA[0])


@pytest.mark.parametrize("pieces", [2, 3, 5])
def test_maxout_matches_finite_differences(pieces):
    rng = np.random.default_rng(23)
    Z = rng.standard_normal((6, 4 * pieces))  # ties have probability zero
    G = rng.standard_normal((6, 4))

    def loss():
        A = np.empty((6, 4))
        kernels.maxout_forward(Z, A, pieces)
        return float(np.sum(G * A))

    dZ = np.empty_like(Z)
    kernels.maxout_backward(Z, G, dZ, pieces)
    assert rel_error(dZ, numerical_gradient(loss, Z)) < FD_RTOL
    # each unit's gradient reaches exactly one piece
    assert np.array_equal((dZ.reshape(6, 4, pieces) != 0).sum(axis=2), np.ones((6, 4)))


def test_maxout_matches_numpy_and_breaks_ties_to_the_first_piece(dtype):
    rng = np.random.default_rng(24)
    Z = rng.standard_normal((17, 15)).astype(dtype)  # 5 units of 3 pieces
    Z[0, 0:3] = [2, 2, 1]  # a tie: the first piece wins
    Z[1, 3:6] = [-1, 4, 4]
    A, dZ = np.empty((17, 5), dtype), np.empty_like(Z)
    kernels.maxout_forward(Z, A, 3)
    assert np.array_equal(A, twin.maxout(Z, 3))
    dA = rng.standard_normal((17, 5)).astype(dtype)
    kernels.maxout_backward(Z, dA, dZ, 3)
    assert np.array_equal(dZ, twin.maxout_backward(Z, dA, 3))
    assert dZ[0, 0] == dA[0, 0] and dZ[0, 1] == 0
    assert dZ[1, 4] == dA[1, 1] and dZ[1, 5] == 0


def test_layer_kernels_check_shapes():
    with pytest.raises(ValueError, match="Z has shape"):
        kernels.maxout_forward(np.ones((4, 5)), np.empty((4, 2)), 2)
    with pytest.raises(ValueError, match="alpha has shape"):
        kernels.prelu_forward(np.ones((4, 5)), np.ones(4), np.empty((4, 5)))


# --- dense layer -----------------------------------------------------------------------


def dense_arrays(rng, n, d_in, d_out, dtype):
    X = rng.standard_normal((n, d_in)).astype(dtype)
    W = rng.standard_normal((d_in, d_out)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    return X, W, b


@pytest.mark.parametrize("name", ACT_NAMES)
def test_dense_backward_matches_finite_differences(name):
    """d/dX, d/dW, d/db of sum(G * f(X @ W + b))."""
    code, param = act_of(name)
    rng = np.random.default_rng(4)
    X, W, b = dense_arrays(rng, 5, 4, 3, np.float64)
    G = rng.standard_normal((5, 3))

    def loss():
        Z = np.empty((5, 3))
        A = np.empty((5, 3))
        kernels.dense_forward(X, W, b, Z, A, code, param)
        return float(np.sum(G * A))

    Z, A = np.empty((5, 3)), np.empty((5, 3))
    kernels.dense_forward(X, W, b, Z, A, code, param)
    # keep the check away from kinks of relu/leaky_relu
    assert np.abs(Z).min() > 1e-4
    delta, dW, db, dX = G.copy(), np.empty_like(W), np.empty_like(b), np.empty_like(X)
    kernels.dense_backward(X, W, Z, A, delta, dW, db, dX, code, param)
    assert rel_error(dW, numerical_gradient(loss, W)) < FD_RTOL
    assert rel_error(db, numerical_gradient(loss, b)) < FD_RTOL
    assert rel_error(dX, numerical_gradient(loss, X)) < FD_RTOL


@pytest.mark.parametrize("name", ACT_NAMES)
@pytest.mark.parametrize("n,d_in,d_out", [(1, 1, 1), (17, 9, 5), (64, 33, 10)])
def test_dense_matches_numpy(dtype, name, n, d_in, d_out):
    code, param = act_of(name)
    rng = np.random.default_rng(5)
    X, W, b = dense_arrays(rng, n, d_in, d_out, dtype)
    Z, A = np.empty((n, d_out), dtype), np.empty((n, d_out), dtype)
    kernels.dense_forward(X, W, b, Z, A, code, param)
    Z_np = X @ W + b
    A_np = twin.activate(code, Z_np, param)
    tol = BACKEND_RTOL[dtype]
    assert rel_error(Z, Z_np) <= tol and rel_error(A, A_np) <= tol

    dA = rng.standard_normal((n, d_out)).astype(dtype)
    delta, dW, db, dX = dA.copy(), np.empty_like(W), np.empty_like(b), np.empty_like(X)
    kernels.dense_backward(X, W, Z, A, delta, dW, db, dX, code, param)
    dZ_np = twin.activation_backward(code, Z, A, dA, param)
    assert rel_error(delta, dZ_np) <= tol
    assert rel_error(dW, X.T @ dZ_np) <= tol
    assert rel_error(db, dZ_np.sum(axis=0)) <= tol
    assert rel_error(dX, dZ_np @ W.T) <= tol


def test_dense_backward_without_dX_leaves_nothing_else_out(dtype):
    rng = np.random.default_rng(6)
    X, W, b = dense_arrays(rng, 8, 4, 3, dtype)
    Z, A = np.empty((8, 3), dtype), np.empty((8, 3), dtype)
    kernels.dense_forward(X, W, b, Z, A, 0, 0.0)
    delta = rng.standard_normal((8, 3)).astype(dtype)
    dW, db = np.empty_like(W), np.empty_like(b)
    kernels.dense_backward(X, W, Z, A, delta.copy(), dW, db, None, 0, 0.0)
    assert rel_error(dW, X.T @ delta) <= BACKEND_RTOL[dtype]


def test_dense_kernels_check_shapes():
    X, W, b = np.ones((4, 3)), np.ones((2, 5)), np.ones(5)
    Z = A = np.empty((4, 5))
    with pytest.raises(ValueError, match="W has shape"):
        kernels.dense_forward(X, W, b, Z, A)


def test_bias_gradient_sums_rows(dtype):
    rng = np.random.default_rng(7)
    dZ = rng.standard_normal((37, 11)).astype(dtype)
    db = np.empty(11, dtype)
    kernels.bias_gradient(dZ.copy(), db)
    assert rel_error(db, dZ.sum(axis=0)) <= BACKEND_RTOL[dtype]


# --- losses ----------------------------------------------------------------------------


def loss_case(code, rng, n, c, dtype):
    """(Z, A, y) for a loss code, with A the last layer's output."""
    Z = (rng.standard_normal((n, c)) * 2).astype(dtype)
    if code == losses.SOFTMAX_XENT_INT:
        return Z, Z, rng.integers(0, c, n).astype(np.int64)
    if code in (losses.SOFTMAX_XENT_PROB, losses.SOFTMAX_KL):
        Y = rng.random((n, c))
        Y[0, 0] = 0  # a zero probability: 0 log 0 counts as 0
        return Z, Z, (Y / Y.sum(axis=1, keepdims=True)).astype(dtype)
    if code == losses.SIGMOID_BCE:
        A = np.empty_like(Z)
        kernels.activation_forward(Z, A, activations.get("sigmoid").code)
        return Z, A, rng.integers(0, 2, (n, c)).astype(dtype)
    return Z, Z, rng.standard_normal((n, c)).astype(dtype)


LOSS_CODES = [
    losses.MSE,
    losses.SOFTMAX_XENT_INT,
    losses.SOFTMAX_XENT_PROB,
    losses.SIGMOID_BCE,
    losses.SOFTMAX_KL,
]


@pytest.mark.parametrize("code", LOSS_CODES)
def test_loss_gradient_matches_finite_differences(code):
    """dout is d(scale * loss_sum)/dZ (d/dA for MSE, whose A is Z here)."""
    rng = np.random.default_rng(8)
    Z, A, y = loss_case(code, rng, 6, 4, np.float64)
    scale = 1 / 6
    sigmoid = activations.get("sigmoid").code

    def loss():
        out = np.empty_like(Z)
        if code == losses.SIGMOID_BCE:
            kernels.activation_forward(Z, out, sigmoid)
        else:
            out = Z
        return scale * kernels.loss_and_output_grad(code, Z, out, y, np.empty_like(Z), scale)[0]

    dout = np.empty_like(Z)
    kernels.loss_and_output_grad(code, Z, A, y, dout, scale)
    assert rel_error(dout, numerical_gradient(loss, Z)) < FD_RTOL


@pytest.mark.parametrize("code", LOSS_CODES)
def test_loss_matches_numpy(dtype, code):
    rng = np.random.default_rng(9)
    Z, A, y = loss_case(code, rng, 50, 7, dtype)
    dout = np.empty_like(Z)
    total, n_correct = kernels.loss_and_output_grad(code, Z, A, y, dout, 1 / 50)
    rows_np, dout_np, correct_np = NP_LOSSES[code](Z, A, y)
    total_np = rows_np.sum()
    assert rel_error(total, total_np) <= BACKEND_RTOL[dtype]
    assert rel_error(dout, dout_np / 50) <= BACKEND_RTOL[dtype]
    assert n_correct == correct_np


SOFTMAX_LOSS_CODES = [losses.SOFTMAX_XENT_INT, losses.SOFTMAX_XENT_PROB, losses.SOFTMAX_KL]


@pytest.mark.parametrize("code", SOFTMAX_LOSS_CODES)
@pytest.mark.parametrize("n, c", [(1, 2), (2, 3), (63, 8), (64, 9), (65, 10), (130, 17), (3, 100)])
def test_softmax_losses_match_numpy_across_row_blocks_and_widths(dtype, code, n, c):
    """The kernel takes rows in blocks of 64 and row maxima eight columns at a time:
    row counts on both sides of a block and widths on both sides of 8; a third of the
    rows hold a tie for the maximum, which counts as correct only at its first column."""
    rng = np.random.default_rng(n * 1000 + c)
    Z, A, y = loss_case(code, rng, n, c, dtype)
    tied = np.arange(n) % 3 == 0
    Z[tied, c - 1] = Z[tied, 0] = Z[tied].max(axis=1) + 1
    if code == losses.SOFTMAX_XENT_INT:
        y[tied] = c - 1  # the later of the tied columns: not correct
    dout = np.empty_like(Z)
    total, n_correct = kernels.loss_and_output_grad(code, Z, A, y, dout, 1 / n)
    rows_np, dout_np, correct_np = NP_LOSSES[code](Z, A, y)
    assert rel_error(total, rows_np.sum()) <= BACKEND_RTOL[dtype] or abs(total) < 1e-12
    assert rel_error(dout, dout_np / n) <= BACKEND_RTOL[dtype]
    assert n_correct == correct_np


@pytest.mark.parametrize("code", SOFTMAX_LOSS_CODES)
@pytest.mark.parametrize("column", [0, 5, 9])
def test_softmax_losses_give_nan_for_a_nan_logit(dtype, code, column):
    """A NaN anywhere in a row, the first column (the maximum's start) included,
    makes the loss NaN: the engine then stops instead of stepping on it."""
    rng = np.random.default_rng(column)
    Z, A, y = loss_case(code, rng, 70, 10, dtype)
    Z[66, column] = np.nan
    dout = np.empty_like(Z)
    total, _ = kernels.loss_and_output_grad(code, Z, A, y, dout, 1 / 70)
    assert np.isnan(total)
    assert np.isfinite(dout[:66]).all() and np.isnan(dout[66]).all()


@pytest.mark.parametrize(
    "code",
    [losses.SOFTMAX_XENT_INT, losses.SOFTMAX_XENT_PROB, losses.SIGMOID_BCE, losses.SOFTMAX_KL],
)
def test_fused_losses_stay_finite_for_huge_logits(dtype, code):
    rng = np.random.default_rng(10)
    Z, A, y = loss_case(code, rng, 4, 3, dtype)
    Z[...] = np.array([[1e4, -1e4, 0], [-1e4, 1e4, 1e4], [0, 0, 0], [1e4, 1e4, -1e4]], dtype)
    if code == losses.SIGMOID_BCE:
        kernels.activation_forward(Z, A, activations.get("sigmoid").code)
    dout = np.empty_like(Z)
    total, _ = kernels.loss_and_output_grad(code, Z, A, y, dout, 0.25)
    assert np.isfinite(total) and np.isfinite(dout).all()


def test_kl_divergence_is_cross_entropy_minus_entropy_and_zero_at_the_target():
    P = np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    Z = np.log(np.where(P > 0, P, 1e-300)) + 1.7  # softmax(Z) == P
    dout = np.empty_like(Z)
    kl, _ = kernels.loss_and_output_grad(losses.SOFTMAX_KL, Z, Z, P, dout, 1.0)
    assert abs(kl) < 1e-12 and np.abs(dout).max() < 1e-12
    Z = np.zeros_like(P)
    ce, _ = kernels.loss_and_output_grad(losses.SOFTMAX_XENT_PROB, Z, Z, P, dout, 1.0)
    kl, _ = kernels.loss_and_output_grad(losses.SOFTMAX_KL, Z, Z, P, dout, 1.0)
    entropy = -(0.2 * np.log(0.2) + 0.3 * np.log(0.3) + 0.5 * np.log(0.5))
    assert kl == pytest.approx(ce - entropy, rel=1e-14)


def test_softmax_cross_entropy_known_value():
    """Uniform logits over 4 classes cost log 4 per sample."""
    Z = np.zeros((3, 4))
    dout = np.empty_like(Z)
    total, _ = kernels.loss_and_output_grad(
        losses.SOFTMAX_XENT_INT, Z, Z, np.array([0, 1, 3], np.int64), dout, 1.0
    )
    assert total == pytest.approx(3 * np.log(4), rel=1e-15)
    assert dout[0, 0] == pytest.approx(0.25 - 1) and dout[0, 1] == pytest.approx(0.25)


# --- optimiser ---------------------------------------------------------------------------


def test_sgd_update_is_w_minus_lr_g(dtype):
    rng = np.random.default_rng(11)
    w = rng.standard_normal(29).astype(dtype)
    g = rng.standard_normal(29).astype(dtype)
    expected = w - dtype(0.3) * g
    kernels.sgd_update(w, g, 0.3)
    assert rel_error(w, expected) <= BACKEND_RTOL[dtype]
