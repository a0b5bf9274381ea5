"""The command line: the main job, data files, save/predict, checks made before any
work, one-line errors, Ctrl-C, broken pipes and the defaults on real tables."""

import csv
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastbp as fb
from fastbp import cli


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "fastbp", *args], capture_output=True, text=True, timeout=300
    )


def test_train_with_defaults_reaches_95_percent_on_digits():
    result = run("train")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("test accuracy")
    assert float(last.split()[2].rstrip("%")) >= 95.0
    assert "epoch 1/200" in result.stdout and "288 validation and 360 test" in result.stdout
    assert "total parameters" in result.stdout


def write_csv(path, rows, header):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def test_csv_with_class_names_save_and_predict(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3)) * [1, 100, 0.01]  # unscaled on purpose
    names = np.where(X[:, 0] + X[:, 1] / 100 > 0, "yes", "no")
    data = tmp_path / "data.csv"
    write_csv(data, [[*x, n] for x, n in zip(X, names)], ["a", "b", "c", "label"])
    model = tmp_path / "m.npz"
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(data),
                "--layers",
                "8",
                "--epochs",
                "20",
                "--lr",
                "0.2",
                "--save",
                str(model),
                "--quiet",
            ]
        )
        == 0
    )
    assert "test accuracy" in capsys.readouterr().out
    out = tmp_path / "pred.csv"
    assert cli.main(["predict", str(model), "--data", str(data), "--output", str(out)]) == 0
    with open(out, newline="") as handle:
        predicted = [row[0] for row in csv.reader(handle)][1:]
    assert len(predicted) == 300 and set(predicted) <= {"yes", "no"}
    assert np.mean(np.array(predicted) == names) > 0.9


def test_npz_regression_in_the_targets_own_units(tmp_path, capsys):
    """Targets in the hundreds train with the default rate (the CLI standardises
    them) and predictions come back in their units."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 4))
    y = 300 + 100 * (X[:, 0] - 2 * X[:, 1])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    model = tmp_path / "m.npz"
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(tmp_path / "d.npz"),
                "--loss",
                "mse",
                "--epochs",
                "40",
                "--save",
                str(model),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    # predicting the mean would give an RMSE of y.std() (about 220)
    assert out.startswith("test RMSE") and float(out.split()[2]) < 0.25 * y.std()
    np.savez(tmp_path / "new.npz", X=X[:50])
    pred_file = tmp_path / "pred.csv"
    assert (
        cli.main(
            ["predict", str(model), "--data", str(tmp_path / "new.npz"), "--output", str(pred_file)]
        )
        == 0
    )
    predicted = np.loadtxt(pred_file, skiprows=1)
    assert predicted.shape == (50,)
    assert np.sqrt(np.mean((predicted - y[:50]) ** 2)) < 0.25 * y.std()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--data", "missing.csv"], "no data file"),
        (["train", "--data", "DATA.csv", "--target", "nope"], "has no column 'nope'"),
        (["train", "--activation", "swish"], "invalid choice"),
        (["train", "--epochs", "0"], "must be an integer >= 1"),
        (["train", "--layers", "12,x"], "argument --layers: expected hidden layer widths"),
        (["train", "--layers", "12,0"], "argument --layers"),
        (["train", "--dropout", "1"], "argument --dropout: value must be a number in [0, 1)"),
        (["train", "--weight-decay", "-1"], "argument --weight-decay"),
        (["train", "--threads", "0"], "argument --threads"),
        (["train", "--features", "a,,b"], "argument --features"),
        (["train", "--momentum", "0.9"], "--momentum is a setting of --optimizer sgd"),
        (["train", "--validation-split", "0", "--early-stopping", "3"], "--early-stopping"),
        (["train", "--data", "DATA.csv", "--features", "a,zz"], "no feature column named 'zz'"),
        (["train", "--data", "DATA.csv", "--features", "a", "--drop", "b"], "not both"),
        (["train", "--data", "DATA.csv", "--drop", "a,b"], "leave no feature column"),
        (["train", "--save", "NODIR/m.npz"], "there is no folder"),
        (["predict", "DATA.csv", "--data", "DATA.csv", "--output", "NODIR/p.csv"], "no folder"),
        (["predict", "missing.npz", "--data", "DATA.csv"], "no model file"),
        (["predict", "DATA.csv", "--data", "DATA.csv"], "not a readable fastbp model file"),
        (["train", "--data", "DATA.txt"], "expected a .csv file"),
    ],
)
def test_bad_arguments_end_in_one_line_errors(tmp_path, args, message):
    data = tmp_path / "d.csv"
    write_csv(data, [[1, 2, 0], [3, 4, 1]], ["a", "b", "y"])
    (tmp_path / "d.txt").write_text("1 2 3\n")
    args = [
        a.replace("DATA.csv", str(data))
        .replace("DATA.txt", str(tmp_path / "d.txt"))
        .replace("NODIR", str(tmp_path / "nodir"))
        for a in args
    ]
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # argparse prints its usage above
    assert last.startswith(("fastbp: error: ", "fastbp train: error: ", "fastbp predict: error"))
    assert message in last
    assert "epoch" not in result.stdout  # refused before any training


def test_help_lists_every_option():
    text = run("train", "--help").stdout
    for option in (
        "--data",
        "--target",
        "--layers",
        "--activation",
        "--loss",
        "--optimizer",
        "--lr",
        "--epochs",
        "--batch-size",
        "--test-size",
        "--seed",
        "--backend",
        "--dtype",
        "--save",
        "--plot",
        "--validation-split",
        "--weight-decay",
        "--dropout",
        "--momentum",
        "--early-stopping",
        "--threads",
        "--features",
        "--drop",
        "--delimiter",
    ):
        assert option in text
    assert "predict" in run("--help").stdout and "130 interrupted" in run("--help").stdout
    assert "--proba" in run("predict", "--help").stdout


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert (
        exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"fastbp {fb.__version__}"
    )


def train_small(tmp_path, *extra):
    """A small 3-class model on 3 named columns, saved to tmp_path/m.npz."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 3))
    y = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])
    data = tmp_path / "data.csv"
    write_csv(data, [[*x, t] for x, t in zip(X, y)], ["a", "b", "c", "label"])
    model = tmp_path / "m.npz"
    args = ["train", "--data", str(data), "--layers", "8", "--epochs", "5", "--quiet"]
    assert cli.main([*args, "--save", str(model), *extra]) == 0
    return model, data, X


