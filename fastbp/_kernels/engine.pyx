# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The whole-model engine: a training step, an epoch, inference, each one nogil call.

An Engine is made by the Cython backend from a plan (fastbp/plan.py): it keeps
raw pointers to the plan's parameters, gradients and workspaces, plus a
reference to every array so none is freed while the engine lives. The backend
validates every array it passes in; nothing here checks again.
"""
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.math cimport isfinite, sqrt, pow
from cython cimport floating
cimport numpy as cnp
from fastbp._kernels.csrc cimport (loss_forward_backward, sumsq, add_decay, optim_update, dropout,
                                   fbp_optim,
                                   gather_rows, fbp_gather_labels,
                                   LOSS_MSE, LOSS_SOFTMAX_XENT_INT)
from fastbp._kernels.dense cimport dense_forward, dense_backward, dense_backward_sgd
from fastbp._kernels.blas cimport gemm

cdef extern from *:
    """
    #ifndef FBP_SOURCE_HASH
    #define FBP_SOURCE_HASH "unknown"
    #endif
    """
    const char *FBP_SOURCE_HASH

cnp.import_array()

# Fingerprint of the sources this module was built from (set by setup.py), so that
# a stale build is detected at import (fastbp/backends/__init__.py).
SOURCE_HASH = FBP_SOURCE_HASH.decode()

cdef int ACT_IDENTITY = 0


cdef struct Layer:
    int d_in
    int d_out
    int act
    double param
    void *W         # (d_in, d_out)
    void *b         # (d_out,)
    void *dW        # (d_in, d_out)
    void *db        # (d_out,)
    void *Z         # (capacity, d_out)  pre-activation
    void *A         # (capacity, d_out)  activation; equals Z for identity
    void *delta     # (capacity, d_out)  dA, then dZ, during backward
    void *W_s1      # optimiser state for W and b, (d_in, d_out) and (d_out,) each;
    void *W_s2      # NULL where the optimiser keeps fewer arrays
    void *b_s1
    void *b_s2
    double keep     # 1 - dropout rate after this layer (1: no dropout)
    void *mask      # (capacity, d_out) the dropout mask of the last training pass, or NULL
    void *D         # (capacity, d_out) A * mask, the next layer's input in training


cdef struct Update:
    bint apply        # take a step; otherwise compute the gradients only
    bint fold         # plain SGD: fold the step into the weight-gradient GEMM
    double l2         # coupled L2 strength (in the loss and in dW)
    double clipnorm   # rescale the gradients above this global norm; 0 for none
    fbp_optim opt     # kind, learning rate and hyper-parameters
    uint64_t seed     # the model's dropout seed
    int64_t *t        # steps taken so far (Adam's bias correction, dropout streams)


cdef inline void *_ptr(arr):
    """The data pointer of an ndarray (the backend has checked its type and layout)."""
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef inline bint _drops(Layer *L, int l, bint training) noexcept nogil:
    return training and L[l].keep < 1


cdef inline const void *_output(Layer *L, int l, bint training) noexcept nogil:
    """What layer l hands the next layer: A, or A * mask after dropout in training."""
    return L[l].D if _drops(L, l, training) else L[l].A


cdef void _forward(Layer *L, int n_layers, int n, const floating *X, bint training,
                   uint64_t seed, int64_t t) noexcept nogil:
    """Forward through every layer; in training, dropout masks come from stream
    t * 1024 + layer under seed."""
    cdef const floating *inp = X
    cdef int l
    for l in range(n_layers):
        dense_forward(n, L[l].d_in, L[l].d_out, inp, <floating *>L[l].W,
                      <floating *>L[l].b, L[l].act, <floating>L[l].param,
                      <floating *>L[l].Z, <floating *>L[l].A)
        if _drops(L, l, training):
            dropout(<int64_t>n * L[l].d_out, L[l].keep, seed, <uint64_t>t * 1024 + l,
                    <floating *>L[l].A, <floating *>L[l].mask, <floating *>L[l].D)
        inp = <const floating *>_output(L, l, training)


cdef void _backward(Layer *L, int n_layers, int n, const floating *X, int last_act,
                    floating *dX, const Update *u, bint training) noexcept nogil:
    """Backpropagate the last layer's delta (dA, or dZ when last_act is identity).

    With u.apply and u.fold: one SGD step folded into each layer's backward, dW is
    not written. Otherwise dW, db of every layer, dW including l2 * W.
    """
    cdef int l, act
    cdef const floating *inp
    cdef floating *dinp
    cdef int64_t i, size
    cdef floating *delta
    cdef const floating *mask
    for l in range(n_layers - 1, -1, -1):
        inp = X if l == 0 else <const floating *>_output(L, l - 1, training)
        dinp = dX if l == 0 else <floating *>L[l - 1].delta
        act = last_act if l == n_layers - 1 else L[l].act
        if _drops(L, l, training):
            # the gradient reached A * mask: dA = dD * mask
            delta, mask = <floating *>L[l].delta, <const floating *>L[l].mask
            size = <int64_t>n * L[l].d_out
            for i in range(size):
                delta[i] *= mask[i]
        if u.apply and u.fold:
            dense_backward_sgd(n, L[l].d_in, L[l].d_out, inp, <floating *>L[l].W,
                               <floating *>L[l].b, <floating *>L[l].Z, <floating *>L[l].A, act,
                               <floating>L[l].param, <floating *>L[l].delta,
                               <floating *>L[l].db, dinp, <floating>u.opt.lr, <floating>u.l2)
        else:
            dense_backward(n, L[l].d_in, L[l].d_out, inp, <floating *>L[l].W,
                           <floating *>L[l].Z, <floating *>L[l].A, act, <floating>L[l].param,
                           <floating *>L[l].delta, <floating *>L[l].dW, <floating *>L[l].db,
                           dinp)
            if u.l2 != 0:
                add_decay(<int64_t>L[l].d_in * L[l].d_out, <floating>u.l2,
                          <floating *>L[l].W, <floating *>L[l].dW)


cdef void _apply(Layer *L, int n_layers, Update *u, floating scale) noexcept nogil:
    """One optimiser step from the gradients in dW, db; scale comes in as 1 and
    becomes min(1, clipnorm / global norm) when clipping is on."""
    cdef int l
    cdef int64_t size
    cdef double norm = 0
    cdef fbp_optim bias_opt
    if u.clipnorm > 0:
        for l in range(n_layers):
            norm += sumsq(<int64_t>L[l].d_in * L[l].d_out, <floating *>L[l].dW)
            norm += sumsq(<int64_t>L[l].d_out, <floating *>L[l].db)
        norm = sqrt(norm)
        if norm > u.clipnorm:
            scale = <floating>(u.clipnorm / norm)
    u.opt.correction1 = 1 - pow(u.opt.beta1, <double>u.t[0])
    u.opt.correction2 = 1 - pow(u.opt.beta2, <double>u.t[0])
    bias_opt = u.opt
    bias_opt.decay = 0   # biases are not decayed
    for l in range(n_layers):
        size = <int64_t>L[l].d_in * L[l].d_out
        optim_update(&u.opt, size, scale, <floating *>L[l].dW, <floating *>L[l].W,
                     <floating *>L[l].W_s1, <floating *>L[l].W_s2)
        optim_update(&bias_opt, <int64_t>L[l].d_out, scale, <floating *>L[l].db,
                     <floating *>L[l].b, <floating *>L[l].b_s1, <floating *>L[l].b_s2)


cdef double _step(Layer *L, int n_layers, int n, const floating *X, const void *y,
                  const floating *w, int loss, Update *u, int64_t *n_correct) noexcept nogil:
    """Forward, loss, L2 term, backward, and (if u.apply) one optimiser step.

    w: per-row loss weights or NULL. Returns the batch's mean (weighted) loss plus
    the L2 term, computed before the step. A loss that is not finite in the model's
    dtype is returned as such and nothing else is done, so the weights stay those
    that produced it (the caller's snapshot restores the step count).
    """
    cdef Layer *last = &L[n_layers - 1]
    cdef int l
    cdef double value
    if u.apply:
        u.t[0] += 1
    _forward(L, n_layers, n, X, True, u.seed, u.t[0])
    value = loss_forward_backward(loss, n, last.d_out, <floating *>last.Z, <floating *>last.A,
                                  y, w, <floating>(1.0 / n), <floating *>last.delta,
                                  n_correct) / n
    if u.l2 != 0:
        for l in range(n_layers):
            value += 0.5 * u.l2 * sumsq(<int64_t>L[l].d_in * L[l].d_out, <floating *>L[l].W)
    if not isfinite(<floating>value):
        return <floating>value   # inf or NaN in the model's dtype
    _backward(L, n_layers, n, X, last.act if loss == LOSS_MSE else ACT_IDENTITY,
              <floating *>NULL, u, True)
    if u.apply and not u.fold:
        _apply(L, n_layers, u, <floating>1)
    return value


cdef void _gemms_only(Layer *L, int n_layers, int n, const floating *X,
                      floating lr) noexcept nogil:
    """The GEMM calls of one SGD step and nothing else: the step's floor. The
    weight update's GEMM (beta = 1) goes into dW instead of W."""
    cdef int l
    cdef const floating *inp
    for l in range(n_layers):
        inp = X if l == 0 else <floating *>L[l - 1].A
        # Z = X @ W
        gemm(False, False, n, L[l].d_out, L[l].d_in, <floating>1, inp, L[l].d_in,
             <floating *>L[l].W, L[l].d_out, <floating>0, <floating *>L[l].Z, L[l].d_out)
    for l in range(n_layers - 1, -1, -1):
        inp = X if l == 0 else <floating *>L[l - 1].A
        if l > 0:
            # dX = dZ @ W.T
            gemm(False, True, n, L[l].d_in, L[l].d_out, <floating>1, <floating *>L[l].delta,
                 L[l].d_out, <floating *>L[l].W, L[l].d_out, <floating>0,
                 <floating *>L[l - 1].delta, L[l].d_in)
        # dW = dW - lr * X.T @ dZ  (the step's W update, aimed at dW)
        gemm(True, False, L[l].d_in, L[l].d_out, n, -lr, inp, L[l].d_in,
             <floating *>L[l].delta, L[l].d_out, <floating>1, <floating *>L[l].dW, L[l].d_out)


cdef void _predict(Layer *L, int n_layers, int64_t n, int chunk, const floating *X,
                   floating *out, floating *buf0, floating *buf1) noexcept nogil:
    """Forward only, chunk rows at a time, through two ping-pong buffers."""
    cdef int64_t start
    cdef int rows, l
    cdef const floating *inp
    cdef floating *dst
    cdef int d_last = L[n_layers - 1].d_out
    start = 0
    while start < n:
        rows = <int>(n - start if n - start < chunk else chunk)
        inp = X + start * L[0].d_in
        for l in range(n_layers):
            if l == n_layers - 1:
                dst = out + start * d_last
            else:
                dst = buf0 if l % 2 == 0 else buf1
            dense_forward(rows, L[l].d_in, L[l].d_out, inp, <floating *>L[l].W,
                          <floating *>L[l].b, L[l].act, <floating>L[l].param, dst, dst)
            inp = dst
        start += rows


cdef double _epoch(Layer *L, int n_layers, int64_t n, const floating *X, const void *y,
                   const floating *w, int loss, const int64_t *order, int batch_size,
                   floating *X_batch, void *y_batch, floating *w_batch, Update *u,
                   int64_t *n_correct, int64_t *n_seen) noexcept nogil:
    """Mini-batches in `order`, gathered into the batch workspaces, one step each.

    Returns the sum over batches of (batch size * batch loss); stops after the
    first batch whose loss is not finite (n_seen tells how far it got).
    """
    cdef int64_t start, correct
    cdef int rows
    cdef int d_in = L[0].d_in, d_out = L[n_layers - 1].d_out
    cdef double total = 0, value
    n_correct[0] = 0
    n_seen[0] = 0
    start = 0
    while start < n:
        rows = <int>(n - start if n - start < batch_size else batch_size)
        gather_rows(rows, d_in, X, order + start, X_batch)
        if loss == LOSS_SOFTMAX_XENT_INT:
            fbp_gather_labels(rows, <const int64_t *>y, order + start, <int64_t *>y_batch)
        else:
            gather_rows(rows, d_out, <const floating *>y, order + start, <floating *>y_batch)
        if w != NULL:
            gather_rows(rows, 1, w, order + start, w_batch)
        value = _step(L, n_layers, rows, X_batch, y_batch, w_batch if w != NULL else NULL,
                      loss, u, &correct)
        total += value * rows
        n_correct[0] += correct
        n_seen[0] += rows
        start += rows
        if not isfinite(value):
            break
    return total


cdef class Engine:
    """Raw view of a plan for the compiled kernels. See CythonBackend."""
    cdef Layer *layers
    cdef int n_layers
    cdef bint is_double
    cdef int capacity
    cdef object arrays
    cdef object step_count
    cdef int64_t *t
    cdef uint64_t seed
    cdef bint last_training

    def __cinit__(self, list layers, bint is_double, int capacity, step_count, seed):
        """layers: one dict per dense layer with d_in, d_out, act, param, the arrays
        W, b, dW, db, Z, A, delta (workspaces of `capacity` rows) and W_s1, W_s2,
        b_s1, b_s2 (optimiser state, or None), keep (1 - dropout rate) with mask and
        D (workspaces, or None without dropout); step_count: int64 array of 1, the
        training steps taken; seed: the dropout seed."""
        self.n_layers = len(layers)
        self.is_double = is_double
        self.capacity = capacity
        self.arrays = layers
        self.step_count = step_count
        self.t = <int64_t *>_ptr(step_count)
        self.seed = <uint64_t>seed
        self.last_training = False
        self.layers = <Layer *>malloc(self.n_layers * sizeof(Layer))
        if self.layers == NULL:
            raise MemoryError("could not allocate the engine's layer table")
        for l, spec in enumerate(layers):
            self.layers[l].d_in = spec["d_in"]
            self.layers[l].d_out = spec["d_out"]
            self.layers[l].act = spec["act"]
            self.layers[l].param = spec["param"]
            self.layers[l].W = _ptr(spec["W"])
            self.layers[l].b = _ptr(spec["b"])
            self.layers[l].dW = _ptr(spec["dW"])
            self.layers[l].db = _ptr(spec["db"])
            self.layers[l].Z = _ptr(spec["Z"])
            self.layers[l].A = _ptr(spec["A"])
            self.layers[l].delta = _ptr(spec["delta"])
            for name in ("W_s1", "W_s2", "b_s1", "b_s2"):
                if spec[name] is not None and spec[name].size == 0:
                    raise ValueError(f"{name} is empty")
            self.layers[l].W_s1 = NULL if spec["W_s1"] is None else _ptr(spec["W_s1"])
            self.layers[l].W_s2 = NULL if spec["W_s2"] is None else _ptr(spec["W_s2"])
            self.layers[l].b_s1 = NULL if spec["b_s1"] is None else _ptr(spec["b_s1"])
            self.layers[l].b_s2 = NULL if spec["b_s2"] is None else _ptr(spec["b_s2"])
            self.layers[l].keep = spec["keep"]
            self.layers[l].mask = NULL if spec["mask"] is None else _ptr(spec["mask"])
            self.layers[l].D = NULL if spec["D"] is None else _ptr(spec["D"])
            if spec["keep"] < 1 and (spec["mask"] is None or spec["D"] is None):
                raise ValueError("a layer with dropout needs its mask and D workspaces")

    def __dealloc__(self):
        free(self.layers)

    def forward(self, X, int n, bint training):
        """Forward pass of n <= capacity rows of X (with dropout when training, at
        the current step's masks); outputs stay in the workspaces."""
        cdef void *x = _ptr(X)
        self.last_training = training
        with nogil:
            if self.is_double:
                _forward[double](self.layers, self.n_layers, n, <double *>x, training,
                                 self.seed, self.t[0])
            else:
                _forward[float](self.layers, self.n_layers, n, <float *>x, training,
                                self.seed, self.t[0])

    def backward(self, X, int n, dX):
        """Backward from the last layer's delta (already holding dA); dX may be None."""
        cdef void *x = _ptr(X)
        cdef void *dx = NULL if dX is None else _ptr(dX)
        cdef int last_act = self.layers[self.n_layers - 1].act
        cdef Update u = self._update(False, False, 0.0, 0.0, 0.0, (0, 0, 0.0, 0.0, 0.0, 0.0, 0.0))
        with nogil:
            if self.is_double:
                _backward[double](self.layers, self.n_layers, n, <double *>x, last_act,
                                  <double *>dx, &u, self.last_training)
            else:
                _backward[float](self.layers, self.n_layers, n, <float *>x, last_act,
                                 <float *>dx, &u, self.last_training)

    cdef Update _update(self, bint apply, bint fold, double l2, double clipnorm, double lr,
                        tuple hyper):
        """An Update from the optimiser's hyper() tuple:
        (kind, nesterov, momentum, beta1, beta2, eps, decay)."""
        cdef Update u
        u.apply = apply
        u.fold = fold
        u.l2 = l2
        u.clipnorm = clipnorm
        u.t = self.t
        u.seed = self.seed
        u.opt.kind, u.opt.nesterov, u.opt.momentum, u.opt.beta1, u.opt.beta2, u.opt.eps, \
            u.opt.decay = hyper
        u.opt.lr = lr
        u.opt.correction1 = u.opt.correction2 = 1
        return u

    def step(self, X, y, weights, int n, int loss, bint update, double lr, tuple hyper,
             double l2, double clipnorm, bint fold):
        """One batch: returns (mean loss + L2 term, n_correct). weights: per-row loss
        weights or None; hyper is the optimiser's hyper() tuple; fold says its step
        may go into the weight GEMM."""
        cdef void *x = _ptr(X)
        cdef void *t = _ptr(y)
        cdef void *w = NULL if weights is None else _ptr(weights)
        cdef int64_t n_correct = 0
        cdef double value
        cdef Update u = self._update(update, fold, l2, clipnorm, lr, hyper)
        with nogil:
            if self.is_double:
                value = _step[double](self.layers, self.n_layers, n, <double *>x, t,
                                      <double *>w, loss, &u, &n_correct)
            else:
                value = _step[float](self.layers, self.n_layers, n, <float *>x, t,
                                     <float *>w, loss, &u, &n_correct)
        return value, n_correct

    def epoch(self, X, y, weights, order, int batch_size, X_batch, y_batch, w_batch, int loss,
              double lr, tuple hyper, double l2, double clipnorm, bint fold):
        """One epoch: returns (sum of batch_rows * batch_loss, n_correct, n_seen).
        weights: per-row loss weights (gathered into w_batch) or None."""
        cdef void *x = _ptr(X)
        cdef void *t = _ptr(y)
        cdef void *w = NULL if weights is None else _ptr(weights)
        cdef void *wb = NULL if weights is None else _ptr(w_batch)
        cdef const int64_t *idx = <const int64_t *>_ptr(order)
        cdef void *xb = _ptr(X_batch)
        cdef void *yb = _ptr(y_batch)
        cdef int64_t n = order.shape[0], n_correct = 0, n_seen = 0
        cdef double total
        cdef Update u = self._update(True, fold, l2, clipnorm, lr, hyper)
        with nogil:
            if self.is_double:
                total = _epoch[double](self.layers, self.n_layers, n, <double *>x, t,
                                       <double *>w, loss, idx, batch_size, <double *>xb, yb,
                                       <double *>wb, &u, &n_correct, &n_seen)
            else:
                total = _epoch[float](self.layers, self.n_layers, n, <float *>x, t,
                                      <float *>w, loss, idx, batch_size, <float *>xb, yb,
                                      <float *>wb, &u, &n_correct, &n_seen)
        return total, n_correct, n_seen

    def gemm_floor(self, X, int n, double lr):
        """Run only the GEMMs of an SGD step on n rows (a benchmark yardstick)."""
        cdef void *x = _ptr(X)
        with nogil:
            if self.is_double:
                _gemms_only[double](self.layers, self.n_layers, n, <double *>x, lr)
            else:
                _gemms_only[float](self.layers, self.n_layers, n, <float *>x, <float>lr)

    def predict(self, X, out, buf0, buf1, int chunk):
        """Forward only over all rows of X into out, chunk rows at a time."""
        cdef void *x = _ptr(X)
        cdef void *o = _ptr(out)
        cdef void *b0 = _ptr(buf0)
        cdef void *b1 = _ptr(buf1)
        cdef int64_t n = X.shape[0]
        with nogil:
            if self.is_double:
                _predict[double](self.layers, self.n_layers, n, chunk, <double *>x,
                                 <double *>o, <double *>b0, <double *>b1)
            else:
                _predict[float](self.layers, self.n_layers, n, chunk, <float *>x,
                                <float *>o, <float *>b0, <float *>b1)

    def loss_sum(self, X, y, weights, int n, int loss):
        """Forward n <= capacity rows and return (summed weighted loss, n_correct)."""
        cdef void *x = _ptr(X)
        cdef void *t = _ptr(y)
        cdef void *w = NULL if weights is None else _ptr(weights)
        cdef Layer *last = &self.layers[self.n_layers - 1]
        cdef int64_t n_correct = 0
        cdef double total
        with nogil:
            if self.is_double:
                _forward[double](self.layers, self.n_layers, n, <double *>x, False, 0, 0)
                total = loss_forward_backward[double](loss, n, last.d_out, <double *>last.Z,
                                                      <double *>last.A, t, <double *>w, 1.0,
                                                      <double *>last.delta, &n_correct)
            else:
                _forward[float](self.layers, self.n_layers, n, <float *>x, False, 0, 0)
                total = loss_forward_backward[float](loss, n, last.d_out, <float *>last.Z,
                                                     <float *>last.A, t, <float *>w, 1.0,
                                                     <float *>last.delta, &n_correct)
        return total, n_correct
