"""Which BLAS library runs the compiled engine's GEMMs (the "GEMM provider").

Providers, by name:

- "scipy": SciPy's cython_blas (the OpenBLAS SciPy's wheels carry). Always there.
- "mkl": Intel oneMKL, when the `mkl` wheel is installed (``pip install fastbp[mkl]``).
  Its ``mkl_rt`` library is opened at run time and called through its Fortran
  interface, the one SciPy's BLAS has, so nothing of MKL is needed to build fastbp.

The compiled backend picks one when it loads, from the environment variable
``FASTBP_GEMM``: "scipy", "mkl", or "auto" (the default: "mkl" when it is installed
and the CPU is one of AUTO_MKL_VENDORS, where it measured faster, otherwise
"scipy"). ``use(name)`` switches later, for every model; switch between fits, not
during one (a fit running in another thread would finish its epoch with
a mix of the two libraries' rounding). ``current()`` says which one runs and
``fastbp.show_config()`` prints it with its version and threads.

The NumPy backend is not affected: it calls NumPy's own BLAS.

MKL is loaded with the LP64 interface (32-bit integers, as the engine passes), in
conditional-numerical-reproducibility mode "auto, strict", so that a GEMM gives the
same bits for the same inputs whatever their alignment in memory, and with Intel
OpenMP's idle workers sleeping at once (KMP_BLOCKTIME=0 unless set): a model and its
copy, or a run and its resumption, stay bit-identical as with SciPy's BLAS.

The thread policy: MKL runs every GEMM on the calling thread's full count (it is
set with MKL_Set_Dynamic(0)), and its workers sleep between calls, so a small GEMM
on two threads pays a wake-up that costs more than the product. A GEMM of fewer
than ``serial_flops()`` floating-point operations (2 m n k; ``SERIAL_FLOPS`` per
provider) therefore runs on one thread, through MKL's own calling-thread count
(mkl_set_num_threads_local around the call, in C, without the GIL); larger ones
keep the model's n_threads. The rule depends only on the shape, so a given model
and thread count still gives the same bits run after run. SciPy's OpenBLAS has no
per-thread count (its openblas_set_num_threads is process-wide, and a call that
changed it would race with other threads' calls and limits) but already runs small
GEMMs on one thread by its own size rule, so it is left as it is.

The small path: a GEMM of at most ``small_flops()`` operations (2 m n k; SMALL_FLOPS
by default) does not go to the provider at all but to fastbp's own register-blocked
loops (csrc/fbp_small_gemm_impl.h), on the calling thread: for the tiny layers a
BLAS call spends more in set-up and edge handling than in arithmetic. It applies
to every provider, depends only on the shape (so a model still gives the same bits
run after run, on any thread count), and agrees with BLAS to float rounding, not
bit for bit; ``set_small_flops(0)`` sends every GEMM to the provider.

MKL's just-in-time small-GEMM kernels (mkl_cblas_jit_create_sgemm/dgemm) are not
used: on the AMD EPYC this was measured on, MKL answers MKL_NO_JIT for every shape
(it generates them for Intel CPUs only), and its fallback is the ordinary GEMM.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import math
import os
import platform
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastbp import threads

ENVIRONMENT = "FASTBP_GEMM"
# The CPUs on which "auto" takes MKL when it is installed: where it measured faster
# than SciPy's OpenBLAS on fastbp's GEMMs (an Intel Xeon: 0.69-0.81 of the time). On
# an AMD EPYC it measured slower on 2 threads (1.1-1.8 the time, all but the tiny
# step), so "auto" stays with SciPy there; FASTBP_GEMM=mkl still chooses it.
AUTO_MKL_VENDORS = ("GenuineIntel",)
# the extension modules that call GEMMs, each with its own pair of routine addresses
COMPILED_MODULES = ("fastbp._kernels.engine", "fastbp._kernels.kernels")

# mkl_rt's settings (mkl_service.h / mkl_cbwr.h)
_MKL_INTERFACE_LP64 = 0
_MKL_THREADING_INTEL = 0
_MKL_CBWR_AUTO = 2
_MKL_CBWR_STRICT = 0x10000
_MKL_CBWR_SUCCESS = 0

# The thread policy's default threshold per provider, in floating-point operations
# (2 m n k): GEMMs below it run on one thread. Providers not named have no policy.
# MKL's: on the project's 2-core AMD EPYC (AVX2), one thread was faster for every
# shape up to about 2**25 operations (a 256-cube), the cost of waking the second
# thread being a few tens of µs; see README, Performance.
SERIAL_FLOPS: dict[str, float] = {"mkl": 2.0**25}
# The small path's default threshold (2 m n k, inclusive). On the project's AMD EPYC
# (AVX2) fastbp's loops beat SciPy's OpenBLAS on every GEMM of the tiny config (the
# step went from 30 to 20 µs) and broke even up to about 2**22; the small config's
# 784-wide layer (1.3e7 operations) ran slower in them. See README, Performance.
SMALL_FLOPS = 2.0**22


@dataclass(frozen=True)
class Provider:
    """A loaded GEMM library: name, version text, the file it came from, the
    addresses of its Fortran-convention sgemm and dgemm, and of the function that
    sets the calling thread's count (returning the previous one), 0 when it has none
    (then no thread policy applies)."""

    name: str
    version: str
    library: str
    sgemm: int
    dgemm: int
    set_local_threads: int = 0


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
        int(ctypes.cast(set_local, ctypes.c_void_p).value or 0),
    )


PROVIDERS: dict[str, Callable[[], Provider]] = {"scipy": _scipy, "mkl": _mkl}
CHOICES = ("auto", *PROVIDERS)

_lock = threading.Lock()
_loaded: dict[str, Provider] = {}
_current: Provider | None = None
_serial_flops: dict[str, float] = dict(SERIAL_FLOPS)  # each provider's threshold now
_small_flops = SMALL_FLOPS  # the small path's threshold now


def _load(name: str) -> Provider:
    if name not in _loaded:
        _loaded[name] = PROVIDERS[name]()
    return _loaded[name]


def _route(provider: Provider) -> None:
    """Point every compiled module's GEMMs, and its thread policy, at the provider."""
    for name in COMPILED_MODULES:
        module = importlib.import_module(name)
        module._set_gemm(provider.sgemm, provider.dgemm)
        module._set_thread_policy(provider.set_local_threads, _policy_flops(provider))
        module._set_small_path(_small_flops)
    threads.forget_libraries()  # so that n_threads limits reach the new library too


