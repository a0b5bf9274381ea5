/* The GEMM routines the compiled engine calls, as function pointers.
 *
 * Both take the Fortran BLAS calling convention (every argument by pointer,
 * column-major, 32-bit integers), which SciPy's cython_blas and MKL's mkl_rt
 * share, so a provider is just a pair of addresses. Each extension module that
 * includes this header holds its own pair (static), set when the module loads
 * and changed only by fastbp.gemm.use() (through the module's _set_gemm).
 */
#ifndef FBP_GEMM_H
#define FBP_GEMM_H

typedef void (*fbp_sgemm_fn)(const char *transa, const char *transb, const int *m,
                             const int *n, const int *k, const float *alpha, const float *a,
                             const int *lda, const float *b, const int *ldb,
                             const float *beta, float *c, const int *ldc);
typedef void (*fbp_dgemm_fn)(const char *transa, const char *transb, const int *m,
                             const int *n, const int *k, const double *alpha,
                             const double *a, const int *lda, const double *b,
                             const int *ldb, const double *beta, double *c, const int *ldc);

/* sets the calling thread's count (0: back to the process-wide one) and returns
 * the previous setting, as mkl_set_num_threads_local does */
typedef int (*fbp_set_local_threads_fn)(int n_threads);

static fbp_sgemm_fn fbp_sgemm = 0;
static fbp_dgemm_fn fbp_dgemm = 0;
static fbp_set_local_threads_fn fbp_set_local_threads = 0;
static double fbp_serial_flops = 0;
/* GEMMs of at most this many operations (2 m n k) run in fbp_small_gemm_f/_d, not
 * the provider (0: none) */
static double fbp_small_flops = 0;

#endif
