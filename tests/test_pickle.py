"""pickle, copy and joblib: a copy predicts bit-identically, resumes training
bit-identically and is independent of the original; payloads that are not plain
data are refused when pickling, and damaged ones when unpickling."""

import copy
import io as stdlib_io
import json
import pickle

import numpy as np
import pytest

import fastbp as fb
from fastbp import io

OPTIMIZERS = [
    fb.SGD(lr=0.05),
    fb.SGD(lr=0.05, momentum=0.9),
    fb.SGD(lr=0.05, momentum=0.9, nesterov=True, clipnorm=1.0, weight_decay=1e-3),
    fb.Adam(lr=0.01, schedule=fb.schedules.CosineDecay(epochs=10)),
    fb.AdamW(lr=0.01),
    fb.RMSProp(lr=0.01, schedule=fb.schedules.StepDecay(step_size=2)),
    fb.Adagrad(lr=0.05),
]


def data(n=120, d=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, n_classes, n)


def every_layer(input_dim=6):
    """One of each layer type (and a Dense with a learnt PReLU slope)."""
    return [
        fb.Dense(12, activation="relu", input_dim=input_dim),
        fb.Dropout(0.25),
        fb.PReLU(initial_slope=0.1),
        fb.Maxout(8, pieces=3),
        fb.Dense(10, activation="prelu"),
        fb.Activation("leaky_relu", slope=0.2),
        fb.Dropout(0.1),
        fb.Dense(3),
    ]


def model(backend="cython", dtype="float32", optimizer=None, input_dim=6, seed=1):
    optimizer = copy.deepcopy(optimizer) if optimizer is not None else fb.Adam(lr=0.01)
    return fb.Sequential(
        every_layer(input_dim),
        loss="softmax_cross_entropy",
        optimizer=optimizer,
        dtype=dtype,
        seed=seed,
        backend=backend,
    )


def trained(backend="cython", dtype="float32", optimizer=None, epochs=2):
    m = model(backend, dtype, optimizer)
    X, y = data()
    m.fit(X, y, epochs=epochs, batch_size=16, verbose=0)
    m.metadata = {"note": "trained", "sizes": [1, 2.5, None, True], "nested": {"a": {"b": "c"}}}
    return m, X, y


def pickled(protocol):
    return lambda m, tmp_path: pickle.loads(pickle.dumps(m, protocol=protocol))


def joblib_file(m, tmp_path):
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "model.joblib"
    joblib.dump(m, path)
    return joblib.load(path)


COPIERS = {f"pickle{p}": pickled(p) for p in range(pickle.HIGHEST_PROTOCOL + 1)}
COPIERS.update(
    {
        "deepcopy": lambda m, tmp_path: copy.deepcopy(m),
        "copy": lambda m, tmp_path: copy.copy(m),
        "copy_of_copy": lambda m, tmp_path: copy.deepcopy(pickle.loads(pickle.dumps(copy.copy(m)))),
        "joblib": joblib_file,
    }
)


@pytest.fixture(params=sorted(COPIERS))
def copier(request, tmp_path):
    return lambda m: COPIERS[request.param](m, tmp_path)


def training_state(m):
    """Everything a training step reads or writes, as comparable values."""
    arrays = [a.copy() for a in m._plan.weights() + m._plan.optimizer_state()]
    return arrays, m._rng.bit_generator.state, m.epochs_done


def assert_same_state(a, b):
    arrays_a, rng_a, epochs_a = training_state(a)
    arrays_b, rng_b, epochs_b = training_state(b)
    assert len(arrays_a) == len(arrays_b)
    for x, y in zip(arrays_a, arrays_b):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    assert rng_a == rng_b and epochs_a == epochs_b


def assert_same_predictions(a, b, X, y):
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.predict(X), b.predict(X))
    assert np.array_equal(a.forward(X), b.forward(X))
    assert a.evaluate(X, y) == b.evaluate(X, y)


# --- happy paths ------------------------------------------------------------------------


def test_copy_predicts_identically(backend, dtype, copier):
    m, X, y = trained(backend, np.dtype(dtype).name)
    c = copier(m)
    assert c is not m and type(c) is fb.Sequential
    assert c.get_config() == m.get_config() and c.metadata == m.metadata
    assert c.backend_name == backend and c.dtype == m.dtype
    assert_same_state(m, c)
    assert_same_predictions(m, c, X, y)


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=repr)
def test_copy_resumes_training_identically(backend, dtype, optimizer):
    m, X, y = trained(backend, np.dtype(dtype).name, optimizer)
    copies = [copy.deepcopy(m), pickle.loads(pickle.dumps(m))]
    histories = [x.fit(X, y, epochs=1, batch_size=16, verbose=0).history for x in [m] + copies]
    for c, history in zip(copies, histories[1:]):
        assert history == histories[0]
        assert_same_state(m, c)
        assert c._plan.step_count[0] == m._plan.step_count[0] > 0
        # same step, same seed: the same dropout masks
        assert np.array_equal(c.forward(X, training=True), m.forward(X, training=True))
    losses = [x.train_step(X[:16], y[:16]) for x in [m] + copies]
    assert losses == [losses[0]] * 3
    for c in copies:
        assert_same_state(m, c)


