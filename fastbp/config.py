"""What this installation of fastbp runs on: fastbp.show_config() prints it, and
fastbp.config.describe() returns the same facts as a dict (for bug reports and the
benchmark report)."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy

from fastbp import backends, gemm


def describe() -> dict[str, Any]:
    """{"fastbp", "python", "numpy", "scipy", "platform", "backends",
    "cython_unavailable", "gemm": {name, version, library, small_flops} or None,
    "blas_threads": [{library, api, version, threads}, ...]}"""
    from threadpoolctl import threadpool_info

    import fastbp

    provider = gemm.current()
    return {
        "fastbp": fastbp.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "backends": backends.available(),
        "cython_unavailable": backends.CYTHON_UNAVAILABLE,
        "gemm": None
        if provider is None
        else {
            "name": provider.name,
            "version": provider.version,
            "library": provider.library,
            "small_flops": gemm.small_flops(),
        },
        "blas_threads": [
            {
                "library": info.get("filepath", ""),
                "api": info.get("internal_api", ""),
                "version": info.get("version") or "",
                "threads": info.get("num_threads"),
            }
            for info in threadpool_info()
            if info.get("user_api") in ("blas", "openmp")
        ],
    }


def show_config(print_fn: Callable[[str], object] = print) -> None:
    """Print the versions, the backends, the GEMM provider the compiled engine
    uses (fastbp.gemm) and every loaded BLAS/OpenMP library with its threads."""
    facts = describe()
    lines = [
        f"fastbp {facts['fastbp']} on Python {facts['python']} ({facts['platform']}), "
        f"NumPy {facts['numpy']}, SciPy {facts['scipy']}",
        f"backends: {', '.join(facts['backends'])}",
    ]
    if facts["cython_unavailable"]:
        lines.append(f"cython backend unavailable: {facts['cython_unavailable']}")
    if facts["gemm"] is not None:
        lines.append(f"GEMM provider: {facts['gemm']['name']} ({facts['gemm']['version']})")
        lines.append(f"  from {facts['gemm']['library']}")
        small = facts["gemm"]["small_flops"]
        lines.append(
            f"  GEMMs of at most {small:.3g} flops in fastbp's own loops"
            if small
            else "  every GEMM in the provider (small path off)"
        )
    for library in facts["blas_threads"]:
        version = f" {library['version']}" if library["version"] else ""
        lines.append(
            f"{library['api']}{version}: {library['threads']} threads ({library['library']})"
        )
    for line in lines:
        print_fn(line)
