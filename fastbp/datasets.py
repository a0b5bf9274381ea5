"""Small data sets for examples, tests and benchmarks, and the two chores around them.

- `load_digits()`: the UCI handwritten digits (8x8 images, 10 classes), shipped inside
  the package; see `fastbp/data/DIGITS_LICENSE.txt` for its attribution and licence.
- `xor()`, `spiral()`, `moons()`, `circles()`: two-dimensional toy problems, generated
  deterministically from a seed.
- `train_test_split()`: a shuffled, optionally stratified, split.
- `Standardizer` / `standardize()`: centre and scale features with training statistics.

Every function returns `X` as float64 of shape `(n_samples, n_features)` and `y` as int64
class indices of shape `(n_samples,)`. Generated points come grouped by class; shuffle
them (for example with `train_test_split`) before mini-batch training.
"""

from __future__ import annotations

import gzip
import math
import numbers
from importlib import resources

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastbp.validation import check_int, check_real, check_seed

__all__ = [
    "Standardizer",
    "circles",
    "load_digits",
    "moons",
    "spiral",
    "standardize",
    "train_test_split",
    "xor",
]

_DIGITS_FILE = "digits.csv.gz"
_DIGITS_SHAPE = (1797, 65)

# (X, y): X float64 of shape (n_samples, n_features), y int64 labels of shape (n_samples,)
Dataset = tuple[NDArray[np.float64], NDArray[np.int64]]


# --------------------------------------------------------------------------- digits


def load_digits() -> Dataset:
    """The UCI optical-recognition handwritten digits: 1797 images of 8x8 pixels.

    Each pixel counts the inked pixels of a 4x4 block of a 32x32 bitmap, so it is an
    integer from 0 to 16; `X[i].reshape(8, 8)` is the image, read row by row. The data
    ships with fastbp (no download): E. Alpaydin and C. Kaynak (1998), "Optical
    Recognition of Handwritten Digits", UCI Machine Learning Repository,
    https://doi.org/10.24432/C50P49, licensed CC BY 4.0 (see
    `fastbp/data/DIGITS_LICENSE.txt`).

    Returns
    -------
    X : ndarray of shape (1797, 64), float64
        Pixel values 0..16. Standardise them (`standardize`) before training.
    y : ndarray of shape (1797,), int64
        The digit, 0..9; every digit has between 174 and 183 samples.
    """
    data_file = resources.files("fastbp").joinpath("data").joinpath(_DIGITS_FILE)
    try:
        with data_file.open("rb") as raw, gzip.open(raw, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"the digits data file fastbp/data/{_DIGITS_FILE} is missing from this "
            "installation; reinstall fastbp from a wheel or a source checkout that "
            "includes it"
        ) from None
    if table.shape != _DIGITS_SHAPE:
        raise ValueError(
            f"fastbp/data/{_DIGITS_FILE} holds a table of shape {table.shape}, "
            f"expected {_DIGITS_SHAPE}; the file is damaged, reinstall fastbp"
        )
    return table[:, :-1].astype(np.float64), table[:, -1].copy()


# ----------------------------------------------------------------------- generators


