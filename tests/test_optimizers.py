"""Optimisers against their closed forms, the two backends against each other,
clipping, schedules, and optimiser state through save/load."""

import dataclasses
import math

import numpy as np
import pytest

import fastbp as fb
from fastbp import schedules
from tests.helpers import BACKEND_RTOL, OPTIMIZER_CASES, rel_error


def problem(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def model_with(opt, backend, dtype="float64"):
    return fb.Sequential(
        [fb.Dense(5, activation="tanh", input_dim=4), fb.Dense(3)],
        loss="softmax_cross_entropy",
        optimizer=opt,
        dtype=dtype,
        seed=0,
        backend=backend,
    )


class ClosedForm:
    """The update rules written out once more, per parameter array, in float64."""

    def __init__(self, opt, weights):
        self.opt, self.t = opt, 0
        self.state = [[np.zeros_like(w), np.zeros_like(w)] for w in weights]

    def step(self, weights, grads):
        o = self.opt
        self.t += 1
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        scale = min(1.0, o.clipnorm / norm) if o.clipnorm else 1.0
        out = []
        for k, (w, g, (s1, s2)) in enumerate(zip(weights, grads, self.state)):
            g = g * scale
            w = w.copy()
            if o.decoupled and k % 2 == 0:
                w *= 1 - o.lr * o.weight_decay
            if o.name == "sgd":
                if o.momentum:
                    s1[...] = o.momentum * s1 + g
                    w -= o.lr * (g + o.momentum * s1 if o.nesterov else s1)
                else:
                    w -= o.lr * g
            elif o.name in ("adam", "adamw"):
                s1[...] = o.beta1 * s1 + (1 - o.beta1) * g
                s2[...] = o.beta2 * s2 + (1 - o.beta2) * g * g
                m_hat, v_hat = s1 / (1 - o.beta1**self.t), s2 / (1 - o.beta2**self.t)
                w -= o.lr * m_hat / (np.sqrt(v_hat) + o.eps)
            elif o.name == "rmsprop":
                s1[...] = o.rho * s1 + (1 - o.rho) * g * g
                w -= o.lr * g / (np.sqrt(s1) + o.eps)
            elif o.name == "adagrad":
                s1[...] = s1 + g * g
                w -= o.lr * g / (np.sqrt(s1) + o.eps)
            out.append(w)
        return out


# one instance per case, made at collection as the tests read them only
OPTIMIZERS = [pytest.param(make(), id=name) for name, make in OPTIMIZER_CASES.items()]


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_update_rule_matches_its_closed_form(backend, opt):
    X, y = problem()
    model = model_with(opt, backend)
    weights = model.get_weights()
    closed = ClosedForm(opt, weights)
    for _ in range(4):
        _, grads = model.loss_and_gradients(X, y)
        weights = closed.step(weights, grads)
        model.train_step(X, y)
        for expected, actual in zip(weights, model.get_weights()):
            assert rel_error(actual, expected) < 1e-12


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_backends_agree_on_every_optimizer(dtype, opt):
    X, y = problem(64)
    weights = []
    for backend in ("numpy", "cython"):
        model = model_with(opt, backend, np.dtype(dtype).name)
        model.fit(X, y, epochs=2, batch_size=8, verbose=0)
        weights.append(np.concatenate([w.ravel() for w in model.get_weights()]))
    assert rel_error(weights[1], weights[0]) <= 10 * BACKEND_RTOL[dtype]


def test_clipping_only_acts_above_the_threshold():
    X, y = problem()
    grads = model_with(fb.SGD(), "cython").loss_and_gradients(X, y)[1]
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    for clip, factor in ((norm * 10, 1.0), (norm / 4, 0.25)):
        model = model_with(fb.SGD(lr=1.0, clipnorm=clip), "cython")
        before = model.get_weights()
        model.train_step(X, y)
        for w0, w1, g in zip(before, model.get_weights(), grads):
            np.testing.assert_allclose(w0 - w1, factor * g, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(
    "schedule, rates",
    [
        (schedules.StepDecay(step_size=2, gamma=0.5), [1, 1, 0.5, 0.5, 0.25]),
        (schedules.ExponentialDecay(gamma=0.5), [1, 0.5, 0.25, 0.125, 0.0625]),
        (
            schedules.CosineDecay(epochs=4, min_lr=0.0),
            [1, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0.0],
        ),
    ],
)
def test_schedules(schedule, rates):
    opt = fb.SGD(lr=1.0, schedule=schedule)
    assert [opt.lr_at(e) for e in range(5)] == pytest.approx(rates)


def test_fit_uses_the_scheduled_rate_each_epoch(backend):
    X, y = problem()
    model = model_with(fb.SGD(lr=0.2, schedule=schedules.ExponentialDecay(0.5)), backend)
    expected = model.get_weights()
    reference = model_with(fb.SGD(lr=0.2), backend)
    for epoch in range(3):
        reference.set_weights(expected)
        _, grads = reference.loss_and_gradients(X, y)
        expected = [w - 0.2 * 0.5**epoch * g for w, g in zip(expected, grads)]
    model.fit(X, y, epochs=3, batch_size=None, shuffle=False, verbose=0)
    assert model.epochs_done == 3
    for a, b in zip(model.get_weights(), expected):
        assert rel_error(a, b) < 1e-12


@pytest.mark.parametrize(
    "opt",
    [fb.Adam(lr=0.01), fb.SGD(lr=0.1, momentum=0.9, schedule=schedules.StepDecay(1, 0.5))],
    ids=repr,
)
def test_optimizer_state_survives_save_and_load(tmp_path, opt):
    X, y = problem(64)
    model = model_with(opt, "cython", "float32")
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.npz")
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    resumed = fb.load(tmp_path / "m.npz")
    assert repr(resumed.optimizer) == repr(model.optimizer)
    resumed.fit(X, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(resumed.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: fb.SGD(momentum=1.0), r"momentum must be a number in \[0, 1\); got 1.0"),
        (lambda: fb.SGD(nesterov=True), "nesterov=True needs momentum > 0"),
        (lambda: fb.Adam(beta2=1.5), "beta2"),
        (lambda: fb.RMSProp(eps=0), "eps must be a number > 0; got 0"),
        (lambda: fb.SGD(clipnorm=-1), "clipnorm"),
        (lambda: fb.SGD(schedule="cosine"), "schedule must be None or a schedule"),
        (lambda: schedules.StepDecay(step_size=0), "step_size must be an integer >= 1"),
    ],
)
def test_bad_optimizer_settings(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_every_optimiser_has_a_shared_test_case():
    """The optimiser, engine and attribute tests run over OPTIMIZER_CASES: a class
    missing from it would go untested."""
    covered = {type(make()) for make in OPTIMIZER_CASES.values()}
    missing = set(fb.optimizers.OPTIMIZERS.values()) - covered
    assert not missing, f"add a case to tests/helpers.py OPTIMIZER_CASES for {missing}"


@pytest.mark.parametrize("cls", list(fb.optimizers.OPTIMIZERS.values()))
def test_every_setting_is_checked_when_set_and_a_refusal_keeps_the_old_value(cls):
    """Picks up every field of every registered optimiser: each one has a check, and
    a string (never a valid setting) is refused without changing anything."""
    opt = cls()
    before = opt.get_config()
    for field in dataclasses.fields(cls):
        assert "check" in field.metadata, f"{cls.__name__}.{field.name} has no check"
        with pytest.raises((ValueError, TypeError), match=f"^{field.name} must be"):
            setattr(opt, field.name, "bad")
    assert opt.get_config() == before


@pytest.mark.parametrize("cls", list(fb.optimizers.OPTIMIZERS.values()))
def test_names_kinds_and_keyword_only_shared_settings(cls):
    """Each class is named after itself and runs a known rule; lr and its own
    settings come first, weight_decay/clipnorm/schedule only by keyword."""
    assert cls.name == cls.__name__.lower() and cls.kind in fb.optimizers.KINDS.values()
    params = inspect_parameters(cls)
    assert next(iter(params)) == "lr"
    shared = ["weight_decay", "clipnorm", "schedule"]
    assert [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY] == shared
    with pytest.raises(TypeError):
        cls(*[p.default for p in params.values()])
    assert repr(cls(**{k: p.default for k, p in params.items()})) == repr(cls())


def inspect_parameters(cls):
    import inspect

    return dict(inspect.signature(cls).parameters)
