/* The small-matrix GEMM: register-blocked loops for the shapes where a BLAS call
 * costs more in set-up than in arithmetic (fastbp.gemm's small path).
 *
 * Template: included by fbp_kernels.c once per type, with T and FN defined.
 *
 * Row-major C (m, n) = alpha * op(A) @ op(B) + beta * C, op(A) (m, k), op(B) (k, n),
 * with lda, ldb, ldc the row lengths as stored, as BLAS computes it: beta == 0
 * never reads C (it may hold NaN), alpha == 0 or k == 0 only scales C.
 *
 * Method. C is taken FBP_NR columns at a time (64 bytes: two 32-byte vectors).
 * Those columns of op(B) are read in place when B is not transposed and the
 * block is full; otherwise they are first copied into a panel of k rows on the
 * stack (transposed, zero-padded past n). Each tile of up to FBP_MR rows of C is
 * held in 2 * FBP_MR vector accumulators: per p, one row of the block is loaded
 * and each op(A)[i, p] broadcast against it. With the tile's row count a constant
 * at every call, GCC keeps the accumulators in registers (12 of AVX2's 16, enough
 * independent sums to cover the FMA latency). Every C value is one sum over p in
 * order, then scaled, so the result depends neither on the tiling nor on the
 * thread, only on the instruction set's rounding (FMA or not) -- and, for k above
 * FBP_SMALL_GEMM_MAX_K, on the slices of k the panel holds.
 */

/* values per block row: 64 bytes, two 32-byte vectors */
#define FBP_NR ((int)(64 / sizeof(T)))
#define FBP_VLEN ((int)(32 / sizeof(T)))
#define FBP_MR 6
#ifndef FBP_ALIGN64
#if defined(_MSC_VER)
#define FBP_ALIGN64 __declspec(align(64))
#else
#define FBP_ALIGN64 __attribute__((aligned(64)))
#endif
#endif

/* A strided matrix: element (i, j) at at[i * row + j * col]. */
typedef struct {
    const T *at;
    int64_t row, col;
} FN(fbp_strided);

/* P (k, FBP_NR) = Y[0:k, j0:j0+nr], zero past nr. */
static inline void FN(small_gemm_pack)(int k, int j0, int nr, FN(fbp_strided) Y, T *P)
{
    const T *y = Y.at + j0 * Y.col;
    for (int p = 0; p < k; ++p)
        for (int j = nr; j < FBP_NR; ++j) P[p * FBP_NR + j] = 0;
    if (Y.col == 1) {
        for (int p = 0; p < k; ++p)
            for (int j = 0; j < nr; ++j) P[p * FBP_NR + j] = y[p * Y.row + j];
    } else {
        /* a transposed block: read along its stored rows */
        for (int j = 0; j < nr; ++j)
            for (int p = 0; p < k; ++p) P[p * FBP_NR + j] = y[p * Y.row + j * Y.col];
    }
}

#if defined(__GNUC__)
typedef T FN(fbp_vec) __attribute__((vector_size(32)));
/* the same, at any address a T may have */
typedef T FN(fbp_vec_u) __attribute__((vector_size(32), aligned(sizeof(T))));

/* C[0:ROWS, 0:nr] = alpha * X[0:ROWS, :] @ Bj + beta * C over k terms, where row p
 * of the block Bj (FBP_NR values) starts at Bj + p * b_row and C(r, j) is
 * C[r * c_row + j * c_col]. ROWS is a constant at every call (always_inline), so
 * the accumulator loops unroll into registers. GCC vector types, not plain
 * arrays: left to its vectoriser, GCC spilled the tile to memory. */
