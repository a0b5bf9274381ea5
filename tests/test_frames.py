"""pandas DataFrames and Series as input: the same training as the arrays they hold,
column names remembered and checked (never a silent reorder), clear refusals for
columns that are not numbers and for missing values, names kept by files and copies,
and pandas never imported by fastbp itself."""

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastbp as fb
from tests.helpers import rewrite_record

pd = pytest.importorskip("pandas")


def frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "height": rng.standard_normal(n),
            "count": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "ratio": pd.array(rng.standard_normal(n), dtype="Float64"),
            "flag": pd.array(rng.integers(0, 2, n).astype(bool), dtype="boolean"),
            "small": rng.integers(-3, 3, n).astype(np.int8),
            "on": rng.integers(0, 2, n).astype(bool),
        }
    )


def as_numbers(df):
    """The values a DataFrame of numbers stands for, as a float64 array built by hand."""
    return np.column_stack([np.array(list(df[c]), dtype=np.float64) for c in df.columns])


def model(dtype="float32", seed=0):
    return fb.Sequential(
        [fb.Dense(5, activation="tanh"), fb.Dense(1)], loss="mse", dtype=dtype, seed=seed
    )


def target(df):
    return np.asarray(as_numbers(df) @ np.arange(1, df.shape[1] + 1) / 10.0)


