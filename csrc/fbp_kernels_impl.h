/* Template body of fbp_kernels.c: included once per floating type with
 * T (the type), FN(name) (the suffixed name) and the math functions
 * EXP, LOG, LOG1P, EXPM1, TANH, LOG1P_EXPNEG(a) = log1p(exp(-a)) defined by the includer. */

static inline T FN(sigmoid)(T v)
{
    /* exp of a non-positive number never overflows. */
    T e = EXP(-(v >= 0 ? v : -v));
    T r = (T)1 / ((T)1 + e);
    return v >= 0 ? r : e * r;
}

/* softplus(v) = log(1 + exp(v)) without overflow. */
static inline T FN(softplus)(T v)
{
    return (v > 0 ? v : (T)0) + LOG1P_EXPNEG(v >= 0 ? v : -v);
}

/* GELU, tanh approximation: 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))). */
#define FBP_GELU_C ((T)0.7978845608028654)
#define FBP_GELU_K ((T)0.044715)
static inline T FN(gelu)(T v)
{
    return (T)0.5 * v * ((T)1 + TANH(FBP_GELU_C * (v + FBP_GELU_K * v * v * v)));
}

static inline T FN(gelu_grad)(T v)
{
    T t = TANH(FBP_GELU_C * (v + FBP_GELU_K * v * v * v));
    return (T)0.5 * ((T)1 + t)
           + (T)0.5 * v * ((T)1 - t * t) * FBP_GELU_C * ((T)1 + (T)3 * FBP_GELU_K * v * v);
}

static inline T FN(silu_grad)(T v)
{
    T s = FN(sigmoid)(v);
    return s * ((T)1 + v * ((T)1 - s));
}

/* One pass over a row: optional bias add, then the activation. */
#define FBP_BIAS_ACT_ROWS(EXPR)                                                  \
    for (int64_t i = 0; i < n_rows; ++i) {                                       \
        T *z = Z + i * n_cols;                                                   \
        T *a = A + i * n_cols;                                                   \
        if (b) {                                                                 \
            for (int64_t j = 0; j < n_cols; ++j) {                               \
                T v = z[j] + b[j];                                               \
                z[j] = v;                                                        \
                a[j] = (EXPR);                                                   \
            }                                                                    \
        } else {                                                                 \
            for (int64_t j = 0; j < n_cols; ++j) {                               \
                T v = z[j];                                                      \
                a[j] = (EXPR);                                                   \
            }                                                                    \
        }                                                                        \
    }

void FN(fbp_broadcast_rows)(int64_t n_rows, int64_t n_cols, const T *b, T *out)
{
    for (int64_t i = 0; i < n_rows; ++i)
        memcpy(out + i * n_cols, b, (size_t)n_cols * sizeof(T));
}

FBP_SIMD_CLONES
int FN(fbp_bias_act)(int act, T param, int64_t n_rows, int64_t n_cols,
                     const T *b, T *Z, T *A)
{
    switch ((enum fbp_act)act) {
    case FBP_ACT_IDENTITY:
        if (b || A != Z) FBP_BIAS_ACT_ROWS(v)   /* else nothing to do */
        break;
    case FBP_ACT_SIGMOID:    FBP_BIAS_ACT_ROWS(FN(sigmoid)(v)) break;
    case FBP_ACT_TANH:       FBP_BIAS_ACT_ROWS(TANH(v)) break;
    case FBP_ACT_RELU:       FBP_BIAS_ACT_ROWS(v > 0 ? v : (T)0) break;
    case FBP_ACT_LEAKY_RELU: FBP_BIAS_ACT_ROWS(v > 0 ? v : param * v) break;
    case FBP_ACT_ELU:        FBP_BIAS_ACT_ROWS(v > 0 ? v : param * EXPM1(v)) break;
    case FBP_ACT_SOFTPLUS:   FBP_BIAS_ACT_ROWS(FN(softplus)(v)) break;
    case FBP_ACT_HARD_SIGMOID:
        FBP_BIAS_ACT_ROWS(v < (T)-2 ? (T)0 : v > (T)2 ? (T)1 : (T)0.25 * v + (T)0.5) break;
    case FBP_ACT_HARD_TANH:  FBP_BIAS_ACT_ROWS(v < (T)-1 ? (T)-1 : v > (T)1 ? (T)1 : v) break;
    case FBP_ACT_SILU:       FBP_BIAS_ACT_ROWS(v * FN(sigmoid)(v)) break;
    case FBP_ACT_GELU:       FBP_BIAS_ACT_ROWS(FN(gelu)(v)) break;
    case FBP_ACT_SOFTMAX:
        if (b) FBP_BIAS_ACT_ROWS(v)
        FN(fbp_softmax_rows)(n_rows, n_cols, b ? A : Z, A);
        break;
    case FBP_ACT_PRELU:      /* learnt per-unit slopes: fbp_prelu_forward */
    default:
        return FBP_ERR_ACTIVATION;
    }
    return FBP_OK;
}