def xor() -> Dataset:
    """The four XOR points: the smallest problem a network without a hidden layer
    cannot solve.

    Returns
    -------
    X : ndarray of shape (4, 2), float64
        `[[0, 0], [0, 1], [1, 0], [1, 1]]`.
    y : ndarray of shape (4,), int64
        `[0, 1, 1, 0]`.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def spiral(
    n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int | None = 0
) -> Dataset:
    """Interleaved spiral arms in the plane, one arm per class.

    Arm `k` starts near the origin and winds outwards to radius 1; along it the angle
    grows as `4 * radius + 2*pi*k / n_classes`, plus Gaussian noise of standard
    deviation `noise` (in radians).

    Returns
    -------
    X : ndarray of shape (n_per_class * n_classes, 2), float64
    y : ndarray of shape (n_per_class * n_classes,), int64
        Class `k` for the `k`-th block of `n_per_class` rows.
    """
    n_per_class = check_int("n_per_class", n_per_class, low=1)
    n_classes = check_int("n_classes", n_classes, low=1)
    noise = check_real("noise", noise, low=0)  # a standard deviation
    rng = np.random.default_rng(check_seed("seed", seed))
    radius = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    angle = 4.0 * radius + y * (2.0 * np.pi / n_classes) + rng.normal(0.0, noise, radius.size)
    X = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    return X, y


def moons(n_samples: int = 200, noise: float = 0.1, seed: int | None = 0) -> Dataset:
    """Two interleaving half circles of radius 1.

    Class 0 is the upper half circle centred at (0, 0); class 1 the lower half circle
    centred at (1, 0.5). Gaussian noise of standard deviation `noise` is added to
    both coordinates.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float64
    y : ndarray of shape (n_samples,), int64
        The first `n_samples // 2` rows are class 0, the rest class 1.
    """
    n_samples = check_int("n_samples", n_samples, low=2)
    noise = check_real("noise", noise, low=0)  # a standard deviation
    rng = np.random.default_rng(check_seed("seed", seed))
    upper_angle, lower_angle = _split_angles(n_samples, np.pi, endpoint=True)
    upper = np.column_stack([np.cos(upper_angle), np.sin(upper_angle)])
    lower = np.column_stack([1.0 - np.cos(lower_angle), 0.5 - np.sin(lower_angle)])
    return _two_classes(upper, lower, noise, rng)


def circles(
    n_samples: int = 200, noise: float = 0.05, factor: float = 0.5, seed: int | None = 0
) -> Dataset:
    """A small circle inside a large one, both centred at the origin.

    Class 0 is the outer circle of radius 1, class 1 the inner circle of radius
    `factor`, in (0, 1). Gaussian noise of standard deviation `noise` is added to
    both coordinates. Returns (X, y) laid out as moons returns them: X of shape
    (n_samples, 2), y of shape (n_samples,), class 0 in the first n_samples // 2 rows.
    """
    n_samples = check_int("n_samples", n_samples, low=2)
    noise = check_real("noise", noise, low=0)  # a standard deviation
    # the inner circle's radius relative to the outer one
    factor = check_real("factor", factor, low=0, high=1, low_open=True, high_open=True)
    rng = np.random.default_rng(check_seed("seed", seed))
    outer_angle, inner_angle = _split_angles(n_samples, 2.0 * np.pi, endpoint=False)
    outer = np.column_stack([np.cos(outer_angle), np.sin(outer_angle)])
    inner = factor * np.column_stack([np.cos(inner_angle), np.sin(inner_angle)])
    return _two_classes(outer, inner, noise, rng)


def _split_angles(n_samples: int, stop: float, endpoint: bool) -> list[NDArray[np.float64]]:
    """Evenly spaced angles from 0 to stop for class 0 (n_samples // 2 of them) and
    class 1 (the rest)."""
    n_first = n_samples // 2
    return [np.linspace(0.0, stop, n, endpoint=endpoint) for n in (n_first, n_samples - n_first)]


def _two_classes(
    first: np.ndarray, second: np.ndarray, noise: float, rng: np.random.Generator
) -> Dataset:
    """X : the rows of first (class 0) then second (class 1), plus Gaussian noise of
    standard deviation noise drawn from rng; y : their labels, int64."""
    X = np.vstack([first, second])
    X += rng.normal(0.0, noise, X.shape)
    y = np.repeat(np.array([0, 1], dtype=np.int64), [len(first), len(second)])
    return X, y


# ---------------------------------------------------------------------------- split


def train_test_split(
    X: ArrayLike,
    y: ArrayLike,
    test_size: float = 0.25,
    seed: int | None = 0,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split samples into a training and a test set, shuffled deterministically by seed.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Samples; rows are split.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets. With `stratify=True` they must be class labels of shape (n_samples,).
    test_size : float in (0, 1) or int
        The fraction of samples to hold out (rounded up to a whole sample), or their
        number. Both sets must end up non-empty.
    seed : int
        Seed of `np.random.default_rng`; the same seed gives the same split.
    stratify : bool
        Split every class in proportion to its size, so that both sets keep the class
        proportions of `y`. Each class sends the floor or the ceiling of its share
        `n_class * n_test / n_samples` to the test set; the samples left over go first
        to classes that would otherwise have none in the test set, and a class only
        loses its last training sample when no other class can take the sample (a
        class with one sample stays in the training set when it can).

    Returns
    -------
    X_train : ndarray of shape (n_train, ...)
    X_test : ndarray of shape (n_test, ...)
    y_train : ndarray of shape (n_train,) or (n_train, n_outputs)
    y_test : ndarray of shape (n_test,) or (n_test, n_outputs)
        Each set is in random order; together they hold every sample exactly once.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"X and y must be arrays with one row per sample; got X of shape "
            f"{X.shape} and y of shape {y.shape}"
        )
    n_samples = X.shape[0]
    if y.shape[0] != n_samples:
        raise ValueError(
            f"X has {n_samples} samples but y has {y.shape[0]}; pass one target per row of X"
        )
    if n_samples < 2:
        raise ValueError(f"splitting needs at least 2 samples (one for each set); got {n_samples}")
    n_test = _test_count(test_size, n_samples)
    rng = np.random.default_rng(check_seed("seed", seed))
    if stratify:
        test_mask = _stratified_test_mask(_class_labels(y), n_test, rng)
        train_index = rng.permutation(np.flatnonzero(~test_mask))
        test_index = rng.permutation(np.flatnonzero(test_mask))
    else:
        order = rng.permutation(n_samples)
        test_index, train_index = order[:n_test], order[n_test:]
    return X[train_index], X[test_index], y[train_index], y[test_index]


def _test_count(test_size: float, n_samples: int) -> int:
    """The number of test samples asked for by `test_size`, checked."""
    if isinstance(test_size, numbers.Integral) and not isinstance(test_size, (bool, np.bool_)):
        # a number of samples; both sets must be non-empty
        return check_int("test_size", test_size, low=1, high=n_samples - 1)
    test_size = check_real("test_size", test_size, low=0, high=1, low_open=True, high_open=True)
    # round() first, so that 0.3 * 10 = 3.0000000000000004 counts as 3, not 4
    n_test = math.ceil(round(test_size * n_samples, 9))
    if n_test >= n_samples:
        raise ValueError(
            f"test_size must be a number in (0, {(n_samples - 1) / n_samples:g}] for "
            f"{n_samples} samples (one must be left to train on); got {test_size!r}"
        )
    return n_test


def _class_labels(y: np.ndarray) -> np.ndarray:
    """y checked as class labels for stratification."""
    if y.ndim != 1:
        raise ValueError(
            f"stratify=True needs y as class labels of shape (n_samples,); got "
            f"shape {y.shape}; pass labels, or stratify=False"
        )
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise ValueError(
            "stratify=True needs class labels, but y holds non-integer numbers; "
            "pass stratify=False to split regression targets"
        )
    return y


def _stratified_test_mask(
    y: np.ndarray, n_test: int, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """Boolean mask of shape (n_samples,) choosing n_test samples, class by class."""
    classes, class_of_sample, class_sizes = np.unique(y, return_inverse=True, return_counts=True)
    share = class_sizes * n_test / y.shape[0]
    test_counts = np.floor(share).astype(np.int64)
    n_left = n_test - int(test_counts.sum())
    # Hand the leftover samples to classes one each: first to those with none in the test
    # set yet, last to those it would strip of their final training sample; within a rank,
    # to the largest remainder of the share.
    rank = np.where(test_counts + 1 >= class_sizes, 2, np.where(test_counts == 0, 0, 1))
    remainder = share - test_counts
    eligible = np.flatnonzero(remainder > 0)
    order = eligible[np.lexsort((-remainder[eligible], rank[eligible]))]
    test_counts[order[:n_left]] += 1

    test_mask = np.zeros(y.shape[0], dtype=bool)
    for k in range(classes.size):
        members = np.flatnonzero(class_of_sample.reshape(-1) == k)
        test_mask[rng.permutation(members)[: test_counts[k]]] = True
    return test_mask


# -------------------------------------------------------------------- standardising


class Standardizer:
    """Centre each feature and scale it to unit standard deviation, using statistics
    learnt from the training set only.

    Features that are constant in the training set are centred but not scaled (their
    `scale_` is 1), so they come out as zeros rather than a division by zero.

    Attributes (after `fit`)
    ------------------------
    mean_ : ndarray of shape (n_features,), float64
        The mean of every training feature.
    scale_ : ndarray of shape (n_features,), float64
        The (population) standard deviation of every training feature, 1 where it is 0.
    n_features_in_ : int

    Example: `scaler = Standardizer().fit(X_train)`, then
    `scaler.transform(X_train)`, `scaler.transform(X_test)`.
    """

    # set by fit, absent before (as in scikit-learn)
    mean_: NDArray[np.float64]
    scale_: NDArray[np.float64]
    n_features_in_: int

    def fit(self, X: ArrayLike) -> Standardizer:
        """Learn `mean_` and `scale_` from X : array-like of shape (n_samples, n_features).
        Returns self."""
        X = _as_matrix(X, "X")
        if X.shape[0] == 0:
            raise ValueError(
                "cannot standardise with statistics of an empty X "
                "(0 samples); pass at least one training sample"
            )
        mean = X.mean(axis=0, dtype=np.float64)
        scale = X.std(axis=0, dtype=np.float64)
        constant = X.max(axis=0) == X.min(axis=0)
        scale[constant] = 1.0
        self.mean_, self.scale_, self.n_features_in_ = mean, scale, X.shape[1]
        return self

    def transform(self, X: ArrayLike) -> np.ndarray:
        """`(X - mean_) / scale_`.

        X : array-like of shape (n_samples, n_features). Returns an ndarray of the same
        shape: float32 for float32 input, float64 otherwise.
        """
        X = self._checked(X)
        return ((X - self.mean_) / self.scale_).astype(_float_dtype(X), copy=False)

    def fit_transform(self, X: ArrayLike) -> np.ndarray:
        """`fit(X)` then `transform(X)`."""
        return self.fit(X).transform(X)

    def inverse_transform(self, X_standardized: ArrayLike) -> np.ndarray:
        """`X_standardized * scale_ + mean_`: undo `transform`. Same shapes and dtypes."""
        X = self._checked(X_standardized)
        return (X * self.scale_ + self.mean_).astype(_float_dtype(X), copy=False)

    def _fitted(self) -> bool:
        return "mean_" in self.__dict__

    def _checked(self, X: ArrayLike) -> np.ndarray:
        """X as a matrix of the fitted width, or ValueError."""
        if not self._fitted():
            raise ValueError("this Standardizer is not fitted yet; call fit(X_train) first")
        X = _as_matrix(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but the Standardizer was fitted "
                f"on {self.n_features_in_}; pass X with "
                f"{self.n_features_in_} columns or fit again"
            )
        return X

    def __repr__(self) -> str:
        fitted = f"n_features_in_={self.n_features_in_}" if self._fitted() else "unfitted"
        return f"Standardizer({fitted})"


def standardize(X_train: ArrayLike, *others: ArrayLike) -> np.ndarray | tuple[np.ndarray, ...]:
    """Standardise X_train, and any further arrays, with X_train's mean and std.

    X_train : array-like of shape (n_train, n_features)
    others : array-likes of shape (n_i, n_features), e.g. a validation and a test set

    Returns the standardised X_train alone when no other array is given, otherwise a
    tuple `(X_train_s, *others_s)` of the same shapes, e.g.
    `X_train_s, X_test_s = standardize(X_train, X_test)`. Use `Standardizer` to keep
    the statistics.
    """
    scaler = Standardizer().fit(X_train)
    if not others:
        return scaler.transform(X_train)
    return (scaler.transform(X_train),) + tuple(scaler.transform(X) for X in others)


def _as_matrix(X: ArrayLike, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D, of shape (n_samples, n_features); got shape "
            f"{X.shape}; reshape it, e.g. {name}.reshape(-1, 1) for one feature"
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers; got dtype {X.dtype}")
    return X


def _float_dtype(X: np.ndarray) -> DTypeLike:
    return np.float32 if X.dtype == np.float32 else np.float64
