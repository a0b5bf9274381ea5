"""What the benchmarks run: model configs, data, and one callable per contender.

Shared by the pytest-benchmark suites and by report.py, so that every figure
times the same work. Contenders:

- "cython": the compiled backend, CythonBackend.step / epoch / predict;
- "numpy": the NumPy backend (the readable reference) through the same methods;
- "floor": CythonBackend.gemm_floor, only the GEMM calls of one training step
  through the same BLAS, the floor a step cannot go below;
- "torch": the same network in PyTorch on the CPU, when torch is installed.

The fastbp contenders call the backends' hot-path methods directly. The public
calls (Sequential.train_step, fit, predict) validate and convert their input on
every call; here the arrays are prepared once instead: C-contiguous, of the
model's dtype, labels int64.
"""

import itertools
import os
from dataclasses import dataclass

import numpy as np

import fastbp as fb
from fastbp.losses import SOFTMAX_XENT_INT

# Plain SGD at this rate everywhere. The step benchmarks do not repeat one batch:
# they cycle through STEP_BATCHES distinct batches, as training does, so that
# neither the weights settle on one batch nor the branch predictor learns its
# ReLU sign pattern. (A rate of 0 is no way to keep the weights still: the
# compiled engine folds the update into the weight GEMM as alpha = -lr, and
# BLAS skips a GEMM whose alpha is 0.)
LR = 0.01
STEP_BATCHES = 8


@dataclass(frozen=True)
class Config:
    """An MLP to benchmark: ReLU hidden layers, logits out, softmax cross-entropy.

    layer_sizes : (n_features, hidden units..., n_classes)
    batch_size : rows per training step
    epoch_samples : samples in one epoch in the pytest suite (report.py always
        uses 20 000 samples of the tiny config)
    """

    name: str
    layer_sizes: tuple
    batch_size: int
    epoch_samples: int

    @property
    def n_features(self):
        return self.layer_sizes[0]

    @property
    def n_classes(self):
        return self.layer_sizes[-1]

    @property
    def shape_label(self):
        """e.g. '784-128-10'"""
        return "-".join(str(units) for units in self.layer_sizes)


CONFIGS = {
    config.name: config
    for config in (
        Config("tiny", (64, 32, 10), 32, 20_000),
        Config("small", (784, 128, 10), 64, 4_096),
        Config("medium", (784, 256, 128, 10), 128, 2_048),
        Config("large", (784, 1024, 1024, 10), 256, 1_024),
    )
}


def cpu_threads():
    """The thread count the BLAS libraries use by default: OPENBLAS_NUM_THREADS or
    OMP_NUM_THREADS when set, otherwise the CPUs this process may run on."""
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cython_unavailable_reason():
    """None when the compiled backend can be used, otherwise why not."""
    if "cython" in fb.available_backends():
        return None
    from fastbp import backends

    return f"the Cython backend is unavailable: {backends.CYTHON_UNAVAILABLE}"


# --- data and models -------------------------------------------------------------------


