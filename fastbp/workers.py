"""Threads that run parts of one call beside the calling thread (the row blocks of a
small model's predict and evaluate, fastbp/backends/cython_backend.py).

One pool for the process, of one thread fewer than the cores it may run on, made on
first use. A forked child has none of its parent's threads, so it starts without a
pool and makes its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from fastbp import threads

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _forget_pool_in_child() -> None:
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max(1, threads.available_cores() - 1), thread_name_prefix="fastbp-worker"
            )
        return _pool


def share(work: Callable[[], object], n_threads: int) -> None:
    """Run work() on this thread and, at the same time, on up to n_threads - 1 of the
    pool's threads. work must take its pieces from state its copies share (the next
    block from a counter) until none is left: a copy still waiting for a pool thread
    when this thread's copy returns is cancelled, since nothing is left for it (and
    a call never waits for the pool to finish another call's work).

    Returns once every copy that started has finished, also when this thread's copy
    raised; then re-raises the first error, this thread's first. (A Ctrl-C during
    that wait ends it; the started copies then finish on their own, into arrays
    that nothing returned.)"""
    futures = [_executor().submit(work) for _ in range(n_threads - 1)]
    try:
        work()
    finally:
        # cancel() succeeds only on a copy that has not started; wait() would count a
        # cancelled one done only once a pool thread dequeued it, so it is left out
        started = [future for future in futures if not future.cancel()]
        wait(started)  # the copies write into the caller's arrays: none outlives the call
    for future in started:
        future.result()
