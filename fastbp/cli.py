"""The command line.

    fastbp train [options]             train an MLP, report its test accuracy, save it
    fastbp predict MODEL --data FILE   write the predictions of a saved model

With no --data, `train` uses the handwritten digits that ship with fastbp. Data files
are .csv (a header row; the target column is --target, by default the last) or .npz
(arrays X and y). Features (and, for regression, targets) are standardised with the training split's
statistics, which are saved with the model so that `predict` applies the same
transform (and reports predictions in the target's own units).
"""

import argparse
import csv
import sys

import numpy as np

import fastbp as fb
from fastbp import activations, datasets, losses, optimizers, tables


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit status 2."""


# --- data -----------------------------------------------------------------------------


def read_data(path, target=None, need_target=True, delimiter=None):
    """(X, y or None, feature_names, target_name) from a .csv, .tsv or .npz file
    (fastbp.tables.read_table); its refusals become CliErrors."""
    try:
        return tables.read_table(path, target=target, need_target=need_target, delimiter=delimiter)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def encode_classes(y):
    """(class indices, class names) for a classification target."""
    classes, indices = np.unique(y, return_inverse=True)
    if classes.dtype.kind == "f" and np.all(classes == np.round(classes)):
        classes = classes.astype(np.int64)
    return indices.astype(np.int64), classes.tolist()


# --- commands -------------------------------------------------------------------------


def build_model(args, n_features, n_outputs):
    loss = losses.get(args.loss)
    widths = [int(w) for w in args.layers.split(",") if w.strip()] if args.layers else []
    layers = [
        fb.Dense(w, activation=args.activation, input_dim=n_features if i == 0 else None)
        for i, w in enumerate(widths)
    ]
    out_activation = "sigmoid" if loss.name == "binary_cross_entropy" else None
    layers.append(
        fb.Dense(n_outputs, activation=out_activation, input_dim=None if widths else n_features)
    )
    lr = args.lr if args.lr is not None else (0.1 if loss.classification else 0.01)
    optimizer = optimizers.OPTIMIZERS[args.optimizer](lr=lr)
    return fb.Sequential(
        layers,
        loss=loss.name,
        optimizer=optimizer,
        dtype=args.dtype,
        seed=args.seed,
        backend=args.backend,
    )


def train(args):
    if args.data is None:
        X, y = datasets.load_digits()
        names, target, source = [f"pixel{i}" for i in range(64)], "digit", "handwritten digits"
    else:
        X, y, names, target = read_data(args.data, args.target)
        source = args.data
    loss = losses.get(args.loss)
    if loss.classification:
        y, classes = encode_classes(y)
        n_outputs = len(classes) if loss.softmax else 1
    else:
        classes, n_outputs = None, 1 if np.ndim(y) == 1 else y.shape[1]
    X_train, X_test, y_train, y_test = datasets.train_test_split(
        X, y, test_size=args.test_size, seed=args.seed, stratify=loss.classification
    )
    if loss.softmax and "labels" not in loss.codes:  # a loss of probability rows
        y_train, y_test = np.eye(n_outputs)[y_train], np.eye(n_outputs)[y_test]
    scaler = datasets.Standardizer().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    model = build_model(args, X.shape[1], n_outputs)
    model.metadata = {
        "features": names,
        "target": target,
        "classes": classes,
        "standardize": {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
    }
    if not loss.classification:
        # regression targets are standardised too, so one learning rate suits any units
        y_train = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
        y_test = np.asarray(y_test, dtype=np.float64).reshape(len(y_test), -1)
        target_scaler = datasets.Standardizer().fit(y_train)
        y_train, y_test = target_scaler.transform(y_train), target_scaler.transform(y_test)
        model.metadata["target_standardize"] = {
            "mean": target_scaler.mean_.tolist(),
            "scale": target_scaler.scale_.tolist(),
        }
    if not args.quiet:
        print(
            f"{source}: {len(X_train)} training and {len(X_test)} test samples, "
            f"{X.shape[1]} features" + (f", {len(classes)} classes" if classes else "")
        )
        model.summary()
    history = model.fit(
        X_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(X_test, y_test),
        verbose=0 if args.quiet else 1,
    )
    result = model.evaluate(X_test, y_test)
    figures = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k != "accuracy")
    if "accuracy" in result:
        print(f"test accuracy {result['accuracy']:.2%} ({figures})")
    else:
        error = (model.predict(X_test) - y_test) * target_scaler.scale_
        print(
            f"test RMSE {np.sqrt(np.mean(error**2)):.4g} in the target's units "
            f"({figures} on standardised targets)"
        )
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}")
    if args.plot:
        from fastbp import plot

        plot.history(history, args.plot)
        print(f"saved the learning curves to {args.plot}")
    return 0


def predict(args):
    try:
        model = fb.load(args.model)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    meta = model.metadata
    X, _, names, _ = read_data(args.data, meta.get("target"), need_target=False)
    if meta.get("features") and args.data.endswith(".csv") and names != meta["features"]:
        raise CliError(
            f"{args.data!r} has feature columns {names}, but the model was trained "
            f"on {meta['features']}"
        )
    if "standardize" in meta:
        X = (X - np.array(meta["standardize"]["mean"])) / np.array(meta["standardize"]["scale"])
    predictions = model.predict(X)
    if "target_standardize" in meta:
        stats = meta["target_standardize"]
        predictions = predictions * np.array(stats["scale"]) + np.array(stats["mean"])
        if predictions.shape[1] == 1:
            predictions = predictions[:, 0]
    classes = meta.get("classes")
    if classes and predictions.ndim == 1:
        predictions = np.array(classes, dtype=object)[predictions]
    # closed in the finally below unless it is stdout
    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(out)
        writer.writerow(
            ["prediction"]
            if predictions.ndim == 1
            else [f"output{i}" for i in range(predictions.shape[1])]
        )
        for row in predictions:
            writer.writerow([row] if np.ndim(row) == 0 else list(row))
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"wrote {len(predictions)} predictions to {args.output}", file=sys.stderr)
    return 0


# --- arguments ------------------------------------------------------------------------


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _fraction_or_count(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1) or a count, got {text}")
    return int(value) if value >= 1 else value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastbp", description="Train multilayer perceptrons fast on the CPU."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train_cmd = commands.add_parser(
        "train",
        help="train an MLP (default: on the handwritten digits that ship with fastbp)",
        description="Train an MLP, print per-epoch progress and the test accuracy.",
    )
    data = train_cmd.add_argument_group("data")
    data.add_argument(
        "--data",
        metavar="FILE",
        help=".csv with a header row, or .npz with "
        "arrays X and y (default: the built-in handwritten digits)",
    )
    data.add_argument("--target", metavar="COLUMN", help="the .csv target column (default: last)")
    data.add_argument(
        "--test-size",
        type=_fraction_or_count,
        default=0.2,
        metavar="F",
        help="fraction (or count) of samples held out for testing (default 0.2)",
    )
    net = train_cmd.add_argument_group("model")
    net.add_argument(
        "--layers",
        default="256",
        metavar="W1,W2,...",
        help="hidden layer widths, e.g. 128,64 (default 256; '' for none)",
    )
    net.add_argument(
        "--activation",
        default="relu",
        choices=sorted(activations.ACTIVATIONS),
        help="hidden activation (default relu)",
    )
    net.add_argument(
        "--loss",
        default="softmax_cross_entropy",
        choices=sorted(losses.LOSSES),
        help="loss (default softmax_cross_entropy)",
    )
    net.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    fit = train_cmd.add_argument_group("training")
    fit.add_argument("--optimizer", default="sgd", choices=sorted(optimizers.OPTIMIZERS))
    fit.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default 0.1 for classification, 0.01 for mse)",
    )
    fit.add_argument("--epochs", type=_positive_int, default=30, help="default 30")
    fit.add_argument("--batch-size", type=_positive_int, default=32, help="default 32")
    fit.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the split, the initialisation and the shuffling (default 0)",
    )
    fit.add_argument("--backend", default="cython", choices=["cython", "numpy"])
    out = train_cmd.add_argument_group("output")
    out.add_argument("--save", metavar="MODEL.npz", help="write the trained model here")
    out.add_argument(
        "--plot",
        metavar="CURVES.png",
        help="write learning curves here (needs the plot extra: pip install 'fastbp[plot]')",
    )
    out.add_argument("--quiet", action="store_true", help="print only the final result")

    predict_cmd = commands.add_parser(
        "predict",
        help="predict with a saved model",
        description="Write one prediction per row of FILE (as CSV) to --output or stdout.",
    )
    predict_cmd.add_argument("model", metavar="MODEL.npz", help="a model saved by train --save")
    predict_cmd.add_argument(
        "--data",
        metavar="FILE",
        required=True,
        help=".csv with the training features' header, or .npz with X",
    )
    predict_cmd.add_argument("--output", metavar="FILE", help="CSV file to write (default stdout)")
    return parser


COMMANDS = {"train": train, "predict": predict}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (
        CliError,
        ValueError,
        TypeError,
        RuntimeError,
        FloatingPointError,
        OSError,
        ImportError,
    ) as exc:
        print(f"fastbp: error: {exc}", file=sys.stderr)
        return 2
