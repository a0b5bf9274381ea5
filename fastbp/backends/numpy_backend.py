"""The NumPy backend: backpropagation written out plainly, one matrix expression per step.

It executes the same plan as the compiled backend and is the oracle the tests
check that backend against. The plan is a chain of nodes (fastbp/plan.py); each
has a forward rule and a backward rule that turns dA = dL/dA into dX = dL/dX
and the gradients of its own parameters. For a dense layer with activation f:

    forward:   Z = X @ W + b          A = f(Z)
    backward:  dZ = dA * f'(Z)        dW = X.T @ dZ    db = dZ.sum(axis=0)    dX = dZ @ W.T

X : (n_samples, d_in), W : (d_in, d_out), b : (d_out,), Z, A, dA, dZ : (n_samples, d_out).
"""

import numpy as np

from fastbp import losses, optimizers
from fastbp.activations import ACTIVATIONS as activation_specs
from fastbp.activations import SOFTMAX
from fastbp.plan import ACTIVATION, DENSE, DROPOUT, MAXOUT, PRELU

# --- activations: name -> (f(Z, param), f'(Z, A, param)) -------------------------------


def _sigmoid(Z, param):
    # exp of a non-positive number never overflows
    E = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + E), E / (1 + E))


def _softplus(Z, param):
    return np.maximum(Z, 0) + np.log1p(np.exp(-np.abs(Z)))


GELU_C, GELU_K = float(np.sqrt(2 / np.pi)), 0.044715  # Python floats keep float32 float32


def _gelu(Z, param):
    return 0.5 * Z * (1 + np.tanh(GELU_C * (Z + GELU_K * Z**3)))


def _gelu_grad(Z, A, param):
    t = np.tanh(GELU_C * (Z + GELU_K * Z**3))
    return 0.5 * (1 + t) + 0.5 * Z * (1 - t * t) * GELU_C * (1 + 3 * GELU_K * Z * Z)


def _silu_grad(Z, A, param):
    s = _sigmoid(Z, param)
    return s * (1 + Z * (1 - s))


def _inside(Z, low, high):
    """1 strictly inside (low, high), else 0: the slope of a clipped ramp."""
    return ((low < Z) & (high > Z)).astype(Z.dtype)


def _softmax(Z, param):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


# name -> (f(Z, param), f'(Z, A, param)) for the element-wise activations
RULES = {
    "identity": (lambda Z, p: Z, lambda Z, A, p: np.ones_like(Z)),
    "sigmoid": (_sigmoid, lambda Z, A, p: A * (1 - A)),
    "tanh": (lambda Z, p: np.tanh(Z), lambda Z, A, p: 1 - A * A),
    "relu": (lambda Z, p: np.maximum(Z, 0), lambda Z, A, p: (Z > 0).astype(Z.dtype)),
    "leaky_relu": (
        lambda Z, p: np.where(Z > 0, Z, Z * Z.dtype.type(p)),
        lambda Z, A, p: np.where(Z > 0, Z.dtype.type(1), Z.dtype.type(p)),
    ),
    "elu": (
        lambda Z, p: np.where(Z > 0, Z, Z.dtype.type(p) * np.expm1(np.minimum(Z, 0))),
        lambda Z, A, p: np.where(Z > 0, Z.dtype.type(1), A + Z.dtype.type(p)),
    ),
    "softplus": (_softplus, lambda Z, A, p: _sigmoid(Z, p)),
    "hard_sigmoid": (
        lambda Z, p: np.clip(0.25 * Z + 0.5, 0, 1).astype(Z.dtype),
        lambda Z, A, p: 0.25 * _inside(Z, -2, 2),
    ),
    "hard_tanh": (lambda Z, p: np.clip(Z, -1, 1), lambda Z, A, p: _inside(Z, -1, 1)),
    "silu": (lambda Z, p: Z * _sigmoid(Z, p), _silu_grad),
    "gelu": (_gelu, _gelu_grad),
}
# the same, by kernel code (fastbp/activations.py)
ACTIVATIONS = {activation_specs[name].code: rule for name, rule in RULES.items()}


