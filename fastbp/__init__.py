"""fastbp: fast matrix backpropagation for multilayer perceptrons on the CPU."""

from fastbp import activations, datasets, diagnostics, gemm, initializers, losses, plot, schedules
from fastbp.backends import available as available_backends
from fastbp.callbacks import (
    CSVLogger,
    EarlyStopping,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from fastbp.config import show_config
from fastbp.export.torch import from_torch
from fastbp.gradcheck import gradcheck
from fastbp.io import load
from fastbp.layers import Activation, Dense, Dropout, Maxout, PReLU
from fastbp.model import Sequential
from fastbp.optimizers import SGD, Adagrad, Adam, AdamW, RMSProp

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Activation",
    "Adagrad",
    "Adam",
    "AdamW",
    "CSVLogger",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "Maxout",
    "ModelCheckpoint",
    "PReLU",
    "RMSProp",
    "ReduceLROnPlateau",
    "Sequential",
    "activations",
    "available_backends",
    "datasets",
    "diagnostics",
    "from_torch",
    "gemm",
    "gradcheck",
    "initializers",
    "load",
    "losses",
    "plot",
    "schedules",
    "show_config",
]
