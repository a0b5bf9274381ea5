"""Data-parallel training over MPI (mpi4py): what fit(..., comm=...) needs.

Every rank holds the same model and the same X (a np.memmap lets each rank read
only its rows). Rank 0's training state is broadcast. Then one of two trainers runs
each epoch:

- ShardedTrainer (average_every=None): each global batch of the shared permutation
  is split into contiguous per-rank slices (a slice may be empty); each rank
  computes the gradient of its slice scaled by local_rows / global_rows, and one
  in-place Allreduce(SUM) of a flat buffer, which also carries the batch's loss and
  correct count, gives every rank the gradient of the global batch mean. A rank's
  dropout masks are its slice's rows of the masks of the whole batch
  (plan.row_offset), so they are one process's. L2 and clipping then apply, and the
  same optimiser step runs on every rank, so the ranks' weights stay identical.
- LocalTrainer (average_every=k, local SGD): each rank steps on its own contiguous
  shard of the rows (shard()), batch_size rows a step, with no communication
  between averagings; every k local steps and at the end of the epoch one
  Allreduce of a flat buffer averages the parameters and the optimiser state and
  sums the epoch's figures (see LocalTrainer).

mpi4py is imported only here, and only when a communicator is given.
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


#: what fit's settings tuple holds, for agree's message
FIT_SETTINGS = "(samples, features, batch_size, epochs, shuffle, average_every, shuffle_block)"


def agree(
    comm: Any,
    error: BaseException | None,
    settings: tuple[Any, ...] = (),
    call: str = "fit",
    names: str = FIT_SETTINGS,
) -> None:
    """A collective: raise on every rank if the local checks failed on any rank, or
    if the ranks' settings (for fit: FIT_SETTINGS; named by `names`) differ, which
    would give them different numbers of steps and leave one waiting. `call` names
    the method in the messages."""
    said = None if error is None else f"{type(error).__name__}: {error}"
    found = comm.allgather((said, settings))
    if error is not None:
        raise error
    for rank, (message, _) in enumerate(found):
        if message is not None:
            raise RuntimeError(f"{call} failed on rank {rank} of {len(found)}: {message}")
    for rank, (_, theirs) in enumerate(found):
        if theirs != found[0][1]:
            raise ValueError(
                f"every rank must call {call} with the same data and settings; "
                f"{names} is {found[0][1]} on rank 0 but {theirs} on rank {rank}"
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


def shard(rows: int, comm: Any, rank: int | None = None) -> slice:
    """The contiguous part of `rows` rows that falls to this rank (or to `rank`) of
    comm: rows * rank // size up to rows * (rank + 1) // size, possibly empty."""
    size = comm.Get_size()
    rank = comm.Get_rank() if rank is None else rank
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


