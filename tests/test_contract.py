"""The Python<->C contract (docs/design.md §5): integer codes declared once in
csrc/fbp_kernels.h and checked against the Python registries, structs crossing by
field name, and no unknown code silently computed as something else."""

import dataclasses

import numpy as np
import pytest

import fastbp as fb
from fastbp import activations, backends, losses, optimizers, plan
from tests.helpers import BACKEND_RTOL, dense_model, rel_error

engine = pytest.importorskip("fastbp._kernels.engine")
codes = pytest.importorskip("fastbp._kernels.codes")

# group -> Python's {name: code}, written out here independently of backends.PYTHON_CODES
PYTHON = {
    "activation": lambda: {name: spec.code for name, spec in activations.ACTIVATIONS.items()},
    "loss": lambda: losses.CODES,
    "optimizer": lambda: optimizers.KINDS,
    "node": lambda: plan.KINDS,
}
ENUM_CLASSES = {
    "activation": codes.fbp_act,
    "loss": codes.fbp_loss,
    "optimizer": codes.fbp_opt,
    "node": codes.fbp_node,
}


def mismatches():
    return backends.code_mismatches(engine.CODES, engine.PREFIXES)


# --- codes: one declaration, checked at load -------------------------------------------


@pytest.mark.parametrize("group", sorted(PYTHON))
def test_c_and_python_codes_are_equal(group):
    assert engine.CODES[group] == PYTHON[group]()


@pytest.mark.parametrize("group", sorted(ENUM_CLASSES))
def test_engine_codes_are_read_off_the_header_enums(group):
    prefix = engine.PREFIXES[group]
    members = ENUM_CLASSES[group].__members__
    assert {prefix + name.upper(): code for name, code in engine.CODES[group].items()} == {
        member: int(value) for member, value in members.items()
    }


def test_header_constants_reach_python_by_name():
    assert activations.ACTIVATIONS["gelu"].code == codes.fbp_act.FBP_ACT_GELU
    assert codes.fbp_loss.FBP_LOSS_SOFTMAX_KL == losses.SOFTMAX_KL
    assert codes.fbp_opt.FBP_OPT_RMSPROP == optimizers.RMSPROP_KIND
    assert codes.fbp_node.FBP_NODE_MAXOUT == plan.MAXOUT


def test_registries_agree_with_the_build():
    assert mismatches() == []
    assert backends.CYTHON_UNAVAILABLE is None


def test_a_changed_code_is_reported(monkeypatch):
    spec = activations.ACTIVATIONS["gelu"]
    monkeypatch.setitem(activations.ACTIVATIONS, "gelu", dataclasses.replace(spec, code=11))
    assert mismatches() == [
        "activation 'gelu' is 11 in fastbp/activations.py but FBP_ACT_GELU "
        "is 10 in csrc/fbp_kernels.h"
    ]


def test_a_changed_node_kind_is_reported(monkeypatch):
    monkeypatch.setitem(plan.KINDS, "dropout", 7)
    assert mismatches() == [
        "node 'dropout' is 7 in fastbp/plan.py but FBP_NODE_DROPOUT is 4 in csrc/fbp_kernels.h"
    ]


def test_a_name_only_python_has_is_reported(monkeypatch):
    monkeypatch.setitem(losses.CODES, "hinge", 5)
    assert mismatches() == [
        "loss 'hinge' is 5 in fastbp/losses.py but csrc/fbp_kernels.h has no FBP_LOSS_HINGE"
    ]


def test_a_name_only_c_has_is_reported(monkeypatch):
    monkeypatch.delitem(optimizers.KINDS, "adagrad")
    assert mismatches() == [
        "FBP_OPT_ADAGRAD is 3 in csrc/fbp_kernels.h but fastbp/optimizers.py "
        "has no optimizer 'adagrad'"
    ]


def test_every_mismatch_is_named(monkeypatch):
    monkeypatch.setitem(optimizers.KINDS, "sgd", 9)
    monkeypatch.setitem(plan.KINDS, "conv", 5)
    found = mismatches()
    assert len(found) == 2
    assert any("FBP_OPT_SGD is 0" in m for m in found)
    assert any("FBP_NODE_CONV" in m for m in found)


