"""Checks on user input, made before anything is changed or any kernel runs.

Each error names the argument, what was expected, what was received and how to
fix it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastbp import frames

if TYPE_CHECKING:
    from fastbp.losses import LossSpec

Checked = TypeVar("Checked")


def _real_array(arr: np.ndarray, name: str, hint: str = "") -> None:
    """Refuses what is not an array of real numbers (bools count as 0/1)."""
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}{hint}")


FINITE_CHUNK_BYTES = 4 << 20


def all_finite(arr: np.ndarray) -> bool:
    """np.isfinite(arr).all() over blocks of rows of about FINITE_CHUNK_BYTES, so that
    a large (memory-mapped) array needs no temporary of its size."""
    rows = max(1, FINITE_CHUNK_BYTES // max(1, arr.itemsize * math.prod(arr.shape[1:])))
    if arr.ndim == 0 or len(arr) <= rows:
        return bool(np.isfinite(arr).all())
    return all(np.isfinite(arr[k : k + rows]).all() for k in range(0, len(arr), rows))


def _finite_as(arr: np.ndarray, dtype: DTypeLike, name: str, fix: str) -> np.ndarray:
    """arr as a C-contiguous array of dtype, every value finite in dtype.

    A finite value too large for dtype (1e39 in float32) is reported as an overflow,
    not as NaN or infinity: the check runs after the conversion.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # reported below
        out = np.ascontiguousarray(arr, dtype=dtype)
    if not all_finite(out):
        if np.isfinite(arr).all():
            largest = float(np.abs(arr).max())
            raise ValueError(
                f"{name} has values that overflow {np.dtype(dtype).name} (largest magnitude "
                f"{largest:.3g}); scale the data or use dtype='float64'"
            )
        raise ValueError(f"{name} contains NaN or infinite values{fix}")
    return out


def as_features(
    X: ArrayLike, dtype: DTypeLike, n_features: int | None = None, name: str = "X"
) -> np.ndarray:
    """X as a C-contiguous (n_samples, n_features) array of dtype.

    Accepts lists and other array-likes, booleans and integers, and pandas
    DataFrames of numbers (as_named_features); copies an array at most once.
    """
    return as_named_features(X, dtype, n_features, name)[0]


def as_named_features(
    X: ArrayLike, dtype: DTypeLike, n_features: int | None = None, name: str = "X"
) -> tuple[np.ndarray, NDArray[np.object_] | None]:
    """(X as as_features gives it, X's feature names or None).

    A pandas DataFrame gives its column names when they are all strings
    (fastbp.frames.feature_names) and its values: numeric, bool and nullable
    (Int64, Float64, boolean) columns, pd.NA counting as a missing value; other
    columns (categorical, object, string) are refused with a TypeError naming
    them, missing values with a ValueError naming their columns. A Series is
    refused: X must be 2-D.
    """
    names = None
    if frames.is_series(X):
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got a pandas Series of shape "
            f"{getattr(X, 'shape', None)}; for a single feature pass {name}.to_frame(), "
            f"for a single sample {name}.to_frame().T"
        )
    if frames.is_frame(X):
        X, names = frames.frame_values(X, dtype, name)
    return _as_matrix(X, dtype, n_features, name), names


def _as_matrix(X: ArrayLike, dtype: DTypeLike, n_features: int | None, name: str) -> np.ndarray:
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a 2-D array of numbers, got {type(X).__name__} "
            f"that NumPy cannot read as one ({exc})"
        ) from None
    _real_array(arr, name, f"; convert it with np.asarray({name}, dtype=float)")
    if arr.ndim != 2:
        hint = (
            f"; for a single feature use {name}.reshape(-1, 1), for a single sample "
            f"{name}.reshape(1, -1)"
            if arr.ndim == 1
            else ""
        )
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} is empty (shape {arr.shape}); pass at least one sample "
            "with at least one feature"
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but the model was built for "
            f"{n_features}; pass {name} with {n_features} columns or build a new model"
        )
    return _finite_as(arr, dtype, name, "; remove or impute them first")


