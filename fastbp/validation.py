"""Checks on user input, made before anything is changed or any kernel runs.

Each error names the argument, what was expected, what was received and how to
fix it.
"""

import numbers

import numpy as np


def as_features(X, dtype, n_features=None, name="X") -> np.ndarray:
    """X as a C-contiguous (n_samples, n_features) array of dtype.

    Accepts lists and other array-likes, booleans and integers; copies at most once.
    """
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a 2-D array of numbers, got {type(X).__name__} "
            f"that NumPy cannot read as one ({exc})"
        ) from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(
            f"{name} must hold numbers, got dtype {arr.dtype}; convert it with "
            f"np.asarray({name}, dtype=float)"
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
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
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values; remove or impute them first")
    return arr


def as_targets(y, n_samples, loss_spec, n_outputs, dtype, name="y"):
    """(targets, loss code) ready for the backends.

    softmax_cross_entropy: int class indices (n_samples,) in [0, n_outputs), or
    probability rows (n_samples, n_outputs). Other losses: values of shape
    (n_samples,) when n_outputs == 1, or (n_samples, n_outputs).
    """
    try:
        arr = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers ({exc})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} rows but X has {n_samples}; pass one target per sample"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if "labels" in loss_spec.codes and (arr.ndim == 1 or arr.shape[1] == 1):
        return _class_labels(arr.reshape(-1), n_outputs, name), loss_spec.codes["labels"]
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_outputs:
        raise ValueError(
            f"{name} has {arr.shape[1]} columns, but the model has {n_outputs} "
            f"outputs; pass {name} of shape ({n_samples}, {n_outputs})"
        )
    arr = np.ascontiguousarray(arr, dtype=dtype)
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


def _class_labels(arr, n_classes, name):
    if np.issubdtype(arr.dtype, np.floating) and not np.all(arr == np.round(arr)):
        raise ValueError(
            f"{name} holds non-integer class labels (e.g. {arr[arr != np.round(arr)][0]}); "
            "pass integer class indices or probability rows"
        )
    labels = arr.astype(np.int64)
    low, high = labels.min(), labels.max()
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"{name} holds class labels from {low} to {high}, but the model has "
            f"{n_classes} outputs, so labels must be in [0, {n_classes}); "
            f"give the last layer max(label)+1 units or relabel the classes"
        )
    return np.ascontiguousarray(labels)


def as_parameter(name, value, live):
    """value as a new parameter array for the live array `live`: same shape, a real
    number type, finite in live's dtype. Returns the converted copy."""
    arr = np.asarray(value)
    if arr.shape != live.shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {live.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # too large for live's dtype: reported below
        arr = arr.astype(live.dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values (in {live.dtype})")
    return arr


def positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def as_sample_weight(
    sample_weight, class_weight, y, loss_spec, loss_code, dtype, name="sample_weight"
):
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
        weights = np.asarray(sample_weight)
        if (
            weights.dtype == object
            or not np.issubdtype(weights.dtype, np.number)
            or weights.shape != (n,)
        ):
            raise ValueError(
                f"{name} must be {n} numbers, one per sample, got "
                f"{weights.dtype} array of shape {weights.shape}"
            )
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"{name} must be finite and >= 0")
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
            if isinstance(label, bool) or not isinstance(label, numbers.Integral) or label < 0:
                raise ValueError(f"class_weight keys must be class indices >= 0, got {label!r}")
            if not (isinstance(weight, numbers.Real) and np.isfinite(weight) and weight >= 0):
                raise ValueError(
                    f"class_weight[{label}] must be a finite number >= 0, got {weight!r}"
                )
            if label < len(table):
                table[label] = weight
        per_class = table[classes]
        weights = per_class if weights is None else weights * per_class
    return None if weights is None else np.ascontiguousarray(weights, dtype=dtype)
