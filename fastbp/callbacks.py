"""What fit returns, and the hooks it calls (fit(callbacks=[...])).

fit calls, for each callback in the order given: check(recorded) before any
training, on_train_begin(model), then for each epoch on_epoch_begin(epoch, model)
and on_epoch_end(epoch, logs, model), and on_train_end(model) however the fit
ends. logs holds the epoch's figures (the History entries: "loss", "lr", ...);
setting model.stop_training ends the fit after that epoch.

Callbacks in this module: EarlyStopping, ReduceLROnPlateau, LearningRateScheduler,
ModelCheckpoint and CSVLogger (the last two write files).

Epoch numbers: fit's `epoch` argument (and History.epoch) counts the epochs of
this fit from 0. The files and the learning-rate schedule count over the model's
whole training instead (model.epochs_done, the counter the optimiser's schedule
reads), so a second fit continues their numbering: CSVLogger's "epoch" column is
0-based, ModelCheckpoint's {epoch} is 1-based (as Keras numbers saved files).
"""

from __future__ import annotations

import csv
import inspect
import io as text_io
import math
import numbers
import os
import string
import tempfile
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fastbp.model import Sequential

from fastbp import validation as check
from fastbp.concurrency import deferred_interrupts
from fastbp.io import path_text


class History:
    """history : dict mapping metric names ("loss", "accuracy", "lr", "val_loss", ...)
    to one value per epoch; epoch : the epoch indices run (0-based, in this fit)."""

    history: dict[str, list[float]]
    epoch: list[int]

    def __init__(self) -> None:
        self.history = {}
        self.epoch = []

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, metrics={sorted(self.history)})"


class Callback:
    """Hooks fit calls; set model.stop_training = True to end training early.

    check(recorded) runs before any training with the names fit will record
    (see History); raise ValueError there if the callback cannot work with them
    (in a distributed fit, an error there is raised on every rank). on_train_end
    runs however fit ends: normally, on an error or on Ctrl-C, for every callback
    whose on_train_begin ran.

    comm is the mpi4py communicator of the fit under way (None in one process),
    set by fit before check: a callback that writes files writes them on rank 0
    only (comm.Get_rank() == 0)."""

    comm: Any = None

    def check(self, recorded: Collection[str]) -> None:
        pass

    def on_train_begin(self, model: Sequential) -> None:
        pass

    def on_epoch_begin(self, epoch: int, model: Sequential) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Sequential) -> None:
        pass

    def on_train_end(self, model: Sequential) -> None:
        pass

    @property
    def _writes(self) -> bool:
        """Whether this process writes the files (rank 0, or no communicator)."""
        return self.comm is None or self.comm.Get_rank() == 0


