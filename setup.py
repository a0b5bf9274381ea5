"""Builds fastbp's compiled kernels.

Flags, per compiler family (COMPILER_FLAGS): gcc and clang get -O3 without errno or
FP-trap side effects and without debug information (-g0, after Python's own -g, so the
shipped .so files carry no DWARF; FASTBP_EXTRA_CFLAGS=-g puts it back); MSVC gets /O2.
No -march=native unless FASTBP_NATIVE=1 is set (gcc/clang only: then one native copy of
each kernel instead of the load-time AVX2/baseline clones). No OpenMP: the BLAS threads
already occupy the cores, and the element-wise passes are a few per cent of a step (see
the README's performance notes). No BLAS is linked: the GEMM calls go through SciPy's
scipy.linalg.cython_blas, which the installed SciPy resolves at import.

Cython runs inside build_ext, so `python -m build --sdist` needs neither Cython nor
NumPy, and the sdist carries the .pyx sources, never generated .c files.
"""

import importlib.util
import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

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
        "csrc/fbp_small_gemm_impl.h",
    ]
    if name != "engine":
        return headers
    root = os.path.dirname(os.path.abspath(__file__))
    return headers + [os.path.relpath(path, root) for path in source_hash().source_files()]


# compiler family -> (base flags, FASTBP_NATIVE=1 flags or None when the family has none,
# libraries to link)
COMPILER_FLAGS = {
    # gcc and clang (Linux, macOS, MinGW). No errno or FP-exception side effects are
    # relied on, which lets them vectorise the selects at activation kinks. The load-time
    # clones (FBP_SIMD_CLONES, csrc/fbp_math.h) would pick their AVX2 copy on any AVX2
    # CPU and never run native code: a native build compiles one copy. Linking libm
    # explicitly binds expf, logf, ... to their current versions; left unversioned they
    # resolve to the older, errno-setting wrappers.
    "gcc": (
        ["-O3", "-fno-math-errno", "-fno-trapping-math", "-g0"],
        ["-march=native", "-DFBP_NO_CLONES"],
        ["m"],
    ),
    # MSVC: C11 for the kernels' C99 parts (hexadecimal float literals, declarations
    # in for loops); no native-CPU switch (its /arch: names a fixed instruction set)
    # and no libm to link.
    "msvc": (["/O2", "/std:c11"], None, []),
}
# distutils' compiler_type -> family in COMPILER_FLAGS
COMPILER_FAMILY = {"unix": "gcc", "mingw32": "gcc", "cygwin": "gcc", "msvc": "msvc"}


def compiler_family(compiler_type):
    """The COMPILER_FLAGS key of a distutils compiler_type ('unix', 'msvc', ...)."""
    try:
        return COMPILER_FAMILY[compiler_type]
    except KeyError:
        raise ValueError(
            f"fastbp's setup.py has no flags for the compiler type {compiler_type!r}; "
            f"it knows {sorted(COMPILER_FAMILY)}: build with one of those, or add its "
            "flags to COMPILER_FLAGS"
        ) from None


def compile_flags(environ, family="gcc"):
    """The C compiler's flags for a family of COMPILER_FLAGS, from the environment's
    FASTBP_NATIVE."""
    base, native, _ = COMPILER_FLAGS[family]
    if environ.get("FASTBP_NATIVE") != "1":
        return list(base)
    if native is None:
        raise ValueError(
            f"FASTBP_NATIVE=1 is for gcc and clang; the {family} compiler has no native-CPU "
            "flag. Unset FASTBP_NATIVE and pass the instruction set you want through "
            "FASTBP_EXTRA_CFLAGS (e.g. FASTBP_EXTRA_CFLAGS=/arch:AVX2)"
        )
    return base + native


def link_libraries(family):
    """The libraries every kernel module links for a family of COMPILER_FLAGS."""
    return list(COMPILER_FLAGS[family][2])


class BuildKernels(build_ext):
    """build_ext that runs Cython first and sets the flags of the compiler it got."""

    def build_extensions(self):
        import numpy
        from Cython.Build import cythonize

        family = compiler_family(self.compiler.compiler_type)
        compile_args = compile_flags(os.environ, family)
        compile_args += os.environ.get("FASTBP_EXTRA_CFLAGS", "").split()
        link_args = os.environ.get("FASTBP_EXTRA_LDFLAGS", "").split()
        for ext in self.extensions:
            ext.include_dirs.append(numpy.get_include())
            ext.extra_compile_args = list(compile_args)
            ext.extra_link_args = list(link_args)
            ext.libraries = link_libraries(family)
        # cythonize returns distutils Extensions; setuptools' build_ext needs its own,
        # so only their sources (.pyx replaced by the generated .c) are taken over.
        generated = cythonize(
            self.extensions, compiler_directives={"language_level": 3}, quiet=True
        )
        sources = {ext.name: ext.sources for ext in generated}
        for ext in self.extensions:
            ext.sources = sources[ext.name]
        super().build_extensions()


def extensions():
    def sources(name):
        pyx = f"fastbp/_kernels/{name}.pyx"
        return [pyx] if name in HEADER_MODULES else [pyx, "csrc/fbp_kernels.c"]

    fingerprint = source_hash().fingerprint()
    return [
        Extension(
            f"fastbp._kernels.{name}",
            sources=sources(name),
            include_dirs=["csrc"],
            depends=depends(name),
            define_macros=[
                ("FBP_SOURCE_HASH", f'"{fingerprint}"'),
                ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
            ],
        )
        for name in HEADER_MODULES + KERNEL_MODULES
    ]


if __name__ == "__main__":  # as pip and setuptools run it; tests import compile_flags
    setup(ext_modules=extensions(), cmdclass={"build_ext": BuildKernels})
