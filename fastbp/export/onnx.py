"""A built Sequential as an ONNX graph (Sequential.to_onnx).

The graph takes one input, "X" of shape (batch, n_features) with a dynamic batch
dimension, and gives what the model's own inference calls give:

- classification losses: "label" (what predict returns: ArgMax of the last layer's
  output for a softmax loss, output >= 0.5 for a sigmoid head) and "probabilities"
  (what predict_proba returns);
- mse: "output" (what predict returns).

When the model's metadata holds standardisation statistics (`fastbp train` saves
them), the graph applies them, as `fastbp predict` does: "standardize" turns the raw
features into (X - mean) / scale at the input, and for a regression
"target_standardize" turns the outputs back into the target's units
(output * scale + mean). Class names (model.classes_, or the metadata's "classes")
turn the label indices into the names through a Gather on a constant tensor.

Every layer and activation maps to standard operators of the default domain, each
activation written with the exact formula fastbp computes (docs/design.md §1): for
instance hard_sigmoid is Clip(0.25 z + 0.5, 0, 1), gelu the tanh approximation, and
elu and softplus are spelled out with Exp and Log so that the graph also runs in
float64 on onnxruntime (whose Elu, Softplus and HardSigmoid kernels are float32
only), and leaky_relu is a PRelu of a constant slope in the graph's type (LeakyRelu's
alpha is a float32 attribute, a rounded slope in a float64 graph). Maxout's pieces
are adjacent columns (unit j owns columns j*k .. j*k + k - 1), so a Reshape to
(batch, units, k) and a ReduceMax over the last axis give it. Dropout is the
identity at inference and adds no node.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastbp import io, layers
from fastbp import validation as check
from fastbp.export.common import layer_parameters, require_built

if TYPE_CHECKING:
    import onnx

    from fastbp.model import Sequential

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax over one axis, Clip with tensor bounds, ArgMax as used here
INPUT_NAME = "X"
DTYPES = {"float32": np.float32, "float64": np.float64}


def require_onnx() -> Any:
    """The onnx package, or ImportError saying how to install it."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            f"to_onnx needs the optional package onnx, which cannot be imported ({exc}); "
            "install it with pip install 'fastbp[onnx]'"
        ) from None
    return onnx


class GraphBuilder:
    """Nodes and constant tensors of one graph, with names made unique by a counter.

    dtype : the floating type of every tensor the layers compute in.
    opset : the default domain's opset the nodes are written for.
    """

    def __init__(self, onnx_module: Any, dtype: np.dtype[Any], opset: int) -> None:
        self.onnx = onnx_module
        self.dtype = dtype
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self._scalars: dict[float, str] = {}

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, value: ArrayLike, dtype: DTypeLike | None = None) -> str:
        """A constant tensor (an initializer) holding value, in the graph's float type
        unless dtype says otherwise; returns its name."""
        name = self._name(hint)
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        if array.dtype == object:  # strings: numpy_helper wants bytes
            tensor = self.onnx.helper.make_tensor(
                name,
                self.onnx.TensorProto.STRING,
                list(array.shape),
                [str(v).encode("utf-8") for v in array.ravel()],
            )
        else:
            tensor = self.onnx.numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        return name

    def scalar(self, value: float) -> str:
        """A 0-d constant of the graph's float type (it broadcasts against anything),
        one per value."""
        if value not in self._scalars:
            self._scalars[value] = self.constant("c", np.asarray(value, dtype=self.dtype))
        return self._scalars[value]

    def node(
        self, op: str, inputs: list[str], hint: str = "", output: str = "", **attrs: Any
    ) -> str:
        """Add op(inputs) with attributes; returns the name of its output (output, or
        a new name)."""
        output = output or self._name(hint or op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], **attrs))
        return output


# --- activations: name -> emitter(graph, z, param) -> name of f(z) --------------------


def _elu(g: GraphBuilder, z: str, alpha: float) -> str:
    # alpha * (exp(min(z, 0)) - 1) where z <= 0: min keeps exp from overflowing
    negative = g.node("Min", [z, g.scalar(0.0)])
    ramp = g.node(
        "Mul", [g.node("Sub", [g.node("Exp", [negative]), g.scalar(1.0)]), g.scalar(alpha)]
    )
    return g.node("Where", [g.node("Greater", [z, g.scalar(0.0)]), z, ramp], "elu")


def _softplus(g: GraphBuilder, z: str, _: float) -> str:
    # log(1 + exp(z)) = max(z, 0) + log(1 + exp(-|z|)), which cannot overflow
    tail = g.node("Exp", [g.node("Neg", [g.node("Abs", [z])])])
    log_term = g.node("Log", [g.node("Add", [tail, g.scalar(1.0)])])
    return g.node("Add", [g.node("Max", [z, g.scalar(0.0)]), log_term], "softplus")


