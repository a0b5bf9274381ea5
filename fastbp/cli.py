"""The command line.

    fastbp train [options]             train an MLP, report its test score, save it
    fastbp predict MODEL --data FILE   write the predictions of a saved model

With no --data, `train` uses the handwritten digits that ship with fastbp. Data files
are .csv (a header row; the target column is --target, by default the last) or .npz
(arrays X and y). The samples are split into a test set (--test-size), and the rest
into a validation set (--validation-split: the validation curves and early stopping)
and the training set proper. Features (and, for regression, targets) are standardised
with the training set's statistics, which are saved with the model so that `predict`
applies the same transform (and reports predictions in the target's own units).

Everything that can be checked (options, output folders, matplotlib for --plot, a
saved model's metadata, the width and names of predict's columns) is checked before
any training or prediction starts. Exit status: 0 success, 2 a usage or data error
(one line on stderr), 130 interrupted (with --save, the epochs completed are saved),
141 when the reader of stdout goes away (a closed pipe, as in `| head`).
"""

import argparse
import csv
import os
import sys
import tempfile
from typing import Any

import numpy as np

import fastbp as fb
from fastbp import activations, datasets, losses, optimizers, tables
from fastbp import labels as class_labels
from fastbp import validation as check
from fastbp.layers import Layer


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit status 2."""


class Interrupted(Exception):
    """Ctrl-C: printed as one line (saying what was saved), exit status 130."""


EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 2, 130, 141


# --- data -----------------------------------------------------------------------------


def read_data(path, target=None, need_target=True, delimiter=None):
    """(X, y or None, feature_names, target_name) from a .csv, .tsv or .npz file
    (fastbp.tables.read_table); its refusals become CliErrors."""
    try:
        return tables.read_table(path, target=target, need_target=need_target, delimiter=delimiter)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def encode_classes(y):
    """(class indices, class names) for a classification target y of shape (n_samples,)."""
    classes, indices = np.unique(y, return_inverse=True)
    if classes.dtype.kind == "f" and np.all(classes == np.round(classes)):
        classes = classes.astype(np.int64)
    return indices.astype(np.int64), classes.tolist()


def select_columns(X, names, keep, drop):
    """(X, names) restricted to the columns named in keep (in that order), or without
    those in drop. X : ndarray of shape (n_samples, n_features); names : its column
    names; keep, drop : lists of names or None."""
    chosen = keep if keep is not None else names
    unknown = [name for name in (keep or []) + (drop or []) if name not in names]
    if unknown:
        raise CliError(
            f"no feature column named {', '.join(map(repr, unknown))}; the feature "
            f"columns are {names} (the target is not one of them)"
        )
    chosen = [name for name in chosen if name not in (drop or [])]
    if not chosen:
        raise CliError("--features/--drop leave no feature column; keep at least one")
    return X[:, [names.index(name) for name in chosen]], chosen


# --- checks made before any work ------------------------------------------------------


def check_writable(path, option):
    """Refuse an output path whose folder is missing or not writable, by creating and
    removing a temporary file there."""
    if os.path.isdir(path):
        raise CliError(f"{option} {path!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"{option} {path!r}: there is no folder {folder!r}; create it first")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fastbp-probe-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise CliError(
            f"{option} {path!r}: cannot write in {folder!r} ({exc.strerror}); "
            "choose a writable folder"
        ) from None


def check_plotting():
    """Refuse --plot when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise CliError(
            f"--plot needs matplotlib, which cannot be imported ({exc}); "
            "pip install 'fastbp[plot]' or drop --plot"
        ) from None