def test_a_mismatch_refuses_the_compiled_backend(monkeypatch):
    monkeypatch.setitem(losses.CODES, "mse", 3)
    cls, reason = backends._load_cython()
    assert cls is None
    assert "loss 'mse' is 3 in fastbp/losses.py but FBP_LOSS_MSE is 0" in reason
    assert "rebuild" in reason


# --- optimiser hyper-parameters: by field name -------------------------------------------

OPTIMIZER_CLASSES = sorted(optimizers.OPTIMIZERS.values(), key=lambda cls: cls.name)


def test_the_hyper_struct_has_a_real_rho():
    assert engine.HYPER_FIELDS == (
        "kind",
        "nesterov",
        "momentum",
        "beta1",
        "beta2",
        "rho",
        "eps",
        "decay",
    )
    assert engine.STRUCT_FIELDS["fbp_hyper"] == engine.HYPER_FIELDS


@pytest.mark.parametrize("cls", OPTIMIZER_CLASSES, ids=lambda cls: cls.name)
def test_hyper_keys_are_the_struct_fields(cls):
    assert list(cls().hyper()) == list(engine.HYPER_FIELDS)


def test_hyper_values_are_the_optimisers_own():
    assert optimizers.RMSProp(rho=0.5, eps=1e-4).hyper() == dict(
        kind=optimizers.RMSPROP_KIND,
        nesterov=0,
        momentum=0.0,
        beta1=0.0,
        beta2=0.0,
        rho=0.5,
        eps=1e-4,
        decay=0.0,
    )
    assert optimizers.AdamW(weight_decay=0.1).hyper()["decay"] == 0.1
    assert optimizers.SGD(momentum=0.5, nesterov=True).hyper()["nesterov"] == 1


def test_hyper_refreshes_a_given_dict_in_place():
    opt = optimizers.Adam(beta1=0.8)
    out = {}
    assert opt.hyper(out=out) is out and out["beta1"] == 0.8
    opt.beta1 = 0.7
    assert opt.hyper(out=out)["beta1"] == 0.7 and len(out) == len(engine.HYPER_FIELDS)


def trained_engine():
    model = fb.Sequential(
        [fb.Dense(4, activation="tanh", input_dim=3), fb.Dense(2)],
        loss="mse",
        optimizer=fb.RMSProp(),
        dtype="float64",
        seed=0,
        backend="cython",
    )
    X, y = np.ones((5, 3)), np.zeros((5, 2))
    model.train_step(X, y)
    return model._backend._engine, X, y


def engine_step(hyper, loss_code=losses.MSE):
    eng, X, y = trained_engine()
    return eng.step(X, y, None, len(X), loss_code, True, 0.01, hyper, 0.0, 0.0, False)


def engine_epoch(hyper, loss_code=losses.MSE):
    eng, X, y = trained_engine()
    order = np.arange(len(X), dtype=np.int64)
    return eng.epoch(
        X,
        y,
        None,
        order,
        2,
        np.empty((2, 3)),
        np.empty((2, 2)),
        np.empty(2),
        loss_code,
        0.01,
        hyper,
        0.0,
        0.0,
        False,
    )


@pytest.mark.parametrize("call", [engine_step, engine_epoch])
def test_a_missing_hyper_key_is_named(call):
    hyper = optimizers.RMSProp().hyper()
    del hyper["rho"]
    with pytest.raises(ValueError, match=r"hyper\(\) has no 'rho'.*fbp_hyper"):
        call(hyper)


@pytest.mark.parametrize("call", [engine_step, engine_epoch])
def test_an_unknown_hyper_key_is_named(call):
    hyper = optimizers.RMSProp().hyper()
    hyper["lr"] = 0.1
    with pytest.raises(ValueError, match="an unknown key 'lr'"):
        call(hyper)


def test_a_renamed_hyper_key_names_both():
    hyper = optimizers.RMSProp().hyper()
    hyper["beta"] = hyper.pop("beta1")
    with pytest.raises(ValueError, match="no 'beta1' and an unknown key 'beta'"):
        engine_step(hyper)


def test_hyper_drift_refuses_the_compiled_backend(monkeypatch):
    def without_rho(self, out=None):
        hyper = dict(original(self))
        del hyper["rho"]
        return hyper

    original = optimizers.Optimizer.hyper
    monkeypatch.setattr(optimizers.Optimizer, "hyper", without_rho)
    found = backends.field_mismatches(engine.STRUCT_FIELDS)
    assert "RMSProp.hyper() in fastbp/optimizers.py has no 'rho', which fbp_hyper has" in found
    cls, reason = backends._load_cython()
    assert cls is None and "Adam.hyper() in fastbp/optimizers.py has no 'rho'" in reason


