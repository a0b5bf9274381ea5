"""Loss registry: name -> spec (kernel codes, what the last layer must output).

Every loss averages over the batch (docs/design.md §1). The fused losses take the last
layer's pre-activation Z and give dL/dZ directly:

- mse: L = 1/(2N) sum_i ||y_i - a_i||^2, dL/dA = (A - Y)/N, any output activation.
- softmax_cross_entropy: L = -1/N sum_i log softmax(z_i)[y_i], dL/dZ = (S - Y)/N;
  the last layer outputs logits (no activation), or applies the softmax itself
  (activation="softmax" or an Activation("softmax") layer: the loss still takes
  the logits under it); targets are class indices or rows of probabilities.
- binary_cross_entropy: L = -1/N sum (y log a + (1 - y) log(1 - a)) with
  a = sigmoid(z), dL/dZ = (A - Y)/N; the last layer has activation="sigmoid".
- kl_divergence: L = 1/N sum_i sum_j y_ij log(y_ij / softmax(z_i)_j), targets are
  probability rows; dL/dZ = (S - Y)/N as for the cross-entropy, which it equals up
  to the targets' entropy.
"""

from dataclasses import dataclass
from typing import cast

from fastbp.validation import check_option

# Kernel codes, one per loss and target kind: the FBP_LOSS_* enum of
# csrc/fbp_kernels.h, checked against CODES when the compiled backend loads.
MSE = 0
SOFTMAX_XENT_INT = 1
SOFTMAX_XENT_PROB = 2
SIGMOID_BCE = 3
SOFTMAX_KL = 4
CODES = {
    "mse": MSE,
    "softmax_xent_int": SOFTMAX_XENT_INT,
    "softmax_xent_prob": SOFTMAX_XENT_PROB,
    "sigmoid_bce": SIGMOID_BCE,
    "softmax_kl": SOFTMAX_KL,
}


@dataclass(frozen=True)
class LossSpec:
    """name; codes: target kind -> kernel code; output_activations: what the last
    layer may apply last (None: anything); classification: whether accuracy is
    reported; fused: the loss gives dL/dZ under the output activation; softmax:
    the loss takes a softmax of logits."""

    name: str
    codes: dict
    output_activations: tuple | None
    classification: bool
    fused: bool
    doc: str
    softmax: bool = False


LOSSES = {
    spec.name: spec
    for spec in (
        LossSpec(
            "mse", {"values": MSE}, None, False, False, "mean squared error, 1/(2N) sum ||y - a||^2"
        ),
        LossSpec(
            "softmax_cross_entropy",
            {"labels": SOFTMAX_XENT_INT, "probabilities": SOFTMAX_XENT_PROB},
            ("identity", "softmax"),
            True,
            True,
            "softmax of the logits, then cross-entropy with class labels or probability rows",
            softmax=True,
        ),
        LossSpec(
            "binary_cross_entropy",
            {"probabilities": SIGMOID_BCE},
            ("sigmoid",),
            True,
            True,
            "cross-entropy of sigmoid outputs with 0/1 (or probability) targets",
        ),
        LossSpec(
            "kl_divergence",
            {"probabilities": SOFTMAX_KL},
            ("identity", "softmax"),
            True,
            True,
            "KL(y || softmax(z)) against rows of target probabilities",
            softmax=True,
        ),
    )
}
ALIASES = {
    "mean_squared_error": "mse",
    "categorical_cross_entropy": "softmax_cross_entropy",
    "cross_entropy": "softmax_cross_entropy",
    "bce": "binary_cross_entropy",
}


def get(name: object) -> LossSpec:
    """Resolve a loss name to its LossSpec, or say which names exist."""
    key = ALIASES.get(name, name) if isinstance(name, str) else name
    if not isinstance(key, str) or key not in LOSSES:
        check_option("loss", name, tuple(LOSSES))  # raises: name is no loss's name
    return LOSSES[cast(str, key)]