class _Monitor(Callback):
    """Tracks the best value of one history metric: lower is better for losses,
    higher for accuracies (mode "auto"), or as mode "min"/"max" says.

    best : the best value seen in this fit (None before the first epoch)."""

    best: float | None
    wait: int

    def __init__(self, monitor: str, min_delta: float, mode: str) -> None:
        check.check_option("mode", mode, ("auto", "min", "max"))
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a metric name such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.min_delta = check.check_real("min_delta", min_delta, low=0)
        self.sign = 1.0 if (mode == "max" or (mode == "auto" and "acc" in monitor)) else -1.0
        self._reset()

    def check(self, recorded: Collection[str]) -> None:
        if self.monitor not in recorded:
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, which this fit "
                f"does not record (it records {sorted(recorded)}); pass "
                "validation_data=... or monitor another metric"
            )

    def _reset(self) -> None:
        self.best, self.wait = None, 0

    def _improved(self, logs: Mapping[str, float]) -> bool:
        self.check(logs)
        value = float(logs[self.monitor])
        if self.best is None or self.sign * (value - self.best) > self.min_delta:
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved by more than min_delta for `patience`
    epochs. With restore_best_weights=True, end with the parameters of the best
    epoch (also when the fit is interrupted); by default (False, as in Keras) the
    model keeps the parameters of its last epoch."""

    best_weights: list[np.ndarray] | None
    stopped_epoch: int | None

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        super().__init__(monitor, min_delta, mode)
        self.patience = check.check_int("patience", patience, low=0)
        self.restore_best_weights = check.check_bool("restore_best_weights", restore_best_weights)
        self.best_weights = self.stopped_epoch = None

    def on_train_begin(self, model: Sequential) -> None:
        self._reset()
        self.best_weights = self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Sequential) -> None:
        if self._improved(logs):
            if self.restore_best_weights:
                self.best_weights = model.get_weights()
        elif self.wait >= self.patience:
            self.stopped_epoch = epoch
            model.stop_training = True

    def on_train_end(self, model: Sequential) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            model.set_weights(self.best_weights)


class ReduceLROnPlateau(_Monitor):
    """Multiply the optimiser's learning rate by `factor` (not below min_lr) when
    `monitor` has not improved by more than min_delta for `patience` epochs; the
    new rate applies from the next epoch (fit logs the rate each epoch used as
    "lr")."""

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, min_delta, mode)
        self.factor = check.check_real(
            "factor", factor, low=0, high=1, low_open=True, high_open=True
        )
        self.patience = check.check_int("patience", patience, low=1)
        self.min_lr = check.check_real("min_lr", min_lr, low=0)

    def on_train_begin(self, model: Sequential) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Sequential) -> None:
        if not self._improved(logs) and self.wait >= self.patience:
            model.optimizer.lr = max(self.min_lr, model.optimizer.lr * self.factor)
            self.wait = 0


# --- the learning rate per epoch --------------------------------------------------------


def _positional_arity(function: Callable[..., Any]) -> int:
    """How many positional arguments function takes, at most 2 (TypeError if its
    signature cannot be read or it takes neither 1 nor 2)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        raise TypeError(
            f"the schedule's signature cannot be read ({function!r}); wrap it in a "
            "function: lambda epoch, lr: ..."
        ) from None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    count = sum(p.kind in positional for p in parameters)
    required = sum(p.kind in positional and p.default is p.empty for p in parameters)
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    if required <= 2 and (varargs or count >= 2):
        return 2
    if count == 1:
        return 1
    takes = f"{required} required positional arguments" if required > 2 else "no positional one"
    raise TypeError(
        f"a schedule takes (epoch) or (epoch, lr) and returns the rate; {function!r} takes {takes}"
    )