def _policy_flops(provider: Provider) -> float:
    """The threshold the compiled modules get: 0 (no policy) without a setter."""
    return _serial_flops.get(provider.name, 0.0) if provider.set_local_threads else 0.0


def _resolve(name: str) -> str:
    if name not in CHOICES:
        raise ValueError(
            f"the GEMM provider must be one of {', '.join(map(repr, CHOICES))}, got {name!r}"
        )
    if name != "auto":
        return name
    if cpu_vendor() not in AUTO_MKL_VENDORS:
        return "scipy"
    try:
        _load("mkl")
    except ProviderUnavailable:
        return "scipy"
    return "mkl"


def cpu_vendor() -> str:
    """The CPU's vendor id ("GenuineIntel", "AuthenticAMD", ...), or "" when the
    system does not say."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    text = platform.processor()  # Windows: "Intel64 Family 6 ...", "AMD64 Family 25 ..."
    if text.startswith("Intel") or "GenuineIntel" in text:
        return "GenuineIntel"
    if text.startswith("AMD") or "AuthenticAMD" in text:
        return "AuthenticAMD"
    return "GenuineIntel" if sys.platform == "darwin" and platform.machine() == "x86_64" else ""


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


def serial_flops() -> float:
    """The thread policy's threshold now in force, in floating-point operations
    (2 m n k): GEMMs below it run on one thread. 0 when no policy applies (no
    compiled engine, or a provider without a calling-thread count, like SciPy's)."""
    provider = _current
    return 0.0 if provider is None else _policy_flops(provider)


def set_serial_flops(flops: float) -> float:
    """Run the current provider's GEMMs below `flops` floating-point operations
    (2 m n k) on one thread from now on (0: every GEMM on the model's n_threads),
    and return the previous threshold; each provider keeps its own, and use()
    applies it. Raises TypeError for a non-number, ValueError for a negative or
    non-finite one, and RuntimeError when the provider has no calling-thread
    count to set (SciPy's); nothing changes then. Change it between fits, not
    during one."""
    value = _threshold(flops, "serial threshold", "0 turns the policy off")
    with _lock:
        provider = _current
        if provider is None:
            raise RuntimeError("no GEMM provider is in use (the compiled engine is not built)")
        if not provider.set_local_threads:
            raise RuntimeError(
                f"the {provider.name!r} GEMM provider has no per-thread thread count, so "
                f"no thread policy applies to it; use('mkl') first"
            )
        previous = _policy_flops(provider)
        _serial_flops[provider.name] = value
        _route(provider)
        return previous


def small_flops() -> float:
    """The small path's threshold now in force, in floating-point operations
    (2 m n k): GEMMs of at most this many run in fastbp's own loops, not the
    provider. 0 when the path is off (or there is no compiled engine)."""
    return 0.0 if _current is None else _small_flops


def set_small_flops(flops: float) -> float:
    """Run GEMMs of at most `flops` floating-point operations (2 m n k) in fastbp's
    own loops from now on, for every provider (0: every GEMM in the provider, whose
    results are then its own to the bit), and return the previous threshold.
    Raises TypeError for a non-number and ValueError for a negative or non-finite
    one; nothing changes then. Change it between fits, not during one."""
    global _small_flops
    value = _threshold(flops, "small-path threshold", "0 turns the small path off")
    with _lock:
        provider = _current
        if provider is None:
            raise RuntimeError("no GEMM provider is in use (the compiled engine is not built)")
        previous = _small_flops
        _small_flops = value
        _route(provider)
        return previous


def _threshold(flops: object, what: str, zero: str) -> float:
    """flops as a float, after the checks set_serial_flops and set_small_flops share."""
    if isinstance(flops, bool) or not isinstance(flops, (int, float)):
        raise TypeError(
            f"the {what} must be a number of floating-point operations, got {type(flops).__name__}"
        )
    value = float(flops)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"the {what} must be a finite number >= 0 ({zero}), got {flops!r}")
    return value


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
