"""fastbp.load on files made to hurt: every one is refused with a one-line ValueError
before it costs memory (bombs are loaded in a fresh process that measures its peak),
nothing is unpickled, random damage never gives other weights; and save writes like
open(): umask, permissions, str/bytes/PathLike paths, through symlinks."""

import io as stdlib_io
import json
import os
import pickle
import stat
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb
from tests.paths import IMPORT_ROOT

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    model = fb.Sequential(
        [fb.Dense(5, activation="tanh", input_dim=4), fb.Dropout(0.2), fb.Dense(3)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=0.01),
        seed=seed,
    )
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    return model, X


@pytest.fixture
def saved(tmp_path):
    """(model, X, path of its file, {member name: bytes} of that file)."""
    model, X = small_model()
    path = tmp_path / "m.npz"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    return model, X, path, members


def npy(array):
    """The bytes np.save writes for array."""
    out = stdlib_io.BytesIO()
    np.lib.format.write_array(out, np.asarray(array), allow_pickle=True)
    return out.getvalue()


def npy_header(dtype, shape):
    """An npy header alone, declaring shape of dtype."""
    out = stdlib_io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": shape,
        },
    )
    return out.getvalue()


def record_of(members):
    return json.loads(str(np.load(stdlib_io.BytesIO(members["architecture.npy"]))))


def text_member(text):
    return npy(np.array(text))


def write(path, members, compression=zipfile.ZIP_STORED):
    """A zip at path holding members ({name: bytes}), in order."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def with_record(members, change):
    """members with their record edited by change(record) (which may return JSON text)."""
    record = record_of(members)
    text = change(record)
    return {
        **members,
        "architecture.npy": text_member(text if isinstance(text, str) else json.dumps(record)),
    }


def refused(path, match):
    """load(path) must raise a one-line, short ValueError matching match."""
    with pytest.raises(ValueError, match=match) as caught:
        fb.load(path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 1000, message[:2000]
    return message


# --- the record -------------------------------------------------------------------------


def set_layers(record, layers):
    record["layers"] = layers
    record["input_dim"] = layers[0]["input_dim"]


def dense(units, input_dim=None):
    return {
        "class": "Dense",
        "units": units,
        "activation": {"name": "identity"},
        "input_dim": input_dim,
        "kernel_initializer": "glorot_uniform",
    }


def set_state(record, state):
    record["rng_state"]["state"]["state"] = state


RECORDS = {
    "epochs infinite": (lambda r: r.update(epochs_done=float("inf")), "epochs_done must be"),
    "epochs negative": (lambda r: r.update(epochs_done=-5), "epochs_done must be"),
    "epochs fractional": (lambda r: r.update(epochs_done=1.5), "epochs_done must be"),
    "epochs huge": (lambda r: r.update(epochs_done=2**70), "epochs_done must be"),
    "origin negative": (lambda r: r.update(optimizer_origin=-1), "optimizer_origin must be"),
    "rng 200 bits": (lambda r: set_state(r, 2**200), r"rng_state\['state'\]\['state'\] must be"),
    "rng no state": (lambda r: r["rng_state"].pop("state"), "rng_state must have the keys"),
    "rng other kind": (lambda r: r["rng_state"].update(bit_generator="MT19937"), "PCG64"),
    "no input_dim": (
        lambda r: (r.update(input_dim=None), r["layers"][0].update(input_dim=None)),
        "input_dim must be an integer >= 1",
    ),
    "layers not a list": (lambda r: r.update(layers={"a": 1}), "layers must be a list"),
    "layer not a dict": (lambda r: r["layers"].append(7), "layer 4's record must be a dict"),
    "unknown layer": (lambda r: r["layers"][0].update({"class": "Conv2D"}), "layer 1's class"),
    "huge activation name": (
        lambda r: r["layers"][0].update(activation={"name": "x" * 500_000}),
        "activation",
    ),
    "huge unknown key": (lambda r: r["layers"][1].update({"y" * MiB: 1}), "Dropout"),
    "dims 10**6 x 10**6": (
        lambda r: set_layers(r, [dense(10**6, 10**6), dense(3)]),
        "expected 1,000,004,000,003 for its layers",
    ),
    "dims inconsistent": (
        lambda r: r["layers"][2].update(input_dim=7),
        "was given input_dim=7 but receives 5",
    ),
    "metadata a list": (lambda r: r.update(metadata=[1]), "metadata is a list"),
    "nested 200 000 deep": (
        lambda r: json.dumps(r).replace(
            '"metadata": {}', '"metadata": {"x": ' + "[" * 200_000 + "]" * 200_000 + "}"
        ),
        "nested over 64 deep",
    ),
    "nested 100 deep": (
        lambda r: r.update(metadata={"x": json.loads("[" * 100 + "]" * 100)}),
        "nested over 64 deep",
    ),
    "not JSON": (lambda r: "{broken", "damaged architecture record"),
    "a long digit string": (
        lambda r: '{"format": ' + "1" * 5000 + "}",
        "damaged architecture record",
    ),
    "version 99": (lambda r: r.update(version=99), "format version 99"),
    "other format": (lambda r: r.update(format="x" * MiB), "not a fastbp model file"),
}


@pytest.mark.parametrize("change, match", RECORDS.values(), ids=RECORDS.keys())
def test_a_bad_record_is_refused_in_one_short_line(saved, change, match):
    _, _, path, members = saved
    write(path, with_record(members, change))
    refused(path, match)


def test_the_record_and_its_file_are_checked_before_anything_is_built(saved, monkeypatch):
    """A record that does not fit its arrays never reaches the model's build."""
    _, _, path, members = saved
    write(path, with_record(members, lambda r: set_layers(r, [dense(8000, 8000), dense(3)])))
    monkeypatch.setattr(fb.Sequential, "build", lambda *a: pytest.fail("built"))
    refused(path, r"hold \d+ numbers, expected 64,032,003 for its layers")


