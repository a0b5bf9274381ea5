"""scikit-learn-style estimators around fastbp.Sequential.

    from fastbp.sklearn import MLPClassifier, MLPRegressor

    clf = MLPClassifier(hidden_layer_sizes=(64,), epochs=20, random_state=0).fit(X, y)
    clf.predict(X_new)            # labels from clf.classes_
    clf.predict_proba(X_new)      # (n_samples, n_classes)

The estimators follow scikit-learn's conventions (constructor parameters stored
unchanged, get_params/set_params, fitted attributes ending in "_", fit returns self),
so they work with clone, Pipeline, cross_val_score and GridSearchCV. This module does
not import scikit-learn: it imports and runs without it, and reaches for it only
when scikit-learn itself asks for the estimator's tags, or to raise scikit-learn's own
NotFittedError and DataConversionWarning when it is installed.

Parameters shared by both estimators
------------------------------------
hidden_layer_sizes : int or sequence of int, default (100,)
    Units of each hidden layer; () gives a model without hidden layers.
activation : str, default "relu"
    Activation of the hidden layers (see fastbp.activations).
learning_rate : float, default 0.01
    SGD step size (fastbp.SGD's lr). scikit-learn's own MLP calls this number
    learning_rate_init and uses learning_rate for the schedule; fastbp has no
    schedule, so the number takes the shorter name.
weight_decay : float, default 0.0
    L2 strength: adds weight_decay/2 * sum ||W||^2 to the loss (biases not decayed).
batch_size : int or None, default 32
    Mini-batch size; None trains on the full batch, values above n_samples are
    clamped to n_samples.
epochs : int, default 50
    Passes over the training data.
dtype : "float32" or "float64", default "float32"
    Precision of the weights and of the arithmetic.
backend : "cython" or "numpy", default "cython"
random_state : None, int, numpy RandomState or Generator, default None
    Seeds initialisation and shuffling. An int gives the same weights on every fit;
    a RandomState or Generator is drawn from once per fit to get the seed; None
    gives a fresh seed per fit.
verbose : int, default 0
    Nonzero prints fastbp's progress line per epoch.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fastbp.layers import Dense
from fastbp.model import Sequential
from fastbp.optimizers import SGD
from fastbp.validation import as_features, check_int, check_real, check_seed, optional

if TYPE_CHECKING:
    from fastbp.callbacks import History

__all__ = ["MLPClassifier", "MLPRegressor", "NotFittedError"]  # noqa: F822 (module __getattr__)


class _FallbackNotFittedError(ValueError, AttributeError):
    """Raised by predict and friends before fit when scikit-learn is not installed;
    like scikit-learn's NotFittedError it is both a ValueError and an AttributeError."""


def _not_fitted_error_class() -> type[Exception]:
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:
        return _FallbackNotFittedError
    return NotFittedError


def __getattr__(name: str) -> Any:
    # fastbp.sklearn.NotFittedError is scikit-learn's class when it is installed, so
    # that the name catches what the estimators raise either way.
    if name == "NotFittedError":
        return _not_fitted_error_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _column_vector_warning(n_samples: int) -> None:
    category: type[Warning] = UserWarning
    try:
        from sklearn.exceptions import DataConversionWarning

        category = DataConversionWarning
    except ImportError:
        pass
    warnings.warn(
        "A column-vector y was passed when a 1d array was expected; y was "
        f"reshaped to ({n_samples},)",
        category,
        stacklevel=3,
    )


def _seed(random_state: Any) -> int | None:
    """An int seed (or None) for fastbp.Sequential from a random_state parameter."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return check_seed("random_state", random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    raise ValueError(
        "random_state must be None, an int, a numpy RandomState or a numpy "
        f"Generator, got {random_state!r}"
    )


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


def _checked_params(estimator: _MLPBase) -> dict[str, Any]:
    """The constructor parameters checked (scikit-learn checks them at fit, not in
    __init__), each error naming the estimator's parameter."""
    return {
        "units": _hidden_sizes(estimator.hidden_layer_sizes),
        "learning_rate": check_real("learning_rate", estimator.learning_rate, low=0, low_open=True),
        "weight_decay": check_real("weight_decay", estimator.weight_decay, low=0),
        "batch_size": optional(check_int, "batch_size", estimator.batch_size, low=1),
        "epochs": check_int("epochs", estimator.epochs, low=0),
    }


