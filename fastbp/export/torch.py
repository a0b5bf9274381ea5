"""PyTorch conversion: Sequential.to_torch and fastbp.from_torch.

to_torch gives a torch.nn.Sequential computing what model.forward computes (logits
for a softmax loss whose last layer has no activation), in the model's dtype:

- Dense -> nn.Linear (weight = W.T, torch's (out, in) layout; bias = b), then the
  activation as a module: nn.ReLU, nn.LeakyReLU(slope), nn.ELU(alpha), nn.Sigmoid,
  nn.Tanh, nn.Softplus, nn.Hardtanh, nn.SiLU, nn.GELU(approximate="tanh"),
  nn.Softmax(dim=-1), nn.PReLU(num_parameters=units), and for fastbp's own hard
  sigmoid fastbp.export.torch_modules.HardSigmoid; the identity adds no module;
- Maxout -> nn.Linear of units * pieces outputs, then torch_modules.Maxout;
- PReLU -> nn.PReLU(num_parameters=width); Activation -> its module;
  Dropout -> nn.Dropout(rate).

The result is in eval mode (dropout off, as in predict); call .train() to train it.

from_torch reads such a stack back (nested nn.Sequential are flattened): an
nn.Linear followed by an activation module becomes one Dense with that activation
(by an nn.PReLU: activation="prelu", a single shared slope copied to every unit; by
a torch_modules.Maxout: a Maxout layer), a Linear without bias gets a zero bias, and
weights are copied exactly. A Softmax or Sigmoid as the last module names the loss
(softmax_cross_entropy, binary_cross_entropy) unless loss= says otherwise; any other
last module needs loss=. Modules with no exact fastbp equivalent (nn.Hardsigmoid,
nn.GELU() without the tanh approximation, Conv2d, ...) are refused, by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from fastbp import activations, layers
from fastbp.export.common import layer_parameters, require_built

if TYPE_CHECKING:
    from fastbp.model import Sequential
    from fastbp.optimizers import Optimizer


def require_torch(what: str) -> Any:
    """The torch package, or ImportError saying what needs it."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            f"{what} needs PyTorch, which cannot be imported ({exc}); install it "
            "(pip install torch) to use it"
        ) from None
    return torch


# --- fastbp -> torch ----------------------------------------------------------------------


def _activation_module(torch: Any, name: str, param: float, where: str) -> Any:
    """The torch module computing fastbp's activation name (None for the identity);
    ValueError naming where for an activation with none."""
    from fastbp.export import torch_modules

    nn = torch.nn
    makers: dict[str, Callable[[], Any]] = {
        "identity": lambda: None,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(negative_slope=param),
        "elu": lambda: nn.ELU(alpha=param),
        "softplus": nn.Softplus,
        "hard_sigmoid": torch_modules.HardSigmoid,
        "hard_tanh": lambda: nn.Hardtanh(-1.0, 1.0),
        "silu": nn.SiLU,
        "gelu": lambda: nn.GELU(approximate="tanh"),
        "softmax": lambda: nn.Softmax(dim=-1),
    }
    if name not in makers:
        raise ValueError(
            f"{where} applies the activation {name!r}, which has no PyTorch translation "
            f"(those with one: {', '.join(sorted(makers))}, and prelu); export a model "
            "without it"
        )
    return makers[name]()


def _tensor(torch: Any, array: np.ndarray) -> Any:
    return torch.from_numpy(np.ascontiguousarray(array).copy())


def _linear(torch: Any, W: np.ndarray, b: np.ndarray) -> Any:
    """nn.Linear holding W (d_in, d_out) as its (d_out, d_in) weight, and b; made
    without initialisation, so torch's random stream is left alone."""
    linear = torch.nn.utils.skip_init(
        torch.nn.Linear, W.shape[0], W.shape[1], dtype=getattr(torch, W.dtype.name)
    )
    with torch.no_grad():
        linear.weight.copy_(_tensor(torch, W.T))
        linear.bias.copy_(_tensor(torch, b))
    return linear


