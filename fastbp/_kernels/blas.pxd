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
    ctypedef int (*fbp_set_local_threads_fn)(int) noexcept nogil
    fbp_sgemm_fn fbp_sgemm
    fbp_dgemm_fn fbp_dgemm
    fbp_set_local_threads_fn fbp_set_local_threads
    double fbp_serial_flops
    double fbp_small_flops

cdef extern from "fbp_kernels.h":
    void fbp_small_gemm_f(int trans_a, int trans_b, int m, int n, int k, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta,
                          float *C, int ldc) noexcept nogil
    void fbp_small_gemm_d(int trans_a, int trans_b, int m, int n, int k, double alpha,
                          const double *A, int lda, const double *B, int ldb, double beta,
                          double *C, int ldc) noexcept nogil


cdef inline void set_gemm(uintptr_t sgemm_address, uintptr_t dgemm_address) noexcept:
    """Route this module's GEMMs to the given routines; 0 means SciPy's."""
    global fbp_sgemm, fbp_dgemm
    fbp_sgemm = <fbp_sgemm_fn>sgemm_address if sgemm_address else <fbp_sgemm_fn>sgemm
    fbp_dgemm = <fbp_dgemm_fn>dgemm_address if dgemm_address else <fbp_dgemm_fn>dgemm


cdef inline void set_thread_policy(uintptr_t set_local_address, double serial_flops) noexcept:
    """GEMMs below serial_flops operations run on one thread, through the
    calling-thread setter at set_local_address; 0 (either) turns the policy off."""
    global fbp_set_local_threads, fbp_serial_flops
    fbp_set_local_threads = <fbp_set_local_threads_fn>set_local_address
    fbp_serial_flops = serial_flops if set_local_address else 0


cdef inline void set_small_path(double small_flops) noexcept:
    """GEMMs of at most small_flops operations (2 m n k) run in fastbp's own
    register-blocked loops instead of the provider; 0 sends every GEMM to it."""
    global fbp_small_flops
    fbp_small_flops = small_flops


cdef inline bint runs_small(int m, int n, int k) noexcept nogil:
    """Whether an (m, k) @ (k, n) GEMM runs in the small path (fbp_small_gemm)."""
    return 2.0 * m * n * k <= fbp_small_flops


cdef inline bint runs_serial(int m, int n, int k) noexcept nogil:
    """Whether an (m, k) @ (k, n) GEMM is run on one thread (fbp_gemm.h's policy)."""
    return fbp_set_local_threads != NULL and 2.0 * m * n * k < fbp_serial_flops


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                      const floating *A, int lda, const floating *B, int ldb,
                      floating beta, floating *C, int ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C on row-major arrays.

    op(A) is (m, k), op(B) is (k, n), C is (m, n); lda, ldb, ldc are the row
    lengths of A, B, C as stored. Small products run in fastbp's own loops
    (runs_small). Otherwise, a row-major matrix being its transpose in column-major
    order, BLAS is asked for C.T = op(B).T @ op(A).T, on one thread below the thread
    policy's threshold (runs_serial).
    """
    if runs_small(m, n, k):
        if floating is float:
            fbp_small_gemm_f(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
        else:
            fbp_small_gemm_d(trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
        return
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    # the setter is read once: fastbp.gemm.use() in another thread may clear the
    # global between the two calls, and a provider's library is never unloaded
    cdef fbp_set_local_threads_fn set_local = fbp_set_local_threads
    cdef bint serial = set_local != NULL and 2.0 * m * n * k < fbp_serial_flops
    cdef int previous = 0
    if serial:
        previous = set_local(1)
    if floating is float:
        fbp_sgemm(&ta, &tb, &n, &m, &k, &alpha, <const float *>B, &ldb, <const float *>A, &lda,
                  &beta, C, &ldc)
    else:
        fbp_dgemm(&ta, &tb, &n, &m, &k, &alpha, <const double *>B, &ldb, <const double *>A,
                  &lda, &beta, C, &ldc)
    if serial:
        set_local(previous)
