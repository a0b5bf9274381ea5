# Row-major GEMM over scipy's BLAS.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


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
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float *>B, &ldb, <float *>A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double *>B, &ldb, <double *>A, &lda,
              &beta, C, &ldc)
