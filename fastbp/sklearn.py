"""scikit-learn's MLPClassifier and MLPRegressor, trained by fastbp.

    from fastbp.sklearn import MLPClassifier, MLPRegressor

    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0).fit(X, y)
    clf.predict(X_new)            # labels from clf.classes_
    clf.predict_proba(X_new)      # (n_samples, n_classes)

The estimators take scikit-learn's own parameter names, with its meanings and
defaults, and set its fitted attributes (coefs_, intercepts_, loss_curve_, n_iter_,
...), so that code written for sklearn.neural_network runs unchanged on fastbp's
engine. They follow scikit-learn's estimator conventions (parameters stored
unchanged and checked at fit, get_params/set_params, fit returns self), so they work
with clone, Pipeline, cross_val_score, GridSearchCV and AdaBoost. This module does
not import scikit-learn: it imports and runs without it, and reaches for it only
when scikit-learn asks for the estimator's tags, or to raise scikit-learn's own
NotFittedError, ConvergenceWarning and DataConversionWarning when it is installed.

Parameters shared by both estimators (scikit-learn's unless marked fastbp)
--------------------------------------------------------------------------
hidden_layer_sizes : int or sequence of int, default (100,)
    Units of each hidden layer; () gives a model without hidden layers.
activation : str, default "relu"
    Activation of the hidden layers: scikit-learn's "identity", "logistic" (fastbp's
    "sigmoid"), "tanh", "relu", or any other hidden activation of fastbp
    ("leaky_relu", "elu", "gelu", "silu", "softplus", "prelu", ...).
solver : str, default "adam"
    "adam" or "sgd" as in scikit-learn, or fastbp's "adamw", "rmsprop", "adagrad".
    "lbfgs" is not available (fastbp trains by mini-batch gradient descent only).
alpha : float, default 1e-4
    L2 strength, with scikit-learn's scaling: a mini-batch whose sample weights sum
    to S (its number of rows without weights) adds alpha / (2 S) * sum ||W||^2 to the
    loss and alpha / S * W to the gradient. In fastbp terms that batch trains with
    weight_decay = alpha / S. Biases are not decayed. With solver="adamw", alpha is
    AdamW's decoupled weight_decay as it stands (and is not part of the loss).
batch_size : "auto" or int, default "auto"
    Rows per mini-batch; "auto" is min(200, n_samples). Larger than n_samples:
    clipped, with a warning.
learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
    Schedule of the step size, for solver="sgd" only (the others keep
    learning_rate_init): "invscaling" sets it to learning_rate_init / (t_ + 1) **
    power_t after each epoch; "adaptive" divides it by 5 each time the stopping
    rule below fires, and stops once it is below 1e-6.
learning_rate_init : float, default 1e-3
power_t : float, default 0.5
max_iter : int, default 200
    Epochs (passes over the data).
shuffle : bool, default True
    A new order of the rows each epoch.
random_state : None, int, numpy RandomState or Generator, default None
    Seeds initialisation, shuffling, dropout and the early-stopping split.
tol : float, default 1e-4
n_iter_no_change : int or inf, default 10
    Training stops when, for more than n_iter_no_change consecutive epochs, the
    training loss did not fall below best_loss_ - tol (or, with early_stopping, the
    validation score did not rise above best_validation_score_ + tol).
verbose : bool or int, default False
    Prints the loss of each epoch.
warm_start : bool, default False
    fit continues from the previous fit's weights (with a fresh optimiser state) instead
    of starting over; the layers must not have changed.
momentum : float, default 0.9; nesterovs_momentum : bool, default True
    For solver="sgd".
early_stopping : bool, default False
    Holds out validation_fraction of the training rows (stratified by class for a
    single-label classifier), scores them after each epoch, stops on the rule above and keeps
    the weights of the best epoch.
validation_fraction : float, default 0.1
beta_1, beta_2, epsilon : floats, default 0.9, 0.999, 1e-8
    Adam's (and AdamW's) moment decays and denominator term; epsilon also serves
    RMSProp and Adagrad.
max_fun : int, default 15000
    Accepted for scikit-learn compatibility; it bounds lbfgs calls, which fastbp lacks.
dtype : "float32" or "float64", default "float32" (fastbp)
    Precision of the weights and arithmetic; scikit-learn follows the dtype of X.
dropout : float, default 0.0 (fastbp)
    Dropout rate after each hidden layer, in [0, 1).
n_threads : int or None, default None (fastbp)
    BLAS threads while training and predicting (None: the library's setting).
backend : "cython" or "numpy", default "cython" (fastbp)

MLPRegressor also takes scikit-learn's first parameter, loss : "squared_error"
(the default and the only one; scikit-learn's "poisson" is not available).
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastbp import activations
from fastbp.layers import Dense, Dropout, Layer
from fastbp.model import Sequential
from fastbp.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSProp
from fastbp.validation import as_features, check_bool, check_int, check_option, check_real

__all__ = [  # noqa: F822 (the three error classes come from the module __getattr__)
    "ConvergenceWarning",
    "DataConversionWarning",
    "MLPClassifier",
    "MLPRegressor",
    "NotFittedError",
]


# --- scikit-learn's exception classes when it is installed, stand-ins otherwise -------


class _FallbackNotFittedError(ValueError, AttributeError):
    """Raised by predict and friends before fit when scikit-learn is not installed;
    like scikit-learn's NotFittedError it is both a ValueError and an AttributeError."""


class _FallbackConvergenceWarning(UserWarning):
    """Warned when training reaches max_iter without converging (scikit-learn absent)."""


class _FallbackDataConversionWarning(UserWarning):
    """Warned when a column-vector y is flattened (scikit-learn absent)."""


_FALLBACKS: dict[str, type] = {
    "NotFittedError": _FallbackNotFittedError,
    "ConvergenceWarning": _FallbackConvergenceWarning,
    "DataConversionWarning": _FallbackDataConversionWarning,
}


