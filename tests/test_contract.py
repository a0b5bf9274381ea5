"""The Python<->C contract (DESIGN.md §5): integer codes declared once in
csrc/fbp_kernels.h and checked against the Python registries, structs crossing by
field name, and no unknown code silently computed as something else."""
import dataclasses

import pytest

from fastbp import activations, backends, losses, optimizers, plan

engine = pytest.importorskip("fastbp._kernels.engine")
codes = pytest.importorskip("fastbp._kernels.codes")

# group -> Python's {name: code}, written out here independently of backends.PYTHON_CODES
PYTHON = {
    "activation": lambda: {name: spec.code for name, spec in activations.ACTIVATIONS.items()},
    "loss": lambda: losses.CODES,
    "optimizer": lambda: optimizers.KINDS,
    "node": lambda: plan.KINDS,
}
ENUM_CLASSES = {"activation": codes.fbp_act, "loss": codes.fbp_loss,
                "optimizer": codes.fbp_opt, "node": codes.fbp_node}


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
    assert {prefix + name.upper(): code for name, code in engine.CODES[group].items()} \
        == {member: int(value) for member, value in members.items()}


def test_header_constants_reach_python_by_name():
    assert codes.fbp_act.FBP_ACT_GELU == activations.ACTIVATIONS["gelu"].code
    assert codes.fbp_loss.FBP_LOSS_SOFTMAX_KL == losses.SOFTMAX_KL
    assert codes.fbp_opt.FBP_OPT_RMSPROP == optimizers.RMSPROP_KIND
    assert codes.fbp_node.FBP_NODE_MAXOUT == plan.MAXOUT


def test_registries_agree_with_the_build():
    assert mismatches() == []
    assert backends.CYTHON_UNAVAILABLE is None


def test_a_changed_code_is_reported(monkeypatch):
    spec = activations.ACTIVATIONS["gelu"]
    monkeypatch.setitem(activations.ACTIVATIONS, "gelu", dataclasses.replace(spec, code=11))
    assert mismatches() == ["activation 'gelu' is 11 in fastbp/activations.py but FBP_ACT_GELU "
                            "is 10 in csrc/fbp_kernels.h"]


def test_a_changed_node_kind_is_reported(monkeypatch):
    monkeypatch.setitem(plan.KINDS, "dropout", 7)
    assert mismatches() == ["node 'dropout' is 7 in fastbp/plan.py but FBP_NODE_DROPOUT is 4 in "
                            "csrc/fbp_kernels.h"]


def test_a_name_only_python_has_is_reported(monkeypatch):
    monkeypatch.setitem(losses.CODES, "hinge", 5)
    assert mismatches() == ["loss 'hinge' is 5 in fastbp/losses.py but csrc/fbp_kernels.h has "
                            "no FBP_LOSS_HINGE"]


def test_a_name_only_c_has_is_reported(monkeypatch):
    monkeypatch.delitem(optimizers.KINDS, "adagrad")
    assert mismatches() == ["FBP_OPT_ADAGRAD is 3 in csrc/fbp_kernels.h but fastbp/optimizers.py "
                            "has no optimizer 'adagrad'"]


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
