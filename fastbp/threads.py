"""How many threads the BLAS libraries use during a model's calls.

Sequential(n_threads=None) leaves BLAS at its own default (all cores). An integer
limits every loaded BLAS (SciPy's, which the compiled engine calls, and NumPy's,
which the NumPy backend calls) for the duration of each call, then restores it.

BLAS thread counts are process-wide, so limits that overlap (models called from
several threads, or a limit nested in another) share one setting. The rule:

- the first limit to start saves every BLAS library's thread count;
- while limits are active, every BLAS runs with the smallest count any of them
  asked for (a request is an upper bound: a call may get fewer threads than it
  asked for, never more), re-evaluated as limits start and end;
- the last limit to end restores exactly the counts the first one saved.

A module lock serialises these changes; the BLAS calls themselves run unlocked.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from fastbp.validation import positive_int

_controllers: list[Any] | None = None  # threadpoolctl's LibController objects
_lock = threading.Lock()
_active: list[int] = []  # the requested counts of the limits now running, one entry per limit
_saved: list[int] | None = None  # each controller's count before the first of them started
_applied: int | None = None  # the count the active limits agreed on, as last set
_stale = False  # a BLAS library was loaded since _controllers was listed


def _forget_limits_in_child() -> None:
    """A forked child has none of the parent's threads, so none of their limits:
    start it with no active limit and a fresh lock (the parent's may have been
    held at the fork). Its BLAS keeps whatever count it was forked with."""
    global _lock, _active, _saved, _applied
    _lock, _active, _saved, _applied = threading.Lock(), [], None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_limits_in_child)


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Libraries whose thread count is per calling thread (MKL's, under OpenMP): for each,
# a function that sets the calling thread's count and returns what undoes it.
_thread_local_limits: list[Callable[[int], Callable[[], object]]] = []


def add_thread_local_limit(set_count: Callable[[int], Callable[[], object]]) -> None:
    """Register a library whose thread count a process-wide setting does not reach
    in threads that already run: limit() also calls set_count(n) in the calling
    thread, and the function it returns when the limit ends."""
    _thread_local_limits.append(set_count)


def forget_libraries() -> None:
    """List the loaded BLAS libraries again when the next limit starts (fastbp.gemm
    calls this after loading one); limits running now keep the list they began with."""
    global _controllers, _stale
    with _lock:
        if _active:
            _stale = True
        else:
            _controllers = None


def _blas_controllers() -> list[Any]:
    """threadpoolctl's controllers for every loaded BLAS (found once)."""
    global _controllers
    if _controllers is None:
        import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS before looking)
        from threadpoolctl import ThreadpoolController

        _controllers = ThreadpoolController().select(user_api="blas").lib_controllers
    return _controllers


@overload
def check(n_threads: None) -> None: ...
@overload
def check(n_threads: int) -> int: ...
def check(n_threads: int | None) -> int | None:
    """None or a positive int."""
    return positive_int("n_threads", n_threads, allow_none=True)


def _release_control() -> None:
    """Let the calling thread change OpenBLAS's count.

    threadpoolctl (3.8 here) lets only one "controlling" Python thread set a
    pthreads OpenBLAS's thread count and silently ignores the others, so a limit
    entered or left from a second thread would change nothing. This module's
    lock already serialises every change, so it clears that claim around each.
    """
    for kind in {type(c) for c in _blas_controllers()}:
        clear = getattr(kind, "clear_controlling_thread", None)
        if clear is not None:
            clear(force=True)


def _set_all(counts: Sequence[int]) -> None:
    """Set controller i to counts[i]. Called with the lock held."""
    _release_control()
    try:
        for controller, n in zip(_blas_controllers(), counts):
            controller.set_num_threads(n)
    finally:
        _release_control()


def _agree() -> None:
    """Apply the smallest active request, or restore the saved counts when no
    limit is left. Called with the lock held."""
    global _saved, _applied
    if not _active:
        saved, _saved, _applied = _saved, None, None
        assert saved is not None  # the first limit saved them
        _set_all(saved)
        return
    target = min(_active)
    if target != _applied:  # only touch BLAS when the agreed count changes
        _set_all([target] * len(_blas_controllers()))
        _applied = target


def _enter(n_threads: int) -> None:
    """Register a limit of n_threads (saving the counts if it is the first)."""
    global _saved, _applied, _controllers, _stale
    with _lock:
        if not _active:
            if _stale:
                _controllers, _stale = None, False
            _saved = [c.num_threads for c in _blas_controllers()]
        _active.append(n_threads)
        try:
            _agree()
        except BaseException:  # a BLAS refused: undo, re-applying what is left
            _active.remove(n_threads)
            _applied = None
            _agree()
            raise


def _leave(n_threads: int) -> None:
    """Unregister a limit of n_threads (restoring the counts if it is the last)."""
    with _lock:
        _active.remove(n_threads)
        _agree()


@contextlib.contextmanager
def limit(n_threads: int | None) -> Iterator[None]:
    """Run the body with every BLAS limited to at most n_threads (None: leave them
    alone); safe to use from several threads at once and nested (see the module
    docstring for how overlapping limits agree). The counts are restored however
    the body ends."""
    if n_threads is None:
        yield
        return
    n_threads = check(n_threads)
    _enter(n_threads)
    undo: list[Callable[[], object]] = []
    try:
        for set_count in _thread_local_limits:
            undo.append(set_count(n_threads))
        yield
    finally:
        for restore in reversed(undo):
            restore()
        _leave(n_threads)


def budget() -> int:
    """The threads a call may use now: the smallest limit running (a request is an
    upper bound, module docstring), and never more than the cores this process may
    run on."""
    with _lock:
        cores = available_cores()
        return min(min(_active), cores) if _active else cores


def active_limits() -> list[int]:
    """The requests of the limits running now (for tests and diagnostics)."""
    with _lock:
        return list(_active)
