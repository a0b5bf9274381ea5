"""PyTorch autograd as an independent oracle (float64), when torch is installed:
every activation's value and derivative (at the kinks too: fastbp follows PyTorch
there), every loss's value and gradient, and every optimiser over several steps
against torch.optim with the same hyper-parameters."""

import numpy as np
import pytest

import fastbp as fb
from fastbp import activations
from fastbp._kernels import kernels
from fastbp.backends import numpy_backend
from tests.helpers import assert_all_close, assert_close, dense_model, grad_labels

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-12

# name -> (parameters given to fastbp, the same function in torch ops)
TORCH_ACTIVATIONS = {
    "identity": ({}, lambda x: x),
    "sigmoid": ({}, torch.sigmoid),
    "tanh": ({}, torch.tanh),
    "relu": ({}, torch.relu),
    "leaky_relu": ({"slope": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
    "elu": ({"alpha": 0.7}, lambda x: F.elu(x, 0.7)),
    "softplus": ({}, F.softplus),
    # fastbp's own hard sigmoid, max(min(0.25 x + 0.5, 1), 0), in torch ops; torch's
    # F.hardsigmoid is relu6(x + 3) / 6. hardtanh has slope strictly inside its ramp.
    "hard_sigmoid": ({}, lambda x: 0.25 * F.hardtanh(x, -2.0, 2.0) + 0.5),
    "hard_tanh": ({}, F.hardtanh),
    "silu": ({}, F.silu),
    "gelu": ({}, lambda x: F.gelu(x, approximate="tanh")),
}
ELEMENTWISE = sorted(n for n in activations.ACTIVATIONS if n not in ("softmax", "prelu"))


def test_every_elementwise_activation_has_an_oracle():
    assert sorted(TORCH_ACTIVATIONS) == ELEMENTWISE


def grid():
    """[-6, 6] with the kinks and ramp ends (0, +-1, +-2) and their neighbours."""
    kinks = np.array([0.0, 1.0, -1.0, 2.0, -2.0])
    x = np.concatenate(
        [np.linspace(-6, 6, 1201), kinks, np.nextafter(kinks, 10), np.nextafter(kinks, -10)]
    )
    return x.reshape(1, -1)


def torch_value_and_derivative(f, x):
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = f(t)
    (grad,) = torch.autograd.grad(out.sum(), t)
    return out.detach().numpy(), grad.numpy()


@pytest.mark.parametrize("backend", ["numpy", "cython"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_value_and_derivative_match_torch(name, backend):
    params, f = TORCH_ACTIVATIONS[name]
    spec = activations.get(name, **params)
    Z = grid()
    if backend == "cython":
        A = np.empty_like(Z)
        kernels.activation_forward(Z, A, spec.code, spec.param)
        dZ = np.empty_like(Z)
        kernels.activation_backward(Z, A, np.ones_like(Z), dZ, spec.code, spec.param)
    else:
        forward, derivative = numpy_backend.ACTIVATIONS[spec.code]
        A = forward(Z, spec.param)
        dZ = derivative(Z, A, spec.param) * np.ones_like(Z)
    value, grad = torch_value_and_derivative(f, Z)
    assert_close(A, value, RTOL, f"{name}(x)")
    assert_close(dZ, grad, RTOL, f"{name}'(x)")


def identity_first(layer, width=6):
    """Dense(width) with W = I, b = 0, then layer: the model computes layer(X)."""
    model = fb.Sequential([fb.Dense(width, input_dim=width), layer], dtype="float64", seed=0)
    weights = model.get_weights()
    weights[0], weights[1] = np.eye(width), np.zeros(width)
    return model, weights


def test_softmax_and_prelu_layers_match_torch(backend):
    """The two activations that are not element-wise: the softmax's Jacobian, and
    PReLU's gradients for its input and its slopes (at 0 too)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 6)) * 3
    X[0, :3] = 0.0
    G = rng.standard_normal((5, 6))
    for layer, make_torch in [
        (fb.Activation("softmax"), lambda t, alpha: torch.softmax(t, dim=1)),
        (fb.PReLU(), lambda t, alpha: F.prelu(t, alpha)),
    ]:
        model, weights = identity_first(layer)
        alpha = rng.uniform(-0.3, 0.6, 6)
        if isinstance(layer, fb.PReLU):
            weights[2] = alpha
        model = fb.Sequential.from_config(model.get_config(), backend=backend)
        model.set_weights(weights)
        t = torch.tensor(X, requires_grad=True)
        a = torch.tensor(alpha, requires_grad=True)
        out = make_torch(t, a)
        dX, dalpha = torch.autograd.grad((out * torch.tensor(G)).sum(), [t, a], allow_unused=True)
        name = type(layer).__name__
        assert_close(model.forward(X), out.detach().numpy(), RTOL, f"{name} forward")
        assert_close(model.backward(G), dX.numpy(), RTOL, f"{name} dX")
        if isinstance(layer, fb.PReLU):
            assert_close(model.get_gradients()[2], dalpha.numpy(), RTOL, "PReLU dalpha")


# --- losses ---------------------------------------------------------------------------


def torch_loss(loss, z, a, y):
    """The loss fastbp defines (losses.py), from torch's functions; mean over rows."""
    n = z.shape[0]
    if loss == "mse":
        return 0.5 * F.mse_loss(a, y, reduction="sum") / n
    if loss == "softmax_cross_entropy":
        return F.cross_entropy(z, y)
    if loss == "binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(z, y, reduction="sum") / n
    return F.kl_div(F.log_softmax(z, dim=1), y, reduction="batchmean")


LOSS_CASES = {
    # name: (loss, output activation, target kind)
    "mse": ("mse", "tanh", "values"),
    "softmax_cross_entropy-labels": ("softmax_cross_entropy", None, "labels"),
    "softmax_cross_entropy-probabilities": ("softmax_cross_entropy", None, "probabilities"),
    "binary_cross_entropy": ("binary_cross_entropy", "sigmoid", "binary"),
    "kl_divergence": ("kl_divergence", None, "probabilities"),
}


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_loss_value_and_gradients_match_torch(backend, case):
    loss, act, kind = LOSS_CASES[case]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((9, 4))
    if kind == "labels":
        y = rng.integers(0, 3, 9)
        ty = torch.tensor(y)
    else:
        y = rng.random((9, 3)) if kind != "values" else rng.standard_normal((9, 3))
        if kind == "probabilities":
            y /= y.sum(axis=1, keepdims=True)
        if kind == "binary":
            y = (y > 0.5).astype(float)
        ty = torch.tensor(y)
    model = fb.Sequential(
        [fb.Dense(3, activation=act, input_dim=4)], loss=loss, dtype="float64", backend=backend
    )
    value, grads = model.loss_and_gradients(X, y)
    W, b = (torch.tensor(w, requires_grad=True) for w in model.get_weights())
    z = torch.tensor(X) @ W + b
    a = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}.get(act, lambda t: t)(z)
    expected = torch_loss(loss, z, a, ty)
    dW, db = torch.autograd.grad(expected, [W, b])
    assert_close(value, expected.item(), RTOL, f"{case} loss")
    assert_all_close(grads, [dW.numpy(), db.numpy()], RTOL, grad_labels(model))


# --- optimisers -----------------------------------------------------------------------

# fastbp optimiser, and the torch.optim class and arguments of the same rule. Weight
# decay is on W only (fastbp decays no biases): torch gets it per parameter group.
OPTIMIZERS = {
    "sgd": (fb.SGD(lr=0.1), torch.optim.SGD, {"lr": 0.1}),
    "sgd-decay": (fb.SGD(lr=0.1, weight_decay=0.05), torch.optim.SGD, {"lr": 0.1}),
    "momentum": (fb.SGD(lr=0.1, momentum=0.9), torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "nesterov-decay": (
        fb.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        torch.optim.SGD,
        {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    ),
    "adam": (
        fb.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-7),
        torch.optim.Adam,
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-7},
    ),
    "adam-decay": (fb.Adam(lr=0.01, weight_decay=0.1), torch.optim.Adam, {"lr": 0.01}),
    "adamw": (fb.AdamW(lr=0.01, weight_decay=0.1), torch.optim.AdamW, {"lr": 0.01}),
    "rmsprop": (
        fb.RMSProp(lr=0.01, rho=0.8, eps=1e-6),
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.8, "eps": 1e-6},
    ),
    "adagrad": (fb.Adagrad(lr=0.1), torch.optim.Adagrad, {"lr": 0.1, "eps": 1e-10}),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_steps_match_torch_optim(backend, name):
    opt, torch_cls, kwargs = OPTIMIZERS[name]
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    model = dense_model(
        [(4, None), (5, "tanh"), (3, None)], backend=backend, optimizer=opt, dtype="float64"
    )
    params = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    decay = {"weight_decay": opt.weight_decay}
    torch_opt = torch_cls(
        [{"params": params[0::2], **decay}, {"params": params[1::2], "weight_decay": 0.0}],
        **kwargs,
    )
    tX, ty = torch.tensor(X), torch.tensor(y)
    for step in range(5):
        model.train_step(X, y)
        torch_opt.zero_grad()
        W1, b1, W2, b2 = params
        F.cross_entropy(torch.tanh(tX @ W1 + b1) @ W2 + b2, ty).backward()
        torch_opt.step()
        expected = [p.detach().numpy() for p in params]
        labels = [f"{w} after step {step + 1}" for w in model.weight_names()]
        assert_all_close(model.get_weights(), expected, RTOL, labels)
