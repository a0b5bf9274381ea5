"""Whole-model benchmarks: a training step, one epoch and predict, on the four
configs of workloads.CONFIGS (ReLU hidden layers, softmax cross-entropy, plain
SGD, float32), for the Cython backend, the NumPy backend and PyTorch on the CPU
(skipped without torch). The step groups also hold the GEMM floor.

The fastbp contenders are timed through the backends' hot-path methods (step,
epoch, predict) on arrays prepared once, without the per-call input validation
of Sequential.train_step / fit / predict; see workloads.py.

Every test checks what it timed against the NumPy backend on the same initial
weights: the first step's loss, the first epoch's mean loss, the logits.
"""

import numpy as np
import pytest

from benchmarks.conftest import assert_close, skip_unless_available
from benchmarks.workloads import (
    CONFIGS,
    TorchMLP,
    epoch_data,
    fastbp_epoch,
    fastbp_predict,
    fastbp_step,
    gemm_floor,
    make_batches,
    make_model,
    predict_data,
)

pytestmark = pytest.mark.benchmark(max_time=0.5)

DTYPE = "float32"
PREDICT_ROWS = 2_048
# Two float32 training runs of many steps drift apart by rounding; their mean
# losses over the first epoch still agree to this.
EPOCH_LOSS_RTOL = 1e-3

CONFIG_PARAMS = pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))


def model_for(config, contender):
    """The fastbp model a contender starts from (torch copies its weights)."""
    return make_model(config, "numpy" if contender == "numpy" else "cython", DTYPE)


@pytest.mark.parametrize("contender", ["cython", "numpy", "floor", "torch"])
@CONFIG_PARAMS
def test_step(benchmark, references, config, contender):
    """One SGD step on a batch of config.batch_size rows; successive calls take
    the next of workloads.STEP_BATCHES batches."""
    skip_unless_available(contender)
    benchmark.group = f"step {config.name} {config.shape_label} batch {config.batch_size}"
    batches = make_batches(config, DTYPE)
    model = model_for(config, contender)
    if contender == "floor":
        fastbp_step(model, batches)()  # fill the workspaces with a real step's values
        X = benchmark(gemm_floor(model, batches))
        first = model._plan.nodes[0]
        # the floor's first GEMM leaves Z = X @ W1 (no bias) in the first workspace
        assert_close(first.Z[: len(X)], np.asarray(X, np.float64) @ first.params[0].value, DTYPE)
        return
    if contender == "torch":
        step = TorchMLP(model).step(batches)
        loss_of = float
    else:
        step = fastbp_step(model, batches)

        def loss_of(result):  # (loss, n_correct)
            return result[0]

    assert_close(loss_of(step()), references.step_loss(config, DTYPE), DTYPE)
    assert np.isfinite(loss_of(benchmark(step)))


@pytest.mark.parametrize("contender", ["cython", "numpy", "torch"])
@CONFIG_PARAMS
def test_epoch(benchmark, references, config, contender):
    """One epoch of mini-batch SGD (lr 0.01) over config.epoch_samples rows."""
    skip_unless_available(contender)
    benchmark.group = (
        f"epoch {config.name} {config.shape_label} "
        f"{config.epoch_samples} samples batch {config.batch_size}"
    )
    X, y, order = epoch_data(config, DTYPE)
    model = model_for(config, contender)
    if contender == "torch":
        epoch = TorchMLP(model).epoch(X, y, order, config.batch_size)

        def summary(result):  # (total, n_seen)
            return result[0] / result[1], result[1]

    else:
        epoch = fastbp_epoch(model, X, y, order, config.batch_size)

        def summary(result):  # (total, correct, seen)
            return result[0] / result[2], result[2]

    first_loss, n_seen = summary(epoch())
    assert n_seen == len(X)
    np.testing.assert_allclose(
        first_loss, references.epoch_loss(config, DTYPE), rtol=EPOCH_LOSS_RTOL
    )
    later_loss, n_seen = summary(benchmark(epoch))
    assert n_seen == len(X) and np.isfinite(later_loss)


@pytest.mark.parametrize("contender", ["cython", "numpy", "torch"])
@CONFIG_PARAMS
def test_predict(benchmark, references, config, contender):
    """Forward pass over PREDICT_ROWS rows -> logits (PREDICT_ROWS, n_classes)."""
    skip_unless_available(contender)
    benchmark.group = f"predict {config.name} {config.shape_label} {PREDICT_ROWS} rows"
    X = predict_data(config, DTYPE, PREDICT_ROWS)
    model = model_for(config, contender)
    predict = TorchMLP(model).predict(X) if contender == "torch" else fastbp_predict(model, X)
    logits = benchmark(predict)
    assert_close(logits, references.logits(config, DTYPE, PREDICT_ROWS), DTYPE)