/* One pass over a row: dZ = dA * f'(Z), accumulated into db row by row.
 * EXPR reads the loaded values zv, av, dav, so that every load is unconditional
 * and a kink's select vectorises. */
#define FBP_ACT_BACKWARD_ROWS(EXPR)                                              \
    {                                                                            \
    if (db) memset(db, 0, (size_t)n_cols * sizeof(T));                           \
    for (int64_t i = 0; i < n_rows; ++i) {                                       \
        const T *z = Z + i * n_cols;                                             \
        const T *a = A + i * n_cols;                                             \
        const T *da = dA + i * n_cols;                                           \
        T *dz = dZ + i * n_cols;                                                 \
        if (db) {                                                                \
            for (int64_t j = 0; j < n_cols; ++j) {                               \
                T zv = z[j], av = a[j], dav = da[j];                             \
                (void)zv; (void)av;                                              \
                T g = (EXPR);                                                    \
                dz[j] = g;                                                       \
                db[j] += g;                                                      \
            }                                                                    \
        } else {                                                                 \
            for (int64_t j = 0; j < n_cols; ++j) {                               \
                T zv = z[j], av = a[j], dav = da[j];                             \
                (void)zv; (void)av;                                              \
                dz[j] = (EXPR);                                                  \
            }                                                                    \
        }                                                                        \
    }                                                                            \
    }

/* db = sum over rows of dZ, accumulated row by row (db NULL: nothing). */
static inline void FN(column_sums)(int64_t n_rows, int64_t n_cols, const T *dZ, T *db)
{
    if (!db) return;
    memset(db, 0, (size_t)n_cols * sizeof(T));
    for (int64_t i = 0; i < n_rows; ++i) {
        const T *dz = dZ + i * n_cols;
        for (int64_t j = 0; j < n_cols; ++j) db[j] += dz[j];
    }
}

FBP_SIMD_CLONES
int FN(fbp_act_backward)(int act, T param, int64_t n_rows, int64_t n_cols,
                         const T *Z, const T *A, const T *dA, T *dZ, T *db)
{
    switch ((enum fbp_act)act) {
    case FBP_ACT_IDENTITY:
        if (dZ == dA) FN(column_sums)(n_rows, n_cols, dZ, db);   /* dZ is dA already */
        else FBP_ACT_BACKWARD_ROWS(dav)
        break;
    case FBP_ACT_SIGMOID:    FBP_ACT_BACKWARD_ROWS(dav * av * ((T)1 - av)) break;
    case FBP_ACT_TANH:       FBP_ACT_BACKWARD_ROWS(dav * ((T)1 - av * av)) break;
    case FBP_ACT_RELU:       FBP_ACT_BACKWARD_ROWS(zv > 0 ? dav : (T)0) break;
    case FBP_ACT_LEAKY_RELU: FBP_ACT_BACKWARD_ROWS(zv > 0 ? dav : param * dav) break;
    /* elu'(z) = alpha exp(z) = A + alpha for z <= 0 */
    case FBP_ACT_ELU:        FBP_ACT_BACKWARD_ROWS(zv > 0 ? dav : dav * (av + param)) break;
    case FBP_ACT_SOFTPLUS:   FBP_ACT_BACKWARD_ROWS(dav * FN(sigmoid)(zv)) break;
    /* the clipped functions have slope only strictly inside their ramps */
    case FBP_ACT_HARD_SIGMOID:
        FBP_ACT_BACKWARD_ROWS(zv > (T)-2 && zv < (T)2 ? (T)0.25 * dav : (T)0) break;
    case FBP_ACT_HARD_TANH:
        FBP_ACT_BACKWARD_ROWS(zv > (T)-1 && zv < (T)1 ? dav : (T)0) break;
    case FBP_ACT_SILU:       FBP_ACT_BACKWARD_ROWS(dav * FN(silu_grad)(zv)) break;
    case FBP_ACT_GELU:       FBP_ACT_BACKWARD_ROWS(dav * FN(gelu_grad)(zv)) break;
    case FBP_ACT_SOFTMAX:    FN(fbp_softmax_backward)(n_rows, n_cols, A, dA, dZ, db); break;
    case FBP_ACT_PRELU:      /* learnt per-unit slopes: fbp_prelu_backward */
    default:
        return FBP_ERR_ACTIVATION;
    }
    return FBP_OK;
}