def _stats_width(stats):
    """The width of a saved {"mean": [...], "scale": [...]}, or None if malformed."""
    if not isinstance(stats, dict) or set(stats) != {"mean", "scale"}:
        return None
    try:
        mean = np.asarray(stats["mean"], dtype=np.float64)
        scale = np.asarray(stats["scale"], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    good = mean.ndim == 1 and mean.shape == scale.shape and np.isfinite(mean).all()
    return len(mean) if good and np.isfinite(scale).all() and (scale > 0).all() else None


def check_metadata(model, path):
    """Refuse a saved model whose metadata (written by `train`) does not fit its
    layers: feature names, standardisation statistics and classes."""
    if not model.built:
        raise CliError(f"{path!r} holds a model that was never built; train it first")
    meta, n_in, n_out = model.metadata, model.input_dim, model.output_dim
    broken = "; the file is damaged or not from fastbp train: train and save the model again"
    features = meta.get("features")
    if features is not None and (
        not isinstance(features, list)
        or len(features) != n_in
        or not all(isinstance(name, str) for name in features)
    ):
        raise CliError(f"{path!r}: its metadata should name {n_in} features{broken}")
    for key, width in (("standardize", n_in), ("target_standardize", n_out)):
        if key in meta and _stats_width(meta[key]) != width:
            raise CliError(
                f"{path!r}: its metadata {key!r} should hold {width} means and "
                f"{width} positive scales{broken}"
            )
    classes = meta.get("classes")
    if classes is not None:
        binary = model.loss.name == "binary_cross_entropy" and n_out == 1
        expected = 2 if binary else n_out
        if not model.loss.classification or not isinstance(classes, list):
            raise CliError(f"{path!r}: its metadata lists classes for a regression{broken}")
        if len(classes) != expected:
            raise CliError(
                f"{path!r}: its metadata lists {len(classes)} classes, but the model "
                f"has {n_out} output{'s' if n_out > 1 else ''} ({expected} classes){broken}"
            )


def feature_matrix(X, names, model, data_path):
    """The columns of X the model was trained on, in its order, checked before any
    transform. X : ndarray of shape (n_samples, n_columns); names : its column names
    (.csv), or None (.npz, which has no names: only the width is checked)."""
    expected = model.metadata.get("features")
    if X.ndim != 2:
        raise CliError(f"{data_path!r}: X must be a 2-D array, got shape {X.shape}")
    if names is not None and expected:
        missing = [name for name in expected if name not in names]
        if missing:
            raise CliError(
                f"{data_path!r} has no column {', '.join(map(repr, missing))}; the model "
                f"was trained on the columns {expected}"
            )
        return X[:, [names.index(name) for name in expected]]
    if X.shape[1] != model.input_dim:
        raise CliError(
            f"{data_path!r} has {X.shape[1]} feature columns, but the model was trained "
            f"on {model.input_dim}; pass data with the training features"
        )
    return X


# --- commands -------------------------------------------------------------------------


# --weight-decay when not given, by whether the loss is a classification: small tables
# (scikit-learn's diabetes) need it for a regression to beat a linear model, while
# classifiers (digits, wine, breast_cancer) do as well or better without
# (benchmarks/cli_defaults.py measures this)
DEFAULT_WEIGHT_DECAY = {False: 0.05, True: 0.0}


def make_optimizer(args, loss):
    """The optimiser the options ask for (checked before any data is read)."""
    decay = args.weight_decay
    settings: dict[str, Any] = {
        "weight_decay": DEFAULT_WEIGHT_DECAY[loss.classification] if decay is None else decay
    }
    if args.lr is not None:
        settings["lr"] = args.lr
    if args.momentum is not None:
        if args.optimizer != "sgd":
            raise CliError(
                f"--momentum is a setting of --optimizer sgd, not {args.optimizer}; "
                "drop --momentum or add --optimizer sgd"
            )
        settings["momentum"] = args.momentum
    try:
        return optimizers.OPTIMIZERS[args.optimizer](**settings)
    except ValueError as exc:
        raise CliError(f"--optimizer {args.optimizer}: {exc}") from None


def build_model(args, optimizer, n_features, n_outputs):
    """Dense hidden layers (each followed by Dropout with --dropout) and the output."""
    loss = losses.get(args.loss)
    layers: list[Layer] = []
    for width in args.layers:
        layers.append(
            fb.Dense(width, activation=args.activation, input_dim=None if layers else n_features)
        )
        if args.dropout:
            layers.append(fb.Dropout(args.dropout))
    out_activation = "sigmoid" if loss.name == "binary_cross_entropy" else None
    layers.append(
        fb.Dense(n_outputs, activation=out_activation, input_dim=None if layers else n_features)
    )
    return fb.Sequential(
        layers,
        loss=loss.name,
        optimizer=optimizer,
        dtype=args.dtype,
        seed=args.seed,
        backend=args.backend,
        n_threads=args.threads,
    )


def check_train_options(args):
    """Everything train can refuse before it reads data; returns the optimiser."""
    if args.early_stopping and not args.validation_split:
        raise CliError(
            "--early-stopping watches the validation loss; give --validation-split > 0 "
            "or --early-stopping 0"
        )
    if args.features is not None and args.drop is not None:
        raise CliError("give --features (the columns to keep) or --drop, not both")
    for path, option in ((args.save, "--save"), (args.plot, "--plot")):
        if path:
            check_writable(path, option)
    if args.plot:
        check_plotting()
    return make_optimizer(args, losses.get(args.loss))


def load_training_data(args):
    """(X, y, feature names, target name, description of the source)."""
    if args.data is None:
        X, y = datasets.load_digits()
        names, target, source = [f"pixel{i}" for i in range(64)], "digit", "handwritten digits"
    else:
        X, y, names, target = read_data(args.data, args.target, delimiter=args.delimiter)
        source = args.data
    if args.features is not None or args.drop is not None:
        X, names = select_columns(X, names, args.features, args.drop)
    return X, y, names, target, source


def split(args, X, y, classification):
    """(train, validation or None, test) pairs of (X, y): the test set is --test-size
    of the samples, the validation set --validation-split of the rest."""
    X_train, X_test, y_train, y_test = datasets.train_test_split(
        X, y, test_size=args.test_size, seed=args.seed, stratify=classification
    )
    validation = None
    if args.validation_split:
        X_train, X_val, y_train, y_val = datasets.train_test_split(
            X_train,
            y_train,
            test_size=args.validation_split,
            seed=args.seed,
            stratify=classification,
        )
        validation = (X_val, y_val)
    return (X_train, y_train), validation, (X_test, y_test)


def fit_or_save_on_interrupt(model, args, train_set, validation, callbacks, classes=None):
    """model.fit (classes: every class label, for classes_); on Ctrl-C, the model as
    of its last complete epoch (or the best one, with early stopping) is saved with
    --save, and Interrupted is raised."""
    try:
        return model.fit(
            *train_set,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_data=validation,
            callbacks=callbacks,
            verbose=0 if args.quiet else 1,
            classes=classes,
        )
    except KeyboardInterrupt:
        done = f"interrupted after {model.epochs_done} complete epochs"
        if not args.save:
            raise Interrupted(f"{done}; nothing saved (pass --save to keep the work)") from None
        model.save(args.save)
        raise Interrupted(f"{done}; saved the model trained so far to {args.save}") from None


def train(args):
    optimizer = check_train_options(args)
    X, y, names, target, source = load_training_data(args)
    loss = losses.get(args.loss)
    classes = None
    if loss.classification:
        y, classes = encode_classes(y)
        if loss.name == "binary_cross_entropy" and len(classes) != 2:
            raise CliError(
                f"--loss binary_cross_entropy needs 2 classes, the target has "
                f"{len(classes)}; use softmax_cross_entropy"
            )
        n_outputs = len(classes) if loss.softmax else 1
    else:
        n_outputs = 1 if np.ndim(y) == 1 else y.shape[1]
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    sets = split(args, X, y, loss.classification)
    # the model keeps the classes (classes_) when its loss takes labels; the class
    # names of a loss of probability rows stay in the metadata
    labelled = loss.classification and class_labels.width(loss, n_outputs) is not None
    if labelled:
        names_of = np.array(classes, dtype=object)  # labels, even when they are integers
        sets = [s and (s[0], names_of[s[1]]) for s in sets]
    elif loss.softmax:  # a loss of probability rows
        sets = [s and (s[0], np.eye(n_outputs)[s[1]]) for s in sets]
    scaler = datasets.Standardizer().fit(sets[0][0])
    model = build_model(args, optimizer, X.shape[1], n_outputs)
    model.metadata = {
        "features": names,
        "target": target,
        "classes": None if labelled else classes,
        "standardize": {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
    }
    target_scaler = None
    if not loss.classification:
        # regression targets are standardised too, so one learning rate suits any units
        target_scaler = datasets.Standardizer().fit(sets[0][1])
        model.metadata["target_standardize"] = {
            "mean": target_scaler.mean_.tolist(),
            "scale": target_scaler.scale_.tolist(),
        }
    sets = [
        s and (scaler.transform(s[0]), target_scaler.transform(s[1]) if target_scaler else s[1])
        for s in sets
    ]
    train_set, validation, (X_test, y_test) = sets
    if not args.quiet:
        print(
            f"{source}: {len(train_set[0])} training, "
            f"{len(validation[0]) if validation else 0} validation and {len(X_test)} test "
            f"samples, {X.shape[1]} features" + (f", {len(classes)} classes" if classes else "")
        )
        model.summary()
    callbacks = (
        [fb.EarlyStopping(patience=args.early_stopping, restore_best_weights=True)]
        if args.early_stopping
        else []
    )
    history = fit_or_save_on_interrupt(
        model, args, train_set, validation, callbacks, names_of if labelled else None
    )
    result = model.evaluate(X_test, y_test)
    figures = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k != "accuracy")
    stopped = f" after {len(history.epoch)} epoch{'' if len(history.epoch) == 1 else 's'}" + (
        f" (best: epoch {history.epoch[int(np.argmin(history.history['val_loss']))] + 1})"
        if callbacks
        else ""
    )
    if target_scaler is None:
        print(f"test accuracy {result['accuracy']:.2%} ({figures}){stopped}")
    else:
        error = (model.predict(X_test) - y_test) * target_scaler.scale_
        print(
            f"test RMSE {np.sqrt(np.mean(error**2)):.4g} in the target's units "
            f"({figures} on standardised targets){stopped}"
        )
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}")
    if args.plot:
        from fastbp import plot

        plot.history(history, args.plot)
        print(f"saved the learning curves to {args.plot}")
    return 0


