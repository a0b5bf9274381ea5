"""fit over a stream of chunks: data that arrives in pieces (Parquet row groups, a
database cursor, files) and never needs to be in memory at once.

``model.fit(chunks, epochs=..., batch_size=..., shuffle=False)`` with ``y`` left out
reads ``chunks``, whose items are ``(X_chunk, y_chunk)`` pairs or
``(X_chunk, y_chunk, w_chunk)`` triples (w_chunk: per-row sample weights). ``chunks``
may be

- a function of no arguments returning a fresh iterable of chunks: called once per
  epoch (the way to stream several epochs from files or a database);
- a re-iterable collection (a list, or any object whose ``iter()`` starts over):
  iterated once per epoch;
- a one-shot iterator (a generator): it gives one epoch only, so epochs must be 1.

The batches are made across chunk boundaries exactly as ``fit(shuffle=False)`` makes
them over the concatenation of the chunks: the rows a chunk leaves after its whole
batches are carried over and completed by the next chunk's first rows; the last
batch of an epoch may be smaller. So the weights are bit for bit those of
``fit(np.concatenate(X_chunks), np.concatenate(y_chunks), shuffle=False)`` with the
same batch_size (and sample weights). A stream is read in its order: shuffle must be
False (shuffle the rows when the chunks are written, or use a np.memmap with
shuffle="blocks").

Each chunk is checked as it arrives, as fit checks X and y: the model's dtype (a
chunk of another dtype is converted), the width, finite values, targets of the
same kind as the first chunk's, the same weighting (all chunks weighted or none),
and for DataFrame chunks the column names of the first chunk. Class labels
(strings, ...) need the classes known before the stream starts, since a chunk need
not hold every class: the model's classes_, or ``fit(chunks, classes=[...])``.
Class indices need nothing. A chunk with no rows is skipped.

A refused chunk (or an error or Ctrl-C raised by the iterator) ends the fit as any
error in an epoch does: the model goes back to the state it had when that epoch
began (docs/design.md §5.2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from fastbp import frames
from fastbp import validation as check

if TYPE_CHECKING:  # model imports this module
    from fastbp.model import Sequential
    from fastbp.optimizers import Optimizer


def is_stream(X: Any, y: Any) -> bool:
    """Whether fit was given a stream of chunks: y left out (None)."""
    return y is None


def check_settings(shuffle: Any, batch_size: Any, sample_weight: Any, comm: Any) -> None:
    """Refuse the fit arguments a stream cannot honour, saying what to do instead."""
    if shuffle is not False:
        raise ValueError(
            f"a stream of chunks is read in its order, so fit needs shuffle=False with "
            f"it (got shuffle={shuffle!r}); shuffle the rows when the chunks are "
            "written, or fit on a np.memmap with shuffle='blocks'"
        )
    if batch_size is None:
        raise ValueError(
            "a stream of chunks needs a batch_size (full-batch training, "
            "batch_size=None, would hold the whole stream in memory)"
        )
    if sample_weight is not None:
        raise ValueError(
            "with a stream of chunks, sample weights come with the chunks: give "
            "(X_chunk, y_chunk, sample_weight_chunk) triples, and leave "
            "sample_weight out"
        )
    if comm is not None:
        raise ValueError(
            "a stream of chunks cannot be shared among MPI ranks; fit the ranks on a "
            "np.memmap (each reads only its rows) or pass comm=None"
        )


class Chunk:
    """One item of a stream as it was given: X, y and optional weights, unchecked."""

    def __init__(self, number: int, X: Any, y: Any, weights: Any) -> None:
        self.number, self.X, self.y, self.weights = number, X, y, weights

    @property
    def x_name(self) -> str:
        return f"X of chunk {self.number}"

    @property
    def y_name(self) -> str:
        return f"y of chunk {self.number}"

    @property
    def w_name(self) -> str:
        return f"the sample weights of chunk {self.number}"


def _unpacked(number: int, item: Any) -> Chunk:
    """item as a Chunk, or TypeError when it is not a pair or triple."""
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        shown = (
            f"a {type(item).__name__} of length {len(item)}"
            if isinstance(item, (tuple, list))
            else f"a {type(item).__name__}"
        )
        raise TypeError(
            f"chunk {number} of the stream must be a pair (X_chunk, y_chunk) or a "
            f"triple (X_chunk, y_chunk, sample_weight_chunk); got {shown}"
        )
    if all(np.isscalar(value) for value in item):
        raise TypeError(
            f"chunk {number} of the stream is {len(item)} numbers, not (X_chunk, y_chunk): "
            "was fit given rows of X without y? Pass fit(X, y), or chunks as pairs of arrays"
        )
    if item[1] is None:
        raise TypeError(f"chunk {number} of the stream has no y (None); give its targets")
    return Chunk(number, item[0], item[1], item[2] if len(item) == 3 else None)


def _rows(value: Any) -> int | None:
    """The number of rows of an array-like, or None when it has no length."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else None
    try:
        return len(value)
    except TypeError:
        return None