static inline FBP_ALWAYS_INLINE int64_t FN(argmax_row)(int64_t n, const T *x)
{
    int64_t best = 0;
    for (int64_t j = 1; j < n; ++j)
        if (x[j] > x[best]) best = j;
    return best;
}

/* The sum of a row, in four partial sums so that it vectorises too. */
static inline FBP_ALWAYS_INLINE T FN(sum_row)(int64_t n, const T *e)
{
    T s4[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (int l = 0; l < 4; ++l) s4[l] += e[j + l];
    T s = (s4[0] + s4[2]) + (s4[1] + s4[3]);
    for (; j < n; ++j) s += e[j];
    return s;
}

/* Writes exp(z - m) into e, with m = z[argmax], and returns the sum of exps. */
static inline T FN(shifted_exp_row)(int64_t n, const T *z, T m, T *e)
{
    for (int64_t j = 0; j < n; ++j) e[j] = EXP(z[j] - m);
    return FN(sum_row)(n, e);
}

/* Rows per block of the fused softmax cross-entropy. A block's row maxima and sums
 * are kept in arrays of this length, so that the exponentials of the whole block are
 * one vector loop over contiguous elements instead of a short loop (and its scalar
 * remainder) per row: 10 classes are 80 exps per 8 rows, 10 full vectors. */
#define FBP_XENT_BLOCK 64

/* Row maximum and its first column (NumPy's argmax). The maximum is taken in eight
 * running maxima, so that it vectorises (one chain of compares would cost a compare's
 * latency per column); each starts from z[0], so a NaN in column 0 makes the maximum
 * NaN and the column 0, and a NaN elsewhere is passed over, as argmax_row does. */
static inline FBP_ALWAYS_INLINE T FN(max_and_argmax_row)(int64_t n, const T *z, int64_t *best)
{
    T m8[8];
    for (int l = 0; l < 8; ++l) m8[l] = z[0];
    int64_t j = 1;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; ++l) m8[l] = z[j + l] > m8[l] ? z[j + l] : m8[l];
    T m = m8[0];
    for (int l = 1; l < 8; ++l) m = m8[l] > m ? m8[l] : m;
    for (; j < n; ++j) m = z[j] > m ? z[j] : m;
    *best = 0;
    for (j = 0; j < n; ++j)
        if (z[j] == m) {
            *best = j;
            break;
        }
    return m;
}

/* The fused softmax cross-entropy of both target kinds: class labels y (Y NULL) or
 * probability rows Y (y NULL). Per row, with s the sum of the shifted numerators and
 * m the row's maximum: -sum_j t_j log softmax(z)_j = sum_j t_j (log s - (z_j - m)),
 * and dZ = w scale (softmax(z) - t), t the target row (one-hot for a label).
 * Rows go in blocks of FBP_XENT_BLOCK, each pass over a whole block. */