def _prelu(torch: Any, alpha: np.ndarray) -> Any:
    module = torch.nn.PReLU(num_parameters=len(alpha), dtype=getattr(torch, alpha.dtype.name))
    with torch.no_grad():
        module.weight.copy_(_tensor(torch, alpha))
    return module


def to_torch(model: Sequential) -> Any:
    """An equivalent torch.nn.Sequential, in eval mode (see the module docstring).

    Raises ImportError without PyTorch, RuntimeError for an unbuilt model and
    ValueError for a layer with no PyTorch translation (naming it).
    """
    torch = require_torch("to_torch")
    from fastbp.export import torch_modules

    require_built(model, "to_torch")
    modules: list[Any] = []
    for number, (layer, params) in enumerate(zip(model.layers, layer_parameters(model)), 1):
        where = f"layer {number} ({layer!r})"
        if isinstance(layer, layers.Dense):
            modules.append(_linear(torch, params[0], params[1]))
            if layer.activation.name == "prelu":
                modules.append(_prelu(torch, params[2]))
            else:
                modules.append(
                    _activation_module(torch, layer.activation.name, layer.activation.param, where)
                )
        elif isinstance(layer, layers.Maxout):
            modules.append(_linear(torch, params[0], params[1]))
            modules.append(torch_modules.Maxout(layer.units, layer.pieces))
        elif isinstance(layer, layers.PReLU):
            modules.append(_prelu(torch, params[0]))
        elif isinstance(layer, layers.Activation):
            modules.append(
                _activation_module(torch, layer.activation.name, layer.activation.param, where)
            )
        elif isinstance(layer, layers.Dropout):
            modules.append(torch.nn.Dropout(p=layer.rate))
        else:
            raise ValueError(f"{where} is a {type(layer).__name__}: no PyTorch translation")
    return torch.nn.Sequential(*[m for m in modules if m is not None]).eval()


# --- torch -> fastbp ----------------------------------------------------------------------


class Refused(ValueError):
    """A torch module with no exact fastbp equivalent (the message says why)."""


def _activation_of(torch: Any, module: Any) -> tuple[str, dict[str, float]] | None:
    """(fastbp activation name, its parameters) that module computes exactly; None if
    module is not an activation; Refused if it is one fastbp computes differently."""
    from fastbp.export import torch_modules

    nn = torch.nn
    kind = type(module)
    plain = {
        nn.ReLU: "relu",
        nn.Sigmoid: "sigmoid",
        nn.Tanh: "tanh",
        nn.SiLU: "silu",
        torch_modules.HardSigmoid: "hard_sigmoid",
    }
    if kind in plain:
        return plain[kind], {}
    if kind is nn.LeakyReLU:
        if module.negative_slope < 0:
            raise Refused("fastbp's leaky_relu needs a slope >= 0 (use PReLU for others)")
        return "leaky_relu", {"slope": float(module.negative_slope)}
    if kind is nn.ELU:
        if module.alpha < 0:
            raise Refused("fastbp's elu needs alpha >= 0")
        return "elu", {"alpha": float(module.alpha)}
    if kind is nn.Softplus:
        if module.beta != 1 or module.threshold < 20:
            raise Refused(
                "fastbp's softplus is log(1 + exp(z)): only beta=1 (and threshold >= 20, "
                "where torch's linear tail is within rounding of it) is the same function"
            )
        return "softplus", {}
    if kind is nn.Hardtanh:
        if (module.min_val, module.max_val) != (-1.0, 1.0):
            raise Refused("fastbp's hard_tanh clips to [-1, 1]; other bounds have no equivalent")
        return "hard_tanh", {}
    if kind is nn.GELU:
        if module.approximate != "tanh":
            raise Refused(
                "fastbp's gelu is the tanh approximation; use nn.GELU(approximate='tanh')"
            )
        return "gelu", {}
    if kind is nn.Softmax:
        if module.dim not in (-1, 1):
            raise Refused(
                f"fastbp's softmax normalises each row (dim=-1 or 1), not dim={module.dim}"
            )
        return "softmax", {}
    if kind is nn.Hardsigmoid:
        raise Refused(
            "torch's hardsigmoid is relu6(z + 3) / 6, fastbp's is max(min(0.25 z + 0.5, 1), 0): "
            "use fastbp.export.torch_modules.HardSigmoid for fastbp's"
        )
    return None


