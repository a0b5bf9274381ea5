"""The compiled backend: runs a plan through fastbp._kernels.engine.

Every method here receives arrays the model has already validated (right dtype,
C-contiguous, right shapes); it only manages workspaces and calls the engine,
which does a whole step, epoch or prediction in one call without the GIL.
"""

import functools
import itertools
import threading
from typing import Any

import numpy as np

from fastbp import threads, workers
from fastbp._kernels.engine import Engine
from fastbp._kernels.kernels import gemm_runs_small

# Rows per chunk for predict: at least PREDICT_MIN_ROWS so the GEMMs stay
# efficient (256-row chunks of a 1024-wide model measured 30 % slower than one
# pass), and about PREDICT_CHUNK_ELEMENTS per buffer so memory stays bounded.
PREDICT_MIN_ROWS = 1024
PREDICT_CHUNK_ELEMENTS = 1 << 20
PREDICT_CALL_CHUNKS = 16
# A model small enough that every GEMM of a block of PREDICT_SMALL_ROWS rows runs in
# fastbp's own loops (fastbp.gemm.small_flops) predicts, and evaluates (loss_sum), in
# blocks of the most such rows, up to PREDICT_MIN_ROWS, on as many threads as the call
# may use (threads.budget), one per PREDICT_PART_ROWS rows at most, each with its own
# scratch. Threaded BLAS lost to one thread of those loops there (narrow GEMMs, 10 000
# rows of 64-32-10: 5.1 million rows/s against 5.9), and two threads gave 9.4-9.8. A
# row's result does not depend on its block, so the answers are the same however X is
# split.
PREDICT_SMALL_ROWS = 256
PREDICT_PART_ROWS = 2048


class InferenceSet:
    """Scratch memory for one inference call, over `capacity` rows at a time, and
    an engine that shares the plan's parameters (which inference only reads).

    For predict: the ping-pong buffers (capacity, widest node) x 3, and an engine
    over one-row workspaces, which predict does not touch. For loss_sum: an engine
    over workspaces of capacity rows (the loss reads the last layers' Z and A)."""

    def __init__(self, backend, capacity, purpose):
        plan = backend.plan
        self.capacity, self.purpose = capacity, purpose
        rows = capacity if purpose == "loss" else 1
        self.engine = backend.make_engine(plan.workspaces(rows), rows)
        shape = (capacity, plan.max_width)
        self.buffers = (
            tuple(np.empty(shape, plan.dtype) for _ in range(3)) if purpose == "predict" else None
        )