def test_a_negative_step_count_is_refused(saved):
    model, _, path, members = saved
    last = f"state_{len(model._plan.optimizer_state()) - 2}.npy"
    write(path, {**members, last: npy(np.array([-5], np.int64))})
    refused(path, "negative counts")


# --- the members ------------------------------------------------------------------------


def with_member(name, data):
    return lambda members: {**members, name: data}


def without(name):
    return lambda members: {k: v for k, v in members.items() if k != name}


def param0(data):
    return with_member("param_0.npy", data)


MEMBERS = {
    "unknown member": (with_member("extra.npy", npy(np.zeros(3))), "holds a member 'extra.npy'"),
    "param_0 not .npy": (
        lambda m: {**without("param_0.npy")(m), "param_0": m["param_0.npy"]},
        "holds a member 'param_0'",
    ),
    "leading zero": (with_member("param_01.npy", npy(np.zeros(3))), "param_01.npy"),
    "no record": (without("architecture.npy"), "no architecture record"),
    "no param_0": (without("param_0.npy"), r"expected \['param_0' .. 'param_3'"),
    "2**40 floats in 16 bytes": (
        param0(npy_header(np.float32, (2**20, 2**20)) + bytes(16)),
        "its zip directory gives it 16 bytes",
    ),
    "header shape too small": (param0(npy(np.zeros((4, 5), np.float32))[:-4]), "gives it 76 bytes"),
    "wrong shape": (param0(npy(np.zeros((5, 4), np.float32))), r"param_0 has shape \(5, 4\)"),
    "wrong dtype": (param0(npy(np.zeros((4, 5), np.float64))), "param_0 has dtype float64"),
    "three dimensions": (param0(npy(np.zeros((4, 5, 1), np.float32))), "at most two dimensions"),
    "Fortran order": (param0(npy(np.asfortranarray(np.zeros((4, 5), np.float32)))), "Fortran"),
    "objects": (param0(npy(np.array([object()] * 20, dtype=object))), "pickle"),
    "strings": (param0(npy(np.array(["a"] * 20))), "fastbp files hold only"),
    "NaN weights": (param0(npy(np.full((4, 5), np.nan, np.float32))), "NaN or infinite"),
    "npy version 3": (
        param0(b"\x93NUMPY\x03\x00" + npy(np.zeros((4, 5), np.float32))[8:]),
        r"npy format version \(3, 0\)",
    ),
    "huge npy header": (
        param0(b"\x93NUMPY\x02\x00" + (2**30).to_bytes(4, "little") + bytes(2**16)),
        "npy header longer than",
    ),
    "bad magic": (param0(b"not npy" * 20), "magic string"),
    "record not text": (
        with_member("architecture.npy", npy(np.zeros(3))),
        "expected one unicode string",
    ),
    "record not UTF-32": (
        with_member("architecture.npy", npy_header("<U1", ()) + b"\xff\xff\xff\xff"),
        "damaged architecture record",
    ),
    "activation name of 10 MB": (
        with_member("architecture.npy", text_member("x" * 10 * MiB)),
        "fastbp records are at most 1,048,576 characters",
    ),
    "record of 2**21 characters": (
        with_member("architecture.npy", text_member("x" * 2**21)),
        "fastbp records are at most 1,048,576 characters",
    ),
}


