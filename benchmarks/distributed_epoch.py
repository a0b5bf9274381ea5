"""Seconds per epoch of fit(comm=...) over the ranks it is launched on: the per-step
gradient Allreduce next to local SGD (average_every = 1, 4, 16), for a tiny
(64-32-10) and a small (784-128-10) model, and the cost of one Allreduce of each
model's flat gradient buffer, for a scaling estimate.

Run:  for n in 1 2 4; do mpiexec -n $n python -m mpi4py benchmarks/distributed_epoch.py; done

The per-step path splits a global batch of BATCH rows among the ranks; local SGD
is given BATCH / ranks rows a rank a step, so that both take the same steps over
the same rows per epoch and differ only in how often they communicate. The modes
are timed in turn (one epoch of each, REPEATS rounds) and the median is printed.
On one machine the ranks share its cores, so this shows the overhead of the
reductions, not a speed-up.
"""

import time

import numpy as np
from mpi4py import MPI

import fastbp as fb

BATCH, REPEATS = 256, 5
#: name -> (rows, features, hidden units, classes)
CONFIGS = {"tiny 64-32-10": (16384, 64, 32, 10), "small 784-128-10": (8192, 784, 128, 10)}
#: mode name -> average_every (None: one Allreduce of the gradients a step)
MODES = {"per-step": None, "local k=1": 1, "local k=4": 4, "local k=16": 16}


def model(features, hidden, classes):
    return fb.Sequential(
        [fb.Dense(hidden, activation="relu", input_dim=features), fb.Dense(classes)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=1e-3),
        seed=0,
        n_threads=1,
    )


def main():
    comm = MPI.COMM_WORLD
    size = comm.Get_size()
    for name, (rows, features, hidden, classes) in CONFIGS.items():
        rng = np.random.default_rng(0)
        X = rng.standard_normal((rows, features)).astype(np.float32)
        y = (X[:, :classes].argmax(axis=1)).astype(np.int64)
        models = {mode: model(features, hidden, classes) for mode in MODES}
        batches = {mode: BATCH if k is None else max(1, BATCH // size) for mode, k in MODES.items()}
        for mode, k in MODES.items():  # warm: engines built, pages touched
            models[mode].fit(
                X[:BATCH],
                y[:BATCH],
                batch_size=batches[mode],
                verbose=0,
                comm=comm,
                average_every=k,
            )
        times = {mode: [] for mode in MODES}
        for _ in range(REPEATS):
            for mode, k in MODES.items():
                comm.Barrier()
                started = time.perf_counter()
                models[mode].fit(
                    X, y, batch_size=batches[mode], verbose=0, comm=comm, average_every=k
                )
                times[mode].append(time.perf_counter() - started)
        buf = np.zeros(models["per-step"].count_params() + 2)
        comm.Barrier()
        started = time.perf_counter()
        for _ in range(200):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        allreduce = (time.perf_counter() - started) / 200
        if comm.Get_rank() == 0:
            steps = -(-rows // BATCH)
            figures = ", ".join(f"{mode} {np.median(t) * 1e3:.1f}" for mode, t in times.items())
            print(
                f"{size} ranks, {name} ({rows} rows, {steps} steps): ms/epoch {figures}; "
                f"allreduce of {buf.size} float64: {allreduce * 1e6:.0f} us"
            )


if __name__ == "__main__":
    main()