def rmsprop_weights(backend, opt, steps=4):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((16, 3)), rng.integers(0, 3, 16)
    model = dense_model(
        [(3, None), (5, "tanh"), (3, None)], backend=backend, optimizer=opt, dtype="float64"
    )
    for _ in range(steps):
        model.train_step(X, y)
    return model.get_weights()


def test_rmsprop_reads_rho():
    numpy = rmsprop_weights("numpy", fb.RMSProp(lr=0.01, rho=0.5))
    cython = rmsprop_weights("cython", fb.RMSProp(lr=0.01, rho=0.5))
    for a, b in zip(cython, numpy):
        assert rel_error(a, b) <= BACKEND_RTOL[np.float64]
    other_rho = rmsprop_weights("cython", fb.RMSProp(lr=0.01, rho=0.9))
    assert max(rel_error(a, b) for a, b in zip(other_rho, cython)) > 1e-6


def test_rmsprop_ignores_beta1():
    plain = rmsprop_weights("cython", fb.RMSProp(lr=0.01, rho=0.5))
    opt = fb.RMSProp(lr=0.01, rho=0.5)
    opt.beta1 = 0.9  # hyper() passes it on; RMSProp must not read it
    assert opt.hyper()["beta1"] == 0.9
    for a, b in zip(rmsprop_weights("cython", opt), plain):
        assert np.array_equal(a, b)


# --- unknown codes: refused up front, and reported (never computed) by the C side ----------

kernels = pytest.importorskip("fastbp._kernels.kernels")


def engine_args(model):
    """The arguments the Cython backend builds an Engine from, for model's plan, with
    workspaces for 5 rows."""
    seen = []
    real = engine.Engine

    def spy(*args):
        seen.append(args)
        return real(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("fastbp.backends.cython_backend.Engine", spy)
        model.train_step(np.ones((5, 3)), np.zeros((5, 2)))
    assert args_capacity(seen[-1]) == 5
    return seen[-1]


def args_capacity(args):
    return min(len(spec["A"]) for spec in args[0])


def mlp(*layers, **kwargs):
    return fb.Sequential(
        [fb.Dense(4, activation="tanh", input_dim=3), *layers, fb.Dense(2)],
        loss="mse",
        dtype="float64",
        seed=0,
        backend="cython",
        **kwargs,
    )


def with_node(args, l, **changes):
    nodes = [dict(spec) for spec in args[0]]
    nodes[l].update(changes)
    return (nodes,) + args[1:]


@pytest.mark.parametrize(
    "act, message",
    [
        (
            99,
            r"node 0's activation code is 99, which is none of the activation codes of "
            r"csrc/fbp_kernels.h \(FBP_ACT_\*\); expected one of identity=0, sigmoid=1",
        ),
        (-1, "is -1, which is none of the activation codes"),
        (12, r"is 12 \(prelu\), which no element-wise kernel computes"),
    ],
)
def test_an_engine_with_an_unknown_activation_code_is_refused(act, message):
    args = with_node(engine_args(mlp()), 0, act=act)
    with pytest.raises(ValueError, match=message):
        engine.Engine(*args)


def test_an_engine_with_an_unknown_node_kind_is_refused():
    args = with_node(engine_args(mlp()), 1, kind=9)
    with pytest.raises(
        ValueError, match=r"node 1's kind is 9, which is none of the node codes.*dense=0"
    ):
        engine.Engine(*args)


def test_an_unknown_loss_code_is_refused():
    eng, X, y = trained_engine()
    hyper = optimizers.RMSProp().hyper()
    with pytest.raises(ValueError, match="the loss code is 9, which is none of the loss codes"):
        engine_step(hyper, 9)
    with pytest.raises(ValueError, match="the loss code is 9"):
        eng.loss_sum(X, y, None, len(X), 9)
    with pytest.raises(ValueError, match="the loss code is 9"):
        engine_epoch(hyper, 9)


@pytest.mark.parametrize("call", [engine_step, engine_epoch])
def test_an_unknown_optimiser_kind_is_refused(call):
    hyper = optimizers.RMSProp().hyper()
    hyper["kind"] = 7
    with pytest.raises(
        ValueError, match=r"hyper\(\)\['kind'\] is 7, which is none of the optimizer codes"
    ):
        call(hyper)


def test_the_c_kernels_report_an_unknown_optimiser_kind(monkeypatch):
    monkeypatch.setattr(engine, "OPTIMIZERS", frozenset(range(10)))  # skip the up-front check
    hyper = optimizers.RMSProp().hyper()
    hyper["kind"] = 7
    with pytest.raises(ValueError, match="met an unknown optimizer code"):
        engine_step(hyper)


def test_an_unknown_optimiser_kind_leaves_the_weights_alone(monkeypatch):
    monkeypatch.setattr(engine, "OPTIMIZERS", frozenset(range(10)))
    model = mlp(optimizer=fb.RMSProp())
    X, y = np.ones((5, 3)), np.zeros((5, 2))
    model.train_step(X, y)
    before = model.get_weights()
    bad = {**model.optimizer.hyper(), "kind": 7}
    monkeypatch.setattr(type(model.optimizer), "hyper", lambda self, out=None: dict(bad))
    with pytest.raises(ValueError, match="met an unknown optimizer code"):
        model.train_step(X, y)
    for a, b in zip(model.get_weights(), before):
        assert np.array_equal(a, b)


def unchecked(monkeypatch, module):
    """Switch off a module's up-front code checks, to reach the C kernels' own."""
    monkeypatch.setattr(module, "check_code", lambda *args: None)
    monkeypatch.setattr(module, "check_activation", lambda *args: None)


@pytest.mark.parametrize("act", [99, 12])
def test_the_c_kernels_report_an_unknown_activation(monkeypatch, act):
    unchecked(monkeypatch, engine)
    args = with_node(engine_args(mlp()), 0, act=act)
    eng = engine.Engine(*args)
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match="met an unknown activation code"):
        eng.forward(X, 2, False)
    with pytest.raises(ValueError, match="met an unknown activation code"):
        eng.backward(X, 2, None)


