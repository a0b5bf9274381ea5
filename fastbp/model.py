"""Sequential: a stack of layers trained by backpropagation.

The model validates input, owns the parameters (through its layers), the random
generator and the optimiser configuration, and hands the math to a backend
(fastbp/backends) through a plan (fastbp/plan.py).
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from fastbp import backends, distributed, frames, losses, optimizers, shuffling, streaming, threads
from fastbp import diagnostics as health
from fastbp import labels as class_labels
from fastbp import layers as layer_types
from fastbp import validation as check
from fastbp.backends.protocol import Backend, BackendFactory
from fastbp.callbacks import Callback, History
from fastbp.concurrency import ReadWriteLock, deferred_interrupts
from fastbp.layers import Dense, Dropout, Layer, Maxout
from fastbp.losses import LossSpec
from fastbp.optimizers import Optimizer
from fastbp.plan import Plan
from fastbp.progress import EpochProgress

DTYPES = {"float32": np.float32, "float64": np.float64}
# fit hands the engine about this much work per call: Ctrl-C and other threads'
# predictions wait at most this long, and a progress line is redrawn as often.
CALL_SECONDS = 0.05


def _dtype(dtype: Any) -> np.dtype[Any]:
    name = np.dtype(dtype).name if dtype in (np.float32, np.float64) else dtype
    check.check_option("dtype", name, tuple(DTYPES))
    return np.dtype(DTYPES[name])


def _read_only(array: np.ndarray) -> np.ndarray:
    """A view of array, which is the model's own, that cannot be written nor made
    writable again (its base is read-only too)."""
    array.flags.writeable = False
    return array.view()


class LayerList(tuple[Layer, ...]):
    """model.layers: the layers in order, read-only (a built model's layers are
    fixed; add layers with model.add before the first fit/forward)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "model.layers cannot be changed in place; add layers with "
            "model.add(layer) before the model is built, or make a new Sequential"
        )

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = _refuse


