"""Fixtures, and one guard; what the tests share otherwise is in tests/helpers.py.

The guard: with FASTBP_TEST_INSTALLED=1 the suite is meant to test an installed fastbp
(a wheel in a fresh environment, run with `--import-mode=append` from a directory
outside the clone). The session stops at once, before any test runs, if fastbp was
imported from the clone instead, or if the installed package has no compiled backend.
"""

import os
from pathlib import Path

import pytest

import fastbp
from tests.helpers import BACKENDS, DTYPES
from tests.paths import SOURCE_ROOT, is_inside


def installed_fastbp_problem() -> str | None:
    """Why the fastbp imported here is not an installed one with its kernels, or None."""
    location = os.path.dirname(os.path.abspath(fastbp.__file__))
    if is_inside(Path(location), SOURCE_ROOT):
        return (
            f"FASTBP_TEST_INSTALLED=1, but fastbp was imported from the clone ({location}), "
            "not from the installed package: run pytest from a directory outside the clone "
            f"with --import-mode=append (e.g. cd /tmp && python -m pytest {SOURCE_ROOT}/tests "
            "--import-mode=append), or unset FASTBP_TEST_INSTALLED to test the clone"
        )
    if "cython" not in fastbp.available_backends():
        return (
            f"FASTBP_TEST_INSTALLED=1, but the installed fastbp ({location}) has no usable "
            "compiled backend: the wheel was built without its kernels, or for another Python"
        )
    return None


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("FASTBP_TEST_INSTALLED") == "1":
        problem = installed_fastbp_problem()
        if problem is not None:
            raise pytest.UsageError(problem)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param