def as_targets(
    y: ArrayLike,
    n_samples: int,
    loss_spec: LossSpec,
    n_outputs: int | None,
    dtype: DTypeLike,
    name: str = "y",
) -> tuple[np.ndarray, int]:
    """(targets, loss code) ready for the backends.

    softmax_cross_entropy: int class indices (n_samples,) in [0, n_outputs), or
    probability rows (n_samples, n_outputs). Other losses: values of shape
    (n_samples,) when n_outputs == 1, or (n_samples, n_outputs).
    """
    try:
        arr = np.asarray(frames.as_array_like(y, name, dtype))
    except (TypeError, ValueError) as exc:
        if frames.is_frame(y):
            raise
        raise TypeError(f"{name} must be an array of numbers ({exc})") from None
    _real_array(arr, name)
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} rows but X has {n_samples}; pass one target per sample"
        )
    if not all_finite(arr):
        raise ValueError(f"{name} contains NaN or infinite values")
    if "labels" in loss_spec.codes and (arr.ndim == 1 or arr.shape[1] == 1):
        assert n_outputs is not None  # a built model has an output width
        return _class_labels(arr.reshape(-1), n_outputs, name), loss_spec.codes["labels"]
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_outputs:
        raise ValueError(
            f"{name} has {arr.shape[1]} columns, but the model has {n_outputs} "
            f"outputs; pass {name} of shape ({n_samples}, {n_outputs})"
        )
    arr = _finite_as(arr, dtype, name, "")
    if "probabilities" in loss_spec.codes:
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(
                f"{name} for {loss_spec.name} must lie in [0, 1], got values "
                f"from {arr.min()} to {arr.max()}"
            )
        if loss_spec.softmax:
            sums = arr.sum(axis=1, dtype=np.float64)
            bad = np.flatnonzero(np.abs(sums - 1) > 1e-4)
            if bad.size:
                raise ValueError(
                    f"{name} rows must sum to 1 (probabilities), row {bad[0]} "
                    f"sums to {sums[bad[0]]:.6g}; pass class indices or "
                    "normalised probability rows"
                )
        return arr, loss_spec.codes["probabilities"]
    return arr, loss_spec.codes["values"]


def _class_labels(arr: np.ndarray, n_classes: int, name: str) -> NDArray[np.int64]:
    if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
        raise ValueError(
            f"{name} holds non-integer class labels (e.g. {arr[arr != np.round(arr)][0]}); "
            "pass integer class indices or probability rows"
        )
    # the range is checked before the cast to int64, which would wrap 2**63 around
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"{name} holds class labels from {low} to {high}, but the model has "
            f"{n_classes} outputs, so labels must be in [0, {n_classes}); "
            f"give the last layer max(label)+1 units or relabel the classes"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_parameter(name: str, value: ArrayLike, live: np.ndarray) -> np.ndarray:
    """value as a new parameter array for the live array `live`: same shape, a real
    number type, finite in live's dtype. Returns the converted copy."""
    arr = np.asarray(value)
    if arr.shape != live.shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {live.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    return _finite_as(arr, live.dtype, name, "").copy()


# Scalar parameters. One form for every message: "<name> must be <what>; got <value>".
# numbers.Real / numbers.Integral admit NumPy scalars; bool is never a number here.


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The wanted range in words: "> 0", ">= 1", "in [0, 1)", "<= 5"."""
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}" if low is not None else ""
    if low is None:
        return f"{'<' if high_open else '<='} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _in_interval(
    value: Any, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> bool:
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def _shown(value: object, limit: int = 80) -> str:
    """repr(value), shortened: errors quote what they were given, not all of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_number(
    name: str,
    value: Any,
    kind: type,
    what: str,
    low: float | None,
    high: float | None,
    low_open: bool,
    high_open: bool,
) -> Any:
    """value if it is a `kind` (numbers.Real or numbers.Integral, never a bool), finite
    and in the interval, or ValueError "<name> must be <what> <interval>; got ..."."""
    ok = isinstance(value, kind) and not isinstance(value, (bool, np.bool_))
    ok = ok and (kind is numbers.Integral or math.isfinite(value))
    if not (ok and _in_interval(value, low, high, low_open, high_open)):
        wanted = _interval(low, high, low_open, high_open)
        raise ValueError(
            f"{name} must be {what}{' ' + wanted if wanted else ''}; got {_shown(value)}"
        )
    return value


def check_real(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """value as a finite float in the interval, or ValueError naming it.

    low/high : bounds (None: unbounded); *_open : whether the bound is excluded.
    None is refused; optional(check_real, ...) admits it.
    """
    return float(
        _check_number(name, value, numbers.Real, "a number", low, high, low_open, high_open)
    )


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """value as an int in [low, high], or ValueError naming it. None is refused;
    optional(check_int, ...) admits it."""
    return int(_check_number(name, value, numbers.Integral, "an integer", low, high, False, False))


def optional(
    checker: Callable[..., Checked], name: str, value: Any, **bounds: Any
) -> Checked | None:
    """None if value is None, else checker(name, value, **bounds): the one way a check
    admits None (e.g. optional(check_real, "clipnorm", value, low=0, low_open=True))."""
    return None if value is None else checker(name, value, **bounds)


def check_option(name: str, value: object, options: Iterable[str]) -> str:
    """value if it is one of options (strings), or ValueError listing them."""
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(option) for option in options)
        raise ValueError(f"{name} must be one of {listed}; got {_shown(value)}")
    return value


def check_bool(name: str, value: object) -> bool:
    """value as a bool (True/False, NumPy bools, or the integers 0 and 1)."""
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, numbers.Integral) and value in (0, 1)
    ):
        return bool(value)
    raise ValueError(f"{name} must be True or False; got {_shown(value)}")


