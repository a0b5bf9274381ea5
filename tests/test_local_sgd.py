"""Local SGD (fit(comm=..., average_every=k)), evaluate(comm=...), and the per-step
path against a one-process oracle that sums two shards' gradients, over real MPI
ranks (mpiexec -n 1, 2, 4).

Each rank count is one mpiexec job (RANK_SCRIPT) that runs every case and writes
what each rank saw; the tests below read it."""

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.paths import IMPORT_ROOT, child_env

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("mpiexec not found (pip install 'fastbp[mpi]')", allow_module_level=True)

RANK_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    import fastbp as fb
    from fastbp.datasets import load_digits, standardize, train_test_split

    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    out = sys.argv[1]
    saved = {}

    def flat(arrays):
        return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])

    def everywhere(name, value):
        # every rank's value, one row per rank, saved by rank 0
        found = comm.gather(value)
        if rank == 0:
            saved[name] = np.array(found)

    rng = np.random.default_rng(1)
    X_all = rng.standard_normal((203, 6))
    y_all = (X_all[:, 0] + X_all[:, 1] * X_all[:, 2] > 0).astype(int)
    w_all = rng.uniform(0.1, 2.0, 203)

    def model(opt, dropout=False, dtype="float64", loss="softmax_cross_entropy", **kw):
        layers = [fb.Dense(16, activation="tanh", input_dim=6), fb.Dense(2)]
        if dropout:
            layers = [fb.Dropout(0.2), layers[0], fb.Dropout(0.3), layers[1]]
        return fb.Sequential(layers, loss=loss, optimizer=opt, dtype=dtype, seed=3, **kw)

    def end_to_end(n, B):
        # the rows of one process's epoch whose j-th batch of size * B rows is
        # every rank's j-th batch of B rows of its shard, rank after rank
        shards = [np.arange(n * r // size, n * (r + 1) // size) for r in range(size)]
        steps = -(-max(len(s) for s in shards) // B)
        return np.concatenate([s[j * B : (j + 1) * B] for j in range(steps) for s in shards])

    # 1. k = 1 with an update linear in the gradient: one process at size * B
    K1 = {
        "k1-momentum": (lambda: fb.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3), 203, False),
        "k1-nesterov": (lambda: fb.SGD(lr=0.05, momentum=0.8, nesterov=True), 203, False),
        "k1-dropout": (lambda: fb.SGD(lr=0.1), 192, True),  # every batch full
    }
    B = 24
    for case, (opt, n, dropout) in K1.items():
        X, y, w = X_all[:n], y_all[:n], w_all[:n]
        dist = model(opt(), dropout)
        hist = dist.fit(X, y, epochs=3, batch_size=B, shuffle=False, sample_weight=w,
                        verbose=0, comm=comm, average_every=1).history
        everywhere(case + "-weights", flat(dist.get_weights()))
        if rank == 0:
            rows = end_to_end(n, B)
            single = model(opt(), dropout)
            one = single.fit(X[rows], y[rows], epochs=3, batch_size=size * B, shuffle=False,
                             sample_weight=w[rows], verbose=0).history
            saved[case + "-single"] = flat(single.get_weights())
            saved[case + "-hist"] = np.array(hist["loss"])
            saved[case + "-hist-single"] = np.array(one["loss"])

    # 2. k > 1: parameters and optimiser state averaged, the same on every rank
    STATE = {
        "state-momentum": (lambda: fb.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3), False,
                           "float64", 4),
        "state-adam": (lambda: fb.Adam(lr=0.01), True, "float32", 3),
        "state-adagrad": (lambda: fb.Adagrad(lr=0.05), False, "float32", 16),
    }
    for case, (opt, dropout, dtype, k) in STATE.items():
        m = model(opt(), dropout, dtype)
        hist = m.fit(X_all, y_all, epochs=3, batch_size=16, sample_weight=w_all,
                     validation_data=(X_all[:50], y_all[:50]), verbose=0, comm=comm,
                     average_every=k).history
        everywhere(case + "-weights", flat(m.get_weights()))
        everywhere(case + "-state", flat(m._plan.optimizer_state()))
        everywhere(case + "-hist", flat([hist[key] for key in sorted(hist)]))

    # 3. one rank: local SGD is the one-process fit, bit for bit
    if size == 1:
        for k in (1, 5):
            args = dict(epochs=3, batch_size=16, sample_weight=w_all, verbose=0)
            m = model(fb.Adam(lr=0.01), True, "float32")
            local = m.fit(X_all, y_all, comm=comm, average_every=k, **args).history
            single = model(fb.Adam(lr=0.01), True, "float32")
            one = single.fit(X_all, y_all, **args).history
            saved[f"one-rank-{k}"] = flat(m.get_weights() + m._plan.optimizer_state())
            saved[f"one-rank-{k}-single"] = flat(
                single.get_weights() + single._plan.optimizer_state()
            )
            saved[f"one-rank-{k}-hist"] = np.array(local["loss"])
            saved[f"one-rank-{k}-hist-single"] = np.array(one["loss"])

    # 3b. a rank with no rows (fewer rows than ranks): it trains nothing and weighs
    # nothing in the averages, and nobody waits
    rows = max(size - 1, 1)
    m = model(fb.Adam(lr=0.05))
    m.build(6)
    start = flat(m.get_weights())
    m.fit(X_all[:rows], y_all[:rows], epochs=2, batch_size=4, verbose=0, comm=comm,
          average_every=2)
    everywhere("few-rows", flat(m.get_weights()))
    everywhere("few-rows-moved", not np.array_equal(start, flat(m.get_weights())))
    if rank == 0:  # on 2 ranks, rank 1 alone has a row: the average is its model
        single = model(fb.Adam(lr=0.05))
        single.fit(X_all[:rows], y_all[:rows], epochs=2, batch_size=4, verbose=0)
        saved["few-rows-single"] = flat(single.get_weights())

    # 3c. X as a read-only np.memmap (each rank reads its shard's rows from the file)
    # trains exactly as the same X in memory
    path = out + ".X.npy"
    if rank == 0:
        np.save(path, X_all.astype(np.float32))
    comm.Barrier()
    X_map = np.load(path, mmap_mode="r")
    found = []
    for data in (X_map, X_all.astype(np.float32)):
        m = model(fb.SGD(lr=0.05, momentum=0.9), True, "float32")
        m.fit(data, y_all, epochs=2, batch_size=16, sample_weight=w_all, verbose=0,
              comm=comm, average_every=3)
        found.append(flat(m.get_weights()))
    everywhere("memmap-same", bool(np.array_equal(*found)))
    del X_map

    # 4. the digits: local SGD learns, and evaluate(comm=) on each rank's own rows
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, seed=0)
    X_train, X_test = standardize(X_train, X_test)

    def digits(**kw):
        return fb.Sequential(
            [fb.Dense(64, activation="relu", input_dim=64), fb.Dense(10)],
            loss="softmax_cross_entropy", optimizer=fb.Adam(lr=1e-2), seed=0,
            dtype="float64", **kw,
        )

    m = digits()
    hist = m.fit(X_train, y_train, epochs=4, batch_size=16, verbose=0, comm=comm,
                 average_every=4).history
    everywhere("digits-accuracy", m.evaluate(X_test, y_test)["accuracy"])
    everywhere("digits-hist", np.array(hist["loss"]))
    if rank == 0:
        single = digits()
        single.fit(X_train, y_train, epochs=4, batch_size=16, verbose=0)
        saved["digits-single-accuracy"] = single.evaluate(X_test, y_test)["accuracy"]
    # uneven parts of the test rows, rank r the r-th (the last rank the most)
    cuts = np.r_[0, np.cumsum(np.arange(1, size + 1))] * len(X_test) // (size * (size + 1) // 2)
    mine = slice(cuts[rank], cuts[rank + 1])
    weights = np.linspace(0.5, 2.0, len(X_test))
    for name, kw, local in (("plain", {}, {}),
                            ("weighted", {"sample_weight": weights},
                             {"sample_weight": weights[mine]})):
        together = m.evaluate(X_test[mine], y_test[mine], comm=comm, **local)
        alone = m.evaluate(X_test, y_test, **kw)
        everywhere(f"evaluate-{name}", [together["loss"], together["accuracy"]])
        everywhere(f"evaluate-{name}-alone", [alone["loss"], alone["accuracy"]])

    # 5. refused settings: on every rank, before anything changes
    m = model(fb.SGD(lr=0.1, momentum=0.9))
    m.build(6)
    before = flat(m.get_weights())
    refusals = []
    # the last: a different average_every on each rank
    for bad in [0, -1, 1.5, True, "2"] + ([2 + rank] if size > 1 else []):
        try:
            m.fit(X_all, y_all, epochs=1, verbose=0, comm=comm, average_every=bad)
            refusals.append("accepted")
        except (ValueError, TypeError) as exc:
            refusals.append(f"{type(exc).__name__}: {exc}")
    everywhere("refusals", np.array(refusals))
    everywhere("refused-unchanged", bool(np.array_equal(before, flat(m.get_weights()))))
    # evaluate with the wrong number of features on the last rank only
    bad_X = X_all[:10, : 5 if rank == size - 1 else 6]
    try:
        m.evaluate(bad_X, y_all[:10], comm=comm)
        said = "accepted"
    except (ValueError, RuntimeError) as exc:
        said = f"{type(exc).__name__}: {exc}"
    everywhere("evaluate-refused", said)

    # NaN in the last rank's rows
    nan_X = X_all[:10].copy()
    if rank == size - 1:
        nan_X[3, 2] = np.nan
    try:
        m.evaluate(nan_X, y_all[:10], comm=comm)
        said = "accepted"
    except (ValueError, RuntimeError) as exc:
        said = f"{type(exc).__name__}: {exc}"
    everywhere("evaluate-nan", said)

    # 6. divergence, decided on the averaged figures: raised on every rank
    m = model(fb.SGD(lr=1e100), loss="mse")  # overflows within a few steps
    m.build(6)
    before = flat(m.get_weights())
    try:
        m.fit(X_all, np.eye(2)[y_all], epochs=3, batch_size=8, verbose=0, comm=comm,
              average_every=2)
        said = "no divergence"
    except FloatingPointError as exc:
        said = str(exc)
    everywhere("diverged", said)
    everywhere("diverged-unchanged", bool(np.array_equal(before, flat(m.get_weights()))))
    everywhere("diverged-epochs", m.epochs_done)

    # 7. the per-step path (average_every=None) against one process summing the
    # shards' gradients, with the NumPy backend's forward/backward on each slice.
    # MPICH's Allreduce of a small buffer sums by recursive doubling: on 2 ranks
    # g0 + g1 (one addition), on 4 (g0 + g1) + (g2 + g3); this probe shows which.
    probe = np.array([[1e16, 1.0, -1e16, 1.0][rank % 4]])
    comm.Allreduce(MPI.IN_PLACE, probe, op=MPI.SUM)
    if rank == 0:
        saved["probe"] = probe

    def reduced(parts):
        # the sum of the ranks' buffers in the order of the Allreduce
        if len(parts) == 4:
            return (parts[0] + parts[1]) + (parts[2] + parts[3])
        return parts[0] + parts[1]

    if size in (2, 4):
        for dtype, dropout in (("float64", False), ("float32", False), ("float64", True)):
            case = f"oracle-{dtype}-{'dropout' if dropout else 'plain'}"
            lr, momentum, l2 = 0.05, 0.9, 1e-3
            make = lambda: model(fb.SGD(lr=lr, momentum=momentum, weight_decay=l2), dropout,
                                 dtype, loss="mse", backend="numpy")
            Y_all = np.eye(2)[y_all]
            dist = make()
            dist.fit(X_all, Y_all, epochs=2, batch_size=B, shuffle=False, sample_weight=w_all,
                     verbose=0, comm=comm)
            if rank == 0:
                t = np.dtype(dtype).type
                oracle = make()
                oracle.build(6)
                Xd, Yd, wd = (a.astype(dtype) for a in (X_all, Y_all, w_all))
                params = oracle.get_weights()
                decayed = [p.decay for p in oracle._plan.params()]
                velocity = [np.zeros_like(p) for p in params]
                at = np.cumsum([0] + [p.size for p in params])
                for epoch in range(2):
                    for start in range(0, len(Xd), B):
                        batch = np.arange(start, min(start + B, len(Xd)))
                        oracle._plan.step_count[0] += 1
                        parts = []
                        for r in range(size):  # rank r's contiguous slice of the batch
                            lo, hi = len(batch) * r // size, len(batch) * (r + 1) // size
                            part = batch[lo:hi]
                            oracle._plan.row_offset[0] = lo
                            oracle.set_weights(params)
                            A = oracle.forward(Xd[part], training=True)
                            dout = (A - Yd[part]) * wd[part][:, None]
                            oracle.backward(dout / t(len(part)))
                            parts.append(flat(oracle.get_gradients()) * (len(part) / len(batch)))
                        oracle._plan.row_offset[0] = 0
                        summed = reduced(parts)
                        for i, p in enumerate(params):
                            g = summed[at[i] : at[i + 1]].reshape(p.shape).astype(dtype)
                            if decayed[i]:
                                g += t(l2) * p
                            velocity[i] *= momentum
                            velocity[i] += g
                            p -= t(lr) * velocity[i]
                saved[case] = flat(dist.get_weights())
                saved[case + "-single"] = flat(params)

    if rank == 0:
        np.savez(out, **saved)
    """
)


def mpirun(ranks, script, *args, timeout=120):
    """The finished `mpiexec -n ranks python -m mpi4py script args...`, run with the
    fastbp under test and one BLAS thread per rank."""
    env = child_env(OMP_NUM_THREADS="1")
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py", str(script), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=IMPORT_ROOT, env=env
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """ranks -> what RANK_SCRIPT saved on that many ranks (one job per rank count)."""
    folder = tmp_path_factory.mktemp("local_sgd")
    script = folder / "ranks.py"
    script.write_text(RANK_SCRIPT)
    found = {}

    def run(ranks):
        if ranks not in found:
            out = folder / f"{ranks}.npz"
            result = mpirun(ranks, script, str(out))
            assert result.returncode == 0, result.stderr
            found[ranks] = dict(np.load(out))
        return found[ranks]

    return run


def identical_rows(rows):
    """Whether every rank's row equals rank 0's, bit for bit."""
    return all(np.array_equal(row, rows[0]) for row in rows)


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("case", ["k1-momentum", "k1-nesterov", "k1-dropout"])
def test_averaging_every_step_is_one_process_at_ranks_times_the_batch(runs, ranks, case):
    """With k = 1 and SGD (momentum and L2 included), averaging the ranks' steps is
    the step of their mean gradient: one process at batch size ranks * B whose
    batches are the ranks' batches end to end (the last ones partial in the
    203-row cases, where the average weighs each rank by its rows)."""
    data = runs(ranks)
    weights, single = data[case + "-weights"], data[case + "-single"]
    assert identical_rows(weights)
    assert np.abs(weights[0] - single).max() <= 1e-12 * np.abs(single).max()
    assert not np.array_equal(weights[0], single)  # two computations, not one
    np.testing.assert_allclose(data[case + "-hist"], data[case + "-hist-single"], rtol=1e-12)


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("case", ["state-momentum", "state-adam", "state-adagrad"])
def test_every_rank_ends_with_the_same_weights_state_and_history(runs, ranks, case):
    data = runs(ranks)
    for part in ("weights", "state", "hist"):
        rows = data[f"{case}-{part}"]
        assert np.isfinite(rows).all()
        assert identical_rows(rows), part
    assert np.abs(data[case + "-state"][0]).max() > 0  # the state did train


@pytest.mark.parametrize("k", [1, 5])
def test_local_sgd_on_one_rank_is_the_one_process_fit(runs, k):
    data = runs(1)
    np.testing.assert_array_equal(data[f"one-rank-{k}"], data[f"one-rank-{k}-single"])
    # the epoch's loss sums the same batch losses, but local SGD adds up each run of
    # k batches first: equal to the rounding of that grouping
    np.testing.assert_allclose(
        data[f"one-rank-{k}-hist"], data[f"one-rank-{k}-hist-single"], rtol=1e-14
    )


@pytest.mark.parametrize("ranks", [2, 4])
def test_local_sgd_learns_the_digits_about_as_well_as_one_process(runs, ranks):
    data = runs(ranks)
    accuracy = data["digits-accuracy"]
    assert identical_rows(accuracy) and identical_rows(data["digits-hist"])
    assert accuracy[0] >= 0.9
    assert accuracy[0] >= data["digits-single-accuracy"] - 0.05
    loss = data["digits-hist"][0]
    assert loss[-1] < loss[0]


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize("weighted", ["plain", "weighted"])
def test_evaluate_over_ranks_is_evaluate_on_all_their_rows(runs, ranks, weighted):
    data = runs(ranks)
    together, alone = data[f"evaluate-{weighted}"], data[f"evaluate-{weighted}-alone"]
    assert identical_rows(together)
    np.testing.assert_allclose(together[0, 0], alone[0, 0], rtol=1e-12)
    assert together[0, 1] == alone[0, 1]  # accuracy: a count over the rows
    assert 0 < together[0, 1] < 1


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_bad_average_every_is_refused_on_every_rank_and_changes_nothing(runs, ranks):
    data = runs(ranks)
    refusals = data["refusals"]
    assert identical_rows(refusals[:, :5])
    assert all(said.startswith("ValueError: average_every must be") for said in refusals[0, :5])
    if ranks > 1:  # a different value on each rank
        assert all("same data and settings" in said for said in refusals[:, 5]), refusals
    assert data["refused-unchanged"].all()


@pytest.mark.parametrize("ranks", [2, 4])
def test_evaluate_refused_on_one_rank_is_refused_on_every_rank(runs, ranks):
    said = list(runs(ranks)["evaluate-refused"])
    assert said[-1].startswith("ValueError: X has 5 features"), said
    assert all(
        s.startswith(f"RuntimeError: evaluate failed on rank {ranks - 1}") for s in said[:-1]
    )


@pytest.mark.parametrize("ranks", [2, 4])
def test_evaluate_with_nan_on_one_rank_is_refused_on_every_rank(runs, ranks):
    said = list(runs(ranks)["evaluate-nan"])
    assert said[-1].startswith("ValueError:") and "NaN" in said[-1], said
    assert all(
        s.startswith(f"RuntimeError: evaluate failed on rank {ranks - 1}") for s in said[:-1]
    )


@pytest.mark.parametrize("ranks", [2, 4])
def test_a_rank_without_rows_neither_trains_nor_weighs(runs, ranks):
    data = runs(ranks)
    assert identical_rows(data["few-rows"]) and np.isfinite(data["few-rows"]).all()
    assert data["few-rows-moved"].all()
    if ranks == 2:
        np.testing.assert_array_equal(data["few-rows"][0], data["few-rows-single"])


@pytest.mark.parametrize("ranks", [1, 2])
def test_local_sgd_from_a_memmap_is_local_sgd_from_memory(runs, ranks):
    assert runs(ranks)["memmap-same"].all()


@pytest.mark.parametrize("ranks", [2, 4])
def test_local_sgd_divergence_is_raised_on_every_rank(runs, ranks):
    data = runs(ranks)
    said = list(data["diverged"])
    assert all("training diverged" in s for s in said), said
    assert len(set(said)) == 1
    assert (data["diverged-epochs"] == 0).all()  # in the first epoch: back to the start
    assert data["diverged-unchanged"].all()


@pytest.mark.parametrize("ranks", [2, 4])
@pytest.mark.parametrize(
    "case", ["oracle-float64-plain", "oracle-float32-plain", "oracle-float64-dropout"]
)
def test_the_ranks_are_bit_identical_to_one_process_summing_their_shards(runs, ranks, case):
    """The per-step path against the same computation written out in one process:
    each rank's slice's gradient by forward/backward (its dropout masks at its
    slice's row offset), scaled by its share of the batch in float64, the ranks'
    buffers added in the Allreduce's order, then L2 and SGD with momentum."""
    data = runs(ranks)
    # 2 ranks: one addition, whose order cannot matter; 4: pairs first, as MPICH
    # sums a small buffer (((1e16 + 1) - 1e16) + 1 would give 1)
    if ranks == 4:
        assert data["probe"][0] == (1e16 + 1.0) + (-1e16 + 1.0)
    np.testing.assert_array_equal(data[case], data[case + "-single"])


def test_average_every_without_comm_is_refused_and_changes_nothing():
    import fastbp as fb

    m = fb.Sequential([fb.Dense(2, input_dim=3)], loss="softmax_cross_entropy", seed=0)
    m.build(3)
    before = m.get_weights()
    X, y = np.ones((8, 3)), np.zeros(8, dtype=int)
    with pytest.raises(
        ValueError, match="average_every is local SGD over MPI ranks and needs comm"
    ):
        m.fit(X, y, average_every=2, verbose=0)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="average_every must be an integer >= 1"):
            m.fit(X, y, average_every=bad, verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert m.epochs_done == 0


def test_evaluate_with_a_comm_that_is_not_a_communicator_is_refused():
    import fastbp as fb

    m = fb.Sequential([fb.Dense(2, input_dim=3)], loss="softmax_cross_entropy", seed=0)
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        m.evaluate(np.ones((4, 3)), np.zeros(4, dtype=int), comm="world")


def test_the_distributed_digits_example_learns_by_local_sgd(tmp_path):
    import fastbp as fb
    from tests.test_distributed import ROOT, _digits_test

    saved = tmp_path / "digits.npz"
    result = mpirun(2, ROOT / "examples" / "distributed_digits.py", str(saved), "4")
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("2 ranks: test accuracy")[1])
    assert accuracy > 0.9
    from fastbp.datasets import load_digits, train_test_split

    n_train = len(train_test_split(*load_digits(), seed=0)[0])
    largest_shard = n_train - n_train // 2
    steps = -(-largest_shard // 64)  # 64 rows a step
    assert f" {steps}/{steps} " in result.stdout  # not the per-step path's 2 * steps
    assert fb.load(saved).evaluate(*_digits_test())["accuracy"] == pytest.approx(
        accuracy, abs=5e-4
    )  # printed to 3 places
