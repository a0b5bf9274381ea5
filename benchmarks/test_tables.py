"""Reading a data table: fastbp.tables.read_table, through each of its readers
(pyarrow's, when installed, and np.loadtxt), against pandas.read_csv (when pandas is
installed; it is never a dependency of fastbp) on a generated CSV of numeric feature
columns and a text class column.

    python -m pytest benchmarks/test_tables.py               # small table, timed
    python -m benchmarks.test_tables --rows 1000000         # the report: times, ratio, memory
    python -m benchmarks.test_tables --format %.17g --readers fastbp-pandas,pandas
    BENCHMARK_WITHOUT_PYARROW=1 python -m benchmarks.test_tables   # pyarrow hidden

The report times both readers in one process, in alternating order, and gives
medians and the ratios (docs/design.md §4); the peak memory growth of each is
measured in a fresh process of its own (ru_maxrss never goes down), with its parser
library (pandas, pyarrow) imported first, against the in-memory size of what was read
(X and y).
"""

import argparse
import importlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

if os.environ.get("BENCHMARK_WITHOUT_PYARROW"):  # as if pyarrow were not installed
    sys.modules["pyarrow"] = None

import numpy as np
import pytest

from fastbp import tables
from fastbp.tables import read_table

pytestmark = pytest.mark.benchmark(max_time=0.5)

N_FEATURES = 20
CLASSES = np.array(["cat", "dog", "bird"])


def write_table(path, n_rows, fmt="%.17g", seed=0):
    """A CSV of n_rows: N_FEATURES normal columns (written with fmt) and a 'label'
    column of class names; returns (X, labels) as written."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES))
    labels = CLASSES[rng.integers(0, len(CLASSES), n_rows)]
    with open(path, "w") as f:
        f.write(",".join([f"f{i}" for i in range(N_FEATURES)] + ["label"]) + "\n")
        for start in range(0, n_rows, 100_000):
            block = io.StringIO()
            np.savetxt(block, X[start : start + 100_000], fmt=fmt, delimiter=",")
            rows = block.getvalue().splitlines()
            f.write("".join(f"{r},{c}\n" for r, c in zip(rows, labels[start:], strict=False)))
    return X, labels


def fastbp_reader(name):
    """read_table with FASTBP_CSV_READER=name (then restored)."""

    def read(path):
        before = os.environ.get(tables.READER_VARIABLE)
        os.environ[tables.READER_VARIABLE] = name
        try:
            X, y, _, _ = read_table(path)
        finally:
            if before is None:
                del os.environ[tables.READER_VARIABLE]
            else:
                os.environ[tables.READER_VARIABLE] = before
        return X, y

    return read


def read_pandas(path):
    import pandas as pd

    frame = pd.read_csv(path)
    return frame.iloc[:, :N_FEATURES].to_numpy(np.float64), frame["label"].to_numpy()


READERS = {
    "fastbp-pyarrow": fastbp_reader("pyarrow"),
    "fastbp-pandas": fastbp_reader("pandas"),
    "fastbp-numpy": fastbp_reader("numpy"),
    "pandas": read_pandas,
}
#: the package each reader needs beyond fastbp (imported before the memory is measured)
NEEDS = {"fastbp-pyarrow": "pyarrow", "fastbp-pandas": "pandas", "pandas": "pandas"}


def available(name):
    if name not in NEEDS:
        return True
    try:
        importlib.import_module(NEEDS[name])
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "table.csv"
    return path, *write_table(path, 20_000)


@pytest.mark.parametrize("reader", list(READERS))
def test_read_csv(benchmark, table, reader):
    if reader in NEEDS:
        pytest.importorskip(NEEDS[reader])
    benchmark.group = f"read a {N_FEATURES + 1}-column CSV of 20,000 rows"
    path, X, labels = table
    got_X, got_y = benchmark(READERS[reader], path)
    assert np.array_equal(got_X, X)  # %.17g round-trips exactly
    assert np.array_equal(np.asarray(got_y, dtype=str), labels)


def peak_growth_mb(reader, path):
    """Peak RSS growth (MB) of one read in a fresh process, and the data's size (MB).

    The peak is VmHWM (this process's own high-water mark; ru_maxrss would carry
    the parent's from before exec)."""
    preload = f"import {NEEDS[reader]}\n" if reader in NEEDS else ""
    code = (
        "import json\nfrom benchmarks.test_tables import READERS\n" + preload + "def status(key):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(key): return int(line.split()[1]) / 1024\n"
        f"base = status('VmRSS'); X, y = READERS[{reader!r}]({str(path)!r})\n"
        "print(json.dumps([status('VmHWM') - base, (X.nbytes + y.nbytes) / 2**20]))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    return json.loads(out.stdout)


def report(n_rows, rounds, fmt, readers):
    readers = [name for name in readers if available(name)]
    with tempfile.TemporaryDirectory(
        dir="/dev/shm" if os.path.isdir("/dev/shm") else None
    ) as folder:
        path = os.path.join(folder, "table.csv")
        write_table(path, n_rows, fmt=fmt)
        size = os.path.getsize(path) / 2**20
        print(
            f"{n_rows:,} rows x {N_FEATURES} numbers ({fmt}) + a text column: {size:.0f} MB "
            f"of CSV; load average {os.getloadavg()[0]:.1f}"
        )
        times = {name: [] for name in readers}
        for r in range(rounds):
            for name in readers[r % len(readers) :] + readers[: r % len(readers)]:
                started = time.perf_counter()
                READERS[name](path)
                times[name].append(time.perf_counter() - started)
        for name in readers:
            growth, data = peak_growth_mb(name, path)
            print(
                f"{name:14s} read {statistics.median(times[name]):6.2f} s (median of {rounds}), "
                f"peak RSS growth {growth:5.0f} MB = {growth / data:.2f}x the data ({data:.0f} MB)"
            )
        for name in (
            [name for name in times if name.startswith("fastbp")] if "pandas" in times else []
        ):
            ratios = [f / p for f, p in zip(times[name], times["pandas"], strict=True)]
            print(f"{name} / pandas read time: {statistics.median(ratios):.2f} (median per round)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--format", default="%.6g", help="the numbers' printf format")
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated")
    options = parser.parse_args()
    report(options.rows, options.rounds, options.format, options.readers.split(","))
