"""Sequential.to_onnx: the graph run by the real onnxruntime gives what predict and
predict_proba give (every layer type and activation, both dtypes, batch sizes 1 and
1000, a model trained on the digits), the metadata's standardisation and classes, and
the refusals (unbuilt models, untranslatable layers, bad metadata, missing folders)."""

import os

import numpy as np
import pytest

import fastbp as fb
from fastbp import activations
from fastbp.export import onnx as export_onnx
from fastbp.layers import Layer
from tests.helpers import assert_close

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# max |onnxruntime - fastbp| (absolute: probabilities and activations are O(1))
ATOL = {np.float32: 1e-5, np.float64: 1e-10}
ELEMENTWISE = sorted(n for n in activations.ACTIVATIONS if n != "prelu")
PARAMS = {"leaky_relu": {"slope": 0.3}, "elu": {"alpha": 0.6}}


def session(proto):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no optimiser chatter on stderr
    # onnxruntime's idle pool threads spin by default and would take the cores from
    # the BLAS threads of the tests that run after these in the same process
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def run(proto, X, dtype=None):
    """{output name: array} of the graph on X."""
    sess = session(proto)
    feed = np.asarray(X, dtype=dtype or X.dtype)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"X": feed})))


def inputs(n, d, dtype, seed=0):
    # spread wide enough to cross every activation's kinks and saturate its tails
    return (2.5 * np.random.default_rng(seed).standard_normal((n, d))).astype(dtype)


def assert_matches(model, X, atol):
    """The graph's outputs equal the model's inference calls on X."""
    got = run(model.to_onnx(), X)
    if model.loss.classification:
        assert set(got) == {"label", "probabilities"}
        assert_close(got["probabilities"], model.predict_proba(X), 0, "probabilities", atol=atol)
        np.testing.assert_array_equal(got["label"], model.predict(X))
        assert got["label"].dtype == np.int64
    else:
        assert set(got) == {"output"}
        assert_close(got["output"], model.predict(X), 0, "output", atol=atol)
    return got


def act(name):
    return activations.get(name, **PARAMS.get(name, {}))


# --- equality with fastbp ------------------------------------------------------------