def make_data(n_samples, n_features, n_classes, dtype="float32", seed=0):
    """A learnable classification problem.

    Returns X : (n_samples, n_features) standard normal, C-contiguous, of dtype;
    y : (n_samples,) int64 labels, the argmax of a fixed random linear map of X.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features)).astype(dtype)
    teacher = rng.standard_normal((n_features, n_classes))
    y = np.argmax(X @ teacher.astype(dtype), axis=1).astype(np.int64)
    return np.ascontiguousarray(X), y


def make_batches(config, dtype="float32", count=STEP_BATCHES, seed=0):
    """count distinct training batches [(X, y), ...] of the config, each X of
    shape (batch_size, n_features), C-contiguous, y (batch_size,) int64."""
    size = config.batch_size
    X, y = make_data(size * count, config.n_features, config.n_classes, dtype, seed)
    return [(X[i * size : (i + 1) * size], y[i * size : (i + 1) * size]) for i in range(count)]


def make_model(config, backend, dtype="float32", seed=0, lr=LR):
    """A built fastbp.Sequential for the config. The same seed gives the same
    initial weights whatever the backend."""
    sizes = config.layer_sizes
    layers = [fb.Dense(sizes[1], activation="relu", input_dim=sizes[0])]
    layers += [fb.Dense(units, activation="relu") for units in sizes[2:-1]]
    layers.append(fb.Dense(sizes[-1]))
    return fb.Sequential(
        layers,
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=lr),
        dtype=dtype,
        seed=seed,
        backend=backend,
    )


# The layer types on the small config's shapes (784 inputs, 128 hidden columns, 10
# classes, batch 64): the same GEMMs as its Dense/ReLU model (maxout's 64 units of
# 2 pieces are 128 columns), so the step times show what each layer type adds.
LAYER_CONFIG = "small"
LAYER_MODELS = {
    "Dense relu": lambda: [fb.Dense(128, "relu", input_dim=784), fb.Dense(10)],
    "Dense prelu": lambda: [fb.Dense(128, "prelu", input_dim=784), fb.Dense(10)],
    "Dense + Activation(relu)": lambda: [
        fb.Dense(128, input_dim=784),
        fb.Activation("relu"),
        fb.Dense(10),
    ],
    "Maxout 64 x 2": lambda: [fb.Maxout(64, pieces=2, input_dim=784), fb.Dense(10)],
    "Dense relu + Dropout(0.5)": lambda: [
        fb.Dense(128, "relu", input_dim=784),
        fb.Dropout(0.5),
        fb.Dense(10),
    ],
    "softmax output": lambda: [fb.Dense(128, "relu", input_dim=784), fb.Dense(10, "softmax")],
}


def make_layer_model(name, backend, dtype="float32", seed=0, lr=LR):
    """A built fastbp.Sequential of LAYER_MODELS[name], softmax cross-entropy, SGD."""
    return fb.Sequential(
        LAYER_MODELS[name](),
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=lr),
        dtype=dtype,
        seed=seed,
        backend=backend,
    )


def shuffled_order(n_samples, seed=0):
    """A permutation of range(n_samples) as int64, what fit() hands to epoch()."""
    return np.random.default_rng(seed).permutation(n_samples).astype(np.int64)


def epoch_data(config, dtype, n_samples=None):
    """Data for one epoch: X (n_samples, n_features), y (n_samples,) and a fixed
    shuffled order (n_samples,); n_samples defaults to config.epoch_samples."""
    n_samples = n_samples or config.epoch_samples
    X, y = make_data(n_samples, config.n_features, config.n_classes, dtype, seed=1)
    return X, y, shuffled_order(n_samples)


def predict_data(config, dtype, n_rows):
    """X (n_rows, n_features) for the predict benchmarks."""
    return make_data(n_rows, config.n_features, config.n_classes, dtype, seed=2)[0]


# --- fastbp contenders: zero-argument callables over prepared arrays ----------------------


def fastbp_step(model, batches, lr=LR):
    """One SGD step of model's backend on the next batch -> (mean loss, n_correct).

    batches : [(X, y), ...] cycled through in order, X (batch, n_features) of
    the model's dtype, y (batch,) int64; the first call uses batches[0].
    """
    backend = model._backend
    optimizer = model.optimizer
    upcoming = itertools.cycle(batches)

    def step():
        X, y = next(upcoming)
        return backend.step(X, y, SOFTMAX_XENT_INT, optimizer, True, lr)

    return step


def gemm_floor(model, batches):
    """Only the GEMMs of one training step (Cython backend) on the next batch's X;
    returns that X, whose product with W1 the first workspace Z now holds."""
    backend = model._backend
    upcoming = itertools.cycle(batches)

    def floor():
        X, _ = next(upcoming)
        backend.gemm_floor(X, LR)
        return X

    return floor


def fastbp_epoch(model, X, y, order, batch_size, lr=LR):
    """One epoch of mini-batch SGD over X in `order`.

    X : (n_samples, n_features); y : (n_samples,) int64; order : (n_samples,)
    int64. Returns (sum of batch_rows * batch_loss, n_correct, n_seen).
    """
    backend = model._backend
    optimizer = model.optimizer

    def epoch():
        return backend.epoch(X, y, order, batch_size, SOFTMAX_XENT_INT, optimizer, lr)

    return epoch


def fastbp_predict(model, X):
    """Forward pass over all rows of X -> logits (n_rows, n_classes)."""
    backend = model._backend

    def predict():
        return backend.predict(X)

    return predict


# --- PyTorch ---------------------------------------------------------------------------


def import_torch():
    """The torch module, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


