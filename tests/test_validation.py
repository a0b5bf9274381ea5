"""One validator for every parameter: NumPy scalars pass wherever a number does, bools
and non-finite values never do, and every refusal reads "<name> must be <what>; got
<value>". Arrays: complex refused, bool weights accepted, and finiteness judged in the
model's dtype (an overflow is called an overflow)."""

import warnings

import numpy as np
import pytest

import fastbp as fb
from fastbp import callbacks, initializers, schedules
from fastbp import validation as check


def fit(**kwargs):
    m = fb.Sequential([fb.Dense(1, input_dim=2)], seed=0)
    return m.fit(np.ones((6, 2)), np.ones(6), verbose=0, **kwargs)


def sk_fit(**params):
    from fastbp.sklearn import ConvergenceWarning, MLPRegressor

    params = {"hidden_layer_sizes": (2,), "max_iter": 1, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch does not converge
        return MLPRegressor(**params).fit(np.ones((6, 2)), np.ones(6))


# (constructor taking one value, a good value given as a NumPy scalar, a bad value,
#  the start of the message the bad value must give)
CONSTRUCTORS = [
    (lambda v: fb.SGD(lr=v), np.float32(0.1), -1.0, "lr must be a number > 0; got -1.0"),
    (lambda v: fb.SGD(momentum=v), np.float64(0.9), 1.0, "momentum must be a number in [0, 1)"),
    (lambda v: fb.SGD(weight_decay=v), np.float16(0.5), -0.5, "weight_decay must be a number >= 0"),
    (lambda v: fb.SGD(clipnorm=v), np.int64(2), 0, "clipnorm must be a number > 0; got 0"),
    (lambda v: fb.Adam(beta1=v), np.float32(0.5), 1.5, "beta1 must be a number in [0, 1)"),
    (lambda v: fb.Adam(eps=v), np.float64(1e-7), 0.0, "eps must be a number > 0"),
    (lambda v: fb.RMSProp(rho=v), np.float32(0.9), -0.1, "rho must be a number in [0, 1)"),
    (lambda v: fb.Dense(v), np.int64(3), 2.5, "units must be an integer >= 1; got 2.5"),
    (lambda v: fb.Dense(4, input_dim=v), np.int32(3), 0, "input_dim must be an integer >= 1"),
    (lambda v: fb.Dropout(v), np.float32(0.5), 1.0, "rate must be a number in [0, 1); got 1.0"),
    (lambda v: fb.Maxout(3, pieces=v), np.int16(3), 1, "pieces must be an integer >= 2; got 1"),
    (
        lambda v: fb.PReLU(initial_slope=v),
        np.float32(0.2),
        np.nan,
        "initial_slope must be a number",
    ),
    (lambda v: fb.Activation("leaky_relu", slope=v), np.float64(0.1), -1, "slope must be a"),
    (
        lambda v: schedules.StepDecay(step_size=v),
        np.int64(5),
        0,
        "step_size must be an integer >= 1",
    ),
    (lambda v: schedules.CosineDecay(epochs=10, min_lr=v), np.float32(0.0), -1, "min_lr must be"),
    (lambda v: callbacks.EarlyStopping(patience=v), np.int64(2), -1, "patience must be an integer"),
    (lambda v: callbacks.EarlyStopping(min_delta=v), np.float32(0.1), -1, "min_delta must be a"),
    (
        lambda v: callbacks.ReduceLROnPlateau(factor=v),
        np.float64(0.5),
        1,
        "factor must be a number",
    ),
    (
        lambda v: initializers.Constant(v),
        np.float32(0.5),
        np.inf,
        "value must be a number; got inf",
    ),
    (
        lambda v: fb.datasets.moons(n_samples=v),
        np.int64(10),
        1,
        "n_samples must be an integer >= 2",
    ),
    (lambda v: fb.datasets.moons(noise=v), np.float32(0.1), -0.1, "noise must be a number >= 0"),
    (lambda v: fb.Adagrad(eps=v), np.float32(1e-6), -1e-6, "eps must be a number > 0"),
    (
        lambda v: schedules.ExponentialDecay(gamma=v),
        np.float64(0.9),
        0,
        "gamma must be a number > 0",
    ),
    (
        lambda v: callbacks.ReduceLROnPlateau(patience=v),
        np.int8(2),
        0,
        "patience must be an integer >= 1",
    ),
    (
        lambda v: callbacks.ReduceLROnPlateau(min_lr=v),
        np.float16(0),
        -1.0,
        "min_lr must be a number >= 0",
    ),
    (
        lambda v: fb.datasets.spiral(n_per_class=v),
        np.int64(5),
        0,
        "n_per_class must be an integer >= 1",
    ),
    (
        lambda v: fb.datasets.circles(factor=v),
        np.float32(0.5),
        1,
        "factor must be a number in (0, 1); got 1",
    ),
    (
        lambda v: fb.Sequential(n_threads=v),
        np.int64(2),
        0,
        "n_threads must be an integer >= 1; got 0",
    ),
    (lambda v: fb.Sequential(seed=v), np.int64(3), -1, "seed must be an integer >= 0; got -1"),
    (lambda v: fit(epochs=v), np.int64(2), -1, "epochs must be an integer >= 0; got -1"),
    (lambda v: fit(batch_size=v), np.int32(4), 0, "batch_size must be an integer >= 1; got 0"),
    (
        lambda v: fb.SGD().__setattr__("lr", v),
        np.float32(0.5),
        np.inf,
        "lr must be a number > 0; got inf",
    ),
    (
        lambda v: fb.datasets.train_test_split(np.zeros((10, 1)), np.arange(10) % 2, test_size=v),
        np.float32(0.5),
        1.5,
        "test_size must be a number in (0, 1); got 1.5",
    ),
    (
        lambda v: sk_fit(learning_rate_init=v),
        np.float32(0.1),
        0,
        "learning_rate_init must be a number > 0",
    ),
    (lambda v: sk_fit(max_iter=v), np.int64(1), 2.5, "max_iter must be an integer >= 1; got 2.5"),
    (lambda v: sk_fit(hidden_layer_sizes=(v,)), np.int64(3), 0, "hidden_layer_sizes[0] must be"),
]
IDS = [message.split(" must")[0] for *_, message in CONSTRUCTORS]


@pytest.mark.parametrize("make, good, bad, message", CONSTRUCTORS, ids=IDS)
def test_numpy_scalars_pass_and_bad_values_get_the_one_message(make, good, bad, message):
    make(good)
    with pytest.raises(ValueError) as info:
        make(bad)
    assert str(info.value).startswith(message) or message in str(info.value), str(info.value)
    assert "; got " in str(info.value)


@pytest.mark.parametrize("make, good, bad, message", CONSTRUCTORS, ids=IDS)
def test_bools_and_strings_are_not_numbers(make, good, bad, message):
    for value in (True, np.bool_(False), "1"):
        with pytest.raises(ValueError, match=r"must be an? (number|integer)"):
            make(value)


def test_the_stored_value_is_a_plain_python_number():
    sgd = fb.SGD(lr=np.float32(0.25), momentum=np.float64(0.5))
    assert type(sgd.lr) is float and sgd.lr == 0.25
    assert type(fb.Dense(np.int64(3)).units) is int
    assert type(fb.Dropout(np.float32(0.5)).rate) is float


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: check.check_real("x", 0, low=0, low_open=True), "x must be a number > 0; got 0"),
        (lambda: check.check_real("x", 2, high=1), "x must be a number <= 1; got 2"),
        (lambda: check.check_real("x", 1, 0, 1, high_open=True), r"x must be a number in [0, 1)"),
        (lambda: check.check_real("x", float("nan")), "x must be a number; got nan"),
        (lambda: check.check_int("n", 3, high=2), "n must be an integer <= 2; got 3"),
        (lambda: check.check_int("n", 1.0), "n must be an integer; got 1.0"),
        (lambda: check.check_option("mode", "mean", ("min", "max")), "mode must be one of 'min'"),
        (lambda: check.check_bool("flag", 2), "flag must be True or False; got 2"),
        (lambda: check.check_real("x", "y" * 10**6), "x must be a number; got 'yyy"),
    ],
)
def test_the_checks_themselves(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(message)
    assert len(str(info.value)) < 200  # a huge value is shortened, not echoed


def test_allow_none_and_accepted_values():
    assert check.optional(check.check_real, "x", None) is None
    assert check.optional(check.check_int, "n", 3, low=1) == 3
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        check.optional(check.check_int, "n", 0, low=1)
    with pytest.raises(ValueError, match="x must be a number; got None"):
        check.check_real("x", None)
    assert check.check_int("n", 10**400) == 10**400  # no float conversion of integers
    assert check.check_int("n", np.uint8(7), low=1) == 7
    assert check.check_option("mode", "min", ("min", "max")) == "min"
    assert check.check_bool("flag", np.bool_(True)) is True
    assert check.check_bool("flag", 0) is False


def test_options_are_checked_with_their_choices_listed():
    with pytest.raises(ValueError, match="dtype must be one of 'float32', 'float64'; got 'f16'"):
        fb.Sequential([fb.Dense(2, input_dim=2)], dtype="f16")
    with pytest.raises(ValueError, match="mode must be one of 'auto', 'min', 'max'"):
        callbacks.EarlyStopping(mode="best")
    with pytest.raises(ValueError, match="nesterov must be True or False"):
        fb.SGD(momentum=0.9, nesterov="yes")


# ---- arrays ----------------------------------------------------------------------------


def model(dtype="float32", loss="softmax_cross_entropy", outputs=3):
    return fb.Sequential(
        [fb.Dense(4, activation="tanh", input_dim=2), fb.Dense(outputs)],
        loss=loss,
        dtype=dtype,
        seed=0,
    )


def data(n=12):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 2)), np.arange(n) % 3


