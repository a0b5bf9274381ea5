"""threads.limit under concurrency: overlapping limits agree on the smallest
request, and the last one out restores exactly what the first one in saved.

Most tests run against stand-in controllers so that every count is visible and
the original counts are distinctive; interleavings are forced with a turn
schedule, events and barriers, never with sleeps."""

import os
import random
import threading

import numpy as np
import pytest

import fastbp as fb
from fastbp import threads

WAIT = 30  # seconds before a stuck test fails instead of hanging


class FakeController:
    """Stands in for a threadpoolctl controller: a thread count and its history."""

    def __init__(self, num_threads):
        self.num_threads = num_threads
        self.calls = []

    def set_num_threads(self, n):
        self.calls.append(n)
        self.num_threads = n


@pytest.fixture
def fakes(monkeypatch):
    """Two stand-in BLAS controllers with different counts (7 and 5)."""
    controllers = [FakeController(7), FakeController(5)]
    monkeypatch.setattr(threads, "_controllers", controllers)
    yield controllers
    assert threads.active_limits() == []


def counts(controllers):
    return [c.num_threads for c in controllers]


def test_single_limit_sets_and_restores(fakes):
    with threads.limit(2):
        assert counts(fakes) == [2, 2]
    assert counts(fakes) == [7, 5]


def test_none_leaves_blas_alone(fakes):
    with threads.limit(None):
        assert counts(fakes) == [7, 5]
    assert all(c.calls == [] for c in fakes)


def test_nested_limits_in_one_thread(fakes):
    with threads.limit(3):
        assert counts(fakes) == [3, 3]
        with threads.limit(1):
            assert counts(fakes) == [1, 1]
            with threads.limit(2):  # a larger request inside a smaller one
                assert counts(fakes) == [1, 1]
            assert counts(fakes) == [1, 1]
        assert counts(fakes) == [3, 3]
    assert counts(fakes) == [7, 5]


def test_an_exception_in_the_body_restores(fakes):
    with pytest.raises(RuntimeError, match="boom"), threads.limit(1):
        raise RuntimeError("boom")
    assert counts(fakes) == [7, 5]
    with pytest.raises(KeyboardInterrupt), threads.limit(4), threads.limit(2):
        raise KeyboardInterrupt
    assert counts(fakes) == [7, 5]


def test_a_failing_controller_leaves_no_active_limit(fakes):
    def broken(n):
        raise OSError("cannot set threads")

    fakes[1].set_num_threads = broken
    with pytest.raises(OSError, match="cannot set threads"), threads.limit(1):
        pass
    assert threads.active_limits() == []


def test_unchanged_agreement_does_not_touch_blas(fakes):
    with threads.limit(1), threads.limit(3), threads.limit(1):
        pass
    assert fakes[0].calls == [1, 7] and fakes[1].calls == [1, 5]


def test_bad_request_is_refused(fakes):
    with pytest.raises(ValueError, match="n_threads must be an integer >= 1"), threads.limit(0):
        pass
    assert counts(fakes) == [7, 5]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_with_no_active_limit(fakes):
    """A limit held by a parent thread at the fork belongs to no thread of the
    child; the child's own limits must restore normally."""
    entered, release = threading.Event(), threading.Event()

    def hold():
        with threads.limit(2):
            entered.set()
            release.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(WAIT)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        ok = threads.active_limits() == []
        with threads.limit(1):
            ok = ok and counts(fakes) == [1, 1]
        ok = ok and counts(fakes) == [2, 2] and threads.active_limits() == []
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    release.set()
    holder.join(WAIT)
    assert os.waitstatus_to_exitcode(status) == 0
    assert counts(fakes) == [7, 5]


# --- forced interleavings ------------------------------------------------------------


def nested_ops(rng, n_limits):
    """A random well-nested sequence of ("enter", n) / ("leave", None) for one thread."""
    ops, depth, left = [], 0, n_limits
    while left or depth:
        if left and (depth == 0 or rng.random() < 0.5):
            ops.append(("enter", rng.randint(1, 4)))
            depth, left = depth + 1, left - 1
        else:
            ops.append(("leave", None))
            depth -= 1
    return ops


def merged_schedule(rng, per_thread):
    """A random interleaving of the threads' ops: the thread index of each turn."""
    pending = [len(ops) for ops in per_thread]
    schedule = []
    while any(pending):
        t = rng.choice([i for i, left in enumerate(pending) if left])
        schedule.append(t)
        pending[t] -= 1
    return schedule


def run_schedule(controllers, per_thread, schedule):
    """Run each thread's ops in the order `schedule` gives; after every op check
    that BLAS runs at the smallest active request (or the original counts)."""
    original = counts(controllers)
    turn = {"index": 0, "failed": False}
    changed = threading.Condition()
    active, errors = [], []

    def after_op():
        expected = [min(active)] * len(controllers) if active else original
        if counts(controllers) != expected:
            errors.append(
                f"turn {turn['index']}: BLAS at {counts(controllers)}, expected "
                f"{expected} (active {active})"
            )

    def worker(me):
        open_limits = []
        try:
            for op, n in per_thread[me]:
                with changed:
                    mine = changed.wait_for(
                        lambda: turn["failed"] or schedule[turn["index"]] == me, WAIT
                    )
                    if turn["failed"]:
                        return
                    if not mine:
                        raise TimeoutError("the schedule stalled")
                    if op == "enter":
                        cm = threads.limit(n)
                        cm.__enter__()
                        open_limits.append((cm, n))
                        active.append(n)
                    else:
                        cm, n = open_limits.pop()
                        cm.__exit__(None, None, None)
                        active.remove(n)
                    after_op()
                    turn["index"] += 1
                    changed.notify_all()
        except BaseException as exc:  # reported by the main thread
            errors.append(repr(exc))
            with changed:
                turn["failed"] = True  # let nobody wait forever
                changed.notify_all()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(len(per_thread))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(WAIT)
    assert not errors, errors
    assert counts(controllers) == original


