"""The plan: a built Sequential flattened into the nodes the backends execute.

A node is one operation of the forward pass, mapping (n, d_in) to (n, d_out):

    DENSE       Z = X @ W + b, A = f(Z)  (f element-wise, or the row-wise softmax)
    ACTIVATION  A = f(X)
    PRELU       A = X where X > 0, alpha * X elsewhere
    MAXOUT      Z = X @ W + b (n, d_out * pieces), A = max over each unit's pieces
    DROPOUT     A = X * mask in training, X itself at inference

Layers map to nodes one to one, except Dense(activation="prelu"), which becomes a
DENSE node (identity) and a PRELU node. Each node keeps its parameters (shared with
the layer, updated in place), their gradients and optimiser state, and workspaces
sized for `capacity` rows, grown only when a larger batch arrives.
"""

import dataclasses
from types import SimpleNamespace

import numpy as np

from fastbp.activations import ACTIVATIONS
from fastbp.layers import Activation, Dense, Dropout, Maxout, PReLU

# Node kinds: the FBP_NODE_* enum of csrc/fbp_kernels.h, checked against KINDS when
# the compiled backend loads.
DENSE, ACTIVATION, PRELU, MAXOUT, DROPOUT = range(5)
KINDS = {
    "dense": DENSE,
    "activation": ACTIVATION,
    "prelu": PRELU,
    "maxout": MAXOUT,
    "dropout": DROPOUT,
}
IDENTITY = ACTIVATIONS["identity"].code


@dataclasses.dataclass(frozen=True)
class NodeTraits:
    """What the backends know of a node kind besides its own math (which is one
    rule per kind).

    affine : Z = X @ W + b, with parameters W (d_in, width), b (width,) and a Z
        workspace (capacity, width).
    elementwise : d_out == d_in and the gradient can be computed in place, so the
        node shares the previous node's delta.
    wide_z : Z has d_out * pieces columns, more than A: its gradient needs a dZ
        workspace of its own, and inference a scratch buffer for it.
    has_mask : a mask workspace (capacity, d_out) keeps the training pass's mask.
    train_only : the identity outside training; inference passes its input on.
    uses_act : applies the activation code act, with its parameter param.
    """

    affine: bool = False
    elementwise: bool = False
    wide_z: bool = False
    has_mask: bool = False
    train_only: bool = False
    uses_act: bool = False

    def as_dict(self):
        """{trait: value}, as the compiled engine takes them (by field name)."""
        return dataclasses.asdict(self)


TRAITS = {
    DENSE: NodeTraits(affine=True, uses_act=True),
    ACTIVATION: NodeTraits(elementwise=True, uses_act=True),
    PRELU: NodeTraits(elementwise=True),
    MAXOUT: NodeTraits(affine=True, wide_z=True),
    DROPOUT: NodeTraits(elementwise=True, has_mask=True, train_only=True),
}


class Param:
    """One parameter array: value (updated in place), grad, the optimiser's state
    arrays (same shape), its name, the 1-based layer it belongs to, and whether
    L2 decays it."""

    def __init__(self, value, name, layer, decay, n_state):
        self.value = value
        self.grad = np.zeros_like(value)
        self.state = [np.zeros_like(value) for _ in range(n_state)]
        self.name = name
        self.layer = layer
        self.decay = decay


