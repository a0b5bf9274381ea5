"""Builds fastbp's compiled kernels.

Flags: -O3, no -march=native unless FASTBP_NATIVE=1 is set; OpenMP is added when
the compiler accepts it (FASTBP_OPENMP=0 turns it off).
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_MODULES = ["kernels", "engine"]


def compiler_accepts(compiler_cmd, flag):
    """True if the C compiler builds and links a tiny program with `flag`."""
    if not compiler_cmd or shutil.which(compiler_cmd[0]) is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        cmd = list(compiler_cmd) + [flag, src, "-o", os.path.join(tmp, "probe")]
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


class BuildExt(build_ext):
    """Adds OpenMP when the compiler supports it."""

    def build_extensions(self):
        use_openmp = os.environ.get("FASTBP_OPENMP", "1") != "0" and sys.platform != "win32"
        if use_openmp and compiler_accepts(getattr(self.compiler, "compiler_so", None), "-fopenmp"):
            for ext in self.extensions:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
        super().build_extensions()


def source_fingerprint():
    """The kernels' source fingerprint, computed by fastbp/_kernels/source_hash.py."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastbp", "_kernels",
                        "source_hash.py")
    spec = importlib.util.spec_from_file_location("fastbp_source_hash", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fingerprint()


def extensions():
    import numpy
    from Cython.Build import cythonize

    # No errno or FP-exception side effects are relied on, which lets GCC vectorise
    # the selects at activation kinks.
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
    if os.environ.get("FASTBP_NATIVE") == "1":
        compile_args.append("-march=native")
    extra_compile = os.environ.get("FASTBP_EXTRA_CFLAGS", "").split()
    extra_link = os.environ.get("FASTBP_EXTRA_LDFLAGS", "").split()
    exts = [
        Extension(
            f"fastbp._kernels.{name}",
            sources=[f"fastbp/_kernels/{name}.pyx", "csrc/fbp_kernels.c"],
            include_dirs=["csrc", numpy.get_include()],
            depends=["csrc/fbp_kernels.h", "csrc/fbp_kernels_impl.h"],
            extra_compile_args=compile_args + extra_compile,
            extra_link_args=list(extra_link),
            define_macros=[("FBP_SOURCE_HASH", f'"{source_fingerprint()}"'),
                           ("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for name in KERNEL_MODULES
    ]
    return cythonize(exts, compiler_directives={"language_level": 3}, quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
