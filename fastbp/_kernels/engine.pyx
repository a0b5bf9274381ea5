# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""The whole-model engine: a training step, an epoch, inference, each one nogil call.

An Engine is made by the Cython backend from a plan (fastbp/plan.py): it keeps
raw pointers to the plan's parameters, gradients and workspaces, plus a
reference to every array so none is freed while the engine lives. The backend
validates every array it passes in; the engine checks only the Python<->C contract
(docs/design.md §5): codes, and the dicts it fills structs from by field name.
"""
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.math cimport isfinite, sqrt, pow
from libc.stdint cimport uintptr_t
from cython cimport floating
cimport numpy as cnp
import numpy as np
from fastbp._kernels.csrc cimport (loss_forward_backward, sumsq, add_decay, optim_update, dropout,
                                   bias_act, act_backward, prelu_forward, prelu_backward,
                                   maxout_forward, maxout_backward, mul, fbp_optim, fbp_hyper,
                                   gather_rows, fbp_gather_labels)
from fastbp._kernels.codes cimport (FBP_ACT_IDENTITY, FBP_LOSS_MSE, FBP_LOSS_SOFTMAX_XENT_INT,
                                    FBP_NODE_DENSE, FBP_NODE_ACTIVATION, FBP_NODE_PRELU,
                                    FBP_NODE_MAXOUT, FBP_NODE_DROPOUT, FBP_OK, FBP_ERR_NODE)
from fastbp._kernels.dense cimport dense_forward, dense_backward, dense_backward_sgd
from fastbp._kernels.blas cimport gemm, set_gemm, set_small_path, set_thread_policy

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

# The integer codes of csrc/fbp_kernels.h by group and name, read off its enums
# (fastbp/_kernels/codes.pyx), and each group's C prefix: CODES["node"]["dense"] is
# FBP_NODE_DENSE. Checked against the Python registries when fastbp loads.
from fastbp._kernels.codes import CODES, PREFIXES  # no-cython-lint (re-exported)
from fastbp._kernels.codes import check_activation, check_code, status_error, KNOWN

LOSSES = KNOWN["loss"]
OPTIMIZERS = KNOWN["optimizer"]

cdef enum:
    MAX_PARAMS = 2   # parameter arrays per node

# All zero: plain SGD. Its field names, in order, are the keys Optimizer.hyper()
# must give (read off the struct declaration, not written out again).
cdef fbp_hyper NO_HYPER
HYPER_FIELDS = tuple(NO_HYPER)


cdef struct Traits:
    # what fastbp/plan.py NodeTraits says of a node's kind, filled by field name
    bint affine       # Z = X @ W + b: parameters W, b and a Z workspace
    bint elementwise  # d_out == d_in; shares the previous node's delta
    bint wide_z       # Z (width columns) is wider than A: a dZ workspace, scratch at inference
    bint has_mask     # a mask workspace
    bint train_only   # the identity outside training
    bint uses_act     # applies the activation code act


cdef Traits NO_TRAITS
TRAIT_FIELDS = tuple(NO_TRAITS)
# The structs filled from dicts by field name, with their fields (checked when fastbp loads).
STRUCT_FIELDS = {"fbp_hyper": HYPER_FIELDS, "Traits": TRAIT_FIELDS}


cdef struct Param:
    void *value     # the parameter array, updated in place
    void *grad      # its gradient, same shape
    void *s1        # optimiser state, same shape; NULL where the optimiser keeps fewer
    void *s2
    int64_t size
    bint decay      # L2 (coupled or decoupled) applies to it


cdef struct Node:
    int kind        # DENSE, ACTIVATION, PRELU, MAXOUT or DROPOUT: which math rule runs
    Traits traits   # what else the engine needs to know of the kind
    int d_in
    int d_out
    int width       # columns of Z: d_out, times pieces for MAXOUT
    int act         # DENSE, ACTIVATION: activation code and parameter
    double act_param
    int pieces      # MAXOUT
    double keep     # DROPOUT: 1 - rate
    int n_params
    Param p[MAX_PARAMS]   # DENSE, MAXOUT: W (d_in, width), b (width,); PRELU: alpha (d_out,)
    void *Z         # (capacity, width) affine output of DENSE and MAXOUT, else NULL
    void *A         # (capacity, d_out) output (Z itself for an identity DENSE)
    # delta: (capacity, d_out) dL/dA, then dL/dZ for DENSE; element-wise nodes after
    # the first share the previous node's
    void *delta
    void *dZ        # (capacity, width) MAXOUT: dL/dZ
    void *mask      # (capacity, d_out) DROPOUT: the last training pass's mask


cdef struct Update:
    bint apply        # take a step; otherwise compute the gradients only
    bint fold         # plain SGD: fold the step into the weight-gradient GEMM
    double l2         # coupled L2 strength (in the loss and in dW)
    double clipnorm   # rescale the gradients above this global norm; 0 for none
    fbp_optim opt     # kind, learning rate and hyper-parameters
    uint64_t seed     # the model's dropout seed
    int64_t *steps    # steps taken so far (dropout streams)
    int64_t first_row  # row 0's row in the global batch (dropout mask indices)
    int64_t origin    # the step count when the optimiser state began (Adam counts from it)
    int status        # the fbp_status bits of every kernel call so far (0: all known)


cdef inline void *_ptr(arr):
    """The data pointer of an ndarray (the backend has checked its type and layout)."""
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef inline void *_ptr_or_null(arr):
    """_ptr(arr), or NULL for None (an optional array)."""
    return NULL if arr is None else _ptr(arr)


cdef inline const void *_input(Node *L, int l, const void *X, bint training) noexcept nogil:
    """What node l reads: X for the first node, else the previous node's output,
    which is that node's input for a train-only node (dropout) outside training."""
    while l > 0:
        l -= 1
        if not L[l].traits.train_only or training:
            return L[l].A
    return X


