"""The callbacks that write files: ModelCheckpoint and CSVLogger. What they can
check is checked before the first epoch; a file is never left half written."""

import _thread
import csv
import os

import numpy as np
import pytest

import fastbp as fb
from fastbp.callbacks import Callback


def setup(seed=0, optimizer=None):
    rng = np.random.default_rng(seed)
    X, Xv = rng.standard_normal((60, 5)), rng.standard_normal((40, 5))
    w = rng.standard_normal(5)
    y, yv = (X @ w > 0).astype(int), (Xv @ w > 0).astype(int)
    model = fb.Sequential(
        [fb.Dense(16, activation="relu", input_dim=5), fb.Dense(2)],
        loss="softmax_cross_entropy",
        optimizer=optimizer or fb.SGD(lr=0.3),
        seed=seed,
    )
    return model, X, y, (Xv, yv)


class Recorder(Callback):
    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs, model):
        self.weights.append(model.get_weights())


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def interrupt_in_epoch(monkeypatch, model, at_call):
    """Make the model's engine raise KeyboardInterrupt (as Ctrl-C does) at its
    at_call-th call, one batch per call: in the middle of an epoch."""
    calls, real = [], model._backend.epoch

    def engine(*args):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(model._backend, "epoch", engine)
    monkeypatch.setattr(fb.model, "CALL_SECONDS", 0.0)


# --- ModelCheckpoint --------------------------------------------------------------------


def test_checkpoint_names_files_from_the_epoch_and_metrics(tmp_path):
    model, X, y, val = setup()
    record = Recorder()
    path = tmp_path / "ckpt-{epoch:03d}-{val_loss:.3f}.npz"
    checkpoint = fb.ModelCheckpoint(path)
    hist = model.fit(X, y, epochs=3, validation_data=val, verbose=0, callbacks=[record, checkpoint])
    names = [f"ckpt-{k + 1:03d}-{v:.3f}.npz" for k, v in enumerate(hist.history["val_loss"])]
    assert files(tmp_path) == sorted(names)  # 1-based, and no temporary file left
    assert checkpoint.saved_paths == [str(tmp_path / name) for name in names]
    assert checkpoint.last_saved_path == str(tmp_path / names[-1])
    for name, weights in zip(names, record.weights):
        assert same_weights(fb.load(tmp_path / name).get_weights(), weights)
    assert fb.load(tmp_path / names[-1]).epochs_done == 3


def test_checkpoint_saves_the_best_only_when_asked(tmp_path):
    model, X, y, val = setup()
    record = Recorder()
    checkpoint = fb.ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    hist = model.fit(
        X, y, epochs=30, validation_data=val, verbose=0, callbacks=[record, checkpoint]
    )
    val_loss = hist.history["val_loss"]
    improving = [k for k, v in enumerate(val_loss) if v < min(val_loss[:k], default=np.inf)]
    assert len(checkpoint.saved_paths) == len(improving) < 30
    assert checkpoint.best == min(val_loss)
    best = int(np.argmin(val_loss))
    assert same_weights(fb.load(tmp_path / "best.npz").get_weights(), record.weights[best])


def test_checkpoint_maximises_accuracies_and_obeys_mode(tmp_path):
    model, X, y, val = setup()
    high = fb.ModelCheckpoint(tmp_path / "a.npz", monitor="val_accuracy", save_best_only=True)
    low = fb.ModelCheckpoint(
        tmp_path / "l.npz", monitor="val_loss", mode="max", save_best_only=True
    )
    hist = model.fit(X, y, epochs=10, validation_data=val, verbose=0, callbacks=[high, low])
    assert high.best == max(hist.history["val_accuracy"])
    assert low.best == max(hist.history["val_loss"])


def test_checkpoint_every_n_epochs(tmp_path):
    model, X, y, _ = setup()
    checkpoint = fb.ModelCheckpoint(tmp_path / "m{epoch}.npz", save_freq=2)
    model.fit(X, y, epochs=5, verbose=0, callbacks=[checkpoint])
    assert files(tmp_path) == ["m2.npz", "m4.npz"]
    for bad in ("batch", 0, -1, 1.5, None):
        with pytest.raises(ValueError, match="save_freq"):
            fb.ModelCheckpoint(tmp_path / "m.npz", save_freq=bad)


