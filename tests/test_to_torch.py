"""Sequential.to_torch and fastbp.from_torch: the torch module computes what forward
computes (every layer type and activation), its parameters are the model's in torch's
layout, the round trip keeps every weight bit for bit, and modules with no exact fastbp
equivalent are refused by name."""

import copy

import numpy as np
import pytest

import fastbp as fb
from fastbp import activations
from tests.helpers import assert_close

torch = pytest.importorskip("torch")
nn = torch.nn
from fastbp.export import torch_modules  # noqa: E402  (imports torch)

RTOL = {np.float32: 1e-5, np.float64: 1e-6}
PARAMS = {"leaky_relu": {"slope": 0.3}, "elu": {"alpha": 0.6}}
NAMES = sorted(activations.ACTIVATIONS)


def act(name):
    return activations.get(name, **PARAMS.get(name, {}))


def inputs(n, d, dtype, seed=0):
    return (2.5 * np.random.default_rng(seed).standard_normal((n, d))).astype(dtype)


def torch_output(module, X):
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


def mixed_model(name, dtype, loss="softmax_cross_entropy", head=None):
    """Every layer type, with activation name in a Dense and as a layer."""
    hidden = [fb.Dropout(0.1), fb.Dense(9, activation=act(name), input_dim=5)]
    if name != "prelu":
        hidden += [fb.Activation(act(name))]
    hidden += [fb.Maxout(6, pieces=3), fb.PReLU(initial_slope=-0.2), fb.Dropout(0.4)]
    return fb.Sequential([*hidden, head or fb.Dense(4)], loss=loss, dtype=dtype, seed=11)


# --- fastbp -> torch ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_to_torch_computes_forward(name, dtype):
    model = mixed_model(name, dtype)
    module = model.to_torch()
    X = inputs(300, 5, dtype)
    got = torch_output(module, X)
    assert got.dtype == dtype
    assert_close(got, model.forward(X), RTOL[dtype], "torch output")
    assert not module.training  # dropout off, as in predict
    assert all(p.dtype == getattr(torch, np.dtype(dtype).name) for p in module.parameters())


@pytest.mark.parametrize(
    "layers, loss",
    [
        ([fb.Dense(3, input_dim=5)], "mse"),  # no hidden layer
        ([fb.Dense(6, activation="tanh", input_dim=5), fb.Dense(1, activation="sigmoid")], "bce"),
        (
            [fb.Dense(6, activation="relu", input_dim=5), fb.Dense(3, activation="softmax")],
            "cross_entropy",
        ),
    ],
)
def test_to_torch_heads(layers, loss):
    model = fb.Sequential(layers, loss=loss, dtype="float64", seed=2)
    X = inputs(100, 5, np.float64)
    assert_close(torch_output(model.to_torch(), X), model.forward(X), 1e-12, "output")


def test_to_torch_modules_and_layout():
    model = fb.Sequential(
        [
            fb.Dense(4, activation="prelu", input_dim=3),
            fb.Maxout(2, pieces=3),
            fb.PReLU(),
            fb.Dropout(0.25),
            fb.Dense(2, activation=activations.get("leaky_relu", slope=0.1)),
        ],
        dtype="float64",
        seed=1,
    )
    module = model.to_torch()
    kinds = [type(m) for m in module]
    assert kinds == [
        nn.Linear,
        nn.PReLU,
        nn.Linear,
        torch_modules.Maxout,
        nn.PReLU,
        nn.Dropout,
        nn.Linear,
        nn.LeakyReLU,
    ]
    W1, b1, alpha1, W2, _, alpha3, W5, _ = model.get_weights()
    state = module.state_dict()
    # torch's (out, in) layout is the transpose of get_weights' (in, out)
    np.testing.assert_array_equal(state["0.weight"].numpy(), W1.T)
    np.testing.assert_array_equal(state["0.bias"].numpy(), b1)
    np.testing.assert_array_equal(state["1.weight"].numpy(), alpha1)
    np.testing.assert_array_equal(state["2.weight"].numpy(), W2.T)
    np.testing.assert_array_equal(state["4.weight"].numpy(), alpha3)
    np.testing.assert_array_equal(state["6.weight"].numpy(), W5.T)
    assert module[1].num_parameters == 4 and module[4].num_parameters == 2
    assert module[5].p == 0.25 and module[7].negative_slope == 0.1
    assert (module[3].units, module[3].pieces) == (2, 3)


