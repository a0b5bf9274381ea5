"""Layers: configuration and parameters, no math (the backends do the math).

Every layer maps (n_samples, d_in) to (n_samples, d_out):

- Dense(units, activation): A = f(X @ W + b); W (d_in, units), b (units,), plus a
  learnt slope alpha (units,) when the activation is "prelu".
- Maxout(units, pieces): k = pieces affine maps per unit, A = the largest;
  W (d_in, units * k), b (units * k,), unit j's pieces in columns j*k .. j*k + k - 1.
- Activation(name): A = f(X), no parameters ("softmax" included).
- PReLU(): A = X where X > 0, alpha * X elsewhere; alpha (d_in,) learnt.
- Dropout(rate): inverted dropout in training, the identity at inference.

Each layer says which parameter arrays it owns (parameters(), parameter_names,
in get_weights order) and which of them L2 decays (the weight matrices only).

A layer belongs to the one model it was added to. Once that model is built, the
layer's configuration is fixed (setting units, activation, rate, ... raises), and
assigning a parameter (layer.W = array) checks the array and copies it into the
live weights the engine uses.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from numpy.typing import DTypeLike, NDArray

from fastbp import activations, initializers
from fastbp.initializers import InitializerSpec
from fastbp.validation import check_int, check_real, positive_int

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fastbp.model import Sequential

# what activation= takes: a name (None for the identity) or an Activation
ActivationArg = str | activations.BoundActivation | None


def _initializer(
    spec: InitializerSpec | None, activation_name: str | None
) -> str | initializers.Constant:
    """The kernel initialiser as configured: a name or a Constant (checked now)."""
    if spec is None:
        spec = initializers.default_for(activation_name)
    initializers.get(spec)  # fail early on an unknown name
    return spec if isinstance(spec, str) else initializers.get(spec)


def _check_class(cls: type, config: Any) -> None:
    if not isinstance(config, dict) or config.get("class") != cls.__name__:
        raise ValueError(f"expected a {cls.__name__} layer record, got {config!r}")


def _activation_from_config(config: dict[str, Any]) -> activations.BoundActivation:
    act = dict(config)
    return activations.get(act.pop("name"), **act)


def claim(layer: Layer, model: Sequential) -> None:
    """Make model the layer's owner; a layer already in another (live) model is
    refused."""
    owner = layer._owner()
    if owner is not None and owner is not model:
        raise ValueError(
            f"this {type(layer).__name__} layer already belongs to another model "
            "(once built, its arrays are that model's weights); create a new "
            "layer for this model, or pass copy.deepcopy(layer)"
        )
    layer.__dict__["_model"] = weakref.ref(model)


def release(layers: Iterable[Layer], model: Sequential) -> None:
    """Undo claim for the layers model owns (a model whose construction failed)."""
    for layer in layers:
        if layer._owner() is model:
            del layer.__dict__["_model"]


class Layer:
    """What every layer has. Subclasses set parameter_names and decayed (the
    names L2 applies to) and fill the parameter attributes in build()."""

    parameter_names: tuple[str, ...] = ()
    decayed: tuple[str, ...] = ()
    input_dim: int | None = None  # declared by Dense and Maxout only
    keeps_width = True  # d_out == d_in

    def _owner(self) -> Sequential | None:
        """The model this layer belongs to, or None."""
        ref = self.__dict__.get("_model")
        return None if ref is None else ref()

    def __setattr__(self, name: str, value: Any) -> None:
        model = self._owner()
        if model is not None and model.built and not name.startswith("_"):
            if name in self.parameter_names:
                model._set_parameter(self.__dict__[name], value, f"{type(self).__name__}.{name}")
                return
            raise AttributeError(
                f"{type(self).__name__}.{name} is fixed once the model is built "
                "(its arrays and the engine are laid out for it); make a new "
                "model with the layer you want"
            )
        object.__setattr__(self, name, value)

    def __getstate__(self) -> dict[str, Any]:
        """Copies (copy.deepcopy, pickle) belong to no model."""
        state = dict(self.__dict__)
        state.pop("_model", None)
        return state

    @overload
    def output_dim(self, input_dim: int) -> int: ...

    @overload
    def output_dim(self, input_dim: int | None) -> int | None: ...

    def output_dim(self, input_dim: int | None) -> int | None:
        """d_out for inputs of input_dim features (None when input_dim is None)."""
        return input_dim

    def build(self, input_dim: int, dtype: DTypeLike, rng: np.random.Generator) -> None:
        """Create the parameters for input_dim features in dtype, drawing from rng."""

    def parameters(self) -> list[NDArray[np.floating]]:
        """The parameter arrays, in get_weights order."""
        return [getattr(self, name) for name in self.parameter_names]

    def count_params(self, input_dim: int) -> int:
        """How many numbers the parameters hold for inputs of input_dim features."""
        return 0

    def get_config(self) -> dict[str, Any]:
        """A JSON-ready record of the layer (with "class"); from_config reverses it."""
        raise NotImplementedError

    @property
    def output_activation(self) -> str | None:
        """The name of what the layer applies last (what the loss sees)."""
        return "identity"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        _check_class(cls, config)
        args = {k: v for k, v in config.items() if k != "class"}
        return cls(**args)


class Dense(Layer):
    """A fully connected layer: A = f(X @ W + b).

    units : number of outputs d_out.
    activation : a name from fastbp.activations.ACTIVATIONS, None (identity), or an
        activation from fastbp.activations.get(name, **params). "prelu" gives the
        layer a learnt slope per unit, initially 0.25 (another start:
        activation=fastbp.activations.get("prelu", initial_slope=0.1)).
    input_dim : d_in, needed on the first layer unless the model is built from data.
    kernel_initializer : a name from fastbp.initializers (or
        fastbp.initializers.Constant(value)); default He for the ReLU
        family and Glorot otherwise. Biases start at zero.

    After build: W : ndarray of shape (d_in, units); b : ndarray of shape (units,);
    with prelu, alpha : ndarray of shape (units,).
    """

    decayed = ("W",)
    keeps_width = False
    W: NDArray[np.floating] | None
    b: NDArray[np.floating] | None
    alpha: NDArray[np.floating] | None

    def __init__(
        self,
        units: int,
        activation: ActivationArg = None,
        input_dim: int | None = None,
        kernel_initializer: InitializerSpec | None = None,
    ) -> None:
        self.units = positive_int("units", units)
        self.activation = activations.get(activation)
        self.input_dim = positive_int("input_dim", input_dim, allow_none=True)
        self.kernel_initializer = _initializer(kernel_initializer, self.activation.name)
        self.parameter_names = ("W", "b", "alpha") if self.activation.spec.learnable else ("W", "b")
        self.W = self.b = self.alpha = None

    def output_dim(self, input_dim: int | None) -> int:
        return self.units

    def build(self, input_dim: int, dtype: DTypeLike, rng: np.random.Generator) -> None:
        init = initializers.get(self.kernel_initializer)
        self.W = np.ascontiguousarray(init(rng, input_dim, self.units), dtype=dtype)
        self.b = np.zeros(self.units, dtype=dtype)
        if self.activation.spec.learnable:
            self.alpha = np.full(self.units, self.activation.param, dtype=dtype)
        self.input_dim = input_dim

    def count_params(self, input_dim: int) -> int:
        return (input_dim + 1 + ("alpha" in self.parameter_names)) * self.units

    @property
    def output_activation(self) -> str | None:
        return self.activation.name

    def get_config(self) -> dict[str, Any]:
        return {
            "class": "Dense",
            "units": self.units,
            "activation": self.activation.get_config(),
            "input_dim": self.input_dim,
            "kernel_initializer": initializers.to_config(self.kernel_initializer),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dense:
        """The layer get_config() described (unbuilt)."""
        _check_class(cls, config)
        return cls(
            config["units"],
            activation=_activation_from_config(config["activation"]),
            input_dim=config["input_dim"],
            kernel_initializer=config["kernel_initializer"],
        )

    def __repr__(self) -> str:
        return (
            f"Dense({self.units}, activation={self.activation.name!r}, input_dim={self.input_dim})"
        )


class Maxout(Layer):
    """Maxout units: each of `units` outputs is the largest of `pieces` affine maps
    of the input, A[:, j] = max_p (X @ W + b)[:, j * pieces + p]. In backward each
    unit's gradient goes to its winning piece only (the first one on a tie).

    After build: W : ndarray of shape (d_in, units * pieces); b : ndarray of shape
    (units * pieces,). Default initialiser: Glorot.
    """

    parameter_names = ("W", "b")
    decayed = ("W",)
    keeps_width = False
    W: NDArray[np.floating] | None
    b: NDArray[np.floating] | None

    def __init__(
        self,
        units: int,
        pieces: int = 2,
        input_dim: int | None = None,
        kernel_initializer: InitializerSpec | None = None,
    ) -> None:
        self.units = positive_int("units", units)
        try:
            self.pieces = check_int("pieces", pieces, low=2)
        except ValueError as exc:
            raise ValueError(
                f"{exc}; a maxout unit of one piece is a linear unit: use Dense(units)"
            ) from None
        self.input_dim = positive_int("input_dim", input_dim, allow_none=True)
        self.kernel_initializer = _initializer(kernel_initializer, "maxout")
        self.W = self.b = None

    def output_dim(self, input_dim: int | None) -> int:
        return self.units

    def build(self, input_dim: int, dtype: DTypeLike, rng: np.random.Generator) -> None:
        init = initializers.get(self.kernel_initializer)
        width = self.units * self.pieces
        self.W = np.ascontiguousarray(init(rng, input_dim, width), dtype=dtype)
        self.b = np.zeros(width, dtype=dtype)
        self.input_dim = input_dim

    def count_params(self, input_dim: int) -> int:
        return (input_dim + 1) * self.units * self.pieces

    @property
    def output_activation(self) -> str | None:
        return "maxout"

    def get_config(self) -> dict[str, Any]:
        return {
            "class": "Maxout",
            "units": self.units,
            "pieces": self.pieces,
            "input_dim": self.input_dim,
            "kernel_initializer": initializers.to_config(self.kernel_initializer),
        }

    def __repr__(self) -> str:
        return f"Maxout({self.units}, pieces={self.pieces}, input_dim={self.input_dim})"


class PReLU(Layer):
    """Parametric ReLU: A = X where X > 0, alpha * X elsewhere, with one slope per
    unit learnt like any weight (its own gradient and optimiser state; L2 does not
    decay it). Derivative at 0: alpha, as PyTorch.

    initial_slope : where every alpha starts (0.25); any finite number.
    After build: alpha : ndarray of shape (d_in,).
    """

    parameter_names = ("alpha",)
    alpha: NDArray[np.floating] | None

    def __init__(self, initial_slope: float = 0.25) -> None:
        self.initial_slope = activations.get("prelu", initial_slope=initial_slope).param
        self.alpha = None

    def build(self, input_dim: int, dtype: DTypeLike, rng: np.random.Generator) -> None:
        self.alpha = np.full(input_dim, self.initial_slope, dtype=dtype)

    def count_params(self, input_dim: int) -> int:
        return input_dim

    @property
    def output_activation(self) -> str | None:
        return "prelu"

    def get_config(self) -> dict[str, Any]:
        return {"class": "PReLU", "initial_slope": self.initial_slope}

    def __repr__(self) -> str:
        return f"PReLU(initial_slope={self.initial_slope})"


class Activation(Layer):
    """An activation as a layer of its own: A = f(X), same shape, no parameters.

    activation : a name from fastbp.activations.ACTIVATIONS (with its parameter,
        e.g. Activation("leaky_relu", slope=0.2)). "softmax" normalises each row and
        backpropagates through its Jacobian. Activation("prelu") gives a PReLU layer.
    """

    def __new__(cls, activation: ActivationArg = None, **params: float) -> Any:
        resolved = activations.get(activation, **params)
        if cls is Activation and resolved.spec.learnable:
            return PReLU(initial_slope=resolved.param)
        return super().__new__(cls)

    def __init__(self, activation: ActivationArg = None, **params: float) -> None:
        self.activation = activations.get(activation, **params)

    @property
    def output_activation(self) -> str | None:
        return self.activation.name

    def get_config(self) -> dict[str, Any]:
        return {"class": "Activation", "activation": self.activation.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        _check_class(cls, config)
        return cls(_activation_from_config(config["activation"]))

    def __repr__(self) -> str:
        config = self.activation.get_config()
        params = "".join(f", {k}={v!r}" for k, v in config.items() if k != "name")
        return f"Activation({self.activation.name!r}{params})"


class Dropout(Layer):
    """Inverted dropout: in training each unit is kept with probability 1 - rate and
    scaled by 1 / (1 - rate); at inference it is the identity. Masks come from the
    model's seeded generator.

    rate : fraction of units dropped, in [0, 1).
    """

    rate: float

    def __init__(self, rate: float) -> None:
        self.rate = check_real("rate", rate, low=0, high=1, high_open=True)

    @property
    def output_activation(self) -> str | None:
        return None

    def get_config(self) -> dict[str, Any]:
        return {"class": "Dropout", "rate": self.rate}

    def __repr__(self) -> str:
        return f"Dropout({self.rate})"


LAYERS = {cls.__name__: cls for cls in (Dense, Maxout, Activation, PReLU, Dropout)}


def from_config(config: dict[str, Any]) -> Layer:
    """A layer from its get_config() record."""
    if not isinstance(config, dict) or config.get("class") not in LAYERS:
        raise ValueError(f"expected a layer record of class {sorted(LAYERS)}, got {config!r}")
    return LAYERS[config["class"]].from_config(config)