def last_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastbp: error: ")
    return err[0]


@pytest.mark.parametrize("width", [1, 5])
def test_predict_checks_the_npz_width_before_any_transform(tmp_path, capsys, width):
    """On main, 1 column broadcast against the 3 means and gave predictions."""
    model, _, _ = train_small(tmp_path)
    np.savez(tmp_path / "new.npz", X=np.ones((5, width)))
    capsys.readouterr()
    assert cli.main(["predict", str(model), "--data", str(tmp_path / "new.npz")]) == 2
    assert f"has {width} feature columns, but the model was trained on 3" in last_error(capsys)


def test_predict_picks_csv_columns_by_name_and_names_the_missing(tmp_path, capsys):
    model, data, X = train_small(tmp_path, "--drop", "c")
    capsys.readouterr()
    # the training file itself, with the dropped column and the target
    assert cli.main(["predict", str(model), "--data", str(data)]) == 0
    from_training_file = capsys.readouterr().out.splitlines()
    assert len(from_training_file) == 151
    reordered = tmp_path / "reordered.csv"
    write_csv(reordered, [[x[1], x[0]] for x in X], ["b", "a"])
    assert cli.main(["predict", str(model), "--data", str(reordered)]) == 0
    assert capsys.readouterr().out.splitlines() == from_training_file
    partial = tmp_path / "partial.csv"
    write_csv(partial, [[x[0]] for x in X], ["a"])
    assert cli.main(["predict", str(model), "--data", str(partial)]) == 2
    assert "has no column 'b'" in last_error(capsys)


def test_features_keeps_the_named_columns(tmp_path, capsys):
    model, _, _ = train_small(tmp_path, "--features", "b,a")
    assert fb.load(model).metadata["features"] == ["b", "a"]
    assert fb.load(model).input_dim == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda meta: meta.update(classes=[0, 1]), "lists 2 classes, but the model has 3 outputs"),
        (lambda meta: meta.update(features=["a"]), "should name 3 features"),
        (lambda meta: meta["standardize"].update(scale=[1, 0, 1]), "positive scales"),
    ],
)
def test_predict_refuses_metadata_that_does_not_fit_the_model(tmp_path, capsys, change, message):
    model, data, _ = train_small(tmp_path)
    saved = fb.load(model)
    change(saved.metadata)
    saved.save(model)
    capsys.readouterr()
    assert cli.main(["predict", str(model), "--data", str(data)]) == 2
    assert message in last_error(capsys)


def test_predict_proba_writes_one_probability_per_class(tmp_path, capsys):
    model, data, _ = train_small(tmp_path)
    capsys.readouterr()
    assert cli.main(["predict", str(model), "--data", str(data), "--proba"]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert rows[0] == ["proba_0", "proba_1", "proba_2"]
    table = np.array(rows[1:], dtype=float)
    assert table.shape == (150, 3) and np.allclose(table.sum(axis=1), 1, atol=1e-5)


def test_predict_proba_refuses_a_regression(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.standard_normal((60, 2)), y=rng.standard_normal(60))
    model = tmp_path / "m.npz"
    args = ["train", "--data", str(tmp_path / "d.npz"), "--loss", "mse", "--epochs", "2"]
    assert cli.main([*args, "--quiet", "--save", str(model)]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(model), "--data", str(tmp_path / "d.npz"), "--proba"]) == 2
    assert "--proba needs a classification model" in last_error(capsys)


