"""Class labels: targets given as the classes themselves (strings, integers, booleans,
any hashable value) rather than as class indices.

A classifier's classes_ are the sorted distinct labels (as np.unique gives them) of
the first training data given as labels; output k of the model is class classes_[k]
(for one sigmoid output: classes_[0] below 0.5, classes_[1] above). Labels are
encoded as indices into classes_ before anything reaches the backends, and
predictions are decoded back.

Labels of one kind only: all strings, all integers, all booleans or all real numbers
(integers and floats may mix); missing labels (None, NaN, pd.NA) are refused. Their
values are normalised (NumPy scalars to Python ones, object arrays of strings to a
unicode array), so that a model's classes_ survive a file or a pickle unchanged.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fastbp.messages import listed, plain

if TYPE_CHECKING:
    from fastbp.losses import LossSpec

# Label types a model file can hold (JSON), by the kind names errors use.
JSON_KINDS = ("str", "int", "float", "bool")


def _kind(value: Any) -> str:
    """The kind of one label: "str", "bool", "int", "float", "missing" or its type name."""
    kind = _kind_of_type(type(value))
    return "missing" if kind == "float" and math.isnan(float(value)) else kind


def _kind_of_type(kind: type) -> str:
    """_kind for every value of one type ("float" may still hold NaN)."""
    if issubclass(kind, (str, np.str_)):
        return "str"
    if issubclass(kind, (bool, np.bool_)):
        return "bool"
    if issubclass(kind, numbers.Integral):
        return "int"
    if issubclass(kind, numbers.Real):
        return "float"
    if kind is type(None) or kind.__name__ in ("NAType", "NaTType"):
        return "missing"
    return kind.__name__


def is_label_array(values: np.ndarray) -> bool:
    """Whether an array holds labels that cannot be class indices: strings, bytes or
    Python objects (a categorical is converted to objects before it gets here)."""
    return values.dtype.kind in "OUS"


def width(loss: LossSpec, n_outputs: int | None) -> int | None:
    """How many classes a model with this loss and output width predicts from labels:
    one per output for a softmax loss that takes labels, two for one sigmoid output
    (binary_cross_entropy); None when it takes no labels."""
    if "labels" in loss.codes:
        return n_outputs
    if loss.name == "binary_cross_entropy" and n_outputs == 1:
        return 2
    return None


def normalised(values: np.ndarray, name: str) -> np.ndarray:
    """values (1-D) as labels of one kind: a unicode array for strings, int64, bool or
    float64 for numbers, an object array for other hashable values.

    Raises ValueError for missing labels (None, NaN, pd.NA), TypeError for labels of
    several kinds (e.g. strings and integers) or unhashable ones.
    """
    if values.dtype.kind in "US":
        return values
    if values.dtype.kind in "biuf":
        if values.dtype.kind == "f" and np.isnan(values).any():
            row = int(np.flatnonzero(np.isnan(values))[0])
            raise ValueError(f"{name} holds a missing label (NaN) at row {row}; drop or fill it")
        return values
    items = values.tolist()
    kind_of = {kind: _kind_of_type(kind) for kind in set(map(type, items))}
    if "float" in kind_of.values() or "missing" in kind_of.values():
        for row, value in enumerate(items):  # NaN is a float: look at the values
            if _kind(value) == "missing":
                raise ValueError(
                    f"{name} holds a missing label ({value!r}) at row {row}; drop or fill it"
                )
    kinds: dict[str, int] = {}
    for row, value in enumerate(items):
        kind = kind_of[type(value)]
        if kind not in kinds:
            kinds[kind] = row
            if len(kinds) == len(set(kind_of.values())):
                break
    found = set(kinds)
    if found <= {"int", "float"} and found:
        return np.array(items, dtype=np.float64 if "float" in found else None)
    if len(found) > 1:
        listed = ", ".join(f"{kind} (row {row})" for kind, row in kinds.items())
        raise TypeError(
            f"{name} mixes labels of several types: {listed}; give every label the "
            "same type, e.g. y.astype(str)"
        )
    kind = next(iter(found), "str")
    if kind in JSON_KINDS:
        return np.array(items)
    for value in values[:1]:
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"{name} holds unhashable labels ({type(value).__name__}); labels must "
                "be strings, numbers or other hashable values"
            ) from None
    return values


def classes_of(values: np.ndarray, name: str) -> np.ndarray:
    """The sorted distinct labels of values (normalised), as np.unique gives them."""
    try:
        return np.unique(values)
    except TypeError as exc:
        raise TypeError(f"{name}'s labels cannot be sorted ({exc})") from None


def check_count(classes: np.ndarray, loss: LossSpec, n_outputs: int | None, name: str) -> None:
    """ValueError unless the model's outputs fit the classes: one output per class for
    a softmax loss, one sigmoid output for two classes."""
    wanted = width(loss, n_outputs)
    if wanted is None:
        raise ValueError(
            f"{name} holds class labels ({listed(classes)}), but loss {loss.name!r} with "
            f"{n_outputs} outputs takes none: use softmax_cross_entropy (one output per "
            "class) or binary_cross_entropy with one sigmoid output (two classes)"
        )
    if len(classes) != wanted:
        if loss.softmax:
            fix = f"give the last layer {len(classes)} units, or pass labels of {wanted} classes"
        else:
            fix = "binary_cross_entropy with one sigmoid output needs labels of exactly 2 classes"
        raise ValueError(
            f"{name} holds {len(classes)} class{'es' if len(classes) != 1 else ''} "
            f"({listed(classes)}), but the model has {n_outputs} output"
            f"{'s' if n_outputs != 1 else ''} for {wanted} classes; {fix}"
        )


def _comparable(values: np.ndarray, classes: np.ndarray) -> bool:
    """Whether values and classes are of kinds that can be compared (strings with
    strings, numbers with numbers, other objects with objects)."""

    def group(arr: np.ndarray) -> str:
        return {"U": "text", "S": "bytes", "b": "number", "i": "number", "u": "number"}.get(
            arr.dtype.kind, "number" if arr.dtype.kind == "f" else "object"
        )

    return group(values) == group(classes)


def encode(values: np.ndarray, classes: np.ndarray, name: str) -> NDArray[np.int64]:
    """The index in classes of each label of values (normalised); ValueError listing
    the labels that are not among classes."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    if _comparable(values, classes):
        if classes.dtype == object or values.dtype == object:
            lookup = {value: k for k, value in enumerate(classes.tolist())}
            found = [lookup.get(value, -1) for value in values.tolist()]
            indices = np.array(found, dtype=np.int64)
            known = indices >= 0
        else:
            indices = np.searchsorted(classes, values).astype(np.int64)
            indices = np.minimum(indices, len(classes) - 1)
            known = classes[indices] == values
    else:
        indices, known = np.zeros(len(values), dtype=np.int64), np.zeros(len(values), bool)
    if not known.all():
        unknown = list(dict.fromkeys(values[~known].tolist()))
        raise ValueError(
            f"{name} holds label{'s' if len(unknown) > 1 else ''} {listed(unknown)} not "
            f"among the model's classes_ ({listed(classes)}); the classes are fixed by "
            "the first fit: pass labels of those classes, or train a new model"
        )
    return indices