@pytest.mark.parametrize("change, match", MEMBERS.values(), ids=MEMBERS.keys())
def test_a_bad_member_is_refused_in_one_short_line(saved, change, match):
    _, _, path, members = saved
    write(path, change(members))
    refused(path, match)


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"]
)
def test_other_zip_compressions_are_refused(saved, compression):
    _, _, path, members = saved
    write(path, members, compression)
    refused(path, f"uses zip compression method {compression}; fastbp files are stored or deflated")


def test_deflated_members_load(saved):
    model, X, path, members = saved
    write(path, members, zipfile.ZIP_DEFLATED)
    assert np.array_equal(fb.load(path).predict_proba(X), model.predict_proba(X))


def test_a_member_listed_twice_is_refused(saved):
    _, _, path, members = saved
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        write(path, {**members, "param_0.npy": members["param_0.npy"]})
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("param_0.npy", members["param_0.npy"])
    refused(path, "lists the member param_0.npy twice")


def directory_entry(data, name):
    """Where the zip's central directory entry for name starts in data."""
    start = 0
    while True:
        start = data.index(b"PK\x01\x02", start + 1)
        length = int.from_bytes(data[start + 28 : start + 30], "little")
        if data[start + 46 : start + 46 + length] == name.encode():
            return start


def test_a_lying_zip_directory_is_refused(saved):
    """Sizes in the directory that disagree with the npy header, or with the data."""
    _, _, path, members = saved
    write(path, members, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    entry = directory_entry(data, "param_0.npy")
    size = int.from_bytes(data[entry + 24 : entry + 28], "little")
    data[entry + 24 : entry + 28] = (size + 4).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    refused(path, "its zip directory gives it 84 bytes")
    # the header and the directory agree on a shorter member than the deflated data
    write(
        path,
        {**members, "param_0.npy": npy(np.ones((4, 5), np.float32)) + bytes(MiB)},
        zipfile.ZIP_DEFLATED,
    )
    data = bytearray(path.read_bytes())
    entry = directory_entry(data, "param_0.npy")
    data[entry + 24 : entry + 28] = (128 + 80).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    refused(path, "Bad CRC-32|truncated or corrupted")
    # a stored member whose directory claims more bytes than the file holds
    write(path, members)
    data = bytearray(path.read_bytes())
    entry = directory_entry(data, "param_0.npy")
    data[entry + 20 : entry + 28] = (2**31).to_bytes(4, "little") * 2
    path.write_bytes(bytes(data))
    refused(path, "cannot hold")


def test_nothing_is_ever_unpickled(saved, monkeypatch):
    _, _, path, members = saved
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, lambda *a, **k: pytest.fail("unpickled"))
    write(path, {**members, "param_2.npy": npy(np.array([object()] * 15, dtype=object))})
    refused(path, "pickle")


# --- the path ---------------------------------------------------------------------------