def test_copy_is_independent(backend, copier):
    m, X, y = trained(backend)
    before = training_state(m)
    metadata = copy.deepcopy(m.metadata)
    c = copier(m)
    c.fit(X, y, epochs=2, batch_size=8, verbose=0)
    c.metadata["nested"]["a"]["b"] = "changed"
    c.optimizer.lr = 0.5
    c.layers[0].W[...] = 0
    arrays, rng_state, epochs = training_state(m)
    for x, y_ in zip(arrays, before[0]):
        assert np.array_equal(x, y_)
    assert rng_state == before[1] and epochs == before[2]
    assert m.metadata == metadata and m.optimizer.lr == 0.01
    assert not any(np.shares_memory(a, b) for a in m.get_weights() for b in c.get_weights())


def test_copy_keeps_the_epoch_of_its_schedule(backend):
    m, _X, _y = trained(backend, optimizer=fb.SGD(lr=0.1, schedule=fb.schedules.StepDecay(1)))
    c = pickle.loads(pickle.dumps(m))
    assert c.epochs_done == m.epochs_done == 2
    assert c.optimizer.lr_at(c.epochs_done) == m.optimizer.lr_at(m.epochs_done)


def test_a_copy_can_change_backend_through_from_record():
    m, X, _ = trained("cython", "float64")
    record, arrays = io.to_record(m)
    other = io.from_record(record, arrays, backend="numpy")
    assert other.backend_name == "numpy"
    np.testing.assert_allclose(other.predict_proba(X), m.predict_proba(X), rtol=1e-12)


def test_to_record_gives_plain_independent_data():
    m, _, _ = trained()
    record, arrays = io.to_record(m)
    assert json.loads(json.dumps(record)) == record
    assert sorted(arrays) == sorted(
        [f"param_{i}" for i in range(len(m.get_weights()))]
        + [f"state_{i}" for i in range(len(m._plan.optimizer_state()))]
    )
    for a in arrays.values():
        a[...] = 0
    record["metadata"]["note"] = "changed"
    assert m.metadata["note"] == "trained"
    assert any(w.any() for w in m.get_weights())


def test_unbuilt_model_copies_and_trains_like_the_original(backend, copier):
    m = model(backend, input_dim=None, seed=5)  # the width comes from the first data
    m.metadata = {"stage": "unbuilt"}
    c = copier(m)
    assert not c.built and not m.built and c.metadata == m.metadata
    assert io.to_record(m)[1] == {}
    X, y = data()
    for x in (m, c):
        x.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert_same_state(m, c)


def test_model_assembled_with_add_is_not_built_by_copying(backend):
    """Layers that declare the width, added one by one: still unbuilt until used;
    the copy must draw the same initial weights when it is built."""
    m = fb.Sequential(loss="softmax_cross_entropy", seed=3, backend=backend)
    for layer in every_layer():
        m.add(layer)
    c = copy.deepcopy(m)
    assert not m.built and not c.built
    assert np.array_equal(
        np.concatenate([w.ravel() for w in c.get_weights()]),
        np.concatenate([w.ravel() for w in m.get_weights()]),
    )


def test_empty_model_copies():
    m = fb.Sequential(seed=0)
    c = pickle.loads(pickle.dumps(m))
    assert len(c.layers) == 0 and not c.built and c.get_config() == m.get_config()


