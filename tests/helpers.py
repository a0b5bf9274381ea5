"""What the tests share: tolerances, the comparison assert_close, finite differences,
the architecture table of the model-level contract, and a memory probe.

Test modules import from here (`from tests.helpers import ...`); conftest.py keeps
only fixtures.
"""

import io
import json
import math
import tracemalloc
import zipfile

import numpy as np

import fastbp as fb
from fastbp.gradcheck import centred_differences, relative_error

BACKENDS = ["numpy", "cython"]
DTYPES = [np.float32, np.float64]
# docs/design.md §3: Cython against NumPy on the same plan.
BACKEND_RTOL = {np.float32: 1e-5, np.float64: 1e-12}
FD_RTOL = 1e-7

# max |actual - expected| / max(|actual|, |expected|), 0 when both are 0 (fastbp.gradcheck's)
rel_error = relative_error


# --- comparing arrays -----------------------------------------------------------------


def _index(flat_index, shape):
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()


def assert_close(actual, expected, rtol, label, atol=0):
    """Assert that actual matches expected within rtol, relative to the largest
    magnitude in either array (the measure of rel_error, so that entries that are
    near zero in both do not blow it up), or within atol absolutely.

    On failure the message names label, the shape, the worst index, the two values
    there and the error, e.g.
    ``dW1 shape (8, 3): worst at (2, 1): 0.5123 vs 0.5121, rel err 3.9e-04 > 1e-12``.
    NaN matches only NaN and an infinity only the same infinity.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"{label}: shape {a.shape} vs expected {e.shape}")
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - e))
    diff = np.where(np.isnan(diff), np.inf, diff)
    if diff.size == 0:
        return
    worst = int(np.argmax(diff))
    finite = np.isfinite(a) & np.isfinite(e)
    scale = max(np.abs(a[finite]).max(initial=0.0), np.abs(e[finite]).max(initial=0.0))
    biggest = float(diff.reshape(-1)[worst])
    err = 0.0 if biggest == 0 else (math.inf if scale == 0 else biggest / scale)
    if err <= rtol or biggest <= atol:
        return
    # enough digits for the two values to differ in print
    digits = 4 if not math.isfinite(err) else min(17, max(4, math.ceil(-math.log10(err)) + 2))
    got, want = a.reshape(-1)[worst], e.reshape(-1)[worst]
    where = f"worst at {_index(worst, a.shape)}: " if a.shape else ""
    bound = f"{rtol:g}" if not atol else f"{rtol:g} (and abs err {biggest:.2g} > {atol:g})"
    raise AssertionError(
        f"{label} shape {a.shape}: {where}{got:.{digits}g} vs {want:.{digits}g}, "
        f"rel err {err:.1e} > {bound}"
    )


def assert_all_close(actuals, expecteds, rtol, labels, atol=0):
    """assert_close over paired sequences (per-parameter gradients or weights)."""
    actuals, expecteds, labels = list(actuals), list(expecteds), list(labels)
    assert len(actuals) == len(expecteds) == len(labels), (
        f"{len(actuals)} arrays vs {len(expecteds)} expected ({labels})"
    )
    for a, e, label in zip(actuals, expecteds, labels):
        assert_close(a, e, rtol, label, atol)


# --- finite differences (fastbp.gradcheck's loop) -----------------------------------------


def numerical_gradient(f, x, eps=1e-6):
    """Centred differences of the scalar f() with respect to every entry of x,
    perturbed in place (x is restored); x's shape, float64."""
    return centred_differences(f, x, eps)


def model_numerical_gradients(model, X, y, eps=1e-6):
    """Centred differences of model.loss_and_gradients' loss for every parameter."""
    weights = model.get_weights()
    grads = []
    for w in weights:

        def loss():
            model.set_weights(weights)
            return model.loss_and_gradients(X, y)[0]

        grads.append(numerical_gradient(loss, w, eps))
    model.set_weights(weights)
    return grads


# --- models ---------------------------------------------------------------------------


def dense_stack(layers):
    """Dense layers from (units, activation) pairs; the first pair gives the input width."""
    (d_in, _), rest = layers[0], layers[1:]
    return [
        fb.Dense(units, activation=act, input_dim=d_in if i == 0 else None)
        for i, (units, act) in enumerate(rest)
    ]