def as_nobody(action):
    """The exception action() raises (None if none), run as user nobody when this is
    root (for whom no permission bits apply), in a forked child."""
    if os.geteuid() != 0:
        try:
            action()
        except Exception as exc:
            return exc
        return None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.setgid(65534)
            os.setuid(65534)
            action()
            outcome = "None"
        except BaseException as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        os.write(write_end, outcome.encode()[:4000])
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    if outcome == "None":
        return None
    kind, message = outcome.split(": ", 1)
    return {"PermissionError": PermissionError}.get(kind, RuntimeError)(message)


@pytest.fixture
def open_folder():
    """A folder every user may write in."""
    folder = tempfile.mkdtemp(dir=ROOT if os.geteuid() != 0 else "/tmp")
    os.chmod(folder, 0o777)
    yield Path(folder)
    for child in Path(folder).iterdir():
        child.unlink()
    os.rmdir(folder)


def test_errors_about_the_path(tmp_path, saved, open_folder):
    with pytest.raises(FileNotFoundError, match="no model file at"):
        fb.load(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        fb.load(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    refused(tmp_path / "pipe", "is not a regular file")  # and does not wait for a writer
    with pytest.raises(TypeError, match=r"path must be a str, bytes or os\.PathLike; got int"):
        fb.load(3)
    secret = open_folder / "secret.npz"
    secret.write_bytes(saved[2].read_bytes())
    os.chmod(secret, 0o200)
    error = as_nobody(lambda: fb.load(secret))
    assert isinstance(error, PermissionError) and "may not be read" in str(error)


def test_load_takes_str_bytes_and_pathlike(saved):
    model, X, path, _ = saved
    for form in (str(path), os.fsencode(path), path):
        assert np.array_equal(fb.load(form).predict_proba(X), model.predict_proba(X))


# --- memory -----------------------------------------------------------------------------

PEAK = """
import resource, sys
import fastbp as fb
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    fb.load(sys.argv[1])
    outcome = "loaded"
except ValueError as exc:
    outcome = "ValueError: " + str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, outcome)
"""


def peak_growth(path):
    """(bytes the peak RSS grew by while loading path in a fresh process, outcome)."""
    # Linux carries a process's peak RSS over exec, so pytest's own size would hide
    # the child's: a small process in between starts the measured one.
    hop = "import subprocess, sys; subprocess.run(sys.argv[1:], check=True)"
    done = subprocess.run(
        [sys.executable, "-c", hop, sys.executable, "-c", PEAK, str(path)],
        cwd=IMPORT_ROOT,  # the fastbp under test
        capture_output=True,
        text=True,
        check=True,
    )
    growth, outcome = done.stdout.split(" ", 1)
    return int(growth), outcome.strip()


def zip_bomb(path, members):
    """members plus extra.npy: 1.5 GiB of zeros, deflated to about 1.5 MiB."""
    write(path, members)
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("extra.npy", "w", force_zip64=True) as member,
    ):
        for _ in range(1536):
            member.write(bytes(MiB))


def test_bombs_cost_no_memory(saved, tmp_path):
    members = saved[3]
    zip_bomb(tmp_path / "zip.npz", members)
    assert (tmp_path / "zip.npz").stat().st_size < 2 * MiB
    big = with_record(members, lambda r: set_layers(r, [dense(8000, 8000), dense(3)]))
    write(tmp_path / "record.npz", {"architecture.npy": big["architecture.npy"]})
    assert (tmp_path / "record.npz").stat().st_size < 10_000
    # the same record with every array it needs, as headers of the right shapes and
    # 16 bytes of data each (numpy's own reader allocates each whole array first)
    shapes = [(8000, 8000), (8000,), (8000, 3), (3,)]
    arrays = {f"param_{i}.npy": npy_header(np.float32, s) + bytes(16) for i, s in enumerate(shapes)}
    arrays.update(
        (f"state_{i}.npy", npy_header(np.float32, s) + bytes(16))
        for i, s in enumerate(s for s in shapes for _ in range(2))  # Adam: two per parameter
    )
    arrays["state_8.npy"] = npy(np.zeros(1, np.int64))
    arrays["state_9.npy"] = npy(np.zeros(1, np.uint64))
    write(tmp_path / "headers.npz", {**arrays, "architecture.npy": big["architecture.npy"]})
    for name, match in (
        ("zip.npz", "extra.npy"),
        ("record.npz", "it holds arrays [], expected"),
        ("headers.npz", "but its zip directory gives it 16 bytes"),
    ):
        growth, outcome = peak_growth(tmp_path / name)
        assert outcome.startswith("ValueError") and match in outcome, outcome
        assert growth < 50 * MiB, (name, growth)
    # the control: the same measure does see a model that really is large
    model = fb.Sequential([fb.Dense(4000, input_dim=4000), fb.Dense(3)], seed=0)
    model.save(tmp_path / "large.npz")  # 64 MB of weights
    growth, outcome = peak_growth(tmp_path / "large.npz")
    assert outcome == "loaded" and growth > 32 * MiB, (growth, outcome)


# --- random damage ----------------------------------------------------------------------


def test_random_damage_gives_valueerror_or_the_same_model(saved):
    model, X, path, _ = saved
    original = path.read_bytes()
    expected = model.predict_proba(X)
    rng = np.random.default_rng(0)
    outcomes = {"refused": 0, "same": 0}
    for trial in range(300):
        data = bytearray(original)
        if trial % 3 == 0:
            data = data[: rng.integers(len(data))]
        else:
            for where in rng.integers(len(data), size=rng.integers(1, 4)):
                data[where] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(data))
        try:
            again = fb.load(path)
        except ValueError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 1000
            outcomes["refused"] += 1
            continue
        assert again.get_config() == model.get_config()
        for a, b in zip(again.get_weights(), model.get_weights()):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert np.array_equal(again.predict_proba(X), expected)
        assert again.epochs_done == model.epochs_done and again.metadata == model.metadata
        assert again._rng.bit_generator.state == model._rng.bit_generator.state
        outcomes["same"] += 1
    assert outcomes["refused"] > 100 and outcomes["same"] > 0, outcomes


