"""fit(shuffle="blocks"): blocks of consecutive rows in a random order, rows shuffled
within each block (fastbp/shuffling.py); drawn from the model's generator only."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp as fb
from fastbp import shuffling


def data(n=157, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, (X[:, 0] > 0).astype(int), rng.uniform(0.5, 2.0, n)


def model(backend="numpy", seed=5, dtype="float32"):
    return fb.Sequential(
        [fb.Dense(10, activation="tanh", input_dim=6), fb.Dense(2)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=0.01),
        seed=seed,
        backend=backend,
        dtype=dtype,
    )


def state(m):
    return (
        [a.copy() for a in m._plan.training_state()],
        m._rng.bit_generator.state,
        m.epochs_done,
    )


def assert_same_state(a, b):
    assert a[1:] == b[1:]
    for x, y in zip(a[0], b[0], strict=True):
        np.testing.assert_array_equal(x, y)


def assert_blocks(order, n, block):
    """order is a permutation of range(n) made of whole blocks of `block` rows."""
    assert order.dtype == np.int64 and order.shape == (n,)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    position = 0
    while position < n:
        first_block = order[position] // block
        size = min(block, n - first_block * block)
        visited = order[position : position + size]
        # the block's rows, all of them, next to each other in the order
        np.testing.assert_array_equal(
            np.sort(visited), np.arange(first_block * block, first_block * block + size)
        )
        position += size


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), block=st.integers(1, 400), seed=st.integers(0, 2**32))
def test_block_order_is_a_permutation_of_whole_blocks(n, block, seed):
    order = shuffling.block_order(np.random.default_rng(seed), n, block)
    assert_blocks(order, n, block)


def test_block_order_shuffles_the_blocks_and_the_rows_within_them():
    orders = [shuffling.block_order(np.random.default_rng(s), 1000, 50) for s in range(20)]
    first_blocks = {int(o[0]) // 50 for o in orders}
    assert len(first_blocks) > 5  # blocks come in different orders
    within = [o[np.flatnonzero(o // 50 == 3)] for o in orders]
    assert len({tuple(w) for w in within}) == 20  # and so do the rows of one block
    assert all(not np.array_equal(w, np.sort(w)) for w in within)


def test_blocks_are_the_order_the_epoch_visits(backend):
    """fit(shuffle="blocks") trains exactly like fit(shuffle=False) on the rows
    taken in the block order drawn from the model's generator (weights included)."""
    X, y, w = data()
    blocks, reference = model(backend), model(backend)
    rng = np.random.default_rng()
    rng.bit_generator.state = blocks._rng.bit_generator.state
    orders = [shuffling.block_order(rng, len(X), 16) for _ in range(3)]
    blocks.fit(
        X, y, epochs=3, batch_size=8, shuffle="blocks", shuffle_block=16, sample_weight=w, verbose=0
    )
    for order in orders:
        reference.fit(
            X[order], y[order], batch_size=8, shuffle=False, sample_weight=w[order], verbose=0
        )
    for a, b in zip(blocks.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert blocks._rng.bit_generator.state == rng.bit_generator.state


def test_blocks_are_deterministic_given_the_seed_and_resume_exactly(tmp_path, dtype):
    X, y, _ = data()
    fit = dict(batch_size=10, shuffle="blocks", shuffle_block=20, verbose=0)
    a, b, resumed = model(dtype=dtype), model(dtype=dtype), model(dtype=dtype)
    a.fit(X, y, epochs=4, **fit)
    b.fit(X, y, epochs=4, **fit)
    assert_same_state(state(a), state(b))
    resumed.fit(X, y, epochs=2, **fit)
    resumed.save(tmp_path / "m.npz")
    resumed = fb.load(tmp_path / "m.npz")
    resumed.fit(X, y, epochs=2, **fit)
    assert_same_state(state(resumed), state(a))
    other = model(seed=6, dtype=dtype)
    other.fit(X, y, epochs=4, **fit)
    assert not np.array_equal(other.get_weights()[0], a.get_weights()[0])


def test_the_default_block_fills_block_bytes(monkeypatch):
    X, y, _ = data()
    monkeypatch.setattr(shuffling, "BLOCK_BYTES", 6 * 4 * 12)  # 12 rows of 6 float32
    default, explicit = model(), model()
    default.fit(X, y, epochs=2, batch_size=8, shuffle="blocks", verbose=0)
    explicit.fit(X, y, epochs=2, batch_size=8, shuffle="blocks", shuffle_block=12, verbose=0)
    assert_same_state(state(default), state(explicit))
    assert shuffling.block_rows("blocks", None, 6 * 4) == 12
    assert shuffling.block_rows("blocks", None, 10**9) == 1  # rows wider than a block


def test_a_block_larger_than_the_data_is_one_shuffled_block():
    order = shuffling.block_order(np.random.default_rng(0), 10, 1000)
    np.testing.assert_array_equal(np.sort(order), np.arange(10))


def test_true_and_false_keep_their_orders():
    """shuffle=True still draws rng.permutation(n), so seeds give the weights they gave."""
    X, y, _ = data()
    a, b = model(), model()
    rng = np.random.default_rng()
    rng.bit_generator.state = a._rng.bit_generator.state
    order = rng.permutation(len(X))
    a.fit(X, y, batch_size=8, verbose=0)
    b.fit(X[order], y[order], batch_size=8, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"shuffle": "block"}, ValueError, "True, False or 'blocks'; got 'block'"),
        ({"shuffle": "random"}, ValueError, "True, False or 'blocks'"),
        ({"shuffle": 2}, ValueError, "True, False or 'blocks'; got 2"),
        ({"shuffle": None}, ValueError, "True, False or 'blocks'; got None"),
        ({"shuffle": "blocks", "shuffle_block": 0}, ValueError, "shuffle_block must be"),
        ({"shuffle": "blocks", "shuffle_block": -3}, ValueError, "shuffle_block must be"),
        ({"shuffle": "blocks", "shuffle_block": 2.5}, ValueError, "shuffle_block must be"),
        ({"shuffle": "blocks", "shuffle_block": True}, ValueError, "shuffle_block must be"),
        ({"shuffle": "blocks", "shuffle_block": "64"}, ValueError, "shuffle_block must be"),
        ({"shuffle": True, "shuffle_block": 64}, ValueError, "only to shuffle='blocks'"),
        ({"shuffle": False, "shuffle_block": 64}, ValueError, "only to shuffle='blocks'"),
    ],
)
def test_bad_shuffle_settings_are_refused_and_the_model_is_unchanged(settings, error, match):
    X, y, _ = data()
    m = model()
    m.fit(X, y, verbose=0)
    before = state(m)
    with pytest.raises(error, match=match):
        m.fit(X, y, verbose=0, **settings)
    assert_same_state(state(m), before)


def test_numpy_integers_and_bools_are_accepted():
    X, y, _ = data()
    a, b = model(), model()
    a.fit(X, y, shuffle="blocks", shuffle_block=np.int64(16), verbose=0)
    b.fit(X, y, shuffle="blocks", shuffle_block=16, verbose=0)
    assert_same_state(state(a), state(b))
    model().fit(X, y, shuffle=np.bool_(False), verbose=0)


def test_a_memmap_with_blocks_and_validation_data(tmp_path, backend):
    X, y, _ = data()
    path = tmp_path / "X.dat"
    mapped = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mapped[:] = X
    mapped.flush()
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    a, b = model(backend), model(backend)
    fit = dict(epochs=2, batch_size=8, shuffle="blocks", shuffle_block=32, verbose=0)
    one = a.fit(mapped, y, validation_data=(mapped[:40], y[:40]), **fit)
    two = b.fit(X.astype(np.float32), y, validation_data=(X[:40], y[:40]), **fit)
    assert_same_state(state(a), state(b))
    assert one.history["val_loss"] == two.history["val_loss"]
