"""onnxruntime running a model's to_onnx() graph against the model's own predict.

    python benchmarks/export_onnx.py [--rows N] [--rounds R] [--threads T]

The model is `fastbp train`'s default architecture (64 -> 256 relu -> 10) trained
for a few epochs on the digits, float32; the input is N rows (default 10 000) of the
digits, repeated. Contenders, timed against each other in rounds with
benchmarks/report.py's method (docs/design.md §4: warm-up, blocks of about 40 ms,
rotated order, a pause before each block, medians over rounds):

- fastbp predict_proba and predict (the public calls, input checks included);
- onnxruntime's InferenceSession.run for "probabilities" alone and for both outputs
  ("label" and "probabilities"), on the same float32 rows.

Both sides use T threads (default: the machine's cores): fastbp's n_threads for its
BLAS, onnxruntime's intra_op_num_threads. Not a pytest file: it prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # run as a script: measure this checkout's fastbp

import numpy as np  # noqa: E402

import fastbp as fb  # noqa: E402
from benchmarks.report import Settings, interleaved  # noqa: E402


def trained_model(threads: int) -> fb.Sequential:
    X, y = fb.datasets.load_digits()
    X = fb.datasets.standardize(X)
    model = fb.Sequential(
        [fb.Dense(256, activation="relu", input_dim=64), fb.Dense(10)],
        loss="softmax_cross_entropy",
        optimizer=fb.Adam(lr=0.001),
        seed=0,
        n_threads=threads,
    )
    model.fit(X, y, epochs=5, batch_size=32, verbose=0)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    import onnxruntime as ort

    model = trained_model(args.threads)
    digits, _ = fb.datasets.load_digits()
    X = np.resize(fb.datasets.standardize(digits), (args.rows, 64)).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.to_onnx().SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    label, proba = session.run(None, {"X": X})
    assert np.array_equal(label, model.predict(X))
    assert np.abs(proba - model.predict_proba(X)).max() < 1e-5
    contenders = {
        "fastbp predict_proba": lambda: model.predict_proba(X),
        "fastbp predict": lambda: model.predict(X),
        "onnxruntime probabilities": lambda: session.run(["probabilities"], {"X": X}),
        "onnxruntime label + probabilities": lambda: session.run(None, {"X": X}),
    }
    settings = Settings("float32", args.rounds, 0.04, 0.2, 0.2, args.rows, False)
    timings = interleaved(contenders, settings)
    base = "fastbp predict_proba"
    print(f"{args.rows} rows of 64 features, 64-256-10 relu, float32, {args.threads} threads")
    print(f"{'contender':<36}{'ms per call':>12}{'rows/s':>14}{'vs ' + base:>28}{'spread':>8}")
    for name in contenders:
        seconds = timings.seconds(name)
        print(
            f"{name:<36}{seconds * 1e3:>12.3f}{args.rows / seconds:>14,.0f}"
            f"{timings.ratio(name, base):>28.2f}{timings.spread(name):>8.2f}"
        )


if __name__ == "__main__":
    main()
