"""fastbp.sklearn: scikit-learn's MLP parameters and attributes, with and without it.

scikit-learn's own checks run in tests/test_sklearn_checks.py; here are the
behaviours they do not pin down, the hostile inputs, and comparisons with
scikit-learn's own MLPs where both follow the same rule.
"""

import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastbp as fb
from fastbp import datasets
from fastbp.sklearn import (
    ConvergenceWarning,
    DataConversionWarning,
    MLPClassifier,
    MLPRegressor,
    NotFittedError,
)

SKLEARN_NAMES = [
    "activation",
    "alpha",
    "batch_size",
    "beta_1",
    "beta_2",
    "early_stopping",
    "epsilon",
    "hidden_layer_sizes",
    "learning_rate",
    "learning_rate_init",
    "max_fun",
    "max_iter",
    "momentum",
    "n_iter_no_change",
    "nesterovs_momentum",
    "power_t",
    "random_state",
    "shuffle",
    "solver",
    "tol",
    "validation_fraction",
    "verbose",
    "warm_start",
]
FASTBP_NAMES = ["backend", "dropout", "dtype", "n_threads"]


def moons_split(n_samples=300):
    X, y = datasets.moons(n_samples=n_samples, noise=0.1, seed=0)
    return datasets.train_test_split(X, y, test_size=0.3, seed=0)


