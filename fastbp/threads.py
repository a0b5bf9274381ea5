"""How many threads the BLAS libraries use during a model's calls.

Sequential(n_threads=None) leaves BLAS at its own default (all cores). An integer
limits every loaded BLAS (SciPy's, which the compiled engine calls, and NumPy's,
which the NumPy backend calls) for the duration of each call, then restores it.
"""
import contextlib
import os

from fastbp.validation import positive_int

_controllers = None


def available_cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _blas_controllers():
    global _controllers
    if _controllers is None:
        import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS before looking)
        from threadpoolctl import ThreadpoolController
        _controllers = ThreadpoolController().select(user_api="blas").lib_controllers
    return _controllers


def check(n_threads):
    """None or a positive int."""
    return positive_int("n_threads", n_threads, allow_none=True)


@contextlib.contextmanager
def limit(n_threads):
    """Run the body with every BLAS limited to n_threads (None: leave them alone)."""
    if n_threads is None:
        yield
        return
    controllers = _blas_controllers()
    saved = [c.num_threads for c in controllers]
    for c in controllers:
        c.set_num_threads(n_threads)
    try:
        yield
    finally:
        for c, n in zip(controllers, saved):
            c.set_num_threads(n)
