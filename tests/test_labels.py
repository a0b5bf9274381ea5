"""Class labels as targets: classes_ is the sorted set of the first labels, training
on labels is training on their indices, predict answers with the labels, and labels
that are unknown, missing, mixed or of the wrong count are refused without changing
the model; classes_ survives files and copies, and files that lie about it are
refused."""

import copy
import datetime
import io as stdlib_io
import json
import pickle
import zipfile

import numpy as np
import pytest

import fastbp as fb
from tests.helpers import rewrite_record

NAMES = np.array(["cat", "dog", "emu"])


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    index = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])
    return X, index


def classifier(units=3, seed=0, loss="softmax_cross_entropy", activation=None):
    return fb.Sequential(
        [fb.Dense(6, activation="tanh"), fb.Dense(units, activation=activation)],
        loss=loss,
        optimizer=fb.SGD(lr=0.3),
        seed=seed,
    )


def same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize(
    "make_labels",
    [
        lambda index: NAMES[index],
        lambda index: NAMES[index].astype(object),
        lambda index: [str(v) for v in NAMES[index]],
        lambda index: np.array([10, 20, 30], dtype=object)[index],
    ],
    ids=["str", "object", "list", "object ints"],
)
def test_training_on_labels_is_training_on_their_indices(make_labels):
    X, index = data()
    labels = make_labels(index)
    on_labels, on_indices = classifier(), classifier()
    on_labels.fit(X, labels, epochs=5, batch_size=8, verbose=0)
    on_indices.fit(X, index, epochs=5, batch_size=8, verbose=0)
    assert same_weights(on_labels, on_indices)
    expected = np.unique(np.asarray(labels))
    np.testing.assert_array_equal(on_labels.classes_, expected)
    predicted = on_labels.predict(X)
    assert predicted.dtype == on_labels.classes_.dtype
    np.testing.assert_array_equal(predicted, on_labels.classes_[on_indices.predict(X)])
    np.testing.assert_array_equal(on_labels.predict_proba(X), on_indices.predict_proba(X))
    assert on_labels.evaluate(X, labels) == on_indices.evaluate(X, index)


def test_integer_indices_work_as_before_without_classes():
    X, index = data()
    m = classifier()
    m.fit(X, index, epochs=2, verbose=0)
    assert m.classes_ is None
    assert m.predict(X).dtype == np.int64 and set(m.predict(X)) <= {0, 1, 2}
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        m.fit(X, index + 1, verbose=0)


def test_a_single_class_of_indices_still_trains_with_softmax():
    X, _ = data()
    m = classifier(units=2)
    m.fit(X, np.zeros(len(X), dtype=int), epochs=1, verbose=0)
    assert m.classes_ is None


def test_a_single_class_of_labels_is_refused_with_softmax():
    X, _ = data()
    m = classifier(units=2)
    with pytest.raises(ValueError, match=r"1 class \('cat'\).*2 outputs for 2 classes"):
        m.fit(X, np.full(len(X), "cat"), verbose=0)
    assert m.classes_ is None and not m.built


def test_classes_declared_at_fit_cover_labels_absent_from_y():
    X, index = data()
    m = classifier()
    m.fit(X, NAMES[np.minimum(index, 1)], classes=NAMES, epochs=1, verbose=0)
    np.testing.assert_array_equal(m.classes_, NAMES)
    ints = classifier()
    ints.fit(X, index * 10 + 5, classes=[5, 15, 25], epochs=1, verbose=0)
    assert ints.classes_.tolist() == [5, 15, 25]
    assert set(ints.predict(X)) <= {5, 15, 25}
    with pytest.raises(ValueError, match=r"other classes .* than the model.s classes_"):
        ints.fit(X, index * 10 + 5, classes=[5, 15, 35], verbose=0)
    with pytest.raises(ValueError, match="more than once"):
        classifier().fit(X, NAMES[index], classes=["cat", "cat", "dog"], verbose=0)
    with pytest.raises(ValueError, match="'emu' not among"):
        classifier().fit(X, NAMES[index], classes=["cat", "dog", "owl"], verbose=0)