class CythonBackend:
    """Same methods as NumpyBackend.

    Training calls (step, epoch, forward, backward) use the plan's workspaces and
    must not overlap (the model serialises them). predict and loss_sum may run in
    many threads at once: each call borrows an InferenceSet from a small pool, so
    no two calls share scratch memory, and they run without the GIL in parallel.
    """

    name = "cython"
    POOL_SIZE = 4  # idle inference sets kept for reuse
    _engine: Any  # fastbp._kernels.engine.Engine, made on first use
    _batch: Any  # epoch()'s gather buffers (X_batch, y_batch, w_batch), made on first use

    def __init__(self, plan):
        self.plan = plan
        self._engine = None
        self._X = None
        self._n = 0
        self._training = False
        self._batch_key = None  # (batch_size, y dtype, y row shape) of self._batch
        self._batch = None  # (X_batch, y_batch, w_batch): epoch()'s gather buffers
        self._hyper = {}  # the optimiser's hyper() of the last training call
        self._idle = []  # InferenceSets not in use
        self._idle_lock = threading.Lock()

    def make_engine(self, spaces, capacity):
        """An Engine over the plan's parameters, their optimiser state and the
        workspaces `spaces` (one namespace per node, `capacity` rows each)."""

        def state(p, k):
            return p.state[k] if k < len(p.state) else None

        nodes = [
            dict(
                kind=node.kind,
                traits=node.traits.as_dict(),
                d_in=node.d_in,
                d_out=node.d_out,
                width=node.width,
                act=node.act,
                act_param=node.act_param,
                pieces=node.pieces,
                keep=node.keep,
                params=[
                    dict(value=p.value, grad=p.grad, s1=state(p, 0), s2=state(p, 1), decay=p.decay)
                    for p in node.params
                ],
                Z=ws.Z,
                A=ws.A,
                delta=ws.delta,
                dZ=ws.dZ,
                mask=ws.mask,
            )
            for node, ws in zip(self.plan.nodes, spaces)
        ]
        return Engine(
            nodes,
            self.plan.loss_head(True),
            self.plan.dtype == np.float64,
            capacity,
            self.plan.step_count,
            int(self.plan.seed[0]),
            self.plan.optimizer_origin,
            self.plan.row_offset,
        )

    def _engine_for(self, n_rows):
        """The training engine, over the plan's workspaces grown to n_rows."""
        if self.plan.ensure_capacity(n_rows) or self._engine is None:
            self._engine = self.make_engine(self.plan.nodes, self.plan.capacity)
        return self._engine

    def invalidate(self):
        """Forget every engine: the plan's optimiser state arrays were replaced."""
        self._engine = None
        with self._idle_lock:
            self._idle = []

    def _borrow(self, n_rows, purpose):
        """An InferenceSet for a `purpose` ("predict" or "loss") call over n_rows
        rows (done in chunks above the chunk size), taken from the pool or made;
        give it back with _give_back."""
        chunk = max(PREDICT_MIN_ROWS, PREDICT_CHUNK_ELEMENTS // self.plan.max_width)
        needed = min(n_rows, chunk)
        with self._idle_lock:
            for k, idle in enumerate(self._idle):
                if idle.purpose == purpose and idle.capacity >= needed:
                    return self._idle.pop(k)
        # a power of two, so that nearby sizes reuse one set
        return InferenceSet(self, min(chunk, 1 << max(needed - 1, 0).bit_length()), purpose)

    def _give_back(self, scratch):
        """Return a borrowed set to the pool, which keeps the POOL_SIZE largest."""
        with self._idle_lock:
            self._idle.append(scratch)
            if len(self._idle) > self.POOL_SIZE:
                self._idle.remove(min(self._idle, key=lambda s: s.capacity))

    def forward(self, X, training=False):
        n = len(X)
        self._engine_for(n).forward(X, n, training)
        self._X, self._n, self._training = X, n, training
        return self.plan.nodes[-1].A[:n]

    def activations(self):
        """Every node's output from the last forward pass (a dropout's is its input
        outside training)."""
        outputs, previous = [], self._X
        for node in self.plan.nodes:
            skipped = node.traits.train_only and not self._training
            previous = previous if skipped else node.A[: self._n]
            outputs.append(previous)
        return outputs

    def backward(self, dout, need_dX=True):
        n = self._n
        self.plan.nodes[-1].delta[:n] = dout
        dX = np.empty((n, self.plan.input_dim), dtype=self.plan.dtype) if need_dX else None
        self._engine.backward(self._X, n, dX)
        return dX

    def _optimizer_args(self, opt, lr):
        """The engine's (lr, hyper, l2, clipnorm, fold) for opt. hyper is Optimizer.hyper(),
        fbp_hyper's fields by name, refreshed in one dict this backend keeps (a new
        dict per step would be the step's only allocation)."""
        return (lr, opt.hyper(out=self._hyper), opt.l2, opt.clipnorm or 0.0, opt.folds_into_gemm())

    def step(self, X, y, loss, opt, update, lr, weights=None):
        return self._engine_for(len(X)).step(
            X, y, weights, len(X), loss, update, *self._optimizer_args(opt, lr)
        )

    def epoch(self, X, y, order, batch_size, loss, opt, lr, weights=None, total=0.0):
        engine = self._engine_for(batch_size)
        key = (batch_size, y.dtype, y.shape[1:])
        if self._batch_key != key:  # batch buffers made once per batch shape
            self._batch_key = key
            self._batch = (
                np.empty((batch_size, X.shape[1]), dtype=X.dtype),
                np.empty((batch_size,) + y.shape[1:], dtype=y.dtype),
                np.empty(batch_size, dtype=X.dtype),
            )
        X_batch, y_batch, w_batch = self._batch
        return engine.epoch(
            X,
            y,
            weights,
            order,
            batch_size,
            X_batch,
            y_batch,
            w_batch,
            loss,
            *self._optimizer_args(opt, lr),
            total,
        )

    def gemm_floor(self, X, lr=0.01):
        """Only the GEMM calls of an SGD step on X, with the same shapes, alphas and
        betas (for benchmarks; writes workspaces and gradients, not parameters)."""
        self._engine_for(len(X)).gemm_floor(X, len(X), lr)

    def predict(self, X):
        n = len(X)
        out = np.empty((n, self.plan.output_dim), dtype=self.plan.dtype)
        if n == 0:
            return out
        block = self._small_block()
        if not block:
            self._predict_rows(X, out)
            return out
        # each thread claims the next block until none is left, so a thread that
        # starts late (a sleeping core wakes slowly) does less, never holds the others up
        claims = itertools.count()
        n_threads = min(threads.budget(), -(-n // PREDICT_PART_ROWS))
        workers.share(functools.partial(self._predict_blocks, X, out, block, claims), n_threads)
        return out

    def _small_block(self):
        """Rows per predict block at which every GEMM of the plan runs in the small
        path (a power of two from PREDICT_SMALL_ROWS to PREDICT_MIN_ROWS), or 0."""
        shapes = [(node.width, node.d_in) for node in self.plan.nodes if node.traits.affine]
        rows = PREDICT_MIN_ROWS
        while rows >= PREDICT_SMALL_ROWS:
            if all(gemm_runs_small(rows, width, d_in) for width, d_in in shapes):
                return rows
            rows //= 2
        return 0

    def _predict_blocks(self, X, out, block, claims):
        """Predict X (n, input_dim) into out (n, output_dim), one block of `block`
        rows at a time: block k = next(claims), until k is past the end (claims is an
        itertools.count shared by the threads of one call)."""
        n = len(X)
        scratch = self._borrow(min(n, block), "predict")
        try:
            chunk = min(block, scratch.capacity)
            for k in claims:
                if k * block >= n:
                    break
                rows = slice(k * block, (k + 1) * block)
                scratch.engine.predict(X[rows], out[rows], *scratch.buffers, chunk)
        finally:
            self._give_back(scratch)

    def _predict_rows(self, X, out):
        """Predict X (n, input_dim) into out (n, output_dim), as many rows at a time
        as a borrowed scratch set holds."""
        n = len(X)
        scratch = self._borrow(n, "predict")
        try:
            # one engine call per PREDICT_CALL_CHUNKS chunks, so that Ctrl-C is
            # seen between calls on a large X
            rows = scratch.capacity * PREDICT_CALL_CHUNKS
            for start in range(0, n, rows):
                part = slice(start, start + rows)
                scratch.engine.predict(X[part], out[part], *scratch.buffers, scratch.capacity)
        finally:
            self._give_back(scratch)

    def loss_sum(self, X, y, loss, weights=None):
        n = len(X)
        block = self._small_block()
        if not block or n == 0:
            return self._loss_rows(X, y, loss, weights)
        # as predict: blocks claimed by every thread the call may use; each block's
        # sums are kept apart and added in block order, the same on any thread count
        n_blocks = -(-n // block)
        totals, corrects = [0.0] * n_blocks, [0] * n_blocks
        claims = itertools.count()
        work = functools.partial(
            self._loss_blocks, X, y, loss, weights, block, claims, totals, corrects
        )
        workers.share(work, min(threads.budget(), -(-n // PREDICT_PART_ROWS)))
        return sum(totals), sum(corrects)

    def _loss_blocks(self, X, y, loss, weights, block, claims, totals, corrects):
        """loss_sum of block k = next(claims) into totals[k], corrects[k], until k is
        past the last block (see _predict_blocks)."""
        n = len(X)
        scratch = self._borrow(min(n, block), "loss")
        try:
            for k in claims:
                if k >= len(totals):
                    break
                rows = slice(k * block, (k + 1) * block)
                totals[k], corrects[k] = scratch.engine.loss_sum(
                    X[rows],
                    y[rows],
                    None if weights is None else weights[rows],
                    min(block, n - k * block),
                    loss,
                )
        finally:
            self._give_back(scratch)

    def _loss_rows(self, X, y, loss, weights):
        """loss_sum in chunks of as many rows as a borrowed scratch set holds."""
        n = len(X)
        total, n_correct = 0.0, 0
        scratch = self._borrow(n, "loss")
        try:
            chunk = scratch.capacity
            for start in range(0, n, chunk):
                rows = slice(start, start + chunk)
                part, correct = scratch.engine.loss_sum(
                    X[rows],
                    y[rows],
                    None if weights is None else weights[rows],
                    min(chunk, n - start),
                    loss,
                )
                total += part
                n_correct += correct
        finally:
            self._give_back(scratch)
        return total, n_correct