def test_a_reused_checkpoint_starts_afresh_and_its_numbers_go_on(tmp_path):
    model, X, y, val = setup()
    checkpoint = fb.ModelCheckpoint(tmp_path / "m{epoch}.npz", save_best_only=True)
    model.fit(X, y, epochs=2, validation_data=val, verbose=0, callbacks=[checkpoint])
    hist = model.fit(X, y, epochs=2, validation_data=val, verbose=0, callbacks=[checkpoint])
    assert checkpoint.best == min(hist.history["val_loss"])
    assert checkpoint.saved_paths[0] == str(tmp_path / "m3.npz")  # this fit's first, improving
    assert set(files(tmp_path)) >= {"m1.npz", "m3.npz"}


@pytest.mark.parametrize(
    "name, error, match",
    [
        ("m-{val_los:.3f}.npz", ValueError, r"uses \{val_los\}, which this fit does not record"),
        ("m-{accuracy}-{grad_norm_1}.npz", ValueError, r"uses \{grad_norm_1\}"),
        ("m-{}.npz", ValueError, "is not a metric name"),
        ("m-{0}.npz", ValueError, "is not a metric name"),
        ("m-{epoch.real}.npz", ValueError, "is not a metric name"),
        ("m-{val_loss:d}.npz", ValueError, "cannot be formatted"),
        ("m-{epoch:q}.npz", ValueError, "cannot be formatted"),
        ("m-{epoch!x}.npz", ValueError, "cannot be formatted"),
    ],
)
def test_checkpoint_format_errors_come_before_the_first_epoch(tmp_path, name, error, match):
    model, X, y, val = setup()
    with pytest.raises(error, match=match):
        model.fit(
            X,
            y,
            epochs=2,
            validation_data=val,
            verbose=0,
            callbacks=[fb.ModelCheckpoint(tmp_path / name)],
        )
    assert model.epochs_done == 0 and files(tmp_path) == []


def test_checkpoint_paths_that_cannot_be_formats_are_refused_when_made(tmp_path):
    for name in ("m-{epoch.npz", "m-}.npz"):
        with pytest.raises(ValueError, match="not a valid format string"):
            fb.ModelCheckpoint(tmp_path / name)
    with pytest.raises(ValueError, match="format fields in its folder"):
        fb.ModelCheckpoint(str(tmp_path / "run-{epoch}" / "m.npz"))
    with pytest.raises(IsADirectoryError, match="names a folder"):
        fb.ModelCheckpoint(str(tmp_path) + os.sep)
    with pytest.raises(TypeError, match="path must be a str"):
        fb.ModelCheckpoint(3)
    with pytest.raises(TypeError, match="monitor must be a metric name"):
        fb.ModelCheckpoint(tmp_path / "m.npz", monitor=None)
    # literal braces, escaped, are a plain name
    model, X, y, _ = setup()
    model.fit(X, y, verbose=0, callbacks=[fb.ModelCheckpoint(tmp_path / "m{{x}}-{epoch}.npz")])
    assert files(tmp_path) == ["m{x}-1.npz"]


def test_checkpoint_folder_problems_come_before_the_first_epoch(tmp_path):
    model, X, y, _ = setup()
    (tmp_path / "plain-file").write_text("not a folder")
    (tmp_path / "m1.npz").mkdir()
    cases = [
        (tmp_path / "missing" / "m.npz", FileNotFoundError, "does not exist"),
        (tmp_path / "plain-file" / "m.npz", NotADirectoryError, "is not a folder"),
        (tmp_path / "m{epoch}.npz", IsADirectoryError, "which is a folder"),
        # writing is refused there even to root
        ("/sys/fastbp-{epoch}.npz", PermissionError, "cannot write into the folder '/sys'"),
    ]
    for path, error, match in cases:
        with pytest.raises(error, match=match):
            model.fit(X, y, epochs=2, verbose=0, callbacks=[fb.ModelCheckpoint(path)])
    assert model.epochs_done == 0
    assert files(tmp_path) == ["m1.npz", "plain-file"]
    with pytest.raises(ValueError, match="monitors 'val_loss', which this fit does not record"):
        model.fit(
            X, y, verbose=0, callbacks=[fb.ModelCheckpoint(tmp_path / "b.npz", save_best_only=True)]
        )
    # without save_best_only, the monitor need not be recorded
    checkpoint = fb.ModelCheckpoint(tmp_path / "any.npz")
    model.fit(X, y, verbose=0, callbacks=[checkpoint])
    assert checkpoint.best is None and checkpoint.last_saved_path == str(tmp_path / "any.npz")


