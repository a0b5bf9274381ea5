"""What lets one model be used from many threads, and be interrupted safely.

- ReadWriteLock guards a model's arrays: inference calls read them together,
  training calls change them alone (writers go first once they wait, so a
  stream of predictions cannot starve training).
- deferred_interrupts() holds Ctrl-C back while a model puts its state back
  together, so an interrupt never leaves half of the weights restored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class ReadWriteLock:
    """Many readers or one writer: `with lock.reading():` / `with lock.writing():`.
    The writing thread may also read and write again inside its own section (its
    nested sections pass straight through); a reader must not ask to write."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None  # ident of the thread that writes
        self._depth = 0  # its nesting depth
        self._writers_waiting = 0
        self._read, self._write = _Section(self, False), _Section(self, True)

    def reading(self) -> _Section:
        return self._read

    def writing(self) -> _Section:
        return self._write

    def acquire(self, write: bool) -> None:
        me = threading.get_ident()
        if not write and self._writer == me:  # a read inside this thread's write
            return  # section (only it sets _writer to itself)
        with self._cond:
            if not write:
                while self._writer is not None or self._writers_waiting:
                    self._cond.wait()
                self._readers += 1
                return
            if self._writer != me:
                self._writers_waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cond.wait()
                finally:
                    self._writers_waiting -= 1
                self._writer = me
            self._depth += 1

    def release(self, write: bool) -> None:
        if not write and self._writer == threading.get_ident():
            return  # the read passed straight through: the write section encloses it
        with self._cond:
            if write:
                self._depth -= 1
                if not self._depth:
                    self._writer = None
                    self._cond.notify_all()
            else:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()


class _Section:
    """The context manager of one kind of section (a class, not a generator:
    inference enters one per call)."""

    def __init__(self, lock: ReadWriteLock, write: bool) -> None:
        self.lock, self.write = lock, write

    def __enter__(self) -> None:
        self.lock.acquire(self.write)

    def __exit__(self, *exc: object) -> None:
        self.lock.release(self.write)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Run the body with Ctrl-C (SIGINT) held back; one that arrived meanwhile is
    raised as KeyboardInterrupt when the body ends. Only the main thread receives
    signals in Python, so elsewhere (or when SIGINT is not Python's default
    handler) the body simply runs."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