def _flatten(module: Any, nn: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, module) of every module of nested nn.Sequential, in order."""
    if type(module) is not nn.Sequential:  # a subclass may have its own forward
        return [(prefix or "0", module)]
    found: list[tuple[str, Any]] = []
    for name, child in module.named_children():
        found.extend(_flatten(child, nn, f"{prefix}.{name}" if prefix else name))
    return found


def _array(tensor: Any) -> np.ndarray:
    return np.array(tensor.detach().cpu().numpy())


def _dtype_of(modules: list[tuple[str, Any]], torch: Any) -> str:
    kinds = {p.dtype for _, m in modules for p in m.parameters()}
    names = {torch.float32: "float32", torch.float64: "float64"}
    if not kinds <= set(names) or len(kinds) != 1:
        raise ValueError(
            f"from_torch needs parameters all float32 or all float64, got "
            f"{sorted(str(k) for k in kinds)}; convert with module.float() or module.double()"
        )
    return names[kinds.pop()]


class _TorchReader:
    """The fastbp layers (and their arrays, in get_weights order) of a torch module:
    its modules flattened, read left to right; an nn.Linear takes the activation,
    PReLU or Maxout right after it into its layer."""

    def __init__(self, torch: Any, module: Any) -> None:
        from fastbp.export import torch_modules

        self.torch, self.nn, self.torch_modules = torch, torch.nn, torch_modules
        self.modules = [
            (path, m) for path, m in _flatten(module, self.nn) if type(m) is not self.nn.Identity
        ]
        linears = [m for _, m in self.modules if type(m) is self.nn.Linear]
        if not linears:
            raise ValueError(
                "from_torch needs at least one nn.Linear (fastbp's layers with weights); "
                f"got {[type(m).__name__ for _, m in self.modules]}"
            )
        self.dtype = _dtype_of(self.modules, torch)
        self.width = int(linears[0].in_features)  # of the data reaching the next module
        self.layers: list[layers.Layer] = []
        self.weights: list[np.ndarray] = []

    def refuse(self, index: int, why: str) -> ValueError:
        path, m = self.modules[index]
        return ValueError(f"module {path} ({m!r}) cannot be converted: {why}")

    def activation(self, index: int) -> tuple[str, dict[str, float]] | None:
        """_activation_of the module at index (None past the end), refusals named."""
        if index >= len(self.modules):
            return None
        try:
            return _activation_of(self.torch, self.modules[index][1])
        except Refused as exc:
            raise self.refuse(index, str(exc)) from None

    def slopes(self, index: int, width: int) -> np.ndarray:
        prelu = self.modules[index][1]
        alpha = _array(prelu.weight).reshape(-1)
        if len(alpha) not in (1, width):
            raise self.refuse(index, f"{len(alpha)} slopes for {width} units (give 1 or {width})")
        return np.repeat(alpha, width) if len(alpha) == 1 else alpha

    def read(self) -> tuple[list[layers.Layer], list[np.ndarray]]:
        i = 0
        while i < len(self.modules):
            if type(self.modules[i][1]) is self.nn.Linear:  # a subclass may differ
                i = self.linear(i)
            else:
                self.single(i)
                i += 1
        return self.layers, self.weights

    def linear(self, i: int) -> int:
        """Read the Linear at i and what it takes with it; returns the next index."""
        m = self.modules[i][1]
        if m.in_features != self.width:
            raise self.refuse(
                i, f"it takes {m.in_features} inputs, but the module before it gives {self.width}"
            )
        units = int(m.out_features)
        W = _array(m.weight).T
        b = _array(m.bias) if m.bias is not None else np.zeros(units, dtype=self.dtype)
        following: Any = self.modules[i + 1][1] if i + 1 < len(self.modules) else None
        activation = self.activation(i + 1)
        layer: layers.Layer
        if type(following) is self.torch_modules.Maxout:
            if following.units * following.pieces != units or following.pieces < 2:
                raise self.refuse(
                    i + 1,
                    f"it needs {following.units} * {following.pieces} inputs (at least 2 "
                    f"pieces), the Linear before it gives {units}",
                )
            layer = layers.Maxout(following.units, following.pieces, input_dim=self.width)
            self.weights += [W, b]
            units = following.units
        elif type(following) is self.nn.PReLU:
            layer = layers.Dense(units, activation="prelu", input_dim=self.width)
            self.weights += [W, b, self.slopes(i + 1, units)]
        elif activation is not None:
            name, params = activation
            act = activations.get(name, **params)
            layer = layers.Dense(units, activation=act, input_dim=self.width)
            self.weights += [W, b]
        else:
            self.layers.append(layers.Dense(units, input_dim=self.width))
            self.weights += [W, b]
            self.width = units
            return i + 1
        self.layers.append(layer)
        self.width = units
        return i + 2

    def single(self, i: int) -> None:
        """Read the module at i, which no Linear took."""
        m = self.modules[i][1]
        activation = self.activation(i)
        if type(m) is self.nn.PReLU:
            self.weights.append(self.slopes(i, self.width))
            self.layers.append(layers.PReLU())
        elif activation is not None:
            name, params = activation
            self.layers.append(layers.Activation(name, **params))
        elif type(m) is self.nn.Dropout:
            if not 0 <= m.p < 1:
                raise self.refuse(i, f"fastbp's Dropout needs 0 <= p < 1, got {m.p}")
            self.layers.append(layers.Dropout(m.p))
        elif type(m) is self.torch_modules.Maxout:
            raise self.refuse(i, "a Maxout must follow the nn.Linear whose pieces it takes")
        else:
            raise self.refuse(
                i,
                f"fastbp has no {type(m).__name__}; it converts nn.Linear, nn.Dropout, "
                "nn.PReLU, nn.Identity, activations (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, "
                "Softplus, Hardtanh, SiLU, GELU(approximate='tanh'), Softmax) and "
                "fastbp.export.torch_modules' Maxout and HardSigmoid, in nn.Sequential",
            )


def from_torch(
    module: Any,
    loss: str | None = None,
    optimizer: Optimizer | str | None = None,
    *,
    backend: str = "cython",
    seed: int | None = None,
) -> Sequential:
    """A built fastbp Sequential computing what module computes, weights copied.

    Parameters
    ----------
    module : torch.nn.Sequential (or one nn.Linear) of the modules listed in the
        module docstring, float32 or float64 (the model's dtype follows).
    loss : a fastbp loss name; None infers it from a last Softmax
        (softmax_cross_entropy) or Sigmoid (binary_cross_entropy).
    optimizer, backend, seed : as for fastbp.Sequential.

    Raises ValueError naming the first module that cannot be converted (and why),
    widths that do not chain, or a loss that cannot be inferred.
    """
    from fastbp.model import Sequential

    torch = require_torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    reader = _TorchReader(torch, module)
    built, weights = reader.read()
    if loss is None:
        heads = {"softmax": "softmax_cross_entropy", "sigmoid": "binary_cross_entropy"}
        last = built[-1].output_activation
        if last not in heads:
            raise ValueError(
                f"the module ends with {reader.modules[-1][1]!r}, which does not say "
                "which loss to train with; pass loss= (e.g. 'mse' for a regression, "
                "'softmax_cross_entropy' for class logits)"
            )
        loss = heads[str(last)]
    model = Sequential(
        built, loss=loss, optimizer=optimizer, dtype=reader.dtype, backend=backend, seed=seed
    )
    model.set_weights(weights)
    return model