def test_checkpoint_of_a_model_that_cannot_be_saved_fails_before_the_first_epoch(tmp_path):
    model, X, y, _ = setup(optimizer=fb.SGD(lr=0.1, schedule=lambda lr, epoch: lr))
    with pytest.raises(TypeError, match="cannot hold"):
        model.fit(X, y, epochs=2, verbose=0, callbacks=[fb.ModelCheckpoint(tmp_path / "m.npz")])
    assert model.epochs_done == 0 and files(tmp_path) == []


def test_ctrl_c_in_an_epoch_leaves_whole_checkpoints_and_a_closed_csv(tmp_path, monkeypatch):
    model, X, y, _ = setup()
    record = Recorder()
    checkpoint = fb.ModelCheckpoint(tmp_path / "m{epoch}.npz")
    logger = fb.CSVLogger(tmp_path / "log.csv")
    model.fit(X, y, epochs=1, batch_size=10, verbose=0)
    interrupt_in_epoch(monkeypatch, model, at_call=9)  # 6 batches an epoch: in the second
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=3, batch_size=10, verbose=0, callbacks=[record, checkpoint, logger])
    assert logger._file is None  # closed
    assert files(tmp_path) == ["log.csv", "m2.npz"]
    assert same_weights(fb.load(tmp_path / "m2.npz").get_weights(), record.weights[0])
    rows = read_rows(tmp_path / "log.csv")
    assert len(rows) == 2 and rows[1][0] == "1"  # the header and the one completed epoch


def test_ctrl_c_during_a_save_waits_until_the_file_is_whole(tmp_path, monkeypatch):
    model, X, y, _ = setup()
    real = np.savez

    def interrupted_savez(*args, **kwargs):
        _thread.interrupt_main()  # Ctrl-C arrives while the file is being written
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "savez", interrupted_savez)
    checkpoint = fb.ModelCheckpoint(tmp_path / "m{epoch}.npz")
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, epochs=3, verbose=0, callbacks=[checkpoint])
    monkeypatch.undo()
    assert files(tmp_path) == ["m1.npz"]
    assert same_weights(fb.load(tmp_path / "m1.npz").get_weights(), model.get_weights())


# --- CSVLogger --------------------------------------------------------------------------


def read_rows(path, separator=","):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter=separator))


def test_csv_has_a_header_and_one_exact_row_per_epoch(tmp_path):
    model, X, y, val = setup()
    path = tmp_path / "log.csv"
    hist = model.fit(X, y, epochs=3, validation_data=val, verbose=0, callbacks=[fb.CSVLogger(path)])
    header, *rows = read_rows(path)
    assert header == ["epoch", "accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert [row[0] for row in rows] == ["0", "1", "2"]
    for column, name in enumerate(header[1:], start=1):
        assert [float(row[column]) for row in rows] == hist.history[name]  # exact: repr


def test_csv_rows_are_flushed_as_each_epoch_ends(tmp_path):
    model, X, y, _ = setup()
    path = tmp_path / "log.csv"
    seen = []

    class Peek(Callback):  # after the logger: what another process would read now
        def on_epoch_end(self, epoch, logs, model):
            seen.append(len(read_rows(path)))

    model.fit(X, y, epochs=3, verbose=0, callbacks=[fb.CSVLogger(path), Peek()])
    assert seen == [2, 3, 4]


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_csv_separator(tmp_path, separator):
    model, X, y, _ = setup()
    path = tmp_path / "log.csv"
    model.fit(X, y, epochs=2, verbose=0, callbacks=[fb.CSVLogger(path, separator=separator)])
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == separator.join(["epoch", "accuracy", "loss", "lr"])
    assert len(read_rows(path, separator)) == 3


@pytest.mark.parametrize("bad", ["", ",,", "\n", '"', 1, None])
def test_csv_bad_separator(tmp_path, bad):
    with pytest.raises(ValueError, match="separator must be one character"):
        fb.CSVLogger(tmp_path / "log.csv", separator=bad)


def test_csv_append_continues_a_file_of_the_same_header(tmp_path):
    model, X, y, _ = setup()
    path = tmp_path / "log.csv"
    model.fit(X, y, epochs=2, verbose=0, callbacks=[fb.CSVLogger(path)])
    model.fit(X, y, epochs=2, verbose=0, callbacks=[fb.CSVLogger(path, append=True)])
    header, *rows = read_rows(path)
    assert header[0] == "epoch" and [row[0] for row in rows] == ["0", "1", "2", "3"]
    model.fit(X, y, epochs=1, verbose=0, callbacks=[fb.CSVLogger(path)])  # append=False
    assert [row[0] for row in read_rows(path)[1:]] == ["4"]


def test_csv_append_to_a_missing_or_empty_file_starts_it(tmp_path):
    model, X, y, _ = setup()
    for path in (tmp_path / "new.csv", tmp_path / "empty.csv"):
        if path.name == "empty.csv":
            path.write_bytes(b"")
        model.fit(X, y, verbose=0, callbacks=[fb.CSVLogger(path, append=True)])
        assert read_rows(path)[0] == ["epoch", "accuracy", "loss", "lr"]


def test_csv_append_refuses_another_header_before_training(tmp_path):
    model, X, y, val = setup()
    path = tmp_path / "log.csv"
    model.fit(X, y, epochs=1, verbose=0, callbacks=[fb.CSVLogger(path)])
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"its header is \['epoch', 'accuracy', 'loss', 'lr'\]"):
        model.fit(X, y, validation_data=val, verbose=0, callbacks=[fb.CSVLogger(path, append=True)])
    with pytest.raises(ValueError, match="read with separator ';'"):
        model.fit(X, y, verbose=0, callbacks=[fb.CSVLogger(path, separator=";", append=True)])
    assert model.epochs_done == 1 and path.read_bytes() == before