cdef inline bint _folds(Node *node, const Update *u) noexcept nogil:
    """Whether this node's step is folded into its backward pass."""
    return u.apply and u.fold and node.traits.affine


cdef inline bint _all_folded(Node *L, int n_nodes) noexcept nogil:
    """Whether a folded SGD step leaves no parameter for _apply (no PReLU slopes)."""
    cdef int l
    for l in range(n_nodes):
        if L[l].n_params and not L[l].traits.affine:
            return False
    return True


cdef inline int _node_forward(const Node *node, int l, int n, const floating *inp,
                              floating *Z, floating *A, bint training, uint64_t seed,
                              int64_t step, int64_t first_row) noexcept nogil:
    """Node l's forward rule on n rows: inp (n, d_in) -> A (n, d_out), through Z
    (n, width) for DENSE (Z may be A) and MAXOUT (Z must be a buffer of its own).
    A dropout acts only in training, masked from stream step * 1024 + l under seed,
    its row r drawing the mask elements of row first_row + r of the global batch;
    outside it the node writes nothing and its readers take its input (_input).
    Returns the fbp_status."""
    cdef int status
    if node.kind == FBP_NODE_DENSE:
        return dense_forward(n, node.d_in, node.d_out, inp, <floating *>node.p[0].value,
                             <floating *>node.p[1].value, node.act, <floating>node.act_param, Z, A)
    if node.kind == FBP_NODE_MAXOUT:
        status = dense_forward(n, node.d_in, node.width, inp, <floating *>node.p[0].value,
                               <floating *>node.p[1].value, FBP_ACT_IDENTITY, <floating>0, Z, Z)
        maxout_forward(n, node.d_out, node.pieces, Z, A)
        return status
    if node.kind == FBP_NODE_ACTIVATION:
        # with no bias the kernel only reads its Z argument
        return bias_act(node.act, <floating>node.act_param, n, node.d_out, <floating *>NULL,
                        <floating *>inp, A)
    if node.kind == FBP_NODE_PRELU:
        prelu_forward(n, node.d_out, <floating *>node.p[0].value, inp, A)
        return FBP_OK
    if node.kind == FBP_NODE_DROPOUT:
        if training:
            dropout(<int64_t>n * node.d_out, node.keep, seed, <uint64_t>step * 1024 + l,
                    first_row * node.d_out, inp, <floating *>node.mask, A)
        return FBP_OK
    return FBP_ERR_NODE


cdef int _forward(Node *L, int n_nodes, int n, const floating *X, bint training,
                  uint64_t seed, int64_t step, int64_t first_row) noexcept nogil:
    """Forward through every node, into its workspaces Z and A; in training,
    dropout masks come from stream step * 1024 + node under seed, X's rows being
    rows first_row.. of the global batch. Returns the OR of the kernels' fbp_status."""
    cdef int l, status = FBP_OK
    for l in range(n_nodes):
        status |= _node_forward(&L[l], l, n, <const floating *>_input(L, l, X, training),
                                <floating *>L[l].Z, <floating *>L[l].A, training, seed, step,
                                first_row)
    return status