def refused_unchanged(m, call, error, match):
    """call() raises error(match) and leaves m's weights as they were."""
    before = m.get_weights()
    with pytest.raises(error, match=match):
        call()
    for a, b in zip(m.get_weights(), before):
        assert np.array_equal(a, b)


def test_complex_targets_and_weights_are_refused():
    X, y = data()
    m = model(loss="mse", outputs=1)
    refused_unchanged(m, lambda: m.fit(X, y + 0j, epochs=1), TypeError, "y must be real")
    m = model()
    refused_unchanged(
        m,
        lambda: m.fit(X, y, sample_weight=np.ones(len(y)) + 1j, epochs=1),
        TypeError,
        "sample_weight must be real",
    )


def test_bool_sample_weight_means_zero_and_one():
    X, y = data()
    mask = np.arange(len(y)) % 2 == 0
    as_bool, as_float = model(), model()
    as_bool.fit(X, y, sample_weight=mask, epochs=3, batch_size=4, shuffle=False)
    as_float.fit(X, y, sample_weight=mask.astype(float), epochs=3, batch_size=4, shuffle=False)
    for a, b in zip(as_bool.get_weights(), as_float.get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("what", ["X", "y", "sample_weight"])
def test_finite_float64_values_that_overflow_float32_are_called_an_overflow(what):
    X, y = data()
    m = model(loss="mse", outputs=1)
    y = y.astype(float)
    weights = np.ones(len(y))
    {"X": X, "y": y, "sample_weight": weights}[what][3] = 1e39
    refused_unchanged(
        m,
        lambda: m.fit(X, y, sample_weight=weights, epochs=1),
        ValueError,
        rf"{what} has values that overflow float32 \(largest magnitude 1e\+39\)",
    )
    # the same values fit a float64 model
    model(dtype="float64", loss="mse", outputs=1).fit(X, y, sample_weight=weights, epochs=1)


def test_nan_is_still_called_nan():
    X, y = data()
    X[0, 0] = np.nan
    m = model()
    refused_unchanged(m, lambda: m.fit(X, y, epochs=1), ValueError, "X contains NaN or infinite")


def test_huge_unsigned_labels_are_reported_as_they_are():
    X, _ = data(4)
    y = np.array([0, 1, 2, 2**63], dtype=np.uint64)
    m = model()
    refused_unchanged(
        m,
        lambda: m.fit(X, y, epochs=1),
        ValueError,
        "class labels from 0 to 9223372036854775808",
    )


def test_unsigned_labels_in_range_train_like_signed_ones():
    X, y = data()
    a, b = model(), model()
    a.fit(X, y.astype(np.uint64), epochs=2)
    b.fit(X, y.astype(np.int64), epochs=2)
    for u, v in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(u, v)


def test_a_refused_setting_keeps_the_old_value():
    sgd = fb.SGD(lr=0.5, momentum=0.9)
    for name, bad in [("lr", -1), ("momentum", np.float32(1.0)), ("lr", True), ("lr", "0.1")]:
        with pytest.raises(ValueError, match=f"{name} must be a number"):
            setattr(sgd, name, bad)
    assert (sgd.lr, sgd.momentum) == (0.5, 0.9)
    sgd.lr = np.float16(0.25)
    assert type(sgd.lr) is float and sgd.lr == 0.25


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: fb.Dense(3, activation="rleu"), "activation must be one of 'identity', "),
        (lambda: fb.Sequential(loss="hinge"), "loss must be one of 'mse', "),
        (lambda: fb.Sequential(optimizer="lbfgs"), "optimizer must be one of 'sgd', 'adam', "),
        (
            lambda: fb.Sequential(backend="gpu"),
            "backend must be one of 'numpy', 'cython'; got 'gpu'",
        ),
        (lambda: fb.Dense(3, kernel_initializer="ones"), "initializer must be one of 'zeros', "),
        (lambda: fit(on_divergence="ignore"), "on_divergence must be one of 'raise', 'stop'"),
    ],
)
def test_every_option_lists_its_choices_and_quotes_the_value(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)
    assert "; got '" in str(info.value)