def test_csv_append_to_crafted_files(tmp_path):
    model, X, y, _ = setup()
    header = "epoch,accuracy,loss,lr"
    # a byte-order mark, Windows line ends and no final line break: accepted
    crafted = tmp_path / "bom.csv"
    crafted.write_bytes(("\ufeff" + header + "\r\n0,0.5,0.7,0.3").encode("utf-8"))
    model.fit(X, y, verbose=0, callbacks=[fb.CSVLogger(crafted, append=True)])
    lines = crafted.read_text(encoding="utf-8-sig").splitlines()
    assert lines[:2] == [header, "0,0.5,0.7,0.3"] and lines[2].startswith("0,")
    # a byte-order mark before another header: refused, naming it
    other = tmp_path / "other.csv"
    other.write_bytes(("\ufeff" + "epoch,loss\n").encode("utf-8"))
    with pytest.raises(ValueError, match=r"its header is \['epoch', 'loss'\]"):
        model.fit(X, y, verbose=0, callbacks=[fb.CSVLogger(other, append=True)])
    # not text
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        model.fit(X, y, verbose=0, callbacks=[fb.CSVLogger(binary, append=True)])
    assert binary.read_bytes() == b"\xff\xfe\x00\x01\n"
    # a folder, and a missing folder
    with pytest.raises(IsADirectoryError, match="is a folder"):
        model.fit(X, y, verbose=0, callbacks=[fb.CSVLogger(tmp_path)])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.fit(X, y, verbose=0, callbacks=[fb.CSVLogger(tmp_path / "no" / "log.csv")])
    assert model.epochs_done == 1


def test_csv_is_closed_when_a_later_callback_fails(tmp_path):
    model, X, y, _ = setup()

    class Explode(Callback):
        def on_epoch_end(self, epoch, logs, model):
            if epoch == 1:
                raise RuntimeError("callback failed")

    logger = fb.CSVLogger(tmp_path / "log.csv")
    with pytest.raises(RuntimeError, match="callback failed"):
        model.fit(X, y, epochs=4, verbose=0, callbacks=[logger, Explode()])
    assert logger._file is None
    assert [row[0] for row in read_rows(tmp_path / "log.csv")[1:]] == ["0", "1"]
    # and when a later callback cannot even begin
    bad = fb.ModelCheckpoint(tmp_path / "m.npz")
    model.optimizer.schedule = lambda lr, epoch: lr  # a model that cannot be saved
    with pytest.raises(TypeError, match="cannot hold"):
        model.fit(X, y, verbose=0, callbacks=[logger, bad])
    assert logger._file is None and model.epochs_done == 2


def test_csv_deleted_during_the_fit_is_written_again(tmp_path):
    model, X, y, _ = setup()
    path = tmp_path / "log.csv"

    class Delete(Callback):
        def on_epoch_end(self, epoch, logs, model):
            if epoch == 1:
                os.remove(path)

    with pytest.warns(RuntimeWarning, match="was deleted during training.*the 2 rows"):
        model.fit(X, y, epochs=4, verbose=0, callbacks=[Delete(), fb.CSVLogger(path)])
    assert [row[0] for row in read_rows(path)[1:]] == ["0", "1", "2", "3"]


