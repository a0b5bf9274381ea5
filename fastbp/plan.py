"""The plan: a built Sequential flattened into what the backends execute.

Per dense layer: dims, activation code and parameter, the parameter arrays
(shared with the layer, updated in place), gradient arrays, and workspaces sized
for `capacity` rows, grown only when a larger batch arrives.
"""
import numpy as np

from fastbp.layers import Dense, Dropout


class LayerPlan:
    """One dense layer as the backends see it.

    W, dW : (d_in, d_out); b, db : (d_out,); workspaces Z, A, delta :
    (capacity, d_out), with A the same array as Z for the identity; W_state,
    b_state : the optimiser's state arrays for W and b; with dropout after the
    layer (keep < 1), workspaces mask and D = A * mask, (capacity, d_out).
    """

    def __init__(self, layer, dtype, n_state, keep=1.0):
        self.d_in, self.d_out = layer.W.shape
        self.keep = keep   # 1 - the rate of a Dropout that follows the layer
        self.act = layer.activation.code
        self.param = layer.activation.param
        self.W, self.b = layer.W, layer.b
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.Z = self.A = self.delta = self.mask = self.D = None
        self.dtype = dtype
        # optimiser state: n_state arrays shaped like W and like b (momentum, moments...)
        self.W_state = [np.zeros_like(self.W) for _ in range(n_state)]
        self.b_state = [np.zeros_like(self.b) for _ in range(n_state)]

    def allocate(self, capacity):
        self.Z = np.zeros((capacity, self.d_out), dtype=self.dtype)
        self.A = self.Z if self.act == 0 else np.zeros_like(self.Z)
        self.delta = np.zeros_like(self.Z)
        if self.keep < 1:
            self.mask = np.zeros_like(self.Z)
            self.D = np.zeros_like(self.Z)


class Plan:
    """layers : the model's layers, built (Dense, each possibly followed by a
    Dropout); dtype : float32 or float64; n_state : state arrays the optimiser
    keeps per parameter array; seed : the dropout masks' seed."""

    def __init__(self, layers, dtype, n_state=0, seed=0):
        self.dtype = np.dtype(dtype)
        self.layers = []
        for layer, after in zip(layers, list(layers[1:]) + [None]):
            if isinstance(layer, Dense):
                keep = 1.0 - after.rate if isinstance(after, Dropout) else 1.0
                self.layers.append(LayerPlan(layer, self.dtype, n_state, keep))
        self.capacity = 0
        self.step_count = np.zeros(1, dtype=np.int64)   # training steps taken
        self.seed = np.array([seed], dtype=np.uint64)    # dropout seed

    @property
    def input_dim(self):
        return self.layers[0].d_in

    @property
    def output_dim(self):
        return self.layers[-1].d_out

    @property
    def max_width(self):
        return max(layer.d_out for layer in self.layers)

    def ensure_capacity(self, n_rows):
        """Grow the workspaces to hold n_rows; True if they were reallocated."""
        if n_rows <= self.capacity:
            return False
        for layer in self.layers:
            layer.allocate(n_rows)
        self.capacity = n_rows
        return True

    def parameters(self):
        """[W1, b1, W2, b2, ...], the live arrays."""
        return [p for layer in self.layers for p in (layer.W, layer.b)]

    def optimizer_state(self):
        """The training state: per layer the optimiser's W states then b states,
        then the step count and the dropout seed; live arrays."""
        return [a for layer in self.layers for a in layer.W_state + layer.b_state] + \
            [self.step_count, self.seed]

    def gradients(self):
        """[dW1, db1, dW2, db2, ...], aligned with parameters()."""
        return [g for layer in self.layers for g in (layer.dW, layer.db)]