def _sklearn_class(name: str) -> Any:
    """sklearn.exceptions.<name>, or this module's stand-in without scikit-learn."""
    try:
        import sklearn.exceptions
    except ImportError:
        return _FALLBACKS[name]
    return getattr(sklearn.exceptions, name)


def __getattr__(name: str) -> Any:
    # fastbp.sklearn.NotFittedError (and the warnings) are scikit-learn's classes when
    # it is installed, so that the names catch what the estimators raise either way.
    if name in _FALLBACKS:
        return _sklearn_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- parameters -----------------------------------------------------------------------

# scikit-learn's activation names -> fastbp's; fastbp's other hidden activations pass
# under their own names (softmax is an output, not a hidden activation).
_SKLEARN_ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
}
_HIDDEN_ACTIVATIONS = {
    **_SKLEARN_ACTIVATIONS,
    **{name: name for name in activations.ACTIVATIONS if name != "softmax"},
}


@dataclass(frozen=True)
class _Solver:
    """How a solver name becomes a fastbp optimiser."""

    build: Callable[[Any, float], Optimizer]  # (settings, learning rate) -> optimiser
    coupled_l2: bool  # alpha is the loss's L2 term, scaled per batch (else AdamW's decay)
    schedules: bool  # learning_rate's schedules apply (sgd only, as scikit-learn)


_SOLVERS: dict[str, _Solver] = {
    "adam": _Solver(
        lambda s, lr: Adam(lr=lr, beta1=s.beta_1, beta2=s.beta_2, eps=s.epsilon), True, False
    ),
    "sgd": _Solver(
        lambda s, lr: SGD(
            lr=lr, momentum=s.momentum, nesterov=s.nesterovs_momentum and s.momentum > 0
        ),
        True,
        True,
    ),
    "adamw": _Solver(
        lambda s, lr: AdamW(
            lr=lr, beta1=s.beta_1, beta2=s.beta_2, eps=s.epsilon, weight_decay=s.alpha
        ),
        False,
        False,
    ),
    "rmsprop": _Solver(lambda s, lr: RMSProp(lr=lr, eps=s.epsilon), True, False),
    "adagrad": _Solver(lambda s, lr: Adagrad(lr=lr, eps=s.epsilon), True, False),
}

# out_activation_ (scikit-learn's name) -> (fastbp loss, fastbp output activation)
_OUTPUTS = {
    "logistic": ("binary_cross_entropy", "sigmoid"),  # two classes, or multi-label
    "softmax": ("softmax_cross_entropy", "softmax"),  # three classes or more
    "identity": ("mse", "identity"),  # regression
}

_SCHEDULES = ("constant", "invscaling", "adaptive")
_SMALLEST_ADAPTIVE_LR = 1e-6  # "adaptive" stops instead of dividing below this


def _hidden_sizes(sizes: Any) -> tuple[int, ...]:
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        return (check_int("hidden_layer_sizes", sizes, low=1),)
    try:
        if isinstance(sizes, str):
            raise TypeError
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(
            f"hidden_layer_sizes must be an int or a sequence of ints, got {sizes!r}"
        ) from None
    return tuple(check_int(f"hidden_layer_sizes[{i}]", n, low=1) for i, n in enumerate(sizes))


def _solver_name(value: Any) -> str:
    if value == "lbfgs":
        raise ValueError(
            "solver='lbfgs' is not available in fastbp, which trains by mini-batch "
            f"gradient descent only; use one of {', '.join(map(repr, _SOLVERS))}"
        )
    return check_option("solver", value, _SOLVERS)


def _batch_size(value: Any) -> str | int:
    if isinstance(value, str):
        return check_option("batch_size", value, ("auto",))
    return check_int("batch_size", value, low=1)


def _n_iter_no_change(value: Any) -> float:
    if isinstance(value, numbers.Real) and value == math.inf:
        return math.inf
    return float(check_int("n_iter_no_change", value, low=1))


def _verbose(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    return check_int("verbose", value, low=0)


def _random_state(value: Any) -> Any:
    if value is None or isinstance(value, (np.random.RandomState, np.random.Generator)):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return check_int("random_state", value, low=0)
    raise ValueError(
        "random_state must be None, an int >= 0, a numpy RandomState or a "
        f"numpy Generator; got {value!r}"
    )


def _dtype(value: Any) -> np.dtype[Any]:
    """float32 or float64, named as a string or given as a NumPy type or dtype."""
    try:
        name = np.dtype(value).name if not isinstance(value, str) else value
    except TypeError:
        name = value
    return np.dtype(check_option("dtype", name, ("float32", "float64")))


def _regression_loss(value: Any) -> str:
    if value == "poisson":
        raise ValueError(
            "loss='poisson' is not available in fastbp's MLPRegressor; use loss='squared_error'"
        )
    return check_option("loss", value, ("squared_error",))


def _real(**bounds: Any) -> Callable[[str, Any], float]:
    return lambda name, value: check_real(name, value, **bounds)


def _option(*options: str) -> Callable[[str, Any], str]:
    return lambda name, value: check_option(name, value, options)


def _bool(name: str, value: Any) -> bool:
    return check_bool(name, value)


# Every constructor parameter -> its check (name, value) -> the value to train with.
# scikit-learn checks parameters at fit, never in __init__; so does this module.
_PARAMETER_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "hidden_layer_sizes": lambda name, value: _hidden_sizes(value),
    "activation": _option(*_HIDDEN_ACTIVATIONS),
    "solver": lambda name, value: _solver_name(value),
    "alpha": _real(low=0),
    "batch_size": lambda name, value: _batch_size(value),
    "learning_rate": _option(*_SCHEDULES),
    "learning_rate_init": _real(low=0, low_open=True),
    "power_t": _real(low=0),
    "max_iter": lambda name, value: check_int(name, value, low=1),
    "shuffle": _bool,
    "random_state": lambda name, value: _random_state(value),
    "tol": _real(low=0),
    "verbose": lambda name, value: _verbose(value),
    "warm_start": _bool,
    "momentum": _real(low=0, high=1, high_open=True),  # scikit-learn admits 1
    "nesterovs_momentum": _bool,
    "early_stopping": _bool,
    "validation_fraction": _real(low=0, high=1, high_open=True),
    "beta_1": _real(low=0, high=1, high_open=True),
    "beta_2": _real(low=0, high=1, high_open=True),
    "epsilon": _real(low=0, low_open=True),
    "n_iter_no_change": lambda name, value: _n_iter_no_change(value),
    "max_fun": lambda name, value: check_int(name, value, low=1),
    "dtype": lambda name, value: _dtype(value),
    "dropout": _real(low=0, high=1, high_open=True),
    "n_threads": lambda name, value: None if value is None else check_int(name, value, low=1),
    "backend": _option("cython", "numpy"),
    "loss": lambda name, value: _regression_loss(value),  # MLPRegressor only
}