def test_pandas_categoricals_and_series_are_labels():
    pd = pytest.importorskip("pandas")
    X, index = data()
    reference = classifier()
    reference.fit(X, NAMES[index], epochs=2, verbose=0)
    for y in (
        pd.Categorical(NAMES[index]),
        pd.Series(NAMES[index]),
        pd.Series(NAMES[index], dtype="category"),
        pd.DataFrame({"animal": NAMES[index]}),
        pd.Series(pd.Categorical.from_codes(index, ["cat", "dog", "emu"])),
    ):
        m = classifier()
        m.fit(X, y, epochs=2, verbose=0)
        assert same_weights(m, reference)
        np.testing.assert_array_equal(m.classes_, NAMES)
    categorical_ints = classifier()
    categorical_ints.fit(X, pd.Categorical(index + 7), epochs=1, verbose=0)
    assert categorical_ints.classes_.tolist() == [7, 8, 9]


def test_labels_after_the_first_fit_are_those_classes():
    X, index = data()
    m = classifier()
    m.fit(X, NAMES[index], epochs=1, verbose=0)
    m.fit(X, NAMES[index][::-1], epochs=1, verbose=0)  # the same classes, another order
    before = m.get_weights()
    with pytest.raises(ValueError, match="'owl' not among the model's classes_"):
        m.fit(X, np.where(index == 2, "owl", NAMES[index]), verbose=0)
    with pytest.raises(ValueError, match="not among"):
        m.fit(X, index, verbose=0)  # integers are labels too once the model has classes
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    np.testing.assert_array_equal(m.classes_, NAMES)
    assert m.epochs_done == 2


def test_a_refused_first_fit_sets_no_classes():
    X, index = data()
    m = classifier(units=2)
    with pytest.raises(ValueError, match="3 classes"):
        m.fit(X, NAMES[index], verbose=0)
    assert m.classes_ is None and not m.built
    m = classifier()
    with pytest.raises(ValueError, match="y_val holds label 'owl'"):
        m.fit(X, NAMES[index], validation_data=(X[:2], ["cat", "owl"]), verbose=0)
    assert m.classes_ is None


def test_a_first_fit_interrupted_in_its_first_epoch_forgets_its_classes(monkeypatch):
    X, index = data()
    m = classifier()
    m.build(4)
    before = m.get_weights()

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(m, "_run_epoch", broken)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, NAMES[index], epochs=3, verbose=0)
    assert m.classes_ is None
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_mixed_labels_are_refused():
    X, index = data()
    y = NAMES[index].astype(object)
    y[5] = 3
    with pytest.raises(TypeError, match=r"mixes labels of several types: str \(row 0\), int"):
        classifier().fit(X, y, verbose=0)
    y[5] = True
    with pytest.raises(TypeError, match=r"str.*bool"):
        classifier().fit(X, y, verbose=0)


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan])
def test_missing_labels_are_refused(missing):
    X, index = data()
    y = NAMES[index].astype(object)
    y[7] = missing
    with pytest.raises(ValueError, match=r"missing label .* at row 7"):
        classifier().fit(X, y, verbose=0)


def test_pandas_missing_labels_are_refused():
    pd = pytest.importorskip("pandas")
    X, index = data()
    y = pd.Series(NAMES[index], dtype="string")
    y[4] = pd.NA
    with pytest.raises(ValueError, match=r"missing label .* at row 4"):
        classifier().fit(X, y, verbose=0)


def test_evaluate_takes_labels_and_refuses_unknown_ones():
    X, index = data()
    m = classifier()
    with pytest.raises(ValueError, match="no classes_ yet"):
        m.evaluate(X, NAMES[index])
    m.fit(X, NAMES[index], epochs=3, verbose=0)
    reference = classifier()
    reference.fit(X, index, epochs=3, verbose=0)
    assert m.evaluate(X, NAMES[index]) == reference.evaluate(X, index)
    with pytest.raises(ValueError, match="'owl' not among"):
        m.evaluate(X, np.where(index == 0, "owl", NAMES[index]))
    with pytest.raises(ValueError, match="not among"):
        m.evaluate(X, index)


