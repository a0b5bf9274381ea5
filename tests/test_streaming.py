"""fit over a stream of chunks (fastbp/streaming.py): the weights of fit(shuffle=False)
over the concatenation, bit for bit; every chunk checked as it arrives; a refused
chunk or Ctrl-C leaves the model as the epoch found it."""

import itertools

import numpy as np
import pytest

import fastbp as fb

N_ROWS, WIDTH, BATCH = 103, 5, 10


def data(seed=0, n=N_ROWS):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, WIDTH))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 0.5).astype(int)
    w = rng.uniform(0.1, 2.0, n)
    return X, y, w


OPTIMIZERS = {
    "sgd": lambda: fb.SGD(lr=0.1, momentum=0.9, weight_decay=1e-3),
    "adam": lambda: fb.Adam(lr=0.01),
}


def model(backend="numpy", dtype="float32", optimizer="adam", seed=3):
    return fb.Sequential(
        [
            fb.Dense(12, activation="tanh", input_dim=WIDTH),
            fb.Dropout(0.2),  # masks count rows of the global batch: they must line up too
            fb.Dense(3),
        ],
        loss="softmax_cross_entropy",
        optimizer=OPTIMIZERS[optimizer](),
        dtype=dtype,
        seed=seed,
        backend=backend,
    )


def chunked(size, *arrays):
    """A function giving a fresh list of chunks of `size` rows (the last shorter)."""
    n = len(arrays[0])
    return lambda: [tuple(a[k : k + size] for a in arrays) for k in range(0, n, size)]


def state(m):
    """Everything that says how far training got, and what the model learnt."""
    return (
        [a.copy() for a in m._plan.training_state()],
        m._rng.bit_generator.state,
        m.epochs_done,
        None if m.feature_names_in_ is None else list(m.feature_names_in_),
        None if m.classes_ is None else list(m.classes_),
    )


def assert_same_state(a, b):
    assert a[1:] == b[1:]
    assert len(a[0]) == len(b[0])
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)


def assert_same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


# --- the same weights as the concatenation --------------------------------------------


