"""predict of a model small enough for fastbp's own GEMM loops: blocks of rows, parts
of them on several threads (fastbp/backends/cython_backend.py, fastbp/workers.py)."""

import itertools
import multiprocessing
import threading

import numpy as np
import pytest

import fastbp as fb
from fastbp import gemm, threads, workers
from fastbp.backends import cython_backend

N_ROWS = 5 * cython_backend.PREDICT_PART_ROWS + 37  # several parts, a partial last block


def small_model(dtype, backend="cython", n_threads=None, seed=4):
    """Every layer type, with GEMMs small enough for the small path at 1024 rows."""
    model = fb.Sequential(
        [
            fb.Dense(24, "tanh", input_dim=12),
            fb.PReLU(),
            fb.Dropout(0.3),
            fb.Maxout(8, 2),
            fb.Dense(5, "softmax"),
        ],
        loss="cross_entropy",
        dtype=dtype,
        seed=seed,
        n_threads=n_threads,
        backend=backend,
    )
    model.build(12)
    return model


def rows(n, seed=5, d=12):
    return np.random.default_rng(seed).standard_normal((n, d))


def test_a_small_model_predicts_in_small_path_blocks():
    model = small_model(np.float32)
    assert model._backend._small_block() == cython_backend.PREDICT_MIN_ROWS
    wide = fb.Sequential([fb.Dense(128, "relu", input_dim=784), fb.Dense(10)])
    wide.build(784)
    assert wide._backend._small_block() == 0  # 128 rows x 784 x 128: BLAS's