def test_every_fastbp_activation_has_a_translation():
    # prelu is a layer of its own in the graph (PRelu with the learnt slopes)
    assert set(export_onnx.ACTIVATIONS) == set(ELEMENTWISE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_each_activation_in_a_dense_layer_and_as_a_layer(name, dtype):
    hidden = [fb.Dense(9, activation=act(name), input_dim=6)]
    if name != "prelu":
        hidden += [fb.Dense(7), fb.Activation(act(name))]
    model = fb.Sequential([*hidden, fb.Dense(4)], loss="softmax_cross_entropy", dtype=dtype, seed=3)
    assert_matches(model, inputs(200, 6, dtype), ATOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_rows", [1, 1000])
def test_maxout_prelu_dropout_and_batch_sizes(n_rows, dtype):
    model = fb.Sequential(
        [
            fb.Dropout(0.2),
            fb.Maxout(6, pieces=3, input_dim=5),
            fb.PReLU(initial_slope=-0.4),
            fb.Dropout(0.5),
            fb.Maxout(4, pieces=2),
            fb.Dense(5, activation="softmax"),
        ],
        loss="softmax_cross_entropy",
        dtype=dtype,
        seed=4,
    )
    # a trained model: slopes and biases away from their starting values
    X = inputs(300, 5, dtype, seed=1)
    model.fit(X, np.arange(300) % 5, epochs=2, batch_size=32, verbose=0)
    assert not np.allclose(model.layers[2].alpha, -0.4)
    assert_matches(model, inputs(n_rows, 5, dtype, seed=2), ATOL[dtype])


def test_maxout_takes_each_units_adjacent_columns():
    # unit j owns columns j*k .. j*k + k - 1: set weights that tell the layouts apart
    model = fb.Sequential([fb.Maxout(2, pieces=3, input_dim=1)], loss="mse", dtype="float64")
    model.set_weights([np.array([[1.0, 2.0, 3.0, -1.0, -2.0, -3.0]]), np.zeros(6)])
    got = run(model.to_onnx(), np.array([[1.0], [-1.0]]))["output"]
    np.testing.assert_array_equal(got, [[3.0, -1.0], [-1.0, 3.0]])
    np.testing.assert_array_equal(model.predict(np.array([[1.0], [-1.0]])), got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_sigmoid_head(n_outputs, dtype):
    model = fb.Sequential(
        [fb.Dense(8, activation="tanh", input_dim=4), fb.Dense(n_outputs, activation="sigmoid")],
        loss="binary_cross_entropy",
        dtype=dtype,
        seed=5,
    )
    got = assert_matches(model, inputs(500, 4, dtype), ATOL[dtype])
    assert got["label"].shape == ((500,) if n_outputs == 1 else (500, n_outputs))
    assert set(np.unique(got["label"])) == {0, 1}  # both sides of the threshold seen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regression_and_zero_hidden_layers(dtype):
    for layers in (
        [fb.Dense(3, input_dim=4)],
        [fb.Dense(6, activation="gelu", input_dim=4), fb.Dense(3, activation="softplus")],
    ):
        model = fb.Sequential(layers, loss="mse", dtype=dtype, seed=6)
        assert_matches(model, inputs(100, 4, dtype), ATOL[dtype])
    logistic = fb.Sequential([fb.Dense(3, input_dim=4)], loss="kl_divergence", dtype=dtype)
    assert_matches(logistic, inputs(100, 4, dtype), ATOL[dtype])


@pytest.mark.parametrize("n_rows", [1, 1000])
def test_model_trained_on_digits(n_rows):
    X, y = fb.datasets.load_digits()
    X = X.astype(np.float32) / 16
    model = fb.Sequential(
        [fb.Dense(32, activation="relu", input_dim=64), fb.Dense(10)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=0.01),
        seed=0,
    )
    model.fit(X, y, epochs=5, batch_size=64, verbose=0)
    assert model.evaluate(X, y)["accuracy"] > 0.9
    assert_matches(model, X[:n_rows], ATOL[np.float32])


@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
@pytest.mark.parametrize("dtype", ["float32", "float64", np.float64])
def test_dtype_option(dtype, model_dtype):
    model = fb.Sequential(
        [fb.Dense(5, activation="elu", input_dim=3), fb.Dense(2)], loss="mse", dtype=model_dtype
    )
    proto = model.to_onnx(dtype=dtype)
    wanted = np.dtype(dtype)
    elem = onnx.helper.tensor_dtype_to_np_dtype(proto.graph.input[0].type.tensor_type.elem_type)
    assert elem == wanted
    assert all(
        onnx.helper.tensor_dtype_to_np_dtype(t.data_type) in (wanted, np.int64)
        for t in proto.graph.initializer
    )
    X = inputs(50, 3, np.float64)
    got = run(proto, X, dtype=wanted)["output"]
    assert got.dtype == wanted
    # the coarser of the two types bounds the difference
    coarse = np.float32 if np.float32 in (wanted.type, model.dtype.type) else np.float64
    assert_close(got, model.predict(X), 0, "output", atol=ATOL[coarse])


def test_default_dtype_follows_the_model_and_batch_is_dynamic():
    for dtype, elem in (("float32", onnx.TensorProto.FLOAT), ("float64", onnx.TensorProto.DOUBLE)):
        model = fb.Sequential([fb.Dense(2, input_dim=3)], dtype=dtype)
        proto = model.to_onnx()
        tensor = proto.graph.input[0].type.tensor_type
        assert tensor.elem_type == elem
        assert tensor.shape.dim[0].dim_param == "batch"
        assert tensor.shape.dim[1].dim_value == 3
        onnx.checker.check_model(proto, full_check=True)


@pytest.mark.parametrize("opset", [13, 17, 18, None])
def test_opsets(opset):
    model = fb.Sequential(
        [fb.Maxout(4, pieces=2, input_dim=3), fb.Dense(3, activation="hard_sigmoid")],
        loss="mse",
        seed=1,
    )
    proto = model.to_onnx(opset=opset)
    version = {o.domain: o.version for o in proto.opset_import}[""]
    assert version == (opset or export_onnx.DEFAULT_OPSET)
    X = inputs(64, 3, np.float32)
    assert_close(run(proto, X)["output"], model.predict(X), 0, "output", atol=ATOL[np.float32])


@pytest.mark.parametrize("opset", [12, 10_000, 17.5, "17", True])
def test_bad_opsets(opset):
    model = fb.Sequential([fb.Dense(2, input_dim=3)])
    with pytest.raises((ValueError, TypeError), match="opset"):
        model.to_onnx(opset=opset)


@pytest.mark.parametrize("dtype", ["float16", "int64", np.int32, "double!"])
def test_bad_dtype(dtype):
    model = fb.Sequential([fb.Dense(2, input_dim=3)])
    with pytest.raises((ValueError, TypeError), match="dtype"):
        model.to_onnx(dtype=dtype)


# --- metadata: standardisation and classes -------------------------------------------


def test_standardisation_of_features_and_targets():
    rng = np.random.default_rng(7)
    mean, scale = rng.standard_normal(4) * 10, rng.uniform(0.5, 3, 4)
    t_mean, t_scale = np.array([100.0, -3.0]), np.array([20.0, 0.5])
    model = fb.Sequential([fb.Dense(5, activation="tanh", input_dim=4), fb.Dense(2)], seed=2)
    model.metadata = {
        "standardize": {"mean": mean.tolist(), "scale": scale.tolist()},
        "target_standardize": {"mean": t_mean.tolist(), "scale": t_scale.tolist()},
    }
    raw = (mean + scale * rng.standard_normal((40, 4))).astype(np.float32)
    got = run(model.to_onnx(), raw)["output"]
    expected = model.predict((raw - mean) / scale) * t_scale + t_mean
    assert_close(got, expected, 1e-5, "output in the target's units")


def test_a_model_saved_by_fastbp_train_predicts_like_fastbp_predict(tmp_path):
    from fastbp import cli

    path = tmp_path / "model.npz"
    assert cli.main(["train", "--epochs", "3", "--quiet", "--save", str(path)]) == 0
    model = fb.load(path)
    assert "standardize" in model.metadata and model.classes_ is not None
    X, _ = fb.datasets.load_digits()
    X = X[:300].astype(np.float32)
    got = run(model.to_onnx(), X)
    stats = model.metadata["standardize"]
    Z = (X - np.array(stats["mean"])) / np.array(stats["scale"])
    np.testing.assert_array_equal(got["label"], model.predict(Z))
    assert_close(got["probabilities"], model.predict_proba(Z), 0, "probabilities", atol=1e-5)


@pytest.mark.parametrize(
    "classes",
    [["cat", "dog", "émeu"], [10, 20, 30], [0.5, 1.5, 2.5], np.array(["a", "b", "c"])],
)
def test_labels_map_through_the_class_names(classes):
    model = fb.Sequential([fb.Dense(3, input_dim=4)], loss="softmax_cross_entropy", seed=8)
    X = inputs(60, 4, np.float32)
    model.fit(X, np.asarray(classes)[np.arange(60) % 3], epochs=1, verbose=0, classes=classes)
    got = run(model.to_onnx(), X)["label"]
    expected = model.predict(X)  # labels from model.classes_
    assert list(got) == list(expected)
    assert len(set(got)) > 1


def test_binary_labels_map_through_two_class_names():
    model = fb.Sequential([fb.Dense(1, activation="sigmoid", input_dim=4)], loss="bce", seed=9)
    model.metadata["classes"] = ["no", "yes"]
    X = inputs(80, 4, np.float32)
    got = run(model.to_onnx(), X)["label"]
    assert list(got) == list(np.array(["no", "yes"])[model.predict(X)])


def test_classes_attribute_wins_over_the_metadata():
    model = fb.Sequential([fb.Dense(2, input_dim=4)], loss="softmax_cross_entropy", seed=1)
    model.metadata["classes"] = ["x", "y"]
    model.fit(inputs(50, 4, np.float32), np.array([7, 9] * 25), epochs=1, verbose=0, classes=[7, 9])
    assert set(run(model.to_onnx(), inputs(50, 4, np.float32))["label"]) <= {7, 9}


@pytest.mark.parametrize(
    "classes, match",
    [
        (["a", "b"], "2 class names"),
        ([], "non-empty"),
        ([1, "b", 2], "all"),
        ("abc", "a list of class names"),
        (3, "a list of class names"),
    ],
)
def test_class_names_that_do_not_fit(classes, match):
    model = fb.Sequential([fb.Dense(3, input_dim=4)], loss="softmax_cross_entropy")
    model.metadata["classes"] = classes
    with pytest.raises(ValueError, match=match):
        model.to_onnx()


def test_class_names_for_several_sigmoid_outputs_are_refused():
    model = fb.Sequential([fb.Dense(3, activation="sigmoid", input_dim=4)], loss="bce")
    model.metadata["classes"] = ["a", "b"]
    with pytest.raises(ValueError, match="3 sigmoid outputs"):
        model.to_onnx()


@pytest.mark.parametrize(
    "stats",
    [
        {"mean": [0.0, 0.0], "scale": [1.0, 1.0]},  # wrong width
        {"mean": [0.0, 0.0, 0.0], "scale": [1.0, 0.0, 1.0]},  # zero scale
        {"mean": [0.0, float("nan"), 0.0], "scale": [1.0, 1.0, 1.0]},
        {"mean": ["a", "b", "c"], "scale": [1.0, 1.0, 1.0]},
        {"mean": [0.0, 0.0, 0.0]},
        [0.0, 1.0],
    ],
)
def test_bad_standardisation_metadata(stats, tmp_path):
    model = fb.Sequential([fb.Dense(2, input_dim=3)])
    model.metadata["standardize"] = stats
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous file")
    with pytest.raises(ValueError, match="standardize"):
        model.to_onnx(target)
    # a failed export leaves the file there as it was, and no temporary file beside it
    assert target.read_bytes() == b"the previous file"
    assert os.listdir(tmp_path) == ["model.onnx"]


# --- files -----------------------------------------------------------------------------


def test_writes_the_file(tmp_path):
    model = fb.Sequential([fb.Dense(4, activation="relu", input_dim=3), fb.Dense(2)], seed=1)
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    proto = model.to_onnx(target)
    loaded = onnx.load(str(target))
    assert loaded == proto
    X = inputs(20, 3, np.float32)
    assert_close(run(loaded, X)["output"], model.predict(X), 0, "output", atol=1e-5)
    assert os.listdir(tmp_path) == ["model.onnx"]
    model.to_onnx(str(target).encode())  # bytes paths, as for save
    assert onnx.load(str(target)) == proto


def test_a_missing_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    model = fb.Sequential([fb.Dense(2, input_dim=3)])

    def no_work(*args, **kwargs):
        raise AssertionError("the graph was built before the path was checked")

    monkeypatch.setattr(export_onnx, "GraphBuilder", no_work)
    with pytest.raises(FileNotFoundError, match="no folder"):
        model.to_onnx(tmp_path / "missing" / "model.onnx")
    with pytest.raises(IsADirectoryError):
        model.to_onnx(tmp_path)
    with pytest.raises(TypeError, match="path"):
        model.to_onnx(3.5)


# --- refusals ----------------------------------------------------------------------------


def test_an_unbuilt_model():
    model = fb.Sequential([fb.Dense(4), fb.Dense(2)])
    with pytest.raises(RuntimeError, match=r"built model.*input_dim"):
        model.to_onnx()
    assert not model.built


def test_an_activation_registered_by_the_user(monkeypatch):
    spec = activations.ActivationSpec("cube", 99, None, 0.0, "z^3", "3 z^2")
    monkeypatch.setitem(activations.ACTIVATIONS, "cube", spec)
    model = fb.Sequential(
        [fb.Dense(3, activation="relu", input_dim=2), fb.Dense(2, activation="cube")],
        backend="numpy",
    )
    with pytest.raises(ValueError, match=r"layer 2 \(Dense\(2, activation='cube'.*'cube'"):
        model.to_onnx()


def test_a_layer_of_an_unknown_kind():
    model = fb.Sequential([fb.Dense(3, input_dim=2), fb.Dense(2)])

    class Unknown(Layer):
        def __repr__(self):
            return "Unknown()"

    model._layers.insert(1, Unknown())
    with pytest.raises(ValueError, match=r"layer 2 \(Unknown\(\)\) is a Unknown"):
        model.to_onnx()


def test_changes_after_build(monkeypatch):
    model = fb.Sequential([fb.Dense(3, activation="tanh", input_dim=2), fb.Dense(2)], seed=1)
    X = inputs(10, 2, np.float32)
    before = run(model.to_onnx(), X)["output"]
    model.layers[0].W = model.layers[0].W * -2  # copied into the live weights: exported
    after = run(model.to_onnx(), X)["output"]
    assert not np.allclose(before, after)
    assert_close(after, model.predict(X), 0, "output", atol=1e-5)
    with pytest.raises(AttributeError, match="fixed once the model is built"):
        model.layers[0].activation = activations.get("relu")
    assert_close(run(model.to_onnx(), X)["output"], after, 0, "unchanged", atol=0)