class TorchMLP:
    """The fastbp model's network in PyTorch on the CPU, starting from its weights.

    nn.Linear + nn.ReLU layers, F.cross_entropy (mean over the batch, like
    fastbp's loss), torch.optim.SGD without momentum: an idiomatic training
    loop, not a tuned one. Inputs are NumPy arrays, wrapped without copying.
    """

    def __init__(self, model, lr=LR):
        import torch

        self.torch = torch
        self.dtype = torch.float64 if model.dtype == np.float64 else torch.float32
        modules = []
        for layer in model.layers:
            d_in, d_out = layer.W.shape
            linear = torch.nn.Linear(d_in, d_out, dtype=self.dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.W.T.copy()))  # (d_out, d_in)
                linear.bias.copy_(torch.from_numpy(layer.b))
            modules.append(linear)
            if layer.activation.name == "relu":
                modules.append(torch.nn.ReLU())
            elif layer.activation.name != "identity":
                raise ValueError(
                    f"TorchMLP supports relu and identity, not {layer.activation.name}"
                )
        self.net = torch.nn.Sequential(*modules)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=lr)

    def _train_on(self, X, y):
        """One step on tensors X (batch, n_features), y (batch,) int64 -> loss."""
        self.optimizer.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.net(X), y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def step(self, batches):
        """Callable: one SGD step on the next of batches [(X, y), ...] -> mean loss."""
        torch = self.torch
        upcoming = itertools.cycle([(torch.from_numpy(X), torch.from_numpy(y)) for X, y in batches])

        def step():
            return self._train_on(*next(upcoming))

        return step

    def epoch(self, X, y, order, batch_size):
        """Callable: one epoch over X in `order` -> (sum of batch_rows * batch_loss,
        n_seen); batches are gathered with index_select, as fastbp gathers rows."""
        torch = self.torch
        X_t, y_t, order_t = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(order)

        def epoch():
            total, n_seen = 0.0, 0
            for start in range(0, len(order_t), batch_size):
                idx = order_t[start : start + batch_size]
                loss = self._train_on(X_t.index_select(0, idx), y_t.index_select(0, idx))
                total += loss * len(idx)
                n_seen += len(idx)
            return total, n_seen

        return epoch

    def predict(self, X):
        """Callable: logits (n_rows, n_classes) as a NumPy array."""
        torch = self.torch
        X_t = torch.from_numpy(X)

        def predict():
            with torch.inference_mode():
                return self.net(X_t).numpy()

        return predict


class CompiledTorchMLP(TorchMLP):
    """TorchMLP with its training step (forward, loss, backward and the SGD update)
    and its forward pass compiled by torch.compile (default mode, inductor). The
    first calls compile; the benchmarks' warm-up absorbs them."""

    def __init__(self, model, lr=LR):
        super().__init__(model, lr)
        torch = self.torch
        self._compiled_step = torch.compile(self._train_tensor)
        self._compiled_net = torch.compile(self.net)

    def _train_tensor(self, X, y):
        self.optimizer.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.net(X), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _train_on(self, X, y):
        return self._compiled_step(X, y).item()

    def predict(self, X):
        torch = self.torch
        X_t = torch.from_numpy(X)

        def predict():
            with torch.inference_mode():
                return self._compiled_net(X_t).numpy()

        return predict