# --- values ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_dataframe_trains_exactly_as_the_array_it_holds(dtype):
    df = frame()
    y = target(df)
    on_frame, on_array = model(dtype), model(dtype)
    on_frame.fit(df, pd.Series(y), epochs=3, batch_size=8, verbose=0)
    on_array.fit(as_numbers(df), y, epochs=3, batch_size=8, verbose=0)
    for a, b in zip(on_frame.get_weights(), on_array.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(on_frame.predict(df), on_array.predict(df.to_numpy(float)))
    assert on_frame.evaluate(df, y) == on_array.evaluate(as_numbers(df), y)


def test_feature_names_are_those_of_the_first_fit():
    df = frame()
    m = model()
    assert m.feature_names_in_ is None
    m.fit(df, target(df), epochs=1, verbose=0)
    names = m.feature_names_in_
    assert isinstance(names, np.ndarray) and names.tolist() == list(df.columns)
    assert all(type(name) is str for name in names)
    plain = model()
    plain.fit(as_numbers(df), target(df), epochs=1, verbose=0)
    assert plain.feature_names_in_ is None


@pytest.mark.parametrize("column", ["count", "ratio", "flag"])
def test_pd_na_is_refused_naming_its_column(column):
    df = frame()
    df.loc[3, column] = pd.NA
    m = model()
    with pytest.raises(ValueError, match=f"NaN or infinite values.*missing.*'{column}'"):
        m.fit(df, target(frame()), verbose=0)
    assert not m.built and m.feature_names_in_ is None


def test_nan_and_infinity_in_plain_columns_are_named():
    df = frame()
    df.loc[0, "height"] = np.nan
    df["small"] = df["small"].astype(float)
    df.loc[1, "small"] = np.inf
    with pytest.raises(ValueError, match=r"missing.*'height'.*infinite.*'small'"):
        model().fit(df, np.zeros(len(df)), verbose=0)


def test_an_overflow_is_called_an_overflow():
    df = pd.DataFrame({"a": [1.0, 1e39], "b": [0.0, 1.0]})
    with pytest.raises(ValueError, match="overflow float32"):
        model().fit(df, np.zeros(2), verbose=0)


@pytest.mark.parametrize(
    "column",
    [
        pd.Categorical(["a", "b"] * 20),
        np.array(["x", "y"] * 20, dtype=object),
        pd.array(["x", "y"] * 20, dtype="string"),
        pd.to_datetime(["2020-01-01"] * 40),
        np.ones(40, dtype=complex),
    ],
    ids=["categorical", "object", "string", "datetime", "complex"],
)
def test_columns_that_are_not_numbers_are_refused_by_name(column):
    df = frame()
    df["odd"] = column
    with pytest.raises(TypeError, match="column 'odd'"):
        model().fit(df, target(frame()), verbose=0)


def test_every_column_that_is_not_numbers_is_named():
    df = frame()
    df["colour"] = pd.Categorical(["a", "b"] * 20)
    df["name"] = ["n"] * 40
    with pytest.raises(TypeError, match=r"columns 'colour' \(category\), 'name'"):
        model().predict(df)


def test_a_series_as_X_must_be_2d():
    with pytest.raises(ValueError, match=r"must be 2-D.*Series.*to_frame"):
        model().fit(frame()["height"], np.zeros(40), verbose=0)


def test_an_empty_frame_is_refused():
    with pytest.raises(ValueError, match="empty"):
        model().fit(frame().iloc[:0], np.zeros(0), verbose=0)


def test_y_and_sample_weight_may_be_series_and_y_a_one_column_frame():
    df = frame()
    y = target(df)
    weights = np.linspace(0.5, 1.5, len(df))
    reference = model()
    reference.fit(df, y, epochs=2, sample_weight=weights, verbose=0)
    for y_in, w_in in [
        (pd.DataFrame({"t": y}), pd.Series(weights)),
        (pd.Series(y), pd.Series(weights, dtype="Float64")),
    ]:
        m = model()
        m.fit(df, y_in, epochs=2, sample_weight=w_in, verbose=0)
        for a, b in zip(m.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_missing_targets_and_weights_in_series_are_refused():
    df = frame()
    y = pd.Series(target(df), dtype="Float64")
    y[2] = pd.NA
    with pytest.raises(ValueError, match="y contains NaN"):
        model().fit(df, y, verbose=0)
    weights = pd.Series(np.ones(len(df)), dtype="Float64")
    weights[0] = pd.NA
    with pytest.raises(ValueError, match="sample_weight must be finite"):
        model().fit(df, target(df), sample_weight=weights, verbose=0)


# --- names ----------------------------------------------------------------------------


@pytest.fixture
def fitted():
    df = frame()
    m = model()
    m.fit(df, target(df), epochs=1, verbose=0)
    return m, df


def test_columns_in_another_order_are_refused_not_reordered(fitted):
    m, df = fitted
    shuffled = df[list(reversed(df.columns))]
    for call in (m.predict, lambda X: m.evaluate(X, target(df)), lambda X: m.fit(X, target(df))):
        with pytest.raises(ValueError, match=r"another order.*feature_names_in_"):
            call(shuffled)
    # and the fix the message gives works
    np.testing.assert_array_equal(m.predict(shuffled[m.feature_names_in_]), m.predict(df))


def test_other_names_are_refused_listing_the_difference(fitted):
    m, df = fitted
    renamed = df.rename(columns={"height": "weight", "on": "off"})
    with pytest.raises(
        ValueError, match=r"not seen at fit: 'weight', 'off'.*missing: 'height', 'on'"
    ):
        m.predict(renamed)


def test_an_extra_or_missing_column_is_named_not_just_counted(fitted):
    m, df = fitted
    with pytest.raises(ValueError, match="names not seen at fit: 'extra'"):
        m.predict(df.assign(extra=1.0))
    with pytest.raises(ValueError, match="names missing: 'flag'"):
        m.evaluate(df.drop(columns="flag"), target(df))


def test_a_later_fit_with_other_names_changes_nothing(fitted):
    m, df = fitted
    before = m.get_weights()
    with pytest.raises(ValueError, match="not seen at fit"):
        m.fit(df.rename(columns={"small": "tiny"}), target(df), verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert m.feature_names_in_.tolist() == list(df.columns) and m.epochs_done == 1


def test_validation_data_with_other_names_is_refused_before_training(fitted):
    m, df = fitted
    before = m.get_weights()
    shuffled = df[list(reversed(df.columns))]
    with pytest.raises(ValueError, match="X_val has the model's feature names in another order"):
        m.fit(df, target(df), validation_data=(shuffled, target(df)), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_names_at_the_first_fit_check_its_validation_data():
    df = frame()
    m = model()
    with pytest.raises(ValueError, match="X_val's feature names differ"):
        m.fit(df, target(df), validation_data=(df.rename(columns=str.upper), target(df)))
    assert m.feature_names_in_ is None and not m.built


def test_an_array_after_a_fit_with_names_warns(fitted):
    m, df = fitted
    with pytest.warns(UserWarning, match="has no feature names, but the model was fitted with"):
        out = m.predict(df.to_numpy(float))
    np.testing.assert_array_equal(out, m.predict(df))


def test_the_warning_points_at_the_callers_line(fitted):
    m, df = fitted
    for call in (m.predict, lambda X: m.fit(X, target(df), verbose=0)):
        with pytest.warns(UserWarning, match="no feature names") as caught:
            call(df.to_numpy(float))
        assert caught[0].filename == __file__


def test_names_after_a_fit_without_names_warn():
    df = frame()
    m = model()
    m.fit(as_numbers(df), target(df), epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="X has feature names, but the model was fitted on data"):
        m.predict(df)
    with pytest.warns(UserWarning, match="fitted on data without names"):
        m.fit(df, target(df), verbose=0)
    assert m.feature_names_in_ is None  # a model trained without names stays so


def test_an_untrained_model_neither_warns_nor_records_at_predict():
    df = frame()
    m = fb.Sequential([fb.Dense(1, input_dim=df.shape[1])], seed=0)
    m.predict(df)
    m.predict(as_numbers(df))
    assert m.feature_names_in_ is None
    m.fit(df, target(df), epochs=0, verbose=0)
    assert m.feature_names_in_.tolist() == list(df.columns)


def test_train_step_records_and_checks_names():
    df = frame()
    m = model()
    m.train_step(df, target(df))
    assert m.feature_names_in_.tolist() == list(df.columns)
    with pytest.raises(ValueError, match="another order"):
        m.train_step(df[list(reversed(df.columns))], target(df))


def test_duplicate_column_names_are_refused():
    df = pd.DataFrame(np.ones((4, 3)), columns=["a", "b", "a"])
    with pytest.raises(ValueError, match=r"duplicate column names \('a'\)"):
        model().fit(df, np.ones(4), verbose=0)


def test_integer_column_names_are_no_names():
    """As scikit-learn: names count only when they are all strings."""
    values = frame().to_numpy(float)
    m = model()
    m.fit(pd.DataFrame(values), np.ones(len(values)), epochs=1, verbose=0)
    assert m.feature_names_in_ is None
    m.predict(values)  # no warning: neither had names
    m.predict(pd.DataFrame(values[:, ::-1]))  # nor here: integer names are not checked


def test_string_and_integer_names_mixed_are_refused():
    df = pd.DataFrame(np.ones((4, 2)), columns=["a", 1])
    with pytest.raises(TypeError, match=r"mix strings with int names.*astype\(str\)"):
        model().fit(df, np.ones(4), verbose=0)


def test_a_memmap_trains_without_names_and_warns_a_model_fitted_with_them(tmp_path, fitted):
    m, df = fitted
    path = tmp_path / "X.dat"
    mapped = np.memmap(path, dtype=np.float32, mode="w+", shape=(len(df), df.shape[1]))
    mapped[:] = df.to_numpy(np.float32)
    plain = model()
    plain.fit(mapped, target(df), epochs=1, verbose=0)
    assert plain.feature_names_in_ is None
    with pytest.warns(UserWarning, match="has no feature names"):
        m.predict(mapped)


def test_feature_names_cannot_be_changed(fitted):
    m, df = fitted
    with pytest.raises(AttributeError, match="cannot be changed"):
        m.feature_names_in_ = np.array(["x"] * df.shape[1], dtype=object)
    names = m.feature_names_in_
    with pytest.raises(ValueError, match="read-only"):
        names[0] = "x"
    with pytest.raises(ValueError):
        names.setflags(write=True)
    assert m.feature_names_in_[0] == "height"


# --- files and copies -----------------------------------------------------------------


def test_names_survive_save_load_pickle_and_copy(tmp_path, fitted):
    m, df = fitted
    m.save(tmp_path / "m.npz")
    for again in (
        fb.load(tmp_path / "m.npz"),
        pickle.loads(pickle.dumps(m)),
        copy.copy(m),
        copy.deepcopy(m),
    ):
        assert again.feature_names_in_.tolist() == list(df.columns)
        with pytest.raises(ValueError, match="another order"):
            again.predict(df[list(reversed(df.columns))])


def test_a_model_trained_on_arrays_still_warns_after_a_reload(tmp_path):
    df = frame()
    m = model()
    m.fit(as_numbers(df), target(df), epochs=1, verbose=0)
    m.save(tmp_path / "m.npz")
    with pytest.warns(UserWarning, match="fitted on data without names"):
        fb.load(tmp_path / "m.npz").predict(df)


@pytest.mark.parametrize(
    "names, match",
    [
        (["a", "b"], "lists 2 names, but the model takes 6 features"),
        (["a", "b", "c", "d", "e", "f", "g"], "lists 7 names"),
        (["a", "b", "c", "d", "e", 6], "must be a list of strings"),
        ("abcdef", "must be a list of strings"),
        (["a", "b", "c", "d", "e", "a"], "repeats names"),
    ],
)
def test_a_file_with_bad_feature_names_is_refused(tmp_path, fitted, names, match):
    m, _ = fitted
    path = tmp_path / "m.npz"
    m.save(path)
    rewrite_record(path, lambda record: record.update(feature_names_in=names))
    with pytest.raises(ValueError, match=f"does not hold a valid fastbp model: .*{match}"):
        fb.load(path)


# --- pandas stays optional ------------------------------------------------------------


def test_fastbp_never_imports_pandas():
    code = (
        "import sys, numpy as np, fastbp as fb\n"
        "m = fb.Sequential([fb.Dense(2, input_dim=3)], loss='softmax_cross_entropy', seed=0)\n"
        "X = np.random.default_rng(0).standard_normal((20, 3))\n"
        "m.fit(X, (X[:, 0] > 0).astype(int), epochs=2, verbose=0)\n"
        "m.fit(X, np.where(X[:, 0] > 0, 'a', 'b'), epochs=1, verbose=0)\n"
        "m.predict(X); m.evaluate(X, np.where(X[:, 0] > 0, 'a', 'b'))\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