def test_copy_after_a_failed_fit_before_build(backend):
    m = model(backend, input_dim=None)
    X, y = data()
    with pytest.raises(ValueError):
        m.fit(X, y[:-1], verbose=0)  # one target short: refused before building
    c = copy.deepcopy(m)
    assert not c.built
    for x in (m, c):
        x.fit(X, y, epochs=1, verbose=0)
    assert_same_state(m, c)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_copy_after_a_diverged_fit(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    y = X @ np.ones((4, 1)) * 1e3
    m = fb.Sequential(
        [fb.Dense(8, input_dim=4), fb.Dense(1)],
        loss="mse",
        optimizer=fb.SGD(lr=10.0, momentum=0.5),
        seed=0,
        backend=backend,
    )
    with pytest.raises(FloatingPointError, match="diverged"):
        m.fit(X, y, epochs=50, batch_size=10, verbose=0)
    c = pickle.loads(pickle.dumps(m))
    assert_same_state(m, c)
    for x in (m, c):
        x.optimizer.lr = 1e-6
        x.fit(X, y, epochs=1, batch_size=10, verbose=0)
    assert_same_state(m, c)


def test_copy_after_forward_needs_its_own_forward(backend):
    """The forward pass kept for backward() is not copied."""
    m, X, _ = trained(backend)
    m.forward(X[:5])
    c = copy.deepcopy(m)
    with pytest.raises(RuntimeError, match="forward pass first"):
        c.backward(np.ones((5, 3)))
    c.forward(X[:5])
    assert np.array_equal(c.backward(np.ones((5, 3))), m.backward(np.ones((5, 3))))


def test_pickle_calls_nothing_but_fastbp_s_reconstructor():
    """A restricted unpickler that allows only fastbp.io.rebuild_pickled (and, for
    protocols 0-2, which spell bytes as a call, _codecs.encode) loads the model."""
    m, X, _ = trained()

    class OnlyFastbp(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in {("fastbp.io", "rebuild_pickled"), ("_codecs", "encode")}:
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"refused {module}.{name}")

    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        c = OnlyFastbp(stdlib_io.BytesIO(pickle.dumps(m, protocol=protocol))).load()
        assert np.array_equal(c.predict_proba(X), m.predict_proba(X))


def test_a_model_inside_other_objects():
    m, X, _ = trained()
    box = {"models": [m, m], "other": 3}
    c = copy.deepcopy(box)
    assert c["models"][0] is c["models"][1] is not m  # the memo keeps one copy
    assert np.array_equal(c["models"][0].predict(X), m.predict(X))


def test_sklearn_estimator_still_pickles():
    pytest.importorskip("sklearn")
    from fastbp.sklearn import ConvergenceWarning, MLPClassifier

    X, y = data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning):  # two epochs do not converge
        clf.fit(X, y)
    assert np.array_equal(copy.deepcopy(clf).predict_proba(X), clf.predict_proba(X))


def _fit_in_worker(seed):
    """Runs in a joblib worker process."""
    X, y = data(seed=seed)
    m = fb.Sequential(
        [fb.Dense(8, activation="relu", input_dim=6), fb.Dropout(0.2), fb.Dense(3)],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.05, momentum=0.9),
        seed=seed,
        n_threads=1,
    )
    m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    return m, m.predict_proba(X)


@pytest.mark.parametrize("joblib_backend", ["loky", "multiprocessing"])
def test_joblib_parallel_returns_fitted_models(joblib_backend):
    joblib = pytest.importorskip("joblib")
    results = joblib.Parallel(n_jobs=2, backend=joblib_backend)(
        joblib.delayed(_fit_in_worker)(seed) for seed in range(2)
    )
    for seed, (m, worker_proba) in enumerate(results):
        X, y = data(seed=seed)
        assert np.array_equal(m.predict_proba(X), worker_proba)
        here, _ = _fit_in_worker(seed)
        assert_same_state(m, here)
        m.fit(X, y, epochs=1, verbose=0)
        here.fit(X, y, epochs=1, verbose=0)
        assert_same_state(m, here)


# --- refused when pickling --------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata, where",
    [
        ({"f": lambda: 1}, r"model.metadata\['f'\] holds function"),
        ({"n": np.int64(3)}, r"model.metadata\['n'\] holds int64"),
        (
            {"deep": [1, {"arr": np.zeros(2)}]},
            r"model.metadata\['deep'\]\[1\]\['arr'\] holds ndarray",
        ),
        ({(1, 2): "tuple key"}, r"model.metadata has the key \(1, 2\)"),
        ([1, 2], "model.metadata must be a dict"),
    ],
)
def test_metadata_that_is_not_plain_data_is_refused(backend, metadata, where):
    m, X, _ = trained(backend)
    m.metadata = metadata
    for attempt in (pickle.dumps, copy.deepcopy, copy.copy, io.to_record):
        with pytest.raises(TypeError, match=where):
            attempt(m)
    m.metadata = {}
    assert np.array_equal(pickle.loads(pickle.dumps(m)).predict(X), m.predict(X))


def test_metadata_that_refers_to_itself_is_refused():
    m = model()
    m.metadata = {"self": []}
    m.metadata["self"].append(m.metadata)
    with pytest.raises(TypeError, match="refers back to itself"):
        pickle.dumps(m)


def test_a_custom_schedule_is_refused_when_pickling():
    class Halve:
        def __call__(self, lr, epoch):
            return lr / 2

        def get_config(self):
            return {"name": "halve"}

    m = model(optimizer=fb.SGD(lr=0.1, schedule=Halve()))
    with pytest.raises(
        TypeError, match=r"schedule must be one of 'step', .*; got 'halve'.*fastbp.schedules"
    ):
        copy.deepcopy(m)


