"""fastbp.sklearn: the scikit-learn-style estimators, with and without scikit-learn."""

import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastbp as fb
from fastbp import datasets
from fastbp.sklearn import MLPClassifier, MLPRegressor, NotFittedError

PARAMS = [
    "activation",
    "backend",
    "batch_size",
    "dtype",
    "epochs",
    "hidden_layer_sizes",
    "learning_rate",
    "random_state",
    "verbose",
    "weight_decay",
]


def moons_split():
    X, y = datasets.moons(n_samples=300, noise=0.1, seed=0)
    return datasets.train_test_split(X, y, test_size=0.3, seed=0)


def small_classifier(**params):
    settings = dict(hidden_layer_sizes=(16,), learning_rate=0.1, epochs=40, random_state=0)
    settings.update(params)
    return MLPClassifier(**settings)


def shuffled(X, y, seed=0):
    """The file and generator orders are grouped; unshuffled folds would test on unseen groups."""
    order = np.random.default_rng(seed).permutation(len(X))
    return X[order], y[order]


def run(code):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


# --- parameters -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_get_params_set_params_round_trip(cls):
    est = cls()
    params = est.get_params()
    assert sorted(params) == PARAMS
    assert params["hidden_layer_sizes"] == (100,) and params["learning_rate"] == 0.01
    assert cls(**params).get_params() == params

    sizes = [8, 4]
    assert est.set_params(hidden_layer_sizes=sizes, epochs=3) is est
    assert est.get_params()["hidden_layer_sizes"] is sizes  # stored unchanged
    assert est.get_params(deep=False)["epochs"] == 3
    with pytest.raises(ValueError, match="invalid parameter 'lr'"):
        est.set_params(lr=0.1)


def test_constructor_does_not_validate_fit_does():
    est = MLPClassifier(learning_rate=-1.0, hidden_layer_sizes="wide", epochs=-3)
    assert est.learning_rate == -1.0
    X, y = datasets.xor()
    with pytest.raises(ValueError, match="hidden_layer_sizes must be an int or a sequence"):
        est.fit(X, y)
    with pytest.raises(ValueError, match=r"learning_rate must be a number > 0; got -1\.0"):
        MLPClassifier(learning_rate=-1.0, hidden_layer_sizes=(2,)).fit(X, y)


def test_repr_lists_changed_parameters():
    assert repr(MLPRegressor()) == "MLPRegressor()"
    est = MLPClassifier(epochs=5, random_state=0)
    assert repr(est) == "MLPClassifier(epochs=5, random_state=0)"


def test_clone_copies_parameters_not_the_fit():
    base = pytest.importorskip("sklearn.base")
    X, y = datasets.xor()
    est = small_classifier(hidden_layer_sizes=[4], epochs=2).fit(X, y)
    copy = base.clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    assert not hasattr(copy, "model_") and not hasattr(copy, "classes_")
    assert base.is_classifier(est) and base.is_regressor(MLPRegressor())


# --- classifier ---------------------------------------------------------------------------


def test_classifier_fits_moons():
    X_train, X_test, y_train, y_test = moons_split()
    clf = small_classifier()
    assert clf.fit(X_train, y_train) is clf
    assert clf.n_features_in_ == 2
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    assert isinstance(clf.model_, fb.Sequential)
    assert clf.model_.loss.name == "softmax_cross_entropy" and clf.model_.output_dim == 2
    assert len(clf.history_.history["loss"]) == 40

    pred = clf.predict(X_test)
    assert pred.shape == (len(X_test),) and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    score = clf.score(X_test, y_test)
    assert score == np.mean(pred == y_test) and score > 0.9


def test_string_labels_map_back_and_match_integer_labels():
    X, y = datasets.spiral(n_per_class=60, n_classes=3, seed=1)
    names = np.array(["ant", "bee", "cat"])  # sorted, so unit k is class k either way
    by_index = small_classifier(epochs=10).fit(X, y)
    by_name = small_classifier(epochs=10).fit(X, names[y])
    np.testing.assert_array_equal(by_name.classes_, names)
    pred = by_name.predict(X)
    assert pred.dtype.kind == "U"
    np.testing.assert_array_equal(pred, names[by_index.predict(X)])
    np.testing.assert_array_equal(by_name.predict_proba(X), by_index.predict_proba(X))
    assert by_name.score(X, names[y]) == by_index.score(X, y)


def test_classifier_rejects_bad_targets():
    X, y = datasets.xor()
    clf = small_classifier(epochs=1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, np.zeros(4))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        clf.fit(X, [0.5, 1.5, 0.2, 0.1])
    with pytest.raises(ValueError, match="samples"):
        clf.fit(X, y[:3])
    with pytest.raises(ValueError, match="requires y"):
        clf.fit(X, None)


def test_same_random_state_same_model():
    X_train, _X_test, y_train, _ = moons_split()

    def weights(random_state):
        clf = small_classifier(epochs=5, random_state=random_state).fit(X_train, y_train)
        return clf.model_.get_weights()

    for seed in (7, lambda: np.random.RandomState(7), lambda: np.random.default_rng(7)):
        first, second = (weights(seed() if callable(seed) else seed) for _ in range(2))
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights(1)[0], weights(2)[0])