def test_the_block_follows_the_small_path_threshold():
    model = small_model(np.float64)
    before = gemm.set_small_flops(0.0)
    try:
        assert model._backend._small_block() == 0
        gemm.set_small_flops(2 * 256 * 24 * 16)  # the widest GEMM (Maxout's) at 256 rows
        assert model._backend._small_block() == 256
    finally:
        gemm.set_small_flops(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predictions_do_not_depend_on_the_split_or_the_thread_count(dtype):
    """Each row's bits are its own: predicted with all the others on two threads,
    on one thread, or in slices of any size."""
    X = rows(N_ROWS).astype(dtype)
    together = small_model(dtype).predict_proba(X)
    alone = small_model(dtype, n_threads=1).predict_proba(X)
    np.testing.assert_array_equal(together, alone)
    model = small_model(dtype)
    cuts = [0, 1, 8, 1031, 3100, N_ROWS]
    sliced = np.concatenate([model.predict_proba(X[a:b]) for a, b in itertools.pairwise(cuts)])
    np.testing.assert_array_equal(together, sliced)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_block_predictions_equal_the_numpy_backend(dtype, rtol):
    X = rows(N_ROWS).astype(dtype)
    compiled = small_model(dtype).predict_proba(X)
    twin = small_model(dtype, backend="numpy").predict_proba(X)
    np.testing.assert_allclose(compiled, twin, rtol=rtol, atol=rtol)


class ShareRecorder:
    """Wraps workers.share to record each call's thread count and which threads ran
    the work."""

    def __init__(self, monkeypatch):
        self.counts, self.names = [], set()
        original = workers.share

        def share(work, n_threads):
            self.counts.append(n_threads)

            def noted():
                self.names.add(threading.current_thread().name)
                return work()

            return original(noted, n_threads)

        monkeypatch.setattr(workers, "share", share)


@pytest.mark.skipif(threads.available_cores() < 2, reason="needs two cores to split across")
def test_blocks_run_on_as_many_threads_as_the_call_may_use(monkeypatch):
    recorder = ShareRecorder(monkeypatch)
    X = rows(N_ROWS).astype(np.float32)
    small_model(np.float32).predict(X)
    assert recorder.counts == [min(threads.available_cores(), 6)]
    assert any(name.startswith("fastbp-worker") for name in recorder.names)
    small_model(np.float32, n_threads=1).predict(X)
    small_model(np.float32).predict(X[: cython_backend.PREDICT_PART_ROWS])
    assert recorder.counts[1:] == [1, 1]  # n_threads=1, and too few rows to share


def test_blocks_are_shared_out_by_claim_so_a_late_thread_changes_nothing(monkeypatch):
    """Run the threads' copies of the work one after the other, as if the others
    started only once the first was done: the first claims every block."""
    X = rows(N_ROWS).astype(np.float32)
    expected = small_model(np.float32, n_threads=1).predict_proba(X)
    claimed = []
    original = cython_backend.CythonBackend._predict_blocks

    def counting(self, X, out, block, claims):
        taken = []

        def noted():
            for k in claims:
                taken.append(k)
                yield k

        original(self, X, out, block, noted())
        claimed.append(sum(k * block < len(X) for k in taken))

    def one_after_another(work, n_threads):
        for _ in range(n_threads):
            work()

    monkeypatch.setattr(cython_backend.CythonBackend, "_predict_blocks", counting)
    monkeypatch.setattr(workers, "share", one_after_another)
    monkeypatch.setattr(threads, "budget", lambda: 3)
    np.testing.assert_array_equal(small_model(np.float32).predict_proba(X), expected)
    assert claimed == [-(-N_ROWS // cython_backend.PREDICT_MIN_ROWS), 0, 0]  # all by the first


def on_caller():
    return threading.current_thread() is threading.main_thread()


def test_an_error_on_a_pool_thread_is_raised_once_every_copy_finished():
    finished = []

    def work():
        if not on_caller():
            raise ValueError("a pool thread failed")
        threading.Event().wait(0.05)
        finished.append("caller")

    with pytest.raises(ValueError, match="a pool thread failed"):
        workers.share(work, 2)
    assert finished == ["caller"]


def test_the_calling_threads_error_goes_first():
    def work():
        threading.Event().wait(0.02)
        raise ValueError("caller" if on_caller() else "pool")

    with pytest.raises(ValueError, match="caller"):
        workers.share(work, 2)


def test_a_call_never_waits_for_the_pool_to_finish_another_calls_work():
    """With every pool thread busy (another call's long predict), a copy still in the
    queue when the caller's copy is done is cancelled, not waited for."""
    release = threading.Event()
    pool = workers._executor()
    busy = [pool.submit(release.wait, 60) for _ in range(pool._max_workers)]
    runs = []

    def call():
        workers.share(lambda: runs.append(threading.current_thread().name), 2)

    caller = threading.Thread(target=call, name="caller")
    try:
        caller.start()
        caller.join(20)
        assert not caller.is_alive(), "share waited for the busy pool"
        assert runs == ["caller"]  # the queued copy never ran
    finally:
        release.set()
        caller.join()
    for future in busy:
        future.result()


def test_many_threads_predicting_at_once_get_the_single_threaded_answers():
    model = small_model(np.float32)
    inputs = [rows(N_ROWS - 97 * k, seed=k).astype(np.float32) for k in range(8)]
    expected = [small_model(np.float32, n_threads=1).predict_proba(X) for X in inputs]
    got = [None] * len(inputs)

    def ask(k):
        for _ in range(3):
            got[k] = model.predict_proba(inputs[k])

    askers = [threading.Thread(target=ask, args=(k,)) for k in range(len(inputs))]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join(120)
    assert not any(asker.is_alive() for asker in askers)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def labelled(n, seed=5):
    X = rows(n, seed)
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_evaluate_does_not_depend_on_the_thread_count_and_equals_numpy(dtype, monkeypatch):
    """evaluate's blocks, like predict's, shared by the threads; their sums are added
    in block order, so the loss has the same bits on one thread or two."""
    X, y = labelled(N_ROWS)
    X = X.astype(dtype)
    recorder = ShareRecorder(monkeypatch)
    together = small_model(dtype).evaluate(X, y)
    alone = small_model(dtype, n_threads=1).evaluate(X, y)
    assert together == alone
    w = np.linspace(0.5, 2.0, N_ROWS)
    assert small_model(dtype).evaluate(X, y, sample_weight=w) == small_model(
        dtype, n_threads=1
    ).evaluate(X, y, sample_weight=w)
    if threads.available_cores() > 1:
        assert recorder.counts[0] > 1
    twin = small_model(dtype, backend="numpy").evaluate(X, y)
    for name in twin:
        assert together[name] == pytest.approx(
            twin[name], rel=1e-5 if dtype == np.float32 else 1e-12
        )


def predict_in_child(queue):
    X = rows(N_ROWS).astype(np.float32)
    queue.put(small_model(np.float32).predict_proba(X).sum())


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="fork is POSIX-only"
)
def test_a_forked_child_predicts_with_a_pool_of_its_own():
    """The parent's pool threads do not exist in a forked child: it makes its own
    instead of waiting on them."""
    X = rows(N_ROWS).astype(np.float32)
    expected = small_model(np.float32).predict_proba(X).sum()  # the parent's pool is up
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=predict_in_child, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the child hung or failed"
    assert queue.get(timeout=5) == expected
