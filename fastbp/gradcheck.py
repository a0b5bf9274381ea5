"""Numerical gradient checking: backpropagation against centred differences.

gradcheck runs on a float64 copy of the model, so the model given is never
changed, and compares, for every parameter array, the analytic gradient of the
model's training loss (L2 term included, dropout masks frozen at the current
step) with (L(w + eps) - L(w - eps)) / (2 eps) for each
entry checked. The error of an array is max |analytic - numeric| divided by the
largest magnitude of either, so entries that are zero in both do not blow it up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from fastbp.model import Sequential

from fastbp.validation import check_real


@dataclass(frozen=True)
class ArrayCheck:
    """One parameter array: its layer (1-based), name ("W", "b" or "alpha"), the
    worst relative error over the entries checked, and how many entries were checked."""

    layer: int
    name: str
    max_rel_error: float
    n_checked: int


class GradcheckResult:
    """checks : list of ArrayCheck; threshold : the error above which an array
    fails; passed : True when every array is within the threshold."""

    def __init__(self, checks: list[ArrayCheck], threshold: float) -> None:
        self.checks = checks
        self.threshold = threshold
        self.passed = all(c.max_rel_error <= threshold for c in checks)

    @property
    def max_rel_error(self) -> float:
        return max(c.max_rel_error for c in self.checks)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"{'layer':>5}  {'array':<5}  {'entries':>7}  {'max rel. error':>14}  verdict"]
        for c in self.checks:
            verdict = "ok" if c.max_rel_error <= self.threshold else "FAIL"
            lines.append(
                f"{c.layer:>5}  {c.name:<5}  {c.n_checked:>7}  {c.max_rel_error:>14.3e}  {verdict}"
            )
        lines.append(f"{'passed' if self.passed else 'FAILED'} (threshold {self.threshold:g})")
        return "\n".join(lines)


def gradcheck(
    model: Sequential,
    X: ArrayLike,
    y: ArrayLike,
    eps: float = 1e-6,
    threshold: float = 1e-6,
    max_checks_per_array: int | None = None,
    seed: int | None = 0,
) -> GradcheckResult:
    """Check model's backpropagated gradients on (X, y) against centred differences.

    Runs on a float64 copy of the model (the model given is not changed), with
    the same weights, step count and dropout masks.

    Parameters
    ----------
    model : Sequential
        A built model.
    X : array of shape (n_samples, n_features)
    y : targets for the model's loss
    eps : float
        The step of the centred differences, in (0, 1).
    threshold : float
        The relative error above which an array fails.
    max_checks_per_array : int or None
        Check at most this many entries of each array, chosen at random
        (seeded by seed); None checks them all.
    seed : int
        Seeds the choice of entries.

    Returns
    -------
    GradcheckResult
        One ArrayCheck per parameter array; printable as a pass/fail table,
        truthy when it passed.

    Examples
    --------
    >>> import numpy as np
    >>> import fastbp as fb
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.standard_normal((6, 3)), np.array([0, 1, 0, 1, 1, 0])
    >>> model = fb.Sequential([fb.Dense(5, activation="tanh", input_dim=3), fb.Dense(2)],
    ...                       loss="softmax_cross_entropy", seed=0)
    >>> result = fb.gradcheck(model, X, y)
    >>> result.passed, bool(result.max_rel_error < 1e-6)
    (True, True)
    >>> [(c.layer, c.name, c.n_checked) for c in result.checks]
    [(1, 'W', 15), (1, 'b', 5), (2, 'W', 10), (2, 'b', 2)]
    >>> print(result)  # doctest: +ELLIPSIS
    layer  array  entries  max rel. error  verdict
        1  W           15       ...e-...  ok
    ...
    passed (threshold 1e-06)
    """
    from fastbp.model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"gradcheck expects a fastbp.Sequential, got {type(model).__name__}")
    eps = check_real("eps", eps, low=0, high=1, low_open=True, high_open=True)
    model._require_built()
    config = dict(model.get_config(), dtype="float64")
    copy = Sequential.from_config(config)
    copy.set_weights([w.astype(np.float64) for w in model.get_weights()])
    for source, target in zip(model._plan.optimizer_state(), copy._plan.optimizer_state()):
        target[...] = source  # the same step count and dropout seed: the same masks
    X = copy._features(X)
    y, loss_code = copy._targets(y, len(X))
    _, analytic = copy.loss_and_gradients(X, y)

    def loss() -> float:
        # the training loss (L2 term and dropout included) at the frozen step
        return copy._backend.step(X, y, loss_code, copy.optimizer, False, 0.0)[0]

    rng = np.random.default_rng(seed)
    checks = []
    for spec, grad in zip(copy._plan.params(), analytic):
        size = spec.value.size
        entries = np.arange(size)
        if max_checks_per_array is not None and size > max_checks_per_array:
            entries = rng.choice(size, max_checks_per_array, replace=False)
        numeric = centred_differences(loss, spec.value, eps, entries)
        error = relative_error(grad.reshape(-1)[entries], numeric)
        checks.append(ArrayCheck(spec.layer, spec.name, error, len(entries)))
    return GradcheckResult(checks, threshold)


def centred_differences(
    f: Callable[[], float],
    x: np.ndarray,
    eps: float = 1e-6,
    entries: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """(f() at x + eps - f() at x - eps) / (2 eps), one entry of x at a time.

    f : a function of no arguments returning a float, which reads x.
    x : the array to perturb, in place (each entry is restored after its two calls);
        it must be contiguous, so that its flat view is x itself.
    entries : the flat indices to difference; None takes them all.
    Returns a float64 array: x's shape when entries is None, else one value per entry.
    """
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("centred_differences needs a contiguous array to perturb in place")
    indices = range(flat.size) if entries is None else entries
    numeric = np.empty(len(indices))
    for i, entry in enumerate(indices):
        saved = flat[entry]
        flat[entry] = saved + eps
        plus = f()
        flat[entry] = saved - eps
        minus = f()
        flat[entry] = saved
        numeric[i] = (plus - minus) / (2 * eps)
    return numeric.reshape(x.shape) if entries is None else numeric


def relative_error(actual: ArrayLike, expected: ArrayLike) -> float:
    """max |actual - expected| over the largest magnitude of either (0 when both are 0):
    entries that are zero in both do not blow the error up."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(np.abs(actual).max(initial=0.0), np.abs(expected).max(initial=0.0))
    return 0.0 if scale == 0 else float(np.abs(actual - expected).max() / scale)
