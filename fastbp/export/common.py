"""What the exporters share: a built model's parameters, layer by layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastbp.model import Sequential


def require_built(model: Sequential, what: str) -> None:
    """RuntimeError unless model is built (an export needs its width and weights)."""
    if not model.built:
        raise RuntimeError(
            f"{what} needs a built model (its input width and weights): give the first "
            "layer input_dim=, or call fit/build first"
        )


def layer_parameters(model: Sequential) -> list[list[np.ndarray]]:
    """One consistent copy of get_weights(), cut into each layer's arrays (in each
    layer's parameter_names order)."""
    weights = model.get_weights()
    per_layer, start = [], 0
    for layer in model.layers:
        count = len(layer.parameter_names)
        per_layer.append(weights[start : start + count])
        start += count
    return per_layer
