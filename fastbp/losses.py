"""Loss registry: name -> spec (kernel codes, what the last layer must output).

Every loss averages over the batch (DESIGN.md §1). The fused losses take the last
layer's pre-activation Z and give dL/dZ directly:

- mse: L = 1/(2N) sum_i ||y_i - a_i||^2, dL/dA = (A - Y)/N, any output activation.
- softmax_cross_entropy: L = -1/N sum_i log softmax(z_i)[y_i], dL/dZ = (S - Y)/N;
  the last layer outputs logits (no activation); targets are class indices or
  rows of probabilities.
- binary_cross_entropy: L = -1/N sum (y log a + (1 - y) log(1 - a)) with
  a = sigmoid(z), dL/dZ = (A - Y)/N; the last layer has activation="sigmoid".
"""
from dataclasses import dataclass

# Codes shared with fastbp/_kernels/csrc.pxd.
MSE = 0
SOFTMAX_XENT_INT = 1
SOFTMAX_XENT_PROB = 2
SIGMOID_BCE = 3


@dataclass(frozen=True)
class LossSpec:
    """name; codes: target kind -> kernel code; output_activation: what the last
    layer must use (None: any); classification: whether accuracy is reported."""

    name: str
    codes: dict
    output_activation: str | None
    classification: bool
    fused: bool
    doc: str


LOSSES = {
    spec.name: spec
    for spec in (
        LossSpec("mse", {"values": MSE}, None, False, False,
                 "mean squared error, 1/(2N) sum ||y - a||^2"),
        LossSpec("softmax_cross_entropy",
                 {"labels": SOFTMAX_XENT_INT, "probabilities": SOFTMAX_XENT_PROB},
                 "identity", True, True,
                 "softmax of the logits, then cross-entropy with class labels or probability rows"),
        LossSpec("binary_cross_entropy", {"probabilities": SIGMOID_BCE}, "sigmoid", True, True,
                 "cross-entropy of sigmoid outputs with 0/1 (or probability) targets"),
    )
}
ALIASES = {"mean_squared_error": "mse", "categorical_cross_entropy": "softmax_cross_entropy",
           "cross_entropy": "softmax_cross_entropy", "bce": "binary_cross_entropy"}


def get(name):
    """Resolve a loss name to its LossSpec, or say which names exist."""
    key = ALIASES.get(name, name)
    if not isinstance(key, str) or key not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[key]