class _Settings:
    """The constructor parameters, checked: one attribute per parameter."""

    def __init__(self, estimator: _MLPBase) -> None:
        for name in estimator._param_names():
            value = getattr(estimator, name)
            check = _PARAMETER_CHECKS.get(name)  # a subclass may add parameters of its own
            setattr(self, name, value if check is None else check(name, value))

    def __getattr__(self, name: str) -> Any:  # for mypy: attributes set in __init__
        raise AttributeError(name)


def _generator(random_state: Any) -> np.random.Generator:
    """A generator for one fit from random_state: an int gives the same draws on every
    fit, a RandomState or Generator is drawn from once, None is fresh entropy."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state.integers(np.iinfo(np.int32).max))
    return np.random.default_rng(random_state)


# --- input data ---------------------------------------------------------------------


def _feature_names(X: Any) -> NDArray[np.object_] | None:
    """The column names of a DataFrame X when they are all strings, else None (as
    scikit-learn: names of mixed types are refused, names of other types ignored)."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "shape"):
        return None
    names = np.asarray(list(columns), dtype=object)
    kinds = sorted({type(name).__name__ for name in names})
    are_str = [isinstance(name, str) for name in names]
    if names.size and all(are_str):
        return names
    if any(are_str):
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {kinds} as feature name / column name types. If you "
            "want feature names to be stored and validated, you must convert them all "
            "to strings, by using X.columns = X.columns.astype(str) for example. "
            "Otherwise you can remove feature / column names from your input data, or "
            "convert them all to a non-string data type."
        )
    return None


def _listed(names: list[Any], limit: int = 5) -> str:
    shown = [f"- {name}\n" for name in names[:limit]]
    return "".join(shown) + ("- ...\n" if len(names) > limit else "")


def _missing_values_error(X: Any, name: str) -> None:
    """A clear error for pandas missing values (NaN, None, pd.NA of nullable dtypes),
    which NumPy would otherwise turn into object arrays it cannot convert."""
    isna = getattr(X, "isna", None)
    if isna is None:
        return
    missing = np.asarray(isna())
    if not missing.any():
        return
    if missing.ndim == 2:
        columns = [c for c, bad in zip(X.columns, np.asarray(missing.any(axis=0))) if bad]
        where = f" in column(s) {columns[:5]}{' ...' if len(columns) > 5 else ''}"
    else:
        where = ""
    raise ValueError(
        f"Input {name} contains NaN (missing values{where}); fill or drop them before "
        "fitting, e.g. with DataFrame.fillna or sklearn.impute.SimpleImputer"
    )


def _as_array(data: Any, name: str, numeric: bool = True) -> np.ndarray:
    """data as an ndarray; object arrays converted to float64 when numeric (a value
    that is not a number raises TypeError, as NumPy does)."""
    if hasattr(data, "toarray") or hasattr(data, "tocsr"):
        raise TypeError(
            f"Sparse {name} is not supported; convert {name} to a dense array with {name}.toarray()"
        )
    _missing_values_error(data, name)
    arr = np.asarray(data)
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    if arr.dtype == object and numeric:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must hold numbers; could not convert its object values to float ({exc})"
            ) from None
    return arr


def _column_vector_warning(n_samples: int) -> None:
    warnings.warn(
        "A column-vector y was passed when a 1d array was expected. Please change the "
        f"shape of y to ({n_samples},), for example using ravel().",
        _sklearn_class("DataConversionWarning"),
        stacklevel=4,
    )


def _sample_weight(sample_weight: ArrayLike | None, n_samples: int) -> NDArray[np.float64] | None:
    if sample_weight is None:
        return None
    _missing_values_error(sample_weight, "sample_weight")
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        return np.full(n_samples, float(sample_weight))
    weights = np.asarray(sample_weight)
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight.shape == {weights.shape}, expected ({n_samples},): pass one "
            "weight per row of X"
        )
    if weights.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold numbers, got dtype {weights.dtype}")
    weights = weights.astype(np.float64)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("sample_weight must be finite and >= 0 (no NaN, inf or negative weight)")
    if not weights.sum() > 0:
        raise ValueError("sample_weight must have a positive sum; all weights are zero")
    return weights


# --- training -----------------------------------------------------------------------


def _scaled_batches(
    n_rows: int, batch_size: int, weights: NDArray[np.float64] | None
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64] | None]:
    """Batch starts, each batch's weight sum S (its size without weights) and the row
    weights rescaled to mean 1 in their batch (None without weights).

    scikit-learn divides a batch's weighted loss by S; fastbp divides by the batch's
    rows n_b, so weights w * n_b / S give scikit-learn's loss and gradient."""
    starts = np.arange(0, n_rows, batch_size, dtype=np.int64)
    sizes = np.minimum(batch_size, n_rows - starts).astype(np.float64)
    if weights is None:
        return starts, sizes, None
    sums = np.add.reduceat(weights, starts)
    factor = np.divide(sizes, sums, out=np.zeros_like(sums), where=sums > 0)
    return starts, sums, weights * np.repeat(factor, sizes.astype(np.int64))


