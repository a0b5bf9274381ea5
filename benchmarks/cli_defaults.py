"""`fastbp train` with its default settings against a linear model, on real tables.

    python benchmarks/cli_defaults.py            # the three datasets
    python benchmarks/cli_defaults.py wine       # one of them

Each scikit-learn dataset (diabetes: regression; breast_cancer, wine: classification)
is written to a .csv in a temporary folder, trained on with `fastbp train --data FILE`
(plus `--loss mse` for the regression, nothing else), and its saved model is asked,
through `fastbp predict`, for the test split the CLI held out. On that same split a
linear model is fitted to the whole training split: LinearRegression (test RMSE) or
LogisticRegression on standardised features (test accuracy). Not a pytest file: it
prints a table. tests/test_cli.py runs `compare("breast_cancer")`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import tempfile
from collections.abc import Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # run as a script: this checkout's fastbp

import numpy as np  # noqa: E402

from fastbp import cli, datasets, losses  # noqa: E402

# name -> (loader in sklearn.datasets, extra train options, is a regression)
DATASETS = {
    "diabetes": ("load_diabetes", ["--loss", "mse"], True),
    "breast_cancer": ("load_breast_cancer", [], False),
    "wine": ("load_wine", [], False),
}


def write_csv(path: str, X: np.ndarray, y: np.ndarray, names: Sequence[str]) -> None:
    """X : ndarray of shape (n_samples, n_features), y : shape (n_samples,)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, "target"])
        writer.writerows([*map(repr, map(float, row)), repr(t.item())] for row, t in zip(X, y))


def held_out_split(path: str, train_args: list[str]):
    """The (X_train, X_test, y_train, y_test) the CLI's train uses for path, made
    with the same parsing, class encoding, split function, seed and test size."""
    args = cli.build_parser().parse_args(["train", "--data", path, *train_args])
    X, y, _, _ = cli.read_data(path)
    classification = losses.get(args.loss).classification
    if classification:
        y, _ = cli.encode_classes(y)
    return datasets.train_test_split(
        X, y, test_size=args.test_size, seed=args.seed, stratify=classification
    )


def fastbp_predictions(folder: str, path: str, train_args: list[str], X_test: np.ndarray):
    """Train with the CLI's defaults, then predict X_test through `fastbp predict`.
    Returns the predictions (n_test,) as strings and train's last output line."""
    model = os.path.join(folder, "model.npz")
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        status = cli.main(["train", "--data", path, *train_args, "--quiet", "--save", model])
    if status != 0:
        raise RuntimeError(f"fastbp train exited with {status}")
    test_file = os.path.join(folder, "test.npz")
    np.savez(test_file, X=X_test)
    out = os.path.join(folder, "predictions.csv")
    with contextlib.redirect_stderr(io.StringIO()):
        status = cli.main(["predict", model, "--data", test_file, "--output", out])
    if status != 0:
        raise RuntimeError(f"fastbp predict exited with {status}")
    with open(out, newline="") as f:
        predicted = [row[0] for row in csv.reader(f)][1:]
    return np.array(predicted), shown.getvalue().strip().splitlines()[0]


def compare(name: str) -> dict[str, object]:
    """{"dataset", "metric", "fastbp", "linear", "line"} for one dataset: the test
    RMSE (regression) or accuracy (classification) of fastbp's defaults and of the
    linear model, on the same test split."""
    from sklearn import datasets as sk_datasets
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.preprocessing import StandardScaler

    loader, train_args, regression = DATASETS[name]
    bunch = getattr(sk_datasets, loader)()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"{name}.csv")
        write_csv(path, bunch.data, bunch.target, list(bunch.feature_names))
        X_train, X_test, y_train, y_test = held_out_split(path, train_args)
        predicted, line = fastbp_predictions(folder, path, train_args, X_test)
    if regression:
        linear = LinearRegression().fit(X_train, y_train).predict(X_test)
        rmse = lambda p: float(np.sqrt(np.mean((p - y_test) ** 2)))  # noqa: E731
        scores = rmse(predicted.astype(np.float64)), rmse(linear)
        metric = "test RMSE (lower is better)"
    else:
        scaler = StandardScaler().fit(X_train)
        linear_model = LogisticRegression(max_iter=10_000).fit(scaler.transform(X_train), y_train)
        linear = linear_model.predict(scaler.transform(X_test))
        # the CLI answers with class names: the dataset's integer targets, as text
        classes = np.unique(bunch.target)
        predicted_indices = np.searchsorted(classes, predicted.astype(np.float64))
        scores = float(np.mean(predicted_indices == y_test)), float(np.mean(linear == y_test))
        metric = "test accuracy (higher is better)"
    return {
        "dataset": name,
        "metric": metric,
        "fastbp": scores[0],
        "linear": scores[1],
        "line": line,
    }


def main(argv: Sequence[str] = ()) -> None:
    names = list(argv) or list(DATASETS)
    print(f"{'dataset':<14} {'metric':<33} {'fastbp':>8} {'linear':>8}  fastbp train said")
    for name in names:
        row = compare(name)
        print(
            f"{row['dataset']:<14} {row['metric']:<33} {row['fastbp']:>8.4g} "
            f"{row['linear']:>8.4g}  {row['line']}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
