"""fastbp.export without its optional packages: importing fastbp loads neither onnx
nor torch, and each export says which package it needs when that one is missing."""

import subprocess
import sys

import pytest

import fastbp as fb


def test_importing_fastbp_loads_neither_onnx_nor_torch():
    code = "import sys, fastbp; print(sorted({'onnx', 'onnxruntime', 'torch'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="."
    )
    assert out.stdout.strip() == "[]"


def test_to_onnx_names_the_extra_when_onnx_is_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = fb.Sequential([fb.Dense(2, input_dim=3)])
    with pytest.raises(ImportError, match=r"pip install 'fastbp\[onnx\]'"):
        model.to_onnx(tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_torch_conversions_say_they_need_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    model = fb.Sequential([fb.Dense(2, input_dim=3)])
    with pytest.raises(ImportError, match="to_torch needs PyTorch"):
        model.to_torch()
    with pytest.raises(ImportError, match="from_torch needs PyTorch"):
        fb.from_torch(object())
