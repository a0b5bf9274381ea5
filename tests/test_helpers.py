"""The shared helpers fail the way they promise: assert_close names what differs."""

import numpy as np
import pytest

from tests.helpers import assert_close


def test_assert_close_names_the_label_shape_worst_index_values_and_error():
    expected = np.full((8, 3), 0.25)
    expected[2, 1] = 0.5121
    actual = expected.copy()
    actual[2, 1] = 0.5123
    actual[5, 0] += 1e-9  # a smaller difference elsewhere
    with pytest.raises(
        AssertionError,
        match=r"^dW\[layer 1\] shape \(8, 3\): worst at \(2, 1\): 0\.5123 vs 0\.5121, "
        r"rel err 3\.9e-04 > 1e-12$",
    ):
        assert_close(actual, expected, 1e-12, "dW[layer 1]")


def test_assert_close_passes_within_tolerance_and_catches_nan_and_shape():
    a = np.array([1.0, 2.0, 0.0])
    assert_close(a + 1e-13, a, 1e-12, "a")
    assert_close(a + 1e-3, a, 1e-12, "a", atol=1e-2)
    assert_close(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 0, "special")
    with pytest.raises(AssertionError, match=r"^a shape \(3,\): worst at \(1,\): nan vs 2"):
        assert_close(np.array([1.0, np.nan, 0.0]), a, 1e-12, "a")
    with pytest.raises(AssertionError, match=r"^a: shape \(2,\) vs expected \(3,\)"):
        assert_close(a[:2], a, 1e-12, "a")
    with pytest.raises(
        AssertionError, match=r"^loss shape \(\): 1\.5 vs 1, rel err 3\.3e-01 > 1e-05"
    ):
        assert_close(1.5, 1.0, 1e-5, "loss")
