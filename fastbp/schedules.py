"""Learning-rate schedules: the rate for each epoch (0-based) from the base rate.

- StepDecay(step_size, gamma=0.1):  lr * gamma ** (epoch // step_size)
- ExponentialDecay(gamma):          lr * gamma ** epoch
- CosineDecay(epochs, min_lr=0):    min_lr + (lr - min_lr) (1 + cos(pi t)) / 2,
                                    t = min(epoch, epochs) / epochs

An optimiser's schedule= may also be a plain function (lr, epoch) -> rate
(Function), but a model holding one cannot be saved. The rate is checked
(finite, >= 0) before any step uses it (Optimizer.lr_at).

Reduce-on-plateau depends on the validation loss, so it is a callback
(fastbp.callbacks.ReduceLROnPlateau); so is setting the rate from a function of
the epoch in Keras's order (fastbp.callbacks.LearningRateScheduler).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


class Function:
    """A plain function (lr, epoch) -> rate as a schedule: the arguments in the
    order every fastbp schedule takes them (Keras's LearningRateScheduler takes
    (epoch, lr): see fastbp.callbacks.LearningRateScheduler).

    A function is code, not data, so a model whose optimiser has one cannot be
    saved, pickled or copied: get_config raises TypeError saying so. Set
    optimizer.schedule = None before saving and set it again after loading, or
    use one of the schedules above."""

    name = "function"

    def __init__(self, function: Callable[[float, int], float]) -> None:
        self.function = function

    def __call__(self, lr: float, epoch: int) -> float:
        return self.function(lr, epoch)

    def get_config(self) -> dict[str, Any]:
        raise TypeError(
            f"the optimiser's schedule is the function {self.function!r}, which a file "
            "or a pickle cannot hold (code, not data); set optimizer.schedule = None "
            "before saving and set it again after loading, or use a schedule of "
            "fastbp.schedules (StepDecay, ExponentialDecay, CosineDecay)"
        )

    def __repr__(self) -> str:
        return f"Function({self.function!r})"


SCHEDULES = {cls.name: cls for cls in (StepDecay, ExponentialDecay, CosineDecay)}


def from_config(config: dict[str, Any]) -> Schedule:
    config = dict(config)
    name = config.pop("name", None)
    return SCHEDULES[check.check_option("schedule", name, tuple(SCHEDULES))](**config)


def get(schedule: Schedule | Callable[[float, int], float] | None) -> Schedule | None:
    """None, a schedule object (names need their parameters, so objects only), or
    a plain function (lr, epoch) -> rate, wrapped as a Function."""
    if schedule is None or (callable(schedule) and hasattr(schedule, "get_config")):
        return schedule  # type: ignore[return-value]
    if callable(schedule):
        return Function(schedule)
    raise TypeError(
        f"schedule must be None or a schedule such as fb.schedules.CosineDecay(epochs=50) "
        f"(or a function (lr, epoch) -> rate), got {schedule!r}"
    )