def dense_model(layers, loss="softmax_cross_entropy", backend="cython", seed=0, **kwargs):
    """Sequential of the Dense layers of dense_stack(layers); an input width of None
    leaves input_dim to the first data. kwargs (optimizer, dtype) go to Sequential."""
    return fb.Sequential(dense_stack(layers), loss=loss, seed=seed, backend=backend, **kwargs)


def _dense_arch(layers, loss, kind):
    """An ARCHS entry of Dense layers from (units, activation) pairs, input width first."""
    return (layers[0][0], lambda: dense_stack(layers), loss, kind)


# The architectures of the model-level contract (tests/test_gradients.py):
# name -> (input width, layer factory, loss, target kind). Together they use every
# activation as a Dense activation, the Activation, PReLU, Maxout and Dropout layers,
# and every loss with every kind of target it takes (test_the_table_covers_everything).
ARCHS = {
    # Dense layers only
    "tanh-softmax": _dense_arch(
        [(4, None), (5, "tanh"), (3, None)], "softmax_cross_entropy", "labels"
    ),
    "sigmoid-softmax-probs": _dense_arch(
        [(3, None), (4, "sigmoid"), (4, None)], "softmax_cross_entropy", "probabilities"
    ),
    "leaky-relu-mse": _dense_arch(
        [(3, None), (6, "leaky_relu"), (4, "tanh"), (2, None)], "mse", "values"
    ),
    "relu-mse-sigmoid-out": _dense_arch([(4, None), (5, "relu"), (2, "sigmoid")], "mse", "values"),
    "tanh-bce": _dense_arch(
        [(3, None), (4, "tanh"), (2, "sigmoid")], "binary_cross_entropy", "binary"
    ),
    "gelu-elu-kl": _dense_arch(
        [(3, None), (5, "gelu"), (4, "elu"), (3, None)], "kl_divergence", "probabilities"
    ),
    "silu-softplus-mse": _dense_arch(
        [(4, None), (6, "silu"), (5, "softplus"), (2, "hard_tanh")], "mse", "values"
    ),
    "hard-sigmoid-identity-mse": _dense_arch(
        [(3, None), (5, "hard_sigmoid"), (4, "identity"), (2, None)], "mse", "values"
    ),
    # the other layer types
    "dense-prelu": (
        4,
        lambda: [fb.Dense(6, activation="prelu", input_dim=4), fb.Dense(3)],
        "softmax_cross_entropy",
        "labels",
    ),
    "prelu-layers": (
        4,
        lambda: [
            fb.Dense(6, input_dim=4),
            fb.PReLU(),
            fb.Dense(5, "tanh"),
            fb.PReLU(initial_slope=0.1),
            fb.Dense(2),
        ],
        "mse",
        "values",
    ),
    "maxout": (
        4,
        lambda: [fb.Maxout(5, pieces=3, input_dim=4), fb.Dense(3)],
        "softmax_cross_entropy",
        "labels",
    ),
    "maxout-stack-bce": (
        3,
        lambda: [fb.Maxout(6, 2, input_dim=3), fb.Maxout(4, pieces=3), fb.Dense(2, "sigmoid")],
        "binary_cross_entropy",
        "binary",
    ),
    "activation-layers": (
        4,
        lambda: [
            fb.Dense(6, input_dim=4),
            fb.Activation("tanh"),
            fb.Dense(5),
            fb.Activation("leaky_relu", slope=0.2),
            fb.Dense(3),
            fb.Activation("softmax"),
        ],
        "softmax_cross_entropy",
        "labels",
    ),
    "softmax-output-probs": (
        3,
        lambda: [fb.Dense(5, "elu", input_dim=3), fb.Dense(4, "softmax")],
        "softmax_cross_entropy",
        "probabilities",
    ),
    "softmax-output-mse": (
        3,
        lambda: [fb.Dense(5, "tanh", input_dim=3), fb.Dense(4, "softmax")],
        "mse",
        "values",
    ),
    "hidden-softmaxes": (
        3,
        lambda: [
            fb.Dense(6, "softmax", input_dim=3),
            fb.Activation("softmax"),
            fb.Dense(2, "gelu"),
        ],
        "mse",
        "values",
    ),
    "activation-sigmoid-bce": (
        3,
        lambda: [fb.Dense(4, "silu", input_dim=3), fb.Dense(2), fb.Activation("sigmoid")],
        "binary_cross_entropy",
        "binary",
    ),
    "everything-with-dropout": (
        4,
        lambda: [
            fb.Dropout(0.1),
            fb.Dense(6, "prelu", input_dim=4),
            fb.Dropout(0.3),
            fb.Maxout(4, 2),
            fb.Dropout(0.2),
            fb.Dense(3),
            fb.Activation("softmax"),
        ],
        "kl_divergence",
        "probabilities",
    ),
}