static inline FBP_ALWAYS_INLINE double FN(softmax_xent)(int64_t n_rows, int64_t n_cols,
                                                        const T *Z, const int64_t *y,
                                                        const T *Y, const T *w, T scale,
                                                        T *dZ, int64_t *n_correct)
{
    double loss = 0.0;
    int64_t correct = 0;
    T row_max[FBP_XENT_BLOCK], row_sum[FBP_XENT_BLOCK];
    for (int64_t i0 = 0; i0 < n_rows; i0 += FBP_XENT_BLOCK) {
        int64_t rows = n_rows - i0 < FBP_XENT_BLOCK ? n_rows - i0 : FBP_XENT_BLOCK;
        const T *Zb = Z + i0 * n_cols;
        T *dZb = dZ + i0 * n_cols;
        for (int64_t r = 0; r < rows; ++r) {
            const T *z = Zb + r * n_cols;
            const int64_t i = i0 + r;
            int64_t best, label = Y ? FN(argmax_row)(n_cols, Y + i * n_cols) : y[i];
            row_max[r] = FN(max_and_argmax_row)(n_cols, z, &best);
            correct += best == label;
            for (int64_t j = 0; j < n_cols; ++j) dZb[r * n_cols + j] = z[j] - row_max[r];
        }
        /* dZ = exp(Z - m), the block's numerators */
        for (int64_t e = 0; e < rows * n_cols; ++e) dZb[e] = EXP(dZb[e]);
        for (int64_t r = 0; r < rows; ++r) row_sum[r] = FN(sum_row)(n_cols, dZb + r * n_cols);
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t i = i0 + r;
            const T *z = Zb + r * n_cols;
            T *dz = dZb + r * n_cols;
            T m = row_max[r], s = row_sum[r];
            T wi = w ? w[i] : (T)1;
            T k = wi * scale / s, ws = wi * scale;
            if (Y) {
                const T *yr = Y + i * n_cols;
                T log_s = LOG(s);
                double row = 0.0;
                for (int64_t j = 0; j < n_cols; ++j)
                    row += (double)yr[j] * (double)(log_s - (z[j] - m));
                loss += (double)wi * row;
                for (int64_t j = 0; j < n_cols; ++j) dz[j] = dz[j] * k - yr[j] * ws;
            } else {
                loss += (double)wi * ((double)LOG(s) - (double)(z[y[i]] - m));
                for (int64_t j = 0; j < n_cols; ++j) dz[j] *= k;
                dz[y[i]] -= ws;
            }
        }
    }
    *n_correct = correct;
    return loss;
}

FBP_SIMD_CLONES
double FN(fbp_softmax_xent_int)(int64_t n_rows, int64_t n_cols, const T *Z,
                                const int64_t *y, const T *w, T scale, T *dZ,
                                int64_t *n_correct)
{
    return FN(softmax_xent)(n_rows, n_cols, Z, y, NULL, w, scale, dZ, n_correct);
}

FBP_SIMD_CLONES
double FN(fbp_softmax_xent_prob)(int64_t n_rows, int64_t n_cols, const T *Z,
                                 const T *Y, const T *w, T scale, T *dZ,
                                 int64_t *n_correct)
{
    return FN(softmax_xent)(n_rows, n_cols, Z, NULL, Y, w, scale, dZ, n_correct);
}

double FN(fbp_softmax_kl)(int64_t n_rows, int64_t n_cols, const T *Z, const T *Y,
                          const T *w, T scale, T *dZ, int64_t *n_correct)
{
    /* KL(y || s) = sum_j y_j log y_j - sum_j y_j log s_j: the cross-entropy minus the
     * targets' own entropy, with 0 log 0 = 0; the gradient is the cross-entropy's. */
    double entropy = 0.0;
    for (int64_t i = 0; i < n_rows; ++i) {
        double row = 0.0;
        for (int64_t j = 0; j < n_cols; ++j) {
            T p = Y[i * n_cols + j];
            if (p > 0) row -= (double)p * (double)LOG(p);
        }
        entropy += (w ? (double)w[i] : 1.0) * row;
    }
    return FN(fbp_softmax_xent_prob)(n_rows, n_cols, Z, Y, w, scale, dZ, n_correct) - entropy;
}

