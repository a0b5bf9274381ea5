"""The handwritten digits trained data-parallel over MPI ranks.

Every rank loads the same data and builds the same model; fit(comm=...) broadcasts
rank 0's initial state, splits each global batch of 64 rows among the ranks and
sums their gradients with one Allreduce per step, so the weights are those of one
process at batch size 64 (to float rounding). Rank 0 prints and saves.

Run:  mpiexec -n 2 python -m mpi4py examples/distributed_digits.py
      (`python -m mpi4py` makes an uncaught error on any rank end the whole job)
"""

import sys

import fastbp as fb
from fastbp.datasets import load_digits, standardize, train_test_split


def main(comm, epochs=10, verbose=True, path=None):
    """Train on comm's ranks; returns the test accuracy (the same on every rank)."""
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
    )
    accuracy = model.evaluate(X_test, y_test)["accuracy"]
    if verbose and comm.Get_rank() == 0:
        print(f"{comm.Get_size()} ranks: test accuracy {accuracy:.3f}")
    if path is not None:
        model.save(path, comm=comm)  # rank 0 writes
    return accuracy


if __name__ == "__main__":
    from mpi4py import MPI

    main(MPI.COMM_WORLD, path=sys.argv[1] if len(sys.argv) > 1 else None)