# --- save -------------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Set the process's umask for one test."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    small_model()[0].save(tmp_path / "m.npz")
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == mode


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    small_model()[0].save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and fb.load(path).built


def test_save_takes_str_bytes_and_pathlike(tmp_path):
    model, X = small_model()
    for form in (str(tmp_path / "a.npz"), os.fsencode(tmp_path / "b.npz"), tmp_path / "c.npz"):
        model.save(form)
        assert np.array_equal(fb.load(form).predict_proba(X), model.predict_proba(X))
    with pytest.raises(TypeError, match=r"path must be a str, bytes or os\.PathLike; got float"):
        model.save(1.5)


def test_save_writes_through_a_symlink(tmp_path):
    model, X = small_model()
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "m.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert np.array_equal(fb.load(target).predict_proba(X), model.predict_proba(X))
    assert sorted(os.listdir(tmp_path / "real")) == ["m.npz"]  # no temporary file left
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "real" / "new.npz")
    model.save(dangling)
    assert dangling.is_symlink() and fb.load(tmp_path / "real" / "new.npz").built


def test_a_read_only_file_is_not_replaced(open_folder):
    model, _ = small_model()
    path = open_folder / "m.npz"
    path.write_bytes(b"keep me")
    os.chmod(path, 0o444)
    error = as_nobody(lambda: model.save(path))
    assert isinstance(error, PermissionError) and "may not be written" in str(error), error
    assert path.read_bytes() == b"keep me" and os.listdir(open_folder) == ["m.npz"]


def test_save_into_a_folder_path_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        small_model()[0].save(tmp_path)


def test_save_refuses_a_record_load_would_refuse(tmp_path):
    model, _ = small_model()
    model.metadata = {"x": json.loads("[" * 70 + "]" * 70)}
    with pytest.raises(ValueError, match="nested over 64 deep; a file holds at most"):
        model.save(tmp_path / "m.npz")
    model.metadata = {"x": "y" * 2**20}
    with pytest.raises(ValueError, match="characters of JSON"):
        model.save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)