def test_validation_data_takes_labels():
    X, index = data()
    m = classifier()
    history = m.fit(X, NAMES[index], validation_data=(X, NAMES[index]), epochs=2, verbose=0)
    assert history.history["val_accuracy"][-1] == m.evaluate(X, NAMES[index])["accuracy"]


def test_class_weight_is_keyed_by_label():
    X, index = data()
    by_label, by_index = classifier(), classifier()
    by_label.fit(X, NAMES[index], class_weight={"emu": 3.0, "cat": 0.5}, epochs=2, verbose=0)
    by_index.fit(X, index, class_weight={2: 3.0, 0: 0.5}, epochs=2, verbose=0)
    assert same_weights(by_label, by_index)
    with pytest.raises(ValueError, match="class_weight's keys holds label 'owl'"):
        by_label.fit(X, NAMES[index], class_weight={"owl": 2.0}, verbose=0)


def test_binary_cross_entropy_takes_two_labels():
    X, index = data()
    yes_no = np.where(index > 0, "yes", "no")
    on_labels = classifier(1, loss="binary_cross_entropy", activation="sigmoid")
    on_numbers = classifier(1, loss="binary_cross_entropy", activation="sigmoid")
    on_labels.fit(X, yes_no, epochs=3, verbose=0)
    on_numbers.fit(X, (index > 0).astype(float), epochs=3, verbose=0)
    assert same_weights(on_labels, on_numbers)
    assert on_labels.classes_.tolist() == ["no", "yes"]
    np.testing.assert_array_equal(
        on_labels.predict(X), np.array(["no", "yes"])[on_numbers.predict(X)]
    )
    with pytest.raises(ValueError, match="exactly 2 classes"):
        classifier(1, loss="binary_cross_entropy", activation="sigmoid").fit(
            X, NAMES[index], verbose=0
        )


@pytest.mark.parametrize(
    "loss, activation", [("mse", None), ("kl_divergence", None)], ids=["mse", "kl"]
)
def test_losses_without_labels_refuse_them(loss, activation):
    X, index = data()
    with pytest.raises((ValueError, TypeError), match=r"labels|numbers"):
        classifier(loss=loss, activation=activation).fit(X, NAMES[index], verbose=0)


def test_probability_rows_still_train_a_model_with_classes():
    X, index = data()
    m = classifier()
    m.fit(X, NAMES[index], epochs=1, verbose=0)
    m.fit(X, np.eye(3)[index], epochs=1, verbose=0)
    assert m.epochs_done == 2


def test_train_step_learns_classes():
    X, index = data()
    m = classifier()
    m.train_step(X, NAMES[index])
    np.testing.assert_array_equal(m.classes_, NAMES)
    with pytest.raises(ValueError, match="not among"):
        m.train_step(X, np.full(len(X), "owl"))
    np.testing.assert_array_equal(m.classes_, NAMES)


def test_classes_cannot_be_changed():
    X, index = data()
    m = classifier()
    m.fit(X, NAMES[index], epochs=1, verbose=0)
    with pytest.raises(AttributeError, match="cannot be changed"):
        m.classes_ = np.array(["a", "b", "c"])
    classes = m.classes_
    with pytest.raises(ValueError, match="read-only"):
        classes[0] = "ant"
    with pytest.raises(ValueError):
        classes.setflags(write=True)
    assert m.predict(X[:1])[0] in NAMES


# --- files and copies -----------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [NAMES, np.array([3, 7, 11]), np.array([0.5, 1.5, 2.5])],
    ids=["str", "int", "float"],
)
def test_classes_survive_save_load_pickle_and_copy(tmp_path, labels):
    X, index = data()
    m = classifier()
    m.fit(X, labels.astype(object)[index], epochs=2, verbose=0)
    m.save(tmp_path / "m.npz")
    for again in (
        fb.load(tmp_path / "m.npz"),
        pickle.loads(pickle.dumps(m)),
        copy.copy(m),
        copy.deepcopy(m),
    ):
        np.testing.assert_array_equal(again.classes_, m.classes_)
        assert again.classes_.dtype == m.classes_.dtype
        np.testing.assert_array_equal(again.predict(X), m.predict(X))


