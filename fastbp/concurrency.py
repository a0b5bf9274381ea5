"""What lets one model be used from many threads, and be interrupted safely.

- ReadWriteLock guards a model's arrays: inference calls read them together,
  training calls change them alone (writers go first once they wait, so a
  stream of predictions cannot starve training).
- deferred_interrupts() holds Ctrl-C back while a model puts its state back
  together, so an interrupt never leaves half of the weights restored.
"""
import contextlib
import signal
import threading


class ReadWriteLock:
    """Many readers or one writer. The writing thread may also read and write
    again inside its own section (its nested sections pass straight through);
    a reader must not ask to write."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = None        # ident of the thread that writes
        self._depth = 0            # its nesting depth
        self._writers_waiting = 0

    @contextlib.contextmanager
    def reading(self):
        me = threading.get_ident()
        if self._writer == me:     # only this thread can have set it to itself
            yield
            return
        with self._cond:
            while self._writer is not None or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self):
        me = threading.get_ident()
        with self._cond:
            if self._writer != me:
                self._writers_waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cond.wait()
                finally:
                    self._writers_waiting -= 1
                self._writer = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._writer = None
                    self._cond.notify_all()


@contextlib.contextmanager
def deferred_interrupts():
    """Run the body with Ctrl-C (SIGINT) held back; one that arrived meanwhile is
    raised as KeyboardInterrupt when the body ends. Only the main thread receives
    signals in Python, so elsewhere (or when SIGINT is not Python's default
    handler) the body simply runs."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
