"""Compiled kernels (Cython over csrc/ and BLAS). Import through fastbp.backends."""