def quiet(est, *args, **kwargs):
    """est.fit(*args) without the ConvergenceWarning of a short training budget."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def small_classifier(**params):
    settings = dict(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=60, random_state=0)
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
def test_parameters_are_sklearns_plus_fastbps(cls):
    est = cls()
    params = est.get_params()
    regression_only = ["loss"] if cls is MLPRegressor else []
    assert sorted(params) == sorted(SKLEARN_NAMES + FASTBP_NAMES + regression_only)
    assert cls(**params).get_params() == params
    sizes = [8, 4]
    assert est.set_params(hidden_layer_sizes=sizes, max_iter=3) is est
    assert est.get_params()["hidden_layer_sizes"] is sizes  # stored unchanged
    with pytest.raises(ValueError, match="Invalid parameter 'lr'"):
        est.set_params(lr=0.1)
    assert est.max_iter == 3  # a refused set_params changes nothing


@pytest.mark.parametrize("name", ["MLPClassifier", "MLPRegressor"])
def test_defaults_are_sklearns(name):
    neural_network = pytest.importorskip("sklearn.neural_network")
    theirs = getattr(neural_network, name)().get_params()
    ours = getattr(fb.sklearn, name)().get_params()
    for key in theirs:  # every parameter of theirs, with its default
        assert ours[key] == theirs[key], key
    assert ours["dtype"] == "float32"
    # and the same positional parameters, in the same order
    args = ("squared_error", (5,), "tanh") if name == "MLPRegressor" else ((5,), "tanh")
    theirs = getattr(neural_network, name)(*args).get_params()
    ours = getattr(fb.sklearn, name)(*args).get_params()
    assert {key: ours[key] for key in theirs} == theirs


def test_regressor_loss_is_squared_error_only():
    X, y = np.ones((6, 2)), np.arange(6.0)
    with pytest.raises(ValueError, match=r"loss='poisson' is not available.*'squared_error'"):
        MLPRegressor(loss="poisson").fit(X, y)
    with pytest.raises(ValueError, match="loss must be one of 'squared_error'; got 'mse'"):
        MLPRegressor(loss="mse").fit(X, y)
    with pytest.raises(TypeError, match="loss"):
        MLPClassifier(loss="log_loss")


@pytest.mark.parametrize("old", ["epochs", "weight_decay", "lr"])
def test_removed_names_are_unknown_keywords(old):
    with pytest.raises(TypeError, match=old):
        MLPClassifier(**{old: 1})


BAD_PARAMETERS = [
    ({"solver": "lbfgs"}, r"solver='lbfgs' is not available.*'adam', 'sgd', 'adamw'"),
    ({"solver": "newton"}, r"solver must be one of 'adam', 'sgd'"),
    ({"activation": "softmax"}, r"activation must be one of 'identity', 'logistic'"),
    ({"learning_rate": 0.1}, r"learning_rate must be one of 'constant', 'invscaling', 'adaptive'"),
    ({"learning_rate_init": 0}, r"learning_rate_init must be a number > 0; got 0"),
    ({"batch_size": 0}, r"batch_size must be an integer >= 1; got 0"),
    ({"batch_size": "all"}, r"batch_size must be one of 'auto'; got 'all'"),
    ({"alpha": -1e-3}, r"alpha must be a number >= 0"),
    ({"momentum": 1.0}, r"momentum must be a number in \[0, 1\)"),
    ({"validation_fraction": 1.0}, r"validation_fraction must be a number in \[0, 1\)"),
    ({"n_iter_no_change": 0}, r"n_iter_no_change must be an integer >= 1"),
    ({"max_iter": 0}, r"max_iter must be an integer >= 1"),
    ({"hidden_layer_sizes": "wide"}, r"hidden_layer_sizes must be an int or a sequence"),
    ({"hidden_layer_sizes": (4, 0)}, r"hidden_layer_sizes\[1\] must be an integer >= 1"),
    ({"shuffle": "yes"}, r"shuffle must be True or False"),
    ({"random_state": -1}, r"random_state must be an integer >= 0"),
    ({"dtype": "float16"}, r"dtype must be one of 'float32', 'float64'"),
    ({"dtype": np.int32}, r"dtype must be one of 'float32', 'float64'; got 'int32'"),
    ({"backend": "gpu"}, r"backend must be one of 'cython', 'numpy'"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ({"n_threads": 0}, r"n_threads must be an integer >= 1"),
]


@pytest.mark.parametrize("params, message", BAD_PARAMETERS, ids=lambda p: str(p)[:30])
def test_bad_parameters_raise_at_fit_and_keep_the_fitted_model(params, message):
    X, y = datasets.xor()
    est = MLPClassifier(**params)  # the constructor stores, it does not check
    for name, value in params.items():
        assert getattr(est, name) is value
    fitted = quiet(small_classifier(max_iter=2), X, y)
    before = fitted.predict_proba(X)
    fitted.set_params(**params)
    with pytest.raises(ValueError, match=message):
        fitted.fit(X, y)
    np.testing.assert_array_equal(fitted.predict_proba(X), before)
    assert fitted.n_iter_ == 2


def test_set_params_after_fit_does_not_change_predictions():
    X_train, X_test, y_train, _ = moons_split()
    clf = quiet(small_classifier(max_iter=5), X_train, y_train)
    before = clf.predict_proba(X_test)
    clf.set_params(hidden_layer_sizes=(3, 3), dtype="float64", activation="tanh", alpha=1.0)
    np.testing.assert_array_equal(clf.predict_proba(X_test), before)
    assert [c.shape for c in clf.coefs_] == [(2, 16), (16, 1)]
    quiet(clf, X_train, y_train)  # the next fit takes them
    assert [c.shape for c in clf.coefs_] == [(2, 3), (3, 3), (3, 1)]
    assert clf.coefs_[0].dtype == np.float64
    quiet(clf.set_params(dtype=np.float32), X_train, y_train)  # a NumPy type also names it
    assert clf.coefs_[0].dtype == np.float32


def test_repr_lists_changed_parameters():
    assert repr(MLPRegressor()) == "MLPRegressor()"
    assert repr(MLPClassifier(max_iter=5, random_state=0)) == (
        "MLPClassifier(max_iter=5, random_state=0)"
    )


def test_clone_copies_parameters_not_the_fit():
    base = pytest.importorskip("sklearn.base")
    X, y = datasets.xor()
    est = quiet(small_classifier(hidden_layer_sizes=[4], max_iter=2), X, y)
    copy = base.clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    assert not hasattr(copy, "model_") and not hasattr(copy, "classes_")
    assert base.is_classifier(est) and base.is_regressor(MLPRegressor())


# --- fitted attributes --------------------------------------------------------------------


def numpy_forward(coefs, intercepts, X, hidden, out):
    """The network from coefs_/intercepts_ alone, in plain NumPy (an outside oracle)."""
    A = X
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        Z = A @ W + b
        A = hidden(Z) if i < len(coefs) - 1 else out(Z)
    return A


def test_binary_classifier_has_sklearns_layout():
    X_train, X_test, y_train, y_test = moons_split()
    clf = quiet(small_classifier(max_iter=200), X_train, y_train)
    assert clf.n_features_in_ == 2 and clf.n_outputs_ == 1 and clf.n_layers_ == 3
    assert clf.out_activation_ == "logistic"
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    assert [c.shape for c in clf.coefs_] == [(2, 16), (16, 1)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (1,)]
    p1 = numpy_forward(
        clf.coefs_,
        clf.intercepts_,
        X_test,
        lambda z: np.maximum(z, 0),
        lambda z: 1 / (1 + np.exp(-z)),
    )
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba[:, 1], p1[:, 0], rtol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    pred = clf.predict(X_test)
    np.testing.assert_array_equal(pred, (p1[:, 0] > 0.5).astype(int))
    assert clf.score(X_test, y_test) == np.mean(pred == y_test) > 0.9
    np.testing.assert_allclose(clf.predict_log_proba(X_test), np.log(proba))
    # the copies do not reach into the model
    clf.coefs_[0][:] = 0
    np.testing.assert_array_equal(clf.predict_proba(X_test), proba)


def test_multiclass_classifier_has_softmax_outputs():
    X, y = shuffled(*datasets.spiral(n_per_class=60, n_classes=3, seed=1))
    clf = quiet(small_classifier(hidden_layer_sizes=(32, 16), activation="tanh"), X, y)
    assert clf.n_outputs_ == 3 and clf.out_activation_ == "softmax" and clf.n_layers_ == 4
    assert [c.shape for c in clf.coefs_] == [(2, 32), (32, 16), (16, 3)]

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    expected = numpy_forward(clf.coefs_, clf.intercepts_, X, np.tanh, softmax)
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-4, atol=1e-6)


def test_multi_label_indicator_targets():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 1]).astype(int)
    clf = quiet(small_classifier(hidden_layer_sizes=(16,), max_iter=200), X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert [c.shape for c in clf.coefs_] == [(4, 16), (16, 3)]
    proba = clf.predict_proba(X)
    expected = numpy_forward(
        clf.coefs_, clf.intercepts_, X, lambda z: np.maximum(z, 0), lambda z: 1 / (1 + np.exp(-z))
    )
    np.testing.assert_allclose(proba, expected, rtol=1e-5)  # one probability per label
    pred = clf.predict(X)
    np.testing.assert_array_equal(pred, (expected > 0.5).astype(int))
    assert clf.score(X, Y) == np.mean((pred == Y).all(axis=1)) > 0.8
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, Y)
    with pytest.raises(ValueError, match="label indicator matrix of 0s and 1s"):
        MLPClassifier().fit(X, Y * 0.5)


def test_training_attributes_and_stopping_rule():
    X_train, _X_test, y_train, _ = moons_split()
    clf = small_classifier(max_iter=500, tol=1e9, n_iter_no_change=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopped by the rule: no ConvergenceWarning
        clf.fit(X_train, y_train)
    # the first epoch improves on best_loss_ = inf; then no epoch gains tol, and the
    # rule fires once more than n_iter_no_change epochs have not
    assert clf.n_iter_ == 1 + 3 + 1
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.t_ == clf.n_iter_ * len(X_train)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None


def test_convergence_warning_at_max_iter():
    X, y = datasets.xor()
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        small_classifier(max_iter=3).fit(X, y)
    exceptions = pytest.importorskip("sklearn.exceptions")
    assert ConvergenceWarning is exceptions.ConvergenceWarning


def test_loss_includes_sklearns_scaled_l2_term():
    """loss_ of one epoch is the mean of the batches' losses, each with
    alpha / (2 S) ||W||^2 for a batch of weight sum S: with an (almost) frozen network
    the L2 part is alpha/2 ||W||^2 * sum_b (n_b / S_b) / n."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 3)), rng.integers(0, 3, 50)
    weights = rng.integers(1, 4, 50).astype(float)

    def one_epoch(alpha, batch_size, sample_weight=None):
        clf = MLPClassifier(
            hidden_layer_sizes=(5,),
            solver="sgd",
            momentum=0,
            learning_rate_init=1e-12,
            alpha=alpha,
            batch_size=batch_size,
            shuffle=False,
            max_iter=1,
            random_state=3,
            dtype="float64",
        )
        return quiet(clf, X, y, sample_weight=sample_weight)

    for batch_size in (50, 20):  # one batch; batches of 20, 20 and 10
        plain = one_epoch(0.0, batch_size)
        decayed = one_epoch(2.5, batch_size)
        squares = sum(float(np.sum(W**2)) for W in decayed.coefs_)
        n_batches = -(-50 // batch_size)
        expected = 2.5 / 2 * squares * n_batches / 50
        assert decayed.loss_ - plain.loss_ == pytest.approx(expected, rel=1e-6)
    plain, decayed = one_epoch(0.0, 20, weights), one_epoch(2.5, 20, weights)
    squares = sum(float(np.sum(W**2)) for W in decayed.coefs_)
    sums = [weights[i : i + 20].sum() for i in (0, 20, 40)]
    sizes = [20, 20, 10]
    expected = 2.5 / 2 * squares * sum(n / s for n, s in zip(sizes, sums)) / 50
    assert decayed.loss_ - plain.loss_ == pytest.approx(expected, rel=1e-6)


def test_early_stopping_attributes():
    X, y = shuffled(*datasets.load_digits())
    clf = MLPClassifier(
        hidden_layer_sizes=(32,),
        early_stopping=True,
        n_iter_no_change=2,
        max_iter=100,
        learning_rate_init=0.01,
        random_state=0,
    ).fit(X / 16, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ < 100
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.9
    held_out = int(np.ceil(0.1 * len(X)))
    assert clf.t_ == clf.n_iter_ * (len(X) - held_out)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        clf.partial_fit(X, y)
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPClassifier(early_stopping=True, validation_fraction=0.01).fit(X[:50], y[:50])


@pytest.mark.parametrize("schedule", ["adaptive", "invscaling"])
def test_sgd_schedules_follow_sklearn(schedule):
    """Both solvers run the same rule: same epochs, same final learning rate."""
    neural_network = pytest.importorskip("sklearn.neural_network")
    X, y = datasets.moons(n_samples=100, seed=0)
    params = dict(
        solver="sgd",
        learning_rate=schedule,
        tol=1e9,
        n_iter_no_change=1,
        max_iter=40,
        hidden_layer_sizes=(4,),
        learning_rate_init=0.01,
        power_t=0.25,
        random_state=0,
    )
    ours = MLPClassifier(**params)
    theirs = neural_network.MLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    assert ours.model_.optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    if schedule == "adaptive":
        assert ours.n_iter_ < 40  # lr divided by 5 until below 1e-6, then stopped
    else:
        assert ours.model_.optimizer.lr == pytest.approx(0.01 / (ours.t_ + 1) ** 0.25)


@pytest.mark.parametrize("solver", ["adam", "sgd", "adamw", "rmsprop", "adagrad"])
def test_every_solver_learns(solver):
    X_train, X_test, y_train, y_test = moons_split()
    clf = quiet(small_classifier(solver=solver, max_iter=150), X_train, y_train)
    assert type(clf.model_.optimizer).__name__.lower() == solver
    assert clf.score(X_test, y_test) > 0.8


def test_activation_names_map_to_fastbp():
    X, y = datasets.xor()
    for name, expected in [("logistic", "sigmoid"), ("identity", "identity"), ("gelu", "gelu")]:
        clf = quiet(small_classifier(activation=name, max_iter=1), X, y)
        assert clf.model_.layers[0].activation.name == expected


def test_dropout_adds_layers():
    X, y = datasets.xor()
    clf = quiet(small_classifier(hidden_layer_sizes=(8, 8), dropout=0.25, max_iter=1), X, y)
    kinds = [type(layer).__name__ for layer in clf.model_.layers]
    assert kinds == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert clf.n_layers_ == 4


def test_verbose_prints_each_epoch(capsys):
    X, y = datasets.xor()
    quiet(small_classifier(max_iter=2, verbose=True), X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == ["Iteration 1", "Iteration 2"]


def test_same_random_state_same_model():
    X_train, _X_test, y_train, _ = moons_split()

    def weights(random_state):
        return quiet(
            small_classifier(max_iter=5, random_state=random_state), X_train, y_train
        ).coefs_

    for seed in (7, lambda: np.random.RandomState(7), lambda: np.random.default_rng(7)):
        first, second = (weights(seed() if callable(seed) else seed) for _ in range(2))
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights(1)[0], weights(2)[0])


# --- labels, partial_fit, warm_start --------------------------------------------------------


def test_string_labels_map_back():
    X, y = datasets.spiral(n_per_class=60, n_classes=3, seed=1)
    names = np.array(["ant", "bee", "cat"])
    by_index = quiet(small_classifier(max_iter=10), X, y)
    by_name = quiet(small_classifier(max_iter=10), X, names[y])
    np.testing.assert_array_equal(by_name.classes_, names)
    np.testing.assert_array_equal(by_name.predict(X), names[by_index.predict(X)])
    np.testing.assert_array_equal(by_name.predict_proba(X), by_index.predict_proba(X))
    with pytest.raises(ValueError, match="Mix of label input types"):
        small_classifier().fit(X[:4], np.array(["a", 1, "b", 2], dtype=object))


def test_classifier_rejects_bad_targets():
    X, y = datasets.xor()
    clf = small_classifier(max_iter=1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, np.zeros(4))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        clf.fit(X, [0.5, 1.5, 0.2, 0.1])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(X, y[:3])
    with pytest.raises(ValueError, match="requires y"):
        clf.fit(X, None)
    with pytest.raises(ValueError, match="multiclass-multioutput targets are not supported"):
        clf.fit(X, np.array([[0, 2], [1, 0], [2, 1], [0, 0]]))
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(X, [0.0, 1.0, np.nan, 1.0])


def test_partial_fit_is_one_epoch_per_call():
    X, y = shuffled(*datasets.spiral(n_per_class=40, n_classes=3, seed=0))
    clf = MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "model_")
    clf.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2])  # y need not hold them all
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.n_iter_ == 1 and clf.t_ == np.sum(y != 2) and clf.n_outputs_ == 3
    for _ in range(3):
        clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 4 and clf.t_ == np.sum(y != 2) + 3 * len(X)
    before = clf.predict_proba(X)
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        clf.partial_fit(X[:3], [0, 1, 7])
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 2"):
        clf.partial_fit(np.zeros((3, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match=r"is not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1])
    np.testing.assert_array_equal(clf.predict_proba(X), before)  # refused calls change nothing
    assert len(clf.loss_curve_) == 4


def test_partial_fit_keeps_the_optimiser_state():
    """Two partial_fit calls equal fit over two epochs (same shuffles aside: shuffle off)."""
    X, y = datasets.moons(n_samples=80, seed=0)
    params = dict(hidden_layer_sizes=(8,), shuffle=False, random_state=0, max_iter=2)
    whole = quiet(MLPClassifier(**params), X, y)
    steps = MLPClassifier(**params)
    steps.partial_fit(X, y, classes=[0, 1]).partial_fit(X, y)
    for a, b in zip(whole.coefs_, steps.coefs_):
        np.testing.assert_array_equal(a, b)
    assert whole.loss_curve_ == steps.loss_curve_


def test_warm_start_continues_and_refuses_other_layers():
    X, y = datasets.moons(n_samples=80, seed=0)
    clf = quiet(small_classifier(max_iter=5, warm_start=True), X, y)
    first = clf.coefs_
    quiet(clf, X, y)
    assert len(clf.loss_curve_) == 10 and clf.n_iter_ == 5 and clf.t_ == 10 * len(X)
    assert not np.array_equal(first[0], clf.coefs_[0])
    restart = quiet(small_classifier(max_iter=5, warm_start=False), X, y)
    assert len(restart.loss_curve_) == 5
    clf.set_params(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match=r"hidden layers are \(16,\).*set warm_start=False"):
        clf.fit(X, y)
    clf.set_params(hidden_layer_sizes=(16,))
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        clf.fit(X, np.where(y == 1, 2, y) + (np.arange(len(y)) == 0))
    assert len(clf.loss_curve_) == 10


def test_warm_start_refuses_another_activation():
    X, y = datasets.moons(n_samples=80, seed=0)
    clf = quiet(small_classifier(max_iter=2, warm_start=True), X, y)
    clf.set_params(activation="tanh")
    with pytest.raises(ValueError, match="hidden activation is 'relu', but activation is now"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="hidden activation is 'relu'"):
        clf.partial_fit(X, y)


def test_an_interrupted_partial_fit_changes_nothing(monkeypatch):
    """An epoch with a last, smaller batch trains in two calls of Sequential.fit (the
    batches differ in L2 strength); Ctrl-C in the second puts everything back."""
    X, y = datasets.moons(n_samples=90, seed=0)
    clf = MLPClassifier(hidden_layer_sizes=(8,), batch_size=40, alpha=0.5, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    before = (clf.coefs_, clf.intercepts_, list(clf.loss_curve_), clf.t_)
    rates = (clf.model_.optimizer.lr, clf.model_.optimizer.weight_decay)
    steps = clf.model_._plan.step_count.copy()
    original = fb.Sequential.fit
    calls = []

    def fit_then_interrupt(self, *args, **kwargs):
        calls.append(len(args[0]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fb.Sequential, "fit", fit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X, y)
    assert calls == [80, 10]  # two full batches, then the last one
    monkeypatch.undo()
    for a, b in zip(before[0] + before[1], clf.coefs_ + clf.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert (clf.loss_curve_, clf.t_) == (before[2], before[3])
    assert (clf.model_.optimizer.lr, clf.model_.optimizer.weight_decay) == rates
    np.testing.assert_array_equal(clf.model_._plan.step_count, steps)


def test_early_stopping_split_is_stratified():
    from fastbp.sklearn import _validation_split

    labels = np.repeat([0, 1, 2], [70, 20, 10])
    train, val = _validation_split(np.random.default_rng(0), 100, 0.25, labels)
    assert len(val) == 25 and len(train) == 75
    assert sorted(set(train) | set(val)) == list(range(100)) and not set(train) & set(val)
    counts = np.bincount(labels[val], minlength=3)
    np.testing.assert_allclose(counts, [17.5, 5, 2.5], atol=0.5)


def test_verbose_says_why_it_stopped(capsys):
    X, y = datasets.xor()
    small_classifier(max_iter=50, tol=1e9, n_iter_no_change=1, verbose=1).fit(X, y)
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == (
        "Training loss did not improve more than tol=1000000000.000000 for 1 "
        "consecutive epochs. Stopping."
    )


# --- sample weights -----------------------------------------------------------------------


def test_integer_weights_equal_repeated_rows_in_float32():
    """The float32 default at a float32 tolerance (the float64 check at rtol 1e-7 is
    scikit-learn's check_sample_weight_equivalence_on_dense_data)."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    w = rng.integers(0, 4, 40)
    params = dict(hidden_layer_sizes=(8,), max_iter=30, random_state=0, alpha=0.01)
    weighted = quiet(MLPClassifier(**params), X, y, sample_weight=w)
    repeated = quiet(MLPClassifier(**params), X.repeat(w, axis=0), y.repeat(w))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=2e-5)
    unweighted = quiet(MLPClassifier(**params), X, y)
    assert np.abs(unweighted.predict_proba(X) - weighted.predict_proba(X)).max() > 1e-3


def test_bad_sample_weights():
    X, y = datasets.moons(n_samples=40, seed=0)
    clf = small_classifier(max_iter=1)
    for weights, message in [
        (np.ones(39), r"sample_weight.shape == \(39,\), expected \(40,\)"),
        (np.ones((40, 1)), r"expected \(40,\)"),
        (-np.ones(40), "finite and >= 0"),
        (np.r_[np.nan, np.ones(39)], "finite and >= 0"),
        (np.zeros(40), "positive sum"),
        (np.array(["a"] * 40), "must hold numbers"),
    ]:
        with pytest.raises(ValueError, match=message):
            clf.fit(X, y, sample_weight=weights)
    assert not hasattr(clf, "model_")


def test_adaboost_over_mlp_uses_the_weights():
    ensemble = pytest.importorskip("sklearn.ensemble")
    X_train, X_test, y_train, y_test = moons_split(400)
    boost = ensemble.AdaBoostClassifier(
        estimator=small_classifier(hidden_layer_sizes=(4,), max_iter=20),
        n_estimators=4,
        random_state=0,
    )
    quiet(boost, X_train, y_train)
    assert len(boost.estimators_) == 4
    # boosting reweights the samples, so the members differ though seeded alike
    assert not np.array_equal(boost.estimators_[0].coefs_[0], boost.estimators_[1].coefs_[0])
    assert boost.score(X_test, y_test) > 0.8


# --- regressor ----------------------------------------------------------------------------


def test_regressor_fits_raw_diabetes_with_defaults():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    assert y.std() > 50  # raw targets, not rescaled by the test
    reg = quiet(MLPRegressor(random_state=0), X_train, y_train)
    score = reg.score(X_test, y_test)
    linear = LinearRegression().fit(X_train, y_train).score(X_test, y_test)  # about 0.36
    assert score > 0.3 and score > linear - 0.05, (score, linear)
    assert reg.predict(X_test).shape == (len(X_test),)
    assert reg.out_activation_ == "identity" and reg.n_outputs_ == 1


def test_regressor_multi_output_with_large_targets_does_not_diverge():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    Y = np.column_stack([X @ rng.standard_normal(5), np.sin(X[:, 0])]) * 162.0 + 1000.0
    reg = quiet(MLPRegressor(hidden_layer_sizes=(32,), max_iter=100, random_state=0), X, Y)
    pred = reg.predict(X)
    assert pred.shape == (300, 2) and np.isfinite(pred).all()
    assert reg.score(X, Y) > 0.8
    assert [c.shape for c in reg.coefs_] == [(5, 32), (32, 2)]
    assert np.isfinite(reg.loss_curve_).all() and reg.loss_curve_[-1] < reg.loss_curve_[0]


def test_regressor_constant_target():
    X = np.random.default_rng(0).standard_normal((30, 2))
    reg = MLPRegressor(hidden_layer_sizes=(4,), learning_rate_init=0.01, random_state=0)
    quiet(reg, X, np.full(30, 7.5))
    pred = reg.predict(X)
    assert np.isfinite(pred).all() and np.isfinite(reg.loss_curve_).all()
    np.testing.assert_allclose(pred, 7.5, atol=0.2)
    assert reg.score(X, np.full(30, 7.5)) == 0.0  # R^2 of a constant: 1 only if exact


def test_regressor_target_shapes():
    X = np.linspace(-3, 3, 60).reshape(-1, 1)
    y = np.sin(X[:, 0])
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    assert quiet(reg, X, np.column_stack([y, y])).predict(X).shape == (60, 2)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        quiet(reg, X, y.reshape(-1, 1))
    assert reg.predict(X).shape == (60,)
    assert quiet(reg, X, y).predict(X).shape == (60,)
    with pytest.raises(ValueError, match="must hold numbers"):
        reg.fit(X, np.array(["a"] * 60, dtype=object))


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_regressor_fits_a_smooth_function(backend):
    X = np.linspace(-3, 3, 400).reshape(-1, 1)
    y = np.sin(X[:, 0])
    reg = quiet(
        MLPRegressor(
            hidden_layer_sizes=(32, 32),
            activation="tanh",
            learning_rate_init=0.01,
            max_iter=80,
            random_state=0,
            backend=backend,
        ),
        X,
        y,
    )
    pred = reg.predict(X)
    assert pred.dtype == np.float64
    score = reg.score(X, y)
    assert score > 0.9
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    assert score == pytest.approx(r2, rel=1e-12)


# --- inputs: DataFrames, NA, memmaps --------------------------------------------------------


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = datasets.moons(n_samples=60, seed=0)
    frame = pd.DataFrame(X, columns=["width", "height"])
    clf = quiet(small_classifier(max_iter=3), frame, pd.Series(y))
    np.testing.assert_array_equal(clf.feature_names_in_, ["width", "height"])
    proba = clf.predict_proba(frame)
    np.testing.assert_allclose(proba[:, 1], clf.model_.predict_proba(X)[:, 0], rtol=1e-6)
    with pytest.raises(
        ValueError, match="Feature names must be in the same order as they were in fit"
    ):
        clf.predict(frame[["height", "width"]])
    with pytest.raises(ValueError, match=r"Feature names unseen at fit time:\n- depth"):
        clf.predict(frame.rename(columns={"height": "depth"}))
    with pytest.warns(UserWarning, match="X does not have valid feature names, but MLPClassifier"):
        clf.predict(X)
    plain = quiet(small_classifier(max_iter=3), X, y)
    assert not hasattr(plain, "feature_names_in_")
    with pytest.warns(
        UserWarning, match="X has feature names, but MLPClassifier was fitted without"
    ):
        plain.predict(frame)
    quiet(clf, X, y)  # a new fit without names forgets the old ones
    assert not hasattr(clf, "feature_names_in_")
    with pytest.raises(TypeError, match="Feature names are only supported if all input features"):
        small_classifier().fit(pd.DataFrame(X, columns=["a", 1]), y)


def test_nullable_pandas_columns_with_na():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": pd.array([1, 2, None, 4] * 5, dtype="Int64"), "b": np.arange(20.0)})
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=r"contains NaN \(missing values in column\(s\) \['a'\]\)"):
        small_classifier().fit(frame, y)
    filled = quiet(small_classifier(max_iter=2), frame.fillna(0), y)  # without NA it converts
    assert filled.predict(frame.fillna(0)).shape == (20,)
    with pytest.raises(ValueError, match="Input y contains NaN"):
        MLPRegressor().fit(frame.fillna(0), pd.array([1.5, None] * 10, dtype="Float64"))


def test_memmap_input(tmp_path):
    X, y = datasets.moons(n_samples=60, seed=0)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    a = quiet(small_classifier(max_iter=3), mm, y)
    b = quiet(small_classifier(max_iter=3), X, y)
    np.testing.assert_array_equal(a.predict_proba(mm), b.predict_proba(X))


def test_unfitted_and_misshapen_input():
    for method in (MLPClassifier().predict, MLPClassifier().predict_proba, MLPRegressor().predict):
        with pytest.raises(NotFittedError, match="not fitted yet") as info:
            method(np.zeros((2, 2)))
        assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    with pytest.raises(NotFittedError):
        MLPClassifier().coefs_  # noqa: B018
    X, y = datasets.xor()
    clf = quiet(small_classifier(max_iter=1), X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 2"):
        clf.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Reshape your data"):
        clf.predict(np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.array([[np.nan, 0.0]]))
    with pytest.raises(TypeError, match="Sparse X is not supported"):
        scipy_sparse = pytest.importorskip("scipy.sparse")
        clf.predict(scipy_sparse.csr_matrix(np.zeros((2, 2))))


# --- pickling -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_fitted_estimators_pickle(cls):
    X_train, X_test, y_train, _ = moons_split()
    y_fit = y_train if cls is MLPClassifier else y_train * 100.0
    est = quiet(cls(hidden_layer_sizes=(8,), max_iter=5, random_state=0), X_train, y_fit)
    loaded = pickle.loads(pickle.dumps(est))
    predict = "predict_proba" if cls is MLPClassifier else "predict"
    np.testing.assert_array_equal(getattr(loaded, predict)(X_test), getattr(est, predict)(X_test))
    assert loaded.get_params() == est.get_params()
    assert loaded.loss_curve_ == est.loss_curve_ and loaded.t_ == est.t_
    # it resumes as the original does
    loaded.partial_fit(X_train, y_fit)
    est.partial_fit(X_train, y_fit)
    for a, b in zip(loaded.coefs_, est.coefs_):
        np.testing.assert_array_equal(a, b)


# --- scikit-learn machinery -----------------------------------------------------------


def test_pipeline_cross_val_score_on_digits():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = shuffled(*datasets.load_digits())
    pipe = make_pipeline(StandardScaler(), small_classifier(hidden_layer_sizes=(32,), max_iter=20))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9, scores


def test_grid_search_over_one_parameter():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV

    X, y = shuffled(*datasets.moons(n_samples=300, seed=2))
    search = GridSearchCV(small_classifier(), {"learning_rate_init": [1e-5, 0.03]}, cv=3)
    quiet(search, X, y)
    assert search.best_params_ == {"learning_rate_init": 0.03}
    assert search.best_score_ > 0.85


# --- without scikit-learn ----------------------------------------------------------------


def test_import_does_not_load_sklearn():
    result = run("""
        import sys
        import fastbp.sklearn
        assert "sklearn" not in sys.modules, "importing fastbp.sklearn loaded sklearn"
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_works_with_sklearn_blocked():
    result = run("""
        import sys, warnings
        sys.modules["sklearn"] = None  # import sklearn now raises ImportError
        import numpy as np
        from fastbp import datasets
        from fastbp.sklearn import (
            ConvergenceWarning, MLPClassifier, MLPRegressor, NotFittedError,
        )

        assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
        try:
            clf.predict(np.zeros((1, 2)))
        except NotFittedError as exc:
            print(exc)
        X, y = datasets.moons(n_samples=60)
        labels = np.array(["no", "yes"])[y]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf.fit(X, labels)
        assert [w.category for w in caught] == [ConvergenceWarning]
        assert set(clf.predict(X)) <= {"no", "yes"}
        clf.partial_fit(X, labels)
        assert clf.predict_proba(X).shape == (60, 2)
        reg = MLPRegressor(max_iter=2, early_stopping=True, validation_fraction=0.2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            assert reg.fit(X, y * 50.0).predict(X).shape == (60,)
        assert len(reg.validation_scores_) == 2
        assert sys.modules["sklearn"] is None
    """)
    assert result.returncode == 0, result.stderr
    assert "MLPClassifier instance is not fitted yet" in result.stdout