def _epoch(
    model: Sequential,
    X: np.ndarray,
    y: np.ndarray,
    weights: NDArray[np.float64] | None,
    batch_size: int,
    alpha: float | None,
) -> float:
    """One pass over (X, y) in their order, in batches of batch_size; returns the mean
    of the batches' losses (L2 term included) weighted by their rows, as scikit-learn's
    loss_. alpha None: the optimiser's own decay (AdamW) is left alone.

    Consecutive batches that share an L2 strength train in one call of model.fit.
    With alpha > 0, a batch whose weights are all zero is skipped."""
    starts, sums, scaled = _scaled_batches(len(X), batch_size, weights)
    ends = np.append(starts[1:], len(X))
    # batches that need the same weight_decay run together (without L2, all of them)
    keys = sums if alpha else np.zeros_like(sums)
    total, first = 0.0, 0
    while first < len(starts):
        last = first
        while last + 1 < len(starts) and keys[last + 1] == keys[first]:
            last += 1
        rows = slice(int(starts[first]), int(ends[last]))
        batch_sum = float(sums[first])
        first = last + 1
        if alpha and batch_sum == 0:
            continue  # all weights zero: nothing to learn from, and alpha / 0 undefined
        if alpha is not None:
            model.optimizer.weight_decay = alpha / batch_sum if alpha else 0.0
        history = model.fit(
            X[rows],
            y[rows],
            epochs=1,
            batch_size=batch_size,
            shuffle=False,
            verbose=0,
            sample_weight=None if scaled is None else scaled[rows],
        )
        total += history.history["loss"][0] * (rows.stop - rows.start)
    return total / len(X)


