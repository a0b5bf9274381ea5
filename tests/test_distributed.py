"""fit(..., comm=...) over real MPI ranks (mpiexec -n 1, 2, 4): the same weights as
one process at the same global batch, collective divergence, and an error on one
rank ending the job instead of hanging it."""

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.paths import IMPORT_ROOT, child_env

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("mpiexec not found (pip install 'fastbp[mpi]')", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]

# Every rank trains `distributed` with comm; rank 0 also trains `single` without,
# and writes both models' weights and histories.
RANK_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    import fastbp as fb

    case, out = sys.argv[1], sys.argv[2]
    comm = MPI.COMM_WORLD
    dtype = "float64" if "f64" in case else "float32"
    opt = {
        "sgd": lambda: fb.SGD(lr=0.1),
        "momentum": lambda: fb.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3, clipnorm=1.0),
        "adam": lambda: fb.Adam(lr=0.01, weight_decay=1e-3),
        "adamw": lambda: fb.AdamW(lr=0.01, weight_decay=1e-2),
        "diverge": lambda: fb.SGD(lr=1e6),
        "boom": lambda: fb.SGD(lr=0.1),
    }[case.removeprefix("resume-").split("-")[0]]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((203, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    w = rng.uniform(0.1, 2.0, 203) if "weighted" in case else None

    loss = "softmax_cross_entropy"
    if case.startswith("diverge"):  # mse's gradient grows with the weights
        loss, y = "mse", np.eye(2)[y]

    def model():
        layers = [fb.Dense(16, activation="tanh", input_dim=6), fb.Dense(2)]
        if "dropout" in case:  # on the inputs (6 wide) and on the hidden layer (16)
            layers = [fb.Dropout(0.2), layers[0], fb.Dropout(0.3), layers[1]]
        return fb.Sequential(layers, loss=loss, optimizer=opt(), dtype=dtype, seed=3)

    class Boom(fb.callbacks.Callback):
        def on_epoch_end(self, epoch, logs, model):
            if comm.rank == comm.size - 1:
                raise RuntimeError("a user error on the last rank")

    fit = dict(epochs=4, batch_size=24, verbose=0, sample_weight=w,
               validation_data=(X[:50], y[:50]))
    if "blocks" in case:  # one block order, drawn alike on every rank
        fit.update(shuffle="blocks", shuffle_block=10)
    if case.startswith("resume"):  # 2 epochs on this many ranks, saved, 2 more on 1 rank
        first = model()
        first.fit(X, y, comm=comm, **{**fit, "epochs": 2})
        first.save(out + ".model.npz", comm=comm)
        if comm.rank == 0:
            resumed = fb.load(out + ".model.npz")
            resumed.fit(X, y, comm=MPI.COMM_SELF, **{**fit, "epochs": 2})
            single = model()
            single.fit(X, y, **fit)
            saved = {f"dist{k}": w for k, w in enumerate(resumed.get_weights())}
            saved.update({f"single{k}": w for k, w in enumerate(single.get_weights())})
            np.savez(out, **saved)
        sys.exit(0)
    if case.startswith("boom"):
        model().fit(X, y, comm=comm, callbacks=[Boom()], **fit)
    try:
        distributed = model()
        hist = distributed.fit(X, y, comm=comm, **fit).history
        error = ""
    except FloatingPointError as exc:
        error = str(exc)
    errors = comm.gather(error)
    if comm.rank == 0:
        result = {"errors": np.array(errors)}
        if not error:
            single = model()
            one = single.fit(X, y, **fit).history
            for k, (a, b) in enumerate(zip(distributed.get_weights(), single.get_weights())):
                result[f"dist{k}"], result[f"single{k}"] = a, b
            for key in one:
                result["hist_dist_" + key] = hist[key]
                result["hist_single_" + key] = one[key]
        np.savez(out, **result)
    """
)


def mpirun(ranks, script, *args, timeout=60):
    """The finished `mpiexec -n ranks python -m mpi4py script args...` (stdout, stderr
    as text), run with the fastbp under test and one BLAS thread per rank."""
    env = child_env(OMP_NUM_THREADS="1")
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "mpi4py", str(script), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=IMPORT_ROOT, env=env
    )


def run_ranks(tmp_path, ranks, case, timeout=60):
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    out = tmp_path / f"{case}-{ranks}.npz"
    return mpirun(ranks, script, case, str(out), timeout=timeout), out


def results(tmp_path, ranks, case):
    result, out = run_ranks(tmp_path, ranks, case)
    assert result.returncode == 0, result.stderr
    return dict(np.load(out))


def pairs(data):
    k = 0
    while f"dist{k}" in data:
        yield data[f"dist{k}"], data[f"single{k}"]
        k += 1


@pytest.mark.parametrize("case", ["sgd-f64", "adam-weighted-f32"])
def test_one_rank_is_bit_identical_to_no_comm(tmp_path, case):
    data = results(tmp_path, 1, case)
    for a, b in pairs(data):
        np.testing.assert_array_equal(a, b)
    # the history too: an epoch's loss is summed batch after batch, however the
    # epoch was split into backend calls
    np.testing.assert_array_equal(data["hist_dist_loss"], data["hist_single_loss"])


@pytest.mark.parametrize(
    ("ranks", "case"),
    [
        (2, "sgd-f64"),
        (2, "momentum-weighted-f64"),
        (2, "adam-weighted-f64"),
        (4, "adamw-weighted-f64"),
        (4, "momentum-f64"),
        (2, "adam-weighted-f32"),
        (4, "sgd-weighted-f32"),
        (2, "sgd-dropout-f64"),
        (2, "adam-blocks-weighted-f64"),
        (4, "sgd-blocks-dropout-f32"),
        (4, "adam-dropout-weighted-f64"),
        (2, "adam-dropout-weighted-f32"),
        (4, "sgd-dropout-weighted-f32"),
    ],
)
def test_several_ranks_match_one_process_at_the_same_global_batch(tmp_path, ranks, case):
    data = results(tmp_path, ranks, case)
    rtol = 1e-12 if "f64" in case else 1e-5
    dist, single = (np.concatenate([w.ravel() for w in ws]) for ws in zip(*pairs(data)))
    # the largest difference, relative to the largest weight
    assert np.abs(dist - single).max() <= rtol * np.abs(single).max()
    assert not np.array_equal(dist, single) or "sgd" in case  # the reduction did run
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            data["hist_dist_" + key], data["hist_single_" + key], rtol=rtol * 10
        )


def test_a_checkpoint_saved_on_four_ranks_resumes_on_one(tmp_path):
    data = results(tmp_path, 4, "resume-momentum-weighted-f64")
    dist, single = (np.concatenate([w.ravel() for w in ws]) for ws in zip(*pairs(data)))
    assert np.abs(dist - single).max() <= 1e-12 * np.abs(single).max()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".model.npz")) == [
        "resume-momentum-weighted-f64-4.npz.model.npz"
    ]


def test_divergence_is_raised_on_every_rank(tmp_path):
    data = results(tmp_path, 2, "diverge-f64")
    errors = list(data["errors"])
    assert all("training diverged" in e for e in errors), errors
    assert errors[0] == errors[1]


def test_ranks_given_different_data_are_refused_on_every_rank_without_hanging(tmp_path):
    script = tmp_path / "unequal.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from mpi4py import MPI
            import fastbp as fb
            comm = MPI.COMM_WORLD
            m = fb.Sequential([fb.Dense(1, input_dim=3)], seed=0)
            before = m.get_weights()
            rows = 8 + 2 * comm.rank  # rank 1 has more rows: it would take more steps
            try:
                m.fit(np.ones((rows, 3)), np.ones(rows), comm=comm, batch_size=4, verbose=0)
            except ValueError as exc:
                same = all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
                found = comm.gather((same, str(exc)))
                if comm.rank == 0:
                    print(repr(found))
            """
        )
    )
    result = mpirun(2, script, timeout=30)
    assert result.returncode == 0, result.stderr
    found = ast.literal_eval(result.stdout.strip())  # (weights unchanged, message) per rank
    assert len(found) == 2, found
    assert all(same and "same data and settings" in message for same, message in found), found