@pytest.mark.parametrize("trial", range(40))
def test_random_interleavings_of_four_threads(fakes, trial):
    rng = random.Random(trial)
    per_thread = [nested_ops(rng, rng.randint(1, 3)) for _ in range(4 + trial % 3)]
    run_schedule(fakes, per_thread, merged_schedule(rng, per_thread))


def test_first_in_leaves_first(fakes):
    """The old bug's order: A saves and sets 1, B enters, A leaves, B leaves."""
    per_thread = [[("enter", 1), ("leave", None)], [("enter", 1), ("leave", None)]]
    run_schedule(fakes, per_thread, [0, 1, 0, 1])


def test_the_smallest_request_leaving_raises_the_count(fakes):
    per_thread = [
        [("enter", 3), ("leave", None)],
        [("enter", 1), ("leave", None)],
        [("enter", 2), ("leave", None)],
    ]
    run_schedule(fakes, per_thread, [0, 1, 2, 1, 2, 0])


def test_free_running_threads_with_barriers(fakes):
    """Six threads, many rounds: all inside at once, leaving in whatever order."""
    n_workers, rounds = 6, 25
    inside = threading.Barrier(n_workers, timeout=WAIT)
    errors = []

    def worker(me):
        rng = random.Random(me)
        try:
            for _ in range(rounds):
                n = rng.randint(1, 4)
                with threads.limit(n):
                    inside.wait()
                    if max(counts(fakes)) > n:
                        errors.append(f"BLAS at {counts(fakes)} inside limit({n})")
                    if rng.random() < 0.5:
                        with threads.limit(rng.randint(1, 4)):
                            pass
                    inside.wait()
        except BaseException as exc:
            errors.append(repr(exc))
            inside.abort()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(WAIT)
    assert not errors, errors
    assert counts(fakes) == [7, 5]


# --- the real BLAS ---------------------------------------------------------------------


@pytest.fixture
def real_blas():
    """The real controllers at a count other than 1 (2, when they start at 1), so
    that a limit leaking 1 shows; restored afterwards."""
    controllers = threads._blas_controllers()
    before = counts(controllers)
    for c in controllers:
        if c.num_threads == 1:
            c.set_num_threads(2)
    start = counts(controllers)
    if 1 in start:
        pytest.skip("this BLAS cannot run more than one thread")
    yield controllers, start
    for c, n in zip(controllers, before):
        c.set_num_threads(n)


def test_a_limit_in_another_thread_takes_effect(real_blas):
    """threadpoolctl may let only the first thread that set a count set it again;
    a limit entered from a second thread must still apply and restore."""
    controllers, start = real_blas
    for c, n in zip(controllers, start):
        c.set_num_threads(n)  # the main thread claims control, as a user's call might
    seen = []

    def worker():
        with threads.limit(1):
            seen.append(counts(controllers))
        seen.append(counts(controllers))

    w = threading.Thread(target=worker)
    w.start()
    w.join(WAIT)
    assert seen == [[1] * len(controllers), start]
    assert counts(controllers) == start


def test_two_models_fitted_in_two_threads_leave_blas_as_it_was(real_blas):
    """A enters first and leaves first while B is still inside: B's exit must
    restore the counts A saved, not the 1 it found."""
    controllers, start = real_blas
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((256, 8)), rng.integers(0, 3, 256)
    models = [
        fb.Sequential(
            [fb.Dense(16, activation="relu", input_dim=8), fb.Dense(3)],
            loss="softmax_cross_entropy",
            seed=s,
            n_threads=1,
        )
        for s in range(2)
    ]
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen, errors = [], []

    def hold(model, on_entry, wait_for):
        """Make model's epoch call signal on_entry, then wait for wait_for."""
        epoch = model._backend.epoch

        def held(*args, **kwargs):
            seen.append(counts(controllers))
            on_entry.set()
            if not wait_for.wait(WAIT):
                raise TimeoutError("the other model never arrived")
            return epoch(*args, **kwargs)

        model._backend.epoch = held

    class SignalAfterEpoch(fb.callbacks.Callback):
        def on_epoch_end(self, epoch, logs, model):
            a_out.set()

    hold(models[0], a_in, b_in)
    hold(models[1], b_in, a_out)

    def fit_a():
        models[0].fit(X, y, epochs=1, verbose=0, callbacks=[SignalAfterEpoch()])

    def fit_b():
        a_in.wait(WAIT)
        models[1].fit(X, y, epochs=1, verbose=0)

    def run(fit):
        try:
            fit()
        except BaseException as exc:
            errors.append(repr(exc))
            a_in.set(), b_in.set(), a_out.set()

    workers = [threading.Thread(target=run, args=(f,)) for f in (fit_a, fit_b)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(WAIT)
    assert not errors, errors
    # fit makes several engine calls per epoch: every one ran at 1 thread
    assert len(seen) >= 2 and all(c == [1] * len(controllers) for c in seen)
    assert counts(controllers) == start
    assert threads.active_limits() == []