class LearningRateScheduler(Callback):
    """Set the optimiser's learning rate before each epoch from schedule.

    schedule : callable, epoch -> lr or (epoch, lr) -> lr
        Told apart by its signature: a function taking two positional arguments
        receives (epoch, current optimizer.lr), one taking one receives epoch.
        epoch is model.epochs_done, 0-based over the model's whole training (a
        second fit continues the schedule). The result must be a finite number
        > 0, else ValueError before any step of that epoch.

    The rate set is the optimiser's base rate: optimizer.lr keeps it after the
    fit, and an optimiser schedule= still applies on top of it (History's "lr"
    is the rate each epoch really used). An epoch that does not complete
    (Ctrl-C, an error, a divergence) also takes back the rate set for it, so a
    resumed fit schedules that epoch from the same rate again.
    """

    def __init__(self, schedule: Callable[..., float]) -> None:
        if not callable(schedule):
            raise TypeError(
                "schedule must be a function epoch -> lr or (epoch, lr) -> lr, "
                f"got {type(schedule).__name__}"
            )
        self._arity = _positional_arity(schedule)
        self.schedule = schedule
        self._undo: tuple[int, float] | None = None  # (epochs_done, lr) before an epoch

    def on_train_begin(self, model: Sequential) -> None:
        self._undo = None

    def on_epoch_begin(self, epoch: int, model: Sequential) -> None:
        at, current = model.epochs_done, model.optimizer.lr
        value = self.schedule(at, current) if self._arity == 2 else self.schedule(at)
        if (
            not isinstance(value, numbers.Real)
            or isinstance(value, (bool, np.bool_))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValueError(
                f"LearningRateScheduler's schedule returned {value!r} for epoch {at} "
                f"(0-based; the rate was {current}); it must return a finite number "
                "> 0. The model is as it was when this epoch was to begin"
            )
        self._undo = (at, current)
        model.optimizer.lr = float(value)

    def on_train_end(self, model: Sequential) -> None:
        if self._undo is not None and model.epochs_done == self._undo[0]:
            model.optimizer.lr = self._undo[1]  # the last epoch did not complete
        self._undo = None


# --- files ------------------------------------------------------------------------------


def _check_folder(folder: str, what: str) -> None:
    """Raise before training if files cannot be created in folder: FileNotFoundError
    or NotADirectoryError if it is not a folder, PermissionError if it is not
    writable (tried by creating and removing a file, which also holds for root)."""
    shown = folder or "."
    if not os.path.isdir(shown):
        kind = NotADirectoryError if os.path.exists(shown) else FileNotFoundError
        raise kind(
            f"{what} writes into the folder {shown!r}, which "
            f"{'is not a folder' if kind is NotADirectoryError else 'does not exist'}; "
            "create it first or give another path"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=shown, prefix=".fastbp-probe-")
    except OSError as exc:
        raise PermissionError(
            f"{what} cannot write into the folder {shown!r} ({exc.strerror}); give a "
            "path in a folder you may write to"
        ) from None
    os.close(fd)
    os.remove(probe)


class ModelCheckpoint(Callback):
    """Save the model (model.save: one .npz file, written atomically) at the end of
    epochs.

    Parameters
    ----------
    path : str or os.PathLike
        The file; it may be a format string with {epoch} (1-based: the model's
        epochs_done once the epoch is over, so a second fit continues the
        numbering) and any metric the fit records, e.g.
        "ckpt-{epoch:03d}-{val_loss:.3f}.npz". Fields may appear in the file
        name only, not in the folder (write literal braces as {{ and }}).
    monitor : str
        The metric save_best_only compares ("val_loss" by default).
    save_best_only : bool
        Save only when monitor improved on the best value of this fit.
    mode : {"auto", "min", "max"}
        Whether lower or higher is better ("auto": higher for accuracies).
    save_freq : "epoch" or int
        Save every epoch, or every N epochs (N >= 1). Unlike Keras, an int
        counts epochs, not batches: fastbp epochs are all or nothing, so a
        file is only ever written between them.

    Everything checkable is checked before the first epoch: the format fields
    (unknown names, bad format specs), monitor, that the folder exists and may
    be written, that the path is not a folder, that the model can be saved. In
    a distributed fit only rank 0 writes (and checks the folder).

    Attributes: best (the best monitor value of this fit, or None),
    last_saved_path (the last file written, or None), saved_paths (every file
    written in this fit). A save that Ctrl-C interrupts completes first.
    """

    best: float | None
    last_saved_path: str | None
    saved_paths: list[str]

    def __init__(
        self,
        path: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
    ) -> None:
        self.path = path_text(path, "ModelCheckpoint path")
        self.save_best_only = check.check_bool("save_best_only", save_best_only)
        if save_freq == "epoch":
            self.every = 1
        elif isinstance(save_freq, str):
            raise ValueError(f"save_freq must be 'epoch' or a number of epochs, got {save_freq!r}")
        else:
            self.every = check.check_int("save_freq", save_freq, low=1)
        self.save_freq = save_freq
        self._tracker = _Monitor(monitor, 0.0, mode)
        self.monitor, self.mode = monitor, mode
        folder, name = os.path.split(self.path)
        if not name:
            raise IsADirectoryError(
                f"ModelCheckpoint path {self.path!r} names a folder; add a file name "
                "such as 'model-{epoch:03d}.npz'"
            )
        self._fields = self._parse(name)
        if self._parse(folder, "the folder"):
            raise ValueError(
                f"ModelCheckpoint path {self.path!r} has format fields in its folder "
                "part; put {epoch} and the metrics in the file name only"
            )
        self._folder = folder.format()
        self._reset()

    def _parse(self, text: str, where: str = "the file name") -> list[str]:
        """The field names of a format string (ValueError if it is malformed or has
        positional, indexed or attribute fields)."""
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ValueError(
                f"ModelCheckpoint path {self.path!r} is not a valid format string ({exc}); "
                "write literal braces as {{ and }}"
            ) from None
        names = [field for _, field, _, _ in parts if field is not None]
        for field in names:
            if not field.isidentifier():
                raise ValueError(
                    f"ModelCheckpoint path {self.path!r}: the field {{{field}}} in {where} "
                    "is not a metric name; use {epoch} or a recorded metric such as "
                    "{val_loss}"
                )
        return names

    def _reset(self) -> None:
        self._tracker._reset()
        self.best = None
        self.last_saved_path = None
        self.saved_paths = []

    def check(self, recorded: Collection[str]) -> None:
        known = {"epoch", *recorded}
        unknown = [field for field in self._fields if field not in known]
        if unknown:
            raise ValueError(
                f"ModelCheckpoint path {self.path!r} uses {{{unknown[0]}}}, which this fit "
                f"does not record; the fields it can use are epoch and {sorted(recorded)}"
            )
        if self.save_best_only:
            self._tracker.check(recorded)
        try:  # the format specs, on values of the kinds fit logs
            sample = self._name_for(1, dict.fromkeys(recorded, 0.0))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"ModelCheckpoint path {self.path!r} cannot be formatted ({exc}); epoch "
                "is an int, metrics are floats (e.g. {epoch:03d}, {val_loss:.4f})"
            ) from None
        if self._writes:
            _check_folder(self._folder, "ModelCheckpoint")
            if os.path.isdir(sample):
                raise IsADirectoryError(
                    f"ModelCheckpoint would write {sample!r}, which is a folder; give a "
                    "file name such as 'model-{epoch:03d}.npz'"
                )

    def _name_for(self, epoch: int, logs: Mapping[str, Any]) -> str:
        values = {key: float(value) for key, value in logs.items() if key in self._fields}
        return self.path.format(**{**values, "epoch": epoch})

    def on_train_begin(self, model: Sequential) -> None:
        self._reset()
        if self._writes:
            from fastbp import io

            io._live_record(model)  # refuses, now, a model that could not be saved

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Sequential) -> None:
        number = model.epochs_done  # 1-based: epochs completed, this one included
        if number % self.every:
            return
        if self.monitor in logs:
            improved = self._tracker._improved(logs)
            self.best = self._tracker.best
            if self.save_best_only and not improved:
                return
        elif self.save_best_only:
            self._tracker.check(logs)  # raises: monitor missing
        target = self._name_for(number, logs)
        with deferred_interrupts():  # Ctrl-C waits until the file is whole
            model.save(target, comm=self.comm)
        self.last_saved_path = target
        self.saved_paths.append(target)


