"""Saving, loading, pickling and copying models.

A model is written down as two halves of plain data:

- the record, a JSON-ready dict: the format name and version, get_config()
  (layers, loss, optimiser, dtype, backend, thread setting, input width), the
  random generator's state, the epochs completed, the model's metadata (a
  JSON-ready dict, e.g. the CLI's preprocessing) and, when the model has them, its
  feature names ("feature_names_in") and class labels ("classes");
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

import contextlib
import copy
import json
import math
import os
import re
import secrets
import stat
import struct
import sys
import zipfile
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from fastbp import labels as class_labels
from fastbp import layers as layer_types
from fastbp import optimizers
from fastbp import validation as check

if TYPE_CHECKING:
    from fastbp.model import Sequential

FORMAT = "fastbp-model"
VERSION = 1
# Array dtypes a pickle may carry (numpy's dtype.str: byte order, kind, size).
PICKLED_DTYPES = {order + kind for order in "<>" for kind in ("f4", "f8", "i8", "u8")}
STEP_DTYPE, SEED_DTYPE = np.dtype(np.int64), np.dtype(np.uint64)  # the last two state arrays


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
    epochs_done, metadata, feature names and classes. Raises ValueError beginning "{source} does not
    hold a valid fastbp model: " and naming the problem.
    """
    with _refused_as_invalid(source):
        return _model_from(record, arrays, backend)


@contextlib.contextmanager
def _refused_as_invalid(source):
    """Turn the ValueError, TypeError or KeyError of a check inside into one
    ValueError saying that source does not hold a valid fastbp model, and why."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source} does not hold a valid fastbp model: {_said(exc)}") from None
    except KeyError as exc:
        raise ValueError(
            f"{source} does not hold a valid fastbp model: its record has no {_said(exc)} entry"
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
    if model._feature_names is not None:
        record["feature_names_in"] = [str(name) for name in model._feature_names]
    classes = class_labels.to_json(model._classes)  # TypeError for other label types
    if classes is not None:
        record["classes"] = classes
    _check_plain(record)
    _check_rebuildable(record)
    record = json.loads(json.dumps(record))  # a deep copy sharing nothing with the model
    return record, _arrays_of(model)


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

# The training counters are int64 arrays in the plan; a record's are refused above this.
COUNT_LIMIT = 2**63 - 1
# The generator states a record may hold, by bit generator: the fields numpy reports,
# each integer as its inclusive range. default_rng (what a model uses) makes a PCG64.
RNG_STATES: dict[str, dict[str, Any]] = {
    "PCG64": {
        "bit_generator": "PCG64",
        "state": {"state": (0, 2**128 - 1), "inc": (0, 2**128 - 1)},
        "has_uint32": (0, 1),
        "uinteger": (0, 2**32 - 1),
    }
}


def _model_from(record, arrays, backend):
    """from_record without the wrapping of its errors."""
    if not isinstance(arrays, dict):
        raise TypeError(f"the arrays must be a dict of numpy arrays, got {type(arrays).__name__}")
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(
                f"array {check._shown(name)} is a {type(value).__name__}, not a numpy array"
            )
    specs = {name: (value.dtype, value.shape) for name, value in arrays.items()}
    model = _model_for(record, specs, backend)
    _restore(model, record, arrays)
    return model


def _model_for(record, specs, backend, *, built=False):
    """A new model as record describes it, freshly initialised, once the record is
    checked in full and the arrays' names, dtypes and shapes fit it.

    specs : dict {array name: (dtype, shape)}, the arrays that come with the record
    (their values are not needed yet); built : whether the record must describe a
    built model (a file always holds one).

    The model allocates nothing before the parameter arrays are known to hold
    exactly the numbers its layers need, so a record cannot make it larger than
    the arrays that come with it.
    """
    return _built(*_checked_record(record, backend, built), specs)


def _checked_record(
    record: Any, backend: str | None, built: bool
) -> tuple[Sequential, list[layer_types.Layer], int | None]:
    """(model without layers, its layers unbuilt, input_dim) once the whole record is
    checked: header, configuration, layers, input width, counters, generator state
    and metadata. Allocates nothing for the model's arrays."""
    from fastbp.model import Sequential

    _check_header(record)
    # The model starts without layers so that nothing is built (nor drawn from
    # the generator) before the arrays are known to fit the record.
    model = Sequential.from_config({**record, "layers": [], "input_dim": None}, backend=backend)
    layers = _layers(record["layers"])
    input_dim = check.positive_int("input_dim", record["input_dim"], allow_none=not built)
    _check_counters(record)
    model._feature_names, model._classes = _names_and_classes(record, model, layers, input_dim)
    return model, layers, input_dim


