"""Saving, loading, pickling and copying models.

A model is written down as two halves of plain data:

- the record, a JSON-ready dict: the format name and version, get_config()
  (layers, loss, optimiser, dtype, backend, thread setting, input width), the
  random generator's state, the epochs completed and the model's metadata (a
  JSON-ready dict, e.g. the CLI's preprocessing);
- the arrays, a dict of ndarrays: the parameters ("param_0", "param_1", ... in
  get_weights order) and the training state ("state_0", ...: each parameter's
  optimiser state arrays, then the step count and the dropout seed). A model
  that is not built yet has none.

to_record(model) makes the two halves and from_record(record, arrays) makes a
model from them, checking everything before trusting it. Both ways of storing a
model go through them:

- save/load: one .npz holding the arrays and the record's JSON text (member
  "architecture"); read with allow_pickle=False, so loading never runs code from
  the file, and written atomically (a temporary file in the same folder, then a
  rename).
- pickle, copy.copy, copy.deepcopy, joblib (Sequential.__reduce__): the record's
  JSON text and each array as (dtype, shape, bytes), handed to rebuild_pickled.
  The payload holds only strings, bytes, numbers, tuples and dicts, so
  unpickling it calls no code but rebuild_pickled, which goes through
  from_record. The compiled engine, the workspaces, the gradients and the
  forward pass kept for backward() are not recorded: a rebuilt model makes
  fresh ones on first use.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from fastbp import layers as layer_types
from fastbp import optimizers
from fastbp import validation as check

if TYPE_CHECKING:
    from fastbp.model import Sequential

FORMAT = "fastbp-model"
VERSION = 1
# Array dtypes a pickle may carry (numpy's dtype.str: byte order, kind, size).
PICKLED_DTYPES = {order + kind for order in "<>" for kind in ("f4", "f8", "i8", "u8")}


# --- the two halves ---------------------------------------------------------------------


def to_record(model: Sequential) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(record, arrays): the model as plain data, independent of it.

    record : JSON-ready dict (see the module docstring); arrays : dict of ndarray
    copies, "param_<i>" shaped as get_weights()[i], "state_<i>" as the training
    state (empty for a model not built yet). Does not build the model.

    Raises TypeError when something the model holds is not plain data, e.g.
    model.metadata holding a function, or an optimiser with a custom schedule
    (ValueError for an epochs_done that is not a non-negative int).
    """
    record, arrays = _live_record(model)
    return record, {name: a.copy() for name, a in arrays.items()}


def from_record(
    record: dict[str, Any],
    arrays: dict[str, np.ndarray],
    backend: str | None = None,
    *,
    source: str = "the record",
) -> Sequential:
    """A model from to_record's two halves; backend overrides the recorded one.

    record : dict as to_record gives (or parsed from a file); arrays : dict of
    ndarray, not changed (the model copies what it needs); source : how error
    messages name where the two came from.

    Everything is checked before it is used: the format and version, the
    configuration, that the parameter arrays hold at least as many numbers as
    the layers need (before the model allocates any), every array's name, shape
    and dtype, finite values, non-negative counts, the generator state,
    epochs_done and metadata. Raises ValueError beginning "{source} does not
    hold a valid fastbp model: " and naming the problem.
    """
    try:
        return _model_from(record, arrays, backend)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source} does not hold a valid fastbp model: {exc}") from None
    except KeyError as exc:
        raise ValueError(
            f"{source} does not hold a valid fastbp model: its record has no {exc} entry"
        ) from None