class Node:
    """One node as the backends see it.

    kind : DENSE, ACTIVATION, PRELU, MAXOUT or DROPOUT; d_in, d_out : widths;
    act, param, activation : the activation code, its parameter and name (DENSE,
    ACTIVATION); pieces (MAXOUT); keep = 1 - rate (DROPOUT); params : list of Param.
    Workspaces of `capacity` rows: Z (DENSE, MAXOUT: the affine output, of width
    d_out * pieces for MAXOUT), A (d_out; Z itself for an identity DENSE), delta
    (dL/dA, d_out; shared with the previous node's for element-wise nodes after
    the first), dZ (MAXOUT), mask (DROPOUT).
    """

    def __init__(
        self,
        kind,
        d_in,
        d_out,
        params=(),
        act=0,
        act_param=0.0,
        activation="identity",
        pieces=1,
        keep=1.0,
    ):
        self.kind, self.d_in, self.d_out = kind, d_in, d_out
        self.params = list(params)
        self.act, self.act_param, self.activation = act, act_param, activation
        self.pieces, self.keep = pieces, keep
        self.Z = self.A = self.delta = self.dZ = self.mask = None

    @property
    def width(self):
        """Columns of Z: d_out, times pieces for maxout."""
        return self.d_out * self.pieces

    @property
    def traits(self):
        """The NodeTraits of this node's kind."""
        return TRAITS[self.kind]

    def workspace(self, capacity, dtype, previous):
        """This node's workspaces for capacity rows, as a namespace with Z, A, delta,
        dZ and mask (None where the kind has none); previous is the namespace of
        the node before (or None)."""

        def rows(width):
            return np.zeros((capacity, width), dtype=dtype)

        traits = self.traits
        ws = SimpleNamespace(Z=None, A=None, delta=None, dZ=None, mask=None)
        if traits.affine:
            ws.Z = rows(self.width)
        # an affine node with no activation to apply outputs Z itself
        aliases_z = traits.affine and traits.uses_act and self.act == IDENTITY
        ws.A = ws.Z if aliases_z else rows(self.d_out)
        shares = traits.elementwise and previous is not None
        ws.delta = previous.delta if shares else rows(self.d_out)
        if traits.wide_z:
            ws.dZ = rows(self.width)
        if traits.has_mask:
            ws.mask = rows(self.d_out)
        return ws


def _param(layer, name, number, n_state):
    """The Param for the layer's array `name`; L2 decays it if the layer says so."""
    return Param(getattr(layer, name), name, number, name in layer.decayed, n_state)


def _dense_nodes(layer, number, d_in, n_state):
    W, b = (_param(layer, name, number, n_state) for name in ("W", "b"))
    act = layer.activation
    if not act.spec.learnable:
        return [Node(DENSE, d_in, layer.units, [W, b], act.code, act.param, act.name)]
    alpha = _param(layer, "alpha", number, n_state)
    return [
        Node(DENSE, d_in, layer.units, [W, b]),
        Node(PRELU, layer.units, layer.units, [alpha], activation="prelu"),
    ]


def _maxout_nodes(layer, number, d_in, n_state):
    params = [_param(layer, name, number, n_state) for name in ("W", "b")]
    return [Node(MAXOUT, d_in, layer.units, params, activation="maxout", pieces=layer.pieces)]


def _activation_nodes(layer, number, d_in, n_state):
    act = layer.activation
    return [Node(ACTIVATION, d_in, d_in, act=act.code, act_param=act.param, activation=act.name)]


def _prelu_nodes(layer, number, d_in, n_state):
    return [Node(PRELU, d_in, d_in, [_param(layer, "alpha", number, n_state)], activation="prelu")]


def _dropout_nodes(layer, number, d_in, n_state):
    return [Node(DROPOUT, d_in, d_in, activation="dropout", keep=1.0 - layer.rate)]


NODES = {
    Dense: _dense_nodes,
    Maxout: _maxout_nodes,
    Activation: _activation_nodes,
    PReLU: _prelu_nodes,
    Dropout: _dropout_nodes,
}


