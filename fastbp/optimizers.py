"""Optimisers: configuration only; the update rules live in the backends
(csrc/fbp_kernels_impl.h fbp_optim_update and its NumPy twin).

For a parameter w with gradient g (after clipping):

- SGD:      v = momentum v + g;  w -= lr (g + momentum v if nesterov else v)
            (with momentum 0: w -= lr g)
- Adam:     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
            w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
- AdamW:    Adam, with w -= lr weight_decay w first (decoupled decay)
- RMSProp:  s = rho s + (1 - rho) g^2;  w -= lr g / (sqrt(s) + eps)
- Adagrad:  s = s + g^2;  w -= lr g / (sqrt(s) + eps)

weight_decay is the L2 term weight_decay/2 ||W||_F^2 of the loss (biases not
decayed), its gradient weight_decay W added to dW; AdamW applies it decoupled
instead. clipnorm rescales all gradients together when their global L2 norm
exceeds it. schedule maps the epoch to the learning rate (fastbp.schedules).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from fastbp import schedules as lr_schedules
from fastbp import validation as check
from fastbp.schedules import Schedule

# A setting's check: check(optimizer, name, value) -> the value to store
Check = Callable[["Optimizer", str, Any], Any]
Value = TypeVar("Value")

if TYPE_CHECKING:  # tells mypy that subclasses are dataclasses (__init_subclass__ below)
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**kwargs: Any) -> Callable[[type], type]:
        return lambda cls: cls


# Update rules: the FBP_OPT_* enum of csrc/fbp_kernels.h, checked against KINDS when
# the compiled backend loads. AdamW is Adam's rule with decoupled decay.
SGD_KIND, ADAM_KIND, RMSPROP_KIND, ADAGRAD_KIND = 0, 1, 2, 3
KINDS = {"sgd": SGD_KIND, "adam": ADAM_KIND, "rmsprop": RMSPROP_KIND, "adagrad": ADAGRAD_KIND}


def setting(default: Value, check: Check) -> Value:
    """A constructor parameter and attribute of an optimiser: its default, and the
    check(optimizer, name, value) -> value to store that runs whenever it is set."""
    return dataclasses.field(default=default, metadata={"check": check})


_positive = check.setting(check.check_real, low=0, low_open=True)
_non_negative = check.setting(check.check_real, low=0)
_fraction = check.setting(check.check_real, low=0, high=1, high_open=True)  # momentum, betas, rho


def _clipnorm(obj: Optimizer, name: str, value: Any) -> float | None:
    return check.optional(check.check_real, name, value, low=0, low_open=True)


def _schedule(obj: Optimizer, name: str, value: Any) -> Schedule | None:
    return lr_schedules.get(value)


@dataclass_transform(kw_only_default=False)
@dataclasses.dataclass(eq=False, repr=False)
class Optimizer:
    """Shared configuration: lr > 0, weight_decay >= 0, clipnorm (None or > 0),
    schedule (None, a schedule object from fastbp.schedules, or a function
    (lr, epoch) -> rate, which a model cannot then be saved with: see
    fastbp.schedules.Function); after lr and the optimiser's own settings, these
    three are keyword-only.

    Every hyper-parameter may be changed between calls (opt.lr = 0.01); it is
    checked when set (each field's setting(default, check), check(optimizer, name,
    value) returning the value to store; a bad value raises and leaves the old one)
    and read by the model at its next call. A change that alters what state the
    optimiser keeps (SGD's momentum to or from 0) gives that state a fresh start at
    the next training call. Reads are plain attributes: the engine reads them every
    step.

    A subclass declares its settings, lr with its default included, as fields;
    it is made a dataclass, named after itself in lower case, and runs the rule
    KINDS gives that name (or its parent's rule, as AdamW runs Adam's)."""

    name: ClassVar[str] = ""  # set for each subclass
    kind: ClassVar[int | None] = None
    decoupled: ClassVar[bool] = False
    lr: float = setting(0.01, _positive)
    _: dataclasses.KW_ONLY
    weight_decay: float = setting(0.0, _non_negative)
    clipnorm: float | None = setting(None, _clipnorm)
    schedule: Schedule | None = setting(None, _schedule)  # noqa: RUF009 (a field)
    # the hyper-parameters of every kind, 0 unless this optimiser sets its own
    # (plain class attributes, not fields: a subclass declares its own as fields)
    nesterov = False
    momentum = beta1 = beta2 = rho = eps = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = cls.__name__.lower()
        cls.kind = KINDS.get(cls.name, cls.kind)
        dataclasses.dataclass(eq=False, repr=False)(cls)

    def __setattr__(self, name: str, value: Any) -> None:
        field = self.__dataclass_fields__.get(name)
        check = None if field is None else field.metadata.get("check")
        object.__setattr__(self, name, value if check is None else check(self, name, value))

    @property
    def n_state(self) -> int:
        """State arrays kept per parameter array."""
        return 0

    @property
    def layout(self) -> tuple[str, int]:
        """What the model's optimiser state depends on: (kind, state arrays per
        parameter). A model re-plans its state when this changes."""
        return (type(self).__name__, self.n_state)

    @property
    def l2(self) -> float:
        """The coupled L2 strength: part of the loss and of dW."""
        return 0.0 if self.decoupled else self.weight_decay

    def lr_at(self, epoch: int) -> float:
        """The learning rate for epoch (0-based): lr, or what the schedule makes of
        it; ValueError if a schedule gives anything but a finite number >= 0 (0:
        CosineDecay's last epochs with min_lr=0)."""
        if self.schedule is None:
            return self.lr
        value = self.schedule(self.lr, epoch)
        try:
            return check.check_real("rate", value, low=0)
        except ValueError:
            raise ValueError(
                f"the optimiser's schedule {self.schedule!r} gave the rate {value!r} for "
                f"epoch {epoch} (0-based, from lr={self.lr}); a rate must be a finite "
                "number >= 0, so no step was taken with it"
            ) from None

    def folds_into_gemm(self) -> bool:
        """True when the update is exactly W -= lr (dW + l2 W): the compiled engine
        then folds it into the weight-gradient GEMM."""
        return False

    def hyper(self, out: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the kernels read, keyed by the fields of fbp_hyper in csrc/fbp_kernels.h
        (the engine refuses a missing or unknown key): kind; nesterov, momentum, beta1,
        beta2, rho, eps, this optimiser's attributes of those names (0 for the kinds
        that have none); decay, the decoupled weight decay. The engine sets lr itself.

        out: a dict to refresh in place and return instead of a new one (the compiled
        backend keeps one, so that a training step allocates nothing)."""
        hyper = {} if out is None else out
        hyper["kind"] = self.kind
        hyper["nesterov"] = 1 if self.nesterov else 0
        hyper["momentum"] = self.momentum
        hyper["beta1"] = self.beta1
        hyper["beta2"] = self.beta2
        hyper["rho"] = self.rho
        hyper["eps"] = self.eps
        hyper["decay"] = self.weight_decay if self.decoupled else 0.0
        return hyper

    def get_config(self) -> dict[str, Any]:
        """name, then the constructor's parameters in its order (schedules as their
        own config)."""
        config: dict[str, Any] = {"name": self.name}
        for key in inspect.signature(type(self)).parameters:
            value = getattr(self, key)
            config[key] = value.get_config() if hasattr(value, "get_config") else value
        return config

    def __repr__(self) -> str:
        shown = []
        for key in inspect.signature(type(self)).parameters:
            value = getattr(self, key)
            if hasattr(value, "get_config") and not isinstance(value, lr_schedules.Function):
                value = value.get_config()  # a function schedule has none: shown as itself
            shown.append(f"{key}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _momentum(obj: Optimizer, name: str, value: Any) -> float:
    value = _fraction(obj, name, value)
    if value == 0 and obj.__dict__.get("nesterov"):
        raise ValueError("nesterov=True needs momentum > 0; set nesterov=False first")
    return value


def _nesterov(obj: Optimizer, name: str, value: Any) -> bool:
    value = check.check_bool(name, value)
    if value and obj.momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0")
    return bool(value)


class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum."""

    lr: float = setting(0.01, _positive)
    momentum: float = setting(0.0, _momentum)
    nesterov: bool = setting(False, _nesterov)

    @property
    def n_state(self) -> int:
        return 1 if self.momentum else 0

    def folds_into_gemm(self) -> bool:
        return self.momentum == 0 and self.clipnorm is None


