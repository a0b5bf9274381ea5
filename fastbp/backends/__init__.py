"""Backends execute a plan. Both offer the same methods:

forward(X) -> A_last; activations() -> every layer's A from that forward pass;
backward(dout, need_dX) -> dX; step(X, y, loss, optimizer, update, lr) ->
(loss, n_correct); epoch(X, y, order, batch_size, loss, optimizer, lr) -> (sum of
batch_rows * batch_loss, n_correct, n_seen); predict(X) -> outputs;
loss_sum(X, y, loss) -> (summed loss, n_correct).
"""
from fastbp.backends.numpy_backend import NumpyBackend
from fastbp._kernels import source_hash

BUILD_HINT = ("build them from the source tree with `pip install -e .` (or "
              "`python setup.py build_ext --inplace`), or pass backend='numpy'")


def _load_cython():
    """The CythonBackend class, or the reason it cannot be used."""
    try:
        from fastbp._kernels import engine
    except ImportError as exc:
        return None, f"the compiled kernels are not built ({exc}); {BUILD_HINT}"
    current = source_hash.fingerprint()
    if current is not None and current != engine.SOURCE_HASH:
        return None, ("the compiled kernels are older than their sources (built from "
                      f"{engine.SOURCE_HASH}, sources are now {current}); rebuild them: {BUILD_HINT}")
    from fastbp.backends.cython_backend import CythonBackend
    return CythonBackend, None


CythonBackend, CYTHON_UNAVAILABLE = _load_cython()

BACKENDS = {"numpy": NumpyBackend, "cython": CythonBackend}


def get(name):
    """The backend class for a name; a clear error if unknown or not built."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(BACKENDS)}")
    if BACKENDS[name] is None:
        raise RuntimeError(f"backend {name!r} is unavailable: {CYTHON_UNAVAILABLE}")
    return BACKENDS[name]


def available():
    """Names of the backends usable in this installation."""
    return [name for name, cls in BACKENDS.items() if cls is not None]
