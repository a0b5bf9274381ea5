# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Single kernels over memoryviews: what tests and benchmarks call.

Each function here checks shapes, then runs one pointer-level kernel without the
GIL. Arrays must be C-contiguous and share one floating dtype (float32 or
float64); outputs are written in place. An activation or loss code that is not
one of csrc/fbp_kernels.h's is a ValueError, raised before anything is computed.
"""
from libc.stdint cimport int64_t
from libc.stdint cimport uintptr_t
from cython cimport floating
from fastbp._kernels.blas cimport (gemm, set_gemm, set_small_path, set_thread_policy,
                                   runs_serial, runs_small)
from fastbp._kernels.csrc cimport (bias_act, act_backward, loss_forward_backward, sgd,
                                   prelu_forward as c_prelu_forward,
                                   prelu_backward as c_prelu_backward,
                                   maxout_forward as c_maxout_forward,
                                   maxout_backward as c_maxout_backward)
from fastbp._kernels.codes cimport FBP_ACT_IDENTITY, FBP_LOSS_SOFTMAX_XENT_INT
from fastbp._kernels cimport dense
from fastbp._kernels.codes import check_activation, check_code, status_error


def _check(bint ok, str message):
    if not ok:
        raise ValueError(message)


def _check_shape(str name, tuple got, tuple want):
    if got != want:
        raise ValueError(f"{name} has shape {got}, expected {want}")


def _check_status(int status, str where):
    """A kernel's fbp_status: the codes were checked first, so it is 0."""
    if status:
        raise status_error(status, where)


def gemm_rowmajor(floating[:, ::1] A, floating[:, ::1] B, floating[:, ::1] C,
                  bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """C = alpha * op(A) @ op(B) + beta * C, in place.

    A : (m, k), or (k, m) with trans_a;  B : (k, n), or (n, k) with trans_b;
    C : (m, n).
    """
    cdef int m = A.shape[1] if trans_a else A.shape[0]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef int kb = B.shape[1] if trans_b else B.shape[0]
    cdef int n = B.shape[0] if trans_b else B.shape[1]
    _check(k == kb, f"inner dimensions differ: op(A) has {k} columns, op(B) has {kb} rows")
    _check_shape("C", (C.shape[0], C.shape[1]), (m, n))
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating>alpha, &A[0, 0], A.shape[1],
             &B[0, 0], B.shape[1], <floating>beta, &C[0, 0], C.shape[1])


def dense_forward(floating[:, ::1] X, floating[:, ::1] W, floating[::1] b,
                  floating[:, ::1] Z, floating[:, ::1] A, int act=0, double param=0.0):
    """Z = X @ W + b, A = f(Z).

    X : (n_samples, d_in); W : (d_in, d_out); b : (d_out,);
    Z, A : (n_samples, d_out) outputs (A may be the same array as Z).
    """
    cdef int n = X.shape[0], d_in = X.shape[1], d_out = W.shape[1], status
    check_activation(act, "act")
    _check_shape("W", (W.shape[0], W.shape[1]), (d_in, d_out))
    _check_shape("b", (b.shape[0],), (d_out,))
    _check_shape("Z", (Z.shape[0], Z.shape[1]), (n, d_out))
    _check_shape("A", (A.shape[0], A.shape[1]), (n, d_out))
    with nogil:
        status = dense.dense_forward(n, d_in, d_out, &X[0, 0], &W[0, 0], &b[0], act,
                                     <floating>param, &Z[0, 0], &A[0, 0])
    _check_status(status, "dense_forward")


def dense_backward(floating[:, ::1] X, floating[:, ::1] W, floating[:, ::1] Z,
                   floating[:, ::1] A, floating[:, ::1] delta, floating[:, ::1] dW,
                   floating[::1] db, floating[:, ::1] dX=None, int act=0, double param=0.0):
    """Backward through A = f(X @ W + b).

    X : (n_samples, d_in); W, dW : (d_in, d_out); Z, A : (n_samples, d_out) from
    the forward pass; delta : (n_samples, d_out), dA on entry and dZ on return;
    db : (d_out,); dX : (n_samples, d_in) or None to skip it.
    """
    cdef int n = X.shape[0], d_in = X.shape[1], d_out = W.shape[1], status
    check_activation(act, "act")
    _check_shape("W", (W.shape[0], W.shape[1]), (d_in, d_out))
    for name, arr in (("Z", Z), ("A", A), ("delta", delta)):
        _check_shape(name, (arr.shape[0], arr.shape[1]), (n, d_out))
    _check_shape("dW", (dW.shape[0], dW.shape[1]), (d_in, d_out))
    _check_shape("db", (db.shape[0],), (d_out,))
    cdef floating *dX_ptr = NULL
    if dX is not None:
        _check_shape("dX", (dX.shape[0], dX.shape[1]), (n, d_in))
        dX_ptr = &dX[0, 0]
    with nogil:
        status = dense.dense_backward(n, d_in, d_out, &X[0, 0], &W[0, 0], &Z[0, 0], &A[0, 0],
                                      act, <floating>param, &delta[0, 0], &dW[0, 0], &db[0],
                                      dX_ptr)
    _check_status(status, "dense_backward")


