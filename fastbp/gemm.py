"""Which BLAS library runs the compiled engine's GEMMs (the "GEMM provider").

Providers, by name:

- "scipy": SciPy's cython_blas (the OpenBLAS SciPy's wheels carry). Always there.
- "mkl": Intel oneMKL, when the `mkl` wheel is installed (``pip install fastbp[mkl]``).
  Its ``mkl_rt`` library is opened at run time and called through its Fortran
  interface, the one SciPy's BLAS has, so nothing of MKL is needed to build fastbp.

The compiled backend picks one when it loads, from the environment variable
``FASTBP_GEMM``: "scipy", "mkl", or "auto" (the default: "mkl" when it is installed,
otherwise "scipy"). ``use(name)`` switches later, for every model; switch between
fits, not during one (a fit running in another thread would finish its epoch with
a mix of the two libraries' rounding). ``current()`` says which one runs and
``fastbp.show_config()`` prints it with its version and threads.

The NumPy backend is not affected: it calls NumPy's own BLAS.

MKL is loaded with the LP64 interface (32-bit integers, as the engine passes), in
conditional-numerical-reproducibility mode "auto, strict", so that a GEMM gives the
same bits for the same inputs whatever their alignment in memory, and with Intel
OpenMP's idle workers sleeping at once (KMP_BLOCKTIME=0 unless set): a model and its
copy, or a run and its resumption, stay bit-identical as with SciPy's BLAS.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastbp import threads

ENVIRONMENT = "FASTBP_GEMM"
# the extension modules that call GEMMs, each with its own pair of routine addresses
COMPILED_MODULES = ("fastbp._kernels.engine", "fastbp._kernels.kernels")

# mkl_rt's settings (mkl_service.h / mkl_cbwr.h)
_MKL_INTERFACE_LP64 = 0
_MKL_THREADING_INTEL = 0
_MKL_CBWR_AUTO = 2
_MKL_CBWR_STRICT = 0x10000
_MKL_CBWR_SUCCESS = 0


@dataclass(frozen=True)
class Provider:
    """A loaded GEMM library: name, version text, the file it came from, and the
    addresses of its Fortran-convention sgemm and dgemm."""

    name: str
    version: str
    library: str
    sgemm: int
    dgemm: int


class ProviderUnavailable(RuntimeError):
    """The provider asked for cannot be loaded here (the message says why)."""


def _scipy() -> Provider:
    import scipy
    import scipy.linalg.cython_blas as blas

    def address(name: str) -> int:
        capsule = blas.__pyx_capi__[name]
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        return int(get(capsule, get_name(capsule)))

    library = "SciPy's bundled BLAS"
    try:
        config = scipy.show_config(mode="dicts")
        blas_info: dict[str, Any] = config["Build Dependencies"]["blas"]
        library = f"{blas_info.get('name', 'blas')} {blas_info.get('version', '')}".strip()
    except Exception:  # the library's description is only informative
        pass
    return Provider(
        "scipy",
        f"SciPy {scipy.__version__}: {library}",
        blas.__file__,
        address("sgemm"),
        address("dgemm"),
    )


def _mkl_rt_paths() -> list[Path]:
    """Where the `mkl` wheel put mkl_rt (its file list, then the usual folders)."""
    names = (
        "libmkl_rt.so.3",
        "libmkl_rt.so.2",
        "libmkl_rt.so",
        "libmkl_rt.2.dylib",
        "libmkl_rt.dylib",
        "mkl_rt.3.dll",
        "mkl_rt.2.dll",
        "mkl_rt.dll",
    )
    found: list[Path] = []
    try:
        distribution = importlib.metadata.distribution("mkl")
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    if distribution is not None:
        for file in distribution.files or ():
            if file.name in names:
                found.append(Path(str(distribution.locate_file(file))).resolve())
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        for folder in ("lib", "Library/bin"):
            found += [Path(prefix, folder, name) for name in names]
    return [path for path in dict.fromkeys(found) if path.is_file()]


_libraries: list[ctypes.CDLL] = []  # loaded libraries stay loaded (their addresses are in use)


def _mkl() -> Provider:
    paths = _mkl_rt_paths()
    if not paths:
        raise ProviderUnavailable(
            "MKL is not installed (no mkl_rt library found); install it with "
            "`pip install fastbp[mkl]` (or `pip install mkl`)"
        )
    # Intel OpenMP's idle workers spin for 200 ms after each call by default, taking
    # the cores from the OpenBLAS threads in the process (SciPy's and NumPy's); with
    # them spinning, the suite's bit-identical resumption checks failed now and then.
    # Sleeping at once costs small threaded GEMMs a wake-up per call (README,
    # Performance). Read when Intel OpenMP starts, so set before mkl_rt loads; a
    # value the user set stays.
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    try:
        lib = ctypes.CDLL(str(paths[0]))
    except OSError as exc:
        raise ProviderUnavailable(f"MKL's {paths[0]} does not load: {exc}") from exc
    if lib.MKL_Set_Interface_Layer(_MKL_INTERFACE_LP64) != _MKL_INTERFACE_LP64:
        raise ProviderUnavailable(
            "MKL is already set to its ILP64 interface in this process (64-bit "
            "integers; see MKL_INTERFACE_LAYER), and fastbp passes 32-bit ones"
        )
    lib.MKL_Set_Threading_Layer(_MKL_THREADING_INTEL)
    # The same thread count for the same shapes, whatever the load: results then
    # depend only on the inputs (with the reproducibility mode below).
    lib.MKL_Set_Dynamic(0)
    # Fails (harmlessly) when another library in the process already called MKL.
    lib.MKL_CBWR_Set(_MKL_CBWR_AUTO | _MKL_CBWR_STRICT)
    text = ctypes.create_string_buffer(256)
    lib.MKL_Get_Version_String(text, len(text))
    _libraries.append(lib)
    # MKL_Set_Num_Threads does not reach Python threads already running (MKL keeps
    # their count per thread under OpenMP), so n_threads limits also set the
    # calling thread's own count; 0 gives it back to the process-wide one.
    set_local = lib.MKL_Set_Num_Threads_Local

    def limit_calling_thread(n_threads: int) -> Callable[[], object]:
        previous = set_local(n_threads)
        return lambda: set_local(previous)

    threads.add_thread_local_limit(limit_calling_thread)
    return Provider(
        "mkl",
        text.value.decode(errors="replace").strip(),
        str(paths[0]),
        int(ctypes.cast(lib.sgemm, ctypes.c_void_p).value or 0),
        int(ctypes.cast(lib.dgemm, ctypes.c_void_p).value or 0),
    )


PROVIDERS: dict[str, Callable[[], Provider]] = {"scipy": _scipy, "mkl": _mkl}
CHOICES = ("auto", *PROVIDERS)

_lock = threading.Lock()
_loaded: dict[str, Provider] = {}
_current: Provider | None = None


def _load(name: str) -> Provider:
    if name not in _loaded:
        _loaded[name] = PROVIDERS[name]()
    return _loaded[name]


def _route(provider: Provider) -> None:
    """Point every compiled module's GEMMs at the provider."""
    for name in COMPILED_MODULES:
        importlib.import_module(name)._set_gemm(provider.sgemm, provider.dgemm)
    threads.forget_libraries()  # so that n_threads limits reach the new library too


