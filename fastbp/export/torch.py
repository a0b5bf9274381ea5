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
            f"{what} needs PyTorch, which cannot be imported ({exc}); install torch "
            "(https://pytorch.org) to use it"
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
    from fastbp.export import torch_modules

    nn = torch.nn
    if not isinstance(module, nn.Module):
        raise TypeError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    modules = [(path, m) for path, m in _flatten(module, nn) if type(m) is not nn.Identity]

    def refuse(index: int, why: str) -> ValueError:
        path, m = modules[index]
        return ValueError(f"module {path} ({m!r}) cannot be converted: {why}")

    linears = [m for _, m in modules if type(m) is nn.Linear]
    if not linears:
        raise ValueError(
            "from_torch needs at least one nn.Linear (fastbp's layers with weights); "
            f"got {[type(m).__name__ for _, m in modules]}"
        )
    dtype = _dtype_of(modules, torch)
    width = int(linears[0].in_features)
    built: list[layers.Layer] = []
    weights: list[np.ndarray] = []
    i = 0
    while i < len(modules):
        m = modules[i][1]
        following = modules[i + 1][1] if i + 1 < len(modules) else None
        try:
            activation = _activation_of(torch, m)
        except Refused as exc:
            raise refuse(i, str(exc)) from None
        if type(m) is nn.Linear:  # a subclass may compute something else
            if m.in_features != width:
                raise refuse(
                    i, f"it takes {m.in_features} inputs, but the module before it gives {width}"
                )
            W = _array(m.weight).T
            b = _array(m.bias) if m.bias is not None else np.zeros(m.out_features, dtype=dtype)
            input_dim = width
            if type(following) is torch_modules.Maxout:
                units, pieces = following.units, following.pieces
                if units * pieces != m.out_features or pieces < 2:
                    raise refuse(
                        i + 1,
                        f"it needs {units} * {pieces} inputs, the Linear before it gives "
                        f"{m.out_features} (and at least 2 pieces)",
                    )
                built.append(layers.Maxout(units, pieces=pieces, input_dim=input_dim))
                weights += [W, b]
                width, i = units, i + 2
                continue
            try:
                next_activation = _activation_of(torch, following)
            except Refused as exc:
                raise refuse(i + 1, str(exc)) from None
            if type(following) is nn.PReLU:
                slopes = _slopes(following, m.out_features)
                if slopes is None:
                    raise refuse(
                        i + 1, f"{following.num_parameters} slopes for {m.out_features} units"
                    )
                built.append(layers.Dense(m.out_features, activation="prelu", input_dim=input_dim))
                weights += [W, b, slopes]
                i += 2
            elif next_activation is not None:
                name, params = next_activation
                act = activations.get(name, **params)
                built.append(layers.Dense(m.out_features, activation=act, input_dim=input_dim))
                weights += [W, b]
                i += 2
            else:
                built.append(layers.Dense(m.out_features, input_dim=input_dim))
                weights += [W, b]
                i += 1
            width = m.out_features
            continue
        if type(m) is nn.PReLU:
            slopes = _slopes(m, width)
            if slopes is None:
                raise refuse(i, f"{m.num_parameters} slopes for {width} units")
            built.append(layers.PReLU())
            weights.append(slopes)
        elif activation is not None:
            name, params = activation
            built.append(layers.Activation(name, **params))
        elif type(m) is nn.Dropout:
            if not 0 <= m.p < 1:
                raise refuse(i, f"fastbp's Dropout needs 0 <= p < 1, got {m.p}")
            built.append(layers.Dropout(m.p))
        elif isinstance(m, torch_modules.Maxout):
            raise refuse(i, "a Maxout must follow the nn.Linear whose pieces it takes")
        else:
            raise refuse(
                i,
                f"fastbp has no {type(m).__name__}; it converts nn.Linear, nn.Dropout, "
                "nn.PReLU, nn.Identity, activations (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, "
                "Softplus, Hardtanh, SiLU, GELU(approximate='tanh'), Softmax) and "
                "fastbp.export.torch_modules' Maxout and HardSigmoid, in nn.Sequential",
            )
        i += 1
    if loss is None:
        heads = {"softmax": "softmax_cross_entropy", "sigmoid": "binary_cross_entropy"}
        last = built[-1].output_activation
        if last not in heads:
            raise ValueError(
                f"the module ends with {modules[-1][1]!r}, which does not say which loss to "
                "train with; pass loss= (e.g. 'mse' for a regression, "
                "'softmax_cross_entropy' for class logits)"
            )
        loss = heads[str(last)]
    model = Sequential(
        built, loss=loss, optimizer=optimizer, dtype=dtype, backend=backend, seed=seed
    )
    model.set_weights(weights)
    return model


def _slopes(prelu: Any, width: int) -> np.ndarray | None:
    """A PReLU's slopes as one per unit (a single shared one repeated), or None when
    their number fits neither."""
    alpha = _array(prelu.weight).reshape(-1)
    if len(alpha) == 1:
        return np.repeat(alpha, width)
    return alpha if len(alpha) == width else None