static inline FBP_ALWAYS_INLINE void FN(small_gemm_tile)(
    const int ROWS, int k, FN(fbp_strided) X, const T *Bj, int64_t b_row, int nr,
    T alpha, T beta, T *C, int64_t c_row, int64_t c_col)
{
    typedef FN(fbp_vec) V;
    typedef FN(fbp_vec_u) Vu;
    V acc[FBP_MR][2];
    for (int r = 0; r < ROWS; ++r) acc[r][0] = acc[r][1] = (V){0};
    for (int p = 0; p < k; ++p) {
        const V b0 = *(const Vu *)(Bj + p * b_row);
        const V b1 = *(const Vu *)(Bj + p * b_row + FBP_VLEN);
        const T *x = X.at + p * X.col;
        for (int r = 0; r < ROWS; ++r) {
            const V x_rp = x[r * X.row] - (V){0};  /* a broadcast: x - 0 is x, -0 too */
            acc[r][0] += x_rp * b0;
            acc[r][1] += x_rp * b1;
        }
    }
    for (int r = 0; r < ROWS; ++r) {
        T *c = C + r * c_row;
        if (nr == FBP_NR && c_col == 1) {
            Vu *c0 = (Vu *)c, *c1 = (Vu *)(c + FBP_VLEN);
            if (beta == 0) {
                *c0 = alpha * acc[r][0];
                *c1 = alpha * acc[r][1];
            } else {
                *c0 = alpha * acc[r][0] + beta * *c0;
                *c1 = alpha * acc[r][1] + beta * *c1;
            }
        } else if (beta == 0) {
            for (int j = 0; j < nr; ++j)
                c[j * c_col] = alpha * acc[r][j / FBP_VLEN][j % FBP_VLEN];
        } else {
            for (int j = 0; j < nr; ++j)
                c[j * c_col] = alpha * acc[r][j / FBP_VLEN][j % FBP_VLEN] + beta * c[j * c_col];
        }
    }
}
#else
/* Plain loops where GCC's vector types are missing (MSVC). */
static inline FBP_ALWAYS_INLINE void FN(small_gemm_tile)(const int ROWS, int k, FN(fbp_strided) X,
                                       const T *Bj, int64_t b_row, int nr, T alpha, T beta,
                                       T *C, int64_t c_row, int64_t c_col)
{
    T acc[FBP_MR][FBP_NR];
    for (int r = 0; r < ROWS; ++r)
        for (int j = 0; j < FBP_NR; ++j) acc[r][j] = 0;
    for (int p = 0; p < k; ++p)
        for (int r = 0; r < ROWS; ++r) {
            const T x_rp = X.at[r * X.row + p * X.col];
            for (int j = 0; j < FBP_NR; ++j) acc[r][j] += x_rp * Bj[p * b_row + j];
        }
    for (int r = 0; r < ROWS; ++r) {
        T *c = C + r * c_row;
        for (int j = 0; j < nr; ++j)
            c[j * c_col] = beta == 0 ? alpha * acc[r][j]
                                     : alpha * acc[r][j] + beta * c[j * c_col];
    }
}
#endif

/* C (m, n) = alpha * X (m, k) @ Y (k, n) + beta * C for 0 < k <= FBP_SMALL_GEMM_MAX_K;
 * C(i, j) is C[i * c_row + j * c_col]. Inlined into fbp_small_gemm, so that it is
 * compiled with each of that function's instruction sets. */
static inline FBP_ALWAYS_INLINE void FN(small_gemm_run)(int m, int n, int k, T alpha, FN(fbp_strided) X,
                                      FN(fbp_strided) Y, T beta, T *C, int64_t c_row,
                                      int64_t c_col)
{
    FBP_ALIGN64 T P[FBP_SMALL_GEMM_MAX_K * FBP_NR];
    for (int j0 = 0; j0 < n; j0 += FBP_NR) {
        const int nr = n - j0 < FBP_NR ? n - j0 : FBP_NR;
        const T *Bj = Y.at + j0;
        int64_t b_row = Y.row;
        if (Y.col != 1 || nr < FBP_NR) {
            FN(small_gemm_pack)(k, j0, nr, Y, P);
            Bj = P;
            b_row = FBP_NR;
        }
        T *Cj = C + j0 * c_col;
        FN(fbp_strided) Xi = X;
        int i = 0;
        for (; i + FBP_MR <= m; i += FBP_MR, Xi.at += FBP_MR * X.row)
            FN(small_gemm_tile)(FBP_MR, k, Xi, Bj, b_row, nr, alpha, beta, Cj + i * c_row,
                                c_row, c_col);
        /* the last m % FBP_MR rows: a tile of 4, 2 or 1 rows at a time */
        if (m - i >= 4) {
            FN(small_gemm_tile)(4, k, Xi, Bj, b_row, nr, alpha, beta, Cj + i * c_row, c_row,
                                c_col);
            i += 4;
            Xi.at += 4 * X.row;
        }
        if (m - i >= 2) {
            FN(small_gemm_tile)(2, k, Xi, Bj, b_row, nr, alpha, beta, Cj + i * c_row, c_row,
                                c_col);
            i += 2;
            Xi.at += 2 * X.row;
        }
        if (m - i >= 1)
            FN(small_gemm_tile)(1, k, Xi, Bj, b_row, nr, alpha, beta, Cj + i * c_row, c_row,
                                c_col);
    }
}