class Sequential:
    """A multilayer perceptron: layers applied in order, then a loss.

    Parameters
    ----------
    layers : list of layers
        fastbp.Dense, Maxout, Activation, PReLU and Dropout layers, with at least
        one Dense or Maxout. The first needs input_dim= (Dense, Maxout), unless the
        model is built from the first data it sees.
    loss : str
        "mse" (any output), "softmax_cross_entropy" or "kl_divergence" (the last
        layer outputs logits, or applies a softmax: the loss is computed from the
        logits under it) or "binary_cross_entropy" (the last layer applies a
        sigmoid).
    optimizer : Optimizer or str
        An optimiser (fastbp.SGD, Adam, AdamW, RMSProp, Adagrad) or its name.
    dtype : str
        "float32" (default) or "float64"; inputs are converted to it.
    seed : int or None
        Seeds initialisation and shuffling: same seed, same data, same backend
        gives bit-identical weights.
    backend : str
        "cython" (compiled, default) or "numpy" (reference).
    n_threads : int or None
        At most this many BLAS threads during this model's calls; None (default)
        leaves BLAS at its default, all cores. The setting is process-wide while a
        call runs: calls of several models that overlap run at the smallest of
        their limits, and the last to end restores what the first found.

    Notes
    -----
    What may change after the model is built (each takes effect at the next call):
    optimizer (a new optimiser starts with fresh state; its hyper-parameters, such
    as optimizer.lr or optimizer.momentum, may also be changed in place), loss (to
    another loss the last layer fits), n_threads, epochs_done (where schedules
    are), metadata, stop_training, and the layers' parameter arrays (layer.W =
    array copies into the live weights; set_weights replaces them all). Fixed once
    built, and refused with an error: dtype, the layers (model.layers is
    read-only, a layer's units, activation, rate, pieces cannot change) and
    backend_name. Set by training and read-only: feature_names_in_ (the column
    names of the first DataFrame trained on) and classes_ (the first class labels
    trained on).

    Threads: predict, predict_proba and evaluate may be called from many threads at
    once; they give exactly the single-threaded results and run in parallel. Calls
    that train or keep state (fit, train_step, loss_and_gradients, forward/backward,
    set_weights) take the model for themselves: a second such call from another
    thread waits for the first to finish. Inference waits only while the weights
    are being changed (fit releases them between chunks of about 50 ms). See
    docs/design.md §5.1.

    Examples
    --------
    >>> import fastbp as fb
    >>> model = fb.Sequential(
    ...     [fb.Dense(8, activation="tanh", input_dim=4), fb.Dense(2)],
    ...     loss="softmax_cross_entropy",
    ...     optimizer=fb.SGD(lr=0.5),
    ...     seed=0,
    ... )
    >>> model.weight_names()
    ['W1', 'b1', 'W2', 'b2']
    >>> model.count_params()
    58
    >>> model.dtype
    dtype('float32')
    """

    _plan: Plan  # None until built (see built)
    _backend: Backend  # None until built
    _layers: list[Layer]
    _backend_class: BackendFactory
    _forward_context: tuple[int, int] | None
    _loss: LossSpec
    _optimizer: Optimizer
    _dtype: np.dtype[Any]
    _n_threads: int | None
    _epochs_done: int
    metadata: dict[str, Any]
    stop_training: bool

    def __init__(
        self,
        layers: Iterable[Layer] = (),
        loss: str | LossSpec = "mse",
        optimizer: Optimizer | str | None = None,
        dtype: DTypeLike = "float32",
        seed: int | np.random.SeedSequence | None = None,
        backend: str = "cython",
        n_threads: int | None = None,
    ) -> None:
        self._plan = None  # type: ignore[assignment]
        self._layers = []
        self._train_lock = threading.RLock()  # one training caller at a time
        self._memory = ReadWriteLock()  # inference reads, training writes
        self.loss = loss
        self.optimizer = optimizer
        self.dtype = dtype
        self._backend_name = backend
        self.n_threads = n_threads
        self._backend_class = backends.get(backend)
        self._rng = np.random.default_rng(check.check_seed("seed", seed))
        self._backend = None  # type: ignore[assignment]
        self._forward_context = None  # (thread, rows) of the last forward(), for backward()
        self.metadata = {}  # JSON-ready notes saved with the model
        self._feature_names: NDArray[np.object_] | None = None  # see feature_names_in_
        self._classes: np.ndarray | None = None  # see classes_
        self.epochs_done = 0  # completed epochs: where learning-rate schedules are
        self.stop_training = False  # a callback sets it to end fit after this epoch
        try:
            for layer in layers:
                self.add(layer)
            if self._layers:
                self._check_loss_fits()
                if self._declared_input_dim() is not None:
                    self.build(self._declared_input_dim())
        except BaseException:
            layer_types.release(self._layers, self)
            raise

    # --- attributes: what may change after build (see the class docstring) ----------

    @property
    def layers(self) -> LayerList:
        return LayerList(self._layers)

    @layers.setter
    def layers(self, value: Any) -> NoReturn:
        raise AttributeError(
            "model.layers cannot be replaced; add layers with model.add(layer) "
            "before the model is built, or make a new Sequential"
        )

    @property
    def loss(self) -> LossSpec:
        return self._loss

    @loss.setter
    def loss(self, value: str | LossSpec) -> None:
        """Another loss the last layer fits (training calls in other threads finish
        first); the engine's layout does not depend on it."""
        spec = losses.get(value)
        with self._train_lock:
            if self._layers:
                self._check_loss_fits(spec)
            self._loss = spec

    @property
    def optimizer(self) -> Optimizer:
        return self._optimizer

    @optimizer.setter
    def optimizer(self, value: Optimizer | str | None) -> None:
        """A new optimiser object starts from fresh state (zero moments, and Adam's
        bias correction counted from now); the same object again changes nothing."""
        opt = optimizers.get(value)
        if opt is getattr(self, "_optimizer", None):
            return
        with self._train_lock, self._memory.writing():
            self._optimizer = opt
            self._forward_context = None
            if self.built:
                self._replan_optimizer()

    def _replan_optimizer(self) -> None:
        self._plan.reset_optimizer(self._optimizer.layout)
        self._backend.invalidate()

    def _sync_layout(self) -> None:
        """_sync_optimizer for a built model, taking the arrays for itself."""
        if self.built:
            with self._memory.writing():
                self._sync_optimizer()

    def _sync_optimizer(self) -> None:
        """Before a training call: if the optimiser's layout changed in place (SGD's
        momentum set to or from 0), give it fresh state of the new layout."""
        if self._optimizer.layout != self._plan.optimizer_layout:
            self._replan_optimizer()

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @dtype.setter
    def dtype(self, value: DTypeLike) -> None:
        value = _dtype(value)
        if self.built and value != self._dtype:
            raise AttributeError(
                f"dtype is fixed once the model is built (this one is {self._dtype.name}); "
                f"for {value.name}, build a new model: fb.Sequential.from_config("
                f"{{**model.get_config(), 'dtype': '{value.name}'}}), then "
                "new.set_weights(model.get_weights())"
            )
        self._dtype = value

    @property
    def backend_name(self) -> str:
        return self._backend_name

    @backend_name.setter
    def backend_name(self, value: Any) -> NoReturn:
        raise AttributeError(
            "backend_name is fixed when the model is made; for another "
            "backend use fb.Sequential.from_config(model.get_config(), "
            "backend=...) and set_weights, or fb.load(path, backend=...)"
        )

    @property
    def n_threads(self) -> int | None:
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value: int | None) -> None:
        self._n_threads = threads.check(value)

    @property
    def epochs_done(self) -> int:
        return self._epochs_done

    @epochs_done.setter
    def epochs_done(self, value: int) -> None:
        self._epochs_done = check.non_negative_int("epochs_done", value)

    @property
    def feature_names_in_(self) -> NDArray[np.object_] | None:
        """The column names (ndarray of str, read-only) of the DataFrame the model was
        first trained on, or None (trained on arrays, or not trained yet). Data given
        later is checked against them (docs/design.md §1.1)."""
        return None if self._feature_names is None else _read_only(self._feature_names)

    @feature_names_in_.setter
    def feature_names_in_(self, value: Any) -> NoReturn:
        raise AttributeError(
            "feature_names_in_ is set by the first fit on a DataFrame and cannot be "
            "changed; rename the DataFrame's columns instead, or train a new model"
        )

    @property
    def classes_(self) -> np.ndarray | None:
        """The class labels (read-only ndarray, sorted as np.unique sorts them) of the
        first training data given as labels (strings, objects, a Categorical), or
        None: output k is class classes_[k], and predict returns them
        (docs/design.md §1.1)."""
        return None if self._classes is None else _read_only(self._classes)

    @classes_.setter
    def classes_(self, value: Any) -> NoReturn:
        raise AttributeError(
            "classes_ is set by the first fit given class labels and cannot be "
            "changed; train a new model for other classes"
        )

    # --- construction ---------------------------------------------------------------

    def add(self, layer: Layer) -> None:
        """Append a layer (before the model is built). A layer belongs to one model:
        one that is already in another model is refused (its arrays are that
        model's weights); pass a new layer, or copy.deepcopy(layer)."""
        if self.built:
            raise RuntimeError(
                "the model is already built; add layers before the first "
                "fit/forward, or make a new Sequential"
            )
        if not isinstance(layer, tuple(layer_types.LAYERS.values())):
            raise TypeError(
                f"layers must be one of fastbp.{', fastbp.'.join(layer_types.LAYERS)}; "
                f"got {type(layer).__name__}"
            )
        if any(layer is other for other in self._layers):
            raise ValueError(
                "the same layer object appears twice; create a new layer object "
                "for each place in the model"
            )
        layer_types.claim(layer, self)
        self._layers.append(layer)

    @property
    def built(self) -> bool:
        return self._plan is not None

    def _declared_input_dim(self) -> Any:  # int | None (Any: build() follows a None check)
        """The model's input width as its layers declare it: the input_dim of the
        first layer that has one, if only width-keeping layers come before it."""
        for layer in self.layers:
            if layer.input_dim is not None:
                return layer.input_dim
            if not layer.keeps_width:
                return None
        return None

    def build(self, input_dim: int) -> None:
        """Create every parameter for inputs of input_dim features."""
        input_dim = check.positive_int("input_dim", input_dim)
        with self._train_lock, self._memory.writing():
            self._build(input_dim)

    def _build(self, input_dim: int) -> None:
        if self.built:
            if input_dim != self.input_dim:
                raise ValueError(
                    f"the model is built for {self.input_dim} features, not {input_dim}"
                )
            return
        if not self.layers:
            raise ValueError("the model has no layers; pass layers=[fb.Dense(...), ...]")
        self._check_loss_fits()
        d_in = input_dim
        for number, layer in enumerate(self.layers, start=1):  # check all before building any
            if layer.input_dim is not None and layer.input_dim != d_in:
                raise ValueError(
                    f"layer {number} ({layer!r}) was given input_dim="
                    f"{layer.input_dim} but receives {d_in} features; fix its "
                    "input_dim or leave it out"
                )
            d_in = layer.output_dim(d_in)
        d_in = input_dim
        for layer in self.layers:
            layer.build(d_in, self.dtype, self._rng)
            d_in = layer.output_dim(d_in)
        # drawn only when needed, so that models without dropout keep their streams
        seed = int(self._rng.integers(2**63)) if self._has(Dropout) else 0
        plan = Plan(self.layers, input_dim, self.dtype, self.optimizer.layout, seed)
        self._backend = self._backend_class(plan)
        self._plan = plan

    def _has(self, *kinds: type[Layer]) -> bool:
        return any(isinstance(layer, kinds) for layer in self.layers)

    def _check_loss_fits(self, loss: LossSpec | None = None) -> None:
        """The layers must learn something and end in what the loss (by default the
        model's) expects."""
        loss = self.loss if loss is None else loss
        if not self._has(Dense, Maxout):
            raise ValueError(
                "the model needs at least one Dense or Maxout layer (the layers "
                "with weights); add fastbp.Dense(units)"
            )
        last = self.layers[-1]
        if isinstance(last, Dropout):
            raise ValueError(
                "the last layer cannot be a Dropout: dropping the model's outputs "
                "would corrupt the loss; put the Dropout before a Dense layer"
            )
        allowed, got = loss.output_activations, last.output_activation
        if allowed is not None and got not in allowed:
            if loss.softmax:
                fix = (
                    "the last layer must output logits or apply a softmax: use "
                    "Dense(n_classes) with no activation or activation='softmax' (it ends "
                    f"with {got!r}); the loss works from the logits either way"
                )
            else:
                fix = f"give the last layer activation={allowed[0]!r} (it ends with {got!r})"
            raise ValueError(f"loss {loss.name!r} does not fit the last layer: {fix}")
        if loss.softmax and self.output_dim is not None and self.output_dim < 2:
            raise ValueError(
                f"{loss.name} needs a last layer with one unit per class "
                f"(at least 2), got {self.output_dim}; for two classes with one "
                "unit use binary_cross_entropy and activation='sigmoid'"
            )

    @property
    def input_dim(self) -> int | None:
        return self._plan.input_dim if self.built else None

    @property
    def output_dim(self) -> int | None:
        """Outputs per sample: the units of the last Dense or Maxout layer (the
        layers after it keep the width)."""
        d = None
        for layer in self.layers:
            d = layer.output_dim(d)
        return d

    @property
    def _outputs_softmax(self) -> bool:
        """The last layer applies a softmax (so outputs are probabilities already)."""
        return self.layers[-1].output_activation == "softmax"

    # --- data -----------------------------------------------------------------------

    def _features(self, X: ArrayLike, name: str = "X") -> NDArray[np.floating]:
        """X checked and converted, its feature names (if a DataFrame) checked against
        the ones the model was trained with."""
        return self._named_features(X, name, self._feature_names, fitted=self._names_fixed)[0]

    def _named_features(
        self,
        X: ArrayLike,
        name: str,
        fitted_names: Any,
        fitted: bool = True,
        n_features: int | None = None,
    ) -> tuple[NDArray[np.floating], NDArray[np.object_] | None]:
        """(X converted, its names): names checked against fitted_names when fitted (the
        model has been trained), else kept as they are for the training call to record.
        n_features : the width X must have (default: the model's input width, if built)."""
        width = self.input_dim if n_features is None else n_features
        checked = fitted and frames.is_frame(X)
        if checked:  # the names first: they say more than a count of columns
            frames.check_feature_names(fitted_names, frames.feature_names(X, name), name)
        X, names = check.as_named_features(X, self.dtype, width, name=name)
        if fitted and not checked:
            frames.check_feature_names(fitted_names, names, name)
        return X, names

    @property
    def _names_fixed(self) -> bool:
        """Whether the feature names are settled: recorded by a training call, or the
        model trained (a step taken) on data without names."""
        return self._feature_names is not None or (self.built and int(self._plan.step_count[0]) > 0)

    def _targets(self, y: ArrayLike, n_samples: int, name: str = "y") -> tuple[np.ndarray, int]:
        """(targets, loss code) for the backends, labels encoded with classes_."""
        return self._encoded_targets(y, n_samples, name, self._classes, learn=False)[:2]

    def _encoded_targets(
        self, y: ArrayLike, n_samples: int, name: str, classes: Any, learn: bool
    ) -> tuple[np.ndarray, int, np.ndarray | None]:
        """(targets, loss code, classes). With classes (an ndarray), a classification
        target of one label per sample is encoded as indices into them; without,
        labels that cannot be class indices (strings, objects, categoricals) give
        the classes when learn (a training call), and are refused otherwise.
        Numeric targets without classes are class indices, as before."""
        if not self.layers:
            raise ValueError("the model has no layers")
        given: Any = y
        categorical = frames.is_categorical(given) or (
            frames.is_frame(given)
            and given.shape[1] == 1
            and frames.is_categorical(given.iloc[:, 0])
        )
        values = frames.as_array_like(y, name, self.dtype)
        if not isinstance(values, np.ndarray):
            with contextlib.suppress(TypeError, ValueError):  # as_targets says what is wrong
                values = np.asarray(values)
        is_array = isinstance(values, np.ndarray)
        one_per_row = is_array and (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1))
        wanted = class_labels.width(self.loss, self.output_dim)
        if is_array and (categorical or class_labels.is_label_array(values)) and wanted is None:
            class_labels.check_count(
                class_labels.classes_of(values.reshape(-1), name),
                self.loss,
                self.output_dim,
                name,
            )
        if (
            is_array
            and one_per_row
            and wanted is not None
            and (classes is not None or categorical or class_labels.is_label_array(values))
        ):
            labels = class_labels.normalised(values.reshape(-1), name)
            if classes is None:
                if not learn:
                    raise ValueError(
                        f"{name} holds class labels, but the model has no classes_ yet; "
                        "fit it with labels first (or pass class indices)"
                    )
                classes = class_labels.classes_of(labels, name)
                class_labels.check_count(classes, self.loss, self.output_dim, name)
            values = class_labels.encode(labels, classes, name)
        targets, code = check.as_targets(
            values, n_samples, self.loss, self.output_dim, self.dtype, name=name
        )
        return targets, code, classes

    def _ready(self, X: np.ndarray) -> None:
        """Build from X's width on first use."""
        if not self.built:
            self.build(X.shape[1])
        if X.shape[1] != self.input_dim:  # another thread built it first
            raise ValueError(
                f"X has {X.shape[1]} features, but the model was built for "
                f"{self.input_dim}; pass X with {self.input_dim} columns or build "
                "a new model"
            )

    @contextlib.contextmanager
    def _training(self) -> Iterator[None]:
        """The model for one training call: other training callers wait, and so
        does inference while the arrays change (both released however it ends)."""
        with self._train_lock, self._memory.writing():
            yield

    # --- training -------------------------------------------------------------------

    def fit(
        self,
        X: ArrayLike | Any,
        y: ArrayLike | None = None,
        epochs: int = 1,
        batch_size: int | None = 32,
        shuffle: bool | str = True,
        validation_data: tuple[ArrayLike, ArrayLike] | None = None,
        verbose: int = 1,
        diagnostics: bool = False,
        on_divergence: str = "raise",
        callbacks: Iterable[Callback] = (),
        sample_weight: ArrayLike | None = None,
        class_weight: Mapping[Any, float] | None = None,
        comm: Any = None,
        classes: ArrayLike | None = None,
        average_every: int | None = None,
        shuffle_block: int | None = None,
    ) -> History:
        """Train with mini-batch gradient descent.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Used in place when it is C-ordered in the model's dtype, as a
            np.memmap may be: fit then holds no copy of it, only batches (the
            finiteness check reads it in blocks of rows). Another dtype or
            order is converted first, which makes one copy of X. A DataFrame's
            columns must hold numbers or booleans (nullable Int64, Float64 and
            boolean included); the first training call records its column names
            as feature_names_in_, and later calls check theirs against them.
            Or, with y left out, a stream of chunks: an iterable of (X_chunk,
            y_chunk) pairs or (X_chunk, y_chunk, sample_weight_chunk) triples, or
            a function returning a fresh one for each epoch (a one-shot iterator
            allows epochs=1 only). The weights equal those of fit(shuffle=False)
            on the concatenated chunks with the same batch_size; shuffle must be
            False, batch_size an integer, class labels declared with classes=.
            See fastbp.streaming.
        y : targets (see the loss), or None for a stream of chunks
            Class indices or probability rows for softmax losses, 0/1 (or
            probability) rows for binary_cross_entropy, values for mse. For a
            classification loss, y may hold the class labels instead (strings,
            objects, a pandas Categorical or Series): the first fit given labels
            records their sorted set as classes_ (one per output; two for one
            sigmoid output), and from then on y holds labels of those classes.
        epochs : int
            Passes over the data.
        batch_size : int or None
            None for full-batch gradient descent, 1 for stochastic, k for
            mini-batches of k (the last one may be smaller); values above
            n_samples are clamped to n_samples.
        shuffle : bool or "blocks"
            True draws a new order of the rows each epoch (from the model's
            seed). "blocks" draws a new order of blocks of shuffle_block
            consecutive rows, and of the rows within each block: a np.memmap is
            then read a few MiB at a time instead of a page per row all over the
            file (see fastbp.shuffling). False keeps the rows in order.
        validation_data : (X_val, y_val) or None
            Evaluated after each epoch (val_loss, val_accuracy in the history).
        verbose : int
            1 shows a progress line per epoch, 0 is silent.
        diagnostics : bool
            Record training-health readings per epoch in the history and warn
            about alarming ones (see fastbp.diagnostics); off by default as it
            costs a forward and a gradient pass over a sample each epoch.
        on_divergence : {"raise", "stop"}
            When the loss, the weights or the optimiser's state stop being
            finite, the model goes back to the state it had when that epoch
            began, and then "raise" (default) raises FloatingPointError, "stop"
            warns and returns the history of the epochs completed.
        callbacks : list of fastbp.callbacks.Callback
            EarlyStopping, ReduceLROnPlateau, LearningRateScheduler,
            ModelCheckpoint, CSVLogger or your own, called before and after
            each epoch (see fastbp.callbacks). What they monitor or write is
            checked against what this fit records before any training.
        sample_weight : array of shape (n_samples,) or None
            Weights of each sample's loss (the loss is 1/N sum_i w_i loss_i).
        class_weight : dict or None
            Class -> weight, for classification losses (keyed by label when the
            model has classes_, else by class index). It multiplies
            sample_weight when both are given.
        comm : mpi4py communicator or None
            Data-parallel training over the communicator's ranks (fastbp.distributed):
            every rank calls fit with the same model, X and y; rank 0's state is
            broadcast; batch_size is the global batch, split among the ranks, with
            one Allreduce of the gradients per step (for local SGD, see
            average_every). History, callbacks and divergence see the global
            figures on every rank; progress shows on rank 0. An error on one rank
            during training prints and aborts the job. Dropout masks are those of
            one process. None (default): one process.
        classes : array-like or None
            The class labels the model is to know (as labels, even when they are
            integers), when they are not all in y, or for integer labels that are
            not class indices; every label of y must be among them. It must list
            the model's classes_ again once it has them. None (default): the
            labels of y.
        average_every : int >= 1 or None
            Local SGD over comm (needs comm): each rank takes optimiser steps on its
            own contiguous shard of the rows (shuffled within the shard, in the
            order of the shared permutation), batch_size rows a step (batch_size is
            then the per-rank batch), and every average_every steps and at the end
            of each epoch one Allreduce averages the parameters and the optimiser
            state across the ranks (weighted by the rows each trained on). The
            epoch's loss and accuracy are those of every rank's batches, the same
            on every rank, and so is a divergence. See
            fastbp.distributed.LocalTrainer. None (default): one Allreduce of the
            gradients per step, as above.
        shuffle_block : int or None
            The rows of a block for shuffle="blocks"; None (default): as many as
            fill shuffling.BLOCK_BYTES (4 MiB) of X. Only with shuffle="blocks".

        Returns
        -------
        History
            history.history maps "loss" (and "accuracy", "lr", the rate the
            epoch used, "val_loss", ...) to one value per epoch run.

        Notes
        -----
        Each epoch is all or nothing. Ctrl-C (KeyboardInterrupt), or any error, in
        the middle of an epoch puts the model back as it was when that epoch began
        (weights, optimiser state, step count, random generator, epochs_done), runs
        every callback's on_train_end and re-raises; the epochs completed stay. A
        model saved then resumes exactly as if the interrupted epoch never began.
        Ctrl-C is seen within about CALL_SECONDS (a single batch is never split).
        See docs/design.md §5.2.

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp as fb
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((64, 4))
        >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
        >>> model = fb.Sequential(
        ...     [fb.Dense(8, activation="tanh", input_dim=4), fb.Dense(2)],
        ...     loss="softmax_cross_entropy", optimizer=fb.SGD(lr=0.5), seed=0,
        ... )
        >>> hist = model.fit(X, y, epochs=20, batch_size=16, verbose=0)
        >>> len(hist.history["loss"]), model.epochs_done
        (20, 20)
        >>> bool(hist.history["loss"][-1] < hist.history["loss"][0])
        True
        >>> bool(model.evaluate(X, y)["accuracy"] > 0.9)
        True
        """
        comm = None if comm is None else distributed.check_comm(comm)
        sharded = comm is not None and comm.Get_size() > 1
        local_sgd = average_every is not None
        error: BaseException | None = None
        settings: tuple[Any, ...] = ()  # what every rank must agree on
        stream: streaming.ChunkStream | None = None
        with self._train_lock:
            try:
                shuffle = shuffling.check_shuffle(shuffle)
                epochs = check.non_negative_int("epochs", epochs)
                x_name, y_name, w_name = "X", "y", "sample_weight"
                if streaming.is_stream(X, y):  # its first chunk stands for X and y here
                    streaming.check_settings(shuffle, batch_size, sample_weight, comm)
                    stream = streaming.ChunkStream(X, epochs)
                    first = stream.first
                    X, y, sample_weight = first.X, first.y, first.weights
                    x_name, y_name, w_name = first.x_name, first.y_name, first.w_name
                assert y is not None  # a stream's chunks have one (streaming._unpacked)
                X, names = self._named_features(
                    X, x_name, self._feature_names, fitted=self._names_fixed
                )
                names = self._feature_names if self._names_fixed else names
                known = self._classes if classes is None else self._declared(classes)
                y, loss_code, learned = self._encoded_targets(y, len(X), y_name, known, learn=True)
                class_weights = self._class_weight_indices(class_weight, learned)
                weights = check.as_sample_weight(
                    sample_weight, class_weights, y, self.loss, loss_code, self.dtype, w_name
                )
                if average_every is not None:
                    average_every = check.positive_int("average_every", average_every)
                    if comm is None:
                        raise ValueError(
                            "average_every is local SGD over MPI ranks and needs comm "
                            f"(got average_every={average_every} without comm); pass "
                            "comm=MPI.COMM_WORLD, or leave average_every=None"
                        )
                if stream is not None:
                    stream.settle(
                        names, known, learned, loss_code, class_weights, sample_weight is not None
                    )
                check.check_option("on_divergence", on_divergence, ("raise", "stop"))
                block_rows = shuffling.block_rows(
                    shuffle, shuffle_block, X.shape[1] * X.dtype.itemsize
                )
                callbacks = list(callbacks)
                for callback in callbacks:
                    if not isinstance(callback, Callback):
                        raise TypeError(
                            f"callbacks must be fastbp.callbacks.Callback objects, got "
                            f"{type(callback).__name__}"
                        )
                n = len(X)
                batch_size = (
                    n
                    if batch_size is None
                    else check.positive_int("batch_size", batch_size)
                    if stream  # the stream's length is not known
                    else min(check.positive_int("batch_size", batch_size), n)
                )
                if validation_data is not None:
                    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                        raise ValueError("validation_data must be a pair (X_val, y_val)")
                    X_val = self._named_features(
                        validation_data[0], "X_val", names, n_features=X.shape[1]
                    )[0]
                    y_val, val_code, _ = self._encoded_targets(
                        validation_data[1], len(X_val), "y_val", learned, learn=False
                    )
                self._ready(X)
                self._check_finite()
                recorded = self._recorded_metrics(validation_data is not None, diagnostics)
                for callback in callbacks:
                    callback.comm = comm
                    callback.check(recorded)
                settings = (n, X.shape[1], batch_size, epochs, shuffle, average_every, block_rows)
            except Exception as exc:
                if comm is None:
                    raise
                error = exc
            if comm is not None:
                distributed.agree(comm, error, settings)
                distributed.broadcast_state(comm, self._plan, self._rng)
                if comm.Get_rank() != 0:
                    verbose = 0
            # what the checks above made of the arguments (mypy loses it across the try)
            assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)
            assert isinstance(batch_size, int)
            trainer: distributed.ShardedTrainer | distributed.LocalTrainer | None = None
            if local_sgd:
                assert isinstance(average_every, int)
                trainer = distributed.LocalTrainer(comm, self._plan, self._backend, average_every)
            elif sharded:
                trainer = distributed.ShardedTrainer(comm, self._plan, self._backend)
            self._forward_context = None
            undo = self._learn_names_and_classes(names, learned)
            epochs_before = self.epochs_done
            history = History()
            # a step of local SGD takes batch_size rows on every rank
            rows_a_step = batch_size * (comm.Get_size() if local_sgd and comm else 1)
            progress = (
                EpochProgress(epochs, n, rows_a_step, self.loss.classification) if verbose else None
            )
            alarms = health.Alarms() if diagnostics else None
            self.stop_training = False
            begun: list[Callback] = []  # those whose on_train_begin ran: on_train_end runs
            try:
                for callback in callbacks:
                    callback.on_train_begin(self)
                    begun.append(callback)
                for epoch in range(epochs):
                    for callback in callbacks:
                        callback.on_epoch_begin(epoch, self)
                    logs = self._fit_epoch(
                        epoch,
                        X,
                        y,
                        weights,
                        shuffle,
                        batch_size,
                        loss_code,
                        progress,
                        on_divergence,
                        trainer,
                        block_rows,
                        stream,
                    )
                    if logs is None:
                        break  # diverged, on_divergence="stop"
                    if validation_data is not None:
                        val = self._evaluate(X_val, y_val, val_code, comm=comm)
                        logs.update({"val_" + key: value for key, value in val.items()})
                    if alarms:
                        rows = slice(0, health.SAMPLE_ROWS)
                        with self._memory.writing(), threads.limit(self.n_threads):
                            readings = health.measure(self, X[rows], y[rows], loss_code)
                        alarms.check(epoch, readings)
                        logs.update(readings)
                    for callback in callbacks:
                        callback.on_epoch_end(epoch, logs, self)
                    history.append(epoch, logs)
                    if progress:
                        progress.end_epoch(logs)
                    if self.stop_training:
                        break
            except FloatingPointError:
                if self.epochs_done == epochs_before:
                    undo()
                raise  # divergence: decided on the reduced loss, raised on every rank
            except BaseException as exc:
                if self.epochs_done == epochs_before:
                    undo()
                if comm is not None:
                    distributed.abort(comm, exc)
                raise
            finally:
                _end_all(begun, self)
        return history

    def _learn_names_and_classes(
        self, names: NDArray[np.object_] | None, classes: np.ndarray | None
    ) -> Callable[[], None]:
        """Record the feature names and classes a training call settled (the caller
        holds the training lock); returns the function that puts back the previous
        ones, for a call that ends having trained nothing."""
        previous = (self._feature_names, self._classes)

        def undo() -> None:
            with self._memory.writing():
                self._feature_names, self._classes = previous

        with self._memory.writing():
            self._feature_names, self._classes = names, classes
        return undo

    def _declared(self, classes: ArrayLike) -> np.ndarray:
        """fit's classes= as the model's classes_ would hold them: distinct labels,
        one per class the outputs predict, equal to classes_ when the model has them."""
        values = frames.as_array_like(classes, "classes")
        values = (
            np.asarray(values) if isinstance(values, np.ndarray) else np.asarray(values, object)
        )
        if values.ndim != 1:
            raise ValueError(f"classes must be a 1-D list of labels; got shape {values.shape}")
        if values.dtype.kind != "O":
            boxed = np.empty(len(values), dtype=object)
            boxed[:] = values.tolist()
            values = boxed
        declared = class_labels.classes_of(class_labels.normalised(values, "classes"), "classes")
        if len(declared) != len(values):
            raise ValueError("classes lists a label more than once; list each class once")
        class_labels.check_count(declared, self.loss, self.output_dim, "classes")
        if self._classes is not None:
            try:  # every declared label among classes_, and as many
                class_labels.encode(declared, self._classes, "classes")
                same = len(declared) == len(self._classes)
            except ValueError:
                same = False
            if not same:
                raise ValueError(
                    f"classes lists other classes ({declared.tolist()}) than the model's "
                    f"classes_ ({self._classes.tolist()}); they are fixed by the first fit"
                )
        return declared

    def _class_weight_indices(
        self, class_weight: Mapping[Any, float] | None, classes: np.ndarray | None
    ) -> Mapping[Any, float] | None:
        """class_weight keyed by class index: its keys are labels when the model has
        classes (ValueError for a label not among them), indices otherwise."""
        if class_weight is None or classes is None or not isinstance(class_weight, dict):
            return class_weight
        keys = np.empty(len(class_weight), dtype=object)
        keys[:] = list(class_weight)
        name = "class_weight's keys"
        indices = class_labels.encode(class_labels.normalised(keys, name), classes, name)
        return {int(k): weight for k, weight in zip(indices, class_weight.values())}

    def _recorded_metrics(self, validation: bool, diagnostics: bool) -> list[str]:
        """The names fit's logs will hold, for the callbacks' check."""
        measured = ["loss"] + (["accuracy"] if self.loss.classification else [])
        names = measured + ["lr"]
        if validation:
            names += ["val_" + name for name in measured]
        if diagnostics:
            names += health.reading_names(self._plan)
        return names

    def _fit_epoch(
        self,
        epoch: int,
        X: NDArray[np.floating],
        y: np.ndarray,
        weights: NDArray[np.floating] | None,
        shuffle: shuffling.Shuffle,
        batch_size: int,
        loss_code: int,
        progress: EpochProgress | None,
        on_divergence: str,
        trainer: distributed.ShardedTrainer | distributed.LocalTrainer | None = None,
        block_rows: int | None = None,
        stream: streaming.ChunkStream | None = None,
    ) -> dict[str, float] | None:
        """One epoch, all or nothing: its logs ({"loss", "accuracy", "lr"}, lr the
        rate this epoch used), or None when it diverged and on_divergence is
        "stop"; epochs_done counts it. With a stream, X and y are its first chunk
        and the epoch reads the stream instead."""
        n = len(X)
        with self._memory.writing():
            self._sync_optimizer()
        # a copy: a change made in place from another thread meanwhile (which may
        # need other state arrays) takes effect at the next epoch
        opt = copy.copy(self.optimizer)
        lr = opt.lr_at(self.epochs_done)  # checked (finite, >= 0) before any step
        checkpoint = self._checkpoint()
        try:
            if progress:
                progress.start_epoch(epoch)
            if stream is not None:
                total, n_correct, n_seen = stream.run_epoch(self, batch_size, opt, lr)
                n = n_seen
                if progress:
                    progress.resize(n)
            else:
                order = shuffling.epoch_order(self._rng, n, shuffle, block_rows)
                total, n_correct, n_seen = self._run_epoch(
                    X, y, weights, order, batch_size, loss_code, progress, opt, lr, trainer
                )
            broken = "loss" if not np.isfinite(total) else self._plan.nonfinite()
            if broken is None:
                self.epochs_done += 1
        except BaseException:
            self._restore(checkpoint)
            raise
        if broken is not None:
            self._restore(checkpoint)
            message = (
                f"training diverged in epoch {epoch + 1} after {n_seen} samples: the "
                f"{broken} stopped being finite; the model keeps the state it had when "
                f"the epoch began. Lower the learning rate (lr={self.optimizer.lr}) "
                "or standardise the inputs"
            )
            if on_divergence == "raise":
                raise FloatingPointError(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            return None
        logs = {"loss": total / n}
        if self.loss.classification:
            logs["accuracy"] = n_correct / (n * self._outputs_per_sample(loss_code))
        logs["lr"] = lr
        return logs

    def _run_epoch(
        self,
        X: NDArray[np.floating],
        y: np.ndarray,
        weights: NDArray[np.floating] | None,
        order: NDArray[np.int64],
        batch_size: int,
        loss_code: int,
        progress: EpochProgress | None,
        opt: Optimizer,
        lr: float,
        trainer: distributed.ShardedTrainer | distributed.LocalTrainer | None = None,
        total: float = 0.0,
    ) -> tuple[float, int, int]:
        """One epoch of SGD in `order`: (total + sum of batch_rows * batch_loss,
        n_correct, n_seen), the losses added onto total batch after batch.

        It runs as several backend calls, each a whole number of batches lasting
        about CALL_SECONDS, so that Ctrl-C is seen between calls, predictions from
        other threads may go between them, and a progress line is updated; the
        batches (and the weights) are the same as in one call. opt is the
        epoch's copy of the optimiser, lr its rate for this epoch.
        """
        if trainer is not None:  # over MPI: one reduction a step, or local SGD
            with self._memory.writing(), threads.limit(self.n_threads):
                result = trainer.epoch(X, y, weights, order, batch_size, loss_code, opt, lr)
            if progress:
                progress.update(
                    result[2], result[0], result[1], self._outputs_per_sample(loss_code)
                )
            return result
        n_correct, n_seen = 0, 0
        batches_per_call = 1
        while n_seen < len(order):
            chunk = order[n_seen : n_seen + batches_per_call * batch_size]
            started = time.perf_counter()
            with self._memory.writing(), threads.limit(self.n_threads):
                # the loss is summed onto total batch after batch, so that it does
                # not depend on how the epoch is split into calls
                total, correct, seen = self._backend.epoch(
                    X, y, chunk, batch_size, loss_code, opt, lr, weights, total
                )
            elapsed = time.perf_counter() - started
            n_correct, n_seen = n_correct + correct, n_seen + seen
            if seen < len(chunk) or not np.isfinite(total):
                break  # diverged: the caller restores and reports
            if progress:
                progress.update(n_seen, total, n_correct, self._outputs_per_sample(loss_code))
            growth = CALL_SECONDS / max(elapsed, 1e-6)
            batches_per_call = max(1, min(int(batches_per_call * min(growth, 4.0)), 1 << 20))
        return total, n_correct, n_seen

    def _outputs_per_sample(self, loss_code: int) -> int:
        """Accuracy counts one decision per sample, or one per output for sigmoid outputs."""
        assert self.output_dim is not None
        return self.output_dim if loss_code == losses.SIGMOID_BCE else 1

    def train_step(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> float:
        """One optimiser step on one batch; returns its loss (before the step).

        Each call validates X and y and keeps a copy of the training state to undo
        a step that diverges (or is interrupted); fit() runs whole epochs without
        either cost."""
        with self._train_lock:  # names and classes read and settled by one caller
            X, names = self._named_features(X, "X", self._feature_names, fitted=self._names_fixed)
            names = self._feature_names if self._names_fixed else names
            y, loss_code, classes = self._encoded_targets(y, len(X), "y", self._classes, learn=True)
            weights = check.as_sample_weight(
                sample_weight, None, y, self.loss, loss_code, self.dtype
            )
            with self._training():
                self._ready(X)
                self._check_finite()
                self._sync_optimizer()
                self._forward_context = None
                opt = copy.copy(self.optimizer)  # in-place changes from now on: next call
                checkpoint = self._checkpoint()
                undo = self._learn_names_and_classes(names, classes)
                try:
                    with threads.limit(self.n_threads):
                        loss, _ = self._backend.step(
                            X, y, loss_code, opt, True, opt.lr_at(self.epochs_done), weights
                        )
                    broken = "loss" if not np.isfinite(loss) else self._plan.nonfinite()
                except BaseException:
                    self._restore(checkpoint)
                    undo()
                    raise
                if broken is not None:
                    self._restore(checkpoint)
                    undo()
                    raise FloatingPointError(
                        f"the training step diverged: the {broken} stopped being finite, so the "
                        f"step was not applied. Lower the learning rate (lr={opt.lr}) or "
                        "standardise the inputs"
                    )
        return float(loss)

    def _check_finite(self) -> None:
        """Training starts only from finite weights and optimiser state (an array
        changed in place may hold NaN)."""
        broken = self._plan.nonfinite()
        if broken is not None:
            raise ValueError(
                f"the model's {broken} holds NaN or infinite values, so training "
                "cannot start; set finite weights with set_weights (or assign a "
                "fresh optimiser: model.optimizer = ...)"
            )

    def _checkpoint(self) -> tuple[list[np.ndarray], Mapping[str, Any], int]:
        """A copy of everything training changes: the plan's training state, the
        random generator and epochs_done."""
        return (
            [a.copy() for a in self._plan.training_state()],
            self._rng.bit_generator.state,
            self.epochs_done,
        )

    def _restore(self, checkpoint: tuple[list[np.ndarray], Mapping[str, Any], int]) -> None:
        """Put a _checkpoint back, with Ctrl-C held until it is whole."""
        arrays, rng_state, epochs_done = checkpoint
        with deferred_interrupts(), self._memory.writing():
            for saved, live in zip(arrays, self._plan.training_state()):
                live[...] = saved
            self._rng.bit_generator.state = rng_state
            self._epochs_done = epochs_done

    def loss_and_gradients(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> tuple[float, list[NDArray[np.floating]]]:
        """The loss on (X, y), L2 term included (and samples weighted by
        sample_weight), and its gradient with respect to every parameter, as copies
        aligned with get_weights()."""
        X = self._features(X)
        y, loss_code = self._targets(y, len(X))
        weights = check.as_sample_weight(sample_weight, None, y, self.loss, loss_code, self.dtype)
        with self._training():
            self._ready(X)
            self._sync_optimizer()
            self._forward_context = None
            with threads.limit(self.n_threads):
                loss, _ = self._backend.step(X, y, loss_code, self.optimizer, False, 0.0, weights)
            return float(loss), [g.copy() for g in self._plan.gradients()]

    # --- inference --------------------------------------------------------------------

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """What the model predicts for X.

        Parameters
        ----------
        X : array or DataFrame of shape (n_samples, n_features)
            A DataFrame's column names are checked against feature_names_in_.

        Returns
        -------
        ndarray
            For classification losses, the class labels (n_samples,) of classes_
            when the model was trained on labels, else class indices (0/1 of shape
            (n_samples, n_outputs) for several sigmoid outputs); the outputs
            (n_samples, n_outputs), in the model's dtype, otherwise. For class
            probabilities use predict_proba (its columns follow classes_).

        Examples
        --------
        >>> import numpy as np
        >>> import fastbp as fb
        >>> X = np.random.default_rng(0).standard_normal((10, 3))
        >>> clf = fb.Sequential([fb.Dense(4, input_dim=3), fb.Dense(3)],
        ...                     loss="softmax_cross_entropy", seed=0)
        >>> labels = clf.predict(X)
        >>> labels.shape, labels.dtype, bool(set(labels) <= {0, 1, 2})
        ((10,), dtype('int64'), True)
        >>> reg = fb.Sequential([fb.Dense(2, input_dim=3)], loss="mse", seed=0)
        >>> reg.predict(X).shape, reg.predict(X).dtype
        ((10, 2), dtype('float32'))
        """
        classes = self._classes
        out = self._outputs(X)
        if self.loss.softmax:
            indices = out.argmax(axis=1)
            return indices if classes is None else classes[indices]
        if self.loss.name == "binary_cross_entropy":
            labels = (out >= 0.5).astype(np.int64)
            if labels.shape[1] != 1:
                return labels
            return labels[:, 0] if classes is None else classes[labels[:, 0]]
        return out

    def predict_proba(self, X: ArrayLike) -> NDArray[np.floating]:
        """Class probabilities (n_samples, n_outputs) for classification losses."""
        if not self.loss.classification:
            raise ValueError(
                f"predict_proba needs a classification loss; this model uses "
                f"{self.loss.name!r}: use predict"
            )
        out = self._outputs(X)
        if self.loss.softmax and not self._outputs_softmax:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out

    def _outputs(self, X: ArrayLike) -> NDArray[np.floating]:
        X = self._features(X)
        self._ready(X)
        with self._memory.reading(), threads.limit(self.n_threads):
            return self._backend.predict(X)

    def evaluate(
        self,
        X: ArrayLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        comm: Any = None,
    ) -> dict[str, float]:
        """{"loss": mean (weighted) loss plus the L2 term, "accuracy": ... for
        classification (unweighted)}.

        X : array of shape (n_samples, n_features); y : its targets.
        comm : mpi4py communicator or None
            Every rank passes its own rows (at least one each) and receives the
            figures of all the ranks' rows together, as evaluate on their
            concatenation gives them (to float rounding: the ranks' sums are
            added in float64), the same on every rank. A check that fails on one
            rank raises on every rank (RuntimeError naming that rank on the
            others). None (default): this process's rows alone.
        """
        if comm is None:
            X = self._features(X)
            y, loss_code = self._targets(y, len(X))
            weights = check.as_sample_weight(
                sample_weight, None, y, self.loss, loss_code, self.dtype
            )
            self._ready(X)
            return self._evaluate(X, y, loss_code, weights)
        comm = distributed.check_comm(comm)
        error: BaseException | None = None
        settings: tuple[Any, ...] = ()
        try:
            X = self._features(X)
            y, loss_code = self._targets(y, len(X))
            weights = check.as_sample_weight(
                sample_weight, None, y, self.loss, loss_code, self.dtype
            )
            self._ready(X)
            settings = (X.shape[1], loss_code)
        except Exception as exc:
            error = exc
        distributed.agree(
            comm, error, settings, "evaluate", "(features, loss kernel code of the targets)"
        )
        assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)
        with self._memory.reading():
            with threads.limit(self.n_threads):
                local = self._backend.loss_sum(X, y, loss_code, weights)
            total, n_correct, rows = distributed.reduce_sums(comm, *local, len(X))
            result = {"loss": float(total / rows + self._l2_term())}
        if self.loss.classification:
            result["accuracy"] = float(n_correct / (rows * self._outputs_per_sample(loss_code)))
        return result

    def _evaluate(
        self,
        X: NDArray[np.floating],
        y: np.ndarray,
        loss_code: int,
        weights: NDArray[np.floating] | None = None,
        comm: Any = None,
    ) -> dict[str, float]:
        """Loss and accuracy on (X, y); with a communicator of several ranks, each
        rank evaluates its contiguous share of the rows and the sums are reduced."""
        with self._memory.reading():
            if comm is not None and comm.Get_size() > 1:
                rows = distributed.shard(len(X), comm)
                local: tuple[float, int] = (0.0, 0)
                if rows.stop > rows.start:
                    with threads.limit(self.n_threads):
                        local = self._backend.loss_sum(
                            X[rows], y[rows], loss_code, None if weights is None else weights[rows]
                        )
                total, n_correct = distributed.reduce_sums(comm, *local)
                n_correct = int(n_correct)
            else:
                with threads.limit(self.n_threads):
                    total, n_correct = self._backend.loss_sum(X, y, loss_code, weights)
            result = {"loss": float(total / len(X) + self._l2_term())}
        if self.loss.classification:
            result["accuracy"] = n_correct / (len(X) * self._outputs_per_sample(loss_code))
        return result

    def _l2_term(self) -> float:
        decay = self.optimizer.l2
        if not decay:
            return 0.0
        return (
            0.5
            * decay
            * sum(
                np.sum(p.value * p.value, dtype=np.float64) for p in self._plan.params() if p.decay
            )
        )

    # --- your own loss ------------------------------------------------------------------

    def forward(self, X: ArrayLike, training: bool = False) -> NDArray[np.floating]:
        """The last layer's output (n_samples, n_outputs): what it computes (logits
        for a softmax loss whose last layer has no activation, probabilities when
        it applies the softmax). Keeps what backward needs, for the calling
        thread's next backward. training=True applies dropout, with the masks of
        the current training step."""
        X = self._features(X)
        with self._training():
            self._ready(X)
            with threads.limit(self.n_threads):
                out = np.array(self._backend.forward(X, training=bool(training)))
            self._forward_context = (threading.get_ident(), len(X))
        return out

    def backward(self, dout: ArrayLike) -> NDArray[np.floating]:
        """Backpropagate dout = dL/d(output of forward), shape (n_samples, n_outputs),
        through the last forward pass. Stores every parameter gradient (see
        get_gradients) and returns dL/dX (n_samples, n_features)."""
        with self._training():
            context = self._forward_context
            if context is None or context[0] != threading.get_ident():
                raise RuntimeError(
                    "backward needs a forward pass first: call model.forward(X) "
                    "and then model.backward(dout) in the same thread, with no "
                    "other training call (fit, train_step, forward from another "
                    "thread, ...) between them"
                )
            n, d_out = context[1], self.output_dim
            dout = check.as_features(dout, self.dtype, d_out, name="dout")
            if dout.shape[0] != n:
                raise ValueError(
                    f"dout has {dout.shape[0]} rows but the last forward pass had "
                    f"{n}; pass dout of shape ({n}, {d_out})"
                )
            with threads.limit(self.n_threads):
                return np.array(self._backend.backward(dout, need_dX=True))

    def get_gradients(self) -> list[NDArray[np.floating]]:
        """Copies of the gradients from the last backward/loss_and_gradients, aligned
        with get_weights()."""
        self._require_built()
        with self._memory.reading():
            return [g.copy() for g in self._plan.gradients()]

    # --- parameters ---------------------------------------------------------------------

    def _require_built(self) -> None:
        if not self.built and self.layers and self._declared_input_dim() is not None:
            self.build(self._declared_input_dim())
        if not self.built:
            raise RuntimeError(
                "the model is not built yet: give the first layer input_dim= "
                "or call fit/forward/build first"
            )

    def get_weights(self) -> list[NDArray[np.floating]]:
        """Copies of every parameter array, layer by layer in the order of
        weight_names(): W (d_in, d_out) and b (d_out,) for Dense (plus alpha (d_out,)
        with prelu), W (d_in, units * pieces) and b for Maxout, alpha for PReLU."""
        self._require_built()
        with self._memory.reading():
            return [p.copy() for p in self._plan.weights()]

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        """Replace every parameter; weights as returned by get_weights(). All are
        checked before any is changed."""
        self._require_built()
        params = self._plan.weights()
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(
                f"set_weights expected {len(params)} arrays "
                f"({', '.join(self.weight_names())}), got {len(weights)}"
            )
        converted = [
            check.as_parameter(f"weights[{i}]", new, old)
            for i, (new, old) in enumerate(zip(weights, params))
        ]
        with self._training():
            self._forward_context = None
            for new, old in zip(converted, params):
                old[...] = new

    def _set_parameter(self, live: np.ndarray, value: ArrayLike, name: str) -> None:
        """layer.W = value on a built layer: value is checked, then copied into the
        live array (shape and dtype stay)."""
        new = check.as_parameter(name, value, live)
        with self._training():
            self._forward_context = None
            live[...] = new

    def weight_names(self) -> list[str]:
        """Names of get_weights()'s arrays: "W1", "b1", "alpha2", ... (name and 1-based
        layer number)."""
        self._require_built()
        return [f"{p.name}{p.layer}" for p in self._plan.params()]

    # --- configuration, files, summary -------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """A JSON-ready description of the model (not its weights)."""
        return {
            "layers": [layer.get_config() for layer in self.layers],
            "loss": self.loss.name,
            "optimizer": self.optimizer.get_config(),
            "dtype": self.dtype.name,
            "backend": self.backend_name,
            "n_threads": self.n_threads,
            "input_dim": self.input_dim,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], backend: str | None = None) -> Sequential:
        """A new model from get_config(), built (freshly initialised) if the input
        width is known. backend overrides the configured one."""
        layers = [layer_types.from_config(c) for c in config["layers"]]
        model = cls(
            layers,
            loss=config["loss"],
            optimizer=optimizers.from_config(config["optimizer"]),
            dtype=config["dtype"],
            backend=backend or config["backend"],
            n_threads=config["n_threads"],
        )
        if config.get("input_dim") is not None:
            model.build(config["input_dim"])
        return model

    def save(self, path: str | bytes | os.PathLike[Any], comm: Any = None) -> None:
        """Write the model to one .npz file; fastbp.load reads it back.

        The file holds the architecture record (JSON) and every array: weights,
        optimiser state, step count, dropout seed, with the random generator's
        state and epochs_done, so that training resumes exactly (see fastbp.io
        and docs/design.md §5.3). It is written as open(path, "wb") would (a
        symlink is written through to its target, a new file gets the umask's
        permissions, a replaced one keeps its own) but atomically: a temporary
        file in the target's folder is renamed onto it once complete. Training
        from other threads waits while it is written.

        Parameters
        ----------
        path : str, bytes or os.PathLike
            Where to write, conventionally ending in ".npz".
        comm : mpi4py communicator or None
            After a fit over comm, every rank holds the same model: rank 0
            writes the file and the other ranks do nothing. The file resumes on
            any number of ranks (fit(comm=...) broadcasts rank 0's state).

        Raises
        ------
        RuntimeError
            If the model is not built yet (its input width is unknown).
        PermissionError
            If the file there (or its folder) may not be written.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import fastbp as fb
        >>> model = fb.Sequential([fb.Dense(3, activation="relu", input_dim=2), fb.Dense(1)],
        ...                       seed=0)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "model.npz")
        ...     model.save(path)
        ...     copy = fb.load(path)
        >>> [w.shape for w in copy.get_weights()]
        [(2, 3), (3,), (3, 1), (1,)]
        >>> all(np.array_equal(a, b) for a, b in zip(copy.get_weights(), model.get_weights()))
        True
        """
        from fastbp import io

        self._require_built()
        if comm is not None and distributed.check_comm(comm).Get_rank() != 0:
            return
        with self._train_lock:
            self._sync_layout()
            with self._memory.reading():
                io.save(self, path)

    def to_onnx(
        self,
        path: str | bytes | os.PathLike[Any] | None = None,
        *,
        opset: int | None = None,
        dtype: DTypeLike | None = None,
    ) -> Any:
        """The model as an onnx.ModelProto (input "X"; outputs "label" and
        "probabilities", or "output" for a regression), written atomically to path if
        given; see fastbp.export.onnx. Needs the onnx extra: pip install 'fastbp[onnx]'."""
        from fastbp.export.onnx import to_onnx

        return to_onnx(self, path, opset=opset, dtype=dtype)

    def to_torch(self) -> Any:
        """An equivalent torch.nn.Sequential (in eval mode, the model's dtype) computing
        what forward computes; see fastbp.export.torch. Needs PyTorch."""
        from fastbp.export.torch import to_torch

        return to_torch(self)

    def summary(self, print_fn: Callable[[str], object] = print) -> None:
        """Print a table of the layers: output shape, parameter count, totals."""
        rows = [("layer", "output shape", "parameters")]
        total, d_in = 0, self.input_dim if self.built else self._declared_input_dim()
        for number, layer in enumerate(self.layers, start=1):
            d_out = layer.output_dim(d_in)
            count = layer.count_params(d_in) if d_in is not None else None
            total += count or 0
            detail = {
                Maxout: lambda l: f" ({l.pieces} pieces)",
                Dropout: lambda l: f" ({l.rate:g})",
                layer_types.PReLU: lambda l: "",
            }.get(type(layer), lambda l: f" ({l.output_activation})")(layer)
            rows.append(
                (
                    f"{type(layer).__name__} {number}{detail}",
                    f"(None, {'?' if d_out is None else d_out})",
                    "?" if count is None else f"{count:,}",
                )
            )
            d_in = d_out
        widths = [max(len(row[c]) for row in rows) for c in range(3)]
        line = "-" * (sum(widths) + 4)
        print_fn(line)
        for k, row in enumerate(rows):
            print_fn(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}")
            if k == 0:
                print_fn(line)
        print_fn(line)
        print_fn(
            f"total parameters: {total:,}" + ("" if self.built else " (input width not known yet)")
        )
        print_fn(
            f"loss {self.loss.name}, optimizer {self.optimizer!r}, {self.dtype.name}, "
            f"{self.backend_name} backend"
        )

    def count_params(self) -> int:
        self._require_built()
        return sum(p.size for p in self._plan.weights())

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        return (
            f"Sequential([{layers}], loss={self.loss.name!r}, optimizer={self.optimizer!r}, "
            f"dtype={self.dtype.name!r}, backend={self.backend_name!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickling, copy.copy and copy.deepcopy (and joblib): the model travels as
        fastbp.io's record and arrays, plain data, and fastbp.io.rebuild_pickled
        makes a new, independent model from them (engine and workspaces fresh), so
        copy.copy is as deep as deepcopy. Raises TypeError when the model holds
        something that is not plain data (e.g. a function in metadata)."""
        from fastbp import io

        with self._train_lock:  # between training calls: a state that really existed
            self._sync_layout()
            with self._memory.reading():
                return io.pickled(self)


def _end_all(callbacks: Iterable[Callback], model: Sequential) -> None:
    """Every callback's on_train_end, even when one of them raises (the first
    error is raised once all have run)."""
    first: BaseException | None = None
    for callback in callbacks:
        try:
            callback.on_train_end(model)
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first