class Adam(Optimizer):
    """Adam with bias correction."""

    n_state = 2  # state arrays per parameter
    lr: float = setting(0.001, _positive)
    beta1: float = setting(0.9, _fraction)
    beta2: float = setting(0.999, _fraction)
    eps: float = setting(1e-8, _positive)


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01): W -= lr weight_decay W."""

    decoupled = True
    _: dataclasses.KW_ONLY
    weight_decay: float = setting(0.01, _non_negative)


class RMSProp(Optimizer):
    """RMSProp: steps scaled by a running root mean square of the gradients."""

    n_state = 1  # state arrays per parameter
    lr: float = setting(0.001, _positive)
    rho: float = setting(0.9, _fraction)
    eps: float = setting(1e-8, _positive)


class Adagrad(Optimizer):
    """Adagrad: steps scaled by the root of the summed squared gradients."""

    n_state = 1  # state arrays per parameter
    lr: float = setting(0.01, _positive)
    eps: float = setting(1e-10, _positive)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, AdamW, RMSProp, Adagrad)}


def from_config(config: dict[str, Any]) -> Optimizer:
    """The optimiser get_config() described."""
    config = dict(config)
    name = config.pop("name", None)
    check.check_option("optimizer", name, tuple(OPTIMIZERS))
    if config.get("schedule") is not None:
        config["schedule"] = lr_schedules.from_config(config["schedule"])
    return OPTIMIZERS[name](**config)


def get(optimizer: Optimizer | str | None) -> Optimizer:
    """An optimiser instance from an instance, a name, or None (SGD defaults)."""
    if optimizer is None:
        return SGD()
    if isinstance(optimizer, str):
        return OPTIMIZERS[check.check_option("optimizer", optimizer, tuple(OPTIMIZERS))]()
    if isinstance(optimizer, Optimizer):
        return optimizer
    raise TypeError(
        f"optimizer must be a name or an optimiser such as fb.SGD(lr=0.1), "
        f"got {type(optimizer).__name__}"
    )