class ChunkStream:
    """The chunks of a fit, epoch after epoch, and the checks every chunk passes.

    source : a function returning an iterable of chunks, a re-iterable, or an
        iterator (then epochs must be at most 1).
    The first chunk of the first epoch is read when the stream is opened
    (`first`), so that fit can check it and build the model before training.
    """

    def __init__(self, source: Any, epochs: int) -> None:
        if isinstance(source, (str, bytes)) or frames.is_frame(source):
            raise TypeError(
                f"fit was given X of type {type(source).__name__} without y; pass y, or "
                "for a stream of chunks an iterable of (X_chunk, y_chunk) pairs"
            )
        if isinstance(source, np.ndarray) or hasattr(source, "__array__"):
            raise TypeError(
                "fit was given an array X without y; pass y (fit(X, y)), or for a "
                "stream of chunks an iterable of (X_chunk, y_chunk) pairs"
            )
        if callable(source):
            self._open: Callable[[], Iterable[Any]] = source
        elif isinstance(source, Iterable):
            if iter(source) is source and epochs > 1:  # an iterator: one pass only
                raise ValueError(
                    f"fit was given a one-shot iterator of chunks (a "
                    f"{type(source).__name__}) and epochs={epochs}, but an iterator "
                    "gives one epoch only; pass a function returning a fresh "
                    "iterator of chunks for each epoch (or a list of chunks), or "
                    "epochs=1"
                )
            self._open = lambda: source
        else:
            raise TypeError(
                f"fit was given X of type {type(source).__name__} without y; pass y, or "
                "for a stream of chunks an iterable of (X_chunk, y_chunk) pairs, or a "
                "function returning one"
            )
        self._pending: Iterator[Any] | None = None  # the first epoch, its first chunk read
        self.first = self._read_first()
        # settled by settle(), from the first chunk once fit has checked it
        self.names: NDArray[np.object_] | None = None
        self.classes: np.ndarray | None = None
        self.loss_code = -1
        self.class_weight: Mapping[Any, float] | None = None
        self.weighted = False

    def _items(self) -> Iterator[Any]:
        items = self._open()
        if not isinstance(items, Iterable):
            raise TypeError(
                f"the function giving the chunks returned a {type(items).__name__}, "
                "not an iterable of (X_chunk, y_chunk) pairs"
            )
        return iter(items)

    def _read_first(self) -> Chunk:
        """The first chunk that has rows (the ones before it are kept for the epoch)."""
        items = self._items()
        skipped: list[Chunk] = []
        for number, item in enumerate(items, 1):
            chunk = _unpacked(number, item)
            if _rows(chunk.X) == 0 and _rows(chunk.y) == 0:
                skipped.append(chunk)
                continue
            self._pending = _chained(skipped, chunk, items, number)
            return chunk
        raise ValueError(
            "the stream of chunks gave no rows; pass at least one (X_chunk, y_chunk) "
            "pair with at least one row"
        )

    def settle(
        self,
        names: NDArray[np.object_] | None,
        known_classes: np.ndarray | None,
        learned_classes: np.ndarray | None,
        loss_code: int,
        class_weight: Mapping[Any, float] | None,
        weighted: bool,
    ) -> None:
        """What the first chunk (checked by fit) fixes for the chunks after it.
        Refuses class labels when the classes were not known before the stream."""
        if learned_classes is not None and known_classes is None:
            raise ValueError(
                f"{self.first.y_name} holds class labels, but the model has no classes_ "
                "yet and a stream's chunks need not hold every class; declare them: "
                "fit(chunks, classes=[...]) (or stream class indices)"
            )
        self.names, self.classes, self.loss_code = names, learned_classes, loss_code
        self.class_weight, self.weighted = class_weight, weighted

    def epoch(self) -> Iterator[Chunk]:
        """The chunks of the next epoch, unchecked (check() each one)."""
        if self._pending is not None:
            items, self._pending = self._pending, None
            yield from items
            return
        for number, item in enumerate(self._items(), 1):
            yield _unpacked(number, item)

    def check(
        self, model: Sequential, chunk: Chunk
    ) -> tuple[NDArray[np.floating], np.ndarray, NDArray[np.floating] | None]:
        """(X, y, weights) of a chunk, converted for the backends, or the error
        fit would raise for such X, y and sample_weight, naming the chunk."""
        X, _ = model._named_features(chunk.X, chunk.x_name, self.names, fitted=True)
        y, code, classes = model._encoded_targets(
            chunk.y, len(X), chunk.y_name, self.classes, learn=True
        )
        if classes is not None and self.classes is None:
            raise ValueError(
                f"{chunk.y_name} holds class labels, but the stream began with class "
                "indices; stream one kind of target (declare labels with "
                "fit(chunks, classes=[...]))"
            )
        if code != self.loss_code:
            raise ValueError(
                f"{chunk.y_name} holds another kind of target than the first chunk's "
                "(class indices against probability rows); stream one kind"
            )
        if (chunk.weights is not None) != self.weighted:
            had = "had" if self.weighted else "had none"
            raise ValueError(
                f"chunk {chunk.number} {'has no' if self.weighted else 'has'} sample "
                f"weights, but the first chunk {had}; give every chunk a third item "
                "(its weights) or none"
            )
        weights = check.as_sample_weight(
            chunk.weights, self.class_weight, y, model.loss, code, model.dtype, chunk.w_name
        )
        return X, y, weights

    def run_epoch(
        self,
        model: Sequential,
        batch_size: int,
        opt: Optimizer,
        lr: float,
    ) -> tuple[float, int, int]:
        """One epoch over the stream: (sum of batch_rows * batch_loss, n_correct,
        n_seen), as model._run_epoch gives them; stops after a batch whose loss is
        not finite. Batches are those of the concatenated chunks in order, and
        their losses are summed in that order, as for the concatenation."""
        carry = _Carry(batch_size)
        total, n_correct, n_seen = 0.0, 0, 0
        for chunk in self.epoch():
            if _rows(chunk.X) == 0 and _rows(chunk.y) == 0:
                continue
            X, y, weights = self.check(model, chunk)
            start = 0
            if carry.rows:  # complete the batch the previous chunks began
                start = carry.add(X, y, weights, 0)
                if carry.rows < batch_size:
                    continue
                total, correct, seen = carry.train(model, opt, lr, self.loss_code, total)
                n_correct, n_seen = n_correct + correct, n_seen + seen
                if seen < batch_size or not np.isfinite(total):
                    return total, n_correct, n_seen
            whole = (len(X) - start) // batch_size * batch_size
            if whole:
                order = np.arange(start, start + whole, dtype=np.int64)
                total, correct, seen = model._run_epoch(
                    X, y, weights, order, batch_size, self.loss_code, None, opt, lr, total=total
                )
                n_correct, n_seen = n_correct + correct, n_seen + seen
                if seen < whole or not np.isfinite(total):
                    return total, n_correct, n_seen
            if start + whole < len(X):
                carry.add(X, y, weights, start + whole)
        if carry.rows:  # the last, shorter batch
            total, correct, seen = carry.train(model, opt, lr, self.loss_code, total)
            n_correct, n_seen = n_correct + correct, n_seen + seen
        return total, n_correct, n_seen