def check_seed(name: str, value: Any) -> Any:
    """value as a seed for np.random.default_rng: None, an integer >= 0 (as an int) or a
    np.random.SeedSequence (as it is), or ValueError naming it."""
    if isinstance(value, np.random.SeedSequence):
        return value
    if value is None or (
        isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    ):
        return optional(check_int, name, value, low=0)
    raise ValueError(
        f"{name} must be an integer >= 0, a np.random.SeedSequence or None; got {_shown(value)}"
    )


def setting(checker: Callable[..., Any], **bounds: Any) -> Callable[[Any, str, Any], Any]:
    """A check for a registry of settings, check(obj, name, value) -> the value to
    store, that runs checker(name, value, **bounds): e.g. the optimisers' SETTINGS
    use setting(check_real, low=0, low_open=True) for "a number > 0"."""

    def check(obj: Any, name: str, value: Any) -> Any:
        return checker(name, value, **bounds)

    check.__qualname__ = f"setting({checker.__name__}, {bounds})"
    return check


@overload
def positive_int(name: str, value: Any, allow_none: Literal[False] = ...) -> int: ...
@overload
def positive_int(name: str, value: Any, allow_none: bool = ...) -> int | None: ...
def positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    return optional(check_int, name, value, low=1) if allow_none else check_int(name, value, low=1)


def non_negative_int(name: str, value: Any) -> int:
    return check_int(name, value, low=0)


def as_sample_weight(
    sample_weight: ArrayLike | None,
    class_weight: Mapping[int, float] | None,
    y: np.ndarray,
    loss_spec: LossSpec,
    loss_code: int,
    dtype: DTypeLike,
    name: str = "sample_weight",
) -> np.ndarray | None:
    """Per-row loss weights (n_samples,) of dtype, or None when neither is given.

    sample_weight : array-like (n_samples,) of finite numbers >= 0.
    class_weight : dict class index -> weight >= 0 (classes not listed weigh 1), for
        classification losses; a row's class is its label, its target's argmax, or
        (one sigmoid output) whether its target is >= 0.5.
    The two multiply when both are given.
    """
    n = len(y)
    weights = None
    if sample_weight is not None:
        weights = np.asarray(frames.as_array_like(sample_weight, name))
        _real_array(weights, name)
        if weights.shape != (n,):
            raise ValueError(
                f"{name} must be {n} numbers, one per sample, got "
                f"{weights.dtype} array of shape {weights.shape}"
            )
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"{name} must be finite and >= 0; got {_shown(weights)}")
        weights = weights.astype(np.float64)
    if class_weight is not None:
        if not loss_spec.classification:
            raise ValueError(
                f"class_weight needs a classification loss; this model uses "
                f"{loss_spec.name!r} (use sample_weight instead)"
            )
        if not isinstance(class_weight, dict):
            raise TypeError(
                f"class_weight must be a dict class -> weight, got {type(class_weight).__name__}"
            )
        if y.ndim == 1:
            classes = y
        elif loss_spec.softmax:
            classes = y.argmax(axis=1)
        elif y.shape[1] == 1:
            classes = (y[:, 0] >= 0.5).astype(np.int64)
        else:
            raise ValueError(
                "class_weight is for one label per sample; with several sigmoid "
                "outputs pass sample_weight"
            )
        table = np.ones(int(classes.max()) + 1 if len(classes) else 1)
        for label, weight in class_weight.items():
            label = check_int("a class_weight key (a class index)", label, low=0)
            weight = check_real(f"class_weight[{label}]", weight, low=0)
            if label < len(table):
                table[label] = weight
        per_class = table[classes]
        weights = per_class if weights is None else weights * per_class
    return None if weights is None else _finite_as(weights, dtype, name, "")
