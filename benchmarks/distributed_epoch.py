"""Seconds per epoch of fit(comm=...) over the ranks it is launched on, and the cost
of one Allreduce of the model's flat gradient buffer, for a scaling estimate.

Run:  for n in 1 2 4; do mpiexec -n $n python -m mpi4py benchmarks/distributed_epoch.py; done

On one machine the ranks share its cores, so this shows the overhead of the
reduction, not a speed-up.
"""

import time

import numpy as np
from mpi4py import MPI

import fastbp as fb

N_ROWS, N_FEATURES, HIDDEN, BATCH, EPOCHS = 16384, 64, 256, 256, 3


def main():
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_ROWS, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = fb.Sequential(
        [fb.Dense(HIDDEN, activation="relu", input_dim=N_FEATURES), fb.Dense(2)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=1e-3),
        seed=0,
        n_threads=1,
    )
    model.fit(X[:BATCH], y[:BATCH], epochs=1, batch_size=BATCH, verbose=0, comm=comm)  # warm
    comm.Barrier()
    started = time.perf_counter()
    model.fit(X, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, comm=comm)
    epoch = (time.perf_counter() - started) / EPOCHS
    buf = np.zeros(model.count_params() + 2)
    comm.Barrier()
    started = time.perf_counter()
    for _ in range(200):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    allreduce = (time.perf_counter() - started) / 200
    if comm.Get_rank() == 0:
        steps = -(-N_ROWS // BATCH)
        print(
            f"{comm.Get_size()} ranks: {epoch * 1e3:.1f} ms/epoch ({steps} steps), "
            f"allreduce of {buf.size} float64: {allreduce * 1e6:.0f} us"
        )


if __name__ == "__main__":
    main()