def step_flops(config):
    """Floating-point operations of one training step's GEMMs: per Dense layer of
    d_in -> d_out on a batch of n, 2 n d_in d_out each for Z = X W, dW = X.T dZ
    and (all but the first layer) dX = dZ W.T."""
    n, sizes = config.batch_size, config.layer_sizes
    pairs = list(itertools.pairwise(sizes))
    return sum((3 if i else 2) * 2 * n * d_in * d_out for i, (d_in, d_out) in enumerate(pairs))


def gemm_peak(dtype, size=1024, repeats=5):
    """The best GEMM rate (FLOP/s) of the compiled engine's provider on square
    (size, size) matrices, the roof the steps are measured against."""
    import time

    from fastbp._kernels import kernels

    rng = np.random.default_rng(0)
    A, B = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    C = np.zeros((size, size), dtype)
    kernels.gemm_rowmajor(A, B, C)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        kernels.gemm_rowmajor(A, B, C)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def import_jax():
    """The jax module (float64 enabled, for the float64 runs), or None."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


class JaxMLP:
    """The fastbp model's network in JAX on the CPU, from its weights: the whole
    SGD step is one jax.jit function (parameters donated, so XLA updates them in
    place), the epoch one jit of lax.scan over the batches, predict one jit of
    the forward pass. ReLU hidden layers, mean softmax cross-entropy."""

    def __init__(self, model, lr=LR):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        for layer in model.layers:
            if layer.activation.name not in ("relu", "identity"):
                raise ValueError(f"JaxMLP supports relu and identity, not {layer.activation.name}")
        # copies: the donated buffers must never be the fastbp model's own arrays
        self.params = [
            (jnp.array(layer.W, copy=True), jnp.array(layer.b, copy=True)) for layer in model.layers
        ]
        self.lr = lr

        def logits(params, X):
            for W, b in params[:-1]:
                X = jax.nn.relu(X @ W + b)
            W, b = params[-1]
            return X @ W + b

        def loss(params, X, y):
            log_p = jax.nn.log_softmax(logits(params, X))
            return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

        def update(params, X, y):
            value, grads = jax.value_and_grad(loss)(params, X, y)
            new = [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads)]
            return new, value

        self._logits = jax.jit(logits)
        self._update = jax.jit(update, donate_argnums=0)

        def epoch(params, X, y, order, batch_size):
            n_batches = len(order) // batch_size
            idx = order[: n_batches * batch_size].reshape(n_batches, batch_size)

            def body(params, rows):
                params, value = update(params, X[rows], y[rows])
                return params, value

            params, values = jax.lax.scan(body, params, idx)
            return params, jnp.sum(values) * batch_size

        self._epoch = jax.jit(epoch, static_argnums=4, donate_argnums=0)

    def step(self, batches):
        """Callable: one SGD step on the next of batches [(X, y), ...] -> mean loss."""
        jnp = self.jnp
        upcoming = itertools.cycle([(jnp.asarray(X), jnp.asarray(y)) for X, y in batches])

        def step():
            self.params, value = self._update(self.params, *next(upcoming))
            return float(value)

        return step

    def epoch(self, X, y, order, batch_size):
        """Callable: one epoch in `order` (whole batches only: len(order) must be a
        multiple of batch_size) -> (sum of batch_rows * batch_loss, n_seen)."""
        if len(order) % batch_size:
            raise ValueError("JaxMLP.epoch needs len(order) to be a multiple of batch_size")
        jnp = self.jnp
        X_j, y_j, order_j = jnp.asarray(X), jnp.asarray(y), jnp.asarray(order)

        def epoch():
            self.params, total = self._epoch(self.params, X_j, y_j, order_j, batch_size)
            return float(total), len(order)

        return epoch

    def predict(self, X):
        """Callable: logits (n_rows, n_classes) as a NumPy array."""
        X_j = self.jnp.asarray(X)

        def predict():
            return np.asarray(self._logits(self.params, X_j))

        return predict