def targets(kind, rng, n, d_out):
    """n targets of d_out outputs: class labels, probability rows, 0/1 or real values."""
    if kind == "labels":
        return rng.integers(0, d_out, n)
    if kind == "probabilities":
        P = rng.random((n, d_out))
        return P / P.sum(axis=1, keepdims=True)
    if kind == "binary":
        return rng.integers(0, 2, (n, d_out)).astype(float)
    return rng.standard_normal((n, d_out))


def build(name, backend="cython", dtype=np.float64, optimizer=None, seed=0):
    """The model of ARCHS[name]."""
    _d_in, layers, loss, _kind = ARCHS[name]
    return fb.Sequential(
        layers(),
        loss=loss,
        optimizer=optimizer or fb.SGD(lr=0.1),
        dtype=np.dtype(dtype).name,
        seed=seed,
        backend=backend,
    )


def arch_data(name, n=7, seed=0):
    """(X, y) of n rows for ARCHS[name]."""
    d_in, _layers, _loss, kind = ARCHS[name]
    rng = np.random.default_rng(seed)
    d_out = build(name).output_dim
    return rng.standard_normal((n, d_in)), targets(kind, rng, n, d_out)


def spread_slopes(model, rng):
    """PReLU slopes away from 0.25 and from each other, so that a slope mix-up shows."""
    weights = [
        w if not name.startswith("alpha") else rng.uniform(-0.3, 0.6, w.shape)
        for w, name in zip(model.get_weights(), model.weight_names())
    ]
    model.set_weights(weights)


def grad_labels(model):
    """'dW1', 'db1', 'dalpha1', ... for the model's parameter arrays."""
    return [f"d{name}" for name in model.weight_names()]


# --- memory ---------------------------------------------------------------------------

# A step's smallest array in tests/test_engine.py is 32 x 4 float32 (512 bytes of data
# plus about 100 of header); the Python objects of one call (argument tuples, the
# returned numbers) take a few hundred bytes.
NO_ARRAY = 512


def peak_growth(fn):
    """Bytes by which traced memory rose above its starting level at any moment
    while fn ran: a temporary array shows up even if it is freed again."""
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - start


def rewrite_record(path, change):
    """Edit the JSON record of the model file at path in place with change(record),
    the arrays left as they are: a file as someone else could have written it."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    record = json.loads(str(np.load(io.BytesIO(members["architecture.npy"]))))
    change(record)
    out = io.BytesIO()
    np.lib.format.write_array(out, np.array(json.dumps(record)))
    members["architecture.npy"] = out.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


# --- optimisers -----------------------------------------------------------------------

# One factory per case, shared by the optimiser, engine and attribute tests. Every class
# in fastbp.optimizers.OPTIMIZERS must appear (tests/test_optimizers.py checks), so a new
# optimiser is tested everywhere once it has a case here.
OPTIMIZER_CASES = {
    "sgd": lambda: fb.SGD(lr=0.1),
    "sgd-decay": lambda: fb.SGD(lr=0.1, weight_decay=0.05),
    "sgd-clip": lambda: fb.SGD(lr=0.5, clipnorm=0.1),
    "momentum": lambda: fb.SGD(lr=0.1, momentum=0.9),
    "momentum-clip": lambda: fb.SGD(lr=0.1, momentum=0.9, clipnorm=1.0),
    "nesterov-decay": lambda: fb.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda: fb.Adam(lr=0.01),
    "adam-decay-clip": lambda: fb.Adam(lr=0.01, weight_decay=0.1, clipnorm=0.5),
    "adamw": lambda: fb.AdamW(lr=0.01, weight_decay=0.1),
    "rmsprop": lambda: fb.RMSProp(lr=0.01),
    "adagrad": lambda: fb.Adagrad(lr=0.1),
}


def gemm_operands(rng, m, n, k, trans_a, trans_b, dtype):
    """A, B stored so that op(A) is (m, k) and op(B) is (k, n), and C (m, n)."""
    A = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    return A, B, C
