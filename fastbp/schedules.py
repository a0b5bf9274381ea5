"""Learning-rate schedules: the rate for each epoch (0-based) from the base rate.

- StepDecay(step_size, gamma=0.1):  lr * gamma ** (epoch // step_size)
- ExponentialDecay(gamma):          lr * gamma ** epoch
- CosineDecay(epochs, min_lr=0):    min_lr + (lr - min_lr) (1 + cos(pi t)) / 2,
                                    t = min(epoch, epochs) / epochs

Reduce-on-plateau depends on the validation loss, so it is a callback
(fastbp.callbacks.ReduceLROnPlateau).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from fastbp import validation as check


class Schedule(Protocol):
    """What an optimiser's schedule= takes: the rate for an epoch from the base rate,
    and a JSON-ready config (with "name") for saving."""

    def __call__(self, lr: float, epoch: int) -> float: ...

    def get_config(self) -> dict[str, Any]: ...


class StepDecay:
    name = "step"

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = check.check_int("step_size", step_size, low=1)
        self.gamma = check.check_real("gamma", gamma, low=0, low_open=True)

    def __call__(self, lr: float, epoch: int) -> float:
        return lr * self.gamma ** (epoch // self.step_size)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "step_size": self.step_size, "gamma": self.gamma}


class ExponentialDecay:
    name = "exponential"

    def __init__(self, gamma: float) -> None:
        self.gamma = check.check_real("gamma", gamma, low=0, low_open=True)

    def __call__(self, lr: float, epoch: int) -> float:
        return lr * self.gamma**epoch

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "gamma": self.gamma}


class CosineDecay:
    name = "cosine"

    def __init__(self, epochs: int, min_lr: float = 0.0) -> None:
        self.epochs = check.check_int("epochs", epochs, low=1)
        self.min_lr = check.check_real("min_lr", min_lr, low=0)

    def __call__(self, lr: float, epoch: int) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.min_lr + (lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "epochs": self.epochs, "min_lr": self.min_lr}


SCHEDULES = {cls.name: cls for cls in (StepDecay, ExponentialDecay, CosineDecay)}


def from_config(config: dict[str, Any]) -> Schedule:
    config = dict(config)
    name = config.pop("name", None)
    return SCHEDULES[check.check_option("schedule", name, tuple(SCHEDULES))](**config)


def get(schedule: Schedule | None) -> Schedule | None:
    """None, or a schedule object (names need their parameters, so objects only)."""
    if schedule is None or (callable(schedule) and hasattr(schedule, "get_config")):
        return schedule
    raise TypeError(
        f"schedule must be None or a schedule such as "
        f"fb.schedules.CosineDecay(epochs=50), got {schedule!r}"
    )
