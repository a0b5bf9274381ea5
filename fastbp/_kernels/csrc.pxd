# Declarations of the element-wise C kernels in csrc/fbp_kernels.h, and fused
# wrappers that pick the float or double instance at compile time.
from libc.stdint cimport int64_t, uint64_t
from cython cimport floating
from fastbp._kernels.codes cimport (FBP_LOSS_MSE, FBP_LOSS_SOFTMAX_XENT_INT,
                                    FBP_LOSS_SOFTMAX_XENT_PROB, FBP_LOSS_SIGMOID_BCE,
                                    FBP_LOSS_SOFTMAX_KL, FBP_ERR_LOSS)

cdef extern from "fbp_kernels.h" nogil:
    ctypedef struct fbp_hyper:
        int kind
        int nesterov
        double momentum
        double beta1
        double beta2
        double rho
        double eps
        double decay
    ctypedef struct fbp_optim:
        fbp_hyper hyper
        double lr
        double correction1
        double correction2
    int fbp_optim_update_f(const fbp_optim *opt, int64_t n, float grad_scale,
                           const float *g, float *w, float *s1, float *s2)
    int fbp_optim_update_d(const fbp_optim *opt, int64_t n, double grad_scale,
                           const double *g, double *w, double *s1, double *s2)
    void fbp_broadcast_rows_f(int64_t n_rows, int64_t n_cols, const float *b, float *out)
    void fbp_broadcast_rows_d(int64_t n_rows, int64_t n_cols, const double *b, double *out)
    int fbp_bias_act_f(int act, float param, int64_t n_rows, int64_t n_cols,
                       const float *b, float *Z, float *A)
    int fbp_bias_act_d(int act, double param, int64_t n_rows, int64_t n_cols,
                       const double *b, double *Z, double *A)
    int fbp_act_backward_f(int act, float param, int64_t n_rows, int64_t n_cols,
                           const float *Z, const float *A, const float *dA,
                           float *dZ, float *db)
    int fbp_act_backward_d(int act, double param, int64_t n_rows, int64_t n_cols,
                           const double *Z, const double *A, const double *dA,
                           double *dZ, double *db)
    double fbp_softmax_xent_int_f(int64_t n_rows, int64_t n_cols, const float *Z,
                                  const int64_t *y, const float *w, float scale, float *dZ,
                                  int64_t *n_correct)
    double fbp_softmax_xent_int_d(int64_t n_rows, int64_t n_cols, const double *Z,
                                  const int64_t *y, const double *w, double scale, double *dZ,
                                  int64_t *n_correct)
    double fbp_softmax_xent_prob_f(int64_t n_rows, int64_t n_cols, const float *Z,
                                   const float *Y, const float *w, float scale, float *dZ,
                                   int64_t *n_correct)
    double fbp_softmax_xent_prob_d(int64_t n_rows, int64_t n_cols, const double *Z,
                                   const double *Y, const double *w, double scale, double *dZ,
                                   int64_t *n_correct)
    double fbp_softmax_kl_f(int64_t n_rows, int64_t n_cols, const float *Z, const float *Y,
                            const float *w, float scale, float *dZ, int64_t *n_correct)
    double fbp_softmax_kl_d(int64_t n_rows, int64_t n_cols, const double *Z, const double *Y,
                            const double *w, double scale, double *dZ, int64_t *n_correct)
    double fbp_sigmoid_bce_f(int64_t n_rows, int64_t n_cols, const float *Z, const float *A,
                             const float *Y, const float *w, float scale, float *dZ,
                             int64_t *n_correct)
    double fbp_sigmoid_bce_d(int64_t n_rows, int64_t n_cols, const double *Z, const double *A,
                             const double *Y, const double *w, double scale, double *dZ,
                             int64_t *n_correct)
    double fbp_mse_f(int64_t n_rows, int64_t n_cols, const float *A, const float *Y,
                     const float *w, float scale, float *dA)
    double fbp_mse_d(int64_t n_rows, int64_t n_cols, const double *A, const double *Y,
                     const double *w, double scale, double *dA)
    double fbp_sumsq_f(int64_t n, const float *x)
    double fbp_sumsq_d(int64_t n, const double *x)
    void fbp_add_decay_f(int64_t n, float weight_decay, const float *w, float *g)
    void fbp_add_decay_d(int64_t n, double weight_decay, const double *w, double *g)
    void fbp_sgd_f(int64_t n, float lr, const float *g, float *w)
    void fbp_sgd_d(int64_t n, double lr, const double *g, double *w)
    void fbp_gather_rows_f(int64_t n_idx, int64_t n_cols, const float *X,
                           const int64_t *idx, float *out)
    void fbp_gather_rows_d(int64_t n_idx, int64_t n_cols, const double *X,
                           const int64_t *idx, double *out)
    void fbp_dropout_f(int64_t n, double keep, uint64_t seed, uint64_t stream,
                       int64_t first, const float *A, float *mask, float *D)
    void fbp_dropout_d(int64_t n, double keep, uint64_t seed, uint64_t stream,
                       int64_t first, const double *A, double *mask, double *D)
    void fbp_gather_labels(int64_t n_idx, const int64_t *y, const int64_t *idx,
                           int64_t *out)
    void fbp_prelu_forward_f(int64_t n_rows, int64_t n_cols, const float *alpha,
                             const float *Z, float *A)
    void fbp_prelu_backward_f(int64_t n_rows, int64_t n_cols, const float *alpha,
                              const float *Z, const float *dA, float *dZ, float *dalpha)
    void fbp_maxout_forward_f(int64_t n_rows, int64_t units, int64_t pieces,
                              const float *Z, float *A)
    void fbp_maxout_backward_f(int64_t n_rows, int64_t units, int64_t pieces,
                               const float *Z, const float *dA, float *dZ)
    void fbp_mul_f(int64_t n, const float *a, const float *b, float *out)
    void fbp_prelu_forward_d(int64_t n_rows, int64_t n_cols, const double *alpha,
                             const double *Z, double *A)
    void fbp_prelu_backward_d(int64_t n_rows, int64_t n_cols, const double *alpha,
                              const double *Z, const double *dA, double *dZ, double *dalpha)
    void fbp_maxout_forward_d(int64_t n_rows, int64_t units, int64_t pieces,
                              const double *Z, double *A)
    void fbp_maxout_backward_d(int64_t n_rows, int64_t units, int64_t pieces,
                               const double *Z, const double *dA, double *dZ)
    void fbp_mul_d(int64_t n, const double *a, const double *b, double *out)

