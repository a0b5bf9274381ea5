# The dense layer's forward and backward on raw pointers: what the engine calls.
from libc.stdint cimport int64_t
from cython cimport floating
from fastbp._kernels.blas cimport gemm
from fastbp._kernels.csrc cimport broadcast_rows, bias_act, act_backward, sgd


cdef inline int dense_forward(int n, int d_in, int d_out, const floating *X,
                              const floating *W, const floating *b, int act,
                              floating param, floating *Z, floating *A) noexcept nogil:
    """Z = X @ W + b and A = f(Z); returns the activation's fbp_status.

    X (n, d_in), W (d_in, d_out), b (d_out,), Z and A (n, d_out); A may be Z.
    The bias is GEMM's starting C (with beta = 1 BLAS also skips zeroing C), so
    the activation pass only reads Z and writes A.
    """
    broadcast_rows(n, d_out, b, Z)
    # Z = Z + X @ W
    gemm(False, False, n, d_out, d_in, <floating>1, X, d_in, W, d_out, <floating>1, Z, d_out)
    return bias_act(act, param, n, d_out, <floating *>NULL, Z, A)


cdef inline int dense_backward(int n, int d_in, int d_out, const floating *X,
                               const floating *W, const floating *Z, const floating *A,
                               int act, floating param, floating *delta,
                               floating *dW, floating *db, floating *dX) noexcept nogil:
    """Backward through f and the affine map; returns the activation's fbp_status
    (an unknown activation code writes nothing).

    delta (n, d_out) holds dA on entry and dZ = dA * f'(Z) on return; db is the
    row sum of dZ, dW = X.T @ dZ (d_in, d_out), and dX = dZ @ W.T (n, d_in)
    unless dX is NULL.
    """
    cdef int status = act_backward(act, param, n, d_out, Z, A, delta, delta, db)
    if status:
        return status
    # dW = X.T @ dZ
    gemm(True, False, d_in, d_out, n, <floating>1, X, d_in, delta, d_out, <floating>0, dW, d_out)
    if dX != NULL:
        # dX = dZ @ W.T
        gemm(False, True, n, d_in, d_out, <floating>1, delta, d_out, W, d_out,
             <floating>0, dX, d_in)
    return status


cdef inline int dense_backward_sgd(int n, int d_in, int d_out, const floating *X,
                                   floating *W, floating *b, const floating *Z,
                                   const floating *A, int act, floating param,
                                   floating *delta, floating *db, floating *dX,
                                   floating lr, floating weight_decay) noexcept nogil:
    """dense_backward with the SGD step folded into the weight-gradient GEMM;
    returns the activation's fbp_status (an unknown code steps nothing).

    W <- W - lr * (X.T @ dZ + weight_decay * W) is one GEMM with alpha = -lr and
    beta = 1 - lr * weight_decay, so dW is never written; b <- b - lr * db.
    dX (if not NULL) is computed first, from the weights before the step.
    """
    cdef int status = act_backward(act, param, n, d_out, Z, A, delta, delta, db)
    if status:
        return status
    if dX != NULL:
        # dX = dZ @ W.T
        gemm(False, True, n, d_in, d_out, <floating>1, delta, d_out, W, d_out,
             <floating>0, dX, d_in)
    # W = (1 - lr * weight_decay) * W - lr * X.T @ dZ
    gemm(True, False, d_in, d_out, n, -lr, X, d_in, delta, d_out, 1 - lr * weight_decay, W, d_out)
    sgd(d_out, lr, db, b)
    return status