def test_the_c_kernels_report_an_unknown_node_kind(monkeypatch):
    unchecked(monkeypatch, engine)
    eng = engine.Engine(*with_node(engine_args(mlp()), 1, kind=9))
    X = np.ones((2, 3))
    for call in (
        lambda: eng.forward(X, 2, True),
        lambda: eng.backward(X, 2, None),
        lambda: eng.predict(X, np.empty((2, 2)), *(np.empty((2, 4)),) * 3, 2),
    ):
        with pytest.raises(ValueError, match="met an unknown node code"):
            call()


def test_the_c_side_reports_an_unknown_loss(monkeypatch):
    monkeypatch.setattr(engine, "LOSSES", frozenset(range(10)))
    eng, X, y = trained_engine()
    with pytest.raises(ValueError, match="met an unknown loss code"):
        eng.loss_sum(X, y, None, len(X), 9)
    with pytest.raises(ValueError, match="met an unknown loss code"):
        eng.step(X, y, None, len(X), 9, True, 0.01, optimizers.RMSProp().hyper(), 0.0, 0.0, False)


# the kernels.pyx wrappers: (call with an activation or loss code, what it must leave alone)
def _wrapper_calls():
    Z = np.linspace(-1, 1, 6).reshape(2, 3)
    W, b = np.ones((3, 3)), np.zeros(3)
    return {
        "activation_forward": lambda code, out: kernels.activation_forward(Z, out, code),
        "activation_backward": lambda code, out: kernels.activation_backward(Z, Z, Z, out, code),
        "dense_forward": lambda code, out: kernels.dense_forward(
            Z, W, b, np.empty((2, 3)), out, code
        ),
        "dense_backward": lambda code, out: kernels.dense_backward(
            Z, W, Z.copy(), Z.copy(), out, np.empty((3, 3)), np.empty(3), None, code
        ),
        "loss_and_output_grad": lambda code, out: kernels.loss_and_output_grad(
            code, Z, Z, Z, out, 1.0
        ),
    }


@pytest.mark.parametrize("name", sorted(_wrapper_calls()))
@pytest.mark.parametrize("code", [99, -3])
def test_kernel_wrappers_refuse_an_unknown_code(name, code):
    out = np.full((2, 3), 7.0)
    with pytest.raises(
        ValueError, match=f"is {code}, which is none of the (activation|loss) codes"
    ):
        _wrapper_calls()[name](code, out)
    assert np.all(out == 7.0)


