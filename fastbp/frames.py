"""pandas DataFrames and Series as input: their values as NumPy arrays, their column
names, and the check of those names against the ones a model was fitted with.

pandas stays optional: nothing here imports it. An object is taken for a DataFrame
or a Series only when pandas is already imported (sys.modules) and the object is an
instance of its classes, so a program that never imports pandas never loads it.

Feature names follow scikit-learn's rules: a DataFrame whose column names are all
strings has names; one whose names are all something else (integers, as
``pd.DataFrame(array)`` gives) has none; a mix of strings and other names is refused.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fastbp.messages import listed, plain


def _pandas() -> Any:
    """The pandas module if the program imported it, else None (never imports it)."""
    return sys.modules.get("pandas")


def is_frame(value: object) -> bool:
    """Whether value is a pandas DataFrame."""
    pd = _pandas()
    return pd is not None and isinstance(value, pd.DataFrame)


def is_series(value: object) -> bool:
    """Whether value is a pandas Series."""
    pd = _pandas()
    return pd is not None and isinstance(value, pd.Series)


def is_categorical(value: object) -> bool:
    """Whether value is a pandas Categorical, or a Series of categorical dtype."""
    pd = _pandas()
    if pd is None:
        return False
    if isinstance(value, pd.Categorical):
        return True
    return isinstance(value, pd.Series) and isinstance(value.dtype, pd.CategoricalDtype)


# --- column names -------------------------------------------------------------------


def feature_names(frame: Any, name: str = "X") -> NDArray[np.object_] | None:
    """The column names of a DataFrame as an object array of str, or None when they are
    not all strings (or the frame has no columns).

    Raises TypeError when strings are mixed with other names, ValueError when a
    name appears twice (which column would it mean?).
    """
    index = frame.columns
    if len(index) == 0:
        return None
    columns = index.to_numpy(dtype=object, copy=True)  # never a view of the frame's index
    if index.inferred_type != "string":  # pandas' own reading of the names (cached)
        types = set(map(type, columns.tolist()))
        if not any(issubclass(kind, str) for kind in types):
            return None
        others = sorted(kind.__name__ for kind in types if not issubclass(kind, str))
        raise TypeError(
            f"{name}'s column names mix strings with {', '.join(others)} names; feature "
            f"names are kept only when all are strings: rename the columns with "
            f"{name}.columns = {name}.columns.astype(str), or give them all non-string names"
        )
    if not index.is_unique:
        counts: dict[str, int] = {}
        for column in columns.tolist():
            counts[column] = counts.get(column, 0) + 1
        twice = [column for column, count in counts.items() if count > 1]
        raise ValueError(
            f"{name} has duplicate column names ({listed(twice)}); each "
            "feature needs its own name: rename or drop the duplicates"
        )
    if not all(type(column) is str for column in columns.tolist()):
        columns[:] = [str(column) for column in columns.tolist()]  # str subclasses
    return columns


def _caller_level() -> int:
    """The stacklevel of the first caller outside fastbp, for warnings.warn called
    from the function that calls this one (so a warning points at the user's line)."""
    level, frame = 2, sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastbp."):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    return level


def check_feature_names(
    fitted: NDArray[np.object_] | None,
    given: NDArray[np.object_] | None,
    name: str = "X",
) -> None:
    """Compare the names a model was fitted with to those of the data it is given.

    fitted : ndarray of str (n_features,) or None
        The model's feature_names_in_ (None: fitted on data without names).
    given : ndarray of str (n_features,) or None
        The column names of the data at hand (None: an array, or a DataFrame
        without string names).

    Equal names pass. Names in another order or other names raise ValueError
    listing the difference (the columns are never reordered silently). Names on
    one side only warn (UserWarning): the columns are then taken by position.
    """
    if fitted is None and given is None:
        return
    if fitted is None:
        warnings.warn(
            f"{name} has feature names, but the model was fitted on data without "
            "names; its columns are taken by position and the names are not checked",
            UserWarning,
            stacklevel=_caller_level(),
        )
        return
    if given is None:
        warnings.warn(
            f"{name} has no feature names, but the model was fitted with names "
            f"({listed(fitted)}); its columns are taken by position, in that order",
            UserWarning,
            stacklevel=_caller_level(),
        )
        return
    if len(fitted) == len(given) and bool((fitted == given).all()):
        return
    unseen = [n for n in given if n not in set(fitted)]
    missing = [n for n in fitted if n not in set(given)]
    if not unseen and not missing and len(fitted) == len(given):
        raise ValueError(
            f"{name} has the model's feature names in another order: {listed(given)}, "
            f"but the model was fitted with {listed(fitted)}; select the columns in "
            f"the fitted order with {name}[model.feature_names_in_]"
        )
    parts = []
    if unseen:
        parts.append(f"names not seen at fit: {listed(unseen)}")
    if missing:
        parts.append(f"names missing: {listed(missing)}")
    if not parts:  # the same names, but some more than once
        parts.append(f"{len(given)} columns for {len(fitted)} names")
    raise ValueError(
        f"{name}'s feature names differ from those the model was fitted with "
        f"({'; '.join(parts)}); pass the columns {listed(fitted)}"
    )


# --- values -------------------------------------------------------------------------


def _column_kind(dtype: Any) -> str:
    """ "number" for numeric and bool columns (NumPy or pandas nullable dtypes),
    "complex", or "other" (categorical, object, string, datetime, ...)."""
    if isinstance(dtype, np.dtype):
        if dtype.kind in "biuf":
            return "number"
        return "complex" if dtype.kind == "c" else "other"
    types = _pandas().api.types
    if types.is_complex_dtype(dtype):
        return "complex"
    return "number" if types.is_numeric_dtype(dtype) or types.is_bool_dtype(dtype) else "other"


def frame_values(frame: Any, dtype: DTypeLike, name: str = "X") -> tuple[np.ndarray, Any]:
    """(values, names) of a DataFrame: values an ndarray of shape (n_rows, n_columns) in
    dtype (float64 when a column holds more than dtype can: the caller converts and
    reports an overflow), missing values (pd.NA, None, NaN) as NaN; names as
    feature_names gives.

    Raises TypeError naming the columns that do not hold numbers or booleans
    (categorical, object, string, datetime columns), ValueError naming the
    columns that hold missing or infinite values.
    """
    names = feature_names(frame, name)
    dtypes = list(frame.dtypes)
    kind_of = {d: _column_kind(d) for d in set(dtypes)}
    labels = frame.columns.tolist()
    wrong = [(label, str(d)) for label, d in zip(labels, dtypes) if kind_of[d] != "number"]
    if wrong:
        shown = listed(wrong, show=lambda w: f"{plain(w[0])!r} ({w[1]})")
        raise TypeError(
            f"{name} must hold numbers or booleans, but column{'s' if len(wrong) > 1 else ''} "
            f"{shown} do{'es' if len(wrong) == 1 else ''} not; encode categories "
            "as numbers first (e.g. pd.get_dummies) or drop those columns"
        )
    target = np.dtype(dtype)
    wider = any(
        not isinstance(d, np.dtype) or (d.kind == "f" and d.itemsize > target.itemsize)
        for d in kind_of
    )
    values = frame.to_numpy(dtype=np.float64 if wider else target, na_value=np.nan)
    finite = _finite_columns(values)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        missing = [labels[j] for j in bad if np.isnan(values[:, j]).any()]
        infinite = [labels[j] for j in bad if not np.isnan(values[:, j]).any()]
        parts = []
        if missing:
            parts.append(f"missing values (NaN or pd.NA) in column(s) {listed(missing)}")
        if infinite:
            parts.append(f"infinite values in column(s) {listed(infinite)}")
        raise ValueError(
            f"{name} contains NaN or infinite values: {' and '.join(parts)}; remove or "
            "impute them first"
        )
    return values, names


def _finite_columns(values: np.ndarray, block_rows: int = 4096) -> NDArray[np.bool_]:
    """Whether each column of values (2-D) is finite, over blocks of rows, so that no
    temporary of values' size is made."""
    finite = np.ones(values.shape[1], dtype=bool)
    for start in range(0, len(values), block_rows):
        finite &= np.isfinite(values[start : start + block_rows]).all(axis=0)
    return finite


def series_values(series: Any, name: str) -> np.ndarray:
    """A Series (or pandas Categorical) as a 1-D ndarray: numbers as a NumPy number
    dtype (pandas nullable ones as float64, pd.NA as NaN), anything else (strings,
    categories, objects) as an object array of its values."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        return np.asarray(series)
    if _column_kind(dtype) == "number":
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    values = np.empty(len(series), dtype=object)
    values[:] = list(series)
    return values


def as_array_like(value: Any, name: str, dtype: DTypeLike = np.float64) -> Any:
    """value with pandas containers replaced by ndarrays: a Series or Categorical by
    series_values, a one-column DataFrame by its column (1-D), a wider DataFrame by
    frame_values (numbers only); anything else unchanged."""
    pd = _pandas()
    if pd is None:
        return value
    if is_frame(value):
        if value.shape[1] == 1:
            return series_values(value.iloc[:, 0], name)
        return frame_values(value, dtype, name)[0]
    if isinstance(value, (pd.Series, pd.Categorical)):
        return series_values(value, name)
    return value
