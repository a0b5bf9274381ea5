"""Both backends implement every member of fastbp.backends.protocol.Backend, with
compatible signatures: the Protocol's parameters, by name and kind, in order (an
implementation may add parameters after them only if they have defaults), and a
default wherever the Protocol has one."""

import inspect

import numpy as np
import pytest

from fastbp import backends
from fastbp.backends.numpy_backend import NumpyBackend
from fastbp.backends.protocol import Backend

IMPLEMENTATIONS = [NumpyBackend] + ([backends.CythonBackend] if backends.CythonBackend else [])


def protocol_members(protocol):
    """(methods, attributes) the Protocol declares (its own, not object's)."""
    methods, attributes = {}, set()
    for klass in protocol.__mro__:
        if klass is object or klass.__name__ in ("Protocol", "Generic"):
            continue
        attributes |= set(getattr(klass, "__annotations__", {}))
        for name, value in vars(klass).items():
            if callable(value) and not name.startswith("_"):
                methods.setdefault(name, value)
    return methods, attributes


def signature_problems(expected, actual, where):
    """Why `actual` cannot stand in for `expected` (an empty list when it can)."""
    want = list(inspect.signature(expected).parameters.values())
    got = list(inspect.signature(actual).parameters.values())
    problems = []
    for k, p in enumerate(want):
        if k >= len(got):
            problems.append(f"{where} lacks parameter {p.name!r}")
            continue
        q = got[k]
        if (q.name, q.kind) != (p.name, p.kind):
            problems.append(
                f"{where} parameter {k} is {q.name!r} ({q.kind.description}), "
                f"expected {p.name!r} ({p.kind.description})"
            )
        elif p.default is not inspect.Parameter.empty and q.default is inspect.Parameter.empty:
            problems.append(f"{where} parameter {p.name!r} needs a default, as in the Protocol")
    for q in got[len(want) :]:
        optional = q.default is not inspect.Parameter.empty or q.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        if not optional:
            problems.append(f"{where} has an extra required parameter {q.name!r}")
    return problems


def conformance_problems(cls, protocol=Backend):
    """Every way cls falls short of the protocol: missing members, wrong signatures."""
    methods, attributes = protocol_members(protocol)
    problems = []
    for name, method in sorted(methods.items()):
        impl = getattr(cls, name, None)
        if impl is None or not callable(impl):
            problems.append(f"{cls.__name__}.{name} is missing")
            continue
        problems += signature_problems(method, impl, f"{cls.__name__}.{name}")
    # attributes: class-level ones are checked on the class, instance ones (plan)
    # are set in __init__, whose parameter must then be named for them
    init_params = inspect.signature(cls.__init__).parameters
    for name in sorted(attributes):
        if not hasattr(cls, name) and name not in init_params:
            problems.append(f"{cls.__name__} has no attribute {name!r}")
    return problems


def test_protocol_members_are_the_expected_ones():
    methods, attributes = protocol_members(Backend)
    assert set(methods) == {
        "forward",
        "activations",
        "backward",
        "invalidate",
        "step",
        "epoch",
        "predict",
        "loss_sum",
    }
    assert attributes == {"name", "plan"}


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_backend_implements_protocol(cls):
    assert conformance_problems(cls) == []


@pytest.mark.skipif(backends.CythonBackend is None, reason="compiled backend not built")
def test_both_backends_are_checked():
    assert {cls.__name__ for cls in IMPLEMENTATIONS} == {"NumpyBackend", "CythonBackend"}


@pytest.mark.parametrize("cls", IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_live_backend_instance_is_complete(cls):
    import fastbp as fb

    model = fb.Sequential([fb.Dense(2, input_dim=3)], backend=cls.name)
    backend = model._backend
    assert isinstance(backend, cls)
    methods, attributes = protocol_members(Backend)
    for name in methods | dict.fromkeys(attributes):
        assert hasattr(backend, name), name
    assert backend.predict(np.zeros((1, 3), dtype=np.float32)).shape == (1, 2)


class _Incomplete:
    """A backend without loss_sum, whose step lacks `weights` and whose forward
    renames `training`."""

    name = "incomplete"

    def __init__(self, plan):
        self.plan = plan

    def forward(self, X, train=False):
        return X

    def activations(self):
        return []

    def backward(self, dout, need_dX=True):
        return None

    def invalidate(self):
        pass

    def step(self, X, y, loss, opt, update, lr):
        return 0.0, 0

    def epoch(self, X, y, order, batch_size, loss, opt, lr, weights=None, total=0.0, extra=None):
        return 0.0, 0, 0

    def predict(self, X, required):
        return X


def test_an_incomplete_backend_fails():
    problems = conformance_problems(_Incomplete)
    text = "\n".join(problems)
    assert "_Incomplete.loss_sum is missing" in text
    assert "_Incomplete.step lacks parameter 'weights'" in text
    assert "_Incomplete.forward parameter 2 is 'train'" in text
    assert "_Incomplete.predict has an extra required parameter 'required'" in text
    # an extra optional parameter is fine
    assert not any("epoch" in p for p in problems)
    assert len(problems) == 4


def test_a_missing_attribute_fails():
    class NoName(_Incomplete):
        pass

    del _Incomplete.name
    try:
        assert "NoName has no attribute 'name'" in conformance_problems(NoName)
    finally:
        _Incomplete.name = "incomplete"


def test_a_removed_default_fails():
    class NoDefault(NumpyBackend):
        def backward(self, dout, need_dX):
            return None

    assert conformance_problems(NoDefault) == [
        "NoDefault.backward parameter 'need_dX' needs a default, as in the Protocol"
    ]