def _names_and_classes(record, model, layers, input_dim):
    """(feature names, classes) of the record, each None when it has none: names a
    list of input_dim distinct strings, classes a sorted list of distinct labels of
    one JSON type, as many as the output layer has classes for."""
    names = record.get("feature_names_in")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(
                f"its feature_names_in must be a list of strings; got {check._shown(names)}"
            )
        if len(names) != input_dim:
            raise ValueError(
                f"its feature_names_in lists {len(names)} names, but the model takes "
                f"{input_dim} features"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"its feature_names_in repeats names: {check._shown(names)}")
        names_array = np.empty(len(names), dtype=object)
        names_array[:] = names
        names = names_array
    classes = record.get("classes")
    if classes is not None:
        n_outputs = None
        for layer in layers:
            n_outputs = layer.output_dim(n_outputs)
        n_classes = class_labels.width(model.loss, n_outputs)
        if n_classes is None:
            raise ValueError(
                f"it lists classes, but its loss {model.loss.name!r} with {n_outputs} "
                "outputs takes no class labels"
            )
        classes = class_labels.from_json(classes, n_classes, "its classes")
    return names, classes


def _built(
    model: Sequential,
    layers: list[layer_types.Layer],
    input_dim: int | None,
    specs: dict[str, tuple[np.dtype, tuple[int, ...]]],
) -> Sequential:
    """model with its layers, built, once specs fit them (_check_specs); then every
    array's shape is compared with the built model's."""
    _check_specs(layers, input_dim, model, specs)
    for layer in layers:
        model.add(layer)
    if input_dim is not None:
        model.build(input_dim)
    for name, live in _arrays_of(model).items():
        shape = tuple(specs[name][1])
        if shape != live.shape:
            raise ValueError(f"{name} has shape {shape}, expected {live.shape}")
    return model


def _check_header(record):
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        got = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(
            f"it is not a fastbp model file (format {check._shown(got)}, expected {FORMAT!r})"
        )
    if record.get("version") != VERSION:
        raise ValueError(
            f"it is format version {check._shown(record.get('version'))}; "
            f"this fastbp reads version {VERSION}"
        )


def _layers(configs):
    """The unbuilt layers of the record's "layers" list."""
    if not isinstance(configs, list):
        raise ValueError(f"its layers must be a list of layer records; got {check._shown(configs)}")
    layers = []
    for number, config in enumerate(configs, start=1):
        if not isinstance(config, dict):
            raise ValueError(f"layer {number}'s record must be a dict; got {check._shown(config)}")
        check.check_option(f"layer {number}'s class", config.get("class"), layer_types.LAYERS)
        layers.append(layer_types.from_config(config))
    return layers


def _check_counters(record):
    """epochs_done, optimizer_origin, the generator state and the metadata: their
    types and ranges (the origin is compared with the step count once it is read)."""
    check.check_int("epochs_done", record.get("epochs_done", 0), low=0, high=COUNT_LIMIT)
    check.check_int("optimizer_origin", record.get("optimizer_origin", 0), low=0, high=COUNT_LIMIT)
    state = record["rng_state"]
    kind = state.get("bit_generator") if isinstance(state, dict) else None
    kind = check.check_option("rng_state['bit_generator']", kind, RNG_STATES)
    _check_fields("rng_state", state, RNG_STATES[kind])
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TypeError(f"its metadata is a {type(metadata).__name__}, expected a dict")


def _check_fields(where, value, template):
    """value laid out as template: dicts with the same keys, the same strings, and an
    integer in each (low, high) range."""
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) != set(template):
            got = list(value) if isinstance(value, dict) else value
            raise ValueError(
                f"{where} must have the keys {sorted(template)}; got {check._shown(got)}"
            )
        for key, inner in template.items():
            _check_fields(f"{where}[{key!r}]", value[key], inner)
    elif isinstance(template, tuple):
        check.check_int(where, value, low=template[0], high=template[1])
    elif value != template:
        raise ValueError(f"{where} must be {template!r}; got {check._shown(value)}")