def _chained(
    skipped: list[Chunk], first: Chunk, rest: Iterator[Any], numbered: int
) -> Iterator[Chunk]:
    """The first epoch again: the empty chunks read before the first one with rows,
    that one, then the rest of the iterator, numbered on."""
    yield from skipped
    yield first
    for number, item in enumerate(rest, numbered + 1):
        yield _unpacked(number, item)


class _Carry:
    """The rows of a batch begun by one chunk and completed by the next ones:
    buffers of at most batch_size rows, grown as rows arrive."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.rows = 0
        self.X: NDArray[np.floating] | None = None
        self.y: np.ndarray | None = None
        self.weights: NDArray[np.floating] | None = None

    def add(
        self,
        X: NDArray[np.floating],
        y: np.ndarray,
        weights: NDArray[np.floating] | None,
        start: int,
    ) -> int:
        """Copy rows of X[start:] (and y, weights) until the batch is full; returns
        the row after the last one taken."""
        stop = min(len(X), start + self.batch_size - self.rows)
        needed = self.rows + stop - start
        if self.X is None or self.y is None or len(self.X) < needed:
            size = min(self.batch_size, max(needed, 2 * (0 if self.X is None else len(self.X))))
            self.X = _grown(self.X, (size, *X.shape[1:]), X.dtype, self.rows)
            self.y = _grown(self.y, (size, *y.shape[1:]), y.dtype, self.rows)
            if weights is not None:
                self.weights = _grown(self.weights, (size,), weights.dtype, self.rows)
        self.X[self.rows : needed] = X[start:stop]
        self.y[self.rows : needed] = y[start:stop]
        if weights is not None and self.weights is not None:
            self.weights[self.rows : needed] = weights[start:stop]
        self.rows = needed
        return stop

    def train(
        self, model: Sequential, opt: Optimizer, lr: float, loss_code: int, total: float
    ) -> tuple[float, int, int]:
        """One step on the rows held (a batch of at most batch_size), emptying them;
        its loss is added onto total, as model._run_epoch does."""
        assert self.X is not None and self.y is not None
        k, self.rows = self.rows, 0
        weights = None if self.weights is None else self.weights[:k]
        return model._run_epoch(
            self.X[:k],
            self.y[:k],
            weights,
            np.arange(k, dtype=np.int64),
            k,
            loss_code,
            None,
            opt,
            lr,
            total=total,
        )


def _grown(old: Any, shape: tuple[int, ...], dtype: Any, keep: int) -> Any:
    """A new buffer of shape holding old's first keep rows."""
    new = np.empty(shape, dtype=dtype)
    if old is not None and keep:
        new[:keep] = old[:keep]
    return new