def _validation_split(
    rng: np.random.Generator, n_samples: int, fraction: float, strata: np.ndarray | None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(train rows, validation rows): ceil(fraction * n_samples) rows held out, drawn
    within each stratum in proportion to its size when strata is given."""
    n_val = math.ceil(fraction * n_samples)
    if strata is None:
        order = rng.permutation(n_samples)
        val = order[:n_val]
    else:
        # each stratum's share of n_val, rounded so that the shares add up to n_val
        labels, counts = np.unique(strata, return_inverse=False, return_counts=True)
        quotas = n_val * counts / n_samples
        shares = np.floor(quotas).astype(np.int64)
        short = n_val - int(shares.sum())
        shares[np.argsort(shares - quotas, kind="stable")[:short]] += 1
        picked = [
            rng.permutation(np.flatnonzero(strata == label))[:share]
            for label, share in zip(labels, shares)
        ]
        val = np.concatenate(picked)
    if len(val) < 2 or len(val) >= n_samples:
        raise ValueError(
            f"The validation set is too small ({len(val)} of {n_samples} samples with "
            f"validation_fraction={fraction}). Increase 'validation_fraction' or the size "
            "of your dataset."
        )
    train = np.setdiff1d(np.arange(n_samples), val)
    return train.astype(np.int64), np.sort(val).astype(np.int64)


class _MLPBase:
    """What MLPClassifier and MLPRegressor share: parameters, input checks, the
    training loop, the fitted attributes. See the module docstring."""

    _estimator_type: str
    n_features_in_: int
    n_outputs_: int
    out_activation_: str
    model_: Sequential
    t_: int
    loss_curve_: list[float]
    best_loss_: float | None
    validation_scores_: list[float] | None
    best_validation_score_: float | None
    _no_improvement_count: int

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | np.random.Generator | None = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        dtype: str = "float32",
        dropout: float = 0.0,
        n_threads: int | None = None,
        backend: str = "cython",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.dropout = dropout
        self.n_threads = n_threads
        self.backend = backend

    # --- scikit-learn's parameter protocol --------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters.values()
        return sorted(p.name for p in params if p.name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters as a dict (deep is accepted for scikit-learn;
        no parameter is itself an estimator)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> _MLPBase:
        """Set constructor parameters by name; returns self. Takes effect at the next
        fit (a fitted model predicts as it was fitted)."""
        valid = self._param_names()
        for name in params:
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid}."
                )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = []
        for name in self._param_names():
            value, default = getattr(self, name), defaults[name]
            same = value is default or (type(value) is type(default) and value == default)
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        # Called by scikit-learn >= 1.6 only, so scikit-learn is importable here.
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=True),
            input_tags=InputTags(two_d_array=True, allow_nan=False, sparse=False),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # --- fitted attributes in scikit-learn's layout ----------------------------------

    def _dense_layers(self) -> list[Dense]:
        return [layer for layer in self.model_.layers if isinstance(layer, Dense)]

    @property
    def coefs_(self) -> list[NDArray[np.floating]]:
        """Weight matrices, one per layer, of shapes (n_in, n_out): a copy."""
        self._check_fitted()
        return [np.array(layer.W) for layer in self._dense_layers()]

    @property
    def intercepts_(self) -> list[NDArray[np.floating]]:
        """Bias vectors, one per layer, of shapes (n_out,): a copy."""
        self._check_fitted()
        return [np.array(layer.b) for layer in self._dense_layers()]

    @property
    def n_layers_(self) -> int:
        """Layers counted as scikit-learn does: input, hidden layers and output."""
        self._check_fitted()
        return len(self._dense_layers()) + 1

    # --- data -------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise _sklearn_class("NotFittedError")(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _check_feature_names(self, X: Any, reset: bool) -> NDArray[np.object_] | None:
        """The column names of X, checked against feature_names_in_ unless reset
        (scikit-learn's rule and wording: other names or order raise, names on one
        side only warn)."""
        names = _feature_names(X)
        if reset:
            return names
        fitted = getattr(self, "feature_names_in_", None)
        cls = type(self).__name__
        if names is None and fitted is None:
            return None
        if fitted is None:
            warnings.warn(
                f"X has feature names, but {cls} was fitted without feature names",
                UserWarning,
                stacklevel=4,
            )
            return names
        if names is None:
            warnings.warn(
                f"X does not have valid feature names, but {cls} was fitted with feature names",
                UserWarning,
                stacklevel=4,
            )
            return None
        if len(names) == len(fitted) and (names == fitted).all():
            return names
        unexpected = sorted(set(names) - set(fitted))
        missing = sorted(set(fitted) - set(names))
        message = "The feature names should match those that were passed during fit.\n"
        if unexpected:
            message += "Feature names unseen at fit time:\n" + _listed(unexpected)
        if missing:
            message += "Feature names seen at fit time, yet now missing:\n" + _listed(missing)
        if not unexpected and not missing:
            message += "Feature names must be in the same order as they were in fit.\n"
        raise ValueError(message)

    def _features(
        self, X: Any, reset: bool, dtype: np.dtype[Any] | None = None
    ) -> tuple[np.ndarray, NDArray[np.object_] | None]:
        """(X as a (n_samples, n_features) array of dtype, its feature names). reset
        (a first fit) takes n_features from X; otherwise X is checked against the fit."""
        names = self._check_feature_names(X, reset)
        arr = _as_array(X, "X")
        if arr.ndim != 2:
            raise ValueError(
                f"Expected a 2-D X (n_samples, n_features), got shape {arr.shape}. "
                "Reshape your data either using array.reshape(-1, 1) if your data has a "
                "single feature or array.reshape(1, -1) if it contains a single sample."
            )
        if arr.shape[1] == 0:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 "
                "is required."
            )
        if arr.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum of 1 "
                "is required."
            )
        if not reset and arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {arr.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        if dtype is None:
            dtype = self.model_.dtype
        try:
            return as_features(arr, dtype), names
        except ValueError as exc:
            raise ValueError(f"Input X: {exc}") from None

    _numeric_targets = True  # whether y must hold numbers (labels need not)

    def _targets_array(self, y: Any, n_samples: int) -> np.ndarray:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        try:
            arr = _as_array(y, "y", numeric=self._numeric_targets)
        except TypeError as exc:  # y of strings for a regression: a bad value
            raise ValueError(str(exc)) from None
        if arr.ndim == 0 or len(arr) != n_samples:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: X has "
                f"{n_samples}, y has {len(arr) if arr.ndim else 0}; pass one target per row"
            )
        if arr.ndim == 2 and arr.shape[1] == 1:
            _column_vector_warning(n_samples)
            arr = arr.ravel()
        return arr

    # --- training ---------------------------------------------------------------------

    def _new_model(
        self,
        settings: _Settings,
        rng: np.random.Generator,
        n_features: int,
        n_outputs: int,
        out_activation: str,
    ) -> Sequential:
        layers: list[Layer] = []
        for units in settings.hidden_layer_sizes:
            layers.append(
                Dense(
                    units,
                    activation=_HIDDEN_ACTIVATIONS[settings.activation],
                    kernel_initializer="glorot_uniform",
                )
            )
            if settings.dropout:
                layers.append(Dropout(settings.dropout))
        loss, output = _OUTPUTS[out_activation]
        layers.append(Dense(n_outputs, activation=output, kernel_initializer="glorot_uniform"))
        model = Sequential(
            layers,
            loss=loss,
            optimizer=self._optimizer(settings, settings.learning_rate_init),
            dtype=settings.dtype,
            seed=int(rng.integers(2**31 - 1)),
            backend=settings.backend,
            n_threads=settings.n_threads,
        )
        model.build(n_features)
        return model

    @staticmethod
    def _optimizer(settings: _Settings, lr: float) -> Optimizer:
        return _SOLVERS[settings.solver].build(settings, lr)

    def _fit(
        self,
        X: Any,
        y: Any,
        sample_weight: ArrayLike | None,
        incremental: bool,
        classes: ArrayLike | None = None,
    ) -> _MLPBase:
        """fit (incremental False) and partial_fit (True): everything is checked and
        trained on the side, and the estimator changes only once training succeeded."""
        settings = _Settings(self)
        if incremental and settings.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "model_") or not (settings.warm_start or incremental)
        dtype = settings.dtype if first_pass else self.model_.dtype
        X_arr, names = self._features(X, reset=first_pass, dtype=dtype)
        weights = _sample_weight(sample_weight, len(X_arr))
        targets, state = self._encode_targets(
            self._targets_array(y, len(X_arr)), first_pass, incremental, classes, weights
        )
        rng = _generator(settings.random_state)
        if first_pass:
            model = self._new_model(
                settings, rng, X_arr.shape[1], state["n_outputs_"], state["out_activation_"]
            )
            state.update(
                n_features_in_=X_arr.shape[1],
                t_=0,
                loss_curve_=[],
                _no_improvement_count=0,
                best_loss_=None if settings.early_stopping else math.inf,
                validation_scores_=[] if settings.early_stopping else None,
                best_validation_score_=-math.inf if settings.early_stopping else None,
            )
            if names is not None:
                state["feature_names_in_"] = names
        else:
            self._check_same_layers(settings, state["n_outputs_"])
            model = self.model_ if incremental else copy.deepcopy(self.model_)
            if not incremental:  # a new fit starts a new optimiser, as scikit-learn
                model.optimizer = self._optimizer(settings, settings.learning_rate_init)
            state.update(
                t_=self.t_,
                loss_curve_=list(self.loss_curve_),
                _no_improvement_count=self._no_improvement_count,
                best_loss_=self.best_loss_,
                validation_scores_=None
                if self.validation_scores_ is None
                else list(self.validation_scores_),
                best_validation_score_=self.best_validation_score_,
            )
        # partial_fit trains the fitted model itself: a failure puts it back as it was
        checkpoint = model._checkpoint() if incremental else None
        rates = (model.optimizer.lr, model.optimizer.weight_decay)
        try:
            state.update(
                self._train(model, settings, rng, X_arr, targets, weights, incremental, state)
            )
        except BaseException:
            if checkpoint is not None:
                model._restore(checkpoint)
                model.optimizer.lr, model.optimizer.weight_decay = rates
            raise
        if first_pass and names is None:
            self.__dict__.pop("feature_names_in_", None)
        self.__dict__.update(state)
        self.model_ = model
        return self

    def _check_same_layers(self, settings: _Settings, n_outputs: int) -> None:
        """warm_start and partial_fit go on with the fitted network: its layers must be
        those the parameters describe now."""
        hidden = self._dense_layers()[:-1]
        fitted = (tuple(layer.units for layer in hidden), self.n_outputs_)
        wanted = (settings.hidden_layer_sizes, n_outputs)
        if fitted != wanted:
            raise ValueError(
                f"warm_start and partial_fit continue the fitted network, whose hidden "
                f"layers are {fitted[0]} with {fitted[1]} outputs, but "
                f"hidden_layer_sizes is now {wanted[0]} with {wanted[1]} "
                "outputs; set warm_start=False (or call fit) to train a new network"
            )
        activation = _HIDDEN_ACTIVATIONS[settings.activation]
        if hidden and hidden[0].activation.name != activation:
            raise ValueError(
                f"warm_start and partial_fit continue the fitted network, whose hidden "
                f"activation is {hidden[0].activation.name!r}, but activation is now "
                f"{settings.activation!r}; set warm_start=False (or call fit) to train a "
                "new network"
            )

    def _train(
        self,
        model: Sequential,
        settings: _Settings,
        rng: np.random.Generator,
        X: np.ndarray,
        y: np.ndarray,
        weights: NDArray[np.float64] | None,
        incremental: bool,
        state: dict[str, Any],
    ) -> dict[str, Any]:
        """Epochs of training on model as scikit-learn's stochastic solvers run them;
        returns the attributes that change (n_iter_, t_, loss_, the curves, ...)."""
        solver = _SOLVERS[settings.solver]
        X_val = y_val = w_val = None
        if settings.early_stopping:
            train, val = _validation_split(
                rng, len(X), settings.validation_fraction, self._strata(y)
            )
            X_val, y_val = X[val], y[val]
            w_val = None if weights is None else weights[val]
            X, y = X[train], y[train]
            weights = None if weights is None else weights[train]
        n_samples = len(X)
        if settings.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if settings.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going "
                    "to be clipped",
                    UserWarning,
                    stacklevel=4,
                )
            batch_size = min(settings.batch_size, n_samples)
        alpha = settings.alpha if solver.coupled_l2 else None
        best_weights = None
        n_iter, t = 0, state["t_"]
        converged = False
        epochs = 1 if incremental else settings.max_iter
        for _ in range(epochs):
            order = rng.permutation(n_samples) if settings.shuffle else np.arange(n_samples)
            try:
                loss = _epoch(
                    model,
                    X[order],
                    y[order],
                    None if weights is None else weights[order],
                    batch_size,
                    alpha,
                )
            except FloatingPointError:
                raise ValueError(
                    "Solver produced non-finite parameter weights. The input data may "
                    "contain large values and need to be preprocessed (or lower "
                    "learning_rate_init)."
                ) from None
            n_iter += 1
            t += n_samples
            state["loss_"] = loss
            state["loss_curve_"].append(loss)
            if settings.verbose:
                print(f"Iteration {n_iter}, loss = {loss:.8f}")
            if X_val is not None and y_val is not None:
                score = self._score_arrays(model, X_val, y_val, w_val)
                state["validation_scores_"].append(score)
                if settings.verbose:
                    print(f"Validation score: {score:f}")
                improved = score >= state["best_validation_score_"] + settings.tol
                if score > state["best_validation_score_"]:
                    state["best_validation_score_"] = score
                    best_weights = model.get_weights()
            else:
                improved = loss <= state["best_loss_"] - settings.tol
                state["best_loss_"] = min(state["best_loss_"], loss)
            state["_no_improvement_count"] = 0 if improved else state["_no_improvement_count"] + 1
            if solver.schedules and settings.learning_rate == "invscaling":
                model.optimizer.lr = settings.learning_rate_init / (t + 1) ** settings.power_t
            if state["_no_improvement_count"] > settings.n_iter_no_change:
                lr = model.optimizer.lr
                what = "Validation score" if settings.early_stopping else "Training loss"
                message = (
                    f"{what} did not improve more than tol={settings.tol:f} for "
                    f"{settings.n_iter_no_change:g} consecutive epochs."
                )
                adaptive = solver.schedules and settings.learning_rate == "adaptive"
                if adaptive and lr > _SMALLEST_ADAPTIVE_LR:
                    model.optimizer.lr = lr / 5.0
                    state["_no_improvement_count"] = 0
                    if settings.verbose:
                        print(f"{message} Setting learning rate to {lr / 5.0:f}")
                else:
                    converged = True
                    if settings.verbose:
                        small = " Learning rate too small." if adaptive else ""
                        print(f"{message}{small} Stopping.")
                    break
        if not incremental and not converged and n_iter == settings.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({settings.max_iter}) reached "
                "and the optimization hasn't converged yet.",
                _sklearn_class("ConvergenceWarning"),
                stacklevel=4,
            )
        if best_weights is not None:
            model.set_weights(best_weights)
        return {"n_iter_": n_iter, "t_": t}

    def _strata(self, y: np.ndarray) -> np.ndarray | None:
        return None

    def _score_arrays(
        self,
        model: Sequential,
        X: np.ndarray,
        y: np.ndarray,
        weights: NDArray[np.float64] | None,
    ) -> float:
        raise NotImplementedError

    def _encode_targets(
        self,
        y: np.ndarray,
        first_pass: bool,
        incremental: bool,
        classes: ArrayLike | None,
        weights: NDArray[np.float64] | None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """(training targets for fastbp, fitted attributes they set)."""
        raise NotImplementedError

    def _model_outputs(self, X: Any) -> NDArray[np.float64]:
        self._check_fitted()
        X_arr, _ = self._features(X, reset=False)
        return self.model_.predict(X_arr).astype(np.float64)


def _r2(y_true: np.ndarray, y_pred: np.ndarray, weights: ArrayLike | None) -> float:
    """R^2 averaged over the targets with equal weight (1.0 is perfect, 0.0 is the
    mean); a constant target scores 1.0 when predicted exactly, else 0.0."""
    y_true = y_true.reshape(len(y_true), -1).astype(np.float64)
    y_pred = y_pred.reshape(len(y_pred), -1).astype(np.float64)
    w = np.ones(len(y_true)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w[:, None]
    residual = (w * (y_true - y_pred) ** 2).sum(axis=0)
    mean = (w * y_true).sum(axis=0) / w.sum()
    total = (w * (y_true - mean) ** 2).sum(axis=0)
    constant = total == 0
    r2 = np.where(
        constant, (residual == 0).astype(float), 1 - residual / np.where(constant, 1.0, total)
    )
    return float(r2.mean())


class MLPClassifier(_MLPBase):
    """A multilayer perceptron classifier with scikit-learn's parameters, trained by
    fastbp (see the module docstring for the parameters).

    Two classes: one sigmoid output trained on binary cross-entropy (scikit-learn's
    "logistic" output); more: one softmax output per class on cross-entropy. Labels
    may be any sortable values (ints, strings, ...). A 2-D y of 0s and 1s (n_samples,
    n_labels) is multi-label: one sigmoid output per label, predict returns such a
    matrix and predict_proba each label's probability.

    Attributes after fit
    --------------------
    classes_ : ndarray of shape (n_classes,), the sorted labels.
    loss_ : float, the last epoch's mean loss (cross-entropy plus the L2 term).
    best_loss_ : float, or None with early_stopping.
    loss_curve_ : list of float, loss_ per epoch.
    validation_scores_ : list of float (accuracy per epoch), or None without early_stopping.
    best_validation_score_ : float, or None without early_stopping.
    t_ : int, training samples seen; n_iter_ : int, epochs run by the last call.
    coefs_ : list of ndarray of shapes (n_in, n_out); intercepts_ : list of (n_out,).
    n_features_in_, feature_names_in_ (DataFrame input with string columns only),
    n_layers_, n_outputs_, out_activation_ ("logistic" or "softmax").
    model_ : fastbp.Sequential, the trained network.
    """

    _estimator_type = "classifier"  # what scikit-learn < 1.6 looks for
    _numeric_targets = False
    classes_: np.ndarray

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.classifier_tags = ClassifierTags(multi_class=True, multi_label=True)
        return tags

    def _strata(self, y: np.ndarray) -> np.ndarray | None:
        if y.ndim == 2 and y.shape[1] > 1:
            return None  # multi-label rows: no strata
        return y.reshape(len(y), -1)[:, 0]  # class indices, or the 0/1 column

    def _encode_targets(
        self,
        y: np.ndarray,
        first_pass: bool,
        incremental: bool,
        classes: ArrayLike | None,
        weights: NDArray[np.float64] | None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if y.ndim == 2:
            return self._encode_multilabel(y, first_pass, incremental, classes)
        if y.ndim != 1:
            raise ValueError(
                f"y must be 1-D (n_samples,) or a 2-D label indicator matrix, got shape {y.shape}"
            )
        if np.issubdtype(y.dtype, np.floating):
            if not np.isfinite(y).all():
                raise ValueError("Input y contains NaN or infinity.")
            if not np.all(y == np.round(y)):
                raise ValueError(
                    "Unknown label type: continuous. MLPClassifier needs class labels; "
                    "for continuous targets use MLPRegressor"
                )
        try:
            seen = np.unique(y)
        except TypeError:
            raise ValueError(
                "Mix of label input types (string and number): y must hold labels of one kind"
            ) from None
        if incremental and first_pass:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            known = np.unique(np.asarray(classes))
        elif incremental:
            known = self.classes_
            if classes is not None and not np.array_equal(np.unique(classes), known):
                raise ValueError(
                    f"`classes={np.asarray(classes)!r}` is not the same as on last call to "
                    f"partial_fit, was: {known!r}"
                )
        elif first_pass:
            known = seen
        else:  # warm start
            known = self.classes_
            if set(seen) != set(known):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {known}, `y` has {seen}"
                )
        unknown = np.setdiff1d(seen, known)
        if len(unknown):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has {known}. "
                f"'y' has {seen}."
            )
        if len(known) < 2:
            raise ValueError(
                f"MLPClassifier needs at least 2 classes; y holds only one class: {known[0]!r}"
            )
        indices = np.searchsorted(known, y)
        n_outputs = 1 if len(known) == 2 else len(known)
        targets = (
            indices.astype(np.float64).reshape(-1, 1)
            if n_outputs == 1
            else indices.astype(np.int64)
        )
        state: dict[str, Any] = {
            "classes_": known,
            "n_outputs_": n_outputs,
            "out_activation_": "logistic" if n_outputs == 1 else "softmax",
        }
        return targets, state

    def _encode_multilabel(
        self, y: np.ndarray, first_pass: bool, incremental: bool, classes: ArrayLike | None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A label indicator matrix (n_samples, n_labels) of 0/1: one sigmoid output
        per label, classes_ = arange(n_labels), as scikit-learn."""
        if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            raise ValueError(
                "A 2-D y must be a label indicator matrix of 0s and 1s (multi-label); "
                "multiclass-multioutput targets are not supported"
            )
        if incremental and first_pass and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        state: dict[str, Any] = {
            "classes_": np.arange(y.shape[1]),
            "n_outputs_": y.shape[1],
            "out_activation_": "logistic",
        }
        return y.astype(np.float64), state

    @staticmethod
    def _proba(model: Sequential, X: np.ndarray) -> NDArray[np.float64]:
        """Probabilities (n_samples, n_classes), or (n_samples, n_labels) of each label
        for a multi-label model (its rows need not sum to 1)."""
        proba = model.predict_proba(X).astype(np.float64)
        if model.loss.name == "binary_cross_entropy":
            return np.hstack([1.0 - proba, proba]) if proba.shape[1] == 1 else proba
        return proba / proba.sum(axis=1, keepdims=True)

    def _is_multilabel(self) -> bool:
        return self.out_activation_ == "logistic" and self.n_outputs_ > 1

    @staticmethod
    def _subset_accuracy(
        predicted: np.ndarray, y: np.ndarray, weights: NDArray[np.float64] | None
    ) -> float:
        """The (weighted) share of rows predicted exactly: every label right."""
        correct = predicted == y if predicted.ndim == 1 else (predicted == y).all(axis=1)
        return float(np.average(correct, weights=weights))

    def _score_arrays(
        self,
        model: Sequential,
        X: np.ndarray,
        y: np.ndarray,
        weights: NDArray[np.float64] | None,
    ) -> float:
        proba = self._proba(model, X)
        if y.ndim == 2 and y.shape[1] > 1:  # multi-label
            return self._subset_accuracy((proba > 0.5).astype(y.dtype), y, weights)
        return self._subset_accuracy(proba.argmax(axis=1), y.reshape(len(y), -1)[:, 0], weights)

    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> MLPClassifier:
        """Train on X (n_samples, n_features) and labels y (n_samples,), each row
        weighted by sample_weight (n_samples,) if given; returns self.

        A new network, unless warm_start is set and the estimator is fitted."""
        self._fit(X, y, sample_weight, incremental=False)
        return self

    def partial_fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        classes: ArrayLike | None = None,
    ) -> MLPClassifier:
        """One epoch over (X, y); returns self. classes (every label of the whole
        data) is required on the first call; later calls may pass only some of them."""
        self._fit(X, y, sample_weight, incremental=True, classes=classes)
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities, float64 of shape (n_samples, n_classes), columns in
        the order of classes_; each row sums to 1."""
        self._check_fitted()
        X_arr, _ = self._features(X, reset=False)
        return self._proba(self.model_, X_arr)

    def predict_log_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """The logarithm of predict_proba(X), shape (n_samples, n_classes)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable label per row, shape (n_samples,), values from classes_."""
        proba = self.predict_proba(X)
        if self._is_multilabel():
            return (proba > 0.5).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Accuracy of predict(X) against y (n_samples,), weighted by sample_weight;
        for multi-label y, the share of rows with every label right."""
        y_arr = np.asarray(y)
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = y_arr.ravel()
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        return self._subset_accuracy(self.predict(X), y_arr, weights)


