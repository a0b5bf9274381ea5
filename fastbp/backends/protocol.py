"""The interface every backend offers the model: a typing.Protocol.

NumpyBackend and CythonBackend implement it (tests/test_backend_protocol.py checks
their signatures against it); the model, fastbp.diagnostics and fastbp.gradcheck
type the backend they hold as Backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from fastbp.optimizers import Optimizer
    from fastbp.plan import Plan

__all__ = ["Backend", "BackendFactory"]


class Backend(Protocol):
    """What the model calls on its backend. Arrays arrive validated: the model's
    dtype, C-contiguous, of the right shapes; loss is a loss code (fastbp.losses)."""

    name: str
    plan: Plan

    def forward(self, X: NDArray[np.floating], training: bool = False) -> NDArray[np.floating]:
        """The last node's output (n, d_out); keeps what backward needs."""
        ...

    def activations(self) -> list[NDArray[np.floating]]:
        """Every node's output from the last forward pass."""
        ...

    def backward(
        self, dout: NDArray[np.floating], need_dX: bool = True
    ) -> NDArray[np.floating] | None:
        """Backpropagate dout = dL/d(output) through the last forward pass; writes
        every gradient into the plan and returns dX (n, d_in), or None when not
        need_dX."""
        ...

    def invalidate(self) -> None:
        """The plan's optimiser state arrays were replaced: forget what points to them."""
        ...

    def step(
        self,
        X: NDArray[np.floating],
        y: np.ndarray,
        loss: int,
        opt: Optimizer,
        update: bool,
        lr: float,
        weights: NDArray[np.floating] | None = None,
    ) -> tuple[float, int]:
        """Gradients on one batch, then (if update) one optimiser step: (loss, n_correct)."""
        ...

    def epoch(
        self,
        X: NDArray[np.floating],
        y: np.ndarray,
        order: NDArray[np.int64],
        batch_size: int,
        loss: int,
        opt: Optimizer,
        lr: float,
        weights: NDArray[np.floating] | None = None,
        total: float = 0.0,
    ) -> tuple[float, int, int]:
        """Mini-batches in `order`: (total + sum of batch_rows * batch_loss, n_correct,
        n_seen), the sum taken batch after batch onto total, so that an epoch run as
        several calls sums its loss in the same order as one call."""
        ...

    def predict(self, X: NDArray[np.floating]) -> NDArray[np.floating]:
        """Forward only, keeping nothing (many threads may call it at once)."""
        ...

    def loss_sum(
        self,
        X: NDArray[np.floating],
        y: np.ndarray,
        loss: int,
        weights: NDArray[np.floating] | None = None,
    ) -> tuple[float, int]:
        """Summed (weighted) loss over all rows and the number classified correctly."""
        ...


# What fastbp.backends.get returns: a backend class, called with the plan.
BackendFactory = Callable[["Plan"], Backend]
