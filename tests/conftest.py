"""Fixtures only; what the tests share otherwise is in tests/helpers.py."""

import pytest

from tests.helpers import BACKENDS, DTYPES


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param