FBP_SIMD_CLONES
double FN(fbp_sigmoid_bce)(int64_t n_rows, int64_t n_cols, const T *Z, const T *A,
                           const T *Y, const T *w, T scale, T *dZ, int64_t *n_correct)
{
    double loss = 0.0;
    int64_t correct = 0;
    T terms[256];   /* a chunk of a row's loss terms: computing them apart vectorises */
    for (int64_t i = 0; i < n_rows; ++i) {
        T wi = w ? w[i] : (T)1, ws = wi * scale;
        double row = 0.0;
        for (int64_t j0 = i * n_cols; j0 < (i + 1) * n_cols; j0 += 256) {
            int64_t len = (i + 1) * n_cols - j0 < 256 ? (i + 1) * n_cols - j0 : 256;
            for (int64_t k = 0; k < len; ++k) {
                T z = Z[j0 + k];
                T abs_z = z >= 0 ? z : -z;
                /* -y log s(z) - (1 - y) log(1 - s(z)) = max(z, 0) - y z + log1p(exp(-|z|)) */
                terms[k] = (z > 0 ? z : (T)0) - Y[j0 + k] * z + LOG1P_EXPNEG(abs_z);
            }
            for (int64_t k = 0; k < len; ++k) row += (double)terms[k];
        }
        for (int64_t j = i * n_cols; j < (i + 1) * n_cols; ++j) {
            correct += (A[j] >= (T)0.5) == (Y[j] >= (T)0.5);
            dZ[j] = (A[j] - Y[j]) * ws;
        }
        loss += (double)wi * row;
    }
    *n_correct = correct;
    return loss;
}

double FN(fbp_mse)(int64_t n_rows, int64_t n_cols, const T *A, const T *Y, const T *w,
                   T scale, T *dA)
{
    double loss = 0.0;
    for (int64_t i = 0; i < n_rows; ++i) {
        T wi = w ? w[i] : (T)1, ws = wi * scale;
        double row = 0.0;
        for (int64_t j = i * n_cols; j < (i + 1) * n_cols; ++j) {
            T d = A[j] - Y[j];
            row += (double)d * (double)d;
            dA[j] = d * ws;
        }
        loss += (double)wi * row;
    }
    return 0.5 * loss;
}

double FN(fbp_sumsq)(int64_t n, const T *x)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += (double)x[i] * (double)x[i];
    return s;
}

void FN(fbp_add_decay)(int64_t n, T weight_decay, const T *w, T *g)
{
    for (int64_t i = 0; i < n; ++i) g[i] += weight_decay * w[i];
}

void FN(fbp_sgd)(int64_t n, T lr, const T *g, T *w)
{
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * g[i];
}

/* Decoupled weight decay, before the step: w *= 1 - lr * decay. */
static inline void FN(decay_weights)(const fbp_optim *opt, int64_t n, T *w)
{
    if (opt->hyper.decay == 0) return;
    const T keep = (T)1 - (T)opt->lr * (T)opt->hyper.decay;
    for (int64_t i = 0; i < n; ++i) w[i] *= keep;
}

/* The optimiser steps, one signature for all (s1, s2: the state arrays a rule keeps;
 * those it does not keep are not touched). */

/* v = momentum v + g; w -= lr (nesterov ? g + momentum v : v); plain w -= lr g
 * without momentum (v = s1, unused then). */
static void FN(sgd_step)(const fbp_optim *opt, int64_t n, T grad_scale, const T *g, T *w,
                         T *v, T *unused)
{
    (void)unused;
    const T lr = (T)opt->lr, mu = (T)opt->hyper.momentum;
    if (mu == 0) {
        for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] * grad_scale);
    } else if (opt->hyper.nesterov) {
        for (int64_t i = 0; i < n; ++i) {
            T gi = g[i] * grad_scale;
            T vi = mu * v[i] + gi;
            v[i] = vi;
            w[i] -= lr * (gi + mu * vi);
        }
    } else {
        for (int64_t i = 0; i < n; ++i) {
            T vi = mu * v[i] + g[i] * grad_scale;
            v[i] = vi;
            w[i] -= lr * vi;
        }
    }
}

