"""fastbp.datasets: the bundled digits, the generators, the split and the standardiser."""

import hashlib
from importlib import resources

import numpy as np
import pytest

import fastbp as fb
from fastbp import datasets
from fastbp.datasets import Standardizer, standardize, train_test_split

# --------------------------------------------------------------------------- digits

DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def data_file(name):
    return resources.files("fastbp").joinpath("data").joinpath(name)


def test_digits_shapes_dtypes_and_values():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16
    assert np.array_equal(X, np.round(X)), "pixels are counts, so whole numbers"
    counts = np.bincount(y)
    assert counts.size == 10 and counts.sum() == 1797
    assert counts.min() >= 174 and counts.max() <= 183


def test_digits_first_image_is_a_zero():
    X, y = datasets.load_digits()
    assert y[0] == 0
    assert X[0].reshape(8, 8)[0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_calls_return_independent_arrays():
    X, y = datasets.load_digits()
    X[:] = -1
    y[:] = -1
    X_again, y_again = datasets.load_digits()
    assert X_again.min() == 0 and y_again.min() == 0


def test_digits_file_is_the_documented_copy():
    blob = data_file("digits.csv.gz").read_bytes()
    assert len(blob) < 100_000
    assert hashlib.sha256(blob).hexdigest() == DIGITS_SHA256
    licence = data_file("DIGITS_LICENSE.txt").read_text(encoding="utf-8")
    for must_say in [
        "CC BY 4.0",
        "Alpaydin",
        "Kaynak",
        "10.24432/C50P49",
        "scikit-learn",
        DIGITS_SHA256,
    ]:
        assert must_say in licence


# ----------------------------------------------------------------------- generators


def test_xor():
    X, y = datasets.xor()
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == [0, 1, 1, 0]


GENERATORS = {
    "spiral": (datasets.spiral, dict(n_per_class=50, n_classes=4), [50] * 4),
    "moons": (datasets.moons, dict(n_samples=101), [50, 51]),
    "circles": (datasets.circles, dict(n_samples=101), [50, 51]),
}


@pytest.fixture(params=list(GENERATORS))
def generator(request):
    return GENERATORS[request.param]


def test_generator_shapes_dtypes_and_class_counts(generator):
    make, kwargs, counts = generator
    X, y = make(**kwargs)
    assert X.shape == (sum(counts), 2) and X.dtype == np.float64
    assert y.shape == (sum(counts),) and y.dtype == np.int64
    assert np.bincount(y).tolist() == counts
    assert np.all(np.isfinite(X))


def test_generator_is_deterministic_under_a_seed(generator):
    make, kwargs, _ = generator
    X1, y1 = make(**kwargs, seed=7)
    X2, y2 = make(**kwargs, seed=7)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)


def test_generator_differs_across_seeds(generator):
    make, kwargs, _ = generator
    X1, y1 = make(**kwargs, seed=1)
    X2, y2 = make(**kwargs, seed=2)
    assert np.array_equal(y1, y2)
    assert not np.allclose(X1, X2)


def test_circles_radii():
    X, y = datasets.circles(n_samples=40, noise=0.0, factor=0.3)
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[y == 0], 1.0)
    np.testing.assert_allclose(radius[y == 1], 0.3)


def test_moons_lie_on_their_half_circles():
    X, y = datasets.moons(n_samples=40, noise=0.0)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0)
    assert upper[:, 1].min() >= -1e-12 and lower[:, 1].max() <= 0.5 + 1e-12


def test_spiral_arms_are_rotated_copies():
    X, y = datasets.spiral(n_per_class=30, n_classes=3, noise=0.0)
    radius = np.hypot(X[:, 0], X[:, 1])
    assert radius.min() >= 0.05 - 1e-12 and radius.max() <= 1.0 + 1e-12
    turn = 2 * np.pi / 3
    rotate = np.array([[np.cos(turn), np.sin(turn)], [-np.sin(turn), np.cos(turn)]])
    # arm 1 is arm 0 turned by a third of a circle (clockwise in these coordinates)
    np.testing.assert_allclose(X[y == 0] @ rotate.T, X[y == 1], atol=1e-12)


@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (datasets.moons, dict(n_samples=1), "n_samples"),
        (datasets.circles, dict(n_samples=0), "n_samples"),
        (datasets.moons, dict(noise=-0.1), "noise"),
        (datasets.circles, dict(factor=1.0), "factor"),
        (datasets.circles, dict(factor=0.0), "factor"),
        (datasets.spiral, dict(n_per_class=0), "n_per_class"),
        (datasets.spiral, dict(n_classes=2.5), "n_classes"),
    ],
)
def test_generator_rejects_bad_arguments(make, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


# ---------------------------------------------------------------------------- split


def numbered(n_samples, labels=None):
    """X whose first column is the sample's number, so rows can be traced; y its labels."""
    X = np.column_stack([np.arange(n_samples), np.zeros(n_samples)])
    y = np.arange(n_samples) % 3 if labels is None else np.asarray(labels)
    return X, y


@pytest.mark.parametrize("stratify", [True, False])
def test_split_keeps_every_sample_once_and_rows_aligned(stratify):
    X, y = numbered(100)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=stratify)
    ids = np.concatenate([X_train[:, 0], X_test[:, 0]]).astype(int)
    assert np.array_equal(np.sort(ids), np.arange(100))
    assert np.array_equal(y_train, y[X_train[:, 0].astype(int)])
    assert np.array_equal(y_test, y[X_test[:, 0].astype(int)])


