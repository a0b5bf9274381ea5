"""The order in which an epoch visits the rows: fit's shuffle= and shuffle_block=.

- ``shuffle=True``: a fresh permutation of all the rows each epoch.
- ``shuffle=False``: the rows in their order.
- ``shuffle="blocks"``: the rows are cut into blocks of ``shuffle_block``
  consecutive rows (the last one may be shorter); each epoch visits the blocks in
  a fresh random order, and the rows of each block in a fresh random order. A
  batch then draws its rows from one block (or two), so an X that lives on disk
  (a np.memmap) is read a block at a time, in pieces of a few MiB, instead of one
  page per row all over the file. The price is a weaker mix: rows that are close
  in the file stay close in the epoch.

Every order is drawn from the model's random generator only, so it is the same on
every rank of a distributed fit (whose generators are broadcast from rank 0) and
again after a restore (docs/design.md §2.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastbp import validation as check

#: The default block of shuffle="blocks": as many rows as fill this many bytes.
BLOCK_BYTES = 4 << 20

#: fit's shuffle= once checked: True, False or the name of a mode.
Shuffle = bool | str


def _permutation(rng: np.random.Generator, n: int, block_rows: int) -> NDArray[np.int64]:
    return rng.permutation(n).astype(np.int64, copy=False)


def _in_order(rng: np.random.Generator, n: int, block_rows: int) -> NDArray[np.int64]:
    return np.arange(n, dtype=np.int64)


def block_order(rng: np.random.Generator, n: int, block_rows: int) -> NDArray[np.int64]:
    """A permutation of range(n) that visits blocks of block_rows consecutive rows
    in a random order, and the rows of each block in a random order.

    Returns an int64 array of shape (n,). The draws: the order of the blocks, then
    the rows of every full block (one call), then the rows of the short last block.
    """
    block_rows = min(max(int(block_rows), 1), max(n, 1))
    n_full, tail = divmod(n, block_rows)
    blocks = rng.permutation(n_full + (1 if tail else 0))
    # row r of `within` holds full block r's rows, in their shuffled order
    within = np.tile(np.arange(block_rows, dtype=np.int64), (n_full, 1))
    rng.permuted(within, axis=1, out=within)
    within += (np.arange(n_full, dtype=np.int64) * block_rows)[:, None]
    short = rng.permutation(tail).astype(np.int64) + n_full * block_rows
    order = np.empty(n, dtype=np.int64)
    if not tail:
        order[:] = within[blocks].reshape(-1)
        return order
    where = int(np.flatnonzero(blocks == n_full)[0])  # the short block's place
    before = within[blocks[:where]].reshape(-1)
    order[: len(before)] = before
    order[len(before) : len(before) + tail] = short
    order[len(before) + tail :] = within[blocks[where + 1 :]].reshape(-1)
    return order


#: shuffle mode -> the function drawing an epoch's order (rng, n_samples, block_rows)
ORDERS: dict[Any, Callable[[np.random.Generator, int, int], NDArray[np.int64]]] = {
    True: _permutation,
    False: _in_order,
    "blocks": block_order,
}


def check_shuffle(shuffle: Any) -> Shuffle:
    """shuffle as True, False or "blocks", or ValueError saying what is accepted."""
    if isinstance(shuffle, str):
        if shuffle in ORDERS:
            return shuffle
        raise ValueError(
            f"shuffle must be True, False or 'blocks'; got {shuffle!r} "
            "('blocks' shuffles blocks of consecutive rows, for data on disk)"
        )
    try:
        return check.check_bool("shuffle", shuffle)
    except ValueError:
        raise ValueError(
            f"shuffle must be True, False or 'blocks'; got {check._shown(shuffle)}"
        ) from None


def block_rows(shuffle: Shuffle, shuffle_block: Any, row_bytes: int) -> int | None:
    """The block size in rows for shuffle="blocks" (shuffle_block, or as many rows
    as fill BLOCK_BYTES at row_bytes a row); None for the other modes, which refuse
    a shuffle_block."""
    if shuffle != "blocks":
        if shuffle_block is not None:
            raise ValueError(
                f"shuffle_block={check._shown(shuffle_block)} applies only to "
                f"shuffle='blocks', but shuffle={shuffle!r}; pass shuffle='blocks' or "
                "leave shuffle_block out"
            )
        return None
    if shuffle_block is None:
        return max(1, BLOCK_BYTES // max(int(row_bytes), 1))
    return check.positive_int("shuffle_block", shuffle_block)


def epoch_order(
    rng: np.random.Generator, n: int, shuffle: Shuffle, block_rows: int | None
) -> NDArray[np.int64]:
    """The rows of one epoch, int64 of shape (n,), drawn from rng as shuffle says."""
    return ORDERS[shuffle](rng, n, block_rows or 1)
