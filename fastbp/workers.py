"""Threads that run parts of one call beside the calling thread (the row blocks of a
small model's predict, fastbp/backends/cython_backend.py).

One pool for the process, of one thread fewer than the cores it may run on, made on
first use. A forked child has none of its parent's threads, so it starts without a
pool and makes its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
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


def run(parts: Sequence[Callable[[], object]]) -> None:
    """Call every part: the last on this thread, the others on the pool's threads at
    the same time. Returns when all have finished, waiting for the others even when
    this thread's part raised; then re-raises the first error in the parts' order,
    except that a Ctrl-C on this thread (a BaseException that is no Exception) goes
    first. (A Ctrl-C during the wait ends it; the other parts then finish on their
    own, into arrays that nothing returned.)"""
    if len(parts) == 1:
        parts[0]()
        return
    futures = [_executor().submit(part) for part in parts[:-1]]
    own: BaseException | None = None
    try:
        parts[-1]()
    except BaseException as error:  # raised below, once the other parts are done
        own = error
    wait(futures)  # the parts write into the caller's arrays: none outlives the call
    if own is not None and not isinstance(own, Exception):
        raise own
    for future in futures:
        future.result()
    if own is not None:
        raise own
