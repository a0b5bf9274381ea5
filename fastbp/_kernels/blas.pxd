# Row-major GEMM over the provider fastbp.gemm chose (SciPy's BLAS by default).
from libc.stdint cimport uintptr_t
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

cdef extern from "fbp_gemm.h":
    ctypedef void (*fbp_sgemm_fn)(const char *, const char *, const int *, const int *,
                                  const int *, const float *, const float *, const int *,
                                  const float *, const int *, const float *, float *,
                                  const int *) noexcept nogil
    ctypedef void (*fbp_dgemm_fn)(const char *, const char *, const int *, const int *,
                                  const int *, const double *, const double *, const int *,
                                  const double *, const int *, const double *, double *,
                                  const int *) noexcept nogil
    fbp_sgemm_fn fbp_sgemm
    fbp_dgemm_fn fbp_dgemm


cdef inline void set_gemm(uintptr_t sgemm_address, uintptr_t dgemm_address) noexcept:
    """Route this module's GEMMs to the given routines; 0 means SciPy's."""
    global fbp_sgemm, fbp_dgemm
    fbp_sgemm = <fbp_sgemm_fn>sgemm_address if sgemm_address else <fbp_sgemm_fn>sgemm
    fbp_dgemm = <fbp_dgemm_fn>dgemm_address if dgemm_address else <fbp_dgemm_fn>dgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                      const floating *A, int lda, const floating *B, int ldb,
                      floating beta, floating *C, int ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C on row-major arrays.

    op(A) is (m, k), op(B) is (k, n), C is (m, n); lda, ldb, ldc are the row
    lengths of A, B, C as stored. A row-major matrix is its transpose in
    column-major order, so BLAS is asked for C.T = op(B).T @ op(A).T.
    """
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    if floating is float:
        fbp_sgemm(&ta, &tb, &n, &m, &k, &alpha, <const float *>B, &ldb, <const float *>A, &lda,
                  &beta, C, &ldc)
    else:
        fbp_dgemm(&ta, &tb, &n, &m, &k, &alpha, <const double *>B, &ldb, <const double *>A,
                  &lda, &beta, C, &ldc)
