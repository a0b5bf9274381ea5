"""Weight initialisers: name -> function(rng, fan_in, fan_out) -> float64 array.

Random draws are made in float64 and cast by the layer, so one seed gives the
same starting point in float32 and float64. Anything random breaks the symmetry
between hidden units; "zeros" deliberately does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union, overload

import numpy as np
from numpy.typing import NDArray

from fastbp.validation import check_option, check_real

# what an initialiser is: fn(rng, fan_in, fan_out) -> float64 (fan_in, fan_out)
InitializerFn = Callable[[np.random.Generator, int, int], NDArray[np.float64]]
# what kernel_initializer= takes: a name, a Constant, or a saved constant's config
InitializerSpec = Union[str, "Constant", dict[str, Any]]


def zeros(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    return np.zeros((fan_in, fan_out))


def small_normal(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    """N(0, 1) * 0.01."""
    return rng.standard_normal((fan_in, fan_out)) * 0.01


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    """U(-r, r) with r = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out))


def glorot_normal(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    """N(0, 2 / (fan_in + fan_out))."""
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / (fan_in + fan_out))


def he_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    """U(-r, r) with r = sqrt(6 / fan_in)."""
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, (fan_in, fan_out))


def he_normal(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    """N(0, 2 / fan_in)."""
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)


def lecun_normal(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    """N(0, 1 / fan_in)."""
    return rng.standard_normal((fan_in, fan_out)) * np.sqrt(1.0 / fan_in)


class Constant:
    """Every weight equal to value: like zeros, it leaves the hidden units of a
    layer identical (no symmetry breaking)."""

    name = "constant"

    def __init__(self, value: float = 0.0) -> None:
        self.value = check_real("value", value)

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
        return np.full((fan_in, fan_out), self.value)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}

    def __repr__(self) -> str:
        return f"Constant({self.value})"


INITIALIZERS = {
    f.__name__: f
    for f in (
        zeros,
        small_normal,
        glorot_uniform,
        glorot_normal,
        he_uniform,
        he_normal,
        lecun_normal,
    )
}
INITIALIZERS["constant"] = Constant()
RELU_FAMILY = {"relu", "leaky_relu", "prelu"}


def default_for(activation_name: str | None) -> str:
    """He for the ReLU family, Glorot otherwise."""
    return "he_normal" if activation_name in RELU_FAMILY else "glorot_uniform"


@overload
def get(spec: Constant | dict[str, Any]) -> Constant: ...


@overload
def get(spec: str) -> InitializerFn: ...


def get(spec: InitializerSpec) -> InitializerFn:
    """The initialiser for a name, a Constant, or a saved {"name": "constant", ...}."""
    if isinstance(spec, Constant):
        return spec
    if isinstance(spec, dict) and spec.get("name") == "constant":
        return Constant(spec.get("value", 0.0))
    try:
        return INITIALIZERS[check_option("initializer", spec, tuple(INITIALIZERS))]
    except ValueError as exc:
        raise ValueError(f"{exc}; or pass fastbp.initializers.Constant(value)") from None


def to_config(spec: InitializerSpec) -> str | dict[str, Any]:
    """What get_config records for an initialiser given by name or object."""
    return spec if isinstance(spec, str) else get(spec).get_config()