class Plan:
    """layers : the model's layers, built; input_dim : their input width; dtype :
    float32 or float64; n_state : state arrays the optimiser keeps per parameter
    array; seed : the dropout masks' seed."""

    def __init__(self, layers, input_dim, dtype, optimizer_layout=("SGD", 0), seed=0):
        self.dtype = np.dtype(dtype)
        self.nodes = []
        d_in = input_dim
        for number, layer in enumerate(layers, start=1):
            self.nodes += NODES[type(layer)](layer, number, d_in, optimizer_layout[1])
            d_in = self.nodes[-1].d_out
        self.capacity = 0
        self.optimizer_layout = optimizer_layout
        self.step_count = np.zeros(1, dtype=np.int64)  # training steps taken
        self.seed = np.array([seed], dtype=np.uint64)  # dropout seed
        # the global batch row of the batch's row 0: a rank training on a slice of
        # the batch draws that slice's rows of the one-process dropout masks
        # (row r of node l's mask from elements (row_offset + r) * width..); 0 but
        # in a distributed fit, and never saved
        self.row_offset = np.zeros(1, dtype=np.int64)
        # the step count when the optimiser's state began: Adam's bias correction
        # counts the steps since then
        self.optimizer_origin = np.zeros(1, dtype=np.int64)

    def reset_optimizer(self, layout):
        """Fresh (zero) optimiser state for an optimiser of this layout ((kind,
        state arrays per parameter)), counted from the current step. The old
        state arrays are left as they were (an engine that still points to them
        stays valid); the backend must be told to rebuild its engine."""
        for p in self.params():
            p.state = [np.zeros_like(p.value) for _ in range(layout[1])]
        self.optimizer_layout = layout
        self.optimizer_origin[0] = self.step_count[0]

    def workspaces(self, capacity):
        """A new set of workspaces for capacity rows: one namespace per node."""
        spaces, previous = [], None
        for node in self.nodes:
            previous = node.workspace(capacity, self.dtype, previous)
            spaces.append(previous)
        return spaces

    @property
    def input_dim(self):
        return self.nodes[0].d_in

    @property
    def output_dim(self):
        return self.nodes[-1].d_out

    @property
    def max_width(self):
        return max(node.width for node in self.nodes)

    def ensure_capacity(self, n_rows):
        """Grow the workspaces to hold n_rows; True if they were reallocated."""
        if n_rows <= self.capacity:
            return False
        for node, ws in zip(self.nodes, self.workspaces(n_rows)):
            node.Z, node.A, node.delta, node.dZ, node.mask = ws.Z, ws.A, ws.delta, ws.dZ, ws.mask
        self.capacity = n_rows
        return True

    def params(self):
        """Every Param, in get_weights order."""
        return [p for node in self.nodes for p in node.params]

    def weights(self):
        """[W1, b1, ...] as get_weights orders them, the live arrays."""
        return [p.value for p in self.params()]

    def gradients(self):
        """The gradient arrays, aligned with weights()."""
        return [p.grad for p in self.params()]

    def optimizer_state(self):
        """The training state: each parameter's optimiser state arrays in turn, then
        the step count and the dropout seed; live arrays."""
        return [s for p in self.params() for s in p.state] + [self.step_count, self.seed]

    def training_state(self):
        """Everything a training step changes, as live arrays: parameters,
        optimiser state, step count, dropout seed, and the optimiser's origin."""
        return self.weights() + self.optimizer_state() + [self.optimizer_origin]

    def nonfinite(self):
        """The name of the first parameter or optimiser state array holding NaN or
        infinity ("W2", "b1 state 2", ...), or None when all are finite."""
        for p in self.params():
            for k, arr in enumerate([p.value] + p.state):
                if not np.isfinite(arr).all():
                    return f"{p.name}{p.layer}" + (f" optimiser state {k}" if k else "")
        return None

    def loss_head(self, fused):
        """Where the loss meets the network: (index of the node whose delta receives
        the loss gradient, whether that node's activation is skipped because a
        fused loss already gives dL/dZ).

        A fused loss (softmax or sigmoid cross-entropy) reads the logits under the
        last activation: the Z of a last node that applies its activation to its
        own affine map (a DENSE node; its delta receives dL/dZ), or the input of a
        last ACTIVATION node (the previous node's delta receives it).
        """
        last = len(self.nodes) - 1
        if not fused:
            return last, False
        traits = self.nodes[last].traits
        if traits.affine and traits.uses_act:
            return last, True
        return last - 1, False
