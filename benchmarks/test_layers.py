"""A training step of each layer type (workloads.LAYER_MODELS: PReLU, a standalone
Activation, Maxout, Dropout, a softmax output, beside the plain Dense/ReLU model)
on the small config's shapes, for the Cython and the NumPy backend.

Each test first checks that the backend's first step gives the NumPy backend's loss
on the same initial weights and batch.
"""

import pytest

from benchmarks.conftest import assert_close, skip_unless_available
from benchmarks.workloads import (
    CONFIGS,
    LAYER_CONFIG,
    LAYER_MODELS,
    fastbp_step,
    make_batches,
    make_layer_model,
)

pytestmark = pytest.mark.benchmark(max_time=0.5)

DTYPE = "float32"


@pytest.mark.parametrize("contender", ["cython", "numpy"])
@pytest.mark.parametrize("name", list(LAYER_MODELS))
def test_layer_step(benchmark, name, contender):
    skip_unless_available(contender)
    config = CONFIGS[LAYER_CONFIG]
    benchmark.group = f"layer step {name} {config.shape_label} batch {config.batch_size}"
    batches = make_batches(config, DTYPE)
    reference = fastbp_step(make_layer_model(name, "numpy", DTYPE), batches)()[0]
    step = fastbp_step(make_layer_model(name, contender, DTYPE), batches)
    assert_close(step()[0], reference, DTYPE)
    benchmark(step)