def prediction_table(model, X, proba):
    """(header, rows) of what model says for X : ndarray of shape (n_samples,
    n_features), already standardised: class names or values, or with proba the
    probability of each class."""
    meta = model.metadata
    # classes_ for a model trained on labels; the metadata's list for a loss of
    # probability rows, and for models saved by earlier versions of `train`
    own = model.classes_
    classes = own.tolist() if own is not None else meta.get("classes")
    if proba:
        if not model.loss.classification:
            raise CliError("--proba needs a classification model; this one is a regression")
        table = model.predict_proba(X)
        if model.loss.name == "binary_cross_entropy" and table.shape[1] == 1:
            table = np.hstack([1 - table, table])
        labels = classes or list(range(table.shape[1]))
        return [f"proba_{label}" for label in labels], table
    predictions = model.predict(X)
    if "target_standardize" in meta:
        stats = meta["target_standardize"]
        predictions = predictions * np.array(stats["scale"]) + np.array(stats["mean"])
        if predictions.shape[1] == 1:
            predictions = predictions[:, 0]
    if own is None and classes and predictions.ndim == 1:
        predictions = np.array(classes, dtype=object)[predictions]
    if predictions.ndim == 1:
        return ["prediction"], predictions[:, None]
    return [f"output{i}" for i in range(predictions.shape[1])], predictions


