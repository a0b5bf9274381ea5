"""Training-health diagnostics, measured after each epoch by fit(diagnostics=True).

On a fixed sample of the training rows (at most SAMPLE_ROWS, the same every epoch):

- dead_relu_fraction: ReLU hidden units whose output is 0 on every sample row;
- saturated_fraction: sigmoid/tanh hidden units sitting on a flat tail (sigmoid
  below 0.01 or above 0.99, |tanh| above 0.99) for at least 95 % of the rows;
- grad_norm_1, grad_norm_2, ...: the Frobenius norm of dW of the first, second, ...
  layer with weights (Dense, Maxout; other layers are not counted), to see
  vanishing (first layers far below the last) or exploding gradients;
- duplicate_units: hidden units (maxout pieces) whose incoming weights and bias
  equal another's of the same layer exactly, the mark of failed symmetry breaking.

Each alarming reading is warned about once per fit. The cost is one forward pass and
one gradient computation on the sample per epoch, so it is off by default.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from fastbp.model import Sequential
    from fastbp.plan import Plan

SAMPLE_ROWS = 2048
SATURATED_ROWS = 0.95
ALARM_FRACTION = 0.5
VANISHING_RATIO = 1e-4


class TrainingHealthWarning(UserWarning):
    """A diagnostic reading that suggests training is going wrong."""


def _saturated(name: str, A: np.ndarray) -> NDArray[np.bool_]:
    if name == "sigmoid":
        return (A < 0.01) | (A > 0.99)
    return np.abs(A) > 0.99


SQUASHING = ("sigmoid", "tanh")


def reading_names(plan: Plan) -> list[str]:
    """The names measure() returns for a model with this plan."""
    hidden = [node.activation for node in plan.nodes[:-1]]
    weighted = [node for node in plan.nodes if node.traits.affine]
    return (
        (["dead_relu_fraction"] if "relu" in hidden else [])
        + (["saturated_fraction"] if set(SQUASHING) & set(hidden) else [])
        + [f"grad_norm_{i + 1}" for i in range(len(weighted))]
        + ["duplicate_units"]
    )


def measure(model: Sequential, X: np.ndarray, y: np.ndarray, loss_code: int) -> dict[str, float]:
    """Diagnostics of model on (X, y), a sample of the training data, as a dict."""
    backend, plan = model._backend, model._plan
    backend.forward(X)
    hidden = [
        (node.activation, np.asarray(A)) for node, A in zip(plan.nodes[:-1], backend.activations())
    ]
    relu = [A for name, A in hidden if name == "relu"]
    squashing = [(name, A) for name, A in hidden if name in SQUASHING]
    logs = {}
    if relu:
        dead = sum(int(np.sum(~(A != 0).any(axis=0))) for A in relu)
        logs["dead_relu_fraction"] = dead / sum(A.shape[1] for A in relu)
    if squashing:
        saturated = sum(
            int(np.sum(_saturated(name, A).mean(axis=0) >= SATURATED_ROWS)) for name, A in squashing
        )
        logs["saturated_fraction"] = saturated / sum(A.shape[1] for _, A in squashing)
    backend.step(X, y, loss_code, model.optimizer, False, 0.0)
    weighted = [node for node in plan.nodes if node.traits.affine]
    for i, node in enumerate(weighted):
        logs[f"grad_norm_{i + 1}"] = float(np.linalg.norm(node.params[0].grad))
    logs["duplicate_units"] = sum(
        node.width
        - len(np.unique(np.vstack([node.params[0].value, node.params[1].value]).T, axis=0))
        for node in weighted[:-1]
    )
    return logs


class Alarms:
    """Warns once per kind of alarming reading."""

    def __init__(self) -> None:
        self.raised: set[str] = set()

    def check(self, epoch: int, logs: dict[str, float]) -> None:
        n_layers = sum(key.startswith("grad_norm_") for key in logs)
        first, last = logs.get("grad_norm_1", 0.0), logs.get(f"grad_norm_{n_layers}", 0.0)
        readings = {
            "dead": (
                logs.get("dead_relu_fraction", 0) > ALARM_FRACTION,
                f"{logs.get('dead_relu_fraction', 0):.0%} of the ReLU units are dead (zero "
                "on every sample); lower the learning rate, or use leaky_relu",
            ),
            "saturated": (
                logs.get("saturated_fraction", 0) > ALARM_FRACTION,
                f"{logs.get('saturated_fraction', 0):.0%} of the sigmoid/tanh units are "
                "saturated, so their gradients vanish; standardise the inputs or use "
                "a smaller initialisation",
            ),
            "vanishing": (
                n_layers > 1 and last > 0 and first / last < VANISHING_RATIO,
                f"the first layer's gradient norm ({first:.2e}) is below "
                f"{VANISHING_RATIO:g} of the last layer's ({last:.2e}): vanishing "
                "gradients (dead or saturated units, or a deep sigmoid stack); ReLU "
                "hidden layers, fewer layers or a He initialisation would help",
            ),
            "exploding": (
                not np.isfinite(first)
                or (first > 0 and last / first < VANISHING_RATIO and n_layers > 1),
                "the first layer's gradient norm dwarfs the last layer's: exploding "
                "gradients; lower the learning rate",
            ),
            "duplicates": (
                logs.get("duplicate_units", 0) > 0,
                f"{logs.get('duplicate_units', 0)} hidden units duplicate another unit "
                "of their layer exactly: the initialisation did not break the symmetry "
                "(use a random kernel_initializer, not zeros or a constant)",
            ),
        }
        for kind, (alarming, message) in readings.items():
            if alarming and kind not in self.raised:
                self.raised.add(kind)
                warnings.warn(f"epoch {epoch + 1}: {message}", TrainingHealthWarning, stacklevel=3)