class _MLPBase:
    """What MLPClassifier and MLPRegressor share: parameters, input checks, the
    model, pickling. See the module docstring for the parameters."""

    _loss: str  # the loss of each estimator (set by the subclasses)
    _estimator_type: str
    n_features_in_: int
    model_: Sequential
    history_: History

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        learning_rate: float = 0.01,
        weight_decay: float = 0.0,
        batch_size: int | None = 32,
        epochs: int = 50,
        dtype: str = "float32",
        backend: str = "cython",
        random_state: int | np.random.RandomState | np.random.Generator | None = None,
        verbose: int = 0,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.dtype = dtype
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose

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
        """Set constructor parameters by name; returns self. Takes effect at the next fit."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for estimator "
                    f"{type(self).__name__}; valid parameters are: {valid}"
                )
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

    # --- data and model --------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise _not_fitted_error_class()(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _features(self, X: ArrayLike, reset: bool) -> np.ndarray:
        """X as a (n_samples, n_features) array of the estimator's dtype; on fit (reset)
        records n_features_in_, afterwards checks X against it."""
        if hasattr(X, "toarray") or hasattr(X, "tocsr"):
            raise TypeError(
                f"{type(self).__name__} does not take sparse input; convert X "
                "to a dense array with X.toarray()"
            )
        arr = np.asarray(X)
        if arr.dtype == object:
            arr = arr.astype(np.float64)  # e.g. numbers in an object array; raises otherwise
        # The messages below are scikit-learn's, which its own checks look for.
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise ValueError(f"Complex data not supported: X has dtype {arr.dtype}")
        if arr.ndim == 1:
            raise ValueError(
                f"Expected a 2-D X (n_samples, n_features), got shape {arr.shape}. "
                "Reshape your data: X.reshape(-1, 1) for a single feature, "
                "X.reshape(1, -1) for a single sample"
            )
        if arr.ndim == 2 and arr.shape[1] == 0:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={arr.shape}) while a "
                "minimum of 1 is required."
            )
        if not reset and arr.ndim == 2 and arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {arr.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        arr = as_features(arr, self.dtype)
        if reset:
            self.n_features_in_ = arr.shape[1]
        return arr

    def _samples(self, y: ArrayLike | None, n_samples: int) -> np.ndarray:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        arr = np.asarray(y)
        if arr.ndim == 0 or len(arr) != n_samples:
            raise ValueError(
                f"y has {arr.shape[0] if arr.ndim else 0} samples but X has "
                f"{n_samples}; pass one target per row of X"
            )
        return arr

    def _fit_model(self, X: np.ndarray, y: np.ndarray, n_outputs: int) -> None:
        """A fresh fastbp.Sequential trained on (X, y); sets model_ and history_."""
        params = _checked_params(self)
        layers = [Dense(n, activation=self.activation) for n in params["units"]]
        layers.append(Dense(n_outputs))
        model = Sequential(
            layers,
            loss=self._loss,
            optimizer=SGD(lr=params["learning_rate"], weight_decay=params["weight_decay"]),
            dtype=self.dtype,
            seed=_seed(self.random_state),
            backend=self.backend,
        )
        model.build(X.shape[1])
        history = model.fit(
            X,
            y,
            epochs=params["epochs"],
            batch_size=params["batch_size"],
            verbose=self.verbose,
        )
        self.model_ = model
        self.history_ = history

    # --- pickling: the compiled engine does not pickle, so the model travels as its
    # configuration and weights and is rebuilt on load.


class MLPClassifier(_MLPBase):
    """A multilayer perceptron classifier trained by fastbp's SGD.

    The network is the hidden Dense layers, then one linear output unit per class
    trained with "softmax_cross_entropy" (for two classes too: two outputs, not one
    sigmoid). Labels may be any sortable values (ints, strings, ...). The parameters
    are described in the module docstring.

    Attributes after fit
    --------------------
    classes_ : ndarray of shape (n_classes,), the sorted labels; output unit k is classes_[k].
    n_features_in_ : int, the number of features seen in fit.
    model_ : fastbp.Sequential, the trained network.
    history_ : fastbp.History, the loss and accuracy per epoch (history_.history).
    """

    _estimator_type = "classifier"  # what scikit-learn < 1.6 looks for
    _loss = "softmax_cross_entropy"

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.classifier_tags = ClassifierTags(multi_class=True, multi_label=False)
        return tags

    def fit(self, X: ArrayLike, y: ArrayLike) -> MLPClassifier:
        """Train a new network on X (n_samples, n_features) and labels y (n_samples,);
        returns self."""
        X = self._features(X, reset=True)
        y = self._samples(y, len(X))
        if y.ndim == 2 and y.shape[1] == 1:
            _column_vector_warning(len(y))
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(
                f"y must be 1-D (n_samples,), got shape {y.shape}; "
                "multi-output and multi-label targets are not supported"
            )
        if np.issubdtype(y.dtype, np.floating):
            if not np.isfinite(y).all():
                raise ValueError("y contains NaN or infinite values")
            if not np.all(y == np.round(y)):
                raise ValueError(
                    "Unknown label type: continuous. MLPClassifier needs class "
                    "labels; for continuous targets use MLPRegressor"
                )
        self.classes_, indices = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"MLPClassifier needs samples of at least 2 classes, y holds "
                f"only one class: {self.classes_[0]!r}"
            )
        self._fit_model(X, indices.astype(np.int64), len(self.classes_))
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities, float64 of shape (n_samples, n_classes), columns in
        the order of classes_; each row sums to 1."""
        self._check_fitted()
        proba = self.model_.predict_proba(self._features(X, reset=False)).astype(np.float64)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable label per row, shape (n_samples,), values from classes_."""
        self._check_fitted()
        return self.classes_[self.model_.predict(self._features(X, reset=False))]

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Accuracy of predict(X) against y (n_samples,), weighted by sample_weight."""
        y = np.asarray(y)
        correct = self.predict(X) == (y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y)
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        return float(np.average(correct, weights=weights))


