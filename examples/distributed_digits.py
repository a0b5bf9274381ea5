"""The handwritten digits trained data-parallel over MPI ranks.

Every rank loads the same data and builds the same model; fit(comm=...) broadcasts
rank 0's initial state, splits each global batch of 64 rows among the ranks and
sums their gradients with one Allreduce per step, so the weights are those of one
process at batch size 64 (to float rounding). Rank 0 prints and saves.

With a second argument k, it trains by local SGD instead: each rank steps on its
own shard, 64 rows a step, and the ranks average their models every k steps and
at the end of each epoch.

Run:  mpiexec -n 2 python -m mpi4py examples/distributed_digits.py [model.npz [k]]
      (`python -m mpi4py` makes an uncaught error on any rank end the whole job)
"""

import sys

import fastbp as fb
from fastbp.datasets import load_digits, standardize, train_test_split


def main(comm, epochs=10, verbose=True, path=None, average_every=None):
    """Train on comm's ranks (by local SGD when average_every is a number of
    steps); returns the test accuracy (the same on every rank)."""
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, seed=0)
    X_train, X_test = standardize(X_train, X_test)
    model = fb.Sequential(
        [fb.Dense(64, activation="relu", input_dim=64), fb.Dense(10)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=3e-3),
        seed=0,
    )
    model.fit(
        X_train,
        y_train,
        epochs=epochs,
        batch_size=64,
        validation_data=(X_test, y_test),
        verbose=int(verbose),
        comm=comm,
        average_every=average_every,
    )
    accuracy = model.evaluate(X_test, y_test)["accuracy"]
    if verbose and comm.Get_rank() == 0:
        print(f"{comm.Get_size()} ranks: test accuracy {accuracy:.3f}")
    if path is not None:
        model.save(path, comm=comm)  # rank 0 writes
    return accuracy


if __name__ == "__main__":
    from mpi4py import MPI

    main(
        MPI.COMM_WORLD,
        path=sys.argv[1] if len(sys.argv) > 1 else None,
        average_every=int(sys.argv[2]) if len(sys.argv) > 2 else None,
    )