def test_csv_replaced_during_the_fit_is_left_alone(tmp_path):
    model, X, y, _ = setup()
    path = tmp_path / "log.csv"
    logger = fb.CSVLogger(path)

    class Replace(Callback):
        def on_epoch_end(self, epoch, logs, model):
            if epoch == 1:
                os.remove(path)
                path.write_text("someone else's\n")

    with pytest.raises(RuntimeError, match="was replaced by another file"):
        model.fit(X, y, epochs=4, verbose=0, callbacks=[Replace(), logger])
    assert path.read_text() == "someone else's\n"
    assert len(logger.rows) == 2 and logger._file is None


def test_a_reused_csv_logger_starts_afresh(tmp_path):
    model, X, y, val = setup()
    logger = fb.CSVLogger(tmp_path / "log.csv")
    model.fit(X, y, epochs=2, validation_data=val, verbose=0, callbacks=[logger])
    model.fit(X, y, epochs=1, verbose=0, callbacks=[logger])  # other metrics, a new file
    header, *rows = read_rows(tmp_path / "log.csv")
    assert header == ["epoch", "accuracy", "loss", "lr"] and len(rows) == 1
    assert len(logger.rows) == 1


# --- over MPI ranks ---------------------------------------------------------------------

RANK_SCRIPT = """
import json, os, sys
import numpy as np
from mpi4py import MPI
import fastbp as fb

comm, folder = MPI.COMM_WORLD, sys.argv[1]
# rank 0 writes into folder/r0; the other ranks get folders that do not exist,
# which they must neither check nor write into
mine = os.path.join(folder, f"r{comm.rank}")
rng = np.random.default_rng(0)
X = rng.standard_normal((90, 4))
y = (X[:, 0] > 0).astype(int)
model = fb.Sequential(
    [fb.Dense(8, activation="tanh", input_dim=4), fb.Dense(2)],
    loss="softmax_cross_entropy", optimizer=fb.SGD(lr=0.2), seed=0,
)
checkpoint = fb.ModelCheckpoint(os.path.join(mine, "m{epoch}-{val_loss:.4f}.npz"))
logger = fb.CSVLogger(os.path.join(mine, "log.csv"))
scheduler = fb.LearningRateScheduler(lambda epoch: 0.2 / (1 + epoch))
hist = model.fit(
    X, y, epochs=3, batch_size=30, validation_data=(X, y), verbose=0, comm=comm,
    callbacks=[checkpoint, logger, scheduler],
)
assert checkpoint.comm is comm and logger.comm is comm
if comm.rank == 0:
    with open(os.path.join(folder, "history.json"), "w") as f:
        json.dump({"history": hist.history, "saved": checkpoint.saved_paths}, f)
"""


def test_over_mpi_ranks_only_rank_0_checks_and_writes(tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec not found (pip install 'fastbp[mpi]')")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    (tmp_path / "r0").mkdir()
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, "-m", "mpi4py", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert files(tmp_path) == ["history.json", "r0", "ranks.py"]
    told = json.loads((tmp_path / "history.json").read_text())
    history = told["history"]
    assert history["lr"] == pytest.approx([0.2, 0.1, 0.2 / 3], rel=1e-15)
    names = [f"m{k + 1}-{v:.4f}.npz" for k, v in enumerate(history["val_loss"])]
    assert files(tmp_path / "r0") == sorted(["log.csv", *names])
    assert told["saved"] == [str(tmp_path / "r0" / name) for name in names]
    header, *rows = read_rows(tmp_path / "r0" / "log.csv")
    assert [float(row[header.index("val_loss")]) for row in rows] == history["val_loss"]


def test_file_callbacks_check_their_settings_when_made(tmp_path):
    with pytest.raises(ValueError, match="save_best_only must be True or False"):
        fb.ModelCheckpoint(tmp_path / "m.npz", save_best_only="yes")
    with pytest.raises(ValueError, match="mode must be one of"):
        fb.ModelCheckpoint(tmp_path / "m.npz", mode="best")
    with pytest.raises(ValueError, match="append must be True or False"):
        fb.CSVLogger(tmp_path / "log.csv", append="no")
    with pytest.raises(TypeError, match="CSVLogger path must be a str"):
        fb.CSVLogger(None)
    assert not list(tmp_path.iterdir())