def _hard_sigmoid(g: GraphBuilder, z: str, _: float) -> str:
    # fastbp's definition, max(min(0.25 z + 0.5, 1), 0), not PyTorch's relu6(z + 3) / 6
    ramp = g.node("Add", [g.node("Mul", [z, g.scalar(0.25)]), g.scalar(0.5)])
    return g.node("Clip", [ramp, g.scalar(0.0), g.scalar(1.0)], "hard_sigmoid")


def _gelu(g: GraphBuilder, z: str, _: float) -> str:
    # 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))), the tanh approximation
    cube = g.node("Mul", [g.node("Mul", [z, z]), z])
    inner = g.node("Add", [z, g.node("Mul", [cube, g.scalar(0.044715)])])
    t = g.node("Tanh", [g.node("Mul", [inner, g.scalar(float(np.sqrt(2.0 / np.pi)))])])
    half_z = g.node("Mul", [z, g.scalar(0.5)])
    return g.node("Mul", [half_z, g.node("Add", [t, g.scalar(1.0)])], "gelu")


def _unary(op: str, **attrs: Any) -> Callable[[GraphBuilder, str, float], str]:
    def emit(g: GraphBuilder, z: str, _: float) -> str:
        return g.node(op, [z], **attrs)

    return emit


ACTIVATIONS: dict[str, Callable[[GraphBuilder, str, float], str]] = {
    "identity": lambda g, z, _: z,
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "relu": _unary("Relu"),
    # PRelu with a constant slope: LeakyRelu's alpha attribute is a float32 even in a
    # float64 graph
    "leaky_relu": lambda g, z, slope: g.node("PRelu", [z, g.constant("slope", [slope])], "leaky"),
    "elu": _elu,
    "softplus": _softplus,
    "hard_sigmoid": _hard_sigmoid,
    "hard_tanh": lambda g, z, _: g.node("Clip", [z, g.scalar(-1.0), g.scalar(1.0)], "hard_tanh"),
    "silu": lambda g, z, _: g.node("Mul", [z, g.node("Sigmoid", [z])], "silu"),
    "gelu": _gelu,
    "softmax": _unary("Softmax", axis=-1),
}


def _activation(g: GraphBuilder, z: str, activation: Any, where: str) -> str:
    emit = ACTIVATIONS.get(getattr(activation, "name", None))  # type: ignore[arg-type]
    if emit is None:
        raise ValueError(
            f"{where} applies the activation {getattr(activation, 'name', activation)!r}, "
            f"which has no ONNX translation (those with one: {', '.join(sorted(ACTIVATIONS))}"
            ", and prelu); export a model without it"
        )
    return emit(g, z, activation.param)


# --- layers: class -> emitter(graph, x, layer, parameters, where) -> output -----------


def _dense(g: GraphBuilder, x: str, layer: Any, params: list[np.ndarray], where: str) -> str:
    W, b = params[0], params[1]
    z = g.node("Gemm", [x, g.constant("W", W), g.constant("b", b)], "dense")
    if layer.activation.name == "prelu":
        return g.node("PRelu", [z, g.constant("alpha", params[2])], "prelu")
    return _activation(g, z, layer.activation, where)


def _maxout(g: GraphBuilder, x: str, layer: Any, params: list[np.ndarray], where: str) -> str:
    z = g.node("Gemm", [x, g.constant("W", params[0]), g.constant("b", params[1])], "maxout_z")
    # (batch, units * k) -> (batch, units, k): row-major, so unit j's k adjacent columns
    shape = g.constant("shape", [0, layer.units, layer.pieces], dtype=np.int64)
    pieces = g.node("Reshape", [z, shape], "pieces")
    if g.opset >= 18:  # axes became an input in opset 18
        axes = g.constant("axes", [2], dtype=np.int64)
        return g.node("ReduceMax", [pieces, axes], "maxout", keepdims=0)
    return g.node("ReduceMax", [pieces], "maxout", axes=[2], keepdims=0)


def _prelu(g: GraphBuilder, x: str, layer: Any, params: list[np.ndarray], where: str) -> str:
    return g.node("PRelu", [x, g.constant("alpha", params[0])], "prelu")


def _activation_layer(
    g: GraphBuilder, x: str, layer: Any, params: list[np.ndarray], where: str
) -> str:
    return _activation(g, x, layer.activation, where)