cdef inline void broadcast_rows(int64_t n_rows, int64_t n_cols, const floating *b,
                                floating *out) noexcept nogil:
    if floating is float:
        fbp_broadcast_rows_f(n_rows, n_cols, b, out)
    else:
        fbp_broadcast_rows_d(n_rows, n_cols, b, out)


cdef inline int bias_act(int act, floating param, int64_t n_rows, int64_t n_cols,
                         const floating *b, floating *Z, floating *A) noexcept nogil:
    """fbp_bias_act: returns an fbp_status."""
    if floating is float:
        return fbp_bias_act_f(act, param, n_rows, n_cols, b, Z, A)
    else:
        return fbp_bias_act_d(act, param, n_rows, n_cols, b, Z, A)


cdef inline int act_backward(int act, floating param, int64_t n_rows, int64_t n_cols,
                             const floating *Z, const floating *A, const floating *dA,
                             floating *dZ, floating *db) noexcept nogil:
    """fbp_act_backward: returns an fbp_status."""
    if floating is float:
        return fbp_act_backward_f(act, param, n_rows, n_cols, Z, A, dA, dZ, db)
    else:
        return fbp_act_backward_d(act, param, n_rows, n_cols, Z, A, dA, dZ, db)


cdef inline double loss_forward_backward(int loss, int64_t n_rows, int64_t n_cols,
                                         const floating *Z, const floating *A,
                                         const void *y, const floating *w, floating scale,
                                         floating *dout, int64_t *n_correct,
                                         int *status) noexcept nogil:
    """sum_i w_i loss_i (w NULL: all 1); dout receives the gradient of scale times
    that sum: dL/dA for MSE and dL/dZ for the fused losses. An unknown loss code
    computes nothing, ORs FBP_ERR_LOSS into status and returns 0."""
    n_correct[0] = 0
    if loss == FBP_LOSS_MSE:
        if floating is float:
            return fbp_mse_f(n_rows, n_cols, A, <const float *>y, w, scale, dout)
        else:
            return fbp_mse_d(n_rows, n_cols, A, <const double *>y, w, scale, dout)
    if loss == FBP_LOSS_SOFTMAX_XENT_INT:
        if floating is float:
            return fbp_softmax_xent_int_f(n_rows, n_cols, Z, <const int64_t *>y, w, scale, dout,
                                          n_correct)
        else:
            return fbp_softmax_xent_int_d(n_rows, n_cols, Z, <const int64_t *>y, w, scale, dout,
                                          n_correct)
    if loss == FBP_LOSS_SOFTMAX_XENT_PROB:
        if floating is float:
            return fbp_softmax_xent_prob_f(n_rows, n_cols, Z, <const float *>y, w, scale, dout,
                                           n_correct)
        else:
            return fbp_softmax_xent_prob_d(n_rows, n_cols, Z, <const double *>y, w, scale, dout,
                                           n_correct)
    if loss == FBP_LOSS_SOFTMAX_KL:
        if floating is float:
            return fbp_softmax_kl_f(n_rows, n_cols, Z, <const float *>y, w, scale, dout, n_correct)
        else:
            return fbp_softmax_kl_d(n_rows, n_cols, Z, <const double *>y, w, scale, dout, n_correct)
    if loss == FBP_LOSS_SIGMOID_BCE:
        if floating is float:
            return fbp_sigmoid_bce_f(n_rows, n_cols, Z, A, <const float *>y, w, scale, dout,
                                     n_correct)
        else:
            return fbp_sigmoid_bce_d(n_rows, n_cols, Z, A, <const double *>y, w, scale, dout,
                                     n_correct)
    status[0] |= FBP_ERR_LOSS
    return 0