class MLPRegressor(_MLPBase):
    """A multilayer perceptron regressor with scikit-learn's parameters, trained by
    fastbp on the squared error (see the module docstring for the parameters).

    The network is the hidden layers, then one linear output per target. The targets
    are standardised inside (each output's weighted mean removed and divided by its
    standard deviation, 1 for a constant target; predict undoes it), so that the
    defaults fit targets of any scale. The scaling is taken on the first fit (or
    first partial_fit) and kept by warm_start and partial_fit.

    Attributes after fit
    --------------------
    loss_ : float, the last epoch's mean loss on the standardised targets: half the
        squared error (summed over the outputs, where scikit-learn averages them)
        plus the L2 term.
    best_loss_, loss_curve_, validation_scores_ (R^2 per epoch),
    best_validation_score_, t_, n_iter_, coefs_, intercepts_, n_features_in_,
    feature_names_in_, n_layers_, n_outputs_, out_activation_ ("identity"):
    as MLPClassifier's.
    model_ : fastbp.Sequential, the network trained on the standardised targets.
    """

    _estimator_type = "regressor"  # what scikit-learn < 1.6 looks for
    _y_mean: NDArray[np.float64]
    _y_scale: NDArray[np.float64]

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | np.random.Generator | None = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        dtype: str = "float32",
        dropout: float = 0.0,
        n_threads: int | None = None,
        backend: str = "cython",
    ) -> None:
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dtype=dtype,
            dropout=dropout,
            n_threads=n_threads,
            backend=backend,
        )
        self.loss = loss

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import RegressorTags

        tags = super().__sklearn_tags__()
        tags.regressor_tags = RegressorTags()
        tags.target_tags.multi_output = True
        return tags

    def _encode_targets(
        self,
        y: np.ndarray,
        first_pass: bool,
        incremental: bool,
        classes: ArrayLike | None,
        weights: NDArray[np.float64] | None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if y.dtype.kind not in "biuf":
            raise ValueError(f"y must hold numbers for a regression, got dtype {y.dtype}")
        y64 = y.astype(np.float64).reshape(len(y), -1)
        if not np.isfinite(y64).all():
            raise ValueError("Input y contains NaN or infinity.")
        if first_pass:
            mean = np.average(y64, axis=0, weights=weights)
            spread = np.sqrt(np.average((y64 - mean) ** 2, axis=0, weights=weights))
            scale = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
            state: dict[str, Any] = {"_y_mean": mean, "_y_scale": scale}
        else:
            mean, scale = self._y_mean, self._y_scale
            state = {}
        state["n_outputs_"] = y64.shape[1]
        state["out_activation_"] = "identity"
        return (y64 - mean) / scale, state

    def _score_arrays(
        self,
        model: Sequential,
        X: np.ndarray,
        y: np.ndarray,
        weights: NDArray[np.float64] | None,
    ) -> float:
        # R^2 of each output does not change when the output is rescaled
        return _r2(y, model.predict(X), weights)

    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> MLPRegressor:
        """Train on X (n_samples, n_features) and targets y of shape (n_samples,) or
        (n_samples, n_targets), each row weighted by sample_weight (n_samples,) if
        given; returns self. A new network, unless warm_start is set and the
        estimator is fitted."""
        self._fit(X, y, sample_weight, incremental=False)
        return self

    def partial_fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> MLPRegressor:
        """One epoch over (X, y); returns self."""
        self._fit(X, y, sample_weight, incremental=True)
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Predicted targets, float64 of shape (n_samples,) if y was 1-D or a single
        column in fit, else (n_samples, n_targets)."""
        out = self._model_outputs(X) * self._y_scale + self._y_mean
        return out[:, 0] if out.shape[1] == 1 else out

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """R^2 of predict(X) against y, averaged over the targets with equal weight
        (1.0 is perfect, 0.0 is predicting the mean)."""
        y_true = np.asarray(y, dtype=np.float64)
        return _r2(y_true, self.predict(X), sample_weight)