def activate(code, Z, param):
    """A = f(Z) for activation `code`; softmax works on whole rows."""
    return _softmax(Z, param) if code == SOFTMAX else ACTIVATIONS[code][0](Z, param)


def activation_backward(code, Z, A, dA, param):
    """dZ from dA through A = f(Z). Element-wise f: dZ = dA * f'(Z). Softmax, whose
    row Jacobian is diag(s) - s s^T: dZ = S * (dA - rowsum(dA * S))."""
    if code == SOFTMAX:
        return A * (dA - np.sum(dA * A, axis=1, keepdims=True))
    return dA * ACTIVATIONS[code][1](Z, A, param)


# --- nodes: kind -> forward(backend, l, node, X, training) -> (Z, A) and
# backward(node, X, Z, A, dA, need_dX) -> dX. Z is what backward needs besides the
# input X and the output A: the affine output (dense, maxout) or the mask (dropout).
# What a kind is beyond its math (fastbp.plan.TRAITS) is read from its traits: a
# train_only node's forward runs in training only.


def _dense_forward(backend, l, node, X, training):
    W, b = node.params
    Z = X @ W.value + b.value
    return Z, activate(node.act, Z, node.act_param)


def _dense_backward(node, X, Z, A, dA, need_dX, skip_act=False):
    W, b = node.params
    dZ = dA if skip_act else activation_backward(node.act, Z, A, dA, node.act_param)
    W.grad[...] = X.T @ dZ
    b.grad[...] = dZ.sum(axis=0)
    return dZ @ W.value.T if need_dX else None


def maxout(Z, pieces):
    """A (n, units) = the largest of each unit's pieces, Z (n, units * pieces)."""
    return Z.reshape(len(Z), -1, pieces).max(axis=2)


def maxout_backward(Z, dA, pieces):
    """dZ (n, units * pieces): each unit's dA goes to its winning piece, the first
    one on a tie; the other pieces get 0."""
    Zp = Z.reshape(len(Z), -1, pieces)
    dZ = np.zeros_like(Zp)
    np.put_along_axis(dZ, Zp.argmax(axis=2)[:, :, None], dA[:, :, None], axis=2)
    return dZ.reshape(Z.shape)


def _maxout_forward(backend, l, node, X, training):
    W, b = node.params
    Z = X @ W.value + b.value
    return Z, maxout(Z, node.pieces)


def _maxout_backward(node, X, Z, A, dA, need_dX, skip_act=False):
    dZ = maxout_backward(Z, dA, node.pieces)
    return _dense_backward(node, X, None, None, dZ, need_dX, skip_act=True)


def _activation_forward(backend, l, node, X, training):
    return X, activate(node.act, X, node.act_param)


def _activation_backward(node, X, Z, A, dA, need_dX, skip_act=False):
    return activation_backward(node.act, X, A, dA, node.act_param) if need_dX else None


def prelu(Z, alpha):
    """A = Z where Z > 0, alpha * Z elsewhere; alpha (units,) broadcasts over rows."""
    return np.where(Z > 0, Z, alpha * Z)


def prelu_backward(Z, alpha, dA):
    """(dZ, dalpha): dZ = dA where Z > 0, alpha * dA elsewhere (alpha at 0, as
    PyTorch); dalpha = sum over rows of dA * min(Z, 0)."""
    return np.where(Z > 0, dA, alpha * dA), np.sum(dA * np.minimum(Z, 0), axis=0)


def _prelu_forward(backend, l, node, X, training):
    (alpha,) = node.params
    return X, prelu(X, alpha.value)


def _prelu_backward(node, X, Z, A, dA, need_dX, skip_act=False):
    (alpha,) = node.params
    dX, alpha.grad[...] = prelu_backward(X, alpha.value, dA)
    return dX if need_dX else None