def test_a_subclass_is_refused():
    class Mine(fb.Sequential):
        pass

    with pytest.raises(TypeError, match="subclass"):
        pickle.dumps(Mine([fb.Dense(2, input_dim=2)]))


def test_bad_epochs_done_is_refused():
    m = model()
    with pytest.raises(ValueError, match="epochs_done"):
        m.epochs_done = -1  # refused when set ...
    m._epochs_done = -1  # ... and, forced past that, when pickled
    with pytest.raises(ValueError, match="epochs_done"):
        pickle.dumps(m)


# --- refused when unpickling -----------------------------------------------------------


class Payload:
    """Pickles as the given reconstructor arguments: a tampered model pickle."""

    def __init__(self, args):
        self.args = args

    def __reduce__(self):
        return io.rebuild_pickled, self.args


def tampered(change_record=None, change_arrays=None):
    """A fitted model's pickle arguments, with its record and arrays edited."""
    m, _, _ = trained()
    _, (architecture, arrays) = m.__reduce__()
    record = json.loads(architecture)
    if change_record:
        change_record(record)
    arrays = dict(arrays)
    if change_arrays:
        change_arrays(arrays)
    return json.dumps(record), arrays


@pytest.mark.parametrize(
    "args, match",
    [
        (lambda: tampered(lambda r: r.update(version=99)), "format version 99"),
        (lambda: tampered(lambda r: r.update(format="other")), "not a fastbp model file"),
        (
            lambda: tampered(lambda r: r.update(loss="hinge")),
            "loss must be one of 'mse', .*; got 'hinge'",
        ),
        (
            lambda: tampered(lambda r: r.update(backend="gpu")),
            "backend must be one of 'numpy', 'cython'; got 'gpu'",
        ),
        (lambda: tampered(lambda r: r.pop("rng_state")), "no 'rng_state' entry"),
        (lambda: tampered(lambda r: r.update(rng_state={"bit_generator": "MT19937"})), "PCG64"),
        (lambda: tampered(lambda r: r.update(epochs_done=-3)), "epochs_done"),
        (lambda: tampered(lambda r: r.update(metadata=[1])), "metadata is a list"),
        (lambda: tampered(lambda r: r.update(input_dim=10**9)), r"expected [\d,]+ for its layers"),
        (lambda: tampered(lambda r: r["layers"][0].update(units=10**9)), "expected"),
        (lambda: tampered(change_arrays=lambda a: a.pop("param_0")), "expected"),
        (
            lambda: tampered(change_arrays=lambda a: a.update(param_99=a["param_0"])),
            r"it holds arrays \[.*'param_99'.*\], expected",
        ),
        (
            lambda: tampered(change_arrays=lambda a: a.update(param_0=("|O", (6, 12), b"x" * 576))),
            "dtype '|O'",
        ),
        (
            lambda: tampered(change_arrays=lambda a: a.update(param_0=("<f4", (6, 12), b"x" * 5))),
            "does not hold the 288 bytes",
        ),
        (
            lambda: tampered(change_arrays=lambda a: a.update(param_0=("<f4", (6, -12), b""))),
            "non-negative ints",
        ),
        (
            lambda: tampered(
                change_arrays=lambda a: a.update(
                    param_0=("<f4", (6, 12), np.full((6, 12), np.nan, np.float32).tobytes())
                )
            ),
            "NaN or infinite",
        ),
        (
            lambda: tampered(
                change_arrays=lambda a: a.update(
                    param_0=("<f8", (6, 12), np.zeros((6, 12)).tobytes())
                )
            ),
            "dtype float64",
        ),
        (lambda: tampered(change_arrays=lambda a: a.update(param_0="not an entry")), "valid"),
        (lambda: ("{broken", {}), "architecture record is not JSON"),
        (lambda: (json.dumps(["a list"]), {}), "not a fastbp model file"),
        (lambda: (None, {}), "valid fastbp model"),
    ],
)
def test_damaged_pickles_are_refused_clearly(args, match):
    data = pickle.dumps(Payload(args()))
    with pytest.raises(ValueError, match=match):
        pickle.loads(data)


def test_negative_step_count_is_refused():
    m, _, _ = trained()
    last = f"state_{len(m._plan.optimizer_state()) - 2}"  # the step count
    args = tampered(
        change_arrays=lambda a: a.update({last: ("<i8", (1,), np.array([-5], np.int64).tobytes())})
    )
    with pytest.raises(ValueError, match="negative counts"):
        io.rebuild_pickled(*args)


def test_from_record_names_the_problem():
    m, _, _ = trained()
    record, arrays = io.to_record(m)
    arrays["param_1"] = arrays["param_1"].tolist()
    with pytest.raises(
        ValueError, match="the record does not hold a valid fastbp model: array 'param_1' is a list"
    ):
        io.from_record(record, arrays)