class CSVLogger(Callback):
    """Write one row per epoch to a CSV file: a header, then the epoch and every
    metric fit records (History's names, sorted as Keras sorts them).

    Parameters
    ----------
    path : str or os.PathLike
    separator : str
        One character between the fields (default ",").
    append : bool
        Continue an existing file whose header is this fit's; a file with
        another header is refused before training (a UTF-8 byte-order mark at
        its start is accepted). False (default) replaces the file.

    The "epoch" column is 0-based over the model's whole training
    (model.epochs_done - 1), so appended fits continue the numbering. Floats are
    written with repr precision (they read back exactly); a metric missing from
    an epoch's logs leaves its field empty, and values other callbacks add to
    logs are not written. Each row is flushed when written, so a crash keeps the
    rows so far, and the file is closed when the fit ends, however it ends. If
    the file is deleted during the fit, it is written again (with this fit's
    rows) and a RuntimeWarning says so; if another file replaces it, the fit
    stops with a RuntimeError rather than write over that file. In a
    distributed fit only rank 0 writes.
    """

    columns: list[str] | None

    def __init__(
        self, path: str | os.PathLike[str], separator: str = ",", append: bool = False
    ) -> None:
        self.path = path_text(path, "CSVLogger path")
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"'":
            raise ValueError(
                "separator must be one character other than a quote or a line break "
                f"(such as ',', ';' or '\\t'), got {separator!r}"
            )
        self.separator = separator
        self.append = check.check_bool("append", append)
        self.columns = None
        self._file: IO[str] | None = None
        self._rows: list[str] = []  # this fit's rows, to write again if the file goes

    def check(self, recorded: Collection[str]) -> None:
        self.columns = ["epoch", *sorted(recorded)]
        if not self._writes:
            return
        _check_folder(os.path.dirname(self.path), "CSVLogger")
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"CSVLogger path {self.path!r} is a folder; give a file name")
        if self.append and os.path.exists(self.path):
            self._check_existing_header()

    def _line(self, fields: list[str]) -> str:
        out = text_io.StringIO()
        csv.writer(out, delimiter=self.separator, lineterminator="\n").writerow(fields)
        return out.getvalue()

    def _check_existing_header(self) -> None:
        """ValueError unless the file's first line is this fit's header."""
        assert self.columns is not None
        with open(self.path, "rb") as f:
            head = f.readline(1 << 16)
        if not head.strip():
            return  # empty: the header is written as for a new file
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError(
                f"CSVLogger cannot append to {self.path!r}: its first line is not UTF-8 "
                "text; pass append=False to replace it, or another path"
            ) from None
        found = next(csv.reader([text.rstrip("\r\n")], delimiter=self.separator), [])
        if found != self.columns:
            raise ValueError(
                f"CSVLogger cannot append to {self.path!r}: its header is {found} "
                f"(read with separator {self.separator!r}) but this fit writes "
                f"{self.columns}; pass append=False to replace it, another path, or "
                "the same metrics (validation_data, diagnostics) as the fit that wrote it"
            )

    def on_train_begin(self, model: Sequential) -> None:
        self._close()
        self._rows = []
        if not self._writes:
            return
        if self.columns is None:  # check() not called (fit always calls it)
            raise RuntimeError("CSVLogger.check(recorded) must run before on_train_begin")
        continuing = self.append and os.path.exists(self.path) and os.path.getsize(self.path)
        if continuing:
            self._check_existing_header()
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                ended = f.read(1) in (b"\n", b"\r")
            self._file = self._open("a")
            if not ended:  # the file ended mid-line: the rows start on a new one
                self._file.write("\n")
        else:
            self._file = self._open("w")
            self._file.write(self._line(self.columns))
        self._file.flush()

    def _open(self, mode: str) -> IO[str]:
        """The file, open until on_train_end (so no with-block), and its identity."""
        file = open(self.path, mode, encoding="utf-8", newline="")  # noqa: SIM115
        self._identity = os.fstat(file.fileno())
        return file

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Sequential) -> None:
        if self._file is None:
            return
        assert self.columns is not None
        values = {**logs, "epoch": model.epochs_done - 1}
        row = self._line([_cell(values.get(name)) for name in self.columns[:]])
        self._rows.append(row)
        with deferred_interrupts():  # a row is written whole
            self._follow_path()
            self._file.write(row)
            self._file.flush()

    def _follow_path(self) -> None:
        """If the file was deleted meanwhile, write it again with this fit's rows so
        far (warning); if another file took its place, refuse to write over it."""
        assert self._file is not None and self.columns is not None
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        same = now is not None and (now.st_dev, now.st_ino) == (
            self._identity.st_dev,
            self._identity.st_ino,
        )
        if same:
            return
        if now is not None:
            raise RuntimeError(
                f"CSVLogger's file {self.path!r} was replaced by another file during "
                "training; its rows so far are in CSVLogger.rows and the other file "
                "was left alone"
            )
        self._file.close()
        self._file = self._open("w")
        self._file.write(self._line(self.columns) + "".join(self._rows[:-1]))
        warnings.warn(
            f"CSVLogger's file {self.path!r} was deleted during training; it was "
            f"written again with the {len(self._rows)} rows of this fit (this epoch's "
            "included)",
            RuntimeWarning,
            stacklevel=4,
        )

    @property
    def rows(self) -> list[str]:
        """The lines written in this fit (header excluded), as written."""
        return list(self._rows)

    def _close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def on_train_end(self, model: Sequential) -> None:
        self._close()


def _cell(value: Any) -> str:
    """A CSV field: ints as they are, floats with repr precision, nothing as ''."""
    if value is None:
        return ""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return str(value)