def _dropout_forward(backend, l, node, X, training):
    # only run in training (the node is train_only): this step's mask
    mask = backend.dropout_mask(l, X.shape)
    return mask, X * mask


def _dropout_backward(node, X, mask, A, dA, need_dX, skip_act=False):
    if not need_dX:
        return None
    return dA if mask is None else dA * mask  # the gradient reached X * mask


NODES = {
    DENSE: (_dense_forward, _dense_backward),
    MAXOUT: (_maxout_forward, _maxout_backward),
    ACTIVATION: (_activation_forward, _activation_backward),
    PRELU: (_prelu_forward, _prelu_backward),
    DROPOUT: (_dropout_forward, _dropout_backward),
}


# --- losses: code -> f(Z, A, y) returning (loss of each row, dL/dout unscaled, n_correct)
# dout is dL/dA for MSE and dL/dZ for the fused losses, before the 1/N factor and any
# per-row weights.


def _softmax_xent_labels(Z, A, y):
    shifted = Z - Z.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    row_loss = np.log(total[:, 0]) - shifted[rows, y]
    dZ = exp / total
    dZ[rows, y] -= 1
    return row_loss, dZ, int(np.sum(Z.argmax(axis=1) == y))


def _softmax_xent_probabilities(Z, A, Y):
    shifted = Z - Z.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    log_softmax = shifted - np.log(total)
    row_loss = -np.sum(Y * log_softmax, axis=1, dtype=np.float64)
    return row_loss, exp / total - Y, int(np.sum(Z.argmax(axis=1) == Y.argmax(axis=1)))


def _softmax_kl(Z, A, Y):
    row_loss, dZ, correct = _softmax_xent_probabilities(Z, A, Y)
    entropy = -np.sum(Y * np.log(np.where(Y > 0, Y, 1)), axis=1, dtype=np.float64)
    return row_loss - entropy, dZ, correct


def _sigmoid_bce(Z, A, Y):
    # -y log s(z) - (1 - y) log(1 - s(z)) = max(z, 0) - y z + log(1 + exp(-|z|))
    row_loss = np.sum(
        np.maximum(Z, 0) - Y * Z + np.log1p(np.exp(-np.abs(Z))), axis=1, dtype=np.float64
    )
    return row_loss, A - Y, int(np.sum((A >= 0.5) == (Y >= 0.5)))


def _mse(Z, A, Y):
    diff = A - Y
    return 0.5 * np.sum(diff * diff, axis=1, dtype=np.float64), diff, 0


LOSSES = {
    losses.MSE: _mse,
    losses.SOFTMAX_XENT_INT: _softmax_xent_labels,
    losses.SOFTMAX_XENT_PROB: _softmax_xent_probabilities,
    losses.SIGMOID_BCE: _sigmoid_bce,
    losses.SOFTMAX_KL: _softmax_kl,
}


# --- optimisers: kind -> update(opt, w, g, state, lr, t) in place --------------------
# g already includes the L2 term and the clipping factor; state holds opt.n_state
# arrays shaped like w; t counts the steps taken, this one included.


def _sgd(opt, w, g, state, lr, t):
    if not opt.momentum:
        w -= lr * g
        return
    (v,) = state
    v *= opt.momentum
    v += g
    w -= lr * (g + opt.momentum * v if opt.nesterov else v)


def _adam(opt, w, g, state, lr, t):
    m, v = state
    m *= opt.beta1
    m += (1 - opt.beta1) * g
    v *= opt.beta2
    v += (1 - opt.beta2) * g * g
    m_hat = m / w.dtype.type(1 - opt.beta1**t)
    v_hat = v / w.dtype.type(1 - opt.beta2**t)
    w -= lr * m_hat / (np.sqrt(v_hat) + w.dtype.type(opt.eps))


def _rmsprop(opt, w, g, state, lr, t):
    (sq,) = state
    sq *= opt.rho
    sq += (1 - opt.rho) * g * g
    w -= lr * g / (np.sqrt(sq) + w.dtype.type(opt.eps))