def test_an_error_on_one_rank_ends_the_job(tmp_path):
    result, out = run_ranks(tmp_path, 2, "boom-f64", timeout=30)
    assert result.returncode != 0
    assert "a user error on the last rank" in result.stderr
    assert not out.exists()


def test_the_row_offset_is_back_to_zero_after_a_fit_on_every_rank(tmp_path):
    """Each rank trains its slice at the slice's row offset (rank 1's is not 0); after
    the fit, and after a fit that diverged, every rank's is 0 again."""
    script = tmp_path / "offset.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from mpi4py import MPI
            import fastbp as fb
            comm = MPI.COMM_WORLD
            X, y = np.ones((8, 3)), np.ones((8, 1))

            def model(lr):
                layers = [fb.Dense(4, input_dim=3), fb.Dropout(0.5), fb.Dense(1)]
                return fb.Sequential(layers, optimizer=fb.SGD(lr=lr), seed=0)

            m = model(0.1)
            seen = []
            step = m._backend.step

            def recording_step(*args):
                seen.append(int(m._plan.row_offset[0]))
                return step(*args)

            m._backend.step = recording_step
            m.fit(X, y, comm=comm, epochs=2, batch_size=8, verbose=0)
            after = int(m._plan.row_offset[0])
            m = model(1e12)
            try:
                m.fit(X, y, comm=comm, epochs=20, batch_size=8, verbose=0)
            except FloatingPointError:
                diverged = int(m._plan.row_offset[0])
            found = comm.gather((seen, after, diverged))
            if comm.rank == 0:
                print(found)
            """
        )
    )
    result = mpirun(2, script, timeout=30)
    assert result.returncode == 0, result.stderr
    # per rank: the offsets its two steps saw, then its offset after each fit
    assert result.stdout.strip() == "[([0, 0], 0, 0), ([4, 4], 0, 0)]", result.stdout


def test_a_comm_that_is_not_a_communicator_is_refused():
    import fastbp as fb

    m = fb.Sequential([fb.Dense(1, input_dim=2)], seed=0)
    before = m.get_weights()
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        m.fit(np.ones((4, 2)), np.ones(4), comm="world", verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_with_a_comm_that_is_not_a_communicator_writes_nothing(tmp_path):
    import fastbp as fb

    m = fb.Sequential([fb.Dense(1, input_dim=2)], seed=0)
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        m.save(tmp_path / "m.npz", comm="world")
    assert not (tmp_path / "m.npz").exists()


def test_the_distributed_digits_example_learns_on_two_ranks(tmp_path):
    saved = tmp_path / "digits.npz"
    example = ROOT / "examples" / "distributed_digits.py"
    result = mpirun(2, example, str(saved))
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("2 ranks: test accuracy")[1])
    assert accuracy > 0.9
    import fastbp as fb

    assert fb.load(saved).evaluate(*_digits_test())["accuracy"] == pytest.approx(
        accuracy, abs=5e-4
    )  # printed to 3 places


def _digits_test():
    from fastbp.datasets import load_digits, standardize, train_test_split

    X, y = load_digits()
    X_train, X_test, _, y_test = train_test_split(X, y, seed=0)
    return standardize(X_train, X_test)[1], y_test
