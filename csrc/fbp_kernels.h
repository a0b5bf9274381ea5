/* fastbp element-wise kernels: everything in a training step that is not a GEMM.
 *
 * All matrices are row-major and contiguous. Each function exists for float (_f)
 * and double (_d); fbp_kernels.c instantiates both from one template. Callers
 * (the Cython layer) validate shapes and pointers; these functions trust them.
 *
 * The integer codes that cross the Python<->C boundary are declared here and
 * nowhere else. Cython sees them through fastbp/_kernels/codes.pxd (as cpdef
 * enums), which derives the name -> code tables fastbp checks against its Python
 * registries when the extension loads (fastbp/backends/__init__.py). A kernel
 * that dispatches on a code lists every member and returns an fbp_status: an
 * unknown code is reported, never computed as some default.
 */
#ifndef FBP_KERNELS_H
#define FBP_KERNELS_H

#include <stdint.h>

/* Activations (fastbp/activations.py). */
enum fbp_act {
    FBP_ACT_IDENTITY = 0,
    FBP_ACT_SIGMOID = 1,
    FBP_ACT_TANH = 2,
    FBP_ACT_RELU = 3,
    FBP_ACT_LEAKY_RELU = 4,
    FBP_ACT_ELU = 5,
    FBP_ACT_SOFTPLUS = 6,
    FBP_ACT_HARD_SIGMOID = 7,
    FBP_ACT_HARD_TANH = 8,
    FBP_ACT_SILU = 9,
    FBP_ACT_GELU = 10,
    FBP_ACT_SOFTMAX = 11,   /* row-wise: fbp_softmax_rows, fbp_softmax_backward */
    FBP_ACT_PRELU = 12      /* learnt slopes: an FBP_NODE_PRELU node of its own; the
                             * element-wise kernels refuse it (FBP_ERR_ACTIVATION) */
};

/* Losses (fastbp/losses.py); the dispatch is loss_forward_backward in csrc.pxd. */
enum fbp_loss {
    FBP_LOSS_MSE = 0,
    FBP_LOSS_SOFTMAX_XENT_INT = 1,   /* integer class labels */
    FBP_LOSS_SOFTMAX_XENT_PROB = 2,  /* rows of target probabilities */
    FBP_LOSS_SIGMOID_BCE = 3,
    FBP_LOSS_SOFTMAX_KL = 4
};

/* Node kinds of a plan (fastbp/plan.py), run by fastbp/_kernels/engine.pyx. */
enum fbp_node {
    FBP_NODE_DENSE = 0,
    FBP_NODE_ACTIVATION = 1,
    FBP_NODE_PRELU = 2,
    FBP_NODE_MAXOUT = 3,
    FBP_NODE_DROPOUT = 4
};

/* Optimiser kinds (fastbp/optimizers.py): the update rules of fbp_optim_update. */
enum fbp_opt {
    FBP_OPT_SGD = 0,        /* v = momentum v + g; w -= lr (nesterov ? g + momentum v : v) */
    FBP_OPT_ADAM = 1,       /* bias-corrected first and second moments */
    FBP_OPT_RMSPROP = 2,    /* s = rho s + (1 - rho) g^2; w -= lr g / (sqrt(s) + eps) */
    FBP_OPT_ADAGRAD = 3     /* s += g^2; w -= lr g / (sqrt(s) + eps) */
};

/* What a kernel that dispatches on a code returns: FBP_OK, or the bit of the group
 * whose code it does not know (it then writes nothing). Bits, so that the engine
 * can OR the statuses of a whole call together and raise once it holds the GIL. */
enum fbp_status {
    FBP_OK = 0,
    FBP_ERR_ACTIVATION = 1,
    FBP_ERR_LOSS = 2,
    FBP_ERR_NODE = 4,
    FBP_ERR_OPTIMIZER = 8
};

/* An optimiser's hyper-parameters, by the names Optimizer.hyper() gives them
 * (fastbp/optimizers.py): the engine fills this struct from that dict field by
 * field, refusing a missing or unknown key. Fields a kind does not read are 0. */
typedef struct {
    int kind;               /* an FBP_OPT_* code */
    int nesterov;           /* SGD */
    double momentum;        /* SGD */
    double beta1, beta2;    /* Adam */
    double rho;             /* RMSProp: decay of the running mean of g^2 */
    double eps;             /* Adam, RMSProp, Adagrad */
    double decay;           /* decoupled weight decay: w -= lr * decay * w first */
} fbp_hyper;