def _adagrad(opt, w, g, state, lr, t):
    (sq,) = state
    sq += g * g
    w -= lr * g / (np.sqrt(sq) + w.dtype.type(opt.eps))


UPDATES = {
    optimizers.SGD_KIND: _sgd,
    optimizers.ADAM_KIND: _adam,
    optimizers.RMSPROP_KIND: _rmsprop,
    optimizers.ADAGRAD_KIND: _adagrad,
}


def uniform_stream(seed, stream, n, first=0):
    """n uniform numbers in [0, 1): the splitmix64 finaliser of counters
    first..first+n-1 of stream under seed, as fbp_dropout draws them from fbp_hash
    in csrc/fbp_kernels.h."""
    i = np.arange(first, first + n, dtype=np.uint64)
    # arrays, not scalars: uint64 arrays wrap around silently, as C does
    key = np.full(1, seed, dtype=np.uint64) ^ (
        np.full(1, stream, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    )
    x = key ^ (i * np.uint64(0xD1B54A32D192ED03))
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


class NumpyBackend:
    """Runs a plan (fastbp/plan.py) with NumPy. Same methods as CythonBackend."""

    name = "numpy"

    def __init__(self, plan):
        self.plan = plan
        self._inputs = []  # X fed to each node by the last forward pass
        self._Z = []
        self._A = []

    def _forward_pass(self, X, training):
        """(inputs, Zs, As): what each node received, its Z and its output."""
        inputs, Zs, As = [], [], []
        for l, node in enumerate(self.plan.nodes):
            Z, A = self._node_forward(l, node, X, training)
            inputs.append(X)
            Zs.append(Z)
            As.append(A)
            X = A
        return inputs, Zs, As

    def forward(self, X, training=False):
        """Forward pass; caches what backward needs. Returns the last A (n, d_out).

        In training, dropout nodes multiply by the mask drawn for this step."""
        self._inputs, self._Z, self._A = self._forward_pass(X, training)
        return self._A[-1]

    def invalidate(self):
        """The plan's optimiser state arrays were replaced: nothing to forget here,
        as every call reads the plan afresh."""

    def _node_forward(self, l, node, X, training):
        """(Z, A) of node l from its input X; a train-only node (dropout) passes X
        on unchanged outside training, with no Z."""
        if node.traits.train_only and not training:
            return None, X
        return NODES[node.kind][0](self, l, node, X, training)

    def dropout_mask(self, l, shape):
        """1/keep where uniform_stream(seed, step * 1024 + l) < keep, else 0, from
        element row_offset * width on (shape: (n_rows, width))."""
        node = self.plan.nodes[l]
        stream = np.uint64(int(self.plan.step_count[0]) * 1024 + l)
        first = int(self.plan.row_offset[0]) * shape[1]
        u = uniform_stream(self.plan.seed[0], stream, shape[0] * shape[1], first)
        u = u.reshape(shape)
        return np.where(u < node.keep, 1 / node.keep, 0).astype(self.plan.dtype)

    def activations(self):
        """Every node's output A (n, d_out) from the last forward pass."""
        return list(self._A)

    def backward(self, dout, need_dX=True, start=None, skip_act=False):
        """Backpropagate dout = dL/dA of node `start` (the last by default; dL/dZ
        of that dense node if skip_act).

        Writes every parameter gradient into the plan; returns dX (n, d_in) or None.
        """
        start = len(self.plan.nodes) - 1 if start is None else start
        delta = dout
        for l in range(start, -1, -1):
            node = self.plan.nodes[l]
            backward = NODES[node.kind][1]
            delta = backward(
                node,
                self._inputs[l],
                self._Z[l],
                self._A[l],
                delta,
                l > 0 or need_dX,
                skip_act and l == start,
            )
        return delta if need_dX else None

    def _loss(self, loss, out, y, weights, Zs, As):
        """(sum_i w_i loss_i, weighted dL/d(loss input) before 1/N, n_correct), and
        where backward starts: (node, skip_act). Zs, As: the forward pass's."""
        start, skip_act = self.plan.loss_head(loss != losses.MSE)
        logits = Zs[start] if skip_act else As[start]
        row_loss, dout, n_correct = LOSSES[loss](logits, out, y)
        if weights is None:
            total = np.sum(row_loss, dtype=np.float64)
        else:
            total, dout = np.sum(row_loss * weights, dtype=np.float64), dout * weights[:, None]
        return total, dout, n_correct, (start, skip_act)

    def _l2_term(self, l2):
        return (
            0.5
            * l2
            * sum(
                np.sum(p.value * p.value, dtype=np.float64) for p in self.plan.params() if p.decay
            )
        )

    def step(self, X, y, loss, opt, update, lr, weights=None):
        """Gradients of the mean (weighted) loss + l2/2 sum ||W||^2 on one batch
        (l2 = opt.l2), then (if update) one step of optimiser opt at rate lr.
        weights : per-row loss weights (n,) or None. Returns (loss, n_correct); a
        loss that is not finite in the model's dtype is returned at once, with no
        update."""
        n = len(X)
        if update:
            self.plan.step_count[0] += 1  # a new step: new dropout masks
        out = self.forward(X, training=True)
        loss_sum, dout, n_correct, (start, skip_act) = self._loss(
            loss, out, y, weights, self._Z, self._A
        )
        value = loss_sum / n
        if opt.l2:
            value += self._l2_term(opt.l2)
        if not np.isfinite(out.dtype.type(value)):
            return float(out.dtype.type(value)), n_correct  # overflowed the model's dtype
        self.backward(dout / out.dtype.type(n), need_dX=False, start=start, skip_act=skip_act)
        if opt.l2:
            for p in self.plan.params():
                if p.decay:
                    p.grad += p.value.dtype.type(opt.l2) * p.value
        if update:
            self._update(opt, lr)
        return value, n_correct

    def _update(self, opt, lr):
        """One step of opt from the plan's gradients, clipped by their global norm."""
        scale = 1.0
        if opt.clipnorm:
            norm = np.sqrt(sum(np.sum(g * g, dtype=np.float64) for g in self.plan.gradients()))
            scale = min(1.0, opt.clipnorm / norm) if norm > 0 else 1.0
        t = int(self.plan.step_count[0] - self.plan.optimizer_origin[0])
        lr = self.plan.dtype.type(lr)
        for p in self.plan.params():
            if opt.decoupled and opt.weight_decay and p.decay:
                p.value *= 1 - lr * p.value.dtype.type(opt.weight_decay)
            g = p.grad * p.value.dtype.type(scale) if scale != 1 else p.grad
            UPDATES[opt.kind](opt, p.value, g, p.state, lr, t)

    def epoch(self, X, y, order, batch_size, loss, opt, lr, weights=None, total=0.0):
        """One pass of mini-batch training in `order`. Returns (total + sum of
        batch_rows * batch_loss, n_correct, n_seen), stopping after a non-finite loss."""
        n_correct, n_seen = 0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            value, correct = self.step(
                X[idx], y[idx], loss, opt, True, lr, None if weights is None else weights[idx]
            )
            total += value * len(idx)
            n_correct += correct
            n_seen += len(idx)
            if not np.isfinite(value):
                break
        return total, n_correct, n_seen

    def predict(self, X):
        """Forward only: the last node's output (n, d_out). Keeps nothing (thread-safe)."""
        for l, node in enumerate(self.plan.nodes):
            X = self._node_forward(l, node, X, False)[1]
        return X

    def loss_sum(self, X, y, loss, weights=None):
        """Summed (weighted) loss over all rows and the number classified correctly.
        Keeps nothing, so that many threads may call it at once."""
        _, Zs, As = self._forward_pass(X, False)
        loss_sum, _, n_correct, _ = self._loss(loss, As[-1], y, weights, Zs, As)
        return loss_sum, n_correct