def _resolve(name: str) -> str:
    if name not in CHOICES:
        raise ValueError(
            f"the GEMM provider must be one of {', '.join(map(repr, CHOICES))}, got {name!r}"
        )
    if name != "auto":
        return name
    try:
        _load("mkl")
    except ProviderUnavailable:
        return "scipy"
    return "mkl"


def use(name: str) -> Provider:
    """Route the compiled engine's GEMMs to provider `name` ("scipy", "mkl" or
    "auto") and return it. Raises ValueError for an unknown name and
    ProviderUnavailable (a RuntimeError) when the provider cannot be loaded,
    leaving the current one in place."""
    global _current
    if not isinstance(name, str):
        raise TypeError(f"the GEMM provider must be a name (str), got {type(name).__name__}")
    with _lock:
        provider = _load(_resolve(name))
        _route(provider)
        _current = provider
        return provider


def use_environment() -> Provider:
    """The provider FASTBP_GEMM names (default "auto"), put in use; the compiled
    backend calls this once when it loads."""
    name = os.environ.get(ENVIRONMENT, "auto").strip().lower() or "auto"
    if name not in CHOICES:
        raise ProviderUnavailable(
            f"{ENVIRONMENT}={os.environ[ENVIRONMENT]!r} names no GEMM provider; use one "
            f"of {', '.join(CHOICES)}, or unset it"
        )
    try:
        return use(name)
    except ProviderUnavailable as exc:
        raise ProviderUnavailable(f"{ENVIRONMENT}={name}: {exc}") from None


def current() -> Provider | None:
    """The provider the compiled engine uses (None when it is not built)."""
    return _current


def available() -> list[str]:
    """Names of the providers that load here."""
    names = []
    for name in PROVIDERS:
        try:
            with _lock:
                _load(name)
        except ProviderUnavailable:
            continue
        names.append(name)
    return names