cdef int _affine_backward(Node *node, int n, const floating *inp, int act, floating *dZ,
                          floating *dinp, const Update *u) noexcept nogil:
    """Backward through the affine map of a DENSE or MAXOUT node (and a DENSE
    node's activation act): dZ holds dA on entry. Either writes dW, db (dW with
    the L2 term), or, when the SGD step is folded, steps W and b directly.
    Returns the activation's fbp_status."""
    cdef int status
    if _folds(node, u):
        return dense_backward_sgd(n, node.d_in, node.width, inp, <floating *>node.p[0].value,
                                  <floating *>node.p[1].value, <floating *>node.Z,
                                  <floating *>node.A, act, <floating>node.act_param, dZ,
                                  <floating *>node.p[1].grad, dinp, <floating>u.opt.lr,
                                  <floating>u.l2)
    status = dense_backward(n, node.d_in, node.width, inp, <floating *>node.p[0].value,
                            <floating *>node.Z, <floating *>node.A, act, <floating>node.act_param,
                            dZ, <floating *>node.p[0].grad, <floating *>node.p[1].grad, dinp)
    if u.l2 != 0:
        add_decay(node.p[0].size, <floating>u.l2, <floating *>node.p[0].value,
                  <floating *>node.p[0].grad)
    return status


cdef int _backward(Node *L, int start, int n, const floating *X, bint skip_act,
                   floating *dX, const Update *u, bint training) noexcept nogil:
    """Backpropagate node `start`'s delta (dA, or dZ of a DENSE node when skip_act)
    down to the first node; dX (may be NULL) receives dL/dX.

    With u.apply and u.fold, one SGD step is folded into each affine node's
    backward and its dW is not written. Otherwise every gradient is written, dW
    including l2 * W. Returns the OR of the kernels' fbp_status.
    """
    cdef int l, act, status = FBP_OK
    cdef const floating *inp
    cdef floating *dinp
    cdef Node *node
    for l in range(start, -1, -1):
        node = &L[l]
        inp = <const floating *>_input(L, l, X, training)
        dinp = dX if l == 0 else <floating *>L[l - 1].delta
        if node.kind == FBP_NODE_DENSE:
            act = FBP_ACT_IDENTITY if skip_act and l == start else node.act
            status |= _affine_backward(node, n, inp, act, <floating *>node.delta, dinp, u)
        elif node.kind == FBP_NODE_MAXOUT:
            maxout_backward(n, node.d_out, node.pieces, <floating *>node.Z,
                            <floating *>node.delta, <floating *>node.dZ)
            status |= _affine_backward(node, n, inp, FBP_ACT_IDENTITY, <floating *>node.dZ,
                                       dinp, u)
        elif node.kind == FBP_NODE_ACTIVATION:
            if dinp != NULL:
                status |= act_backward(node.act, <floating>node.act_param, n, node.d_out, inp,
                                       <floating *>node.A, <floating *>node.delta, dinp,
                                       <floating *>NULL)
        elif node.kind == FBP_NODE_PRELU:
            prelu_backward(n, node.d_out, <floating *>node.p[0].value, inp,
                           <floating *>node.delta, dinp, <floating *>node.p[0].grad)
        elif node.kind == FBP_NODE_DROPOUT:
            if dinp != NULL:
                # the gradient reached X * mask: dX = dA * mask
                mul(<int64_t>n * node.d_out, <floating *>node.delta,
                    <floating *>node.mask if training else <floating *>NULL, dinp)
        else:
            status |= FBP_ERR_NODE
    return status


cdef int _apply(Node *L, int n_nodes, Update *u, floating scale) noexcept nogil:
    """One optimiser step from the gradients; scale comes in as 1 and becomes
    min(1, clipnorm / global norm) when clipping is on. Parameters whose step was
    folded into the backward pass are skipped. Returns the OR of the updates'
    fbp_status."""
    cdef int l, k, status = FBP_OK
    cdef double norm = 0
    cdef fbp_optim undecayed
    cdef Param *p
    if u.clipnorm > 0:
        for l in range(n_nodes):
            for k in range(L[l].n_params):
                norm += sumsq(L[l].p[k].size, <floating *>L[l].p[k].grad)
        norm = sqrt(norm)
        if norm > u.clipnorm:
            scale = <floating>(u.clipnorm / norm)
    u.opt.correction1 = 1 - pow(u.opt.hyper.beta1, <double>(u.steps[0] - u.origin))
    u.opt.correction2 = 1 - pow(u.opt.hyper.beta2, <double>(u.steps[0] - u.origin))
    undecayed = u.opt
    undecayed.hyper.decay = 0   # biases and slopes are not decayed
    for l in range(n_nodes):
        if _folds(&L[l], u):
            continue
        for k in range(L[l].n_params):
            p = &L[l].p[k]
            status |= optim_update(&u.opt if p.decay else &undecayed, p.size, scale,
                                   <floating *>p.grad, <floating *>p.value, <floating *>p.s1,
                                   <floating *>p.s2)
    return status