LAYERS: dict[type, Callable[[GraphBuilder, str, Any, list[np.ndarray], str], str]] = {
    layers.Dense: _dense,
    layers.Maxout: _maxout,
    layers.PReLU: _prelu,
    layers.Activation: _activation_layer,
    layers.Dropout: lambda g, x, layer, params, where: x,  # the identity at inference
}


# --- the model's head, metadata and the public function --------------------------------


def _statistics(model: Sequential, key: str, width: int | None) -> tuple[NDArray, NDArray] | None:
    """(mean, scale) of model.metadata[key] checked against width, or None."""
    stats = model.metadata.get(key)
    if stats is None:
        return None
    fix = f"; fix or delete model.metadata[{key!r}] (a dict of {width} means and {width} scales)"
    if not isinstance(stats, dict) or set(stats) != {"mean", "scale"}:
        raise ValueError(f"model.metadata[{key!r}] must be a dict with mean and scale{fix}")
    try:
        mean = np.asarray(stats["mean"], dtype=np.float64)
        scale = np.asarray(stats["scale"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"model.metadata[{key!r}] holds values that are not numbers{fix}"
        ) from None
    if mean.shape != (width,) or scale.shape != (width,):
        raise ValueError(
            f"model.metadata[{key!r}] holds {mean.shape} means and {scale.shape} scales, "
            f"the model needs ({width},){fix}"
        )
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise ValueError(
            f"model.metadata[{key!r}] holds a non-finite mean or a scale that is not a "
            f"positive finite number{fix}"
        )
    return mean, scale


def _classes(model: Sequential) -> np.ndarray | None:
    """The class names the labels map to (model.classes_, else the metadata's
    "classes"), as an array of int64, float64, bool or str; None when there are none."""
    classes = getattr(model, "classes_", None)
    source = "model.classes_"
    if classes is None:
        classes, source = model.metadata.get("classes"), "model.metadata['classes']"
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise ValueError(f"{source} must be a list of class names; got {classes!r:.200}")
    values = list(classes)
    if values and all(isinstance(v, str) for v in values):
        return np.array(values, dtype=object)
    array = np.asarray(values)
    if array.ndim != 1 or array.dtype.kind not in "biuf" or len(array) == 0:
        raise ValueError(
            f"{source} must be a non-empty list of class names that are all strings, all "
            f"integers or all numbers; got {values!r:.200}"
        )
    return array.astype({"b": np.bool_, "f": np.float64}.get(array.dtype.kind, np.int64))


def _head(g: GraphBuilder, model: Sequential, out: str, n_outputs: int) -> list[Any]:
    """Nodes after the last layer; returns the graph's output value infos."""
    helper, tensor_proto = g.onnx.helper, g.onnx.TensorProto
    float_type = helper.np_dtype_to_tensor_dtype(g.dtype)
    loss = model.loss
    if not loss.classification:
        target = _statistics(model, "target_standardize", n_outputs)
        if target is not None:
            scaled = g.node("Mul", [out, g.constant("target_scale", target[1])])
            out = g.node("Add", [scaled, g.constant("target_mean", target[0])], output="output")
        else:
            out = g.node("Identity", [out], output="output")
        return [helper.make_tensor_value_info("output", float_type, ["batch", n_outputs])]
    if loss.softmax:
        if model.layers[-1].output_activation == "softmax":
            g.node("Identity", [out], output="probabilities")
        else:
            g.node("Softmax", [out], output="probabilities", axis=-1)
        # predict's argmax is over the last layer's own output, first index on ties
        label = g.node("ArgMax", [out], "label_index", axis=1, keepdims=0)
        label_shape: list[Any] = ["batch"]
    else:  # a sigmoid head: 0/1 per output, one column squeezed away
        g.node("Identity", [out], output="probabilities")
        above = g.node("GreaterOrEqual", [out, g.scalar(0.5)])
        label = g.node("Cast", [above], "label_index", to=tensor_proto.INT64)
        label_shape = ["batch", n_outputs]
        if n_outputs == 1:
            label = g.node("Reshape", [label, g.constant("flat", [-1], dtype=np.int64)])
            label_shape = ["batch"]
    classes = _classes(model)
    label_type = tensor_proto.INT64
    if classes is not None:
        expected = n_outputs if loss.softmax else 2
        if len(label_shape) != 1:
            raise ValueError(
                f"the model has {n_outputs} sigmoid outputs, a 0/1 label each, which "
                f"{len(classes)} class names cannot name; remove model.classes_ / "
                "model.metadata['classes'] before exporting"
            )
        if len(classes) != expected:
            raise ValueError(
                f"the model's labels are 0 .. {expected - 1}, but {len(classes)} class "
                f"names are given; give {expected} (model.classes_ or "
                "model.metadata['classes'])"
            )
        names = g.constant("classes", classes, dtype=classes.dtype)
        label = g.node("Gather", [names, label], axis=0, output="label")
        label_type = (
            tensor_proto.STRING
            if classes.dtype == object
            else helper.np_dtype_to_tensor_dtype(classes.dtype)
        )
    else:
        g.node("Identity", [label], output="label")
    return [
        helper.make_tensor_value_info("label", label_type, label_shape),
        helper.make_tensor_value_info("probabilities", float_type, ["batch", n_outputs]),
    ]


def _checked_dtype(model: Sequential, dtype: DTypeLike | None) -> np.dtype[Any]:
    if dtype is None:
        return model.dtype
    name = np.dtype(dtype).name if dtype in (np.float32, np.float64) else dtype
    check.check_option("dtype", name, tuple(DTYPES))
    return np.dtype(DTYPES[str(name)])


def _checked_opset(onnx_module: Any, opset: int | None) -> int:
    if opset is None:
        return DEFAULT_OPSET
    newest = int(onnx_module.defs.onnx_opset_version())
    try:
        return check.check_int("opset", opset, low=MIN_OPSET, high=newest)
    except ValueError as exc:
        raise ValueError(
            f"{exc}; the installed onnx knows opsets up to {newest}, fastbp's graphs need "
            f"{MIN_OPSET} or later (default {DEFAULT_OPSET})"
        ) from None


def _write_target(path: str | bytes | os.PathLike[Any]) -> str:
    """The file to write for path, checked before any work: its folder must exist."""
    name = io.path_text(path)
    folder = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"cannot write {name!r}: there is no folder {folder!r}; create it first"
        )
    return io._save_target(name)


