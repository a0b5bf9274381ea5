"""PyTorch modules for the fastbp pieces that torch.nn has no exact match for.

Imported by fastbp.export.torch only when PyTorch is installed. The classes live at
module level so that a converted model pickles (torch.save(module)) like any other.
"""

from __future__ import annotations

import torch
from torch import nn


class Maxout(nn.Module):
    """Maxout over the output of the Linear before it: unit j is the largest of its
    `pieces` adjacent columns j*pieces .. j*pieces + pieces - 1, as in fastbp.Maxout.

    Input : tensor of shape (n_samples, units * pieces); output : (n_samples, units).
    The gradient goes to one winning piece per unit (torch.max's index).
    """

    def __init__(self, units: int, pieces: int) -> None:
        super().__init__()
        self.units = int(units)
        self.pieces = int(pieces)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.unflatten(-1, (self.units, self.pieces)).max(dim=-1).values

    def extra_repr(self) -> str:
        return f"units={self.units}, pieces={self.pieces}"


class HardSigmoid(nn.Module):
    """fastbp's hard sigmoid, max(min(0.25 z + 0.5, 1), 0): the ramp is 4 wide,
    where torch.nn.Hardsigmoid's, relu6(z + 3) / 6, is 6 wide."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.clamp(0.25 * z + 0.5, 0.0, 1.0)