def _check_specs(layers, input_dim, model, specs):
    """The arrays' names and dtypes, and that the parameter arrays hold exactly the
    numbers the layers need (their exact shapes are checked once the model is built)."""
    n_params = sum(len(layer.parameter_names) for layer in layers) if input_dim else 0
    n_states = n_params * model.optimizer.layout[1] + 2 if input_dim else 0
    dtypes = {f"param_{i}": model.dtype for i in range(n_params)}
    dtypes.update((f"state_{i}", model.dtype) for i in range(n_states - 2))
    if n_states:
        dtypes.update({f"state_{n_states - 2}": STEP_DTYPE, f"state_{n_states - 1}": SEED_DTYPE})
    if set(specs) != set(dtypes):
        raise ValueError(f"it holds arrays {_listed(specs)}, expected {_listed(dtypes)}")
    for name, wanted in dtypes.items():
        dtype = specs[name][0]
        if dtype.newbyteorder("=") != wanted:
            raise ValueError(f"{name} has dtype {dtype}, the record says {wanted}")
    needed, d_in = 0, input_dim
    for layer in layers if input_dim else ():
        needed += layer.count_params(d_in)
        d_in = layer.output_dim(d_in)
    params = [f"param_{i}" for i in range(n_params)]
    held = sum(math.prod(specs[name][1]) for name in params)
    if held != needed:
        shapes = ", ".join(f"{name} has shape {tuple(specs[name][1])}" for name in params[:12])
        more = ", ..." if len(params) > 12 else ""
        raise ValueError(
            f"its parameter arrays hold {held:,} numbers, expected {needed:,} for "
            f"its layers ({shapes or 'there are none'}{more})"
        )


def _listed(names, limit=200):
    """Array names in numbered order with runs joined, shortened: "['param_0' ..
    'param_9', 'state_0' .. 'state_21']"."""
    runs: list[list[Any]] = []  # [first name, last name, prefix, last number]
    for name in sorted(map(str, names), key=lambda n: (n.rstrip("0123456789"), len(n), n)):
        prefix = name.rstrip("0123456789")
        number = int(name[len(prefix) :]) if name != prefix else None
        last = runs[-1] if runs else None
        if last and number is not None and last[2:] == [prefix, number - 1]:
            last[1], last[3] = name, number
        else:
            runs.append([name, name, prefix, number])
    text = ", ".join(
        check._shown(a, 40) if a == b else f"{check._shown(a, 40)} .. {check._shown(b, 40)}"
        for a, b, _, _ in runs
    )
    return f"[{text if len(text) <= limit else text[: limit - 3] + '...'}]"


def _arrays_of(model):
    """{"param_<i>": array, "state_<i>": array}: the model's live arrays (none unbuilt)."""
    if not model.built:
        return {}
    arrays = {f"param_{i}": p for i, p in enumerate(model._plan.weights())}
    arrays.update((f"state_{i}", s) for i, s in enumerate(model._plan.optimizer_state()))
    return arrays


def _restore(model, record, arrays):
    """Check the arrays' values, copy them into the freshly built model, then set
    its counters, generator and metadata from the record."""
    live = _arrays_of(model)
    states = [name for name in live if name.startswith("state_")]
    for name in states:
        saved = arrays[name]
        if saved.dtype.kind == "f" and not np.isfinite(saved).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        if saved.dtype.kind == "i" and (saved < 0).any():
            raise ValueError(f"{name} holds negative counts")
    weights = [arrays[name] for name in live if name.startswith("param_")]
    if weights:
        model.set_weights(weights)  # checks finiteness
    for name in states:
        live[name][...] = arrays[name]
    model.epochs_done = record.get("epochs_done", 0)
    if model.built:
        origin = record.get("optimizer_origin", 0)
        if origin > model._plan.step_count[0]:
            raise ValueError(
                f"its optimizer_origin {origin} lies after its step count "
                f"{model._plan.step_count[0]}"
            )
        model._plan.optimizer_origin[0] = origin
    try:
        model._rng.bit_generator.state = record["rng_state"]
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"its rng_state is refused by numpy ({_said(exc)})") from None
    model.metadata = copy.deepcopy(record.get("metadata") or {})


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

