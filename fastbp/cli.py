"""The command line: `fastbp train` trains an MLP and reports its test accuracy."""
import argparse
import sys
import time

import numpy as np

import fastbp as fb


def spiral(n_per_class=300, n_classes=3, noise=0.15, seed=0):
    """Interleaved 2-D spiral arms, one class per arm.

    Returns X : (n_per_class * n_classes, 2), y : (n_per_class * n_classes,) int.
    """
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.05, 1, n_per_class), n_classes)
    y = np.repeat(np.arange(n_classes), n_per_class)
    angle = radius * 4 + y * 2 * np.pi / n_classes + rng.normal(0, noise, radius.size)
    X = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    return X, y


def build_parser():
    parser = argparse.ArgumentParser(prog="fastbp", description="Train multilayer perceptrons fast on the CPU.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train an MLP on the built-in spiral data set")
    train.add_argument("--layers", default="64,64", help="hidden layer widths, e.g. 128,64")
    train.add_argument("--activation", default="relu", help="hidden activation")
    train.add_argument("--lr", type=float, default=0.3, help="learning rate")
    train.add_argument("--epochs", type=int, default=60)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backend", default="cython", choices=["cython", "numpy"])
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    return parser


def train(args):
    X, y = spiral(seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(X))
    X, y = X[order], y[order]
    n_test = len(X) // 5
    X_train, y_train, X_test, y_test = X[n_test:], y[n_test:], X[:n_test], y[:n_test]
    widths = [int(w) for w in args.layers.split(",") if w.strip()]
    layers = [fb.Dense(w, activation=args.activation, input_dim=2 if i == 0 else None)
              for i, w in enumerate(widths)]
    layers.append(fb.Dense(int(y.max()) + 1, input_dim=None if widths else 2))
    model = fb.Sequential(layers, loss="softmax_cross_entropy", optimizer=fb.SGD(lr=args.lr),
                          dtype=args.dtype, seed=args.seed, backend=args.backend)
    print(f"spiral data: {len(X_train)} training and {len(X_test)} test samples, 3 classes; "
          f"model 2-{'-'.join(map(str, widths + [3]))}, {args.backend} backend, {args.dtype}")
    started = time.perf_counter()
    model.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(X_test, y_test), verbose=1)
    result = model.evaluate(X_test, y_test)
    print(f"test accuracy {result['accuracy']:.1%} (loss {result['loss']:.4f}) "
          f"after {time.perf_counter() - started:.2f} s")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return {"train": train}[args.command](args)
    except (ValueError, TypeError, RuntimeError, FloatingPointError) as exc:
        print(f"fastbp: error: {exc}", file=sys.stderr)
        return 2
