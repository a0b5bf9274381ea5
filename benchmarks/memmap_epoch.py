"""Seconds per epoch of fit on a cold np.memmap: shuffle=True against shuffle="blocks",
shuffle=False and a stream of chunks read from the same file in order.

Run:  python -m benchmarks.memmap_epoch [--gib 1.5] [--rounds 3] [--path /tmp/x.dat]

Before every epoch the file's pages are dropped from the page cache
(os.posix_fadvise(..., POSIX_FADV_DONTNEED), the pages unmapped first), once fit's
NaN check has read it and before its batches run, so each epoch reads the file
from the disk as an epoch over a file larger than memory would.
The contenders run interleaved, in an order rotated between rounds, in one process;
the figures are medians over the rounds and ratios to shuffle="blocks". The model is
small (one hidden layer of 16) so that reading dominates, as it does for a file
that does not fit in memory. The file is written once and deleted at the end.
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import fastbp as fb

N_FEATURES, BATCH, CHUNK_ROWS = 256, 256, 65536


def write_file(path: Path, n_rows: int) -> None:
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n_rows, N_FEATURES))
    rng = np.random.default_rng(0)
    for k in range(0, n_rows, CHUNK_ROWS):
        X[k : k + CHUNK_ROWS] = rng.standard_normal(
            (min(CHUNK_ROWS, n_rows - k), N_FEATURES), dtype=np.float32
        )
    X.flush()
    del X
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_from_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class DropBeforeEpoch(fb.callbacks.Callback):
    """Drops the file from the page cache as the epoch begins, after fit's checks
    (which read X once, in order, to find NaN) and before its batches: the pages
    are first unmapped from this process (a mapped page stays cached)."""

    def __init__(self, X: np.memmap, path: Path) -> None:
        super().__init__()
        self.X, self.path = X, path

    def on_epoch_begin(self, epoch: int, model: Any) -> None:
        mapping = getattr(self.X, "_mmap", None)
        if mapping is not None:
            mapping.madvise(mmap.MADV_DONTNEED)
        drop_from_cache(self.path)


def new_model() -> fb.Sequential:
    return fb.Sequential(
        [fb.Dense(16, activation="relu", input_dim=N_FEATURES), fb.Dense(1)],
        loss="mse",
        optimizer=fb.SGD(lr=1e-3),
        seed=0,
    )


def _stream(X: Any, y: Any) -> Any:
    return ((X[k : k + CHUNK_ROWS], y[k : k + CHUNK_ROWS]) for k in range(0, len(X), CHUNK_ROWS))


#: contender -> one epoch of fit on (model, X, y)
FITS: dict[str, Callable[[fb.Sequential, Any, Any, list[Any]], Any]] = {
    "shuffle=True": lambda m, X, y, cb: m.fit(X, y, batch_size=BATCH, verbose=0, callbacks=cb),
    'shuffle="blocks"': lambda m, X, y, cb: m.fit(
        X, y, batch_size=BATCH, shuffle="blocks", verbose=0, callbacks=cb
    ),
    "shuffle=False": lambda m, X, y, cb: m.fit(
        X, y, batch_size=BATCH, shuffle=False, verbose=0, callbacks=cb
    ),
    "stream of chunks": lambda m, X, y, cb: m.fit(
        _stream(X, y), batch_size=BATCH, shuffle=False, verbose=0, callbacks=cb
    ),
}


def epoch_seconds(path: Path, n_rows: int, mode: str) -> float:
    """One cold epoch in `mode`: its wall time, the map opened and closed around it."""
    drop_from_cache(path)
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n_rows, N_FEATURES))
    y = np.zeros(n_rows, dtype=np.float32)
    model = new_model()
    model.fit(np.asarray(X[:BATCH]), y[:BATCH], batch_size=BATCH, verbose=0)  # warm
    drop_from_cache(path)
    started = time.perf_counter()
    FITS[mode](model, X, y, [DropBeforeEpoch(X, path)])
    elapsed = time.perf_counter() - started
    del X
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.5, help="size of the file (GiB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--path", type=Path, default=Path("/tmp/fastbp-memmap-epoch.dat"))
    parser.add_argument("--modes", default=",".join(FITS), help="contenders, comma-separated")
    args = parser.parse_args()
    n_rows = int(args.gib * (1 << 30)) // (N_FEATURES * 4)
    modes = args.modes.split(",")
    print(f"file: {n_rows} rows x {N_FEATURES} float32 = {n_rows * N_FEATURES * 4 / 2**30:.2f} GiB")
    print(f"load average before: {os.getloadavg()}")
    write_file(args.path, n_rows)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        for round_ in range(args.rounds):
            shift = round_ % len(modes)
            this_round = {}
            for mode in modes[shift:] + modes[:shift]:
                this_round[mode] = epoch_seconds(args.path, n_rows, mode)
                print(f"  round {round_ + 1}: {mode:18s} {this_round[mode]:8.2f} s", flush=True)
            for mode in modes:
                times[mode].append(this_round[mode])
                base = this_round.get('shuffle="blocks"', this_round[modes[0]])
                ratios[mode].append(this_round[mode] / base)
    finally:
        args.path.unlink(missing_ok=True)
    print(f"load average after: {os.getloadavg()}")
    print(f"{'mode':18s} {'median s/epoch':>15s} {'ratio to blocks':>16s}")
    for mode in modes:
        print(
            f"{mode:18s} {statistics.median(times[mode]):15.2f} "
            f"{statistics.median(ratios[mode]):16.2f}"
        )


if __name__ == "__main__":
    main()
