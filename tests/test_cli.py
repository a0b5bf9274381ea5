"""The command line: the main job, data files, save/predict, and one-line errors."""

import csv
import subprocess
import sys

import numpy as np
import pytest

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
    assert "epoch 30/30" in result.stdout and "total parameters" in result.stdout


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
        (["train", "--layers", "12,x"], "invalid literal"),
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
        a.replace("DATA.csv", str(data)).replace("DATA.txt", str(tmp_path / "d.txt")) for a in args
    ]
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


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
    ):
        assert option in text
    assert "predict" in run("--help").stdout