/* A rough cost, in cycles, of small_gemm_run(m, n, k, X, Y): its multiply-adds with
 * the padding (n rounded up to blocks of FBP_NR, m to pairs of rows: the 1-row tile
 * is the slow one) at one block row per cycle, plus the values it copies into
 * panels, one per cycle (a transposed copy, all of Y) or half that (the last
 * partial block). */
static inline double FN(small_gemm_cost)(int m, int n, int k, FN(fbp_strided) Y)
{
    const int blocks = (n + FBP_NR - 1) / FBP_NR;
    const double multiply = (double)((m + 1) / 2 * 2) * blocks * k;
    if (Y.col != 1) return multiply + (double)blocks * FBP_NR * k;
    return multiply + (n % FBP_NR ? 0.5 * FBP_NR * k : 0);
}

FBP_SIMD_CLONES
void FN(fbp_small_gemm)(int trans_a, int trans_b, int m, int n, int k, T alpha,
                        const T *A, int lda, const T *B, int ldb, T beta, T *C, int ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0) {
        for (int i = 0; i < m; ++i) {
            T *c = C + (int64_t)i * ldc;
            if (beta == 0)
                for (int j = 0; j < n; ++j) c[j] = 0;
            else if (beta != 1)
                for (int j = 0; j < n; ++j) c[j] *= beta;
        }
        return;
    }
    /* op(A) and op(B) as strided matrices */
    FN(fbp_strided) X = {A, trans_a ? 1 : lda, trans_a ? lda : 1};
    FN(fbp_strided) Y = {B, trans_b ? 1 : ldb, trans_b ? ldb : 1};
    /* A narrow C (n = 10 classes, say) wastes most of its column blocks: then C.T
     * = op(B).T @ op(A).T may cost less, written back transposed. */
    FN(fbp_strided) Bt = {Y.at, Y.col, Y.row}, At = {X.at, X.col, X.row};
    const int swap = FN(small_gemm_cost)(n, m, k, At) < FN(small_gemm_cost)(m, n, k, Y);
    /* a longer k in slices the panel holds, each added onto C */
    for (int p0 = 0; p0 < k; p0 += FBP_SMALL_GEMM_MAX_K) {
        const int kk = k - p0 < FBP_SMALL_GEMM_MAX_K ? k - p0 : FBP_SMALL_GEMM_MAX_K;
        FN(fbp_strided) Xp = {X.at + p0 * X.col, X.row, X.col};
        FN(fbp_strided) Yp = {Y.at + p0 * Y.row, Y.row, Y.col};
        const T beta_p = p0 == 0 ? beta : (T)1;
        if (swap) {
            FN(fbp_strided) Btp = {Yp.at, Bt.row, Bt.col}, Atp = {Xp.at, At.row, At.col};
            FN(small_gemm_run)(n, m, kk, alpha, Btp, Atp, beta_p, C, 1, ldc);
        } else {
            FN(small_gemm_run)(m, n, kk, alpha, Xp, Yp, beta_p, C, ldc, 1);
        }
    }
}

#undef FBP_NR
#undef FBP_VLEN
#undef FBP_MR
