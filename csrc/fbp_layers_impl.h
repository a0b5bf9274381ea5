/* Template body for the kernels of the layers that are not a dense layer's
 * element-wise activation: softmax (a row-wise activation), PReLU, maxout, and an
 * element-wise product for dropout's backward pass. Included by fbp_kernels.c once
 * per floating type, after fbp_kernels_impl.h (whose shifted_exp_row it uses), with T,
 * FN and EXP defined. */

FBP_SIMD_CLONES
void FN(fbp_softmax_rows)(int64_t n_rows, int64_t n_cols, const T *Z, T *A)
{
    for (int64_t i = 0; i < n_rows; ++i) {
        const T *z = Z + i * n_cols;
        T *a = A + i * n_cols;
        T m = z[0];
        for (int64_t j = 1; j < n_cols; ++j) m = z[j] > m ? z[j] : m;
        T s = FN(shifted_exp_row)(n_cols, z, m, a);
        T inv = (T)1 / s;
        for (int64_t j = 0; j < n_cols; ++j) a[j] *= inv;
    }
}

FBP_SIMD_CLONES
void FN(fbp_softmax_backward)(int64_t n_rows, int64_t n_cols, const T *A, const T *dA,
                              T *dZ, T *db)
{
    /* The Jacobian of a softmax row s is diag(s) - s s^T, so
     * dZ = s * (dA - <dA, s>) without forming it. */
    if (db) memset(db, 0, (size_t)n_cols * sizeof(T));
    for (int64_t i = 0; i < n_rows; ++i) {
        const T *a = A + i * n_cols;
        const T *da = dA + i * n_cols;
        T *dz = dZ + i * n_cols;
        T dot = 0;
        for (int64_t j = 0; j < n_cols; ++j) dot += da[j] * a[j];
        for (int64_t j = 0; j < n_cols; ++j) dz[j] = a[j] * (da[j] - dot);
        if (db)
            for (int64_t j = 0; j < n_cols; ++j) db[j] += dz[j];
    }
}

/* PReLU as max(v, 0) + alpha min(v, 0): selects rather than branches, so the loops
 * vectorise, and the results are exactly those of (v > 0 ? v : alpha v). */
FBP_SIMD_CLONES
void FN(fbp_prelu_forward)(int64_t n_rows, int64_t n_cols, const T *alpha, const T *Z, T *A)
{
    for (int64_t i = 0; i < n_rows; ++i) {
        const T *z = Z + i * n_cols;
        T *a = A + i * n_cols;
        for (int64_t j = 0; j < n_cols; ++j) {
            T v = z[j];
            a[j] = (v > 0 ? v : (T)0) + alpha[j] * (v > 0 ? (T)0 : v);
        }
    }
}

FBP_SIMD_CLONES
void FN(fbp_prelu_backward)(int64_t n_rows, int64_t n_cols, const T *alpha, const T *Z,
                            const T *dA, T *dZ, T *dalpha)
{
    /* dalpha_j = sum_i dA_ij min(Z_ij, 0), accumulated row by row; dZ (optional,
     * may alias dA) = dA where Z > 0, alpha dA elsewhere. */
    memset(dalpha, 0, (size_t)n_cols * sizeof(T));
    for (int64_t i = 0; i < n_rows; ++i) {
        const T *z = Z + i * n_cols;
        const T *da = dA + i * n_cols;
        T *dz = dZ ? dZ + i * n_cols : NULL;
        if (dz) {
            for (int64_t j = 0; j < n_cols; ++j) {
                T v = z[j], g = da[j];
                dalpha[j] += g * (v > 0 ? (T)0 : v);
                dz[j] = g * (v > 0 ? (T)1 : alpha[j]);
            }
        } else {
            for (int64_t j = 0; j < n_cols; ++j) {
                T v = z[j];
                dalpha[j] += da[j] * (v > 0 ? (T)0 : v);
            }
        }
    }
}

/* One loop over the units for a number of pieces K: with K a constant the compiler
 * vectorises it (interleaved loads), so the usual K = 2, 3, 4 get their own copies. */
#define FBP_MAXOUT_FORWARD(K)                                                    \
    for (int64_t i = 0; i < n_units; ++i) {                                      \
        const T *z = Z + i * (K);                                                \
        T m = z[0];                                                              \
        for (int64_t p = 1; p < (K); ++p) m = z[p] > m ? z[p] : m;              \
        A[i] = m;                                                                \
    }

/* Each unit's gradient goes to its winning piece (the first one on a tie). */
#define FBP_MAXOUT_BACKWARD(K)                                                   \
    for (int64_t i = 0; i < n_units; ++i) {                                      \
        const T *z = Z + i * (K);                                                \
        T *dz = dZ + i * (K);                                                    \
        T m = z[0];                                                              \
        int64_t best = 0;                                                        \
        for (int64_t p = 1; p < (K); ++p) {                                      \
            best = z[p] > m ? p : best;                                          \
            m = z[p] > m ? z[p] : m;                                             \
        }                                                                        \
        for (int64_t p = 0; p < (K); ++p) dz[p] = p == best ? dA[i] : (T)0;     \
    }

FBP_SIMD_CLONES
void FN(fbp_maxout_forward)(int64_t n_rows, int64_t units, int64_t pieces, const T *Z, T *A)
{
    /* Z holds each unit's pieces side by side: unit j is Z[i, j*pieces : (j+1)*pieces]. */
    const int64_t n_units = n_rows * units;
    switch (pieces) {
    case 2: FBP_MAXOUT_FORWARD(2) break;
    case 3: FBP_MAXOUT_FORWARD(3) break;
    case 4: FBP_MAXOUT_FORWARD(4) break;
    default: FBP_MAXOUT_FORWARD(pieces) break;
    }
}

FBP_SIMD_CLONES
void FN(fbp_maxout_backward)(int64_t n_rows, int64_t units, int64_t pieces, const T *Z,
                             const T *dA, T *dZ)
{
    const int64_t n_units = n_rows * units;
    switch (pieces) {
    case 2: FBP_MAXOUT_BACKWARD(2) break;
    case 3: FBP_MAXOUT_BACKWARD(3) break;
    case 4: FBP_MAXOUT_BACKWARD(4) break;
    default: FBP_MAXOUT_BACKWARD(pieces) break;
    }
}

#undef FBP_MAXOUT_FORWARD
#undef FBP_MAXOUT_BACKWARD

void FN(fbp_mul)(int64_t n, const T *a, const T *b, T *out)
{
    if (b == NULL) {
        if (out != a) memcpy(out, a, (size_t)n * sizeof(T));
        return;
    }
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