def test_plot_without_matplotlib_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    status = cli.main(["train", "--plot", str(tmp_path / "c.png"), "--save", str(tmp_path / "m")])
    assert status == 2 and "--plot needs matplotlib" in last_error(capsys)
    assert not os.listdir(tmp_path)


def test_validation_split_is_taken_from_the_training_split(capsys):
    assert cli.main(["train", "--epochs", "1", "--validation-split", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "1077 training, 360 validation and 360 test samples" in out
    assert "val_loss" in out
    assert (
        cli.main(["train", "--epochs", "1", "--validation-split", "0", "--early-stopping", "0"])
        == 0
    )
    out = capsys.readouterr().out
    assert "1437 training, 0 validation and 360 test samples" in out and "val_loss" not in out


def test_ctrl_c_saves_the_epochs_done_and_exits_130(tmp_path):
    model = tmp_path / "m.npz"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastbp",
            "train",
            "--epochs",
            "100000",
            "--early-stopping",
            "0",
            "--save",
            str(model),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in child.stdout:
        if line.startswith("epoch 1/"):
            break
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "saved the model trained so far" in lines[0], err
    assert fb.load(model).epochs_done >= 1


def test_a_closed_pipe_ends_quietly_with_141(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", X=rng.standard_normal((200000, 2)), y=rng.integers(0, 2, 200000))
    model = tmp_path / "m.npz"
    trained = run(
        "train", "--data", str(tmp_path / "d.npz"), "--epochs", "1", "--quiet", "--save", str(model)
    )
    assert trained.returncode == 0, trained.stderr
    child = subprocess.Popen(
        [sys.executable, "-m", "fastbp", "predict", str(model), "--data", str(tmp_path / "d.npz")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdout.readline()
    child.stdout.close()  # as `| head -1` does
    err = child.stderr.read()
    child.stderr.close()
    assert child.wait(timeout=60) == 141
    assert err == ""


def test_breast_cancer_defaults_match_logistic_regression():
    from benchmarks.cli_defaults import compare

    row = compare("breast_cancer")
    assert row["fastbp"] >= row["linear"] - 0.02, row


@pytest.mark.parametrize("save", [False, True])
def test_ctrl_c_in_fit_is_one_line_and_says_what_was_saved(tmp_path, capsys, monkeypatch, save):
    def interrupted_fit(model, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fb.Sequential, "fit", interrupted_fit)
    model = tmp_path / "m.npz"
    assert cli.main(["train", "--quiet", *(["--save", str(model)] if save else [])]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastbp: interrupted after 0 complete epochs")
    assert ("saved the model trained so far" in err[0]) == save == model.exists()


def test_train_keeps_the_classes_in_the_model(tmp_path, capsys):
    model, data, _ = train_small(tmp_path)
    saved = fb.load(model)
    assert saved.classes_.tolist() == [0, 1, 2] and saved.classes_.dtype == np.int64
    assert saved.metadata["classes"] is None
    capsys.readouterr()
    assert cli.main(["predict", str(model), "--data", str(data), "--proba"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "proba_0,proba_1,proba_2"


def test_a_model_saved_with_its_classes_in_the_metadata_still_predicts(tmp_path, capsys):
    """As `train` saved classifiers before models had classes_: class indices for the
    model, the class names in metadata["classes"]."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 2))
    index = (X[:, 0] > 0).astype(int)
    old = fb.Sequential([fb.Dense(2, input_dim=2)], loss="softmax_cross_entropy", seed=0)
    old.fit(X, index, epochs=20, verbose=0)
    old.metadata = {
        "features": ["a", "b"],
        "target": "label",
        "classes": ["left", "right"],
        "standardize": {"mean": [0.0, 0.0], "scale": [1.0, 1.0]},
    }
    path = tmp_path / "old.npz"
    old.save(path)
    assert fb.load(path).classes_ is None
    data = tmp_path / "new.csv"
    write_csv(data, X.tolist(), ["a", "b"])
    capsys.readouterr()
    assert cli.main(["predict", str(path), "--data", str(data)]) == 0
    predicted = capsys.readouterr().out.splitlines()
    assert predicted[0] == "prediction"
    assert predicted[1:] == np.array(["left", "right"])[old.predict(X)].tolist()
    assert cli.main(["predict", str(path), "--data", str(data), "--proba"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "proba_left,proba_right"