def test_boolean_labels_survive_a_file(tmp_path):
    X, index = data()
    m = classifier(2)
    m.fit(X, (index > 0).astype(object), epochs=1, verbose=0)
    assert m.classes_.tolist() == [False, True]
    m.save(tmp_path / "m.npz")
    assert fb.load(tmp_path / "m.npz").classes_.dtype == bool


def test_labels_a_file_cannot_hold_are_refused_at_save(tmp_path):
    X, index = data()
    days = np.array([datetime.date(2020, 1, d) for d in (1, 2, 3)], dtype=object)
    m = classifier()
    m.fit(X, days[index], epochs=1, verbose=0)
    assert m.predict(X[:1])[0] in set(days)
    with pytest.raises(TypeError, match=r"label of type date.*str, int, float or bool"):
        m.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize(
    "classes, match",
    [
        (["cat", "dog"], "lists 2 labels, but the model's output layer is for 3 classes"),
        (["a", "b", "c", "d"], "lists 4 labels"),
        (["dog", "cat", "emu"], "distinct and sorted"),
        (["cat", "cat", "emu"], "distinct and sorted"),
        (["cat", 1, "emu"], "labels of one type"),
        ([True, 1, 2], "labels of one type"),
        ([{"a": 1}, "b", "c"], "labels of one type"),
        ([1.0, float("inf"), 3.0], "not finite"),
        ("cat,dog,emu", "must be a list"),
    ],
)
def test_a_file_with_bad_classes_is_refused(tmp_path, classes, match):
    X, index = data()
    m = classifier()
    m.fit(X, NAMES[index], epochs=1, verbose=0)
    path = tmp_path / "m.npz"
    m.save(path)
    rewrite_record(path, lambda record: record.update(classes=classes))
    with pytest.raises(ValueError, match=f"does not hold a valid fastbp model: .*{match}"):
        fb.load(path)


def test_a_file_with_classes_for_a_regression_is_refused(tmp_path):
    m = fb.Sequential([fb.Dense(2, input_dim=3)], loss="mse", seed=0)
    path = tmp_path / "m.npz"
    m.save(path)
    rewrite_record(path, lambda record: record.update(classes=["a", "b"]))
    with pytest.raises(ValueError, match="takes no class labels"):
        fb.load(path)


def test_a_file_without_classes_loads_as_before(tmp_path):
    X, index = data()
    m = classifier()
    m.fit(X, index, epochs=1, verbose=0)
    m.save(tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as archive:
        text = str(np.load(stdlib_io.BytesIO(archive.read("architecture.npy"))))
    assert "classes" not in json.loads(text) and "feature_names_in" not in json.loads(text)
    assert fb.load(tmp_path / "m.npz").classes_ is None


def test_two_threads_fitting_other_labels_never_mix_them():
    """The classes are read and set under the training lock: of two first fits with
    other label sets, one trains and sets classes_, the other is refused."""
    import threading

    X, index = data()
    m = classifier(2)
    outcomes = []

    def fit(labels):
        try:
            m.fit(X, labels[(index > 0).astype(int)], epochs=3, verbose=0)
            outcomes.append(("trained", labels.tolist()))
        except ValueError as exc:
            outcomes.append(("refused", str(exc)))

    workers = [
        threading.Thread(target=fit, args=(np.array(pair),)) for pair in (["a", "b"], ["x", "y"])
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    kinds = sorted(kind for kind, _ in outcomes)
    assert kinds == ["refused", "trained"], outcomes
    trained = next(value for kind, value in outcomes if kind == "trained")
    assert m.classes_.tolist() == trained and m.epochs_done == 3
