"""Export to other frameworks and import from them.

- fastbp.export.onnx: Sequential.to_onnx builds an ONNX graph (needs the optional
  `onnx` package: pip install 'fastbp[onnx]').
- fastbp.export.torch: Sequential.to_torch gives an equivalent torch.nn.Sequential,
  fastbp.from_torch builds a Sequential from one (needs PyTorch).

Both optional packages are imported only when these functions are called.
"""

from fastbp.export.onnx import to_onnx
from fastbp.export.torch import from_torch, to_torch

__all__ = ["from_torch", "to_onnx", "to_torch"]