def test_unfitted_and_misshapen_input():
    clf = small_classifier()
    for method in (clf.predict, clf.predict_proba, MLPRegressor().predict):
        with pytest.raises(NotFittedError, match="not fitted yet") as info:
            method(np.zeros((2, 2)))
        assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    X, y = datasets.xor()
    clf.set_params(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 2"):
        clf.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Reshape your data"):
        clf.predict(np.zeros(2))


def test_not_fitted_error_is_sklearns():
    exceptions = pytest.importorskip("sklearn.exceptions")
    validation = pytest.importorskip("sklearn.utils.validation")
    assert NotFittedError is exceptions.NotFittedError
    with pytest.raises(exceptions.NotFittedError):
        validation.check_is_fitted(small_classifier())
    X, y = datasets.xor()
    validation.check_is_fitted(small_classifier(epochs=1).fit(X, y))


def test_fitted_estimator_pickles():
    X_train, X_test, y_train, _ = moons_split()
    clf = small_classifier(epochs=5).fit(X_train, y_train)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))
    assert loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)


# --- regressor ----------------------------------------------------------------------------


def smooth_data(n=400):
    x = np.linspace(-3, 3, n).reshape(-1, 1)
    return x, np.sin(x[:, 0])


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_regressor_fits_a_smooth_function(backend):
    X, y = smooth_data()
    reg = MLPRegressor(
        hidden_layer_sizes=(32, 32),
        activation="tanh",
        learning_rate=0.05,
        epochs=60,
        random_state=0,
        backend=backend,
    ).fit(X, y)
    assert reg.model_.loss.name == "mse" and reg.n_outputs_ == 1
    pred = reg.predict(X)
    assert pred.shape == (len(X),) and pred.dtype == np.float64
    score = reg.score(X, y)
    assert score > 0.9
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert score == pytest.approx(r2, rel=1e-12)


def test_regressor_keeps_the_target_shape():
    X, y = smooth_data(60)
    two = np.column_stack([y, np.cos(X[:, 0])])
    reg = MLPRegressor(hidden_layer_sizes=(8,), epochs=2, random_state=0)
    assert reg.fit(X, two).predict(X).shape == (60, 2) and reg.n_outputs_ == 2
    assert reg.fit(X, y.reshape(-1, 1)).predict(X).shape == (60, 1)
    assert reg.fit(X, y).predict(X).shape == (60,)


# --- scikit-learn machinery -----------------------------------------------------------


def test_pipeline_cross_val_score_on_digits():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = shuffled(*datasets.load_digits())
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", small_classifier(hidden_layer_sizes=(32,), epochs=20)),
        ]
    )
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9, scores  # about 0.96


def test_grid_search_over_one_parameter():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV

    X, y = shuffled(*datasets.moons(n_samples=300, seed=2))
    search = GridSearchCV(small_classifier(), {"learning_rate": [0.001, 0.3]}, cv=3)
    search.fit(X, y)
    assert search.best_params_ == {"learning_rate": 0.3}
    assert search.best_estimator_.learning_rate == 0.3 and search.best_score_ > 0.85
    assert search.predict(X[:5]).shape == (5,)


def test_check_estimator_passes():
    pytest.importorskip("sklearn", minversion="1.6")  # check_estimator(on_fail=None)
    from sklearn.exceptions import SkipTestWarning
    from sklearn.utils.estimator_checks import check_estimator

    estimators = [
        small_classifier(epochs=30),
        MLPRegressor(hidden_layer_sizes=(32,), learning_rate=0.003, epochs=200, random_state=0),
    ]
    for est in estimators:
        with warnings.catch_warnings():
            # scikit-learn's notes on its own checks, not on fastbp: the estimators
            # duck-type BaseEstimator so that importing fastbp.sklearn needs no
            # scikit-learn, and the checks that need pandas or SCIPY_ARRAY_API skip
            warnings.filterwarnings(
                "ignore",
                message=r"Estimator MLP\w+ does not inherit from `sklearn.base.BaseEstimator`",
                category=UserWarning,
                module=r"sklearn\.utils\.estimator_checks",
            )
            warnings.filterwarnings(
                "ignore",
                message=r"Skipping check \w+ for MLP\w+ because it raised SkipTest",
                category=SkipTestWarning,
                module=r"sklearn\.utils\.estimator_checks",
            )
            results = check_estimator(est, on_fail=None)
        failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
        assert not failed, failed


# --- without scikit-learn ----------------------------------------------------------------


def test_import_does_not_load_sklearn():
    result = run("""
        import sys
        import fastbp.sklearn
        assert "sklearn" not in sys.modules, "importing fastbp.sklearn loaded sklearn"
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_works_with_sklearn_hidden():
    result = run("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "sklearn" or name.startswith("sklearn."):
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from fastbp import datasets
        from fastbp.sklearn import MLPClassifier, MLPRegressor, NotFittedError

        assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
        clf = MLPClassifier(hidden_layer_sizes=(8,), epochs=3, random_state=0)
        try:
            clf.predict(np.zeros((1, 2)))
        except NotFittedError as exc:
            print(exc)
        X, y = datasets.moons(n_samples=60)
        labels = np.array(["no", "yes"])[y]
        assert set(clf.fit(X, labels).predict(X)) <= {"no", "yes"}
        assert clf.predict_proba(X).shape == (60, 2)
        assert MLPRegressor(epochs=2).fit(X, y.astype(float)).predict(X).shape == (60,)
        assert not [m for m in sys.modules if m.split(".")[0] == "sklearn"]
    """)
    assert result.returncode == 0, result.stderr
    assert "MLPClassifier instance is not fitted yet" in result.stdout


def test_a_pickled_estimator_keeps_its_whole_model():
    """The estimator pickles through the model's own pickling: weights, optimiser
    state, step count and generator state all come back."""
    import pickle

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((80, 3)), rng.integers(0, 2, 80)
    clf = MLPClassifier(random_state=0).fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    for a, b in zip(clf.model_._plan.training_state(), back.model_._plan.training_state()):
        assert np.array_equal(a, b)
    assert clf.model_._rng.bit_generator.state == back.model_._rng.bit_generator.state
    assert np.array_equal(clf.predict_proba(X), back.predict_proba(X))