def _live_record(model):
    """to_record's (record, arrays), the arrays being the model's live ones."""
    _check_model(model)
    record = {
        "format": FORMAT,
        "version": VERSION,
        **model.get_config(),
        "rng_state": model._rng.bit_generator.state,
        "metadata": model.metadata,
        "epochs_done": check.non_negative_int("model.epochs_done", model.epochs_done),
    }
    if model.built:
        broken = model._plan.nonfinite()
        if broken is not None:
            raise ValueError(
                f"the model's {broken} holds NaN or infinite values, so it would "
                "not load back; set finite weights with set_weights (or assign "
                "a fresh optimiser) first"
            )
        record["optimizer_origin"] = int(model._plan.optimizer_origin[0])
    _check_plain(record)
    _check_rebuildable(record)
    record = json.loads(json.dumps(record))  # a deep copy sharing nothing with the model
    arrays: dict[str, np.ndarray] = {}
    if model.built:
        arrays.update((f"param_{i}", p) for i, p in enumerate(model._plan.weights()))
        arrays.update((f"state_{i}", s) for i, s in enumerate(model._plan.optimizer_state()))
    return record, arrays


def _check_model(model):
    from fastbp.model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"expected a fastbp.Sequential, got {type(model).__name__}")
    if type(model) is not Sequential:
        raise TypeError(
            f"{type(model).__name__} is a subclass of fastbp.Sequential; fastbp "
            "records and rebuilds Sequential itself, so give the subclass its own "
            "__reduce__ (or save a plain Sequential)"
        )


def _check_plain(record):
    """TypeError naming the first thing in record that JSON cannot hold."""
    if not isinstance(record["metadata"], dict):
        raise TypeError(f"model.metadata must be a dict, got {type(record['metadata']).__name__}")
    rest = {key: value for key, value in record.items() if key != "metadata"}
    for value, where in (
        (record["metadata"], "model.metadata"),
        (rest, "the model's configuration"),
    ):
        found = _not_json(value, where, set())
        if found:
            raise TypeError(
                f"{found}, which is not plain data; to be saved, pickled or copied "
                "a model may hold only dicts with string keys, lists, strings, "
                "numbers, booleans and None there"
            )


def _not_json(value, where, seen):
    """Where value first holds something JSON cannot carry back, as
    "<where>[...] holds <type> <value>", or None. Dict keys must be strings (JSON
    would silently turn 1 into "1"); tuples are accepted and come back as lists."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return None
    if id(value) in seen:
        return f"{where} refers back to itself"
    if isinstance(value, (list, tuple, dict)):
        seen = seen | {id(value)}
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):
                return f"{where} has the key {key!r} ({type(key).__name__})"
            found = _not_json(item, f"{where}[{key!r}]", seen)
            if found:
                return found
        return None
    return f"{where} holds {type(value).__name__} {_short(value)}"


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_rebuildable(record):
    """TypeError when the recorded optimiser would not come back (a schedule of
    the user's own kind records a configuration fastbp cannot rebuild)."""
    try:
        optimizers.from_config(record["optimizer"])
    except (ValueError, TypeError, KeyError) as exc:
        raise TypeError(
            f"the optimiser's configuration {record['optimizer']} cannot be "
            f"rebuilt ({exc}); only fastbp's own schedules (fastbp.schedules) "
            "can be saved, pickled or copied"
        ) from None


# --- rebuilding -------------------------------------------------------------------------


def _model_from(record, arrays, backend):
    """from_record without the wrapping of its errors."""
    from fastbp.model import Sequential

    _check_header(record)
    if not isinstance(arrays, dict):
        raise TypeError(f"the arrays must be a dict of numpy arrays, got {type(arrays).__name__}")
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(f"array {name!r} is a {type(value).__name__}, not a numpy array")
    # The model starts without layers so that nothing is built (nor drawn from
    # the generator) before the arrays are known to fit the record.
    model = Sequential.from_config({**record, "layers": [], "input_dim": None}, backend=backend)
    layers = [layer_types.from_config(config) for config in record["layers"]]
    input_dim = check.positive_int("input_dim", record["input_dim"], allow_none=True)
    _check_total_size(layers, input_dim, arrays)
    for layer in layers:
        model.add(layer)
    if input_dim is not None:
        model.build(input_dim)
    _restore_arrays(model, arrays)
    _restore_counters(model, record)
    return model


def _check_header(record):
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        got = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"it is not a fastbp model file (format {got!r}, expected {FORMAT!r})")
    if record.get("version") != VERSION:
        raise ValueError(
            f"it is format version {record.get('version')!r}; this fastbp reads version {VERSION}"
        )