cdef inline double sumsq(int64_t n, const floating *x) noexcept nogil:
    if floating is float:
        return fbp_sumsq_f(n, x)
    else:
        return fbp_sumsq_d(n, x)


cdef inline void add_decay(int64_t n, floating weight_decay, const floating *w,
                           floating *g) noexcept nogil:
    if floating is float:
        fbp_add_decay_f(n, weight_decay, w, g)
    else:
        fbp_add_decay_d(n, weight_decay, w, g)


cdef inline void sgd(int64_t n, floating lr, const floating *g, floating *w) noexcept nogil:
    if floating is float:
        fbp_sgd_f(n, lr, g, w)
    else:
        fbp_sgd_d(n, lr, g, w)


cdef inline int optim_update(const fbp_optim *opt, int64_t n, floating grad_scale,
                             const floating *g, floating *w, floating *s1,
                             floating *s2) noexcept nogil:
    """fbp_optim_update: returns an fbp_status."""
    if floating is float:
        return fbp_optim_update_f(opt, n, grad_scale, g, w, s1, s2)
    else:
        return fbp_optim_update_d(opt, n, grad_scale, g, w, s1, s2)


cdef inline void dropout(int64_t n, double keep, uint64_t seed, uint64_t stream,
                         int64_t first, const floating *A, floating *mask,
                         floating *D) noexcept nogil:
    if floating is float:
        fbp_dropout_f(n, keep, seed, stream, first, A, mask, D)
    else:
        fbp_dropout_d(n, keep, seed, stream, first, A, mask, D)


cdef inline void gather_rows(int64_t n_idx, int64_t n_cols, const floating *X,
                             const int64_t *idx, floating *out) noexcept nogil:
    if floating is float:
        fbp_gather_rows_f(n_idx, n_cols, X, idx, out)
    else:
        fbp_gather_rows_d(n_idx, n_cols, X, idx, out)


cdef inline void prelu_forward(int64_t n_rows, int64_t n_cols, const floating *alpha,
                               const floating *Z, floating *A) noexcept nogil:
    if floating is float:
        fbp_prelu_forward_f(n_rows, n_cols, alpha, Z, A)
    else:
        fbp_prelu_forward_d(n_rows, n_cols, alpha, Z, A)


cdef inline void prelu_backward(int64_t n_rows, int64_t n_cols, const floating *alpha,
                                const floating *Z, const floating *dA, floating *dZ,
                                floating *dalpha) noexcept nogil:
    if floating is float:
        fbp_prelu_backward_f(n_rows, n_cols, alpha, Z, dA, dZ, dalpha)
    else:
        fbp_prelu_backward_d(n_rows, n_cols, alpha, Z, dA, dZ, dalpha)


cdef inline void maxout_forward(int64_t n_rows, int64_t units, int64_t pieces,
                                const floating *Z, floating *A) noexcept nogil:
    if floating is float:
        fbp_maxout_forward_f(n_rows, units, pieces, Z, A)
    else:
        fbp_maxout_forward_d(n_rows, units, pieces, Z, A)


cdef inline void maxout_backward(int64_t n_rows, int64_t units, int64_t pieces,
                                 const floating *Z, const floating *dA,
                                 floating *dZ) noexcept nogil:
    if floating is float:
        fbp_maxout_backward_f(n_rows, units, pieces, Z, dA, dZ)
    else:
        fbp_maxout_backward_d(n_rows, units, pieces, Z, dA, dZ)


cdef inline void mul(int64_t n, const floating *a, const floating *b,
                     floating *out) noexcept nogil:
    if floating is float:
        fbp_mul_f(n, a, b, out)
    else:
        fbp_mul_d(n, a, b, out)