cdef inline const floating *_logits(Node *L, int start, bint skip_act, const floating *X,
                                    bint training) noexcept nogil:
    """What the loss reads: Z of node `start` when its activation is skipped (a
    fused loss), otherwise that node's output."""
    if skip_act:
        return <const floating *>L[start].Z
    return <const floating *>_input(L, start + 1, X, training)


cdef double _step(Node *L, int n_nodes, int n, const floating *X, const void *y,
                  const floating *w, int loss, int head, bint head_skip, Update *u,
                  int64_t *n_correct) noexcept nogil:
    """Forward, loss, L2 term, backward, and (if u.apply) one optimiser step.

    head, head_skip: where a fused loss's gradient enters (Plan.loss_head).
    w: per-row loss weights or NULL. Returns the batch's mean (weighted) loss plus
    the L2 term, computed before the step. A loss that is not finite in the model's
    dtype is returned as such and nothing else is done, so the weights stay those
    that produced it (the caller's snapshot restores the step count). The kernels'
    fbp_status goes into u.status; after an unknown code nothing more is done.
    """
    cdef Node *last = &L[n_nodes - 1]
    cdef int l, k, start = n_nodes - 1
    cdef bint skip = False
    cdef double value
    if loss != FBP_LOSS_MSE:
        start, skip = head, head_skip
    if u.apply:
        u.steps[0] += 1
    u.status |= _forward(L, n_nodes, n, X, True, u.seed, u.steps[0], u.first_row)
    value = loss_forward_backward(loss, n, last.d_out, _logits(L, start, skip, X, True),
                                  <floating *>last.A, y, w, <floating>(1.0 / n),
                                  <floating *>L[start].delta, n_correct, &u.status) / n
    if u.status:
        return value
    if u.l2 != 0:
        for l in range(n_nodes):
            for k in range(L[l].n_params):
                if L[l].p[k].decay:
                    value += 0.5 * u.l2 * sumsq(L[l].p[k].size, <floating *>L[l].p[k].value)
    if not isfinite(<floating>value):
        return <floating>value   # inf or NaN in the model's dtype
    u.status |= _backward(L, start, n, X, skip, <floating *>NULL, u, True)
    if u.apply and not u.status and not (u.fold and _all_folded(L, n_nodes)):
        u.status |= _apply(L, n_nodes, u, <floating>1)
    return value


cdef void _gemms_only(Node *L, int n_nodes, int n, const floating *X,
                      floating lr) noexcept nogil:
    """The GEMM calls of one SGD step and nothing else: the step's floor. The
    weight update's GEMM (beta = 1) goes into dW instead of W."""
    cdef int l
    cdef const floating *inp
    cdef floating *dZ
    for l in range(n_nodes):
        if L[l].traits.affine:
            inp = <const floating *>_input(L, l, X, False)
            # Z = X @ W
            gemm(False, False, n, L[l].width, L[l].d_in, <floating>1, inp, L[l].d_in,
                 <floating *>L[l].p[0].value, L[l].width, <floating>0, <floating *>L[l].Z,
                 L[l].width)
    for l in range(n_nodes - 1, -1, -1):
        if not L[l].traits.affine:
            continue
        inp = <const floating *>_input(L, l, X, False)
        dZ = <floating *>(L[l].dZ if L[l].traits.wide_z else L[l].delta)
        if l > 0:
            # dX = dZ @ W.T
            gemm(False, True, n, L[l].d_in, L[l].width, <floating>1, dZ, L[l].width,
                 <floating *>L[l].p[0].value, L[l].width, <floating>0,
                 <floating *>L[l - 1].delta, L[l].d_in)
        # dW = dW - lr * X.T @ dZ  (the step's W update, aimed at dW)
        gemm(True, False, L[l].d_in, L[l].width, n, -lr, inp, L[l].d_in, dZ, L[l].width,
             <floating>1, <floating *>L[l].p[0].grad, L[l].width)


