"""The compiled backend: runs a plan through fastbp._kernels.engine.

Every method here receives arrays the model has already validated (right dtype,
C-contiguous, right shapes); it only manages workspaces and calls the engine,
which does a whole step, epoch or prediction in one call without the GIL.
"""
import numpy as np

from fastbp._kernels.engine import Engine
from fastbp.plan import DROPOUT

# Rows per chunk for predict: at least PREDICT_MIN_ROWS so the GEMMs stay
# efficient (256-row chunks of a 1024-wide model measured 30 % slower than one
# pass), and about PREDICT_CHUNK_ELEMENTS per buffer so memory stays bounded.
PREDICT_MIN_ROWS = 1024
PREDICT_CHUNK_ELEMENTS = 1 << 20


class CythonBackend:
    """Same methods as NumpyBackend."""

    name = "cython"

    def __init__(self, plan):
        self.plan = plan
        self._engine = None
        self._X = None
        self._n = 0
        self._training = False
        self._batch_key = None  # (batch_size, y dtype, y row shape) of self._batch
        self._batch = None      # (X_batch, y_batch, w_batch): epoch()'s gather buffers
        self._predict_buffers = None

    def _engine_for(self, n_rows):
        if self.plan.ensure_capacity(n_rows) or self._engine is None:
            def state(p, k):
                return p.state[k] if k < len(p.state) else None
            nodes = [dict(kind=node.kind, traits=node.traits.as_dict(), d_in=node.d_in,
                          d_out=node.d_out, width=node.width,
                          act=node.act, param=node.param, pieces=node.pieces, keep=node.keep,
                          params=[dict(value=p.value, grad=p.grad, s1=state(p, 0),
                                       s2=state(p, 1), decay=p.decay) for p in node.params],
                          Z=node.Z, A=node.A, delta=node.delta, dZ=node.dZ, mask=node.mask)
                     for node in self.plan.nodes]
            self._engine = Engine(nodes, self.plan.loss_head(True), self.plan.dtype == np.float64,
                                  self.plan.capacity, self.plan.step_count,
                                  int(self.plan.seed[0]))
        return self._engine

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
            skipped = node.kind == DROPOUT and not self._training
            previous = previous if skipped else node.A[:self._n]
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
        hyper = getattr(self, "_hyper", None)
        if hyper is None:
            hyper = self._hyper = {}
        return (lr, opt.hyper(out=hyper), opt.l2, opt.clipnorm or 0.0, opt.folds_into_gemm())

    def step(self, X, y, loss, opt, update, lr, weights=None):
        return self._engine_for(len(X)).step(X, y, weights, len(X), loss, update,
                                             *self._optimizer_args(opt, lr))

    def epoch(self, X, y, order, batch_size, loss, opt, lr, weights=None):
        engine = self._engine_for(batch_size)
        key = (batch_size, y.dtype, y.shape[1:])
        if self._batch_key != key:   # batch buffers made once per batch shape
            self._batch_key = key
            self._batch = (np.empty((batch_size, X.shape[1]), dtype=X.dtype),
                           np.empty((batch_size,) + y.shape[1:], dtype=y.dtype),
                           np.empty(batch_size, dtype=X.dtype))
        X_batch, y_batch, w_batch = self._batch
        return engine.epoch(X, y, weights, order, batch_size, X_batch, y_batch, w_batch, loss,
                            *self._optimizer_args(opt, lr))

    def gemm_floor(self, X, lr=0.01):
        """Only the GEMM calls of an SGD step on X, with the same shapes, alphas and
        betas (for benchmarks; writes workspaces and gradients, not parameters)."""
        self._engine_for(len(X)).gemm_floor(X, len(X), lr)

    def predict(self, X):
        n = len(X)
        out = np.empty((n, self.plan.output_dim), dtype=self.plan.dtype)
        if n == 0:
            return out
        chunk = min(n, max(PREDICT_MIN_ROWS, PREDICT_CHUNK_ELEMENTS // self.plan.max_width))
        buffers = self._predict_buffers
        if buffers is None or buffers[0].shape[0] < chunk:
            shape = (chunk, self.plan.max_width)
            buffers = self._predict_buffers = tuple(np.empty(shape, self.plan.dtype)
                                                    for _ in range(3))
        self._engine_for(1).predict(X, out, *buffers, buffers[0].shape[0])
        return out

    def loss_sum(self, X, y, loss, weights=None):
        n = len(X)
        chunk = max(self.plan.capacity, min(n, 1024))
        engine = self._engine_for(chunk)
        total, n_correct = 0.0, 0
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            part, correct = engine.loss_sum(X[rows], y[rows],
                                            None if weights is None else weights[rows],
                                            min(chunk, n - start), loss)
            total += part
            n_correct += correct
        return total, n_correct