def predict(args):
    if args.output:
        check_writable(args.output, "--output")
    try:
        model = fb.load(args.model)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from None
    check_metadata(model, args.model)
    meta = model.metadata
    X, _, names, _ = read_data(
        args.data, meta.get("target"), need_target=False, delimiter=args.delimiter
    )
    X = feature_matrix(X, None if args.data.endswith(".npz") else names, model, args.data)
    if "standardize" in meta:
        X = (X - np.array(meta["standardize"]["mean"])) / np.array(meta["standardize"]["scale"])
    header, rows = prediction_table(model, X, args.proba)
    # closed in the finally below unless it is stdout
    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows.tolist())
        out.flush()
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    return 0


# --- arguments ------------------------------------------------------------------------


def _option_type(parse, expected, checker=None, **bounds):
    """An argparse type: parse(text), then checker("value", value, **bounds) from
    fastbp.validation; failures become argparse's one-line error naming the option."""

    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        try:
            return value if checker is None else checker("value", value, **bounds)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = expected
    return convert


def _widths(text):
    """'128,64' -> [128, 64]; '' -> [] (no hidden layer)."""
    widths = [int(part) for part in text.split(",") if part.strip()]
    if any(width < 1 for width in widths):
        raise ValueError(text)
    return widths


def _names(text):
    """'a,b' -> ['a', 'b']."""
    names = [part.strip() for part in text.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise ValueError(text)
    return names


def _fraction_or_count(text):
    value = float(text)
    return int(value) if value >= 1 else value


_positive_int = _option_type(int, "an integer >= 1", check.check_int, low=1)
_count = _option_type(int, "an integer >= 0", check.check_int, low=0)
_non_negative = _option_type(float, "a number >= 0", check.check_real, low=0)

DATA_FILE = {"metavar": "FILE"}
DELIMITER = {
    "metavar": "CHAR",
    "help": "the .csv field separator (default: detected, else ',')",
}

# (group, flags, settings) of train's options, in the order --help lists them
TRAIN_OPTIONS = [
    (
        "data",
        "--data",
        DATA_FILE
        | {
            "help": ".csv with a header row, or .npz with arrays X and y "
            "(default: the built-in handwritten digits)"
        },
    ),
    ("data", "--target", {"metavar": "COLUMN", "help": "the .csv target column (default: last)"}),
    (
        "data",
        "--features",
        {
            "type": _option_type(_names, "comma-separated column names"),
            "metavar": "A,B,...",
            "help": "use only these feature columns",
        },
    ),
    (
        "data",
        "--drop",
        {
            "type": _option_type(_names, "comma-separated column names"),
            "metavar": "A,B,...",
            "help": "leave out these feature columns",
        },
    ),
    ("data", "--delimiter", DELIMITER),
    (
        "data",
        "--test-size",
        {
            "type": _option_type(
                _fraction_or_count,
                "a fraction in (0, 1) or a count",
                check.check_real,
                low=0,
                low_open=True,
            ),
            "default": 0.2,
            "metavar": "F",
            "help": "fraction (or count) of the samples held out for the test (default 0.2)",
        },
    ),
    (
        "data",
        "--validation-split",
        {
            "type": _option_type(
                float, "a fraction in [0, 1)", check.check_real, low=0, high=1, high_open=True
            ),
            "default": 0.2,
            "metavar": "F",
            "help": "fraction of the training samples held out for the validation curves and "
            "early stopping (never the test set; 0 for none; default 0.2)",
        },
    ),
    (
        "model",
        "--layers",
        {
            "type": _option_type(_widths, "hidden layer widths like 128,64 (integers >= 1)"),
            "default": [256],
            "metavar": "W1,W2,...",
            "help": "hidden layer widths, e.g. 128,64 (default 256; '' for none)",
        },
    ),
    (
        "model",
        "--activation",
        {
            "default": "relu",
            "choices": sorted(activations.ACTIVATIONS),
            "help": "hidden activation (default relu)",
        },
    ),
    (
        "model",
        "--dropout",
        {
            "type": _option_type(
                float, "a fraction in [0, 1)", check.check_real, low=0, high=1, high_open=True
            ),
            "default": 0.0,
            "metavar": "RATE",
            "help": "dropout rate after each hidden layer (default 0: none)",
        },
    ),
    (
        "model",
        "--loss",
        {
            "default": "softmax_cross_entropy",
            "choices": sorted(losses.LOSSES),
            "help": "loss (default softmax_cross_entropy; mse for regression)",
        },
    ),
    ("model", "--dtype", {"default": "float32", "choices": ["float32", "float64"]}),
    (
        "training",
        "--optimizer",
        {"default": "adam", "choices": sorted(optimizers.OPTIMIZERS), "help": "default adam"},
    ),
    (
        "training",
        "--lr",
        {
            "type": _option_type(float, "a number > 0", check.check_real, low=0, low_open=True),
            "metavar": "RATE",
            "help": "learning rate (default: the optimiser's own, 0.001 for adam, 0.01 for sgd)",
        },
    ),
    (
        "training",
        "--momentum",
        {
            "type": _option_type(
                float, "a fraction in [0, 1)", check.check_real, low=0, high=1, high_open=True
            ),
            "metavar": "M",
            "help": "momentum of --optimizer sgd (default 0)",
        },
    ),
    (
        "training",
        "--weight-decay",
        {
            "type": _non_negative,
            "metavar": "L2",
            "help": "L2 penalty on the weights (adamw: decoupled decay); default 0.05 with "
            "--loss mse, 0 with a classification loss",
        },
    ),
    (
        "training",
        "--epochs",
        {
            "type": _positive_int,
            "default": 200,
            "help": "at most this many passes over the data (default 200)",
        },
    ),
    (
        "training",
        "--early-stopping",
        {
            "type": _count,
            "default": 10,
            "metavar": "PATIENCE",
            "help": "stop once the validation loss has not improved for PATIENCE epochs and keep "
            "the best epoch's weights (default 10; 0 to train every epoch)",
        },
    ),
    ("training", "--batch-size", {"type": _positive_int, "default": 32, "help": "default 32"}),
    (
        "training",
        "--seed",
        {
            "type": _count,
            "default": 0,
            "help": "seeds the splits, the initialisation and the shuffling (default 0)",
        },
    ),
    ("training", "--backend", {"default": "cython", "choices": ["cython", "numpy"]}),
    (
        "training",
        "--threads",
        {
            "type": _positive_int,
            "metavar": "N",
            "help": "BLAS threads (default: the library's own)",
        },
    ),
    ("output", "--save", {"metavar": "MODEL.npz", "help": "write the trained model here"}),
    (
        "output",
        "--plot",
        {
            "metavar": "CURVES.png",
            "help": "write learning curves here (needs the plot extra: pip install 'fastbp[plot]')",
        },
    ),
    ("output", "--quiet", {"action": "store_true", "help": "print only the final result"}),
]

PREDICT_OPTIONS = [
    (
        "predict",
        "--data",
        DATA_FILE
        | {"required": True, "help": ".csv with the training features' columns, or .npz with X"},
    ),
    ("predict", "--delimiter", DELIMITER),
    ("predict", "--output", {"metavar": "FILE", "help": "CSV file to write (default stdout)"}),
    (
        "predict",
        "--proba",
        {"action": "store_true", "help": "write each class's probability instead of the class"},
    ),
]


def _add_options(parser, table):
    """Add a table of (group, flags, settings) to parser, one argument group each."""
    groups = {}
    for group, flag, settings in table:
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        groups[group].add_argument(flag, **settings)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastbp",
        description="Train multilayer perceptrons fast on the CPU.",
        epilog="exit status: 0 success, 2 usage or data error, 130 interrupted, "
        "141 stdout closed early",
    )
    parser.add_argument("--version", action="version", version=f"fastbp {fb.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train_cmd = commands.add_parser(
        "train",
        help="train an MLP (default: on the handwritten digits that ship with fastbp)",
        description="Train an MLP, print per-epoch progress and the test score.",
    )
    _add_options(train_cmd, TRAIN_OPTIONS)
    predict_cmd = commands.add_parser(
        "predict",
        help="predict with a saved model",
        description="Write one prediction per row of FILE (as CSV) to --output or stdout.",
    )
    predict_cmd.add_argument("model", metavar="MODEL.npz", help="a model saved by train --save")
    _add_options(predict_cmd, PREDICT_OPTIONS)
    return parser


COMMANDS = {"train": train, "predict": predict}

# what a command may raise that is the user's to fix (bad data, files, settings)
USER_ERRORS = (CliError, ValueError, TypeError, RuntimeError, FloatingPointError, OSError)


def _quiet_stdout():
    """Point stdout at /dev/null, so that flushing it at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv=None):
    """Run the command line; returns the exit status (0, 2, 130 or 141)."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("fastbp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Interrupted as exc:
        print(f"fastbp: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as exc:
        print(f"fastbp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