class MLPRegressor(_MLPBase):
    """A multilayer perceptron regressor trained by fastbp's SGD on the "mse" loss.

    The network is the hidden Dense layers, then one linear output per target. The
    targets are not rescaled: standardise them yourself if they are large (plain SGD
    on targets in the hundreds diverges at the default learning rate). The parameters
    are described in the module docstring.

    Attributes after fit
    --------------------
    n_features_in_ : int, the number of features seen in fit.
    n_outputs_ : int, the number of targets (columns of y).
    model_ : fastbp.Sequential, the trained network.
    history_ : fastbp.History, the loss per epoch (history_.history["loss"]).
    """

    _estimator_type = "regressor"  # what scikit-learn < 1.6 looks for
    _loss = "mse"

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import RegressorTags

        tags = super().__sklearn_tags__()
        tags.regressor_tags = RegressorTags()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: ArrayLike, y: ArrayLike) -> MLPRegressor:
        """Train a new network on X (n_samples, n_features) and targets y of shape
        (n_samples,) or (n_samples, n_targets); returns self."""
        X = self._features(X, reset=True)
        y = self._samples(y, len(X))
        if y.dtype == object:
            y = y.astype(np.float64)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        self._y_is_1d = y.ndim == 1
        y = y.reshape(len(y), -1)
        self.n_outputs_ = y.shape[1]
        self._fit_model(X, y, self.n_outputs_)
        return self

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Predicted targets, float64 of shape (n_samples,) if y was 1-D in fit, else
        (n_samples, n_targets)."""
        self._check_fitted()
        out = self.model_.predict(self._features(X, reset=False)).astype(np.float64)
        return out[:, 0] if self._y_is_1d else out

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """R^2 of predict(X) against y, averaged over the targets with equal weight
        (1.0 is perfect, 0.0 is predicting the mean)."""
        y_true = np.asarray(y, dtype=np.float64)
        y_pred = np.asarray(self.predict(X), dtype=np.float64)
        y_true = y_true.reshape(len(y_true), -1)
        y_pred = y_pred.reshape(len(y_pred), -1)
        w = np.ones(len(y_true)) if sample_weight is None else np.asarray(sample_weight, float)
        w = w[:, None]
        residual = (w * (y_true - y_pred) ** 2).sum(axis=0)
        mean = (w * y_true).sum(axis=0) / w.sum()
        total = (w * (y_true - mean) ** 2).sum(axis=0)
        # A constant target scores 1 if predicted exactly, else 0 (as scikit-learn).
        constant = total == 0
        r2 = np.where(
            constant, (residual == 0).astype(float), 1 - residual / np.where(constant, 1.0, total)
        )
        return float(r2.mean())
