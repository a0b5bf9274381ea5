"""save/load: bit-identical round trips, exact resumption, atomic writes, and clear
errors for damaged files."""

import json
import os

import numpy as np
import pytest

import fastbp as fb


def trained(backend="cython", dtype="float32"):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 6)), rng.integers(0, 3, 200)
    model = fb.Sequential(
        [
            fb.Dense(16, activation="leaky_relu", input_dim=6),
            fb.Dense(8, activation=fb.activations.get("leaky_relu", slope=0.2)),
            fb.Dense(3),
        ],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.05, weight_decay=1e-3),
        dtype=dtype,
        seed=3,
        backend=backend,
    )
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    return model, X, y


def test_round_trip_is_bit_identical(tmp_path, backend, dtype):
    model, X, _ = trained(backend, np.dtype(dtype).name)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = fb.load(path)
    assert loaded.get_config() == model.get_config()
    assert np.array_equal(loaded.forward(X), model.forward(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def with_dropout():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    model = fb.Sequential(
        [
            fb.Dense(64, activation="relu", input_dim=6),
            fb.Dropout(0.5),
            fb.Dense(32, activation="tanh"),
            fb.Dropout(0.25),
            fb.Dense(3),
        ],
        loss="softmax_cross_entropy",
        optimizer=fb.SGD(lr=0.05),
        seed=0,
    )
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    return model, X, y


@pytest.mark.parametrize("make", [trained, with_dropout], ids=["dense", "dropout"])
def test_training_resumes_exactly(tmp_path, make):
    """The saved step count, optimiser state and dropout seed give the same next epochs."""
    model, X, y = make()
    model.save(tmp_path / "m.npz")
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    resumed = fb.load(tmp_path / "m.npz")
    resumed.fit(X, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(resumed.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)


def test_load_can_switch_backend(tmp_path):
    model, X, _ = trained("cython", "float64")
    model.save(tmp_path / "m.npz")
    other = fb.load(tmp_path / "m.npz", backend="numpy")
    assert other.backend_name == "numpy"
    np.testing.assert_allclose(other.predict_proba(X), model.predict_proba(X), rtol=1e-12)


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model, _, _ = trained()
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def rewrite(path, change):
    """Load path's arrays, let change() edit them, write them back."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez(path, **arrays)


def edit_record(key, value):
    def change(arrays):
        record = json.loads(str(arrays["architecture"]))
        record[key] = value
        arrays["architecture"] = np.array(json.dumps(record))

    return change


@pytest.mark.parametrize(
    "damage, match",
    [
        pytest.param(
            lambda p: p.write_bytes(p.read_bytes()[:200]), "truncated or corrupted", id="truncated"
        ),
        (lambda p: p.write_bytes(b"not a zip file at all"), "truncated or corrupted"),
        (lambda p: rewrite(p, edit_record("version", 99)), "format version 99"),
        (lambda p: rewrite(p, edit_record("format", "other")), "not a fastbp model file"),
        (
            lambda p: rewrite(p, edit_record("loss", "hinge")),
            "loss must be one of 'mse', .*; got 'hinge'",
        ),
        (lambda p: rewrite(p, lambda a: a.pop("param_3")), "expected"),
        (lambda p: rewrite(p, lambda a: a.update(param_0=a["param_0"][:2])), r"shape \(2, 16\)"),
        (
            lambda p: rewrite(p, lambda a: a.update(param_1=a["param_1"].astype(np.float64))),
            "dtype float64",
        ),
        (
            lambda p: rewrite(p, lambda a: a.update(architecture=np.array("{broken"))),
            "damaged architecture record",
        ),
        (
            lambda p: rewrite(
                p, lambda a: a.update(param_2=np.array([object()] * 128, dtype=object))
            ),
            "truncated or corrupted|pickle",
        ),
    ],
)
def test_damaged_files_are_refused_clearly(tmp_path, damage, match):
    model, _, _ = trained()
    path = tmp_path / "m.npz"
    model.save(path)
    damage(path)
    with pytest.raises(ValueError, match=match):
        fb.load(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no model file"):
        fb.load("/nonexistent/model.npz")


def test_summary_lists_layers_and_totals():
    model, _, _ = trained()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Dense 1 (leaky_relu)" in text and "(None, 16)" in text
    assert f"total parameters: {model.count_params():,}" in text
    assert model.count_params() == 6 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3