# Limits on what load reads before it knows the model: far above what save writes, low
# enough that a hostile record or header costs a few MiB at most.
RECORD_CHARS = 2**20  # the record's JSON text (save refuses a longer one)
RECORD_DEPTH = 64  # lists and dicts inside one another in the record, metadata included
HEADER_BYTES = 2**16  # one npy header, magic string included (numpy writes 128 bytes)
CHUNK_BYTES = 2**20  # array data is read this much at a time
COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
MEMBER_STEM = re.compile(r"architecture|(?:param|state)_(?:0|[1-9][0-9]{0,8})")
# What a damaged archive may raise from zipfile, zlib and numpy's header reader, besides
# ValueError (a warning counts when warnings are errors).
ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    SyntaxError,
    struct.error,
    Warning,
)


def save(model: Sequential, path: str | bytes | os.PathLike[Any]) -> None:
    """Write model to path (a .npz file) as open(path, "wb") would, but atomically.

    path : str, bytes or os.PathLike. A symlink is followed: the file it points to
    is written and the link stays. The new file is written beside that file (a
    temporary file in its folder, fsync, then a rename onto it), so a file
    already there is replaced only once the new one is complete. A new file gets
    0o666 less the umask as its permissions, a replaced one keeps its own.
    Builds the model first if its layers declare the input width.

    Raises RuntimeError if the model cannot be built yet, PermissionError if the
    file there (or its folder) may not be written, IsADirectoryError for a
    folder, ValueError if the record is too large or deep for load to accept
    (RECORD_CHARS, RECORD_DEPTH: model.metadata is too big).
    """
    _check_model(model)
    name = path_text(path)
    model._require_built()
    target = _save_target(name)
    record, arrays = _live_record(model)
    text = json.dumps(record)
    depth = _nesting(record)
    if len(text) > RECORD_CHARS or depth > RECORD_DEPTH:
        raise ValueError(
            f"the model's record (configuration and metadata) is {len(text):,} characters "
            f"of JSON nested {'over ' if depth > RECORD_DEPTH else ''}"
            f"{min(depth, RECORD_DEPTH)} deep; a file holds at most {RECORD_CHARS:,} "
            f"characters nested {RECORD_DEPTH} deep, so make model.metadata smaller"
        )
    arrays = {**arrays, "architecture": np.array(text)}
    write_atomically(target, lambda f: np.savez(f, **arrays))


def write_atomically(target, write):
    """Call write(f) on a new file beside target, then rename it onto target, so that
    target is at every moment the old file or the whole new one (also under Ctrl-C)."""
    fd, tmp = _file_beside(target)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def path_text(path, what="path"):
    """path (str, bytes or os.PathLike) as a str; TypeError naming what otherwise."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(
            f"{what} must be a str, bytes or os.PathLike; got {type(path).__name__}"
        ) from None


def _save_target(path):
    """The file save writes for path, symlinks followed; PermissionError when a file
    there may not be written, IsADirectoryError for a folder."""
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise IsADirectoryError(
            f"{path!r} is a folder; pass a file path such as {os.path.join(path, 'model.npz')!r}"
        )
    if os.path.isfile(target):
        try:  # what open(path, "wb") would ask, without truncating the file
            os.close(os.open(target, os.O_WRONLY))
        except PermissionError:
            raise PermissionError(
                f"{path!r} may not be written (it is read-only for this user); "
                "make it writable (chmod u+w) or save elsewhere"
            ) from None
    return target


def _file_beside(target):
    """(descriptor, path) of a new empty file in target's folder with the permissions
    open(target, "wb") would leave: those of the file at target, or 0o666 less the
    umask (the system applies it) when there is none."""
    tmp = os.path.join(os.path.dirname(target), f".fastbp-{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        if os.path.exists(target):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
    except BaseException:
        os.close(fd)
        os.remove(tmp)
        raise
    return fd, tmp


def _nesting(value):
    """How deeply lists, tuples and dicts nest in value (0 for a number or a string);
    counting stops just past RECORD_DEPTH."""
    deepest, todo = 0, [(value, 0)]
    while todo and deepest <= RECORD_DEPTH:
        item, depth = todo.pop()
        if isinstance(item, (list, tuple, dict)):
            deepest = max(deepest, depth + 1)
            todo.extend(
                (inner, depth + 1) for inner in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def load(path: str | bytes | os.PathLike[Any], backend: str | None = None) -> Sequential:
    """Read a model written by Sequential.save (fastbp.load).

    Nothing in the file is run or unpickled, and nothing is allocated for it
    before it is known to fit its record: the record is read and checked in
    full first, then every member's npy header and size, and only then the
    array data, in bounded reads (docs/design.md §5.3). So a hostile file costs
    no more memory than the model it describes, plus a few MiB. The model comes
    back as it was saved: weights, optimiser state, step count, random
    generator, epochs_done and metadata, so that training resumes exactly.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        A .npz file written by save.
    backend : str or None
        "cython" or "numpy" to override the saved backend name.

    Returns
    -------
    Sequential

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        For a missing file, a folder, a file this user may not read.
    ValueError
        Naming the problem in one line, for anything else: a file that is
        truncated, corrupted, of another format or version, whose record is
        invalid or whose arrays do not fit it (and an unknown backend).

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
    name = path_text(path)
    with _open_model_file(name) as handle:
        try:
            with _refused_as_invalid(repr(name)):
                return _read_model(handle, backend)
        except ARCHIVE_ERRORS as exc:
            raise ValueError(
                f"{name!r} is not a readable fastbp model file ({_said(exc)}); it may be "
                "truncated or corrupted"
            ) from None