/* m, v: the first and second moments; corrections 1 - beta^t set by the engine. */
static void FN(adam_step)(const fbp_optim *opt, int64_t n, T grad_scale, const T *g, T *w,
                          T *m, T *v)
{
    const T lr = (T)opt->lr, eps = (T)opt->hyper.eps;
    const T b1 = (T)opt->hyper.beta1, b2 = (T)opt->hyper.beta2;
    const T c1 = (T)opt->correction1, c2 = (T)opt->correction2;
    for (int64_t i = 0; i < n; ++i) {
        T gi = g[i] * grad_scale;
        T mi = b1 * m[i] + ((T)1 - b1) * gi;
        T vi = b2 * v[i] + ((T)1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= lr * (mi / c1) / (SQRT(vi / c2) + eps);
    }
}

/* s = rho s + (1 - rho) g^2; w -= lr g / (sqrt(s) + eps). */
static void FN(rmsprop_step)(const fbp_optim *opt, int64_t n, T grad_scale, const T *g,
                             T *w, T *s, T *unused)
{
    (void)unused;
    const T lr = (T)opt->lr, eps = (T)opt->hyper.eps, rho = (T)opt->hyper.rho;
    for (int64_t i = 0; i < n; ++i) {
        T gi = g[i] * grad_scale;
        T sq = rho * s[i] + ((T)1 - rho) * gi * gi;
        s[i] = sq;
        w[i] -= lr * gi / (SQRT(sq) + eps);
    }
}

/* s += g^2; w -= lr g / (sqrt(s) + eps). */
static void FN(adagrad_step)(const fbp_optim *opt, int64_t n, T grad_scale, const T *g,
                             T *w, T *s, T *unused)
{
    (void)unused;
    const T lr = (T)opt->lr, eps = (T)opt->hyper.eps;
    for (int64_t i = 0; i < n; ++i) {
        T gi = g[i] * grad_scale;
        T sq = s[i] + gi * gi;
        s[i] = sq;
        w[i] -= lr * gi / (SQRT(sq) + eps);
    }
}

int FN(fbp_optim_update)(const fbp_optim *opt, int64_t n, T grad_scale,
                         const T *g, T *w, T *s1, T *s2)
{
    void (*step)(const fbp_optim *, int64_t, T, const T *, T *, T *, T *);
    switch ((enum fbp_opt)opt->hyper.kind) {
    case FBP_OPT_SGD:
        step = FN(sgd_step);
        break;
    case FBP_OPT_ADAM:
        step = FN(adam_step);
        break;
    case FBP_OPT_RMSPROP:
        step = FN(rmsprop_step);
        break;
    case FBP_OPT_ADAGRAD:
        step = FN(adagrad_step);
        break;
    default:
        return FBP_ERR_OPTIMIZER;
    }
    FN(decay_weights)(opt, n, w);   /* every rule: decoupled decay first (none at 0) */
    step(opt, n, grad_scale, g, w, s1, s2);
    return FBP_OK;
}

FBP_SIMD_CLONES
void FN(fbp_dropout)(int64_t n, double keep, uint64_t seed, uint64_t stream,
                     int64_t first, const T *A, T *mask, T *D)
{
    /* u = (x >> 11) 2^-53 is below keep exactly when the integer x >> 11 is below
     * ceil(keep 2^53): the test made in integers, so the loop needs no conversion
     * to double and vectorises. */
    const uint64_t below = (uint64_t)ceil(keep * 9007199254740992.0);
    const T scale = (T)(1.0 / keep);
    for (int64_t i = 0; i < n; ++i) {
        T m = (fbp_hash(seed, stream, (uint64_t)(first + i)) >> 11) < below ? scale : (T)0;
        mask[i] = m;
        D[i] = A[i] * m;
    }
}

void FN(fbp_gather_rows)(int64_t n_idx, int64_t n_cols, const T *X,
                         const int64_t *idx, T *out)
{
    for (int64_t i = 0; i < n_idx; ++i)
        memcpy(out + i * n_cols, X + idx[i] * n_cols, (size_t)n_cols * sizeof(T));
}

#undef FBP_GELU_C
#undef FBP_GELU_K
#undef FBP_BIAS_ACT_ROWS
#undef FBP_ACT_BACKWARD_ROWS