cdef int _predict(Node *L, int n_nodes, int64_t n, int chunk, const floating *X,
                  floating *out, floating *buf0, floating *buf1,
                  floating *scratch) noexcept nogil:
    """Forward only, chunk rows at a time, through two ping-pong buffers (and a
    scratch buffer for maxout's pieces); dropout is the identity here. Returns the
    OR of the kernels' fbp_status."""
    cdef int64_t start
    cdef int rows, l, k, status = FBP_OK
    cdef const floating *inp
    cdef floating *dst
    cdef Node *node
    start = 0
    while start < n:
        rows = <int>(n - start if n - start < chunk else chunk)
        inp = X + start * L[0].d_in
        k = 0
        for l in range(n_nodes):
            node = &L[l]
            if node.traits.train_only:
                continue
            if l == n_nodes - 1:
                dst = out + start * node.d_out
            else:
                dst = buf0 if k % 2 == 0 else buf1
            k += 1
            # a Z wider than the output (maxout's pieces) goes to the scratch buffer
            status |= _node_forward(node, l, rows, inp, scratch if node.traits.wide_z else dst,
                                    dst, False, 0, 0, 0)
            inp = dst
        start += rows
    return status


cdef double _epoch(Node *L, int n_nodes, int64_t n, const floating *X, const void *y,
                   const floating *w, int loss, int head, bint head_skip,
                   const int64_t *order, int batch_size, floating *X_batch, void *y_batch,
                   floating *w_batch, Update *u, double total, int64_t *n_correct,
                   int64_t *n_seen) noexcept nogil:
    """Mini-batches in `order`, gathered into the batch workspaces, one step each.

    Returns total plus, added batch after batch, (batch size * batch loss); stops after the
    first batch whose loss is not finite, or that met an unknown code (u.status),
    and n_seen tells how far it got.
    """
    cdef int64_t start, correct
    cdef int rows
    cdef int d_in = L[0].d_in, d_out = L[n_nodes - 1].d_out
    cdef double value
    n_correct[0] = 0
    n_seen[0] = 0
    start = 0
    while start < n:
        rows = <int>(n - start if n - start < batch_size else batch_size)
        gather_rows(rows, d_in, X, order + start, X_batch)
        if loss == FBP_LOSS_SOFTMAX_XENT_INT:
            fbp_gather_labels(rows, <const int64_t *>y, order + start, <int64_t *>y_batch)
        else:
            gather_rows(rows, d_out, <const floating *>y, order + start, <floating *>y_batch)
        if w != NULL:
            gather_rows(rows, 1, w, order + start, w_batch)
        value = _step(L, n_nodes, rows, X_batch, y_batch, w_batch if w != NULL else NULL,
                      loss, head, head_skip, u, &correct)
        total += value * rows
        n_correct[0] += correct
        n_seen[0] += rows
        start += rows
        if u.status or not isfinite(value):
            break
    return total


HYPER_STRUCT = "fbp_hyper in csrc/fbp_kernels.h"
TRAITS_STRUCT = "Traits in fastbp/_kernels/engine.pyx"


def _field_problems(str what, given, fields, str struct):
    """The ValueError for a dict that does not have exactly the keys `fields` of
    the C struct `struct` (named with where it is declared), naming what is missing
    and what is unknown."""
    missing = [name for name in fields if name not in given]
    unknown = [name for name in given if name not in fields]
    said = [f"no {name!r}" for name in missing] + [f"an unknown key {name!r}" for name in unknown]
    return ValueError(f"{what} has {' and '.join(said)}; expected exactly the fields of "
                      f"{struct}: {', '.join(fields)}")


cdef fbp_hyper _hyper_struct(dict hyper) except *:
    """The fbp_hyper filled from Optimizer.hyper()'s dict by field name; a missing
    or unknown key is a ValueError naming it."""
    cdef fbp_hyper h
    if len(hyper) != len(HYPER_FIELDS):   # all present (checked below) and no more
        raise _field_problems("the optimiser's hyper()", hyper, HYPER_FIELDS, HYPER_STRUCT)
    try:
        h = hyper
    except ValueError:   # Cython's dict -> struct conversion: a field has no key
        raise _field_problems("the optimiser's hyper()", hyper, HYPER_FIELDS,
                              HYPER_STRUCT) from None
    if h.kind not in OPTIMIZERS:
        check_code("optimizer", h.kind, "the optimiser's hyper()['kind']")
    return h


cdef Traits _traits_struct(dict traits, int l) except *:
    """The Traits filled from NodeTraits.as_dict() by field name; a missing or
    unknown key is a ValueError naming it."""
    cdef Traits flags
    what = f"node {l}'s traits"
    if len(traits) != len(TRAIT_FIELDS):
        raise _field_problems(what, traits, TRAIT_FIELDS, TRAITS_STRUCT)
    try:
        flags = traits
    except ValueError:
        raise _field_problems(what, traits, TRAIT_FIELDS, TRAITS_STRUCT) from None
    return flags