def test_seeds_take_numpy_integers_and_seed_sequences_but_not_floats_or_bools():
    a = fb.Sequential([fb.Dense(2, input_dim=3)], seed=np.int64(7))
    b = fb.Sequential([fb.Dense(2, input_dim=3)], seed=np.random.SeedSequence(7))
    c = fb.Sequential([fb.Dense(2, input_dim=3)], seed=7)
    for u, v in zip(a.get_weights(), c.get_weights()):
        assert np.array_equal(u, v)
    assert len(b.get_weights()) == 2
    for bad in (1.5, True, "7", -1):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            fb.Sequential(seed=bad)
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            fb.datasets.moons(seed=bad)


def test_fit_takes_numpy_scalars_and_refuses_a_bad_argument_before_training():
    m = fb.Sequential([fb.Dense(1, input_dim=2)], seed=0)
    X, y = np.ones((6, 2)), np.ones(6)
    m.fit(X, y, epochs=np.int64(2), batch_size=np.int32(3), verbose=0)
    assert m.epochs_done == 2
    for kwargs in ({"epochs": 1.0}, {"batch_size": 0}, {"shuffle": "no"}):
        refused_unchanged(m, lambda k=kwargs: m.fit(X, y, verbose=0, **k), ValueError, "must be")
    assert m.epochs_done == 2


def test_overflow_message_names_the_dtype_and_the_fix():
    m = model()
    X, y = data()
    X[0, 0] = -1e39
    refused_unchanged(
        m,
        lambda: m.fit(X, y, epochs=1),
        ValueError,
        r"X has values that overflow float32 \(largest magnitude 1e\+39\); scale the data "
        r"or use dtype='float64'",
    )


def test_check_seed_and_setting():
    assert check.check_seed("s", np.uint32(5)) == 5 and type(check.check_seed("s", 5)) is int
    assert check.check_seed("s", None) is None
    positive = check.setting(check.check_real, low=0, low_open=True)
    assert positive(None, "lr", np.float32(0.5)) == 0.5
    with pytest.raises(ValueError, match="lr must be a number > 0; got 0"):
        positive(None, "lr", 0)