def test_the_torch_copy_is_independent_and_its_state_dict_loads():
    model = fb.Sequential([fb.Dense(4, activation="gelu", input_dim=3), fb.Dense(2)], seed=1)
    other = fb.Sequential([fb.Dense(4, activation="gelu", input_dim=3), fb.Dense(2)], seed=2)
    module = model.to_torch()
    with torch.no_grad():
        module[0].weight.mul_(0)  # changes the copy only
    assert np.abs(model.get_weights()[0]).sum() > 0
    fresh = other.to_torch()
    fresh.load_state_dict(model.to_torch().state_dict())
    X = inputs(20, 3, np.float32)
    assert_close(torch_output(fresh, X), model.forward(X), 1e-6, "loaded state")


def test_to_torch_leaves_torchs_random_stream_alone():
    model = fb.Sequential([fb.Dense(50, input_dim=40), fb.Dense(3)])
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    model.to_torch()
    assert torch.equal(torch.rand(3), expected)


def test_a_torch_copy_pickles():
    model = mixed_model("relu", np.float64)
    module = copy.deepcopy(model.to_torch())
    X = inputs(10, 5, np.float64)
    assert_close(torch_output(module, X), model.forward(X), 1e-6, "copied module")


def test_to_torch_refusals(monkeypatch):
    with pytest.raises(RuntimeError, match="built model"):
        fb.Sequential([fb.Dense(3), fb.Dense(1)]).to_torch()
    spec = activations.ActivationSpec("cube", 99, None, 0.0, "z^3", "3 z^2")
    monkeypatch.setitem(activations.ACTIVATIONS, "cube", spec)
    model = fb.Sequential([fb.Dense(3, activation="cube", input_dim=2)], backend="numpy")
    with pytest.raises(ValueError, match=r"layer 1 \(Dense\(3, activation='cube'.*no PyTorch"):
        model.to_torch()


# --- torch -> fastbp and the round trip -----------------------------------------------


def structure(model):
    """(class, what it applies) of each layer; an Activation("identity") left out, as
    the identity has no torch module to come back from."""
    return [
        (type(layer).__name__, layer.output_activation)
        for layer in model.layers
        if not (isinstance(layer, fb.Activation) and layer.output_activation == "identity")
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_keeps_every_bit(name, dtype):
    model = mixed_model(name, dtype)
    back = fb.from_torch(model.to_torch(), loss="softmax_cross_entropy")
    assert back.dtype == model.dtype
    assert len(back.get_weights()) == len(model.get_weights())
    for a, b in zip(back.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert structure(back) == structure(model)
    X = inputs(50, 5, dtype)
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


def test_from_torch_computes_the_torch_module():
    torch.manual_seed(3)
    module = nn.Sequential(
        nn.Linear(6, 10),
        nn.ELU(alpha=0.5),
        nn.Sequential(nn.Linear(10, 8), nn.Softplus(), nn.Identity()),  # flattened
        nn.Dropout(0.3),
        nn.Linear(8, 8, bias=False),  # a zero bias
        nn.PReLU(),  # one shared slope, copied to every unit
        nn.Hardtanh(),
        nn.Linear(8, 12),
        torch_modules.Maxout(4, 3),
        nn.GELU(approximate="tanh"),
        nn.Linear(4, 3),
    ).double()
    with torch.no_grad():
        module[5].weight.fill_(-0.3)
    model = fb.from_torch(module, loss="mse")
    assert model.dtype == np.float64
    assert [type(layer).__name__ for layer in model.layers] == [
        "Dense",
        "Dense",
        "Dropout",
        "Dense",
        "Activation",
        "Maxout",
        "Activation",
        "Dense",
    ]
    np.testing.assert_array_equal(model.layers[3].b, np.zeros(8))
    np.testing.assert_array_equal(model.layers[3].alpha, np.full(8, -0.3))
    module.eval()
    X = inputs(200, 6, np.float64)
    assert_close(model.forward(X), torch_output(module, X), 1e-6, "forward")


def test_from_torch_infers_the_loss_from_the_last_module():
    cases = [
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=-1)), "softmax_cross_entropy"),
        (
            nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1), nn.Sigmoid()),
            "binary_cross_entropy",
        ),
        (
            nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(dim=1)),
            "softmax_cross_entropy",
        ),
    ]
    for module, loss in cases:
        assert fb.from_torch(module).loss.name == loss
    with pytest.raises(ValueError, match="pass loss="):
        fb.from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    regression = fb.from_torch(nn.Linear(3, 2), loss="mse", optimizer=fb.Adam(lr=0.1), seed=0)
    assert regression.loss.name == "mse" and regression.optimizer.lr == 0.1


