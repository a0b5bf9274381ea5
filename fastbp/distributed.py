"""Data-parallel training over MPI (mpi4py): what fit(..., comm=...) needs.

Every rank holds the same model and the same X (a np.memmap lets each rank read
only its rows). Rank 0's training state is broadcast; each global batch of the
shared permutation is split into contiguous per-rank slices (a slice may be
empty); each rank computes the gradient of its slice scaled by
local_rows / global_rows, and one in-place Allreduce(SUM) of a flat buffer, which
also carries the batch's loss and correct count, gives every rank the gradient of
the global batch mean. A rank's dropout masks are its slice's rows of the masks of
the whole batch (plan.row_offset), so they are one process's. L2 and clipping then
apply, and the same optimiser step runs on every rank, so the ranks' weights stay
identical. mpi4py is imported only here, and only when a communicator is given.
"""

from __future__ import annotations

import copy
import sys
import traceback
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastbp.backends.numpy_backend import NumpyBackend
from fastbp.plan import Plan


def check_comm(comm: Any) -> Any:
    """comm as an mpi4py communicator (TypeError otherwise)."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(
            "fit(comm=...) needs mpi4py; install it with pip install 'fastbp[mpi]'"
        ) from None
    if not isinstance(comm, MPI.Comm):
        raise TypeError(
            f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD) or None, "
            f"got {type(comm).__name__}"
        )
    return comm


def agree(comm: Any, error: BaseException | None, settings: tuple[Any, ...] = ()) -> None:
    """A collective: raise on every rank if the local checks failed on any rank, or
    if the ranks' settings (samples, features, batch_size, epochs, shuffle,
    shuffle_block) differ,
    which would give them different numbers of steps and leave one waiting."""
    said = None if error is None else f"{type(error).__name__}: {error}"
    found = comm.allgather((said, settings))
    if error is not None:
        raise error
    for rank, (message, _) in enumerate(found):
        if message is not None:
            raise RuntimeError(f"fit failed on rank {rank} of {len(found)}: {message}")
    for rank, (_, theirs) in enumerate(found):
        if theirs != found[0][1]:
            raise ValueError(
                "every rank must call fit with the same data and settings; (samples, "
                "features, batch_size, epochs, shuffle, shuffle_block) is "
                f"{found[0][1]} on rank 0 but "
                f"{theirs} on rank {rank}"
            )


def broadcast_state(comm: Any, plan: Plan, rng: np.random.Generator) -> None:
    """Rank 0's weights, optimiser state, step count, seed and generator on every rank."""
    for arr in plan.training_state():
        comm.Bcast(arr, root=0)
    rng.bit_generator.state = comm.bcast(rng.bit_generator.state, root=0)


def abort(comm: Any, exc: BaseException) -> None:
    """Print the error with this rank's number, then end the whole job (a rank
    left alone in a collective would wait forever)."""
    sys.stderr.write(f"fastbp: rank {comm.Get_rank()} failed in a distributed fit:\n")
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    sys.stderr.flush()
    comm.Abort(1)


def shard(rows: int, comm: Any) -> slice:
    """This rank's contiguous part of `rows` rows (possibly empty)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    return slice(rows * rank // size, rows * (rank + 1) // size)


def reduce_sums(comm: Any, *values: float) -> NDArray[np.float64]:
    """Elementwise sum of `values` over the ranks."""
    from mpi4py import MPI

    buf = np.array(values, dtype=np.float64)
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return buf


class ShardedTrainer:
    """The per-step path of a distributed epoch over one model's plan and backend."""

    def __init__(self, comm: Any, plan: Plan, backend: Any) -> None:
        self.comm, self.plan, self.backend = comm, plan, backend
        self.updater = NumpyBackend(plan)  # its optimiser step works on the plan's arrays
        sizes = [g.size for g in plan.gradients()]
        self.bounds = np.cumsum([0] + sizes)
        # gradients, then the batch's loss (global mean) and correct count
        self.buffer = np.empty(self.bounds[-1] + 2, dtype=np.float64)

    def epoch(
        self,
        X: NDArray[np.floating],
        y: np.ndarray,
        weights: NDArray[np.floating] | None,
        order: NDArray[np.int64],
        batch_size: int,
        loss_code: int,
        opt: Any,
        lr: float,
    ) -> tuple[float, int, int]:
        """Mini-batches in `order` (the same on every rank): (sum of global
        batch_rows * batch_loss, n_correct, n_seen), the same figures on every rank;
        stops after a batch whose loss is not finite (no step taken for it). The
        plan's row_offset is its slice's start during each local step, 0 after."""
        from mpi4py import MPI

        gradient_opt = copy.copy(opt)
        gradient_opt.weight_decay = 0.0  # L2 is added once, after the reduction
        gradient_opt.clipnorm = None
        total, n_correct, n_seen = 0.0, 0, 0
        grads, buf, bounds = self.plan.gradients(), self.buffer, self.bounds
        # this rank's rows of a batch are gathered into these, allocated once an epoch
        most = min(batch_size, len(order))
        X_part = np.empty((most, *X.shape[1:]), dtype=X.dtype)
        y_part = np.empty((most, *y.shape[1:]), dtype=y.dtype)
        w_part = None if weights is None else np.empty(most, dtype=weights.dtype)
        try:
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                part = shard(len(batch), self.comm)
                mine = batch[part]
                self.plan.step_count[0] += 1  # this step's number (Adam's bias correction)
                self.plan.row_offset[0] = part.start  # where its dropout masks begin
                if len(mine):
                    k = len(mine)
                    np.take(X, mine, axis=0, out=X_part[:k])
                    np.take(y, mine, axis=0, out=y_part[:k])
                    if weights is not None and w_part is not None:
                        np.take(weights, mine, out=w_part[:k])
                    value, correct = self.backend.step(
                        X_part[:k],
                        y_part[:k],
                        loss_code,
                        gradient_opt,
                        False,
                        lr,
                        None if w_part is None else w_part[:k],
                    )
                    share = len(mine) / len(batch)
                    for g, lo, hi in zip(grads, bounds[:-1], bounds[1:]):
                        buf[lo:hi] = g.ravel()
                    buf[:-2] *= share
                    buf[-2], buf[-1] = value * share, correct
                else:
                    buf[:] = 0.0
                self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                value = float(buf[-2])
                if opt.l2:
                    value += self.updater._l2_term(opt.l2)
                total += value * len(batch)
                n_correct += int(buf[-1])
                n_seen += len(batch)
                if not np.isfinite(self.plan.dtype.type(value)):
                    break
                for g, lo, hi in zip(grads, bounds[:-1], bounds[1:]):
                    g.ravel()[:] = buf[lo:hi]
                if opt.l2:
                    for p in self.plan.params():
                        if p.decay:
                            p.grad += p.value.dtype.type(opt.l2) * p.value
                self.updater._update(opt, lr)
        finally:
            self.plan.row_offset[0] = 0
        return total, n_correct, n_seen