def _check_total_size(layers, input_dim, arrays):
    """The parameter arrays must hold at least as many numbers as the layers
    need, so that a record cannot make the model allocate more than its arrays
    honestly carry (the exact names and shapes are checked after building)."""
    needed, d_in = 0, input_dim
    if input_dim is not None:
        for layer in layers:
            needed += layer.count_params(d_in)
            d_in = layer.output_dim(d_in)
    params = sorted(
        (name for name in arrays if name.startswith("param_")), key=lambda name: (len(name), name)
    )
    held = sum(arrays[name].size for name in params)
    if needed > held:
        shapes = ", ".join(f"{name} has shape {arrays[name].shape}" for name in params[:12])
        more = ", ..." if len(params) > 12 else ""
        raise ValueError(
            f"its parameter arrays hold {held:,} numbers, expected {needed:,} for "
            f"its layers ({shapes or 'there are none'}{more})"
        )


def _restore_arrays(model, arrays):
    """Check every array against the freshly built model, then copy them in."""
    live_params = model._plan.weights() if model.built else []
    live_state = model._plan.optimizer_state() if model.built else []
    expected = {f"param_{i}" for i in range(len(live_params))} | {
        f"state_{i}" for i in range(len(live_state))
    }
    if set(arrays) != expected:
        raise ValueError(f"it holds arrays {sorted(arrays)}, expected {sorted(expected)}")
    weights = [arrays[f"param_{i}"] for i in range(len(live_params))]
    for i, (saved, live) in enumerate(zip(weights, live_params)):
        if saved.dtype != live.dtype:
            raise ValueError(f"param_{i} has dtype {saved.dtype}, the record says {live.dtype}")
    state = [arrays[f"state_{i}"] for i in range(len(live_state))]
    for i, (saved, live) in enumerate(zip(state, live_state)):
        _check_state(f"state_{i}", saved, live)
    if live_params:
        model.set_weights(weights)  # checks shapes and finiteness
    for saved, live in zip(state, live_state):
        live[...] = saved


def _check_state(name, saved, live):
    if saved.shape != live.shape or saved.dtype != live.dtype:
        raise ValueError(
            f"{name} has shape {saved.shape} and dtype {saved.dtype}, "
            f"expected {live.shape} and {live.dtype}"
        )
    if saved.dtype.kind == "f" and not np.isfinite(saved).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    if saved.dtype.kind == "i" and (saved < 0).any():
        raise ValueError(f"{name} holds negative counts")


def _restore_counters(model, record):
    """epochs_done, the optimiser's origin, the generator's state and the metadata."""
    model.epochs_done = check.non_negative_int("epochs_done", record.get("epochs_done", 0))
    if model.built:
        origin = check.non_negative_int("optimizer_origin", record.get("optimizer_origin", 0))
        if origin > model._plan.step_count[0]:
            raise ValueError(
                f"its optimizer_origin {origin} lies after its step count "
                f"{model._plan.step_count[0]}"
            )
        model._plan.optimizer_origin[0] = origin
    model._rng.bit_generator.state = record["rng_state"]
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TypeError(f"its metadata is a {type(metadata).__name__}, expected a dict")
    model.metadata = copy.deepcopy(metadata)


# --- pickle -----------------------------------------------------------------------------


def pickled(model: Sequential) -> tuple[Any, ...]:
    """What Sequential.__reduce__ returns: (rebuild_pickled, (architecture, arrays)),
    architecture the record's JSON text, arrays {name: (dtype.str, shape, bytes)}."""
    record, arrays = _live_record(model)
    packed = {name: (a.dtype.str, a.shape, a.tobytes()) for name, a in arrays.items()}
    return rebuild_pickled, (json.dumps(record), packed)