/* What one update reads: the hyper-parameters, and what the engine sets each step. */
typedef struct {
    fbp_hyper hyper;
    double lr;
    double correction1;     /* Adam: 1 - beta1^t */
    double correction2;     /* Adam: 1 - beta2^t */
} fbp_optim;

#define FBP_DECLARE(T, S)                                                          \
    /* out[i, :] = b for every row i: the bias as a GEMM's starting C. */           \
    void fbp_broadcast_rows_##S(int64_t n_rows, int64_t n_cols, const T *b, T *out); \
    /* Z[i, :] += b (b may be NULL), then A = f(Z); A may alias Z. Returns          \
     * FBP_ERR_ACTIVATION for a code it does not compute (prelu's among them). */  \
    int fbp_bias_act_##S(int act, T param, int64_t n_rows, int64_t n_cols,          \
                         const T *b, T *Z, T *A);                                  \
    /* dZ = dA * f'(Z) (dZ may alias dA); db = sum over rows of dZ if db != NULL.   \
     * Returns an fbp_status, as fbp_bias_act. */                                  \
    int fbp_act_backward_##S(int act, T param, int64_t n_rows, int64_t n_cols,      \
                             const T *Z, const T *A, const T *dA, T *dZ, T *db);   \
    /* The losses: each returns sum_i w_i loss_i over the rows (w NULL: all 1) and \
     * writes the gradient of (scale * that sum) into dZ (dA for MSE). */          \
    /* Softmax cross-entropy on logits Z with integer labels y.                     \
     * dZ = w (softmax(Z) - onehot(y)) * scale; *n_correct receives the number of   \
     * rows whose argmax equals y. */                                              \
    double fbp_softmax_xent_int_##S(int64_t n_rows, int64_t n_cols, const T *Z,     \
                                    const int64_t *y, const T *w, T scale, T *dZ,  \
                                    int64_t *n_correct);                           \
    /* Same with target probability rows Y of shape (n_rows, n_cols). */           \
    double fbp_softmax_xent_prob_##S(int64_t n_rows, int64_t n_cols, const T *Z,    \
                                     const T *Y, const T *w, T scale, T *dZ,       \
                                     int64_t *n_correct);                          \
    /* KL(Y || softmax(Z)) per row; dZ = w (softmax(Z) - Y) * scale. */             \
    double fbp_softmax_kl_##S(int64_t n_rows, int64_t n_cols, const T *Z,           \
                              const T *Y, const T *w, T scale, T *dZ,              \
                              int64_t *n_correct);                                 \
    /* Binary cross-entropy of sigmoid outputs A = sigmoid(Z), loss taken from Z    \
     * (overflow-safe). dZ = w (A - Y) * scale. */                                 \
    double fbp_sigmoid_bce_##S(int64_t n_rows, int64_t n_cols, const T *Z,          \
                               const T *A, const T *Y, const T *w, T scale,        \
                               T *dZ, int64_t *n_correct);                         \
    /* Squared error: sum_i w_i ||A_i - Y_i||^2 / 2, dA = w (A - Y) * scale. */      \
    double fbp_mse_##S(int64_t n_rows, int64_t n_cols, const T *A, const T *Y,      \
                       const T *w, T scale, T *dA);                                \
    /* Sum of squares of x, accumulated in double. */                              \
    double fbp_sumsq_##S(int64_t n, const T *x);                                   \
    /* g += weight_decay * w (the L2 term of the gradient). */                     \
    void fbp_add_decay_##S(int64_t n, T weight_decay, const T *w, T *g);           \
    /* w -= lr * g (plain gradient descent). */                                    \
    void fbp_sgd_##S(int64_t n, T lr, const T *g, T *w);                           \
    /* One optimiser step on w from g * grad_scale, with state s1, s2 (n each, as   \
     * many as the kind uses). Returns FBP_ERR_OPTIMIZER for an unknown kind. */    \
    int fbp_optim_update_##S(const fbp_optim *opt, int64_t n, T grad_scale,         \
                             const T *g, T *w, T *s1, T *s2);                      \
    /* Inverted dropout: mask[i] = 1/keep if u_i < keep else 0, with u_i uniform in   \
     * [0, 1): (fbp_hash(seed, stream, first + i) >> 11) 2^-53; D = A * mask. first: \
     * the index of element 0 in the whole batch's mask (a slice of its rows). */   \
    void fbp_dropout_##S(int64_t n, double keep, uint64_t seed, uint64_t stream,     \
                         int64_t first, const T *A, T *mask, T *D);                \
    /* Copy the rows of X listed in idx into out (a mini-batch gather). */         \
    void fbp_gather_rows_##S(int64_t n_idx, int64_t n_cols, const T *X,             \
                             const int64_t *idx, T *out);