def _open_model_file(path):
    """path opened for binary reading. A missing file, a folder and a file this
    user may not read raise FileNotFoundError, IsADirectoryError and
    PermissionError; anything else that is not a regular file raises ValueError."""
    try:
        mode = os.stat(path).st_mode
        handle = open(path, "rb") if stat.S_ISREG(mode) else None  # noqa: SIM115 (returned)
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file at {path!r}") from None
    except PermissionError:
        raise PermissionError(f"{path!r} may not be read by this user") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path!r} cannot be opened ({_said(exc)})") from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path!r} is a folder; pass the .npz file that save wrote")
    if handle is None:
        raise ValueError(f"{path!r} is not a regular file; pass the .npz file that save wrote")
    return handle


def _read_model(handle, backend):
    """load's model from its open file, in the order the checks need: the zip
    directory, the record, every npy header, the model, then the array data."""
    size = os.fstat(handle.fileno()).st_size
    with zipfile.ZipFile(handle) as archive:
        members = _members(archive, size)
        record = _read_record(archive, members.pop("architecture"))
        checked = _checked_record(record, backend, built=True)
        headers = {stem: _npy_header(archive, info) for stem, info in members.items()}
        for stem, (dtype, _, _) in headers.items():
            if dtype.str not in PICKLED_DTYPES:
                raise ValueError(
                    f"{stem} has dtype {dtype}; fastbp files hold only "
                    f"{sorted(PICKLED_DTYPES)} arrays (and never anything a pickle would hold)"
                )
        specs = {stem: (dtype, shape) for stem, (dtype, shape, _) in headers.items()}
        model = _built(*checked, specs)
        arrays = {stem: _read_data(archive, members[stem], *headers[stem]) for stem in members}
    _restore(model, record, arrays)
    return model


def _members(archive, size):
    """{name without ".npy": ZipInfo} for the archive's members, once each is one a
    fastbp file has, listed once, unencrypted, stored or deflated, within the file."""
    members = {}
    for info in archive.infolist():
        stem = info.filename.removesuffix(".npy")
        if stem == info.filename or not MEMBER_STEM.fullmatch(stem):
            raise ValueError(
                f"it holds a member {check._shown(info.filename)}; fastbp files hold only "
                "architecture.npy, param_<i>.npy and state_<i>.npy"
            )
        if stem in members:
            raise ValueError(f"it lists the member {info.filename} twice")
        if info.flag_bits & 0x1:
            raise ValueError(f"its member {info.filename} is encrypted; fastbp never encrypts")
        if info.compress_type not in COMPRESSIONS:
            raise ValueError(
                f"its member {info.filename} uses zip compression method "
                f"{info.compress_type}; fastbp files are stored or deflated"
            )
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.header_offset + info.compress_size > size or (
            stored and info.compress_size != info.file_size
        ):
            raise ValueError(
                f"its zip directory gives the member {info.filename} {info.compress_size:,} "
                f"bytes ({info.file_size:,} uncompressed), which the file's {size:,} "
                "bytes cannot hold"
            )
        members[stem] = info
    if "architecture" not in members:
        raise ValueError("it is not a fastbp model file: it has no architecture record")
    return members