@pytest.mark.parametrize(
    "test_size, n_test", [(0.25, 25), (0.3, 30), (0.101, 11), (7, 7), (99, 99)]
)
@pytest.mark.parametrize("stratify", [True, False])
def test_split_sizes(test_size, n_test, stratify):
    X, y = numbered(100)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=stratify
    )
    assert len(X_test) == len(y_test) == n_test
    assert len(X_train) == len(y_train) == 100 - n_test


def test_split_fraction_is_not_fooled_by_rounding():
    X, y = numbered(10)
    assert len(train_test_split(X, y, test_size=0.3)[1]) == 3  # 0.3 * 10 = 3.0000000000000004


@pytest.mark.parametrize("stratify", [True, False])
def test_split_is_deterministic_under_a_seed_and_shuffled(stratify):
    X, y = numbered(60)
    first = train_test_split(X, y, seed=3, stratify=stratify)
    again = train_test_split(X, y, seed=3, stratify=stratify)
    other = train_test_split(X, y, seed=4, stratify=stratify)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])
    train_ids = first[0][:, 0]
    assert not np.all(np.diff(train_ids) > 0), "the training set should come shuffled"


def test_stratified_split_keeps_digit_proportions():
    X, y = datasets.load_digits()
    _, _, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)
    n_test = len(y_test)
    expected = np.bincount(y) * n_test / len(y)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - expected) < 1)
    assert np.array_equal(np.bincount(y_train) + np.bincount(y_test), np.bincount(y))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("test_size", [0.1, 0.25, 0.5, 0.9, 13])
def test_stratified_split_on_unbalanced_classes(seed, test_size):
    labels = np.repeat(np.array(["a", "b", "c", "d"]), [70, 20, 7, 3])
    X, y = numbered(100, labels)
    _, _X_test, _, y_test = train_test_split(X, y, test_size=test_size, seed=seed)
    classes, counts = np.unique(y, return_counts=True)
    for label, count in zip(classes, counts):
        share = count * len(y_test) / len(y)
        assert abs(np.sum(y_test == label) - share) < 1, label
        if test_size in (0.25, 0.5, 13):  # sizes where every class can keep both sets
            assert 1 <= np.sum(y_test == label) <= count - 1, label


def test_stratified_split_small_classes():
    # a singleton class stays in training; a class of two gives one sample to each set
    X, y = numbered(12, [0] * 9 + [1, 1] + [2])
    _, _, y_train, y_test = train_test_split(X, y, test_size=2, seed=0)
    assert np.sum(y_train == 2) == 1
    assert np.sum(y_test == 1) == 1 and np.sum(y_train == 1) == 1


def test_stratified_split_with_more_classes_than_test_samples():
    X, y = numbered(20, np.repeat(np.arange(10), 2))
    _, _, y_train, y_test = train_test_split(X, y, test_size=3, seed=0)
    assert len(y_test) == 3 and len(np.unique(y_test)) == 3
    assert len(np.unique(y_train)) == 10


def test_unstratified_split_accepts_regression_targets():
    X, _ = numbered(20)
    targets = np.linspace(0, 1, 40).reshape(20, 2)
    _, _, t_train, t_test = train_test_split(X, targets, test_size=5, stratify=False)
    assert t_train.shape == (15, 2) and t_test.shape == (5, 2)


@pytest.mark.parametrize(
    "X, y, kwargs, message",
    [
        (np.zeros((10, 2)), np.zeros(9), {}, "10 samples but y has 9"),
        (np.zeros((1, 2)), np.zeros(1), {}, "at least 2 samples"),
        (np.zeros((0, 2)), np.zeros(0), {}, "at least 2 samples"),
        (np.zeros((10, 2)), np.zeros((10, 2)), {}, "stratify=False"),
        (np.zeros((10, 2)), np.linspace(0, 1, 10), {}, "stratify=False"),
    ],
)
def test_split_rejects_bad_arguments(X, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_test_split(X, y, **kwargs)


@pytest.mark.parametrize(
    "test_size, message",
    [
        (0.0, r"test_size must be a number in \(0, 1\); got 0.0"),
        (1.0, r"test_size must be a number in \(0, 1\); got 1.0"),
        (-0.2, r"test_size must be a number in \(0, 1\)"),
        (0.99, r"test_size must be a number in \(0, 0.9\] for 10"),
        (0, r"test_size must be an integer in \[1, 9\]; got 0"),
        (10, r"test_size must be an integer in \[1, 9\]; got 10"),
        (True, "test_size"),
        ("half", "test_size"),
    ],
)
def test_split_rejects_a_bad_test_size(test_size, message):
    """A fraction in (0, 1) that leaves both sides a sample, or a count in [1, n - 1]."""
    with pytest.raises(ValueError, match=message):
        train_test_split(np.zeros((10, 2)), np.zeros(10), test_size=test_size)


# -------------------------------------------------------------------- standardising


def train_and_test_features(seed=0):
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 10.0, 0.01, 3.0])
    X_train = rng.normal(5.0, 1.0, (200, 4)) * scale
    X_test = rng.normal(5.0, 1.0, (50, 4)) * scale
    return X_train, X_test


