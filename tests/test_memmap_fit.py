"""fit on a memory-mapped X holds no copy of it: the finiteness check reads it in
blocks of rows, and batches are gathered from it in place."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbp as fb
from fastbp import validation as check
from tests.paths import IMPORT_ROOT, child_env

# A 200 MB float32 file; its pages are read once before fit (so they are in the
# baseline), and what fit adds to the peak resident size is measured. Modes: "clean"
# and "nan" (a NaN in the last row) fit the array as it comes, "blocks" with
# shuffle="blocks", "stream" as chunks of 10000 rows read from the file.
PROBE = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    import fastbp as fb
    path, n, d, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
    rng = np.random.default_rng(0)
    for k in range(0, n, 8192):
        X[k : k + 8192] = rng.standard_normal((min(8192, n - k), d), dtype=np.float32)
    if mode == "nan":
        X[n - 1, d - 1] = np.nan
    X.flush()
    del X
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, d))
    y = np.zeros(n, dtype=np.float32)
    model = fb.Sequential([fb.Dense(4, activation="tanh", input_dim=d), fb.Dense(1)], seed=0)
    model.fit(np.asarray(X[:64]), y[:64], epochs=1, verbose=0)  # engine and workspaces made
    for k in range(0, n, 8192):
        float(X[k : k + 8192].sum())  # every page of the file resident
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        if mode == "blocks":
            model.fit(X, y, epochs=1, batch_size=1024, shuffle="blocks", verbose=0)
        elif mode == "stream":
            chunks = lambda: ((X[k : k + 10000], y[k : k + 10000]) for k in range(0, n, 10000))
            model.fit(chunks, epochs=2, batch_size=1024, shuffle=False, verbose=0)
        else:
            model.fit(X, y, epochs=1, batch_size=1024, verbose=0)
    except ValueError as exc:
        print("refused:", exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("growth_kib", after - before)
    """
)
N_ROWS, N_FEATURES = 204800, 256  # 200 MiB of float32


def run_probe(tmp_path, mode):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "X.dat"),
            str(N_ROWS),
            str(N_FEATURES),
            mode,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=IMPORT_ROOT,  # the fastbp under test
        env=child_env(),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("mode", ["clean", "blocks", "stream"])
def test_fit_on_a_memmap_adds_under_5_percent_of_its_size(tmp_path, mode):
    out = run_probe(tmp_path, mode)
    assert "refused" not in out, out
    growth_kib = int(out.split("growth_kib")[1])
    file_kib = N_ROWS * N_FEATURES * 4 // 1024
    # 5 % of the file, plus the model's footprint: the epoch's order of the rows (8
    # bytes a row; with blocks, a second array while it is drawn) and batch buffers
    # (1024 rows, twice)
    allowance_kib = 0.05 * file_kib + (N_ROWS * 8 * 2 + 1024 * N_FEATURES * 4 * 2) // 1024
    assert growth_kib < allowance_kib, out


def test_a_nan_in_the_last_block_of_a_memmap_is_still_refused(tmp_path):
    out = run_probe(tmp_path, "nan")
    assert "refused: X contains NaN or infinite values" in out


@pytest.mark.parametrize("where", [0, 5, 99])
def test_all_finite_looks_at_every_block(monkeypatch, where):
    monkeypatch.setattr(check, "FINITE_CHUNK_BYTES", 64)  # blocks of 2 rows of 8 float32
    X = np.ones((100, 8), dtype=np.float32)
    assert check.all_finite(X)
    X[where, 3] = np.inf
    assert not check.all_finite(X)


def test_a_float64_memmap_in_a_float32_model_is_converted(tmp_path):
    X = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="w+", shape=(32, 3))
    X[:] = np.random.default_rng(0).standard_normal((32, 3))
    y = X[:, 0] > 0
    a = fb.Sequential([fb.Dense(2, input_dim=3)], loss="softmax_cross_entropy", seed=0)
    b = fb.Sequential([fb.Dense(2, input_dim=3)], loss="softmax_cross_entropy", seed=0)
    a.fit(X, y, epochs=2, verbose=0)
    b.fit(np.array(X, dtype=np.float32), y, epochs=2, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
