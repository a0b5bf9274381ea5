"""Optimisers: configuration only; the update rules live in the backends.

SGD: W <- W - lr * (dW + weight_decay * W) and b <- b - lr * db, where the L2 term
weight_decay/2 * ||W||_F^2 is part of the loss and biases are not decayed.
"""
import math


def _check_rate(name, value, allow_zero):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


class SGD:
    """Plain (mini-batch) gradient descent with optional L2 weight decay.

    lr : learning rate, > 0.  weight_decay : L2 strength lambda, >= 0.
    """

    name = "sgd"

    def __init__(self, lr=0.01, weight_decay=0.0):
        self.lr = _check_rate("lr", lr, allow_zero=False)
        self.weight_decay = _check_rate("weight_decay", weight_decay, allow_zero=True)

    def get_config(self):
        return {"name": self.name, "lr": self.lr, "weight_decay": self.weight_decay}

    def __repr__(self):
        return f"SGD(lr={self.lr}, weight_decay={self.weight_decay})"


OPTIMIZERS = {"sgd": SGD}


def from_config(config):
    """The optimiser get_config() described."""
    config = dict(config)
    name = config.pop("name", None)
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](**config)


def get(optimizer):
    """An optimiser instance from an instance, a name, or None (SGD defaults)."""
    if optimizer is None:
        return SGD()
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of "
                             f"{sorted(OPTIMIZERS)} or an instance such as fb.SGD(lr=0.1)")
        return OPTIMIZERS[optimizer]()
    if isinstance(optimizer, tuple(OPTIMIZERS.values())):
        return optimizer
    raise TypeError(f"optimizer must be a name or an optimiser such as fb.SGD(lr=0.1), "
                    f"got {type(optimizer).__name__}")
