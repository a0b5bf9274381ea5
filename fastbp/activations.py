"""Activation registry: name -> kernel code, default parameter, meaning.

The codes are the FBP_ACT_* enum of csrc/fbp_kernels.h (FBP_ACT_GELU for "gelu"),
checked against this registry when the compiled backend loads.

The math lives in the backends (fastbp/backends/numpy_backend.py and csrc/); this
module only names things. Derivatives at kinks follow PyTorch: relu'(0) = 0,
leaky_relu'(0) = slope, elu'(0) = alpha; the clipped hard_sigmoid and hard_tanh have
slope only strictly inside their ramps. hard_sigmoid is max(min(0.25 z + 0.5, 1), 0),
fastbp's own definition, where PyTorch's is relu6(z + 3) / 6. gelu is the tanh
approximation.

Two entries are not plain element-wise functions: softmax normalises each row (its
backward pass multiplies by the row's Jacobian), and prelu learns its negative
slope, one per unit (the plan gives it a node of its own with a parameter array).
Maxout is a layer, not an activation: it needs weights of its own (fastbp.Maxout).
"""

from dataclasses import dataclass
from typing import Any

from fastbp.validation import check_option, check_real

# Kernel codes of the activations that are not one expression per element.
SOFTMAX = 11  # row-wise (csrc/fbp_layers_impl.h)
PRELU = 12  # FBP_ACT_PRELU: named in C so the tables agree, but the element-wise
# kernels refuse it; the plan gives PReLU a node of its own


@dataclass(frozen=True)
class ActivationSpec:
    """What an activation is called, its kernel code and its one parameter."""

    name: str
    code: int
    param_name: str | None
    default_param: float
    formula: str
    derivative: str
    learnable: bool = False  # the parameter is a per-unit array learnt in training


@dataclass(frozen=True)
class BoundActivation:
    """An activation with its parameter fixed, as a layer holds it."""

    spec: ActivationSpec
    param: float

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def code(self) -> int:
        return self.spec.code

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.spec.name}
        if self.spec.param_name is not None:
            config[self.spec.param_name] = self.param
        return config


ACTIVATIONS = {
    spec.name: spec
    for spec in (
        ActivationSpec("identity", 0, None, 0.0, "z", "1"),
        ActivationSpec("sigmoid", 1, None, 0.0, "1 / (1 + exp(-z))", "s(z) (1 - s(z))"),
        ActivationSpec("tanh", 2, None, 0.0, "tanh(z)", "1 - tanh(z)^2"),
        ActivationSpec("relu", 3, None, 0.0, "max(z, 0)", "1 if z > 0 else 0"),
        ActivationSpec(
            "leaky_relu", 4, "slope", 0.01, "z if z > 0 else slope * z", "1 if z > 0 else slope"
        ),
        ActivationSpec(
            "elu",
            5,
            "alpha",
            1.0,
            "z if z > 0 else alpha * (exp(z) - 1)",
            "1 if z > 0 else alpha * exp(z)",
        ),
        ActivationSpec("softplus", 6, None, 0.0, "log(1 + exp(z))", "sigmoid(z)"),
        # fastbp's own definition (the seeds'), not PyTorch's relu6(z + 3) / 6
        ActivationSpec(
            "hard_sigmoid",
            7,
            None,
            0.0,
            "max(min(0.25 z + 0.5, 1), 0)",
            "0.25 if -2 < z < 2 else 0",
        ),
        ActivationSpec("hard_tanh", 8, None, 0.0, "max(min(z, 1), -1)", "1 if -1 < z < 1 else 0"),
        ActivationSpec("silu", 9, None, 0.0, "z * sigmoid(z)", "s(z) (1 + z (1 - s(z)))"),
        ActivationSpec(
            "gelu",
            10,
            None,
            0.0,
            "0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))",
            "0.5 (1 + t) + 0.5 z (1 - t^2) sqrt(2/pi) (1 + 0.134145 z^2)",
        ),
        ActivationSpec(
            "softmax",
            SOFTMAX,
            None,
            0.0,
            "exp(z_j) / sum_k exp(z_k), per row",
            "Jacobian diag(s) - s s^T, so dZ = s (dA - sum_k dA_k s_k)",
        ),
        ActivationSpec(
            "prelu",
            PRELU,
            "initial_slope",
            0.25,
            "z if z > 0 else a_j z, slope a_j learnt per unit",
            "1 if z > 0 else a_j; dL/da_j = sum over rows of dA min(z, 0)",
            learnable=True,
        ),
    )
}
ALIASES = {None: "identity", "linear": "identity"}
LAYER_NOT_ACTIVATION = {"maxout": "fastbp.Maxout(units, pieces=k): it has weights of its own"}


def get(activation: str | BoundActivation | None, **params: float) -> BoundActivation:
    """Resolve a name (or a BoundActivation) to a BoundActivation.

    get("leaky_relu", slope=0.2) sets the parameter; get(None) is the identity.
    """
    if isinstance(activation, BoundActivation):
        if params:
            raise TypeError(
                "parameters can only be given with an activation name, "
                f"not with a BoundActivation ({activation.name})"
            )
        return activation
    name = ALIASES.get(activation, activation)
    if name in LAYER_NOT_ACTIVATION:
        raise ValueError(f"{name} is a layer, not an activation; use {LAYER_NOT_ACTIVATION[name]}")
    if not isinstance(name, str) or name not in ACTIVATIONS:
        try:
            name = check_option("activation", activation, tuple(ACTIVATIONS))
        except ValueError as exc:
            raise ValueError(f"{exc}; None means identity") from None
    spec = ACTIVATIONS[name]
    unknown = set(params) - ({spec.param_name} if spec.param_name else set())
    if unknown:
        allowed = f"'{spec.param_name}'" if spec.param_name else "no parameters"
        raise TypeError(f"activation {name!r} takes {allowed}, got {sorted(unknown)}")
    if not spec.param_name:
        return BoundActivation(spec, 0.0)
    value = params.get(spec.param_name, spec.default_param)
    # a learnt slope may start anywhere; fixed slopes and scales must be >= 0
    try:
        value = check_real(f"{name}'s {spec.param_name}", value, low=None if spec.learnable else 0)
    except ValueError as exc:
        raise ValueError(f"{exc}; pass e.g. {spec.param_name}={spec.default_param}") from None
    return BoundActivation(spec, value)
