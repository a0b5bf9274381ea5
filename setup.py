"""Builds fastbp's compiled kernels.

Flags: -O3, no -march=native unless FASTBP_NATIVE=1 is set (then one native copy of
each kernel instead of the load-time AVX2/baseline clones). No OpenMP: the BLAS
threads already occupy the cores, and the element-wise passes are a few per cent
of a step (see the README's performance notes).
"""

import importlib.util
import os
import sys

from setuptools import Extension, setup

KERNEL_MODULES = ["kernels", "engine"]
# Modules that only read csrc/fbp_kernels.h's declarations (its enums), not its code.
HEADER_MODULES = ["codes"]


def source_hash():
    """fastbp/_kernels/source_hash.py, loaded without importing fastbp."""
    path = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fastbp", "_kernels", "source_hash.py"
    )
    spec = importlib.util.spec_from_file_location("fastbp_source_hash", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def depends(name):
    """What a module is rebuilt after: the C headers, and for the engine, which
    carries the fingerprint, every file the fingerprint covers."""
    headers = [
        "csrc/fbp_gemm.h",
        "csrc/fbp_kernels.h",
        "csrc/fbp_kernels_impl.h",
        "csrc/fbp_layers_impl.h",
        "csrc/fbp_math.h",
    ]
    if name != "engine":
        return headers
    root = os.path.dirname(os.path.abspath(__file__))
    return headers + [os.path.relpath(path, root) for path in source_hash().source_files()]


def compile_flags(environ):
    """The C compiler's flags, from the environment's FASTBP_NATIVE."""
    # No errno or FP-exception side effects are relied on, which lets GCC vectorise
    # the selects at activation kinks.
    flags = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
    if environ.get("FASTBP_NATIVE") == "1":
        # The load-time clones (FBP_SIMD_CLONES, csrc/fbp_math.h) would pick their
        # AVX2 copy on any AVX2 CPU and never run the native code: compile one copy.
        flags += ["-march=native", "-DFBP_NO_CLONES"]
    return flags


def extensions():
    import numpy
    from Cython.Build import cythonize

    def sources(name):
        pyx = f"fastbp/_kernels/{name}.pyx"
        return [pyx] if name in HEADER_MODULES else [pyx, "csrc/fbp_kernels.c"]

    compile_args = compile_flags(os.environ)
    extra_compile = os.environ.get("FASTBP_EXTRA_CFLAGS", "").split()
    extra_link = os.environ.get("FASTBP_EXTRA_LDFLAGS", "").split()
    fingerprint = source_hash().fingerprint()
    exts = [
        Extension(
            f"fastbp._kernels.{name}",
            sources=sources(name),
            include_dirs=["csrc", numpy.get_include()],
            depends=depends(name),
            extra_compile_args=compile_args + extra_compile,
            extra_link_args=list(extra_link),
            # Linking libm explicitly binds expf, logf, ... to their current versions;
            # left unversioned they resolve to the older, errno-setting wrappers.
            libraries=["m"] if sys.platform != "win32" else [],
            define_macros=[
                ("FBP_SOURCE_HASH", f'"{fingerprint}"'),
                ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            ],
        )
        for name in HEADER_MODULES + KERNEL_MODULES
    ]
    return cythonize(exts, compiler_directives={"language_level": 3}, quiet=True)


if __name__ == "__main__":  # as pip and setuptools run it; tests import compile_flags
    setup(ext_modules=extensions())