def test_a_converted_model_trains():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    model = fb.from_torch(module, loss="softmax_cross_entropy", optimizer=fb.Adam(lr=0.05))
    X, y = fb.datasets.moons(200, seed=0)
    model.fit(X, y, epochs=60, batch_size=32, verbose=0)
    assert model.evaluate(X, y)["accuracy"] > 0.9
    # the torch module keeps its own weights
    assert not np.array_equal(module[0].weight.detach().numpy().T, model.get_weights()[0])


@pytest.mark.parametrize(
    "module, match",
    [
        (
            nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)),
            r"module 1 \(Linear\(in_features=5.*takes 5 inputs.*gives 4",
        ),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(3, 2)), r"module 0 \(Conv2d.*no Conv2d"),
        (
            nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.BatchNorm1d(4))),
            r"module 1\.1 \(BatchNorm1d",
        ),
        (nn.Sequential(nn.Linear(3, 4), nn.Hardsigmoid()), "relu6"),
        (nn.Sequential(nn.Linear(3, 4), nn.GELU()), "approximate='tanh'"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2)), "beta=1"),
        (nn.Sequential(nn.Linear(3, 4), nn.Hardtanh(-2, 2)), r"\[-1, 1\]"),
        (nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(-0.1)), "slope >= 0"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=0)), "dim=0"),
        (nn.Sequential(nn.Linear(3, 4), nn.LogSoftmax(dim=1)), "no LogSoftmax"),
        (nn.Sequential(nn.Linear(3, 4), nn.PReLU(3)), "3 slopes for 4 units"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.PReLU(2)), "2 slopes for 4 units"),
        (nn.Sequential(nn.Linear(3, 6), torch_modules.Maxout(2, 2)), r"2 \* 2 inputs.*gives 6"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), torch_modules.Maxout(2, 2)), "must follow"),
        (nn.Sequential(nn.Linear(3, 4), nn.Dropout(1.0)), "0 <= p < 1"),
        (nn.Sequential(nn.ReLU(), nn.Tanh()), "at least one nn.Linear"),
        (nn.Sequential(nn.Linear(3, 4).half()), "float32 or all float64"),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2).double()), "float32 or all float64"),
    ],
)
def test_from_torch_refusals(module, match):
    with pytest.raises(ValueError, match=match):
        fb.from_torch(module, loss="mse")


def test_from_torch_refuses_subclasses_and_non_modules():
    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(ValueError, match=r"module 0 \(Doubled.*no Doubled"):
        fb.from_torch(nn.Sequential(Doubled(3, 2), nn.Linear(2, 2)), loss="mse")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        fb.from_torch([nn.Linear(3, 2)], loss="mse")
    with pytest.raises(ValueError, match="loss"):
        fb.from_torch(nn.Linear(3, 2), loss="hinge")