def to_onnx(
    model: Sequential,
    path: str | bytes | os.PathLike[Any] | None = None,
    *,
    opset: int | None = None,
    dtype: DTypeLike | None = None,
) -> onnx.ModelProto:
    """The model as an ONNX ModelProto (see the module docstring for its inputs and
    outputs); with path, also written there atomically.

    Parameters
    ----------
    model : a built Sequential.
    path : str, bytes, os.PathLike or None
        Where to write the .onnx file; its folder must exist (checked first).
    opset : int or None
        The default-domain opset, from 13 to the installed onnx's newest (default 17).
    dtype : "float32", "float64" or None
        The graph's float type; None (default) is the model's dtype.

    Raises
    ------
    ImportError if onnx is not installed; RuntimeError for an unbuilt model;
    ValueError for a layer or activation with no ONNX translation (naming it) or
    metadata that does not fit the model; FileNotFoundError for a missing folder.
    """
    onnx_module = require_onnx()
    require_built(model, "to_onnx")
    target = None if path is None else _write_target(path)
    float_dtype = _checked_dtype(model, dtype)
    graph = GraphBuilder(onnx_module, float_dtype, _checked_opset(onnx_module, opset))
    for number, layer in enumerate(model.layers, start=1):  # refuse before any work
        if type(layer) not in LAYERS:
            raise ValueError(
                f"layer {number} ({layer!r}) is a {type(layer).__name__}, which has no ONNX "
                f"translation (layers with one: {', '.join(c.__name__ for c in LAYERS)})"
            )
    n_in = model.input_dim
    x = INPUT_NAME
    stats = _statistics(model, "standardize", n_in)
    if stats is not None:
        centred = graph.node("Sub", [x, graph.constant("feature_mean", stats[0])])
        x = graph.node("Div", [centred, graph.constant("feature_scale", stats[1])], "standardized")
    for number, (layer, params) in enumerate(zip(model.layers, layer_parameters(model)), start=1):
        where = f"layer {number} ({layer!r})"
        x = LAYERS[type(layer)](graph, x, layer, [p.astype(float_dtype) for p in params], where)
    helper = onnx_module.helper
    outputs = _head(graph, model, x, int(model.output_dim or 0))
    inputs = [
        helper.make_tensor_value_info(
            INPUT_NAME, helper.np_dtype_to_tensor_dtype(float_dtype), ["batch", n_in]
        )
    ]
    onnx_graph = helper.make_graph(
        graph.nodes, "fastbp_sequential", inputs, outputs, initializer=graph.initializers
    )
    opsets = [helper.make_opsetid("", graph.opset)]
    proto = helper.make_model(
        onnx_graph,
        opset_imports=opsets,
        producer_name="fastbp",
        ir_version=helper.find_min_ir_version_for(opsets),
        doc_string=repr(model),
    )
    onnx_module.checker.check_model(proto, full_check=True)
    if target is not None:
        io.write_atomically(target, lambda f: f.write(proto.SerializeToString()))
    return proto
