"""Saving and loading models: one .npz holding a JSON architecture record and arrays.

The record ("architecture") holds the format name and version, the layers, loss,
optimiser, dtype, backend, thread setting, the random generator's state, the
epochs completed and the model's metadata (a JSON-ready dict, e.g. the CLI's
preprocessing); the arrays are the parameters ("param_0", "param_1", ... in
get_weights order) and the optimiser's state ("state_0", ...). Files
are read with allow_pickle=False, so loading never runs code from the file, and
written atomically: a temporary file in the same folder, then a rename.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastbp-model"
VERSION = 1


def save(model, path):
    """Write model to path (a .npz file), replacing any file there only once the
    new one is complete."""
    from fastbp.model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"save expects a fastbp.Sequential, got {type(model).__name__}")
    model._require_built()
    record = {"format": FORMAT, "version": VERSION, **model.get_config(),
              "rng_state": model._rng.bit_generator.state, "metadata": model.metadata,
              "epochs_done": model.epochs_done}
    arrays = {f"param_{i}": p for i, p in enumerate(model._plan.parameters())}
    arrays.update({f"state_{i}": s for i, s in enumerate(model._plan.optimizer_state())})
    arrays["architecture"] = np.array(json.dumps(record))
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


def load(path, backend=None):
    """Read a model written by save. backend overrides the saved backend name.

    Raises ValueError naming the problem for a file that is missing, truncated,
    corrupted, of another format or version, or whose arrays do not fit its record.
    """
    from fastbp.model import Sequential

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path!r} is not a readable fastbp model file ({exc}); it may be "
                         "truncated or corrupted") from None
    record = _record(arrays, path)
    try:
        model = Sequential.from_config(record, backend=backend)
        n_params = len(model._plan.parameters())
        state = model._plan.optimizer_state()
        names = ({f"param_{i}" for i in range(n_params)} | {f"state_{i}" for i in range(len(state))}
                 | {"architecture"})
        if set(arrays) != names:
            raise ValueError(f"it holds arrays {sorted(arrays)}, expected {sorted(names)}")
        weights = [arrays[f"param_{i}"] for i in range(n_params)]
        for i, (w, p) in enumerate(zip(weights, model._plan.parameters())):
            if w.dtype != p.dtype:
                raise ValueError(f"param_{i} has dtype {w.dtype}, the record says {p.dtype}")
        for i, live in enumerate(state):
            saved = arrays[f"state_{i}"]
            if saved.shape != live.shape or saved.dtype != live.dtype:
                raise ValueError(f"state_{i} has shape {saved.shape} and dtype {saved.dtype}, "
                                 f"expected {live.shape} and {live.dtype}")
            if saved.dtype.kind == "f" and not np.isfinite(saved).all():
                raise ValueError(f"state_{i} holds NaN or infinite values")
        model.set_weights(weights)
        for saved, live in zip((arrays[f"state_{i}"] for i in range(len(state))), state):
            live[...] = saved
        model.epochs_done = int(record.get("epochs_done", 0))
        model._rng.bit_generator.state = record["rng_state"]
        model.metadata = dict(record.get("metadata") or {})
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path!r} does not hold a valid fastbp model: {exc}") from None
    return model


def _record(arrays, path):
    if "architecture" not in arrays:
        raise ValueError(f"{path!r} is not a fastbp model file: it has no architecture record")
    try:
        record = json.loads(str(arrays["architecture"]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r} has a damaged architecture record ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a fastbp model file")
    if record.get("version") != VERSION:
        raise ValueError(f"{path!r} is format version {record.get('version')!r}; this fastbp "
                         f"reads version {VERSION}")
    return record
