"""What fit returns, and the hooks it calls (fit(callbacks=[...])).

Each callback's on_epoch_end(epoch, logs, model) sees the epoch's figures (the
History entries); setting model.stop_training ends the fit after that epoch.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastbp.model import Sequential

from fastbp import validation as check


class History:
    """history : dict mapping metric names ("loss", "accuracy", "val_loss", ...) to
    one value per epoch; epoch : the epoch indices run."""

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
    (see History); raise ValueError there if the callback cannot work with them.
    on_train_end runs however fit ends: normally, on an error or on Ctrl-C."""

    def check(self, recorded: Collection[str]) -> None:
        pass

    def on_train_begin(self, model: Sequential) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Sequential) -> None:
        pass

    def on_train_end(self, model: Sequential) -> None:
        pass


class _Monitor(Callback):
    """Tracks the best value of one history metric: lower is better for losses,
    higher for accuracies (mode "auto"), or as mode "min"/"max" says."""

    best: float | None
    wait: int

    def __init__(self, monitor: str, min_delta: float, mode: str) -> None:
        check.check_option("mode", mode, ("auto", "min", "max"))
        self.monitor = monitor
        self.min_delta = check.check_real("min_delta", min_delta, low=0)
        self.sign = 1.0 if (mode == "max" or (mode == "auto" and "acc" in monitor)) else -1.0

    def check(self, recorded: Collection[str]) -> None:
        if self.monitor not in recorded:
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, which this fit "
                f"does not record (it records {sorted(recorded)}); pass "
                "validation_data=... or monitor another metric"
            )

    def _reset(self) -> None:
        self.best, self.wait = None, 0

    def _improved(self, logs: dict[str, float]) -> bool:
        self.check(logs)
        value = self.sign * logs[self.monitor]
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved by more than min_delta for `patience`
    epochs; with restore_best_weights, end with the parameters of the best epoch."""

    best_weights: list[np.ndarray] | None
    stopped_epoch: int | None

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = True,
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
    `monitor` has not improved by more than min_delta for `patience` epochs."""

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
        logs["lr"] = model.optimizer.lr