def activation_forward(floating[:, ::1] Z, floating[:, ::1] A, int act, double param=0.0):
    """A = f(Z); Z, A : (n_samples, n_units), A may be Z."""
    cdef int status
    check_activation(act, "act")
    _check_shape("A", (A.shape[0], A.shape[1]), (Z.shape[0], Z.shape[1]))
    with nogil:
        status = bias_act(act, <floating>param, Z.shape[0], Z.shape[1], NULL, &Z[0, 0],
                          &A[0, 0])
    _check_status(status, "activation_forward")


def activation_backward(floating[:, ::1] Z, floating[:, ::1] A, floating[:, ::1] dA,
                        floating[:, ::1] dZ, int act, double param=0.0):
    """dZ = dA * f'(Z); all of shape (n_samples, n_units), dZ may be dA."""
    cdef int status
    check_activation(act, "act")
    for name, arr in (("A", A), ("dA", dA), ("dZ", dZ)):
        _check_shape(name, (arr.shape[0], arr.shape[1]), (Z.shape[0], Z.shape[1]))
    with nogil:
        status = act_backward(act, <floating>param, Z.shape[0], Z.shape[1], &Z[0, 0], &A[0, 0],
                              &dA[0, 0], &dZ[0, 0], NULL)
    _check_status(status, "activation_backward")


def bias_gradient(floating[:, ::1] dZ, floating[::1] db):
    """db = dZ.sum(axis=0), accumulated row by row; dZ : (n_samples, n_units)."""
    _check_shape("db", (db.shape[0],), (dZ.shape[1],))
    with nogil:
        # the identity's backward with dZ as dA: only db, the column sums, is written
        act_backward(FBP_ACT_IDENTITY, <floating>0, dZ.shape[0], dZ.shape[1], &dZ[0, 0],
                     &dZ[0, 0], &dZ[0, 0], &dZ[0, 0], &db[0])


def loss_and_output_grad(int loss, floating[:, ::1] Z, floating[:, ::1] A, y,
                         floating[:, ::1] dout, double scale, floating[::1] weights=None):
    """Summed loss of outputs against targets, and its gradient times scale.

    loss : an FBP_LOSS_* code (fastbp.losses); Z, A : (n_samples, n_outputs), pre-
    and post-activation of the last layer;
    y : int64 (n_samples,) class indices for loss code 1, otherwise an array of
    Z's dtype and shape; dout : (n_samples, n_outputs), receives dL/dA for MSE
    and dL/dZ for the fused losses; weights : (n_samples,) per-row weights or None.
    Returns (sum of weighted row losses, n_correct).
    """
    cdef int64_t[::1] labels
    cdef floating[:, ::1] targets
    cdef const void *y_ptr
    cdef int64_t n_correct = 0
    cdef double total
    cdef int status = 0
    cdef const floating *w_ptr = NULL
    check_code("loss", loss, "loss")
    if weights is not None:
        _check_shape("weights", (weights.shape[0],), (Z.shape[0],))
        w_ptr = &weights[0]
    for name, arr in (("A", A), ("dout", dout)):
        _check_shape(name, (arr.shape[0], arr.shape[1]), (Z.shape[0], Z.shape[1]))
    if loss == FBP_LOSS_SOFTMAX_XENT_INT:
        labels = y
        _check_shape("y", (labels.shape[0],), (Z.shape[0],))
        y_ptr = &labels[0]
    else:
        targets = y
        _check_shape("y", (targets.shape[0], targets.shape[1]), (Z.shape[0], Z.shape[1]))
        y_ptr = &targets[0, 0]
    with nogil:
        total = loss_forward_backward(loss, Z.shape[0], Z.shape[1], &Z[0, 0], &A[0, 0],
                                      y_ptr, w_ptr, <floating>scale, &dout[0, 0], &n_correct,
                                      &status)
    _check_status(status, "loss_and_output_grad")
    return total, n_correct


def sgd_update(floating[::1] w, floating[::1] g, double lr):
    """w -= lr * g on flat views of a parameter and its gradient."""
    _check_shape("g", (g.shape[0],), (w.shape[0],))
    with nogil:
        sgd(w.shape[0], <floating>lr, &g[0], &w[0])