cdef inline int _loss_code(int loss) except -1:
    """loss, checked to be one of the FBP_LOSS_* codes."""
    if loss not in LOSSES:
        check_code("loss", loss, "the loss code")
    return loss


cdef inline int _checked(int status, str where) except -1:
    """Raise status_error for a nonzero fbp_status, once the GIL is held again."""
    if status:
        raise status_error(status, where)
    return 0


cdef class Engine:
    """Raw view of a plan for the compiled kernels. See CythonBackend."""
    cdef Node *nodes
    cdef int n_nodes
    cdef int head
    cdef bint head_skip
    cdef bint is_double
    cdef int capacity
    cdef object arrays
    cdef object step_count
    cdef int64_t *steps
    cdef object row_offset
    cdef int64_t *first_row
    cdef object origin
    cdef uint64_t seed
    cdef bint last_training

    def __cinit__(self, list nodes, tuple head, bint is_double, int capacity, step_count, seed,
                  origin, row_offset=None):
        """nodes: one dict per plan node with kind, traits (fastbp.plan.NodeTraits as
        a dict), d_in, d_out, width, act, act_param, pieces, keep, params (a list of at
        most two dicts with value, grad, s1, s2 (state arrays or None) and decay) and
        the workspaces Z, A, delta, dZ, mask (`capacity` rows, or None where the kind
        has none); head: (node, skip_act), where a fused loss's gradient enters;
        step_count: int64 array of 1, the training steps taken; seed: the dropout
        seed; origin: int64 array of 1, the step count when the optimiser's state
        began (read at every call); row_offset: int64 array of 1 (read at every
        call, zeros when None), the global batch row of a batch's row 0, which
        places the dropout masks of a slice of that batch. An unknown node kind, or
        an activation code the element-wise kernels do not compute, is a ValueError."""
        cdef Node *node
        cdef Param *p
        self.n_nodes = len(nodes)
        self.head, self.head_skip = head
        self.is_double = is_double
        self.capacity = capacity
        self.arrays = nodes
        self.step_count = step_count
        self.steps = <int64_t *>_ptr(step_count)
        self.origin = origin
        self.row_offset = np.zeros(1, dtype=np.int64) if row_offset is None else row_offset
        self.first_row = <int64_t *>_ptr(self.row_offset)
        self.seed = <uint64_t>seed
        self.last_training = False
        self.nodes = <Node *>malloc(self.n_nodes * sizeof(Node))
        if self.nodes == NULL:
            raise MemoryError("could not allocate the engine's node table")
        for l, spec in enumerate(nodes):
            node = &self.nodes[l]
            check_code("node", spec["kind"], f"node {l}'s kind")
            check_activation(spec["act"], f"node {l}'s activation code")
            node.kind = spec["kind"]
            node.traits = _traits_struct(spec["traits"], l)
            node.d_in, node.d_out, node.width = spec["d_in"], spec["d_out"], spec["width"]
            node.act, node.act_param = spec["act"], spec["act_param"]
            node.pieces, node.keep = spec["pieces"], spec["keep"]
            if len(spec["params"]) > MAX_PARAMS:
                raise ValueError(f"a node has at most {MAX_PARAMS} parameter arrays")
            node.n_params = len(spec["params"])
            for k, param in enumerate(spec["params"]):
                p = &node.p[k]
                for name in ("s1", "s2"):
                    if param[name] is not None and param[name].size != param["value"].size:
                        raise ValueError(f"optimiser state {name} does not match its parameter")
                p.value, p.grad = _ptr(param["value"]), _ptr(param["grad"])
                p.s1 = _ptr_or_null(param["s1"])
                p.s2 = _ptr_or_null(param["s2"])
                p.size = param["value"].size
                p.decay = param["decay"]
            for name, needed in (("Z", node.traits.affine), ("dZ", node.traits.wide_z),
                                 ("mask", node.traits.has_mask)):
                if needed and spec[name] is None:
                    raise ValueError(f"node {l} (kind {node.kind}) needs its {name} workspace")
            node.Z = _ptr_or_null(spec["Z"])
            node.A = _ptr(spec["A"])
            node.delta = _ptr(spec["delta"])
            node.dZ = _ptr_or_null(spec["dZ"])
            node.mask = _ptr_or_null(spec["mask"])

    def __dealloc__(self):
        free(self.nodes)

    def forward(self, X, int n, bint training):
        """Forward pass of n <= capacity rows of X (with dropout when training, at
        the current step's masks); outputs stay in the workspaces."""
        cdef void *x = _ptr(X)
        cdef int status
        self.last_training = training
        with nogil:
            if self.is_double:
                status = _forward[double](self.nodes, self.n_nodes, n, <double *>x, training,
                                          self.seed, self.steps[0], self.first_row[0])
            else:
                status = _forward[float](self.nodes, self.n_nodes, n, <float *>x, training,
                                         self.seed, self.steps[0], self.first_row[0])
        _checked(status, "Engine.forward")

    def backward(self, X, int n, dX):
        """Backward from the last node's delta (already holding dA); dX may be None."""
        cdef void *x = _ptr(X)
        cdef void *dx = _ptr_or_null(dX)
        cdef Update u = self._update(False, False, 0.0, 0.0, 0.0, NO_HYPER)
        cdef int status
        with nogil:
            if self.is_double:
                status = _backward[double](self.nodes, self.n_nodes - 1, n, <double *>x, False,
                                           <double *>dx, &u, self.last_training)
            else:
                status = _backward[float](self.nodes, self.n_nodes - 1, n, <float *>x, False,
                                          <float *>dx, &u, self.last_training)
        _checked(status, "Engine.backward")

    cdef Update _update(self, bint apply, bint fold, double l2, double clipnorm, double lr,
                        fbp_hyper hyper):
        """An Update with the optimiser's hyper-parameters; lr and the bias
        corrections are the engine's to set."""
        cdef Update u
        u.apply = apply
        u.fold = fold
        u.l2 = l2
        u.clipnorm = clipnorm
        u.steps = self.steps
        u.first_row = self.first_row[0]
        u.origin = self.origin[0]
        u.seed = self.seed
        u.opt.hyper = hyper
        u.opt.lr = lr
        u.opt.correction1 = u.opt.correction2 = 1
        u.status = FBP_OK
        return u

    cdef Update _training_update(self, int loss, bint apply, bint fold, double l2,
                                 double clipnorm, double lr, dict hyper):
        """_update for a step or an epoch, once loss and hyper are known to the C
        kernels (ValueError otherwise)."""
        _loss_code(loss)
        return self._update(apply, fold, l2, clipnorm, lr, _hyper_struct(hyper))

    def step(self, X, y, weights, int n, int loss, bint update, double lr, dict hyper,
             double l2, double clipnorm, bint fold):
        """One batch: returns (mean loss + L2 term, n_correct). weights: per-row loss
        weights or None; hyper is the optimiser's hyper() dict; fold says its step
        may go into the weight GEMM. An unknown loss code or optimiser kind is a
        ValueError."""
        cdef void *x = _ptr(X)
        cdef void *targets = _ptr(y)
        cdef void *w = _ptr_or_null(weights)
        cdef int64_t n_correct = 0
        cdef double value
        cdef Update u = self._training_update(loss, update, fold, l2, clipnorm, lr, hyper)
        with nogil:
            if self.is_double:
                value = _step[double](self.nodes, self.n_nodes, n, <double *>x, targets,
                                      <double *>w, loss, self.head, self.head_skip, &u,
                                      &n_correct)
            else:
                value = _step[float](self.nodes, self.n_nodes, n, <float *>x, targets,
                                     <float *>w, loss, self.head, self.head_skip, &u,
                                     &n_correct)
        _checked(u.status, "Engine.step")
        return value, n_correct

    def epoch(self, X, y, weights, order, int batch_size, X_batch, y_batch, w_batch, int loss,
              double lr, dict hyper, double l2, double clipnorm, bint fold,
              double total=0.0):
        """One epoch: returns (total + sum of batch_rows * batch_loss, n_correct, n_seen),
        the sum taken onto total batch after batch (an epoch split into calls sums as
        one call does).
        weights: per-row loss weights (gathered into w_batch) or None. An unknown
        loss code or optimiser kind is a ValueError."""
        cdef void *x = _ptr(X)
        cdef void *targets = _ptr(y)
        cdef void *w = _ptr_or_null(weights)
        cdef void *wb = NULL if weights is None else _ptr(w_batch)
        cdef const int64_t *idx = <const int64_t *>_ptr(order)
        cdef void *xb = _ptr(X_batch)
        cdef void *yb = _ptr(y_batch)
        cdef int64_t n = order.shape[0], n_correct = 0, n_seen = 0
        cdef Update u = self._training_update(loss, True, fold, l2, clipnorm, lr, hyper)
        with nogil:
            if self.is_double:
                total = _epoch[double](self.nodes, self.n_nodes, n, <double *>x, targets,
                                       <double *>w, loss, self.head, self.head_skip, idx,
                                       batch_size, <double *>xb, yb, <double *>wb, &u,
                                       total, &n_correct, &n_seen)
            else:
                total = _epoch[float](self.nodes, self.n_nodes, n, <float *>x, targets,
                                      <float *>w, loss, self.head, self.head_skip, idx,
                                      batch_size, <float *>xb, yb, <float *>wb, &u,
                                      total, &n_correct, &n_seen)
        _checked(u.status, "Engine.epoch")
        return total, n_correct, n_seen

    def gemm_floor(self, X, int n, double lr):
        """Run only the GEMMs of an SGD step on n rows (a benchmark yardstick)."""
        cdef void *x = _ptr(X)
        with nogil:
            if self.is_double:
                _gemms_only[double](self.nodes, self.n_nodes, n, <double *>x, lr)
            else:
                _gemms_only[float](self.nodes, self.n_nodes, n, <float *>x, <float>lr)

    def predict(self, X, out, buf0, buf1, scratch, int chunk):
        """Forward only over all rows of X into out, chunk rows at a time; buf0,
        buf1, scratch hold chunk rows of the widest node each."""
        cdef void *x = _ptr(X)
        cdef void *o = _ptr(out)
        cdef void *b0 = _ptr(buf0)
        cdef void *b1 = _ptr(buf1)
        cdef void *sc = _ptr(scratch)
        cdef int64_t n = X.shape[0]
        cdef int status
        with nogil:
            if self.is_double:
                status = _predict[double](self.nodes, self.n_nodes, n, chunk, <double *>x,
                                          <double *>o, <double *>b0, <double *>b1,
                                          <double *>sc)
            else:
                status = _predict[float](self.nodes, self.n_nodes, n, chunk, <float *>x,
                                         <float *>o, <float *>b0, <float *>b1, <float *>sc)
        _checked(status, "Engine.predict")

    def loss_sum(self, X, y, weights, int n, int loss):
        """Forward n <= capacity rows and return (summed weighted loss, n_correct);
        an unknown loss code is a ValueError."""
        cdef void *x = _ptr(X)
        cdef void *targets = _ptr(y)
        cdef void *w = _ptr_or_null(weights)
        cdef Node *last = &self.nodes[self.n_nodes - 1]
        cdef int start = self.n_nodes - 1
        cdef bint skip = False
        cdef int64_t n_correct = 0
        cdef double total
        cdef int status
        if _loss_code(loss) != FBP_LOSS_MSE:
            start, skip = self.head, self.head_skip
        with nogil:
            if self.is_double:
                status = _forward[double](self.nodes, self.n_nodes, n, <double *>x, False, 0, 0, 0)
                total = loss_forward_backward[double](
                    loss, n, last.d_out,
                    _logits[double](self.nodes, start, skip, <double *>x, False),
                    <double *>last.A, targets, <double *>w, 1.0, <double *>self.nodes[start].delta,
                    &n_correct, &status)
            else:
                status = _forward[float](self.nodes, self.n_nodes, n, <float *>x, False, 0, 0, 0)
                total = loss_forward_backward[float](
                    loss, n, last.d_out, _logits[float](self.nodes, start, skip, <float *>x, False),
                    <float *>last.A, targets, <float *>w, 1.0, <float *>self.nodes[start].delta,
                    &n_correct, &status)
        _checked(status, "Engine.loss_sum")
        return total, n_correct


# The GEMM provider (fastbp.gemm): SciPy's BLAS until fastbp.gemm.use() says otherwise.
set_gemm(0, 0)


def _set_gemm(uintptr_t sgemm_address, uintptr_t dgemm_address):
    """Route this module's GEMMs to these Fortran-convention sgemm/dgemm addresses
    (fastbp.gemm.use does it for every module); 0, 0 restores SciPy's."""
    set_gemm(sgemm_address, dgemm_address)


def _set_small_path(double small_flops):
    """GEMMs of at most small_flops operations (2 m n k) run in fastbp's own
    register-blocked loops, not the provider (fastbp.gemm does it for every
    module); 0 sends every GEMM to the provider."""
    set_small_path(small_flops)


def _set_thread_policy(uintptr_t set_local_address, double serial_flops):
    """GEMMs of fewer than serial_flops operations (2 m n k) run on one thread, set
    through this calling-thread setter (fastbp.gemm.use does it for every module);
    0 for either runs every GEMM on the caller's thread count."""
    set_thread_policy(set_local_address, serial_flops)