/* The kernels of fbp_layers_impl.h. */
#define FBP_DECLARE_LAYERS(T, S)                                                   \
    /* A[i, :] = softmax(Z[i, :]); A may alias Z. */                                \
    void fbp_softmax_rows_##S(int64_t n_rows, int64_t n_cols, const T *Z, T *A);    \
    /* dZ = A * (dA - rowsum(dA * A)) through the softmax A; dZ may alias dA; db   \
     * (optional) = sum over rows of dZ. */                                        \
    void fbp_softmax_backward_##S(int64_t n_rows, int64_t n_cols, const T *A,       \
                                  const T *dA, T *dZ, T *db);                      \
    /* PReLU with one slope per column: A = Z if Z > 0 else alpha * Z. */           \
    void fbp_prelu_forward_##S(int64_t n_rows, int64_t n_cols, const T *alpha,      \
                               const T *Z, T *A);                                  \
    /* dalpha = sum over rows of dA * min(Z, 0); dZ = dA * (Z > 0 ? 1 : alpha) if    \
     * dZ != NULL (dZ may alias dA). */                                            \
    void fbp_prelu_backward_##S(int64_t n_rows, int64_t n_cols, const T *alpha,     \
                                const T *Z, const T *dA, T *dZ, T *dalpha);        \
    /* Maxout: A (n_rows, units) = max over each unit's `pieces` adjacent columns   \
     * of Z (n_rows, units * pieces). */                                           \
    void fbp_maxout_forward_##S(int64_t n_rows, int64_t units, int64_t pieces,      \
                                const T *Z, T *A);                                 \
    /* dZ = dA routed to each unit's winning piece (the first on ties), 0 elsewhere. */ \
    void fbp_maxout_backward_##S(int64_t n_rows, int64_t units, int64_t pieces,     \
                                 const T *Z, const T *dA, T *dZ);                  \
    /* out = a * b element-wise (b NULL: out = a); out may alias a. */              \
    void fbp_mul_##S(int64_t n, const T *a, const T *b, T *out);

/* The small-matrix GEMM of fbp_small_gemm_impl.h, for the shapes where a BLAS call's
 * set-up outweighs its arithmetic. Its panel lives on the stack: k is taken in
 * slices of FBP_SMALL_GEMM_MAX_K (16 KiB of panel for either type, little
 * enough for a thread with a small stack). */
#define FBP_SMALL_GEMM_MAX_K 256
#define FBP_DECLARE_SMALL_GEMM(T, S)                                               \
    /* Row-major C (m, n) = alpha * op(A) @ op(B) + beta * C, as BLAS computes it: \
     * op(A) (m, k) is A, or A.T with trans_a; op(B) (k, n) is B, or B.T with     \
     * trans_b; lda, ldb, ldc are the stored row lengths; beta == 0 never reads C. */ \
    void fbp_small_gemm_##S(int trans_a, int trans_b, int m, int n, int k, T alpha, \
                            const T *A, int lda, const T *B, int ldb, T beta, T *C, \
                            int ldc);

FBP_DECLARE(float, f)
FBP_DECLARE(double, d)
FBP_DECLARE_LAYERS(float, f)
FBP_DECLARE_LAYERS(double, d)
FBP_DECLARE_SMALL_GEMM(float, f)
FBP_DECLARE_SMALL_GEMM(double, d)

#undef FBP_DECLARE
#undef FBP_DECLARE_LAYERS
#undef FBP_DECLARE_SMALL_GEMM

/* 64 random bits for element i of stream `stream` under `seed`: the splitmix64
 * finaliser of a counter, so any element can be drawn on its own and the NumPy
 * backend draws the very same numbers. Its top 53 bits make a uniform in [0, 1). */
static inline uint64_t fbp_hash(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint64_t x = seed ^ (stream * 0x9E3779B97F4A7C15ULL) ^ (i * 0xD1B54A32D192ED03ULL);
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

/* Gather of integer labels for a mini-batch. */
void fbp_gather_labels(int64_t n_idx, const int64_t *y, const int64_t *idx, int64_t *out);

#endif