def prelu_forward(floating[:, ::1] Z, floating[::1] alpha, floating[:, ::1] A):
    """A = Z where Z > 0, alpha * Z elsewhere; Z, A : (n_samples, n_units),
    alpha : (n_units,)."""
    _check_shape("alpha", (alpha.shape[0],), (Z.shape[1],))
    _check_shape("A", (A.shape[0], A.shape[1]), (Z.shape[0], Z.shape[1]))
    with nogil:
        c_prelu_forward(Z.shape[0], Z.shape[1], &alpha[0], &Z[0, 0], &A[0, 0])


def prelu_backward(floating[:, ::1] Z, floating[::1] alpha, floating[:, ::1] dA,
                   floating[:, ::1] dZ, floating[::1] dalpha):
    """dZ = dA * (1 where Z > 0 else alpha); dalpha = sum over rows of dA * min(Z, 0).

    Z, dA, dZ : (n_samples, n_units), dZ may be dA; alpha, dalpha : (n_units,).
    """
    for name, arr in (("dA", dA), ("dZ", dZ)):
        _check_shape(name, (arr.shape[0], arr.shape[1]), (Z.shape[0], Z.shape[1]))
    _check_shape("alpha", (alpha.shape[0],), (Z.shape[1],))
    _check_shape("dalpha", (dalpha.shape[0],), (Z.shape[1],))
    with nogil:
        c_prelu_backward(Z.shape[0], Z.shape[1], &alpha[0], &Z[0, 0], &dA[0, 0], &dZ[0, 0],
                         &dalpha[0])


def maxout_forward(floating[:, ::1] Z, floating[:, ::1] A, int pieces):
    """A[i, j] = max(Z[i, j*pieces : (j+1)*pieces]); Z : (n_samples, units * pieces),
    A : (n_samples, units)."""
    _check(pieces >= 1, f"pieces must be at least 1, got {pieces}")
    _check_shape("Z", (Z.shape[0], Z.shape[1]), (A.shape[0], A.shape[1] * pieces))
    with nogil:
        c_maxout_forward(A.shape[0], A.shape[1], pieces, &Z[0, 0], &A[0, 0])


def maxout_backward(floating[:, ::1] Z, floating[:, ::1] dA, floating[:, ::1] dZ, int pieces):
    """dZ = dA routed to each unit's winning piece (the first on ties), 0 elsewhere.

    Z, dZ : (n_samples, units * pieces); dA : (n_samples, units).
    """
    _check(pieces >= 1, f"pieces must be at least 1, got {pieces}")
    _check_shape("Z", (Z.shape[0], Z.shape[1]), (dA.shape[0], dA.shape[1] * pieces))
    _check_shape("dZ", (dZ.shape[0], dZ.shape[1]), (Z.shape[0], Z.shape[1]))
    with nogil:
        c_maxout_backward(dA.shape[0], dA.shape[1], pieces, &Z[0, 0], &dA[0, 0], &dZ[0, 0])


# The GEMM provider (fastbp.gemm): SciPy's BLAS until fastbp.gemm.use() says otherwise.
set_gemm(0, 0)


def _set_gemm(uintptr_t sgemm_address, uintptr_t dgemm_address):
    """Route this module's GEMMs to these Fortran-convention sgemm/dgemm addresses
    (fastbp.gemm.use does it for every module); 0, 0 restores SciPy's."""
    set_gemm(sgemm_address, dgemm_address)


def _set_small_path(double small_flops):
    """GEMMs of at most small_flops operations (2 m n k) run in fastbp's own
    register-blocked loops, not the provider (fastbp.gemm does it for every
    module); 0 sends every GEMM to the provider."""
    set_small_path(small_flops)


def _set_thread_policy(uintptr_t set_local_address, double serial_flops):
    """GEMMs of fewer than serial_flops operations (2 m n k) run on one thread, set
    through this calling-thread setter (fastbp.gemm.use does it for every module);
    0 for either runs every GEMM on the caller's thread count."""
    set_thread_policy(set_local_address, serial_flops)


def gemm_runs_serial(int m, int n, int k):
    """Whether gemm_rowmajor (and the engine) run an (m, k) @ (k, n) GEMM on one
    thread under the thread policy now in force."""
    return runs_serial(m, n, k)


def gemm_runs_small(int m, int n, int k):
    """Whether gemm_rowmajor (and the engine) run an (m, k) @ (k, n) GEMM in the
    small path, fastbp's own loops, rather than the provider."""
    return runs_small(m, n, k)