def rebuild_pickled(
    architecture: str, arrays: dict[str, tuple[str, tuple[int, ...], bytes]]
) -> Sequential:
    """The model pickled() described (pickle calls this: keep its name and
    arguments stable). Checks the payload, then goes through from_record."""
    source = "the pickled data"
    try:
        try:
            record = json.loads(architecture)
        except json.JSONDecodeError as exc:
            raise ValueError(f"its architecture record is not JSON ({exc})") from None
        unpacked = {name: _unpack(name, entry) for name, entry in dict(arrays).items()}
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source} does not hold a valid fastbp model: {exc}") from None
    return from_record(record, unpacked, source=source)


def _unpack(name, entry):
    """A read-only ndarray (native byte order) from (dtype.str, shape, bytes)."""
    code, shape, data = entry
    if code not in PICKLED_DTYPES:
        raise ValueError(
            f"array {name!r} has dtype {code!r}; expected one of {sorted(PICKLED_DTYPES)}"
        )
    shape = tuple(shape)
    if len(shape) > 2 or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(
            f"array {name!r} has shape {shape!r}; expected up to two non-negative ints"
        )
    dtype = np.dtype(code)
    if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
        raise ValueError(
            f"array {name!r} does not hold the {math.prod(shape) * dtype.itemsize} "
            f"bytes its shape {shape} and dtype {code} need"
        )
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


# --- files ------------------------------------------------------------------------------


def save(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Write model to path (a .npz file), replacing any file there only once the
    new one is complete. Builds the model first if its layers declare the input
    width; raises RuntimeError if it cannot be built yet."""
    _check_model(model)
    model._require_built()
    record, arrays = _live_record(model)
    arrays = {**arrays, "architecture": np.array(json.dumps(record))}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path: str | os.PathLike[str], backend: str | None = None) -> Sequential:
    """Read a model written by Sequential.save (fastbp.load).

    The file is opened with allow_pickle=False (nothing in it is ever run), and
    its record and every array are checked before the model uses them. The model
    comes back as it was saved: weights, optimiser state, step count, random
    generator, epochs_done and metadata, so that training resumes exactly.

    Parameters
    ----------
    path : str or os.PathLike
        A .npz file written by save.
    backend : str or None
        "cython" or "numpy" to override the saved backend name.

    Returns
    -------
    Sequential

    Raises
    ------
    FileNotFoundError
        For a missing file.
    ValueError
        Naming the problem, for a file that is truncated, corrupted, of another
        format or version, or whose arrays do not fit its record.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import fastbp as fb
    >>> X = np.random.default_rng(0).standard_normal((32, 2))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> model = fb.Sequential([fb.Dense(4, activation="tanh", input_dim=2), fb.Dense(2)],
    ...                       loss="softmax_cross_entropy", seed=0)
    >>> _ = model.fit(X, y, epochs=2, verbose=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.npz")
    ...     model.save(path)
    ...     again = fb.load(path, backend="numpy")
    >>> again.epochs_done, again.backend_name
    (2, 'numpy')
    >>> bool(np.allclose(again.predict_proba(X), model.predict_proba(X), atol=1e-6))
    True
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        # the file is opened here, not by np.load, so that it is closed however
        # reading it fails (np.load leaves it open when the zip is damaged)
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ValueError(
            f"{path!r} is not a readable fastbp model file ({exc}); it may be "
            "truncated or corrupted"
        ) from None
    record = _architecture(arrays.pop("architecture", None), path)
    return from_record(record, arrays, backend, source=repr(path))


def _architecture(text, path):
    """The record parsed from the file's "architecture" member."""
    if text is None:
        raise ValueError(f"{path!r} is not a fastbp model file: it has no architecture record")
    try:
        return json.loads(str(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r} has a damaged architecture record ({exc})") from None