def test_standardize_gives_train_zero_mean_and_unit_std():
    X_train, X_test = train_and_test_features()
    X_train_s, X_test_s = standardize(X_train, X_test)
    assert X_train_s.shape == X_train.shape and X_test_s.shape == X_test.shape
    np.testing.assert_allclose(X_train_s.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X_train_s.std(axis=0), 1.0, rtol=1e-12)


def test_standardize_applies_train_statistics_to_test():
    X_train, X_test = train_and_test_features()
    _, X_test_s = standardize(X_train, X_test)
    expected = (X_test - X_train.mean(axis=0)) / X_train.std(axis=0)
    np.testing.assert_allclose(X_test_s, expected, rtol=1e-12)
    assert np.abs(X_test_s.mean(axis=0)).max() > 1e-3, "test statistics must not be used"


def test_standardize_with_one_array_returns_it_alone():
    X_train, _ = train_and_test_features()
    X_train_s = standardize(X_train)
    assert isinstance(X_train_s, np.ndarray) and X_train_s.shape == X_train.shape


def test_standardize_many_arrays():
    X_train, X_test = train_and_test_features()
    out = standardize(X_train, X_test, X_test[:5])
    assert len(out) == 3 and np.array_equal(out[2], out[1][:5])


def test_constant_columns_are_centred_not_divided_by_zero():
    X_train = np.array([[1.0, 0.1, 2.0], [1.0, 0.1, 4.0], [1.0, 0.1, 6.0]])
    X_test = np.array([[3.0, 0.1, 4.0]])
    with np.errstate(all="raise"):
        scaler = Standardizer().fit(X_train)
        X_train_s, X_test_s = scaler.transform(X_train), scaler.transform(X_test)
    assert scaler.scale_[:2].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(X_train_s[:, :2], 0.0, atol=1e-15)
    np.testing.assert_allclose(X_test_s[0, :2], [2.0, 0.0], atol=1e-15)


def test_standardizer_statistics_and_inverse():
    X_train, X_test = train_and_test_features()
    scaler = Standardizer().fit(X_train)
    assert scaler.mean_.shape == scaler.scale_.shape == (4,)
    assert scaler.n_features_in_ == 4
    np.testing.assert_allclose(scaler.mean_, X_train.mean(axis=0))
    np.testing.assert_allclose(scaler.scale_, X_train.std(axis=0))
    np.testing.assert_allclose(
        scaler.inverse_transform(scaler.transform(X_test)), X_test, rtol=1e-12
    )
    np.testing.assert_array_equal(scaler.fit_transform(X_train), standardize(X_train))


def test_standardizer_dtypes():
    X_train, _ = train_and_test_features()
    assert standardize(X_train.astype(np.float32)).dtype == np.float32
    assert standardize(X_train).dtype == np.float64
    assert standardize(np.arange(12).reshape(6, 2)).dtype == np.float64


def test_standardizer_rejects_bad_input():
    X_train, _ = train_and_test_features()
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().transform(X_train)
    scaler = Standardizer().fit(X_train)
    with pytest.raises(ValueError, match="3 features, but the Standardizer was fitted on 4"):
        scaler.transform(X_train[:, :3])
    with pytest.raises(ValueError, match="2-D"):
        Standardizer().fit(X_train[:, 0])
    with pytest.raises(ValueError, match="empty"):
        Standardizer().fit(np.zeros((0, 4)))


# ----------------------------------------------------------------------- end to end


def test_mlp_learns_digits():
    X, y = datasets.load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)
    X_train, X_test = standardize(X_train, X_test)
    model = fb.Sequential(
        [fb.Dense(64, activation="relu", input_dim=64), fb.Dense(10)],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.1),
        seed=0,
    )
    model.fit(X_train, y_train, epochs=20, batch_size=32, verbose=0)
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.95


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_learns_moons(activation):
    X, y = datasets.moons(n_samples=400, noise=0.1, seed=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)
    X_train, X_test = standardize(X_train, X_test)
    model = fb.Sequential(
        [fb.Dense(16, activation=activation, input_dim=2), fb.Dense(2)],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.5),
        seed=0,
    )
    model.fit(X_train, y_train, epochs=100, batch_size=16, verbose=0)
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.95