@pytest.mark.parametrize("size", [1, 7, BATCH, 23, 500])  # one row, < batch, = batch, odd, > data
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("weighted", [False, True])
def test_chunks_train_bit_identically_to_their_concatenation(
    backend, dtype, size, optimizer, weighted
):
    X, y, w = data()
    arrays = (X, y, w) if weighted else (X, y)
    whole, streamed = model(backend, dtype, optimizer), model(backend, dtype, optimizer)
    one = whole.fit(
        X,
        y,
        epochs=3,
        batch_size=BATCH,
        shuffle=False,
        verbose=0,
        sample_weight=w if weighted else None,
    )
    two = streamed.fit(chunked(size, *arrays), epochs=3, batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_weights(streamed, whole)
    assert streamed.epochs_done == 3
    assert int(streamed._plan.step_count[0]) == int(whole._plan.step_count[0])
    # the history too: both sum the same batch losses in the same order
    for key in ("loss", "accuracy"):
        assert two.history[key] == one.history[key], key


def test_chunks_of_uneven_sizes_with_empty_ones_and_a_batch_larger_than_the_data(backend):
    X, y, _ = data()
    cuts = [0, 0, 3, 3, 4, 30, 31, 31, 90, N_ROWS, N_ROWS]  # empty chunks in between
    chunks = [(X[a:b], y[a:b]) for a, b in itertools.pairwise(cuts)]
    for batch_size in (4, 64, 1000):
        whole, streamed = model(backend), model(backend)
        whole.fit(X, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
        streamed.fit(chunks, epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
        assert_same_weights(streamed, whole)


def test_a_stream_may_continue_a_model_trained_on_arrays():
    X, y, _ = data()
    whole, streamed = model(), model()
    whole.fit(X, y, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    streamed.fit(X, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    streamed.fit(chunked(9, X, y), epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_weights(streamed, whole)
    assert streamed.epochs_done == 2


def test_class_labels_declared_with_classes(backend):
    X, y, _ = data()
    labels = np.array(["low", "mid", "top"])[y]
    whole, streamed = model(backend), model(backend)
    whole.fit(X, labels, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    first_chunk_lacks_a_class = labels.copy()
    streamed.fit(
        chunked(8, X, first_chunk_lacks_a_class),
        classes=["top", "low", "mid"],
        epochs=2,
        batch_size=BATCH,
        shuffle=False,
        verbose=0,
    )
    assert_same_weights(streamed, whole)
    assert list(streamed.classes_) == ["low", "mid", "top"]
    np.testing.assert_array_equal(streamed.predict(X), whole.predict(X))


def test_class_weight_applies_to_every_chunk():
    X, y, _ = data()
    weights = {0: 0.5, 2: 3.0}
    whole, streamed = model(), model()
    whole.fit(X, y, batch_size=BATCH, shuffle=False, verbose=0, class_weight=weights)
    streamed.fit(chunked(6, X, y), batch_size=BATCH, shuffle=False, verbose=0, class_weight=weights)
    assert_same_weights(streamed, whole)


def test_regression_targets_and_validation_data():
    X, _, _ = data()
    Y = np.stack([X[:, 0] * X[:, 1], np.sin(X[:, 2])], axis=1)

    def regressor():
        return fb.Sequential(
            [fb.Dense(8, activation="relu", input_dim=WIDTH), fb.Dense(2)],
            loss="mse",
            optimizer=fb.SGD(lr=0.05),
            seed=1,
        )

    whole, streamed = regressor(), regressor()
    fit = dict(epochs=2, batch_size=BATCH, shuffle=False, verbose=0, validation_data=(X, Y))
    one = whole.fit(X, Y, **fit)
    two = streamed.fit(chunked(17, X, Y), **fit)
    assert_same_weights(streamed, whole)
    assert two.history["val_loss"] == one.history["val_loss"]


def test_dataframe_chunks_record_their_feature_names():
    pd = pytest.importorskip("pandas")
    X, y, _ = data()
    columns = [f"f{k}" for k in range(WIDTH)]
    frame = pd.DataFrame(X, columns=columns)
    whole, streamed = model(), model()
    whole.fit(frame, y, batch_size=BATCH, shuffle=False, verbose=0)
    chunks = [(frame.iloc[k : k + 20], pd.Series(y[k : k + 20])) for k in range(0, N_ROWS, 20)]
    streamed.fit(chunks, batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_weights(streamed, whole)
    assert list(streamed.feature_names_in_) == columns


def test_a_progress_line_counts_the_rows_of_the_stream(capsys):
    X, y, _ = data()
    model().fit(chunked(30, X, y), epochs=2, batch_size=BATCH, shuffle=False, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert all(f"{-(-N_ROWS // BATCH)}/{-(-N_ROWS // BATCH)}" in line for line in lines)


# --- where the chunks come from ---------------------------------------------------------


def test_a_list_is_read_again_each_epoch_and_a_function_is_called_each_epoch():
    X, y, _ = data()
    calls = []

    def source():
        calls.append(1)
        return iter(chunked(25, X, y)())

    from_list, from_function = model(), model()
    from_list.fit(chunked(25, X, y)(), epochs=3, batch_size=BATCH, shuffle=False, verbose=0)
    from_function.fit(source, epochs=3, batch_size=BATCH, shuffle=False, verbose=0)
    assert len(calls) == 3
    assert_same_weights(from_list, from_function)


def test_a_generator_gives_one_epoch():
    X, y, _ = data()
    whole, streamed = model(), model()
    whole.fit(X, y, batch_size=BATCH, shuffle=False, verbose=0)
    streamed.fit(iter(chunked(25, X, y)()), epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_weights(streamed, whole)


def test_a_generator_with_several_epochs_is_refused_before_it_is_read():
    X, y, _ = data()
    m = model()
    before = state(m)
    read = []

    def generator():
        for chunk in chunked(25, X, y)():
            read.append(1)
            yield chunk

    with pytest.raises(ValueError, match=r"one-shot iterator.*epochs=2"):
        m.fit(generator(), epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    assert read == []
    assert_same_state(state(m), before)


@pytest.mark.parametrize(
    ("source", "error", "match"),
    [
        (lambda: 42, TypeError, "returned a int, not an iterable"),
        (42, TypeError, "X of type int without y"),
        ("chunks.parquet", TypeError, "X of type str without y"),
        (np.ones((4, WIDTH)), TypeError, "array X without y"),
        ([], ValueError, "gave no rows"),
        ([[0.5, 1.5], [2.5, 3.5]], TypeError, "2 numbers.*without y"),
        (lambda: iter([(np.ones((0, WIDTH)), np.ones(0))]), ValueError, "gave no rows"),
    ],
)
def test_sources_that_are_not_streams_are_refused(source, error, match):
    m = model()
    before = state(m)
    with pytest.raises(error, match=match):
        m.fit(source, batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_state(state(m), before)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"shuffle": True}, "shuffle=False"),
        ({"shuffle": "blocks"}, "shuffle=False"),
        ({"shuffle": False, "batch_size": None}, "needs a batch_size"),
        ({"shuffle": False, "sample_weight": np.ones(N_ROWS)}, "triples"),
        ({"shuffle": False, "shuffle_block": 4}, "shuffle_block"),
        ({"shuffle": False, "batch_size": 0}, "batch_size"),
    ],
)
def test_settings_a_stream_cannot_honour_are_refused(settings, match):
    X, y, _ = data()
    m = model()
    before = state(m)
    with pytest.raises(ValueError, match=match):
        m.fit(chunked(25, X, y), **{"batch_size": BATCH, "verbose": 0, **settings})
    assert_same_state(state(m), before)


# --- hostile chunks: refused as they arrive, the model as fit found it ----------------


def spoiled(kind):
    """Chunks of 20 rows, the third one spoiled as `kind` says."""
    X, y, w = data()
    chunks = [(X[k : k + 20], y[k : k + 20]) for k in range(0, N_ROWS, 20)]
    Xc, yc = chunks[2]
    bad = {
        "wide": (np.hstack([Xc, Xc[:, :1]]), yc),
        "nan": (np.where(np.arange(20)[:, None] == 7, np.nan, Xc), yc),
        "inf": (np.where(np.arange(20)[:, None] == 0, np.inf, Xc), yc),
        "short y": (Xc, yc[:-1]),
        "class out of range": (Xc, np.full(20, 3)),
        "not a tuple": Xc,
        "a triple too long": (Xc, yc, np.ones(20), np.ones(20)),
        "no y": (Xc, None),
        "strings": (np.full((20, WIDTH), "a"), yc),
        "labels": (Xc, np.array(["a", "b", "c"] * 7)[:20]),
        "probabilities": (Xc, np.eye(3)[yc]),
        "weights": (Xc, yc, np.ones(20)),
        "negative weights": None,
    }[kind]
    if kind == "negative weights":  # every chunk weighted, the third one wrongly
        chunks = [(Xk, yk, w[: len(Xk)]) for Xk, yk in chunks]
        bad = (Xc, yc, -np.ones(20))
    chunks[2] = bad
    return chunks


HOSTILE = {
    "wide": (ValueError, "X of chunk 3 has 6 features, but the model was built for 5"),
    "nan": (ValueError, "X of chunk 3 contains NaN"),
    "inf": (ValueError, "X of chunk 3 contains NaN or infinite"),
    "short y": (ValueError, "y of chunk 3"),
    "class out of range": (ValueError, "y of chunk 3"),
    "not a tuple": (TypeError, "chunk 3 of the stream must be a pair.*got a ndarray"),
    "a triple too long": (TypeError, "chunk 3 .*a tuple of length 4"),
    "no y": (TypeError, "chunk 3 of the stream has no y"),
    "strings": (TypeError, "X of chunk 3"),
    "labels": (ValueError, "y of chunk 3 holds class labels, but the stream began"),
    "probabilities": (ValueError, "y of chunk 3 holds another kind of target"),
    "weights": (ValueError, "chunk 3 has sample weights, but the first chunk had none"),
    "negative weights": (ValueError, "sample weights of chunk 3 must be finite and >= 0"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("trained", [False, True])
def test_a_bad_chunk_mid_epoch_leaves_the_model_as_fit_found_it(backend, kind, trained):
    X, y, _ = data()
    m = model(backend)
    if trained:
        m.fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    before = state(m)
    error, match = HOSTILE[kind]
    with pytest.raises(error, match=match):
        m.fit(spoiled(kind), batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_state(state(m), before)
    # and it still trains as if the refused fit never happened
    again, fresh = m, model(backend)
    if trained:
        fresh.fit(X, y, epochs=1, batch_size=BATCH, verbose=0)
    again.fit(chunked(20, X, y), batch_size=BATCH, shuffle=False, verbose=0)
    fresh.fit(chunked(20, X, y), batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_weights(again, fresh)


def test_a_bad_first_chunk_is_refused_before_the_model_changes():
    _, y, _ = data()
    m = fb.Sequential([fb.Dense(3)], loss="softmax_cross_entropy", seed=0)  # not built
    with pytest.raises(ValueError, match="X of chunk 1 contains NaN"):
        m.fit([(np.full((4, WIDTH), np.nan), y[:4])], batch_size=BATCH, shuffle=False)
    assert not m.built


def test_class_labels_without_declared_classes_are_refused():
    X, y, _ = data()
    labels = np.array(["low", "mid", "top"])[y]
    m = model()
    before = state(m)
    with pytest.raises(ValueError, match=r"y of chunk 1 holds class labels.*classes=\["):
        m.fit(chunked(20, X, labels), batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_state(state(m), before)
    labels[30] = "odd"  # in chunk 2, and not declared
    with pytest.raises(ValueError, match="y of chunk 2 holds label 'odd' not among"):
        m.fit(
            chunked(20, X, labels),
            classes=["low", "mid", "top"],
            batch_size=BATCH,
            shuffle=False,
            verbose=0,
        )
    assert_same_state(state(m), before)


def test_a_dataframe_chunk_with_renamed_columns_is_refused():
    pd = pytest.importorskip("pandas")
    X, y, _ = data()
    columns = [f"f{k}" for k in range(WIDTH)]
    chunks = [(pd.DataFrame(X[k : k + 20], columns=columns), y[k : k + 20]) for k in (0, 20, 40)]
    chunks[2] = (chunks[2][0].rename(columns={"f1": "g1"}), chunks[2][1])
    m = model()
    before = state(m)
    with pytest.raises(ValueError, match="g1"):
        m.fit(chunks, batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_state(state(m), before)
    assert m.feature_names_in_ is None
    chunks[2] = (pd.DataFrame(X[40:60], columns=columns)[columns[::-1]], y[40:60])
    with pytest.raises(ValueError, match="order"):  # the same names reordered
        m.fit(chunks, batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_state(state(m), before)


def test_a_bad_chunk_in_a_later_epoch_keeps_the_epochs_completed():
    X, y, _ = data()
    epochs = []

    def source():  # the second epoch's third chunk holds a NaN
        epochs.append(1)
        return spoiled("nan") if len(epochs) == 2 else chunked(20, X, y)()

    m, one_epoch = model(), model()
    one_epoch.fit(chunked(20, X, y), batch_size=BATCH, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="chunk 3"):
        m.fit(source, epochs=3, batch_size=BATCH, shuffle=False, verbose=0)
    assert m.epochs_done == 1
    assert_same_state(state(m), state(one_epoch))


@pytest.mark.parametrize("epoch", [0, 1])
def test_ctrl_c_raised_by_the_iterator_rolls_the_epoch_back(backend, epoch):
    X, y, _ = data()
    calls = []

    def source():
        calls.append(1)
        for k, chunk in enumerate(chunked(20, X, y)()):
            if len(calls) == epoch + 1 and k == 3:
                raise KeyboardInterrupt
            yield chunk

    m, reference = model(backend), model(backend)
    if epoch:
        reference.fit(chunked(20, X, y), batch_size=BATCH, shuffle=False, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        m.fit(source, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_state(state(m), state(reference))


def test_a_stream_that_diverges_is_rolled_back_and_reported():
    X, y, _ = data()
    m = fb.Sequential(
        [fb.Dense(8, input_dim=WIDTH), fb.Dense(2)], loss="mse", optimizer=fb.SGD(lr=1e6), seed=0
    )
    before = state(m)
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        m.fit(chunked(20, X * 1e3, np.eye(2)[y % 2]), batch_size=BATCH, shuffle=False, verbose=0)
    assert_same_state(state(m), before)


def test_a_stream_is_refused_with_a_communicator():
    MPI = pytest.importorskip("mpi4py.MPI")
    X, y, _ = data()
    m = model()
    before = state(m)
    with pytest.raises(ValueError, match="cannot be shared among MPI ranks"):
        m.fit(chunked(20, X, y), batch_size=BATCH, shuffle=False, verbose=0, comm=MPI.COMM_SELF)
    assert_same_state(state(m), before)