def _read_record(archive, info):
    """The record, from the member holding its JSON text as a 0-d unicode array: at
    most RECORD_CHARS characters, RECORD_DEPTH deep."""
    if info.file_size > HEADER_BYTES + 4 * RECORD_CHARS:
        raise ValueError(
            f"its architecture record is {info.file_size:,} bytes; fastbp records are "
            f"at most {RECORD_CHARS:,} characters"
        )
    dtype, shape, offset = _npy_header(archive, info)
    if dtype.kind != "U" or shape != ():
        raise ValueError(
            f"its architecture record is an array of {dtype} and shape {shape}, "
            "expected one unicode string"
        )
    data = _read_data(archive, info, dtype, shape, offset).tobytes()
    try:
        text = data.decode(f"utf-32-{sys.byteorder[0]}e").rstrip("\0")
        record = json.loads(text)
    except RecursionError:
        raise ValueError(f"its architecture record is nested over {RECORD_DEPTH} deep") from None
    except ValueError as exc:  # UnicodeDecodeError, json.JSONDecodeError, too many digits
        raise ValueError(f"it has a damaged architecture record ({_said(exc)})") from None
    if _nesting(record) > RECORD_DEPTH:
        raise ValueError(f"its architecture record is nested over {RECORD_DEPTH} deep")
    return record


class _Bounded:
    """A zip member read through, refusing to read past its first `limit` bytes."""

    def __init__(self, raw, limit, name):
        self.raw, self.limit, self.name, self.consumed = raw, limit, name, 0

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or self.consumed + size > self.limit:
            raise ValueError(f"{self.name} has an npy header longer than {self.limit:,} bytes")
        data = self.raw.read(size)
        self.consumed += len(data)
        return data


def _npy_header(archive, info):
    """(dtype, shape, header length) of a member's npy header, read in at most
    HEADER_BYTES. The zip directory's uncompressed size for the member must be that
    header plus exactly the data its dtype and shape need (at most two dimensions,
    C order, no Python objects)."""
    with archive.open(info) as raw:
        header = _Bounded(raw, min(HEADER_BYTES, info.file_size), info.filename)
        version = np.lib.format.read_magic(header)
        if version not in HEADER_READERS:
            raise ValueError(
                f"{info.filename} is npy format version {version}; fastbp reads "
                f"{sorted(HEADER_READERS)}"
            )
        shape, fortran_order, dtype = HEADER_READERS[version](header)
    if dtype.hasobject or fortran_order or len(shape) > 2 or min(shape, default=0) < 0:
        raise ValueError(
            f"{info.filename} holds {'Fortran-ordered ' if fortran_order else ''}{dtype} "
            f"of shape {check._shown(shape)}; fastbp files hold C-ordered numbers "
            "of at most two dimensions (never anything a pickle would hold)"
        )
    data = math.prod(shape) * dtype.itemsize
    if info.file_size != header.consumed + data:
        raise ValueError(
            f"{info.filename}'s npy header gives {shape} {dtype} ({data:,} bytes of data), "
            f"but its zip directory gives it {info.file_size - header.consumed:,} bytes"
        )
    return dtype, shape, header.consumed


def _read_data(archive, info, dtype, shape, offset):
    """The member's array (native byte order), its data read CHUNK_BYTES at a time
    into an array of the dtype and shape its header gave; short data is refused,
    and the member's CRC is checked by zipfile on the last read."""
    array = np.empty(shape, dtype)
    buffer = array.reshape(-1).view(np.uint8).data
    with archive.open(info) as raw:
        _Bounded(raw, offset, info.filename).read(offset)  # the header, checked already
        done = 0
        while done < array.nbytes:
            chunk = raw.read(min(CHUNK_BYTES, array.nbytes - done))
            if not chunk:
                raise ValueError(
                    f"{info.filename} ends after {done:,} of its {array.nbytes:,} bytes of data"
                )
            buffer[done : done + len(chunk)] = chunk
            done += len(chunk)
        if raw.read(1):
            raise ValueError(f"{info.filename} holds more data than its header gives")
    return array.astype(dtype.newbyteorder("="), copy=False)


def _said(exc, limit=600):
    """An exception's message on one line, shortened: errors quote what they were
    given, not all of it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