def to_json(classes: np.ndarray | None) -> list[Any] | None:
    """classes as a JSON list (None stays None); TypeError for labels a model file
    cannot hold (only str, int, float and bool can)."""
    if classes is None:
        return None
    values = [plain(v) for v in classes.tolist()]
    for value in values:
        kind = _kind(value)
        if kind not in JSON_KINDS or (kind == "float" and not math.isfinite(value)):
            raise TypeError(
                f"model.classes_ holds a label of type {type(value).__name__} "
                f"({value!r}); a model is saved, pickled or copied only with str, int, "
                "float or bool labels: map the labels to strings before fitting"
            )
    return values


def from_json(values: Any, n_classes: int | None, where: str = "classes") -> np.ndarray:
    """A record's classes as the array fit made: a list of labels of one kind (str,
    int, float or bool), distinct and sorted, n_classes of them. ValueError naming
    the problem otherwise."""
    if not isinstance(values, list):
        raise ValueError(f"{where} must be a list of labels; got {type(values).__name__}")
    kinds = {_kind(value) for value in values}
    if not (kinds <= {"str"} or kinds <= {"bool"} or kinds <= {"int", "float"}):
        raise ValueError(
            f"{where} must hold labels of one type among {', '.join(JSON_KINDS)}; "
            f"got types {sorted(kinds)}"
        )
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise ValueError(f"{where} holds a label that is not finite")
    if n_classes is None or len(values) != n_classes:
        raise ValueError(
            f"{where} lists {len(values)} labels, but the model's output layer is for "
            f"{n_classes} classes"
        )
    classes = np.array(values)
    if len(np.unique(classes)) != len(classes) or not np.array_equal(np.unique(classes), classes):
        raise ValueError(f"{where} must be distinct and sorted; got {listed(values)}")
    return classes