@pytest.mark.parametrize(
    "name", ["activation_forward", "activation_backward", "dense_forward", "dense_backward"]
)
def test_kernel_wrappers_refuse_prelus_code(name):
    with pytest.raises(ValueError, match=r"12 \(prelu\)"):
        _wrapper_calls()[name](activations.PRELU, np.empty((2, 3)))


@pytest.mark.parametrize("name", sorted(_wrapper_calls()))
def test_the_c_kernels_compute_nothing_for_an_unknown_code(monkeypatch, name):
    unchecked(monkeypatch, kernels)
    out = np.full((2, 3), 7.0)
    with pytest.raises(ValueError, match=r"the C kernels met an unknown (activation|loss) code"):
        _wrapper_calls()[name](99, out)
    assert np.all(out == 7.0)


# --- node traits: what a kind is, besides its math, said once ----------------------------


def every_layer_model(backend="cython"):
    return fb.Sequential(
        [
            fb.Dense(6, activation="relu", input_dim=3),
            fb.Dropout(0.25),
            fb.Maxout(4, pieces=3),
            fb.Activation("tanh"),
            fb.PReLU(),
            fb.Dense(5, activation="prelu"),
            fb.Dense(2),
        ],
        loss="mse",
        dtype="float64",
        seed=0,
        backend=backend,
    )


def test_every_node_kind_has_traits_and_numpy_rules():
    from fastbp.backends import numpy_backend

    assert set(plan.TRAITS) == set(plan.KINDS.values()) == set(numpy_backend.NODES)


def test_the_plans_workspaces_follow_the_traits():
    model = every_layer_model()
    model.train_step(np.ones((4, 3)), np.zeros((4, 2)))
    nodes = model._backend.plan.nodes
    assert {node.kind for node in nodes} == set(plan.KINDS.values())
    for l, node in enumerate(nodes):
        traits = plan.TRAITS[node.kind]
        assert node.traits is traits
        assert (node.Z is not None) == traits.affine
        assert (node.dZ is not None) == traits.wide_z
        assert (node.mask is not None) == traits.has_mask
        assert (l > 0 and node.delta is nodes[l - 1].delta) == traits.elementwise


def test_the_engine_traits_struct_has_the_plans_fields():
    assert engine.STRUCT_FIELDS["Traits"] == tuple(
        field.name for field in dataclasses.fields(plan.NodeTraits)
    )
    assert backends.field_mismatches(engine.STRUCT_FIELDS) == []


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.pop("wide_z"), "node 0's traits has no 'wide_z'"),
        (lambda t: t.update(pieces=True), "node 0's traits has an unknown key 'pieces'"),
    ],
)
def test_an_engine_names_a_missing_or_unknown_trait(change, message):
    args = engine_args(mlp())
    traits = dict(args[0][0]["traits"])
    change(traits)
    with pytest.raises(ValueError, match=message + ".*Traits in fastbp/_kernels/engine.pyx"):
        engine.Engine(*with_node(args, 0, traits=traits))


def test_the_engine_asks_for_the_workspaces_the_traits_name():
    args = engine_args(mlp())
    traits = {**args[0][0]["traits"], "has_mask": True}
    with pytest.raises(ValueError, match=r"node 0 .* needs its mask workspace"):
        engine.Engine(*with_node(args, 0, traits=traits))


def test_trait_drift_refuses_the_compiled_backend(monkeypatch):
    monkeypatch.setattr(
        plan.NodeTraits, "as_dict", lambda self: {**dataclasses.asdict(self), "has_bias": False}
    )
    assert backends.field_mismatches(engine.STRUCT_FIELDS) == [
        "NodeTraits in fastbp/plan.py has 'has_bias', which Traits has not"
    ]
    cls, reason = backends._load_cython()
    assert cls is None and "'has_bias'" in reason


def test_inference_and_training_agree_across_backends_for_every_kind():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    models = [every_layer_model(backend) for backend in ("numpy", "cython")]
    for model in models:
        model.train_step(X, y)
    numpy, cython = (model.predict(X) for model in models)
    assert rel_error(cython, numpy) <= BACKEND_RTOL[np.float64]
    for a, b in zip(models[1].get_weights(), models[0].get_weights()):
        assert rel_error(a, b) <= BACKEND_RTOL[np.float64]