class LocalTrainer:
    """Local SGD over one model's plan and backend: fit(..., average_every=k).

    Rank r trains on its shard, rows shard(n, comm, r) of X. Its order within an
    epoch is the shared permutation (the one a single process would draw from the
    model's generator, the same on every rank) restricted to the shard: the
    shard's rows in the order in which they appear in it (with shuffle=False, the
    shard in row order). A step takes batch_size rows of that order, so batch_size
    is the per-rank batch (the ranks together see size * batch_size rows a step).
    Every rank counts the same steps in an epoch, ceil(largest shard / batch_size);
    a rank whose shard is shorter takes no step for the steps it lacks.

    Every k steps (counted from the start of the epoch) and after the epoch's last
    step, one Allreduce(SUM) of a float64 buffer averages the parameters and the
    optimiser state (momentum, Adam's moments, ...; the step counts are equal on
    every rank), each rank's weighted by the rows it trained on since the last
    averaging over the rows all ranks trained on (a rank with none weighs nothing),
    and carries the figures of those steps (loss sum, correct count, rows, ranks
    that stopped), so that every rank ends the epoch with the same weights and the
    same global loss. A rank whose loss stops being finite stops stepping; the
    reduction tells every rank, which all end the epoch there (the model then
    restores the epoch's start on every rank). Rank r's dropout masks are rows
    r * batch_size.. of the masks of one process's batch of size * batch_size rows
    (plan.row_offset), so no two ranks draw the same masks.

    With k = 1 and an update linear in the gradient (SGD, with or without
    momentum, coupled L2, no clipnorm), this is one process at batch size
    size * batch_size whose j-th batch is the ranks' j-th batches end to end, to
    float rounding: the weighted average of the ranks' steps is the step of the
    weighted mean gradient.
    """

    FIGURES = 4  # loss sum, correct count, rows seen, ranks that stopped

    def __init__(self, comm: Any, plan: Plan, backend: Any, every: int) -> None:
        self.comm, self.plan, self.backend, self.every = comm, plan, backend, every
        self.buffer = np.empty(0, dtype=np.float64)

    def _arrays(self) -> list[np.ndarray]:
        """What is averaged: the parameters, then each one's optimiser state arrays
        (read afresh each epoch, as a change of optimiser replaces the state)."""
        params = self.plan.params()
        return [p.value for p in params] + [s for p in params for s in p.state]

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
        """One epoch of local SGD; order is the shared permutation of all the rows.
        Returns (sum over every rank's batches of batch_rows * batch_loss, n_correct,
        n_seen), the same on every rank; the loss sum is not finite when a rank's
        loss stopped being finite."""
        from mpi4py import MPI

        comm, plan, every = self.comm, self.plan, self.every
        rank, size = comm.Get_rank(), comm.Get_size()
        n = len(order)
        shards = [shard(n, comm, r) for r in range(size)]
        lengths = np.array([s.stop - s.start for s in shards], dtype=np.int64)
        mine = shards[rank]
        local = order[(order >= mine.start) & (order < mine.stop)]
        steps = -(-int(lengths.max()) // batch_size)
        # on one rank the average is the rank's own arrays: only the figures go round
        arrays = self._arrays() if size > 1 else []
        bounds = np.cumsum([0] + [a.size for a in arrays])
        m = int(bounds[-1])
        if self.buffer.size != m + self.FIGURES:
            self.buffer = np.empty(m + self.FIGURES, dtype=np.float64)
        buf = self.buffer
        total, n_correct, n_seen = 0.0, 0, 0
        try:
            for first in range(0, steps, every):
                last = min(first + every, steps)
                chunk = local[first * batch_size : last * batch_size]
                began = int(plan.step_count[0])
                part, correct, seen = 0.0, 0, 0
                if len(chunk):
                    plan.row_offset[0] = rank * batch_size
                    part, correct, seen = self.backend.epoch(
                        X, y, chunk, batch_size, loss_code, opt, lr, weights
                    )
                stopped = seen < len(chunk) or not np.isfinite(part)
                plan.step_count[0] = began + (last - first)  # the same count on every rank
                # rows each rank trained on in these steps: its weight in the average
                window = np.clip(lengths - first * batch_size, 0, (last - first) * batch_size)
                share = window[rank] / window.sum()
                for a, lo, hi in zip(arrays, bounds[:-1], bounds[1:]):
                    # share * a in float64 (a float32 array is widened first, exactly)
                    np.multiply(a.ravel(), share, out=buf[lo:hi], dtype=np.float64)
                buf[m:] = part, correct, seen, stopped
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                total += float(buf[m])
                n_correct += int(buf[m + 1])
                n_seen += int(buf[m + 2])
                if buf[m + 3]:  # some rank's loss stopped being finite: all stop here
                    return (total if not np.isfinite(total) else float("inf")), n_correct, n_seen
                for a, lo, hi in zip(arrays, bounds[:-1], bounds[1:]):
                    np.copyto(a, buf[lo:hi].reshape(a.shape))
        finally:
            plan.row_offset[0] = 0
        return total, n_correct, n_seen
